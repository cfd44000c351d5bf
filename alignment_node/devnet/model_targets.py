"""The devnet's MODEL targets, in two generations; each setup takes the Devnet (``net``) and its keeper.

- ``setup_llms`` (plan ``llms``): served chat LLMs audited by nodes that hold no weights. The keeper makes the
  version-2 baseline of the token-level chat model (``models.keeper``; a copy claiming TeeML for the TEE
  targets, with a fresh TEE key, attestation root and measurement), and each target is one
  ``devnet/llmserver.py`` process in its serving setup, or, for the ``tee-*`` and ``gateway-*`` modes, a
  ``devnet/teeproxy.py`` broker in that mode in front of its own float32 server. Benign: ``LLM_HONEST``.
- ``setup_models`` (plan ``models``): the byte-level model of version-1 baselines, which every auditor runs
  itself (``devnet/modelserver.py``), kept for the ``byte-model-faults`` scenario.
"""

from __future__ import annotations

import asyncio
import time

from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from .targets import TargetProc, register_target

__all__ = ["LLM_HONEST", "LLM_UNDETECTABLE", "MODEL_UNDETECTABLE", "setup_llms", "setup_models"]

# The served-LLM modes that are not faults: the registered weights in a benign serving setup, and an honest
# TeeML broker in front of them.
LLM_HONEST = ("fp32", "bf16", "threads-2", "batch-8", "tee-honest")
TEE_PREFIXES = ("tee-", "gateway-")

# MODEL modes a scenario does not count as missed faults. Byte models (bench/model_power.py): none since the
# log-probability check and the fresh prompts. Served LLMs audited without weights (bench/served_power.py): the
# modes below 0.95 power at the default budget of 100 queries (an audit-aware provider, replay of the registered
# model's own answers, routing a tenth of requests; bench/README.md).
MODEL_UNDETECTABLE: tuple[str, ...] = ()
LLM_UNDETECTABLE: tuple[str, ...] = ("evasive", "replay", "route-0.1")


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


class _Stack:
    """A TEE broker and the float32 server behind it, stopped together."""

    def __init__(self, proxy, upstream):
        self.proxy, self.upstream = proxy, upstream

    def stop(self) -> None:
        self.proxy.stop()
        self.upstream.stop()


async def setup_llms(net, keeper_signer: LocalSigner) -> None:
    """The version-2 baselines (plain and TeeML), one served-LLM target per mode of ``net.plan.llms``."""
    import secrets

    from ..models import baseline as B
    from ..models import keeper, tee
    from .llmserver import LLMServerProcess
    from .processes import start_all
    from .teeproxy import MODES as PROXY_MODES
    from .teeproxy import TeeProxyProcess

    modes = net.plan.llms
    t0 = time.monotonic()
    plain = await asyncio.to_thread(keeper.cached_served_baseline, 0)
    h_plain, _ = B.save(plain, net.workdir / "baselines")
    tee_dir = net.workdir / "tee"
    tee_dir.mkdir(parents=True, exist_ok=True)
    tee_key, root_key = secrets.token_bytes(32), secrets.token_bytes(32)
    for name, key in (("tee.key", tee_key), ("root.key", root_key)):
        (tee_dir / name).write_text(key.hex() + "\n")
        (tee_dir / name).chmod(0o600)
    measurement = secrets.token_hex(48)
    claimed = keeper.with_tee(plain, {"signer": tee.address_of(tee_key), "measurement": measurement,
                                      "roots": [tee.address_of(root_key)]})
    h_tee, _ = B.save(claimed, net.workdir / "baselines")
    del tee_key, root_key
    net.log(f"served-LLM baselines {h_plain} (plain) and {h_tee} (TeeML) in {time.monotonic() - t0:.1f} s")

    def proxied(mode: str) -> str | None:
        if not mode.startswith(TEE_PREFIXES):
            return None
        inner = "honest" if mode == "tee-honest" else mode
        if inner not in PROXY_MODES:
            raise ValueError(f"unknown TEE target mode {mode!r}")
        return inner

    direct = {m: LLMServerProcess(m, embeddings=False, startup_timeout=300) for m in dict.fromkeys(modes)
              if proxied(m) is None}
    servers = [direct[m] if proxied(m) is None else None for m in modes]
    upstreams = {i: LLMServerProcess("fp32", embeddings=False, startup_timeout=300)
                 for i, m in enumerate(modes) if proxied(m) is not None}
    start_all([*direct.values(), *upstreams.values()])
    for i, upstream in upstreams.items():
        proxy = TeeProxyProcess(upstream.url, proxied(modes[i]), key_file=str(tee_dir / "tee.key"),
                                root_key_file=str(tee_dir / "root.key"), measurement=measurement)
        servers[i] = _Stack(proxy, upstream)
    start_all([servers[i].proxy for i in upstreams])
    async with RpcClient(net.anvil.url) as rpc:
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        seen = set()
        for mode, server in zip(modes, servers):
            endpoint = (server.proxy if isinstance(server, _Stack) else server).url
            identity = h_tee if isinstance(server, _Stack) else h_plain
            tid = await register_target(registry, 5, endpoint, bytes.fromhex(identity[2:]), keeper_signer)
            # a mode's first target owns its server (stopped once); TEE stacks each own their broker
            owner = server if (isinstance(server, _Stack) or mode not in seen) else None
            seen.add(mode)
            t = TargetProc(tid, mode, int(endpoint.rsplit(":", 1)[1]), kind="MODEL", server=owner,
                           honest=LLM_HONEST, detectable=mode not in LLM_UNDETECTABLE)
            t.fault_started = time.time() if t.fault else None
            net.targets.append(t)
    net.log(f"{len(modes)} served-LLM targets in {time.monotonic() - t0:.1f} s: "
            + ", ".join(f"{t.id}:{t.mode}" for t in net.targets if t.kind == "MODEL"))
