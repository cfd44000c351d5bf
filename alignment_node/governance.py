"""Governance by license holders: proposals of the AlignmentGovernor read from the chain, actions built from
contract and function names (never raw calldata) and decoded back, and the Governor's reverts in plain words.

The Governor (contracts/src/AlignmentGovernor.sol) counts one vote per license at each proposal's snapshot block;
a proposal that passes is queued in the Timelock, which owns every setter, and executed after the Timelock's delay
(seconds). Proposal ids are 256-bit hashes, so proposals are also numbered #1, #2, ... in the order they were made
(docs/deployment.md, "Govern").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence

from .chain.abi import AbiArgumentError, AbiDecodeError, AbiFunction, ContractAbi, DecodedError, canonical_type, \
    decode_params, format_value
from .chain.artifacts import ArtifactError, load_artifact
from .chain.contracts import Contract
from .chain.keccak import is_address, keccak256, to_checksum_address
from .chain.manifest import chain_events
from .chain.rpc import RpcClient, RpcError
from .protocol import KIND_NAMES

__all__ = ["PROPOSAL_STATES", "SUPPORT", "SUPPORT_NAMES", "GovernanceError", "AddressBook", "Action", "Proposal",
           "build_call", "build_set", "build_add_target", "decode_action", "simulate", "load_proposals", "votes_cast",
           "find_proposal", "proposal_status", "explain_revert", "jsonable"]

# Governor.ProposalState, in enum order.
PROPOSAL_STATES = ("Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired", "Executed")
# GovernorCountingSimple.VoteType
SUPPORT = {"against": 0, "for": 1, "abstain": 2}
SUPPORT_NAMES = {v: k for k, v in SUPPORT.items()}
# Below this a proposal reference is its number in `proposals`, not its id (ids are keccak256 hashes).
MAX_PROPOSAL_NUMBER = 2**64
UNITS = {"ether": 10**18, "gwei": 10**9, "wei": 1}


class GovernanceError(ValueError):
    """Input that cannot become a proposal or a governance transaction; the message says what to change."""


def jsonable(value: Any) -> Any:
    """A decoded ABI value for JSON: bytes as 0x hex, big integers (ids, wei) as decimal strings."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# -------------------------------------------------------------------------------- contracts by name


class AddressBook:
    """The deployment's contracts by name and by address, with their committed ABIs (the Timelock's included)."""

    def __init__(self, manifest: Mapping[str, Any]):
        self.addresses = {name: to_checksum_address(a) for name, a in manifest["contracts"].items()}
        self.names = {a.lower(): name for name, a in self.addresses.items()}
        self.abis: dict[str, ContractAbi] = {}
        for name in self.addresses:
            try:
                self.abis[name] = load_artifact(name).contract_abi
            except (ArtifactError, FileNotFoundError):
                continue  # a contract without a committed artifact is shown by address

    def abi(self, name: str) -> ContractAbi:
        if name not in self.abis:
            known = ", ".join(sorted(self.abis))
            raise GovernanceError(f"no contract {name!r} in the deployment manifest (known: {known})")
        return self.abis[name]

    def function(self, name: str, fn: str) -> AbiFunction:
        abi = self.abi(name)
        try:
            f = abi.function(fn)
        except AbiArgumentError as exc:
            writable = sorted({f.name for fs in abi.functions.values() for f in fs if not f.is_view})
            raise GovernanceError(f"{exc}; its functions that change state: {', '.join(writable)}") from None
        if f.is_view:
            raise GovernanceError(f"{name}.{f.name} only reads ({f.state_mutability}): "
                                  "a proposal of it changes nothing")
        return f

    def address_of(self, text: str) -> str:
        """An address literal, or the name of a contract of the deployment."""
        if text in self.addresses:
            return self.addresses[text]
        if not is_address(text):
            raise GovernanceError(f"not an address or a contract name of the deployment: {text!r}")
        return text

    def label(self, address: str) -> str:
        return self.names.get(address.lower(), address)


def split_target(spec: str) -> tuple[str, str]:
    """'AuditProtocol.setParams' -> ('AuditProtocol', 'setParams')."""
    name, dot, fn = spec.partition(".")
    if not dot or not name or not fn:
        raise GovernanceError(f"name the function as CONTRACT.FUNCTION (e.g. AuditProtocol.setParams), not {spec!r}")
    return name, fn


# ------------------------------------------------------------------------------- arguments from text


def parse_int(text: str, where: str) -> int:
    """'7', '0x10', '1_000', '1.5 ether', '20 gwei', '100wei' -> int."""
    t = text.strip().lower().replace("_", "").replace(" ", "")
    unit = next((u for u in UNITS if t.endswith(u) and not t.startswith("0x")), None)
    try:
        if unit:
            value = Decimal(t[: -len(unit)]) * UNITS[unit]
            if value != value.to_integral_value():
                raise GovernanceError(f"{where}: {text!r} is not a whole number of wei")
            return int(value)
        return int(t, 0)
    except (ValueError, InvalidOperation):
        raise GovernanceError(f"{where}: not an integer: {text!r} (e.g. 7, 0x07, '1.5 ether')") from None


def _array_type(t: str) -> tuple[str, int | None] | None:
    if not t.endswith("]"):
        return None
    i = t.rindex("[")
    return t[:i], (int(t[i + 1 : -1]) if t[i + 1 : -1] else None)


def convert(book: AddressBook, param: Mapping[str, Any], value: Any, where: str, t: str | None = None) -> Any:
    """A command-line value (text, or JSON for arrays and structs) as the Python value of ABI type ``t``."""
    t = t or param["type"]
    arr = _array_type(t)
    if arr is not None:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _json(text, where)
            else:
                value = [v for v in text.split(",")] if text else []
        if not isinstance(value, list):
            raise GovernanceError(f"{where}: expected a list for {t} (JSON [..] or comma separated)")
        return [convert(book, param, v, f"{where}[{i}]", arr[0]) for i, v in enumerate(value)]
    if t == "tuple":
        comps = param.get("components", ())
        if isinstance(value, str):
            value = _json(value, where) if value.strip()[:1] in "[{" else _assignments(value.split(","), where)
        if isinstance(value, dict):
            names = [c["name"] for c in comps]
            unknown = sorted(set(value) - set(names))
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise GovernanceError(f"{where}: fields are {', '.join(names)}; "
                                      f"missing {', '.join(missing) or 'none'}, unknown {', '.join(unknown) or 'none'}")
            value = [value[n] for n in names]
        if not isinstance(value, list) or len(value) != len(comps):
            raise GovernanceError(f"{where}: a struct of {len(comps)} fields ({canonical_type(param)})")
        return tuple(convert(book, c, v, f"{where}.{c.get('name') or i}") for i, (c, v) in enumerate(zip(comps, value)))
    if isinstance(value, bool) or (isinstance(value, int) and not isinstance(value, bool)):
        if t == "bool" or t.startswith(("uint", "int")):
            return value
        value = str(value)
    if not isinstance(value, str):
        raise GovernanceError(f"{where}: expected a {t} value, got {json.dumps(value)}")
    if t.startswith(("uint", "int")):
        return parse_int(value, where)
    if t == "bool":
        low = value.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        raise GovernanceError(f"{where}: expected true or false, got {value!r}")
    if t == "address":
        try:
            return book.address_of(value.strip())
        except GovernanceError as exc:
            raise GovernanceError(f"{where}: {exc}") from None
    if t.startswith("bytes"):
        text = value.strip()
        if not re.fullmatch(r"0x([0-9a-fA-F]{2})*", text):
            raise GovernanceError(f"{where}: expected 0x followed by hex bytes, got {value!r}")
        return bytes.fromhex(text[2:])
    return value  # string


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise GovernanceError(f"{where}: not valid JSON: {text!r}") from None


def _assignments(items: Sequence[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise GovernanceError(f"{where}: expected NAME=VALUE, got {item!r}")
        if name.strip() in out:
            raise GovernanceError(f"{where}: {name.strip()} given twice")
        out[name.strip()] = value
    return out


# ------------------------------------------------------------------------------------------ actions


@dataclass
class Action:
    """One call the Timelock makes when the proposal executes."""

    target: str
    calldata: bytes
    value: int = 0
    note: str = ""  # what a named action changes, e.g. "committeeSize 5 -> 7"


def _encode(f: AbiFunction, name: str, args: Sequence[Any]) -> bytes:
    try:
        return f.encode(*args)
    except AbiArgumentError as exc:
        raise GovernanceError(f"{name}.{exc}") from None


def build_call(book: AddressBook, spec: str, texts: Sequence[str]) -> Action:
    """``--call CONTRACT.FUNCTION ARG...``: each argument parsed by its ABI type."""
    name, fn = split_target(spec)
    f = book.function(name, fn)
    if len(texts) != len(f.inputs):
        wanted = ", ".join(f"{p.get('name') or '?'} ({canonical_type(p)})" for p in f.inputs) or "none"
        raise GovernanceError(f"{name}.{f.signature} takes {len(f.inputs)} argument(s): {wanted}; got {len(texts)}")
    args = [convert(book, p, v, f"{name}.{f.name} {p.get('name') or i}")
            for i, (p, v) in enumerate(zip(f.inputs, texts))]
    return Action(book.addresses[name], _encode(f, name, args))


async def build_set(book: AddressBook, rpc: RpcClient, spec: str, texts: Sequence[str]) -> Action:
    """``--set CONTRACT.SETTER NAME=VALUE...``: the setter's arguments (or, for a setter of one struct, the struct's
    fields) by name; the ones not named keep their value on chain, read from the matching getter (setParams ->
    params). A setter of one value also takes the bare value."""
    name, fn = split_target(spec)
    f = book.function(name, fn)
    struct = len(f.inputs) == 1 and f.inputs[0]["type"] == "tuple"
    fields = list(f.inputs[0]["components"] if struct else f.inputs)
    names = [p.get("name") or "" for p in fields]
    if len(fields) == 1 and len(texts) == 1 and "=" not in texts[0]:
        given = {names[0]: texts[0]}
    else:
        given = _assignments(texts, f"{name}.{f.name}")
    unknown = [n for n in given if n not in names]
    if unknown:
        raise GovernanceError(f"{name}.{f.name} has no field {unknown[0]!r}; its fields: {', '.join(names)}")
    if not given:
        raise GovernanceError(f"{name}.{f.name}: name what to change, e.g. {names[0]}=VALUE")
    contract = Contract(rpc, book.addresses[name], book.abi(name), name)
    current = await _current_values(book, contract, f, names) if len(given) < len(names) else None
    values = []
    changes = []
    for i, (p, n) in enumerate(zip(fields, names)):
        if n in given:
            v = convert(book, p, given[n], f"{name}.{f.name} {n}")
            old = current[i] if current is not None else None
            changes.append(f"{n} {format_value(old)} -> {format_value(v)}" if current is not None else
                           f"{n} = {format_value(v)}")
        else:
            v = current[i]
        values.append(v)
    args = [tuple(values)] if struct else values
    kept = len(names) - len(given)
    note = "; ".join(changes) + (f" ({kept} other field(s) unchanged)" if kept else "")
    return Action(book.addresses[name], _encode(f, name, args), note=note)


async def _current_values(book: AddressBook, contract: Contract, setter: AbiFunction, names: list[str]) -> list:
    setter_of = setter.name.startswith("set") and len(setter.name) > 3
    getter_name = setter.name[3].lower() + setter.name[4:] if setter_of else ""
    fns = book.abi(contract.name).functions.get(getter_name, [])
    getter = next((g for g in fns if not g.inputs and g.is_view), None)
    if getter is None:
        raise GovernanceError(f"{contract.name}.{setter.name}: give every one of {', '.join(names)} "
                              f"(there is no {getter_name or 'getter'}() to read the others from)")
    value = await contract.call(getter.name)
    value = list(value) if isinstance(value, (tuple, list)) and len(names) > 1 else [value]
    if len(value) != len(names):
        raise GovernanceError(f"{contract.name}.{getter.name}() does not return the {len(names)} values of "
                              f"{setter.name}: give all of {', '.join(names)}")
    return value


def build_add_target(book: AddressBook, kind: str, endpoint: str, identity: str | None) -> Action:
    """``--add-target KIND ENDPOINT [--identity HEX]``: TargetRegistry.addTarget (KIND a name or its number)."""
    by_name = {v.lower(): k for k, v in KIND_NAMES.items()}
    text = kind.strip()
    if text.lower() in by_name:
        number = by_name[text.lower()]
    elif text.isdigit() and int(text) in KIND_NAMES:
        number = int(text)
    else:
        raise GovernanceError(f"unknown target kind {kind!r}: one of {', '.join(KIND_NAMES.values())} "
                              f"(or {min(KIND_NAMES)}..{max(KIND_NAMES)})")
    if not endpoint.strip():
        raise GovernanceError("the target's endpoint is empty")
    f = book.function("TargetRegistry", "addTarget")
    ident = convert(book, {"type": "bytes"}, identity or "0x", "--identity")
    return Action(book.addresses["TargetRegistry"], _encode(f, "TargetRegistry", [number, endpoint, ident]),
                  note=f"new {KIND_NAMES[number]} target, enabled from the next epoch")


def decode_action(book: AddressBook, target: str, value: int, calldata: bytes, note: str = "") -> dict:
    """What a proposal's action does, from the committed ABIs: contract, function, named arguments, one line."""
    name = book.names.get(target.lower())
    out: dict[str, Any] = {"target": to_checksum_address(target), "contract": name, "value": jsonable(value),
                           "calldata": "0x" + bytes(calldata).hex(), "function": None, "args": None}
    f = None
    if name in book.abis and len(calldata) >= 4:
        selector = bytes(calldata[:4])
        f = next((g for gs in book.abis[name].functions.values() for g in gs if g.selector == selector), None)
    if f is None:
        out["text"] = f"{name or target}: unknown call 0x{bytes(calldata[:4]).hex()} ({len(calldata)} bytes)"
        return out
    try:
        values = decode_params(f.inputs, bytes(calldata[4:]), f.signature, named=True)
    except AbiDecodeError:
        out["text"] = f"{name}.{f.signature}: arguments that do not decode"
        return out
    named = {(p.get("name") or f"arg{i}"): v for i, (p, v) in enumerate(zip(f.inputs, values))}
    if name == "TargetRegistry" and f.name == "addTarget" and named.get("kind") in KIND_NAMES:
        shown = {**named, "kind": f"{named['kind']} ({KIND_NAMES[named['kind']]})"}
    else:
        shown = named
    out.update(function=f.signature, args=jsonable(named))
    text = f"{name}.{f.name}(" + ", ".join(f"{k}={v if isinstance(v, str) and k == 'kind' else format_value(v)}"
                                         for k, v in shown.items()) + ")"
    if value:
        text += f" with {value} wei"
    out["text"] = text + (f"  [{note}]" if note else "")
    return out


async def simulate(rpc: RpcClient, timelock: str, action: Action) -> DecodedError | str | None:
    """Run the action as the Timelock would today (eth_call from its address): None when it would succeed, else
    the decoded revert (or the node's message)."""
    from .chain.artifacts import decode_revert

    try:
        await rpc.call({"from": timelock, "to": action.target, "data": action.calldata, "value": action.value})
    except RpcError as exc:
        data = exc.revert_data
        return decode_revert(data) if data else exc.message
    return None


# ---------------------------------------------------------------------------------------- proposals


@dataclass
class Proposal:
    """A proposal as its ProposalCreated event tells it; ``number`` is its place among the Governor's proposals."""

    number: int
    id: int
    proposer: str
    targets: list[str]
    values: list[int]
    calldatas: list[bytes]
    vote_start: int  # the snapshot block
    vote_end: int  # the last block of voting
    description: str
    block: int
    tx: str | None

    @property
    def description_hash(self) -> bytes:
        """keccak256 of the description: what queue and execute take in place of the text."""
        return keccak256(self.description.encode("utf-8"))

    @property
    def label(self) -> str:
        return f"proposal #{self.number}"


async def load_proposals(governor: Contract, from_block: int) -> list[Proposal]:
    """Every proposal of ``governor``, from its ProposalCreated events since ``from_block``, oldest first."""
    return [Proposal(i, e["proposalId"], e["proposer"], list(e["targets"]), list(e["values"]),
                     [bytes(c) for c in e["calldatas"]], e["voteStart"], e["voteEnd"], e["description"],
                     e.block_number, e.transaction_hash)
            for i, e in enumerate(await chain_events(governor, "ProposalCreated", from_block), 1)]


async def votes_cast(governor: Contract, p: Proposal) -> list[dict]:
    """Who voted how on ``p``, from the VoteCast events since it was made."""
    return [{"voter": e["voter"], "support": SUPPORT_NAMES.get(e["support"], e["support"]), "weight": e["weight"],
             "reason": e["reason"], "block": e.block_number}
            for e in await chain_events(governor, "VoteCast", p.block) if e["proposalId"] == p.id]


def find_proposal(proposals: Sequence[Proposal], ref: str) -> Proposal:
    """A proposal by its number (``3`` or ``#3``) or by its id (decimal or 0x hex)."""
    text = ref.strip()
    try:
        if text.startswith("#"):
            number, key = int(text[1:]), "number"
        else:
            value = int(text, 0)
            number, key = (value, "number") if value < MAX_PROPOSAL_NUMBER else (value, "id")
    except ValueError:
        raise GovernanceError(f"not a proposal number or id: {ref!r} (e.g. 3, #3, or the full id)") from None
    for p in proposals:
        if getattr(p, key) == number:
            return p
    what = f"#{number}" if key == "number" else f"with id {number}"
    raise GovernanceError(f"there is no proposal {what} on this Governor ({len(proposals)} proposal(s) so far; "
                          f"list them with `governance proposals`)")


async def proposal_status(governor: Contract, book: AddressBook, p: Proposal, head: int, now: int) -> dict:
    """The proposal as of the head: state, votes, quorum at its snapshot, timings and decoded actions."""
    state = PROPOSAL_STATES[await governor.call("state", p.id)]
    against, for_, abstain = await governor.call("proposalVotes", p.id)
    quorum = await governor.call("quorum", p.vote_start) if p.vote_start < head else None
    eta = await governor.call("proposalEta", p.id)
    return {
        "number": p.number, "id": str(p.id), "state": state, "proposer": p.proposer, "description": p.description,
        "votes": {"for": for_, "against": against, "abstain": abstain},
        "quorum": quorum, "quorum_reached": None if quorum is None else for_ + abstain >= quorum,
        "snapshot_block": p.vote_start, "deadline_block": p.vote_end, "proposed_block": p.block, "head_block": head,
        "eta": eta or None, "eta_in_s": (eta - now) if eta else None,
        "description_hash": "0x" + p.description_hash.hex(), "tx": p.tx,
        "actions": [decode_action(book, t, v, c) for t, v, c in zip(p.targets, p.values, p.calldatas)],
    }


# ----------------------------------------------------------------------------------------- reverts


def expected_states(bitmap: bytes | int) -> list[str]:
    """The states a GovernorUnexpectedProposalState's bitmap allows (bit i: ProposalState i)."""
    bits = int.from_bytes(bitmap, "big") if isinstance(bitmap, (bytes, bytearray)) else int(bitmap)
    return [s for i, s in enumerate(PROPOSAL_STATES) if bits >> i & 1]


def explain_revert(error: DecodedError | None, op: str, p: Proposal | None = None, status: dict | None = None,
                   signer: str | None = None) -> str:
    """A Governor (or Timelock) revert of ``op`` (propose, vote, queue, execute, delegate) as a sentence a license
    holder can act on; ``status`` is ``proposal_status`` of ``p`` read after the revert."""
    if error is None:
        return f"{op} reverted without a reason"
    v = error.values
    label = p.label if p else "the proposal"
    st = status or {}
    state = st.get("state")
    end, start, head = st.get("deadline_block"), st.get("snapshot_block"), st.get("head_block")
    name = error.name
    if name == "GovernorAlreadyCastVote":
        return f"{v['voter']} has already voted on {label}: a vote cannot be changed"
    if name == "GovernorInsufficientProposerVotes":
        return (f"{v['proposer']} has {v['votes']} vote(s) at the last block and proposing needs {v['threshold']}: "
                f"hold (or be delegated) more licenses; votes count from the block after a delegation "
                f"(see `governance power`)")
    if name == "GovernorNonexistentProposal":
        return f"there is no proposal with id {v['proposalId']} on this Governor"
    if name == "GovernorInvalidVoteType":
        return "the vote must be for, against or abstain"
    if name == "GovernorRestrictedProposer":
        return f"the description names another proposer than {v['proposer']} (#proposer=...): remove that suffix"
    if name == "GovernorUnexpectedProposalState" and op == "propose":
        current = PROPOSAL_STATES[v["current"]]
        return (f"an identical proposal (same actions and description) already exists, id {v['proposalId']}, "
                f"{current}: change the description to propose it again")
    if name in ("GovernorUnexpectedProposalState", "TimelockUnexpectedOperationState") and state:
        return _state_sentence(op, label, state, start, end, head, st)
    if name in ("GovernorUnexpectedProposalState",):
        wanted = " or ".join(expected_states(v["expectedStates"]))
        return f"{label} is {PROPOSAL_STATES[v['current']]}; {op} needs it {wanted}"
    if op == "execute" and p is not None:
        return f"{label}'s actions reverted when the Timelock ran them: {error}"
    return f"{op} reverted: {error}"


def _state_sentence(op: str, label: str, state: str, start: int, end: int, head: int, st: dict) -> str:
    eta, eta_in = st.get("eta"), st.get("eta_in_s")
    if state == "Pending":
        return (f"{label} is Pending: voting opens after block {start} (head {head}); "
                + ("vote then" if op == "vote" else f"it can be {op}d once voting ends at block {end} and it passes"))
    if state == "Active":
        if op == "vote":
            return f"{label} is Active (voting until block {end})"
        if op == "queue":
            return f"{label} is Active: it can be queued once it has Succeeded, after block {end} (head {head})"
        return f"{label} is Active: voting ends at block {end}; once it has Succeeded, queue it, then execute it"
    if state == "Defeated":
        votes = st.get("votes", {})
        why = (f"for {votes.get('for')}, against {votes.get('against')}, abstain {votes.get('abstain')}, "
               f"quorum {st.get('quorum')}")
        return f"{label} is Defeated ({why}): it cannot be {'voted on' if op == 'vote' else op + 'd'}"
    if state == "Succeeded":
        if op == "vote":
            return f"{label} has Succeeded: voting closed at block {end}; queue it next"
        if op == "execute":
            return f"{label} has Succeeded but is not queued yet: run `governance queue {st.get('number')}` first"
        return f"{label} has Succeeded; {op} is not possible now"
    if state == "Queued":
        if op == "execute" and eta_in is not None and eta_in > 0:
            return (f"{label} is Queued: the Timelock releases it at unix time {eta}, in {eta_in} s; "
                    f"execute it then")
        if op == "queue":
            return f"{label} is already Queued: execute it from unix time {eta}"
        if op == "vote":
            return f"{label} is Queued: voting closed at block {end}"
        return f"{label} is Queued (release at unix time {eta})"
    if state == "Executed":
        return f"{label} is already Executed: nothing left to {op}"
    if state == "Canceled":
        return f"{label} was Canceled: nothing can be done with it"
    if state == "Expired":
        return f"{label} has Expired in the Timelock: propose it again"
    return f"{label} is {state}: {op} is not possible"
