"""Balances and what this operator's licenses and commission can claim, once per epoch; the low-gas-money
alert of /health."""

from __future__ import annotations

import logging

from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.node")


class RewardsService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._epoch: int | None = None

    async def tick(self, view: TickView) -> None:
        p = self.p
        if self._epoch == view.epoch:
            return
        vault, token, me = p.c["RewardVault"], p.c["RewardToken"], p.signer.address
        native = await p.rpc.get_balance(me)
        reward = await token.call("balanceOf", me)
        commission = await vault.call("commissionOf", me)
        claimable = 0
        for token_id in view.licenses:
            claimable += await vault.call("claimable", token_id)
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
        self._epoch = view.epoch
