"""Sends the operator's transactions through the SQLite journal, so a crash never double-sends or forgets one.

Order of events for every transaction: estimate (a revert here is decoded and raised, nothing is journaled),
sign, journal as 'signed' (fsynced), broadcast, journal as 'sent', wait for the receipt, journal as 'mined' or
'reverted'. On start, ``recover`` settles every 'signed'/'sent' entry: a receipt ends it; a nonce already used
by another transaction marks it 'dropped'; otherwise the very same signed bytes are broadcast again (the same
hash, so the chain can include it at most once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..chain.contracts import ContractRevert, TransactionFailed, TxOptions, build_transaction, check_receipt
from ..chain.remote_signer import RemoteSignerError
from ..chain.rpc import RpcClient, RpcError, hex_int
from ..chain.tx import LocalSigner, decode_signed_transaction
from .store import JournalEntry, Store

log = logging.getLogger("alignment_node.tx")

GWEI = 10**9
FEE_CACHE_S = 2.0
REBROADCAST_AFTER_S = 3.0  # a pending transaction the node has forgotten for this long is sent again  # fee suggestions are reused this long (they are 2x the base fee anyway)


class OutOfGasMoney(Exception):
    """The operator account cannot pay for gas."""


def _is_funds_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "insufficient funds" in text or "insufficient balance" in text or "gas required exceeds" in text


class TxSender:
    """One operator account's transactions, one at a time (nonces in order)."""

    def __init__(self, rpc: RpcClient, signer: LocalSigner, store: Store, *, max_fee_gwei: float = 500.0,
                 priority_fee_gwei: float = 1.0, receipt_timeout: float = 120.0, metrics=None):
        self.rpc = rpc
        self.signer = signer
        self.store = store
        self.max_fee = int(max_fee_gwei * GWEI)
        self.priority_fee = int(priority_fee_gwei * GWEI)
        self.receipt_timeout = receipt_timeout
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._urgent_waiting = 0
        self._gas_limit: int | None = None
        self._fee_cache: tuple[float, tuple[int, int]] | None = None

    # --------------------------------------------------------------------------------------- send

    async def send(self, purpose: str, to: str, data: bytes, *, epoch: int | None = None,
                   meta: dict | None = None, gas: int | None = None, expected_errors: tuple[str, ...] = (),
                   gas_extra: int = 0, urgent: bool = True) -> dict:
        """Send one transaction and wait for it; returns the receipt. Raises ContractRevert (decoded),
        OutOfGasMoney, TransactionFailed. Urgent transactions (heartbeat, commit, reveal: they have deadlines)
        go before any waiting non-urgent one (settlements, miss reports)."""
        await self._acquire(urgent)
        try:
            try:
                nonce = await self.rpc.get_transaction_count(self.signer.address, "pending")
                highest = self.store.highest_nonce()
                open_nonces = [e.nonce for e in self.store.open_entries()]
                if open_nonces and highest is not None:
                    nonce = max(nonce, highest + 1)
                max_fee, tip = await self._fees()
                if gas_extra and gas is None:
                    # Estimate once here, add the allowance, and never ask for more than 90% of a block. A
                    # failing estimate leaves gas unset: build_transaction estimates again and decodes the revert.
                    estimate = await self._estimate(to, data)
                    if estimate:
                        gas = min(estimate + gas_extra, await self._block_gas_limit() * 9 // 10)
                signed = await build_transaction(
                    self.rpc, self.signer, to, data,
                    TxOptions(nonce=nonce, gas=gas, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip),
                    what=purpose,
                )
            except ContractRevert as exc:
                if exc.error_name in expected_errors:
                    log.debug("%s not sent: %s", purpose, exc)
                    raise
                self._failed(purpose, exc.error_name or "revert")
                log.error("%s would revert: %s", purpose, exc)
                raise
            except RpcError as exc:
                if _is_funds_error(exc):
                    self._failed(purpose, "out_of_gas_money")
                    raise self._out_of_money(purpose) from None
                raise
            except RemoteSignerError as exc:  # nothing was signed, so nothing is journaled
                self._failed(purpose, "signer")
                log.error("%s not signed: %s", purpose, exc)
                raise
            self.store.record_signed(nonce, purpose, epoch, signed.hash, signed.raw, meta)
            try:
                await self._broadcast(signed.raw, signed.hash)
            except TransactionFailed as exc:
                if _is_funds_error(exc):
                    self.store.mark(signed.hash, "dropped", error="insufficient funds")
                    self._failed(purpose, "out_of_gas_money")
                    raise self._out_of_money(purpose) from None
                # The node answered and refused it (not a lost connection): it will never be mined.
                self.store.mark(signed.hash, "dropped", error=str(exc)[:300])
                self._failed(purpose, "send_failed")
                raise
            self.store.mark(signed.hash, "sent")
            if self.metrics:
                self.metrics.tx_sent.labels(purpose).inc()
            log.info("sent %s tx %s nonce %d", purpose, signed.hash, nonce)
        finally:
            self._lock.release()
        sent_at = time.monotonic()
        receipt = await self._wait(signed.hash, signed.raw)
        if self.metrics:
            self.metrics.tx_latency.labels(purpose).observe(time.monotonic() - sent_at)
        return await self._settle(self.store.entry(signed.hash), receipt, signed)

    async def _wait(self, tx_hash: str, raw: bytes) -> dict:
        """Wait for a receipt; a transaction the node no longer knows (evicted from its pool, or lost by a
        failed-over endpoint) is broadcast again: the same bytes, so it can only be mined once."""
        deadline = time.monotonic() + self.receipt_timeout
        last_check = time.monotonic()
        delay = 0.1
        while True:
            receipt = await self.rpc.get_transaction_receipt(tx_hash)
            if receipt is not None:
                return receipt
            now = time.monotonic()
            if now >= deadline:
                raise TransactionFailed(f"no receipt for {tx_hash} after {self.receipt_timeout:g}s")
            if now - last_check >= REBROADCAST_AFTER_S:
                last_check = now
                if await self.rpc.get_transaction(tx_hash) is None:
                    log.warning("tx %s is unknown to the node: broadcasting it again", tx_hash)
                    try:
                        await self._broadcast(raw, tx_hash)
                    except TransactionFailed as exc:
                        log.warning("re-broadcast of %s refused: %s", tx_hash, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _acquire(self, urgent: bool) -> None:
        """Take the send lock; a non-urgent sender gives it up to any urgent one waiting."""
        if urgent:
            self._urgent_waiting += 1
            try:
                await self._lock.acquire()
            finally:
                self._urgent_waiting -= 1
            return
        while True:
            while self._urgent_waiting:
                await asyncio.sleep(0.02)
            await self._lock.acquire()
            if not self._urgent_waiting:
                return
            self._lock.release()
            await asyncio.sleep(0)

    # ------------------------------------------------------------------------------------ recover

    async def recover(self) -> list[JournalEntry]:
        """Settle every transaction a previous run left open; returns the entries it looked at."""
        entries = self.store.open_entries()
        for entry in entries:
            receipt = await self.rpc.get_transaction_receipt(entry.tx_hash)
            if receipt is None:
                used = await self.rpc.get_transaction_count(self.signer.address, "latest")
                if used > entry.nonce:
                    # Its nonce went to another transaction; this one can never be mined.
                    self.store.mark(entry.tx_hash, "dropped", error="nonce used by another transaction")
                    log.warning("journal: %s tx %s was never mined (nonce %d reused)", entry.purpose,
                                entry.tx_hash, entry.nonce)
                    continue
                log.info("journal: re-broadcasting %s tx %s (nonce %d)", entry.purpose, entry.tx_hash, entry.nonce)
                try:
                    await self._broadcast(entry.raw, entry.tx_hash)
                except TransactionFailed as exc:
                    log.error("journal: re-broadcast of %s failed: %s", entry.tx_hash, exc)
                    continue
                self.store.mark(entry.tx_hash, "sent")
                try:
                    receipt = await self._wait(entry.tx_hash, entry.raw)
                except TransactionFailed:
                    log.warning("journal: %s still pending after re-broadcast", entry.tx_hash)
                    continue
            try:
                await self._settle(entry, receipt, None)
            except ContractRevert:
                pass  # recorded as reverted; the service that sent it decides what to do next
        return entries

    # ----------------------------------------------------------------------------------- internal

    async def _block_gas_limit(self) -> int:
        if self._gas_limit is None:
            block = await self.rpc.get_block("latest")
            self._gas_limit = int(block["gasLimit"], 16)
        return self._gas_limit

    async def _estimate(self, to: str, data: bytes) -> int:
        """The estimate build_transaction will make, with its margin (a revert surfaces there, decoded)."""
        from ..chain.contracts import GAS_MARGIN_DEN, GAS_MARGIN_MIN, GAS_MARGIN_NUM

        try:
            estimate = await self.rpc.estimate_gas({"from": self.signer.address, "to": to, "data": data})
        except RpcError:
            return 0
        return max(estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN, estimate + GAS_MARGIN_MIN)

    async def _fees(self) -> tuple[int, int]:
        now = time.monotonic()
        if self._fee_cache and now - self._fee_cache[0] < FEE_CACHE_S:
            return self._fee_cache[1]
        fees = await self._fresh_fees()
        self._fee_cache = (now, fees)
        return fees

    async def _fresh_fees(self) -> tuple[int, int]:
        base_max, _ = await self.rpc.suggest_fees()
        max_fee = min(max(base_max, self.priority_fee * 2), self.max_fee)
        return max_fee, min(self.priority_fee, max_fee)

    async def _broadcast(self, raw: bytes, tx_hash: str) -> None:
        try:
            await self.rpc.send_raw_transaction(raw)
        except RpcError as exc:
            text = exc.message.lower()
            if "already known" in text or "already imported" in text:
                return
            if "nonce too low" in text and await self.rpc.get_transaction_receipt(tx_hash) is not None:
                return
            raise TransactionFailed(f"sending {tx_hash} failed: {exc.message}") from exc

    async def _settle(self, entry: JournalEntry, receipt: dict, signed: Any) -> dict:
        block = hex_int(receipt["blockNumber"])
        gas_used = hex_int(receipt.get("gasUsed", "0x0"))
        if self.metrics:
            self.metrics.tx_gas.labels(entry.purpose).inc(gas_used)
        if hex_int(receipt.get("status", "0x1")) == 1:
            self.store.mark(entry.tx_hash, "mined", block=block, gas_used=gas_used)
            return receipt
        self.store.mark(entry.tx_hash, "reverted", block=block, gas_used=gas_used)
        if signed is None:
            from ..chain.tx import SignedTx

            tx, y, r, s = decode_signed_transaction(entry.raw)
            signed = SignedTx(tx, entry.raw, entry.tx_hash, self.signer.address, y, r, s)
        try:
            await check_receipt(self.rpc, signed, receipt, entry.purpose)
        except ContractRevert as exc:
            self.store.mark(entry.tx_hash, "reverted", error=exc.error_name or str(exc))
            self._failed(entry.purpose, exc.error_name or "revert")
            log.error("%s tx %s reverted: %s", entry.purpose, entry.tx_hash, exc)
            raise
        return receipt

    def _failed(self, purpose: str, reason: str) -> None:
        if self.metrics:
            self.metrics.tx_failed.labels(purpose, reason).inc()

    def _out_of_money(self, purpose: str) -> OutOfGasMoney:
        msg = (f"operator {self.signer.address} cannot pay gas for {purpose}: fund it with the chain's native coin")
        log.critical("ALERT %s", msg)
        return OutOfGasMoney(msg)
