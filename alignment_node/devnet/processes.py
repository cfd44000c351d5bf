"""The devnet's processes: the operators' node processes (start, SIGKILL, stop, peak memory, health), target
processes spawned from a module, and ``ServerProcess``, a server process on a loopback port that says when it
is ready (fault proxy, reference storage node, model server, chain simulator).

A ``ServerProcess`` subclass sets ``name`` (what its ready line starts with and errors call it), ``module`` (run
with ``-m``) and gives ``_arguments()`` (its command line after ``--host/--port``); ``listens`` is False for a
mode that deliberately never accepts connections. It dies with its parent, and every one still running is
stopped when this interpreter exits.
"""

from __future__ import annotations

import atexit
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .anvil import _die_with_parent, free_port, stop_process

__all__ = ["OperatorProc", "ServerProcess", "kill_node", "node_health", "sample_rss", "serve", "spawn", "start_all", "start_node",
           "stop_nodes", "vm_hwm_kb"]

_running: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for proc in list(_running):
        proc.stop()


class ServerProcess:
    """One server process on a loopback port. Context manager; also start()/stop()."""

    name = "server"
    module = ""

    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1", startup_timeout: float = 10.0):
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    listens = True

    def _arguments(self) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def _options(*pairs: tuple[str, object]) -> list[str]:
        """``--flag value`` for each pair whose value is not None."""
        out: list[str] = []
        for flag, value in pairs:
            if value is not None:
                out += [flag, str(value)]
        return out

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"the {self.name} is not running")
        return f"http://{self.host}:{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):
        if self.process is not None:
            raise RuntimeError(f"the {self.name} is already started")
        attempts = 1 if self.requested_port else 3  # a free port can be taken between probe and bind
        for _ in range(attempts):
            port = self.requested_port or free_port(self.host)
            cmd = [sys.executable, "-m", self.module, "--host", self.host, "--port", str(port), *self._arguments()]
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent
                if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
                else None,
            )
            _running.add(self)
            self.port = port
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"{self.name} ({getattr(self, 'mode', '')}) did not start on {self.host}")

    def _wait_ready(self) -> bool:
        """The process printed its ready line and, unless it never listens, accepts connections."""
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()  # EOF if the child exits before it is ready
        if not line.startswith(self.name.split()[0].encode()):
            return False
        if not self.listens:
            return True
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Terminate (then kill) the process and reap it. Idempotent."""
        proc = self.process
        if proc is None:
            return
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        self.process = None
        self.port = None
        _running.discard(self)


def start_all(servers) -> None:
    """Start ``ServerProcess``es at once (each waits for its own ready line in a thread); if one fails, every one
    is stopped and the first error raised."""
    from concurrent.futures import ThreadPoolExecutor

    servers = list(servers)
    with ThreadPoolExecutor(max(1, len(servers))) as pool:
        outcomes = [f.exception() for f in [pool.submit(s.start) for s in servers]]
    failed = [e for e in outcomes if e is not None]
    if failed:
        for s in servers:
            s.stop()
        raise failed[0]


def serve(server, ready_line: str) -> None:
    """A server process's main loop: print its ready line (what ``ServerProcess`` waits for), then serve until
    interrupted."""
    print(ready_line, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


def spawn(module: str, args: list[str], stderr: Path) -> subprocess.Popen:
    """``python -m module args``, its stderr appended to ``stderr``; it dies with this process."""
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL,
                            stderr=open(stderr, "ab"), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)


@dataclass
class OperatorProc:
    address: str
    commission_bps: int
    directory: Path
    port: int
    licenses: list[int] = field(default_factory=list)
    process: subprocess.Popen | None = None
    rss_kb_max: int | None = None
    lazy: bool = False
    kills: int = 0
    # peak RSS (kB) of the node's audit workers, by name ("model", "da"), sampled with the node's
    worker_rss_kb_max: dict[str, int] = field(default_factory=dict)
    public_port: int = 0  # the node's public evidence listener (service.public_evidence), on loopback here

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def public_url(self) -> str:
        """Where the node serves its evidence to anyone: the operator's metadata URI on the devnet."""
        return f"http://127.0.0.1:{self.public_port}"


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size (VmHWM, kB) of a live process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


WORKERS = {"model": "alignment_node.models.worker", "da": "alignment_node.da.worker"}


def worker_pids(pid: int) -> dict[str, int]:
    """The audit workers (``WORKERS``) among the children of process ``pid``, by name."""
    out: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for name, module in WORKERS.items():
            if module.encode() in argv:
                out[name] = int(entry.name)
    return out


def _sample(op: OperatorProc) -> None:
    """Fold the live node's and its workers' peak RSS into ``op``."""
    rss = vm_hwm_kb(op.process.pid)
    if rss:
        op.rss_kb_max = max(op.rss_kb_max or 0, rss)
    for name, pid in worker_pids(op.process.pid).items():
        rss = vm_hwm_kb(pid)
        if rss:
            op.worker_rss_kb_max[name] = max(op.worker_rss_kb_max.get(name, 0), rss)


def start_node(op: OperatorProc, config: str) -> None:
    """Write ``config`` to the operator's node.toml and start its node, output appended to node.out."""
    path = op.directory / "node.toml"
    path.write_text(config)
    out = open(op.directory / "node.out", "ab")
    op.process = subprocess.Popen(
        [sys.executable, "-m", "alignment_node.cli", "start", "--config", str(path)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
    )
    out.close()


def kill_node(op: OperatorProc) -> None:
    """SIGKILL a node (crash drill), keeping its peak memory reading."""
    if op.process and op.process.poll() is None:
        _sample(op)
        op.process.send_signal(signal.SIGKILL)
        op.process.wait()
        op.kills += 1


def node_health(op: OperatorProc) -> tuple[int | None, dict]:
    """The HTTP status and body of the node's /health (None, {} when it does not answer)."""
    try:
        with urllib.request.urlopen(op.url() + "/health", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return None, {}


def stop_nodes(operators: list[OperatorProc]) -> None:
    """Terminate every node (keeping its peak memory reading), then reap each, killing one that lingers."""
    for op in operators:
        proc = op.process
        if proc is None:
            continue
        if proc.poll() is None:
            _sample(op)
            proc.terminate()
    for op in operators:
        proc = op.process
        if proc is None:
            continue
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sample_rss(operators: list[OperatorProc]) -> None:
    for op in operators:
        if op.process and op.process.poll() is None:
            _sample(op)
