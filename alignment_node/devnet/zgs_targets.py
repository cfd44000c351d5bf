"""The devnet's ZGS_STORAGE targets: the 0G flow contract, the files uploaded to it (before the nodes start and
while they run), and one reference storage node process per target. Every function takes the Devnet (``net``)
whose targets it sets up; the flow, its files directory and uploads are the Devnet's."""

from __future__ import annotations

import secrets
import time

from ..chain.contracts import Contract
from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from .anvil import free_port
from .processes import spawn
from .targets import TargetProc, register_target

__all__ = ["STORAGE_FILE_SIZES", "STORAGE_HONEST", "STORAGE_MODE_ARGS", "parse_storage_spec", "setup_storage",
           "start_storage_node", "upload_tick"]

# Reference storage node arguments per mode; "slow" and "behind" are honest.
STORAGE_MODE_ARGS = {"slow": ["--delay", "0.1"], "behind": ["--lag", "40"], "lying-lag": ["--lag", "60"],
                     "drop": ["--fraction", "0.5"]}
STORAGE_HONEST = ("honest", "slow", "behind")
# Files uploaded before the nodes start: one byte, a few chunks, and files spanning several segments.
STORAGE_FILE_SIZES = (1, 3000, 300_000, 900_000, 1_700_000)


def parse_storage_spec(spec: str) -> tuple[str, tuple[int, int]]:
    """"mode" or "mode:shardId/numShard" -> (mode, (shardId, numShard))."""
    mode, _, shard = spec.partition(":")
    if not shard:
        return mode, (0, 1)
    i, _, n = shard.partition("/")
    return mode, (int(i), int(n))


async def setup_storage(net, keeper: LocalSigner) -> None:
    """The flow contract, a few files uploaded, one reference storage node process per storage target,
    each registered (ZGS_STORAGE, identity = chain id + flow address) by the keeper."""
    from ..zgs.flow import flow_identity
    from .storage import deploy_flow

    net.files_dir.mkdir(parents=True, exist_ok=True)
    async with RpcClient(net.anvil.url) as rpc:
        net.flow = await deploy_flow(rpc, keeper)
        for size in net.plan.storage_file_sizes or STORAGE_FILE_SIZES:
            await _upload(net, rpc, keeper, size)
        identity = flow_identity(await rpc.chain_id(), net.flow.address)
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        for spec in net.plan.storage:
            mode, shard = parse_storage_spec(spec)
            port = free_port()
            tid = await register_target(registry, 3, f"http://127.0.0.1:{port}", identity, keeper)
            net.targets.append(TargetProc(tid, mode, port, kind="ZGS_STORAGE", shard=shard, honest=STORAGE_HONEST))
        net.next_upload_block = await rpc.block_number() + net.plan.upload_every_blocks
    storage = [t for t in net.targets if t.kind == "ZGS_STORAGE"]
    for t in storage:
        start_storage_node(net, t)
    net.log(f"flow {net.flow.address}: {len(net.uploads)} files; {len(net.plan.storage)} storage targets: "
            + ", ".join(f"{t.id}:{t.mode}" + (f"[{t.shard[0]}/{t.shard[1]}]" if t.shard[1] > 1 else "")
                        for t in storage))


async def _upload(net, rpc: RpcClient, signer: LocalSigner, size: int) -> None:
    from .storage import random_file, upload

    data = random_file(secrets.SystemRandom(), size)
    flow = Contract(rpc, net.flow.address, net.flow.abi)  # bound to this client
    net.uploads.append(await upload(flow, signer, data, net.files_dir))


async def upload_tick(net, rpc: RpcClient) -> None:
    """Upload a new file every ``upload_every_blocks`` blocks (storage nodes must keep up with the flow)."""
    if net.flow is None:
        return
    head = await rpc.block_number()
    if head >= net.next_upload_block:
        await _upload(net, rpc, LocalSigner(net.anvil.private_keys[0]),
                      secrets.choice((5_000, 120_000, 400_000, 700_000)))
        net.next_upload_block = head + net.plan.upload_every_blocks


def start_storage_node(net, t: TargetProc) -> None:
    """The target's reference storage node, serving the devnet flow's files as its mode says."""
    t.process = spawn("alignment_node.devnet.zgsnode",
                      ["--rpc", net.anvil.url, "--flow", net.flow.address, "--files", str(net.files_dir),
                       "--port", str(t.port), "--mode", t.mode, "--shard-id", str(t.shard[0]),
                       "--num-shard", str(t.shard[1]), *STORAGE_MODE_ARGS.get(t.mode, [])],
                      net.workdir / f"target-{t.id}.err")
    t.fault_started = time.time() if t.fault else None
