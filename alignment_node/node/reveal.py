"""Reveal (section 7): in the first ``revealBlocks`` blocks of epoch e+1, the openings of e's commitments in
revealMany transactions, all in flight at once; a reveal that would come too late, or whose commitment never
reached the chain, is recorded as a missed reveal with the reason."""

from __future__ import annotations

import asyncio
import logging

from ..chain.contracts import ContractRevert
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")

REVEAL_MAX_VERDICTS = 250  # verdicts per revealMany transaction (~7M gas, under a quarter of a 30M block)
# Storage the gas estimate may see already written by another node's transaction of the same block (a target's
# tally and evidence slots): allowed for per verdict so a race never runs out of gas.
GAS_PER_VERDICT_UNSEEN = 30_000
REVEALED_MARKER = "0x" + "00" * 31 + "01"  # AuditProtocol.REVEALED: what a revealed commitment slot holds


def reveal_batches(openings: list[dict]) -> list[list[dict]]:
    """Split reveals into transactions of at most REVEAL_MAX_VERDICTS verdicts (at least one license each)."""
    batches: list[list[dict]] = []
    current: list[dict] = []
    count = 0
    for o in openings:
        n = len(o["targets"])
        if current and count + n > REVEAL_MAX_VERDICTS:
            batches.append(current)
            current, count = [], 0
        current.append(o)
        count += n
    if current:
        batches.append(current)
    return batches


class RevealService:
    def __init__(self, parts: NodeParts):
        self.p = parts

    async def tick(self, view: TickView) -> None:
        if view.epoch > 0:
            await self.reveal(view.epoch - 1, view.head)

    def _missed(self, epoch: int, licenses: list[int], reason: str) -> None:
        self.p.store.set_opening_state(epoch, licenses, "missed", reason)
        self.p.metrics.missed_reveals.inc(len(licenses))
        log.error("missed reveal for %d license(s) of epoch %d: %s", len(licenses), epoch, reason)

    async def reveal(self, epoch: int, head: int) -> None:
        p = self.p
        openings = [o for o in p.store.openings(epoch) if o["state"] in ("committed", "prepared")]
        if not openings:
            return
        protocol = p.c["AuditProtocol"]
        start, end = await protocol.call("revealWindow", epoch)
        if head + 1 < start:
            return
        if head + 1 >= end:
            self._missed(epoch, [o["license"] for o in openings],
                         f"reveal window of epoch {epoch} is blocks [{start}, {end}); the head is already {head}")
            return
        committed = []
        for o in openings:
            onchain = "0x" + bytes(await protocol.call("commitmentOf", o["license"], epoch)).hex()
            if onchain == o["commitment"]:
                committed.append(o)
            elif onchain == REVEALED_MARKER:
                p.store.set_opening_state(epoch, [o["license"]], "revealed")
            else:
                self._missed(epoch, [o["license"]], "commitment never reached the chain")
        # All batches in flight at once (nonces in order): the window is only `revealBlocks` blocks long.
        await asyncio.gather(*(self._reveal_batch(epoch, batch) for batch in reveal_batches(committed)))

    async def _reveal_batch(self, epoch: int, batch: list[dict]) -> None:
        p = self.p
        protocol = p.c["AuditProtocol"]
        reveals = [(o["license"], o["targets"], o["verdicts"], [bytes.fromhex(r[2:]) for r in o["roots"]],
                    bytes.fromhex(o["salt"][2:])) for o in batch]
        verdicts = sum(len(o["targets"]) for o in batch)
        licenses = [o["license"] for o in batch]
        try:
            await p.sender.send("reveal", protocol.address, protocol.encode("revealMany", epoch, reveals),
                                epoch=epoch, meta={"licenses": licenses}, gas_extra=GAS_PER_VERDICT_UNSEEN * verdicts)
        except ContractRevert as exc:
            self._missed(epoch, licenses, f"reveal reverted: {exc.error or exc}")
            return
        p.store.set_opening_state(epoch, licenses, "revealed")
        p.metrics.reveals.inc(len(batch))
        log.info("epoch %d: revealed %d licenses", epoch, len(batch))
