"""MODEL audit: is the target serving the model its baseline registers, and has its behaviour drifted?

Runs in the model-audit worker process (``models.worker``), never in the core node (numpy, scipy and torch do
not fit its 64 MB budget). One audit of one target, given its baseline bundle (already checked against the
target's registered hash) and the reference model rebuilt locally (its ``weights_sha256`` checked):

1. queries: ``queries`` completions of the baseline's probe prompts, ``per_request`` per request
   (``POST /v1/completions`` with the baseline's temperature and ``max_tokens``); the probe of request ``j``
   is drawn from ``keccak(seed, target, license, j)``, so anyone can repeat the choice;
2. embeddings: ``POST /v1/embeddings`` of the baseline's fixed inputs, when the baseline has them;
3. scores: each completion's log-probability under the reference model (the auditor's computation, recorded,
   so a verifier with the model can redo it and one without can still re-run every test).

Judgement (``evaluate``; pure given the bundle and the baseline):
- ``reachable``/``well_formed``: every request answered, with the right shape (choices of latin-1 text of
  ``max_tokens`` bytes, vectors of the right size);
- ``substitution``: Holm's combination, at the baseline's alpha, of the MMD two-sample test with a Hamming kernel
  (completions vs the baseline's reference samples of the same probes), the rank-uniformity test and the
  mean log-probability test (scores vs the reference samples' scores), and the behavioural rate tests of the
  checks whose probe was queried;
- ``embeddings``: the largest cosine distance to the reference vectors within the baseline's calibrated
  tolerance;
- ``drift``: a CUSUM over the per-completion normal scores of the randomized ranks, carried across epochs
  (state before this audit recorded; its false-alarm rate is bounded by its in-control run length).
Verdict: FAULT if a check failed, UNREACHABLE if nothing was answered, else OK.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..audits.http import GARBAGE, AuditHttpClient, call_with_retry, describe, last_attempts
from ..chain.keccak import keccak256
from ..protocol import FAULT, OK, UNREACHABLE, VERDICT_NAMES
from . import baseline as B

__all__ = ["ModelPolicy", "audit_target", "evaluate", "choose_probes", "completions_extractor",
           "embeddings_extractor"]

UNANSWERED = frozenset({"timeout", "refused", "reset", "http_error"})
MAX_CHOICES = 64


@dataclass(frozen=True)
class ModelPolicy:
    queries: int = 100  # completions per audit
    per_request: int = 10  # completions per request (the API's n)
    request_deadline_ms: int = 15_000
    max_response_bytes: int = 1 << 20
    permutations: int = 500
    retry_pause_ms: int = 200

    def judged(self) -> dict[str, int]:
        return asdict(self)


def choose_probes(seed: bytes, target_id: int, license_id: int, probes: int, requests: int) -> list[int]:
    """The probe of each request: ``keccak(seed, target, license, j) mod probes``."""
    out = []
    for j in range(requests):
        r = keccak256(seed + target_id.to_bytes(32, "big") + license_id.to_bytes(32, "big") + j.to_bytes(32, "big"))
        out.append(int.from_bytes(r, "big") % probes)
    return out


def completions_extractor(n: int, max_tokens: int):
    """Keeps the completions (hex of their latin-1 bytes) of an OpenAI completions answer with ``n`` choices."""

    def extract(r: Any) -> list[str]:
        if not isinstance(r, dict) or not isinstance(r.get("choices"), list):
            raise ValueError("no choices list")
        choices = r["choices"]
        if len(choices) != n:
            raise ValueError(f"{len(choices)} choices, asked for {n}")
        out = []
        for c in choices:
            text = c.get("text") if isinstance(c, dict) else None
            if not isinstance(text, str):
                raise ValueError("a choice without text")
            try:
                data = text.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("a completion that is not latin-1 text (bytes)") from None
            if len(data) > max_tokens:
                raise ValueError(f"a completion of {len(data)} bytes, max_tokens is {max_tokens}")
            out.append(data.hex())
        return out

    return extract


def embeddings_extractor(n: int, dim: int):
    def extract(r: Any) -> list[list[str]]:
        data = r.get("data") if isinstance(r, dict) else None
        if not isinstance(data, list) or len(data) != n:
            raise ValueError(f"embeddings: data is not a list of {n}")
        out = []
        for item in data:
            vec = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vec, list) or len(vec) != dim or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in vec):
                raise ValueError(f"an embedding that is not {dim} numbers")
            out.append([repr(float(x)) for x in vec])
        return out

    return extract


async def audit_target(target: dict, baseline: dict, baseline_hash: str, reference_model, seed: bytes,
                       license_id: int, policy: ModelPolicy, deadline_s: float, drift_state: dict | None,
                       epoch: int) -> dict[str, Any]:
    """Observe one target and return its bundle (judged)."""
    from . import lm

    t0 = time.monotonic()
    end = t0 + deadline_s * 0.9
    client = AuditHttpClient(request_deadline_s=policy.request_deadline_ms / 1000,
                             max_response_bytes=policy.max_response_bytes, max_connections=8, origin=t0)
    sampling = baseline["sampling"]
    max_tokens = int(sampling["max_tokens"])
    requests = max(1, policy.queries // policy.per_request)
    picks = choose_probes(seed, target["id"], license_id, len(baseline["probes"]), requests)
    observations: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    pause = policy.retry_pause_ms / 1000

    async def one(j: int, probe: int) -> None:
        prompt = baseline["probes"][probe]["prompt"]
        body = {"model": baseline["model"].get("served_name", baseline["model"]["family"]), "prompt": prompt, "max_tokens": max_tokens,
                "temperature": float(sampling["temperature"]), "n": policy.per_request}
        async with client.session(target["endpoint"]) as s:
            await call_with_retry(_Post(s, "/v1/completions", body), observations, values, f"complete:{j}",
                                  "POST /v1/completions", [probe], completions_extractor(policy.per_request,
                                                                                         max_tokens), end, pause)

    await asyncio.gather(*(one(j, p) for j, p in enumerate(picks)))
    emb = baseline.get("embedding")
    if emb:
        dim = len(emb["vectors"][0])
        async with client.session(target["endpoint"]) as s:
            await call_with_retry(_Post(s, "/v1/embeddings", {"model": emb["model"], "input": emb["inputs"]}),
                                  observations, values, "embed", "POST /v1/embeddings", [],
                                  embeddings_extractor(len(emb["inputs"]), dim), end, pause)

    completions = []  # (probe, hex)
    for j, probe in enumerate(picks):
        for h in values.get(f"complete:{j}") or []:
            completions.append([probe, h])
    scores = []
    if completions and reference_model is not None:
        prompts = [B.probe_bytes(baseline["probes"][p]["prompt"]) for p, _ in completions]
        texts = [bytes.fromhex(h) for _, h in completions]
        scores = [repr(x) for x in lm.logprob_batch(reference_model, prompts, texts)]
    bundle = {
        "version": 1, "kind": "MODEL", "epoch": epoch,
        "target": {"id": target["id"], "endpoint": target["endpoint"], "identity": target["identity"]},
        "baseline": baseline_hash, "policy": policy.judged(), "seed": "0x" + seed.hex(), "license": license_id,
        "observations": sorted(observations, key=lambda o: o["started_ms"]),
        "completions": completions, "scores": scores,
        "embeddings": values.get("embed"),
        # the CUSUM state as JSON text (its floats exact; evidence bundles carry no JSON floats)
        "drift_before": json.dumps(drift_state, sort_keys=True) if drift_state else None,
    }
    verdict, checks, drift_after = evaluate(bundle, baseline)
    bundle["checks"] = checks
    bundle["verdict"] = VERDICT_NAMES[verdict]
    bundle["drift_after"] = json.dumps(drift_after, sort_keys=True) if drift_after else None
    return bundle


class _Post:
    """Adapts ``Session.post_json`` to the ``call(method, params, extract, deadline)`` shape of call_with_retry."""

    def __init__(self, session, path: str, body: dict):
        self.session, self.path, self.body = session, path, body

    async def call(self, _method, params, extract, deadline_at):
        obs = await self.session.post_json(self.path, self.body, extract, deadline_at)
        obs["params"] = params
        return obs


def evaluate(bundle: dict[str, Any], baseline: dict[str, Any]) -> tuple[int, list[dict[str, Any]], dict | None]:
    """(verdict, checks, drift state after) a MODEL bundle supports against its baseline."""
    import numpy as np

    from . import drift as D
    from . import stats as S

    alpha = float(baseline["alpha"])
    policy = bundle["policy"]
    final = last_attempts(bundle["observations"])
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str, **extra: Any) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail, **extra})

    unanswered = [describe(o) for o in final.values() if o["status"] in UNANSWERED]
    bad = [describe(o) for o in final.values() if o["status"] in GARBAGE or o["status"] == "rpc_error"]
    check("reachable", bool(final) and not unanswered, "; ".join(unanswered) or f"{len(final)} requests answered")
    check("well_formed", not bad if final else None, "; ".join(bad) or "every answer well-formed")

    completions = [(int(p), bytes.fromhex(h)) for p, h in bundle["completions"]]
    ref = baseline["reference"]
    drift_after = json.loads(bundle["drift_before"]) if bundle.get("drift_before") else None
    if len(completions) < 10:
        check("substitution", None, f"{len(completions)} completions: too few to test")
        check("drift", None, "no completions")
    else:
        seed = int(bundle["seed"], 16) % (1 << 63)
        probes = sorted({p for p, _ in completions})
        reference = [(p, bytes.fromhex(h)) for p in probes for h in ref["completions"][str(p)]]
        tests = [S.mmd_hamming_test(completions, reference, alpha=alpha, permutations=policy["permutations"],
                                    seed=seed, length=int(baseline["sampling"]["max_tokens"]))]
        if bundle["scores"]:
            provider = [(p, float(s)) for (p, _), s in zip(completions, bundle["scores"])]
            ref_scores = {p: [float(x) for x in ref["scores"][str(p)]] for p in probes}
            tests.append(S.rank_uniformity_test(provider, ref_scores, alpha=alpha, seed=seed))
            tests.append(S.mean_logprob_test(provider, ref_scores, alpha=alpha))
        for c in baseline["behaviour"]["checks"]:
            got = [t for p, t in completions if p == c["probe"]]
            if len(got) >= 5:
                k, n = baseline["behaviour"]["rates"][c["id"]]
                passed = sum(B.completion_ok(c["kind"], c["arg"], t) for t in got)
                tests.append(S.rate_test(passed, len(got), k / n, n, alpha=alpha))
        joint = S.combine(tests, alpha)
        names = [t.test for t in tests]
        check("substitution", not joint.reject,
              f"Holm over {', '.join(names)}: joint p {joint.p_value:.3g} (alpha {alpha}); "
              + ", ".join(f"{t.test} p {t.p_value:.3g}" for t in tests),
              tests=[t.to_evidence() for t in tests], joint=joint.to_evidence())
        if bundle["scores"]:
            u = S.rank_scores(provider, ref_scores, seed=seed)
            monitor = (D.DriftMonitor.from_state(json.loads(bundle["drift_before"])) if bundle.get("drift_before")
                       else D.DriftMonitor("cusum"))
            alarms = monitor.update_many(D.normal_scores(np.asarray(u).reshape(-1)).tolist())
            drift_after = monitor.state()
            check("drift", not alarms,
                  f"CUSUM over {len(u)} completions: " + (f"alarm at completion {alarms[0]}" if alarms
                                                           else "no alarm"))
        else:
            check("drift", None, "no reference scores")

    emb = baseline.get("embedding")
    if emb and bundle.get("embeddings"):
        res = S.embedding_test(np.asarray(bundle["embeddings"], dtype=float),
                               np.asarray(emb["vectors"], dtype=float), float(emb["tolerance"]))
        check("embeddings", not res.reject, f"largest cosine distance {res.statistic:.3g}, tolerance "
                                            f"{float(emb['tolerance']):.3g}", test=res.to_evidence())
    else:
        check("embeddings", None, "not observed" if emb else "the baseline has no embeddings")

    if any(c["ok"] is False for c in checks[1:]):
        return FAULT, checks, drift_after
    if checks[0]["ok"] is False and not completions:
        return UNREACHABLE, checks, drift_after
    if checks[0]["ok"] is False:
        return UNREACHABLE, checks, drift_after
    return OK, checks, drift_after
