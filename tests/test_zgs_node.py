"""The devnet flow contract and the reference storage node, against a real anvil and over real HTTP.

Files are uploaded to DevnetFlow (devnet/storage.py); each storage node process (devnet/zgsnode.py) follows
the chain itself. Every answer is checked the way an auditor checks it: segment proofs with
``merkle.verify_proof`` against the data root folded from the on-chain ``Submit`` event, never against what
the node says.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from alignment_node.chain.contracts import Contract, ContractRevert
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet import storage
from alignment_node.devnet.anvil import Anvil, AnvilError, find_anvil
from alignment_node.devnet.zgsnode import ZgsNodeProcess
from alignment_node.zgs import merkle
from alignment_node.zgs.flow import SUBMIT_TOPIC, decode_submit

SEG = merkle.SEGMENT
SIZES = (1, 3 * SEG + SEG // 2 + 77, 6 * SEG - 1000)  # 1, 4 and 6 data segments
ELSEWHERE = 2048 + 5  # uploaded to another directory: the nodes know it but do not hold it
LAG = 8


class NodeError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def post(url: str, body: bytes, timeout: float = 5.0) -> bytes:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        return conn.getresponse().read()
    finally:
        conn.close()


def call(url: str, method: str, *params, timeout: float = 5.0):
    msg = json.loads(post(url, json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
                          .encode(), timeout))
    assert msg["jsonrpc"] == "2.0" and msg["id"] == 7
    if "error" in msg:
        raise NodeError(msg["error"]["code"], msg["error"]["message"])
    return msg["result"]


def h(b: bytes) -> str:
    return "0x" + b.hex()


def verify(served: dict, sub, index: int) -> bytes:
    """The auditor's check of one served segment; its bytes, or ProofError naming the failing step."""
    data = base64.b64decode(served["data"], validate=True)
    leaves = merkle.segment_leaf_count(sub.length, index)
    if not 0 < len(data) <= leaves * merkle.CHUNK:
        raise merkle.ProofError("data", f"{len(data)} bytes for a segment of {leaves} chunks")
    leaf = merkle.segment_root(data, leaves)
    proof = merkle.Proof(tuple(bytes.fromhex(x[2:]) for x in served["proof"]["lemma"]),
                         tuple(served["proof"]["path"]))
    merkle.verify_proof(proof, leaf, sub.root, index, merkle.num_segments(sub.length))
    return data


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    files = tmp_path_factory.mktemp("zgs-files")
    other = tmp_path_factory.mktemp("zgs-elsewhere")
    rng = random.Random(5)
    nodes: dict[tuple, ZgsNodeProcess] = {}
    with Anvil(block_time=None) as chain:

        async def setup():
            async with RpcClient(chain.url) as rpc:
                signer = LocalSigner(chain.private_keys[0])
                flow = await storage.deploy_flow(rpc, signer)
                uploads = []
                for size in SIZES:
                    data = storage.random_file(rng, size)
                    uploads.append((data, await storage.upload(flow, signer, data, files)))
                data = storage.random_file(rng, ELSEWHERE)
                uploads.append((data, await storage.upload(flow, signer, data, other)))
                return flow.address, uploads

        flow, uploads = asyncio.run(setup())
        chain.mine(LAG - 2)  # empty blocks: a node LAG behind has seen only the first two files

        class Net:
            pass

        n = Net()
        n.chain, n.flow, n.files, n.uploads = chain, flow, files, uploads
        n.held = uploads[:3]

        def node(mode: str = "honest", shard=(0, 1), **opts) -> ZgsNodeProcess:
            key = (mode, shard, tuple(sorted(opts.items())))
            if key not in nodes:
                nodes[key] = ZgsNodeProcess(chain.url, flow, files, mode, shard, **opts).start()
            return nodes[key]

        n.node = node
        try:
            yield n
        finally:
            for p in nodes.values():
                p.stop()


def head(net) -> tuple[int, str]:
    block = net.chain.rpc("eth_getBlockByNumber", ["latest", False])
    return int(block["number"], 16), block["hash"]


# ------------------------------------------------------------------------------------- flow contract


def test_submit_log_folds_to_the_data_root_and_is_0g_shaped(net):
    for data, sub in net.uploads:
        assert sub.root == merkle.data_root(data)
        assert sub.length == len(data)
        assert sub.entries == merkle.padded_chunks(len(data))
        assert [hh for _, hh in sub.nodes] == merkle.submission_heights(len(data))
    # each file was stored under its root (hex, no 0x) in the directory it was uploaded with
    assert sorted(p.name for p in net.files.iterdir()) == sorted(s.root.hex() for _, s in net.held)
    assert (net.files / net.held[2][1].root.hex()).read_bytes() == net.held[2][0]
    starts = [s.start_pos for _, s in net.uploads]
    # aligned to the first node, capped at a segment: 1 entry at 0; 3,840 (heights 11..8) at 1024;
    # 6,144 (heights 12, 11) after 1024 + 3840, rounded up to 5120; 9 (heights 3, 0) at 5120 + 6144
    assert [s.entries for _, s in net.uploads] == [1, 3840, 6144, 9]
    assert starts == [0, 1024, 5120, 11264]
    assert [s.index for _, s in net.uploads] == [0, 1, 2, 3]

    async def go():
        async with RpcClient(net.chain.url) as rpc:
            logs = await rpc.get_logs(net.flow, [SUBMIT_TOPIC], 0, "latest")
            # the event's top-level length is the flow entries taken, as 0G's Flow emits it
            raw_entries = [int(e["data"][2 + 128:2 + 192], 16) for e in logs]
            flow = Contract.from_artifact(rpc, "DevnetFlow", net.flow)
            counts = (await flow.call("numSubmissions"), await flow.call("flowLength"))
            sizes = [1, 255, 256, 257, 4096, 16 * 256 + 1, 1025 * 256, 33000 * 256 + 5, (1 << 40) + 3]
            sizes += [random.Random(9).randrange(1, 1 << 36) for _ in range(20)]
            padded = [await flow.call("paddedChunks", s) for s in sizes]
            signer = LocalSigner(net.chain.private_keys[1])
            with pytest.raises(ContractRevert) as bad:
                await flow.transact("submit", (300, b"", [(bytes(32), 0)]), signer=signer)
            return logs, raw_entries, counts, sizes, padded, bad.value

    logs, raw_entries, counts, sizes, padded, bad = asyncio.run(go())
    assert [decode_submit(e) for e in logs] == [s for _, s in net.uploads]
    assert raw_entries == [s.entries for _, s in net.uploads]
    assert counts == (4, net.uploads[-1][1].start_pos + net.uploads[-1][1].entries)
    assert padded == [merkle.padded_chunks(s) for s in sizes]
    assert bad.error_name == "PaddingMismatch" and bad.error.values == {"expectedEntries": 2, "nodeEntries": 1}


# ------------------------------------------------------------------------------------------- honest


def test_honest_status_shard_and_file_info_match_the_chain(net):
    url = net.node().url
    status = call(url, "zgs_getStatus")
    height, block = head(net)
    assert status["logSyncHeight"] == height and status["logSyncBlock"] == block
    assert status["nextTxSeq"] == 4
    assert status["networkIdentity"]["chainId"] == 31337
    assert status["networkIdentity"]["flowAddress"] == net.flow.lower()
    assert set(status["networkIdentity"]["p2pProtocolVersion"]) == {"major", "minor", "build"}
    assert type(status["connectedPeers"]) is int
    assert call(url, "zgs_getShardConfig") == {"shardId": 0, "numShard": 1}
    for i, (_data, sub) in enumerate(net.uploads):
        info = call(url, "zgs_getFileInfoByTxSeq", sub.index)
        assert call(url, "zgs_getFileInfo", h(sub.root), False) == info
        tx = info["tx"]
        assert tx["seq"] == sub.index and tx["startEntryIndex"] == sub.start_pos and tx["size"] == sub.length
        assert tx["dataMerkleRoot"] == h(sub.root)
        assert tx["merkleNodes"] == [[hh, h(r)] for r, hh in sub.nodes]
        assert tx["streamIds"] == [] and tx["data"] == "0x"
        held = i < 3
        assert info["finalized"] is held and info["pruned"] is False and info["isCached"] is False
        assert info["uploadedSegNum"] == (sub.segments if held else 0)
        assert call(url, "zgs_checkFileFinalized", sub.index) is held
        assert call(url, "zgs_checkFileFinalized", h(sub.root)) is held
    elsewhere = net.uploads[3][1]
    assert call(url, "zgs_getFileInfo", h(elsewhere.root), True) is None  # needAvailable: not here
    assert call(url, "zgs_getFileInfo", h(b"\x01" * 32), False) is None
    assert call(url, "zgs_getFileInfoByTxSeq", 4) is None
    assert call(url, "zgs_checkFileFinalized", 99) is None
    assert call(url, "zgs_downloadSegmentWithProof", h(elsewhere.root), 0) is None
    flow_root, flow_length = call(url, "zgs_getFlowContext")
    assert flow_length == elsewhere.start_pos + elsewhere.entries and len(flow_root) == 66


def test_honest_serves_every_segment_with_a_proof_to_the_onchain_root(net):
    url = net.node().url
    for data, sub in net.held:
        for i in range(sub.segments):
            served = call(url, "zgs_downloadSegmentWithProof", h(sub.root), i)
            assert served["root"] == h(sub.root) and served["index"] == i and served["fileSize"] == len(data)
            assert verify(served, sub, i) == data[i * SEG:(i + 1) * SEG]  # file bytes, no padding
        chunks = merkle.num_chunks(len(data))
        got = call(url, "zgs_downloadSegment", h(sub.root), max(0, chunks - 3), chunks)
        assert base64.b64decode(got) == data[max(0, chunks - 3) * 256:]
        with pytest.raises(NodeError) as e:
            call(url, "zgs_downloadSegmentWithProof", h(sub.root), sub.segments)
        assert e.value.code == -32602
    # a tampered copy of the served bytes fails at the leaf: the check is not vacuous
    data, sub = net.held[1]
    served = call(url, "zgs_downloadSegmentWithProof", h(sub.root), 2)
    served["data"] = base64.b64encode(b"\x00" + base64.b64decode(served["data"])[1:]).decode()
    with pytest.raises(merkle.ProofError) as e:
        verify(served, sub, 2)
    assert e.value.step == "leaf"


def test_shards_hold_only_their_flow_segments(net):
    served_by = {}
    for shard_id in (0, 1):
        url = net.node(shard=(shard_id, 2)).url
        assert call(url, "zgs_getShardConfig") == {"shardId": shard_id, "numShard": 2}
        for data, sub in net.held:
            info = call(url, "zgs_getFileInfoByTxSeq", sub.index)
            mine = [i for i in range(sub.segments) if (sub.start_pos // 1024 + i) % 2 == shard_id]
            assert info["finalized"] is True and info["uploadedSegNum"] == len(mine)
            for i in range(sub.segments):
                served = call(url, "zgs_downloadSegmentWithProof", h(sub.root), i)
                if i in mine:
                    assert verify(served, sub, i) == data[i * SEG:(i + 1) * SEG]
                    served_by[(sub.index, i)] = shard_id
                else:
                    assert served is None
    # together the two shards serve every segment exactly once
    assert sorted(served_by) == [(s.index, i) for _, s in net.held for i in range(s.segments)]
    # the 1-byte file is in flow segment 0 (shard 0); the others start at flow segments 1 and 5 (shard 1)
    assert served_by[(0, 0)] == 0 and served_by[(1, 0)] == 1 and served_by[(2, 0)] == 1
    assert served_by[(2, 1)] == 0 and served_by[(1, 3)] == 0


def test_bad_requests_get_json_rpc_errors_and_connections_stay_alive(net):
    url = net.node().url
    root = h(net.held[1][1].root)
    for method, params, code in [
        ("zgs_noSuchMethod", [], -32601),
        ("zgs_downloadSegmentWithProof", [root[2:], 0], -32602),  # hex without 0x
        ("zgs_downloadSegmentWithProof", [root, "1"], -32602),  # number as a string
        ("zgs_downloadSegmentWithProof", [root, -1], -32602),
        ("zgs_downloadSegmentWithProof", [root], -32602),
        ("zgs_getFileInfoByTxSeq", [True], -32602),
        ("zgs_downloadSegment", [root, 0, 1025], -32602),  # more than a segment
        ("zgs_downloadSegment", [root, 5, 5], -32602),
    ]:
        with pytest.raises(NodeError) as e:
            call(url, method, *params)
        assert e.value.code == code, method
    msg = json.loads(post(url, b'{"jsonrpc":"2.0","id":1,"method":"zgs_getStatus","params":{"a":1}}'))
    assert msg["error"]["code"] == -32602
    assert json.loads(post(url, b"{not json"))["error"]["code"] == -32700
    batch = json.loads(post(url, json.dumps([{"jsonrpc": "2.0", "id": i, "method": "zgs_getShardConfig"}
                                             for i in range(3)]).encode()))
    assert [m["id"] for m in batch] == [0, 1, 2]
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        for i in range(3):  # one connection, three requests
            conn.request("POST", "/", json.dumps({"jsonrpc": "2.0", "id": i, "method": "zgs_getShardConfig"}))
            assert json.loads(conn.getresponse().read())["id"] == i
        assert conn.sock is not None
    finally:
        conn.close()


def test_slow_node_is_honest_but_late(net):
    url = net.node("slow", delay=0.3).url
    data, sub = net.held[2]
    t0 = time.monotonic()
    served = call(url, "zgs_downloadSegmentWithProof", h(sub.root), 5)
    assert time.monotonic() - t0 >= 0.3
    assert verify(served, sub, 5) == data[5 * SEG:]
    assert call(url, "zgs_getStatus")["nextTxSeq"] == 4


def _submissions_by(net, block: int) -> int:
    return sum(1 for _, s in net.uploads if s.block <= block)


def test_behind_node_says_how_far_behind_it_is(net):
    url = net.node("behind", lag=LAG).url
    height, _ = head(net)
    status = call(url, "zgs_getStatus")
    assert status["logSyncHeight"] == height - LAG
    block = net.chain.rpc("eth_getBlockByNumber", [hex(height - LAG), False])
    assert status["logSyncBlock"] == block["hash"]
    # consistent with the chain at the block it claims: an auditor must not flag it
    assert status["nextTxSeq"] == _submissions_by(net, height - LAG) == 2
    assert call(url, "zgs_getFileInfoByTxSeq", 2) is None
    data, sub = net.held[1]
    assert verify(call(url, "zgs_downloadSegmentWithProof", h(sub.root), 3), sub, 3) == data[3 * SEG:]


def test_lying_lag_claims_the_head_with_a_lagged_tx_count(net):
    url = net.node("lying-lag", lag=LAG).url
    height, block = head(net)
    status = call(url, "zgs_getStatus")
    assert (status["logSyncHeight"], status["logSyncBlock"]) == (height, block)
    assert status["nextTxSeq"] == 2 != _submissions_by(net, height)  # the inconsistency an auditor catches
    assert call(url, "zgs_getFileInfoByTxSeq", 2) is None


# ------------------------------------------------------------------------------------------- faults


def test_drop_claims_finalized_but_serves_only_part(net):
    url = net.node("drop").url
    served = nulls = 0
    for data, sub in net.held:
        assert call(url, "zgs_getFileInfoByTxSeq", sub.index)["finalized"] is True
        for i in range(sub.segments):
            got = call(url, "zgs_downloadSegmentWithProof", h(sub.root), i)
            if got is None:
                nulls += 1
            else:
                assert verify(got, sub, i) == data[i * SEG:(i + 1) * SEG]
                served += 1
    assert nulls >= 2 and served >= 2, (nulls, served)
    none_dropped = net.node("drop", fraction=0.0).url
    _, sub = net.held[2]
    assert all(call(none_dropped, "zgs_downloadSegmentWithProof", h(sub.root), i) for i in range(sub.segments))


@pytest.mark.parametrize("mode", ["corrupt", "wrong-index", "wrong-root"])
def test_faulty_proofs_fail_verification_at_the_expected_step(net, mode):
    url = net.node(mode).url
    steps = {}
    for data, sub in net.held:
        info = call(url, "zgs_getFileInfoByTxSeq", sub.index)
        assert info["finalized"] is True
        for i in range(sub.segments):
            served = call(url, "zgs_downloadSegmentWithProof", h(sub.root), i)
            assert served["index"] == i and served["root"] == h(sub.root)
            with pytest.raises(merkle.ProofError) as e:
                verify(served, sub, i)
            steps[(sub.index, i)] = e.value.step
    if mode == "corrupt":
        assert set(steps.values()) == {"leaf"}
    elif mode == "wrong-root":
        assert set(steps.values()) == {"root"}
    else:
        assert steps[(0, 0)] == "leaf"  # a single segment: flipped bytes
        assert steps[(2, 0)] == "position"  # segment 1's data and proof, labelled 0
        assert steps[(2, 5)] == "position"  # segment 0's, labelled 5 (same leaf count)
        assert steps[(1, 2)] == "leaf"  # the short last segment's bytes as a full segment
        assert steps[(1, 3)] == "data"  # a full segment's bytes for the short last segment


def test_empty_claims_everything_and_serves_nothing(net):
    url = net.node("empty").url
    for _data, sub in net.uploads:  # even the file it never had
        info = call(url, "zgs_getFileInfoByTxSeq", sub.index)
        assert info["finalized"] is True and info["uploadedSegNum"] == sub.segments
        assert all(call(url, "zgs_downloadSegmentWithProof", h(sub.root), i) is None for i in range(sub.segments))


def test_wrong_flow_reports_another_flow_address(net):
    url = net.node("wrong-flow").url
    status = call(url, "zgs_getStatus")
    assert status["networkIdentity"]["flowAddress"] != net.flow.lower()
    assert len(status["networkIdentity"]["flowAddress"]) == 42
    assert status["nextTxSeq"] == 4
    data, sub = net.held[0]
    assert verify(call(url, "zgs_downloadSegmentWithProof", h(sub.root), 0), sub, 0) == data


def test_garbage_answers_every_kind_in_turn(net):
    node = ZgsNodeProcess(net.chain.url, net.flow, net.files, "garbage").start()
    try:
        url = node.url
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "zgs_getStatus", "params": []}).encode()
        with pytest.raises(ValueError):
            json.loads(post(url, body))
        status = json.loads(post(url, body))["result"]
        assert isinstance(status["logSyncHeight"], str) and isinstance(status["nextTxSeq"], str)
        assert not status["logSyncBlock"].startswith("0x")
        with pytest.raises(ValueError):
            merkle.decode_base64(json.loads(post(url, body))["result"]["data"], SEG)
        long = json.loads(post(url, body))["result"]["data"]
        with pytest.raises(ValueError):
            merkle.decode_base64(long, SEG)
        assert len(base64.b64decode(long)) > SEG
        deep = json.loads(post(url, body))["result"]["proof"]
        assert len(deep["path"]) == 1000
        proof = merkle.Proof(tuple(bytes.fromhex(x[2:]) for x in deep["lemma"]), tuple(deep["path"]))
        with pytest.raises(merkle.ProofError) as e:
            merkle.verify_proof(proof, bytes(32), bytes(32), 0, 1)
        assert e.value.step == "shape"
        # the endless body: headers, then a trickle that never ends
        u = urlsplit(url)
        with socket.create_connection((u.hostname, u.port), timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            s.settimeout(0.2)
            got = b""
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                try:
                    piece = s.recv(4096)
                except TimeoutError:
                    continue
                assert piece, "the node ended the body"
                got += piece
        assert got.startswith(b"HTTP/1.1 200") and b"chunked" in got and len(got.split(b"\r\n\r\n", 1)[1]) > 20
        assert b"0\r\n\r\n" not in got
        # and the cycle starts again
        with pytest.raises(ValueError):
            json.loads(post(url, body))
    finally:
        node.stop()
    assert node.process is None


def test_cli_refuses_a_bad_shard(net):
    out = subprocess.run([sys.executable, "-m", "alignment_node.devnet.zgsnode", "--rpc", net.chain.url, "--flow",
                          net.flow, "--files", str(net.files), "--port", "1", "--num-shard", "3"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "power of two" in out.stderr
