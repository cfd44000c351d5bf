"""The ZGS_STORAGE audit against reference storage nodes on a real chain (anvil + the devnet flow contract).

Each faulty mode must be a FAULT naming the right check (and, for proofs, the failing step); honest nodes,
including a slow one and one that is behind and says so, must be OK. Bad answers of every kind the issue
lists come from a mutating proxy in front of an honest node: each gives FAULT or UNREACHABLE with evidence,
in bounded time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time

import pytest

from alignment_node.audits.base import EpochContext, Target
from alignment_node.audits.zgs import ZgsAuditor, draw, evaluate
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import Anvil
from alignment_node.devnet.storage import deploy_flow, random_file, upload
from alignment_node.devnet.zgsnode import ZgsNodeProcess
from alignment_node.protocol import FAULT, OK, UNREACHABLE, canonical_json
from alignment_node.zgs.flow import flow_identity

SIZES = (1, 3000, 700_000, 1_500_000, 2_100_000)
DEADLINE_S = 8.0


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """anvil, the flow with a few files, and one reference node per mode."""
    files = tmp_path_factory.mktemp("zgs-files")
    anvil = Anvil(block_time=None).start()
    nodes: dict[str, ZgsNodeProcess] = {}
    try:
        signer = LocalSigner(anvil.private_keys[0])
        rng = random.Random(5)

        async def setup():
            async with RpcClient(anvil.url) as rpc:
                flow = await deploy_flow(rpc, signer)
                subs = [await upload(flow, signer, random_file(rng, n), files) for n in SIZES]
                await rpc.request("anvil_mine", [hex(100)])
                return flow.address, await rpc.chain_id(), subs

        flow, chain_id, subs = run(setup())
        modes = {
            "honest": ("honest", (0, 1), {}),
            "honest-0of2": ("honest", (0, 2), {}),
            "honest-1of2": ("honest", (1, 2), {}),
            "slow": ("slow", (0, 1), {"delay": 0.05}),
            "behind": ("behind", (0, 1), {"lag": 30}),
            "drop": ("drop", (0, 1), {"fraction": 1.0}),
            "corrupt": ("corrupt", (0, 1), {}),
            "wrong-index": ("wrong-index", (0, 1), {}),
            "wrong-root": ("wrong-root", (1, 2), {}),
            "empty": ("empty", (0, 1), {}),
            "wrong-flow": ("wrong-flow", (0, 1), {}),
            "lying-lag": ("lying-lag", (0, 1), {"lag": 30}),
            "garbage": ("garbage", (0, 1), {}),
        }
        for name, (mode, shard, opts) in modes.items():
            nodes[name] = ZgsNodeProcess(anvil.url, flow, files, mode, shard=shard, **opts)
            nodes[name].start()

        async def late_upload():
            # A file the behind node has not reached (and the lying-lag node pretends to have synced past).
            async with RpcClient(anvil.url) as rpc:
                from alignment_node.chain.contracts import Contract
                from alignment_node.chain.artifacts import load_artifact

                c = Contract(rpc, flow, load_artifact("DevnetFlow").contract_abi)
                late = await upload(c, signer, random_file(rng, 400_000), files)
                await rpc.request("anvil_mine", [hex(5)])
                return late

        subs.append(run(late_upload()))
        time.sleep(1.5)  # the nodes follow the chain every ~0.25 s
        yield {"anvil": anvil, "flow": flow, "chain_id": chain_id, "subs": subs, "nodes": nodes, "files": files}
    finally:
        for n in nodes.values():
            n.stop()
        anvil.stop()


def audit(world, names, seeds=(b"\x01" * 32,), **policy):
    """Audit the named nodes once per seed; {name: [AuditResult per seed]}."""
    identity = flow_identity(world["chain_id"], world["flow"])
    targets = {name: Target(i + 1, 3, world["nodes"][name].url, identity) for i, name in enumerate(names)}
    out = {name: [] for name in names}

    async def go():
        async with RpcClient(world["anvil"].url) as rpc:
            auditor = ZgsAuditor(lambda cid: rpc if cid == world["chain_id"] else None, **policy)
            for epoch, seed in enumerate(seeds):
                ctx = EpochContext(seed, {t.id: [7] for t in targets.values()})
                results = await auditor.audit_epoch(epoch, list(targets.values()), list(targets.values()),
                                                    DEADLINE_S, context=ctx)
                for name, t in targets.items():
                    out[name].append(results[t.id])

    run(go())
    return out


def failed(result) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in result.bundle["checks"] if c["ok"] is False}


SEEDS = tuple(bytes([i]) * 32 for i in range(1, 4))


def test_honest_nodes_pass(world):
    results = audit(world, ["honest", "honest-0of2", "honest-1of2", "slow", "behind"], SEEDS)
    for name, rs in results.items():
        for r in rs:
            assert r.verdict == OK, (name, failed(r), r.bundle["checks"])
            checks = {c["name"]: c["ok"] for c in r.bundle["checks"]}
            assert checks["proof"] is True and checks["custody"] is True, (name, r.bundle["checks"])
    # the behind node is never asked for the file it has not reached
    late = world["subs"][-1].index
    for r in results["behind"]:
        assert all(d["index"] != late for d in r.bundle["draws"])
        assert "behind the head" in next(c["detail"] for c in r.bundle["checks"] if c["name"] == "log_sync")


def test_sharded_nodes_are_only_asked_for_their_segments(world):
    results = audit(world, ["honest-0of2", "honest-1of2"], SEEDS)
    for name, shard in (("honest-0of2", 0), ("honest-1of2", 1)):
        for r in results[name]:
            picks = [d for d in r.bundle["draws"] if d["segment"] is not None]
            assert picks
            for d in picks:
                sub = r.bundle["files"][str(d["index"])]
                assert (sub["startPos"] // 1024 + d["segment"]) % 2 == shard


@pytest.mark.parametrize("name,check,step", [
    ("drop", "custody", None),
    ("empty", "custody", None),
    ("corrupt", "proof", "leaf"),
    ("wrong-index", "proof", "position"),
    ("wrong-root", "proof", "root"),
    ("wrong-flow", "identity", None),
    ("lying-lag", "log_sync", None),
    ("garbage", "well_formed", None),
])
def test_each_fault_is_flagged_with_its_check(world, name, check, step):
    [r] = audit(world, [name])[name]
    assert r.verdict == FAULT, r.bundle["checks"]
    bad = failed(r)
    assert check in bad, bad
    if step:
        assert f"step {step}" in bad[check], bad[check]
    # the judgement is repeatable from the bundle alone (what verify-evidence does)
    again = json.loads(canonical_json(r.bundle))
    assert evaluate(again)[0] == FAULT


def test_draws_are_repeatable_and_cover_the_shard_uniformly(world):
    [r] = audit(world, ["honest"])["honest"]
    b = r.bundle
    # redrawing with the recorded seed, target and license gives the same picks
    assert b["draws"] and set(b["files"]) == {str(d["index"]) for d in b["draws"]}
    forged = json.loads(canonical_json(b))
    forged["draws"][0]["segment"] = (forged["draws"][0]["segment"] or 0) + 1
    with pytest.raises(ValueError, match="does not follow the rule"):
        evaluate(forged)
    # uniform over files, then over the file's segments in the shard
    eligible = [{"index": i, "startPos": i * 4096, "length": 4 * 262144} for i in range(10)]
    counts = [0] * 10
    for i in range(400):
        for d in draw(i.to_bytes(32, "big"), 1, 1, eligible, {"shardId": 0, "numShard": 1}, 8, 32):
            counts[d["position"]] += 1
    assert min(counts) > 200 and max(counts) < 450, counts


def test_a_dead_endpoint_is_unreachable_not_a_fault(world):
    identity = flow_identity(world["chain_id"], world["flow"])
    from alignment_node.devnet.anvil import free_port

    t = Target(1, 3, f"http://127.0.0.1:{free_port()}", identity)

    async def go():
        async with RpcClient(world["anvil"].url) as rpc:
            return await ZgsAuditor(lambda cid: rpc).audit_epoch(1, [t], [t], 2.0)

    [r] = run(go()).values()
    assert r.verdict == UNREACHABLE, r.bundle["checks"]


# ----------------------------------------------------------------------------------- bad answers


class MutatingProxy:
    """Forwards JSON-RPC to an honest node, replacing the answer of one method with ``mutate(result)``
    (a JSON value, or raw bytes sent as the body; ``"forever"`` streams a body that never ends)."""

    def __init__(self, upstream: str, method: str, mutate):
        self.upstream, self.method, self.mutate = upstream, method, mutate
        self.server = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader, writer):
        import urllib.request

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                body = await reader.readexactly(length)
                req = json.loads(body)
                answer = await asyncio.to_thread(lambda: urllib.request.urlopen(
                    urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"}),
                    timeout=5).read())
                if req["method"] == self.method:
                    out = self.mutate(json.loads(answer)["result"])
                    if out == "forever":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n")
                        while True:
                            writer.write(b"1\r\n \r\n")
                            await writer.drain()
                            await asyncio.sleep(0.01)
                    answer = out if isinstance(out, bytes) else json.dumps(
                        {"jsonrpc": "2.0", "id": req["id"], "result": out}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(answer)).encode() + b"\r\n\r\n" + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()


def _segment(mutate_segment):
    def m(result):
        if result is None:
            return None
        return mutate_segment(dict(result))
    return m


def _status(mutate_status):
    def m(result):
        r = json.loads(json.dumps(result))
        mutate_status(r)
        return r
    return m


BAD_ANSWERS = {
    "base64 that does not decode": ("zgs_downloadSegmentWithProof", _segment(lambda r: {**r, "data": "!!notbase64"})),
    "a segment longer than 256 KiB": ("zgs_downloadSegmentWithProof",
                                      _segment(lambda r: {**r, "data": base64.b64encode(bytes(262144 + 256)).decode()})),
    "a proof with a thousand levels": ("zgs_downloadSegmentWithProof", _segment(
        lambda r: {**r, "proof": {"lemma": ["0x" + "11" * 32] * 1002, "path": [True] * 1000}})),
    "a lemma of the wrong length": ("zgs_downloadSegmentWithProof", _segment(
        lambda r: {**r, "proof": {"lemma": r["proof"]["lemma"] + ["0x" + "22" * 32], "path": r["proof"]["path"]}})),
    "a lemma hash of the wrong length": ("zgs_downloadSegmentWithProof", _segment(
        lambda r: {**r, "proof": {"lemma": ["0x1234"] + r["proof"]["lemma"][1:], "path": r["proof"]["path"]}})),
    "hex without 0x": ("zgs_getStatus", _status(lambda r: r.update(logSyncBlock=r["logSyncBlock"][2:]))),
    "numbers as strings": ("zgs_getStatus", _status(lambda r: r.update(nextTxSeq=str(r["nextTxSeq"])))),
    "a missing field": ("zgs_getFileInfoByTxSeq", lambda r: {k: v for k, v in r.items() if k != "finalized"}),
    "a node that streams forever": ("zgs_getShardConfig", lambda r: "forever"),
    "not JSON": ("zgs_getStatus", lambda r: b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"result\": {"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_answers_are_faults_or_unreachable_with_evidence(world, case):
    method, mutate = BAD_ANSWERS[case]
    identity = flow_identity(world["chain_id"], world["flow"])

    async def go():
        proxy = MutatingProxy(world["nodes"]["honest"].url, method, mutate)
        url = await proxy.start()
        t = Target(1, 3, url, identity)
        try:
            async with RpcClient(world["anvil"].url) as rpc:
                started = time.monotonic()
                results = await ZgsAuditor(lambda cid: rpc, request_deadline_ms=1500).audit_epoch(
                    1, [t], [t], 3.0, context=EpochContext(b"\x05" * 32, {1: [3]}))
                return results[1], time.monotonic() - started
        finally:
            proxy.server.close()

    r, took = run(go())
    assert took < 4.0
    assert r.verdict in (FAULT, UNREACHABLE), r.bundle["checks"]
    if case != "a node that streams forever":
        assert r.verdict == FAULT, r.bundle["checks"]
    assert evaluate(json.loads(canonical_json(r.bundle)))[0] == r.verdict
    bad = failed(r)
    assert bad, r.bundle["checks"]
    assert len(canonical_json(r.bundle)) < 64 * 1024  # evidence stays small: hashes, not the bytes


def test_an_auditor_out_of_time_gives_no_verdict_rather_than_a_false_unreachable(world):
    identity = flow_identity(world["chain_id"], world["flow"])
    t = Target(1, 3, world["nodes"]["slow"].url, identity)

    async def go(deadline_s):
        async with RpcClient(world["anvil"].url) as rpc:
            return await ZgsAuditor(lambda cid: rpc).audit_epoch(1, [t], [t], deadline_s)

    assert run(go(0.05)) == {}  # 15 ms for the status round: the slow node cannot be judged in that
    assert run(go(DEADLINE_S))[1].verdict == OK
