"""The ``alignment-node`` command: keys, owner and operator actions, status, the node itself, and the devnet."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .errors import CliError

log = logging.getLogger("alignment_node.cli")




# ------------------------------------------------------------------------------------------ output


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON with --json, else ``text`` (or a readable rendering of data)."""
    if getattr(args, "json", False):
        print(json.dumps(data, sort_keys=True, default=str))
    elif text is not None:
        print(text)
    else:
        for key, value in data.items() if isinstance(data, dict) else []:
            print(f"{key}: {value}")


def wei_to_str(wei: int) -> str:
    whole, frac = divmod(int(wei), 10**18)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".")


def parse_amount(text: str) -> int:
    """'1.5' (whole coins), '1.5 ether', '1000 wei' or '1000wei' -> wei."""
    from decimal import Decimal, InvalidOperation

    t = text.strip().lower().replace(" ", "")
    try:
        if t.endswith("wei"):
            return int(t[:-3])
        if t.endswith("ether"):
            t = t[:-5]
        value = Decimal(t) * 10**18
    except (InvalidOperation, ValueError):
        raise CliError(f"not an amount: {text!r} (use e.g. 0.5, '2 ether' or '1000wei')") from None
    if value != value.to_integral_value() or value < 0:
        raise CliError(f"not a whole number of wei: {text!r}")
    return int(value)


def parse_ids(text: str, what: str = "license ids", lowest: int = 1) -> list[int]:
    """'1,2,5-8' -> [1, 2, 5, 6, 7, 8] (license ids start at 1, target ids at 0)."""
    from .config import parse_id_list

    try:
        ids = parse_id_list(text)
    except ValueError:
        raise CliError(f"not a list of {what}: {text!r} (use e.g. 1,2,5-8)") from None
    if not ids or any(i < lowest for i in ids):
        raise CliError(f"{what} are integers from {lowest}: {text!r}")
    return ids


# ----------------------------------------------------------------------------------- key handling


def add_key_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--keystore", help="keystore directory (Ethereum keystore v3)", required=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--password-file", help="file whose first line is the keystore password")
    g.add_argument("--password-env", help="environment variable holding the keystore password")
    p.add_argument("--address", help="which key of the keystore, if it holds several")


def remote_signer(cfg, address: str | None = None):
    """The config's remote signer (operator.signer = "remote"), checked: it answers and holds the address."""
    from .chain.remote_signer import RemoteSigner, RemoteSignerError

    try:
        signer = RemoteSigner(cfg.operator.remote_signer_url, address or cfg.operator.address,
                              cfg.operator.remote_signer_timeout_s)
        signer.check()
    except (ValueError, RemoteSignerError) as exc:
        raise CliError(f"operator.remote_signer_url: {exc}") from None
    return signer


def unlock(args: argparse.Namespace, cfg=None, memory_limit: int | None = None):
    """The signer from --keystore/--password-* (or the config's [operator] section: a keystore, or a remote
    signer unless --keystore is given); ``memory_limit``: refuse a keystore that takes more to unlock."""
    from .keys import KeystoreError, load_signer, read_password

    if cfg is not None and cfg.operator.signer == "remote" and not args.keystore:
        return remote_signer(cfg, args.address)
    keystore = args.keystore or (str(cfg.resolve(cfg.operator.keystore)) if cfg else None)
    pw_file = args.password_file or (str(cfg.resolve(cfg.operator.password_file)) if cfg and cfg.operator.password_file else None)
    pw_env = args.password_env or (cfg.operator.password_env if cfg and not args.password_file else None)
    if args.password_file:
        pw_env = None
    if args.password_env:
        pw_file = None
    if not keystore:
        raise CliError("no keystore: give --keystore DIR (or --config with [operator] keystore)")
    try:
        password = read_password(pw_file, pw_env)
        return load_signer(keystore, password, args.address or (cfg.operator.address if cfg else None),
                           memory_limit=memory_limit)
    except KeystoreError as exc:
        raise CliError(str(exc)) from None


# ------------------------------------------------------------------------------------------- keys


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import (KeystoreError, list_addresses, new_key, parse_private_key, read_password, reencrypt_key,
                       save_key)

    try:
        if args.keys_cmd == "address":
            if args.password_file or args.password_env:
                signer = unlock(args)
                emit(args, {"address": signer.address}, signer.address)
            else:
                addresses = list_addresses(args.keystore)
                emit(args, {"addresses": addresses}, "\n".join(addresses))
            return 0
        password = read_password(args.password_file, args.password_env)
        if args.keys_cmd == "reencrypt":
            address, old, new = reencrypt_key(args.keystore, password, args.address)
            emit(args, {"address": address, "keystore": str(args.keystore), "old": old, "new": new},
                 f"{address}: {old} -> {new}")
            return 0
        if args.keys_cmd == "new":
            address = new_key(args.keystore, password)
        else:
            if sys.stdin.isatty():
                raise CliError("pipe the private key (hex) on standard input; it is never taken as an argument")
            address = save_key(args.keystore, parse_private_key(sys.stdin.read()), password)
        emit(args, {"address": address, "keystore": str(args.keystore)}, address)
        return 0
    except KeystoreError as exc:
        raise CliError(str(exc)) from None


# ---------------------------------------------------------------------------------- chain helpers


class ChainContext:
    """RPC client + bound contracts from --config or --rpc/--manifest."""

    def __init__(self, args: argparse.Namespace):
        from .config import ConfigError, load_config
        from .chain.manifest import load_manifest

        self.cfg = None
        if getattr(args, "config", None):
            try:
                self.cfg = load_config(args.config)
            except ConfigError as exc:
                raise CliError(f"config: {exc}") from None
        rpc = args.rpc or (self.cfg.chain.rpc_urls if self.cfg else None) or os.environ.get(
            "ZG_ALIGNMENT_NODE_CHAIN_RPC_URLS")
        manifest = args.manifest or (str(self.cfg.resolve(self.cfg.chain.manifest)) if self.cfg else None)
        if not rpc:
            raise CliError("no RPC endpoint: give --rpc URL or --config FILE")
        if not manifest:
            raise CliError("no deployment manifest: give --manifest FILE or --config FILE")
        try:
            self.manifest = load_manifest(Path(manifest))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        self.urls = rpc.split(",") if isinstance(rpc, str) else rpc
        self.args = args

    async def __aenter__(self):
        from .chain.rpc import RpcClient
        from .chain.manifest import manifest_contracts

        timeout = self.cfg.chain.request_timeout if self.cfg else 10.0
        self.rpc = RpcClient(self.urls, timeout=timeout)
        self.c = manifest_contracts(self.rpc, self.manifest)
        return self

    async def __aexit__(self, *exc):
        await self.rpc.close()

    def signer(self):
        return unlock(self.args, self.cfg)

    async def transact(self, contract: str, fn: str, *fn_args, signer, value: int = 0) -> dict:
        from .chain.contracts import ContractRevert

        from .chain.contracts import GAS_MARGIN_DEN, GAS_MARGIN_NUM
        from .chain.rpc import RpcError
        from .node.txsender import EPOCH_TOUCH_GAS

        c = self.c[contract]
        # Room for the epoch to turn before it is mined: a claim then books one more epoch, any call may be the
        # epoch's first touch. A failing estimate leaves gas unset: transact estimates again and decodes the revert.
        gas = None
        try:
            estimate = await self.rpc.estimate_gas({"from": signer.address, "to": c.address, "value": hex(value),
                                                    "data": "0x" + c.encode(fn, *fn_args).hex()})
            gas = estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN + EPOCH_TOUCH_GAS
        except RpcError:
            pass
        try:
            receipt = await c.transact(fn, *fn_args, signer=signer, value=value, gas=gas)
        except ContractRevert as exc:
            name = exc.error_name
            log.error("%s.%s reverted: %s", contract, fn, exc.error or exc)
            raise CliError(f"{contract}.{fn} reverted: {exc.error or 'no reason'}", name) from None
        return {"tx": receipt["transactionHash"], "block": int(receipt["blockNumber"], 16),
                "gas_used": int(receipt["gasUsed"], 16)}


def add_chain_args(p: argparse.ArgumentParser, key: bool = True) -> None:
    p.add_argument("--config", help="node config file (supplies RPC, manifest and key settings)")
    p.add_argument("--rpc", help="JSON-RPC URL(s), comma separated")
    p.add_argument("--manifest", help="deployment manifest JSON")
    p.add_argument("--json", action="store_true", help="print JSON")
    if key:
        add_key_args(p)


def run_chain(args: argparse.Namespace, coro_fn) -> int:
    async def main():
        async with ChainContext(args) as ctx:
            return await coro_fn(ctx)

    from .chain.remote_signer import RemoteSignerError
    from .chain.rpc import RpcException

    try:
        data, text = asyncio.run(main())
    except RpcException as exc:
        raise CliError(f"chain unreachable or answered badly: {exc}") from None
    except RemoteSignerError as exc:
        raise CliError(str(exc)) from None
    emit(args, data, text)
    return 0


# ------------------------------------------------------------------------------------ owner: sale


def cmd_sale(args: argparse.Namespace) -> int:
    async def status(ctx: ChainContext):
        sale = ctx.c["NodeSale"]
        index, price, remaining = await sale.call("currentTier")
        tiers = await sale.call("tiers")
        sold = await sale.call("sold")
        times = {k: await sale.call(k) for k in ("allowlistStart", "publicStart", "saleEnd")}
        block = await ctx.rpc.get_block("latest")
        now = int(block["timestamp"], 16)
        phase = ("not open" if now < times["allowlistStart"] else "allowlist" if now < times["publicStart"]
                 else "public" if now < times["saleEnd"] else "ended")
        data = {"tier": index, "tiers": len(tiers), "price_wei": str(price), "remaining_in_tier": remaining,
                "sold": sold, "total_supply": sum(t[1] for t in tiers), "phase": phase,
                "paused": await sale.call("paused"), **{k: v for k, v in times.items()}}
        text = (f"phase {phase}; tier {index + 1} of {len(tiers)} at {wei_to_str(price)} per license, "
                f"{remaining} left in tier; {sold} sold of {data['total_supply']}")
        return data, text

    async def buy(ctx: ChainContext):
        signer = ctx.signer()
        sale = ctx.c["NodeSale"]
        cost = await sale.call("quoteWithPromo", args.quantity, args.promo or "")
        max_cost = parse_amount(args.max_cost) if args.max_cost else cost
        proof = [bytes.fromhex(p.removeprefix("0x")) for p in (args.proof.split(",") if args.proof else [])]
        receipt = await ctx.transact("NodeSale", "buy", args.quantity, max_cost, args.promo or "", proof,
                                     args.allowance, signer=signer, value=max_cost)
        first = await sale.call("sold") - args.quantity + 1
        ids = list(range(first, first + args.quantity))
        data = {**receipt, "license_ids": ids, "cost_wei": str(cost), "buyer": signer.address}
        return data, f"bought licenses {ids} for {wei_to_str(cost)} (tx {receipt['tx']})"

    return run_chain(args, status if args.sale_cmd == "status" else buy)


# ---------------------------------------------------------------------------- delegation & claims


def cmd_simple_tx(contract: str, fn: str, arg_builder):
    """A command that sends one transaction with arguments built from args."""

    def run(args: argparse.Namespace) -> int:
        async def go(ctx: ChainContext):
            signer = ctx.signer()
            fn_args = arg_builder(args)
            receipt = await ctx.transact(contract, fn, *fn_args, signer=signer)
            return {**receipt, "from": signer.address}, f"{fn} done (tx {receipt['tx']})"

        return run_chain(args, go)

    return run


def cmd_claim(args: argparse.Namespace) -> int:
    async def go(ctx: ChainContext):
        signer = ctx.signer()
        before = await ctx.c["RewardToken"].call("balanceOf", signer.address)
        receipt = await ctx.transact("RewardVault", "claim", parse_ids(args.licenses), signer=signer)
        paid = await ctx.c["RewardToken"].call("balanceOf", signer.address) - before
        return {**receipt, "paid_wei": str(paid)}, f"claimed {wei_to_str(paid)} (tx {receipt['tx']})"

    return run_chain(args, go)


async def operated_licenses(ctx: "ChainContext", operator: str) -> list[int]:
    """The licenses delegated to ``operator`` now: ids from the registry's events naming it, each checked."""
    from .chain.manifest import scan_logs, topic_address

    registry = ctx.c["OperatorRegistry"]
    topic = registry.abi.event("LicenseStateChanged").topic
    ids: set[int] = set()
    async for entries in scan_logs(ctx.rpc, registry.address, [topic, None, topic_address(operator)],
                                   int(ctx.manifest.get("deployBlock", 0)), await ctx.rpc.block_number()):
        ids.update(int(e["topics"][1], 16) for e in entries)
    mine = []
    for token_id in sorted(ids):
        who, state = await registry.call("delegationOf", token_id)
        if state and who.lower() == operator.lower():
            mine.append(token_id)
    return mine


def cmd_claim_commission(args: argparse.Namespace) -> int:
    async def go(ctx: ChainContext):
        signer = ctx.signer()
        before = await ctx.c["RewardToken"].call("balanceOf", signer.address)
        # Commission is paid as each license is credited, after its debt (security review L2): credit this
        # operator's licenses and claim in one transaction; what licenses that left it earned is booked already.
        ids = parse_ids(args.licenses) if args.licenses else await operated_licenses(ctx, signer.address)
        receipt = await (ctx.transact("RewardVault", "claimCommissionFor", ids, signer=signer) if ids else
                         ctx.transact("RewardVault", "claimCommission", signer=signer))
        paid = await ctx.c["RewardToken"].call("balanceOf", signer.address) - before
        return {**receipt, "paid_wei": str(paid)}, f"claimed commission {wei_to_str(paid)} (tx {receipt['tx']})"

    return run_chain(args, go)


# ----------------------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    async def go(ctx: ChainContext):
        from .protocol import DELEGATION_STATE_NAMES as STATE_NAMES
        from .node.why import facts_from_chain, why_not_earning

        if args.keystore:
            who = ctx.signer().address
        elif args.address:
            who = args.address
        elif ctx.cfg:
            who = ctx.signer().address
        else:
            raise CliError("whose status? give --address ADDR or a keystore")
        c = ctx.c
        epoch = await c["AuditProtocol"].call("currentEpoch")
        minted = await c["AlignmentLicense"].call("totalMinted")
        owned, operated = [], []
        for token_id in range(1, minted + 1):
            owner = await c["AlignmentLicense"].call("ownerOf", token_id)
            operator, state = await c["OperatorRegistry"].call("delegationOf", token_id)
            if owner.lower() != who.lower() and operator.lower() != who.lower():
                continue
            # Presence is per operator (issue 16): the vault derives each license's last active epoch from it.
            last_active_plus1 = await c["RewardVault"].call("lastActivePlus1", token_id)
            entry = {"id": token_id, "owner": owner, "operator": operator if state else None,
                     "state": STATE_NAMES[state], "active_epoch": last_active_plus1 - 1 if last_active_plus1 else None,
                     "suspended": await c["RewardVault"].call("isSuspended", token_id, epoch),
                     "claimable_wei": str(await c["RewardVault"].call("claimable", token_id))}
            entry.update(why_not_earning(await facts_from_chain(c, token_id, epoch)).fields())  # node/why.py
            (owned if owner.lower() == who.lower() else operated).append(entry)
            if owner.lower() == who.lower() and operator.lower() == who.lower():
                operated.append(entry)
        op = await c["OperatorRegistry"].call("getOperator", who)
        data = {
            "address": who, "epoch": epoch, "block": await ctx.rpc.block_number(),
            "native_balance_wei": str(await ctx.rpc.get_balance(who)),
            "reward_balance_wei": str(await c["RewardToken"].call("balanceOf", who)),
            "licenses_owned": owned,
            "operator": {"registered": op[0], "commission_bps": op[1], "delegated": op[2], "pending": op[3],
                         "commission_claimable_wei": str(await c["RewardVault"].call(
                             "commissionClaimable", who, sorted({e["id"] for e in operated}))),
                         "licenses": operated} if op[0] else None,
        }
        lines = [f"{who} at epoch {epoch}: {len(owned)} licenses owned"]
        for e in owned:
            lines.append(f"  license {e['id']}: {e['state']}"
                         f"{' with ' + e['operator'] if e['operator'] else ''}, claimable "
                         f"{wei_to_str(int(e['claimable_wei']))}"
                         + (f"; earns nothing: {e['why_not_earning']}" if e["why_not_earning_code"] != "none" else ""))
        if op[0]:
            lines.append(f"operator: commission {op[1]} bps, {op[2]} delegated, {op[3]} pending, commission "
                         f"claimable {wei_to_str(int(data['operator']['commission_claimable_wei']))}")
        return data, "\n".join(lines)

    return run_chain(args, go)


# ------------------------------------------------------------------------------------------ config


def cmd_validate_config(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .keys import KeystoreError, list_addresses, read_password
    from .chain.manifest import load_manifest

    problems: list[str] = []
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        problems.extend(exc.problems)
        cfg = None
    if cfg is not None:
        try:
            manifest = load_manifest(cfg.resolve(cfg.chain.manifest))
        except ValueError as exc:
            problems.append(f"chain.manifest: {exc}")
        else:  # the node binds each contract (but the timelock) with the artifact the package ships for it
            from .chain.artifacts import ArtifactError, load_artifact

            for name in manifest["contracts"] if isinstance(manifest["contracts"], dict) else ():
                try:
                    if name != "Timelock":
                        load_artifact(name)
                except ArtifactError as exc:
                    problems.append(f"chain.manifest: contract {name}: {exc}")
    if cfg is not None and cfg.operator.signer == "remote":
        try:
            remote_signer(cfg)
        except CliError as exc:
            problems.append(str(exc))
    elif cfg is not None:
        try:
            addresses = list_addresses(cfg.resolve(cfg.operator.keystore))
            if not addresses:
                problems.append(f"operator.keystore: {cfg.resolve(cfg.operator.keystore)} holds no key")
            elif len(addresses) > 1 and not cfg.operator.address:
                problems.append("operator.address: the keystore holds several keys; say which one")
        except KeystoreError as exc:
            problems.append(f"operator.keystore: {exc}")
        try:
            pw_file = str(cfg.resolve(cfg.operator.password_file)) if cfg.operator.password_file else None
            read_password(pw_file, cfg.operator.password_env or None)
        except KeystoreError as exc:
            problems.append(f"operator password: {exc}")
    data = {"ok": not problems, "problems": problems}
    emit(args, data, "config OK" if not problems else "\n".join(f"problem: {p}" for p in problems))
    return 0 if not problems else 1


# ------------------------------------------------------------------------------------------- start


def cmd_start(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .keys import UNLOCK_MEMORY_LIMIT

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CliError(f"config: {exc}") from None
    data_dir = cfg.resolve(cfg.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Unlock before the node's imports: scrypt's buffer (16 MB) and the node's modules (about 25 MB) are then
    # never in memory at once, which keeps the process's peak near its steady state.
    signer = unlock(args, cfg, memory_limit=UNLOCK_MEMORY_LIMIT)
    from .chain.manifest import load_manifest
    from .chain.tx import LocalSigner
    from .logs import setup_logging
    from .node.node import Node

    # A remote signer's key never reaches this process, so there is nothing for the log guard to look for.
    setup_logging(cfg.log_level, data_dir / "node.log",
                  secret_guard=signer if isinstance(signer, LocalSigner) else None)
    try:
        manifest = load_manifest(cfg.resolve(cfg.chain.manifest))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    node = Node(cfg, signer, manifest)
    log.info("node %s starting: %s", __version__, signer.address)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await node.run(stop)

    asyncio.run(main())
    log.info("node stopped")
    return 0


# --------------------------------------------------------------------------------- verify-evidence


def cmd_verify_evidence(args: argparse.Namespace) -> int:
    """Fetch a bundle, check its hash is the root, and re-run the judgement from its observations."""
    import urllib.error
    import urllib.request

    from .protocol import VERDICT_NAMES, keccak

    root = args.root.lower()
    if not (root.startswith("0x") and len(root) == 66):
        raise CliError(f"not an evidence root: {args.root!r} (0x + 64 hex digits)")
    url = args.source.rstrip("/") + "/evidence/" + root
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            body = resp.read(MAX_EVIDENCE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise CliError(f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot fetch {url}: {exc}") from None
    if len(body) > MAX_EVIDENCE_BYTES:
        raise CliError(f"{url} sent more than {MAX_EVIDENCE_BYTES} bytes")
    hash_ok = "0x" + keccak(body).hex() == root
    try:
        bundle = json.loads(body)
    except ValueError:
        raise CliError("the evidence is not JSON") from None
    claimed = bundle.get("verdict") if isinstance(bundle, dict) else None
    from .audits import plugin_for_bundle

    plugin = plugin_for_bundle(bundle)
    if plugin is None:
        raise CliError(f"no judge for this bundle (kind {bundle.get('kind') if isinstance(bundle, dict) else None!r}):"
                       " it carries no observations to re-check")
    try:
        recomputed = VERDICT_NAMES[plugin.judge(bundle, args.source)]
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"the bundle cannot be re-judged: {exc}") from None
    agrees = hash_ok and recomputed == claimed
    data = {"root": root, "source": args.source, "hash_ok": hash_ok, "kind": bundle.get("kind"),
            "target": bundle.get("target"), "epoch": bundle.get("epoch"), "claimed": claimed,
            "recomputed": recomputed, "agrees": agrees}
    text = (f"{'OK' if agrees else 'MISMATCH'}: bundle {root} claims {claimed}, re-judged {recomputed}"
            f"{'' if hash_ok else ' (and its bytes do not hash to the root)'}")
    emit(args, data, text)
    return 0 if agrees else 1


MAX_EVIDENCE_BYTES = 16 << 20


def cmd_evidence_audit(args: argparse.Namespace) -> int:
    """Fetch the bundle of every vote listed in an epoch's reveals (FAULT, UNREACHABLE: OK roots are not on
    chain) from its operator's public URL and check it (evidence_audit.py)."""
    from .evidence_audit import audit_epoch

    outcome = {}

    async def go(ctx):
        start = int(ctx.manifest.get("deployBlock", 0))
        result = outcome["result"] = await audit_epoch(ctx.c, args.epoch, timeout=args.timeout, start_block=start)
        lines = [f"epoch {result['epoch']} (seed {result['seed']}): evidence of "
                 f"{len(result['operators'])} operator(s)"]
        for o in result["operators"]:
            lines.append(f"  {o['operator']} {o['url']}: {o['ok']} served and bound, {o['unservable']} unservable, "
                         f"{o['mismatched']} mismatched")
            lines += [f"    license {x['license']} target {x['target']} {x['root']}: {x['why']}"
                      for x in o["problems"]]
        return result, "\n".join(lines)

    run_chain(args, go)
    return 0 if outcome["result"]["all_served"] else 1


def cmd_challenge(args: argparse.Namespace) -> int:
    """Bond on a revealed FAULT/UNREACHABLE vote whose evidence cannot be fetched (security review M6): its bundle
    must then be served on chain within answerBlocks, or, with --expire after that, the license is penalized as for
    a miss and the challenger gets the miss bounty and the bond back."""

    from .protocol import vote_key

    async def go(ctx):
        signer = ctx.signer()
        protocol = ctx.c["AuditProtocol"]
        key = vote_key(args.epoch, args.target, args.license)
        if args.expire:
            receipt = await ctx.transact("AuditProtocol", "expireChallenge", args.epoch, args.target, args.license,
                                         signer=signer)
        else:
            bond = await protocol.call("challengeBond")
            receipt = await ctx.transact("AuditProtocol", "challengeEvidence", args.epoch, args.target,
                                         args.license, signer=signer, value=bond)
        challenger, deadline, state, bond = await protocol.call("challenges", key)
        states = {1: "open", 2: "served", 3: "upheld"}
        data = {**receipt, "challenger": challenger, "deadline": deadline, "state": states.get(state, "none"),
                "bond_wei": str(bond)}
        return data, (f"challenge of license {args.license}, target {args.target}, epoch {args.epoch}: "
                      f"{data['state']}, deadline block {deadline} (tx {receipt['tx']})")

    return run_chain(args, go)


# ------------------------------------------------------------------------------------------ referee


def cmd_referee(args: argparse.Namespace) -> int:
    """Re-score stored v2 evidence bundles with the registered weights (docs/protocol.md, the referee duty)."""
    from .models import baseline as B

    items, hashes = [], set()
    for name in args.evidence:
        try:
            with open(name, "rb") as f:
                body = f.read(MAX_EVIDENCE_BYTES + 1)
        except OSError as exc:
            raise CliError(f"cannot read {name}: {exc}") from None
        if len(body) > MAX_EVIDENCE_BYTES:
            raise CliError(f"{name} is larger than {MAX_EVIDENCE_BYTES} bytes")
        try:
            bundle = json.loads(body)
        except ValueError:
            raise CliError(f"{name} is not JSON") from None
        items.append(body)
        if isinstance(bundle, dict) and isinstance(bundle.get("baseline"), str):
            hashes.add(bundle["baseline"].lower())
    baselines, problems = {}, {}
    for h in sorted(hashes):
        try:
            baselines[h] = B.fetch(h, list(args.baselines))
        except (B.BaselineError, ValueError) as exc:
            problems[h] = str(exc)
    from .models import referee as R  # torch: only here

    try:
        verdicts = R.rescore_bundles(items, baselines, seed=args.seed, samples=args.samples,
                                     log=None if args.json else (lambda m: print(m, file=sys.stderr)))
    except R.RefereeError as exc:
        raise CliError(str(exc)) from None
    for v in verdicts:
        if v.get("baseline") in problems:
            v["reason"] = problems[v["baseline"]]
    lines = []
    for v in verdicts:
        head = f"epoch {v['epoch']} target {v['target']}: {v['verdict']}"
        if v["tests"]:
            fired = [t["test"] for t in v["tests"] if t["reject"]]
            head += (f" ({v['completions']} completions from {len(v['bundles'])} bundle(s); fired: "
                     f"{', '.join(fired) or 'none'}; joint p {v['result']['p_value']})")
        elif v.get("reason"):
            head += f" ({v['reason']})"
        lines.append(head + "".join(f"\n  skipped {s['root']}: {s['reason']}" for s in v["skipped"]))
    emit(args, {"verdicts": verdicts}, "\n".join(lines) or "no bundles")
    return 0


def cmd_referee_chain(args: argparse.Namespace) -> int:
    """The referee duty on chain: register (bond) for a baseline, bind MODEL targets, run the verdict loop."""
    if args.referee_cmd == "register":
        async def go(ctx: ChainContext):
            signer = ctx.signer()
            baseline = _hash32(args.baseline)
            bond = parse_amount(args.bond) if args.bond else (await ctx.c["RefereeCourt"].call("params"))[0]
            court = ctx.c["RefereeCourt"].address
            if await ctx.c["RewardToken"].call("allowance", signer.address, court) < bond:
                await ctx.transact("RewardToken", "approve", court, bond, signer=signer)
            receipt = await ctx.transact("RefereeCourt", "register", baseline, bond, signer=signer)
            return ({**receipt, "referee": signer.address, "baseline": args.baseline.lower(), "bond_wei": str(bond)},
                    f"referee of {args.baseline.lower()} with a bond of {wei_to_str(bond)} (tx {receipt['tx']})")

        return run_chain(args, go)
    if args.referee_cmd == "bind":
        async def go(ctx: ChainContext):
            signer = ctx.signer()
            ids = parse_ids(args.targets, "target ids", 0)
            done = [(await ctx.transact("RefereeCourt", "bindTarget", t, signer=signer))["tx"] for t in ids]
            return {"targets": ids, "txs": done}, f"bound {len(done)} target(s)"

        return run_chain(args, go)
    return _referee_run(args)


def _hash32(text: str) -> bytes:
    t = text.lower()
    if not (t.startswith("0x") and len(t) == 66):
        raise CliError(f"not a baseline hash: {text!r} (0x + 64 hex digits)")
    return bytes.fromhex(t[2:])


def _referee_run(args: argparse.Namespace) -> int:
    """Judge, pass after pass, every (epoch, target) the referee is drawn for (models/referee_duty.py)."""
    from .models import baseline as B
    from .models.referee_duty import RefereeDuty

    baselines = {}
    for h in args.baseline:
        _hash32(h)
        try:
            baselines[h.lower()] = B.fetch(h.lower(), list(args.baselines))
        except (B.BaselineError, ValueError) as exc:
            raise CliError(f"baseline {h}: {exc}") from None

    async def go(ctx: ChainContext):
        from .node.store import Store

        signer = ctx.signer()
        store_path = args.store or (str(Path(ctx.cfg.resolve(ctx.cfg.data_dir)) / "node.sqlite") if ctx.cfg else None)
        store = Store(store_path) if store_path else None
        duty = RefereeDuty(ctx, signer, baselines, sources=args.evidence_from or [], store=store, seed=args.seed,
                           samples=args.samples)
        rows: list[dict] = []
        try:
            while True:
                if args.once:
                    rows += await duty.run_pass()
                    break
                try:
                    await duty.run_pass()  # each verdict is logged as it is submitted
                except Exception as exc:  # a dead RPC or a bad answer: log it, try again next pass
                    log.error("referee pass failed: %s", exc)
                await asyncio.sleep(args.interval)
        finally:
            if store is not None:
                duty.reader.close()
                store.close()
        text = "\n".join(f"epoch {r['epoch']} target {r['target']}: {r['verdict']}"
                         + (f" (tx {r['tx']})" if r.get("tx") else f" ({r.get('reason', '')})") for r in rows)
        return {"judged": rows}, text or "nothing to judge now"

    return run_chain(args, go)


# ------------------------------------------------------------------------------------------ devnet


def cmd_devnet(args: argparse.Namespace) -> int:
    from .devnet import scenarios

    if args.devnet_cmd == "up":
        return scenarios.up(args)
    return scenarios.scenario(args)


# ------------------------------------------------------------------------------------------ parser


def add_start_parser(sub) -> None:
    start = sub.add_parser("start", help="run the node")
    start.add_argument("--config", required=True, help="node config file (TOML)")
    add_key_args(start)
    start.set_defaults(func=cmd_start)


def build_parser(node_only: bool = False) -> argparse.ArgumentParser:
    """Every command's parser; ``node_only``: only ``start``'s, without the other commands' modules."""
    p = argparse.ArgumentParser(prog="alignment-node", description="Open auditor node of the alignment network.")
    p.add_argument("--version", action="version", version=f"alignment-node {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if node_only:
        add_start_parser(sub)
        return p

    keys = sub.add_parser("keys", help="create, import and show operator keys (encrypted keystore)")
    ks = keys.add_subparsers(dest="keys_cmd", required=True)
    for name, helptext in (("new", "create a random key"), ("import", "import a hex private key from stdin"),
                           ("address", "show the keystore's address(es)"),
                           ("reencrypt", "rewrite a key (e.g. geth's, 256 MB to unlock) with the node's scrypt cost")):
        kp = ks.add_parser(name, help=helptext)
        kp.add_argument("--keystore", required=True, help="keystore directory")
        g = kp.add_mutually_exclusive_group(required=name != "address")
        g.add_argument("--password-file", help="file whose first line is the password")
        g.add_argument("--password-env", help="environment variable holding the password")
        kp.add_argument("--address", help="which key (address), if several")
        kp.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(func=cmd_keys)

    sale = sub.add_parser("sale", help="the license sale: status, buy")
    ss = sale.add_subparsers(dest="sale_cmd", required=True)
    st = ss.add_parser("status", help="tier, price, remaining licenses, phase")
    add_chain_args(st, key=False)
    by = ss.add_parser("buy", help="buy licenses")
    add_chain_args(by)
    by.add_argument("quantity", type=int, help="how many licenses")
    by.add_argument("--max-cost", help="most you will pay in total (coins, e.g. 0.5); default: the quote")
    by.add_argument("--promo", help="promo code")
    by.add_argument("--proof", help="allowlist Merkle proof, comma-separated 0x hashes")
    by.add_argument("--allowance", type=int, default=0, help="the allowance your allowlist leaf commits to")
    sale.set_defaults(func=cmd_sale)

    def tx_command(name: str, helptext: str, contract: str, fn: str, builder, extra=None):
        sp = sub.add_parser(name, help=helptext)
        add_chain_args(sp)
        if extra:
            extra(sp)
        sp.set_defaults(func=cmd_simple_tx(contract, fn, builder))
        return sp

    def licenses_arg(sp):
        sp.add_argument("licenses", help="license ids, e.g. 1,2,5-8")

    tx_command("delegate", "owner: delegate licenses to an operator", "OperatorRegistry", "delegate",
               lambda a: (parse_ids(a.licenses), a.operator),
               lambda sp: (licenses_arg(sp), sp.add_argument("operator", help="operator address")))
    tx_command("undelegate", "owner: take licenses back (immediate)", "OperatorRegistry", "undelegate",
               lambda a: (parse_ids(a.licenses),), licenses_arg)
    claim = sub.add_parser("claim", help="owner: claim the rewards of licenses, once or every N epochs")
    add_chain_args(claim)
    from .claims import add_claim_args

    add_claim_args(claim, cmd_claim, ChainContext)  # licenses, --every-epochs N --floor WEI (claims.py)

    tx_command("register-operator", "operator: register with a commission fixed forever", "OperatorRegistry",
               "registerOperator", lambda a: (a.commission_bps, a.metadata_uri),
               lambda sp: (sp.add_argument("commission_bps", type=int, help="commission in basis points (<= 5000)"),
                           sp.add_argument("--metadata-uri", default="", help="where your operator profile lives")))
    tx_command("approve", "operator: accept pending licenses", "OperatorRegistry", "approve",
               lambda a: (parse_ids(a.licenses),), licenses_arg)
    tx_command("force-undelegate", "operator: drop licenses delegated to you", "OperatorRegistry",
               "forceUndelegate", lambda a: (parse_ids(a.licenses),), licenses_arg)
    cc = sub.add_parser("claim-commission", help="operator: claim your commission")
    add_chain_args(cc)
    cc.add_argument("--licenses", help="credit these license ids first (default: every license delegated to you)")
    cc.set_defaults(func=cmd_claim_commission)

    status = sub.add_parser("status", help="what the chain says about my licenses or my operator")
    add_chain_args(status)
    status.set_defaults(func=cmd_status)

    vc = sub.add_parser("validate-config", help="check the config file and environment; name what is wrong")
    vc.add_argument("--config", required=True, help="node config file (TOML)")
    vc.add_argument("--json", action="store_true", help="print JSON")
    vc.set_defaults(func=cmd_validate_config)

    add_start_parser(sub)

    ve = sub.add_parser("verify-evidence", help="re-run a verdict's judgement from its public evidence bundle")
    ve.add_argument("root", help="the evidence root (0x + 64 hex digits)")
    ve.add_argument("--from", dest="source", required=True, help="base URL of any node serving it")
    ve.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the bundle")
    ve.add_argument("--json", action="store_true", help="print JSON")
    ve.set_defaults(func=cmd_verify_evidence)

    ea = sub.add_parser("evidence-audit", help="check that every FAULT/UNREACHABLE vote revealed in an epoch has its evidence "
                                               "served by its operator and bound to it (security review M6)")
    ea.add_argument("epoch", type=int, help="the epoch whose reveals to check")
    add_chain_args(ea, key=False)
    ea.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each bundle")
    ea.set_defaults(func=cmd_evidence_audit)

    ch = sub.add_parser("challenge", help="bond on a FAULT/UNREACHABLE vote's evidence: served on chain in time, or "
                                          "the license is penalized as for a miss (security review M6)")
    ch.add_argument("epoch", type=int)
    ch.add_argument("target", type=int)
    ch.add_argument("license", type=int)
    ch.add_argument("--expire", action="store_true",
                    help="after the deadline: penalize the license of an unanswered challenge, take the bond back")
    add_chain_args(ch)
    ch.set_defaults(func=cmd_challenge)

    rf = sub.add_parser("referee", help="the referee duty: re-score served-model evidence with the weights")
    rs = rf.add_subparsers(dest="referee_cmd", required=True)
    rr = rs.add_parser("rescore", help="one verdict per (epoch, target) of the given evidence bundles")
    rr.add_argument("evidence", nargs="+", help="evidence bundle files (the exact bytes, as GET /evidence/<root>)")
    rr.add_argument("--baselines", action="append", required=True,
                    help="a directory or base URL holding <hash>.json baselines (repeatable)")
    rr.add_argument("--seed", type=int, default=0, help="the referee's sampling seed (default 0)")
    rr.add_argument("--samples", type=int, default=20, help="fresh samples per completion for the rank test")
    rr.add_argument("--json", action="store_true", help="print JSON")
    rr.set_defaults(func=cmd_referee)
    rg = rs.add_parser("register", help="bond yourself as a referee of a baseline (RefereeCourt.register)")
    add_chain_args(rg)
    rg.add_argument("baseline", help="the baseline hash (0x + 64 hex digits) whose weights you hold")
    rg.add_argument("--bond", help="amount to bond (default: the court's minimum), e.g. '100 ether'")
    rg.set_defaults(func=cmd_referee_chain)
    rb = rs.add_parser("bind", help="bind MODEL targets to their baselines so they are refereed")
    add_chain_args(rb)
    rb.add_argument("targets", help="target ids, e.g. 3,5-7")
    rb.set_defaults(func=cmd_referee_chain)
    ru = rs.add_parser("run", help="judge every (epoch, target) you are drawn for, in its verdict window")
    add_chain_args(ru)
    ru.add_argument("--baseline", action="append", required=True, help="a baseline hash you referee (repeatable)")
    ru.add_argument("--baselines", action="append", required=True,
                    help="a directory or base URL holding <hash>.json baselines (repeatable)")
    ru.add_argument("--evidence-from", action="append", help="a node API base URL serving /evidence/<root> (repeatable)")
    ru.add_argument("--store", help="the node store (SQLite) to read evidence from and publish verdicts in "
                                    "(default: the config's data_dir/node.sqlite)")
    ru.add_argument("--seed", type=int, default=0, help="the referee's sampling seed")
    ru.add_argument("--samples", type=int, default=20, help="fresh samples per completion for the rank test")
    ru.add_argument("--once", action="store_true", help="one pass, then exit")
    ru.add_argument("--interval", type=float, default=10.0, help="seconds between passes")
    ru.set_defaults(func=cmd_referee_chain)

    devnet = sub.add_parser("devnet", help="a local network with running nodes")
    ds = devnet.add_subparsers(dest="devnet_cmd", required=True)
    from .devnet.scenarios import add_devnet_args

    add_devnet_args(ds)
    devnet.set_defaults(func=cmd_devnet)
    from .zgs.cli import add_zgs_args

    add_zgs_args(sub)
    from .models.cli import add_model_args

    add_model_args(sub)
    from .governance_cli import add_governance_args

    add_governance_args(sub, ChainContext, add_chain_args)
    from .init_cli import add_init_args

    add_init_args(sub)
    from .deploy_cli import add_deploy_args

    add_deploy_args(sub, add_key_args, unlock)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The node parses its command without the other commands' modules (the devnet's, the models', ...): it
    # unlocks its key before importing anything large, so scrypt's 16 MB and the node's modules are never in
    # memory together (bench/README.md, node memory).
    parser = build_parser(node_only=argv[:1] == ["start"])
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CliError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "error_name": exc.error_name}, sort_keys=True))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
