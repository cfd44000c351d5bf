"""CometBFT votes, their sign bytes, validator addresses and Ed25519 checks (spec: docs/spec/COMETBFT.md).

Sign bytes of a vote are ``uvarint(len(body)) || body`` where ``body`` is a protobuf ``CanonicalVote``:

    08 type (varint) | 11 height (sfixed64) | 19 round (sfixed64) | 22 CanonicalBlockID | 2a Timestamp | 32 chain id

Proto3 leaves out a field that holds zero or empty, with one exception: the timestamp is always written
(an all-zero time is ``2a 00``). The block id is left out only when it is all zero (a nil vote); once kept,
its part-set header is always written, and inside it the hash (field 1) is left out when empty. Validator
address, index, signature and vote extension are not signed.

Times are RFC3339 UTC with up to 9 fractional digits, kept as exact (seconds, nanos): ``datetime`` keeps
microseconds only, which would break signatures. Go's zero time 0001-01-01T00:00:00Z is
-62135596800 seconds.

Only stdlib and PyNaCl (libsodium) are imported: the core node has a 64 MB memory budget.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re
import struct
from dataclasses import dataclass

from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

__all__ = [
    "CometError",
    "Timestamp",
    "parse_time",
    "format_time",
    "BlockID",
    "ZERO_BLOCK_ID",
    "Vote",
    "vote_sign_bytes",
    "vote_extension_sign_bytes",
    "address_of",
    "verify_signature",
    "uvarint",
    "encode_vote_head",
    "encode_timestamp_field",
    "encode_chain_id_field",
]


class CometError(ValueError):
    """Bad CometBFT input; the message says what is wrong and where."""


# ------------------------------------------------------------------------------------------------ time

_NANOS = 1_000_000_000
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z")


@dataclass(frozen=True)
class Timestamp:
    """A protobuf Timestamp: seconds since the Unix epoch and nanoseconds in [0, 1e9)."""

    seconds: int
    nanos: int

    def __post_init__(self) -> None:
        if not 0 <= self.nanos < _NANOS:
            raise CometError(f"timestamp nanos {self.nanos} not in [0, 1e9)")

    def __str__(self) -> str:
        return format_time(self)


@functools.lru_cache(maxsize=256)
def _epoch_day(date: str) -> int:
    """Days from 1970-01-01 to a "YYYY-MM-DD" date (already shaped by _TIME_RE); ValueError if invalid."""
    return datetime.date(int(date[:4]), int(date[5:7]), int(date[8:10])).toordinal() - _EPOCH_ORDINAL


def parse_time(text: str) -> Timestamp:
    """Parse cmtjson's RFC3339 UTC time "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" exactly (nanosecond precision)."""
    if not isinstance(text, str):
        raise CometError(f"time: {'null' if text is None else type(text).__name__}, want an RFC3339 string")
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise CometError(f"time {text[:64]!r}: not RFC3339 UTC 'YYYY-MM-DDTHH:MM:SS[.fraction]Z' (at most 9 digits)")
    hour, minute, second, frac = m.groups()
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 59:
        raise CometError(f"time {text!r}: hour, minute or second out of range")
    try:
        day = _epoch_day(text[:10])
    except ValueError as exc:
        raise CometError(f"time {text!r}: {exc}") from None
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return Timestamp(day * 86400 + hour * 3600 + minute * 60 + second, nanos)


def format_time(ts: Timestamp) -> str:
    """RFC3339Nano UTC as cmtjson prints it: fraction with trailing zeros trimmed, none when nanos == 0."""
    days, rem = divmod(ts.seconds, 86400)
    try:
        date = datetime.date.fromordinal(days + _EPOCH_ORDINAL)
    except (ValueError, OverflowError):
        raise CometError(f"timestamp {ts.seconds} s is outside years 1..9999") from None
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    text = f"{date.year:04d}-{date.month:02d}-{date.day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if ts.nanos:
        text += "." + f"{ts.nanos:09d}".rstrip("0")
    return text + "Z"


# ------------------------------------------------------------------------------------------- block id


@dataclass(frozen=True)
class BlockID:
    """A block id: block hash and part-set header (total, hash). Nil votes carry the zero BlockID."""

    hash: bytes
    parts_total: int
    parts_hash: bytes

    def is_zero(self) -> bool:
        return not self.hash and self.parts_total == 0 and not self.parts_hash


ZERO_BLOCK_ID = BlockID(b"", 0, b"")


# -------------------------------------------------------------------------------------- protobuf bits

_U64 = (1 << 64) - 1


def uvarint(n: int) -> bytes:
    """Protobuf varint of a non-negative int (a negative int64 is taken as its 64-bit two's complement)."""
    n &= _U64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes_field(tag: int, data: bytes) -> bytes:
    return bytes((tag,)) + uvarint(len(data)) + data


def _canonical_block_id(block_id: BlockID) -> bytes:
    parts = b""
    if block_id.parts_total:
        parts += b"\x08" + uvarint(block_id.parts_total)
    if block_id.parts_hash:
        parts += _bytes_field(0x12, block_id.parts_hash)
    body = _bytes_field(0x0A, block_id.hash) if block_id.hash else b""
    return body + _bytes_field(0x12, parts)


def encode_vote_head(type: int, height: int, round: int, block_id: BlockID | None) -> bytes:
    """CanonicalVote fields 1-4 (type, height, round, block id), each left out when zero."""
    out = b""
    if type:
        out += b"\x08" + uvarint(type)
    if height:
        out += b"\x11" + struct.pack("<q", height)
    if round:
        out += b"\x19" + struct.pack("<q", round)
    if block_id is not None and not block_id.is_zero():
        out += _bytes_field(0x22, _canonical_block_id(block_id))
    return out


@functools.lru_cache(maxsize=1024)
def _seconds_field(seconds: int) -> bytes:
    """Timestamp field 1; cached because the signatures of one commit mostly share their second."""
    return b"\x08" + uvarint(seconds) if seconds else b""


def encode_timestamp_field(ts: Timestamp) -> bytes:
    """CanonicalVote field 5 (always written): 2a len {08 seconds, 10 nanos}, zeros left out."""
    body = _seconds_field(ts.seconds)
    if ts.nanos:
        body += b"\x10" + uvarint(ts.nanos)
    return b"\x2a" + bytes((len(body),)) + body


def encode_chain_id_field(chain_id: str) -> bytes:
    """CanonicalVote field 6 (chain id), empty bytes for an empty chain id."""
    return _bytes_field(0x32, chain_id.encode("utf-8")) if chain_id else b""


def vote_sign_bytes(
    type: int, height: int, round: int, block_id: BlockID | None, timestamp: Timestamp, chain_id: str
) -> bytes:
    """uvarint length prefix + CanonicalVote; block_id None or zero leaves field 4 out (a nil vote)."""
    try:
        body = (
            encode_vote_head(type, height, round, block_id)
            + encode_timestamp_field(timestamp)
            + encode_chain_id_field(chain_id)
        )
    except struct.error as exc:
        raise CometError(f"vote height/round out of int64 range: {exc}") from None
    return uvarint(len(body)) + body


def vote_extension_sign_bytes(extension: bytes, height: int, round: int, chain_id: str) -> bytes:
    """uvarint length prefix + CanonicalVoteExtension{1 extension, 2 height, 3 round (sfixed64), 4 chain id}."""
    body = b""
    if extension:
        body += _bytes_field(0x0A, extension)
    if height:
        body += b"\x11" + struct.pack("<q", height)
    if round:
        body += b"\x19" + struct.pack("<q", round)
    if chain_id:
        body += _bytes_field(0x22, chain_id.encode("utf-8"))
    return uvarint(len(body)) + body


# ------------------------------------------------------------------------------------------------ votes


@dataclass(frozen=True)
class Vote:
    """A prevote (type 1) or precommit (type 2), as in DuplicateVoteEvidence."""

    type: int
    height: int
    round: int
    block_id: BlockID
    timestamp: Timestamp
    validator_address: bytes
    validator_index: int
    signature: bytes

    def sign_bytes(self, chain_id: str) -> bytes:
        return vote_sign_bytes(self.type, self.height, self.round, self.block_id, self.timestamp, chain_id)


# ------------------------------------------------------------------------------------------ ed25519


def address_of(pub_key: bytes) -> bytes:
    """Validator address of a 32-byte Ed25519 public key: SHA-256(pub_key)[:20]."""
    if len(pub_key) != 32:
        raise CometError(f"ed25519 public key: {len(pub_key)} bytes, want 32")
    return hashlib.sha256(pub_key).digest()[:20]


def verify_signature(pub_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 (libsodium) check of a 64-byte signature; False for wrong lengths or types, never raises."""
    if (
        not isinstance(pub_key, bytes)
        or not isinstance(signature, bytes)
        or len(pub_key) != 32
        or len(signature) != 64
    ):
        return False
    try:
        crypto_sign_open(signature + bytes(message), pub_key)
    except (CryptoError, TypeError, ValueError):
        return False
    return True
