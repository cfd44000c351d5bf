"""Evidence challenges (security review M6, docs/security.md): anyone may bond ``challengeBond`` on a counted
FAULT or UNREACHABLE vote; the bundle whose keccak256 is the vote's root must then be served on chain
(``answerChallenge``: its bytes become calldata, public for good) within ``answerBlocks``, or the license is
penalized as for a miss. On every head this service reads the new ``EvidenceChallenged`` events and answers each
one whose root this node stored (its own votes: verdicts.py stores every bundle under its root before it is
committed). The bond goes to the sender. Whether a challenge is still open is read from the chain, so an answer
a reorg dropped is sent again and one made by anyone else is not; a root whose bundle this node does not hold is
said loudly once."""

from __future__ import annotations

import asyncio
import logging

from ..chain.abi import EventRegistry
from ..chain.contracts import ContractRevert
from ..chain.manifest import scan_logs
from ..protocol import vote_key
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")

REREAD_BLOCKS = 12  # blocks read again on every pass: a reorg may move a challenge
CHALLENGE_OPEN = 1  # AuditProtocol.Challenge.state
ANSWER_GAS_EXTRA = 10_000  # storage another answer in the same block may have written first


def _say_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("evidence challenges: %s", task.exception(), exc_info=task.exception())


def hex0x(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class ChallengeService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._events: EventRegistry | None = None
        self._task: asyncio.Task | None = None
        self._unservable: set[tuple[int, int, int]] = set()

    async def tick(self, view: TickView) -> None:
        """Start a pass unless one is still running (answers wait for receipts: they must not hold up a reveal)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.answer_new(view))
        self._task.add_done_callback(_say_failure)

    async def answer_new(self, view: TickView) -> None:
        p = self.p
        protocol = p.c["AuditProtocol"]
        if self._events is None:
            self._events = EventRegistry()
            self._events.add_abi(protocol.abi.raw)
        deploy_block = int(p.manifest["deployBlock"])
        scanned = int(p.store.get("challenges.scanned", deploy_block - 1))
        start = max(deploy_block, scanned + 1 - REREAD_BLOCKS)
        if view.head < start:
            return
        topic = protocol.abi.event("EvidenceChallenged").topic
        async for logs in scan_logs(p.rpc, protocol.address, [topic], start, view.head):
            for entry in logs:
                ev = self._events.decode(entry)
                if ev is None or ev.name != "EvidenceChallenged" or view.head > ev["deadline"]:
                    continue
                epoch, target, license_id = ev["epoch"], ev["targetId"], ev["license"]
                # The chain says what is left to do (an answer a reorg dropped is open again).
                if (await protocol.call("challenges", vote_key(epoch, target, license_id)))[2] == CHALLENGE_OPEN:
                    await self.answer(epoch, target, license_id, hex0x(ev["evidenceRoot"]))
        p.store.put("challenges.scanned", view.head)

    async def answer(self, epoch: int, target: int, license_id: int, root: str) -> None:
        """Serve the bundle of ``root`` for the open challenge of (epoch, target, license), if this node holds it."""
        p = self.p
        bundle = p.store.evidence(root)
        if bundle is None:
            if license_id in p.snapshot.licenses and (epoch, target, license_id) not in self._unservable:
                self._unservable.add((epoch, target, license_id))  # said once
                p.metrics.challenges.labels("unservable").inc()
                log.error("evidence challenge of license %d, target %d, epoch %d: the bundle %s is not in this "
                          "node's store: the license will be penalized as for a miss", license_id, target, epoch,
                          root)
            return
        protocol = p.c["AuditProtocol"]
        try:
            await p.sender.send("answer_challenge", protocol.address,
                                protocol.encode("answerChallenge", epoch, target, license_id, bundle), epoch=epoch,
                                expected_errors=("ChallengeNotOpen",), gas_extra=ANSWER_GAS_EXTRA, urgent=False)
        except ContractRevert as exc:
            if exc.error_name not in ("ChallengeNotOpen", None):
                raise
            log.info("evidence challenge of license %d, target %d, epoch %d: answered already", license_id,
                     target, epoch)
            return
        p.metrics.challenges.labels("served").inc()
        log.info("evidence challenge of license %d, target %d, epoch %d: served %s (%d bytes)", license_id, target,
                 epoch, root, len(bundle))
