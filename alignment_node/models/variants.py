"""Substitution modes of the devnet's provider model: what a provider might serve instead of the model it
registered, each wrapped in ``Served`` (the sampling API of ``lm``, bound to one model and serving policy).

``make_variant(name, base)`` with ``base`` a trained ``TinyLM`` (``lm.load_or_train``); ``VARIANTS`` lists the
names (``route-<q>`` takes any q in [0, 1]). ``Served`` methods: ``sample``, ``sample_batch`` (as ``lm``'s,
without the model argument), ``token_logprobs_batch`` and ``logprob`` (of the model that would serve a
non-probe call, at temperature 1), ``weights_hash()``; ``Routed`` and ``Evasive`` serve per call. Builders:
``quantize_int8``, ``quantize_4bit``, ``add_noise``, ``finetuned``; ``parse_route``. What each mode does:
docs/models.md; how detectable each is: bench/README.md.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import math
import random
import threading
import warnings

import torch
from torch import nn

from . import lm

__all__ = ["FINETUNE_MODULES", "VARIANTS", "Served", "Routed", "Evasive", "make_variant", "finetuned",
           "quantize_4bit", "quantize_int8", "add_noise", "parse_route"]

VARIANTS = ("honest", "int8", "4bit", "noise-0.1", "noise-1", "finetuned", "seed", "temp-0.7", "route-0.5",
            "evasive")
FINETUNE_MODULES = ("textwrap", "fnmatch", "shlex", "graphlib", "bisect", "heapq")
FINETUNE_STEPS = 10


class Served:
    """A model plus its serving policy (a temperature factor), with the ``lm`` sampling API."""

    def __init__(self, name: str, model: nn.Module, temperature_scale: float = 1.0):
        self.name = name
        self.model = model
        self.temperature_scale = temperature_scale

    def _pick(self, prompts: list[bytes]) -> Served:
        return self

    def sample_batch(self, prompts: list[bytes], max_tokens: int = lm.DEFAULT_MAX_TOKENS,
                     temperature: float = 1.0, seed: int | None = None) -> list[tuple[bytes, list[float]]]:
        who = self._pick(list(prompts))
        if who is not self:
            return who.sample_batch(prompts, max_tokens, temperature, seed)
        return lm.sample_batch(self.model, prompts, max_tokens, self._temperature(temperature), seed)

    def sample(self, prompt: bytes, max_tokens: int = lm.DEFAULT_MAX_TOKENS, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> tuple[bytes, list[float]]:
        who = self._pick([prompt])
        if who is not self:
            return who.sample(prompt, max_tokens, temperature, generator)
        return lm.sample(self.model, prompt, max_tokens, self._temperature(temperature), generator)

    def _temperature(self, temperature: float) -> float:
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError("temperature must be a finite number >= 0")
        return temperature * self.temperature_scale

    def scoring_model(self) -> nn.Module:
        return self.model

    def token_logprobs_batch(self, prompts: list[bytes], completions: list[bytes]) -> list[list[float]]:
        return lm.token_logprobs_batch(self.scoring_model(), prompts, completions)

    def logprob(self, prompt: bytes, completion: bytes) -> float:
        return lm.logprob(self.scoring_model(), prompt, completion)

    def weights_hash(self) -> str:
        return lm.weights_hash(self.scoring_model())

    def __repr__(self) -> str:
        return f"Served({self.name!r})"


class Routing:
    """The choice a routing provider makes per call: ``substitute`` with probability ``q`` (seeded), else
    ``base``; ``calls`` counts each. Shared by the byte and the token models' ``Routed``."""

    def _init_routing(self, base, substitute, q: float, route_seed: int) -> None:
        if not 0.0 <= q <= 1.0:
            raise ValueError("the routed fraction q must be in [0, 1]")
        self.base, self.substitute, self.q = base, substitute, q
        self._rng = random.Random(route_seed)
        self._lock = threading.Lock()
        self.calls = {"base": 0, "substitute": 0}

    def _route(self):
        with self._lock:
            sub = self._rng.random() < self.q
            self.calls["substitute" if sub else "base"] += 1
        return self.substitute if sub else self.base


class Routed(Routing, Served):
    """Each call goes to ``substitute`` with probability ``q``, else to ``base``."""

    def __init__(self, name: str, base: Served, substitute: Served, q: float, route_seed: int = 0):
        super().__init__(name, substitute.model)
        self._init_routing(base, substitute, q, route_seed)

    def _pick(self, prompts):
        return self._route()


class Evasive(Served):
    """The base on audit-like prompts (in ``probes``, or asked ``repeats`` times before), else the substitute.
    A batch goes to the base if any of its prompts looks like an audit's."""

    def __init__(self, name: str, base: Served, substitute: Served, repeats: int = 1,
                 probes: set[bytes] | frozenset[bytes] = frozenset()):
        if repeats < 1:
            raise ValueError("repeats must be >= 1")
        super().__init__(name, substitute.model)
        self.base, self.substitute, self.repeats, self.probes = base, substitute, repeats, frozenset(probes)
        self.seen: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self.calls = {"base": 0, "substitute": 0}

    def looks_like_audit(self, prompt: bytes) -> bool:
        return prompt in self.probes or self.seen.get(prompt, 0) >= self.repeats

    def _pick(self, prompts):
        with self._lock:
            audit = False
            for p in prompts:
                audit = audit or self.looks_like_audit(bytes(p))
                self.seen[bytes(p)] = self.seen.get(bytes(p), 0) + 1
            self.calls["base" if audit else "substitute"] += 1
        return self.base if audit else self.substitute


# ---------------------------------------------------------------------------------------- weight edits

def quantize_int8(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # torch 2.13 announces the move of quantization to torchao
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    return q.eval()


@torch.no_grad()
def quantize_4bit(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    for module in out.modules():
        if isinstance(module, nn.Linear):
            w = module.weight
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 7.0
            w.copy_(torch.clamp(torch.round(w / scale), -8, 7) * scale)
    return out.eval()


@torch.no_grad()
def add_noise(model: nn.Module, fraction: float, seed: int = 1) -> nn.Module:
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    for _, p in sorted(out.named_parameters()):
        if p.is_floating_point() and p.numel() > 1:
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * (fraction * float(p.std())))
    return out.eval()


def _finetune_docs() -> list[bytes]:
    return [inspect.getsource(importlib.import_module(name)).encode() for name in FINETUNE_MODULES]


def finetuned(base: lm.TinyLM, steps: int = FINETUNE_STEPS) -> lm.TinyLM:
    """``base`` after ``steps`` AdamW steps on the source code of ``FINETUNE_MODULES`` (cached)."""
    docs = _finetune_docs()
    config = lm.Config(batch=16)

    def build() -> lm.TinyLM:
        model = copy.deepcopy(base)
        with lm._one_thread():
            gen = torch.Generator().manual_seed(1)
            lm._fit(model, docs, steps, gen, lr=1e-3, warmup=0, config=config)
        return model.eval()

    text = hashlib.sha256(b"\0".join(docs)).hexdigest()
    key = hashlib.sha256(f"{lm.weights_hash(base)}|{steps}|{text}|{torch.__version__}".encode()).hexdigest()[:16]
    return lm.cached(f"tinylm-finetuned-{key}", build, base.config)


def parse_route(name: str) -> float | None:
    """q of a ``route-<q>`` name (None if the name is not one); ValueError if q is not in [0, 1]."""
    if not name.startswith("route-"):
        return None
    try:
        q = float(name[len("route-"):])
    except ValueError:
        raise ValueError(f"bad variant {name!r}: route-<q> with q a number in [0, 1]") from None
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"bad variant {name!r}: q must be in [0, 1]")
    return q


def make_variant(name: str, base: lm.TinyLM, *, substitute: str = "finetuned", route_seed: int = 0,
                 repeats: int = 1, probes: set[bytes] | frozenset[bytes] = frozenset()) -> Served:
    """The served model of substitution mode ``name`` built from ``base`` (docs/models.md)."""
    honest = Served("honest", base)
    if name == "honest":
        return honest
    if name == "int8":
        return Served(name, quantize_int8(base))
    if name == "4bit":
        return Served(name, quantize_4bit(base))
    if name in ("noise-0.1", "noise-1"):
        return Served(name, add_noise(base, 0.001 if name == "noise-0.1" else 0.01))
    if name == "finetuned":
        return Served(name, finetuned(base))
    if name == "seed":
        return Served(name, lm.load_or_train(getattr(base, "seed", 0) + 1, getattr(base, "steps", None)))
    if name == "temp-0.7":
        return Served(name, base, temperature_scale=0.7)
    q = parse_route(name)
    if q is not None or name == "evasive":
        if substitute in ("honest", "evasive") or substitute.startswith("route-"):
            raise ValueError(f"the substitute of {name} must be a plain variant, not {substitute!r}")
        sub = make_variant(substitute, base)
        if q is not None:
            return Routed(name, honest, sub, q, route_seed)
        return Evasive(name, honest, sub, repeats, probes)
    raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANTS)} (route-<q> for any q in [0, 1])")
