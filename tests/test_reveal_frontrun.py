"""Security review H1 and H4 on the node's side (docs/security.md): with the fakes of test_node_services.py (the
contracts' real ABIs, view calls answered from a table, a sender that records or reverts by name), and once on a
real chain (anvil, the committed artifacts).

H1: anyone may copy one license's opening out of a pending revealMany and reveal it first. A batch that reverts is
re-checked license by license: those revealed meanwhile are revealed (only this node's openings pass the proof),
the rest is sent again; only what nobody revealed is a miss.

H4: misses are reported for every target this node revealed on once it is settled, whoever settled it, in the
node's settlement turn; a report another node made first is expected and quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from alignment_node import protocol as P
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.config import Config
from alignment_node.node import reveal as R
from alignment_node.node import settlement as S
from alignment_node.node.commitments import ensure_layout, epoch_tree
from alignment_node.node.duties import Duties
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.parts import MeteredRpcClient, NodeParts, Snapshot
from alignment_node.node.store import Store
from alignment_node.node.txsender import TxSender

import test_protocol_differential as D  # a sibling test module: its deployment and helpers
from test_node_services import open_commitments, settle_world, states, world  # noqa: F401  (world: a fixture)


# ------------------------------------------------------------------------------------------ H1: reveals


def frontrun_world(world, epoch: int, spec: dict[int, int], steals: list[set[int]], then: str | None = None):
    """Committed openings ``spec``; the n-th revealMany sent is preceded by the attacker revealing ``steals[n]``
    (copied from it), so it reverts AlreadyRevealed; once ``steals`` is used up, a revealMany reverts ``then``
    (None: it goes through). Returns the on-chain set of revealed licenses and the list of attempted batches."""
    open_commitments(world.store, epoch, spec)
    root = epoch_tree(world.store, epoch).root
    onchain: set[int] = set()
    attempts: list[list[int]] = []
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: root
    world.answers["isRevealed"] = lambda lic, e: e == epoch and lic in onchain

    def rule(args):
        licenses = [r[0] for r in args[1]]
        attempts.append(licenses)
        n = len(attempts) - 1
        if n < len(steals):
            onchain.update(steals[n] & set(licenses))
        if onchain & set(licenses):
            return "AlreadyRevealed"
        if then:
            return then
        onchain.update(licenses)
        return None

    world.sender.revert["reveal"] = rule
    return onchain, attempts


def sent_batches(world) -> list[list[int]]:
    return [[r[0] for r in args[1]] for _p, fn, args, _e in world.sender.sent if fn == "revealMany"]


def test_a_batch_broken_by_one_copied_reveal_is_sent_again_without_it_and_nothing_is_missed(world):
    onchain, attempts = frontrun_world(world, 5, {1: 2, 2: 2, 3: 2}, steals=[{2}])
    asyncio.run(world.reveal.reveal(5, 105))
    assert attempts == [[1, 2, 3], [1, 3]]
    assert sent_batches(world) == [[1, 3]]
    assert onchain == {1, 2, 3}
    assert {lic: s for lic, (s, _r) in states(world.store, 5).items()} == {1: "revealed", 2: "revealed",
                                                                          3: "revealed"}
    assert world.node.metrics.missed_reveals._value.get() == 0


def test_copied_reveals_again_and_again_each_retry_drops_what_was_revealed(world):
    onchain, attempts = frontrun_world(world, 5, {1: 1, 2: 1, 3: 1, 4: 1}, steals=[{4}, {1}, {3}])
    asyncio.run(world.reveal.reveal(5, 105))
    assert attempts == [[1, 2, 3, 4], [1, 2, 3], [2, 3], [2]]
    assert sent_batches(world) == [[2]]
    assert {s for s, _r in states(world.store, 5).values()} == {"revealed"}
    assert world.node.metrics.missed_reveals._value.get() == 0


def test_a_whole_batch_copied_is_revealed_without_a_transaction_of_ours(world):
    onchain, attempts = frontrun_world(world, 5, {1: 1, 2: 1}, steals=[{1, 2}])
    asyncio.run(world.reveal.reveal(5, 105))
    assert attempts == [[1, 2]] and sent_batches(world) == []
    assert {s for s, _r in states(world.store, 5).values()} == {"revealed"}


def test_a_revert_with_nothing_revealed_meanwhile_misses_the_batch_once_with_its_reason(world):
    onchain, attempts = frontrun_world(world, 5, {1: 1, 2: 1}, steals=[], then="RevealWindowClosed")
    asyncio.run(world.reveal.reveal(5, 105))
    assert attempts == [[1, 2]]  # no retry: nobody revealed anything
    for state, reason in states(world.store, 5).values():
        assert state == "missed" and "RevealWindowClosed" in reason
    assert world.node.metrics.missed_reveals._value.get() == 2


def test_a_retry_that_fails_for_another_reason_misses_only_what_nobody_revealed(world):
    onchain, attempts = frontrun_world(world, 5, {1: 1, 2: 1, 3: 1}, steals=[{2}], then="RevealWindowClosed")
    asyncio.run(world.reveal.reveal(5, 105))
    assert attempts == [[1, 2, 3], [1, 3]]
    got = states(world.store, 5)
    assert got[2] == ("revealed", None)
    assert got[1][0] == got[3][0] == "missed" and "RevealWindowClosed" in got[1][1]
    assert world.node.metrics.missed_reveals._value.get() == 2


# ------------------------------------------------------------------------------------------ H4: misses


def misses(world) -> list[tuple]:
    return [(args[1], args[2]) for _p, fn, args, _e in world.sender.sent if fn == "reportMiss"]


def miss_world(world, settled: set[int], revealers: dict[int, list[int]], mine: dict[int, list[int]]):
    """Epoch 2's targets with their revealers; the committee is licenses 1..19 (all seated), active: 1..12."""
    settle_world(world, 2, mine, revealers, settled=settled)
    world.answers["committee"] = lambda e, t: list(range(1, 20))
    world.vault.answers["isActive"] = lambda lic, e: lic <= 12


def test_a_target_another_node_settled_first_still_gets_its_misses_reported(world):
    # Target 1 was settled by a lazy operator before our turn came; licenses 4..12 are seated, active, silent.
    miss_world(world, settled={1}, revealers={1: [3, 1, 2]}, mine={3: [1]})
    asyncio.run(world.settle.settle_and_report(110 + 2 * S.SETTLE_GRACE_BLOCKS, 3))
    assert [a for p, _f, a, _e in world.sender.sent if p == "settle"] == []  # nothing to settle
    assert misses(world) == [(lic, 1) for lic in range(4, 13)]
    assert world.store.get("settled.2") is True
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(300, 3))
    assert world.sender.sent == []  # done once


def test_misses_of_a_target_settled_by_others_wait_for_this_nodes_turn(world):
    # Our lowest revealer (5) is second in line on target 1 (1 is lower): the first in line reports at the end
    # of the window, we only one grace period later, when its reports are expected to be there already.
    miss_world(world, settled={1}, revealers={1: [1, 5]}, mine={5: [1]})
    asyncio.run(world.settle.settle_and_report(110 + S.SETTLE_GRACE_BLOCKS - 1, 3))
    assert world.sender.sent == [] and not world.store.get("settled.2")
    world.sender.revert["report_miss"] = lambda args: "MissAlreadyReported" if args[1] < 8 else None
    asyncio.run(world.settle.settle_and_report(110 + S.SETTLE_GRACE_BLOCKS, 3))
    assert misses(world) == [(lic, 1) for lic in range(8, 13)]  # the others' reports were there: quiet
    assert world.store.get("settled.2") is True


def test_a_lost_settle_race_still_reports_the_misses(world):
    miss_world(world, settled=set(), revealers={1: [3], 2: [3, 4]}, mine={3: [1, 2]})
    world.sender.revert["settle"] = lambda args: "AlreadySettled" if args[1] == 1 else None
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert [a for p, _f, a, _e in world.sender.sent if p == "settle"] == [(2, 2)]
    assert sorted(misses(world)) == sorted([(lic, 1) for lic in [1, 2] + list(range(4, 13))]
                                           + [(lic, 2) for lic in [1, 2] + list(range(5, 13))])


def test_a_settled_targets_misses_are_reported_once_while_the_epoch_is_still_pending(world):
    # Target 1 is settled by another node; target 4's turn is ours only after a grace period.
    miss_world(world, settled={1}, revealers={1: [3], 4: [1, 3]}, mine={3: [1, 4]})
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert misses(world) == [(lic, 1) for lic in [1, 2] + list(range(4, 13))]
    assert not world.store.get("settled.2")
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(111, 3))
    assert world.sender.sent == []  # target 1 is done, target 4 still waits
    asyncio.run(world.settle.settle_and_report(110 + S.SETTLE_GRACE_BLOCKS, 3))
    assert [a for p, _f, a, _e in world.sender.sent if p == "settle"] == [(2, 4)]
    assert misses(world) == [(lic, 4) for lic in [2] + list(range(4, 13))]
    assert world.store.get("settled.2") is True


# ----------------------------------------------------------------------------- on a real chain (anvil)
#
# The differential tests' deployment (test_protocol_differential.py: epochs of 10 blocks, reveals in the first 5,
# two operators of 8 licenses each, every license on every committee) with operator B's node parts built for
# real: its store, the journaled transaction sender, the deployed contracts. B holds the lower license ids, so it
# is first in line to settle and report; A is the lazy operator.



@pytest.fixture(scope="module")
def chain():
    yield from D._chain(D.COMMITTEE_SIZE)


@contextlib.asynccontextmanager
async def node_of(net, op, data_dir: Path):
    """Operator ``op``'s node parts on the chain."""
    store = Store(data_dir / "node.sqlite")
    metrics = NodeMetrics()
    async with MeteredRpcClient([net.anvil.url], 10.0, metrics) as rpc:
        yield NodeParts(cfg=Config(), signer=op.signer, manifest=net.manifest, data_dir=data_dir, store=store,
                        metrics=metrics, rpc=rpc, c=manifest_contracts(rpc, net.manifest),
                        sender=TxSender(rpc, op.signer, store), snapshot=Snapshot(operator=op.signer.address))
    store.close()


def store_openings(store: Store, openings: list) -> None:
    for o in openings:
        store.put_opening(o.epoch, o.license, "0x" + o.salt.hex(), o.target_ids, o.verdicts,
                          ["0x" + r.hex() for r in o.roots], "0x" + o.commitment.hex())
        store.set_opening_state(o.epoch, [o.license], "committed")


def test_on_chain_a_copied_reveal_leaves_the_nodes_batch_whole_and_a_lazy_settler_cannot_hide_misses(chain, tmp_path):
    net = chain
    b, a = sorted(net.operators, key=lambda op: min(op.licenses))
    t = net.targets[0]
    rng = random.Random(18)

    async def scenario():
        async with node_of(net, b, tmp_path) as parts:
            c = parts.c
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            e0 = net.next_epoch()
            net.goto(e0, 1)
            await D.heartbeat(c, net, net.licenses)
            # B's node holds its openings (target t only); B commits the node's own tree. A commits all of its
            # licenses' openings on t, and will not reveal the last one: a miss.
            mine = [D.opening(rng, e0, lic, {t: P.OK}) for lic in b.licenses]
            store_openings(parts.store, mine)
            await ensure_layout(parts.store, c["OperatorRegistry"], e0)  # what the node's commit does first
            root = epoch_tree(parts.store, e0).root
            await protocol.transact("commit", e0, root, signer=b.signer)
            theirs = {lic: D.opening(rng, e0, lic, {t: P.OK}) for lic in a.licenses}
            await D.commit(c, net, e0, theirs)
            lazy_miss = max(a.licenses)

            net.goto(e0 + 1, 1)
            # The attacker copies one of B's openings (as a pending revealMany would show it) and reveals it first.
            copied = mine[3]
            tree = epoch_tree(parts.store, e0)
            await protocol.transact("reveal", e0, copied.license, copied.target_ids, copied.verdicts, copied.roots,
                                    copied.salt, tree.proof(copied.license), signer=net.deployer)
            await R.RevealService(parts).reveal(e0, await parts.rpc.block_number())
            assert {o["state"] for o in parts.store.openings(e0)} == {"revealed"}
            assert parts.metrics.missed_reveals._value.get() == 0
            await protocol.transact("revealMany", e0,
                                    [theirs[lic].struct() for lic in a.licenses if lic != lazy_miss], signer=a.signer)
            assert (await protocol.call("tally", e0, t))[3] == 15  # B's 8 licenses once each, A's 7

            # After the window the lazy operator settles first.
            net.goto(e0 + 1, D.REVEAL_BLOCKS)
            await protocol.transact("settle", e0, t, signer=a.signer)
            key = keccak(abi_encode(["uint256", "uint256", "uint256"], [e0, lazy_miss, t]))
            assert await protocol.call("missReported", key) is False
            service = S.SettlementService(parts, Duties(parts))
            await service.settle_and_report(await parts.rpc.block_number(), e0 + 1)
            assert await protocol.call("missReported", key) is True
            reports = await protocol.events("MissReported", net.manifest["deployBlock"])
            assert [(ev["license"], ev["targetId"], ev["reporter"].lower()) for ev in reports] == [
                (lazy_miss, t, b.signer.address.lower())]
            assert await vault.call("bountyOf", b.signer.address) > 0
            assert parts.store.get(f"settled.{e0}") is True

    asyncio.run(scenario())
