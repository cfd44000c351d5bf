"""The container image: its build time (cold and warm), its size, and the node's memory inside it.

    .venv/bin/python bench/container.py [--cold] [--seconds 30]

Builds the image with packaging/build-image.sh (``--cold`` first builds everything again: the base file system
from the apt mirror, the dependency wheels and every layer; then a warm rebuild, the usual case after a code
change), prints the image's size, then runs the node in it against a devnet on the host (anvil with 0.25 s blocks,
one operator with 3 licenses, ``podman --network=host``) for ``--seconds`` and prints the node process's VmRSS and
VmHWM (read from the host's /proc: the container's first process is the node).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignment_node.devnet.anvil import free_port  # noqa: E402
from alignment_node.devnet.network import Devnet, Plan  # noqa: E402

IMAGE = "localhost/alignment-node:bench"


def build(cold: bool) -> float:
    """Seconds packaging/build-image.sh takes."""
    env = {**os.environ, "ALIGNMENT_IMAGE": IMAGE, "PYTHON": sys.executable,
           "ALIGNMENT_IMAGE_COLD": "1" if cold else "0"}
    started = time.monotonic()
    out = subprocess.run([str(REPO / "packaging" / "build-image.sh")], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"build-image.sh exited {out.returncode}:\n{out.stderr[-3000:]}")
    return time.monotonic() - started


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def node_memory(seconds: float) -> dict[str, int]:
    """Run the image's node against a fresh devnet for ``seconds``; its memory at the end (kB)."""
    podman_args = (REPO / ".cache" / "container" / "podman-args").read_text().split()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net = Devnet(Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3), tmp / "devnet", log=lambda *_: None)
        name = f"alignment-node-bench-{os.getpid()}"
        try:
            asyncio.run(net.setup())
            op = net.operators[0]
            port = free_port()
            config = tmp / "config"
            config.mkdir()
            shutil.copytree(op.directory / "keystore", config / "keystore")
            (config / "deployment.json").write_text(json.dumps(net.manifest))
            (config / "config.toml").write_text(
                f'data_dir = "/data"\n[chain]\nrpc_urls = ["{net.anvil.url}"]\nmanifest = "deployment.json"\n'
                '[operator]\nkeystore = "keystore"\npassword_file = "/run/secrets/keystore-password"\n'
                f'[service]\nhost = "127.0.0.1"\nport = {port}\n')
            (tmp / "data").mkdir()
            subprocess.run(["podman", "run", "--detach", "--name", name, *podman_args, "--network=host",
                            "-v", f"{config}:/config:ro,U", "-v", f"{op.directory / 'password'}:/run/secrets/"
                            "keystore-password:ro,U", "-v", f"{tmp / 'data'}:/data:U", IMAGE], check=True,
                           capture_output=True)
            pid = int(subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", name], check=True,
                                     capture_output=True, text=True).stdout)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                health = resp.status
            memory = status_kb(pid)
            memory["health"] = health
            return memory
        finally:
            subprocess.run(["podman", "rm", "--force", name], capture_output=True)
            net.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true", help="first build everything again (several minutes)")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long the node runs before its memory is read")
    args = ap.parse_args()
    if args.cold:
        print(f"cold build: {build(cold=True):.0f} s (base file system, wheels, every layer)")
    print(f"warm build: {build(cold=False):.0f} s (cached base and dependency layers; the node's wheel and layers "
          "again)")
    size = int(subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE], check=True,
                              capture_output=True, text=True).stdout)
    suite = os.environ.get("ALIGNMENT_IMAGE_SUITE") or subprocess.run(
        ["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True, text=True).stdout.strip()
    base = int(subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}",
                               f"localhost/alignment-node-base:{suite}"], capture_output=True, text=True).stdout or 0)
    print(f"image size: {size / 1e6:.0f} MB (base file system {base / 1e6:.0f} MB)")
    memory = node_memory(args.seconds)
    print(f"node in the container after {args.seconds:.0f} s (/health {memory['health']}): "
          f"VmRSS {memory['VmRSS']} kB = {memory['VmRSS'] / 1024:.1f} MB, "
          f"VmHWM {memory['VmHWM']} kB = {memory['VmHWM'] / 1024:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
