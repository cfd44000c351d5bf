"""Security review H1 and H4 on the node's side (docs/security.md), with the fakes of test_node_services.py (the
contracts' real ABIs, view calls answered from a table, a sender that records or reverts by name).

H1: anyone may copy one license's opening out of a pending revealMany and reveal it first. A batch that reverts is
re-checked license by license: those revealed meanwhile are revealed (only this node's openings pass the proof),
the rest is sent again; only what nobody revealed is a miss.

H4: misses are reported for every target this node revealed on once it is settled, whoever settled it, in the
node's settlement turn; a report another node made first is expected and quiet.
"""

from __future__ import annotations

import asyncio

from alignment_node.node import settlement as S
from alignment_node.node.commitments import commit_tree

from test_node_services import open_commitments, settle_world, states, world  # noqa: F401  (world: a fixture)


# ------------------------------------------------------------------------------------------ H1: reveals


def frontrun_world(world, epoch: int, spec: dict[int, int], steals: list[set[int]], then: str | None = None):
    """Committed openings ``spec``; the n-th revealMany sent is preceded by the attacker revealing ``steals[n]``
    (copied from it), so it reverts AlreadyRevealed; once ``steals`` is used up, a revealMany reverts ``then``
    (None: it goes through). Returns the on-chain set of revealed licenses and the list of attempted batches."""
    open_commitments(world.store, epoch, spec)
    root = commit_tree(world.store.openings(epoch)).root
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
