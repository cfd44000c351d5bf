"""The referee duty end to end on a real chain (anvil, the real contracts): a committee of three licenses reveals
OK on a MODEL target that serves a smaller model (their audits held no weights), with evidence bundles of that
model's completions; the operator's one reveal lists no vote (OK is implicit, issue 16), so no root is on chain.
A bonded referee drawn for the target runs ``alignment-node referee run --once``, finds the bundles by (epoch,
target) (its node store, then the index ``/evidence-of/<e>/<t>`` of a loopback evidence server after a dead one),
keeps those bound to the committee's OK, re-scores them with the registered weights, publishes its
REFEREE_VERDICT bundle and submits FAULT; ``settle`` after the referees' window settles FAULT, referee-decided,
without penalizing the committee."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("torch", reason="the referee runs the registered model: the 'models' extra")

from alignment_node import cli  # noqa: E402
from alignment_node import protocol as P  # noqa: E402
from alignment_node.chain.contracts import receipt_events  # noqa: E402
from alignment_node.chain.manifest import manifest_contracts  # noqa: E402
from alignment_node.chain.rpc import RpcClient  # noqa: E402
from alignment_node.chain.tx import LocalSigner  # noqa: E402
from alignment_node.devnet.deploy import deploy_async, write_manifest  # noqa: E402
from alignment_node.devnet.params import default_params  # noqa: E402
from alignment_node.models import baseline as B  # noqa: E402
from alignment_node.models import keeper, tokenvariants  # noqa: E402
from alignment_node.models import referee as R  # noqa: E402
from alignment_node.models.served_audit import draw_prompts  # noqa: E402
from alignment_node.node.store import Store  # noqa: E402
from alignment_node.devnet.targets import add_target_as_governance  # noqa: E402
from alignment_node.evidence_audit import bind  # noqa: E402

ETHER = 10**18
EPOCH, REVEAL, REFEREE_BLOCKS = 20, 5, 10
PER_BUNDLE = 8  # completions per committee member


class _Evidence(BaseHTTPRequestHandler):
    bodies: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/evidence-of/"):  # the index of (epoch, target): GET /evidence-of/<e>/<t>
            body = self.bodies.get(self.path.removeprefix("/evidence-of/"))
        else:
            body = self.bodies.get(self.path.rsplit("/", 1)[-1])
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"{}")

    def log_message(self, *_a):
        pass


def _bundle(epoch, target, lic, h, comps):
    return {"version": 2, "kind": "MODEL_SERVED", "epoch": epoch, "license": lic, "baseline": h,
            "target": {"id": target, "endpoint": "http://127.0.0.1:9", "identity": h},
            "seed": "0x" + "5a" * 32, "observations": [], "lt": {}, "completions": comps, "verdict": "OK"}


def test_a_referee_fault_settles_a_target_the_committee_passed(anvil, tmp_path, monkeypatch, capsys):
    baseline = keeper.cached_served_baseline(0)
    h = B.baseline_hash(baseline)
    B.save(baseline, tmp_path / "baselines")
    served = tokenvariants.make_variant("small", R.load_registered(baseline))
    deployer, operator, referee = (LocalSigner(anvil.private_keys[i]) for i in range(3))
    monkeypatch.setenv("KS_PW", "referee password")
    ks = tmp_path / "keystore"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(anvil.private_keys[2].hex() if isinstance(
        anvil.private_keys[2], bytes) else str(anvil.private_keys[2])))
    assert cli.main(["keys", "import", "--keystore", str(ks), "--password-env", "KS_PW"]) == 0
    capsys.readouterr()
    key_args = ["--keystore", str(ks), "--password-env", "KS_PW"]

    params = default_params()
    params["sale"]["allowlistStart"] = "+0"
    params["sale"]["publicStart"] = "+0"
    params["protocol"].update(epochLength=EPOCH, revealBlocks=REVEAL, committeeSize=5, minReveals=3)
    params["referees"].update(refereeBlocks=REFEREE_BLOCKS, minBond="10 ether")

    async def setup():
        manifest = await deploy_async(anvil.url, deployer, params)
        async with RpcClient(anvil.url) as rpc:
            c = manifest_contracts(rpc, manifest)
            await c["RewardToken"].transact("mint", referee.address, 50 * ETHER, signer=deployer)
            await c["OperatorRegistry"].transact("registerOperator", 1000, "op", signer=operator)
            cost = await c["NodeSale"].call("quote", 3)
            receipt = await c["NodeSale"].transact("buy", 3, cost, "", [], 0, signer=operator, value=cost)
            lics = [e["tokenId"] for e in receipt_events(receipt) if e.name == "Transfer"]
            await c["OperatorRegistry"].transact("delegate", lics, operator.address, signer=operator)
            # governance adds targets (the devnet sends it as the timelock)
            receipt = await add_target_as_governance(c["TargetRegistry"], P.KIND_MODEL, "http://127.0.0.1:9",
                                                      bytes.fromhex(h[2:]))
            (tid,) = [e["targetId"] for e in receipt_events(receipt) if e.name == "TargetAdded"]
        return manifest, sorted(lics), tid

    manifest, lics, tid = asyncio.run(setup())
    mf = write_manifest(manifest, tmp_path / "manifest.json")
    chain = ["--rpc", anvil.url, "--manifest", str(mf)]
    assert cli.main(["referee", "bind", str(tid), *chain, *key_args, "--json"]) == 0
    assert cli.main(["referee", "register", h, *chain, *key_args, "--json"]) == 0
    reg = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert reg["bond_wei"] == str(10 * ETHER) and reg["referee"].lower() == referee.address.lower()

    # the committee's audits: completions of the smaller model; the three members judged OK
    def start_of(e):
        return manifest["params"]["protocol"]["genesisBlock"] + e * EPOCH

    def goto(block):
        latest = anvil.block_number()
        if block - 1 > latest:
            anvil.mine(block - 1 - latest)

    e = (anvil.block_number() - manifest["params"]["protocol"]["genesisBlock"]) // EPOCH + 1

    async def heartbeat() -> bytes:
        async with RpcClient(anvil.url) as rpc:
            protocol = manifest_contracts(rpc, manifest)["AuditProtocol"]
            goto(start_of(e) + 1)
            await protocol.transact("heartbeat", signer=operator)
            return bytes(await protocol.call("seed", e))

    seed = asyncio.run(heartbeat())
    bodies = []
    for j, lic in enumerate(lics):  # each bound to its epoch, seed, target, OK and license, as the node binds them
        prompts = draw_prompts(baseline, bytes([j + 1] * 32), e, lic, PER_BUNDLE)
        bodies.append(P.canonical_json(bind(_bundle(e, tid, lic, h, R.served_completions(served, prompts, seed=j)),
                                            e, seed, tid, P.OK, [lic])))
    roots = ["0x" + P.keccak(b).hex() for b in bodies]
    store = Store(tmp_path / "data" / "node.sqlite")
    for j in (0, 1):  # the referee's own node audited too: two bundles are in its store, one is elsewhere
        store.put_evidence(roots[j], e, tid, P.OK, bodies[j])
    store.close()
    # the other node serves its bundle by root and lists it under (epoch, target): an OK has no root on chain
    _Evidence.bodies = {roots[2]: bodies[2], f"{e}/{tid}": json.dumps({"roots": [roots[2]]}).encode()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Evidence)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = "http://127.0.0.1:9"  # nothing listens there

    async def epoch_votes():
        async with RpcClient(anvil.url) as rpc:
            protocol = manifest_contracts(rpc, manifest)["AuditProtocol"]
            # every vote OK: the operator's commitment lists none, and its one reveal opens it for all licenses
            salt = bytes([7]) * 32
            await protocol.transact("commit", e, P.vote_commitment(e, operator.address, salt, []), signer=operator)
            goto(start_of(e + 1) + 1)
            await protocol.transact("reveal", e, operator.address, salt, [], signer=operator)
            assert all([await protocol.call("isRevealed", lic, e) for lic in lics])
            _s, end = await protocol.call("revealWindow", e)
            return end

    reveal_end = asyncio.run(epoch_votes())
    run_args = ["referee", "run", "--once", "--json", "--baseline", h, "--baselines", str(tmp_path / "baselines"),
                "--evidence-from", dead, "--evidence-from", f"http://127.0.0.1:{server.server_port}",
                "--store", str(tmp_path / "data" / "node.sqlite"), "--samples", "6", *chain, *key_args]
    # inside the reveal window: nothing to judge yet
    assert cli.main(run_args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["judged"] == []
    goto(reveal_end)
    try:
        assert cli.main(run_args) == 0
    finally:
        server.shutdown()
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["judged"]
    assert (row["epoch"], row["target"], row["verdict"]) == (e, tid, "FAULT"), row
    assert row["roots"] == roots and row["missing"] == {} and row["tx"]  # found in the store and by the index
    # its public evidence is in the node store, under the root it submitted
    reader = Store(tmp_path / "data" / "node.sqlite").reader()
    verdict = json.loads(reader.evidence(row["evidence_root"]))
    assert verdict["kind"] == "REFEREE_VERDICT" and verdict["verdict"] == "FAULT" and verdict["bundles"] == roots
    assert verdict["completions"] == 3 * PER_BUNDLE
    # a second pass does not judge twice
    assert cli.main(run_args[:-len(key_args)] + key_args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["judged"] == []

    async def settle():
        async with RpcClient(anvil.url) as rpc:
            c = manifest_contracts(rpc, manifest)
            protocol = c["AuditProtocol"]
            assert await protocol.call("settleOpensAt", e, tid) == reveal_end + REFEREE_BLOCKS
            goto(reveal_end + REFEREE_BLOCKS)
            receipt = await protocol.transact("settle", e, tid, signer=deployer)
            return {ev.name: ev for ev in receipt_events(receipt)}

    got = asyncio.run(settle())
    assert got["TargetSettled"]["outcome"] == P.FAULT and got["TargetSettled"]["ok"] == 3
    assert "0x" + bytes(got["RefereeDecided"]["evidenceRoot"]).hex() == row["evidence_root"]
    assert "Penalized" not in got  # the committee could not have seen it
