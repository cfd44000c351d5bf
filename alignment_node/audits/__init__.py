"""The audit plug-ins: one module per target kind, and ``AUDITORS``, the one table from a kind to its plug-in.

The node builds its auditors from this table (``PlugIn.build``) and ``alignment-node verify-evidence``
re-judges a bundle through it (``plugin_for_bundle(bundle).judge``): a kind added here is audited and can be
re-checked, and a kind missing here is neither. The plug-ins' shared types are in ``base.py``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from .. import protocol as P
from .base import AuditEnv, Auditor
from .cometbft import CometAuditor
from .da import DaAuditor, DaPolicy, DaWorkerAuditor
from .evm import EvmAuditor
from .model import ModelAuditor
from .zgs import ZgsAuditor


@dataclass(frozen=True)
class PlugIn:
    kind: int
    # the node's auditor of this kind, from the node config (``config.Config``) and what the node provides
    build: Callable[[Any, AuditEnv], Auditor]
    # the verdict a bundle supports, re-judged with nothing but the bundle and the evidence server's URL
    # (a MODEL bundle's baseline is fetched from that server's /baselines and checked by its hash)
    judge: Callable[[dict[str, Any], str], int]

    @property
    def name(self) -> str:
        return P.KIND_NAMES[self.kind]


def _evm(cfg, env: AuditEnv) -> EvmAuditor:
    return EvmAuditor(max_connections=cfg.audit.max_connections, max_response_bytes=cfg.audit.max_response_bytes)


def _zgs(cfg, env: AuditEnv) -> ZgsAuditor:
    return ZgsAuditor(env.rpc_for, from_block=cfg.audit.storage_from_block,
                      max_connections=cfg.audit.max_connections, challenges=cfg.audit.storage_challenges)


def _cometbft(cfg, env: AuditEnv) -> CometAuditor:
    return CometAuditor(cfg.audit.cometbft_rpc_urls, max_connections=cfg.audit.max_connections,
                        window=cfg.audit.cometbft_window, halt_after_s=cfg.audit.cometbft_halt_after_s)


def _model(cfg, env: AuditEnv) -> ModelAuditor:
    return ModelAuditor(cfg.audit.model_baseline_sources, env.data_dir, {"queries": cfg.audit.model_queries})


def _da(cfg, env: AuditEnv) -> DaWorkerAuditor:
    policy = DaPolicy(min_share_pct=cfg.audit.da_min_share_pct, window_blobs=cfg.audit.da_window_blobs,
                      max_targets_at_once=min(cfg.audit.max_connections, 64))
    return DaWorkerAuditor(cfg.audit.da_rpc_urls or cfg.chain.rpc_urls, cfg.chain.request_timeout, policy,
                           cfg.audit.da_lookback_blocks)


def _judge_model(bundle: dict[str, Any], source: str) -> int:
    with tempfile.TemporaryDirectory(prefix="baselines-") as scratch:
        return ModelAuditor([source.rstrip("/") + "/baselines"], scratch).judge(bundle)


AUDITORS: dict[int, PlugIn] = {
    P.KIND_EVM_RPC: PlugIn(P.KIND_EVM_RPC, _evm, lambda b, _src: EvmAuditor().judge(b)),
    P.KIND_COMETBFT: PlugIn(P.KIND_COMETBFT, _cometbft, lambda b, _src: CometAuditor().judge(b)),
    P.KIND_ZGS_STORAGE: PlugIn(P.KIND_ZGS_STORAGE, _zgs, lambda b, _src: ZgsAuditor(lambda _chain: None).judge(b)),
    P.KIND_DA_SIGNER: PlugIn(P.KIND_DA_SIGNER, _da, lambda b, _src: DaAuditor().judge(b)),
    P.KIND_MODEL: PlugIn(P.KIND_MODEL, _model, _judge_model),
}


def build_auditors(cfg, env: AuditEnv) -> dict[int, Auditor]:
    """The node's auditors, one per kind of ``AUDITORS``."""
    return {kind: plugin.build(cfg, env) for kind, plugin in AUDITORS.items()}


def plugin_for_bundle(bundle: Any) -> PlugIn | None:
    """The plug-in whose bundles carry this ``kind`` name (None for anything else)."""
    if not isinstance(bundle, dict):
        return None
    return next((p for p in AUDITORS.values() if p.name == bundle.get("kind")), None)


__all__ = ["AUDITORS", "PlugIn", "build_auditors", "plugin_for_bundle"]
