"""The node against a real chain: heartbeats, HTTP API, failover, crash safety, key hygiene, clear errors.

Each test builds a small devnet (anvil + contracts + sale + one operator) and runs real node processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import free_port
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.chain.manifest import manifest_contracts

CLI = [sys.executable, "-m", "alignment_node.cli"]


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def devnet(tmp_path):
    """One operator with 3 licenses on an automining anvil; nodes are started by each test."""
    nets = []

    def make(**plan_overrides) -> Devnet:
        plan = Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, block_time=None, **plan_overrides)
        net = Devnet(plan, tmp_path / f"devnet{len(nets)}", log=lambda *_: None)
        nets.append(net)
        asyncio.run(net.setup())
        return net

    yield make
    for net in nets:
        net.stop()


def operator_key_hex(net: Devnet) -> str:
    """The operator key's hex, recovered from its keystore the way an attacker with the password would."""
    from alignment_node.keys import load_signer

    op = net.operators[0]
    signer = load_signer(op.directory / "keystore", (op.directory / "password").read_text().strip())
    return signer._key.secret.hex()


def status(op) -> dict:
    """The node's /status, or {} while its API is not up yet."""
    code, body = http_get(op.url() + "/status")
    return json.loads(body) if code == 200 else {}


def test_help_lists_every_command():
    out = subprocess.run(CLI + ["--help"], capture_output=True, text=True, check=True).stdout
    for command in ("keys", "sale", "delegate", "undelegate", "claim", "register-operator", "approve",
                    "force-undelegate", "claim-commission", "status", "validate-config", "start", "devnet"):
        assert command in out, command
    keys_help = subprocess.run(CLI + ["keys", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(k in keys_help for k in ("new", "import", "address"))
    devnet_help = subprocess.run(CLI + ["devnet", "--help"], capture_output=True, text=True, check=True).stdout
    assert "up" in devnet_help and "scenario" in devnet_help
    scenario_help = subprocess.run(CLI + ["devnet", "scenario", "--help"], capture_output=True, text=True,
                                   check=True).stdout  # scenario descriptions go through argparse's % formatting
    from alignment_node.devnet.scenarios import SCENARIOS

    assert all(name in scenario_help for name in SCENARIOS)


def test_keys_import_then_address_json_and_the_key_appears_nowhere(tmp_path):
    key = os.urandom(32).hex()
    expected = LocalSigner(key).address
    env = {**os.environ, "KS_PW": "pw-" + os.urandom(4).hex()}
    ks = tmp_path / "ks"
    imp = subprocess.run(CLI + ["keys", "import", "--keystore", str(ks), "--password-env", "KS_PW"], input=key,
                         capture_output=True, text=True, env=env)
    assert imp.returncode == 0, imp.stderr
    out = subprocess.run(CLI + ["keys", "address", "--keystore", str(ks), "--password-env", "KS_PW", "--json"],
                         capture_output=True, text=True, env=env)
    assert json.loads(out.stdout) == {"address": expected}
    for text in (imp.stdout, imp.stderr, out.stdout, out.stderr):
        assert key not in text.lower()
    for path in ks.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes().lower()
            assert bytes.fromhex(key) not in path.read_bytes()


def test_wrong_password_and_corrupt_keystore_are_one_line_errors(tmp_path):
    env = {**os.environ, "KS_PW": "right"}
    ks = tmp_path / "ks"
    subprocess.run(CLI + ["keys", "new", "--keystore", str(ks), "--password-env", "KS_PW"], env=env, check=True,
                   capture_output=True)
    bad = subprocess.run(CLI + ["keys", "address", "--keystore", str(ks), "--password-env", "KS_PW"],
                         env={**env, "KS_PW": "wrong"}, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "wrong password" in bad.stderr
    next(ks.iterdir()).write_text("{broken")
    bad = subprocess.run(CLI + ["keys", "address", "--keystore", str(ks), "--password-env", "KS_PW"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "not an Ethereum keystore" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_validate_config_names_what_is_wrong(tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('log_level = "chatty"\n[service]\nport = 99999\n[operator]\nkeystore = "nokeys"\n'
                   'password_env = "NOPE_NOT_SET"\n')
    out = subprocess.run(CLI + ["validate-config", "--config", str(cfg), "--json"], capture_output=True, text=True)
    assert out.returncode == 1
    problems = " ".join(json.loads(out.stdout)["problems"])
    assert "log_level" in problems and "service.port" in problems


def test_node_heartbeats_once_per_epoch_serves_api_and_never_logs_its_key(devnet):
    net = devnet(log_level="debug")
    key_hex = operator_key_hex(net)
    net.start_nodes()
    op = net.operators[0]
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("licenses") == 3, what="first heartbeat")
    # The heartbeat is sent early in the first tick; /health counts a head as processed once the tick is over.
    wait_until(lambda: http_get(op.url() + "/health")[0] == 200, what="200 from /health after the first tick")
    st = status(op)
    assert sorted(int(i) for i in st["licenses"]) == sorted(op.licenses)
    assert all(v["state"] == "delegated" and v["active_now"] for v in st["licenses"].values())
    code, metrics = http_get(op.url() + "/metrics")
    text = metrics.decode()
    assert 'alignment_licenses{state="delegated"} 3.0' in text
    assert "alignment_heartbeats_total 3.0" in text
    assert "alignment_rpc_latency_seconds_bucket" in text
    # Two more epochs: one heartbeat transaction each, never two.
    for _ in range(2):
        before = status(op)["epoch"]
        net.anvil.mine(net.plan.epoch_length)
        epoch = wait_until(lambda: (status(op).get("epoch") or 0) > before and status(op)["epoch"], what="new epoch")
        wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("epoch") == epoch, what="heartbeat")
    net.anvil.mine(3)
    time.sleep(2 * net.plan.poll_interval)

    async def heartbeat_events():
        async with RpcClient(net.anvil.url) as rpc:
            protocol = manifest_contracts(rpc, net.manifest)["AuditProtocol"]
            return await protocol.events("Heartbeat", 0, "latest")

    events = asyncio.run(heartbeat_events())
    per_epoch = {}
    for ev in events:
        per_epoch[ev["epoch"]] = per_epoch.get(ev["epoch"], 0) + 1
    assert len(per_epoch) == 3 and set(per_epoch.values()) == {1}
    net.stop_nodes()
    # The key is in no log line and no file the node wrote, at debug level.
    for path in net.workdir.rglob("*"):
        if path.is_file() and "keystore" not in path.parts:
            data = path.read_bytes().lower()
            assert key_hex.encode() not in data, path
            assert bytes.fromhex(key_hex) not in data, path


def test_dead_endpoint_fails_over_and_health_says_206(devnet):
    dead = f"http://127.0.0.1:{free_port()}"
    net = devnet(dead_rpc_urls=(dead,))
    net.start_nodes()
    op = net.operators[0]
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("licenses") == 3, what="heartbeat via failover")
    code, body = wait_until(lambda: (lambda r: r if r[0] == 206 else None)(http_get(op.url() + "/health")),
                            what="206")
    reasons = json.loads(body)["reasons"]
    assert any(dead.split("//")[1] in r for r in reasons), reasons
    assert "alignment_rpc_failovers_total" in http_get(op.url() + "/metrics")[1].decode()


def test_out_of_gas_money_alerts_and_keeps_serving(devnet):
    net = devnet()
    op = net.operators[0]
    net.anvil.rpc("anvil_setBalance", [op.address, "0x0"])
    net.start_nodes()
    code, body = wait_until(lambda: (lambda r: r if r[0] == 206 else None)(http_get(op.url() + "/health")),
                            what="206 for lack of gas money")
    reasons = " ".join(json.loads(body)["reasons"])
    assert "cannot pay gas" in reasons or "below" in reasons
    out = (op.directory / "node.out").read_text()
    assert "CRITICAL" in out and "ALERT" in out
    assert http_get(op.url() + "/status")[0] == 200
    # Funded again, it heartbeats and recovers to 200.
    net.anvil.rpc("anvil_setBalance", [op.address, hex(10**20)])
    net.anvil.mine(1)
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("licenses") == 3, what="heartbeat after funding")


def test_reverted_transaction_reports_the_custom_error_name(devnet):
    net = devnet()
    op = net.operators[0]
    cfg = op.directory / "cli.toml"
    cfg.write_text(f'[chain]\nrpc_urls = ["{net.anvil.url}"]\nmanifest = "../deployment.json"\n'
                   '[operator]\nkeystore = "keystore"\npassword_file = "password"\n')
    # The licenses are already Delegated, so approving them again must fail with NotPending.
    out = subprocess.run(CLI + ["approve", str(op.licenses[0]), "--config", str(cfg), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["error_name"] == "NotPending"
    assert "NotPending" in out.stderr  # also in the log
    text = subprocess.run(CLI + ["register-operator", "6000", "--config", str(cfg)], capture_output=True, text=True)
    assert text.returncode == 1 and "AlreadyRegistered" in text.stderr


def test_owner_and_operator_commands_round_trip(devnet):
    net = devnet()
    op = net.operators[0]
    cfg = op.directory / "cli.toml"
    cfg.write_text(f'[chain]\nrpc_urls = ["{net.anvil.url}"]\nmanifest = "../deployment.json"\n'
                   '[operator]\nkeystore = "keystore"\npassword_file = "password"\n')
    sale = json.loads(subprocess.run(CLI + ["sale", "status", "--config", str(cfg), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert sale["sold"] == 3 and sale["phase"] == "public" and sale["price_wei"] == str(10**17)
    # The operator buys 2 licenses itself, delegates them to itself, and sees them in status.
    bought = json.loads(subprocess.run(CLI + ["sale", "buy", "2", "--config", str(cfg), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert bought["license_ids"] == [4, 5] and bought["cost_wei"] == str(2 * 10**17)
    subprocess.run(CLI + ["delegate", "4,5", op.address, "--config", str(cfg), "--json"], check=True,
                   capture_output=True)
    st = json.loads(subprocess.run(CLI + ["status", "--config", str(cfg), "--json"], capture_output=True, text=True,
                                   check=True).stdout)
    assert [e["id"] for e in st["licenses_owned"]] == [4, 5]
    assert st["operator"]["delegated"] == 5 and st["operator"]["commission_bps"] == 1000
    subprocess.run(CLI + ["force-undelegate", "5", "--config", str(cfg)], check=True, capture_output=True)
    subprocess.run(CLI + ["undelegate", "4", "--config", str(cfg)], check=True, capture_output=True)
    st = json.loads(subprocess.run(CLI + ["status", "--config", str(cfg), "--json"], capture_output=True, text=True,
                                   check=True).stdout)
    assert st["operator"]["delegated"] == 3 and all(e["state"] == "free" for e in st["licenses_owned"])
    nothing = subprocess.run(CLI + ["claim-commission", "--config", str(cfg), "--json"], capture_output=True,
                             text=True)
    assert nothing.returncode == 1 and json.loads(nothing.stdout)["error_name"] == "NothingToClaim"


def journal_rows(op) -> list[tuple]:
    db = op.directory / "data" / "node.sqlite"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT purpose, epoch, nonce, tx_hash, state FROM tx_journal ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_sigkill_between_signing_and_receipt_neither_double_sends_nor_forgets(devnet):
    net = devnet()
    op = net.operators[0]
    net.anvil.rpc("evm_setAutomine", [False])  # transactions wait in the mempool until we mine
    nonce_before = int(net.anvil.rpc("eth_getTransactionCount", [op.address, "latest"]), 16)
    net.start_nodes()
    rows = wait_until(lambda: [r for r in journal_rows(op) if r[4] == "sent"], what="a sent, unmined heartbeat")
    os.kill(op.process.pid, signal.SIGKILL)
    op.process.wait()
    assert len(rows) == 1
    tx_hash = rows[0][3]
    net.start_nodes()  # restart: it must find the journal entry and not sign a second heartbeat
    time.sleep(3)
    net.anvil.mine(1)
    wait_until(lambda: any(r[3] == tx_hash and r[4] == "mined" for r in journal_rows(op)), what="journal mined")
    net.anvil.mine(2)
    time.sleep(2)
    nonce_after = int(net.anvil.rpc("eth_getTransactionCount", [op.address, "latest"]), 16)
    assert nonce_after == nonce_before + 1, "exactly one transaction from the operator"
    assert [r[0] for r in journal_rows(op)] == ["heartbeat"]
    receipt = net.anvil.rpc("eth_getTransactionReceipt", [tx_hash])
    assert receipt is not None and receipt["status"] == "0x1"


def test_journal_recovery_rebroadcasts_a_signed_but_unsent_transaction(devnet, tmp_path):
    """The crash window before broadcast: the entry is journaled, the process dies, nothing reached the chain."""
    from alignment_node.chain.contracts import TxOptions, build_transaction
    from alignment_node.keys import load_signer
    from alignment_node.node.store import Store
    from alignment_node.node.txsender import TxSender

    net = devnet()
    op = net.operators[0]
    signer = load_signer(op.directory / "keystore", (op.directory / "password").read_text().strip())

    async def go():
        async with RpcClient(net.anvil.url) as rpc:
            protocol = manifest_contracts(rpc, net.manifest)["AuditProtocol"]
            store = Store(tmp_path / "journal.sqlite")
            nonce = await rpc.get_transaction_count(signer.address, "pending")
            signed = await build_transaction(rpc, signer, protocol.address,
                                             protocol.encode("heartbeat"),
                                             TxOptions(nonce=nonce))
            store.record_signed(nonce, "heartbeat", 0, signed.hash, signed.raw)
            # "restart": a new sender on the same journal
            sender = TxSender(rpc, signer, store)
            await sender.recover()
            assert store.entry(signed.hash).state == "mined"
            again = await sender.recover()
            assert again == []
            return nonce, await rpc.get_transaction_count(signer.address, "latest")

    nonce, after = asyncio.run(go())
    assert after == nonce + 1


def test_presence_scenario_credits_every_license_every_epoch(tmp_path):
    out = subprocess.run(CLI + ["devnet", "scenario", "presence", "--epochs", "2", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["scenario"] == "presence" and len(report["epochs"]) == 2
    assert report["licenses"] and all(not lic["missing_epochs"] for lic in report["licenses"])
    assert all(lic["penalties"] == 0 for lic in report["licenses"])
    assert report["leftover_processes"] == []
    for op in report["operators"]:
        assert op["rss_kb_max"] is not None and op["rss_kb_max"] <= 65536, op
        assert op["heartbeats"] >= 2
        # Commission: the operator's share of its licenses' credits, at its own rate.
        mine = [lic for lic in report["licenses"] if lic["operator"] == op["address"]]
        assert int(op["commission_wei"]) > 0 and len(mine) == op["licenses"]
    rates = {op["address"]: op["commission_bps"] for op in report["operators"]}
    per_license = {}
    for lic in report["licenses"]:
        per_license.setdefault(lic["operator"], set()).add(lic["credited"])
    # Same epochs, same budget split: a higher commission leaves less to the license.
    ordered = sorted(rates, key=rates.get)
    credits = [max(int(c) for c in per_license[a]) for a in ordered]
    assert credits == sorted(credits, reverse=True)


def test_license_view_survives_a_reorg(devnet):
    """A delegation mined in blocks that a reorg removes disappears from the node's view; one re-mined in the
    new chain appears. The node reads candidates from events and trusts only eth_call state."""
    net = devnet()
    op = net.operators[0]
    net.start_nodes()
    def delegated() -> set[int]:
        return {int(i) for i, v in status(op).get("licenses", {}).items() if v["state"] == "delegated"}

    wait_until(lambda: len(delegated()) == 3, what="3 licenses")
    owner = net.owners[0]

    async def delegate_two_more():
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            cost = await c["NodeSale"].call("quote", 2)
            await c["NodeSale"].transact("buy", 2, cost, "", [], 0, signer=owner, value=cost)
            total = await c["AlignmentLicense"].call("totalMinted")
            ids = [total - 1, total]
            await c["OperatorRegistry"].transact("delegate", ids, op.address, signer=owner)
            return ids

    new_ids = asyncio.run(delegate_two_more())
    net.anvil.mine(1)
    wait_until(lambda: {int(i) for i, v in status(op).get("licenses", {}).items() if v["state"] == "pending"}
               == set(new_ids), what="the new licenses seen as pending")
    assert len(delegated()) == 3
    # Pending licenses are not delegated: they are not in the view. Approve them, then reorg the approval away.
    signer = __import__("alignment_node.keys", fromlist=["load_signer"]).load_signer(
        op.directory / "keystore", (op.directory / "password").read_text().strip())

    async def approve():
        async with RpcClient(net.anvil.url) as rpc:
            c = manifest_contracts(rpc, net.manifest)
            await c["OperatorRegistry"].transact("approve", new_ids, signer=signer)

    asyncio.run(approve())
    net.anvil.mine(1)
    wait_until(lambda: len(delegated()) == 5, what="5 licenses after approve")
    net.anvil.rpc("anvil_reorg", [2, []])  # replace the approval block and the one after it by empty ones
    net.anvil.mine(1)
    wait_until(lambda: len(delegated()) == 3, what="back to 3 after the reorg")


def test_a_suspended_license_is_parked_then_resumed_by_the_node_in_the_epoch_before_its_suspension_ends(devnet):
    """Issue 16: a suspension parks the license (off the list from the next epoch, still Delegated); the node lists
    it again with one resume transaction in the last epoch of the suspension, so it is active again in the first
    epoch it may be."""
    net = devnet()
    op = net.operators[0]
    lic = sorted(op.licenses)[0]

    async def chain(fn):
        async with RpcClient(net.anvil.url) as rpc:
            return await fn(manifest_contracts(rpc, net.manifest))

    async def rpc_wait(tx_hash: str) -> dict:
        async with RpcClient(net.anvil.url) as rpc:
            return await rpc.wait_for_receipt(tx_hash, timeout=60)

    async def suspend(c):
        # The AuditProtocol penalizes; impersonated here, three misses in a window suspend the license.
        protocol, vault = c["AuditProtocol"], c["RewardVault"]
        epoch = await protocol.call("currentEpoch")
        net.anvil.rpc("anvil_impersonateAccount", [protocol.address])
        net.anvil.rpc("anvil_setBalance", [protocol.address, hex(10**20)])
        for _ in range(3):
            tx = {"from": protocol.address, "to": vault.address,
                  "data": "0x" + vault.encode("penalize", [lic], epoch, 1, "0x" + "00" * 20).hex()}
            # anvil's automine answers before the block is mined: wait for each receipt
            receipt = await rpc_wait(net.anvil.rpc("eth_sendTransaction", [tx]))
            assert int(receipt["status"], 16) == 1, receipt
        net.anvil.rpc("anvil_stopImpersonatingAccount", [protocol.address])
        return epoch, (await vault.call("accounts", lic))[1]

    epoch, until = asyncio.run(chain(suspend))
    assert until == epoch + 1 + 20 and asyncio.run(chain(lambda c: c["OperatorRegistry"].call("isParked", lic)))
    net.start_nodes()
    wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("epoch") == epoch, what="heartbeat")

    def view(epoch_: int) -> dict:
        st = status(op)
        return st["licenses"][str(lic)] if st.get("epoch") == epoch_ and st.get("licenses") else None

    def go_to(epoch_: int) -> None:
        start = asyncio.run(chain(lambda c: c["AuditProtocol"].call("epochStartBlock", epoch_)))
        net.anvil.mine(max(1, start - net.anvil.block_number()))
        # Many epochs mined at once: the node catches up epoch by epoch (slower on a loaded machine).
        wait_until(lambda: (status(op).get("last_heartbeat") or {}).get("epoch") == epoch_, timeout=90,
                   what=f"epoch {epoch_}")

    # The next epoch: parked, off the list, not active; the other licenses are (listed count 2).
    go_to(epoch + 1)
    v = wait_until(lambda: (lambda x: x if x and x["parked"] else None)(view(epoch + 1)), what="parked view")
    assert not v["listed"] and not v["active_now"] and v["suspended_until"] == until
    assert status(op)["last_heartbeat"]["licenses"] == 2
    # Two epochs before the end: too early to resume (it would revert StillSuspended), nothing is sent.
    go_to(until - 2)
    time.sleep(3 * net.plan.poll_interval)
    assert [r for r in journal_rows(op) if r[0] == "resume"] == []
    # The last epoch of the suspension: one resume, and the license is listed again from the next epoch.
    go_to(until - 1)
    rows = wait_until(lambda: [r for r in journal_rows(op) if r[0] == "resume" and r[4] == "mined"], what="resume")
    assert len(rows) == 1 and rows[0][1] == until - 1
    go_to(until)
    v = wait_until(lambda: (lambda x: x if x and x["active_now"] else None)(view(until)), what="active again")
    assert v["listed"] and not v["parked"] and v["suspended_until"] is None
    assert status(op)["last_heartbeat"]["licenses"] == 3
    assert asyncio.run(chain(lambda c: c["RewardVault"].call("isActive", lic, until)))
    assert len([r for r in journal_rows(op) if r[0] == "resume"]) == 1
