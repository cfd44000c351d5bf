"""Detection probability of the storage audit per epoch, measured against the formula 1 - (1 - f)^k.

    .venv/bin/python bench/storage_detection.py [--files 1000] [--runs 400] [--challenges 8]

A real chain (anvil) and flow hold ``--files`` one-segment files; for each f in {1%, 5%, 20%} a reference
storage node in ``drop`` mode claims them all but serves null for a fraction f of its segments (chosen by a
hash of root and index). The actual fraction is measured by asking the node for every segment. Then the real
auditor (``ZgsAuditor``) audits the node ``--runs`` times with different epoch seeds and licenses (as many
independent auditors would), and the share of runs that end in FAULT is compared with 1 - (1 - f)^k for the
measured f and the default k. A run's draws pick a file uniformly, then a segment of it in the node's shard,
so with one segment per file the picks are uniform over the node's segments.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from pathlib import Path

from alignment_node.audits.base import EpochContext, Target
from alignment_node.audits.zgs import ZgsAuditor, ZgsPolicy
from alignment_node.chain.contracts import TxOptions, build_transaction
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import Anvil
from alignment_node.devnet.storage import deploy_flow, file_path, random_file
from alignment_node.devnet.zgsnode import ZgsNodeProcess
from alignment_node.protocol import FAULT
from alignment_node.zgs import merkle
from alignment_node.zgs.flow import flow_identity


async def upload_many(rpc: RpcClient, signer: LocalSigner, n: int, files: Path) -> str:
    """Deploy the flow and submit ``n`` files of 3,000 bytes without waiting for each receipt."""
    flow = await deploy_flow(rpc, signer)
    rng = random.Random(1)
    nonce = await rpc.get_transaction_count(signer.address, "pending")
    max_fee, tip = await rpc.suggest_fees()
    last = None
    for i in range(n):
        data = random_file(rng, 3000)
        import io

        nodes = merkle.submission_nodes(io.BytesIO(data), len(data))
        file_path(files, merkle.fold_nodes([r for _, r in nodes])).write_bytes(data)
        call = flow.encode("submit", (len(data), b"", [(r, h) for h, r in nodes]))
        signed = await build_transaction(rpc, signer, flow.address, call,
                                         TxOptions(nonce=nonce + i, gas=300_000, max_fee_per_gas=max_fee * 4,
                                                   max_priority_fee_per_gas=tip))
        await rpc.send_raw_transaction(signed.raw)
        last = signed.hash
    await rpc.wait_for_receipt(last, timeout=300)
    await rpc.request("anvil_mine", [hex(3)])
    return flow.address


async def measure(rpc: RpcClient, chain_id: int, flow: str, node: ZgsNodeProcess, runs: int, k: int,
                  n_files: int) -> tuple[float, float, float]:
    """(measured dropped fraction, detection rate, seconds per audit)."""
    identity = flow_identity(chain_id, flow)
    target = Target(1, 3, node.url, identity)
    auditor = ZgsAuditor(lambda cid: rpc, ZgsPolicy(challenges=k))
    # the node's actual dropped fraction: ask for every segment once
    from alignment_node.audits.http import AuditHttpClient

    client = AuditHttpClient(max_response_bytes=1 << 20)
    dropped = 0
    await auditor.audit_epoch(0, [target], [target], 30.0)  # warms the auditor's index of the flow
    flow_state = next(iter(auditor._flows.values()))
    subs = flow_state.index.submissions
    async with client.session(node.url) as s:
        for sub in subs:
            obs = await s.call("zgs_downloadSegmentWithProof", ["0x" + sub.root.hex(), 0])
            dropped += obs.get("status") == "ok" and "result" in obs and obs["result"] is None
    f = dropped / len(subs)
    detected = 0
    t0 = time.monotonic()
    for run in range(runs):
        seed = run.to_bytes(32, "big")
        results = await auditor.audit_epoch(run + 1, [target], [target], 30.0,
                                            context=EpochContext(seed, {1: [1 + run % 100]}))
        detected += results[1].verdict == FAULT
    return f, detected / runs, (time.monotonic() - t0) / runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--challenges", type=int, default=ZgsPolicy.challenges)
    args = ap.parse_args()
    k = args.challenges
    files = Path(tempfile.mkdtemp(prefix="bench-zgs-"))
    anvil = Anvil(block_time=None).start()
    try:
        signer = LocalSigner(anvil.private_keys[0])

        async def run() -> list[str]:
            async with RpcClient(anvil.url, timeout=30) as rpc:
                t0 = time.monotonic()
                flow = await upload_many(rpc, signer, args.files, files)
                print(f"{args.files} one-segment files submitted in {time.monotonic() - t0:.1f} s", file=sys.stderr)
                chain_id = await rpc.chain_id()
                lines = []
                for f in (0.01, 0.05, 0.20):
                    with ZgsNodeProcess(anvil.url, flow, files, "drop", fraction=f, startup_timeout=120) as node:
                        measured, rate, per = await measure(rpc, chain_id, flow, node, args.runs, k, args.files)
                    expected = 1 - (1 - measured) ** k
                    sd = math.sqrt(expected * (1 - expected) / args.runs)
                    lines.append(f"f={f:.0%} (measured {measured:.2%} of {args.files} segments dropped), k={k}: "
                                 f"detected in {rate:.1%} of {args.runs} epochs; 1-(1-f)^k = {expected:.1%} "
                                 f"(±{2 * sd:.1%} at 2 sd; {1 - (1 - f) ** k:.1%} at the nominal f); "
                                 f"{per * 1000:.0f} ms per audit")
                    print(lines[-1], flush=True)
                return lines

        asyncio.run(run())
    finally:
        anvil.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
