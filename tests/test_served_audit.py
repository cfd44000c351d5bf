"""MODEL audits of served chat models by an auditor that holds no weights (version-2 baselines): the keeper's
bundle (``models.keeper``), LLM servers in benign and substituted setups and behind a TEE broker, the model-audit
worker process end to end (``audits.model.ModelAuditor``), each bundle re-judged from the evidence alone, and
the worker's peak RSS."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

pytest.importorskip("torch", reason="the keeper and the devnet LLM servers need the 'models' extra")

from alignment_node.audits.base import EpochContext, Target  # noqa: E402
from alignment_node.audits.model import ModelAuditor  # noqa: E402
from alignment_node.devnet.llmserver import LLMServerProcess  # noqa: E402
from alignment_node.devnet.processes import start_all  # noqa: E402
from alignment_node.devnet.teeproxy import TeeProxyProcess  # noqa: E402
from alignment_node.models import baseline as B  # noqa: E402
from alignment_node.models import keeper, tee  # noqa: E402
from alignment_node.models.served_audit import decode_position  # noqa: E402
from alignment_node.protocol import FAULT, KIND_MODEL, OK, UNREACHABLE, canonical_json  # noqa: E402

RSS_BUDGET_KB = 128 * 1024
# target id -> (what serves it, expected verdict, a check that must fail)
PLAN = {
    1: ("fp32", OK, None),
    2: ("bf16", OK, None),  # benign: same weights in bfloat16
    3: ("temp-0.7", FAULT, "sampling"),
    4: ("small", FAULT, "lt_reference"),
    5: ("tee:honest", OK, None),
    6: ("tee:tee-forged", FAULT, "tee"),
    7: ("garbage", FAULT, "well_formed"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("served")
    tee_key, root_key = secrets.token_bytes(32), secrets.token_bytes(32)
    (d / "tee.key").write_text(tee_key.hex() + "\n")
    (d / "root.key").write_text(root_key.hex() + "\n")
    measurement = secrets.token_hex(48)
    plain = keeper.cached_served_baseline(0)  # built once (about 6 s), then cached with the models
    claimed = keeper.with_tee(plain, {"signer": tee.address_of(tee_key), "measurement": measurement,
                                      "roots": [tee.address_of(root_key)]})
    src = d / "baselines"
    h_plain, _ = B.save(plain, src)
    h_tee, _ = B.save(claimed, src)
    procs = {m: LLMServerProcess(m, embeddings=False, startup_timeout=120)
             for m in ("fp32", "bf16", "temp-0.7", "small", "garbage")}
    try:
        start_all(procs.values())
        for m in ("honest", "tee-forged"):
            procs["tee:" + m] = TeeProxyProcess(procs["fp32"].url, m, key_file=str(d / "tee.key"),
                                                root_key_file=str(d / "root.key"), measurement=measurement)
        start_all([procs["tee:honest"], procs["tee:tee-forged"]])
        yield {"dir": d, "src": src, "procs": procs, "baselines": {h_plain: plain, h_tee: claimed},
               "hash": {"plain": h_plain, "tee": h_tee}}
    finally:
        for p in procs.values():
            p.stop()


def _audit(world, tids, seed: bytes, node_dir: str):
    """One epoch of the targets ``tids`` through a fresh worker process; its results and the worker's peak RSS."""
    targets = [Target(i, KIND_MODEL, world["procs"][PLAN[i][0]].url,
                      bytes.fromhex(world["hash"]["tee" if PLAN[i][0].startswith("tee:") else "plain"][2:]))
               for i in tids]
    auditor = ModelAuditor([str(world["src"])], world["dir"] / node_dir)
    context = EpochContext(seed=seed, licenses={t.id: [3] for t in targets})

    async def run():
        try:
            out = await auditor.audit_epoch(1, targets, [], 120.0, context)
            with open(f"/proc/{auditor.worker.pid}/status") as f:
                hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
            return out, hwm
        finally:
            auditor.stop()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def epoch(world):
    """One epoch of every planned target through the worker process; its results and the worker's peak RSS."""
    results, hwm = _audit(world, sorted(PLAN), bytes.fromhex("5a" * 32), "node")
    return {"results": results, "rss_kb": hwm}


def _failed(bundle):
    return {c["name"]: c["detail"] for c in bundle["checks"] if c["ok"] is False}


@pytest.fixture(scope="module")
def benign(world, epoch):
    """The result of each benign target, audited a second time if the first audit flagged it.

    The identity test's level is 0.002 per check family, and a sampling provider's answers are random: about
    0.6 % of honest audits are flagged (bench/README.md). A benign setup must pass a second, independent audit
    (another seed, a fresh store): two false positives in a row is ~4e-5. Tests that alter an honest bundle start
    from the passing one."""
    out = {}
    for tid, (_, want, _) in PLAN.items():
        if want != OK:
            continue
        r = epoch["results"][tid]
        if r.verdict != OK:
            results, _ = _audit(world, [tid], bytes.fromhex("a5" * 32), f"node-retry-{tid}")
            r = results[tid]
        out[tid] = r
    return out


@pytest.mark.parametrize("tid", sorted(PLAN))
def test_verdict_per_mode_and_the_judgement_repeats(world, epoch, benign, tid):
    name, want, check = PLAN[tid]
    r = benign.get(tid, epoch["results"][tid])
    bundle = r.bundle
    assert bundle["version"] == 2 and bundle["kind"] == "MODEL_SERVED"
    assert r.verdict == want, (name, _failed(bundle))
    if check:
        assert check in _failed(bundle), (name, _failed(bundle))
    # verify-evidence: the canonical bytes re-judged against the baseline fetched by hash
    again = json.loads(canonical_json(bundle))
    assert ModelAuditor([str(world["src"])], world["dir"] / "judge").judge(again) == want


def test_honest_bundle_holds_the_reduced_observations(world, epoch):
    b = epoch["results"][1].bundle
    assert len(b["completions"]) == 100 and len(b["lt"]) == len(world["baselines"][b["baseline"]]["lt"]["prompts"])
    assert {c["family"] for c in b["completions"]} == {"doc", "howto", "explain"}
    token, lp, top = decode_position(b["completions"][0]["positions"][0])
    assert len(top) == 20 and lp <= 0
    assert all("sha256" in o and "size" in o for o in b["observations"])
    checks = {c["name"]: c["ok"] for c in b["checks"]}
    assert checks["lt_drift"] is None and b["state_after"]  # the first audit stores the provider's snapshot
    assert (world["dir"] / "node" / "model-state").glob("served-1-*.json")
    t = epoch["results"][5].bundle
    assert all(c["tee"]["reason"] is None for c in t["completions"]) and t["tee_report"]["report"]


def test_tee_forgery_is_named(epoch):
    detail = _failed(epoch["results"][6].bundle)["tee"]
    assert "not by the registered TEE signer" in detail


def test_bad_answers_keep_evidence(epoch):
    b = epoch["results"][7].bundle
    assert epoch["results"][7].verdict in (FAULT, UNREACHABLE)
    assert any(o["status"] != "ok" and o.get("sha256") for o in b["observations"])


def test_worker_peak_rss_is_within_budget(epoch):
    print(f"model worker peak RSS (VmHWM): {epoch['rss_kb']} kB for {len(PLAN)} targets")
    assert 0 < epoch["rss_kb"] < RSS_BUDGET_KB, f"worker peak RSS {epoch['rss_kb']} kB"


def test_a_signature_or_report_lost_in_transit_is_not_a_tee_fault(world, benign):
    """A TEE answer the auditor could not fetch (timeout, connection) leaves the TEE check unknown: the verdict
    is not FAULT on its account; a signature the provider answered 404 for, after the wait, is a FAULT."""
    from alignment_node.models.served_audit import evaluate_served

    honest = benign[5].bundle
    baseline = world["baselines"][honest["baseline"]]
    lost = json.loads(canonical_json(honest))
    lost["completions"][0]["tee"]["signature"] = None
    lost["completions"][0]["tee"]["seen"] = {"status": "timeout", "tries": 1}
    lost["tee_report"] = {**lost["tee_report"], "report": None, "status": "timeout"}
    verdict, checks, _ = evaluate_served(lost, baseline)
    tee_check = next(c for c in checks if c["name"] == "tee")
    assert tee_check["ok"] is None and tee_check["unverified"] == 2, tee_check
    assert verdict == OK
    unsigned = json.loads(canonical_json(honest))
    unsigned["completions"][0]["tee"]["signature"] = None
    unsigned["completions"][0]["tee"]["seen"] = {"status": "http_error", "http_status": 404, "tries": 20}
    verdict, checks, _ = evaluate_served(unsigned, baseline)
    assert verdict == FAULT and "unsigned" in _failed({"checks": checks})["tee"]


def test_requests_cut_by_the_auditors_own_budget_do_not_accuse_the_provider(world, benign):
    """Chat requests that timed out only because the audit's time ran out (given less than the per-request
    deadline) are the auditor's shortfall: with at least half the completions in, the rest is judged; with fewer,
    the audit is UNREACHABLE. A request that timed out with the full deadline still counts against the provider."""
    from alignment_node.models.served_audit import evaluate_served

    honest = benign[1].bundle
    baseline = world["baselines"][honest["baseline"]]

    def cut(n: int, allowed_ms: int) -> dict:
        b = json.loads(canonical_json(honest))
        gone = {f"chat:{i}" for i in range(100 - n, 100)}
        b["completions"] = b["completions"][:100 - n]
        b["observations"] = [o for o in b["observations"] if o["call"] not in gone] + [
            {"call": c, "attempt": 1, "method": "POST /v1/chat/completions", "status": "timeout", "started_ms": 1,
             "elapsed_ms": allowed_ms, "allowed_ms": allowed_ms, "error": "no complete answer"} for c in sorted(gone)]
        return b

    def statistics_fired(checks: list[dict]) -> bool:
        # Fewer completions are judged than in the passing audit of the whole bundle: a statistical layer may fire
        # on what is left (rarely), and FAULT then comes before any availability verdict. What this test is about
        # is the availability check, checks[0].
        return any(c["ok"] is False for c in checks[1:])

    verdict, checks, _ = evaluate_served(cut(30, 2_000), baseline)
    assert checks[0]["ok"] is not False and checks[0]["cut_by_budget"] == 30, checks[0]
    assert verdict == OK or statistics_fired(checks)
    verdict, checks, _ = evaluate_served(cut(60, 2_000), baseline)
    assert checks[0]["ok"] is False
    assert verdict == UNREACHABLE or statistics_fired(checks)
    verdict, checks, _ = evaluate_served(cut(5, honest["policy"]["request_deadline_ms"]), baseline)
    assert checks[0]["ok"] is False and "cut_by_budget" not in checks[0], checks[0]
    assert verdict == UNREACHABLE or statistics_fired(checks)
