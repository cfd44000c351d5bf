"""The ``alignment-node governance`` commands: license holders propose, vote, queue and execute.

    alignment-node governance proposals                      every proposal: state, votes, quorum, decoded actions
    alignment-node governance show 3                         one proposal, with who voted how
    alignment-node governance propose --set AuditProtocol.setParams committeeSize=7 \\
        --add-target EVM_RPC https://rpc.example --identity 0x... --description "..." [--dry-run]
    alignment-node governance vote 3 for|against|abstain [--reason TEXT]
    alignment-node governance queue 3 / execute 3
    alignment-node governance delegate self|ADDRESS          where your licenses' votes go
    alignment-node governance power [ADDRESS]                votes now, delegate, licenses

Chain access (``--config`` or ``--rpc``/``--manifest``, the keystore options, ``--json``) is the one every owner
command has. Wiring in alignment_node/cli.py: ``add_governance_args(sub, ChainContext, add_chain_args)`` (passed in,
so this module does not import cli.py, which imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, Callable

from .chain.contracts import ContractRevert
from .chain.keccak import is_address, keccak256, to_checksum_address
from .chain.rpc import RpcException
from .errors import CliError
from .governance import (
    SUPPORT,
    Action,
    AddressBook,
    GovernanceError,
    Proposal,
    build_add_target,
    build_call,
    build_set,
    decode_action,
    explain_revert,
    find_proposal,
    load_proposals,
    proposal_status,
    simulate,
    votes_cast,
)

__all__ = ["add_governance_args", "cmd_governance"]


class _OrderedAction(argparse.Action):
    """Collects --set/--call/--add-target/--identity in command-line order into ``namespace.actions``."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.actions = [*(getattr(namespace, "actions", None) or []), (self.const, list(values))]


def add_governance_args(sub: argparse._SubParsersAction, chain_context: type,
                        add_chain_args: Callable[..., None]) -> argparse.ArgumentParser:
    """Register ``governance`` and its subcommands on ``sub``; ``chain_context`` is cli.ChainContext and
    ``add_chain_args`` cli.add_chain_args. Returns the group's parser."""
    gov = sub.add_parser("governance", help="license holders: proposals, votes, queue, execute, vote delegation")
    gs = gov.add_subparsers(dest="governance_cmd", metavar="GOVERNANCE_COMMAND", required=True)

    ls = gs.add_parser("proposals", help="every proposal: state, votes, quorum, deadline, decoded actions")
    add_chain_args(ls, key=False)
    show = gs.add_parser("show", help="one proposal, with its votes")
    add_chain_args(show, key=False)
    show.add_argument("proposal", help="its number in `proposals` (3 or #3) or its full id")

    pr = gs.add_parser("propose", help="propose actions the Timelock runs if the vote passes")
    add_chain_args(pr)
    pr.add_argument("--set", action=_OrderedAction, const="set", nargs="+", metavar="ARG",
                    help="CONTRACT.SETTER NAME=VALUE ...: change named values; the others keep their value on chain "
                         "(e.g. --set AuditProtocol.setParams committeeSize=7)")
    pr.add_argument("--add-target", action=_OrderedAction, const="add-target", nargs=2, metavar=("KIND", "ENDPOINT"),
                    help="register a target (TargetRegistry.addTarget); KIND: EVM_RPC, COMETBFT, ZGS_STORAGE, "
                         "DA_SIGNER, MODEL")
    pr.add_argument("--identity", action=_OrderedAction, const="identity", nargs=1, metavar="HEX",
                    help="the identity (0x hex) of the --add-target just before it")
    pr.add_argument("--call", action=_OrderedAction, const="call", nargs="+", metavar="ARG",
                    help="CONTRACT.FUNCTION ARG ...: any function, arguments parsed by its ABI (addresses may be "
                         "contract names; lists and structs as JSON)")
    pr.add_argument("--description", required=True, help="what the proposal does and why (it is part of its id)")
    pr.add_argument("--dry-run", action="store_true", help="print the decoded actions and calldata; send nothing")

    vote = gs.add_parser("vote", help="vote on an Active proposal with your licenses' votes")
    add_chain_args(vote)
    vote.add_argument("proposal", help="its number (3 or #3) or its full id")
    vote.add_argument("support", choices=sorted(SUPPORT), help="for, against or abstain")
    vote.add_argument("--reason", default="", help="a reason, recorded on chain")
    for name, helptext in (("queue", "queue a Succeeded proposal in the Timelock"),
                           ("execute", "execute a Queued proposal once the Timelock's delay has passed")):
        sp = gs.add_parser(name, help=helptext)
        add_chain_args(sp)
        sp.add_argument("proposal", help="its number (3 or #3) or its full id")

    dl = gs.add_parser("delegate", help="give your licenses' votes to an address (yourself: 'self')")
    add_chain_args(dl)
    dl.add_argument("delegatee", help="an address, or 'self'")
    pw = gs.add_parser("power", help="votes now, delegate and licenses of an address (default: your key)")
    add_chain_args(pw)
    pw.add_argument("who", nargs="?", help="the address (default: the keystore's)")

    gov.set_defaults(func=cmd_governance, chain_context=chain_context)
    return gov


# ------------------------------------------------------------------------------------------- running


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, sort_keys=True, default=str) if args.json else text)


def cmd_governance(args: argparse.Namespace) -> int:
    handler = {"proposals": _proposals, "show": _show, "propose": _propose, "vote": _vote, "queue": _queue,
               "execute": _execute, "delegate": _delegate, "power": _power}[args.governance_cmd]

    async def main():
        async with args.chain_context(args) as ctx:
            if "AlignmentGovernor" not in ctx.c:
                raise CliError("the deployment manifest has no AlignmentGovernor")
            return await handler(ctx, args)

    try:
        data, text = asyncio.run(main())
    except GovernanceError as exc:
        raise CliError(str(exc)) from None
    except ContractRevert as exc:  # a read that reverted (transactions are explained where they are sent)
        raise CliError(str(exc), exc.error_name) from None
    except RpcException as exc:
        raise CliError(f"chain unreachable or answered badly: {exc}") from None
    _emit(args, data, text)
    return 0


async def _head(ctx) -> tuple[int, int]:
    """(block number, unix time) of the head."""
    block = await ctx.rpc.get_block("latest")
    return int(block["number"], 16), int(block["timestamp"], 16)


async def _load(ctx) -> tuple[AddressBook, list[Proposal]]:
    return AddressBook(ctx.manifest), await load_proposals(ctx.c["AlignmentGovernor"], int(ctx.manifest["deployBlock"]))


async def _status(ctx, book: AddressBook, p: Proposal) -> dict:
    head, now = await _head(ctx)
    return await proposal_status(ctx.c["AlignmentGovernor"], book, p, head, now)


def _render(st: dict) -> str:
    v = st["votes"]
    if st["quorum"] is None:
        quorum = f"quorum counted at block {st['snapshot_block']}"
    else:
        quorum = (f"quorum {st['quorum']} at block {st['snapshot_block']} "
                  f"({'reached' if st['quorum_reached'] else 'not reached'})")
    lines = [f"#{st['number']} {st['state']}: {st['description']}",
             f"  id {st['id']}, by {st['proposer']} at block {st['proposed_block']}",
             f"  votes: for {v['for']}, against {v['against']}, abstain {v['abstain']}; {quorum}",
             f"  voting: blocks {st['snapshot_block'] + 1}..{st['deadline_block']} (head {st['head_block']})"]
    if st["eta"]:
        when = f"in {st['eta_in_s']} s" if st["eta_in_s"] > 0 else "now"
        lines.append(f"  timelock: executable from unix time {st['eta']} ({when})" if st["state"] == "Queued"
                     else f"  timelock release was unix time {st['eta']}")
    lines += [f"  {i}. {a['text']}" for i, a in enumerate(st["actions"], 1)]
    return "\n".join(lines)


async def _proposals(ctx, args):
    book, proposals = await _load(ctx)
    statuses = [await _status(ctx, book, p) for p in proposals]
    text = "\n".join(_render(s) for s in statuses) or "no proposals yet"
    return {"proposals": statuses}, text


async def _show(ctx, args):
    book, proposals = await _load(ctx)
    p = find_proposal(proposals, args.proposal)
    st = await _status(ctx, book, p)
    votes = await votes_cast(ctx.c["AlignmentGovernor"], p)
    st["voters"] = votes
    lines = [_render(st)] + [f"  vote: {v['voter']} {v['support']} with {v['weight']}"
                             + (f" ({v['reason']})" if v["reason"] else "") for v in votes]
    return st, "\n".join(lines)


# ---------------------------------------------------------------------------------------- proposing


async def _build_actions(ctx, book: AddressBook, items: list) -> list[Action]:
    actions: list[Action] = []
    last_target: dict | None = None
    for kind, values in items:
        if kind == "identity":
            if last_target is None or last_target["identity"] is not None:
                raise GovernanceError("--identity belongs right after an --add-target KIND ENDPOINT (one each)")
            last_target["identity"] = values[0]
            continue
        if kind == "add-target":
            last_target = {"kind": values[0], "endpoint": values[1], "identity": None}
            actions.append(last_target)  # built below, once its --identity is known
            continue
        last_target = None
        if kind == "set":
            actions.append(await build_set(book, ctx.rpc, values[0], values[1:]))
        else:
            actions.append(build_call(book, values[0], values[1:]))
    return [build_add_target(book, a["kind"], a["endpoint"], a["identity"]) if isinstance(a, dict) else a
            for a in actions]


async def _propose(ctx, args):
    book = AddressBook(ctx.manifest)
    if not getattr(args, "actions", None):
        raise GovernanceError("a proposal needs at least one action: --set, --add-target or --call")
    if not args.description.strip():
        raise GovernanceError("--description is empty: say what the proposal does and why")
    actions = await _build_actions(ctx, book, args.actions)
    gov = ctx.c["AlignmentGovernor"]
    timelock = book.addresses["Timelock"]
    decoded = []
    for a in actions:
        d = decode_action(book, a.target, a.value, a.calldata, a.note)
        problem = await simulate(ctx.rpc, timelock, a)
        d["would_revert"] = str(problem) if problem else None
        decoded.append(d)
    targets, values, calldatas = [a.target for a in actions], [a.value for a in actions], [a.calldata for a in actions]
    desc_hash = keccak256(args.description.encode("utf-8"))
    proposal_id = await gov.call("hashProposal", targets, values, calldatas, desc_hash)
    lines = [f"{i}. {d['text']}" + (f"\n   calldata {d['calldata']}" if args.dry_run else "")
             + (f"\n   warning: run by the Timelock now, this reverts: {d['would_revert']}" * bool(d["would_revert"]))
             for i, d in enumerate(decoded, 1)]
    data: dict[str, Any] = {"actions": decoded, "description": args.description, "id": str(proposal_id),
                            "description_hash": "0x" + desc_hash.hex(), "dry_run": args.dry_run}
    if args.dry_run:
        return data, "\n".join(["dry run: nothing sent; the proposal would be", *lines, f"id {proposal_id}"])
    signer = ctx.signer()
    if not args.json:
        print("\n".join([f"proposing as {signer.address}:", *lines]), flush=True)
    # The Governor counts the proposer's votes at the block before the one its transaction lands in: the head.
    votes = await ctx.c["AlignmentLicense"].call("getVotes", signer.address)
    threshold = await gov.call("proposalThreshold")
    if votes < threshold:
        raise CliError(f"{signer.address} has {votes} vote(s) and proposing needs {threshold}: "
                       "hold or be delegated licenses (see `governance power`)", "GovernorInsufficientProposerVotes")
    receipt = await _send(ctx, "propose", "propose", (targets, values, calldatas, args.description), signer)
    _, proposals = await _load(ctx)
    p = find_proposal(proposals, hex(proposal_id))
    data.update(receipt, number=p.number, snapshot_block=p.vote_start, deadline_block=p.vote_end)
    return data, (f"proposed #{p.number} (id {p.id}) in block {receipt['block']}: voting in blocks "
                  f"{p.vote_start + 1}..{p.vote_end}")


async def _send(ctx, op: str, fn: str, fn_args: tuple, signer, p: Proposal | None = None, value: int = 0,
                contract: str = "AlignmentGovernor") -> dict:
    """Send one transaction; a revert becomes a CliError in plain words (explain_revert)."""
    try:
        receipt = await ctx.c[contract].transact(fn, *fn_args, signer=signer, value=value)
    except ContractRevert as exc:
        status = None
        if p is not None:
            status = await _status(ctx, AddressBook(ctx.manifest), p)
        raise CliError(explain_revert(exc.error, op, p, status, signer.address), exc.error_name) from None
    return {"tx": receipt["transactionHash"], "block": int(receipt["blockNumber"], 16),
            "gas_used": int(receipt["gasUsed"], 16), "from": signer.address, "logs": receipt["logs"]}


def _public(receipt: dict) -> dict:
    return {k: v for k, v in receipt.items() if k != "logs"}


# -------------------------------------------------------------------------------- voting and after


async def _one(ctx, args) -> tuple[AddressBook, Proposal]:
    book, proposals = await _load(ctx)
    return book, find_proposal(proposals, args.proposal)


async def _vote(ctx, args):
    book, p = await _one(ctx, args)
    signer = ctx.signer()
    gov = ctx.c["AlignmentGovernor"]
    head, _ = await _head(ctx)
    if p.vote_start <= head:  # past snapshots are read from the Governor; the head block's is the current count
        weight = (await gov.call("getVotes", signer.address, p.vote_start) if p.vote_start < head
                  else await ctx.c["AlignmentLicense"].call("getVotes", signer.address))
        if weight == 0:
            raise CliError(f"{signer.address} had no votes at {p.label}'s snapshot block {p.vote_start}: only licenses "
                           "held and delegated (to yourself or to you) before it count (see `governance power`)")
    support = SUPPORT[args.support]
    fn_args = (p.id, support, args.reason) if args.reason else (p.id, support)
    receipt = await _send(ctx, "vote", "castVoteWithReason" if args.reason else "castVote", fn_args, signer, p)
    event = gov.abi.event("VoteCast")
    weight = next(event.decode_entry(log)["weight"] for log in receipt["logs"]
                  if log["topics"][0] == "0x" + event.topic.hex())
    st = await _status(ctx, book, p)
    v = st["votes"]
    data = {**_public(receipt), "number": p.number, "id": str(p.id), "support": args.support, "weight": weight,
            "votes": v}
    return data, (f"voted {args.support} on {p.label} with {weight} vote(s) (tx {receipt['tx']}); now for {v['for']}, "
                  f"against {v['against']}, abstain {v['abstain']}; voting ends at block {p.vote_end}")


async def _queue(ctx, args):
    book, p = await _one(ctx, args)
    signer = ctx.signer()
    receipt = await _send(ctx, "queue", "queue", (p.targets, p.values, p.calldatas, p.description_hash), signer, p)
    eta = await ctx.c["AlignmentGovernor"].call("proposalEta", p.id)
    _, now = await _head(ctx)
    data = {**_public(receipt), "number": p.number, "id": str(p.id), "eta": eta, "eta_in_s": eta - now}
    return data, (f"queued {p.label} (tx {receipt['tx']}): executable from unix time {eta} (in {eta - now} s); then "
                  f"run `governance execute {p.number}`")


async def _execute(ctx, args):
    book, p = await _one(ctx, args)
    signer = ctx.signer()
    receipt = await _send(ctx, "execute", "execute", (p.targets, p.values, p.calldatas, p.description_hash), signer, p,
                          value=sum(p.values))
    actions = [decode_action(book, t, v, c)["text"] for t, v, c in zip(p.targets, p.values, p.calldatas)]
    data = {**_public(receipt), "number": p.number, "id": str(p.id), "actions": actions}
    return data, "\n".join([f"executed {p.label} (tx {receipt['tx']}):", *(f"  {a}" for a in actions)])


# ---------------------------------------------------------------------------------------- vote power


async def _delegate(ctx, args):
    signer = ctx.signer()
    text = args.delegatee.strip()
    if text.lower() == "self":
        to = signer.address
    elif is_address(text):
        to = to_checksum_address(text)
    else:
        raise CliError(f"not an address: {args.delegatee!r} (give 0x... or 'self')")
    lic = ctx.c["AlignmentLicense"]
    before = await lic.call("delegates", signer.address)
    receipt = await _send(ctx, "delegate", "delegate", (to,), signer, contract="AlignmentLicense")
    licenses = await lic.call("balanceOf", signer.address)
    data = {**_public(receipt), "delegate": to, "previous_delegate": before, "licenses": licenses,
            "delegate_votes": await lic.call("getVotes", to)}
    text = (f"the votes of your {licenses} license(s) go to {to} from block {receipt['block'] + 1} on "
            f"(was {before}); it now has {data['delegate_votes']} vote(s). Proposals made before then count the old "
            "delegation")
    return data, text


async def _power(ctx, args):
    if args.who:
        if not is_address(args.who):
            raise CliError(f"not an address: {args.who!r}")
        who = to_checksum_address(args.who)
    else:
        who = ctx.signer().address
    lic, gov = ctx.c["AlignmentLicense"], ctx.c["AlignmentGovernor"]
    head, _ = await _head(ctx)
    data = {"address": who, "licenses": await lic.call("balanceOf", who), "delegate": await lic.call("delegates", who),
            "votes": await lic.call("getVotes", who), "proposal_threshold": await gov.call("proposalThreshold"),
            # totals are kept for past blocks only: these are the block before the head's
            "total_votes": await lic.call("getPastTotalSupply", head - 1),
            "quorum_now": await gov.call("quorum", head - 1), "block": head}
    zero = "0x" + "00" * 20
    if data["licenses"] and data["delegate"] == zero:
        note = "its licenses carry no vote until it delegates: `governance delegate self`"
    elif data["licenses"] and data["delegate"] != who:
        note = f"its licenses' votes go to {data['delegate']}"
    else:
        note = ""
    delegate = data["delegate"] if data["delegate"] != zero else "none"
    text = (f"{who}: {data['votes']} vote(s) now, {data['licenses']} license(s), delegate {delegate}; "
            f"proposing needs {data['proposal_threshold']}; "
            f"at block {head - 1} the quorum was {data['quorum_now']} of {data['total_votes']} votes"
            + (f"\n  {note}" if note else ""))
    return data, text
