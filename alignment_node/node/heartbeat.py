"""Presence: once per epoch, one heartbeat transaction for every delegated, unsuspended license not yet
active, batched; never twice (the journal and the on-chain state both say so)."""

from __future__ import annotations

import logging

from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.node")

HEARTBEAT_BATCH = 200  # licenses per heartbeat transaction (keeps one transaction well under a block's gas)


class HeartbeatService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._epoch: int | None = None  # the epoch every license already had its heartbeat in

    async def tick(self, view: TickView) -> None:
        p, epoch = self.p, view.epoch
        if not p.cfg.heartbeat.enabled or self._epoch == epoch:
            return
        if any(e.state in ("signed", "sent") for e in p.store.live_for("heartbeat", epoch)):
            await p.sender.recover()
        licenses = view.licenses
        due = [i for i, v in licenses.items()
               if v["state"] == "delegated" and not v["active_now"] and not v["suspended_until"]]
        if not due:
            if any(v["active_now"] for v in licenses.values()):
                self._epoch = epoch
            return
        protocol = p.c["AuditProtocol"]
        for i in range(0, len(due), HEARTBEAT_BATCH):
            batch = due[i:i + HEARTBEAT_BATCH]
            receipt = await p.sender.send("heartbeat", protocol.address, protocol.encode("heartbeat", batch),
                                          epoch=epoch, meta={"licenses": batch})
            p.metrics.heartbeat_txs.inc()
            p.metrics.heartbeats.inc(len(batch))
            p.metrics.last_heartbeat_epoch.set(epoch)
            p.snapshot.last_heartbeat = {"epoch": epoch, "licenses": len(batch), "tx": receipt["transactionHash"],
                                         "block": int(receipt["blockNumber"], 16)}
            for token_id in batch:
                licenses[token_id]["active_now"] = True
                licenses[token_id]["active_epoch"] = epoch
            log.info("heartbeat for %d licenses in epoch %d (tx %s)", len(batch), epoch, receipt["transactionHash"])
        self._epoch = epoch
