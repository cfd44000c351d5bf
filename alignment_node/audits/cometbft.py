"""COMETBFT audit: does a validator sign its chain's blocks, has it double-signed, and does the RPC endpoint it
registered tell the truth about the chain?

Identity. A COMETBFT target's registered ``identity`` is the UTF-8 text ``<chain id>/<ADDRESS>`` (the
validator's 20-byte consensus address in hex, ``comet_identity``), or just ``<chain id>`` for a target that is
an RPC endpoint of the chain and no validator. Its ``endpoint`` is a CometBFT RPC base URL of that chain.

Observation, one epoch, once per chain (``CometAuditor.audit_epoch``):

1. the chain's endpoints: every assigned and every other enabled COMETBFT target of that chain (their
   registered endpoints), and the configured ``audit.cometbft_rpc_urls`` that serve it, at most
   ``max_endpoints``; ``GET /status`` of each. An endpoint serving another chain id is left out of the chain's
   view (and is its own target's fault);
2. the new heights: ``from..to`` after the last one this auditor audited, at most ``window`` of them, with
   ``to`` one below the highest height any endpoint reports (its commit is in block ``to + 1``). What each
   height showed (every validator's flag, verified duplicate votes) is kept for the last ``window`` heights,
   so validators are judged over a sliding window like a chain's slashing window, each height fetched once;
3. ``GET /block?height=h`` of every endpoint for ``h`` in ``from..to+1``: block ``h``'s id and header, and
   ``last_commit``, the commit of ``h - 1``; ``GET /validators?height=h`` (every page) of every endpoint the
   first time a header names a validator set (its ``validators_hash``), the set most endpoints serve kept;
4. each endpoint's commit of each height is verified in full against the set (every signature that is not
   ABSENT, NIL ones too, and more than 2/3 of the power committing); a signature verified once is not verified
   again when another endpoint serves the same bytes. A height's accepted block is the one a commit that
   verifies attests; its commit gives each validator's flag at that height;
5. ``DuplicateVoteEvidence`` in the accepted blocks, each checked (both votes signed by the accused key,
   same height, round and type, different block ids).

Judgement (``evaluate``, pure), checks in order:

- ``reachable``/``well_formed``: the target's own endpoint answered every call, and nothing it sent was
  malformed (int64 as numbers, bad base64, 12 fractional digits, more signatures than validators, ...);
- ``chain_id``: its ``/status`` and headers name the registered chain;
- ``signatures``: no signature it served fails verification (each recorded with the public key and the
  vote, so anyone can repeat it): a forged signature is the endpoint's fault, never the validator's;
- ``agrees``: the block id it serves at each height is the accepted one;
- ``double_sign``: no verified duplicate vote of the validator in a block of the window;
- ``liveness``: the chain made a new height within ``halt_after_s`` (else every target of the chain is
  UNREACHABLE with the same evidence: a halt is the set's fault, not one validator's);
- ``uptime``: the validator missed (ABSENT or NIL) at most ``max_missed_pct`` % of the heights of the window
  where it was in the set (with at least ``min_heights`` such heights; fewer: not judged). A validator that
  left the set (jailed or removed) is reported with the height it left at, and is OK unless it double-signed.

Verdict: FAULT if ``well_formed``, ``chain_id``, ``signatures``, ``agrees``, ``double_sign`` or ``uptime``
failed; else UNREACHABLE if ``liveness`` or ``reachable`` failed; else OK. As for the other kinds, an
UNREACHABLE resting on a call this auditor's own time budget cut short is not returned at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..cometbft import rpc as R
from ..cometbft import types as T
from ..cometbft import verify as V
from ..protocol import FAULT, KIND_COMETBFT, KIND_NAMES, OK, UNREACHABLE, VERDICT_NAMES
from .base import UNANSWERED, AuditResult, EpochContext, Target, make_policy
from .http import GARBAGE, AuditHttpClient, classify_envelope, describe, epoch_client, last_attempts

__all__ = ["CometAuditor", "CometPolicy", "comet_identity", "parse_comet_identity", "evaluate"]

log = logging.getLogger("alignment_node.audits.cometbft")

KEPT = 10  # bad signatures / disagreements recorded in full per target (the rest counted)
SIG_CACHE = 50_000


def comet_identity(chain_id: str, address: bytes | None = None) -> bytes:
    if not chain_id or "/" in chain_id:
        raise ValueError(f"bad chain id {chain_id!r}")
    return (chain_id if address is None else f"{chain_id}/{address.hex().upper()}").encode()


def parse_comet_identity(identity: bytes) -> tuple[str, bytes | None]:
    """(chain id, validator address or None) of a registered COMETBFT identity; ValueError if unusable."""
    try:
        text = identity.decode()
    except UnicodeDecodeError:
        raise ValueError("a COMETBFT identity is UTF-8 text '<chain id>/<ADDRESS>'") from None
    chain_id, _, addr = text.partition("/")
    if not chain_id or not 0 < len(chain_id) <= 50:
        raise ValueError(f"bad chain id in identity {text!r}")
    if not addr:
        return chain_id, None
    try:
        address = bytes.fromhex(addr)
    except ValueError:
        raise ValueError(f"identity {text!r}: the address is not hex") from None
    if len(address) != 20:
        raise ValueError(f"identity {text!r}: an address has 20 bytes")
    return chain_id, address


@dataclass(frozen=True)
class CometPolicy:
    request_deadline_ms: int = 3000
    max_response_bytes: int = 4 << 20
    max_connections: int = 32
    window: int = 100  # heights audited per epoch at most
    max_endpoints: int = 8
    max_missed_pct: int = 50  # uptime FAULT above this share of missed heights in the set
    min_heights: int = 10  # fewer heights in the set: uptime not judged
    halt_after_s: int = 30  # no new height for longer: the chain halted
    heights_at_once: int = 8
    retry_pause_ms: int = 100
    min_call_ms: int = 500

    def judged(self) -> dict[str, int]:
        d = asdict(self)
        for k in ("max_connections", "heights_at_once", "max_response_bytes"):
            del d[k]
        return d


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _block_id_json(b: T.BlockID) -> dict[str, Any]:
    return {"hash": b.hash.hex().upper(), "parts": {"total": b.parts_total, "hash": b.parts_hash.hex().upper()}}


def _block_id_of(d: dict[str, Any]) -> T.BlockID:
    return T.BlockID(bytes.fromhex(d["hash"]), int(d["parts"]["total"]), bytes.fromhex(d["parts"]["hash"]))


@dataclass
class _Endpoint:
    url: str
    observations: list[dict[str, Any]] = field(default_factory=list)
    status: Any = None
    served_chain_id: str | None = None
    bad_signatures: list[dict[str, Any]] = field(default_factory=list)
    n_bad: int = 0
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    n_disagree: int = 0
    blocks: dict[int, Any] = field(default_factory=dict)  # height -> parsed Block (only while in use)


@dataclass
class _Member:
    in_set: int = 0
    signed: int = 0
    missed: list[int] = field(default_factory=list)
    pub_key: bytes = b""
    last_seen: int | None = None
    double_signs: list[dict[str, Any]] = field(default_factory=list)


class _ChainView:
    """What the auditor learned of one chain this epoch."""

    def __init__(self, chain_id: str):
        self.chain_id = chain_id
        self.endpoints: dict[str, _Endpoint] = {}
        self.latest_height = 0
        self.latest_time: T.Timestamp | None = None
        self.window: tuple[int, int] | None = None
        self.accepted = 0
        self.members: dict[bytes, _Member] = {}
        self.sets: dict[bytes, list[Any]] = {}  # validators_hash -> validators
        self.set_at: dict[int, bytes] = {}
        self.sig_ok: dict[tuple, bool] = {}
        self.halted = False
        self.now_ms = 0
        self.last_accepted: int | None = None


class CometAuditor:
    """The COMETBFT plug-in. ``extra_urls``: RPC endpoints this node trusts to reach chains (any chain; each is
    used for the chain its ``/status`` names)."""

    kind = KIND_COMETBFT

    def __init__(self, extra_urls: list[str] | None = None, policy: CometPolicy | None = None, **overrides: int):
        self.policy = make_policy(CometPolicy, policy, overrides)
        self.extra_urls = list(extra_urls or [])
        self._last: dict[str, int] = {}  # chain id -> last height audited
        self._history: dict[str, dict[int, dict[bytes, int]]] = {}  # chain -> height -> address -> flag
        self._keys: dict[str, dict[bytes, bytes]] = {}  # chain -> address -> ed25519 public key
        self._double: dict[str, list[tuple[int, bytes, dict[str, Any]]]] = {}  # chain -> (height, address, record)

    def judge(self, bundle: dict[str, Any]) -> int:
        return evaluate(bundle)[0]

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        pol = self.policy
        t0 = time.monotonic()
        end = t0 + deadline_s * 0.95
        client = epoch_client(pol, t0)
        by_chain: dict[str, list[tuple[Target, bytes | None]]] = {}
        for t in assigned:
            try:
                chain_id, address = parse_comet_identity(t.identity)
            except ValueError as exc:
                log.error("target %d: registered identity unusable: %s", t.id, exc)
                continue
            by_chain.setdefault(chain_id, []).append((t, address))
        peer_urls: dict[str, list[str]] = {}
        for t in peers:
            try:
                peer_urls.setdefault(parse_comet_identity(t.identity)[0], []).append(t.endpoint)
            except ValueError:
                continue
        results: dict[int, AuditResult] = {}
        for chain_id, targets in by_chain.items():
            urls = list(dict.fromkeys([t.endpoint for t, _ in targets]))
            for u in peer_urls.get(chain_id, []) + self.extra_urls:
                if u not in urls and len(urls) < max(pol.max_endpoints, len(targets)):
                    urls.append(u)
            view = await self._observe_chain(client, chain_id, urls, end)
            self._window_members(view)
            for t, address in targets:
                res = self._result(epoch, t, address, view, context)
                if res is not None:
                    results[t.id] = res
        return results

    # ------------------------------------------------------------------------------------------ observing

    async def _get(self, client: AuditHttpClient, ep: _Endpoint, call: str, path: str, extract,
                   deadline_at: float) -> Any:
        """One call with one retry after a transient failure; the parsed result or None."""
        for attempt in (1, 2):
            async with client.session(ep.url) as s:
                obs = await s.get(path, lambda st, body: classify_envelope(st, body, extract), deadline_at)
            obs.update(call=call, attempt=attempt)
            ep.observations.append(obs)
            if obs["status"] == "ok":
                return obs.pop("result")
            if obs["status"] in GARBAGE or obs["status"] == "rpc_error" or attempt == 2:
                return None
            await asyncio.sleep(min(self.policy.retry_pause_ms / 1000, max(0.0, deadline_at - time.monotonic())))
        return None  # pragma: no cover

    async def _observe_chain(self, client: AuditHttpClient, chain_id: str, urls: list[str],
                             end: float) -> _ChainView:
        pol = self.policy
        view = _ChainView(chain_id)
        view.endpoints = {u: _Endpoint(u) for u in urls}

        async def status(ep: _Endpoint) -> None:
            st = await self._get(client, ep, "status", "/status", R.parse_status, end)
            if st is not None:
                ep.status = st
                ep.served_chain_id = st.chain_id

        await asyncio.gather(*(status(ep) for ep in view.endpoints.values()))
        good = [ep for ep in view.endpoints.values() if ep.status is not None and ep.served_chain_id == chain_id]
        view.now_ms = time.time_ns() // 1_000_000
        if not good:
            return view
        # The median of what the endpoints report (the lower one of an even count): one endpoint claiming a far
        # future height or a fresh time on a halted chain cannot move the window or hide the halt.
        heights = sorted(ep.status.latest_height for ep in good)
        times = sorted((ep.status.latest_block_time for ep in good), key=lambda ts: (ts.seconds, ts.nanos))
        view.latest_height = heights[(len(heights) - 1) // 2]
        view.latest_time = times[(len(times) - 1) // 2]
        age_s = view.now_ms / 1000 - (view.latest_time.seconds + view.latest_time.nanos / 1e9)
        view.halted = age_s > pol.halt_after_s
        to = view.latest_height - 1
        earliest = max(ep.status.earliest_height for ep in good)
        start = max(self._last.get(chain_id, to - pol.window) + 1, to - pol.window + 1, earliest + 1)
        if start > to:
            return view
        view.window = (start, to)

        async def block(ep: _Endpoint, h: int) -> None:
            if h not in ep.blocks:
                ep.blocks[h] = await self._get(client, ep, f"block:{h}", f"/block?height={h}", R.parse_block, end)

        for lo in range(start, to + 1, pol.heights_at_once):
            hi = min(to, lo + pol.heights_at_once - 1)
            await asyncio.gather(*(block(ep, h) for ep in good for h in range(lo, hi + 2)))
            for h in range(lo, hi + 1):
                await self._judge_height(client, view, good, h, end)
            for ep in good:
                for h in [k for k in ep.blocks if k <= hi]:
                    del ep.blocks[h]
        if view.last_accepted is not None:  # heights no commit could be verified for are tried again next epoch
            self._last[chain_id] = view.last_accepted
        return view

    def _window_members(self, view: _ChainView) -> None:
        """Each validator's record over the last ``window`` heights this auditor has seen of the chain."""
        history = self._history.setdefault(view.chain_id, {})
        last = self._last.get(view.chain_id)
        if last is None:
            return
        low = last - self.policy.window + 1
        for h in [h for h in history if h < low]:
            del history[h]
        doubles = self._double.setdefault(view.chain_id, [])
        doubles[:] = [d for d in doubles if d[0] >= low]
        view.window = (max(low, min(history, default=last)), last)
        keys = self._keys.get(view.chain_id, {})
        for h in sorted(history):
            for address, flag in history[h].items():
                m = view.members.setdefault(address, _Member(pub_key=keys.get(address, b"")))
                m.in_set += 1
                m.last_seen = h
                if flag == V.COMMIT:
                    m.signed += 1
                else:
                    m.missed.append(h)
        for h, address, record in doubles:
            view.members.setdefault(address, _Member(pub_key=keys.get(address, b""))).double_signs.append(record)

    async def _validator_set(self, client: AuditHttpClient, view: _ChainView, good: list[_Endpoint], h: int,
                             vhash: bytes, end: float) -> list[Any] | None:
        if vhash in view.sets:
            return view.sets[vhash]

        async def fetch(ep: _Endpoint):
            out, page = [], 1
            while True:
                got = await self._get(client, ep, f"validators:{h}:{page}",
                                      f"/validators?height={h}&page={page}&per_page=100", R.parse_validators, end)
                if got is None:
                    return None
                out += got.validators
                if len(out) >= got.total or not got.validators or page >= 100:
                    return out if len(out) == got.total else None
                page += 1

        sets = await asyncio.gather(*(fetch(ep) for ep in good))
        votes: dict[bytes, tuple[int, list[Any]]] = {}
        for vals in sets:
            if vals is None:
                continue
            digest = hashlib.sha256(b"".join(v.address + v.pub_key + v.voting_power.to_bytes(8, "big", signed=True)
                                             for v in vals)).digest()
            n, _ = votes.get(digest, (0, vals))
            votes[digest] = (n + 1, vals)
        if not votes:
            return None
        best = max(votes.values(), key=lambda x: x[0])[1]
        if len(view.sets) > 64:
            view.sets.clear()
        view.sets[vhash] = best
        return best

    def _verify(self, view: _ChainView, validators: list[Any], commit: Any) -> list[Any]:
        """check_signatures with a cache of signatures already verified (same bytes from several endpoints)."""
        key = (commit.height, commit.round, commit.block_id,
               tuple((s.block_id_flag, s.validator_address, s.timestamp, s.signature) for s in commit.signatures))
        digest = hashlib.sha256(repr(key).encode()).digest()
        if digest in view.sig_ok:
            return view.sig_ok[digest]
        checks = V.check_signatures(view.chain_id, validators, commit)
        if len(view.sig_ok) > SIG_CACHE:
            view.sig_ok.clear()
        view.sig_ok[digest] = checks
        return checks

    async def _judge_height(self, client: AuditHttpClient, view: _ChainView, good: list[_Endpoint], h: int,
                            end: float) -> None:
        served = []  # (endpoint, block h, commit of h from block h+1)
        for ep in good:
            b, nxt = ep.blocks.get(h), ep.blocks.get(h + 1)
            if b is None or nxt is None or nxt.last_commit is None:
                continue
            if b.header.chain_id != view.chain_id or nxt.header.chain_id != view.chain_id:
                ep.served_chain_id = b.header.chain_id if b.header.chain_id != view.chain_id else nxt.header.chain_id
                continue
            served.append((ep, b, nxt.last_commit))
        if not served:
            return
        accepted: dict[T.BlockID, int] = {}
        verified: list[tuple[_Endpoint, Any, Any, Any]] = []
        for ep, b, commit in served:
            validators = await self._validator_set(client, view, good, h, b.header.validators_hash, end)
            if validators is None:
                continue
            try:
                checks = self._verify(view, validators, commit)
            except T.CometError as exc:  # e.g. more signatures than validators
                self._note_bad(ep, {"height": h, "reason": str(exc)})
                continue
            bad = [c for c in checks if c.valid is False]
            for c in bad:
                sig = commit.signatures[c.index]
                self._note_bad(ep, {
                    "height": h, "round": commit.round, "index": c.index, "reason": c.reason,
                    "flag": sig.block_id_flag, "address": sig.validator_address.hex().upper(),
                    "timestamp": T.format_time(sig.timestamp), "signature": _b64(sig.signature),
                    "block_id": _block_id_json(commit.block_id),
                    "pub_key": _b64(validators[c.index].pub_key) if c.index < len(validators) else None})
            power = sum(v.voting_power for v in validators)
            committed = sum(validators[c.index].voting_power for c in checks if c.flag == V.COMMIT and c.valid)
            if not bad and committed > power * 2 // 3 and commit.height == h and commit.block_id == b.block_id:
                accepted[b.block_id] = accepted.get(b.block_id, 0) + 1
                verified.append((ep, b, commit, validators))
        if not accepted:
            return
        chosen = max(accepted, key=lambda k: accepted[k])
        for ep, b, commit in served:
            if b.block_id != chosen or commit.block_id != chosen:
                ep.n_disagree += 1
                if len(ep.disagreements) < KEPT:
                    ep.disagreements.append({"height": h, "served": _block_id_json(b.block_id),
                                             "commit": _block_id_json(commit.block_id),
                                             "accepted": _block_id_json(chosen)})
        ep, b, commit, validators = next(x for x in verified if x[1].block_id == chosen)
        view.accepted += 1
        view.last_accepted = max(h, view.last_accepted or h)
        keys = self._keys.setdefault(view.chain_id, {})
        if len(keys) > 10_000:
            keys.clear()
        for v in validators:
            keys[v.address] = v.pub_key
        self._history.setdefault(view.chain_id, {})[h] = {
            v.address: commit.signatures[i].block_id_flag for i, v in enumerate(validators)}
        for ev in b.evidence:
            if not isinstance(ev, R.DuplicateVoteEvidence):
                continue
            addr = ev.vote_a.validator_address
            key = keys.get(addr)
            if key is None:
                continue
            ok, why = V.verify_duplicate_vote(ev, view.chain_id, key)
            if ok:
                self._double.setdefault(view.chain_id, []).append((h, addr, {
                    "height": h, "vote_a": _vote_json(ev.vote_a), "vote_b": _vote_json(ev.vote_b),
                    "pub_key": _b64(key)}))
            else:
                log.warning("chain %s height %d: duplicate-vote evidence that does not verify: %s",
                            view.chain_id, h, why)

    @staticmethod
    def _note_bad(ep: _Endpoint, record: dict[str, Any]) -> None:
        ep.n_bad += 1
        if len(ep.bad_signatures) < KEPT:
            ep.bad_signatures.append(record)

    # --------------------------------------------------------------------------------------------- bundles

    def _result(self, epoch: int, t: Target, address: bytes | None, view: _ChainView,
                context: EpochContext | None) -> AuditResult | None:
        pol = self.policy
        ep = view.endpoints.get(t.endpoint)
        if ep is None:
            return None
        validator = None
        if address is not None:
            m = view.members.get(address)
            validator = {"address": address.hex().upper(), "in_set": 0, "signed": 0, "missed": [],
                         "last_in_set": None, "double_signs": []}
            if m is not None:
                validator.update(in_set=m.in_set, signed=m.signed, missed=m.missed, last_in_set=m.last_seen,
                                 double_signs=m.double_signs, pub_key=_b64(m.pub_key))
        bundle = {
            "version": 1, "kind": KIND_NAMES[KIND_COMETBFT], "epoch": epoch,
            "target": {"id": t.id, "endpoint": t.endpoint, "identity": t.identity.decode(errors="replace")},
            "policy": pol.judged(),
            "chain": {"chain_id": view.chain_id, "endpoints": len(view.endpoints),
                      "window": list(view.window) if view.window else None, "accepted_heights": view.accepted,
                      "latest_height": view.latest_height,
                      "latest_time": T.format_time(view.latest_time) if view.latest_time else None,
                      "observed_unix_ms": view.now_ms, "halted": view.halted},
            "observations": sorted(ep.observations, key=lambda o: o["started_ms"]),
            "rpc": {"served_chain_id": ep.served_chain_id, "bad_signatures": ep.bad_signatures,
                    "bad_signature_count": ep.n_bad, "disagreements": ep.disagreements,
                    "disagreement_count": ep.n_disagree},
            "validator": validator,
        }
        verdict, checks = evaluate(bundle)
        if verdict == UNREACHABLE and any(
                o["status"] == "timeout" and o.get("allowed_ms", 0) < min(pol.min_call_ms, pol.request_deadline_ms)
                for o in last_attempts(bundle["observations"]).values()):
            log.warning("epoch %d target %d: audit cut short by the audit deadline; no verdict", epoch, t.id)
            return None
        bundle["checks"] = checks
        bundle["verdict"] = VERDICT_NAMES[verdict]
        result = AuditResult(verdict, bundle)
        if context is not None and context.sink is not None:
            result = context.sink(t.id, result)
        return result


def _vote_json(v: T.Vote) -> dict[str, Any]:
    return {"type": v.type, "height": str(v.height), "round": v.round, "block_id": _block_id_json(v.block_id),
            "timestamp": T.format_time(v.timestamp), "validator_address": v.validator_address.hex().upper(),
            "validator_index": v.validator_index, "signature": _b64(v.signature)}


def _vote_of(d: dict[str, Any]) -> T.Vote:
    return T.Vote(type=int(d["type"]), height=int(d["height"]), round=int(d["round"]),
                  block_id=_block_id_of(d["block_id"]), timestamp=T.parse_time(d["timestamp"]),
                  validator_address=bytes.fromhex(d["validator_address"]), validator_index=int(d["validator_index"]),
                  signature=base64.b64decode(d["signature"]))


def _signature_fails(chain_id: str, rec: dict[str, Any]) -> bool:
    """Whether a recorded bad signature really fails (so a bundle cannot frame an endpoint)."""
    if "signature" not in rec:  # a commit the parser or the length rule rejected: the reason is the evidence
        return True
    if rec["pub_key"] is None or rec["signature"] is None:
        return True
    block_id = _block_id_of(rec["block_id"]) if rec["flag"] == V.COMMIT else None
    msg = T.vote_sign_bytes(V.PRECOMMIT, rec["height"], rec["round"], block_id, T.parse_time(rec["timestamp"]),
                            chain_id)
    pub = base64.b64decode(rec["pub_key"])
    if T.address_of(pub).hex().upper() != rec["address"]:
        return True  # the signature's address is not the validator's at that index
    return not T.verify_signature(pub, msg, base64.b64decode(rec["signature"]))


def evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """(verdict, checks) a COMETBFT bundle supports. Pure."""
    policy, chain, rpc, val = bundle["policy"], bundle["chain"], bundle["rpc"], bundle.get("validator")
    chain_id = chain["chain_id"]
    final = last_attempts(bundle["observations"])
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    unanswered = [describe(o) for o in final.values() if o["status"] in UNANSWERED]
    bad = [describe(o) for o in final.values() if o["status"] in GARBAGE]
    check("reachable", bool(final) and not unanswered, "; ".join(unanswered[:5]) or f"{len(final)} calls answered")
    check("well_formed", not bad if final else None, "; ".join(bad[:5]) or "every answer well-formed")
    served = rpc["served_chain_id"]
    check("chain_id", None if served is None else served == chain_id,
          "not observed" if served is None else f"serves chain {served!r}, registered {chain_id!r}")
    forged = [r for r in rpc["bad_signatures"] if _signature_fails(chain_id, r)]
    check("signatures", not forged,
          f"{rpc['bad_signature_count']} signatures or commits it served fail verification, e.g. "
          + "; ".join(f"height {r['height']}" + (f" index {r['index']} ({r['reason']})" if "index" in r
                                                  else f": {r['reason']}") for r in forged[:3])
          if forged else "every commit signature it served verifies")
    check("agrees", rpc["disagreement_count"] == 0,
          f"{rpc['disagreement_count']} heights where its block id is not the one the chain's commits attest, "
          "e.g. " + ", ".join(str(d["height"]) for d in rpc["disagreements"][:5])
          if rpc["disagreement_count"] else "agrees with the chain's verified commits")
    if val is not None:
        proven = []
        for d in val["double_signs"]:
            try:
                ok, _ = V.verify_duplicate_vote((_vote_of(d["vote_a"]), _vote_of(d["vote_b"])), chain_id,
                                                base64.b64decode(d["pub_key"]))
            except (ValueError, KeyError, TypeError):
                ok = False
            if ok:
                proven.append(d["height"])
        check("double_sign", not proven, f"duplicate votes in the chain's evidence at height(s) {proven}"
              if proven else f"{len(val['double_signs'])} duplicate votes recorded, none verified"
              if val["double_signs"] else "no duplicate votes in the window")
    window = chain["window"]
    check("liveness", not chain["halted"],
          f"no new height since {chain['latest_time']} (height {chain['latest_height']}), more than "
          f"{policy['halt_after_s']} s before {chain['observed_unix_ms']} ms" if chain["halted"]
          else f"height {chain['latest_height']} at {chain['latest_time']}")
    if val is not None:
        n, missed = val["in_set"], len(val["missed"])
        left = (f"; not in the set after height {val['last_in_set']}" if window and val["last_in_set"] is not None
                and val["last_in_set"] < window[1] else "")
        if n < policy["min_heights"]:
            check("uptime", None, f"in the set at {n} of the window's verified heights (fewer than "
                                  f"{policy['min_heights']}: not judged){left}")
        else:
            ok = missed * 100 <= policy["max_missed_pct"] * n
            check("uptime", ok, f"missed {missed} of {n} heights in the set ({100 * missed / n:.1f} %, limit "
                                f"{policy['max_missed_pct']} %)" + (f": {val['missed'][:20]}" if missed else "") + left)
    failed = {c["name"] for c in checks if c["ok"] is False}
    if failed & {"well_formed", "chain_id", "signatures", "agrees", "double_sign", "uptime"}:
        return FAULT, checks
    if failed & {"liveness", "reachable"}:
        return UNREACHABLE, checks
    return OK, checks
