"""The shared HTTP/1.1 response reader (``alignment_node.http1``): framing, bounds and the evidence it keeps."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from alignment_node.http1 import Endpoint, ResponseError, read_response

LIMIT = 1024


def read(data: bytes, max_bytes: int = 256, evidence: bool = True, large: bool = False):
    """read_response over ``data`` arriving on a connection that then closes."""

    async def go():
        reader = asyncio.StreamReader(limit=LIMIT)
        reader.feed_data(data)
        reader.feed_eof()
        sem = asyncio.Semaphore(1) if large else None
        result = await read_response(reader, max_bytes, sem, header_limit=LIMIT, small_body_bytes=16,
                                     evidence=evidence)
        if sem is not None:
            assert not sem.locked()  # the large-body slot is given back
        return result

    return asyncio.run(go())


def error(data: bytes, **kw) -> ResponseError:
    with pytest.raises(ResponseError) as info:
        read(data, **kw)
    return info.value


@pytest.mark.parametrize("large", [False, True])
def test_content_length(large):
    body = b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}'
    status, keep, got = read(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), large=large)
    assert (status, keep, got) == (200, True, body)
    assert read(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno") == (404, False, b"no")
    assert read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == (200, False, b"")


@pytest.mark.parametrize("large", [False, True])
def test_chunked(large):
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n" + b"x" * 26 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    assert read(data, large=large) == (200, True, b"hello" + b"x" * 26)


def test_body_to_end_of_connection():
    assert read(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 100, large=True) == (200, False, b"y" * 100)


@pytest.mark.parametrize(
    "data, truncated",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", True),  # no last chunk
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX", False),  # chunk without CRLF
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", False),
        (b"HTTP/1.1 200 OK\r\nContent-Len", False),  # inside the header
        (b"HTTP/1.1 2000 OK\r\n\r\n", False),
        (b"HTTP/2 200 OK\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", False),
    ],
)
def test_truncated_and_malformed(data, truncated):
    exc = error(data)
    assert exc.status == "malformed"
    assert exc.truncated is truncated
    assert exc.sha256 is not None  # of what was read (of the header, or of the body so far)


def test_closed_before_any_byte_is_a_reset():
    exc = error(b"")
    assert (exc.status, exc.truncated, exc.size, exc.sha256) == ("reset", False, 0, None)


def test_oversized_header():
    exc = error(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 500 + b"\r\n")
    assert exc.status == "malformed" and f"larger than {LIMIT}" in exc.error
    exc = error(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b"0" * 2000 + b"\r\n")
    assert exc.status == "malformed" and "chunk header line longer" in exc.error


def test_oversized_body_keeps_evidence():
    sent = b"z" * 1000
    exc = error(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + sent)
    assert exc.status == "oversized" and "Content-Length 1000 is larger than 256" in exc.error
    assert exc.size == 1000 and exc.sha256 == hashlib.sha256(sent).hexdigest()  # read (not kept) as evidence
    exc = error(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"40\r\n" + b"a" * 64 + b"\r\n") * 5 + b"0\r\n\r\n")
    assert exc.status == "oversized" and exc.size == 320 and exc.sha256 == hashlib.sha256(b"a" * 320).hexdigest()
    exc = error(b"HTTP/1.1 200 OK\r\n\r\n" + b"b" * 300)
    assert exc.status == "oversized" and exc.size > 256


def test_without_evidence_nothing_is_hashed_or_drained():
    exc = error(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000, evidence=False)
    assert (exc.status, exc.size, exc.sha256) == ("oversized", 0, None)
    exc = error(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", evidence=False)
    assert exc.truncated and exc.sha256 is None
    assert error(b"garbage\r\n\r\n", evidence=False).sha256 is None


def test_endpoint_parse():
    ep = Endpoint.parse("https://[::1]:8545/key/abc?x=1")
    assert (ep.host, ep.port, ep.target, ep.host_header, ep.label) == ("::1", 8545, "/key/abc?x=1", "[::1]:8545",
                                                                       "https://[::1]:8545")
    assert Endpoint.parse("http://node").port == 80 and Endpoint.parse("http://node").target == "/"
    for bad in ("ftp://node", "http://user:pw@node", "node:80"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)
