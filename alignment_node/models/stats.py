"""Statistical tests of the model audits: is a provider serving the registered model, with its behaviour?

Pure functions of samples (numpy and scipy only). Each returns a ``StatResult``: the test's name, statistic,
p-value, alpha, sample size, decision and the ``params`` that repeat it exactly (``to_evidence()``: its
bundle form, floats as ``repr`` strings).

- substitution: ``mmd_hamming_test`` (two-sample MMD with a Hamming kernel), ``rank_scores`` and
  ``rank_uniformity_test`` (ranks of the reference model's scores of the provider's completions among its own
  samples'), ``mean_logprob_test``; ``combine`` (Holm or Cauchy) makes one decision of several tests;
- embeddings: ``embedding_test``, ``calibrate_tolerance``;
- behaviour: ``rate_test``, ``clopper_pearson``.

What the tests compute, why they are valid and how results repeat: docs/models.md; their power and false
positives on the devnet models: bench/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import special


def _sps():
    """scipy.stats, imported on first use: about 46 MB that the weights-free MODEL worker does not need (only
    the Clopper-Pearson interval and the rate tests use it)."""
    from scipy import stats

    return stats

__all__ = ["StatResult", "mmd_hamming_test", "rank_scores", "rank_uniformity_test", "mean_logprob_test",
           "combine", "embedding_test", "calibrate_tolerance", "rate_test", "clopper_pearson", "PAD",
           "RANK_STATISTICS"]

PAD = 256  # the pad symbol of the Hamming kernel: no byte value, so padding agrees only with padding
RANK_STATISTICS = ("normal", "mean", "ad", "ks")
_BATCH_CELLS = 1 << 21  # permutations x completions per batched product (about 16 MB of float64)


@dataclass(frozen=True)
class StatResult:
    """One test's outcome. ``params`` repeat it: ``fn(*same_inputs, **params)`` gives the same result."""

    test: str
    statistic: float
    p_value: float | None
    alpha: float | None
    n: int
    reject: bool
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "statistic": self.statistic, "p_value": self.p_value, "alpha": self.alpha,
                "n": self.n, "reject": self.reject, "params": dict(self.params), "details": dict(self.details)}

    def to_evidence(self) -> dict[str, Any]:
        """``to_dict`` with every float as its ``repr`` string (exact; evidence bundles carry no floats).

        >>> StatResult("t", 0.5, 0.25, 0.01, 3, False, params={"seed": 1}).to_evidence()["p_value"]
        '0.25'
        >>> StatResult("t", 0.5, None, None, 3, False, details={"x": [0.1, 2]}).to_evidence()["details"]
        {'x': ['0.1', 2]}"""
        return _floats_to_str(self.to_dict())


def _floats_to_str(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _floats_to_str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats_to_str(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------ checks


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_count(name: str, k: Any, n: Any) -> tuple[int, int]:
    """(k, n) of a binomial count: integers with ``0 <= k <= n`` and ``n >= 1``."""
    n = _check_int("n", n, 1)
    k = _check_int(name, k, 0)
    if k > n:
        raise ValueError(f"{name}={k} exceeds n={n}")
    return k, n


def _check_permutations(permutations: Any, alpha: float) -> int:
    b = _check_int("permutations", permutations, 1)
    if 1.0 / (b + 1) > alpha:
        raise ValueError(f"permutations={b} can never give p <= alpha={alpha}: use at least "
                         f"{math.ceil(1.0 / alpha) - 1}")
    return b


def _check_prompt(prompt: Any, where: str) -> int:
    if isinstance(prompt, bool) or not isinstance(prompt, (int, np.integer)):
        raise ValueError(f"{where}: prompt id must be an integer, got {prompt!r}")
    return int(prompt)


def _permutation_p(null: np.ndarray, observed: float) -> float:
    """(1 + #{null >= observed}) / (1 + B): a valid p-value (never 0); ties count against rejection."""
    tol = 1e-12 * max(1.0, abs(observed))
    return float((1 + np.count_nonzero(null >= observed - tol)) / (1 + null.size))


def _orderings(rng: np.random.Generator, batch: int, size: int) -> np.ndarray:
    """``batch`` uniformly random permutations of ``range(size)`` (argsort of uniform doubles)."""
    return np.argsort(rng.random((batch, size)), axis=1, kind="stable")


# ------------------------------------------------------------------------------------- MMD Hamming


def _check_sample(sample: Any, name: str) -> list[tuple[int, bytes]]:
    if isinstance(sample, (bytes, str)) or not isinstance(sample, Iterable):
        raise ValueError(f"{name} must be a list of (prompt_id, completion bytes) pairs")
    out = []
    for i, item in enumerate(sample):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{name}[{i}] must be a (prompt_id, completion bytes) pair, got {item!r:.80}")
        prompt, completion = item
        prompt = _check_prompt(prompt, f"{name}[{i}]")
        if not isinstance(completion, (bytes, bytearray)):
            raise ValueError(f"{name}[{i}]: completion must be bytes (encode text as UTF-8), "
                             f"got {type(completion).__name__}")
        out.append((prompt, bytes(completion)))
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _encode(completions: Sequence[bytes], length: int) -> np.ndarray:
    arr = np.full((len(completions), length), PAD, dtype=np.int16)
    for i, c in enumerate(completions):
        c = c[:length]
        arr[i, :len(c)] = np.frombuffer(c, dtype=np.uint8)
    return arr


def _hamming_gram(x: np.ndarray) -> np.ndarray:
    """Agreement counts of every pair of rows (integers in float64), zero diagonal."""
    g = np.zeros((len(x), len(x)), dtype=np.float64)
    for col in x.T:
        g += col[:, None] == col[None, :]
    np.fill_diagonal(g, 0.0)
    return g


def mmd_hamming_test(sample_a: Sequence[tuple[int, bytes]], sample_b: Sequence[tuple[int, bytes]], *,
                     alpha: float = 0.01, permutations: int = 1000, seed: int,
                     length: int | None = None) -> StatResult:
    """Do ``sample_a`` and ``sample_b`` (lists of ``(prompt_id, completion)``) come from one distribution?

    ``length``: positions compared (completions are truncated or padded to it); default the longest
    completion. Prompts present in only one sample carry no information on the difference and are left out
    (``details["dropped"]``). Rejects when the permutation p-value is at most ``alpha``.

    >>> a = [(0, b"abc"), (0, b"abd"), (1, b"xy")]
    >>> b = [(0, b"abc"), (0, b"zzz"), (1, b"xy"), (1, b"xz")]
    >>> r = mmd_hamming_test(a, b, alpha=0.05, permutations=99, seed=0)
    >>> round(r.statistic, 4), r.n, r.details["prompts"], r.params["length"]
    (-0.1111, 7, 2, 3)
    """
    alpha = _check_alpha(alpha)
    permutations = _check_permutations(permutations, alpha)
    seed = _check_seed(seed)
    a = _check_sample(sample_a, "sample_a")
    b = _check_sample(sample_b, "sample_b")
    if length is None:
        length = max(1, max(len(c) for _, c in a + b))
    length = _check_int("length", length, 1)

    by_prompt: dict[int, tuple[list[bytes], list[bytes]]] = {}
    for label, sample in ((0, a), (1, b)):
        for prompt, completion in sample:
            by_prompt.setdefault(prompt, ([], []))[label].append(completion)
    shared = sorted(p for p, (xa, xb) in by_prompt.items() if xa and xb)
    if not shared:
        raise ValueError("the two samples share no prompt: the kernel is 0 across prompts, nothing to compare")
    dropped = len(a) + len(b) - sum(len(by_prompt[p][0]) + len(by_prompt[p][1]) for p in shared)

    rng = np.random.default_rng(seed)
    # Per prompt: sums of the kernel within A (q), within B and across, for the observed labels and for
    # each permutation. With z the 0/1 indicator of A, G the Gram matrix (zero diagonal), r = G 1, T = 1'G1:
    # within A = z'Gz, across = r'z - z'Gz, within B = T - 2 r'z + z'Gz.
    s_xx = np.zeros(permutations + 1)
    s_xy = np.zeros(permutations + 1)
    s_yy = np.zeros(permutations + 1)
    n_xx = n_xy = n_yy = 0
    for prompt in shared:
        xa, xb = by_prompt[prompt]
        na, nb = len(xa), len(xb)
        k = na + nb
        g = _hamming_gram(_encode(xa + xb, length))
        r = g.sum(axis=1)
        total = r.sum()
        n_xx += na * (na - 1)
        n_xy += na * nb
        n_yy += nb * (nb - 1)
        q = np.empty(permutations + 1)
        lin = np.empty(permutations + 1)
        q[0] = g[:na, :na].sum()
        lin[0] = r[:na].sum()
        step = max(1, _BATCH_CELLS // k)
        for start in range(0, permutations, step):
            batch = min(step, permutations - start)
            z = (_orderings(rng, batch, k) < na).astype(np.float64)  # rows: random na-subsets of the k
            q[1 + start:1 + start + batch] = np.einsum("bj,bj->b", z @ g, z)
            lin[1 + start:1 + start + batch] = z @ r
        s_xx += q
        s_xy += lin - q
        s_yy += total - 2 * lin + q

    stat = np.zeros(permutations + 1)
    for sums, count, weight in ((s_xx, n_xx, 1.0), (s_xy, n_xy, -2.0), (s_yy, n_yy, 1.0)):
        if count:
            stat += weight * (sums / (count * length))
    observed = float(stat[0])
    p = _permutation_p(stat[1:], observed)
    used = len(a) + len(b) - dropped
    return StatResult(
        test="mmd_hamming", statistic=observed, p_value=p, alpha=alpha, n=used, reject=p <= alpha,
        params={"alpha": alpha, "permutations": permutations, "seed": seed, "length": length},
        details={"n_a": len(a), "n_b": len(b), "prompts": len(shared), "dropped": dropped,
                 "kernel": "hamming_fraction", "pad": PAD, "pvalue": "within-prompt permutation"})


# ------------------------------------------------------------------------------------ rank tests


def _as_score(value: Any, where: str) -> tuple[float, ...]:
    """One completion's score(s) as a tuple of floats; NaN and +inf refused (-inf kept, see _check_scores)."""
    items = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,)
    if not items:
        raise ValueError(f"{where}: empty score")
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)):
            raise ValueError(f"{where}: score must be a number or a tuple of numbers, got {x!r:.80}")
        x = float(x)
        if math.isnan(x) or x == math.inf:
            raise ValueError(f"{where}: score is {x} (only finite values and -inf allowed)")
        out.append(x)
    return tuple(out)


def _check_scores(provider_scores: Any, reference_scores: Any, min_reference: int
                  ) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(prompts (n,), scores (n, d), {prompt: reference scores (m, d)}) validated, for the prompts used.

    A score is a number or a tuple of ``d`` numbers (the same ``d`` everywhere). Provider scores may be
    ``-inf`` (a completion the reference model deems impossible is evidence, not bad input); NaN and ``+inf``
    are refused, and reference scores must be finite.
    """
    if isinstance(provider_scores, (bytes, str, Mapping)) or not isinstance(provider_scores, Iterable):
        raise ValueError("provider_scores must be a list of (prompt_id, score) pairs")
    prompts, scores = [], []
    for i, item in enumerate(provider_scores):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"provider_scores[{i}] must be a (prompt_id, score) pair, got {item!r:.80}")
        prompts.append(_check_prompt(item[0], f"provider_scores[{i}]"))
        scores.append(_as_score(item[1], f"provider_scores[{i}]"))
    if not prompts:
        raise ValueError("provider_scores is empty")
    dim = len(scores[0])
    if any(len(s) != dim for s in scores):
        raise ValueError("provider_scores mix scores of different lengths")
    if not isinstance(reference_scores, Mapping):
        raise ValueError("reference_scores must map prompt_id -> list of reference scores")
    refs: dict[int, np.ndarray] = {}
    for prompt in sorted(set(prompts)):
        if prompt not in reference_scores:
            raise ValueError(f"no reference scores for prompt {prompt}")
        values = reference_scores[prompt]
        if isinstance(values, (bytes, str)) or not isinstance(values, Iterable):
            raise ValueError(f"reference scores of prompt {prompt} must be a list")
        ref = [_as_score(v, f"reference_scores[{prompt}]") for v in values]
        if len(ref) < min_reference:
            raise ValueError(f"prompt {prompt}: need at least {min_reference} reference scores, got {len(ref)}")
        if any(len(r) != dim for r in ref):
            raise ValueError(f"prompt {prompt}: reference scores must have {dim} component(s) like the provider's")
        arr = np.asarray(ref, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"prompt {prompt}: reference scores must be finite (found -inf)")
        refs[prompt] = arr
    return np.asarray(prompts, dtype=np.int64), np.asarray(scores, dtype=np.float64), refs


def _ranks_u(values: np.ndarray, labels: np.ndarray, k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``u`` of the provider-labelled items (rows of ``labels``: which of the pooled ``values`` are the provider's).

    Ties are broken by one random order shared by all rows; a provider item's rank is the number of reference
    items before it; ``u = (rank + U) / (m + 1)``.
    """
    order = np.lexsort((rng.random(k + m), values))
    lab = labels[:, order]
    refs_before = np.cumsum(~lab, axis=1)
    ranks = refs_before[lab].reshape(len(labels), k)
    return (ranks + rng.random((len(labels), k))) / (m + 1)


def rank_scores(provider_scores: Sequence[tuple[int, Any]], reference_scores: Mapping[int, Sequence[Any]],
                *, seed: int) -> np.ndarray:
    """Each provider completion's randomized rank among its prompt's reference scores, scaled to (0, 1).

    ``u = (#{reference < s} + U (#{reference == s} + 1)) / (m + 1)``, ``U`` uniform: exactly uniform on (0, 1)
    when the completion comes from the reference model. Low ``u``: less likely than the reference model's own
    samples; high: more likely. Shape (n,) for scalar scores, (n, d) for ``d``-tuples. The input of
    ``drift.normal_scores`` for a per-completion drift stream.

    >>> reference = {0: [-12.0, -10.0, -11.0], 1: [-21.0, -19.0, -22.0]}
    >>> u = rank_scores([(0, -10.0), (0, -13.0), (1, -18.0)], reference, seed=1)
    >>> [round(float(x), 3) for x in u]  # -10.0: 2 below, 1 tie, so in (2/4, 4/4); -13.0 below all, -18.0 above
    [0.756, 0.238, 0.786]
    """
    seed = _check_seed(seed)
    prompts, scores, refs = _check_scores(provider_scores, reference_scores, 1)
    rng = np.random.default_rng(seed)
    u = np.empty(scores.shape)
    for prompt, ref in refs.items():
        mask = prompts == prompt
        jitter = rng.random((int(mask.sum()), scores.shape[1]))
        for j in range(scores.shape[1]):
            srt = np.sort(ref[:, j])
            below = np.searchsorted(srt, scores[mask, j], side="left")
            ties = np.searchsorted(srt, scores[mask, j], side="right") - below
            u[mask, j] = (below + jitter[:, j] * (ties + 1)) / (len(srt) + 1)
    return u[:, 0] if scores.shape[1] == 1 else u


def _rank_statistic(u: np.ndarray, kind: str) -> np.ndarray:
    """The statistic of each row of ``u`` (shape (B, n)); large means far from uniform."""
    n = u.shape[-1]
    u = np.clip(u, 2.0 ** -60, 1.0 - 2.0 ** -53)  # U may be exactly 0: keep the logs finite
    if kind == "normal":
        return np.abs(special.ndtri(u).sum(axis=-1)) / math.sqrt(n)
    if kind == "mean":
        return np.abs((u - 0.5).sum(axis=-1)) / math.sqrt(n / 12.0)
    s = np.sort(u, axis=-1)
    i = np.arange(1, n + 1)
    if kind == "ks":
        return np.maximum((i / n - s).max(axis=-1), (s - (i - 1) / n).max(axis=-1)) * math.sqrt(n)
    # Anderson-Darling against the uniform
    return -n - ((2 * i - 1) * (np.log(s) + np.log1p(-s[..., ::-1]))).sum(axis=-1) / n


def rank_uniformity_test(provider_scores: Sequence[tuple[int, Any]], reference_scores: Mapping[int, Sequence[Any]],
                         *, alpha: float = 0.01, seed: int, permutations: int = 1000,
                         statistic: str = "ad") -> StatResult:
    """Are the provider's completions ranked like the reference model's own samples (uniform ranks)?

    ``provider_scores``: ``(prompt_id, score)`` per provider completion, the score a function of the prompt and
    completion computed with the reference model, e.g. ``log P_ref(completion | prompt)``, or a tuple of
    several (e.g. the total and the per-token log-probability: each gets its statistic and the largest is the
    test's, calibrated jointly). ``reference_scores[prompt_id]``: the same scores of the reference model's own
    samples of that prompt. ``statistic``: one of ``RANK_STATISTICS`` (docs/models.md).
    ``details["mean_u"]`` tells the direction per component (above 0.5: more likely than the reference's
    samples, e.g. a lower temperature).
    """
    alpha = _check_alpha(alpha)
    seed = _check_seed(seed)
    permutations = _check_permutations(permutations, alpha)
    if statistic not in RANK_STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}: one of {', '.join(RANK_STATISTICS)}")
    prompts, scores, refs = _check_scores(provider_scores, reference_scores, 1)
    n, dim = scores.shape
    rng = np.random.default_rng(seed)
    # Row 0 the observed labels, rows 1.. a permutation of the labels within each prompt (exact under H0: the
    # provider's completions and the reference samples of a prompt are exchangeable).
    pooled = [(np.concatenate([scores[prompts == p], ref]), int(np.count_nonzero(prompts == p)), len(ref))
              for p, ref in refs.items()]
    per_dim = np.empty((permutations + 1, dim))
    mean_u = np.zeros(dim)
    step = max(1, _BATCH_CELLS // sum(k + m for _, k, m in pooled))
    for start in range(0, permutations + 1, step):
        batch = min(step, permutations + 1 - start)
        parts: list[list[np.ndarray]] = [[] for _ in range(dim)]
        for values, k, m in pooled:
            labels = _orderings(rng, batch, k + m) < k
            if start == 0:
                labels[0] = np.arange(k + m) < k
            for j in range(dim):
                parts[j].append(_ranks_u(values[:, j], labels, k, m, rng))
        for j in range(dim):
            u = np.concatenate(parts[j], axis=1)
            per_dim[start:start + batch, j] = _rank_statistic(u, statistic)
            if start == 0:
                mean_u[j] = u[0].mean()
    stats = per_dim.max(axis=1)
    observed = float(stats[0])
    p = _permutation_p(stats[1:], observed)
    sizes = [m for _, _, m in pooled]
    return StatResult(
        test="rank_uniformity", statistic=observed, p_value=p, alpha=alpha, n=n, reject=p <= alpha,
        params={"alpha": alpha, "seed": seed, "permutations": permutations, "statistic": statistic},
        details={"mean_u": [float(x) for x in mean_u], "components": [float(x) for x in per_dim[0]],
                 "prompts": len(refs), "reference_per_prompt": [min(sizes), max(sizes)],
                 "pvalue": "within-prompt permutation of provider and reference labels"})


def mean_logprob_test(provider_scores: Sequence[tuple[int, float]],
                      reference_scores: Mapping[int, Sequence[float]], *, alpha: float = 0.01) -> StatResult:
    """z-test: is the provider's mean standardized reference log-probability that of the reference samples?

    ``Z = sum_i (s_i - mean_p) / sd_p / sqrt(sum_p k_p (1 + k_p / m_p))``, two-sided normal p-value. The
    statistic's sign gives the direction (positive: more likely than the reference model's own samples).
    One score per completion; at least 2 reference scores per prompt, not all equal.

    >>> r = mean_logprob_test([(0, -10.0), (0, -9.0), (1, -20.0)], {0: [-12.0, -10.0, -11.0], 1: [-21.0, -19.0, -22.0]})
    >>> round(r.statistic, 3), round(r.p_value, 3), r.reject
    (1.591, 0.112, False)
    """
    alpha = _check_alpha(alpha)
    prompts, scores, refs = _check_scores(provider_scores, reference_scores, 2)
    if scores.shape[1] != 1:
        raise ValueError("mean_logprob_test takes one score per completion, not tuples")
    total = 0.0
    variance = 0.0
    for prompt, ref in refs.items():
        ref = ref[:, 0]
        sd = float(ref.std(ddof=1))
        if not sd > 0:
            raise ValueError(f"prompt {prompt}: reference scores are all equal (standard deviation 0)")
        x = scores[prompts == prompt, 0]
        k, m = len(x), len(ref)
        total += float(((x - ref.mean()) / sd).sum())
        variance += k * (1.0 + k / m)
    z = total / math.sqrt(variance)
    p = float(2.0 * special.ndtr(-abs(z)))
    return StatResult(test="mean_logprob", statistic=z, p_value=p, alpha=alpha, n=len(scores),
                      reject=p <= alpha, params={"alpha": alpha},
                      details={"prompts": len(refs), "pvalue": "normal approximation"})


# ---------------------------------------------------------------------------------- combination


def combine(results: Sequence[StatResult | Mapping[str, Any]], alpha: float = 0.01, *,
            method: str = "holm") -> StatResult:
    """One decision from several tests (of the same samples, so dependent) with family-wise error <= alpha.

    ``holm``: Holm's adjusted p-values (``details["adjusted"]``, in input order); the joint p-value is the
    smallest adjusted one, ``min(1, k min p)``, and the family rejects when it is at most ``alpha``.
    ``cauchy``: the Cauchy combination ``T = mean tan((1/2 - p_i) pi)``, p-value ``1/2 - arctan(T) / pi``.

    >>> r = combine([{"test": "a", "p_value": 0.01}, {"test": "b", "p_value": 0.04}, {"test": "c", "p_value": 0.3}],
    ...             alpha=0.05)
    >>> r.test, round(r.p_value, 10), r.reject, [round(x, 10) for x in r.details["adjusted"]], r.details["rejected"]
    ('holm(a,b,c)', 0.03, True, [0.03, 0.08, 0.3], ['a'])
    >>> round(combine([{"p_value": 0.01}, {"p_value": 0.04}], 0.05, method="cauchy").p_value, 4)
    0.016
    """
    alpha = _check_alpha(alpha)
    if method not in ("holm", "cauchy"):
        raise ValueError(f"unknown method {method!r}: holm or cauchy")
    if not results:
        raise ValueError("combine needs at least one result")
    names, ps = [], []
    for i, r in enumerate(results):
        d = r.to_dict() if isinstance(r, StatResult) else r
        if not isinstance(d, Mapping) or "p_value" not in d:
            raise ValueError(f"results[{i}] is not a test result")
        p = d["p_value"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"results[{i}] ({d.get('test')}): p-value must be in [0, 1], got {p!r}")
        names.append(str(d.get("test", i)))
        ps.append(float(p))
    k = len(ps)
    p_arr = np.asarray(ps)
    if method == "holm":
        order = np.argsort(p_arr, kind="stable")
        adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * p_arr[order]))
        adjusted = np.empty(k)
        adjusted[order] = adjusted_sorted
        joint = float(adjusted.min())
        details = {"adjusted": [float(x) for x in adjusted],
                   "rejected": [names[i] for i in range(k) if adjusted[i] <= alpha]}
        statistic = float(p_arr.min())
    else:
        clipped = np.clip(p_arr, 1e-300, 1.0 - 1e-16)
        statistic = float(np.mean(np.tan((0.5 - clipped) * math.pi)))
        joint = float(min(1.0, max(0.0, 0.5 - math.atan(statistic) / math.pi)))
        details = {}
    return StatResult(test=f"{method}({','.join(names)})", statistic=statistic, p_value=joint, alpha=alpha,
                      n=k, reject=joint <= alpha, params={"alpha": alpha, "method": method},
                      details={"tests": names, "p_values": ps, **details})


# ----------------------------------------------------------------------------------- embeddings


def _matrix(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric vector or matrix") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty vector or (n, d) matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has NaN or infinite entries")
    norms = np.linalg.norm(arr, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"{name} row {int(np.argmin(norms))} is the zero vector (no direction)")
    return arr / norms[:, None]


def embedding_test(returned: Any, reference: Any, tolerance: float) -> StatResult:
    """Largest cosine distance ``1 - cos`` between each returned vector and its reference; flags above tolerance.

    ``returned`` and ``reference``: (n, d) arrays (or one vector each) in the same order. ``p_value`` and
    ``alpha`` are None: the false-positive rate is set by calibrating ``tolerance`` (``calibrate_tolerance``).

    >>> r = embedding_test([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [1.0, 1.0]], tolerance=0.1)
    >>> r.reject, round(r.statistic, 4), r.details["argmax"]
    (True, 0.2929, 1)
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 2:
        raise ValueError(f"tolerance must be a number in [0, 2), got {tolerance!r}")
    ret = _matrix(returned, "returned")
    ref = _matrix(reference, "reference")
    if ret.shape != ref.shape:
        raise ValueError(f"returned has shape {ret.shape}, reference {ref.shape}")
    distances = np.clip(1.0 - np.einsum("ij,ij->i", ret, ref), 0.0, 2.0)
    worst = float(distances.max())
    return StatResult(test="embedding_cosine", statistic=worst, p_value=None, alpha=None, n=len(distances),
                      reject=worst > tolerance, params={"tolerance": float(tolerance)},
                      details={"distances": [float(x) for x in distances], "argmax": int(distances.argmax())})


def calibrate_tolerance(benign_distances: Any, factor: float = 10.0, floor: float = 1e-6) -> float:
    """A tolerance for ``embedding_test``: ``max(floor, factor * max(benign_distances))``.

    The benign distances are between embeddings of the same inputs by the same model under changes that must
    not be flagged (thread count, batch size, padding); the factor leaves room for unseen benign settings and
    the floor for a model that was bit-exact in calibration. Any real substitution moves vectors far more
    (int8 weights: about 1e-3 and up; another model: about 0.5).

    >>> calibrate_tolerance([1e-5, 2.5e-5], factor=4.0)
    0.0001
    >>> calibrate_tolerance([0.0])  # bit-exact: the floor
    1e-06
    """
    arr = np.asarray(benign_distances, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("calibrate_tolerance needs at least one benign distance")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("benign distances must be finite and non-negative")
    for name, value in (("factor", factor), ("floor", floor)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(max(floor, factor * arr.max()))


# ------------------------------------------------------------------------------- behaviour rates


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion with ``k`` of ``n``.

    Its upper end is also a one-sided upper bound at ``(1 + confidence) / 2`` (e.g. ``confidence=0.90``
    gives the 95% upper bound of a false-positive rate).

    >>> [round(x, 4) for x in clopper_pearson(3, 10)]
    [0.0667, 0.6525]
    >>> clopper_pearson(0, 10)[0], clopper_pearson(10, 10)[1]
    (0.0, 1.0)
    """
    k, n = _check_count("k", k, n)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    tail = (1.0 - confidence) / 2.0
    sps = _sps()
    lo = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1.0 - tail, k + 1, n - k))
    return lo, hi


def rate_test(successes: int, n: int, baseline_rate: float, baseline_n: int | None, alpha: float = 0.01
              ) -> StatResult:
    """Does a probe set's pass rate (``successes`` of ``n``) differ from the baseline's?

    With ``baseline_n``: Fisher's exact two-sided test of the 2x2 table (the baseline's count is
    ``round(baseline_rate * baseline_n)``); with ``baseline_n=None`` the baseline rate is taken as exact and
    the test is the exact binomial test. Details hold both rates' Clopper-Pearson intervals at ``1 - alpha``.

    >>> r = rate_test(2, 20, 0.5, None, alpha=0.05)  # 2 of 20 against a known rate of 1/2
    >>> r.test, round(r.p_value, 6), r.reject, round(r.statistic, 6)
    ('rate_binomial', 0.000402, True, -0.4)
    >>> r = rate_test(8, 10, 0.8, 200, alpha=0.05)  # Fisher's test against 160 of 200
    >>> r.test, r.p_value, r.reject, r.details["baseline_successes"]
    ('rate_fisher', 1.0, False, 160)
    """
    alpha = _check_alpha(alpha)
    successes, n = _check_count("successes", successes, n)
    if (isinstance(baseline_rate, bool) or not isinstance(baseline_rate, (int, float))
            or not 0.0 <= baseline_rate <= 1.0):
        raise ValueError(f"baseline_rate must be in [0, 1], got {baseline_rate!r}")
    rate = successes / n
    sps = _sps()
    details: dict[str, Any] = {"rate": rate, "interval": list(clopper_pearson(successes, n, 1 - alpha))}
    if baseline_n is None:
        p = float(sps.binomtest(successes, n, float(baseline_rate)).pvalue)
        method = "binomial"
    else:
        baseline_n = _check_int("baseline_n", baseline_n, 1)
        base_k = int(round(baseline_rate * baseline_n))
        table = [[successes, n - successes], [base_k, baseline_n - base_k]]
        p = float(sps.fisher_exact(table).pvalue)
        method = "fisher"
        details["baseline_interval"] = list(clopper_pearson(base_k, baseline_n, 1 - alpha))
        details["baseline_successes"] = base_k
    return StatResult(test=f"rate_{method}", statistic=rate - float(baseline_rate), p_value=min(1.0, p),
                      alpha=alpha, n=n, reject=p <= alpha,
                      params={"alpha": alpha}, details=details)
