"""bench/network_scale.py at a tiny size, so the issue-16 benchmark keeps running between its full-size runs (the
security review's change to targets broke its settlement step and only a 30-minute full run found it): the real
contracts on anvil, two operators, every license credited and revealed (one reveal per operator), committees
exactly full, every target OK without a settlement (all its committee revealed OK)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_network_scale_bench_runs_an_epoch_and_credits_every_license():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "network_scale.py"), "--licenses", "60",
                          "--operators", "2", "--targets", "6", "--epochs", "1"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    text = out.stdout
    assert "every license credited in every epoch: yes" in text, text
    assert "every license revealed in every epoch: yes" in text, text
    assert "settle 0 (0 of 6 targets)" in text, text
    assert re.search(r"committee sizes of 200 sampled targets \{5: 6\}", text), text
    assert re.search(r"outcomes \{'OK': 6\}; reveals per target \{5: 6\}", text), text
    m = re.search(r"presence \+ commit ([\d,]+) gas per license", text)
    assert m and int(m.group(1).replace(",", "")) > 0, text


def test_a_faulty_target_is_settled_fault_and_its_votes_cost_gas():
    """``--faults 1``: the first target's seated licenses list FAULT, their operators' reveals carry the votes, and
    the target alone is settled, FAULT (the on-demand blocks hold the reveals and the settlement)."""
    out = subprocess.run([sys.executable, str(REPO / "bench" / "network_scale.py"), "--licenses", "60",
                          "--operators", "2", "--targets", "6", "--epochs", "1", "--faults", "1"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    text = out.stdout
    assert re.search(r"settle [\d,]+ \(1 of 6 targets, [\d,]+/settled target\)", text), text
    assert re.search(r"outcomes \{'FAULT': 1, 'OK': 5\}", text), text
    assert "every license credited in every epoch: yes" in text, text
