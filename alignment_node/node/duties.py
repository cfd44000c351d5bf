"""Duties (section 6, exact committees since issue 16): for this operator's licenses active in an epoch, the
targets whose committee seats are theirs; and the chain reads they need (the audit parameters, registered
targets, epoch seeds), each read once."""

from __future__ import annotations

from .. import protocol as P
from ..audits.base import Target
from .parts import NodeParts


class Duties:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._targets: dict[int, Target] = {}
        self._params: tuple[int, int, int] | None = None
        self._seeds: dict[int, bytes] = {}

    async def params(self) -> tuple[int, int, int]:
        """(revealBlocks, committeeSize, maxCommittee), read once (governance changes need a restart)."""
        if self._params is None:
            reveal_blocks, committee, _min_reveals, max_committee = await self.p.c["AuditProtocol"].call("params")
            self._params = (reveal_blocks, committee, max_committee)
        return self._params

    async def target(self, target_id: int) -> Target:
        """A registered target (kind, endpoint, identity), read once."""
        if target_id not in self._targets:
            t = await self.p.c["TargetRegistry"].call("getTarget", target_id)
            kind, endpoint, identity = t[0], t[4], t[5]
            self._targets[target_id] = Target(target_id, kind, endpoint, bytes(identity))
        return self._targets[target_id]

    def known(self, target_id: int) -> Target:
        """A target that ``target`` already read."""
        return self._targets[target_id]

    def seed(self, epoch: int) -> bytes:
        """The seed ``of_epoch`` read for ``epoch`` (zero bytes if it was not); seeds older than two epochs
        before ``epoch`` are forgotten."""
        for old in [e for e in self._seeds if e < epoch - 2]:
            del self._seeds[old]
        return self._seeds.get(epoch, bytes(32))

    async def of_epoch(self, epoch: int, licenses: list[int]) -> tuple[dict[int, list[int]], list[int]]:
        """({license: [target ids]}, enabled target ids) for ``epoch``; nothing before its seed is set."""
        protocol = self.p.c["AuditProtocol"]
        seed = await protocol.call("seed", epoch)
        if seed == bytes(32):
            return {}, []
        _, committee, _ = await self.params()
        start = await protocol.call("epochStartBlock", epoch)
        enabled = list(await self.p.c["TargetRegistry"].call("enabledTargetsAt", start))
        listed, positions = await self.p.c["OperatorRegistry"].call("positionsAt", sorted(licenses), epoch)
        self._seeds[epoch] = seed
        where = {lic: pos - 1 for lic, pos in zip(sorted(licenses), positions) if pos}
        duties = P.duties(seed, where, listed, committee, enabled)
        return {lic: duties.get(lic, []) for lic in licenses}, enabled
