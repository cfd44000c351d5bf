"""docs/spec/PROTOCOL.md as pure functions, mirroring the contracts line by line (see docs/protocol.md).

Each function states one rule. Amounts are integers in wei of the reward token, epochs and blocks are
integers, hashes are 32-byte ``bytes``. Differential tests hold these against the deployed contracts.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from eth_abi import encode

from ..chain.keccak import keccak256 as keccak  # keccak256 of bytes (Ethereum's, not NIST SHA3-256)

UINT256_MAX = 2**256 - 1
BPS = 10_000

NO_VOTE = 0  # only in a reveal's list: the license did not audit the target (its seat is not revealed)
OK = 1
FAULT = 2
UNREACHABLE = 3
INCONCLUSIVE = 4
VERDICT_NAMES = {OK: "OK", FAULT: "FAULT", UNREACHABLE: "UNREACHABLE", INCONCLUSIVE: "INCONCLUSIVE"}

PENALTY_MISS = 1
PENALTY_DISAGREE = 2
PENALTY_TRAP = 3
PENALTY_NAMES = {PENALTY_MISS: "miss", PENALTY_DISAGREE: "disagree", PENALTY_TRAP: "trap"}  # RewardVault.PENALTY_*

DELEGATION_STATE_NAMES = {0: "free", 1: "pending", 2: "delegated"}  # OperatorRegistry delegation states

KIND_EVM_RPC = 1
KIND_COMETBFT = 2
KIND_ZGS_STORAGE = 3
KIND_DA_SIGNER = 4
KIND_MODEL = 5
KIND_NAMES = {
    KIND_EVM_RPC: "EVM_RPC",
    KIND_COMETBFT: "COMETBFT",
    KIND_ZGS_STORAGE: "ZGS_STORAGE",
    KIND_DA_SIGNER: "DA_SIGNER",
    KIND_MODEL: "MODEL",
}


# ------------------------------------------------------------------------------------------ epochs


def epoch_at(block: int, genesis_block: int, epoch_length: int) -> int:
    """The epoch block ``block`` belongs to (section 5), for a clock whose length never changed; after a
    governance change of the epoch length, pass the latest clock's anchor block and subtract/add its anchor
    epoch, or ask the contract (``AuditProtocol.epochAt``)."""
    assert block >= genesis_block, "block before genesis"
    assert epoch_length > 0
    return (block - genesis_block) // epoch_length


def epoch_start_block(epoch: int, genesis_block: int, epoch_length: int) -> int:
    """First block of ``epoch``."""
    return genesis_block + epoch * epoch_length


def reveal_window(epoch: int, genesis_block: int, epoch_length: int, reveal_blocks: int) -> tuple[int, int]:
    """Blocks ``[start, end)`` in which reveals for ``epoch`` are accepted: the first ``reveal_blocks`` of e+1."""
    start = epoch_start_block(epoch + 1, genesis_block, epoch_length)
    return start, start + reveal_blocks


def seed(last_seed: bytes, anchor_block_hash: bytes, epoch: int) -> bytes:
    """seed(e) = keccak256(abi.encode(lastSeed, blockhash(epochStartBlock(e) - 1), e)) (section 5, as changed
    by issue 16: the block is fixed in advance, so the first caller of an epoch no longer picks it; when that
    block is more than 256 blocks old at the first touch, the hash of the block before the touch stands in)."""
    return keccak(encode(["bytes32", "bytes32", "uint256"], [last_seed, anchor_block_hash, epoch]))


# --------------------------------------------------------------------------------------- committees
#
# Exact committees (issue 16): the licenses listed at an epoch's start (OperatorRegistry's list: a license is
# listed from the epoch after it became Delegated, until the epoch after it left) are shuffled by the
# swap-or-not permutation of ethereum/consensus-specs (`compute_shuffled_index`, 90 rounds, keccak256 for
# sha256). Target t's committee is the licenses at list positions shuffle((t*k + j) mod n), j < k: exactly
# k = committeeSize distinct licenses when n >= k, everyone when n <= k. A license at list position q sits on
# the targets whose seats t*k .. t*k+k-1 contain unshuffle(q) modulo n: one inverse shuffle per license, then
# O(1) per target, on chain and here.

SHUFFLE_ROUNDS = 90


def _shuffle_round(index: int, count: int, seed_: bytes, r: int, h) -> int:
    rb = bytes((r,))
    pivot = int.from_bytes(h(seed_ + rb)[:8], "little") % count
    flip = (pivot + count - index) % count
    position = max(index, flip)
    source = h(seed_ + rb + (position >> 8).to_bytes(4, "little"))
    return flip if (source[(position & 0xFF) >> 3] >> (position & 7)) & 1 else index


def shuffled_index(index: int, count: int, seed_: bytes, rounds: int = SHUFFLE_ROUNDS, h=keccak) -> int:
    """consensus-specs ``compute_shuffled_index`` with hash ``h`` (keccak256 on chain; sha256 is the spec's)."""
    assert 0 <= index < count < 2**32, "index out of range"
    for r in range(rounds):
        index = _shuffle_round(index, count, seed_, r, h)
    return index


def unshuffled_index(index: int, count: int, seed_: bytes, rounds: int = SHUFFLE_ROUNDS, h=keccak) -> int:
    """The inverse of ``shuffled_index``: every round swaps a pair or not, so the rounds run backwards."""
    assert 0 <= index < count < 2**32, "index out of range"
    for r in reversed(range(rounds)):
        index = _shuffle_round(index, count, seed_, r, h)
    return index


def unshuffled_indexes(indexes: Sequence[int], count: int, seed_: bytes, rounds: int = SHUFFLE_ROUNDS,
                       h=keccak) -> list[int]:
    """``unshuffled_index`` of many indexes at once: the per-round pivot and the source hash of each block of
    256 positions are computed once (a node with 10,000 licenses among 175,500 hashes about 62,000 times)."""
    out = list(indexes)
    assert all(0 <= i < count for i in out) and count < 2**32, "index out of range"
    for r in reversed(range(rounds)):
        rb = bytes((r,))
        pivot = int.from_bytes(h(seed_ + rb)[:8], "little") % count
        sources: dict[int, bytes] = {}
        for k, index in enumerate(out):
            flip = (pivot + count - index) % count
            position = index if index > flip else flip
            block = position >> 8
            source = sources.get(block)
            if source is None:
                source = sources[block] = h(seed_ + rb + block.to_bytes(4, "little"))
            if (source[(position & 0xFF) >> 3] >> (position & 7)) & 1:
                out[k] = flip
    return out


def committee_positions(epoch_seed: bytes, target_id: int, listed: int, committee_size: int) -> list[int]:
    """List positions of target ``target_id``'s committee among ``listed`` licenses, seat by seat."""
    if listed <= committee_size:
        return list(range(listed))
    return [shuffled_index((target_id * committee_size + j) % listed, listed, epoch_seed)
            for j in range(committee_size)]


def seat_targets(seat: int, listed: int, committee_size: int, enabled_targets: Sequence[int]) -> list[int]:
    """The targets (ascending) of the license whose unshuffled list position is ``seat``."""
    if listed <= committee_size:
        return sorted(enabled_targets)
    return sorted(t for t in enabled_targets if is_seated(seat, t, listed, committee_size))


def is_seated(seat: int, target_id: int, listed: int, committee_size: int) -> bool:
    """Whether seat ``seat`` (an unshuffled list position) is one of target ``target_id``'s seats: t*k + j
    modulo ``listed`` for some j < k (AuditProtocol._seated)."""
    return listed <= committee_size or (seat - target_id * committee_size) % listed < committee_size


def duties(epoch_seed: bytes, positions: dict[int, int], listed: int, committee_size: int,
           enabled_targets: Sequence[int]) -> dict[int, list[int]]:
    """The targets each license must audit in the epoch, from its list position (``positions``: license ->
    position, the ones not listed left out) and the epoch's list length (section 6 as changed by issue 16).
    A license that is not active in the epoch has no duty, whatever its seats."""
    lics = sorted(positions)
    if listed <= committee_size:
        return {lic: sorted(enabled_targets) for lic in lics}
    seats = unshuffled_indexes([positions[lic] for lic in lics], listed, epoch_seed)
    enabled = sorted(enabled_targets)
    out: dict[int, list[int]] = {}
    top = (max(enabled) + 1) * committee_size if enabled else 0
    enabled_set = set(enabled)
    for lic, seat in zip(lics, seats):
        # the seats s = seat + m*listed below (max target + 1) * k, each in target s // k
        ts = {s // committee_size for s in range(seat, top, listed)}
        out[lic] = sorted(ts & enabled_set)
    return out


# ----------------------------------------------------------------------------------------- verdicts
#
# Commit and reveal per operator (issue 16, step 2): an operator's active licenses vote OK on every target they sit
# on, except the votes its reveal lists: FAULT, UNREACHABLE, or NO_VOTE (the license did not audit the target: its
# seat counts as not revealed). The commitment is the hash of that list under one secret salt per epoch.

Vote = tuple[int, int, int, bytes]  # (license, targetId, verdict, evidenceRoot): AuditProtocol.Vote
VOTE_TYPE = "(uint256,uint256,uint8,bytes32)[]"
LISTED_VERDICTS = (NO_VOTE, FAULT, UNREACHABLE)


def vote_key(epoch: int, target: int, license_id: int) -> bytes:
    """AuditProtocol's key of one listed vote, and of its evidence challenge: keccak256(abi.encode(e, t, license))."""
    return keccak(encode(["uint256", "uint256", "uint256"], [epoch, target, license_id]))


def vote_commitment(epoch: int, operator: str, salt: bytes, votes: Sequence[Vote]) -> bytes:
    """keccak256(abi.encode(epoch, operator, salt, votes)) (AuditProtocol.commitmentOf): what ``commit`` takes.
    ``votes`` must be strictly increasing by (target, license) and list no OK (``sorted_votes`` makes them)."""
    keys = [(t, lic) for lic, t, _v, _r in votes]
    assert keys == sorted(set(keys)), "votes must be strictly increasing by (target, license)"
    assert all(v in LISTED_VERDICTS for _l, _t, v, _r in votes), "a listed vote is NO_VOTE, FAULT or UNREACHABLE"
    return keccak(encode(["uint256", "address", "bytes32", VOTE_TYPE],
                         [epoch, operator, salt, [(lic, t, v, bytes(r)) for lic, t, v, r in votes]]))


def sorted_votes(openings: Sequence[tuple[int, Sequence[int], Sequence[int], Sequence[bytes]]]) -> list[Vote]:
    """The listed votes of an operator's per-license openings ``(license, targets, verdicts, roots)``: every vote
    that is not OK (an OK is implicit), sorted by (target, license) as ``reveal`` requires."""
    votes = []
    for lic, targets, verdicts, roots in openings:
        assert len(targets) == len(verdicts) == len(roots), "lists must have equal lengths"
        for t, v, r in zip(targets, verdicts, roots):
            assert v in (OK,) + LISTED_VERDICTS, f"verdict {v} of license {lic} on target {t}"
            if v != OK:
                votes.append((lic, t, v, bytes(r)))
    votes.sort(key=lambda vote: (vote[1], vote[0]))
    keys = [(t, lic) for lic, t, _v, _r in votes]
    assert len(set(keys)) == len(keys), "a license votes twice on one target"
    return votes


def seat_verdict(revealed: bool, listed: int | None) -> int:
    """A seat's verdict in the tally (AuditProtocol._seats): NO_VOTE when its operator did not reveal, else the
    verdict its reveal listed, else OK. A NO_VOTE seat is not revealed (reportMiss applies)."""
    if not revealed:
        return NO_VOTE
    return OK if listed is None else listed


def seat_tally(verdicts: Sequence[int]) -> tuple[int, int, int, int]:
    """(ok, fault, unreachable, reveals) of a committee's seats with a duty (``seat_verdict`` each): what
    AuditProtocol.tally reads; NO_VOTE seats count in none of them."""
    ok, fault, unreachable = (sum(1 for v in verdicts if v == x) for x in (OK, FAULT, UNREACHABLE))
    return ok, fault, unreachable, ok + fault + unreachable


def outcome(ok: int, fault: int, unreachable: int, min_reveals: int, trap_outcome: int = 0) -> int:
    """Settled outcome: a revealed trap's truth; else, of >= min_reveals votes, OK with >= 2/3 OK, "not OK" with
    >= 2/3 FAULT and UNREACHABLE together (security review M4): FAULT when fault >= unreachable, else
    UNREACHABLE; INCONCLUSIVE otherwise."""
    if trap_outcome:
        return trap_outcome
    n = ok + fault + unreachable
    if n == 0 or n < min_reveals:
        return INCONCLUSIVE
    if ok * 3 >= 2 * n:
        return OK
    if (fault + unreachable) * 3 >= 2 * n:
        return FAULT if fault >= unreachable else UNREACHABLE
    return INCONCLUSIVE


def priced_side(ok: int, fault: int, unreachable: int, min_reveals: int, trap_outcome: int = 0) -> int:
    """What the disagree (or trap) penalty judges votes against at settlement: the outcome. An INCONCLUSIVE tally
    prices nobody, even with a strict majority (docs/protocol.md, "Verdicts": a split is how a fault's onset looks
    to honest auditors); a referee-decided FAULT prices nobody either (``settled_with_referee``)."""
    return outcome(ok, fault, unreachable, min_reveals, trap_outcome)


def disagrees(verdict: int, settled: int) -> bool:
    """An OK vote against a FAULT/UNREACHABLE outcome, or the reverse. FAULT vs UNREACHABLE is agreement."""
    if settled == INCONCLUSIVE:
        return False
    return (verdict == OK) != (settled == OK)


def referees_drawn(epoch_seed: bytes, target_id: int, referees: Sequence[str], committee: int) -> list[str]:
    """The referees of (epoch, MODEL target) (RefereeCourt.isAssigned; docs/protocol.md, the referee duty):
    ``min(committee, n)`` consecutive entries of the baseline's referee list (in its on-chain order), from
    offset ``keccak256(abi.encode(seed, "referee", targetId)) mod n``."""
    n = len(referees)
    if n == 0 or epoch_seed == b"\x00" * 32:
        return []
    start = int.from_bytes(keccak(encode(["bytes32", "string", "uint256"], [epoch_seed, "referee", target_id])),
                           "big") % n
    return [referees[(start + i) % n] for i in range(min(committee, n))]


def referee_ruling(ok_votes: int, fault_votes: int) -> int:
    """The referees' verdict: the majority of their OK and FAULT verdicts; 0 for none or a tie."""
    return FAULT if fault_votes > ok_votes else OK if ok_votes > fault_votes else 0


def settled_with_referee(committee_outcome: int, referee_verdict: int, trap_outcome: int = 0) -> tuple[int, bool]:
    """(outcome, referee-decided): a referee FAULT turns an OK or INCONCLUSIVE committee outcome into FAULT; a
    referee OK never overturns a FAULT; a trap's truth stands. Nobody is penalized for disagreeing with a
    referee-decided FAULT."""
    if not trap_outcome and referee_verdict == FAULT and committee_outcome in (OK, INCONCLUSIVE):
        return FAULT, True
    return committee_outcome, False


def trap_seal(target_id: int, trap_outcome: int, salt: bytes) -> bytes:
    """keccak256(abi.encode(t, outcome, salt)): the trap keeper's anonymous seal (section 9), posted before target
    ``t`` is registered (``t`` is the id it will get) and stored under this hash only."""
    return keccak(encode(["uint256", "uint8", "bytes32"], [target_id, trap_outcome, salt]))


# ----------------------------------------------------------------------------------------- evidence


def canonical_json(bundle: Any) -> bytes:
    """The canonical bytes of an evidence bundle: UTF-8 JSON, sorted keys, no spaces, no floats."""

    def reject_floats(value: Any) -> None:
        if isinstance(value, float):
            raise ValueError("evidence bundles carry no floats: use integers (ms, wei) or strings")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise ValueError(f"evidence keys must be strings, got {k!r}")
                reject_floats(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                reject_floats(v)

    reject_floats(bundle)
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def evidence_root(bundle: Any) -> bytes:
    """evidenceRoot = keccak256(canonical JSON bytes of the evidence bundle) (section 7)."""
    return keccak(canonical_json(bundle))


# ------------------------------------------------------------------------------------------ rewards


def presence_credit(budget: int, active_count: int) -> int:
    """What each license active in an epoch earns: budget(e) // activeCount(e) (section 8)."""
    return budget // active_count if active_count else 0


def commission_split(credit: int, commission_bps: int, debt: int = 0, credited_before: int = 0) -> tuple[int, int]:
    """(to the license's balance, to the operator) of a license's credit ``credit`` (wei, gross) for a span of its
    operator's present epochs (RewardVault._applyCredit). The commission is rounded on the operator's running
    per-license sum: ``credited_before`` is that sum where the span starts. A debt (penalties) is repaid first
    from the whole credit; the operator takes its commission in proportion to what is left (security finding L2:
    an operator earns nothing on a license in debt). The license's share includes the part that repays its debt."""
    if credit <= 0:
        return 0, 0
    end = credited_before + credit
    commission = end * commission_bps // BPS - credited_before * commission_bps // BPS
    repaid = min(max(debt, 0), credit)
    if repaid:
        commission = commission * (credit - repaid) // credit
    return credit - commission, commission


def penalty(reward_per_license: int, penalty_bps: int) -> int:
    """A penalty in wei: penalty_bps of the audited epoch's per-license credit (docs/protocol.md)."""
    return reward_per_license * penalty_bps // BPS


def fee_split(amount: int, node_share_bps: int, staker_share_bps: int, stakers_exist: bool = True) -> tuple[int, int, int]:
    """(to licenses, to stakers, to treasury) of a fee deposit; the stakers' share goes to the treasury while
    nobody stakes (docs/protocol.md)."""
    to_licenses = amount * node_share_bps // BPS
    to_stakers = amount * staker_share_bps // BPS if stakers_exist else 0
    return to_licenses, to_stakers, amount - to_licenses - to_stakers
