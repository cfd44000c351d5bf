"""The node's memory with 1,000 DA_SIGNER targets in one epoch, and the time the audits take.

    .venv/bin/python bench/da_node_rss.py [--targets 1000] [--blobs 4] [--pools 4]

Builds a DA chain on anvil (the DASigners stand-in at the precompile address, a DAEntrance), registers
``--targets`` signers, opens a DA epoch whose one quorum has ``max(1024, targets)`` rows (every signer holds
one or two), serves them from ``--pools`` reference signer servers (``DaSignerServer(pool=True)``: each holds
the rows of its share of the signers, which share its BLS key) and has the devnet disperser get ``--blobs``
blobs verified. Then, in a fresh process that imports what the node imports (``alignment_node.node.node``) and
stores every bundle in a node store (SQLite) as the node's sink does, it audits all the targets:

- ``worker``: as the node does, through ``DaWorkerAuditor`` (the audits in the DA worker process);
- ``in-process``: the same audits in the node's own process (``DaAuditor`` over ``DaChainReader``), to show
  what the worker keeps out of it.

Prints, per way: the verdicts, seconds, and VmHWM (peak RSS) of the node process and of the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_KB = 64 * 1024


def vm_hwm_kb(pid: str | int = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def node_side(args) -> None:
    """The child: audit every target as the node would, storing each bundle; print one JSON line."""
    import alignment_node.node.node  # noqa: F401  (the node's imports)
    from alignment_node import protocol as P
    from alignment_node.audits.base import AuditResult, EpochContext, Target
    from alignment_node.audits.da import DaAuditor, DaPolicy, DaWorkerAuditor
    from alignment_node.node.store import Store

    spec = json.loads(Path(args.spec).read_text())
    targets = [Target(i + 1, P.KIND_DA_SIGNER, t["endpoint"], bytes.fromhex(t["identity"][2:]))
               for i, t in enumerate(spec["targets"])]
    store = Store(Path(args.spec).with_suffix(f".{args.way}.sqlite"))
    verdicts: dict[str, int] = {}

    def sink(tid: int, res: AuditResult) -> AuditResult:
        body = P.canonical_json(res.bundle)
        root = "0x" + P.keccak(body).hex()
        with store.transaction():
            store.put_evidence(root, 1, tid, res.verdict, body)
        verdicts[res.verdict_name] = verdicts.get(res.verdict_name, 0) + 1
        return AuditResult(res.verdict, {}, stored_root=bytes.fromhex(root[2:]))

    policy = DaPolicy(max_targets_at_once=64)
    context = EpochContext(secrets.token_bytes(32), {t.id: [t.id] for t in targets}, sink)
    worker_kb = None

    async def go():
        nonlocal worker_kb
        if args.way == "worker":
            auditor = DaWorkerAuditor([spec["rpc"]], 10.0, policy, 100_000)
            try:
                await auditor.audit_epoch(1, targets, targets, args.deadline, context)
                worker_kb = vm_hwm_kb(auditor.worker.pid) if auditor.worker.pid else None
            finally:
                await auditor.worker.close()
        else:
            from alignment_node.chain.rpc import RpcClient
            from alignment_node.da.chain import DaChainReader

            async with RpcClient(spec["rpc"], timeout=10.0) as rpc:
                reader = DaChainReader(rpc, policy.window_blobs, 100_000)
                await reader.refresh([spec["entrance"]])

                async def facts(_t, _cid, signer, entrance):
                    return await reader.facts(signer, entrance)

                await DaAuditor(facts, policy).audit_epoch(1, targets, targets, args.deadline, context)

    t0 = time.monotonic()
    asyncio.run(go())
    print(json.dumps({"way": args.way, "verdicts": verdicts, "seconds": round(time.monotonic() - t0, 1),
                      "node_kb": vm_hwm_kb(), "worker_kb": worker_kb}))


async def build_chain(n: int, blobs: int, pools: int, workdir: Path) -> tuple[dict, list]:
    """The DA chain and the pool servers; the spec the child reads."""
    from alignment_node.audits.da import da_identity
    from alignment_node.chain.rpc import RpcClient
    from alignment_node.chain.tx import LocalSigner
    from alignment_node.da import bls
    from alignment_node.devnet.anvil import Anvil
    from alignment_node.devnet.da_targets import install_da_contracts, register_da_signer
    from alignment_node.devnet.dasigner import DaSignerServer
    from alignment_node.devnet.disperser import Disperser

    anvil = Anvil(extra_args=["--gas-limit", "2000000000"]).start()
    admin = LocalSigner(anvil.private_keys[0])
    keys = [secrets.randbelow(bls.R - 1) + 1 for _ in range(pools)]
    servers = []
    async with RpcClient(anvil.url) as rpc:
        signers, entrance = await install_da_contracts(rpc, admin, admin)
        for sk in keys:
            s = DaSignerServer(sk, "honest", entrance.address, pool=True, max_inflight=100_000, workers=16)
            s.start()
            servers.append(s)
        chain_id = await rpc.chain_id()
        addresses = [LocalSigner(secrets.token_bytes(32)).address for _ in range(n)]
        t0 = time.monotonic()
        for i, a in enumerate(addresses):
            await register_da_signer(signers, admin, a, servers[i % pools].target, keys[i % pools], chain_id)
        rows = max(1024, n)
        await signers.transact("newEpoch", [[addresses[i % n] for i in range(rows)]], signer=admin)
        print(f"{n} signers registered, a quorum of {rows} rows, in {time.monotonic() - t0:.1f} s", flush=True)
    disperser = Disperser(anvil.url, entrance.address, admin, sign_deadline_s=60.0)  # pools answer in turn
    t0 = time.monotonic()
    done = [await disperser.disperse_one() for _ in range(blobs)]
    await disperser.close()
    print(f"{sum(d.verified for d in done)} of {blobs} blobs verified ({done[0].hit} of {done[0].total} rows "
          f"signed) in {time.monotonic() - t0:.1f} s", flush=True)
    spec = {"rpc": anvil.url, "entrance": entrance.address,
            "targets": [{"endpoint": servers[i % pools].target,
                         "identity": "0x" + da_identity(chain_id, a, entrance.address).hex()}
                        for i, a in enumerate(addresses)]}
    return spec, [anvil, *servers]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--blobs", type=int, default=4)
    ap.add_argument("--pools", type=int, default=4)
    ap.add_argument("--deadline", type=float, default=600.0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--way", choices=("worker", "in-process"), default="worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        node_side(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="da-bench-") as tmp:
        spec, running = asyncio.run(build_chain(args.targets, args.blobs, args.pools, Path(tmp)))
        try:
            path = Path(tmp) / "spec.json"
            path.write_text(json.dumps(spec))
            worst = 0
            for way in ("worker", "in-process"):
                out = subprocess.run([sys.executable, __file__, "--child", "--way", way, "--spec", str(path),
                                      "--deadline", str(args.deadline)], capture_output=True, text=True,
                                     timeout=args.deadline + 120)
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                r = json.loads(out.stdout.strip().splitlines()[-1])
                worker = f"; DA worker VmHWM {r['worker_kb']} kB" if r["worker_kb"] else ""
                print(f"{way}: {len(spec['targets'])} DA targets, verdicts {r['verdicts']}, {r['seconds']} s; "
                      f"node VmHWM {r['node_kb']} kB = {r['node_kb'] / 1024:.1f} MB"
                      f" ({'within' if r['node_kb'] <= BUDGET_KB else 'OVER'} 64 MB){worker}", flush=True)
                if way == "worker":
                    worst = r["node_kb"]
            return 0 if worst <= BUDGET_KB else 2
        finally:
            for r in running:
                r.stop()


if __name__ == "__main__":
    sys.exit(main())
