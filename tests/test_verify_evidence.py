"""`alignment-node verify-evidence` re-judges a bundle of every audit kind.

For each kind of the one plug-in table (``audits.AUDITORS``), a faulty devnet stand-in is audited by the
auditor the node would build from that table; the bundle is served over HTTP as a node serves it
(``/evidence/<root>``, and ``/baselines/<hash>.json`` for MODEL), and the CLI, in its own process, must reach
the bundle's verdict from the bytes alone, and must refuse the same bundle with its verdict changed.
A kind added to the table without a case here fails ``test_every_kind_of_the_table_has_a_case``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alignment_node import protocol as P
from alignment_node.audits import AUDITORS, plugin_for_bundle
from alignment_node.audits.base import AuditEnv, EpochContext, Target
from alignment_node.config import Config
from alignment_node.protocol import canonical_json, keccak

CLI = [sys.executable, "-m", "alignment_node.cli"]
SEED = b"\x05" * 32


class Files:
    """A loopback HTTP server of fixed paths (what a node's /evidence and /baselines routes answer)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = outer.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *_a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def audit_one(kind: int, target: Target, env: AuditEnv, cfg: Config | None = None, deadline: float = 20.0):
    """The bundle the node's auditor of ``kind`` (built from AUDITORS) makes of ``target``."""
    cfg = cfg or Config()
    auditor = AUDITORS[kind].build(cfg, env)
    context = EpochContext(SEED, {target.id: [3]})

    async def go():
        try:
            return await auditor.audit_epoch(1, [target], [target], deadline, context=context)
        finally:
            worker = getattr(auditor, "worker", None)  # the plug-in's worker process (MODEL, DA_SIGNER)
            if worker is not None:
                await worker.close()

    return asyncio.run(go())[target.id].bundle


def verify(bundle: dict, extra: dict[str, bytes] | None = None) -> tuple[int, dict]:
    body = canonical_json(bundle)
    root = "0x" + keccak(body).hex()
    with Files({f"/evidence/{root}": body, **(extra or {})}) as server:
        out = subprocess.run(CLI + ["verify-evidence", root, "--from", server.url, "--json"], capture_output=True,
                             text=True, timeout=600)
    try:
        return out.returncode, json.loads(out.stdout)
    except ValueError:
        raise AssertionError(f"verify-evidence printed no JSON: {out.stdout!r} {out.stderr!r}") from None


def check_rejudged(bundle: dict, kind_name: str, extra: dict[str, bytes] | None = None) -> None:
    assert bundle["kind"] == kind_name
    assert bundle["verdict"] in ("FAULT", "UNREACHABLE"), bundle.get("checks")
    rc, data = verify(bundle, extra)
    assert rc == 0 and data["agrees"] and data["hash_ok"], data
    assert data["kind"] == kind_name and data["recomputed"] == bundle["verdict"]
    # the same observations with a verdict they do not support: re-judged, and refused
    lying = dict(bundle, verdict="OK")
    rc, data = verify(lying, extra)
    assert rc == 1 and data["hash_ok"] and data["claimed"] == "OK" and data["recomputed"] == bundle["verdict"]
    assert not data["agrees"]


CASES: dict[int, str] = {}


def case(kind: int):
    def register(fn):
        CASES[kind] = fn.__name__
        return fn

    return register


def test_every_kind_of_the_table_has_a_case():
    assert set(AUDITORS) == set(CASES), "every kind in audits.AUDITORS needs a verify-evidence case here"
    for kind in AUDITORS:
        assert plugin_for_bundle({"kind": P.KIND_NAMES[kind]}).kind == kind


def test_a_bundle_of_no_known_kind_is_a_clear_error():
    for bundle in ({"kind": "SOLANA_VOTER", "verdict": "OK"}, {"verdict": "OK"}, ["not", "a", "bundle"]):
        body = json.dumps(bundle).encode()
        root = "0x" + keccak(body).hex()
        with Files({f"/evidence/{root}": body}) as server:
            out = subprocess.run(CLI + ["verify-evidence", root, "--from", server.url], capture_output=True,
                                 text=True, timeout=60)
        assert out.returncode == 1 and "no judge for this bundle" in out.stderr, out.stderr


@case(P.KIND_EVM_RPC)
def test_evm_rpc(anvil):
    from alignment_node.audits.evm import evm_identity
    from alignment_node.devnet.faultproxy import FaultProxyProcess

    chain_id = int(anvil.rpc("eth_chainId"), 16)
    genesis = bytes.fromhex(anvil.rpc("eth_getBlockByNumber", ["0x0", False])["hash"][2:])
    with FaultProxyProcess(anvil.url, "wrong-chain") as proxy:
        target = Target(1, P.KIND_EVM_RPC, proxy.url, evm_identity(chain_id, genesis))
        bundle = audit_one(P.KIND_EVM_RPC, target, AuditEnv(Path(".")))
    check_rejudged(bundle, "EVM_RPC")


@case(P.KIND_COMETBFT)
def test_cometbft():
    from alignment_node.audits.cometbft import comet_identity
    import urllib.request

    from alignment_node.devnet.cometsim import CometSimProcess

    with CometSimProcess(chain_id="verify-7", validators=4, block_time=0.1, seed=1,
                         endpoints={"rpc0": "honest", "forge": "forge"}) as sim:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(sim.endpoint_url("rpc0") + "/status", timeout=5) as r:
                if int(json.load(r)["result"]["sync_info"]["latest_block_height"]) >= 12:
                    break
            time.sleep(0.2)
        target = Target(1, P.KIND_COMETBFT, sim.endpoint_url("forge"), comet_identity("verify-7"))
        bundle = audit_one(P.KIND_COMETBFT, target, AuditEnv(Path(".")))
    check_rejudged(bundle, "COMETBFT")


@case(P.KIND_ZGS_STORAGE)
def test_zgs_storage(tmp_path):
    import random

    from alignment_node.chain.rpc import RpcClient
    from alignment_node.chain.tx import LocalSigner
    from alignment_node.devnet.anvil import Anvil
    from alignment_node.devnet.storage import deploy_flow, random_file, upload
    from alignment_node.devnet.zgsnode import ZgsNodeProcess
    from alignment_node.zgs.flow import flow_identity

    with Anvil(block_time=None) as chain:
        signer = LocalSigner(chain.private_keys[0])

        async def setup():
            async with RpcClient(chain.url) as rpc:
                flow = await deploy_flow(rpc, signer)
                for n in (3000, 300_000):
                    await upload(flow, signer, random_file(random.Random(n), n), tmp_path)
                await rpc.request("anvil_mine", [hex(20)])
                return flow.address, await rpc.chain_id()

        flow, chain_id = asyncio.run(setup())
        with ZgsNodeProcess(chain.url, flow, tmp_path, "corrupt", shard=(0, 1)) as node:
            time.sleep(1.5)  # the node follows the chain every ~0.25 s

            async def audit():
                async with RpcClient(chain.url) as rpc:
                    async def rpc_for(cid):
                        return rpc if cid == chain_id else None

                    target = Target(1, P.KIND_ZGS_STORAGE, node.url, flow_identity(chain_id, flow))
                    auditor = AUDITORS[P.KIND_ZGS_STORAGE].build(Config(), AuditEnv(tmp_path, rpc_for))
                    results = await auditor.audit_epoch(1, [target], [target], 10.0,
                                                        context=EpochContext(SEED, {1: [3]}))
                    return results[1].bundle

            bundle = asyncio.run(audit())
    check_rejudged(bundle, "ZGS_STORAGE")


@case(P.KIND_MODEL)
def test_model(tmp_path):
    pytest.importorskip("torch", reason="MODEL baselines need the 'models' extra (scripts/install.sh installs it)")
    from alignment_node.devnet.modelserver import ModelServerProcess
    from alignment_node.models import baseline as B

    h, path = B.save(B.make_baseline(seed=0, samples_per_probe=20, embeddings=False), tmp_path / "baselines")
    cfg = Config()
    cfg.audit.model_baseline_sources = [str(tmp_path / "baselines")]
    cfg.audit.model_queries = 20
    with ModelServerProcess("temp-0.7", startup_timeout=120) as server:
        target = Target(1, P.KIND_MODEL, server.url, bytes.fromhex(h[2:]))
        bundle = audit_one(P.KIND_MODEL, target, AuditEnv(tmp_path / "state"), cfg, deadline=120.0)
    check_rejudged(bundle, "MODEL", {f"/baselines/{h}.json": Path(path).read_bytes()})


@case(P.KIND_DA_SIGNER)
def test_da_signer():
    """A reference DA signer that corrupts the rows it was given, audited by the DA auditor the node's worker runs,
    with the chain facts given as the chain reader records them (the reader on a real chain: test_da_chain.py)."""
    from test_da_audit import MY_ROWS, SIGNER, disperse, facts  # a sibling test module

    from alignment_node.audits.da import DaAuditor, da_identity
    from alignment_node.devnet.dasigner import DaSignerServer

    with DaSignerServer(0x5A17E5, "corrupts-rows", "0x" + "ab" * 20) as server:
        disperse(server)
        chain = facts(server.target)

        async def chain_facts(*_a):
            return chain

        auditor = DaAuditor(chain_facts)
        target = Target(1, P.KIND_DA_SIGNER, server.target, da_identity(31337, SIGNER, "0x" + "ab" * 20))
        results = asyncio.run(auditor.audit_epoch(1, [target], [target], 10.0, context=EpochContext(SEED, {1: [3]})))
        assert MY_ROWS
    check_rejudged(results[1].bundle, "DA_SIGNER")


def test_a_malformed_bundle_of_a_known_kind_is_a_clear_error():
    body = json.dumps({"kind": "DA_SIGNER", "verdict": "OK"}).encode()
    root = "0x" + keccak(body).hex()
    with Files({f"/evidence/{root}": body}) as server:
        out = subprocess.run(CLI + ["verify-evidence", root, "--from", server.url], capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 1 and "not a well-formed DA_SIGNER evidence bundle" in out.stderr, out.stderr
