"""The minimum node release set by governance: ``OperatorRegistry.minNodeVersion`` (major << 16 | minor << 8 |
patch; 0: any release), read at the node's first tick and again at every new epoch.

Below the minimum the node logs an error, raises the ``node_outdated`` alert (alert_conditions.py), reports it in
/health (unhealthy) and /status, and stops taking on duties: node.py skips its SKIPPED_WHEN_OUTDATED services
(heartbeat, audits and commits, resume, settlement and miss reports), so no new heartbeat, commit, resume,
settlement or miss-report transaction is sent. It still reveals what it committed before (not revealing would be
penalized), claims its commission, probes its endpoints and sends alerts. Without heartbeats its licenses leave the
committees from the next epoch: an outdated node winds down instead of auditing by rules it may not know. Once a
release at or above the minimum runs (or governance lowers it), everything resumes at the next epoch's check.
See docs/node.md, "Upgrades".
"""

from __future__ import annotations

import logging

from .. import __version__
from ..chain.contracts import ContractRevert
from .parts import NodeParts, TickView

log = logging.getLogger("alignment_node.node")


def encode_version(release: str) -> int:
    """``"1.2.3"`` -> 0x010203, the on-chain form (each part 0..255)."""
    parts = release.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"a node release is MAJOR.MINOR.PATCH with each part 0..255, not {release!r}")
    major, minor, patch = (int(p) for p in parts)
    return major << 16 | minor << 8 | patch


def decode_version(number: int) -> str:
    """0x010203 -> ``"1.2.3"``."""
    if not 0 <= number < 1 << 24:
        raise ValueError(f"a node release number is below 2**24, not {number}")
    return f"{number >> 16}.{number >> 8 & 0xFF}.{number & 0xFF}"


class VersionGate:
    """Reads the minimum once per epoch and publishes it in ``snapshot.version_gate``:
    {"release", "minimum" (None: no minimum), "outdated"}."""

    def __init__(self, parts: NodeParts, release: str = __version__):
        self.p = parts
        self.release = release
        self._epoch: int | None = None
        self.outdated = False
        parts.snapshot.version_gate = {"release": release, "minimum": None, "outdated": False}

    async def tick(self, view: TickView) -> bool:
        """Check at the first tick and at each new epoch; returns whether the node is below the minimum."""
        if view.epoch != self._epoch:
            await self.check()
            self._epoch = view.epoch
        return self.outdated

    async def check(self) -> None:
        try:
            minimum = int(await self.p.c["OperatorRegistry"].call("minNodeVersion"))
        except ContractRevert as exc:  # a registry deployed before the minimum existed
            log.warning("no minimum node release on chain (OperatorRegistry.minNodeVersion: %s)", exc)
            minimum = 0
        outdated = minimum > encode_version(self.release)
        shown = decode_version(minimum) if minimum else None
        if outdated:
            log.error("this node is alignment-node %s; governance requires at least %s: upgrade alignment-node. "
                      "Until then it sends no heartbeat, commit, resume, settlement or miss report "
                      "(reveals of earlier commits and commission claims go on)", self.release, shown)
        elif self.outdated:
            log.info("alignment-node %s meets the minimum node release again (%s)", self.release, shown or "none")
        self.outdated = outdated
        self.p.snapshot.version_gate = {"release": self.release, "minimum": shown, "outdated": outdated}


def outdated_reason(gate: dict) -> str | None:
    """The /health reason and alert text for ``snapshot.version_gate``, None when the node is not outdated."""
    if not gate or not gate.get("outdated"):
        return None
    return (f"alignment-node {gate['release']} is below the minimum node release {gate['minimum']} set by "
            "governance: upgrade alignment-node (until then no heartbeats, commits or settlements are sent)")
