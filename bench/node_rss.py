"""Peak RSS (VmHWM) of one node process serving 100 licenses, on a devnet, over several epochs.

    .venv/bin/python bench/node_rss.py [--epochs 3]

Runs `alignment-node devnet scenario presence` with one operator holding 100 licenses (2 owners x 50) and
prints the node's VmHWM in kB and MB, with the budget (64 MB, the reference node's stated requirement).
"""

import argparse
import json
import subprocess
import sys

BUDGET_KB = 64 * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "alignment_node.cli", "devnet", "scenario", "presence", "--epochs",
           str(args.epochs), "--operators", "1", "--owners", "2", "--licenses-per-owner", "50", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return 1
    report = json.loads(out.stdout)
    [op] = report["operators"]
    credited = sum(1 for lic in report["licenses"] if not lic["missing_epochs"])
    rss = op["rss_kb_max"]
    print(f"licenses: {op['licenses']} (credited in every epoch: {credited}), epochs: {len(report['epochs'])}")
    print(f"node VmHWM: {rss} kB = {rss / 1024:.1f} MB (budget {BUDGET_KB} kB = 64 MB): "
          f"{'within' if rss <= BUDGET_KB else 'OVER'} budget")
    return 0 if rss <= BUDGET_KB else 2


if __name__ == "__main__":
    sys.exit(main())
