"""The model audits' statistics (alignment_node/models/stats.py, drift.py) on synthetic "models".

A synthetic model is a set of Markov chains over a small alphabet with an end symbol, one per prompt: its
completions are byte strings of varying length and their exact log-probabilities are known, so the tests can
draw honest samples (H0) and substitutes (temperature, perturbed logits, another model) at will. Rates are
checked against binomial bounds (rejection rate <= alpha + 3 sd), so these tests can fail.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alignment_node.models import drift
from alignment_node.models.drift import ADWIN, CUSUM, DETECTORS, KSWIN, DriftDetector, PageHinkley
from alignment_node.models.stats import (StatResult, calibrate_tolerance, clopper_pearson, combine, embedding_test,
                                         mean_logprob_test, mmd_hamming_test, rank_scores, rank_uniformity_test,
                                         rate_test)

SYMBOLS = 5  # bytes b"a".. b"e"; symbol SYMBOLS is the end of the completion
MAX_LEN = 16


class Synthetic:
    """Per-prompt Markov chains: logits (prompts, SYMBOLS + 2 states, SYMBOLS + 1 outcomes)."""

    def __init__(self, logits: np.ndarray):
        self.logits = logits

    @classmethod
    def random(cls, prompts: int, seed: int) -> "Synthetic":
        logits = np.random.default_rng(seed).normal(0.0, 1.5, size=(prompts, SYMBOLS + 2, SYMBOLS + 1))
        logits[:, :, SYMBOLS] -= 1.5  # fairly long completions
        return cls(logits)

    def tempered(self, temperature: float) -> "Synthetic":
        return Synthetic(self.logits / temperature)

    def towards(self, other: "Synthetic", eps: float) -> "Synthetic":
        """A small move of every logit towards another model's: a stand-in for a short fine-tune."""
        return Synthetic(self.logits + eps * (other.logits - self.logits))

    def _probs(self, prompt: int) -> np.ndarray:
        z = self.logits[prompt]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def sample(self, prompt: int, n: int, rng: np.random.Generator) -> list[bytes]:
        cum = np.cumsum(self._probs(prompt), axis=1)
        state = np.full(n, SYMBOLS + 1)  # the start state
        alive = np.ones(n, dtype=bool)
        out = np.full((n, MAX_LEN), SYMBOLS)
        for t in range(MAX_LEN):
            x = np.minimum((rng.random(n)[:, None] > cum[state]).sum(axis=1), SYMBOLS)
            out[:, t] = np.where(alive, x, SYMBOLS)
            alive &= x != SYMBOLS
            state = np.where(alive, x, state)
        return [bytes(97 + int(v) for v in row if v != SYMBOLS) for row in out]

    def logprob(self, prompt: int, completion: bytes) -> float:
        lp = np.log(self._probs(prompt))
        state, total = SYMBOLS + 1, 0.0
        for ch in completion:
            total += lp[state, ch - 97]
            state = ch - 97
        if len(completion) < MAX_LEN:
            total += lp[state, SYMBOLS]
        return float(total)


BASE = Synthetic.random(4, seed=1)
OTHER = Synthetic.random(4, seed=2)


def draw(model: Synthetic, per_prompt: int, rng: np.random.Generator) -> list[tuple[int, bytes]]:
    return [(p, c) for p in range(model.logits.shape[0]) for c in model.sample(p, per_prompt, rng)]


def scored(sample: list[tuple[int, bytes]], per_token: bool = False) -> list[tuple[int, object]]:
    """Scores under the reference model BASE: the total log-probability, or (total, per-token) pairs."""
    out = []
    for p, c in sample:
        total = BASE.logprob(p, c)
        out.append((p, (total, total / (len(c) + 1)) if per_token else total))
    return out


def by_prompt(scores: list[tuple[int, object]]) -> dict[int, list]:
    refs: dict[int, list] = {}
    for p, s in scores:
        refs.setdefault(p, []).append(s)
    return refs


def max_rate(alpha: float, trials: int) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


# ------------------------------------------------------------------------------------------- MMD


def naive_mmd(a, b, length):
    """The paper's statistic written out pair by pair (an oracle for the batched one)."""
    def k(x, y):
        x = list(x[:length]) + [None] * (length - len(x[:length]))
        y = list(y[:length]) + [None] * (length - len(y[:length]))
        return sum(u == v for u, v in zip(x, y)) / length

    def mean(pairs):
        values = [k(x, y) for (p, x), (q, y) in pairs if p == q]
        return sum(values) / len(values)

    within_a = [(s, t) for i, s in enumerate(a) for j, t in enumerate(a) if i != j]
    within_b = [(s, t) for i, s in enumerate(b) for j, t in enumerate(b) if i != j]
    across = [(s, t) for s in a for t in b]
    return mean(within_a) - 2 * mean(across) + mean(within_b)


def test_mmd_statistic_is_the_papers():
    rng = np.random.default_rng(3)
    a, b = draw(BASE, 6, rng), draw(BASE.tempered(0.5), 5, rng)
    result = mmd_hamming_test(a, b, alpha=0.05, permutations=99, seed=1, length=12)
    assert result.statistic == pytest.approx(naive_mmd(a, b, 12), rel=1e-12)
    assert result.n == len(a) + len(b) and result.params["length"] == 12


def test_mmd_statistic_matches_the_model_equality_testing_package():
    met = pytest.importorskip("model_equality_testing.tests")
    from model_equality_testing.distribution import CompletionSample

    rng = np.random.default_rng(4)
    a, b = draw(BASE, 8, rng), draw(OTHER, 7, rng)
    length = 10

    def as_sample(sample):
        arr = np.full((len(sample), length), -1, dtype=np.int64)
        for i, (_, c) in enumerate(sample):
            arr[i, :len(c[:length])] = list(c[:length])
        return CompletionSample(prompts=np.array([p for p, _ in sample]), completions=arr, m=4)

    theirs = met.mmd_hamming(as_sample(a), as_sample(b))
    ours = mmd_hamming_test(a, b, alpha=0.05, permutations=19, seed=0, length=length).statistic
    assert ours == pytest.approx(float(theirs), rel=1e-9)


def test_mmd_null_rejection_rate():
    rng = np.random.default_rng(10)
    trials, alpha = 300, 0.05
    rejections = sum(
        mmd_hamming_test(draw(BASE, 10, rng), draw(BASE, 10, rng), alpha=alpha, permutations=99, seed=t).reject
        for t in range(trials))
    assert rejections / trials <= max_rate(alpha, trials)


def test_mmd_power_against_clear_alternatives():
    rng = np.random.default_rng(11)
    for model in (BASE.tempered(0.6), OTHER):
        power = np.mean([mmd_hamming_test(draw(model, 40, rng), draw(BASE, 40, rng), alpha=0.05,
                                          permutations=99, seed=t).reject for t in range(30)])
        assert power >= 0.9


def test_mmd_reproducible_and_rechecked_from_params():
    rng = np.random.default_rng(12)
    a, b = draw(BASE, 12, rng), draw(BASE.tempered(0.8), 12, rng)
    first = mmd_hamming_test(a, b, alpha=0.01, permutations=500, seed=7)
    again = mmd_hamming_test(a, b, **first.params)
    assert again == first
    other_seeds = {mmd_hamming_test(a, b, alpha=0.01, permutations=500, seed=s).p_value for s in range(8, 14)}
    assert len(other_seeds) > 1  # the p-value does depend on the seed: the seed is what fixes it
    evidence = first.to_evidence()
    json.dumps(evidence)
    assert float(evidence["p_value"]) == first.p_value and float(evidence["statistic"]) == first.statistic


def test_mmd_drops_unshared_prompts_and_refuses_disjoint_samples():
    a = [(0, b"ab"), (0, b"ac"), (1, b"x")]
    b = [(0, b"ab"), (0, b"cc"), (2, b"y")]
    result = mmd_hamming_test(a, b, alpha=0.5, permutations=9, seed=0)
    assert result.details["dropped"] == 2 and result.n == 4
    with pytest.raises(ValueError, match="share no prompt"):
        mmd_hamming_test([(0, b"a")], [(1, b"a")], alpha=0.5, permutations=9, seed=0)


@pytest.mark.parametrize("kwargs, sample_a, message", [
    ({}, [], "sample_a is empty"),
    ({}, [(0, "text")], "must be bytes"),
    ({}, [(0.5, b"a")], "prompt id must be an integer"),
    ({}, [(0, b"a", 1)], "pair"),
    ({"length": 0}, [(0, b"a")], "length"),
    ({"alpha": 1.5}, [(0, b"a")], "alpha"),
    ({"permutations": 50, "alpha": 0.01}, [(0, b"a")], "can never give"),
    ({"seed": -1}, [(0, b"a")], "seed"),
])
def test_mmd_bad_input(kwargs, sample_a, message):
    args = {"alpha": 0.05, "permutations": 99, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        mmd_hamming_test(sample_a, [(0, b"b")], **args)


# ------------------------------------------------------------------------------------- rank tests


def test_rank_scores_are_uniform_under_h0():
    from scipy import stats as sps

    # uniform over the draws of both the references and the completion (given one reference set they are not)
    rng = np.random.default_rng(20)
    u = np.concatenate([rank_scores(scored(draw(BASE, 1, rng)), by_prompt(scored(draw(BASE, 20, rng))), seed=t)
                        for t in range(400)])
    assert u.shape == (1600,) and np.all((u > 0) & (u < 1))
    assert sps.kstest(u, "uniform").pvalue > 0.001
    # ties: identical scores everywhere still give uniform ranks (broken at random)
    flat = rank_scores([(0, 1.0)] * 2000, {0: [1.0] * 9}, seed=2)
    assert sps.kstest(flat, "uniform").pvalue > 0.001
    # a different model is visibly off
    refs = by_prompt(scored(draw(BASE, 100, rng)))
    assert sps.kstest(rank_scores(scored(draw(OTHER, 100, rng)), refs, seed=3), "uniform").pvalue < 1e-6


@pytest.mark.parametrize("statistic", ["ad", "normal"])
def test_rank_null_rejection_rate(statistic):
    rng = np.random.default_rng(21 if statistic == "ad" else 22)
    trials, alpha = 300, 0.05
    rejections = 0
    for t in range(trials):
        refs = by_prompt(scored(draw(BASE, 30, rng), per_token=True))  # few references: strong dependence
        result = rank_uniformity_test(scored(draw(BASE, 10, rng), per_token=True), refs, alpha=alpha, seed=t,
                                      permutations=99, statistic=statistic)
        rejections += result.reject
    assert rejections / trials <= max_rate(alpha, trials)


def test_rank_power_against_clear_alternatives():
    rng = np.random.default_rng(23)
    refs = by_prompt(scored(draw(BASE, 100, rng), per_token=True))
    for model, direction in ((BASE.tempered(0.6), +1), (BASE.towards(OTHER, 0.5), -1)):
        results = [rank_uniformity_test(scored(draw(model, 25, rng), per_token=True), refs, alpha=0.05, seed=t,
                                        permutations=99) for t in range(30)]
        assert np.mean([r.reject for r in results]) >= 0.9
        # the per-token component says which way: a lower temperature gives more likely completions
        assert direction * (np.mean([r.details["mean_u"][1] for r in results]) - 0.5) > 0.05


def test_mean_logprob_test_level_and_power():
    rng = np.random.default_rng(24)
    trials, alpha = 300, 0.05
    rejections = 0
    for _ in range(trials):
        refs = by_prompt(scored(draw(BASE, 50, rng)))
        rejections += mean_logprob_test(scored(draw(BASE, 10, rng)), refs, alpha=alpha).reject
    assert rejections / trials <= max_rate(alpha, trials)
    refs = by_prompt(scored(draw(BASE, 100, rng)))
    power = np.mean([mean_logprob_test(scored(draw(OTHER, 25, rng)), refs, alpha=0.05).reject for _ in range(30)])
    assert power >= 0.9
    # a completion the reference model deems impossible is evidence, not bad input
    result = mean_logprob_test([(0, -math.inf), (0, -3.0)], {0: [-3.0, -4.0, -2.5]}, alpha=0.05)
    assert result.reject and result.p_value == 0.0


def test_rank_reproducible_from_seed():
    rng = np.random.default_rng(25)
    refs = by_prompt(scored(draw(BASE, 40, rng), per_token=True))
    provider = scored(draw(BASE.tempered(0.9), 10, rng), per_token=True)
    first = rank_uniformity_test(provider, refs, seed=3)
    assert rank_uniformity_test(provider, refs, **first.params) == first
    assert np.array_equal(rank_scores(provider, refs, seed=1), rank_scores(provider, refs, seed=1))


@pytest.mark.parametrize("provider, refs, message", [
    ([], {0: [1.0]}, "provider_scores is empty"),
    ([(0, math.nan)], {0: [1.0, 2.0]}, "only finite values and -inf"),
    ([(0, math.inf)], {0: [1.0, 2.0]}, "only finite values and -inf"),
    ([(0, 1.0)], {0: [1.0, math.nan]}, "only finite values"),
    ([(0, 1.0)], {0: [1.0, -math.inf]}, "must be finite"),
    ([(0, 1.0)], {1: [1.0, 2.0]}, "no reference scores for prompt 0"),
    ([(0, 1.0)], {0: []}, "at least"),
    ([(0, (1.0, 2.0)), (0, 1.0)], {0: [1.0, 2.0]}, "different lengths"),
    ([(0, (1.0, 2.0))], {0: [1.0, 2.0]}, "component"),
    ([(0, "x")], {0: [1.0, 2.0]}, "must be a number"),
    ([(0, 1.0)], [1.0, 2.0], "must map prompt_id"),
])
def test_rank_bad_input(provider, refs, message):
    with pytest.raises(ValueError, match=message):
        rank_uniformity_test(provider, refs, alpha=0.05, seed=0, permutations=99)


def test_mean_logprob_bad_input():
    with pytest.raises(ValueError, match="standard deviation 0"):
        mean_logprob_test([(0, 1.0)], {0: [2.0, 2.0]}, alpha=0.05)
    with pytest.raises(ValueError, match="at least 2"):
        mean_logprob_test([(0, 1.0)], {0: [2.0]}, alpha=0.05)
    with pytest.raises(ValueError, match="one score per completion"):
        mean_logprob_test([(0, (1.0, 2.0))], {0: [(2.0, 1.0), (3.0, 1.5)]}, alpha=0.05)


# ----------------------------------------------------------------------------------- combination


def test_holm_adjusted_values_and_decision():
    results = [StatResult("a", 0.0, 0.004, 0.01, 10, True), StatResult("b", 0.0, 0.03, 0.01, 10, False),
               {"test": "c", "p_value": 0.02}]
    joint = combine(results, alpha=0.01)
    assert joint.details["adjusted"] == pytest.approx([0.012, 0.04, 0.04])
    assert joint.p_value == pytest.approx(0.012) and not joint.reject
    assert combine(results, alpha=0.05).details["rejected"] == ["a", "b", "c"]


@pytest.mark.parametrize("method", ["holm", "cauchy"])
def test_combination_controls_family_wise_error(method):
    rng = np.random.default_rng(30)
    trials, alpha = 4000, 0.05
    rejections = 0
    for _ in range(trials):
        z = rng.standard_normal()
        shared = 0.5 * z + math.sqrt(0.75) * rng.standard_normal(3)  # correlated null p-values
        from scipy.special import ndtr
        ps = list(ndtr(shared)) + [float(rng.random())]
        rejections += combine([{"test": str(i), "p_value": float(p)} for i, p in enumerate(ps)], alpha,
                              method=method).reject
    assert rejections / trials <= max_rate(alpha, trials)


def test_combine_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        combine([], 0.05)
    with pytest.raises(ValueError, match="p-value must be in"):
        combine([{"test": "x", "p_value": 1.5}], 0.05)
    with pytest.raises(ValueError, match="p-value must be in"):
        combine([StatResult("embedding_cosine", 0.1, None, None, 3, True)], 0.05)
    with pytest.raises(ValueError, match="unknown method"):
        combine([{"test": "x", "p_value": 0.5}], 0.05, method="fisher")


# ------------------------------------------------------------------------------------ embeddings


def test_embedding_test_and_tolerance():
    rng = np.random.default_rng(40)
    reference = rng.standard_normal((6, 384)).astype(np.float32)
    benign = reference + 1e-6 * rng.standard_normal(reference.shape)  # float noise: thread counts, batches
    calibration = embedding_test(benign, reference, tolerance=1.0).details["distances"]
    tolerance = calibrate_tolerance(calibration, factor=10)
    assert tolerance == max(1e-6, 10 * max(calibration))
    assert not embedding_test(benign, reference, tolerance).reject
    changed = reference.copy()
    changed[4] = rng.standard_normal(384)
    result = embedding_test(changed, reference, tolerance)
    assert result.reject and result.details["argmax"] == 4 and result.statistic > 0.5
    a, b = reference[0], reference[1]
    expected = 1 - float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
    assert embedding_test(a, b, 0.1).statistic == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("returned, reference, message", [
    (np.ones((2, 3)), np.ones((3, 3)), "shape"),
    (np.array([[1.0, np.nan]]), np.ones((1, 2)), "NaN or infinite"),
    (np.zeros((1, 2)), np.ones((1, 2)), "zero vector"),
    (np.ones((0, 3)), np.ones((0, 3)), "non-empty"),
    ("abc", np.ones((1, 2)), "numeric"),
])
def test_embedding_bad_input(returned, reference, message):
    with pytest.raises(ValueError, match=message):
        embedding_test(returned, reference, 0.01)


def test_calibrate_tolerance_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        calibrate_tolerance([])
    with pytest.raises(ValueError, match="non-negative"):
        calibrate_tolerance([0.1, math.nan])


# ------------------------------------------------------------------------------ behaviour rates


def test_clopper_pearson_is_exact_and_covers():
    from scipy import stats as sps
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    n = 40
    for p in (0.02, 0.1, 0.37, 0.5, 0.9):  # exact coverage: sum of binomial probabilities of covering k
        intervals = [clopper_pearson(k, n, 0.95) for k in range(n + 1)]
        coverage = sum(sps.binom.pmf(k, n, p) for k, (lo, hi) in enumerate(intervals) if lo <= p <= hi)
        assert coverage >= 0.95


def test_rate_test_level_and_power():
    rng = np.random.default_rng(50)
    trials, alpha = 1000, 0.05
    rejections = sum(rate_test(int(rng.binomial(100, 0.8)), 100, rng.binomial(200, 0.8) / 200, 200, alpha).reject
                     for _ in range(trials))
    assert rejections / trials <= max_rate(alpha, trials)
    rejections = sum(rate_test(int(rng.binomial(100, 0.8)), 100, 0.8, None, alpha).reject for _ in range(trials))
    assert rejections / trials <= max_rate(alpha, trials)
    power = np.mean([rate_test(int(rng.binomial(100, 0.5)), 100, 0.8, 200, alpha).reject for _ in range(100)])
    assert power >= 0.95
    result = rate_test(50, 100, 0.8, 200, 0.01)
    assert result.details["baseline_successes"] == 160 and result.statistic == pytest.approx(-0.3)


@pytest.mark.parametrize("args, message", [
    ((11, 10, 0.5, 10), "exceeds"), ((1, 0, 0.5, 10), "n must be"), ((1, 10, 1.5, 10), "baseline_rate"),
    ((1, 10, 0.5, 0), "baseline_n"), ((-1, 10, 0.5, 10), "successes"),
])
def test_rate_test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        rate_test(*args)
    with pytest.raises(ValueError, match="exceeds"):
        clopper_pearson(5, 4)


# ------------------------------------------------------------------------------------------ drift


def test_cusum_simulation_matches_siegmund_and_the_monitor():
    # the run-length theory the default threshold rests on, checked where alarms are frequent
    for h in (3.0, 5.0):
        lengths = drift.simulate_cusum(0.5, h, horizon=50_000, trials=1000, seed=int(h))
        assert np.all(lengths > 0)
        assert lengths.mean() == pytest.approx(drift.cusum_arl(0.5, h), rel=0.12)
    # the monitor is the simulated detector: same values, same first alarm
    rng = np.random.default_rng(1)
    values = rng.standard_normal((5000, 8))
    monitor = CUSUM(k=0.5, h=4.0)
    for column in values.T:
        m = CUSUM.from_state(monitor.state(fresh=True))
        alarms = m.update_many(column.tolist())
        s_up = s_down = 0.0
        expected = None
        for i, x in enumerate(column):
            s_up, s_down = max(0.0, s_up + x - 0.5), max(0.0, s_down - x - 0.5)
            if s_up > 4.0 or s_down > 4.0:
                expected = i + 1
                break
        assert alarms[0] == expected


def test_cusum_default_false_alarms_over_a_long_horizon():
    monitor = CUSUM()  # the defaults: k = 0.3, ARL0 = 4e6
    assert monitor.params["h"] == pytest.approx(drift.cusum_threshold(drift.DEFAULT_K, drift.DEFAULT_ARL0))
    trials, horizon, bound = 2000, 25_000, 0.01
    lengths = drift.simulate_cusum(monitor.params["k"], monitor.params["h"], horizon=horizon, trials=trials, seed=5)
    assert np.mean(lengths > 0) <= max_rate(bound, trials)


def test_cusum_alarms_soon_after_a_shift():
    k, h = drift.DEFAULT_K, CUSUM().params["h"]
    for shift, within_100 in ((1.0, 1.0), (0.75, 0.97)):
        lengths = drift.simulate_cusum(k, h, horizon=2000, trials=1000, seed=6, shift=shift, change_at=0)
        assert np.mean((lengths > 0) & (lengths <= 100)) >= within_100


def test_drift_on_a_synthetic_model_switch():
    """Honest completions, then a switch to a moved model: the per-token rank stream alarms soon.

    The move (logits 60% of the way to another model's) shifts the per-token scores' normal scores by about
    -0.8 sd; a real fine-tune's shift is measured on the real models (bench)."""
    rng = np.random.default_rng(60)
    refs = {p: [s[1] for s in v] for p, v in by_prompt(scored(draw(BASE, 200, rng), per_token=True)).items()}
    moved = BASE.towards(OTHER, 0.6)
    delays, false_alarms = [], 0
    for trial in range(10):
        monitor = CUSUM()
        honest = [(p, s[1]) for p, s in scored(draw(BASE, 250, rng), per_token=True)]
        switched = [(p, s[1]) for p, s in scored(draw(moved, 50, rng), per_token=True)]
        order = rng.permutation(len(switched))
        z_before = drift.normal_scores(rank_scores(honest, refs, seed=trial))
        z_after = drift.normal_scores(rank_scores([switched[i] for i in order], refs, seed=trial))
        false_alarms += bool(monitor.update_many(z_before.tolist()))
        alarms = monitor.update_many(z_after.tolist())
        delays.append(alarms[0] - len(z_before) if alarms else math.inf)
    assert false_alarms == 0
    assert sum(d <= 100 for d in delays) >= 9


@pytest.mark.parametrize("kind, params", [
    ("cusum", {"k": 0.5, "h": 6.0}), ("page_hinkley", {"delta": 0.5, "threshold": 10.0}),
    ("adwin", {"delta": 0.01, "max_history": 60}), ("kswin", {"seed": 3, "alpha": 0.01}),
])
def test_drift_state_round_trip(kind, params):
    rng = np.random.default_rng(70)
    stream = np.concatenate([rng.standard_normal(300), rng.standard_normal(300) + 1.5]).tolist()
    live = DETECTORS[kind](**params)
    assert live.kind == kind
    live.update_many(stream[:250])
    restored = DriftDetector.from_state(json.loads(json.dumps(live.state())))
    assert type(restored) is type(live)
    assert restored.state() == live.state()
    assert live.update_many(stream[250:]) == restored.update_many(stream[250:])
    assert live.alarms >= 1 and restored.state() == live.state()


def test_drift_state_json_is_the_stored_format():
    """Evidence bundles hold ``json.dumps(state, sort_keys=True)``: these bytes were written by the single
    ``DriftMonitor`` class the detectors replaced, and must stay the same (an old bundle must re-judge the same)."""
    cusum = CUSUM()
    cusum.update_many([1.0, 0.7, -2.0])
    stored = ('{"alarms": 0, "kind": "cusum", "last_alarm": 0, "n": 3, "params": {"h": 22.467607022128874, '
              '"k": 0.3, "sides": "both"}, "s_down": 1.7, "s_up": 0.0}')
    assert json.dumps(cusum.state(), sort_keys=True) == stored
    assert json.dumps(DriftDetector.from_state(json.loads(stored)).state(), sort_keys=True) == stored
    ph = PageHinkley(delta=0.5, threshold=25.0, max_history=10)
    ph.update_many([0.5, 1.5])
    stored = ('{"alarms": 0, "history": [0.5, 1.5], "kind": "page_hinkley", "last_alarm": 0, "n": 2, "params": '
              '{"alpha": 0.9999, "delta": 0.5, "max_history": 10, "min_instances": 30, "mode": "both", '
              '"threshold": 25.0}}')
    assert json.dumps(ph.state(), sort_keys=True) == stored
    assert json.dumps(DriftDetector.from_state(json.loads(stored)).state(), sort_keys=True) == stored


def test_river_adwin_detects_a_shift():
    rng = np.random.default_rng(71)
    monitor = ADWIN()
    assert monitor.update_many(rng.standard_normal(1000).tolist()) == []
    alarms = monitor.update_many((rng.standard_normal(300) + 1.0).tolist())
    assert alarms and alarms[0] - 1000 <= 150


def test_drift_bad_input():
    with pytest.raises(ValueError, match="unknown drift detector"):
        DriftDetector.from_state({"kind": "ewma", "params": {}})
    with pytest.raises(TypeError, match="threshold"):
        CUSUM(threshold=3)
    with pytest.raises(ValueError, match="bad cusum parameters"):
        DriftDetector.from_state({"kind": "cusum", "params": {"threshold": 3}})
    with pytest.raises(ValueError, match="integer seed"):
        KSWIN()
    with pytest.raises(TypeError, match="window"):
        ADWIN(window=3)
    with pytest.raises(ValueError, match="bad page_hinkley parameters"):
        PageHinkley(mode="sideways")
    with pytest.raises(ValueError, match="not a CUSUM state"):
        CUSUM.from_state(ADWIN().state())
    monitor = CUSUM()
    for bad in (math.nan, math.inf, "1.0", None):
        with pytest.raises(ValueError, match="drift values must be"):
            monitor.update(bad)
    for state in (None, {"kind": "cusum"}, {"kind": "cusum", "params": {}, "s_up": -1.0},
                  {"kind": "adwin", "params": {}, "history": [1.0, "x"]}, {"kind": "x", "params": {}}):
        with pytest.raises(ValueError):
            DriftDetector.from_state(state)
    with pytest.raises(ValueError, match="ranks must be"):
        drift.normal_scores([0.5, 1.5])
    with pytest.raises(ValueError, match="p-values must be"):
        drift.p_value_scores([math.nan])


def test_p_value_stream():
    rng = np.random.default_rng(72)
    z = drift.p_value_scores(rng.random(20_000))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    monitor = CUSUM(sides="up", arl0=1e4)
    assert monitor.update_many(drift.p_value_scores([0.5] * 200).tolist()) == []
    assert monitor.update_many(drift.p_value_scores([0.001] * 20).tolist())  # repeated small p-values
