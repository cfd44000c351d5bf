"""Governance from the command line against a real anvil and the real deployment: license holders buy licenses with
`sale buy`, delegate, propose named actions, vote, queue and execute through `alignment-node governance`, and the
change is read back from the chain; the Governor's refusals come back as plain sentences."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import subprocess
import sys

import pytest

from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.cli import main
from alignment_node.devnet import deploy as deploy_mod
from alignment_node.devnet.anvil import Anvil, AnvilError, find_anvil
from alignment_node.devnet.params import default_params

QUORUM_PERCENT = 30
LICENSES = {"alice": 3, "bob": 2, "carol": 2, "dave": 1}  # 8 licenses: quorum 30% of 8 = 2 votes
TARGET_URL = "http://127.0.0.1:9/governed-rpc"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `alignment-node ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse refusals
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


class Chain:
    """The deployed chain and the holders' keystores, for running governance commands as each holder."""

    def __init__(self, anvil: Anvil, manifest_path, holders: dict[str, dict]):
        self.anvil = anvil
        self.manifest_path = str(manifest_path)
        self.manifest = json.loads(manifest_path.read_text())
        self.holders = holders

    def chain_args(self) -> list[str]:
        return ["--rpc", self.anvil.url, "--manifest", self.manifest_path]

    def key_args(self, who: str) -> list[str]:
        h = self.holders[who]
        return ["--keystore", h["keystore"], "--password-file", h["password_file"]]

    def gov(self, who: str | None, *argv: str) -> tuple[int, dict | str, str]:
        """`governance ARGV --json` as ``who`` (None: no key): (status, parsed JSON or raw stdout, stderr)."""
        rc, out, err = cli("governance", *argv, *self.chain_args(), *(self.key_args(who) if who else []), "--json")
        try:
            return rc, json.loads(out), err
        except ValueError:
            return rc, out, err

    def ok(self, who: str | None, *argv: str) -> dict:
        rc, out, err = self.gov(who, *argv)
        assert rc == 0, (argv, out, err)
        return out

    def refused(self, who: str | None, *argv: str) -> str:
        rc, out, err = self.gov(who, *argv)
        assert rc == 1, (argv, out, err)
        return out["error"]

    def mine(self, blocks: int = 1, seconds: int = 0) -> None:
        if seconds:
            self.anvil.rpc("evm_increaseTime", [seconds])
        self.anvil.mine(blocks)

    def read(self, contract: str, fn: str, *args):
        async def go():
            async with RpcClient(self.anvil.url) as rpc:
                return await manifest_contracts(rpc, self.manifest)[contract].call(fn, *args)

        return asyncio.run(go())


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    work = tmp_path_factory.mktemp("governance")
    params = default_params()
    params["sale"]["allowlistStart"] = "+0"
    params["sale"]["publicStart"] = "+0"
    params["governor"]["quorumPercent"] = QUORUM_PERCENT
    # The holders' 8 licenses sell the sale out: a finished sale, whose quorum counts the licenses minted (while
    # a sale runs, the quorum counts every license it can sell).
    params["sale"]["tiers"] = [{"price": "0.1 ether", "supply": sum(LICENSES.values())}]
    with Anvil() as node:
        manifest = work / "deployment.json"
        deploy_mod.deploy(node.url, node.private_keys[0], params, out=manifest)
        holders = {}
        for name in [*LICENSES, "erin"]:  # erin holds no license
            keystore, password = work / name / "keystore", work / name / "password"
            keystore.mkdir(parents=True)
            password.write_text(secrets.token_hex(16) + "\n")
            password.chmod(0o600)
            rc, out, err = cli("keys", "new", "--keystore", str(keystore), "--password-file", str(password), "--json")
            assert rc == 0, err
            address = json.loads(out)["address"]
            node.rpc("anvil_setBalance", [address, hex(100 * 10**18)])
            holders[name] = {"address": address, "keystore": str(keystore), "password_file": str(password)}
        c = Chain(node, manifest, holders)
        for name, count in LICENSES.items():  # bought the way a holder does, one at a time (tier prices)
            rc, out, err = cli("sale", "buy", str(count), *c.chain_args(), *c.key_args(name), "--json")
            assert rc == 0, (out, err)
        c.mine()
        yield c


def addr(chain: Chain, who: str) -> str:
    return chain.holders[who]["address"]


def test_licenses_vote_without_a_delegation_and_delegate_moves_them(chain):
    # AlignmentLicense self-delegates a first license, so buying is enough to vote.
    bob = chain.ok("bob", "power")
    assert (bob["licenses"], bob["votes"], bob["delegate"]) == (2, 2, addr(chain, "bob"))
    assert bob["total_votes"] == sum(LICENSES.values()) and bob["proposal_threshold"] == 1
    assert bob["quorum_now"] == sum(LICENSES.values()) * QUORUM_PERCENT // 100
    moved = chain.ok("dave", "delegate", addr(chain, "alice"))
    assert moved["previous_delegate"] == addr(chain, "dave") and moved["delegate_votes"] == 4
    chain.mine()
    dave = chain.ok(None, "power", addr(chain, "dave"))
    assert (dave["licenses"], dave["votes"], dave["delegate"]) == (1, 0, addr(chain, "alice"))
    assert chain.ok(None, "power", addr(chain, "alice"))["votes"] == 4
    assert "not an address" in chain.refused("dave", "delegate", "alice")


def dave_votes_with_alice(chain: Chain) -> None:
    """Alice votes with 4 licenses: dave's one is delegated to her (as the first test does; tests may run alone)."""
    if chain.ok(None, "power", addr(chain, "alice"))["votes"] != 4:
        chain.ok("dave", "delegate", addr(chain, "alice"))
        chain.mine()


def test_parameter_change_and_target_addition_pass_queue_and_execute(chain):
    dave_votes_with_alice(chain)
    before = chain.read("AuditProtocol", "params")
    targets_before = chain.read("TargetRegistry", "targetCount")
    proposals_before = len(chain.ok(None, "proposals")["proposals"])
    actions = ["--set", "AuditProtocol.setParams", "committeeSize=7",
               "--add-target", "EVM_RPC", TARGET_URL, "--identity", "0x0102abcd",
               "--description", "Committees of 7; audit the governed RPC"]

    dry = chain.ok(None, "propose", *actions, "--dry-run")
    assert dry["dry_run"] and len(chain.ok(None, "proposals")["proposals"]) == proposals_before  # nothing sent
    set_params, add_target = dry["actions"]
    assert set_params["contract"] == "AuditProtocol" and set_params["function"].startswith("setParams(")
    assert set_params["args"]["params_"] == {**dict(zip(("revealBlocks", "committeeSize", "minReveals",
                                                          "maxCommittee"), before)), "committeeSize": 7}
    assert set_params["would_revert"] is None and "committeeSize 5 -> 7" in set_params["text"]
    assert add_target["args"] == {"kind": 1, "endpoint": TARGET_URL, "identity": "0x0102abcd"}
    assert add_target["function"] == "addTarget(uint8,string,bytes)" and "EVM_RPC" in add_target["text"]

    rc, text, err = cli("governance", "propose", *actions, "--dry-run", *chain.chain_args())
    assert rc == 0 and "calldata 0x" in text and "AuditProtocol.setParams(" in text, err

    made = chain.ok("alice", "propose", *actions)
    n = str(made["number"])
    assert made["id"] == dry["id"] and made["number"] == proposals_before + 1
    # Voting opens the block after the snapshot.
    assert "is Pending: voting opens after block" in chain.refused("bob", "vote", n, "for")
    chain.mine()
    assert chain.ok("alice", "vote", n, "for")["weight"] == 4
    assert chain.ok("bob", "vote", n, "for", "--reason", "bigger committees")["weight"] == 2
    assert chain.ok("carol", "vote", n, "against")["votes"] == {"for": 6, "against": 2, "abstain": 0}
    again = chain.refused("bob", "vote", n, "against")
    assert again == f"{addr(chain, 'bob')} has already voted on proposal #{n}: a vote cannot be changed"
    early = chain.refused("carol", "queue", n)
    assert early == (f"proposal #{n} is Active: it can be queued once it has Succeeded, after block "
                     f"{made['deadline_block']} (head {chain.anvil.block_number()})")

    chain.mine(made["deadline_block"] - chain.anvil.block_number() + 1)
    assert "has Succeeded but is not queued yet: run `governance queue" in chain.refused("carol", "execute", n)
    queued = chain.ok("carol", "queue", n)  # anyone may queue and execute
    assert queued["eta_in_s"] > 0
    assert "is already Queued" in chain.refused("carol", "queue", n)
    assert f"is Queued: the Timelock releases it at unix time {queued['eta']}" in chain.refused("carol", "execute", n)
    chain.mine(1, seconds=queued["eta_in_s"] + 1)
    done = chain.ok("erin", "execute", n)
    assert len(done["actions"]) == 2

    after = chain.read("AuditProtocol", "params")
    assert after == (before[0], 7, before[2], before[3])
    assert chain.read("TargetRegistry", "targetCount") == targets_before + 1
    target = chain.read("TargetRegistry", "getTarget", targets_before)
    assert (target[0], target[4], target[5]) == (1, TARGET_URL, bytes.fromhex("0102abcd"))

    listed = {p["number"]: p for p in chain.ok(None, "proposals")["proposals"]}[made["number"]]
    assert listed["state"] == "Executed" and listed["votes"] == {"for": 6, "against": 2, "abstain": 0}
    assert listed["quorum"] == 2 and listed["quorum_reached"] and listed["deadline_block"] == made["deadline_block"]
    assert [a["function"].split("(")[0] for a in listed["actions"]] == ["setParams", "addTarget"]
    shown = chain.ok(None, "show", f"#{n}")
    assert {(v["voter"], v["support"], v["weight"]) for v in shown["voters"]} == {
        (addr(chain, "alice"), "for", 4), (addr(chain, "bob"), "for", 2), (addr(chain, "carol"), "against", 2)}
    assert "is already Executed" in chain.refused("bob", "execute", n)
    # A user runs the same from a shell.
    run = subprocess.run([sys.executable, "-m", "alignment_node.cli", "governance", "proposals", *chain.chain_args()],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"#{n} Executed: Committees of 7" in run.stdout and "TargetRegistry.addTarget(kind=1 (EVM_RPC)" in run.stdout


def test_a_defeated_proposal_cannot_be_queued_or_executed(chain):
    dave_votes_with_alice(chain)
    made = chain.ok("bob", "propose", "--set", "TargetRegistry.setTrapKeeper", addr(chain, "bob"),
                    "--description", "bob keeps the traps")
    n = str(made["number"])
    chain.mine()
    chain.ok("bob", "vote", n, "for")
    chain.ok("carol", "vote", n, "abstain")
    chain.ok("alice", "vote", n, "against")
    chain.mine(made["deadline_block"] - chain.anvil.block_number() + 1)
    shown = chain.ok(None, "show", n)
    assert shown["state"] == "Defeated" and shown["votes"] == {"for": 2, "against": 4, "abstain": 2}
    assert shown["quorum_reached"]  # for + abstain reach the quorum; the majority is against
    assert chain.refused("bob", "queue", n) == (f"proposal #{n} is Defeated (for 2, against 4, abstain 2, quorum 2): "
                                                "it cannot be queued")
    assert "is Defeated" in chain.refused("bob", "execute", n)
    assert "is Defeated (for 2, against 4, abstain 2, quorum 2): it cannot be voted on" in chain.refused(
        "carol", "vote", n, "for")
    assert f"had no votes at proposal #{n}'s snapshot block" in chain.refused("dave", "vote", n, "for")
    assert chain.read("TargetRegistry", "trapKeeper") == chain.manifest["deployer"]


def test_bad_arguments_are_one_line_errors_and_send_nothing(chain):
    count = len(chain.ok(None, "proposals")["proposals"])
    d = ["--description", "x", "--dry-run"]
    assert "no contract 'Nope'" in chain.refused(None, "propose", "--call", "Nope.f", *d)
    assert "AuditProtocol has no function 'setNothing'" in chain.refused(
        None, "propose", "--set", "AuditProtocol.setNothing", "x=1", *d)
    assert "no field 'committeeSiz'; its fields: revealBlocks, committeeSize, minReveals, maxCommittee" in \
        chain.refused(None, "propose", "--set", "AuditProtocol.setParams", "committeeSiz=7", *d)
    assert "not an integer: 'seven'" in chain.refused(None, "propose", "--set", "AuditProtocol.setParams",
                                                      "committeeSize=seven", *d)
    assert "out of range for uint16" in chain.refused(None, "propose", "--set", "AuditProtocol.setParams",
                                                      "committeeSize=70000", *d)
    assert "unknown target kind 'FOO'" in chain.refused(None, "propose", "--add-target", "FOO", "http://x", *d)
    assert "--identity belongs right after an --add-target" in chain.refused(None, "propose", "--identity", "0x01", *d)
    assert "takes 1 argument(s): keeper (address); got 0" in chain.refused(
        None, "propose", "--call", "TargetRegistry.setTrapKeeper", *d)
    assert "only reads" in chain.refused(None, "propose", "--call", "AuditProtocol.currentEpoch", *d)
    assert "needs at least one action" in chain.refused(None, "propose", *d)
    assert "CONTRACT.FUNCTION" in chain.refused(None, "propose", "--call", "setParams", *d)
    # A contract name stands for its address; an action that reverts today is flagged before anyone votes on it.
    flagged = chain.ok(None, "propose", "--set", "AuditProtocol.setParams", "committeeSize=20",
                       "--call", "TargetRegistry.setTrapKeeper", "Timelock", *d)
    assert "InvalidParams" in flagged["actions"][0]["would_revert"]
    assert flagged["actions"][1]["args"] == {"keeper": chain.manifest["contracts"]["Timelock"]}
    assert "there is no proposal #99" in chain.refused("bob", "vote", "99", "for")
    assert "not a proposal number or id" in chain.refused("bob", "vote", "first", "for")
    rc, _, err = cli("governance", "vote", "1", "maybe", *chain.chain_args())
    assert rc == 2 and "invalid choice: 'maybe'" in err
    # Erin holds no license: she can neither propose nor vote.
    assert "has 0 vote(s)" in chain.refused("erin", "propose", "--call", "TargetRegistry.setTrapKeeper", "Timelock",
                                            "--description", "erin's idea")
    assert len(chain.ok(None, "proposals")["proposals"]) == count
    made = chain.ok("carol", "propose", "--call", "TargetRegistry.setTrapKeeper", "Timelock",
                    "--description", "the timelock keeps the traps")
    chain.mine()
    assert f"had no votes at proposal #{made['number']}'s snapshot block" in chain.refused(
        "erin", "vote", str(made["number"]), "for")
    identical = chain.refused("bob", "propose", "--call", "TargetRegistry.setTrapKeeper", "Timelock",
                              "--description", "the timelock keeps the traps")
    assert "an identical proposal (same actions and description) already exists" in identical


def test_a_passed_action_that_reverts_fails_execute_with_its_decoded_error(chain):
    # committeeSize above maxCommittee: flagged when proposed, and the Timelock's call reverts when executed.
    made = chain.ok("carol", "propose", "--set", "AuditProtocol.setParams", "committeeSize=20",
                    "--description", "committees larger than the cap")
    assert "InvalidParams" in made["actions"][0]["would_revert"]
    n = str(made["number"])
    chain.mine()
    chain.ok("carol", "vote", n, "for")
    chain.mine(made["deadline_block"] - chain.anvil.block_number() + 1)
    queued = chain.ok("carol", "queue", n)
    chain.mine(1, seconds=queued["eta_in_s"] + 1)
    rc, out, _ = chain.gov("carol", "execute", n)
    assert rc == 1 and out["error_name"] == "InvalidParams"
    assert out["error"] == f"proposal #{n}'s actions reverted when the Timelock ran them: InvalidParams()"
    assert chain.ok(None, "show", n)["state"] == "Queued"
    assert chain.read("AuditProtocol", "params")[1] != 20
