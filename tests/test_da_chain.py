"""The DA chain reader and the DA audit worker on a real chain: anvil with the DASigners stand-in at the precompile
address and a DAEntrance, reference DA signers over real gRPC, the devnet disperser getting blobs verified, then
the reader's facts and the node's DA plug-in (which runs the audits in its worker process) judging the signers."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from alignment_node import protocol as P
from alignment_node.audits.base import EpochContext, Target
from alignment_node.audits.da import DaPolicy, DaWorkerAuditor, da_identity, evaluate
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.da import bls
from alignment_node.da.chain import DaChainReader
from alignment_node.devnet.da_targets import install_da_contracts, register_da_signer
from alignment_node.devnet.dasigner import DaSignerServer
from alignment_node.devnet.disperser import Disperser

MODES = ("honest", "honest", "never-signs", "corrupts-rows", "invalid-signatures")
ROWS = {"honest": 4, "never-signs": 2, "corrupts-rows": 2, "invalid-signatures": 1}
BLOBS = 3


@pytest.fixture(scope="module")
def da_world(tmp_path_factory):
    """(anvil url, entrance address, chain id, [(mode, address, server)], disperser results), blobs verified."""
    from alignment_node.devnet.anvil import Anvil

    anvil = Anvil().start()
    servers = []
    try:
        async def setup():
            deployer = LocalSigner(anvil.private_keys[0])
            async with RpcClient(anvil.url) as rpc:
                signers, entrance = await install_da_contracts(rpc, deployer, deployer)
                chain_id = await rpc.chain_id()
                world = []
                layout = []
                for i, mode in enumerate(MODES):
                    sk = secrets.randbelow(bls.R - 1) + 1
                    server = DaSignerServer(sk, mode, entrance.address)
                    server.start()
                    servers.append(server)
                    address = LocalSigner(secrets.token_bytes(32)).address.lower()
                    await register_da_signer(signers, deployer, address, server.target, sk, chain_id)
                    world.append((mode, address, server))
                    layout += [address] * ROWS[mode]
                await signers.transact("newEpoch", [layout], signer=deployer)
            disperser = Disperser(anvil.url, entrance.address, deployer)
            done = [await disperser.disperse_one() for _ in range(BLOBS)]
            await disperser.close()
            return entrance.address.lower(), chain_id, world, done

        entrance, chain_id, world, done = asyncio.run(setup())
        yield anvil.url, entrance, chain_id, world, done
    finally:
        for s in servers:
            s.stop(0)
        anvil.stop()


def test_the_disperser_got_every_blob_verified(da_world):
    _url, _entrance, _cid, _world, done = da_world
    assert all(d.verified for d in done), [d.skipped for d in done]


def test_the_reader_gives_registration_rows_and_the_bitmap_of_each_verified_blob(da_world):
    url, entrance, _cid, world, done = da_world

    async def go():
        async with RpcClient(url) as rpc:
            reader = DaChainReader(rpc, window_blobs=2)
            await reader.refresh([entrance])
            window = reader.window(entrance)
            facts = {mode + str(i): await reader.facts(addr, entrance) for i, (mode, addr, _s) in enumerate(world)}
            stranger = await reader.facts("0x" + "12" * 20, entrance)
            other = await reader.facts(world[0][1], "0x" + "34" * 20)  # an entrance with no verified blob
            return window, facts, stranger, other

    window, facts, stranger, other = asyncio.run(go())
    # the window keeps the newest blobs, oldest first, each with the commitment and bitmap that were submitted
    assert [b.data_root for b in window] == [d.data_root for d in done[-2:]]
    assert [b.commitment for b in window] == [d.commitment for d in done[-2:]]
    for mode_i, f in facts.items():
        mode, i = mode_i[:-1], int(mode_i[-1])
        assert f.registered and f.enrolled and f.da_epoch == 1
        assert f.socket == world[i][2].target
        assert len(f.blobs) == 2 and all(len(b["rows"]) == ROWS[mode] for b in f.blobs)
        # only the signers whose signature verified were counted
        assert all(b["counted"] == (mode in ("honest", "corrupts-rows")) for b in f.blobs), (mode, f.blobs)
    assert not stranger.registered and stranger.blobs == []
    assert other.registered and other.blobs == []


def _audit(url: str, entrance: str, chain_id: int, world, extra: list[Target] = ()) -> dict:
    targets = [Target(i + 1, P.KIND_DA_SIGNER, s.target, da_identity(chain_id, addr, entrance))
               for i, (_m, addr, s) in enumerate(world)] + list(extra)
    auditor = DaWorkerAuditor([url], 5.0, DaPolicy(), 1000)

    async def go():
        try:
            return await auditor.audit_epoch(7, targets, targets, 20.0,
                                             EpochContext(bytes(range(32)), {t.id: [40 + t.id] for t in targets}))
        finally:
            await auditor.worker.close()

    return asyncio.run(go())


def test_the_node_plug_in_judges_each_signer_in_its_worker_and_the_bundles_re_judge(da_world):
    url, entrance, chain_id, world, _done = da_world
    elsewhere = Target(99, P.KIND_DA_SIGNER, world[0][2].target, da_identity(chain_id + 1, world[0][1], entrance))
    results = _audit(url, entrance, chain_id, world, [elsewhere])
    assert 99 not in results  # a signer on a chain the worker cannot read gets no verdict
    expected = {"honest": (P.OK, set()), "never-signs": (P.FAULT, {"participation"}),
                "invalid-signatures": (P.FAULT, {"participation"}), "corrupts-rows": (P.FAULT, {"custody"})}
    for i, (mode, _addr, _s) in enumerate(world):
        res = results[i + 1]
        bundle = json.loads(P.canonical_json(res.bundle))
        failed = {c["name"] for c in bundle["checks"] if c["ok"] is False}
        assert (res.verdict, failed) == expected[mode], (mode, bundle["checks"])
        assert evaluate(bundle)[0] == res.verdict
        assert bundle["license"] == 41 + i and bundle["chain"]["da_epoch"] == 1


def test_a_dead_chain_endpoint_gives_no_verdict_and_no_crash(da_world):
    from alignment_node.devnet.anvil import free_port

    _url, entrance, chain_id, world, _done = da_world
    assert _audit(f"http://127.0.0.1:{free_port()}", entrance, chain_id, world[:1]) == {}
