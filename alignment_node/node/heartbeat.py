"""Presence (issue 16): once per epoch, one ``heartbeat()`` transaction makes the operator present, and with it
every license listed under it in that epoch active; never twice (the journal and the on-chain presence both say
so, and an ``AlreadyPresent`` revert means another run of this node got there first)."""

from __future__ import annotations

import logging

from ..chain.contracts import ContractRevert
from .chainguard import lost_to_reorg, resent
from .parts import NodeParts, TickView
from .txsender import EPOCH_TOUCH_GAS

log = logging.getLogger("alignment_node.node")

WATCH_BLOCKS = 8  # blocks after the heartbeat during which presence is re-read (reorgs of up to this depth)


class HeartbeatService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._epoch: int | None = None  # the epoch the operator is already present in
        self._index: int | None = None  # the operator's registry index, once known (it never changes)
        self._seen = 0  # the head at which the operator was first seen present in ``_epoch``

    async def operator_index(self) -> int:
        """The operator's index in the registry (0 while it is not registered)."""
        if not self._index:
            self._index, _commission = await self.p.c["OperatorRegistry"].call("operatorIndexOf",
                                                                                self.p.signer.address)
        return self._index

    async def tick(self, view: TickView) -> None:
        p, epoch = self.p, view.epoch
        if not p.cfg.heartbeat.enabled:
            return
        if self._epoch == epoch:
            if view.head - self._seen > WATCH_BLOCKS or await self._still_present(view):
                return
        if any(e.state in ("signed", "sent") for e in p.store.live_for("heartbeat", epoch)):
            await p.sender.recover()
        index = await self.operator_index()
        if not index:
            return  # not a registered operator (yet): nothing can be listed under it
        vault = p.c["RewardVault"]
        if await vault.call("isPresent", index, epoch):
            self._mark_present(view)
            return
        # Licenses delegated this epoch are listed from the next one: nothing to be present for until then.
        count = await p.c["OperatorRegistry"].call("listedCountAt", index, epoch)
        if not count:
            return
        protocol = p.c["AuditProtocol"]
        try:
            receipt = await p.sender.send("heartbeat", protocol.address, protocol.encode("heartbeat"), epoch=epoch,
                                          meta={"licenses": count}, expected_errors=("AlreadyPresent",),
                                          gas_extra=EPOCH_TOUCH_GAS)
        except ContractRevert as exc:
            if exc.error_name != "AlreadyPresent":
                raise
            # A heartbeat of this epoch was mined after the read above (a previous run's, re-broadcast).
            log.info("epoch %d: already present", epoch)
            self._mark_present(view)
            return
        p.metrics.heartbeat_txs.inc()
        p.metrics.heartbeats.inc(count)
        p.metrics.last_heartbeat_epoch.set(epoch)
        p.snapshot.last_heartbeat = {"epoch": epoch, "licenses": count, "tx": receipt["transactionHash"],
                                     "block": int(receipt["blockNumber"], 16)}
        self._mark_present(view)
        log.info("heartbeat for %d licenses in epoch %d (tx %s)", count, epoch, receipt["transactionHash"])

    async def _still_present(self, view: TickView) -> bool:
        """Presence is re-read for WATCH_BLOCKS blocks after it was first seen: a reorg may drop the heartbeat
        (chainguard.py), and the commit needs it."""
        if (await self.p.c["RewardVault"].call("isPresent", await self.operator_index(), view.epoch)
                or not await lost_to_reorg(self.p, "heartbeat", view.epoch)):
            return True
        log.warning("epoch %d: a reorg dropped the heartbeat: sending it again", view.epoch)
        resent(self.p, "heartbeat")
        self._epoch = None
        return False

    def _mark_present(self, view: TickView) -> None:
        """The operator is present in the view's epoch: its listed licenses are active (the services after this
        one in the tick see it before the next license refresh)."""
        for v in view.licenses.values():
            if v.get("listed"):
                v["active_now"] = True
                v["active_epoch"] = view.epoch
        if self._epoch != view.epoch:
            self._epoch, self._seen = view.epoch, view.head
