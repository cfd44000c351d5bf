"""Why a license earns nothing yet: the chain's facts about one license in one epoch, and the one reason, first
that applies in this order, that it is not credited (``none``: it is earning).

A license earns in an epoch when it is Delegated, listed under its operator in that epoch (OperatorRegistry
``operatorOfAt``: from the epoch after it became Delegated, off the list while parked), not suspended
(RewardVault ``accounts().suspendedUntil``), and its operator is present in the epoch (RewardVault
``isPresent``: one heartbeat per operator and epoch). Credit first pays a debt (``claimable`` < 0: penalties
exceeded credit), so a license in debt earns nothing it can claim until the debt is paid.

>>> why_not_earning(LicenseFacts(state="pending", epoch=7)).text
'pending operator approval'
>>> why_not_earning(LicenseFacts(state="delegated", epoch=7, listed=True, operator_present=True,
...                              claimable_wei=-5)).text
'in debt (penalties exceed credit: 5 wei)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# The reasons, as (code, what `status` prints), in the order they are tested.
REASONS = {
    "not_delegated": "not delegated",
    "pending_approval": "pending operator approval",
    "suspended": "suspended/parked until epoch {until}",
    "parked": "parked until resumed (its suspension is over; listed again from the epoch after the resume)",
    "not_listed_yet": "not listed until the next epoch",
    "operator_absent": "operator not present this epoch",
    "in_debt": "in debt (penalties exceed credit: {debt} wei)",
    "none": "none",
}


@dataclass(frozen=True)
class LicenseFacts:
    """What the chain says about one license in ``epoch``."""

    state: str  # "free", "pending" or "delegated" (OperatorRegistry.delegationOf)
    epoch: int
    listed: bool = False  # operatorOfAt(id, epoch) != 0
    operator_present: bool = False  # isPresent(operatorOfAt(id, epoch), epoch)
    parked: bool = False  # OperatorRegistry.isParked
    suspended_until: int = 0  # RewardVault.accounts(id).suspendedUntil: first epoch it may be active again
    claimable_wei: int = 0  # RewardVault.claimable(id); negative: a debt


@dataclass(frozen=True)
class Reason:
    code: str
    text: str
    until: int | None = None  # "suspended": the first epoch it may be active again
    debt_wei: int = 0  # "in_debt": what later credit pays first

    def fields(self) -> dict[str, Any]:
        """The fields ``status`` adds to a license."""
        out: dict[str, Any] = {"why_not_earning": self.text, "why_not_earning_code": self.code}
        if self.until is not None:
            out["earning_resumes_epoch"] = self.until
        if self.debt_wei:
            out["debt_wei"] = str(self.debt_wei)
        return out


def why_not_earning(f: LicenseFacts) -> Reason:
    """The first reason that applies, or ``none``."""
    assert f.state in ("free", "pending", "delegated"), f.state
    if f.state == "free":
        return Reason("not_delegated", REASONS["not_delegated"])
    if f.state == "pending":
        return Reason("pending_approval", REASONS["pending_approval"])
    if f.suspended_until > f.epoch:
        return Reason("suspended", REASONS["suspended"].format(until=f.suspended_until), until=f.suspended_until)
    if f.parked:
        return Reason("parked", REASONS["parked"])
    if not f.listed:
        return Reason("not_listed_yet", REASONS["not_listed_yet"])
    if not f.operator_present:
        return Reason("operator_absent", REASONS["operator_absent"])
    if f.claimable_wei < 0:
        return Reason("in_debt", REASONS["in_debt"].format(debt=-f.claimable_wei), debt_wei=-f.claimable_wei)
    return Reason("none", REASONS["none"])


def facts_from_view(v: Mapping[str, Any], epoch: int) -> LicenseFacts:
    """The facts of one license of the node's view (licenses.py; ``claimable_wei`` added by rewards.py, else
    the booked balance, which is never above what is claimable)."""
    listed = bool(v.get("listed"))
    return LicenseFacts(
        state=v["state"], epoch=epoch, listed=listed,
        operator_present=listed and bool(v.get("active_now")),
        parked=bool(v.get("parked")), suspended_until=int(v.get("suspended_until") or 0),
        claimable_wei=int(v.get("claimable_wei", v.get("balance_wei", 0))),
    )


async def facts_from_chain(c: Mapping[str, Any], token_id: int, epoch: int) -> LicenseFacts:
    """The facts of ``token_id`` in ``epoch`` read from the contracts (``c``: the manifest's bound contracts)."""
    from ..protocol import DELEGATION_STATE_NAMES

    registry, vault = c["OperatorRegistry"], c["RewardVault"]
    _operator, state = await registry.call("delegationOf", token_id)
    op_index = await registry.call("operatorOfAt", token_id, epoch)
    present = bool(op_index) and await vault.call("isPresent", op_index, epoch)
    account = await vault.call("accounts", token_id)
    parked = bool(state == 2) and await registry.call("isParked", token_id)
    return LicenseFacts(state=DELEGATION_STATE_NAMES[state], epoch=epoch, listed=bool(op_index),
                        operator_present=present, parked=parked, suspended_until=int(account[1]),
                        claimable_wei=int(await vault.call("claimable", token_id)))
