"""A reference 0G DA signer for the devnet: the ``signer.Signer`` gRPC service of docs/spec/DA.md section 7,
over the devnet row format of ``alignment_node.da.rows``, with fault modes.

    python -m alignment_node.devnet.dasigner --sk-file F --mode M --port P --entrance ADDR \\
        [--host H] [--assign EPOCH:QUORUM:ROW,ROW,...]... [--prune-seconds S] [--hang S] [--delay S]

prints one JSON line ``{"ready": true, "port": P, "mode": M}`` to stdout, then serves until SIGTERM/SIGINT.

The signer holds a BLS secret key and, per (epoch, quorum_id), its assigned rows (`DaSignerServer.assign`,
``--assign``; a pair with no assignment adopts the row indexes of the first BatchSign request naming it, in
that order). BatchSign checks every request (32-byte root, commitment on the curve, exactly the assigned rows
in order, each passing ``rows.verify_slice`` against the root and commitment, one row size per request), then
stores the rows in memory keyed by (epoch, quorum_id, storage_root, row) and answers one signature per request
(sk * H(commit root), arkworks G1). Any bad request fails the whole call with InvalidArgument; more than
``max_inflight`` (10) concurrent BatchSign calls get ResourceExhausted. BatchRetrieve sorts and de-duplicates
the indexes, refuses unassigned rows (InvalidArgument) and answers the stored rows in ascending order
(Internal when one is missing). GetStatus answers 200 and the DAEntrance address (40 lower-case hex, no 0x).
Unlike 0g-da-node it does not follow the chain: it neither checks that the blob was uploaded to DAEntrance
nor that quorum_id < quorumCount(epoch).

Modes (what an auditor must catch, or must not flag):

- ``honest``; ``wrong-socket`` and ``not-enrolled``: honest on gRPC (their faults are on chain);
- ``offline``: start() returns a port nothing listens on (connections are refused);
- ``never-signs``: BatchSign fails with Internal, or with ``hang_seconds`` set sleeps that long first (past
  the caller's deadline); nothing is stored;
- ``drops-rows``: signs correctly, keeps no rows: BatchRetrieve answers Internal (``drop_style="empty"``: an
  empty Slices per request);
- ``corrupts-rows``: stores rows correctly, answers each with one row byte flipped;
- ``prunes-early``: forgets a blob's rows ``prune_seconds`` (2 s) after signing it;
- ``invalid-signatures``: valid G1 points that do not verify: even requests are signed over the commit root of
  epoch + 1 (another message), odd requests with key sk + 1 (another key);
- ``garbage``: BatchSign and BatchRetrieve answer raw bytes through a generic handler, by call count in turn
  (`GARBAGE_KINDS`): not protobuf; a reply with an unknown field; the wrong number of entries; (BatchSign
  only) a signature that is not a curve point. GetStatus stays honest.

``pool=True`` (benches): one server holds the rows of many signers that share its key (each registered with its
socket): every BatchSign's rows are accepted as that call's signer's, and the server's rows of a (epoch,
quorum_id) are the union of them all.

Python API: ``s = DaSignerServer(sk, "honest", entrance); port = s.start(); ...; s.stop()`` (in-process), or
``with DaSignerProcess(sk_file, "honest", entrance) as p: p.port`` (a child process, like zgsnode).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import socket
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Iterable, Optional, Sequence

import grpc

from ..da import bls, rows, wire
from ..da.errors import DaError
from ..da.proto import signer_pb2 as pb
from ..da.proto import signer_pb2_grpc as pb_grpc
from .processes import ServerProcess

__all__ = ["MODES", "GARBAGE_KINDS", "DEFAULT_PRUNE_SECONDS", "DEFAULT_MAX_INFLIGHT", "DaSignerServer",
           "DaSignerProcess", "sign_request_for", "read_secret_key", "main"]

log = logging.getLogger("alignment_node.devnet.dasigner")

MODES = ("honest", "offline", "never-signs", "drops-rows", "corrupts-rows", "prunes-early", "invalid-signatures",
         "garbage", "wrong-socket", "not-enrolled")
GARBAGE_KINDS = ("not-protobuf", "unknown-field", "wrong-count", "bad-point")
DEFAULT_PRUNE_SECONDS = 2.0
DEFAULT_MAX_INFLIGHT = 10  # 0g-da-node's default max_ongoing_sign_request
MAX_MESSAGE_BYTES = 64 << 20
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_NOT_PROTOBUF = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x07garbage"  # over-long varint tag


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message: str) -> _Abort:
    return _Abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def _flip(data: bytes, offset: int = 8) -> bytes:
    out = bytearray(data)
    out[min(offset, len(out) - 1)] ^= 0x01
    return bytes(out)


def _entrance_hex(address: str) -> str:
    s = address[2:] if address[:2] in ("0x", "0X") else address
    if not _HEX40.fullmatch(s):
        raise ValueError(f"not a 20-byte hex address: {address!r}")
    return s.lower()


def sign_request_for(blob: rows.Blob, epoch: int, quorum_id: int, row_indexes: Iterable[int]) -> wire.SignItem:
    """The SignRequest for `blob` carrying its slices of `row_indexes`, in the order given (the signer
    expects its assigned rows in ascending order)."""
    return wire.SignItem(epoch, quorum_id, blob.storage_root, blob.commitment,
                         [blob.slices[i] for i in row_indexes])


class DaSignerServer:
    """One reference DA signer: a grpcio server on `host`:`port` (0: any free port) in this process."""

    def __init__(self, sk: int, mode: str = "honest", entrance_address: str = "0x" + "00" * 20,
                 host: str = "127.0.0.1", port: int = 0, *, prune_seconds: float = DEFAULT_PRUNE_SECONDS,
                 hang_seconds: Optional[float] = None, delay: float = 0.0, drop_style: str = "internal",
                 max_inflight: int = DEFAULT_MAX_INFLIGHT, workers: Optional[int] = None, pool: bool = False):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        if not 0 < sk < bls.R:
            raise ValueError("secret key must be in [1, r)")
        if drop_style not in ("internal", "empty"):
            raise ValueError("drop_style is 'internal' or 'empty'")
        self.sk, self.mode, self.host, self.requested_port = sk, mode, host, port
        self.entrance = _entrance_hex(entrance_address)
        self.prune_seconds, self.hang_seconds, self.delay = prune_seconds, hang_seconds, delay
        self.drop_style, self.max_inflight = drop_style, max_inflight
        self.workers = workers or max_inflight + 6
        self.pool = pool
        self.pk_g1, self.pk_g2 = bls.keypair(sk)
        self.port: Optional[int] = None
        self._server: Optional[grpc.Server] = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._assigned: dict[tuple[int, int], tuple[int, ...]] = {}
        self._rows: dict[tuple[int, int, bytes, int], bytes] = {}
        self._signed_at: dict[tuple[int, int, bytes], float] = {}
        self._inflight = 0
        self._garbage_calls = {"sign": 0, "retrieve": 0}

    # ------------------------------------------------------------------ state

    def assign(self, epoch: int, quorum_id: int, row_indexes: Iterable[int]) -> None:
        """This signer's rows in (epoch, quorum_id) (sorted, de-duplicated)."""
        with self._lock:
            self._assigned[(epoch, quorum_id)] = tuple(sorted(set(int(r) for r in row_indexes)))

    def assigned(self, epoch: int, quorum_id: int) -> Optional[tuple[int, ...]]:
        with self._lock:
            return self._assigned.get((epoch, quorum_id))

    def stored_rows(self) -> dict[tuple[int, int, bytes, int], bytes]:
        """A copy of the rows held in memory (after pruning)."""
        with self._lock:
            self._prune()
            return dict(self._rows)

    def _prune(self) -> None:  # caller holds the lock
        if self.mode != "prunes-early":
            return
        cutoff = time.monotonic() - self.prune_seconds
        for blob in [b for b, t in self._signed_at.items() if t < cutoff]:
            del self._signed_at[blob]
            for key in [k for k in self._rows if k[:3] == blob]:
                del self._rows[key]

    # ------------------------------------------------------------------ BatchSign

    def _check_request(self, i: int, req: pb.SignRequest) -> tuple:
        """(blob key, [(row, slice)], commitment, assigned rows) of a valid request, else _Abort."""
        f = f"requests[{i}]"
        if len(req.storage_root) != 32:
            raise _invalid(f"{f}: storage_root is {len(req.storage_root)} bytes, not 32")
        try:
            commitment = wire.decode_commitment(req.erasure_commitment, f + ".erasure_commitment")
        except DaError as exc:
            raise _invalid(str(exc)) from None
        with self._lock:
            assigned = None if self.pool else self._assigned.get((req.epoch, req.quorum_id))
        slices = list(req.encoded_slice)
        if assigned is None:  # adopt the call's order as this signer's rows
            try:
                assigned = tuple(rows.parse_slice(s)[0] for s in slices)
            except DaError as exc:
                raise _invalid(f"{f}: {exc}") from None
            if not assigned or list(assigned) != sorted(set(assigned)):
                raise _invalid(f"{f}: rows must be distinct and ascending")
        if len(slices) != len(assigned):
            raise _invalid(f"{f}: {len(slices)} rows, {len(assigned)} assigned")
        size = None
        out = []
        for j, (row, s) in enumerate(zip(assigned, slices)):
            reason = rows.verify_slice(s, row, req.storage_root, commitment)
            if reason is not None:
                raise _invalid(f"{f}.encoded_slice[{j}] (row {row}): {reason}")
            _, data, proof = rows.parse_slice(s)
            if size is None:
                size = (len(data), len(proof))
            elif size != (len(data), len(proof)):
                raise _invalid(f"{f}.encoded_slice[{j}]: row size differs within the blob")
            out.append((row, s))
        return (req.epoch, req.quorum_id, bytes(req.storage_root)), out, commitment, assigned

    def _signature(self, i: int, blob: tuple, commitment: bls.G1Point) -> bytes:
        epoch, quorum_id, root = blob
        sk = self.sk
        if self.mode == "invalid-signatures":
            if i % 2 == 0:
                epoch = (epoch + 1) % (1 << 64)
            else:
                sk = sk + 1 if sk + 1 < bls.R else 1
        return bls.encode_g1_ark(bls.sign(sk, bls.commit_root_hash(root, epoch, quorum_id, commitment)))

    def batch_sign(self, request: pb.BatchSignRequest) -> pb.BatchSignReply:
        """BatchSign's logic (raises _Abort with the status to answer)."""
        with self._lock:
            if self._inflight >= self.max_inflight:
                raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many sign requests in flight")
            self._inflight += 1
        try:
            if self.delay:
                self._stopping.wait(self.delay)
            if self.mode == "never-signs":
                if self.hang_seconds:
                    self._stopping.wait(self.hang_seconds)
                raise _Abort(grpc.StatusCode.INTERNAL, "signing failed")
            if len(request.requests) > wire.DEFAULT_LIMITS.max_requests:
                raise _invalid("too many requests")
            checked = [self._check_request(i, req) for i, req in enumerate(request.requests)]
            sigs = [self._signature(i, blob, c) for i, (blob, _, c, _) in enumerate(checked)]
            with self._lock:
                now = time.monotonic()
                for blob, slices, _, assigned in checked:
                    if self.pool:
                        self._assigned[blob[:2]] = tuple(sorted(set(self._assigned.get(blob[:2], ())) | set(assigned)))
                    else:
                        self._assigned.setdefault(blob[:2], assigned)
                    if self.mode == "drops-rows":
                        continue
                    for row, s in slices:
                        self._rows[blob + (row,)] = s
                    self._signed_at[blob] = now
            return pb.BatchSignReply(signatures=sigs)
        finally:
            with self._lock:
                self._inflight -= 1

    # ------------------------------------------------------------------ BatchRetrieve, GetStatus

    def batch_retrieve(self, request: pb.BatchRetrieveRequest) -> pb.BatchRetrieveReply:
        if len(request.requests) > wire.DEFAULT_LIMITS.max_requests:
            raise _invalid("too many requests")
        reply = pb.BatchRetrieveReply()
        with self._lock:
            self._prune()
            for i, req in enumerate(request.requests):
                f = f"requests[{i}]"
                if len(req.storage_root) != 32:
                    raise _invalid(f"{f}: storage_root is {len(req.storage_root)} bytes, not 32")
                assigned = set(self._assigned.get((req.epoch, req.quorum_id), ()))
                wanted = sorted(set(req.row_indexes))
                for r in wanted:
                    if r not in assigned:
                        raise _invalid(f"{f}: row {r} is not assigned to this signer")
                slices = reply.encoded_slice.add()
                if self.mode == "drops-rows" and self.drop_style == "empty":
                    continue
                for r in wanted:
                    s = self._rows.get((req.epoch, req.quorum_id, bytes(req.storage_root), r))
                    if s is None:
                        raise _Abort(grpc.StatusCode.INTERNAL, f"{f}: row {r} not found")
                    slices.encoded_slice.append(_flip(s) if self.mode == "corrupts-rows" else s)
        return reply

    def status(self) -> pb.StatusReply:
        return pb.StatusReply(status_code=200, entrance_contract=self.entrance)

    # ------------------------------------------------------------------ garbage

    def _garbage(self, method: str, raw_request: bytes) -> bytes:
        with self._lock:
            n = self._garbage_calls[method]
            self._garbage_calls[method] += 1
        kinds = GARBAGE_KINDS if method == "sign" else GARBAGE_KINDS[:3]
        kind = kinds[n % len(kinds)]
        if kind == "not-protobuf":
            return _NOT_PROTOBUF
        try:
            count = len((pb.BatchSignRequest if method == "sign" else pb.BatchRetrieveRequest)
                        .FromString(raw_request).requests)
        except Exception:
            count = 1
        unknown = b"\xc8\x3e\x01"  # field 1001, varint 1
        if method == "sign":
            good = bls.encode_g1_ark(bls.sign(self.sk, bls.hash_to_g1(bytes(32))))
            if kind == "unknown-field":
                return pb.BatchSignReply(signatures=[good] * count).SerializeToString() + unknown
            if kind == "wrong-count":
                return pb.BatchSignReply(signatures=[good] * (count + 1)).SerializeToString()
            off_curve = (1).to_bytes(32, "little") + (3).to_bytes(32, "little")
            return pb.BatchSignReply(signatures=[off_curve] * count).SerializeToString()
        if kind == "unknown-field":
            return pb.BatchRetrieveReply(encoded_slice=[pb.Slices()] * count).SerializeToString() + unknown
        return pb.BatchRetrieveReply(encoded_slice=[pb.Slices()] * (count + 1)).SerializeToString()

    # ------------------------------------------------------------------ server

    def _handlers(self) -> grpc.GenericRpcHandler:
        def run(fn, request, context):
            try:
                return fn(request)
            except _Abort as exc:
                context.abort(exc.code, exc.message)
            except grpc.RpcError:
                raise
            except Exception as exc:  # a bug here is an Internal answer, not a dead worker
                log.exception("handler failed")
                context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

        if self.mode == "garbage":
            methods = {
                "BatchSign": grpc.unary_unary_rpc_method_handler(
                    lambda raw, ctx: run(lambda r: self._garbage("sign", r), raw, ctx)),
                "BatchRetrieve": grpc.unary_unary_rpc_method_handler(
                    lambda raw, ctx: run(lambda r: self._garbage("retrieve", r), raw, ctx)),
                "GetStatus": grpc.unary_unary_rpc_method_handler(
                    lambda raw, ctx: self.status().SerializeToString()),
            }
        else:
            def typed(fn, req_type, reply_type):
                return grpc.unary_unary_rpc_method_handler(
                    lambda req, ctx: run(fn, req, ctx), request_deserializer=req_type.FromString,
                    response_serializer=reply_type.SerializeToString)
            methods = {
                "BatchSign": typed(self.batch_sign, pb.BatchSignRequest, pb.BatchSignReply),
                "BatchRetrieve": typed(self.batch_retrieve, pb.BatchRetrieveRequest, pb.BatchRetrieveReply),
                "GetStatus": typed(lambda _req: self.status(), pb.Empty, pb.StatusReply),
            }
        return grpc.method_handlers_generic_handler("signer.Signer", methods)

    def start(self) -> int:
        """Starts serving (offline: binds nothing) and returns the port."""
        if self.port is not None:
            raise RuntimeError("the signer is already started")
        self._stopping.clear()
        if self.mode == "offline":
            if self.requested_port:
                self.port = self.requested_port
            else:  # a port that was free a moment ago; nothing will listen on it
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((self.host, 0))
                    self.port = s.getsockname()[1]
            return self.port
        opts = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers), options=opts,
                             maximum_concurrent_rpcs=None)
        server.add_generic_rpc_handlers((self._handlers(),))
        port = server.add_insecure_port(f"{self.host}:{self.requested_port}")
        if port == 0:
            raise RuntimeError(f"could not bind {self.host}:{self.requested_port}")
        server.start()
        self._server, self.port = server, port
        return port

    def stop(self, grace: float = 0.5) -> None:
        """Stops serving (idempotent); wakes handlers that hang or delay."""
        self._stopping.set()
        server, self._server, self.port = self._server, None, None
        if server is not None:
            server.stop(grace).wait()

    @property
    def target(self) -> str:
        if self.port is None:
            raise RuntimeError("the signer is not started")
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "DaSignerServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------ command line

def read_secret_key(path: str | Path) -> int:
    """The secret key in a file: decimal or 0x-hex, surrounding whitespace ignored."""
    text = Path(path).read_text(encoding="ascii").strip()
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text)


def _assignment(text: str) -> tuple[int, int, list[int]]:
    try:
        epoch, quorum, row_list = text.split(":")
        return int(epoch), int(quorum), [int(r) for r in row_list.split(",") if r]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected EPOCH:QUORUM:ROW,ROW,... got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="dasigner", description="A reference 0G DA signer with fault modes.")
    p.add_argument("--sk-file", required=True, type=Path, help="file holding the BLS secret key (decimal or 0x hex)")
    p.add_argument("--mode", choices=MODES, default="honest")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed on the ready line)")
    p.add_argument("--entrance", required=True, help="the DAEntrance address GetStatus reports")
    p.add_argument("--assign", type=_assignment, action="append", default=[], metavar="EPOCH:QUORUM:ROWS",
                   help="assigned rows of (epoch, quorum), comma-separated; repeatable")
    p.add_argument("--prune-seconds", type=float, default=DEFAULT_PRUNE_SECONDS, help="prunes-early: row lifetime")
    p.add_argument("--hang", type=float, help="never-signs: seconds to hang before failing")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each BatchSign answer")
    p.add_argument("--max-inflight", type=int, default=DEFAULT_MAX_INFLIGHT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="dasigner %(levelname)s %(message)s")
    try:
        server = DaSignerServer(read_secret_key(args.sk_file), args.mode, args.entrance, args.host, args.port,
                                prune_seconds=args.prune_seconds, hang_seconds=args.hang, delay=args.delay,
                                max_inflight=args.max_inflight)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    for epoch, quorum, row_list in args.assign:
        server.assign(epoch, quorum, row_list)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    port = server.start()
    print(json.dumps({"ready": True, "port": port, "mode": args.mode}), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()


class DaSignerProcess(ServerProcess):
    """One reference DA signer process on a loopback port. Context manager; also start()/stop()."""

    name = '{"ready":'  # the first word of the JSON ready line
    module = "alignment_node.devnet.dasigner"

    def __init__(self, sk_file: str | Path, mode: str = "honest", entrance_address: str = "0x" + "00" * 20, *,
                 assign: Sequence[tuple[int, int, Sequence[int]]] = (), prune_seconds: float | None = None,
                 hang_seconds: float | None = None, port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout: float = 20.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        self.sk_file, self.mode, self.entrance = Path(sk_file), mode, entrance_address
        self.assignments = [(e, q, list(r)) for e, q, r in assign]
        self.prune_seconds, self.hang_seconds = prune_seconds, hang_seconds
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    @property
    def listens(self) -> bool:  # offline prints its ready line but never binds
        return self.mode != "offline"

    @property
    def target(self) -> str:
        if self.port is None:
            raise RuntimeError("the signer is not running")
        return f"{self.host}:{self.port}"

    def _arguments(self) -> list[str]:
        out = ["--sk-file", str(self.sk_file), "--mode", self.mode, "--entrance", self.entrance]
        for e, q, r in self.assignments:
            out += ["--assign", f"{e}:{q}:{','.join(str(x) for x in r)}"]
        return out + self._options(("--prune-seconds", self.prune_seconds), ("--hang", self.hang_seconds))


if __name__ == "__main__":
    main()
