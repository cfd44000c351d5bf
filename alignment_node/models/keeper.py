"""The keeper's side of a MODEL audit by auditors that hold no weights: the version-2 ("served") baseline bundle.

The keeper holds the registered weights (here the devnet's token-level chat model, ``models.tokenlm``) and
prepares, once, everything an auditor without the weights needs (docs/models-blackbox.md):

- ``lt``: the fixed short chat prompts of the logprob fingerprint (LT), the registered model's own fingerprint
  (fp32), and a tolerance calibrated on every benign serving setup (``tokenvariants.BENIGN``: fp32, bf16,
  threads-2, batch-8, run in-process): ``margin`` times the largest distance between the fingerprints of two
  benign setups (with a floor);
- ``families``: prompt families (chat-like prompts drawn by a seed, ``blackbox.PromptFamily``) and, per family,
  the registered model's completions of fresh draws (keeper seed, one completion per prompt, at the baseline's
  temperature) with their public ``blackbox.completion_scores`` (4 numbers): the reference of the identity test;
- ``sampling``: the temperature, ``max_tokens``, ``top_logprobs`` the audit asks for, and the settings of the
  sampling-consistency test;
- ``alpha`` and, when the provider claims TeeML, ``tee``: signer address, image measurement, trusted roots.

``make_served_baseline(seed=0, ...) -> bundle``; ``with_tee(bundle, tee)`` adds the TEE claim; ``cached_served_baseline(...)`` the same, cached as JSON next to
the models (``lm.cache_dir()``); ``FAMILIES``, ``LT_PROMPTS``. The bundle is canonical JSON (floats as ``repr``
strings) whose keccak256 (``baseline.baseline_hash``) is the target's identity; ``baseline.save`` / ``fetch``
store and fetch it like a version-1 bundle. Needs torch (the keeper runs the model); the auditor's side is
``models.served_audit``.
"""

from __future__ import annotations

import hashlib
import json
import fcntl
import os
import time
from pathlib import Path

from . import blackbox as BB
from .baseline import SERVED_KIND, SERVED_VERSION

__all__ = ["CHAT_TEMPLATE", "FAMILIES", "LT_PROMPTS", "cached_served_baseline", "fingerprint_of",
           "make_served_baseline", "position_entry", "with_tee"]

LOGPROB_FLOOR = -9999.0  # the server clamps logprobs here (as vLLM does)

LT_PROMPTS = ("hi", "Name a Python module.", "What is a list?", "Say yes or no.", "Define a dict.",
              "Open a file.", "What does len do?", "Explain sorting.")

_NAMES = ("os.path.join", "len", "sorted", "zip", "enumerate", "open", "json.loads", "json.dumps", "re.sub",
          "re.match", "str.split", "str.join", "dict.get", "list.append", "set.add", "math.sqrt", "random.choice",
          "time.sleep", "shutil.copy", "os.listdir", "itertools.chain", "functools.partial", "collections.Counter",
          "subprocess.run", "pathlib.Path", "hashlib.sha256", "csv.reader", "logging.getLogger", "argparse",
          "datetime.now", "textwrap.wrap", "heapq.heappush", "bisect.insort", "copy.deepcopy", "glob.glob",
          "struct.pack", "base64.b64encode", "urllib.parse.quote", "socket.socket", "threading.Thread")
_ASKS = ("What does {} do?", "Explain {}.", "How do I use {}?", "Describe {} briefly.", "When should I call {}?",
         "Give an example of {}.")
_TASKS = ("read a file", "split a string", "sort a list", "parse JSON", "copy a directory", "list files",
          "join paths", "count words", "format a date", "start a thread", "hash a password", "compress data",
          "match a pattern", "encode bytes", "open a socket", "log a message", "walk a tree", "sleep a while")
_MODULES = ("os", "re", "json", "shutil", "pathlib", "itertools", "collections", "datetime", "threading",
            "hashlib", "zlib", "logging", "socket", "struct", "string", "io")

FAMILIES = (
    BB.PromptFamily("doc", "{ask}", {"ask": tuple(a.format(n) for a in _ASKS for n in _NAMES)}),
    BB.PromptFamily("howto", "How do I {task} with the {module} module?", {"task": _TASKS, "module": _MODULES}),
    BB.EXAMPLE_FAMILIES[0],  # "explain": general English, far from the training corpus
)
CHAT_TEMPLATE = "alignment-tinychat/chat-template-v1"


def _f(x: float) -> str:
    return repr(float(x))


def position_entry(token_id: int, logprob: float, top: list[tuple[int, float]]):
    """One generated position as an auditor sees it: ``(token, logprob, [(token, logprob), ...])`` in text. Byte
    tokens that are parts of a UTF-8 character all read U+FFFD: one outcome in text, their probabilities added
    (as ``blackbox`` does with a served answer's entries whose ``bytes`` differ)."""
    from . import tokenlm

    merged: dict[str, float] = {}
    for t, lp in top:
        text = tokenlm.token_text(t)
        merged[text] = BB.log_add(merged[text], float(lp)) if text in merged else float(lp)
    return (tokenlm.token_text(token_id), max(float(logprob), LOGPROB_FLOOR),
            [(text, max(lp, LOGPROB_FLOOR)) for text, lp in merged.items()])


def fingerprint_of(served, prompts=LT_PROMPTS, k: int = 20) -> BB.Fingerprint:
    """The LT fingerprint of one serving setup (``tokenvariants.TokenServed``), as the auditor would see it."""
    from . import tokenlm

    tops = {}
    for p in prompts:
        [c] = served.generate([tokenlm.encode_chat([{"role": "user", "content": p}])], 1, 1.0, k, seed=0)
        tops[p] = position_entry(c.token_ids[0], c.logprobs[0], c.top[0])[2]
    return BB.lt_fingerprint(tops)


def make_served_baseline(seed: int = 0, *, per_family: int = 200, max_tokens: int = 24, top_logprobs: int = 20,
                         temperature: float = 1.0, alpha: float = 0.01, lt_margin: float = 2.0,
                         lt_floor: float = 0.01, keeper_seed: int = 0x5eed, tee: dict | None = None,
                         log=None) -> dict:
    """The version-2 baseline bundle of the served base model of ``seed`` (module docstring). ``tee``: ``{"signer":
    address, "measurement": hex, "roots": [address, ...]}`` when the provider claims TeeML."""
    import torch

    from . import tokenlm, tokenvariants

    say = log or (lambda _m: None)
    t0 = time.monotonic()
    torch.set_num_threads(1)
    base = tokenlm.load_or_train(seed, "base")
    steps = tokenlm.STEPS["base"]
    # LT: one fingerprint per benign setup; the tolerance covers every pair of them
    prints = {name: fingerprint_of(tokenvariants.make_variant(name, base, seed=seed), k=top_logprobs)
              for name in tokenvariants.BENIGN}
    names = sorted(prints)
    pairs = {f"{a}~{b}": BB.lt_distance(prints[a], prints[b]) for i, a in enumerate(names) for b in names[i + 1:]}
    benign_max = max(pairs.values())
    threshold = max(lt_margin * benign_max, lt_floor)
    say(f"LT: benign max distance {benign_max:.4g}, threshold {threshold:.4g}")
    # identity references: one completion per fresh prompt of each family, drawn with the keeper's seed
    reference = {}
    for fam in FAMILIES:
        prompts = BB.family_prompts(fam, keeper_seed, min(per_family, fam.size()))
        rows = [tokenlm.encode_chat([{"role": "user", "content": p}]) for p in prompts]
        fam_seed = int.from_bytes(hashlib.sha256(f"keeper/{fam.name}/{keeper_seed}".encode()).digest()[:7], "big")
        choices = tokenlm.generate(base, rows, max_tokens, temperature, top_logprobs, seed=fam_seed)
        samples = []
        for c in choices:
            positions = [position_entry(t, lp, top) for t, lp, top in zip(c.token_ids, c.logprobs, c.top)]
            text = tokenlm.decode(c.token_ids)
            scores = BB.completion_scores({"text": text, "logprobs": positions})
            samples.append({"text": text, "scores": [_f(s) for s in scores]})
        reference[fam.name] = samples
    say(f"references: {sum(len(v) for v in reference.values())} completions in {time.monotonic() - t0:.1f} s")
    bundle = {
        "version": SERVED_VERSION, "kind": SERVED_KIND,
        "model": {"family": "alignment-tinychat", "served_name": "alignment-tinychat", "seed": seed, "size": "base",
                  "steps": steps, "weights_sha256": tokenlm.weights_hash(base),
                  "tokenizer_sha256": tokenlm.tokenizer_hash(), "chat_template": CHAT_TEMPLATE,
                  "template_version": tokenlm.TEMPLATE_VERSION, "params": tokenlm.n_parameters(base)},
        "sampling": {"temperature": _f(temperature), "max_tokens": max_tokens, "top_logprobs": top_logprobs},
        "lt": {"prompts": list(LT_PROMPTS), "max_tokens": 1, "top_logprobs": top_logprobs,
               "reference": prints["fp32"].to_dict(),
               "benign": {k: _f(v) for k, v in sorted(pairs.items())}, "benign_max": _f(benign_max),
               "margin": _f(lt_margin), "floor": _f(lt_floor), "threshold": _f(threshold),
               "setups": list(tokenvariants.BENIGN)},
        "families": [{"name": f.name, "template": f.template, "slots": {k: list(v) for k, v in sorted(f.slots.items())}}
                     for f in FAMILIES],
        "reference": {"keeper_seed": keeper_seed, "per_family": per_family, "samples": reference},
        "consistency": {"statistic": "surprisal", "simulations": 4000, "reported": "raw"},
        "identity": {"permutations": 1000, "length": 64},
        "alpha": _f(alpha),
    }
    return with_tee(bundle, tee) if tee else bundle


def with_tee(bundle: dict, tee: dict) -> dict:
    """A copy of ``bundle`` for a provider that claims TeeML: ``tee`` = ``{"signer": address, "measurement": hex,
    "roots": [address, ...]}`` (the devnet attestation roots the auditor trusts)."""
    out = dict(bundle)
    out["tee"] = {"signer": tee["signer"].lower(), "measurement": tee["measurement"].lower().removeprefix("0x"),
                  "roots": sorted(r.lower() for r in tee["roots"]), "verifiability": "TeeML"}
    return out


def cached_served_baseline(seed: int = 0, **kwargs) -> dict:
    """``make_served_baseline`` cached in ``lm.cache_dir()`` under a key of its arguments and the weights hash."""
    from . import lm, tokenlm

    import inspect

    bound = inspect.signature(make_served_baseline).bind(seed, **kwargs)
    bound.apply_defaults()  # the key holds every setting, defaults included: a changed default is a new bundle
    settings = {k: v for k, v in bound.arguments.items() if k != "log"}
    path_key = json.dumps({**settings, "v": SERVED_VERSION}, sort_keys=True, default=str)
    base_file = tokenlm.cache_path(seed, "base")
    h = hashlib.sha256((path_key + str(base_file) + str(os.path.getmtime(base_file) if os.path.exists(base_file)
                                                        else 0)).encode()).hexdigest()[:16]
    path = Path(lm.cache_dir()) / f"served-baseline-{h}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (parallel test workers): the others read its file
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass
        bundle = make_served_baseline(seed, **kwargs)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(bundle, sort_keys=True))
        os.replace(tmp, path)
    return bundle
