"""Settlement and misses (sections 8-9, issue 16): after an epoch's reveal window, for each target this node's
licenses sat on (revealed):

- settle it only when that changes something: some seated vote is not OK (``tally``: fault + unreachable > 0) or
  its baseline has referees (``settleOpensAt`` after the reveal window: their ruling may turn it into FAULT). A
  target whose committee revealed all OK has the outcome OK by view (``outcomeOf``) and nobody to debit: skipped.
  A trap target is the trap keeper's to settle.
- report every seated license with a duty that did not reveal it (its operator did not reveal, or listed NO_VOTE
  for it: ``committee`` minus ``revealers``, active per ``vault.isActive``), for the bounty, from the end of the
  reveal window; settlement is not needed for that (security review H4, docs/security.md: nobody can suppress the
  misses by settling first). A report another node made first is expected.

Nodes take turns: the node holding a target's lowest revealing license goes first; the others step in one after
another, each SETTLE_GRACE_BLOCKS after the one before it, in the order of their lowest revealing license (from the
end of the reveal window for misses, from ``settleOpensAt`` for settling). Not time-critical and possibly many
transactions: it runs as a task beside the next ticks."""

from __future__ import annotations

import asyncio
import logging

from ..chain.contracts import ContractRevert
from .duties import Duties
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")

SETTLE_LOOKBACK = 8  # epochs whose settlement and misses are still worth pursuing
SETTLE_GAS_UNSEEN = 25_000  # storage another node's same-block transaction may have written first
SETTLE_GRACE_BLOCKS = 12  # blocks each settler in line gets before the next revealer settles in its place
SETTLE_PARALLEL = 64  # settle transactions in flight at once


def settle_rank(revealed: list[int], mine: set[int]) -> int:
    """This node's place in line to settle a target: the position of its lowest revealing license among the
    target's revealers in license order (0: it is the designated settler). The others wait in turn, so two
    nodes send the same settlement only when every one before them stayed silent for as long."""
    ordered = sorted(revealed)
    for i, lic in enumerate(ordered):
        if lic in mine:
            return i
    return len(ordered)  # not a revealer (its reveal was dropped): last in line


class SettlementService:
    def __init__(self, parts: NodeParts, duties: Duties):
        self.p = parts
        self.duties = duties
        self._task: asyncio.Task | None = None

    async def tick(self, view: TickView) -> None:
        """Start a settlement pass unless one is still running (a failed one is logged)."""
        if self._task is not None and not self._task.done():
            return
        if self._task is not None and not self._task.cancelled() and self._task.exception():
            log.error("settlement failed: %s", self._task.exception())
        self._task = asyncio.create_task(self.settle_and_report(view.head, view.epoch))

    async def settle_and_report(self, head: int, epoch: int) -> None:
        p = self.p
        protocol = p.c["AuditProtocol"]
        for e in range(max(0, epoch - SETTLE_LOOKBACK), epoch):
            if p.store.get(f"settled.{e}"):
                continue
            openings = [o for o in p.store.openings(e) if o["state"] == "revealed"]
            if not openings:
                continue
            _start, end = await protocol.call("revealWindow", e)
            if head < end:
                continue
            mine = {o["license"] for o in openings}
            targets = sorted({t for o in openings for t in o["targets"]})
            pending = False
            to_settle, to_report = [], []
            reported = set(p.store.get(f"misses.{e}", []))
            settled_done = set(p.store.get(f"settles.{e}", []))  # targets needing no settlement from this node
            for t in targets:
                if t in reported and t in settled_done:
                    continue
                # Settling and reporting go by the same turn: nodes do not all race.
                revealed, _ = await protocol.call("revealers", e, t)
                rank = settle_rank(revealed, mine)
                if t not in reported:
                    if head < end + SETTLE_GRACE_BLOCKS * rank:
                        pending = True
                    else:
                        to_report.append(t)
                if t in settled_done:
                    continue
                _ok, fault, unreachable, _n, outcome = await protocol.call("tally", e, t)
                opens = await protocol.call("settleOpensAt", e, t)
                if outcome != 0 or (fault + unreachable == 0 and opens <= end):
                    settled_done.add(t)  # settled already, or all OK without referees: outcome OK by view
                elif head < opens + SETTLE_GRACE_BLOCKS * rank:
                    pending = True  # a MODEL target whose baseline has referees waits for their window too
                else:
                    to_settle.append(t)
            if to_report:
                await self.report_misses(e, to_report, mine)
            # Pipelined: up to SETTLE_PARALLEL transactions in flight (nonces in order, receipts awaited together).
            for i in range(0, len(to_settle), SETTLE_PARALLEL):
                chunk = to_settle[i:i + SETTLE_PARALLEL]
                sent = await asyncio.gather(*(self._send_quietly("settle", protocol.encode("settle", e, t), e,
                                                                 ("AlreadySettled",)) for t in chunk))
                p.metrics.settled.inc(sum(sent))
                settled_done.update(chunk)  # settled either way: by this node, or by another one first
            p.store.put(f"settles.{e}", sorted(settled_done))
            if not pending:
                p.store.put(f"settled.{e}", True)

    async def report_misses(self, epoch: int, targets: list[int], mine: set[int]) -> None:
        """Report every license seated on one of ``targets`` in ``epoch`` with a duty (active) that did not reveal
        it: its operator did not reveal, or listed NO_VOTE for it (a report another node made first is expected),
        and record each target as done. Whether the target was settled does not matter."""
        if not targets:
            return
        p = self.p
        protocol, vault = p.c["AuditProtocol"], p.c["RewardVault"]
        active: dict[int, bool] = {}  # per license: listed under an operator present in the epoch (issue 16)
        for t in targets:
            revealed, _verdicts = await protocol.call("revealers", epoch, t)
            try:
                seated = set(await protocol.call("committee", epoch, t))
                for lic in sorted(seated - set(revealed) - mine - set(active)):
                    active[lic] = await vault.call("isActive", lic, epoch)
            except ContractRevert as exc:
                if exc.error_name != "HistoryLost":
                    raise
                # The committee list keeps two epochs after each (docs/protocol.md): older misses cannot be
                # proven any more, by anyone. Settling goes on.
                log.warning("epoch %d's committees are no longer on chain: its misses cannot be reported", epoch)
                self._reported(epoch, targets)
                return
            missing = sorted(lic for lic in seated - set(revealed) - mine if active[lic])
            for lic in missing:
                ok = await self._send_quietly("report_miss", protocol.encode("reportMiss", epoch, lic, t), epoch,
                                              ("MissAlreadyReported", "NotAssigned", "NotMissed"))
                if ok:
                    p.metrics.misses_reported.inc()
                    log.info("reported miss: license %d did not reveal target %d in epoch %d", lic, t, epoch)
            self._reported(epoch, [t])

    def _reported(self, epoch: int, targets: list[int]) -> None:
        """Record that this node's miss reports for ``targets`` of ``epoch`` are done (one key per epoch)."""
        done = set(self.p.store.get(f"misses.{epoch}", [])) | set(targets)
        self.p.store.put(f"misses.{epoch}", sorted(done))

    async def _send_quietly(self, purpose: str, data: bytes, epoch: int, expected: tuple[str, ...],
                            gas_extra: int = SETTLE_GAS_UNSEEN) -> bool:
        """Send a transaction another node may have made pointless; an expected revert is not an error."""
        protocol = self.p.c["AuditProtocol"]
        try:
            await self.p.sender.send(purpose, protocol.address, data, epoch=epoch, expected_errors=expected,
                                     gas_extra=gas_extra, urgent=False)
            return True
        except ContractRevert as exc:
            if exc.error_name in expected or exc.error_name is None:
                # None: mined but reverted, i.e. another node's transaction in the same block got there first.
                log.debug("%s not needed: %s", purpose, exc.error_name or "lost a same-block race")
                return False
            raise
