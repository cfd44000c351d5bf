"""The portal's Governance tab in a real browser (Debian's chromium driven by Playwright), against a real anvil,
the committed contracts and a node process serving the portal.

Four license holders (the devnet's owners, 2 licenses each, impersonated in anvil so the page's test wallet can
send for them): A delegates its votes to C from the page; C proposes an AuditProtocol.setParams change from the
form (whose decoded calldata must match what the Python ABI encodes); C votes For, B Against, D Abstain; the test
mines past the voting period, C queues, the test moves past the timelock delay, C executes; the parameters are
read back from the chain with the Python contract client. The chain is automining, so only the test's
anvil_mine moves the governor's block clock between the steps. Screenshots go to tests/artifacts/portal-governance/.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from alignment_node.devnet.anvil import AnvilError, find_anvil
from alignment_node.devnet.network import Devnet, Plan
from test_node import wait_until  # a sibling test module
from test_portal_browser import BUNDLE, CHROMIUM, PROVIDER_JS, ChainReader, chromium, http_get
from test_portal_browser import status_after as _status_after

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "portal-governance"
STATES = ["Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired", "Executed"]


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
    # sell_out: the owners' 8 licenses finish the sale, so the quorum counts on them (not on a planned 1000).
    plan = Plan(commissions_bps=(1000,), owners=4, licenses_per_owner=2, block_time=None, epoch_length=20,
                reveal_blocks=10, poll_interval=0.25, audit_deadline_s=1.0, sell_out=True)
    net = Devnet(plan, tmp_path_factory.mktemp("portal-governance"), log=lambda *_: None)
    try:
        asyncio.run(net.setup())
        for owner in net.owners:  # anvil signs for them, as it does for its own development accounts
            net.anvil.rpc("anvil_impersonateAccount", [owner.address])
        net.start_nodes()
        wait_until(lambda: http_get(net.operators[0].url() + "/status")[0] == 200, 30, "the node's API")
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def chain(net) -> ChainReader:
    return ChainReader(net)


@pytest.fixture(scope="module")
def browser(net):
    yield from chromium(ARTIFACTS)


def open_governance(browser, net: Devnet, account: str):
    """A fresh browser context whose wallet holds `account`, on the Governance tab, connected."""
    real = int(net.manifest["chainId"])
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    options = {"rpc": net.anvil.url, "account": account, "chainId": real, "realChainId": real, "switchable": True}
    context.add_init_script(script=PROVIDER_JS.replace("__OPTIONS__", json.dumps(options)))
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(net.operators[0].url() + "/portal#governance")
    page.wait_for_selector("#tabs")
    page.click("#connect")
    page.wait_for_selector("#connected")
    page.wait_for_selector("#gov-power")
    return page


def status_after(page, kind: str, contains: str) -> str:
    """test_portal_browser's status_after, saying what the status line showed instead when it times out."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return _status_after(page, kind, contains)
    except PlaywrightTimeout:
        raise AssertionError(f"status never became {kind} with {contains!r}: it says "
                             f"{page.get_attribute('#status', 'data-kind')}: {page.inner_text('#status')!r}") from None


def reload_tab(page) -> None:
    page.click('#tabs button[data-tab="governance"]')


def proposal_in_state(page, proposal_id: int, state: str) -> str:
    """Refresh until the page shows the proposal in `state`; returns its selector."""
    sel = f'article.proposal[data-proposal="{proposal_id}"][data-state="{state}"]'
    reload_tab(page)
    page.wait_for_selector(sel)
    return sel


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def state_of(chain: ChainReader, proposal_id: int) -> str:
    return STATES[chain.call("AlignmentGovernor", "state", proposal_id)]


def test_propose_vote_queue_execute_a_parameter_change_from_the_page(net, chain, browser):
    a, b, c, d = (o.address for o in net.owners)
    anvil = net.anvil
    assert all(chain.call("AlignmentLicense", "getVotes", who) == 2 for who in (a, b, c, d))
    before = tuple(chain.call("AuditProtocol", "params"))
    reveal, committee, min_reveals, max_committee = before
    # Valid parameters (AuditProtocol._setParams): shorter reveals and a different committee cap.
    new_max = max_committee - 1 if max_committee > max(committee, min_reveals) else max_committee + 1
    wanted = (reveal - 3, committee, min_reveals, new_max)
    assert reveal > 3 and max(committee, min_reveals) <= new_max <= 16

    # A hands its votes to C with "delegate to address".
    page_a = open_governance(browser, net, a)
    assert "Voting power: 2 votes" in page_a.inner_text("#gov-power")
    assert page_a.get_attribute("#gov-delegate", "data-delegate").lower() == a.lower()
    page_a.fill("#gov-delegate-to", c)
    page_a.click("#gov-delegate-other")
    status_after(page_a, "success", "votes go to")
    assert chain.call("AlignmentLicense", "delegates", a).lower() == c.lower()
    assert chain.call("AlignmentLicense", "getVotes", c) == 4 and chain.call("AlignmentLicense", "getVotes", a) == 0
    page_a.wait_for_function("() => document.getElementById('gov-power').textContent.includes('0 votes')")

    # C builds the proposal in the form. Bad input is a sentence, and nothing is sent.
    page_c = open_governance(browser, net, c)
    assert "Voting power: 4 votes" in page_c.inner_text("#gov-power")
    assert page_c.input_value("#gov-field-revealBlocks") == str(reveal)  # prefilled from the chain
    nonce = chain.nonce(c)
    page_c.fill("#gov-field-revealBlocks", "seven")
    assert "must be a whole number" in page_c.inner_text("#gov-preview")
    page_c.fill("#gov-description", "Shorter reveals, a larger committee cap")
    page_c.click("#gov-propose")
    status_after(page_c, "error", "must be a whole number")
    assert chain.nonce(c) == nonce
    # Parameters the contract refuses: the preview runs the call as the timelock would, and Propose refuses it.
    page_c.fill("#gov-field-revealBlocks", str(wanted[0]))
    page_c.fill("#gov-field-maxCommittee", "17")  # above AuditProtocol.MAX_COMMITTEE_CAP
    page_c.wait_for_selector("#gov-preview-check[data-result='reverts']")
    assert "AuditProtocol: InvalidParams" in page_c.inner_text("#gov-preview-check")
    page_c.click("#gov-propose")
    status_after(page_c, "error", "not sent, the proposal could not be executed: Executed now by the timelock, the call "
                 "failed: AuditProtocol: InvalidParams")
    assert chain.nonce(c) == nonce
    page_c.fill("#gov-field-maxCommittee", str(wanted[3]))
    page_c.wait_for_selector("#gov-preview-check[data-result='ok']")
    # The preview is the calldata, decoded back: the same bytes the Python ABI encodes for these parameters.
    calldata = "0x" + chain.abis["AuditProtocol"].encode_call("setParams", wanted).hex()
    assert page_c.inner_text("#gov-preview-calldata") == f"calldata {calldata}"
    call = page_c.inner_text("#gov-preview-call")
    assert call.startswith(f"AuditProtocol ({chain.addresses['AuditProtocol']}).setParams(") and \
        f"revealBlocks: {wanted[0]}" in call and f"maxCommittee: {wanted[3]}" in call
    shot(page_c, "form-preview")
    page_c.click("#gov-propose")
    text = status_after(page_c, "success", "Proposed")
    (created,) = chain.events("AlignmentGovernor", "ProposalCreated")
    proposal_id = created["proposalId"]
    assert str(proposal_id) in text and created["proposer"].lower() == c.lower()
    assert [t.lower() for t in created["targets"]] == [chain.addresses["AuditProtocol"].lower()]
    assert "0x" + created["calldatas"][0].hex() == calldata
    assert state_of(chain, proposal_id) == "Pending"
    sel = proposal_in_state(page_c, proposal_id, "Pending")
    assert f"setParams(params_: {{revealBlocks: {wanted[0]}" in page_c.inner_text(f"{sel} .calls")

    # Voting opens after the snapshot block: C For (4 votes with A's), B Against, D Abstain; A had no votes.
    anvil.mine(2)
    assert state_of(chain, proposal_id) == "Active"
    sel = proposal_in_state(page_c, proposal_id, "Active")
    page_c.click(f"{sel} button.vote-for")
    status_after(page_c, "success", "Voted For")
    for who, button, label in ((b, "vote-against", "Voted Against"), (d, "vote-abstain", "Voted Abstain")):
        page = open_governance(browser, net, who)
        page.click(f"{proposal_in_state(page, proposal_id, 'Active')} button.{button}")
        status_after(page, "success", f"{label} on ")
        assert "with 2 votes" in page.inner_text("#status")
        assert not page.errors, page.errors
        page.context.close()
    sel = proposal_in_state(page_a, proposal_id, "Active")
    assert page_a.is_disabled(f"{sel} button.vote-for") and "no votes at the snapshot" in page_a.inner_text(sel)
    assert chain.call("AlignmentGovernor", "proposalVotes", proposal_id) == (2, 4, 2)  # against, for, abstain
    assert all(chain.call("AlignmentGovernor", "hasVoted", proposal_id, who) for who in (b, c, d))
    sel = proposal_in_state(page_c, proposal_id, "Active")
    tally = f"{sel} .tally[data-for='4'][data-against='2'][data-abstain='2']"  # once the page has read B's and D's votes
    page_c.wait_for_selector(tally)
    assert "For 4 · Against 2 · Abstain 2" in page_c.inner_text(tally) and "you voted" in page_c.inner_text(tally)
    snapshot = chain.call("AlignmentGovernor", "proposalSnapshot", proposal_id)
    quorum = chain.call("AlignmentGovernor", "quorum", snapshot)
    supply = chain.call("AlignmentLicense", "getPastTotalSupply", snapshot)
    assert supply == 8 and f"quorum {quorum} of {supply} votes at the snapshot reached" in page_c.inner_text(tally)
    shot(page_c, "voted")

    # Past the voting period: Succeeded; C queues it in the timelock.
    deadline = chain.call("AlignmentGovernor", "proposalDeadline", proposal_id)
    anvil.mine(deadline - anvil.block_number() + 1)
    assert state_of(chain, proposal_id) == "Succeeded"
    sel = proposal_in_state(page_c, proposal_id, "Succeeded")
    page_c.click(f"{sel} button.queue")
    status_after(page_c, "success", "Queued")
    assert state_of(chain, proposal_id) == "Queued"
    sel = proposal_in_state(page_c, proposal_id, "Queued")
    assert page_c.is_disabled(f"{sel} button.execute")  # the timelock's delay has not passed
    assert tuple(chain.call("AuditProtocol", "params")) == before

    # Past the timelock delay: C executes, and the chain has the new parameters.
    eta = chain.call("AlignmentGovernor", "proposalEta", proposal_id)
    latest = int(anvil.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    assert eta > latest
    anvil.rpc("evm_increaseTime", [eta - latest + 1])
    anvil.mine(1)
    sel = proposal_in_state(page_c, proposal_id, "Queued")
    page_c.wait_for_selector(f"{sel} button.execute:not([disabled])")
    page_c.click(f"{sel} button.execute")
    status_after(page_c, "success", "Executed")
    assert state_of(chain, proposal_id) == "Executed"
    assert tuple(chain.call("AuditProtocol", "params")) == wanted
    page_c.wait_for_selector(f'#past-proposals article[data-proposal="{proposal_id}"][data-state="Executed"]')
    shot(page_c, "executed")

    # A takes its votes back with "delegate to myself".
    reload_tab(page_a)
    page_a.click("#gov-delegate-self")
    status_after(page_a, "success", "go to yourself")
    assert chain.call("AlignmentLicense", "delegates", a).lower() == a.lower()
    assert chain.call("AlignmentLicense", "getVotes", a) == 2 and chain.call("AlignmentLicense", "getVotes", c) == 2
    assert not page_a.errors and not page_c.errors, page_a.errors + page_c.errors
    page_a.context.close()
    page_c.context.close()


def test_add_target_proposal_is_decoded_and_a_bad_one_is_refused(net, chain, browser):
    """The form's other kind: TargetRegistry.addTarget, decoded in the preview and in the proposal list."""
    c = net.owners[2].address
    page = open_governance(browser, net, c)
    page.select_option("#gov-kind", "addTarget")
    page.wait_for_selector("#gov-field-endpoint")
    page.select_option("#gov-field-kind", "1")
    page.fill("#gov-field-endpoint", "http://127.0.0.1:9/rpc")
    page.fill("#gov-field-identity", "0x12345")  # an odd number of hex digits
    assert "even number of hex digits" in page.inner_text("#gov-preview")
    page.fill("#gov-field-identity", "0x" + "ab" * 8)
    expected = "0x" + chain.abis["TargetRegistry"].encode_call("addTarget", 1, "http://127.0.0.1:9/rpc", bytes([0xab] * 8)).hex()
    assert page.inner_text("#gov-preview-calldata") == f"calldata {expected}"
    assert 'addTarget(kind: 1, endpoint: "http://127.0.0.1:9/rpc", identity: 0xabababababababab)' in \
        page.inner_text("#gov-preview-call")
    count = len(chain.events("AlignmentGovernor", "ProposalCreated"))
    page.fill("#gov-description", "Audit one more EVM endpoint")
    page.click("#gov-propose")
    status_after(page, "success", "Proposed")
    created = chain.events("AlignmentGovernor", "ProposalCreated")
    assert len(created) == count + 1 and "0x" + created[-1]["calldatas"][0].hex() == expected
    sel = proposal_in_state(page, created[-1]["proposalId"], "Pending")
    assert "TargetRegistry" in page.inner_text(f"{sel} .calls") and "addTarget(kind: 1" in page.inner_text(f"{sel} .calls")
    # The same proposal again is refused before anything is signed.
    nonce = chain.nonce(c)
    for _ in range(5):  # the form is cleared after a proposal; a re-render may land between a fill and the click
        page.select_option("#gov-kind", "addTarget")
        page.wait_for_selector("#gov-field-endpoint")
        page.fill("#gov-field-endpoint", "http://127.0.0.1:9/rpc")
        page.fill("#gov-field-identity", "0x" + "ab" * 8)
        page.fill("#gov-description", "Audit one more EVM endpoint")
        page.wait_for_timeout(300)
        if (page.inner_text("#gov-preview-calldata") == f"calldata {expected}"
                and page.input_value("#gov-description") == "Audit one more EVM endpoint"):
            break
    page.click("#gov-propose")
    text = status_after(page, "error", "this proposal (the same actions and description) already exists")
    assert f"0x{created[-1]['proposalId']:064x}"[:10] in text
    assert chain.nonce(c) == nonce
    shot(page, "add-target")
    assert not page.errors, page.errors
    page.context.close()
