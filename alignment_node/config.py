"""The node's configuration: one TOML file plus ``ZG_ALIGNMENT_NODE_*`` environment overrides, validated at start.

Keys (TOML section.key; environment name in parentheses):

- ``data_dir`` (ZG_ALIGNMENT_NODE_DATA_DIR): directory of the node's SQLite store and evidence. Default ``./data``.
- ``log_level`` (ZG_ALIGNMENT_NODE_LOG_LEVEL): debug, info, warning, error. Default ``info``.
- ``data_min_free_mb`` (ZG_ALIGNMENT_NODE_DATA_MIN_FREE_MB): below this many MiB free in the data directory the node
  warns (log, /health 206, the disk_low alert) before the disk is full; a full one stops its transactions until
  space returns (docs/node.md, "Disk full and corrupt databases"). Default 100; 0 turns the warning off.
- ``chain.rpc_urls`` (ZG_ALIGNMENT_NODE_CHAIN_RPC_URLS, comma separated): JSON-RPC endpoints, tried in order.
- ``chain.manifest`` (ZG_ALIGNMENT_NODE_CHAIN_MANIFEST): the deployment manifest JSON (addresses, chain id).
- ``chain.request_timeout`` (..._CHAIN_REQUEST_TIMEOUT): seconds per RPC request. Default 10.
- ``chain.poll_interval`` (..._CHAIN_POLL_INTERVAL): seconds between polls of the chain head. Default 1.
- ``operator.keystore`` (..._OPERATOR_KEYSTORE): keystore directory (Ethereum keystore v3 files).
- ``operator.password_file`` / ``operator.password_env`` (..._OPERATOR_PASSWORD_FILE / _PASSWORD_ENV): where the
  keystore password comes from (a file's first line, or the named environment variable). Exactly one.
- ``operator.address`` (..._OPERATOR_ADDRESS): which key of the keystore to use, if it holds several; with a
  remote signer, the address it signs for (required).
- ``operator.signer`` (..._OPERATOR_SIGNER): ``keystore`` (the default: the key is decrypted into the node's
  memory) or ``remote`` (a Web3Signer-compatible signer holds it; docs/node.md, "Remote signing"). With
  ``remote`` the keystore and password settings are not used.
- ``operator.remote_signer_url`` (..._OPERATOR_REMOTE_SIGNER_URL): the remote signer's JSON-RPC URL (http or
  https; logged as scheme://host:port only). Required with ``signer = "remote"``.
- ``operator.remote_signer_timeout_s`` (..._OPERATOR_REMOTE_SIGNER_TIMEOUT_S): seconds the node waits for the
  remote signer per connect or read. Default 5.
- ``service.host`` / ``service.port`` (..._SERVICE_HOST / _SERVICE_PORT): the HTTP API. Default 127.0.0.1:9100.
- ``service.public_evidence`` (..._SERVICE_PUBLIC_EVIDENCE): ``host:port`` of a second, read-only listener that
  serves only the evidence bundles and baselines (``/evidence/<root>``, ``/baselines/<hash>.json``) to anyone, so
  the roots this node reveals can be checked by other nodes and the public (security review M6); publish its URL
  as your operator's metadata URI. Empty (the default in code) turns it off; ``alignment-node init`` writes
  ``0.0.0.0:9101``.
- ``gas.max_fee_gwei`` (..._GAS_MAX_FEE_GWEI): cap on maxFeePerGas. Default 500.
- ``gas.priority_fee_gwei`` (..._GAS_PRIORITY_FEE_GWEI): maxPriorityFeePerGas. Default 1.
- ``gas.min_balance_wei`` (..._GAS_MIN_BALANCE_WEI): below this the node logs an alert. Default 10^16.
- ``gas.bump_after_s`` / ``gas.bump_after_blocks`` (..._GAS_BUMP_AFTER_S / _BUMP_AFTER_BLOCKS): a transaction not
  mined this many seconds *and* this many new blocks after it was sent is replaced (same nonce) with higher fees.
  Default 10 seconds and 2 blocks (5-10 blocks of a chain with 1-2 s blocks; a 0.25 s devnet can use 2 seconds).
- ``gas.bump_factor`` (..._GAS_BUMP_FACTOR): each replacement multiplies maxFeePerGas and maxPriorityFeePerGas by
  this (or takes the market's fee if higher), never above ``gas.max_fee_gwei``; at the cap the node raises the
  fee_cap_reached alert. At least 1.1 (a node's pool refuses a smaller step). Default 1.25.
- ``heartbeat.enabled`` (..._HEARTBEAT_ENABLED): send heartbeats. Default true.
- ``audit.deadline_s`` (..._AUDIT_DEADLINE_S): seconds an epoch's audits may take. Default 5.
- ``audit.max_connections`` (..._AUDIT_MAX_CONNECTIONS): concurrent connections to targets. Default 64.
- ``audit.max_response_bytes`` (..._AUDIT_MAX_RESPONSE_BYTES): a bigger answer is a fault. Default 1 MiB.
- ``audit.lazy`` (..._AUDIT_LAZY): devnet drills only: vote OK on everything without auditing. Default false.
- ``audit.storage_rpc_urls`` (..._AUDIT_STORAGE_RPC_URLS, comma separated): JSON-RPC endpoints of the chain the
  storage targets' flow contracts live on (0G's chain). Default: the node's own chain (``chain.rpc_urls``).
- ``audit.storage_from_block`` (..._AUDIT_STORAGE_FROM_BLOCK): first block whose flow ``Submit`` events are read.
  Default 0.
- ``audit.storage_challenges`` (..._AUDIT_STORAGE_CHALLENGES): segments asked of each storage target per epoch.
  Default 8.
- ``audit.model_baseline_sources`` (..._AUDIT_MODEL_BASELINE_SOURCES, comma separated): directories or http(s)
  base URLs holding MODEL baseline bundles as ``<hash>.json``. Fetched bundles are cached in the data directory
  and served at ``/baselines/<hash>.json``.
- ``audit.model_queries`` (..._AUDIT_MODEL_QUERIES): completions asked of each MODEL target per epoch. Default 100.
- ``audit.cometbft_rpc_urls`` (..._AUDIT_COMETBFT_RPC_URLS, comma separated): CometBFT RPC endpoints this node
  uses besides the targets' own to see a chain (each serves the chain its ``/status`` names). Default none.
- ``audit.cometbft_window`` (..._AUDIT_COMETBFT_WINDOW): at most this many heights of a chain audited per epoch.
  Default 100.
- ``audit.cometbft_halt_after_s`` (..._AUDIT_COMETBFT_HALT_AFTER_S): a chain without a new height for longer is
  reported halted (its validators UNREACHABLE). Default 30.
- ``audit.da_rpc_urls`` (..._AUDIT_DA_RPC_URLS, comma separated): JSON-RPC endpoints of the chain the DA signers
  are registered on (0G's chain: the DASigners precompile and the DAEntrance contracts). Default: the node's own
  chain (``chain.rpc_urls``).
- ``audit.da_lookback_blocks`` (..._AUDIT_DA_LOOKBACK_BLOCKS): on first use, verified blobs are read from this
  many blocks before the head (then incrementally). Default 20000.
- ``audit.da_window_blobs`` (..._AUDIT_DA_WINDOW_BLOBS): the newest verified blobs of a DAEntrance a signer's
  participation and custody are judged over. Default 64.
- ``audit.da_min_share_pct`` (..._AUDIT_DA_MIN_SHARE_PCT): the least share of its blobs a DA signer must be
  counted in. Default 50.
- ``[[alerts.webhooks]]`` (file only): where alerts go; none (the default) turns alerting off. Each has ``kind``
  (discord, slack, telegram or json) and ``url`` or ``url_env`` (the name of an environment variable holding
  the URL, which keeps its token out of the file); a telegram webhook's URL is the bot API base with the token,
  ``https://api.telegram.org/bot<token>``, and it needs ``chat_id``. URLs are logged as scheme://host only.
- ``alerts.disabled`` (..._ALERTS_DISABLED, comma separated): alerts not to send, of license_penalized,
  license_suspended, missed_reveal, low_balance, rpc_failover, target_flagged, node_outdated, disk_full, disk_low,
  fee_cap_reached.
- ``alerts.severity`` (a table; ..._ALERTS_SEVERITY as ``alert=severity,...``): severity per alert (critical,
  warning, info) instead of its default.
- ``alerts.node_name`` (..._ALERTS_NODE_NAME): how alerts name this node. Default: the operator address.
- ``alerts.resolve_after_s`` (..._ALERTS_RESOLVE_AFTER_S): a condition must stay clear this long before its
  resolution is sent (a shorter gap is not news). Default 300.
- ``alerts.flap_window_s`` / ``alerts.flap_max_fires`` (..._ALERTS_FLAP_WINDOW_S / _FLAP_MAX_FIRES): an alert
  that fires more than ``flap_max_fires`` times within ``flap_window_s`` seconds is sent once as flapping, then
  held until it has not fired for a whole window. Default 3600 and 3.
- ``alerts.timeout_s`` (..._ALERTS_TIMEOUT_S): seconds per delivery attempt. Default 10.
- ``alerts.max_attempts`` (..._ALERTS_MAX_ATTEMPTS): attempts per delivery (with doubling backoff) before it
  is dropped. Default 8.
- ``[rewards]``: claims (docs/node.md, "Claims and why a license earns nothing"). RewardVault pays a license's
  credit only to its owner (``claim`` reverts ``NotLicenseOwner`` for anyone else) and commission only to the
  operator that earned it (``claimCommission``), so the node claims commission and the owner's
  ``alignment-node claim --every-epochs N`` claims licenses. Amounts beyond TOML's 64-bit integers are strings.
- ``rewards.auto_claim_commission`` (..._REWARDS_AUTO_CLAIM_COMMISSION): the node claims its commission, once
  per epoch at most, when it passes both guards below. Default false.
- ``rewards.commission_floor_wei`` (..._REWARDS_COMMISSION_FLOOR_WEI): claim commission only from this much
  (reward-token wei). Default 10^18.
- ``rewards.reward_wei_per_gas_wei`` (..._REWARDS_REWARD_WEI_PER_GAS_WEI): what one wei of the chain's gas coin is
  worth in reward-token wei (1 when the reward token is the gas coin or a 1:1 wrapper of it). When set, a claim
  also needs the claimable amount to exceed the claim's gas cost (eth_estimateGas x the current max fee per gas,
  converted at this rate). Default 0: unknown, the tokens differ and the floor is the only guard against gas
  eating the reward.
- ``rewards.claim_licenses`` (..._REWARDS_CLAIM_LICENSES, e.g. ``1,2,5-8``): licenses the owner's
  ``alignment-node claim --every-epochs N --config FILE`` claims (not the node: only an owner may claim).
- ``rewards.claim_every_epochs`` (..._REWARDS_CLAIM_EVERY_EPOCHS): that command's default period. Default 1.
- ``rewards.claim_floor_wei`` (..._REWARDS_CLAIM_FLOOR_WEI): that command claims only when the licenses' total
  claimable is at least this (and exceeds the gas cost as above). Default 10^18.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .logs import redact_url

ENV_PREFIX = "ZG_ALIGNMENT_NODE_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# The [alerts] vocabulary: alert kinds with their default severity, severities, webhook kinds.
SEVERITIES = ("critical", "warning", "info")
DEFAULT_SEVERITY = {
    "license_penalized": "warning",
    "license_suspended": "critical",
    "missed_reveal": "critical",
    "low_balance": "critical",
    "rpc_failover": "warning",
    "target_flagged": "info",
    "node_outdated": "critical",
    "disk_full": "critical",
    "disk_low": "warning",
    "fee_cap_reached": "critical",
}
WEBHOOK_KINDS = ("discord", "slack", "telegram", "json")
SIGNER_KINDS = ("keystore", "remote")  # operator.signer


class ConfigError(ValueError):
    """The configuration is wrong; ``problems`` lists every problem found, each naming its key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class ChainConfig:
    rpc_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8545"])
    manifest: str = "deployment.json"
    request_timeout: float = 10.0
    poll_interval: float = 1.0


@dataclass
class OperatorConfig:
    keystore: str = "keystore"
    password_file: str = ""
    password_env: str = ""
    address: str = ""
    signer: str = "keystore"  # or "remote": SIGNER_KINDS
    remote_signer_url: str = ""
    remote_signer_timeout_s: float = 5.0


@dataclass
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 9100
    public_evidence: str = ""  # host:port of the public, read-only evidence listener; empty: none


@dataclass
class GasConfig:
    max_fee_gwei: float = 500.0
    priority_fee_gwei: float = 1.0
    min_balance_wei: int = 10**16
    bump_after_s: float = 10.0
    bump_after_blocks: int = 2
    bump_factor: float = 1.25


@dataclass
class HeartbeatConfig:
    enabled: bool = True


@dataclass
class AuditConfig:
    deadline_s: float = 5.0
    max_connections: int = 64
    max_response_bytes: int = 1 << 20
    lazy: bool = False  # devnet drills only: vote OK on everything without auditing (the rubber stamp)
    storage_rpc_urls: list[str] = field(default_factory=list)  # the flow's chain; empty: the node's own chain
    storage_from_block: int = 0
    storage_challenges: int = 8
    model_baseline_sources: list[str] = field(default_factory=list)  # dirs or base URLs holding <hash>.json
    model_queries: int = 100
    cometbft_rpc_urls: list[str] = field(default_factory=list)
    cometbft_window: int = 100
    cometbft_halt_after_s: int = 30
    da_rpc_urls: list[str] = field(default_factory=list)  # the DA signers' chain; empty: the node's own chain
    da_lookback_blocks: int = 20_000
    da_window_blobs: int = 64
    da_min_share_pct: int = 50


@dataclass
class WebhookConfig:
    kind: str = ""  # discord, slack, telegram, json
    url: str = ""  # filled from url_env when that is set
    url_env: str = ""
    chat_id: str = ""  # telegram only


@dataclass
class AlertsConfig:
    webhooks: list[WebhookConfig] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    severity: dict[str, str] = field(default_factory=dict)
    node_name: str = ""
    resolve_after_s: float = 300.0
    flap_window_s: float = 3600.0
    flap_max_fires: int = 3
    timeout_s: float = 10.0
    max_attempts: int = 8


@dataclass
class RewardsConfig:
    auto_claim_commission: bool = False
    commission_floor_wei: int = 10**18
    reward_wei_per_gas_wei: float = 0.0  # 0: unknown (the reward token is not the gas coin): floor only
    claim_licenses: list[int] = field(default_factory=list)  # the owner's `claim --every-epochs`, not the node
    claim_every_epochs: int = 1
    claim_floor_wei: int = 10**18


@dataclass
class Config:
    data_dir: str = "data"
    log_level: str = "info"
    data_min_free_mb: int = 100
    chain: ChainConfig = field(default_factory=ChainConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    gas: GasConfig = field(default_factory=GasConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    source: str = ""  # the file it was read from, for messages

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        p = Path(path)
        if p.is_absolute() or not self.source:
            return p
        return Path(self.source).parent / p


_SECTIONS = {
    "chain": ChainConfig,
    "operator": OperatorConfig,
    "service": ServiceConfig,
    "gas": GasConfig,
    "heartbeat": HeartbeatConfig,
    "audit": AuditConfig,
    "alerts": AlertsConfig,
    "rewards": RewardsConfig,
}
_TOP = ("data_dir", "log_level", "data_min_free_mb")


def _coerce(value: Any, target: type, key: str, problems: list[str]) -> Any:
    """Convert a TOML or environment value to the field's type, or record a problem naming the key."""
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError
        if target is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if target is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if target is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if target == list[int]:  # license ids: a TOML list, or "1,2,5-8"
            if isinstance(value, str):
                return parse_id_list(value)
            if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return value
            raise ValueError
        if target == list[str]:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise ValueError
        if target == dict[str, str]:
            if isinstance(value, str):  # from the environment: "name=value,name=value"
                pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
                if all(len(p) == 2 for p in pairs):
                    return {k.strip(): v.strip() for k, v in pairs}
            elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                return dict(value)
            raise ValueError
        if target == list[WebhookConfig]:
            if isinstance(value, str):
                problems.append(f"{key}: webhooks are set in the config file ([[alerts.webhooks]]; url_env keeps "
                                "a URL out of it)")
                return None
            return _webhooks(value, key, problems)
    except (ValueError, TypeError):
        pass
    problems.append(f"{key}: expected {getattr(target, '__name__', str(target))}, got {value!r}")
    return None


def _webhooks(value: Any, key: str, problems: list[str]) -> list[WebhookConfig] | None:
    """``[[alerts.webhooks]]`` tables as WebhookConfig, or None after recording what is wrong with them."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{key}: expected a list of tables ([[alerts.webhooks]])")
        return None
    known = [f.name for f in dataclasses.fields(WebhookConfig)]
    hooks = []
    for i, table in enumerate(value):
        if isinstance(table.get("chat_id"), int) and not isinstance(table["chat_id"], bool):
            table = {**table, "chat_id": str(table["chat_id"])}  # Telegram chat ids are numbers
        bad = [k for k in table if k not in known or not isinstance(table[k], str)]
        for k in bad:
            problems.append(f"{key}[{i}].{k}: " + ("expected a string" if k in known else
                                                     f"unknown key (known: {', '.join(known)})"))
        if not bad:
            hooks.append(WebhookConfig(**table))
    return hooks if len(hooks) == len(value) else None


def _field_types(cls: type) -> dict[str, type]:
    hints = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list[str],
             "dict[str, str]": dict[str, str], "list[WebhookConfig]": list[WebhookConfig], "list[int]": list[int]}
    return {f.name: hints[f.type] if isinstance(f.type, str) else f.type for f in dataclasses.fields(cls)}


def load_config(path: str | os.PathLike | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (optional), apply environment overrides, validate; raise ConfigError listing problems."""
    env = os.environ if env is None else env
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {p} does not exist"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config file {p} is not valid TOML: {exc}"]) from None
        except UnicodeDecodeError:
            raise ConfigError([f"config file {p} is not UTF-8 text"]) from None

    cfg = Config(source=str(path) if path is not None else "")
    top_types = {"data_dir": str, "log_level": str, "data_min_free_mb": int}
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a table")
                continue
            section = getattr(cfg, key)
            types = _field_types(_SECTIONS[key])
            for sub, subval in value.items():
                if sub not in types:
                    problems.append(f"{key}.{sub}: unknown key (known: {', '.join(sorted(types))})")
                    continue
                coerced = _coerce(subval, types[sub], f"{key}.{sub}", problems)
                if coerced is not None:
                    setattr(section, sub, coerced)
        elif key in top_types:
            coerced = _coerce(value, top_types[key], key, problems)
            if coerced is not None:
                setattr(cfg, key, coerced)
        else:
            known = sorted(list(_TOP) + [f"[{s}]" for s in _SECTIONS])
            problems.append(f"{key}: unknown key (known: {', '.join(known)})")

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        if rest in top_types:
            coerced = _coerce(value, top_types[rest], name, problems)
            if coerced is not None:
                setattr(cfg, rest, coerced)
            continue
        for section_name, cls in _SECTIONS.items():
            if rest.startswith(section_name + "_"):
                sub = rest[len(section_name) + 1:]
                types = _field_types(cls)
                if sub in types:
                    coerced = _coerce(value, types[sub], name, problems)
                    if coerced is not None:
                        setattr(getattr(cfg, section_name), sub, coerced)
                    break
        else:
            problems.append(f"{name}: unknown setting (see `alignment-node validate-config --help`)")

    problems.extend(_validate(cfg))
    problems.extend(_validate_alerts(cfg.alerts, env))
    problems.extend(_validate_rewards(cfg.rewards))
    if problems:
        raise ConfigError(problems)
    return cfg


def parse_listen(text: str) -> tuple[str, int] | None:
    """``host:port`` (an IPv6 host in brackets) as (host, port), or None when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host, int(port)


def _validate(cfg: Config) -> list[str]:
    problems = []
    if cfg.log_level.lower() not in LOG_LEVELS:
        problems.append(f"log_level: {cfg.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    cfg.log_level = cfg.log_level.lower()
    if cfg.data_min_free_mb < 0:
        problems.append("data_min_free_mb: must be >= 0 MiB (0: no low-space warning)")
    if not cfg.chain.rpc_urls:
        problems.append("chain.rpc_urls: at least one endpoint is needed")
    for url in cfg.chain.rpc_urls:
        if not (url.startswith("http://") or url.startswith("https://")):
            problems.append(f"chain.rpc_urls: {url!r} is not an http(s) URL")
    if cfg.chain.request_timeout <= 0:
        problems.append("chain.request_timeout: must be > 0 seconds")
    if cfg.chain.poll_interval <= 0:
        problems.append("chain.poll_interval: must be > 0 seconds")
    if not (0 <= cfg.service.port <= 65535):
        problems.append(f"service.port: {cfg.service.port} is not a TCP port (0-65535)")
    if cfg.service.public_evidence and parse_listen(cfg.service.public_evidence) is None:
        problems.append(f"service.public_evidence: {cfg.service.public_evidence!r} is not host:port "
                        "(e.g. 0.0.0.0:9101; empty to turn it off)")
    problems.extend(_validate_signer(cfg.operator))
    if cfg.gas.max_fee_gwei <= 0 or cfg.gas.priority_fee_gwei < 0:
        problems.append("gas: max_fee_gwei must be > 0 and priority_fee_gwei >= 0")
    if cfg.gas.priority_fee_gwei > cfg.gas.max_fee_gwei:
        problems.append("gas.priority_fee_gwei: must not exceed gas.max_fee_gwei")
    if cfg.gas.bump_after_s <= 0 or cfg.gas.bump_after_blocks < 0:
        problems.append("gas: bump_after_s must be > 0 seconds and bump_after_blocks >= 0")
    if not 1.1 <= cfg.gas.bump_factor <= 10:
        problems.append(f"gas.bump_factor: {cfg.gas.bump_factor} is not between 1.1 (the +10% a node's pool needs to "
                        "accept a replacement) and 10")
    if cfg.audit.deadline_s <= 0 or cfg.audit.max_connections < 1 or cfg.audit.max_response_bytes < 1024:
        problems.append("audit: deadline_s > 0, max_connections >= 1 and max_response_bytes >= 1024 are needed")
    if cfg.audit.da_lookback_blocks < 1 or not 1 <= cfg.audit.da_window_blobs <= 4096:
        problems.append("audit: da_lookback_blocks >= 1 and 1 <= da_window_blobs <= 4096 are needed")
    if not 1 <= cfg.audit.da_min_share_pct <= 100:
        problems.append("audit.da_min_share_pct: between 1 and 100")
    for key in ("storage_rpc_urls", "cometbft_rpc_urls", "da_rpc_urls"):
        for url in getattr(cfg.audit, key):
            if not (url.startswith("http://") or url.startswith("https://")):
                problems.append(f"audit.{key}: {url!r} is not an http(s) URL")
    if not 1 <= cfg.audit.cometbft_window <= 10_000:
        problems.append("audit.cometbft_window: between 1 and 10000 heights")
    if cfg.audit.cometbft_halt_after_s < 1:
        problems.append("audit.cometbft_halt_after_s: at least 1 second")
    if not 10 <= cfg.audit.model_queries <= 10_000:
        problems.append("audit.model_queries: between 10 and 10000")
    if cfg.audit.storage_from_block < 0 or not 1 <= cfg.audit.storage_challenges <= 64:
        problems.append("audit: storage_from_block >= 0 and 1 <= storage_challenges <= 64 are needed")
    if cfg.operator.address and not _is_address(cfg.operator.address):
        problems.append(f"operator.address: {cfg.operator.address!r} is not a 0x-prefixed 20-byte hex address")
    return problems


def _validate_signer(op: OperatorConfig) -> list[str]:
    """The [operator] signing settings: a keystore needs one password source; a remote signer a URL and the
    address it signs for (whether it answers and holds that address is checked by validate-config)."""
    if op.signer not in SIGNER_KINDS:
        return [f"operator.signer: {op.signer!r} is not one of {', '.join(SIGNER_KINDS)}"]
    if op.signer == "keystore":
        if bool(op.password_file) == bool(op.password_env):
            return ["operator: set exactly one of password_file or password_env"]
        return []
    problems = []
    parts = urlsplit(op.remote_signer_url)
    if not op.remote_signer_url:
        problems.append('operator.remote_signer_url: signer = "remote" needs the signer\'s JSON-RPC URL')
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"operator.remote_signer_url: {redact_url(op.remote_signer_url)!r} is not an http(s) URL")
    elif parts.username or parts.password:
        problems.append("operator.remote_signer_url: credentials in the URL (user:password@) are not supported")
    if not op.address:
        problems.append('operator.address: signer = "remote" needs the address the signer signs for')
    if not 0 < op.remote_signer_timeout_s <= 120:
        problems.append("operator.remote_signer_timeout_s: between 0 and 120 seconds")
    return problems


def _validate_alerts(alerts: AlertsConfig, env: Mapping[str, str]) -> list[str]:
    """Check the [alerts] section and fill each webhook's ``url`` from its ``url_env``."""
    problems = []
    for i, hook in enumerate(alerts.webhooks):
        where = f"alerts.webhooks[{i}]"
        if hook.kind not in WEBHOOK_KINDS:
            problems.append(f"{where}.kind: {hook.kind!r} is not one of {', '.join(WEBHOOK_KINDS)}")
        if bool(hook.url) == bool(hook.url_env):
            problems.append(f"{where}: set exactly one of url or url_env")
        elif hook.url_env:
            hook.url = env.get(hook.url_env, "")
            if not hook.url:
                problems.append(f"{where}.url_env: environment variable {hook.url_env} is not set")
                continue
        parts = urlsplit(hook.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}.url: {redact_url(hook.url)!r} is not an http(s) URL")
        if hook.kind == "telegram" and not hook.chat_id:
            problems.append(f"{where}.chat_id: a telegram webhook needs the chat to post to")
        if hook.kind != "telegram" and hook.chat_id:
            problems.append(f"{where}.chat_id: only a telegram webhook takes a chat_id")
    for name in alerts.disabled:
        if name not in DEFAULT_SEVERITY:
            problems.append(f"alerts.disabled: {name!r} is not an alert (known: {', '.join(DEFAULT_SEVERITY)})")
    for name, severity in alerts.severity.items():
        if name not in DEFAULT_SEVERITY:
            problems.append(f"alerts.severity.{name}: not an alert (known: {', '.join(DEFAULT_SEVERITY)})")
        elif severity not in SEVERITIES:
            problems.append(f"alerts.severity.{name}: {severity!r} is not one of {', '.join(SEVERITIES)}")
    if alerts.resolve_after_s < 0 or alerts.flap_window_s <= 0 or alerts.flap_max_fires < 1:
        problems.append("alerts: resolve_after_s >= 0, flap_window_s > 0 and flap_max_fires >= 1 are needed")
    if not 0 < alerts.timeout_s <= 60 or alerts.max_attempts < 1:
        problems.append("alerts: 0 < timeout_s <= 60 seconds and max_attempts >= 1 are needed")
    return problems


def parse_id_list(text: str) -> list[int]:
    """'1,2,5-8' -> [1, 2, 5, 6, 7, 8]; ValueError when it is not such a list."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            ids.extend(range(int(lo), int(hi) + 1))
        elif part:
            ids.append(int(part))
    return ids


def _validate_rewards(r: RewardsConfig) -> list[str]:
    problems = []
    for key in ("commission_floor_wei", "claim_floor_wei"):
        if getattr(r, key) < 0:
            problems.append(f"rewards.{key}: must be >= 0 wei")
    if r.reward_wei_per_gas_wei < 0:
        problems.append("rewards.reward_wei_per_gas_wei: must be >= 0 (0: unknown, the floor is the only guard)")
    if r.claim_every_epochs < 1:
        problems.append("rewards.claim_every_epochs: at least 1 epoch")
    if any(i < 1 for i in r.claim_licenses):
        problems.append(f"rewards.claim_licenses: license ids start at 1, got {r.claim_licenses}")
    return problems


def _is_address(text: str) -> bool:
    if not (text.startswith("0x") and len(text) == 42):
        return False
    try:
        int(text[2:], 16)
    except ValueError:
        return False
    return True
