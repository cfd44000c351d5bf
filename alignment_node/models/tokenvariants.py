"""Serving setups of the devnet's token-level chat model (``tokenlm``): benign ones a provider may run without
changing the model, and substitutions of what it registered. Each is a ``TokenServed`` (``models.variants``'s
``Served`` for token models: a model plus its serving policy).

``make_variant(name, base=None, *, seed=0, substitute="small", route_seed=0, repeats=1, probes=())`` with
``base`` a ``tokenlm.TokenLM`` (default ``tokenlm.load_or_train(seed)``); ``BENIGN``, ``SUBSTITUTIONS`` and
``POLICIES`` list the names (``route-<q>`` takes any q in [0, 1]). ``TokenServed`` methods:
``generate(prompts, max_tokens, temperature, top_logprobs, seed) -> [tokenlm.Choice]``, ``score(prompts,
completions, top_logprobs)`` (teacher-forced, with the model and dtype that would serve a non-audit call),
``weights_hash()``.

Benign (the registered weights; only rounding moves):

- ``fp32``: the reference: float32 weights and compute, one batch per request, the process's thread count;
- ``bf16``: weights and compute in bfloat16 (logits cast to float64 for the softmax, as vLLM casts to float32);
- ``threads-2``: float32 with 2 torch threads (other reduction splits in the matrix products);
- ``batch-8``: float32 in batches of 8 rows, each batch topped up with other traffic (filler prompts longer
  than the request's), so every request's rows are left-padded and share their batch with strangers.

Substitutions:

- ``small``: the small model (``tokenlm.SIZES["small"]``, same seed); ``seed-1``: the base trained with seed 1;
- ``finetune-10``: the base after 10 AdamW steps (lr 1e-3, constant, seed 1) on the source code of
  ``variants.FINETUNE_MODULES`` (cached);
- ``int8``, ``4bit``: ``variants.quantize_int8`` / ``quantize_4bit`` of every ``nn.Linear``;
- ``temp-0.7``: the base, every request's temperature times 0.7 (claims 1.0, samples at 0.7);
- ``route-<q>``: each request goes to the substitute (default ``small``) with probability q (a
  ``random.Random(route_seed)``), else to the base.

Policies:

- ``evasive``: the substitute, except on requests it takes for an audit's, which get the base: a prompt in
  ``probes`` (e.g. the prompts of a public baseline bundle), a prompt asked ``repeats`` times before (auditors
  sample a prompt many times, users rarely repeat themselves), or the shape of a log-probability fingerprint
  (``max_tokens`` <= 1 with ``top_logprobs`` > 0, as the LT method asks). A fresh prompt asked like a user's
  gets the substitute;
- ``replay``: the base, but a request whose prompt and ``max_tokens`` it has answered before gets the cached
  completions back (seed and temperature ignored; more choices than cached are generated and added).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import importlib
import math
import threading

import torch
from torch import nn

from . import tokenlm, variants

__all__ = ["BENIGN", "FILLER", "POLICIES", "SUBSTITUTIONS", "Evasive", "Replay", "Routed", "TokenServed",
           "finetuned", "make_variant", "names"]

BENIGN = ("fp32", "bf16", "threads-2", "batch-8")
SUBSTITUTIONS = ("small", "seed-1", "finetune-10", "int8", "4bit", "temp-0.7", "route-0.5")
POLICIES = ("evasive", "replay")
FILLER = ("Return a list of the lines in the string, breaking at line boundaries. Line breaks are not included "
          "in the resulting list unless keepends is given and true. This method splits on the following line "
          "boundaries, which are a superset of universal newlines.")


def names() -> tuple[str, ...]:
    return (*BENIGN, *SUBSTITUTIONS, *POLICIES)


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TokenServed:
    """A token model plus its serving policy: dtype, thread count, batch size (with filler traffic) and a
    temperature factor."""

    def __init__(self, name: str, model: nn.Module, *, dtype: str = "float32", threads: int | None = None,
                 batch_size: int | None = None, temperature_scale: float = 1.0):
        self.name, self.model, self.dtype = name, model, dtype
        self.threads, self.batch_size, self.temperature_scale = threads, batch_size, temperature_scale
        tokenlm.as_dtype(model, dtype)  # convert once, now

    def _pick(self, prompts: list[list[int]], max_tokens: int, top_logprobs: int) -> TokenServed:
        return self

    def generate(self, prompts: list[list[int]], max_tokens: int = 16, temperature: float = 1.0,
                 top_logprobs: int = 0, seed: int | None = None) -> list[tokenlm.Choice]:
        who = self._pick([list(p) for p in prompts], max_tokens, top_logprobs)
        if who is not self:
            return who.generate(prompts, max_tokens, temperature, top_logprobs, seed)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError("temperature must be a finite number >= 0")
        temperature = temperature * self.temperature_scale
        with _threads(self.threads):
            if self.batch_size is None:
                return tokenlm.generate(self.model, prompts, max_tokens, temperature, top_logprobs, seed, self.dtype)
            return self._batched(prompts, max_tokens, temperature, top_logprobs, seed)

    def _batched(self, prompts, max_tokens, temperature, top_logprobs, seed) -> list[tokenlm.Choice]:
        """Batches of ``batch_size`` rows: up to ``batch_size - 1`` of the request's, the rest filler prompts
        longer than the longest of them (when the context allows), so each real row is left-padded."""
        m = tokenlm.as_dtype(self.model, self.dtype)
        rows = tokenlm._check(prompts, max_tokens, temperature, top_logprobs, m.config.ctx)
        gens = tokenlm.generators(len(rows), seed)
        per = max(1, self.batch_size - 1)
        filler = tokenlm.encode(FILLER)
        out: list[tokenlm.Choice] = []
        for s in range(0, len(rows), per):
            part = rows[s:s + per]
            room = m.config.ctx - max_tokens
            length = max(1, min(room, max(len(r) for r in part) + 5, len(filler)))
            extra = [filler[:max(1, length - k)] for k in range(self.batch_size - len(part))]
            fill_gens = [torch.Generator().manual_seed(k) for k in range(len(extra))]
            out += tokenlm._run(m, part + extra, gens[s:s + per] + fill_gens, max_tokens, temperature,
                                top_logprobs)[:len(part)]
        return out

    def scorer(self) -> TokenServed:
        return self

    def score(self, prompts: list[list[int]], completions: list[list[int]], top_logprobs: int = 0):
        who = self.scorer()
        with _threads(who.threads):
            return tokenlm.score(who.model, prompts, completions, top_logprobs, who.dtype)

    def weights_hash(self) -> str:
        who = self.scorer()
        return tokenlm.weights_hash(tokenlm.as_dtype(who.model, who.dtype))

    def __repr__(self) -> str:
        return f"TokenServed({self.name!r})"


class Routed(variants.Routing, TokenServed):
    """Each request goes to ``substitute`` with probability ``q``, else to ``base``."""

    def __init__(self, name: str, base: TokenServed, substitute: TokenServed, q: float, route_seed: int = 0):
        super().__init__(name, substitute.model)
        self._init_routing(base, substitute, q, route_seed)

    def _pick(self, prompts, max_tokens, top_logprobs):
        return self._route()

    def scorer(self) -> TokenServed:
        return self.substitute


class Evasive(TokenServed):
    """The base on requests that look like an audit's (see the module docstring), else the substitute."""

    def __init__(self, name: str, base: TokenServed, substitute: TokenServed, repeats: int = 1,
                 probes=frozenset(), fingerprints: bool = True):
        if repeats < 1:
            raise ValueError("repeats must be >= 1")
        super().__init__(name, substitute.model)
        self.base, self.substitute, self.repeats, self.fingerprints = base, substitute, repeats, fingerprints
        self.probes = frozenset(tuple(p) for p in probes)
        self.seen: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()
        self.calls = {"base": 0, "substitute": 0}

    def looks_like_audit(self, prompt: tuple[int, ...], max_tokens: int = 16, top_logprobs: int = 0) -> bool:
        return (prompt in self.probes or self.seen.get(prompt, 0) >= self.repeats
                or (self.fingerprints and max_tokens <= 1 and top_logprobs > 0))

    def _pick(self, prompts, max_tokens, top_logprobs):
        with self._lock:
            audit = False
            for p in map(tuple, prompts):
                audit = audit or self.looks_like_audit(p, max_tokens, top_logprobs)
                self.seen[p] = self.seen.get(p, 0) + 1
            self.calls["base" if audit else "substitute"] += 1
        return self.base if audit else self.substitute

    def scorer(self) -> TokenServed:
        return self.substitute


class Replay(TokenServed):
    """The base, answering a (prompt, max_tokens) it has answered before from its cache of completions."""

    def __init__(self, name: str, base: TokenServed):
        super().__init__(name, base.model)
        self.base = base
        self.cache: dict[tuple[tuple[int, ...], int], list[tokenlm.Choice]] = {}
        self._lock = threading.Lock()
        self.replayed = 0

    def generate(self, prompts, max_tokens=16, temperature=1.0, top_logprobs=0, seed=None):
        keys = [(tuple(p), max_tokens) for p in prompts]
        with self._lock:
            used: dict = {}
            out: list[tokenlm.Choice | None] = []
            for k in keys:
                n = used.get(k, 0)
                have = self.cache.get(k, [])
                out.append(have[n] if n < len(have) else None)
                used[k] = n + 1
            missing = [i for i, c in enumerate(out) if c is None]
            self.replayed += len(out) - len(missing)
        if missing:
            fresh = self.base.generate([list(keys[i][0]) for i in missing], max_tokens, temperature, top_logprobs,
                                       seed)
            with self._lock:
                for i, c in zip(missing, fresh):
                    self.cache.setdefault(keys[i], []).append(c)
                    out[i] = c
        return [_with_top(c, top_logprobs) for c in out]


def _with_top(c: tokenlm.Choice, k: int) -> tokenlm.Choice:
    """A cached choice answered with ``k`` top log-probabilities (fewer if it was generated with fewer)."""
    return tokenlm.Choice(list(c.token_ids), list(c.logprobs), [t[:k] for t in c.top], c.finish_reason)


# ---------------------------------------------------------------------------------------- substitutes

def _finetune_texts() -> list[str]:
    return [inspect.getsource(importlib.import_module(name)) for name in variants.FINETUNE_MODULES]


def finetuned(base: tokenlm.TokenLM, steps: int = variants.FINETUNE_STEPS) -> tokenlm.TokenLM:
    """``base`` after ``steps`` AdamW steps (lr 1e-3, seed 1) on the source code of ``FINETUNE_MODULES``
    (cached, keyed by the base's weights hash, the steps and the text)."""
    texts = _finetune_texts()
    text = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    key = hashlib.sha256(f"{tokenlm.weights_hash(base)}|{steps}|{text}|{torch.__version__}".encode()).hexdigest()
    return tokenlm.cached(f"tokenlm-finetuned-{key[:16]}", lambda: tokenlm.finetune(base, texts, steps, seed=1),
                          base.config)


def make_variant(name: str, base: tokenlm.TokenLM | None = None, *, seed: int = 0, substitute: str = "small",
                 route_seed: int = 0, repeats: int = 1, probes=frozenset()) -> TokenServed:
    """The serving setup ``name`` (module docstring) around ``base`` (default: the base model of ``seed``)."""
    if base is None:
        base = tokenlm.load_or_train(seed, "base")
    base_seed = getattr(base, "seed", seed)
    if name == "fp32":
        return TokenServed(name, base)
    if name == "bf16":
        return TokenServed(name, base, dtype="bfloat16")
    if name == "threads-2":
        return TokenServed(name, base, threads=2)
    if name == "batch-8":
        return TokenServed(name, base, batch_size=8)
    if name == "small":
        return TokenServed(name, tokenlm.load_or_train(base_seed, "small"))
    if name == "seed-1":
        return TokenServed(name, tokenlm.load_or_train(base_seed + 1, "base"))
    if name == "finetune-10":
        return TokenServed(name, finetuned(base))
    if name == "int8":
        return TokenServed(name, variants.quantize_int8(base))
    if name == "4bit":
        return TokenServed(name, variants.quantize_4bit(base))
    if name == "temp-0.7":
        return TokenServed(name, base, temperature_scale=0.7)
    if name == "replay":
        return Replay(name, TokenServed("fp32", base))
    q = variants.parse_route(name)
    if q is not None or name == "evasive":
        if substitute not in BENIGN + SUBSTITUTIONS or substitute.startswith("route-") or substitute in BENIGN:
            raise ValueError(f"the substitute of {name} must be a plain substitution, not {substitute!r}")
        sub = make_variant(substitute, base, seed=seed)
        if q is not None:
            return Routed(name, TokenServed("fp32", base), sub, q, route_seed)
        return Evasive(name, TokenServed("fp32", base), sub, repeats, probes)
    raise ValueError(f"unknown variant {name!r}: one of {', '.join(names())} (route-<q> for any q in [0, 1])")
