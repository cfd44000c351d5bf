"""The devnet: anvil on loopback, the contracts, a finished sale, operators with delegated licenses, funded
rewards, the targets of the plan, and one node process per operator.

Every key here is generated fresh (operators' keys go into encrypted keystores in the work directory) except
the deployer, which is anvil's first development account. Nothing is left running afterwards: node processes
and anvil are stopped on exit, and die with this process if it is killed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ..chain.contracts import Contract
from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..keys import save_key
from . import processes
from .anvil import Anvil, free_port, stop_process
from .cometbft_targets import CONSENSUS_HALT_AFTER_S, setup_consensus
from .deploy import deploy_async
from .evm_targets import setup_evm_targets
from .model_targets import setup_llms, setup_models
from .params import default_params
from .processes import OperatorProc
from .report import report as scenario_report
from .targets import TargetProc
from .zgs_targets import setup_storage

__all__ = ["ETHER", "Devnet", "Plan"]

ETHER = 10**18


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
    # Mine to the next epoch boundary as the nodes start, so the first audited epoch begins at once (long epochs:
    # no waiting out the partial epoch the devnet is in).
    jump_to_epoch: bool = False
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
    models: tuple[str, ...] = ()  # byte-model servers (modes of devnet/modelserver.py), one MODEL target each
    llms: tuple[str, ...] = ()  # served-LLM targets (modes of devnet/llmserver.py, or tee-*/gateway-* brokers)
    model_queries: int = 50
    min_reveals: int | None = None  # the protocol's minReveals (default: default_params.json's)
    consensus: bool = False  # the simulated CometBFT chains of CONSENSUS_* and their targets
    da_signers: tuple[str, ...] = ()  # reference 0G DA signers (modes of devnet/dasigner.py), one DA_SIGNER target each
    gas_bump_after_s: float | None = None  # nodes' gas.bump_after_s (None: the node's default)
    # One tier of exactly the owners' licenses, so their purchases sell the sale out: a finished sale, whose
    # governance counts its quorum on the licenses minted (the default tiers leave the sale open, and the quorum
    # on their planned 1000 licenses, which a few owners cannot reach).
    sell_out: bool = False


class Devnet:
    """A devnet of ``plan`` in ``workdir``: ``setup()`` makes the chain and its targets, ``start_nodes()`` the
    operators' nodes, ``stop()`` stops everything."""

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
        self.next_upload_block = 0  # the block at which upload_tick uploads the next file
        self.comet_sims: list = []  # CometBFT chain simulators (the consensus scenario)
        self.disperser = None  # the DA disperser (devnet/disperser.py), when there are DA signer targets
        self.nodes_stopped_block: int | None = None  # the block at which a scenario stopped its nodes
        self.da_entrance: str | None = None  # the DevnetDAEntrance address, likewise

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
        if p.sell_out:
            params["sale"]["tiers"] = [{"price": "0.1 ether", "supply": p.owners * p.licenses_per_owner}]
        params["protocol"]["epochLength"] = p.epoch_length
        params["protocol"]["revealBlocks"] = p.reveal_blocks
        params["protocol"]["committeeSize"] = p.committee_size
        if p.min_reveals is not None:
            params["protocol"]["minReveals"] = p.min_reveals
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
                self.operators.append(OperatorProc(signer.address, bps, d, free_port(), public_port=free_port()))
            # Each operator's metadata URI is where its node serves evidence to anyone (security review M6).
            await asyncio.gather(*(c["OperatorRegistry"].transact("registerOperator", op.commission_bps,
                                                                  op.public_url(), signer=s)
                                   for s, op in zip(ops, self.operators[-len(ops):])))
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
            # Licenses are listed from the epoch after their delegation (issue 16): start the next epoch now, so
            # the nodes find their licenses listed, and can be present, as soon as they start (an automining chain
            # would otherwise wait for transactions that only a present operator sends). The targets registered
            # below are enabled from the epoch after this one, which gives their processes an epoch to come up.
            protocol = c["AuditProtocol"]
            boundary = await protocol.call("epochStartBlock", await protocol.call("currentEpoch") + 1)
            head = await rpc.block_number()
            if boundary > head:
                await rpc.request("anvil_mine", [hex(boundary - head)])
        self.log(f"{len(self.operators)} operators, {len(self.owners)} owners, "
                 f"{sum(len(o.licenses) for o in self.operators)} licenses delegated; funded")
        self._password = password
        for i in p.lazy_operators:
            self.operators[i].lazy = True
        if p.targets or p.trap_mode:
            await setup_evm_targets(self, deployer)
        if p.storage:
            await setup_storage(self, deployer)
        if p.models:
            await setup_models(self, deployer)
        if p.llms:
            await setup_llms(self, deployer)
        if p.consensus:
            await setup_consensus(self, deployer)
        if p.da_signers:  # last: its disperser keeps sending blobs from here on
            from .da_targets import setup_da  # grpcio, protobuf, BN254: not for the node, which imports this module

            await setup_da(self, deployer)

    # ------------------------------------------------------------------------------------ nodes

    def start_nodes(self) -> None:
        for op in self.operators:
            self.start_node(op)
        self.log(f"started {len(self.operators)} node processes")

    def start_node(self, op: OperatorProc) -> None:
        processes.start_node(op, self.node_config(op))

    def node_config(self, op: OperatorProc) -> str:
        """The operator's node.toml: the plan's chain, audit and model settings, its keystore and port."""
        urls = ", ".join(f'"{u}"' for u in (*self.plan.dead_rpc_urls, self.anvil.url))
        return (
            f'data_dir = "data"\nlog_level = "{self.plan.log_level}"\n'
            f'[chain]\nrpc_urls = [{urls}]\nmanifest = "../deployment.json"\nrequest_timeout = 2\n'
            f"poll_interval = {self.plan.poll_interval}\n"
            '[operator]\nkeystore = "keystore"\npassword_file = "password"\n'
            f'[service]\nport = {op.port}\npublic_evidence = "127.0.0.1:{op.public_port}"\n'
            f"[audit]\ndeadline_s = {self.plan.audit_deadline_s}\nlazy = {'true' if op.lazy else 'false'}\n"
            f'model_baseline_sources = ["{self.workdir / "baselines"}"]\nmodel_queries = {self.plan.model_queries}\n'
            f"cometbft_halt_after_s = {CONSENSUS_HALT_AFTER_S}\n"
            + (f"[gas]\nbump_after_s = {self.plan.gas_bump_after_s}\nbump_after_blocks = 2\n"
               if self.plan.gas_bump_after_s is not None else "")
        )

    def stop_nodes(self) -> None:
        processes.stop_nodes(self.operators)

    def sample_rss(self) -> None:
        processes.sample_rss(self.operators)

    def stop(self) -> None:
        """Stop the nodes, the DA disperser, the target processes and servers, the chain simulators and anvil."""
        self.stop_nodes()
        if self.disperser is not None:
            self.disperser.stop()
        for t in self.targets:
            if t.process:
                stop_process(t.process)
            if t.server is not None:
                t.server.stop()
        for sim in self.comet_sims:
            sim.stop()
        if self.anvil is not None:
            self.anvil.stop()

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
        """The scenario report (devnet/report.py)."""
        return await scenario_report(self, rpc, scenario, epochs)
