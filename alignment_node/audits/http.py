"""A bounded HTTP/1.1 JSON-RPC client for audits: every call becomes an Observation, never an exception.

An audit must be able to show what it asked and what came back, and a target must not be able to stall or
exhaust the auditor. So, unlike ``chain.rpc.RpcClient`` (which fails over and raises), this client:

- bounds each call by a total deadline (connect + send + the whole answer): a server that trickles one
  byte a second is cut off at the deadline, not after the last byte;
- caps the body at ``max_response_bytes``; beyond it, it stops reading and reports ``oversized`` with the
  number of bytes read and the SHA-256 of what it read (the body is hashed as it arrives);
- holds few large buffers at once: a body may only grow past ``SMALL_BODY_BYTES`` while it holds one of
  ``large_slots`` slots, so memory stays bounded however many targets answer with megabytes together;
- limits open connections with a semaphore shared by every audit of the client (one slot per session);
- records each call as an Observation dict (integers only, so it fits in canonical JSON)::

    {"method", "params", "started_ms", "elapsed_ms", "status", "size", "result" | ("error", "sha256"), ...}

  ``started_ms`` is relative to the client's ``origin`` (the start of the epoch's audit); ``status`` is one of
  STATUSES; a ``timeout`` says how long the call was allowed (``allowed_ms``: less than the request deadline
  when the audit's own time budget cut it short). ``result`` is what the call's ``extract`` function kept of the JSON-RPC result (a few fields of
  a block, a number); without ``extract`` a small result is kept verbatim, a larger one only as its
  ``result_sha256`` and ``result_size``.

A session (``async with client.session(url) as s``) is one keep-alive connection (http, or https with the
system's CA store) to one target, opened lazily and reopened when the server closed it;
``await s.call(method, params, extract, deadline_at)``. A bad URL is recorded as ``refused``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from typing import Any, Callable

from .. import http1, safejson
from ..http1 import Endpoint, ResponseError  # shared with the node's own RPC client (chain.rpc)

__all__ = [
    "AuditHttpClient",
    "classify_envelope",
    "epoch_client",
    "Session",
    "STATUSES",
    "TRANSIENT",
    "GARBAGE",
    "classify_body",
    "classify_json",
    "read_response",
    "ResponseError",
    "last_attempts",
    "describe",
    "call_with_retry",
]

STATUSES = ("ok", "rpc_error", "timeout", "refused", "reset", "oversized", "malformed", "bad_utf8", "http_error")
TRANSIENT = frozenset({"timeout", "refused", "reset", "http_error", "rpc_error"})  # worth one retry
GARBAGE = frozenset({"malformed", "bad_utf8", "oversized"})  # no correct node sends these: never retried

DEFAULT_MAX_RESPONSE = 1 << 20
SMALL_BODY_BYTES = http1.SMALL_BODY_BYTES
HEADER_LIMIT = 16 * 1024  # the stream reader's buffer limit and the largest header block accepted
KEPT_RESULT_BYTES = 256  # a result without an extract function is kept verbatim up to this size
ERROR_TEXT_CHARS = 200

Extract = Callable[[Any], Any]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _short(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_CHARS else text[:ERROR_TEXT_CHARS] + "..."


async def read_response(reader: asyncio.StreamReader, max_bytes: int = DEFAULT_MAX_RESPONSE,
                        large: asyncio.Semaphore | None = None) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.x response: (HTTP status, keep-alive, body). Raises ResponseError (status ``reset`` if
    the connection closed before any byte, else ``malformed``/``oversized``, with the size and SHA-256 of what
    was read); bodies larger than SMALL_BODY_BYTES are only buffered while holding a ``large`` slot."""
    return await http1.read_response(reader, max_bytes, large, header_limit=HEADER_LIMIT,
                                     small_body_bytes=SMALL_BODY_BYTES)


def classify_body(http_status: int, body: bytes, req_id: int, extract: Extract | None = None) -> dict[str, Any]:
    """The Observation fields a response body supports: status, size, and the kept result or the error with
    the body's SHA-256 (the evidence of a bad answer). Pure; never raises. ``extract`` maps the JSON-RPC result to
    what the audit keeps and raises ValueError/TypeError if the result has the wrong shape (status ``malformed``)."""
    return _with_body_evidence(_classify(http_status, body, req_id, extract), http_status, body)


def _with_body_evidence(obs: dict[str, Any], http_status: int, body: bytes) -> dict[str, Any]:
    """Every observation keeps the body's size; a bad one also its SHA-256 and a non-200 HTTP status."""
    obs["size"] = len(body)
    if obs["status"] != "ok":
        obs["sha256"] = hashlib.sha256(body).hexdigest()
        if http_status != 200:
            obs["http_status"] = http_status
    return obs


def _classify(http_status: int, body: bytes, req_id: int, extract: Extract | None) -> dict[str, Any]:
    try:
        msg = safejson.loads(body)
    except UnicodeDecodeError as exc:
        return {"status": "bad_utf8", "error": _short(f"response is not UTF-8: {exc.reason} at byte {exc.start}")}
    except (ValueError, RecursionError) as exc:
        if http_status != 200:
            return {"status": "http_error", "error": f"HTTP {http_status}"}
        return {"status": "malformed", "error": _short(f"not JSON: {exc}")}
    if not isinstance(msg, dict):
        if http_status != 200:
            return {"status": "http_error", "error": f"HTTP {http_status}"}
        return {"status": "malformed", "error": "response is not a JSON-RPC object"}
    if msg.get("error") is not None:
        err = msg["error"]
        if not isinstance(err, dict) or type(err.get("code")) is not int:
            return {"status": "malformed", "error": "malformed JSON-RPC error object"}
        message = err.get("message")
        return {"status": "rpc_error", "error": _short(f"{err['code']}: {message if isinstance(message, str) else ''}")}
    if http_status != 200:
        return {"status": "http_error", "error": f"HTTP {http_status}"}
    if msg.get("id") != req_id or type(msg.get("id")) is not int:
        return {"status": "malformed", "error": _short(f"response id {str(msg.get('id'))[:40]!r} is not request id {req_id}")}
    if "result" not in msg:
        return {"status": "malformed", "error": "JSON-RPC response has neither result nor error"}
    result = msg["result"]
    if extract is None:
        if result is None or (isinstance(result, (str, int)) and len(str(result)) <= KEPT_RESULT_BYTES):
            return {"status": "ok", "result": result}
        # objects, floats (canonical JSON has none) and long values are kept as their hash and size
        raw = json.dumps(result, sort_keys=True, separators=(",", ":")).encode()
        return {"status": "ok", "result_sha256": hashlib.sha256(raw).hexdigest(), "result_size": len(raw)}
    try:
        return {"status": "ok", "result": extract(result)}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return {"status": "malformed", "error": _short(f"bad result: {exc}")}


def classify_json(http_status: int, body: bytes, extract: Extract | None = None) -> dict[str, Any]:
    """Observation fields of a plain JSON answer: ``ok`` with the extract-ed value, ``http_error`` (status
    kept), ``malformed`` or ``bad_utf8``; a bad answer keeps its size and SHA-256. Never raises."""
    obs: dict[str, Any]
    try:
        value = safejson.loads(body)
        if http_status != 200:
            obs = {"status": "http_error", "error": _short(f"HTTP {http_status}: {str(value)[:120]}")}
        else:
            try:
                obs = {"status": "ok", "result": value if extract is None else extract(value)}
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                obs = {"status": "malformed", "error": _short(f"bad answer: {exc}")}
    except UnicodeDecodeError as exc:
        obs = {"status": "bad_utf8", "error": _short(f"response is not UTF-8: {exc.reason} at byte {exc.start}")}
    except (ValueError, RecursionError) as exc:
        obs = ({"status": "http_error", "error": f"HTTP {http_status}"} if http_status != 200
               else {"status": "malformed", "error": _short(f"not JSON: {exc}")})
    return _with_body_evidence(obs, http_status, body)


def classify_envelope(http_status: int, body: bytes, extract: Extract | None = None) -> dict[str, Any]:
    """Observation fields of a JSON-RPC envelope answered to a GET (CometBFT's URI routes; any id): ``ok``
    with the extract-ed ``result``, ``rpc_error`` (code, message and data kept), ``http_error``, ``malformed``
    or ``bad_utf8``. Never raises."""
    obs: dict[str, Any]
    try:
        msg = safejson.loads(body)
    except UnicodeDecodeError as exc:
        obs = {"status": "bad_utf8", "error": _short(f"response is not UTF-8: {exc.reason} at byte {exc.start}")}
    except (ValueError, RecursionError) as exc:
        obs = ({"status": "http_error", "error": f"HTTP {http_status}"} if http_status != 200
               else {"status": "malformed", "error": _short(f"not JSON: {exc}")})
    else:
        err = msg.get("error") if isinstance(msg, dict) else None
        if err is not None:
            if isinstance(err, dict) and type(err.get("code")) is int:
                text = " ".join(str(err.get(k)) for k in ("message", "data") if isinstance(err.get(k), str))
                obs = {"status": "rpc_error", "error": _short(f"{err['code']}: {text}")}
            else:
                obs = {"status": "malformed", "error": "malformed JSON-RPC error object"}
        elif http_status != 200:
            obs = {"status": "http_error", "error": f"HTTP {http_status}"}
        elif not isinstance(msg, dict) or "result" not in msg:
            obs = {"status": "malformed", "error": "not a JSON-RPC envelope with a result"}
        else:
            try:
                obs = {"status": "ok", "result": msg["result"] if extract is None else extract(msg["result"])}
            except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                obs = {"status": "malformed", "error": _short(f"bad result: {exc}")}
    return _with_body_evidence(obs, http_status, body)


class AuditHttpClient:
    """Shared limits of every audit call in one epoch: deadline, size cap, connections, large buffers."""

    def __init__(self, *, request_deadline_s: float = 2.0, max_response_bytes: int = DEFAULT_MAX_RESPONSE,
                 max_connections: int = 128, large_slots: int = 8, origin: float | None = None):
        if request_deadline_s <= 0 or max_response_bytes <= 0 or max_connections <= 0 or large_slots <= 0:
            raise ValueError("deadline, size cap, connection limit and large slots must be positive")
        self.request_deadline_s = request_deadline_s
        self.max_response_bytes = max_response_bytes
        self.connections = asyncio.Semaphore(max_connections)
        self.large = asyncio.Semaphore(large_slots)
        self.origin = time.monotonic() if origin is None else origin
        self._ssl = None

    def ssl_context(self):
        """The TLS context for https targets, made on first use (the ssl module is not small)."""
        if self._ssl is None:
            import ssl

            self._ssl = ssl.create_default_context()
        return self._ssl

    def session(self, url: str) -> Session:
        return Session(self, url)


class Session:
    """One keep-alive connection to one target; holds a connection slot while open (``async with``)."""

    def __init__(self, client: AuditHttpClient, url: str):
        self.client = client
        self.endpoint: Endpoint | None = None
        self.endpoint_error = ""
        try:
            self.endpoint = Endpoint.parse(url)
        except ValueError as exc:
            self.endpoint_error = _short(f"bad endpoint URL: {exc}")
        self._ids = itertools.count(1)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Session:
        await self.client.connections.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._close()
        self.client.connections.release()

    def _close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.transport.abort()  # do not wait for a misbehaving peer to acknowledge a close
            except Exception:
                pass
        self._reader = self._writer = None

    async def call(self, method: str, params: list | None = None, extract: Extract | None = None,
                   deadline_at: float | None = None) -> dict[str, Any]:
        """One JSON-RPC call as an Observation; bounded by the request deadline and by ``deadline_at``
        (a ``time.monotonic()`` instant, e.g. the end of the audit's time budget)."""
        params = [] if params is None else params
        obs: dict[str, Any] = {"method": method, "params": params}
        req_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params},
                          separators=(",", ":")).encode()
        return await self._request(obs, None, body, lambda status, payload: classify_body(status, payload, req_id,
                                                                                          extract), deadline_at)

    async def post_json(self, path: str, payload: Any, extract: Extract | None = None,
                        deadline_at: float | None = None) -> dict[str, Any]:
        """One plain JSON POST (e.g. an OpenAI-compatible API) to ``path`` as an Observation: ``ok`` with the
        ``extract``-ed JSON answer, or the failure status; an HTTP error keeps the status code."""
        obs: dict[str, Any] = {"method": "POST " + path}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await self._request(obs, path, body, lambda status, data: classify_json(status, data, extract),
                                   deadline_at)

    async def post_body(self, path: str, body: bytes, classify, deadline_at: float | None = None) -> dict[str, Any]:
        """One POST of exactly ``body`` (JSON) to ``path`` as an Observation; ``classify(http_status, body)`` gives
        its status and kept result (a signed exchange needs the exact bytes sent and received)."""
        obs: dict[str, Any] = {"method": "POST " + path}
        return await self._request(obs, path, body, classify, deadline_at)

    async def get(self, path: str, classify, deadline_at: float | None = None) -> dict[str, Any]:
        """One GET of ``path`` (with its query string) as an Observation; ``classify(http_status, body)`` gives
        its status and kept result (e.g. ``classify_envelope`` for a URI-style JSON-RPC server)."""
        obs: dict[str, Any] = {"method": "GET " + path}
        return await self._request(obs, path, b"", classify, deadline_at, verb="GET")

    async def _request(self, obs: dict[str, Any], path: str | None, body: bytes, classify,
                       deadline_at: float | None, verb: str = "POST") -> dict[str, Any]:
        client = self.client
        start = time.monotonic()
        obs["started_ms"] = _ms(start - client.origin)
        timeout = client.request_deadline_s
        if deadline_at is not None:
            timeout = min(timeout, deadline_at - start)
        ep = self.endpoint
        if ep is None:
            obs.update(elapsed_ms=0, status="refused", error=self.endpoint_error)
            return obs
        if timeout <= 0:
            obs.update(elapsed_ms=0, status="timeout", error="the audit's time budget was spent before this call",
                       allowed_ms=0)
            return obs
        target = ep.target if path is None else ep.target.rstrip("/") + path
        if verb == "GET":
            request = f"GET {target} HTTP/1.1\r\nHost: {ep.host_header}\r\nAccept: application/json\r\n\r\n".encode()
        else:
            request = (f"POST {target} HTTP/1.1\r\nHost: {ep.host_header}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        keep = False
        try:
            async with asyncio.timeout(timeout):
                http_status, keep, payload = await self._exchange(request)
            obs.update(classify(http_status, payload))
        except TimeoutError:
            obs.update(status="timeout", error=f"no complete answer within {_ms(timeout)} ms", allowed_ms=_ms(timeout))
        except ResponseError as exc:
            obs.update(status=exc.status, error=_short(exc.error))
            if exc.size or exc.sha256:
                obs["size"] = exc.size
            if exc.sha256:
                obs["sha256"] = exc.sha256
        except ConnectionRefusedError as exc:
            obs.update(status="refused", error=_short(f"connection refused: {exc.strerror or exc}"))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            obs.update(status="reset", error=_short(f"connection lost: {type(exc).__name__}"))
        except OSError as exc:  # unreachable network, DNS failure, ...
            obs.update(status="refused", error=_short(f"cannot connect: {exc.strerror or exc}"))
        finally:
            if not keep:
                self._close()
        obs["elapsed_ms"] = _ms(time.monotonic() - start)
        return obs

    async def _exchange(self, request: bytes) -> tuple[int, bool, bytes]:
        if self._writer is not None:  # a kept-alive connection: the server may have closed it meanwhile
            try:
                return await self._roundtrip(request)
            except ResponseError as exc:
                if exc.status != "reset":
                    raise
            except ConnectionError:
                pass
            self._close()
        ep = self.endpoint
        assert ep is not None
        tls = self.client.ssl_context() if ep.scheme == "https" else None
        self._reader, self._writer = await asyncio.open_connection(
            ep.host, ep.port, limit=HEADER_LIMIT, ssl=tls, server_hostname=ep.host if tls else None)
        return await self._roundtrip(request)

    async def _roundtrip(self, request: bytes) -> tuple[int, bool, bytes]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(request)
        await self._writer.drain()
        return await read_response(self._reader, self.client.max_response_bytes, self.client.large)


# ------------------------------------------------------------------------ what audits do with observations


def last_attempts(observations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last attempt of each named call (observations carry a ``call`` name and an ``attempt`` number)."""
    out: dict[str, dict[str, Any]] = {}
    for o in observations:
        out[o["call"]] = o
    return out


def describe(o: dict[str, Any]) -> str:
    """One line of a check's detail for an observation that went wrong."""
    text = f"{o['call']} ({o['method']}): {o['status']}"
    if o.get("error"):
        text += f": {o['error']}"
    if o["status"] != "ok" and "sha256" in o:
        text += f" [{o.get('size', '?')} bytes, sha256 {o['sha256']}]"
    return text + f" after {o['elapsed_ms']} ms, attempt {o['attempt']}"


async def call_with_retry(session: Session, record: list, values: dict, call: str, method: str, params: list,
                          extract: Extract | None, deadline_at: float, retry_pause_s: float) -> bool:
    """One named call, retried once after a transient failure (never after garbage); every attempt is
    appended to ``record``, a success's kept result stored in ``values[call]``. True if it succeeded."""
    for attempt in (1, 2):
        obs = await session.call(method, params, extract, deadline_at)
        obs["call"] = call
        obs["attempt"] = attempt
        record.append(obs)
        if obs["status"] == "ok":
            values[call] = obs.get("result")
            return True
        if obs["status"] in GARBAGE or attempt == 2:
            return False
        pause = min(retry_pause_s, deadline_at - time.monotonic())
        if pause <= 0:
            return False
        await asyncio.sleep(pause)
    return False  # pragma: no cover


def epoch_client(policy: Any, origin: float) -> AuditHttpClient:
    """The client of one epoch's audits from a plug-in policy with ``request_deadline_ms``,
    ``max_response_bytes`` and ``max_connections``; observation times count from ``origin``."""
    return AuditHttpClient(request_deadline_s=policy.request_deadline_ms / 1000,
                           max_response_bytes=policy.max_response_bytes, max_connections=policy.max_connections,
                           origin=origin)
