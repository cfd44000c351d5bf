"""Strict parsers of CometBFT RPC JSON (cmtjson), one per route, taking the ``result`` object.

Rules (spec: ../shared/COMETBFT.md "RPC JSON"):

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
- Unknown extra keys are ignored; missing or mistyped required ones raise ``CometError`` naming the path,
  e.g. ``commit.signatures[3].signature: 63 bytes, want 64``. No other exception escapes a parser.
"""

from __future__ import annotations

import base64
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


def _obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise CometError(f"{where}: {_describe(value)}, want an object")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise CometError(f"{where}: {_describe(value)}, want a list")
    return value


def _get(obj: dict, key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise CometError(f"{where}.{key}: missing") from None


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CometError(f"{where}: {_describe(value)}, want a string")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise CometError(f"{where}: {_describe(value)}, want true or false")
    return value


def _int64(value: Any, where: str, minimum: int = _INT64_MIN) -> int:
    """A 64-bit integer, which cmtjson writes as a decimal string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise CometError(f"{where}: a number, cmtjson writes int64 as a string")
    if not isinstance(value, str):
        raise CometError(f"{where}: {_describe(value)}, want an int64 as a decimal string")
    if _INT64_RE.fullmatch(value) is None:
        raise CometError(f"{where}: {value[:40]!r} is not a decimal int64")
    n = int(value)
    if not minimum <= n <= _INT64_MAX:
        raise CometError(f"{where}: {n} out of range [{minimum}, 2^63)")
    return n


def _int32(value: Any, where: str, minimum: int = _INT32_MIN) -> int:
    """A 32-bit integer, which cmtjson writes as a JSON number."""
    if isinstance(value, str):
        raise CometError(f"{where}: a string, cmtjson writes 32-bit integers as numbers")
    if not isinstance(value, int) or isinstance(value, bool):
        raise CometError(f"{where}: {_describe(value)}, want an integer")
    if not minimum <= value <= _INT32_MAX:
        raise CometError(f"{where}: {value} out of range [{minimum}, 2^31)")
    return value


def _hex(value: Any, where: str, sizes: tuple[int, ...]) -> bytes:
    """Hex (any case) of one of the given byte lengths ("" for 0 bytes)."""
    if not isinstance(value, str):
        raise CometError(f"{where}: {_describe(value)}, want a hex string")
    try:
        data = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise CometError(f"{where}: {value[:80]!r} is not hex") from None
    if len(data) not in sizes:
        want = " or ".join(str(n) for n in sizes)
        raise CometError(f"{where}: {len(data)} bytes, want {want}")
    return data


def _b64(value: Any, where: str) -> bytes:
    """Strict standard base64; null is nil (empty)."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise CometError(f"{where}: {_describe(value)}, want base64 or null")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CometError(f"{where}: not valid base64") from None


def _time(value: Any, where: str) -> Timestamp:
    try:
        return parse_time(value)
    except CometError as exc:
        raise CometError(f"{where}: {exc}") from None


def _signature(value: Any, where: str) -> bytes:
    sig = _b64(value, where)
    if len(sig) != 64:
        raise CometError(f"{where}: {len(sig)} bytes, want 64")
    return sig


def _block_id(value: Any, where: str) -> BlockID:
    obj = _obj(value, where)
    parts = _obj(_get(obj, "parts", where), f"{where}.parts")
    return BlockID(
        hash=_hex(_get(obj, "hash", where), f"{where}.hash", (0, 32)),
        parts_total=_int32(_get(parts, "total", f"{where}.parts"), f"{where}.parts.total", 0),
        parts_hash=_hex(_get(parts, "hash", f"{where}.parts"), f"{where}.parts.hash", (0, 32)),
    )


# ------------------------------------------------------------------------------------------ envelope


def result_of(envelope: Any) -> dict:
    """The ``result`` object of a JSON-RPC envelope; CometError for an ``error`` member or a wrong shape."""
    obj = _obj(envelope, "response")
    error = obj.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise CometError(
                f"rpc error {error.get('code')}: {error.get('message')}"
                + (f" ({error['data']})" if error.get("data") else "")
            )
        raise CometError(f"rpc error: {error!r}"[:300])
    return _obj(_get(obj, "result", "response"), "response.result")


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
    obj = _obj(value, where)
    address = _hex(_get(obj, "address", where), f"{where}.address", (20,))
    key = _obj(_get(obj, "pub_key", where), f"{where}.pub_key")
    key_type = _str(_get(key, "type", f"{where}.pub_key"), f"{where}.pub_key.type")
    pub_key = _b64(_get(key, "value", f"{where}.pub_key"), f"{where}.pub_key.value")
    if key_type == ED25519_KEY_TYPE:
        if len(pub_key) != 32:
            raise CometError(f"{where}.pub_key.value: {len(pub_key)} bytes, want 32 for ed25519")
        if address_of(pub_key) != address:
            raise CometError(
                f"{where}.address: {address.hex().upper()} is not SHA-256(pub_key)[:20] = "
                f"{address_of(pub_key).hex().upper()}"
            )
    return Validator(
        address=address,
        pub_key_type=key_type,
        pub_key=pub_key,
        voting_power=_int64(_get(obj, "voting_power", where), f"{where}.voting_power", 0),
        proposer_priority=_int64(_get(obj, "proposer_priority", where), f"{where}.proposer_priority"),
    )


def parse_validators(result: Any) -> ValidatorsPage:
    """Route /validators: one page ``{block_height, validators[], count, total}`` (fetch every page)."""
    obj = _obj(result, "validators result")
    items = _list(_get(obj, "validators", "result"), "result.validators")
    page = ValidatorsPage(
        block_height=_int64(_get(obj, "block_height", "result"), "result.block_height", 0),
        validators=[_validator(v, f"result.validators[{i}]") for i, v in enumerate(items)],
        count=_int64(_get(obj, "count", "result"), "result.count", 0),
        total=_int64(_get(obj, "total", "result"), "result.total", 0),
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


def _header(value: Any, where: str) -> Header:
    obj = _obj(value, where)
    return Header(
        chain_id=_str(_get(obj, "chain_id", where), f"{where}.chain_id"),
        height=_int64(_get(obj, "height", where), f"{where}.height", 0),
        time=_time(_get(obj, "time", where), f"{where}.time"),
        last_block_id=_block_id(_get(obj, "last_block_id", where), f"{where}.last_block_id"),
        validators_hash=_hex(_get(obj, "validators_hash", where), f"{where}.validators_hash", (0, 32)),
        next_validators_hash=_hex(
            _get(obj, "next_validators_hash", where), f"{where}.next_validators_hash", (0, 32)
        ),
        proposer_address=_hex(_get(obj, "proposer_address", where), f"{where}.proposer_address", (0, 20)),
        raw=obj,
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
    obj = _obj(value, where)
    flag = _int32(_get(obj, "block_id_flag", where), f"{where}.block_id_flag")
    address_text = _get(obj, "validator_address", where)
    timestamp = _time(_get(obj, "timestamp", where), f"{where}.timestamp")
    signature = _get(obj, "signature", where)
    if flag == _ABSENT:
        if _hex(address_text, f"{where}.validator_address", (0, 20)):
            raise CometError(f"{where}.validator_address: must be empty for an ABSENT (flag 1) signature")
        if timestamp != _ZERO_TIME:
            raise CometError(f"{where}.timestamp: must be 0001-01-01T00:00:00Z for an ABSENT (flag 1) signature")
        if _b64(signature, f"{where}.signature"):
            raise CometError(f"{where}.signature: must be null for an ABSENT (flag 1) signature")
        return CommitSig(flag, b"", timestamp, None)
    if flag not in (_COMMIT, _NIL):
        raise CometError(f"{where}.block_id_flag: {flag}, want 1 (absent), 2 (commit) or 3 (nil)")
    return CommitSig(
        block_id_flag=flag,
        validator_address=_hex(address_text, f"{where}.validator_address", (20,)),
        timestamp=timestamp,
        signature=_signature(signature, f"{where}.signature"),
    )


def _commit(value: Any, where: str) -> Commit:
    obj = _obj(value, where)
    sigs = _list(_get(obj, "signatures", where), f"{where}.signatures")
    return Commit(
        height=_int64(_get(obj, "height", where), f"{where}.height", 0),
        round=_int32(_get(obj, "round", where), f"{where}.round", 0),
        block_id=_block_id(_get(obj, "block_id", where), f"{where}.block_id"),
        signatures=[_commit_sig(s, f"{where}.signatures[{i}]") for i, s in enumerate(sigs)],
    )


def parse_commit(result: Any) -> SignedHeader:
    """Route /commit: ``{signed_header: {header, commit}, canonical}``."""
    obj = _obj(result, "commit result")
    signed = _obj(_get(obj, "signed_header", "result"), "signed_header")
    return SignedHeader(
        header=_header(_get(signed, "header", "signed_header"), "header"),
        commit=_commit(_get(signed, "commit", "signed_header"), "commit"),
        canonical=_bool(_get(obj, "canonical", "result"), "canonical"),
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


def _vote(value: Any, where: str) -> Vote:
    obj = _obj(value, where)
    return Vote(
        type=_int32(_get(obj, "type", where), f"{where}.type", 0),
        height=_int64(_get(obj, "height", where), f"{where}.height", 0),
        round=_int32(_get(obj, "round", where), f"{where}.round", 0),
        block_id=_block_id(_get(obj, "block_id", where), f"{where}.block_id"),
        timestamp=_time(_get(obj, "timestamp", where), f"{where}.timestamp"),
        validator_address=_hex(_get(obj, "validator_address", where), f"{where}.validator_address", (20,)),
        validator_index=_int32(_get(obj, "validator_index", where), f"{where}.validator_index", 0),
        signature=_signature(_get(obj, "signature", where), f"{where}.signature"),
    )


def _either(obj: dict, go_name: str, snake_name: str, where: str) -> tuple[Any, str]:
    """The value under the Go field name (v0.34-v0.39, main) or the snake_case one (v1.x)."""
    for key in (go_name, snake_name):
        if key in obj:
            return obj[key], f"{where}.{key}"
    raise CometError(f"{where}.{snake_name}: missing (also as {go_name})")


def _evidence(value: Any, where: str) -> DuplicateVoteEvidence | OtherEvidence:
    obj = _obj(value, where)
    kind = _str(_get(obj, "type", where), f"{where}.type")
    body = _obj(_get(obj, "value", where), f"{where}.value")
    if kind != DUPLICATE_VOTE_EVIDENCE_TYPE:
        return OtherEvidence(kind, body)
    where = f"{where}.value"
    total, total_at = _either(body, "TotalVotingPower", "total_voting_power", where)
    power, power_at = _either(body, "ValidatorPower", "validator_power", where)
    when, when_at = _either(body, "Timestamp", "timestamp", where)
    return DuplicateVoteEvidence(
        vote_a=_vote(_get(body, "vote_a", where), f"{where}.vote_a"),
        vote_b=_vote(_get(body, "vote_b", where), f"{where}.vote_b"),
        total_voting_power=_int64(total, total_at, 0),
        validator_power=_int64(power, power_at, 0),
        timestamp=_time(when, when_at),
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
    obj = _obj(result, "block result")
    block = _obj(_get(obj, "block", "result"), "block")
    txs = _obj(_get(block, "data", "block"), "block.data").get("txs")
    txs = [] if txs is None else _list(txs, "block.data.txs")
    for i, tx in enumerate(txs):
        _str(tx, f"block.data.txs[{i}]")
    evidence = _obj(_get(block, "evidence", "block"), "block.evidence").get("evidence")
    evidence = [] if evidence is None else _list(evidence, "block.evidence.evidence")
    last_commit = block.get("last_commit")
    return Block(
        block_id=_block_id(_get(obj, "block_id", "result"), "block_id"),
        header=_header(_get(block, "header", "block"), "block.header"),
        last_commit=None if last_commit is None else _commit(last_commit, "block.last_commit"),
        evidence=[_evidence(e, f"block.evidence.evidence[{i}]") for i, e in enumerate(evidence)],
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
    obj = _obj(result, "status result")
    node = _obj(_get(obj, "node_info", "result"), "node_info")
    sync = _obj(_get(obj, "sync_info", "result"), "sync_info")
    validator = _obj(_get(obj, "validator_info", "result"), "validator_info")
    return Status(
        chain_id=_str(_get(node, "network", "node_info"), "node_info.network"),
        latest_height=_int64(_get(sync, "latest_block_height", "sync_info"), "sync_info.latest_block_height", 0),
        latest_block_hash=_hex(
            _get(sync, "latest_block_hash", "sync_info"), "sync_info.latest_block_hash", (0, 32)
        ),
        latest_block_time=_time(_get(sync, "latest_block_time", "sync_info"), "sync_info.latest_block_time"),
        earliest_height=_int64(
            _get(sync, "earliest_block_height", "sync_info"), "sync_info.earliest_block_height", 0
        ),
        catching_up=_bool(_get(sync, "catching_up", "sync_info"), "sync_info.catching_up"),
        validator_address=_hex(_get(validator, "address", "validator_info"), "validator_info.address", (0, 20)),
    )
