"""MODEL audit plug-in of the core node: hands the epoch's MODEL targets to the model-audit worker.

A MODEL target's registered ``identity`` is the 32-byte keccak256 of its baseline bundle (``models.baseline``).
The statistics and the reference model are heavy (numpy, scipy, torch: far beyond the node's 64 MB), so they run
in a separate process (``models.worker``), started the first time a MODEL target is assigned and kept for the
next epochs; the node only forwards the targets and stores the bundles it gets back. If the worker cannot be
started or does not answer in time, the targets get no verdict (a visible miss) rather than a guessed one.

``judge`` (``verify-evidence``) re-runs the judgement of a bundle against its baseline, fetched by hash from
the configured sources, in the calling process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..protocol import KIND_MODEL
from .base import AuditResult, EpochContext, Target

__all__ = ["ModelAuditor"]

log = logging.getLogger("alignment_node.audit.model")
STARTUP_S = 120.0  # importing torch and loading (or, the first time, training) the reference model
LINE_LIMIT = 256 << 20


class ModelAuditor:
    kind = KIND_MODEL

    def __init__(self, sources: list[str], data_dir: str | Path, policy: dict | None = None):
        self.sources = list(sources)
        self.data_dir = Path(data_dir)
        self.policy = dict(policy or {})
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _worker(self) -> asyncio.subprocess.Process:
        if self._proc is not None and self._proc.returncode is None:
            return self._proc
        log.info("starting the model-audit worker")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alignment_node.models.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=None, limit=LINE_LIMIT)
        line = await asyncio.wait_for(self._proc.stdout.readline(), STARTUP_S)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError("the model-audit worker did not start")
        return self._proc

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        seed = context.seed if context is not None else bytes(32)
        req = {
            "epoch": epoch, "seed": "0x" + seed.hex(), "deadline_s": deadline_s,
            "targets": [{"id": t.id, "endpoint": t.endpoint, "identity": "0x" + t.identity.hex(),
                         "license": min(context.licenses.get(t.id, [0])) if context else 0} for t in assigned],
            "sources": self.sources, "cache_dir": str(self.data_dir / "baselines"),
            "state_dir": str(self.data_dir / "model-state"), "policy": self.policy,
        }
        out: dict[int, AuditResult] = {}
        async with self._lock:
            try:
                proc = await self._worker()
                proc.stdin.write(json.dumps(req).encode() + b"\n")
                await proc.stdin.drain()
                end = asyncio.get_running_loop().time() + deadline_s + 30
                while True:  # one line per bundle: each parsed and stored before the next is read
                    line = await asyncio.wait_for(proc.stdout.readline(),
                                                  max(0.0, end - asyncio.get_running_loop().time()))
                    item = json.loads(line)
                    if "done" in item:
                        break
                    if "error" in item:
                        log.error("epoch %d: model audits failed: %s", epoch, item["error"])
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
            except (OSError, RuntimeError, ValueError, KeyError, asyncio.TimeoutError) as exc:
                log.error("epoch %d: the model-audit worker failed (%s): MODEL targets without a bundle get no "
                          "verdict", epoch, exc)
                self.stop()
        return out

    def judge(self, bundle: dict[str, Any]) -> int:
        from ..models import baseline as B
        from ..models.audit import evaluate

        base = B.fetch(bundle["baseline"], self.sources, self.data_dir / "baselines")
        return evaluate(bundle, base)[0]

    def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        self._proc = None
