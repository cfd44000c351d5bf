"""Issue 17's acceptance, as new users do it: a chain that the devnet did not start (an anvil of its own standing in
for a public chain), the contracts deployed with `alignment-node deploy`, two operators set up from
`alignment-node init` in separate directories (one with a keystore, one with a remote signer), owners who buy,
delegate, are approved and claim, all through the command line; operator A's node runs from the container image
(packaging/build-image.sh) when this machine has podman; the test reads the outcome from the chain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.devnet.anvil import Anvil
from alignment_node.keys import list_addresses, save_key

CLI = [sys.executable, "-m", "alignment_node.cli"]
PARAMS = {
    "protocol": {"epochLength": 10, "revealBlocks": 4},
    "sale": {"allowlistStart": "+0", "publicStart": "+0", "saleEnd": "+100000"},
}
ETHER = 10**18


def cli(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, input=stdin)
    if ok:
        assert out.returncode == 0, f"{args[0]} failed: {out.stderr[-2000:]}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_call(url: str, method: str, params: list):
    async def go():
        async with RpcClient([url]) as rpc:
            return await rpc.request(method, params)

    return asyncio.run(go())


def chain_read(url: str, manifest: dict, fn):
    async def go():
        async with RpcClient([url]) as rpc:
            return await fn(manifest_contracts(rpc, manifest))

    return asyncio.run(go())


def fund(url: str, address: str, ether: int = 10) -> None:
    """A faucet: what a new user gets from an exchange or a testnet faucet."""
    rpc_call(url, "anvil_setBalance", [address, hex(ether * ETHER)])


def keystore_user(tmp: Path, name: str) -> tuple[list[str], str]:
    """A key of a user's own (`keys new`), with its password in a file: the key options and the address."""
    pw = tmp / f"{name}.pw"
    pw.write_text(f"{name} password\n")
    ks = tmp / f"{name}-keys"
    cli("keys", "new", "--keystore", str(ks), "--password-file", str(pw))
    (address,) = list_addresses(ks)
    return ["--keystore", str(ks), "--password-file", str(pw)], address


def start_node(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["start", "--config", str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/alignment-node:test"  # the tag tests/test_container.py builds (same xdist group: one build)


def container_image() -> list[str] | None:
    """Build (or reuse) the node's image; the podman options this machine needs, or None without podman or when
    this machine cannot build it (build-image.sh exits 3)."""
    import shutil

    if shutil.which("podman") is None:
        return None
    env = {**os.environ, "ALIGNMENT_IMAGE": IMAGE, "PYTHON": sys.executable}
    out = subprocess.run([str(REPO / "packaging" / "build-image.sh")], env=env, capture_output=True, text=True,
                         timeout=1200)
    if out.returncode == 3:
        return None
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return (REPO / ".cache" / "container" / "podman-args").read_text().split()


class ContainerNode:
    """An operator's node from the image: its init'ed directory mounted as /config (the config's relative paths,
    data/ included, resolve there), host networking to reach the chain and serve its port."""

    def __init__(self, podman_args: list[str], directory: Path, log: Path):
        self.name = f"alignment-join-{os.getpid()}"
        self.log = log
        subprocess.run(["podman", "rm", "--force", self.name], capture_output=True)
        out = subprocess.run(["podman", "run", "--detach", "--name", self.name, *podman_args, "--network=host",
                              "-v", f"{directory}:/config:U", IMAGE, "start", "--config", "/config/config.toml"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr

    def poll(self):
        state = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", self.name],
                               capture_output=True, text=True).stdout.strip()
        return None if state == "true" else 1

    def stop(self) -> None:
        logs = subprocess.run(["podman", "logs", self.name], capture_output=True, text=True)
        self.log.write_text(logs.stdout + logs.stderr)
        subprocess.run(["podman", "stop", "--time", "20", self.name], capture_output=True, timeout=60)
        subprocess.run(["podman", "rm", "--force", self.name], capture_output=True, timeout=60)


def stop(proc) -> None:
    if isinstance(proc, ContainerNode):
        proc.stop()
        return
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_deployer_two_operators_and_two_owners_join_a_chain_the_devnet_did_not_start(tmp_path):
    from alignment_node.devnet.signer_server import SignerServerProcess

    with Anvil(block_time=0.5) as chain:
        url = chain.url
        # The deployer: its key in an encrypted keystore, the deployment checked, then made.
        deployer_pw = tmp_path / "deployer.pw"
        deployer_pw.write_text("deployer password\n")
        deployer_ks = tmp_path / "deployer-keys"
        save_key(deployer_ks, bytes.fromhex(chain.private_keys[0].removeprefix("0x")), "deployer password")
        params = tmp_path / "params.json"
        params.write_text(json.dumps(PARAMS))
        deployer = ["--keystore", str(deployer_ks), "--password-file", str(deployer_pw)]
        cli("deploy", "--rpc", url, "--chain-id", "31337", "--params", str(params), *deployer, "--check")
        manifest_path = tmp_path / "published-manifest.json"
        cli("deploy", "--rpc", url, "--chain-id", "31337", "--params", str(params), *deployer,
            "--out", str(manifest_path))
        manifest = json.loads(manifest_path.read_text())

        # Operator A: init with a new keystore; operator B: init with a remote signer holding its key.
        dir_a, dir_b = tmp_path / "operator-a", tmp_path / "operator-b"
        port_a, port_b = free_port(), free_port()
        public_a, public_b = free_port(), free_port()  # each node's public evidence listener (security review M6)
        cli("init", "--manifest", str(manifest_path), "--rpc", url, "--dir", str(dir_a), "--port", str(port_a),
            "--public-evidence", f"127.0.0.1:{public_a}")
        (op_a,) = list_addresses(dir_a / "keystore")
        signer_keys, op_b = keystore_user(tmp_path, "signer")
        signer = SignerServerProcess(signer_keys[1], signer_keys[3], chain_id=31337)
        signer.start()
        nodes: list[subprocess.Popen] = []
        try:
            cli("init", "--manifest", str(manifest_path), "--rpc", url, "--dir", str(dir_b), "--port", str(port_b),
                "--public-evidence", f"127.0.0.1:{public_b}", "--remote-signer", signer.url, "--address", op_b)
            for op in (op_a, op_b):
                fund(url, op)
            cli("register-operator", "500", "--config", str(dir_a / "config.toml"))
            cli("register-operator", "1500", "--config", str(dir_b / "config.toml"))

            # Owners: buy in the sale, delegate two licenses to each operator; the operators approve.
            owners = [keystore_user(tmp_path, f"owner{i}") for i in range(2)]
            ids: dict[str, list[int]] = {}
            for keys, address in owners:
                fund(url, address)
                cli("sale", "buy", "2", "--rpc", url, "--manifest", str(manifest_path), *keys)
                ids[address] = chain_read(url, manifest, lambda c, a=address: _licenses_of(c, a))
            (owner0, a0), (owner1, a1) = owners
            assert sorted(ids[a0] + ids[a1]) == [1, 2, 3, 4]
            for keys, address in owners:
                first, second = ids[address]
                common = ["--rpc", url, "--manifest", str(manifest_path), *keys]
                cli("delegate", str(first), op_a, *common)
                cli("delegate", str(second), op_b, *common)
            to_a = sorted(ids[a0][:1] + ids[a1][:1])
            to_b = sorted(ids[a0][1:] + ids[a1][1:])
            cli("approve", ",".join(map(str, to_a)), "--config", str(dir_a / "config.toml"))
            cli("approve", ",".join(map(str, to_b)), "--config", str(dir_b / "config.toml"))

            # The network's rewards: an emission reserve funded by the deployer (here, its own test token).
            def fund_rewards(c):
                return _fund_rewards(c, chain.private_keys[0])

            chain_read(url, manifest, fund_rewards)

            # Both nodes run from their init'ed directories until every license has something to claim.
            podman = container_image()
            nodes = [ContainerNode(podman, dir_a, tmp_path / "node-a.log") if podman is not None
                     else start_node(dir_a / "config.toml", tmp_path / "node-a.log"),
                     start_node(dir_b / "config.toml", tmp_path / "node-b.log")]
            deadline = time.monotonic() + 240
            claimable: dict[int, int] = {}
            while time.monotonic() < deadline:
                claimable = chain_read(url, manifest, lambda c: _claimables(c, [1, 2, 3, 4]))
                if all(claimable.values()):
                    break
                for n, proc in zip("ab", nodes):
                    if proc.poll() is not None:
                        stop(proc)
                        raise AssertionError((tmp_path / f"node-{n}.log").read_text()[-3000:])
                time.sleep(2)
            assert all(claimable.values()), (claimable, (tmp_path / "node-b.log").read_text()[-3000:])
            present = chain_read(url, manifest, lambda c: _present_operators(c))
            assert {op_a.lower(), op_b.lower()} <= present  # both heartbeat: one through the remote signer

            # The owners claim with their own keys; the chain pays them.
            for keys, address in owners:
                before = chain_read(url, manifest, lambda c, a=address: c["RewardToken"].call("balanceOf", a))
                out = cli("claim", ",".join(map(str, ids[address])), "--rpc", url, "--manifest", str(manifest_path),
                          *keys, "--json")
                paid = int(json.loads(out.stdout)["paid_wei"])
                after = chain_read(url, manifest, lambda c, a=address: c["RewardToken"].call("balanceOf", a))
                assert paid > 0 and after - before == paid
            # And the operators their commission, B through its remote signer.
            for d in (dir_a, dir_b):
                out = cli("claim-commission", "--config", str(d / "config.toml"), "--json")
                assert int(json.loads(out.stdout)["paid_wei"]) > 0
        finally:
            for proc in nodes:
                stop(proc)
            signer.stop()


async def _licenses_of(c, owner: str) -> list[int]:
    n = await c["NodeSale"].call("sold")
    return [i for i in range(1, n + 1) if (await c["AlignmentLicense"].call("ownerOf", i)).lower() == owner.lower()]


async def _claimables(c, ids: list[int]) -> dict[int, int]:
    return {i: await c["RewardVault"].call("claimable", i) for i in ids}


async def _present_operators(c) -> set[str]:
    from alignment_node.devnet.report import chain_events

    return {ev["operator"].lower() for ev in await chain_events(c["RewardVault"], "Present", 0)}


async def _fund_rewards(c, deployer_key: str) -> None:
    from alignment_node.chain.tx import LocalSigner

    deployer = LocalSigner(deployer_key)
    token, vault = c["RewardToken"], c["RewardVault"]
    amount = 100_000 * ETHER
    await token.transact("mint", deployer.address, amount, signer=deployer)
    await token.transact("approve", vault.address, amount, signer=deployer)
    await vault.transact("fundEmission", amount, signer=deployer)
