"""BN254 (alt_bn128) BLS as 0G DA signers use it: point codecs, 0G's hash-to-G1, the signed messages,
and pairing checks (single signature, G1/G2 key consistency, the chain's and DAEntrance's gamma checks,
and quorum-bitmap aggregation).

Points are plain integers: a G1 point is ``(x, y)``, a G2 point is ``((x0, x1), (y0, y1))`` with
``x = x0 + x1*i`` (real part first), and ``None`` is the point at infinity. Every decoder checks
length, field range and curve membership (and the G2 subgroup) and raises `DaError`; the pairing
checks return a bool. Pairings run on mclbn256 (mcl, switched to the alt_bn128 curve) when it loads
and passes a self-test, else on py_ecc; both sit behind `Backend`. See docs/spec/DA.md for sources.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Tuple

from ..chain.keccak import keccak256
from .errors import DaError

__all__ = [
    "P", "R", "G1_GEN", "G2_GEN", "G1Point", "G2Point", "Backend",
    "get_backend", "available_backends",
    "g1_on_curve", "g2_on_curve", "check_g1", "check_g2",
    "decode_g1", "encode_g1", "decode_g1_ark", "encode_g1_ark", "decode_g2", "encode_g2",
    "g2_from_words", "g2_to_words",
    "hash_to_g1", "commit_root_digest", "commit_root_hash",
    "pubkey_registration_digest", "pubkey_registration_hash",
    "epoch_registration_digest", "epoch_registration_hash",
    "verify_signature", "verify_pk_pair", "registration_gamma", "verify_registration",
    "submission_gamma", "verify_submission", "QuorumAggregate", "aggregate_quorum",
    "bitmap_for_rows", "meets_threshold", "g1_add", "g2_add", "g1_neg", "g1_mul", "g2_mul",
    "g1_sum", "g2_sum", "keypair", "sign",
]

# Field modulus p and group order r of alt_bn128 (EIP-196/197; BN254.sol FP_MODULUS / FR_MODULUS).
P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
G1_GEN = (1, 2)
G2_GEN = (
    (10857046999023057135944570762232829481370756359578518086990519993285655852781,
     11559732032986387107991004021392285783925812861821192530917403151452391805634),
    (8495653923123431417604973247489272438418190587263600148770280649306958101930,
     4082367875863433681332203403145435568316851327593401208105741076214120093531),
)
_SQRT_EXP = (P + 1) // 4  # p = 3 mod 4, so beta^((p+1)/4) is a square root when one exists
_ARK_NEGATIVE = 0x80  # arkworks SWFlags in the top bits of the last byte: y is the larger root
_ARK_INFINITY = 0x40

G1Point = Tuple[int, int]
G2Point = Tuple[Tuple[int, int], Tuple[int, int]]
PUBKEY_REGISTRATION_DOMAIN = b"0G_BN254_Pubkey_Registration"


# ---------------------------------------------------------------- field and curve arithmetic (ints)

def _f2_mul(a, b):
    return ((a[0] * b[0] - a[1] * b[1]) % P, (a[0] * b[1] + a[1] * b[0]) % P)


def _f2_inv(a):
    t = pow(a[0] * a[0] + a[1] * a[1], -1, P)
    return (a[0] * t % P, -a[1] * t % P)


_B2 = _f2_mul((3, 0), _f2_inv((9, 1)))  # the twist's b: 3 / (9 + i)


def g1_on_curve(pt: G1Point) -> bool:
    """True when `pt` satisfies y^2 = x^3 + 3 (no range check)."""
    x, y = pt
    return (y * y - x * x * x - 3) % P == 0


def g2_on_curve(pt: G2Point) -> bool:
    """True when `pt` satisfies y^2 = x^3 + 3/(9+i) over Fp2 (no subgroup check)."""
    x, y = pt
    lhs = _f2_mul(y, y)
    rhs = _f2_mul(_f2_mul(x, x), x)
    return lhs == ((rhs[0] + _B2[0]) % P, (rhs[1] + _B2[1]) % P)


def _in_field(*values: int) -> bool:
    return all(isinstance(v, int) and 0 <= v < P for v in values)


def check_g1(pt: object, field: str = "g1", allow_infinity: bool = False) -> Optional[G1Point]:
    """`pt` if it is a canonical G1 point (or None when `allow_infinity`), else DaError."""
    if pt is None:
        if allow_infinity:
            return None
        raise DaError("point at infinity", field)
    if not (isinstance(pt, tuple) and len(pt) == 2 and _in_field(*pt)):
        raise DaError("not a pair of field elements below p", field)
    if not g1_on_curve(pt):
        raise DaError("not on the curve", field)
    return pt


def check_g2(pt: object, field: str = "g2", allow_infinity: bool = False,
             backend: "Backend | None" = None) -> Optional[G2Point]:
    """`pt` if it is a canonical G2 point in the order-r subgroup (or None when `allow_infinity`)."""
    if pt is None:
        if allow_infinity:
            return None
        raise DaError("point at infinity", field)
    ok = (isinstance(pt, tuple) and len(pt) == 2
          and all(isinstance(c, tuple) and len(c) == 2 and _in_field(*c) for c in pt))
    if not ok:
        raise DaError("not two Fp2 elements below p", field)
    if not g2_on_curve(pt):
        raise DaError("not on the twist curve", field)
    if not (backend or get_backend()).g2_in_subgroup(pt):
        raise DaError("not in the order-r subgroup", field)
    return pt


# ---------------------------------------------------------------- byte encodings

def _as_bytes(data: object, size: int, field: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DaError(f"expected bytes, got {type(data).__name__}", field)
    data = bytes(data)
    if len(data) != size:
        raise DaError(f"expected {size} bytes, got {len(data)}", field)
    return data


def decode_g1(data: bytes, field: str = "g1", allow_infinity: bool = False) -> Optional[G1Point]:
    """G1 from 64 bytes ``x || y``, each 32-byte big-endian (EVM / DASigners / gnark SerializeG1).
    64 zero bytes are the point at infinity."""
    data = _as_bytes(data, 64, field)
    x, y = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    if x == 0 and y == 0:
        return check_g1(None, field, allow_infinity)
    return check_g1((x, y), field)


def encode_g1(pt: Optional[G1Point]) -> bytes:
    """64-byte big-endian ``x || y`` (zeros for infinity)."""
    if pt is None:
        return bytes(64)
    return pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def decode_g1_ark(data: bytes, field: str = "g1", allow_infinity: bool = False) -> Optional[G1Point]:
    """G1 from arkworks 0.4 uncompressed bytes, as 0g-da-node returns signatures and reads erasure
    commitments: 32-byte little-endian x, 32-byte little-endian y, flags in the top two bits of the
    last byte (0x40 infinity, 0x80 "y negative"; the sign bit is ignored on decode, as arkworks and
    0g-da-client ignore it)."""
    data = _as_bytes(data, 64, field)
    flags = data[63] & 0xC0
    if flags == 0xC0:
        raise DaError("both arkworks flag bits set", field)
    x = int.from_bytes(data[:32], "little")
    y = int.from_bytes(data[32:63] + bytes([data[63] & 0x3F]), "little")
    if flags & _ARK_INFINITY:
        if x or y:
            raise DaError("infinity flag with non-zero coordinates", field)
        return check_g1(None, field, allow_infinity)
    return check_g1((x, y), field)


def encode_g1_ark(pt: Optional[G1Point]) -> bytes:
    """arkworks 0.4 uncompressed G1 (``serialize_uncompressed``): LE x, LE y, flag bits in byte 63."""
    if pt is None:
        out = bytearray(64)
        out[63] = _ARK_INFINITY
        return bytes(out)
    out = bytearray(pt[0].to_bytes(32, "little") + pt[1].to_bytes(32, "little"))
    if pt[1] > P - pt[1]:
        out[63] |= _ARK_NEGATIVE
    return bytes(out)


def g2_from_words(x: Sequence[int], y: Sequence[int], order: str, field: str = "g2",
                  allow_infinity: bool = False, backend: "Backend | None" = None) -> Optional[G2Point]:
    """G2 from the ABI struct ``{uint[2] X; uint[2] Y}``.

    order ``"chain"``: ``X = [x0, x1]`` (real part first), as the DASigners precompile stores and
    returns pkG2 (gnark A0, A1; arkworks c0, c1). order ``"evm"``: ``X = [x1, x0]`` (imaginary part
    first), EIP-197's order, as DAEntrance's ``aggPkG2`` and BN254.sol's generator use it."""
    if order not in ("chain", "evm"):
        raise ValueError("order must be 'chain' or 'evm'")
    try:
        xa, xb = (int(v) for v in x)
        ya, yb = (int(v) for v in y)
    except (TypeError, ValueError):
        raise DaError("expected two pairs of integers", field) from None
    if xa == xb == ya == yb == 0:
        return check_g2(None, field, allow_infinity)
    pt = ((xa, xb), (ya, yb)) if order == "chain" else ((xb, xa), (yb, ya))
    return check_g2(pt, field, backend=backend)


def g2_to_words(pt: Optional[G2Point], order: str) -> tuple[list[int], list[int]]:
    """The ``(X, Y)`` ABI words of `pt` in `order` (see `g2_from_words`)."""
    if pt is None:
        return [0, 0], [0, 0]
    (x0, x1), (y0, y1) = pt
    if order == "chain":
        return [x0, x1], [y0, y1]
    if order == "evm":
        return [x1, x0], [y1, y0]
    raise ValueError("order must be 'chain' or 'evm'")


def decode_g2(data: bytes, order: str = "chain", field: str = "g2", allow_infinity: bool = False,
              backend: "Backend | None" = None) -> Optional[G2Point]:
    """G2 from 128 bytes: four 32-byte big-endian words ``X[0] X[1] Y[0] Y[1]`` in `order`
    (``"chain"``: the DASigners signer record, gnark SerializeG2; ``"evm"``: EIP-197 input)."""
    data = _as_bytes(data, 128, field)
    w = [int.from_bytes(data[i:i + 32], "big") for i in range(0, 128, 32)]
    return g2_from_words(w[:2], w[2:], order, field, allow_infinity, backend)


def encode_g2(pt: Optional[G2Point], order: str = "chain") -> bytes:
    """128 bytes, the inverse of `decode_g2`."""
    x, y = g2_to_words(pt, order)
    return b"".join(v.to_bytes(32, "big") for v in x + y)


# ---------------------------------------------------------------- hash to G1 and the signed messages

def hash_to_g1(digest: bytes) -> G1Point:
    """0G's map of a 32-byte digest to G1 (try-and-increment): x = digest (big-endian) mod p; while
    x^3 + 3 has no square root, x += 1; y = (x^3 + 3)^((p+1)/4). Same in 0g-da-node utils map_to_g1,
    0g-chain bn254util.MapToCurve and BN254.sol hashToG1. Not constant-time and not RFC 9380."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise DaError("hash_to_g1 takes a 32-byte digest")
    x = int.from_bytes(digest, "big") % P
    while True:
        beta = (x * x * x + 3) % P
        y = pow(beta, _SQRT_EXP, P)
        if y * y % P == beta:
            return (x, y)
        x = (x + 1) % P


def _word(value: int, field: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value < 1 << 256:
        raise DaError("not a uint256", field)
    return value.to_bytes(32, "big")


def _root(data_root: bytes) -> bytes:
    return _as_bytes(data_root, 32, "data_root")


def commit_root_digest(data_root: bytes, epoch: int, quorum_id: int, commitment: G1Point) -> bytes:
    """keccak256(dataRoot || epoch || quorumId || commitment.X || commitment.Y), every field a
    32-byte big-endian word (abi.encodePacked of bytes32 and four uint256; identical to abi.encode
    here). The digest 0g-da-client verifies signatures against."""
    check_g1(commitment, "erasure_commitment")
    return keccak256(_root(data_root) + _word(epoch, "epoch") + _word(quorum_id, "quorum_id")
                     + _word(commitment[0], "commitment.x") + _word(commitment[1], "commitment.y"))


def commit_root_hash(data_root: bytes, epoch: int, quorum_id: int, commitment: G1Point) -> G1Point:
    """H(m): the G1 point a DA signer multiplies by its key for a commit root."""
    return hash_to_g1(commit_root_digest(data_root, epoch, quorum_id, commitment))


def _address(address: bytes | str) -> bytes:
    if isinstance(address, str):
        s = address[2:] if address[:2] in ("0x", "0X") else address
        try:
            address = bytes.fromhex(s)
        except ValueError:
            raise DaError("address is not hex", "address") from None
    return _as_bytes(address, 20, "address")


def pubkey_registration_digest(address: bytes | str, chain_id: int) -> bytes:
    """keccak256(address(20) || chainId as 32-byte big-endian || "0G_BN254_Pubkey_Registration")."""
    return keccak256(_address(address) + _word(chain_id, "chain_id") + PUBKEY_REGISTRATION_DOMAIN)


def pubkey_registration_hash(address: bytes | str, chain_id: int) -> G1Point:
    """The G1 point a signer signs to register its key (x/dasigners PubkeyRegistrationHash)."""
    return hash_to_g1(pubkey_registration_digest(address, chain_id))


def epoch_registration_digest(address: bytes | str, epoch: int, chain_id: int) -> bytes:
    """keccak256(address(20) || epoch as 8-byte big-endian || chainId as 32-byte big-endian)."""
    if not isinstance(epoch, int) or not 0 <= epoch < 1 << 64:
        raise DaError("not a uint64", "epoch")
    return keccak256(_address(address) + epoch.to_bytes(8, "big") + _word(chain_id, "chain_id"))


def epoch_registration_hash(address: bytes | str, epoch: int, chain_id: int) -> G1Point:
    """The G1 point a signer signs to join `epoch` (x/dasigners EpochRegistrationHash)."""
    return hash_to_g1(epoch_registration_digest(address, epoch, chain_id))


# ---------------------------------------------------------------- group operations (py_ecc)

def _pe():
    from py_ecc.optimized_bn128 import optimized_curve  # imported lazily: ~40 ms
    return optimized_curve


def _to_pe1(pt):
    c = _pe()
    return (c.FQ(pt[0]), c.FQ(pt[1]), c.FQ.one()) if pt is not None else c.Z1


def _to_pe2(pt):
    c = _pe()
    if pt is None:
        return c.Z2
    return (c.FQ2(list(pt[0])), c.FQ2(list(pt[1])), c.FQ2.one())


def _from_pe1(q):
    c = _pe()
    if c.is_inf(q):
        return None
    x, y = c.normalize(q)
    return (int(x), int(y))


def _from_pe2(q):
    c = _pe()
    if c.is_inf(q):
        return None
    x, y = c.normalize(q)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


def g1_add(a: Optional[G1Point], b: Optional[G1Point]) -> Optional[G1Point]:
    return _from_pe1(_pe().add(_to_pe1(a), _to_pe1(b)))


def g2_add(a: Optional[G2Point], b: Optional[G2Point]) -> Optional[G2Point]:
    return _from_pe2(_pe().add(_to_pe2(a), _to_pe2(b)))


def g1_neg(a: Optional[G1Point]) -> Optional[G1Point]:
    return None if a is None else (a[0], (-a[1]) % P)


def g1_sum(points: Iterable[Optional[G1Point]]) -> Optional[G1Point]:
    c = _pe()
    acc = c.Z1
    for pt in points:
        acc = c.add(acc, _to_pe1(pt))
    return _from_pe1(acc)


def g2_sum(points: Iterable[Optional[G2Point]]) -> Optional[G2Point]:
    c = _pe()
    acc = c.Z2
    for pt in points:
        acc = c.add(acc, _to_pe2(pt))
    return _from_pe2(acc)


def g1_mul(pt: Optional[G1Point], k: int, backend: "Backend | None" = None) -> Optional[G1Point]:
    return (backend or get_backend()).g1_mul(pt, k % R)


def g2_mul(pt: Optional[G2Point], k: int, backend: "Backend | None" = None) -> Optional[G2Point]:
    return (backend or get_backend()).g2_mul(pt, k % R)


def keypair(sk: int, backend: "Backend | None" = None) -> tuple[G1Point, G2Point]:
    """(sk*G1, sk*G2): the pkG1/pkG2 a signer with secret `sk` registers (for tests and devnets)."""
    if not 0 < sk < R:
        raise ValueError("secret key must be in [1, r)")
    return g1_mul(G1_GEN, sk, backend), g2_mul(G2_GEN, sk, backend)


def sign(sk: int, msg_point: G1Point, backend: "Backend | None" = None) -> G1Point:
    """sk * H(m), what a DA signer returns (for tests and devnets)."""
    return g1_mul(msg_point, sk, backend)


# ---------------------------------------------------------------- pairing backends

class Backend:
    """Pairing engine. `pairing_check` is True when prod e(P_i, Q_i) == 1 (infinity pairs are 1)."""

    name = "abstract"

    def pairing_check(self, pairs: Sequence[tuple[Optional[G1Point], Optional[G2Point]]]) -> bool:
        raise NotImplementedError

    def g2_in_subgroup(self, pt: G2Point) -> bool:
        raise NotImplementedError

    def g1_mul(self, pt: Optional[G1Point], k: int) -> Optional[G1Point]:
        raise NotImplementedError

    def g2_mul(self, pt: Optional[G2Point], k: int) -> Optional[G2Point]:
        raise NotImplementedError


class PyEccBackend(Backend):
    """py_ecc's optimized_bn128 (pure Python, the Ethereum Foundation's reference)."""

    name = "py_ecc"

    def __init__(self):
        from py_ecc.optimized_bn128 import optimized_pairing
        self._op = optimized_pairing

    def pairing_check(self, pairs):
        op = self._op
        acc = op.FQ12.one()
        for p1, q2 in pairs:
            if p1 is None or q2 is None:
                continue
            acc = acc * op.pairing(_to_pe2(q2), _to_pe1(p1), final_exponentiate=False)
        return op.final_exponentiate(acc) == op.FQ12.one()

    def g2_in_subgroup(self, pt):
        c = _pe()
        return c.is_inf(c.multiply(_to_pe2(pt), R))

    def g1_mul(self, pt, k):
        return _from_pe1(_pe().multiply(_to_pe1(pt), k)) if k else None

    def g2_mul(self, pt, k):
        return _from_pe2(_pe().multiply(_to_pe2(pt), k)) if k else None


class MclBackend(Backend):
    """mcl through the shared library that PyPI ``mclbn256`` ships, re-initialised to mcl's
    BN_SNARK1 curve (= alt_bn128; the package's own default curve is a different BN254). This
    switches mcl process-wide, so do not mix with mclbn256's own classes in the same process."""

    name = "mclbn256"
    _CURVE_SNARK1 = 4

    def __init__(self):
        import ctypes
        from mclbn256 import mclbn256 as m  # loads the library and inits curve 0
        self._c = ctypes
        lib = m.lib
        if lib.mclBn_init(self._CURVE_SNARK1, m.MCLBN_COMPILED_TIME_VAR) != 0:
            raise RuntimeError("mclBn_init(BN_SNARK1) failed")
        self._lib = lib
        self._G1 = ctypes.c_uint64 * 12
        self._G2 = ctypes.c_uint64 * 24
        self._GT = ctypes.c_uint64 * 48
        self._Fr = ctypes.c_uint64 * 4
        lib.mclBnG1_getStr.restype = ctypes.c_size_t
        lib.mclBnG2_getStr.restype = ctypes.c_size_t
        for fn in ("mclBnG1_setStr", "mclBnG2_setStr", "mclBnFr_setStr"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        lib.mclBn_millerLoopVec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._self_test()

    def _g1(self, pt):
        g = self._G1()
        s = b"0" if pt is None else b"1 %x %x" % pt
        if self._lib.mclBnG1_setStr(g, s, len(s), 16) != 0:
            raise DaError("mcl rejected G1 point")
        return g

    def _g2(self, pt):
        g = self._G2()
        s = b"0" if pt is None else b"1 %x %x %x %x" % (pt[0][0], pt[0][1], pt[1][0], pt[1][1])
        if self._lib.mclBnG2_setStr(g, s, len(s), 16) != 0:
            raise DaError("mcl rejected G2 point")
        return g

    def _fr(self, k):
        f = self._Fr()
        s = b"%x" % k
        if self._lib.mclBnFr_setStr(f, s, len(s), 16) != 0:
            raise ValueError("mcl rejected scalar")
        return f

    def _str(self, getter, g):
        buf = self._c.create_string_buffer(512)
        n = getter(buf, 512, self._c.byref(g), 16)
        if n == 0:
            raise RuntimeError("mcl getStr failed")
        return [int(w, 16) for w in buf.raw[:n].split()]

    def pairing_check(self, pairs):
        live = [(p, q) for p, q in pairs if p is not None and q is not None]
        if not live:
            return True
        n = len(live)
        g1s = (self._G1 * n)(*[self._g1(p) for p, _ in live])
        g2s = (self._G2 * n)(*[self._g2(q) for _, q in live])
        gt = self._GT()
        self._lib.mclBn_millerLoopVec(gt, g1s, g2s, n)
        self._lib.mclBn_finalExp(self._c.byref(gt), self._c.byref(gt))
        return self._lib.mclBnGT_isOne(self._c.byref(gt)) == 1

    def g2_in_subgroup(self, pt):
        return self._lib.mclBnG2_isValidOrder(self._c.byref(self._g2(pt))) == 1

    def g1_mul(self, pt, k):
        if pt is None or k == 0:
            return None
        out = self._G1()
        self._lib.mclBnG1_mul(self._c.byref(out), self._c.byref(self._g1(pt)), self._c.byref(self._fr(k)))
        self._lib.mclBnG1_normalize(self._c.byref(out), self._c.byref(out))
        w = self._str(self._lib.mclBnG1_getStr, out)
        return None if w == [0] else (w[1], w[2])

    def g2_mul(self, pt, k):
        if pt is None or k == 0:
            return None
        out = self._G2()
        self._lib.mclBnG2_mul(self._c.byref(out), self._c.byref(self._g2(pt)), self._c.byref(self._fr(k)))
        self._lib.mclBnG2_normalize(self._c.byref(out), self._c.byref(out))
        w = self._str(self._lib.mclBnG2_getStr, out)
        return None if w == [0] else ((w[1], w[2]), (w[3], w[4]))

    def _self_test(self):
        # Field, generators, subgroup, scalar mul and bilinearity against constants and py_ecc-free math.
        if not (self.g2_in_subgroup(G2_GEN) and self.g1_mul(G1_GEN, R - 1) == g1_neg(G1_GEN)):
            raise RuntimeError("mcl is not on alt_bn128")
        a, b = 0x1234567, 0x89ABCDEF
        pa, qb = self.g1_mul(G1_GEN, a), self.g2_mul(G2_GEN, b)
        pab = self.g1_mul(G1_GEN, a * b % R)
        if not g1_on_curve(pa) or not g2_on_curve(qb):
            raise RuntimeError("mcl scalar multiplication left the curve")
        if not self.pairing_check([(pa, qb), (g1_neg(pab), G2_GEN)]):
            raise RuntimeError("mcl pairing is not bilinear")
        if self.pairing_check([(pa, qb), (g1_neg(pa), G2_GEN)]):
            raise RuntimeError("mcl pairing check accepts a false equation")


_BACKENDS: dict[str, Backend] = {}
_BACKEND_ERRORS: dict[str, str] = {}
_BACKEND_LOCK = threading.Lock()
_FACTORIES = {"mclbn256": MclBackend, "py_ecc": PyEccBackend}


def get_backend(name: str | None = None) -> Backend:
    """The named backend, or the fastest one that loads and passes its self-test (mclbn256, then
    py_ecc; the environment variable ALIGNMENT_NODE_DA_BACKEND names another default). Raises
    RuntimeError if the named one is unavailable."""
    name = name or os.environ.get("ALIGNMENT_NODE_DA_BACKEND") or None
    with _BACKEND_LOCK:
        for n in ([name] if name else ["mclbn256", "py_ecc"]):
            if n in _BACKENDS:
                return _BACKENDS[n]
            if n in _BACKEND_ERRORS:
                continue
            try:
                _BACKENDS[n] = _FACTORIES[n]()
                return _BACKENDS[n]
            except KeyError:
                raise ValueError(f"unknown backend {n!r}") from None
            except Exception as exc:  # missing package, wrong library, failed self-test
                _BACKEND_ERRORS[n] = f"{type(exc).__name__}: {exc}"
        raise RuntimeError(f"no BN254 backend available: {_BACKEND_ERRORS}")


def available_backends() -> list[str]:
    """Names of the backends that load here."""
    out = []
    for n in _FACTORIES:
        try:
            get_backend(n)
            out.append(n)
        except RuntimeError:
            pass
    return out


# ---------------------------------------------------------------- verification

def verify_signature(signature: G1Point, msg_point: G1Point, pk_g2: G2Point,
                     backend: Backend | None = None) -> bool:
    """e(signature, G2) == e(H(m), pkG2), checked as e(H, pk) * e(-sig, G2) == 1 (bn254util.VerifySig).
    Points must already be decoded (and so validated)."""
    return (backend or get_backend()).pairing_check([(msg_point, pk_g2), (g1_neg(signature), G2_GEN)])


def verify_pk_pair(pk_g1: G1Point, pk_g2: G2Point, backend: Backend | None = None) -> bool:
    """pkG1 and pkG2 share one discrete log: e(pkG1, G2) == e(G1, pkG2)."""
    return (backend or get_backend()).pairing_check([(pk_g1, G2_GEN), (g1_neg(G1_GEN), pk_g2)])


def registration_gamma(msg_point: G1Point, signature: G1Point, pk_g1: G1Point, pk_g2: G2Point) -> int:
    """x/dasigners' gamma: keccak256(hash || sig || pkG1 || pkG2) mod r, G1 as 64 big-endian bytes,
    pkG2 as 128 bytes in chain order (x0, x1, y0, y1)."""
    return int.from_bytes(keccak256(encode_g1(msg_point) + encode_g1(signature) + encode_g1(pk_g1)
                                    + encode_g2(pk_g2, "chain")), "big") % R


def _gamma_check(msg_point, signature, pk_g1, pk_g2, gamma, backend):
    b = backend or get_backend()
    lhs = g1_add(signature, b.g1_mul(pk_g1, gamma))
    rhs = g1_add(msg_point, b.g1_mul(G1_GEN, gamma))
    # e(sig + g*pk1, -G2) * e(H + g*G1, pk2) == 1, written with the negation on G1
    return b.pairing_check([(g1_neg(lhs), G2_GEN), (rhs, pk_g2)])


def verify_registration(msg_point: G1Point, signature: G1Point, pk_g1: G1Point, pk_g2: G2Point,
                        backend: Backend | None = None) -> bool:
    """Signer.ValidateSignature of x/dasigners: one pairing check that proves both the signature on
    `msg_point` and the pkG1/pkG2 match, combined with the gamma above."""
    return _gamma_check(msg_point, signature, pk_g1, pk_g2,
                        registration_gamma(msg_point, signature, pk_g1, pk_g2), backend)


def submission_gamma(msg_point: G1Point, signature: G1Point, agg_pk_g1: Optional[G1Point],
                     agg_pk_g2: G2Point) -> int:
    """DAEntrance (SubmissionLib.validateSignature) gamma: keccak256 of the words sig.X, sig.Y,
    aggPkG1.X, aggPkG1.Y, aggPkG2.X[0], X[1], Y[0], Y[1] (EVM order), hash.X, hash.Y, mod r."""
    x, y = g2_to_words(agg_pk_g2, "evm")
    words = list(signature) + list(agg_pk_g1 or (0, 0)) + x + y + list(msg_point)
    return int.from_bytes(keccak256(b"".join(w.to_bytes(32, "big") for w in words)), "big") % R


def verify_submission(data_root: bytes, epoch: int, quorum_id: int, commitment: G1Point,
                      agg_pk_g1: Optional[G1Point], agg_pk_g2: G2Point, signature: G1Point,
                      backend: Backend | None = None) -> bool:
    """The signature check DAEntrance.submitVerifiedCommitRoots runs on a CommitRootSubmission
    (`agg_pk_g1` from DASigners.getAggPkG1 for the bitmap; threshold checked separately)."""
    h = commit_root_hash(data_root, epoch, quorum_id, commitment)
    return _gamma_check(h, signature, agg_pk_g1, agg_pk_g2,
                        submission_gamma(h, signature, agg_pk_g1, agg_pk_g2), backend)


@dataclass(frozen=True)
class QuorumAggregate:
    """Result of DASigners.getAggPkG1 for one bitmap: the distinct signers it adds (in row order of
    their first set bit), their summed pkG1, the quorum's row count and the rows counted as hit."""

    signers: tuple[bytes, ...]
    agg_pk_g1: Optional[G1Point]
    total: int
    hit: int


def aggregate_quorum(rows: Sequence[bytes], bitmap: bytes,
                     pk_g1: Mapping[bytes, G1Point] | None = None) -> QuorumAggregate:
    """Replays x/dasigners AggregatePubkeyG1. `rows` is getQuorum(epoch, quorumId) (one address per
    encoded row, repeats allowed); bit i of the bitmap is ``bitmap[i // 8] >> (i % 8) & 1``. A row whose
    signer was already added counts as hit whatever its bit; otherwise a set bit adds the signer.
    The bitmap must be exactly ceil(len(rows) / 8) bytes."""
    bitmap = bytes(bitmap)
    if len(bitmap) != (len(rows) + 7) // 8:
        raise DaError(f"bitmap has {len(bitmap)} bytes for {len(rows)} rows", "quorum_bitmap")
    added: list[bytes] = []
    seen: set[bytes] = set()
    hit = 0
    for i, signer in enumerate(rows):
        if signer in seen:
            hit += 1
            continue
        if not bitmap[i // 8] >> (i % 8) & 1:
            continue
        hit += 1
        seen.add(signer)
        added.append(signer)
    agg = None
    if pk_g1 is not None:
        try:
            agg = g1_sum(pk_g1[s] for s in added)
        except KeyError as exc:
            raise DaError("signer not found", f"pk_g1[{exc.args[0]!r}]") from None
    return QuorumAggregate(tuple(added), agg, len(rows), hit)


def bitmap_for_rows(rows: Sequence[bytes], signed: Iterable[bytes]) -> bytes:
    """The bitmap a disperser builds: every row of every signer in `signed` set, ceil(n/8) bytes."""
    signed = set(signed)
    out = bytearray((len(rows) + 7) // 8)
    for i, signer in enumerate(rows):
        if signer in signed:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def meets_threshold(total: int, hit: int) -> bool:
    """DAEntrance's quorum rule: SLICE_NUMERATOR * total <= hit * SLICE_DENOMINATOR, i.e. 2/3."""
    return 2 * total <= 3 * hit
