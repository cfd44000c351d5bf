"""EIP-1559 (type 2) transactions: building, signing with coincurve, RLP encoding, sender recovery.

    signed = sign_transaction(Eip1559Tx(chain_id=..., nonce=..., ...), signer)
    signed.raw          # bytes for eth_sendRawTransaction
    signed.hash         # 0x-hex transaction hash (keccak256 of the raw envelope)

A `LocalSigner` holds a private key in memory and never shows it (repr, str, logging).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import rlp
from coincurve import PrivateKey, PublicKey

from .keccak import keccak256, normalize_address, to_checksum_address

__all__ = [
    "TX_TYPE_EIP1559",
    "Eip1559Tx",
    "SignedTx",
    "LocalSigner",
    "sign_transaction",
    "recover_sender",
    "decode_signed_transaction",
    "contract_address",
    "load_key",
    "InvalidKeyError",
]

TX_TYPE_EIP1559 = 2
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class InvalidKeyError(ValueError):
    """A private key that cannot be used (the message never contains the key)."""


def _addr_bytes(address: str | bytes | None) -> bytes:
    if address is None or address == b"":
        return b""
    if isinstance(address, (bytes, bytearray)):
        if len(address) != 20:
            raise ValueError("an address is 20 bytes")
        return bytes(address)
    return bytes.fromhex(normalize_address(address)[2:])


def _uint(name: str, value: int, bits: int = 256) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << bits:
        raise ValueError(f"{name} must be an unsigned {bits}-bit integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Eip1559Tx:
    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: str | None  # None: contract creation
    value: int = 0
    data: bytes = b""
    access_list: tuple = ()  # ((address, (slot32, ...)), ...)

    def __post_init__(self) -> None:
        _uint("chain_id", self.chain_id)
        _uint("nonce", self.nonce, 64)
        _uint("max_priority_fee_per_gas", self.max_priority_fee_per_gas)
        _uint("max_fee_per_gas", self.max_fee_per_gas)
        _uint("gas", self.gas, 64)
        _uint("value", self.value)
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError("max_priority_fee_per_gas exceeds max_fee_per_gas")
        if not isinstance(self.data, (bytes, bytearray)):
            raise ValueError("data must be bytes")
        if self.to is not None:
            _addr_bytes(self.to)

    def _fields(self) -> list:
        access = [
            [_addr_bytes(a), [bytes(s) for s in slots]] for a, slots in self.access_list
        ]
        return [
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas,
            _addr_bytes(self.to),
            self.value,
            bytes(self.data),
            access,
        ]

    def signing_hash(self) -> bytes:
        """keccak256(0x02 || rlp([chainId, nonce, maxPriorityFee, maxFee, gas, to, value, data, accessList]))."""
        return keccak256(bytes([TX_TYPE_EIP1559]) + rlp.encode(self._fields()))


@dataclass(frozen=True)
class SignedTx:
    tx: Eip1559Tx
    raw: bytes
    hash: str
    sender: str
    y_parity: int
    r: int
    s: int


class LocalSigner:
    """A private key held in memory. Its repr shows only the address."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes | str):
        if isinstance(private_key, str):
            text = private_key.strip()
            if text[:2] in ("0x", "0X"):
                text = text[2:]
            if len(text) != 64:
                raise InvalidKeyError("a private key is 32 bytes (64 hex digits)")
            try:
                private_key = bytes.fromhex(text)
            except ValueError:
                raise InvalidKeyError("the private key is not hex") from None
        if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
            raise InvalidKeyError("a private key is 32 bytes")
        k = int.from_bytes(private_key, "big")
        if not 0 < k < SECP256K1_N:
            raise InvalidKeyError("the private key is outside the secp256k1 range")
        self._key = PrivateKey(bytes(private_key))
        pub = self._key.public_key.format(compressed=False)[1:]
        self.address = to_checksum_address(keccak256(pub)[12:])

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the key by accident
        raise TypeError("LocalSigner cannot be pickled")

    def key_fingerprint(self) -> bytes:
        """keccak256 of the key's 32 bytes: lets a log filter recognise the key written as hex without
        holding the key itself."""
        return keccak256(self._key.secret)

    def sign_digest(self, digest: bytes) -> tuple[int, int, int]:
        """(y_parity, r, s) of a 32-byte digest (low-s, as libsecp256k1 always produces)."""
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[64], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")

    def sign_transaction(self, tx: Eip1559Tx) -> SignedTx:
        return sign_transaction(tx, self)


def sign_transaction(tx: Eip1559Tx, signer: LocalSigner) -> SignedTx:
    y, r, s = signer.sign_digest(tx.signing_hash())
    raw = bytes([TX_TYPE_EIP1559]) + rlp.encode(tx._fields() + [y, r, s])
    return SignedTx(tx, raw, "0x" + keccak256(raw).hex(), signer.address, y, r, s)


def decode_signed_transaction(raw: bytes) -> tuple[Eip1559Tx, int, int, int]:
    """Parse a signed type-2 envelope into (tx, y_parity, r, s)."""
    raw = bytes(raw)
    if not raw or raw[0] != TX_TYPE_EIP1559:
        raise ValueError("not an EIP-1559 (type 2) transaction")
    items = rlp.decode(raw[1:])
    if not isinstance(items, list) or len(items) != 12:
        raise ValueError("a signed type-2 transaction has 12 RLP fields")

    def num(b: bytes) -> int:
        if b[:1] == b"\x00":
            raise ValueError("non-canonical integer (leading zero)")
        return int.from_bytes(b, "big")

    to = items[5]
    if to not in (b"",) and len(to) != 20:
        raise ValueError("bad `to` length")
    tx = Eip1559Tx(
        chain_id=num(items[0]),
        nonce=num(items[1]),
        max_priority_fee_per_gas=num(items[2]),
        max_fee_per_gas=num(items[3]),
        gas=num(items[4]),
        to=to_checksum_address(to) if to else None,
        value=num(items[6]),
        data=bytes(items[7]),
        access_list=tuple((to_checksum_address(a), tuple(slots)) for a, slots in items[8]),
    )
    return tx, num(items[9]), num(items[10]), num(items[11])


def recover_sender(raw: bytes) -> str:
    """The address that signed a raw type-2 transaction (checks the signature is well formed)."""
    tx, y, r, s = decode_signed_transaction(raw)
    if y not in (0, 1) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise ValueError("invalid signature values")
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([y])
    pub = PublicKey.from_signature_and_message(sig, tx.signing_hash(), hasher=None)
    return to_checksum_address(keccak256(pub.format(compressed=False)[1:])[12:])


def contract_address(sender: str, nonce: int) -> str:
    """Address of the contract that `sender` creates with transaction nonce `nonce` (CREATE)."""
    return to_checksum_address(keccak256(rlp.encode([_addr_bytes(sender), nonce]))[12:])


def load_key(env_var: str | None = None, path: str | Path | None = None) -> LocalSigner:
    """A signer from an environment variable or a file (first line, hex). Errors never echo the key."""
    if (env_var is None) == (path is None):
        raise InvalidKeyError("give exactly one of an environment variable or a key file")
    if env_var is not None:
        text = os.environ.get(env_var)
        if not text:
            raise InvalidKeyError(f"environment variable {env_var} is not set or empty")
        where = f"environment variable {env_var}"
    else:
        p = Path(path)  # type: ignore[arg-type]
        try:
            lines = p.read_text().strip().splitlines()
        except OSError as exc:
            raise InvalidKeyError(f"cannot read key file {p}: {exc.strerror}") from None
        text = lines[0] if lines else ""
        if not text:
            raise InvalidKeyError(f"key file {p} is empty")
        where = f"key file {p}"
    try:
        return LocalSigner(text)
    except InvalidKeyError as exc:
        raise InvalidKeyError(f"{where}: {exc}") from None
