"""Evidence binding and the public evidence audit (security review M6, docs/security.md).

Every bundle a node stores is bound, before it is hashed into the root it reveals, to what it judged: the epoch,
the epoch's seed, the target, the verdict and the licenses of this node that reveal it (``bind``). A verdict
copied from an earlier epoch, or from another operator, then has no bundle to show: the copier's own license is
not in the bound list of the bundle it points at, and a fresh one cannot hash to the copied root.

``alignment-node evidence-audit EPOCH`` is the check anyone can run: for each vote with evidence listed in the
epoch's reveals (FAULT and UNREACHABLE: since issue 16 a reveal lists only the votes that are not OK, OK is
implicit and its root is not on chain; NO_VOTE has no evidence) it fetches the bundle from the revealing
operator's public URL (its metadata URI: the node's ``service.public_evidence`` listener), and checks that the
bytes hash to the root and that the bundle is bound to that epoch, seed, target, verdict and license
(``check``). It prints per operator how many were served and bound, unservable or mismatched; exit status 1 if
any was not. An operator that revealed only OK votes is listed with nothing to check. Withheld or copied evidence costs the operator
its name with the owners who delegate to it; docs/security.md says what it does not cost yet.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from .protocol import VERDICT_NAMES, canonical_json, keccak

NO_VOTE = 0  # AuditProtocol.NO_VOTE: a listed "did not audit", without evidence

MAX_BUNDLE_BYTES = 16 << 20


def bind(bundle: dict[str, Any], epoch: int, seed: bytes, target: int, verdict: int,
         licenses: list[int]) -> dict[str, Any]:
    """``bundle`` with its ``bound`` record: what the root revealed with it is evidence of."""
    return {**bundle, "bound": {"epoch": epoch, "seed": "0x" + seed.hex(), "target": target,
                                "verdict": VERDICT_NAMES[verdict], "licenses": sorted(licenses)}}


def check(body: bytes, root: bytes, epoch: int, seed: bytes, target: int, verdict: int, license_id: int) -> str | None:
    """None when ``body`` is the evidence of ``license_id``'s verdict on ``target`` in ``epoch`` under ``root``;
    else what is wrong, in a few words."""
    if keccak(body) != root:
        return "the bytes served do not hash to the root"
    try:
        bundle = json.loads(body)
    except ValueError:
        return "not JSON"
    if not isinstance(bundle, dict) or canonical_json(bundle) != body:
        return "not a canonical JSON object"
    bound = bundle.get("bound")
    if not isinstance(bound, dict):
        return "not bound to an epoch, target and license"
    expected = {"epoch": epoch, "seed": "0x" + seed.hex(), "target": target, "verdict": VERDICT_NAMES.get(verdict)}
    for key, value in expected.items():
        if bound.get(key) != value:
            return f"bound to {key} {bound.get(key)!r}, revealed for {value!r}"
    licenses = bound.get("licenses")
    if not isinstance(licenses, list) or license_id not in licenses:
        return f"not bound to license {license_id}"
    return None


def fetch(url: str, timeout: float) -> tuple[bytes | None, str | None]:
    """(body, None) or (None, why it could not be had)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(MAX_BUNDLE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"unreachable ({getattr(exc, 'reason', exc)})"
    if len(body) > MAX_BUNDLE_BYTES:
        return None, f"more than {MAX_BUNDLE_BYTES} bytes"
    return body, None


def _vote(v) -> tuple[int, int, int, bytes]:
    """(license, targetId, verdict, evidenceRoot) of a ``Revealed`` event's vote (a tuple, or a dict by name)."""
    if isinstance(v, dict):
        return v["license"], v["targetId"], v["verdict"], bytes(v["evidenceRoot"])
    return v[0], v[1], v[2], bytes(v[3])


async def audit_epoch(c: dict, epoch: int, timeout: float = 5.0, start_block: int = 0) -> dict:
    """The evidence audit of ``epoch`` over the bound contracts ``c``: per revealed operator, its listed verdicts
    with evidence served and bound (``ok``), not served (``unservable``) or served but not this verdict's
    (``mismatched``), with examples."""
    from .chain.manifest import chain_events

    protocol, registry = c["AuditProtocol"], c["OperatorRegistry"]
    seed = bytes(await protocol.call("seed", epoch))
    operators: dict[str, dict] = {}
    fetched: dict[str, tuple[bytes | None, str | None]] = {}
    for ev in await chain_events(protocol, "Revealed", start_block):
        if ev["epoch"] != epoch:
            continue
        address = ev["operator"]
        if address not in operators:
            info = await registry.call("getOperator", address)
            base = info[-1] if isinstance(info, (list, tuple)) else info["metadataURI"]
            operators[address] = {"operator": address, "url": base, "ok": 0, "unservable": 0, "mismatched": 0,
                                  "problems": []}
        entry = operators[address]
        base = entry["url"]
        for vote in ev["votes"]:
            lic, target, verdict, root = _vote(vote)
            if verdict == NO_VOTE:
                continue  # "did not audit": no evidence
            if not base.startswith(("http://", "https://")):
                why, kind = f"metadata URI {base!r} is not an http(s) URL", "unservable"
            else:
                url = f"{base.rstrip('/')}/evidence/0x{root.hex()}"
                if url not in fetched:
                    fetched[url] = await asyncio.to_thread(fetch, url, timeout)
                body, why = fetched[url]
                kind = "unservable"
                if body is not None:
                    why, kind = check(body, root, epoch, seed, target, verdict, lic), "mismatched"
            if why is None:
                entry["ok"] += 1
                continue
            entry[kind] += 1
            if len(entry["problems"]) < 5:
                entry["problems"].append({"license": lic, "target": target, "root": "0x" + root.hex(), "why": why})
    listed = sorted(operators.values(), key=lambda o: o["operator"].lower())
    return {"epoch": epoch, "seed": "0x" + seed.hex(), "operators": listed,
            "all_served": all(o["unservable"] == 0 and o["mismatched"] == 0 for o in listed)}
