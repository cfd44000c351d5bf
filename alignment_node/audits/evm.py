"""EVM_RPC audit: is the target an honest, live JSON-RPC node of its registered chain?

Identity. An EVM_RPC target's registered ``identity`` is ``abi.encode(uint256 chainId, bytes32 genesisHash)``
(64 bytes; ``evm_identity``). Targets with the same identity are one chain's peers.

Observation, one epoch (``EvmAuditor.audit_epoch``):

1. first round, every observed target (the assigned ones plus a fixed sample of ``peer_pool`` other members of
   each chain they belong to), one keep-alive connection each, calls in order, stopping at the first failure:
   ``eth_chainId``, ``eth_getBlockByNumber("0x0", false)`` (genesis), ``eth_blockNumber`` (head),
   ``eth_getBlockByNumber("latest", false)``;
2. common height of a chain = median head of its good members (first round complete, chain id and genesis
   as registered) - ``max_lag_blocks`` - ``safety_margin_blocks``: every member that does not lag has it;
3. second round, at least ``head_interval_ms`` after the start: ``eth_getBlockByNumber(common)`` from every good
   member, and, from the assigned ones, ``eth_blockNumber`` again (a second head reading).

Each member is observed once per epoch whatever the number of assigned targets that compare against it. A call
that fails transiently (timeout, refused, reset, HTTP error, JSON-RPC error) is retried once; garbage
(malformed, invalid UTF-8, oversized) is not. Each call is bounded by ``request_deadline_ms`` and by the round's
share of the epoch's deadline.

Judgement (``judge``/``evaluate``, pure functions of the bundle), checks in order:

- ``reachable``: every call made got an answer (the last attempt was not timeout/refused/reset/HTTP error);
- ``well_formed``: no answer was malformed, invalid UTF-8, oversized, a JSON-RPC error, or had a wrong shape;
- ``chain_id``, ``genesis``: as registered;
- ``lag``: the target's highest head reading is at most ``max_lag_blocks`` below the peers' median head;
- ``halted``: the head did not stay put for ``halt_ms`` or more while the peers' median is above it (the
  earliest reading may come from an earlier epoch: the auditor remembers when it first saw each target's head,
  and the bundle records that reading as ``earlier``);
- ``fork``: the target's block hash at the common height equals the strict majority of the peers' hashes;
- ``timestamp``: no block observed is later than its observation's wall-clock time + ``future_tolerance_ms``,
  and timestamps do not decrease with the block number.

Verdict: FAULT if any of the checks after ``reachable`` failed (evidence beats silence), else UNREACHABLE if
``reachable`` failed, else OK. A check without the data it needs is recorded with ``ok: null``.

Bundle (canonical JSON, integers only)::

    {"version", "kind": "EVM_RPC", "epoch", "target": {"id", "endpoint", "identity"}, "policy": {...},
     "t0_unix_ms", "observations": [the target's, each with "call" and "attempt"], "earlier": {...} | null,
     "common_height", "peers": [{"id", "head", "common_hash"}, ... up to peer_sample], "checks", "verdict"}

``peers`` is a deterministic sample (seeded by epoch and target id) of at most ``peer_sample`` good members of
the chain, so a bundle stays small with a thousand targets; the peers' records are their own first-round head
and second-round hash, observed by the same auditor in the same epoch.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from eth_abi import encode

from ..protocol import FAULT, KIND_EVM_RPC, KIND_NAMES, OK, UNREACHABLE, VERDICT_NAMES
from .base import BUNDLE_VERSION, AuditResult, EpochContext, Target, answer_checks, evaluate_bundle, make_policy
from .base import bounded_each as _each
from .http import AuditHttpClient, Session, call_with_retry, last_attempts

__all__ = [
    "EvmAuditor",
    "EvmPolicy",
    "evm_identity",
    "parse_evm_identity",
    "parse_quantity",
    "parse_hash",
    "parse_block",
    "parse_block_or_none",
    "evaluate",
    "CHECKS",
]

CHECKS = ("reachable", "well_formed", "chain_id", "genesis", "lag", "halted", "fork", "timestamp")
MAX_QUANTITY_DIGITS = 64  # a uint256


# ------------------------------------------------------------------------------------------ identity


def evm_identity(chain_id: int, genesis_hash: bytes) -> bytes:
    """The registered identity of an EVM_RPC target: abi.encode(uint256 chainId, bytes32 genesisHash)."""
    return encode(["uint256", "bytes32"], [chain_id, genesis_hash])


def parse_evm_identity(identity: bytes) -> tuple[int, str]:
    """(chain id, genesis hash as lower-case 0x hex) of an EVM_RPC identity; ValueError if it is not one."""
    if len(identity) != 64:
        raise ValueError(f"an EVM_RPC identity is 64 bytes (abi.encode(uint256, bytes32)), got {len(identity)}")
    return int.from_bytes(identity[:32], "big"), "0x" + identity[32:].hex()


# ------------------------------------------------------------------------------------ result parsers


def parse_quantity(value: Any) -> int:
    """A JSON-RPC quantity ("0x1a", at most 256 bits) as an int; ValueError otherwise."""
    if not isinstance(value, str) or value[:2] not in ("0x", "0X") or not 2 < len(value) <= 2 + MAX_QUANTITY_DIGITS:
        raise ValueError(f"not a hex quantity: {str(value)[:80]!r}")
    try:
        return int(value[2:], 16)
    except ValueError:
        raise ValueError(f"not a hex quantity: {value[:80]!r}") from None


def parse_hash(value: Any) -> str:
    """A 32-byte hash ("0x" + 64 hex digits) in lower case; ValueError otherwise."""
    if not isinstance(value, str) or len(value) != 66 or value[:2] not in ("0x", "0X"):
        raise ValueError(f"not a 32-byte hash: {str(value)[:80]!r}")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"not a 32-byte hash: {value!r}") from None
    return "0x" + value[2:].lower()


def parse_block(value: Any) -> dict[str, Any]:
    """What an audit keeps of a block object: {"number", "hash", "timestamp"}; ValueError if it is not one."""
    if not isinstance(value, dict):
        raise ValueError(f"not a block object: {type(value).__name__}")
    return {"number": parse_quantity(value.get("number")), "hash": parse_hash(value.get("hash")),
            "timestamp": parse_quantity(value.get("timestamp"))}


def parse_block_or_none(value: Any) -> dict[str, Any] | None:
    """A block, or None where the node says it has no such block (JSON null)."""
    return None if value is None else parse_block(value)


# ------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class EvmPolicy:
    """The audit's parameters; the judgement's are copied into every bundle."""

    request_deadline_ms: int = 2000  # one call, connect to last byte
    max_response_bytes: int = 1 << 20  # a bigger answer is a fault
    max_connections: int = 64  # open connections to targets at once (all audits of the auditor)
    max_lag_blocks: int = 10  # head below the peers' median by more is a fault
    safety_margin_blocks: int = 2  # common height below the median head, besides max_lag_blocks
    halt_ms: int = 60_000  # no head progress for this long, while peers are ahead, is a fault
    head_interval_ms: int = 0  # the second round starts at least this long after the first
    future_tolerance_ms: int = 15_000  # a block timestamp may run ahead of the auditor's clock by this much
    peer_sample: int = 16  # peers recorded in a bundle
    peer_pool: int = 32  # non-assigned members of a chain observed per epoch
    retry_pause_ms: int = 100  # between a transient failure and its retry
    first_round_pct: int = 60  # share of the epoch deadline for the first round

    def judged(self, deadline_ms: int) -> dict[str, int]:
        """The policy as a bundle records it."""
        d = asdict(self)
        for k in ("max_connections", "peer_pool", "first_round_pct"):
            del d[k]
        d["deadline_ms"] = deadline_ms
        return d


# ----------------------------------------------------------------------------------------- judgement


def _ok_result(final: dict[str, dict[str, Any]], call: str) -> Any:
    o = final.get(call)
    return o.get("result") if o is not None and o["status"] == "ok" else None


def _readings(bundle: dict[str, Any], final: dict[str, dict[str, Any]]) -> list[tuple[int, int]]:
    """(wall-clock ms, head) readings of the target, oldest first, the earlier epoch's included."""
    t0 = bundle["t0_unix_ms"]
    out = []
    earlier = bundle.get("earlier")
    if earlier is not None:
        out.append((earlier["at_unix_ms"], earlier["head"]))
    for call in ("head", "latest", "head2"):
        r = _ok_result(final, call)
        if r is None:
            continue
        o = final[call]
        out.append((t0 + o["started_ms"] + o["elapsed_ms"], r["number"] if isinstance(r, dict) else r))
    out.sort(key=lambda x: x[0])
    return out


def _stuck_since(readings: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The earliest reading not below the last one: the head made no progress since then."""
    if not readings:
        return None
    last = readings[-1][1]
    for at, head in readings:
        if head >= last:
            return at, head
    return None  # pragma: no cover - the last reading qualifies


def evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """(verdict, checks) that an EVM_RPC bundle's observations support. Pure; ValueError on a malformed bundle."""
    return evaluate_bundle(bundle, KIND_EVM_RPC, _evaluate)


def _evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    policy = bundle["policy"]
    observations = bundle["observations"]
    final = last_attempts(observations)
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    answer_checks(final, check)  # reachable / well_formed

    # chain_id / genesis
    try:
        chain_id, genesis_hash = parse_evm_identity(bytes.fromhex(bundle["target"]["identity"].removeprefix("0x")))
    except ValueError as exc:
        chain_id = genesis_hash = None
        check("chain_id", False, f"registered identity unusable: {exc}")
        check("genesis", False, "registered identity unusable")
    if chain_id is not None:
        got = _ok_result(final, "chain_id")
        if got is None:
            check("chain_id", None, "not observed")
        else:
            check("chain_id", got == chain_id, f"served {got}, registered {chain_id}")
        block = _ok_result(final, "genesis")
        if "genesis" in final and final["genesis"]["status"] == "ok" and block is None:
            check("genesis", False, "no block 0 (null)")
        elif block is None:
            check("genesis", None, "not observed")
        else:
            ok = block["hash"] == genesis_hash and block["number"] == 0
            check("genesis", ok, f"block {block['number']} hash {block['hash']}, registered {genesis_hash}")

    # lag / halted: against the peers' median head
    readings = _readings(bundle, final)
    peer_heads = [p["head"] for p in bundle["peers"] if isinstance(p.get("head"), int)]
    this_epoch = [h for at, h in readings if at >= bundle["t0_unix_ms"]]
    median = statistics.median_low(peer_heads) if peer_heads else None
    if not this_epoch:
        check("lag", None, "no head observed")
    elif median is None:
        check("lag", None, "no peer to compare with")
    else:
        best = max(this_epoch)
        check("lag", median - best <= policy["max_lag_blocks"],
              f"head {best}, peers' median {median} ({len(peer_heads)} peers), lag {median - best}, "
              f"allowed {policy['max_lag_blocks']}")
    since = _stuck_since(readings)
    if since is None or median is None:
        check("halted", None, "no head observed" if since is None else "no peer to compare with")
    else:
        last_at, last = readings[-1]
        still = last_at - since[0]
        halted = still >= policy["halt_ms"] and median > last
        check("halted", not halted,
              f"head {last} not above {since[1]} for {still} ms (limit {policy['halt_ms']} ms), peers' median {median}")

    # fork: hash at the common height against the peers' majority
    height = bundle.get("common_height")
    common_obs = final.get("common")
    if height is None or common_obs is None or common_obs["status"] != "ok":
        check("fork", None, "no block at the common height observed")
    else:
        block = common_obs.get("result")
        hashes = [p["common_hash"] for p in bundle["peers"] if isinstance(p.get("common_hash"), str)]
        majority, votes = Counter(hashes).most_common(1)[0] if hashes else (None, 0)
        if block is None:
            best = max(this_epoch) if this_epoch else -1
            check("fork", best < height, f"no block at common height {height} although its head is {best}")
        elif block["number"] != height:
            check("fork", False, f"asked for block {height}, answered block {block['number']}")
        elif votes * 2 <= len(hashes):
            check("fork", None, f"no majority among {len(hashes)} peers at height {height}")
        else:
            check("fork", block["hash"] == majority,
                  f"hash at {height} {block['hash']}, peers' majority {majority} ({votes}/{len(hashes)})")

    # timestamp: not in the future, not decreasing with the number
    blocks = []
    for call in ("genesis", "common", "latest"):
        r = _ok_result(final, call)
        if isinstance(r, dict):
            o = final[call]
            blocks.append((r["number"], r["timestamp"], bundle["t0_unix_ms"] + o["started_ms"] + o["elapsed_ms"]))
    if not blocks:
        check("timestamp", None, "no block observed")
    else:
        problems = [f"block {n} timestamp {ts} s is {ts * 1000 - seen} ms ahead of the auditor's clock"
                    for n, ts, seen in blocks if ts * 1000 > seen + policy["future_tolerance_ms"]]
        blocks.sort()
        problems += [f"block {b[0]} timestamp {b[1]} is after block {c[0]} timestamp {c[1]}"
                     for b, c in zip(blocks, blocks[1:]) if b[0] < c[0] and b[1] > c[1]]
        check("timestamp", not problems, "; ".join(problems) or f"{len(blocks)} blocks' timestamps sane")

    if any(c["ok"] is False for c in checks[1:]):
        return FAULT, checks
    if checks[0]["ok"] is False:
        return UNREACHABLE, checks
    return OK, checks


# ------------------------------------------------------------------------------------------ auditor

_FIRST_ROUND = (
    ("chain_id", "eth_chainId", [], parse_quantity),
    ("genesis", "eth_getBlockByNumber", ["0x0", False], parse_block_or_none),
    ("head", "eth_blockNumber", [], parse_quantity),
    ("latest", "eth_getBlockByNumber", ["latest", False], parse_block),
)


class _Probe:
    """What one epoch observed of one target."""

    __slots__ = ("target", "observations", "values", "good", "record")

    def __init__(self, target: Target):
        self.target = target
        self.observations: list[dict[str, Any]] = []
        self.values: dict[str, Any] = {}  # call -> kept result of its successful attempt
        self.good = False  # first round complete and the chain is the registered one
        self.record: dict[str, Any] | None = None  # what other targets' bundles say of it


class EvmAuditor:
    """The EVM_RPC plug-in. Keeps, across epochs, when it first saw each target's current head."""

    kind = KIND_EVM_RPC

    def __init__(self, policy: EvmPolicy | None = None, **overrides: int):
        self.policy = make_policy(EvmPolicy, policy, overrides)
        # target id -> (endpoint, epoch, wall-clock ms, head) of the earliest reading of its current head
        self._since: dict[int, tuple[str, int, int, int]] = {}

    def judge(self, bundle: dict[str, Any]) -> int:
        return evaluate(bundle)[0]

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target],
                          deadline_s: float, context: EpochContext | None = None) -> dict[int, AuditResult]:
        pol = self.policy
        t0 = time.monotonic()
        t0_unix_ms = time.time_ns() // 1_000_000
        end = t0 + deadline_s * 0.95  # the rest is for judging and bundling
        first_end = t0 + deadline_s * pol.first_round_pct / 100
        client = AuditHttpClient(request_deadline_s=pol.request_deadline_ms / 1000,
                                 max_response_bytes=pol.max_response_bytes,
                                 max_connections=pol.max_connections, origin=t0)

        assigned_ids = {t.id for t in assigned}
        probes: dict[int, _Probe] = {t.id: _Probe(t) for t in assigned}
        chains: dict[bytes, list[Target]] = {}
        for t in peers:
            if t.id not in assigned_ids:
                chains.setdefault(t.identity, []).append(t)
        for identity in {t.identity for t in assigned}:
            others = sorted(chains.get(identity, []), key=lambda t: t.id)
            pool = random.Random("pool:" + identity.hex()).sample(others, min(len(others), pol.peer_pool))
            for t in pool:
                probes.setdefault(t.id, _Probe(t))

        workers = pol.max_connections
        await _each(list(probes.values()), lambda p: self._first_round(p, client, first_end), workers)

        members: dict[bytes, list[_Probe]] = {}
        for p in probes.values():
            if p.good:
                members.setdefault(p.target.identity, []).append(p)
        heights = {}
        for identity, group in members.items():
            median = statistics.median_low(p.values["head"] for p in group)
            heights[identity] = max(0, median - pol.max_lag_blocks - pol.safety_margin_blocks)

        pause = t0 + pol.head_interval_ms / 1000 - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        common_params = {identity: [hex(h), False] for identity, h in heights.items()}
        await _each([p for group in members.values() for p in group],
                    lambda p: self._second_round(p, client, common_params[p.target.identity],
                                                 p.target.id in assigned_ids, end), workers)

        for group in members.values():
            group.sort(key=lambda p: p.target.id)
            for p in group:
                common = p.values.get("common")
                p.record = {"id": p.target.id, "head": p.values["head"],
                            "common_hash": common["hash"] if isinstance(common, dict) else None}

        # Bundles share their policy, peer records and call parameters (read-only by convention): 1,000 bundles
        # then cost a few MB, not tens.
        judged_policy = pol.judged(int(deadline_s * 1000))
        results: dict[int, AuditResult] = {}
        for t in assigned:
            p = probes[t.id]
            bundle = {
                "version": BUNDLE_VERSION,
                "kind": KIND_NAMES[KIND_EVM_RPC],
                "epoch": epoch,
                "target": {"id": t.id, "endpoint": t.endpoint, "identity": "0x" + t.identity.hex()},
                "policy": judged_policy,
                "t0_unix_ms": t0_unix_ms,
                "observations": p.observations,
                "earlier": self._earlier(t),
                "common_height": heights.get(t.identity) if p.good else None,
                "peers": self._sample_peers(epoch, t, members.get(t.identity, [])),
            }
            verdict, checks = evaluate(bundle)
            bundle["checks"] = checks
            bundle["verdict"] = VERDICT_NAMES[verdict]
            results[t.id] = AuditResult(verdict, bundle)
            self._remember(epoch, t, bundle)
        live = {t.id for t in peers} | assigned_ids
        for tid in [tid for tid in self._since if tid not in live]:
            del self._since[tid]
        return results

    # ------------------------------------------------------------------------------- observation

    async def _call(self, session: Session, probe: _Probe, call: str, method: str, params: list, extract,
                    deadline_at: float) -> bool:
        return await call_with_retry(session, probe.observations, probe.values, call, method, params, extract,
                                     deadline_at, self.policy.retry_pause_ms / 1000)

    async def _first_round(self, probe: _Probe, client: AuditHttpClient, deadline_at: float) -> None:
        async with client.session(probe.target.endpoint) as s:
            for call, method, params, extract in _FIRST_ROUND:
                if not await self._call(s, probe, call, method, params, extract, deadline_at):
                    return
        try:
            chain_id, genesis_hash = parse_evm_identity(probe.target.identity)
        except ValueError:
            return
        genesis = probe.values["genesis"]
        probe.good = (probe.values["chain_id"] == chain_id and genesis is not None and genesis["hash"] == genesis_hash)

    async def _second_round(self, probe: _Probe, client: AuditHttpClient, common_params: list, assigned: bool,
                            deadline_at: float) -> None:
        async with client.session(probe.target.endpoint) as s:
            if assigned and not await self._call(s, probe, "head2", "eth_blockNumber", [], parse_quantity,
                                                 deadline_at):
                return
            await self._call(s, probe, "common", "eth_getBlockByNumber", common_params, parse_block_or_none,
                             deadline_at)

    def _sample_peers(self, epoch: int, target: Target, group: list[_Probe]) -> list[dict[str, Any]]:
        """At most peer_sample good members of the target's chain other than itself (deterministic)."""
        k = self.policy.peer_sample
        if len(group) > k + 1:
            group = random.Random(f"{epoch}:{target.id}").sample(group, k + 1)
        chosen = [p.record for p in group if p.target.id != target.id][:k]
        chosen.sort(key=lambda r: r["id"])
        return chosen

    # ------------------------------------------------------------------------ head across epochs

    def _earlier(self, target: Target) -> dict[str, int] | None:
        kept = self._since.get(target.id)
        if kept is None or kept[0] != target.endpoint:
            return None
        return {"epoch": kept[1], "at_unix_ms": kept[2], "head": kept[3]}

    def _remember(self, epoch: int, target: Target, bundle: dict[str, Any]) -> None:
        """Keep the earliest reading of the target's current head for the next epochs' halt check."""
        since = _stuck_since(_readings(bundle, last_attempts(bundle["observations"])))
        if since is None:
            return
        earlier = bundle["earlier"]
        if earlier is not None and since == (earlier["at_unix_ms"], earlier["head"]):
            return  # still the same head as in an earlier epoch: keep when it was first seen
        self._since[target.id] = (target.endpoint, epoch, since[0], since[1])
