"""Logging for the node: stderr plus a file in the data directory, with a guard that no key can pass."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from .chain.keccak import keccak256

_HEX64 = re.compile(r"(?i)(?:0x)?([0-9a-f]{64})")


class SecretGuard(logging.Filter):
    """Drops any 64-hex-digit run that is the signer's private key from every record (defence in depth:
    our code never logs the key). It keeps only the key's keccak hash, never the key's text."""

    def __init__(self, key_hash: bytes):
        super().__init__()
        self._key_hash = key_hash

    def _scrub(self, text: str) -> str:
        def repl(m: re.Match) -> str:
            return "[redacted]" if keccak256(bytes.fromhex(m.group(1).lower())) == self._key_hash else m.group(0)

        return _HEX64.sub(repl, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def setup_logging(level: str, logfile: Path | None = None, secret_guard=None) -> None:
    """Configure the root logger; ``secret_guard`` is a signer whose key must never appear."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(getattr(logging, level.upper()))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if logfile is not None:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    guard = None
    if secret_guard is not None:
        guard = SecretGuard(secret_guard.key_fingerprint())
    for h in handlers:
        h.setFormatter(fmt)
        if guard:
            h.addFilter(guard)
        root.addHandler(h)


def redact_url(url: str) -> str:
    """What a log may show of a URL whose path or query is a secret: scheme://host[:port]/..."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..."
