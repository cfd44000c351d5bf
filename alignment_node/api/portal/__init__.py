"""The owner and operator portal the node serves: /portal (index.html), /portal/portal.js (the app, bundled from
portal/ by scripts/install.sh), /portal/portal.css and /portal/config.json (what the app needs to read the chain:
chain id, the node's RPC URLs, the manifest's addresses, the ABIs, the node's operator address).

The page talks to the chain itself (reads over the RPC URLs, writes through the visitor's wallet); the node only
serves files and its own /health, /status, /transactions and /evidence routes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit, urlunsplit

from ..server import Route, json_response

log = logging.getLogger("alignment_node.api.portal")

PORTAL_DIR = Path(__file__).resolve().parent
#: Contracts the app reads or writes; their ABIs go into config.json.
ABI_CONTRACTS = ("AlignmentLicense", "NodeSale", "OperatorRegistry", "TargetRegistry", "AuditProtocol", "RewardVault",
                 "RewardToken")
#: The governance tab's contracts: in config.json when the manifest has them (the tab says so when it does not).
GOVERNANCE_CONTRACTS = ("AlignmentGovernor", "Timelock")
FILES = {
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}
HTML = "text/html; charset=utf-8"
MISSING_BUNDLE = (b'document.getElementById("status").textContent = "The portal app is not built on this node: run '
                  b'scripts/install.sh (it bundles portal/ with esbuild into alignment_node/api/portal/portal.js).";\n')


def public_url(url: str) -> str:
    """The URL without user:password (the page is public to whoever reaches the node's port)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def portal_config(manifest: dict, rpc_urls: Sequence[str], operator: str, poll_interval_s: float = 1.0) -> dict:
    """The JSON the app loads first: everything it needs to find and read the contracts."""
    from ...chain.artifacts import load_artifact

    contracts = manifest["contracts"]
    missing = [name for name in ABI_CONTRACTS if name not in contracts]
    if missing:
        raise ValueError(f"the deployment manifest lacks {', '.join(missing)}: the portal cannot work without them")
    names = ABI_CONTRACTS + tuple(name for name in GOVERNANCE_CONTRACTS if name in contracts)
    return {
        "chainId": int(manifest["chainId"]),
        "deployBlock": int(manifest["deployBlock"]),
        "rpcUrls": [public_url(u) for u in rpc_urls],
        "contracts": {name: contracts[name] for name in names},
        "abis": {name: list(load_artifact(name).abi) for name in names},
        "operator": operator,
        "pollIntervalMs": max(250, int(poll_interval_s * 1000)),
    }


def portal_routes(manifest: dict, rpc_urls: Sequence[str], operator: str, poll_interval_s: float = 1.0
                  ) -> dict[str, Route]:
    """Routes for ApiServer: "/portal" and everything under "/portal/". A manifest the portal cannot use makes
    /portal/config.json answer 503 with the reason (the page says it); the node itself keeps running."""
    try:
        config = portal_config(manifest, rpc_urls, operator, poll_interval_s)
        config_answer = 200, "application/json", json.dumps(config, sort_keys=True).encode()
    except (ValueError, KeyError, OSError) as exc:
        log.warning("portal disabled: %s", exc)
        config_answer = json_response(503, {"error": f"portal disabled: {exc}"})

    def index(_path: str):
        return 200, HTML, (PORTAL_DIR / "index.html").read_bytes()

    def under(path: str):
        name = path[len("/portal/"):]
        if name in ("", "index.html"):
            return index(path)
        if name == "config.json":
            return config_answer
        if name in FILES:
            f = PORTAL_DIR / name
            if f.is_file():
                return 200, FILES[name], f.read_bytes()
            if name == "portal.js":
                return 200, FILES[name], MISSING_BUNDLE
        return json_response(404, {"error": f"no such portal file: {name}"})

    return {"/portal": index, "/portal/": under}
