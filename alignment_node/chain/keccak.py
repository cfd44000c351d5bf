"""Keccak-256 (the pre-NIST padding Ethereum uses) and EIP-55 address checksums."""

from __future__ import annotations

import sha3  # safe-pysha3

__all__ = ["keccak256", "to_checksum_address", "normalize_address", "is_address"]


def keccak256(data: bytes | bytearray | memoryview) -> bytes:
    """Keccak-256 digest of `data` (32 bytes): any C-contiguous buffer, hashed without a copy. The one
    implementation: ``protocol.keccak`` and ``zgs.merkle.keccak`` are this function."""
    return sha3.keccak_256(data).digest()


_HEX = frozenset("0123456789abcdefABCDEF")


def is_address(value: object) -> bool:
    """True for a 0x-prefixed string of 40 hex digits (any case; the checksum is not checked)."""
    return (
        isinstance(value, str)
        and len(value) == 42
        and value[:2] in ("0x", "0X")
        and all(c in _HEX for c in value[2:])
    )


def to_checksum_address(address: str | bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address given as bytes or hex."""
    if isinstance(address, (bytes, bytearray)):
        if len(address) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(address)}")
        low = bytes(address).hex()
    else:
        if not is_address(address):
            raise ValueError(f"not an address: {address!r}")
        low = address[2:].lower()
    digest = keccak256(low.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(low, digest))


def normalize_address(address: str | bytes) -> str:
    """Checksummed address; rejects a mixed-case string whose checksum is wrong."""
    if isinstance(address, str) and is_address(address):
        body = address[2:]
        if body != body.lower() and body != body.upper():
            checked = to_checksum_address(address)
            if checked[2:] != body:
                raise ValueError(f"bad EIP-55 checksum: {address}")
            return checked
    return to_checksum_address(address)
