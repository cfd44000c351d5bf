"""The TEE layer of MODEL audits (alignment_node/models/tee.py, docs/spec/TEE.md) and the devnet TEE proxy
(alignment_node/devnet/teeproxy.py) over real HTTP, in every mode."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alignment_node.models import tee

VECTORS = Path(__file__).parent / "vectors"


def _key(label: str) -> bytes:
    """A fixed test key made at run time from a label (no key is written in this file)."""
    return hashlib.sha256(b"alignment-node tee test " + label.encode()).digest()


# ------------------------------------------------------------------------------------------ EIP-191 digest

def _keccak(data: bytes) -> bytes:
    """An implementation independent of safe-pysha3 (pycryptodome's), else eth-hash's backend."""
    try:
        from Crypto.Hash import keccak
        return keccak.new(digest_bits=256, data=data).digest()
    except ImportError:
        from eth_utils import keccak as eth_keccak
        return eth_keccak(data)


@pytest.mark.parametrize("message", ["hello", "héllo ✓", "", "a" * 1000,
                                     "0" * 64 + ":" + "f" * 64])
def test_personal_digest_known_answer(message):
    data = message.encode("utf-8")
    by_hand = _keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
    assert tee.personal_digest(message) == by_hand == tee.personal_digest(data)
    try:
        from eth_account.messages import _hash_eip191_message, encode_defunct
    except ImportError:
        return
    assert tee.personal_digest(message) == _hash_eip191_message(encode_defunct(text=message))


def test_personal_digest_of_hello_is_the_well_known_value():
    # ethers.hashMessage("hello") / web3.eth.accounts.hashMessage("hello")
    assert tee.personal_digest("hello").hex() == "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"


def test_signature_matches_eth_keys():
    from eth_keys import keys

    key = _key("eth-keys")
    text = tee.response_text(b'{"a":1}', b'{"b":2}')
    ours = bytes.fromhex(tee.sign_text(key, text)[2:])
    theirs = keys.PrivateKey(key).sign_msg_hash(tee.personal_digest(text))
    assert ours[:64] == theirs.to_bytes()[:64]  # both RFC 6979, low s
    assert ours[64] == theirs.v + 27
    assert tee.address_of(key) == keys.PrivateKey(key).public_key.to_checksum_address().lower()
    assert tee.recover_signer(text, "0x" + theirs.to_bytes().hex()) == tee.address_of(key)


def test_response_text_is_hex_sha256_of_both_bodies():
    assert tee.response_text(b"abc", b"") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


# --------------------------------------------------------------------------------------- sign and recover

def test_sign_recover_round_trip():
    key = _key("round trip")
    sig = tee.sign_response(key, b"request", b"response")
    assert sig.startswith("0x") and len(sig) == 132 and int(sig[-2:], 16) in (27, 28)
    text = tee.response_text(b"request", b"response")
    assert tee.recover_signer(text, sig) == tee.address_of(key)
    assert tee.recover_signer(text.encode(), bytes.fromhex(sig[2:])) == tee.address_of(key)
    assert tee.recover_signer(text + " ", sig) not in (None, tee.address_of(key))
    raw = bytearray.fromhex(sig[2:])
    raw[64] -= 27  # v as 0/1 is accepted too
    assert tee.recover_signer(text, raw.hex()) == tee.address_of(key)


def test_recover_signer_refuses_malformed_signatures():
    key = _key("malformed")
    text = "x"
    sig = bytes.fromhex(tee.sign_text(key, text)[2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = sig[:32] + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([((sig[64] - 27) ^ 1) + 27])
    bad = ["", "0x", "0x" + sig.hex()[:-2], "0x" + sig.hex() + "00", "zz" * 65, "0x" + "g" * 130,
           "0x" + sig[:64].hex() + "1d", "0x" + "00" * 65, "0x" + bytes(32).hex() + sig[32:].hex(),
           "0x" + sig[:32].hex() + n.to_bytes(32, "big").hex() + "1b", "0x" + "ff" * 32 + sig[32:].hex(),
           high_s, None, 5, [sig.hex()], {"signature": sig.hex()}, sig[:64]]
    for s in bad:
        assert tee.recover_signer(text, s) is None, s
    assert tee.recover_signer(None, sig) is None
    assert tee.recover_signer("\ud800", sig) is None  # a lone surrogate has no UTF-8 form


# -------------------------------------------------------------------------------------------- check_exchange

REQ = b'{"model":"tinylm","messages":[{"role":"user","content":"hi"}]}'
RESP = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"}}]}'


def test_check_exchange_accepts_an_honest_signature_in_any_container():
    key = _key("exchange")
    record = tee.signature_record(key, REQ, RESP)
    assert set(record) == {"text", "signature", "signing_address", "signing_algo"}
    for form in (record, json.dumps(record), json.dumps(record).encode()):
        assert tee.check_exchange(REQ, RESP, form, tee.address_of(key)) is None
    assert tee.check_exchange(REQ, RESP, record, tee.address_of(key).upper().replace("0X", "0x")) is None
    assert tee.check_exchange(REQ.decode(), RESP.decode(), record, tee.address_of(key)) is None


def test_check_exchange_reasons():
    key, other = _key("exchange"), _key("other")
    signer = tee.address_of(key)
    good = tee.signature_record(key, REQ, RESP)
    cases = {
        "unsigned": (REQ, RESP, None, signer),
        "empty": (REQ, RESP, b"  ", signer),
        "not JSON": (REQ, RESP, b'{"text":', signer),
        "not a JSON object": (REQ, RESP, b"[1,2]", signer),
        "no text and signature": (REQ, RESP, {"text": good["text"]}, signer),
        "no text and signature ": (REQ, RESP, {"text": 1, "signature": good["signature"]}, signer),
        "signing_algo": (REQ, RESP, {**good, "signing_algo": "ed25519"}, signer),
        "over": (REQ, RESP, b" " * (tee.MAX_SIGNATURE_JSON_BYTES + 1), signer),
        "malformed signature": (REQ, RESP, {**good, "signature": "0x1234"}, signer),
        "signed by": (REQ, RESP, tee.signature_record(other, REQ, RESP), signer),
        "other response bytes": (REQ, RESP + b" ", good, signer),
        "covers other bytes": (REQ + b" ", RESP, good, signer),
        "no request body": (None, RESP, good, signer),
        "no response body": (REQ, None, good, signer),
        "not bytes": (REQ, 12, good, signer),
        "registered TEE signer is not an address": (REQ, RESP, good, "0x1234"),
        "registered TEE signer is not an address ": (REQ, RESP, good, None),
        "JSON ": (REQ, RESP, b"[" * 100_000, signer),
    }
    for expect, args in cases.items():
        reason = tee.check_exchange(*args)
        assert reason and (expect.strip() in reason or expect == "JSON "), (expect, reason)
    # a re-signed stale text: the right key over another response
    stale = tee.signature_record(key, REQ, b'{"id":"chatcmpl-0"}')
    assert "other response bytes" in tee.check_exchange(REQ, RESP, stale, signer)


def test_check_exchange_huge_body(monkeypatch):
    monkeypatch.setattr(tee, "MAX_BODY_BYTES", 1000)
    key = _key("huge")
    record = tee.signature_record(key, REQ, b"x" * 1001)
    assert "over 1000 bytes" in tee.check_exchange(REQ, b"x" * 1001, record, tee.address_of(key))


# ------------------------------------------------------------------------------------ devnet attestation

MEASUREMENT = hashlib.sha384(b"alignment-node devnet tee image").hexdigest()


def test_devnet_report_binds_signer_nonce_and_measurement():
    key, root, other = _key("tee"), _key("root"), _key("other")
    signer, roots = tee.address_of(key), [tee.address_of(root)]
    nonce = secrets.token_bytes(32)
    report = tee.make_devnet_report(key, MEASUREMENT, root, nonce)
    assert report["signing_address"] == signer and report["request_nonce"] == nonce.hex()
    assert bytes.fromhex(report["devnet_quote"]["report_data"]) == tee.report_data_for(signer, nonce)
    assert tee.verify_report(report, signer, MEASUREMENT, roots, nonce) is None
    assert tee.verify_report(json.dumps(report), signer, bytes.fromhex(MEASUREMENT), roots, nonce.hex()) is None
    assert tee.verify_report(report, signer, MEASUREMENT, roots) is None  # no freshness asked

    def reason(rep, **kw):
        args = {"expected_signer": signer, "expected_measurement": MEASUREMENT, "trusted_roots": roots,
                "nonce": nonce, **kw}
        return tee.verify_report(rep, **args)

    assert "another nonce" in reason(report, nonce=secrets.token_bytes(32))
    assert "another signer" in reason(report, expected_signer=tee.address_of(other))
    assert "not the registered" in reason(report, expected_measurement="00" * 48)
    assert "not by a trusted attestation root" in reason(report, trusted_roots=[tee.address_of(other)])
    assert "no trusted attestation root" in reason(report, trusted_roots=[])
    assert "not by a trusted" in reason(tee.make_devnet_report(key, MEASUREMENT, other, nonce))
    assert "another signer" in reason(tee.make_devnet_report(other, MEASUREMENT, root, nonce))
    assert "not the registered" in reason(tee.make_devnet_report(key, "ab" * 48, root, nonce))
    # edits after signing break the root's signature
    for field, value in (("measurement", "00" * 48), ("report_data", tee.report_data_for(signer, bytes(32)).hex())):
        forged = json.loads(json.dumps(report))
        forged["devnet_quote"][field] = value
        assert "not by a trusted attestation root" in reason(forged)
    lying = {**report, "signing_address": tee.address_of(other)}
    assert "signing_address" in reason(lying)
    bad = [None, b"{", b"[]", {}, {"intel_quote": "00"}, {"devnet_quote": 3},
           {"devnet_quote": {**report["devnet_quote"], "format": "x"}},
           {"devnet_quote": {**report["devnet_quote"], "report_data": "zz"}},
           {"devnet_quote": {**report["devnet_quote"], "report_data": "00" * 63}},
           {"devnet_quote": {**report["devnet_quote"], "signature": "0x00"}},
           {"devnet_quote": {**report["devnet_quote"], "measurement": None}},
           {"devnet_quote": {**report["devnet_quote"], "signature": 7}},
           b" " * (tee.MAX_REPORT_BYTES + 1), b"[" * 100_000]
    for rep in bad:
        r = reason(rep)
        assert isinstance(r, str) and r, rep
    assert reason(report, expected_signer="nope")
    assert reason(report, expected_measurement="zz")
    assert reason(report, nonce=b"short")


def test_report_data_layouts():
    signer = tee.address_of(_key("tee"))
    nonce = bytes(range(32))
    assert tee.report_data_binds(tee.report_data_for(signer, nonce), signer, nonce) is None
    ascii_layout = signer.upper().replace("0X", "0x").encode().ljust(64, b"\0")  # the 0G broker's own quote
    assert tee.report_data_binds(ascii_layout, signer) is None
    assert "no nonce" in tee.report_data_binds(ascii_layout, signer, nonce)
    other = tee.address_of(_key("other"))
    assert "another signer" in tee.report_data_binds(other.encode().ljust(64, b"\0"), signer)
    assert "does not bind" in tee.report_data_binds(secrets.token_bytes(64), signer)
    assert "not 64" in tee.report_data_binds(b"\0" * 32, signer)


# ----------------------------------------------------------------------------------- real DCAP quote

def test_dcap_quote_sample_verifies_offline():
    pytest.importorskip("dcap_qvl")
    v = json.loads((VECTORS / "tee-dcap-tdx.json").read_text())
    raw = bytes.fromhex(v["quote_hex"])
    collateral = v["collateral"]
    # TDX quote v4: 48-byte header, then TDREPORT 1.0 with MRTD at 136 and REPORTDATA at 520 (Intel's layout)
    report_data, mr_td = raw[48 + 520:48 + 584], raw[48 + 136:48 + 184]
    fields = tee.dcap_quote_fields(raw)
    assert fields["tee"] == "TDX" and fields["report_data"] == report_data and fields["measurement"] == mr_td
    assert tee.dcap_quote_fields(raw.hex()) == fields
    assert tee.dcap_quote_fields(b"not a quote") is None
    at = v["verify_at"]
    ok = tee.verify_dcap_quote(raw, collateral, None, mr_td, now=at, expected_report_data=report_data)
    assert ok is None
    assert tee.verify_dcap_quote(raw.hex(), json.dumps(collateral), None, mr_td.hex(), now=at,
                                 expected_report_data=report_data.hex()) is None
    # the sample is some other app's quote: it binds none of our signers
    signer = tee.address_of(_key("tee"))
    assert "does not bind" in tee.verify_dcap_quote(raw, collateral, signer, now=at)
    assert "report data" in tee.verify_dcap_quote(raw, collateral, None, now=at,
                                                  expected_report_data=bytes(64))
    assert "measures" in tee.verify_dcap_quote(raw, collateral, None, bytes(48), now=at,
                                               expected_report_data=report_data)
    tampered = bytearray(raw)
    tampered[48 + 520] ^= 1  # one bit of the report data: the quoting enclave's signature breaks
    assert "does not verify" in tee.verify_dcap_quote(bytes(tampered), collateral, None, now=at,
                                                      expected_report_data=bytes(tampered[568:632]))
    assert "does not verify" in tee.verify_dcap_quote(raw, collateral, None, now=v["crl_expired_at"] + 3600,
                                                      expected_report_data=report_data)
    assert "TCB status" in tee.verify_dcap_quote(raw, collateral, None, now=at, accepted_statuses=(),
                                                 expected_report_data=report_data)
    for bad in (b"", "zz", None):
        assert tee.verify_dcap_quote(bad, collateral, signer, now=at)
    assert tee.verify_dcap_quote(raw, "{", signer, now=at)
    assert tee.verify_dcap_quote(raw, {"tcb_info": 1}, signer, now=at)
    assert tee.verify_dcap_quote(raw, collateral, None, now=at)  # nothing to bind


# ------------------------------------------------------------------------------ the proxy over real HTTP

class _Upstream(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible upstream (used when the devnet's byte model is not cached)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "tinylm", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "no route"}})

    def do_POST(self):
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        except ValueError:
            self._send(400, {"error": {"message": "the body is not JSON"}})
            return
        text = secrets.token_hex(4)
        if self.path == "/v1/chat/completions":
            self._send(200, {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion",
                             "model": body.get("model"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "length"}]})
        elif self.path == "/v1/completions":
            self._send(200, {"id": "cmpl-" + secrets.token_hex(12), "object": "text_completion",
                             "choices": [{"index": 0, "text": text, "finish_reason": "length"}]})
        elif self.path == "/v1/embeddings":
            self._send(200, {"object": "list", "data": [{"index": 0, "embedding": [0.5, 0.25]}]})
        else:
            self._send(404, {"error": {"message": "no route"}})


def _model_cached() -> bool:
    try:
        from alignment_node.models import lm
        key = lm._cache_key("tinylm", 0, lm.STEPS, lm.Config())
        return (lm.cache_dir() / f"tinylm-seed0-steps{lm.STEPS}-{key}.pt").exists()
    except Exception:  # noqa: BLE001 (no torch: the models extra is not installed)
        return False


@pytest.fixture(scope="module")
def upstream():
    if _model_cached():
        from alignment_node.devnet.modelserver import ModelServerProcess
        with ModelServerProcess("honest", embeddings=False, startup_timeout=60) as server:
            yield server.url
        return
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("teekeys")
    tee_key, root_key = secrets.token_bytes(32), secrets.token_bytes(32)
    (d / "tee.key").write_text(tee_key.hex() + "\n")
    (d / "root.key").write_text("0x" + root_key.hex() + "\n")
    return {"key_file": str(d / "tee.key"), "root_key_file": str(d / "root.key"),
            "signer": tee.address_of(tee_key), "root": tee.address_of(root_key)}


def _http(method, url, body: bytes | None = None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _exchange(base, path, request: dict):
    body = json.dumps(request).encode()
    status, answer = _http("POST", base + path, body)
    assert status == 200, answer[:200]
    chat_id = json.loads(answer)["id"]
    sig_status, sig = _http("GET", f"{base}/v1/proxy/signature/{chat_id}")
    return body, answer, (sig if sig_status == 200 else None), sig_status


EXPECT = {  # mode: (exchange reason contains, report reason contains); None = passes
    "honest": (None, None),
    "tee-unsigned": ("unsigned", None),
    "tee-forged": ("signed by", None),
    "tee-stale": ("other response bytes", None),
    "tee-unbound": (None, "another signer"),
    "tee-wrong-measurement": (None, "not the registered"),
    "gateway-reserialize": ("other response bytes", None),
}


def test_every_proxy_mode_over_http(upstream, keys):
    from alignment_node.devnet.teeproxy import MODES, TeeProxyProcess

    assert set(MODES) == set(EXPECT)
    chat = {"model": "tinylm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "seed": 1}
    completion = {"model": "tinylm", "prompt": "The ", "max_tokens": 4, "logprobs": 1}
    procs = {m: TeeProxyProcess(upstream, m, key_file=keys["key_file"], root_key_file=keys["root_key_file"],
                                measurement=MEASUREMENT) for m in MODES}
    try:
        for p in procs.values():
            p.start()
        for mode, proc in procs.items():
            want_exchange, want_report = EXPECT[mode]
            for path, request in (("/v1/chat/completions", chat), ("/v1/completions", completion),
                                  ("/v1/proxy/chat/completions", chat)):
                for _ in range(2):  # twice: tee-stale signs the previous answer from the second on
                    body, answer, sig, sig_status = _exchange(proc.url, path, request)
                    reason = tee.check_exchange(body, answer, sig, keys["signer"])
                    if want_exchange is None:
                        assert reason is None, (mode, path, reason)
                    else:
                        assert reason and want_exchange in reason, (mode, path, reason)
                    assert sig_status == (404 if mode == "tee-unsigned" else 200)
                    if mode == "gateway-reserialize":  # the same JSON value, other bytes
                        assert b'\n  "' in answer and json.loads(answer)["id"]
            nonce = secrets.token_bytes(32)
            status, report = _http("GET", f"{proc.url}/v1/proxy/attestation/report?nonce={nonce.hex()}")
            assert status == 200
            reason = tee.verify_report(report, keys["signer"], MEASUREMENT, [keys["root"]], nonce)
            if want_report is None:
                assert reason is None, (mode, reason)
            else:
                assert reason and want_report in reason, (mode, reason)
            assert "nonce" in tee.verify_report(report, keys["signer"], MEASUREMENT, [keys["root"]],
                                                secrets.token_bytes(32)) or mode == "tee-unbound"
        # forwarding is transparent, the extra routes answer sanely
        p = procs["honest"]
        assert _http("GET", p.url + "/v1/models") == _http("GET", upstream + "/v1/models")
        emb = json.dumps({"input": "x"}).encode()
        assert _http("POST", p.url + "/v1/embeddings", emb)[0] == _http("POST", upstream + "/v1/embeddings", emb)[0]
        assert _http("GET", p.url + "/v1/proxy/signature/chatcmpl-unknown")[0] == 404
        assert _http("GET", p.url + "/v1/proxy/attestation/report?nonce=zz")[0] == 400
        status, report = _http("GET", p.url + "/v1/proxy/attestation/report")
        assert status == 200 and tee.verify_report(report, keys["signer"], MEASUREMENT, [keys["root"]]) is None
        assert _http("POST", p.url + "/v1/other", b"{}")[0] == 404
        bad_status, bad = _http("POST", p.url + "/v1/chat/completions", b"{not json")
        assert bad_status == 400 and _http("GET", p.url + "/v1/proxy/signature/x")[0] == 404
    finally:
        for p in procs.values():
            p.stop()


def test_proxy_without_upstream_and_bad_arguments(keys, tmp_path):
    from alignment_node.devnet.anvil import free_port
    from alignment_node.devnet.teeproxy import TeeProxyProcess, main

    dead = f"http://127.0.0.1:{free_port()}"
    with TeeProxyProcess(dead, "honest", key_file=keys["key_file"], root_key_file=keys["root_key_file"],
                         measurement=MEASUREMENT) as p:
        status, body = _http("POST", p.url + "/v1/chat/completions", b"{}")
        assert status == 502 and b"upstream" in body
    (tmp_path / "bad.key").write_text("nothex\n")
    for argv in (["--port", "1", "--upstream", dead, "--key-file", str(tmp_path / "bad.key"),
                  "--root-key-file", keys["root_key_file"], "--measurement", MEASUREMENT],
                 ["--port", "1", "--upstream", dead, "--key-file", keys["key_file"],
                  "--root-key-file", keys["root_key_file"], "--measurement", "zz"],
                 ["--port", "1", "--upstream", dead, "--mode", "nope", "--key-file", keys["key_file"],
                  "--root-key-file", keys["root_key_file"], "--measurement", MEASUREMENT]):
        with pytest.raises(SystemExit):
            main(argv)
    with pytest.raises(ValueError):
        TeeProxyProcess(dead, "nope", key_file="k", root_key_file="r", measurement="00")


def test_signature_store_and_chat_ids():
    from alignment_node.devnet.teeproxy import SignatureStore, chat_id_of, reserialize

    store = SignatureStore(ttl=60, most=2)
    for i in range(3):
        store.put(f"c{i}", {"i": i})
    assert store.get("c0") is None and store.get("c2") == {"i": 2}
    expired = SignatureStore(ttl=-1)
    expired.put("c", {})
    assert expired.get("c") is None
    assert chat_id_of(b'{"id":"chatcmpl-9"}', "application/json") == "chatcmpl-9"
    sse = b'data: {"id":"chatcmpl-7","choices":[]}\n\ndata: {"id":"chatcmpl-7"}\n\ndata: [DONE]\n\n'
    assert chat_id_of(sse, "text/event-stream") == "chatcmpl-7"
    for body in (b"{", b"[]", b'{"id":3}', b'{"id":""}', b"\xff"):
        assert chat_id_of(body, "application/json") is None
    assert chat_id_of(b"data: [DONE]\n", "text/event-stream") is None
    assert reserialize(RESP) != RESP and json.loads(reserialize(RESP)) == json.loads(RESP)
    assert reserialize(b"not json") == b"not json"


def test_tee_module_stays_small():
    """The MODEL audit worker imports models.tee: no torch, no numpy, no dcap-qvl until a quote is checked."""
    import subprocess
    import sys

    code = ("import sys, alignment_node.models.tee as t; t.check_exchange(b'', b'', None, '0x' + '0' * 40); "
            "print(sorted(m for m in ('torch', 'numpy', 'dcap_qvl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
