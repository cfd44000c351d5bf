"""The audit loop at scale: one node with 100 licenses auditing 1,000 EVM targets on the devnet.

    .venv/bin/python bench/audit_loop.py [--targets 1000] [--licenses 100] [--epochs 3] [--block-time 1]

Registers the targets (pointing at 20 honest fault-proxy processes in front of anvil), starts the node and
runs whole epochs. Prints the node's peak RSS (VmHWM, budget 64 MB), audits per epoch, and the loop's gas per
license per epoch (heartbeat + commit + reveal + settlements), read from the chain.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from eth_abi import encode

from alignment_node.chain.contracts import TxOptions, build_transaction
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.faultproxy import FaultProxyProcess
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.node.runtime import manifest_contracts

BUDGET_KB = 64 * 1024


async def register_targets(net: Devnet, urls: list[str], n: int) -> None:
    keeper = LocalSigner(net.anvil.private_keys[0])
    async with RpcClient(net.anvil.url, timeout=30) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        genesis = await rpc.get_block(0)
        identity = encode(["uint256", "bytes32"], [await rpc.chain_id(), bytes.fromhex(genesis["hash"][2:])])
        nonce = await rpc.get_transaction_count(keeper.address, "pending")
        max_fee, tip = await rpc.suggest_fees()
        last = None
        for i in range(n):
            data = registry.encode("addTarget", 1, urls[i % len(urls)], identity)
            signed = await build_transaction(rpc, keeper, registry.address, data,
                                             TxOptions(nonce=nonce + i, gas=400_000, max_fee_per_gas=max_fee * 4,
                                                       max_priority_fee_per_gas=tip))
            await rpc.send_raw_transaction(signed.raw)
            last = signed.hash
        await rpc.wait_for_receipt(last, timeout=300)
        assert await registry.call("targetCount") == n


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--licenses", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--block-time", type=float, default=1.0)
    ap.add_argument("--proxies", type=int, default=20)
    args = ap.parse_args()
    owners = max(1, (args.licenses + 49) // 50)
    plan = Plan(commissions_bps=(1000,), owners=owners, licenses_per_owner=args.licenses // owners,
                block_time=args.block_time, audit_deadline_s=5.0)
    net = Devnet(plan, Path(tempfile.mkdtemp(prefix="bench-audit-")), log=lambda m: print(m, file=sys.stderr))
    proxies = []
    try:
        asyncio.run(net.setup())
        for _ in range(args.proxies):
            proxy = FaultProxyProcess(upstream=net.anvil.url, mode="honest")
            proxy.start()
            proxies.append(proxy)
        urls = [p.url for p in proxies]
        t0 = time.monotonic()
        asyncio.run(register_targets(net, urls, args.targets))
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
                net.sample_rss()
                net.stop_nodes()
                return epochs, audits, await net.report(rpc, "audit-loop", epochs)

        epochs, audits, report = asyncio.run(run())
    finally:
        net.stop()
        for p in proxies:
            p.stop()
    [o] = report["operators"]
    rss = o["rss_kb_max"]
    runs = len(epochs) + 2
    print(f"licenses {o['licenses']}, targets {args.targets}, epochs {epochs}, block time {args.block_time} s")
    print(f"audits run by the node: {int(audits)} (about {audits / runs:.0f} per epoch)")
    print(f"missed reveals {o['missed_reveals']}, duplicate txs {o['duplicate_txs']}, reverted {o['reverted_txs']}")
    print(f"gas per license per epoch (heartbeat+commit+reveal+settle): {o['gas_per_license_epoch']}")
    print(f"node VmHWM: {rss} kB = {rss / 1024:.1f} MB (budget {BUDGET_KB} kB): "
          f"{'within' if rss <= BUDGET_KB else 'OVER'} budget")
    return 0 if rss <= BUDGET_KB else 2


if __name__ == "__main__":
    sys.exit(main())
