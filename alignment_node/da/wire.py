"""Strict codecs for the DA signer gRPC service (``signer.Signer`` in 0g-da-node grpc/proto/signer.proto).

Builds BatchSign / BatchRetrieve requests the way 0g-da-client does and parses the replies into plain
values, raising `DaError` (never anything else) on malformed protobuf, unknown fields, wrong counts,
wrong sizes, field elements out of range or points off the curve. Reply parsers take the raw protobuf
bytes or an already-decoded message (as a grpc stub returns it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from google.protobuf import unknown_fields as _unknown_fields
from google.protobuf.message import Message

from . import bls
from .errors import DaError
from .proto import signer_pb2 as pb

__all__ = [
    "WireLimits", "DEFAULT_LIMITS", "SignItem", "RetrieveItem", "StatusInfo", "SliceInfo",
    "encode_commitment", "decode_commitment", "build_batch_sign_request", "build_batch_retrieve_request",
    "parse_batch_sign_reply", "parse_batch_retrieve_reply", "parse_retrieved_rows", "parse_status_reply",
    "parse_encoded_slice",
    "build_encoded_slice",
    "METHOD_BATCH_SIGN", "METHOD_BATCH_RETRIEVE", "METHOD_GET_STATUS",
]

METHOD_BATCH_SIGN = "/signer.Signer/BatchSign"
METHOD_BATCH_RETRIEVE = "/signer.Signer/BatchRetrieve"
METHOD_GET_STATUS = "/signer.Signer/GetStatus"
_U64 = (1 << 64) - 1
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class WireLimits:
    """Upper bounds applied before any parsing work (a reply over a bound is a DaError)."""

    max_message_bytes: int = 64 << 20
    max_requests: int = 1024          # requests per batch (and replies expected)
    max_rows_per_request: int = 3072  # BLOB_ROW_ENCODED in 0g-da-encoder production settings
    max_slice_bytes: int = 1 << 20    # one encoded slice is about 34 KiB in production
    max_row_elements: int = 1 << 12   # BlobRow.row (BLOB_COL_N = 1024 in production)
    max_amt_proof: int = 32           # AMT proof pairs (one per tree level)
    max_merkle_proof: int = 64        # Merkle siblings
    max_contract_chars: int = 64      # StatusReply.entrance_contract


DEFAULT_LIMITS = WireLimits()


@dataclass(frozen=True)
class SignItem:
    """One SignRequest: the blob identity plus this signer's encoded rows (raw bytes)."""

    epoch: int
    quorum_id: int
    storage_root: bytes
    erasure_commitment: bls.G1Point
    encoded_slices: Sequence[bytes] = ()


@dataclass(frozen=True)
class RetrieveItem:
    epoch: int
    quorum_id: int
    storage_root: bytes
    row_indexes: Sequence[int]


@dataclass(frozen=True)
class StatusInfo:
    status_code: int
    entrance_contract: str  # 0x-prefixed, lower case


@dataclass(frozen=True)
class SliceInfo:
    """The structure of one arkworks-serialized ``EncodedSlice`` (0g-da-encoder), with its raw bytes."""

    index: int
    amt_index: int
    amt_commitment: bls.G1Point
    row_index: int
    row_len: int
    amt_proof_len: int
    high_commitment: bls.G1Point
    merkle_roots: tuple[bytes, bytes, bytes]
    merkle_proof_len: int
    leaf_index: int
    leaf: bytes
    raw: bytes


# ---------------------------------------------------------------- helpers

def _u64(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64:
        raise DaError("not a uint64", field)
    return value


def _bytes32(value: object, field: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise DaError("expected 32 bytes", field)
    return bytes(value)


def encode_commitment(pt: bls.G1Point) -> bytes:
    """SignRequest.erasure_commitment: two 32-byte little-endian field elements x || y with no flag
    bits (0g-da-node reads it as arkworks ``(Fq, Fq)``; 0g-da-client byte-reverses gnark's raw bytes)."""
    bls.check_g1(pt, "erasure_commitment")
    return pt[0].to_bytes(32, "little") + pt[1].to_bytes(32, "little")


def decode_commitment(data: bytes, field: str = "erasure_commitment") -> bls.G1Point:
    """Inverse of `encode_commitment`: any flag bit makes y >= p, which 0g-da-node rejects too."""
    if not isinstance(data, (bytes, bytearray)) or len(data) != 64:
        raise DaError("expected 64 bytes", field)
    pt = (int.from_bytes(data[:32], "little"), int.from_bytes(data[32:], "little"))
    return bls.check_g1(pt, field)


def _parse(message_type, data: Union[bytes, Message], limits: WireLimits, field: str):
    if isinstance(data, message_type):
        msg = data
        size = msg.ByteSize()
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
        if size > limits.max_message_bytes:
            raise DaError(f"{size} bytes exceeds the {limits.max_message_bytes}-byte limit", field)
        msg = message_type()
        try:
            msg.ParseFromString(bytes(data))
        except Exception as exc:  # DecodeError, RuntimeError from upb on deep nesting, ...
            raise DaError(f"not a valid {message_type.DESCRIPTOR.full_name}: {exc}", field) from None
    else:
        raise DaError(f"expected protobuf bytes or {message_type.__name__}, got {type(data).__name__}", field)
    if size > limits.max_message_bytes:
        raise DaError(f"{size} bytes exceeds the {limits.max_message_bytes}-byte limit", field)
    _no_unknown(msg, field)
    return msg


def _no_unknown(msg: Message, field: str) -> None:
    if len(_unknown_fields.UnknownFieldSet(msg)):
        raise DaError("unknown protobuf fields", field)
    for desc, value in msg.ListFields():
        if desc.message_type is None:
            continue
        items = [value] if isinstance(value, Message) else value  # singular or repeated
        for i, sub in enumerate(items):
            _no_unknown(sub, f"{field}.{desc.name}[{i}]")


# ---------------------------------------------------------------- requests

def build_batch_sign_request(items: Sequence[SignItem], limits: WireLimits = DEFAULT_LIMITS) -> bytes:
    """Serialized BatchSignRequest for `items` (validated: roots 32 bytes, commitment on curve)."""
    if len(items) > limits.max_requests:
        raise DaError("too many requests", "requests")
    msg = pb.BatchSignRequest()
    for i, it in enumerate(items):
        f = f"requests[{i}]"
        msg.requests.add(
            epoch=_u64(it.epoch, f + ".epoch"), quorum_id=_u64(it.quorum_id, f + ".quorum_id"),
            erasure_commitment=encode_commitment(it.erasure_commitment),
            storage_root=_bytes32(it.storage_root, f + ".storage_root"),
            encoded_slice=[bytes(s) for s in it.encoded_slices])
    return msg.SerializeToString()


def build_batch_retrieve_request(items: Sequence[RetrieveItem], limits: WireLimits = DEFAULT_LIMITS) -> bytes:
    """Serialized BatchRetrieveRequest for `items`."""
    if len(items) > limits.max_requests:
        raise DaError("too many requests", "requests")
    msg = pb.BatchRetrieveRequest()
    for i, it in enumerate(items):
        f = f"requests[{i}]"
        rows = list(it.row_indexes)
        if len(rows) > limits.max_rows_per_request:
            raise DaError("too many row indexes", f + ".row_indexes")
        for j, r in enumerate(rows):
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < 1 << 32:
                raise DaError("not a uint32", f"{f}.row_indexes[{j}]")
        msg.requests.add(epoch=_u64(it.epoch, f + ".epoch"), quorum_id=_u64(it.quorum_id, f + ".quorum_id"),
                         storage_root=_bytes32(it.storage_root, f + ".storage_root"), row_indexes=rows)
    return msg.SerializeToString()


# ---------------------------------------------------------------- replies

def parse_batch_sign_reply(data: Union[bytes, Message], expected: int,
                           limits: WireLimits = DEFAULT_LIMITS) -> list[bls.G1Point]:
    """The G1 signatures of a BatchSignReply, one per request in order (`expected` of them). Each is
    64 bytes of arkworks uncompressed G1 (little-endian, flag bits in byte 63), on the curve, finite."""
    if not 0 <= expected <= limits.max_requests:
        raise DaError("expected count out of range", "signatures")
    msg = _parse(pb.BatchSignReply, data, limits, "BatchSignReply")
    if len(msg.signatures) != expected:
        raise DaError(f"{len(msg.signatures)} signatures for {expected} requests", "signatures")
    return [bls.decode_g1_ark(s, f"signatures[{i}]") for i, s in enumerate(msg.signatures)]


def parse_batch_retrieve_reply(data: Union[bytes, Message], requests: Sequence[RetrieveItem],
                               limits: WireLimits = DEFAULT_LIMITS) -> list[list[SliceInfo]]:
    """Slices of a BatchRetrieveReply matched against `requests`: one Slices per request, and within
    it one slice per distinct requested row in ascending order (0g-da-node sorts and de-duplicates
    row_indexes), each a well-formed EncodedSlice whose index is that row."""
    out = []
    for i, (req, got) in enumerate(zip(requests, parse_retrieved_rows(data, requests, limits))):
        parsed = []
        for j, (row, raw) in enumerate(zip(sorted(set(req.row_indexes)), got)):
            f = f"encoded_slice[{i}][{j}]"
            info = parse_encoded_slice(raw, f, limits)
            if info.index != row:
                raise DaError(f"slice for row {info.index}, expected row {row}", f)
            parsed.append(info)
        out.append(parsed)
    return out


def parse_retrieved_rows(data: Union[bytes, Message], requests: Sequence[RetrieveItem],
                         limits: WireLimits = DEFAULT_LIMITS) -> list[list[bytes]]:
    """The raw encoded slices of a BatchRetrieveReply, one list per request with one slice per distinct
    requested row in ascending order; the slices' own format is left to the caller's row check (the devnet's
    rows are not 0G's EncodedSlice: ``da.rows``)."""
    if len(requests) > limits.max_requests:
        raise DaError("too many requests", "requests")
    msg = _parse(pb.BatchRetrieveReply, data, limits, "BatchRetrieveReply")
    if len(msg.encoded_slice) != len(requests):
        raise DaError(f"{len(msg.encoded_slice)} slice lists for {len(requests)} requests", "encoded_slice")
    out = []
    for i, (req, slices) in enumerate(zip(requests, msg.encoded_slice)):
        rows = sorted(set(req.row_indexes))
        got = [bytes(raw) for raw in slices.encoded_slice]
        if len(got) != len(rows):
            raise DaError(f"{len(got)} slices for {len(rows)} distinct rows", f"encoded_slice[{i}]")
        for j, raw in enumerate(got):
            if len(raw) > limits.max_slice_bytes:
                raise DaError(f"{len(raw)} bytes exceeds the {limits.max_slice_bytes}-byte slice limit",
                              f"encoded_slice[{i}][{j}]")
        out.append(got)
    return out


def parse_status_reply(data: Union[bytes, Message], limits: WireLimits = DEFAULT_LIMITS) -> StatusInfo:
    """StatusReply: status_code (0g-da-node always sends 200) and entrance_contract, the DAEntrance
    address as 40 hex digits without 0x (``hex::encode``); returned normalised to 0x + lower case."""
    msg = _parse(pb.StatusReply, data, limits, "StatusReply")
    addr = msg.entrance_contract
    if len(addr) > limits.max_contract_chars:
        raise DaError("too long", "entrance_contract")
    if addr[:2] in ("0x", "0X"):
        addr = addr[2:]
    if not _HEX40.fullmatch(addr):
        raise DaError("not a 20-byte hex address", "entrance_contract")
    return StatusInfo(int(msg.status_code), "0x" + addr.lower())


# ---------------------------------------------------------------- EncodedSlice (arkworks 0.4, uncompressed)

class _Reader:
    def __init__(self, data: bytes, field: str):
        self.data, self.pos, self.field = data, 0, field

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise DaError(f"truncated in {what}", self.field)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u64(self, what: str) -> int:
        return int.from_bytes(self.take(8, what), "little")

    def length(self, what: str, limit: int) -> int:
        n = self.u64(what + " length")
        if n > limit:
            raise DaError(f"{what} length {n} over limit {limit}", self.field)
        return n

    def g1(self, what: str) -> bls.G1Point:
        return bls.decode_g1_ark(self.take(64, what), f"{self.field}.{what}")


def parse_encoded_slice(data: bytes, field: str = "encoded_slice",
                        limits: WireLimits = DEFAULT_LIMITS) -> SliceInfo:
    """Walks the canonical serialization of 0g-da-encoder's EncodedSlice and checks its shape:
    index u64 | AMT {index u64, commitment G1, BlobRow {index u64, row Vec<Fr>, proof Vec<(G1, G1)>,
    high_commitment G1}} | Merkle {root [32]x3, proof Vec<[32]>, leaf_index u64, leaf [32]}. Vec lengths
    are u64 little-endian, Fr are 32-byte little-endian below r, G1 as in `bls.decode_g1_ark`. It does
    not verify the AMT or Merkle proofs (that needs the encoder's parameters)."""
    if not isinstance(data, (bytes, bytearray)):
        raise DaError("expected bytes", field)
    data = bytes(data)
    if len(data) > limits.max_slice_bytes:
        raise DaError(f"{len(data)} bytes over the {limits.max_slice_bytes}-byte limit", field)
    rd = _Reader(data, field)
    index = rd.u64("index")
    amt_index = rd.u64("amt.index")
    amt_commitment = rd.g1("amt.commitment")
    row_index = rd.u64("amt.row.index")
    n = rd.length("amt.row.row", limits.max_row_elements)
    row = rd.take(32 * n, "amt.row.row")
    for k in range(n):
        if int.from_bytes(row[32 * k:32 * k + 32], "little") >= bls.R:
            raise DaError(f"row element {k} not below r", field)
    m = rd.length("amt.row.proof", limits.max_amt_proof)
    for k in range(2 * m):
        rd.g1(f"amt.row.proof[{k // 2}][{k % 2}]")
    high = rd.g1("amt.row.high_commitment")
    roots = tuple(rd.take(32, "merkle.root") for _ in range(3))
    q = rd.length("merkle.proof", limits.max_merkle_proof)
    rd.take(32 * q, "merkle.proof")
    leaf_index = rd.u64("merkle.leaf_index")
    leaf = rd.take(32, "merkle.leaf")
    if rd.pos != len(data):
        raise DaError(f"{len(data) - rd.pos} trailing bytes", field)
    return SliceInfo(index, amt_index, amt_commitment, row_index, n, m, high, roots, q, leaf_index, leaf, data)


def build_encoded_slice(index: int, *, amt_index: Optional[int] = None, commitment: bls.G1Point = bls.G1_GEN,
                        row_index: Optional[int] = None, row: Sequence[int] = (), proof: Sequence[tuple] = (),
                        high_commitment: bls.G1Point = bls.G1_GEN, roots: Sequence[bytes] = (bytes(32),) * 3,
                        merkle_proof: Sequence[bytes] = (), leaf_index: int = 0, leaf: bytes = bytes(32)) -> bytes:
    """Serializes an EncodedSlice-shaped value (the layout `parse_encoded_slice` reads). For tests and
    devnets: the proofs inside are whatever the caller passes, not valid AMT/Merkle proofs."""
    u = lambda v: v.to_bytes(8, "little")  # noqa: E731
    out = [u(index), u(index if amt_index is None else amt_index), bls.encode_g1_ark(commitment),
           u(index if row_index is None else row_index), u(len(row))]
    out += [v.to_bytes(32, "little") for v in row]
    out.append(u(len(proof)))
    for a, b in proof:
        out += [bls.encode_g1_ark(a), bls.encode_g1_ark(b)]
    out.append(bls.encode_g1_ark(high_commitment))
    out += [bytes(r) for r in roots]
    out.append(u(len(merkle_proof)))
    out += [bytes(s) for s in merkle_proof]
    out += [u(leaf_index), bytes(leaf)]
    return b"".join(out)
