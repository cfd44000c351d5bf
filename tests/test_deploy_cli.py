"""`alignment-node deploy` as a deployer runs it against a chain it did not start (an anvil standing in for a
public chain): the key from an encrypted keystore, `--check` first, a refused wrong chain, the manifest."""

import json
import subprocess
import sys
import urllib.request

import pytest

from alignment_node.devnet.anvil import Anvil
from alignment_node.keys import new_key, save_key

CLI = [sys.executable, "-m", "alignment_node.cli", "deploy"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy-cli")
    with Anvil(block_time=None) as node:
        pw = tmp / "password"
        pw.write_text("correct horse\n")
        keystore = tmp / "keystore"
        address = save_key(keystore, bytes.fromhex(node.private_keys[0].removeprefix("0x")), "correct horse")
        yield node, tmp, keystore, pw, address


def test_check_sends_nothing_and_names_the_chain_and_deployer(chain):
    node, tmp, keystore, pw, address = chain
    out = run("--rpc", node.url, "--keystore", str(keystore), "--password-file", str(pw), "--check", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["chainId"] == 31337 and plan["deployer"].lower() == address.lower()
    assert int(plan["balance_wei"]) > 0
    assert plan["params"]["sale"]["allowlistStart"] <= plan["params"]["sale"]["publicStart"]
    assert not list(tmp.glob("*.json"))


def test_a_wrong_chain_an_unfunded_key_a_bad_password_and_no_key_are_refused(chain):
    node, tmp, keystore, pw, _address = chain
    wrong = run("--rpc", node.url, "--keystore", str(keystore), "--password-file", str(pw), "--chain-id", "16661",
                "--out", str(tmp / "m.json"))
    assert wrong.returncode == 1 and "serves chain 31337, not the chain 16661" in wrong.stderr
    empty = tmp / "empty-keystore"
    new_key(empty, "correct horse")
    broke = run("--rpc", node.url, "--keystore", str(empty), "--password-file", str(pw), "--out", str(tmp / "m.json"))
    assert broke.returncode == 1 and "has no coins" in broke.stderr
    bad_pw = tmp / "bad-password"
    bad_pw.write_text("wrong\n")
    denied = run("--rpc", node.url, "--keystore", str(keystore), "--password-file", str(bad_pw), "--check")
    assert denied.returncode == 1 and "password" in denied.stderr.lower()
    nokey = run("--rpc", node.url, "--check")
    assert nokey.returncode == 1 and "deployer key" in nokey.stderr
    assert not (tmp / "m.json").exists()


def test_deploys_writes_a_publishable_manifest_and_never_overwrites_one(chain):
    node, tmp, keystore, pw, address = chain
    manifest_path = tmp / "manifest.json"
    out = run("--rpc", node.url, "--keystore", str(keystore), "--password-file", str(pw), "--chain-id", "31337",
              "--out", str(manifest_path))
    assert out.returncode == 0, out.stderr
    manifest = json.loads(manifest_path.read_text())
    assert manifest["deployer"].lower() == address.lower() and manifest["chainId"] == 31337
    assert "artifactsDir" not in manifest and str(tmp) not in manifest_path.read_text()
    ask = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getCode",
                      "params": [manifest["contracts"]["AuditProtocol"], "latest"]}).encode()
    req = urllib.request.Request(node.url, ask, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert len(json.loads(resp.read())["result"]) > 1000
    again = run("--rpc", node.url, "--keystore", str(keystore), "--password-file", str(pw),
                "--out", str(manifest_path))
    assert again.returncode == 1 and "never overwritten" in again.stderr
