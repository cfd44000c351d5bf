"""Contract bindings: read with `call`, write with `transact` (estimate, sign, send, wait, decode).

    token = Contract.from_artifact(rpc, "RewardToken", address)
    await token.call("balanceOf", owner)                      # -> int
    receipt = await token.transact("mint", to, 10**18, signer=deployer)

A revert (in the estimate, in eth_call or in the mined transaction) raises `ContractRevert` whose
`error` is the decoded custom error (name and arguments, from every artifact's ABI).
"""

from __future__ import annotations

import asyncio

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .abi import (
    ContractAbi,
    DecodedError,
    DecodedEvent,
    ErrorRegistry,
    EventRegistry,
)
from .artifacts import Artifact, decode_revert, default_event_registry, load_artifact
from .keccak import normalize_address
from .rpc import ReceiptTimeout, RpcClient, RpcError, RpcUnavailable, hex_int
from .tx import Eip1559Tx, LocalSigner, SignedTx, contract_address

__all__ = [
    "Contract",
    "ContractError",
    "ContractRevert",
    "TransactionFailed",
    "TxOptions",
    "TxReplaced",
    "build_transaction",
    "send_transaction",
    "deploy_contract",
    "receipt_events",
]

GAS_MARGIN_NUM, GAS_MARGIN_DEN = 6, 5  # gas limit = estimate * 1.2
GAS_MARGIN_MIN = 10_000


class ContractError(Exception):
    """Base of the errors raised by contract calls and transactions."""


class ContractRevert(ContractError):
    """A call or transaction reverted. `error` is the decoded reason (None for a bare revert)."""

    def __init__(
        self,
        what: str,
        error: DecodedError | None,
        data: bytes | None,
        tx_hash: str | None = None,
        receipt: dict | None = None,
        message: str | None = None,
    ):
        self.what = what
        self.error = error
        self.data = data
        self.tx_hash = tx_hash
        self.receipt = receipt
        reason = str(error) if error is not None else (message or "reverted without a reason")
        tail = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{what} reverted: {reason}{tail}")

    @property
    def error_name(self) -> str | None:
        return self.error.name if self.error is not None else None


class TransactionFailed(ContractError):
    """A transaction could not be sent or was dropped (not a revert)."""


@dataclass
class TxOptions:
    value: int = 0
    gas: int | None = None
    nonce: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    timeout: float = 60.0


def _is_revert(exc: RpcError) -> bool:
    msg = exc.message.lower()
    return exc.code == 3 or exc.revert_data is not None or "revert" in msg


def _revert_from_rpc(what: str, exc: RpcError, errors: ErrorRegistry | None) -> ContractRevert:
    data = exc.revert_data
    return ContractRevert(what, decode_revert(data, errors) if data else None, data, message=exc.message)


async def build_transaction(
    rpc: RpcClient,
    signer: LocalSigner,
    to: str | None,
    data: bytes,
    opts: TxOptions | None = None,
    what: str = "transaction",
    errors: ErrorRegistry | None = None,
) -> SignedTx:
    """Fill in chain id, nonce (pending), fees and gas (estimate * 1.2), then sign.
    A revert during the estimate raises ContractRevert with the decoded error."""
    opts = opts or TxOptions()
    chain_id = await rpc.chain_id()
    nonce = opts.nonce if opts.nonce is not None else await rpc.get_transaction_count(signer.address, "pending")
    if opts.max_fee_per_gas is None or opts.max_priority_fee_per_gas is None:
        max_fee, tip = await rpc.suggest_fees()
        max_fee = opts.max_fee_per_gas if opts.max_fee_per_gas is not None else max_fee
        tip = opts.max_priority_fee_per_gas if opts.max_priority_fee_per_gas is not None else min(tip, max_fee)
    else:
        max_fee, tip = opts.max_fee_per_gas, opts.max_priority_fee_per_gas
    gas = opts.gas
    if gas is None:
        call = {"from": signer.address, "to": to, "data": data, "value": opts.value}
        try:
            estimate = await rpc.estimate_gas(call)
        except RpcError as exc:
            if _is_revert(exc):
                raise _revert_from_rpc(what, exc, errors) from None
            raise
        gas = max(estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN, estimate + GAS_MARGIN_MIN)
    tx = Eip1559Tx(
        chain_id=chain_id,
        nonce=nonce,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=max_fee,
        gas=gas,
        to=to,
        value=opts.value,
        data=data,
    )
    # A remote signer (chain/remote_signer.py) signs off the event loop; a LocalSigner signs in place.
    sign_async = getattr(signer, "sign_transaction_async", None)
    return await sign_async(tx) if sign_async is not None else signer.sign_transaction(tx)


async def send_transaction(rpc: RpcClient, signed: SignedTx) -> str:
    """Send a signed transaction; "already known" (a resend through another endpoint) is success."""
    try:
        return await rpc.send_raw_transaction(signed.raw)
    except RpcError as exc:
        if "already known" in exc.message.lower() or "already imported" in exc.message.lower():
            return signed.hash
        raise TransactionFailed(f"sending {signed.hash} failed: {exc}") from exc


async def check_receipt(
    rpc: RpcClient, signed: SignedTx, receipt: dict, what: str, errors: ErrorRegistry | None = None
) -> dict:
    """Raise ContractRevert (replaying the call for its reason) when a mined transaction failed."""
    if hex_int(receipt.get("status", "0x1")) == 1:
        return receipt
    tx = signed.tx
    call = {"from": signed.sender, "to": tx.to, "data": tx.data, "value": tx.value, "gas": tx.gas}
    block = hex_int(receipt["blockNumber"])
    decoded = None
    data = None
    try:
        # State before the block (earlier transactions of the same block are not replayed).
        await rpc.call(call, max(block - 1, 0))
    except RpcError as exc:
        data = exc.revert_data
        decoded = decode_revert(data, errors) if data else None
    message = None if decoded else f"status 0, gas used {hex_int(receipt.get('gasUsed', '0x0'))} of {tx.gas}"
    raise ContractRevert(what, decoded, data, signed.hash, receipt, message)


async def transact_raw(
    rpc: RpcClient,
    signer: LocalSigner,
    to: str | None,
    data: bytes,
    opts: TxOptions | None = None,
    what: str = "transaction",
    errors: ErrorRegistry | None = None,
) -> dict:
    opts = opts or TxOptions()
    for attempt in range(NONCE_RETRIES + 1):
        signed = await build_transaction(rpc, signer, to, data, opts, what, errors)
        try:
            await send_transaction(rpc, signed)
            receipt = await wait_mined_or_replaced(rpc, signed, opts.timeout)
            break
        except TransactionFailed as exc:
            # Another process with the same key (the operator's node, while its owner runs a command) took this
            # nonce first, at sending or afterwards by a replacement in the pool: sign again on the next free one.
            # An explicit nonce is the caller's to resolve.
            if opts.nonce is not None or attempt == NONCE_RETRIES or not _nonce_taken(exc):
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    return await check_receipt(rpc, signed, receipt, what, errors)


NONCE_RETRIES = 3  # fresh nonces tried when another sender of the same key took the one chosen
NONCE_TAKEN = ("nonce too low", "replacement transaction underpriced", "already used", "nonce has already been used")
REPLACED_CHECK_S = 2.0  # how often a wait for a receipt asks whether the account's nonce moved past the transaction


class TxReplaced(TransactionFailed):
    """The account's nonce moved past a transaction that has no receipt: another transaction of the same key
    (signed elsewhere) took its nonce, so it can never be mined."""

    def __init__(self, signed: SignedTx):
        self.tx_hash = signed.hash
        super().__init__(f"transaction {signed.hash} was replaced: nonce {signed.tx.nonce} of {signed.sender} "
                         "was used by another transaction")


async def wait_mined_or_replaced(rpc: RpcClient, signed: SignedTx, timeout: float) -> dict:
    """The receipt of `signed`; TxReplaced as soon as its nonce is used by another transaction;
    ReceiptTimeout after `timeout` seconds. An endpoint down for a while is waited out as `wait_for_receipt` does:
    its failure is raised only at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            return await rpc.wait_for_receipt(signed.hash, timeout=max(0.0, min(REPLACED_CHECK_S, left)))
        except (ReceiptTimeout, RpcUnavailable):
            if left <= REPLACED_CHECK_S:
                raise
        try:
            if await rpc.get_transaction_count(signed.sender, "latest") <= signed.tx.nonce:
                continue
            receipt = await rpc.get_transaction_receipt(signed.hash)  # mined between the two reads
        except RpcUnavailable:
            continue
        if receipt is not None and receipt.get("blockNumber") is not None:
            return receipt
        raise TxReplaced(signed)


def _nonce_taken(exc: TransactionFailed) -> bool:
    if isinstance(exc, TxReplaced):
        return True
    cause = exc.__cause__
    return isinstance(cause, RpcError) and any(m in cause.message.lower() for m in NONCE_TAKEN)


def receipt_events(receipt: Mapping[str, Any]) -> list[DecodedEvent]:
    """Every log of a receipt that an artifact's ABI knows, decoded."""
    reg = default_event_registry()
    return [e for e in (reg.decode(log) for log in receipt.get("logs", ())) if e is not None]


class Contract:
    """A deployed contract: address + ABI, bound to an RpcClient."""

    def __init__(self, rpc: RpcClient, address: str, abi: ContractAbi | Sequence[Mapping[str, Any]], name: str | None = None):
        self.rpc = rpc
        self.address = normalize_address(address)
        self.abi = abi if isinstance(abi, ContractAbi) else ContractAbi(abi, name or "contract")
        self.name = name or self.abi.name
        self._events: EventRegistry | None = None

    @classmethod
    def from_artifact(cls, rpc: RpcClient, name: str, address: str, directory: str | None = None) -> Contract:
        art = load_artifact(name, directory)
        return cls(rpc, address, art.contract_abi, name)

    def __repr__(self) -> str:
        return f"Contract({self.name} at {self.address})"

    def encode(self, fn: str, *args: Any) -> bytes:
        return self.abi.encode_call(fn, *args)

    async def call(
        self, fn: str, *args: Any, block: int | str = "latest", sender: str | None = None, named: bool = False
    ) -> Any:
        """Run a function with eth_call and decode its result."""
        f = self.abi.function(fn, len(args))
        data = f.encode(*args)
        tx: dict[str, Any] = {"to": self.address, "data": data}
        if sender is not None:
            tx["from"] = sender
        try:
            out = await self.rpc.call(tx, block)
        except RpcError as exc:
            if _is_revert(exc):
                raise _revert_from_rpc(f"{self.name}.{f.name}", exc, None) from None
            raise
        return f.decode_output(out, named=named)

    async def transact(
        self,
        fn: str,
        *args: Any,
        signer: LocalSigner,
        value: int = 0,
        gas: int | None = None,
        nonce: int | None = None,
        timeout: float = 60.0,
    ) -> dict:
        """Estimate gas, sign, send and wait for the receipt. ContractRevert on a revert."""
        f = self.abi.function(fn, len(args))
        opts = TxOptions(value=value, gas=gas, nonce=nonce, timeout=timeout)
        return await transact_raw(self.rpc, signer, self.address, f.encode(*args), opts, f"{self.name}.{f.name}")

    async def events(
        self, name: str, from_block: int | str = "earliest", to_block: int | str = "latest"
    ) -> list[DecodedEvent]:
        """Logs of event `name` emitted by this contract, decoded."""
        ev = self.abi.event(name)
        if self._events is None:
            reg = EventRegistry()
            reg.add_abi(self.abi.raw)
            self._events = reg
        logs = await self.rpc.get_logs(self.address, [ev.topic], from_block, to_block)
        return [d for d in (self._events.decode(log) for log in logs) if d is not None and d.name == name]


async def deploy_contract(
    rpc: RpcClient,
    artifact: Artifact | str,
    args: Sequence[Any],
    signer: LocalSigner,
    opts: TxOptions | None = None,
) -> tuple[Contract, dict]:
    """Deploy `artifact` with constructor `args`; returns (Contract, receipt)."""
    art = load_artifact(artifact) if isinstance(artifact, str) else artifact
    cabi = art.contract_abi
    data = art.bytecode + cabi.encode_constructor(*args)
    receipt = await transact_raw(rpc, signer, None, data, opts, f"deploy {art.name}")
    address = receipt.get("contractAddress")
    if not address:
        raise TransactionFailed(f"deploy {art.name}: receipt has no contractAddress")
    return Contract(rpc, address, cabi, art.name), receipt


__all__ += ["check_receipt", "transact_raw", "contract_address"]
