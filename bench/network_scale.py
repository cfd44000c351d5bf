"""The protocol at the network's size on anvil (issue 16): 175,500 licenses of 1,000 operators, 10,000 targets.

The chain and the contracts are the real ones (anvil, the committed artifacts, ``deploy_async``); the operators
are simulated in this one process, each with its own key and its own transactions, doing what the node does:
one heartbeat per operator and epoch (presence per operator, every listed license active), find its duties from
the registry's committee list (``positionsAt`` + ``protocol.duties``), commit one Merkle root over the openings of
the licenses that have duties, reveal them with their proofs in the next epoch's window; then every target is
settled. Two epochs run; a third's heartbeats book the second's credit. Prints, per epoch, the gas of
each step (transaction gas: what blocks hold), per license, the number of 30M-gas blocks an epoch needs, the
committees (exactly k seats per target, reveals per target, outcomes), and whether every license was credited
in every epoch.

    .venv/bin/python bench/network_scale.py [--licenses 175500] [--operators 1000] [--targets 10000]

By default anvil mines a block a second holding every pending transaction (``--packed``; blocks of up to 100M
gas, base fee 0, no state history kept): the blocks an epoch needs are its gas divided by 30M, whatever anvil's
own blocks held. ``--automine`` mines one transaction per block instead (what the first runs did: anvil then
spends about a quarter of a second per block at a tenth of the network's size, hours at full size). At full
size the run pushes about 40 billion gas through anvil; ``--licenses 17550 --operators 100 --targets 1000`` is a
tenth.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass

from alignment_node import protocol as P
from alignment_node.chain.contracts import TxOptions, build_transaction
from alignment_node.chain.manifest import manifest_contracts, scan_logs, topic_uint
from alignment_node.chain.rpc import RpcClient, hex_int
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import Anvil
from alignment_node.devnet.deploy import deploy_async
from alignment_node.devnet.params import default_params

BLOCK_GAS = 30_000_000
RECEIPT_TIMEOUT = 300
ETHER = 10**18


@dataclass
class Opening:
    epoch: int
    license: int
    target_ids: list
    verdicts: list
    roots: list
    salt: bytes
    proof: list | None = None  # against the operator's root, once the root is built

    @property
    def commitment(self) -> bytes:
        return P.commitment(self.epoch, self.license, self.target_ids, self.verdicts, self.roots, self.salt)

    def struct(self) -> tuple:
        return (self.license, self.target_ids, self.verdicts, self.roots, self.salt, self.proof)


class Sender:
    """One account's transactions, sent without waiting and collected by receipt (nonces counted here)."""

    def __init__(self, rpc: RpcClient, signer: LocalSigner, nonce: int):
        self.rpc, self.signer, self.nonce = rpc, signer, nonce

    async def send(self, to: str, data: bytes, gas: int, value: int = 0) -> str:
        # anvil starts at a base fee of 0 here (--block-base-fee-per-gas 0): fees never limit the bench
        signed = await build_transaction(self.rpc, self.signer, to, data,
                                         TxOptions(nonce=self.nonce, gas=gas, value=value,
                                                   max_fee_per_gas=10**10, max_priority_fee_per_gas=1))
        self.nonce += 1
        await self.rpc.send_raw_transaction(signed.raw)
        return signed.hash


LAST_TX: dict[str, str] = {}  # step -> the last transaction of it (for --trace)


async def gas_of(rpc: RpcClient, hashes: list[str], what: str) -> int:
    """Total gasUsed of the transactions; every one must have succeeded."""
    if hashes:
        LAST_TX[what] = hashes[-1]
    total = 0
    for i in range(0, len(hashes), 200):
        receipts = await asyncio.gather(*(rpc.wait_for_receipt(h, timeout=RECEIPT_TIMEOUT) for h in hashes[i:i + 200]))
        for r in receipts:
            if hex_int(r["status"]) != 1:
                raise SystemExit(f"{what}: transaction {r['transactionHash']} reverted")
            total += hex_int(r["gasUsed"])
    return total


async def each(items, fn, limit: int = 64):
    sem = asyncio.Semaphore(limit)

    async def one(x):
        async with sem:
            return await fn(x)
    return await asyncio.gather(*(one(x) for x in items))


async def mine_to(rpc: RpcClient, block: int) -> None:
    """Mine empty blocks until the next transaction lands in ``block`` or later (in chunks: anvil is slow to
    mine thousands at once)."""
    while True:
        head = await rpc.block_number()
        if head + 1 >= block:
            return
        await rpc.request("anvil_mine", [hex(min(500, block - 1 - head))])


async def run(a) -> int:
    t_start = time.monotonic()
    n_ops = a.operators
    per_op = [a.licenses // n_ops + (1 if i < a.licenses % n_ops else 0) for i in range(n_ops)]
    params = default_params()
    params["sale"].update(allowlistStart="+0", publicStart="+0", publicMaxPerWallet=max(per_op),
                          tiers=[{"price": "1 wei", "supply": a.licenses}])
    # Packed (default): a block a second with every pending transaction (up to 100M gas); an epoch of 1,000 blocks
    # leaves each phase minutes of wall time, and the idle blocks are mined in bulk. Automining: one transaction
    # per block, so an epoch must hold every transaction of the epoch as a block of its own (heartbeats,
    # commits, reveals, settlements). A base fee of 0 stays 0 under EIP-1559 (its change is proportional to
    # it), so fees never limit the bench; "blocks of 30M" below are gas / 30M.
    if a.automine:
        length = a.epoch_length or max(1_000, 2 * (3 * n_ops + a.targets))
    else:
        length = a.epoch_length or 1_000
    params["protocol"].update(epochLength=length, revealBlocks=length * 2 // 5, committeeSize=a.committee)
    extra = ["--gas-limit", str(100_000_000), "--block-base-fee-per-gas", "0"]
    if a.trace:
        extra.append("--steps-tracing")  # debug_traceTransaction's opcode steps (needs the state history)
    elif not a.automine:
        extra.append("--prune-history")  # no per-block state snapshots: anvil stays fast with 175,500 licenses
    anvil = Anvil(block_time=None if a.automine else 1, extra_args=extra).start()
    try:
        deployer = LocalSigner(anvil.private_keys[0])
        manifest = await deploy_async(anvil.url, deployer, params)
        async with RpcClient(anvil.url, timeout=120) as rpc:
            c = manifest_contracts(rpc, manifest)
            sale, registry, protocol = c["NodeSale"], c["OperatorRegistry"], c["AuditProtocol"]
            rng = random.Random(16)
            ops = [LocalSigner(rng.randbytes(32)) for _ in range(n_ops)]
            await each(ops, lambda s: rpc.request("anvil_setBalance", [s.address, hex(10 * ETHER)]))
            senders = [Sender(rpc, s, 0) for s in ops]
            keeper = Sender(rpc, deployer, 0)  # settles every target (its nonce read again before each round)

            # -------------------------------------------------------------- set-up: sale, delegation, targets
            t0 = time.monotonic()
            hashes = await each(senders, lambda s: s.send(
                registry.address, registry.encode("registerOperator", 1000, "scale"), 300_000))
            await gas_of(rpc, hashes, "registerOperator")
            bought: dict[str, list[int]] = {}
            transfer = "0x" + c["AlignmentLicense"].abi.event("Transfer").topic.hex()

            async def buy(i: int) -> None:
                s = senders[i]
                h = await s.send(sale.address, sale.encode("buy", per_op[i], per_op[i], "", [], 0),
                                 80_000 * per_op[i] + 200_000, value=per_op[i])
                r = await rpc.wait_for_receipt(h, timeout=RECEIPT_TIMEOUT)
                assert hex_int(r["status"]) == 1, "buy reverted"
                bought[s.signer.address] = [int(log["topics"][3], 16) for log in r["logs"] if log["topics"][0] == transfer]

            await each(range(n_ops), buy, 16)
            hashes = await each(senders, lambda s: s.send(
                registry.address, registry.encode("delegate", bought[s.signer.address], s.signer.address),
                200_000 * len(bought[s.signer.address]) + 200_000), 16)
            delegate_gas = await gas_of(rpc, hashes, "delegate")
            # Governance adds targets: sent as the registry's owner (the timelock), impersonated in anvil.
            targets = c["TargetRegistry"]
            owner = await targets.call("owner")
            await rpc.request("anvil_impersonateAccount", [owner])
            await rpc.request("anvil_setBalance", [owner, hex(10**21)])
            hashes = []
            for t in range(a.targets):
                data = targets.encode("addTarget", 1, f"http://target-{t}.example", t.to_bytes(8, "big"))
                hashes.append(await rpc.request("eth_sendTransaction", [
                    {"from": owner, "to": targets.address, "data": "0x" + data.hex(), "gas": hex(400_000)}]))
            await gas_of(rpc, hashes, "addTarget")
            token, vault = c["RewardToken"], c["RewardVault"]
            await token.transact("mint", deployer.address, 10**9 * ETHER, signer=deployer)
            await token.transact("approve", vault.address, 10**9 * ETHER, signer=deployer)
            await vault.transact("fundEmission", 10**6 * ETHER, signer=deployer)
            print(f"set-up: {n_ops} operators, {sum(per_op)} licenses sold and delegated, {a.targets} targets, "
                  f"in {time.monotonic() - t0:.0f} s; delegation {delegate_gas / sum(per_op):,.0f} gas per license "
                  f"(once: it lists the license for committees)")

            head = await rpc.block_number()
            e0 = await protocol.call("epochAt", head) + 1
            start = await protocol.call("epochStartBlock", e0)
            await mine_to(rpc, start)
            all_ids = {s.signer.address: sorted(bought[s.signer.address]) for s in senders}
            openings: dict[int, dict[int, P.Opening]] = {}
            credited_ok = True
            for e in range(e0, e0 + a.epochs + 1):
                row = {}
                # heartbeats, one per operator (each also books the operator's credit of the epoch before)
                t1 = time.monotonic()
                hashes = await each(senders, lambda s: s.send(protocol.address, protocol.encode("heartbeat"), 600_000))
                row["heartbeat"] = await gas_of(rpc, hashes, "heartbeat")
                if e > e0:
                    booked = vault.abi.event("OperatorBooked")
                    got = 0
                    async for logs in scan_logs(rpc, vault.address, [booked.topic, topic_uint(e - 1)], start,
                                                await rpc.block_number()):
                        got += sum(booked.decode_entry(entry)["licenses"] for entry in logs)
                    ok = got == sum(per_op)
                    credited_ok &= ok
                    print(f"  epoch {e - 1}: {got} of {sum(per_op)} licenses credited "
                          f"{'(every one)' if ok else '(NOT every one)'}")
                # reveal the epoch before, in this epoch's window
                if e - 1 in openings:
                    hashes = []
                    for s in senders:
                        mine = [o.struct() for lic, o in sorted(openings[e - 1].items())
                                if lic in set(all_ids[s.signer.address])]
                        if mine:
                            gas = 150_000 * len(mine) + 200_000
                            for i in range(0, len(mine), 150):
                                hashes.append(await s.send(protocol.address,
                                                           protocol.encode("revealMany", e - 1, mine[i:i + 150]), gas))
                    reveal_gas = await gas_of(rpc, hashes, "revealMany")
                    rows[e - 1]["reveal"] = reveal_gas
                    # settle every target after the window
                    _, end = await protocol.call("revealWindow", e - 1)
                    await mine_to(rpc, end)
                    keeper.nonce = await rpc.get_transaction_count(deployer.address, "pending")
                    hashes = [await keeper.send(protocol.address, protocol.encode("settle", e - 1, t), 400_000)
                              for t in range(a.targets)]
                    rows[e - 1]["settle"] = await gas_of(rpc, hashes, "settle")
                    outcomes = Counter()
                    seats = Counter()
                    for t in range(0, a.targets, max(1, a.targets // 200)):
                        ok_, fault, unr, n, out = await protocol.call("tally", e - 1, t)
                        outcomes[P.VERDICT_NAMES[out]] += 1
                        seats[len(await protocol.call("committee", e - 1, t))] += 1
                    rows[e - 1]["outcomes"], rows[e - 1]["seats"] = outcomes, seats
                    report(e - 1, rows[e - 1], sum(per_op), a)
                if e == e0 + a.epochs:
                    break
                # duties and commits of epoch e
                seed = await protocol.call("seed", e)
                openings[e] = {}
                t2 = time.monotonic()
                duty_seconds = 0.0

                async def commit(s: Sender) -> str | None:
                    nonlocal duty_seconds
                    ids = all_ids[s.signer.address]
                    listed, positions = await registry.call("positionsAt", ids, e)
                    d0 = time.perf_counter()
                    duties = P.duties(seed, {lic: q - 1 for lic, q in zip(ids, positions) if q}, listed,
                                      a.committee, range(a.targets))
                    duty_seconds = max(duty_seconds, time.perf_counter() - d0)
                    mine = [Opening(e, lic, ts, [P.OK] * len(ts), [bytes(32)] * len(ts), rng.randbytes(32))
                            for lic, ts in sorted(duties.items()) if ts]
                    if not mine:
                        return None
                    # one root, each leaf at its license's list position (security review N1), as the node builds it
                    where = dict(zip(ids, positions))
                    layers = P.merkle_layers({where[o.license] - 1: P.opening_leaf(o.commitment) for o in mine},
                                             P.tree_depth(listed))
                    for o in mine:
                        o.proof = P.merkle_proof(layers, where[o.license] - 1)
                        openings[e][o.license] = o
                    return await s.send(protocol.address, protocol.encode("commit", e, layers[-1][0]), 200_000)

                hashes = [h for h in await each(senders, commit) if h]
                rows.setdefault(e, {}).update(row)
                rows[e]["commit"] = await gas_of(rpc, hashes, "commit")
                rows[e]["duty_seconds"] = duty_seconds
                rows[e]["committed"] = len(openings[e])
                print(f"  epoch {e}: heartbeats and commits in {time.monotonic() - t1:.0f} s "
                      f"(duties of one operator: at most {duty_seconds * 1000:.0f} ms)")
                await mine_to(rpc, await protocol.call("epochStartBlock", e + 1))
            print(f"every license credited in every epoch: {'yes' if credited_ok else 'NO'}; "
                  f"total {time.monotonic() - t_start:.0f} s")
            if a.trace:
                for what in ("heartbeat", "commit", "revealMany", "settle"):
                    await print_breakdown(rpc, what, LAST_TX[what])
    finally:
        anvil.stop()
    return 0


rows: dict[int, dict] = {}


def step_costs(steps: list[dict]) -> list[int]:
    """Each opcode step's own gas: the drop in gas to the next step at its depth; for a call, what it took in
    all minus what its callee's steps took (access, memory, a precompile's work); the last step of a frame, its
    gasCost."""
    costs = [0] * len(steps)
    for i, st in enumerate(steps):
        if i + 1 >= len(steps) or steps[i + 1]["depth"] < st["depth"]:
            costs[i] = st["gasCost"]
        elif steps[i + 1]["depth"] == st["depth"]:
            costs[i] = st["gas"] - steps[i + 1]["gas"]
    for i in reversed(range(len(steps))):  # innermost calls first, so their own costs are known
        st = steps[i]
        if i + 1 < len(steps) and steps[i + 1]["depth"] > st["depth"]:
            k = i + 1
            while k < len(steps) and steps[k]["depth"] > st["depth"]:
                k += 1
            costs[i] = st["gas"] - steps[k]["gas"] - sum(costs[i + 1:k]) if k < len(steps) else st["gasCost"]
    return costs


KINDS = {"SLOAD": "storage reads", "SSTORE": "storage writes", "KECCAK256": "keccak",
         "LOG0": "events", "LOG1": "events", "LOG2": "events", "LOG3": "events", "LOG4": "events",
         "CALL": "calls", "STATICCALL": "calls", "DELEGATECALL": "calls"}


async def print_breakdown(rpc: RpcClient, what: str, tx_hash: str) -> None:
    """Where one transaction's gas went (--trace): intrinsic and calldata, then execution by kind of opcode."""
    receipt = await rpc.get_transaction_receipt(tx_hash)
    tx = await rpc.request("eth_getTransactionByHash", [tx_hash])
    async with RpcClient(rpc.endpoints[0].url, timeout=600, max_response_bytes=1 << 30) as big:  # tens of MB
        trace = await big.request("debug_traceTransaction", [tx_hash, {"disableMemory": True, "disableStorage": True,
                                                                      "disableStack": True}])
    steps = trace["structLogs"]
    data = bytes.fromhex(tx["input"][2:])
    calldata = sum(16 if b else 4 for b in data)
    kinds: Counter = Counter()
    for st, cost in zip(steps, step_costs(steps)):
        kinds[KINDS.get(st["op"], "other opcodes (arithmetic, jumps, stack, memory)")] += cost
    reveals = sum(1 for log in receipt["logs"] if what == "revealMany") or 1
    used = hex_int(receipt["gasUsed"])
    parts = ", ".join(f"{k} {v / reveals:,.0f}" for k, v in kinds.most_common())
    print(f"trace {what}: gasUsed {used:,} for {reveals} {'reveals' if what == 'revealMany' else 'tx'} "
          f"({used / reveals:,.0f} each): 21,000 base and calldata {calldata / reveals:,.0f} "
          f"({len(data) / reveals:,.0f} bytes) each; execution each: {parts}")


def report(e: int, r: dict, n: int, a) -> None:
    total = r["heartbeat"] + r["commit"] + r["reveal"] + r["settle"]
    print(f"epoch {e}: gas heartbeat {r['heartbeat']:,} ({r['heartbeat'] / n:,.0f}/license), "
          f"commit {r['commit']:,} ({r['commit'] / n:,.0f}/license, {r['committed']} licenses with duties), "
          f"reveal {r['reveal']:,}, settle {r['settle']:,} ({r['settle'] / a.targets:,.0f}/target)")
    print(f"epoch {e}: presence + commit {(r['heartbeat'] + r['commit']) / n:,.0f} gas per license (goal <= 1,000); "
          f"total {total:,} gas = {total / BLOCK_GAS:.1f} blocks of 30M (goal <= 20), "
          f"{total / n:,.0f} per license")
    print(f"epoch {e}: committee sizes of 200 sampled targets {dict(r['seats'])}; outcomes {dict(r['outcomes'])}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--licenses", type=int, default=175_500)
    ap.add_argument("--operators", type=int, default=1_000)
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--committee", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--epoch-length", type=int, default=0,
                    help="default: 1,000 blocks packed; 2 x (3 x operators + targets) with --automine")
    ap.add_argument("--automine", action="store_true", help="one transaction per block (slow at full size)")
    ap.add_argument("--trace", action="store_true",
                    help="keep anvil's state history and print where the gas of the last heartbeat, commit, "
                         "revealMany and settle went (opcode steps; small sizes only)")
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
