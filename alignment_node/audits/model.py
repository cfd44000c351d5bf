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

import logging
from pathlib import Path
from typing import Any

from ..protocol import KIND_MODEL
from .base import AuditResult, EpochContext, Target
from .worker import WorkerClient, target_lines

__all__ = ["ModelAuditor"]

log = logging.getLogger("alignment_node.audit.model")
STARTUP_S = 120.0  # importing torch and loading (or, the first time, training) the reference model


class ModelAuditor:
    kind = KIND_MODEL

    def __init__(self, sources: list[str], data_dir: str | Path, policy: dict | None = None):
        self.sources = list(sources)
        self.data_dir = Path(data_dir)
        self.policy = dict(policy or {})
        self.worker = WorkerClient("alignment_node.models.worker", "model-audit", STARTUP_S)

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        seed = context.seed if context is not None else bytes(32)
        req = {
            "epoch": epoch, "seed": "0x" + seed.hex(), "deadline_s": deadline_s,
            "targets": target_lines(assigned, context),
            "sources": self.sources, "cache_dir": str(self.data_dir / "baselines"),
            "state_dir": str(self.data_dir / "model-state"), "policy": self.policy,
        }
        return await self.worker.run(epoch, req, deadline_s, context)

    def judge(self, bundle: dict[str, Any]) -> int:
        from ..models import baseline as B

        base = B.fetch(bundle["baseline"], self.sources, self.data_dir / "baselines")
        if B.is_served(base):  # version 2: a served model audited without the weights
            from ..models.served_audit import evaluate_served

            return evaluate_served(bundle, base)[0]
        from ..models.audit import evaluate

        return evaluate(bundle, base)[0]

    def stop(self) -> None:
        self.worker.stop()
