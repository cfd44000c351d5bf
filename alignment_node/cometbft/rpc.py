"""Strict parsers of CometBFT RPC JSON (cmtjson), one per route, taking the ``result`` object.

Rules (spec: docs/spec/COMETBFT.md "RPC JSON"):

- 64-bit integers (height, voting_power, proposer_priority, count, total) are decimal strings; a JSON
  number there is an error. 32-bit ones (round, block_id_flag, validator_index, parts.total, vote type)
  are JSON numbers; booleans are never numbers.
- Bytes are strict base64 (``null`` for nil); hashes and addresses are hex (any case; ``""`` when empty);
  times are RFC3339 UTC with up to 9 fractional digits (``types.parse_time``).
- A block id is ``{hash, parts: {total, hash}}``; hashes are 32 bytes or empty, addresses 20 bytes.
- A commit signature with flag 1 (ABSENT) has no address, Go's zero time and no signature; flags 2
  (COMMIT) and 3 (NIL) have a 20-byte address and a 64-byte signature; any other flag is an error.
- Only "tendermint/PubKeyEd25519" keys can be verified; for those the address must equal
  SHA-256(key)[:20]. Other key types parse, with ``Validator.verifiable`` False.
- Unknown extra keys are ignored; missing or mistyped required ones raise ``CometError`` naming the path
  from ``result``, e.g. ``result.signed_header.commit.signatures[3].signature: 63 bytes, want 64``.
  No other exception escapes a parser.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from .types import BlockID, CometError, Timestamp, Vote, address_of, parse_time

__all__ = [
    "ED25519_KEY_TYPE",
    "DUPLICATE_VOTE_EVIDENCE_TYPE",
    "result_of",
    "Validator",
    "ValidatorsPage",
    "parse_validators",
    "Header",
    "CommitSig",
    "Commit",
    "SignedHeader",
    "parse_commit",
    "DuplicateVoteEvidence",
    "OtherEvidence",
    "Block",
    "parse_block",
    "Status",
    "parse_status",
]

ED25519_KEY_TYPE = "tendermint/PubKeyEd25519"
DUPLICATE_VOTE_EVIDENCE_TYPE = "tendermint/DuplicateVoteEvidence"

_ABSENT, _COMMIT, _NIL = 1, 2, 3
_ZERO_TIME = Timestamp(-62135596800, 0)
_INT64_RE = re.compile(r"-?[0-9]{1,19}")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


# ------------------------------------------------------------------------------------ scalar readers
# Each reader takes (obj, key, where) and reads obj[key]; the path "where.key" is only built for errors.


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _as_obj(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise CometError(f"{path}: {_describe(value)}, want an object")
    return value


def _get(obj: dict, key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise CometError(f"{where}.{key}: missing") from None


def _typed(obj: dict, key: str, where: str, kind: type, want: str) -> Any:
    value = _get(obj, key, where)
    if not isinstance(value, kind):
        raise CometError(f"{where}.{key}: {_describe(value)}, want {want}")
    return value


def _obj(obj: dict, key: str, where: str) -> dict:
    return _typed(obj, key, where, dict, "an object")


def _list(obj: dict, key: str, where: str, nullable: bool = False) -> list:
    if nullable and _get(obj, key, where) is None:
        return []
    return _typed(obj, key, where, list, "a list")


def _str(obj: dict, key: str, where: str) -> str:
    return _typed(obj, key, where, str, "a string")


def _bool(obj: dict, key: str, where: str) -> bool:
    return _typed(obj, key, where, bool, "true or false")


def _int64(obj: dict, key: str, where: str, minimum: int = _INT64_MIN) -> int:
    """A 64-bit integer, which cmtjson writes as a decimal string."""
    value = _get(obj, key, where)
    if type(value) is str and _INT64_RE.fullmatch(value):
        n = int(value)
        if minimum <= n <= _INT64_MAX:
            return n
        raise CometError(f"{where}.{key}: {n} out of range [{minimum}, 2^63)")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise CometError(f"{where}.{key}: a number, cmtjson writes int64 as a string")
    if isinstance(value, str):
        raise CometError(f"{where}.{key}: {value[:40]!r} is not a decimal int64")
    raise CometError(f"{where}.{key}: {_describe(value)}, want an int64 as a decimal string")


def _int32(obj: dict, key: str, where: str, minimum: int = _INT32_MIN) -> int:
    """A 32-bit integer, which cmtjson writes as a JSON number."""
    value = _get(obj, key, where)
    if type(value) is int and minimum <= value <= _INT32_MAX:
        return value
    if isinstance(value, str):
        raise CometError(f"{where}.{key}: a string, cmtjson writes 32-bit integers as numbers")
    if type(value) is int:
        raise CometError(f"{where}.{key}: {value} out of range [{minimum}, 2^31)")
    raise CometError(f"{where}.{key}: {_describe(value)}, want an integer")


def _hex(obj: dict, key: str, where: str, sizes: tuple[int, ...]) -> bytes:
    """Hex (any case) of one of the given byte lengths ("" for 0 bytes)."""
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise CometError(f"{where}.{key}: {_describe(value)}, want a hex string")
    try:
        data = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise CometError(f"{where}.{key}: {value[:80]!r} is not hex") from None
    if len(data) not in sizes:
        want = " or ".join(str(n) for n in sizes)
        raise CometError(f"{where}.{key}: {len(data)} bytes, want {want}")
    return data


def _b64(obj: dict, key: str, where: str, size: int | None = None) -> bytes:
    """Strict standard base64 (null is nil, empty) of ``size`` bytes when given."""
    value = _get(obj, key, where)
    if value is None:
        data = b""
    elif not isinstance(value, str):
        raise CometError(f"{where}.{key}: {_describe(value)}, want base64 or null")
    else:
        try:
            data = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            raise CometError(f"{where}.{key}: not valid base64") from None
    if size is not None and len(data) != size:
        raise CometError(f"{where}.{key}: {len(data)} bytes, want {size}")
    return data


def _time(obj: dict, key: str, where: str) -> Timestamp:
    value = _get(obj, key, where)
    try:
        return parse_time(value)
    except CometError as exc:
        raise CometError(f"{where}.{key}: {exc}") from None


def _block_id(obj: dict, key: str, where: str) -> BlockID:
    block_id = _obj(obj, key, where)
    where = f"{where}.{key}"
    parts = _obj(block_id, "parts", where)
    return BlockID(
        hash=_hex(block_id, "hash", where, (0, 32)),
        parts_total=_int32(parts, "total", f"{where}.parts", 0),
        parts_hash=_hex(parts, "hash", f"{where}.parts", (0, 32)),
    )


# ------------------------------------------------------------------------------------------ envelope


def result_of(envelope: Any) -> dict:
    """The ``result`` object of a JSON-RPC envelope; CometError for an ``error`` member or a wrong shape."""
    obj = _as_obj(envelope, "response")
    error = obj.get("error")
    if error is not None:
        if isinstance(error, dict):
            data = error.get("data")
            raise CometError(
                f"rpc error {error.get('code')}: {error.get('message')}" + (f" ({data})" if data else "")
            )
        raise CometError(f"rpc error: {error!r}"[:300])
    return _obj(obj, "result", "response")


# ---------------------------------------------------------------------------------------- validators


@dataclass
class Validator:
    address: bytes
    pub_key_type: str
    pub_key: bytes
    voting_power: int
    proposer_priority: int

    @property
    def verifiable(self) -> bool:
        """True for an Ed25519 key, the only type this package verifies."""
        return self.pub_key_type == ED25519_KEY_TYPE


@dataclass
class ValidatorsPage:
    block_height: int
    validators: list[Validator]
    count: int
    total: int


def _validator(value: Any, where: str) -> Validator:
    obj = _as_obj(value, where)
    address = _hex(obj, "address", where, (20,))
    key = _obj(obj, "pub_key", where)
    key_type = _str(key, "type", f"{where}.pub_key")
    if key_type == ED25519_KEY_TYPE:
        pub_key = _b64(key, "value", f"{where}.pub_key", 32)
        if address_of(pub_key) != address:
            raise CometError(
                f"{where}.address: {address.hex().upper()} is not SHA-256(pub_key)[:20] = "
                f"{address_of(pub_key).hex().upper()}"
            )
    else:
        pub_key = _b64(key, "value", f"{where}.pub_key")
    return Validator(
        address=address,
        pub_key_type=key_type,
        pub_key=pub_key,
        voting_power=_int64(obj, "voting_power", where, 0),
        proposer_priority=_int64(obj, "proposer_priority", where),
    )


def parse_validators(result: Any) -> ValidatorsPage:
    """Route /validators: one page ``{block_height, validators[], count, total}`` (fetch every page)."""
    obj = _as_obj(result, "result")
    page = ValidatorsPage(
        block_height=_int64(obj, "block_height", "result", 0),
        validators=[_validator(v, f"result.validators[{i}]") for i, v in enumerate(_list(obj, "validators", "result"))],
        count=_int64(obj, "count", "result", 0),
        total=_int64(obj, "total", "result", 0),
    )
    if page.count != len(page.validators):
        raise CometError(f"result.count: {page.count}, but the page lists {len(page.validators)} validators")
    if page.total < page.count:
        raise CometError(f"result.total: {page.total} is less than count {page.count}")
    return page


# -------------------------------------------------------------------------------------------- header


@dataclass
class Header:
    chain_id: str
    height: int
    time: Timestamp
    last_block_id: BlockID
    validators_hash: bytes
    next_validators_hash: bytes
    proposer_address: bytes
    raw: dict = field(repr=False)


def _header(obj: dict, key: str, where: str) -> Header:
    header = _obj(obj, key, where)
    where = f"{where}.{key}"
    return Header(
        chain_id=_str(header, "chain_id", where),
        height=_int64(header, "height", where, 0),
        time=_time(header, "time", where),
        last_block_id=_block_id(header, "last_block_id", where),
        validators_hash=_hex(header, "validators_hash", where, (0, 32)),
        next_validators_hash=_hex(header, "next_validators_hash", where, (0, 32)),
        proposer_address=_hex(header, "proposer_address", where, (0, 20)),
        raw=header,
    )


# -------------------------------------------------------------------------------------------- commit


@dataclass
class CommitSig:
    block_id_flag: int
    validator_address: bytes
    timestamp: Timestamp
    signature: bytes | None


@dataclass
class Commit:
    height: int
    round: int
    block_id: BlockID
    signatures: list[CommitSig]


@dataclass
class SignedHeader:
    header: Header
    commit: Commit
    canonical: bool


def _commit_sig(value: Any, where: str) -> CommitSig:
    obj = _as_obj(value, where)
    flag = _int32(obj, "block_id_flag", where)
    timestamp = _time(obj, "timestamp", where)
    if flag == _COMMIT or flag == _NIL:
        return CommitSig(flag, _hex(obj, "validator_address", where, (20,)), timestamp, _b64(obj, "signature", where, 64))
    if flag != _ABSENT:
        raise CometError(f"{where}.block_id_flag: {flag}, want 1 (absent), 2 (commit) or 3 (nil)")
    if _hex(obj, "validator_address", where, (0, 20)):
        raise CometError(f"{where}.validator_address: must be empty for an ABSENT (flag 1) signature")
    if timestamp != _ZERO_TIME:
        raise CometError(f"{where}.timestamp: must be 0001-01-01T00:00:00Z for an ABSENT (flag 1) signature")
    if _b64(obj, "signature", where):
        raise CometError(f"{where}.signature: must be null for an ABSENT (flag 1) signature")
    return CommitSig(flag, b"", timestamp, None)


def _commit(obj: dict, key: str, where: str) -> Commit:
    commit = _obj(obj, key, where)
    where = f"{where}.{key}"
    return Commit(
        height=_int64(commit, "height", where, 0),
        round=_int32(commit, "round", where, 0),
        block_id=_block_id(commit, "block_id", where),
        signatures=[
            _commit_sig(s, f"{where}.signatures[{i}]") for i, s in enumerate(_list(commit, "signatures", where))
        ],
    )


def parse_commit(result: Any) -> SignedHeader:
    """Route /commit: ``{signed_header: {header, commit}, canonical}``."""
    obj = _as_obj(result, "result")
    signed = _obj(obj, "signed_header", "result")
    return SignedHeader(
        header=_header(signed, "header", "result.signed_header"),
        commit=_commit(signed, "commit", "result.signed_header"),
        canonical=_bool(obj, "canonical", "result"),
    )


# ------------------------------------------------------------------------------------------ evidence


@dataclass
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote
    total_voting_power: int
    validator_power: int
    timestamp: Timestamp


@dataclass
class OtherEvidence:
    type: str
    raw: dict = field(repr=False)


def _vote(obj: dict, key: str, where: str) -> Vote:
    vote = _obj(obj, key, where)
    where = f"{where}.{key}"
    return Vote(
        type=_int32(vote, "type", where, 0),
        height=_int64(vote, "height", where, 0),
        round=_int32(vote, "round", where, 0),
        block_id=_block_id(vote, "block_id", where),
        timestamp=_time(vote, "timestamp", where),
        validator_address=_hex(vote, "validator_address", where, (20,)),
        validator_index=_int32(vote, "validator_index", where, 0),
        signature=_b64(vote, "signature", where, 64),
    )


def _either(obj: dict, go_name: str, snake_name: str, where: str) -> str:
    """The key present: the Go field name (v0.34-v0.39, main) or the snake_case one (v1.x)."""
    for key in (go_name, snake_name):
        if key in obj:
            return key
    raise CometError(f"{where}.{snake_name}: missing (also as {go_name})")


def _evidence(value: Any, where: str) -> DuplicateVoteEvidence | OtherEvidence:
    item = _as_obj(value, where)
    kind = _str(item, "type", where)
    body = _obj(item, "value", where)
    if kind != DUPLICATE_VOTE_EVIDENCE_TYPE:
        return OtherEvidence(kind, body)
    where = f"{where}.value"
    return DuplicateVoteEvidence(
        vote_a=_vote(body, "vote_a", where),
        vote_b=_vote(body, "vote_b", where),
        total_voting_power=_int64(body, _either(body, "TotalVotingPower", "total_voting_power", where), where, 0),
        validator_power=_int64(body, _either(body, "ValidatorPower", "validator_power", where), where, 0),
        timestamp=_time(body, _either(body, "Timestamp", "timestamp", where), where),
    )


# --------------------------------------------------------------------------------------------- block


@dataclass
class Block:
    block_id: BlockID
    header: Header
    last_commit: Commit | None
    evidence: list[DuplicateVoteEvidence | OtherEvidence]
    txs: int


def parse_block(result: Any) -> Block:
    """Route /block: ``{block_id, block: {header, data{txs}, evidence{evidence}, last_commit}}``."""
    obj = _as_obj(result, "result")
    block = _obj(obj, "block", "result")
    txs = _list(_obj(block, "data", "result.block"), "txs", "result.block.data", nullable=True)
    for i, tx in enumerate(txs):
        if not isinstance(tx, str):
            raise CometError(f"result.block.data.txs[{i}]: {_describe(tx)}, want a string")
    evidence = _list(_obj(block, "evidence", "result.block"), "evidence", "result.block.evidence", nullable=True)
    return Block(
        block_id=_block_id(obj, "block_id", "result"),
        header=_header(block, "header", "result.block"),
        last_commit=None if block.get("last_commit") is None else _commit(block, "last_commit", "result.block"),
        evidence=[_evidence(e, f"result.block.evidence.evidence[{i}]") for i, e in enumerate(evidence)],
        txs=len(txs),
    )


# -------------------------------------------------------------------------------------------- status


@dataclass
class Status:
    chain_id: str
    latest_height: int
    latest_block_hash: bytes
    latest_block_time: Timestamp
    earliest_height: int
    catching_up: bool
    validator_address: bytes


def parse_status(result: Any) -> Status:
    """Route /status: chain id (node_info.network), sync_info and the node's validator address."""
    obj = _as_obj(result, "result")
    sync = _obj(obj, "sync_info", "result")
    where = "result.sync_info"
    return Status(
        chain_id=_str(_obj(obj, "node_info", "result"), "network", "result.node_info"),
        latest_height=_int64(sync, "latest_block_height", where, 0),
        latest_block_hash=_hex(sync, "latest_block_hash", where, (0, 32)),
        latest_block_time=_time(sync, "latest_block_time", where),
        earliest_height=_int64(sync, "earliest_block_height", where, 0),
        catching_up=_bool(sync, "catching_up", where),
        validator_address=_hex(_obj(obj, "validator_info", "result"), "address", "result.validator_info", (0, 20)),
    )
