"""A fault-injecting JSON-RPC proxy in front of an EVM node: one process per target, for audit tests.

    python -m alignment_node.devnet.faultproxy --upstream URL --port P --mode MODE [--k N] [--height H] [--delay S]

Modes (what a target doing it looks like to an auditor):

- ``honest``: forwards every call;
- ``down``: the process runs but does not listen (connections are refused);
- ``slow``: sleeps ``--delay`` seconds before each answer;
- ``lagging``: serves the upstream head minus ``--k`` blocks (``eth_blockNumber``, "latest"; later blocks are null);
- ``halted``: frozen at ``--height`` (default: the upstream head when the proxy starts);
- ``forked``: blocks above ``--height`` (default: the head at start) have different hashes (keccak of the real one);
- ``wrong-chain``: ``eth_chainId`` answers the upstream chain id + 1;
- ``garbage``: answers in turn malformed JSON, invalid UTF-8, and a multi-megabyte body;
- ``flaky``: drops the first ``--k`` (default 1) requests without an answer, then forwards.

Python API: ``with FaultProxyProcess(upstream_url, "lagging", k=20) as proxy: proxy.url``; ``start()`` returns once
the proxy listens, ``stop()`` terminates and reaps it. Stdlib only (asyncio streams) besides the project's RPC client.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from ..chain.keccak import keccak256
from ..chain.rpc import RpcClient, RpcError, RpcException, hex_int
from .processes import ServerProcess

__all__ = ["MODES", "FaultProxy", "FaultProxyProcess", "OVERSIZED_BYTES"]

MODES = ("honest", "down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage", "flaky")
OVERSIZED_BYTES = 4 << 20
_HEAD_TAGS = ("latest", "pending", "safe", "finalized")
_MAX_REQUEST_BYTES = 1 << 20


class FaultProxy:
    """The proxy's server: answers like its upstream, but for the fault of its mode."""

    def __init__(self, upstream: str, mode: str, k: int | None = None, height: int | None = None,
                 delay: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.k = k if k is not None else (1 if mode == "flaky" else 5)
        self.height = height
        self.delay = delay
        self.rpc = RpcClient(upstream, timeout=10.0)
        self.requests = 0

    async def serve(self, host: str, port: int) -> asyncio.Server | None:
        """Start listening (not in ``down`` mode); halted/forked learn their height first."""
        if self.mode in ("halted", "forked") and self.height is None:
            self.height = await self.rpc.block_number()
        if self.mode == "down":
            return None
        return await asyncio.start_server(self._handle, host, port, limit=64 * 1024)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or b"0")
                if length > _MAX_REQUEST_BYTES:
                    return
                body = await reader.readexactly(length)
                self.requests += 1
                n = self.requests
                if self.mode == "flaky" and n <= self.k:
                    writer.transport.abort()
                    return
                if self.mode == "slow":
                    await asyncio.sleep(self.delay)
                if self.mode == "garbage":
                    await self._garbage(writer, n)
                    continue
                try:
                    msg = json.loads(body)
                except ValueError:
                    payload = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
                else:
                    if isinstance(msg, list):
                        payload = [await self._answer(m) for m in msg]
                    else:
                        payload = await self._answer(msg)
                out = json.dumps(payload, separators=(",", ":")).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(out) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _garbage(self, writer: asyncio.StreamWriter, n: int) -> None:
        kind = (n - 1) % 3
        if kind == 0:
            body = b'{"jsonrpc":"2.0","id":1,"result":"0x'  # cut short
        elif kind == 1:
            body = b'{"jsonrpc":"2.0","id":1,"result":"\xff\xfe\xfa"}'
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % OVERSIZED_BYTES)
            chunk = b" " * 65536
            for _ in range(OVERSIZED_BYTES // len(chunk)):
                writer.write(chunk)
                await writer.drain()  # raises once the client hangs up
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                     + body)
        await writer.drain()

    async def _answer(self, msg: object) -> dict:
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        params = msg.get("params") or []
        try:
            result = await self._call(msg["method"], list(params) if isinstance(params, list) else params)
        except RpcError as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            return {"jsonrpc": "2.0", "id": msg.get("id"), "error": error}
        except RpcException as exc:
            return {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32603, "message": f"upstream: {exc}"}}
        return {"jsonrpc": "2.0", "id": msg.get("id"), "result": result}

    async def _call(self, method: str, params):
        mode = self.mode
        if mode == "wrong-chain" and method == "eth_chainId":
            return hex(hex_int(await self.rpc.request(method, params)) + 1)
        if mode in ("lagging", "halted"):
            top = self.height if mode == "halted" else max(0, await self.rpc.block_number() - self.k)
            if method == "eth_blockNumber":
                return hex(top)
            if method == "eth_getBlockByNumber" and params:
                tag = params[0]
                if tag in _HEAD_TAGS:
                    params = [hex(top), *params[1:]]
                elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > top:
                    return None
        result = await self.rpc.request(method, params)
        if (mode == "forked" and method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict)
                and hex_int(result.get("number", "0x0")) > self.height):
            result = dict(result, hash="0x" + keccak256(bytes.fromhex(result["hash"][2:])).hex())
        return result


async def _main(args: argparse.Namespace) -> None:
    proxy = FaultProxy(args.upstream, args.mode, args.k, args.height, args.delay)
    server = await proxy.serve(args.host, args.port)
    print(f"faultproxy mode={args.mode} {'down' if server is None else 'listening'} on {args.host}:{args.port}",
          flush=True)
    await asyncio.Event().wait()  # until terminated


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="faultproxy", description="A fault-injecting JSON-RPC proxy (one target).")
    p.add_argument("--upstream", required=True, help="the honest node's JSON-RPC URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=MODES, default="honest")
    p.add_argument("--k", type=int, help="lagging: blocks behind (default 5); flaky: requests dropped (default 1)")
    p.add_argument("--height", type=int, help="halted: frozen head; forked: last shared block (default: head at start)")
    p.add_argument("--delay", type=float, default=0.0, help="slow: seconds before each answer")
    try:
        asyncio.run(_main(p.parse_args(argv)))
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------------------ process API

class FaultProxyProcess(ServerProcess):
    """One proxy process on a loopback port. Context manager; also start()/stop()."""

    def __init__(self, upstream: str, mode: str = "honest", *, k: int | None = None, height: int | None = None,
                 delay: float | None = None, port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout: float = 10.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.upstream = upstream
        self.mode = mode
        self.k = k
        self.height = height
        self.delay = delay
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    name = "faultproxy"
    module = "alignment_node.devnet.faultproxy"

    @property
    def listens(self) -> bool:
        return self.mode != 'down'

    def _arguments(self) -> list[str]:
        return [ "--upstream", self.upstream, "--mode", self.mode,
                *self._options(("--k", self.k), ("--height", self.height), ("--delay", self.delay))]


if __name__ == "__main__":
    main()
