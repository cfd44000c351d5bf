"""The node's SQLite store (WAL) in its data directory: the transaction journal and small durable state.

The journal is what makes a crash harmless: a transaction is written here, signed, *before* it is sent, so a
restart finds it and either sees its receipt, re-broadcasts the very same bytes (same hash: never a second
transaction), or learns its nonce was used by another transaction.

Upgrades (docs/node.md, "Upgrades"): the database carries its schema version in ``PRAGMA user_version`` (0: the
unversioned layout of every release before versioning), the data directory a VERSION file (``DATA_FORMAT_VERSION``
and the release that last wrote it). Opening a store runs the MIGRATIONS it lacks, in order, all in one
transaction, after a copy of the file is kept beside it; a store or data directory of a newer release is refused.

Faults (docs/node.md, "Disk full and corrupt databases"): a database file that SQLite finds damaged at start
(``PRAGMA quick_check``, or "file is not a database") is refused with StoreCorrupt, never recreated or changed. A
write that fails for lack of space (SQLITE_FULL, ENOSPC) raises DiskFull, changes nothing, sets ``Store.full`` and
says so once in the log; ``retry_write`` (disk.py, every tick) clears it once a small write works again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import CliError
from .dbfaults import DiskFull, StoreCorrupt, check_integrity, free_bytes, is_disk_full  # noqa: F401 (re-exported)

# The layout of schema version 1: the tables of every release before versioning (user_version 0), unchanged.
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

DATA_FORMAT_VERSION = 1  # the data directory's layout: node.sqlite, node.log, baselines/, model-state/
VERSION_FILE = "VERSION"
RELEASE_KEY = "store.release"  # kv: the release that last migrated (or created) the database


class StoreVersionError(CliError):
    """A database or data directory this release cannot use: written by a newer release, unreadable, or one whose
    migration failed (and was rolled back)."""


log = logging.getLogger("alignment_node.store")
PROBE_KEY = "disk.probe"  # kv: the small write retry_write makes while the disk is full


def _schema_v1(db: sqlite3.Connection) -> None:
    """The tables of the releases before versioning; a database of those releases already has them all."""
    for statement in filter(str.strip, SCHEMA.split(";")):
        db.execute(statement)


def _journal_nonce_index(db: sqlite3.Connection) -> None:
    """An index on the journal's nonces: highest_nonce() runs before every transaction, and a node that runs for
    months has a journal of every transaction it ever sent."""
    db.execute("CREATE INDEX IF NOT EXISTS tx_journal_nonce ON tx_journal(nonce)")


# MIGRATIONS[i] takes a database from schema version i to i + 1. Each is idempotent (safe on a database that
# already has what it adds) and runs inside the one transaction of Store.migrate, so it must not commit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_schema_v1, _journal_nonce_index]


def schema_version() -> int:
    """The schema version this release writes: the number of migrations."""
    return len(MIGRATIONS)


def read_version_file(data_dir: Path) -> dict | None:
    """The data directory's VERSION file ({"format", "schema", "release"}), None when there is none (a data
    directory of a release before versioning). Raises StoreVersionError when it is not one."""
    path = Path(data_dir) / VERSION_FILE
    try:
        doc = json.loads(path.read_text())
        if not (isinstance(doc, dict) and isinstance(doc.get("format"), int) and isinstance(doc.get("release"), str)):
            raise ValueError("expected {\"format\": <int>, \"schema\": <int>, \"release\": \"X.Y.Z\"}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StoreVersionError(f"{path}: not a data directory VERSION file ({exc}); remove it and the node "
                                "writes it again (the database's own schema version is still checked)") from None
    return doc


def open_data_dir(data_dir: str | Path) -> "Store":
    """The node's store in ``data_dir``, after checking and stamping the directory's VERSION file: a directory of
    a newer data format is refused before anything in it is touched."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    found = read_version_file(data_dir)
    if found is not None and found["format"] > DATA_FORMAT_VERSION:
        raise StoreVersionError(
            f"data directory {data_dir} (format {found['format']}) was written by alignment-node {found['release']}; "
            f"this is alignment-node {__version__} (format {DATA_FORMAT_VERSION}): upgrade alignment-node")
    try:
        store = Store(data_dir / "node.sqlite")
        stamp = {"format": DATA_FORMAT_VERSION, "schema": schema_version(), "release": __version__}
        if found != stamp:
            tmp = data_dir / (VERSION_FILE + ".tmp")
            tmp.write_text(json.dumps(stamp, sort_keys=True) + "\n")
            tmp.replace(data_dir / VERSION_FILE)
    except (sqlite3.OperationalError, OSError) as exc:
        if not is_disk_full(exc):
            raise
        raise CliError(f"disk full: {data_dir}, {free_bytes(data_dir)} bytes free: the node cannot open its store "
                       f"({exc}); free some space and start it again", "DiskFull") from None
    return store

REORG_NOTE = "dropped by a reorg"  # how a journal row whose receipt a reorg took starts its error
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
        self.full: str | None = None  # why the last write failed for lack of space; None: writable
        check_integrity(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.migrate()

    def migrate(self) -> None:
        """Bring the database to this release's schema version (see MIGRATIONS): refuse a newer one; else keep a
        copy of the file (``<name>.v<old>.bak``) and run the missing migrations in one transaction, so a failure
        (or a crash) leaves the database as it was and the next start runs them again."""
        found, target = self.db.execute("PRAGMA user_version").fetchone()[0], schema_version()
        if found > target:
            release = self._release()
            self.db.close()
            raise StoreVersionError(
                f"database {self.path} (schema {found}) was written by alignment-node {release}; this is "
                f"alignment-node {__version__} (schema {target}): upgrade alignment-node")
        if found == target:
            return
        kept = ""
        if self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            backup_path = self.path.with_name(f"{self.path.name}.v{found}.bak")
            backup = sqlite3.connect(backup_path)
            with backup:
                self.db.backup(backup)
            backup.close()
            kept = f" (a copy of it is {backup_path.name})"
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for version in range(found, target):
                MIGRATIONS[version](self.db)
            self.db.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                            " value = excluded.value", (RELEASE_KEY, json.dumps(__version__)))
            self.db.execute(f"PRAGMA user_version = {target:d}")
        except BaseException as exc:
            self.db.execute("ROLLBACK")
            self.db.close()
            if isinstance(exc, Exception):
                raise StoreVersionError(
                    f"database {self.path}: migration from schema {found} to {target} failed and changed "
                    f"nothing{kept}: {exc.__class__.__name__}: {exc}") from exc
            raise
        self.db.execute("COMMIT")

    def _release(self) -> str:
        """The release that last migrated this database (best effort: a newer schema may keep it elsewhere)."""
        try:
            row = self.db.execute("SELECT value FROM kv WHERE key = ?", (RELEASE_KEY,)).fetchone()
        except sqlite3.Error:
            row = None
        return json.loads(row[0]) if row else "a newer release"

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self):
        """Group writes into one committed (and fsynced) transaction: one fsync instead of one per row."""
        with self._writing():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back already (a full disk at COMMIT)
                    self.db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _writing(self):
        """Turn a write's "disk full" into DiskFull (SQLite wrote nothing of it) and note it in ``full``, logging it
        once: the node sends no transaction until ``retry_write`` finds space again."""
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            if not is_disk_full(exc):
                raise
            first = self.full is None
            self.full = f"disk full: {self.path.parent}, {free_bytes(self.path.parent)} bytes free"
            if first:
                log.critical("ALERT %s (%s): no transaction is sent until space returns; nothing journaled is lost",
                             self.full, exc)
            raise DiskFull(self.full) from exc

    def retry_write(self) -> bool:
        """While ``full``: one small write to see whether space is back; True (and ``full`` cleared) if it worked."""
        if self.full is None:
            return True
        try:
            self.put(PROBE_KEY, time.time())
        except DiskFull:
            return False
        log.warning("disk space is back: %s, %d bytes free: sending transactions again", self.path.parent,
                    free_bytes(self.path.parent))
        self.full = None
        return True

    def evidence(self, root: str) -> bytes | None:
        """The exact bytes of the bundle stored under ``root`` (0x + 64 lowercase hex), or None."""
        return _evidence(self.db, root)

    def reader(self) -> "StoreReader":
        """A separate read-only view (for the API's threads; WAL lets it read while the node writes)."""
        return StoreReader(self.path)

    # ------------------------------------------------------------------------------------- journal

    def record_signed(
        self, nonce: int, purpose: str, epoch: int | None, tx_hash: str, raw: bytes, meta: dict | None = None
    ) -> JournalEntry:
        """Durably record a signed transaction before it is sent."""
        now = time.time()
        with self._writing():
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
        with self._writing():
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

    def for_nonce(self, nonce: int) -> list[JournalEntry]:
        """Every transaction signed on ``nonce`` (replacements too), oldest first."""
        rows = self.db.execute("SELECT * FROM tx_journal WHERE nonce = ? ORDER BY id", (nonce,)).fetchall()
        return [JournalEntry.from_row(r) for r in rows]

    def live_for(self, purpose: str, epoch: int) -> list[JournalEntry]:
        """Transactions for (purpose, epoch) that are pending or mined: what must not be sent again."""
        rows = self.db.execute(
            "SELECT * FROM tx_journal WHERE purpose = ? AND epoch = ? AND state IN ('signed', 'sent', 'mined')",
            (purpose, epoch),
        ).fetchall()
        return [JournalEntry.from_row(r) for r in rows]

    def for_duty(self, purpose: str, epoch: int) -> list[JournalEntry]:
        """Every transaction signed for (purpose, epoch), whatever became of it, oldest first."""
        rows = self.db.execute("SELECT * FROM tx_journal WHERE purpose = ? AND epoch = ? ORDER BY id",
                               (purpose, epoch)).fetchall()
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
        with self._writing():
            self.db.execute(
                "INSERT OR IGNORE INTO evidence (root, epoch, target, verdict, bundle, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (root, epoch, target, verdict, bundle, time.time()),
            )

    # ------------------------------------------------------------------------------------- openings

    def put_opening(self, epoch: int, license_id: int, salt: str, targets: list[int], verdicts: list[int],
                    roots: list[str], commitment: str) -> None:
        """Durably keep what a commitment opens to, before the commit transaction is sent."""
        with self._writing():
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
        with self._writing():
            self.db.executemany(
                "UPDATE openings SET state = ?, reason = ?, updated = ? WHERE epoch = ? AND license = ?",
                [(state, reason, time.time(), epoch, lic) for lic in license_ids],
            )

    # ------------------------------------------------------------------------------------------ kv

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def put(self, key: str, value: Any) -> None:
        with self._writing():
            self.db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, sort_keys=True)),
            )


TX_COLUMNS = ("purpose", "epoch", "nonce", "tx_hash", "state", "block", "gas_used", "error", "created")


def _evidence(db: sqlite3.Connection, root: str) -> bytes | None:
    row = db.execute("SELECT bundle FROM evidence WHERE root = ?", (root,)).fetchone()
    return None if row is None else bytes(row["bundle"])


class StoreReader:
    """Read-only queries of a Store's file on a connection of its own (one per API thread)."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self.con.row_factory = sqlite3.Row

    def evidence(self, root: str) -> bytes | None:
        """The exact bytes of the bundle stored under ``root`` (0x + 64 lowercase hex), or None."""
        return _evidence(self.con, root)

    def evidence_roots(self, epoch: int, target: int) -> list[str]:
        """The roots of the bundles stored for (``epoch``, ``target``), in order."""
        rows = self.con.execute("SELECT root FROM evidence WHERE epoch = ? AND target = ? ORDER BY root",
                                (epoch, target)).fetchall()
        return [r["root"] for r in rows]

    def recent_transactions(self, limit: int = 20) -> list[dict]:
        """The journal's last ``limit`` transactions, newest first."""
        rows = self.con.execute(f"SELECT {', '.join(TX_COLUMNS)} FROM tx_journal ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [{k: r[k] for k in TX_COLUMNS} for r in rows]

    def close(self) -> None:
        self.con.close()
