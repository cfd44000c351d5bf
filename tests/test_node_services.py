"""The node's chain duties without a chain: presence, the commitment root and its reveals, resuming parked
licenses, settlement choice, miss reports and the tick's order of services.

The contracts are the real ABIs (calldata is encoded and decoded exactly as on chain); only their view calls
are answered from a table, and the transaction sender records what it is asked to send (or reverts with a
named error, as a contract would). Every test asserts on the transactions the service decides to send.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from eth_abi import decode as abi_decode

from alignment_node import protocol as P
from alignment_node.chain.abi import DecodedError, canonical_type
from alignment_node.chain.contracts import Contract, ContractRevert
from alignment_node.config import Config
from alignment_node.node import heartbeat as H
from alignment_node.node import resume as RS
from alignment_node.node import reveal as R
from alignment_node.node import settlement as S
from alignment_node.node import verdicts as V
from alignment_node.node.commitments import (TreeLayout, commit_tree, ensure_layout, epoch_tree, layout_of,
                                             record_attempt, record_layout, tree_for_root)
from alignment_node.node.duties import Duties
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.parts import Snapshot, TickView
from alignment_node.node.store import Store

PROTOCOL_ADDR = "0x" + "11" * 20
VAULT_ADDR = "0x" + "22" * 20
OPERATOR = "0x" + "33" * 20
REGISTRY_ADDR = "0x" + "44" * 20


class FakeContract(Contract):
    """A contract of the real ABI whose view calls are answered by ``answers[fn](*args)``."""

    def __init__(self, name: str, address: str, answers: dict):
        art = Contract.from_artifact(None, name, address)
        super().__init__(None, address, art.abi, name)
        self.answers = answers
        self.calls: list[tuple] = []

    async def call(self, fn, *args, **_kw):
        self.calls.append((fn, *args))
        answer = self.answers[fn]
        return answer(*args) if callable(answer) else answer


def decode_call(contract: Contract, data: bytes) -> tuple[str, tuple]:
    for f in contract.abi.raw:
        if f.get("type") != "function":
            continue
        fn = contract.abi.function(f["name"], len(f.get("inputs", ())))
        if bytes(data[:4]) == fn.selector:
            return fn.name, tuple(abi_decode([canonical_type(i) for i in f["inputs"]], bytes(data[4:])))
    raise AssertionError(f"calldata of no function: {data[:4].hex()}")


class FakeSender:
    """Records (purpose, function, args, epoch); ``revert[purpose]`` = an error name to revert with, or a
    function of the decoded args returning one (None: the transaction goes through)."""

    def __init__(self, *contracts: Contract):
        self.contracts = {c.address: c for c in contracts}
        self.sent: list[tuple] = []
        self.revert: dict = {}
        self.recovered = 0

    async def send(self, purpose, to, data, *, epoch=None, meta=None, gas=None, expected_errors=(), gas_extra=0,
                   urgent=True):
        contract = self.contracts[to]
        fn, args = decode_call(contract, data)
        rule = self.revert.get(purpose)
        name = rule(args) if callable(rule) else rule
        if name:
            raise ContractRevert(f"{contract.name}.{fn}", DecodedError(name, f"{name}()", (), b""), b"")
        self.sent.append((purpose, fn, args, epoch))
        return {"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x1", "status": "0x1"}

    async def recover(self):
        self.recovered += 1
        return []


class FakeRpc:
    def __init__(self, logs: list[dict]):
        self.logs = logs
        self.ranges: list[tuple] = []
        self.head = 0

    async def block_number(self):
        return self.head

    async def get_logs(self, address, topics, lo, hi):
        self.ranges.append((lo, hi))
        want = [t if t is None or isinstance(t, str) else "0x" + bytes(t).hex() for t in topics]
        return [entry for entry in self.logs if lo <= int(entry["blockNumber"], 16) <= hi
                and all(t is None or t == entry["topics"][i] for i, t in enumerate(want))]


@pytest.fixture
def world(tmp_path):
    answers: dict = {}
    protocol = FakeContract("AuditProtocol", PROTOCOL_ADDR, answers)
    vault = FakeContract("RewardVault", VAULT_ADDR, {})
    registry = FakeContract("OperatorRegistry", REGISTRY_ADDR, {})
    store = Store(tmp_path / "node.sqlite")
    rpc = FakeRpc([])
    sender = FakeSender(protocol, registry)
    node = SimpleNamespace(cfg=Config(), store=store, c={"AuditProtocol": protocol, "RewardVault": vault,
                                                         "OperatorRegistry": registry},
                           sender=sender, metrics=NodeMetrics(), rpc=rpc, data_dir=tmp_path,
                           manifest={"chainId": 31337, "deployBlock": 0}, signer=SimpleNamespace(address=OPERATOR),
                           snapshot=Snapshot(operator=OPERATOR))
    yield SimpleNamespace(reveal=R.RevealService(node), settle=S.SettlementService(node, Duties(node)),
                          heartbeat=H.HeartbeatService(node), resume=RS.ResumeService(node), node=node,
                          answers=answers, protocol=protocol, vault=vault, registry=registry, store=store, rpc=rpc,
                          sender=sender)
    store.close()


LISTED = 40  # the committee list's length in these tests: trees of depth 6


def list_position(lic: int) -> int:
    """License ``lic``'s (0-based) list position in these tests: not its order among the operator's licenses."""
    return (7 * lic) % LISTED


def open_commitments(store: Store, epoch: int, spec: dict[int, int], state: str = "committed") -> None:
    """Store openings (license -> number of verdicts) with their real opening hashes, in ``state``, and their
    licenses' list positions (as the commit records them)."""
    record_layout(store, epoch, LISTED, {lic: list_position(lic) for lic in spec})
    for lic, n in spec.items():
        targets, verdicts, roots = list(range(1, n + 1)), [P.OK] * n, [bytes([0xCD]) * 32] * n
        salt = lic.to_bytes(32, "big")
        commitment = P.commitment(epoch, lic, targets, verdicts, roots, salt)
        store.put_opening(epoch, lic, "0x" + salt.hex(), targets, verdicts, ["0x" + r.hex() for r in roots],
                          "0x" + commitment.hex())
        if state != "prepared":
            store.set_opening_state(epoch, [lic], state)


def states(store: Store, epoch: int) -> dict[int, tuple]:
    return {o["license"]: (o["state"], o.get("reason")) for o in store.openings(epoch)}


def assert_proven(epoch: int, root: bytes, reveal: tuple) -> None:
    """The reveal's proof takes its own opening, at its license's list position, to ``root``, as
    AuditProtocol._reveal checks it."""
    lic, targets, verdicts, roots, salt, proof = reveal
    leaf = P.opening_leaf(P.commitment(epoch, lic, list(targets), list(verdicts), list(roots), salt))
    assert P.merkle_verify(list(proof), root, leaf, list_position(lic), P.tree_depth(LISTED)), \
        f"license {lic}'s proof does not reach the root"


# ---------------------------------------------------------------------------------------- commitments


def test_the_commitment_tree_puts_each_opening_at_its_list_position_and_every_proof_verifies(world):
    open_commitments(world.store, 4, {9: 1, 2: 1, 5: 2, 7: 1, 3: 1})
    openings = world.store.openings(4)
    layout = layout_of(world.store, 4)
    assert layout == TreeLayout(LISTED, {lic: list_position(lic) for lic in (9, 2, 5, 7, 3)})
    assert layout.depth == 6
    tree = commit_tree(list(reversed(openings)), layout)  # the order given does not matter
    assert tree.licenses == (2, 3, 5, 7, 9) and epoch_tree(world.store, 4).root == tree.root
    leaves = {list_position(o["license"]): P.opening_leaf(bytes.fromhex(o["commitment"][2:])) for o in openings}
    assert tree.root == P.merkle_root(leaves, 6)
    for o in openings:
        leaf = P.opening_leaf(bytes.fromhex(o["commitment"][2:]))
        q = list_position(o["license"])
        assert len(tree.proof(o["license"])) == 6
        assert P.merkle_verify(tree.proof(o["license"]), tree.root, leaf, q, 6)
        assert not P.merkle_verify(tree.proof(o["license"]), tree.root, P.opening_leaf(b"\x01" * 32), q, 6)
        assert not P.merkle_verify(tree.proof(o["license"]), tree.root, leaf, q ^ 1, 6)  # N1: not elsewhere
    # one leaf: folded with zero siblings in its position's order
    solo = commit_tree(openings[:1], layout)
    leaf = P.opening_leaf(bytes.fromhex(openings[0]["commitment"][2:]))
    node, q = leaf, list_position(openings[0]["license"])
    for level in range(6):
        node = P.keccak(bytes(32) + node) if (q >> level) & 1 else P.keccak(node + bytes(32))
    assert solo.root == node and solo.proof(openings[0]["license"]) == [bytes(32)] * 6
    # a license that is not listed gets no leaf
    assert commit_tree(openings, TreeLayout(LISTED, {2: 14})).licenses == (2,)
    with pytest.raises(ValueError, match="at least one"):
        commit_tree([], layout)
    with pytest.raises(ValueError, match="twice"):
        commit_tree(openings + openings[:1], layout)
    with pytest.raises(ValueError, match="changed"):
        record_layout(world.store, 4, LISTED + 1, {})


def test_the_layout_of_licenses_not_recorded_is_read_from_the_chain_once(world):
    open_commitments(world.store, 6, {3: 1})
    world.store.put_opening(6, 8, "0x" + "11" * 32, [1], [P.OK], ["0x" + "cd" * 32], "0x" + "22" * 32)
    world.registry.answers["positionsAt"] = lambda lics, e: (LISTED, [list_position(lic) + 1 for lic in lics])
    layout = asyncio.run(ensure_layout(world.store, world.registry, 6))
    assert layout.positions == {3: list_position(3), 8: list_position(8)}
    assert world.registry.calls == [("positionsAt", [8], 6)]
    asyncio.run(ensure_layout(world.store, world.registry, 6))
    assert len(world.registry.calls) == 1  # all recorded: no call
    assert epoch_tree(world.store, 6).licenses == (3, 8)


def test_the_tree_for_an_onchain_root_is_a_recorded_attempt_or_all_openings(world):
    open_commitments(world.store, 4, {1: 1, 2: 1})
    first = epoch_tree(world.store, 4)
    record_attempt(world.store, 4, first)
    record_attempt(world.store, 4, first)  # recorded once
    open_commitments(world.store, 4, {3: 1}, state="prepared")  # a later opening whose commit never got mined
    everything = epoch_tree(world.store, 4)
    assert world.store.get("commit.4") == [{"root": "0x" + first.root.hex(), "licenses": [1, 2]}]
    assert tree_for_root(world.store, 4, first.root).licenses == (1, 2)
    assert tree_for_root(world.store, 4, everything.root).licenses == (1, 2, 3)  # no attempt: all openings
    assert tree_for_root(world.store, 4, b"\x05" * 32) is None
    assert tree_for_root(world.store, 5, first.root) is None  # no openings that epoch


def verdict_service(world):
    from alignment_node.node.verdicts import VerdictService

    return VerdictService(world.node, Duties(world.node))


def test_commit_sends_one_root_over_every_opening_of_the_epoch_and_records_it_first(world):
    roots = {7: bytes(32)}
    world.answers["rootOf"] = lambda op, e: roots[e]
    world.answers["epochStartBlock"] = lambda e: 100 * e
    world.rpc.head = 705
    service = verdict_service(world)
    open_commitments(world.store, 7, {4: 2, 2: 1}, state="prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    tree = epoch_tree(world.store, 7)
    assert [(purpose, fn, args) for purpose, fn, args, _e in world.sender.sent] == [("commit", "commit",
                                                                                     (7, tree.root))]
    assert world.store.get("commit.7") == [{"root": "0x" + tree.root.hex(), "licenses": [2, 4]}]
    assert {s for s, _r in states(world.store, 7).values()} == {"committed"}
    # A license prepared later in the epoch: the new root covers the committed openings too (it replaces them).
    open_commitments(world.store, 7, {9: 1}, state="prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    bigger = epoch_tree(world.store, 7)
    assert bigger.licenses == (2, 4, 9) and world.sender.sent[-1][2] == (7, bigger.root)
    # A restart after the commit was mined, before it was noted: the chain holds the root, nothing is sent.
    world.sender.sent.clear()
    roots[7] = bigger.root
    world.store.set_opening_state(7, [9], "prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    assert world.sender.sent == [] and states(world.store, 7)[9] == ("committed", None)
    service.stop()


def test_a_commit_in_the_epochs_last_block_is_not_sent(world):
    """It would be mined in the next epoch and revert (WrongEpoch): the openings stay prepared, no attempt is
    recorded, and the node says why."""
    world.answers["rootOf"] = lambda op, e: bytes(32)
    world.answers["epochStartBlock"] = lambda e: 100 * e
    world.rpc.head = 800 - V.LAST_COMMIT_BLOCKS
    service = verdict_service(world)
    open_commitments(world.store, 7, {4: 2}, state="prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    assert world.sender.sent == [] and world.store.get("commit.7") is None
    assert states(world.store, 7)[4][0] == "prepared"
    assert world.node.metrics.tx_failed.labels("commit", "too-late")._value.get() == 1
    world.rpc.head = 799 - V.LAST_COMMIT_BLOCKS
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    assert [fn for _p, fn, _a, _e in world.sender.sent] == ["commit"]
    service.stop()


# ----------------------------------------------------------------------------------------------- reveal


def test_reveal_batches_never_split_a_license_and_respect_the_verdict_cap():
    openings = [{"license": i, "targets": list(range(n))} for i, n in enumerate([100, 100, 60, 1, 249, 250, 3])]
    batches = R.reveal_batches(openings)
    assert [[o["license"] for o in b] for b in batches] == [[0, 1], [2, 3], [4], [5], [6]]
    assert all(sum(len(o["targets"]) for o in b) <= R.REVEAL_MAX_VERDICTS for b in batches)
    # one license above the cap still gets its own batch rather than none
    assert R.reveal_batches([{"license": 9, "targets": list(range(400))}]) == [[{"license": 9,
                                                                                  "targets": list(range(400))}]]
    assert R.reveal_batches([]) == []


def test_reveal_waits_for_the_window_then_reveals_every_committed_license_in_batches_with_proofs(world):
    open_commitments(world.store, 4, {1: 200, 2: 100, 3: 10})
    root = epoch_tree(world.store, 4).root
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: root if (op, e) == (OPERATOR, 4) else bytes(32)
    world.answers["isRevealed"] = False
    asyncio.run(world.reveal.reveal(4, 98))  # head + 1 < start: not yet
    assert world.sender.sent == [] and {s for s, _ in states(world.store, 4).values()} == {"committed"}
    asyncio.run(world.reveal.reveal(4, 99))
    sent = [(purpose, fn, [r[0] for r in args[1]]) for purpose, fn, args, _e in world.sender.sent]
    assert sent == [("reveal", "revealMany", [1]), ("reveal", "revealMany", [2, 3])]
    # the reveal carries the stored opening exactly, and a proof the contract accepts
    _p, _f, (epoch, reveals), _e = world.sender.sent[1]
    assert epoch == 4 and list(reveals[1][1]) == list(range(1, 11)) and list(reveals[1][2]) == [P.OK] * 10
    for _p, _f, (epoch, reveals), _e in world.sender.sent:
        for r in reveals:
            assert_proven(4, root, r)
    assert {lic: s for lic, (s, _r) in states(world.store, 4).items()} == {1: "revealed", 2: "revealed",
                                                                          3: "revealed"}


def test_reveal_rebuilds_the_tree_after_a_restart_from_the_stored_openings(world):
    """No attempt recorded (a store of an older version, or a crash between the two writes): the tree over every
    opening of the epoch is the one the commit sent."""
    open_commitments(world.store, 4, {6: 1, 2: 3, 11: 2})
    root = epoch_tree(world.store, 4).root
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: root
    world.answers["isRevealed"] = False
    asyncio.run(world.reveal.reveal(4, 100))
    [(_p, _f, (_e, reveals), _)] = world.sender.sent
    assert [r[0] for r in reveals] == [2, 6, 11]
    for r in reveals:
        assert_proven(4, root, r)


def test_reveal_marks_misses_with_their_reason(world):
    open_commitments(world.store, 5, {1: 2, 2: 2, 4: 2})
    root = epoch_tree(world.store, 5).root
    record_attempt(world.store, 5, epoch_tree(world.store, 5))
    open_commitments(world.store, 5, {3: 2}, state="prepared")  # its commit (a bigger root) never got mined
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: root
    world.answers["isRevealed"] = lambda lic, e: lic == 2
    world.sender.revert["reveal"] = lambda args: "AlreadyRevealed" if 4 in [r[0] for r in args[1]] else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "REVEAL_MAX_VERDICTS", 2)  # one license per batch
        asyncio.run(world.reveal.reveal(5, 105))
    got = states(world.store, 5)
    assert got[1] == ("revealed", None)
    assert got[2][0] == "revealed"  # already revealed on chain (a crash after sending)
    assert got[3][0] == "missed" and "not under the committed root" in got[3][1] and root.hex() in got[3][1]
    assert got[4][0] == "missed" and "AlreadyRevealed" in got[4][1]
    assert [[r[0] for r in args[1]] for _p, _f, args, _e in world.sender.sent] == [[1]]
    assert world.node.metrics.missed_reveals._value.get() == 2


@pytest.mark.parametrize("onchain, why", [(bytes(32), "no root of this operator"),
                                          (b"\x0e" * 32, "0x" + "0e" * 32)])
def test_a_root_on_chain_that_is_not_ours_misses_every_reveal(world, onchain, why):
    open_commitments(world.store, 5, {1: 2, 2: 2})
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: onchain
    world.answers["isRevealed"] = False
    asyncio.run(world.reveal.reveal(5, 105))
    assert world.sender.sent == []
    for state, reason in states(world.store, 5).values():
        assert state == "missed" and "commitment never reached the chain" in reason and why in reason


def test_a_reveal_after_the_window_is_a_miss_and_nothing_is_sent(world):
    open_commitments(world.store, 6, {7: 3})
    world.answers["revealWindow"] = (100, 110)
    world.answers["isRevealed"] = False
    asyncio.run(world.reveal.reveal(6, 109))  # head + 1 >= end
    assert world.sender.sent == []
    state, reason = states(world.store, 6)[7]
    assert state == "missed" and "[100, 110)" in reason and "109" in reason


def test_a_reveal_mined_before_a_crash_is_not_called_missed_once_the_window_has_closed(world):
    """The chaos scenario (seed 8): the node was killed after its reveal was mined but before it read the receipt,
    and restarted after the window closed. Those licenses are revealed on chain: they used to be recorded missed
    (a missed-reveal count and alert for a reveal that landed)."""
    open_commitments(world.store, 6, {7: 3, 8: 2})
    world.answers["revealWindow"] = (100, 110)
    world.answers["isRevealed"] = lambda lic, e: lic == 7
    asyncio.run(world.reveal.reveal(6, 115))
    assert world.sender.sent == []
    got = states(world.store, 6)
    assert got[7] == ("revealed", None)
    assert got[8][0] == "missed" and "[100, 110)" in got[8][1]
    assert world.node.metrics.missed_reveals._value.get() == 1


# ------------------------------------------------------------------------------------------ settlement


def settle_world(world, epoch: int, mine: dict[int, list[int]], revealers: dict[int, list[int]],
                 settled: set[int] = frozenset(), opens_later: dict[int, int] | None = None):
    """Our revealed openings (license -> targets) and every target's revealers on chain."""
    for lic, targets in mine.items():
        world.store.put_opening(epoch, lic, "0x" + "00" * 32, targets, [P.OK] * len(targets),
                                ["0x" + "cd" * 32] * len(targets), "0x" + "ee" * 32)
        world.store.set_opening_state(epoch, [lic], "revealed")
    world.answers["revealWindow"] = (100, 110)
    world.answers["settleOpensAt"] = lambda e, t: 110 + (opens_later or {}).get(t, 0)
    world.answers["tally"] = lambda e, t: (0, 0, 0, 2 if t in settled else 0)
    world.answers["revealers"] = lambda e, t: (revealers[t], [P.OK] * len(revealers[t]))
    world.answers["epochStartBlock"] = lambda e: 100 * e
    world.answers["seed"] = b"\x07" * 32
    world.answers["committee"] = lambda e, t: list(range(1, 20)) + list(range(100, 116))  # everyone is seated
    world.answers["params"] = (10, 5, 3, 16)


def settles(world) -> list[tuple]:
    return [args for purpose, _fn, args, _e in world.sender.sent if purpose == "settle"]


def test_the_lowest_revealer_settles_and_the_others_wait_for_the_grace_period(world):
    # targets 1 and 2: our license 3 is the lowest revealer; target 4: license 1 (another node's) is lower
    settle_world(world, 2, {3: [1, 2, 4], 8: [4]}, {1: [3, 9], 2: [5, 3], 4: [1, 3, 8]}, settled={2})
    world.settle.report_misses = _no_misses
    asyncio.run(world.settle.settle_and_report(110, 3))  # just after the window: not late
    assert settles(world) == [(2, 1)]  # target 2 is settled already; target 4 is not ours to settle yet
    assert not world.store.get("settled.2")  # target 4 is still pending
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(110 + S.SETTLE_GRACE_BLOCKS, 3))
    assert sorted(settles(world)) == [(2, 1), (2, 4)]  # license 1 stayed silent: we (second in line) settle
    assert world.store.get("settled.2") is True
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(200, 3))
    assert world.sender.sent == []  # the epoch is done


def test_settlers_wait_in_turn_by_their_lowest_revealing_license(world):
    # target 5's revealers 1, 2, 6, 9: our lowest revealer (6) is third in line, two grace periods after the window
    settle_world(world, 2, {6: [5], 9: [5]}, {5: [9, 1, 6, 2]})
    world.settle.report_misses = _no_misses
    for head in (110, 110 + S.SETTLE_GRACE_BLOCKS, 110 + 2 * S.SETTLE_GRACE_BLOCKS - 1):
        asyncio.run(world.settle.settle_and_report(head, 3))
        assert settles(world) == [], head
    asyncio.run(world.settle.settle_and_report(110 + 2 * S.SETTLE_GRACE_BLOCKS, 3))
    assert settles(world) == [(2, 5)]
    assert world.store.get("settled.2") is True
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(200, 3))
    assert world.sender.sent == []  # the epoch is done


def test_settling_before_the_window_closes_sends_nothing(world):
    settle_world(world, 2, {3: [1]}, {1: [3]})
    asyncio.run(world.settle.settle_and_report(109, 3))
    assert world.sender.sent == [] and not world.store.get("settled.2")


def test_a_refereed_target_settles_after_the_referees_window(world):
    # target 5 is a MODEL target whose baseline has referees: settleable 15 blocks after the reveal window
    settled: set[int] = set()
    settle_world(world, 2, {3: [1, 5]}, {1: [3], 5: [3]}, settled=settled, opens_later={5: 15})
    world.settle.report_misses = _no_misses
    asyncio.run(world.settle.settle_and_report(110 + S.SETTLE_GRACE_BLOCKS, 3))
    assert settles(world) == [(2, 1)] and not world.store.get("settled.2")
    settled.add(1)
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(125, 3))
    assert settles(world) == [(2, 5)] and world.store.get("settled.2") is True


def test_a_lost_settle_race_is_quiet_and_still_reports_the_misses(world):
    settle_world(world, 2, {3: [1]}, {1: [3]})
    world.sender.revert["settle"] = "AlreadySettled"
    reported: list = []

    async def record(epoch, targets, mine):
        reported.append((epoch, targets, mine))

    world.settle.report_misses = record
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert settles(world) == [] and reported == [(2, [1], {3})]  # settled by another node (H4, docs/security.md)
    assert world.store.get("settled.2") is True


async def _no_misses(*_a):
    return None


# -------------------------------------------------------------------------------------------- misses


def test_misses_are_reported_for_seated_active_licenses_that_did_not_reveal(world):
    epoch = 3
    settle_world(world, epoch, {}, {1: [2, 5], 2: [2]})
    # active in epoch 3 (listed under a present operator): 2, 5, 6, 7; 9 and 11 are seated but were not
    active = {2, 5, 6, 7}
    world.vault.answers["isActive"] = lambda lic, e: e == 3 and lic in active
    committees = {1: [2, 5, 7, 9, 11], 2: [2, 6, 7, 9, 3]}
    world.answers["committee"] = lambda e, t: committees[t]
    asyncio.run(world.settle.report_misses(epoch, [1, 2], mine={6}))
    reported = [args for purpose, fn, args, _e in world.sender.sent if fn == "reportMiss"]
    assert reported == [(epoch, 7, 1), (epoch, 7, 2)]
    # each license's activity read once, and never for a revealer or one of ours
    asked = [args for fn, *args in world.vault.calls if fn == "isActive"]
    assert sorted(asked) == [[3, 3], [7, 3], [9, 3], [11, 3]]


def test_everyone_seated_everyone_missing_is_reported_except_ours(world):
    settle_world(world, 3, {}, {1: [2], 2: list(range(100, 116))})
    world.vault.answers["isActive"] = lambda lic, e: lic in {2, 4, 5, 6}
    world.answers["committee"] = lambda e, t: list(range(1, 20)) if t == 1 else list(range(100, 116))
    world.sender.revert["report_miss"] = lambda args: "MissAlreadyReported" if args[1] == 5 else None
    asyncio.run(world.settle.report_misses(3, [1, 2], mine={6}))
    reported = [(args[1], args[2]) for _p, fn, args, _e in world.sender.sent if fn == "reportMiss"]
    # target 2's committee all revealed: nothing to report; license 5's report was a lost race
    assert reported == [(4, 1)]


def history_lost(what: str):
    def gone(*args):
        raise ContractRevert(what, DecodedError("HistoryLost", "HistoryLost(uint256)",
                                                (("epoch", "uint256", args[-1]),), b""), b"")
    return gone


def test_an_epoch_whose_committees_are_gone_reports_nothing_and_settling_goes_on(world):
    """The registry keeps each epoch's committee list for two epochs after it: a node that comes back later settles
    its old epochs and skips their misses (HistoryLost) instead of failing every pass."""
    settle_world(world, 3, {1: [2]}, {1: [2]})
    world.vault.answers["isActive"] = lambda lic, e: True
    world.answers["committee"] = history_lost("AuditProtocol.committee")
    asyncio.run(world.settle.report_misses(3, [1], mine={2}))
    assert [fn for _p, fn, _a, _e in world.sender.sent if fn == "reportMiss"] == []
    # the vault's activity view of such an epoch is gone as well
    world.answers["committee"] = lambda e, t: [1, 2, 4]
    world.vault.answers["isActive"] = history_lost("RewardVault.isActive")
    asyncio.run(world.settle.report_misses(3, [1], mine={2}))
    assert [fn for _p, fn, _a, _e in world.sender.sent if fn == "reportMiss"] == []
    # any other revert of the committee view is an error
    world.answers["committee"] = lambda e, t: (_ for _ in ()).throw(
        ContractRevert("AuditProtocol.committee", DecodedError("Other", "Other()", (), b""), b""))
    with pytest.raises(ContractRevert):
        asyncio.run(world.settle.report_misses(3, [1], mine={2}))


def test_no_presence_no_reports(world):
    settle_world(world, 3, {}, {1: []})
    world.vault.answers["isActive"] = lambda lic, e: False
    asyncio.run(world.settle.report_misses(3, [1], mine=set()))
    assert world.sender.sent == []


# -------------------------------------------------------------------------------------------- presence


def presence_world(world, epoch: int, *, index: int = 3, present: bool = False, listed: int = 3,
                   licenses: dict | None = None) -> TickView:
    world.registry.answers.update(operatorIndexOf=lambda who: (index if who == OPERATOR else 0, 1000),
                                  listedCountAt=lambda i, e: listed if (i, e) == (index, epoch) else 0)
    world.vault.answers["isPresent"] = lambda i, e: present and (i, e) == (index, epoch)
    world.node.snapshot.licenses = licenses if licenses is not None else {
        1: {"state": "delegated", "listed": True, "active_now": False, "active_epoch": None},
        2: {"state": "delegated", "listed": True, "active_now": False, "active_epoch": epoch - 2},
        3: {"state": "delegated", "listed": False, "active_now": False, "active_epoch": None},  # delegated now
    }
    return TickView(500, epoch, world.node.snapshot)


def test_one_heartbeat_per_epoch_makes_the_listed_licenses_active(world):
    view = presence_world(world, 6, listed=2)
    asyncio.run(world.heartbeat.tick(view))
    assert [(purpose, fn, args, e) for purpose, fn, args, e in world.sender.sent] == [("heartbeat", "heartbeat",
                                                                                       (), 6)]
    assert world.node.snapshot.last_heartbeat["epoch"] == 6 and world.node.snapshot.last_heartbeat["licenses"] == 2
    assert view.active_licenses() == [1, 2] and not view.licenses[3]["active_now"]
    metrics = world.node.metrics
    assert metrics.heartbeat_txs._value.get() == 1 and metrics.heartbeats._value.get() == 2
    asyncio.run(world.heartbeat.tick(view))  # the same epoch again: nothing
    assert len(world.sender.sent) == 1
    # the next epoch: one more
    asyncio.run(world.heartbeat.tick(presence_world(world, 7, listed=2)))
    assert [e for *_x, e in world.sender.sent] == [6, 7] and metrics.heartbeats._value.get() == 4


def test_no_heartbeat_when_present_already_or_nothing_is_listed_or_not_an_operator(world):
    view = presence_world(world, 6, present=True)  # a previous run's heartbeat was mined
    asyncio.run(world.heartbeat.tick(view))
    assert world.sender.sent == [] and view.active_licenses() == [1, 2]
    assert world.node.snapshot.last_heartbeat is None
    asyncio.run(world.heartbeat.tick(presence_world(world, 7, listed=0)))  # delegated this epoch: listed next
    asyncio.run(world.heartbeat.tick(presence_world(world, 8, index=0)))  # not registered
    assert world.sender.sent == []
    # listed again: it is sent (the epochs above were not marked done)
    asyncio.run(world.heartbeat.tick(presence_world(world, 7, listed=1)))
    assert [e for *_x, e in world.sender.sent] == [7]


def test_a_heartbeat_that_reverts_already_present_is_done_and_others_are_raised(world):
    view = presence_world(world, 6)
    world.sender.revert["heartbeat"] = "AlreadyPresent"
    asyncio.run(world.heartbeat.tick(view))
    assert world.sender.sent == [] and view.active_licenses() == [1, 2]
    world.sender.revert["heartbeat"] = None
    asyncio.run(world.heartbeat.tick(view))
    assert world.sender.sent == []  # done for epoch 6
    world.sender.revert["heartbeat"] = "NotOperator"
    with pytest.raises(ContractRevert):
        asyncio.run(world.heartbeat.tick(presence_world(world, 7)))


def test_a_heartbeat_left_in_the_journal_is_recovered_before_presence_is_read(world):
    world.store.record_signed(0, "heartbeat", 6, "0x" + "01" * 32, b"raw")
    world.store.mark("0x" + "01" * 32, "sent")
    asyncio.run(world.heartbeat.tick(presence_world(world, 6, present=True)))
    assert world.sender.recovered == 1 and world.sender.sent == []


def test_heartbeats_can_be_switched_off(world):
    world.node.cfg.heartbeat.enabled = False
    asyncio.run(world.heartbeat.tick(presence_world(world, 6)))
    assert world.sender.sent == []


# ---------------------------------------------------------------------------------------------- resume


def parked(until: int | None, *, is_parked: bool = True, state: str = "delegated") -> dict:
    return {"state": state, "listed": False, "parked": is_parked, "active_now": False, "active_epoch": None,
            "suspended_until": until}


def test_parked_licenses_are_resumed_in_the_epoch_before_their_suspension_ends(world):
    epoch = 10
    licenses = {1: parked(None), 2: parked(epoch + 1), 3: parked(epoch + 2), 4: parked(None, is_parked=False),
                5: parked(None), 6: parked(None, state="pending")}
    chain_parked = {1, 2, 3, 5}
    chain_parked.discard(5)  # someone else resumed 5 since the last refresh (resume is open to anyone)
    world.registry.answers["isParked"] = lambda i: i in chain_parked
    world.vault.answers["isSuspended"] = lambda i, e: licenses[i]["suspended_until"] is not None and \
        licenses[i]["suspended_until"] > e
    view = TickView(500, epoch, Snapshot(operator=OPERATOR, licenses=licenses))
    asyncio.run(world.resume.tick(view))
    assert [(purpose, fn, args, e) for purpose, fn, args, e in world.sender.sent] == [("resume", "resume", ((1, 2),),
                                                                                       epoch)]
    assert not licenses[1]["parked"] and not licenses[2]["parked"] and licenses[3]["parked"]
    asyncio.run(world.resume.tick(view))  # once per epoch
    assert len(world.sender.sent) == 1
    # the next epoch, license 3's suspension ends by the one after: its turn
    chain_parked -= {1, 2}
    asyncio.run(world.resume.tick(TickView(600, epoch + 1, view.snapshot)))
    assert world.sender.sent[-1][2] == ((3,),)


def test_a_resume_that_reverts_still_suspended_is_retried_and_other_errors_raise(world):
    licenses = {1: parked(None)}
    world.registry.answers["isParked"] = True
    world.vault.answers["isSuspended"] = False
    view = TickView(500, 10, Snapshot(operator=OPERATOR, licenses=licenses))
    world.sender.revert["resume"] = "StillSuspended"
    asyncio.run(world.resume.tick(view))
    assert world.sender.sent == [] and licenses[1]["parked"]
    world.sender.revert["resume"] = None
    asyncio.run(world.resume.tick(view))  # the same epoch: tried again
    assert world.sender.sent[-1][2] == ((1,),)
    licenses[1]["parked"] = True
    world.sender.revert["resume"] = "NotVault"
    with pytest.raises(ContractRevert):
        asyncio.run(world.resume.tick(TickView(600, 11, view.snapshot)))


def test_nothing_parked_nothing_sent(world):
    view = TickView(500, 10, Snapshot(operator=OPERATOR, licenses={1: parked(None, is_parked=False)}))
    asyncio.run(world.resume.tick(view))
    assert world.sender.sent == [] and world.registry.calls == []


# ------------------------------------------------------------------------------------------ the tick


class RecordingService:
    def __init__(self, name: str, log: list, fail: Exception | None = None):
        self.name, self.log, self.fail = name, log, fail

    async def tick(self, view=None):
        self.log.append((self.name, None if view is None else (view.head, view.epoch, view.active_licenses())))
        if self.fail is not None:
            raise self.fail


def tick_node(tmp_path, services: list, head: int = 50, epoch: int = 4):
    from alignment_node.node.node import Node
    from alignment_node.node.parts import Snapshot, TickView

    store = Store(tmp_path / "node.sqlite")
    snapshot = Snapshot(operator=OPERATOR)
    order: list = []

    class Licenses:
        async def tick(self, h, e):
            order.append(("licenses", (h, e)))
            snapshot.licenses = {7: {"active_epoch": e}, 3: {"active_epoch": e - 1}, 1: {"active_epoch": e}}
            return TickView(h, e, snapshot)

    class Rpc:
        async def block_number(self):
            return head

    from alignment_node.node.disk import DiskService

    node = Node.__new__(Node)
    node.parts = SimpleNamespace(rpc=Rpc(), snapshot=snapshot, metrics=NodeMetrics(), store=store, cfg=Config(),
                                 data_dir=tmp_path,
                                 c={"AuditProtocol": FakeContract("AuditProtocol", PROTOCOL_ADDR,
                                                                  {"currentEpoch": epoch})})
    node.licenses, node.health, node.services = Licenses(), RecordingService("health", order), services
    node.disk = DiskService(node.parts)
    return node, order, store


def test_the_tick_runs_every_service_in_order_with_the_licenses_view(tmp_path):
    names = ["heartbeat", "reveal", "verdicts", "resume", "settlement", "rewards", "health", "alerts"]
    node, order, store = tick_node(tmp_path, [])
    node.services = [RecordingService(n, order) for n in names]
    asyncio.run(node.tick())
    assert order == [("licenses", (50, 4))] + [(n, (50, 4, [1, 7])) for n in names]
    assert node.parts.snapshot.last_tick is not None and node.parts.snapshot.head_block == 50
    order.clear()
    asyncio.run(node.tick())  # the same head again: only the endpoints are probed
    assert order == [("health", None)]
    store.close()


def test_a_failed_transaction_in_one_service_does_not_stop_the_others_and_the_first_is_raised(tmp_path):
    from alignment_node.chain.contracts import TransactionFailed
    from alignment_node.node.txsender import OutOfGasMoney

    node, order, store = tick_node(tmp_path, [])
    first, second = TransactionFailed("heartbeat dropped"), OutOfGasMoney("no gas money")
    node.services = [RecordingService("heartbeat", order, first), RecordingService("reveal", order),
                     RecordingService("verdicts", order, second), RecordingService("rewards", order)]
    with pytest.raises(TransactionFailed) as err:
        asyncio.run(node.tick())
    assert err.value is first
    assert [n for n, _ in order] == ["licenses", "heartbeat", "reveal", "verdicts", "rewards"]
    assert node.parts.snapshot.last_tick is not None  # the tick was booked before the failure was raised
    store.close()


def test_a_bug_in_a_service_is_not_swallowed_by_the_tick(tmp_path):
    node, order, store = tick_node(tmp_path, [])
    node.services = [RecordingService("reveal", order, KeyError("bug")), RecordingService("rewards", order)]
    with pytest.raises(KeyError):
        asyncio.run(node.tick())
    assert [n for n, _ in order] == ["licenses", "reveal"]
    store.close()


def test_a_real_node_orders_its_services_heartbeat_reveal_verdicts_resume_settlement_rewards_health_alerts(tmp_path):
    """Presence before anything that needs it; the previous epoch's reveal before this epoch's audits (its window
    is short); resuming parked licenses and settlement after both; reads and alerts last."""
    import secrets

    from alignment_node.chain.tx import LocalSigner
    from alignment_node.node.node import Node

    cfg = Config()
    cfg.data_dir = str(tmp_path / "data")
    names = ("AuditProtocol", "RewardVault", "RewardToken", "OperatorRegistry", "TargetRegistry")
    manifest = {"chainId": 31337, "deployBlock": 0,
                "contracts": {n: "0x" + f"{i + 1:040x}" for i, n in enumerate(names)}}
    node = Node(cfg, LocalSigner(secrets.token_bytes(32)), manifest)
    try:
        assert [type(s).__name__ for s in node.services] == [
            "HeartbeatService", "RevealService", "VerdictService", "ResumeService", "SettlementService",
            "RewardsService", "HealthService", "AlertConditions"]
        assert node.services[2] is node.verdicts and node.services[4].duties is node.verdicts.duties
    finally:
        node.store.close()
