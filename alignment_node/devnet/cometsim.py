"""A CometBFT validator-set simulator for the devnet: produces a chain live and serves CometBFT's RPC JSON.

    python -m alignment_node.devnet.cometsim --host H --port P [--chain-id ID] [--validators N]
        [--block-time S] [--seed K] [--keep N] [--halt-at H] [--fault V=KIND ...] [--endpoint NAME=MODE ...]

One process is one chain. Its RPC endpoints are URL prefixes on the port: ``http://H:P/<name>/status``
(also ``/<name>/v1/status``), ``/validators?height=&page=&per_page=``, ``/commit?height=``,
``/block?height=``, answered as cmtjson exactly as docs/spec/COMETBFT.md ("RPC JSON") describes. Errors
are CometBFT's JSON-RPC envelopes with id -1 and HTTP 500 (``-32603 Internal error`` with e.g. data
``height 9 is not available, lowest height is 10``; ``-32602 Invalid params`` for unreadable ones).

The chain (every choice is seeded by ``--seed``, so the same command line gives the same chain bytes,
except for times, which start at the wall-clock start):

- Validator ``i`` signs with the Ed25519 key whose seed is ``sha256("cometsim/{seed}/{i}")``
  (``validator_keys``); powers are 10..100. Height 1 is made at start (its time is the genesis time),
  height H at ``start + (H - 1) * block_time``; the last ``--keep`` heights are served.
- The set at a height is sorted by power (descending) then address; proposer priorities follow
  CometBFT's weighted round robin. A validator joins (``join@H``), is jailed three heights after it
  double-signs, and one member's power changes every ``POWER_CHANGE_EVERY`` heights.
- Header hashes are deterministic 32-byte digests; ``validators_hash`` is SHA-256 over (address,
  power) of the set in order; the block hash is SHA-256 of the header's canonical JSON, one part.
- The commit of height H (its signatures in the order of the set at H) is round 0, or 1 or 2 at about
  10% of heights. Each member signs COMMIT with its own timestamp (a few ms after the header time, at
  ns, us or ms precision, sometimes a whole second), NIL at about 3% of (height, validator) pairs, and is
  ABSENT when a fault says so. Misses are turned back into COMMIT when the rest would not be more than
  2/3 of the power, so every honest commit verifies. Commits are signed when first asked for.

Faults (``--fault V=KIND``, repeatable): ``offline:F`` (ABSENT at a seeded fraction F of heights),
``few-misses:F`` (the same for an honest validator's occasional miss), ``double-sign@H`` (it also signs a
precommit for another block at H's commit round: a DuplicateVoteEvidence with both votes is in block
H+2, and it is out of the set from H+3), ``join@H`` (not in the set before H). ``--halt-at H``: no height
after H is made (a liveness fault).

Endpoint modes (``--endpoint NAME=MODE``, repeatable, default ``rpc0=honest``): ``honest``; ``forge``
(one or two COMMIT signatures of every commit, in /commit and in /block's last_commit, are 64 bytes
that do not verify); ``fork`` (at every height divisible by 3 the block id is other bytes: /commit's
commit.block_id, /block's block_id and the next header's last_block_id; signatures unchanged);
``wrong-chain`` (/status network and header chain_id are another chain id); ``garbage`` (per request in
turn, the honest answer with: one signature more than validators, signatures and keys one byte short,
base64 that does not decode, times with 12 fractional digits, int64 fields as JSON numbers, then a
body cut in half so it is not JSON; where a kind finds nothing to spoil, int64 numbers instead). The
kind is named in the ``X-Cometsim-Garbage`` response header. Error answers are never spoiled.

Python API: ``with CometSimProcess(validators=7, faults=["2=offline:0.3"], endpoints={"rpc0": "honest",
"bad": "forge"}) as sim: sim.endpoint_url("bad"); sim.validator_addresses()``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from nacl.signing import SigningKey

from ..cometbft import ZERO_BLOCK_ID, BlockID, Timestamp, address_of, format_time, vote_sign_bytes
from .processes import ServerProcess

__all__ = ["MODES", "GARBAGE_KINDS", "FAULT_KINDS", "POWER_CHANGE_EVERY", "Fault", "parse_fault", "parse_endpoint",
           "validator_keys", "validator_addresses", "ValidatorSet", "Chain", "RpcService", "CometSimProcess"]

MODES = ("honest", "forge", "fork", "wrong-chain", "garbage")
GARBAGE_KINDS = ("extra-signatures", "wrong-length", "bad-base64", "long-fraction", "numbers", "non-json")
FAULT_KINDS = ("offline", "few-misses", "double-sign", "join")
POWER_CHANGE_EVERY = 40  # heights
ABSENT, COMMIT, NIL = 1, 2, 3
PRECOMMIT = 2
ROUND_CHANGE_SHARE = 0.10  # heights whose commit is at round 1 or 2
NIL_SHARE = 0.03  # (height, validator) pairs that precommit nil
GO_ZERO_TIME = Timestamp(-62135596800, 0)
ED25519 = "tendermint/PubKeyEd25519"
DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100
CACHE_ENTRIES = 512  # built answers and signed commits kept (older ones are rebuilt when asked)
_NS = 1_000_000_000


# ------------------------------------------------------------------------------------- determinism

def _digest(seed: int, *parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, ("cometsim", seed, *parts))).encode()).digest()


def _draw(seed: int, *parts: object) -> float:
    """A seeded number in [0, 1) named by ``parts``."""
    return int.from_bytes(_digest(seed, *parts)[:8], "big") / 2.0 ** 64


def validator_keys(seed: int, count: int) -> list[SigningKey]:
    """The signing keys of validators 0..count-1: Ed25519 seeds sha256("cometsim/{seed}/{i}")."""
    return [SigningKey(hashlib.sha256(f"cometsim/{seed}/{i}".encode()).digest()) for i in range(count)]


def validator_addresses(seed: int, count: int) -> list[bytes]:
    """The 20-byte addresses of validators 0..count-1 (same keys as ``validator_keys``)."""
    return [address_of(bytes(k.verify_key)) for k in validator_keys(seed, count)]


def _ts(ns: int) -> Timestamp:
    return Timestamp(ns // _NS, ns % _NS)


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _block_id_json(bid: BlockID) -> dict:
    return {"hash": _hex(bid.hash), "parts": {"total": bid.parts_total, "hash": _hex(bid.parts_hash)}}


# ------------------------------------------------------------------------------------------ faults

@dataclass(frozen=True)
class Fault:
    """``validator`` misbehaves: ``kind`` with a ``fraction`` (offline, few-misses) or at a ``height``."""

    validator: int
    kind: str
    fraction: float = 0.0
    height: int = 0


def parse_fault(text: str, validators: int) -> Fault:
    """``V=offline:F``, ``V=few-misses:F``, ``V=double-sign@H`` or ``V=join@H``; ValueError if not."""
    m = re.fullmatch(r"(\d+)=([a-z-]+)(?::([0-9.]+)|@(\d+))", text.strip())
    if m is None:
        raise ValueError(f"fault {text!r}: want V=offline:F, V=few-misses:F, V=double-sign@H or V=join@H")
    v, kind, fraction, height = int(m[1]), m[2], m[3], m[4]
    if not 0 <= v < validators:
        raise ValueError(f"fault {text!r}: validator {v} is not in 0..{validators - 1}")
    if kind in ("offline", "few-misses") and fraction is not None:
        f = float(fraction)
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fault {text!r}: the fraction must be in [0, 1]")
        return Fault(v, kind, fraction=f)
    if kind in ("double-sign", "join") and height is not None and int(height) >= 1:
        return Fault(v, kind, height=int(height))
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {text!r}: unknown kind (one of {', '.join(FAULT_KINDS)})")
    form = ":F (a fraction)" if kind in ("offline", "few-misses") else "@H (a height >= 1)"
    raise ValueError(f"fault {text!r}: {kind} takes {form}")


def parse_endpoint(text: str) -> tuple[str, str]:
    """``NAME=MODE`` -> (name, mode); ValueError for a bad name or an unknown mode."""
    name, _, mode = text.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name) or name == "v1":
        raise ValueError(f"endpoint {text!r}: the name must be 1-40 letters, digits, '_' or '-' (not 'v1')")
    if mode not in MODES:
        raise ValueError(f"endpoint {text!r}: unknown mode {mode!r} (one of {', '.join(MODES)})")
    return name, mode


def _other_chain_id(chain_id: str) -> str:
    """The chain id a wrong-chain endpoint claims: the trailing number plus one (``-2`` appended if none)."""
    m = re.fullmatch(r"(.*?)(\d+)", chain_id)
    return f"{m[1]}{int(m[2]) + 1}" if m else f"{chain_id}-2"


# ------------------------------------------------------------------------------------ chain model

@dataclass(frozen=True)
class ValidatorSet:
    """The set at one height in CometBFT order (power descending, then address ascending)."""

    members: tuple[int, ...]  # validator (key) indices
    powers: tuple[int, ...]
    priorities: array  # int64 proposer priorities after this height's increment
    proposer: int  # key index
    hash: bytes

    @property
    def total(self) -> int:
        return sum(self.powers)


@dataclass(frozen=True)
class _Height:
    """What is stored per height; commits and answers are derived from it (and cached)."""

    height: int
    time_ns: int
    header: dict  # honest cmtjson header
    block_id: BlockID
    vset: ValidatorSet
    round: int
    evidence: tuple[dict, ...]


@dataclass(frozen=True)
class _Sig:
    flag: int
    address: bytes  # b"" when ABSENT
    timestamp: Timestamp
    signature: bytes | None


class HeightError(Exception):
    """A height this node cannot answer for; ``str`` is CometBFT's error data."""


class Chain:
    """The simulated chain: heights made by the clock, validator sets, commits signed on demand."""

    def __init__(self, chain_id: str = "devnet-comet-1", validators: int = 7, *, block_time: float = 0.5,
                 seed: int = 1, faults: list[Fault] | tuple[Fault, ...] = (), keep: int = 5000,
                 halt_at: int | None = None, start_ns: int | None = None):
        if validators < 1 or block_time <= 0 or keep < 1 or (halt_at is not None and halt_at < 1):
            raise ValueError("validators, block time, keep and halt-at must be positive")
        self.chain_id, self.seed, self.keep, self.halt_at = chain_id, seed, keep, halt_at
        self.block_ns = max(1, round(block_time * _NS))
        self.start_ns = time.time_ns() if start_ns is None else start_ns
        self.keys = validator_keys(seed, validators)
        self.pub_keys = [bytes(k.verify_key) for k in self.keys]
        self.addresses = [address_of(p) for p in self.pub_keys]
        self.faults = list(faults)
        self._check_faults(validators)
        self._lock = threading.RLock()
        self._heights: dict[int, _Height] = {}
        self.latest = 0
        self._commits: OrderedDict[int, tuple[_Sig, ...]] = OrderedDict()
        # set state carried from height to height
        self._powers: dict[int, int] = {}
        self._priorities: dict[int, int] = {}
        self._next_set = self._make_set(1)
        self.advance(self.start_ns)

    def _check_faults(self, validators: int) -> None:
        joins = {f.validator: f.height for f in self.faults if f.kind == "join"}
        signs = [f for f in self.faults if f.kind == "double-sign"]
        for kind in FAULT_KINDS:
            vs = [f.validator for f in self.faults if f.kind == kind]
            if len(vs) != len(set(vs)):
                raise ValueError(f"a validator has two {kind} faults")
        for f in signs:
            if joins.get(f.validator, 1) > f.height:
                raise ValueError(f"validator {f.validator} double-signs at {f.height} before it joins")
        if all(joins.get(v, 1) > 1 or v in {f.validator for f in signs} for v in range(validators)):
            raise ValueError("at least one validator must be in the set from height 1 and never jailed")

    def _fraction(self, v: int, kind: str) -> float:
        return next((f.fraction for f in self.faults if f.validator == v and f.kind == kind), 0.0)

    # ---------------------------------------------------------------------------------- producing

    @property
    def earliest(self) -> int:
        return max(1, self.latest - self.keep + 1)

    def advance(self, now_ns: int | None = None) -> int:
        """Make every height due by ``now_ns`` (default: now), up to --halt-at; the latest height."""
        now = time.time_ns() if now_ns is None else now_ns
        due = 1 + max(0, now - self.start_ns) // self.block_ns
        if self.halt_at is not None:
            due = min(due, self.halt_at)
        with self._lock:
            while self.latest < due:
                self._produce(self.latest + 1)
            return self.latest

    def _initial_power(self, v: int) -> int:
        return 10 + int(_draw(self.seed, "power", v) * 91)

    def _make_set(self, h: int) -> ValidatorSet:
        """Apply the changes of height ``h`` to the carried state and increment proposer priorities."""
        powers, prios = self._powers, self._priorities
        changed = h == 1
        if h == 1:
            joins = {f.validator: f.height for f in self.faults if f.kind == "join"}
            for v in range(len(self.keys)):
                if joins.get(v, 1) <= 1:
                    powers[v], prios[v] = self._initial_power(v), 0
        for f in self.faults:
            if f.kind == "join" and f.height == h and h > 1:
                powers[f.validator] = self._initial_power(f.validator)
                total = sum(powers.values())
                prios[f.validator] = -(total + (total >> 3))  # CometBFT's priority of a new validator
                changed = True
            if f.kind == "double-sign" and f.height + 3 == h:
                powers.pop(f.validator, None)
                prios.pop(f.validator, None)
                changed = True
        if h % POWER_CHANGE_EVERY == 0 and powers:
            members = sorted(powers)
            v = members[int(_draw(self.seed, "power-change", h) * len(members))]
            powers[v] = 10 + (powers[v] - 10 + 1 + int(_draw(self.seed, "new-power", h) * 90)) % 91
            changed = True
        proposer = _increment_priorities(powers, prios, self.addresses)
        if changed:
            order = tuple(sorted(powers, key=lambda v: (-powers[v], self.addresses[v])))
            power_list = tuple(powers[v] for v in order)
            digest = hashlib.sha256(b"".join(self.addresses[v] + p.to_bytes(8, "big")
                                             for v, p in zip(order, power_list))).digest()
        else:  # self._next_set is still the set of h - 1
            prev = self._next_set
            order, power_list, digest = prev.members, prev.powers, prev.hash
        return ValidatorSet(order, power_list, array("q", (prios[v] for v in order)), proposer, digest)

    def _produce(self, h: int) -> None:
        vset = self._next_set
        self._next_set = self._make_set(h + 1)
        jitter = 0 if h == 1 else int(_draw(self.seed, "time", h) * min(self.block_ns // 4, 20_000_000))
        time_ns = self.start_ns + (h - 1) * self.block_ns + jitter
        prev = self._heights.get(h - 1)
        last_block_id = prev.block_id if prev is not None else ZERO_BLOCK_ID
        header = {
            "version": {"block": "11", "app": "0"},
            "chain_id": self.chain_id,
            "height": str(h),
            "time": format_time(_ts(time_ns)),
            "last_block_id": _block_id_json(last_block_id),
            "last_commit_hash": _hex(_digest(self.seed, "last_commit", h)),
            "data_hash": _hex(_digest(self.seed, "data", h)),
            "validators_hash": _hex(vset.hash),
            "next_validators_hash": _hex(self._next_set.hash),
            "consensus_hash": _hex(_digest(self.seed, "consensus")),
            "app_hash": _hex(_digest(self.seed, "app", h)),
            "last_results_hash": _hex(_digest(self.seed, "results", h)),
            "evidence_hash": _hex(_digest(self.seed, "evidence", h)),
            "proposer_address": _hex(self.addresses[vset.proposer]),
        }
        block_hash = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode()).digest()
        block_id = BlockID(block_hash, 1, hashlib.sha256(b"parts" + block_hash).digest())
        u = _draw(self.seed, "round", h)
        rnd = 0 if u >= ROUND_CHANGE_SHARE else 1 + int(u / ROUND_CHANGE_SHARE * 2)
        evidence = tuple(self._duplicate_vote(f.validator, f.height) for f in self.faults
                         if f.kind == "double-sign" and f.height + 2 == h)
        self._heights[h] = _Height(h, time_ns, header, block_id, vset, rnd, evidence)
        self.latest = h
        self._heights.pop(h - self.keep - 2, None)  # the one below earliest has its commit in /block (+1 spare)

    # ---------------------------------------------------------------------------------- reading

    def height(self, h: int | None) -> _Height:
        """The stored height ``h`` (None: the latest), or HeightError with CometBFT's message."""
        with self._lock:
            latest = self.latest
            if h is None:
                return self._heights[latest]
            if h <= 0:
                raise HeightError(f"height must be greater than 0, but got {h}")
            if h > latest:
                raise HeightError(f"height {h} must be less than or equal to the current blockchain height {latest}")
            if h < self.earliest:
                raise HeightError(f"height {h} is not available, lowest height is {self.earliest}")
            return self._heights[h]

    def ends(self) -> tuple[_Height, _Height]:
        """The earliest and the latest served heights, read together."""
        with self._lock:
            return self._heights[self.earliest], self._heights[self.latest]

    def below(self, rec: _Height) -> _Height:
        """The height before ``rec`` (stored even when ``rec`` is the earliest: /block shows its commit)."""
        with self._lock:
            return self._heights[rec.height - 1]

    def _sign(self, v: int, h: int, rnd: int, block_id: BlockID | None, ts: Timestamp) -> bytes:
        return self.keys[v].sign(vote_sign_bytes(PRECOMMIT, h, rnd, block_id, ts, self.chain_id)).signature

    def _vote_time_ns(self, rec: _Height, v: int) -> int:
        t = rec.time_ns + 1_000_000 + int(_draw(self.seed, "vote-delay", rec.height, v) * 39_000_000)
        u = _draw(self.seed, "vote-precision", rec.height, v)
        if u < 0.05:
            return t + (-t) % _NS  # a whole second
        if u < 0.20:
            return t - t % 1_000_000
        if u < 0.40:
            return t - t % 1_000
        return t

    def _flags(self, rec: _Height) -> list[int]:
        """Each member's flag; misses are undone (soft ones first) until COMMIT power is over 2/3."""
        h, vset = rec.height, rec.vset
        signers = {f.validator for f in self.faults if f.kind == "double-sign" and f.height == h}
        flags, soft, hard = [], [], []
        for pos, v in enumerate(vset.members):
            if v in signers:
                flags.append(COMMIT)
            elif _draw(self.seed, "offline", h, v) < self._fraction(v, "offline"):
                flags.append(ABSENT)
                hard.append(pos)
            elif _draw(self.seed, "miss", h, v) < self._fraction(v, "few-misses"):
                flags.append(ABSENT)
                soft.append(pos)
            elif _draw(self.seed, "nil", h, v) < NIL_SHARE:
                flags.append(NIL)
                soft.append(pos)
            else:
                flags.append(COMMIT)
        needed = vset.total * 2 // 3
        for pos in soft + hard:
            if sum(p for p, f in zip(vset.powers, flags) if f == COMMIT) > needed:
                break
            flags[pos] = COMMIT
        return flags

    def commit_sigs(self, rec: _Height) -> tuple[_Sig, ...]:
        """The signatures of ``rec``'s commit, in set order (signed on first use, then cached)."""
        h = rec.height
        with self._lock:
            sigs = self._commits.get(h)
            if sigs is not None:
                self._commits.move_to_end(h)
                return sigs
            out = []
            for v, flag in zip(rec.vset.members, self._flags(rec)):
                if flag == ABSENT:
                    out.append(_Sig(ABSENT, b"", GO_ZERO_TIME, None))
                    continue
                ts = _ts(self._vote_time_ns(rec, v))
                bid = rec.block_id if flag == COMMIT else None
                out.append(_Sig(flag, self.addresses[v], ts, self._sign(v, h, rec.round, bid, ts)))
            sigs = self._commits[h] = tuple(out)
            if len(self._commits) > CACHE_ENTRIES:
                self._commits.popitem(last=False)
            return sigs

    def _duplicate_vote(self, v: int, h: int) -> dict:
        """DuplicateVoteEvidence of ``v`` at ``h``: its vote in the commit and one for another block."""
        rec = self._heights[h]
        pos = rec.vset.members.index(v)
        real = self.commit_sigs(rec)[pos]
        other_hash = hashlib.sha256(b"conflict" + rec.block_id.hash).digest()
        other_id = BlockID(other_hash, 1, hashlib.sha256(b"parts" + other_hash).digest())
        other_ts = _ts(self._vote_time_ns(rec, v) + 1_250_000)
        votes = [(rec.block_id, real.timestamp, real.signature),
                 (other_id, other_ts, self._sign(v, h, rec.round, other_id, other_ts))]
        votes.sort(key=lambda vote: vote[0].hash)
        a, b = ({"type": PRECOMMIT, "height": str(h), "round": rec.round, "block_id": _block_id_json(bid),
                 "timestamp": format_time(ts), "validator_address": _hex(self.addresses[v]), "validator_index": pos,
                 "signature": _b64(sig), "extension": None, "extension_signature": None}
                for bid, ts, sig in votes)
        return {"type": "tendermint/DuplicateVoteEvidence",
                "value": {"vote_a": a, "vote_b": b, "TotalVotingPower": str(rec.vset.total),
                          "ValidatorPower": str(rec.vset.powers[pos]), "Timestamp": format_time(_ts(rec.time_ns))}}


def _increment_priorities(powers: dict[int, int], prios: dict[int, int], addresses: list[bytes]) -> int:
    """CometBFT's weighted round robin, in place: rescale to a spread of 2 * total, center on 0, add each
    power, pick the highest priority (lower address on ties) and take the total off it. The proposer."""
    total = sum(powers.values())
    spread = max(prios.values()) - min(prios.values())
    if spread > 2 * total:
        ratio = -(-spread // (2 * total))
        for v, p in prios.items():
            prios[v] = -(-p // ratio) if p < 0 else p // ratio  # Go's division truncates toward zero
    avg = sum(prios.values()) // len(prios)
    for v in prios:
        prios[v] += powers[v] - avg
    proposer = min(prios, key=lambda v: (-prios[v], addresses[v]))
    prios[proposer] -= total
    return proposer


# ------------------------------------------------------------------------------------------- answers

class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str):
        super().__init__(data)
        self.code, self.message, self.data = code, message, data


def _envelope(result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": -1, "result": result}, separators=(",", ":")).encode()


def _error_body(exc: RpcError) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": -1, "error": {"code": exc.code, "message": exc.message,
                                                             "data": exc.data}}, separators=(",", ":")).encode()


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    """A URI parameter as CometBFT reads it: absent or empty is None; ``5`` and ``"5"`` are 5."""
    values = query.get(name)
    if not values or values[-1].strip('"') == "":
        return None
    text = values[-1].strip('"')
    if not re.fullmatch(r"-?\d{1,19}", text):
        raise RpcError(-32602, "Invalid params", f"error converting http params to arguments: {name}: "
                                                  f"{text[:40]!r} is not an integer")
    return int(text)


class RpcService:
    """The answers of every endpoint of one chain: bodies built once per (mode, route, height), cached."""

    def __init__(self, chain: Chain, endpoints: dict[str, str], *, rpc_address: str = "tcp://127.0.0.1:26657"):
        self.chain = chain
        self.endpoints = dict(endpoints)
        self.rpc_address = rpc_address
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._requests = {name: 0 for name in endpoints}

    # ----------------------------------------------------------------------- what a mode changes

    def _chain_id(self, mode: str) -> str:
        return _other_chain_id(self.chain.chain_id) if mode == "wrong-chain" else self.chain.chain_id

    @staticmethod
    def _block_id(mode: str, height: int, block_id: BlockID) -> BlockID:
        """The block id ``mode`` serves for ``height``: a fork's is other bytes at every third height."""
        if mode == "fork" and height % 3 == 0:
            forked = hashlib.sha256(b"fork" + block_id.hash).digest()
            return BlockID(forked, 1, hashlib.sha256(b"parts" + forked).digest())
        return block_id

    def _header(self, mode: str, rec: _Height) -> dict:
        header = dict(rec.header, chain_id=self._chain_id(mode))
        if mode == "fork" and rec.height > 1:
            last = rec.header["last_block_id"]
            last_id = BlockID(bytes.fromhex(last["hash"]), last["parts"]["total"], bytes.fromhex(last["parts"]["hash"]))
            header["last_block_id"] = _block_id_json(self._block_id(mode, rec.height - 1, last_id))
        return header

    def _commit(self, mode: str, rec: _Height) -> dict:
        sigs = self.chain.commit_sigs(rec)
        forged: set[int] = set()
        if mode == "forge":
            committed = [i for i, s in enumerate(sigs) if s.flag == COMMIT]
            for k in range(1 + (_draw(self.chain.seed, "forge-count", rec.height) < 0.5)):
                forged.add(committed[int(_draw(self.chain.seed, "forge", rec.height, k) * len(committed))])
        return {"height": str(rec.height), "round": rec.round, "block_id": _block_id_json(self._block_id(mode, rec.height, rec.block_id)),
                "signatures": [{"block_id_flag": s.flag, "validator_address": _hex(s.address),
                                "timestamp": format_time(s.timestamp),
                                "signature": None if s.signature is None else _b64(
                                    hashlib.sha512(b"forged" + s.signature).digest() if i in forged
                                    else s.signature)}
                               for i, s in enumerate(sigs)]}

    # ----------------------------------------------------------------------------------- routes

    def status(self, mode: str, name: str) -> dict:
        chain = self.chain
        earliest, latest = chain.ends()
        node_key = SigningKey(_digest(chain.seed, "node", name))
        node_pub = bytes(node_key.verify_key)
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": _digest(chain.seed, "node-id", name)[:20].hex(),
                "listen_addr": "tcp://0.0.0.0:26656",
                "network": self._chain_id(mode),
                "version": "0.38.12",
                "channels": "40202122233038606100",
                "moniker": f"cometsim-{name}",
                "other": {"tx_index": "on", "rpc_address": self.rpc_address},
            },
            "sync_info": {
                "latest_block_hash": _hex(self._block_id(mode, latest.height, latest.block_id).hash),
                "latest_app_hash": latest.header["app_hash"],
                "latest_block_height": str(latest.height),
                "latest_block_time": latest.header["time"],
                "earliest_block_hash": _hex(self._block_id(mode, earliest.height, earliest.block_id).hash),
                "earliest_app_hash": earliest.header["app_hash"],
                "earliest_block_height": str(earliest.height),
                "earliest_block_time": earliest.header["time"],
                "catching_up": False,
            },
            "validator_info": {"address": _hex(address_of(node_pub)),
                               "pub_key": {"type": ED25519, "value": _b64(node_pub)}, "voting_power": "0"},
        }

    def validators(self, rec: _Height, page: int | None, per_page: int | None) -> dict:
        vset, chain = rec.vset, self.chain
        per = DEFAULT_PER_PAGE if per_page is None or per_page < 1 else min(per_page, MAX_PER_PAGE)
        pages = max(1, -(-len(vset.members) // per))
        page = 1 if page is None else page
        if not 1 <= page <= pages:
            raise RpcError(-32603, "Internal error", f"page should be within [1, {pages}] range, given {page}")
        start = (page - 1) * per
        chosen = range(start, min(start + per, len(vset.members)))
        return {"block_height": str(rec.height),
                "validators": [{"address": _hex(chain.addresses[vset.members[i]]),
                                "pub_key": {"type": ED25519, "value": _b64(chain.pub_keys[vset.members[i]])},
                                "voting_power": str(vset.powers[i]), "proposer_priority": str(vset.priorities[i])}
                               for i in chosen],
                "count": str(len(chosen)), "total": str(len(vset.members))}

    def commit(self, mode: str, rec: _Height) -> dict:
        return {"signed_header": {"header": self._header(mode, rec), "commit": self._commit(mode, rec)},
                "canonical": rec.height != self.chain.latest}

    def block(self, mode: str, rec: _Height) -> dict:
        if rec.height == 1:
            last_commit = {"height": "0", "round": 0, "block_id": _block_id_json(ZERO_BLOCK_ID), "signatures": []}
        else:
            last_commit = self._commit(mode, self.chain.below(rec))
        return {"block_id": _block_id_json(self._block_id(mode, rec.height, rec.block_id)),
                "block": {"header": self._header(mode, rec), "data": {"txs": []},
                          "evidence": {"evidence": list(rec.evidence)}, "last_commit": last_commit}}

    def _build(self, mode: str, name: str, route: str, query: dict[str, list[str]]) -> bytes:
        if route == "status":
            return _envelope(self.status(mode, name))
        try:
            rec = self.chain.height(_int_param(query, "height"))
        except HeightError as exc:
            raise RpcError(-32603, "Internal error", str(exc)) from None
        extra: tuple = ()
        if route == "validators":
            extra = (_int_param(query, "page"), _int_param(query, "per_page"))
        elif route == "commit":
            extra = (rec.height != self.chain.latest,)
        key = (mode, route, rec.height, *extra)
        with self._lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
                return body
        if route == "validators":
            body = _envelope(self.validators(rec, *extra))
        elif route == "commit":
            body = _envelope(self.commit(mode, rec))
        else:
            body = _envelope(self.block(mode, rec))
        with self._lock:
            self._cache[key] = body
            if len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return body

    def answer(self, name: str, route: str, query: dict[str, list[str]]) -> tuple[int, bytes, str | None]:
        """(HTTP status, body, garbage kind or None) of ``route`` (status, validators, commit, block) on
        endpoint ``name``, for the chain as it is (the caller advances it)."""
        mode = self.endpoints[name]
        try:
            body = self._build("honest" if mode == "garbage" else mode, name, route, query)
        except RpcError as exc:
            return 500, _error_body(exc), None
        if mode != "garbage":
            return 200, body, None
        with self._lock:
            n = self._requests[name]
            self._requests[name] += 1
        kind = GARBAGE_KINDS[n % len(GARBAGE_KINDS)]
        return 200, _garble(kind, body), kind


# ---------------------------------------------------------------------------------------- garbage

_INT64_KEYS = {"height", "block_height", "latest_block_height", "earliest_block_height", "voting_power",
               "proposer_priority", "count", "total", "block", "app", "TotalVotingPower", "ValidatorPower"}
_TIME_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")


def _rewrite(node: Any, fn: Callable[[str, Any], Any]) -> bool:
    """Replace, depth first, every ``node[key]`` for which ``fn(key, value)`` is not None; True if any was."""
    changed = False
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        new = fn(key, value) if isinstance(key, str) else None
        if new is not None:
            node[key] = new
            changed = True
        elif isinstance(value, (dict, list)):
            changed |= _rewrite(value, fn)
    return changed


def _extra_signatures(result: dict) -> bool:
    def more(key: str, value: Any) -> list | None:
        return value + value[:1] if key == "signatures" and isinstance(value, list) and value else None
    return _rewrite(result, more)


def _short_bytes(key: str, value: Any) -> str | None:
    if key in ("signature", "value") and isinstance(value, str) and value:
        return _b64(base64.b64decode(value)[:-1])
    return None


def _bad_base64(key: str, value: Any) -> str | None:
    return "%not*base64%" if key in ("signature", "value") and isinstance(value, str) and value else None


def _long_fraction(key: str, value: Any) -> str | None:
    m = _TIME_RE.fullmatch(value) if isinstance(value, str) else None
    return f"{m[1]}.{(m[2] or '').ljust(9, '0')}000Z" if m else None


def _numbers(key: str, value: Any) -> int | None:
    return int(value) if key in _INT64_KEYS and isinstance(value, str) and re.fullmatch(r"-?\d+", value) else None


def _garble(kind: str, body: bytes) -> bytes:
    """The honest ``body`` spoiled by ``kind`` (GARBAGE_KINDS)."""
    if kind == "non-json":
        return body[: len(body) // 2]
    envelope = json.loads(body)
    result = envelope["result"]
    spoiled = {"extra-signatures": lambda: _extra_signatures(result),
               "wrong-length": lambda: _rewrite(result, _short_bytes),
               "bad-base64": lambda: _rewrite(result, _bad_base64),
               "long-fraction": lambda: _rewrite(result, _long_fraction),
               "numbers": lambda: _rewrite(result, _numbers)}[kind]()
    if not spoiled:
        _rewrite(result, _numbers)
    return json.dumps(envelope, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------- HTTP

ROUTES = ("status", "validators", "commit", "block")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cometsim"
    timeout = 60

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              garbage: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if garbage is not None:
            self.send_header("X-Cometsim-Garbage", garbage)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        service: RpcService = self.server.service
        url = urlsplit(self.path)
        segments = [s for s in url.path.split("/") if s]
        if segments[1:2] == ["v1"]:
            del segments[1]
        if len(segments) != 2 or segments[0] not in service.endpoints or segments[1] not in ROUTES:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        service.chain.advance()
        status, body, garbage = service.answer(segments[0], segments[1], parse_qs(url.query, keep_blank_values=True))
        self._send(status, body, garbage=garbage)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], service: RpcService):
        super().__init__(address, _Handler)
        self.service = service


def _produce_forever(chain: Chain) -> None:
    """Make each height at its time even when nobody asks (requests also catch the chain up)."""
    while chain.halt_at is None or chain.latest < chain.halt_at:
        latest = chain.advance()
        next_ns = chain.start_ns + latest * chain.block_ns
        time.sleep(max(0.001, (next_ns - time.time_ns()) / _NS))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="cometsim", description="A CometBFT validator-set simulator with RPC faults.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chain-id", default="devnet-comet-1")
    p.add_argument("--validators", type=int, default=7)
    p.add_argument("--block-time", type=float, default=0.5, help="seconds between heights")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", type=int, default=5000, help="heights served (older ones are pruned)")
    p.add_argument("--halt-at", type=int, help="no height is made after this one")
    p.add_argument("--fault", action="append", default=[], help="V=offline:F, V=few-misses:F, V=double-sign@H, "
                   "V=join@H (repeatable)")
    p.add_argument("--endpoint", action="append", default=[], help="NAME=MODE, MODE one of " + ", ".join(MODES)
                   + " (repeatable; default rpc0=honest)")
    args = p.parse_args(argv)
    try:
        faults = [parse_fault(f, args.validators) for f in args.fault]
        endpoints = dict(parse_endpoint(e) for e in args.endpoint or ["rpc0=honest"])
        chain = Chain(args.chain_id, args.validators, block_time=args.block_time, seed=args.seed, faults=faults,
                      keep=args.keep, halt_at=args.halt_at)
    except ValueError as exc:
        p.error(str(exc))
    server = _Server((args.host, args.port), RpcService(chain, endpoints,
                                                        rpc_address=f"tcp://{args.host}:{args.port}"))
    threading.Thread(target=_produce_forever, args=(chain,), daemon=True, name="cometsim-producer").start()
    listed = ",".join(f"{name}:{mode}" for name, mode in endpoints.items())
    print(f"cometsim chain={args.chain_id} validators={args.validators} endpoints={listed} "
          f"listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------------------ process API

class CometSimProcess(ServerProcess):
    """One simulated CometBFT chain on a loopback port. Context manager; also start()/stop()."""

    name = "cometsim"
    module = "alignment_node.devnet.cometsim"

    def __init__(self, *, chain_id: str = "devnet-comet-1", validators: int = 7, block_time: float = 0.5,
                 seed: int = 1, faults: list[str] | None = None, endpoints: dict[str, str] | None = None,
                 halt_at: int | None = None, keep: int | None = None, port: int | None = None,
                 host: str = "127.0.0.1", startup_timeout: float = 10.0):
        self.chain_id, self.validators, self.block_time, self.seed = chain_id, validators, block_time, seed
        self.faults = list(faults or [])
        self.endpoints = dict(endpoints or {"rpc0": "honest"})
        self.halt_at, self.keep = halt_at, keep
        for f in self.faults:
            parse_fault(f, validators)
        for name, mode in self.endpoints.items():
            parse_endpoint(f"{name}={mode}")
        super().__init__(port=port, host=host, startup_timeout=startup_timeout)

    def _arguments(self) -> list[str]:
        out = ["--chain-id", self.chain_id, "--validators", str(self.validators), "--block-time",
               str(self.block_time), "--seed", str(self.seed),
               *self._options(("--halt-at", self.halt_at), ("--keep", self.keep))]
        for f in self.faults:
            out += ["--fault", f]
        for name, mode in self.endpoints.items():
            out += ["--endpoint", f"{name}={mode}"]
        return out

    def endpoint_url(self, name: str) -> str:
        """The base URL of endpoint ``name`` (routes are ``<url>/status`` etc.)."""
        if name not in self.endpoints:
            raise KeyError(f"no endpoint {name!r} (have {', '.join(self.endpoints)})")
        return f"{self.url}/{name}"

    def validator_addresses(self) -> list[bytes]:
        """Validator i's 20-byte address, for i in 0..validators-1 (the index faults name)."""
        return validator_addresses(self.seed, self.validators)


if __name__ == "__main__":
    main()
