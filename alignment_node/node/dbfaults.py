"""What can go wrong with the store's file system and file (docs/node.md, "Disk full and corrupt databases"): a full
disk (DiskFull, raised by the store's writes, handled by disk.py and TxSender) and a damaged database file
(StoreCorrupt, from check_integrity before the store opens it for writing)."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

from ..errors import CliError

INTEGRITY_CHECK_MAX_BYTES = 256 * 1024 * 1024  # a bigger database is checked at start with the faster quick_check


class StoreCorrupt(CliError):
    """The database file is damaged: the node refuses to start on it (and never recreates it)."""


class DiskFull(Exception):
    """A write to the data directory failed for lack of space; nothing of it was written."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full: SQLite's SQLITE_FULL, or ENOSPC/EDQUOT."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def check_integrity(path: Path) -> None:
    """Refuse a damaged database file before anything writes to it: it is opened read-only and SQLite's
    integrity_check (quick_check, which skips comparing indexes with their tables, above INTEGRITY_CHECK_MAX_BYTES)
    must answer "ok". A missing or empty file is a new store. Raises StoreCorrupt (one line: the file and what to
    do). SQLite keeps no checksums: a changed byte inside a row's value (not its structure) goes unseen."""
    if not path.exists() or path.stat().st_size == 0:
        return
    check = "integrity_check" if path.stat().st_size <= INTEGRITY_CHECK_MAX_BYTES else "quick_check"
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            rows = [line for r in con.execute(f"PRAGMA {check}").fetchall() for line in str(r[0]).splitlines()
                    if line.strip() and not line.startswith("*** in database")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            raise CliError(f"database {path} cannot be opened: {exc}") from None
        problem = str(exc)
    else:
        if rows == ["ok"]:
            return
        problem = "; ".join(rows[:3]) + (f" (and {len(rows) - 3} more)" if len(rows) > 3 else "")
    backups = sorted(path.parent.glob(path.name + ".v*.bak"), key=lambda p: p.stat().st_mtime)
    restore = (f"restore the copy the last upgrade kept ({backups[-1]}) over it, or " if backups else "")
    raise StoreCorrupt(
        f"database {path} is corrupt ({problem}); it was left as it is: {restore}move it (with its -wal and -shm "
        "files) away and start again with an empty store, knowing that the commitments it held and had not revealed "
        "yet are lost (those licenses miss their reveals)", "StoreCorrupt")
