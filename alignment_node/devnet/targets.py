"""A devnet target: its record (kind, mode, port, the process or server behind it) and its registration."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from ..chain.contracts import Contract
from ..chain.tx import LocalSigner

__all__ = ["TargetProc", "add_target_as_governance", "register_target", "target_added"]


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


async def add_target_as_governance(registry: Contract, kind: int, url: str, identity: bytes) -> dict:
    """TargetRegistry.addTarget as its owner, the receipt: every target, trap or not, is added by governance
    (the timelock). The devnet stands in for a passed proposal by sending the call from the owner, impersonated in
    anvil (a devnet chain only)."""
    rpc = registry.rpc
    owner = await registry.call("owner")
    data = "0x" + registry.encode("addTarget", kind, url, identity).hex()
    await rpc.request("anvil_impersonateAccount", [owner])
    try:
        if await rpc.get_balance(owner) < 10**18:
            await rpc.request("anvil_setBalance", [owner, hex(10**20)])
        tx_hash = await rpc.request("eth_sendTransaction", [{"from": owner, "to": registry.address, "data": data}])
        receipt = await rpc.wait_for_receipt(tx_hash, timeout=60)
    finally:
        await rpc.request("anvil_stopImpersonatingAccount", [owner])
    if int(receipt["status"], 16) != 1:
        raise RuntimeError(f"TargetRegistry.addTarget({kind}, {url}) as the owner {owner} reverted")
    return receipt


def target_added(registry: Contract, receipt: dict) -> int:
    """The id of the target a receipt's TargetAdded event registered."""
    topic = "0x" + registry.abi.event("TargetAdded").topic.hex()
    return next(int(log["topics"][1], 16) for log in receipt["logs"] if log["topics"][0] == topic)


async def register_target(registry: Contract, kind: int, url: str, identity: bytes, keeper: LocalSigner) -> int:
    """Add a target of ``kind`` (TargetRegistry's kind number) through governance; its id. ``keeper`` (the devnet's
    trap keeper) proposes it in a real network; here the devnet sends the registration as the registry's owner."""
    del keeper  # the keeper has no registration path of its own (a trap must look like any target)
    return target_added(registry, await add_target_as_governance(registry, kind, url, identity))
