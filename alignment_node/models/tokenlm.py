"""The devnet's token-level chat model: a byte-level BPE tokenizer (PyPI ``tokenizers``, 1024 tokens, trained on
``lm.corpus()``), a chat template that ends each message with ``<|end|>``, and a small decoder-only transformer
(``TokenLM``) trained deterministically on the corpus in chat form, cached on disk, served by
``devnet/llmserver.py`` as an OpenAI-compatible endpoint with vLLM-style top-k log-probabilities. The byte model
(``lm.py``) stays as it is; this one is what "a served LLM" looks like on the devnet (tokens, a chat template,
an end-of-turn token, top-k logprobs).

API:

- tokenizer: ``tokenizer()`` (a ``tokenizers.Tokenizer``, cached as JSON in ``lm.cache_dir()``),
  ``tokenizer_hash()``, ``encode(text) -> [id]`` (special-token strings in ``text`` become special tokens, as
  in vLLM/HF), ``decode(ids) -> str`` (special tokens dropped, invalid UTF-8 replaced), ``token_bytes(id)``,
  ``token_text(id)``; ``SPECIAL_TOKENS``, ``SYSTEM``/``USER``/``ASSISTANT``/``END`` (their ids, 0..3),
  ``STOP_IDS``;
- chat: ``chat_prompt(messages) -> str`` (``<|user|>hi<|end|><|assistant|>``), ``encode_chat(messages) ->
  [id]`` (the same ids, built piece by piece so message text is never parsed for special tokens);
- model: ``TokenLM``, ``Config``, ``SIZES`` (``base``, ``small``), ``load_or_train(seed=0, size="base",
  steps=None)``, ``train``, ``n_parameters``, ``weights_hash(model)``, ``finetune(model, docs, steps, seed)``;
- serving: ``generate(model, prompts, max_tokens, temperature, top_logprobs, seed, dtype, batch_size) ->
  [Choice]`` and ``score(model, prompts, completions, top_logprobs, dtype)`` (teacher-forced, the same
  numbers for given tokens); ``as_dtype(model, dtype)``.

Reproducibility: the tokenizer's merges are a function of the corpus text (BPE picks the most frequent pair,
ties broken by the pair itself, so the word-count threads do not matter); the weights are a function of the
seed, the size, the steps, the corpus (its hash is in the cache key), the tokenizer (its hash too) and torch's
CPU kernels: training runs in one thread, initial weights come from ``torch.manual_seed(seed)`` and batches from
a ``torch.Generator`` seeded with ``seed``, there is no dropout. ``python -m alignment_node.models.tokenlm
[--seed S] [--size base|small] [--steps N]`` trains or loads a model and prints its hash and a chat sample.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import math
import os
import secrets
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import lm

__all__ = ["ASSISTANT", "CTX", "Choice", "Config", "END", "SIZES", "SPECIAL_TOKENS", "STEPS", "STOP_IDS", "SYSTEM",
           "TokenLM", "USER", "VOCAB", "as_dtype", "chat_docs", "chat_prompt", "decode", "encode", "encode_chat",
           "finetune", "generate", "load_or_train", "n_parameters", "score", "token_bytes", "token_text", "tokenizer",
           "tokenizer_hash", "train", "weights_hash"]

SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
SYSTEM, USER, ASSISTANT, END = range(4)
ROLES = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
# Generation stops at any special token: <|end|> closes the assistant's turn; a role token would open the next
# message (the model never saw one follow an assistant's text without <|end|>, so this is rare).
STOP_IDS = frozenset(range(len(SPECIAL_TOKENS)))
VOCAB = 1024
CTX = 128
STEPS = {"base": 450, "small": 600}
SYSTEM_TEXT = "You answer with the documentation of Python's standard library."
TEMPLATE_VERSION = 1
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
TOP_LOGPROBS_MAX = 20


@dataclass(frozen=True)
class Config:
    vocab: int = VOCAB
    width: int = 128
    layers: int = 4
    heads: int = 4
    ctx: int = CTX
    batch: int = 16
    lr: float = 3e-3
    warmup: int = 50


SIZES = {"base": Config(), "small": Config(width=64, layers=2, heads=2)}


# ------------------------------------------------------------------------------------------ tokenizer

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable character table, the alphabet of the ByteLevel pre-tokenizer."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}
_TOKENIZER = None
_TOKEN_BYTES: list[bytes] | None = None


def _corpus_texts() -> list[str]:
    return [d.decode("utf-8") for d in lm.corpus()]


def _tokenizer_key() -> str:
    import tokenizers
    key = json.dumps({"vocab": VOCAB, "special": SPECIAL_TOKENS, "corpus": lm.corpus_sha256(),
                      "tokenizers": tokenizers.__version__}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus_texts(), trainer=trainer)
    return tok


def tokenizer():
    """The BPE tokenizer, from ``<cache_dir>/tokenlm-bpe<VOCAB>-<key>.json`` or trained (a few seconds) and
    cached; the key hashes the corpus, the vocabulary size, the special tokens and the tokenizers version."""
    global _TOKENIZER, _TOKEN_BYTES
    if _TOKENIZER is not None:
        return _TOKENIZER
    from tokenizers import Tokenizer
    directory = lm.cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"tokenlm-bpe{VOCAB}-{_tokenizer_key()}"
    path = directory / f"{name}.json"
    with open(directory / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tok = None
        if path.exists():
            try:
                tok = Tokenizer.from_file(str(path))
            except Exception:  # a corrupt file: rebuild it
                path.unlink()
        if tok is None:
            tok = _train_tokenizer()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: test workers may race
            tmp.write_text(tok.to_str())
            os.replace(tmp, path)
    if tok.get_vocab_size() != VOCAB or [tok.token_to_id(t) for t in SPECIAL_TOKENS] != [0, 1, 2, 3]:
        raise RuntimeError(f"the tokenizer at {path.name} does not have the expected vocabulary")
    table = []
    for i in range(VOCAB):
        piece = tok.id_to_token(i)
        table.append(piece.encode() if i < len(SPECIAL_TOKENS) else bytes(_UNICODE_TO_BYTE[c] for c in piece))
    _TOKENIZER, _TOKEN_BYTES = tok, table
    return tok


def tokenizer_hash() -> str:
    """SHA-256 hex of the tokenizer's canonical JSON."""
    return hashlib.sha256(tokenizer().to_str().encode()).hexdigest()


def encode(text: str) -> list[int]:
    """Token ids of ``text``; the special-token strings in it become special tokens (as vLLM does for a raw
    completion prompt)."""
    if not isinstance(text, str):
        raise TypeError(f"text is a str, not {type(text).__name__}")
    return tokenizer().encode(text, add_special_tokens=False).ids


def _encode_plain(text: str) -> list[int]:
    """Token ids of ``text`` with special-token strings taken as plain text."""
    tok = tokenizer()
    tok.encode_special_tokens = True
    try:
        return tok.encode(text, add_special_tokens=False).ids
    finally:
        tok.encode_special_tokens = False


def token_bytes(token_id: int) -> bytes:
    """The bytes a token stands for (a special token: its UTF-8 name)."""
    tokenizer()
    return _TOKEN_BYTES[token_id]


def token_text(token_id: int) -> str:
    """A token as text: its bytes decoded as UTF-8, a byte that is not valid on its own becoming U+FFFD (as vLLM
    shows a token that splits a character)."""
    return token_bytes(token_id).decode("utf-8", errors="replace")


def decode(ids: list[int]) -> str:
    """The text of ``ids``, special tokens left out; bytes that are not valid UTF-8 become U+FFFD."""
    tokenizer()
    return b"".join(_TOKEN_BYTES[i] for i in ids if i not in STOP_IDS).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------------ chat

def _check_messages(messages) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError("each message needs a role (system, user or assistant) and a string content")
        out.append((m["role"], m["content"]))
    return out


def chat_prompt(messages: list[dict]) -> str:
    """The chat template: ``<|role|>content<|end|>`` per message, then ``<|assistant|>`` (the generation prompt).
    The model answers and ends its turn with ``<|end|>``."""
    return "".join(f"<|{role}|>{content}<|end|>" for role, content in _check_messages(messages)) + "<|assistant|>"


def encode_chat(messages: list[dict]) -> list[int]:
    """Token ids of ``chat_prompt(messages)``, built per message, so a message that contains ``<|end|>`` as
    text cannot close its turn (equal to ``encode(chat_prompt(messages))`` when none does)."""
    ids: list[int] = []
    for role, content in _check_messages(messages):
        ids += [ROLES[role], *_encode_plain(content), END]
    return ids + [ASSISTANT]


def chat_docs() -> list[list[dict]]:
    """The corpus as conversations: a docstring's first paragraph (else its first line) is the user's message
    and the rest the assistant's answer; a one-line docstring is an assistant's message alone; every fourth
    conversation starts with a system message."""
    out = []
    for n, text in enumerate(_corpus_texts()):
        head, sep, rest = text.partition("\n\n")
        if not sep:
            head, sep, rest = text.partition("\n")
        conv = [{"role": "system", "content": SYSTEM_TEXT}] if n % 4 == 0 else []
        if sep and rest.strip():
            conv += [{"role": "user", "content": head}, {"role": "assistant", "content": rest}]
        else:
            conv += [{"role": "assistant", "content": text}]
        out.append(conv)
    return out


def _chat_ids(conv: list[dict]) -> list[int]:
    ids: list[int] = []
    for m in conv:
        ids += [ROLES[m["role"]], *_encode_plain(m["content"]), END]
    return ids


# ----------------------------------------------------------------------------------------------- model

class TokenLM(lm.TinyLM):
    """Decoder-only transformer over the BPE tokens: ``lm.TinyLM`` (pre-norm blocks, learned positions, untied
    output layer, the same ``forward(tokens, positions, valid, cache)`` -> (logits (B, T, vocab), cache)) with the
    tokenizer's vocabulary in and out."""

    def __init__(self, config: Config = Config()):
        super().__init__(config, config.vocab, config.vocab)


n_parameters = lm.n_parameters


def weights_hash(model: nn.Module) -> str:
    """SHA-256 hex of the state dict (``lm.weights_hash``: names, dtypes, shapes, raw bytes, in name order)."""
    return lm.weights_hash(model)


def _stream(convs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    starts, at = [], 0
    for ids in convs:
        starts.append(at)
        at += len(ids)
    return torch.tensor([t for ids in convs for t in ids], dtype=torch.long), torch.tensor(starts)


def _fit(model: TokenLM, convs: list[list[int]], steps: int, gen: torch.Generator, lr: float, warmup: int,
         log=None) -> float:
    """``steps`` AdamW steps on windows of the token stream (``lm._fit``'s schedule and batches)."""
    config = model.config
    stream, starts = _stream(convs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_value = float("nan")
    model.train()
    for step in range(steps):
        if warmup:
            scale = (step + 1) / warmup if step < warmup else \
                0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr * scale
        batch = lm._batches(stream, starts, config, gen)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"step {step} loss {loss_value:.3f}")
    model.eval()
    return loss_value


def train(seed: int = 0, size: str = "base", steps: int | None = None, log=None) -> TokenLM:
    """A freshly trained model (no cache), deterministic for given seed, size, steps, corpus, tokenizer, torch."""
    config = _config(size)
    steps = STEPS[size] if steps is None else steps
    if steps < 0:
        raise ValueError("steps must be >= 0")
    convs = [_chat_ids(c) for c in chat_docs()]
    with lm._one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TokenLM(config)
        gen = torch.Generator().manual_seed(seed)
        model.final_loss = _fit(model, convs, steps, gen, config.lr, config.warmup, log)
    model.seed, model.size, model.steps = seed, size, steps
    return model.eval()


def finetune(model: TokenLM, texts: list[str], steps: int, seed: int = 1, lr: float = 1e-3) -> TokenLM:
    """A copy of ``model`` after ``steps`` AdamW steps (constant ``lr``) on ``texts`` (plain text, no template)."""
    out = copy.deepcopy(model)
    with lm._one_thread(), torch.random.fork_rng(devices=[]):
        gen = torch.Generator().manual_seed(seed)
        _fit(out, [_encode_plain(t) for t in texts], steps, gen, lr, 0)
    return out.eval()


def _config(size: str) -> Config:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: one of {', '.join(SIZES)}")
    return SIZES[size]


def _cache_key(kind: str, seed: int, steps: int, config: Config, extra: str = "") -> str:
    key = json.dumps({"kind": kind, "seed": seed, "steps": steps, "config": asdict(config),
                      "corpus": lm.corpus_sha256(), "tokenizer": tokenizer_hash(), "template": TEMPLATE_VERSION,
                      "torch": torch.__version__.split("+")[0], "extra": extra}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def cached(name: str, build, config: Config) -> TokenLM:
    """The model cached as ``<cache_dir>/<name>.pt``, else ``build()`` (under a file lock): ``lm.cached``."""
    return lm.cached(name, build, config, make=TokenLM)


def cache_path(seed: int = 0, size: str = "base", steps: int | None = None):
    """Where ``load_or_train`` keeps this model (it may not exist yet)."""
    steps = STEPS[size] if steps is None else steps
    return lm.cache_dir() / f"{_name(seed, size, steps)}.pt"


def _name(seed: int, size: str, steps: int) -> str:
    return f"tokenlm-{size}-seed{seed}-steps{steps}-{_cache_key('tokenlm', seed, steps, _config(size))}"


def load_or_train(seed: int = 0, size: str = "base", steps: int | None = None) -> TokenLM:
    """The model of ``size`` trained with ``seed`` for ``steps`` (default ``STEPS[size]``), from the cache or
    trained (about 2 minutes on one core for the base) and cached."""
    config = _config(size)
    steps = STEPS[size] if steps is None else steps
    model = cached(_name(seed, size, steps), lambda: train(seed, size, steps), config)
    model.seed, model.size, model.steps = seed, size, steps
    return model


def as_dtype(model: nn.Module, dtype: str) -> nn.Module:
    """``model`` with weights (hence compute) in ``dtype`` (``float32`` or ``bfloat16``): the model itself if it
    already is, else a converted copy (kept on the model, made once)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    want = DTYPES[dtype]
    current = next((p.dtype for p in model.parameters()), torch.float32)
    if current == want or any(p.dtype not in DTYPES.values() for p in model.parameters()):
        return model  # already there, or quantized (its float parts stay float32)
    copies = model.__dict__.setdefault("_dtype_copies", {})
    if dtype not in copies:
        copies[dtype] = copy.deepcopy(model).to(want).eval()
        copies[dtype].__dict__.pop("_dtype_copies", None)
    return copies[dtype]


# -------------------------------------------------------------------------------------------- serving

@dataclass
class Choice:
    """One generated completion: ``token_ids`` (the stop token included when it ended the completion, as vLLM
    counts it), ``logprobs`` (per token, the model's temperature-1 log-probability of the chosen token),
    ``top`` (per token, the ``top_logprobs`` most likely (token id, logprob), most likely first) and
    ``finish_reason`` (``stop`` or ``length``)."""
    token_ids: list[int]
    logprobs: list[float]
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    finish_reason: str = "length"


def _check(prompts, max_tokens: int, temperature: float, top_logprobs: int, ctx: int) -> list[list[int]]:
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise ValueError("max_tokens must be an integer >= 0")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError("temperature must be a finite number >= 0")
    if not isinstance(top_logprobs, int) or not 0 <= top_logprobs <= TOP_LOGPROBS_MAX:
        raise ValueError(f"top_logprobs must be an integer in [0, {TOP_LOGPROBS_MAX}]")
    out = []
    for p in prompts:
        p = list(p)
        if not p or not all(isinstance(t, int) and 0 <= t < VOCAB for t in p):
            raise ValueError(f"a prompt is a non-empty list of token ids in [0, {VOCAB})")
        if len(p) + max_tokens > ctx:
            raise ValueError(f"the context is {ctx} tokens: prompt ({len(p)}) + max_tokens ({max_tokens}) exceeds it")
        out.append(p)
    return out


def _left_pad(rows: list[list[int]]):
    return lm.left_pad(rows, END)


def _topk(logp: torch.Tensor, k: int) -> list[list[tuple[int, float]]]:
    if k == 0:
        return [[] for _ in range(logp.shape[0])]
    values, ids = torch.topk(logp, k, dim=-1)
    return [list(zip(i, v)) for i, v in zip(ids.tolist(), values.tolist())]


@torch.no_grad()
def _run(model, rows: list[list[int]], gens: list[torch.Generator | None], max_tokens: int, temperature: float,
         top_logprobs: int) -> list[Choice]:
    """One left-padded batch, decoded with a key/value cache; ``gens[i]`` draws row i (None: greedy)."""
    choices = [Choice([], [], [], "length") for _ in rows]
    done = [max_tokens == 0] * len(rows)
    tokens, positions, valid = _left_pad(rows)
    cache = None
    for _ in range(max_tokens):
        logits, cache = model(tokens, positions, valid, cache)
        logits = logits[:, -1, :].double()
        logp = torch.log_softmax(logits, dim=-1)
        if temperature == 0:
            picks = logits.argmax(dim=-1).tolist()
        else:
            cdf = torch.softmax(logits / temperature, dim=-1).cumsum(dim=-1)
            u = torch.stack([torch.rand((), dtype=torch.float64, generator=g) for g in gens]) * cdf[:, -1]
            picks = torch.searchsorted(cdf, u[:, None]).clamp(max=logits.shape[1] - 1)[:, 0].tolist()
        tops = _topk(logp, top_logprobs)
        for r, tok in enumerate(picks):
            if done[r]:
                continue
            c = choices[r]
            c.token_ids.append(tok)
            c.logprobs.append(float(logp[r, tok]))
            c.top.append(tops[r])
            if tok in STOP_IDS:
                c.finish_reason, done[r] = "stop", True
        if all(done):
            break
        tokens = torch.tensor(picks, dtype=torch.long)[:, None]
        positions = positions[:, -1:] + 1
        valid = torch.cat([valid, torch.ones(len(picks), 1, dtype=torch.bool)], dim=1)
    return choices


def generators(n: int, seed: int | None) -> list[torch.Generator]:
    """Row ``i``'s generator is seeded with ``seed + i`` (``seed`` None: a random base)."""
    base = secrets.randbits(62) if seed is None else int(seed) % (1 << 62)
    return [torch.Generator().manual_seed((base + i) % (1 << 63)) for i in range(n)]


def generate(model, prompts: list[list[int]], max_tokens: int = 16, temperature: float = 1.0,
             top_logprobs: int = 0, seed: int | None = None, dtype: str = "float32",
             batch_size: int | None = None) -> list[Choice]:
    """One completion per prompt (token ids), until a stop token (``finish_reason`` ``stop``, the stop token
    being the last of ``token_ids``) or ``max_tokens`` (``length``).

    Row ``i`` draws from a generator seeded with ``seed + i`` by inverse CDF of ``softmax(logits /
    temperature)`` (0: greedy); rows are computed in left-padded batches of ``batch_size`` (None: all at once),
    so a row gives the same tokens whatever the batch, up to floating-point effects of its shape. ``dtype``
    ``bfloat16`` runs a bfloat16 copy of the weights (``as_dtype``). Log-probabilities, like vLLM's, are those
    of the model's own distribution at temperature 1 (``log_softmax(logits)``, in float64, from the logits of
    ``dtype``) whatever the sampling temperature: each position has the chosen token's and, with
    ``top_logprobs`` = k (0..20), the k most likely tokens' (most likely first). A prompt plus ``max_tokens``
    must fit the context (``CTX`` tokens)."""
    m = as_dtype(model, dtype)
    ctx = m.config.ctx if hasattr(m, "config") else CTX
    rows = _check(prompts, max_tokens, temperature, top_logprobs, ctx)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError("batch_size must be an integer >= 1 or None")
    gens = generators(len(rows), seed)
    step = batch_size or max(1, len(rows))
    out: list[Choice] = []
    for s in range(0, len(rows), step):
        out += _run(m, rows[s:s + step], gens[s:s + step], max_tokens, temperature, top_logprobs)
    return out


@torch.no_grad()
def score(model, prompts: list[list[int]], completions: list[list[int]], top_logprobs: int = 0,
          dtype: str = "float32") -> list[Choice]:
    """Teacher-forced: for each (prompt, completion) pair, the temperature-1 log-probability of each completion
    token after its prompt and the previous tokens, and the ``top_logprobs`` most likely tokens at each position
    (one plain forward pass, no cache): the numbers ``generate`` reports for the same tokens, up to rounding."""
    if len(prompts) != len(completions):
        raise ValueError("as many completions as prompts are needed")
    m = as_dtype(model, dtype)
    ctx = m.config.ctx if hasattr(m, "config") else CTX
    rows = _check([list(p) + list(c) for p, c in zip(prompts, completions)], 0, 0.0, top_logprobs, ctx)
    if not rows:
        return []
    tokens, positions, valid = _left_pad(rows)
    out = []
    for s in range(0, len(rows), 32):
        logits, _ = m(tokens[s:s + 32], positions[s:s + 32], valid[s:s + 32])
        logp = torch.log_softmax(logits.double(), dim=-1)
        for r in range(logp.shape[0]):
            p, c = prompts[s + r], list(completions[s + r])
            pad = tokens.shape[1] - len(rows[s + r])
            cols = [pad + len(p) - 1 + k for k in range(len(c))]
            lp = logp[r, cols] if cols else logp[r, :0]
            done = bool(c) and c[-1] in STOP_IDS
            out.append(Choice(c, [float(lp[k, t]) for k, t in enumerate(c)], _topk(lp, top_logprobs) if cols
                              else [], "stop" if done else "length"))
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse
    p = argparse.ArgumentParser(prog="alignment_node.models.tokenlm", description="Train or load a TokenLM.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=tuple(SIZES), default="base")
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t = time.monotonic()
    model = load_or_train(args.seed, args.size, args.steps)
    print(f"tokenlm size={args.size} seed={args.seed} params={n_parameters(model)} weights={weights_hash(model)} "
          f"tokenizer={tokenizer_hash()[:16]} seconds={time.monotonic() - t:.1f} "
          f"loss={getattr(model, 'final_loss', '-')}")
    for question in ("Return the number of items.", "Open a file."):
        ids = encode_chat([{"role": "user", "content": question}])
        c = generate(model, [ids], 48, 1.0, seed=0)[0]
        print(repr(question), "->", repr(decode(c.token_ids)), c.finish_reason)


if __name__ == "__main__":
    main()
