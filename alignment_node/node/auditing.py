"""The audit loop's services: duties, audits, commit, reveal, settlement and misses, evidence.

Per epoch e, on the node's ticks:
- duties: for each of this operator's licenses active in e, the targets sortition assigns it (section 6);
- audits: every assigned target once (all licenses assigned to it share the result), per kind plug-in,
  concurrently under a deadline; every bundle is stored by its root before anything is sent;
- commit: one commitment per license; the opening (salt, verdicts, roots) is stored in SQLite before the
  commit transaction is sent, so a crash and restart still reveals;
- reveal: in the first `revealBlocks` blocks of e+1, one revealMany for all licenses; a reveal that would
  come too late is logged as a missed reveal with the reason;
- settlement: after the reveal window, settle the targets it voted on and report the misses it can prove
  (licenses assigned to those targets that did not reveal them), for the bounty.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from .. import protocol as P
from ..audits import build_auditors
from ..audits.base import AuditEnv, AuditResult, EpochContext, Target
from ..chain.contracts import ContractRevert
from ..chain.manifest import scan_logs, topic_uint

log = logging.getLogger("alignment_node.audit")

COMMIT_BATCH = 100
REVEAL_MAX_VERDICTS = 250  # verdicts per revealMany transaction (~7M gas, under a quarter of a 30M block)
MIN_BLOCKS_LEFT_TO_COMMIT = 3  # do not start an epoch's audits when fewer blocks remain
SETTLE_LOOKBACK = 8  # epochs whose settlement and misses are still worth pursuing
# Storage the gas estimate may see already written by another node's transaction of the same block (a
# target's tally and evidence slots, a seed): allowed for per verdict / license so a race never runs out of gas.
GAS_PER_VERDICT_UNSEEN = 30_000
GAS_PER_LICENSE_UNSEEN = 5_000
SETTLE_GAS_UNSEEN = 25_000
SETTLE_GRACE_BLOCKS = 6  # blocks a designated settler gets before the other revealers settle in its place
SETTLE_PARALLEL = 64  # settle transactions in flight at once
REVEALED_MARKER = "0x" + "00" * 31 + "01"  # AuditProtocol.REVEALED: what a revealed commitment slot holds


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _reveal_batches(openings: list[dict]) -> list[list[dict]]:
    """Split reveals into transactions of at most REVEAL_MAX_VERDICTS verdicts (at least one license each)."""
    batches: list[list[dict]] = []
    current: list[dict] = []
    count = 0
    for o in openings:
        n = len(o["targets"])
        if current and count + n > REVEAL_MAX_VERDICTS:
            batches.append(current)
            current, count = [], 0
        current.append(o)
        count += n
    if current:
        batches.append(current)
    return batches


class StorageChains:
    """``await rpc_for(chain_id)`` of the storage auditor: the configured storage chain (its chain id checked on
    first use), or the node's own chain when none is configured; None for any other chain."""

    def __init__(self, cfg, node):
        self.node = node
        self.urls = list(cfg.audit.storage_rpc_urls)
        self.timeout = cfg.chain.request_timeout
        self._client = None
        self._chain_id: int | None = None

    async def __call__(self, chain_id: int):
        if not self.urls:
            return self.node.rpc if chain_id == int(self.node.manifest["chainId"]) else None
        if self._client is None:
            from ..chain.rpc import RpcClient

            self._client = RpcClient(self.urls, timeout=self.timeout)
        if self._chain_id is None:
            try:
                self._chain_id = await self._client.chain_id()
            except Exception as exc:
                log.error("audit.storage_rpc_urls: cannot read the chain id: %s", exc)
                return None
        return self._client if self._chain_id == chain_id else None


class AuditService:
    def __init__(self, node):
        self.node = node
        self.cfg = node.cfg
        self.store = node.store
        self.c = node.c
        self.auditors = build_auditors(node.cfg, AuditEnv(node.data_dir, StorageChains(node.cfg, node)))
        self._targets: dict[int, Target] = {}
        self._params: tuple | None = None
        self.recent: list[dict] = []  # what /verdicts shows (published by replacing the list)
        self._settling: asyncio.Task | None = None
        self._seeds: dict[int, bytes] = {}

    # --------------------------------------------------------------------------------- chain reads

    async def params(self) -> tuple[int, int, int]:
        """(revealBlocks, committeeSize, maxCommittee), read once (governance changes need a restart)."""
        if self._params is None:
            reveal_blocks, committee, _min_reveals, max_committee = await self.c["AuditProtocol"].call("params")
            self._params = (reveal_blocks, committee, max_committee)
        return self._params

    async def target(self, target_id: int) -> Target:
        if target_id not in self._targets:
            t = await self.c["TargetRegistry"].call("getTarget", target_id)
            kind, endpoint, identity = t[0], t[4], t[5]
            self._targets[target_id] = Target(target_id, kind, endpoint, bytes(identity))
        return self._targets[target_id]

    async def epoch_duties(self, epoch: int, licenses: list[int]) -> tuple[dict[int, list[int]], list[int]]:
        """({license: [target ids]}, enabled target ids) for ``epoch``."""
        protocol = self.c["AuditProtocol"]
        seed = await protocol.call("seed", epoch)
        if seed == bytes(32):
            return {}, []
        threshold = await protocol.call("threshold", epoch)
        start = await protocol.call("epochStartBlock", epoch)
        enabled = list(await self.c["TargetRegistry"].call("enabledTargetsAt", start))
        self._seeds[epoch] = seed
        return {lic: P.duties(seed, lic, enabled, threshold) for lic in licenses}, enabled

    # ------------------------------------------------------------------------------------- the tick

    async def tick(self, head: int, epoch: int, active_licenses: list[int]) -> None:
        if epoch > 0:
            await self.reveal(epoch - 1, head)
        if active_licenses:
            await self.audit_and_commit(epoch, head, active_licenses)
        # Settlement is not time-critical and may be many transactions: it runs beside the next ticks.
        if self._settling is None or self._settling.done():
            if self._settling is not None and not self._settling.cancelled() and self._settling.exception():
                log.error("settlement failed: %s", self._settling.exception())
            self._settling = asyncio.create_task(self.settle_and_report(head, epoch))

    # ------------------------------------------------------------------------------- audit + commit

    async def audit_and_commit(self, epoch: int, head: int, licenses: list[int]) -> None:
        done = {o["license"] for o in self.store.openings(epoch)}
        prepared = self.store.openings(epoch, "prepared")
        if prepared:
            await self._commit(epoch, prepared)  # a previous run stored them; the commitment is the same
            return
        todo = [lic for lic in licenses if lic not in done]
        if not todo:
            return
        protocol = self.c["AuditProtocol"]
        next_start = await protocol.call("epochStartBlock", epoch + 1)
        if next_start - head < MIN_BLOCKS_LEFT_TO_COMMIT:
            log.warning("epoch %d: only %d blocks left, too late to audit and commit", epoch, next_start - head)
            return
        duties, enabled = await self.epoch_duties(epoch, todo)
        # A license with no duty this epoch has nothing to commit (and nothing anyone could report missing).
        duties = {lic: ts for lic, ts in duties.items() if ts}
        if not duties:
            return
        todo = [lic for lic in todo if lic in duties]
        assigned_ids = sorted({t for ts in duties.values() for t in ts})
        results = await self.audit(epoch, assigned_ids, enabled, duties)
        openings = []
        with self.store.transaction():
            self._prepare_openings(epoch, todo, duties, results, openings)
        self.node.metrics.audits_epoch.set(len(assigned_ids))
        await self._commit(epoch, self.store.openings(epoch, "prepared"))

    def _prepare_openings(self, epoch: int, todo: list[int], duties: dict, results: dict, openings: list) -> None:
        for lic in todo:
            targets = [t for t in duties[lic] if t in results]
            skipped = [t for t in duties[lic] if t not in results]
            if skipped:
                log.error("epoch %d license %d: no audit plug-in for targets %s: they will count as misses",
                          epoch, lic, skipped)
            verdicts = [results[t].verdict for t in targets]
            roots = [results[t].root for t in targets]
            salt = secrets.token_bytes(32)
            commitment = P.commitment(epoch, lic, targets, verdicts, roots, salt)
            self.store.put_opening(epoch, lic, _hex(salt), targets, verdicts, [_hex(r) for r in roots],
                                   _hex(commitment))
            openings.append({"license": lic, "commitment": _hex(commitment)})

    async def audit(self, epoch: int, target_ids: list[int], enabled: list[int],
                    duties: dict[int, list[int]] | None = None) -> dict[int, AuditResult]:
        """Audit each target once; store every bundle by its root. Lazy mode skips the audits (drills)."""
        assigned_to: dict[int, list[int]] = {}
        for lic, ts in sorted((duties or {}).items()):
            for t in ts:
                assigned_to.setdefault(t, []).append(lic)
        def sink(tid: int, res: AuditResult) -> AuditResult:
            with self.store.transaction():
                [(_, _, root)] = self._store_bundles(epoch, {tid: res})
            return AuditResult(res.verdict, {}, stored_root=bytes.fromhex(root[2:]))

        context = EpochContext(self._seeds.get(epoch, bytes(32)), assigned_to, sink)
        for old in [e for e in self._seeds if e < epoch - 2]:
            del self._seeds[old]
        targets = [await self.target(t) for t in target_ids]
        results: dict[int, AuditResult] = {}
        if self.cfg.audit.lazy:
            for t in targets:
                results[t.id] = AuditResult(P.OK, {"version": 1, "lazy": True, "epoch": epoch, "target": t.id})
        else:
            by_kind: dict[int, list[Target]] = {}
            for t in targets:
                by_kind.setdefault(t.kind, []).append(t)
            for kind, assigned in by_kind.items():
                auditor = self.auditors.get(kind)
                if auditor is None:
                    continue
                peers = [await self.target(t) for t in enabled]
                peers = [p for p in peers if p.kind == kind]
                started = time.monotonic()
                out = await auditor.audit_epoch(epoch, assigned, peers, self.cfg.audit.deadline_s, context=context)
                self.node.metrics.audit_seconds.observe(time.monotonic() - started)
                results.update(out)
        recent = []
        with self.store.transaction():
            stored = self._store_bundles(epoch, results)
        for tid, res, root in stored:
            self.node.metrics.audits.labels(P.KIND_NAMES.get(self._targets[tid].kind, "?"),
                                            P.VERDICT_NAMES[res.verdict]).inc()
            recent.append({"epoch": epoch, "target": tid, "verdict": P.VERDICT_NAMES[res.verdict], "root": root})
            if res.verdict != P.OK:
                log.warning("epoch %d target %d: %s (evidence %s)", epoch, tid, P.VERDICT_NAMES[res.verdict], root)
        self.recent = (recent + self.recent)[:500]
        return results

    def _store_bundles(self, epoch: int, results: dict[int, AuditResult]) -> list[tuple[int, AuditResult, str]]:
        out = []
        for tid, res in results.items():
            if res.stored_root is not None:  # a sink stored it already
                out.append((tid, res, _hex(res.stored_root)))
                continue
            body = P.canonical_json(res.bundle)
            root = _hex(P.keccak(body))
            self.store.put_evidence(root, epoch, tid, res.verdict, body)
            out.append((tid, res, root))
        return out

    async def _commit(self, epoch: int, openings: list[dict]) -> None:
        protocol = self.c["AuditProtocol"]
        # A crash after the commit was mined but before we noted it: the chain already holds it.
        pending = []
        for o in openings:
            onchain = await protocol.call("commitmentOf", o["license"], epoch)
            if _hex(onchain) == o["commitment"]:
                self.store.set_opening_state(epoch, [o["license"]], "committed")
            else:
                pending.append(o)
        for i in range(0, len(pending), COMMIT_BATCH):
            batch = pending[i:i + COMMIT_BATCH]
            entries = [(o["license"], bytes.fromhex(o["commitment"][2:])) for o in batch]
            await self.node.sender.send("commit", protocol.address, protocol.encode("commit", epoch, entries),
                                        epoch=epoch, meta={"licenses": [o["license"] for o in batch]},
                                        gas_extra=GAS_PER_LICENSE_UNSEEN * len(batch))
            self.store.set_opening_state(epoch, [o["license"] for o in batch], "committed")
            self.node.metrics.commits.inc(len(batch))
            log.info("epoch %d: committed %d licenses", epoch, len(batch))

    # ------------------------------------------------------------------------------------- reveal

    async def reveal(self, epoch: int, head: int) -> None:
        openings = [o for o in self.store.openings(epoch) if o["state"] in ("committed", "prepared")]
        if not openings:
            return
        protocol = self.c["AuditProtocol"]
        start, end = await protocol.call("revealWindow", epoch)
        if head + 1 < start:
            return
        if head + 1 >= end:
            reason = f"reveal window of epoch {epoch} is blocks [{start}, {end}); the head is already {head}"
            self.store.set_opening_state(epoch, [o["license"] for o in openings], "missed", reason)
            self.node.metrics.missed_reveals.inc(len(openings))
            log.error("missed reveal for %d licenses: %s", len(openings), reason)
            return
        committed = []
        for o in openings:
            onchain = _hex(await protocol.call("commitmentOf", o["license"], epoch))
            if onchain == o["commitment"]:
                committed.append(o)
            elif onchain == REVEALED_MARKER:
                self.store.set_opening_state(epoch, [o["license"]], "revealed")
            else:
                self.store.set_opening_state(epoch, [o["license"]], "missed", "commitment never reached the chain")
                self.node.metrics.missed_reveals.inc()
                log.error("missed reveal: license %d epoch %d: its commit never reached the chain", o["license"], epoch)
        # All batches in flight at once (nonces in order): the window is only `revealBlocks` blocks long.
        await asyncio.gather(*(self._reveal_batch(epoch, batch) for batch in _reveal_batches(committed)))

    async def _reveal_batch(self, epoch: int, batch: list[dict]) -> None:
        protocol = self.c["AuditProtocol"]
        reveals = [(o["license"], o["targets"], o["verdicts"], [bytes.fromhex(r[2:]) for r in o["roots"]],
                    bytes.fromhex(o["salt"][2:])) for o in batch]
        verdicts = sum(len(o["targets"]) for o in batch)
        licenses = [o["license"] for o in batch]
        try:
            await self.node.sender.send("reveal", protocol.address, protocol.encode("revealMany", epoch, reveals),
                                        epoch=epoch, meta={"licenses": licenses},
                                        gas_extra=GAS_PER_VERDICT_UNSEEN * verdicts)
        except ContractRevert as exc:
            reason = f"reveal reverted: {exc.error or exc}"
            self.store.set_opening_state(epoch, licenses, "missed", reason)
            self.node.metrics.missed_reveals.inc(len(batch))
            log.error("missed reveal for %d licenses of epoch %d: %s", len(batch), epoch, reason)
            return
        self.store.set_opening_state(epoch, licenses, "revealed")
        self.node.metrics.reveals.inc(len(batch))
        log.info("epoch %d: revealed %d licenses", epoch, len(batch))

    # ------------------------------------------------------------------------- settlement + misses

    async def settle_and_report(self, head: int, epoch: int) -> None:
        protocol = self.c["AuditProtocol"]
        for e in range(max(0, epoch - SETTLE_LOOKBACK), epoch):
            if self.store.get(f"settled.{e}"):
                continue
            openings = [o for o in self.store.openings(e) if o["state"] == "revealed"]
            if not openings:
                continue
            _start, end = await protocol.call("revealWindow", e)
            if head < end:
                continue
            mine = {o["license"] for o in openings}
            targets = sorted({t for o in openings for t in o["targets"]})
            # One node settles each target: the one holding its lowest revealing license. The others step in
            # only if it has not happened SETTLE_GRACE_BLOCKS later (that node may be down).
            late = head >= end + SETTLE_GRACE_BLOCKS
            pending = False
            mine_to_settle = []
            for t in targets:
                *_, outcome = await protocol.call("tally", e, t)
                if outcome != 0:
                    continue
                revealed, _ = await protocol.call("revealers", e, t)
                if not late and (not revealed or min(revealed) not in mine):
                    pending = True
                    continue
                mine_to_settle.append(t)
            # Pipelined: up to SETTLE_PARALLEL transactions in flight (nonces in order, receipts awaited together).
            for i in range(0, len(mine_to_settle), SETTLE_PARALLEL):
                chunk = mine_to_settle[i:i + SETTLE_PARALLEL]
                sent = await asyncio.gather(*(self._send_quietly("settle", protocol.encode("settle", e, t), e,
                                                                 ("AlreadySettled",)) for t in chunk))
                self.node.metrics.settled.inc(sum(sent))
                await self.report_misses(e, [t for t, ok in zip(chunk, sent) if ok], mine)
            if late or not pending:
                self.store.put(f"settled.{e}", True)

    async def report_misses(self, epoch: int, targets: list[int], mine: set[int]) -> None:
        """Report every license assigned one of ``targets`` in ``epoch`` that did not reveal it."""
        if not targets:
            return
        protocol, vault = self.c["AuditProtocol"], self.c["RewardVault"]
        ev = vault.abi.event("Heartbeats")
        # Heartbeats of an epoch are only accepted during it: read that epoch's blocks, not the whole chain.
        first = await protocol.call("epochStartBlock", epoch)
        last = await protocol.call("epochStartBlock", epoch + 1) - 1
        active: set[int] = set()
        async for logs in scan_logs(self.node.rpc, vault.address, [ev.topic, topic_uint(epoch)], first, last):
            for entry in logs:
                decoded = ev.decode([bytes.fromhex(t[2:]) for t in entry["topics"]],
                                    bytes.fromhex(entry["data"][2:]))
                active.update(decoded["tokenIds"])
        if not active:
            return
        seed = await protocol.call("seed", epoch)
        threshold = await protocol.call("threshold", epoch)
        _, _, max_committee = await self.params()
        for t in targets:
            revealed, _verdicts = await protocol.call("revealers", epoch, t)
            if len(revealed) >= max_committee:
                continue
            missing = [lic for lic in sorted(active - set(revealed) - mine) if P.is_assigned(seed, t, lic, threshold)]
            for lic in missing:
                ok = await self._send_quietly("report_miss", protocol.encode("reportMiss", epoch, lic, t), epoch,
                                              ("MissAlreadyReported", "NotAssigned", "NotMissed"))
                if ok:
                    self.node.metrics.misses_reported.inc()
                    log.info("reported miss: license %d did not reveal target %d in epoch %d", lic, t, epoch)

    async def _send_quietly(self, purpose: str, data: bytes, epoch: int, expected: tuple[str, ...],
                            gas_extra: int = SETTLE_GAS_UNSEEN) -> bool:
        """Send a transaction another node may have made pointless; an expected revert is not an error."""
        protocol = self.c["AuditProtocol"]
        try:
            await self.node.sender.send(purpose, protocol.address, data, epoch=epoch, expected_errors=expected,
                                        gas_extra=gas_extra, urgent=False)
            return True
        except ContractRevert as exc:
            if exc.error_name in expected or exc.error_name is None:
                # None: mined but reverted, i.e. another node's transaction in the same block got there first.
                log.debug("%s not needed: %s", purpose, exc.error_name or "lost a same-block race")
                return False
            raise

    # ---------------------------------------------------------------------------------------- api

    def verdicts(self) -> list[dict]:
        return list(self.recent)
