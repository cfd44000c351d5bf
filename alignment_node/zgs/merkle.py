"""0G Storage Merkle rules (docs/spec/ZGS.md): chunk leaves, flow padding, promote-odd trees, submission nodes
and their right fold, segment roots, segment proofs and their verification with the position check.

Sizes: a chunk (entry) is 256 bytes, a segment 1,024 chunks (256 KiB). Hash: keccak256, no domain prefixes.

A promote-odd tree over n leaves has the root of the right fold of the perfect subtrees of n's binary
decomposition (descending powers of two), so roots can be computed streaming, in O(log n) memory
(``RootBuilder``), and the submission nodes of a file are those perfect subtrees of its padded chunk count.

Speed: verifying a served segment is dominated by 1,024 leaf hashes and 1,023 pair hashes, each a separate call
into keccak. Copying a fresh hasher and updating it costs less than constructing one with data, and whole
perfect subtrees (a full segment, a run of padding) are hashed level by level rather than leaf by leaf;
bench/zgs_verify.py measures the result against raw keccak throughput.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Sequence

import sha3  # safe-pysha3: about 6x the speed of pycryptodome on 256-byte inputs

from ..chain.keccak import keccak256 as keccak  # the same function object: no extra call layer

__all__ = [
    "CHUNK",
    "SEGMENT_CHUNKS",
    "SEGMENT",
    "MAX_PROOF_DEPTH",
    "ProofError",
    "Proof",
    "keccak",
    "zero_chunk_hash",
    "zero_root",
    "next_pow2",
    "num_chunks",
    "padded_chunks",
    "num_segments",
    "segment_leaf_count",
    "segment_data_chunks",
    "submission_heights",
    "fold_nodes",
    "tree_root",
    "RootBuilder",
    "chunk_leaves",
    "segment_root",
    "file_segment_roots",
    "data_root",
    "file_root",
    "submission_nodes",
    "SegmentTree",
    "proof_position",
    "verify_proof",
    "decode_base64",
]

CHUNK = 256
SEGMENT_CHUNKS = 1024
SEGMENT = CHUNK * SEGMENT_CHUNKS
MAX_PROOF_DEPTH = 64  # a flow of 2**64 segments is far beyond any real one; deeper proofs are rejected unread


class ProofError(ValueError):
    """A segment proof that does not verify; ``step`` names the failing step (for evidence)."""

    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


_new_hasher = sha3.keccak_256().copy  # copying an empty hasher is cheaper than sha3.keccak_256(data)


def _pair(left: bytes, right: bytes) -> bytes:
    h = _new_hasher()
    h.update(left)
    h.update(right)
    return h.digest()


_ZERO_CHUNK = bytes(CHUNK)
_ZEROS: list[bytes] = [keccak(_ZERO_CHUNK)]
for _ in range(MAX_PROOF_DEPTH):
    _ZEROS.append(_pair(_ZEROS[-1], _ZEROS[-1]))


def zero_chunk_hash() -> bytes:
    """keccak256 of 256 zero bytes: the leaf of a padding chunk."""
    return _ZEROS[0]


def zero_root(height: int) -> bytes:
    """Root of a perfect tree of 2**height zero-chunk leaves (0 <= height <= MAX_PROOF_DEPTH)."""
    if not 0 <= height <= MAX_PROOF_DEPTH:
        raise ValueError(f"zero subtree of height {height} (0..{MAX_PROOF_DEPTH})")
    return _ZEROS[height]


# ------------------------------------------------------------------------------------------- sizes


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def num_chunks(size: int) -> int:
    """Chunks of a file of ``size`` bytes (the last one zero-padded); a size is at least 1."""
    if size < 1:
        raise ValueError(f"a file size is at least 1 byte, got {size}")
    return -(-size // CHUNK)


def padded_chunks(size: int) -> int:
    """Chunk count after flow padding: a power of two, or the next multiple of (next power of two) / 16."""
    chunks = num_chunks(size)
    p = next_pow2(chunks)
    if p == chunks:
        return chunks
    m = 1 if p < 16 else p // 16
    return -(-chunks // m) * m


def num_segments(size: int) -> int:
    return -(-padded_chunks(size) // SEGMENT_CHUNKS)


def segment_leaf_count(size: int, index: int) -> int:
    """Leaves of segment ``index``'s tree: 1,024, except a last segment that the padded count leaves short."""
    padded = padded_chunks(size)
    n = -(-padded // SEGMENT_CHUNKS)
    if not 0 <= index < n:
        raise ValueError(f"segment {index} of a file of {n} segments")
    if index < n - 1 or padded % SEGMENT_CHUNKS == 0:
        return SEGMENT_CHUNKS
    return padded % SEGMENT_CHUNKS


def segment_data_chunks(size: int, index: int) -> int:
    """Chunks of segment ``index`` that hold file bytes (the rest of its leaves are padding)."""
    return max(0, min(SEGMENT_CHUNKS, num_chunks(size) - index * SEGMENT_CHUNKS))


def submission_heights(size: int) -> list[int]:
    """Heights of a file's submission nodes: the set bits of its padded chunk count, highest first."""
    padded = padded_chunks(size)
    return [h for h in range(padded.bit_length() - 1, -1, -1) if padded >> h & 1]


def fold_nodes(roots: Sequence[bytes]) -> bytes:
    """The right fold of submission node roots: the file's data root."""
    if not roots:
        raise ValueError("no submission nodes")
    root = roots[-1]
    for node in reversed(roots[:-1]):
        root = _pair(node, root)
    return root


# ------------------------------------------------------------------------------------------- trees


class RootBuilder:
    """Promote-odd Merkle root of a stream of leaves in O(log n) memory: a binary counter of perfect subtrees."""

    __slots__ = ("_stack", "count")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, root) of perfect subtrees, heights decreasing
        self.count = 0

    def _push(self, height: int, node: bytes) -> None:
        stack = self._stack
        while stack and stack[-1][0] == height:
            node = _pair(stack.pop()[1], node)
            height += 1
        stack.append((height, node))

    def add(self, leaf: bytes) -> None:
        self._push(0, leaf)
        self.count += 1

    def _block_height(self, n: int) -> int:
        """Height of the largest perfect subtree of at most ``n`` leaves that can start at the current count."""
        h = n.bit_length() - 1
        if self.count:
            h = min(h, (self.count & -self.count).bit_length() - 1)
        return h

    def add_leaves(self, leaves: Sequence[bytes]) -> None:
        """Append ``leaves``, hashing each aligned perfect run of them level by level (a whole segment is one)."""
        pos, n = 0, len(leaves)
        while pos < n:
            h = self._block_height(n - pos)
            self._push(h, _levels_root(leaves[pos:pos + (1 << h)]))
            self.count += 1 << h
            pos += 1 << h

    def add_zero_leaves(self, n: int) -> None:
        """Append ``n`` zero-chunk leaves, as whole zero subtrees where the count's alignment allows."""
        while n > 0:
            h = self._block_height(n)
            self._push(h, zero_root(h))
            self.count += 1 << h
            n -= 1 << h

    def nodes(self) -> list[tuple[int, bytes]]:
        """(height, root) of the perfect subtrees so far, highest first: a file's submission nodes."""
        return list(self._stack)

    def root(self) -> bytes:
        if not self._stack:
            raise ValueError("no leaves")
        return fold_nodes([r for _, r in self._stack])


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Parents of ``level``'s pairs; an odd last node moves up unchanged."""
    new = _new_hasher
    out = []
    append = out.append
    it = iter(level)
    for left, right in zip(it, it):
        h = new()
        h.update(left)
        h.update(right)
        append(h.digest())
    if len(level) % 2:
        append(level[-1])
    return out


def _levels_root(leaves: Sequence[bytes]) -> bytes:
    """Root of a non-empty list of leaves, built level by level (a perfect tree when the count is a power of 2)."""
    level = leaves
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """Promote-odd Merkle root of ``leaves`` (level by level; the last node of an odd level moves up unchanged)."""
    if not leaves:
        raise ValueError("no leaves")
    return _levels_root(leaves)


def _as_bytes_view(data: bytes | bytearray | memoryview) -> bytes | memoryview:
    """``data`` itself when it is bytes (slicing bytes is the cheapest), else a flat byte view of it."""
    if isinstance(data, bytes):
        return data
    mv = memoryview(data)
    if not mv.c_contiguous:
        return mv.tobytes()
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


def chunk_leaves(data: bytes | bytearray | memoryview) -> list[bytes]:
    """keccak of each 256-byte chunk of ``data`` (the last chunk zero-padded)."""
    buf = _as_bytes_view(data)
    n = len(buf)
    full = n - n % CHUNK
    new = _new_hasher
    out = []
    append = out.append
    for i in range(0, full, CHUNK):
        h = new()
        h.update(buf[i:i + CHUNK])
        append(h.digest())
    if full < n:
        h = new()
        h.update(buf[full:])
        h.update(bytes(CHUNK - (n - full)))
        append(h.digest())
    return out


def segment_root(data: bytes | bytearray | memoryview, leaf_count: int | None = None) -> bytes:
    """Root of one segment's chunk leaves, zero leaves appended up to ``leaf_count`` (default: none)."""
    leaves = chunk_leaves(data)
    if leaf_count is None or leaf_count == len(leaves):
        return tree_root(leaves)
    if leaf_count < len(leaves):
        raise ValueError(f"{len(leaves)} chunks of data for a segment of {leaf_count} leaves")
    b = RootBuilder()
    b.add_leaves(leaves)
    b.add_zero_leaves(leaf_count - len(leaves))
    return b.root()


def _segments_of(stream: BinaryIO, size: int) -> Iterable[tuple[int, bytes]]:
    index = 0
    left = size
    while left > 0:
        piece = stream.read(min(SEGMENT, left))
        if not piece:
            raise ValueError(f"the file ended {left} bytes before its size {size}")
        while len(piece) < min(SEGMENT, left):
            more = stream.read(min(SEGMENT, left) - len(piece))
            if not more:
                raise ValueError(f"the file ended {left - len(piece)} bytes before its size {size}")
            piece += more
        yield index, piece
        left -= len(piece)
        index += 1


def file_segment_roots(stream: BinaryIO, size: int) -> list[bytes]:
    """The segment roots of ``size`` bytes read from ``stream``: the leaves of the file's segment tree."""
    n = num_segments(size)
    roots = []
    for index, piece in _segments_of(stream, size):
        roots.append(segment_root(piece, segment_leaf_count(size, index)))
    for index in range(len(roots), n):  # segments made only of flow padding
        roots.append(segment_root(b"", segment_leaf_count(size, index)))
    return roots


def data_root(data: bytes) -> bytes:
    """The 0G data root of ``data`` (at least one byte)."""
    import io

    return file_root(io.BytesIO(data), len(data))


def file_root(stream: BinaryIO, size: int) -> bytes:
    """The 0G data root of ``size`` bytes read from ``stream``, in O(log size) memory beyond one segment."""
    return fold_nodes([r for _, r in submission_nodes(stream, size)])


def submission_nodes(stream: BinaryIO, size: int) -> list[tuple[int, bytes]]:
    """(height, root) of the file's submission nodes, highest first (what the flow contract's ``submit`` takes)."""
    b = RootBuilder()
    for _index, piece in _segments_of(stream, size):
        b.add_leaves(chunk_leaves(piece))
    b.add_zero_leaves(padded_chunks(size) - num_chunks(size))
    nodes = b.nodes()
    assert [h for h, _ in nodes] == submission_heights(size)
    return nodes


# ------------------------------------------------------------------------------------------ proofs


@dataclass(frozen=True)
class Proof:
    """A segment proof as ``zgs_downloadSegmentWithProof`` serves it: lemma = [leaf, siblings..., root]."""

    lemma: tuple[bytes, ...]
    path: tuple[bool, ...]

    def as_json(self) -> dict:
        return {"lemma": ["0x" + h.hex() for h in self.lemma], "path": list(self.path)}


class SegmentTree:
    """The promote-odd tree over a file's segment roots, for serving proofs."""

    def __init__(self, leaves: Sequence[bytes]):
        if not leaves:
            raise ValueError("no segments")
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            self.levels.append(_next_level(self.levels[-1]))

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> Proof:
        n = len(self.levels[0])
        if not 0 <= index < n:
            raise IndexError(f"segment {index} of {n}")
        if n == 1:
            return Proof((self.root,), ())
        lemma = [self.levels[0][index]]
        path = []
        i = index
        for level in self.levels[:-1]:
            if i % 2 == 0:
                if i + 1 < len(level):  # a left child with a sibling; a promoted node adds nothing
                    lemma.append(level[i + 1])
                    path.append(True)
            else:
                lemma.append(level[i - 1])
                path.append(False)
            i //= 2
        lemma.append(self.root)
        return Proof(tuple(lemma), tuple(path))


def proof_position(path: Sequence[bool], leaves: int) -> int:
    """The leaf index a proof's path leads to in a promote-odd tree of ``leaves`` leaves; ProofError if the
    path does not end at a leaf (too long, too short, or a step into a promoted node)."""
    if not isinstance(leaves, int) or isinstance(leaves, bool) or leaves < 1:
        raise ProofError("position", f"a tree of {leaves!r} leaves")
    if not isinstance(path, (tuple, list)) or not all(isinstance(b, bool) for b in path):
        raise ProofError("shape", "the path is not a list of booleans")
    pos, n = 0, leaves
    for step, is_left in enumerate(reversed(path)):
        if n <= 1:
            raise ProofError("position", f"path of {len(path)} steps is longer than the tree (ended at step {step})")
        half = next_pow2(n) // 2
        if is_left:
            n = half
        else:
            pos += half
            n -= half
    if n != 1:
        raise ProofError("position", f"path of {len(path)} steps ends above the leaves ({n} leaves below)")
    return pos


def verify_proof(proof: Proof, leaf: bytes, root: bytes, index: int, leaves: int) -> None:
    """Check that ``proof`` proves ``leaf`` at ``index`` of a tree of ``leaves`` leaves with root ``root`` (all
    three are the verifier's own, never the prover's). Raises ProofError naming the failing step."""
    lemma, path = getattr(proof, "lemma", None), getattr(proof, "path", None)
    if not isinstance(lemma, (tuple, list)) or not isinstance(path, (tuple, list)):
        raise ProofError("shape", "the lemma and the path must be lists")
    if len(path) > MAX_PROOF_DEPTH:
        raise ProofError("shape", f"{len(path)} levels (at most {MAX_PROOF_DEPTH})")
    if not path:
        if len(lemma) != 1:
            raise ProofError("shape", f"an empty path needs a lemma of 1 hash, got {len(lemma)}")
    elif len(lemma) != len(path) + 2:
        raise ProofError("shape", f"lemma of {len(lemma)} hashes for a path of {len(path)} (needs {len(path) + 2})")
    if not all(isinstance(b, bool) for b in path):
        raise ProofError("shape", "a path entry is not a boolean")
    if not all(isinstance(h, bytes) and len(h) == 32 for h in lemma):
        raise ProofError("shape", "a lemma entry is not 32 bytes")
    if lemma[0] != leaf:
        raise ProofError("leaf", f"proof leaf 0x{lemma[0].hex()} is not the segment root 0x{leaf.hex()}")
    h = lemma[0]
    for i, is_left in enumerate(path):
        h = _pair(h, lemma[i + 1]) if is_left else _pair(lemma[i + 1], h)
    if h != lemma[-1]:
        raise ProofError("walk", f"the path hashes to 0x{h.hex()}, the lemma's root is 0x{lemma[-1].hex()}")
    if h != root:
        raise ProofError("root", f"the proof reaches 0x{h.hex()}, the on-chain data root is 0x{root.hex()}")
    pos = proof_position(path, leaves)
    if pos != index:
        raise ProofError("position", f"the path leads to segment {pos}, not {index}")


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Strict standard base64 of at most ``max_bytes`` decoded bytes: padding required, no whitespace, no
    characters outside the alphabet, and canonical (the unused bits of the last group are zero), so one byte
    string has exactly one accepted text. ValueError otherwise; the length is checked before decoding."""
    if not isinstance(text, str):
        raise ValueError(f"data is {type(text).__name__}, not a base64 string")
    if len(text) > 4 * (-(-max_bytes // 3)):
        raise ValueError(f"{len(text)} base64 characters decode to more than {max_bytes} bytes")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
        raise ValueError(f"not base64: {exc}") from None
    if len(data) > max_bytes:
        raise ValueError(f"base64 of {len(data)} bytes, more than {max_bytes}")
    if data and binascii.b2a_base64(data[-(len(data) % 3 or 3):], newline=False) != text[-4:].encode("ascii"):
        raise ValueError("not base64: the last group is not canonical (non-zero unused bits)")
    return data
