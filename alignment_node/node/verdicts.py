"""Audit and commit (sections 6-7): every target assigned to this operator's active licenses is audited once
(the licenses assigned to it share the result) by its kind's plug-in, concurrently under a deadline; every
evidence bundle is stored by its root before anything is sent; then one opening per license (its duty targets,
verdicts and roots; a target without an audit result gets NO_VOTE and a zero root) stored in SQLite under the
epoch's salt, and one commit transaction of the operator's commitment over the epoch's listed votes (issue 16,
commitments.py): everything the reveal needs is stored before the commit is sent, so a crash and restart still
reveals it.
"""

from __future__ import annotations

import logging
import time

from .. import protocol as P
from ..audits import build_auditors
from ..evidence_audit import bind
from ..audits.base import AuditEnv, AuditResult, EpochContext, Target
from .chainguard import in_flight, keep_reorg_notes, lost_to_reorg, resent
from .commitments import epoch_attempt, epoch_salt, opening_votes, record_attempt
from .txsender import EPOCH_TOUCH_GAS
from .duties import Duties
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.audit")

MIN_BLOCKS_LEFT_TO_COMMIT = 3  # do not start an epoch's audits when fewer blocks remain
LAST_COMMIT_BLOCKS = 2  # nor send a commit this close to the epoch's end: it would be mined in the next and revert
RECENT_VERDICTS = 500  # what /verdicts shows


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


class StorageChains:
    """``await rpc_for(chain_id)`` of the storage auditor: the configured storage chain (its chain id checked on
    first use), or the node's own chain when none is configured; None for any other chain."""

    def __init__(self, parts: NodeParts):
        self.p = parts
        self.urls = list(parts.cfg.audit.storage_rpc_urls)
        self.timeout = parts.cfg.chain.request_timeout
        self._client = None
        self._chain_id: int | None = None

    async def __call__(self, chain_id: int):
        if not self.urls:
            return self.p.rpc if chain_id == int(self.p.manifest["chainId"]) else None
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


class VerdictService:
    def __init__(self, parts: NodeParts, duties: Duties):
        self.p = parts
        self.duties = duties
        self.auditors = build_auditors(parts.cfg, AuditEnv(parts.data_dir, StorageChains(parts)))

    async def tick(self, view: TickView) -> None:
        await self.recheck_commit(view.epoch)
        active = view.active_licenses()
        if active:
            await self.audit_and_commit(view.epoch, view.head, active)

    async def audit_and_commit(self, epoch: int, head: int, licenses: list[int]) -> None:
        store = self.p.store
        done = {o["license"] for o in store.openings(epoch)}
        prepared = store.openings(epoch, "prepared")
        if prepared:
            await self.commit(epoch, prepared)  # a previous run stored them; the commitment is the same
            return
        todo = [lic for lic in licenses if lic not in done]
        if not todo:
            return
        next_start = await self.p.c["AuditProtocol"].call("epochStartBlock", epoch + 1)
        if next_start - head < MIN_BLOCKS_LEFT_TO_COMMIT:
            log.warning("epoch %d: only %d blocks left, too late to audit and commit", epoch, next_start - head)
            return
        duties, enabled = await self.duties.of_epoch(epoch, todo)
        # A license with no duty this epoch has nothing to commit (and nothing anyone could report missing).
        duties = {lic: ts for lic, ts in duties.items() if ts}
        if not duties:
            return
        todo = [lic for lic in todo if lic in duties]
        assigned_ids = sorted({t for ts in duties.values() for t in ts})
        results = await self.audit(epoch, assigned_ids, enabled, duties)
        with store.transaction():
            self._prepare_openings(epoch, todo, duties, results)
        self.p.metrics.audits_epoch.set(len(assigned_ids))
        await self.commit(epoch, store.openings(epoch, "prepared"))

    def _prepare_openings(self, epoch: int, todo: list[int], duties: dict, results: dict) -> None:
        salt = epoch_salt(self.p.store, epoch)  # one per epoch, stored with the first opening
        for lic in todo:
            targets = list(duties[lic])
            skipped = [t for t in targets if t not in results]
            if skipped:
                log.error("epoch %d license %d: no audit result for targets %s: it votes NO_VOTE on them (misses)",
                          epoch, lic, skipped)
            verdicts = [results[t].verdict if t in results else P.NO_VOTE for t in targets]
            roots = [results[t].root if t in results else bytes(32) for t in targets]
            row = {"license": lic, "targets": targets, "verdicts": verdicts, "roots": [hex0x(r) for r in roots]}
            # the license's own part of the commitment, hashed alone (for the record; the commit hashes them all)
            own = P.vote_commitment(epoch, self.p.signer.address, salt, opening_votes([row]))
            self.p.store.put_opening(epoch, lic, hex0x(salt), targets, verdicts, row["roots"], hex0x(own))

    async def audit(self, epoch: int, target_ids: list[int], enabled: list[int],
                    duties: dict[int, list[int]] | None = None) -> dict[int, AuditResult]:
        """Audit each target once; store every bundle by its root. Lazy mode skips the audits (drills)."""
        p = self.p
        assigned_to: dict[int, list[int]] = {}
        for lic, ts in sorted((duties or {}).items()):
            for t in ts:
                assigned_to.setdefault(t, []).append(lic)

        seed = self.duties.seed(epoch)

        def sink(tid: int, res: AuditResult) -> AuditResult:
            with p.store.transaction():
                [(_, _, root)] = self._store_bundles(epoch, {tid: res}, seed, assigned_to)
            return AuditResult(res.verdict, {}, stored_root=bytes.fromhex(root[2:]))

        context = EpochContext(seed, assigned_to, sink)
        targets = [await self.duties.target(t) for t in target_ids]
        results: dict[int, AuditResult] = {}
        if p.cfg.audit.lazy:
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
                peers = [await self.duties.target(t) for t in enabled]
                peers = [t for t in peers if t.kind == kind]
                started = time.monotonic()
                out = await auditor.audit_epoch(epoch, assigned, peers, p.cfg.audit.deadline_s, context=context)
                p.metrics.audit_seconds.observe(time.monotonic() - started)
                results.update(out)
        recent = []
        with p.store.transaction():
            stored = self._store_bundles(epoch, results, seed, assigned_to)
        for tid, res, root in stored:
            p.metrics.audits.labels(P.KIND_NAMES.get(self.duties.known(tid).kind, "?"),
                                    P.VERDICT_NAMES[res.verdict]).inc()
            recent.append({"epoch": epoch, "target": tid, "verdict": P.VERDICT_NAMES[res.verdict], "root": root})
            if res.verdict != P.OK:
                log.warning("epoch %d target %d: %s (evidence %s)", epoch, tid, P.VERDICT_NAMES[res.verdict], root)
        p.snapshot.verdicts = (recent + p.snapshot.verdicts)[:RECENT_VERDICTS]
        return results

    def _store_bundles(self, epoch: int, results: dict[int, AuditResult], seed: bytes,
                       assigned_to: dict[int, list[int]]) -> list[tuple[int, AuditResult, str]]:
        """Store each bundle, bound to the epoch, its seed, the target, the verdict and this node's licenses that
        reveal it (evidence_audit.bind: security review M6), by its root; each result then carries only that
        root (the openings commit to it)."""
        out = []
        for tid, res in results.items():
            if res.stored_root is None:  # else a sink stored it already
                body = P.canonical_json(bind(res.bundle, epoch, seed, tid, res.verdict, assigned_to.get(tid, [])))
                root = P.keccak(body)
                self.p.store.put_evidence(hex0x(root), epoch, tid, res.verdict, body)
                res = results[tid] = AuditResult(res.verdict, {}, stored_root=root)
            out.append((tid, res, hex0x(res.stored_root)))
        return out

    async def recheck_commit(self, epoch: int) -> None:
        """A commit is done only while the chain holds its root (chainguard.py): on every new head of the epoch,
        committed openings whose root a reorg dropped are committed again, with the same root."""
        p = self.p
        keep_reorg_notes(p, epoch)
        committed = p.store.openings(epoch, "committed")
        if not committed or p.store.openings(epoch, "prepared") or in_flight(p, "commit", epoch):
            return
        attempt = epoch_attempt(p.store, epoch, p.signer.address)
        if bytes(await p.c["AuditProtocol"].call("rootOf", p.signer.address, epoch)) == attempt.root:
            return
        if not await lost_to_reorg(p, "commit", epoch):
            return
        log.warning("epoch %d: a reorg dropped the commit of root %s: committing it again", epoch,
                    hex0x(attempt.root))
        resent(p, "commit")
        await self.commit(epoch, committed)

    async def commit(self, epoch: int, openings: list[dict]) -> None:
        """Commit ``openings`` (prepared) with one root over the listed votes of every opening of the epoch: a later
        commit replaces the root, so it must cover the openings committed before too."""
        p = self.p
        if not openings:
            return
        protocol = p.c["AuditProtocol"]
        attempt = epoch_attempt(p.store, epoch, p.signer.address)
        licenses = [o["license"] for o in openings]
        # A crash after the commit was mined but before we noted it: the chain already holds the root.
        if bytes(await protocol.call("rootOf", p.signer.address, epoch)) == attempt.root:
            p.store.set_opening_state(epoch, licenses, "committed")
            return
        left = await protocol.call("epochStartBlock", epoch + 1) - await p.rpc.block_number()
        if left <= LAST_COMMIT_BLOCKS:
            log.warning("epoch %d: audits ended %d block(s) before the epoch's end, too late to commit", epoch, left)
            p.metrics.tx_failed.labels("commit", "too-late").inc()
            return
        with p.store.transaction():
            record_attempt(p.store, epoch, attempt)
        await p.sender.send("commit", protocol.address, protocol.encode("commit", epoch, attempt.root), epoch=epoch,
                            meta={"licenses": licenses, "root": hex0x(attempt.root)}, gas_extra=EPOCH_TOUCH_GAS)
        p.store.set_opening_state(epoch, licenses, "committed")
        p.metrics.commits.inc(len(licenses))
        log.info("epoch %d: committed %d licenses (root %s: %d listed votes of %d licenses)", epoch, len(licenses),
                 hex0x(attempt.root), len(attempt.votes), len(attempt.licenses))

    def stop(self) -> None:
        for auditor in self.auditors.values():
            stop = getattr(auditor, "stop", None)
            if stop is not None:
                stop()
