"""A devnet TEE "provider broker": an HTTP reverse proxy in front of any OpenAI-compatible upstream that signs its
completions as a 0G Compute provider with ``verifiability = "TeeML"`` does (docs/spec/TEE.md), honestly or with
one TEE fault. One process per target.

    python -m alignment_node.devnet.teeproxy --port P [--host H] --upstream URL --mode MODE
        --key-file F --root-key-file F2 --measurement HEX [--signature-ttl S]

``--key-file``: the TEE signing key (64 hex digits on the first line); ``--root-key-file``: the devnet attestation
root's key, which stands in for Intel's certificate chain; ``--measurement``: the image measurement the report
carries (hex, up to 64 bytes). Keys are read from files, never from the command line, and never printed.

Endpoints (each also under the broker's prefix ``/v1/proxy/...``, as 0G serves them):

- ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and ``GET /v1/models``: forwarded to
  the upstream with the body and query unchanged; the upstream's status, ``Content-Type`` and body come back
  (bodies up to 1 MiB in, ``MAX_RESPONSE_BYTES`` out, else 413 / 502). A 200 answer of either completion
  endpoint is signed as the 0G broker signs it: EIP-191 over ``sha256(request body):sha256(response body)``,
  stored under the response's ``id`` (its chatID; for an event stream, the first event's ``id``) for
  ``--signature-ttl`` seconds (default 1200, the broker's 20 minutes);
- ``GET /v1/proxy/signature/{chatID}``: ``{"text", "signature", "signing_address", "signing_algo": "ecdsa"}``,
  or 404 when unknown or expired;
- ``GET /v1/proxy/attestation/report[?nonce=HEX]``: a devnet report of ``models.tee.make_devnet_report`` whose
  report data binds the signer address and the nonce (32 bytes; random when not given).

Modes (``--mode``): ``honest``; ``tee-unsigned`` (no signature is stored: 404); ``tee-forged`` (signed by another
key, made at start); ``tee-stale`` (signed over other bytes: the previous response); ``tee-unbound`` (the report
binds another signer address); ``tee-wrong-measurement`` (the report carries another measurement);
``gateway-reserialize`` (signed honestly, then a gateway re-serializes the JSON body, keys sorted and indented,
so the client's bytes are not the signed ones).

Prints a ready line starting with ``teeproxy`` and serves with one thread per connection. Python API:
``with TeeProxyProcess(upstream_url, "honest", key_file=..., root_key_file=..., measurement=...) as p: p.url``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..models import tee
from .modelserver import read_body
from .processes import ServerProcess, serve

__all__ = ["MAX_RESPONSE_BYTES", "MODES", "SignatureStore", "TeeProxyProcess", "main", "read_key_file"]

MODES = ("honest", "tee-unsigned", "tee-forged", "tee-stale", "tee-unbound", "tee-wrong-measurement",
         "gateway-reserialize")
MAX_REQUEST_BYTES = 1 << 20
MAX_RESPONSE_BYTES = 16 << 20
MAX_SIGNATURES = 1 << 16
DEFAULT_TTL = 1200.0
UPSTREAM_TIMEOUT = 120.0
FORWARD_POST = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
SIGNED = ("/v1/chat/completions", "/v1/completions")
PREFIX = "/v1/proxy"


def _error(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def read_key_file(path: str) -> bytes:
    """The 32-byte key on the first non-empty line of ``path`` (hex, 0x optional). ValueError names no key."""
    with open(path, encoding="ascii") as f:
        for line in f:
            text = line.strip()
            if text:
                break
        else:
            raise ValueError(f"{path}: no key")
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    try:
        key = bytes.fromhex(text)
        tee.address_of(key)
    except ValueError:
        raise ValueError(f"{path}: not a 32-byte secp256k1 key in hex") from None
    return key


class SignatureStore:
    """chatID -> signature record, each kept ``ttl`` seconds, at most ``most`` (oldest dropped first)."""

    def __init__(self, ttl: float = DEFAULT_TTL, most: int = MAX_SIGNATURES):
        self.ttl, self.most = ttl, most
        self._items: OrderedDict[str, tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, chat_id: str, record: dict) -> None:
        now = time.monotonic()
        with self._lock:
            self._items.pop(chat_id, None)
            self._items[chat_id] = (now + self.ttl, record)
            while len(self._items) > self.most or (self._items and next(iter(self._items.values()))[0] < now):
                self._items.popitem(last=False)

    def get(self, chat_id: str) -> dict | None:
        with self._lock:
            item = self._items.get(chat_id)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]


def chat_id_of(body: bytes, content_type: str) -> str | None:
    """The chatID of a completion answer: its JSON ``id``, or the first server-sent event's ``id``."""
    try:
        if "text/event-stream" in content_type:
            for line in body.split(b"\n"):
                line = line.strip()
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    obj = json.loads(line[5:].strip())
                    break
            else:
                return None
        else:
            obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    chat_id = obj.get("id") if isinstance(obj, dict) else None
    return chat_id if isinstance(chat_id, str) and 0 < len(chat_id) <= 256 else None


def reserialize(body: bytes) -> bytes:
    """What a JSON-rewriting gateway hands on: the same value, other bytes (keys sorted, indented)."""
    try:
        out = json.dumps(json.loads(body), indent=2, sort_keys=True, ensure_ascii=True).encode()
    except (ValueError, RecursionError):
        return body
    return out if out != body else out + b"\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "teeproxy"
    timeout = 60

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload, content_type: str = "application/json", headers=()) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> tuple[str, str]:
        """(path without the broker prefix, query string)."""
        path, _, query = self.path.partition("?")
        path = path.rstrip("/") or "/"
        if path.startswith(PREFIX + "/") and not path.startswith(PREFIX + "/signature/") \
                and path != PREFIX + "/attestation/report":
            path = "/v1" + path[len(PREFIX):]
        return path, query

    def _forward(self, method: str, path: str, query: str, body: bytes | None):
        server: _Server = self.server
        base = server.upstream
        target = base.path.rstrip("/") + path + ("?" + query if query else "")
        headers = {"Accept": "application/json"}
        for name in ("Content-Type", "Authorization"):
            if self.headers.get(name):
                headers[name] = self.headers[name]
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=UPSTREAM_TIMEOUT)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE_BYTES + 1)
            extra = [("Retry-After", resp.getheader("Retry-After"))] if resp.getheader("Retry-After") else []
            return resp.status, resp.getheader("Content-Type") or "application/json", data, extra
        finally:
            conn.close()

    def _relay(self, method: str, path: str, query: str, body: bytes | None) -> None:
        try:
            status, ctype, data, extra = self._forward(method, path, query, body)
        except (OSError, http.client.HTTPException) as exc:
            self._send(502, _error(f"the upstream did not answer: {type(exc).__name__}", "upstream_error"))
            return
        if len(data) > MAX_RESPONSE_BYTES:
            self.close_connection = True
            self._send(502, _error(f"the upstream answer is over {MAX_RESPONSE_BYTES} bytes", "upstream_error"))
            return
        if method == "POST" and status == 200 and path in SIGNED:
            data = self.server.sign(body or b"", data, ctype)
        self._send(status, data, ctype, extra)

    def do_GET(self) -> None:
        path, query = self._route()
        server: _Server = self.server
        if path.startswith(PREFIX + "/signature/"):
            chat_id = urllib.parse.unquote(path[len(PREFIX + "/signature/"):])
            record = server.store.get(chat_id)
            if record is None:
                self._send(404, _error("Chat id not found or expired", "not_found"))
            else:
                self._send(200, record)
        elif path == PREFIX + "/attestation/report":
            nonce = urllib.parse.parse_qs(query).get("nonce", [None])[0]
            try:
                self._send(200, server.report(nonce))
            except ValueError:
                self._send(400, _error("nonce must be 32 bytes of hex"))
        elif path == "/v1/models":
            self._relay("GET", path, query, None)
        else:
            self._send(404, _error(f"no route GET {path}", "not_found"))

    def do_POST(self) -> None:
        path, query = self._route()
        body = read_body(self, MAX_REQUEST_BYTES)
        if body is None:
            return
        if path not in FORWARD_POST:
            self._send(404, _error(f"no route POST {path}", "not_found"))
            return
        self._relay("POST", path, query, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, upstream: str, mode: str, key: bytes, root_key: bytes, measurement: bytes,
                 ttl: float = DEFAULT_TTL):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        super().__init__(address, _Handler)
        self.upstream = urllib.parse.urlsplit(upstream)
        if self.upstream.scheme != "http" or not self.upstream.hostname:
            raise ValueError("the upstream must be an http:// URL")
        self.mode = mode
        self.key, self.root_key, self.measurement = key, root_key, measurement
        self.other_key = secrets.token_bytes(32)  # the forger's key, or the signer an unbound report names
        self.store = SignatureStore(ttl)
        self._last: bytes | None = None
        self._lock = threading.Lock()

    def sign(self, request: bytes, response: bytes, content_type: str) -> bytes:
        """Sign one completion answer per the mode; the bytes the client gets."""
        chat_id = chat_id_of(response, content_type)
        if chat_id is None or self.mode == "tee-unsigned":
            return response
        signed_response, key = response, self.key
        if self.mode == "tee-forged":
            key = self.other_key
        elif self.mode == "tee-stale":
            with self._lock:
                previous, self._last = self._last, response
            signed_response = previous if previous is not None and previous != response else response + b" "
        self.store.put(chat_id, tee.signature_record(key, request, signed_response))
        return reserialize(response) if self.mode == "gateway-reserialize" else response

    def report(self, nonce: str | None) -> dict:
        key = self.other_key if self.mode == "tee-unbound" else self.key
        measurement = self.measurement
        if self.mode == "tee-wrong-measurement":
            measurement = measurement[:-1] + bytes([measurement[-1] ^ 0x01])
        return tee.make_devnet_report(key, measurement, self.root_key, nonce)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="teeproxy", description="A devnet TEE provider broker (signing proxy).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="the OpenAI-compatible server, http://host:port")
    p.add_argument("--mode", default="honest", choices=MODES)
    p.add_argument("--key-file", required=True, help="the TEE signing key (hex, first line)")
    p.add_argument("--root-key-file", required=True, help="the devnet attestation root's key (hex, first line)")
    p.add_argument("--measurement", required=True, help="the image measurement (hex, up to 64 bytes)")
    p.add_argument("--signature-ttl", type=float, default=DEFAULT_TTL, help="seconds a signature is kept")
    args = p.parse_args(argv)
    try:
        key, root_key = read_key_file(args.key_file), read_key_file(args.root_key_file)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    text = args.measurement[2:] if args.measurement[:2] in ("0x", "0X") else args.measurement
    try:
        measurement = bytes.fromhex(text)
    except ValueError:
        measurement = b""
    if not 0 < len(measurement) <= 64:
        p.error("--measurement must be 1 to 64 bytes of hex")
    if args.signature_ttl <= 0:
        p.error("--signature-ttl must be positive")
    try:
        server = _Server((args.host, args.port), args.upstream, args.mode, key, root_key, measurement,
                         args.signature_ttl)
    except ValueError as exc:
        p.error(str(exc))
    serve(server, f"teeproxy mode={args.mode} listening on {args.host}:{args.port} signer={tee.address_of(key)} "
                  f"root={tee.address_of(root_key)} upstream={args.upstream}")


# ------------------------------------------------------------------------------------------ process API

class TeeProxyProcess(ServerProcess):
    """One TEE proxy process on a loopback port. Context manager; also start()/stop()."""

    name = "teeproxy"
    module = "alignment_node.devnet.teeproxy"

    def __init__(self, upstream: str, mode: str = "honest", *, key_file: str, root_key_file: str,
                 measurement: str, signature_ttl: float | None = None, port: int | None = None,
                 host: str = "127.0.0.1", startup_timeout: float = 10.0):
        if mode not in MODES:
            raise ValueError(f"unknown TEE proxy mode {mode!r}: one of {', '.join(MODES)}")
        self.upstream, self.mode = upstream, mode
        self.key_file, self.root_key_file, self.measurement = str(key_file), str(root_key_file), measurement
        self.signature_ttl = signature_ttl
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    def _arguments(self) -> list[str]:
        return ["--upstream", self.upstream, "--mode", self.mode, "--key-file", self.key_file,
                "--root-key-file", self.root_key_file, "--measurement", self.measurement,
                *self._options(("--signature-ttl", self.signature_ttl))]


if __name__ == "__main__":
    main()
