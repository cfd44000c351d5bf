"""What the node's services share: the parts one operator's node is made of, the snapshot the API serves and the
view of one chain head that every service's ``tick`` is given."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..config import Config
from .metrics import NodeMetrics
from .store import Store
from .txsender import TxSender

log = logging.getLogger("alignment_node.node")


class MeteredRpcClient(RpcClient):
    """RpcClient that records latency per method and counts failovers to another endpoint."""

    def __init__(self, urls, timeout: float, metrics: NodeMetrics):
        super().__init__(urls, timeout=timeout)
        self.metrics = metrics
        self.last_failover: float | None = None

    async def request(self, method, params=()):
        before = self._preferred
        started = time.monotonic()
        try:
            return await super().request(method, params)
        finally:
            self.metrics.rpc_latency.labels(method).observe(time.monotonic() - started)
            if self._preferred != before:
                self.metrics.rpc_failovers.inc()
                self.last_failover = time.time()
                log.warning("RPC failover: now using %s", self.endpoints[self._preferred].label)


@dataclass
class Snapshot:
    """What the API serves; its fields are replaced wholesale by the services (readers never see half an
    update)."""

    operator: str
    started: float = field(default_factory=time.time)
    chain_id: int | None = None
    head_block: int | None = None
    epoch: int | None = None
    last_tick: float | None = None
    last_error: str | None = None
    licenses: dict[int, dict] = field(default_factory=dict)
    operator_index: int | None = None  # the operator's index in the registry (0: not registered)
    last_heartbeat: dict | None = None
    balances: dict[str, str] = field(default_factory=dict)
    endpoints: list[dict] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    journal: dict[str, int] = field(default_factory=dict)
    verdicts: list[dict] = field(default_factory=list)
    version_gate: dict = field(default_factory=dict)  # version_gate.py: release, governance's minimum, outdated
    disk: dict = field(default_factory=dict)  # disk.py: the data directory's free space, low, full


@dataclass
class NodeParts:
    """One operator's node: its configuration, key, deployment, store, metrics, chain client, contracts and
    transaction sender, and the snapshot its services publish."""

    cfg: Config
    signer: LocalSigner
    manifest: dict
    data_dir: Path
    store: Store
    metrics: NodeMetrics
    rpc: MeteredRpcClient
    c: dict[str, Any]
    sender: TxSender
    snapshot: Snapshot


@dataclass(frozen=True)
class TickView:
    """One new chain head as the services see it: its block number, the epoch, and this operator's licenses
    (the snapshot's, so a heartbeat sent earlier in the tick is seen by the services after it)."""

    head: int
    epoch: int
    snapshot: Snapshot

    @property
    def licenses(self) -> dict[int, dict]:
        return self.snapshot.licenses

    def active_licenses(self) -> list[int]:
        """Licenses active in this epoch (listed under the operator, which is present): the ones with duties."""
        return sorted(i for i, v in self.licenses.items() if v["active_epoch"] == self.epoch)
