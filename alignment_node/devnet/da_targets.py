"""The devnet's DA_SIGNER targets: the DASigners precompile stand-in at its address, a DAEntrance, one reference
DA signer process per target (registered on DASigners with its socket and keys, and as a target), the first DA
epoch's quorum, and the disperser that keeps blobs arriving. ``setup_da`` takes the Devnet (``net``).

The DASigners admin is a fresh account that the disperser sends from (it opens the DA epochs), so the
disperser never shares a nonce with the keeper's transactions. Every signer has a fresh random BLS key (in a
0600 file of the work directory, read by its process) and a fresh random address; the admin registers it with
socket ``127.0.0.1:<its port>``, except ``wrong-socket``, registered at a port nothing listens on (it is still
audited at its real port). One quorum holds the signers' rows (``quorum_layout``): ``not-enrolled`` has none,
so it is in no DA epoch.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

from ..chain.artifacts import load_artifact
from ..chain.contracts import Contract, deploy_contract
from ..chain.manifest import manifest_contracts
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..da import bls
from ..da.chain import DA_SIGNERS_ADDRESS
from .anvil import free_port
from .disperser import Disperser
from .targets import TargetProc, register_target

__all__ = ["DA_HONEST", "DA_ROWS", "DA_SIGNING", "DA_PRUNE_SECONDS", "DA_BLOBS_BEFORE_NODES", "DA_BLOB_INTERVAL_S",
           "install_da_contracts", "register_da_signer", "quorum_layout", "write_secret_key", "setup_da"]

DA_HONEST = ("honest",)
# Modes whose signatures the disperser counts (when reached at the registered socket).
DA_SIGNING = ("honest", "drops-rows", "corrupts-rows", "prunes-early")
# Rows of the quorum per mode (honest: at least this many, more when the faulty ones would reach 1/3).
DA_ROWS = {"honest": 5, "drops-rows": 3, "corrupts-rows": 3, "prunes-early": 3, "not-enrolled": 0}
DA_OTHER_ROWS = 2  # offline, never-signs, invalid-signatures, garbage, wrong-socket
DA_PRUNE_SECONDS = 2.0
DA_BLOBS_BEFORE_NODES = 4
DA_BLOB_INTERVAL_S = 2.0
ETHER = 10**18


def quorum_layout(modes: tuple[str, ...] | list[str]) -> list[int]:
    """The first DA epoch's quorum for signers of ``modes``: one signer index per row, the signers' rows
    interleaved. The signers that sign hold at least 2/3 of the rows; ValueError if no honest signer can
    make up for the others."""
    from .dasigner import MODES

    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown DA signer mode(s) {', '.join(unknown)}: one of {', '.join(MODES)}")
    counts = [DA_ROWS.get(m, DA_OTHER_ROWS) for m in modes]
    honest = [i for i, m in enumerate(modes) if m in DA_HONEST]
    signing = sum(c for m, c in zip(modes, counts) if m in DA_SIGNING and m not in DA_HONEST)
    other = sum(c for m, c in zip(modes, counts) if m not in DA_SIGNING)
    need = 2 * other - signing  # rows the honest signers must hold together: 2 * total <= 3 * signed
    if honest:
        per = max(DA_ROWS["honest"], -(-need // len(honest)))
        for i in honest:
            counts[i] = per
    elif need > 0:
        raise ValueError("the DA signers that sign would hold less than 2/3 of the quorum's rows: add an honest one")
    if not sum(counts):
        raise ValueError("no DA signer to put in a quorum")
    layout: list[int] = []
    left = list(counts)
    while any(left):
        for i, n in enumerate(left):
            if n:
                layout.append(i)
                left[i] -= 1
    return layout


def write_secret_key(path: Path, sk: int) -> Path:
    """Write a BLS secret key (0x hex) to ``path``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(hex(sk) + "\n")
    return path


async def install_da_contracts(rpc: RpcClient, admin: LocalSigner, deployer: LocalSigner) -> tuple[Contract, Contract]:
    """DevnetDASigners' runtime code at the precompile address with ``admin`` as its admin, and a DevnetDAEntrance
    deployed by ``deployer``: (DASigners, DAEntrance), bound to ``rpc``."""
    art = load_artifact("DevnetDASigners")
    await rpc.request("anvil_setCode", [DA_SIGNERS_ADDRESS, "0x" + art.deployed_bytecode.hex()])
    signers = Contract(rpc, DA_SIGNERS_ADDRESS, art.contract_abi, "DASigners")
    await signers.transact("devnetInit", admin.address, signer=admin)
    entrance, _ = await deploy_contract(rpc, "DevnetDAEntrance", [], deployer)
    return signers, entrance


async def register_da_signer(signers: Contract, admin: LocalSigner, address: str, socket: str, sk: int,
                             chain_id: int) -> None:
    """Register signer ``address`` with key ``sk`` and ``socket`` (sent by the admin; the registration signature
    is 0G's, over the pubkey registration hash, though the devnet stand-in does not check it)."""
    pk_g1, pk_g2 = bls.keypair(sk)
    sig = bls.sign(sk, bls.pubkey_registration_hash(address, chain_id))
    await signers.transact("registerSigner", (address, socket, pk_g1, bls.g2_to_words(pk_g2, "chain")), sig,
                           signer=admin)


async def setup_da(net, keeper: LocalSigner) -> None:
    """The DA contracts, one reference DA signer process per mode of ``net.plan.da_signers`` registered on
    DASigners and as a DA_SIGNER target (identity: chain id, signer address, DAEntrance) by the keeper, the
    first DA epoch, a few blobs dispersed, and the disperser running (``net.disperser``)."""
    from ..audits.da import da_identity
    from .dasigner import DaSignerProcess

    modes = tuple(net.plan.da_signers)
    layout = quorum_layout(modes)
    admin = LocalSigner(secrets.token_bytes(32))
    keys_dir = net.workdir / "da-signers"
    async with RpcClient(net.anvil.url) as rpc:
        await rpc.request("anvil_setBalance", [admin.address, hex(1000 * ETHER)])
        signers, entrance = await install_da_contracts(rpc, admin, keeper)
        net.da_entrance = entrance.address
        secret_keys = [secrets.randbelow(bls.R - 1) + 1 for _ in modes]
        procs = [DaSignerProcess(write_secret_key(keys_dir / f"signer-{i}.key", sk), mode, entrance.address,
                                 prune_seconds=DA_PRUNE_SECONDS if mode == "prunes-early" else None)
                 for i, (mode, sk) in enumerate(zip(modes, secret_keys))]
        try:
            await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        except Exception:
            for p in procs:
                p.stop()
            raise
        started = time.time()
        addresses = [LocalSigner(secrets.token_bytes(32)).address for _ in modes]
        chain_id = await rpc.chain_id()
        registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
        try:
            for mode, sk, address, proc in zip(modes, secret_keys, addresses, procs):
                endpoint = f"127.0.0.1:{proc.port}"
                socket = f"127.0.0.1:{free_port()}" if mode == "wrong-socket" else endpoint
                await register_da_signer(signers, admin, address, socket, sk, chain_id)
                identity = da_identity(chain_id, address, entrance.address)
                tid = await register_target(registry, 4, endpoint, identity, keeper)
                t = TargetProc(tid, mode, proc.port, kind="DA_SIGNER", server=proc, honest=DA_HONEST)
                t.fault_started = started if t.fault else None
                net.targets.append(t)
        finally:  # Devnet.stop() stops its targets' signers; these never became one
            registered = {id(t.server) for t in net.targets}
            for p in procs:
                if id(p) not in registered:
                    p.stop()
        await signers.transact("newEpoch", [[addresses[i] for i in layout]], signer=admin)
    net.disperser = Disperser(net.anvil.url, entrance.address, admin)
    for _ in range(DA_BLOBS_BEFORE_NODES):
        try:
            await net.disperser.disperse_one()
        except Exception as exc:
            net.log(f"DA: a blob could not be dispersed: {type(exc).__name__}: {exc}")
    net.disperser.start(DA_BLOB_INTERVAL_S)
    da = [t for t in net.targets if t.kind == "DA_SIGNER"]
    net.log(f"DAEntrance {entrance.address}, DASigners at {DA_SIGNERS_ADDRESS}: {len(layout)} rows, "
            f"{net.disperser.counts['verified']} of {DA_BLOBS_BEFORE_NODES} blobs verified; {len(da)} DA targets: "
            + ", ".join(f"{t.id}:{t.mode}" for t in da))
