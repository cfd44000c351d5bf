"""DA_SIGNER audit: does a 0G DA signer stay registered, sign for the blobs it is given, and keep their rows?

Identity. A DA_SIGNER target's registered ``identity`` is ``abi.encode(uint256 chainId, address signer, address
entrance)`` (``da_identity``): the chain whose DASigners precompile lists the signer, the signer's account, and
the DAEntrance contract it serves. Its ``endpoint`` is the gRPC socket ``host:port`` it is audited at.

Observation, one epoch (``DaAuditor.audit_epoch``): the chain facts (``DaChain``: the signer's registration,
enrolment for the current DA epoch, socket and keys, and the blobs of the window verified on chain with this
signer's rows and whether the quorum bitmap counted them), then, over the signer's own gRPC service:
``GetStatus`` and one ``BatchRetrieve`` per drawn blob. Draw ``i`` is ``r = keccak(seed, target id, license, i)``
among the blobs the signer was counted in: blob ``r mod n``, then ``custody_rows`` of its rows starting at
``(r >> 128) mod rows``; ``seed`` is the epoch's seed and ``license`` the lowest of the auditor's licenses
assigned to the target, so anyone can repeat the picks. Every reply is parsed strictly (``da.wire``) and each
row checked against the blob's on-chain data root and commitment (``da.rows.verify_slice``, where 0G's AMT
check drops in).

Judgement (``evaluate``, pure but for pairing checks), checks in order:

- ``reachable``: every call made got an answer (a refused connection or a deadline is no answer);
- ``well_formed``: no reply was garbage (not the protobuf message, unknown fields, wrong counts, oversized);
- ``registration``: the signer is registered, enrolled for the current DA epoch, its socket is the audited
  endpoint, GetStatus names the registered DAEntrance, and pkG1/pkG2 share one discrete log (a pairing check);
- ``participation``: among the window's verified blobs that gave the signer rows (at least ``min_blobs`` of
  them, else the check is not applicable), the share whose bitmap counted it is at least ``min_share_pct``.
  A signer whose signatures are invalid or absent is left out of the bitmap by the disperser, so this is where
  never signing and signing wrongly show;
- ``custody``: every drawn row is served and passes the row check (missing, pruned, corrupted or another
  row's data is a failure, as is an error status to a retrieve of rows it was counted for).

Verdict: FAULT if any check after ``reachable`` failed, else UNREACHABLE if ``reachable`` failed, else OK.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from eth_abi import decode, encode

from ..chain.keccak import keccak256 as keccak
from ..protocol import FAULT, KIND_DA_SIGNER, OK, UNREACHABLE, VERDICT_NAMES
from .base import BUNDLE_VERSION, UNANSWERED, AuditResult, EpochContext, Target, evaluate_bundle, make_policy
from .http import GARBAGE, describe
from .worker import WorkerClient, target_lines

__all__ = ["DaAuditor", "DaWorkerAuditor", "DaPolicy", "DaChainFacts", "da_identity", "parse_da_identity", "evaluate", "draw",
           "CHECKS"]

log = logging.getLogger("alignment_node.audit.da")
CHECKS = ("reachable", "well_formed", "registration", "participation", "custody")
GRPC_ANSWERED_ERRORS = "rpc_error"  # the signer answered with an error status


@dataclass(frozen=True)
class DaPolicy:
    min_share_pct: int = 50  # participation: the least share of its blobs a signer must be counted in
    min_blobs: int = 2  # participation is judged only over at least this many blobs
    custody_blobs: int = 2  # blobs drawn for a retrieve
    custody_rows: int = 2  # rows asked per drawn blob
    window_blobs: int = 64  # newest verified blobs of the chain considered
    request_deadline_ms: int = 5000
    max_response_bytes: int = 8 << 20
    max_targets_at_once: int = 16

    def judged(self) -> dict[str, int]:
        """The policy as a bundle records it (what the judgement depends on)."""
        d = asdict(self)
        for k in ("max_targets_at_once", "window_blobs"):
            del d[k]
        return d


def da_identity(chain_id: int, signer: str, entrance: str) -> bytes:
    """The registered identity of a DA_SIGNER target: abi.encode(uint256 chainId, address signer, address
    entrance) (96 bytes)."""
    return encode(["uint256", "address", "address"], [chain_id, signer, entrance])


def parse_da_identity(identity: bytes) -> tuple[int, str, str]:
    """(chain id, signer, entrance) of a DA_SIGNER identity, addresses as lower-case 0x hex; ValueError if the
    bytes are not one."""
    if len(identity) != 96 or any(identity[32:44]) or any(identity[64:76]):
        raise ValueError("a DA_SIGNER identity is abi.encode(uint256 chainId, address signer, address entrance)")
    chain_id, signer, entrance = decode(["uint256", "address", "address"], identity)
    return chain_id, signer.lower(), entrance.lower()


@dataclass
class DaChainFacts:
    """What the chain says about one signer, as a bundle records it (hex strings, lists: JSON as it is)."""

    da_epoch: int
    registered: bool
    enrolled: bool
    socket: str = ""
    pk_g1: list[str] = field(default_factory=list)  # [x, y] as 0x hex
    pk_g2: list[list[str]] = field(default_factory=list)  # [[x0, x1], [y0, y1]] chain order, 0x hex
    # each: {"data_root", "epoch", "quorum", "commitment": [x, y], "rows": [its rows], "counted": bool}
    blobs: list[dict[str, Any]] = field(default_factory=list)


def _h(n: int) -> str:
    return hex(n)


def _i(text: str) -> int:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError(f"not a 0x hex number: {text!r}")
    return int(text, 16)


def draw(seed: bytes, target_id: int, license_id: int, blobs: list[dict[str, Any]], policy: dict[str, int]
         ) -> list[dict[str, Any]]:
    """The custody picks anyone can repeat: up to ``custody_blobs`` distinct counted blobs, ``custody_rows`` of
    each one's rows (the signer's own, in order, from an offset the draw picks)."""
    counted = [i for i, b in enumerate(blobs) if b["counted"] and b["rows"]]
    picks: list[dict[str, Any]] = []
    taken: set[int] = set()
    for i in range(4 * policy["custody_blobs"]):
        if len(picks) >= policy["custody_blobs"] or len(taken) == len(counted):
            break
        r = int.from_bytes(keccak(encode(["bytes32", "uint256", "uint256", "uint256"],
                                         [seed, target_id, license_id, i])), "big")
        k = counted[r % len(counted)]
        if k in taken:
            continue
        taken.add(k)
        rows = sorted(blobs[k]["rows"])
        start = (r >> 128) % len(rows)
        chosen = sorted({rows[(start + j) % len(rows)] for j in range(min(policy["custody_rows"], len(rows)))})
        picks.append({"draw": i, "blob": k, "rows": chosen})
    return picks


# ------------------------------------------------------------------------------------------------ judgement


def evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """(verdict, checks) a DA_SIGNER bundle's observations support; ValueError on a malformed bundle (including
    picks that do not follow the draw)."""
    return evaluate_bundle(bundle, KIND_DA_SIGNER, _evaluate)


def _evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    from ..da import bls
    from ..da.rows import verify_slice

    policy, chain, obs = bundle["policy"], bundle["chain"], bundle["observations"]
    target = bundle["target"]
    _chain_id, signer, entrance = parse_da_identity(bytes.fromhex(target["identity"].removeprefix("0x")))
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    calls = [obs["status"]] + [r for r in obs["retrieve"]]
    unanswered = [describe(o) for o in calls if o["status"] in UNANSWERED]
    bad = [describe(o) for o in calls if o["status"] in GARBAGE]
    check("reachable", not unanswered, "; ".join(unanswered) or f"{len(calls)} calls answered")
    check("well_formed", not bad, "; ".join(bad) or "every reply well-formed")

    # registration
    problems = []
    if not chain["registered"]:
        problems.append(f"{signer} is not a registered DA signer")
    else:
        if not chain["enrolled"]:
            problems.append(f"{signer} is not enrolled for DA epoch {chain['da_epoch']}")
        if chain["socket"] != target["endpoint"]:
            problems.append(f"registered socket {chain['socket']!r} is not the audited endpoint "
                            f"{target['endpoint']!r}")
        pk1 = bls.check_g1(tuple(_i(v) for v in chain["pk_g1"]), "pk_g1")
        pk2 = bls.g2_from_words([_i(v) for v in chain["pk_g2"][0]], [_i(v) for v in chain["pk_g2"][1]], "chain",
                                "pk_g2")
        if not bls.verify_pk_pair(pk1, pk2):
            problems.append("the registered pkG1 and pkG2 are not one key (pairing check fails)")
    status = obs["status"]
    if status["status"] == "ok" and status.get("entrance") != entrance:
        problems.append(f"GetStatus names DAEntrance {status.get('entrance')}, registered {entrance}")
    check("registration", not problems,
          "; ".join(problems) or f"registered, enrolled for DA epoch {chain['da_epoch']}, socket and key match")

    # participation
    eligible = [b for b in chain["blobs"] if b["rows"]]
    counted = sum(1 for b in eligible if b["counted"])
    if len(eligible) < policy["min_blobs"]:
        check("participation", None, f"{len(eligible)} verified blobs gave it rows (fewer than "
                                     f"{policy['min_blobs']}): not judged")
    else:
        share_ok = counted * 100 >= policy["min_share_pct"] * len(eligible)
        check("participation", share_ok, f"counted in {counted} of {len(eligible)} verified blobs that gave it "
                                         f"rows (at least {policy['min_share_pct']} % required)")

    # custody
    picks = draw(bytes.fromhex(bundle["seed"].removeprefix("0x")), target["id"], bundle["license"], chain["blobs"],
                 policy)
    if [(p["blob"], p["rows"]) for p in picks] != [(r["blob"], r["rows"]) for r in obs["retrieve"]]:
        raise ValueError("the retrieves are not the picks the draw makes")
    failures = []
    for r in obs["retrieve"]:
        blob = chain["blobs"][r["blob"]]
        where = f"blob {blob['data_root'][:18]}... (DA epoch {blob['epoch']}, quorum {blob['quorum']})"
        if r["status"] == GRPC_ANSWERED_ERRORS:
            failures.append(f"{where}: rows {r['rows']} not served: {r.get('error', '')}")
            continue
        if r["status"] != "ok":
            continue  # unanswered or garbage: judged above
        root = bytes.fromhex(blob["data_root"].removeprefix("0x"))
        commitment = tuple(_i(v) for v in blob["commitment"])
        for row, raw in zip(r["rows"], r["slices"]):
            reason = verify_slice(bytes.fromhex(raw), row, root, commitment)
            if reason is not None:
                failures.append(f"{where} row {row}: {reason}")
    served = sum(1 for r in obs["retrieve"] if r["status"] == "ok")
    if not obs["retrieve"]:
        check("custody", None, "no blob it was counted in to sample")
    else:
        check("custody", not failures, "; ".join(failures) or f"{sum(len(r['rows']) for r in obs['retrieve'])} "
                                                              f"rows of {served} blobs served and verified")

    if any(c["ok"] is False for c in checks[1:]):
        return FAULT, checks
    if checks[0]["ok"] is False:
        return UNREACHABLE, checks
    return OK, checks


# ------------------------------------------------------------------------------------------------ observing


def _grpc_status(exc: Exception) -> tuple[str, str]:
    import grpc

    code = exc.code() if isinstance(exc, grpc.RpcError) and hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout", details
    if code == grpc.StatusCode.UNAVAILABLE:
        return "refused", details
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "received message larger" in details.lower():
        return "oversized", details
    return "rpc_error", f"{code.name if code else type(exc).__name__}: {details}"


class DaClient:
    """One signer's gRPC channel: unary calls with raw bytes in and out, a deadline and a reply size cap."""

    def __init__(self, endpoint: str, policy: DaPolicy, origin: float):
        import grpc.aio

        self.channel = grpc.aio.insecure_channel(endpoint, options=[
            ("grpc.max_receive_message_length", policy.max_response_bytes),
            ("grpc.enable_retries", 0)])
        self.deadline_s = policy.request_deadline_ms / 1000
        self.origin = origin

    async def call(self, name: str, method: str, request: bytes,
                   parse: Callable[[bytes], Any]) -> tuple[dict[str, Any], Any]:
        """(observation, parsed reply or None)."""
        from ..da.errors import DaError

        started = time.monotonic()
        o: dict[str, Any] = {"call": name, "method": method, "attempt": 1,
                             "at_ms": int((started - self.origin) * 1000)}
        value = None
        try:
            raw = await self.channel.unary_unary(method)(request, timeout=self.deadline_s)
            o["size"], o["sha256"] = len(raw), hashlib.sha256(raw).hexdigest()
            try:
                value = parse(raw)
                o["status"] = "ok"
            except DaError as exc:
                o["status"], o["error"] = "malformed", str(exc)[:200]
        except Exception as exc:  # grpc.aio.AioRpcError and friends: a status, never a crash
            o["status"], o["error"] = _grpc_status(exc)
            o["error"] = o["error"][:200]
        o["elapsed_ms"] = int((time.monotonic() - started) * 1000)
        return o, value

    async def close(self) -> None:
        await self.channel.close()


class DaWorkerAuditor:
    """The node's DA_SIGNER plug-in: hands the epoch's DA targets to the DA audit worker (``da.worker``), which
    reads the chain (``da.chain.DaChainReader`` over ``rpc_urls``) and the signers (gRPC) and judges them. grpcio
    and the pairing library alone take about 20 MB, so they stay out of the node's 64 MB (``audits.worker``)."""

    kind = KIND_DA_SIGNER
    STARTUP_S = 60.0

    def __init__(self, rpc_urls: list[str], request_timeout: float, policy: DaPolicy, lookback_blocks: int):
        self.rpc_urls, self.request_timeout = list(rpc_urls), request_timeout
        self.policy, self.lookback_blocks = policy, lookback_blocks
        self.worker = WorkerClient("alignment_node.da.worker", "DA audit", self.STARTUP_S)

    def judge(self, bundle: dict[str, Any]) -> int:
        return evaluate(bundle)[0]

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        seed = context.seed if context is not None else bytes(32)
        req = {"epoch": epoch, "seed": "0x" + seed.hex(), "deadline_s": deadline_s,
               "targets": target_lines(assigned, context), "rpc_urls": self.rpc_urls,
               "request_timeout": self.request_timeout, "lookback_blocks": self.lookback_blocks,
               "policy": asdict(self.policy)}
        return await self.worker.run(epoch, req, deadline_s, context)


ChainFactsFor = Callable[[Target, int, str, str], Awaitable["DaChainFacts | None"]]


class DaAuditor:
    kind = KIND_DA_SIGNER

    def __init__(self, chain_facts: ChainFactsFor | None = None, policy: DaPolicy | None = None, **overrides: int):
        """``chain_facts(target, chain id, signer, entrance)`` reads the chain (None: that chain cannot be read
        here, so the target gets no verdict rather than a guessed one)."""
        self.policy = make_policy(DaPolicy, policy, overrides)
        self.chain_facts = chain_facts

    def judge(self, bundle: dict[str, Any]) -> int:
        return evaluate(bundle)[0]

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        context = context or EpochContext()
        if self.chain_facts is None:
            log.error("epoch %d: %d DA_SIGNER targets not audited: no reader of the DA contracts is configured",
                      epoch, len(assigned))
            return {}
        origin = time.monotonic()
        out: dict[int, AuditResult] = {}
        sem = asyncio.Semaphore(self.policy.max_targets_at_once)

        async def one(t: Target) -> None:
            async with sem:
                try:
                    res = await asyncio.wait_for(self.audit_one(epoch, t, context, origin), deadline_s)
                except asyncio.TimeoutError:
                    return  # the auditor's own budget ran out: no verdict rather than a guessed one
                if res is None:
                    return
                if context.sink is not None:
                    res = context.sink(t.id, res)
                out[t.id] = res

        await asyncio.gather(*(one(t) for t in assigned))
        return out

    async def audit_one(self, epoch: int, t: Target, context: EpochContext, origin: float) -> AuditResult | None:
        from ..da import wire

        try:
            chain_id, signer, entrance = parse_da_identity(t.identity)
        except ValueError:
            return None
        try:
            facts = await self.chain_facts(t, chain_id, signer, entrance) if self.chain_facts else None
        except Exception as exc:  # a chain that cannot be read now: no verdict rather than a guessed one
            log.error("epoch %d target %d: the DA chain facts could not be read: %s", epoch, t.id, exc)
            return None
        if facts is None:
            return None
        policy = self.policy.judged()
        license_id = min(context.licenses.get(t.id, [0]))
        chain = asdict(facts)
        picks = draw(context.seed, t.id, license_id, chain["blobs"], policy)
        client = DaClient(t.endpoint, self.policy, origin)
        try:
            status_obs, info = await client.call("status", wire.METHOD_GET_STATUS, b"", wire.parse_status_reply)
            if info is not None:
                status_obs["entrance"] = info.entrance_contract
                status_obs["status_code"] = info.status_code
            retrieves = []
            for p in picks:
                blob = chain["blobs"][p["blob"]]
                item = wire.RetrieveItem(blob["epoch"], blob["quorum"],
                                         bytes.fromhex(blob["data_root"].removeprefix("0x")), p["rows"])
                o, rows = await client.call(f"retrieve[{p['draw']}]", wire.METHOD_BATCH_RETRIEVE,
                                            wire.build_batch_retrieve_request([item]),
                                            lambda raw, item=item: wire.parse_retrieved_rows(raw, [item])[0])
                o.update({"blob": p["blob"], "rows": p["rows"], "slices": [r.hex() for r in rows or []]})
                retrieves.append(o)
        finally:
            await client.close()
        bundle = {
            "version": BUNDLE_VERSION, "kind": "DA_SIGNER", "epoch": epoch, "seed": "0x" + context.seed.hex(),
            "license": license_id,
            "target": {"id": t.id, "endpoint": t.endpoint, "identity": "0x" + t.identity.hex()},
            "policy": policy, "chain": chain, "observations": {"status": status_obs, "retrieve": retrieves},
        }
        verdict, checks = evaluate(bundle)
        bundle["checks"] = checks
        bundle["verdict"] = VERDICT_NAMES[verdict]
        return AuditResult(verdict, bundle)
