"""Seconds from `alignment-node devnet up` to the first credited epoch, and a clean shutdown.

    .venv/bin/python bench/devnet_up.py [--runs 1]

Starts the real command, reads its live view until it reports the first booked credit (an OperatorBooked event:
an operator's present epoch credited to its licenses), sends Ctrl-C (SIGINT) and checks that no process it started
is left.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def one_run() -> tuple[float, int]:
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "alignment_node.cli", "devnet", "up"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds = None
    started = []
    try:
        for line in proc.stdout:
            m = re.search(r"first credit after ([0-9.]+)s", line)
            if m:
                seconds = float(m.group(1))
                started = children_of(proc.pid)
                break
            if time.monotonic() - t0 > 300:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    time.sleep(1)
    left = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
    if seconds is None:
        raise SystemExit("devnet up never reported a credited epoch")
    return seconds, len(left)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    times = []
    for i in range(args.runs):
        seconds, left = one_run()
        times.append(seconds)
        print(f"run {i + 1}: first credited epoch {seconds:.1f} s after `devnet up`; processes left after Ctrl-C: {left}")
    times.sort()
    print(f"median {times[len(times) // 2]:.1f} s over {len(times)} run(s) (epoch = 30 blocks of 0.25 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
