"""Statistics of a MODEL audit by an auditor that holds no weights (issue 14, layers 2 and 3).

Pure functions of what an OpenAI-compatible endpoint returns (text, and ``top_logprobs`` when it serves them),
numpy and scipy only: no torch, no model. Each test returns a ``stats.StatResult`` (statistic, p-value or
threshold, alpha, decision, and the ``params`` that repeat it); docs/models-blackbox.md says what each test's
null is, how its threshold is calibrated, its false-positive rate and what it cannot see.

- drift against the provider's own onboarding snapshot, with logprobs (LT, Chauvin et al. 2025):
  ``lt_fingerprint``, ``lt_distance``, ``lt_calibrate`` (``LTCalibration``), ``lt_test``;
- drift without logprobs, border inputs at temperature 0 (B3IT, arXiv 2602.11083): ``border_calibrate``,
  ``border_test``;
- sampling consistency of the served top-k logprobs with the sampled tokens at the claimed temperature:
  ``sampling_pit``, ``sampling_consistency_test``;
- identity against a keeper's published reference data, on fresh prompts drawn from prompt families:
  ``PromptFamily``, ``family_prompts``, ``completion_scores``, ``identity_test``;
- the joint verdict of the layers that apply at one alpha: ``joint_decision``.

Positions (one generated token with its served logprobs) are accepted in the OpenAI chat format
(``{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}``) or as a ``(token, logprob, top)``
triple with ``top`` a mapping ``token -> logprob`` or a list of pairs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import special

from .stats import (StatResult, _sps, _check_alpha, _check_int, _check_seed, _permutation_p, _rank_statistic,
                    clopper_pearson, combine, mmd_hamming_test, rank_uniformity_test)

__all__ = ["Fingerprint", "lt_fingerprint", "lt_distance", "LTCalibration", "lt_calibrate", "lt_test",
           "border_calibrate", "border_test", "parse_position", "sampling_pit", "sampling_consistency_test",
           "PromptFamily", "family_prompts", "EXAMPLE_FAMILIES", "completion_scores", "identity_test",
           "joint_decision"]


# ------------------------------------------------------------------------------------ parsing


def _check_logprob(value: Any, where: str) -> float:
    if type(value) is float and value <= 0.0:  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{where}: logprob must be a number, got {value!r:.80}")
    x = float(value)
    if math.isnan(x) or x > 1e-6:
        raise ValueError(f"{where}: logprob must be <= 0 (or -inf), got {x}")
    return min(x, 0.0)


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), exact for -inf."""
    hi, lo = (a, b) if a >= b else (b, a)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))


def _top_list(top: Any, where: str) -> list[tuple[str, float]]:
    """A top-k list as ``[(token, logprob)]``, best first (ties by token), duplicates refused. Two entries whose
    text is the same but whose ``bytes`` differ (two byte-level tokens that are each part of a UTF-8 character, both
    shown as U+FFFD) are one outcome to an auditor that sees text: their probabilities are added."""
    if isinstance(top, Mapping):
        items = [(token, lp, None) for token, lp in top.items()]
    elif isinstance(top, (list, tuple)):
        items = []
        for i, entry in enumerate(top):
            if isinstance(entry, Mapping):
                if "token" not in entry or "logprob" not in entry:
                    raise ValueError(f"{where}[{i}]: a top_logprobs entry needs 'token' and 'logprob'")
                raw = entry.get("bytes")
                items.append((entry["token"], entry["logprob"], tuple(raw) if isinstance(raw, list) else None))
            elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                items.append((entry[0], entry[1], None))
            else:
                raise ValueError(f"{where}[{i}]: expected a {{token, logprob}} entry, got {entry!r:.80}")
    else:
        raise ValueError(f"{where}: top logprobs must be a mapping or a list, got {type(top).__name__}")
    out: dict[str, float] = {}
    seen_bytes: dict[str, set] = {}
    for token, lp, raw in items:
        if type(token) is not str:
            token = _token(token, where)
        if type(lp) is not float or lp > 0.0:
            lp = _check_logprob(lp, f"{where}[{token!r}]")
        if token in out:
            distinct = seen_bytes.get(token, set())
            if raw is None or None in distinct or raw in distinct:
                raise ValueError(f"{where}: token {token!r} listed twice")
            distinct.add(raw)
            out[token] = log_add(out[token], lp)
            continue
        seen_bytes[token] = {raw}
        out[token] = lp
    if not out:
        raise ValueError(f"{where}: empty top logprobs")
    pairs = list(out.items())
    if all(a[1] > b[1] for a, b in zip(pairs, pairs[1:])):  # already best first, no ties: canonical
        return pairs
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))


def _token(token: Any, where: str) -> str:
    if type(token) is str:
        return token
    if isinstance(token, (bool, float)) or not isinstance(token, (str, int, np.integer)):
        raise ValueError(f"{where}: token must be a string (or an integer id), got {token!r:.80}")
    return str(token)


def _first_position_top(response: Any, where: str) -> list[tuple[str, float]]:
    """The first generated token's top-k list of an OpenAI chat or completions response (or a bare list)."""
    if isinstance(response, Mapping) and "choices" in response:
        choices = response["choices"]
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ValueError(f"{where}: no choices")
        logprobs = choices[0].get("logprobs")
        if not isinstance(logprobs, Mapping):
            raise ValueError(f"{where}: the response has no logprobs")
        if isinstance(logprobs.get("content"), list):  # chat
            content = logprobs["content"]
            if not content or not isinstance(content[0], Mapping):
                raise ValueError(f"{where}: empty logprobs content")
            return _top_list(content[0].get("top_logprobs"), where)
        tops = logprobs.get("top_logprobs")  # completions
        if not isinstance(tops, list) or not tops:
            raise ValueError(f"{where}: no top_logprobs")
        return _top_list(tops[0], where)
    return _top_list(response, where)


def parse_position(position: Any, where: str = "position") -> tuple[str, float, list[tuple[str, float]]]:
    """``(token, logprob, top)`` of one generated position (OpenAI chat entry or a triple), ``top`` best first."""
    if isinstance(position, Mapping):
        for key in ("token", "logprob", "top_logprobs"):
            if key not in position:
                raise ValueError(f"{where}: missing {key!r}")
        token, lp, top = position["token"], position["logprob"], position["top_logprobs"]
    elif isinstance(position, (list, tuple)) and len(position) == 3:
        token, lp, top = position
    else:
        raise ValueError(f"{where}: expected {{token, logprob, top_logprobs}} or a triple, got {position!r:.80}")
    return _token(token, where), _check_logprob(lp, where), _top_list(top, f"{where}.top_logprobs")


# ----------------------------------------------------------------------------- LT fingerprints


@dataclass(frozen=True)
class Fingerprint:
    """First-token top-k logprobs of fixed prompts: ``tops[i]`` is prompt ``prompts[i]``'s list, best first."""

    prompts: tuple[str, ...]
    tops: tuple[tuple[tuple[str, float], ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, floats as ``repr`` strings (exact)."""
        return {"prompts": list(self.prompts),
                "tops": [[[t, repr(lp)] for t, lp in top] for top in self.tops]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Fingerprint":
        return lt_fingerprint({p: [(t, float(lp)) for t, lp in top] for p, top in zip(data["prompts"], data["tops"])})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def lt_fingerprint(responses: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Fingerprint:
    """The LT fingerprint of one query per prompt (``max_tokens`` 1, ``logprobs``, ``top_logprobs`` k).

    ``responses``: ``{prompt: response}`` or ``[(prompt, response)]``; a response is the endpoint's JSON (chat
    or completions) or the first position's top list itself (``{token: logprob}`` or ``[(token, logprob)]``).
    Prompts are kept in sorted order, so two fingerprints of the same prompts line up.

    >>> fp = lt_fingerprint({"x": {"a": -0.1, "b": -2.5}, "y": [("c", -0.7), ("d", -0.7)]})
    >>> fp.prompts, fp.tops[0]
    (('x', 'y'), (('a', -0.1), ('b', -2.5)))
    """
    items = list(responses.items()) if isinstance(responses, Mapping) else list(responses)
    if not items:
        raise ValueError("a fingerprint needs at least one prompt")
    seen: dict[str, tuple[tuple[str, float], ...]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"responses[{i}] must be a (prompt, response) pair")
        prompt, response = item
        if prompt in seen:
            raise ValueError(f"prompt {prompt!r:.60} given twice")
        seen[prompt] = tuple(_first_position_top(response, f"responses[{prompt!r:.40}]"))
    prompts = tuple(sorted(seen))
    return Fingerprint(prompts=prompts, tops=tuple(seen[p] for p in prompts))


def _prompt_distance(a: Sequence[tuple[str, float]], b: Sequence[tuple[str, float]]) -> float:
    """Mean over the union of the two top-k lists (both cut to the shorter k) of ``|a_t - b_t|``, a token
    missing from a list taking that list's k-th logprob (the most it can be: left-censored)."""
    k = min(len(a), len(b))
    da, db = dict(a[:k]), dict(b[:k])
    floor_a, floor_b = a[k - 1][1], b[k - 1][1]
    union = set(da) | set(db)
    total = 0.0
    for t in union:
        x, y = da.get(t, floor_a), db.get(t, floor_b)
        if x == y:  # also -inf == -inf
            continue
        total += abs(x - y)
    return total / len(union)


def lt_distance(a: Fingerprint, b: Fingerprint) -> float:
    """Mean over prompts of the per-prompt LT distance (docs/models-blackbox.md); 0 for equal fingerprints.

    >>> a = lt_fingerprint({"x": {"a": -0.1, "b": -2.5}})
    >>> b = lt_fingerprint({"x": {"a": -0.2, "c": -2.0}})  # b missing: -2.0 there; c missing: -2.5 in a
    >>> round(lt_distance(a, b), 6)  # (0.1 + 0.5 + 0.5) / 3
    0.366667
    """
    if not isinstance(a, Fingerprint) or not isinstance(b, Fingerprint):
        raise ValueError("lt_distance compares two Fingerprints (lt_fingerprint)")
    if a.prompts != b.prompts:
        raise ValueError("the two fingerprints are of different prompts")
    return float(np.mean([_prompt_distance(x, y) for x, y in zip(a.tops, b.tops)]))


def _per_prompt(a: Fingerprint, b: Fingerprint) -> list[float]:
    return [_prompt_distance(x, y) for x, y in zip(a.tops, b.tops)]


@dataclass(frozen=True)
class LTCalibration:
    """The benign distances from one snapshot and the threshold they give (``lt_calibrate``)."""

    snapshot: str  # Fingerprint.digest() of the snapshot
    distances: tuple[float, ...]  # sorted
    alpha: float
    margin: float
    rank: int  # the threshold is margin * distances[rank - 1]
    threshold: float

    @property
    def fpr_bound(self) -> float:
        """P(a benign fingerprint exchangeable with the calibration ones is flagged) <= this."""
        return (len(self.distances) + 1 - self.rank) / (len(self.distances) + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "distances": [repr(d) for d in self.distances], "alpha": repr(self.alpha),
                "margin": repr(self.margin), "rank": self.rank, "threshold": repr(self.threshold)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LTCalibration":
        return cls(snapshot=str(data["snapshot"]), distances=tuple(float(d) for d in data["distances"]),
                   alpha=float(data["alpha"]), margin=float(data["margin"]), rank=int(data["rank"]),
                   threshold=float(data["threshold"]))

    def p_value(self, distance: float) -> float:
        """Conformal p-value ``(1 + #{margin * d_i >= distance}) / (n + 1)``: super-uniform for a benign one."""
        d = np.asarray(self.distances) * self.margin
        return float((1 + np.count_nonzero(d >= distance)) / (len(d) + 1))


def lt_calibrate(benign_fingerprints: Sequence[Fingerprint], alpha: float = 0.01, *,
                 snapshot: Fingerprint | None = None, margin: float = 1.0) -> LTCalibration:
    """A decision threshold for ``lt_test`` from benign repeated fingerprints, at false-positive rate ``alpha``.

    The calibration distances are ``d_i = lt_distance(snapshot, f_i)`` for the benign fingerprints ``f_i``
    (the same prompts queried again under honest serving setups: fp32, bf16, thread counts, batch sizes...);
    without ``snapshot``, the first fingerprint is the snapshot and the others calibrate. The threshold is
    ``margin * d_(r)``, the ``r``-th smallest with ``r = ceil((n + 1)(1 - alpha))`` (split conformal): if a
    later benign fingerprint is exchangeable with the ``f_i`` (its setup drawn like theirs), it exceeds the
    threshold with probability at most ``(n + 1 - r) / (n + 1) <= alpha``, exactly, whatever the model and
    the noise; ``margin >= 1`` only lowers that (room for a setup calibration did not see). ``r = n`` (the
    largest benign distance) needs ``n >= 1 / alpha - 1``; fewer is refused.

    >>> snap = lt_fingerprint({"x": {"a": -0.10, "b": -2.5}})
    >>> benign = [lt_fingerprint({"x": {"a": -0.10 - e, "b": -2.5 + e}}) for e in (0.01, 0.02, 0.005, 0.03)]
    >>> cal = lt_calibrate(benign, alpha=0.2, snapshot=snap)
    >>> cal.rank, round(cal.threshold, 6), cal.fpr_bound
    (4, 0.03, 0.2)
    """
    alpha = _check_alpha(alpha)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 1.0:
        raise ValueError(f"margin must be a number >= 1, got {margin!r}")
    fps = list(benign_fingerprints)
    if snapshot is None:
        if len(fps) < 2:
            raise ValueError("need a snapshot and at least one benign fingerprint")
        snapshot, fps = fps[0], fps[1:]
    distances = sorted(lt_distance(snapshot, f) for f in fps)
    n = len(distances)
    rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    if rank > n:
        raise ValueError(f"{n} benign fingerprints cannot calibrate alpha={alpha}: need at least "
                         f"{math.ceil(1.0 / alpha - 1 - 1e-9)}")
    return LTCalibration(snapshot=snapshot.digest(), distances=tuple(distances), alpha=alpha,
                         margin=float(margin), rank=rank, threshold=float(margin) * distances[rank - 1])


def lt_test(snapshot: Fingerprint, current: Fingerprint, calibration: LTCalibration) -> StatResult:
    """Has the served model drifted from its onboarding snapshot? Flags ``lt_distance > threshold``.

    ``p_value`` is the conformal one (``LTCalibration.p_value``): ``p <= alpha`` exactly when flagged, and it
    can enter a combination at any level down to ``1 / (n + 1)``.
    """
    if not isinstance(calibration, LTCalibration):
        raise ValueError("calibration must be an LTCalibration (lt_calibrate)")
    if snapshot.digest() != calibration.snapshot:
        raise ValueError("the calibration was made against another snapshot")
    per_prompt = _per_prompt(snapshot, current) if snapshot.prompts == current.prompts else None
    if per_prompt is None:
        raise ValueError("the current fingerprint is of other prompts than the snapshot")
    d = float(np.mean(per_prompt))
    worst = int(np.argmax(per_prompt))
    return StatResult(
        test="lt_fingerprint", statistic=d, p_value=calibration.p_value(d), alpha=calibration.alpha,
        n=len(per_prompt), reject=d > calibration.threshold,
        params={"threshold": calibration.threshold, "margin": calibration.margin, "alpha": calibration.alpha,
                "rank": calibration.rank, "calibration_n": len(calibration.distances)},
        details={"worst_prompt": snapshot.prompts[worst], "worst_distance": per_prompt[worst],
                 "benign_max": calibration.distances[-1], "fpr_bound": calibration.fpr_bound,
                 "snapshot": calibration.snapshot})


# ------------------------------------------------------------------------- border inputs (B3IT)


def _tokens(value: Any, name: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of tokens, one per border prompt")
    out = [_token(t, f"{name}[{i}]") for i, t in enumerate(value)]
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def border_calibrate(snapshot_tokens: Sequence[str], benign_runs: Sequence[Sequence[str]],
                     confidence: float = 0.95) -> dict[str, Any]:
    """The benign flips of the border prompts' greedy first tokens, per run, for ``border_test``.

    ``benign_runs``: repeated greedy (T=0, ``max_tokens`` 1) answers of all the border prompts, in the order
    of ``snapshot_tokens``, each run one pass over them under an honest setup (fp32, bf16, threads, batch, at
    other times) than the snapshot's. Returns ``runs`` (the number of changed prompts in each run: what
    ``border_test`` compares with), the pooled ``flips`` / ``trials``, their ``rate`` and its one-sided
    Clopper-Pearson ``upper`` bound at ``confidence``.

    >>> c = border_calibrate(["a", "b", "c"], [["a", "b", "d"], ["a", "b", "c"]])
    >>> c["runs"], c["flips"], c["trials"], round(c["rate"], 4)
    ([1, 0], 1, 6, 0.1667)
    """
    snap = _tokens(snapshot_tokens, "snapshot_tokens")
    runs = []
    for r, run in enumerate(benign_runs):
        run = _tokens(run, f"benign_runs[{r}]")
        if len(run) != len(snap):
            raise ValueError(f"benign_runs[{r}] has {len(run)} tokens for {len(snap)} border prompts")
        runs.append(sum(x != y for x, y in zip(snap, run)))
    if not runs:
        raise ValueError("border_calibrate needs at least one benign run")
    flips, trials = sum(runs), len(runs) * len(snap)
    _, hi = clopper_pearson(flips, trials, 2 * confidence - 1)
    return {"runs": runs, "prompts": len(snap), "flips": flips, "trials": trials, "rate": flips / trials,
            "upper": hi, "confidence": confidence}


def _poisson_binomial_sf(x: int, rates: np.ndarray) -> float:
    """P(sum of independent Bernoulli(rates) >= x), exactly (dynamic programme)."""
    dist = np.zeros(len(rates) + 1)
    dist[0] = 1.0
    for q in rates:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(min(1.0, dist[x:].sum()))


def border_test(snapshot_tokens: Sequence[str], current_tokens: Sequence[str], benign_flip_rate: Any,
                alpha: float = 0.01) -> StatResult:
    """Have the greedy first tokens of the border prompts moved from the snapshot more than benign noise does?

    ``X`` = number of border prompts whose current greedy (T=0) first token differs from the snapshot's.
    ``benign_flip_rate``:
    - the ``border_calibrate`` result (recommended): ``p = (1 + #{runs r: Y_r >= X}) / (R + 1)`` with
      ``Y_r`` the changed prompts of benign run ``r``; exact when the current pass is exchangeable with the
      calibration runs (its setup drawn like theirs), whatever the dependence between prompts: a setup that
      moves all logits at once (bf16 rounding) flips many border prompts together, which a per-prompt model
      does not see. Reaching ``alpha`` needs ``R >= 1 / alpha - 1`` runs;
    - a rate ``q`` taken as known, flips independent across prompts: ``p = P(Binomial(n, q) >= X)`` (by
      Hoeffding 1956 it also bounds independent flips of unequal rates with mean ``q``, where it rejects);
    - per-prompt rates ``[q_i]``, flips independent: the exact Poisson-binomial tail.

    >>> r = border_test(list("aaaaaaaaaa"), list("abbbaaaaaa"), 0.02, alpha=0.01)
    >>> r.statistic, round(r.p_value, 6), r.reject
    (3, 0.000864, True)
    """
    alpha = _check_alpha(alpha)
    snap = _tokens(snapshot_tokens, "snapshot_tokens")
    cur = _tokens(current_tokens, "current_tokens")
    if len(snap) != len(cur):
        raise ValueError(f"{len(cur)} current tokens for {len(snap)} border prompts")
    n = len(snap)
    changed = [i for i in range(n) if snap[i] != cur[i]]
    x = len(changed)
    params: dict[str, Any] = {"alpha": alpha}
    rate = benign_flip_rate
    if isinstance(rate, Mapping):
        runs = rate.get("runs")
        if (not isinstance(runs, (list, tuple)) or not runs or rate.get("prompts") != n
                or not all(isinstance(y, (int, np.integer)) and not isinstance(y, bool) and 0 <= y <= n for y in runs)):
            raise ValueError("benign calibration must be border_calibrate's result for these border prompts")
        ys = np.asarray(runs)
        p = float((1 + np.count_nonzero(ys >= x)) / (len(ys) + 1))
        method = "conformal"
        params["benign_runs"] = [int(y) for y in ys]
    elif isinstance(rate, (list, tuple, np.ndarray)):
        rates = np.asarray(rate, dtype=np.float64)
        if rates.shape != (n,) or not np.all((rates >= 0) & (rates < 1)):
            raise ValueError("per-prompt benign flip rates must be one rate in [0, 1) per border prompt")
        p = _poisson_binomial_sf(x, rates)
        method = "poisson_binomial"
        params["benign_flip_rate"] = [float(q) for q in rates]
    else:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"benign_flip_rate must be border_calibrate's result, a rate in [0, 1) or "
                             f"per-prompt rates, got {rate!r}")
        p = float(_sps().binom.sf(x - 1, n, float(rate))) if x > 0 else 1.0
        method = "binomial"
        params["benign_flip_rate"] = float(rate)
    p = min(1.0, p)
    return StatResult(test=f"border_{method}", statistic=x, p_value=p, alpha=alpha, n=n, reject=p <= alpha,
                      params=params, details={"flip_rate": x / n, "changed": changed[:50]})


# ----------------------------------------------------------------------- sampling consistency


def _coarse(positions: Sequence[Any], temperature: float, reported: str
            ) -> tuple[list[np.ndarray], list[int], dict[str, int]]:
    """Per usable position, the claimed sampling distribution over its categories (the top-k tokens best
    first, plus one "tail" category at T=1) and the sampled token's category."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0 (greedy decoding: use border_test), got {temperature!r}")
    if reported not in ("raw", "processed"):
        raise ValueError("reported must be 'raw' (logprobs at T=1) or 'processed' (of the sampling distribution)")
    exact = reported == "processed" or float(temperature) == 1.0
    inv_t = 1.0 if reported == "processed" else 1.0 / float(temperature)
    dists, chosen = [], []
    tail = dropped = 0
    tails = []
    for i, pos in enumerate(positions):
        token, lp, top = parse_position(pos, f"positions[{i}]")
        lps = np.array([v for _, v in top])
        toks = [t for t, _ in top]
        inside = token in toks
        if exact:
            probs = np.exp(lps)
            rest = 1.0 - probs.sum()
            if not inside:
                rest = max(rest, math.exp(lp))  # the tail holds at least the sampled token
                tail += 1
            q = np.append(probs, max(rest, 0.0))
            q /= q.sum()  # rounded logprobs may sum a hair above 1
            chosen.append(toks.index(token) if inside else len(toks))
            tails.append(True)
        else:
            if not inside:
                dropped += 1
                continue
            q = np.exp((lps - lps.max()) * inv_t)
            q /= q.sum()
            chosen.append(toks.index(token))
            tails.append(False)
        dists.append(q)
    return dists, chosen, {"used": len(dists), "tail": tail, "dropped": dropped, "tails": tails}


def sampling_pit(positions: Sequence[Any], temperature: float, *, seed: int,
                 reported: str = "raw") -> tuple[np.ndarray, dict[str, int]]:
    """Randomized probability-integral transform of each sampled token within its served distribution.

    Tokens of a position are ordered by served logprob (best first, ties by token); with ``q`` the claimed
    sampling distribution, ``u = q(tokens before y) + U q(y)``, ``U`` uniform from ``seed``. Under H0 (``y``
    drawn from ``q``) each ``u`` is uniform given the past, so the ``u`` of a completion are i.i.d. uniform.
    ``q``: at ``temperature`` 1 (or ``reported="processed"``: logprobs already of the sampling distribution)
    the served top-k and one "tail" category for the rest (mass ``1 - sum top-k``), exact; at another
    temperature ``q_i`` is ``p_i ** (1 / T)`` renormalized within the top-k, and ``u`` is conditional on ``y``
    being in the top-k (the tail's tempered mass is unknown): positions whose token is outside are dropped.
    Returns ``(u, counts)`` with ``counts`` = ``{"used", "tail", "dropped"}``.
    """
    seed = _check_seed(seed)
    dists, chosen, counts = _coarse(positions, temperature, reported)
    counts.pop("tails")
    jitter = np.random.default_rng(seed).random(len(dists))
    u = np.array([q[:c].sum() + j * q[c] for q, c, j in zip(dists, chosen, jitter)], dtype=np.float64)
    return np.clip(u, 0.0, 1.0), counts


TAIL_OFFSET = 1.0  # nats below the k-th token's log-probability: the score of a token outside the top-k


def _surprisal_stat(cat: np.ndarray, logq: np.ndarray, mean: np.ndarray, sd_total: float) -> np.ndarray:
    """``|sum_i (log q_i(c_i) - E log q_i)| / sqrt(sum Var)`` of each row of categories ``cat`` (B, n)."""
    values = np.take_along_axis(logq[None, :, :], cat[:, :, None], axis=2)[:, :, 0]
    return np.abs((values - mean).sum(axis=1)) / sd_total


def sampling_consistency_test(positions: Sequence[Any], temperature: float, alpha: float = 0.01, *, seed: int,
                              simulations: int = 4000, statistic: str = "surprisal",
                              reported: str = "raw") -> StatResult:
    """Were the sampled tokens drawn from the served distribution at the claimed temperature?

    Under H0 each position's token is a draw from its claimed distribution ``q_i`` (``sampling_pit``), given
    the past. ``statistic``:
    - ``"surprisal"`` (default): ``|sum_i (log q_i(y_i) - E_qi log q_i)| / sqrt(sum_i Var_qi log q_i)``, the
      score test of a temperature change (locally most powerful against ``q ** beta``): positive when the
      tokens are more likely than the claim (a lower temperature), negative when less (a higher temperature,
      or tokens sampled from another model than the one whose logprobs are served);
    - ``"ad"``, ``"ks"``, ``"normal"``, ``"mean"``: a uniformity statistic of the PIT values ``u`` (as in
      ``stats.rank_uniformity_test``), which sees any departure but less of a temperature change.
    The p-value is exact Monte Carlo: the statistic of ``simulations`` samples drawn from the claimed ``q_i``
    themselves (uniforms from ``seed``), ``(1 + #{null >= observed}) / (1 + simulations)``.
    ``details["direction"]``: ``"likelier"`` or ``"unlikelier"`` than the claim (the surprisal's sign, or
    ``mean_u`` below / above 1/2).

    >>> pos = [("a", -0.1, {"a": -0.1, "b": -2.4})] * 60  # the top token 60 times: P = 0.905 ** 60 = 0.0025
    >>> r = sampling_consistency_test(pos, 1.0, alpha=0.05, seed=3, simulations=199)
    >>> r.n, r.reject, r.details["direction"]
    (60, True, 'likelier')
    """
    alpha = _check_alpha(alpha)
    seed = _check_seed(seed)
    simulations = _check_int("simulations", simulations, 1)
    if 1.0 / (simulations + 1) > alpha:
        raise ValueError(f"simulations={simulations} can never give p <= alpha={alpha}")
    if statistic not in ("surprisal", "ad", "ks", "normal", "mean"):
        raise ValueError(f"unknown statistic {statistic!r}")
    dists, chosen, counts = _coarse(positions, temperature, reported)
    n = len(dists)
    if n == 0:
        raise ValueError("no usable position (every sampled token outside the served top-k)")
    width = max(len(q) for q in dists)
    probs = np.zeros((n, width))
    for i, q in enumerate(dists):
        probs[i, :len(q)] = q
    cum = np.cumsum(probs, axis=1)
    bounds = cum.copy()
    bounds[:, -1] = np.inf  # a uniform always lands in some category
    with np.errstate(divide="ignore"):
        logq = np.where(probs > 0, np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    # The tail category's score: not the log of its mass (a lump of many tokens) but an estimate of a tail
    # token's own log-probability, below the k-th's; any fixed function of the served data keeps the test
    # exact, this one keeps the score close to the temperature's (docs/models-blackbox.md).
    for i, has_tail in enumerate(counts.pop("tails")):
        if has_tail:
            k = len(dists[i]) - 1
            logq[i, k] = logq[i, k - 1] - TAIL_OFFSET
    mean = (probs * logq).sum(axis=1)
    var = (probs * (logq - mean[:, None]) ** 2).sum(axis=1)
    sd_total = math.sqrt(max(var.sum(), 1e-300))
    cat_obs = np.asarray(chosen)[None, :]
    rng = np.random.default_rng(seed)
    jitter = rng.random(n)
    u_obs = np.clip(cum[np.arange(n), cat_obs[0]] - probs[np.arange(n), cat_obs[0]] * (1 - jitter), 0.0, 1.0)

    def stat_of(cat: np.ndarray, u: np.ndarray) -> np.ndarray:
        if statistic == "surprisal":
            return _surprisal_stat(cat, logq, mean, sd_total)
        return _rank_statistic(u, statistic)

    observed = float(stat_of(cat_obs, u_obs[None, :])[0])
    null_rng = np.random.default_rng([seed, 1])
    null = []
    for b in _batches(simulations, max(1, (1 << 20) // (n * width))):
        u = null_rng.random((b, n))
        cat = (u[:, :, None] >= bounds[None, :, :]).sum(axis=2) if statistic == "surprisal" else None
        null.append(stat_of(cat, u))
    p = _permutation_p(np.concatenate(null), observed)
    if statistic == "surprisal":
        signed = float((logq[np.arange(n), cat_obs[0]] - mean).sum() / sd_total)
        direction = "likelier" if signed > 0 else "unlikelier"
    else:
        signed = None
        direction = "likelier" if u_obs.mean() < 0.5 else "unlikelier"
    return StatResult(test="sampling_consistency", statistic=observed, p_value=p, alpha=alpha, n=n,
                      reject=p <= alpha,
                      params={"temperature": float(temperature), "alpha": alpha, "seed": seed,
                              "simulations": simulations, "statistic": statistic, "reported": reported},
                      details={"mean_u": float(u_obs.mean()), "signed": signed, "direction": direction, **counts,
                               "pvalue": "Monte Carlo (draws from the claimed distributions)"})


def _batches(total: int, step: int) -> list[int]:
    return [min(step, total - s) for s in range(0, total, step)]


# ------------------------------------------------------------------------ identity (layer 3)


@dataclass(frozen=True)
class PromptFamily:
    """A prompt template with ``{slot}`` fields, each filled from its word list (``slots[slot]``)."""

    name: str
    template: str
    slots: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def size(self) -> int:
        """How many distinct prompts the family can make."""
        return int(np.prod([len(v) for v in self.slots.values()], dtype=object)) if self.slots else 1


def _family_rng(family: PromptFamily, seed: Any) -> np.random.Generator:
    if isinstance(seed, (bytes, bytearray)):
        seed_bytes = bytes(seed)
    elif isinstance(seed, str) and seed.startswith("0x"):
        seed_bytes = bytes.fromhex(seed[2:])
    else:
        seed_bytes = _check_seed(seed).to_bytes(32, "big")
    digest = hashlib.sha256(b"alignment-node/prompt-family/" + family.name.encode() + b"/" + seed_bytes).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def family_prompts(family: PromptFamily, seed: Any, n: int) -> list[str]:
    """``n`` distinct prompts of ``family`` drawn by ``seed`` (the epoch seed: an integer, bytes or 0x-hex).

    Each slot's word is drawn uniformly (slots in name order, one uniform double each), so anyone repeats the
    draw from the seed; a prompt already drawn is drawn again (at most ``50 n`` tries).

    >>> f = PromptFamily("greet", "Say hello to {name} from {city}.", {"name": ["Ada", "Bo"], "city": ["Oslo", "Rome"]})
    >>> sorted(family_prompts(f, 7, 4)) == sorted(f"Say hello to {a} from {c}." for a in ("Ada", "Bo") for c in ("Oslo", "Rome"))
    True
    """
    if not isinstance(family, PromptFamily):
        raise ValueError("family must be a PromptFamily")
    n = _check_int("n", n, 1)
    if n > family.size():
        raise ValueError(f"family {family.name!r} has only {family.size()} distinct prompts, {n} asked")
    rng = _family_rng(family, seed)
    names = sorted(family.slots)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        values = {s: family.slots[s][int(rng.random() * len(family.slots[s]))] for s in names}
        prompt = family.template.format(**values)
        if prompt not in seen:
            seen.add(prompt)
            out.append(prompt)
            if len(out) == n:
                return out
    raise ValueError(f"could not draw {n} distinct prompts of family {family.name!r}")


_NOUNS = ("river", "garden", "library", "harbor", "violin", "glacier", "bakery", "lantern", "orchard", "compass",
          "meadow", "tunnel", "market", "island", "canyon", "festival", "workshop", "castle", "desert", "forest",
          "airport", "museum", "village", "bridge", "volcano", "theater", "kitchen", "stadium", "factory", "planet")
_TOPICS = ("photosynthesis", "compound interest", "the water cycle", "plate tectonics", "vaccines", "inflation",
           "black holes", "the printing press", "recursion", "supply and demand", "tides", "jet engines",
           "bread yeast", "rainbows", "blockchains", "the immune system", "solar panels", "earthquakes",
           "democracy", "entropy", "bird migration", "coral reefs", "antibiotics", "electric cars", "sleep")
_AUDIENCES = ("a child", "a teenager", "a busy manager", "a retired teacher", "a new employee", "a tourist",
              "a nurse", "a farmer", "an engineer", "a journalist", "a student", "a musician")
_ADJECTIVES = ("quiet", "ancient", "crowded", "tiny", "forgotten", "golden", "windy", "hidden", "busy", "frozen",
               "sunny", "haunted", "colorful", "remote", "floating", "noisy", "peaceful", "rainy")
_NAMES = ("Ada", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lena",
          "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Viktor", "Wen", "Yara")

EXAMPLE_FAMILIES = (
    PromptFamily("explain", "Explain {topic} to {audience} in two sentences.",
                 {"topic": _TOPICS, "audience": _AUDIENCES}),
    PromptFamily("story", "Write the first line of a story about {name} and a {adjective} {noun}.",
                 {"name": _NAMES, "adjective": _ADJECTIVES, "noun": _NOUNS}),
    PromptFamily("describe", "Describe a {adjective} {noun} in one sentence.",
                 {"adjective": _ADJECTIVES, "noun": _NOUNS}),
)
"""Examples for tests and the devnet; a real baseline carries its own families with large word lists."""


def _sample_text(sample: Any, where: str) -> tuple[bytes, list | None]:
    if isinstance(sample, str):
        return sample.encode("utf-8"), None
    if isinstance(sample, (bytes, bytearray)):
        return bytes(sample), None
    if isinstance(sample, Mapping) and "text" in sample:
        text = sample["text"]
        body = text.encode("utf-8") if isinstance(text, str) else text
        if not isinstance(body, (bytes, bytearray)):
            raise ValueError(f"{where}: text must be a string")
        positions = sample.get("logprobs")
        if positions is not None and not isinstance(positions, (list, tuple)):
            raise ValueError(f"{where}: logprobs must be a list of positions")
        return bytes(body), (list(positions) if positions else None)
    raise ValueError(f"{where}: a sample is a string or {{'text', 'logprobs'?}}, got {type(sample).__name__}")


def _scored(sample: Any, where: str) -> tuple[bytes, tuple[float, ...]]:
    """A sample's bytes and its ``completion_scores`` (computed from its positions, or as published)."""
    body, positions = _sample_text(sample, where)
    if positions:
        return body, completion_scores({"text": body, "logprobs": positions})
    published = sample.get("scores") if isinstance(sample, Mapping) else None
    if published is None:
        return body, (float(len(body)),)
    if (not isinstance(published, (list, tuple)) or len(published) not in (1, 4)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) for v in published)):
        raise ValueError(f"{where}: scores must be completion_scores' 1 or 4 numbers")
    if float(published[0]) != float(len(body)):
        raise ValueError(f"{where}: scores[0] must be the text's length in bytes")
    return body, tuple(float(v) for v in published)


def completion_scores(sample: Any, with_logprobs: bool = True) -> tuple[float, ...]:
    """The public score of one completion, needing no weights: ``(bytes,)`` or, with its served positions,
    ``(bytes, mean sampled-token logprob, mean top-1 logprob, mean entropy of the renormalized top-k)``.

    >>> s = completion_scores({"text": "ab", "logprobs": [("b", -2.4, {"a": -0.1, "b": -2.4})]})
    >>> s[0], s[1], round(s[2], 3), round(s[3], 3)
    (2.0, -2.4, -0.1, 0.305)
    """
    body, positions = _sample_text(sample, "sample")
    if not with_logprobs:
        return (float(len(body)),)
    if not positions:
        raise ValueError("completion_scores with logprobs needs the sample's positions")
    top1, ent, chosen = [], [], []
    for i, pos in enumerate(positions):
        _, lp, top = parse_position(pos, f"logprobs[{i}]")
        chosen.append(lp)
        best = top[0][1]
        if best == -math.inf:
            raise ValueError(f"logprobs[{i}]: every top logprob is -inf")
        shifted = [v - best for _, v in top]  # <= 0, the first 0
        weights = [math.exp(v) for v in shifted]
        z = sum(weights)
        top1.append(best)
        ent.append(math.log(z) - sum(w * v for w, v in zip(weights, shifted) if w > 0) / z)
    n = len(top1)
    return float(len(body)), max(-1e300, sum(chosen) / n), float(sum(top1) / n), float(sum(ent) / n)


def identity_test(provider_samples: Mapping[str, Sequence[Any]], reference: Mapping[str, Sequence[Any]],
                  alpha: float = 0.01, *, seed: int, permutations: int = 1000, length: int = 64,
                  method: str = "holm") -> StatResult:
    """Are the provider's completions of fresh family prompts samples of the keeper's reference mixture?

    ``provider_samples[family]``: the provider's completions of prompts drawn from that family by the epoch
    seed (``family_prompts``); ``reference[family]``: the keeper's completions by the registered model of other
    fresh draws of the same family. Under H0 both are i.i.d. draws of one mixture (prompt drawn, then
    completion), so within a family they are exchangeable and both tests are exact permutation tests:
    - ``mmd_hamming`` (``stats.mmd_hamming_test``, MET's kernel on the first ``length`` UTF-8 bytes), one
      "prompt" per family, pooled;
    - ``rank_uniformity`` (``stats.rank_uniformity_test``, Anderson-Darling) of ``completion_scores``: the
      length, and when every sample carries its served positions, the mean served logprob of the sampled
      tokens, the mean top-1 logprob and the mean top-k entropy, ranked within each family among the
      reference's (each component its statistic, the largest the test's, calibrated jointly).
    A sample is a string, or ``{"text", "logprobs"?: positions, "scores"?: completion_scores(...)}``: the
    keeper may publish each reference completion's scores instead of its positions (a baseline of text and
    four numbers per completion, not 20 logprobs per token; in memory too).
    Combined by ``stats.combine`` (Holm by default) at ``alpha``; ``details["tests"]`` holds both results.
    """
    alpha = _check_alpha(alpha)
    seed = _check_seed(seed)
    permutations = _check_int("permutations", permutations, 1)
    if 2.0 / (permutations + 1) > alpha:  # Holm over the two tests needs one p-value <= alpha / 2
        raise ValueError(f"permutations={permutations} can never reject at alpha={alpha} after Holm: use at "
                         f"least {math.ceil(2.0 / alpha) - 1}")
    if not isinstance(provider_samples, Mapping) or not isinstance(reference, Mapping):
        raise ValueError("provider_samples and reference map family name -> list of samples")
    families = sorted(provider_samples)
    if not families:
        raise ValueError("no provider samples")
    missing = [f for f in families if f not in reference or not reference[f]]
    if missing:
        raise ValueError(f"no reference samples for famil{'y' if len(missing) == 1 else 'ies'} {missing}")
    parsed: dict[str, tuple[list, list]] = {}
    with_lp = True
    for f in families:
        prov = [_scored(s, f"provider_samples[{f!r}][{i}]") for i, s in enumerate(provider_samples[f])]
        ref = [_scored(s, f"reference[{f!r}][{i}]") for i, s in enumerate(reference[f])]
        if not prov:
            raise ValueError(f"no provider samples for family {f!r}")
        with_lp &= all(len(sc) == 4 for _, sc in prov + ref)
        parsed[f] = (prov, ref)
    a, b, prov_scores, ref_scores = [], [], [], {}
    for fid, f in enumerate(families):
        prov, ref = parsed[f]
        a += [(fid, body) for body, _ in prov]
        b += [(fid, body) for body, _ in ref]
        prov_scores += [(fid, sc if with_lp else sc[:1]) for _, sc in prov]
        ref_scores[fid] = [sc if with_lp else sc[:1] for _, sc in ref]
    mmd = mmd_hamming_test(a, b, alpha=alpha, permutations=permutations, seed=seed, length=length)
    rank = rank_uniformity_test(prov_scores, ref_scores, alpha=alpha, seed=seed + 1, permutations=permutations)
    joint = combine([mmd, rank], alpha, method=method)
    return StatResult(
        test="identity", statistic=joint.statistic, p_value=joint.p_value, alpha=alpha, n=len(a),
        reject=joint.reject,
        params={"alpha": alpha, "seed": seed, "permutations": permutations, "length": length, "method": method},
        details={"families": families,
                 "scores": ["bytes", "sampled_logprob", "top1_logprob", "topk_entropy"] if with_lp else ["bytes"],
                 "tests": [mmd.to_dict(), rank.to_dict()], **{k: v for k, v in joint.details.items()
                                                              if k in ("adjusted", "rejected")}})


# ------------------------------------------------------------------------------- joint decision


def joint_decision(layers: Mapping[str, StatResult | Sequence[StatResult]], alpha: float = 0.01, *,
                   tee: bool | None = None, weights: Mapping[str, float] | None = None) -> StatResult:
    """One verdict of the layers that apply, with family-wise false-positive rate at most ``alpha``.

    ``layers``: layer name -> its test result(s) (e.g. ``{"drift": [lt], "sampling": sc, "identity": idt}``).
    Weighted Bonferroni across layers (layer ``l`` gets ``alpha * w_l``, weights normalized, equal by default)
    and Holm within a layer at that level: valid under any dependence. A result without a p-value (a
    calibrated threshold, like ``stats.embedding_test``) is taken as its own decision and spends none of
    ``alpha``: its calibrated rate adds to the joint one (listed in ``details["uncounted"]``). ``tee``: the TEE
    layer's exact verdict (True passed, False failed, None not claimed), alpha 0. ``p_value`` is the joint
    one: ``min_l (Holm p of layer l) / w_l``, capped at 1 (0 when the TEE check failed).

    >>> lt = StatResult("lt_fingerprint", 0.4, 0.001, 0.01, 16, True)
    >>> idt = StatResult("identity", 0.1, 0.3, 0.01, 100, False)
    >>> r = joint_decision({"drift": lt, "identity": idt}, alpha=0.01)
    >>> r.reject, r.details["fired"], r.p_value
    (True, ['drift'], 0.002)
    >>> joint_decision({"identity": idt}, alpha=0.01, tee=False).details["fired"]
    ['tee']
    """
    alpha = _check_alpha(alpha)
    if not isinstance(layers, Mapping):
        raise ValueError("layers maps a layer name to its result(s)")
    groups: dict[str, list[StatResult]] = {}
    for name, value in layers.items():
        results = [value] if isinstance(value, StatResult) else list(value)
        if not results or not all(isinstance(r, StatResult) for r in results):
            raise ValueError(f"layer {name!r}: expected StatResult(s)")
        groups[str(name)] = results
    counted = {n: [r for r in rs if r.p_value is not None] for n, rs in groups.items()}
    counted = {n: rs for n, rs in counted.items() if rs}
    if weights is None:
        w = {n: 1.0 for n in counted}
    else:
        w = {n: float(weights.get(n, 0.0)) for n in counted}
        if any(v < 0 or math.isnan(v) for v in w.values()) or (counted and sum(w.values()) <= 0):
            raise ValueError("weights must be non-negative with a positive sum over the layers with p-values")
    total = sum(w.values()) or 1.0
    w = {n: v / total for n, v in w.items()}
    fired: list[str] = []
    per_layer: dict[str, Any] = {}
    uncounted = []
    if tee is False:
        fired.append("tee")
    joint_p = 0.0 if tee is False else 1.0
    for name, results in groups.items():
        for r in results:
            if r.p_value is None:
                uncounted.append(f"{name}:{r.test}")
                if r.reject and name not in fired:
                    fired.append(name)
        if name not in counted:
            continue
        level = alpha * w[name]
        holm = combine(counted[name], 0.5, method="holm")  # adjusted p-values only; the level is ours
        p_layer = float(holm.p_value)
        rejected = [t for t, adj in zip(holm.details["tests"], holm.details["adjusted"]) if adj <= level]
        per_layer[name] = {"weight": w[name], "alpha": level, "holm_p": p_layer, "rejected": rejected}
        if w[name] > 0:
            joint_p = min(joint_p, p_layer / w[name])
            if p_layer <= level and name not in fired:
                fired.append(name)
    joint_p = min(1.0, joint_p)
    return StatResult(test="joint", statistic=float(len(fired)), p_value=joint_p, alpha=alpha,
                      n=sum(len(v) for v in groups.values()), reject=bool(fired),
                      params={"alpha": alpha, "weights": dict(w), "tee": tee},
                      details={"fired": fired, "layers": per_layer, "uncounted": uncounted})
