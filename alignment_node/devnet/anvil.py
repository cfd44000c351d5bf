"""Run a local anvil for the devnet and the tests.

    with Anvil(block_time=None) as node:      # automine; or block_time=1 for a block a second
        node.url                              # http://127.0.0.1:<free port>
        node.private_keys[0]                  # anvil's dev keys, read from its --config-out file

The binary is `$ANVIL_BIN`, else the npm one under contracts/node_modules, else `anvil` on PATH.
`stop()` terminates the process, kills it if it lingers, and reaps it: nothing is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

__all__ = ["Anvil", "AnvilError", "find_anvil", "free_port", "stop_process", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_NPM_ANVIL = REPO_ROOT / "contracts" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


class AnvilError(RuntimeError):
    pass


def find_anvil() -> str:
    """Path of the anvil binary, or AnvilError saying where it was looked for."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env
        raise AnvilError(f"ANVIL_BIN={env} is not an executable")
    if os.access(_NPM_ANVIL, os.X_OK):
        return str(_NPM_ANVIL)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilError(f"anvil not found: set ANVIL_BIN, run `npm ci` in contracts/ ({_NPM_ANVIL}), or put anvil on PATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_running: "set[Anvil]" = set()


@atexit.register
def _stop_all() -> None:
    for node in list(_running):
        node.stop()


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a child process, kill it if it lingers past ``timeout`` seconds, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    else:
        proc.wait()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM anvil if the process that started it dies without stopping it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _rpc_sync(host: str, port: int, method: str, params: list, timeout: float = 2.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read(1 << 20))
    finally:
        conn.close()
    if "error" in data:
        raise AnvilError(f"{method}: {data['error']}")
    return data["result"]


class Anvil:
    """One anvil process on a loopback port. Context manager; also start()/stop()."""

    def __init__(
        self,
        block_time: float | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        chain_id: int | None = None,
        accounts: int | None = None,
        balance_eth: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        startup_timeout: float = 20.0,
    ):
        if block_time is not None and block_time <= 0:
            raise ValueError("block_time must be positive (None = automine)")
        self.block_time = block_time
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.chain_id = chain_id
        self.accounts_n = accounts
        self.balance_eth = balance_eth
        self.extra_args = list(extra_args)
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.accounts: list[str] = []
        self.private_keys: list[str] = []

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _command(self, port: int, config_out: Path) -> list[str]:
        cmd = [
            self.binary or find_anvil(),
            "--host", self.host,
            "--port", str(port),
            "--silent",
            "--config-out", str(config_out),
        ]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if self.chain_id is not None:
            cmd += ["--chain-id", str(self.chain_id)]
        if self.accounts_n is not None:
            cmd += ["--accounts", str(self.accounts_n)]
        if self.balance_eth is not None:
            cmd += ["--balance", str(self.balance_eth)]
        return cmd + self.extra_args

    def start(self) -> Anvil:
        if self.process is not None:
            raise AnvilError("anvil already started")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="anvil-")
        tmp = Path(self._tmpdir.name)
        attempts = 1 if self.requested_port else 3  # a free port can be taken between probe and bind
        last_error = ""
        try:
            for _ in range(attempts):
                port = self.requested_port or free_port(self.host)
                config_out = tmp / f"config-{port}.json"
                log_path = tmp / f"anvil-{port}.log"
                with open(log_path, "wb") as log:
                    self.process = subprocess.Popen(
                        self._command(port, config_out),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=tmp,
                        # PDEATHSIG fires when the starting *thread* exits: only use it from the main thread.
                        preexec_fn=_die_with_parent
                        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
                        else None,
                    )
                _running.add(self)
                self.port = port
                if self._wait_ready(config_out):
                    return self
                last_error = log_path.read_text(errors="replace")[-2000:]
                self._terminate()
            raise AnvilError(f"anvil did not start: {last_error.strip() or 'no output'}")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, config_out: Path) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        assert self.process is not None and self.port is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                _rpc_sync(self.host, self.port, "eth_chainId", [], timeout=1.0)
            except (OSError, ValueError, AnvilError, http.client.HTTPException):
                time.sleep(0.05)
                continue
            # The config file is written before the server listens, but be tolerant.
            for _ in range(40):
                try:
                    cfg = json.loads(config_out.read_text())
                    break
                except (OSError, ValueError):
                    time.sleep(0.05)
            else:
                raise AnvilError("anvil answered but wrote no --config-out file")
            self.accounts = [a for a in cfg.get("available_accounts", [])]
            self.private_keys = list(cfg.get("private_keys", []))
            return True
        return False

    def _terminate(self) -> None:
        proc = self.process
        if proc is None:
            return
        stop_process(proc)
        self.process = None
        self.port = None
        _running.discard(self)

    def stop(self) -> None:
        """Terminate (then kill) the process and remove its temporary files. Idempotent."""
        try:
            self._terminate()
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None

    # -------------------------------------------------------------------------- conveniences

    def rpc(self, method: str, params: list | None = None):
        """A synchronous JSON-RPC call (for test set-up: mining, time travel)."""
        return _rpc_sync(self.host, self.port or 0, method, params or [], timeout=10.0)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)
