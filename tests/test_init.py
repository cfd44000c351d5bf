"""`alignment-node init` as an operator runs it, against a real anvil with the contracts deployed: the node
directory it writes passes validate-config, registers, and starts a node whose /health answers; and every way
init refuses (unknown network, chain id mismatch, dead RPC, existing config, a key on the command line, a wrong
password) leaves nothing half written."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request

import pytest

from alignment_node import config as config_mod
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet import deploy as deploy_mod
from alignment_node.devnet.anvil import Anvil, free_port, stop_process
from alignment_node.init_cli import config_key_docs
from alignment_node.keys import list_addresses, load_signer, new_key
from alignment_node.networks import load_networks

CLI = [sys.executable, "-m", "alignment_node.cli"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """anvil (automine) with the contracts deployed; the manifest written as `devnet up` writes it."""
    out = tmp_path_factory.mktemp("deploy") / "deployment.json"
    with Anvil() as node:
        manifest = deploy_mod.deploy(node.url, node.private_keys[0], None, out=out)
        yield node, manifest, out


def cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), input=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, stdin=None if stdin is not None else subprocess.DEVNULL)


@pytest.fixture
def run(capsys, monkeypatch):
    """The CLI in this process (the same main() as the command; its refusals are cheaper to test here)."""
    def go(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
        from alignment_node.cli import main

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)
    return go


def init_args(chain, directory, *extra: str) -> list[str]:
    node, _, manifest_path = chain
    return ["init", "--network", "devnet", "--manifest", str(manifest_path), "--rpc", node.url,
            "--dir", str(directory), *extra]


def init(chain, directory, *extra: str, stdin: str | None = None, env: dict | None = None):
    """init as a user runs it: its own process."""
    return cli(*init_args(chain, directory, *extra), stdin=stdin, env=env)


def http_get(url: str) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def written(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def test_init_validate_register_start_and_health(chain, tmp_path):
    node, manifest, _ = chain
    d = tmp_path / "node"
    port, public = free_port(), free_port()
    out = init(chain, d, "--port", str(port), "--public-evidence", f"127.0.0.1:{public}", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    address = report["address"]
    assert report["ok"] and report["problems"] == [] and report["chain_id"] == 31337

    # The files, their modes, and no secret in the config.
    assert mode(d / "config.toml") == 0o600 and mode(d / "data") == 0o700 and mode(d / "keystore") == 0o700
    assert mode(d / "password") == 0o600
    assert json.loads((d / "deployment.json").read_text())["contracts"] == manifest["contracts"]
    password = (d / "password").read_text().strip()
    text = (d / "config.toml").read_text()
    assert password not in text
    assert load_signer(d / "keystore", password).address == address
    cfg = tomllib.loads(text)
    assert cfg["operator"] == {"keystore": "keystore", "password_file": "password", "address": address}
    assert cfg["chain"] == {"rpc_urls": [node.url], "manifest": "deployment.json"}
    assert cfg["service"] == {"port": port, "public_evidence": f"127.0.0.1:{public}"}

    # Every key of config.py is in the file, after the explanation config.py's docstring gives it.
    docs = config_key_docs()
    lines = text.splitlines()
    for section, cls in config_mod._SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.name == "webhooks":
                assert f"# [[{section}.{f.name}]]" in lines
                continue
            at = next(i for i, line in enumerate(lines) if line.lstrip("# ").startswith(f"{f.name} = ")
                      and lines.index(f"[{section}]") < i)
            key = f"{section}.{f.name}"
            assert key in docs, f"alignment_node/config.py's docstring does not document {key}"
            assert lines[at - 1] == f"# {docs[key]}", key

    ok = cli("validate-config", "--config", str(d / "config.toml"))
    assert ok.returncode == 0 and ok.stdout.strip() == "config OK", ok.stdout + ok.stderr

    # Fund (anvil's first account sends gas money), register with the existing command, start.
    async def fund():
        async with RpcClient(node.url) as rpc:
            await rpc.request("anvil_setBalance", [address, hex(10**20)])
    asyncio.run(fund())
    reg = cli("register-operator", "700", "--config", str(d / "config.toml"), "--json")
    assert reg.returncode == 0, reg.stdout + reg.stderr

    async def registered():
        async with RpcClient(node.url) as rpc:
            return await manifest_contracts(rpc, manifest)["OperatorRegistry"].call("getOperator", address)
    assert tuple(asyncio.run(registered())[:2]) == (True, 700)

    proc = subprocess.Popen(CLI + ["start", "--config", str(d / "config.toml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 45
        code = None
        while time.monotonic() < deadline and proc.poll() is None:
            code, body = http_get(f"http://127.0.0.1:{port}/health")
            if code == 200:
                break
            time.sleep(0.3)
        assert code == 200, (code, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        status = json.loads(http_get(f"http://127.0.0.1:{port}/status")[1])
        assert status["operator"].lower() == address.lower()
        # The public listener (security review M6) serves evidence by root and nothing about the node.
        code, body = http_get(f"http://127.0.0.1:{public}/evidence/0x{'ab' * 32}")
        assert code == 404 and b"no evidence" in body
        for private in ("/status", "/health", "/metrics", "/transactions", "/portal"):
            assert http_get(f"http://127.0.0.1:{public}{private}")[0] == 404, private
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc)
    assert (d / "data" / "node.log").exists()
    assert password not in (d / "data" / "node.log").read_text()


def test_import_reads_the_key_from_stdin_or_a_file_never_from_argv(chain, tmp_path, run):
    key = os.urandom(32).hex()
    address = LocalSigner(key).address
    d = tmp_path / "node"
    out = init(chain, d, "--keystore", "import", "--json", stdin="0x" + key + "\n")  # piped, as a user would
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["address"] == address and list_addresses(d / "keystore") == [address]
    for path in d.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes().lower() and bytes.fromhex(key) not in path.read_bytes()
    assert key not in out.stdout.lower() + out.stderr.lower()

    key_file = tmp_path / "key.hex"
    key_file.write_text(key + "\n")
    pw = tmp_path / "pw"
    pw.write_text("operator-password\n")
    out = run(*init_args(chain, tmp_path / "from-file", "--keystore", "import", "--key-file", str(key_file),
                         "--password-file", str(pw), "--json"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["address"] == address
    written_cfg = tomllib.loads((tmp_path / "from-file" / "config.toml").read_text())
    assert written_cfg["operator"]["password_file"] == str(pw)
    assert written_cfg["service"]["public_evidence"] == "0.0.0.0:9101"  # init's default: evidence served to anyone

    # A key given as an argument: refused without echoing it, and nothing is written.
    for argv in (["--keystore", "import", key], ["--keystore", "import", "0x" + key], ["--keystore", key],
                 ["--keystore", "import", "--key-file", key], ["--private-key", key]):
        bad = run(*init_args(chain, tmp_path / "argv", *argv))
        assert bad.returncode != 0
        assert written(tmp_path / "argv") == []
        if "--private-key" not in argv:  # (argparse itself names an unknown option's arguments)
            assert key not in bad.stderr.lower() and "never" in bad.stderr
    no_key = run(*init_args(chain, tmp_path / "no-key", "--keystore", "import"))  # empty stdin: no key there
    assert no_key.returncode == 1 and "private key" in no_key.stderr
    assert written(tmp_path / "no-key") == []


def test_unknown_network_chain_id_mismatch_and_dead_rpc_write_nothing(chain, tmp_path, run):
    node, manifest, manifest_path = chain
    d = tmp_path / "node"
    refusals = []

    def refused(*args: str) -> str:
        out = run(*args)
        assert out.returncode == 1, (args, out.stdout)
        refusals.append(out.stderr)
        return out.stderr

    err = refused("init", "--network", "nonet", "--rpc", node.url, "--dir", str(d))
    assert "unknown network 'nonet'" in err
    assert all(name in err for name in ("devnet", "0g-mainnet", "0g-galileo-testnet"))

    # The devnet's manifest (chain 31337) offered as 0G mainnet's (16661).
    err = refused("init", "--network", "0g-mainnet", "--manifest", str(manifest_path), "--rpc", node.url,
                  "--dir", str(d))
    assert "chain id mismatch" in err and "16661" in err

    # A manifest of chain 16601 (Galileo) against an RPC that serves 31337.
    galileo = tmp_path / "galileo.json"
    galileo.write_text(json.dumps({**manifest, "chainId": 16601}))
    err = refused("init", "--network", "0g-galileo-testnet", "--manifest", str(galileo), "--rpc", node.url,
                  "--dir", str(d))
    assert "serves chain 31337" in err and "16601" in err

    # Addresses of another deployment on the same chain.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**manifest, "contracts": {**manifest["contracts"], "AuditProtocol": "0x" + "ab" * 20}}))
    err = refused("init", "--manifest", str(other), "--rpc", node.url, "--dir", str(d))
    assert "no contract at the manifest's address of AuditProtocol" in err

    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    err = refused(*init_args(chain, d, "--rpc", dead))  # a live and a dead endpoint: both must answer
    assert "does not answer" in err and f"{dead}/..." in err
    assert time.monotonic() - t0 < 30

    # Presets whose addresses are left to the deployer need a manifest, and an RPC, which they leave too.
    err = refused("init", "--network", "0g-mainnet", "--rpc", node.url, "--dir", str(d))
    assert "left to the deployer" in err and "--manifest" in err
    assert "--rpc URL" in refused("init", "--manifest", str(manifest_path), "--dir", str(d))
    assert "--rpc URL" in refused("init", "--network", "devnet", "--manifest", str(manifest_path), "--dir", str(d))
    assert all(e.startswith("error: ") and e.strip().count("\n") == 0 for e in refusals), refusals
    assert written(d) == []


def test_existing_config_is_kept_unless_force_and_force_keeps_a_backup(chain, tmp_path, run):
    d = tmp_path / "node"
    first = run(*init_args(chain, d, "--json"))
    assert first.returncode == 0, first.stderr
    before = (d / "config.toml").read_text()
    again = run(*init_args(chain, d))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    assert (d / "config.toml").read_text() == before and len(list_addresses(d / "keystore")) == 1

    forced = run(*init_args(chain, d, "--force", "--port", "9999", "--json"))
    assert forced.returncode == 0, forced.stderr + forced.stdout
    assert (d / "config.toml.bak").read_text() == before
    assert tomllib.loads((d / "config.toml").read_text())["service"]["port"] == 9999
    # A second key beside the first: the config names which one, and validate-config (run by init) agrees.
    assert len(list_addresses(d / "keystore")) == 2
    assert json.loads(forced.stdout)["address"] in list_addresses(d / "keystore")
    assert json.loads(forced.stdout)["problems"] == []


def test_existing_keystore_with_wrong_password_is_refused(chain, tmp_path, run):
    ks = tmp_path / "ks"
    address = new_key(ks, "right-password")
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-password\n")
    d = tmp_path / "node"
    out = run(*init_args(chain, d, "--keystore", "existing", str(ks), "--password-file", str(wrong)))
    assert out.returncode == 1 and "wrong password" in out.stderr
    assert written(d) == []
    out = run(*init_args(chain, d, "--keystore", "existing", str(ks), "--password-env", "OP_PW", "--json"),
              env={"OP_PW": "right-password"})
    assert out.returncode == 0, out.stderr + out.stdout
    op = tomllib.loads((d / "config.toml").read_text())["operator"]
    assert op == {"keystore": str(ks), "password_env": "OP_PW", "address": address}
    assert "right-password" not in (d / "config.toml").read_text()
    assert not (d / "password").exists() and not (d / "keystore").exists()


def test_a_preset_added_from_a_manifest_initializes_without_one(chain, tmp_path, run):
    node, manifest, manifest_path = chain
    networks = tmp_path / "networks.toml"
    added = run("networks", "add", "local-test", "--manifest", str(manifest_path), "--rpc", node.url,
                "--networks", str(networks))
    assert added.returncode == 0, added.stderr
    preset = load_networks(networks)["local-test"]
    assert preset.complete and preset.chain_id == 31337 and preset.rpc_urls == [node.url]
    dup = run("networks", "add", "devnet", "--manifest", str(manifest_path), "--networks", str(networks))
    assert dup.returncode == 1 and "already defined" in dup.stderr
    assert load_networks(networks)["local-test"].contracts == manifest["contracts"]

    d = tmp_path / "node"
    out = run("init", "--network", "local-test", "--networks", str(networks), "--dir", str(d), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    written_manifest = json.loads((d / "deployment.json").read_text())
    assert written_manifest["contracts"] == manifest["contracts"]
    assert written_manifest["deployBlock"] == manifest["deployBlock"]
    listed = json.loads(run("networks", "list", "--networks", str(networks), "--json").stdout)
    assert listed["0g-mainnet"]["chain_id"] == 16661 and listed["0g-galileo-testnet"]["chain_id"] == 16601
    assert listed["devnet"]["chain_id"] == 31337 and not listed["0g-mainnet"]["complete"]


def test_remote_signer_writes_the_signer_keys_and_no_keystore(chain, tmp_path, run):
    d = tmp_path / "node"
    address = LocalSigner(os.urandom(32)).address
    out = run(*init_args(chain, d, "--remote-signer", "http://127.0.0.1:9000", "--address", address, "--json"))
    text = (d / "config.toml").read_text()
    fields = {f.name for f in dataclasses.fields(config_mod.OperatorConfig)}
    if {"signer", "remote_signer_url"} <= fields:
        assert tomllib.loads(text)["operator"] == {"signer": "remote", "remote_signer_url": "http://127.0.0.1:9000",
                                                   "address": address}
    else:
        assert '# signer = "remote"' in text and '# remote_signer_url = "http://127.0.0.1:9000"' in text
    assert not (d / "keystore").exists() and not (d / "password").exists()
    report = json.loads(out.stdout)
    assert report["address"] == address and report["keystore"] is None
    # Nothing listens at the signer's URL: whatever validate-config says of that is init's answer too.
    assert out.returncode == (0 if report["ok"] else 1)
    assert all("remote_signer" in p or "operator" in p for p in report["problems"]), report["problems"]
