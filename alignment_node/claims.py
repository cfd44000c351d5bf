"""The owner's ``alignment-node claim``: once (``claim 1,2,5-8``), or on a schedule (``claim --every-epochs N``),
a long-running command that claims the licenses' credit every N epochs when it is worth it.

Only a license's owner may claim its credit (RewardVault.claim reverts ``NotLicenseOwner`` for anyone else and
pays the caller), so the schedule runs with the owner's key, not in the operator's node (which claims its own
commission: node/rewards.py). A claim is sent when the licenses' total claimable is at least ``--floor`` and,
when ``--reward-wei-per-gas-wei`` (or the config's ``rewards.reward_wei_per_gas_wei``) says what the gas coin is
worth in reward-token wei, more than the claim's gas cost (eth_estimateGas x the current max fee per gas). The
reward token is not the gas coin on this network, so without that rate the floor is the only guard.

cli.py registers this module's arguments and hands it its one-shot ``cmd_claim`` and ``ChainContext`` (so this
module does not import cli.py, which imports it).

A claim sent twice (a restart while it was pending) cannot pay twice: the second reverts ``NothingToClaim``,
which the schedule logs and goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from decimal import Decimal, InvalidOperation
from typing import Callable

from .errors import CliError

log = logging.getLogger("alignment_node.claims")

GWEI = 10**9
DEFAULT_MAX_FEE_GWEI = 500.0


def parse_floor(text: str) -> int:
    """A floor in wei: '1000' or '1000wei' is wei, '1.5 ether' is 1.5 * 10^18 wei."""
    t = text.strip().lower().replace(" ", "")
    try:
        if t.endswith("ether"):
            value = Decimal(t[:-5]) * 10**18
        else:
            value = Decimal(t.removesuffix("wei"))
    except InvalidOperation:
        raise CliError(f"--floor: not an amount: {text!r} (wei, e.g. 1000, or '2 ether')") from None
    if value < 0 or value != value.to_integral_value():
        raise CliError(f"--floor: not a whole number of wei: {text!r}")
    return int(value)


def parse_licenses(text: str) -> list[int]:
    from .config import parse_id_list

    try:
        ids = parse_id_list(text)
    except ValueError:
        ids = []
    if not ids or any(i < 1 for i in ids):
        raise CliError(f"not a list of license ids: {text!r} (use e.g. 1,2,5-8)")
    return ids


def add_claim_args(claim: argparse.ArgumentParser, once: Callable[[argparse.Namespace], int],
                   chain_context: type) -> None:
    """The ``claim`` command's arguments (cli.py makes the parser with the chain and key arguments); ``once`` is
    cli.py's one-shot claim, ``chain_context`` its ChainContext."""
    claim.add_argument("licenses", nargs="?", help="license ids, e.g. 1,2,5-8 (default: the config's "
                                                   "rewards.claim_licenses)")
    claim.add_argument("--every-epochs", type=int, metavar="N",
                       help="keep running: claim every N epochs when worth it (default period: the config's "
                            "rewards.claim_every_epochs)")
    claim.add_argument("--schedule", action="store_true",
                       help="keep running with the config's rewards.claim_every_epochs and claim_floor_wei")
    claim.add_argument("--floor", help="scheduled: claim only from this much in total, in wei (an integer) or "
                                       "e.g. '2 ether' (default: the config's rewards.claim_floor_wei, else 1 ether)")
    claim.add_argument("--reward-wei-per-gas-wei", type=float,
                       help="scheduled: the gas coin's worth in reward-token wei per wei; then a claim must also "
                            "exceed its gas cost (default: the config's rewards.reward_wei_per_gas_wei; unknown: "
                            "the floor is the only guard)")
    claim.add_argument("--interval", type=float, help="scheduled: seconds between looks at the chain "
                                                      "(default: the config's chain.poll_interval, else 5)")
    claim.add_argument("--until-epoch", type=int, help="scheduled: stop once this epoch has been handled")
    claim.set_defaults(func=cmd_claim, claim_once=once, chain_context=chain_context)


def cmd_claim(args: argparse.Namespace) -> int:
    if args.every_epochs is None and not args.schedule:
        if args.floor or args.until_epoch is not None or args.reward_wei_per_gas_wei is not None:
            raise CliError("--floor, --until-epoch and --reward-wei-per-gas-wei go with --every-epochs N or "
                           "--schedule")
        if not args.licenses:
            args.licenses = _config_licenses(args)
        return args.claim_once(args)
    if args.every_epochs is not None and args.every_epochs < 1:
        raise CliError(f"--every-epochs: at least 1, got {args.every_epochs}")

    async def main() -> int:
        async with args.chain_context(args) as ctx:
            return await _schedule(ctx, args)

    from .chain.rpc import RpcException

    try:
        return asyncio.run(main())
    except RpcException as exc:
        raise CliError(f"chain unreachable or answered badly: {exc}") from None


def _config_licenses(args: argparse.Namespace) -> str:
    from .config import ConfigError, load_config

    if getattr(args, "config", None):
        try:
            ids = load_config(args.config).rewards.claim_licenses
        except ConfigError as exc:
            raise CliError(f"config: {exc}") from None
        if ids:
            return ",".join(str(i) for i in ids)
    raise CliError("which licenses? give them (e.g. 1,2,5-8) or set rewards.claim_licenses in --config")


async def _schedule(ctx, args: argparse.Namespace) -> int:
    from .node.rewards import claim_decision, claim_gas_cost

    r = ctx.cfg.rewards if ctx.cfg else None
    every = args.every_epochs or (r.claim_every_epochs if r else 1)
    floor = parse_floor(args.floor) if args.floor else (r.claim_floor_wei if r else 10**18)
    rate = args.reward_wei_per_gas_wei if args.reward_wei_per_gas_wei is not None else (
        r.reward_wei_per_gas_wei if r else 0.0)
    if rate < 0:
        raise CliError("--reward-wei-per-gas-wei: must be >= 0")
    interval = args.interval or (ctx.cfg.chain.poll_interval if ctx.cfg else 5.0)
    cap = int((ctx.cfg.gas.max_fee_gwei if ctx.cfg else DEFAULT_MAX_FEE_GWEI) * GWEI)
    ids = parse_licenses(args.licenses or _config_licenses(args))
    signer = ctx.signer()
    vault, nft = ctx.c["RewardVault"], ctx.c["AlignmentLicense"]
    owners = await nft.call("ownersOf", ids)
    foreign = [i for i, o in zip(ids, owners) if o.lower() != signer.address.lower()]
    if foreign:
        raise CliError(f"licenses {foreign} are not owned by {signer.address}: only an owner may claim them")
    if rate == 0:
        log.warning("the reward token is not the gas coin and no rate is given: the floor (%d wei) is the only "
                    "guard against gas eating the reward", floor)

    def report(row: dict) -> None:
        if args.json:
            print(json.dumps(row, sort_keys=True))
        else:
            print(f"epoch {row['epoch']}: " + (f"claimed {row['paid_wei']} wei (tx {row['tx']})"
                                              if row["claimed"] else f"not claimed: {row['reason']}"))
        sys.stdout.flush()

    first: int | None = None
    handled: int | None = None  # the last epoch looked at
    while True:
        epoch = await ctx.c["AuditProtocol"].call("currentEpoch")
        if args.until_epoch is not None and epoch > args.until_epoch:
            return 0
        if first is None:
            first = epoch
        if (epoch - first) % every == 0 and epoch != handled:
            handled = epoch
            # The licenses still owned (a transfer ends the owner's claim to future credit, not to this command).
            owners = await nft.call("ownersOf", ids)
            mine = [i for i, o in zip(ids, owners) if o.lower() == signer.address.lower()]
            total = 0
            for i in mine:
                total += max(0, await vault.call("claimable", i))
            data = vault.encode("claim", mine)
            cost = await claim_gas_cost(ctx.rpc, signer.address, vault.address, data, cap) if (
                mine and total >= max(floor, 1)) else 0
            ok, reason = claim_decision(total, floor, cost, rate)
            row = {"epoch": epoch, "claimable_wei": str(total), "gas_cost_wei": str(cost), "claimed": False,
                   "reason": reason, "licenses": mine}
            if ok:
                token = ctx.c["RewardToken"]
                before = await token.call("balanceOf", signer.address)
                try:
                    receipt = await ctx.transact("RewardVault", "claim", mine, signer=signer)
                except CliError as exc:
                    if exc.error_name != "NothingToClaim":
                        raise
                    row["reason"] = "nothing to claim (claimed already)"
                else:
                    paid = await token.call("balanceOf", signer.address) - before
                    row.update(claimed=True, paid_wei=str(paid), tx=receipt["tx"], gas_used=receipt["gas_used"])
            report(row)
            if args.until_epoch is not None and epoch >= args.until_epoch:
                return 0
        await asyncio.sleep(interval)
