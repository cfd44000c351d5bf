"""One epoch of 1,000 EVM_RPC audits on one core.

    .venv/bin/python bench/evm_audits.py [--targets 1000] [--proxies 20] [--epochs 2]

Starts one anvil (1 s blocks) and ``--proxies`` honest fault-proxy processes in front of it; registers
``--targets`` targets spread over the proxies (distinct URLs by path), then pins this process to CPU 0 (anvil and
the proxies to the other CPUs, when there are any) and times ``EvmAuditor.audit_epoch`` with every target both
assigned and a peer. Prints the seconds, audits per second, verdict counts and this process's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment_node.audits.base import Target  # noqa: E402
from alignment_node.audits.evm import EvmAuditor, evm_identity  # noqa: E402
from alignment_node.devnet.anvil import Anvil  # noqa: E402
from alignment_node.devnet.faultproxy import FaultProxyProcess  # noqa: E402
from alignment_node.protocol import KIND_EVM_RPC  # noqa: E402


def status_kb(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus``."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=1000)
    p.add_argument("--proxies", type=int, default=20)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--deadline", type=float, default=30.0, help="the epoch's audit deadline, seconds")
    args = p.parse_args()

    cpus = os.sched_getaffinity(0)
    others = cpus - {0} or {0}
    with Anvil(block_time=1) as node:
        chain_id = int(node.rpc("eth_chainId"), 16)
        genesis = bytes.fromhex(node.rpc("eth_getBlockByNumber", ["0x0", False])["hash"][2:])
        identity = evm_identity(chain_id, genesis)
        proxies = [FaultProxyProcess(node.url, "honest") for _ in range(args.proxies)]
        try:
            for proxy in proxies:
                proxy.start()
                pin(proxy.process.pid, others)
            pin(node.pid, others)
            os.sched_setaffinity(0, {0})
            targets = [Target(i + 1, KIND_EVM_RPC, f"{proxies[i % len(proxies)].url}/t/{i + 1}", identity)
                       for i in range(args.targets)]
            auditor = EvmAuditor()
            rss_before = status_kb("VmRSS")
            print(f"targets: {len(targets)} over {len(proxies)} proxy processes; auditor pinned to CPU 0,"
                  f" anvil and proxies to CPU {sorted(others)}")
            for epoch in range(1, args.epochs + 1):
                started, cpu = time.perf_counter(), time.process_time()
                results = asyncio.run(auditor.audit_epoch(epoch, targets, targets, args.deadline))
                took, cpu = time.perf_counter() - started, time.process_time() - cpu
                verdicts = Counter(r.verdict_name for r in results.values())
                print(f"epoch {epoch}: {len(results)} audits in {took:.2f} s = {len(results) / took:.0f} audits/s"
                      f" (auditor CPU {cpu:.2f} s); verdicts {dict(verdicts)};"
                      f" peak RSS so far {status_kb('VmHWM') / 1024:.1f} MB")
                del results  # the node stores each epoch's bundles and lets them go
                time.sleep(1.0)
            print(f"auditor RSS: {rss_before / 1024:.1f} MB before the epochs (interpreter, imports, proxies'"
                  f" handles), peak (VmHWM) {status_kb('VmHWM') / 1024:.1f} MB")
        finally:
            for proxy in proxies:
                proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
