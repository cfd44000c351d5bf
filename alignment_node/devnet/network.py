"""The devnet: anvil on loopback, the contracts, a finished sale, operators with delegated licenses, funded
rewards, and one node process per operator. ``devnet up`` shows it live until Ctrl-C; ``devnet scenario``
runs it headless for a number of epochs and prints one JSON report.

Every key here is generated fresh (operators' keys go into encrypted keystores in the work directory) except
the deployer, which is anvil's first development account. Nothing is left running afterwards: node processes
and anvil are stopped on exit, and die with this process if it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chain.contracts import Contract
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..keys import save_key
from ..chain.manifest import manifest_contracts
from .anvil import Anvil, _die_with_parent, free_port, stop_process
from .deploy import deploy_async
from .params import default_params

ETHER = 10**18
@dataclass(frozen=True)
class Scenario:
    epochs: int
    plan: dict
    crash_operator: int | None = None  # index of the operator whose node is SIGKILLed and restarted
    description: str = ""


SCENARIOS = {
    "presence": Scenario(3, {}, description="nodes heartbeat and earn; no targets"),
    "evm-faults": Scenario(
        6, {"targets": ("honest",) * 8 + ("down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage"),
            "trap_mode": "down"},
        description="8 honest EVM targets, one of each fault, a sealed trap; every fault must be flagged"),
    "lazy-auditor": Scenario(
        4, {"commissions_bps": (500, 1000, 1000, 2500), "owners": 4, "licenses_per_owner": 3,
            "targets": ("honest",) * 3 + ("down", "forked", "wrong-chain"), "trap_mode": "garbage",
            "lazy_operators": (0,), "committee_size": 16},
        description="one operator votes OK on everything without auditing; traps and disagreement cost it"),
    "storage-faults": Scenario(
        6, {"targets": (), "storage": ("honest", "honest:0/2", "honest:1/2", "slow", "behind:1/2", "drop:0/2",
                                       "corrupt", "wrong-index", "wrong-root:1/2", "empty", "wrong-flow",
                                       "lying-lag", "garbage"),
            "audit_deadline_s": 4.0},
        description="0G storage nodes: 5 honest (one slow, one behind and saying so), one of each fault; "
                    "every fault must be flagged, no honest node"),
    "model-faults": Scenario(
        4, {"targets": (), "models": ("honest", "honest", "temp-0.7", "int8", "noise-0.1", "evasive", "embed-other",
                                      "garbage"),
            "audit_deadline_s": 20.0, "block_time": 1.0, "committee_size": 3},
        description="AI model providers: 2 honest, substitutions (temperature 0.7, int8 weights, 0.1 % weight "
                    "noise, a fine-tuned checkpoint served except on audit-like prompts, another embedding model) and "
                    "garbage; every detectable one flagged (another seed and the fine-tuned checkpoint itself: "
                    "tests/test_model_audit.py)"),
    "consensus-faults": Scenario(
        6, {"targets": (), "consensus": True, "audit_deadline_s": 4.0},
        description="CometBFT validators and RPC endpoints of two simulated chains: 3 honest validators (one "
                    "missing a few blocks), one mostly offline, one double-signing (then jailed), two honest RPC "
                    "endpoints, one forging signatures, one serving other block ids, one garbage, one for "
                    "another chain; a second chain that halts. Every fault flagged, no honest target"),
    "crash": Scenario(
        8, {"targets": ("honest",) * 4 + ("down", "lagging")}, crash_operator=1,
        description="one node is SIGKILLed at random points and restarted; no reveal lost, no tx sent twice"),
}


@dataclass
class Plan:
    """The devnet's shape. Defaults: 3 operators with different commissions, 6 owners, 24 licenses."""

    commissions_bps: tuple[int, ...] = (500, 1000, 2500)
    owners: int = 6
    licenses_per_owner: int = 4
    block_time: float | None = 0.25  # None: anvil automines (tests)
    epoch_length: int = 30
    reveal_blocks: int = 15
    emission_per_epoch: int = 1000 * ETHER
    emission_reserve: int = 1_000_000 * ETHER
    fees: int = 10_000 * ETHER
    poll_interval: float = 0.5
    log_level: str = "info"
    dead_rpc_urls: tuple[str, ...] = ()  # tried before anvil by every node (failover drills)
    targets: tuple[str, ...] = ()  # fault-proxy mode of each EVM target ("honest", "down", "lagging", ...)
    trap_mode: str | None = None  # a sealed trap: a target in this mode whose known outcome the keeper seals
    reveal_trap_after_epochs: int = 0  # the keeper reveals the trap this many epochs after the nodes start
    lazy_operators: tuple[int, ...] = ()  # indices of operators whose node votes OK without auditing
    audit_deadline_s: float = 2.0
    committee_size: int = 5
    storage: tuple[str, ...] = ()  # reference storage nodes: "mode" or "mode:shardId/numShard"
    upload_every_blocks: int = 20  # while running, a new file is uploaded to the flow this often
    storage_file_sizes: tuple[int, ...] = ()  # files uploaded before the nodes start (default STORAGE_FILE_SIZES)
    models: tuple[str, ...] = ()  # devnet model servers (modes of devnet/modelserver.py), one MODEL target each
    model_queries: int = 50
    consensus: bool = False  # the simulated CometBFT chains of CONSENSUS_* and their targets


FAULTY_MODES = ("down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage")
# Proxy arguments per mode: far enough from honest behaviour that any honest check must see it.
MODE_ARGS = {"slow": ["--delay", "30"], "lagging": ["--k", "40"]}
TRAP_OUTCOME = {"down": 3, "slow": 3}  # UNREACHABLE; every other faulty mode is a FAULT (2)


# Reference storage node arguments per mode; "slow" and "behind" are honest.
STORAGE_MODE_ARGS = {"slow": ["--delay", "0.1"], "behind": ["--lag", "40"], "lying-lag": ["--lag", "60"],
                     "drop": ["--fraction", "0.5"]}
STORAGE_HONEST = ("honest", "slow", "behind")
# Model substitutions bench/model_power.py finds not reliably detectable (verdict power < 0.95 at alpha 0.01) at
# the scenario budget of 50 queries: none since the log-probability check and the fresh prompts (before them:
# int8, 4bit, noise-0.1, noise-1 and evasive). A scenario would not count such modes as missed faults.
MODEL_UNDETECTABLE: tuple[str, ...] = ()
# The consensus scenario: chain -> simulator settings, and the targets registered on it: (mode, validator
# index or None for an RPC-only target, endpoint name). Validator 5 joins late and 6 changes the set further.
CONSENSUS_CHAINS = {
    "devnet-comet-1": {"validators": 7, "block_time": 1.0, "seed": 1,
                       "faults": ["2=few-misses:0.05", "3=offline:0.8", "4=double-sign@15", "5=join@10"],
                       "endpoints": {"rpc0": "honest", "rpc1": "honest", "forge": "forge", "fork": "fork",
                                     "garbage": "garbage", "other": "wrong-chain"}},
    "devnet-comet-halt": {"validators": 4, "block_time": 1.0, "seed": 2, "faults": [], "halt_at": 12,
                          "endpoints": {"rpc0": "honest"}},
}
CONSENSUS_TARGETS = {
    "devnet-comet-1": [("honest", 0, "rpc0"), ("honest", 1, "rpc1"), ("few-misses", 2, "rpc0"),
                       ("offline", 3, "rpc1"), ("double-sign", 4, "rpc0"), ("rpc-honest", None, "rpc1"),
                       ("forge", None, "forge"), ("fork", None, "fork"), ("garbage", None, "garbage"),
                       ("wrong-chain", None, "other")],
    "devnet-comet-halt": [("halt", 0, "rpc0"), ("halt", 1, "rpc0")],
}
CONSENSUS_HONEST = ("honest", "few-misses", "rpc-honest")
CONSENSUS_HALT_AFTER_S = 10  # the devnet chains make a block a second
# Files uploaded before the nodes start: one byte, a few chunks, and files spanning several segments.
STORAGE_FILE_SIZES = (1, 3000, 300_000, 900_000, 1_700_000)


@dataclass
class TargetProc:
    id: int
    mode: str
    port: int
    trap: bool = False
    process: subprocess.Popen | None = None
    fault_started: float | None = None  # unix time the fault began (proxy start)
    kind: str = "EVM_RPC"
    shard: tuple[int, int] = (0, 1)
    server: Any = None  # a ServerProcess wrapper (model servers)

    @property
    def fault(self) -> str | None:
        honest = {"ZGS_STORAGE": STORAGE_HONEST, "COMETBFT": CONSENSUS_HONEST}.get(self.kind, ("honest",))
        return None if self.mode in honest else self.mode


def parse_storage_spec(spec: str) -> tuple[str, tuple[int, int]]:
    """"mode" or "mode:shardId/numShard" -> (mode, (shardId, numShard))."""
    mode, _, shard = spec.partition(":")
    if not shard:
        return mode, (0, 1)
    i, _, n = shard.partition("/")
    return mode, (int(i), int(n))


@dataclass
class OperatorProc:
    address: str
    commission_bps: int
    directory: Path
    port: int
    licenses: list[int] = field(default_factory=list)
    process: subprocess.Popen | None = None
    rss_kb_max: int | None = None
    lazy: bool = False
    kills: int = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size (VmHWM, kB) of a live process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Devnet:
    def __init__(self, plan: Plan, workdir: Path, log=print):
        self.plan = plan
        self.workdir = workdir
        self.log = log
        self.anvil: Anvil | None = None
        self.manifest: dict = {}
        self.operators: list[OperatorProc] = []
        self.owners: list[LocalSigner] = []
        self.license_owner: dict[int, str] = {}
        self.targets: list[TargetProc] = []
        self.trap_salt = secrets.token_bytes(32)
        self.started = time.monotonic()
        self.flow: Contract | None = None  # the devnet's 0G flow contract, when there are storage targets
        self.files_dir = workdir / "zgs-files"
        self.uploads: list = []  # zgs.flow.Submission of every uploaded file
        self._next_upload_block = 0
        self.comet_sims: list = []  # CometBFT chain simulators (the consensus scenario)

    # ---------------------------------------------------------------------------------- setup

    async def setup(self) -> None:
        p = self.plan
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.anvil = Anvil(block_time=p.block_time).start()
        url = self.anvil.url
        deployer = LocalSigner(self.anvil.private_keys[0])
        params = default_params()
        params["sale"]["allowlistStart"] = "+0"
        params["sale"]["publicStart"] = "+0"
        params["protocol"]["epochLength"] = p.epoch_length
        params["protocol"]["revealBlocks"] = p.reveal_blocks
        params["protocol"]["committeeSize"] = p.committee_size
        params["rewards"]["emissionPerEpoch"] = str(p.emission_per_epoch) + " wei"
        self.manifest = await deploy_async(url, deployer, params, out=self.workdir / "deployment.json")
        self.log(f"deployed at block {self.manifest['deployBlock']} on {url}")

        async with RpcClient(url) as rpc:
            c = manifest_contracts(rpc, self.manifest)
            password = secrets.token_hex(16)
            ops = [LocalSigner(secrets.token_bytes(32)) for _ in p.commissions_bps]
            self.owners = [LocalSigner(secrets.token_bytes(32)) for _ in range(p.owners)]
            for acct in ops + self.owners:
                await rpc.request("anvil_setBalance", [acct.address, hex(1000 * ETHER)])
            # Operators: keystore + password file + config, then register.
            for signer, bps in zip(ops, p.commissions_bps):
                d = self.workdir / f"operator-{signer.address[2:10].lower()}"
                (d / "keystore").mkdir(parents=True, exist_ok=True)
                save_key(d / "keystore", signer._key.secret, password)
                pw = d / "password"
                pw.write_text(password + "\n")
                pw.chmod(0o600)
                self.operators.append(OperatorProc(signer.address, bps, d, free_port()))
            await asyncio.gather(*(c["OperatorRegistry"].transact("registerOperator", bps, "devnet operator",
                                                                  signer=s) for s, bps in zip(ops, p.commissions_bps)))
            # Owners buy licenses in the sale, then delegate them round-robin to the operators.
            sale = c["NodeSale"]

            async def buy(owner: LocalSigner) -> list[int]:
                cost = await sale.call("quote", p.licenses_per_owner)
                receipt = await sale.transact("buy", p.licenses_per_owner, cost, "", [], 0, signer=owner, value=cost)
                ids = []
                transfer = c["AlignmentLicense"].abi.event("Transfer")
                for log in receipt["logs"]:
                    if log["topics"][0] == "0x" + transfer.topic.hex():
                        ids.append(int(log["topics"][3], 16))
                return ids

            bought = []
            for owner in self.owners:  # one at a time: tier prices depend on the order
                bought.append(await buy(owner))
            for i, (owner, ids) in enumerate(zip(self.owners, bought)):
                op = self.operators[i % len(self.operators)]
                op.licenses.extend(ids)
                for token_id in ids:
                    self.license_owner[token_id] = owner.address
            await asyncio.gather(*(c["OperatorRegistry"].transact(
                "delegate", ids, self.operators[i % len(self.operators)].address, signer=owner)
                for i, (owner, ids) in enumerate(zip(self.owners, bought))))
            await asyncio.gather(*(c["OperatorRegistry"].transact("approve", sorted(op.licenses), signer=s)
                                   for s, op in zip(ops, self.operators)))
            # Rewards: an emission reserve and a fee deposit.
            token, vault = c["RewardToken"], c["RewardVault"]
            total = p.emission_reserve + p.fees
            await token.transact("mint", deployer.address, total, signer=deployer)
            await token.transact("approve", vault.address, total, signer=deployer)
            await vault.transact("fundEmission", p.emission_reserve, signer=deployer)
            await vault.transact("depositFees", p.fees, signer=deployer)
        self.log(f"{len(self.operators)} operators, {len(self.owners)} owners, "
                 f"{sum(len(o.licenses) for o in self.operators)} licenses delegated; funded")
        self._password = password
        for i in p.lazy_operators:
            self.operators[i].lazy = True
        if p.targets or p.trap_mode:
            await self.setup_targets(deployer)
        if p.storage:
            await self.setup_storage(deployer)
        if p.models:
            await self.setup_models(deployer)
        if p.consensus:
            await self.setup_consensus(deployer)

    async def setup_targets(self, keeper: LocalSigner) -> None:
        """One fault proxy process per target in front of anvil, registered by the trap keeper (the
        deployer on the devnet); the trap is sealed with its known outcome."""
        from eth_abi import encode

        from ..protocol import trap_seal

        modes = [(m, False) for m in self.plan.targets]
        if self.plan.trap_mode:
            modes.insert(secrets.randbelow(len(modes) + 1), (self.plan.trap_mode, True))
        async with RpcClient(self.anvil.url) as rpc:
            c = manifest_contracts(rpc, self.manifest)
            genesis = await rpc.get_block(0)
            identity = encode(["uint256", "bytes32"], [await rpc.chain_id(), bytes.fromhex(genesis["hash"][2:])])
            head = await rpc.block_number()
            registry = c["TargetRegistry"]
            for mode, trap in modes:
                port = free_port()
                receipt = await registry.transact("addTarget", 1, f"http://127.0.0.1:{port}", identity, signer=keeper)
                ev = registry.abi.event("TargetAdded")
                tid = next(int(log["topics"][1], 16) for log in receipt["logs"]
                           if log["topics"][0] == "0x" + ev.topic.hex())
                self.targets.append(TargetProc(tid, mode, port, trap))
                if trap:
                    outcome = TRAP_OUTCOME.get(mode, 2)
                    await registry.transact("sealTrap", tid, trap_seal(tid, outcome, self.trap_salt), signer=keeper)
        for t in self.targets:
            self.start_target(t, head)
        self.log(f"{len(self.targets)} targets: " + ", ".join(f"{t.id}:{t.mode}{'(trap)' if t.trap else ''}"
                                                              for t in self.targets))

    async def setup_storage(self, keeper: LocalSigner) -> None:
        """The flow contract, a few files uploaded, one reference storage node process per storage target,
        each registered (ZGS_STORAGE, identity = chain id + flow address) by the keeper."""
        from ..zgs.flow import flow_identity
        from .storage import deploy_flow

        self.files_dir.mkdir(parents=True, exist_ok=True)
        async with RpcClient(self.anvil.url) as rpc:
            self.flow = await deploy_flow(rpc, keeper)
            for size in self.plan.storage_file_sizes or STORAGE_FILE_SIZES:
                await self._upload(rpc, keeper, size)
            identity = flow_identity(await rpc.chain_id(), self.flow.address)
            registry = manifest_contracts(rpc, self.manifest)["TargetRegistry"]
            ev = registry.abi.event("TargetAdded")
            for spec in self.plan.storage:
                mode, shard = parse_storage_spec(spec)
                port = free_port()
                receipt = await registry.transact("addTarget", 3, f"http://127.0.0.1:{port}", identity, signer=keeper)
                tid = next(int(log["topics"][1], 16) for log in receipt["logs"]
                           if log["topics"][0] == "0x" + ev.topic.hex())
                self.targets.append(TargetProc(tid, mode, port, kind="ZGS_STORAGE", shard=shard))
            self._next_upload_block = await rpc.block_number() + self.plan.upload_every_blocks
        for t in self.targets:
            if t.kind == "ZGS_STORAGE":
                self.start_storage_node(t)
        self.log(f"flow {self.flow.address}: {len(self.uploads)} files; {len(self.plan.storage)} storage targets: "
                 + ", ".join(f"{t.id}:{t.mode}" + (f"[{t.shard[0]}/{t.shard[1]}]" if t.shard[1] > 1 else "")
                             for t in self.targets if t.kind == "ZGS_STORAGE"))

    async def setup_models(self, keeper: LocalSigner) -> None:
        """A baseline bundle of the devnet model (its hash is every MODEL target's identity), one model server
        process per MODEL target, each registered by the keeper."""
        from ..devnet.modelserver import ModelServerProcess
        from ..models import baseline as B

        t0 = time.monotonic()
        bundle = await asyncio.to_thread(B.make_baseline, 0, None, 100)
        h, _ = B.save(bundle, self.workdir / "baselines")
        self.log(f"baseline {h} made in {time.monotonic() - t0:.1f} s")
        servers = [ModelServerProcess(m, startup_timeout=300) for m in self.plan.models]
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        async with RpcClient(self.anvil.url) as rpc:
            registry = manifest_contracts(rpc, self.manifest)["TargetRegistry"]
            ev = registry.abi.event("TargetAdded")
            for mode, server in zip(self.plan.models, servers):
                receipt = await registry.transact("addTarget", 5, server.url, bytes.fromhex(h[2:]), signer=keeper)
                tid = next(int(log["topics"][1], 16) for log in receipt["logs"]
                           if log["topics"][0] == "0x" + ev.topic.hex())
                t = TargetProc(tid, mode, server.port, kind="MODEL")
                t.server = server
                t.fault_started = time.time() if t.fault else None
                self.targets.append(t)
        self.log(f"{len(servers)} model targets: " + ", ".join(f"{t.id}:{t.mode}" for t in self.targets
                                                                if t.kind == "MODEL"))

    async def setup_consensus(self, keeper: LocalSigner) -> None:
        """One chain simulator process per chain of CONSENSUS_CHAINS and its targets (COMETBFT, identity
        ``<chain id>/<validator address>`` or ``<chain id>`` for an RPC endpoint), registered by the keeper."""
        from ..audits.cometbft import comet_identity
        from .cometsim import CometSimProcess

        sims = {chain: CometSimProcess(chain_id=chain, **cfg) for chain, cfg in CONSENSUS_CHAINS.items()}
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in sims.values()))
        self.comet_sims = list(sims.values())
        async with RpcClient(self.anvil.url) as rpc:
            registry = manifest_contracts(rpc, self.manifest)["TargetRegistry"]
            ev = registry.abi.event("TargetAdded")
            for chain, specs in CONSENSUS_TARGETS.items():
                sim = sims[chain]
                addresses = sim.validator_addresses()
                for mode, index, endpoint in specs:
                    identity = comet_identity(chain, None if index is None else addresses[index])
                    receipt = await registry.transact("addTarget", 2, sim.endpoint_url(endpoint), identity,
                                                      signer=keeper)
                    tid = next(int(log["topics"][1], 16) for log in receipt["logs"]
                               if log["topics"][0] == "0x" + ev.topic.hex())
                    t = TargetProc(tid, mode, sim.port, kind="COMETBFT")
                    t.fault_started = time.time() if t.fault else None
                    self.targets.append(t)
        self.log("consensus targets: " + ", ".join(f"{t.id}:{t.mode}" for t in self.targets if t.kind == "COMETBFT"))

    async def _upload(self, rpc: RpcClient, signer: LocalSigner, size: int) -> None:
        from .storage import random_file, upload

        data = random_file(secrets.SystemRandom(), size)
        flow = Contract(rpc, self.flow.address, self.flow.abi)  # bound to this client
        self.uploads.append(await upload(flow, signer, data, self.files_dir))

    async def upload_tick(self, rpc: RpcClient) -> None:
        """Upload a new file every ``upload_every_blocks`` blocks (storage nodes must keep up with the flow)."""
        if self.flow is None:
            return
        head = await rpc.block_number()
        if head >= self._next_upload_block:
            await self._upload(rpc, LocalSigner(self.anvil.private_keys[0]),
                               secrets.choice((5_000, 120_000, 400_000, 700_000)))
            self._next_upload_block = head + self.plan.upload_every_blocks

    def start_storage_node(self, t: TargetProc) -> None:
        t.process = subprocess.Popen(
            [sys.executable, "-m", "alignment_node.devnet.zgsnode", "--rpc", self.anvil.url, "--flow",
             self.flow.address, "--files", str(self.files_dir), "--port", str(t.port), "--mode", t.mode,
             "--shard-id", str(t.shard[0]), "--num-shard", str(t.shard[1]), *STORAGE_MODE_ARGS.get(t.mode, [])],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"target-{t.id}.err", "ab"),
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        t.fault_started = time.time() if t.fault else None

    def start_target(self, t: TargetProc, head: int) -> None:
        args = list(MODE_ARGS.get(t.mode, []))
        if t.mode == "forked":
            args += ["--height", str(head)]
        t.process = subprocess.Popen(
            [sys.executable, "-m", "alignment_node.devnet.faultproxy", "--upstream", self.anvil.url,
             "--port", str(t.port), "--mode", t.mode, *args],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"target-{t.id}.err", "ab"),
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        t.fault_started = time.time() if t.fault else None

    async def reveal_trap(self) -> None:
        trap = next((t for t in self.targets if t.trap), None)
        if trap is None:
            return
        keeper = LocalSigner(self.anvil.private_keys[0])
        async with RpcClient(self.anvil.url) as rpc:
            registry = manifest_contracts(rpc, self.manifest)["TargetRegistry"]
            if await registry.call("trapOutcome", trap.id) == 0:
                await registry.transact("revealTrap", trap.id, TRAP_OUTCOME.get(trap.mode, 2), self.trap_salt,
                                        signer=keeper)
                self.log(f"trap {trap.id} revealed")

    # ------------------------------------------------------------------------------------ nodes

    def start_nodes(self) -> None:
        for op in self.operators:
            self.start_node(op)
        self.log(f"started {len(self.operators)} node processes")

    def start_node(self, op: OperatorProc) -> None:
        config = op.directory / "node.toml"
        urls = ", ".join(f'"{u}"' for u in (*self.plan.dead_rpc_urls, self.anvil.url))
        config.write_text(
            f'data_dir = "data"\nlog_level = "{self.plan.log_level}"\n'
            f'[chain]\nrpc_urls = [{urls}]\nmanifest = "../deployment.json"\nrequest_timeout = 2\n'
            f"poll_interval = {self.plan.poll_interval}\n"
            '[operator]\nkeystore = "keystore"\npassword_file = "password"\n'
            f"[service]\nport = {op.port}\n"
            f"[audit]\ndeadline_s = {self.plan.audit_deadline_s}\nlazy = {'true' if op.lazy else 'false'}\n"
            f'model_baseline_sources = ["{self.workdir / "baselines"}"]\nmodel_queries = {self.plan.model_queries}\n'
            f"cometbft_halt_after_s = {CONSENSUS_HALT_AFTER_S}\n"
        )
        out = open(op.directory / "node.out", "ab")
        op.process = subprocess.Popen(
            [sys.executable, "-m", "alignment_node.cli", "start", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        out.close()

    def kill_node(self, op: OperatorProc) -> None:
        """SIGKILL a node (crash drill), keeping its peak memory reading."""
        if op.process and op.process.poll() is None:
            op.rss_kb_max = max(op.rss_kb_max or 0, vm_hwm_kb(op.process.pid) or 0)
            op.process.send_signal(signal.SIGKILL)
            op.process.wait()
            op.kills += 1

    def node_health(self, op: OperatorProc) -> tuple[int | None, dict]:
        try:
            with urllib.request.urlopen(op.url() + "/health", timeout=2) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return None, {}

    def stop(self) -> None:
        self.stop_nodes()
        for t in self.targets:
            if t.process:
                stop_process(t.process)
            if t.server is not None:
                t.server.stop()
        for sim in self.comet_sims:
            sim.stop()
        if self.anvil is not None:
            self.anvil.stop()

    def stop_nodes(self) -> None:
        for op in self.operators:
            proc = op.process
            if proc is None:
                continue
            if proc.poll() is None:
                op.rss_kb_max = max(op.rss_kb_max or 0, vm_hwm_kb(proc.pid) or 0) or None
                proc.terminate()
        for op in self.operators:
            proc = op.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def sample_rss(self) -> None:
        for op in self.operators:
            if op.process and op.process.poll() is None:
                rss = vm_hwm_kb(op.process.pid)
                if rss:
                    op.rss_kb_max = max(op.rss_kb_max or 0, rss)

    # ---------------------------------------------------------------------------------- reading

    async def wait_for_epoch(self, rpc: RpcClient, protocol: Contract, epoch: int, tick=None) -> None:
        while await protocol.call("currentEpoch") < epoch:
            self.sample_rss()
            for op in self.operators:
                if op.process and op.process.poll() is not None:
                    raise RuntimeError(f"node of {op.address} exited with {op.process.returncode}; see "
                                       f"{op.directory / 'node.out'}")
            if tick:
                await tick()
            await asyncio.sleep(0.5)

    async def report(self, rpc: RpcClient, scenario: str, epochs: list[int]) -> dict:
        """The scenario report, read from the chain (events, transactions), not from the nodes."""
        from ..protocol import VERDICT_NAMES

        c = manifest_contracts(rpc, self.manifest)
        vault, protocol = c["RewardVault"], c["AuditProtocol"]
        start = int(self.manifest["deployBlock"])
        all_ids = sorted(self.license_owner)
        credited: dict[int, dict[int, int]] = {i: {} for i in all_ids}
        commission: dict[str, int] = {}
        for ev in await vault.events("Credited", start, "latest"):
            credited.setdefault(ev["tokenId"], {})[ev["epoch"]] = ev["toLicense"]
            commission[ev["operator"].lower()] = commission.get(ev["operator"].lower(), 0) + ev["commission"]
        penalties: dict[int, list] = {i: [] for i in all_ids}
        for ev in await vault.events("Penalized", start, "latest"):
            penalties.setdefault(ev["tokenId"], []).append(ev)
        heartbeats: dict[str, int] = {}
        for ev in await protocol.events("Heartbeat", start, "latest"):
            heartbeats[ev["operator"].lower()] = heartbeats.get(ev["operator"].lower(), 0) + 1
        # Targets: outcome per epoch, first flag, seconds from the fault's start to its first flag.
        outcomes: dict[int, dict[int, str]] = {}
        for ev in await protocol.events("TargetSettled", start, "latest"):
            outcomes.setdefault(ev["targetId"], {})[ev["epoch"]] = VERDICT_NAMES.get(ev["outcome"], str(ev["outcome"]))
        first_flag: dict[int, tuple[int, int]] = {}
        for ev in await protocol.events("ViolationFlagged", start, "latest"):
            if ev["targetId"] not in first_flag:
                block = await rpc.get_block(ev.block_number)
                first_flag[ev["targetId"]] = (ev["epoch"], int(block["timestamp"], 16))
        targets = []
        for t in sorted(self.targets, key=lambda t: t.id):
            flagged = first_flag.get(t.id)
            targets.append({
                "id": t.id, "kind": t.kind, "mode": t.mode, "fault": t.fault, "trap": t.trap,
                **({"shard": list(t.shard)} if t.kind == "ZGS_STORAGE" else {}),
                "detectable": not (t.kind == "MODEL" and t.mode in MODEL_UNDETECTABLE),
                "outcomes": {str(e): o for e, o in sorted(outcomes.get(t.id, {}).items())},
                "first_flagged_epoch": flagged[0] if flagged else None,
                "seconds_to_flag": (flagged[1] - int(t.fault_started)) if flagged and t.fault_started else None,
            })
        missed_faults = [t["id"] for t in targets if t["fault"] and t["detectable"] and t["first_flagged_epoch"] is None]
        false_flags = [t["id"] for t in targets if not t["fault"] and t["first_flagged_epoch"] is not None]
        # Reveals and duplicates, per operator, from the chain.
        committed: dict[tuple[int, int], int] = {}
        for ev in await protocol.events("Committed", start, "latest"):
            committed[(ev["epoch"], ev["license"])] = committed.get((ev["epoch"], ev["license"]), 0) + 1
        revealed = {(ev["epoch"], ev["license"]) for ev in await protocol.events("Revealed", start, "latest")}
        last_closed = await protocol.call("currentEpoch") - 2  # reveal windows of older epochs are over
        first_block = await protocol.call("epochStartBlock", epochs[0])
        last_block = await protocol.call("epochStartBlock", epochs[-1] + 1)
        reverted, gas = await self._operator_txs(rpc, start, range(first_block, last_block))
        hb_per_epoch: dict[tuple[str, int], int] = {}
        for ev in await protocol.events("Heartbeat", start, "latest"):
            key = (ev["operator"].lower(), ev["epoch"])
            hb_per_epoch[key] = hb_per_epoch.get(key, 0) + 1
        licenses = []
        for op in self.operators:
            for token_id in sorted(op.licenses):
                got = credited.get(token_id, {})
                pens = penalties.get(token_id, [])
                penalized = sum(p["amount"] for p in pens)
                total = sum(got.get(e, 0) for e in epochs)
                licenses.append({
                    "id": token_id, "operator": op.address, "owner": self.license_owner[token_id],
                    "credited": str(total), "credited_epochs": sorted(e for e in got if e in epochs),
                    "missing_epochs": [e for e in epochs if e not in got],
                    "penalties": len(pens), "penalized_wei": str(penalized), "net_wei": str(total - penalized),
                    "penalty_kinds": sorted({p["kind"] for p in pens}),
                })
        operators = []
        for op in self.operators:
            mine = set(op.licenses)
            missed = sorted({e for (e, lic) in committed if lic in mine and e <= last_closed
                             and (e, lic) not in revealed})
            dups = sum(n - 1 for (e, lic), n in committed.items() if lic in mine and n > 1)
            dups += sum(n - 1 for (who, _e), n in hb_per_epoch.items() if who == op.address.lower() and n > 1)
            dups += reverted.get(op.address.lower(), 0)
            operators.append({
                "address": op.address, "commission_bps": op.commission_bps, "licenses": len(op.licenses),
                "lazy": op.lazy, "kills": op.kills,
                "heartbeats": heartbeats.get(op.address.lower(), 0),
                "commission_wei": str(commission.get(op.address.lower(), 0)),
                "commission_claimable_wei": str(await vault.call("commissionOf", op.address)),
                "missed_reveals": sum(1 for (e, lic) in committed if lic in mine and e <= last_closed
                                      and (e, lic) not in revealed),
                "missed_reveal_epochs": missed,
                "duplicate_txs": dups,
                "reverted_txs": reverted.get(op.address.lower(), 0),
                "gas_used": gas.get(op.address.lower(), 0),
                "gas_per_license_epoch": gas.get(op.address.lower(), 0) // max(1, len(op.licenses) * len(epochs)),
                "rss_kb_max": op.rss_kb_max,
            })
        return {
            "scenario": scenario,
            "epochs": epochs,
            "targets": targets,
            "licenses": licenses,
            "operators": operators,
            "files_uploaded": len(self.uploads),
            "missed_faults": missed_faults,
            "false_flags": false_flags,
            "all_credited": all(not entry["missing_epochs"] for entry in licenses),
        }

    async def _operator_txs(self, rpc: RpcClient, start: int, gas_blocks: range) -> tuple[dict, dict]:
        """Per operator address: reverted transactions since deployment, and gas used in ``gas_blocks`` (the
        scenario's epochs: each holds one heartbeat, commit, reveal of the epoch before, settlements)."""
        ops = {op.address.lower() for op in self.operators}
        reverted: dict[str, int] = {}
        gas: dict[str, int] = {}
        head = await rpc.block_number()
        for number in range(start, head + 1):
            block = await rpc.get_block(number, True)
            for tx in block["transactions"] if block else []:
                sender = tx["from"].lower()
                if sender in ops:
                    receipt = await rpc.get_transaction_receipt(tx["hash"])
                    if receipt and int(receipt["status"], 16) == 0:
                        reverted[sender] = reverted.get(sender, 0) + 1
                    if receipt and number in gas_blocks:
                        gas[sender] = gas.get(sender, 0) + int(receipt["gasUsed"], 16)
        return reverted, gas


# ------------------------------------------------------------------------------------------ commands


def add_devnet_args(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start anvil, deploy, sell, delegate, fund, run the nodes; live view until Ctrl-C")
    sc = sub.add_parser("scenario", help="run a scenario headless for some epochs and print a JSON report")
    sc.add_argument("name", choices=sorted(SCENARIOS),
                    help="; ".join(f"{k}: {v.description}" for k, v in SCENARIOS.items()).replace("%", "%%"))
    sc.add_argument("--epochs", type=int, default=None, help="completed epochs to run (default: the scenario's)")
    sc.add_argument("--json", action="store_true", help="print the report as JSON (the default output)")
    for p in (up, sc):
        p.add_argument("--workdir", help="directory for keys, configs and node data (default: a temporary one)")
        p.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
        p.add_argument("--block-time", type=float, default=Plan.block_time, help="seconds per block (default 0.25)")
        p.add_argument("--operators", type=int, default=len(Plan.commissions_bps),
                       help="operators (commissions 5%%, 10%%, 25%%, then 15%%; default 3)")
        p.add_argument("--owners", type=int, default=Plan.owners, help="license owners (default 6)")
        p.add_argument("--licenses-per-owner", type=int, default=Plan.licenses_per_owner,
                       help="licenses each owner buys, at most 50 (default 4)")


def _workdir(args) -> tuple[Path, bool]:
    if args.workdir:
        return Path(args.workdir), False
    return Path(tempfile.mkdtemp(prefix="alignment-devnet-")), not args.keep


def plan_from_args(args) -> Plan:
    if not 1 <= args.operators <= 20 or not 1 <= args.owners or not 1 <= args.licenses_per_owner <= 50:
        from ..errors import CliError

        raise CliError("need 1-20 operators, at least 1 owner and 1-50 licenses per owner")
    base = (500, 1000, 2500)
    commissions = tuple(base[i] if i < len(base) else 1500 for i in range(args.operators))
    return Plan(commissions_bps=commissions, owners=args.owners, licenses_per_owner=args.licenses_per_owner,
                block_time=args.block_time)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def scenario(args) -> int:
    spec = SCENARIOS[args.name]
    epochs_n = args.epochs if args.epochs is not None else spec.epochs
    if epochs_n < 1:
        _stderr("error: --epochs must be at least 1")
        return 1
    plan = plan_from_args(args)
    for key, value in spec.plan.items():
        setattr(plan, key, value)
    workdir, remove = _workdir(args)
    net = Devnet(plan, workdir, log=_stderr)
    t0 = time.monotonic()

    async def run() -> dict:
        import random

        await net.setup()
        setup_s = time.monotonic() - t0
        net.start_nodes()
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            nodes_epoch = await protocol.call("currentEpoch")
            first = nodes_epoch + 1  # the epoch the nodes were started in is partial
            epochs = list(range(first, first + epochs_n))
            first_credit_s = None
            trap_revealed = False
            victim = net.operators[spec.crash_operator] if spec.crash_operator is not None else None
            next_kill = time.monotonic() + random.uniform(1.5, 4.0)

            async def tick():
                nonlocal first_credit_s, trap_revealed, next_kill
                if first_credit_s is None and await vault.events("Credited", int(net.manifest["deployBlock"])):
                    first_credit_s = time.monotonic() - t0
                now_epoch = await protocol.call("currentEpoch")
                if not trap_revealed and now_epoch >= nodes_epoch + plan.reveal_trap_after_epochs:
                    await net.reveal_trap()
                    trap_revealed = True
                await net.upload_tick(rpc)
                if victim is not None and now_epoch <= epochs[-1] and time.monotonic() >= next_kill:
                    net.kill_node(victim)
                    await asyncio.sleep(random.uniform(0.1, 0.6))
                    net.start_node(victim)
                    next_kill = time.monotonic() + random.uniform(2.0, 6.0)

            # Two more epochs: the last one's reveals and settlement happen in the next.
            await net.wait_for_epoch(rpc, protocol, epochs[-1] + 2, tick=tick)
            net.sample_rss()
            net.stop_nodes()
            # Book every ended epoch's credit (it is otherwise booked lazily) so events show all of it.
            deployer = LocalSigner(net.anvil.private_keys[0])
            await vault.transact("settleLicenses", sorted(net.license_owner), signer=deployer)
            report = await net.report(rpc, args.name, epochs)
        report["timing"] = {"setup_seconds": round(setup_s, 2),
                            "first_credit_seconds": round(first_credit_s, 2) if first_credit_s else None,
                            "total_seconds": round(time.monotonic() - t0, 2)}
        flagged = sorted(t["seconds_to_flag"] for t in report["targets"] if t["seconds_to_flag"] is not None)
        report["timing"]["median_seconds_to_flag"] = flagged[len(flagged) // 2] if flagged else None
        return report

    try:
        report = asyncio.run(run())
    except Exception as exc:  # one clear line; nothing left running
        _stderr(f"error: scenario {args.name} could not complete: {exc.__class__.__name__}: {exc}")
        return 1
    finally:
        net.stop()
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
    report["leftover_processes"] = [p.process.pid for p in [*net.operators, *net.targets]
                                    if p.process and p.process.poll() is None]
    print(json.dumps(report, sort_keys=True))
    return 0


# What `devnet up` audits: a mix of honest and faulty EVM targets and one sealed trap, revealed after 2 epochs.
UP_TARGETS = {"targets": ("honest",) * 5 + ("down", "lagging", "forked", "garbage"), "trap_mode": "wrong-chain",
              "reveal_trap_after_epochs": 2,
              "storage": ("honest", "honest:0/2", "honest:1/2", "behind", "drop:0/2", "corrupt", "lying-lag"),
              "consensus": True,
              "audit_deadline_s": 3.0}


async def _targets_view(net: Devnet, rpc: RpcClient, c: dict) -> list[str]:
    """Live view lines: each target's latest outcome, the flagged violations with evidence links, penalties."""
    from ..protocol import VERDICT_NAMES

    protocol, vault = c["AuditProtocol"], c["RewardVault"]
    start = int(net.manifest["deployBlock"])
    latest: dict[int, tuple[int, str]] = {}
    for ev in await protocol.events("TargetSettled", start):
        latest[ev["targetId"]] = (ev["epoch"], VERDICT_NAMES.get(ev["outcome"], "?"))
    lines = [f"{'target':>6} {'kind':11} {'mode':12} {'last outcome':>22}"]
    for t in sorted(net.targets, key=lambda t: t.id):
        e, outcome = latest.get(t.id, (None, "-"))
        lines.append(f"{t.id:>6} {t.kind:11} {t.mode + (' (trap)' if t.trap else ''):12} "
                     f"{(outcome + f' (epoch {e})') if e is not None else '-':>22}")
    flags = await protocol.events("ViolationFlagged", start)
    node = net.operators[0].url() if net.operators else ""
    lines.append(f"violations flagged: {len(flags)} (latest 5, evidence on any node):")
    for ev in flags[-5:]:
        lines.append(f"  epoch {ev['epoch']} target {ev['targetId']} {VERDICT_NAMES.get(ev['outcome'], '?')}: "
                     f"{node}/evidence/0x{ev['evidenceRoot'].hex()}")
    penalties: dict[int, int] = {}
    for ev in await vault.events("Penalized", start):
        penalties[ev["kind"]] = penalties.get(ev["kind"], 0) + 1
    lines.append("penalties: " + (", ".join(f"{ {1: 'miss', 2: 'disagree', 3: 'trap'}.get(k, k)} {n}"
                                            for k, n in sorted(penalties.items())) or "none"))
    return lines


def up(args) -> int:
    """Run the devnet with a live view until Ctrl-C, then stop everything it started."""
    plan = plan_from_args(args)
    for key, value in UP_TARGETS.items():
        setattr(plan, key, value)
    workdir, remove = _workdir(args)
    net = Devnet(plan, workdir, log=_stderr)
    t0 = time.monotonic()
    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)

    async def live() -> None:
        await net.setup()
        net.start_nodes()
        portal = f"{net.operators[0].url()}/portal"
        _stderr(f"portal: {portal} (connect a wallet to chain {net.manifest['chainId']} at {net.anvil.url}, e.g. with "
                "one of anvil's well-known development accounts)")
        first_credit = None
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            start_epoch = await protocol.call("currentEpoch")
            trap_revealed = False
            while not stop:
                net.sample_rss()
                epoch = await protocol.call("currentEpoch")
                if not trap_revealed and epoch >= start_epoch + plan.reveal_trap_after_epochs:
                    await net.reveal_trap()
                    trap_revealed = True
                await net.upload_tick(rpc)
                head = await rpc.block_number()
                if first_credit is None and await vault.events("Credited", int(net.manifest["deployBlock"])):
                    first_credit = time.monotonic() - t0
                lines = [
                    f"alignment devnet  {net.anvil.url}  block {head}  epoch {epoch}  "
                    f"active licenses {await vault.call('activeCount', epoch)} "
                    f"(last epoch {await vault.call('activeCount', max(epoch - 1, 0))})  portal {portal}",
                    f"emission reserve {await vault.call('emissionReserve') / ETHER:,.2f}  "
                    f"budget pool {await vault.call('pool') / ETHER:,.2f}  "
                    f"first credit after {first_credit:.1f}s" if first_credit else "waiting for the first credit...",
                    f"{'operator':44} {'comm':>5} {'lic':>4} {'active':>6} {'commission':>12} {'health':>8} {'rss MB':>7}",
                ]
                for op in net.operators:
                    active = 0
                    for token_id in op.licenses:
                        presence = await vault.call("presence", token_id)
                        active += presence[0] == epoch + 1
                    status, _ = net.node_health(op)
                    lines.append(
                        f"{op.address:44} {op.commission_bps / 100:>4.1f}% {len(op.licenses):>4} {active:>6} "
                        f"{await vault.call('commissionOf', op.address) / ETHER:>12,.2f} {status or 'down':>8} "
                        f"{(op.rss_kb_max or 0) / 1024:>7.1f}")
                owners_total = 0
                for token_id in net.license_owner:
                    owners_total += await vault.call("claimable", token_id)
                lines.append(f"licenses' claimable total {owners_total / ETHER:,.2f}")
                lines.extend(await _targets_view(net, rpc, c))
                lines.append("(Ctrl-C stops everything)")
                if sys.stdout.isatty():
                    sys.stdout.write("\x1b[2J\x1b[H")
                print("\n".join(lines), flush=True)
                await asyncio.sleep(2)

    try:
        asyncio.run(live())
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        _stderr(f"error: devnet failed: {exc.__class__.__name__}: {exc}")
        return 1
    finally:
        net.stop()
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
        _stderr("devnet stopped; nothing left running")
    return 0
