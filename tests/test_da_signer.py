"""Tests for the devnet DA row format (alignment_node.da.rows) and the reference DA signer
(alignment_node.devnet.dasigner) over real gRPC on loopback, one test per fault mode."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import grpc
import pytest

from alignment_node.chain.keccak import keccak256
from alignment_node.da import DaError, bls, rows, wire
from alignment_node.da.proto import signer_pb2 as pb
from alignment_node.devnet.dasigner import (MODES, DaSignerProcess, DaSignerServer, read_secret_key,
                                            sign_request_for)

SK = 0x1D2C3B4A59687766
ENTRANCE = "0x" + "7c2c195cd6d34b8f845992d380aadb2730bb9c6f"
MINE = [0, 2, 5, 11]
BLOB = rows.make_blob(b"blob-a")
BLOB_B = rows.make_blob(b"blob-b", rows=5, row_bytes=100)


@pytest.fixture(scope="module")
def pk_g2():
    return bls.keypair(SK)[1]


def _server(mode="honest", **kw):
    s = DaSignerServer(SK, mode, ENTRANCE, **kw)
    s.assign(1, 0, MINE)
    s.assign(1, 1, range(5))
    s.start()
    return s


@pytest.fixture
def signer():
    servers = []

    def make(mode="honest", **kw):
        servers.append(_server(mode, **kw))
        return servers[-1]
    yield make
    for s in servers:
        s.stop(0)


def _call(server, method, raw, timeout=5.0):
    """A raw unary call (bytes in, bytes out), so the strict parsers of wire.py see the reply bytes."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        return ch.unary_unary(method)(raw, timeout=timeout)


def _sign(server, items, timeout=5.0):
    return _call(server, wire.METHOD_BATCH_SIGN, wire.build_batch_sign_request(items), timeout)


def _retrieve_raw(server, items):
    return _call(server, wire.METHOD_BATCH_RETRIEVE, wire.build_batch_retrieve_request(items))


def _retrieve(server, items):
    """The slices of each request as raw bytes (the devnet slice format is not 0G's EncodedSlice,
    so wire.parse_batch_retrieve_reply is not the parser for their content)."""
    msg = pb.BatchRetrieveReply.FromString(_retrieve_raw(server, items))
    return [list(s.encoded_slice) for s in msg.encoded_slice]


def _code(exc_info):
    return exc_info.value.code()


def _hash(blob, epoch, quorum):
    return bls.commit_root_hash(blob.storage_root, epoch, quorum, blob.commitment)


# ---------------------------------------------------------------- rows.py

def test_blob_structure():
    assert rows.make_blob(b"blob-a") == BLOB  # deterministic
    assert len(BLOB.rows) == rows.DEFAULT_ROWS and BLOB.row_bytes == rows.DEFAULT_ROW_BYTES
    leaves = [keccak256(r) for r in BLOB.rows]
    level = leaves
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    assert BLOB.storage_root == level[0] == rows.storage_root(BLOB.rows)
    assert BLOB.commitment == bls.hash_to_g1(keccak256(b"devnet-erasure-commitment" + BLOB.storage_root))
    assert bls.check_g1(BLOB.commitment) and wire.decode_commitment(wire.encode_commitment(BLOB.commitment)) == BLOB.commitment
    s3 = BLOB.slices[3]
    assert s3[:8] == (3).to_bytes(8, "little") and s3[8:264] == BLOB.rows[3]
    assert s3[264:272] == (4).to_bytes(8, "little") and len(s3) == 8 + 256 + 8 + 4 * 32
    assert s3[272:304] == leaves[2]  # first sibling: the neighbouring leaf
    index, row, proof = rows.parse_slice(s3)
    assert (index, row, len(proof)) == (3, BLOB.rows[3], 4)
    assert rows.parse_slice(s3, row_bytes=256) == (index, row, proof)
    for i, s in enumerate(BLOB.slices):
        assert rows.verify_slice(s, i, BLOB.storage_root, BLOB.commitment) is None


def test_padding_and_single_row():
    assert len(BLOB_B.slices) == 5
    leaves = [keccak256(r) for r in BLOB_B.rows] + [bytes(32)] * 3
    assert rows.merkle_levels(leaves[:5])[0] == leaves
    for i, s in enumerate(BLOB_B.slices):
        assert rows.verify_slice(s, i, BLOB_B.storage_root, BLOB_B.commitment) is None
        assert len(rows.parse_slice(s)[2]) == 3
    one = rows.make_blob(b"one", rows=1, row_bytes=32)
    assert one.storage_root == keccak256(one.rows[0])
    assert rows.verify_slice(one.slices[0], 0, one.storage_root, one.commitment) is None
    # a padding leaf is not a row: row 5 of a 5-row blob has no slice that verifies
    zero_proof = rows.merkle_proof(rows.merkle_levels(leaves[:5]), 5)
    assert rows.verify_slice(rows.encode_slice(5, bytes(100), zero_proof), 5, BLOB_B.storage_root,
                             BLOB_B.commitment) == "not in the data root"


def test_tampered_slices_fail():
    root, c, s = BLOB.storage_root, BLOB.commitment, BLOB.slices[6]
    index, row, proof = rows.parse_slice(s)
    bad_row = rows.encode_slice(6, bytes([row[0] ^ 1]) + row[1:], proof)
    assert rows.verify_slice(bad_row, 6, root, c) == "not in the data root"
    assert rows.verify_slice(s, 7, root, c) == "wrong index"
    relabelled = rows.encode_slice(7, row, proof)  # row 6's data and proof labelled row 7
    assert rows.verify_slice(relabelled, 7, root, c) == "not in the data root"
    bad_proof = rows.encode_slice(6, row, [proof[0], bytes(32)] + proof[2:])
    assert rows.verify_slice(bad_proof, 6, root, c) == "not in the data root"
    short_proof = rows.encode_slice(6, row, proof[:2])  # 2 levels hold rows 0..3 only
    assert rows.verify_slice(short_proof, 6, root, c) == "index beyond the tree"
    assert rows.verify_slice(s, 6, BLOB_B.storage_root, BLOB_B.commitment) == "not in the data root"
    assert rows.verify_slice(s, 6, root, BLOB_B.commitment) == "commitment does not match"
    assert rows.verify_slice(s, 6, root, bls.G1_GEN) == "commitment does not match"
    assert rows.verify_slice(s[:-1], 6, root, c).startswith("malformed slice")
    assert rows.verify_slice(s, 6, root[:31], c) == "storage root is not 32 bytes"


def test_parse_slice_bad_shapes():
    s = BLOB.slices[0]
    for bad in (b"", s[:16], s[:-1], s + b"\x00", s[:264] + (5).to_bytes(8, "little") + s[272:],
                s[:264] + (1 << 63).to_bytes(8, "little") + s[272:]):
        with pytest.raises(DaError):
            rows.parse_slice(bad)
    with pytest.raises(DaError):
        rows.parse_slice(s, row_bytes=255)
    with pytest.raises(DaError):
        rows.parse_slice("not bytes")
    with pytest.raises(DaError):
        rows.encode_slice(0, b"x", [b"short"])


# ---------------------------------------------------------------- honest signer

def test_honest_sign_and_retrieve(signer, pk_g2):
    s = signer()
    items = [sign_request_for(BLOB, 1, 0, MINE), sign_request_for(BLOB_B, 1, 1, range(5))]
    sigs = wire.parse_batch_sign_reply(_sign(s, items), 2)
    assert bls.verify_signature(sigs[0], _hash(BLOB, 1, 0), pk_g2)
    assert bls.verify_signature(sigs[1], _hash(BLOB_B, 1, 1), pk_g2)
    assert not bls.verify_signature(sigs[0], _hash(BLOB, 2, 0), pk_g2)
    assert sigs[0] == bls.sign(SK, _hash(BLOB, 1, 0))
    got = _retrieve(s, [wire.RetrieveItem(1, 0, BLOB.storage_root, [11, 0, 5, 5, 2]),
                        wire.RetrieveItem(1, 1, BLOB_B.storage_root, [4]), wire.RetrieveItem(1, 0, BLOB.storage_root, [])])
    assert got[0] == [BLOB.slices[i] for i in MINE] and got[1] == [BLOB_B.slices[4]] and got[2] == []
    for i, sl in zip(MINE, got[0]):
        assert rows.verify_slice(sl, i, BLOB.storage_root, BLOB.commitment) is None
    assert set(s.stored_rows()) == {(1, 0, BLOB.storage_root, i) for i in MINE} | {(1, 1, BLOB_B.storage_root, i) for i in range(5)}
    status = wire.parse_status_reply(_call(s, wire.METHOD_GET_STATUS, b""))
    assert status == wire.StatusInfo(200, ENTRANCE)
    raw_status = pb.StatusReply.FromString(_call(s, wire.METHOD_GET_STATUS, b""))
    assert raw_status.entrance_contract == ENTRANCE[2:]


def test_sign_validation(signer):
    s = signer()
    good = sign_request_for(BLOB, 1, 0, MINE)
    bad_requests = [
        sign_request_for(BLOB, 1, 0, MINE[:-1]),                      # a row missing
        sign_request_for(BLOB, 1, 0, [0, 5, 2, 11]),                  # wrong order
        sign_request_for(BLOB, 1, 0, [0, 2, 5, 12]),                  # not its row
        wire.SignItem(1, 0, BLOB.storage_root, BLOB_B.commitment, good.encoded_slices),  # another commitment
        wire.SignItem(1, 0, BLOB_B.storage_root, BLOB_B.commitment, good.encoded_slices),  # another root
        wire.SignItem(1, 0, BLOB.storage_root, BLOB.commitment,
                      list(good.encoded_slices[:3]) + [rows.encode_slice(11, bytes(256), rows.parse_slice(BLOB.slices[11])[2])]),
        wire.SignItem(7, 0, BLOB.storage_root, BLOB.commitment, [BLOB.slices[2], BLOB.slices[1]]),  # adopted, not ascending
    ]
    for item in bad_requests:
        with pytest.raises(grpc.RpcError) as e:
            _sign(s, [good, item])  # one bad request fails the whole call
        assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    # a storage root of 31 bytes and a commitment off the curve (wire.py refuses to build either)
    for req in (pb.SignRequest(epoch=1, quorum_id=0, storage_root=bytes(31),
                               erasure_commitment=wire.encode_commitment(BLOB.commitment)),
                pb.SignRequest(epoch=1, quorum_id=0, storage_root=BLOB.storage_root,
                               erasure_commitment=(1).to_bytes(32, "little") + (3).to_bytes(32, "little"))):
        with pytest.raises(grpc.RpcError) as e:
            _call(s, wire.METHOD_BATCH_SIGN, pb.BatchSignRequest(requests=[req]).SerializeToString())
        assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT
    assert s.stored_rows() == {}  # nothing of a failed call is kept
    with pytest.raises(grpc.RpcError) as e:  # so retrieving it is Internal
        _retrieve(s, [wire.RetrieveItem(1, 0, BLOB.storage_root, [0])])
    assert _code(e) == grpc.StatusCode.INTERNAL
    with pytest.raises(grpc.RpcError) as e:  # an unassigned row is InvalidArgument
        _retrieve(s, [wire.RetrieveItem(1, 0, BLOB.storage_root, [1])])
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_unassigned_pair_adopts_the_call_order(signer, pk_g2):
    s = signer()
    (sig,) = wire.parse_batch_sign_reply(_sign(s, [sign_request_for(BLOB, 9, 3, [1, 4, 8])]), 1)
    assert bls.verify_signature(sig, _hash(BLOB, 9, 3), pk_g2)
    assert s.assigned(9, 3) == (1, 4, 8)
    with pytest.raises(grpc.RpcError) as e:
        _sign(s, [sign_request_for(BLOB_B, 9, 3, [1, 4])])
    assert _code(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_resource_exhausted(signer):
    s = signer(delay=0.6, max_inflight=1)
    item = sign_request_for(BLOB, 1, 0, MINE)
    results = []

    def go():
        try:
            results.append(_sign(s, [item]))
        except grpc.RpcError as exc:
            results.append(exc.code())
    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.15)
    for t in threads:
        t.join()
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in results
    assert any(isinstance(r, bytes) for r in results)


# ---------------------------------------------------------------- fault modes

def test_offline_refuses():
    s = DaSignerServer(SK, "offline", ENTRANCE)
    port = s.start()
    assert port > 0
    with pytest.raises(grpc.RpcError) as e:
        _sign(s, [sign_request_for(BLOB, 1, 0, MINE)], timeout=2.0)
    assert _code(e) == grpc.StatusCode.UNAVAILABLE
    s.stop()


def test_never_signs(signer):
    s = signer("never-signs")
    with pytest.raises(grpc.RpcError) as e:
        _sign(s, [sign_request_for(BLOB, 1, 0, MINE)])
    assert _code(e) == grpc.StatusCode.INTERNAL
    hangs = signer("never-signs", hang_seconds=5.0)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        _sign(hangs, [sign_request_for(BLOB, 1, 0, MINE)], timeout=0.4)
    assert _code(e) == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 3
    assert s.stored_rows() == {} and hangs.stored_rows() == {}


@pytest.mark.parametrize("style", ["internal", "empty"])
def test_drops_rows(signer, pk_g2, style):
    s = signer("drops-rows", drop_style=style)
    (sig,) = wire.parse_batch_sign_reply(_sign(s, [sign_request_for(BLOB, 1, 0, MINE)]), 1)
    assert bls.verify_signature(sig, _hash(BLOB, 1, 0), pk_g2)  # it signs correctly ...
    req = [wire.RetrieveItem(1, 0, BLOB.storage_root, MINE)]
    if style == "internal":
        with pytest.raises(grpc.RpcError) as e:  # ... but keeps nothing
            _retrieve(s, req)
        assert _code(e) == grpc.StatusCode.INTERNAL
    else:
        assert _retrieve(s, req) == [[]]
        with pytest.raises(DaError, match="0 slices for 4 distinct rows"):
            wire.parse_batch_retrieve_reply(_retrieve_raw(s, req), req)


def test_corrupts_rows(signer):
    s = signer("corrupts-rows")
    _sign(s, [sign_request_for(BLOB, 1, 0, MINE)])
    (got,) = _retrieve(s, [wire.RetrieveItem(1, 0, BLOB.storage_root, MINE)])
    assert len(got) == 4
    for i, sl in zip(MINE, got):
        assert sl != BLOB.slices[i] and len(sl) == len(BLOB.slices[i])
        assert rows.verify_slice(sl, i, BLOB.storage_root, BLOB.commitment) == "not in the data root"


def test_prunes_early(signer):
    s = signer("prunes-early", prune_seconds=0.5)
    _sign(s, [sign_request_for(BLOB, 1, 0, MINE)])
    req = [wire.RetrieveItem(1, 0, BLOB.storage_root, MINE)]
    (got,) = _retrieve(s, req)
    assert [rows.verify_slice(sl, i, BLOB.storage_root, BLOB.commitment) for i, sl in zip(MINE, got)] == [None] * 4
    time.sleep(0.7)
    with pytest.raises(grpc.RpcError) as e:
        _retrieve(s, req)
    assert _code(e) == grpc.StatusCode.INTERNAL
    assert s.stored_rows() == {}


def test_invalid_signatures(signer, pk_g2):
    s = signer("invalid-signatures")
    items = [sign_request_for(BLOB, 1, 0, MINE), sign_request_for(BLOB_B, 1, 1, range(5))]
    sigs = wire.parse_batch_sign_reply(_sign(s, items), 2)  # well-formed points ...
    assert not bls.verify_signature(sigs[0], _hash(BLOB, 1, 0), pk_g2)  # ... that do not verify
    assert not bls.verify_signature(sigs[1], _hash(BLOB_B, 1, 1), pk_g2)
    assert bls.verify_signature(sigs[0], _hash(BLOB, 2, 0), pk_g2)  # another message
    assert bls.verify_signature(sigs[1], _hash(BLOB_B, 1, 1), bls.keypair(SK + 1)[1])  # another key


def test_garbage_rejected_by_strict_parsers(signer):
    s = signer("garbage")
    items = [sign_request_for(BLOB, 1, 0, MINE)]
    errors = []
    for _ in range(4):  # the four kinds in turn
        with pytest.raises(DaError) as e:
            wire.parse_batch_sign_reply(_sign(s, items), 1)
        errors.append(str(e.value))
    assert "not a valid signer.BatchSignReply" in errors[0]
    assert "unknown protobuf fields" in errors[1]
    assert "2 signatures for 1 requests" in errors[2]
    assert "not on the curve" in errors[3]
    req = [wire.RetrieveItem(1, 0, BLOB.storage_root, MINE)]
    errors = []
    for _ in range(3):
        with pytest.raises(DaError) as e:
            wire.parse_batch_retrieve_reply(_retrieve_raw(s, req), req)
        errors.append(str(e.value))
    assert "not a valid signer.BatchRetrieveReply" in errors[0]
    assert "unknown protobuf fields" in errors[1]
    assert "2 slice lists for 1 requests" in errors[2]
    assert wire.parse_status_reply(_call(s, wire.METHOD_GET_STATUS, b"")).status_code == 200


@pytest.mark.parametrize("mode", ["wrong-socket", "not-enrolled"])
def test_chain_side_modes_are_honest_on_grpc(signer, pk_g2, mode):
    s = signer(mode)
    (sig,) = wire.parse_batch_sign_reply(_sign(s, [sign_request_for(BLOB, 1, 0, MINE)]), 1)
    assert bls.verify_signature(sig, _hash(BLOB, 1, 0), pk_g2)
    (got,) = _retrieve(s, [wire.RetrieveItem(1, 0, BLOB.storage_root, MINE)])
    assert got == [BLOB.slices[i] for i in MINE]


def test_modes_and_arguments():
    assert set(MODES) == {"honest", "offline", "never-signs", "drops-rows", "corrupts-rows", "prunes-early",
                          "invalid-signatures", "garbage", "wrong-socket", "not-enrolled"}
    with pytest.raises(ValueError):
        DaSignerServer(SK, "lazy", ENTRANCE)
    with pytest.raises(ValueError):
        DaSignerServer(0, "honest", ENTRANCE)
    with pytest.raises(ValueError):
        DaSignerServer(SK, "honest", "0x1234")


# ---------------------------------------------------------------- as a process

def test_command_line_process(tmp_path, pk_g2):
    sk_file = tmp_path / "sk"
    sk_file.write_text(hex(SK) + "\n")
    assert read_secret_key(sk_file) == SK
    proc = subprocess.Popen([sys.executable, "-m", "alignment_node.devnet.dasigner", "--sk-file", str(sk_file),
                             "--mode", "honest", "--port", "0", "--entrance", ENTRANCE, "--assign", "1:0:0,2,5,11"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] is True and ready["port"] > 0

        class _Target:
            port = ready["port"]
        (sig,) = wire.parse_batch_sign_reply(_sign(_Target, [sign_request_for(BLOB, 1, 0, MINE)]), 1)
        assert bls.verify_signature(sig, _hash(BLOB, 1, 0), pk_g2)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_process_wrapper(tmp_path):
    sk_file = tmp_path / "sk"
    sk_file.write_text(str(SK))
    with DaSignerProcess(sk_file, "garbage", ENTRANCE) as p:
        with grpc.insecure_channel(p.target) as ch:
            info = wire.parse_status_reply(ch.unary_unary(wire.METHOD_GET_STATUS)(b"", timeout=5))
        assert info.entrance_contract == ENTRANCE
    with DaSignerProcess(sk_file, "offline", ENTRANCE) as p:
        with grpc.insecure_channel(p.target) as ch:
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary(wire.METHOD_GET_STATUS)(b"", timeout=2)
        assert _code(e) == grpc.StatusCode.UNAVAILABLE
