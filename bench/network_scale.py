"""The protocol at the network's size on anvil (issue 16): 175,500 licenses of 1,000 operators, 10,000 targets.

The chain and the contracts are the real ones (anvil, the committed artifacts, ``deploy_async``); the operators
are simulated in this one process, each with its own key and its own transactions, doing what the node does:
one heartbeat per operator and epoch (presence per operator, every listed license active), find its duties from
the registry's committee list (``positionsAt`` + ``protocol.duties``), commit one hash of its votes that are not
OK (``commitmentOf``: none in an honest epoch, every seated license then votes OK by default), reveal them with
one ``reveal`` per operator in the next epoch's window; then settle only the targets that need it (a vote that
is not OK: none unless ``--faults``; a target whose committee all revealed OK has the outcome OK without a
settlement). Two epochs run; a third's heartbeats book the second's credit. Prints, per epoch, the gas of each
step (transaction gas: what blocks hold), per license, the number of 30M-gas blocks an epoch needs, the
committees of sampled targets (exactly k seats per target, reveals per target, outcomes read with
``outcomeOf``), and whether every license was credited and revealed in every epoch.

    .venv/bin/python bench/network_scale.py [--licenses 175500] [--operators 1000] [--targets 10000] [--faults 0]

``--faults K``: the first K targets are faulty; every license seated on one lists FAULT on it (with an evidence
root), so its operator's reveal carries those votes and the target is settled (FAULT, flagged).

By default (``--on-demand``) anvil mines only when asked: a block whenever transactions wait in its pool and
none arrived for a moment, holding all of them (blocks of up to 4 billion gas, base fee 0, no state history kept).
Anvil's time to mine a block grows with its whole state (it rebuilds the state root: about 3.6 s a block at 3
million storage slots, measured with ``anvil_loadState``), and a state read waits while a block is mined, so at
full size the run must mine few blocks: about 40 for the set-up and short epochs (``--epoch-length``, 40 blocks
by default). The blocks an epoch needs are its gas divided by 30M, whatever anvil's own blocks held. ``--packed``
mines a block a second holding every pending transaction, 1,000-block epochs (a tenth of the size in 11 minutes;
at full size each block took 4 s and every read waited on the miner); ``--automine`` one transaction per block.
At full size the run pushes about 40 billion gas through anvil; ``--licenses 17550 --operators 100 --targets
1000`` is a tenth.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter

from alignment_node import protocol as P
from alignment_node.chain.contracts import TxOptions, build_transaction
from alignment_node.chain.manifest import manifest_contracts, scan_logs, topic_uint
from alignment_node.chain.rpc import RpcClient, RpcError, hex_int
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import Anvil
from alignment_node.devnet.deploy import deploy_async
from alignment_node.devnet.params import default_params

BLOCK_GAS = 30_000_000
RECEIPT_TIMEOUT = 300
ETHER = 10**18


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


SCANNED = {"block": 0}  # gas_of reads blocks after this one (the bench's steps run one after another)


async def gas_of(rpc: RpcClient, hashes: list[str], what: str) -> int:
    """Total gas of the transactions, every one of which must have succeeded (logged an event: a reverted
    transaction logs none). Read from the blocks they landed in, which must hold nothing else, and their logs,
    not from receipts: anvil builds each receipt from every receipt of its block (one of a 10,000-transaction
    block took 0.4 s), so receipts of a full block cost the square of its size."""
    if not hashes:
        return 0
    LAST_TX[what] = hashes[-1]
    want, found, total = set(hashes), set(), 0
    deadline = time.monotonic() + RECEIPT_TIMEOUT
    async with RpcClient(rpc.endpoints[0].url, timeout=300, max_response_bytes=1 << 30) as big:
        while found != want:
            head = await rpc.block_number()
            while SCANNED["block"] < head:
                n = SCANNED["block"] + 1
                block = await rpc.request("eth_getBlockByNumber", [hex(n), False])
                ours = set(block["transactions"]) & want
                if ours:
                    if len(ours) != len(block["transactions"]):
                        raise SystemExit(f"{what}: block {n} holds other transactions beside this step's")
                    logs = await big.request("eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n)}])
                    silent = ours - {log["transactionHash"] for log in logs}
                    if silent:
                        raise SystemExit(f"{what}: transaction {min(silent)} reverted (it logged nothing)")
                    total += hex_int(block["gasUsed"])
                    found |= ours
                SCANNED["block"] = n
            if found != want:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{what}: {len(want - found)} transactions not mined in {RECEIPT_TIMEOUT} s")
                await asyncio.sleep(0.3)
    return total


async def view(contract, fn: str, *args):
    """``contract.call`` retried a few times when anvil, without state history (``--prune-history``), resolved
    "latest" to the block it was replacing as it answered (BlockOutOfRangeError)."""
    for attempt in range(5):
        try:
            return await contract.call(fn, *args)
        except RpcError as exc:
            if "BlockOutOfRange" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.2)


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
        await rpc.request("anvil_mine", [hex(min(100, block - 1 - head))])


class OnDemandMiner:
    """Mines a block when transactions wait in anvil's pool and their number stayed the same for ``quiet``
    seconds (a burst of sends lands in one block); ``mined`` counts the blocks."""

    def __init__(self, rpc: RpcClient, quiet: float = 0.4):
        self.rpc, self.quiet, self.mined = rpc, quiet, 0

    async def run(self) -> None:
        last = 0
        while True:
            await asyncio.sleep(self.quiet)
            pending = hex_int((await self.rpc.request("txpool_status", []))["pending"])
            if pending and pending == last:
                await self.rpc.request("evm_mine", [])
                self.mined, pending = self.mined + 1, 0
            last = pending


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
    elif a.packed:
        length = a.epoch_length or 1_000
    else:
        length = a.epoch_length or 40
    params["protocol"].update(epochLength=length, revealBlocks=length * 2 // 5, committeeSize=a.committee)
    extra = ["--gas-limit", str(100_000_000 if a.packed or a.automine else 4_000_000_000),
             "--block-base-fee-per-gas", "0"]
    if a.trace:
        extra.append("--steps-tracing")  # debug_traceTransaction's opcode steps (needs the state history)
    elif not a.automine:
        extra.append("--prune-history")  # no per-block state snapshots: anvil stays fast with 175,500 licenses
    anvil = Anvil(block_time=1 if a.packed else None, extra_args=extra).start()
    miner_task = None
    try:
        deployer = LocalSigner(anvil.private_keys[0])
        manifest = await deploy_async(anvil.url, deployer, params)
        async with RpcClient(anvil.url, timeout=120) as rpc:
            c = manifest_contracts(rpc, manifest)
            if not (a.packed or a.automine):
                await rpc.request("evm_setAutomine", [False])  # deployed: from here blocks come on demand
                miner = OnDemandMiner(rpc)
                miner_task = asyncio.create_task(miner.run())
            sale, registry, protocol = c["NodeSale"], c["OperatorRegistry"], c["AuditProtocol"]
            rng = random.Random(16)
            ops = [LocalSigner(rng.randbytes(32)) for _ in range(n_ops)]
            await each(ops, lambda s: rpc.request("anvil_setBalance", [s.address, hex(10 * ETHER)]))
            senders = [Sender(rpc, s, 0) for s in ops]
            keeper = Sender(rpc, deployer, 0)  # settles the targets that need it (nonce read before each round)

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

            await each(range(n_ops), buy, 200)
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
            e0 = await view(protocol, "epochAt", head) + 1
            start = await view(protocol, "epochStartBlock", e0)
            await mine_to(rpc, start)
            all_ids = {s.signer.address: sorted(bought[s.signer.address]) for s in senders}
            # per epoch: operator address -> (salt, its listed votes), what its commitment opens to
            openings: dict[int, dict[str, tuple[bytes, list]]] = {}
            credited_ok = revealed_ok = True
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
                # reveal the epoch before, in this epoch's window: one transaction per operator
                if e - 1 in openings:
                    hashes = []
                    for s in senders:
                        if s.signer.address in openings[e - 1]:
                            salt, votes = openings[e - 1][s.signer.address]
                            hashes.append(await s.send(protocol.address, protocol.encode(
                                "reveal", e - 1, s.signer.address, salt, votes), 200_000 + 80_000 * len(votes)))
                    rows[e - 1]["reveal"] = await gas_of(rpc, hashes, "reveal")
                    rows[e - 1]["reveals"] = len(hashes)
                    revealed = await each(senders, lambda s: view(protocol, "hasRevealed", s.signer.address, e - 1))
                    n_revealed = sum(len(all_ids[s.signer.address]) for s, r in zip(senders, revealed) if r)
                    revealed_ok &= n_revealed == sum(per_op)
                    rows[e - 1]["revealed_licenses"] = n_revealed
                    # settle, after the window, only the targets that need it: a listed vote that is not OK
                    _, end = await view(protocol, "revealWindow", e - 1)
                    await mine_to(rpc, end + 1)  # the head is at least revealEnd: outcomeOf reads the settled view
                    needs = sorted({t for _salt, votes in openings[e - 1].values() for _l, t, v, _r in votes
                                    if v in (P.FAULT, P.UNREACHABLE)})
                    keeper.nonce = await rpc.get_transaction_count(deployer.address, "pending")
                    hashes = [await keeper.send(protocol.address, protocol.encode("settle", e - 1, t), 2_000_000)
                              for t in needs]
                    rows[e - 1]["settle"] = await gas_of(rpc, hashes, "settle")
                    rows[e - 1]["settled"] = len(hashes)
                    outcomes, seats, reveals = Counter(), Counter(), Counter()
                    for t in sorted({*range(0, a.targets, max(1, a.targets // 200)), *needs[:20]}):
                        outcomes[P.VERDICT_NAMES.get(await view(protocol, "outcomeOf", e - 1, t), "none")] += 1
                        seats[len(await view(protocol, "committee", e - 1, t))] += 1
                        reveals[(await view(protocol, "tally", e - 1, t))[3]] += 1
                    rows[e - 1]["outcomes"], rows[e - 1]["seats"] = outcomes, seats
                    rows[e - 1]["reveals_per_target"] = reveals
                    report(e - 1, rows[e - 1], sum(per_op), a)
                if e == e0 + a.epochs:
                    break
                # duties and commits of epoch e
                seed = await view(protocol, "seed", e)
                openings[e] = {}
                duty_seconds = 0.0
                with_duties = 0

                async def commit(s: Sender) -> str | None:
                    nonlocal duty_seconds, with_duties
                    ids = all_ids[s.signer.address]
                    listed, positions = await view(registry, "positionsAt", ids, e)
                    d0 = time.perf_counter()
                    duties = P.duties(seed, {lic: q - 1 for lic, q in zip(ids, positions) if q}, listed,
                                      a.committee, range(a.targets))
                    duty_seconds = max(duty_seconds, time.perf_counter() - d0)
                    with_duties += sum(1 for ts in duties.values() if ts)
                    # every vote OK but on the faulty targets: only those are listed, sorted by (target, license)
                    votes = sorted(((lic, t, P.FAULT, P.keccak(b"evidence %d %d %d" % (e, t, lic)))
                                    for lic, ts in duties.items() for t in ts if t < a.faults),
                                   key=lambda v: (v[1], v[0]))
                    salt = rng.randbytes(32)
                    openings[e][s.signer.address] = (salt, votes)
                    root = P.vote_commitment(e, s.signer.address, salt, votes)
                    return await s.send(protocol.address, protocol.encode("commit", e, root), 200_000)

                hashes = [h for h in await each(senders, commit) if h]
                rows.setdefault(e, {}).update(row)
                rows[e]["commit"] = await gas_of(rpc, hashes, "commit")
                rows[e]["duty_seconds"] = duty_seconds
                rows[e]["committed"] = len(hashes)
                rows[e]["with_duties"] = with_duties
                print(f"  epoch {e}: heartbeats and commits in {time.monotonic() - t1:.0f} s "
                      f"(duties of one operator: at most {duty_seconds * 1000:.0f} ms)")
                await mine_to(rpc, await view(protocol, "epochStartBlock", e + 1))
            print(f"every license credited in every epoch: {'yes' if credited_ok else 'NO'}; "
                  f"every license revealed in every epoch: {'yes' if revealed_ok else 'NO'}; "
                  f"total {time.monotonic() - t_start:.0f} s"
                  + (f"; anvil mined {miner.mined} blocks on demand" if miner_task else ""))
            if a.trace:
                for what in ("heartbeat", "commit", "reveal", "settle"):
                    if what in LAST_TX:
                        await print_breakdown(rpc, what, LAST_TX[what])
    finally:
        if miner_task is not None:
            miner_task.cancel()
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
    used = hex_int(receipt["gasUsed"])
    parts = ", ".join(f"{k} {v:,.0f}" for k, v in kinds.most_common())
    print(f"trace {what}: gasUsed {used:,} for 1 tx: 21,000 base and calldata {calldata:,.0f} "
          f"({len(data):,.0f} bytes); execution: {parts}")


def report(e: int, r: dict, n: int, a) -> None:
    total = r["heartbeat"] + r["commit"] + r["reveal"] + r["settle"]
    per_settle = f", {r['settle'] / r['settled']:,.0f}/settled target" if r["settled"] else ""
    print(f"epoch {e}: gas heartbeat {r['heartbeat']:,} ({r['heartbeat'] / n:,.0f}/license), "
          f"commit {r['commit']:,} ({r['commit'] / n:,.0f}/license, {r['committed']} operators, "
          f"{r['with_duties']} licenses with duties), reveal {r['reveal']:,} ({r['reveals']} operators, "
          f"{r['reveal'] / n:,.0f}/license), settle {r['settle']:,} ({r['settled']} of {a.targets} targets"
          f"{per_settle})")
    print(f"epoch {e}: presence + commit {(r['heartbeat'] + r['commit']) / n:,.0f} gas per license (goal <= 1,000); "
          f"total {total:,} gas = {total / BLOCK_GAS:.1f} blocks of 30M (goal <= 20), "
          f"{total / n:,.0f} per license; {r['revealed_licenses']} of {n} licenses revealed")
    print(f"epoch {e}: committee sizes of 200 sampled targets {dict(r['seats'])}; outcomes {dict(r['outcomes'])}; "
          f"reveals per target {dict(r['reveals_per_target'])}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--licenses", type=int, default=175_500)
    ap.add_argument("--operators", type=int, default=1_000)
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--committee", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--faults", type=int, default=0,
                    help="the first K targets are faulty: their seated licenses list FAULT and they are settled")
    ap.add_argument("--epoch-length", type=int, default=0,
                    help="default: 40 blocks on demand, 1,000 packed; 2 x (3 x operators + targets) with --automine")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--packed", action="store_true", help="a block a second with every pending transaction")
    mode.add_argument("--automine", action="store_true", help="one transaction per block (slow at full size)")
    ap.add_argument("--trace", action="store_true",
                    help="keep anvil's state history and print where the gas of the last heartbeat, commit, "
                         "reveal and settle went (opcode steps; small sizes only)")
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
