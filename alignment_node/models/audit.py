"""MODEL audit: is the target serving the model its baseline registers, and has its behaviour drifted?

Runs in the model-audit worker process (``models.worker``), never in the core node. ``audit_target`` observes
one target (probe completions with their served log-probabilities, fresh prompts, embeddings), scores the
completions with the reference model and returns the judged evidence bundle; ``evaluate(bundle, baseline) ->
(verdict, checks, drift state after)`` is the judgement, pure given the bundle and the baseline (checks
``reachable``, ``well_formed``, ``substitution``, ``logprobs``, ``embeddings``, ``drift``). Helpers:
``ModelPolicy``, ``choose_probes``, ``fresh_prompts``, ``completions_extractor``, ``embeddings_extractor``,
``logprob_gap``. The audit's steps and checks, and why: docs/models.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..audits.base import UNANSWERED
from ..audits.http import GARBAGE, AuditHttpClient, call_with_retry, describe, last_attempts
from ..chain.keccak import keccak256
from ..protocol import FAULT, OK, UNREACHABLE, VERDICT_NAMES
from . import baseline as B

__all__ = ["ModelPolicy", "audit_target", "evaluate", "choose_probes", "completions_extractor",
           "embeddings_extractor", "fresh_prompts", "logprob_gap"]

MAX_CHOICES = 64


@dataclass(frozen=True)
class ModelPolicy:
    queries: int = 100  # completions per audit
    per_request: int = 10  # completions per request (the API's n)
    fresh: int = 4  # requests of one completion of a never-seen prompt
    fresh_prompt_bytes: int = 24
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


def fresh_prompts(reference_model, seed: bytes, target_id: int, license_id: int, count: int,
                  length: int) -> list[bytes]:
    """``count`` prompts of ``length`` bytes the reference model writes after a newline, each from a generator
    seeded with ``keccak(seed, target, license, "fresh", j)``."""
    import torch

    from . import lm

    out = []
    for j in range(count):
        r = keccak256(seed + target_id.to_bytes(32, "big") + license_id.to_bytes(32, "big") + b"fresh"
                      + j.to_bytes(32, "big"))
        gen = torch.Generator().manual_seed(int.from_bytes(r[:8], "big") >> 1)
        text, _ = lm.sample(reference_model, b"\n", length, 1.0, gen)
        out.append(b"\n" + text)
    return out


def logprob_gap(served: list[list[str]], reference: list[list[str]]) -> tuple[float, int, int]:
    """(largest |served - reference| over every byte, its row, its byte); inf where a row's lengths differ."""
    worst, at = 0.0, (-1, -1)
    for i, (a, b) in enumerate(zip(served, reference)):
        if len(a) != len(b):
            return float("inf"), i, -1
        for k, (x, y) in enumerate(zip(a, b)):
            d = abs(float(x) - float(y))
            if not d <= worst:  # NaN counts as the worst
                worst, at = (d if d == d else float("inf")), (i, k)
    if len(served) != len(reference):
        return float("inf"), min(len(served), len(reference)), -1
    return worst, at[0], at[1]


def completions_extractor(n: int, max_tokens: int, logprobs: bool = False):
    """Keeps the completions (hex of their latin-1 bytes) of an OpenAI completions answer with ``n`` choices;
    with ``logprobs``, pairs [hex, [log-probability of each byte, as repr strings]]."""

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
            if not logprobs:
                out.append(data.hex())
                continue
            lp = c.get("logprobs")
            lps = lp.get("token_logprobs") if isinstance(lp, dict) else None
            if not isinstance(lps, list) or len(lps) != len(data) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and x <= 0 for x in lps):
                raise ValueError("logprobs.token_logprobs is not one log-probability (<= 0) per returned byte")
            out.append([data.hex(), [repr(float(x)) for x in lps]])
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

    served_name = baseline["model"].get("served_name", baseline["model"]["family"])
    fresh = (fresh_prompts(reference_model, seed, target["id"], license_id, policy.fresh, policy.fresh_prompt_bytes)
             if reference_model is not None and policy.fresh > 0 else [])

    async def one(key: str, prompt: str, n: int, params: list) -> None:
        body = {"model": served_name, "prompt": prompt, "max_tokens": max_tokens,
                "temperature": float(sampling["temperature"]), "n": n, "logprobs": 0}
        async with client.session(target["endpoint"]) as s:
            await call_with_retry(_Post(s, "/v1/completions", body), observations, values, key,
                                  "POST /v1/completions", params, completions_extractor(n, max_tokens, True), end,
                                  pause)

    await asyncio.gather(*(one(f"complete:{j}", baseline["probes"][p]["prompt"], policy.per_request, [p])
                           for j, p in enumerate(picks)),
                         *(one(f"fresh:{j}", f.decode("latin-1"), 1, ["fresh", j]) for j, f in enumerate(fresh)))
    emb = baseline.get("embedding")
    if emb:
        dim = len(emb["vectors"][0])
        async with client.session(target["endpoint"]) as s:
            await call_with_retry(_Post(s, "/v1/embeddings", {"model": emb["model"], "input": emb["inputs"]}),
                                  observations, values, "embed", "POST /v1/embeddings", [],
                                  embeddings_extractor(len(emb["inputs"]), dim), end, pause)

    completions, served = [], []  # [probe, hex], [per-byte log-probability]
    for j, probe in enumerate(picks):
        for h, lps in values.get(f"complete:{j}") or []:
            completions.append([probe, h])
            served.append(lps)
    fresh_rows = []  # [prompt hex, completion hex]
    for j, f in enumerate(fresh):
        for h, lps in values.get(f"fresh:{j}") or []:
            fresh_rows.append([f.hex(), h])
            served.append(lps)
    scores, reference = [], []
    if (completions or fresh_rows) and reference_model is not None:
        prompts = ([B.probe_bytes(baseline["probes"][p]["prompt"]) for p, _ in completions]
                   + [bytes.fromhex(p) for p, _ in fresh_rows])
        texts = [bytes.fromhex(h) for _, h in completions + fresh_rows]
        per_byte = lm.token_logprobs_batch(reference_model, prompts, texts)
        reference = [[repr(x) for x in row] for row in per_byte]
        scores = [repr(float(sum(row))) for row in per_byte[:len(completions)]]
    bundle = {
        "version": 1, "kind": "MODEL", "epoch": epoch,
        "target": {"id": target["id"], "endpoint": target["endpoint"], "identity": target["identity"]},
        "baseline": baseline_hash, "policy": policy.judged(), "seed": "0x" + seed.hex(), "license": license_id,
        "observations": sorted(observations, key=lambda o: o["started_ms"]),
        "completions": completions, "scores": scores, "fresh": fresh_rows,
        # per-byte log-probabilities of completions + fresh, in that order: as served, and the reference's
        "logprobs": {"served": served, "reference": reference},
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
            detector = (D.DriftDetector.from_state(json.loads(bundle["drift_before"])) if bundle.get("drift_before")
                        else D.CUSUM())
            alarms = detector.update_many(D.normal_scores(np.asarray(u).reshape(-1)).tolist())
            drift_after = detector.state()
            check("drift", not alarms,
                  f"CUSUM over {len(u)} completions: " + (f"alarm at completion {alarms[0]}" if alarms
                                                           else "no alarm"))
        else:
            check("drift", None, "no reference scores")

    lp, tol = bundle.get("logprobs") or {}, (baseline.get("logprobs") or {}).get("tolerance")
    if tol is None:
        check("logprobs", None, "the baseline has no log-probability tolerance")
    elif not lp.get("served") or not lp.get("reference"):
        check("logprobs", None, "no served or reference log-probabilities")
    else:
        gap, row, byte = logprob_gap(lp["served"], lp["reference"])
        n_probe = len(bundle["completions"])
        where = (f"fresh completion {row - n_probe}" if row >= n_probe else f"completion {row}") + (
            f" byte {byte}" if byte >= 0 else ": lengths differ")
        check("logprobs", gap <= float(tol),
              f"largest |served - reference| per-byte log-probability {gap:.3g} ({where}), tolerance "
              f"{float(tol):.3g}, over {len(lp['served'])} completions ({len(bundle.get('fresh') or [])} of fresh "
              "prompts)", statistic=repr(gap), tolerance=tol)

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
