"""MODEL audits end to end: a baseline bundle made from the local model, real model servers (honest, substituted,
answering badly) over HTTP, and the model-audit worker's judgement, repeated from the evidence alone."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("torch", reason="MODEL audits need the 'models' extra (scripts/install.sh installs it)")

from alignment_node.devnet.modelserver import ModelServerProcess  # noqa: E402
from alignment_node.devnet.processes import start_all  # noqa: E402
from alignment_node.models import baseline as B  # noqa: E402
from alignment_node.models.audit import evaluate  # noqa: E402
from alignment_node.models.worker import Worker  # noqa: E402
from alignment_node.protocol import FAULT, OK, UNREACHABLE, canonical_json  # noqa: E402

MODES = ("honest", "temp-0.7", "seed", "int8", "noise-0.1", "evasive", "garbage", "empty-choices", "refuse", "embed-other", "huge", "wrong-shape")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("baselines")
    bundle = B.make_baseline(seed=0, samples_per_probe=100)
    h, _ = B.save(bundle, d)
    servers = {m: ModelServerProcess(m, startup_timeout=120) for m in MODES}
    try:
        start_all(servers.values())
        yield {"hash": h, "dir": d, "baseline": bundle, "servers": servers,
               "state": tmp_path_factory.mktemp("state")}
    finally:
        for s in servers.values():
            s.stop()


def audit(world, modes, identity=None, seed="0x" + "07" * 32, epoch=1):
    req = {"epoch": epoch, "seed": seed, "deadline_s": 60,
           "targets": [{"id": i + 1, "endpoint": world["servers"][m].url, "identity": identity or world["hash"],
                        "license": 3} for i, m in enumerate(modes)],
           "sources": [str(world["dir"])], "cache_dir": None, "state_dir": str(world["state"] / seed[2:6]),
           "policy": {"queries": 100, "per_request": 10, "request_deadline_ms": 20000}}
    answer = asyncio.run(Worker().handle(req))
    by_id = {r["id"]: r for r in answer["results"]}
    return {m: by_id.get(i + 1) for i, m in enumerate(modes)}, answer


def failed(result):
    return {c["name"]: c["detail"] for c in result["bundle"]["checks"] if c["ok"] is False}


def test_honest_server_passes_and_the_judgement_repeats(world):
    results, _ = audit(world, ["honest"])
    r = results["honest"]
    assert r["verdict"] == OK, failed(r)
    checks = {c["name"]: c["ok"] for c in r["bundle"]["checks"]}
    assert checks["substitution"] is True and checks["embeddings"] is True and checks["drift"] is True
    assert checks["logprobs"] is True
    assert len(r["bundle"]["fresh"]) == 4 and len(r["bundle"]["logprobs"]["served"]) == 104
    again = json.loads(canonical_json(r["bundle"]))  # what verify-evidence re-judges
    assert evaluate(again, world["baseline"])[0] == OK


@pytest.mark.parametrize("mode,check", [("temp-0.7", "substitution"), ("seed", "substitution"),
                                        ("embed-other", "embeddings"), ("int8", "logprobs"),
                                        ("noise-0.1", "logprobs"), ("evasive", "logprobs")])
def test_substitutions_are_faults(world, mode, check):
    results, _ = audit(world, [mode])
    r = results[mode]
    assert r["verdict"] == FAULT, r["bundle"]["checks"]
    assert check in failed(r)
    assert evaluate(json.loads(canonical_json(r["bundle"])), world["baseline"])[0] == FAULT


@pytest.mark.parametrize("mode", ["garbage", "empty-choices", "refuse", "huge", "wrong-shape"])
def test_bad_answers_are_faults_or_unreachable_with_evidence(world, mode):
    results, _ = audit(world, [mode])
    r = results[mode]
    assert r["verdict"] in (FAULT, UNREACHABLE), r["bundle"]["checks"]
    assert failed(r)
    assert any(o["status"] != "ok" for o in r["bundle"]["observations"])


def test_a_baseline_that_does_not_match_its_hash_is_refused(world, tmp_path):
    data = canonical_json(world["baseline"])
    fake = "0x" + "ab" * 32
    (tmp_path / f"{fake}.json").write_bytes(data)
    req_world = dict(world, dir=tmp_path)
    results, answer = audit(req_world, ["honest"], identity=fake)
    assert results["honest"] is None
    [skip] = answer["skipped"]
    assert "refusing to audit" in skip["reason"]


def test_verify_evidence_rejudges_a_model_bundle_fetched_from_a_node(world, tmp_path):
    """What `alignment-node verify-evidence ROOT --from URL` does with a MODEL bundle: fetch it and the baseline
    it names from the node's /evidence and /baselines, check both hashes, re-run the judgement."""
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from alignment_node.protocol import keccak

    results, _ = audit(world, ["temp-0.7"])
    body = canonical_json(results["temp-0.7"]["bundle"])
    root = "0x" + keccak(body).hex()
    files = {f"/evidence/{root}": body,
             f"/baselines/{world['hash']}.json": (world["dir"] / f"{world['hash']}.json").read_bytes()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        out = subprocess.run([sys.executable, "-m", "alignment_node.cli", "verify-evidence", root, "--from", url,
                              "--json"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        data = json.loads(out.stdout)
        assert data["agrees"] and data["recomputed"] == "FAULT" and data["kind"] == "MODEL"
        # a node serving another baseline under that name is refused, not trusted
        files[f"/baselines/{world['hash']}.json"] = b"{}"
        out = subprocess.run([sys.executable, "-m", "alignment_node.cli", "verify-evidence", root, "--from", url],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 1 and "refusing to audit" in out.stderr, out.stderr
    finally:
        server.shutdown()


def test_evasive_is_caught_on_fresh_prompts_only(world):
    results, _ = audit(world, ["evasive"], seed="0x" + "09" * 32)
    r = results["evasive"]
    detail = failed(r)["logprobs"]
    assert "fresh completion" in detail, detail
    checks = {c["name"]: c["ok"] for c in r["bundle"]["checks"]}
    assert checks["substitution"] is True  # the probes themselves were answered by the registered model


def test_logprob_gap_flags_nan_and_missing_bytes():
    from alignment_node.models.audit import logprob_gap

    assert logprob_gap([["-1.0", "-2.0"]], [["-1.0", "-2.00001"]])[0] == pytest.approx(1e-5)
    assert logprob_gap([["-1.0", "nan"]], [["-1.0", "-2.0"]])[0] == float("inf")
    assert logprob_gap([["-1.0"]], [["-1.0", "-2.0"]]) == (float("inf"), 0, -1)
    assert logprob_gap([["-1.0"]], [["-1.0"], ["-3.0"]])[0] == float("inf")
