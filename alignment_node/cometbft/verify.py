"""CometBFT's commit verification rules, restated (spec: docs/spec/COMETBFT.md "Verifying a commit").

Signature i of a commit for height H belongs to validator i of the set at H. A COMMIT (flag 2) signature
signs {type precommit, H, commit round, commit block id, its own timestamp, chain id}; a NIL (flag 3) one
the same without the block id; ABSENT (flag 1) carries nothing to verify.

- ``full`` (VerifyCommit): signature count == validator count, heights and block ids match, every
  non-absent signature verifies (NIL too) and its address matches validator i; only COMMIT power counts.
- ``light`` (VerifyCommitLight): the same basic checks, but only COMMIT signatures are looked at and the
  check stops once the power is enough, so a later bad signature goes unnoticed. ``light_all``
  (VerifyCommitLightAllSignatures) checks every COMMIT signature.
- trusting (VerifyCommitLightTrusting): signatures are matched to a possibly different validator set by
  address; unknown ones are skipped and the same validator twice is an error; needed = total*num//den.

needed = total*2//3 and a commit passes only when its COMMIT power is strictly greater. Within one commit
only the timestamp differs between the sign bytes of COMMIT signatures, so the rest is encoded once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from .rpc import Commit, DuplicateVoteEvidence, Validator
from .types import (
    BlockID,
    CometError,
    Vote,
    address_of,
    encode_chain_id_field,
    encode_timestamp_field,
    encode_vote_head,
    uvarint,
    verify_signature,
)

__all__ = [
    "ABSENT",
    "COMMIT",
    "NIL",
    "PREVOTE",
    "PRECOMMIT",
    "commit_sign_bytes",
    "SigCheck",
    "check_signatures",
    "CommitResult",
    "verify_commit",
    "verify_commit_light_trusting",
    "verify_duplicate_vote",
]

ABSENT, COMMIT, NIL = 1, 2, 3
PREVOTE, PRECOMMIT = 1, 2

Mode = Literal["full", "light", "light_all"]


class _CommitSigner:
    """Sign bytes of one commit's signatures: the parts shared by all of them are encoded once."""

    def __init__(self, commit: Commit, chain_id: str) -> None:
        self.signatures = commit.signatures
        self.heads = {
            COMMIT: encode_vote_head(PRECOMMIT, commit.height, commit.round, commit.block_id),
            NIL: encode_vote_head(PRECOMMIT, commit.height, commit.round, None),
        }
        self.tail = encode_chain_id_field(chain_id)

    def sign_bytes(self, index: int) -> bytes | None:
        sig = self.signatures[index]
        head = self.heads.get(sig.block_id_flag)
        if head is None:
            return None
        body = head + encode_timestamp_field(sig.timestamp) + self.tail
        return uvarint(len(body)) + body


def commit_sign_bytes(commit: Commit, index: int, chain_id: str) -> bytes | None:
    """Sign bytes of signature ``index`` of ``commit`` (None for ABSENT or an unknown flag)."""
    return _CommitSigner(commit, chain_id).sign_bytes(index)


@dataclass
class SigCheck:
    index: int
    address: bytes
    flag: int
    valid: bool | None  # None: ABSENT, nothing to verify
    reason: str


def _check_one(signer: _CommitSigner, index: int, validator: Validator) -> SigCheck:
    """Signature ``index`` against ``validator`` (matched by position or by address)."""
    sig = signer.signatures[index]
    flag = sig.block_id_flag
    if flag == ABSENT:
        return SigCheck(index, sig.validator_address, flag, None, "absent")
    message = signer.sign_bytes(index)
    if message is None:
        return SigCheck(index, sig.validator_address, flag, False, f"unknown block_id_flag {flag} at index {index}")
    if sig.validator_address != validator.address:
        return SigCheck(
            index, sig.validator_address, flag, False,
            f"validator address mismatch at index {index}: commit has {sig.validator_address.hex().upper()}, "
            f"validator set has {validator.address.hex().upper()}",
        )
    if not validator.verifiable:
        return SigCheck(
            index, sig.validator_address, flag, False,
            f"validator at index {index} has a {validator.pub_key_type} key, only ed25519 is verified",
        )
    if not verify_signature(validator.pub_key, message, sig.signature or b""):
        return SigCheck(index, sig.validator_address, flag, False, f"wrong signature at index {index}")
    return SigCheck(index, sig.validator_address, flag, True, "ok")


def check_signatures(chain_id: str, validators: list[Validator], commit: Commit) -> list[SigCheck]:
    """Every non-absent signature checked against the validator at its position (the full rule)."""
    if len(commit.signatures) != len(validators):
        raise CometError(
            f"commit.signatures: {len(commit.signatures)} signatures, validator set has {len(validators)}"
        )
    signer = _CommitSigner(commit, chain_id)
    return [_check_one(signer, i, v) for i, v in enumerate(validators)]


@dataclass
class CommitResult:
    ok: bool
    reason: str
    committed_power: int
    total_power: int
    needed: int
    checks: list[SigCheck] = field(default_factory=list)


def _tally(result: CommitResult, checked: Iterable[tuple[SigCheck, int]], stop_early: bool) -> CommitResult:
    """Fill ``result`` from (check, signer's power) in commit order: the first failure decides, then power."""
    for check, power in checked:
        result.checks.append(check)
        if check.valid is False:
            result.reason = check.reason
            return result
        if check.flag == COMMIT:
            result.committed_power += power
            if stop_early and result.committed_power > result.needed:
                break
    if result.committed_power > result.needed:
        result.ok = True
        result.reason = f"ok: {result.committed_power} > {result.needed}"
    else:
        result.reason = (
            f"not enough voting power signed: got {result.committed_power}, needed more than {result.needed}"
        )
    return result


def _block_id_text(block_id: BlockID) -> str:
    return f"{block_id.hash.hex().upper()}:{block_id.parts_total}:{block_id.parts_hash.hex().upper()}"


def verify_commit(
    chain_id: str,
    validators: list[Validator],
    block_id: BlockID | None,
    height: int,
    commit: Commit,
    mode: Mode = "full",
) -> CommitResult:
    """VerifyCommit ("full"), VerifyCommitLight ("light") or VerifyCommitLightAllSignatures ("light_all").

    ``validators`` is the set at ``height`` in order; ``block_id`` None skips the block id comparison.
    Bad commits give ``ok`` False with a reason, never an exception.
    """
    if mode not in ("full", "light", "light_all"):
        raise CometError(f"verify_commit mode {mode!r}: want 'full', 'light' or 'light_all'")
    total = sum(v.voting_power for v in validators)
    result = CommitResult(False, "", 0, total, total * 2 // 3)
    if len(commit.signatures) != len(validators):
        result.reason = f"commit has {len(commit.signatures)} signatures, validator set has {len(validators)}"
        return result
    if commit.height != height:
        result.reason = f"commit height {commit.height} does not match the requested height {height}"
        return result
    if block_id is not None and commit.block_id != block_id:
        result.reason = (
            f"commit block_id {_block_id_text(commit.block_id)} does not match the expected "
            f"{_block_id_text(block_id)}"
        )
        return result
    signer = _CommitSigner(commit, chain_id)
    if mode == "full":
        checked = ((_check_one(signer, i, v), v.voting_power) for i, v in enumerate(validators))
    else:
        checked = (
            (_check_one(signer, i, validators[i]), validators[i].voting_power)
            for i, sig in enumerate(commit.signatures)
            if sig.block_id_flag == COMMIT
        )
    return _tally(result, checked, mode == "light")


def verify_commit_light_trusting(
    chain_id: str,
    validators: list[Validator],
    commit: Commit,
    trust_num: int = 1,
    trust_den: int = 3,
) -> CommitResult:
    """VerifyCommitLightTrusting: COMMIT signatures matched to ``validators`` by address.

    Unknown signers are skipped, the same validator twice fails, needed = total*trust_num//trust_den and
    the check stops once the matched power is strictly greater.
    """
    if trust_den <= 0 or trust_num < 0:
        raise CometError(f"trust level {trust_num}/{trust_den}: want a non-negative fraction")
    total = sum(v.voting_power for v in validators)
    result = CommitResult(False, "", 0, total, total * trust_num // trust_den)
    by_address: dict[bytes, int] = {}
    for i, v in enumerate(validators):
        by_address.setdefault(v.address, i)
    return _tally(result, _by_address(_CommitSigner(commit, chain_id), validators, by_address), True)


def _by_address(
    signer: _CommitSigner, validators: list[Validator], by_address: dict[bytes, int]
) -> Iterator[tuple[SigCheck, int]]:
    """COMMIT signatures of known validators, in commit order; a validator's second one is a failure."""
    seen: dict[int, int] = {}
    for index, sig in enumerate(signer.signatures):
        val_index = by_address.get(sig.validator_address) if sig.block_id_flag == COMMIT else None
        if val_index is None:
            continue
        validator = validators[val_index]
        if val_index in seen:
            reason = f"double vote from {sig.validator_address.hex().upper()} (indexes {seen[val_index]} and {index})"
            yield SigCheck(index, sig.validator_address, COMMIT, False, reason), validator.voting_power
            return
        seen[val_index] = index
        yield _check_one(signer, index, validator), validator.voting_power


def verify_duplicate_vote(
    ev: DuplicateVoteEvidence | tuple[Vote, Vote], chain_id: str, pub_key: bytes
) -> tuple[bool, str]:
    """Is the evidence two valid conflicting votes of the validator with ``pub_key``? (ok, reason)."""
    vote_a, vote_b = (ev.vote_a, ev.vote_b) if isinstance(ev, DuplicateVoteEvidence) else ev
    if (vote_a.height, vote_a.round, vote_a.type) != (vote_b.height, vote_b.round, vote_b.type):
        return False, (
            f"votes differ in height/round/type: ({vote_a.height}, {vote_a.round}, {vote_a.type}) vs "
            f"({vote_b.height}, {vote_b.round}, {vote_b.type})"
        )
    if vote_a.validator_address != vote_b.validator_address:
        return False, "votes are from different validator addresses"
    if vote_a.block_id == vote_b.block_id:
        return False, "votes are for the same block id"
    if len(pub_key) != 32:
        return False, f"public key: {len(pub_key)} bytes, want 32 (ed25519)"
    if address_of(pub_key) != vote_a.validator_address:
        return False, "validator address is not the address of the public key"
    for name, vote in (("vote_a", vote_a), ("vote_b", vote_b)):
        if not verify_signature(pub_key, vote.sign_bytes(chain_id), vote.signature):
            return False, f"{name}: wrong signature"
    return True, "ok: two valid conflicting votes"
