"""The node's SQLite store (WAL) in its data directory: the transaction journal and small durable state.

The journal is what makes a crash harmless: a transaction is written here, signed, *before* it is sent, so a
restart finds it and either sees its receipt, re-broadcasts the very same bytes (same hash: never a second
transaction), or learns its nonce was used by another transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS tx_journal (
    id INTEGER PRIMARY KEY,
    nonce INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    epoch INTEGER,
    tx_hash TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('signed', 'sent', 'mined', 'reverted', 'dropped')),
    meta TEXT NOT NULL DEFAULT '{}',
    block INTEGER,
    gas_used INTEGER,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tx_journal_state ON tx_journal(state);
CREATE INDEX IF NOT EXISTS tx_journal_purpose ON tx_journal(purpose, epoch);
CREATE TABLE IF NOT EXISTS evidence (
    root TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    target INTEGER NOT NULL,
    verdict INTEGER NOT NULL,
    bundle BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_epoch ON evidence(epoch);
CREATE TABLE IF NOT EXISTS openings (
    epoch INTEGER NOT NULL,
    license INTEGER NOT NULL,
    salt TEXT NOT NULL,
    targets TEXT NOT NULL,
    verdicts TEXT NOT NULL,
    roots TEXT NOT NULL,
    commitment TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('prepared', 'committed', 'revealed', 'missed')),
    reason TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (epoch, license)
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

OPEN_STATES = ("signed", "sent")


@dataclass(frozen=True)
class JournalEntry:
    id: int
    nonce: int
    purpose: str
    epoch: int | None
    tx_hash: str
    raw: bytes
    state: str
    meta: dict
    block: int | None
    gas_used: int | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "JournalEntry":
        return cls(
            id=row["id"],
            nonce=row["nonce"],
            purpose=row["purpose"],
            epoch=row["epoch"],
            tx_hash=row["tx_hash"],
            raw=bytes(row["raw"]),
            state=row["state"],
            meta=json.loads(row["meta"]),
            block=row["block"],
            gas_used=row["gas_used"],
            error=row["error"],
        )


class Store:
    """One SQLite database file; every write is its own committed, fsynced transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self):
        """Group writes into one committed (and fsynced) transaction: one fsync instead of one per row."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def reader(self) -> "StoreReader":
        """A separate read-only view (for the API's threads; WAL lets it read while the node writes)."""
        return StoreReader(self.path)

    # ------------------------------------------------------------------------------------- journal

    def record_signed(
        self, nonce: int, purpose: str, epoch: int | None, tx_hash: str, raw: bytes, meta: dict | None = None
    ) -> JournalEntry:
        """Durably record a signed transaction before it is sent."""
        now = time.time()
        self.db.execute(
            "INSERT INTO tx_journal (nonce, purpose, epoch, tx_hash, raw, state, meta, created, updated)"
            " VALUES (?, ?, ?, ?, ?, 'signed', ?, ?, ?)"
            # The same bytes signed again after they were dropped (e.g. no gas money then): live again.
            " ON CONFLICT(tx_hash) DO UPDATE SET state = 'signed', error = NULL, updated = excluded.updated"
            " WHERE state = 'dropped'",
            (nonce, purpose, epoch, tx_hash, raw, json.dumps(meta or {}, sort_keys=True), now, now),
        )
        return self.entry(tx_hash)

    def mark(self, tx_hash: str, state: str, block: int | None = None, gas_used: int | None = None,
             error: str | None = None) -> None:
        """Move a journal entry to ``state`` (sent, mined, reverted, dropped)."""
        self.db.execute(
            "UPDATE tx_journal SET state = ?, block = COALESCE(?, block), gas_used = COALESCE(?, gas_used),"
            " error = COALESCE(?, error), updated = ? WHERE tx_hash = ?",
            (state, block, gas_used, error, time.time(), tx_hash),
        )

    def entry(self, tx_hash: str) -> JournalEntry:
        row = self.db.execute("SELECT * FROM tx_journal WHERE tx_hash = ?", (tx_hash,)).fetchone()
        if row is None:
            raise KeyError(tx_hash)
        return JournalEntry.from_row(row)

    def open_entries(self) -> list[JournalEntry]:
        """Signed or sent transactions whose fate is not known yet, oldest nonce first."""
        rows = self.db.execute(
            "SELECT * FROM tx_journal WHERE state IN ('signed', 'sent') ORDER BY nonce, id"
        ).fetchall()
        return [JournalEntry.from_row(r) for r in rows]

    def live_for(self, purpose: str, epoch: int) -> list[JournalEntry]:
        """Transactions for (purpose, epoch) that are pending or mined: what must not be sent again."""
        rows = self.db.execute(
            "SELECT * FROM tx_journal WHERE purpose = ? AND epoch = ? AND state IN ('signed', 'sent', 'mined')",
            (purpose, epoch),
        ).fetchall()
        return [JournalEntry.from_row(r) for r in rows]

    def highest_nonce(self) -> int | None:
        """Highest nonce the journal ever signed (None if none)."""
        row = self.db.execute("SELECT MAX(nonce) AS n FROM tx_journal WHERE state != 'dropped'").fetchone()
        return row["n"]

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) AS n FROM tx_journal GROUP BY state").fetchall()
        return {r["state"]: r["n"] for r in rows}

    # ------------------------------------------------------------------------------------ evidence

    def put_evidence(self, root: str, epoch: int, target: int, verdict: int, bundle: bytes) -> None:
        """Store an evidence bundle's exact bytes under its root (idempotent)."""
        self.db.execute(
            "INSERT OR IGNORE INTO evidence (root, epoch, target, verdict, bundle, created) VALUES (?, ?, ?, ?, ?, ?)",
            (root, epoch, target, verdict, bundle, time.time()),
        )

    # ------------------------------------------------------------------------------------- openings

    def put_opening(self, epoch: int, license_id: int, salt: str, targets: list[int], verdicts: list[int],
                    roots: list[str], commitment: str) -> None:
        """Durably keep what a commitment opens to, before the commit transaction is sent."""
        self.db.execute(
            "INSERT INTO openings (epoch, license, salt, targets, verdicts, roots, commitment, state, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'prepared', ?)"
            " ON CONFLICT(epoch, license) DO UPDATE SET salt = excluded.salt, targets = excluded.targets,"
            " verdicts = excluded.verdicts, roots = excluded.roots, commitment = excluded.commitment,"
            " state = 'prepared', updated = excluded.updated WHERE state = 'prepared'",
            (epoch, license_id, salt, json.dumps(targets), json.dumps(verdicts), json.dumps(roots), commitment,
             time.time()),
        )

    def openings(self, epoch: int, state: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM openings WHERE epoch = ?", [epoch]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        out = []
        for r in self.db.execute(sql + " ORDER BY license", args).fetchall():
            d = dict(r)
            for k in ("targets", "verdicts", "roots"):
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def set_opening_state(self, epoch: int, license_ids: list[int], state: str, reason: str | None = None) -> None:
        self.db.executemany(
            "UPDATE openings SET state = ?, reason = ?, updated = ? WHERE epoch = ? AND license = ?",
            [(state, reason, time.time(), epoch, lic) for lic in license_ids],
        )

    # ------------------------------------------------------------------------------------------ kv

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def put(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )


TX_COLUMNS = ("purpose", "epoch", "nonce", "tx_hash", "state", "block", "gas_used", "error", "created")


class StoreReader:
    """Read-only queries of a Store's file on a connection of its own (one per API thread)."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.con.row_factory = sqlite3.Row

    def evidence(self, root: str) -> bytes | None:
        """The exact bytes of the bundle stored under ``root`` (0x + 64 lowercase hex), or None."""
        row = self.con.execute("SELECT bundle FROM evidence WHERE root = ?", (root,)).fetchone()
        return None if row is None else bytes(row["bundle"])

    def recent_transactions(self, limit: int = 20) -> list[dict]:
        """The journal's last ``limit`` transactions, newest first."""
        rows = self.con.execute(f"SELECT {', '.join(TX_COLUMNS)} FROM tx_journal ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [{k: r[k] for k in TX_COLUMNS} for r in rows]

    def close(self) -> None:
        self.con.close()
