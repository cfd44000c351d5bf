"""The referee duty on chain (docs/protocol.md, "The referee duty"): an operator who holds a baseline's registered
weights, bonded to it in ``RefereeCourt``, judges the (epoch, MODEL target) pairs it is drawn for, after the
committee's reveal window and within ``refereeBlocks``:

1. the committee's votes are read from the chain (``revealers``; an accusing vote's root with ``voteOf``); an OK
   vote has no root on chain since issue 16 (a reveal lists only the votes that are not OK), so the OK bundles
   are found by (epoch, target): in the referee's own node store and in the index ``GET /evidence-of/<e>/<t>``
   of the evidence sources and of the committee's operators (their metadata URI, the public evidence
   listener), each kept only if bound to the epoch, its seed, the target, OK and a committee license that
   revealed OK (``evidence_audit.check``);
2. each bundle's exact bytes come from the referee's own node store or from the evidence sources (any node's
   ``GET /evidence/<root>``), and must hash to their root;
3. ``referee.rescore_bundles`` re-scores the pooled completions with the weights;
4. the verdict is published as a ``REFEREE_VERDICT`` bundle (in the node store, so the node's API serves it) and
   submitted with ``RefereeCourt.submitVerdict``; an INCONCLUSIVE result submits nothing.

It runs in its own process (``alignment-node referee run``): it loads torch and the weights, which the node
(64 MB) never does. What one pass did is returned, one row per (epoch, target)."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Callable, Sequence

from eth_abi import encode

from .. import protocol as P
from ..chain.manifest import scan_logs

log = logging.getLogger("alignment_node.referee")

LOOKBACK_EPOCHS = 4  # past epochs whose verdict window may still be open
MAX_EVIDENCE_BYTES = 16 << 20
MAX_INDEX_BYTES = 1 << 20
FETCH_TIMEOUT = 10.0
SAFETY_BLOCKS = 1  # do not start a verdict in the window's last block: it would land after the window


def fetch_bundle(root: str, sources: Sequence[str], store=None, timeout: float = FETCH_TIMEOUT) -> tuple[bytes | None, str]:
    """The bytes of evidence ``root`` (0x-hex) from ``store`` (a node ``Store`` or ``StoreReader``) or the first
    source that serves bytes hashing to it; (None, why) when none does."""
    problems = []
    if store is not None:
        body = store.evidence(root) if hasattr(store, "evidence") else None
        if body is not None:
            if "0x" + P.keccak(body).hex() == root:
                return body, "store"
            problems.append("store: bytes do not hash to the root")
    for src in sources:
        url = src.rstrip("/") + "/evidence/" + root
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = resp.read(MAX_EVIDENCE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            problems.append(f"{src}: HTTP {exc.code}")
            continue
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{src}: {exc}")
            continue
        if len(body) > MAX_EVIDENCE_BYTES:
            problems.append(f"{src}: larger than {MAX_EVIDENCE_BYTES} bytes")
        elif "0x" + P.keccak(body).hex() != root:
            problems.append(f"{src}: bytes do not hash to the root")
        else:
            return body, src
    return None, "; ".join(problems) or "no evidence source"


def fetch_index(src: str, epoch: int, target: int, timeout: float = FETCH_TIMEOUT) -> list[str]:
    """The evidence roots node API ``src`` stores for (epoch, target) (``GET /evidence-of/<epoch>/<target>``:
    ``{"roots": [...]}``); [] when it serves none or no such index."""
    url = f"{src.rstrip('/')}/evidence-of/{epoch}/{target}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(MAX_INDEX_BYTES + 1)
        roots = json.loads(body)["roots"] if len(body) <= MAX_INDEX_BYTES else []
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("referee: no evidence index at %s: %s", url, exc)
        return []
    return [r.lower() for r in roots if isinstance(r, str) and len(r) == 66 and r.startswith("0x")
            and all(ch in "0123456789abcdef" for ch in r[2:].lower())] if isinstance(roots, list) else []


def _stored_roots(reader, epoch: int, target: int) -> list[str]:
    """The roots of the bundles of (epoch, target) in the referee's own node store (its ``evidence`` table)."""
    con = getattr(reader, "con", None) or getattr(reader, "db", None)
    if con is None:
        return []
    rows = con.execute("SELECT root FROM evidence WHERE epoch = ? AND target = ? ORDER BY root",
                       (epoch, target)).fetchall()
    return [r[0] for r in rows]


def verdict_bundle(v: dict, referee: str) -> bytes:
    """The referee's public evidence: its verdict with the tests, parameters and committee roots it used."""
    return P.canonical_json({
        "kind": "REFEREE_VERDICT", "version": 1, "epoch": v["epoch"], "target": v["target"],
        "baseline": v["baseline"], "referee": referee.lower(), "verdict": v["verdict"], "bundles": v["bundles"],
        "skipped": v["skipped"], "completions": v["completions"], "tests": v["tests"],
        "result": v.get("result"), "per_completion": v.get("per_completion"), "reason": v.get("reason")})


class RefereeDuty:
    """One referee account's duty. ``ctx``: a chain context with ``rpc``, ``c`` (contracts) and ``transact``;
    ``baselines``: hash -> baseline bundle the referee holds the weights of."""

    def __init__(self, ctx, signer, baselines: dict[str, dict], *, sources: Sequence[str] = (), store=None,
                 seed: int = 0, samples: int = 20, rescore: Callable | None = None):
        self.ctx, self.signer = ctx, signer
        self.baselines = {h.lower(): b for h, b in baselines.items()}
        self.sources, self.store = list(sources), store
        self.reader = store.reader() if hasattr(store, "reader") else store
        self.seed, self.samples = seed, samples
        self._rescore = rescore
        self._bound: dict[int, str] = {}
        self._bound_to = 0
        self._bodies: dict[str, bytes] = {}  # OK bundles found by committee_roots, by root

    async def bound_targets(self, head: int) -> dict[int, str]:
        """MODEL targets bound to the baselines held (``TargetBound`` events, read incrementally)."""
        court = self.ctx.c["RefereeCourt"]
        ev = court.abi.event("TargetBound")
        start = self._bound_to or int(self.ctx.manifest.get("deployBlock", 0))
        if head >= start:
            async for logs in scan_logs(self.ctx.rpc, court.address, [ev.topic], start, head):
                for entry in logs:
                    d = ev.decode_entry(entry)
                    h = "0x" + bytes(d["baseline"]).hex()
                    if h in self.baselines:
                        self._bound[int(d["targetId"])] = h
            self._bound_to = head + 1
        return self._bound

    async def committee_roots(self, epoch: int, target: int) -> tuple[list[str], dict[str, str]]:
        """The roots of the committee's evidence for (epoch, target) (the accusing votes' in seat order, then the
        OK bundles by the first seat each is bound to), and what could not be found.

        Since issue 16 a reveal lists only the votes that are not OK: an accusing vote's root is on chain
        (``revealers`` + ``voteOf``); an OK vote is implicit and has no root on chain, so its bundle is looked for
        by (epoch, target) in the referee's own node store and in the index (``GET /evidence-of/<e>/<t>``) of
        the evidence sources and of the committee's operators (their metadata URI), and used only if it is bound
        (``evidence_audit.check``) to the epoch, its seed, the target, OK and a committee license that revealed
        OK, one bundle per license (the first found). Such a license with no bound bundle found is named in the
        second value (``license <id>``)."""
        from ..evidence_audit import check

        protocol = self.ctx.c["AuditProtocol"]
        licenses, verdicts = await protocol.call("revealers", epoch, target)
        roots: list[str] = []
        ok_seats: dict[int, int] = {}  # license -> seat index among the revealers
        for i, (lic, verdict) in enumerate(zip(licenses, verdicts)):
            if verdict == P.OK:
                ok_seats[lic] = i
                continue
            _listed, _verdict, root = await protocol.call("voteOf", epoch, target, lic)
            if bytes(root) != bytes(32) and "0x" + bytes(root).hex() not in roots:
                roots.append("0x" + bytes(root).hex())
        missing: dict[str, str] = {}
        if not ok_seats:
            return roots, missing
        seed = bytes(await protocol.call("seed", epoch))
        candidates = list(_stored_roots(self.reader, epoch, target))
        sources = list(self.sources) + [u for u in await self._operator_urls(epoch, list(ok_seats))
                                        if u not in self.sources]
        for src in sources:
            for root in await asyncio.to_thread(fetch_index, src, epoch, target):
                if root not in candidates:
                    candidates.append(root)
        found: dict[str, int] = {}  # root -> the first seat it is bound to
        covered: set[int] = set()
        for root in candidates:
            body, _where = await asyncio.to_thread(fetch_bundle, root, sources, self.reader)
            if body is None:
                continue
            bound = [lic for lic in ok_seats
                     if check(body, bytes.fromhex(root[2:]), epoch, seed, target, P.OK, lic) is None]
            # One bundle per license (the first found: own store, then the sources): with no root on chain, a
            # node could otherwise serve any number of bundles bound to its license and outweigh the others.
            if bound and not covered.issuperset(bound):
                found[root] = min(ok_seats[lic] for lic in bound)
                covered |= set(bound)
                self._bodies[root] = body  # judge() uses these bytes: they may come from an operator's URL
        roots += sorted(found, key=lambda r: (found[r], r))
        for lic in ok_seats:
            if lic not in covered:
                missing[f"license {lic}"] = "revealed OK; no bundle bound to it found in the store or at the sources"
        return roots, missing

    async def _operator_urls(self, epoch: int, licenses: list[int]) -> list[str]:
        """The metadata URIs (public evidence listeners) of the operators of ``licenses`` in ``epoch``, if http(s)."""
        registry = self.ctx.c["OperatorRegistry"]
        urls: list[str] = []
        for index in {await registry.call("operatorOfAt", lic, epoch) for lic in licenses}:
            if not index:
                continue
            info = await registry.call("getOperator", await registry.call("operatorList", index - 1))
            uri = info[-1] if isinstance(info, (list, tuple)) else info["metadataURI"]
            if uri.startswith(("http://", "https://")) and uri not in urls:
                urls.append(uri)
        return urls

    async def run_pass(self) -> list[dict]:
        """Judge every (epoch, target) this referee is drawn for whose verdict window is open now."""
        rpc, c = self.ctx.rpc, self.ctx.c
        protocol, court = c["AuditProtocol"], c["RefereeCourt"]
        me = self.signer.address
        head = await rpc.block_number()
        _min_bond, referee_blocks, _unbond, _committee = await court.call("params")
        held = [h for h in self.baselines if await court.call("bondOf", bytes.fromhex(h[2:]), me)]
        bound = {t: h for t, h in (await self.bound_targets(head)).items() if h in held}
        epoch = await protocol.call("currentEpoch")
        done = []
        for e in range(max(0, epoch - LOOKBACK_EPOCHS), epoch):
            _start, reveal_end = await protocol.call("revealWindow", e)
            if not reveal_end <= head + 1 < reveal_end + referee_blocks - SAFETY_BLOCKS:
                continue  # a transaction sent now lands in block head + 1: outside the verdict window
            todo = []
            for t in sorted(bound):
                if await court.call("judged", encode_judged_key(e, t, me)) or not await court.call("isAssigned", e, t, me):
                    continue
                todo.append(t)
            if todo:
                done += await self.judge(e, todo, bound)
        return done

    async def judge(self, epoch: int, targets: list[int], bound: dict[int, str]) -> list[dict]:
        """Fetch, re-score (one batch for all targets of the epoch) and submit."""
        items, rows = [], {}
        for t in targets:
            roots, missing = await self.committee_roots(epoch, t)
            rows[t] = {"epoch": epoch, "target": t, "roots": roots, "missing": missing, "verdict": None, "tx": None}
            for root in roots:
                body, where = self._bodies.pop(root, None), "found"
                if body is None:
                    body, where = await asyncio.to_thread(fetch_bundle, root, self.sources, self.reader)
                if body is None:
                    rows[t]["missing"][root] = where
                else:
                    items.append(body)
        verdicts = {}
        if items:
            rescore = self._rescore or _default_rescore
            out = await asyncio.to_thread(rescore, items, {h: self.baselines[h] for h in set(bound.values())},
                                          self.seed, self.samples)
            verdicts = {(v["epoch"], v["target"]): v for v in out}
        for t in targets:
            row = rows[t]
            v = verdicts.get((epoch, t))
            if v is None:
                row["verdict"] = "INCONCLUSIVE"
                row["reason"] = ("no committee evidence could be fetched" if row["roots"] or row["missing"]
                                 else "the committee revealed nothing")
                log.warning("referee: epoch %d target %d: %s", epoch, t, row["reason"])
                continue
            row["verdict"] = v["verdict"]
            if v["verdict"] not in ("OK", "FAULT"):
                row["reason"] = v.get("reason") or "the test was inconclusive"
                continue
            body = verdict_bundle(v, self.signer.address)
            root = "0x" + P.keccak(body).hex()
            code = P.FAULT if v["verdict"] == "FAULT" else P.OK
            if self.store is not None and hasattr(self.store, "put_evidence"):
                self.store.put_evidence(root, epoch, t, code, body)
            row["evidence_root"] = root
            try:
                receipt = await self.ctx.transact("RefereeCourt", "submitVerdict", epoch, t, code,
                                                  bytes.fromhex(root[2:]), signer=self.signer)
            except Exception as exc:  # a revert (window closed, already judged) or a dead RPC: the next target
                row["error"] = str(exc)
                log.error("referee: epoch %d target %d: submitting %s failed: %s", epoch, t, v["verdict"], exc)
                continue
            row["tx"] = receipt["tx"]
            log.info("referee: epoch %d target %d: %s (evidence %s, tx %s)", epoch, t, v["verdict"], root, row["tx"])
        return [rows[t] for t in targets]


def _default_rescore(items: list[bytes], baselines: dict[str, dict], seed: int, samples: int) -> list[dict]:
    from . import referee as R  # torch: only here

    return R.rescore_bundles(items, baselines, seed=seed, samples=samples)


def encode_judged_key(epoch: int, target: int, referee: str) -> bytes:
    """RefereeCourt.judged's key: keccak256(abi.encode(epoch, target, referee))."""
    return P.keccak(encode(["uint256", "uint256", "address"], [epoch, target, referee]))


__all__ = ["RefereeDuty", "fetch_bundle", "verdict_bundle", "encode_judged_key"]
