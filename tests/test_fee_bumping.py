"""Fee spikes (txsender.py): a transaction stalled below the market's fee is replaced on the same nonce with
higher fees until it is mined; at ``gas.max_fee_gwei`` the fee_cap_reached alert fires and nothing is sent on
another nonce; a restart settles a journal holding several replacements of one nonce.

A real anvil with automine off: the test mines a block every 0.25 s (the devnet's block time) and, while a spike
is on, sets the next block's base fee (``anvil_setNextBlockBaseFeePerGas``) before each one. anvil admits a
transaction whose max fee covers the base fee it expects next (7/8 of an empty spiked block's) but only mines
those that pay the spiked one. The operator's key is generated here and funded with ``anvil_setBalance``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alignment_node.chain.tx import LocalSigner, decode_signed_transaction
from alignment_node.config import AlertsConfig, Config, ConfigError, WebhookConfig, load_config
from alignment_node.node.alert_conditions import AlertConditions
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.parts import MeteredRpcClient, NodeParts, Snapshot
from alignment_node.node.store import Store
from alignment_node.node.txsender import TxSender

GWEI = 10**9
BLOCK_S = 0.25
DATA = bytes.fromhex("c0ffee01")


class Miner:
    """Mines a block every BLOCK_S seconds; with ``spike`` set, each at that base fee (wei)."""

    def __init__(self, anvil):
        self.anvil = anvil
        self.spike: int | None = None
        self.paused = threading.Event()
        self._stop = threading.Event()
        anvil.rpc("evm_setAutomine", [False])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(BLOCK_S):
            if self.paused.is_set():
                continue
            spike = self.spike
            if spike is not None:
                self.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(spike)])
            self.anvil.rpc("evm_mine", [])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Hooks:
    """A JSON webhook receiver on loopback: the alert notifications it was sent."""

    def __init__(self):
        self.bodies: list[dict] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (stdlib name)
                hooks.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chain(anvil):
    signer = LocalSigner(secrets.token_bytes(32))
    anvil.rpc("anvil_setBalance", [signer.address, hex(10**20)])
    miner = Miner(anvil)
    yield anvil, miner, signer
    miner.stop()


def sender_for(anvil, signer, store, *, cap_gwei=500.0, timeout=40.0, bump_after_s=0.5, metrics=None):
    rpc = MeteredRpcClient([anvil.url], 5.0, metrics or NodeMetrics())
    return TxSender(rpc, signer, store, max_fee_gwei=cap_gwei, receipt_timeout=timeout, bump_after_s=bump_after_s,
                    bump_after_blocks=1, bump_factor=1.5, metrics=metrics)


async def until_sent(store: Store) -> None:
    """Wait (no block mined meanwhile) until a send is journaled and broadcast."""
    deadline = time.monotonic() + 10
    while not [e for e in store.open_entries() if e.state == "sent"]:
        assert time.monotonic() < deadline, "the transaction was never sent"
        await asyncio.sleep(0.02)


async def sent_then_spike(store: Store, miner: Miner, spike: int) -> int:
    """Wait (no block mined meanwhile) until the send is journaled and broadcast, then spike the base fee."""
    await until_sent(store)
    miner.spike = spike
    miner.paused.clear()
    return store.open_entries()[0].nonce


def rows(store: Store, nonce: int | None = None) -> list[dict]:
    sql, args = "SELECT * FROM tx_journal", ()
    if nonce is not None:
        sql, args = sql + " WHERE nonce = ?", (nonce,)
    return [dict(r) | {"meta": json.loads(r["meta"])} for r in store.db.execute(sql + " ORDER BY id", args)]


def fees(raw: bytes) -> tuple[int, int]:
    tx = decode_signed_transaction(raw)[0]
    return tx.max_fee_per_gas, tx.max_priority_fee_per_gas


def test_a_stalled_transaction_is_replaced_on_its_nonce_with_higher_fees_and_mined(chain, tmp_path):
    anvil, miner, signer = chain
    store, metrics = Store(tmp_path / "node.sqlite"), NodeMetrics()
    to = anvil.accounts[1]

    async def go():
        sender = sender_for(anvil, signer, store, metrics=metrics)
        miner.paused.set()
        sending = asyncio.create_task(sender.send("heartbeat", to, DATA, epoch=7, meta={"licenses": [3]}))
        nonce = await sent_then_spike(store, miner, 20 * GWEI)
        receipt = await asyncio.wait_for(sending, 30)
        used = await sender.rpc.get_transaction_count(signer.address, "latest")
        await sender.rpc.close()
        return nonce, receipt, used

    nonce, receipt, used = asyncio.run(go())
    journal = rows(store)
    assert len(journal) >= 2 and {r["nonce"] for r in journal} == {nonce} and used == nonce + 1
    assert {(r["purpose"], r["epoch"]) for r in journal} == {("heartbeat", 7)}
    first, mined = journal[0], [r for r in journal if r["state"] == "mined"]
    assert len(mined) == 1 and receipt["transactionHash"] == mined[0]["tx_hash"] != first["tx_hash"]
    assert int(receipt["status"], 16) == 1 and mined[0]["meta"]["licenses"] == [3]
    for older, newer in zip(journal, journal[1:]):  # each replaces the one before it, with both fees >= +10%
        assert newer["meta"]["replaces"] == older["tx_hash"]
        assert all(new * 10 >= old * 11 for new, old in zip(fees(newer["raw"]), fees(older["raw"])))
    for row in journal:
        if row is not mined[0]:
            assert row["state"] == "dropped" and row["error"].startswith(f"replaced: nonce {nonce} was mined as")
    base, new = decode_signed_transaction(first["raw"])[0], decode_signed_transaction(mined[0]["raw"])[0]
    assert (new.nonce, new.to, new.data, new.gas, new.value) == (base.nonce, base.to, DATA, base.gas, base.value)
    assert new.max_fee_per_gas >= 20 * GWEI > base.max_fee_per_gas
    assert metrics.tx_replacements.labels("heartbeat")._value.get() == len(journal) - 1


def test_at_the_fee_cap_the_alert_fires_and_nothing_is_sent_on_another_nonce(chain, tmp_path, caplog):
    anvil, miner, signer = chain
    store, metrics, hooks = Store(tmp_path / "node.sqlite"), NodeMetrics(), Hooks()
    cfg = Config(alerts=AlertsConfig(webhooks=[WebhookConfig("json", hooks.url)], resolve_after_s=0.0))

    async def go():
        sender = sender_for(anvil, signer, store, cap_gwei=4.0, metrics=metrics)
        parts = NodeParts(cfg, signer, {}, tmp_path, store, metrics, sender.rpc, {}, sender,
                          Snapshot(operator=signer.address))
        alerts = AlertConditions(parts)
        alerts.engine.start()
        miner.paused.set()
        sending = asyncio.create_task(sender.send("commit", anvil.accounts[1], DATA, epoch=9))
        # 4.4 gwei: a 4 gwei replacement is admitted (it covers the 3.85 gwei anvil expects) but never mined.
        nonce = await sent_then_spike(store, miner, 44 * GWEI // 10)
        deadline = time.monotonic() + 20
        while nonce not in sender.fee_capped:
            assert time.monotonic() < deadline and not sending.done(), rows(store)
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # stays capped: no further replacement, no other nonce
        head = await sender.rpc.block_number()
        await alerts.evaluate(head, 1)
        capped = dict(sender.fee_capped[nonce])
        used = await sender.rpc.get_transaction_count(signer.address, "latest")
        while not hooks.bodies:
            assert time.monotonic() < deadline + 10
            await asyncio.sleep(0.05)
        miner.spike = None  # the fees fall: the capped transaction is mined
        receipt = await asyncio.wait_for(sending, 30)
        await alerts.evaluate(await sender.rpc.block_number(), 1)
        while len(hooks.bodies) < 2:
            assert time.monotonic() < deadline + 20
            await asyncio.sleep(0.05)
        await alerts.engine.stop()
        final = await sender.rpc.get_transaction_count(signer.address, "latest")
        await sender.rpc.close()
        return nonce, capped, used, final, receipt

    with caplog.at_level(logging.CRITICAL, logger="alignment_node.tx"):
        try:
            nonce, capped, used, final, receipt = asyncio.run(go())
        finally:
            hooks.close()
    journal = rows(store)
    # Nothing was signed (the journal has every signed transaction) or mined on another nonce.
    assert {r["nonce"] for r in journal} == {nonce} and used == nonce and final == nonce + 1
    assert all(fees(r["raw"])[0] <= 4 * GWEI for r in journal)
    assert capped["cap_gwei"] == 4.0 and capped["market_fee_gwei"] > 4.0 and capped["purpose"] == "commit"
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical and "gas.max_fee_gwei caps the fee at 4.0 gwei" in critical[0] and "market asks" in critical[0]
    fired, resolved = hooks.bodies[:2]
    assert (fired["alert"], fired["state"], fired["severity"]) == ("fee_cap_reached", "firing", "critical")
    assert fired["key"] == f"fee_cap_reached:{nonce}" and fired["details"]["cap_gwei"] == 4.0
    assert "4.0 gwei" in fired["summary"] and resolved["state"] == "resolved"
    assert int(receipt["status"], 16) == 1 and [r["state"] for r in journal].count("mined") == 1
    assert metrics.tx_failed.labels("commit", "fee_cap_reached")._value.get() >= 1


def test_a_restart_rebroadcasts_the_highest_fee_replacement_and_settles_the_nonce(chain, tmp_path):
    anvil, miner, signer = chain
    store = Store(tmp_path / "node.sqlite")

    async def crash_with_replacements():
        sender = sender_for(anvil, signer, store, cap_gwei=4.0)
        miner.paused.set()
        sending = asyncio.create_task(sender.send("reveal", anvil.accounts[1], DATA, epoch=4))
        nonce = await sent_then_spike(store, miner, 44 * GWEI // 10)
        deadline = time.monotonic() + 20
        while nonce not in sender.fee_capped:
            assert time.monotonic() < deadline and not sending.done()
            await asyncio.sleep(0.1)
        sending.cancel()  # the process dies mid-wait
        await asyncio.gather(sending, return_exceptions=True)
        await sender.rpc.close()
        return nonce

    nonce = asyncio.run(crash_with_replacements())
    open_rows = [r for r in rows(store, nonce) if r["state"] in ("signed", "sent")]
    assert len(open_rows) >= 2, rows(store)
    highest = max(open_rows, key=lambda r: fees(r["raw"]))
    anvil.rpc("anvil_dropAllTransactions", [])  # the chain node restarted too: its pool is empty
    miner.spike = 38 * GWEI // 10  # only the 4 gwei replacement pays this base fee

    async def restart():
        sender = sender_for(anvil, signer, store, cap_gwei=4.0, bump_after_s=30.0)
        looked = await sender.recover()
        again = await sender.recover()
        used = await sender.rpc.get_transaction_count(signer.address, "latest")
        await sender.rpc.close()
        return looked, again, used

    looked, again, used = asyncio.run(restart())
    journal = rows(store, nonce)
    assert {e.tx_hash for e in looked} == {r["tx_hash"] for r in open_rows} and again == [] and used == nonce + 1
    assert [r["tx_hash"] for r in journal if r["state"] == "mined"] == [highest["tx_hash"]]
    assert all(r["state"] == "dropped" for r in journal if r["tx_hash"] != highest["tx_hash"])


def test_the_bump_settings_are_checked():
    env = {"ZG_ALIGNMENT_NODE_OPERATOR_PASSWORD_ENV": "NODE_PASSWORD", "ZG_ALIGNMENT_NODE_GAS_BUMP_AFTER_S": "2",
           "ZG_ALIGNMENT_NODE_GAS_BUMP_FACTOR": "1.5"}
    cfg = load_config(None, env=env)
    assert (cfg.gas.bump_after_s, cfg.gas.bump_after_blocks, cfg.gas.bump_factor) == (2.0, 2, 1.5)
    with pytest.raises(ConfigError) as err:
        load_config(None, env=env | {"ZG_ALIGNMENT_NODE_GAS_BUMP_FACTOR": "1.05",
                                     "ZG_ALIGNMENT_NODE_GAS_BUMP_AFTER_S": "0"})
    assert "gas.bump_factor: 1.05 is not between 1.1" in str(err.value)
    assert "bump_after_s must be > 0" in str(err.value)


def test_a_transaction_refused_below_a_jumped_base_fee_is_signed_again_on_its_nonce_and_mined(chain, tmp_path):
    """The base fee of the block to come jumped after the node read the fees (a spike the fee history does not
    show yet): anvil refuses the transaction outright; the node signs it again, same nonce, at twice the coming
    base fee, without waiting for a bump, and it is mined."""
    anvil, miner, signer = chain
    store = Store(tmp_path / "node.sqlite")
    metrics = NodeMetrics()
    sender = sender_for(anvil, signer, store, metrics=metrics)

    async def go():
        await sender._fees()  # the calm fees, cached: what a node signs with right after it read them
        miner.paused.set()
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(30 * GWEI)])
        miner.paused.clear()
        await asyncio.sleep(3 * BLOCK_S)  # the spiked block is mined; the next ones expect ~26 gwei
        return await sender.send("commit", signer.address, DATA, epoch=3)

    try:
        receipt = asyncio.run(go())
        assert receipt["status"] == "0x1"
        journal = rows(store)
        assert len({r["nonce"] for r in journal}) == 1 and len(journal) >= 2
        assert [r["state"] for r in journal][-1] == "mined" and journal[0]["state"] == "dropped"
        assert "base fee" in journal[0]["error"].lower()
        tx, *_ = decode_signed_transaction(bytes.fromhex(anvil.rpc("eth_getRawTransactionByHash",
                                                                   [receipt["transactionHash"]])[2:]))
        assert tx.max_fee_per_gas > 20 * GWEI
    finally:
        store.close()


def test_a_duty_a_reorg_dropped_is_sent_again_on_its_own_nonce_so_only_one_can_land(chain, tmp_path):
    """A mined heartbeat is reorged away and its bytes go back to the pool (as geth does with a dropped block's
    transactions). The node sends the duty again: on the same nonce, as a replacement of the one in the pool, so
    exactly one of them is mined; before, it took the next nonce and both landed (a reverted duplicate)."""
    from alignment_node.node.chainguard import REORG_ERROR, reorged

    anvil, miner, signer = chain
    store, metrics = Store(tmp_path / "node.sqlite"), NodeMetrics()
    to = anvil.accounts[1]

    async def go():
        sender = sender_for(anvil, signer, store, metrics=metrics)
        parts = NodeParts(Config(), signer, {}, tmp_path, store, metrics, sender.rpc, {}, sender,
                          Snapshot(operator=signer.address))
        first = await sender.send("heartbeat", to, DATA, epoch=7)
        miner.paused.set()
        [row] = rows(store)
        depth = await sender.rpc.block_number() - int(first["blockNumber"], 16) + 1
        anvil.rpc("anvil_reorg", [depth, []])
        assert [e.tx_hash for e in await reorged(parts, "heartbeat", 7)] == [row["tx_hash"]]
        anvil.rpc("eth_sendRawTransaction", ["0x" + row["raw"].hex()])  # the pool has it again
        again = asyncio.create_task(sender.send("heartbeat", to, DATA, epoch=7))
        deadline = time.monotonic() + 10
        while len([r for r in rows(store) if r["state"] == "sent"]) < 1:
            assert time.monotonic() < deadline and not again.done(), rows(store)
            await asyncio.sleep(0.02)
        miner.paused.clear()
        receipt = await asyncio.wait_for(again, 30)
        for _ in range(8):  # a few more blocks: a second transaction, if any, would be mined by now
            await asyncio.sleep(BLOCK_S)
        used = await sender.rpc.get_transaction_count(signer.address, "latest")
        await sender.rpc.close()
        return row, receipt, used

    row, receipt, used = asyncio.run(go())
    journal = rows(store)
    assert {r["nonce"] for r in journal} == {row["nonce"]} and used == row["nonce"] + 1  # one nonce, used once
    assert journal[0]["state"] == "dropped" and journal[0]["error"].startswith(REORG_ERROR)
    resent = journal[1]
    assert resent["meta"]["replaces"] == row["tx_hash"] and resent["state"] == "mined"
    assert receipt["transactionHash"] == resent["tx_hash"] and int(receipt["status"], 16) == 1
    assert all(new * 10 >= old * 11 for new, old in zip(fees(resent["raw"]), fees(row["raw"])))


def test_a_journaled_transaction_refused_below_a_spiked_base_fee_at_restart_is_replaced_and_mined(chain, tmp_path):
    """A crash left a sent transaction the pool has since forgotten; meanwhile the base fee jumped past its max fee.
    At restart ``recover`` broadcasts it again, is refused, and replaces it on its nonce at the coming block's
    fees; before, it logged the refusal and left the nonce (and every later one) stuck."""
    anvil, miner, signer = chain
    store = Store(tmp_path / "node.sqlite")

    async def go():
        sender = sender_for(anvil, signer, store, bump_after_s=60.0)  # no replacement before the "crash"
        miner.paused.set()
        sending = asyncio.create_task(sender.send("reveal", anvil.accounts[1], DATA, epoch=4))
        await until_sent(store)
        sending.cancel()  # the process dies here
        [entry] = store.open_entries()
        anvil.rpc("anvil_dropTransaction", [entry.tx_hash])  # a pool that evicted it
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * GWEI)])
        miner.spike = 40 * GWEI
        restarted = sender_for(anvil, signer, store, bump_after_s=60.0)
        recovering = asyncio.create_task(restarted.recover())
        await asyncio.sleep(0.5)
        miner.paused.clear()
        await asyncio.wait_for(recovering, 30)
        used = await restarted.rpc.get_transaction_count(signer.address, "latest")
        for s in (sender, restarted):
            await s.rpc.close()
        return entry, used

    entry, used = asyncio.run(go())
    journal = rows(store, entry.nonce)
    assert used == entry.nonce + 1 and len(journal) == 2
    assert journal[1]["meta"]["replaces"] == entry.tx_hash and journal[1]["state"] == "mined"
    assert fees(journal[1]["raw"])[0] >= 40 * GWEI > fees(journal[0]["raw"])[0]
    assert journal[0]["state"] == "dropped"


# Runtime code of a one-shot contract: the first call stores 1 in slot 0, every later call reverts (a settlement).
ONE_SHOT = bytes.fromhex("60005415600b57600080fd5b600160005500")


def test_a_settlement_another_node_made_pointless_while_it_waited_is_cancelled_not_reverted(chain, tmp_path):
    """A settle stalls under a fee spike; meanwhile another account settles first. At its next fee bump the node
    finds it would revert and replaces it with a transfer of nothing to itself on the same nonce: the nonce moves
    on, and no reverted transaction is paid for (before: the bumped settle was mined and reverted)."""
    anvil, miner, signer = chain
    store = Store(tmp_path / "node.sqlite")
    target = "0x" + secrets.token_bytes(20).hex()
    anvil.rpc("anvil_setCode", [target, "0x" + ONE_SHOT.hex()])
    other = anvil.accounts[2]

    async def go():
        sender = sender_for(anvil, signer, store)
        miner.paused.set()
        sending = asyncio.create_task(sender.send("settle", target, b"", epoch=3, urgent=False))
        nonce = await sent_then_spike(store, miner, 20 * GWEI)
        anvil.rpc("eth_sendTransaction", [{"from": other, "to": target, "maxFeePerGas": hex(100 * GWEI),
                                           "maxPriorityFeePerGas": hex(5 * GWEI), "gas": hex(60_000)}])
        receipt = await asyncio.wait_for(sending, 30)
        used = await sender.rpc.get_transaction_count(signer.address, "latest")
        slot = await sender.rpc.request("eth_getStorageAt", [target, "0x0", "latest"])
        await sender.rpc.close()
        return nonce, receipt, used, slot

    nonce, receipt, used, slot = asyncio.run(go())
    journal = rows(store, nonce)
    assert used == nonce + 1 and int(slot, 16) == 1  # the other account settled; this nonce was used once
    assert not [r for r in journal if r["state"] == "reverted"], journal
    [cancel] = [r for r in journal if r["state"] == "mined"]
    tx = decode_signed_transaction(cancel["raw"])[0]
    assert cancel["meta"]["cancels"] == cancel["meta"]["replaces"] and tx.to.lower() == signer.address.lower()
    assert tx.data == b"" and tx.value == 0 and tx.gas == 21_000
    assert receipt["transactionHash"] == cancel["tx_hash"] and int(receipt["status"], 16) == 1


def test_at_restart_a_nonce_a_reorg_took_goes_first_and_both_are_repriced_without_waiting(chain, tmp_path):
    """The chaos scenario's missed reveal (seed 3): a heartbeat was mined, the reveal after it sent, the process
    killed; then a reorg took the heartbeat's block and the base fee spiked. At restart the lower nonce is broadcast
    again (re-signed at the coming block's fees) before the reveal is, and the reveal is re-signed in the same pass:
    both mined at once, where the node used to wait ``bump_after_s`` to find the gap and another to reprice."""
    anvil, miner, signer = chain
    store = Store(tmp_path / "node.sqlite")

    async def go():
        sender = sender_for(anvil, signer, store, bump_after_s=60.0)
        miner.paused.set()
        heartbeat = asyncio.create_task(sender.send("heartbeat", anvil.accounts[1], DATA, epoch=4))
        await sent_then_spike(store, miner, 0)  # unpauses the miner at no spike: the heartbeat is mined
        miner.spike = None
        await asyncio.wait_for(heartbeat, 10)
        miner.paused.set()
        await asyncio.sleep(2 * BLOCK_S)
        hb_nonce = rows(store)[0]["nonce"]
        revealing = asyncio.create_task(sender.send("reveal", anvil.accounts[1], DATA, epoch=4))
        await until_sent(store)
        revealing.cancel()  # the process dies here
        mined_in = int(anvil.rpc("eth_getTransactionReceipt", [rows(store)[0]["tx_hash"]])["blockNumber"], 16)
        head = int(anvil.rpc("eth_blockNumber"), 16)
        anvil.rpc("anvil_reorg", [head - mined_in + 1, []])  # the heartbeat's block and those after it: gone
        assert int(anvil.rpc("eth_getTransactionCount", [signer.address, "latest"]), 16) == hb_nonce
        miner.spike = 40 * GWEI
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * GWEI)])
        miner.paused.clear()
        restarted = sender_for(anvil, signer, store, bump_after_s=60.0)  # a bump would come far too late
        await asyncio.wait_for(restarted.recover(), 15)
        used = await restarted.rpc.get_transaction_count(signer.address, "latest")
        for s in (sender, restarted):
            await s.rpc.close()
        return hb_nonce, used

    hb_nonce, used = asyncio.run(go())
    assert used == hb_nonce + 2
    for nonce in (hb_nonce, hb_nonce + 1):  # on chain now: each nonce's replacement at the spiked fee
        landed = [r for r in rows(store, nonce) if anvil.rpc("eth_getTransactionReceipt", [r["tx_hash"]])]
        assert len(landed) == 1 and landed[0]["meta"].get("replaces"), rows(store, nonce)
        assert fees(landed[0]["raw"])[0] >= 40 * GWEI
