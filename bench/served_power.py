"""Power, false positives and cost of the MODEL audit of a served chat LLM by an auditor holding no weights (issue
14), with the peers of the issue on the same samples: MET's MMD-Hamming (PyPI ``model-equality-testing``), LT as
its paper states it (Chauvin et al. 2025, arXiv 2512.03816) and RUT (Zhu et al. 2025, arXiv 2506.06975; it needs
the weights: the upper bound).

    .venv/bin/python bench/served_power.py [--quick] [--audits N] [--fpr-audits N] [--modes a,b] [--jobs 2]

Everything is seeded: a rerun prints the same tables (timings aside). ``--jobs`` worker processes of one torch
thread each (``threads-2`` uses two while it generates).

Protocol:

- Baseline: ``keeper.make_served_baseline(0)`` with the code's defaults, built in this run (not
  ``cached_served_baseline``: its cache key does not cover the code's defaults, see bench/README.md), alpha 0.01.
- Serving, in process (no HTTP): each mode is a ``tokenvariants`` setup called as ``devnet/llmserver.py`` calls it.
  An audit's requests are those of ``served_audit.audit_served``: the baseline's 8 LT prompts one request each
  (``max_tokens`` 1, ``top_logprobs`` 20), then one request per fresh prompt of ``served_audit.draw_prompts``
  (seed per audit; 24 tokens at temperature 1, ``top_logprobs`` 20). Routing and evasive setups decide per
  request (``_pick`` on that request's prompt and shape, as the server's one-request-one-call does); the rows each
  backend takes are then generated in one batch (the same rows, up to batch-shape rounding). Each answer is
  built field by field as ``llmserver`` builds it and reduced by ``served_audit.lt_extractor`` /
  ``chat_extractor``; the bundle (observations of successful calls, ``lt``, ``lt_snapshot_before``,
  ``completions``) is the one ``audit_served`` would write, and ``served_audit.evaluate_served`` judges it.
- Budgets: each power audit draws and serves 250 fresh prompts once; the audit at N = 50 / 100 uses the
  completions of ``draw_prompts(..., N)`` (a per-family prefix of the 250: exactly the prompts an audit of N
  asks). Every method sees the same completions.
- The provider's LT snapshot (``lt_snapshot_before``): a benign mode's own fingerprint (as its first audit
  stores it); for every substitution and policy the fp32 fingerprint (the provider onboarded honestly, then
  switched). The fingerprint of each benign setup against the fp32 snapshot (benign drift) is reported too.
- Modes: benign fp32, bf16, threads-2, batch-8 (false positives); substitutions small, seed-1, finetune-10,
  int8, 4bit, temp-0.7, route-0.5, route-0.1; policies: ``evasive`` (substitute ``small``; a new server per
  audit: it has never seen the audit's prompts), ``evasive-mem`` (one evasive server across the mode's audits,
  in order: it learns the family prompts), ``evasive-probes`` (a new evasive server per audit that knows the
  keeper's reference prompts: they are public, drawn from ``keeper_seed``), ``replay`` (one server across the
  audits). TEE modes (``devnet.teeproxy.MODES``): fp32 answers signed in process by ``teeproxy._Server.sign``
  and ``.report`` themselves over the exact bytes (request body as ``audit_served`` sends it, response body as
  the server's ``json.dumps``), checked with the auditor's ``tee.check_exchange``, against
  ``keeper.with_tee(baseline)``.
- Layers (read from the checks of ``evaluate_served``): ``LT-ref`` (keeper's fingerprint), ``LT-drift``
  (provider's snapshot), ``sampling`` and ``identity`` (each fired within the joint decision, at alpha/2),
  ``ours`` = the verdict (FAULT). ``text-only``: ``blackbox.identity_test`` on the texts alone (no logprobs) at
  alpha: what is left when a provider serves no logprobs. ``+referee``: when ``models.referee`` is importable,
  ours at alpha/2 (the joint p-value, LT and TEE as they are) or ``referee_test(model, completions, alpha/2)``.
- Peers: ``MET``: MMD-Hamming of the audit's completions against the keeper's 200 reference texts per family
  (prompt id = family; both re-tokenized with the public tokenizer, 24 tokens, pad -1), the package's statistic
  and permutation p-value (b = 1000 pooled permutations, ``p = mean(null >= observed)``), computed by
  ``met_mmd`` below from one Gram matrix per family with the package's ``torch.randperm`` draws (checked against
  ``model_equality_testing.algorithm.run_two_sample_test`` on real samples at each run's start). ``LT-paper``:
  N queries of the single prompt "x" (``max_tokens`` 1, top-20) now and N at onboarding; per token the mean
  logprob in each window (a token missing from a query's top-k takes that query's lowest logprob), statistic the
  mean absolute difference, permutation p-value (b = 1000), as in the paper's code (``logprob_two_sample_test``);
  it uses its own queries, not the completions. ``RUT``: for each completion, its log-likelihood under the
  registered weights (``tokenlm.score``) ranked among ``m`` = 50 samples of the registered model for the same
  prompt (randomized ties), Cramer-von Mises against the uniform (scipy). The reference samples are drawn once
  per prompt of the families (cached under ``.cache/bench/``).
- False positives: >= 1,000 audits at N = 100 spread evenly over the four benign setups (fresh prompts and
  seeds each); one-sided 95 % Clopper-Pearson upper bounds.
- Cost per audit: requests, tokens (prompt + completion, as ``usage`` counts them), seconds of judgement
  (``evaluate_served``), seconds of generation; the worker's peak RSS for one judgement (a fresh process with no
  torch, as the model-audit worker).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# idle OpenMP threads sleep instead of spinning: on a shared 2-core machine threads-2's spinning threads made its
# generation 25 times slower (numerics unchanged)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import concurrent.futures as cf  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import pickle  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mmd_peer import mmd_hamming_permutation  # noqa: E402  (bench/, the script's own directory)

BUDGETS = (50, 100, 250)
FPR_BUDGET = 100
BENIGN = ("fp32", "bf16", "threads-2", "batch-8")
POWER = ("small", "seed-1", "finetune-10", "int8", "4bit", "temp-0.7", "route-0.5", "route-0.1", "evasive",
         "evasive-mem", "evasive-probes", "replay")
STATEFUL = ("evasive-mem", "replay")  # one server across the mode's audits, in order
TEE = ("honest", "tee-unsigned", "tee-forged", "tee-stale", "tee-unbound", "tee-wrong-measurement",
       "gateway-reserialize")
TARGET, LICENSE = 1, 1
MET_B = 1000
LTP_B = 1000
LTP_PROMPT = "x"
DEFAULT = {"audits": 30, "fpr_audits": 1000, "tee_audits": 3, "rut_m": 50, "referee_audits": 4,
           "referee_budget": 100}
QUICK = {"audits": 2, "fpr_audits": 12, "tee_audits": 1, "rut_m": 5, "referee_audits": 1, "referee_budget": 50}
METHODS = ("lt_reference", "lt_drift", "sampling", "identity", "ours", "text_only", "referee", "met", "lt_paper",
           "rut")
LABELS = {"lt_reference": "LT-ref", "lt_drift": "LT-drift", "sampling": "sampling", "identity": "identity",
          "ours": "ours", "text_only": "text-only", "referee": "+referee", "met": "MET", "lt_paper": "LT-paper",
          "rut": "RUT"}


def seed_of(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:7], "big")


def audit_seed(mode: str, i: int) -> bytes:
    return hashlib.sha256(f"served-power|{mode}|{i}".encode()).digest()


# ---------------------------------------------------------------------------------------------- peers


def met_mmd(rows_a: list[tuple[int, np.ndarray]], rows_b: list[tuple[int, np.ndarray]], permutations: int,
            generator) -> tuple[float, float]:
    """MET's MMD-Hamming permutation test (bench/mmd_peer.py) of rows (prompt id, L tokens padded with -1):
    (p, statistic)."""
    rows = list(rows_a) + list(rows_b)
    return mmd_hamming_permutation(np.array([p for p, _ in rows]), np.stack([c for _, c in rows]), len(rows_a),
                                   permutations, generator)


def met_package(rows_a, rows_b, b: int, torch_seed: int) -> tuple[float, float]:
    """The package itself (slow: the kernel is recomputed for every permutation)."""
    import torch
    from model_equality_testing.algorithm import run_two_sample_test
    from model_equality_testing.distribution import CompletionSample

    m = 1 + max(p for p, _ in list(rows_a) + list(rows_b))

    def sample(rows):
        return CompletionSample(np.array([p for p, _ in rows]), np.stack([c for _, c in rows]).astype(np.int64), m)

    torch.manual_seed(torch_seed)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        p, stat = run_two_sample_test(sample(rows_a), sample(rows_b), stat_type="mmd_hamming",
                                      pvalue_type="permutation_pvalue", b=b)
    return float(p), float(stat)


def lt_paper_test(window1: np.ndarray, window2: np.ndarray, b: int, seed: int) -> tuple[float, float]:
    """The paper's ``logprob_two_sample_test``: rows are queries, columns the union of tokens (missing = that
    query's lowest logprob, filled by ``lt_paper_matrix``); statistic = mean over tokens of |mean of window 1 -
    mean of window 2|; p = mean(permutation statistics >= observed) over ``b`` random splits of the pooled
    queries. Returns (p, statistic)."""
    a = np.concatenate([window1, window2])
    n1, total = len(window1), len(a)
    rng = np.random.default_rng(seed)
    z = np.zeros((b + 1, total))
    z[0, :n1] = 1.0
    np.put_along_axis(z[1:], np.argsort(rng.random((b, total)), axis=1)[:, :n1], 1.0, axis=1)
    s1 = z @ a
    stats = np.abs(s1 / n1 - (a.sum(axis=0) - s1) / (total - n1)).mean(axis=1)
    return float(np.mean(stats[1:] >= stats[0] - 1e-12)), float(stats[0])


def lt_paper_matrix(w1: list[dict], w2: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    tokens = sorted({t for r in w1 + w2 for t in r})
    col = {t: j for j, t in enumerate(tokens)}

    def matrix(rows):
        m = np.empty((len(rows), len(tokens)))
        for i, r in enumerate(rows):
            m[i, :] = min(r.values())  # left censoring, as the paper's code
            for t, v in r.items():
                m[i, col[t]] = v
        return m

    return matrix(w1), matrix(w2)


# -------------------------------------------------------------------------------------------- workers

_W: dict = {}


def _init_worker(baseline_path: str, rut_path: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    _W["bl"] = json.loads(Path(baseline_path).read_text())
    _W["rut_path"] = rut_path
    _W["served"] = {}
    _W["cache"] = {}


def _base():
    from alignment_node.models import tokenlm

    if "base" not in _W:
        _W["base"] = tokenlm.load_or_train(0, "base")
    return _W["base"]


def _plain(name: str):
    from alignment_node.models import tokenvariants as TV

    if name not in _W["served"]:
        _W["served"][name] = TV.make_variant(name, _base(), seed=0)
    return _W["served"][name]


def _keeper_prompt_ids() -> frozenset:
    """The keeper's reference prompts (public: ``family_prompts(family, keeper_seed, per_family)``) as chat ids."""
    from alignment_node.models import blackbox as BB
    from alignment_node.models import tokenlm

    if "probes" not in _W:
        bl = _W["bl"]
        out = []
        for f in bl["families"]:
            fam = BB.PromptFamily(f["name"], f["template"], {k: tuple(v) for k, v in f["slots"].items()})
            n = min(int(bl["reference"]["per_family"]), fam.size())
            out += [tuple(tokenlm.encode_chat([{"role": "user", "content": p}]))
                    for p in BB.family_prompts(fam, int(bl["reference"]["keeper_seed"]), n)]
        _W["probes"] = frozenset(out)
    return _W["probes"]


def make_server(mode: str, route_seed: int):
    """A fresh server of ``mode`` (models shared within the worker)."""
    from alignment_node.models import tokenvariants as TV
    from alignment_node.models import variants as V

    q = V.parse_route(mode) if mode.startswith("route-") else None
    if q is not None:
        return TV.Routed(mode, _plain("fp32"), _plain("small"), q, route_seed)
    if mode in ("evasive", "evasive-mem"):
        return TV.Evasive(mode, _plain("fp32"), _plain("small"), 1)
    if mode == "evasive-probes":
        return TV.Evasive(mode, _plain("fp32"), _plain("small"), 1, _keeper_prompt_ids())
    if mode == "replay":
        return TV.Replay(mode, _plain("fp32"))
    return _plain(mode)


def serve(server, prompts: list[list[int]], max_tokens: int, temperature: float, k: int, seed: int):
    """One request per prompt, as the server answers them: a routing or evasive server picks its backend per
    request (in order); each backend's rows are then generated together."""
    from alignment_node.models import tokenvariants as TV

    if not isinstance(server, (TV.Routed, TV.Evasive)):
        return server.generate(prompts, max_tokens, temperature, k, seed)
    groups: dict[int, tuple] = {}
    for i, p in enumerate(prompts):
        who = server._pick([list(p)], max_tokens, k)
        groups.setdefault(id(who), (who, []))[1].append(i)
    out = [None] * len(prompts)
    for g, (who, idx) in enumerate(groups.values()):
        got = who.generate([prompts[i] for i in idx], max_tokens, temperature, k, (seed + g * (1 << 40)) % (1 << 62))
        for i, c in zip(idx, got):
            out[i] = c
    return out


_TOKENS: list = []


def _entry(token_id: int, logprob: float) -> dict:
    """One ``logprobs.content`` entry as ``LLMService._entry`` writes it (token texts and bytes cached)."""
    if not _TOKENS:
        from alignment_node.models import tokenlm

        _TOKENS.extend((tokenlm.token_text(i), tokenlm.token_bytes(i)) for i in range(tokenlm.VOCAB))
    text, raw = _TOKENS[token_id]
    return {"token": text, "logprob": max(logprob, -9999.0), "bytes": list(raw)}


def chat_answer(prompt_ids: list[int], c, chat_id: str) -> dict:
    """``devnet/llmserver.py``'s ``LLMService.chat`` answer for one choice with logprobs and top_logprobs."""
    from alignment_node.models import tokenlm

    return {"id": chat_id, "object": "chat.completion", "created": 1767225600, "model": "alignment-tinychat",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": tokenlm.decode(c.token_ids),
                                                 "refusal": None},
                         "logprobs": {"content": [{**_entry(t, lp), "top_logprobs": [_entry(a, b) for a, b in tops]}
                                                  for t, lp, tops in zip(c.token_ids, c.logprobs, c.top)],
                                      "refusal": None},
                         "finish_reason": c.finish_reason}],
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(c.token_ids),
                      "total_tokens": len(prompt_ids) + len(c.token_ids)},
            "system_fingerprint": None}


def request_body(bl: dict, prompt: str, max_tokens: int) -> bytes:
    """The exact request ``audit_served`` sends."""
    s = bl["sampling"]
    body = {"model": bl["model"]["served_name"], "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": float(s["temperature"]), "logprobs": True,
            "top_logprobs": int(s["top_logprobs"])}
    return json.dumps(body, separators=(",", ":")).encode()


def observe(server, seed: bytes, n_gen: int, ltp_n: int, tee_proxy=None) -> dict:
    """One audit's requests to ``server``: the LT prompts, ``n_gen`` fresh prompts, ``ltp_n`` LT-paper queries.
    Returns the reduced answers (and, with ``tee_proxy``, each completion's TEE evidence)."""
    from alignment_node.devnet import teeproxy
    from alignment_node.models import served_audit as SA
    from alignment_node.models import tee as T
    from alignment_node.models import tokenlm

    bl = _W["bl"]
    s = bl["sampling"]
    max_tokens, k, temperature = int(s["max_tokens"]), int(s["top_logprobs"]), float(s["temperature"])
    gen_seed = int.from_bytes(hashlib.sha256(seed + b"gen").digest()[:7], "big")
    t0 = time.perf_counter()
    lt_prompts = bl["lt"]["prompts"]
    lt_ids = [tokenlm.encode_chat([{"role": "user", "content": p}]) for p in lt_prompts]
    lt_choices = [serve(server, [ids], 1, temperature, k, gen_seed + 1000 + i)[0] for i, ids in enumerate(lt_ids)]
    prompts = SA.draw_prompts(bl, seed, TARGET, LICENSE, n_gen)
    ids = [tokenlm.encode_chat([{"role": "user", "content": p}]) for _, p in prompts]
    choices = serve(server, ids, max_tokens, temperature, k, gen_seed)
    ltp_ids = tokenlm.encode_chat([{"role": "user", "content": LTP_PROMPT}])
    ltp = serve(server, [ltp_ids] * ltp_n, 1, temperature, k, gen_seed + 5000) if ltp_n else []
    gen_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    signer = T.address_of(tee_proxy.key) if tee_proxy is not None else None
    lt_extract, chat_extract = SA.lt_extractor(k), SA.chat_extractor(max_tokens, k)
    lt, lt_obs = {}, []
    n_chat = 0

    def exchange(prompt: str, p_ids, c, mt: int, call: str):
        nonlocal n_chat
        n_chat += 1
        chat_id = "chatcmpl-" + hashlib.sha256(seed + call.encode()).hexdigest()[:24]
        answer = chat_answer(p_ids, c, chat_id)
        body = json.dumps(answer, separators=(",", ":")).encode()
        raw = request_body(bl, prompt, mt)
        evidence = None
        if tee_proxy is not None:
            got = teeproxy._Server.sign(tee_proxy, raw, body, "application/json")
            answer = json.loads(got)  # what the auditor parses (a reserializing gateway keeps the value)
            rec = tee_proxy.store.get(chat_id)
            if rec is not None:
                rec = {key: rec.get(key) for key in ("text", "signature", "signing_address", "signing_algo")
                       if isinstance(rec.get(key), str) and len(rec[key]) <= 400}
                seen = {"status": "ok", "tries": 1}
            else:
                seen = {"status": "http_error", "http_status": 404, "tries": 20}
            evidence = {"request_sha256": hashlib.sha256(raw).hexdigest(),
                        "response_sha256": hashlib.sha256(got).hexdigest(), "signature": rec, "seen": seen,
                        "reason": T.check_exchange(raw, got, rec, signer)}
            body = got
        obs = {"method": "POST /v1/chat/completions", "started_ms": 0, "elapsed_ms": 0, "status": "ok",
               "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        return answer, obs, evidence

    for i, (p, p_ids, c) in enumerate(zip(lt_prompts, lt_ids, lt_choices)):
        answer, obs, _ = exchange(p, p_ids, c, 1, f"lt:{i}")
        lt[p] = lt_extract(answer)
        lt_obs.append(obs)
    rows = []
    for j, ((fam, p), p_ids, c) in enumerate(zip(prompts, ids, choices)):
        answer, obs, evidence = exchange(p, p_ids, c, max_tokens, f"chat:{j}")
        r = chat_extract(answer)
        row = {"family": fam, "prompt": p, "text": r["text"], "positions": r["positions"]}
        if evidence is not None:
            row["tee"] = evidence
        rows.append({"row": row, "obs": obs, "tokens": list(c.token_ids), "prompt_ids": p_ids,
                     "usage": len(p_ids) + len(c.token_ids)})
    report = None
    if tee_proxy is not None:
        nonce = SA._h(seed, TARGET.to_bytes(32, "big"), LICENSE.to_bytes(32, "big"), b"tee-nonce").hex()
        body = json.dumps(teeproxy._Server.report(tee_proxy, nonce), separators=(",", ":")).encode()
        report = {"nonce": nonce, "status": "ok", "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                  "report": json.dumps(json.loads(body), sort_keys=True)}
    ltp_rows = [{bytes(tokenlm.token_bytes(t)).hex(): max(lp, -9999.0) for t, lp in c.top[0]} for c in ltp]
    lt_tokens = sum(len(x) + 1 for x in lt_ids)
    return {"seed": seed, "lt": lt, "lt_obs": lt_obs, "rows": rows, "index": {r["row"]["prompt"]: i
                                                                             for i, r in enumerate(rows)},
            "ltp": ltp_rows, "gen_s": gen_s, "reduce_s": time.perf_counter() - t1, "lt_tokens": lt_tokens,
            "tee_report": report}


def fingerprint_json(lt: dict) -> str:
    """``state["lt_snapshot"]`` as the first audit of a target stores it (``evaluate_served``'s ``state_after``)."""
    from alignment_node.models import blackbox as BB

    fp = BB.lt_fingerprint({p: [(t, float(v)) for t, v in top] for p, top in lt.items()})
    return json.dumps(fp.to_dict(), sort_keys=True)


def snapshot(mode: str) -> dict:
    """The provider's onboarding observations (LT fingerprint JSON and LT-paper rows) of ``mode``'s own setup
    (benign) or of fp32 (every other mode): a first audit of a fresh server of that setup."""
    src = mode if mode in BENIGN else "fp32"
    if src not in _W["cache"]:
        raw = observe(make_server(src, 0), hashlib.sha256(f"onboarding|{src}".encode()).digest(), 1, max(BUDGETS))
        _W["cache"][src] = {"lt": fingerprint_json(raw["lt"]), "ltp": raw["ltp"]}
    return _W["cache"][src]


def bundle_for(raw: dict, budget: int, snapshot_json: str | None, baseline: dict) -> tuple[dict, list[dict]]:
    """The bundle ``audit_served`` writes for an audit of ``budget`` queries (a prefix per family of ``raw``)."""
    from alignment_node.models import served_audit as SA

    prompts = SA.draw_prompts(baseline, raw["seed"], TARGET, LICENSE, budget)
    picked = [raw["rows"][raw["index"][p]] for _, p in prompts]
    obs = []
    for i, o in enumerate(raw["lt_obs"]):
        obs.append({**o, "call": f"lt:{i}", "attempt": 1, "params": ["lt", i]})
    for j, r in enumerate(picked):
        obs.append({**r["obs"], "call": f"chat:{j}", "attempt": 1, "params": ["chat", j]})
    bundle = {
        "version": 2, "kind": "MODEL_SERVED", "epoch": 0,
        "target": {"id": TARGET, "endpoint": "http://127.0.0.1:0", "identity": "0x" + "00" * 32},
        "baseline": "0x" + "00" * 32, "policy": SA.ServedPolicy(queries=budget).judged(),
        "seed": "0x" + raw["seed"].hex(), "license": LICENSE,
        "observations": sorted(obs, key=lambda o: (o["started_ms"], o["call"])),
        "lt": {p: raw["lt"][p] for p in sorted(raw["lt"])},
        "lt_snapshot_before": snapshot_json,
        "completions": [r["row"] for r in picked],
        "tee_report": raw["tee_report"],
        "elapsed_ms": 0,
    }
    return bundle, picked


def _met_rows(texts_by_family: list[tuple[int, str]]):
    from alignment_node.models import tokenlm

    length = int(_W["bl"]["sampling"]["max_tokens"])
    out = []
    for fid, text in texts_by_family:
        ids = tokenlm.encode(text)[:length]
        row = np.full(length, -1, dtype=np.int64)
        row[:len(ids)] = ids
        out.append((fid, row))
    return out


def _met_reference():
    if "met_ref" not in _W:
        bl = _W["bl"]
        fams = [f["name"] for f in bl["families"]]
        _W["met_ref"] = _met_rows([(fid, s["text"]) for fid, f in enumerate(fams)
                                   for s in bl["reference"]["samples"][f]])
    return _W["met_ref"]


def _rut_pool() -> dict:
    if "rut" not in _W:
        with open(_W["rut_path"], "rb") as f:
            _W["rut"] = pickle.load(f)
    return _W["rut"]


def rut_test(picked: list[dict], m: int, seed: int) -> float:
    """RUT: each completion's log-likelihood under the registered weights ranked among ``m`` samples of the
    registered model for its prompt (ties, identical completions included, broken at random); Cramer-von Mises
    against the uniform. The p-value."""
    from scipy import stats

    from alignment_node.models import tokenlm

    pool = _rut_pool()
    need = [r for r in picked if "ll" not in r]  # scored once per audit, whatever the budget
    if need:
        for r, c in zip(need, tokenlm.score(_base(), [r["prompt_ids"] for r in need], [r["tokens"] for r in need])):
            r["ll"] = float(sum(c.logprobs))
    rng = np.random.default_rng(seed)
    u = np.empty(len(picked))
    for i, r in enumerate(picked):
        ref_tokens, ref_ll = pool[r["row"]["prompt"]]
        ref_tokens, ref_ll = ref_tokens[:m], ref_ll[:m]
        s = r["ll"]
        same = np.array([t == tuple(r["tokens"]) for t in ref_tokens])
        near = same | (np.abs(ref_ll - s) <= 1e-6)
        below = np.count_nonzero((ref_ll < s) & ~near)
        u[i] = (below + rng.random() * (np.count_nonzero(near) + 1)) / (m + 1)
    return float(stats.cramervonmises(u, "uniform").pvalue)


def _referee():
    if "referee" not in _W:
        try:
            from alignment_node.models import referee
            _W["referee"] = referee if hasattr(referee, "referee_test") else None
        except Exception as exc:  # noqa: BLE001 (absent, or being edited: the column is left out)
            print(f"referee not importable: {type(exc).__name__}: {exc}", file=sys.stderr)
            _W["referee"] = None
    return _W["referee"]


def judge(raw: dict, budget: int, snap: dict, cross: dict | None, baseline: dict, m: int, peers: bool,
          keep_bundle: str | None = None, with_referee: bool = False) -> dict:
    """Every method on the audit's completions at ``budget``: {method: rejected?}, p-values and timings."""
    import torch

    from alignment_node.models import blackbox as BB
    from alignment_node.models import served_audit as SA
    from alignment_node.protocol import FAULT

    alpha = float(baseline["alpha"])
    bundle, picked = bundle_for(raw, budget, snap["lt"], baseline)
    t0 = time.perf_counter()
    verdict, checks, _ = SA.evaluate_served(bundle, baseline)
    eval_s = time.perf_counter() - t0
    if keep_bundle:
        Path(keep_bundle).write_text(json.dumps(bundle))
    c = {ch["name"]: ch for ch in checks}
    fired = lambda name: c.get(name, {}).get("ok") is False  # noqa: E731
    out = {name: fired(name) for name in ("lt_reference", "lt_drift", "sampling", "identity", "tee")}
    out["ours"] = verdict == FAULT
    joint_p = float(c["joint"]["test"]["p_value"]) if "joint" in c else 1.0
    seed = int.from_bytes(raw["seed"][:7], "big")
    res = {"flags": out, "eval_s": eval_s, "joint_p": joint_p,
           "failed": sorted(n for n, ch in c.items() if ch["ok"] is False),
           "requests": len(raw["lt_obs"]) + len(picked),
           "tokens": raw["lt_tokens"] + sum(r["usage"] for r in picked)}
    if cross is not None:  # the same LT fingerprint against the fp32 snapshot (benign drift)
        cur = BB.lt_fingerprint({p: [(t, float(v)) for t, v in top] for p, top in raw["lt"].items()})
        d = BB.lt_distance(BB.Fingerprint.from_dict(json.loads(cross["lt"])), cur)
        res["lt_drift_cross"] = d > float(baseline["lt"]["threshold"])
        res["lt_drift_cross_d"] = d
    if not peers:
        return res
    # text only: identity on the texts alone, at alpha (the only layer left without logprobs)
    provider: dict[str, list] = {}
    for r in picked:
        provider.setdefault(r["row"]["family"], []).append(r["row"]["text"])
    reference = {f: [s["text"] for s in baseline["reference"]["samples"][f]] for f in provider}
    t1 = time.perf_counter()
    out["text_only"] = BB.identity_test(provider, reference, alpha, seed=seed,
                                        permutations=int(baseline["identity"]["permutations"]),
                                        length=int(baseline["identity"]["length"])).reject
    res["text_only_s"] = time.perf_counter() - t1
    # MET against the keeper's reference texts, prompt id = family
    fams = [f["name"] for f in baseline["families"]]
    t1 = time.perf_counter()
    for r in picked:
        if "met" not in r:
            r["met"] = _met_rows([(fams.index(r["row"]["family"]), r["row"]["text"])])[0]
    met_p, _ = met_mmd([r["met"] for r in picked], _met_reference(), MET_B, torch.Generator().manual_seed(seed))
    out["met"] = met_p <= alpha
    res["met_s"] = time.perf_counter() - t1
    # LT as the paper states it: N single-token queries of one prompt now and at onboarding
    t1 = time.perf_counter()
    ltp_p, _ = lt_paper_test(*lt_paper_matrix(snap["ltp"][:budget], raw["ltp"][:budget]), LTP_B, seed)
    out["lt_paper"] = ltp_p <= alpha
    if cross is not None:
        p_cross, _ = lt_paper_test(*lt_paper_matrix(cross["ltp"][:budget], raw["ltp"][:budget]), LTP_B, seed)
        res["lt_paper_cross"] = p_cross <= alpha
    res["ltp_s"] = time.perf_counter() - t1
    # RUT with the weights
    t1 = time.perf_counter()
    out["rut"] = rut_test(picked, m, seed) <= alpha
    res["rut_s"] = time.perf_counter() - t1
    referee = _referee() if with_referee else None
    if referee is not None:
        t1 = time.perf_counter()
        try:
            r = referee.referee_test(_base(), bundle["completions"], alpha / 2, seed)
        except Exception as exc:  # noqa: BLE001 (reported, the audit's other results kept)
            res["referee_error"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            exact = any(fired(n) for n in ("reachable", "well_formed", "tee", "lt_reference", "lt_drift"))
            out["referee"] = bool(r.reject) or exact or joint_p <= alpha / 2
            res["referee_p"] = r.p_value
            res["referee_s"] = time.perf_counter() - t1
    return res


def run_task(task: dict) -> list[dict]:
    """One task: audits of one mode (a stateful mode's audits in order on one server)."""
    from alignment_node.models import keeper, tee as T

    mode, kind = task["mode"], task["kind"]
    bl = _W["bl"]
    m = task["rut_m"]
    results = []
    server = make_server(mode, seed_of("route", mode)) if mode in STATEFUL else None
    for i in task["audits"]:
        seed = audit_seed(mode if kind != "tee" else "tee-" + mode, i)
        if kind == "tee":
            key, root = hashlib.sha256(b"bench tee key").digest(), hashlib.sha256(b"bench root key").digest()
            measurement = hashlib.sha256(b"bench image").digest()
            proxy = types.SimpleNamespace(mode=mode, key=key, root_key=root, measurement=measurement,
                                          other_key=hashlib.sha256(b"bench other key").digest(),
                                          store=__import__("alignment_node.devnet.teeproxy",
                                                           fromlist=["SignatureStore"]).SignatureStore(),
                                          _last=None, _lock=threading.Lock())
            claimed = keeper.with_tee(bl, {"signer": T.address_of(key), "measurement": measurement.hex(),
                                           "roots": [T.address_of(root)]})
            raw = observe(_plain("fp32"), seed, FPR_BUDGET, 0, tee_proxy=proxy)
            r = judge(raw, FPR_BUDGET, snapshot("fp32"), None, claimed, m, peers=False)
            results.append({"mode": mode, "kind": kind, "i": i, "gen_s": raw["gen_s"], "budgets": {FPR_BUDGET: r}})
            continue
        full = kind == "power" or i < task["full_below"]
        budgets = BUDGETS if full else (FPR_BUDGET,)
        srv = server if server is not None else make_server(mode, seed_of("route", mode, i))
        raw = observe(srv, seed, max(budgets), max(budgets))
        snap = snapshot(mode)
        cross = snapshot("fp32") if mode in BENIGN else None
        per = {}
        for b in budgets:
            keep = task.get("keep") if (b in (100, 250) and i == 0) else None
            per[b] = judge(raw, b, snap, cross, bl, m, peers=True, keep_bundle=f"{keep}-{b}.json" if keep else None,
                           with_referee=b == task["referee_budget"] and i < task["referee_audits"])
        results.append({"mode": mode, "kind": kind, "i": i, "gen_s": raw["gen_s"], "reduce_s": raw["reduce_s"],
                        "n_gen": max(budgets), "full": full, "budgets": per})
    return results


def rut_pool_task(args: tuple) -> dict:
    """``m`` samples of the registered model (fp32, T = 1, 24 tokens) for each prompt, with their
    log-likelihoods by ``tokenlm.score`` (the function RUT scores the served completions with)."""
    from alignment_node.models import tokenlm

    prompts, m, max_tokens = args
    out = {}
    for p in prompts:
        ids = tokenlm.encode_chat([{"role": "user", "content": p}])
        choices = tokenlm.generate(_base(), [ids] * m, max_tokens, 1.0, 0, seed=seed_of("rut", p))
        scored = tokenlm.score(_base(), [ids] * m, [c.token_ids for c in choices])
        out[p] = ([tuple(c.token_ids) for c in choices], np.array([sum(s.logprobs) for s in scored]))
    return out


def met_check(baseline_path: str) -> str:
    """``met_mmd`` against the package on one fp32 audit's completions (N = 50, b = 20, same torch seed)."""
    _init_worker(baseline_path, None)
    bl = _W["bl"]
    raw = observe(_plain("fp32"), audit_seed("met-check", 0), 50, 0)
    fams = [f["name"] for f in bl["families"]]
    rows = _met_rows([(fams.index(r["row"]["family"]), r["row"]["text"]) for r in raw["rows"]])
    ref = _met_reference()
    import torch

    ours = met_mmd(rows, ref, 20, torch.Generator().manual_seed(7))
    theirs = met_package(rows, ref, 20, 7)
    ok = abs(ours[1] - theirs[1]) <= 1e-9 * max(1.0, abs(theirs[1])) and abs(ours[0] - theirs[0]) < 1e-12
    return (f"MET check (N=50 vs 600 reference rows, b=20): package statistic {theirs[1]:.6g} p {theirs[0]:.3g}; "
            f"ours {ours[1]:.6g} p {ours[0]:.3g}: {'identical' if ok else 'DIFFERENT'}")


# --------------------------------------------------------------------------------------------- parent


def cp_interval(k: int, n: int) -> tuple[float, float]:
    from alignment_node.models.stats import clopper_pearson

    return clopper_pearson(k, n, 0.95) if n else (0.0, 1.0)


def cp_upper(k: int, n: int) -> float:
    from alignment_node.models.stats import clopper_pearson

    return clopper_pearson(k, n, 0.90)[1]  # one-sided 95 % upper bound


def worker_rss(bundle_path: str, baseline_path: str) -> tuple[int, int, float]:
    """(VmHWM kB after imports and loading, VmHWM kB after evaluate_served, seconds) in a fresh process without
    torch, as the model-audit worker judges a bundle."""
    code = ("import json,sys,time\n"
            "from alignment_node.models import served_audit as SA\n"
            "b=json.load(open(sys.argv[1])); bl=json.load(open(sys.argv[2]))\n"
            "def hwm():\n"
            "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            "h0=hwm(); t=time.perf_counter(); SA.evaluate_served(b, bl); dt=time.perf_counter()-t\n"
            "assert 'torch' not in sys.modules\n"
            "print(h0, hwm(), dt)\n")
    out = subprocess.run([sys.executable, "-c", code, bundle_path, baseline_path], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


def build_rut_pool(pool: cf.ProcessPoolExecutor, baseline: dict, prompts: set[str], m: int, log) -> str:
    from alignment_node.models import tokenlm

    key = hashlib.sha256(f"{tokenlm.weights_hash(tokenlm.load_or_train(0, 'base'))}|{m}|"
                         f"{baseline['sampling']['max_tokens']}".encode()).hexdigest()[:16]
    path = ROOT / ".cache" / "bench" / f"served-rut-{key}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    have = {}
    if path.exists():
        with open(path, "rb") as f:
            have = pickle.load(f)
    missing = sorted(prompts - set(have))
    if missing:
        t = time.monotonic()
        chunks = [missing[i:i + 40] for i in range(0, len(missing), 40)]
        for got in pool.map(rut_pool_task, [(c, m, int(baseline["sampling"]["max_tokens"])) for c in chunks]):
            have.update(got)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(have, f)
        os.replace(tmp, path)
        log(f"RUT reference: {len(missing)} prompts x {m} samples in {time.monotonic() - t:.0f} s")
    return str(path)


def fmt_rate(k: int, n: int, ci: bool = False) -> str:
    if n == 0:
        return "-"
    if not ci:
        return f"{k / n:.2f}"
    lo, hi = cp_interval(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _loaded(r: dict) -> dict:
    """An audit record read back from JSON lines: its budgets keyed by int again (JSON made them strings)."""
    r["budgets"] = {int(k): v for k, v in r.get("budgets", {}).items()}
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run (about 2 minutes) to check the script")
    p.add_argument("--audits", type=int, help="power audits per mode (default 60)")
    p.add_argument("--fpr-audits", type=int, help="honest audits at N=100 over the 4 benign setups (default 1000)")
    p.add_argument("--tee-audits", type=int, help="audits per TEE mode (default 3)")
    p.add_argument("--referee-audits", type=int, help="audits per mode (the first ones) that also run the referee, "
                   "at N=100 (default 4; it samples 20 completions of the registered model per served one)")
    p.add_argument("--modes", help="comma-separated modes (default: all); benign ones count for false positives")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", help="write the per-audit results here (and, task by task, to <json>l)")
    p.add_argument("--resume", action="store_true", help="keep the audits already in <json>l and run the rest")
    p.add_argument("--report-only", action="store_true", help="print the tables of the audits in <json>l")
    p.add_argument("--wall", type=float, help="with --report-only: the run's wall time in minutes, to print")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    for name in ("audits", "fpr_audits", "tee_audits", "referee_audits"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    modes = args.modes.split(",") if args.modes else [*BENIGN, *POWER, *("tee:" + t for t in TEE)]
    t_start = time.monotonic()
    log = lambda msg: print(f"[{time.monotonic() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    import torch

    from alignment_node.models import keeper
    from alignment_node.models import served_audit as SA

    torch.set_num_threads(max(1, args.jobs))
    baseline = keeper.make_served_baseline(0)
    cached = keeper.cached_served_baseline(0)
    stale = {k: (cached["lt"].get(k), baseline["lt"].get(k)) for k in ("floor", "threshold")
             if cached["lt"].get(k) != baseline["lt"].get(k)}
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="served-power-"))
    bl_path = tmp / "baseline.json"
    bl_path.write_text(json.dumps(baseline, sort_keys=True))
    log(f"baseline: LT threshold {baseline['lt']['threshold']} (benign max {float(baseline['lt']['benign_max']):.4g})"
        + (f"; cached_served_baseline(0) differs: {stale}" if stale else ""))

    benign = [m for m in modes if m in BENIGN]
    power = [m for m in modes if m in POWER]
    tees = [m[4:] for m in modes if m.startswith("tee:")]
    per_benign = -(-cfg["fpr_audits"] // max(1, len(benign))) if benign else 0
    tasks = []
    for m in power:
        if m in STATEFUL:
            tasks.append({"mode": m, "kind": "power", "audits": list(range(cfg["audits"]))})
        else:
            tasks += [{"mode": m, "kind": "power", "audits": list(range(s, min(s + 5, cfg["audits"])))}
                      for s in range(0, cfg["audits"], 5)]
    for m in benign:
        n = max(per_benign, cfg["audits"])
        tasks += [{"mode": m, "kind": "benign", "full_below": cfg["audits"], "audits": list(range(s, min(s + 10, n))),
                   **({"keep": str(tmp / "bundle")} if m == "fp32" and s == 0 else {})} for s in range(0, n, 10)]
    for t in tees:
        tasks.append({"mode": t, "kind": "tee", "audits": list(range(cfg["tee_audits"]))})
    for t in tasks:
        t.update(rut_m=cfg["rut_m"], referee_audits=cfg["referee_audits"], referee_budget=cfg["referee_budget"])
    tasks.sort(key=lambda t: (t["mode"] not in STATEFUL, t["mode"] != "bf16"))  # the long ones first

    ctx = multiprocessing.get_context("spawn")
    notes = []
    referee_file = ROOT / "alignment_node" / "models" / "referee.py"
    if referee_file.exists():
        notes.append(f"referee.py at the start of the run: sha256 "
                     f"{hashlib.sha256(referee_file.read_bytes()).hexdigest()[:16]}, modified "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(referee_file.stat().st_mtime))} UTC")
    results = []
    if args.report_only:
        results = [json.loads(line) for line in Path(args.json + "l").read_text().splitlines() if line.strip()]
        _init_worker(str(bl_path), None)
        raw = observe(make_server("fp32", 0), audit_seed("fp32", 0), max(BUDGETS), 0)
        for b in (100, 250):
            Path(tmp / f"bundle-{b}.json").write_text(json.dumps(bundle_for(raw, b, snapshot("fp32")["lt"], baseline)[0]))
        notes.append(met_check(str(bl_path)))
        report(results, cfg, baseline, benign, power, tees, notes, (args.wall or 0) * 60, tmp, bl_path, stale)
        return
    if args.json and Path(args.json + "l").exists():
        if args.resume:
            results = [_loaded(json.loads(line)) for line in Path(args.json + "l").read_text().splitlines()
                       if line.strip()]
            done = {(r["mode"], r["kind"], r["i"]) for r in results}
            tasks = [t for t in tasks if not all((t["mode"], t["kind"], i) in done for i in t["audits"])]
            notes.append(f"resumed: {len(results)} audits from an interrupted run kept")
            log(notes[-1])
        else:
            Path(args.json + "l").unlink()
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as one:
        notes.append(one.submit(met_check, str(bl_path)).result())
    log(notes[-1])
    # the prompts the audits will ask, for RUT's reference samples
    needed = set()
    for t in tasks:
        if t["kind"] == "tee":
            continue
        for i in t["audits"]:
            n = max(BUDGETS) if (t["kind"] == "power" or i < t.get("full_below", 0)) else FPR_BUDGET
            needed |= {q for _, q in SA.draw_prompts(baseline, audit_seed(t["mode"], i), TARGET, LICENSE, n)}
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(str(bl_path), None)) as pool:
        rut_path = build_rut_pool(pool, baseline, needed, cfg["rut_m"], log)
    with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=_init_worker,
                                initargs=(str(bl_path), rut_path)) as pool:
        futures = {pool.submit(run_task, t): t for t in tasks}
        for n, f in enumerate(cf.as_completed(futures), 1):
            try:
                got = f.result()
            except Exception as exc:  # noqa: BLE001 (one task lost, the rest reported)
                t = futures[f]
                notes.append(f"task {t['kind']} {t['mode']} audits {t['audits'][0]}..{t['audits'][-1]} FAILED: "
                             f"{type(exc).__name__}: {exc}"[:400])
                log(notes[-1])
                continue
            results += got
            if args.json:
                with open(args.json + "l", "a") as out:
                    out.writelines(json.dumps(r, default=str) + "\n" for r in got)
            if n % 10 == 0 or n == len(futures):
                log(f"{n}/{len(futures)} tasks, {len(results)} audits")
    wall = time.monotonic() - t_start
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    report(results, cfg, baseline, benign, power, tees, notes, wall, tmp, bl_path, stale)


def report(results, cfg, baseline, benign, power, tees, notes, wall, tmp, bl_path, stale) -> None:
    alpha = float(baseline["alpha"])
    seen, unique = set(), []
    for r in results:  # an audit is a function of (mode, kind, index): keep one of each (resumed runs)
        key = (r["mode"], r["kind"], r["i"])
        if key not in seen:
            seen.add(key)
            r["budgets"] = {int(b): x for b, x in r["budgets"].items()}  # JSON keys are strings
            unique.append(r)
    results = unique
    has_referee = any("referee" in b["flags"] for r in results for b in r["budgets"].values())
    cols = [m for m in METHODS if m != "referee" or has_referee]

    def cell(mode, budget, kind=None, full=None):
        rs = [r["budgets"][budget] for r in results if r["mode"] == mode and budget in r["budgets"]
              and (kind is None or r["kind"] == kind) and (full is None or r.get("full") == full)]
        return rs

    print(f"## Served-model audits: power per mode (share of audits that reject, alpha {alpha})\n")
    print(f"{cfg['audits']} audits per mode and budget (benign: the first {cfg['audits']} of their false-positive "
          f"audits); 'ours' with its 95 % Clopper-Pearson interval. LT-ref/LT-drift/sampling/identity: the layer "
          f"alone as it fires in the joint decision; ours: the verdict; text-only: identity on texts, no logprobs; "
          f"MET, LT-paper, RUT: the peers on the same audits (RUT holds the weights)."
          + (f" +referee: rejected/audits, on the first {cfg['referee_audits']} audits of each mode at "
             f"N={cfg['referee_budget']} only (the referee samples 20 completions per served one: about 9 s per "
             f"audit of 100)." if has_referee else
             " The referee column is absent: `alignment_node/models/referee.py` was not importable in this run.")
          + "\n")
    print("| mode | N | " + " | ".join(LABELS[c] for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for mode in [*benign, *power]:
        for b in BUDGETS:
            rs = [x for x in cell(mode, b, full=True) if "text_only" in x["flags"]]
            if not rs:
                continue
            vals = []
            for c in cols:
                if c == "referee":
                    sub = [x for x in rs if "referee" in x["flags"]]
                    vals.append(f"{sum(x['flags']['referee'] for x in sub)}/{len(sub)}" if sub else "-")
                    continue
                k = sum(bool(x["flags"].get(c)) for x in rs)
                vals.append(fmt_rate(k, len(rs), ci=c == "ours"))
            print(f"| {mode} | {b} | " + " | ".join(vals) + " |")
    print()

    # false positives
    if benign:
        print(f"## False positives: honest audits at N = {FPR_BUDGET} (95 % upper bound: one-sided Clopper-Pearson)\n")
        print("| setup | audits | " + " | ".join(LABELS[c] for c in cols) + " | LT-drift vs fp32 snapshot | "
              "LT-paper vs fp32 snapshot |")
        print("|---|---|" + "---|" * (len(cols) + 2))
        totals = {c: [0, 0] for c in [*cols, "cross", "ltp_cross"]}
        for mode in benign:
            rs = cell(mode, FPR_BUDGET)
            vals = []
            for c in cols:
                sub = [x for x in rs if c in x["flags"]]
                k = sum(bool(x["flags"][c]) for x in sub)
                totals[c][0] += k
                totals[c][1] += len(sub)
                vals.append(f"{k}" if c != "referee" else f"{k}/{len(sub)}")
            kc = sum(bool(x.get("lt_drift_cross")) for x in rs)
            kp = sum(bool(x.get("lt_paper_cross")) for x in rs)
            totals["cross"][0] += kc
            totals["cross"][1] += len(rs)
            totals["ltp_cross"][0] += kp
            totals["ltp_cross"][1] += len(rs)
            dmax = max((x.get("lt_drift_cross_d", 0.0) for x in rs), default=0.0)
            print(f"| {mode} | {len(rs)} | " + " | ".join(vals) + f" | {kc} (d {dmax:.3g}) | {kp} |")
        row = []
        for c in [*cols, "cross", "ltp_cross"]:
            k, n = totals[c]
            row.append(f"{k}/{n} = {k / max(n, 1):.4f} (<= {cp_upper(k, n):.4f})" if n else "-")
        print(f"| all | {totals['ours'][1]} | " + " | ".join(row) + " |")
        print()

    # TEE
    if tees:
        print("## TEE modes (fp32 answers signed in process by devnet/teeproxy.py's own sign/report)\n")
        print("| mode | audits | FAULT | tee check failed | failing checks |")
        print("|---|---|---|---|---|")
        for t in tees:
            rs = [r["budgets"][FPR_BUDGET] for r in results if r["kind"] == "tee" and r["mode"] == t]
            failed = sorted({n for x in rs for n in x["failed"]})
            print(f"| {t} | {len(rs)} | {sum(x['flags']['ours'] for x in rs)} | "
                  f"{sum(x['flags']['tee'] for x in rs)} | {', '.join(failed) or '-'} |")
        print()

    # cost
    print("## Cost per audit (one thread; medians)\n")
    print("| N | requests | tokens (prompt + completion) | judgement s (evaluate_served) | generation s (fp32, "
          "per audit of that N) | text-only s | MET s | LT-paper s | RUT s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b in BUDGETS:
        rs = [x for r in results if r["kind"] != "tee" for bb, x in r["budgets"].items() if bb == b]
        gen = [r["gen_s"] * b / r["n_gen"] for r in results if r["mode"] == "fp32" and r.get("n_gen")]
        if not rs:
            continue
        med = lambda key: float(np.median([x[key] for x in rs if key in x])) if any(key in x for x in rs) else 0.0  # noqa: E731
        print(f"| {b} | {rs[0]['requests']} | {int(np.median([x['tokens'] for x in rs]))} | {med('eval_s'):.2f} | "
              f"{float(np.median(gen)) if gen else 0:.2f} | {med('text_only_s'):.2f} | {med('met_s'):.2f} | "
              f"{med('ltp_s'):.2f} | {med('rut_s'):.2f} |")
    print()
    for b in (100, 250):
        path = tmp / f"bundle-{b}.json"
        if path.exists():
            h0, h1, dt = worker_rss(str(path), str(bl_path))
            print(f"- worker peak RSS (fresh process, no torch) judging one N={b} bundle: {h0 / 1024:.1f} MB after "
                  f"imports and loading, {h1 / 1024:.1f} MB after evaluate_served ({dt:.2f} s)")
    errors = [x["referee_error"] for r in results for x in r["budgets"].values() if "referee_error" in x]
    if errors:
        print(f"- the referee raised in {len(errors)} audits, e.g. {errors[0]}")
    for note in notes:
        print(f"- {note}")
    if stale:
        print(f"- `keeper.cached_served_baseline(0)` returned a stale bundle: {stale} (cached value, code value)")
    print(f"- wall time {wall / 60:.1f} min, {sum(len(r['budgets']) for r in results)} judged audits")
    print()

    # goals
    def power_at(mode, method="ours"):
        return {b: (sum(bool(x["flags"].get(method)) for x in cell(mode, b, "power")), len(cell(mode, b, "power")))
                for b in BUDGETS}

    print("## Goals\n")
    lines = []
    for mode, goal, most in (("small", 0.95, 100), ("seed-1", 0.95, 100), ("finetune-10", 0.95, 100),
                             ("temp-0.7", 0.95, 100), ("4bit", 0.90, 250)):
        if mode not in power:
            continue
        pw = power_at(mode)
        best = [b for b in BUDGETS if b <= most and pw[b][1] and pw[b][0] / pw[b][1] >= goal]
        lines.append(f"- {mode}: power >= {goal} at N <= {most}: "
                     + ("goal met at N=" + str(best[0]) if best else "goal NOT MET") + " ("
                     + ", ".join(f"N={b} {fmt_rate(*pw[b], ci=True)}" for b in BUDGETS if pw[b][1]) + ")")
    if any(r["kind"] == "tee" for r in results):
        bad = [t for t in tees if t != "honest"]
        caught = all(x["flags"]["tee"] for r in results if r["kind"] == "tee" and r["mode"] in bad
                     for x in r["budgets"].values())
        honest_ok = all(not x["flags"]["ours"] for r in results if r["kind"] == "tee" and r["mode"] == "honest"
                        for x in r["budgets"].values())
        lines.append(f"- TEE faults caught 100 %: {'goal met' if caught else 'goal NOT MET'}; honest TEE provider OK: "
                     f"{'yes' if honest_ok else 'NO'}")
    if benign and any(cell(m, FPR_BUDGET) for m in benign):
        rs = [x for m in benign for x in cell(m, FPR_BUDGET)]
        k = sum(x["flags"]["ours"] for x in rs)
        lines.append(f"- false positives <= 0.01 under benign drift: {k}/{len(rs)} = {k / len(rs):.4f}, 95 % upper "
                     f"bound {cp_upper(k, len(rs)):.4f}: {'goal met' if cp_upper(k, len(rs)) <= 0.01 else ('point estimate within the goal, bound above it' if k / len(rs) <= 0.01 else 'goal NOT MET')}")
    undetected = [m for m in power if all(power_at(m)[b][1] and power_at(m)[b][0] / power_at(m)[b][1] < 0.5
                                          for b in BUDGETS)]
    lines.append(f"- below 0.5 power at every N (ours): {', '.join(undetected) or 'none'}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
