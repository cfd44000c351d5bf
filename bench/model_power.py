"""Power, false positives, drift delay and cost of the MODEL audits, with the paper's MMD-Hamming test as peer.

    .venv/bin/python bench/model_power.py [--quick] [--jobs 2]

Everything is seeded, so a rerun prints the same tables (the timing lines aside). Uses at most ``--jobs``
CPU threads: ``--jobs`` worker processes of one thread each, and the parent alone while it samples with two
threads.

Protocol (issue 6, "Benchmark"):

- Baseline: ``baseline.make_baseline(seed=0, samples_per_probe=200)`` (16 probes), cached under
  ``.cache/bench/``; power tests run against it with ``alpha`` set to 0.05.
- Pools: for each substitution mode (``variants.VARIANTS``: honest, int8, 4bit, noise-0.1, noise-1, finetuned,
  seed, temp-0.7, route-0.5, evasive) 32 requests of n=10 completions of every probe prompt, sampled
  through the served variant's API at temperature 1 (seeds distinct from the baseline's). ``route-0.5`` and
  ``evasive`` are called once per request, in a fixed order, so the router decides per request and the evasive
  server (which knows the baseline's probe prompts) sees each prompt over and over, as an auditor's queries
  would; the others are sampled 10 requests per batch (the same row seeds, so the same completions up to
  batch-shape rounding). Each completion is scored once with the reference model, byte by byte
  (``lm.token_logprobs_batch``; the score is the sum), and keeps the log-probabilities the variant served.
  Also per mode: 64 fresh prompts (``audit.fresh_prompts``), each served once (n = 1), as an audit's fresh
  requests are; the evasive server has never seen them.
- Power: per mode and N in {50, 100, 250, 500}, 100 audits (60 at N = 500), each N/10 requests whose probe is drawn
  uniformly and whose 10 completions are a request of that probe from the pool (no request twice in an
  audit), plus 4 fresh-prompt rows. Ours: ``audit.evaluate`` itself on a bundle of those completions, scores
  and log-probabilities; it rejects when the substitution test (Holm over MMD-Hamming, rank uniformity, mean
  log-probability and the behavioural rate tests) does or the log-probability check fails. Each component is
  also reported alone (the behavioural rate tests: Holm over them). Peer: the MMD-Hamming test of PyPI ``model-equality-testing`` on
  the same completions against the same reference completions (the baseline's 200 samples of each probe the
  audit drew), with its permutation p-value (b = 1000 permutations of the pooled rows, ``p = #{null >= obs} /
  b``). The package recomputes the whole kernel matrix for every permutation (about 0.17 s per permutation at
  N = 100 here, so about 3 minutes per test): the grid uses ``peer_mmd_hamming`` below, which computes the
  package's statistic from one Gram matrix per prompt and draws the same ``torch.randperm`` permutations; the
  run first checks that it gives the package's statistics and p-values on real samples. The package permutes
  rows across prompts, which is exact only when both samples have the same mix of prompts; an audit's mix
  (random probes, 10 completions each) is not the reference's (200 of each probe drawn), so the peer is also run,
  as a calibration check, with a prompt-matched reference (``matched_reference``) on some cells.
- False positives: 1,000 audits of N = 100 FRESH honest completions each (new seeds every trial):
  87 % one thread with the trial's 100 rows in one batch, 10 % two threads with one batch per request, 3 %
  batch size 1. Rejection rates at alpha 0.05 and 0.01 with one-sided 95 % Clopper-Pearson upper bounds.
- Drift: streams of audits of 100 completions (probes drawn as above): 5 honest epochs, then the finetuned
  checkpoint; the CUSUM the audit carries across epochs (``drift.CUSUM()`` on
  ``normal_scores(rank_scores(...))``) and river's PageHinkley (defaults, and delta 0.5 / threshold 25) and
  ADWIN (defaults) on the same values. Delay in completions after the switch; false alarms on honest streams
  of 50 epochs. The honest epochs are drawn from the null trials' completions (each reused about 2.5 times).
  Also, per mode, the CUSUM's completions to alarm on a stream of that mode from the start.
- Embeddings: the baseline's fixed inputs through honest (batch size 1 and 8, 1 and 2 threads), embed-noise
  and embed-other; largest cosine distance against the baseline's tolerance.
- Cost: one audit (scoring and ``evaluate``) at N = 100 and 250 in a fresh process: seconds and peak RSS
  (VmHWM; see ``peak_rss_kb`` for why not ``getrusage``), the memory of the model-audit worker.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the peer package draws progress bars

import argparse  # noqa: E402
import concurrent.futures as cf  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mmd_peer import mmd_hamming_permutation  # noqa: E402  (bench/, the script's own directory)

MODES = ("honest", "int8", "4bit", "noise-0.1", "noise-1", "finetuned", "seed", "temp-0.7", "route-0.5", "evasive")
SIZES = (50, 100, 250, 500)
PER_REQUEST = 10
MAX_TOKENS = 32
PEER_PERMUTATIONS = 1000
POOL_SEED = 10 ** 10  # + mode * 1e9 + probe * 1e7 + row: far from the baseline's seeds (12345 + 1e5 * probe + i)
NULL_SEED = 9 * 10 ** 11  # + trial * 1000 + row
FRESH_SEED = 8 * 10 ** 11  # + key * 1e6 + row
FRESH_POOL = 64  # fresh prompts per mode (each served once)
FRESH_PER_AUDIT = 4  # = ModelPolicy.fresh
DEFAULT = {"groups": 32, "trials": 100, "trials_500": 60, "null_trials": 1000, "drift_runs": 50, "alarm_runs": 50,
           "alarm_epochs": 50, "mode_runs": 20, "mode_epochs": 30}
QUICK = {"groups": 12, "trials": 10, "trials_500": 10, "null_trials": 60, "drift_runs": 5, "alarm_runs": 5,
         "alarm_epochs": 20, "mode_runs": 3, "mode_epochs": 10}


def seed_of(*parts) -> int:
    """A 63-bit seed from a tuple of labels (independent of scheduling)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big") >> 1


# ------------------------------------------------------------------------------------------------ peer


def peer_mmd_hamming(provider, reference, permutations: int, generator, length: int = MAX_TOKENS):
    """MET's MMD-Hamming permutation test (bench/mmd_peer.py) of byte completions (padded to ``length`` with -1):
    (p, statistic)."""
    rows = list(provider) + list(reference)
    arr = np.full((len(rows), length), -1, dtype=np.int16)
    for i, (_, c) in enumerate(rows):
        arr[i, :len(c[:length])] = np.frombuffer(c[:length], dtype=np.uint8)
    return mmd_hamming_permutation(np.array([p for p, _ in rows]), arr, len(provider), permutations, generator)


def _peer_package_call(provider, reference, b: int, torch_seed: int):
    """The package itself: (p, statistic, null statistics)."""
    import torch
    from model_equality_testing import tests as MT
    from model_equality_testing.distribution import CompletionSample
    from model_equality_testing.pvalue import two_sample_permutation_pvalue

    def sample(s):
        return CompletionSample(np.array([p for p, _ in s]), np.array([list(c) for _, c in s]), 16)

    s1, s2 = sample(provider), sample(reference)
    torch.manual_seed(torch_seed)
    with contextlib.redirect_stderr(io.StringIO()):
        get_p, null = two_sample_permutation_pvalue(s1, s2, b=b, stat_type="mmd_hamming", return_stats=True)
        observed = MT.mmd_hamming(s1, s2)
    return get_p(observed), float(observed), null.reshape(-1)


def _peer_null_stats(provider, reference, b: int, torch_seed: int):
    """This module's permutation statistics for the same seed (to compare with the package's null)."""
    import torch

    gen = torch.Generator().manual_seed(torch_seed)
    rows = list(provider) + list(reference)
    out = []
    for _ in range(b):
        ix = torch.randperm(len(rows), generator=gen).tolist()
        x = [rows[i] for i in ix[:len(provider)]]
        y = [rows[i] for i in ix[len(provider):]]
        out.append(peer_mmd_hamming(x, y, 1, torch.Generator().manual_seed(0))[1])
    return np.array(out)


def matched_reference(completions, reference_by_probe) -> list[tuple[int, bytes]]:
    """The first ``r * k_p`` reference completions of each probe ``p`` the audit asked ``k_p`` times, with ``r`` the
    largest integer such that every probe has enough (``r = floor(200 / max k_p)``): the same prompt mix."""
    counts: dict[int, int] = {}
    for p, _ in completions:
        counts[p] = counts.get(p, 0) + 1
    r = max(1, min(len(reference_by_probe[str(p)]) // k for p, k in counts.items()))
    return [(p, bytes.fromhex(h)) for p, k in sorted(counts.items()) for h in reference_by_probe[str(p)][:r * k]]


# --------------------------------------------------------------------------------------------- workers

_W: dict = {}


def _init_worker(baseline_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    _W["baseline"] = json.loads(Path(baseline_path).read_text())
    _W["prompts"] = [p["prompt"].encode("latin-1") for p in _W["baseline"]["probes"]]


def _base_model():
    from alignment_node.models import lm

    if "model" not in _W:
        _W["model"] = lm.load_or_train(0)
    return _W["model"]


def _token_lps(prompts: list[bytes], completions: list[bytes]) -> np.ndarray:
    """The reference model's per-byte log-probabilities (rows of MAX_TOKENS), as the auditor computes them."""
    from alignment_node.models import lm

    out = []
    for s in range(0, len(prompts), 400):
        out += lm.token_logprobs_batch(_base_model(), prompts[s:s + 400], completions[s:s + 400])
    return np.asarray(out, dtype=np.float64).reshape(len(prompts), MAX_TOKENS)


def _served_lps(rows) -> np.ndarray:
    return np.asarray([lps for _, lps in rows], dtype=np.float64).reshape(len(rows), MAX_TOKENS)


def fresh_rows(served, key: int, count: int):
    """``count`` fresh prompts (``audit.fresh_prompts``, as an audit makes them), each served once (n = 1):
    [(served per-byte log-probabilities, reference ones)]."""
    from alignment_node.models import audit

    prompts = audit.fresh_prompts(_base_model(), key.to_bytes(32, "big"), key, 0, count, audit.ModelPolicy.fresh_prompt_bytes)
    out = []
    for i, prompt in enumerate(prompts):
        rows = served.sample_batch([prompt], MAX_TOKENS, 1.0, FRESH_SEED + key * 10 ** 6 + i)
        out.append((_served_lps(rows)[0], _token_lps([prompt], [rows[0][0]])[0]))
    return out


def make_pool(mode_index: int, groups: int):
    """{probe: [(10 completions, 10 scores, served log-probabilities 10 x 32, reference ones)] * groups,
    "fresh": fresh_rows(...)} for one mode, and the variant's call counts."""
    from alignment_node.models import variants

    mode = MODES[mode_index]
    prompts = _W["prompts"]
    served = variants.make_variant(mode, _base_model(), probes=frozenset(prompts))
    rows: dict[int, list] = {p: [] for p in range(len(prompts))}
    per_request = isinstance(served, (variants.Routed, variants.Evasive))
    if per_request:  # one call per request, requests interleaved over the probes like an audit's
        for g in range(groups):
            for p, prompt in enumerate(prompts):
                seed = POOL_SEED + mode_index * 10 ** 9 + p * 10 ** 7 + g * PER_REQUEST
                rows[p] += served.sample_batch([prompt] * PER_REQUEST, MAX_TOKENS, 1.0, seed)
    else:
        for p, prompt in enumerate(prompts):
            for g0 in range(0, groups, 10):
                k = min(10, groups - g0) * PER_REQUEST
                seed = POOL_SEED + mode_index * 10 ** 9 + p * 10 ** 7 + g0 * PER_REQUEST
                rows[p] += served.sample_batch([prompt] * k, MAX_TOKENS, 1.0, seed)
    pool = {}
    for p, prompt in enumerate(prompts):
        comps = [c for c, _ in rows[p]]
        ref = _token_lps([prompt] * len(comps), comps)
        got = _served_lps(rows[p])
        pool[p] = []
        for g in range(groups):
            s = slice(g * PER_REQUEST, (g + 1) * PER_REQUEST)
            pool[p].append((comps[s], ref[s].sum(axis=1).tolist(), got[s], ref[s]))
    pool["fresh"] = fresh_rows(served, mode_index + 1, FRESH_POOL)
    calls = dict(getattr(served, "calls", {}))
    return mode, pool, calls


def null_trial_probes(trial: int) -> list[int]:
    return np.random.default_rng(seed_of("null-probes", trial)).integers(0, 16, 100 // PER_REQUEST).tolist()


def make_null(trials: list[int], setting: str):
    """Fresh honest audits of N = 100: [(trial, probes of the requests, completions, scores, served
    log-probabilities, reference ones, fresh rows)]."""
    from alignment_node.models import variants

    from alignment_node.models import lm

    model = _base_model()
    prompts = _W["prompts"]
    out = []
    for t in trials:
        picks = null_trial_probes(t)
        base = NULL_SEED + t * 1000
        req = [prompts[p] for p in picks for _ in range(PER_REQUEST)]
        if setting == "batch100":
            rows = lm.sample_batch(model, req, MAX_TOKENS, 1.0, base)
        elif setting == "batch1":
            rows = [lm.sample_batch(model, [r], MAX_TOKENS, 1.0, base + i)[0] for i, r in enumerate(req)]
        else:  # one batch per request (the model server's way), run with 2 threads by the caller
            rows = []
            for j, p in enumerate(picks):
                rows += lm.sample_batch(model, [prompts[p]] * PER_REQUEST, MAX_TOKENS, 1.0, base + j * PER_REQUEST)
        comps = [c for c, _ in rows]
        ref = _token_lps(req, comps)
        fresh = fresh_rows(variants.make_variant("honest", model), 10 ** 6 + t, FRESH_PER_AUDIT)
        out.append((t, picks, comps, ref.sum(axis=1).tolist(), _served_lps(rows), ref, fresh))
    return out


def evaluate_trials(items):
    """Ours (audit.evaluate at alpha 0.05) and the peer on each trial: [(key, record)]."""
    import torch

    from alignment_node.models import audit, stats as S
    from alignment_node.protocol import FAULT

    baseline = dict(_W["baseline"], alpha=repr(0.05))
    ref = baseline["reference"]["completions"]
    policy = audit.ModelPolicy().judged()
    out = []
    for key, completions, scores, seed, served, reference in items:
        bundle = {"policy": policy, "seed": "0x%016x" % seed, "drift_before": None,
                  "fresh": [["", ""]] * (len(served) - len(completions)),
                  "logprobs": {"served": [[repr(float(x)) for x in row] for row in served],
                               "reference": [[repr(float(x)) for x in row] for row in reference]},
                  "observations": [{"call": f"complete:{j}", "method": "POST /v1/completions", "status": "ok",
                                    "elapsed_ms": 0, "attempt": 1, "started_ms": 0}
                                   for j in range(len(completions) // PER_REQUEST)],
                  "completions": [[p, c.hex()] for p, c in completions], "scores": [repr(s) for s in scores]}
        t0 = time.perf_counter()
        verdict, checks, _ = audit.evaluate(bundle, baseline)
        t_eval = time.perf_counter() - t0
        sub = next(c for c in checks if c["name"] == "substitution")
        drift = next(c for c in checks if c["name"] == "drift")
        lp = next(c for c in checks if c["name"] == "logprobs")
        tests = [(t["test"], float(t["p_value"])) for t in sub["tests"]]
        rates = [p for name, p in tests if name.startswith("rate_")]
        rec = {"joint": float(sub["joint"]["p_value"]), "mmd": dict(tests)["mmd_hamming"],
               "rank": dict(tests)["rank_uniformity"], "meanlp": dict(tests)["mean_logprob"],
               "behav": S.combine([{"test": "rate", "p_value": p} for p in rates], 0.05).p_value if rates else 1.0,
               "drift_alarm": drift["ok"] is False, "lp": 0.0 if lp["ok"] is False else 1.0,
               "lp_gap": float(lp["statistic"]), "t_eval": t_eval}
        rec["ours"] = min(rec["joint"], rec["lp"])  # rejects at alpha when either check fails
        if (verdict == FAULT) != (rec["ours"] <= 0.05 or rec["drift_alarm"]) or sub["ok"] != (rec["joint"] > 0.05):
            raise AssertionError(f"{key}: verdict {verdict} does not follow from the checks")
        probes = sorted({p for p, _ in completions})
        reference = [(p, bytes.fromhex(h)) for p in probes for h in ref[str(p)]]
        t0 = time.perf_counter()
        rec["peer"] = peer_mmd_hamming(completions, reference, PEER_PERMUTATIONS,
                                       torch.Generator().manual_seed(seed))[0]
        rec["t_peer"] = time.perf_counter() - t0
        out.append((key, rec))
    return out


def peer_matched_trials(items):
    """The peer against a prompt-matched reference: [(key, p)]."""
    import torch

    ref = _W["baseline"]["reference"]["completions"]
    return [(key, peer_mmd_hamming(completions, matched_reference(completions, ref), PEER_PERMUTATIONS,
                                   torch.Generator().manual_seed(seed))[0])
            for key, completions, _, seed, *_ in items]


# ---------------------------------------------------------------------------------------------- trials


def draw(pool, n: int, rng, fresh: int = 0):
    """An audit's sample: n / 10 requests, probe uniform, a distinct pooled request of that probe each (while
    the pool has unused ones), and ``fresh`` distinct fresh-prompt rows: (completions, scores, served
    log-probabilities, reference ones), the last two with the fresh rows after the probes'."""
    probes = [p for p in pool if p != "fresh"]
    picks = rng.integers(0, len(probes), n // PER_REQUEST)
    orders: dict[int, list[int]] = {}
    comps, scores, served, reference = [], [], [], []
    for p in picks.tolist():
        if not orders.get(p):  # first use, or every pooled request of p used: a new round (only tiny pools)
            orders[p] = rng.permutation(len(pool[p])).tolist()
        cs, ss, got, ref = pool[p][orders[p].pop()]
        comps += [(p, c) for c in cs]
        scores += list(ss)
        served += list(got)
        reference += list(ref)
    if fresh:
        for i in rng.choice(len(pool["fresh"]), fresh, replace=False).tolist():
            served.append(pool["fresh"][i][0])
            reference.append(pool["fresh"][i][1])
    return comps, scores, served, reference


def null_groups(null) -> dict:
    groups: dict = {p: [] for p in range(16)}
    groups["fresh"] = []
    for _, picks, comps, scores, served, ref, fresh in null:
        for j, p in enumerate(picks):
            s = slice(j * PER_REQUEST, (j + 1) * PER_REQUEST)
            groups[p].append((comps[s], scores[s], served[s], ref[s]))
        groups["fresh"] += fresh
    return groups


def stream_values(groups, baseline, epochs: int, rng, label) -> np.ndarray:
    """Normal scores of the randomized ranks of ``epochs`` audits of 100 drawn from ``groups``."""
    from alignment_node.models import drift as D, stats as S

    ref = {int(p): [float(x) for x in v] for p, v in baseline["reference"]["scores"].items()}
    out = []
    for e in range(epochs):
        comps, scores, _, _ = draw(groups, 100, rng)
        u = S.rank_scores([(p, s) for (p, _), s in zip(comps, scores)], ref, seed=seed_of(label, e))
        out.append(D.normal_scores(u))
    return np.concatenate(out)


def detectors():
    from alignment_node.models import drift as D

    return {"cusum": D.CUSUM,
            "page_hinkley": D.PageHinkley,
            "page_hinkley(0.5,25)": lambda: D.PageHinkley(delta=0.5, threshold=25.0),
            "adwin": D.ADWIN}


def first_alarms(values: np.ndarray, make) -> list[int]:
    monitor = make()
    return [i + 1 for i, x in enumerate(values.tolist()) if monitor.update(x)]


# ------------------------------------------------------------------------------------------- reporting


def rate(xs) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def cp_upper(k: int, n: int) -> float:
    from alignment_node.models.stats import clopper_pearson

    return clopper_pearson(k, n, 0.90)[1]  # one-sided 95 % upper bound


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM). ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not used: on Linux it
    carries the launching process's peak over fork and exec (measured: 933 MB for a child that peaked at 238
    MB, launched by a process of 900 MB), while VmHWM belongs to the new process's own memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the best there is


def audit_rss_child(path: str) -> int:
    """One process doing audits (score + evaluate) at N = 100 and 250: seconds and peak RSS as JSON."""
    import torch

    torch.set_num_threads(1)
    from alignment_node.models import audit, lm

    job = json.loads(Path(path).read_text())
    baseline = json.loads(Path(job["baseline"]).read_text())
    model = lm.load_or_train(int(baseline["model"]["seed"]), int(baseline["model"]["steps"]))
    assert lm.weights_hash(model) == baseline["model"]["weights_sha256"]
    report = {"rss_kb_loaded": peak_rss_kb()}
    for n, sample in sorted(job["samples"].items(), key=lambda kv: int(kv[0])):
        comps = [(int(p), bytes.fromhex(h)) for p, h in sample]
        times = []
        for rep in range(3):
            t0 = time.perf_counter()
            audit.fresh_prompts(model, bytes(32), 1, 1, FRESH_PER_AUDIT, audit.ModelPolicy.fresh_prompt_bytes)
            per_byte = lm.token_logprobs_batch(
                model, [baseline["probes"][p]["prompt"].encode("latin-1") for p, _ in comps], [c for _, c in comps])
            scores = [sum(row) for row in per_byte]
            lps = [[repr(x) for x in row] for row in per_byte]
            t1 = time.perf_counter()
            bundle = {"policy": audit.ModelPolicy().judged(), "seed": "0x%016x" % (rep + 1), "drift_before": None,
                      "logprobs": {"served": lps, "reference": lps}, "fresh": [],
                      "observations": [{"call": f"complete:{j}", "method": "POST /v1/completions", "status": "ok",
                                        "elapsed_ms": 0, "attempt": 1, "started_ms": 0}
                                       for j in range(len(comps) // PER_REQUEST)],
                      "completions": [[p, c.hex()] for p, c in comps], "scores": [repr(s) for s in scores]}
            audit.evaluate(bundle, baseline)
            times.append((t1 - t0, time.perf_counter() - t1))
        times.sort(key=lambda x: sum(x))
        report[n] = {"score_s": times[1][0], "evaluate_s": times[1][1],
                     "rss_kb": peak_rss_kb()}
    print(json.dumps(report))
    return 0


def load_baseline(log) -> tuple[dict, Path, str]:
    from alignment_node.models import baseline as B, lm

    model = lm.load_or_train(0)
    directory = ROOT / ".cache" / "bench"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"model-baseline-seed0-m200-{lm.weights_hash(model)[:16]}.json"
    bundle = json.loads(path.read_text()) if path.is_file() else {}
    if "logprobs" not in bundle:
        log("building the baseline (200 samples of 16 probes, embeddings) ...")
        bundle = B.make_baseline(seed=0, samples_per_probe=200)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(bundle))
        os.replace(tmp, path)
    return bundle, path, B.baseline_hash(bundle)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run (about two minutes)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--audit-rss", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.audit_rss:
        return audit_rss_child(args.audit_rss)
    t_start = time.monotonic()
    cfg = QUICK if args.quick else DEFAULT

    def trials(n: int) -> int:
        return cfg["trials_500"] if n == 500 else cfg["trials"]

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    import torch

    torch.set_num_threads(1)
    from alignment_node.models import embed, lm, stats as S

    baseline, baseline_path, bhash = load_baseline(log)
    _init_worker(str(baseline_path))
    timing = {}
    n_null = cfg["null_trials"]
    n_two = n_null // 10
    n_one = max(1, (3 * n_null) // 100)
    settings = (["batch100"] * (n_null - n_two - n_one) + ["threads2"] * n_two + ["batch1"] * n_one)

    # 1. the two-thread null samples, alone on the machine
    t0 = time.monotonic()
    torch.set_num_threads(2)
    null = make_null([t for t in range(n_null) if settings[t] == "threads2"], "threads2")
    torch.set_num_threads(1)
    timing["null samples, 2 threads"] = time.monotonic() - t0
    log(f"{len(null)} null audits sampled with 2 threads")

    # 2. embeddings (also uses 2 threads for a benign-nondeterminism check)
    t0 = time.monotonic()
    emb = baseline["embedding"]
    inputs, ref_vec, tol = emb["inputs"], np.asarray(emb["vectors"], dtype=float), float(emb["tolerance"])
    emb_rows = []
    for mode in embed.EMBED_VARIANTS:
        e = embed.Embedder(mode)
        runs = ((1, len(inputs)), (1, 1), (2, 1), (2, len(inputs))) if mode == "honest" else ((1, len(inputs)),)
        for threads, batch in runs:
            torch.set_num_threads(threads)
            res = S.embedding_test(e.embed(list(inputs), batch), ref_vec, tol)
            emb_rows.append((mode, threads, batch, res.statistic, res.reject))
        torch.set_num_threads(1)
        del e
    timing["embeddings"] = time.monotonic() - t0
    log("embeddings done")

    # 3. peer check: the package itself against peer_mmd_hamming on real samples
    t0 = time.monotonic()
    from alignment_node.models import variants

    model = lm.load_or_train(0)
    peer_checks = []
    for label, served, n, b in (("honest", variants.make_variant("honest", model), 100, 10),
                                ("finetuned", variants.make_variant("finetuned", model), 50, 20)):
        rng = np.random.default_rng(seed_of("peer-check", label))
        comps = []
        for j, p in enumerate(rng.integers(0, 16, n // PER_REQUEST).tolist()):
            rows = served.sample_batch([_W["prompts"][p]] * PER_REQUEST, MAX_TOKENS, 1.0, 7 * 10 ** 11 + j * 10)
            comps += [(p, c) for c, _ in rows]
        reference = [(p, bytes.fromhex(h)) for p in sorted({p for p, _ in comps})
                     for h in baseline["reference"]["completions"][str(p)]]
        tp = time.perf_counter()
        p_pkg, stat_pkg, null_pkg = _peer_package_call(comps, reference, b, 1234)
        per_perm = (time.perf_counter() - tp) / (b + 1)
        p_ours, stat_ours = peer_mmd_hamming(comps, reference, b, torch.Generator().manual_seed(1234))
        null_ours = _peer_null_stats(comps, reference, b, 1234)
        peer_checks.append((label, n, b, p_pkg, p_ours, abs(stat_pkg - stat_ours),
                            float(np.abs(null_pkg - null_ours).max()), per_perm))
    timing["peer check"] = time.monotonic() - t0
    log("peer check done")

    # 4. pools and the one-thread null samples, in worker processes
    t0 = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    pools, calls = {}, {}
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(str(baseline_path),)) as ex:
        futures = [ex.submit(make_pool, i, cfg["groups"]) for i in range(len(MODES))]
        b1 = [t for t in range(n_null) if settings[t] == "batch1"]
        futures += [ex.submit(make_null, b1[s:s + 5], "batch1") for s in range(0, len(b1), 5)]
        b100 = [t for t in range(n_null) if settings[t] == "batch100"]
        futures += [ex.submit(make_null, b100[s:s + 50], "batch100") for s in range(0, len(b100), 50)]
        for f in cf.as_completed(futures):
            r = f.result()
            if isinstance(r, tuple):
                pools[r[0]], calls[r[0]] = r[1], r[2]
            else:
                null += r
        null.sort(key=lambda x: x[0])
        timing["pools and null samples"] = time.monotonic() - t0
        log(f"pools of {len(pools)} modes and {len(null)} null audits ready")

        # 5. the trials
        t0 = time.monotonic()
        items = []
        for mi, mode in enumerate(MODES):
            for n in SIZES:
                for t in range(trials(n)):
                    rng = np.random.default_rng(seed_of("trial", mode, n, t))
                    comps, scores, served, ref = draw(pools[mode], n, rng, FRESH_PER_AUDIT)
                    items.append(((mode, n, t), comps, scores, seed_of("audit", mode, n, t), served, ref))
        for t, picks, comps, scores, served, ref, fresh in null:
            pairs = [(p, comps[j * PER_REQUEST + i]) for j, p in enumerate(picks) for i in range(PER_REQUEST)]
            items.append((("null", 100, t), pairs, scores, seed_of("null-audit", t),
                          list(served) + [f[0] for f in fresh], list(ref) + [f[1] for f in fresh]))
        matched_cells = [("honest", n) for n in SIZES] + [("4bit", 250), ("4bit", 500)]
        matched_items = [it for it in items if (it[0][0], it[0][1]) in matched_cells]
        items.sort(key=lambda it: -len(it[1]))  # big audits first: better load balance
        chunks = [items[s:s + 8] for s in range(0, len(items), 8)]
        results, matched = {}, {}
        futures = [ex.submit(evaluate_trials, c) for c in chunks]
        futures += [ex.submit(peer_matched_trials, matched_items[s:s + 20]) for s in range(0, len(matched_items), 20)]
        for f in cf.as_completed(futures):
            for key, value in f.result():
                (results if isinstance(value, dict) else matched)[key] = value
        timing["audits (ours + peer)"] = time.monotonic() - t0
        log(f"{len(results)} audits evaluated")

    # 6. drift
    t0 = time.monotonic()
    ngroups = null_groups(null)
    dets = detectors()
    delays = {k: [] for k in dets}
    early = {k: 0 for k in dets}
    switch = 5 * 100
    for r in range(cfg["drift_runs"]):
        rng = np.random.default_rng(seed_of("drift", r))
        values = np.concatenate([stream_values(ngroups, baseline, 5, rng, ("drift-h", r)),
                                 stream_values(pools["finetuned"], baseline, 20, rng, ("drift-f", r))])
        for k, make in dets.items():
            alarms = first_alarms(values, make)
            early[k] += any(a <= switch for a in alarms)
            after = [a - switch for a in alarms if a > switch]
            delays[k].append(after[0] if after else None)
    false_runs = {k: 0 for k in dets}
    false_total = {k: 0 for k in dets}
    for r in range(cfg["alarm_runs"]):
        values = stream_values(ngroups, baseline, cfg["alarm_epochs"], np.random.default_rng(seed_of("null-drift", r)),
                               ("null-drift", r))
        for k, make in dets.items():
            a = first_alarms(values, make)
            false_runs[k] += bool(a)
            false_total[k] += len(a)
    mode_cusum = {}
    for mode in MODES:
        runs = []
        for r in range(cfg["mode_runs"]):
            values = stream_values(pools[mode], baseline, cfg["mode_epochs"],
                                   np.random.default_rng(seed_of("mode-drift", mode, r)), ("mode-drift", mode, r))
            a = first_alarms(values, dets["cusum"])
            runs.append(a[0] if a else None)
        mode_cusum[mode] = runs
    timing["drift"] = time.monotonic() - t0
    log("drift done")

    # 7. cost: one audit in a fresh process
    t0 = time.monotonic()
    job = {"baseline": str(baseline_path), "samples": {}}
    for n in (100, 250):
        comps, *_ = draw(pools["honest"], n, np.random.default_rng(seed_of("rss", n)))
        job["samples"][str(n)] = [[p, c.hex()] for p, c in comps]
    job_path = ROOT / ".cache" / "bench" / "model-audit-rss-job.json"
    job_path.write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--audit-rss", str(job_path)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    cost = json.loads(proc.stdout.strip().splitlines()[-1])
    timing["cost child"] = time.monotonic() - t0

    # ------------------------------------------------------------------------------------ print
    out = []
    pr = out.append
    pr(f"baseline {bhash[:18]}... (TinyLM seed 0, {len(baseline['probes'])} probes x "
       f"{baseline['reference']['samples_per_probe']} reference samples); pools of {cfg['groups']} requests x "
       f"{PER_REQUEST} per probe and mode; {cfg['trials']} audits per cell ({cfg['trials_500']} at N=500); "
       f"peer b = {PEER_PERMUTATIONS}")
    pr("route-0.5 calls " + str(calls.get("route-0.5")) + "; evasive calls " + str(calls.get("evasive")))
    pr("")
    pr("peer check (model_equality_testing itself vs peer_mmd_hamming, same torch seed, real samples):")
    for label, n, b, p_pkg, p_ours, dstat, dnull, per_perm in peer_checks:
        pr(f"  {label:9s} N={n:3d} b={b}: p package {p_pkg:.3f}, ours {p_ours:.3f}; |stat diff| {dstat:.1e}, "
           f"max |null diff| {dnull:.1e}")
    per_perm = peer_checks[0][7]
    pr(f"  the package takes {per_perm:.2f} s per permutation at N=100 -> about {per_perm * 1001 / 60:.0f} min "
       f"per test with b=1000 (hence the equivalent computation in the grid)")
    pr("")

    def cell(mode, n, field, alpha=0.05):
        recs = [results[(mode, n, t)] for t in range(trials(n))]
        if field == "verdict":
            return rate([r["ours"] <= alpha or r["drift_alarm"] for r in recs])
        return rate([r[field] <= alpha for r in recs])

    def med(xs):
        xs = [x for x in xs if x is not None]
        return "-" if not xs else f"{int(np.median(xs))}"

    pr("Power at alpha 0.05 (share of the audits rejecting), ours = audit.evaluate's substitution test (Holm) or"
       " its log-probability check, peer = MMD-Hamming of model_equality_testing")
    pr("mode       |  ours N=50   100   250   500 |  peer N=50   100   250   500 | CUSUM completions to alarm")
    for mode in MODES:
        ours = " ".join(f"{cell(mode, n, 'ours'):5.2f}" for n in SIZES)
        peer = " ".join(f"{cell(mode, n, 'peer'):5.2f}" for n in SIZES)
        runs = mode_cusum[mode]
        missed = sum(x is None for x in runs)
        horizon = cfg["mode_epochs"] * 100
        if not missed:
            cus = f"median {med(runs)}"
        elif missed == len(runs):
            cus = f"no alarm within {horizon}"
        else:
            cus = f"{len(runs) - missed}/{len(runs)} runs alarm within {horizon} (median {med(runs)})"
        pr(f"{mode:10s} |      {ours} |      {peer} | {cus}")
    subs = [m for m in MODES if m != "honest"]
    medians = {n: (float(np.median([cell(m, n, 'ours') for m in subs])),
                   float(np.median([cell(m, n, 'peer') for m in subs]))) for n in SIZES}
    pr("median of the 9 substitution modes: ours " + ", ".join(f"N={n} {medians[n][0]:.2f}" for n in SIZES)
       + "; peer " + ", ".join(f"N={n} {medians[n][1]:.2f}" for n in SIZES))
    line = ", ".join(f"{m} N={n} {rate([matched[(m, n, t)] <= 0.05 for t in range(trials(n))]):.2f}"
                     for m, n in matched_cells)
    pr(f"peer with a prompt-matched reference (calibration check), rejection at 0.05: {line}")
    pr("")
    pr("Components alone at alpha 0.05 (holm = the substitution test, logprob = the log-probability check), and"
       " ours / the audit's verdict (ours or in-audit CUSUM) at 0.01")
    pr("mode        N   |  mmd  rank meanlp behav  holm logprob | ours@.01 verdict@.01")
    for mode in MODES:
        for n in SIZES:
            comp = " ".join(f"{cell(mode, n, f):5.2f}" for f in ("mmd", "rank", "meanlp", "behav", "joint", "lp"))
            pr(f"{mode:10s} {n:4d} | {comp}   |   {cell(mode, n, 'ours', 0.01):5.2f}     "
               f"{cell(mode, n, 'verdict', 0.01):5.2f}")
    pr("")
    nulls = [results[("null", 100, t)] for t in range(n_null)]
    pr(f"False positives: {n_null} audits of N=100 fresh honest completions ({settings.count('batch100')} one thread "
       f"batch 100, {n_two} two threads batch 10, {n_one} batch size 1); 95% upper bound = one-sided Clopper-Pearson")
    fpr = {}
    for name, field in (("ours", "ours"), ("peer", "peer"), ("verdict", "verdict"), ("holm", "joint"),
                        ("logprob", "lp"), ("mmd", "mmd"), ("rank", "rank"), ("meanlp", "meanlp"), ("behav", "behav")):
        line = f"  {name:13s}"
        for alpha in (0.05, 0.01):
            if field == "verdict":
                k = sum(r["ours"] <= alpha or r["drift_alarm"] for r in nulls)
            else:
                k = sum(r[field] <= alpha for r in nulls)
            fpr[(field, alpha)] = (k, k / n_null, cp_upper(k, n_null))
            line += f" alpha {alpha}: {k:4d}/{n_null} = {k / n_null:.3f} (<= {cp_upper(k, n_null):.3f})"
        pr(line)
    per_setting = []
    for s in ("batch100", "threads2", "batch1"):
        rs = [nulls[t] for t in range(n_null) if settings[t] == s]
        per_setting.append(f"{s} {sum(r['ours'] <= 0.05 for r in rs)}/{len(rs)}")
    pr("  ours at 0.05 per setting: " + ", ".join(per_setting))
    gaps = [r["lp_gap"] for r in nulls]
    pr(f"  log-probability check on the null audits: largest gap {max(gaps):.3g} (median {np.median(gaps):.3g}), "
       f"tolerance {float(baseline['logprobs']['tolerance']):.3g}; per substitution mode, median gap at N=100: "
       + ", ".join(f"{m} {np.median([results[(m, 100, t)]['lp_gap'] for t in range(trials(100))]):.2g}"
                   for m in MODES if m != "honest"))
    pr("")
    pr(f"Drift: {cfg['drift_runs']} streams of audits of 100, honest for 5 epochs then finetuned; delay in completions"
       f" after the switch; false alarms on {cfg['alarm_runs']} honest streams of {cfg['alarm_epochs']} epochs")
    for k in dets:
        d = [x for x in delays[k] if x is not None]
        missed = sum(x is None for x in delays[k])
        pr(f"  {k:21s} delay median {med(d):>4s} max {max(d) if d else '-':>4}"
           f" (no alarm in 2000: {missed}; alarm before the switch: {early[k]}) | false alarms: "
           f"{false_runs[k]}/{cfg['alarm_runs']} streams, {false_total[k]} alarms")
    pr("")
    pr(f"Embeddings (tolerance {tol:.3g} on the largest cosine distance to the baseline's vectors)")
    for mode, threads, batch, dist, rej in emb_rows:
        pr(f"  {mode:11s} threads {threads} batch {batch}: {dist:.3g} -> {'FLAGGED' if rej else 'ok'}")
    pr("")
    teval = {n: float(np.median([results[(m, n, t)]["t_eval"] for m in MODES for t in range(trials(n))]))
             for n in SIZES}
    tpeer = {n: float(np.median([results[(m, n, t)]["t_peer"] for m in MODES for t in range(trials(n))]))
             for n in SIZES}
    pr("Cost per audit (one thread; timings vary run to run)")
    for n in (100, 250):
        c = cost[str(n)]
        pr(f"  N={n}: {n} completions in {n // PER_REQUEST} requests (+1 embeddings request); scoring "
           f"{c['score_s']:.2f} s + evaluate {c['evaluate_s']:.2f} s; grid median evaluate {teval[n]:.2f} s, "
           f"peer {tpeer[n]:.2f} s")
    pr(f"  model-audit process peak RSS (VmHWM): {cost['rss_kb_loaded'] / 1024:.0f} MB after loading the model, "
       f"{cost['100']['rss_kb'] / 1024:.0f} MB after an N=100 audit, {cost['250']['rss_kb'] / 1024:.0f} MB after N=250")
    pr("")
    # goals
    best = next((n for n in SIZES if n <= 250 and medians[n][0] >= 0.95), None)
    k05 = fpr[("ours", 0.05)]
    cus = [x for x in delays["cusum"] if x is not None]
    pr("Goals")
    pr(f"  median power >= 0.95 at N <= 250: {'PASS' if best else 'FAIL'} "
       f"({', '.join(f'N={n} {medians[n][0]:.2f}' for n in SIZES if n <= 250)})")
    pr(f"  FPR <= 0.05 at alpha 0.05: {'PASS' if k05[1] <= 0.05 else 'FAIL'} ({k05[1]:.3f}, upper bound {k05[2]:.3f})")
    wins = {n: sum(cell(m, n, 'ours') >= cell(m, n, 'peer') for m in subs) for n in SIZES}
    beat = (all(medians[n][0] >= medians[n][1] for n in SIZES)
            and any(medians[n][0] > medians[n][1] for n in SIZES if n <= 250))
    pr(f"  higher than the peer on the same samples: {'PASS' if beat else 'FAIL'} (ours >= peer in "
       + ", ".join(f"{wins[n]}/9 modes at N={n}" for n in SIZES) + ")")
    drift_ok = bool(cus) and len(cus) == len(delays["cusum"]) and max(cus) <= 100
    pr(f"  drift alarm within 100 completions of the switch: {'PASS' if drift_ok else 'FAIL'} "
       f"(median {med(cus)}, max {max(cus) if cus else '-'})")
    for n in (50, 100):
        weak = [f"{m} ({cell(m, n, 'verdict', 0.01):.2f})" for m in subs if cell(m, n, "verdict", 0.01) < 0.95]
        pr(f"  not reliably detected in one audit of N={n} at alpha 0.01 (verdict power < 0.95): {', '.join(weak)}")
    print("\n".join(out))
    wall = time.monotonic() - t_start
    print("\nsection seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()))
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min), {args.jobs} worker processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
