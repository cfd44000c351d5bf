"""Heights audited per second through the whole COMETBFT audit: HTTP to a simulated chain, strict parsing, full
commit verification of every endpoint's commits, the sliding window, the bundle and its judgement.

    .venv/bin/python bench/consensus_audit.py [--validators 100] [--heights 200] [--endpoints 2]

A chain simulator (``devnet/cometsim.py``) with ``--validators`` validators makes blocks every 50 ms until it has
``--heights`` heights; then one ``CometAuditor`` epoch audits one validator target with a window of that many
heights through ``--endpoints`` honest endpoints (each height fetched from each endpoint, signatures served
twice verified once). Prints heights per second, signatures verified per second and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment_node.audits.base import Target  # noqa: E402
from alignment_node.audits.cometbft import CometAuditor, comet_identity  # noqa: E402
from alignment_node.devnet.cometsim import CometSimProcess  # noqa: E402
from alignment_node.protocol import KIND_COMETBFT  # noqa: E402


def vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def height(url: str) -> int:
    with urllib.request.urlopen(url + "/status", timeout=10) as r:
        return int(json.load(r)["result"]["sync_info"]["latest_block_height"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--validators", type=int, default=100)
    ap.add_argument("--heights", type=int, default=200)
    ap.add_argument("--endpoints", type=int, default=2)
    args = ap.parse_args()
    names = {f"rpc{i}": "honest" for i in range(args.endpoints)}
    with CometSimProcess(chain_id="bench-comet", validators=args.validators, block_time=0.05, seed=9,
                         endpoints=names, keep=args.heights + 100) as sim:
        while height(sim.endpoint_url("rpc0")) < args.heights + 2:
            time.sleep(0.5)
        address = sim.validator_addresses()[0]
        targets = [Target(1, KIND_COMETBFT, sim.endpoint_url("rpc0"), comet_identity("bench-comet", address))]
        peers = targets + [Target(2 + i, KIND_COMETBFT, sim.endpoint_url(n), comet_identity("bench-comet"))
                           for i, n in enumerate(list(names)[1:])]
        rss0 = vm_hwm_kb()
        auditor = CometAuditor(window=args.heights, request_deadline_ms=10_000, halt_after_s=3600)
        t0 = time.perf_counter()
        result = asyncio.run(auditor.audit_epoch(1, targets, peers, 600.0))[1]
        wall = time.perf_counter() - t0
    chain = result.bundle["chain"]
    n = chain["accepted_heights"]
    calls = len(result.bundle["observations"])
    print(f"{args.validators} validators, {args.endpoints} endpoints, {n} heights audited in {wall:.2f} s: "
          f"{n / wall:.1f} heights/s, {n * args.validators / wall:,.0f} commit signatures/s "
          f"(each served signature verified once), verdict {result.bundle['verdict']}")
    print(f"{calls} calls to the target's endpoint; peak RSS {vm_hwm_kb() / 1024:.1f} MB "
          f"({rss0 / 1024:.1f} MB before the audit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
