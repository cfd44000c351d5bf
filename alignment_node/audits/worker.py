"""Audit workers: plug-ins whose audits need more memory than the node's 64 MB (torch for MODEL, grpcio and the
BN254 pairing library for DA_SIGNER) run them in a separate process that the node starts once and talks to
through pipes, one JSON line each way.

The protocol (both sides are here: ``WorkerClient`` in the node, ``serve`` in the worker):

- the worker prints ``{"ready": true}`` once it has loaded what it needs;
- the node writes one request line per epoch: ``{"epoch", "seed": "0x..", "deadline_s", "targets": [{"id",
  "endpoint", "identity": "0x..", "license"}], ...}`` plus the plug-in's own fields;
- the worker answers one line per target as soon as it is judged, ``{"result": {"id", "verdict", "bundle"}}``
  or ``{"skipped": {"id", "reason"}}``, then ``{"done": true}``; a request it cannot handle at all is one
  ``{"error": "..."}`` line. The node stores each bundle before reading the next line, so an epoch's bundles
  never sit in the node's memory together.

A worker that cannot start, dies, or does not finish in time leaves its targets without a verdict (a visible,
logged miss, never a guessed verdict) and is restarted for the next epoch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any, AsyncIterator, Awaitable, Callable

from .base import AuditResult, EpochContext, Target

__all__ = ["WorkerClient", "serve", "target_lines"]

log = logging.getLogger("alignment_node.audit.worker")
LINE_LIMIT = 256 << 20


def target_lines(assigned: list[Target], context: EpochContext | None) -> list[dict[str, Any]]:
    """The request's ``targets``: each assigned target with the lowest of this node's licenses assigned to it."""
    return [{"id": t.id, "endpoint": t.endpoint, "identity": "0x" + t.identity.hex(),
             "license": min(context.licenses.get(t.id, [0])) if context else 0} for t in assigned]


class WorkerClient:
    """The node's end of one worker process (``python -m module``), started on first use and kept."""

    def __init__(self, module: str, what: str, startup_s: float, slack_s: float = 30.0):
        self.module, self.what = module, what
        self.startup_s, self.slack_s = startup_s, slack_s
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def _worker(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        log.info("starting the %s worker", self.what)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None, limit=LINE_LIMIT)
        line = await asyncio.wait_for(self._proc.stdout.readline(), self.startup_s)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"the {self.what} worker did not start")
        return self._proc

    async def run(self, epoch: int, request: dict[str, Any], deadline_s: float,
                  context: EpochContext | None) -> dict[int, AuditResult]:
        """Send one epoch's request; each result is handed to ``context.sink`` (when set) as it arrives."""
        out: dict[int, AuditResult] = {}
        async with self._lock:
            try:
                proc = await self._worker()
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                await proc.stdin.drain()
                loop = asyncio.get_running_loop()
                end = loop.time() + deadline_s + self.slack_s
                while True:
                    line = await asyncio.wait_for(proc.stdout.readline(), max(0.0, end - loop.time()))
                    if not line:
                        raise RuntimeError("the worker exited")
                    item = json.loads(line)
                    if "done" in item:
                        break
                    if "error" in item:
                        log.error("epoch %d: %s audits failed: %s", epoch, self.what, item["error"])
                        break
                    if "skipped" in item:
                        s = item["skipped"]
                        log.error("epoch %d target %d: not audited: %s", epoch, s["id"], s["reason"])
                        continue
                    r = item["result"]
                    res = AuditResult(int(r["verdict"]), r["bundle"])
                    del item, r
                    tid = int(res.bundle["target"]["id"])
                    if context is not None and context.sink is not None:
                        res = context.sink(tid, res)
                    out[tid] = res
            except (OSError, RuntimeError, ValueError, KeyError, TypeError, asyncio.TimeoutError) as exc:
                log.error("epoch %d: the %s worker failed (%s): targets without a bundle get no verdict", epoch,
                          self.what, exc or type(exc).__name__)
                self.stop()
        return out

    def stop(self) -> None:
        """Kill the worker (it is started again on the next request)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        self._proc = None

    async def close(self) -> None:
        """Kill the worker and reap it (before the event loop that started it ends)."""
        proc = self._proc
        self.stop()
        if proc is not None:
            await proc.wait()


Handler = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]


async def serve(handle: Handler, ready: Callable[[], Awaitable[None]] | None = None) -> int:
    """The worker's end: ``{"ready": true}``, then for each request line the items ``handle(request)`` yields
    (``{"result": ...}`` / ``{"skipped": ...}``), each written as soon as it is made, then ``{"done": true}``.
    One event loop for the worker's life, so clients it keeps (JSON-RPC, gRPC channels) stay usable."""
    if ready is not None:
        await ready()
    out = sys.stdout

    def write(item: dict[str, Any]) -> None:
        out.write(json.dumps(item, separators=(",", ":")) + "\n")
        out.flush()

    write({"ready": True})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return 0
        if not line.strip():
            continue
        try:
            async for item in handle(json.loads(line)):
                write(item)
        except Exception as exc:  # one bad request must not kill the worker
            logging.getLogger("alignment_node.worker").exception("request failed")
            write({"error": f"{type(exc).__name__}: {exc}"})
            continue
        write({"done": True})
