"""Operator keys in an encrypted keystore (Ethereum keystore v3, scrypt), unlocked without a prompt.

The private key exists in clear only in memory, inside a ``LocalSigner``; nothing here writes, prints or logs it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import coincurve

from .chain.keccak import is_address, keccak256, to_checksum_address

if TYPE_CHECKING:
    from .chain.tx import LocalSigner

# scrypt cost of new keystores: geth's "light" setting keeps unlocking under a second on small machines.
SCRYPT_N = 1 << 14
SCRYPT_P = 1
# What unlocking may take at the node's start (scrypt needs 128 * r * n bytes at once: 16 MB for the keystores
# written here, 256 MB for geth's standard n = 2^18): the node runs in 64 MB, about 50 of them its own.
UNLOCK_MEMORY_LIMIT = 32 << 20


class KeystoreError(Exception):
    """A keystore problem a user can act on (message says what and where)."""


def address_of_public_key(public_key: coincurve.PublicKey) -> str:
    """Checksummed (EIP-55) address of a secp256k1 public key."""
    return to_checksum_address(keccak256(public_key.format(compressed=False)[1:])[-20:])


def to_checksum(hex_address: str) -> str:
    """EIP-55 checksum form of an address; ValueError if it is not 20 bytes of hex."""
    prefixed = hex_address if hex_address[:2] in ("0x", "0X") else "0x" + hex_address
    if not is_address(prefixed):
        raise ValueError(f"not a 20-byte hex address: {hex_address!r}")
    return to_checksum_address(prefixed)


def Signer(private_key: bytes) -> LocalSigner:  # noqa: N802 (reads like the class it returns)
    """A LocalSigner for ``private_key``, with keystore-style errors."""
    from .chain.tx import InvalidKeyError, LocalSigner  # imported when needed: the node unlocks before its imports

    try:
        return LocalSigner(private_key)
    except InvalidKeyError as exc:
        raise KeystoreError(str(exc)) from None


def read_password(password_file: str | None = None, password_env: str | None = None) -> str:
    """The keystore password from a file (first line) or an environment variable; exactly one source."""
    if bool(password_file) == bool(password_env):
        raise KeystoreError("give exactly one password source: a password file or an environment variable")
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise KeystoreError(f"environment variable {password_env} is not set")
        if value == "":
            raise KeystoreError(f"environment variable {password_env} is empty")
        return value
    try:
        text = Path(password_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(f"password file {password_file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"password file {password_file} cannot be read: {exc.__class__.__name__}") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise KeystoreError(f"password file {password_file} is empty")
    return password


def _keystore_files(keystore: Path) -> list[Path]:
    if keystore.is_file():
        return [keystore]
    if not keystore.is_dir():
        raise KeystoreError(f"keystore {keystore} does not exist")
    return sorted(p for p in keystore.iterdir() if p.is_file() and not p.name.startswith("."))


def list_addresses(keystore: str | os.PathLike) -> list[str]:
    """Addresses of the keystore's files (read from the files, no password needed)."""
    out = []
    for path in _keystore_files(Path(keystore)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(to_checksum(data["address"]))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise KeystoreError(f"keystore file {path} is not an Ethereum keystore v3 JSON") from None
    return out


def save_key(keystore: str | os.PathLike, private_key: bytes, password: str) -> str:
    """Encrypt ``private_key`` into a new v3 file in the keystore directory (mode 0600); returns the address."""
    if not password:
        raise KeystoreError("refusing an empty keystore password")
    signer = Signer(private_key)
    directory = Path(keystore)
    directory.mkdir(parents=True, exist_ok=True)
    if signer.address in list_addresses(directory):
        raise KeystoreError(f"key {signer.address} is already in keystore {directory}")
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    _write_key(directory / f"UTC--{stamp}--{signer.address[2:].lower()}", private_key, password)
    return signer.address


def _write_key(path: Path, private_key: bytes, password: str) -> None:
    """A new v3 file (mode 0600, never over an existing one) with this module's scrypt cost."""
    from eth_keyfile import create_keyfile_json

    doc = create_keyfile_json(private_key, password.encode("utf-8"), kdf="scrypt", iterations=SCRYPT_N)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


def new_key(keystore: str | os.PathLike, password: str) -> str:
    """Create a fresh random key in the keystore; returns its address."""
    while True:
        candidate = secrets.token_bytes(32)
        try:
            coincurve.PrivateKey(candidate)
        except ValueError:
            continue
        return save_key(keystore, candidate, password)


def parse_private_key(text: str) -> bytes:
    """A private key from hex text (with or without 0x, surrounding white space ignored)."""
    h = text.strip().removeprefix("0x").removeprefix("0X")
    if len(h) != 64:
        raise KeystoreError("a private key is 64 hex digits (32 bytes)")
    try:
        return bytes.fromhex(h)
    except ValueError:
        raise KeystoreError("the private key is not valid hex") from None


def unlock_memory(doc: dict) -> tuple[int, str]:
    """Bytes that unlocking a keystore v3 document takes at once (scrypt: 128 * r * n; 0 for pbkdf2), and its
    parameters in words."""
    crypto = doc.get("crypto") or doc.get("Crypto") or {}
    params = crypto.get("kdfparams") or {}
    if crypto.get("kdf") != "scrypt":
        return 0, f"kdf {crypto.get('kdf')}"
    n, r = int(params.get("n", 0)), int(params.get("r", 0))
    return 128 * r * n, f"scrypt n={n}, r={r}"


def _key_file(keystore: str | os.PathLike, address: str | None) -> Path:
    """The file of ``address`` (or the only key) in the keystore."""
    files = _keystore_files(Path(keystore))
    if not files:
        raise KeystoreError(f"keystore {keystore} holds no key")
    addresses = list_addresses(keystore)
    if address:
        wanted = to_checksum(address)
        matches = [f for f, a in zip(files, addresses) if a == wanted]
        if not matches:
            raise KeystoreError(f"keystore {keystore} has no key for {wanted}")
        path = matches[0]
    elif len(files) > 1:
        raise KeystoreError(f"keystore {keystore} holds {len(files)} keys: say which address to use")
    else:
        path = files[0]
    return path


def _decrypt(path: Path, password: str, memory_limit: int | None = None) -> bytes:
    from eth_keyfile import decode_keyfile_json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        need, kdf = unlock_memory(doc)
        if memory_limit is not None and need > memory_limit:
            raise KeystoreError(
                f"keystore file {path.name} needs {need >> 20} MB to unlock ({kdf}), more than the "
                f"{memory_limit >> 20} MB the node allows beside its own memory (64 MB in all): rewrite it once with "
                f"`alignment-node keys reencrypt --keystore DIR --password-file FILE` (same key and password, "
                f"scrypt n={SCRYPT_N}: {128 * 8 * SCRYPT_N >> 20} MB)")
        private_key = decode_keyfile_json(doc, password.encode("utf-8"))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for keystore file {path.name}") from None
        raise KeystoreError(f"keystore file {path.name} is corrupt or not keystore v3") from None
    except (KeyError, TypeError, UnicodeDecodeError):
        raise KeystoreError(f"keystore file {path.name} is corrupt or not keystore v3") from None
    return bytes(private_key)


def load_signer(keystore: str | os.PathLike, password: str, address: str | None = None,
                memory_limit: int | None = None) -> LocalSigner:
    """Decrypt the key of ``address`` (or the only key) from the keystore; a KeystoreError, before any work, if
    unlocking it takes more than ``memory_limit`` bytes."""
    return Signer(_decrypt(_key_file(keystore, address), password, memory_limit))


def reencrypt_key(keystore: str | os.PathLike, password: str, address: str | None = None) -> tuple[str, str, str]:
    """Rewrite the key of ``address`` (or the only key) with this module's scrypt cost, same password, in place
    (a new file renamed over the old one: a crash leaves one or the other, both open with the password).
    Returns (address, the old kdf in words, the new)."""
    path = _key_file(keystore, address)
    private_key = _decrypt(path, password)  # first: a corrupt file or a wrong password is a KeystoreError
    old = unlock_memory(json.loads(path.read_text(encoding="utf-8")))[1]
    signer = Signer(private_key)
    tmp = path.with_name("." + path.name + ".reencrypt")  # dot files are not keys (_keystore_files)
    tmp.unlink(missing_ok=True)  # left by a crash between write and rename
    _write_key(tmp, private_key, password)
    os.replace(tmp, path)
    return signer.address, old, unlock_memory(json.loads(path.read_text(encoding="utf-8")))[1]
