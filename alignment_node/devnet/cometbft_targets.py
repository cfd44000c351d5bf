"""The devnet's COMETBFT targets: simulated CometBFT chains (one chain simulator process each), their
validators and RPC endpoints as targets, and the modes of each. ``setup_consensus`` takes the Devnet (``net``)."""

from __future__ import annotations

import asyncio
import time

from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from .targets import TargetProc, register_target

__all__ = ["CONSENSUS_CHAINS", "CONSENSUS_HALT_AFTER_S", "CONSENSUS_HONEST", "CONSENSUS_TARGETS", "setup_consensus"]

# The consensus scenario: chain -> simulator settings, and the targets registered on it: (mode, validator
# index or None for an RPC-only target, endpoint name). Validator 5 joins late and 6 changes the set further.
CONSENSUS_CHAINS = {
    "devnet-comet-1": {"validators": 7, "block_time": 1.0, "seed": 1,
                       "faults": ["2=few-misses:0.05", "3=offline:0.8", "4=double-sign@15", "5=join@10"],
                       "endpoints": {"rpc0": "honest", "rpc1": "honest", "forge": "forge", "fork": "fork",
                                     "garbage": "garbage", "other": "wrong-chain"}},
    "devnet-comet-halt": {"validators": 4, "block_time": 1.0, "seed": 2, "faults": [], "halt_at": 12,
                          "endpoints": {"rpc0": "honest"}},
}
CONSENSUS_TARGETS = {
    "devnet-comet-1": [("honest", 0, "rpc0"), ("honest", 1, "rpc1"), ("few-misses", 2, "rpc0"),
                       ("offline", 3, "rpc1"), ("double-sign", 4, "rpc0"), ("rpc-honest", None, "rpc1"),
                       ("forge", None, "forge"), ("fork", None, "fork"), ("garbage", None, "garbage"),
                       ("wrong-chain", None, "other")],
    "devnet-comet-halt": [("halt", 0, "rpc0"), ("halt", 1, "rpc0")],
}
CONSENSUS_HONEST = ("honest", "few-misses", "rpc-honest")
CONSENSUS_HALT_AFTER_S = 10  # the devnet chains make a block a second


async def setup_consensus(net, keeper: LocalSigner) -> None:
    """One chain simulator process per chain of CONSENSUS_CHAINS and its targets (COMETBFT, identity
    ``<chain id>/<validator address>`` or ``<chain id>`` for an RPC endpoint), registered by the keeper."""
    from ..audits.cometbft import comet_identity
    from .cometsim import CometSimProcess

    sims = {chain: CometSimProcess(chain_id=chain, **cfg) for chain, cfg in CONSENSUS_CHAINS.items()}
    await asyncio.gather(*(asyncio.to_thread(s.start) for s in sims.values()))
    net.comet_sims = list(sims.values())
    async with RpcClient(net.anvil.url) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        for chain, specs in CONSENSUS_TARGETS.items():
            sim = sims[chain]
            addresses = sim.validator_addresses()
            for mode, index, endpoint in specs:
                identity = comet_identity(chain, None if index is None else addresses[index])
                tid = await register_target(registry, 2, sim.endpoint_url(endpoint), identity, keeper)
                t = TargetProc(tid, mode, sim.port, kind="COMETBFT", honest=CONSENSUS_HONEST)
                t.fault_started = time.time() if t.fault else None
                net.targets.append(t)
    net.log("consensus targets: " + ", ".join(f"{t.id}:{t.mode}" for t in net.targets if t.kind == "COMETBFT"))
