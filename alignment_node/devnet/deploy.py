"""Deploy and wire the whole protocol, exactly as contracts/test/utils/Deployed.sol does, and write a
manifest (chain id, deploy block, addresses, parameters used, artifacts directory).

    python -m alignment_node.devnet.deploy --rpc http://127.0.0.1:8545 --key-env DEPLOYER_KEY \\
        --params params.json --out manifest.json

The deployer key comes from an environment variable (--key-env) or a file (--key-file), never from the
command line, and is never printed or logged.

Transactions go out in two pipelined waves, so the deployment takes about two blocks even with interval
mining: first the ten contracts (their addresses are known in advance from the deployer's nonces), then,
once all are mined, the wiring and the hand-over to the timelock. Every receipt is checked; a failure
raises with the decoded custom error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..chain.abi import ContractAbi
from ..chain.artifacts import decode_revert
from ..chain.artifacts import ARTIFACTS_DIR, load_artifact
from ..chain.contracts import (
    ContractError,
    ContractRevert,
    TransactionFailed,
    check_receipt,
    send_transaction,
)
from ..chain.keccak import keccak256, normalize_address
from ..chain.rpc import RpcClient, RpcError, RpcException, hex_int
from ..chain.tx import Eip1559Tx, InvalidKeyError, LocalSigner, SignedTx, contract_address, load_key
from .params import ParamsError, load_params, resolve_params, validate_params

__all__ = ["deploy", "deploy_async", "DeployError", "main", "MANIFEST_VERSION", "OWNED_BY_TIMELOCK", "ROLES"]

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ROLES = {
    "DEFAULT_ADMIN_ROLE": b"\x00" * 32,
    "PROPOSER_ROLE": keccak256(b"PROPOSER_ROLE"),
    "EXECUTOR_ROLE": keccak256(b"EXECUTOR_ROLE"),
    "CANCELLER_ROLE": keccak256(b"CANCELLER_ROLE"),
}
#: Contracts whose every setter ends up owned by the timelock (Deployed.sol). The RewardToken stays with
#: the deployer (it mints the devnet's token); StakingVault and the governor have no owner.
OWNED_BY_TIMELOCK = ("AlignmentLicense", "NodeSale", "OperatorRegistry", "TargetRegistry", "RewardVault", "AuditProtocol",
                     "RefereeCourt")

GAS_MARGIN_NUM, GAS_MARGIN_DEN, GAS_MARGIN_MIN = 5, 4, 25_000


class DeployError(RuntimeError):
    """The deployment could not be completed (the message says which step and why)."""


class _Step:
    def __init__(self, label: str, to: str | None, data: bytes, expect_address: str | None = None):
        self.label = label
        self.to = to
        self.data = data
        self.expect_address = expect_address
        self.signed: SignedTx | None = None
        self.receipt: dict | None = None


class _Deployer:
    def __init__(self, rpc: RpcClient, signer: LocalSigner, artifacts_dir: Path, timeout: float):
        self.rpc = rpc
        self.signer = signer
        self.artifacts_dir = artifacts_dir
        self.timeout = timeout
        self.nonce = 0
        self.fees = (0, 0)
        self.chain_id = 0
        self.abis: dict[str, ContractAbi] = {}

    def abi(self, name: str) -> ContractAbi:
        if name not in self.abis:
            self.abis[name] = load_artifact(name, self.artifacts_dir).contract_abi
        return self.abis[name]

    def creation(self, name: str, *args: Any) -> _Step:
        art = load_artifact(name, self.artifacts_dir)
        data = art.bytecode + self.abi(name).encode_constructor(*args)
        address = contract_address(self.signer.address, self.nonce)
        self.nonce += 1
        return _Step(f"deploy {name}", None, data, address)

    def call(self, name: str, address: str, fn: str, *args: Any) -> _Step:
        self.nonce += 1
        return _Step(f"{name}.{fn}", address, self.abi(name).encode_call(fn, *args))

    async def _sign(self, step: _Step, nonce: int) -> None:
        try:
            estimate = await self.rpc.estimate_gas({"from": self.signer.address, "to": step.to, "data": step.data})
        except RpcError as exc:
            if exc.revert_data is not None or exc.code == 3 or "revert" in exc.message.lower():
                err = decode_revert(exc.revert_data) if exc.revert_data else None
                raise ContractRevert(step.label, err, exc.revert_data, message=exc.message) from None
            raise
        gas = max(estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN, estimate + GAS_MARGIN_MIN)
        max_fee, tip = self.fees
        tx = Eip1559Tx(self.chain_id, nonce, tip, max_fee, gas, step.to, 0, step.data)
        step.signed = self.signer.sign_transaction(tx)

    async def run_wave(self, steps: list[_Step], first_nonce: int) -> None:
        """Estimate, sign and send every step in nonce order without waiting for blocks, then wait for
        and check every receipt. A step whose gas estimate reverts while earlier transactions are still
        unmined (a constructor that calls a contract deployed just before it) is retried once they are."""
        waits: list[tuple[_Step, asyncio.Future]] = []
        try:
            for i, s in enumerate(steps):
                try:
                    await self._sign(s, first_nonce + i)
                except ContractRevert:
                    if all(s2.receipt is not None for s2, _ in waits):
                        raise
                    await self._settle(waits)
                    await self._sign(s, first_nonce + i)
                assert s.signed is not None
                await send_transaction(self.rpc, s.signed)
                log.info("sent %s (%s)", s.label, s.signed.hash)
                waits.append((s, asyncio.ensure_future(self.rpc.wait_for_receipt(s.signed.hash, timeout=self.timeout))))
            await self._settle(waits)
        finally:
            for _, fut in waits:
                if not fut.done():
                    fut.cancel()
            for _, fut in waits:
                if fut.done() and not fut.cancelled():
                    fut.exception()  # consumed: no "never retrieved" warnings

    async def _settle(self, waits: list[tuple[_Step, asyncio.Future]]) -> None:
        for s, fut in waits:
            if s.receipt is not None:
                continue
            r = await fut
            s.receipt = await check_receipt(self.rpc, s.signed, r, s.label)  # type: ignore[arg-type]
            if s.expect_address is not None:
                got = r.get("contractAddress")
                if not got or normalize_address(got) != s.expect_address:
                    raise DeployError(f"{s.label}: deployed at {got}, expected {s.expect_address}")


def _signer(key: LocalSigner | str | bytes) -> LocalSigner:
    return key if isinstance(key, LocalSigner) else LocalSigner(key)


def _params(params: dict | str | Path | None) -> dict:
    if params is None or isinstance(params, (str, Path)):
        return load_params(params)
    return validate_params(params)


async def deploy_async(
    rpc_url: str | Sequence[str],
    deployer_key: LocalSigner | str | bytes,
    params: dict | str | Path | None = None,
    *,
    out: str | Path | None = None,
    artifacts_dir: str | Path | None = None,
    receipt_timeout: float = 120.0,
    rpc_timeout: float = 30.0,
) -> dict:
    """Deploy everything; returns the manifest (also written to `out` when given)."""
    signer = _signer(deployer_key)
    p = _params(params)
    art_dir = Path(artifacts_dir).resolve() if artifacts_dir is not None else ARTIFACTS_DIR
    urls = [rpc_url] if isinstance(rpc_url, str) else list(rpc_url)
    async with RpcClient(urls, timeout=rpc_timeout) as rpc:
        d = _Deployer(rpc, signer, art_dir, receipt_timeout)
        d.chain_id = await rpc.chain_id()
        latest = await rpc.get_block("latest")
        if not latest:
            raise DeployError("the node returned no latest block")
        latest_number = hex_int(latest["number"])
        now = hex_int(latest["timestamp"])
        r = resolve_params(p, now=now, latest_block=latest_number, deployer=signer.address)
        start_nonce = await rpc.get_transaction_count(signer.address, "pending")
        d.nonce = start_nonce
        d.fees = await rpc.suggest_fees()
        balance = await rpc.get_balance(signer.address)
        log.info("deploying from %s (nonce %d, balance %d wei) on chain %d", signer.address, start_nonce, balance, d.chain_id)
        if r["token"]["address"] is not None and not await rpc.get_code(r["token"]["address"]):
            raise DeployError(f"token.address {r['token']['address']}: no contract there")

        me = signer.address
        wave1: list[_Step] = []
        addr: dict[str, str] = {}

        def create(name: str, *args: Any) -> None:
            step = d.creation(name, *args)
            wave1.append(step)
            addr[name] = step.expect_address  # type: ignore[assignment]

        # ---- contracts, in Deployed.sol's order
        if r["token"]["address"] is None:
            create("RewardToken", r["token"]["name"], r["token"]["symbol"], me)
        else:
            addr["RewardToken"] = r["token"]["address"]
        lic = r["license"]
        create("AlignmentLicense", lic["name"], lic["symbol"], lic["transferUnlockTime"], me)
        create("Timelock", r["timelock"]["minDelay"], [], [ZERO_ADDRESS], me)
        g = r["governor"]
        # The quorum counts on every license the sale can sell until the sale has ended (early buyers cannot
        # reach it alone), then on the licenses minted.
        create(
            "AlignmentGovernor",
            addr["AlignmentLicense"],
            addr["Timelock"],
            g["votingDelay"],
            g["votingPeriod"],
            g["proposalThreshold"],
            g["quorumPercent"],
            sum(t["supply"] for t in r["sale"]["tiers"]),
            r["sale"]["saleEnd"],
        )
        create("OperatorRegistry", addr["AlignmentLicense"], r["registry"]["maxLicensesPerOperator"], me)
        create("TargetRegistry", me, r["targets"]["trapKeeper"])
        create("StakingVault", addr["RewardToken"], r["rewards"]["stakingDripSeconds"])
        rw = r["rewards"]
        vault_params = {
            k: rw[k]
            for k in (
                "nodeShareBps",
                "stakerShareBps",
                "missBountyBps",
                "missPenaltyBps",
                "disagreePenaltyBps",
                "trapPenaltyBps",
                "suspendAfter",
                "suspendWindow",
                "suspendEpochs",
                "emissionPerEpoch",
            )
        }
        create(
            "RewardVault",
            addr["RewardToken"],
            addr["StakingVault"],
            addr["AlignmentLicense"],
            rw["treasury"],
            vault_params,
            me,
        )
        pr = r["protocol"]
        create(
            "AuditProtocol",
            addr["OperatorRegistry"],
            addr["TargetRegistry"],
            addr["RewardVault"],
            pr["genesisBlock"],
            pr["epochLength"],
            pr["genesisSeed"],
            {k: pr[k] for k in ("revealBlocks", "committeeSize", "minReveals", "maxCommittee")},
            me,
        )
        rf = r["referees"]
        create(
            "RefereeCourt",
            addr["RewardToken"],
            addr["TargetRegistry"],
            addr["AuditProtocol"],
            {k: rf[k] for k in ("minBond", "refereeBlocks", "unbondBlocks", "committee")},
            addr["Timelock"],
        )
        s = r["sale"]
        create(
            "NodeSale",
            addr["AlignmentLicense"],
            [(t["price"], t["supply"]) for t in s["tiers"]],
            s["allowlistStart"],
            s["publicStart"],
            s["saleEnd"],
            s["allowlistMaxPerWallet"],
            s["publicMaxPerWallet"],
            s["allowlistRoot"],
            s["treasury"],
            me,
        )

        t0 = time.monotonic()
        await d.run_wave(wave1, start_nonce)
        deploy_block = min(hex_int(st.receipt["blockNumber"]) for st in wave1)  # type: ignore[index]
        log.info("contracts deployed by block %d", max(hex_int(st.receipt["blockNumber"]) for st in wave1))  # type: ignore[index]

        # ---- wiring and hand-over, in Deployed.sol's order
        wave2_nonce = d.nonce
        tl = addr["Timelock"]
        wave2 = [
            d.call("AlignmentLicense", addr["AlignmentLicense"], "setMinter", addr["NodeSale"]),
            d.call("AlignmentLicense", addr["AlignmentLicense"], "setTransferHook", addr["OperatorRegistry"]),
            d.call("OperatorRegistry", addr["OperatorRegistry"], "setRewardVault", addr["RewardVault"]),
            d.call("OperatorRegistry", addr["OperatorRegistry"], "setClock", addr["AuditProtocol"]),
            d.call("RewardVault", addr["RewardVault"], "wire", addr["AuditProtocol"], addr["OperatorRegistry"]),
            d.call("AuditProtocol", addr["AuditProtocol"], "setCourt", addr["RefereeCourt"]),
        ]
        # Promo codes before the hand-over: NodeSale refuses new or changed codes once the sale opens.
        for promo in s["promoCodes"]:
            wave2.append(d.call("NodeSale", addr["NodeSale"], "setPromoCode", keccak256(promo["code"].encode()),
                                promo["discountBps"], promo["referrer"] or ZERO_ADDRESS, promo["referrerBps"]))
        for name in ("AlignmentLicense", "NodeSale", "OperatorRegistry", "TargetRegistry", "RewardVault", "AuditProtocol"):
            wave2.append(d.call(name, addr[name], "transferOwnership", tl))
        wave2 += [
            d.call("Timelock", tl, "grantRole", ROLES["PROPOSER_ROLE"], addr["AlignmentGovernor"]),
            d.call("Timelock", tl, "grantRole", ROLES["CANCELLER_ROLE"], addr["AlignmentGovernor"]),
            d.call("Timelock", tl, "renounceRole", ROLES["DEFAULT_ADMIN_ROLE"], me),
        ]
        await d.run_wave(wave2, wave2_nonce)
        last_block = max(hex_int(st.receipt["blockNumber"]) for st in wave2)  # type: ignore[index]
        log.info("wired in %.2fs, last block %d", time.monotonic() - t0, last_block)

        await _verify(rpc, d, addr, r, me)

    manifest = {
        "manifestVersion": MANIFEST_VERSION,
        "chainId": d.chain_id,
        "deployBlock": deploy_block,
        "wiredBlock": last_block,
        "deployer": me,
        "contracts": dict(sorted(addr.items())),
        "params": r,
        # The release whose committed artifacts hold these contracts' ABIs (a manifest is published: it names
        # no directory of the deployer's machine unless other artifacts were asked for).
        "release": __version__,
    }
    if artifacts_dir is not None:
        manifest["artifactsDir"] = str(art_dir)
    if out is not None:
        write_manifest(manifest, out)
    return manifest


async def _verify(rpc: RpcClient, d: _Deployer, addr: dict[str, str], r: dict, me: str) -> None:
    """Read back the wiring; DeployError if anything is not as Deployed.sol leaves it."""

    async def read(name: str, fn: str, *args: Any) -> Any:
        f = d.abi(name).function(fn, len(args))
        return f.decode_output(await rpc.call({"to": addr[name], "data": f.encode(*args)}))

    tl = addr["Timelock"]
    checks = [
        ("AlignmentLicense.minter", await read("AlignmentLicense", "minter"), addr["NodeSale"]),
        ("AlignmentLicense.transferHook", await read("AlignmentLicense", "transferHook"), addr["OperatorRegistry"]),
        ("OperatorRegistry.rewardVault", await read("OperatorRegistry", "rewardVault"), addr["RewardVault"]),
        ("OperatorRegistry.clock", await read("OperatorRegistry", "clock"), addr["AuditProtocol"]),
        ("RewardVault.protocol", await read("RewardVault", "protocol"), addr["AuditProtocol"]),
        ("RewardVault.registry", await read("RewardVault", "registry"), addr["OperatorRegistry"]),
        ("AuditProtocol.court", await read("AuditProtocol", "court"), addr["RefereeCourt"]),
        ("TargetRegistry.trapKeeper", await read("TargetRegistry", "trapKeeper"), r["targets"]["trapKeeper"]),
        ("AlignmentGovernor.timelock", await read("AlignmentGovernor", "timelock"), tl),
        ("AlignmentGovernor.plannedSupply", await read("AlignmentGovernor", "plannedSupply"),
         await read("NodeSale", "totalSupplyCap")),
    ]
    for name in OWNED_BY_TIMELOCK:
        checks.append((f"{name}.owner", await read(name, "owner"), tl))
    for role, who, want in (
        ("PROPOSER_ROLE", addr["AlignmentGovernor"], True),
        ("CANCELLER_ROLE", addr["AlignmentGovernor"], True),
        ("EXECUTOR_ROLE", ZERO_ADDRESS, True),
        ("DEFAULT_ADMIN_ROLE", me, False),
        ("DEFAULT_ADMIN_ROLE", tl, True),
    ):
        checks.append((f"Timelock.hasRole({role}, {who})", await read("Timelock", "hasRole", ROLES[role], who), want))
    wrong = [f"{what} is {got}, expected {want}" for what, got, want in checks if got != want]
    if wrong:
        raise DeployError("deployment verification failed: " + "; ".join(wrong))


def write_manifest(manifest: dict, path: str | Path) -> Path:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(p)
    return p


def deploy(
    rpc_url: str | Sequence[str],
    deployer_key: LocalSigner | str | bytes,
    params: dict | str | Path | None = None,
    **kwargs: Any,
) -> dict:
    """Synchronous `deploy_async` (not from inside a running event loop)."""
    return asyncio.run(deploy_async(rpc_url, deployer_key, params, **kwargs))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m alignment_node.devnet.deploy",
        description="Deploy and wire the alignment protocol; write a manifest.",
    )
    ap.add_argument("--rpc", action="append", required=True, help="JSON-RPC URL (repeat for failover)")
    key = ap.add_mutually_exclusive_group(required=True)
    key.add_argument("--key-env", metavar="VAR", help="environment variable holding the deployer key (hex)")
    key.add_argument("--key-file", metavar="PATH", help="file holding the deployer key (hex, first line)")
    ap.add_argument("--params", metavar="FILE", help="params JSON (default: the devnet defaults)")
    ap.add_argument("--out", metavar="FILE", required=True, help="where to write the manifest JSON")
    ap.add_argument("--artifacts", metavar="DIR", help="artifacts directory (default: the committed one)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each receipt")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    try:
        signer = load_key(env_var=args.key_env) if args.key_env else load_key(path=args.key_file)
        params = load_params(args.params)
    except (InvalidKeyError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = deploy(
            args.rpc, signer, params, out=args.out, artifacts_dir=args.artifacts, receipt_timeout=args.timeout
        )
    except (ParamsError, DeployError, ContractError, TransactionFailed, RpcException) as exc:
        print(f"error: deployment failed: {exc}", file=sys.stderr)
        return 1
    width = max(len(n) for n in manifest["contracts"])
    for name, address in manifest["contracts"].items():
        print(f"{name:<{width}}  {address}")
    print(f"manifest: {os.path.abspath(args.out)} (chain {manifest['chainId']}, block {manifest['deployBlock']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
