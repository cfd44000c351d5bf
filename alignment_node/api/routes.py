"""Every route of the node's HTTP API except /metrics (the server adds it): what they serve comes from the
snapshot the node's services publish, the store (through its read-only StoreReader, one per API thread) and
the baselines directory, never from the services themselves, so a slow client never blocks the audit loop.

- GET /health: 200 healthy, 206 partly healthy (with reasons), 503 unhealthy;
- GET /status: the operator's licenses (each with ``why_not_earning``: node/why.py), balances, endpoints, alerts,
  journal counts, version (the node's release, governance's minimum, whether it is below it: version_gate.py) and
  disk (the data directory's free space, whether it is low or full: disk.py);
- GET /verdicts: the latest verdicts of this node's audits;
- GET /transactions: the journal's last 20 transactions, newest first (the portal's operator tab);
- GET /evidence/<root>: a bundle's exact bytes (keccak256 of the body is the root);
- GET /evidence-of/<epoch>/<target>: the roots of the bundles this node stored for (epoch, target): how a
  referee finds the OK evidence of a committee, whose roots are not on chain since issue 16 (docs/protocol.md);
- GET /baselines/<hash>.json: a MODEL baseline bundle this node fetched (and checked) for its audits;
- the portal's pages (api/portal).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from ..node.parts import Snapshot
from ..node.store import Store, StoreReader
from ..node.why import facts_from_view, why_not_earning
from .server import Route, json_response

HEALTH_WORDS = {200: "healthy", 206: "partly healthy", 503: "unhealthy"}
RECENT_TRANSACTIONS = 20


def _is_hash(text: str) -> bool:
    return text.startswith("0x") and len(text) == 66 and all(c in "0123456789abcdef" for c in text[2:])


def _with_why(v: dict, epoch: int | None) -> dict:
    """A license of the view with its reason for earning nothing: the rewards service adds it (with the claimable
    amount); until it has for a freshly read view, it is judged here from the booked balance."""
    if "why_not_earning" in v or epoch is None:
        return v
    return {**v, **why_not_earning(facts_from_view(v, epoch)).fields()}


class NodeRoutes:
    """The routes of one node: ``health()`` gives (status, reasons); ``snapshot`` is read on every request."""

    def __init__(self, snapshot: Callable[[], Snapshot], health: Callable[[], tuple[int, list[str]]], store: Store,
                 data_dir: Path):
        self.snapshot = snapshot
        self.health_of = health
        self.store = store
        self.data_dir = data_dir
        self._local = threading.local()

    def table(self) -> dict[str, Route]:
        return {"/health": self.health, "/status": self.status, "/verdicts": self.verdicts,
                "/transactions": self.transactions, "/evidence/": self.evidence, "/evidence-of/": self.evidence_of,
                "/baselines/": self.baseline}

    def public_table(self) -> dict[str, Route]:
        """What the public listener serves (service.public_evidence): the evidence and baselines by hash, read-only,
        nothing about the node's state."""
        return {"/evidence/": self.evidence, "/evidence-of/": self.evidence_of, "/baselines/": self.baseline}

    def _reader(self) -> StoreReader:
        if not hasattr(self._local, "reader"):
            self._local.reader = self.store.reader()
        return self._local.reader

    def health(self, _path: str):
        status, reasons = self.health_of()
        return json_response(status, {"status": HEALTH_WORDS[status], "reasons": reasons})

    def status(self, _path: str):
        s = self.snapshot()
        return json_response(200, {
            "operator": s.operator,
            "chain_id": s.chain_id,
            "head_block": s.head_block,
            "epoch": s.epoch,
            "licenses": {str(k): _with_why(v, s.epoch) for k, v in sorted(s.licenses.items())},
            "last_heartbeat": s.last_heartbeat,
            "balances": s.balances,
            "endpoints": s.endpoints,
            "alerts": s.alerts,
            "journal": s.journal,
            "version": s.version_gate,
            "disk": s.disk,
            "pid": os.getpid(),
        })

    def verdicts(self, _path: str):
        return json_response(200, {"verdicts": list(self.snapshot().verdicts)})

    def transactions(self, _path: str):
        return json_response(200, {"transactions": self._reader().recent_transactions(RECENT_TRANSACTIONS)})

    def evidence(self, path: str):
        root = path.rsplit("/", 1)[-1].lower()
        if not _is_hash(root):
            return json_response(400, {"error": "evidence root must be 0x + 64 hex digits"})
        body = self._reader().evidence(root)
        if body is None:
            return json_response(404, {"error": f"no evidence {root} on this node"})
        return 200, "application/json", body

    def evidence_of(self, path: str):
        parts = path.strip("/").split("/")
        if len(parts) != 3 or not all(p.isdigit() and len(p) <= 20 for p in parts[1:]):
            return json_response(400, {"error": "evidence-of takes /evidence-of/<epoch>/<target> (decimal numbers)"})
        return json_response(200, {"roots": self._reader().evidence_roots(int(parts[1]), int(parts[2]))})

    def baseline(self, path: str):
        h = path.rsplit("/", 1)[-1].lower().removesuffix(".json")
        if not _is_hash(h):
            return json_response(400, {"error": "a baseline is named by its hash: 0x + 64 hex digits + .json"})
        f = self.data_dir / "baselines" / f"{h}.json"
        if not f.is_file():
            return json_response(404, {"error": f"no baseline {h} on this node"})
        return 200, "application/json", f.read_bytes()
