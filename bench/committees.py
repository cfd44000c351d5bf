"""Exact committees at the network's size (issue 16): how fast one node finds its duties, and its memory.

A node process (the node's own imports: ``alignment_node.node``) is given the committee list of 175,500 licenses,
10,000 enabled targets, committees of 5, and the list positions of its own licenses (10,000 by default, spread
at random over the list as delegations would be). It computes its duties with ``protocol.duties`` (one inverse
swap-or-not shuffle per license, batched by round) for several epoch seeds and reports the time per epoch, the
seats found against the expected ``licenses * targets * k / listed``, that every target's committee is exactly k
(checked for the whole network from the committee side, ``protocol.committee_positions``, on a sample of
targets), and its peak RSS (VmHWM) against the node's 64 MB budget.

    .venv/bin/python bench/committees.py [--listed 175500] [--mine 10000] [--targets 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, random, sys, time
import alignment_node.node.node  # the node's imports, as the running node has them
from alignment_node import protocol as P

listed, mine, targets, k, epochs = (int(x) for x in sys.argv[1:6])
rng = random.Random(16)
positions = dict(zip(range(1, mine + 1), rng.sample(range(listed), mine)))
enabled = range(targets)
out = []
for e in range(epochs):
    seed = rng.randbytes(32)
    t0 = time.perf_counter()
    duties = P.duties(seed, positions, listed, k, enabled)
    dt = time.perf_counter() - t0
    seats = sum(len(ts) for ts in duties.values())
    # the committee side, for a sample of targets: exactly k distinct positions; ours among them agree
    where = {q: lic for lic, q in positions.items()}
    sample = rng.sample(range(targets), 200)
    exact = True
    for t in sample:
        c = P.committee_positions(seed, t, listed, k)
        exact &= len(set(c)) == k
        ours = sorted(where[q] for q in c if q in where)
        exact &= ours == sorted(lic for lic, ts in duties.items() if t in ts)
    out.append({"epoch": e, "seconds": dt, "seats": seats, "exact_and_agree": exact})
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(json.dumps({"epochs": out, "vmhwm_kb": hwm}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listed", type=int, default=175_500)
    ap.add_argument("--mine", type=int, default=10_000)
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--committee", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", CHILD, str(a.listed), str(a.mine), str(a.targets), str(a.committee),
                          str(a.epochs)], capture_output=True, text=True, env=env, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    expected = a.mine * a.targets * a.committee / a.listed
    print(f"listed {a.listed}, this node's licenses {a.mine}, targets {a.targets}, committees of {a.committee}")
    for e in r["epochs"]:
        print(f"epoch {e['epoch']}: duties found in {e['seconds']:.3f} s; seats {e['seats']} "
              f"(expected {expected:.0f}); 200 sampled committees exactly {a.committee} and agreeing: "
              f"{e['exact_and_agree']}")
    worst = max(e["seconds"] for e in r["epochs"])
    print(f"worst epoch {worst:.3f} s (goal <= 1 s): {'met' if worst <= 1 else 'NOT met'}")
    print(f"node process VmHWM {r['vmhwm_kb']} kB = {r['vmhwm_kb'] / 1024:.1f} MB (budget 64 MB): "
          f"{'within' if r['vmhwm_kb'] <= 65536 else 'OVER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
