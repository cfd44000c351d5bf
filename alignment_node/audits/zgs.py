"""ZGS_STORAGE audit: does a 0G Storage node hold what it claims, provably down to the on-chain data roots?

Identity. A ZGS_STORAGE target's registered ``identity`` is ``abi.encode(uint256 chainId, address flow)``
(``zgs.flow.flow_identity``): the chain and flow contract whose submissions it stores. The auditor reads that
chain itself (``Submit`` events of the flow, the head, block hashes) and trusts the node about nothing.

Observation, one epoch (``ZgsAuditor.audit_epoch``):

1. every assigned target: ``zgs_getStatus`` and ``zgs_getShardConfig``;
2. the chain, once per flow: the head (read after the statuses, so an honest node is never ahead of it), the
   new ``Submit`` events up to it, and the hash of each block a node says it synced to;
3. draws: the files a target can be challenged on are the valid submissions of blocks up to its claimed
   ``logSyncHeight`` with a sequence number below its claimed ``nextTxSeq`` (an honest node that is behind is
   never asked for what it has not reached); draw ``i`` is ``r = keccak(seed, target id, license, i)``: file
   ``r mod n``, then one of its data segments in the node's shard, ``(r >> 128) mod count``; draws that hit a
   file without data segments in the shard pick nothing; up to ``challenges`` picks in ``max_draws`` draws.
   ``seed`` is the epoch's seed, ``license`` the lowest of the auditor's licenses assigned to the target, so
   anyone can repeat the picks;
4. each pick, concurrently: ``zgs_getFileInfoByTxSeq(seq)``, then, if the node claims the file finalized (and
   not pruned), ``zgs_downloadSegmentWithProof(root, segment)``. The segment's bytes are checked as they
   arrive (strict base64, at most 256 KiB) and reduced to their size, SHA-256 and segment root; the proof is
   kept whole (at most 64 levels).

Judgement (``evaluate``, pure), checks in order:

- ``reachable``: every call made got an answer;
- ``well_formed``: no answer was malformed (wrong shape or type: numbers as strings, hex without 0x, bad
  base64, a segment longer than 256 KiB, a proof deeper than 64 levels, ...), oversized or an RPC error;
- ``identity``: ``networkIdentity`` is the registered chain id and flow address;
- ``log_sync``: the claimed sync block exists on the chain with that hash (or is at most ``sync_tolerance``
  blocks ahead of the auditor's head, which is the block before the newest: the newest may still be sealing),
  and ``nextTxSeq`` is the number of submissions up to it, within ``sync_tolerance`` blocks either way (no
  upper bound within that distance of the head). A node behind the chain by any number of blocks passes if
  it says so;
- ``file_info``: for each pick, the node knows the transaction (it claims to be synced past it) and its
  ``seq``, ``startEntryIndex``, ``size`` and ``dataMerkleRoot`` are the submission's;
- ``custody``: each pick the node claims finalized is served (not null);
- ``segment``: the served segment is the one asked (``root``, ``index``), ``fileSize`` is the submission's
  length and the data has the segment's size;
- ``proof``: ``lemma[0]`` is the segment root rebuilt from the bytes, the path hashes to the lemma's root,
  that root is the data root folded from the on-chain submission nodes, and the path leads to the segment's
  index (docs/spec/ZGS.md). The failing step is named.

Verdict: FAULT if any check after ``reachable`` failed, else UNREACHABLE if ``reachable`` failed, else OK.
An UNREACHABLE that rests on a call this auditor's own time budget cut short (allowed less than ``min_call_ms``)
is not returned at all: the auditor ran out of time, not the target.
The bundle records the chain facts it relied on (``chain``) and every draw, so ``verify-evidence`` repeats
the judgement and the picks; the chain facts can be re-read from any node of that chain, and the segment's
bytes re-downloaded and compared with the recorded SHA-256.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..chain.keccak import keccak256
from ..protocol import FAULT, KIND_NAMES, KIND_ZGS_STORAGE, OK, UNREACHABLE, VERDICT_NAMES
from ..zgs import merkle
from ..zgs.flow import SubmissionIndex, parse_flow_identity
from ..zgs.rpc import parse_file_info, parse_shard_config, parse_status, segment_extractor
from .base import (BUNDLE_VERSION, AuditResult, EpochContext, Target, answer_checks, bounded_each, evaluate_bundle,
                   make_policy)
from .http import AuditHttpClient, Session, call_with_retry, epoch_client, last_attempts

__all__ = ["ZgsAuditor", "ZgsPolicy", "evaluate", "draw", "CHECKS", "parse_status", "parse_shard_config",
           "parse_file_info", "segment_extractor"]

log = logging.getLogger("alignment_node.audit.storage")

CHECKS = ("reachable", "well_formed", "identity", "log_sync", "file_info", "custody", "segment", "proof")
BLOCK_HASH_CACHE = 4096


# ------------------------------------------------------------------------------------------- picks


def _draw_value(seed: bytes, target_id: int, license_id: int, i: int) -> int:
    return int.from_bytes(keccak256(seed + target_id.to_bytes(32, "big") + license_id.to_bytes(32, "big")
                                    + i.to_bytes(32, "big")), "big")


def shard_segments(start_pos: int, length: int, shard_id: int, num_shard: int) -> tuple[int, int]:
    """(first data segment of the file in the shard, how many) for a file at flow entry ``start_pos``."""
    segments = -(-merkle.num_chunks(length) // merkle.SEGMENT_CHUNKS)
    first = (shard_id - start_pos // merkle.SEGMENT_CHUNKS) % num_shard
    if first >= segments:
        return first, 0
    return first, (segments - 1 - first) // num_shard + 1


def draw(seed: bytes, target_id: int, license_id: int, eligible: list[dict[str, Any]], shard: dict[str, int],
         challenges: int, max_draws: int) -> list[dict[str, Any]]:
    """The draws of a target's challenges: [{"draw", "position", "index", "segment" | None}] (``index``: the
    drawn submission's). ``eligible`` are submissions as ``Submission.as_json`` gives them, in order."""
    out: list[dict[str, Any]] = []
    picks = 0
    if not eligible:
        return out
    for i in range(max_draws):
        if picks == challenges:
            break
        r = _draw_value(seed, target_id, license_id, i)
        position = r % len(eligible)
        sub = eligible[position]
        first, count = shard_segments(sub["startPos"], sub["length"], shard["shardId"], shard["numShard"])
        segment = first + ((r >> 128) % count) * shard["numShard"] if count else None
        out.append({"draw": i, "position": position, "index": sub["index"], "segment": segment})
        picks += segment is not None
    return out


# ----------------------------------------------------------------------------------------- judgement


def _ok(final: dict[str, dict[str, Any]], call: str) -> tuple[bool, Any]:
    """(answered well, kept result) of a call's last attempt."""
    o = final.get(call)
    if o is None or o["status"] != "ok":
        return False, None
    return True, o.get("result")


def evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """(verdict, checks) a ZGS_STORAGE bundle's observations support. Pure; ValueError on a malformed bundle
    (including draws that do not follow the rule)."""
    return evaluate_bundle(bundle, KIND_ZGS_STORAGE, _evaluate)


def _evaluate(bundle: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    policy = bundle["policy"]
    final = last_attempts(bundle["observations"])
    chain = bundle["chain"]
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    answer_checks(final, check)  # reachable / well_formed

    chain_id, flow = parse_flow_identity(bytes.fromhex(bundle["target"]["identity"].removeprefix("0x")))
    got_status, status = _ok(final, "status")
    got_shard, shard = _ok(final, "shard")
    if not got_status:
        check("identity", None, "no status observed")
        check("log_sync", None, "no status observed")
    else:
        same = status["chainId"] == chain_id and status["flowAddress"] == flow
        check("identity", same, f"serves chain {status['chainId']} flow {status['flowAddress']}, "
                                f"registered chain {chain_id} flow {flow}")
        check("log_sync", *_log_sync(status, chain, policy))

    # The draws must follow the rule: same seed, target, license, eligible count, shard.
    draws = bundle["draws"]
    files = bundle["files"]  # the drawn submissions by index
    if draws:
        if not (got_status and got_shard):
            raise ValueError("draws without a status and shard config")
        eligible = chain["eligible"]
        for d in draws:
            r = _draw_value(bytes.fromhex(bundle["seed"][2:]), bundle["target"]["id"], bundle["license"], d["draw"])
            sub = files[str(d["index"])]
            first, count = shard_segments(sub["startPos"], sub["length"], shard["shardId"], shard["numShard"])
            segment = first + ((r >> 128) % count) * shard["numShard"] if count else None
            if (d["position"] != r % eligible or d["segment"] != segment or sub["index"] != d["index"]
                    or sub["index"] >= status["nextTxSeq"]):
                raise ValueError(f"draw {d['draw']} does not follow the rule")
        if [d["draw"] for d in draws] != list(range(len(draws))):
            raise ValueError("draws are not numbered from 0")

    picks = [d for d in draws if d["segment"] is not None]
    info_bad, custody_bad, custody_n, segment_bad, proof_bad, proven = [], [], 0, [], [], 0
    for d in picks:
        sub, seg = files[str(d["index"])], d["segment"]
        name = f"tx {sub['index']} segment {seg}"
        got, info = _ok(final, f"info:{sub['index']}")
        if not got:
            continue  # unanswered or garbage: already a failed check above
        if info is None:
            info_bad.append(f"tx {sub['index']}: unknown (null) although the node claims nextTxSeq "
                            f"{status['nextTxSeq']}")
            continue
        wrong = [f"{k} {info[k]} (submission: {v})" for k, v in (("seq", sub["index"]),
                 ("startEntryIndex", sub["startPos"]), ("size", sub["length"]), ("dataMerkleRoot", sub["root"]))
                 if info[k] != v]
        if wrong:
            info_bad.append(f"tx {sub['index']}: " + ", ".join(wrong))
            continue
        if not info["finalized"] or info["pruned"]:
            continue  # the node does not claim to hold it
        custody_n += 1
        got, served = _ok(final, f"segment:{sub['index']}:{seg}")
        if not got:
            continue
        if served is None:
            custody_bad.append(f"{name}: null, although the file is claimed finalized and in the node's shard")
            continue
        expected_size = min(merkle.SEGMENT, sub["length"] - seg * merkle.SEGMENT)
        chunked = merkle.segment_data_chunks(sub["length"], seg) * merkle.CHUNK
        wrong = []
        if served["root"] != sub["root"]:
            wrong.append(f"root {served['root']}")
        if served["index"] != seg:
            wrong.append(f"index {served['index']}")
        if served["fileSize"] != sub["length"]:
            wrong.append(f"fileSize {served['fileSize']} (submission: {sub['length']})")
        if served["size"] not in (expected_size, chunked):
            wrong.append(f"{served['size']} bytes of data (the segment holds {expected_size})")
        if wrong:
            segment_bad.append(f"{name}: " + ", ".join(wrong))
        if served["segment_root"] is None:
            proof_bad.append(f"{name}: step data: no segment root can be built from {served['size']} bytes")
            continue
        proof = merkle.Proof(tuple(bytes.fromhex(h[2:]) for h in served["proof"]["lemma"]),
                             tuple(served["proof"]["path"]))
        try:
            merkle.verify_proof(proof, bytes.fromhex(served["segment_root"][2:]), bytes.fromhex(sub["root"][2:]),
                                seg, merkle.num_segments(sub["length"]))
            proven += 1
        except merkle.ProofError as exc:
            proof_bad.append(f"{name}: step {exc.step}: {exc.detail}")

    if not picks:
        why = "no status" if not got_status else f"nothing to challenge ({chain.get('eligible', 0)} files synced, " \
                                                 f"{len(draws)} draws)"
        for name in ("file_info", "custody", "segment", "proof"):
            check(name, None, why)
    else:
        check("file_info", not info_bad, "; ".join(info_bad) or f"{len(picks)} picks' file info as submitted")
        check("custody", not custody_bad if custody_n else None,
              "; ".join(custody_bad) or (f"{custody_n} claimed segments served" if custody_n
                                         else "the node claims none of the picked files"))
        check("segment", not segment_bad if custody_n else None, "; ".join(segment_bad) or "segments as asked")
        check("proof", not proof_bad if custody_n else None,
              "; ".join(proof_bad) or f"{proven} proofs reach the on-chain data roots")

    if any(c["ok"] is False for c in checks[1:]):
        return FAULT, checks
    if checks[0]["ok"] is False:
        return UNREACHABLE, checks
    return OK, checks


def _log_sync(status: dict[str, Any], chain: dict[str, Any], policy: dict[str, int]) -> tuple[bool, str]:
    height, tol = status["logSyncHeight"], policy["sync_tolerance_blocks"]
    head = chain["head"]
    if height > head + tol:
        return False, f"claims log sync at block {height}, beyond the chain's head {head}"
    problems = []
    if chain.get("sync_block_hash") is not None and status["logSyncBlock"] != chain["sync_block_hash"]:
        problems.append(f"block {height} is {chain['sync_block_hash']} on chain, the node says {status['logSyncBlock']}")
    lo, hi = chain["count_lo"], chain["count_hi"]
    synced = min(height, head)
    if status["nextTxSeq"] < lo:
        problems.append(f"nextTxSeq {status['nextTxSeq']}, but the flow had {lo} submissions by block "
                        f"{max(0, synced - tol)}, before the block {height} it claims to be synced to")
    elif hi is not None and status["nextTxSeq"] > hi:
        problems.append(f"nextTxSeq {status['nextTxSeq']}, but the flow had only {hi} submissions by block "
                        f"{height + tol}")
    if problems:
        return False, "; ".join(problems)
    behind = head - min(height, head)
    return True, (f"synced to block {height}, nextTxSeq {status['nextTxSeq']}, as on chain"
                  + (f"; behind the head {head} by {behind} blocks and says so" if behind > tol else ""))


# ------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class ZgsPolicy:
    request_deadline_ms: int = 3000
    max_response_bytes: int = 512 * 1024  # a 256 KiB segment is ~350 KB of base64, plus its proof
    max_connections: int = 64
    challenges: int = 8  # segments asked per target per epoch
    max_draws: int = 32  # draws tried to find them (files without data in the node's shard pick nothing)
    sync_tolerance_blocks: int = 2
    retry_pause_ms: int = 100
    status_round_pct: int = 30  # share of the epoch deadline for the status round
    max_targets_at_once: int = 32  # targets challenged concurrently (memory: their answers and bundles)
    min_call_ms: int = 500  # a timeout allowed less than this (the audit's budget ran out) proves nothing

    def judged(self, deadline_ms: int) -> dict[str, int]:
        d = asdict(self)
        for k in ("max_connections", "status_round_pct", "max_targets_at_once"):
            del d[k]
        d["deadline_ms"] = deadline_ms
        return d


class _Flow:
    """One flow contract as the auditor follows it (one per chain id and address)."""

    def __init__(self, chain_id: int, address: str, from_block: int):
        self.chain_id = chain_id
        self.index = SubmissionIndex(address, from_block)
        self.hashes: dict[int, str] = {}
        self.as_json: list[dict[str, Any]] = []  # the valid submissions as bundles record them, shared

    async def block_hash(self, rpc, height: int) -> str | None:
        if height not in self.hashes:
            if len(self.hashes) >= BLOCK_HASH_CACHE:
                self.hashes.clear()
            block = await rpc.get_block(height)
            if block is None:
                return None
            self.hashes[height] = block["hash"].lower()
        return self.hashes[height]

    def refresh(self) -> None:
        for s in self.index.submissions[len(self.as_json):]:
            self.as_json.append(s.as_json())


class ZgsAuditor:
    """The ZGS_STORAGE plug-in. ``rpc_for(chain_id)`` (a function or coroutine function) gives a chain client
    (``chain.rpc.RpcClient``) for the chain a target's flow lives on, or None where this node has none: those
    targets get no verdict (the node's duty for them is then missed, visibly, rather than guessed)."""

    kind = KIND_ZGS_STORAGE

    def __init__(self, rpc_for: Callable[[int], Any], policy: ZgsPolicy | None = None, from_block: int = 0,
                 **overrides: int):
        self.policy = make_policy(ZgsPolicy, policy, overrides)
        self.rpc_for = rpc_for
        self.from_block = from_block
        self._flows: dict[tuple[int, str], _Flow] = {}

    def judge(self, bundle: dict[str, Any]) -> int:
        return evaluate(bundle)[0]

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target], deadline_s: float,
                          context: EpochContext | None = None) -> dict[int, AuditResult]:
        pol = self.policy
        t0 = time.monotonic()
        t0_unix_ms = time.time_ns() // 1_000_000
        end = t0 + deadline_s * 0.95
        status_end = t0 + deadline_s * pol.status_round_pct / 100
        client = epoch_client(pol, t0)
        seed = context.seed if context is not None else bytes(32)
        judged_policy = pol.judged(int(deadline_s * 1000))

        work: list[tuple[Target, _Flow, Any]] = []
        for t in assigned:
            try:
                chain_id, address = parse_flow_identity(t.identity)
            except ValueError as exc:
                log.error("target %d: registered identity unusable: %s", t.id, exc)
                continue
            rpc = self.rpc_for(chain_id)
            if inspect.isawaitable(rpc):
                rpc = await rpc
            if rpc is None:
                log.error("target %d: no RPC for chain %d here; it gets no verdict", t.id, chain_id)
                continue
            key = (chain_id, address)
            if key not in self._flows:
                self._flows[key] = _Flow(chain_id, address, self.from_block)
            work.append((t, self._flows[key], rpc))

        observations: dict[int, list[dict[str, Any]]] = {t.id: [] for t, _, _ in work}
        values: dict[int, dict[str, Any]] = {t.id: {} for t, _, _ in work}

        async def status_round(item) -> None:
            t = item[0]
            async with client.session(t.endpoint) as s:
                for call, method, extract in (("status", "zgs_getStatus", parse_status),
                                              ("shard", "zgs_getShardConfig", parse_shard_config)):
                    if not await self._call(s, observations[t.id], values[t.id], call, method, [], extract,
                                            status_end):
                        return

        await asyncio.gather(*(status_round(w) for w in work))

        # The chain, after the statuses: an honest node cannot be ahead of this head.
        chain_facts: dict[int, dict[str, Any]] = {}
        heads: dict[tuple[int, str], int] = {}
        for t, flow, rpc in work:
            key = (flow.chain_id, flow.index.flow)
            try:
                if key not in heads:
                    # The newest block may still be sealing (its logs not yet served): read up to the one before.
                    heads[key] = max(0, await rpc.block_number() - 1)
                    await flow.index.update(rpc, heads[key])
                    flow.refresh()
                status = values[t.id].get("status")
                head = heads[key]
                if status is None:
                    chain_facts[t.id] = {"head": head}
                    continue
                height = status["logSyncHeight"]
                synced = min(height, head)
                tol = pol.sync_tolerance_blocks
                chain_facts[t.id] = {
                    "head": head,
                    "sync_block_hash": await flow.block_hash(rpc, height) if height <= head else None,
                    "count_lo": flow.index.count_until(max(0, synced - tol)),
                    # near the head the node may have seen submissions this auditor has not read yet
                    "count_hi": flow.index.count_until(height + tol) if height + tol <= head else None,
                }
            except Exception as exc:  # the auditor's own chain access failed: no verdict rather than a wrong one
                log.error("target %d: cannot read chain %d: %s", t.id, flow.chain_id, exc)
                chain_facts.pop(t.id, None)

        async def finish(item) -> None:
            """Challenge one target, judge, bundle; hand the result to the sink at once (bounded memory)."""
            t, flow, _rpc = item
            v = values[t.id]
            facts = chain_facts[t.id]
            license_id = min(context.licenses.get(t.id, [0])) if context is not None else 0
            draws: list[dict[str, Any]] = []
            drawn: dict[str, dict[str, Any]] = {}
            eligible = 0
            if "status" in v and "shard" in v:
                synced = min(v["status"]["logSyncHeight"], facts["head"])
                eligible = flow.index.eligible(synced, v["status"]["nextTxSeq"])
                draws = draw(seed, t.id, license_id, flow.as_json[:eligible], v["shard"], pol.challenges,
                             pol.max_draws)
                drawn = {str(d["index"]): flow.index.by_index[d["index"]].as_json() for d in draws}
                by_file: dict[str, list[dict[str, Any]]] = {}
                for d in draws:
                    if d["segment"] is not None:
                        by_file.setdefault(str(d["index"]), []).append(d)
                await asyncio.gather(*(self._challenge(client, t, observations[t.id], v, drawn[i], picks, end)
                                       for i, picks in by_file.items()))
            bundle = {
                "version": BUNDLE_VERSION,
                "kind": KIND_NAMES[KIND_ZGS_STORAGE],
                "epoch": epoch,
                "target": {"id": t.id, "endpoint": t.endpoint, "identity": "0x" + t.identity.hex()},
                "policy": judged_policy,
                "t0_unix_ms": t0_unix_ms,
                "seed": "0x" + seed.hex(),
                "license": license_id,
                "observations": sorted(observations.pop(t.id), key=lambda o: o["started_ms"]),
                "chain": dict(facts, eligible=eligible),
                "draws": draws,
                "files": drawn,
            }
            del values[t.id]
            verdict, checks = evaluate(bundle)
            if verdict == UNREACHABLE and any(
                    o["status"] == "timeout" and o.get("allowed_ms", 0) < min(pol.min_call_ms, pol.request_deadline_ms)
                    for o in last_attempts(bundle["observations"]).values()):
                # This auditor ran out of its own time, not the target: no verdict rather than a false one.
                log.warning("epoch %d target %d: audit cut short by the audit deadline; no verdict", epoch, t.id)
                return
            bundle["checks"] = checks
            bundle["verdict"] = VERDICT_NAMES[verdict]
            result = AuditResult(verdict, bundle)
            if context is not None and context.sink is not None:
                result = context.sink(t.id, result)
            results[t.id] = result

        results: dict[int, AuditResult] = {}
        await bounded_each([w for w in work if w[0].id in chain_facts], finish, pol.max_targets_at_once)
        return results

    async def _challenge(self, client: AuditHttpClient, t: Target, observations: list, values: dict,
                         sub: dict[str, Any], picks: list[dict[str, Any]], deadline_at: float) -> None:
        """The picks of one file: its info, then each distinct segment (concurrently) if the node claims it."""
        call = f"info:{sub['index']}"
        async with client.session(t.endpoint) as s:
            if not await self._call(s, observations, values, call, "zgs_getFileInfoByTxSeq", [sub["index"]],
                                    parse_file_info, deadline_at):
                return
        info = values[call]
        if info is None or not info["finalized"] or info["pruned"]:
            return

        async def download(seg: int) -> None:
            async with client.session(t.endpoint) as s:
                await self._call(s, observations, values, f"segment:{sub['index']}:{seg}",
                                 "zgs_downloadSegmentWithProof", [sub["root"], seg],
                                 segment_extractor(sub["length"], seg), deadline_at)

        await asyncio.gather(*(download(seg) for seg in sorted({d["segment"] for d in picks})))

    async def _call(self, session: Session, observations: list, values: dict, call: str, method: str,
                    params: list, extract, deadline_at: float) -> bool:
        return await call_with_retry(session, observations, values, call, method, params, extract, deadline_at,
                                     self.policy.retry_pause_ms / 1000)
