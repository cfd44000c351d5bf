"""The portal in a real browser: Debian's chromium driven by Playwright, with a test wallet injected into the page.

The wallet implements EIP-1193 ``request()`` by forwarding JSON-RPC to anvil, whose development accounts are
unlocked, so anvil signs ``eth_sendTransaction`` for them. One small devnet serves every test: anvil mining a
block every 0.25 s, short epochs, the contracts, a devnet operator with 3 licenses and two EVM targets (one down),
plus a test operator that is anvil's development account 1, run by a real node process whose API serves the
portal. Every test checks the chain with eth_call / receipts, not only the page. Screenshots go to
tests/artifacts/portal/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alignment_node.chain.artifacts import load_artifact
from alignment_node.chain.keccak import keccak256
from alignment_node.chain.tx import LocalSigner
from alignment_node.devnet.anvil import AnvilError, find_anvil, free_port
from alignment_node.devnet.network import Devnet, OperatorProc, Plan
from alignment_node.keys import save_key
from test_node import wait_until  # a sibling test module

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "portal"
BUNDLE = Path(__file__).resolve().parents[1] / "alignment_node" / "api" / "portal" / "portal.js"
ZERO = "0x" + "00" * 20
OPERATOR_BPS = 2000

# The test wallet. __OPTIONS__ becomes {rpc, account, chainId, realChainId, switchable}.
PROVIDER_JS = r"""
(() => {
  const opts = __OPTIONS__;
  const listeners = {};
  const state = { account: opts.account, chainId: opts.chainId, switchable: opts.switchable, connected: false,
                  rejectNext: false, sent: [] };
  let nextId = 1;
  const fail = (code, message, data) => { const e = new Error(message); e.code = code; if (data !== undefined) e.data = data; return e; };
  const emit = (event, value) => (listeners[event] || []).slice().forEach((fn) => fn(value));
  async function forward(method, params) {
    const resp = await fetch(opts.rpc, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: params || [] }) });
    const body = await resp.json();
    if (body.error) throw fail(body.error.code, body.error.message, body.error.data);
    return body.result;
  }
  window.__wallet = { state, emit };
  window.ethereum = {
    isTestWallet: true,
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); return this; },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); return this; },
    async request({ method, params }) {
      switch (method) {
        case "eth_requestAccounts": state.connected = true; return [state.account];
        case "eth_accounts": return state.connected ? [state.account] : [];
        case "eth_chainId": return "0x" + state.chainId.toString(16);
        case "wallet_switchEthereumChain": {
          if (!state.switchable) throw fail(4001, "User rejected the request.");
          const wanted = parseInt(params[0].chainId, 16);
          if (wanted !== opts.realChainId) throw fail(4902, "Unrecognized chain ID");
          state.chainId = wanted;
          emit("chainChanged", params[0].chainId);
          return null;
        }
        case "eth_sendTransaction": {
          if (state.rejectNext) { state.rejectNext = false; throw fail(4001, "User rejected the request."); }
          if (state.chainId !== opts.realChainId) throw fail(4901, "the wallet is on another chain");
          const hash = await forward(method, [{ ...params[0], from: state.account }]);
          state.sent.push(hash);
          return hash;
        }
        default: return forward(method, params);
      }
    },
  };
})();
"""


# ------------------------------------------------------------------------------------------- chain helpers


class ChainReader:
    """Synchronous eth_call / transactions against the devnet's anvil (the test's own view of the chain)."""

    def __init__(self, net: Devnet):
        self.net = net
        self.addresses = net.manifest["contracts"]
        self.abis = {name: load_artifact(name).contract_abi for name in self.addresses if name != "Timelock"}

    def call(self, contract: str, fn: str, *args):
        data = self.abis[contract].encode_call(fn, *args)
        out = self.net.anvil.rpc("eth_call", [{"to": self.addresses[contract], "data": "0x" + data.hex()}, "latest"])
        return self.abis[contract].decode_result(fn, bytes.fromhex(out[2:]), len(args))

    def send(self, sender: str, contract: str, fn: str, *args) -> dict:
        """A transaction from one of anvil's unlocked accounts; returns its successful receipt."""
        data = self.abis[contract].encode_call(fn, *args)
        tx = {"from": sender, "to": self.addresses[contract], "data": "0x" + data.hex()}
        # headroom over the estimate: a transaction that lands in the next epoch also rolls the ended one's budget
        gas = int(self.net.anvil.rpc("eth_estimateGas", [tx]), 16)
        tx_hash = self.net.anvil.rpc("eth_sendTransaction", [{**tx, "gas": hex(gas * 3 // 2 + 100_000)}])
        receipt = wait_until(lambda: self.net.anvil.rpc("eth_getTransactionReceipt", [tx_hash]), 20, f"{fn} mined")
        assert receipt["status"] == "0x1", f"{contract}.{fn} reverted"
        return receipt

    def nonce(self, address: str) -> int:
        return int(self.net.anvil.rpc("eth_getTransactionCount", [address, "latest"]), 16)

    def events(self, contract: str, name: str, receipt: dict | None = None) -> list[dict]:
        """Decoded events of `name`: of one receipt, or every one since deployment."""
        ev = self.abis[contract].event(name)
        topic = "0x" + ev.topic.hex()
        if receipt is not None:
            logs = [log for log in receipt["logs"] if log["address"].lower() == self.addresses[contract].lower()]
        else:
            logs = self.net.anvil.rpc("eth_getLogs", [{"address": self.addresses[contract], "topics": [topic],
                                                       "fromBlock": hex(int(self.net.manifest["deployBlock"]))}])
        return [ev.decode([bytes.fromhex(t[2:]) for t in log["topics"]], bytes.fromhex(log["data"][2:]))
                for log in logs if log["topics"][0] == topic]


def http_get(url: str) -> tuple[int | None, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return None, {}, b""


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (scripts/install.sh does it as root)")
    pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]' installs playwright")
    assert BUNDLE.is_file(), f"{BUNDLE} is not built: run scripts/install.sh"
    plan = Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, block_time=0.25, epoch_length=20,
                reveal_blocks=10, poll_interval=0.25, audit_deadline_s=1.0, targets=("honest", "down"))
    net = Devnet(plan, tmp_path_factory.mktemp("portal"), log=lambda *_: None)
    try:
        asyncio.run(net.setup())
        # The test operator: anvil's development account 1 (unlocked in anvil, so the page's wallet can act for it),
        # registered here and run by a real node process from a keystore holding the same key.
        key = net.anvil.private_keys[1]
        signer = LocalSigner(key)
        assert signer.address.lower() == net.anvil.accounts[1].lower()
        ChainReader(net).send(signer.address, "OperatorRegistry", "registerOperator", OPERATOR_BPS, "portal test operator")
        d = net.workdir / "operator-portal"
        (d / "keystore").mkdir(parents=True)
        save_key(d / "keystore", signer._key.secret, net._password)
        (d / "password").write_text(net._password + "\n")
        net.operators.append(OperatorProc(signer.address, OPERATOR_BPS, d, free_port()))
        net.start_nodes()
        wait_until(lambda: http_get(net.operators[1].url() + "/status")[0] == 200, 30, "the test operator's node API")
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def chain(net) -> ChainReader:
    return ChainReader(net)


@pytest.fixture(scope="module")
def browser(net):
    yield from chromium(ARTIFACTS)


def chromium(artifacts):
    """Debian's chromium through Playwright, headless; ``artifacts`` (screenshots) emptied first."""
    from playwright.sync_api import sync_playwright

    if artifacts.exists():
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def portal_url(net: Devnet) -> str:
    return net.operators[1].url() + "/portal"


def open_portal(browser, net: Devnet, account: str, tab: str = "owner", chain_id: int | None = None,
                switchable: bool = True, connect: bool = True):
    """A fresh browser context whose wallet holds `account`; the portal opened on `tab` (and connected)."""
    real = int(net.manifest["chainId"])
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    options = {"rpc": net.anvil.url, "account": account, "chainId": chain_id or real, "realChainId": real,
               "switchable": switchable}
    context.add_init_script(script=PROVIDER_JS.replace("__OPTIONS__", json.dumps(options)))
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(f"{portal_url(net)}#{tab}")
    page.wait_for_selector("#tabs")
    if connect:
        page.click("#connect")
    return page


def status_after(page, kind: str, contains: str, timeout: float = 30_000) -> str:
    """Wait until the status line is of `kind` and contains `contains`; returns its text."""
    page.wait_for_function(
        "([kind, text]) => { const el = document.getElementById('status');"
        " return el && el.dataset.kind === kind && el.textContent.includes(text); }",
        arg=[kind, contains], timeout=timeout)
    return page.inner_text("#status")


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --------------------------------------------------------------------------------------------------- tests


def test_node_serves_the_portal_with_its_config(net):
    node = net.operators[1]
    code, headers, body = http_get(node.url() + "/portal")
    assert code == 200 and headers["Content-Type"].startswith("text/html") and b"/portal/portal.js" in body
    code, headers, body = http_get(node.url() + "/portal/portal.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript") and len(body) > 10_000
    code, headers, _ = http_get(node.url() + "/portal/portal.css")
    assert code == 200 and headers["Content-Type"].startswith("text/css")
    code, headers, body = http_get(node.url() + "/portal/config.json")
    assert code == 200 and headers["Content-Type"] == "application/json"
    cfg = json.loads(body)
    assert cfg["chainId"] == net.manifest["chainId"] and cfg["deployBlock"] == net.manifest["deployBlock"]
    assert cfg["rpcUrls"] == [net.anvil.url]
    assert cfg["operator"] == node.address
    for name, address in cfg["contracts"].items():
        assert net.manifest["contracts"][name] == address
        assert any(item.get("type") == "error" for item in cfg["abis"][name]) or name == "RewardToken"
    assert http_get(node.url() + "/portal/nothing.js")[0] == 404
    code, _, body = http_get(node.url() + "/transactions")
    assert code == 200 and isinstance(json.loads(body)["transactions"], list)


def test_owner_buys_delegates_operator_approves_epochs_pass_owner_claims(net, chain, browser):
    owner = net.anvil.accounts[2]
    operator = net.operators[1].address
    page = open_portal(browser, net, owner)
    page.wait_for_selector("#connected")
    page.wait_for_selector("#sale")
    shot(page, "owner-connected")

    # Buy one license.
    minted = chain.call("AlignmentLicense", "totalMinted")
    page.fill("#buy-qty", "1")
    page.click("#buy")
    text = status_after(page, "success", "Bought license")
    license_id = minted + 1
    assert f"#{license_id}" in text
    assert chain.call("AlignmentLicense", "ownerOf", license_id).lower() == owner.lower()
    receipt = net.anvil.rpc("eth_getTransactionReceipt", [page.get_attribute("#status", "data-tx")])
    assert receipt["from"].lower() == owner.lower() and receipt["status"] == "0x1"

    # Delegate it to the test operator: pending until the operator approves.
    row = f'#licenses tr[data-license="{license_id}"]'
    page.wait_for_selector(row)
    page.check(f"{row} input[type=checkbox]")
    page.select_option("#delegate-operator", operator)
    page.click("#delegate")
    status_after(page, "success", "pending until the operator approves")
    assert chain.call("OperatorRegistry", "delegationOf", license_id) == (operator, 1)
    page.wait_for_selector(f'{row}[data-state="pending"]')
    assert "pending approval by" in page.inner_text(f"{row} td.state")
    shot(page, "owner-pending")

    # The operator, in its own browser, approves it.
    op_page = open_portal(browser, net, operator, tab="operator")
    op_row = f'#pending tr[data-license="{license_id}"]'
    op_page.wait_for_selector(op_row)
    op_page.check(f"{op_row} input[type=checkbox]")
    op_page.click("#approve")
    status_after(op_page, "success", f"Approved license #{license_id}")
    assert chain.call("OperatorRegistry", "delegationOf", license_id) == (operator, 2)
    op_page.wait_for_selector(f'#served tr[data-license="{license_id}"]')

    # Epochs pass: the license is listed under the operator from the next epoch, whose heartbeat makes it active;
    # once that epoch ends its credit is claimable.
    wait_until(lambda: chain.call("RewardVault", "lastActivePlus1", license_id) > 0, 60, "the node's heartbeat")
    wait_until(lambda: chain.call("RewardVault", "claimable", license_id) > 0, 40, "claimable credit")
    page.click('#tabs button[data-tab="owner"]')  # refreshes the view
    page.wait_for_selector("#claim:not([disabled])")
    shot(page, "owner-claimable")
    balance_before = chain.call("RewardToken", "balanceOf", owner)
    page.click("#claim")
    text = status_after(page, "success", "Claimed")
    receipt = net.anvil.rpc("eth_getTransactionReceipt", [page.get_attribute("#status", "data-tx")])
    (claimed,) = chain.events("RewardVault", "Claimed", receipt)
    assert claimed["owner"].lower() == owner.lower() and license_id in claimed["tokenIds"]
    balance_after = chain.call("RewardToken", "balanceOf", owner)
    assert claimed["amount"] > 0 and balance_after - balance_before == claimed["amount"]
    assert chain.call("AlignmentLicense", "ownerOf", license_id).lower() == owner.lower()
    assert chain.call("OperatorRegistry", "delegationOf", license_id) == (operator, 2)
    assert chain.call("RewardToken", "symbol") in text
    shot(page, "owner-claimed")

    # The commission the operator earned on that license, at its own rate, as its page shows it.
    (index, _bps) = chain.call("OperatorRegistry", "operatorIndexOf", operator)
    credits = [c for c in chain.events("RewardVault", "Credited") if c["tokenId"] == license_id]
    assert credits and all(c["operatorIndex"] == index for c in credits)
    booked = [b for b in chain.events("RewardVault", "OperatorBooked") if b["operator"].lower() == operator.lower()]
    assert booked
    for b in booked:  # per present epoch: the commission of every license it served, at its own rate
        per_license_commission = b["commission"] // b["licenses"]
        assert b["commission"] % b["licenses"] == 0
        assert per_license_commission == (b["perLicense"] + per_license_commission) * OPERATOR_BPS // 10_000
    assert chain.call("RewardVault", "commissionOf", operator) > 0
    op_page.click('#tabs button[data-tab="operator"]')
    op_page.wait_for_function("() => /Claimable: [1-9]/.test(document.getElementById('commission')?.textContent || '')")
    op_page.wait_for_selector("#claim-commission:not([disabled])")
    assert "Health:" in op_page.inner_text("#node-health")
    op_page.wait_for_selector("#node-txs")  # the node's own journal: its heartbeats
    assert "heartbeat" in op_page.inner_text("#node-txs")
    shot(op_page, "operator")
    assert not page.errors and not op_page.errors, page.errors + op_page.errors
    page.context.close()
    op_page.context.close()


def test_rejections_and_reverts_are_sentences_and_nothing_reaches_the_chain(net, chain, browser):
    owner = net.anvil.accounts[3]
    stranger = net.anvil.accounts[5]  # not an operator
    operator = net.operators[1].address
    page = open_portal(browser, net, owner)
    page.wait_for_selector("#connected")
    nonce = chain.nonce(owner)
    minted = chain.call("AlignmentLicense", "totalMinted")

    # The wallet refuses to sign.
    page.evaluate("window.__wallet.state.rejectNext = true")
    page.click("#buy")
    status_after(page, "error", "You rejected the signature in your wallet")
    shot(page, "error-rejected")
    assert chain.nonce(owner) == nonce and chain.call("AlignmentLicense", "totalMinted") == minted

    page.click("#buy")
    status_after(page, "success", "Bought license")
    license_id = minted + 1
    assert chain.call("AlignmentLicense", "ownerOf", license_id).lower() == owner.lower()
    nonce += 1

    # A revert, decoded before anything is signed: delegating to an address that is not an operator.
    row = f'#licenses tr[data-license="{license_id}"]'
    page.wait_for_selector(row)
    page.check(f"{row} input[type=checkbox]")
    page.fill("#delegate-other", stranger)
    page.click("#delegate")
    text = status_after(page, "error", "OperatorRegistry: NotRegistered")
    assert stranger.lower() in text.lower() and "not a registered operator" in text
    shot(page, "error-reverted")
    assert chain.call("OperatorRegistry", "delegationOf", license_id) == (ZERO, 0)
    assert chain.nonce(owner) == nonce

    # A stale page: the operator selects a pending license that its owner takes back before the click.
    page.fill("#delegate-other", "")
    page.select_option("#delegate-operator", operator)
    page.check(f"{row} input[type=checkbox]")
    page.click("#delegate")
    status_after(page, "success", "pending until the operator approves")
    op_page = open_portal(browser, net, operator, tab="operator")
    op_row = f'#pending tr[data-license="{license_id}"]'
    op_page.wait_for_selector(op_row)
    op_page.check(f"{op_row} input[type=checkbox]")  # a focused input also pauses the page's auto-refresh
    chain.send(owner, "OperatorRegistry", "undelegate", [license_id])
    op_page.click("#approve")
    text = status_after(op_page, "error", "OperatorRegistry: NotPending")
    assert f"tokenId {license_id}" in text and "no longer pending" in text
    shot(op_page, "error-stale-approve")
    assert chain.call("OperatorRegistry", "delegationOf", license_id) == (ZERO, 0)
    approvals = [e for e in chain.events("OperatorRegistry", "LicenseStateChanged")
                 if e["tokenId"] == license_id and e["state"] == 2]
    assert approvals == []
    assert not page.errors and not op_page.errors, page.errors + op_page.errors
    page.context.close()
    op_page.context.close()


def test_wrong_chain_then_switch_and_rpc_down_are_sentences(net, chain, browser):
    owner = net.anvil.accounts[4]
    real = int(net.manifest["chainId"])
    page = open_portal(browser, net, owner, chain_id=1, switchable=False)
    text = status_after(page, "error", "Wrong chain")
    assert f"your wallet is on chain 1, but this network is chain {real}" in text and "declined" in text
    page.wait_for_selector("#switch-chain")
    assert page.is_disabled("#buy")  # nothing can be sent from the wrong chain
    shot(page, "error-wrong-chain")

    page.evaluate("window.__wallet.state.switchable = true")
    page.click("#switch-chain")
    status_after(page, "success", f"chain {real} now")
    page.wait_for_selector("#connected")
    page.wait_for_selector("#buy:not([disabled])")
    assert chain.nonce(owner) == 0  # the account never sent anything
    page.context.close()

    # The chain's RPC endpoint does not answer: the view says so instead of going blank.
    context = browser.new_context()
    page = context.new_page()
    page.route(lambda url: url.startswith(net.anvil.url), lambda route: route.abort())
    page.goto(portal_url(net) + "#network")
    page.wait_for_selector(".load-error", timeout=30_000)
    assert "RPC endpoint does not answer" in page.inner_text(".load-error")
    assert "No wallet found" in page.inner_text("#status")
    shot(page, "error-rpc-down")
    context.close()


def test_network_tab_shows_flags_with_evidence_links_and_the_chart(net, chain, browser):
    down = next(t for t in net.targets if t.mode == "down")
    wait_until(lambda: chain.events("AuditProtocol", "ViolationFlagged"), 60, "a flagged violation")
    before = chain.events("AuditProtocol", "ViolationFlagged")
    page = open_portal(browser, net, net.anvil.accounts[2], tab="network", connect=False)
    page.wait_for_selector("#violations a")
    page.wait_for_selector("#chart")
    after = chain.events("AuditProtocol", "ViolationFlagged")
    roots = {"0x" + e["evidenceRoot"].hex() for e in after}
    links = page.eval_on_selector_all("#violations a", "els => els.map((a) => a.getAttribute('href'))")
    assert links and all(link.startswith("/evidence/0x") and link.split("/")[-1] in roots for link in links)
    # The bundle behind a link is the one committed on chain: its keccak256 is the root.
    root = links[0].split("/")[-1]
    code, headers, body = http_get(net.operators[1].url() + links[0])
    if code == 404:  # the root is one agreeing auditor's: maybe the devnet operator's node holds it
        code, headers, body = http_get(net.operators[0].url() + links[0])
    assert code == 200 and "0x" + keccak256(body).hex() == root
    # The chart: flagged violations per epoch as the chain has them, active licenses of an ended epoch.
    flagged = sum(int(v) for v in page.eval_on_selector_all("#chart rect.bar[data-epoch]",
                                                           "els => els.map((r) => r.dataset.flagged)"))
    assert len(before) <= flagged <= len(after)
    dots = page.eval_on_selector_all("#chart circle[data-epoch]", "els => els.map((c) => [c.dataset.epoch, c.dataset.active])")
    ended = [(int(e), int(a)) for e, a in dots][:-1]
    assert ended and all(chain.call("RewardVault", "activeCount", e) == a for e, a in ended)
    assert max(a for _, a in ended) >= 3
    # The down target's latest outcome.
    page.wait_for_selector(f'#targets tr[data-target="{down.id}"] td.outcome-UNREACHABLE')
    shot(page, "network")
    assert not page.errors, page.errors
    page.context.close()


def test_portal_routes_say_what_is_missing(tmp_path, monkeypatch):
    """No bundle: the page says how to build it. A manifest the portal cannot use: config.json says why (503)."""
    import alignment_node.api.portal as portal

    (tmp_path / "index.html").write_text("<p id=status></p>")
    monkeypatch.setattr(portal, "PORTAL_DIR", tmp_path)
    manifest = {"chainId": 31337, "deployBlock": 1, "contracts": {"NodeSale": "0x" + "11" * 20}}
    routes = portal.portal_routes(manifest, ["http://user:secret@127.0.0.1:8545"], "0x" + "22" * 20)
    code, ctype, body = routes["/portal/"]("/portal/portal.js")
    assert code == 200 and ctype.startswith("text/javascript") and b"run scripts/install.sh" in body
    code, _, body = routes["/portal/"]("/portal/config.json")
    assert code == 503 and b"lacks AlignmentLicense" in body
    assert routes["/portal"]("/portal")[0] == 200 and routes["/portal/"]("/portal/../../etc/passwd")[0] == 404
    full = {**manifest, "contracts": {name: "0x" + "11" * 20 for name in portal.ABI_CONTRACTS}}
    cfg = json.loads(portal.portal_routes(full, ["http://user:secret@127.0.0.1:8545"], "0x" + "22" * 20)["/portal/"](
        "/portal/config.json")[2])
    assert cfg["rpcUrls"] == ["http://127.0.0.1:8545"]  # credentials never reach the page
