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

from alignment_node.evidence_audit import _vote, bind, check
from alignment_node.protocol import FAULT, OK, UNREACHABLE, canonical_json, keccak
from test_node import devnet, wait_until  # noqa: F401  (devnet: a fixture)
from test_reorg_flap import chain, first_commit, metric, settled

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
    net = devnet(targets=("honest", "down", "down"))
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
    challenge_both(net, op, epoch, root)


def listed_votes(net, epoch: int) -> list[tuple[int, int, int, str]]:
    """(license, target, verdict, root) of every vote listed in ``epoch``'s reveals."""
    from alignment_node.devnet.report import chain_events

    async def read(c):
        out = []
        for ev in await chain_events(c["AuditProtocol"], "Revealed", int(net.manifest["deployBlock"])):
            if ev["epoch"] == epoch:
                for v in ev["votes"]:
                    lic, target, verdict, root = _vote(v)
                    out.append((lic, target, verdict, "0x" + bytes(root).hex()))
        return out
    return chain(net, read)


def challenge_state(net, epoch: int, target: int, lic: int) -> int:
    from alignment_node.protocol import vote_key
    return chain(net, lambda c: c["AuditProtocol"].call("challenges", vote_key(epoch, target, lic)))[2]


def challenge_both(net, op, epoch: int, withheld: str) -> None:
    """Security review M6 on chain: a challenged vote whose bundle the node holds is answered by the node (the
    bytes, in calldata, hash to the root); the withheld one cannot be, and after the deadline `alignment-node
    challenge --expire` penalizes its license as for a miss and pays the challenger the bounty."""
    votes = [v for v in listed_votes(net, epoch) if v[2] in (FAULT, UNREACHABLE)]
    served = next(v for v in votes if v[3] != withheld)
    lost = next(v for v in votes if v[3] == withheld)
    owner = net.owners[0]

    async def challenge(c):
        bond = await c["AuditProtocol"].call("challengeBond")
        await c["AuditProtocol"].transact("challengeEvidence", epoch, served[1], served[0], signer=owner, value=bond)
    chain(net, challenge)
    try:
        wait_until(lambda: challenge_state(net, epoch, served[1], served[0]) == 2, timeout=60,
                   what="the node to serve the challenged bundle")
    except AssertionError:
        print((op.directory / "node.out").read_text()[-4000:])
        raise
    assert metric(op, "alignment_evidence_challenges_total", "served", label="result") == 1

    # Anyone may challenge: here the operator's own key, through the CLI (its bond comes back with the bounty).
    keys = ["--keystore", str(op.directory / "keystore"), "--password-file", str(op.directory / "password")]
    chain_args = ["--rpc", net.anvil.url, "--manifest", str(net.workdir / "deployment.json"), "--json"]
    run = lambda *extra: subprocess.run(CLI + ["challenge", str(epoch), str(lost[1]), str(lost[0]), *extra,
                                               *chain_args, *keys], capture_output=True, text=True, timeout=120)
    out = run()
    assert out.returncode == 0, out.stderr
    opened = json.loads(out.stdout)
    assert opened["state"] == "open"
    early = run("--expire")
    assert early.returncode != 0 and "AnswerWindowOpen" in early.stderr
    net.anvil.mine(opened["deadline"] + 1 - net.anvil.block_number())
    settled(net, op)
    assert challenge_state(net, epoch, lost[1], lost[0]) == 1, "nobody could serve it"
    out = run("--expire")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "upheld"
    bounty = chain(net, lambda c: c["RewardVault"].call("bountyOf", op.address))
    assert bounty > 0, "the challenger is the miss's reporter"
