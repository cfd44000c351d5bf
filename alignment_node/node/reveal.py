"""Reveal (section 7, issue 16): in the first ``revealBlocks`` blocks of epoch e+1, one ``reveal`` transaction
opens the operator's commitment of e (commitments.py): the salt and the listed votes of the root the chain holds.
Every license of the operator then votes OK wherever it sits, except for the listed votes. The chain's
``hasRevealed(operator, e)`` decides what is done: a reveal mined before a crash, or sent by someone else who copied
the payload (security review H1: a copied reveal is the operator's own, and a second reveal is a no-op), is
revealed, not missed; one a reorg dropped is sent again while the window is open (chainguard.py). A reveal that
would come too late, or whose root is not the one on chain, is recorded as a missed reveal with the reason."""

from __future__ import annotations

import logging

from ..chain.contracts import ContractRevert
from .chainguard import lost_to_reorg, resent
from .commitments import attempt_for_root
from .txsender import EPOCH_TOUCH_GAS
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")


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

    async def _revealed_on_chain(self, epoch: int) -> bool:
        return bool(await self.p.c["AuditProtocol"].call("hasRevealed", self.p.signer.address, epoch))

    async def _reorged_reveals(self, epoch: int, head: int) -> list[dict]:
        """Openings revealed by a transaction a reorg dropped (chainguard.py): while the window is open and the
        chain no longer shows the operator revealed, they go back to 'committed' and are revealed again."""
        p = self.p
        revealed = p.store.openings(epoch, "revealed")
        if not revealed:
            return []
        _start, end = await p.c["AuditProtocol"].call("revealWindow", epoch)
        if head + 1 >= end or await self._revealed_on_chain(epoch):
            return []
        if not await lost_to_reorg(p, "reveal", epoch):
            return []
        log.warning("epoch %d: a reorg dropped the reveal of %d license(s): revealing again", epoch, len(revealed))
        resent(p, "reveal")
        p.store.set_opening_state(epoch, [o["license"] for o in revealed], "committed")
        return [{**o, "state": "committed"} for o in revealed]

    async def reveal(self, epoch: int, head: int) -> None:
        p = self.p
        openings = [o for o in p.store.openings(epoch) if o["state"] in ("committed", "prepared")]
        openings += await self._reorged_reveals(epoch, head)
        if not openings:
            return
        protocol = p.c["AuditProtocol"]
        start, end = await protocol.call("revealWindow", epoch)
        if head + 1 < start:
            return
        licenses = [o["license"] for o in openings]
        onchain = bytes(await protocol.call("rootOf", p.signer.address, epoch))
        attempt = attempt_for_root(p.store, epoch, p.signer.address, onchain) if onchain != bytes(32) else None
        if await self._revealed_on_chain(epoch):
            # Mined before a crash (the node never read its receipt), or copied and sent by someone else.
            self._done(epoch, licenses, attempt, onchain)
            return
        if head + 1 >= end:
            self._missed(epoch, licenses,
                         f"reveal window of epoch {epoch} is blocks [{start}, {end}); the head is already {head}")
            return
        if attempt is None:
            what = ("no root of this operator" if onchain == bytes(32) else
                    f"the operator's root 0x{onchain.hex()}, of none of the node's attempts,")
            self._missed(epoch, licenses, f"commitment never reached the chain: {what} is on chain for epoch {epoch}")
            return
        try:
            await p.sender.send("reveal", protocol.address,
                                protocol.encode("reveal", epoch, p.signer.address, attempt.salt, list(attempt.votes)),
                                epoch=epoch, meta={"licenses": sorted(licenses), "votes": len(attempt.votes)},
                                gas_extra=EPOCH_TOUCH_GAS)
        except ContractRevert as exc:
            if not await self._revealed_on_chain(epoch):
                self._missed(epoch, licenses, f"reveal reverted: {exc.error or exc}")
                return
            log.warning("epoch %d: the reveal reverted but the operator is revealed (another transaction of the "
                        "same payload)", epoch)
        self._done(epoch, licenses, attempt, onchain)
        p.metrics.reveals.inc(len(licenses))
        log.info("epoch %d: revealed %d licenses (%d listed votes)", epoch, len(licenses), len(attempt.votes))

    def _done(self, epoch: int, licenses: list[int], attempt, onchain: bytes) -> None:
        """The operator is revealed: its openings are. One the revealed root does not cover (a later commit that
        was never mined) counts OK wherever it sits: revealed, with the reason."""
        covered = set(attempt.licenses) if attempt is not None else set(licenses)
        inside = [lic for lic in licenses if lic in covered]
        outside = [lic for lic in licenses if lic not in covered]
        self.p.store.set_opening_state(epoch, inside, "revealed")
        if outside:
            reason = (f"opening not under the revealed root 0x{onchain.hex()}: the chain counts these licenses OK "
                      "on every target they sit on")
            self.p.store.set_opening_state(epoch, outside, "revealed", reason)
            log.error("epoch %d: %d license(s) %s", epoch, len(outside), reason)
