"""The node's alert conditions, reported to the AlertEngine (alert_delivery.py) on every tick.

- license_penalized: a ``Penalized`` event of RewardVault for a license of this operator, seen this epoch or
  the one before (the alert clears once the penalties stop);
- license_suspended: the node's license view says the license is suspended;
- missed_reveal: the latest epoch whose reveals are decided has missed ones (reveal.py records them);
- low_balance: the operator's gas balance is below ``gas.min_balance_wei``;
- rpc_failover: the node's RPC client moved to another endpoint within the last FAILOVER_ACTIVE_S seconds;
- target_flagged: a ``ViolationFlagged`` event for any target, until a later epoch of it is OK (settled OK,
  ``TargetSettled``, or OK by ``outcomeOf`` without a settlement: its committee all revealed OK, issue 16) or
  FLAG_STALE_EPOCHS epochs pass without a new flag;
- disk_low / disk_full: the data directory has less free space than ``data_min_free_mb`` / is full, and the node
  sends no transaction until space returns (disk.py; a full disk may leave no room to queue this one: the store
  logs it as a critical ALERT line and /health says it);
- node_outdated: the node's release is below governance's minimum (version_gate.py);
- fee_cap_reached: a transaction is stalled and its fee is at ``gas.max_fee_gwei``, so it cannot be replaced
  with a higher one (txsender.py ``fee_capped``); it clears once that nonce is mined.

Events are read every SCAN_INTERVAL_S seconds (and at each new epoch) from the block after the last one read;
that position and what it found are kept in the store, so a restart resumes where it stopped. Reading starts
two epochs back on the first run (and after a long stop). Nothing here raises into the node: a failed read is
logged and retried.
"""

from __future__ import annotations

import logging
import time

from .. import protocol as P
from ..chain.manifest import LOG_CHUNK_BLOCKS, scan_logs
from .alert_delivery import AlertEngine, Condition
from .disk import low_space_reason
from .parts import NodeParts, TickView
from .store import DiskFull
from .version_gate import outdated_reason

log = logging.getLogger("alignment_node.alerts")

SCAN_INTERVAL_S = 15.0
FAILOVER_ACTIVE_S = 300.0
FLAG_STALE_EPOCHS = 10
SCAN_STATE_KEY = "alerts.scan"


def _decode(event, entry: dict) -> dict:
    return event.decode_entry(entry)


def _log_order(entry: dict) -> tuple[int, int]:
    return int(entry["blockNumber"], 16), int(entry["logIndex"], 16)


class AlertConditions:
    """Watches one node (its snapshot, store, RPC client and contracts) and reports to its AlertEngine."""

    def __init__(self, parts: NodeParts):
        self.node = parts
        cfg = parts.cfg.alerts
        self.engine = AlertEngine(cfg, parts.store, cfg.node_name or parts.signer.address)
        state = parts.store.get(SCAN_STATE_KEY, {}) if self.engine.active else {}
        self._scanned_to: int | None = state.get("to")
        self._penalties = {int(k): v for k, v in state.get("penalties", {}).items()}  # license: {seen, details}
        self._flagged = {int(k): v for k, v in state.get("flagged", {}).items()}  # target: {seen, details}
        self._scan_epoch: int | None = None
        self._scan_time = 0.0

    async def tick(self, view: TickView) -> None:
        await self.evaluate(view.head, view.epoch)

    async def evaluate(self, head: int, epoch: int) -> None:
        """Read new events if due, then report every kind of condition (a no-op without webhooks)."""
        if not self.engine.active:
            return
        try:
            if epoch != self._scan_epoch or time.monotonic() - self._scan_time >= SCAN_INTERVAL_S:
                await self._read_events(head, epoch)
        except DiskFull:
            pass  # the store said it once; the disk_full alert below says it
        except Exception as exc:  # alerts must never fail the node's tick
            log.warning("alerts: reading chain events failed (retried next tick): %s", exc)
        self._penalties = {k: v for k, v in self._penalties.items() if v["seen"] >= epoch - 1}
        self._flagged = {k: v for k, v in self._flagged.items() if v["seen"] >= epoch - FLAG_STALE_EPOCHS}
        try:
            self._report(epoch)
        except DiskFull:
            pass  # no room to queue notifications (the store logged the disk_full ALERT line)
        except Exception:
            log.exception("alerts: evaluating conditions failed")

    # ------------------------------------------------------------------------------------ events

    async def _read_events(self, head: int, epoch: int) -> None:
        rpc, protocol, vault = self.node.rpc, self.node.c["AuditProtocol"], self.node.c["RewardVault"]
        penalized = vault.abi.event("Penalized")
        flagged, settled = protocol.abi.event("ViolationFlagged"), protocol.abi.event("TargetSettled")
        start = None if self._scanned_to is None else self._scanned_to + 1
        if start is None or head - start > LOG_CHUNK_BLOCKS:
            # The first run, or back after a long stop: only the last two epochs' events are news.
            recent = await protocol.call("epochStartBlock", max(0, epoch - 2))
            start = recent if start is None else max(start, recent)
        mine = set(self.node.snapshot.licenses)
        async for entries in scan_logs(rpc, vault.address, [penalized.topic], start, head):
            for entry in entries:
                ev = _decode(penalized, entry)
                if ev["tokenId"] in mine:
                    self._penalties[ev["tokenId"]] = {"seen": epoch, "details": {
                        "license": ev["tokenId"], "epoch": ev["epoch"],
                        "penalty": P.PENALTY_NAMES.get(ev["kind"], str(ev["kind"])),
                        "amount_wei": str(ev["amount"]), "forfeited_wei": str(ev["forfeited"])}}
        async for entries in scan_logs(rpc, protocol.address, [[flagged.topic, settled.topic]], start, head):
            for entry in sorted(entries, key=_log_order):
                topic = bytes.fromhex(entry["topics"][0][2:])
                ev = _decode(flagged if topic == flagged.topic else settled, entry)
                target, previous = ev["targetId"], self._flagged.get(ev["targetId"])
                if previous is not None and ev["epoch"] < previous["details"]["epoch"]:
                    continue  # a late settlement of an older epoch says nothing about now
                if topic == flagged.topic:
                    self._flagged[target] = {"seen": epoch, "details": {
                        "target": target, "epoch": ev["epoch"], "outcome": P.VERDICT_NAMES[ev["outcome"]],
                        "evidence_root": "0x" + bytes(ev["evidenceRoot"]).hex()}}
                elif ev["outcome"] == P.OK:
                    self._flagged.pop(target, None)
        # A target whose committee all revealed OK is not settled any more (issue 16): its OK is outcomeOf's.
        for target, flag in list(self._flagged.items()):
            if epoch - 1 > flag["details"]["epoch"] and await protocol.call("outcomeOf", epoch - 1, target) == P.OK:
                self._flagged.pop(target)
        # Both scans are idempotent: a failure above leaves the position, and the next read repeats them.
        self._scanned_to = max(start - 1, head)
        self.node.store.put(SCAN_STATE_KEY, {"to": self._scanned_to, "penalties": self._penalties,
                                             "flagged": self._flagged})
        self._scan_epoch, self._scan_time = epoch, time.monotonic()

    # -------------------------------------------------------------------------------- conditions

    def _report(self, epoch: int) -> None:
        self.engine.report("license_penalized", self._penalized())
        self.engine.report("license_suspended", self._suspended())
        self.engine.report("missed_reveal", self._missed_reveals(epoch))
        self.engine.report("low_balance", self._low_balance())
        self.engine.report("rpc_failover", self._failover())
        self.engine.report("target_flagged", self._targets_flagged())
        self.engine.report("node_outdated", self._outdated())
        self.engine.report("disk_full", self._disk_full())
        self.engine.report("disk_low", self._disk_low())
        self.engine.report("fee_cap_reached", self._fee_capped())

    def _penalized(self) -> list[Condition]:
        out = []
        for lic, p in sorted(self._penalties.items()):
            if lic in self.node.snapshot.licenses:  # still ours
                d = p["details"]
                out.append(Condition(f"license_penalized:{lic}", f"license {lic} was penalized {d['amount_wei']} wei "
                                     f"({d['penalty']}) for epoch {d['epoch']}", d))
        return out

    def _suspended(self) -> list[Condition]:
        return [Condition(f"license_suspended:{lic}", f"license {lic} is suspended until epoch {until}: no "
                          "heartbeat, duties or credit until then", {"license": lic, "until_epoch": until})
                for lic, until in sorted((k, v.get("suspended_until")) for k, v in self.node.snapshot.licenses.items())
                if until]

    def _low_balance(self) -> list[Condition]:
        native = self.node.snapshot.balances.get("native_wei")
        minimum, address = self.node.cfg.gas.min_balance_wei, self.node.signer.address
        if native is None or int(native) >= minimum:
            return []
        return [Condition("low_balance", f"operator gas balance {native} wei is below {minimum} wei: fund {address}",
                          {"balance_wei": native, "min_balance_wei": str(minimum), "operator": address})]

    def _failover(self) -> list[Condition]:
        last = self.node.rpc.last_failover
        if last is None or time.time() - last >= FAILOVER_ACTIVE_S:
            return []
        down = [e["url"] for e in self.node.snapshot.endpoints if not e["ok"]]
        return [Condition("rpc_failover", "the node's RPC client failed over to another endpoint"
                          + (f"; down: {', '.join(down)}" if down else ""),
                          {"endpoints_down": down,
                           "last_failover": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last))})]

    def _targets_flagged(self) -> list[Condition]:
        return [Condition(f"target_flagged:{t}", f"target {t} was flagged {f['details']['outcome']} in epoch "
                          f"{f['details']['epoch']} (evidence {f['details']['evidence_root']})", f["details"])
                for t, f in sorted(self._flagged.items())]

    def _fee_capped(self) -> list[Condition]:
        return [Condition(f"fee_cap_reached:{nonce}", stuck["summary"],
                          {k: v for k, v in stuck.items() if k != "summary"})
                for nonce, stuck in sorted(self.node.sender.fee_capped.items())]

    def _disk_full(self) -> list[Condition]:
        full = self.node.store.full
        return [Condition("disk_full", f"{full}: no transaction is sent until space returns",
                          dict(self.node.snapshot.disk))] if full else []

    def _disk_low(self) -> list[Condition]:
        low = None if self.node.store.full else low_space_reason(self.node.snapshot.disk)
        return [Condition("disk_low", low, dict(self.node.snapshot.disk))] if low else []

    def _outdated(self) -> list[Condition]:
        reason = outdated_reason(self.node.snapshot.version_gate)
        return [Condition("node_outdated", reason, dict(self.node.snapshot.version_gate))] if reason else []

    def _missed_reveals(self, epoch: int) -> list[Condition]:
        """The latest epoch whose reveals are decided (the current epoch reveals the previous one's)."""
        for e in (epoch - 1, epoch - 2):
            decided = [o for o in self.node.store.openings(e) if o["state"] in ("revealed", "missed")]
            if not decided:
                continue
            missed = [o for o in decided if o["state"] == "missed"]
            if not missed:
                return []
            return [Condition("missed_reveal", f"{len(missed)} license(s) missed the reveal of epoch {e}: "
                              f"{missed[0]['reason']}", {"epoch": e, "licenses": [o["license"] for o in missed],
                                                         "reason": missed[0]["reason"]})]
        return []
