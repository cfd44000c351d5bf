"""The devnet's blob rows and their check: a light stand-in for 0g-da-encoder's encoded rows.

0G's real rows (docs/spec/DA.md section 8) are AMT/KZG-encoded: each row carries an AMT opening
against the blob's erasure commitment and a Merkle proof against the data root, and checking them
needs the encoder's public parameters, which are far too heavy for the devnet. This module defines a
row format the devnet signer (``alignment_node.devnet.dasigner``) and an auditor can check cheaply.

* A blob is ``rows`` rows of ``row_bytes`` bytes each (defaults: 16 rows of 256 bytes).
* Its ``storage_root`` (the data root a SignRequest names) is a binary keccak256 Merkle root: leaf i is
  ``keccak256(row_i)``; the leaves are padded with zero leaves (32 zero bytes) up to a power of two;
  an inner node is ``keccak256(left || right)``. A one-row blob's root is its leaf.
* An "encoded slice" (one ``encoded_slice`` entry of a SignRequest or a Slices reply) is
  ``index (u64 LE) | row (row_bytes) | proof length (u64 LE) | proof siblings (32 bytes each)``:
  the row and its inclusion proof against ``storage_root``, siblings from the leaf level upwards.
  It is not the 0G ``EncodedSlice`` layout, so ``wire.parse_encoded_slice`` does not accept it.
* The erasure commitment stand-in is ``bls.hash_to_g1(keccak256(b"devnet-erasure-commitment" ||
  storage_root))``: a real G1 point on the curve, so the wire checks on ``erasure_commitment``
  (64 bytes, on the curve) pass, and a function of the root only.

What `verify_slice` checks in place of the AMT proofs: that the commitment is the stand-in derived
from the root (so a commitment of another blob, or any other point, is refused), that the slice is
well formed and labelled with the expected row index, and that its row hashes, along its proof and the
path its index selects, to the root. It does not check erasure coding: nothing here proves that the
rows extend some original data or that enough of them rebuild it, which is what the AMT openings
against the commitment establish in 0G. The leaves have no domain separation from inner nodes.

The interface ``verify_slice(slice_bytes, expected_index, storage_root, commitment) -> None | reason``
is where the real check drops in: a verifier of 0G's EncodedSlice (AMT opening against the commitment,
Merkle proof against the root) can replace it without touching the signer or its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..chain.keccak import keccak256
from . import bls
from .errors import DaError

__all__ = [
    "DEFAULT_ROWS", "DEFAULT_ROW_BYTES", "MAX_PROOF_LEN", "COMMITMENT_DOMAIN", "ZERO_LEAF", "Blob",
    "make_blob", "blob_from_rows", "leaf_hash", "merkle_levels", "storage_root", "merkle_proof",
    "commitment_for", "encode_slice", "parse_slice", "verify_proof", "verify_slice",
]

DEFAULT_ROWS = 16
DEFAULT_ROW_BYTES = 256
MAX_PROOF_LEN = 32  # at most 2^32 rows
MAX_ROW_BYTES = 1 << 20
COMMITMENT_DOMAIN = b"devnet-erasure-commitment"
ZERO_LEAF = bytes(32)
_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Blob:
    """A devnet blob: its rows, data root, commitment stand-in, and one encoded slice per row."""

    rows: list[bytes]
    storage_root: bytes
    commitment: bls.G1Point
    slices: list[bytes]

    @property
    def row_bytes(self) -> int:
        return len(self.rows[0])


def leaf_hash(row: bytes) -> bytes:
    return keccak256(bytes(row))


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """All levels of the tree over `leaves` (padded with ZERO_LEAF to a power of two), leaves first."""
    if not leaves:
        raise DaError("a blob has at least one row", "rows")
    size = 1
    while size < len(leaves):
        size *= 2
    level = list(leaves) + [ZERO_LEAF] * (size - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def storage_root(rows: Sequence[bytes]) -> bytes:
    """The data root of `rows`."""
    return merkle_levels([leaf_hash(r) for r in rows])[-1][0]


def merkle_proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    """Siblings of leaf `index`, leaf level first."""
    if not 0 <= index < len(levels[0]):
        raise DaError(f"row {index} outside a tree of {len(levels[0])} leaves", "index")
    out = []
    for level in levels[:-1]:
        out.append(level[index ^ 1])
        index >>= 1
    return out


def commitment_for(root: bytes) -> bls.G1Point:
    """The devnet's erasure commitment stand-in for data root `root` (a G1 point on the curve)."""
    if not isinstance(root, (bytes, bytearray)) or len(root) != 32:
        raise DaError("expected 32 bytes", "storage_root")
    return bls.hash_to_g1(keccak256(COMMITMENT_DOMAIN + bytes(root)))


def encode_slice(index: int, data: bytes, proof: Sequence[bytes]) -> bytes:
    """``index u64 LE | data | len(proof) u64 LE | siblings``."""
    if not isinstance(index, int) or not 0 <= index <= _U64_MAX:
        raise DaError("not a uint64", "index")
    if any(len(s) != 32 for s in proof):
        raise DaError("a proof sibling is 32 bytes", "proof")
    return (index.to_bytes(8, "little") + bytes(data) + len(proof).to_bytes(8, "little")
            + b"".join(bytes(s) for s in proof))


def blob_from_rows(rows: Sequence[bytes]) -> Blob:
    """A Blob over given rows (all of one length, at least one byte each)."""
    rows = [bytes(r) for r in rows]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise DaError("rows must be non-empty and of one length", "rows")
    levels = merkle_levels([leaf_hash(r) for r in rows])
    root = levels[-1][0]
    slices = [encode_slice(i, r, merkle_proof(levels, i)) for i, r in enumerate(rows)]
    return Blob(rows, root, commitment_for(root), slices)


def make_blob(seed: bytes, rows: int = DEFAULT_ROWS, row_bytes: int = DEFAULT_ROW_BYTES) -> Blob:
    """A deterministic blob: row i is the keccak256 stream of ``seed || i || j`` cut to `row_bytes`."""
    if not 1 <= rows <= 1 << 16 or not 1 <= row_bytes <= MAX_ROW_BYTES:
        raise ValueError("rows in [1, 65536] and row_bytes in [1, 1 MiB]")
    seed = bytes(seed)
    data = []
    for i in range(rows):
        chunks = [keccak256(seed + i.to_bytes(8, "big") + j.to_bytes(8, "big")) for j in range((row_bytes + 31) // 32)]
        data.append(b"".join(chunks)[:row_bytes])
    return blob_from_rows(data)


def parse_slice(data: bytes, row_bytes: Optional[int] = None) -> tuple[int, bytes, list[bytes]]:
    """(index, row, proof) of an encoded slice, or DaError on a bad shape. The layout has no row length:
    given `row_bytes` it is checked, else it is inferred as the only split where the proof-length field
    matches the bytes that follow (an ambiguous slice is refused)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DaError(f"expected bytes, got {type(data).__name__}", "encoded_slice")
    data = bytes(data)
    n = len(data)
    if n < 16 + 1:
        raise DaError(f"{n} bytes is too short", "encoded_slice")
    found = []
    for k in range(MAX_PROOF_LEN + 1):
        rb = n - 16 - 32 * k
        if rb < 1 or (row_bytes is not None and rb != row_bytes):
            continue
        if int.from_bytes(data[8 + rb:16 + rb], "little") == k:
            found.append((k, rb))
    if not found:
        raise DaError("proof length does not match the slice size", "encoded_slice")
    if len(found) > 1:
        raise DaError("ambiguous layout (pass row_bytes)", "encoded_slice")
    k, rb = found[0]
    index = int.from_bytes(data[:8], "little")
    row = data[8:8 + rb]
    proof = [data[16 + rb + 32 * i:48 + rb + 32 * i] for i in range(k)]
    return index, row, proof


def verify_proof(row: bytes, index: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `row` at `index` hashes along `proof` to `root` (index must fit the proof's depth)."""
    if index >> len(proof):
        return False
    h = leaf_hash(row)
    for sib in proof:
        h = keccak256(sib + h) if index & 1 else keccak256(h + sib)
        index >>= 1
    return h == bytes(root)


def verify_slice(slice_bytes: bytes, expected_index: int, storage_root: bytes, commitment: bls.G1Point,
                 row_bytes: Optional[int] = None) -> Optional[str]:
    """None when the slice is row `expected_index` of the blob with this root and commitment, else a
    short reason: "malformed slice: ...", "commitment does not match", "wrong index", "index beyond
    the tree", "not in the data root". The devnet stand-in for 0G's AMT and Merkle checks (module doc)."""
    if not isinstance(storage_root, (bytes, bytearray)) or len(storage_root) != 32:
        return "storage root is not 32 bytes"
    try:
        index, row, proof = parse_slice(slice_bytes, row_bytes)
    except DaError as exc:
        return f"malformed slice: {exc}"
    if commitment != commitment_for(storage_root):
        return "commitment does not match"
    if index != expected_index:
        return "wrong index"
    if index >> len(proof):
        return "index beyond the tree"
    if not verify_proof(row, index, proof, storage_root):
        return "not in the data root"
    return None
