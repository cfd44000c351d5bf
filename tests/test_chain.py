"""alignment_node.chain against a real anvil and tiny local HTTP servers (no mocks of our code)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from eth_abi import encode as abi_encode

from alignment_node.chain.abi import (
    AbiArgumentError,
    EventRegistry,
    function_selector,
)
from alignment_node.chain.artifacts import decode_revert, load_artifact
from alignment_node.chain.contracts import Contract, ContractRevert, deploy_contract
from alignment_node.chain.keccak import keccak256, to_checksum_address
from alignment_node.chain.rpc import (
    ReceiptTimeout,
    RpcBadResponse,
    RpcClient,
    RpcError,
    RpcUnavailable,
)
from alignment_node.chain.tx import Eip1559Tx, LocalSigner, contract_address, recover_sender, sign_transaction
from alignment_node.devnet.anvil import Anvil, free_port
from alignment_node.devnet.deploy import deploy_async

# anvil's well-known first dev account (public test vector: mnemonic "test test ... junk").
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDR_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_ADDR_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------- keccak/abi


def test_keccak_and_selectors_match_known_values():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert function_selector("transfer(address,uint256)").hex() == "a9059cbb"
    assert function_selector("Error(string)").hex() == "08c379a0"
    assert function_selector("Panic(uint256)").hex() == "4e487b71"


def test_checksum_address_matches_eip55_examples():
    for addr in (
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ):
        assert to_checksum_address(addr.lower()) == addr


def test_encode_call_checks_every_argument():
    sale = load_artifact("NodeSale").contract_abi
    with pytest.raises(AbiArgumentError, match=r"takes 5 argument"):
        sale.encode_call("buy", 1, 2)
    with pytest.raises(AbiArgumentError, match=r"'quantity' \(uint256\): expected int for uint256, got str"):
        sale.encode_call("buy", "1", 0, "", [], 0)
    with pytest.raises(AbiArgumentError, match=r"'maxCost'.*out of range"):
        sale.encode_call("buy", 1, -1, "", [], 0)
    with pytest.raises(AbiArgumentError, match=r"'proof\[0\]'|proof.*\[0\].*32 bytes"):
        sale.encode_call("buy", 1, 0, "", [b"\x01" * 31], 0)
    with pytest.raises(AbiArgumentError, match=r"no function 'sell'"):
        sale.encode_call("sell", 1)
    registry = load_artifact("OperatorRegistry").contract_abi
    with pytest.raises(AbiArgumentError, match="checksum"):
        registry.encode_call("isOperator", DEV_ADDR_0.replace("f39F", "F39F"))
    with pytest.raises(AbiArgumentError, match=r"uint16.*out of range"):
        registry.encode_call("registerOperator", 70000, "x")


def test_encode_call_matches_independent_encoding():
    sale = load_artifact("NodeSale").contract_abi
    data = sale.encode_call("buy", 3, 10**18, "PROMO", [b"\x11" * 32], 7)
    expected = bytes.fromhex(
        keccak256(b"buy(uint256,uint256,string,bytes32[],uint256)")[:4].hex()
    ) + abi_encode(["uint256", "uint256", "string", "bytes32[]", "uint256"], [3, 10**18, "PROMO", [b"\x11" * 32], 7])
    assert data == expected
    # a struct may be given as a dict by field name
    vault = load_artifact("RewardVault").contract_abi
    fields = dict(
        nodeShareBps=1, stakerShareBps=2, missBountyBps=3, missPenaltyBps=4, disagreePenaltyBps=5,
        trapPenaltyBps=6, suspendAfter=7, suspendWindow=8, suspendEpochs=9, emissionPerEpoch=10,
    )
    as_dict = vault.encode_call("setParams", fields)
    as_tuple = vault.encode_call("setParams", tuple(range(1, 11)))
    assert as_dict == as_tuple
    with pytest.raises(AbiArgumentError, match="missing"):
        vault.encode_call("setParams", {k: v for k, v in fields.items() if k != "suspendAfter"})


def test_decode_revert_builtin_and_custom_errors():
    err = decode_revert(bytes.fromhex("08c379a0") + abi_encode(["string"], ["nope"]))
    assert str(err) == 'Error(message="nope")'
    panic = decode_revert(bytes.fromhex("4e487b71") + abi_encode(["uint256"], [0x11]))
    assert panic.name == "Panic" and "overflow" in str(panic)
    sel = keccak256(b"SaleNotOpen(uint256,uint256)")[:4]
    e = decode_revert(sel + abi_encode(["uint256", "uint256"], [5, 9]))
    assert str(e) == "SaleNotOpen(nowTime=5, opensAt=9)"
    sel = keccak256(b"OwnableUnauthorizedAccount(address)")[:4]
    e = decode_revert(sel + abi_encode(["address"], [DEV_ADDR_1.lower()]))
    assert e.name == "OwnableUnauthorizedAccount" and e.values["account"] == DEV_ADDR_1
    unknown = decode_revert(bytes.fromhex("deadbeef01"))
    assert unknown.name == "UnknownError" and "0xdeadbeef01" in str(unknown)
    assert decode_revert(b"") is None


def test_decode_logs_by_topic_including_same_signature_different_indexing():
    reg = EventRegistry()
    reg.add_abi(load_artifact("RewardToken").abi)
    reg.add_abi(load_artifact("AlignmentLicense").abi)
    topic = keccak256(b"Transfer(address,address,uint256)")
    pad = lambda a: "0x" + "00" * 12 + a[2:].lower()  # noqa: E731
    erc20 = {
        "address": DEV_ADDR_0.lower(),
        "topics": ["0x" + topic.hex(), pad(DEV_ADDR_0), pad(DEV_ADDR_1)],
        "data": "0x" + (12345).to_bytes(32, "big").hex(),
        "blockNumber": "0x5",
        "logIndex": "0x0",
    }
    ev = reg.decode(erc20)
    assert ev.name == "Transfer" and ev.args == {"from": DEV_ADDR_0, "to": DEV_ADDR_1, "value": 12345}
    assert ev.block_number == 5
    erc721 = dict(erc20, topics=erc20["topics"] + ["0x" + (7).to_bytes(32, "big").hex()], data="0x")
    ev = reg.decode(erc721)
    assert ev.args == {"from": DEV_ADDR_0, "to": DEV_ADDR_1, "tokenId": 7}
    assert reg.decode(dict(erc20, topics=["0x" + "11" * 32])) is None


# ---------------------------------------------------------------------------------------- signing


def _rlp(item) -> bytes:
    """A minimal RLP encoder written here, independent of the `rlp` package."""
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _len_prefix(len(item), 0x80) + item
    body = b"".join(_rlp(x) for x in item)
    return _len_prefix(len(body), 0xC0) + body


def _len_prefix(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(ln)]) + ln


def test_signed_tx_recovers_the_signer_and_matches_independent_rlp():
    signer = LocalSigner(DEV_KEY_0)
    assert signer.address == DEV_ADDR_0
    assert DEV_KEY_0[2:] not in repr(signer) and DEV_KEY_0[2:] not in str(signer)
    tx = Eip1559Tx(chain_id=31337, nonce=7, max_priority_fee_per_gas=10**9, max_fee_per_gas=3 * 10**9,
                   gas=50_000, to=DEV_ADDR_1, value=12345, data=b"\x01\x02")
    signed = sign_transaction(tx, signer)
    fields = [31337, 7, 10**9, 3 * 10**9, 50_000, bytes.fromhex(DEV_ADDR_1[2:]), 12345, b"\x01\x02", []]
    assert tx.signing_hash() == keccak256(b"\x02" + _rlp(fields))
    assert signed.raw == b"\x02" + _rlp(fields + [signed.y_parity, signed.r, signed.s])
    assert signed.hash == "0x" + keccak256(signed.raw).hex()
    assert signed.s <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0  # low-s
    assert recover_sender(signed.raw) == DEV_ADDR_0
    # any change to a signed field changes the recovered sender
    tampered = b"\x02" + _rlp([31337, 8] + fields[2:] + [signed.y_parity, signed.r, signed.s])
    assert recover_sender(tampered) != DEV_ADDR_0


def test_anvil_accepts_signed_tx_with_our_hash_and_sender(anvil):
    async def go():
        async with RpcClient(anvil.url) as rpc:
            signer = LocalSigner(anvil.private_keys[0])
            to = anvil.accounts[5]
            before = await rpc.get_balance(to)
            max_fee, tip = await rpc.suggest_fees()
            tx = Eip1559Tx(await rpc.chain_id(), await rpc.get_transaction_count(signer.address), tip, max_fee,
                           21_000, to, 10**15)
            signed = signer.sign_transaction(tx)
            assert await rpc.send_raw_transaction(signed.raw) == signed.hash
            receipt = await rpc.wait_for_receipt(signed.hash, timeout=10)
            assert receipt["from"].lower() == signer.address.lower()
            assert receipt["status"] == "0x1"
            assert await rpc.get_balance(to) == before + 10**15
            got = await rpc.get_transaction(signed.hash)
            assert int(got["type"], 16) == 2 and int(got["chainId"], 16) == 31337

    run(go())


def test_a_transaction_whose_nonce_another_sender_of_the_key_took_is_signed_again_on_the_next(anvil):
    """The operator's node and its owner's command share one key: when the node's transaction takes the nonce the
    command chose (between its nonce read and its send), the command signs again on the next nonce; the node's
    transaction stands."""
    from alignment_node.chain.contracts import TxOptions, transact_raw

    signer = LocalSigner(anvil.private_keys[3])
    to = anvil.accounts[6]

    class Racing(RpcClient):
        competitor: str | None = None

        async def get_transaction_count(self, address, block="latest"):
            n = await super().get_transaction_count(address, block)
            if self.competitor is None:  # the node sends first, on the same nonce
                max_fee, tip = await self.suggest_fees()
                other = signer.sign_transaction(Eip1559Tx(31337, n, tip, max_fee, 21_000, to, 1))
                self.competitor = await self.send_raw_transaction(other.raw)
                await self.wait_for_receipt(self.competitor, timeout=10)
            return n

    async def go():
        async with Racing(anvil.url) as rpc:
            before = await rpc.get_balance(to)
            receipt = await transact_raw(rpc, signer, to, b"", TxOptions(value=10**15))
            assert receipt["status"] == "0x1"
            competitor = await rpc.get_transaction(rpc.competitor)
            assert int(receipt["blockNumber"], 16) >= int(competitor["blockNumber"], 16)
            mine = await rpc.get_transaction(receipt["transactionHash"])
            assert int(mine["nonce"], 16) == int(competitor["nonce"], 16) + 1
            assert await rpc.get_balance(to) == before + 10**15 + 1
            # With the nonce given, a taken nonce is the caller's to resolve: no second signature.
            with pytest.raises(Exception, match="nonce"):
                await transact_raw(rpc, signer, to, b"", TxOptions(value=1, nonce=int(mine["nonce"], 16)))

    run(go())


def test_a_transaction_replaced_in_the_pool_by_another_sender_of_the_key_is_signed_again_on_the_next(anvil):
    """The node's transaction replaces the command's in the pool (same nonce, higher fees) after the command sent
    it: the command sees the nonce used without its receipt, signs again on the next nonce and does not wait out
    its timeout for a transaction that can never be mined."""
    from alignment_node.chain.contracts import TxOptions, transact_raw

    signer = LocalSigner(anvil.private_keys[4])
    to = anvil.accounts[7]

    class Replacing(RpcClient):
        competitor: str | None = None

        async def send_raw_transaction(self, raw):
            sent = await super().send_raw_transaction(raw)
            if self.competitor is None:
                mine = await self.get_transaction(sent)
                fee, tip = int(mine["maxFeePerGas"], 16), int(mine["maxPriorityFeePerGas"], 16)
                other = signer.sign_transaction(Eip1559Tx(31337, int(mine["nonce"], 16), tip * 2 + 1, fee * 2 + 1,
                                                          21_000, to, 1))
                self.competitor = await super().send_raw_transaction(other.raw)
                await self.request("evm_setAutomine", [True])
                await self.request("evm_mine", [])
            return sent

    async def go():
        async with Replacing(anvil.url) as rpc:
            before = await rpc.get_balance(to)
            await rpc.request("evm_setAutomine", [False])
            t0 = time.monotonic()
            receipt = await transact_raw(rpc, signer, to, b"", TxOptions(value=10**15, timeout=30))
            assert time.monotonic() - t0 < 15  # found replaced at the first nonce check, not at the timeout
            competitor = await rpc.get_transaction(rpc.competitor)
            mine = await rpc.get_transaction(receipt["transactionHash"])
            assert int(mine["nonce"], 16) == int(competitor["nonce"], 16) + 1
            assert await rpc.get_balance(to) == before + 10**15 + 1

    run(go())


def test_a_wait_for_a_receipt_outlasts_an_endpoint_down_for_seconds(anvil):
    """The replacement check does not shorten the wait: an endpoint that answers nothing for 5 s (more than one
    2 s check) while the transaction is mined is waited out, and the receipt is returned."""
    from alignment_node.chain.contracts import REPLACED_CHECK_S, TxOptions, transact_raw

    signer = LocalSigner(anvil.private_keys[5])
    to = anvil.accounts[8]

    class Down(RpcClient):
        down_until = 0.0

        async def send_raw_transaction(self, raw):
            sent = await super().send_raw_transaction(raw)
            self.down_until = time.monotonic() + 2.5 * REPLACED_CHECK_S
            return sent

        async def request(self, method, params=()):
            if time.monotonic() < self.down_until:
                raise RpcUnavailable(f"{method}: endpoint down", [])
            return await super().request(method, params)

    async def go():
        async with Down(anvil.url) as rpc:
            receipt = await transact_raw(rpc, signer, to, b"", TxOptions(value=1, timeout=30))
            assert receipt["status"] == "0x1"
            assert time.monotonic() >= rpc.down_until

    run(go())


def test_contract_address_prediction_matches_anvil(anvil):
    assert contract_address(DEV_ADDR_0, 0) == "0x5FbDB2315678afecb367f032d93F642f64180aa3"

    async def go():
        async with RpcClient(anvil.url) as rpc:
            signer = LocalSigner(anvil.private_keys[1])
            nonce = await rpc.get_transaction_count(signer.address)
            token, receipt = await deploy_contract(rpc, "RewardToken", ["T", "T", signer.address], signer)
            assert token.address == contract_address(signer.address, nonce)
            await token.transact("mint", anvil.accounts[2], 5 * 10**18, signer=signer)
            assert await token.call("balanceOf", anvil.accounts[2]) == 5 * 10**18
            assert await token.call("symbol") == "T"
            events = await token.events("Transfer")
            assert [e.args for e in events] == [
                {"from": "0x0000000000000000000000000000000000000000", "to": to_checksum_address(anvil.accounts[2]),
                 "value": 5 * 10**18}
            ]

    run(go())


# ----------------------------------------------------------------------------- reverts, decoded


@pytest.fixture(scope="module")
def devnet():
    with Anvil() as node:
        manifest = run(deploy_async(node.url, node.private_keys[0]))
        yield node, manifest


def test_call_before_sale_opens_raises_sale_not_open(devnet):
    node, manifest = devnet
    opens_at = manifest["params"]["sale"]["allowlistStart"]

    async def go():
        async with RpcClient(node.url) as rpc:
            sale = Contract.from_artifact(rpc, "NodeSale", manifest["contracts"]["NodeSale"])
            with pytest.raises(ContractRevert) as info:
                await sale.call("buy", 1, 10**18, "", [], 0, sender=node.accounts[3])
            err = info.value.error
            assert err.name == "SaleNotOpen"
            assert err.values["opensAt"] == opens_at
            assert err.values["nowTime"] < opens_at
            assert str(err).startswith("SaleNotOpen(nowTime=") and f"opensAt={opens_at})" in str(err)
            assert "SaleNotOpen(" in str(info.value)

            buyer = LocalSigner(node.private_keys[3])
            # reverts in the gas estimate
            with pytest.raises(ContractRevert) as info:
                await sale.transact("buy", 1, 10**18, "", [], 0, signer=buyer, value=10**17)
            assert info.value.error_name == "SaleNotOpen" and info.value.tx_hash is None
            # mined and reverted (gas given, so no estimate): the reason is recovered by replay
            with pytest.raises(ContractRevert) as info:
                await sale.transact("buy", 1, 10**18, "", [], 0, signer=buyer, value=10**17, gas=200_000)
            assert info.value.error_name == "SaleNotOpen"
            assert info.value.receipt["status"] == "0x0" and info.value.tx_hash.startswith("0x")

    run(go())


def test_rpc_error_carries_code_message_and_data(anvil_session):
    async def go():
        async with RpcClient(anvil_session.url) as rpc:
            with pytest.raises(RpcError) as info:
                await rpc.request("eth_noSuchMethod", [])
            assert info.value.code == -32601 and "not found" in info.value.message.lower()
            with pytest.raises(RpcError) as info:
                await rpc.request("eth_getBalance", ["0x1234", "latest"])
            assert info.value.code != 0

    run(go())


def test_wait_for_receipt_times_out_for_unknown_tx(anvil_session):
    async def go():
        async with RpcClient(anvil_session.url) as rpc:
            t = time.monotonic()
            with pytest.raises(ReceiptTimeout):
                await rpc.wait_for_receipt("0x" + "ab" * 32, timeout=0.3, poll_interval=0.05)
            assert time.monotonic() - t < 2

    run(go())


# ------------------------------------------------------------------------------ failover, garbage


def test_failover_skips_dead_endpoint(anvil_session):
    dead = f"http://127.0.0.1:{free_port()}"

    async def go():
        async with RpcClient([dead, anvil_session.url], timeout=2) as rpc:
            assert await rpc.chain_id() == 31337
            assert await rpc.block_number() >= 0
            assert rpc.endpoints[rpc._preferred].url == anvil_session.url
        async with RpcClient([dead, f"http://127.0.0.1:{free_port()}"], timeout=2) as rpc:
            with pytest.raises(RpcUnavailable) as info:
                await rpc.block_number()
            assert len(info.value.errors) == 2
            assert all(isinstance(e, ConnectionError) for _, e in info.value.errors)

    run(go())


class _Server:
    """A raw TCP server on loopback answering every request with `reply` (or never, if None)."""

    def __init__(self, reply: bytes | None, close: bool = True):
        self.reply = reply
        self.close = close
        self.requests = 0

    async def __aenter__(self):
        async def handle(reader, writer):
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    self.requests += 1
                    if self.reply is None:
                        await asyncio.sleep(3600)
                    writer.write(self.reply)
                    await writer.drain()
                    if self.close:
                        break
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def _http(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (
        len(body),
        extra,
    ) + body


@pytest.mark.parametrize(
    "reply, message",
    [
        (b"garbage that is not http\r\n\r\n", "malformed HTTP status line"),
        (_http(b"<html>hello</html>"), "malformed JSON"),
        (_http(b"[1, 2, 3]"), "not a JSON-RPC object"),
        (_http(b'{"jsonrpc":"2.0","id":999,"result":"0x1"}'), "does not match request id"),
        (_http(b'{"jsonrpc":"2.0","id":1}'), "neither result nor error"),
        (_http(b'{"jsonrpc":"2.0","id":1,"error":"bad"}'), "malformed JSON-RPC error"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n{}", "larger than"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 8,
         "larger than"),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad", "HTTP 502"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n", "malformed HTTP response|too large"),
    ],
)
def test_bad_responses_raise_clear_errors(reply, message):
    async def go():
        async with _Server(reply) as srv:
            async with RpcClient(srv.url, timeout=2, max_response_bytes=4096) as rpc:
                with pytest.raises(RpcUnavailable, match=message) as info:
                    await rpc.request("eth_blockNumber")
                assert isinstance(info.value.errors[0][1], RpcBadResponse)
                assert isinstance(info.value.__cause__, RpcBadResponse)

    run(go())


def test_chunked_keepalive_response_is_read_and_connection_reused():
    body = b'{"jsonrpc":"2.0","id":%d,"result":"0x2a"}'

    async def go():
        # ids increase per request, so answer each request with the right id, on one connection
        if True:
            calls = []
            conns = []

            async def handle(reader, writer):
                conns.append(writer)
                try:
                    while True:
                        head = await reader.readuntil(b"\r\n\r\n")
                        n = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
                        req = json.loads(await reader.readexactly(n))
                        calls.append(req["id"])
                        payload = body % req["id"]
                        half = len(payload) // 2
                        writer.write(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, payload[:half], len(payload) - half, payload[half:])
                        )
                        await writer.drain()
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            async with RpcClient(url, timeout=2) as rpc:
                assert await rpc.block_number() == 42
                assert await rpc.block_number() == 42
            server.close()
            assert calls == [1, 2]
            assert len(conns) == 1  # keep-alive: the second request reused the connection

    run(go())


def test_garbage_endpoint_fails_over_to_anvil(anvil_session):
    async def go():
        async with _Server(b"\x00\x01garbage\r\n\r\n") as srv:
            async with RpcClient([srv.url, anvil_session.url], timeout=2) as rpc:
                assert await rpc.chain_id() == 31337
            assert srv.requests == 1

    run(go())


def test_silent_server_times_out():
    async def go():
        async with _Server(None) as srv:
            async with RpcClient(srv.url, timeout=0.3) as rpc:
                t = time.monotonic()
                with pytest.raises(RpcUnavailable, match="no answer within 0.3s") as info:
                    await rpc.request("eth_chainId")
                assert time.monotonic() - t < 1.5
                assert isinstance(info.value.errors[0][1], TimeoutError)

    run(go())


# ------------------------------------------------------------------------------------ anvil, imports


def test_anvil_stop_leaves_no_process():
    node = Anvil(block_time=1).start()
    pid = node.pid
    assert node.block_number() >= 0
    node.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    node.stop()  # idempotent


def test_chain_modules_import_lean():
    code = (
        "import sys\n"
        "import alignment_node.chain.contracts, alignment_node.chain.rpc, alignment_node.chain.abi, alignment_node.chain.artifacts\n"
        "alignment_node.chain.artifacts.default_error_registry()\n"
        "bad = [m for m in ('web3', 'requests', 'aiohttp', 'pydantic', 'eth_account') if m in sys.modules]\n"
        # VmHWM is this process's own peak (ru_maxrss would include the forked pytest's)
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(str(bad).replace(' ', ''), int(hwm) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "[]", out
    assert int(out[1]) < 40, f"importing the chain toolkit takes {out[1]} MB"
