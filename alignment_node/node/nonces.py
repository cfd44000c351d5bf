"""Same-nonce resends (issue 18): what keeps a duty to one transaction that can land when the chain forgets one.

A reorg can drop a mined transaction; a chain's pool may give it back (geth re-injects the dropped blocks'
transactions) or not. Sending the duty again on a new nonce would then let both land (a second heartbeat, a second
settlement: a reverted duplicate). So:

- ``reorged_entry``: before a service's transaction is signed, the journal is asked for a transaction of the same
  duty (same purpose, epoch, recipient and calldata; for a reveal, one covering every license of the new one)
  whose receipt a reorg took and whose nonce the chain has not used since. The new transaction takes that nonce,
  with fees a pool accepts as a replacement of it: whichever of the two is mined, the other cannot be.
- ``repriced``: a journaled transaction broadcast again (at a restart, or to fill a nonce gap a reorg left) that the
  pool refuses because the base fee rose past its max fee is replaced on its nonce at the fees of the block to
  come, instead of leaving every later nonce stuck behind it until the fees fall.
- ``sent_again``: at a restart, an open nonce goes out again after any lower nonce a reorg took, re-signed at once
  when a spike has put its fee under the base fee (the chaos scenario's missed reveal, docs/node.md).
"""

from __future__ import annotations

import logging
from typing import Any

from ..chain.contracts import TransactionFailed
from ..chain.rpc import RpcError, hex_int
from ..chain.tx import SignedTx
from .store import REORG_NOTE, JournalEntry

log = logging.getLogger("alignment_node.tx")

# ``sender`` below is the TxSender (txsender.py) whose journal and fees these work on.


def _same_duty(entry: JournalEntry, old: SignedTx, purpose: str, to: str, data: bytes, meta: dict | None) -> bool:
    if (old.tx.to or "").lower() != to.lower():
        return False
    if old.tx.data == data:
        return True
    # A reveal sent again opens the same root (the same calldata); should its licenses differ, one that covered them
    # all is the same duty.
    licenses = set((meta or {}).get("licenses", []))
    return purpose == "reveal" and bool(licenses) and licenses <= set(entry.meta.get("licenses", []))


async def reorged_entry(sender: Any, purpose: str, epoch: int | None, to: str, data: bytes,
                        meta: dict | None) -> JournalEntry | None:
    """The journaled transaction of this duty a reorg took whose nonce is still free on chain, or None."""
    if epoch is None:
        return None
    latest = None
    for entry in reversed(sender.store.for_duty(purpose, epoch)):
        if entry.state == "dropped" and REORG_NOTE not in (entry.error or ""):
            continue  # replaced, refused, or its nonce used by another transaction
        if entry.state not in ("mined", "dropped"):
            continue
        old = sender._signed_of(entry)
        if not _same_duty(entry, old, purpose, to, data, meta):
            continue
        if entry.state == "mined" and await sender.rpc.get_transaction_receipt(entry.tx_hash) is not None:
            return None  # the duty's transaction is on chain: nothing was lost
        if latest is None:
            latest = await sender.rpc.get_transaction_count(sender.signer.address, "latest")
        if latest <= old.tx.nonce:
            return entry
    return None


def replacement_fees(sender: Any, old: SignedTx, max_fee: int, tip: int) -> tuple[int, int]:
    """Fees at least the market's and a replacement's step above ``old``'s, within the cap."""
    max_fee = min(max(max_fee, sender._bumped(old.tx.max_fee_per_gas)), sender.max_fee)
    tip = min(max(tip, sender._bumped(old.tx.max_priority_fee_per_gas)), max_fee)
    return max_fee, tip


async def repriced(sender: Any, entries: list[JournalEntry], exc: TransactionFailed) -> SignedTx | None:
    """``entries`` (one nonce, oldest first) could not be broadcast again because of ``exc``: when that is the base
    fee having risen past their fees, the newest is replaced on its nonce at the coming block's (journaled, sent);
    the replacement, or None."""
    if "base fee" not in str(exc).lower() and "underpriced" not in str(exc).lower():
        return None
    newest = sender._signed_of(entries[-1])
    replacement = await sender._replace(newest, entries[0])
    if replacement is not None:
        log.warning("%s tx %s (nonce %d) refused below the base fee when broadcast again: replaced by %s",
                    entries[0].purpose, newest.hash, newest.tx.nonce, replacement.hash)
    return replacement


async def sent_again(sender: Any, best: SignedTx, nonce: int) -> SignedTx | bool:
    """At a restart, an open nonce's highest-fee attempt goes out again, after any lower nonce a reorg took while
    the node was down (``_fill_gap``): the same bytes, or, when its max fee is under the coming block's base fee
    (signed before a spike: the same bytes would only wait in the pool for a bump), a replacement at once. The
    replacement, True for the same bytes, False when neither went out (logged)."""
    await sender._fill_gap(nonce)
    entry = sender.store.entry(best.hash)
    if best.tx.max_fee_per_gas < await coming_base_fee(sender.rpc):
        replacement = await sender._replace(best, sender.store.for_nonce(nonce)[0])
        if replacement is None:
            log.error("journal: %s tx %s is below the base fee and could not be replaced", entry.purpose, best.hash)
            return False
        log.warning("journal: %s tx %s (nonce %d) was signed below the coming base fee: replaced by %s",
                    entry.purpose, best.hash, nonce, replacement.hash)
        return replacement
    log.info("journal: re-broadcasting %s tx %s (nonce %d)", entry.purpose, best.hash, nonce)
    try:
        await sender._broadcast(best.raw, best.hash)
        sender.store.mark(best.hash, "sent")
        return True
    except TransactionFailed as exc:
        replacement = await repriced(sender, sender.store.for_nonce(nonce), exc)
        if replacement is None:
            log.error("journal: re-broadcast of %s failed: %s", best.hash, exc)
            return False
        return replacement


async def coming_base_fee(rpc) -> int:
    """The base fee of the block to come (the pending block's; the latest's where there is none)."""
    block = await rpc.get_block("pending") or await rpc.get_block("latest")
    return hex_int(block.get("baseFeePerGas", "0x0")) if block else 0


async def above_base_fee(sender: Any, exc: TransactionFailed, signed_max_fee: int) -> tuple[int, int] | None:
    """Fees for a transaction refused because its max fee is below the base fee of the block to come: twice that
    base fee plus the tip, capped; None for another refusal, or when the cap leaves no higher fee."""
    if "base fee" not in str(exc).lower():
        return None
    tip = min(sender.priority_fee, sender.max_fee)
    max_fee = min(2 * await coming_base_fee(sender.rpc) + tip, sender.max_fee)
    return (max_fee, tip) if max_fee > signed_max_fee else None


MOOT_PURPOSES = ("settle", "report_miss", "answer_challenge")  # transactions another node's can make pointless while they wait


async def cancelled_if_moot(sender: Any, prev: SignedTx, first: JournalEntry) -> SignedTx | None:
    """A settlement or miss report about to be replaced for a higher fee that would now revert (another node's got
    there first while it waited): it is replaced instead by a transfer of nothing to the node's own account on the
    same nonce (21,000 gas), so the nonce moves on without a reverted transaction. The cancel, or None."""
    if first.purpose not in MOOT_PURPOSES:
        return None
    try:
        await sender.rpc.estimate_gas({"from": sender.signer.address, "to": prev.tx.to, "data": prev.tx.data})
        return None
    except RpcError as exc:
        if "revert" not in str(exc).lower():
            return None
    cancel = await sender._replace(prev, first, cancel=True)
    if cancel is not None:
        log.warning("%s tx %s (nonce %d) would revert now: cancelled by %s", first.purpose, prev.hash,
                    prev.tx.nonce, cancel.hash)
    return cancel
