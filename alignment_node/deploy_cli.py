"""``alignment-node deploy``: deploy and wire the contracts on a chain the devnet did not start, and write the
manifest that operators and owners join with (docs/deployment.md).

The deployer's key comes from an encrypted keystore (with a password file or variable), a key file, or a
variable: never from the command line. ``--check`` sends nothing: it resolves the params against the chain and
prints the chain, the deployer, its balance, the sale schedule and the epoch clock, so a deployer sees what
would be deployed before paying for it. ``--chain-id`` refuses a chain other than the one intended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from .errors import CliError


def add_deploy_args(sub: argparse._SubParsersAction, add_key_args, unlock) -> None:
    """Register ``deploy``; ``add_key_args`` and ``unlock`` are the CLI's keystore options and their unlocking
    (passed in: this module is imported by the CLI and imports nothing of it)."""
    p = sub.add_parser("deploy", help="deployer: deploy and wire the contracts on a chain, write the manifest")
    p.add_argument("--rpc", action="append", required=True, help="JSON-RPC URL (repeat for failover)")
    p.add_argument("--chain-id", type=int, help="refuse any other chain (e.g. 16661 for 0G's mainnet)")
    p.add_argument("--params", metavar="FILE", help="params JSON (default: the devnet defaults; docs/deployment.md)")
    p.add_argument("--out", metavar="FILE", help="where to write the manifest JSON (required unless --check)")
    p.add_argument("--check", action="store_true", help="resolve and print what would be deployed; send nothing")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each receipt")
    p.add_argument("--key-env", metavar="VAR", help="environment variable holding the deployer key (hex)")
    p.add_argument("--key-file", metavar="PATH", help="file holding the deployer key (hex, first line)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_key_args(p)
    p.set_defaults(func=cmd_deploy, unlock=unlock)


def _signer(args: argparse.Namespace):
    from .chain.tx import InvalidKeyError, load_key

    given = [bool(args.key_env), bool(args.key_file), bool(args.keystore)]
    if sum(given) != 1:
        raise CliError("say where the deployer key is: exactly one of --keystore DIR (with --password-file or "
                       "--password-env), --key-file PATH or --key-env VAR")
    if args.keystore:
        return args.unlock(args)
    try:
        return load_key(env_var=args.key_env) if args.key_env else load_key(path=args.key_file)
    except InvalidKeyError as exc:
        raise CliError(str(exc)) from None


async def _plan(args: argparse.Namespace, signer, params: dict) -> dict:
    """What a deployment with ``params`` would be on the chain now (nothing sent)."""
    from .chain.rpc import RpcClient, hex_int
    from .devnet.params import resolve_params

    async with RpcClient(args.rpc) as rpc:
        chain_id = await rpc.chain_id()
        if args.chain_id is not None and chain_id != args.chain_id:
            raise CliError(f"the RPC serves chain {chain_id}, not the chain {args.chain_id} asked for: nothing sent")
        block = await rpc.get_block("latest")
        balance = await rpc.get_balance(signer.address)
        resolved = resolve_params(params, now=hex_int(block["timestamp"]), latest_block=hex_int(block["number"]),
                                  deployer=signer.address)
    return {"chainId": chain_id, "deployer": signer.address, "balance_wei": str(balance),
            "latestBlock": hex_int(block["number"]), "params": resolved}


def cmd_deploy(args: argparse.Namespace) -> int:
    from .chain.contracts import ContractError, TransactionFailed
    from .chain.rpc import RpcException
    from .devnet.deploy import DeployError, deploy
    from .devnet.params import ParamsError, load_params

    if not args.check and not args.out:
        raise CliError("give --out FILE for the manifest (or --check to send nothing)")
    if args.out and Path(args.out).exists():
        raise CliError(f"{args.out} exists: a manifest is never overwritten (move it away first)")
    signer = _signer(args)
    try:
        params = load_params(args.params)
        plan = asyncio.run(_plan(args, signer, params))
    except ParamsError as exc:
        raise CliError(str(exc)) from None
    except RpcException as exc:
        raise CliError(f"chain unreachable or answered badly: {exc}") from None
    if int(plan["balance_wei"]) == 0:
        raise CliError(f"the deployer {signer.address} has no coins on chain {plan['chainId']}: fund it first")
    sale, clock = plan["params"]["sale"], plan["params"]["protocol"]
    summary = (f"chain {plan['chainId']} at block {plan['latestBlock']}; deployer {signer.address} "
               f"(balance {int(plan['balance_wei']) / 1e18:.4f}); sale: allowlist from "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(sale['allowlistStart']))} UTC, public from "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(sale['publicStart']))}, ends "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(sale['saleEnd']))}, "
               f"{sum(t['supply'] for t in sale['tiers'])} licenses (the governor's quorum counts on all of them "
               f"until the sale ends), {len(sale['promoCodes'])} promo code(s) fixed when it opens; epochs of "
               f"{clock['epochLength']} blocks from block {clock['genesisBlock']}")
    if args.check:
        print(json.dumps(plan, sort_keys=True) if args.json else summary)
        return 0
    try:
        manifest = deploy(args.rpc, signer, params, out=args.out, receipt_timeout=args.timeout)
    except (ParamsError, DeployError, ContractError, TransactionFailed, RpcException) as exc:
        raise CliError(f"deployment failed: {exc}") from None
    if args.json:
        print(json.dumps(manifest, sort_keys=True))
    else:
        print(summary)
        width = max(len(n) for n in manifest["contracts"])
        for name, address in manifest["contracts"].items():
            print(f"{name:<{width}}  {address}")
        print(f"manifest: {args.out} (chain {manifest['chainId']}, block {manifest['deployBlock']}); publish it "
              "for operators and owners: `alignment-node init --manifest FILE --rpc URL`")
    return 0
