"""The referee of served-model audits (issue 14): an operator that holds the registered weights re-scores the
completions other auditors recorded in their version-2 evidence (``models.served_audit``) after the reveal
window, batched per baseline. Needs torch (the referee runs the model); docs/protocol.md "The referee duty".

API:

- ``load_registered(baseline, *, train=False) -> tokenlm.TokenLM``: the weights a v2 baseline names (seed, size,
  steps, from ``tokenlm``'s cache), refused (``RefereeError``) unless their SHA-256, the tokenizer's and the chat
  template's version are the baseline's;
- ``referee_test(model, completions, alpha, seed, *, temperature=1.0, samples=SAMPLES, max_tokens=24) ->
  stats.StatResult``: the referee's test of pooled completions (``{"family", "prompt", "text", "positions"}``
  as in a bundle), three tests combined by Holm (a Bonferroni step-down, valid under any dependence) at
  ``alpha``:

  (a) re-scoring, where logprobs were served. Each completion's text is re-tokenized (the chat prompt by
      ``tokenlm.encode_chat``, the text by the tokenizer with special-token strings as text), ``<|end|>``
      appended when there is one more served position than text tokens (the stop token, vLLM style); a text
      whose token count is neither is counted and skipped. The registered model is teacher-forced (float32)
      and each position compared with the served one: the sorted top-k log-probabilities, and whether the
      re-tokenized token is consistent with the served logprob and rank. The first position that is not is
      either a benign divergence (the server sampled another segmentation of the same text: some other token
      whose bytes start the rest of the text has the served logprob and rank, the top-k still matching; or
      the stop token was another special token) after which the completion is no longer compared, or a
      mismatch: the completion is *flagged*. Position 0 follows the prompt alone, so a substitute is flagged
      there. Two p-values: ``flags`` (one-sided binomial of the flagged completions against
      ``FLAG_RATE_BOUND``) and ``drift`` (sign test: is the median over completions of the mean absolute
      top-k error above ``DRIFT_TOLERANCE``?). Their nulls are calibrated on the benign setups (below).
  (b) ``rut`` (rank uniformity): each completion's registered log-likelihood ranked among ``samples`` fresh
      samples of the registered model for the same prompt at the claimed temperature and ``max_tokens``,
      scored by the same function of (text, served position count): the re-tokenized text's log-likelihood
      (plus ``<|end|>`` when stopped), a text whose re-tokenization does not fit its count scoring below every
      other. Exact under H0 (the served completion and the samples are i.i.d.), an Anderson-Darling
      permutation test (``stats.rank_uniformity_test``). Needs no served logprobs (without them the score is
      the text's log-likelihood alone); catches temperature changes and substitutions.

- ``rescore_bundles(bundles, baselines, *, seed, alpha=None, samples=SAMPLES, log=None) -> [verdict]``: one
  verdict per (epoch, target): the completions of every committee member's bundle pooled, one model load per
  baseline, ``{"epoch", "target", "baseline", "verdict": OK | FAULT | INCONCLUSIVE, "tests", "bundles",
  "skipped", ...}``; a bundle that is not a v2 served audit, whose baseline is missing or version 1, or whose
  weights the referee lacks is skipped with the reason;
- ``served_completions(served, prompts, ...)``: completions of a ``tokenvariants`` setup reduced as
  ``served_audit.chat_extractor`` does (tests and ``bench``); ``bench(...)``: power per mode.

Calibration (``bench --calibrate``, 2-core CPU, torch 2.x, 300 completions per setup): the benign setups
(bf16, threads-2, batch-8, against the referee's float32) move a position's top-20 log-probabilities by at most
0.054 (bf16; the others 4e-6), so ``POSITION_TOLERANCE`` = 0.15 (margin 2.8); a completion's mean absolute
top-k error is at most 0.0142 (bf16, median 0.0095) against at least 0.0177 for int8 (median 0.0255), 0.06 for
4-bit and 0.16 for the small, seed-1 and finetune-10 models, so ``DRIFT_TOLERANCE`` = 0.016 (1.7 times the
benign median, int8's median 1.6 times above it). No benign completion was flagged; ``FLAG_RATE_BOUND`` = 0.02
allows for rare misread segmentations. A serving fleet whose benign drift is larger (GPU bf16 kernels) needs
these constants measured on it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from . import lm, tokenlm
from .stats import StatResult, _sps, combine, rank_uniformity_test

__all__ = ["DRIFT_TOLERANCE", "FLAG_RATE_BOUND", "MIN_COMPLETIONS", "POSITION_TOLERANCE", "RefereeError", "SAMPLES",
           "bench", "load_registered", "referee_test", "rescore_bundles", "served_completions"]

POSITION_TOLERANCE = 0.15  # nats: one position's top-k log-probabilities, or the sampled token's, served vs re-scored
DRIFT_TOLERANCE = 0.016  # nats: median over completions of the mean absolute top-k error
FLAG_RATE_BOUND = 0.02  # the largest share of flagged completions benign serving is taken to produce
SAMPLES = 20  # fresh samples per completion for the rank test
PERMUTATIONS = 1000
MIN_COMPLETIONS = 10  # fewer usable completions: INCONCLUSIVE
LOGPROB_FLOOR = -9999.0  # as the server clamps
MISFIT_SCORE = -1e300  # a text whose re-tokenization does not fit its served position count (ranks lowest)
REPLACEMENT = "\ufffd".encode()
_CHUNK = 64  # rows per teacher-forced forward pass
_GEN_BATCH = 128  # rows per sampling batch (the key/value cache of 128 rows x 56 tokens: 30 MB)


class RefereeError(ValueError):
    """The referee cannot judge this (missing or mismatched weights, a malformed completion list)."""


# ----------------------------------------------------------------------------------------------- weights

def load_registered(baseline: Mapping, *, train: bool = False) -> tokenlm.TokenLM:
    """The registered model of a version-2 baseline, from ``tokenlm``'s cache (``train``: train it if absent,
    as the devnet does at install), refused unless the weights, the tokenizer and the template are the ones
    the baseline names."""
    from .baseline import is_served

    if not is_served(baseline):
        raise RefereeError("not a version-2 (served) baseline: a version-1 audit re-runs the model itself")
    m = baseline.get("model") or {}
    try:
        seed, size = int(m["seed"]), str(m["size"])
        steps = int(m["steps"]) if m.get("steps") is not None else None
        want_w, want_t = str(m["weights_sha256"]).lower(), str(m["tokenizer_sha256"]).lower()
    except (KeyError, TypeError, ValueError):
        raise RefereeError("the baseline's model section lacks seed, size, weights_sha256 or tokenizer_sha256") \
            from None
    if size not in tokenlm.SIZES:
        raise RefereeError(f"the baseline names a {size!r} model; the referee knows {', '.join(tokenlm.SIZES)}")
    got_t = tokenlm.tokenizer_hash()
    if got_t != want_t:
        raise RefereeError(f"the referee's tokenizer is {got_t[:16]}..., the baseline registered {want_t[:16]}...: "
                           "refusing to re-score with another tokenizer")
    if int(m.get("template_version", tokenlm.TEMPLATE_VERSION)) != tokenlm.TEMPLATE_VERSION:
        raise RefereeError(f"the baseline's chat template is version {m.get('template_version')}, the referee's "
                           f"{tokenlm.TEMPLATE_VERSION}")
    if not train and not tokenlm.cache_path(seed, size, steps).is_file():
        raise RefereeError(f"the referee does not hold the weights {want_w[:16]}... (tokenlm {size}, seed {seed}: "
                           "not in the model cache)")
    model = tokenlm.load_or_train(seed, size, steps)
    got_w = tokenlm.weights_hash(model)
    if got_w != want_w:
        raise RefereeError(f"the referee's weights for {size} seed {seed} hash to {got_w[:16]}..., the baseline "
                           f"registered {want_w[:16]}...: refusing to re-score with other weights")
    return model.eval()


# ------------------------------------------------------------------------------------------ parsing

def _position(text: Any, where: str) -> tuple[int, float, np.ndarray]:
    if not isinstance(text, str) or text.count(":") < 2:
        raise RefereeError(f"{where}: not a '<cat>:<logprob>:<top-k>' position")
    cat, lp, tops = text.split(":", 2)
    try:
        c, v = int(cat), float(lp)
        top = np.array([float(x) for x in tops.split(",")] if tops else [], dtype=np.float64)
    except ValueError:
        raise RefereeError(f"{where}: not a '<cat>:<logprob>:<top-k>' position") from None
    if c < -1 or c >= len(top) or math.isnan(v) or v > 1e-6 or np.any(~(top <= 1e-6)):
        raise RefereeError(f"{where}: a rank outside the top-k or a logprob above 0")
    return c, min(v, 0.0), np.minimum(top, 0.0)


def _prepared(c: Any, i: int) -> dict:
    """A completion's prompt ids, text ids, served positions and whether the count fits (see the docstring)."""
    if not isinstance(c, Mapping) or not isinstance(c.get("prompt"), str) or not isinstance(c.get("text"), str):
        raise RefereeError(f"completions[{i}] needs a prompt and a text")
    positions = c.get("positions")
    if positions is not None and not isinstance(positions, list):
        raise RefereeError(f"completions[{i}].positions is not a list")
    prompt = tokenlm.encode_chat([{"role": "user", "content": c["prompt"]}])
    text_ids = tokenlm._encode_plain(c["text"])
    out = {"prompt": prompt, "text_ids": text_ids, "bytes": c["text"].encode(), "served": None, "seq": None}
    if positions:
        out["served"] = [_position(p, f"completions[{i}].positions[{j}]") for j, p in enumerate(positions)]
        n = len(positions)
        out["seq"] = text_ids if n == len(text_ids) else text_ids + [tokenlm.END] if n == len(text_ids) + 1 else None
    return out


# ---------------------------------------------------------------------------------------- the model

def _rows(prompts: list[list[int]], seqs: list[list[int]], ctx: int):
    rows = [p + s for p, s in zip(prompts, seqs)]
    if any(len(r) > ctx for r in rows):
        raise RefereeError(f"a prompt plus completion exceeds the context ({ctx} tokens)")
    return rows


@torch.no_grad()
def _logp(model, prompts: list[list[int]], seqs: list[list[int]]):
    """Per pair, the float64 log-probabilities (len(seq), vocab) of every completion position (teacher-forced)."""
    for s in range(0, len(prompts), _CHUNK):
        ps, qs = prompts[s:s + _CHUNK], seqs[s:s + _CHUNK]
        rows = _rows(ps, qs, model.config.ctx)
        tokens, positions, valid = tokenlm._left_pad(rows)
        logits, _ = model(tokens, positions, valid)
        for r, (p, q) in enumerate(zip(ps, qs)):
            start = tokens.shape[1] - len(rows[r]) + len(p) - 1
            yield torch.log_softmax(logits[r, start:start + len(q)].double(), dim=-1).numpy()


def _mean_loglik(model, prompts: list[list[int]], seqs: list[list[int]]) -> list[float]:
    """Per pair, the registered model's mean log-probability per token of ``seq`` after ``prompt``."""
    out = []
    for lp, q in zip(_logp(model, prompts, seqs), seqs):
        out.append(float(lp[np.arange(len(q)), q].mean()) if q else 0.0)
    return out


# ------------------------------------------------------------------------------------- (a) re-scoring

def _band(row: np.ndarray, v: float) -> tuple[int, int]:
    """The ranks (0-based, first..last) a token of log-probability ``v`` may have within the tolerance."""
    return int(np.count_nonzero(row > v + POSITION_TOLERANCE)), int(np.count_nonzero(row > v - POSITION_TOLERANCE)) - 1


def _fits(row: np.ndarray, y: int, cat: int, lp: float, k: int) -> bool:
    """Could token ``y`` be the one served here with logprob ``lp`` at rank ``cat`` (-1: outside the top k)?"""
    v = max(float(row[y]), LOGPROB_FLOOR)
    if abs(v - lp) > POSITION_TOLERANCE:
        return False
    lo, hi = _band(row, float(row[y]))
    return lo <= cat <= hi if cat >= 0 else hi >= k


def _divergence(row: np.ndarray, x: int, cat: int, lp: float, k: int, rest: bytes, last_stop: bool) -> bool:
    """Did the server sample another token than ``x`` here, consistent with the served numbers and the text?"""
    near = np.flatnonzero(np.abs(np.maximum(row, LOGPROB_FLOOR) - lp) <= POSITION_TOLERANCE)
    for y in near.tolist():
        if y == x or not _fits(row, y, cat, lp, k):
            continue
        if y in tokenlm.STOP_IDS:
            if last_stop:
                return True
            continue
        if rest.startswith(tokenlm.token_bytes(y)) or REPLACEMENT in rest:
            return True
    return False


def _compare(L: np.ndarray, prep: dict) -> dict:
    """One completion's comparison: status verified | diverged | flagged, compared positions, mean top-k error."""
    seq, served, text = prep["seq"], prep["served"], prep["bytes"]
    n = len(seq)
    stopped = n == len(prep["text_ids"]) + 1
    offsets = np.cumsum([0] + [len(tokenlm.token_bytes(t)) for t in seq]).tolist()
    errs, tops, bad, why, top_bad = [], [], None, None, False
    for t in range(n):
        cat, lp, top = served[t]
        k = len(top)
        row = L[t]
        reg = np.maximum(np.sort(row)[::-1][:k], LOGPROB_FLOOR)
        top_err = float(np.max(np.abs(reg - top))) if k else 0.0
        tops.append(top_err)
        errs.append(float(np.mean(np.abs(reg - top))) if k else abs(max(float(row[seq[t]]), LOGPROB_FLOOR) - lp))
        if top_err > POSITION_TOLERANCE:
            bad, top_bad = t, True
            why = f"position {t}: top-{k} logprobs differ from the registered model's by {top_err:.3g}"
            break
        if not _fits(row, seq[t], cat, lp, k):
            bad = t
            why = (f"position {t}: served logprob {lp:.4g} (rank {cat}) is not the registered model's for the text's "
                   f"token ({max(float(row[seq[t]]), LOGPROB_FLOOR):.4g}) nor another segmentation's")
            break
    if bad is None:
        return {"status": "verified", "compared": n, "drift": float(np.mean(errs)) if errs else None,
                "worst": max(tops, default=0.0)}
    # a divergence at bad (its top-k matched), or at the position before (the prefixes differ from there on)
    for u in ([bad - 1] if bad > 0 else []) if top_bad else [bad]:
        cat, lp, top = served[u]
        if _divergence(L[u], seq[u], cat, lp, len(top), text[offsets[u]:], stopped and u == n - 1):
            e = errs[:u + 1]
            return {"status": "diverged", "compared": u + 1, "at": u, "drift": float(np.mean(e)) if e else None,
                    "worst": max(tops[:u + 1], default=0.0)}
    return {"status": "flagged", "compared": bad + 1, "reason": why, "drift": float(np.mean(errs)),
            "worst": max(tops, default=0.0)}


def _binomial_sf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    if k <= 0:
        return 1.0
    return float(min(1.0, max(0.0, _sps().binom.sf(k - 1, n, p))))


def rescore(model, preps: list[dict], alpha: float) -> tuple[StatResult, StatResult, dict]:
    """(a): the per-completion comparisons and the ``flags`` and ``drift`` tests (module docstring)."""
    usable = [i for i, p in enumerate(preps) if p["served"] and p["seq"] is not None
              and len(p["prompt"]) + len(p["seq"]) <= model.config.ctx]
    skipped = sum(1 for p in preps if p["served"]) - len(usable)
    results: dict[int, dict] = {}
    for i, L in zip(usable, _logp(model, [preps[i]["prompt"] for i in usable], [preps[i]["seq"] for i in usable])):
        results[i] = _compare(L, preps[i])
    status = Counter(r["status"] for r in results.values())
    n, flagged = len(results), status["flagged"]
    drifts = [r["drift"] for r in results.values() if r["drift"] is not None]
    above = sum(d > DRIFT_TOLERANCE for d in drifts)
    common = {"no_logprobs": sum(1 for p in preps if not p["served"]), "skipped_count_mismatch": skipped}
    flags = StatResult(
        test="flags", statistic=float(flagged), p_value=_binomial_sf(flagged, n, FLAG_RATE_BOUND) if n else 1.0,
        alpha=alpha, n=n, reject=False, params={"position_tolerance": POSITION_TOLERANCE,
                                                "flag_rate_bound": FLAG_RATE_BOUND},
        details={**common, **{s: status[s] for s in ("verified", "diverged", "flagged")},
                 "positions_compared": sum(r["compared"] for r in results.values()),
                 "max_position_error": max((r["worst"] for r in results.values()), default=0.0),
                 "examples": [f"completion {i}: {r['reason']}" for i, r in results.items()
                              if r["status"] == "flagged"][:5]})
    med = float(np.median(drifts)) if drifts else 0.0
    drift = StatResult(
        test="drift", statistic=med, p_value=_binomial_sf(above, len(drifts), 0.5) if drifts else 1.0, alpha=alpha,
        n=len(drifts), reject=False, params={"drift_tolerance": DRIFT_TOLERANCE},
        details={"above": above, "max": max(drifts) if drifts else None,
                 "pvalue": "sign test: H0 the median completion's mean |top-k error| <= drift_tolerance"})
    return flags, drift, results


# ------------------------------------------------------------------------------------------ (b) RUT

def _fit_score(text_ids: list[int], n_positions: int | None) -> list[int] | None:
    """The scored token sequence of a text (``None``: it does not fit the served position count)."""
    if n_positions is None:
        return text_ids
    if n_positions == len(text_ids):
        return text_ids
    if n_positions == len(text_ids) + 1:
        return text_ids + [tokenlm.END]
    return None


def _gen_seed(seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"referee/rut/{seed}".encode()).digest()[:7], "big")


def rut(model, preps: list[dict], alpha: float, seed: int, temperature: float, samples: int,
        max_tokens: int) -> StatResult:
    """(b): the rank of each completion's registered log-likelihood among ``samples`` fresh samples."""
    ctx = model.config.ctx
    with_positions = all(p["served"] for p in preps)
    usable = [i for i, p in enumerate(preps) if len(p["prompt"]) + max_tokens <= ctx]
    if not usable or samples < 1 or temperature <= 0:
        why = "greedy decoding: no samples to rank" if temperature <= 0 else "no completion fits the context"
        return StatResult("rut", 0.0, 1.0, alpha, 0, False, details={"note": why})
    # the served completions' scores
    own = [_fit_score(preps[i]["text_ids"], len(preps[i]["served"]) if with_positions else None) for i in usable]
    # fresh samples, row g of the pooled list drawn with seed base + g
    rows = [preps[i]["prompt"] for i in usable for _ in range(samples)]
    base = _gen_seed(seed)
    seqs_s: list[list[int] | None] = []
    for s in range(0, len(rows), _GEN_BATCH):
        for c in tokenlm.generate(model, rows[s:s + _GEN_BATCH], max_tokens, temperature, 0, seed=base + s):
            ids = [t for t in c.token_ids if t not in tokenlm.STOP_IDS]
            text_ids = tokenlm._encode_plain(tokenlm.decode(ids))
            seqs_s.append(_fit_score(text_ids, len(c.token_ids) if with_positions else None))
    prompts = [preps[i]["prompt"] for i in usable] + rows
    seqs = own + seqs_s
    # one score per distinct (prompt, sequence): equal texts tie exactly (ties are broken at random)
    keys = sorted({(tuple(prompts[j]), tuple(q)) for j, q in enumerate(seqs)
                   if q is not None and len(prompts[j]) + len(q) <= ctx})
    value = dict(zip(keys, _mean_loglik(model, [list(p) for p, _ in keys], [list(q) for _, q in keys])))
    scores = [MISFIT_SCORE if q is None else value.get((tuple(prompts[j]), tuple(q)), MISFIT_SCORE)
              for j, q in enumerate(seqs)]
    n = len(usable)
    provider = [(j, scores[j]) for j in range(n)]
    reference = {j: scores[n + j * samples:n + (j + 1) * samples] for j in range(n)}
    perms = max(PERMUTATIONS, math.ceil(6 / alpha))
    r = rank_uniformity_test(provider, reference, alpha=alpha, seed=seed % (1 << 62), permutations=perms)
    misfit = sum(1 for j in range(n) if scores[j] == MISFIT_SCORE)
    return StatResult("rut", r.statistic, r.p_value, alpha, n, False, params={**r.params, "samples": samples,
                                                                                "temperature": temperature,
                                                                                "max_tokens": max_tokens},
                      details={**r.details, "misfit": misfit,
                               "misfit_reference": sum(1 for v in scores[n:] if v == MISFIT_SCORE),
                               "scored": "text log-likelihood" + (" and stop" if with_positions else "")})


# ------------------------------------------------------------------------------------------ the test

def referee_test(model, completions: Sequence[Mapping], alpha: float, seed: int, *, temperature: float = 1.0,
                 samples: int = SAMPLES, max_tokens: int = 24) -> StatResult:
    """The referee's test of pooled completions (module docstring): Holm over ``flags``, ``drift`` and ``rut``
    at ``alpha``; ``details["tests"]`` holds the three, ``details["counts"]`` what was compared or skipped.
    Deterministic given ``seed`` (one torch thread)."""
    if not 0 < float(alpha) < 1:
        raise RefereeError(f"alpha must be in (0, 1), got {alpha!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RefereeError("seed must be an integer")
    if not completions:
        raise RefereeError("no completions to judge")
    t0 = time.monotonic()
    preps = [_prepared(c, i) for i, c in enumerate(completions)]
    with lm._one_thread():
        flags, drift, results = rescore(model, preps, alpha)
        rank = rut(model, preps, alpha, seed, float(temperature), int(samples), int(max_tokens))
    joint = combine([flags, drift, rank], alpha, method="holm")
    fired = joint.details["rejected"]
    tests = []
    for r, adj in zip((flags, drift, rank), joint.details["adjusted"]):
        tests.append({**r.to_dict(), "reject": r.test in fired, "adjusted_p": adj})
    return StatResult(
        test="referee", statistic=joint.statistic, p_value=joint.p_value, alpha=float(alpha), n=len(preps),
        reject=joint.reject,
        params={"alpha": float(alpha), "seed": seed, "temperature": float(temperature), "samples": int(samples),
                "max_tokens": int(max_tokens), "position_tolerance": POSITION_TOLERANCE,
                "drift_tolerance": DRIFT_TOLERANCE, "flag_rate_bound": FLAG_RATE_BOUND, "combination": "holm"},
        details={"tests": tests, "fired": fired, "adjusted": joint.details["adjusted"],
                 "counts": {"completions": len(preps), "rescored": flags.n, "flagged": flags.details["flagged"],
                            "diverged": flags.details["diverged"], "verified": flags.details["verified"],
                            "skipped_count_mismatch": flags.details["skipped_count_mismatch"],
                            "no_logprobs": flags.details["no_logprobs"], "ranked": rank.n},
                 "completions": [_summary(preps[i], results.get(i)) for i in range(len(preps))],
                 "seconds": round(time.monotonic() - t0, 3)})


def _summary(prep: dict, result: dict | None) -> list:
    """One completion's outcome, in input order: ``[status, positions compared, mean |top-k error| or None]``
    (status ``verified``, ``diverged``, ``flagged``, ``skipped`` (its count does not fit) or ``no_logprobs``)."""
    if result is None:
        return ["no_logprobs" if not prep["served"] else "skipped", 0, None]
    return [result["status"], result["compared"], result["drift"]]


# ----------------------------------------------------------------------------------------- bundles

def _root(item) -> tuple[str, dict]:
    import json

    from ..protocol import canonical_json, keccak

    if isinstance(item, (bytes, bytearray)):
        try:
            bundle = json.loads(item)
        except ValueError:
            raise RefereeError("an evidence bundle is not JSON") from None
        return "0x" + keccak(bytes(item)).hex(), bundle
    if isinstance(item, Mapping):
        try:
            return "0x" + keccak(canonical_json(dict(item))).hex(), dict(item)
        except ValueError as exc:
            raise RefereeError(f"an evidence bundle is not canonical: {exc}") from None
    raise RefereeError("a bundle is a dict or its JSON bytes")


def _epoch_target(bundle: dict) -> tuple[int, int] | None:
    try:
        return int(bundle["epoch"]), int(bundle["target"]["id"])
    except (KeyError, TypeError, ValueError):
        return None


def rescore_bundles(bundles: Sequence, baselines, *, seed: int, alpha: float | None = None,
                    samples: int = SAMPLES, train: bool = False, log=None) -> list[dict]:
    """One referee verdict per (epoch, target) of ``bundles`` (dicts or their evidence bytes), against
    ``baselines`` (hash -> bundle, or a list of bundles). The completions of every bundle of one (epoch, target)
    and baseline are pooled; one model load per baseline. ``alpha``: default the baseline's. A verdict's
    ``per_completion`` rows are ``[index in "bundles", index in that bundle's completions, status, positions
    compared, mean |top-k error|]``; ``result.params`` repeat the test."""
    from .baseline import baseline_hash, is_served

    say = log or (lambda _m: None)
    if not isinstance(baselines, Mapping):
        baselines = {baseline_hash(b): b for b in baselines}
    baselines = {str(h).lower(): b for h, b in baselines.items()}
    groups: dict[tuple[int, int], list[tuple[str, dict]]] = {}
    skipped: dict[tuple[int, int] | None, list[dict]] = {}
    for item in bundles:
        root, bundle = _root(item)
        key = _epoch_target(bundle) if isinstance(bundle, dict) else None
        if key is None or bundle.get("kind") != "MODEL_SERVED" or bundle.get("version") != 2 \
                or not isinstance(bundle.get("completions"), list):
            skipped.setdefault(key, []).append({"root": root, "reason": "not a version-2 MODEL_SERVED evidence bundle"})
            continue
        groups.setdefault(key, []).append((root, bundle))
    models: dict[str, Any] = {}
    out = []
    for key in sorted(groups):
        members = groups[key]
        votes = Counter(str(b.get("baseline", "")).lower() for _, b in members)
        h = max(votes, key=lambda x: (votes[x], x))
        skips = list(skipped.pop(key, []))
        used = []
        for root, b in members:
            if str(b.get("baseline", "")).lower() != h:
                skips.append({"root": root, "reason": f"baseline {b.get('baseline')} differs from the committee's {h}"})
            elif root in {r for r, _ in used}:
                skips.append({"root": root, "reason": "duplicate bundle"})
            else:
                used.append((root, b))
        verdict = {"epoch": key[0], "target": key[1], "baseline": h, "verdict": "INCONCLUSIVE", "tests": [],
                   "bundles": [r for r, _ in used], "skipped": skips, "completions": 0}
        out.append(verdict)
        base = baselines.get(h)
        reason = None
        if base is None:
            reason = f"the referee has no baseline {h}"
        elif not is_served(base):
            reason = "a version-1 baseline: the committee re-ran the model itself, nothing to referee"
        elif h not in models:
            try:
                models[h] = load_registered(base, train=train)
            except RefereeError as exc:
                models[h] = exc
        if reason is None and isinstance(models.get(h), RefereeError):
            reason = str(models[h])
        if reason is not None:
            verdict["skipped"] = skips + [{"root": r, "reason": reason} for r, _ in used]
            verdict["bundles"], verdict["reason"] = [], reason
            continue
        completions = [c for _, b in used for c in b["completions"]]
        verdict["completions"] = len(completions)
        if len(completions) < MIN_COMPLETIONS:
            verdict["reason"] = f"{len(completions)} completions: fewer than {MIN_COMPLETIONS}"
            continue
        s = base["sampling"]
        run_seed = int.from_bytes(hashlib.sha256(f"{seed}/{key[0]}/{key[1]}".encode()).digest()[:7], "big")
        try:
            res = referee_test(models[h], completions, float(alpha if alpha is not None else base["alpha"]), run_seed,
                               temperature=float(s["temperature"]), samples=samples, max_tokens=int(s["max_tokens"]))
        except RefereeError as exc:
            verdict["reason"] = f"the completions cannot be re-scored: {exc}"
            continue
        usable = res.details["counts"]["rescored"] + res.details["counts"]["ranked"]
        verdict["verdict"] = "FAULT" if res.reject else "OK" if usable else "INCONCLUSIVE"
        evidence = res.to_evidence()
        verdict["tests"] = evidence["details"]["tests"]
        verdict["result"] = {k: v for k, v in evidence.items() if k != "details"}
        verdict["counts"] = res.details["counts"]
        where = [(b, j) for b, (_, m) in enumerate(used) for j in range(len(m["completions"]))]
        verdict["per_completion"] = [[b, j, *out] for (b, j), out in zip(where, evidence["details"]["completions"])]
        say(f"epoch {key[0]} target {key[1]}: {verdict['verdict']} ({len(completions)} completions from "
            f"{len(used)} bundles, {res.details['seconds']} s)")
    for key, skips in skipped.items():
        out.append({"epoch": key[0] if key else None, "target": key[1] if key else None, "baseline": None,
                    "verdict": "INCONCLUSIVE", "tests": [], "bundles": [], "skipped": skips, "completions": 0,
                    "reason": "no usable bundle"})
    return out


# ------------------------------------------------------------------------------------ tests and bench

def served_completions(served, prompts: Sequence[tuple[str, str]], *, max_tokens: int = 24, top_logprobs: int = 20,
                       temperature: float = 1.0, seed: int = 0) -> list[dict]:
    """Completions of ``served`` (a ``tokenvariants.TokenServed``) for ``[(family, prompt)]``, reduced as
    ``served_audit.chat_extractor`` reduces a server's answers (the text without the stop token, whose position
    stays the last; logprobs clamped at -9999)."""
    rows = [tokenlm.encode_chat([{"role": "user", "content": p}]) for _, p in prompts]
    out = []
    for (fam, p), c in zip(prompts, served.generate(rows, max_tokens, temperature, top_logprobs, seed=seed)):
        positions = []
        for t, lp, top in zip(c.token_ids, c.logprobs, c.top):
            ids = [a for a, _ in top]
            cat = ids.index(t) if t in ids else -1
            positions.append(f"{cat}:{max(float(lp), LOGPROB_FLOOR)!r}:" + ",".join(repr(max(float(v), LOGPROB_FLOOR))
                                                                                    for _, v in top))
        out.append({"family": fam, "prompt": p, "text": tokenlm.decode(c.token_ids), "positions": positions})
    return out


def bench(modes: Sequence[str] | None = None, sizes: Sequence[int] = (50, 100), audits: int = 20, *,
          samples: int = SAMPLES, alpha: float = 0.01, seed: int = 0, log=print) -> dict:
    """Power of ``referee_test`` per serving setup (``tokenvariants``) and number of completions: ``audits``
    audits each (fresh prompts of the keeper's families, a fresh serving seed), against the registered base
    model of ``keeper.cached_served_baseline(seed)``. Per (mode, size): faults, which test fired, seconds,
    and the benign calibration numbers (largest position error, completion drift)."""
    from . import keeper, tokenvariants
    from .served_audit import draw_prompts

    baseline = keeper.cached_served_baseline(seed)
    model = load_registered(baseline)
    modes = list(modes or (*tokenvariants.BENIGN, "small", "seed-1", "finetune-10", "int8", "4bit", "temp-0.7"))
    s = baseline["sampling"]
    out: dict = {}
    for mode in modes:
        served = tokenvariants.make_variant(mode, model)
        for n in sizes:
            row = {"audits": audits, "faults": 0, "fired": Counter(), "seconds": [], "drift_median": [],
                   "drift_max": [], "position_error_max": [], "flagged": 0, "rut_p": []}
            for a in range(audits):
                draw = hashlib.sha256(f"referee-bench/{n}/{a}".encode()).digest()
                comps = served_completions(served, draw_prompts(baseline, draw, 1, 3, n),
                                           max_tokens=int(s["max_tokens"]), top_logprobs=int(s["top_logprobs"]),
                                           temperature=float(s["temperature"]), seed=1000 * n + a)
                r = referee_test(model, comps, alpha, a, temperature=float(s["temperature"]), samples=samples,
                                 max_tokens=int(s["max_tokens"]))
                tests = {t["test"]: t for t in r.details["tests"]}
                row["faults"] += r.reject
                row["fired"].update(r.details["fired"])
                row["seconds"].append(r.details["seconds"])
                row["drift_median"].append(tests["drift"]["statistic"])
                row["drift_max"].append(tests["drift"]["details"]["max"] or 0.0)
                row["position_error_max"].append(tests["flags"]["details"]["max_position_error"])
                row["flagged"] += r.details["counts"]["flagged"]
                row["rut_p"].append(tests["rut"]["p_value"])
            row["fired"] = dict(row["fired"])
            summary = {"faults": row["faults"], "audits": audits, "fired": row["fired"],
                       "seconds_per_100": 100 * sum(row["seconds"]) / (n * audits),
                       "drift_median_max": max(row["drift_median"]), "drift_median_min": min(row["drift_median"]),
                       "drift_max": max(row["drift_max"]), "position_error_max": max(row["position_error_max"]),
                       "flagged_completions": row["flagged"], "rut_fired": row["fired"].get("rut", 0),
                       "rut_p": row["rut_p"]}
            out.setdefault(mode, {})[n] = summary
            log(f"{mode:12s} n={n:4d}: {row['faults']:2d}/{audits} FAULT  fired {row['fired']}  "
                f"{summary['seconds_per_100']:.1f} s/100  drift median {summary['drift_median_min']:.3g}.."
                f"{summary['drift_median_max']:.3g} (completion max {summary['drift_max']:.3g}), position max "
                f"{summary['position_error_max']:.3g}, flagged {row['flagged']}")
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import resource

    p = argparse.ArgumentParser(prog="alignment_node.models.referee", description="Power of the referee's test.")
    p.add_argument("--bench", action="store_true", help="run the benchmark")
    p.add_argument("--modes", default=None, help="comma-separated serving setups (default: all but route/policies)")
    p.add_argument("--sizes", default="50,100", help="completions per audit, comma-separated")
    p.add_argument("--audits", type=int, default=20)
    p.add_argument("--samples", type=int, default=SAMPLES)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not args.bench:
        p.error("nothing to do: --bench")
    out = bench(args.modes.split(",") if args.modes else None, [int(x) for x in args.sizes.split(",")],
                args.audits, samples=args.samples)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak RSS {rss} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": out, "rss_mb": rss}, f, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
