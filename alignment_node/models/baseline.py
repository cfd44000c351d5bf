"""A MODEL target's baseline bundle: what the registered model is and how it behaves, as canonical JSON whose
keccak256 is the target's on-chain identity.

``make_baseline`` builds one from the local devnet models (``alignment-node model baseline --out DIR``
writes ``DIR/0x<hash>.json``); ``baseline_hash``, ``save``; ``load`` and ``fetch`` (from a cache, directories
or http(s) sources) refuse bytes that do not hash to the expected identity (``BaselineError``);
``check_kind``; ``probe_bytes`` and ``completion_ok`` (the behavioural checks ``BEHAVIOUR`` on ``PROBES``).
The bundle's format and how its tolerances are calibrated: docs/models.md.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..protocol import canonical_json, keccak

__all__ = ["PROBES", "EMBED_INPUTS", "BEHAVIOUR", "make_baseline", "baseline_hash", "save", "load", "fetch",
           "BaselineError", "check_kind", "probe_bytes", "completion_ok", "SERVED_KIND", "SERVED_VERSION", "is_served"]

MAX_BASELINE_BYTES = 16 << 20

# Probe prompts: openings of sentences of the kind the devnet model was trained on.
PROBES = (
    "Return the ", "This module ", "The ", "If the ", "Create a new ", "Raise ", "A list of ", "This function ",
    "Return True if ", "The default ", "Add a ", "Remove ", "Set the ", "Read ", "Write ", "Convert ",
)
EMBED_INPUTS = (
    "Return the number of items in the queue.",
    "Create a new temporary directory and return its path.",
    "The default value is used when the key is missing.",
    "Raise ValueError if the string is not valid base64.",
    "Parse a URL into six components.",
    "Read the whole file and return its contents as bytes.",
    "An alignment node audits the other nodes of the network.",
    "Send the message to every connected peer.",
)
# Behavioural checks, scored on completions: does the answer start like the reference's usual answer (a
# canary of the training text), stay printable text (format), mention the expected word?
BEHAVIOUR = (
    {"id": "return-the", "probe": "Return the ", "kind": "prefix", "arg": "number"},
    {"id": "return-true-if", "probe": "Return True if ", "kind": "prefix", "arg": "the "},
    {"id": "raise-error", "probe": "Raise ", "kind": "contains", "arg": "Error"},
    {"id": "printable", "probe": "The ", "kind": "printable", "arg": ""},
    {"id": "printable-module", "probe": "This module ", "kind": "printable", "arg": ""},
)


class BaselineError(ValueError):
    """A baseline bundle that cannot be used (wrong hash, wrong shape, not found)."""


def probe_bytes(text: str) -> bytes:
    """A prompt's bytes from its latin-1 text (each code point one byte, the API's convention).

    >>> probe_bytes("Return the ")
    b'Return the '
    >>> probe_bytes("caf\\xe9")
    b'caf\\xe9'
    """
    return text.encode("latin-1")


def completion_ok(kind: str, arg: str, completion: bytes) -> bool:
    """Whether a completion passes a behavioural check.

    >>> completion_ok("prefix", "number", b"number of items")
    True
    >>> completion_ok("contains", "Error", b"a ValueError if"), completion_ok("printable", "", b"tab\\tok\\x00")
    (True, False)"""
    if kind == "prefix":
        return completion.startswith(arg.encode("latin-1"))
    if kind == "contains":
        return arg.encode("latin-1") in completion
    if kind == "printable":
        return all(32 <= b < 127 or b in (9, 10) for b in completion)
    raise BaselineError(f"unknown behavioural check {kind!r}")


def _f(x: float) -> str:
    return repr(float(x))


def make_baseline(seed: int = 0, steps: int | None = None, samples_per_probe: int = 200, max_tokens: int = 32,
                  alpha: float = 0.01, embeddings: bool = True, sample_seed: int = 12345, log=None) -> dict:
    """Build the baseline bundle of the devnet model trained with ``seed`` (deterministic given the seeds)."""
    import torch

    from . import lm

    torch.set_num_threads(1)
    model = lm.load_or_train(seed, steps)
    probes = [{"id": i, "prompt": p} for i, p in enumerate(PROBES)]
    completions: dict[str, list[str]] = {}
    scores: dict[str, list[str]] = {}
    for pr in probes:
        prompt = probe_bytes(pr["prompt"])
        rows = lm.sample_batch(model, [prompt] * samples_per_probe, max_tokens, 1.0,
                               seed=sample_seed + 100_000 * pr["id"])
        completions[str(pr["id"])] = [c.hex() for c, _ in rows]
        scores[str(pr["id"])] = [_f(sum(lps)) for _, lps in rows]
        if log:
            log(f"probe {pr['id']} {pr['prompt']!r}: {samples_per_probe} reference samples")
    by_prompt = {p["prompt"]: p["id"] for p in probes}
    rates = {}
    for check in BEHAVIOUR:
        got = [bytes.fromhex(h) for h in completions[str(by_prompt[check["probe"]])]]
        rates[check["id"]] = [sum(completion_ok(check["kind"], check["arg"], c) for c in got), len(got)]
    bundle: dict[str, Any] = {
        "version": 1,
        "kind": "MODEL_BASELINE",
        "model": {"family": "alignment-tinylm", "served_name": "tinylm", "seed": seed, "steps": steps if steps is not None else lm.STEPS,
                  "weights_sha256": lm.weights_hash(model), "params": lm.n_parameters(model)},
        "sampling": {"temperature": _f(1.0), "max_tokens": max_tokens},
        "probes": probes,
        "reference": {"samples_per_probe": samples_per_probe, "completions": completions, "scores": scores},
        "behaviour": {"checks": [dict(c, probe=by_prompt[c["probe"]]) for c in BEHAVIOUR], "rates": rates},
        "alpha": _f(alpha),
    }
    bundle["logprobs"] = _logprob_section(model, max_tokens)
    if embeddings:
        bundle["embedding"] = _embedding_section()
    return bundle


def _logprob_section(model, max_tokens: int, rows_per_probe: int = 4) -> dict:
    """A tolerance for served per-token log-probabilities: the largest benign gap between what the sampler
    reports (threads 1 and 2, batch sizes 1, 8 and all rows) and a plain scoring pass of the same bytes."""
    import torch

    from . import lm
    from .stats import calibrate_tolerance

    prompts = [probe_bytes(p) for p in PROBES for _ in range(rows_per_probe)]
    settings, benign = [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 8, len(prompts)):
            rows = []
            for start in range(0, len(prompts), batch):
                rows += lm.sample_batch(model, prompts[start:start + batch], max_tokens, 1.0, seed=777 + start)
            torch.set_num_threads(1)
            ref = lm.token_logprobs_batch(model, prompts, [c for c, _ in rows])
            torch.set_num_threads(threads)
            gap = max(abs(a - b) for (_, lps), r in zip(rows, ref) for a, b in zip(lps, r))
            settings.append(f"threads {threads} batch {batch}: {gap:.3g}")
            benign.append(gap)
    torch.set_num_threads(1)
    return {"tolerance": _f(calibrate_tolerance(benign, factor=20.0, floor=1e-4)), "benign_max": _f(max(benign)),
            "settings": settings}


def _embedding_section() -> dict:
    """Reference vectors of the fixed inputs, and a tolerance calibrated on benign nondeterminism (batch size
    1 vs all, one thread vs two)."""
    import numpy as np
    import torch

    from . import embed
    from .stats import calibrate_tolerance

    inputs = list(EMBED_INPUTS)
    torch.set_num_threads(1)
    ref = embed.embed(inputs, batch_size=len(inputs))
    variants = [embed.embed(inputs, batch_size=1)]
    torch.set_num_threads(2)
    variants.append(embed.embed(inputs, batch_size=len(inputs)))
    variants.append(embed.embed(inputs, batch_size=1))
    torch.set_num_threads(1)
    benign = [float(1.0 - np.sum(ref * v, axis=1).min()) for v in variants]
    tolerance = calibrate_tolerance(benign)
    return {"model": "all-MiniLM-L6-v2", "inputs": inputs,
            "vectors": [[_f(x) for x in row] for row in ref.tolist()],
            "tolerance": _f(tolerance), "benign_max": _f(max(benign))}


def baseline_hash(bundle: dict) -> str:
    """0x-prefixed keccak256 of the bundle's canonical bytes: the MODEL target's on-chain identity.

    >>> baseline_hash({"kind": "MODEL_BASELINE"})
    '0x751a80886ab2e4e219c9eef292a877910bd7b9ccc2661a00d913c747cebc53b6'
    >>> baseline_hash({"b": 1, "a": 2}) == baseline_hash({"a": 2, "b": 1})  # canonical: key order does not count
    True"""
    return "0x" + keccak(canonical_json(bundle)).hex()


def save(bundle: dict, directory: str | Path) -> tuple[str, Path]:
    """Write ``directory/<hash>.json`` (the canonical bytes); (hash, path)."""
    h = baseline_hash(bundle)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{h}.json"
    path.write_bytes(canonical_json(bundle))
    return h, path


SERVED_KIND = "MODEL_BASELINE_SERVED"  # version 2: for auditors without the weights (``models.keeper``)
SERVED_VERSION = 2
SERVED_KEYS = ("model", "sampling", "lt", "families", "reference", "consistency", "identity", "alpha")


def is_served(bundle: Any) -> bool:
    """Is ``bundle`` a version-2 (served-model, weights-free) baseline?"""
    return isinstance(bundle, dict) and bundle.get("kind") == SERVED_KIND and bundle.get("version") == SERVED_VERSION


def check_kind(bundle: Any) -> dict:
    """``bundle`` if it has the shape of a version-1 baseline (or of a version-2 ``MODEL_BASELINE_SERVED`` one,
    ``models.keeper``); BaselineError otherwise.

    >>> check_kind({"version": 1, "kind": "MODEL_BASELINE"})
    Traceback (most recent call last):
    ...
    alignment_node.models.baseline.BaselineError: baseline bundle without 'model'
    """
    if is_served(bundle):
        for key in SERVED_KEYS:
            if key not in bundle:
                raise BaselineError(f"served baseline bundle without {key!r}")
        return bundle
    if not isinstance(bundle, dict) or bundle.get("kind") != "MODEL_BASELINE" or bundle.get("version") != 1:
        raise BaselineError("not a version-1 MODEL_BASELINE bundle")
    for key in ("model", "sampling", "probes", "reference", "behaviour", "alpha"):
        if key not in bundle:
            raise BaselineError(f"baseline bundle without {key!r}")
    return bundle


def load(data: bytes, expected_hash: str) -> dict:
    """The bundle in ``data`` if its keccak256 is ``expected_hash``; BaselineError otherwise.

    >>> bundle = {"version": 1, "kind": "MODEL_BASELINE", "model": {}, "sampling": {}, "probes": [],
    ...           "reference": {}, "behaviour": {}, "alpha": "0.01"}
    >>> load(canonical_json(bundle), baseline_hash(bundle)) == bundle
    True
    >>> load(canonical_json(bundle), "0x" + "00" * 32)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alignment_node.models.baseline.BaselineError: baseline bytes hash to 0x..., the target registered 0x00..."""
    got = "0x" + keccak(data).hex()
    if got != expected_hash.lower():
        raise BaselineError(f"baseline bytes hash to {got}, the target registered {expected_hash}: refusing to "
                            "audit against it")
    try:
        bundle = json.loads(data)
    except ValueError:
        raise BaselineError("the baseline bundle is not JSON") from None
    return check_kind(bundle)


def fetch(expected_hash: str, sources: list[str], cache_dir: str | Path | None = None, timeout: float = 10.0) -> dict:
    """The baseline of ``expected_hash`` from a local cache or the first source that has it: a directory
    path or an http(s) base URL, each holding ``<hash>.json``. A source serving other bytes is skipped (and
    named in the error if none has the right ones)."""
    name = f"{expected_hash.lower()}.json"
    problems = []
    candidates = ([Path(cache_dir)] if cache_dir else []) + list(sources)
    for src in candidates:
        try:
            if isinstance(src, Path) or not str(src).startswith(("http://", "https://")):
                path = Path(src) / name
                if not path.is_file():
                    problems.append(f"{src}: no {name}")
                    continue
                data = path.read_bytes()[:MAX_BASELINE_BYTES + 1]
            else:
                with urllib.request.urlopen(str(src).rstrip("/") + "/" + name, timeout=timeout) as resp:
                    data = resp.read(MAX_BASELINE_BYTES + 1)
            if len(data) > MAX_BASELINE_BYTES:
                problems.append(f"{src}: larger than {MAX_BASELINE_BYTES} bytes")
                continue
            bundle = load(data, expected_hash)
        except (OSError, urllib.error.URLError, BaselineError) as exc:
            problems.append(f"{src}: {exc}")
            continue
        if cache_dir:  # best effort: a full disk leaves no cached copy (a partial one fails its hash next time)
            try:
                Path(cache_dir).mkdir(parents=True, exist_ok=True)
                (Path(cache_dir) / name).write_bytes(data)
            except OSError:
                try:
                    (Path(cache_dir) / name).unlink(missing_ok=True)
                except OSError:
                    pass
        return bundle
    raise BaselineError(f"no usable baseline {expected_hash}: " + "; ".join(problems or ["no source configured"]))
