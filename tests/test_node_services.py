"""The node's chain duties without a chain: reveal batching, settlement choice, miss reports and the tick's
order of services.

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
from alignment_node.chain.manifest import topic_address, topic_uint
from alignment_node.config import Config
from alignment_node.node import reveal as R
from alignment_node.node import settlement as S
from alignment_node.node.duties import Duties
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.store import Store

PROTOCOL_ADDR = "0x" + "11" * 20
VAULT_ADDR = "0x" + "22" * 20
OPERATOR = "0x" + "33" * 20


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

    def __init__(self, protocol: Contract):
        self.protocol = protocol
        self.sent: list[tuple] = []
        self.revert: dict = {}

    async def send(self, purpose, to, data, *, epoch=None, meta=None, gas=None, expected_errors=(), gas_extra=0,
                   urgent=True):
        assert to == self.protocol.address
        fn, args = decode_call(self.protocol, data)
        rule = self.revert.get(purpose)
        name = rule(args) if callable(rule) else rule
        if name:
            raise ContractRevert(f"AuditProtocol.{fn}", DecodedError(name, f"{name}()", (), b""), b"")
        self.sent.append((purpose, fn, args, epoch))
        return {"transactionHash": "0x" + "ab" * 32, "blockNumber": "0x1", "status": "0x1"}


class FakeRpc:
    def __init__(self, logs: list[dict]):
        self.logs = logs
        self.ranges: list[tuple] = []

    async def get_logs(self, address, topics, lo, hi):
        self.ranges.append((lo, hi))
        want = [t if t is None or isinstance(t, str) else "0x" + bytes(t).hex() for t in topics]
        return [entry for entry in self.logs if lo <= int(entry["blockNumber"], 16) <= hi
                and all(t is None or t == entry["topics"][i] for i, t in enumerate(want))]


def heartbeats_log(vault: Contract, epoch: int, block: int, token_ids: list[int]) -> dict:
    from eth_abi import encode

    ev = vault.abi.event("Heartbeats")
    return {"address": VAULT_ADDR, "blockNumber": hex(block), "logIndex": "0x0",
            "topics": ["0x" + ev.topic.hex(), topic_uint(epoch), topic_address(OPERATOR)],
            "data": "0x" + encode(["uint256[]"], [token_ids]).hex()}


@pytest.fixture
def world(tmp_path):
    answers: dict = {}
    protocol = FakeContract("AuditProtocol", PROTOCOL_ADDR, answers)
    vault = FakeContract("RewardVault", VAULT_ADDR, {})
    store = Store(tmp_path / "node.sqlite")
    rpc = FakeRpc([])
    sender = FakeSender(protocol)
    node = SimpleNamespace(cfg=Config(), store=store, c={"AuditProtocol": protocol, "RewardVault": vault},
                           sender=sender, metrics=NodeMetrics(), rpc=rpc, data_dir=tmp_path,
                           manifest={"chainId": 31337, "deployBlock": 0})
    yield SimpleNamespace(reveal=R.RevealService(node), settle=S.SettlementService(node, Duties(node)), answers=answers, protocol=protocol, vault=vault, store=store, rpc=rpc,
                          sender=sender)
    store.close()


def open_commitments(store: Store, epoch: int, spec: dict[int, int]) -> dict[int, str]:
    """Store committed openings: license -> number of verdicts; returns license -> commitment."""
    out = {}
    for lic, n in spec.items():
        commitment = "0x" + (lic.to_bytes(2, "big") * 16).hex()
        store.put_opening(epoch, lic, "0x" + "00" * 32, list(range(1, n + 1)), [P.OK] * n, ["0x" + "cd" * 32] * n,
                          commitment)
        store.set_opening_state(epoch, [lic], "committed")
        out[lic] = commitment
    return out


def states(store: Store, epoch: int) -> dict[int, tuple]:
    return {o["license"]: (o["state"], o.get("reason")) for o in store.openings(epoch)}


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


def test_reveal_waits_for_the_window_then_reveals_every_committed_license_in_batches(world):
    commitments = open_commitments(world.store, 4, {1: 200, 2: 100, 3: 10})
    world.answers["revealWindow"] = (100, 110)
    world.answers["commitmentOf"] = lambda lic, e: bytes.fromhex(commitments[lic][2:])
    asyncio.run(world.reveal.reveal(4, 98))  # head + 1 < start: not yet
    assert world.sender.sent == [] and {s for s, _ in states(world.store, 4).values()} == {"committed"}
    asyncio.run(world.reveal.reveal(4, 99))
    sent = [(purpose, fn, [r[0] for r in args[1]]) for purpose, fn, args, _e in world.sender.sent]
    assert sent == [("reveal", "revealMany", [1]), ("reveal", "revealMany", [2, 3])]
    # the reveal carries the stored opening exactly
    _p, _f, (epoch, reveals), _e = world.sender.sent[1]
    assert epoch == 4 and list(reveals[1][1]) == list(range(1, 11)) and list(reveals[1][2]) == [P.OK] * 10
    assert {lic: s for lic, (s, _r) in states(world.store, 4).items()} == {1: "revealed", 2: "revealed",
                                                                          3: "revealed"}


def test_reveal_marks_misses_with_their_reason(world):
    commitments = open_commitments(world.store, 5, {1: 2, 2: 2, 3: 2, 4: 2})
    onchain = {1: bytes.fromhex(commitments[1][2:]), 2: bytes.fromhex(R.REVEALED_MARKER[2:]), 3: bytes(32),
               4: bytes.fromhex(commitments[4][2:])}
    world.answers["revealWindow"] = (100, 110)
    world.answers["commitmentOf"] = lambda lic, e: onchain[lic]
    world.sender.revert["reveal"] = lambda args: "AlreadyRevealed" if 4 in [r[0] for r in args[1]] else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "REVEAL_MAX_VERDICTS", 2)  # one license per batch
        asyncio.run(world.reveal.reveal(5, 105))
    got = states(world.store, 5)
    assert got[1] == ("revealed", None)
    assert got[2][0] == "revealed"  # already revealed on chain (a crash after sending)
    assert got[3] == ("missed", "commitment never reached the chain")
    assert got[4][0] == "missed" and "AlreadyRevealed" in got[4][1]
    assert [[r[0] for r in args[1]] for _p, _f, args, _e in world.sender.sent] == [[1]]


def test_a_reveal_after_the_window_is_a_miss_and_nothing_is_sent(world):
    open_commitments(world.store, 6, {7: 3})
    world.answers["revealWindow"] = (100, 110)
    asyncio.run(world.reveal.reveal(6, 109))  # head + 1 >= end
    assert world.sender.sent == []
    state, reason = states(world.store, 6)[7]
    assert state == "missed" and "[100, 110)" in reason and "109" in reason


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
    assert sorted(settles(world)) == [(2, 1), (2, 4)]  # late: every unsettled target of ours
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


def test_a_lost_settle_race_is_quiet_and_reports_no_misses(world):
    settle_world(world, 2, {3: [1]}, {1: [3]})
    world.sender.revert["settle"] = "AlreadySettled"
    reported: list = []

    async def record(epoch, targets, mine):
        reported.append((epoch, targets, mine))

    world.settle.report_misses = record
    asyncio.run(world.settle.settle_and_report(110, 3))
    assert settles(world) == [] and reported == [(2, [], {3})]
    assert world.store.get("settled.2") is True


async def _no_misses(*_a):
    return None


# -------------------------------------------------------------------------------------------- misses


def test_misses_are_reported_for_seated_active_licenses_that_did_not_reveal(world):
    epoch = 3
    settle_world(world, epoch, {}, {1: [2, 5], 2: [2]})
    # active in epoch 3: 2, 5, 6, 7 (heartbeats in its blocks [300, 399]), and 9 only in epoch 2's blocks
    world.rpc.logs = [heartbeats_log(world.vault, 3, 305, [2, 5, 6]), heartbeats_log(world.vault, 3, 399, [7]),
                      heartbeats_log(world.vault, 2, 250, [9])]
    # the committees: 9 is seated but not active in epoch 3, 6 is this node's own, 11 never heartbeat
    committees = {1: [2, 5, 7, 9, 11], 2: [2, 6, 7, 9, 3]}
    world.answers["committee"] = lambda e, t: committees[t]
    asyncio.run(world.settle.report_misses(epoch, [1, 2], mine={6}))
    reported = [args for purpose, fn, args, _e in world.sender.sent if fn == "reportMiss"]
    assert reported == [(epoch, 7, 1), (epoch, 7, 2)]
    # only epoch 3's blocks were read
    assert world.rpc.ranges and all(300 <= lo <= hi <= 399 for lo, hi in world.rpc.ranges)


def test_everyone_seated_everyone_missing_is_reported_except_ours(world):
    settle_world(world, 3, {}, {1: [2], 2: list(range(100, 116))})
    world.rpc.logs = [heartbeats_log(world.vault, 3, 310, [2, 4, 5, 6])]
    world.answers["committee"] = lambda e, t: list(range(1, 20)) if t == 1 else list(range(100, 116))
    world.sender.revert["report_miss"] = lambda args: "MissAlreadyReported" if args[1] == 5 else None
    asyncio.run(world.settle.report_misses(3, [1, 2], mine={6}))
    reported = [(args[1], args[2]) for _p, fn, args, _e in world.sender.sent if fn == "reportMiss"]
    # target 2's committee all revealed: nothing to report; license 5's report was a lost race
    assert reported == [(4, 1)]


def test_an_epoch_whose_committees_are_gone_reports_nothing_and_settling_goes_on(world):
    """The registry keeps each epoch's committee list for two epochs after it: a node that comes back later settles
    its old epochs and skips their misses (HistoryLost) instead of failing every pass."""
    settle_world(world, 3, {1: [2]}, {1: [2]})
    world.rpc.logs = [heartbeats_log(world.vault, 3, 310, [2, 4])]

    def gone(e, t):
        raise ContractRevert("AuditProtocol.committee", DecodedError("HistoryLost", "HistoryLost(uint256)", (("epoch", "uint256", e),), b""),
                             b"")

    world.answers["committee"] = gone
    asyncio.run(world.settle.report_misses(3, [1], mine={2}))
    assert [fn for _p, fn, _a, _e in world.sender.sent if fn == "reportMiss"] == []
    # any other revert of the committee view is an error
    world.answers["committee"] = lambda e, t: (_ for _ in ()).throw(
        ContractRevert("AuditProtocol.committee", DecodedError("Other", "Other()", (), b""), b""))
    with pytest.raises(ContractRevert):
        asyncio.run(world.settle.report_misses(3, [1], mine={2}))


def test_no_heartbeats_no_reports(world):
    settle_world(world, 3, {}, {1: []})
    asyncio.run(world.settle.report_misses(3, [1], mine=set()))
    assert world.sender.sent == []


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

    node = Node.__new__(Node)
    node.parts = SimpleNamespace(rpc=Rpc(), snapshot=snapshot, metrics=NodeMetrics(), store=store,
                                 c={"AuditProtocol": FakeContract("AuditProtocol", PROTOCOL_ADDR,
                                                                  {"currentEpoch": epoch})})
    node.licenses, node.health, node.services = Licenses(), RecordingService("health", order), services
    return node, order, store


def test_the_tick_runs_every_service_in_order_with_the_licenses_view(tmp_path):
    names = ["heartbeat", "reveal", "verdicts", "settlement", "rewards", "health", "alerts"]
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


def test_a_real_node_orders_its_services_heartbeat_reveal_verdicts_settlement_rewards_health_alerts(tmp_path):
    """Presence before anything that needs it; the previous epoch's reveal before this epoch's audits (its window
    is short); settlement after both; reads and alerts last."""
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
            "HeartbeatService", "RevealService", "VerdictService", "SettlementService", "RewardsService",
            "HealthService", "AlertConditions"]
        assert node.services[2] is node.verdicts and node.services[3].duties is node.verdicts.duties
    finally:
        node.store.close()
