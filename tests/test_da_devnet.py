"""The devnet's DA side against a real anvil: the DASigners / DAEntrance stand-ins (devnet/da_targets.py), the
disperser (devnet/disperser.py) and reference DA signers (devnet/dasigner.py), in process over real gRPC.

What the disperser submits is read back from the chain as an auditor reads it: the ErasureCommitmentVerified
events, the commitment DAEntrance recorded, and the quorum bitmap decoded from the input of the transaction
that emitted the event.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest

from alignment_node.chain.abi import decode_params
from alignment_node.chain.contracts import Contract
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.da import bls
from alignment_node.devnet.anvil import free_port
from alignment_node.devnet.da_targets import (DA_ROWS, DA_SIGNING, install_da_contracts, quorum_layout,
                                              register_da_signer)
from alignment_node.devnet.dasigner import MODES, DaSignerServer
from alignment_node.da.chain import DA_SIGNERS_ADDRESS
from alignment_node.devnet.disperser import Disperser
from alignment_node.devnet.network import Devnet, Plan

DA_FAULTS = ("honest",) * 3 + ("offline", "not-enrolled", "wrong-socket", "never-signs", "drops-rows",
                               "corrupts-rows", "prunes-early", "invalid-signatures", "garbage")


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------ the quorum layout

def test_quorum_layout_gives_the_signing_signers_two_thirds_and_leaves_not_enrolled_out():
    layout = quorum_layout(DA_FAULTS)
    signing = sum(1 for i in layout if DA_FAULTS[i] in DA_SIGNING)
    assert bls.meets_threshold(len(layout), signing)
    for i, mode in enumerate(DA_FAULTS):
        assert layout.count(i) == DA_ROWS.get(mode, 2), mode
    assert DA_FAULTS.index("not-enrolled") not in layout
    assert len(set(layout[:11])) == 11  # interleaved: every enrolled signer once before anyone twice
    # One honest signer among many faulty ones holds enough rows for 2/3.
    many = ("honest",) + ("garbage",) * 8
    layout = quorum_layout(many)
    assert bls.meets_threshold(len(layout), layout.count(0)) and layout.count(0) > DA_ROWS["honest"]
    with pytest.raises(ValueError, match="2/3"):
        quorum_layout(("drops-rows", "garbage", "offline"))
    with pytest.raises(ValueError, match="unknown DA signer mode"):
        quorum_layout(("honest", "sleepy"))
    assert set(MODES) >= set(DA_FAULTS)


# ------------------------------------------------------------------------------------------ a DA chain

class DaChain:
    """The stand-ins on a fresh anvil, in-process signers of ``modes`` registered (``wrong-socket`` at a dead
    port), and DA epoch 1 with one quorum of ``layout`` (default: quorum_layout(modes))."""

    def __init__(self, anvil, modes, layout=None):
        self.anvil, self.modes = anvil, tuple(modes)
        self.layout = layout if layout is not None else quorum_layout(self.modes)
        self.deployer = LocalSigner(anvil.private_keys[0])
        self.admin = LocalSigner(anvil.private_keys[1])
        self.servers: list[DaSignerServer] = []
        self.addresses = ["0x" + f"{0xDA00 + i:040x}" for i in range(len(self.modes))]

    async def setup(self, rpc: RpcClient) -> None:
        self.signers, self.entrance = await install_da_contracts(rpc, self.admin, self.deployer)
        chain_id = await rpc.chain_id()
        for i, mode in enumerate(self.modes):
            sk = 0x5EED + 7919 * i
            server = DaSignerServer(sk, mode, self.entrance.address)
            port = server.start()
            self.servers.append(server)
            socket = f"127.0.0.1:{free_port() if mode == 'wrong-socket' else port}"
            await register_da_signer(self.signers, self.admin, self.addresses[i], socket, sk, chain_id)
        await self.signers.transact("newEpoch", [[self.addresses[i] for i in self.layout]], signer=self.admin)

    def disperser(self, **kw) -> Disperser:
        return Disperser(self.anvil.url, self.entrance.address, self.admin, **kw)

    def of(self, *modes: str) -> set[str]:
        return {a for a, m in zip(self.addresses, self.modes) if m in modes}

    def stop(self) -> None:
        for s in self.servers:
            s.stop(0)


@pytest.fixture
def da(anvil):
    chains = []

    def make(modes, layout=None):
        chains.append(DaChain(anvil, modes, layout))
        return chains[-1]
    yield make
    for c in chains:
        c.stop()


async def submitted(rpc: RpcClient, chain: DaChain, tx_hash: str) -> tuple:
    """The CommitRootSubmission of a submitVerifiedCommitRoots transaction, decoded from its input, after checking
    it is a plain call from the admin to DAEntrance."""
    tx = await rpc.request("eth_getTransactionByHash", [tx_hash])
    assert tx["from"].lower() == chain.admin.address.lower()
    assert tx["to"].lower() == chain.entrance.address.lower()
    f = chain.entrance.abi.function("submitVerifiedCommitRoots")
    data = bytes.fromhex(tx["input"][2:])
    assert data[:4] == f.selector
    (subs,) = decode_params(f.inputs, data[4:], "input")
    assert len(subs) == 1
    return subs[0]


# ------------------------------------------------------------------------------------------ dispersal

def test_blobs_are_verified_on_chain_with_only_the_valid_signers_in_the_bitmap(da):
    chain = da(("honest",) * 3 + ("drops-rows", "never-signs", "invalid-signatures", "garbage", "offline",
                                  "wrong-socket", "not-enrolled"))

    async def go():
        async with RpcClient(chain.anvil.url) as rpc:
            await chain.setup(rpc)
            disperser = chain.disperser()
            try:
                out = [await disperser.disperse_one() for _ in range(4)]  # every garbage kind in turn
            finally:
                await disperser.close()
            events = await chain.entrance.events("ErasureCommitmentVerified")
            recorded = [await chain.entrance.call("verifiedErasureCommitment", d.data_root, d.epoch, d.quorum_id)
                        for d in out]
            inputs = [await submitted(rpc, chain, d.tx_hash) for d in out]
            aggs = [await chain.signers.call("getAggPkG1", d.epoch, d.quorum_id, d.bitmap) for d in out]
            return out, events, recorded, inputs, aggs

    out, events, recorded, inputs, aggs = run(go())
    signing, silent = chain.of("honest", "drops-rows"), chain.of("never-signs", "invalid-signatures", "garbage",
                                                                 "offline", "wrong-socket")
    quorum = [chain.addresses[i].lower() for i in chain.layout]
    rows_of = {a: {i for i, s in enumerate(quorum) if s == a} for a in quorum}
    assert [(e["dataRoot"], e["epoch"], e["quorumId"]) for e in events] == [(d.data_root, 1, 0) for d in out]
    for d, commitment, sub, (_, total, hit) in zip(out, recorded, inputs, aggs):
        assert d.verified and d.skipped is None, d
        assert set(d.signed) == signing and set(d.left_out) == silent, d.left_out
        assert tuple(commitment) == d.commitment
        root, epoch, quorum_id, erasure, bitmap, _agg_pk_g2, _sig = sub
        assert (root, epoch, quorum_id, tuple(erasure)) == (d.data_root, d.epoch, d.quorum_id, d.commitment)
        assert bitmap == d.bitmap
        counted = {i for i in range(len(quorum)) if bitmap[i // 8] >> (i % 8) & 1}
        assert counted == set().union(*(rows_of[a] for a in signing))
        assert (total, hit) == (len(quorum), len(counted)) == (d.total, d.hit)
    reasons = {mode: out[0].left_out[next(iter(chain.of(mode)))] for mode in
               ("never-signs", "invalid-signatures", "offline", "wrong-socket")}
    assert reasons["never-signs"].startswith("INTERNAL")
    assert "does not verify" in reasons["invalid-signatures"]
    assert reasons["offline"].startswith("UNAVAILABLE") and reasons["wrong-socket"].startswith("UNAVAILABLE")
    garbage = next(iter(chain.of("garbage")))
    assert len({d.left_out[garbage] for d in out}) == 4  # not protobuf, unknown field, wrong count, bad point
    assert chain.servers[chain.modes.index("garbage")]._garbage_calls["sign"] == 4


def test_a_dispersal_below_two_thirds_is_skipped_without_a_transaction(da):
    chain = da(("honest", "never-signs"), layout=[0, 1, 1])  # 1 of 3 rows can be signed

    async def go():
        async with RpcClient(chain.anvil.url) as rpc:
            await chain.setup(rpc)
            sent_before = await rpc.get_transaction_count(chain.admin.address)
            disperser = chain.disperser()
            try:
                d = await disperser.disperse_one()
            finally:
                await disperser.close()
            sent = await rpc.get_transaction_count(chain.admin.address) - sent_before
            return d, sent, await chain.entrance.events("ErasureCommitmentVerified")

    d, sent, events = run(go())
    assert not d.verified and d.tx_hash is None and d.skipped == "1 of 3 rows signed, below 2/3"
    assert (d.hit, d.total) == (1, 3)
    assert sent == 1  # the upload only: no submission was tried, so none reverted
    assert events == []


def test_a_new_da_epoch_every_k_blobs_keeps_the_quorum_and_its_enrolment(da):
    chain = da(("honest", "honest", "not-enrolled"))

    async def go():
        async with RpcClient(chain.anvil.url) as rpc:
            await chain.setup(rpc)
            disperser = chain.disperser(epoch_every=2)
            try:
                out = [await disperser.disperse_one() for _ in range(5)]
            finally:
                await disperser.close()
            s = chain.signers
            return (out, await s.call("epochNumber"), await s.call("getQuorum", 1, 0), await s.call("getQuorum", 3, 0),
                    [await s.call("registeredEpoch", a, 3) for a in chain.addresses])

    out, epoch, first, last, enrolled = run(go())
    assert [d.epoch for d in out] == [1, 1, 2, 2, 3] and epoch == 3
    assert all(d.verified for d in out)
    assert first == last
    assert enrolled == [True, True, False]


def test_the_running_disperser_survives_garbage_a_signer_going_down_and_reverts(da):
    chain = da(("honest",) * 3 + ("garbage",))

    async def wait(disperser, key, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while disperser.counts[key] < n:
            assert time.monotonic() < deadline, disperser.counts
            await asyncio.sleep(0.05)

    async def go():
        async with RpcClient(chain.anvil.url) as rpc:
            await chain.setup(rpc)
            disperser = chain.disperser()
            disperser.start(0.05)
            try:
                await wait(disperser, "verified", 3)
                chain.servers[0].stop(0)  # 10 of 17 rows left: below 2/3
                await wait(disperser, "skipped", 2)
            finally:
                await disperser.close()
            # An account that is not the DASigners admin: its newEpoch reverts, and the loop carries on.
            outsider = Disperser(chain.anvil.url, chain.entrance.address, LocalSigner(chain.anvil.private_keys[2]),
                                 epoch_every=1)
            outsider.start(0.05)
            try:
                await wait(outsider, "failed", 3)
            finally:
                await outsider.close()
            return disperser, outsider

    disperser, outsider = run(go())
    assert disperser.counts["failed"] == 0
    garbage = next(iter(chain.of("garbage")))
    assert all(garbage in d.left_out for d in disperser.recent)
    # Its first blob needed no new epoch (and stayed below 2/3, one honest signer being down); then only reverts.
    assert outsider.counts["skipped"] == 1 and outsider.counts["verified"] == 0 and outsider.counts["epochs"] == 0


# ------------------------------------------------------------------------------------------ the devnet

def test_setup_da_registers_the_targets_and_devnet_stop_leaves_nothing_running(tmp_path):
    from alignment_node.audits.da import parse_da_identity

    modes = ("honest", "honest", "wrong-socket", "not-enrolled", "offline", "prunes-early")
    net = Devnet(Plan(commissions_bps=(500,), owners=1, licenses_per_owner=1, block_time=None, da_signers=modes),
                 tmp_path, log=lambda _msg: None)

    async def go():
        await net.setup()
        async with RpcClient(net.anvil.url) as rpc:
            registry = manifest_contracts(rpc, net.manifest)["TargetRegistry"]
            targets = [await registry.call("getTarget", t.id) for t in net.targets]
            s = Contract.from_artifact(rpc, "DevnetDASigners", DA_SIGNERS_ADDRESS)
            epoch = await s.call("epochNumber")
            signers = await s.call("getSigner", [parse_da_identity(tt[5])[1] for tt in targets])
            enrolled = [await s.call("registeredEpoch", d[0], epoch) for d in signers]
        return targets, signers, enrolled

    try:
        targets, signers, enrolled = run(go())
        assert [t.mode for t in net.targets] == list(modes) and {t.kind for t in net.targets} == {"DA_SIGNER"}
        assert [t.fault for t in net.targets] == [None, None, *modes[2:]]
        assert net.disperser.counts["verified"] >= 3
        for t, registered, detail, on in zip(net.targets, targets, signers, enrolled):
            kind, _, _, _, endpoint, identity = registered
            chain_id, _signer, entrance = parse_da_identity(identity)
            assert (kind, endpoint) == (4, f"127.0.0.1:{t.port}")
            assert entrance == net.da_entrance.lower() and chain_id == net.manifest["chainId"]
            assert (detail[1] == endpoint) == (t.mode != "wrong-socket"), t.mode
            assert on == (t.mode != "not-enrolled"), t.mode
        keys = sorted((tmp_path / "da-signers").iterdir())
        assert len(keys) == len(modes) and all(stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keys)
        pids = [t.server.process.pid for t in net.targets]
    finally:
        net.stop()
    assert all(t.server.process is None for t in net.targets)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
