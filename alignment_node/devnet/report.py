"""The scenario report: what a devnet run did, read from the chain (events, transactions) rather than from the
nodes: per target its outcomes and first flag, per license its credits and penalties, per operator its
reveals, duplicate and reverted transactions, gas and peak memory. A (target, epoch) outcome is the settled one
or, for a target nobody had to settle (its committee all revealed OK, issue 16), ``outcomeOf``."""

from __future__ import annotations

from ..chain.contracts import Contract, ContractRevert
from ..chain.manifest import chain_events, manifest_contracts
from ..chain.rpc import RpcClient
from .model_targets import MODEL_UNDETECTABLE
from .processes import OperatorProc

__all__ = ["chain_events", "report"]


class ListHistory:
    """The registry's committee list of every epoch, replayed from its ``Listed`` events (issue 16): a license
    joins at the end, a leaving one's place takes the last license, each from the event's epoch on. The chain
    keeps each epoch's list only two epochs longer; the events keep it for the report."""

    def __init__(self, events: list):
        self.events = events  # in chain order, so their epochs never decrease

    def lists(self, epochs) -> dict[int, list[int]]:
        """{epoch: license ids by list position} for each of ``epochs``."""
        order: list[int] = []
        where: dict[int, int] = {}
        out: dict[int, list[int]] = {}
        i = 0
        for e in sorted(set(epochs)):
            while i < len(self.events) and self.events[i]["fromEpoch"] <= e:
                ev = self.events[i]
                i += 1
                lic = ev["tokenId"]
                if ev["listed"]:
                    where[lic] = len(order)
                    order.append(lic)
                else:
                    hole, last = where.pop(lic), order.pop()
                    if last != lic:
                        order[hole], where[last] = last, hole
            out[e] = list(order)
        return out


async def _epoch_duties(protocol: Contract, targets: Contract, epoch: int, listed: list[int]) -> tuple[dict, int]:
    """({license: its targets}, committee size) of ``epoch`` from its replayed list, as the nodes compute them."""
    from .. import protocol as P

    seed = await protocol.call("seed", epoch)
    k = await protocol.call("committeeSizeOf", epoch)
    if seed == bytes(32) or not k:
        return {}, k
    enabled = list(await targets.call("enabledTargetsAt", await protocol.call("epochStartBlock", epoch)))
    return P.duties(seed, {lic: i for i, lic in enumerate(listed)}, len(listed), k, enabled), k


class Seats:
    """Each (epoch, target)'s committee seats with a duty and their verdicts, replayed from the chain's events and
    history-safe reads (seeds, committee sizes, enabled targets): the registry keeps an epoch's committee list
    only a few generations, so ``revealers``/``outcomeOf`` of an old epoch may revert (HistoryLost) when the
    report reads them at the end of a run. As AuditProtocol._seats: a seat whose license is active has a duty;
    its verdict is NO_VOTE unless its operator revealed, then the vote its reveal listed, else OK (issue 16)."""

    def __init__(self, protocol: Contract, targets: Contract, lists: dict[int, list[int]],
                 active: dict[int, set[int]], operator_of: dict[int, str], revealed_ops: set[tuple[int, str]],
                 listed_votes: dict[tuple[int, int, int], int]):
        self.protocol, self.targets, self.lists, self.active = protocol, targets, lists, active
        self.operator_of, self.revealed_ops, self.listed_votes = operator_of, revealed_ops, listed_votes
        self._epochs: dict[int, tuple[bytes, int, set[int]]] = {}

    async def _epoch(self, e: int) -> tuple[bytes, int, set[int]]:
        if e not in self._epochs:
            seed = bytes(await self.protocol.call("seed", e))
            k = await self.protocol.call("committeeSizeOf", e)
            enabled = set(await self.targets.call("enabledTargetsAt", await self.protocol.call("epochStartBlock", e)))
            self._epochs[e] = (seed, k, enabled)
        return self._epochs[e]

    async def seated(self, e: int, t: int) -> list[int]:
        """The licenses on t's committee in e, seat by seat (empty before the epoch's seed or if t was disabled)."""
        from .. import protocol as P

        seed, k, enabled = await self._epoch(e)
        listed = self.lists.get(e, [])
        if seed == bytes(32) or not k or t not in enabled:
            return []
        return [listed[i] for i in P.committee_positions(seed, t, len(listed), k)]

    async def verdicts(self, e: int, t: int) -> list[tuple[int, int]]:
        """(license, verdict) of each seat with a duty, seat by seat."""
        from .. import protocol as P

        out = []
        for lic in await self.seated(e, t):
            if lic not in self.active.get(e, set()):
                continue
            if (e, self.operator_of.get(lic)) not in self.revealed_ops:
                out.append((lic, P.NO_VOTE))
            else:
                out.append((lic, self.listed_votes.get((e, t, lic), P.OK)))
        return out


async def _inconclusive_reasons(protocol: Contract, seats: Seats,
                                outcomes: dict[int, dict[int, str]]) -> dict[int, dict[str, str]]:
    """Per target, per INCONCLUSIVE epoch, why: ``short-committee`` (fewer of its committee's licenses active
    than minReveals), ``missing-reveals`` (enough active, too few revealed), ``split`` (enough reveals, no 2/3
    verdict) or ``other``. Read from the chain: the epoch's list (replayed), presence, committees and reveals."""
    from .. import protocol as P

    wanted = {(e, t) for t, by in outcomes.items() for e, o in by.items() if o == "INCONCLUSIVE"}
    if not wanted:
        return {}
    _reveal_blocks, _committee, min_reveals, _max = await protocol.call("params")
    out: dict[int, dict[str, str]] = {}
    for e, t in sorted(wanted):
        assigned = await seats.verdicts(e, t)
        verdicts = [v for _lic, v in assigned if v != P.NO_VOTE]
        votes = [sum(1 for v in verdicts if v == k) for k in (P.OK, P.FAULT, P.UNREACHABLE)]
        if len(assigned) < min_reveals:
            why = "short-committee"
        elif len(verdicts) < min_reveals:
            why = "missing-reveals"
        elif P.outcome(*votes, min_reveals) == P.INCONCLUSIVE:
            why = "split"
        else:
            why = "other"
        out.setdefault(t, {})[str(e)] = why
    return out


def _vote(v) -> tuple[int, int, int, bytes]:
    """(license, targetId, verdict, evidenceRoot) of a ``Revealed`` event's vote (a tuple, or a dict by name)."""
    if isinstance(v, dict):
        return v["license"], v["targetId"], v["verdict"], bytes(v["evidenceRoot"])
    return v[0], v[1], v[2], bytes(v[3])


PRESENCE_HORIZON = 40  # AuditProtocol.PRESENCE_HORIZON: seats of older epochs are not readable on chain


async def _outcomes(protocol: Contract, seats: Seats, target_ids: list[int], epochs: list[int],
                    start: int) -> dict[int, dict[int, str]]:
    """{target: {epoch: outcome name}}: the settled outcome (``TargetSettled``), else, for an epoch whose settling
    is open and in which some of the target's committee revealed, ``outcomeOf`` (issue 16: a target whose
    committee all revealed OK is OK without a settlement; nobody settles it). Where the chain no longer has the
    epoch's committee list (``outcomeOf`` reverts), the outcome settle would decide is replayed (``Seats``)."""
    from .. import protocol as P

    outcomes: dict[int, dict[int, str]] = {}
    for ev in await chain_events(protocol, "TargetSettled", start):
        outcomes.setdefault(ev["targetId"], {})[ev["epoch"]] = P.VERDICT_NAMES.get(ev["outcome"], str(ev["outcome"]))
    _reveal_blocks, _committee, min_reveals, _max = await protocol.call("params")
    head = await protocol.call("currentEpoch")
    head_block = await protocol.rpc.block_number()
    for e in epochs:
        if e >= head:
            continue  # its reveals are still to come
        for t in target_ids:
            if e in outcomes.get(t, {}):
                continue
            verdicts = [v for _lic, v in await seats.verdicts(e, t) if v != P.NO_VOTE]
            if not verdicts:
                continue  # nobody of its committee revealed: as before, no outcome
            code = None
            if e + PRESENCE_HORIZON > head:  # beyond it, contracts before the fix read every seat absent
                try:
                    code = await protocol.call("outcomeOf", e, t)
                except ContractRevert:  # the committee list of e, or its presence, is gone from the chain
                    pass
            if code is None:
                if await protocol.call("settleOpensAt", e, t) > head_block:
                    continue  # settling is not open yet
                trap = await seats.targets.call("trapOutcome", t)
                code = P.outcome(*(sum(1 for v in verdicts if v == x) for x in (P.OK, P.FAULT, P.UNREACHABLE)),
                                 min_reveals, trap)
            if code:  # 0: settling is not open yet
                outcomes.setdefault(t, {})[e] = P.VERDICT_NAMES.get(code, str(code))
    return outcomes


async def report(net, rpc: RpcClient, scenario: str, epochs: list[int]) -> dict:
    """The scenario report of the Devnet ``net``, read from the chain (events, transactions), not from
    the nodes."""
    from .. import protocol as P

    c = manifest_contracts(rpc, net.manifest)
    vault, protocol = c["RewardVault"], c["AuditProtocol"]
    start = int(net.manifest["deployBlock"])
    all_ids = sorted(net.license_owner)
    operator_of = {lic: op.address.lower() for op in net.operators for lic in op.licenses}
    # Presence is per operator (issue 16): an operator's booked epoch credits each license listed under it then
    # (the vault pays a license lazily, per span, so its Credited events are not per epoch).
    history = ListHistory(await chain_events(c["OperatorRegistry"], "Listed", start))
    booked: dict[tuple[str, int], int] = {}
    commission: dict[str, int] = {}
    for ev in await chain_events(vault, "OperatorBooked", start):
        booked[(ev["operator"].lower(), ev["epoch"])] = ev["perLicense"]
        commission[ev["operator"].lower()] = commission.get(ev["operator"].lower(), 0) + ev["commission"]
    present: dict[int, set[str]] = {}
    for ev in await chain_events(vault, "Present", start):
        present.setdefault(ev["epoch"], set()).add(ev["operator"].lower())
    committed_roots: dict[tuple[str, int], int] = {}
    for ev in await chain_events(protocol, "Committed", start):
        key = (ev["operator"].lower(), ev["epoch"])
        committed_roots[key] = committed_roots.get(key, 0) + 1
    head_epoch = await protocol.call("currentEpoch")
    lists = history.lists(range(await protocol.call("epochAt", start), head_epoch + 1))
    active = {e: {lic for lic in listed if operator_of.get(lic) in present.get(e, set())}
              for e, listed in lists.items()}
    credited: dict[int, dict[int, int]] = {i: {} for i in all_ids}
    for e, listed in lists.items():
        for lic in listed:
            amount = booked.get((operator_of.get(lic), e))
            if amount is not None:
                credited.setdefault(lic, {})[e] = amount
    penalties: dict[int, list] = {i: [] for i in all_ids}
    for ev in await chain_events(vault, "Penalized", start):
        penalties.setdefault(ev["tokenId"], []).append(ev)
    heartbeats: dict[str, int] = {}
    hb_per_epoch: dict[tuple[str, int], int] = {}
    for ev in await chain_events(protocol, "Heartbeat", start):
        heartbeats[ev["operator"].lower()] = heartbeats.get(ev["operator"].lower(), 0) + 1
        key = (ev["operator"].lower(), ev["epoch"])
        hb_per_epoch[key] = hb_per_epoch.get(key, 0) + 1
    # Reveals, one per operator and epoch (issue 16): its listed votes (NO_VOTE: a seat it did not reveal, counted
    # per operator below, not as a missed reveal; FAULT, UNREACHABLE); every other seat of its licenses is OK.
    revealed_ops: set[tuple[int, str]] = set()
    listed_votes: dict[tuple[int, int, int], int] = {}
    no_votes: dict[str, int] = {}
    for ev in await chain_events(protocol, "Revealed", start):
        who = ev["operator"].lower()
        if (ev["epoch"], who) in revealed_ops:
            continue  # a second reveal changes nothing (and emits nothing)
        revealed_ops.add((ev["epoch"], who))
        for lic, t, verdict, _root in map(_vote, ev["votes"]):
            listed_votes[(ev["epoch"], t, lic)] = verdict
            if verdict == P.NO_VOTE and ev["epoch"] in epochs:
                no_votes[who] = no_votes.get(who, 0) + 1
    seats = Seats(protocol, c["TargetRegistry"], lists, active, operator_of, revealed_ops, listed_votes)
    # Targets: outcome per epoch, first flag, seconds from the fault's start to its first flag.
    outcomes = await _outcomes(protocol, seats, [t.id for t in net.targets], sorted(lists), start)
    first_flag: dict[int, tuple[int, int]] = {}
    for ev in await chain_events(protocol, "ViolationFlagged", start):
        if ev["targetId"] not in first_flag:
            block = await rpc.get_block(ev.block_number)
            first_flag[ev["targetId"]] = (ev["epoch"], int(block["timestamp"], 16))
    reasons = await _inconclusive_reasons(protocol, seats, outcomes)
    targets = []
    for t in sorted(net.targets, key=lambda t: t.id):
        flagged = first_flag.get(t.id)
        targets.append({
            "id": t.id, "kind": t.kind, "mode": t.mode, "fault": t.fault, "trap": t.trap,
            **({"shard": list(t.shard)} if t.kind == "ZGS_STORAGE" else {}),
            "detectable": t.detectable and not (t.kind == "MODEL" and t.mode in MODEL_UNDETECTABLE),
            "outcomes": {str(e): o for e, o in sorted(outcomes.get(t.id, {}).items())},
            "first_flagged_epoch": flagged[0] if flagged else None,
            "inconclusive_reasons": reasons.get(t.id, {}),
            "seconds_to_flag": (flagged[1] - int(t.fault_started)) if flagged and t.fault_started else None,
        })
    missed_faults = [t["id"] for t in targets if t["fault"] and t["detectable"] and t["first_flagged_epoch"] is None]
    false_flags = [t["id"] for t in targets if not t["fault"] and t["first_flagged_epoch"] is not None]
    # Reveals and duplicates, per operator, from the chain.
    # One root per operator and epoch commits every license of it with duties (issue 16): (epoch, license) ->
    # how many times its operator committed that epoch.
    committed: dict[tuple[int, int], int] = {}
    for e in sorted({e for _op, e in committed_roots}):
        duties, _k = await _epoch_duties(protocol, c["TargetRegistry"], e, lists.get(e, []))
        for lic, ts in duties.items():
            n = committed_roots.get((operator_of.get(lic), e), 0)
            if ts and n and lic in active.get(e, set()):
                committed[(e, lic)] = n
    # A license revealed in e if its operator did (issue 16: one reveal per operator).
    revealed = {(e, lic) for (e, lic) in committed if (e, operator_of.get(lic)) in revealed_ops}
    # The last epoch whose reveal window ended while the nodes ran (up to now, if they still run).
    head = net.nodes_stopped_block or await rpc.block_number()
    last_closed = await protocol.call("epochAt", head) - 2  # reveal windows of older epochs are over
    if head >= (await protocol.call("revealWindow", last_closed + 1))[1]:
        last_closed += 1  # and the previous epoch's, once its window has ended
    first_block = await protocol.call("epochStartBlock", epochs[0])
    last_block = await protocol.call("epochStartBlock", epochs[-1] + 1)
    reverted, gas, reverted_fns = await _operator_txs(net.operators, rpc, start, range(first_block, last_block),
                                                      c.values())
    licenses = []
    for op in net.operators:
        for token_id in sorted(op.licenses):
            got = credited.get(token_id, {})
            pens = penalties.get(token_id, [])
            penalized = sum(p["amount"] for p in pens)
            total = sum(got.get(e, 0) for e in epochs)
            licenses.append({
                "id": token_id, "operator": op.address, "owner": net.license_owner[token_id],
                "credited": str(total), "credited_epochs": sorted(e for e in got if e in epochs),
                "missing_epochs": [e for e in epochs if e not in got],
                "penalties": len(pens), "penalized_wei": str(penalized), "net_wei": str(total - penalized),
                "penalty_kinds": sorted({p["kind"] for p in pens}),
            })
    operators = []
    for op in net.operators:
        mine = set(op.licenses)
        missed = sorted({e for (e, lic) in committed if lic in mine and e <= last_closed
                         and (e, lic) not in revealed})
        dups = sum(n - 1 for (who, _e), n in committed_roots.items() if who == op.address.lower() and n > 1)
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
            "no_votes": no_votes.get(op.address.lower(), 0),
            "duplicate_txs": dups,
            "reverted_txs": reverted.get(op.address.lower(), 0),
            "reverted_by_function": reverted_fns.get(op.address.lower(), {}),
            "gas_used": gas.get(op.address.lower(), 0),
            "gas_per_license_epoch": gas.get(op.address.lower(), 0) // max(1, len(op.licenses) * len(epochs)),
            "rss_kb_max": op.rss_kb_max,
            "model_worker_rss_kb_max": op.worker_rss_kb_max.get("model"),
            "da_worker_rss_kb_max": op.worker_rss_kb_max.get("da"),
        })
    return {
        "scenario": scenario,
        "epochs": epochs,
        "targets": targets,
        "licenses": licenses,
        "operators": operators,
        "files_uploaded": len(net.uploads),
        "missed_faults": missed_faults,
        "false_flags": false_flags,
        "all_credited": all(not entry["missing_epochs"] for entry in licenses),
    }


async def _operator_txs(operators: list[OperatorProc], rpc: RpcClient, start: int,
                        gas_blocks: range, contracts) -> tuple[dict, dict, dict]:
    """Per operator address: reverted transactions since deployment, gas used in ``gas_blocks`` (the
    scenario's epochs: each holds one heartbeat, commit, reveal of the epoch before, settlements), and the
    reverted ones counted by the function they called (named through the deployed contracts' ABIs)."""
    ops = {op.address.lower() for op in operators}
    names = {f.selector: f.name for ct in contracts for fns in ct.abi.functions.values() for f in fns}
    reverted: dict[str, int] = {}
    by_fn: dict[str, dict[str, int]] = {}
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
                    fn = names.get(bytes.fromhex(tx["input"][2:10]), tx["input"][:10])
                    by_fn.setdefault(sender, {})[fn] = by_fn.setdefault(sender, {}).get(fn, 0) + 1
                if receipt and number in gas_blocks:
                    gas[sender] = gas.get(sender, 0) + int(receipt["gasUsed"], 16)
    return reverted, gas, by_fn
