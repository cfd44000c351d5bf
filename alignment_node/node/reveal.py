"""Reveal (section 7): in the first ``revealBlocks`` blocks of epoch e+1, the openings of e's commitment in
revealMany transactions, all in flight at once, each with its proof against the operator's root (issue 16,
commitments.py); a reveal that would come too late, or whose root is not the one on chain, is recorded as a missed
reveal with the reason. A batch that reverts is checked license by license: anyone may copy an opening out of a
pending batch and reveal it first (security review H1, docs/security.md), so the licenses revealed meanwhile count
as revealed and the rest of the batch is sent again."""

from __future__ import annotations

import asyncio
import logging

from ..chain.contracts import ContractRevert
from .chainguard import lost_to_reorg, resent
from .commitments import ensure_layout, tree_for_root
from .txsender import EPOCH_TOUCH_GAS
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")

REVEAL_MAX_VERDICTS = 250  # verdicts per revealMany transaction (~7M gas, under a quarter of a 30M block)
# Storage the gas estimate may see already written by another node's transaction of the same block (a target's
# tally and evidence slots): allowed for per verdict so a race never runs out of gas.
GAS_PER_VERDICT_UNSEEN = 30_000


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

    async def _reorged_reveals(self, epoch: int, head: int) -> list[dict]:
        """Openings revealed by a transaction a reorg dropped (chainguard.py): while the window is open, those the
        chain no longer shows as revealed go back to 'committed' and are revealed again."""
        p = self.p
        revealed = p.store.openings(epoch, "revealed")
        if not revealed:
            return []
        protocol = p.c["AuditProtocol"]
        start, end = await protocol.call("revealWindow", epoch)
        if head + 1 >= end:
            return []
        gone = [o for o in revealed if not await protocol.call("isRevealed", o["license"], epoch)]
        if not gone or not await lost_to_reorg(p, "reveal", epoch):
            return []
        log.warning("epoch %d: a reorg dropped the reveal of %d license(s): revealing again", epoch, len(gone))
        resent(p, "reveal")
        p.store.set_opening_state(epoch, [o["license"] for o in gone], "committed")
        return [{**o, "state": "committed"} for o in gone]

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
        if head + 1 >= end:
            # A reveal mined just before a crash is revealed, not missed (the node never read its receipt).
            landed = [o["license"] for o in openings if await protocol.call("isRevealed", o["license"], epoch)]
            if landed:
                p.store.set_opening_state(epoch, landed, "revealed")
            late = [o["license"] for o in openings if o["license"] not in set(landed)]
            if late:
                self._missed(epoch, late,
                             f"reveal window of epoch {epoch} is blocks [{start}, {end}); the head is already {head}")
            return
        onchain = bytes(await protocol.call("rootOf", p.signer.address, epoch))
        if onchain != bytes(32):
            await ensure_layout(p.store, p.c["OperatorRegistry"], epoch)  # recorded at the commit: no call then
        tree = tree_for_root(p.store, epoch, onchain) if onchain != bytes(32) else None
        if tree is None:
            what = ("no root of this operator" if onchain == bytes(32) else
                    f"the operator's root 0x{onchain.hex()}, of none of the node's trees,")
            self._missed(epoch, [o["license"] for o in openings],
                         f"commitment never reached the chain: {what} is on chain for epoch {epoch}")
            return
        committed = []
        for o in openings:
            if o["license"] not in tree.licenses:
                self._missed(epoch, [o["license"]], f"opening not under the committed root 0x{onchain.hex()}")
            elif await protocol.call("isRevealed", o["license"], epoch):
                p.store.set_opening_state(epoch, [o["license"]], "revealed")  # a crash after the reveal was mined
            else:
                committed.append({**o, "proof": tree.proof(o["license"])})
        # All batches in flight at once (nonces in order): the window is only `revealBlocks` blocks long.
        await asyncio.gather(*(self._reveal_batch(epoch, batch) for batch in reveal_batches(committed)))

    async def _reveal_batch(self, epoch: int, batch: list[dict]) -> None:
        """Send one revealMany; when it reverts, the licenses revealed meanwhile (by anyone: only this node's
        openings pass the proof) are revealed, and the others are sent again until none was revealed meanwhile:
        then they are missed with the revert's reason."""
        p = self.p
        protocol = p.c["AuditProtocol"]
        while batch:
            reveals = [(o["license"], o["targets"], o["verdicts"], [bytes.fromhex(r[2:]) for r in o["roots"]],
                        bytes.fromhex(o["salt"][2:]), o["proof"]) for o in batch]
            verdicts = sum(len(o["targets"]) for o in batch)
            licenses = [o["license"] for o in batch]
            try:
                await p.sender.send("reveal", protocol.address, protocol.encode("revealMany", epoch, reveals),
                                    epoch=epoch, meta={"licenses": licenses},
                                    gas_extra=GAS_PER_VERDICT_UNSEEN * verdicts + EPOCH_TOUCH_GAS)
            except ContractRevert as exc:
                revealed = [lic for lic in licenses if await protocol.call("isRevealed", lic, epoch)]
                if not revealed:
                    self._missed(epoch, licenses, f"reveal reverted: {exc.error or exc}")
                    return
                p.store.set_opening_state(epoch, revealed, "revealed")
                log.warning("epoch %d: %d license(s) of a reverted reveal batch were revealed by another "
                            "transaction (a copied opening); sending the other %d again", epoch, len(revealed),
                            len(licenses) - len(revealed))
                batch = [o for o in batch if o["license"] not in set(revealed)]
                continue
            p.store.set_opening_state(epoch, licenses, "revealed")
            p.metrics.reveals.inc(len(batch))
            log.info("epoch %d: revealed %d licenses", epoch, len(batch))
            return
