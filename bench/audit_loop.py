"""The audit loop at scale: one node with 100 licenses auditing 1,000 targets on the devnet.

    .venv/bin/python bench/audit_loop.py [--kind evm|storage] [--targets 1000] [--licenses 100] [--epochs 3]
                                         [--block-time 1] [--deadline 5]

EVM: the targets point at 20 honest fault-proxy processes in front of anvil. Storage: at 10 honest reference
storage nodes of the devnet flow, which holds 20 small files and 2 of several segments (``--storage-sizes``).
Registers the targets, starts the node and runs whole epochs. Prints the node's peak RSS (VmHWM, budget
64 MB), audits per epoch and their verdicts, and the loop's gas per license per epoch (heartbeat + commit +
reveal + settlements), read from the chain.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from eth_abi import encode

from alignment_node.chain.rpc import RpcClient
from alignment_node.devnet.faultproxy import FaultProxyProcess
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.zgs.flow import flow_identity

BUDGET_KB = 64 * 1024


async def register_targets(net: Devnet, urls: list[str], n: int, kind: str = "evm") -> None:
    async with RpcClient(net.anvil.url, timeout=30) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        already = await registry.call("targetCount")
        if kind == "storage":
            identity = flow_identity(await rpc.chain_id(), net.flow.address)
        else:
            genesis = await rpc.get_block(0)
            identity = encode(["uint256", "bytes32"], [await rpc.chain_id(), bytes.fromhex(genesis["hash"][2:])])
        # Governance adds targets: the devnet sends the registrations as the registry's owner (the timelock).
        owner = await registry.call("owner")
        await rpc.request("anvil_impersonateAccount", [owner])
        await rpc.request("anvil_setBalance", [owner, hex(10**21)])
        last = None
        n -= already
        for i in range(n):
            data = registry.encode("addTarget", 3 if kind == "storage" else 1, urls[i % len(urls)], identity)
            last = await rpc.request("eth_sendTransaction", [{"from": owner, "to": registry.address,
                                                              "data": "0x" + data.hex(), "gas": hex(400_000)}])
        if last is not None:
            await rpc.wait_for_receipt(last, timeout=300)
        await rpc.request("anvil_stopImpersonatingAccount", [owner])
        assert await registry.call("targetCount") == n + already


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--licenses", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--block-time", type=float, default=1.0)
    ap.add_argument("--proxies", type=int, default=None, help="target processes (default 20 EVM, 10 storage)")
    ap.add_argument("--kind", choices=("evm", "storage"), default="evm")
    ap.add_argument("--deadline", type=float, default=5.0, help="the node's audit deadline, seconds")
    ap.add_argument("--storage-sizes", default="20x3000,2x1500000",
                    help="files uploaded before the start: COUNTxBYTES,...")
    args = ap.parse_args()
    owners = max(1, (args.licenses + 49) // 50)
    plan = Plan(commissions_bps=(1000,), owners=owners, licenses_per_owner=args.licenses // owners,
                block_time=args.block_time, audit_deadline_s=args.deadline)
    if args.kind == "storage":
        plan.storage = ("honest",) * (args.proxies or 10)
        plan.storage_file_sizes = tuple(int(b) for part in args.storage_sizes.split(",")
                                        for n, _, b in [part.partition("x")] for _ in range(int(n)))
        plan.upload_every_blocks = 10**9
    net = Devnet(plan, Path(tempfile.mkdtemp(prefix="bench-audit-")), log=lambda m: print(m, file=sys.stderr))
    proxies = []
    try:
        asyncio.run(net.setup())
        if args.kind == "storage":
            urls = [f"http://127.0.0.1:{t.port}" for t in net.targets]
        else:
            for _ in range(args.proxies or 20):
                proxy = FaultProxyProcess(upstream=net.anvil.url, mode="honest")
                proxy.start()
                proxies.append(proxy)
            urls = [p.url for p in proxies]
        t0 = time.monotonic()
        asyncio.run(register_targets(net, urls, args.targets, args.kind))
        print(f"registered {args.targets} targets in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        net.start_nodes()
        op = net.operators[0]

        async def run():
            async with RpcClient(net.anvil.url) as rpc:
                c = manifest_contracts(rpc, net.manifest)
                protocol = c["AuditProtocol"]
                first = await protocol.call("currentEpoch") + 1
                epochs = list(range(first, first + args.epochs))
                await net.wait_for_epoch(rpc, protocol, epochs[-1] + 2)
                audits = metric(op.url(), "alignment_audits_total")
                verdicts = {v: metric(op.url(), f'alignment_audits_total{{kind="{kind}",verdict="{v}"}}')
                            for v in ("OK", "FAULT", "UNREACHABLE")}
                net.sample_rss()
                net.stop_nodes()
                return epochs, audits, verdicts, await net.report(rpc, "audit-loop", epochs)

        kind = "ZGS_STORAGE" if args.kind == "storage" else "EVM_RPC"
        epochs, audits, verdicts, report = asyncio.run(run())
    finally:
        net.stop()
        for p in proxies:
            p.stop()
    [o] = report["operators"]
    rss = o["rss_kb_max"]
    runs = len(epochs) + 2
    print(f"licenses {o['licenses']}, targets {args.targets}, epochs {epochs}, block time {args.block_time} s")
    print(f"audits run by the node: {int(audits)} (about {audits / runs:.0f} per epoch); verdicts "
          + ", ".join(f"{v} {int(n)}" for v, n in verdicts.items()))
    print(f"missed reveals {o['missed_reveals']}, duplicate txs {o['duplicate_txs']}, reverted {o['reverted_txs']}")
    print(f"gas per license per epoch (heartbeat+commit+reveal+settle): {o['gas_per_license_epoch']}")
    print(f"node VmHWM: {rss} kB = {rss / 1024:.1f} MB (budget {BUDGET_KB} kB): "
          f"{'within' if rss <= BUDGET_KB else 'OVER'} budget")
    return 0 if rss <= BUDGET_KB else 2


if __name__ == "__main__":
    sys.exit(main())
