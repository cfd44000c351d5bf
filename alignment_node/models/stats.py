"""Statistical tests of the model audits: is a provider serving the registered model, with its behaviour?

Pure functions of samples (numpy and scipy only). Each returns a ``StatResult``: the test's name, statistic,
p-value, alpha, sample size, decision, and ``params``, the keyword arguments that, given the same inputs,
repeat the result exactly (the seed of every random choice is among them), so an evidence bundle can hold it.

Substitution, black box (alpha is the false-positive rate of each test):

- ``mmd_hamming_test``: the two-sample MMD test with a Hamming kernel of Gao, Liang & Guestrin, "Model
  Equality Testing: Which Model Is This API Serving?" (2024). A completion is a byte string truncated or padded
  to ``length`` positions with a pad symbol that is no byte (so two short completions agree on their padding);
  the kernel of two completions of the same prompt is the fraction of the positions where they agree, and 0
  across prompts. The statistic is the paper's: the mean kernel within sample A, minus twice the mean across,
  plus the mean within B, each mean over the pairs of distinct completions of the same prompt. The p-value is
  by permutation within each prompt (a completion keeps its prompt, only its label A/B moves), which is exact
  whatever the two samples' mixes of prompts (the paper's package permutes whole rows across prompts and
  counts ``p = #{null >= observed} / B``; here ``p = (1 + #{null >= observed}) / (1 + B)``, never 0); the
  Gram matrix is computed once per prompt and permutations are batched as matrix products. All kernel sums
  are integers held exactly in float64, so the statistic does not depend on the BLAS or the summation order.
- ``rank_uniformity_test``: the auditor scores each provider completion ``x`` of prompt ``p`` with the reference
  model, e.g. ``s(x) = log P_ref(x | p)``, and ranks it among the scores of the reference model's own samples
  of ``p`` (the baseline's). Under H0 ``x`` and those samples are exchangeable, so ``u = (rank + U) / (m + 1)``
  (``U`` uniform, which also breaks ties at random) is exactly uniform. The statistic is Anderson-Darling's
  distance of the ``u`` from the uniform (default; two-sided, weighs the tails, so it sees both "too likely"
  completions, from a lower temperature or sharpened weights, and "too unlikely" ones, from noise, another
  model or a fraction of requests routed to one); ``"normal"`` (the normal-scores sum ``|sum Phi^-1(u)|``),
  ``"mean"`` (a stratified Wilcoxon) and ``"ks"`` are there too. On synthetic Markov-chain "models" AD was as
  powerful as the best of them against every alternative and clearly better against a temperature change
  scored by the total log-probability and against routing. A score may be a tuple (e.g. the total and the
  per-token log-probability: the total misses temperature changes that also change lengths, the per-token one
  misses noise); each component gets its statistic and the test's is the largest. The completions of a prompt
  share its reference samples, so their ranks are dependent, and the components of a tuple are too: the
  p-value is by permuting the provider/reference labels within each prompt, which is exact under H0 with no
  assumption on the scores.
- ``mean_logprob_test``: a z-test of the mean of ``s(x)`` standardized by each prompt's reference mean and
  standard deviation; the variance accounts for the reference mean being estimated from ``m`` samples shared
  by the ``k`` completions of a prompt (``k (1 + k / m)`` per prompt). Asymptotic (normal) p-value.
- ``combine``: one decision from several tests on the same samples (hence dependent) with family-wise error
  at most alpha: Holm's step-down (valid under any dependence; the joint decision is "some test rejects at
  alpha / k"), or the Cauchy combination (Liu & Xie 2020), whose level is exact for independent tests and
  asymptotically exact for small alpha under dependence.

Embeddings: ``embedding_test`` (largest cosine distance from the reference vectors against a tolerance) and
``calibrate_tolerance`` (the largest benign distance, from thread-count and batch-size changes, times a factor,
with a floor).

Behaviour: ``rate_test`` (a probe set's pass rate against the baseline's: Fisher's exact test, or the exact
binomial test when the baseline rate is taken as known) and ``clopper_pearson`` (exact binomial intervals,
also for the benchmark's false-positive-rate bounds).

Reproducibility: randomness comes only from ``numpy.random.default_rng(seed)`` and only its uniform doubles
are used (permutations are argsorts of them), so a result repeats exactly with the same numpy. Floats in
``StatResult.to_evidence()`` are ``repr`` strings (evidence bundles carry no floats); across platforms compare
statistics with a relative tolerance of about 1e-9 (logarithms may differ in the last bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import special, stats as sps

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
        """``to_dict`` with every float as its ``repr`` string (exact; evidence bundles carry no floats)."""
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
    samples of that prompt. ``statistic``: one of ``RANK_STATISTICS`` (module docstring).
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
    """
    n = _check_int("n", n, 1)
    k = _check_int("k", k, 0)
    if k > n:
        raise ValueError(f"k={k} exceeds n={n}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    tail = (1.0 - confidence) / 2.0
    lo = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1.0 - tail, k + 1, n - k))
    return lo, hi


def rate_test(successes: int, n: int, baseline_rate: float, baseline_n: int | None, alpha: float = 0.01
              ) -> StatResult:
    """Does a probe set's pass rate (``successes`` of ``n``) differ from the baseline's?

    With ``baseline_n``: Fisher's exact two-sided test of the 2x2 table (the baseline's count is
    ``round(baseline_rate * baseline_n)``); with ``baseline_n=None`` the baseline rate is taken as exact and
    the test is the exact binomial test. Details hold both rates' Clopper-Pearson intervals at ``1 - alpha``.
    """
    alpha = _check_alpha(alpha)
    n = _check_int("n", n, 1)
    successes = _check_int("successes", successes, 0)
    if successes > n:
        raise ValueError(f"successes={successes} exceeds n={n}")
    if (isinstance(baseline_rate, bool) or not isinstance(baseline_rate, (int, float))
            or not 0.0 <= baseline_rate <= 1.0):
        raise ValueError(f"baseline_rate must be in [0, 1], got {baseline_rate!r}")
    rate = successes / n
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
