"""Balances and what this operator's licenses and commission can claim, once per epoch; the low-gas-money
alert of /health; why each license earns nothing yet (why.py), added to the view /status serves; and, opted in
with ``rewards.auto_claim_commission``, the commission claim.

Who may claim what (RewardVault): ``claimCommissionFor(ids)`` credits the operator's licenses and pays the calling
operator its own commission, so the node can claim it (the vault books an operator's commission as each of its
licenses is credited, from what is left after the license's debt, security finding L2: the node passes its
licenses and reads ``commissionClaimable(me, ids)``); ``claim`` pays a license's credit only to the license's
owner (``NotLicenseOwner`` for anyone else), so scheduled license claims are the owner's ``alignment-node claim
--every-epochs N`` (claims.py), never the node's. Both use ``claim_decision``: claim only from the floor up, and
only when the amount exceeds the claim's gas cost converted to reward-token wei (when the conversion is known;
else the floor is the only guard).
"""

from __future__ import annotations

import logging
from decimal import ROUND_CEILING, Decimal

from ..chain.contracts import ContractRevert
from .parts import NodeParts, TickView
from .why import facts_from_view, why_not_earning

log = logging.getLogger("alignment_node.node")

GWEI = 10**9


def claim_decision(amount_wei: int, floor_wei: int, gas_cost_wei: int,
                   reward_wei_per_gas_wei: float) -> tuple[bool, str]:
    """Whether to claim ``amount_wei`` (reward-token wei): at least ``floor_wei`` and, when the gas coin's worth
    in reward-token wei is known (``reward_wei_per_gas_wei`` > 0), more than the gas cost (``gas_cost_wei``, in
    gas-coin wei) converted; the reason, either way."""
    if amount_wei <= 0:
        return False, "nothing to claim"
    if amount_wei < floor_wei:
        return False, f"{amount_wei} wei is below the floor of {floor_wei} wei"
    if reward_wei_per_gas_wei > 0:
        cost = int((Decimal(gas_cost_wei) * Decimal(str(reward_wei_per_gas_wei))).to_integral_value(ROUND_CEILING))
        if amount_wei <= cost:
            return False, f"{amount_wei} wei does not exceed the gas cost, worth {cost} reward wei"
        return True, f"{amount_wei} wei >= floor {floor_wei} and > gas cost worth {cost} reward wei"
    return True, f"{amount_wei} wei >= floor {floor_wei} (gas cost not comparable: the floor is the only guard)"


async def claim_gas_cost(rpc, sender: str, to: str, data: bytes, max_fee_cap_wei: int) -> int:
    """What a claim's gas could cost, in gas-coin wei: eth_estimateGas x the current max fee per gas (the fee the
    transaction is sent with: twice the base fee plus the tip, capped by ``gas.max_fee_gwei``)."""
    gas = await rpc.estimate_gas({"from": sender, "to": to, "data": data})
    max_fee, _tip = await rpc.suggest_fees()
    return gas * min(max_fee, max_fee_cap_wei)


class RewardsService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._epoch: int | None = None
        self._claimable: dict[int, tuple[str, int]] = {}  # license -> (booked balance it was read at, claimable)
        self._annotated: dict | None = None  # the view's licenses dict the reasons were last added to

    async def tick(self, view: TickView) -> None:
        p = self.p
        if self._epoch != view.epoch:
            await self._balances(view)
            self._epoch = view.epoch
            self._annotated = None
            if p.cfg.rewards.auto_claim_commission:
                await self._claim_commission(view.epoch, sorted(view.licenses))
        if p.snapshot.licenses is not self._annotated:
            await self._why(view)

    async def _balances(self, view: TickView) -> None:
        p = self.p
        vault, token, me = p.c["RewardVault"], p.c["RewardToken"], p.signer.address
        native = await p.rpc.get_balance(me)
        reward = await token.call("balanceOf", me)
        commission = await vault.call("commissionClaimable", me, sorted(view.licenses))
        claimable = 0
        self._claimable = {}
        for token_id, v in view.licenses.items():
            amount = await vault.call("claimable", token_id)
            self._claimable[token_id] = (v.get("balance_wei"), amount)
            claimable += amount
        p.snapshot.balances = {"native_wei": str(native), "reward_wei": str(reward),
                               "commission_wei": str(commission), "licenses_claimable_wei": str(claimable)}
        p.metrics.balance.labels("native").set(native)
        p.metrics.balance.labels("reward").set(reward)
        p.metrics.commission.set(commission)
        p.metrics.license_claimable.set(claimable)
        alerts = []
        if native < p.cfg.gas.min_balance_wei:
            alerts.append(f"operator gas balance {native} wei is below {p.cfg.gas.min_balance_wei}: fund {me}")
            log.critical("ALERT %s", alerts[-1])
        p.snapshot.alerts = alerts

    async def _why(self, view: TickView) -> None:
        """Add ``claimable_wei`` and the reason it earns nothing (why.py) to every license of the view. Claimable
        is read again only for a license whose booked balance changed (a penalty) since it was last read."""
        p = self.p
        vault = p.c["RewardVault"]
        licenses = p.snapshot.licenses
        annotated = {}
        for token_id, v in licenses.items():
            known = self._claimable.get(token_id)
            if known is None or known[0] != v.get("balance_wei"):
                known = (v.get("balance_wei"), await vault.call("claimable", token_id))
                self._claimable[token_id] = known
            entry = {**v, "claimable_wei": str(known[1])}
            entry.update(why_not_earning(facts_from_view(entry, view.epoch)).fields())
            annotated[token_id] = entry
        if p.snapshot.licenses is licenses:  # replaced wholesale: API threads never see a half-updated dict
            p.snapshot.licenses = annotated
            self._annotated = annotated

    async def _claim_commission(self, epoch: int, license_ids: list[int]) -> None:
        """Claim the commission when ``claim_decision`` says so, at most once per epoch, journaled: the claim
        credits ``license_ids`` (the operator's licenses) first, which books their commission."""
        p, r = self.p, self.p.cfg.rewards
        if p.store.live_for("claim_commission", epoch):
            return  # sent (or mined) already this epoch, before a restart
        vault, me = p.c["RewardVault"], p.signer.address
        commission = await vault.call("commissionClaimable", me, license_ids)
        data = vault.encode("claimCommissionFor", license_ids)
        cost = 0
        if commission >= max(r.commission_floor_wei, 1):
            cost = await claim_gas_cost(p.rpc, me, vault.address, data, int(p.cfg.gas.max_fee_gwei * GWEI))
        ok, reason = claim_decision(commission, r.commission_floor_wei, cost, r.reward_wei_per_gas_wei)
        if not ok:
            log.info("commission not claimed in epoch %d: %s", epoch, reason)
            return
        try:
            receipt = await p.sender.send("claim_commission", vault.address, data, epoch=epoch,
                                          meta={"commission_wei": str(commission), "gas_cost_wei": str(cost)},
                                          expected_errors=("NothingToClaim",), urgent=False)
        except ContractRevert as exc:
            if exc.error_name != "NothingToClaim":
                raise
            log.info("commission already claimed (by another run of this key)")
            return
        p.snapshot.balances = {**p.snapshot.balances, "commission_wei": "0",
                               "commission_claimed_wei": str(commission)}
        log.info("claimed commission %d wei in epoch %d (%s; tx %s)", commission, epoch, reason,
                 receipt["transactionHash"])
