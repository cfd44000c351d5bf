"""Tests for alignment_node.da.wire: strict parsing of the DA signer gRPC replies, and a loopback
round trip through the generated stubs."""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from alignment_node.da import DaError, bls, wire
from alignment_node.da.proto import signer_pb2 as pb
from alignment_node.da.proto import signer_pb2_grpc as pb_grpc

V = json.loads((Path(__file__).parent / "vectors" / "da-bls.json").read_text())
SIGS = V["independent_signatures"]
ADDR = "7c2c195cd6d34b8f845992d380aadb2730bb9c6f"


def _sig_reply(raws):
    return pb.BatchSignReply(signatures=list(raws)).SerializeToString()


def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _slice(row, **kw):
    c = bls.g1_mul(bls.G1_GEN, 7)
    return wire.build_encoded_slice(row, commitment=c, row=[1, 2, bls.R - 1], proof=[(c, bls.G1_GEN)] * 2,
                                    high_commitment=bls.G1_GEN, merkle_proof=[b"\x11" * 32] * 3,
                                    leaf_index=row, leaf=b"\x22" * 32, **kw)


# ---------------------------------------------------------------- requests

def test_sign_request_encoding():
    c = bls.decode_g1(bytes.fromhex(SIGS[0]["commitment"]))
    raw = wire.build_batch_sign_request([wire.SignItem(3, 1, bytes(range(32)), c, [b"row0", b"row1"])])
    msg = pb.BatchSignRequest.FromString(raw)
    (req,) = msg.requests
    assert (req.epoch, req.quorum_id, req.storage_root, list(req.encoded_slice)) == (3, 1, bytes(range(32)), [b"row0", b"row1"])
    # little-endian x || y with no arkworks flag bits (0g-da-node reads it as (Fq, Fq))
    assert req.erasure_commitment == c[0].to_bytes(32, "little") + c[1].to_bytes(32, "little")
    assert wire.decode_commitment(req.erasure_commitment) == c
    with pytest.raises(DaError):  # a flag bit pushes y over p
        wire.decode_commitment(bytes.fromhex(SIGS[0]["commitment_ark"])[:63] + b"\xff")
    for bad in (wire.SignItem(-1, 0, bytes(32), c), wire.SignItem(0, 1 << 64, bytes(32), c),
                wire.SignItem(0, 0, bytes(31), c), wire.SignItem(0, 0, bytes(32), (1, 3))):
        with pytest.raises(DaError):
            wire.build_batch_sign_request([bad])


def test_retrieve_request_encoding():
    raw = wire.build_batch_retrieve_request([wire.RetrieveItem(3, 0, b"\x01" * 32, [5, 2, 5])])
    (req,) = pb.BatchRetrieveRequest.FromString(raw).requests
    assert list(req.row_indexes) == [5, 2, 5] and req.storage_root == b"\x01" * 32
    with pytest.raises(DaError):
        wire.build_batch_retrieve_request([wire.RetrieveItem(3, 0, b"\x01" * 32, [1 << 32])])
    with pytest.raises(DaError):
        wire.build_batch_retrieve_request([wire.RetrieveItem(3, 0, b"\x01" * 32, range(4000))])


# ---------------------------------------------------------------- BatchSign replies

def test_sign_reply_parses_and_verifies():
    raws = [bytes.fromhex(v["signature_ark"]) for v in SIGS]
    sigs = wire.parse_batch_sign_reply(_sig_reply(raws), len(raws))
    assert [bls.encode_g1(s).hex() for s in sigs] == [v["signature"] for v in SIGS]
    # the same from a decoded message object (what a grpc stub returns)
    assert wire.parse_batch_sign_reply(pb.BatchSignReply(signatures=raws), len(raws)) == sigs
    keys = {int(k["sk"]): bls.decode_g2(bytes.fromhex(k["pk_g2_chain"])) for k in V["independent_keys"]}
    pairs = list(zip(SIGS, sigs))
    for v, s in pairs if bls.get_backend().name != "py_ecc" else pairs[:1]:
        assert bls.verify_signature(s, bls.decode_g1(bytes.fromhex(v["hash_g1"])), keys[int(v["sk"])])


def test_sign_reply_rejections():
    good = bytes.fromhex(SIGS[0]["signature_ark"])
    cases = {
        "count": (_sig_reply([good, good]), 1),
        "missing": (_sig_reply([]), 1),
        "short": (_sig_reply([good[:63]]), 1),
        "long": (_sig_reply([good + b"\x00"]), 1),
        "big-endian": (_sig_reply([bytes.fromhex(SIGS[0]["signature"])]), 1),
        "off-curve": (_sig_reply([good[:5] + bytes([good[5] ^ 1]) + good[6:]]), 1),
        "infinity": (_sig_reply([bls.encode_g1_ark(None)]), 1),
        "both-flags": (_sig_reply([good[:63] + bytes([good[63] | 0xC0])]), 1),
        "x>=p": (_sig_reply([(bls.P + 1).to_bytes(32, "little") + good[32:]]), 1),
        "garbage": (b"\xff\xff\xff\xff", 1),
        "truncated": (_sig_reply([good])[:-3], 1),
        "unknown-field": (_sig_reply([good]) + b"\x10\x01", 1),
        "wrong-type": ("not bytes", 1),
        "wrong-message": (pb.StatusReply(status_code=200), 1),
        "oversized": (b"\x0a\x40" + good, 1, wire.WireLimits(max_message_bytes=10)),
    }
    for name, (data, n, *lim) in cases.items():
        with pytest.raises(DaError):
            wire.parse_batch_sign_reply(data, n, *lim)
            pytest.fail(name)


# ---------------------------------------------------------------- BatchRetrieve replies

def test_retrieve_reply_parses():
    reqs = [wire.RetrieveItem(3, 0, b"\x01" * 32, [9, 4, 9]), wire.RetrieveItem(3, 1, b"\x02" * 32, [])]
    reply = pb.BatchRetrieveReply(encoded_slice=[pb.Slices(encoded_slice=[_slice(4), _slice(9)]), pb.Slices()])
    out = wire.parse_batch_retrieve_reply(reply.SerializeToString(), reqs)
    assert [[s.index for s in group] for group in out] == [[4, 9], []]
    s = out[0][1]
    assert (s.row_len, s.amt_proof_len, s.merkle_proof_len, s.leaf_index, s.leaf) == (3, 2, 3, 9, b"\x22" * 32)
    assert s.amt_commitment == bls.g1_mul(bls.G1_GEN, 7) and s.raw == _slice(9)


def test_retrieve_reply_rejections():
    reqs = [wire.RetrieveItem(3, 0, b"\x01" * 32, [4, 9])]
    good = _slice(4)

    def reply(*slices, extra=b""):
        return pb.BatchRetrieveReply(encoded_slice=[pb.Slices(encoded_slice=list(slices))]).SerializeToString() + extra

    bad_fr = wire.build_encoded_slice(4, row=[bls.R])
    bad_point = bytearray(good)
    bad_point[16 + 5] ^= 1  # inside amt.commitment x
    huge_len = good[:88] + (1 << 40).to_bytes(8, "little") + good[96:]
    inner = pb.Slices(encoded_slice=[good, _slice(9)]).SerializeToString() + b"\x10\x01"  # field 2: unknown
    nested_unknown = b"\x0a" + _varint(len(inner)) + inner
    cases = [
        reply(good),                                  # one slice missing
        reply(_slice(9), good),                       # wrong order
        reply(good, _slice(8)),                       # a row that was not asked for
        reply(good, _slice(9) + b"\x00"),             # trailing bytes
        reply(good, _slice(9)[:-1]),                  # truncated
        reply(bad_fr, _slice(9)),                     # field element >= r
        reply(bytes(bad_point), _slice(9)),           # point off the curve
        reply(huge_len, _slice(9)),                   # absurd vector length
        reply(good, _slice(9), extra=b"\x0a\x00"),    # a second (empty) Slices: count mismatch
        reply(good, _slice(9), extra=b"\x12\x00"),    # unknown top-level field 2
        pb.BatchRetrieveReply().SerializeToString(),  # no Slices at all
        b"\x0a\x05\x0a\x03abc",                       # slice too short to parse
        nested_unknown,                               # unknown field inside Slices
    ]
    assert len(pb.BatchRetrieveReply.FromString(nested_unknown).encoded_slice[0].encoded_slice) == 2
    for i, data in enumerate(cases):
        with pytest.raises(DaError):
            wire.parse_batch_retrieve_reply(data, reqs)
            pytest.fail(f"case {i}")
    with pytest.raises(DaError):
        wire.parse_batch_retrieve_reply(reply(good, _slice(9)), reqs, wire.WireLimits(max_slice_bytes=100))
    with pytest.raises(DaError):
        wire.parse_batch_retrieve_reply(reply(good, _slice(9)), reqs, wire.WireLimits(max_amt_proof=1))


# ---------------------------------------------------------------- GetStatus replies

def test_status_reply():
    s = wire.parse_status_reply(pb.StatusReply(status_code=200, entrance_contract=ADDR.upper()).SerializeToString())
    assert s == wire.StatusInfo(200, "0x" + ADDR)
    assert wire.parse_status_reply(pb.StatusReply(status_code=200, entrance_contract="0x" + ADDR)).entrance_contract == "0x" + ADDR
    for bad in ("", ADDR[:-1], ADDR + "00", "zz" + ADDR[2:], "x" * 10000):
        with pytest.raises(DaError):
            wire.parse_status_reply(pb.StatusReply(status_code=200, entrance_contract=bad).SerializeToString())
    with pytest.raises(DaError):  # invalid UTF-8 in the string field
        wire.parse_status_reply(b"\x12\x02\xff\xfe")


# ---------------------------------------------------------------- garbage never crashes

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=3))
def test_garbage_only_raises_da_error(data, n):
    reqs = [wire.RetrieveItem(0, 0, bytes(32), [i]) for i in range(n)]
    for fn in (lambda: wire.parse_batch_sign_reply(data, n), lambda: wire.parse_batch_retrieve_reply(data, reqs),
               lambda: wire.parse_status_reply(data), lambda: wire.parse_encoded_slice(data),
               lambda: bls.decode_g1_ark(data[:64]), lambda: bls.decode_g2(data[:128], "evm")):
        try:
            fn()
        except DaError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(_slice(4)) * 8 - 1))
def test_slice_bit_flips_never_crash(bit):
    raw = bytearray(_slice(4))
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        info = wire.parse_encoded_slice(bytes(raw))
    except DaError:
        return
    assert info.raw == bytes(raw)


# ---------------------------------------------------------------- loopback gRPC through the generated stubs

class _FakeSigner(pb_grpc.SignerServicer):
    def __init__(self, sk):
        self.sk = sk

    def BatchSign(self, request, context):
        sigs = []
        for r in request.requests:
            c = wire.decode_commitment(r.erasure_commitment)
            h = bls.commit_root_hash(r.storage_root, r.epoch, r.quorum_id, c)
            sigs.append(bls.encode_g1_ark(bls.sign(self.sk, h)))
        return pb.BatchSignReply(signatures=sigs)

    def BatchRetrieve(self, request, context):
        return pb.BatchRetrieveReply(encoded_slice=[
            pb.Slices(encoded_slice=[_slice(i) for i in sorted(set(r.row_indexes))]) for r in request.requests])

    def GetStatus(self, request, context):
        return pb.StatusReply(status_code=200, entrance_contract=ADDR)


def test_loopback_grpc_round_trip():
    grpc = pytest.importorskip("grpc")
    assert wire.METHOD_BATCH_SIGN == "/signer.Signer/BatchSign"
    sk = 987654321987654321
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_SignerServicer_to_server(_FakeSigner(sk), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.SignerStub(ch)
            c = bls.g1_mul(bls.G1_GEN, 7)
            items = [wire.SignItem(3, q, bytes(range(32)), c) for q in (0, 1)]
            req = pb.BatchSignRequest.FromString(wire.build_batch_sign_request(items))
            sigs = wire.parse_batch_sign_reply(stub.BatchSign(req, timeout=5), 2)
            _, pk2 = bls.keypair(sk)
            for it, s in zip(items, sigs):
                assert bls.verify_signature(s, bls.commit_root_hash(it.storage_root, it.epoch, it.quorum_id, c), pk2)
            assert [bls.encode_g1(s).hex() for s in sigs] == [v["signature"] for v in SIGS if int(v["sk"]) == sk]
            rreq = [wire.RetrieveItem(3, 0, bytes(32), [7, 1])]
            got = wire.parse_batch_retrieve_reply(
                stub.BatchRetrieve(pb.BatchRetrieveRequest.FromString(wire.build_batch_retrieve_request(rreq)), timeout=5), rreq)
            assert [s.index for s in got[0]] == [1, 7]
            assert wire.parse_status_reply(stub.GetStatus(pb.Empty(), timeout=5)).status_code == 200
    finally:
        server.stop(0)
