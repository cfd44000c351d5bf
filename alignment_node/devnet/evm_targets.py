"""The devnet's EVM_RPC targets: one fault proxy process in front of anvil per target, and the sealed trap.
Every function takes the Devnet (``net``) whose targets it sets up."""

from __future__ import annotations

import secrets
import time

from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from .anvil import free_port
from .processes import spawn
from .targets import TargetProc, register_target

__all__ = ["FAULTY_MODES", "MODE_ARGS", "TRAP_OUTCOME", "reveal_trap", "setup_evm_targets", "start_fault_proxy"]

FAULTY_MODES = ("down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage")
# Proxy arguments per mode: far enough from honest behaviour that any honest check must see it.
MODE_ARGS = {"slow": ["--delay", "30"], "lagging": ["--k", "40"]}
TRAP_OUTCOME = {"down": 3, "slow": 3}  # UNREACHABLE; every other faulty mode is a FAULT (2)


async def setup_evm_targets(net, keeper: LocalSigner) -> None:
    """One fault proxy process per target in front of anvil, each registered through governance; before the
    trap's registration the keeper (the deployer on the devnet) posts its anonymous seal for the id the trap
    will get, with its known outcome (TargetRegistry: a seal judges only targets registered after it)."""
    from eth_abi import encode

    from ..protocol import trap_seal

    modes = [(m, False) for m in net.plan.targets]
    if net.plan.trap_mode:
        modes.insert(secrets.randbelow(len(modes) + 1), (net.plan.trap_mode, True))
    added = []
    async with RpcClient(net.anvil.url) as rpc:
        c = manifest_contracts(rpc, net.manifest)
        genesis = await rpc.get_block(0)
        identity = encode(["uint256", "bytes32"], [await rpc.chain_id(), bytes.fromhex(genesis["hash"][2:])])
        head = await rpc.block_number()
        registry = c["TargetRegistry"]
        for mode, trap in modes:
            port = free_port()
            if trap:  # ids are sequential and the devnet registers one target at a time
                expected = await registry.call("targetCount")
                seal = trap_seal(expected, TRAP_OUTCOME.get(mode, 2), net.trap_salt)
                await registry.transact("sealTrap", seal, signer=keeper)
            tid = await register_target(registry, 1, f"http://127.0.0.1:{port}", identity, keeper)
            if trap and tid != expected:
                raise RuntimeError(f"the trap was registered as target {tid}, not {expected} as sealed")
            added.append(TargetProc(tid, mode, port, trap))
    net.targets.extend(added)
    for t in added:
        start_fault_proxy(net, t, head)
    net.log(f"{len(added)} targets: " + ", ".join(f"{t.id}:{t.mode}{'(trap)' if t.trap else ''}" for t in added))


def start_fault_proxy(net, t: TargetProc, head: int) -> None:
    """The target's fault proxy in front of anvil (a "forked" one forks at block ``head``)."""
    args = list(MODE_ARGS.get(t.mode, []))
    if t.mode == "forked":
        args += ["--height", str(head)]
    t.process = spawn("alignment_node.devnet.faultproxy",
                      ["--upstream", net.anvil.url, "--port", str(t.port), "--mode", t.mode, *args],
                      net.workdir / f"target-{t.id}.err")
    t.fault_started = time.time() if t.fault else None


async def reveal_trap(net) -> None:
    """Reveal the sealed trap's outcome, unless there is none or it is revealed already."""
    trap = next((t for t in net.targets if t.trap), None)
    if trap is None:
        return
    keeper = LocalSigner(net.anvil.private_keys[0])
    async with RpcClient(net.anvil.url) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        if await registry.call("trapOutcome", trap.id) == 0:
            await registry.transact("revealTrap", trap.id, TRAP_OUTCOME.get(trap.mode, 2), net.trap_salt,
                                    signer=keeper)
            net.log(f"trap {trap.id} revealed")
