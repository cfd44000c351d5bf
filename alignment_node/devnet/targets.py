"""A devnet target: its record (kind, mode, port, the process or server behind it) and its registration."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from ..chain.contracts import Contract
from ..chain.tx import LocalSigner

__all__ = ["TargetProc", "register_target"]


@dataclass
class TargetProc:
    id: int
    mode: str
    port: int
    trap: bool = False
    process: subprocess.Popen | None = None
    fault_started: float | None = None  # unix time the fault began (proxy start)
    kind: str = "EVM_RPC"
    shard: tuple[int, int] = (0, 1)
    server: Any = None  # a ServerProcess wrapper (model servers)
    honest: tuple[str, ...] = ("honest",)  # the modes of its kind that are not faults
    detectable: bool = True  # False: a fault the scenario does not count as missed (measured undetectable)

    @property
    def fault(self) -> str | None:
        return None if self.mode in self.honest else self.mode


async def register_target(registry: Contract, kind: int, url: str, identity: bytes, keeper: LocalSigner) -> int:
    """Add a target of ``kind`` (TargetRegistry's kind number) as ``keeper``; its id."""
    receipt = await registry.transact("addTarget", kind, url, identity, signer=keeper)
    topic = "0x" + registry.abi.event("TargetAdded").topic.hex()
    return next(int(log["topics"][1], 16) for log in receipt["logs"] if log["topics"][0] == topic)
