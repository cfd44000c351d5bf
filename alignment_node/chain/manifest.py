"""Deployment manifests (which contracts live where, from which block) and chunked event-log scanning.

A manifest is the JSON the deploy command writes: ``{"chainId", "deployBlock", "contracts": {name: address}}``
(docs/deployment.md). Every reader of event logs goes through ``scan_logs``: nodes limit ``eth_getLogs`` to a
block range, so a scan from a deployment block to the head is asked in chunks of ``LOG_CHUNK_BLOCKS``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from .contracts import Contract
from .rpc import RpcClient

LOG_CHUNK_BLOCKS = 5000  # blocks per eth_getLogs request


def load_manifest(path: Path) -> dict:
    """Read and check a deployment manifest (ValueError with one clear line when it is unusable)."""
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"deployment manifest {path} does not exist") from None
    except ValueError:
        raise ValueError(f"deployment manifest {path} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"deployment manifest {path} is not a JSON object")
    missing = [k for k in ("chainId", "contracts", "deployBlock") if k not in manifest]
    if missing:
        raise ValueError(f"deployment manifest {path} lacks {', '.join(missing)}")
    return manifest


def manifest_contracts(rpc: RpcClient, manifest: dict) -> dict[str, Contract]:
    """Bind every contract of a deployment manifest (the timelock has no artifact of ours)."""
    return {name: Contract.from_artifact(rpc, name, address) for name, address in manifest["contracts"].items()
            if name != "Timelock"}


async def scan_logs(rpc: RpcClient, address: str | Sequence[str] | None, topics: Sequence[Any] | None,
                    from_block: int, to_block: int, chunk: int = LOG_CHUNK_BLOCKS) -> AsyncIterator[list[dict]]:
    """Yield the logs of blocks [from_block, to_block] matching ``address`` and ``topics`` (eth_getLogs filter
    rules: None is a wildcard, a list is any of), one list per chunk of ``chunk`` blocks, in block order."""
    if chunk < 1:
        raise ValueError("chunk must be at least one block")
    for lo in range(from_block, to_block + 1, chunk):
        hi = min(to_block, lo + chunk - 1)
        logs = await rpc.get_logs(address, topics, lo, hi)
        if not isinstance(logs, list):
            raise ValueError("eth_getLogs did not answer a list")
        yield logs


async def chain_events(contract: Contract, name: str, start: int) -> list:
    """The decoded ``name`` events of ``contract`` from block ``start`` to the head, read with scan_logs."""
    from .abi import EventRegistry

    registry = EventRegistry()
    registry.add_abi(contract.abi.raw)
    topic = contract.abi.event(name).topic
    head = await contract.rpc.block_number()
    found = []
    async for logs in scan_logs(contract.rpc, contract.address, [topic], start, head):
        found.extend(d for d in map(registry.decode, logs) if d is not None and d.name == name)
    return found


def topic_uint(value: int) -> str:
    """An indexed uint256 (or address-free integer) argument as a log topic."""
    return "0x" + value.to_bytes(32, "big").hex()


def topic_address(address: str) -> str:
    """An indexed address argument as a log topic."""
    return "0x" + bytes(12).hex() + address[2:].lower()


__all__ = ["LOG_CHUNK_BLOCKS", "load_manifest", "manifest_contracts", "scan_logs", "topic_uint", "topic_address"]
