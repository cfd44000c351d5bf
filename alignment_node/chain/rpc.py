"""A small asyncio JSON-RPC client over HTTP/1.1 (stdlib only: asyncio streams; responses are read by the
strict HTTP/1.1 reader shared with the audits, ``alignment_node.http1``).

- several endpoints, tried in turn: a connection error, timeout, HTTP failure or malformed/oversized
  answer moves to the next one (and the one that answers becomes the preferred endpoint);
- a JSON-RPC error object is an answer, not a failure: it raises `RpcError` at once;
- when no endpoint answers, `RpcUnavailable` lists what went wrong with each;
- every attempt is bounded by `timeout` seconds and every response by `max_response_bytes`;
- keep-alive connections are reused (a reused connection the server closed is retried once fresh).

Endpoint URLs may carry credentials in their path; messages show only scheme://host:port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any, Mapping, Sequence

from .. import http1, safejson
from ..http1 import Endpoint

__all__ = [
    "RpcClient",
    "RpcException",
    "RpcError",
    "RpcUnavailable",
    "RpcBadResponse",
    "ReceiptTimeout",
    "hex_int",
    "to_hex",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE = 8 * 1024 * 1024
_MAX_HEADER_BYTES = 64 * 1024
_IDLE_PER_ENDPOINT = 4


class RpcException(Exception):
    """Base of every error this module raises."""


class RpcError(RpcException):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None, method: str | None = None):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}RPC error {code}: {message}")

    @property
    def revert_data(self) -> bytes | None:
        """Revert bytes carried in `data` (a 0x string, or {"data": "0x.."} as some nodes nest it)."""
        d = self.data
        if isinstance(d, Mapping):
            d = d.get("data")
        if isinstance(d, str) and d.startswith("0x"):
            try:
                return bytes.fromhex(d[2:])
            except ValueError:
                return None
        return None


class RpcBadResponse(RpcException):
    """An endpoint answered something that is not a usable JSON-RPC response."""


class RpcUnavailable(RpcException):
    """No endpoint gave an answer. `errors` holds (endpoint, exception) for each attempt."""

    def __init__(self, message: str, errors: list[tuple[str, BaseException]]):
        self.errors = errors
        super().__init__(message)


class ReceiptTimeout(RpcException, TimeoutError):
    """A transaction was not mined within the wait."""

    def __init__(self, tx_hash: str, waited: float):
        self.tx_hash = tx_hash
        super().__init__(f"transaction {tx_hash} not mined after {waited:.1f}s")


def hex_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        return int(value, 16)
    raise RpcBadResponse(f"expected a hex quantity, got {value!r}")


def to_hex(value: int | bytes) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return hex(value)


class _ConnectionClosed(Exception):
    """A reused connection was closed by the server before any reply (safe to retry)."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


class RpcClient:
    """JSON-RPC over HTTP with failover. Use as ``async with RpcClient([...]) as rpc:`` or call close()."""

    def __init__(
        self,
        urls: str | Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE,
    ):
        if isinstance(urls, str):
            urls = [urls]
        if not urls:
            raise ValueError("at least one RPC endpoint is needed")
        self.endpoints = [Endpoint.parse(u) for u in urls]
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._preferred = 0
        self._ids = itertools.count(1)
        self._idle: dict[int, list[_Conn]] = {i: [] for i in range(len(self.endpoints))}
        self._ssl = None
        self._chain_id: int | None = None

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for conns in self._idle.values():
            while conns:
                conns.pop().close()

    # --------------------------------------------------------------------------------- transport

    async def request(self, method: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """Send one JSON-RPC call; the `result`, or RpcError / RpcUnavailable."""
        req_id = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": req_id, "method": method, "params": list(params) if not isinstance(params, Mapping) else params},
            separators=(",", ":"),
        ).encode()
        errors: list[tuple[str, BaseException]] = []
        n = len(self.endpoints)
        for k in range(n):
            idx = (self._preferred + k) % n
            ep = self.endpoints[idx]
            try:
                async with asyncio.timeout(self.timeout):
                    status, payload = await self._exchange(idx, ep, body)
            except TimeoutError:
                errors.append((ep.label, TimeoutError(f"no answer within {self.timeout:g}s")))
                continue
            except (OSError, asyncio.IncompleteReadError, _ConnectionClosed) as exc:
                errors.append((ep.label, ConnectionError(f"connection failed: {exc or type(exc).__name__}")))
                continue
            except RpcBadResponse as exc:
                errors.append((ep.label, exc))
                continue
            try:
                result = self._parse(payload, status, req_id, method)
            except RpcBadResponse as exc:
                errors.append((ep.label, exc))
                continue
            self._preferred = idx
            return result
        detail = "; ".join(f"{label}: {exc}" for label, exc in errors)
        err = RpcUnavailable(f"{method}: no RPC endpoint answered ({detail})", errors)
        raise err from errors[-1][1]

    def _parse(self, payload: bytes, status: int, req_id: int, method: str) -> Any:
        try:
            msg = safejson.loads(payload)
        except (ValueError, UnicodeDecodeError):
            if status != 200:
                raise RpcBadResponse(f"HTTP {status}") from None
            raise RpcBadResponse(f"malformed JSON in response ({len(payload)} bytes)") from None
        if not isinstance(msg, dict):
            raise RpcBadResponse("response is not a JSON-RPC object")
        err = msg.get("error")
        if err is not None:
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise RpcBadResponse("malformed JSON-RPC error object")
            raise RpcError(err["code"], str(err.get("message", "")), err.get("data"), method)
        if status != 200:
            raise RpcBadResponse(f"HTTP {status}")
        if msg.get("id") != req_id:
            raise RpcBadResponse(f"response id {msg.get('id')!r} does not match request id {req_id}")
        if "result" not in msg:
            raise RpcBadResponse("JSON-RPC response has neither result nor error")
        return msg["result"]

    async def _open(self, ep: Endpoint) -> _Conn:
        ssl_ctx = None
        if ep.scheme == "https":
            if self._ssl is None:
                import ssl  # only when needed: it is not small

                self._ssl = ssl.create_default_context()
            ssl_ctx = self._ssl
        reader, writer = await asyncio.open_connection(
            ep.host, ep.port, ssl=ssl_ctx, server_hostname=ep.host if ssl_ctx else None, limit=_MAX_HEADER_BYTES
        )
        return _Conn(reader, writer)

    async def _exchange(self, idx: int, ep: Endpoint, body: bytes) -> tuple[int, bytes]:
        idle = self._idle[idx]
        if idle:
            conn = idle.pop()
            try:
                return await self._roundtrip(idx, conn, ep, body, reused=True)
            except _ConnectionClosed:
                pass  # the server dropped the idle connection: one fresh attempt below
        conn = await self._open(ep)
        return await self._roundtrip(idx, conn, ep, body, reused=False)

    async def _roundtrip(self, idx: int, conn: _Conn, ep: Endpoint, body: bytes, reused: bool) -> tuple[int, bytes]:
        ok = False
        try:
            head = (
                f"POST {ep.target} HTTP/1.1\r\nHost: {ep.host_header}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
            ).encode()
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
                status, keep_alive, payload = await http1.read_response(
                    conn.reader, self.max_response_bytes, header_limit=_MAX_HEADER_BYTES, evidence=False
                )
            except (ConnectionError, OSError):
                if reused:
                    raise _ConnectionClosed() from None
                raise
            except http1.ResponseError as exc:
                if exc.status == "reset":
                    if reused:
                        raise _ConnectionClosed() from None
                    raise ConnectionError("connection closed before a response") from None
                if exc.truncated:
                    raise ConnectionError(exc.error) from None
                if exc.status == "oversized":
                    raise RpcBadResponse(exc.error) from None
                raise RpcBadResponse(f"malformed HTTP response: {exc.error}") from None
            ok = keep_alive
            return status, payload
        finally:
            if ok and len(self._idle[idx]) < _IDLE_PER_ENDPOINT:
                self._idle[idx].append(conn)
            else:
                conn.close()

    # ---------------------------------------------------------------------------------- methods

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = hex_int(await self.request("eth_chainId"))
        return self._chain_id

    async def block_number(self) -> int:
        return hex_int(await self.request("eth_blockNumber"))

    async def get_block(self, block: int | str = "latest", full: bool = False) -> dict | None:
        return await self.request("eth_getBlockByNumber", [_block(block), full])

    async def get_balance(self, address: str, block: int | str = "latest") -> int:
        return hex_int(await self.request("eth_getBalance", [address, _block(block)]))

    async def get_code(self, address: str, block: int | str = "latest") -> bytes:
        return _bytes(await self.request("eth_getCode", [address, _block(block)]))

    async def get_transaction_count(self, address: str, block: int | str = "pending") -> int:
        return hex_int(await self.request("eth_getTransactionCount", [address, _block(block)]))

    async def call(self, tx: Mapping[str, Any], block: int | str = "latest") -> bytes:
        """eth_call; a revert raises RpcError whose `revert_data` holds the revert bytes."""
        return _bytes(await self.request("eth_call", [_tx_params(tx), _block(block)]))

    async def estimate_gas(self, tx: Mapping[str, Any], block: int | str | None = None) -> int:
        params: list[Any] = [_tx_params(tx)]
        if block is not None:
            params.append(_block(block))
        return hex_int(await self.request("eth_estimateGas", params))

    async def send_raw_transaction(self, raw: bytes) -> str:
        return await self.request("eth_sendRawTransaction", [to_hex(raw)])

    async def get_transaction_receipt(self, tx_hash: str) -> dict | None:
        return await self.request("eth_getTransactionReceipt", [tx_hash])

    async def get_transaction(self, tx_hash: str) -> dict | None:
        return await self.request("eth_getTransactionByHash", [tx_hash])

    async def wait_for_receipt(self, tx_hash: str, timeout: float = 60.0, poll_interval: float = 0.5) -> dict:
        """Poll until the transaction is mined; ReceiptTimeout after `timeout` seconds. Transient
        endpoint failures while polling are retried until the deadline."""
        start = time.monotonic()
        delay = min(0.02, poll_interval)
        while True:
            try:
                receipt = await self.get_transaction_receipt(tx_hash)
            except RpcUnavailable:
                receipt = None
                if time.monotonic() - start >= timeout:
                    raise
            if receipt is not None and receipt.get("blockNumber") is not None:
                return receipt
            waited = time.monotonic() - start
            if waited >= timeout:
                raise ReceiptTimeout(tx_hash, waited)
            await asyncio.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(delay * 2, poll_interval)

    async def get_logs(
        self,
        address: str | Sequence[str] | None = None,
        topics: Sequence[Any] | None = None,
        from_block: int | str = "earliest",
        to_block: int | str = "latest",
        block_hash: str | None = None,
    ) -> list[dict]:
        flt: dict[str, Any] = {}
        if address is not None:
            flt["address"] = address if isinstance(address, str) else list(address)
        if topics is not None:
            flt["topics"] = [_topic(t) for t in topics]
        if block_hash is not None:
            flt["blockHash"] = block_hash
        else:
            flt["fromBlock"] = _block(from_block)
            flt["toBlock"] = _block(to_block)
        return await self.request("eth_getLogs", [flt])

    async def fee_history(
        self, block_count: int, newest: int | str = "latest", percentiles: Sequence[float] = ()
    ) -> dict:
        return await self.request("eth_feeHistory", [hex(block_count), _block(newest), list(percentiles)])

    async def gas_price(self) -> int:
        return hex_int(await self.request("eth_gasPrice"))

    async def max_priority_fee_per_gas(self) -> int:
        return hex_int(await self.request("eth_maxPriorityFeePerGas"))

    async def suggest_fees(self, default_priority: int = 10**9) -> tuple[int, int]:
        """(max_fee_per_gas, max_priority_fee_per_gas): twice the next base fee plus the tip, so the
        transaction stays valid through several full blocks."""
        history = await self.fee_history(1, "latest", [50.0])
        base_fees = history.get("baseFeePerGas") or []
        base = hex_int(base_fees[-1]) if base_fees else await self.gas_price()
        try:
            tip = await self.max_priority_fee_per_gas()
        except RpcError:
            rewards = history.get("reward") or []
            tip = hex_int(rewards[-1][0]) if rewards and rewards[-1] else default_priority
        return 2 * base + tip, tip


def _topic(t: Any) -> Any:
    """A topic filter entry: None (any), one topic, or a list of alternatives; bytes become hex."""
    if isinstance(t, (bytes, bytearray)):
        return to_hex(t)
    if isinstance(t, (list, tuple)):
        return [_topic(x) for x in t]
    return t


def _block(block: int | str) -> str:
    if isinstance(block, bool):
        raise TypeError("block must be an int or a tag")
    if isinstance(block, int):
        return hex(block)
    return block


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcBadResponse(f"expected hex data, got {str(value)[:40]!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcBadResponse("malformed hex data") from None


def _tx_params(tx: Mapping[str, Any]) -> dict[str, Any]:
    """Transaction object for eth_call/eth_estimateGas: ints and bytes become hex strings."""
    out: dict[str, Any] = {}
    for k, v in tx.items():
        if v is None:
            continue
        if isinstance(v, (bytes, bytearray)):
            out[k] = "0x" + bytes(v).hex()
        elif isinstance(v, int) and not isinstance(v, bool):
            out[k] = hex(v)
        else:
            out[k] = v
    return out
