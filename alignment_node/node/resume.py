"""Resume (issue 16): a suspended license is parked, off its operator's list from the epoch after its suspension
and still Delegated. ``OperatorRegistry.resume`` lists it again from the next epoch once its suspension is over by
then, so the node sends it in the epoch before the suspension ends (or any later one): the license is active again
in the first epoch it may be. One transaction for every license due, at most once per epoch."""

from __future__ import annotations

import logging

from ..chain.contracts import ContractRevert
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.node")


def resumable(licenses: dict[int, dict], epoch: int) -> list[int]:
    """Parked Delegated licenses whose suspension is over by ``epoch + 1`` (``suspended_until``: the first epoch
    the license may be active again; None once it has passed)."""
    return sorted(i for i, v in licenses.items()
                  if v["state"] == "delegated" and v.get("parked")
                  and (v["suspended_until"] is None or v["suspended_until"] <= epoch + 1))


class ResumeService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._epoch: int | None = None  # the epoch a resume was sent (or found needless) in

    async def tick(self, view: TickView) -> None:
        p, epoch = self.p, view.epoch
        if self._epoch == epoch:
            return
        if any(e.state in ("signed", "sent") for e in p.store.live_for("resume", epoch)):
            await p.sender.recover()
        registry, vault = p.c["OperatorRegistry"], p.c["RewardVault"]
        # The view may be up to a refresh old: ask the chain, so a license resumed by anyone else (resume is
        # open to all) or still suspended does not revert the whole batch.
        due = [i for i in resumable(view.licenses, epoch)
               if await registry.call("isParked", i) and not await vault.call("isSuspended", i, epoch + 1)]
        if not due:
            self._epoch = epoch
            return
        try:
            receipt = await p.sender.send("resume", registry.address, registry.encode("resume", due), epoch=epoch,
                                          meta={"licenses": due}, expected_errors=("NotParked", "StillSuspended"))
        except ContractRevert as exc:
            if exc.error_name not in ("NotParked", "StillSuspended"):
                raise
            # Someone else resumed one of them after our reads; the next refresh shows which are still parked.
            log.info("resume of %s not needed now: %s", due, exc.error_name)
            return
        for i in due:
            view.licenses[i]["parked"] = False
        self._epoch = epoch
        log.info("resumed %d parked license(s) %s from epoch %d (tx %s)", len(due), due, epoch + 1,
                 receipt["transactionHash"])
