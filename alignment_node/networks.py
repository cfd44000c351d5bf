"""Network presets: which chain a network is on, its RPC endpoints and its deployment, read from networks.toml.

The package's ``networks.toml`` holds the presets (devnet, 0g-mainnet, 0g-galileo-testnet; its header comment
documents every field); an operator's own file (``--networks FILE``) adds more. ``preset_table`` turns any
deployment manifest into a preset, ``append_preset`` adds it to a file. A preset whose contracts are all filled
in is a whole manifest (``Network.manifest``); one whose addresses are left to the deployer needs the manifest
file beside it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .chain.keccak import is_address

PRESETS_PATH = Path(__file__).with_name("networks.toml")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_FIELDS = {"description": str, "chain_id": int, "rpc_urls": list, "manifest": str, "deploy_block": int,
           "contracts": dict}


class NetworkError(ValueError):
    """A preset or networks file that cannot be used; the message names the file, the network and the field."""


@dataclass
class Network:
    name: str
    chain_id: int
    description: str = ""
    rpc_urls: list[str] = field(default_factory=list)  # empty: left to the operator (--rpc)
    manifest_hint: str = ""  # where the manifest comes from while the contracts are not filled in
    deploy_block: int = 0
    contracts: dict[str, str] = field(default_factory=dict)  # name -> address, "" left to the deployer
    source: str = ""  # the file the preset was read from

    @property
    def complete(self) -> bool:
        """Whether the preset names every contract's address (then it is a whole manifest)."""
        return bool(self.contracts) and all(self.contracts.values())

    def manifest(self) -> dict:
        """The deployment manifest this preset stands for (only when ``complete``)."""
        if not self.complete:
            raise NetworkError(f"network {self.name}: its contract addresses are left to the deployer")
        return {"chainId": self.chain_id, "deployBlock": self.deploy_block, "contracts": dict(self.contracts),
                "network": self.name}


def _network(name: str, table: object, source: str) -> Network:
    where = f"{source}: network {name!r}"
    if not NAME_PATTERN.fullmatch(name):
        raise NetworkError(f"{where}: a name is lowercase letters, digits and '-'")
    if not isinstance(table, dict):
        raise NetworkError(f"{where} must be a table")
    for key, value in table.items():
        if key not in _FIELDS:
            raise NetworkError(f"{where}: unknown field {key!r} (known: {', '.join(_FIELDS)})")
        if not isinstance(value, _FIELDS[key]) or isinstance(value, bool):
            raise NetworkError(f"{where}: {key} must be a {_FIELDS[key].__name__}")
    if "chain_id" not in table or table["chain_id"] < 1:
        raise NetworkError(f"{where}: chain_id (a positive integer) is needed")
    urls = table.get("rpc_urls", [])
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise NetworkError(f"{where}: rpc_urls holds {url!r}, not an http(s) URL")
    contracts = table.get("contracts", {})
    for contract, address in contracts.items():
        if not isinstance(address, str) or (address and not is_address(address)):
            raise NetworkError(f"{where}: contracts.{contract} is {address!r}, not an address (or \"\")")
    if table.get("deploy_block", 0) < 0:
        raise NetworkError(f"{where}: deploy_block must be >= 0")
    return Network(name=name, chain_id=table["chain_id"], description=table.get("description", ""),
                   rpc_urls=list(urls), manifest_hint=table.get("manifest", ""),
                   deploy_block=table.get("deploy_block", 0), contracts=dict(contracts), source=source)


def read_networks(path: str | Path) -> dict[str, Network]:
    """The presets of one networks file."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NetworkError(f"networks file {p} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NetworkError(f"networks file {p} is not valid TOML: {exc}") from None
    return {name: _network(name, table, str(p)) for name, table in raw.items()}


def load_networks(extra: str | Path | None = None) -> dict[str, Network]:
    """The package's presets, plus those of ``extra`` (an operator's networks file), which may not redefine one."""
    networks = read_networks(PRESETS_PATH)
    if extra is not None:
        for name, net in read_networks(extra).items():
            if name in networks:
                raise NetworkError(f"{extra}: network {name!r} is already defined in {networks[name].source}")
            networks[name] = net
    return networks


def get_network(name: str, extra: str | Path | None = None) -> Network:
    """The preset called ``name``; NetworkError listing the known ones otherwise."""
    networks = load_networks(extra)
    if name not in networks:
        raise NetworkError(f"unknown network {name!r} (known: {', '.join(networks)}; "
                           "add one from a manifest with `alignment-node networks add`)")
    return networks[name]


def toml_value(value: object) -> str:
    """A TOML literal of a bool, int, float, str, list or table of those (JSON string escapes are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML rendering for {value!r}")


def preset_table(name: str, manifest: dict, rpc_urls: list[str], description: str = "") -> str:
    """The networks.toml table of a preset made from a deployment manifest (checked like any preset)."""
    try:
        contracts = {str(k): str(v) for k, v in manifest["contracts"].items()}
        net = Network(name=name, chain_id=int(manifest["chainId"]), description=description or name,
                      rpc_urls=list(rpc_urls), deploy_block=int(manifest["deployBlock"]), contracts=contracts)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise NetworkError("the manifest lacks chainId, deployBlock or contracts") from None
    key = toml_value(name)
    lines = [f"[{key}]", f"description = {toml_value(net.description)}", f"chain_id = {net.chain_id}",
             f"rpc_urls = {toml_value(net.rpc_urls)}", f"deploy_block = {net.deploy_block}", "",
             f"[{key}.contracts]"]
    lines += [f"{toml_value(c)} = {toml_value(a)}" for c, a in sorted(net.contracts.items())]
    text = "\n".join(lines) + "\n"
    _network(name, tomllib.loads(text)[name], "the new preset")  # the same checks as a preset read from a file
    return text


def append_preset(path: str | Path, name: str, manifest: dict, rpc_urls: list[str], description: str = "") -> str:
    """Append the preset of ``manifest`` to the networks file ``path`` (created if missing); returns its table.

    Refuses a name that is already a preset (of the package or of the file); never rewrites what the file holds.
    """
    p = Path(path)
    table = preset_table(name, manifest, rpc_urls, description)
    existing = load_networks(p if p.exists() and p.resolve() != PRESETS_PATH.resolve() else None)
    if name in existing:
        raise NetworkError(f"network {name!r} is already defined in {existing[name].source}")
    before = p.read_text(encoding="utf-8") if p.exists() else ""
    with p.open("a", encoding="utf-8") as fh:
        fh.write(("\n" if before and not before.endswith("\n\n") else "") + table)
    try:
        read_networks(p)
    except NetworkError:
        p.write_text(before, encoding="utf-8")  # leave the file as it was
        raise
    return table


__all__ = ["PRESETS_PATH", "Network", "NetworkError", "append_preset", "get_network", "load_networks",
           "preset_table", "read_networks", "toml_value"]
