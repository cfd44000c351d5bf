"""Seconds from `alignment-node devnet up` to the first credited epoch, and a clean shutdown.

    .venv/bin/python bench/devnet_up.py [--runs 1]
    .venv/bin/python bench/devnet_up.py --minutes 15     # outcomes of a 15-minute run (issue 16: INCONCLUSIVE <= 1 %)

Starts the real command, reads its live view until it reports the first booked credit (an OperatorBooked event:
an operator's present epoch credited to its licenses), sends Ctrl-C (SIGINT) and checks that no process it started
is left.
"""

import argparse
import json
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


def one_run(minutes: float = 0.0, outcomes: str | None = None) -> tuple[float, int]:
    """Seconds to the first credit and processes left after Ctrl-C; with ``minutes``, Ctrl-C only that long after
    the first credit (the live view drained meanwhile), and the run's report written to ``outcomes``."""
    t0 = time.monotonic()
    extra = ["--outcomes", outcomes] if outcomes else []
    # Ctrl-C as a terminal sends it; a shell that started this bench in the background may have left SIGINT ignored,
    # which the child would inherit (and never stop): give it the default back.
    proc = subprocess.Popen([sys.executable, "-m", "alignment_node.cli", "devnet", "up", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seconds = None
    started = []
    try:
        for line in proc.stdout:
            m = re.search(r"first credit after ([0-9.]+)s", line)
            if m and seconds is None:
                seconds = float(m.group(1))
                started = children_of(proc.pid)
                until = time.monotonic() + 60 * minutes
            if seconds is not None and time.monotonic() >= until:
                break
            if seconds is None and time.monotonic() - t0 > 300:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        for line in proc.stdout:  # the report's summary, then "devnet stopped"
            if outcomes and ("targets, epochs" in line or "error" in line):
                print(line.rstrip())
        proc.wait(timeout=600)
    time.sleep(1)
    left = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
    if seconds is None:
        raise SystemExit("devnet up never reported a credited epoch")
    return seconds, len(left)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="run this long after the first credit, then print the outcomes of every (target, epoch)")
    args = ap.parse_args()
    times = []
    for i in range(args.runs):
        report = f"/tmp/devnet-up-outcomes-{os.getpid()}.json" if args.minutes else None
        seconds, left = one_run(args.minutes, report)
        if report:
            with open(report) as fh:
                summary = json.load(fh)["summary"]
            os.unlink(report)
            print(json.dumps(summary))
        times.append(seconds)
        print(f"run {i + 1}: first credited epoch {seconds:.1f} s after `devnet up`; processes left after Ctrl-C: {left}")
    times.sort()
    print(f"median {times[len(times) // 2]:.1f} s over {len(times)} run(s) (epoch = 30 blocks of 0.25 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
