"""Sends the operator's transactions through the SQLite journal, so a crash never double-sends or forgets one.

Order of events for every transaction: estimate (a revert here is decoded and raised, nothing is journaled),
sign, journal as 'signed' (fsynced), broadcast, journal as 'sent', wait for the receipt, journal as 'mined' or
'reverted'. On start, ``recover`` settles every 'signed'/'sent' entry: a receipt ends it; a nonce already used
by another transaction marks it 'dropped'; otherwise the very same signed bytes are broadcast again (the same
hash, so the chain can include it at most once).

Fee spikes: a transaction not mined ``bump_after_s`` seconds and ``bump_after_blocks`` blocks after it was sent
is replaced: the same nonce, to, value, data and gas, signed again with maxFeePerGas and maxPriorityFeePerGas
each multiplied by ``bump_factor`` (at least the +10% a geth or anvil pool needs to accept a replacement; the
market's fee if that is higher), never above ``gas.max_fee_gwei``. Every replacement is journaled (meta
``replaces``: the hash it replaces) before it is broadcast. All of them share one nonce, so at most one can be
mined: whichever is gets settled, the others are marked 'dropped' ("replaced: ..."). A duty never gets a second
nonce. When the cap leaves no room for another replacement the node logs a critical line and keeps the
transaction in ``fee_capped`` (the ``fee_cap_reached`` alert, alert_conditions.py) until it is mined.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from ..chain.contracts import ContractRevert, TransactionFailed, TxOptions, build_transaction, check_receipt
from ..chain.remote_signer import RemoteSignerError
from ..chain.rpc import RpcClient, RpcError, hex_int
from ..chain.tx import Eip1559Tx, LocalSigner, SignedTx, decode_signed_transaction
from .nonces import above_base_fee, cancelled_if_moot, coming_base_fee, reorged_entry, replacement_fees, \
    repriced, sent_again
from .store import OPEN_STATES, DiskFull, JournalEntry, Store

log = logging.getLogger("alignment_node.tx")

GWEI = 10**9
# Gas a transaction may need beyond its estimate when it is mined in a later epoch than estimated: the epoch's first
# touch records its seed and committee size (three new slots) and books the operator's last present epoch.
EPOCH_TOUCH_GAS = 120_000
BASE_FEE_RETRIES = 2  # a transaction refused below a jumped base fee is signed again this many times at most
FEE_CACHE_S = 2.0  # fee suggestions are reused this long (they are 2x the base fee anyway)
REBROADCAST_AFTER_S = 3.0  # a pending transaction the node has forgotten for this long is sent again
REPLACEMENT_MIN_PCT = 10  # a geth (and anvil) pool takes a same-nonce replacement only with both fees +10%


class OutOfGasMoney(Exception):
    """The operator account cannot pay for gas."""


def _is_funds_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "insufficient funds" in text or "insufficient balance" in text or "gas required exceeds" in text


def _min_replacement(fee: int) -> int:
    """The least fee a pool accepts to replace a transaction paying ``fee`` (wei): REPLACEMENT_MIN_PCT more."""
    return fee + -(-fee * REPLACEMENT_MIN_PCT // 100)


def _gwei(wei: int) -> float:
    return round(wei / GWEI, 4)


class TxSender:
    """One operator account's transactions, one at a time (nonces in order)."""

    def __init__(self, rpc: RpcClient, signer: LocalSigner, store: Store, *, max_fee_gwei: float = 500.0,
                 priority_fee_gwei: float = 1.0, receipt_timeout: float = 120.0, bump_after_s: float = 10.0,
                 bump_after_blocks: int = 2, bump_factor: float = 1.25, metrics=None):
        if bump_factor < 1 + REPLACEMENT_MIN_PCT / 100:
            raise ValueError(f"bump_factor {bump_factor} is below {1 + REPLACEMENT_MIN_PCT / 100:g}: a node's pool "
                             "would refuse the replacements")
        self.rpc = rpc
        self.signer = signer
        self.store = store
        self.max_fee = int(max_fee_gwei * GWEI)
        self.priority_fee = int(priority_fee_gwei * GWEI)
        self.receipt_timeout = receipt_timeout
        self.bump_after_s = bump_after_s
        self.bump_after_blocks = bump_after_blocks
        self.bump_factor = bump_factor
        self.metrics = metrics
        # nonce: what the fee_cap_reached alert says about a transaction stuck at gas.max_fee_gwei
        self.fee_capped: dict[int, dict] = {}
        self._waiting: set[int] = set()  # nonces a _wait is watching (recover leaves them to it)
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
        go before any waiting non-urgent one (settlements, miss reports). Raises DiskFull, having signed and sent
        nothing, while the data directory is full (store.full): a transaction is never sent unjournaled."""
        if self.store.full is not None:
            self._failed(purpose, "disk_full")
            raise DiskFull(self.store.full)
        await self._acquire(urgent)
        try:
            try:
                nonce = await self.rpc.get_transaction_count(self.signer.address, "pending")
                highest = self.store.highest_nonce()
                open_nonces = [e.nonce for e in self.store.open_entries()]
                if open_nonces and highest is not None:
                    nonce = max(nonce, highest + 1)
                max_fee, tip = await self._fees()
                reused = await reorged_entry(self, purpose, epoch, to, data, meta)
                if reused is not None:  # the same duty on the nonce a reorg freed (nonces.py): one of them lands
                    old = self._signed_of(reused)
                    nonce, (max_fee, tip) = old.tx.nonce, replacement_fees(self, old, max_fee, tip)
                    meta = {**(meta or {}), "replaces": reused.tx_hash}
                    log.warning("%s of epoch %s sent again on nonce %d, the nonce of %s that a reorg took", purpose,
                                epoch, nonce, reused.tx_hash)
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
            for attempt in range(BASE_FEE_RETRIES + 1):
                try:
                    self.store.record_signed(nonce, purpose, epoch, signed.hash, signed.raw, meta)
                except DiskFull:  # not journaled, so never broadcast (the store logged it once and stops later sends)
                    self._failed(purpose, "disk_full")
                    raise
                try:
                    await self._broadcast(signed.raw, signed.hash)
                    break
                except TransactionFailed as exc:
                    if _is_funds_error(exc):
                        self.store.mark(signed.hash, "dropped", error="insufficient funds")
                        self._failed(purpose, "out_of_gas_money")
                        raise self._out_of_money(purpose) from None
                    # The node answered and refused it (not a lost connection): it will never be mined.
                    self.store.mark(signed.hash, "dropped", error=str(exc)[:300])
                    higher = await above_base_fee(self, exc, signed.tx.max_fee_per_gas) \
                        if attempt < BASE_FEE_RETRIES else None
                    if higher is None:
                        self._failed(purpose, "send_failed")
                        raise
                    # The base fee jumped past the fee just signed (it never entered the pool, so its nonce is
                    # free): sign the same transaction again at the base fee of the block to come.
                    log.warning("%s tx %s refused below the base fee: signing nonce %d again at max fee %d wei",
                                purpose, signed.hash, nonce, higher[0])
                    self._fee_cache = None
                    signed = await build_transaction(
                        self.rpc, self.signer, to, data,
                        TxOptions(nonce=nonce, gas=signed.tx.gas, max_fee_per_gas=higher[0],
                                  max_priority_fee_per_gas=higher[1]),
                        what=purpose,
                    )
            self.store.mark(signed.hash, "sent")
            if self.metrics:
                self.metrics.tx_sent.labels(purpose).inc()
            log.info("sent %s tx %s nonce %d", purpose, signed.hash, nonce)
        finally:
            self._lock.release()
        sent_at = time.monotonic()
        receipt, mined = await self._wait([signed], self.store.entry(signed.hash))
        if self.metrics:
            self.metrics.tx_latency.labels(purpose).observe(time.monotonic() - sent_at)
        return await self._settle(self.store.entry(mined.hash), receipt, mined)

    async def _wait(self, attempts: list[SignedTx], first: JournalEntry) -> tuple[dict, SignedTx]:
        """Wait for a receipt of any of ``attempts`` (one nonce, lowest fee first; the last one is in the pool),
        replacing the newest with a higher fee when it waits too long (see the module docstring). A transaction
        the node no longer knows (evicted from its pool, or lost by a failed-over endpoint) is broadcast again:
        the same bytes, so it can only be mined once. Returns the receipt and the attempt it is for."""
        nonce = attempts[-1].tx.nonce
        self._waiting.add(nonce)
        try:
            return await self._watch(list(attempts), first, nonce)
        finally:
            self._waiting.discard(nonce)

    async def _watch(self, attempts: list[SignedTx], first: JournalEntry, nonce: int) -> tuple[dict, SignedTx]:
        start = last_check = bumped_at = time.monotonic()
        deadline = start + self.receipt_timeout
        bumped_block = await self.rpc.block_number()
        delay = 0.1
        while True:
            for attempt in reversed(attempts):
                receipt = await self.rpc.get_transaction_receipt(attempt.hash)
                if receipt is not None:
                    self._retire(attempts, attempt)
                    return receipt, attempt
            now = time.monotonic()
            newest = attempts[-1]
            if now >= deadline:
                raise TransactionFailed(f"no receipt for {newest.hash} (nonce {nonce}) after "
                                        f"{self.receipt_timeout:g}s")
            if now - last_check >= REBROADCAST_AFTER_S:
                last_check = now
                if await self.rpc.get_transaction(newest.hash) is None:
                    log.warning("tx %s is unknown to the node: broadcasting it again", newest.hash)
                    try:
                        await self._broadcast(newest.raw, newest.hash)
                    except TransactionFailed as exc:
                        log.warning("re-broadcast of %s refused: %s", newest.hash, exc)
            if nonce not in self.fee_capped and now - bumped_at >= self.bump_after_s:
                head = await self.rpc.block_number()
                gap = head - bumped_block >= self.bump_after_blocks and await self._fill_gap(nonce)
                if gap and newest.tx.max_fee_per_gas >= await coming_base_fee(self.rpc):
                    bumped_at, bumped_block = time.monotonic(), head  # no fee can mine it past a gap
                elif head - bumped_block >= self.bump_after_blocks:  # the gap filled, it still needs a fee the
                    # next block takes (a spike and a reorg together): replaced in the same pass, not one later
                    replacement = await cancelled_if_moot(self, newest, first) or await self._replace(newest, first)
                    if replacement is not None:
                        attempts.append(replacement)
                    bumped_at, bumped_block = time.monotonic(), head
                    delay = 0.1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _fill_gap(self, nonce: int) -> bool:
        """Whether a lower nonce of this account is missing from the chain (a reorg dropped a mined transaction,
        or a pool evicted one): then each missing nonce's journaled transaction is broadcast again, the same
        bytes (the one that was mined, else the newest signed), since nothing past the gap can be mined."""
        mined = await self.rpc.get_transaction_count(self.signer.address, "latest")
        if mined >= nonce:
            return False
        for n in range(mined, nonce):
            entries = self.store.for_nonce(n)
            if not entries:
                log.error("nonce %d is missing from the chain and from the journal: nonce %d waits for it", n, nonce)
                continue
            entry = next((e for e in reversed(entries) if e.state == "mined"), entries[-1])
            log.warning("nonce %d is not on chain any more (%s tx %s): broadcasting it again before nonce %d",
                        n, entry.purpose, entry.tx_hash, nonce)
            try:
                await self._broadcast(entry.raw, entry.tx_hash)
            except TransactionFailed as exc:
                if await repriced(self, entries, exc) is None:
                    log.warning("re-broadcast of %s refused: %s", entry.tx_hash, exc)
        return True

    async def _replace(self, prev: SignedTx, first: JournalEntry, cancel: bool = False) -> SignedTx | None:
        """Sign, journal and broadcast ``prev`` again with higher fees; None when the cap leaves no room for a
        replacement (then ``fee_capped`` holds why) or the node refused it (it is journaled 'dropped'). ``cancel``:
        a transfer of nothing to this account instead (nonces.cancelled_if_moot)."""
        old = prev.tx
        market_max, market_tip = await self.rpc.suggest_fees(self.priority_fee)
        market_max = max(market_max, 2 * await coming_base_fee(self.rpc) + self.priority_fee)  # a spike announced
        want_max = max(self._bumped(old.max_fee_per_gas), market_max)
        want_tip = max(self._bumped(old.max_priority_fee_per_gas), self.priority_fee)
        max_fee = min(want_max, self.max_fee)
        tip = min(want_tip, max_fee)
        if max_fee < _min_replacement(old.max_fee_per_gas) or tip < _min_replacement(old.max_priority_fee_per_gas):
            self._cap_reached(prev, first, market_max, market_tip)
            return None
        to, data, gas = (self.signer.address, b"", 21_000) if cancel else (old.to, old.data, old.gas)
        tx = Eip1559Tx(chain_id=old.chain_id, nonce=old.nonce, max_priority_fee_per_gas=tip, max_fee_per_gas=max_fee,
                       gas=gas, to=to, value=0 if cancel else old.value, data=data, access_list=old.access_list)
        try:
            sign_async = getattr(self.signer, "sign_transaction_async", None)
            signed = await sign_async(tx) if sign_async is not None else self.signer.sign_transaction(tx)
        except RemoteSignerError as exc:
            log.error("replacement of %s tx %s not signed: %s", first.purpose, prev.hash, exc)
            return None
        meta = {k: v for k, v in first.meta.items() if k != "replaces"}
        try:
            self.store.record_signed(old.nonce, first.purpose, first.epoch, signed.hash, signed.raw,
                                     {**meta, "replaces": prev.hash, **({"cancels": prev.hash} if cancel else {})})
        except DiskFull:  # not journaled, so not broadcast: the previous one stays pending
            return None
        try:
            await self._broadcast(signed.raw, signed.hash)
        except TransactionFailed as exc:
            self.store.mark(signed.hash, "dropped", error=str(exc)[:300])
            if _is_funds_error(exc):
                self._out_of_money(first.purpose)
            log.warning("replacement of %s tx %s refused (the previous one is still pending): %s", first.purpose,
                        prev.hash, exc)
            if max_fee == self.max_fee and not _is_funds_error(exc) and "nonce too low" not in str(exc).lower():
                self._cap_reached(prev, first, market_max, market_tip)  # the pool wants more than the cap allows
            return None
        self.store.mark(signed.hash, "sent")
        if self.metrics:
            self.metrics.tx_replacements.labels(first.purpose).inc()
        log.warning("%s tx %s (nonce %d) not mined: replaced by %s, max fee %s -> %s gwei, tip %s -> %s gwei",
                    first.purpose, prev.hash, old.nonce, signed.hash, _gwei(old.max_fee_per_gas), _gwei(max_fee),
                    _gwei(old.max_priority_fee_per_gas), _gwei(tip))
        return signed

    def _bumped(self, fee: int) -> int:
        return max(math.ceil(fee * self.bump_factor), _min_replacement(fee))

    def _cap_reached(self, prev: SignedTx, first: JournalEntry, market_max: int, market_tip: int) -> None:
        nonce, base = prev.tx.nonce, max(0, (market_max - market_tip) // 2)
        summary = (f"{first.purpose} tx {prev.hash} (nonce {nonce}) is not mined at a max fee of "
                   f"{_gwei(prev.tx.max_fee_per_gas)} gwei and cannot be replaced: gas.max_fee_gwei caps the fee at "
                   f"{_gwei(self.max_fee)} gwei while the market asks {_gwei(market_max)} gwei (base fee "
                   f"{_gwei(base)} gwei); raise gas.max_fee_gwei or wait for the fees to fall")
        self.fee_capped[nonce] = {"summary": summary, "purpose": first.purpose, "tx_hash": prev.hash, "nonce": nonce,
                                  "max_fee_gwei": _gwei(prev.tx.max_fee_per_gas), "cap_gwei": _gwei(self.max_fee),
                                  "market_fee_gwei": _gwei(market_max), "base_fee_gwei": _gwei(base)}
        self._failed(first.purpose, "fee_cap_reached")
        log.critical("ALERT %s", summary)

    def _retire(self, attempts: list[SignedTx], mined: SignedTx) -> None:
        """``mined`` took the nonce: every other attempt of it can never be mined."""
        self.fee_capped.pop(mined.tx.nonce, None)
        for attempt in attempts:
            if attempt.hash != mined.hash and self.store.entry(attempt.hash).state in OPEN_STATES:
                self.store.mark(attempt.hash, "dropped", error=f"replaced: nonce {mined.tx.nonce} was mined as "
                                f"{mined.hash}")

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
        """Settle every transaction a previous run left open; returns the entries it looked at. The entries of
        one nonce (a transaction and its fee replacements) are settled together: a receipt of any of them ends
        them all; else the highest-fee one is broadcast again and waited for (and replaced if it stalls). A nonce a
        send of this run is still waiting for is left to that send."""
        entries = self.store.open_entries()
        by_nonce: dict[int, list[JournalEntry]] = {}
        for entry in entries:
            by_nonce.setdefault(entry.nonce, []).append(entry)
        for nonce, group in by_nonce.items():
            if nonce in self._waiting:
                continue  # a send of this run is waiting for it (and replacing it when it stalls)
            attempts = sorted((self._signed_of(e) for e in group),
                              key=lambda s: (s.tx.max_fee_per_gas, s.tx.max_priority_fee_per_gas))
            receipt, mined = None, None
            for attempt in reversed(attempts):
                receipt = await self.rpc.get_transaction_receipt(attempt.hash)
                if receipt is not None:
                    mined = attempt
                    break
            if mined is None:
                used = await self.rpc.get_transaction_count(self.signer.address, "latest")
                if used > nonce:
                    for attempt in attempts:  # mined since the look above?
                        receipt = await self.rpc.get_transaction_receipt(attempt.hash)
                        if receipt is not None:
                            mined = attempt
                            break
                if mined is None and used > nonce:
                    # Its nonce went to another transaction; none of these can ever be mined.
                    for entry in group:
                        self.store.mark(entry.tx_hash, "dropped", error="nonce used by another transaction")
                        log.warning("journal: %s tx %s was never mined (nonce %d reused)", entry.purpose,
                                    entry.tx_hash, nonce)
                    continue
            if mined is None:
                best = attempts[-1]
                entry = self.store.entry(best.hash)
                again = await sent_again(self, best, nonce)
                if again is False:
                    continue
                if again is not True:
                    attempts.append(again)
                try:
                    receipt, mined = await self._wait(attempts, entry)
                except TransactionFailed:
                    log.warning("journal: %s still pending after re-broadcast", best.hash)
                    continue
            else:
                self._retire(attempts, mined)
            try:
                await self._settle(self.store.entry(mined.hash), receipt, mined)
            except ContractRevert:
                pass  # recorded as reverted; the service that sent it decides what to do next
        return entries

    def _signed_of(self, entry: JournalEntry) -> SignedTx:
        tx, y, r, s = decode_signed_transaction(entry.raw)
        return SignedTx(tx, entry.raw, entry.tx_hash, self.signer.address, y, r, s)

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
            signed = self._signed_of(entry)
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
