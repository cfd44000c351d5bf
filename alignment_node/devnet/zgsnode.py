"""A reference 0G Storage node for the devnet: serves docs/spec/ZGS.md's JSON-RPC from files it was given, with faults.

    python -m alignment_node.devnet.zgsnode --rpc URL --flow ADDR --files DIR --port P --mode MODE \\
        [--shard-id I --num-shard N] [--lag BLOCKS] [--delay S] [--fraction F] [--host H]

One process per storage target. The node follows the chain itself: every 0.25 s it reads the head and the
flow's ``Submit`` logs up to ``head - lag`` (``zgs.flow.SubmissionIndex``). A submission whose file is in
``--files`` (named by its data root, hex without 0x, as ``devnet/storage.py`` writes it) and whose bytes
rebuild the on-chain root is held: finalized, and its data segments of the node's shard are served (flow
segment ``s = startPos // 1024 + i`` is held iff ``s % numShard == shardId``). A submission without its file
is known but not finalized. Only segment roots are kept in memory; segment bytes are read from the file
when asked.

Modes (what an auditor must catch, or must not flag):

- ``honest``; ``slow``: honest, sleeps ``--delay`` (default 0.1 s) before each answer; ``behind``: honest,
  ``--lag`` (default 20) blocks behind the chain and says so (``logSyncHeight``, ``nextTxSeq``);
- ``drop``: claims finalized, answers null for a deterministic ``--fraction`` (default 0.5) of its segments
  (those with ``keccak(root || index) < fraction``);
- ``corrupt``: flips a byte of every served segment (proof unchanged);
- ``wrong-index``: for segment ``i`` of a file of ``n > 1`` data segments serves segment ``(i + 1) % n``'s
  data and proof labelled ``i`` (``n == 1``: as ``corrupt``);
- ``wrong-root``: proofs are built over a segment tree with another segment's root altered, so they walk to a
  root that is not the data root;
- ``empty``: claims every known file finalized with every shard segment uploaded, serves null;
- ``wrong-flow``: ``networkIdentity.flowAddress`` is another address, otherwise honest;
- ``lying-lag``: follows the chain ``--lag`` (default 60) blocks behind but reports the head as its
  ``logSyncHeight``/``logSyncBlock``, with ``nextTxSeq`` and file infos of its lagged state;
- ``garbage``: answers, by request count in turn, invalid JSON; a status with numbers as strings and hex
  without 0x; a segment whose base64 does not decode; a segment longer than 256 KiB; a proof of 1,000
  levels; a chunked body streamed slowly forever.

Python API: ``with ZgsNodeProcess(rpc_url, flow, files_dir, "drop", shard=(1, 2), fraction=0.2) as n: n.url``.
Stdlib asyncio streams (HTTP/1.1 keep-alive, Content-Length) besides the project's RPC client.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import safejson
from ..chain.rpc import RpcClient, RpcException, hex_int
from ..zgs import merkle
from ..zgs.flow import Submission, SubmissionIndex
from .processes import ServerProcess

__all__ = ["MODES", "DEFAULT_LAG", "ZgsNode", "ZgsNodeProcess", "RpcFault", "GARBAGE_KINDS"]

log = logging.getLogger("alignment_node.devnet.zgsnode")

MODES = ("honest", "slow", "behind", "drop", "corrupt", "wrong-index", "wrong-root", "empty", "wrong-flow",
         "lying-lag", "garbage")
DEFAULT_LAG = {"behind": 20, "lying-lag": 60}
GARBAGE_KINDS = ("invalid-json", "strings", "bad-base64", "long-segment", "deep-proof", "endless")
P2P_PROTOCOL_VERSION = {"major": 0, "minor": 4, "build": 0}
POLL_SECONDS = 0.25
MAX_REQUEST_BYTES = 1 << 20
ENDLESS_SECONDS = 600.0  # the endless body gives up after this long even if the client never hangs up


class RpcFault(Exception):
    """A JSON-RPC error answer: -32602 invalid params, -32601 unknown method, -32603 internal."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(what: str) -> RpcFault:
    return RpcFault(-32602, f"Invalid params: {what}")


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 66 or value[:2] not in ("0x", "0X"):
        raise _invalid(f"{what} is not 0x + 64 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise _invalid(f"{what} is not 0x + 64 hex digits") from None


def _uint(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _invalid(f"{what} is not a non-negative integer")
    return value


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class _File:
    """A file on disk whose bytes rebuild its data root: where it is and its segment tree (roots only)."""

    path: Path
    size: int
    tree: merkle.SegmentTree

    def read_segment(self, index: int) -> bytes:
        start = index * merkle.SEGMENT
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(max(0, min(merkle.SEGMENT, self.size - start)))

    def read_chunks(self, start: int, end: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(start * merkle.CHUNK)
            return f.read(max(0, min(end * merkle.CHUNK, self.size) - start * merkle.CHUNK))


def _load_file(path: Path, size: int, root: bytes) -> _File | None:
    """The file at ``path`` if it has ``size`` bytes that rebuild ``root`` (runs in a worker thread)."""
    try:
        if path.stat().st_size != size:
            return None
        with open(path, "rb") as f:
            tree = merkle.SegmentTree(merkle.file_segment_roots(f, size))
    except (OSError, ValueError):
        return None
    return _File(path, size, tree) if tree.root == root else None


class ZgsNode:
    """The node's state (what it synced of the chain, the files it holds) and its JSON-RPC answers."""

    def __init__(self, rpc_url: str, flow: str, files_dir: str | Path, mode: str = "honest", *, shard_id: int = 0,
                 num_shard: int = 1, lag: int | None = None, delay: float | None = None,
                 fraction: float | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        if num_shard < 1 or num_shard & (num_shard - 1) or not 0 <= shard_id < num_shard:
            raise ValueError(f"shard {shard_id} of {num_shard}: numShard is a power of two above shardId")
        self.mode = mode
        self.flow = flow.lower()
        self.files_dir = Path(files_dir)
        self.shard_id, self.num_shard = shard_id, num_shard
        self.lag = lag if lag is not None else DEFAULT_LAG.get(mode, 0)
        self.delay = delay if delay is not None else 0.1
        self.fraction = fraction if fraction is not None else 0.5
        if self.lag < 0 or self.delay < 0 or not 0.0 <= self.fraction <= 1.0:
            raise ValueError("lag and delay are >= 0, fraction in [0, 1]")
        self.rpc = RpcClient(rpc_url, timeout=10.0)
        self.index = SubmissionIndex(self.flow)
        self.chain_id: int | None = None
        # Published state (changed only at the end of a sync round, so answers are always consistent).
        self.synced: tuple[int, str] | None = None  # (block, hash) the node processed up to
        self.head: tuple[int, str] | None = None  # the chain head at that round
        self.next_tx_seq = 0
        self.by_seq: dict[int, Submission] = {}
        self.by_root: dict[bytes, Submission] = {}  # first submission of each root
        self.flow_length = 0
        self.flow_digest = bytes(32)
        self.files: dict[tuple[bytes, int], _File | None] = {}  # (root, size) -> file, None: not held
        self._absent: set[tuple[bytes, int]] = set()  # not held because the file was not there (yet)
        self.requests = 0

    # ------------------------------------------------------------------------------- following the chain

    async def sync_once(self) -> None:
        """Read the chain up to ``head - lag``, load the new submissions' files, then publish."""
        if self.chain_id is None:
            self.chain_id = await self.rpc.chain_id()
        head_block = await self.rpc.get_block("latest")
        if not isinstance(head_block, dict):
            raise ValueError("no latest block")
        head = (hex_int(head_block["number"]), head_block["hash"])
        target = max(0, head[0] - self.lag)
        if target >= self.index.next_block:
            await self.index.update(self.rpc, target)
        if target == head[0]:
            synced = head
        else:
            block = await self.rpc.get_block(target)
            if not isinstance(block, dict):
                raise ValueError(f"no block {target}")
            synced = (target, block["hash"])
        new = [s for s in self.index.valid_until(target) if s.index not in self.by_seq]
        for s in new:
            await self._load(s)
        for key in list(self._absent):  # a file may arrive after its submission
            if (self.files_dir / key[0].hex()).is_file():
                self._absent.discard(key)
                self.files[key] = await asyncio.to_thread(_load_file, self.files_dir / key[0].hex(), key[1], key[0])
        for s in new:
            self.by_seq[s.index] = s
            self.by_root.setdefault(s.root, s)
            self.flow_length = max(self.flow_length, s.start_pos + s.entries)
            self.flow_digest = merkle.keccak(self.flow_digest + s.root)
        self.next_tx_seq = self.index.count_until(target)
        self.synced, self.head = synced, head

    async def _load(self, s: Submission) -> None:
        key = (s.root, s.length)
        if key not in self.files:
            path = self.files_dir / s.root.hex()
            if not path.is_file():
                self._absent.add(key)
            self.files[key] = await asyncio.to_thread(_load_file, path, s.length, s.root)

    async def follow(self) -> None:
        """Sync every POLL_SECONDS, forever; an unreachable or odd chain node is logged and retried."""
        while True:
            try:
                await self.sync_once()
            except (RpcException, OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("sync: %s", exc)
            await asyncio.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------------------------- custody

    def _file(self, s: Submission) -> _File | None:
        return self.files.get((s.root, s.length))

    def _in_shard(self, s: Submission, segment: int) -> bool:
        return (s.start_pos // merkle.SEGMENT_CHUNKS + segment) % self.num_shard == self.shard_id

    def _shard_segments(self, s: Submission) -> int:
        return sum(1 for i in range(s.segments) if self._in_shard(s, i))

    def _dropped(self, root: bytes, segment: int) -> bool:
        h = int.from_bytes(merkle.keccak(root + segment.to_bytes(8, "big"))[:8], "big")
        return h < self.fraction * (1 << 64)

    def finalized(self, s: Submission) -> bool:
        return self.mode == "empty" or self._file(s) is not None

    def file_info(self, s: Submission, need_available: bool = False) -> dict | None:
        fin = self.finalized(s)
        if need_available and not fin:
            return None
        tx = {"streamIds": [], "data": "0x", "dataMerkleRoot": _hex(s.root),
              "merkleNodes": [[h, _hex(r)] for r, h in s.nodes], "startEntryIndex": s.start_pos,
              "size": s.length, "seq": s.index}
        return {"tx": tx, "finalized": fin, "isCached": False,
                "uploadedSegNum": self._shard_segments(s) if fin else 0, "pruned": False}

    def _held(self, s: Submission, segment: int) -> _File | None:
        """The file, if the node serves ``segment`` of ``s`` in its mode."""
        f = self._file(s)
        if f is None or self.mode == "empty" or not self._in_shard(s, segment):
            return None
        if self.mode == "drop" and self._dropped(s.root, segment):
            return None
        return f

    def segment_with_proof(self, root: bytes, index: int) -> dict | None:
        s = self.by_root.get(root)
        if s is None:
            return None
        if index >= s.segments:
            raise _invalid(f"segment index {index} out of bound (the file has {s.segments} segments)")
        f = self._held(s, index)
        if f is None:
            return None
        mode, n = self.mode, s.segments
        if mode == "wrong-index" and n > 1:
            j = (index + 1) % n
            data, proof = f.read_segment(j), f.tree.proof(j)
        else:
            data, proof = f.read_segment(index), f.tree.proof(index)
        if mode == "corrupt" or (mode == "wrong-index" and n == 1):
            data = _flip(data)
        if mode == "wrong-root":
            leaves = list(f.tree.levels[0])
            if len(leaves) > 1:
                k = 1 if index == 0 else 0
                leaves[k] = merkle.keccak(leaves[k])
            else:
                leaves.append(merkle.keccak(leaves[0]))
            proof = merkle.SegmentTree(leaves).proof(index)
        return {"root": _hex(root), "data": base64.b64encode(data).decode(), "index": index,
                "proof": proof.as_json(), "fileSize": s.length}

    def download_segment(self, root: bytes, start: int, end: int) -> str | None:
        s = self.by_root.get(root)
        if s is None:
            return None
        chunks = merkle.num_chunks(s.length)
        if not start < end <= chunks or end - start > merkle.SEGMENT_CHUNKS:
            raise _invalid(f"chunks [{start}, {end}) of a file of {chunks} chunks (at most "
                           f"{merkle.SEGMENT_CHUNKS} at a time)")
        first, last = start // merkle.SEGMENT_CHUNKS, (end - 1) // merkle.SEGMENT_CHUNKS
        files = [self._held(s, i) for i in range(first, last + 1)]
        if any(f is None for f in files):
            return None
        data = files[0].read_chunks(start, end)
        if self.mode in ("corrupt", "wrong-index"):
            data = _flip(data)
        return base64.b64encode(data).decode()

    # ------------------------------------------------------------------------------------- JSON-RPC

    def status(self) -> dict:
        if self.synced is None or self.head is None or self.chain_id is None:
            raise RpcFault(-32603, "not synced with the chain yet")
        height, block = self.head if self.mode == "lying-lag" else self.synced
        flow = self.flow
        if self.mode == "wrong-flow":
            flow = "0x" + merkle.keccak(b"another flow" + bytes.fromhex(flow[2:]))[12:].hex()
        return {"connectedPeers": 0, "logSyncHeight": height, "logSyncBlock": block, "nextTxSeq": self.next_tx_seq,
                "networkIdentity": {"chainId": self.chain_id, "flowAddress": flow,
                                    "p2pProtocolVersion": dict(P2P_PROTOCOL_VERSION)}}

    def call(self, method: str, params: Any) -> Any:
        """The result of one call, or RpcFault."""
        if params is None:
            params = []
        if not isinstance(params, list):
            raise _invalid("positional params (a list) expected")

        def arity(lo: int, hi: int | None = None) -> None:
            if not lo <= len(params) <= (lo if hi is None else hi):
                raise _invalid(f"{method} takes {lo if hi is None or hi == lo else f'{lo} to {hi}'} "
                               f"params, got {len(params)}")

        if method == "zgs_getStatus":
            arity(0)
            return self.status()
        if method == "zgs_getShardConfig":
            arity(0)
            return {"shardId": self.shard_id, "numShard": self.num_shard}
        if method == "zgs_getFileInfo":
            arity(1, 2)
            root = _hex32(params[0], "dataRoot")
            need = params[1] if len(params) > 1 else False
            if not isinstance(need, bool):
                raise _invalid("needAvailable is not a boolean")
            s = self.by_root.get(root)
            return self.file_info(s, need) if s is not None else None
        if method == "zgs_getFileInfoByTxSeq":
            arity(1)
            s = self.by_seq.get(_uint(params[0], "txSeq"))
            return self.file_info(s) if s is not None else None
        if method == "zgs_checkFileFinalized":
            arity(1)
            key = params[0]
            s = self.by_root.get(_hex32(key, "root")) if isinstance(key, str) else self.by_seq.get(_uint(key, "txSeq"))
            return self.finalized(s) if s is not None else None
        if method == "zgs_downloadSegment":
            arity(3)
            return self.download_segment(_hex32(params[0], "root"), _uint(params[1], "startChunk"),
                                         _uint(params[2], "endChunk"))
        if method == "zgs_downloadSegmentWithProof":
            arity(2)
            return self.segment_with_proof(_hex32(params[0], "root"), _uint(params[1], "segmentIndex"))
        if method == "zgs_getFlowContext":
            arity(0)
            return [_hex(self.flow_digest), self.flow_length]
        raise RpcFault(-32601, f"Method not found: {method[:80]}")

    def answer(self, msg: Any) -> dict:
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
        try:
            result = self.call(msg["method"], msg.get("params"))
        except RpcFault as exc:
            return {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a bug or an unreadable file: an internal error, never a dead node
            log.exception("answering %s", msg.get("method"))
            return {"jsonrpc": "2.0", "id": msg.get("id"),
                    "error": {"code": -32603, "message": f"Internal error: {type(exc).__name__}"}}
        return {"jsonrpc": "2.0", "id": msg.get("id"), "result": result}

    # ----------------------------------------------------------------------------------------- HTTP

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.1 connection: POSTed JSON-RPC bodies, answered in order, kept alive."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip() or b"0")
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if not 0 <= length <= MAX_REQUEST_BYTES:
                    return
                body = await reader.readexactly(length)
                self.requests += 1
                if self.mode == "slow" and self.delay:
                    await asyncio.sleep(self.delay)
                if self.mode == "garbage":
                    if not await self._garbage(writer, body, self.requests):
                        return
                    continue
                try:
                    msg = safejson.loads(body)
                except (ValueError, UnicodeDecodeError):
                    payload: Any = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
                else:
                    if isinstance(msg, list):
                        payload = [self.answer(m) for m in msg[:100]]
                    else:
                        payload = self.answer(msg)
                await _respond(writer, json.dumps(payload, separators=(",", ":")).encode(), close)
                if close:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _garbage(self, writer: asyncio.StreamWriter, body: bytes, n: int) -> bool:
        """Answer the ``n``-th request with garbage kind ``(n - 1) % 6``; False once the connection is done."""
        try:
            msg = safejson.loads(body)
        except (ValueError, UnicodeDecodeError):
            msg = None
        req_id = msg.get("id") if isinstance(msg, dict) else None
        params = msg.get("params") if isinstance(msg, dict) else None
        root = params[0] if isinstance(params, list) and params and isinstance(params[0], str) else _hex(bytes(32))
        kind = GARBAGE_KINDS[(n - 1) % len(GARBAGE_KINDS)]
        if kind == "invalid-json":
            await _respond(writer, b'{"jsonrpc":"2.0","id":%s,"result":{"logSyncHeight":' % json.dumps(req_id).encode())
            return True
        if kind == "endless":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"1\r\n{\r\n")
            deadline = time.monotonic() + ENDLESS_SECONDS
            while time.monotonic() < deadline and not writer.is_closing():
                writer.write(b"1\r\n \r\n")
                await writer.drain()  # raises once the client hangs up
                await asyncio.sleep(0.05)
            return False
        if kind == "strings":
            height, block = self.synced or (0, _hex(bytes(32)))
            result: Any = {"connectedPeers": "0", "logSyncHeight": str(height), "logSyncBlock": block[2:],
                           "nextTxSeq": str(self.next_tx_seq),
                           "networkIdentity": {"chainId": str(self.chain_id or 0), "flowAddress": self.flow[2:],
                                               "p2pProtocolVersion": dict(P2P_PROTOCOL_VERSION)}}
        else:
            data = b"\x00" * 256
            proof: dict = {"lemma": [_hex(merkle.segment_root(data, 1))], "path": []}
            b64 = base64.b64encode(data).decode()
            if kind == "bad-base64":
                b64 = "*not base64*" + b64[12:]
            elif kind == "long-segment":
                b64 = base64.b64encode(bytes(merkle.SEGMENT + merkle.CHUNK)).decode()
            elif kind == "deep-proof":
                proof = {"lemma": [_hex(bytes(32))] * 1002, "path": [True] * 1000}
            result = {"root": root[:66], "data": b64, "index": 0, "proof": proof, "fileSize": 256}
        out = json.dumps({"jsonrpc": "2.0", "id": req_id, "result": result}, separators=(",", ":")).encode()
        await _respond(writer, out)
        return True


def _flip(data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


async def _respond(writer: asyncio.StreamWriter, body: bytes, close: bool = False) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                 % (len(body), b"Connection: close\r\n" if close else b"") + body)
    await writer.drain()


async def _main(args: argparse.Namespace) -> None:
    node = ZgsNode(args.rpc, args.flow, args.files, args.mode, shard_id=args.shard_id, num_shard=args.num_shard,
                   lag=args.lag, delay=args.delay, fraction=args.fraction)
    deadline = time.monotonic() + 10.0
    while True:  # a first sync before listening, so the node answers for the chain as it is
        try:
            await node.sync_once()
            break
        except (RpcException, OSError, ValueError, KeyError, TypeError) as exc:
            if time.monotonic() > deadline:
                log.warning("first sync: %s (listening anyway)", exc)
                break
            await asyncio.sleep(POLL_SECONDS)
    await asyncio.start_server(node.handle, args.host, args.port, limit=64 * 1024)
    print(f"zgsnode mode={args.mode} shard={args.shard_id}/{args.num_shard} listening on {args.host}:{args.port}",
          flush=True)
    await node.follow()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="zgsnode", description="A reference 0G Storage node with fault modes.")
    p.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain the flow contract is on")
    p.add_argument("--flow", required=True, help="the flow contract's address")
    p.add_argument("--files", required=True, type=Path, help="directory of files named by data root (hex, no 0x)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=MODES, default="honest")
    p.add_argument("--shard-id", type=int, default=0)
    p.add_argument("--num-shard", type=int, default=1)
    p.add_argument("--lag", type=int, help="blocks behind the head (default 20 behind, 60 lying-lag, else 0)")
    p.add_argument("--delay", type=float, help="slow: seconds before each answer (default 0.1)")
    p.add_argument("--fraction", type=float, help="drop: share of the node's segments answered null (default 0.5)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="zgsnode %(levelname)s %(message)s")
    try:
        asyncio.run(_main(args))
    except ValueError as exc:
        p.error(str(exc))
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------------------ process API

class ZgsNodeProcess(ServerProcess):
    """One reference storage node process on a loopback port. Context manager; also start()/stop()."""

    def __init__(self, rpc_url: str, flow: str, files_dir: str | Path, mode: str = "honest",
                 shard: tuple[int, int] = (0, 1), *, lag: int | None = None, delay: float | None = None,
                 fraction: float | None = None, port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout: float = 20.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.rpc_url = rpc_url
        self.flow = flow
        self.files_dir = Path(files_dir)
        self.mode = mode
        self.shard = shard
        self.lag, self.delay, self.fraction = lag, delay, fraction
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    name = "zgsnode"
    module = "alignment_node.devnet.zgsnode"

    def _arguments(self) -> list[str]:
        return ["--rpc", self.rpc_url, "--flow", self.flow, "--files", str(self.files_dir), "--mode", self.mode,
                "--shard-id", str(self.shard[0]), "--num-shard", str(self.shard[1]),
                *self._options(("--lag", self.lag), ("--delay", self.delay), ("--fraction", self.fraction))]


if __name__ == "__main__":
    main()
