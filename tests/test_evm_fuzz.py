"""Hostile targets against the audit's HTTP client and result parsers: fuzzed bytes, truncation, huge numbers,
wrong types, a gigabyte, a one-byte-a-second trickle, silence. Every answer must become a classified Observation,
and the auditor must end within its deadline with its memory in budget."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment_node.audits.base import Target
from alignment_node.audits.evm import EvmAuditor, evm_identity, parse_block, parse_block_or_none, parse_quantity
from alignment_node.audits.http import STATUSES, AuditHttpClient, ResponseError, classify_body, read_response
from alignment_node.protocol import FAULT, KIND_EVM_RPC, UNREACHABLE

IDENTITY = evm_identity(31337, bytes(32))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def http_response(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
        status, len(body), extra) + body


def observe_bytes(data: bytes, extract=None, max_bytes: int = 4096) -> dict:
    """What the client makes of ``data`` arriving on a connection that then closes (same code path as a call)."""

    async def go():
        reader = asyncio.StreamReader(limit=16 * 1024)
        reader.feed_data(data)
        reader.feed_eof()
        try:
            status, _, body = await read_response(reader, max_bytes, asyncio.Semaphore(1))
        except ResponseError as exc:
            return {"status": exc.status, "error": exc.error}
        return classify_body(status, body, 1, extract)

    return asyncio.run(go())


def vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------------------------------- parsers


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_become_a_classified_observation(data):
    assert observe_bytes(data)["status"] in STATUSES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"200 OK", b"500 Oops", b"404 Not Found", b"204 No Content"]))
def test_arbitrary_bodies_in_valid_framing_are_classified(body, status):
    obs = observe_bytes(http_response(body, status), parse_quantity)
    assert obs["status"] in STATUSES
    assert obs["status"] != "ok" or isinstance(obs["result"], int)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([parse_quantity, parse_block, parse_block_or_none, None]))
def test_wrong_types_in_the_result_are_malformed_not_exceptions(result, extract):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()
    obs = observe_bytes(http_response(body), extract)
    assert obs["status"] in ("ok", "malformed")
    if obs["status"] == "ok" and extract is None:  # kept verbatim only if small and float-free
        assert "result" in obs or {"result_sha256", "result_size"} <= obs.keys()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_truncated_answer_is_never_ok(data):
    block = {"number": "0x10", "hash": "0x" + "ab" * 32, "timestamp": "0x5f5e100", "extra": "x" * 50}
    whole = http_response(json.dumps({"jsonrpc": "2.0", "id": 1, "result": block}).encode())
    assert observe_bytes(whole, parse_block)["status"] == "ok"
    cut = data.draw(st.integers(0, len(whole) - 1))
    assert observe_bytes(whole[:cut], parse_block)["status"] in ("reset", "malformed")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(65, 3000), st.sampled_from(["f", "0", "9"]))
def test_huge_numbers_are_malformed(digits, digit):
    for result in ("0x" + digit * digits, {"number": "0x" + digit * digits, "hash": "0x" + "00" * 32,
                                           "timestamp": "0x1"}):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()
        extract = parse_quantity if isinstance(result, str) else parse_block
        assert observe_bytes(http_response(body), extract, 1 << 20)["status"] == "malformed"


def test_pathological_json_is_malformed():
    for body in (b"[" * 200_000, b'{"jsonrpc":"2.0","id":1,"result":' + b"9" * 5000 + b"}",
                 b'{"jsonrpc":"2.0","id":true,"result":"0x1"}', b'{"jsonrpc":"2.0","id":1}',
                 b'{"jsonrpc":"2.0","id":1,"error":"no"}', b"null"):
        assert observe_bytes(http_response(body), parse_quantity, 1 << 20)["status"] == "malformed", body[:40]
    assert observe_bytes(http_response(b'"\xff"'), parse_quantity)["status"] == "bad_utf8"
    assert observe_bytes(http_response(b"{}" * 3000))["status"] == "oversized"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}'
    assert observe_bytes(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(answer), answer), parse_quantity)["result"] == 42
    spaces = b"400\r\n" + b" " * 1024 + b"\r\n"
    assert observe_bytes(head + spaces * 5 + b"0\r\n\r\n")["status"] == "oversized"
    assert observe_bytes(head + b"zz\r\n")["status"] == "malformed"
    assert observe_bytes(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000 + b"\r\n")["status"] == "malformed"


# ------------------------------------------------------------------------------ hostile live targets


class HostileServer:
    """A loopback server whose ``behaviour(reader, writer)`` answers each connection."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sent = 0

    async def __aenter__(self):
        async def handle(reader, writer):
            try:
                await reader.readuntil(b"\r\n\r\n")
                await self.behaviour(self, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


async def stream_gigabyte(server, writer, header=b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30)):
    writer.write(header)
    chunk = b"7" * 65536
    while server.sent < 1 << 30:  # lazily, until the client hangs up
        writer.write(chunk)
        await writer.drain()
        server.sent += len(chunk)


async def stream_gigabyte_without_length(server, writer):
    await stream_gigabyte(server, writer, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")


async def trickle(server, writer):
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b" " * 40:
        writer.write(bytes([byte]))
        await writer.drain()
        server.sent += 1
        await asyncio.sleep(1.0)


async def silence(server, writer):
    await asyncio.sleep(3600)


async def hang_up(server, writer):
    pass


async def invalid_utf8(server, writer):
    writer.write(http_response(b'{"jsonrpc":"2.0","id":1,"result":"0x\xc3\x28"}'))
    await writer.drain()


def audit_one(behaviour, deadline_s: float = 4.0):
    """Audit one hostile target (its own only peer): (result, seconds taken, server, peak RSS growth in kB)."""

    async def go():
        async with HostileServer(behaviour) as server:
            target = Target(1, KIND_EVM_RPC, server.url, IDENTITY)
            auditor = EvmAuditor(request_deadline_ms=1000)
            started = time.monotonic()
            before = vm_rss_kb()
            peak = before

            async def sample():  # RSS falls back when big buffers are freed: watch it during the audit
                nonlocal peak
                while True:
                    peak = max(peak, vm_rss_kb())
                    await asyncio.sleep(0.002)

            sampler = asyncio.create_task(sample())
            results = await auditor.audit_epoch(1, [target], [target], deadline_s)
            sampler.cancel()
            return results[1], time.monotonic() - started, server, max(peak, vm_rss_kb()) - before

    return asyncio.run(go())


def test_a_gigabyte_answer_is_an_oversized_fault_and_memory_stays_small():
    for behaviour in (stream_gigabyte, stream_gigabyte_without_length):
        result, took, server, growth_kb = audit_one(behaviour)
        assert result.verdict == FAULT
        (obs,) = result.bundle["observations"]
        assert obs["status"] == "oversized" and obs["size"] > 1 << 20
        assert server.sent < 64 << 20  # the client stopped reading long before the gigabyte
        assert took < 4.0
        assert growth_kb < 20 * 1024, f"RSS grew by {growth_kb} kB"


def test_a_one_byte_per_second_trickle_ends_at_the_deadline_as_unreachable():
    result, took, server, growth_kb = audit_one(trickle)
    assert result.verdict == UNREACHABLE
    assert [(o["status"], o["attempt"]) for o in result.bundle["observations"]] == [("timeout", 1), ("timeout", 2)]
    assert all(o["elapsed_ms"] < 1200 for o in result.bundle["observations"])
    assert took < 4.0 and server.sent <= 6
    assert growth_kb < 20 * 1024


def test_silence_and_hang_ups_are_unreachable_and_invalid_utf8_is_a_fault():
    for behaviour, status in ((silence, "timeout"), (hang_up, "reset")):
        result, took, _, _ = audit_one(behaviour)
        assert result.verdict == UNREACHABLE and took < 4.0
        assert [o["status"] for o in result.bundle["observations"]] == [status, status]
    result, _, _, _ = audit_one(invalid_utf8)
    assert result.verdict == FAULT
    assert [o["status"] for o in result.bundle["observations"]] == ["bad_utf8"]


def test_a_refused_or_invalid_endpoint_is_unreachable():
    async def go(url):
        target = Target(1, KIND_EVM_RPC, url, IDENTITY)
        return (await EvmAuditor(request_deadline_ms=500).audit_epoch(1, [target], [target], 2.0))[1]

    for url in ("http://127.0.0.1:9", "ftp://example.invalid/", "not a url"):
        result = asyncio.run(go(url))
        assert result.verdict == UNREACHABLE, url
        assert {o["status"] for o in result.bundle["observations"]} == {"refused"}


def test_the_connection_limit_and_large_buffer_slots_are_released():
    async def go():
        async with HostileServer(stream_gigabyte_without_length) as server:
            client = AuditHttpClient(request_deadline_s=2.0, max_connections=2, large_slots=1)
            async def one():
                async with client.session(server.url) as s:
                    return await s.call("eth_chainId")
            observations = await asyncio.gather(*(one() for _ in range(6)))
            return observations, client

    observations, client = asyncio.run(go())
    assert [o["status"] for o in observations] == ["oversized"] * 6
    assert client.connections._value == 2 and client.large._value == 1


def test_deep_nesting_is_refused_even_with_a_raised_recursion_limit():
    """A target answering '[' x 200,000 must not be able to crash the node (C stack overflow in json)."""
    import sys

    import pytest

    from alignment_node import safejson

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        assert observe_bytes(http_response(b"[" * 200_000), parse_quantity, 1 << 20)["status"] == "malformed"
        with pytest.raises(safejson.TooDeep):
            safejson.loads(b"{" * 200_000)
    finally:
        sys.setrecursionlimit(old)
    assert safejson.loads(b'{"a":"[[[[[[[","b":[[[1]]]}') == {"a": "[[[[[[[", "b": [[[1]]]}
