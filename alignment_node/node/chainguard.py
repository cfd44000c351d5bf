"""Reorgs and lying endpoints (issue 18): what the node trusts about its own chain.

Reorgs. A duty with a deadline (heartbeat, commit, reveal) is done only while the chain shows it: the services
re-read the chain on every new head until the duty's window closes (``isPresent``, ``rootOf``, ``hasRevealed``).
When the chain no longer shows it, a transaction of it the journal says was mined but whose receipt is gone is
marked ``dropped`` with an error that starts with ``REORG_ERROR``, and the duty is sent again (the same root for a
commit, the same salt and votes for a reveal: both are stored). Without such a transaction nothing is sent again
here: that is no reorg.

Endpoints. ``GuardedRpcClient`` is the node's RPC client: failover as ``RpcClient`` does, and besides
- an endpoint is used only after it answered the manifest's chain id (asked again every ``VERIFY_S`` seconds), so a
  wrong-chain endpoint is failed over like a dead one;
- a head more than ``REORG_SLACK`` blocks below the highest head seen is a stale answer (a lagging endpoint), failed
  over too; a reorg of up to ``REORG_SLACK`` blocks may lower the head;
- a head that has not moved for ``STALL_S`` seconds is compared with the other endpoints' (a halted endpoint), and
  the client moves to one that is ahead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from ..chain.rpc import RpcBadResponse, RpcClient, RpcError, RpcUnavailable, hex_int
from .metrics import NodeMetrics
from .parts import MeteredRpcClient, NodeParts
from .store import REORG_NOTE, JournalEntry

log = logging.getLogger("alignment_node.node")

REORG_ERROR = REORG_NOTE
PENDING_KEY = "reorg.notes"  # kv: reorg notes to put back on a journal row that lives again (keep_reorg_notes)
REORG_SLACK = 3  # blocks a head may go back by (a reorg) before it counts as a stale endpoint
VERIFY_S = 10.0  # how often each endpoint's chain id is asked again
STALL_S = 5.0  # a head unchanged this long is compared with the other endpoints'
START_GRACE_S = 0.25  # at start, how long an earlier endpoint may answer after a later one did and still be used


# ------------------------------------------------------------------------------------------------ reorgs

def in_flight(parts: NodeParts, purpose: str, epoch: int) -> bool:
    """A transaction for (purpose, epoch) is signed or sent and its fate is not known yet."""
    return any(e.state in ("signed", "sent") for e in parts.store.live_for(purpose, epoch))


async def reorged(parts: NodeParts, purpose: str, epoch: int) -> list[JournalEntry]:
    """Mark every transaction for (purpose, epoch) the journal says was mined but whose receipt the chain no longer
    has as dropped by a reorg; returns them (counted in ``alignment_reorged_transactions``)."""
    out = []
    for entry in parts.store.live_for(purpose, epoch):
        if entry.state != "mined" or await parts.rpc.get_transaction_receipt(entry.tx_hash) is not None:
            continue
        note = f"{REORG_ERROR}: mined in block {entry.block}, no longer in the chain"
        parts.store.mark(entry.tx_hash, "dropped", error=note)
        parts.store.put(PENDING_KEY, parts.store.get(PENDING_KEY, []) + [{"tx": entry.tx_hash, "purpose": purpose,
                                                                          "epoch": epoch, "note": note}])
        parts.metrics.reorged.labels(purpose).inc()
        log.warning("%s tx %s of epoch %s (block %s) was dropped by a reorg", purpose, entry.tx_hash, epoch,
                    entry.block)
        out.append(entry)
    return out


async def lost_to_reorg(parts: NodeParts, purpose: str, epoch: int) -> bool:
    """Whether the chain lost a transaction for (purpose, epoch) to a reorg: one mined whose receipt is gone now
    (marked by ``reorged``), or one marked so before and not sent again yet. A duty the chain does not show with
    no such transaction is not sent again here (that is not a reorg: the service's own rules apply)."""
    if await reorged(parts, purpose, epoch):
        return True
    for item in parts.store.get(PENDING_KEY, []):
        if item.get("purpose") == purpose and item["epoch"] == epoch:
            try:
                if parts.store.entry(item["tx"]).state == "dropped":
                    return True
            except KeyError:
                continue
    return False


def resent(parts: NodeParts, purpose: str) -> None:
    parts.metrics.resent.labels(purpose).inc()


def keep_reorg_notes(parts: NodeParts, epoch: int) -> None:
    """Sent again, a dropped transaction often has the very same bytes (same nonce and fees: the same hash), and
    its journal row lives again without the error; once it is settled, the reorg note is put back on it. Notes of
    epochs before ``epoch - 1`` are forgotten (their windows are over)."""
    pending = parts.store.get(PENDING_KEY, [])
    if not pending:
        return
    left = []
    for item in pending:
        try:
            entry = parts.store.entry(item["tx"])
        except KeyError:
            continue
        if entry.state in ("mined", "reverted"):
            if not entry.error:
                parts.store.mark(entry.tx_hash, entry.state, error=item["note"] + "; sent again")
        elif entry.state in ("signed", "sent") or item["epoch"] >= epoch - 1:
            left.append(item)  # in flight, or dropped and maybe sent again soon
    parts.store.put(PENDING_KEY, left)


# --------------------------------------------------------------------------------------------- endpoints

class StaleHead(RpcBadResponse):
    """An endpoint's head is more than REORG_SLACK blocks below the highest head seen."""


class WrongChain(RpcBadResponse):
    """An endpoint answered another chain id than the manifest's (``found``)."""

    def __init__(self, message: str, found: int):
        super().__init__(message)
        self.found = found


class GuardedRpcClient(MeteredRpcClient):
    """The node's RPC client: checks each endpoint's chain id and refuses stale heads (see the module's doc)."""

    def __init__(self, urls, timeout: float, metrics: NodeMetrics, chain_id: int | None = None, *,
                 verify_s: float = VERIFY_S, stall_s: float = STALL_S):
        super().__init__(urls, timeout, metrics)
        self.expected_chain_id = chain_id
        self.verify_s, self.stall_s = verify_s, stall_s
        self._verified: dict[int, float] = {}  # endpoint index -> when its chain id was last seen right
        self.max_head = -1
        self._head_moved = time.monotonic()
        self._cross_checked = 0.0

    async def _exchange(self, idx, ep, body):
        if self.expected_chain_id is not None and (idx not in self._verified
                                                   or time.monotonic() - self._verified[idx] >= self.verify_s):
            probe = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_chainId", "params": []}).encode()
            status, payload = await super()._exchange(idx, ep, probe)
            try:
                found = hex_int(_lone_result(self, payload, status))
            except RpcError as exc:
                raise RpcBadResponse(f"eth_chainId: {exc}") from None
            if found != self.expected_chain_id:
                self._verified.pop(idx, None)
                self.metrics.rpc_lies.labels("wrong-chain").inc()
                raise WrongChain(f"endpoint is on chain {found}, not {self.expected_chain_id}", found)
            self._verified[idx] = time.monotonic()
        return await super()._exchange(idx, ep, body)

    def _parse(self, payload, status, req_id, method):
        result = super()._parse(payload, status, req_id, method)
        if method == "eth_blockNumber":
            head = hex_int(result)
            if head < self.max_head - REORG_SLACK:
                self.metrics.rpc_lies.labels("stale-head").inc()
                raise StaleHead(f"head {head} is {self.max_head - head} blocks below the highest seen "
                                f"({self.max_head})")
        return result

    async def chain_id(self) -> int:
        """The manifest's chain id once an endpoint on it answers; the other chain id when every endpoint is on
        another chain (the node then stops with its "differs from the manifest" message)."""
        if self.expected_chain_id is None:
            return await super().chain_id()
        if len(self.endpoints) > 1 and not self._verified and self.max_head < 0:  # nothing answered yet: the start
            await self._start_on_a_live_endpoint()
        try:
            await self.request("eth_chainId")
        except RpcUnavailable as exc:
            if exc.errors and all(isinstance(e, WrongChain) for _label, e in exc.errors):
                return exc.errors[0][1].found
            raise
        return self.expected_chain_id

    async def _start_on_a_live_endpoint(self, grace: float = START_GRACE_S) -> None:
        """Every endpoint's chain id at once, when the node starts: it begins on the first endpoint in the
        configured order that answers rightly within ``grace`` seconds of the first right answer, so a node
        restarted while its first endpoint hangs does not wait out a whole timeout on it (a restart inside a
        short reveal window is when those seconds count)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_chainId", "params": []}).encode()

        async def probe(idx: int) -> None:
            async with asyncio.timeout(self.timeout):
                status, payload = await self._exchange(idx, self.endpoints[idx], body)  # checks the chain id
            _lone_result(self, payload, status)

        tasks = {asyncio.create_task(probe(i)): i for i in range(len(self.endpoints))}
        pending, live, until = set(tasks), set(), None
        try:
            while pending:
                wait = None if until is None else max(0.0, until - time.monotonic())
                done, pending = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                live |= {tasks[t] for t in done if not t.cancelled() and t.exception() is None}
                if not done or (live and all(tasks[t] > min(live) for t in pending)):
                    break
                if live and until is None:
                    until = time.monotonic() + grace
        finally:
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if live and min(live) != self._preferred:
            self._preferred = min(live)
            self.metrics.rpc_failovers.inc()
            self.last_failover = time.time()
            log.warning("RPC failover at start: %s answered first in order; now using it",
                        self.endpoints[self._preferred].label)

    async def block_number(self) -> int:
        try:
            head = await super().block_number()
        except RpcUnavailable as exc:
            if not exc.errors or not all(isinstance(e, StaleHead) for _label, e in exc.errors):
                raise
            # Every endpoint agrees the chain went back further than REORG_SLACK: a deep reorg, not a liar.
            log.warning("every RPC endpoint's head is below the highest seen (%d): the chain went back", self.max_head)
            self.max_head = -1
            head = await super().block_number()
        now = time.monotonic()
        if head > self.max_head:
            self.max_head, self._head_moved = head, now
        elif now - self._head_moved >= self.stall_s and now - self._cross_checked >= self.stall_s \
                and len(self.endpoints) > 1:
            self._cross_checked = now
            head = max(head, await self._cross_check())
        return head

    async def _cross_check(self) -> int:
        """Ask every other endpoint alone for its head; move to the first one ahead of the highest head seen."""
        using = self._preferred
        best = -1
        for k in range(1, len(self.endpoints)):
            idx = (using + k) % len(self.endpoints)
            body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}).encode()
            try:
                async with asyncio.timeout(self.timeout):
                    status, payload = await self._exchange(idx, self.endpoints[idx], body)
                head = hex_int(_lone_result(self, payload, status))
            except Exception as exc:  # dead, slow, lying or closed: that endpoint is no better
                log.debug("head cross-check of %s failed: %s", self.endpoints[idx].label, exc)
                continue
            if head > self.max_head:
                best = head
                self.metrics.rpc_lies.labels("stalled-head").inc()
                log.warning("RPC endpoint %s is stuck at head %d while %s is at %d: moving to it",
                            self.endpoints[using].label, self.max_head, self.endpoints[idx].label, head)
                self._preferred = idx
                self.max_head, self._head_moved = head, time.monotonic()
                self.metrics.rpc_failovers.inc()
                self.last_failover = time.time()
                break
        return best


def _lone_result(client: RpcClient, payload: bytes, status: int):
    """The result of a request the guard sent alone (id 0), parsed by RpcClient's checks (not the head check)."""
    return RpcClient._parse(client, payload, status, 0, "probe")
