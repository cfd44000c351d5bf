"""The committed contract artifacts (``artifacts/<Name>.json``: contractName, abi, bytecode,
deployedBytecode), so the Python side runs without Node or forge. Regenerate them with
``scripts/export_artifacts.py`` after changing the contracts."""

from __future__ import annotations

import json
from dataclasses import dataclass
import functools
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .abi import ContractAbi, DecodedError, DecodedEvent, ErrorRegistry, EventRegistry

__all__ = ["ARTIFACTS_DIR", "DEPLOYABLE", "Artifact", "load_artifact", "artifact_names", "load_all_abis",
           "default_error_registry", "default_event_registry", "decode_revert", "decode_log"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"

#: The contracts the deployer creates, in deployment order (contracts/test/utils/Deployed.sol), then the
#: devnet's stand-ins that are deployed on their own (DevnetFlow: devnet/storage.py).
DEPLOYABLE = (
    "RewardToken",
    "AlignmentLicense",
    "Timelock",
    "AlignmentGovernor",
    "OperatorRegistry",
    "TargetRegistry",
    "StakingVault",
    "RewardVault",
    "AuditProtocol",
    "RefereeCourt",
    "NodeSale",
    "DevnetFlow",
    "DevnetDASigners",
    "DevnetDAEntrance",
)


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: tuple
    bytecode: bytes
    deployed_bytecode: bytes

    @property
    def contract_abi(self):
        return ContractAbi(self.abi, self.name)


def _hex(value: Any, where: str) -> bytes:
    if isinstance(value, dict):  # a raw forge artifact: {"object": "0x..", ...}
        value = value.get("object", "")
    if not isinstance(value, str):
        raise ArtifactError(f"{where}: expected a hex string")
    body = value[2:] if value.startswith("0x") else value
    if "__$" in body:
        raise ArtifactError(f"{where}: unlinked library placeholder")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ArtifactError(f"{where}: not hex") from None


@lru_cache(maxsize=None)
def _load(path: Path) -> Artifact:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no artifact at {path} (run scripts/export_artifacts.py)") from None
    except ValueError as exc:
        raise ArtifactError(f"{path}: invalid JSON: {exc}") from None
    name = data.get("contractName") or path.stem
    abi = data.get("abi")
    if not isinstance(abi, list):
        raise ArtifactError(f"{path}: no abi list")
    return Artifact(
        name,
        tuple(abi),
        _hex(data.get("bytecode", ""), f"{path} bytecode"),
        _hex(data.get("deployedBytecode", ""), f"{path} deployedBytecode"),
    )


def load_artifact(name: str, directory: str | Path | None = None) -> Artifact:
    """The artifact of contract `name` (from `directory`, default the committed one)."""
    base = Path(directory) if directory is not None else ARTIFACTS_DIR
    return _load((base / f"{name}.json").resolve())


def artifact_names(directory: str | Path | None = None) -> list[str]:
    base = Path(directory) if directory is not None else ARTIFACTS_DIR
    return sorted(p.stem for p in base.glob("*.json"))


def load_all_abis(directory: str | Path | None = None) -> dict[str, tuple]:
    """ABI of every artifact, by contract name."""
    return {n: load_artifact(n, directory).abi for n in artifact_names(directory)}


@functools.cache
def default_error_registry() -> ErrorRegistry:
    """Every custom error of every committed artifact (built once)."""
    return _registry_of_all_artifacts(ErrorRegistry())


@functools.cache
def default_event_registry() -> EventRegistry:
    """Every event of every committed artifact (built once)."""
    return _registry_of_all_artifacts(EventRegistry())


def _registry_of_all_artifacts(reg):
    for abi in load_all_abis().values():
        reg.add_abi(abi)
    return reg


def decode_revert(data: bytes | str | None, registry: ErrorRegistry | None = None) -> DecodedError | None:
    """Decode revert data with every artifact's errors: ``str(result)`` is ``"ErrorName(arg=..)"``."""
    return (registry or default_error_registry()).decode(data)


def decode_log(log: Mapping[str, Any], registry: EventRegistry | None = None) -> DecodedEvent | None:
    return (registry or default_event_registry()).decode(log)
