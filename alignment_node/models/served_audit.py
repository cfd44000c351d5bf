"""MODEL audit of a served chat model by an auditor that holds no weights (version-2 baselines, ``models.keeper``).

Runs in the model-audit worker (``models.worker``) without torch: numpy and scipy only, through
``models.blackbox``. ``audit_served(target, baseline, seed, license_id, policy, deadline_s, state, epoch=0)``
observes one target over HTTP with the bounded audit client (``audits.http``) and returns its judged bundle;
``evaluate_served(bundle, baseline) -> (verdict, checks, state after)`` is the judgement, pure given the bundle
and the baseline (``verify-evidence`` re-runs it). Per audit:

1. LT: each of the baseline's fixed short chat prompts once (``max_tokens`` 1, ``logprobs``, ``top_logprobs``
   k); the first-token top-k is the fingerprint. It is compared with the keeper's fingerprint of the registered
   weights (``lt_reference``) and with the provider's own snapshot, taken by the first audit of the target
   and kept in the per-target state (``lt_drift``); both within the baseline's tolerance, calibrated on the
   benign serving setups (a calibrated threshold: no p-value, it spends none of alpha);
2. fresh prompts: ``policy.queries`` chat requests of one completion each, prompts drawn from the baseline's
   families by ``keccak(seed, target, license, "served", family)`` (``blackbox.family_prompts``), sampled at the
   baseline's temperature with ``logprobs`` and ``top_logprobs`` k. Each answer is reduced as it arrives to its
   text and, per generated token, one string ``"<category>:<logprob>:<top-k logprobs>"`` (the sampled
   token's index in the served top-k, -1 outside): all the tests need, a tenth of the JSON;
3. TEE (when the baseline has ``tee``): each completion's signature (``/v1/proxy/signature/{id}``, a 404
   retried for ``signature_wait_ms``) checked with ``tee.check_exchange`` over the exact bytes sent and
   received (the bundle keeps both SHA-256 and the signature, so the check repeats), and the attestation
   report (``/v1/proxy/attestation/report?nonce=``, the nonce from the seed) with ``tee.verify_report``.

Checks: ``reachable``, ``well_formed`` (as ``models.audit``), ``tee`` (exact), ``lt_reference``, ``lt_drift``,
``sampling`` (``blackbox.sampling_consistency_test`` of every served position at the claimed temperature) and
``identity`` (``blackbox.identity_test`` of the completions against the keeper's reference scores), the last
two combined with the LT and TEE results by ``blackbox.joint_decision`` at the baseline's alpha (check
``joint``). Verdict: FAULT if a check failed, UNREACHABLE if nothing was answered, else OK.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..audits.base import answer_checks
from ..audits.http import GARBAGE, AuditHttpClient, classify_json, last_attempts
from ..chain.keccak import keccak256
from ..protocol import FAULT, OK, UNREACHABLE, VERDICT_NAMES

__all__ = ["ServedPolicy", "audit_served", "evaluate_served", "draw_prompts", "chat_extractor", "lt_extractor",
           "decode_position"]

MAX_TOP = 20
MAX_TEXT_CHARS_PER_TOKEN = 64
MAX_REPORT_CHARS = 64 * 1024


@dataclass(frozen=True)
class ServedPolicy:
    queries: int = 100  # fresh family prompts, one completion each
    concurrency: int = 4  # connections per target
    request_deadline_ms: int = 15_000
    max_response_bytes: int = 1 << 20
    retry_pause_ms: int = 200
    signature_wait_ms: int = 2_000

    @classmethod
    def from_dict(cls, data: dict | None) -> "ServedPolicy":
        """The fields of ``data`` this policy knows (a node's MODEL policy may carry version-1 fields too)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in (data or {}).items() if k in names})

    def judged(self) -> dict[str, int]:
        return asdict(self)


def _h(*parts: bytes) -> bytes:
    return keccak256(b"".join(parts))


def draw_prompts(baseline: dict, seed: bytes, target_id: int, license_id: int, queries: int) -> list[tuple[str, str]]:
    """``[(family, prompt)]``: ``queries`` prompts split evenly over the baseline's families, each family's drawn
    by ``keccak(seed, target, license, "served", family name)``."""
    from . import blackbox as BB

    fams = baseline["families"]
    out = []
    for i, f in enumerate(fams):
        n = queries // len(fams) + (1 if i < queries % len(fams) else 0)
        if n == 0:
            continue
        fam = BB.PromptFamily(f["name"], f["template"], {k: tuple(v) for k, v in f["slots"].items()})
        fam_seed = _h(seed, target_id.to_bytes(32, "big"), license_id.to_bytes(32, "big"), b"served/",
                      f["name"].encode())
        out += [(f["name"], p) for p in BB.family_prompts(fam, fam_seed, min(n, fam.size()))]
    return out


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not x <= 1e-6:  # NaN fails too
        raise ValueError(f"{where}: logprob is not a number <= 0")
    return min(float(x), 0.0)


def _top(entry: Any, k: int, where: str) -> list[tuple[str, float, Any]]:
    tops = entry.get("top_logprobs") if isinstance(entry, dict) else None
    if not isinstance(tops, list) or len(tops) != k:
        raise ValueError(f"{where}: top_logprobs is not a list of {k}")
    out = []
    for i, t in enumerate(tops):
        if not isinstance(t, dict) or not isinstance(t.get("token"), str):
            raise ValueError(f"{where}: top_logprobs[{i}] without a token")
        out.append((t["token"], _number(t.get("logprob"), f"{where}.top_logprobs[{i}]"), t.get("bytes")))
    return out


def _choice(r: Any) -> dict:
    if not isinstance(r, dict) or not isinstance(r.get("choices"), list):
        raise ValueError("no choices list")
    if len(r["choices"]) != 1:
        raise ValueError(f"{len(r['choices'])} choices, asked for 1")
    c = r["choices"][0]
    msg = c.get("message") if isinstance(c, dict) else None
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
        raise ValueError("a choice without message.content text")
    lp = c.get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list) or not content:
        raise ValueError("logprobs.content is not a non-empty list")
    return {"text": msg["content"], "content": content}


def lt_extractor(k: int):
    """Keeps the first position's top-k of a chat answer: ``[[token, repr(logprob)], ...]``, best first."""

    def extract(r: Any) -> list[list[str]]:
        c = _choice(r)
        if len(c["content"]) > 1:
            raise ValueError(f"{len(c['content'])} tokens, max_tokens is 1")
        return [[t, repr(lp)] for t, lp, _ in _top(c["content"][0], k, "logprobs.content[0]")]

    return extract


def chat_extractor(max_tokens: int, k: int):
    """Reduces a chat answer to ``{"id", "text", "positions"}``: per generated token one string
    ``"<i>:<logprob>:<top-k logprobs, comma-separated>"``, ``i`` the sampled token's index in the top-k (matched
    by its bytes when served, else by its text; -1 outside)."""

    def extract(r: Any) -> dict[str, Any]:
        c = _choice(r)
        content = c["content"]
        if len(content) > max_tokens:
            raise ValueError(f"{len(content)} tokens, max_tokens is {max_tokens}")
        if len(c["text"]) > MAX_TEXT_CHARS_PER_TOKEN * max_tokens:
            raise ValueError(f"a completion of {len(c['text'])} characters for {max_tokens} tokens")
        positions = []
        for i, e in enumerate(content):
            where = f"logprobs.content[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("token"), str):
                raise ValueError(f"{where}: no token")
            lp = _number(e.get("logprob"), where)
            top = _top(e, k, where)
            key = e.get("bytes")
            cat = -1
            for j, (tok, _, b) in enumerate(top):
                if (b == key) if (isinstance(key, list) and isinstance(b, list)) else tok == e["token"]:
                    cat = j
                    break
            positions.append(f"{cat}:{lp!r}:" + ",".join(repr(v) for _, v, _ in top))
        cid = r.get("id")
        return {"id": cid if isinstance(cid, str) and len(cid) <= 200 else None, "text": c["text"],
                "positions": positions}

    return extract


def decode_position(text: str) -> tuple[str, float, list[tuple[str, float]]]:
    """A reduced position as ``blackbox.parse_position`` takes it (tokens named ``#00``, ``#01``, ... by rank)."""
    cat, lp, tops = text.split(":", 2)
    top = [(f"#{j:02d}", float(v)) for j, v in enumerate(tops.split(","))]
    c = int(cat)
    return (top[c][0] if 0 <= c < len(top) else "#out", float(lp), top)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _with_retry(attempt, record: list, call: str, end: float, pause: float):
    """One named call, retried once after a transient failure; every attempt recorded. The last observation."""
    for n in (1, 2):
        obs = await attempt()
        obs["call"], obs["attempt"] = call, n
        record.append(obs)
        if obs["status"] == "ok" or obs["status"] in GARBAGE or n == 2:
            return obs
        wait = min(pause, end - time.monotonic())
        if wait <= 0:
            return obs
        await asyncio.sleep(wait)
    return obs  # pragma: no cover


async def audit_served(target: dict, baseline: dict, seed: bytes, license_id: int, policy: ServedPolicy,
                       deadline_s: float, state: dict | None, epoch: int = 0) -> dict[str, Any]:
    """Observe one target (module docstring) and return its judged bundle; ``bundle["state_after"]`` is the
    per-target state to keep (JSON text: the provider's LT snapshot)."""
    from . import tee as T

    t0 = time.monotonic()
    end = t0 + deadline_s * 0.9
    client = AuditHttpClient(request_deadline_s=policy.request_deadline_ms / 1000,
                             max_response_bytes=policy.max_response_bytes, max_connections=policy.concurrency,
                             origin=t0)
    s = baseline["sampling"]
    max_tokens, k, temperature = int(s["max_tokens"]), int(s["top_logprobs"]), float(s["temperature"])
    lt = baseline["lt"]
    served_name = baseline["model"]["served_name"]
    tee_claim = baseline.get("tee")
    pause = policy.retry_pause_ms / 1000
    observations: list[dict[str, Any]] = []
    lt_tops: dict[str, Any] = {}
    prompts = draw_prompts(baseline, seed, int(target["id"]), license_id, policy.queries)
    completions: list[dict[str, Any] | None] = [None] * len(prompts)

    jobs: asyncio.Queue = asyncio.Queue()
    for i, p in enumerate(lt["prompts"]):
        jobs.put_nowait(("lt", i, p))
    for j, (fam, p) in enumerate(prompts):
        jobs.put_nowait(("chat", j, p))

    async def signature(session, chat_id: str | None) -> tuple[dict | None, dict]:
        """(signature record or None, what was seen) for one chatID, retrying a 404 briefly."""
        if not chat_id:
            return None, {"status": "no chat id"}
        path = "/v1/proxy/signature/" + "".join(c for c in chat_id if c.isalnum() or c in "-_")
        stop = min(end, time.monotonic() + policy.signature_wait_ms / 1000)
        tries = 0
        while True:
            tries += 1
            obs = await session.get(path, lambda st, b: classify_json(st, b), end)
            if obs["status"] == "ok":
                rec = obs.get("result")
                if isinstance(rec, dict):
                    rec = {key: rec.get(key) for key in ("text", "signature", "signing_address", "signing_algo")
                           if isinstance(rec.get(key), str) and len(rec[key]) <= 400}
                return rec, {"status": "ok", "tries": tries}
            if obs.get("http_status") != 404 or time.monotonic() + 0.1 > stop:
                return None, {"status": obs["status"], "http_status": obs.get("http_status"), "tries": tries}
            await asyncio.sleep(0.1)

    async def one(kind: str, i: int, prompt: str, session) -> None:
        body = {"model": served_name, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 1 if kind == "lt" else max_tokens, "temperature": temperature,
                "logprobs": True, "top_logprobs": k}
        raw = json.dumps(body, separators=(",", ":")).encode()
        extract = lt_extractor(k) if kind == "lt" else chat_extractor(max_tokens, k)
        got: dict[str, bytes] = {}

        def classify(status: int, data: bytes) -> dict[str, Any]:
            got["body"] = data
            obs = classify_json(status, data, extract)
            obs["sha256"] = _sha(data)
            return obs

        path = "/v1/chat/completions"
        obs = await _with_retry(lambda: session.post_body(path, raw, classify, end), observations,
                                f"{kind}:{i}", end, pause)
        obs["params"] = [kind, i]
        result = obs.pop("result", None)
        if obs["status"] != "ok":
            return
        if kind == "lt":
            lt_tops[prompt] = result
        else:
            row = {"family": prompts[i][0], "prompt": prompt, "text": result["text"],
                   "positions": result["positions"]}
            if tee_claim:
                sig, seen = await signature(session, result["id"])
                why = T.check_exchange(raw, got["body"], sig, tee_claim["signer"])
                row["tee"] = {"request_sha256": _sha(raw), "response_sha256": obs["sha256"], "signature": sig,
                              "seen": seen, "reason": why}
            completions[i] = row
        got.clear()

    async def runner() -> None:
        async with client.session(target["endpoint"]) as session:
            while not jobs.empty():
                job = jobs.get_nowait()
                await one(*job, session)

    # the attestation report first: an audit that runs out of time must not lose it
    report = None
    if tee_claim:
        nonce = _h(seed, int(target["id"]).to_bytes(32, "big"), license_id.to_bytes(32, "big"), b"tee-nonce").hex()

        def keep_text(st: int, data: bytes) -> dict[str, Any]:
            obs = classify_json(st, data, lambda v: json.dumps(v, sort_keys=True)[:MAX_REPORT_CHARS + 1])
            obs["sha256"] = _sha(data)
            return obs

        async with client.session(target["endpoint"]) as session:
            obs = await _with_retry(lambda: session.get(f"/v1/proxy/attestation/report?nonce={nonce}", keep_text, end),
                                    observations, "tee:report", end, pause)
        text = obs.pop("result", None)
        report = {"nonce": nonce, "status": obs["status"], "http_status": obs.get("http_status"),
                  "sha256": obs.get("sha256"), "size": obs.get("size"),
                  "report": text if isinstance(text, str) and len(text) <= MAX_REPORT_CHARS else None}
    await asyncio.gather(*(runner() for _ in range(max(1, policy.concurrency))))
    bundle = {
        "version": 2, "kind": "MODEL_SERVED", "epoch": epoch,
        "target": {"id": target["id"], "endpoint": target["endpoint"], "identity": target["identity"]},
        "baseline": target["identity"], "policy": policy.judged(), "seed": "0x" + seed.hex(), "license": license_id,
        "observations": sorted(observations, key=lambda o: (o["started_ms"], o["call"])),
        "lt": {p: lt_tops[p] for p in sorted(lt_tops)},
        "lt_snapshot_before": json.dumps(state["lt_snapshot"], sort_keys=True) if state and state.get("lt_snapshot")
        else None,
        "completions": [c for c in completions if c is not None],
        "tee_report": report,
        "elapsed_ms": int((time.monotonic() - t0) * 1000),
    }
    verdict, checks, state_after = evaluate_served(bundle, baseline)
    bundle["checks"] = checks
    bundle["verdict"] = VERDICT_NAMES[verdict]
    bundle["state_after"] = json.dumps(state_after, sort_keys=True) if state_after else None
    return bundle


def _cut_by_budget(final: dict[str, dict[str, Any]], policy: dict[str, Any], completions: int) -> set[str]:
    """The chat calls that timed out only because the audit's own time budget ended (given less than the policy's
    per-request deadline, or none): the auditor's shortfall, not the provider's, as long as at least half of the
    policy's completions arrived (else they count, and the audit is UNREACHABLE)."""
    full = int(policy.get("request_deadline_ms", 0))
    if completions < max(10, int(policy.get("queries", 0)) // 2):
        return set()
    return {c for c, o in final.items() if c.startswith("chat:") and o["status"] == "timeout"
            and int(o.get("allowed_ms", full)) < full * 0.99}


def _definitely_unsigned(seen) -> bool:
    """Whether the provider answered the signature request and served none (a 404 after the wait, or an answer
    that is not a signature record), rather than the request failing in transit."""
    if not isinstance(seen, dict):
        return True
    return seen.get("status") == "ok" or seen.get("http_status") == 404 or seen.get("status") in GARBAGE


def _tee_reason(row: dict, signer: str) -> str | None:
    """``tee.check_exchange`` of one completion from what the bundle keeps (the two SHA-256 and the signature)."""
    from . import tee as T

    t = row.get("tee")
    if not isinstance(t, dict):
        return "no TEE evidence for the completion"
    if t.get("signature") is None and not _definitely_unsigned(t.get("seen")):
        return None  # not fetched (timeout, connection): unverified, not a fault (the call is in the observations)
    rec, why = T.parse_signature_json(t.get("signature"))
    if why:
        return why
    got = T.recover_signer(rec["text"], rec["signature"])
    if got is None:
        return "malformed signature (not 65 bytes of hex with v 27/28 and a low s)"
    if got != signer.lower():
        return f"the response is signed by {got}, not by the registered TEE signer {signer.lower()}"
    if rec["text"] != f"{t.get('request_sha256')}:{t.get('response_sha256')}":
        return f"the signature covers other bytes (signed text {rec['text'][:140]!r})"
    return None


def evaluate_served(bundle: dict[str, Any], baseline: dict[str, Any]) -> tuple[int, list[dict[str, Any]], dict | None]:
    """(verdict, checks, state after) a version-2 MODEL bundle supports against its (version-2) baseline."""
    from . import blackbox as BB
    from . import tee as T

    alpha = float(baseline["alpha"])
    final = last_attempts(bundle["observations"])
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str, **extra: Any) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail, **extra})

    rows = bundle["completions"]
    cut = _cut_by_budget(final, bundle.get("policy") or {}, len(rows))
    answer_checks({c: o for c, o in final.items() if c not in cut}, check)
    if cut:
        checks[0]["detail"] += (f"; {len(cut)} requests cut short by the audit's own time budget (not counted: "
                                f"{len(rows)} completions judged)")
        checks[0]["cut_by_budget"] = len(cut)

    seed = int(bundle["seed"], 16) % (1 << 63)
    # TEE: exact, alpha 0
    tee_ok = None
    claim = baseline.get("tee")
    if claim:
        problems = [f"completion {i}: {w}" for i, r in enumerate(rows) if (w := _tee_reason(r, claim["signer"]))]
        rep = bundle.get("tee_report") or {}
        unverified = sum(1 for r in rows if isinstance(r.get("tee"), dict) and r["tee"].get("signature") is None
                         and not _definitely_unsigned(r["tee"].get("seen")))
        if rep.get("report") is None:
            if rep.get("status") in GARBAGE or rep.get("status") == "ok":
                problems.append(f"attestation report: {rep.get('status')}")
            elif rep.get("status") == "http_error" and rep.get("http_status") not in (None, 429, 502, 503, 504):
                problems.append(f"attestation report: HTTP {rep.get('http_status')}")
            else:  # not fetched (timeout, connection): the observations carry it, the verdict is not a TEE FAULT
                unverified += 1
        else:
            why = T.verify_report(rep["report"], claim["signer"], claim["measurement"], claim["roots"],
                                  rep.get("nonce"))
            if why:
                problems.append(f"attestation report: {why}")
        tee_ok = False if problems else (None if unverified or not rows else True)
        check("tee", tee_ok, "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
              or (f"{unverified} signatures or the report not fetched (see the observations); the rest verified"
                  if unverified else
                  f"{len(rows)} signatures by {claim['signer']} and the attestation report verified"),
              failures=len(problems), unverified=unverified)
    else:
        check("tee", None, "the baseline claims no TEE")

    # LT: calibrated tolerance, no p-value
    lt = baseline["lt"]
    threshold = float(lt["threshold"])
    layers: dict[str, Any] = {}
    state_after = None
    current = None
    if bundle["lt"] and len(bundle["lt"]) == len(lt["prompts"]):
        current = BB.lt_fingerprint({p: [(t, float(v)) for t, v in top] for p, top in bundle["lt"].items()})
    before = json.loads(bundle["lt_snapshot_before"]) if bundle.get("lt_snapshot_before") else None
    if current is None:
        check("lt_reference", None, f"{len(bundle['lt'])} of {len(lt['prompts'])} fingerprint prompts answered")
        check("lt_drift", None, "no fingerprint")
        state_after = {"lt_snapshot": before} if before else None
    else:
        lt_results = []
        for name, other, label in (("lt_reference", BB.Fingerprint.from_dict(lt["reference"]), "the keeper's"),
                                   ("lt_drift", BB.Fingerprint.from_dict(before) if before else None,
                                    "the provider's onboarding snapshot")):
            if other is None:
                check(name, None, "first audit of the target: its fingerprint is the snapshot")
                continue
            d = BB.lt_distance(other, current)
            res = BB.StatResult(test=name, statistic=d, p_value=None, alpha=alpha, n=len(lt["prompts"]),
                                reject=d > threshold, params={"threshold": threshold},
                                details={"benign_max": float(lt["benign_max"])})
            lt_results.append(res)
            check(name, not res.reject, f"LT distance to {label} fingerprint {d:.4g}, tolerance {threshold:.4g} "
                                        f"(benign max {float(lt['benign_max']):.3g})", test=res.to_evidence())
        if lt_results:
            layers["drift"] = lt_results
        ref_ok = next((c["ok"] for c in checks if c["name"] == "lt_reference"), None)
        snap = before or (current.to_dict() if ref_ok else None)
        state_after = {"lt_snapshot": snap} if snap else None

    # sampling consistency and identity: p-values, joint alpha
    positions = [decode_position(p) for r in rows for p in r["positions"]]
    cons = baseline["consistency"]
    temperature = float(baseline["sampling"]["temperature"])
    level = alpha / 2  # joint_decision's share of each of the two layers with p-values
    if positions:
        sc = BB.sampling_consistency_test(positions, temperature, level, seed=seed,
                                          simulations=int(cons["simulations"]), statistic=cons["statistic"],
                                          reported=cons["reported"])
        layers["sampling"] = sc
    else:
        check("sampling", None, "no served positions")
    del positions
    ident = baseline["identity"]
    if len(rows) >= 10:
        provider: dict[str, list] = {}
        for r in rows:
            provider.setdefault(r["family"], []).append(
                {"text": r["text"], "logprobs": [decode_position(p) for p in r["positions"]]})
        reference = {f: [{"text": s["text"], "scores": [float(x) for x in s["scores"]]}
                         for s in baseline["reference"]["samples"][f]] for f in provider}
        idt = BB.identity_test(provider, reference, level, seed=seed, permutations=int(ident["permutations"]),
                               length=int(ident["length"]))
        del provider, reference
        layers["identity"] = idt
    else:
        check("identity", None, f"{len(rows)} completions: too few to test")
    joint = BB.joint_decision(layers, alpha, tee=tee_ok) if layers or tee_ok is not None else None
    fired = set(joint.details["fired"]) if joint else set()
    if "sampling" in layers:
        sc = layers["sampling"]
        check("sampling", "sampling" not in fired,
              f"sampling consistency at T={temperature}: {sc.n} positions, p {sc.p_value:.3g} (level {level:.3g}), "
              f"tokens {sc.details['direction']} than claimed", test=sc.to_evidence())
    if "identity" in layers:
        idt = layers["identity"]
        check("identity", "identity" not in fired,
              f"identity vs the keeper's reference: {idt.n} completions of {', '.join(idt.details['families'])}, "
              f"p {idt.p_value:.3g} (level {level:.3g})", test=idt.to_evidence())
    if joint is not None:
        check("joint", not joint.reject, f"fired: {', '.join(joint.details['fired']) or 'none'}; joint p "
                                         f"{joint.p_value:.3g} (alpha {alpha})", test=joint.to_evidence())
    if any(c["ok"] is False for c in checks[1:]):
        return FAULT, checks, state_after
    if checks[0]["ok"] is False:
        return UNREACHABLE, checks, state_after
    return OK, checks, state_after
