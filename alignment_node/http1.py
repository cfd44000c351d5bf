"""The HTTP/1.1 client side shared by the node's JSON-RPC client (``chain.rpc``) and the audits' bounded client
(``audits.http``): endpoint URL parsing and reading one response off an asyncio stream. Stdlib only; a leaf
module (it imports nothing of ours), so both packages can use it without an import cycle.

``read_response`` is strict (a status line ``HTTP/1.0`` or ``HTTP/1.1`` with a three-digit code, CRLF line ends,
``name: value`` headers, a decimal Content-Length, chunks followed by CRLF) and bounded: the header block by
the stream reader's buffer limit (``header_limit``, only named in messages), the body by ``max_bytes``. Bodies
larger than ``small_body_bytes`` are buffered only while holding a ``large`` slot, if one is given. With
``evidence`` the body is hashed as it arrives, and an oversized Content-Length is still read (not kept) up to
the cap so that the error can carry the size and SHA-256 of what the peer sent. Every failure raises
``ResponseError``; a connection error from the stream (reset, ...) propagates as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Endpoint", "ResponseError", "read_response", "SMALL_BODY_BYTES"]

SMALL_BODY_BYTES = 32 * 1024
_READ = 65536


@dataclass(frozen=True)
class Endpoint:
    """An http(s) URL split for a client: where to connect, the request target and Host header, and a
    ``label`` (scheme://host:port) safe to show, since the URL's path may carry credentials."""

    url: str
    scheme: str
    host: str
    port: int
    target: str
    host_header: str
    label: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL userinfo are not supported")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname
        host_header = f"[{host}]" if ":" in host else host
        if parts.port:
            host_header += f":{port}"
        return cls(url, parts.scheme, host, port, target, host_header, f"{parts.scheme}://{host_header}")


class ResponseError(Exception):
    """A response that is not a usable HTTP answer. ``status``: ``reset`` (the connection closed before any
    byte), ``malformed`` or ``oversized``; ``truncated``: the connection closed inside the body; ``size`` and
    ``sha256``: what was read, as evidence (when known)."""

    def __init__(self, status: str, error: str, size: int = 0, sha256: str | None = None, truncated: bool = False):
        super().__init__(error)
        self.status = status
        self.error = error
        self.size = size
        self.sha256 = sha256
        self.truncated = truncated


class _Body:
    """A response body read so far: hashed as it arrives (with evidence), buffered only up to the cap."""

    __slots__ = ("cap", "data", "digest", "size", "keep")

    def __init__(self, cap: int, evidence: bool):
        self.cap = cap
        self.data = bytearray()
        self.digest = hashlib.sha256() if evidence else None
        self.size = 0
        self.keep = True

    def add(self, piece: bytes) -> None:
        if self.digest is not None:
            self.digest.update(piece)
        self.size += len(piece)
        if self.keep:
            if self.size > self.cap:
                raise self.oversized(f"response body larger than {self.cap} bytes (stopped after {self.size})")
            self.data += piece

    def _error(self, status: str, error: str, truncated: bool = False) -> ResponseError:
        sha = self.digest.hexdigest() if self.digest is not None else None
        return ResponseError(status, error, self.size, sha, truncated)

    def oversized(self, error: str) -> ResponseError:
        return self._error("oversized", error)

    def malformed(self, error: str) -> ResponseError:
        return self._error("malformed", error)

    def truncated(self, error: str) -> ResponseError:
        return self._error("malformed", error, truncated=True)


def _evidence(data: bytes, evidence: bool) -> str | None:
    return hashlib.sha256(data).hexdigest() if evidence else None


async def read_response(reader: asyncio.StreamReader, max_bytes: int, large: asyncio.Semaphore | None = None, *,
                        header_limit: int, small_body_bytes: int = SMALL_BODY_BYTES,
                        evidence: bool = True) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.x response: (HTTP status, keep-alive, body); ResponseError if it is not one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ResponseError("reset", "connection closed before a response") from None
        raise ResponseError("malformed", f"connection closed inside the HTTP header ({len(exc.partial)} bytes)",
                            len(exc.partial), _evidence(exc.partial, evidence)) from None
    except (asyncio.LimitOverrunError, ValueError):
        raise ResponseError("malformed", f"HTTP header larger than {header_limit} bytes") from None
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not (len(parts[1]) == 3 and parts[1].isdigit()):
        raise ResponseError("malformed", f"malformed HTTP status line {bytes(lines[0][:60])!r}",
                            len(head), _evidence(head, evidence))
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise ResponseError("malformed", f"malformed HTTP header line {bytes(line[:60])!r}",
                                len(head), _evidence(head, evidence))
        headers[name.strip().lower()] = value.strip()
    keep_alive = parts[0] == b"HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    body = _Body(max_bytes, evidence)
    holding_large = False
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await reader.readuntil(b"\r\n")
                try:
                    n = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise body.malformed(f"malformed chunk size {bytes(size_line[:40])!r}") from None
                if n < 0:
                    raise body.malformed("negative chunk size")
                if n == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                while n:
                    if not holding_large and body.size + n > small_body_bytes and large is not None:
                        await large.acquire()
                        holding_large = True
                    piece = await reader.read(min(n, _READ))
                    if not piece:
                        raise body.truncated("connection closed inside a chunk")
                    body.add(piece)
                    n -= len(piece)
                if await reader.readexactly(2) != b"\r\n":
                    raise body.malformed("chunk not followed by CRLF")
        elif "content-length" in headers:
            text = headers["content-length"]
            if not text.isdigit() or len(text) > 18:
                raise body.malformed(f"malformed Content-Length {text[:40]!r}")
            remaining = int(text)
            if remaining > max_bytes:
                if evidence:  # hash (without keeping) what fits under the cap
                    body.keep = False
                    while body.size <= max_bytes:
                        piece = await reader.read(_READ)
                        if not piece:
                            break
                        body.add(piece)
                raise body.oversized(f"Content-Length {remaining} is larger than {max_bytes} bytes (read {body.size})")
            if remaining > small_body_bytes and large is not None:
                await large.acquire()
                holding_large = True
            while remaining:
                piece = await reader.read(min(remaining, _READ))
                if not piece:
                    raise body.truncated(f"connection closed {remaining} bytes before the end of the body")
                body.add(piece)
                remaining -= len(piece)
        else:  # no length: the body runs to the end of the connection
            keep_alive = False
            while True:
                if not holding_large and body.size >= small_body_bytes and large is not None:
                    await large.acquire()
                    holding_large = True
                piece = await reader.read(_READ)
                if not piece:
                    break
                body.add(piece)
        return status, keep_alive, bytes(body.data)
    except asyncio.IncompleteReadError:
        raise body.truncated("connection closed inside the body") from None
    except (asyncio.LimitOverrunError, ValueError):
        raise body.malformed(f"chunk header line longer than {header_limit} bytes") from None
    finally:
        if holding_large:
            large.release()
