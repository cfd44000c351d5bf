"""A devnet server process on a loopback port (fault proxy, reference storage node): start it, wait until it
says it is ready and accepts connections, stop and reap it; it dies with its parent, and every one still
running is stopped when this interpreter exits.

A subclass sets ``name`` (what its ready line starts with and errors call it), ``module`` (run with ``-m``)
and gives ``_arguments()`` (its command line after ``--host/--port``); ``listens`` is False for a mode that
deliberately never accepts connections.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import sys
import threading
import time

from .anvil import _die_with_parent, free_port, stop_process

__all__ = ["ServerProcess"]

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
