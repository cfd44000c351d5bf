"""Free space in the data directory: a full disk stops the node's transactions, a low one warns first.

The store notices a full disk itself (store.py): a write that fails with SQLITE_FULL or ENOSPC raises DiskFull,
changes nothing, sets ``store.full`` and logs one critical line; TxSender then signs and sends nothing (a
transaction is never sent unless its journal row was written first) and the node's services wait. This service,
every tick, measures the free space (``snapshot.disk``: /status, /health, the ``disk_low`` and ``disk_full``
alerts) and, while the store is full, retries one small write once at least RESUME_FREE_BYTES are free: when it
works the node carries on by itself, from what it had journaled.
"""

from __future__ import annotations

import logging

from .parts import NodeParts
from .store import free_bytes

log = logging.getLogger("alignment_node.disk")

MIB = 1024 * 1024
RESUME_FREE_BYTES = 64 * 1024  # a full store is retried only with this much free (no retry on a disk still at 0)


def low_space_reason(disk: dict) -> str | None:
    """The low-space warning of a ``snapshot.disk``, None when there is enough room (or it is not measured)."""
    if not disk.get("low"):
        return None
    return (f"low disk space: {disk['path']}, {disk['free_bytes']} bytes free (below data_min_free_mb = "
            f"{disk['min_free_bytes'] // MIB}): free some before it is full, or the node stops sending transactions")


class DiskService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self.min_free = int(parts.cfg.data_min_free_mb * MIB)
        self._low_logged = False

    def tick(self) -> None:
        """Measure the free space, warn once when it drops below ``data_min_free_mb``, retry a full store."""
        p = self.p
        free = free_bytes(p.data_dir)
        if p.store.full is not None and free >= RESUME_FREE_BYTES:
            p.store.retry_write()
        low = free < self.min_free
        if low and not self._low_logged and p.store.full is None:
            log.warning("low disk space: %s, %d bytes free (data_min_free_mb = %d): the node stops sending "
                        "transactions when it is full", p.data_dir, free, self.min_free // MIB)
        self._low_logged = low
        p.snapshot.disk = {"path": str(p.data_dir), "free_bytes": free, "min_free_bytes": self.min_free,
                           "low": low, "full": p.store.full}
