"""The node's chain duties without a chain: presence, the operator's commitment and its one reveal per epoch,
resuming parked licenses, settlement choice, miss reports and the tick's order of services.

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
from alignment_node.node.commitments import Attempt, attempt_for_root, epoch_attempt, epoch_salt, record_attempt
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


def open_commitments(store: Store, epoch: int, spec: dict, state: str = "committed") -> bytes:
    """Store openings under the epoch's salt, in ``state``: license -> number of targets (1..n, all OK) or
    {target: verdict}. Returns the salt."""
    salt = epoch_salt(store, epoch)
    for lic, what in spec.items():
        votes = what if isinstance(what, dict) else {t: P.OK for t in range(1, what + 1)}
        targets = sorted(votes)
        verdicts = [votes[t] for t in targets]
        roots = ["0x" + (bytes(32) if v == P.NO_VOTE else bytes([0xC0 + v]) * 32).hex() for v in verdicts]
        store.put_opening(epoch, lic, "0x" + salt.hex(), targets, verdicts, roots, "0x" + "ee" * 32)
        if state != "prepared":
            store.set_opening_state(epoch, [lic], state)
    return salt


def states(store: Store, epoch: int) -> dict[int, tuple]:
    return {o["license"]: (o["state"], o.get("reason")) for o in store.openings(epoch)}


def assert_opens(root: bytes, args: tuple) -> None:
    """The reveal's arguments (epoch, operator, salt, votes) hash to ``root`` as AuditProtocol.commitmentOf does."""
    epoch, operator, salt, votes = args
    assert P.vote_commitment(epoch, operator, salt, [tuple(v) for v in votes]) == root, "the reveal does not open"


# ---------------------------------------------------------------------------------------- commitments


def test_the_commitment_lists_every_openings_not_ok_votes_under_the_epochs_one_salt(world):
    salt = open_commitments(world.store, 4, {9: {1: P.OK, 3: P.FAULT}, 2: {3: P.UNREACHABLE, 5: P.NO_VOTE},
                                             5: 2})
    assert epoch_salt(world.store, 4) == salt and world.store.get("salt.4") == "0x" + salt.hex()
    assert epoch_salt(world.store, 5) != salt  # one salt per epoch
    assert {o["salt"] for o in world.store.openings(4)} == {"0x" + salt.hex()}
    attempt = epoch_attempt(world.store, 4, OPERATOR)
    c2, c3, z = bytes([0xC2]) * 32, bytes([0xC3]) * 32, bytes(32)
    assert attempt.votes == ((2, 3, P.UNREACHABLE, c3), (9, 3, P.FAULT, c2), (2, 5, P.NO_VOTE, z))
    assert attempt.licenses == (2, 5, 9) and attempt.salt == salt
    assert attempt.root == P.vote_commitment(4, OPERATOR, salt, list(attempt.votes))
    assert Attempt.from_json(attempt.to_json()) == attempt
    # all OK: nothing listed, still a root (the commitment of an empty list)
    open_commitments(world.store, 6, {1: 3})
    assert epoch_attempt(world.store, 6, OPERATOR).votes == ()
    assert epoch_attempt(world.store, 6, OPERATOR).root == P.vote_commitment(6, OPERATOR,
                                                                             epoch_salt(world.store, 6), [])


def test_the_attempt_for_an_onchain_root_is_a_recorded_one_or_the_openings_under_a_stored_salt(world):
    open_commitments(world.store, 4, {1: {1: P.FAULT}, 2: 1})
    first = epoch_attempt(world.store, 4, OPERATOR)
    record_attempt(world.store, 4, first)
    record_attempt(world.store, 4, first)  # recorded once
    open_commitments(world.store, 4, {3: {2: P.UNREACHABLE}}, state="prepared")  # its commit never got mined
    everything = epoch_attempt(world.store, 4, OPERATOR)
    assert world.store.get("commit.4") == [first.to_json()]
    assert attempt_for_root(world.store, 4, OPERATOR, first.root) == first
    assert attempt_for_root(world.store, 4, OPERATOR, everything.root) == everything  # no attempt: all openings
    assert attempt_for_root(world.store, 4, OPERATOR, b"\x05" * 32) is None
    assert attempt_for_root(world.store, 5, OPERATOR, first.root) is None  # no openings that epoch
    other = epoch_attempt(world.store, 4, "0x" + "34" * 20)  # the same votes hashed for another operator
    assert other.root != everything.root and attempt_for_root(world.store, 4, OPERATOR, other.root) is None
    # a store of an older release: one salt per license, no salt key; the root under one of them still opens
    world.store.put_opening(7, 4, "0x" + "0a" * 32, [1], [P.FAULT], ["0x" + "cd" * 32], "0x" + "ee" * 32)
    world.store.put_opening(7, 6, "0x" + "0b" * 32, [1], [P.OK], ["0x" + "cd" * 32], "0x" + "ee" * 32)
    old = P.vote_commitment(7, OPERATOR, b"\x0b" * 32, [(4, 1, P.FAULT, b"\xcd" * 32)])
    assert attempt_for_root(world.store, 7, OPERATOR, old).licenses == (4, 6)
    assert world.store.get("salt.7") is None


def verdict_service(world):
    from alignment_node.node.verdicts import VerdictService

    return VerdictService(world.node, Duties(world.node))


def test_a_duty_target_without_an_audit_result_is_a_no_vote_with_a_zero_root(world):
    from alignment_node.audits.base import AuditResult

    service = verdict_service(world)
    root = b"\x42" * 32
    results = {5: AuditResult(P.FAULT, {}, stored_root=root), 8: AuditResult(P.OK, {}, stored_root=b"\x43" * 32)}
    service._prepare_openings(3, [1, 2], {1: [3, 5, 8], 2: [5]}, results)
    got = {o["license"]: (o["targets"], o["verdicts"], o["roots"], o["state"]) for o in world.store.openings(3)}
    z = "0x" + "00" * 32
    assert got == {1: ([3, 5, 8], [P.NO_VOTE, P.FAULT, P.OK], [z, "0x" + root.hex(), "0x" + "43" * 32], "prepared"),
                   2: ([5], [P.FAULT], ["0x" + root.hex()], "prepared")}
    assert epoch_attempt(world.store, 3, OPERATOR).votes == ((1, 3, P.NO_VOTE, bytes(32)), (1, 5, P.FAULT, root),
                                                             (2, 5, P.FAULT, root))
    service.stop()


def test_commit_sends_one_root_over_every_opening_of_the_epoch_and_records_it_first(world):
    roots = {7: bytes(32)}
    world.answers["rootOf"] = lambda op, e: roots[e]
    world.answers["epochStartBlock"] = lambda e: 100 * e
    world.rpc.head = 705
    service = verdict_service(world)
    open_commitments(world.store, 7, {4: {1: P.FAULT, 2: P.OK}, 2: 1}, state="prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    attempt = epoch_attempt(world.store, 7, OPERATOR)
    assert [(purpose, fn, args) for purpose, fn, args, _e in world.sender.sent] == [("commit", "commit",
                                                                                     (7, attempt.root))]
    assert world.store.get("commit.7") == [attempt.to_json()]
    assert {s for s, _r in states(world.store, 7).values()} == {"committed"}
    # A license prepared later in the epoch: the new root covers the committed openings too (it replaces them).
    open_commitments(world.store, 7, {9: {2: P.UNREACHABLE}}, state="prepared")
    asyncio.run(service.commit(7, world.store.openings(7, "prepared")))
    bigger = epoch_attempt(world.store, 7, OPERATOR)
    assert bigger.licenses == (2, 4, 9) and world.sender.sent[-1][2] == (7, bigger.root)
    assert world.store.get("commit.7") == [attempt.to_json(), bigger.to_json()]
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


def reveal_world(world, root: bytes, revealed=False) -> None:
    world.answers["revealWindow"] = (100, 110)
    world.answers["rootOf"] = lambda op, e: root if op == OPERATOR else bytes(32)
    world.answers["hasRevealed"] = revealed if callable(revealed) else (lambda op, e: revealed)


def reveals_sent(world) -> list[tuple]:
    return [args for purpose, fn, args, _e in world.sender.sent if fn == "reveal"]


def test_reveal_waits_for_the_window_then_opens_the_root_in_one_transaction(world):
    open_commitments(world.store, 4, {1: {1: P.FAULT, 2: P.OK}, 2: 100, 3: {2: P.NO_VOTE, 7: P.UNREACHABLE}})
    attempt = epoch_attempt(world.store, 4, OPERATOR)
    record_attempt(world.store, 4, attempt)
    reveal_world(world, attempt.root)
    asyncio.run(world.reveal.reveal(4, 98))  # head + 1 < start: not yet
    assert world.sender.sent == [] and {s for s, _ in states(world.store, 4).values()} == {"committed"}
    asyncio.run(world.reveal.reveal(4, 99))
    [args] = reveals_sent(world)
    assert args[:3] == (4, OPERATOR, attempt.salt) and [tuple(v) for v in args[3]] == list(attempt.votes)
    assert [(lic, t, v) for lic, t, v, _r in args[3]] == [(1, 1, P.FAULT), (3, 2, P.NO_VOTE), (3, 7, P.UNREACHABLE)]
    assert_opens(attempt.root, args)
    assert states(world.store, 4) == {1: ("revealed", None), 2: ("revealed", None), 3: ("revealed", None)}
    assert world.node.metrics.reveals._value.get() == 3
    asyncio.run(world.reveal.reveal(4, 100))
    assert len(reveals_sent(world)) == 1  # done


def test_reveal_rebuilds_the_opening_after_a_restart_from_the_stored_openings(world):
    """No attempt recorded (a crash between the two writes): the openings under the epoch's salt are what the
    commit sent."""
    open_commitments(world.store, 4, {6: {1: P.FAULT}, 2: 3, 11: {3: P.UNREACHABLE}})
    root = epoch_attempt(world.store, 4, OPERATOR).root
    reveal_world(world, root)
    asyncio.run(world.reveal.reveal(4, 100))
    [args] = reveals_sent(world)
    assert_opens(root, args)


def test_a_license_the_committed_root_does_not_cover_is_revealed_ok_with_the_reason(world):
    open_commitments(world.store, 5, {1: 2, 2: {1: P.FAULT}})
    first = epoch_attempt(world.store, 5, OPERATOR)
    record_attempt(world.store, 5, first)
    open_commitments(world.store, 5, {3: {2: P.FAULT}}, state="prepared")  # its commit never got mined
    record_attempt(world.store, 5, epoch_attempt(world.store, 5, OPERATOR))
    reveal_world(world, first.root)
    asyncio.run(world.reveal.reveal(5, 105))
    [args] = reveals_sent(world)
    assert_opens(first.root, args) and [v[0] for v in args[3]] == [2]
    got = states(world.store, 5)
    assert got[1] == got[2] == ("revealed", None)
    assert got[3][0] == "revealed" and "not under the revealed root" in got[3][1] and first.root.hex() in got[3][1]


@pytest.mark.parametrize("onchain, why", [(bytes(32), "no root of this operator"),
                                          (b"\x0e" * 32, "0x" + "0e" * 32)])
def test_a_root_on_chain_that_is_not_ours_misses_every_reveal(world, onchain, why):
    open_commitments(world.store, 5, {1: 2, 2: 2})
    reveal_world(world, onchain)
    asyncio.run(world.reveal.reveal(5, 105))
    assert world.sender.sent == []
    for state, reason in states(world.store, 5).values():
        assert state == "missed" and "commitment never reached the chain" in reason and why in reason
    assert world.node.metrics.missed_reveals._value.get() == 2


def test_a_reveal_after_the_window_is_a_miss_and_nothing_is_sent(world):
    open_commitments(world.store, 6, {7: 3})
    reveal_world(world, epoch_attempt(world.store, 6, OPERATOR).root)
    asyncio.run(world.reveal.reveal(6, 109))  # head + 1 >= end
    assert world.sender.sent == []
    state, reason = states(world.store, 6)[7]
    assert state == "missed" and "[100, 110)" in reason and "109" in reason


def test_a_reveal_mined_before_a_crash_is_not_called_missed_once_the_window_has_closed(world):
    """The chaos scenario (seed 8): the node was killed after its reveal was mined but before it read the receipt,
    and restarted after the window closed: the operator is revealed on chain, so are its openings."""
    open_commitments(world.store, 6, {7: 3, 8: {1: P.FAULT}})
    reveal_world(world, epoch_attempt(world.store, 6, OPERATOR).root, revealed=True)
    asyncio.run(world.reveal.reveal(6, 115))
    assert world.sender.sent == []
    assert states(world.store, 6) == {7: ("revealed", None), 8: ("revealed", None)}
    assert world.node.metrics.missed_reveals._value.get() == 0


def test_a_reveal_a_reorg_dropped_is_sent_again_while_the_window_is_open(world, monkeypatch):
    open_commitments(world.store, 6, {7: {2: P.FAULT}}, state="revealed")
    attempt = epoch_attempt(world.store, 6, OPERATOR)
    reveal_world(world, attempt.root)
    lost = {"reveal": False}

    async def lost_to_reorg(_parts, purpose, epoch):
        return lost[purpose]

    monkeypatch.setattr(R, "lost_to_reorg", lost_to_reorg)
    asyncio.run(world.reveal.reveal(6, 104))
    assert world.sender.sent == []  # not revealed on chain but no transaction lost: not a reorg
    lost["reveal"] = True
    asyncio.run(world.reveal.reveal(6, 104))
    [args] = reveals_sent(world)
    assert_opens(attempt.root, args) and states(world.store, 6)[7] == ("revealed", None)
    world.sender.sent.clear()
    asyncio.run(world.reveal.reveal(6, 109))  # the window is over: nothing more
    assert world.sender.sent == []


# ------------------------------------------------------------------------------------------ settlement


def settle_world(world, epoch: int, mine: dict[int, list[int]], revealers: dict[int, list[int]],
                 settled: set[int] = frozenset(), opens_later: dict[int, int] | None = None,
                 all_ok: set[int] = frozenset()):
    """Our revealed openings (license -> targets) and every target's revealers on chain; each target has a FAULT
    vote (it needs settling) unless it is in ``all_ok``."""
    for lic, targets in mine.items():
        world.store.put_opening(epoch, lic, "0x" + "00" * 32, targets, [P.OK] * len(targets),
                                ["0x" + "cd" * 32] * len(targets), "0x" + "ee" * 32)
        world.store.set_opening_state(epoch, [lic], "revealed")
    world.answers["revealWindow"] = (100, 110)
    world.answers["settleOpensAt"] = lambda e, t: 110 + (opens_later or {}).get(t, 0)
    world.answers["tally"] = lambda e, t: (len(revealers[t]) - (t not in all_ok), int(t not in all_ok), 0,
                                           len(revealers[t]), P.FAULT if t in settled else 0)
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
    assert settles(world) == [(2, 4)]  # license 1 stayed silent: we (second in line) settle
    assert world.store.get("settled.2") is True
    world.sender.sent.clear()
    asyncio.run(world.settle.settle_and_report(200, 3))
    assert world.sender.sent == []  # the epoch is done


def test_a_target_whose_committee_revealed_all_ok_is_not_settled_unless_referees_may_rule(world):
    # targets 1 and 2 all OK (outcome OK by view: nothing to settle); 3 has a FAULT vote; 5 is all OK but its
    # baseline has referees (settleable 15 blocks after the window): their FAULT would change it
    settle_world(world, 2, {3: [1, 2, 3, 5]}, {1: [3], 2: [3], 3: [3], 5: [3]}, all_ok={1, 2, 5},
                 opens_later={5: 15})
    world.settle.report_misses = _no_misses
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert settles(world) == [(2, 3)] and not world.store.get("settled.2")
    asyncio.run(world.settle.settle_and_report(125, 3))
    assert settles(world) == [(2, 3), (2, 5)] and world.store.get("settled.2") is True


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


def test_a_lost_settle_race_is_quiet_and_the_misses_are_reported_anyway(world):
    settle_world(world, 2, {3: [1]}, {1: [3]})
    world.sender.revert["settle"] = "AlreadySettled"
    reported: list = []

    async def record(epoch, targets, mine):
        reported.append((epoch, targets, mine))

    world.settle.report_misses = record
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert settles(world) == [] and reported == [(2, [1], {3})]  # misses need no settlement (H4)
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


def test_a_real_node_orders_its_services_heartbeat_reveal_verdicts_resume_settlement_challenges_rewards_health_alerts(tmp_path):
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
            "ChallengeService", "RewardsService", "HealthService", "AlertConditions"]
        assert node.services[2] is node.verdicts and node.services[4].duties is node.verdicts.duties
    finally:
        node.store.close()
