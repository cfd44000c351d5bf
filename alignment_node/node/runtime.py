"""The running node: one operator key, all the licenses delegated to it, a few services on one event loop.

Services (each one method with its own piece of state, called on every new chain head):
- licenses: which licenses are delegated to this operator (registry events + authoritative eth_calls);
- heartbeat: once per epoch, one transaction for every delegated, unsuspended license not yet active;
- rewards: balances, claimable credit and commission, low-gas-money alerts;
- health: probes every RPC endpoint so /health can say which one is down;
- alerts: penalties, suspensions, missed reveals, low gas money, failovers and flagged targets to webhooks
  (alert_feed.py, alerts.py).
The HTTP API (/health, /status, /metrics) runs in a thread and only reads the published snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import protocol as P
from ..api.server import ApiServer, json_response
from ..chain.contracts import ContractRevert, TransactionFailed
from ..chain.manifest import manifest_contracts, scan_logs, topic_address
from ..chain.rpc import RpcClient, RpcException
from ..chain.tx import LocalSigner
from ..config import Config
from .metrics import NodeMetrics
from .store import Store
from .txsender import OutOfGasMoney, TxSender

log = logging.getLogger("alignment_node.node")

REORG_REREAD_BLOCKS = 12  # blocks of license events read again on every refresh
HEARTBEAT_BATCH = 200  # licenses per heartbeat transaction (keeps one transaction well under a block's gas)
STATE_REFRESH_S = 30.0  # seconds between re-reads of every license's state (suspensions, transfers)


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
    """What the API serves; replaced wholesale by the services (readers never see half an update)."""

    operator: str
    started: float = field(default_factory=time.time)
    chain_id: int | None = None
    head_block: int | None = None
    epoch: int | None = None
    last_tick: float | None = None
    last_error: str | None = None
    licenses: dict[int, dict] = field(default_factory=dict)
    last_heartbeat: dict | None = None
    balances: dict[str, str] = field(default_factory=dict)
    endpoints: list[dict] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    journal: dict[str, int] = field(default_factory=dict)


class Node:
    def __init__(self, cfg: Config, signer: LocalSigner, manifest: dict):
        self.cfg = cfg
        self.signer = signer
        self.manifest = manifest
        self.data_dir = cfg.resolve(cfg.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.data_dir / "node.sqlite")
        self.metrics = NodeMetrics()
        self.rpc = MeteredRpcClient(cfg.chain.rpc_urls, cfg.chain.request_timeout, self.metrics)
        self.c = manifest_contracts(self.rpc, manifest)
        self.sender = TxSender(self.rpc, signer, self.store, max_fee_gwei=cfg.gas.max_fee_gwei,
                               priority_fee_gwei=cfg.gas.priority_fee_gwei, metrics=self.metrics)
        self.snapshot = Snapshot(operator=signer.address)
        from .alert_feed import AlertFeed
        from .auditing import AuditService

        self.audits = AuditService(self)
        self.alert_feed = AlertFeed(self)
        self.api: ApiServer | None = None
        self._heartbeat_epoch: int | None = None
        self._rewards_epoch: int | None = None
        self._probe_time = 0.0
        self._licenses_epoch: int | None = None
        self._state_time = 0.0
        self._state_block = -1
        self._known_ids: set[int] = set(self.store.get("licenses.candidates", []))
        self._scanned_to: int = self.store.get("licenses.scanned_to", int(manifest["deployBlock"]) - 1)

    # --------------------------------------------------------------------------------- lifecycle

    def start_api(self) -> ApiServer:
        from ..api.portal import portal_routes

        portal = portal_routes(self.manifest, self.cfg.chain.rpc_urls, self.signer.address, self.cfg.chain.poll_interval)
        self.api = ApiServer(self.cfg.service.host, self.cfg.service.port, {
            "/health": self._route_health,
            "/status": self._route_status,
            "/verdicts": self._route_verdicts,
            "/transactions": self._route_transactions,
            "/evidence/": self._route_evidence,
            "/baselines/": self._route_baseline,
            **portal,
        }, registry=self.metrics.registry).start()
        log.info("API on http://%s:%d (portal: /portal)", self.cfg.service.host, self.api.port)
        return self.api

    async def run(self, stop: asyncio.Event) -> None:
        self.start_api()
        self.alert_feed.engine.start()
        chain_id = None
        while not stop.is_set():
            try:
                if chain_id is None:
                    chain_id = await self.rpc.chain_id()
                    if chain_id != int(self.manifest["chainId"]):
                        raise SystemExit(f"chain id {chain_id} differs from the manifest's {self.manifest['chainId']}")
                    self.snapshot.chain_id = chain_id
                    await self.sender.recover()
                await self.tick()
                self.snapshot.last_error = None
            except (RpcException, TransactionFailed, ContractRevert, OutOfGasMoney) as exc:
                self.snapshot.last_error = str(exc)
                log.error("tick failed: %s", exc)
            except Exception as exc:  # keep serving: a bug in one tick must not stop the node
                self.snapshot.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("tick failed unexpectedly")
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval)
            except TimeoutError:
                pass
        await self.alert_feed.engine.stop()
        await self.rpc.close()
        if self.api:
            self.api.stop()
        self.store.close()

    async def tick(self) -> None:
        head = await self.rpc.block_number()
        if head == self.snapshot.head_block:
            await self._probe_endpoints()
            return
        epoch = await self.c["AuditProtocol"].call("currentEpoch")
        self.snapshot.head_block, self.snapshot.epoch = head, epoch
        self.metrics.head_block.set(head)
        self.metrics.epoch.set(epoch)
        await self.refresh_licenses(head, epoch)
        failure: Exception | None = None
        if self.cfg.heartbeat.enabled:
            try:
                await self.heartbeat(epoch)
            except (TransactionFailed, ContractRevert, OutOfGasMoney) as exc:
                failure = exc  # still book rewards and probe endpoints below, then report it
        active = sorted(i for i, v in self.snapshot.licenses.items() if v["active_epoch"] == epoch)
        try:
            await self.audits.tick(head, epoch, active)
        except (TransactionFailed, ContractRevert, OutOfGasMoney) as exc:
            failure = failure or exc
        await self.rewards(epoch)
        await self._probe_endpoints()
        await self.alert_feed.evaluate(head, epoch)
        self.snapshot.journal = self.store.counts()
        self.snapshot.last_tick = time.time()
        if failure is not None:
            raise failure

    # ---------------------------------------------------------------------------------- licenses

    async def refresh_licenses(self, head: int, epoch: int) -> None:
        """Find licenses delegated to this operator: candidate ids from LicenseStateChanged events naming it,
        then their authoritative state with eth_calls (so a reorg can only delay, never mislead, us)."""
        registry = self.c["OperatorRegistry"]
        ev = registry.abi.event("LicenseStateChanged")
        me_topic = topic_address(self.signer.address)
        deploy_block = int(self.manifest["deployBlock"])
        # Re-read a few blocks every time: logs of blocks that were reorganised away reappear or vanish.
        start = max(deploy_block, self._scanned_to - REORG_REREAD_BLOCKS)
        # A reorg deeper than that changes the hash of the block we scanned to: read everything again.
        scanned_hash = self.store.get("licenses.scanned_hash")
        if scanned_hash and self._scanned_to >= deploy_block:
            block = await self.rpc.get_block(self._scanned_to)
            if block is None or block["hash"] != scanned_hash:
                log.warning("reorg below block %d detected (hash %s, was %s): re-reading license events",
                            self._scanned_to, block and block["hash"], scanned_hash)
                start = deploy_block
        changed = start == deploy_block and self._licenses_epoch is not None
        if head >= start:
            async for entries in scan_logs(self.rpc, registry.address, [ev.topic, None, me_topic], start, head):
                for entry in entries:
                    self._known_ids.add(int(entry["topics"][1], 16))
                    changed = changed or int(entry["blockNumber"], 16) > self._state_block
            # Remember the hash of the block before the head (the head itself may still be sealing on some
            # nodes): if it ever changes, a reorg went deeper than the re-read window.
            checkpoint = max(deploy_block, head - 1)
            checkpoint_block = await self.rpc.get_block(checkpoint)
            self._scanned_to = checkpoint
            self.store.put("licenses.candidates", sorted(self._known_ids))
            self.store.put("licenses.scanned_to", checkpoint)
            self.store.put("licenses.scanned_hash", checkpoint_block["hash"] if checkpoint_block else None)
        # The per-license eth_calls are the expensive part: once per epoch, when our events changed, or every
        # STATE_REFRESH_S seconds (suspensions, transfers).
        if not changed and epoch == self._licenses_epoch and time.monotonic() - self._state_time < STATE_REFRESH_S:
            return
        self._licenses_epoch, self._state_time, self._state_block = epoch, time.monotonic(), head
        vault = self.c["RewardVault"]
        licenses: dict[int, dict] = {}
        for token_id in sorted(self._known_ids):
            operator, state = await registry.call("delegationOf", token_id)
            if operator.lower() != self.signer.address.lower() or state == 0:
                continue
            presence = await vault.call("presence", token_id)
            account = await vault.call("accounts", token_id)
            last_active = presence[0] - 1 if presence[0] else None
            licenses[token_id] = {
                "state": P.DELEGATION_STATE_NAMES[state],
                "active_epoch": last_active,
                "active_now": last_active == epoch,
                "suspended_until": account[1] if account[1] > epoch else None,
                "balance_wei": str(account[0]),
            }
        self.snapshot.licenses = licenses
        for name in ("delegated", "pending"):
            self.metrics.licenses.labels(name).set(sum(1 for v in licenses.values() if v["state"] == name))
        self.metrics.licenses.labels("active").set(sum(1 for v in licenses.values() if v["active_now"]))
        self.metrics.licenses.labels("suspended").set(sum(1 for v in licenses.values() if v["suspended_until"]))

    # --------------------------------------------------------------------------------- heartbeat

    async def heartbeat(self, epoch: int) -> None:
        """One heartbeat per license per epoch, batched; never twice (journal + on-chain state)."""
        if self._heartbeat_epoch == epoch:
            return
        if any(e.state in ("signed", "sent") for e in self.store.live_for("heartbeat", epoch)):
            await self.sender.recover()
        due = [i for i, v in self.snapshot.licenses.items()
               if v["state"] == "delegated" and not v["active_now"] and not v["suspended_until"]]
        if not due:
            if any(v["active_now"] for v in self.snapshot.licenses.values()):
                self._heartbeat_epoch = epoch
            return
        protocol = self.c["AuditProtocol"]
        for i in range(0, len(due), HEARTBEAT_BATCH):
            batch = due[i:i + HEARTBEAT_BATCH]
            receipt = await self.sender.send("heartbeat", protocol.address, protocol.encode("heartbeat", batch),
                                             epoch=epoch, meta={"licenses": batch})
            self.metrics.heartbeat_txs.inc()
            self.metrics.heartbeats.inc(len(batch))
            self.metrics.last_heartbeat_epoch.set(epoch)
            self.snapshot.last_heartbeat = {"epoch": epoch, "licenses": len(batch), "tx": receipt["transactionHash"],
                                            "block": int(receipt["blockNumber"], 16)}
            for token_id in batch:
                self.snapshot.licenses[token_id]["active_now"] = True
                self.snapshot.licenses[token_id]["active_epoch"] = epoch
            log.info("heartbeat for %d licenses in epoch %d (tx %s)", len(batch), epoch, receipt["transactionHash"])
        self._heartbeat_epoch = epoch

    # ----------------------------------------------------------------------------------- rewards

    async def rewards(self, epoch: int) -> None:
        """Balances and what this operator's licenses and commission can claim (once per epoch)."""
        if self._rewards_epoch == epoch:
            return
        vault, token = self.c["RewardVault"], self.c["RewardToken"]
        native = await self.rpc.get_balance(self.signer.address)
        reward = await token.call("balanceOf", self.signer.address)
        commission = await vault.call("commissionOf", self.signer.address)
        claimable = 0
        for token_id in self.snapshot.licenses:
            claimable += await vault.call("claimable", token_id)
        self.snapshot.balances = {"native_wei": str(native), "reward_wei": str(reward),
                                  "commission_wei": str(commission), "licenses_claimable_wei": str(claimable)}
        self.metrics.balance.labels("native").set(native)
        self.metrics.balance.labels("reward").set(reward)
        self.metrics.commission.set(commission)
        self.metrics.license_claimable.set(claimable)
        alerts = []
        if native < self.cfg.gas.min_balance_wei:
            alerts.append(f"operator gas balance {native} wei is below {self.cfg.gas.min_balance_wei}: fund "
                          f"{self.signer.address}")
            log.critical("ALERT %s", alerts[-1])
        self.snapshot.alerts = alerts
        self._rewards_epoch = epoch

    # ------------------------------------------------------------------------------------ health

    async def _probe_endpoints(self) -> None:
        """Ask every endpoint for its head, alone, every 5 s: /health names the dead ones."""
        if time.monotonic() - self._probe_time < 5:
            return
        self._probe_time = time.monotonic()
        results = []
        for i, endpoint in enumerate(self.rpc.endpoints):
            probe = RpcClient([self.cfg.chain.rpc_urls[i]], timeout=min(2.0, self.cfg.chain.request_timeout))
            try:
                head = await probe.block_number()
                results.append({"url": endpoint.label, "ok": True, "head": head})
            except RpcException as exc:
                self.metrics.rpc_errors.labels(endpoint.label).inc()
                results.append({"url": endpoint.label, "ok": False, "error": str(exc)[:200]})
            finally:
                await probe.close()
        self.snapshot.endpoints = results

    def health(self) -> tuple[int, list[str]]:
        """(200 healthy | 206 partly | 503 unhealthy, reasons)."""
        s = self.snapshot
        reasons = []
        stale_after = max(30.0, 10 * self.cfg.chain.poll_interval)
        if s.last_tick is None or time.time() - s.last_tick > stale_after:
            reasons.append("no chain head processed recently" + (f": {s.last_error}" if s.last_error else ""))
            return 503, reasons
        down = [e["url"] for e in s.endpoints if not e["ok"]]
        if s.endpoints and len(down) == len(s.endpoints):
            return 503, [f"every RPC endpoint is down: {', '.join(down)}"]
        if down:
            reasons.append(f"RPC endpoint down (failed over): {', '.join(down)}")
        if s.last_error:
            reasons.append(f"last tick failed: {s.last_error}")
        reasons.extend(s.alerts)
        return (206 if reasons else 200), reasons

    def _route_health(self, _path: str):
        status, reasons = self.health()
        word = {200: "healthy", 206: "partly healthy", 503: "unhealthy"}[status]
        return json_response(status, {"status": word, "reasons": reasons})

    def status(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "operator": s.operator,
            "chain_id": s.chain_id,
            "head_block": s.head_block,
            "epoch": s.epoch,
            "licenses": {str(k): v for k, v in sorted(s.licenses.items())},
            "last_heartbeat": s.last_heartbeat,
            "balances": s.balances,
            "endpoints": s.endpoints,
            "alerts": s.alerts,
            "journal": s.journal,
            "pid": os.getpid(),
        }

    def _route_status(self, _path: str):
        return json_response(200, self.status())

    def _route_verdicts(self, _path: str):
        return json_response(200, {"verdicts": self.audits.verdicts()})

    def _route_transactions(self, _path: str):
        """GET /transactions: the journal's last 20 transactions, newest first (the portal's operator tab)."""
        rows = self._evidence_reader().execute(
            "SELECT purpose, epoch, nonce, tx_hash, state, block, gas_used, error, created FROM tx_journal "
            "ORDER BY id DESC LIMIT 20").fetchall()
        keys = ("purpose", "epoch", "nonce", "tx_hash", "state", "block", "gas_used", "error", "created")
        return json_response(200, {"transactions": [dict(zip(keys, tuple(r))) for r in rows]})

    def _route_evidence(self, path: str):
        """GET /evidence/<root>: the bundle's exact bytes (keccak256 of the body is the root)."""
        root = path.rsplit("/", 1)[-1].lower()
        if not (root.startswith("0x") and len(root) == 66 and all(c in "0123456789abcdef" for c in root[2:])):
            return json_response(400, {"error": "evidence root must be 0x + 64 hex digits"})
        con = self._evidence_reader()
        row = con.execute("SELECT bundle FROM evidence WHERE root = ?", (root,)).fetchone()
        if row is None:
            return json_response(404, {"error": f"no evidence {root} on this node"})
        return 200, "application/json", bytes(row[0])

    def _route_baseline(self, path: str):
        """GET /baselines/<hash>.json: a MODEL baseline bundle this node fetched (and checked) for its audits."""
        name = path.rsplit("/", 1)[-1].lower()
        h = name.removesuffix(".json")
        if not (h.startswith("0x") and len(h) == 66 and all(c in "0123456789abcdef" for c in h[2:])):
            return json_response(400, {"error": "a baseline is named by its hash: 0x + 64 hex digits + .json"})
        f = self.data_dir / "baselines" / f"{h}.json"
        if not f.is_file():
            return json_response(404, {"error": f"no baseline {h} on this node"})
        return 200, "application/json", f.read_bytes()

    def _evidence_reader(self):
        import threading

        local = self.__dict__.setdefault("_readers", threading.local())
        if not hasattr(local, "con"):
            local.con = self.store.reader()
        return local.con
