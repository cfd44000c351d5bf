"""Signing through a remote signer that speaks Web3Signer's Ethereum JSON-RPC, so the operator key never sits on
the node's disk (it stays in the signer, or the KMS or vault behind it).

    signer = RemoteSigner("http://127.0.0.1:9000", "0xAbC...", timeout=5.0)
    signer.check()                                     # it answers eth_accounts and holds the address
    signed = signer.sign_transaction(tx)               # blocking, a SignedTx like LocalSigner's
    signed = await signer.sign_transaction_async(tx)   # the same in a worker thread: the event loop keeps running

Two methods are used: ``eth_accounts`` (the addresses the signer holds) and ``eth_signTransaction`` with one
transaction object, in Web3Signer's field names: ``from``, ``to`` (null for a contract creation), ``gas``,
``maxFeePerGas``, ``maxPriorityFeePerGas``, ``nonce``, ``value``, ``data``, each quantity 0x-hex; the standard
``chainId`` and ``type`` (0x2) are sent too. The answer is the raw signed transaction, 0x-hex.

Nothing the signer answers is trusted: the raw transaction is decoded, every field must be the one asked for
(chain id, nonce, fees, gas, to, value, data, no access list) and the signature must recover to the configured
address; otherwise ``SignerAnswerRejected`` says what differs and the transaction is never sent. Each request
waits at most ``timeout`` seconds per connect/read. Failures are ``RemoteSignerError``s (a ``TransactionFailed``,
so a node service treats one like any transaction it could not send): ``SignerUnreachable`` (refused, timed out,
cut off), ``SignerRpcError`` (a JSON-RPC error or a non-JSON-RPC answer), ``SignerAddressNotHeld``,
``SignerAnswerRejected``. Messages show the signer as scheme://host:port only, since a URL's path may carry a
token.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import re
import socket
import ssl

import rlp

from ..http1 import Endpoint
from .contracts import TransactionFailed
from .keccak import is_address, keccak256, normalize_address, to_checksum_address
from .tx import TX_TYPE_EIP1559, Eip1559Tx, SignedTx, decode_signed_transaction, recover_sender

__all__ = [
    "RemoteSigner",
    "RemoteSignerError",
    "SignerUnreachable",
    "SignerRpcError",
    "SignerAddressNotHeld",
    "SignerAnswerRejected",
    "transaction_object",
    "verify_signed",
]

DEFAULT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 1 << 20  # a signed transaction is at most a few hundred kB of hex (contract creation)
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
# The fields compared between the transaction asked for and the one signed, in the order of the RLP list.
_FIELDS = ("chain_id", "nonce", "max_priority_fee_per_gas", "max_fee_per_gas", "gas", "to", "value", "data",
           "access_list")


class RemoteSignerError(TransactionFailed):
    """The remote signer did not give a usable signature (the message says why and what to check)."""


class SignerUnreachable(RemoteSignerError):
    """No answer: connection refused, timed out, or cut off."""


class SignerRpcError(RemoteSignerError):
    """The signer answered with a JSON-RPC error (``code``, ``rpc_message``) or not with JSON-RPC at all."""

    def __init__(self, message: str, code: int | None = None, rpc_message: str = ""):
        super().__init__(message)
        self.code = code
        self.rpc_message = rpc_message


class SignerAddressNotHeld(RemoteSignerError):
    """The signer does not hold the operator's address (``held``: the addresses it does hold)."""

    def __init__(self, message: str, held: list[str]):
        super().__init__(message)
        self.held = held


class SignerAnswerRejected(RemoteSignerError):
    """The signer answered with something other than the transaction asked for, signed by the operator."""


def _quantity(value: int) -> str:
    return hex(value)


def transaction_object(tx: Eip1559Tx, sender: str) -> dict:
    """The eth_signTransaction parameter for ``tx`` from ``sender``, in Web3Signer's field names."""
    if tx.access_list:
        raise ValueError("a remote signer is not asked to sign an access list (Web3Signer's object has none)")
    return {
        "from": normalize_address(sender).lower(),
        "to": normalize_address(tx.to).lower() if tx.to is not None else None,
        "gas": _quantity(tx.gas),
        "maxFeePerGas": _quantity(tx.max_fee_per_gas),
        "maxPriorityFeePerGas": _quantity(tx.max_priority_fee_per_gas),
        "nonce": _quantity(tx.nonce),
        "value": _quantity(tx.value),
        "data": "0x" + bytes(tx.data).hex(),
        "chainId": _quantity(tx.chain_id),
        "type": _quantity(TX_TYPE_EIP1559),
    }


def _comparable(tx: Eip1559Tx, name: str):
    value = getattr(tx, name)
    if name == "to":
        return normalize_address(value) if value is not None else None
    if name == "data":
        return bytes(value)
    return value


def _shown(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes 0x{bytes(value[:8]).hex()}{'...' if len(value) > 8 else ''}"
    return repr(value)


def verify_signed(tx: Eip1559Tx, raw: bytes, address: str, who: str = "the remote signer") -> SignedTx:
    """``raw`` as a SignedTx if it is exactly ``tx`` signed by ``address``; SignerAnswerRejected otherwise."""
    try:
        got, y, r, s = decode_signed_transaction(raw)
        sender = recover_sender(raw)
    except (ValueError, rlp.exceptions.RLPException) as exc:
        raise SignerAnswerRejected(f"{who} answered with bytes that are not a signed EIP-1559 transaction ({exc}); "
                                   "nothing was sent") from None
    diffs = [f"{name}: asked {_shown(_comparable(tx, name))}, got {_shown(_comparable(got, name))}"
             for name in _FIELDS if _comparable(tx, name) != _comparable(got, name)]
    if diffs:
        raise SignerAnswerRejected(f"{who} signed a transaction other than the one asked for ({'; '.join(diffs)}); "
                                   "nothing was sent")
    wanted = to_checksum_address(address)
    if sender != wanted:
        raise SignerAnswerRejected(f"{who} signed with the key of {sender}, not {wanted}: check which key it holds "
                                   "for that address; nothing was sent")
    return SignedTx(tx, bytes(raw), "0x" + keccak256(bytes(raw)).hex(), wanted, y, r, s)


class RemoteSigner:
    """The operator's address whose key lives in a Web3Signer-compatible signer at ``url``. It presents what
    the node uses of a LocalSigner: ``address`` and ``sign_transaction(tx) -> SignedTx``."""

    def __init__(self, url: str, address: str, timeout: float = DEFAULT_TIMEOUT_S):
        try:
            self._endpoint = Endpoint.parse(url)
        except ValueError as exc:
            raise ValueError(f"remote signer URL: {exc}") from None
        if not is_address(address):
            raise ValueError(f"remote signer address {address!r} is not a 0x-prefixed 20-byte hex address")
        if not timeout > 0:
            raise ValueError("remote signer timeout must be > 0 seconds")
        self.address = normalize_address(address)  # rejects a mixed-case address whose checksum is wrong
        self.timeout = float(timeout)
        self._ids = itertools.count(1)

    @property
    def label(self) -> str:
        """What messages and logs show of the signer's URL: scheme://host:port."""
        return self._endpoint.label

    def __repr__(self) -> str:
        return f"RemoteSigner({self.address} at {self.label})"

    __str__ = __repr__

    # ------------------------------------------------------------------------------------- JSON-RPC

    def _call(self, method: str, params: list):
        """One JSON-RPC request; its result, or a RemoteSignerError naming the signer and the method."""
        ep = self._endpoint
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        if ep.scheme == "https":
            conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)
        try:
            conn.request("POST", ep.target, body, {"Content-Type": "application/json", "Host": ep.host_header})
            resp = conn.getresponse()
            payload = resp.read(MAX_ANSWER_BYTES + 1)
            status = resp.status
        except (TimeoutError, socket.timeout):
            raise SignerUnreachable(f"remote signer {self.label} did not answer {method} within {self.timeout:g} s: "
                                    "is it overloaded, or is operator.remote_signer_url the right one?") from None
        except ssl.SSLError as exc:
            raise SignerUnreachable(f"remote signer {self.label}: TLS failed ({exc.reason or exc})") from None
        except OSError as exc:
            reason = exc.strerror or exc.__class__.__name__
            raise SignerUnreachable(f"remote signer {self.label} is unreachable ({reason}): is it running, and is "
                                    "operator.remote_signer_url right?") from None
        except http.client.HTTPException as exc:
            raise SignerUnreachable(f"remote signer {self.label} broke off its answer to {method} "
                                    f"({exc.__class__.__name__})") from None
        finally:
            conn.close()
        if len(payload) > MAX_ANSWER_BYTES:
            raise SignerRpcError(f"remote signer {self.label} answered {method} with more than "
                                 f"{MAX_ANSWER_BYTES} bytes")
        try:
            answer = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise SignerRpcError(f"remote signer {self.label} answered {method} with HTTP {status} and no JSON-RPC "
                                 "response: is operator.remote_signer_url a Web3Signer JSON-RPC endpoint?")
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            raise SignerRpcError(f"remote signer {self.label} refused {method}: {text[:300]} (code {code})",
                                 code if isinstance(code, int) else None, text)
        return answer["result"]

    def accounts(self) -> list[str]:
        """The addresses the signer holds (eth_accounts), checksummed."""
        result = self._call("eth_accounts", [])
        if not isinstance(result, list) or not all(isinstance(a, str) and is_address(a) for a in result):
            raise SignerRpcError(f"remote signer {self.label} answered eth_accounts with something other than "
                                 "a list of addresses")
        return [to_checksum_address(a) for a in result]

    def check(self) -> list[str]:
        """Raise unless the signer answers and holds ``address``; returns what it holds."""
        held = self.accounts()
        if self.address not in held:
            raise self._not_held(held)
        return held

    def _not_held(self, held: list[str]) -> SignerAddressNotHeld:
        holds = ", ".join(held) if held else "no key at all"
        return SignerAddressNotHeld(f"remote signer {self.label} does not hold {self.address} (it holds {holds}): "
                                    "set operator.address to the signer's key, or load the key into the signer",
                                    held)

    # -------------------------------------------------------------------------------------- signing

    def sign_transaction(self, tx: Eip1559Tx) -> SignedTx:
        """``tx`` signed by the remote signer and verified; blocks for at most about ``timeout`` seconds."""
        request = transaction_object(tx, self.address)
        try:
            result = self._call("eth_signTransaction", [request])
        except SignerRpcError as refused:
            # Tell "that key is not here" from any other refusal: error codes differ between signers.
            try:
                held = self.accounts()
            except RemoteSignerError:
                raise refused from None
            if self.address not in held:
                raise self._not_held(held) from None
            raise
        if not isinstance(result, str) or not _HEX.fullmatch(result) or len(result) < 4:
            raise SignerAnswerRejected(f"remote signer {self.label} answered eth_signTransaction with "
                                       f"{repr(result)[:80]}, "
                                       "not a raw transaction in 0x-hex; nothing was sent")
        return verify_signed(tx, bytes.fromhex(result[2:]), self.address, f"remote signer {self.label}")

    async def sign_transaction_async(self, tx: Eip1559Tx) -> SignedTx:
        """``sign_transaction`` in a worker thread, so a slow signer does not stall the event loop."""
        return await asyncio.to_thread(self.sign_transaction, tx)
