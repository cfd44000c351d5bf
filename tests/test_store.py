"""The SQLite journal survives a process dying between writes (it is on disk, WAL, fsynced)."""

import subprocess
import sys

from alignment_node.node.store import Store


def test_signed_entry_survives_a_killed_process(tmp_path):
    db = tmp_path / "node.sqlite"
    code = (
        "import os, signal\n"
        "from alignment_node.node.store import Store\n"
        f"s = Store({str(db)!r})\n"
        "s.record_signed(7, 'heartbeat', 3, '0x' + 'ab' * 32, b'raw-bytes', {'licenses': [1, 2]})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    store = Store(db)
    [entry] = store.open_entries()
    assert (entry.nonce, entry.purpose, entry.epoch, entry.raw, entry.meta) == (7, "heartbeat", 3, b"raw-bytes",
                                                                                {"licenses": [1, 2]})
    assert store.live_for("heartbeat", 3) == [entry]
    store.mark(entry.tx_hash, "dropped")
    assert store.open_entries() == [] and store.live_for("heartbeat", 3) == []
    assert store.highest_nonce() is None


def test_states_and_kv(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    a = store.record_signed(0, "heartbeat", 1, "0x01", b"a")
    store.record_signed(1, "commit", 1, "0x02", b"b")
    store.mark(a.tx_hash, "mined", block=10, gas_used=50_000)
    assert store.entry("0x01").state == "mined" and store.entry("0x01").block == 10
    assert [e.tx_hash for e in store.open_entries()] == ["0x02"]
    assert store.highest_nonce() == 1
    assert store.counts() == {"mined": 1, "signed": 1}
    store.put("follower.block", 123)
    assert store.get("follower.block") == 123 and store.get("missing", 5) == 5
