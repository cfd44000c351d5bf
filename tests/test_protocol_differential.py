"""Differential tests: alignment_node.protocol (PROTOCOL.md as pure Python) against the deployed contracts.

One automining anvil per module: deploy (epochs of 10 blocks, reveals in the first 5), sell 16 licenses to two
operators that delegate to themselves (commissions 10% and 25%), register 8 targets, fund the emission. Each
test runs from that state inside an evm_snapshot/evm_revert pair, moves through epochs by mining, and compares
what the chain did with what the Python functions compute from values the test knows on its own (its own
counts of active licenses, deposits, votes; block hashes read with eth_getBlockByNumber). No mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alignment_node import protocol as P
from alignment_node.chain.contracts import ContractRevert, receipt_events
from alignment_node.chain.rpc import RpcClient, hex_int
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import Anvil, AnvilError, find_anvil
from alignment_node.devnet.deploy import deploy_async
from alignment_node.devnet.targets import add_target_as_governance
from alignment_node.devnet.params import default_params
from alignment_node.chain.manifest import manifest_contracts

ETHER = 10**18
EPOCH_LENGTH = 10
REVEAL_BLOCKS = 5
# Committees of 16: the 16 licenses all sit on every committee (the tests of votes, penalties and rewards need
# every license on every target). The exact-committee test has its own chain with committees of 5.
COMMITTEE_SIZE = 16
SMALL_COMMITTEE = 5
MIN_REVEALS = 3
EMISSION = 1000 * ETHER + 7  # odd on purpose: divisions leave remainders to carry
EMISSION_RESERVE = 1_000_000 * ETHER
COMMISSIONS = (1000, 2500)
LICENSES_PER_OPERATOR = 8
N_TARGETS = 8
TRAP_TARGET = 7
TRAP_SALT = bytes(range(32))  # the set-up's trap seal: (TRAP_TARGET, TRAP_TRUTH, TRAP_SALT), posted before it exists
ZERO32 = b"\x00" * 32


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------- set-up


@dataclass
class Operator:
    signer: LocalSigner
    commission_bps: int
    licenses: list[int] = field(default_factory=list)


@dataclass
class Net:
    anvil: Anvil
    manifest: dict
    deployer: LocalSigner
    operators: list[Operator]
    targets: list[int]
    genesis_block: int
    genesis_seed: bytes
    wire_epoch: int
    rewards: dict

    @property
    def licenses(self) -> list[int]:
        return sorted(l for op in self.operators for l in op.licenses)

    def operator_of(self, license_id: int) -> Operator:
        return next(op for op in self.operators if license_id in op.licenses)

    # Python's view of the clock (epoch_at / epoch_start_block), used only to navigate.
    def start_of(self, epoch: int) -> int:
        return P.epoch_start_block(epoch, self.genesis_block, EPOCH_LENGTH)

    def epoch_of(self, block: int) -> int:
        return P.epoch_at(block, self.genesis_block, EPOCH_LENGTH)

    def next_epoch(self) -> int:
        """The epoch after the one the next transaction would land in."""
        return self.epoch_of(self.anvil.block_number() + 1) + 1

    def goto(self, epoch: int, offset: int = 0) -> int:
        """Mine so that the next transaction lands in block `offset` of `epoch`; returns that block."""
        target = self.start_of(epoch) + offset
        latest = self.anvil.block_number()
        assert latest < target, f"already past block {target} (latest {latest})"
        if target - 1 > latest:
            self.anvil.mine(target - 1 - latest)
        return target


@contextlib.asynccontextmanager
async def connect(net: Net):
    async with RpcClient(net.anvil.url) as rpc:
        yield rpc, manifest_contracts(rpc, net.manifest)


async def _setup(node: Anvil, committee_size: int = COMMITTEE_SIZE) -> Net:
    deployer = LocalSigner(node.private_keys[0])
    params = default_params()
    params["sale"]["allowlistStart"] = "+0"
    params["sale"]["publicStart"] = "+0"
    params["protocol"].update(
        epochLength=EPOCH_LENGTH, revealBlocks=REVEAL_BLOCKS, committeeSize=committee_size, minReveals=MIN_REVEALS
    )
    params["rewards"]["emissionPerEpoch"] = f"{EMISSION} wei"
    manifest = await deploy_async(node.url, deployer, params)
    ops = [Operator(LocalSigner(node.private_keys[1 + i]), bps) for i, bps in enumerate(COMMISSIONS)]
    async with RpcClient(node.url) as rpc:
        c = manifest_contracts(rpc, manifest)
        vault, token = c["RewardVault"], c["RewardToken"]
        wired = await vault.events("Wired", manifest["deployBlock"])
        assert len(wired) == 1
        # Emission first: a budget rolled while the reserve is empty gets no emission (a delegation rolls).
        await token.transact("mint", deployer.address, 10**9 * ETHER, signer=deployer)
        await token.transact("approve", vault.address, 10**9 * ETHER, signer=deployer)
        await token.transact("approve", c["StakingVault"].address, 10**9 * ETHER, signer=deployer)
        await vault.transact("fundEmission", EMISSION_RESERVE, signer=deployer)
        sale, registry = c["NodeSale"], c["OperatorRegistry"]
        transfer_topic = "0x" + c["AlignmentLicense"].abi.event("Transfer").topic.hex()
        for op in ops:
            await registry.transact("registerOperator", op.commission_bps, "differential", signer=op.signer)
            cost = await sale.call("quote", LICENSES_PER_OPERATOR)
            receipt = await sale.transact("buy", LICENSES_PER_OPERATOR, cost, "", [], 0, signer=op.signer, value=cost)
            op.licenses = [int(log["topics"][3], 16) for log in receipt["logs"] if log["topics"][0] == transfer_topic]
            assert len(op.licenses) == LICENSES_PER_OPERATOR
            await registry.transact("delegate", op.licenses, op.signer.address, signer=op.signer)
        targets = []
        for i in range(N_TARGETS):
            if i == TRAP_TARGET:  # the keeper's anonymous seal comes before the trap's registration
                seal = P.trap_seal(TRAP_TARGET, TRAP_TRUTH, TRAP_SALT)
                await c["TargetRegistry"].transact("sealTrap", seal, signer=deployer)
            receipt = await add_target_as_governance(
                c["TargetRegistry"], 1 + i % 5, f"http://target-{i}.example", bytes([i]) * 8
            )
            targets.extend(e["targetId"] for e in receipt_events(receipt) if e.name == "TargetAdded")
    r = manifest["params"]
    genesis = r["protocol"]["genesisBlock"]
    return Net(
        anvil=node,
        manifest=manifest,
        deployer=deployer,
        operators=ops,
        targets=targets,
        genesis_block=genesis,
        genesis_seed=bytes.fromhex(r["protocol"]["genesisSeed"][2:]),
        wire_epoch=P.epoch_at(wired[0].block_number, genesis, EPOCH_LENGTH),
        rewards=r["rewards"],
    )


def _chain(committee_size: int):
    """An automining anvil with the module's set-up (skipped without anvil)."""
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    with Anvil(block_time=None) as node:
        yield run(_setup(node, committee_size))


@pytest.fixture(scope="module")
def net():
    yield from _chain(COMMITTEE_SIZE)


@contextlib.contextmanager
def snapshot(net: Net):
    """Run a block of chain work, then put the chain back as the module's set-up left it."""
    snap = net.anvil.rpc("evm_snapshot")
    try:
        yield
    finally:
        assert net.anvil.rpc("evm_revert", [snap]) is True


@pytest.fixture(scope="module")
def small_committees():
    """The module's set-up on a chain of its own with committees of 5 of the 16 licenses."""
    yield from _chain(SMALL_COMMITTEE)


@pytest.fixture
def fresh(net):
    with snapshot(net):
        yield net


# ----------------------------------------------------------------------------------------- helpers


def events(receipt: dict, name: str) -> list:
    return [e for e in receipt_events(receipt) if e.name == name]


async def heartbeat(c: dict, net: Net, licenses) -> list[dict]:
    """One heartbeat transaction per operator holding some of `licenses` (each makes all its licenses active)."""
    receipts = []
    for op in net.operators:
        if any(l in op.licenses for l in licenses):
            receipts.append(await c["AuditProtocol"].transact("heartbeat", signer=op.signer))
    return receipts


@dataclass
class Opening:
    """A license's verdicts for one epoch (an OK needs no listing; NO_VOTE: it did not audit the target)."""

    epoch: int
    license: int
    target_ids: list[int]
    verdicts: list[int]
    roots: list[bytes]

    def row(self) -> tuple:
        return (self.license, self.target_ids, self.verdicts, self.roots)


def opening(rng: random.Random, epoch: int, license_id: int, votes: dict[int, int]) -> Opening:
    ids = sorted(votes)
    return Opening(epoch, license_id, ids, [votes[t] for t in ids],
                   [ZERO32 if votes[t] == P.NO_VOTE else rng.randbytes(32) for t in ids])


@dataclass
class Reveal:
    """An operator's commitment of one epoch: its listed votes under one salt."""

    epoch: int
    operator: str
    salt: bytes
    votes: list[tuple]

    @property
    def root(self) -> bytes:
        return P.vote_commitment(self.epoch, self.operator, self.salt, self.votes)

    def args(self) -> tuple:
        return (self.epoch, self.operator, self.salt, self.votes)


async def commit(c: dict, net: Net, epoch: int, openings: dict[int, Opening], rng: random.Random | None = None,
                 ) -> dict[str, Reveal]:
    """One commitment per operator holding some of ``openings``: the hash, in Python, of its licenses' listed votes
    under a fresh salt, checked against AuditProtocol.commitmentOf and committed. Returns the reveals by address."""
    rng = rng or random.Random(epoch)
    out = {}
    protocol = c["AuditProtocol"]
    for op in net.operators:
        mine = [openings[l].row() for l in sorted(openings) if l in op.licenses]
        if not mine:
            continue
        r = Reveal(epoch, op.signer.address, rng.randbytes(32), P.sorted_votes(mine))
        assert await protocol.call("commitmentOf", *r.args()) == r.root
        await protocol.transact("commit", epoch, r.root, signer=op.signer)
        out[op.signer.address] = r
    return out


async def reveal_all(c: dict, net: Net, reveals: dict[str, Reveal]) -> list[dict]:
    """Each operator's reveal, sent by a third party (anyone holding the opening may)."""
    return [await c["AuditProtocol"].transact("reveal", *r.args(), signer=net.deployer) for r in reveals.values()]


async def expected_seats(c: dict, epoch: int, target: int, opens: dict[int, Opening], revealed: set[str],
                         net: Net) -> list[tuple[int, int]]:
    """(license, verdict) of the target's seats with a duty, in committee order, in Python from the test's own
    openings: NO_VOTE unless its operator revealed, then its listed vote, else OK (P.seat_verdict)."""
    out = []
    for lic in await c["AuditProtocol"].call("committee", epoch, target):
        if not await c["RewardVault"].call("isActive", lic, epoch):
            continue
        o = opens.get(lic)
        listed = o.verdicts[o.target_ids.index(target)] if o and target in o.target_ids else None
        listed = None if listed == P.OK else listed
        out.append((lic, P.seat_verdict(net.operator_of(lic).signer.address in revealed, listed)))
    return out


async def expect_revert(name: str, coro) -> dict:
    """Await a call/transaction that must revert with custom error `name`; returns the error's arguments."""
    with pytest.raises(ContractRevert) as info:
        await coro
    assert info.value.error_name == name, str(info.value)
    return info.value.error.values


async def block_hash(rpc: RpcClient, number: int) -> bytes:
    block = await rpc.get_block(number)
    return bytes.fromhex(block["hash"][2:])


# -------------------------------------------------------------------------------------------- 1. seed


def test_seed_matches_python_from_previous_seed_and_parent_hash(fresh):
    net = fresh

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            assert await protocol.call("lastSeed") == net.genesis_seed
            # Python's clock against the contract's.
            e1 = net.next_epoch()
            assert await protocol.call("epochStartBlock", e1) == net.start_of(e1)
            assert await protocol.call("revealWindow", e1) == P.reveal_window(
                e1, net.genesis_block, EPOCH_LENGTH, REVEAL_BLOCKS
            )
            assert await protocol.call("seed", e1) == ZERO32

            async def touched(receipt, epoch, previous) -> bytes:
                block = hex_int(receipt["blockNumber"])
                assert net.epoch_of(block) == epoch == await protocol.call("epochAt", block)
                # the block before the epoch, fixed in advance (issue 16); the block before the touch when that
                # one is more than 256 blocks old
                anchor = net.start_of(epoch) - 1 if block - (net.start_of(epoch) - 1) <= 256 else block - 1
                want = P.seed(previous, await block_hash(rpc, anchor), epoch)
                recorded = events(receipt, "SeedRecorded")
                assert [(e["epoch"], e["seed"]) for e in recorded] == [(epoch, want)]
                assert await protocol.call("seed", epoch) == want
                assert await protocol.call("lastSeed") == want
                return want

            # poke in the middle of an epoch; from the genesis seed
            net.goto(e1, 3)
            s1 = await touched(await protocol.transact("poke", signer=net.deployer), e1, net.genesis_seed)
            # a second touch in the same epoch changes nothing
            again = await protocol.transact("poke", signer=net.deployer)
            assert events(again, "SeedRecorded") == []
            assert await protocol.call("seed", e1) == s1
            # e1+1 untouched: no seed; heartbeat in the first block of e1+2 chains from s1 and the hash of
            # e1+1's last block
            e3 = e1 + 2
            net.goto(e3, 0)
            (receipt,) = await heartbeat(c, net, net.operators[0].licenses[:2])
            s3 = await touched(receipt, e3, s1)
            assert await protocol.call("seed", e1 + 1) == ZERO32
            # the vault's calls do not touch the protocol's epochs; settle does
            e4 = e3 + 1
            net.goto(e4, EPOCH_LENGTH - 3)
            await c["RewardVault"].transact("depositFees", 10 * ETHER, signer=net.deployer)
            assert await protocol.call("seed", e4) == ZERO32
            receipt = await protocol.transact("settle", e1, 0, signer=net.deployer)
            s4 = await touched(receipt, e4, s3)
            assert len({net.genesis_seed, s1, s3, s4}) == 4
            # an epoch first touched more than 256 blocks after it began
            e5 = e4 + 30
            net.goto(e5, 7)
            s5 = await touched(await protocol.transact("poke", signer=net.deployer), e5, s4)
            assert s5 not in {s1, s3, s4}

    run(go())


# ------------------------------------------------------------------------------- 2. exact committees


def test_exact_committees_match_python(small_committees):
    """The registry's committee list, its epoch-stable positions, the shuffle and the seats against Python."""
    net = small_committees
    rng = random.Random(2)
    L = net.licenses
    a_ids, b_ids = (op.licenses for op in net.operators)

    async def go():
        async with connect(net) as (rpc, c):
            protocol, targets, registry = c["AuditProtocol"], c["TargetRegistry"], c["OperatorRegistry"]

            async def assignment(epoch: int, ids: list[int]) -> dict[tuple[int, int], bool]:
                return {(l, t): await protocol.call("isAssigned", epoch, l, t) for l in L for t in ids}

            async def the_list(epoch: int) -> list[int]:
                n = await registry.call("listedAt", epoch)
                return [await registry.call("licenseAt", i, epoch) for i in range(n)]

            # e0: the 16 licenses delegated at set-up are listed, in delegation order; the first operator's 8
            # are active (its heartbeat), the second's are not.
            e0 = net.next_epoch()
            net.goto(e0, 1)
            listed = await the_list(e0)
            assert listed == a_ids + b_ids
            n, positions = await registry.call("positionsAt", L, e0)
            assert n == 16 and positions == [listed.index(l) + 1 for l in L]
            active0 = list(a_ids)
            await heartbeat(c, net, active0)
            # a target added during e0 counts from e0+1 only
            receipt = await add_target_as_governance(targets, 2, "http://late.example", b"late")
            (late,) = [e["targetId"] for e in events(receipt, "TargetAdded")]
            enabled0 = list(net.targets)
            all_targets = enabled0 + [late]
            seed0 = await protocol.call("seed", e0)
            for t in all_targets:
                seated = [listed[q] for q in P.committee_positions(seed0, t, n, SMALL_COMMITTEE)]
                assert len(set(seated)) == SMALL_COMMITTEE  # exactly k distinct licenses, active or not
                assert await protocol.call("committee", e0, t) == seated
            got = await assignment(e0, all_targets + [N_TARGETS + 1])  # plus an id that does not exist
            where = {l: listed.index(l) for l in active0}
            duties = P.duties(seed0, where, n, SMALL_COMMITTEE, enabled0)
            for (l, t), assigned in got.items():
                assert assigned == (l in active0 and t in duties[l]), (l, t)
            # each enabled target: its committee's active licenses, and nobody else
            for t in enabled0:
                seated = set(await protocol.call("committee", e0, t))
                assert {l for l in active0 if t in duties[l]} == seated & set(active0)

            # Reveals: no seat check. `bad` lists a FAULT on a target it does not sit on (stored, never counted);
            # `missing_one` lists NO_VOTE on one of its duties (a miss); every other seat votes OK by not being listed.
            bad = next(l for l in active0 if set(duties[l]) != set(enabled0))
            extra = next(t for t in enabled0 if t not in duties[bad])
            missing_one = next(l for l in active0 if l != bad and len(duties[l]) >= 2)
            dropped = duties[missing_one][0]
            opens = {bad: opening(rng, e0, bad, {extra: P.FAULT}),
                     missing_one: opening(rng, e0, missing_one, {dropped: P.NO_VOTE})}
            reveals = await commit(c, net, e0, opens, rng)
            # During e0, the owner of b_ids[0] takes it back: it stays listed (and seated) in e0 and e0+1, the
            # last license moves into its position from e0+2 on.
            gone = b_ids[0]
            await registry.transact("undelegate", [gone], signer=net.operator_of(gone).signer)
            net.goto(e0 + 1, 1)
            assert await the_list(e0) == listed
            await reveal_all(c, net, reveals)
            assert await protocol.call("voteOf", e0, extra, bad) == (True, P.FAULT, opens[bad].roots[0])
            assert await protocol.call("voteOf", e0, dropped, missing_one) == (True, P.NO_VOTE, ZERO32)
            unlisted = next(t for t in enabled0 if t != dropped)
            assert await protocol.call("voteOf", e0, unlisted, missing_one) == (False, 0, ZERO32)
            for t in all_targets:
                seats = await expected_seats(c, e0, t, opens, set(reveals), net) if t in enabled0 else []
                # the seats with a duty are Python's duties: the active licenses with t among theirs
                assert {l for l, _v in seats} == {l for l in active0 if t in duties[l]}
                assert await protocol.call("tally", e0, t) == (*P.seat_tally([v for _l, v in seats]), 0)
                assert await protocol.call("revealers", e0, t) == ([l for l, v in seats if v != P.NO_VOTE],
                                                                   [v for _l, v in seats if v != P.NO_VOTE])
            assert (await protocol.call("tally", e0, extra))[1] == 0  # bad's FAULT off its seats never counts
            # Misses: only an active, seated (license, target) whose operator did not reveal it can be reported.
            net.goto(e0 + 1, REVEAL_BLOCKS)
            receipt = await protocol.transact("reportMiss", e0, missing_one, dropped, signer=net.deployer)
            assert [(e["license"], e["targetId"]) for e in events(receipt, "MissReported")] == [(missing_one, dropped)]
            not_duty = next(t for t in enabled0 if t not in duties[missing_one])
            seated_anywhere = set()
            for t in enabled0:
                seated_anywhere.update(await protocol.call("committee", e0, t))
            idle = next(l for l in L if l not in active0 and l in seated_anywhere)
            for l, t in ((missing_one, not_duty), (idle, enabled0[0]), (missing_one, late)):
                await expect_revert("NotAssigned", protocol.transact("reportMiss", e0, l, t, signer=net.deployer))
            await expect_revert("NotMissed", protocol.transact(
                "reportMiss", e0, missing_one, duties[missing_one][-1], signer=net.deployer))

            # e0+1 still has the old list (the undelegation was in e0: it counts from e0+1... of the next
            # epoch after it), e0+2 the swapped one; e0's list stays readable.
            after = list(listed)
            after[after.index(gone)] = after[-1]
            after.pop()
            assert await the_list(e0 + 1) == after
            net.goto(e0 + 2, 1)
            assert await the_list(e0 + 2) == after and await the_list(e0) == listed
            n2, pos2 = await registry.call("positionsAt", [gone, listed[-1]], e0 + 2)
            assert (n2, pos2) == (15, [0, listed.index(gone) + 1])

    run(go())


# ------------------------------------------------------------------------------------- 3. commitment


LISTED_VERDICT = st.sampled_from([P.NO_VOTE, P.FAULT, P.UNREACHABLE])
BYTES32 = st.binary(min_size=32, max_size=32)


@st.composite
def listings(draw):
    """An operator (0 or 1), its listed votes as (target, index of its license, verdict, root), and a salt."""
    keys = sorted(draw(st.sets(st.tuples(st.integers(0, N_TARGETS - 1), st.integers(0, LICENSES_PER_OPERATOR - 1)),
                               max_size=12)))
    return draw(st.integers(0, 1)), [(t, j, draw(LISTED_VERDICT), draw(BYTES32)) for t, j in keys], draw(BYTES32)


def tampered(r: Reveal, free: tuple[int, int]) -> list[tuple[str, Reveal]]:
    """The reveal with one field changed, each way that applies (``free``: a (license, target) it does not list)."""

    def but(**changes) -> Reveal:
        return Reveal(**{**dict(epoch=r.epoch, operator=r.operator, salt=r.salt, votes=r.votes), **changes})

    out = [("salt", but(salt=bytes([r.salt[0] ^ 1]) + r.salt[1:])),
           ("operator", but(operator="0x" + "00" * 19 + "01")),
           ("more votes", but(votes=sorted(r.votes + [(*free, P.FAULT, ZERO32)], key=lambda v: (v[1], v[0]))))]
    if r.votes:
        (lic, t, v, root), rest = r.votes[0], r.votes[1:]
        other = {P.NO_VOTE: P.FAULT, P.FAULT: P.UNREACHABLE, P.UNREACHABLE: P.NO_VOTE}[v]
        out += [("verdict", but(votes=[(lic, t, other, root)] + rest)),
                ("root", but(votes=[(lic, t, v, bytes([root[0] ^ 1]) + root[1:])] + rest)),
                ("fewer votes", but(votes=rest))]
    return out


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=listings())
@example(case=(0, [], ZERO32))  # all OK: nothing listed, an empty array
@example(case=(1, [(t, j, P.UNREACHABLE, b"\xff" * 32) for t in range(N_TARGETS) for j in (0, 7)], b"\xff" * 32))
def test_commitment_matches_python_opens_once_and_any_changed_field_is_rejected(net, case):
    index, listed, salt = case
    op = net.operators[index]

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            e = net.next_epoch()  # committees of 16: every license sits on every target
            net.goto(e, 1)
            await heartbeat(c, net, op.licenses)
            votes = sorted(((op.licenses[j], t, v, root) for t, j, v, root in listed), key=lambda v: (v[1], v[0]))
            r = Reveal(e, op.signer.address, salt, votes)
            assert await protocol.call("commitmentOf", *r.args()) == r.root
            await protocol.transact("commit", e, r.root, signer=op.signer)
            assert await protocol.call("rootOf", op.signer.address, e) == r.root
            net.goto(e + 1, 1)
            free = next((l, t) for t in range(N_TARGETS) for l in op.licenses
                        if (l, t) not in {(v[0], v[1]) for v in votes})
            for what, bad in tampered(r, free):
                err = await expect_revert("NoCommitment", protocol.transact("reveal", *bad.args(),
                                                                            signer=net.deployer))
                assert (err["epoch"], err["operator"].lower()) == (e, bad.operator.lower()), what
            assert not await protocol.call("hasRevealed", op.signer.address, e)
            receipt = await protocol.transact("reveal", *r.args(), signer=net.deployer)
            (ev,) = events(receipt, "Revealed")
            assert (ev["epoch"], ev["operator"].lower()) == (e, op.signer.address.lower())
            assert [tuple(v[k] for k in ("license", "targetId", "verdict", "evidenceRoot")) if isinstance(v, dict)
                    else tuple(v) for v in ev["votes"]] == votes
            assert await protocol.call("hasRevealed", op.signer.address, e)
            assert all([await protocol.call("isRevealed", l, e) for l in op.licenses])
            # a second reveal (anyone's copy of the payload) is a no-op: no event, no revert
            assert events(await protocol.transact("reveal", *r.args(), signer=net.deployer), "Revealed") == []
            listed_of = {(l, t): (v, root) for l, t, v, root in votes}
            for t in range(N_TARGETS):
                seats = []
                for l in await protocol.call("committee", e, t):
                    got = await protocol.call("voteOf", e, t, l)
                    if (l, t) in listed_of:
                        assert got == (True, *listed_of[(l, t)])
                    else:
                        assert got == (False, 0, ZERO32)
                    if l in op.licenses:  # the other operator is not present: no duty
                        seats.append(P.seat_verdict(True, listed_of.get((l, t), (None,))[0]))
                assert await protocol.call("tally", e, t) == (*P.seat_tally(seats), 0)

    with snapshot(net):
        run(go())


def test_reveal_refuses_what_python_refuses_to_hash(fresh):
    """Votes out of (target, license) order, a listed OK or an unknown verdict, a license of another operator: the
    root opens, and the reveal reverts (P.vote_commitment refuses to hash the first three kinds)."""
    net = fresh
    a, b = net.operators
    l1, l2 = a.licenses[:2]

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, a.licenses)
            r = b"\x01" * 32
            cases = [([(l1, 3, P.FAULT, r), (l2, 1, P.FAULT, r)], "VotesNotSorted", {"index": 1}),
                     ([(l1, 1, P.FAULT, r), (l1, 1, P.UNREACHABLE, r)], "VotesNotSorted", {"index": 1}),
                     ([(l1, 1, P.OK, r)], "InvalidVerdict", {"index": 0, "verdict": P.OK}),
                     ([(l2, 0, P.FAULT, r), (l1, 1, P.INCONCLUSIVE, r)], "InvalidVerdict",
                      {"index": 1, "verdict": P.INCONCLUSIVE}),
                     ([(b.licenses[0], 1, P.FAULT, r)], "NotOperatorsLicense",
                      {"epoch": e, "license": b.licenses[0], "operator": a.signer.address})]
            for votes, _name, _args in cases[:-1]:  # which operator a license is under, Python cannot know
                with pytest.raises(AssertionError):
                    P.vote_commitment(e, a.signer.address, ZERO32, votes)
            for votes, name, want in cases:
                net.goto(net.epoch_of(net.anvil.block_number() + 1) + 1, 1)
                e = net.epoch_of(net.anvil.block_number() + 1)
                await heartbeat(c, net, a.licenses)
                root = await protocol.call("commitmentOf", e, a.signer.address, ZERO32, votes)
                await protocol.transact("commit", e, root, signer=a.signer)
                net.goto(e + 1, 1)
                err = await expect_revert(name, protocol.transact("reveal", e, a.signer.address, ZERO32, votes,
                                                                  signer=net.deployer))
                want = {**want, "epoch": e} if "epoch" in want else want
                assert {k: (v.lower() if isinstance(v, str) else v) for k, v in err.items()} == \
                    {k: (v.lower() if isinstance(v, str) else v) for k, v in want.items()}, name
                assert not await protocol.call("hasRevealed", a.signer.address, e)

    run(go())


def test_commitment_binds_epoch_and_operator(fresh):
    """A commitment Python computed for another epoch or operator does not open for this one."""
    net = fresh
    rng = random.Random(3)
    a, b = net.operators

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, net.licenses)
            votes_a = [(a.licenses[0], 3, P.FAULT, rng.randbytes(32))]
            votes_b = [(b.licenses[0], 3, P.UNREACHABLE, rng.randbytes(32))]
            salt = rng.randbytes(32)
            wrong_epoch = Reveal(e + 2, a.signer.address, salt, votes_a)
            wrong_operator = Reveal(e, a.signer.address, salt, votes_b)  # B's votes hashed as A's
            await protocol.transact("commit", e, wrong_epoch.root, signer=a.signer)
            await protocol.transact("commit", e, wrong_operator.root, signer=b.signer)
            net.goto(e + 1, 1)
            for r in (Reveal(e, a.signer.address, salt, votes_a), Reveal(e, b.signer.address, salt, votes_b),
                      wrong_operator):
                await expect_revert("NoCommitment", protocol.transact("reveal", *r.args(), signer=net.deployer))
            assert not await protocol.call("hasRevealed", a.signer.address, e)
            assert not await protocol.call("hasRevealed", b.signer.address, e)

    run(go())


# --------------------------------------------------------------------------------- 4. outcome, penalties


# Per target, the verdicts of its voters (every other seat lists NO_VOTE); the trap's sealed truth is FAULT.
VOTES = {
    0: [P.FAULT, P.OK, P.FAULT, P.OK, P.FAULT],  # 3/5 not OK: INCONCLUSIVE, nobody pays
    1: [P.OK, P.OK, P.OK, P.FAULT, P.UNREACHABLE],  # 3/5 OK: INCONCLUSIVE, nobody pays
    2: [P.OK, P.FAULT, P.FAULT],
    3: [P.OK, P.OK],  # fewer than minReveals
    4: [P.FAULT, P.UNREACHABLE, P.UNREACHABLE],  # FAULT agrees with UNREACHABLE
    5: [P.OK, P.OK, P.OK, P.OK, P.FAULT, P.UNREACHABLE],  # exactly 2/3
    6: [P.OK, P.FAULT, P.UNREACHABLE],  # no verdict has 2/3, but FAULT + UNREACHABLE do: FAULT (M4)
    TRAP_TARGET: [P.OK, P.OK, P.FAULT],
}
TRAP_TRUTH = P.FAULT


def test_settled_outcomes_and_disagreement_penalties_match_python(fresh):
    net = fresh
    rng = random.Random(4)
    L = net.licenses

    async def go():
        async with connect(net) as (rpc, c):
            protocol, vault, registry = c["AuditProtocol"], c["RewardVault"], c["TargetRegistry"]
            # voter j of target t is license L[(3t + j) % 16]: licenses vote on several targets; every other
            # license lists NO_VOTE on t (else its silence would count OK)
            ballots: dict[int, dict[int, int]] = {l: {} for l in L}
            for t, vs in VOTES.items():
                voters = {L[(3 * t + j) % len(L)]: v for j, v in enumerate(vs)}
                for l in L:
                    ballots[l][t] = voters.get(l, P.NO_VOTE)
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, L)  # 16 listed, committees of 16: all assigned
            assert len(await protocol.call("committee", e, 0)) == len(L)
            # TRAP_TARGET's seal was posted at set-up, before its registration
            opens = {l: opening(rng, e, l, b) for l, b in ballots.items()}
            reveals = await commit(c, net, e, opens, rng)
            net.goto(e + 1, 1)
            await reveal_all(c, net, reveals)
            await registry.transact("revealTrap", TRAP_TARGET, TRAP_TRUTH, TRAP_SALT, signer=net.deployer)
            assert await protocol.call("outcomeOf", e, 0) == 0  # not before the window's end
            await expect_revert("RevealWindowOpen", protocol.transact("settle", e, 0, signer=net.deployer))
            net.goto(e + 1, REVEAL_BLOCKS + 1)  # views run in the latest block: the window's end is mined
            # The per-license credit of e, in Python: every epoch's emission since the vault was wired, nothing
            # else funded, no license active before e (whole budgets carried), 16 active in e.
            per_license = P.presence_credit((e - net.wire_epoch + 1) * EMISSION, len(L))
            for t, vs in VOTES.items():
                seats = await expected_seats(c, e, t, opens, set(reveals), net)
                counts = (vs.count(P.OK), vs.count(P.FAULT), vs.count(P.UNREACHABLE))
                assert P.seat_tally([v for _l, v in seats]) == (*counts, len(vs))
                assert await protocol.call("tally", e, t) == (*counts, len(vs), 0)
                trap = TRAP_TRUTH if t == TRAP_TARGET else 0
                want = P.outcome(*counts, MIN_REVEALS, trap)
                priced = P.priced_side(*counts, MIN_REVEALS, trap)
                assert await protocol.call("outcomeOf", e, t) == want, (t, vs)  # what settle will decide
                receipt = await protocol.transact("settle", e, t, signer=net.deployer)
                (settled,) = events(receipt, "TargetSettled")
                assert (settled["epoch"], settled["targetId"]) == (e, t)
                assert (settled["ok"], settled["fault"], settled["unreachable"]) == counts
                assert settled["outcome"] == want, (t, vs)
                assert (await protocol.call("tally", e, t))[4] == want == await protocol.call("outcomeOf", e, t)
                # ViolationFlagged for FAULT/UNREACHABLE, with the root of the first seat (committee order) that
                # revealed the outcome (security review M6)
                flagged = [(x["outcome"], x["evidenceRoot"]) for x in events(receipt, "ViolationFlagged")]
                if want in (P.FAULT, P.UNREACHABLE):
                    roots = [opens[l].roots[opens[l].target_ids.index(t)] for l, v in seats if v == want]
                    first = roots[0] if roots else ZERO32
                    assert flagged == [(want, first)]
                    assert await protocol.call("evidenceRoot", e, t, want) == first
                else:
                    assert flagged == []
                # Penalties exactly for Python's disagreements, of Python's amount
                kind = P.PENALTY_TRAP if trap else P.PENALTY_DISAGREE
                bps = net.rewards["trapPenaltyBps" if trap else "disagreePenaltyBps"]
                voters = [l for l, v in seats if v != P.NO_VOTE]
                penalized = sorted(l for l in voters if P.disagrees(ballots[l][t], priced))
                got = events(receipt, "Penalized")
                assert sorted(p["tokenId"] for p in got) == penalized, (t, vs, want)
                for p in got:
                    assert (p["epoch"], p["kind"], p["amount"]) == (e, kind, P.penalty(per_license, bps))
            assert (await vault.call("epochs", e))[0] == per_license
            assert per_license > 0
            await expect_revert("AlreadySettled", protocol.transact("settle", e, 0, signer=net.deployer))
            # a NO_VOTE seat is a miss, a voting one is not; neither needs the target settled
            idle = next(l for l in L if ballots[l][3] == P.NO_VOTE)
            voter = next(l for l in L if ballots[l][3] == P.OK)
            receipt = await protocol.transact("reportMiss", e, idle, 3, signer=net.deployer)
            assert [(x["license"], x["targetId"]) for x in events(receipt, "MissReported")] == [(idle, 3)]
            await expect_revert("NotMissed", protocol.transact("reportMiss", e, voter, 3, signer=net.deployer))

    run(go())


# ---------------------------------------------------------------------------------------- 5. credit


def test_presence_credit_and_commission_match_python_budgets(fresh):
    net = fresh
    node_bps, staker_bps = net.rewards["nodeShareBps"], net.rewards["stakerShareBps"]
    fees = {}  # epoch -> fee deposits
    active = {}  # epoch -> licenses active
    L = net.licenses
    some = list(net.operators[0].licenses)  # presence is per operator: only the first one is present in a+2

    async def go():
        async with connect(net) as (rpc, c):
            vault = c["RewardVault"]
            start = await rpc.block_number() + 1

            async def deposit(amount: int, staked: bool) -> None:
                receipt = await vault.transact("depositFees", amount, signer=net.deployer)
                epoch = net.epoch_of(hex_int(receipt["blockNumber"]))
                (ev,) = events(receipt, "FeesDeposited")
                to_licenses, to_stakers, to_treasury = P.fee_split(amount, node_bps, staker_bps)
                if not staked:  # docs/protocol.md: the stakers' share goes to the treasury while nobody stakes
                    to_stakers, to_treasury = 0, to_stakers + to_treasury
                assert (ev["toLicenses"], ev["toStakers"], ev["toTreasury"]) == (to_licenses, to_stakers, to_treasury)
                fees.setdefault(epoch, []).append(amount)

            await deposit(3 * ETHER + 1, staked=False)  # before any license is active: carried to a
            await c["StakingVault"].transact("deposit", 5 * ETHER, net.deployer.address, signer=net.deployer)
            a = net.next_epoch()
            net.goto(a, 1)
            await heartbeat(c, net, L)
            active[a] = list(L)
            await deposit(12_345_678_901_234_567_891, staked=True)
            net.goto(a + 1, 2)  # nobody active in a+1: its whole budget (with fees) carries over
            await deposit(777 * ETHER + 3, staked=True)
            net.goto(a + 2, 1)
            await heartbeat(c, net, some)  # books the first operator's epoch a
            active[a + 2] = some
            net.goto(a + 3, 1)
            await vault.transact("settleLicenses", L, signer=net.deployer)  # books the rest, credits every license

            # Python's budgets, epoch by epoch from the one the vault was wired in.
            credit, carry = {}, 0
            for epoch in range(net.wire_epoch, a + 3):
                budget = carry + EMISSION + sum(P.fee_split(f, node_bps, staker_bps)[0] for f in fees.get(epoch, []))
                n = len(active.get(epoch, []))
                credit[epoch] = P.presence_credit(budget, n)
                carry = budget - credit[epoch] * n
            assert credit[a] > 0 and credit[a + 1] == 0 and credit[a + 2] > credit[a]
            assert sorted(fees)[0] < a and sorted(fees)[1:] == [a, a + 1]

            # Each operator's present epoch is booked once: per-license net credit and commission as Python splits
            # them, for the licenses it served then.
            booked = {(ev["operator"], ev["epoch"]): ev for ev in await vault.events("OperatorBooked", start)}
            want = {(op.signer.address, epoch) for epoch, ids in active.items() for op in net.operators
                    if set(ids) & set(op.licenses)}
            assert set(booked) == want
            for (address, epoch), ev in booked.items():
                op = next(o for o in net.operators if o.signer.address == address)
                n = len(set(active[epoch]) & set(op.licenses))
                to_license, commission = P.commission_split(credit[epoch], op.commission_bps)
                assert (ev["licenses"], ev["perLicense"], ev["commission"]) == (n, to_license, commission * n)
            # Each license is credited, lazily (once here), the gross credit of every epoch it was active in less
            # its operator's commission, rounded on the operator's running sum (0 before a: its first presence);
            # the operator's commission is paid as its licenses are credited (security finding L2).
            credited: dict[int, int] = {}
            for ev in await vault.events("Credited", start):
                credited[ev["tokenId"]] = credited.get(ev["tokenId"], 0) + ev["amount"]
            commission_of: dict[str, int] = {op.signer.address: 0 for op in net.operators}
            for l in L:
                op = net.operator_of(l)
                gross = sum(credit[epoch] for epoch, ids in active.items() if l in ids)
                want_total, commission = P.commission_split(gross, op.commission_bps)
                assert credited.get(l, 0) == want_total, l
                assert await vault.call("claimable", l) == want_total
                commission_of[op.signer.address] += commission
            for op in net.operators:
                assert await vault.call("commissionOf", op.signer.address) == commission_of[op.signer.address]
            for epoch in (a, a + 1, a + 2):
                assert (await vault.call("epochs", epoch))[:2] == (credit[epoch], len(active.get(epoch, [])))

    run(go())


# -------------------------------------------------------------------------------------------- 6. traps


def test_trap_seal_opens_on_chain(fresh):
    """The set-up's seal (posted before TRAP_TARGET existed) opens with exactly its (target, outcome, salt); a seal
    posted for a target already registered never opens (the keeper cannot overrule a governance-added target)."""
    net = fresh
    salt = os.urandom(32)
    t, other = TRAP_TARGET, TRAP_TARGET - 1

    async def go():
        async with connect(net) as (rpc, c):
            registry = c["TargetRegistry"]
            seal = P.trap_seal(t, TRAP_TRUTH, TRAP_SALT)
            posted_at, targets_at_post, _term, state = await registry.call("seals", seal)
            assert (targets_at_post, state) == (t, 1) and posted_at > 0
            wrong = [
                (t, TRAP_TRUTH, bytes([TRAP_SALT[0] ^ 1]) + TRAP_SALT[1:]),  # salt
                (t, P.UNREACHABLE, TRAP_SALT),  # outcome
                (other, TRAP_TRUTH, TRAP_SALT),  # sealed for another target id
            ]
            for target, outcome, s in wrong:
                reveal = registry.transact("revealTrap", target, outcome, s, signer=net.deployer)
                err = await expect_revert("BadTrapReveal", reveal)
                assert err == {"targetId": target}
            receipt = await registry.transact("revealTrap", t, TRAP_TRUTH, TRAP_SALT, signer=net.deployer)
            assert [(e["targetId"], e["outcome"], e["seal"]) for e in events(receipt, "TrapRevealed")] == [
                (t, TRAP_TRUTH, seal)]
            assert await registry.call("trapOutcome", t) == TRAP_TRUTH
            assert await registry.call("trapOutcome", other) == 0
            # A seal for a target that already exists is stored, but can never judge it.
            late = P.trap_seal(other, P.UNREACHABLE, salt)
            receipt = await registry.transact("sealTrap", late, signer=net.deployer)
            assert [e["seal"] for e in events(receipt, "TrapSealed")] == [late]
            err = await expect_revert("SealPostdatesTarget",
                                      registry.transact("revealTrap", other, P.UNREACHABLE, salt, signer=net.deployer))
            assert err == {"targetId": other}
            assert await registry.call("trapOutcome", other) == 0

    run(go())


# ----------------------------------------------------------------------------------------- 7. referees


def test_referees_are_drawn_and_decide_settlement_as_python_says(fresh):
    net = fresh
    rng = random.Random(7)
    L = net.licenses[:3]

    async def go():
        async with connect(net) as (rpc, c):
            protocol, court, registry, token = c["AuditProtocol"], c["RefereeCourt"], c["TargetRegistry"], c["RewardToken"]
            min_bond, referee_blocks, _unbond, committee = await court.call("params")
            assert committee == 1 and min_bond > 0
            baseline = rng.randbytes(32)
            tids = []
            for i in range(3):  # three MODEL targets of one baseline
                receipt = await add_target_as_governance(registry, P.KIND_MODEL, f"http://model-{i}.example", baseline)
                tids += [e["targetId"] for e in events(receipt, "TargetAdded")]
                await court.transact("bindTarget", tids[-1], signer=net.deployer)
            await expect_revert("NotAModelTarget", court.transact("bindTarget", 0, signer=net.deployer))
            refs = {}
            for i in range(3):
                r = LocalSigner(net.anvil.private_keys[3 + i])
                refs[r.address.lower()] = r
                await token.transact("mint", r.address, min_bond, signer=net.deployer)
                await token.transact("approve", court.address, min_bond, signer=r)
                await court.transact("register", baseline, min_bond, signer=r)
            listed = [a.lower() for a in await court.call("referees", baseline)]
            assert sorted(listed) == sorted(refs)

            # votes: target A OK, OK, FAULT (the referee says FAULT); B OK x3 (referee OK); C OK x3 (no verdict)
            votes = {tids[0]: [P.OK, P.OK, P.FAULT], tids[1]: [P.OK] * 3, tids[2]: [P.OK] * 3}
            referee_says = {tids[0]: P.FAULT, tids[1]: P.OK}
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, L)
            # L's votes; the other licenses of the operators present list NO_VOTE on these targets
            present = [l for op in net.operators if set(op.licenses) & set(L) for l in op.licenses]
            opens = {l: opening(rng, e, l, {t: vs[L.index(l)] if l in L else P.NO_VOTE for t, vs in votes.items()})
                     for l in present}
            reveals = await commit(c, net, e, opens, rng)
            net.goto(e + 1, 1)
            await reveal_all(c, net, reveals)
            seed = await protocol.call("seed", e)
            drawn = {t: P.referees_drawn(seed, t, listed, committee) for t in tids}
            for t in tids:
                for who in listed:
                    assert await court.call("isAssigned", e, t, who) == (who in drawn[t]), (t, who)
            net.goto(e + 1, REVEAL_BLOCKS)
            _start, reveal_end = await protocol.call("revealWindow", e)
            for t in tids:
                assert await protocol.call("settleOpensAt", e, t) == reveal_end + referee_blocks
            for t, verdict in referee_says.items():
                (who,) = drawn[t]
                outsider = next(r for r in listed if r not in drawn[t])
                await expect_revert("NotAssignedReferee", court.transact("submitVerdict", e, t, verdict, ZERO32,
                                                                       signer=refs[outsider]))
                await court.transact("submitVerdict", e, t, verdict, rng.randbytes(32), signer=refs[who])
            await expect_revert("RefereeWindowOpen", protocol.transact("settle", e, tids[0], signer=net.deployer))
            assert await protocol.call("outcomeOf", e, tids[0]) == 0  # the referees' window is still open
            net.goto(e + 1, REVEAL_BLOCKS + referee_blocks + 1)  # views run in the latest block
            for t, vs in votes.items():
                ok, fault, root = await court.call("votes", e, t)
                ruling = P.referee_ruling(ok, fault)
                assert ruling == referee_says.get(t, 0)
                committee_outcome = P.outcome(vs.count(P.OK), vs.count(P.FAULT), 0, MIN_REVEALS)
                want, by_referee = P.settled_with_referee(committee_outcome, ruling)
                priced = P.priced_side(vs.count(P.OK), vs.count(P.FAULT), 0, MIN_REVEALS)
                assert await protocol.call("outcomeOf", e, t) == want  # by view, before anyone settles
                receipt = await protocol.transact("settle", e, t, signer=net.deployer)
                (settled,) = events(receipt, "TargetSettled")
                assert settled["outcome"] == want
                assert bool(events(receipt, "RefereeDecided")) == by_referee
                penalized = sorted(p["tokenId"] for p in events(receipt, "Penalized"))
                want_penalized = [] if by_referee else sorted(
                    l for j, l in enumerate(L) if P.disagrees(vs[j], priced))
                assert penalized == want_penalized, (t, vs)
                if by_referee:
                    assert [(x["outcome"], x["evidenceRoot"]) for x in events(receipt, "ViolationFlagged")] == \
                        [(P.FAULT, root)]
            assert (await protocol.call("tally", e, tids[0]))[4] == P.FAULT  # referee-decided, committee said OK

    run(go())
