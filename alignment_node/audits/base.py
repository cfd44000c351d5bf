"""What every audit plug-in shares: the target, the result, the epoch context, the plug-in protocol. Each plug-in turns a target and a deadline into a verdict with evidence.

Every audit has two halves, so that anyone can re-check a verdict without trusting the auditor:
- ``observe``: the network part: ask the target (and, where the check compares targets, its peers) and
  record what was asked, what came back (or its hash and size), when and how long it took;
- ``judge``: a pure function of the recorded observations and the target's registered identity that returns
  the verdict and the checks, passed or failed, with reasons.
The evidence bundle is the observations plus the judgement, as canonical JSON (``protocol.canonical_json``);
its keccak256 is the evidence root committed on chain. ``alignment-node verify-evidence`` runs ``judge`` again
on a bundle fetched from any node and compares verdicts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from ..protocol import FAULT, KIND_NAMES, OK, UNREACHABLE, VERDICT_NAMES, evidence_root
from .http import GARBAGE, describe

BUNDLE_VERSION = 1
# error kinds of ``audits.http`` that mean the target gave no answer at all (UNREACHABLE rather than FAULT)
UNANSWERED = frozenset({"timeout", "refused", "reset", "http_error"})


@dataclass(frozen=True)
class Target:
    """A registered target as TargetRegistry stores it."""

    id: int
    kind: int
    endpoint: str
    identity: bytes


@dataclass
class AuditResult:
    verdict: int  # OK, FAULT or UNREACHABLE
    bundle: dict[str, Any] = field(default_factory=dict)
    stored_root: bytes | None = None  # set when the bundle was already stored (and dropped) by a sink

    @property
    def root(self) -> bytes:
        return self.stored_root if self.stored_root is not None else evidence_root(self.bundle)

    @property
    def verdict_name(self) -> str:
        return VERDICT_NAMES[self.verdict]


@dataclass(frozen=True)
class AuditEnv:
    """What the node gives a plug-in when it builds it: its data directory (for fetched baselines), and
    ``await rpc_for(chain_id)``: a JSON-RPC client of that chain, or None where the node has none."""

    data_dir: Path
    rpc_for: Callable[[int], Awaitable[Any]] | None = None


@dataclass(frozen=True)
class EpochContext:
    """What the audit service knows of an epoch that a plug-in may use: the epoch's seed, and for each
    assigned target the licenses of this node assigned to it (e.g. to seed challenges others can repeat)."""

    seed: bytes = bytes(32)
    licenses: dict[int, list[int]] = field(default_factory=dict)
    # A plug-in may hand each result to ``sink(target_id, result)`` as soon as it is made; the sink stores the
    # bundle and returns a light result (verdict + stored_root) to return instead, so an epoch's thousand
    # bundles never sit in memory together.
    sink: Callable[[int, AuditResult], AuditResult] | None = None


class Auditor(Protocol):
    """What the node's audit service needs from a plug-in for one target kind."""

    kind: int

    async def audit_epoch(self, epoch: int, assigned: list[Target], peers: list[Target],
                          deadline_s: float, context: EpochContext | None = None) -> dict[int, AuditResult]:
        """Audit every ``assigned`` target (``peers`` = every enabled target of this kind, for comparisons);
        return a result for each assigned target id, within ``deadline_s`` seconds."""
        ...

    def judge(self, bundle: dict[str, Any]) -> int:
        """The verdict a bundle's recorded observations support (pure; no network)."""
        ...


async def bounded_each(items: list, work, workers: int) -> None:
    """``await work(item)`` for every item, at most ``workers`` at a time (a few tasks, not one per item)."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(items)))))


def make_policy(cls: Callable[..., Any], policy: Any, overrides: dict[str, int]) -> Any:
    """An auditor's policy: ``policy``, or a ``cls`` made of the keyword ``overrides`` (not both)."""
    if policy is not None and overrides:
        raise ValueError("give a policy or keyword overrides, not both")
    return policy if policy is not None else cls(**overrides)


def evaluate_bundle(bundle: dict[str, Any], kind: int,
                    judge: Callable[[dict[str, Any]], tuple[int, list[dict[str, Any]]]]) -> tuple[int, list[dict[str, Any]]]:
    """``judge(bundle)`` for a bundle of ``kind``: any sign that the bundle is not a well-formed one of that kind
    (wrong kind, missing or mistyped field) becomes one ValueError naming the kind."""
    name = KIND_NAMES[kind]
    try:
        if bundle.get("kind") != name:
            raise ValueError(f"kind {bundle.get('kind')!r} is not {name}")
        return judge(bundle)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"not a well-formed {name} evidence bundle: {type(exc).__name__}: {exc}") from None


def answer_checks(final: dict[str, dict[str, Any]], check: Callable[[str, bool | None, str], None]) -> None:
    """The ``reachable`` and ``well_formed`` checks of the last attempts ``final`` of a JSON-RPC audit's calls:
    unanswered calls fail the first; garbage and JSON-RPC errors the second (None when no call was made)."""
    unanswered = [describe(o) for o in final.values() if o["status"] in UNANSWERED]
    bad = [describe(o) for o in final.values() if o["status"] in GARBAGE or o["status"] == "rpc_error"]
    check("reachable", not unanswered if final else False,
          "; ".join(unanswered) or (f"{len(final)} calls answered" if final else "no call was made"))
    check("well_formed", not bad if final else None, "; ".join(bad) or "every answer well-formed")


__all__ = ["bounded_each", "make_policy", "evaluate_bundle", "answer_checks", "Target", "AuditResult", "Auditor", "AuditEnv", "EpochContext", "UNANSWERED", "OK", "FAULT", "UNREACHABLE", "BUNDLE_VERSION"]
