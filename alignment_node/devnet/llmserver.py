"""A devnet MODEL target that behaves like a served LLM: an OpenAI-compatible HTTP server (vLLM's answer shapes)
for the token-level chat model (``models.tokenlm``) in one serving setup of ``models.tokenvariants``, plus the
sentence-embedding model (``models.embed``). One process per target.

    python -m alignment_node.devnet.llmserver --port P [--host H] --mode MODE [--seed S] [--threads N]
        [--repeats R] [--probes FILE] [--no-embeddings]

Endpoints (JSON; request bodies up to 1 MiB, else 413; unknown fields are ignored, as vLLM does):

- ``GET /v1/models``: ``alignment-tinychat`` (chat and completions, ``max_model_len`` 128) and
  ``all-MiniLM-L6-v2`` (embeddings), whatever the mode;
- ``POST /v1/chat/completions``: ``messages`` (roles ``system``, ``user``, ``assistant``; content a string or a
  list of ``{type: text, text}`` parts) rendered by ``tokenlm.encode_chat`` (``<|user|>...<|end|><|assistant|>``);
  ``max_tokens`` or ``max_completion_tokens`` (default: the rest of the context), ``temperature`` (0..2,
  default 1; 0 is greedy), ``n`` (1..128), ``seed`` (choice i is drawn with seed + i: the same request gives the
  same answer), ``logprobs`` (bool) and ``top_logprobs`` (0..20, needs ``logprobs: true``) ->
  ``choices[i].logprobs.content = [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]``;
- ``POST /v1/completions``: ``prompt`` (a string, a list of up to 64 strings, a list of token ids or a list of
  such lists; special-token strings in a string become special tokens), ``max_tokens`` (default 16),
  ``temperature``, ``n``, ``seed`` as above (prompts x n <= 512), ``logprobs`` (null or 0..20) ->
  ``choices[i].logprobs = {tokens, token_logprobs, top_logprobs: [{token: logprob}] (null when 0),
  text_offset}``; ``echo`` and ``stream`` are refused;
- ``POST /v1/embeddings``: as ``devnet/modelserver.py`` (``input``, ``encoding_format``).

Answers, field by field as OpenAI's and vLLM's: ``id`` (``chatcmpl-...`` / ``cmpl-...``), ``object``,
``created``, ``model``, ``choices`` (``index``; ``message: {role, content, refusal: null}`` or ``text``;
``logprobs``; ``finish_reason``: ``stop`` when the model ended its turn with ``<|end|>``, ``length`` at
``max_tokens``), ``usage`` (``prompt_tokens`` once per prompt, ``completion_tokens`` counting the stop token as
vLLM does, ``total_tokens``), ``system_fingerprint`` (null). The text leaves the stop token out; the
log-probabilities keep it as their last entry (its token ``<|end|>``), as vLLM does. A token is its bytes
decoded as UTF-8 (a partial character becomes U+FFFD), ``bytes`` its raw bytes; ``top_logprobs`` are the k
most likely tokens, most likely first; a log-probability is clamped at -9999.0 like vLLM's. Log-probabilities
are those of the served model's own distribution at temperature 1, whatever the sampling temperature. A prompt
plus ``max_tokens`` longer than the context is a 400 with vLLM's message. Errors are OpenAI-style ``{"error":
{"message", "type", "param", "code"}}`` with 400 (the bad field in ``param``), 404, 405, 411 or 413.

Modes (``--mode``): every name of ``tokenvariants.names()`` (benign: ``fp32``, ``bf16``, ``threads-2``,
``batch-8``; substitutions: ``small``, ``seed-1``, ``finetune-10``, ``int8``, ``4bit``, ``temp-0.7``,
``route-<q>``; ``evasive`` (honest on prompts it takes for an audit's: in ``--probes``, asked ``--repeats``
times before, or shaped like a logprob fingerprint, else ``small``), ``replay`` (a cached answer for a prompt
it saw before)), and ``garbage`` (a 200 of cut-off JSON with invalid UTF-8 on every /v1/ route; no model
loaded). The process loads its models from the cache of ``models.tokenlm`` (training first if it is empty),
prints a ready line starting with ``llmserver`` and serves one thread per connection; model calls are
serialized. Python API: ``with LLMServerProcess("bf16") as server: server.url``.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from http.server import ThreadingHTTPServer

from .modelserver import (EMBED_ID, BadRequest, OpenAIHandler, _error, _int, _number, embeddings_answer,
                          load_probes)
from .processes import ServerProcess, serve

__all__ = ["BAD_MODES", "LLM_ID", "LLMServerProcess", "LLMService", "MAX_REQUEST_BYTES", "is_mode", "modes"]

LLM_ID = "alignment-tinychat"
BAD_MODES = ("garbage",)
MAX_REQUEST_BYTES = 1 << 20
DEFAULT_COMPLETION_TOKENS = 16
MAX_PROMPTS = 64
MAX_N = 128
MAX_CHOICES = 512
MAX_CHARS = 8192
MAX_MESSAGES = 64
LOGPROB_FLOOR = -9999.0
GARBAGE = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"content":"\xff\xfe\xfa'


def modes() -> tuple[str, ...]:
    from ..models.tokenvariants import names
    return (*names(), *BAD_MODES)


def is_mode(mode: str) -> bool:
    if mode in modes():
        return True
    from ..models.variants import parse_route
    try:
        return parse_route(mode) is not None
    except ValueError:
        return False


def _strings(value, name: str, most: int) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise BadRequest(f"{name} must be a string or a non-empty list of strings", name)
    if len(items) > most:
        raise BadRequest(f"at most {most} items in {name}", name)
    if any(len(s) > MAX_CHARS for s in items):
        raise BadRequest(f"each {name} is at most {MAX_CHARS} characters", name)
    return items


class LLMService:
    """The models of one mode and the answers of the three POST endpoints (dicts; raise BadRequest)."""

    def __init__(self, mode: str = "fp32", *, seed: int = 0, repeats: int = 1, probes: list = (),
                 embeddings: bool = True):
        if not is_mode(mode) or mode in BAD_MODES:
            raise ValueError(f"not a serving mode: {mode!r}")
        from ..models import tokenlm, tokenvariants
        self.tok = tokenlm
        self.mode = mode
        base = tokenlm.load_or_train(seed, "base")
        self.ctx = base.config.ctx
        probe_ids = [tokenlm.encode(p) if isinstance(p, str) else tokenlm.encode_chat(p) for p in probes]
        self.served = tokenvariants.make_variant(mode, base, seed=seed, repeats=repeats, probes=probe_ids)
        self.embedder = None
        if embeddings:
            from ..models import embed
            self.embedder = embed.Embedder("honest")
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ helpers

    def _common(self, body: dict, tokens_field: str, default_tokens: int | None, prompts: list[list[int]]):
        longest = max(len(p) for p in prompts)
        if longest >= self.ctx:
            raise BadRequest(f"This model's maximum context length is {self.ctx} tokens. However, your prompt "
                             f"has {longest} tokens. Please reduce the length of the prompt.", "prompt")
        room = self.ctx - longest
        max_tokens = _int(body, tokens_field, min(default_tokens or room, room), 1, 1 << 31)
        if longest + max_tokens > self.ctx:
            raise BadRequest(f"This model's maximum context length is {self.ctx} tokens. However, you requested "
                             f"{longest + max_tokens} tokens ({longest} in the prompt, {max_tokens} in the "
                             f"completion). Please reduce the length of the prompt or completion.", tokens_field)
        temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
        n = _int(body, "n", 1, 1, MAX_N)
        seed = _int(body, "seed", None, -(1 << 63), (1 << 64) - 1)
        if body.get("stream"):
            raise BadRequest("stream is not supported", "stream")
        if len(prompts) * n > MAX_CHOICES:
            raise BadRequest(f"at most {MAX_CHOICES} choices (prompts x n)", "n")
        return max_tokens, temperature, n, seed

    def _generate(self, prompts, n, max_tokens, temperature, top, seed):
        rows = [p for p in prompts for _ in range(n)]
        with self._lock:
            return self.served.generate(rows, max_tokens, temperature, top, seed)

    @staticmethod
    def _usage(prompts: list[list[int]], choices) -> dict:
        prompt_tokens = sum(len(p) for p in prompts)
        completion_tokens = sum(len(c.token_ids) for c in choices)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def _entry(self, token_id: int, logprob: float) -> dict:
        return {"token": self.tok.token_text(token_id), "logprob": max(logprob, LOGPROB_FLOOR),
                "bytes": list(self.tok.token_bytes(token_id))}

    # ------------------------------------------------------------------------------------------- chat

    def _messages(self, body: dict) -> list[int]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
            raise BadRequest(f"messages must be a list of 1 to {MAX_MESSAGES} messages", "messages")
        plain = []
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                raise BadRequest("each message needs a role (system, user or assistant) and a content", "messages")
            content = m.get("content")
            if isinstance(content, list):
                if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                           for p in content):
                    raise BadRequest("content parts must be {type: text, text: string}", "messages")
                content = "".join(p["text"] for p in content)
            if not isinstance(content, str):
                raise BadRequest("each message needs a role (system, user or assistant) and a content", "messages")
            plain.append({"role": m["role"], "content": content})
        if sum(len(m["content"]) for m in plain) > MAX_CHARS:
            raise BadRequest(f"the conversation is at most {MAX_CHARS} characters", "messages")
        return self.tok.encode_chat(plain)

    def chat(self, body: dict) -> dict:
        prompt = self._messages(body)
        field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens, temperature, n, seed = self._common(body, field, None, [prompt])
        want = body.get("logprobs")
        if want is not None and not isinstance(want, bool):
            raise BadRequest("logprobs must be a boolean", "logprobs")
        top = _int(body, "top_logprobs", None, 0, 20)
        if top is not None and not want:
            raise BadRequest("top_logprobs needs logprobs set to true", "top_logprobs")
        done = self._generate([prompt], n, max_tokens, temperature, top or 0, seed)
        choices = []
        for i, c in enumerate(done):
            choice = {"index": i, "message": {"role": "assistant", "content": self.tok.decode(c.token_ids),
                                              "refusal": None},
                      "logprobs": None, "finish_reason": c.finish_reason}
            if want:
                choice["logprobs"] = {"content": [
                    {**self._entry(t, lp), "top_logprobs": [self._entry(a, b) for a, b in tops]}
                    for t, lp, tops in zip(c.token_ids, c.logprobs, c.top)], "refusal": None}
            choices.append(choice)
        return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
                "model": LLM_ID, "choices": choices, "usage": self._usage([prompt], done),
                "system_fingerprint": None}

    # ------------------------------------------------------------------------------------ completions

    def _prompts(self, value) -> list[list[int]]:
        vocab = self.tok.VOCAB

        def ids(x) -> bool:
            return isinstance(x, list) and bool(x) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           and 0 <= t < vocab for t in x)
        if isinstance(value, list) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            if not ids(value):
                raise BadRequest(f"token ids must be in [0, {vocab})", "prompt")
            return [value]
        if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
            if len(value) > MAX_PROMPTS or not all(ids(x) for x in value):
                raise BadRequest(f"prompt must be 1 to {MAX_PROMPTS} non-empty lists of token ids in [0, {vocab})",
                                 "prompt")
            return value
        out = [self.tok.encode(s) for s in _strings(value, "prompt", MAX_PROMPTS)]
        if not all(out):
            raise BadRequest("a prompt must have at least one token", "prompt")
        return out

    def completions(self, body: dict) -> dict:
        prompts = self._prompts(body.get("prompt"))
        max_tokens, temperature, n, seed = self._common(body, "max_tokens", DEFAULT_COMPLETION_TOKENS, prompts)
        k = _int(body, "logprobs", None, 0, 20)
        if body.get("echo"):
            raise BadRequest("echo is not supported", "echo")
        done = self._generate(prompts, n, max_tokens, temperature, k or 0, seed)
        choices = []
        for i, c in enumerate(done):
            text = self.tok.decode(c.token_ids)
            choice = {"index": i, "text": text, "logprobs": None, "finish_reason": c.finish_reason}
            if k is not None:
                choice["logprobs"] = {
                    "tokens": [self.tok.token_text(t) for t in c.token_ids],
                    "token_logprobs": [max(lp, LOGPROB_FLOOR) for lp in c.logprobs],
                    "top_logprobs": None if k == 0 else [
                        {self.tok.token_text(a): max(b, LOGPROB_FLOOR) for a, b in tops} for tops in c.top],
                    "text_offset": [len(self.tok.decode(c.token_ids[:j])) for j in range(len(c.token_ids))]}
            choices.append(choice)
        return {"id": "cmpl-" + secrets.token_hex(12), "object": "text_completion", "created": int(time.time()),
                "model": LLM_ID, "choices": choices, "usage": self._usage(prompts, done), "system_fingerprint": None}

    # ------------------------------------------------------------------------------------- embeddings

    def embeddings(self, body: dict) -> dict:
        return embeddings_answer(self.embedder, body)


def models_answer(ctx: int) -> dict:
    return {"object": "list", "data": [
        {"id": LLM_ID, "object": "model", "created": 0, "owned_by": "devnet", "max_model_len": ctx},
        {"id": EMBED_ID, "object": "model", "created": 0, "owned_by": "devnet"}]}


# -------------------------------------------------------------------------------------------------- HTTP

class _Handler(OpenAIHandler):
    server_version = "llmserver"

    def _bad(self, path: str) -> bool:
        if self.server.mode != "garbage":
            return False
        self._send(200, GARBAGE)
        return True

    def _models(self) -> dict:
        return models_answer(self.server.service.ctx if self.server.service else 128)

    def _unknown_model(self, model, handler: str) -> str | None:
        served = EMBED_ID if handler == "embeddings" else LLM_ID
        return None if model is None or model == served else f"The model `{model}` does not exist."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, mode: str, service: LLMService | None):
        super().__init__(address, _Handler)
        self.mode = mode
        self.service = service


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="llmserver", description="An OpenAI-compatible devnet LLM server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", default="fp32", help="a serving setup of models.tokenvariants (fp32, bf16, threads-2, "
                   "batch-8, small, seed-1, finetune-10, int8, 4bit, temp-0.7, route-<q>, evasive, replay) or "
                   "garbage")
    p.add_argument("--seed", type=int, default=0, help="the base model's training seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; threads-2 uses 2)")
    p.add_argument("--repeats", type=int, default=1, help="evasive: a prompt asked this many times before is "
                   "treated as an audit's")
    p.add_argument("--probes", help="evasive: a JSON file with a list of prompts to serve honestly (strings, "
                   "tokenized as raw prompts, or lists of chat messages)")
    p.add_argument("--no-embeddings", action="store_true", help="do not load the embedding model")
    args = p.parse_args(argv)
    if not is_mode(args.mode):
        p.error(f"unknown mode {args.mode!r}")
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    probes = load_probes(p, args.probes, (str, list))
    service = None
    if args.mode not in BAD_MODES:
        import torch
        torch.set_num_threads(args.threads)
        service = LLMService(args.mode, seed=args.seed, repeats=args.repeats, probes=probes,
                             embeddings=not args.no_embeddings)
    server = _Server((args.host, args.port), args.mode, service)
    detail = f" weights={service.served.weights_hash()[:16]}" if service else ""
    serve(server, f"llmserver mode={args.mode} listening on {args.host}:{args.port}{detail}")


# ------------------------------------------------------------------------------------------ process API

class LLMServerProcess(ServerProcess):
    """One LLM server process on a loopback port. Context manager; also start()/stop()."""

    name = "llmserver"
    module = "alignment_node.devnet.llmserver"

    def __init__(self, mode: str = "fp32", *, seed: int | None = None, threads: int | None = None,
                 repeats: int | None = None, probes_file: str | None = None, embeddings: bool = True,
                 port: int | None = None, host: str = "127.0.0.1", startup_timeout: float = 10.0):
        if not is_mode(mode):
            raise ValueError(f"unknown LLM server mode {mode!r}: one of {', '.join(modes())} or route-<q>")
        self.mode = mode
        self.seed = seed
        self.threads = threads
        self.repeats = repeats
        self.probes_file = probes_file
        self.embeddings = embeddings
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    def _arguments(self) -> list[str]:
        return ["--mode", self.mode, *self._options(("--seed", self.seed), ("--threads", self.threads),
                                                     ("--repeats", self.repeats), ("--probes", self.probes_file)),
                *([] if self.embeddings else ["--no-embeddings"])]


if __name__ == "__main__":
    main()
