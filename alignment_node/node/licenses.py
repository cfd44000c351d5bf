"""Which licenses are delegated to this operator, and in what state: candidate ids from the registry's
``LicenseStateChanged`` events naming the operator, then each one's authoritative state from eth_calls (so a
reorg can only delay, never mislead, the node). Builds the TickView every other service is given."""

from __future__ import annotations

import asyncio
import logging
import time

from .. import protocol as P
from ..chain.manifest import scan_logs, topic_address
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.node")

REORG_REREAD_BLOCKS = 12  # blocks of license events read again on every refresh
STATE_REFRESH_S = 30.0  # seconds between re-reads of every license's state (suspensions, transfers)
LICENSE_READS_IN_FLIGHT = 16  # licenses whose state is read at once


class LicenseService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._licenses_epoch: int | None = None
        self._state_time = 0.0
        self._state_block = -1
        self._known_ids: set[int] = set(parts.store.get("licenses.candidates", []))
        self._scanned_to: int = parts.store.get("licenses.scanned_to", int(parts.manifest["deployBlock"]) - 1)

    async def tick(self, head: int, epoch: int) -> TickView:
        await self.refresh(head, epoch)
        return TickView(head, epoch, self.p.snapshot)

    async def refresh(self, head: int, epoch: int) -> None:
        p = self.p
        registry = p.c["OperatorRegistry"]
        ev = registry.abi.event("LicenseStateChanged")
        me_topic = topic_address(p.signer.address)
        deploy_block = int(p.manifest["deployBlock"])
        # Re-read a few blocks every time: logs of blocks that were reorganised away reappear or vanish.
        start = max(deploy_block, self._scanned_to - REORG_REREAD_BLOCKS)
        # A reorg deeper than that changes the hash of the block we scanned to: read everything again.
        scanned_hash = p.store.get("licenses.scanned_hash")
        if scanned_hash and self._scanned_to >= deploy_block:
            block = await p.rpc.get_block(self._scanned_to)
            if block is None or block["hash"] != scanned_hash:
                log.warning("reorg below block %d detected (hash %s, was %s): re-reading license events",
                            self._scanned_to, block and block["hash"], scanned_hash)
                start = deploy_block
        changed = start == deploy_block and self._licenses_epoch is not None
        if head >= start:
            async for entries in scan_logs(p.rpc, registry.address, [ev.topic, None, me_topic], start, head):
                for entry in entries:
                    self._known_ids.add(int(entry["topics"][1], 16))
                    changed = changed or int(entry["blockNumber"], 16) > self._state_block
            # Remember the hash of the block before the head (the head itself may still be sealing on some
            # nodes): if it ever changes, a reorg went deeper than the re-read window.
            checkpoint = max(deploy_block, head - 1)
            checkpoint_block = await p.rpc.get_block(checkpoint)
            self._scanned_to = checkpoint
            p.store.put("licenses.candidates", sorted(self._known_ids))
            p.store.put("licenses.scanned_to", checkpoint)
            p.store.put("licenses.scanned_hash", checkpoint_block["hash"] if checkpoint_block else None)
        # The per-license eth_calls are the expensive part: once per epoch, when our events changed, or every
        # STATE_REFRESH_S seconds (suspensions, transfers).
        if not changed and epoch == self._licenses_epoch and time.monotonic() - self._state_time < STATE_REFRESH_S:
            return
        self._licenses_epoch, self._state_time, self._state_block = epoch, time.monotonic(), head
        vault = p.c["RewardVault"]
        # Presence is per operator (issue 16): a license is active when it is listed under this operator in the
        # epoch and the operator is present in it. One read of the operator's presence serves every license.
        op_index, _commission = await registry.call("operatorIndexOf", p.signer.address)
        present = bool(op_index) and await vault.call("isPresent", op_index, epoch)
        gate = asyncio.Semaphore(LICENSE_READS_IN_FLIGHT)

        async def read(token_id: int) -> dict | None:
            async with gate:
                operator, state = await registry.call("delegationOf", token_id)
                if operator.lower() != p.signer.address.lower() or state == 0:
                    return None
                # Listed from the epoch after it became Delegated, off the list while parked (suspended).
                listed = bool(op_index) and await registry.call("operatorOfAt", token_id, epoch) == op_index
                last_active_plus1 = await vault.call("lastActivePlus1", token_id)
                account = await vault.call("accounts", token_id)
                # Only a license that was ever suspended can be parked: spare the other licenses the read.
                parked = bool(account[1]) and await registry.call("isParked", token_id)
            active_now = listed and present
            return {
                "state": P.DELEGATION_STATE_NAMES[state],
                "listed": listed,
                "parked": parked,
                "active_epoch": epoch if active_now else (last_active_plus1 - 1 if last_active_plus1 else None),
                "active_now": active_now,
                "suspended_until": account[1] if account[1] > epoch else None,
                "balance_wei": str(account[0]),
            }

        # Concurrently: a restarted node's first tick reads every license before it may reveal (a short window).
        ids = sorted(self._known_ids)
        entries = await asyncio.gather(*(read(i) for i in ids))
        licenses = {i: v for i, v in zip(ids, entries) if v is not None}
        p.snapshot.operator_index = op_index
        p.snapshot.licenses = licenses
        gauge = p.metrics.licenses
        for name in ("delegated", "pending"):
            gauge.labels(name).set(sum(1 for v in licenses.values() if v["state"] == name))
        gauge.labels("active").set(sum(1 for v in licenses.values() if v["active_now"]))
        gauge.labels("suspended").set(sum(1 for v in licenses.values() if v["suspended_until"]))
