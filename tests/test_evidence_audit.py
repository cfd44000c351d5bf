"""Security review M6: evidence bound to what it judged, served publicly, and audited by anyone.

Unit part: ``bind``/``check`` (alignment_node/evidence_audit.py) refuse a root copied from another license or
epoch, changed bytes and a non-canonical body. Devnet part: a real node reveals an epoch; `alignment-node
evidence-audit` fetches every revealed root (the listed votes: the down target's UNREACHABLE; OK is implicit and
has no root on chain since issue 16) from the operator's metadata URI (its public listener) and finds all served
and bound; with that bundle gone from the node's store, it names that verdict unservable and exits 1.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from alignment_node.evidence_audit import bind, check
from alignment_node.protocol import FAULT, OK, canonical_json, keccak
from test_node import devnet, wait_until  # noqa: F401  (devnet: a fixture)
from test_reorg_flap import chain, first_commit, settled

CLI = [sys.executable, "-m", "alignment_node.cli"]
SEED = bytes(range(32))


def bundle_of(epoch=4, seed=SEED, target=7, verdict=FAULT, licenses=(3, 5)) -> tuple[bytes, bytes]:
    body = canonical_json(bind({"kind": "EVM_RPC", "checks": ["head"]}, epoch, seed, target, verdict, list(licenses)))
    return body, keccak(body)


def test_a_bound_bundle_checks_only_for_its_own_epoch_seed_target_verdict_and_licenses():
    body, root = bundle_of()
    assert check(body, root, 4, SEED, 7, FAULT, 3) is None and check(body, root, 4, SEED, 7, FAULT, 5) is None
    assert check(body, root, 4, SEED, 7, FAULT, 6) == "not bound to license 6"  # a copied root
    assert "epoch" in check(body, root, 5, SEED, 7, FAULT, 3)  # last epoch's verdict revealed again
    assert "seed" in check(body, root, 4, bytes(32), 7, FAULT, 3)
    assert "target" in check(body, root, 4, SEED, 8, FAULT, 3)
    assert "verdict" in check(body, root, 4, SEED, 7, OK, 3)
    assert check(body + b" ", root, 4, SEED, 7, FAULT, 3) == "the bytes served do not hash to the root"
    loose = json.dumps(json.loads(body), indent=1).encode()
    assert check(loose, keccak(loose), 4, SEED, 7, FAULT, 3) == "not a canonical JSON object"
    unbound = canonical_json({"kind": "EVM_RPC"})
    assert check(unbound, keccak(unbound), 4, SEED, 7, FAULT, 3) == "not bound to an epoch, target and license"


def revealed_operators(net, epoch: int) -> set[str]:
    """The operators whose reveal of ``epoch`` is on chain (one ``Revealed`` per operator, issue 16)."""
    from alignment_node.devnet.report import chain_events

    async def read(c):
        return {ev["operator"].lower() for ev in await chain_events(c["AuditProtocol"], "Revealed",
                                                                    int(net.manifest["deployBlock"]))
                if ev["epoch"] == epoch}
    return chain(net, read)


def evidence_audit(net, epoch: int) -> tuple[int, dict]:
    out = subprocess.run(CLI + ["evidence-audit", str(epoch), "--rpc", net.anvil.url, "--manifest",
                                str(net.workdir / "deployment.json"), "--json", "--timeout", "3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_every_revealed_root_is_served_publicly_and_a_missing_bundle_is_named(devnet):
    net = devnet(targets=("honest", "down"))
    op = net.operators[0]
    net.start_nodes()
    epoch = first_commit(net, op)["epoch"]
    settled(net, op)
    start = chain(net, lambda c: c["AuditProtocol"].call("epochStartBlock", epoch + 1))
    net.anvil.mine(start - net.anvil.block_number())
    wait_until(lambda: revealed_operators(net, epoch), timeout=60, what="the reveal")
    settled(net, op)

    rc, report = evidence_audit(net, epoch)
    [entry] = report["operators"]
    assert rc == 0 and report["all_served"], report
    assert entry["operator"].lower() == op.address.lower() and entry["url"] == op.public_url()
    assert entry["ok"] >= 2 and entry["unservable"] == entry["mismatched"] == 0

    # The operator withholds one bundle: that verdict is unservable, and the audit says which.
    db = sqlite3.connect(op.directory / "data" / "node.sqlite")
    with db:
        # an accusing verdict's bundle: only those have their root on chain (OK is implicit since issue 16)
        (root,) = db.execute("SELECT root FROM evidence WHERE epoch = ? AND verdict != ? ORDER BY root LIMIT 1",
                             (epoch, OK)).fetchone()
        db.execute("DELETE FROM evidence WHERE root = ?", (root,))
    db.close()
    rc, report = evidence_audit(net, epoch)
    [entry] = report["operators"]
    assert rc == 1 and not report["all_served"]
    assert entry["unservable"] >= 1 and all(p["root"] == root and p["why"] == "HTTP 404" for p in entry["problems"])
