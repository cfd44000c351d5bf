"""The devnet commands and their scenarios: ``devnet up`` runs the devnet with a live view until Ctrl-C;
``devnet scenario NAME`` runs one of SCENARIOS headless for a number of epochs and prints one JSON report."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..errors import CliError
from .anvil import free_port
from .chaos import ChaosDrills, FaultProxyThread, journal_counts
from .evm_targets import reveal_trap
from .network import ETHER, Devnet, Plan
from .processes import kill_node, node_health
from .report import chain_events
from .zgs_targets import upload_tick

__all__ = ["SCENARIOS", "Scenario", "add_devnet_args", "plan_from_args", "scenario", "up"]


@dataclass(frozen=True)
class Scenario:
    epochs: int
    plan: dict
    crash_operator: int | None = None  # index of the operator whose node is SIGKILLed and restarted
    chaos: bool = False  # kills of every node, reorgs, fee spikes and a flapping endpoint (devnet/chaos.py)
    description: str = ""


SCENARIOS = {
    "presence": Scenario(3, {}, description="nodes heartbeat and earn; no targets"),
    "evm-faults": Scenario(
        6, {"targets": ("honest",) * 8 + ("down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage"),
            "trap_mode": "down", "audit_deadline_s": 4.0},
        description="8 honest EVM targets, one of each fault, a sealed trap; every fault must be flagged"),
    "lazy-auditor": Scenario(
        4, {"commissions_bps": (500, 1000, 1000, 2500), "owners": 4, "licenses_per_owner": 3,
            "targets": ("honest",) * 3 + ("down", "forked", "wrong-chain"), "trap_mode": "garbage",
            "lazy_operators": (0,), "committee_size": 16, "audit_deadline_s": 4.0},
        description="one operator votes OK on everything without auditing; traps and disagreement cost it"),
    "storage-faults": Scenario(
        6, {"targets": (), "storage": ("honest", "honest:0/2", "honest:1/2", "slow", "behind:1/2", "drop:0/2",
                                       "corrupt", "wrong-index", "wrong-root:1/2", "empty", "wrong-flow",
                                       "lying-lag", "garbage"),
            "audit_deadline_s": 4.0},
        description="0G storage nodes: 5 honest (one slow, one behind and saying so), one of each fault; "
                    "every fault must be flagged, no honest node"),
    "model-faults": Scenario(
        2, {"targets": (), "owners": 3, "licenses_per_owner": 1, "committee_size": 3, "min_reveals": 3,
            "llms": ("fp32", "bf16", "tee-honest", "small", "4bit", "temp-0.7", "tee-forged", "garbage"),
            "model_queries": 100, "audit_deadline_s": 115.0, "block_time": 2.0, "epoch_length": 70,
            "reveal_blocks": 10, "jump_to_epoch": True},
        description="served chat LLMs audited by nodes without the weights (version-2 baselines): the registered "
                    "weights in float32, in bfloat16 and behind an honest TeeML broker; a smaller and a 4-bit "
                    "model, sampling at 0.7 for a claimed 1.0, forged TEE signatures, garbage (the other "
                    "substitutions: bench/served_power.py); every fault flagged, no benign setup"),
    "byte-model-faults": Scenario(
        4, {"targets": (), "models": ("honest", "honest", "temp-0.7", "int8", "noise-0.1", "evasive", "embed-other",
                                      "garbage"),
            "audit_deadline_s": 20.0, "block_time": 1.0},
        description="byte-level models (version-1 baselines, every auditor runs the model):  2 honest, substitutions (temperature 0.7, int8 weights, 0.1 % weight "
                    "noise, a fine-tuned checkpoint served except on audit-like prompts, another embedding model) and "
                    "garbage; every detectable one flagged (another seed and the fine-tuned checkpoint itself: "
                    "tests/test_model_audit.py)"),
    "consensus-faults": Scenario(
        6, {"targets": (), "consensus": True, "audit_deadline_s": 4.0},
        description="CometBFT validators and RPC endpoints of two simulated chains: 3 honest validators (one "
                    "missing a few blocks), one mostly offline, one double-signing (then jailed), two honest RPC "
                    "endpoints, one forging signatures, one serving other block ids, one garbage, one for "
                    "another chain; a second chain that halts. Every fault flagged, no honest target"),
    "da-faults": Scenario(
        6, {"targets": (), "da_signers": ("honest",) * 3 + ("offline", "not-enrolled", "wrong-socket", "never-signs",
                                                           "drops-rows", "corrupts-rows", "prunes-early",
                                                           "invalid-signatures", "garbage"),
            "audit_deadline_s": 4.0},
        description="0G DA signers while blobs keep arriving: 3 honest, one offline, one not enrolled, one registered "
                    "at a wrong socket, one never signing, three signing but dropping, corrupting or pruning rows "
                    "early, one signing invalidly, one answering garbage; every fault flagged, no honest signer"),
    "crash": Scenario(
        8, {"targets": ("honest",) * 4 + ("down", "lagging")}, crash_operator=1,
        description="one node is SIGKILLed at random points and restarted; no reveal lost, no tx sent twice"),
    "chaos": Scenario(
        12, {"targets": ("honest",) * 4 + ("down", "lagging"), "epoch_length": 40, "reveal_blocks": 24,
             "commissions_bps": (500, 1000, 2500, 1500, 1500),
             "gas_bump_after_s": 1.0, "audit_deadline_s": 3.0}, chaos=True,
        description="at random points (seeded): SIGKILLs of every node (>= 50), reorgs of 1-3 blocks, base-fee "
                    "spikes, and each node's first RPC endpoint flapping between faults; no reveal lost, nothing "
                    "sent twice, no false flag"),
}


def add_devnet_args(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start anvil, deploy, sell, delegate, fund, run the nodes; live view until Ctrl-C")
    up.add_argument("--outcomes", metavar="FILE",
                    help="on Ctrl-C, write the run's scenario report (JSON) to FILE and print its outcome summary")
    sc = sub.add_parser("scenario", help="run a scenario headless for some epochs and print a JSON report")
    sc.add_argument("name", choices=sorted(SCENARIOS),
                    help="; ".join(f"{k}: {v.description}" for k, v in SCENARIOS.items()).replace("%", "%%"))
    sc.add_argument("--epochs", type=int, default=None, help="completed epochs to run (default: the scenario's)")
    sc.add_argument("--json", action="store_true", help="print the report as JSON (the default output)")
    sc.add_argument("--seed", type=int, default=1, help="the seed of the chaos scenario's drills (default 1)")
    for p in (up, sc):
        p.add_argument("--workdir", help="directory for keys, configs and node data (default: a temporary one)")
        p.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
        p.add_argument("--block-time", type=float, default=Plan.block_time, help="seconds per block (default 0.25)")
        p.add_argument("--operators", type=int, default=len(Plan.commissions_bps),
                       help="operators (commissions 5%%, 10%%, 25%%, then 15%%; default 3)")
        p.add_argument("--owners", type=int, default=Plan.owners, help="license owners (default 6)")
        p.add_argument("--licenses-per-owner", type=int, default=Plan.licenses_per_owner,
                       help="licenses each owner buys, at most 50 (default 4)")


@contextmanager
def _devnet(args, shape: dict, done: str | None = None):
    """A Devnet of the arguments' plan with the ``shape`` fields set, in ``--workdir`` or a temporary directory;
    on exit everything it started is stopped, the temporary directory removed unless ``--keep``, and ``done``
    said."""
    plan = plan_from_args(args)
    for key, value in shape.items():
        setattr(plan, key, value)
    if args.workdir:
        workdir, remove = Path(args.workdir), False
    else:
        workdir, remove = Path(tempfile.mkdtemp(prefix="alignment-devnet-")), not args.keep
    net = Devnet(plan, workdir, log=_stderr)
    try:
        yield net
    finally:
        net.stop()
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
        if done:
            _stderr(done)


def plan_from_args(args) -> Plan:
    if not 1 <= args.operators <= 20 or not 1 <= args.owners or not 1 <= args.licenses_per_owner <= 50:
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

    def on_sigterm(_sig, _frame):  # stop what the scenario started (servers started off the main thread too)
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with _devnet(args, spec.plan) as net:
            report = _run_scenario(net, args.name, spec, epochs_n, seed=args.seed)
            if report is None:
                return 1
    except KeyboardInterrupt:
        _stderr(f"scenario {args.name} interrupted; everything it started is stopped")
        return 130
    report["leftover_processes"] = [p.process.pid for p in [*net.operators, *net.targets]
                                    if p.process and p.process.poll() is None]
    print(json.dumps(report, sort_keys=True))
    return 0


def _run_scenario(net: Devnet, name: str, spec: Scenario, epochs_n: int, seed: int = 1) -> dict | None:
    """Run the scenario on ``net`` (set up here) for ``epochs_n`` epochs: its report, or None after one error line."""
    plan = net.plan
    t0 = time.monotonic()
    drills: ChaosDrills | None = None

    async def run() -> dict:
        import random

        nonlocal drills
        await net.setup()
        setup_s = time.monotonic() - t0
        start = int(net.manifest["deployBlock"])
        if spec.chaos:  # every node's first endpoint: a proxy whose fault the drills change
            proxy = FaultProxyThread(net.anvil.url, free_port())
            plan.dead_rpc_urls = (proxy.url,)
            drills = ChaosDrills(seed, proxy)
        net.start_nodes()
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            nodes_epoch = await protocol.call("currentEpoch")
            first = nodes_epoch + 1  # the epoch the nodes were started in is partial
            if plan.jump_to_epoch:  # ... unless the chain jumps to its end before the nodes are up
                boundary = await protocol.call("epochStartBlock", nodes_epoch + 1)
                net.anvil.mine(max(0, boundary - await rpc.block_number()))
                nodes_epoch = await protocol.call("currentEpoch")
                first = nodes_epoch
            epochs = list(range(first, first + epochs_n))
            first_credit_s = None
            trap_revealed = False
            victim = net.operators[spec.crash_operator] if spec.crash_operator is not None else None
            keeper = TrapKeeper(net)
            next_kill = time.monotonic() + random.uniform(1.5, 4.0)

            async def tick():
                nonlocal first_credit_s, trap_revealed, next_kill
                if first_credit_s is None and await chain_events(vault, "OperatorBooked", start):
                    first_credit_s = time.monotonic() - t0
                now_epoch = await protocol.call("currentEpoch")
                if not trap_revealed and now_epoch >= nodes_epoch + plan.reveal_trap_after_epochs:
                    await reveal_trap(net)
                    trap_revealed = True
                if trap_revealed:
                    await keeper.tick(rpc, c)
                await upload_tick(net, rpc)
                if drills is not None and now_epoch <= epochs[-1]:
                    await drills.tick(net, rpc)
                if victim is not None and now_epoch <= epochs[-1] and time.monotonic() >= next_kill:
                    kill_node(victim)
                    await asyncio.sleep(random.uniform(0.1, 0.6))
                    net.start_node(victim)
                    next_kill = time.monotonic() + random.uniform(2.0, 6.0)

            # The last epoch's reveals and settlement happen in the next one: wait for them (at most one epoch).
            await net.wait_for_epoch(rpc, protocol, epochs[-1] + 1, tick=tick)
            await _wait_settled(net, rpc, protocol, epochs[-1], tick)
            net.sample_rss()
            net.stop_nodes()
            # Reveals due after this block were the stopped nodes' to make, not misses (the report counts
            # an epoch's missing reveals only once its reveal window ended while the nodes ran).
            net.nodes_stopped_block = await rpc.block_number()
            # Book every ended epoch's credit (it is otherwise booked lazily) so events show all of it.
            deployer = LocalSigner(net.anvil.private_keys[0])
            await vault.transact("settleLicenses", sorted(net.license_owner), signer=deployer)
            report = await net.report(rpc, name, epochs)
            if drills is not None:  # what the drills did, and what each node's journal says it went through
                report["chaos"] = drills.summary()
                for op, row in zip(net.operators, report["operators"]):
                    row.update(journal_counts(op), reorgs=drills.reorgs, fee_spikes=drills.fee_spikes)
            if net.disperser is not None:  # DA blobs dispersed while the scenario ran
                report["da_blobs"] = {k: net.disperser.counts[k] for k in ("verified", "skipped", "failed", "epochs")}
        report["timing"] = {"setup_seconds": round(setup_s, 2),
                            "first_credit_seconds": round(first_credit_s, 2) if first_credit_s else None,
                            "total_seconds": round(time.monotonic() - t0, 2)}
        flagged = sorted(t["seconds_to_flag"] for t in report["targets"] if t["seconds_to_flag"] is not None)
        report["timing"]["median_seconds_to_flag"] = flagged[len(flagged) // 2] if flagged else None
        return report

    try:
        return asyncio.run(run())
    except Exception as exc:  # one clear line; nothing left running
        _stderr(f"error: scenario {name} could not complete: {exc.__class__.__name__}: {exc}")
        return None
    finally:
        if drills is not None and drills.proxy is not None:
            drills.proxy.stop()


P_OK = 1  # AuditProtocol.OK


async def _needs_settling(protocol, targets, epoch: int, t: int, reveal_end: int) -> bool:
    """Whether (``epoch``, ``t``) waits for a settlement (issue 16): some of its committee revealed, it is not
    settled yet, and settling changes something: a revealed vote that is not OK (the nodes settle it), referees
    (settling opens after their window; the nodes settle it) or a revealed trap (the keeper settles it). A target
    whose committee all revealed OK is OK by ``outcomeOf`` and nobody settles it."""
    revealed, verdicts = await protocol.call("revealers", epoch, t)
    if not revealed or (await protocol.call("tally", epoch, t))[-1] != 0:
        return False
    return (any(v != P_OK for v in verdicts) or await targets.call("trapOutcome", t) != 0
            or await protocol.call("settleOpensAt", epoch, t) > reveal_end)


async def _wait_settled(net: Devnet, rpc: RpcClient, protocol, epoch: int, tick) -> None:
    """Until every target of ``epoch`` that needs a settlement (``_needs_settling``) is settled and a few blocks
    have passed for the miss reports that follow the reveal window, or until the epoch after next begins."""
    targets = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
    _start, end = await protocol.call("revealWindow", epoch)
    settled_at = None
    while await protocol.call("currentEpoch") < epoch + 2:
        net.sample_rss()
        if tick:
            await tick()
        head = await rpc.block_number()
        if head >= end:
            pending = False
            for t in net.targets:
                if await _needs_settling(protocol, targets, epoch, t.id, end):
                    pending = True
                    break
            if not pending:
                settled_at = head if settled_at is None else settled_at
                if head >= settled_at + 3:
                    return
        await asyncio.sleep(0.5)


class TrapKeeper:
    """The devnet's trap keeper (the deployer key that seals and reveals traps) settles its revealed traps in the
    epochs whose committee all revealed OK (issue 16): nodes settle only targets with a vote that is not OK, so
    without it a trap voted all-OK, exactly what a trap is there to price, would never be settled and its trap
    penalties never taken. Only the last two ended epochs (the chain keeps an epoch's committee list two epochs
    longer); those with a vote that is not OK are the nodes' to settle, so the keeper never races them."""

    def __init__(self, net: Devnet):
        self.net = net
        self.done: set[tuple[int, int]] = set()

    async def tick(self, rpc: RpcClient, c: dict) -> None:
        traps = [t.id for t in self.net.targets if t.trap]
        if not traps:
            return
        protocol, targets = c["AuditProtocol"], c["TargetRegistry"]
        head = await rpc.block_number()
        now = await protocol.call("epochAt", head)
        for e in range(max(0, now - 2), now):
            for t in traps:
                if (e, t) in self.done or await targets.call("trapOutcome", t) == 0:
                    continue
                if head + 1 < await protocol.call("settleOpensAt", e, t):
                    continue
                revealed, verdicts = await protocol.call("revealers", e, t)
                if (await protocol.call("tally", e, t))[-1] != 0 or not revealed or any(v != P_OK for v in verdicts):
                    self.done.add((e, t))  # settled, nobody to price, or the nodes' to settle
                    continue
                try:
                    await protocol.transact("settle", e, t, signer=LocalSigner(self.net.anvil.private_keys[0]))
                    self.net.log(f"trap {t} of epoch {e} settled by the keeper")
                    self.done.add((e, t))
                except Exception as exc:  # a reorg or a race: looked at again next tick
                    self.net.log(f"trap {t} of epoch {e}: keeper's settle failed: {exc}")


# What `devnet up` audits: a mix of honest and faulty EVM targets and one sealed trap, revealed after 2 epochs,
# storage nodes, the simulated CometBFT chains and DA signers.
UP_TARGETS = {"targets": ("honest",) * 5 + ("down", "lagging", "forked", "garbage"), "trap_mode": "wrong-chain",
              "reveal_trap_after_epochs": 2,
              "storage": ("honest", "honest:0/2", "honest:1/2", "behind", "drop:0/2", "corrupt", "lying-lag"),
              "consensus": True,
              "da_signers": ("honest", "honest", "drops-rows", "corrupts-rows", "never-signs", "wrong-socket"),
              "audit_deadline_s": 3.0}


async def _targets_view(net: Devnet, rpc: RpcClient, c: dict) -> list[str]:
    """Live view lines: each target's latest outcome (``outcomeOf`` of the latest epoch whose settling is open:
    settled, or OK without a settlement when its committee all revealed OK), the flagged violations with
    evidence links, penalties."""
    from ..protocol import VERDICT_NAMES

    protocol, vault = c["AuditProtocol"], c["RewardVault"]
    start = int(net.manifest["deployBlock"])
    latest: dict[int, tuple[int, str]] = {}
    now = await protocol.call("currentEpoch")
    for t in net.targets:
        for e in range(now - 1, max(-1, now - 3), -1):  # this epoch's reveals are still to come
            code = await protocol.call("outcomeOf", e, t.id)
            if code and (await protocol.call("revealers", e, t.id))[0]:
                latest[t.id] = (e, VERDICT_NAMES.get(code, "?"))
                break
    lines = [f"{'target':>6} {'kind':11} {'mode':12} {'last outcome':>22}"]
    for t in sorted(net.targets, key=lambda t: t.id):
        e, outcome = latest.get(t.id, (None, "-"))
        lines.append(f"{t.id:>6} {t.kind:11} {t.mode + (' (trap)' if t.trap else ''):12} "
                     f"{(outcome + f' (epoch {e})') if e is not None else '-':>22}")
    flags = await chain_events(protocol, "ViolationFlagged", start)
    node = net.operators[0].url() if net.operators else ""
    lines.append(f"violations flagged: {len(flags)} (latest 5, evidence on any node):")
    for ev in flags[-5:]:
        lines.append(f"  epoch {ev['epoch']} target {ev['targetId']} {VERDICT_NAMES.get(ev['outcome'], '?')}: "
                     f"{node}/evidence/0x{ev['evidenceRoot'].hex()}")
    penalties: dict[int, int] = {}
    for ev in await chain_events(vault, "Penalized", start):
        penalties[ev["kind"]] = penalties.get(ev["kind"], 0) + 1
    lines.append("penalties: " + (", ".join(f"{ {1: 'miss', 2: 'disagree', 3: 'trap'}.get(k, k)} {n}"
                                            for k, n in sorted(penalties.items())) or "none"))
    return lines


def up(args) -> int:
    """Run the devnet with a live view until Ctrl-C, then stop everything it started."""
    with _devnet(args, UP_TARGETS, done="devnet stopped; nothing left running") as net:
        return _live(net, getattr(args, "outcomes", None))


def outcome_summary(report: dict) -> dict:
    """Counts of the report's (target, epoch) outcomes, for the honest targets (no fault, not a trap) and the
    others, with the INCONCLUSIVE share and its reasons (issue 16's goal: <= 1 % with honest auditors)."""
    out = {}
    for group, keep in (("honest", lambda t: not t["fault"] and not t["trap"]),
                        ("faulty", lambda t: t["fault"] or t["trap"])):
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for t in filter(keep, report["targets"]):
            for o in t["outcomes"].values():
                counts[o] = counts.get(o, 0) + 1
            for why in t["inconclusive_reasons"].values():
                reasons[why] = reasons.get(why, 0) + 1
        total = sum(counts.values())
        out[group] = {"outcomes": total, "counts": dict(sorted(counts.items())), "inconclusive_reasons": reasons,
                      "inconclusive_pct": round(100 * counts.get("INCONCLUSIVE", 0) / total, 2) if total else None}
    return out


async def _write_outcomes(net: Devnet, path: str, first_epoch: int) -> None:
    """The scenario report of the epochs from ``first_epoch`` (the nodes' first) to the last closed one, to
    ``path``, and its summary on stderr."""
    async with RpcClient(net.anvil.url) as rpc:
        now = await manifest_contracts(rpc, net.manifest)["AuditProtocol"].call("currentEpoch")
        report = await net.report(rpc, "up", list(range(first_epoch, now)))
    report["summary"] = outcome_summary(report)
    Path(path).write_text(json.dumps(report, indent=1))
    for group, s in report["summary"].items():
        _stderr(f"{group} targets, epochs {first_epoch}-{now - 1}: {s['outcomes']} outcomes {s['counts']}; "
                f"INCONCLUSIVE {s['inconclusive_pct']} % {s['inconclusive_reasons'] or ''}")


def _live(net: Devnet, outcomes: str | None = None) -> int:
    """Set up and run ``net``, printing the live view every 2 s until Ctrl-C or SIGTERM; then, with ``outcomes``,
    write the run's report there."""
    plan = net.plan
    t0 = time.monotonic()
    stop = False
    first_epoch = None

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)

    async def live() -> None:
        nonlocal first_epoch
        await net.setup()
        start = int(net.manifest["deployBlock"])
        net.start_nodes()
        portal = f"{net.operators[0].url()}/portal"
        _stderr(f"portal: {portal} (connect a wallet to chain {net.manifest['chainId']} at {net.anvil.url}, e.g. with "
                "one of anvil's well-known development accounts)")
        first_credit = None
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            protocol, vault = c["AuditProtocol"], c["RewardVault"]
            start_epoch = await protocol.call("currentEpoch")
            first_epoch = start_epoch + 1
            trap_revealed = False
            keeper = TrapKeeper(net)
            while not stop:
                net.sample_rss()
                epoch = await protocol.call("currentEpoch")
                if not trap_revealed and epoch >= start_epoch + plan.reveal_trap_after_epochs:
                    await reveal_trap(net)
                    trap_revealed = True
                if trap_revealed:
                    await keeper.tick(rpc, c)
                await upload_tick(net, rpc)
                head = await rpc.block_number()
                if first_credit is None and await chain_events(vault, "OperatorBooked", start):
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
                    for token_id in op.licenses:  # listed under an operator present in the epoch (issue 16)
                        active += await vault.call("isActive", token_id, epoch)
                    status, _ = node_health(op)
                    lines.append(
                        f"{op.address:44} {op.commission_bps / 100:>4.1f}% {len(op.licenses):>4} {active:>6} "
                        f"{await vault.call('commissionOf', op.address) / ETHER:>12,.2f} {status or 'down':>8} "
                        f"{(op.rss_kb_max or 0) / 1024:>7.1f}")
                owners_total = 0
                for token_id in net.license_owner:
                    owners_total += await vault.call("claimable", token_id)
                lines.append(f"licenses' claimable total {owners_total / ETHER:,.2f}")
                if net.disperser is not None:
                    da = net.disperser.counts
                    lines.append(f"DA blobs: {da['verified']} verified, {da['skipped']} skipped, {da['failed']} failed; "
                                 f"{da['epochs']} DA epochs opened")
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
    if outcomes and first_epoch is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while the report is read
        asyncio.run(_write_outcomes(net, outcomes, first_epoch))
    return 0
