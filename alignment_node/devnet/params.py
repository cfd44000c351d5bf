"""Deployment parameters: load a JSON file over the defaults (default_params.json), validate every key,
and resolve deploy-time values (relative times, "the deployer" addresses).

A params file holds any subset of the sections and keys of default_params.json; what it leaves out keeps
the default (lists, such as the sale tiers, are replaced whole). Value forms:

- wei amounts: an integer, a decimal string ("100000000000000000") or "<number> ether|gwei|wei"
  ("0.1 ether");
- times: an absolute unix time in seconds (integer) or "+<seconds>" relative to the latest block's
  timestamp when the deployment starts;
- addresses: 0x-hex (EIP-55 checked when mixed case), or null where "null = the deployer" is noted;
- bytes32: 0x followed by 64 hex digits.

Every problem found is reported at once in one `ParamsError`, each prefixed by its key path.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

from ..chain.keccak import is_address, normalize_address

__all__ = ["ParamsError", "DEFAULT_PARAMS_PATH", "default_params", "load_params", "validate_params", "resolve_params"]

DEFAULT_PARAMS_PATH = Path(__file__).resolve().parent / "default_params.json"

BPS = 10_000
MAX_COMMISSION_BPS = 5000  # OperatorRegistry.MAX_COMMISSION_BPS
MAX_COMMITTEE_CAP = 16  # AuditProtocol.MAX_COMMITTEE_CAP
MAX_DISCOUNT_BPS = 2000  # NodeSale.MAX_DISCOUNT_BPS
UINT256_MAX = (1 << 256) - 1


class ParamsError(ValueError):
    """Invalid deployment parameters; `problems` lists each one as "path: what is wrong"."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        super().__init__(f"invalid deployment parameters{where}:\n  " + "\n  ".join(problems))


class _Bad(Exception):
    pass


# --------------------------------------------------------------------------------- validators

def _uint(bits: int, lo: int = 0, hi: int | None = None) -> Callable[[Any], int]:
    top = (1 << bits) - 1 if hi is None else min(hi, (1 << bits) - 1)

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"expected an integer, got {_kind(v)}")
        if not lo <= v <= top:
            raise _Bad(f"{v} is out of range [{lo}, {top}]")
        return v

    return check


_UNITS = {"wei": 1, "gwei": 10**9, "ether": 10**18}
_WEI_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(wei|gwei|ether)?\s*$")


def _wei(bits: int, lo: int = 0) -> Callable[[Any], int]:
    top = (1 << bits) - 1

    def check(v: Any) -> int:
        if isinstance(v, bool):
            raise _Bad("expected a wei amount, got a boolean")
        if isinstance(v, int):
            amount = v
        elif isinstance(v, str):
            m = _WEI_RE.match(v)
            if not m:
                raise _Bad(f"expected a wei amount like 1000000 or \"0.1 ether\", got {v!r}")
            try:
                exact = Decimal(m.group(1)) * _UNITS[m.group(2) or "wei"]
            except InvalidOperation:
                raise _Bad(f"bad amount {v!r}") from None
            if exact != exact.to_integral_value():
                raise _Bad(f"{v!r} is not a whole number of wei")
            amount = int(exact)
        else:
            raise _Bad(f"expected a wei amount, got {_kind(v)}")
        if not lo <= amount <= top:
            raise _Bad(f"{amount} wei is out of range [{lo}, {top}]")
        return amount

    return check


def _time(v: Any) -> int | str:
    if isinstance(v, bool):
        raise _Bad("expected a unix time or \"+seconds\", got a boolean")
    if isinstance(v, int):
        if not 0 <= v < 1 << 64:
            raise _Bad(f"{v} is out of range for a unix time")
        return v
    if isinstance(v, str) and re.fullmatch(r"\+[0-9]+", v.strip()):
        return "+" + str(int(v.strip()[1:]))
    raise _Bad(f"expected a unix time (integer) or \"+<seconds>\", got {v!r}")


def _address(nullable: bool) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None:
            if nullable:
                return None
            raise _Bad("an address is required")
        if not is_address(v):
            raise _Bad(f"not an address: {v!r}")
        try:
            a = normalize_address(v)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
        if int(a, 16) == 0:
            raise _Bad("the zero address is not allowed")
        return a

    return check


def _bytes32(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", v):
        raise _Bad(f"expected 0x followed by 64 hex digits, got {v!r}")
    return v.lower()


def _string(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"expected a non-empty string, got {_kind(v)}")
    return v


def _promo_codes(v: Any) -> list[dict]:
    """The sale's promo codes, set by the deployer before handing the sale to the timelock: fixed once the sale
    opens (NodeSale refuses changes while it is in progress)."""
    if not isinstance(v, list):
        raise _Bad(f"expected a list of {{\"code\", \"discountBps\", \"referrer\", \"referrerBps\"}}, got {_kind(v)}")
    out, seen = [], set()
    for i, p in enumerate(v):
        if not isinstance(p, dict):
            raise _Bad(f"[{i}]: a promo code is an object, got {_kind(p)}")
        unknown = sorted(set(p) - {"code", "discountBps", "referrer", "referrerBps"})
        if unknown:
            raise _Bad(f"[{i}]: unknown key(s) {unknown} (a promo code has code, discountBps, referrer, referrerBps)")
        try:
            code = _string(p.get("code"))
            discount = _uint(16, hi=MAX_DISCOUNT_BPS)(p.get("discountBps", 0))
            referrer = _address(True)(p.get("referrer"))
            referrer_bps = _uint(16, hi=BPS)(p.get("referrerBps", 0))
        except _Bad as exc:
            raise _Bad(f"[{i}]: {exc}") from None
        if referrer_bps and referrer is None:
            raise _Bad(f"[{i}]: referrerBps needs a referrer")
        if not discount and referrer is None:
            raise _Bad(f"[{i}]: a code with neither a discount nor a referrer does nothing")
        if code in seen:
            raise _Bad(f"[{i}]: code {code!r} given twice")
        seen.add(code)
        out.append({"code": code, "discountBps": discount, "referrer": referrer, "referrerBps": referrer_bps})
    return out


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(v: Any) -> Any:
        return None if v is None else check(v)

    return wrapped


def _tier(v: Any) -> dict:
    if not isinstance(v, dict):
        raise _Bad(f"a tier is an object {{\"price\", \"supply\"}}, got {_kind(v)}")
    unknown = sorted(set(v) - {"price", "supply"})
    if unknown:
        raise _Bad(f"unknown key(s) {unknown} (a tier has price and supply)")
    if "price" not in v or "supply" not in v:
        raise _Bad("a tier needs both price and supply")
    try:
        price = _wei(128)(v["price"])
    except _Bad as exc:
        raise _Bad(f"price: {exc}") from None
    try:
        supply = _uint(128, lo=1)(v["supply"])
    except _Bad as exc:
        raise _Bad(f"supply: {exc}") from None
    return {"price": price, "supply": supply}


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


# Section -> key -> validator. Mirrors default_params.json (a test checks they agree).
SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "token": {
        "address": _optional(_address(False)),  # null: deploy RewardToken; else use this ERC20
        "name": _string,
        "symbol": _string,
    },
    "license": {
        "name": _string,
        "symbol": _string,
        "transferUnlockTime": _time,
    },
    "timelock": {
        "minDelay": _uint(256),
    },
    "governor": {
        "votingDelay": _uint(48),
        "votingPeriod": _uint(32, lo=1),
        "proposalThreshold": _uint(256),
        "quorumPercent": _uint(256, hi=100),
    },
    "registry": {
        "maxLicensesPerOperator": _uint(32),
    },
    "targets": {
        "trapKeeper": _address(True),  # null: the deployer
    },
    "rewards": {
        "treasury": _address(True),  # null: the deployer
        "nodeShareBps": _uint(16, hi=BPS),
        "stakerShareBps": _uint(16, hi=BPS),
        "missBountyBps": _uint(16, hi=BPS),
        "missPenaltyBps": _uint(32),
        "disagreePenaltyBps": _uint(32),
        "trapPenaltyBps": _uint(32),
        "suspendAfter": _uint(16),
        "suspendWindow": _uint(32),
        "suspendEpochs": _uint(32),
        "emissionPerEpoch": _wei(128),
        # StakingVault: seconds over which the stakers' fee share vests (security finding M7).
        "stakingDripSeconds": _uint(64, lo=1),
    },
    "protocol": {
        "genesisBlock": _optional(_uint(64)),  # null: the latest block when deploying
        "epochLength": _uint(32, lo=1),
        "genesisSeed": _bytes32,
        "revealBlocks": _uint(32, lo=1),
        "committeeSize": _uint(16, lo=1),
        "minReveals": _uint(16),
        "maxCommittee": _uint(16, lo=1, hi=MAX_COMMITTEE_CAP),
    },
    "referees": {  # RefereeCourt.Params (docs/protocol.md, the referee duty)
        "minBond": _wei(128),
        "refereeBlocks": _uint(32, lo=1),
        "unbondBlocks": _uint(32),
        "committee": _uint(8, lo=1, hi=3),
    },
    "sale": {
        "treasury": _address(True),  # null: the deployer
        "tiers": lambda v: v,  # checked item by item below
        "allowlistStart": _time,
        "publicStart": _time,
        "saleEnd": _time,
        "allowlistMaxPerWallet": _uint(32),
        "publicMaxPerWallet": _uint(32),
        "allowlistRoot": _bytes32,
        "promoCodes": _promo_codes,  # discount at most MAX_DISCOUNT_BPS; fixed when the sale opens
    },
    "devnet": {
        # Commission the devnet's own operators register with (not used by the deployment itself).
        "operatorCommissionBps": _uint(16, hi=MAX_COMMISSION_BPS),
    },
}


# ------------------------------------------------------------------------------------ loading

def default_params() -> dict:
    """The devnet defaults (docs/spec/PROTOCOL.md section 10), unvalidated raw JSON."""
    return json.loads(DEFAULT_PARAMS_PATH.read_text())


def _merge(base: dict, override: dict, path: str, problems: list[str]) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}" if path else key
        if key not in base:
            known = ", ".join(sorted(base))
            problems.append(f"{where}: unknown key (known: {known})")
            continue
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                problems.append(f"{where}: expected an object, got {_kind(value)}")
                continue
            out[key] = _merge(base[key], value, where, problems)
        else:
            out[key] = value
    return out


def validate_params(raw: Any, source: str | None = None) -> dict:
    """Merge `raw` over the defaults and validate; returns normalized params or raises ParamsError."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ParamsError([f"the params file must hold a JSON object, got {_kind(raw)}"], source)
    merged = _merge(default_params(), raw, "", problems)
    out: dict[str, dict] = {}
    for section, keys in SCHEMA.items():
        values = merged.get(section, {})
        out[section] = {}
        for key, check in keys.items():
            if key not in values:
                problems.append(f"{section}.{key}: missing (and no default)")
                continue
            try:
                out[section][key] = check(values[key])
            except _Bad as exc:
                problems.append(f"{section}.{key}: {exc}")
    # Sections of the defaults that the schema does not know would be a bug here, not in the file.
    for section in merged:
        if section not in SCHEMA:
            problems.append(f"{section}: unknown section")

    tiers = merged.get("sale", {}).get("tiers")
    if not isinstance(tiers, list) or not tiers:
        problems.append("sale.tiers: expected a non-empty list of {\"price\", \"supply\"}")
    else:
        checked = []
        for i, t in enumerate(tiers):
            try:
                checked.append(_tier(t))
            except _Bad as exc:
                problems.append(f"sale.tiers[{i}]: {exc}")
        out["sale"]["tiers"] = checked

    _cross_checks(out, problems)
    if problems:
        raise ParamsError(problems, source)
    return out


def _cross_checks(p: dict, problems: list[str]) -> None:
    r, pr, s = p["rewards"], p["protocol"], p["sale"]
    if isinstance(r.get("nodeShareBps"), int) and isinstance(r.get("stakerShareBps"), int):
        if r["nodeShareBps"] + r["stakerShareBps"] > BPS:
            problems.append(
                f"rewards: nodeShareBps + stakerShareBps = {r['nodeShareBps'] + r['stakerShareBps']} exceeds {BPS}"
            )
    rb, el = pr.get("revealBlocks"), pr.get("epochLength")
    if isinstance(rb, int) and isinstance(el, int) and rb >= el:
        problems.append(f"protocol.revealBlocks: {rb} must be less than protocol.epochLength ({el})")
    mr, mc = pr.get("minReveals"), pr.get("maxCommittee")
    if isinstance(mr, int) and isinstance(mc, int) and mr > mc:
        problems.append(f"protocol.minReveals: {mr} exceeds protocol.maxCommittee ({mc})")
    a, b, c = s.get("allowlistStart"), s.get("publicStart"), s.get("saleEnd")
    if all(isinstance(x, int) for x in (a, b, c)) or all(isinstance(x, str) for x in (a, b, c)):
        key = (lambda x: int(x[1:])) if isinstance(a, str) else (lambda x: x)
        if not key(a) <= key(b) < key(c):
            problems.append("sale: need allowlistStart <= publicStart < saleEnd")


def load_params(path: str | Path | None = None) -> dict:
    """Validated params from a JSON file (None: the defaults)."""
    if path is None:
        return validate_params({}, str(DEFAULT_PARAMS_PATH))
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ParamsError([f"cannot read the file: {exc.strerror}"], str(p)) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ParamsError([f"not valid JSON: {exc}"], str(p)) from None
    return validate_params(raw, str(p))


def resolve_params(params: dict, *, now: int, latest_block: int, deployer: str) -> dict:
    """Concrete values for one deployment: relative times from `now` (the latest block's timestamp),
    null addresses -> `deployer`, null genesis block -> `latest_block`. Raises ParamsError when the
    resolved sale schedule or genesis block is impossible."""
    out = copy.deepcopy(params)

    def when(v: int | str) -> int:
        return now + int(v[1:]) if isinstance(v, str) else v

    out["license"]["transferUnlockTime"] = when(out["license"]["transferUnlockTime"])
    for k in ("allowlistStart", "publicStart", "saleEnd"):
        out["sale"][k] = when(out["sale"][k])
    for section, key in (("targets", "trapKeeper"), ("rewards", "treasury"), ("sale", "treasury")):
        if out[section][key] is None:
            out[section][key] = deployer
    if out["protocol"]["genesisBlock"] is None:
        out["protocol"]["genesisBlock"] = latest_block
    problems = []
    s = out["sale"]
    if not s["allowlistStart"] <= s["publicStart"] < s["saleEnd"]:
        problems.append(
            f"sale: resolved times allowlistStart={s['allowlistStart']} publicStart={s['publicStart']} "
            f"saleEnd={s['saleEnd']} break allowlistStart <= publicStart < saleEnd"
        )
    if s["promoCodes"] and s["allowlistStart"] <= now:
        problems.append(
            f"sale.promoCodes: the deployer sets them before the sale opens, but allowlistStart={s['allowlistStart']} "
            f"is not after the latest block's time {now} (NodeSale fixes promo codes once the sale is open)"
        )
    for k in ("allowlistStart", "publicStart", "saleEnd"):
        if s[k] >= 1 << 64:
            problems.append(f"sale.{k}: resolved time {s[k]} does not fit uint64")
    if out["protocol"]["genesisBlock"] > latest_block:
        problems.append(
            f"protocol.genesisBlock: {out['protocol']['genesisBlock']} is after the latest block {latest_block}"
        )
    if problems:
        raise ParamsError(problems)
    return out
