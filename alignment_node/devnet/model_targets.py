"""The devnet's MODEL targets: a baseline bundle of the devnet model (its hash is every MODEL target's
identity) and one model server process per target. ``setup_models`` takes the Devnet (``net``)."""

from __future__ import annotations

import asyncio
import time

from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from .targets import TargetProc, register_target

__all__ = ["MODEL_UNDETECTABLE", "setup_models"]

# Model substitutions bench/model_power.py finds not reliably detectable (verdict power < 0.95 at alpha 0.01) at
# the scenario budget of 50 queries: none since the log-probability check and the fresh prompts (before them:
# int8, 4bit, noise-0.1, noise-1 and evasive). A scenario would not count such modes as missed faults.
MODEL_UNDETECTABLE: tuple[str, ...] = ()


async def setup_models(net, keeper: LocalSigner) -> None:
    """The baseline bundle, one model server process per MODEL target, each registered by the keeper."""
    from ..models import baseline as B
    from .modelserver import ModelServerProcess

    t0 = time.monotonic()
    bundle = await asyncio.to_thread(B.make_baseline, 0, None, 100)
    h, _ = B.save(bundle, net.workdir / "baselines")
    net.log(f"baseline {h} made in {time.monotonic() - t0:.1f} s")
    servers = [ModelServerProcess(m, startup_timeout=300) for m in net.plan.models]
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
    async with RpcClient(net.anvil.url) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        for mode, server in zip(net.plan.models, servers):
            tid = await register_target(registry, 5, server.url, bytes.fromhex(h[2:]), keeper)
            t = TargetProc(tid, mode, server.port, kind="MODEL", server=server)
            t.fault_started = time.time() if t.fault else None
            net.targets.append(t)
    net.log(f"{len(servers)} model targets: " + ", ".join(f"{t.id}:{t.mode}" for t in net.targets
                                                           if t.kind == "MODEL"))
