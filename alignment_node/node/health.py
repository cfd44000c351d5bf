"""Endpoint probing and the node's health: every RPC endpoint is asked for its head, alone, every
PROBE_INTERVAL_S seconds, so /health can name the dead ones; ``health`` turns the snapshot into a status."""

from __future__ import annotations

import time

from ..chain.rpc import RpcClient, RpcException
from .disk import low_space_reason
from .parts import NodeParts, TickView
from .store import free_bytes
from .version_gate import outdated_reason

PROBE_INTERVAL_S = 5.0


class HealthService:
    def __init__(self, parts: NodeParts):
        self.p = parts
        self._probe_time = 0.0

    async def tick(self, view: TickView | None = None) -> None:
        """Probe the endpoints if due (also called on ticks without a new head)."""
        p = self.p
        if time.monotonic() - self._probe_time < PROBE_INTERVAL_S:
            return
        self._probe_time = time.monotonic()
        results = []
        for i, endpoint in enumerate(p.rpc.endpoints):
            probe = RpcClient([p.cfg.chain.rpc_urls[i]], timeout=min(2.0, p.cfg.chain.request_timeout))
            try:
                head = await probe.block_number()
                results.append({"url": endpoint.label, "ok": True, "head": head})
            except RpcException as exc:
                p.metrics.rpc_errors.labels(endpoint.label).inc()
                results.append({"url": endpoint.label, "ok": False, "error": str(exc)[:200]})
            finally:
                await probe.close()
        p.snapshot.endpoints = results

    def health(self) -> tuple[int, list[str]]:
        """(200 healthy | 206 partly | 503 unhealthy, reasons)."""
        s = self.p.snapshot
        reasons = []
        if self.p.store.full is not None:  # disk.py: no transaction is sent until space returns
            try:
                free = free_bytes(self.p.data_dir)
            except OSError:
                return 503, [self.p.store.full]
            return 503, [f"disk full: {self.p.data_dir}, {free} bytes free: no transaction is sent until space "
                         "returns"]
        stale_after = max(30.0, 10 * self.p.cfg.chain.poll_interval)
        if s.last_tick is None or time.time() - s.last_tick > stale_after:
            reasons.append("no chain head processed recently" + (f": {s.last_error}" if s.last_error else ""))
            return 503, reasons
        outdated = outdated_reason(s.version_gate)
        if outdated:
            return 503, [outdated]
        down = [e["url"] for e in s.endpoints if not e["ok"]]
        if s.endpoints and len(down) == len(s.endpoints):
            return 503, [f"every RPC endpoint is down: {', '.join(down)}"]
        if down:
            reasons.append(f"RPC endpoint down (failed over): {', '.join(down)}")
        if s.last_error:
            reasons.append(f"last tick failed: {s.last_error}")
        low = low_space_reason(s.disk)
        if low:
            reasons.append(low)
        reasons.extend(s.alerts)
        return (206 if reasons else 200), reasons
