"""The DA_SIGNER audit against reference DA signers speaking signer.proto over real gRPC on loopback.

The chain facts (registration, enrolment, keys, the verified blobs and their bitmaps) are given as the chain
reader would record them; the signer is the devnet's reference one (devnet/dasigner.py) in each fault mode,
holding the rows a disperser gave it through BatchSign. Each bundle is re-judged from its bytes alone.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from alignment_node import protocol as P
from alignment_node.audits.base import EpochContext, Target
from alignment_node.audits.da import (DaAuditor, DaChainFacts, da_identity, draw, evaluate,
                                      parse_da_identity)
from alignment_node.da import bls, rows, wire
from alignment_node.devnet.dasigner import DaSignerServer, sign_request_for

SK = 0x5A17E5
ENTRANCE = "0x" + "ab" * 20
SIGNER = "0x" + "cd" * 20
MY_ROWS = [1, 4, 6]
BLOBS = [rows.make_blob(b"blob-%d" % i) for i in range(4)]
SEED = bytes(range(32))


def disperse(server: DaSignerServer, blobs=BLOBS, da_epoch: int = 3) -> None:
    """What a disperser does: send the signer its rows of each blob and check the signature it returns."""
    pk_g2 = bls.keypair(SK)[1]
    for q, blob in enumerate(blobs):
        server.assign(da_epoch, q, MY_ROWS)
        item = sign_request_for(blob, da_epoch, q, MY_ROWS)
        with grpc.insecure_channel(server.target) as ch:
            reply = ch.unary_unary(wire.METHOD_BATCH_SIGN)(wire.build_batch_sign_request([item]), timeout=5)
        [sig] = wire.parse_batch_sign_reply(reply, 1)
        assert bls.verify_signature(sig, bls.commit_root_hash(blob.storage_root, da_epoch, q, blob.commitment),
                                    pk_g2) == (server.mode != "invalid-signatures" or None)


def facts(endpoint: str, counted=(True, True, True, True), socket: str | None = None, enrolled: bool = True,
          sk: int = SK, da_epoch: int = 3) -> DaChainFacts:
    pk1, pk2 = bls.keypair(sk)
    x, y = bls.g2_to_words(pk2, "chain")
    return DaChainFacts(
        da_epoch=da_epoch, registered=True, enrolled=enrolled, socket=endpoint if socket is None else socket,
        pk_g1=[hex(pk1[0]), hex(pk1[1])], pk_g2=[[hex(v) for v in x], [hex(v) for v in y]],
        blobs=[{"data_root": "0x" + b.storage_root.hex(), "epoch": da_epoch, "quorum": q,
                "commitment": [hex(b.commitment[0]), hex(b.commitment[1])], "rows": list(MY_ROWS),
                "counted": c} for q, (b, c) in enumerate(zip(BLOBS, counted))])


def audit(server_target: str, chain: DaChainFacts, entrance: str = ENTRANCE, **policy) -> tuple[int, dict]:
    async def chain_facts(t, chain_id, signer, entr):
        assert (chain_id, signer, entr) == (31337, SIGNER, entrance.lower())
        return chain

    t = Target(9, P.KIND_DA_SIGNER, server_target, da_identity(31337, SIGNER, entrance))
    auditor = DaAuditor(chain_facts, **policy)
    out = asyncio.run(auditor.audit_epoch(5, [t], [t], 20.0, EpochContext(SEED, {9: [17, 12]})))
    res = out[9]
    # the bundle is self-contained: its canonical bytes re-judge to the same verdict
    bundle = json.loads(P.canonical_json(res.bundle))
    assert evaluate(bundle)[0] == res.verdict
    return res.verdict, bundle


def failed(bundle: dict) -> set[str]:
    return {c["name"] for c in bundle["checks"] if c["ok"] is False}


@pytest.fixture
def signer():
    servers = []

    def make(mode="honest", entrance=ENTRANCE, **kw):
        s = DaSignerServer(SK, mode, entrance, **kw)
        s.start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop(0)


def test_identity_round_trip_and_refusals():
    ident = da_identity(8, SIGNER, ENTRANCE)
    assert parse_da_identity(ident) == (8, SIGNER, ENTRANCE)
    dirty = bytearray(ident)
    dirty[40] = 1  # a high byte of the signer's address word
    for bad in (ident[:-1], ident + b"\0", bytes(dirty)):
        with pytest.raises(ValueError):
            parse_da_identity(bad)


def test_the_draw_is_repeatable_counted_only_and_distinct():
    policy = {"custody_blobs": 2, "custody_rows": 2}
    blobs = [{"counted": c, "rows": [1, 4, 6]} for c in (True, False, True, True)]
    picks = draw(SEED, 9, 12, blobs, policy)
    assert picks == draw(SEED, 9, 12, blobs, policy)
    assert len(picks) == 2 and len({p["blob"] for p in picks}) == 2 and all(p["blob"] != 1 for p in picks)
    assert all(len(p["rows"]) == 2 and set(p["rows"]) <= {1, 4, 6} for p in picks)
    assert draw(SEED, 9, 13, blobs, policy) != picks or draw(SEED, 10, 12, blobs, policy) != picks
    assert draw(SEED, 9, 12, [{"counted": False, "rows": [1]}], policy) == []


def test_an_honest_signer_is_ok_and_the_bundle_re_judges(signer):
    s = signer()
    disperse(s)
    verdict, bundle = audit(s.target, facts(s.target))
    assert verdict == P.OK, bundle["checks"]
    assert bundle["license"] == 12 and len(bundle["observations"]["retrieve"]) == 2
    # a changed row in the bundle is caught by the re-judgement
    r = bundle["observations"]["retrieve"][0]
    raw = bytearray(bytes.fromhex(r["slices"][0]))
    raw[10] ^= 1
    r["slices"][0] = raw.hex()
    assert evaluate(bundle)[0] == P.FAULT
    # picks that are not the draw's are refused, not judged
    bundle["observations"]["retrieve"].reverse()
    with pytest.raises(ValueError, match="draw"):
        evaluate(bundle)


@pytest.mark.parametrize("mode,check", [("corrupts-rows", "custody"), ("drops-rows", "custody"),
                                        ("garbage", "well_formed")])
def test_a_signer_that_loses_or_mangles_rows_is_a_fault(signer, mode, check):
    s = signer(mode)
    if mode == "garbage":
        s.assign(3, 0, MY_ROWS)
    else:
        disperse(s)
    verdict, bundle = audit(s.target, facts(s.target))
    assert verdict == P.FAULT and check in failed(bundle), bundle["checks"]


def test_rows_pruned_before_the_sampling_window_ends_are_a_fault(signer):
    import time

    s = signer("prunes-early", prune_seconds=0.3)
    disperse(s)
    time.sleep(0.6)
    verdict, bundle = audit(s.target, facts(s.target))
    assert verdict == P.FAULT and "custody" in failed(bundle), bundle["checks"]


def test_chain_side_faults_are_registration_faults(signer):
    s = signer()
    disperse(s)
    for chain in (facts(s.target, socket="10.0.0.9:1234"), facts(s.target, enrolled=False)):
        verdict, bundle = audit(s.target, chain)
        assert verdict == P.FAULT and failed(bundle) == {"registration"}, bundle["checks"]
    # keys that are not one key pair
    chain = facts(s.target)
    other = bls.keypair(SK + 1)[0]
    chain.pk_g1 = [hex(other[0]), hex(other[1])]
    verdict, bundle = audit(s.target, chain)
    assert verdict == P.FAULT and "pairing" in " ".join(c["detail"] for c in bundle["checks"])
    # a signer serving another DAEntrance
    s2 = signer(entrance="0x" + "ef" * 20)
    disperse(s2)
    verdict, bundle = audit(s2.target, facts(s2.target))
    assert verdict == P.FAULT and "registration" in failed(bundle)


def test_a_signer_left_out_of_the_bitmaps_fails_participation_and_is_not_sampled(signer):
    s = signer()
    disperse(s)
    verdict, bundle = audit(s.target, facts(s.target, counted=(False, False, False, True)))
    assert verdict == P.FAULT and failed(bundle) == {"participation"}, bundle["checks"]
    assert [r["blob"] for r in bundle["observations"]["retrieve"]] == [3]
    # half is enough at the default 50 %
    verdict, _ = audit(s.target, facts(s.target, counted=(False, True, False, True)))
    assert verdict == P.OK


def test_an_offline_signer_is_unreachable_not_a_fault(signer):
    from alignment_node.devnet.anvil import free_port

    verdict, bundle = audit(f"127.0.0.1:{free_port()}", facts("127.0.0.1:1"), request_deadline_ms=1500)
    assert verdict == P.UNREACHABLE or "registration" in failed(bundle)
    endpoint = f"127.0.0.1:{free_port()}"
    verdict, bundle = audit(endpoint, facts(endpoint), request_deadline_ms=1500)
    assert verdict == P.UNREACHABLE and failed(bundle) == {"reachable"}, bundle["checks"]


class _Misbehaving:
    """A signer whose GetStatus is honest and whose BatchRetrieve answers ``retrieve(raw request)`` (raw bytes),
    over a real grpcio server."""

    def __init__(self, retrieve):
        from concurrent import futures

        status = wire.pb.StatusReply(status_code=200, entrance_contract=ENTRANCE[2:]).SerializeToString()
        handlers = grpc.method_handlers_generic_handler("signer.Signer", {
            "GetStatus": grpc.unary_unary_rpc_method_handler(lambda raw, ctx: status),
            "BatchRetrieve": grpc.unary_unary_rpc_method_handler(lambda raw, ctx: retrieve(raw)),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(4), options=[
            ("grpc.max_send_message_length", 64 << 20), ("grpc.so_reuseport", 0)])
        self.server.add_generic_rpc_handlers((handlers,))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.server.stop(0)


def test_a_huge_reply_is_a_well_formed_fault_with_evidence():
    with _Misbehaving(lambda raw: b"\x0a" + b"\xff" * (9 << 20)) as s:
        verdict, bundle = audit(s.target, facts(s.target))
    assert verdict == P.FAULT and "well_formed" in failed(bundle), bundle["checks"]
    assert {r["status"] for r in bundle["observations"]["retrieve"]} == {"oversized"}


def test_a_slow_reply_is_unreachable_within_the_deadline():
    import time

    def slow(raw):
        time.sleep(3)
        return b""

    with _Misbehaving(slow) as s:
        started = time.monotonic()
        verdict, bundle = audit(s.target, facts(s.target), request_deadline_ms=800)
        took = time.monotonic() - started
    assert verdict == P.UNREACHABLE and failed(bundle) == {"reachable"}, bundle["checks"]
    assert {r["status"] for r in bundle["observations"]["retrieve"]} == {"timeout"} and took < 2.5
