"""The devnet's generative model: a byte-level decoder-only transformer (``TinyLM``, about 0.9 M parameters),
trained deterministically on text every Python 3.11 has, cached on disk, sampled with per-token log-probabilities.

API: ``TinyLM``, ``Config``; ``load_or_train(seed=0, steps=None)`` (cached under ``cache_dir()``); ``train``;
``corpus()``, ``corpus_sha256()``; ``weights_hash(model)``; ``n_parameters``;
``sample(model, prompt, max_tokens=32, temperature=1.0, generator=None) -> (bytes, [logprob])``;
``sample_batch(model, prompts, max_tokens=32, temperature=1.0, seed=None) -> [(bytes, [logprob])]``;
``logprob(model, prompt, completion) -> float`` and ``logprob_batch``; ``token_logprobs`` and
``token_logprobs_batch`` (per byte). Prompts and completions are ``bytes``; log-probabilities are at
temperature 1 whatever the sampling temperature. ``python -m alignment_node.models.lm [--seed S] [--steps N]``
trains or loads a model and prints its hash and samples. Architecture, corpus, training, cache and sampling
(and what reproducible weights need): docs/models.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import inspect
import json
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BOS", "CTX", "STEPS", "Config", "TinyLM", "cache_dir", "corpus", "corpus_sha256", "load_or_train",
           "logprob", "logprob_batch", "sample", "sample_batch", "token_logprobs", "train", "weights_hash"]

BOS = 256
CTX = 128
STEPS = 1000
DEFAULT_MAX_TOKENS = 32

# Pure-Python modules with platform-independent docstrings (no C accelerator replaces their definitions).
CORPUS_MODULES = (
    "argparse", "textwrap", "collections", "functools", "pathlib", "string", "random", "statistics", "fractions",
    "heapq", "bisect", "calendar", "email.message", "http.client", "urllib.parse", "logging", "difflib", "shutil",
    "tempfile", "threading", "queue", "configparser", "zipfile", "tarfile", "subprocess", "inspect", "dataclasses",
    "enum", "contextlib", "copy", "pprint", "fnmatch", "glob", "optparse", "base64", "ipaddress", "smtplib",
    "ftplib", "imaplib", "socketserver", "json.decoder", "json.encoder", "gettext", "mailbox", "shlex", "cmd",
    "code", "pdb", "trace", "timeit", "wave", "sched", "graphlib", "tokenize",
)


@dataclass(frozen=True)
class Config:
    width: int = 128
    layers: int = 4
    heads: int = 4
    ctx: int = CTX
    batch: int = 16
    lr: float = 3e-3
    warmup: int = 50


# ---------------------------------------------------------------------------------------------- model

class _Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)

    def forward(self, x, mask, past):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)))), (k, v)


class TinyLM(nn.Module):
    """Byte-level decoder-only transformer. ``forward(tokens, positions, valid, cache)`` -> (byte logits, cache).

    ``tokens`` and ``positions`` are (B, T) int64; ``valid`` (B, T_past + T) bool marks real (not padding) keys;
    ``cache`` is the previous call's second result (or None). Logits are (B, T, 256) float32.
    """

    def __init__(self, config: Config = Config(), vocab_in: int = 257, vocab_out: int = 256):
        super().__init__()  # vocab: 256 bytes and the start token in, 256 bytes out (``tokenlm`` sets its own)
        self.config = config
        self.embed = nn.Embedding(vocab_in, config.width)
        self.pos = nn.Embedding(config.ctx, config.width)
        self.blocks = nn.ModuleList(_Block(config.width, config.heads) for _ in range(config.layers))
        self.ln = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, vocab_out, bias=False)
        for name, p in self.named_parameters():  # GPT-2 style: small normal weights, zero biases
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * config.layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens, positions=None, valid=None, cache=None):
        b, t = tokens.shape
        past = 0 if cache is None else cache[0][0].shape[2]
        if positions is None:
            positions = torch.arange(past, past + t).expand(b, t)
        if valid is None:
            valid = torch.ones(b, past + t, dtype=torch.bool)
        # query i (absolute index past + i) sees keys j <= past + i that are real, and always itself, so a
        # padding row never has an empty softmax (its garbage is masked out of every real row).
        j = torch.arange(past + t)
        i = torch.arange(past, past + t)[:, None]
        mask = ((j <= i) & valid[:, None, :]) | (j == i)
        mask = mask[:, None, :, :]
        x = self.embed(tokens) + self.pos(positions)
        new = []
        for n, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if cache is None else cache[n])
            new.append(kv)
        return self.head(self.ln(x)), new


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_hash(model: nn.Module) -> str:
    """SHA-256 hex of the state dict: for each entry in name order, its name, dtype, shape and raw bytes
    (quantized tensors: integer values, scales and zero points; tuples item by item; others by ``repr``)."""
    h = hashlib.sha256()

    def feed(name: str, value) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            if t.is_quantized:
                feed(name + ".int", t.int_repr())
                if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                    feed(name + ".scales", t.q_per_channel_scales())
                    feed(name + ".zero_points", t.q_per_channel_zero_points())
                else:
                    h.update(f"{name}|scale={t.q_scale()!r}|zp={t.q_zero_point()}\n".encode())
                return
            t = t.contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())
        elif isinstance(value, (tuple, list)):  # dynamic quantization's packed (weight, bias)
            for k, item in enumerate(value):
                feed(f"{name}.{k}", item)
        else:
            h.update(f"{name}|{value!r}\n".encode())

    for name, value in sorted(model.state_dict().items()):
        feed(name, value)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- corpus

def _module_docs(name: str) -> list[str]:
    """The docstrings of module ``name``, of the classes and functions it defines and of their classes'
    functions from the standard library: other packages add methods to standard-library classes (transformers
    adds ``logging.Logger.warning_once``), and the text must not depend on what else the process imported."""
    module = importlib.import_module(name)

    def own(obj) -> bool:
        return getattr(obj, "__module__", None) == name

    def stdlib(f) -> bool:
        return str(getattr(f, "__module__", "")).partition(".")[0] in sys.stdlib_module_names

    docs = [module.__doc__] if isinstance(module.__doc__, str) else []
    for _, obj in sorted(vars(module).items()):
        if not own(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if isinstance(obj.__doc__, str):
            docs.append(obj.__doc__)
        if inspect.isclass(obj):
            docs += [f.__doc__ for _, f in sorted(vars(obj).items())
                     if inspect.isfunction(f) and stdlib(f) and isinstance(f.__doc__, str)]
    return [inspect.cleandoc(d) for d in docs if d.strip()]


_CORPUS: list[bytes] | None = None


def corpus() -> list[bytes]:
    """The training documents (UTF-8 bytes of each docstring), in a fixed order."""
    global _CORPUS
    if _CORPUS is None:
        if sys.flags.optimize >= 2:
            raise RuntimeError("the training text is the standard library's docstrings: not available under -OO")
        _CORPUS = [d.encode() for name in CORPUS_MODULES for d in _module_docs(name)]
    return _CORPUS


def corpus_sha256() -> str:
    return hashlib.sha256(b"\n\n".join(corpus())).hexdigest()


def _stream(docs: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
    """All documents as one token stream (BOS before each) and the offsets of the BOS tokens."""
    parts, starts, at = [], [], 0
    for d in docs:
        starts.append(at)
        parts.append(np.frombuffer(bytes([0]) + d, dtype=np.uint8).astype(np.int64))
        parts[-1][0] = BOS
        at += len(d) + 1
    return torch.from_numpy(np.concatenate(parts)), torch.tensor(starts)


# ------------------------------------------------------------------------------------------- training

@contextlib.contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batches(stream, starts, config: Config, gen: torch.Generator) -> torch.Tensor:
    """``config.batch`` windows of ``ctx + 1`` tokens: the first half from document starts, the rest anywhere."""
    span = config.ctx + 1
    half = config.batch // 2
    doc = starts[torch.randint(0, len(starts), (half,), generator=gen)].clamp(max=len(stream) - span)
    free = torch.randint(0, len(stream) - span, (config.batch - half,), generator=gen)
    return torch.stack([stream[o:o + span] for o in torch.cat([doc, free]).tolist()])


def _fit(model: TinyLM, docs: list[bytes], steps: int, gen: torch.Generator, lr: float, warmup: int,
         log=None, config: Config | None = None) -> float:
    """``steps`` AdamW steps on ``docs``; lr warms up for ``warmup`` steps, then decays (cosine) to 10 %; with
    ``warmup`` 0 it stays constant. Returns the last batch's loss."""
    stream, starts = _stream(docs)
    config = config or model.config
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_value = float("nan")
    model.train()
    for step in range(steps):
        if warmup:
            scale = (step + 1) / warmup if step < warmup else \
                0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr * scale
        batch = _batches(stream, starts, config, gen)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1).clamp(max=255),
                               reduction="none")
        keep = (batch[:, 1:] != BOS).reshape(-1).float()  # BOS is never a target (not an output)
        loss = (loss * keep).sum() / keep.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"step {step} loss {loss_value:.3f}")
    model.eval()
    return loss_value


def train(seed: int = 0, steps: int | None = None, config: Config = Config(), log=None) -> TinyLM:
    """A freshly trained model (no cache): deterministic for given seed, steps, config, corpus and torch."""
    steps = STEPS if steps is None else steps
    if steps < 0:
        raise ValueError("steps must be >= 0")
    docs = corpus()
    with _one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyLM(config)
        gen = torch.Generator().manual_seed(seed)
        model.final_loss = _fit(model, docs, steps, gen, config.lr, config.warmup, log)
    model.seed, model.steps = seed, steps
    return model.eval()


def cache_dir() -> Path:
    """``$ALIGNMENT_MODEL_CACHE``, else ``<repo>/.cache/models``."""
    env = os.environ.get("ALIGNMENT_MODEL_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "models"


def _cache_key(kind: str, seed: int, steps: int, config: Config, extra: str = "") -> str:
    key = json.dumps({"kind": kind, "seed": seed, "steps": steps, "config": asdict(config),
                      "corpus": corpus_sha256(), "torch": torch.__version__.split("+")[0], "extra": extra},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def cached(name: str, build, config=Config(), make=None):
    """The model cached as ``<cache_dir>/<name>.pt``, else ``build()`` (under a file lock), saved, returned;
    ``make(config)`` is the empty model the cached weights load into (default ``TinyLM``)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    with open(directory / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            model = (make or TinyLM)(config)
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                return model.eval()
            except Exception:  # a corrupt or foreign file: rebuild it
                path.unlink()
        model = build()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: test workers may race
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
        return model


def load_or_train(seed: int = 0, steps: int | None = None) -> TinyLM:
    """The model trained with ``seed`` for ``steps`` (default ``STEPS``), from the cache or trained and cached."""
    steps = STEPS if steps is None else steps
    config = Config()
    key = _cache_key("tinylm", seed, steps, config)
    model = cached(f"tinylm-seed{seed}-steps{steps}-{key}", lambda: train(seed, steps, config), config)
    model.seed, model.steps = seed, steps
    return model


# ------------------------------------------------------------------------------------------- sampling

def left_pad(rows: list[list[int]], pad: int):
    """Left-padded batch of token rows (``pad`` fills the left): tokens, positions, valid."""
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, s in enumerate(rows):
        start = width - len(s)
        tokens[r, start:] = torch.tensor(s, dtype=torch.long)
        valid[r, start:] = True
        positions[r, start:] = torch.arange(len(s))
    return tokens, positions, valid


def _windows(seqs: list[list[int]], ctx: int):
    """Left-padded batch of each sequence's last ``ctx`` tokens: tokens, positions, valid."""
    return left_pad([s[-ctx:] for s in seqs], BOS)


def _check_prompt(prompt) -> bytes:
    if not isinstance(prompt, (bytes, bytearray)):
        raise TypeError(f"a prompt is bytes, not {type(prompt).__name__}")
    return bytes(prompt)


@torch.no_grad()
def _generate(model, prompts: list[bytes], max_tokens: int, temperature: float,
              gens: list[torch.Generator]) -> list[tuple[bytes, list[float]]]:
    if not isinstance(max_tokens, int) or max_tokens < 0:
        raise ValueError("max_tokens must be an integer >= 0")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError("temperature must be a finite number >= 0")
    prompts = [_check_prompt(p) for p in prompts]
    if not prompts:
        return []
    ctx = model.config.ctx if hasattr(model, "config") else CTX
    seqs = [[BOS, *p] for p in prompts]
    out = [bytearray() for _ in prompts]
    lps: list[list[float]] = [[] for _ in prompts]
    tokens, positions, valid = _windows(seqs, ctx)
    cache = None
    for _ in range(max_tokens):
        logits, cache = model(tokens, positions, valid, cache)
        logits = logits[:, -1, :].double()
        logp = torch.log_softmax(logits, dim=-1)
        if temperature == 0:
            picks = logits.argmax(dim=-1).tolist()
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            cdf = probs.cumsum(dim=-1)
            u = torch.stack([torch.rand((), dtype=torch.float64, generator=g) for g in gens]) * cdf[:, -1]
            picks = torch.searchsorted(cdf, u[:, None]).clamp(max=255)[:, 0].tolist()
        for r, tok in enumerate(picks):
            out[r].append(tok)
            lps[r].append(float(logp[r, tok]))
            seqs[r].append(tok)
        if valid.shape[1] + 1 <= ctx:  # still fits: feed the new tokens only, with the cache
            tokens = torch.tensor(picks, dtype=torch.long)[:, None]
            positions = positions[:, -1:] + 1
            valid = torch.cat([valid, torch.ones(len(picks), 1, dtype=torch.bool)], dim=1)
        else:
            tokens, positions, valid = _windows(seqs, ctx)
            cache = None
    return [(bytes(o), lp) for o, lp in zip(out, lps)]


def _random_generator() -> torch.Generator:
    return torch.Generator().manual_seed(secrets.randbits(63))


def sample(model, prompt: bytes, max_tokens: int = DEFAULT_MAX_TOKENS, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[bytes, list[float]]:
    """One completion of ``max_tokens`` bytes and the temperature-1 log-probability of each sampled byte.
    ``generator`` None: a fresh random one."""
    return _generate(model, [prompt], max_tokens, temperature, [generator or _random_generator()])[0]


def sample_batch(model, prompts: list[bytes], max_tokens: int = DEFAULT_MAX_TOKENS, temperature: float = 1.0,
                 seed: int | None = None) -> list[tuple[bytes, list[float]]]:
    """One completion per prompt, computed as one batch. Row ``i`` draws from a generator seeded with
    ``seed + i`` (``seed`` None: random), so it equals ``sample_batch(model, [prompts[i]], ..., seed + i)`` up to
    floating-point effects of the batch shape."""
    base = secrets.randbits(62) if seed is None else int(seed)
    gens = [torch.Generator().manual_seed((base + i) % (1 << 63)) for i in range(len(prompts))]
    return _generate(model, list(prompts), max_tokens, temperature, gens)


@torch.no_grad()
def token_logprobs_batch(model, prompts: list[bytes], completions: list[bytes]) -> list[list[float]]:
    """Temperature-1 log-probability of each completion byte after its prompt (same contexts as sampling)."""
    if len(prompts) != len(completions):
        raise ValueError("as many completions as prompts are needed")
    ctx = model.config.ctx if hasattr(model, "config") else CTX
    # One window per (pair, completion token) that needs its own (the context is longer than ctx), and one
    # window per pair for every token whose context fits: the prefix [BOS] + prompt + completion[:-1].
    rows, wants = [], []  # wants: (pair, token index, row, column)
    for n, (p, c) in enumerate(zip(prompts, completions)):
        seq = [BOS, *_check_prompt(p), *_check_prompt(c)]
        m = len(seq) - len(c)
        fit = [k for k in range(len(c)) if m + k <= ctx]
        if fit:
            rows.append(seq[:m + fit[-1]])
            wants += [(n, k, len(rows) - 1, m + k - 1) for k in fit]
        for k in range(len(fit), len(c)):
            rows.append(seq[m + k - ctx:m + k])
            wants.append((n, k, len(rows) - 1, ctx - 1))
    result = [[0.0] * len(c) for c in completions]
    if not rows:
        return result
    tokens, positions, valid = _windows(rows, ctx)
    parts = []
    for s in range(0, len(rows), 64):
        logits, _ = model(tokens[s:s + 64], positions[s:s + 64], valid[s:s + 64])
        parts.append(torch.log_softmax(logits.double(), dim=-1))
    logp = torch.cat(parts)
    width = tokens.shape[1]
    for n, k, r, col in wants:
        pad = width - len(rows[r])
        result[n][k] = float(logp[r, pad + col, completions[n][k]])
    return result


def token_logprobs(model, prompt: bytes, completion: bytes) -> list[float]:
    return token_logprobs_batch(model, [prompt], [completion])[0]


def logprob(model, prompt: bytes, completion: bytes) -> float:
    """Sum of the temperature-1 log-probabilities of ``completion``'s bytes after ``prompt``."""
    return math.fsum(token_logprobs(model, prompt, completion))


def logprob_batch(model, prompts: list[bytes], completions: list[bytes]) -> list[float]:
    return [math.fsum(x) for x in token_logprobs_batch(model, prompts, completions)]


def main(argv: list[str] | None = None) -> None:
    """``python -m alignment_node.models.lm [--seed S] [--steps N]``: train (or load) and print a summary."""
    import argparse
    p = argparse.ArgumentParser(prog="alignment_node.models.lm", description="Train or load the devnet's TinyLM.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t = time.monotonic()
    model = load_or_train(args.seed, args.steps)
    print(f"tinylm seed={args.seed} params={n_parameters(model)} weights={weights_hash(model)} "
          f"seconds={time.monotonic() - t:.1f} cache={cache_dir()}")
    for prompt in (b"Return the ", b"This module ", b"The "):
        text, _ = sample(model, prompt, 48, 1.0, torch.Generator().manual_seed(0))
        print(repr(prompt + text))


if __name__ == "__main__":
    main()
