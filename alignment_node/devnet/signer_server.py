"""A local stand-in for Web3Signer's Ethereum JSON-RPC signing API, for the tests and the devnet.

    python -m alignment_node.devnet.signer_server --keystore DIR --password-file FILE [--port N] [--chain-id N]

It unlocks every key of an encrypted keystore directory (Ethereum keystore v3, ``alignment-node keys``) with the
password of a file's first line (or ``--password-env``), listens on loopback only and answers JSON-RPC 2.0 POSTs:

- ``eth_accounts``: the keystore's addresses, lowercase 0x-hex.
- ``eth_signTransaction`` with one transaction object in Web3Signer's field names: ``from`` (required, one of
  its addresses), ``to`` (absent or null: contract creation), ``gas`` (default 90000), ``maxFeePerGas`` and
  ``maxPriorityFeePerGas`` (required: only EIP-1559 transactions are signed; ``gasPrice`` is refused),
  ``nonce`` (required: this signer has no chain to ask), ``value`` (default 0), ``data`` (or ``input``; default
  empty), ``chainId`` (default ``--chain-id``; one that differs from ``--chain-id`` is refused) and ``type``
  (0x2 if given). The result is the raw signed type-2 transaction, 0x-hex.

Errors are JSON-RPC errors: -32700 (not JSON), -32600 (not a request), -32601 (unknown method), -32602 (bad
parameters, or a ``from`` address it does not hold). Once listening it prints one line,
``signer_server listening on <url> accounts <a,b,...>``, which ``SignerServerProcess`` waits for.

``--fault`` (devnet drills and tests of the node's checks only) makes it misbehave: ``other-fields`` signs the
transaction with another ``to`` and ``value``, ``other-key`` signs it with a throwaway key, ``slow`` answers
eth_signTransaction only after ``--delay`` seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..chain.keccak import is_address, to_checksum_address
from ..chain.tx import TX_TYPE_EIP1559, Eip1559Tx, LocalSigner
from ..errors import CliError
from ..keys import KeystoreError, list_addresses, load_signer, read_password
from .processes import ServerProcess, serve

FAULTS = ("other-fields", "other-key", "slow")
MAX_REQUEST_BYTES = 1 << 20
DEFAULT_GAS = 90_000  # Web3Signer's documented default when a request gives no gas


class RpcFailure(Exception):
    """A JSON-RPC error to answer with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _invalid(message: str) -> RpcFailure:
    return RpcFailure(-32602, message)


def _quantity(obj: dict, key: str, default: int | None = None) -> int:
    """A 0x-hex quantity of the transaction object (``default`` when absent; required when that is None)."""
    value = obj.get(key)
    if value is None:
        if default is None:
            raise _invalid(f"{key} is required")
        return default
    if not isinstance(value, str) or value[:2] not in ("0x", "0X") or len(value) < 3:
        raise _invalid(f"{key} must be a 0x-hex quantity, got {value!r}")
    try:
        return int(value[2:], 16)
    except ValueError:
        raise _invalid(f"{key} must be a 0x-hex quantity, got {value!r}") from None


def _data(obj: dict) -> bytes:
    decoded = []
    for key in ("data", "input"):
        text = obj.get(key)
        if text is None:
            continue
        if not isinstance(text, str) or text[:2] not in ("0x", "0X") or len(text) % 2:
            raise _invalid(f"{key} must be 0x-hex bytes")
        try:
            decoded.append(bytes.fromhex(text[2:]))
        except ValueError:
            raise _invalid(f"{key} must be 0x-hex bytes") from None
    if len(decoded) == 2 and decoded[0] != decoded[1]:
        raise _invalid("data and input differ")
    return decoded[0] if decoded else b""


class Signers:
    """The unlocked keys and the request handling (no HTTP here)."""

    def __init__(self, keys: list[LocalSigner], chain_id: int | None = None, fault: str | None = None,
                 delay: float = 30.0):
        self.keys = {k.address: k for k in keys}
        self.chain_id = chain_id
        self.fault = fault
        self.delay = delay
        self._impostor = LocalSigner(secrets.token_bytes(32)) if fault == "other-key" else None

    def handle(self, request) -> dict:
        """The JSON-RPC response object for one request object."""
        req_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcFailure(-32600, "not a JSON-RPC request object")
            params = request.get("params", [])
            if not isinstance(params, list):
                raise _invalid("params must be a list")
            if request["method"] == "eth_accounts":
                result = [a.lower() for a in self.keys]
            elif request["method"] == "eth_signTransaction":
                result = self.sign(params)
            else:
                raise RpcFailure(-32601, f"method {request['method']} is not served by this signer")
            return {"jsonrpc": "2.0", "id": req_id, "result": result}
        except RpcFailure as exc:
            return {"jsonrpc": "2.0", "id": req_id, "error": {"code": exc.code, "message": str(exc)}}

    def sign(self, params: list) -> str:
        if len(params) != 1 or not isinstance(params[0], dict):
            raise _invalid("eth_signTransaction takes one transaction object")
        obj = params[0]
        sender = obj.get("from")
        if not is_address(sender):
            raise _invalid("from must be a 0x-prefixed 20-byte address")
        key = self.keys.get(to_checksum_address(sender))
        if key is None:
            raise _invalid(f"from address {sender} is not an account of this signer")
        if obj.get("gasPrice") is not None:
            raise _invalid("only EIP-1559 transactions are signed: give maxFeePerGas and maxPriorityFeePerGas, "
                           "not gasPrice")
        if obj.get("type") is not None and _quantity(obj, "type") != TX_TYPE_EIP1559:
            raise _invalid("only type 0x2 (EIP-1559) transactions are signed")
        to = obj.get("to")
        if to is not None and not is_address(to):
            raise _invalid("to must be null or a 0x-prefixed 20-byte address")
        chain_id = _quantity(obj, "chainId", self.chain_id)
        if self.chain_id is not None and chain_id != self.chain_id:
            raise _invalid(f"chainId {chain_id} is not this signer's chain {self.chain_id}")
        try:
            tx = Eip1559Tx(chain_id=chain_id, nonce=_quantity(obj, "nonce"),
                           max_priority_fee_per_gas=_quantity(obj, "maxPriorityFeePerGas"),
                           max_fee_per_gas=_quantity(obj, "maxFeePerGas"), gas=_quantity(obj, "gas", DEFAULT_GAS),
                           to=to, value=_quantity(obj, "value", 0), data=_data(obj))
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        if self.fault == "other-fields":
            tx = dataclasses.replace(tx, to=key.address, value=tx.value + 1)
        elif self.fault == "other-key":
            key = self._impostor
        elif self.fault == "slow":
            time.sleep(self.delay)
        return "0x" + key.sign_transaction(tx).raw.hex()


def _handler(signers: Signers):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass  # one line per request would drown the devnet's logs

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit() or int(length) > MAX_REQUEST_BYTES:
                self._reply(413 if length and length.isdigit() else 411, {"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": f"a request needs a Content-Length of at most {MAX_REQUEST_BYTES}"}})
                return
            body = self.rfile.read(int(length))
            try:
                request = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                self._reply(200, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "not JSON"}})
                return
            self._reply(200, signers.handle(request))

        def _reply(self, status: int, answer: dict) -> None:
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unlock_all(keystore: str, password: str) -> list[LocalSigner]:
    """Every key of the keystore directory, decrypted (KeystoreError naming the problem)."""
    addresses = list_addresses(keystore)
    if not addresses:
        raise KeystoreError(f"keystore {keystore} holds no key")
    return [load_signer(keystore, password, a) for a in addresses]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="signer_server", description="A loopback stand-in for Web3Signer's JSON-RPC "
                                                                   "(eth_accounts, eth_signTransaction).")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    p.add_argument("--keystore", required=True, help="keystore directory (Ethereum keystore v3 files)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--password-file", help="file whose first line is the keystore password")
    g.add_argument("--password-env", help="environment variable holding the keystore password")
    p.add_argument("--chain-id", type=int, help="the chain it signs for (then a request's chainId must match; "
                                                "without it a request must give chainId)")
    p.add_argument("--fault", choices=FAULTS, help="devnet drills only: misbehave (see the module docstring)")
    p.add_argument("--delay", type=float, default=30.0, help="slow: seconds before each signature")
    args = p.parse_args(argv)
    try:
        if not _loopback(args.host):
            raise CliError(f"--host {args.host}: the stand-in signer listens on loopback only")
        keys = unlock_all(args.keystore, read_password(args.password_file, args.password_env))
        server = ThreadingHTTPServer((args.host, args.port), _handler(Signers(keys, args.chain_id, args.fault,
                                                                               args.delay)))
    except (CliError, KeystoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    serve(server, f"signer_server listening on http://{shown}:{port} accounts "
                  f"{','.join(k.address for k in keys)}")
    server.server_close()
    return 0


class SignerServerProcess(ServerProcess):
    """The stand-in signer as a process on a loopback port. Context manager; also start()/stop()."""

    name = "signer_server"
    module = "alignment_node.devnet.signer_server"

    def __init__(self, keystore, password_file, *, chain_id: int | None = None, fault: str | None = None,
                 delay: float | None = None, port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout: float = 30.0):
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")
        self.keystore, self.password_file = str(keystore), str(password_file)
        self.chain_id, self.fault, self.delay = chain_id, fault, delay
        self.mode = fault or "honest"
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    def _arguments(self) -> list[str]:
        return ["--keystore", self.keystore, "--password-file", self.password_file,
                *self._options(("--chain-id", self.chain_id), ("--fault", self.fault), ("--delay", self.delay))]


if __name__ == "__main__":
    sys.exit(main())
