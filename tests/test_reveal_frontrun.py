"""Security review H1 and H4 on the node's side (docs/security.md): with the fakes of test_node_services.py (the
contracts' real ABIs, view calls answered from a table, a sender that records or reverts by name), and once on a
real chain (anvil, the committed artifacts).

H1: anyone may copy the operator's pending reveal (its salt and votes) and send it first. Since issue 16 a reveal
opens the operator's whole commitment and a second reveal of it is a no-op, so a copy is the operator's own reveal:
the node reads ``hasRevealed`` before sending and after a revert, and counts a copied reveal as revealed; only a
reveal nobody made is a miss.

H4: misses are reported for every target this node revealed on from the end of the reveal window, in the node's
turn, whether or not (and by whom) the target was settled; a report another node made first is expected and quiet.
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
from alignment_node.node import settlement as S
from alignment_node.node.commitments import epoch_attempt
from alignment_node.node.duties import Duties
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.parts import MeteredRpcClient, NodeParts, Snapshot
from alignment_node.node.reveal import RevealService
from alignment_node.node.store import Store
from alignment_node.node.txsender import TxSender

import test_protocol_differential as D  # a sibling test module: its deployment and helpers
from test_node_services import (OPERATOR, assert_opens, open_commitments, settle_world, states,  # noqa: F401
                                world)  # world: a fixture


# ------------------------------------------------------------------------------------------ H1: reveals


def frontrun_world(world, epoch: int, *, copied_before: bool = False, copied_during: bool = False,
                   then: str | None = None) -> dict:
    """Committed openings of three licenses. The operator's reveal is copied and mined before the node looks
    (``copied_before``), or lands in the same block as the node's, which then reverts (``copied_during``, a
    stand-in for any revert after a copy), or the node's reverts ``then`` with nobody's reveal on chain."""
    open_commitments(world.store, epoch, {1: {2: P.FAULT}, 2: 2, 3: {1: P.NO_VOTE}})
    attempt = epoch_attempt(world.store, epoch, OPERATOR)
    chain = {"revealed": copied_before, "attempts": 0}
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: attempt.root
    world.answers["hasRevealed"] = lambda op, e: op == OPERATOR and e == epoch and chain["revealed"]

    def rule(args):
        chain["attempts"] += 1
        assert_opens(attempt.root, args)
        if copied_during:
            chain["revealed"] = True
            return "SomeRevert"
        if then:
            return then
        chain["revealed"] = True  # a reveal of an already revealed operator would be a no-op, not a revert
        return None

    world.sender.revert["reveal"] = rule
    return chain


def sent_reveals(world) -> list[tuple]:
    return [args for _p, fn, args, _e in world.sender.sent if fn == "reveal"]


def test_a_reveal_copied_before_the_node_looks_is_the_nodes_own_and_nothing_is_sent(world):
    chain = frontrun_world(world, 5, copied_before=True)
    asyncio.run(RevealService(world.node).reveal(5, 105))
    assert chain["attempts"] == 0 and sent_reveals(world) == []
    assert {s for s, _r in states(world.store, 5).values()} == {"revealed"}
    assert world.node.metrics.missed_reveals._value.get() == 0


def test_a_revert_after_someone_else_revealed_the_same_payload_is_no_miss(world):
    chain = frontrun_world(world, 5, copied_during=True)
    asyncio.run(RevealService(world.node).reveal(5, 105))
    assert chain["attempts"] == 1
    assert {s for s, _r in states(world.store, 5).values()} == {"revealed"}
    assert world.node.metrics.missed_reveals._value.get() == 0


def test_the_nodes_reveal_goes_through_once(world):
    chain = frontrun_world(world, 5)
    service = RevealService(world.node)
    asyncio.run(service.reveal(5, 105))
    asyncio.run(service.reveal(5, 106))
    assert chain["attempts"] == 1 and len(sent_reveals(world)) == 1
    assert {s for s, _r in states(world.store, 5).values()} == {"revealed"}


def test_a_revert_with_nobody_revealed_misses_every_license_once_with_its_reason(world):
    chain = frontrun_world(world, 5, then="RevealWindowClosed")
    asyncio.run(RevealService(world.node).reveal(5, 105))
    assert chain["attempts"] == 1  # no retry
    for state, reason in states(world.store, 5).values():
        assert state == "missed" and "RevealWindowClosed" in reason
    assert world.node.metrics.missed_reveals._value.get() == 3


# ------------------------------------------------------------------------------------------ H4: misses


def misses(world) -> list[tuple]:
    return [(args[1], args[2]) for _p, fn, args, _e in world.sender.sent if fn == "reportMiss"]


def miss_world(world, settled: set[int], revealers: dict[int, list[int]], mine: dict[int, list[int]],
               all_ok: set[int] = frozenset()):
    """Epoch 2's targets with their revealers; the committee is licenses 1..19 (all seated), active: 1..12."""
    settle_world(world, 2, mine, revealers, settled=settled, all_ok=all_ok)
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


def test_misses_of_a_target_nobody_needs_to_settle_are_reported_in_turn(world):
    # Target 1's committee revealed all OK: nobody settles it; licenses 4..12 are seated, active and silent. Our
    # lowest revealer (3) is third in line: the reports wait two grace periods after the window.
    miss_world(world, settled=set(), revealers={1: [3, 1, 2]}, mine={3: [1]}, all_ok={1})
    asyncio.run(world.settle.settle_and_report(110 + 2 * S.SETTLE_GRACE_BLOCKS - 1, 3))
    assert world.sender.sent == [] and not world.store.get("settled.2")
    asyncio.run(world.settle.settle_and_report(110 + 2 * S.SETTLE_GRACE_BLOCKS, 3))
    assert [a for p, _f, a, _e in world.sender.sent if p == "settle"] == []
    assert misses(world) == [(lic, 1) for lic in range(4, 13)]
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


def test_on_chain_a_copied_reveal_is_the_nodes_own_and_misses_need_no_settlement(chain, tmp_path):
    net = chain
    b, a = sorted(net.operators, key=lambda op: min(op.licenses))
    t, t2 = net.targets[0], net.targets[1]
    rng = random.Random(18)

    async def scenario():
        async with node_of(net, b, tmp_path) as parts:
            c = parts.c
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            e0 = net.next_epoch()
            net.goto(e0, 1)
            await D.heartbeat(c, net, net.licenses)
            # B's node holds its openings (OK on t, FAULT on t2) and commits them as the node does. A lists one
            # vote: its last license did not audit t (NO_VOTE: a miss); every other vote of A's is OK.
            open_commitments(parts.store, e0, {lic: {t: P.OK, t2: P.FAULT} for lic in b.licenses})
            attempt = epoch_attempt(parts.store, e0, b.signer.address)
            await protocol.transact("commit", e0, attempt.root, signer=b.signer)
            lazy_miss = max(a.licenses)
            theirs = await D.commit(c, net, e0, {lazy_miss: D.opening(rng, e0, lazy_miss, {t: P.NO_VOTE})}, rng)

            net.goto(e0 + 1, 1)
            # The attacker copies B's reveal (as the pending transaction would show it) and sends it first.
            await protocol.transact("reveal", e0, b.signer.address, attempt.salt, list(attempt.votes),
                                    signer=net.deployer)
            await RevealService(parts).reveal(e0, await parts.rpc.block_number())
            assert {o["state"] for o in parts.store.openings(e0)} == {"revealed"}
            assert parts.metrics.missed_reveals._value.get() == 0
            assert parts.store.for_duty("reveal", e0) == []  # nothing left to send
            await D.reveal_all(c, net, theirs)
            assert await protocol.call("tally", e0, t) == (15, 0, 0, 15, 0)  # B's 8 and A's 7 OK
            assert await protocol.call("tally", e0, t2) == (8, 8, 0, 16, 0)

            # After the window the lazy operator settles t2 first; nobody needs to settle t (all OK).
            net.goto(e0 + 1, D.REVEAL_BLOCKS)
            await protocol.transact("settle", e0, t2, signer=a.signer)
            key = keccak(abi_encode(["uint256", "uint256", "uint256"], [e0, lazy_miss, t]))
            assert await protocol.call("missReported", key) is False
            service = S.SettlementService(parts, Duties(parts))
            await service.settle_and_report(await parts.rpc.block_number(), e0 + 1)
            assert await protocol.call("missReported", key) is True
            reports = await protocol.events("MissReported", net.manifest["deployBlock"])
            assert [(ev["license"], ev["targetId"], ev["reporter"].lower()) for ev in reports] == [
                (lazy_miss, t, b.signer.address.lower())]
            assert await vault.call("bountyOf", b.signer.address) > 0
            assert (await protocol.call("tally", e0, t))[4] == 0  # t was not settled: OK by view
            assert await protocol.call("outcomeOf", e0, t) == P.OK
            assert [e.purpose for e in parts.store.for_duty("settle", e0)] == []
            assert parts.store.get(f"settled.{e0}") is True

    asyncio.run(scenario())
