"""Issue 18: reorgs during the commit and reveal windows, and a flapping RPC endpoint in front of the node's chain.

Real anvil (``anvil_reorg``), the deployed contracts and a real node process; the fault-injecting proxy
(devnet/faultproxy.py) runs in a thread of the test so its mode can change while the node uses it. What counts is
read from the chain: Committed/Revealed events, rootOf, hasRevealed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from types import SimpleNamespace

import pytest

from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.devnet.anvil import Anvil, free_port
from alignment_node.devnet.chaos import FaultProxyThread
from alignment_node.devnet.report import chain_events, report
from alignment_node.node.chainguard import REORG_ERROR, GuardedRpcClient
from alignment_node.node.metrics import NodeMetrics
from test_node import devnet, http_get, status, wait_until  # noqa: F401  (a sibling test module; devnet: a fixture)

LAZY = {"targets": ("honest",), "lazy_operators": (0,)}  # one target to audit; the node votes without auditing


def journal(op) -> list[dict]:
    db = op.directory / "data" / "node.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT purpose, epoch, nonce, tx_hash, state, block, error, meta"
                                             " FROM tx_journal ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def chain(net, fn):
    async def go():
        async with RpcClient(net.anvil.url) as rpc:
            return await fn(manifest_contracts(rpc, net.manifest))
    return asyncio.run(go())


def revealed_licenses(net, epoch: int) -> set[int]:
    """The licenses of the operators whose Revealed event of ``epoch`` the chain shows (one reveal per operator)."""
    async def read(c):
        return {ev["operator"].lower() for ev in await chain_events(c["AuditProtocol"], "Revealed",
                                                                    int(net.manifest["deployBlock"]))
                if ev["epoch"] == epoch}
    revealed = chain(net, read)
    return {lic for op in net.operators if op.address.lower() in revealed for lic in op.licenses}


def root_of(net, op, epoch: int) -> bytes:
    return bytes(chain(net, lambda c: c["AuditProtocol"].call("rootOf", op.address, epoch)))


def committed_roots(net, op, epoch: int) -> list[bytes]:
    async def read(c):
        return [bytes(ev["root"]) for ev in await chain_events(c["AuditProtocol"], "Committed",
                                                               int(net.manifest["deployBlock"]))
                if ev["epoch"] == epoch and ev["operator"].lower() == op.address.lower()]
    return chain(net, read)


def mined(op, purpose: str, epoch: int | None = None) -> list[dict]:
    return [r for r in journal(op) if r["purpose"] == purpose and r["state"] == "mined"
            and (epoch is None or r["epoch"] == epoch)]


def settled(net, op) -> None:
    """Wait until the node has seen the chain's head and has nothing in flight."""
    wait_until(lambda: (status(op).get("head_block") or -1) >= net.anvil.block_number()
               and not any(r["state"] in ("signed", "sent") for r in journal(op)), what="the node to settle")
    time.sleep(0.5)


def metric(op, name: str, purpose: str, label: str = "purpose") -> float:
    text = http_get(op.url() + "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{{label}="{purpose}"}}'):
            return float(line.split()[-1])
    return 0.0


def first_commit(net, op) -> dict:
    """The node's first commit: the licenses are listed from the epoch after the first heartbeat."""
    wait_until(lambda: mined(op, "heartbeat"), timeout=60, what="a first heartbeat")
    epoch = chain(net, lambda c: c["AuditProtocol"].call("currentEpoch"))
    net.anvil.mine(chain(net, lambda c: c["AuditProtocol"].call("epochStartBlock", epoch + 1))
                   - net.anvil.block_number())
    return wait_until(lambda: mined(op, "commit"), timeout=60, what="a mined commit")[0]


def reorg(net, depth: int, gone) -> None:
    """Replace the last ``depth`` blocks by as many empty ones (the head's number stays, so the node does not tick),
    check that ``gone()`` holds, then mine a new head for the node to tick on."""
    before = net.anvil.block_number()
    net.anvil.rpc("anvil_reorg", [depth, []])
    assert net.anvil.block_number() == before and gone()
    net.anvil.mine(1)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_reorged_commit_is_committed_again_and_reorged_reveal_revealed_again(devnet, depth):
    net = devnet(**LAZY)
    op = net.operators[0]
    net.start_nodes()
    commit = first_commit(net, op)
    epoch = commit["epoch"]
    settled(net, op)
    root = root_of(net, op, epoch)
    assert root != bytes(32) and "0x" + root.hex() == json.loads(commit["meta"])["root"]
    head = net.anvil.block_number()
    end = chain(net, lambda c: c["AuditProtocol"].call("epochStartBlock", epoch + 1))
    assert end - head > 8, "room left in the epoch to commit again"
    drop = head - commit["block"] + depth  # the commit's block and depth-1 before it (the heartbeat's at depth 3)
    assert drop <= 3

    # 1. A reorg right after the commit: the chain forgets the root; the node commits the same root again.
    reorg(net, drop, lambda: root_of(net, op, epoch) == bytes(32))
    wait_until(lambda: len(mined(op, "commit", epoch)) == 1 and root_of(net, op, epoch) == root,
               what="the same root committed again")
    # The journal says so: the dropped transaction, or the very same bytes mined again, carries the reorg note.
    wait_until(lambda: any(r["tx_hash"] == commit["tx_hash"] and REORG_ERROR in (r["error"] or "")
                           for r in journal(op)), what="the commit noted as dropped by a reorg")
    assert committed_roots(net, op, epoch) == [root]  # the reorged Committed event is gone, the new one has it
    assert metric(op, "alignment_reorged_transactions_total", "commit") >= 1
    assert metric(op, "alignment_resent_after_reorg_total", "commit") >= 1
    if drop == 3:  # the heartbeat just before the commit went too: the node is present again, or it could not commit
        assert metric(op, "alignment_resent_after_reorg_total", "heartbeat") >= 1
    licenses = {lic for lic in map(int, status(op)["licenses"])}

    # 2. The reveal window of the epoch: every committed license is revealed.
    settled(net, op)
    start = chain(net, lambda c: c["AuditProtocol"].call("epochStartBlock", epoch + 1))
    net.anvil.mine(start - net.anvil.block_number())
    wait_until(lambda: revealed_licenses(net, epoch) == licenses, what="the reveals")
    # The chain can show the reveal before the node has read its receipt: wait for the journal too.
    reveal = wait_until(lambda: mined(op, "reveal", epoch), what="the reveal journaled as mined")[0]
    settled(net, op)  # the next epoch's heartbeat and commit too

    # 3. A reorg after the reveal: the Revealed events are gone; the node reveals again within the window.
    drop = net.anvil.block_number() - reveal["block"] + 1
    assert drop <= 3
    reorg(net, drop, lambda: not revealed_licenses(net, epoch))
    wait_until(lambda: revealed_licenses(net, epoch) == licenses, what="the reveals again")
    net.anvil.mine(1)  # one more tick: the note goes back on a journal row that was mined again
    wait_until(lambda: any(r["tx_hash"] == reveal["tx_hash"] and REORG_ERROR in (r["error"] or "")
                           for r in journal(op)), what="the reveal noted as dropped by a reorg")
    window_end = start + net.plan.reveal_blocks
    assert all(r["block"] < window_end for r in mined(op, "reveal", epoch))
    assert metric(op, "alignment_resent_after_reorg_total", "reveal") >= 1
    # The next epoch's commit, dropped with the reveal, is back too.
    settled(net, op)
    assert root_of(net, op, epoch + 1) != bytes(32)
    assert [o["missed_reveals"] for o in asyncio.run(_report(net, [epoch]))["operators"]] == [0]


async def _report(net, epochs):
    async with RpcClient(net.anvil.url) as rpc:
        return await report(net, rpc, "reorg-flap", epochs)


# ------------------------------------------------------------------------------------------ flapping endpoint

# The proxy that flaps: the chaos scenario's (devnet/chaos.py), in a thread of the test.
ProxyThread = FaultProxyThread


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as chain_:
        chain_.mine(30)
        yield chain_


@pytest.mark.parametrize("mode", ["lagging", "halted", "wrong-chain", "garbage", "slow", "down"])
def test_the_node_client_does_not_act_on_a_lying_or_dead_first_endpoint(anvil, mode):
    """The node's RPC client with the proxy as endpoint 1 and anvil as endpoint 2: each fault ends on anvil's
    answers (the head, the chain id), never on the proxy's."""
    net = SimpleNamespace(anvil=anvil)
    proxy = ProxyThread(anvil.url, free_port())
    chain_id = int(anvil.rpc("eth_chainId"), 16)

    async def go():
        metrics = NodeMetrics()
        # Chain ids asked before every request, a head frozen for 0.5s compared with the other endpoint's.
        rpc = GuardedRpcClient([f"http://127.0.0.1:{proxy.port}", net.anvil.url], 1.0, metrics, chain_id,
                               verify_s=0.0, stall_s=0.5)
        try:
            assert await rpc.block_number() == net.anvil.block_number() and rpc._preferred == 0
            proxy.set(mode, k=20, delay=2.0)
            net.anvil.mine(1)
            heads = []
            for _ in range(3):
                await asyncio.sleep(0.6)  # a frozen head is only noticed once it has been frozen a while
                heads.append(await rpc.block_number())
                assert await rpc.chain_id() == chain_id
            assert heads[-1] == net.anvil.block_number(), (mode, heads)
            assert rpc._preferred == 1
            if mode == "wrong-chain":  # alone, it is not skipped but named: the node stops with a clear message
                alone = GuardedRpcClient([f"http://127.0.0.1:{proxy.port}"], 1.0, NodeMetrics(), chain_id)
                assert await alone.chain_id() == chain_id + 1
                await alone.close()
            return metrics
        finally:
            await rpc.close()

    try:
        metrics = asyncio.run(go())
    finally:
        proxy.stop()
    lies = {s.labels["reason"]: s.value for m in metrics.rpc_lies.collect() for s in m.samples
            if s.name.endswith("_total")}
    expected = {"lagging": "stale-head", "halted": "stalled-head", "wrong-chain": "wrong-chain"}.get(mode)
    if expected:
        assert lies.get(expected, 0) >= 1, lies


@pytest.mark.parametrize("mode", ["down", "slow", "honest"])
def test_a_node_starting_while_its_first_endpoint_hangs_begins_on_the_next_without_waiting_out_the_timeout(anvil, mode):
    """At start every endpoint's chain id is asked at once and the node begins on the first in order that answers
    (the chaos scenario: a node restarted inside a 6 s reveal window used to spend its first 2 s timeout on a dead
    proxy); an answering first endpoint keeps its place."""
    proxy = ProxyThread(anvil.url, free_port())
    proxy.set(mode, k=1000, delay=10.0)
    chain_id = int(anvil.rpc("eth_chainId"), 16)

    async def go():
        rpc = GuardedRpcClient([f"http://127.0.0.1:{proxy.port}", anvil.url], 3.0, NodeMetrics(), chain_id)
        try:
            started = time.monotonic()
            assert await rpc.chain_id() == chain_id
            took = time.monotonic() - started
            assert await rpc.block_number() == anvil.block_number()
            return took, rpc._preferred
        finally:
            await rpc.close()

    try:
        took, preferred = asyncio.run(go())
    finally:
        proxy.stop()
    assert preferred == (0 if mode == "honest" else 1)
    assert took < 1.5, took  # under half the 3 s timeout the first endpoint would have cost


def test_a_reorg_deeper_than_the_slack_on_every_endpoint_is_followed(anvil):
    """Heads a little lower (a short reorg) are taken; much lower on one endpoint is a lie; much lower on every
    endpoint is the chain going back, and followed."""
    snap = anvil.rpc("evm_snapshot")
    before = anvil.block_number()
    anvil.mine(10)

    async def go():
        rpc = GuardedRpcClient([anvil.url, anvil.url], 1.0, NodeMetrics(), int(anvil.rpc("eth_chainId"), 16))
        try:
            assert await rpc.block_number() == before + 10
            assert anvil.rpc("evm_revert", [snap]) is True
            return await rpc.block_number()
        finally:
            await rpc.close()

    assert asyncio.run(go()) == before


FLAPS = ["lagging", "honest", "garbage", "wrong-chain", "slow", "halted", "down", "honest", "lagging"]


def test_flapping_first_endpoint_loses_no_reveal(devnet):
    port = free_port()
    net = devnet(**LAZY, dead_rpc_urls=(f"http://127.0.0.1:{port}",))
    op = net.operators[0]
    proxy = ProxyThread(net.anvil.url, port)
    try:
        net.start_nodes()
        first = first_commit(net, op)["epoch"]
        epochs = [first, first + 1, first + 2]
        step, i = 4, 0
        # Through the epochs and the last one's reveal window, a few blocks at a time; the proxy changes its fault
        # at every step, during commits and reveals alike.
        last = chain(net, lambda c: c["AuditProtocol"].call("revealWindow", epochs[-1]))[1]
        while net.anvil.block_number() < last + 1:
            proxy.set(FLAPS[i % len(FLAPS)], k=20, delay=3.0)
            i += 1
            net.anvil.mine(step)
            wait_until(lambda: (status(op).get("head_block") or -1) >= net.anvil.block_number() - 1
                       and not any(r["state"] in ("signed", "sent") for r in journal(op)),
                       timeout=30, what="the node at the head")
        net.nodes_stopped_block = net.anvil.block_number()
        rep = asyncio.run(_report(net, epochs))
        stale = metric(op, "alignment_rpc_lies_total", "stale-head", "reason")
    finally:
        net.stop_nodes()
        proxy.stop()
    licenses = set(net.operators[0].licenses)
    for e in epochs:
        assert revealed_licenses(net, e) == licenses, e
    assert rep["operators"][0]["missed_reveals"] == 0 and not rep["operators"][0]["missed_reveal_epochs"]
    assert i >= len(FLAPS)
    assert stale >= 1  # the lagging proxy's heads were refused, not acted on
