"""Public evidence: a flagged target's bundle is served byte-exact and anyone can re-judge it."""

import asyncio
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from alignment_node.chain.rpc import RpcClient
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.protocol import keccak

CLI = [sys.executable, "-m", "alignment_node.cli"]


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """A devnet with one operator (3 licenses, so every license audits every target), two honest targets and
    a forked one; waits until the forked target is flagged on chain. Yields (net, root, node url)."""
    plan = Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, targets=("honest", "honest", "forked"))
    net = Devnet(plan, tmp_path_factory.mktemp("evidence"), log=lambda *_: None)
    try:
        asyncio.run(net.setup())
        net.start_nodes()

        async def wait_flag():
            async with RpcClient(net.anvil.url) as rpc:
                protocol = manifest_contracts(rpc, net.manifest)["AuditProtocol"]
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    events = await protocol.events("ViolationFlagged", int(net.manifest["deployBlock"]))
                    if events:
                        return events[0]
                    await asyncio.sleep(1)
                raise AssertionError("no ViolationFlagged within 120 s")

        event = asyncio.run(wait_flag())
        forked = next(t for t in net.targets if t.mode == "forked")
        assert event["targetId"] == forked.id and event["outcome"] == 2
        yield net, "0x" + event["evidenceRoot"].hex(), net.operators[0].url()
    finally:
        net.stop()


def test_flagged_evidence_is_served_byte_exact_and_listed(flagged):
    _net, root, url = flagged
    body = urllib.request.urlopen(f"{url}/evidence/{root}", timeout=5).read()
    assert "0x" + keccak(body).hex() == root
    bundle = json.loads(body)
    assert bundle["kind"] == "EVM_RPC" and bundle["verdict"] == "FAULT"
    assert any(not c["ok"] for c in bundle["checks"] if c["ok"] is not None)
    verdicts = json.loads(urllib.request.urlopen(f"{url}/verdicts", timeout=5).read())["verdicts"]
    assert any(v["root"] == root and v["verdict"] == "FAULT" for v in verdicts)


def test_verify_evidence_reaches_the_same_verdict(flagged):
    _net, root, url = flagged
    out = subprocess.run(CLI + ["verify-evidence", root, "--from", url, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {**result, "hash_ok": True, "claimed": "FAULT", "recomputed": "FAULT", "agrees": True}


def test_the_ok_evidence_of_a_target_is_listed_by_epoch_and_target(flagged):
    """OK roots are not on chain (one reveal per operator, OK by default: issue 16); /evidence-of lists the bundles
    the node stored for (epoch, target), which is how a referee finds a committee's OK evidence."""
    _net, root, url = flagged
    verdicts = json.loads(urllib.request.urlopen(f"{url}/verdicts", timeout=5).read())["verdicts"]
    fault = next(v for v in verdicts if v["root"] == root)
    listed = json.loads(urllib.request.urlopen(f"{url}/evidence-of/{fault['epoch']}/{fault['target']}",
                                               timeout=5).read())["roots"]
    assert root in listed
    ok = next(v for v in verdicts if v["verdict"] == "OK")
    roots = json.loads(urllib.request.urlopen(f"{url}/evidence-of/{ok['epoch']}/{ok['target']}", timeout=5).read())
    assert ok["root"] in roots["roots"]
    for r in roots["roots"]:
        body = urllib.request.urlopen(f"{url}/evidence/{r}", timeout=5).read()
        assert "0x" + keccak(body).hex() == r
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(f"{url}/evidence-of/{ok['epoch']}/nine", timeout=5)
    assert bad.value.code == 400


def test_unknown_root_and_bad_root_are_clear_errors(flagged):
    _net, _root, url = flagged
    missing = "0x" + "ab" * 32
    out = subprocess.run(CLI + ["verify-evidence", missing, "--from", url], capture_output=True, text=True)
    assert out.returncode == 1 and "404" in out.stderr
    out = subprocess.run(CLI + ["verify-evidence", "nonsense", "--from", url], capture_output=True, text=True)
    assert out.returncode == 1 and "not an evidence root" in out.stderr


class _Serve:
    """Serve fixed bytes at /evidence/<root> from a local HTTP server (a dishonest or broken node)."""

    def __init__(self, body: bytes):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.body = body
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


def test_tampered_evidence_is_caught(flagged):
    _net, root, url = flagged
    bundle = json.loads(urllib.request.urlopen(f"{url}/evidence/{root}", timeout=5).read())
    # 1. The same root, other bytes (claims OK): the hash no longer matches.
    lying = dict(bundle, verdict="OK")
    server = _Serve(json.dumps(lying).encode())
    try:
        out = subprocess.run(CLI + ["verify-evidence", root, "--from", server.url, "--json"], capture_output=True,
                             text=True)
    finally:
        server.close()
    assert out.returncode == 1 and json.loads(out.stdout)["hash_ok"] is False
    # 2. A self-consistent bundle whose verdict its own observations do not support.
    from alignment_node.protocol import canonical_json

    body = canonical_json(lying)
    server = _Serve(body)
    try:
        out = subprocess.run(CLI + ["verify-evidence", "0x" + keccak(body).hex(), "--from", server.url, "--json"],
                             capture_output=True, text=True)
    finally:
        server.close()
    result = json.loads(out.stdout)
    assert out.returncode == 1 and result["hash_ok"] and result["claimed"] == "OK"
    assert result["recomputed"] == "FAULT" and not result["agrees"]
