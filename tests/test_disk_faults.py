"""A full disk and a corrupt database, for real: the node's data directory on a small tmpfs that is filled until
the kernel says ENOSPC, and database files damaged the ways disks and people damage them.

A full disk must stop the node's transactions (one is never sent unless its journal row was written first), be
said once in the log and in /health, lose nothing journaled, and end by itself when space returns. A corrupt
database must be refused at start, with one line naming the file and what to do, and never be touched.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.errors import CliError
from alignment_node.node.store import DiskFull, StoreCorrupt, open_data_dir
from alignment_node.node.txsender import TxSender

from test_node import devnet, http_get, status, wait_until  # noqa: F401  (devnet is a fixture)

CLI = [sys.executable, "-m", "alignment_node.cli"]


@pytest.fixture
def tmpfs():
    """mount(size, path): a tmpfs of ``size`` at ``path`` (root only), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root: a real full disk cannot be made here")
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                             text=True)
        if out.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {out.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int = 0) -> int:
    """Append zeros to ``path`` until only ``leave`` bytes are free on its file system (0: until the kernel
    refuses even 512 bytes with ENOSPC). Returns the bytes free afterwards."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (64 * 1024, 4096, 512):
            while shutil.disk_usage(path.parent).free - chunk >= leave:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return shutil.disk_usage(path.parent).free


def journal(db: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT purpose, epoch, nonce, tx_hash, state FROM tx_journal ORDER BY id").fetchall()
    finally:
        con.close()


def nonce_of(net, address: str, block: str = "pending") -> int:
    return int(net.anvil.rpc("eth_getTransactionCount", [address, block]), 16)


def log_lines(op, text: str) -> list[str]:
    """The node's log lines (node.out) that contain ``text``, not counting the logging module's own complaints
    about node.log on the full disk."""
    lines = (op.directory / "node.out").read_text(errors="replace").splitlines()
    return [line for line in lines if text in line and " alignment_node." in line]


# ---------------------------------------------------------------------------------------------------- full disk


def test_a_full_disk_stops_transactions_says_why_loses_nothing_and_resumes(devnet, tmpfs, monkeypatch):
    net = devnet()
    op = net.operators[0]
    data = tmpfs(op.directory / "data", "4m")
    monkeypatch.setenv("ZG_ALIGNMENT_NODE_DATA_MIN_FREE_MB", "1")  # the node inherits it
    net.start_nodes()
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("licenses") == 3, what="first heartbeat")
    wait_until(lambda: http_get(op.url() + "/health")[0] == 200, what="200 from /health")
    before = journal(data / "node.sqlite")
    assert [(r[0], r[4]) for r in before] == [("heartbeat", "mined")]

    # Low first: a warning (206, and /status says it), the node still works.
    filler = data / "filler"
    free = fill(filler, leave=400 * 1024)
    assert free < 1024 * 1024
    code, body = wait_until(lambda: (lambda r: r if r[0] == 206 else None)(http_get(op.url() + "/health")),
                            what="206 for low disk space")
    assert any(r.startswith(f"low disk space: {data}, ") for r in json.loads(body)["reasons"]), body
    assert status(op)["disk"]["low"] is True and status(op)["disk"]["full"] is None

    # Full: the next epoch's heartbeat cannot be journaled, so it is not sent.
    assert fill(filler) < 4096
    epoch = status(op)["epoch"]
    nonce = nonce_of(net, op.address)
    net.anvil.mine(net.plan.epoch_length)
    code, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(op.url() + "/health")),
                            what="503 for a full disk")
    [reason] = json.loads(body)["reasons"]
    assert reason.startswith(f"disk full: {data}, ") and " bytes free" in reason, reason
    wait_until(lambda: (status(op)["disk"]["full"] or "").startswith(f"disk full: {data}"), what="/status disk full")
    for _ in range(3):  # more ticks and blocks: still nothing sent, still one log line
        net.anvil.mine(1)
        time.sleep(3 * net.plan.poll_interval)
    assert nonce_of(net, op.address) == nonce, "a transaction was sent while its journal could not be written"
    assert http_get(op.url() + "/health")[0] == 503
    assert journal(data / "node.sqlite") == before  # nothing journaled is lost (nor half-written)
    assert len(log_lines(op, "ALERT disk full: ")) == 1, log_lines(op, "disk full")

    # Space returns: the node notices by itself and sends the epoch's heartbeat.
    filler.unlink()
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("epoch", 0) > epoch, timeout=60,
               what="the heartbeat of the new epoch once space is back")
    wait_until(lambda: http_get(op.url() + "/health")[0] == 200, what="200 again")
    assert nonce_of(net, op.address, "latest") == nonce + 1
    after = journal(data / "node.sqlite")
    assert after[:len(before)] == before
    assert [(r[0], r[4]) for r in after[len(before):]] == [("heartbeat", "mined")]
    assert len(log_lines(op, "disk space is back: ")) == 1
    assert len(log_lines(op, "ALERT disk full: ")) == 1
    net.stop_nodes()


def test_the_sender_never_broadcasts_what_it_could_not_journal(anvil, tmpfs, tmp_path):
    """TxSender and the store on a full tmpfs, against a real anvil: the transaction is signed but, its journal row
    refused, never broadcast; later sends stop before signing; once space is back sending goes on."""
    data = tmpfs(tmp_path / "data", "2m")
    signer = LocalSigner(secrets.token_bytes(32))
    anvil.rpc("anvil_setBalance", [signer.address, hex(10**20)])
    to = LocalSigner(secrets.token_bytes(32)).address

    async def go():
        async with RpcClient(anvil.url) as rpc:
            store = open_data_dir(data)
            sender = TxSender(rpc, signer, store)
            first = await sender.send("transfer", to, b"", epoch=1)
            filler = data / "filler"
            fill(filler)
            with pytest.raises(DiskFull, match=f"^disk full: {data}, "):
                await sender.send("transfer", to, b"", epoch=2)
            assert await rpc.get_transaction_count(signer.address, "pending") == 1  # nothing reached the pool
            assert store.full is not None
            with pytest.raises(DiskFull):  # stopped before signing now
                await sender.send("transfer", to, b"", epoch=2)
            assert not store.retry_write()
            with pytest.raises(CliError, match=r"^disk full: .* cannot open its store"):
                open_data_dir(data / "second")  # a node started on the full disk says so in one line
            filler.unlink()
            assert store.retry_write() and store.full is None
            second = await sender.send("transfer", to, b"", epoch=2)
            assert await rpc.get_transaction_count(signer.address, "latest") == 2
            store.close()
            store = open_data_dir(data)
            hashes = [first["transactionHash"], second["transactionHash"]]
            assert [store.entry(h).state for h in hashes] == ["mined", "mined"]
            assert store.counts() == {"mined": 2}
            store.close()

    asyncio.run(go())


# ---------------------------------------------------------------------------------------------- corrupt files


def garbage_header(db: bytes) -> bytes:
    return secrets.token_bytes(100) + db[100:]


def truncated(db: bytes) -> bytes:
    return db[: len(db) // 2 + 1000]


def page_middle_overwritten(db: bytes) -> bytes:
    """16 bytes of 0xff in the middle of the cells of the page of the journal's tx_hash index: a key no longer
    matches its row (SQLite keeps no checksums, so a changed byte inside a value it does not index goes unseen)."""
    page_size = struct.unpack(">H", db[16:18])[0] or 65536
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.sqlite"
        copy.write_bytes(db)
        con = sqlite3.connect(copy)
        [root] = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                             ("sqlite_autoindex_tx_journal_1",)).fetchone()
        con.close()
    page = (root - 1) * page_size
    content_start = struct.unpack(">H", db[page + 5:page + 7])[0]  # from the b-tree page header
    middle = page + (content_start + page_size) // 2 - 8
    return db[:middle] + b"\xff" * 16 + db[middle + 16:]


def start(op) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["start", "--config", str(op.directory / "node.toml")], capture_output=True,
                          text=True, timeout=60)


def test_a_corrupt_database_is_refused_at_start_named_and_left_untouched(devnet):
    net = devnet()
    op = net.operators[0]
    net.start_nodes()
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("licenses") == 3, what="first heartbeat")
    net.stop_nodes()
    data = op.directory / "data"
    db = data / "node.sqlite"
    assert not Path(str(db) + "-wal").exists()  # a clean stop checkpoints the WAL into the file
    pristine = db.read_bytes()
    rows = journal(db)

    for damage in (garbage_header, truncated, page_middle_overwritten):
        broken = damage(pristine)
        db.write_bytes(broken)
        out = start(op)
        assert out.returncode == 1, (damage.__name__, out.stdout, out.stderr)
        [line] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert line.startswith(f"error: database {db} is corrupt ("), (damage.__name__, line)
        assert "move it (with its -wal and -shm files) away" in line and "not revealed yet are lost" in line
        assert db.read_bytes() == broken, f"{damage.__name__}: the node changed the file it refused"
        assert not any(data.glob("node.sqlite.v*.bak"))  # and it made no copy or new store of it either
        with pytest.raises(StoreCorrupt):
            open_data_dir(data)

    # With the copy an upgrade keeps, the message names it; put back, the node starts on it.
    backup = data / "node.sqlite.v1.bak"
    backup.write_bytes(pristine)
    out = start(op)
    assert out.returncode == 1 and f"restore the copy the last upgrade kept ({backup}) over it" in out.stderr
    shutil.copyfile(backup, db)
    net.start_nodes()
    wait_until(lambda: http_get(op.url() + "/health")[0] == 200, what="200 on the restored database")
    assert journal(db)[:len(rows)] == rows
    net.stop_nodes()


def test_a_model_target_state_file_is_never_left_half_written_on_a_full_disk(tmpfs, tmp_path):
    """The MODEL worker's per-target state (data_dir/model-state) is replaced whole or not at all."""
    from alignment_node.models.worker import save_state

    d = tmpfs(tmp_path / "model-state", "256k")
    state = d / "drift-1-00.json"
    save_state(state, json.dumps({"epoch": 1}))
    fill(d / "filler")
    save_state(state, json.dumps({"epoch": 2, "pad": "x" * 300_000}))  # does not fit: logged, not raised
    assert json.loads(state.read_text()) == {"epoch": 1}
    assert sorted(p.name for p in d.iterdir()) == ["drift-1-00.json", "filler"]
    (d / "filler").unlink()
    save_state(state, json.dumps({"epoch": 2}))
    assert json.loads(state.read_text()) == {"epoch": 2}
