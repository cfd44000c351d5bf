"""The container image (packaging/build-image.sh, packaging/Containerfile): built offline from Debian packages and
the node's wheels, it runs as a non-root user, checks a mounted config (password from a mounted file), and runs the
node against an anvil on the host with its data in the /data volume.

Skipped, with the reason, when podman is missing or this machine cannot build the base (the script exits 3). The
first build makes the base file system (a few minutes); later ones reuse .cache/container/ and podman's layers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alignment_node import __version__
from alignment_node.devnet.anvil import free_port
from alignment_node.devnet.network import Devnet, Plan

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/alignment-node:test"
UID = 10001  # the image's user (packaging/Containerfile)
CACHE = REPO / ".cache" / "container"

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt-get install runc "
                                "podman mmdebstrap): the container image cannot be built here")


@pytest.fixture(scope="module")
def image() -> list[str]:
    """Build the image; the podman options this machine needs to run it (build-image.sh found them)."""
    env = {**os.environ, "ALIGNMENT_IMAGE": IMAGE, "PYTHON": sys.executable}
    out = subprocess.run([str(REPO / "packaging" / "build-image.sh")], env=env, capture_output=True, text=True,
                         timeout=1200)
    if out.returncode == 3:
        pytest.skip("this machine cannot build the image: " + out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return (CACHE / "podman-args").read_text().split()


def podman_run(args: list[str], *options: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "run", "--rm", *args, *options], capture_output=True, text=True,
                          timeout=timeout)


def node_dir(directory: Path, config: str, manifest: dict) -> Path:
    """A /config directory as an operator mounts it: a fresh key in keystore/, the deployment manifest, the
    config; and the keystore password in a separate file (mounted as a secret). Returns the password file."""
    directory.mkdir(parents=True)
    password = directory.parent / f"{directory.name}-password"
    password.write_text(os.urandom(16).hex() + "\n")
    password.chmod(0o600)
    subprocess.run([sys.executable, "-m", "alignment_node.cli", "keys", "new", "--keystore",
                    str(directory / "keystore"), "--password-file", str(password)], check=True, capture_output=True)
    (directory / "deployment.json").write_text(json.dumps(manifest))
    (directory / "config.toml").write_text(config)
    return password


def mounts(config_dir: Path, password: Path) -> list[str]:
    """Bind mounts of the config (read-only) and the password file, owned by the image's user (``U``)."""
    return ["-v", f"{config_dir}:/config:ro,U", "-v", f"{password}:/run/secrets/keystore-password:ro,U"]


CONFIG = ('data_dir = "/data"\n[chain]\nrpc_urls = ["{rpc}"]\nmanifest = "deployment.json"\npoll_interval = 0.5\n'
          '[operator]\nkeystore = "keystore"\npassword_file = "/run/secrets/keystore-password"\n'
          '[service]\nhost = "127.0.0.1"\nport = {port}\n')


def test_image_runs_the_cli_as_its_unprivileged_user(image):
    out = podman_run(image, IMAGE, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"alignment-node {__version__}"
    probe = "import os, alignment_node; print(os.getuid(), os.getgid(), alignment_node.__file__)"
    out = podman_run(image, "--entrypoint", "/opt/alignment-node/bin/python", IMAGE, "-c", probe)
    uid, gid, where = out.stdout.split()
    assert (int(uid), int(gid)) == (UID, UID) and where.startswith("/opt/alignment-node/"), out.stdout + out.stderr


def test_image_config_declares_user_volume_entrypoint_and_default_command(image):
    inspect = json.loads(subprocess.run(["podman", "image", "inspect", IMAGE], capture_output=True, text=True,
                                        check=True).stdout)[0]["Config"]
    assert inspect["User"] == "alignment"
    assert "/data" in inspect["Volumes"]
    assert inspect["Entrypoint"] == ["alignment-node"]
    assert inspect["Cmd"] == ["start", "--config", "/config/config.toml"]


def test_validate_config_inside_reads_the_mounted_config_and_password_file(image, tmp_path):
    manifest = {"chainId": 31337, "deployBlock": 1,
                "contracts": {"AuditProtocol": "0x" + "11" * 20, "OperatorRegistry": "0x" + "22" * 20}}
    config_dir = tmp_path / "config"
    password = node_dir(config_dir, CONFIG.format(rpc="http://127.0.0.1:8545", port=9100), manifest)
    out = podman_run(image, "--network=none", *mounts(config_dir, password), IMAGE,
                     "validate-config", "--config", "/config/config.toml", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout) == {"ok": True, "problems": []}
    # Without the password file mounted, it says so.
    out = podman_run(image, "--network=none", "-v", f"{config_dir}:/config:ro,U", IMAGE,
                     "validate-config", "--config", "/config/config.toml", "--json")
    assert out.returncode == 1
    assert any("keystore-password" in p for p in json.loads(out.stdout)["problems"]), out.stdout


def http_get(url: str) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return None, {}


def test_node_in_the_container_serves_health_against_an_anvil_on_the_host(image, tmp_path):
    net = Devnet(Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, block_time=None),
                 tmp_path / "devnet", log=lambda *_: None)
    name = f"alignment-node-test-{os.getpid()}"
    try:
        asyncio.run(net.setup())
        op = net.operators[0]
        port = free_port()
        config_dir = tmp_path / "config"
        password = node_dir(config_dir, CONFIG.format(rpc=net.anvil.url, port=port), net.manifest)
        # The operator's key, not the fresh one node_dir made: it holds the delegated licenses.
        shutil.rmtree(config_dir / "keystore")
        shutil.copytree(op.directory / "keystore", config_dir / "keystore")
        shutil.copy2(op.directory / "password", password)
        data = tmp_path / "data"
        data.mkdir()
        started = subprocess.run(["podman", "run", "--detach", "--name", name, *image, "--network=host",
                                  *mounts(config_dir, password), "-v", f"{data}:/data:U", IMAGE],
                                 capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        deadline, code, health = time.monotonic() + 60, None, {}
        while time.monotonic() < deadline and code != 200:
            time.sleep(0.5)
            code, health = http_get(f"http://127.0.0.1:{port}/health")
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True).stderr
        assert code == 200, f"/health answered {code} {health}\n{logs[-3000:]}"
        code, status = http_get(f"http://127.0.0.1:{port}/status")
        assert code == 200 and op.address.lower() in json.dumps(status).lower(), status
        # SIGTERM (podman stop) stops it cleanly; its journal and log are in the volume.
        subprocess.run(["podman", "stop", "--time", "20", name], capture_output=True, check=True, timeout=60)
        state = json.loads(subprocess.run(["podman", "inspect", name], capture_output=True, text=True,
                                          check=True).stdout)[0]["State"]
        assert state["ExitCode"] == 0, subprocess.run(["podman", "logs", name], capture_output=True,
                                                       text=True).stderr[-3000:]
        assert (data / "node.log").is_file() and (data / "node.sqlite").is_file(), sorted(os.listdir(data))
    finally:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True)
        net.stop()

