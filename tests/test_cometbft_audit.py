"""COMETBFT audits end to end: a simulated CometBFT chain (real Ed25519 keys and canonical votes) served over
HTTP by honest and lying RPC endpoints, audited by the plug-in the node runs; every verdict repeated from its
evidence bundle alone."""

from __future__ import annotations

import asyncio
import copy
import json
import time

import pytest

from alignment_node.audits.base import Target
from alignment_node.audits.cometbft import CometAuditor, comet_identity, evaluate, parse_comet_identity
from alignment_node.devnet.anvil import free_port
from alignment_node.devnet.cometsim import CometSimProcess
from alignment_node.protocol import FAULT, KIND_COMETBFT, OK, UNREACHABLE, canonical_json

CHAIN = "test-comet-7"
ENDPOINTS = {"rpc0": "honest", "rpc1": "honest", "forge": "forge", "fork": "fork", "garbage": "garbage",
             "other": "wrong-chain"}


@pytest.fixture(scope="module")
def chain():
    sim = CometSimProcess(chain_id=CHAIN, validators=6, block_time=0.15, seed=3,
                          faults=["1=few-misses:0.05", "2=offline:0.8", "3=double-sign@12", "5=join@8"],
                          endpoints=ENDPOINTS)
    with sim:
        deadline = time.monotonic() + 30
        while sim_height(sim) < 45 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield sim


def sim_height(sim) -> int:
    import urllib.request

    with urllib.request.urlopen(sim.endpoint_url("rpc0") + "/status", timeout=5) as r:
        return int(json.load(r)["result"]["sync_info"]["latest_block_height"])


def targets_of(sim, specs):
    addresses = sim.validator_addresses()
    out = []
    for i, (index, endpoint) in enumerate(specs):
        url = endpoint if endpoint.startswith("http") else sim.endpoint_url(endpoint)
        out.append(Target(i + 1, KIND_COMETBFT, url,
                          comet_identity(sim_chain(sim), None if index is None else addresses[index])))
    return out


def sim_chain(sim) -> str:
    return getattr(sim, "chain_id", CHAIN)


def run(auditor, targets, deadline=20.0, peers=None):
    return asyncio.run(auditor.audit_epoch(1, targets, peers if peers is not None else targets, deadline))


def failed(result):
    return {c["name"] for c in result.bundle["checks"] if c["ok"] is False}


def test_identity_round_trip_and_rejects():
    addr = bytes(range(20))
    assert parse_comet_identity(comet_identity("c-1", addr)) == ("c-1", addr)
    assert parse_comet_identity(comet_identity("c-1")) == ("c-1", None)
    for bad in (b"\xff\xfe", b"c-1/xyz", b"c-1/" + b"AB" * 19, b"/" + b"AB" * 20):
        with pytest.raises(ValueError):
            parse_comet_identity(bad)


def test_validators_and_rpc_endpoints_are_judged_and_the_judgement_repeats(chain):
    specs = [(0, "rpc0"), (1, "rpc1"), (2, "rpc0"), (3, "rpc1"), (None, "rpc1"), (None, "forge"), (None, "fork"),
             (None, "garbage"), (None, "other"), (4, "rpc0")]
    results = run(CometAuditor(), targets_of(chain, specs))
    by_spec = dict(zip(specs, (results.get(i + 1) for i in range(len(specs)))))
    expect = {(0, "rpc0"): OK, (1, "rpc1"): OK, (2, "rpc0"): FAULT, (3, "rpc1"): FAULT, (None, "rpc1"): OK,
              (None, "forge"): FAULT, (None, "fork"): FAULT, (None, "garbage"): FAULT, (None, "other"): FAULT,
              (4, "rpc0"): OK}
    for spec, want in expect.items():
        r = by_spec[spec]
        assert r is not None, spec
        assert r.verdict == want, (spec, r.bundle["checks"])
        again = json.loads(canonical_json(r.bundle))  # what verify-evidence re-judges
        assert evaluate(again)[0] == want
    assert failed(by_spec[(2, "rpc0")]) == {"uptime"}
    assert failed(by_spec[(3, "rpc1")]) == {"double_sign"}
    assert "signatures" in failed(by_spec[(None, "forge")])
    assert "agrees" in failed(by_spec[(None, "fork")]) or "signatures" in failed(by_spec[(None, "fork")])
    assert "well_formed" in failed(by_spec[(None, "garbage")])
    assert "chain_id" in failed(by_spec[(None, "other")])
    honest_miss = by_spec[(1, "rpc1")].bundle["validator"]
    assert honest_miss["in_set"] >= 30 and honest_miss["signed"] > honest_miss["in_set"] // 2
    jailed = by_spec[(3, "rpc1")].bundle["validator"]
    assert jailed["last_in_set"] is not None and jailed["last_in_set"] < by_spec[(3, "rpc1")].bundle["chain"]["window"][1]


def test_a_forged_signature_cannot_be_pinned_on_an_honest_endpoint(chain):
    results = run(CometAuditor(), targets_of(chain, [(None, "forge"), (None, "rpc0")]))
    bundle = results[1].bundle
    rec = next(r for r in bundle["rpc"]["bad_signatures"] if "signature" in r)
    # A bundle claiming the honest endpoint served a signature it did not: replace the forged bytes with the
    # real ones from the honest endpoint's view, and the judge no longer finds a bad signature.
    honest = copy.deepcopy(results[2].bundle)
    honest["rpc"]["bad_signatures"] = [rec]
    honest["rpc"]["bad_signature_count"] = 1
    assert evaluate(honest)[0] == FAULT  # the recorded signature really fails: the record stands on its own
    real = _real_signature(chain, rec)
    honest["rpc"]["bad_signatures"] = [dict(rec, signature=real)]
    assert "signatures" not in {c["name"] for c in evaluate(honest)[1] if c["ok"] is False}


def _real_signature(sim, rec) -> str:
    import urllib.request

    with urllib.request.urlopen(sim.endpoint_url("rpc0") + f"/commit?height={rec['height']}", timeout=5) as r:
        sigs = json.load(r)["result"]["signed_header"]["commit"]["signatures"]
    return sigs[rec["index"]]["signature"]


def test_a_dead_endpoint_is_unreachable_and_does_not_hide_the_chain(chain):
    dead = f"http://127.0.0.1:{free_port()}"
    results = run(CometAuditor(), targets_of(chain, [(0, dead), (2, "rpc0")]))
    assert results[1].verdict == UNREACHABLE and failed(results[1]) == {"reachable"}
    assert results[2].verdict == FAULT  # the offline validator, seen through the live endpoint


def test_a_halted_chain_makes_every_validator_unreachable_with_the_same_evidence():
    sim = CometSimProcess(chain_id="halting-1", validators=4, block_time=0.1, seed=4, halt_at=15,
                          endpoints={"rpc0": "honest"})
    with sim:
        time.sleep(4.0)
        results = run(CometAuditor(halt_after_s=1), targets_of(sim, [(0, "rpc0"), (1, "rpc0")]))
    assert {r.verdict for r in results.values()} == {UNREACHABLE}
    details = {next(c["detail"] for c in r.bundle["checks"] if c["name"] == "liveness") for r in results.values()}
    assert len(details) == 1 and "no new height" in details.pop()
    assert all(failed(r) == {"liveness"} for r in results.values())


def test_the_window_moves_on_each_height_fetched_once(chain):
    auditor = CometAuditor(window=20)
    t = targets_of(chain, [(0, "rpc0")])
    first = run(auditor, t)[1].bundle
    time.sleep(1.0)
    second = run(auditor, t)[1].bundle
    w1, w2 = first["chain"]["window"], second["chain"]["window"]
    assert w1[1] - w1[0] + 1 == 20 and w2[1] > w1[1] and w2[1] - w2[0] + 1 == 20
    blocks = [o for o in second["observations"] if o["call"].startswith("block:")]
    assert blocks and min(int(o["call"].split(":")[1]) for o in blocks) > w1[1]


def test_an_endpoint_claiming_a_far_height_neither_moves_the_window_nor_blinds_the_auditor(chain):
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    honest = chain.endpoint_url("rpc0")

    class Liar(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (stdlib name)
            with urllib.request.urlopen(honest + self.path, timeout=5) as r:
                body = json.load(r)
            if self.path.startswith("/status"):
                body["result"]["sync_info"]["latest_block_height"] = "999999999"
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        liar = f"http://127.0.0.1:{server.server_address[1]}"
        auditor = CometAuditor(window=30)
        targets = targets_of(chain, [(2, "rpc0"), (None, "rpc1"), (None, liar)])
        first = run(auditor, targets)
        second = run(auditor, targets)
    finally:
        server.shutdown()
    for results in (first, second):
        window = results[1].bundle["chain"]["window"]
        assert window[1] < 10_000 and window[1] - window[0] + 1 == 30
        assert results[1].verdict == FAULT and failed(results[1]) == {"uptime"}  # still judged: offline
        assert results[2].verdict == OK
