"""A devnet MODEL target: an OpenAI-compatible HTTP server for the tiny byte-level model (``models.lm``) and the
sentence-embedding model (``models.embed``), honest, substituted, or answering badly. One process per target.

    python -m alignment_node.devnet.modelserver --port P [--host H] --mode MODE [--route-q Q] [--threads N]

Endpoints (JSON; request bodies up to 1 MiB, else 413):

- ``GET /v1/models``: ``tinylm`` (completions) and ``all-MiniLM-L6-v2`` (embeddings), whatever the mode;
- ``POST /v1/completions``: ``prompt`` (a string or a list of up to 64), ``max_tokens`` (0..256, default 32),
  ``temperature`` (0..2, default 1), ``n`` (1..128; prompts x n <= 512), ``seed`` (optional integer: the
  same request gives the same answer; choice ``i`` is drawn with seed + i), ``logprobs`` (null, or 0..5:
  then ``choices[i].logprobs`` has ``tokens``, ``token_logprobs``, ``text_offset``; ``top_logprobs`` is
  null). Choices are prompt-major (all n of the first prompt, then the second's...), ``finish_reason``
  is always ``length`` (the model has no end token);
- ``POST /v1/chat/completions``: ``messages`` (role and string content, or a list of text parts) become the
  prompt ``"<role>: <content>\\n"`` per message then ``"assistant:"``; ``max_tokens`` or
  ``max_completion_tokens``, ``temperature``, ``n``, ``seed`` as above; ``logprobs: true`` gives
  ``choices[i].logprobs.content`` = [{token, logprob, bytes, top_logprobs: []}];
- ``POST /v1/embeddings``: ``input`` (a string or a list of up to 256, each up to 8192 characters),
  ``encoding_format`` ``float`` (default) or ``base64`` (little-endian float32) -> ``data[i].embedding``.

Bytes and text. Tokens are bytes. A completion's ``text`` (and each token) is its bytes decoded as latin-1, so
``text.encode("latin-1")`` gives the sampled bytes back exactly (JSON carries code points < 256 as they
are); ``bytes`` in chat logprobs gives them directly. A prompt string is encoded as latin-1 when every
character is below U+0100, else as UTF-8. Log-probabilities are those of the served model at temperature 1
(``models.lm``), whatever the sampling temperature. Errors are OpenAI-style ``{"error": {...}}`` with 400
(bad field, named in ``param``), 404, 405, 411 or 413.

Modes (``--mode``):

- ``honest``; any substitution of ``models.variants`` (``int8``, ``4bit``, ``noise-0.1``, ``noise-1``,
  ``finetuned``, ``seed``, ``temp-0.7``, ``route-<q>`` or ``route`` with ``--route-q``, ``evasive`` with
  ``--repeats`` and ``--probes FILE``, a JSON list of prompts it knows to be probes): completions from the
  substitute, honest embeddings;
- ``embed-noise``, ``embed-other``: honest completions, substituted embeddings (``models.embed``);
- bad answers, every POST and GET under /v1/ (no model is loaded): ``garbage`` (a 200 whose body is cut-off
  JSON with invalid UTF-8), ``wrong-shape`` (valid JSON of the wrong shape: text a list, logprobs strings,
  3-number embeddings, ...), ``empty-choices`` (``choices: []`` / ``data: []``), ``huge`` (a chunked 200 of
  ``HUGE_TOKENS`` = 4,000,000 one-byte tokens, streamed as the client reads), ``refuse`` (in turn: 429 with
  ``Retry-After``, 503, then a 200 whose body is an error object).

The process loads the models once (from the cache of ``models.lm``; training first if it is empty), then
prints a ready line starting with ``modelserver`` and serves with one thread per connection; model calls
are serialized. Python API: ``with ModelServerProcess("int8") as server: server.url``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .processes import ServerProcess, serve

__all__ = ["BAD_MODES", "EMBED_MODES", "EMBED_ID", "HUGE_TOKENS", "LM_ID", "MAX_REQUEST_BYTES", "ModelServerProcess",
           "ModelService", "is_mode", "modes"]

LM_ID = "tinylm"
EMBED_ID = "all-MiniLM-L6-v2"
BAD_MODES = ("garbage", "wrong-shape", "empty-choices", "huge", "refuse")
EMBED_MODES = ("embed-noise", "embed-other")
MAX_REQUEST_BYTES = 1 << 20
MAX_TOKENS = 256
DEFAULT_MAX_TOKENS = 32
MAX_PROMPTS = 64
MAX_N = 128
MAX_CHOICES = 512
MAX_INPUTS = 256
MAX_CHARS = 8192
MAX_MESSAGES = 64
HUGE_TOKENS = 4_000_000
_BATCH = 64


def modes() -> tuple[str, ...]:
    from ..models.variants import VARIANTS
    return (*VARIANTS, "route", *EMBED_MODES, *BAD_MODES)


def is_mode(mode: str) -> bool:
    if mode in ("route", *EMBED_MODES, *BAD_MODES):
        return True
    from ..models.variants import VARIANTS, parse_route
    try:
        return mode in VARIANTS or parse_route(mode) is not None
    except ValueError:
        return False


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def _error(message: str, param: str | None = None, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _int(body: dict, name: str, default, low: int, high: int):
    value = body.get(name, default)
    if value is None:
        value = default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer in [{low}, {high}]", name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{name} must be a number in [{low}, {high}]", name)
    return float(value)


def _text_bytes(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def _strings(value, name: str, most: int) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise BadRequest(f"{name} must be a string or a non-empty list of strings", name)
    if len(items) > most:
        raise BadRequest(f"at most {most} items in {name}", name)
    if any(len(s) > MAX_CHARS for s in items):
        raise BadRequest(f"each {name} is at most {MAX_CHARS} characters", name)
    return items


class ModelService:
    """The models of one mode and the answers of the three POST endpoints (dicts; raise BadRequest)."""

    def __init__(self, mode: str = "honest", *, route_q: float | None = None, seed: int = 0,
                 steps: int | None = None, repeats: int = 1, probes: list[str] = (), embeddings: bool = True):
        if not is_mode(mode) or mode in BAD_MODES:
            raise ValueError(f"not a serving mode: {mode!r}")
        from ..models import embed, lm, variants
        self.mode = mode
        self.lm = lm
        base = lm.load_or_train(seed, steps)
        name = mode
        if mode == "route":
            name = f"route-{0.5 if route_q is None else route_q}"
        if mode in EMBED_MODES:
            name = "honest"
        self.served = variants.make_variant(name, base, repeats=repeats,
                                            probes=frozenset(_text_bytes(p) for p in probes))
        self.embedder = embed.Embedder(mode if mode in EMBED_MODES else "honest") if embeddings else None
        self._lock = threading.Lock()

    def _sample(self, prompts: list[bytes], n: int, max_tokens: int, temperature: float, seed: int | None):
        rows = [p for p in prompts for _ in range(n)]
        base = secrets.randbits(62) if seed is None else seed % (1 << 62)
        out = []
        with self._lock:
            for start in range(0, len(rows), _BATCH):
                out += self.served.sample_batch(rows[start:start + _BATCH], max_tokens, temperature, base + start)
        return out

    def _common(self, body: dict, tokens_field: str = "max_tokens"):
        max_tokens = _int(body, tokens_field, DEFAULT_MAX_TOKENS, 0, MAX_TOKENS)
        temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
        n = _int(body, "n", 1, 1, MAX_N)
        seed = _int(body, "seed", None, -(1 << 63), (1 << 64) - 1)
        if body.get("stream"):
            raise BadRequest("stream is not supported", "stream")
        return max_tokens, temperature, n, seed

    @staticmethod
    def _usage(prompts: list[bytes], n: int, completions) -> dict:
        prompt_tokens = sum(len(p) for p in prompts)
        completion_tokens = sum(len(c) for c, _ in completions)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def completions(self, body: dict) -> dict:
        prompts = [_text_bytes(s) for s in _strings(body.get("prompt"), "prompt", MAX_PROMPTS)]
        max_tokens, temperature, n, seed = self._common(body)
        logprobs = _int(body, "logprobs", None, 0, 5)
        if body.get("echo"):
            raise BadRequest("echo is not supported", "echo")
        if len(prompts) * n > MAX_CHOICES:
            raise BadRequest(f"at most {MAX_CHOICES} choices (prompts x n)", "n")
        done = self._sample(prompts, n, max_tokens, temperature, seed)
        choices = []
        for i, (text, lps) in enumerate(done):
            choice = {"index": i, "text": text.decode("latin-1"), "logprobs": None, "finish_reason": "length"}
            if logprobs is not None:
                choice["logprobs"] = {"tokens": [chr(b) for b in text], "token_logprobs": lps,
                                      "top_logprobs": None, "text_offset": list(range(len(text)))}
            choices.append(choice)
        return {"id": "cmpl-" + secrets.token_hex(12), "object": "text_completion", "created": int(time.time()),
                "model": LM_ID, "choices": choices, "usage": self._usage(prompts, n, done)}

    def chat(self, body: dict) -> dict:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
            raise BadRequest(f"messages must be a list of 1 to {MAX_MESSAGES} messages", "messages")
        lines = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest("each message needs a role and a content", "messages")
            content = m.get("content")
            if isinstance(content, list):
                if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                           for p in content):
                    raise BadRequest("content parts must be {type: text, text: string}", "messages")
                content = "".join(p["text"] for p in content)
            if not isinstance(content, str):
                raise BadRequest("each message needs a role and a content", "messages")
            lines.append(f"{m['role']}: {content}\n")
        prompt = "".join(lines) + "assistant:"
        if len(prompt) > MAX_CHARS:
            raise BadRequest(f"the conversation is at most {MAX_CHARS} characters", "messages")
        tokens_field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens, temperature, n, seed = self._common(body, tokens_field)
        want_logprobs = body.get("logprobs", False)
        if not isinstance(want_logprobs, bool) and want_logprobs is not None:
            raise BadRequest("logprobs must be a boolean", "logprobs")
        _int(body, "top_logprobs", None, 0, 20)
        prompts = [_text_bytes(prompt)]
        done = self._sample(prompts, n, max_tokens, temperature, seed)
        choices = []
        for i, (text, lps) in enumerate(done):
            choice = {"index": i, "message": {"role": "assistant", "content": text.decode("latin-1")},
                      "logprobs": None, "finish_reason": "length"}
            if want_logprobs:
                choice["logprobs"] = {"content": [{"token": chr(b), "logprob": lp, "bytes": [b], "top_logprobs": []}
                                                  for b, lp in zip(text, lps)], "refusal": None}
            choices.append(choice)
        return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
                "model": LM_ID, "choices": choices, "usage": self._usage(prompts, n, done)}

    def embeddings(self, body: dict) -> dict:
        return embeddings_answer(self.embedder, body)


def models_answer() -> dict:
    return {"object": "list", "data": [{"id": LM_ID, "object": "model", "created": 0, "owned_by": "devnet"},
                                       {"id": EMBED_ID, "object": "model", "created": 0, "owned_by": "devnet"}]}


# ---------------------------------------------------------------------------------------------- bad modes

_WRONG = {
    "/v1/completions": {"object": "text_completion", "model": LM_ID, "choices": [
        {"index": 0, "text": ["not", "a", "string"], "logprobs": {"tokens": "abc", "token_logprobs": ["-1.0", 3]},
         "finish_reason": 7}]},
    "/v1/chat/completions": {"object": "chat.completion", "model": LM_ID, "choices": [{"index": 0, "message": "hi"}]},
    "/v1/embeddings": {"object": "list", "model": EMBED_ID, "data": [{"index": 0, "embedding": [0.5, "x", None]}]},
    "/v1/models": {"object": "list", "data": LM_ID},
}
_EMPTY = {
    "/v1/completions": {"object": "text_completion", "model": LM_ID, "choices": []},
    "/v1/chat/completions": {"object": "chat.completion", "model": LM_ID, "choices": []},
    "/v1/embeddings": {"object": "list", "model": EMBED_ID, "data": []},
    "/v1/models": {"object": "list", "data": []},
}


def _huge_parts(path: str):
    """Head, repeated piece, count and tail of the oversized answer of ``path``."""
    if path == "/v1/embeddings":
        return b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[', b"0.0,", HUGE_TOKENS, \
            b'0.0]}]}'
    key = "message" if path == "/v1/chat/completions" else "text"
    head = b'{"object":"completion","model":"tinylm","choices":[{"index":0,"finish_reason":"length","' + \
        key.encode() + (b'":{"role":"assistant","content":"' if key == "message" else b'":"')
    return head, b"a", HUGE_TOKENS, b'"}}]}' if key == "message" else b'"}]}'


# -------------------------------------------------------------------------------------------------- HTTP


def embeddings_answer(embedder, body: dict) -> dict:
    """The /v1/embeddings answer of ``embedder`` (``models.embed.Embedder``, None: this server has none)."""
    if embedder is None:
        raise BadRequest("this server has no embedding model", "model", 404)
    texts = _strings(body.get("input"), "input", MAX_INPUTS)
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("encoding_format must be float or base64", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and dims != 384:
        raise BadRequest("dimensions must be 384 (or left out)", "dimensions")
    vectors = embedder.embed(texts)
    data = []
    for i, v in enumerate(vectors):
        value = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    used = sum(len(_text_bytes(t)) for t in texts)
    return {"object": "list", "data": data, "model": EMBED_ID, "usage": {"prompt_tokens": used, "total_tokens": used}}


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes | None:
    """A request's body (a Content-Length is required, at most ``limit`` bytes); None once 411 or 413 has been
    answered through ``handler._send(status, payload)``."""
    length_text = handler.headers.get("Content-Length")
    if length_text is None or not length_text.strip().isdigit():
        handler.close_connection = True
        handler._send(411, _error("a Content-Length header is required"))
        return None
    length = int(length_text)
    if length > limit:
        handler.close_connection = True
        handler._send(413, _error(f"request bodies are at most {limit} bytes"))
        return None
    return handler.rfile.read(length)


class OpenAIHandler(BaseHTTPRequestHandler):
    """The HTTP side both devnet model servers share (this one and ``llmserver``): request size limits, JSON
    bodies, the OpenAI routes and error shapes. A subclass names itself (``server_version``) and gives
    ``_models()`` (the /v1/models answer), ``_unknown_model(model, handler)`` (why a named model is not served, or
    None) and, for its bad modes, ``_bad(path)``; its server has ``mode`` and ``service`` (whose ``completions``,
    ``chat`` and ``embeddings`` take the parsed body and return the answer or raise BadRequest)."""

    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload, headers: dict | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _bad(self, path: str) -> bool:
        """Answer as a bad mode would; False when the server's mode is not a bad one."""
        return False

    def _models(self) -> dict:
        raise NotImplementedError

    def _unknown_model(self, model, handler: str) -> str | None:
        raise NotImplementedError

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/") and self._bad(path):
            return
        if path == "/v1/models":
            self._send(200, self._models())
        else:
            self._send(404, _error(f"no route GET {path}", kind="not_found"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = read_body(self, MAX_REQUEST_BYTES)
        if raw is None:
            return
        if path.startswith("/v1/") and self._bad(path):
            return
        handler = {"/v1/completions": "completions", "/v1/chat/completions": "chat",
                   "/v1/embeddings": "embeddings"}.get(path)
        if handler is None:
            self._send(404 if path != "/v1/models" else 405, _error(f"no route POST {path}", kind="not_found"))
            return
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            self._send(400, _error("the body is not JSON"))
            return
        if not isinstance(body, dict):
            self._send(400, _error("the body must be a JSON object"))
            return
        unknown = self._unknown_model(body.get("model"), handler)
        if unknown:
            self._send(404, _error(unknown, "model", kind="not_found"))
            return
        try:
            answer = getattr(self.server.service, handler)(body)
        except BadRequest as exc:
            self._send(exc.status, _error(exc.message, exc.param))
            return
        except (ValueError, TypeError) as exc:
            self._send(400, _error(str(exc)))
            return
        self._send(200, answer)




class _Handler(OpenAIHandler):
    server_version = "modelserver"

    def _models(self) -> dict:
        return models_answer()

    def _unknown_model(self, model, handler: str) -> str | None:
        return None if model is None or model in (LM_ID, EMBED_ID) else f"the model {model!r} does not exist"

    def _bad(self, path: str) -> bool:
        """Answer in a bad mode; False if the mode is not a bad one."""
        server = self.server
        mode = server.mode
        if mode not in BAD_MODES:
            return False
        if mode == "garbage":
            self._send(200, b'{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"\xff\xfe\xfa')
        elif mode == "wrong-shape":
            self._send(200, _WRONG.get(path, _WRONG["/v1/models"]))
        elif mode == "empty-choices":
            self._send(200, _EMPTY.get(path, _EMPTY["/v1/models"]))
        elif mode == "refuse":
            with server.count_lock:
                server.count += 1
                k = (server.count - 1) % 3
            if k == 0:
                self._send(429, _error("rate limit reached, retry later", kind="rate_limit_error"),
                           {"Retry-After": "1"})
            elif k == 1:
                self._send(503, _error("the model is overloaded", kind="server_error"))
            else:
                self._send(200, _error("the request was refused", kind="server_error"))
        else:  # huge
            head, piece, count, tail = _huge_parts(path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = piece * (65536 // len(piece))
            per = 65536 // len(piece)
            parts = [head] + [chunk] * (count // per) + [piece * (count % per), tail]
            try:
                for part in parts:
                    if part:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, mode: str, service: ModelService | None):
        super().__init__(address, _Handler)
        self.mode = mode
        self.service = service
        self.count = 0
        self.count_lock = threading.Lock()


def load_probes(p: argparse.ArgumentParser, path: str | None, kinds: tuple[type, ...]) -> list:
    """The ``--probes`` file: a JSON list whose items are of ``kinds`` (an argument error otherwise)."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            probes = json.load(f)
    except (OSError, ValueError) as exc:
        p.error(f"--probes: {exc}")
    if not isinstance(probes, list) or not all(isinstance(x, kinds) for x in probes):
        p.error("--probes: the file must hold a JSON list of " + " or ".join(
            {"str": "strings", "list": "message lists"}[k.__name__] for k in kinds))
    return probes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="modelserver", description="An OpenAI-compatible devnet model server.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", default="honest", help="honest, a variant of models.variants, route, embed-noise, "
                   "embed-other, or a bad mode: " + ", ".join(BAD_MODES))
    p.add_argument("--route-q", type=float, help="route: the fraction of requests served by the substitute")
    p.add_argument("--repeats", type=int, default=1, help="evasive: a prompt asked this many times before is "
                   "treated as a probe")
    p.add_argument("--probes", help="evasive: a JSON file with a list of prompt strings to serve honestly "
                   "(e.g. the probe prompts of the public baseline bundle)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the base model's training seed")
    p.add_argument("--no-embeddings", action="store_true", help="do not load the embedding model")
    args = p.parse_args(argv)
    if not is_mode(args.mode):
        p.error(f"unknown mode {args.mode!r}")
    if args.route_q is not None and not 0.0 <= args.route_q <= 1.0:
        p.error("--route-q must be in [0, 1]")
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1")
    probes = load_probes(p, args.probes, (str,))
    service = None
    if args.mode not in BAD_MODES:
        import torch
        torch.set_num_threads(args.threads)
        service = ModelService(args.mode, route_q=args.route_q, seed=args.seed, repeats=args.repeats,
                               probes=probes, embeddings=not args.no_embeddings)
    server = _Server((args.host, args.port), args.mode, service)
    detail = f" weights={service.served.weights_hash()[:16]}" if service else ""
    serve(server, f"modelserver mode={args.mode} listening on {args.host}:{args.port}{detail}")


# ------------------------------------------------------------------------------------------ process API

class ModelServerProcess(ServerProcess):
    """One model server process on a loopback port. Context manager; also start()/stop()."""

    name = "modelserver"
    module = "alignment_node.devnet.modelserver"

    def __init__(self, mode: str = "honest", *, route_q: float | None = None, threads: int | None = None,
                 repeats: int | None = None, probes_file: str | None = None, seed: int | None = None,
                 embeddings: bool = True,
                 port: int | None = None, host: str = "127.0.0.1", startup_timeout: float = 10.0):
        if not is_mode(mode):
            raise ValueError(f"unknown model server mode {mode!r}: one of {', '.join(modes())} or route-<q>")
        self.mode = mode
        self.route_q = route_q
        self.threads = threads
        self.repeats = repeats
        self.probes_file = probes_file
        self.seed = seed
        self.embeddings = embeddings
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    def _arguments(self) -> list[str]:
        return ["--mode", self.mode, *self._options(("--route-q", self.route_q), ("--threads", self.threads),
                                                     ("--repeats", self.repeats), ("--probes", self.probes_file),
                                                     ("--seed", self.seed)),
                *([] if self.embeddings else ["--no-embeddings"])]


if __name__ == "__main__":
    main()
