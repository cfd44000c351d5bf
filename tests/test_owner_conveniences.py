"""Owner and operator conveniences: the node's commission auto-claim above its floor (and not below it, nor when
gas would eat it), the owner's scheduled `claim --every-epochs`, and why a license earns nothing
(node/why.py) in the owner's `status` and the node's /status, on a real anvil with the deployed contracts and
real node processes."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.config import ConfigError, load_config
from alignment_node.devnet import processes
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.node.rewards import claim_decision
from alignment_node.node.why import LicenseFacts, facts_from_view, why_not_earning

CLI = [sys.executable, "-m", "alignment_node.cli"]


# ------------------------------------------------------------------------------------- pure rules


def test_why_not_earning_names_the_first_reason_that_applies():
    E = 10
    earning = dict(state="delegated", epoch=E, listed=True, operator_present=True, claimable_wei=5)
    cases = [
        (dict(state="free", epoch=E), "not_delegated", "not delegated"),
        (dict(state="pending", epoch=E, claimable_wei=-3), "pending_approval", "pending operator approval"),
        ({**earning, "suspended_until": E + 21, "parked": True}, "suspended", f"suspended/parked until epoch {E + 21}"),
        # Suspended this epoch but still listed in it (parking takes effect from the next epoch): still suspended.
        ({**earning, "suspended_until": E + 1}, "suspended", f"suspended/parked until epoch {E + 1}"),
        ({**earning, "suspended_until": E, "parked": True, "listed": False}, "parked", None),
        ({**earning, "listed": False, "operator_present": False}, "not_listed_yet", "not listed until the next epoch"),
        ({**earning, "operator_present": False}, "operator_absent", "operator not present this epoch"),
        ({**earning, "claimable_wei": -7}, "in_debt", "in debt (penalties exceed credit: 7 wei)"),
        ({**earning, "operator_present": False, "claimable_wei": -7}, "operator_absent", None),
        (earning, "none", "none"),
        ({**earning, "claimable_wei": 0}, "none", "none"),
    ]
    for facts, code, text in cases:
        reason = why_not_earning(LicenseFacts(**facts))
        assert reason.code == code, (facts, reason)
        if text is not None:
            assert reason.text == text
    fields = why_not_earning(LicenseFacts(**{**earning, "claimable_wei": -7})).fields()
    assert fields == {"why_not_earning": "in debt (penalties exceed credit: 7 wei)", "why_not_earning_code": "in_debt",
                      "debt_wei": "7"}
    assert why_not_earning(LicenseFacts(**{**earning, "suspended_until": 30})).fields()["earning_resumes_epoch"] == 30
    with pytest.raises(AssertionError):
        why_not_earning(LicenseFacts(state="bogus", epoch=1))


def test_facts_from_the_nodes_view_use_claimable_then_the_booked_balance():
    v = {"state": "delegated", "listed": True, "parked": False, "active_now": False, "suspended_until": None,
         "balance_wei": "-4"}
    assert why_not_earning(facts_from_view(v, 3)).code == "operator_absent"
    assert why_not_earning(facts_from_view({**v, "active_now": True}, 3)).code == "in_debt"
    # Unbooked credit that pays the debt: claimable (rewards.py) wins over the booked balance.
    assert why_not_earning(facts_from_view({**v, "active_now": True, "claimable_wei": "2"}, 3)).code == "none"


def test_claim_decision_floor_and_gas_guard():
    assert claim_decision(0, 0, 0, 0.0) == (False, "nothing to claim")
    ok, why = claim_decision(99, 100, 1, 1.0)
    assert not ok and "below the floor" in why
    # Same coin (rate 1): the reward must exceed the gas cost, however low the floor.
    assert claim_decision(1000, 1, 1000, 1.0)[0] is False
    assert claim_decision(1001, 1, 1000, 1.0)[0] is True
    # Converted: 10 gas wei at 2.5 reward wei each cost 25 reward wei.
    assert claim_decision(25, 0, 10, 2.5)[0] is False and claim_decision(26, 0, 10, 2.5)[0] is True
    # Unknown rate: the floor is the only guard, and says so.
    ok, why = claim_decision(100, 100, 10**30, 0.0)
    assert ok and "only guard" in why


def test_rewards_config_section(tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('[operator]\npassword_env = "PW"\n[rewards]\nauto_claim_commission = true\n'
                   'commission_floor_wei = "100000000000000000000"\nclaim_licenses = [1, 2]\n')
    r = load_config(cfg, env={"ZG_ALIGNMENT_NODE_REWARDS_CLAIM_LICENSES": "3,5-6"}).rewards
    assert r.auto_claim_commission and r.commission_floor_wei == 10**20 and r.claim_licenses == [3, 5, 6]
    cfg.write_text('[operator]\npassword_env = "PW"\n[rewards]\nclaim_every_epochs = 0\ncommission_floor_wei = -1\n'
                   'reward_wei_per_gas_wei = -2\nclaim_licenses = [0]\nautoclaim = true\n')
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, env={})
    text = str(exc.value)
    for key in ("claim_every_epochs", "commission_floor_wei", "reward_wei_per_gas_wei", "claim_licenses",
                "rewards.autoclaim: unknown key"):
        assert key in text, key


# ------------------------------------------------------------------------------------ on a chain


def http_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.loads(resp.read()) if resp.status == 200 else {}
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def wait_until(predicate, timeout: float = 40.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def journal(op) -> list[tuple]:
    db = op.directory / "data" / "node.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT purpose, epoch, state, meta FROM tx_journal ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.fixture
def net(tmp_path):
    """One operator (10% commission) with 3 licenses of one owner, on an automining anvil."""
    plan = Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, block_time=None)
    devnet = Devnet(plan, tmp_path / "devnet", log=lambda *_: None)
    try:
        asyncio.run(devnet.setup())
        yield devnet
    finally:
        devnet.stop()


def test_commission_auto_claim_owner_schedule_and_why_not_earning(net, tmp_path):
    op = net.operators[0]
    owner = net.owners[0]
    url = net.anvil.url
    manifest_path = str(net.workdir / "deployment.json")

    async def chain(fn):
        async with RpcClient(url) as rpc:
            return await fn(manifest_contracts(rpc, net.manifest), rpc)

    def call(contract: str, fn: str, *args):
        return asyncio.run(chain(lambda c, _rpc: c[contract].call(fn, *args)))

    def go_to(epoch: int) -> None:
        start = call("AuditProtocol", "epochStartBlock", epoch)
        net.anvil.mine(max(1, start - net.anvil.block_number()))
        assert call("AuditProtocol", "currentEpoch") == epoch

    def node_log_from(offset: int) -> str:
        return (op.directory / "node.out").read_bytes()[offset:].decode(errors="replace")

    def start(rewards: str) -> int:
        """Start the node with this [rewards] section; returns where its output starts in node.out."""
        out = op.directory / "node.out"
        offset = out.stat().st_size if out.exists() else 0
        processes.start_node(op, net.node_config(op) + "[rewards]\n" + rewards)
        return offset

    def status() -> dict:
        return http_json(op.url() + "/status")

    e0 = call("AuditProtocol", "currentEpoch")
    offset = start("auto_claim_commission = true\ncommission_floor_wei = \"1000000000000000000000000000000\"\n")
    wait_until(lambda: (status().get("last_heartbeat") or {}).get("epoch") == e0, what="heartbeat in e0")
    # Next epoch: the heartbeat books e0, and with it the operator's commission, paid as its licenses are
    # credited (security finding L2): claimable with them.
    go_to(e0 + 1)
    wait_until(lambda: (status().get("last_heartbeat") or {}).get("epoch") == e0 + 1, what="heartbeat in e0+1")
    commission = call("RewardVault", "commissionClaimable", op.address, sorted(op.licenses))
    assert commission > 0
    # Below the floor: evaluated, not claimed.
    decided = f"commission not claimed in epoch {e0 + 1}: "
    wait_until(lambda: decided in node_log_from(offset), what="below-floor decision")
    assert decided + f"{commission} wei is below the floor" in node_log_from(offset)
    assert [r for r in journal(op) if r[0] == "claim_commission"] == []
    # Every license earning: listed, operator present, credit positive.
    st = wait_until(lambda: (lambda s: s if s.get("epoch") == e0 + 1 and len(s.get("licenses", {})) == 3 and all(
        v.get("why_not_earning_code") == "none" for v in s["licenses"].values()) else None)(status()),
        what="3 earning licenses in /status")
    assert all(int(v["claimable_wei"]) > 0 and v["why_not_earning"] == "none" for v in st["licenses"].values())
    net.stop_nodes()

    # Above the floor but gas, converted at a (made-up) rate that makes the gas coin dear, would eat it: no claim.
    offset = start("auto_claim_commission = true\ncommission_floor_wei = 1\nreward_wei_per_gas_wei = 1e30\n")
    wait_until(lambda: decided in node_log_from(offset), what="gas-guard decision")
    assert decided + f"{commission} wei does not exceed the gas cost" in node_log_from(offset)
    assert [r for r in journal(op) if r[0] == "claim_commission"] == []
    assert call("RewardVault", "commissionClaimable", op.address, sorted(op.licenses)) == commission
    net.stop_nodes()

    # Above the floor, gas worth 1 reward wei per wei (far less than the commission): claimed, journaled, once.
    offset = start("auto_claim_commission = true\ncommission_floor_wei = 1000\nreward_wei_per_gas_wei = 1.0\n")
    rows = wait_until(lambda: [r for r in journal(op) if r[0] == "claim_commission" and r[2] == "mined"],
                      what="commission claim mined")
    assert len(rows) == 1 and rows[0][1] == e0 + 1 and json.loads(rows[0][3])["commission_wei"] == str(commission)
    assert call("RewardVault", "commissionOf", op.address) == 0
    assert call("RewardToken", "balanceOf", op.address) == commission
    db = sqlite3.connect(op.directory / "data" / "node.sqlite")
    print("commission claim: %s gas" % db.execute(
        "SELECT gas_used FROM tx_journal WHERE purpose = 'claim_commission'").fetchone()[0])
    db.close()
    wait_until(lambda: status().get("balances", {}).get("commission_claimed_wei") == str(commission),
               what="the claim in /status")

    # ---- why a license earns nothing: suspension and debt first, then new licenses (their events make the
    # node read every license's state again).
    lic_suspended, lic_debt, lic_earning = sorted(op.licenses)
    epoch = e0 + 1

    async def penalize(c, rpc):
        protocol, vault = c["AuditProtocol"], c["RewardVault"]
        net.anvil.rpc("anvil_impersonateAccount", [protocol.address])
        net.anvil.rpc("anvil_setBalance", [protocol.address, hex(10**20)])
        # Three misses in a window suspend (and park) a license; one miss of a credited epoch (3x its credit)
        # puts another in debt.
        for ids, e in (([lic_suspended], epoch),) * 3 + (([lic_debt], e0),):
            tx = {"from": protocol.address, "to": vault.address,
                  "data": "0x" + vault.encode("penalize", ids, e, 1, "0x" + "00" * 20).hex()}
            receipt = await rpc.wait_for_receipt(net.anvil.rpc("eth_sendTransaction", [tx]), timeout=60)
            assert int(receipt["status"], 16) == 1, receipt
        net.anvil.rpc("anvil_stopImpersonatingAccount", [protocol.address])
        return (await vault.call("accounts", lic_suspended))[1], await vault.call("claimable", lic_debt)

    until, debt_claimable = asyncio.run(chain(penalize))
    assert until == epoch + 1 + 20 and debt_claimable < 0

    from alignment_node.keys import load_signer, save_key

    op_signer = load_signer(op.directory / "keystore", (op.directory / "password").read_text().strip())

    async def new_licenses(c, rpc):
        sale, registry = c["NodeSale"], c["OperatorRegistry"]
        cost = await sale.call("quote", 3)
        await sale.transact("buy", 3, cost, "", [], 0, signer=owner, value=cost)
        total = await c["AlignmentLicense"].call("totalMinted")
        pending, approved, free = total - 2, total - 1, total
        await registry.transact("delegate", [pending, approved], op.address, signer=owner)
        await registry.transact("approve", [approved], signer=op_signer)
        return pending, approved, free

    lic_pending, lic_approved, lic_free = asyncio.run(chain(new_licenses))
    expected_node = {lic_suspended: "suspended", lic_debt: "in_debt", lic_earning: "none",
                     lic_pending: "pending_approval", lic_approved: "not_listed_yet"}

    def node_reasons():
        s = status()
        got = {int(i): v.get("why_not_earning_code") for i, v in s.get("licenses", {}).items()}
        return s if got == expected_node else None

    st = wait_until(node_reasons, what=f"the node's reasons {expected_node}")
    assert st["licenses"][str(lic_suspended)]["why_not_earning"] == f"suspended/parked until epoch {until}"
    assert st["licenses"][str(lic_debt)]["debt_wei"] == str(-debt_claimable)
    assert st["licenses"][str(lic_pending)]["why_not_earning"] == "pending operator approval"

    # The owner's view (`status`, from the chain alone): the same reasons, and the free license's.
    def owner_status() -> dict:
        out = subprocess.run(CLI + ["status", "--address", owner.address, "--rpc", url, "--manifest",
                                    manifest_path, "--json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return {e["id"]: e for e in json.loads(out.stdout)["licenses_owned"]}

    owned = owner_status()
    assert {i: e["why_not_earning_code"] for i, e in owned.items()} == {**expected_node, lic_free: "not_delegated"}
    assert owned[lic_suspended]["earning_resumes_epoch"] == until
    assert owned[lic_debt]["why_not_earning"] == f"in debt (penalties exceed credit: {-debt_claimable} wei)"
    text = subprocess.run(CLI + ["status", "--address", owner.address, "--rpc", url, "--manifest", manifest_path],
                          capture_output=True, text=True, timeout=60).stdout
    assert f"license {lic_pending}: pending" in text and "earns nothing: pending operator approval" in text

    # The node stops; in the next epoch nobody heartbeats for the operator: its listed licenses earn nothing.
    net.stop_nodes()
    go_to(epoch + 1)
    owned = owner_status()
    assert owned[lic_earning]["why_not_earning_code"] == "operator_absent"
    assert owned[lic_approved]["why_not_earning_code"] == "operator_absent"  # listed now, operator absent
    assert owned[lic_suspended]["why_not_earning_code"] == "suspended"

    # ---- the owner's scheduled claim: below the floor nothing; above it, the license's credit.
    keystore = tmp_path / "owner-keystore"
    password = secrets.token_hex(8)
    save_key(keystore, owner._key.secret, password)
    env = {**os.environ, "OWNER_PW": password}
    base = ["--rpc", url, "--manifest", manifest_path, "--keystore", str(keystore), "--password-env", "OWNER_PW",
            "--json", "--interval", "0.2", "--every-epochs", "1", "--until-epoch", str(epoch + 1)]
    claimable = call("RewardVault", "claimable", lic_earning)
    assert claimable > 0
    out = subprocess.run(CLI + ["claim", str(lic_earning), "--floor", str(claimable + 1)] + base, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["claimed"] is False and "below the floor" in row["reason"] and row["epoch"] == epoch + 1
    before = call("RewardToken", "balanceOf", owner.address)
    out = subprocess.run(CLI + ["claim", str(lic_earning), "--floor", str(claimable)] + base, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["claimed"] is True and row["paid_wei"] == str(claimable)
    print(f"owner claim of 1 license: {row['gas_used']} gas")
    assert call("RewardToken", "balanceOf", owner.address) - before == claimable
    assert call("RewardVault", "claimable", lic_earning) == 0
    # The one-shot claim still works as before: a license in debt has nothing to pay.
    once = ["--rpc", url, "--manifest", manifest_path, "--keystore", str(keystore), "--password-env", "OWNER_PW",
            "--json"]
    out = subprocess.run(CLI + ["claim", str(lic_debt)] + once, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and json.loads(out.stdout)["error_name"] == "NothingToClaim"
    out = subprocess.run(CLI + ["claim"] + once, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and "rewards.claim_licenses" in json.loads(out.stdout)["error"]
    out = subprocess.run(CLI + ["claim", "3", "--floor", "5"] + once, capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 1 and "--every-epochs" in json.loads(out.stdout)["error"]
    # The operator cannot claim for the owner: refused before anything is sent.
    out = subprocess.run(CLI + ["claim", str(lic_debt), "--rpc", url, "--manifest", manifest_path, "--keystore",
                                str(op.directory / "keystore"), "--password-file", str(op.directory / "password"),
                                "--every-epochs", "1", "--until-epoch", str(epoch + 1)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "only an owner may claim" in out.stderr
