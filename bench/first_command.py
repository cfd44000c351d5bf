"""Time of the README's first command on a fresh clone: `./scripts/devnet.sh` from `git clone` to the live view's
first credited epoch (an operator's present epoch booked by the vault), then Ctrl-C and the time to stop.

    .venv/bin/python bench/first_command.py [--repo .] [--timeout 900]

The clone is a fresh one of the repository's HEAD (its own .venv, node_modules and caches: nothing is reused from
the checkout), so what it measures is what a new user waits for; the package managers' download caches of this
machine (pip, npm) are warm, as they would be on a second install.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CREDIT = re.compile(r"first credit after ([0-9.]+)s")
STEP = re.compile(r"^\[install\] (.*)$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before giving up")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-command-") as tmp:
        clone = Path(tmp) / "alignment-node"
        subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(["./scripts/devnet.sh"], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        steps: list[tuple[float, str]] = []
        credited = None
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                now = time.monotonic() - t0
                m = STEP.match(line.strip())
                if m:
                    steps.append((now, m.group(1)))
                if "deployed at block" in line or "started" in line and "node process" in line:
                    steps.append((now, line.strip()))
                m = CREDIT.search(line)
                if m:
                    credited = now
                    break
                if now > args.timeout:
                    break
        finally:
            t_stop = time.monotonic()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            stopped = time.monotonic() - t_stop
        for at, what in steps:
            print(f"  {at:7.1f} s  {what}")
        if credited is None:
            print(f"no credited epoch within {args.timeout:.0f} s (exit {proc.returncode})")
            return 1
        print(f"first command: first credited epoch {credited:.1f} s after ./scripts/devnet.sh on a fresh clone "
              f"(goal <= 300 s); stopped {stopped:.1f} s after Ctrl-C")
    return 0


if __name__ == "__main__":
    sys.exit(main())
