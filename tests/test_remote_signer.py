"""Remote signing (chain/remote_signer.py) against the stand-in signer process (devnet/signer_server.py) over
HTTP and a real anvil: transactions signed remotely are mined, the node's TxSender and the node itself send
through it, and a signer that lies, dies, stalls or lacks the key is a clear error that loses nothing.

Every key is generated here at run time; the operator's lives only in an encrypted keystore the signer unlocks.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import secrets
import subprocess
import sys
import threading
import time

import pytest

from alignment_node.chain.contracts import TxOptions, build_transaction, send_transaction, transact_raw
from alignment_node.chain.keccak import to_checksum_address
from alignment_node.chain.remote_signer import (
    RemoteSigner,
    SignerAddressNotHeld,
    SignerAnswerRejected,
    SignerRpcError,
    SignerUnreachable,
)
from alignment_node.chain.manifest import manifest_contracts
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import Eip1559Tx, LocalSigner, recover_sender
from alignment_node.cli import main as cli_main
from alignment_node.devnet.anvil import free_port
from alignment_node.devnet.network import Devnet, Plan
from alignment_node.devnet.processes import node_health, start_node
from alignment_node.devnet.signer_server import SignerServerProcess
from alignment_node.keys import new_key
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.store import Store
from alignment_node.node.txsender import TxSender
from test_node import wait_until  # a sibling test module

ETHER = 10**18


class Operator:
    def __init__(self, address: str, keystore, password_file):
        self.address, self.keystore, self.password_file = address, keystore, password_file


@pytest.fixture(scope="module")
def chain(anvil_session):
    """The session's anvil (conftest.py; skips without anvil): every test here uses fresh keys on it."""
    return anvil_session


@pytest.fixture(scope="module")
def operator(chain, tmp_path_factory) -> Operator:
    """A fresh key in an encrypted keystore (password in a file), funded by one of anvil's dev accounts."""
    d = tmp_path_factory.mktemp("operator")
    password_file = d / "password"
    password_file.write_text(secrets.token_hex(12) + "\n")
    address = new_key(d / "keystore", password_file.read_text().strip())

    async def fund():
        async with RpcClient(chain.url) as rpc:
            await transact_raw(rpc, LocalSigner(chain.private_keys[0]), address, b"", TxOptions(value=100 * ETHER))

    asyncio.run(fund())
    return Operator(address, d / "keystore", password_file)


@pytest.fixture(scope="module")
def signer(chain, operator):
    """The honest stand-in signer, holding the operator's key, for the chain's id."""
    with SignerServerProcess(operator.keystore, operator.password_file, chain_id=chain_id_of(chain)) as proc:
        yield proc


def chain_id_of(chain) -> int:
    async def go():
        async with RpcClient(chain.url) as rpc:
            return await rpc.chain_id()

    return asyncio.run(go())


def a_stranger() -> str:
    return LocalSigner(secrets.token_bytes(32)).address


async def pending_nonce(rpc, address: str) -> int:
    return await rpc.get_transaction_count(address, "pending")


def failures(metrics: NodeMetrics, purpose: str, reason: str) -> float:
    value = metrics.registry.get_sample_value("alignment_transactions_failed_total",
                                              {"purpose": purpose, "reason": reason})
    return value or 0.0


# ------------------------------------------------------------------------------------- signing works


def test_a_remotely_signed_transaction_is_mined_from_the_operator(chain, operator, signer):
    remote = RemoteSigner(signer.url, operator.address)
    assert remote.check() == [operator.address]
    sink = a_stranger()

    async def go():
        async with RpcClient(chain.url) as rpc:
            signed = await build_transaction(rpc, remote, sink, b"\x01\x02\x03", TxOptions(value=12345))
            await send_transaction(rpc, signed)
            receipt = await rpc.wait_for_receipt(signed.hash, timeout=30)
            return signed, receipt, await rpc.get_transaction(signed.hash), await rpc.get_balance(sink)

    signed, receipt, mined, balance = asyncio.run(go())
    assert int(receipt["status"], 16) == 1
    assert to_checksum_address(mined["from"]) == operator.address == recover_sender(signed.raw)
    assert balance == 12345 and signed.tx.data == b"\x01\x02\x03" and signed.sender == operator.address


def test_the_node_txsender_sends_through_the_remote_signer_and_journals_it(chain, operator, signer, tmp_path):
    store = Store(tmp_path / "node.sqlite")

    async def go():
        async with RpcClient(chain.url) as rpc:
            sender = TxSender(rpc, RemoteSigner(signer.url, operator.address), store)
            first = await sender.send("remote-1", a_stranger(), b"hello")
            second = await sender.send("remote-2", a_stranger(), b"again")
            return first, second, await rpc.get_transaction(second["transactionHash"])

    first, second, tx = asyncio.run(go())
    assert int(first["status"], 16) == int(second["status"], 16) == 1
    assert to_checksum_address(tx["from"]) == operator.address
    assert store.counts().get("mined") == 2 and store.open_entries() == []
    assert store.entry(second["transactionHash"]).purpose == "remote-2"
    store.close()


# ---------------------------------------------------------------------------------------- lying signers


@pytest.mark.parametrize("fault, expected", [
    ("other-fields", ["other than the one asked for", "to: asked", "value: asked 0, got 1"]),
    ("other-key", ["signed with the key of 0x", "not {address}"]),
])
def test_a_lying_signer_is_rejected_and_nothing_is_journaled_or_sent(chain, operator, tmp_path, fault, expected):
    store = Store(tmp_path / "node.sqlite")
    metrics = NodeMetrics()
    with SignerServerProcess(operator.keystore, operator.password_file, fault=fault) as liar:
        async def go():
            async with RpcClient(chain.url) as rpc:
                before = await pending_nonce(rpc, operator.address)
                sender = TxSender(rpc, RemoteSigner(liar.url, operator.address), store, metrics=metrics)
                with pytest.raises(SignerAnswerRejected) as err:
                    await sender.send("lied-to", a_stranger(), b"\xaa")
                return before, await pending_nonce(rpc, operator.address), str(err.value)

        before, after, message = asyncio.run(go())
    for part in expected:
        assert part.format(address=operator.address) in message, message
    assert "nothing was sent" in message
    assert after == before
    assert store.counts() == {} and store.open_entries() == []
    assert failures(metrics, "lied-to", "signer") == 1
    store.close()


def test_garbage_instead_of_a_transaction_is_rejected():
    """An endpoint that answers eth_signTransaction with hex that is no signed transaction."""
    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x02c0ffee"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        me = LocalSigner(secrets.token_bytes(32))
        remote = RemoteSigner(f"http://127.0.0.1:{server.server_address[1]}", me.address)
        tx = Eip1559Tx(chain_id=1, nonce=0, max_priority_fee_per_gas=1, max_fee_per_gas=2, gas=21000, to=me.address)
        with pytest.raises(SignerAnswerRejected, match="not a signed EIP-1559 transaction"):
            remote.sign_transaction(tx)
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------ dead, slow, wrong key


def test_a_dead_signer_is_a_clear_error_and_the_journal_and_nonces_stay_consistent(chain, operator, tmp_path):
    store = Store(tmp_path / "node.sqlite")
    metrics = NodeMetrics()
    proc = SignerServerProcess(operator.keystore, operator.password_file).start()
    port = proc.port

    async def go():
        async with RpcClient(chain.url) as rpc:
            sender = TxSender(rpc, RemoteSigner(proc.url, operator.address, timeout=2), store, metrics=metrics)
            await sender.send("before", a_stranger(), b"\x01")
            proc.stop()
            nonce = await pending_nonce(rpc, operator.address)
            started = time.monotonic()
            with pytest.raises(SignerUnreachable) as err:
                await sender.send("while-dead", a_stranger(), b"\x02")
            waited = time.monotonic() - started
            assert await pending_nonce(rpc, operator.address) == nonce
            assert await sender.recover() == []  # nothing left open for a restart to settle
            # The signer comes back on the same port: the next transaction takes the very next nonce.
            with SignerServerProcess(operator.keystore, operator.password_file, port=port):
                receipt = await sender.send("after", a_stranger(), b"\x03")
            mined = await rpc.get_transaction(receipt["transactionHash"])
            return str(err.value), waited, nonce, int(mined["nonce"], 16)

    message, waited, nonce, next_nonce = asyncio.run(go())
    assert f"remote signer http://127.0.0.1:{port} is unreachable" in message and "is it running" in message
    assert waited < 2
    assert next_nonce == nonce
    assert store.counts() == {"mined": 2} and store.open_entries() == []
    assert [e["purpose"] for e in store.reader().recent_transactions()] == ["after", "before"]
    assert failures(metrics, "while-dead", "signer") == 1
    store.close()


def test_a_stalled_signer_times_out_without_stalling_the_event_loop(operator):
    with SignerServerProcess(operator.keystore, operator.password_file, fault="slow", delay=10) as slow:
        remote = RemoteSigner(slow.url, operator.address, timeout=0.5)
        tx = Eip1559Tx(chain_id=1, nonce=0, max_priority_fee_per_gas=1, max_fee_per_gas=2, gas=21000,
                       to=operator.address)

        async def go():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            started = time.monotonic()
            try:
                with pytest.raises(SignerUnreachable) as err:
                    await remote.sign_transaction_async(tx)
            finally:
                task.cancel()
            return str(err.value), time.monotonic() - started, ticks

        message, waited, ticks = asyncio.run(go())
    assert "did not answer eth_signTransaction within 0.5 s" in message
    assert 0.4 < waited < 3
    assert ticks >= 10  # the loop kept running while the signer thread waited


def test_an_address_the_signer_does_not_hold_is_named_with_what_it_holds(operator, signer):
    stranger = a_stranger()
    remote = RemoteSigner(signer.url, stranger)
    with pytest.raises(SignerAddressNotHeld) as err:
        remote.check()
    assert f"does not hold {stranger}" in str(err.value) and operator.address in str(err.value)
    assert err.value.held == [operator.address]
    tx = Eip1559Tx(chain_id=1, nonce=0, max_priority_fee_per_gas=1, max_fee_per_gas=2, gas=21000, to=stranger)
    with pytest.raises(SignerAddressNotHeld, match=f"does not hold {stranger}"):
        remote.sign_transaction(tx)


def test_a_json_rpc_refusal_is_reported_with_the_signers_reason(chain, operator, signer):
    remote = RemoteSigner(signer.url, operator.address)
    other_chain = chain_id_of(chain) + 1
    tx = Eip1559Tx(chain_id=other_chain, nonce=0, max_priority_fee_per_gas=1, max_fee_per_gas=2, gas=21000,
                   to=operator.address)
    with pytest.raises(SignerRpcError) as err:
        remote.sign_transaction(tx)
    assert f"refused eth_signTransaction: chainId {other_chain} is not this signer's chain" in str(err.value)
    assert err.value.code == -32602


def test_an_endpoint_that_is_not_json_rpc_is_named_as_such():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = RemoteSigner(f"http://127.0.0.1:{server.server_address[1]}/", a_stranger())
        with pytest.raises(SignerRpcError, match="HTTP 501 and no JSON-RPC response"):
            remote.check()
    finally:
        server.shutdown()
        server.server_close()


def test_the_stand_in_signer_refuses_a_wrong_password_and_a_non_loopback_host(operator, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    base = [sys.executable, "-m", "alignment_node.devnet.signer_server", "--keystore", str(operator.keystore)]
    out = subprocess.run(base + ["--password-file", str(wrong)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("error: wrong password for keystore file")
    out = subprocess.run(base + ["--password-file", str(operator.password_file), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "loopback only" in out.stderr


# --------------------------------------------------------------------------------------- configuration


def test_validate_config_checks_the_remote_signer(operator, signer, tmp_path, capsys, monkeypatch):
    manifest = tmp_path / "deployment.json"
    manifest.write_text(json.dumps({"chainId": 31337, "contracts": {}, "deployBlock": 0}))

    def validate(operator_section: str, env: dict | None = None) -> dict:
        """`alignment-node validate-config --json` (in this process: the CLI's start-up is slow here)."""
        cfg = tmp_path / "node.toml"
        cfg.write_text(f'[chain]\nmanifest = "deployment.json"\n[operator]\n{operator_section}')
        with monkeypatch.context() as m:
            for name, value in (env or {}).items():
                m.setenv(name, value)
            code = cli_main(["validate-config", "--config", str(cfg), "--json"])
        data = json.loads(capsys.readouterr().out)
        assert code == (0 if data["ok"] else 1)
        return data

    held = validate(f'signer = "remote"\nremote_signer_url = "{signer.url}"\naddress = "{operator.address}"\n')
    assert held == {"ok": True, "problems": []}

    incomplete = " ".join(validate('signer = "remote"\n')["problems"])
    assert "operator.remote_signer_url: signer = \"remote\" needs the signer's JSON-RPC URL" in incomplete
    assert "operator.address: signer = \"remote\" needs the address" in incomplete

    unknown = validate('signer = "kms"\n')["problems"]
    assert unknown == ["operator.signer: 'kms' is not one of keystore, remote"]

    dead_url = f"http://127.0.0.1:{free_port()}"
    dead = validate(f'signer = "remote"\nremote_signer_url = "{dead_url}"\naddress = "{operator.address}"\n')
    assert len(dead["problems"]) == 1 and f"remote signer {dead_url} is unreachable" in dead["problems"][0]

    stranger = a_stranger()
    wrong = validate(f'signer = "remote"\nremote_signer_url = "{signer.url}"\naddress = "{stranger}"\n')
    assert len(wrong["problems"]) == 1
    assert f"does not hold {stranger} (it holds {operator.address})" in wrong["problems"][0]

    # The same settings from the environment (the URL may carry a token, so it need not be in the file).
    from_env = validate("", {"ZG_ALIGNMENT_NODE_OPERATOR_SIGNER": "remote",
                                       "ZG_ALIGNMENT_NODE_OPERATOR_REMOTE_SIGNER_URL": signer.url + "/",
                                       "ZG_ALIGNMENT_NODE_OPERATOR_ADDRESS": operator.address})
    assert from_env == {"ok": True, "problems": []}


# ------------------------------------------------------------------------------------------- the node


def test_a_node_signing_remotely_heartbeats_and_reports_a_dead_signer_until_it_is_back(chain, tmp_path):
    """(``chain`` only skips this without anvil: the devnet starts its own.)"""
    net = Devnet(Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=2, block_time=None), tmp_path / "net",
                 log=lambda *_: None)
    remote = None
    try:
        asyncio.run(net.setup())
        op = net.operators[0]
        keystore = (op.directory / "keystore", op.directory / "password")
        remote = SignerServerProcess(*keystore).start()
        port = remote.port
        keystore_section = '[operator]\nkeystore = "keystore"\npassword_file = "password"\n'
        config = net.node_config(op)
        assert keystore_section in config
        start_node(op, config.replace(keystore_section, f'[operator]\nsigner = "remote"\nremote_signer_url = '
                                                        f'"{remote.url}"\naddress = "{op.address}"\n'))

        def heartbeat_epochs() -> set[int]:
            assert op.process.poll() is None, (op.directory / "node.out").read_text()[-3000:]

            async def go():
                async with RpcClient(net.anvil.url) as rpc:
                    protocol = manifest_contracts(rpc, net.manifest)["AuditProtocol"]
                    return await protocol.events("Heartbeat", 0, "latest")

            events = asyncio.run(go())
            assert all(to_checksum_address(e["operator"]) == op.address for e in events)
            return {e["epoch"] for e in events}

        first = wait_until(heartbeat_epochs, 60, "a heartbeat signed by the remote signer")
        # The signer dies; the next epoch's heartbeat cannot be signed, and /health says why.
        remote.stop()
        net.anvil.mine(net.plan.epoch_length)
        unreachable = f"remote signer http://127.0.0.1:{port} is unreachable"
        wait_until(lambda: unreachable in json.dumps(node_health(op)[1]), 60, "the dead signer in /health")
        assert heartbeat_epochs() == first
        # It comes back: the heartbeat of the new epoch goes out, the node never stopped.
        remote = SignerServerProcess(*keystore, port=port).start()
        net.anvil.mine(1)
        both = wait_until(lambda: len(heartbeat_epochs()) == 2 and heartbeat_epochs(), 60, "the late heartbeat")
        assert first < both
    finally:
        if remote is not None:
            remote.stop()
        net.stop()
