"""Solidity ABI helpers over eth-abi: selectors, call encoding with argument checks, result decoding,
custom-error decoding by 4-byte selector and event-log decoding by topic.

Values on the Python side:
    uintN/intN -> int, bool -> bool, address -> checksummed str, bytes/bytesN -> bytes,
    string -> str, T[] / T[k] -> list, tuple (struct) -> tuple (or dict with ``named=True``).
Arguments may also be given as 0x-hex strings for bytes types and as dicts (by component name) for
structs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from eth_abi import decode as _abi_decode
from eth_abi import encode as _abi_encode

from .keccak import is_address, keccak256, to_checksum_address

__all__ = [
    "AbiFunction",
    "AbiEvent",
    "AbiError",
    "ContractAbi",
    "AbiArgumentError",
    "AbiDecodeError",
    "DecodedError",
    "DecodedEvent",
    "ErrorRegistry",
    "EventRegistry",
    "function_selector",
    "canonical_type",
    "format_value",
    "PANIC_CODES",
]


class AbiArgumentError(TypeError, ValueError):
    """An argument does not fit the ABI (count, type or range)."""


class AbiDecodeError(ValueError):
    """Bytes that do not decode with the expected ABI types."""


def function_selector(signature: str) -> bytes:
    """First 4 bytes of keccak256 of a canonical signature, e.g. ``transfer(address,uint256)``."""
    return keccak256(signature.replace(" ", "").encode())[:4]


def canonical_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a JSON-ABI parameter, expanding tuples: ``(uint128,uint128)[]``."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param.get("components", ()))
        return f"({inner}){t[5:]}"
    return t


def _signature(name: str, inputs: Sequence[Mapping[str, Any]]) -> str:
    return f"{name}({','.join(canonical_type(p) for p in inputs)})"


# ------------------------------------------------------------------------------------- coercion

def _split_array(t: str) -> tuple[str, int | None] | None:
    """``uint256[3][]`` -> (``uint256[3]``, None); ``uint256[3]`` -> (``uint256``, 3); scalar -> None."""
    if not t.endswith("]"):
        return None
    i = t.rindex("[")
    dim = t[i + 1 : -1]
    return t[:i], (int(dim) if dim else None)


def _hex_to_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise AbiArgumentError(f"{where}: not valid hex: {value!r}") from None
    raise AbiArgumentError(f"{where}: expected bytes or a 0x-hex string, got {type(value).__name__}")


def _coerce(param: Mapping[str, Any], t: str, value: Any, where: str) -> Any:
    """Check `value` against ABI type `t` (components from `param`) and convert it for eth-abi."""
    arr = _split_array(t)
    if arr is not None:
        inner, dim = arr
        if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
            raise AbiArgumentError(f"{where}: expected a list for {t}, got {type(value).__name__}")
        items = list(value)
        if dim is not None and len(items) != dim:
            raise AbiArgumentError(f"{where}: {t} needs exactly {dim} items, got {len(items)}")
        return [_coerce(param, inner, v, f"{where}[{i}]") for i, v in enumerate(items)]
    if t == "tuple":
        comps = param.get("components", ())
        if isinstance(value, Mapping):
            names = [c.get("name", "") for c in comps]
            unknown = set(value) - set(names)
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise AbiArgumentError(
                    f"{where}: struct fields {names}; missing {missing or 'none'}, unknown {sorted(unknown) or 'none'}"
                )
            items = [value[n] for n in names]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise AbiArgumentError(f"{where}: expected a tuple or dict for a struct, got {type(value).__name__}")
        if len(items) != len(comps):
            raise AbiArgumentError(f"{where}: struct has {len(comps)} fields, got {len(items)}")
        return tuple(
            _coerce(c, c["type"], v, f"{where}.{c.get('name') or i}") for i, (c, v) in enumerate(zip(comps, items))
        )
    if t.startswith("uint") or t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AbiArgumentError(f"{where}: expected int for {t}, got {type(value).__name__}")
        signed = t.startswith("int")
        bits = int(t[3 if signed else 4 :] or 256)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            raise AbiArgumentError(f"{where}: {value} out of range for {t} [{lo}, {hi}]")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise AbiArgumentError(f"{where}: expected bool, got {type(value).__name__}")
        return value
    if t == "address":
        if isinstance(value, (bytes, bytearray)) and len(value) == 20:
            return to_checksum_address(bytes(value))
        if not is_address(value):
            raise AbiArgumentError(f"{where}: not an address: {value!r}")
        body = value[2:]
        if body != body.lower() and body != body.upper() and to_checksum_address(value)[2:] != body:
            raise AbiArgumentError(f"{where}: bad EIP-55 checksum: {value}")
        return to_checksum_address(value)
    if t == "string":
        if not isinstance(value, str):
            raise AbiArgumentError(f"{where}: expected str, got {type(value).__name__}")
        return value
    if t == "bytes":
        return _hex_to_bytes(value, where)
    if t.startswith("bytes"):
        size = int(t[5:])
        b = _hex_to_bytes(value, where)
        if len(b) != size:
            raise AbiArgumentError(f"{where}: {t} needs exactly {size} bytes, got {len(b)}")
        return b
    if t == "function":
        b = _hex_to_bytes(value, where)
        if len(b) != 24:
            raise AbiArgumentError(f"{where}: function needs 24 bytes, got {len(b)}")
        return b
    raise AbiArgumentError(f"{where}: unsupported ABI type {t}")


def _post(param: Mapping[str, Any], t: str, value: Any, named: bool) -> Any:
    """Turn eth-abi's decoded value into our Python form."""
    arr = _split_array(t)
    if arr is not None:
        return [_post(param, arr[0], v, named) for v in value]
    if t == "tuple":
        comps = param.get("components", ())
        vals = [_post(c, c["type"], v, named) for c, v in zip(comps, value)]
        if named and all(c.get("name") for c in comps):
            return {c["name"]: v for c, v in zip(comps, vals)}
        return tuple(vals)
    if t == "address":
        return to_checksum_address(value)
    return value


def encode_params(params: Sequence[Mapping[str, Any]], args: Sequence[Any], what: str) -> bytes:
    """ABI-encode `args` for `params` after checking each one (clear error naming the argument)."""
    if len(args) != len(params):
        names = ", ".join(f"{canonical_type(p)} {p.get('name', '')}".strip() for p in params)
        raise AbiArgumentError(f"{what} takes {len(params)} argument(s) ({names}), got {len(args)}")
    coerced = [
        _coerce(p, p["type"], a, f"{what}: argument {i} '{p.get('name', '')}' ({canonical_type(p)})")
        for i, (p, a) in enumerate(zip(params, args))
    ]
    return _abi_encode([canonical_type(p) for p in params], coerced)


def decode_params(params: Sequence[Mapping[str, Any]], data: bytes, what: str, named: bool = False) -> list[Any]:
    try:
        raw = _abi_decode([canonical_type(p) for p in params], bytes(data))
    except Exception as exc:  # eth-abi raises several unrelated types
        raise AbiDecodeError(f"{what}: cannot decode {len(data)} bytes: {exc}") from None
    return [_post(p, p["type"], v, named) for p, v in zip(params, raw)]


# --------------------------------------------------------------------------------- ABI entries

@dataclass(frozen=True)
class AbiFunction:
    name: str
    inputs: tuple
    outputs: tuple
    state_mutability: str
    signature: str
    selector: bytes

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> AbiFunction:
        inputs = tuple(item.get("inputs", ()))
        sig = _signature(item["name"], inputs)
        return cls(
            item["name"],
            inputs,
            tuple(item.get("outputs", ())),
            item.get("stateMutability", "nonpayable"),
            sig,
            function_selector(sig),
        )

    @property
    def is_view(self) -> bool:
        return self.state_mutability in ("view", "pure")

    def encode(self, *args: Any) -> bytes:
        return self.selector + encode_params(self.inputs, args, self.signature)

    def decode_output(self, data: bytes, named: bool = False) -> Any:
        """The return value: None for no outputs, the value for one, a tuple (dict if named) for more."""
        values = decode_params(self.outputs, data, f"{self.signature} result", named)
        if not self.outputs:
            return None
        if len(values) == 1:
            return values[0]
        if named and all(o.get("name") for o in self.outputs):
            return {o["name"]: v for o, v in zip(self.outputs, values)}
        return tuple(values)


@dataclass(frozen=True)
class AbiError:
    name: str
    inputs: tuple
    signature: str
    selector: bytes

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> AbiError:
        inputs = tuple(item.get("inputs", ()))
        sig = _signature(item["name"], inputs)
        return cls(item["name"], inputs, sig, function_selector(sig))

    def decode(self, data: bytes) -> DecodedError:
        if bytes(data[:4]) != self.selector:
            raise AbiDecodeError(f"revert data is not {self.signature}")
        values = decode_params(self.inputs, data[4:], self.signature)
        args = tuple((p.get("name") or f"arg{i}", canonical_type(p), v) for i, (p, v) in enumerate(zip(self.inputs, values)))
        return DecodedError(self.name, self.signature, args, bytes(data))


@dataclass(frozen=True)
class AbiEvent:
    name: str
    inputs: tuple
    anonymous: bool
    signature: str
    topic: bytes

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> AbiEvent:
        inputs = tuple(item.get("inputs", ()))
        sig = _signature(item["name"], inputs)
        return cls(item["name"], inputs, bool(item.get("anonymous", False)), sig, keccak256(sig.encode()))

    @property
    def indexed_count(self) -> int:
        return sum(1 for p in self.inputs if p.get("indexed"))

    def decode_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """``decode`` of one eth_getLogs entry (0x-hex ``topics`` and ``data``)."""
        return self.decode([bytes.fromhex(t[2:]) for t in entry["topics"]], bytes.fromhex(entry["data"][2:]))

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Arguments by name. Indexed dynamic values (string, bytes, arrays, structs) are only their
        keccak256 in the topic, so they come back as that 32-byte hash."""
        topics = list(topics)
        if not self.anonymous:
            if not topics or topics[0] != self.topic:
                raise AbiDecodeError(f"log is not {self.signature}")
            topics = topics[1:]
        if len(topics) != self.indexed_count:
            raise AbiDecodeError(f"{self.signature}: expected {self.indexed_count} indexed topics, got {len(topics)}")
        plain = [p for p in self.inputs if not p.get("indexed")]
        plain_values = iter(decode_params(plain, data, self.signature, named=True))
        topic_iter = iter(topics)
        out: dict[str, Any] = {}
        for i, p in enumerate(self.inputs):
            key = p.get("name") or f"arg{i}"
            if p.get("indexed"):
                t = canonical_type(p)
                word = next(topic_iter)
                if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                    out[key] = word
                else:
                    out[key] = decode_params([p], word, self.signature)[0]
            else:
                out[key] = next(plain_values)
        return out


# --------------------------------------------------------------------------- decoded values

PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to a zero function pointer",
}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return value if is_address(value) else json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True)
class DecodedError:
    """A revert reason: a custom error, ``Error(string)``, ``Panic(uint256)`` or an unknown selector."""

    name: str
    signature: str
    args: tuple  # (name, type, value) triples
    data: bytes = field(repr=False)

    @property
    def values(self) -> dict[str, Any]:
        return {n: v for n, _, v in self.args}

    def __str__(self) -> str:
        if self.name == "Panic" and self.args:
            code = self.args[0][2]
            return f"Panic(code=0x{code:02x}: {PANIC_CODES.get(code, 'unknown panic code')})"
        return f"{self.name}(" + ", ".join(f"{n}={format_value(v)}" for n, _, v in self.args) + ")"


@dataclass(frozen=True)
class DecodedEvent:
    name: str
    signature: str
    args: dict
    address: str | None = None
    block_number: int | None = None
    transaction_hash: str | None = None
    log_index: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(f"{k}={format_value(v)}" for k, v in self.args.items()) + ")"


# ------------------------------------------------------------------------------ contract ABI

class ContractAbi:
    """The JSON ABI of one contract, indexed for encoding calls and decoding results, errors and logs."""

    def __init__(self, abi: Sequence[Mapping[str, Any]], name: str = "contract"):
        self.name = name
        self.raw = list(abi)
        self.functions: dict[str, list[AbiFunction]] = {}
        self.events: dict[str, list[AbiEvent]] = {}
        self.errors: dict[str, list[AbiError]] = {}
        self.constructor_inputs: tuple = ()
        self.payable_constructor = False
        for item in self.raw:
            kind = item.get("type", "function")
            if kind == "function":
                f = AbiFunction.from_json(item)
                self.functions.setdefault(f.name, []).append(f)
            elif kind == "event":
                e = AbiEvent.from_json(item)
                self.events.setdefault(e.name, []).append(e)
            elif kind == "error":
                r = AbiError.from_json(item)
                self.errors.setdefault(r.name, []).append(r)
            elif kind == "constructor":
                self.constructor_inputs = tuple(item.get("inputs", ()))
                self.payable_constructor = item.get("stateMutability") == "payable"

    def function(self, name: str, nargs: int | None = None) -> AbiFunction:
        """Look a function up by name (or full signature for overloads), optionally by argument count."""
        if "(" in name:
            for fns in self.functions.values():
                for f in fns:
                    if f.signature == name.replace(" ", ""):
                        return f
            raise AbiArgumentError(f"{self.name} has no function {name}")
        fns = self.functions.get(name)
        if not fns:
            raise AbiArgumentError(f"{self.name} has no function {name!r}")
        if len(fns) == 1:
            return fns[0]
        if nargs is not None:
            matching = [f for f in fns if len(f.inputs) == nargs]
            if len(matching) == 1:
                return matching[0]
        options = ", ".join(f.signature for f in fns)
        raise AbiArgumentError(f"{self.name}.{name} is overloaded ({options}): pass the full signature")

    def event(self, name: str) -> AbiEvent:
        evs = self.events.get(name)
        if not evs:
            raise AbiArgumentError(f"{self.name} has no event {name!r}")
        if len(evs) > 1:
            raise AbiArgumentError(f"{self.name}.{name} is overloaded")
        return evs[0]

    def encode_call(self, name: str, *args: Any) -> bytes:
        return self.function(name, len(args)).encode(*args)

    def decode_result(self, name: str, data: bytes, nargs: int | None = None, named: bool = False) -> Any:
        return self.function(name, nargs).decode_output(data, named=named)

    def encode_constructor(self, *args: Any) -> bytes:
        return encode_params(self.constructor_inputs, args, f"{self.name} constructor")


# ------------------------------------------------------------------------------- registries

_BUILTIN_ERRORS = (
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
)


class ErrorRegistry:
    """Custom errors by 4-byte selector, plus ``Error(string)`` and ``Panic(uint256)``."""

    def __init__(self) -> None:
        self.by_selector: dict[bytes, AbiError] = {}
        self.add_abi(_BUILTIN_ERRORS)

    def add_abi(self, abi: Iterable[Mapping[str, Any]]) -> None:
        for item in abi:
            if item.get("type") == "error":
                e = AbiError.from_json(item)
                self.by_selector.setdefault(e.selector, e)

    def decode(self, data: bytes | str | None) -> DecodedError | None:
        """Decode revert data. None for empty data (a bare ``revert()``); an ``UnknownError`` carrying
        the raw bytes when the selector is not known or the arguments do not decode."""
        if data is None:
            return None
        if isinstance(data, str):
            data = _hex_to_bytes(data, "revert data")
        data = bytes(data)
        if not data:
            return None
        err = self.by_selector.get(data[:4]) if len(data) >= 4 else None
        if err is not None:
            try:
                return err.decode(data)
            except AbiDecodeError:
                pass
        return DecodedError("UnknownError", "UnknownError(bytes)", (("data", "bytes", data),), data)


class EventRegistry:
    """Events by topic0 (non-anonymous events only)."""

    def __init__(self) -> None:
        self.by_topic: dict[tuple[bytes, int], AbiEvent] = {}

    def add_abi(self, abi: Iterable[Mapping[str, Any]]) -> None:
        for item in abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                e = AbiEvent.from_json(item)
                # Same signature, different `indexed` layout (e.g. ERC20 vs ERC721 Transfer): key by count too.
                self.by_topic.setdefault((e.topic, e.indexed_count), e)

    def decode(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Decode an ``eth_getLogs``/receipt log; None when its topic is not known."""
        topics = [_hex_to_bytes(t, "topic") for t in log.get("topics", ())]
        if not topics:
            return None
        event = self.by_topic.get((topics[0], len(topics) - 1))
        if event is None:
            return None
        data = _hex_to_bytes(log.get("data", "0x"), "log data")
        args = event.decode(topics, data)
        bn = log.get("blockNumber")
        li = log.get("logIndex")
        return DecodedEvent(
            event.name,
            event.signature,
            args,
            to_checksum_address(log["address"]) if log.get("address") else None,
            int(bn, 16) if isinstance(bn, str) else bn,
            log.get("transactionHash"),
            int(li, 16) if isinstance(li, str) else li,
        )
