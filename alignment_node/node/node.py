"""The running node: one operator key, all the licenses delegated to it, one service per duty on one event loop.

On every new chain head the licenses service builds the tick's view, then each service's ``tick(view)`` runs in
this order:
- heartbeat (heartbeat.py): the operator's presence, once per epoch, for every license listed under it;
- reveal (reveal.py): the previous epoch's openings, inside its reveal window;
- verdicts (verdicts.py): audit the targets the active licenses are assigned (duties.py) and commit one root;
- resume (resume.py): list parked licenses again once their suspension is over by the next epoch;
- settlement (settlement.py): settle decided targets and report misses, as a task beside the next ticks;
- challenges (challenges.py): serve on chain the bundle of any of this node's votes someone challenged (M6);
- rewards (rewards.py): balances, claimable credit and commission;
- health (health.py): probe every RPC endpoint so /health can name the dead ones;
- alert conditions (alert_conditions.py) to webhooks (alert_delivery.py).
Before them, the version gate (version_gate.py) reads governance's minimum node release at each new epoch; below it
the services in SKIPPED_WHEN_OUTDATED do not run (no new duties are taken on; reveals of earlier commits go on).
A transaction that fails in one service does not stop the others; the first such failure is raised once they
have all run. The HTTP API (api/routes.py) runs in threads and only reads the snapshot and the store.
Every tick starts with the disk service (disk.py): while the data directory is full no service runs (nothing they
do could be journaled) and TxSender sends nothing; only health and alerts go on until space returns.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..api.routes import NodeRoutes
from ..api.server import ApiServer
from ..chain.contracts import ContractRevert, TransactionFailed
from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcException
from ..chain.tx import LocalSigner
from ..config import Config
from .alert_conditions import AlertConditions
from .chainguard import GuardedRpcClient
from .challenges import ChallengeService
from .disk import DiskService
from .duties import Duties
from .health import HealthService
from .heartbeat import HeartbeatService
from .licenses import LicenseService
from .metrics import NodeMetrics
from .parts import NodeParts, Snapshot
from .resume import ResumeService
from .reveal import RevealService
from .rewards import RewardsService
from .settlement import SettlementService
from .store import DiskFull, open_data_dir
from .txsender import OutOfGasMoney, TxSender
from .verdicts import VerdictService
from .version_gate import VersionGate

log = logging.getLogger("alignment_node.node")

# what one service's failed transaction raises; the tick goes on with the next service
SERVICE_FAILURES = (TransactionFailed, ContractRevert, OutOfGasMoney)
# what a node below governance's minimum release does not run (version_gate.py)
SKIPPED_WHEN_OUTDATED = (HeartbeatService, VerdictService, ResumeService, SettlementService)


def build_parts(cfg: Config, signer: LocalSigner, manifest: dict) -> NodeParts:
    data_dir = cfg.resolve(cfg.data_dir)
    store = open_data_dir(data_dir)  # checks the data directory's VERSION and migrates an older store
    metrics = NodeMetrics()
    rpc = GuardedRpcClient(cfg.chain.rpc_urls, cfg.chain.request_timeout, metrics, int(manifest["chainId"]))
    sender = TxSender(rpc, signer, store, max_fee_gwei=cfg.gas.max_fee_gwei,
                      priority_fee_gwei=cfg.gas.priority_fee_gwei, bump_after_s=cfg.gas.bump_after_s,
                      bump_after_blocks=cfg.gas.bump_after_blocks, bump_factor=cfg.gas.bump_factor, metrics=metrics)
    return NodeParts(cfg, signer, manifest, data_dir, store, metrics, rpc, manifest_contracts(rpc, manifest), sender,
                     Snapshot(operator=signer.address))


class Node:
    gate: VersionGate | None = None  # set by __init__

    def __init__(self, cfg: Config, signer: LocalSigner, manifest: dict):
        self.parts = p = build_parts(cfg, signer, manifest)
        self.cfg, self.store, self.snapshot = cfg, p.store, p.snapshot
        self.licenses = LicenseService(p)
        self.duties = Duties(p)
        self.health = HealthService(p)
        self.disk = DiskService(p)
        self.verdicts = VerdictService(p, self.duties)
        self.alerts = AlertConditions(p)
        self.gate = VersionGate(p)
        self.services = [HeartbeatService(p), RevealService(p), self.verdicts, ResumeService(p),
                         SettlementService(p, self.duties), ChallengeService(p), RewardsService(p), self.health,
                         self.alerts]
        self.api: ApiServer | None = None
        self.public_api: ApiServer | None = None

    def start_api(self) -> ApiServer:
        from ..api.portal import portal_routes
        from ..config import parse_listen

        p = self.parts
        node_routes = NodeRoutes(lambda: p.snapshot, self.health.health, p.store, p.data_dir)
        portal = portal_routes(p.manifest, p.cfg.chain.rpc_urls, p.signer.address, p.cfg.chain.poll_interval)
        self.api = ApiServer(p.cfg.service.host, p.cfg.service.port, {**node_routes.table(), **portal},
                             registry=p.metrics.registry).start()
        log.info("API on http://%s:%d (portal: /portal)", p.cfg.service.host, self.api.port)
        if p.cfg.service.public_evidence:  # security review M6: the roots this node reveals, checkable by anyone
            host, port = parse_listen(p.cfg.service.public_evidence)
            self.public_api = ApiServer(host, port, node_routes.public_table(), any_origin=True).start()
            log.info("public evidence on http://%s:%d/evidence/<root>", host, self.public_api.port)
        return self.api

    async def run(self, stop: asyncio.Event) -> None:
        p = self.parts
        self.start_api()
        self.alerts.engine.start()
        chain_id, recovered = None, False
        while not stop.is_set():
            try:
                if chain_id is None:
                    chain_id = await p.rpc.chain_id()
                    if chain_id != int(p.manifest["chainId"]):
                        raise SystemExit(f"chain id {chain_id} differs from the manifest's {p.manifest['chainId']}")
                    p.snapshot.chain_id = chain_id
                if not recovered and p.store.full is None:  # retried after a failure (a full disk, an RPC error)
                    await p.sender.recover()
                    recovered = True
                await self.tick()
                p.snapshot.last_error = None
            except DiskFull:
                pass  # said once by the store, and by /health until space returns
            except (RpcException, *SERVICE_FAILURES) as exc:
                p.snapshot.last_error = str(exc)
                log.error("tick failed: %s", exc)
            except Exception as exc:  # keep serving: a bug in one tick must not stop the node
                p.snapshot.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("tick failed unexpectedly")
            try:
                await asyncio.wait_for(stop.wait(), p.cfg.chain.poll_interval)
            except TimeoutError:
                pass
        await self.alerts.engine.stop()
        self.verdicts.stop()
        await p.rpc.close()
        for api in (self.api, self.public_api):
            if api:
                api.stop()
        p.store.close()

    async def tick(self) -> None:
        p = self.parts
        self.disk.tick()
        head = await p.rpc.block_number()
        if p.store.full is not None:  # the data directory is full: see disk.py
            await self.health.tick()
            if p.snapshot.epoch is not None:
                await self.alerts.evaluate(head, p.snapshot.epoch)
            return
        if head == p.snapshot.head_block:
            await self.health.tick()
            return
        epoch = await p.c["AuditProtocol"].call("currentEpoch")
        p.snapshot.head_block, p.snapshot.epoch = head, epoch
        p.metrics.head_block.set(head)
        p.metrics.epoch.set(epoch)
        view = await self.licenses.tick(head, epoch)
        outdated = self.gate is not None and await self.gate.tick(view)
        failure: Exception | None = None
        for service in self.services:
            if outdated and isinstance(service, SKIPPED_WHEN_OUTDATED):
                continue
            try:
                await service.tick(view)
            except DiskFull:
                pass  # said once by the store; the next ticks wait for space (disk.py)
            except SERVICE_FAILURES as exc:
                log.error("%s: %s", type(service).__name__, exc)
                failure = failure or exc
        p.snapshot.journal = p.store.counts()
        p.snapshot.last_tick = time.time()
        if failure is not None:
            raise failure
