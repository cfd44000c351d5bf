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


async def commit(c: dict, net: Net, epoch: int, openings: dict[int, "Opening"]) -> dict[str, bytes]:
    """One commitment per operator: the Merkle root, built in Python, over its licenses' opening leaves, each at
    its license's list position in the epoch (security review N1); each opening gets its proof. Returns the roots
    by operator address."""
    roots = {}
    for op in net.operators:
        lics = [l for l in sorted(openings) if l in op.licenses]
        mine = [openings[l] for l in lics]
        if not mine:
            continue
        # the leaf of openings[l] at license l's position (a test may hash a wrong license into it)
        listed, positions = await c["OperatorRegistry"].call("positionsAt", lics, epoch)
        depth = P.tree_depth(listed)
        placed = [(o, q - 1) for o, q in zip(mine, positions) if q]  # a license not listed has no place
        if not placed:
            continue
        layers = P.merkle_layers({q: P.opening_leaf(o.commitment) for o, q in placed}, depth)
        for o, q in placed:
            o.proof = P.merkle_proof(layers, q)
            assert P.merkle_verify(o.proof, layers[-1][0], P.opening_leaf(o.commitment), q, depth)
        roots[op.signer.address] = layers[-1][0]
        await c["AuditProtocol"].transact("commit", epoch, layers[-1][0], signer=op.signer)
    return roots


async def expect_revert(name: str, coro) -> dict:
    """Await a call/transaction that must revert with custom error `name`; returns the error's arguments."""
    with pytest.raises(ContractRevert) as info:
        await coro
    assert info.value.error_name == name, str(info.value)
    return info.value.error.values


async def block_hash(rpc: RpcClient, number: int) -> bytes:
    block = await rpc.get_block(number)
    return bytes.fromhex(block["hash"][2:])


@dataclass
class Opening:
    """A license's verdicts for one epoch, and its commitment computed in Python."""

    epoch: int
    license: int
    target_ids: list[int]
    verdicts: list[int]
    roots: list[bytes]
    salt: bytes
    proof: list[bytes] = field(default_factory=list)  # set by `commit`: its leaf's proof under the operator's root

    @property
    def commitment(self) -> bytes:
        return P.commitment(self.epoch, self.license, self.target_ids, self.verdicts, self.roots, self.salt)

    def args(self) -> tuple:
        return (self.epoch, self.license, self.target_ids, self.verdicts, self.roots, self.salt, self.proof)

    def struct(self) -> tuple:
        return (self.license, self.target_ids, self.verdicts, self.roots, self.salt, self.proof)


def opening(rng: random.Random, epoch: int, license_id: int, votes: dict[int, int]) -> Opening:
    ids = sorted(votes)
    return Opening(epoch, license_id, ids, [votes[t] for t in ids], [rng.randbytes(32) for _ in ids], rng.randbytes(32))


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

            # The contract accepts reveals of exactly Python's duties, and refuses a non-duty.
            bad = next(l for l in active0 if set(duties[l]) != set(enabled0))
            extra = next(t for t in enabled0 if t not in duties[bad])
            missing_one = next(l for l in active0 if l != bad and len(duties[l]) >= 2)
            dropped = duties[missing_one][0]
            openings = {}
            for l in active0:
                mine = set(duties[l]) | ({extra} if l == bad else set())
                mine -= {dropped} if l == missing_one else set()
                openings[l] = opening(rng, e0, l, {t: P.OK for t in mine})
            await commit(c, net, e0, openings)
            # During e0, the owner of b_ids[0] takes it back: it stays listed (and seated) in e0 and e0+1, the
            # last license moves into its position from e0+2 on.
            gone = b_ids[0]
            await registry.transact("undelegate", [gone], signer=net.operator_of(gone).signer)
            net.goto(e0 + 1, 1)
            assert await the_list(e0) == listed
            good = [openings[l].struct() for l in active0 if l != bad]
            await protocol.transact("revealMany", e0, good, signer=net.deployer)
            reveal_bad = protocol.transact("reveal", *openings[bad].args(), signer=net.deployer)
            err = await expect_revert("NotAssigned", reveal_bad)
            assert err == {"epoch": e0, "license": bad, "targetId": extra}
            for t in all_targets:
                voters = [l for l in active0 if l != bad and t in openings[l].target_ids]
                assert await protocol.call("tally", e0, t) == (len(voters), 0, 0, len(voters), 0)
            # Misses: only an active, seated, unrevealed (license, target) can be reported.
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


VERDICT = st.sampled_from([P.OK, P.FAULT, P.UNREACHABLE])
BYTES32 = st.binary(min_size=32, max_size=32)


@st.composite
def openings(draw):
    ids = sorted(draw(st.sets(st.integers(0, N_TARGETS - 1), max_size=N_TARGETS)))
    return (
        draw(st.integers(0, 2 * LICENSES_PER_OPERATOR - 1)),
        ids,
        [draw(VERDICT) for _ in ids],
        [draw(BYTES32) for _ in ids],
        draw(BYTES32),
    )


def tampered(o: Opening) -> list[tuple[str, Opening]]:
    """The opening with one field changed, each way that applies."""

    def but(**changes) -> Opening:
        fields = dict(epoch=o.epoch, license=o.license, target_ids=o.target_ids, verdicts=o.verdicts, roots=o.roots,
                      salt=o.salt)
        return Opening(**{**fields, **changes})

    out = [("salt", but(salt=bytes([o.salt[0] ^ 1]) + o.salt[1:]))]
    if o.target_ids:
        flip = {P.OK: P.FAULT, P.FAULT: P.UNREACHABLE, P.UNREACHABLE: P.OK}
        out.append(("verdict", but(verdicts=[flip[o.verdicts[0]]] + o.verdicts[1:])))
        out.append(("root", but(roots=o.roots[:-1] + [bytes([o.roots[-1][0] ^ 1]) + o.roots[-1][1:]])))
        out.append(("fewer targets", but(target_ids=o.target_ids[:-1], verdicts=o.verdicts[:-1], roots=o.roots[:-1])))
    free = [t for t in range(N_TARGETS) if t not in o.target_ids]
    if free:
        ids = sorted(o.target_ids + [free[0]])
        i = ids.index(free[0])
        out.append(("more targets", but(target_ids=ids, verdicts=o.verdicts[:i] + [P.OK] + o.verdicts[i:],
                                        roots=o.roots[:i] + [ZERO32] + o.roots[i:])))
    return out


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=openings())
@example(case=(0, [], [], [], ZERO32))  # no duties revealed: empty dynamic arrays
@example(case=(15, list(range(N_TARGETS)), [P.UNREACHABLE] * N_TARGETS, [b"\xff" * 32] * N_TARGETS, b"\xff" * 32))
def test_commitment_accepted_by_reveal_and_any_changed_field_rejected(net, case):
    index, ids, verdicts, roots, salt = case
    license_id = net.licenses[index]
    op = net.operator_of(license_id)

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            e = net.next_epoch()  # committees of 16: every target is the license's duty
            net.goto(e, 1)
            await heartbeat(c, net, [license_id])
            o = Opening(e, license_id, ids, verdicts, roots, salt)
            await commit(c, net, e, {license_id: o})
            # one leaf at the license's list position: the root folds it with zero siblings in the position's order
            listed, (q,) = await c["OperatorRegistry"].call("positionsAt", [license_id], e)
            root = P.merkle_root({q - 1: P.opening_leaf(o.commitment)}, P.tree_depth(listed))
            assert o.proof == [bytes(32)] * P.tree_depth(listed)
            assert await protocol.call("rootOf", op.signer.address, e) == root
            net.goto(e + 1, 1)
            for what, t in tampered(o):
                err = await expect_revert("NoCommitment", protocol.transact("reveal", *t.args(), signer=net.deployer))
                assert err == {"epoch": e, "license": license_id}, what
            receipt = await protocol.transact("reveal", *o.args(), signer=net.deployer)
            (ev,) = events(receipt, "Revealed")
            assert (ev["epoch"], ev["license"], ev["targetIds"], ev["verdicts"], ev["evidenceRoots"]) == (
                e, license_id, ids, verdicts, roots)
            assert await protocol.call("isRevealed", license_id, e)
            await expect_revert("AlreadyRevealed", protocol.transact("reveal", *o.args(), signer=net.deployer))
            for t, v in zip(ids, verdicts):
                ok, fault, unreachable, n, settled = await protocol.call("tally", e, t)
                assert (ok, fault, unreachable, n, settled) == (v == P.OK, v == P.FAULT, v == P.UNREACHABLE, 1, 0)

    with snapshot(net):
        run(go())


def test_commitment_binds_epoch_and_license(fresh):
    """A commitment Python computed for another license or epoch does not open for this one."""
    net = fresh
    rng = random.Random(3)
    l1, l2, l3 = net.operators[0].licenses[:3]

    async def go():
        async with connect(net) as (rpc, c):
            protocol = c["AuditProtocol"]
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, [l1, l2, l3])
            o1, o2, o3 = (opening(rng, e, l, {0: P.OK, 3: P.FAULT}) for l in (l1, l2, l3))
            wrong_license = Opening(e, l1, o2.target_ids, o2.verdicts, o2.roots, o2.salt)  # hashed with l1
            wrong_epoch = Opening(e + 2, l3, o3.target_ids, o3.verdicts, o3.roots, o3.salt)
            # the tree holds o1's leaf, and leaves of o2's and o3's verdicts hashed with the wrong license/epoch
            await commit(c, net, e, {l1: o1, l2: wrong_license, l3: wrong_epoch})
            o2.proof, o3.proof = wrong_license.proof, wrong_epoch.proof
            net.goto(e + 1, 1)
            await expect_revert("NoCommitment", protocol.transact("reveal", *o2.args(), signer=net.deployer))
            await expect_revert("NoCommitment", protocol.transact("reveal", *o3.args(), signer=net.deployer))
            # a proof of another leaf of the same tree does not open this one
            misplaced = Opening(e, l1, o1.target_ids, o1.verdicts, o1.roots, o1.salt, wrong_license.proof)
            if misplaced.proof != o1.proof:
                await expect_revert("NoCommitment", protocol.transact("reveal", *misplaced.args(), signer=net.deployer))
            await protocol.transact("reveal", *o1.args(), signer=net.deployer)

    run(go())


# --------------------------------------------------------------------------------- 4. outcome, penalties


# Per target, the verdicts of its voters in reveal order; the trap's sealed truth is FAULT.
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
            # voter j of target t is license L[(3t + j) % 16]: licenses vote on several targets
            ballots: dict[int, dict[int, int]] = {}
            for t, vs in VOTES.items():
                for j, v in enumerate(vs):
                    ballots.setdefault(L[(3 * t + j) % len(L)], {})[t] = v
            e = net.next_epoch()
            net.goto(e, 1)
            await heartbeat(c, net, L)  # 16 listed, committees of 16: all assigned
            assert len(await protocol.call("committee", e, 0)) == len(L)
            # TRAP_TARGET's seal was posted at set-up, before its registration
            opens = {l: opening(rng, e, l, b) for l, b in ballots.items()}
            await commit(c, net, e, opens)
            net.goto(e + 1, 1)
            order = sorted(opens)
            await protocol.transact("revealMany", e, [opens[l].struct() for l in order], signer=net.deployer)
            await registry.transact("revealTrap", TRAP_TARGET, TRAP_TRUTH, TRAP_SALT, signer=net.deployer)
            await expect_revert("RevealWindowOpen", protocol.transact("settle", e, 0, signer=net.deployer))
            net.goto(e + 1, REVEAL_BLOCKS)
            # The per-license credit of e, in Python: every epoch's emission since the vault was wired, nothing
            # else funded, no license active before e (whole budgets carried), 16 active in e.
            per_license = P.presence_credit((e - net.wire_epoch + 1) * EMISSION, len(L))
            for t, vs in VOTES.items():
                receipt = await protocol.transact("settle", e, t, signer=net.deployer)
                counts = (vs.count(P.OK), vs.count(P.FAULT), vs.count(P.UNREACHABLE))
                trap = TRAP_TRUTH if t == TRAP_TARGET else 0
                want = P.outcome(*counts, MIN_REVEALS, trap)
                priced = P.priced_side(*counts, MIN_REVEALS, trap)
                (settled,) = events(receipt, "TargetSettled")
                assert (settled["epoch"], settled["targetId"]) == (e, t)
                assert (settled["ok"], settled["fault"], settled["unreachable"]) == counts
                assert settled["outcome"] == want, (t, vs)
                assert (await protocol.call("tally", e, t))[4] == want
                # ViolationFlagged for FAULT/UNREACHABLE, with the root of the first agreeing revealer
                flagged = [(x["outcome"], x["evidenceRoot"]) for x in events(receipt, "ViolationFlagged")]
                if want in (P.FAULT, P.UNREACHABLE):
                    roots = [opens[l].roots[opens[l].target_ids.index(t)] for l in order
                             if ballots[l].get(t) == want]
                    assert flagged == [(want, roots[0] if roots else ZERO32)]
                else:
                    assert flagged == []
                # Penalties exactly for Python's disagreements, of Python's amount
                kind = P.PENALTY_TRAP if trap else P.PENALTY_DISAGREE
                bps = net.rewards["trapPenaltyBps" if trap else "disagreePenaltyBps"]
                voters = [l for l in order if t in ballots[l]]
                penalized = sorted(l for l in voters if P.disagrees(ballots[l][t], priced))
                got = events(receipt, "Penalized")
                assert sorted(p["tokenId"] for p in got) == penalized, (t, vs, want)
                for p in got:
                    assert (p["epoch"], p["kind"], p["amount"]) == (e, kind, P.penalty(per_license, bps))
            assert (await vault.call("epochs", e))[0] == per_license
            assert per_license > 0
            await expect_revert("AlreadySettled", protocol.transact("settle", e, 0, signer=net.deployer))

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
            opens = {l: opening(rng, e, l, {t: vs[j] for t, vs in votes.items()}) for j, l in enumerate(L)}
            await commit(c, net, e, opens)
            net.goto(e + 1, 1)
            await protocol.transact("revealMany", e, [opens[l].struct() for l in L], signer=net.deployer)
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
            net.goto(e + 1, REVEAL_BLOCKS + referee_blocks)
            for t, vs in votes.items():
                ok, fault, root = await court.call("votes", e, t)
                ruling = P.referee_ruling(ok, fault)
                assert ruling == referee_says.get(t, 0)
                committee_outcome = P.outcome(vs.count(P.OK), vs.count(P.FAULT), 0, MIN_REVEALS)
                want, by_referee = P.settled_with_referee(committee_outcome, ruling)
                priced = P.priced_side(vs.count(P.OK), vs.count(P.FAULT), 0, MIN_REVEALS)
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
