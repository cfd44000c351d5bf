"""Devnet 0G Storage: deploy the devnet flow contract and upload files to it.

    flow = await deploy_flow(rpc, signer)
    sub = await upload(flow, signer, data, files_dir)     # a flow.Submission, decoded from the receipt

An upload writes the bytes to ``files_dir/<data root hex, no 0x>`` first (where the reference storage nodes,
``devnet/zgsnode.py``, find them), then submits the file's submission nodes (``merkle.submission_nodes``) to
``DevnetFlow.submit`` and returns the ``Submit`` event of the receipt, decoded as an auditor decodes it.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

from ..chain.contracts import Contract, deploy_contract
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..zgs import merkle
from ..zgs.flow import SUBMIT_TOPIC, Submission, decode_submit

__all__ = ["FLOW_ARTIFACT", "deploy_flow", "upload", "random_file", "file_path"]

FLOW_ARTIFACT = "DevnetFlow"


async def deploy_flow(rpc: RpcClient, signer: LocalSigner) -> Contract:
    """Deploy DevnetFlow from its committed artifact; returns the bound contract."""
    flow, _receipt = await deploy_contract(rpc, FLOW_ARTIFACT, [], signer)
    return flow


def file_path(files_dir: Path, root: bytes) -> Path:
    """Where a file of data root ``root`` is kept for the storage nodes."""
    return Path(files_dir) / root.hex()


async def upload(flow: Contract, signer: LocalSigner, data: bytes, files_dir: Path) -> Submission:
    """Store ``data`` under its root in ``files_dir``, then submit it to ``flow``; the decoded submission."""
    if not data:
        raise ValueError("a 0G file holds at least one byte")
    nodes = merkle.submission_nodes(io.BytesIO(data), len(data))
    root = merkle.fold_nodes([r for _, r in nodes])
    path = file_path(files_dir, root)
    Path(files_dir).mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.stat().st_size != len(data):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    receipt = await flow.transact("submit", (len(data), b"", [(r, h) for h, r in nodes]), signer=signer)
    logs = [e for e in receipt.get("logs", ())
            if e.get("address", "").lower() == flow.address.lower() and e.get("topics")
            and e["topics"][0].lower() == SUBMIT_TOPIC]
    if len(logs) != 1:
        raise ValueError(f"submit: {len(logs)} Submit logs in the receipt, expected 1")
    sub = decode_submit(logs[0])
    if sub.root != root or sub.length != len(data):
        raise ValueError(f"submit: the event records root 0x{sub.root.hex()} of {sub.length} bytes, "
                         f"uploaded 0x{root.hex()} of {len(data)}")
    return sub


def random_file(rng: random.Random, size: int) -> bytes:
    """``size`` pseudo-random bytes from ``rng`` (a seeded Random gives the same file every time)."""
    if size < 1:
        raise ValueError(f"a file size is at least 1 byte, got {size}")
    return rng.randbytes(size)
