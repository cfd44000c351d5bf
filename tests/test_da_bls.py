"""Known-answer and rejection tests for alignment_node.da.bls (vectors: tests/vectors/da-bls.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from alignment_node.da import DaError, bls

V = json.loads((Path(__file__).parent / "vectors" / "da-bls.json").read_text())
BACKENDS = bls.available_backends()
FAST = bls.get_backend()  # mclbn256 when it loads, else py_ecc
PYECC = bls.get_backend("py_ecc")
# py_ecc needs ~0.5 s per pairing check: without mcl, run the per-vector loops on fewer vectors
HEAVY = FAST.name != "py_ecc"
SIG_VECTORS = V["independent_signatures"] if HEAVY else V["independent_signatures"][2:3]
REG_VECTORS = V["independent_registration"] if HEAVY else V["independent_registration"][:1]
EVM_CASES = V["evm_pairing"]["cases"] if HEAVY else V["evm_pairing"]["cases"][:2]


def g1(h: str):
    return bls.decode_g1(bytes.fromhex(h))


def g2(h: str, order: str = "chain"):
    return bls.decode_g2(bytes.fromhex(h), order)


def ints(pair):
    return tuple(int(v) for v in pair)


def keys():
    return {int(k["sk"]): (g1(k["pk_g1"]), g2(k["pk_g2_chain"])) for k in V["independent_keys"]}


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------- 0G's own constants

@pytest.mark.parametrize("vec", V["zerog"], ids=lambda v: v["kind"])
def test_zerog_vectors(vec):
    kind = vec["kind"]
    if kind == "commit_root_hash":
        got = bls.commit_root_hash(bytes.fromhex(vec["data_root"]), vec["epoch"], vec["quorum_id"],
                                   ints(vec["commitment"]))
        assert got == ints(vec["hash_g1"])
    elif kind == "commit_root_digest":
        root = hashlib.sha256(vec["data_root_preimage_sha256"].encode()).digest()
        x, y = ints(vec["commitment"])
        # the digest is defined for any words; (1, 1) is off the curve, so hash the words directly
        with pytest.raises(DaError):
            bls.commit_root_digest(root, vec["epoch"], vec["quorum_id"], (x, y))
        words = root + b"".join(v.to_bytes(32, "big") for v in (vec["epoch"], vec["quorum_id"], x, y))
        assert bls.keccak256(words).hex() == vec["digest"]
    elif kind == "pubkey_registration_hash":
        assert bls.pubkey_registration_hash(vec["address"], vec["chain_id"]) == ints(vec["hash_g1"])
        assert bls.pubkey_registration_hash("0x" + vec["address"].upper(), vec["chain_id"]) == ints(vec["hash_g1"])
        assert bls.pubkey_registration_hash(vec["address"], vec["chain_id"] + 1) != ints(vec["hash_g1"])
    elif kind == "epoch_registration_hash":
        assert bls.epoch_registration_hash(vec["address"], vec["epoch"], vec["chain_id"]) == ints(vec["hash_g1"])
        assert bls.epoch_registration_hash(vec["address"], vec["epoch"] + 1, vec["chain_id"]) != ints(vec["hash_g1"])
    else:
        pytest.fail(kind)


def test_commit_root_digest_is_packed_words():
    # same digest from the function and from hand-packed words; changing any field changes it
    root, c = bytes(range(32)), bls.G1_GEN
    d = bls.commit_root_digest(root, 3, 1, c)
    assert d == bls.keccak256(root + b"".join(v.to_bytes(32, "big") for v in (3, 1, 1, 2)))
    assert len({d, bls.commit_root_digest(root, 4, 1, c), bls.commit_root_digest(root, 3, 2, c),
                bls.commit_root_digest(flip(root, 0), 3, 1, c),
                bls.commit_root_digest(root, 3, 1, bls.g1_neg(c))}) == 5


def test_zerog_sk1_signature_is_hash_and_verifies():
    vec = V["zerog"][0]
    h = ints(vec["hash_g1"])
    sig = bls.sign(1, h)
    assert sig == h
    assert bls.verify_signature(sig, h, bls.G2_GEN)
    assert not bls.verify_signature(sig, bls.pubkey_registration_hash(bytes(20), 1), bls.G2_GEN)


# ---------------------------------------------------------------- hash to G1

def test_hash_to_g1_try_and_increment():
    # find a digest whose x has no square root: the result must be the next x that has one
    for i in range(1, 100):
        x = i
        if pow((x ** 3 + 3) % bls.P, (bls.P - 1) // 2, bls.P) != 1:
            break
    hx, hy = bls.hash_to_g1(x.to_bytes(32, "big"))
    assert hx > x and bls.g1_on_curve((hx, hy))
    for k in range(x, hx):
        assert pow((k ** 3 + 3) % bls.P, (bls.P - 1) // 2, bls.P) != 1
    # digests at or above p are reduced mod p first (BN254.sol: uint(_x) % FP_MODULUS)
    assert bls.hash_to_g1((bls.P + 5).to_bytes(32, "big")) == bls.hash_to_g1((5).to_bytes(32, "big"))
    # y is (x^3+3)^((p+1)/4), not its negation
    x0, y0 = bls.hash_to_g1(bytes(31) + b"\x01")
    assert (x0, y0) == (1, pow(4, (bls.P + 1) // 4, bls.P))
    with pytest.raises(DaError):
        bls.hash_to_g1(b"short")


# ---------------------------------------------------------------- keys and signatures

def test_keys_match_independent_vectors():
    for k in V["independent_keys"]:
        pk1, pk2 = bls.keypair(int(k["sk"]))
        assert bls.encode_g1(pk1).hex() == k["pk_g1"]
        assert bls.encode_g2(pk2, "chain").hex() == k["pk_g2_chain"]
        assert bls.encode_g2(pk2, "evm").hex() == k["pk_g2_evm"]
        assert bls.verify_pk_pair(pk1, pk2)


@pytest.mark.parametrize("vec", SIG_VECTORS, ids=lambda v: f"{v['sk'][:6]}-q{v['quorum_id']}")
def test_signature_vectors(vec):
    pk1, pk2 = keys()[int(vec["sk"])]
    root, c = bytes.fromhex(vec["data_root"]), g1(vec["commitment"])
    h = bls.commit_root_hash(root, vec["epoch"], vec["quorum_id"], c)
    assert bls.commit_root_digest(root, vec["epoch"], vec["quorum_id"], c).hex() == vec["digest"]
    assert bls.encode_g1(h).hex() == vec["hash_g1"]
    sig = g1(vec["signature"])
    assert bls.sign(int(vec["sk"]), h) == sig
    assert bls.decode_g1_ark(bytes.fromhex(vec["signature_ark"])) == sig
    assert bls.encode_g1_ark(sig).hex() == vec["signature_ark"]
    assert bool(bytes.fromhex(vec["signature_ark"])[63] & 0x80) == vec["y_negative_flag"]
    assert bls.verify_signature(sig, h, pk2)
    # wrong message: other quorum / epoch / root
    assert not bls.verify_signature(sig, bls.commit_root_hash(root, vec["epoch"], vec["quorum_id"] + 1, c), pk2)
    assert not bls.verify_signature(sig, bls.commit_root_hash(root, vec["epoch"] + 1, vec["quorum_id"], c), pk2)
    assert not bls.verify_signature(sig, bls.commit_root_hash(flip(root, 77), vec["epoch"], vec["quorum_id"], c), pk2)
    # wrong key
    other = next(p2 for sk, (_, p2) in keys().items() if sk != int(vec["sk"]))
    assert not bls.verify_signature(sig, h, other)
    # negated signature
    assert not bls.verify_signature(bls.g1_neg(sig), h, pk2)


def test_flipped_bits_in_signature_are_rejected():
    vec = V["independent_signatures"][2]
    _, pk2 = keys()[int(vec["sk"])]
    h = g1(vec["hash_g1"])
    raw = bytes.fromhex(vec["signature"])
    for bit in (0, 7, 100, 255, 256, 300, 511) if HEAVY else (0, 511):
        try:
            sig = bls.decode_g1(flip(raw, bit))
        except DaError:
            continue  # almost always: off the curve
        assert not bls.verify_signature(sig, h, pk2)


def test_py_ecc_and_fast_backend_agree():
    """py_ecc (pure Python) re-checks what the fast backend decided; independent of mcl."""
    vec = V["independent_signatures"][1]
    _, pk2 = keys()[int(vec["sk"])]
    h, sig = g1(vec["hash_g1"]), g1(vec["signature"])
    assert bls.verify_signature(sig, h, pk2, PYECC) and bls.verify_signature(sig, h, pk2, FAST)
    bad = bls.g1_add(sig, bls.G1_GEN)
    assert not bls.verify_signature(bad, h, pk2, PYECC) and not bls.verify_signature(bad, h, pk2, FAST)
    assert PYECC.g1_mul(h, 987654321) == FAST.g1_mul(h, 987654321)
    assert PYECC.g2_mul(pk2, 12345) == FAST.g2_mul(pk2, 12345)


def test_pk_pair_consistency():
    ks = keys()
    (a1, a2), (b1, b2) = ks[1], ks[5]
    assert bls.verify_pk_pair(a1, a2) and bls.verify_pk_pair(b1, b2)
    assert not bls.verify_pk_pair(a1, b2)
    assert not bls.verify_pk_pair(b1, a2)


# ---------------------------------------------------------------- registration (x/dasigners)

def test_registration_vectors():
    ks = keys()
    for vec in REG_VECTORS:
        pk1, pk2 = ks[int(vec["sk"])]
        if "epoch" in vec:
            h = bls.epoch_registration_hash(vec["address"], vec["epoch"], vec["chain_id"])
            wrong = bls.epoch_registration_hash(vec["address"], vec["epoch"] + 1, vec["chain_id"])
        else:
            h = bls.pubkey_registration_hash(vec["address"], vec["chain_id"])
            wrong = bls.pubkey_registration_hash(vec["address"], vec["chain_id"] + 1)
        sig = g1(vec["signature"])
        assert bls.sign(int(vec["sk"]), h) == sig
        if "gamma" in vec:
            assert bls.registration_gamma(h, sig, pk1, pk2) == int(vec["gamma"])
        assert bls.verify_registration(h, sig, pk1, pk2)
        assert not bls.verify_registration(wrong, sig, pk1, pk2)
        # a pkG1 that does not match pkG2 fails the combined check even with a valid signature
        other1 = next(p1 for sk, (p1, _) in ks.items() if sk != int(vec["sk"]))
        assert not bls.verify_registration(h, sig, other1, pk2)


# ---------------------------------------------------------------- aggregation (getAggPkG1 / DAEntrance)

def _agg_setup():
    a = V["independent_aggregate"]
    addr = {k: bytes.fromhex(v) for k, v in a["signer_address"].items()}
    sk = {k: int(v) for k, v in a["signer_sk"].items()}
    ks = keys()
    pk1 = {addr[k]: ks[sk[k]][0] for k in addr}
    pk2 = {addr[k]: ks[sk[k]][1] for k in addr}
    rows = [addr[r] for r in a["rows"]]
    return a, addr, sk, rows, pk1, pk2


def test_aggregate_vector():
    a, addr, sk, rows, pk1, pk2 = _agg_setup()
    bitmap = bytes.fromhex(a["quorum_bitmap"])
    assert bls.bitmap_for_rows(rows, [addr[s] for s in a["signed"]]) == bitmap
    agg = bls.aggregate_quorum(rows, bitmap, pk1)
    assert (agg.total, agg.hit) == (a["total"], a["hit"])
    assert bls.encode_g1(agg.agg_pk_g1).hex() == a["agg_pk_g1"]
    assert set(agg.signers) == {addr[s] for s in a["signed"]}
    assert bls.meets_threshold(agg.total, agg.hit)
    agg_pk2 = g2(a["agg_pk_g2_evm"], "evm")
    assert agg_pk2 == bls.g2_sum(pk2[addr[s]] for s in a["signed"])
    sig = g1(a["agg_signature"])
    root, c = bytes.fromhex(a["data_root"]), g1(a["commitment"])
    h = bls.commit_root_hash(root, a["epoch"], a["quorum_id"], c)
    assert bls.submission_gamma(h, sig, agg.agg_pk_g1, agg_pk2) == int(a["gamma"])
    assert bls.verify_submission(root, a["epoch"], a["quorum_id"], c, agg.agg_pk_g1, agg_pk2, sig)
    assert bls.verify_signature(sig, h, agg_pk2) and bls.verify_pk_pair(agg.agg_pk_g1, agg_pk2)
    # a signer left out of the signature, the keys or the bitmap breaks the check
    part_sig = bls.g1_add(sig, bls.g1_neg(bls.sign(sk["c"], h)))
    assert not bls.verify_submission(root, a["epoch"], a["quorum_id"], c, agg.agg_pk_g1, agg_pk2, part_sig)
    fewer = bls.aggregate_quorum(rows, bls.bitmap_for_rows(rows, [addr["a"], addr["b"]]), pk1)
    assert not bls.verify_submission(root, a["epoch"], a["quorum_id"], c, fewer.agg_pk_g1, agg_pk2, sig)
    assert not bls.verify_submission(root, a["epoch"], a["quorum_id"] + 1, c, agg.agg_pk_g1, agg_pk2, sig)
    # aggPkG2 in chain order instead of EVM order is a different (invalid) point
    with pytest.raises(DaError):
        g2(a["agg_pk_g2_evm"], "chain")


def test_aggregate_bitmap_rules():
    a, addr, sk, rows, pk1, _ = _agg_setup()
    odd = bls.aggregate_quorum(rows, bytes.fromhex(a["odd_bitmap"]["bitmap"]))
    assert (odd.total, odd.hit) == (a["odd_bitmap"]["total"], a["odd_bitmap"]["hit"])
    assert [s.hex() for s in odd.signers] == a["odd_bitmap"]["signers"]
    none = bls.aggregate_quorum(rows, bytes(2), pk1)
    assert (none.hit, none.agg_pk_g1, none.signers) == (0, None, ())
    assert not bls.meets_threshold(12, 7) and bls.meets_threshold(12, 8)
    for bad in (b"", bytes(1), bytes(3)):
        with pytest.raises(DaError):
            bls.aggregate_quorum(rows, bad)
    with pytest.raises(DaError):
        bls.aggregate_quorum(rows, b"\xff\x0f", {})


# ---------------------------------------------------------------- encodings

def test_g2_coordinate_orders():
    _, pk2 = keys()[987654321987654321]
    chain, evm = bls.encode_g2(pk2, "chain"), bls.encode_g2(pk2, "evm")
    assert chain != evm
    assert bls.decode_g2(chain, "chain") == pk2 == bls.decode_g2(evm, "evm")
    # swapped order: not on the twist, rejected
    with pytest.raises(DaError):
        bls.decode_g2(chain, "evm")
    with pytest.raises(DaError):
        bls.decode_g2(evm, "chain")
    # the generator words BN254.sol hard-codes for G2 are EVM order
    x, y = bls.g2_to_words(bls.G2_GEN, "evm")
    assert x[0] == 11559732032986387107991004021392285783925812861821192530917403151452391805634
    assert y[1] == 8495653923123431417604973247489272438418190587263600148770280649306958101930


def test_point_decoding_rejections():
    good = bytes.fromhex(V["independent_keys"][1]["pk_g1"])
    assert bls.decode_g1(good)
    for bad in (good[:63], good + b"\x00", b"", "00" * 64, None):
        with pytest.raises(DaError):
            bls.decode_g1(bad)
    # not on the curve
    with pytest.raises(DaError):
        bls.decode_g1((1).to_bytes(32, "big") + (3).to_bytes(32, "big"))
    # coordinate >= p (x + p would alias the same point mod p)
    x, y = bls.decode_g1(good)
    with pytest.raises(DaError):
        bls.decode_g1((x + bls.P).to_bytes(32, "big") + y.to_bytes(32, "big"))
    # infinity only when asked for
    with pytest.raises(DaError):
        bls.decode_g1(bytes(64))
    assert bls.decode_g1(bytes(64), allow_infinity=True) is None
    # G2: wrong length, off the twist, not in the subgroup
    pk2 = bytes.fromhex(V["independent_keys"][1]["pk_g2_chain"])
    with pytest.raises(DaError):
        bls.decode_g2(pk2[:127])
    with pytest.raises(DaError):
        bls.decode_g2(flip(pk2, 5))
    with pytest.raises(DaError):
        bls.decode_g2(bytes(128))
    assert bls.decode_g2(bytes(128), allow_infinity=True) is None
    twist_point = _twist_point_outside_subgroup()
    assert bls.g2_on_curve(twist_point)
    for b in BACKENDS:
        with pytest.raises(DaError):
            bls.check_g2(twist_point, backend=bls.get_backend(b))


def _twist_point_outside_subgroup():
    # smallest x = k (real) with x^3 + b2 a square in Fp2; the twist's cofactor makes it almost surely
    # outside the order-r subgroup
    for k in range(1, 200):
        x = (k, 0)
        rhs = bls._f2_mul(bls._f2_mul(x, x), x)
        rhs = ((rhs[0] + bls._B2[0]) % bls.P, (rhs[1] + bls._B2[1]) % bls.P)
        y = _f2_sqrt(rhs)
        if y is not None:
            return (x, y)
    raise AssertionError("no twist point found")


def _f2_sqrt(a):
    # p = 3 mod 4: Fp2 square root by the standard complex method
    p = bls.P
    a0, a1 = a
    norm = (a0 * a0 + a1 * a1) % p
    n = pow(norm, (p + 1) // 4, p)
    if n * n % p != norm:
        return None
    for s in (n, p - n):
        t = (a0 + s) * pow(2, -1, p) % p
        x0 = pow(t, (p + 1) // 4, p)
        if x0 * x0 % p == t and x0:
            x1 = a1 * pow(2 * x0, -1, p) % p
            if bls._f2_mul((x0, x1), (x0, x1)) == (a0 % p, a1 % p):
                return (x0, x1)
    return None


def test_arkworks_g1_codec():
    vec = V["independent_signatures"][0]
    raw = bytes.fromhex(vec["signature_ark"])
    sig = g1(vec["signature"])
    # the sign flag is ignored on decode (as arkworks and 0g-da-client ignore it)
    assert bls.decode_g1_ark(flip(raw, 511)) == sig
    with pytest.raises(DaError):  # both flag bits
        bls.decode_g1_ark(raw[:63] + bytes([raw[63] | 0xC0]))
    with pytest.raises(DaError):  # infinity flag
        bls.decode_g1_ark(raw[:63] + bytes([(raw[63] & 0x3F) | 0x40]))
    assert bls.decode_g1_ark(bls.encode_g1_ark(None), allow_infinity=True) is None
    with pytest.raises(DaError):  # big-endian bytes are not arkworks bytes
        bls.decode_g1_ark(bls.encode_g1(sig))
    with pytest.raises(DaError):
        bls.decode_g1_ark(raw[:-1])


# ---------------------------------------------------------------- the EVM pairing precompile (EIP-197)

def _evm_pairs(hex_input: str):
    data = bytes.fromhex(hex_input)
    assert len(data) % 192 == 0
    return [(bls.decode_g1(data[i:i + 64]), bls.decode_g2(data[i + 64:i + 192], "evm"))
            for i in range(0, len(data), 192)]


@pytest.mark.parametrize("case", EVM_CASES, ids=lambda c: c["Name"])
def test_evm_pairing_precompile_vectors(case):
    pairs = _evm_pairs(case["Input"])
    assert FAST.pairing_check(pairs) == bool(case["Expected"])
    if HEAVY and case["Name"] in ("jeff1", "jeff6"):  # py_ecc too (about 0.5 s each)
        assert PYECC.pairing_check(pairs) == bool(case["Expected"])
    # read in chain (real-first) order the same bytes are not points
    data = bytes.fromhex(case["Input"])
    with pytest.raises(DaError):
        bls.decode_g2(data[64:192], "chain")


def test_backend_names():
    assert "py_ecc" in BACKENDS
    assert FAST.name in BACKENDS
    with pytest.raises(ValueError):
        bls.get_backend("nope")
