"""Bad input to alignment_node.cometbft gets CometError with a clear message, never another exception.

Also: times (RFC3339, 9 fractional digits at most), verification modes beyond the vectors (light stops
early, light_all does not; trusting skips unknown signers and rejects double votes), and two small
hypothesis fuzzes: time round trips and random mutations of a valid /commit result.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from alignment_node.cometbft import (
    ABSENT,
    COMMIT,
    NIL,
    BlockID,
    CometError,
    OtherEvidence,
    Timestamp,
    address_of,
    check_signatures,
    format_time,
    parse_block,
    parse_commit,
    parse_status,
    parse_time,
    parse_validators,
    result_of,
    verify_commit,
    verify_commit_light_trusting,
    verify_signature,
    vote_sign_bytes,
)
from test_cometbft_vectors import header_json as vectors_header_json  # a sibling test module

REPO = Path(__file__).resolve().parents[1]
_VECTORS = next(
    p for p in (REPO / "tests" / "vectors" / "cometbft.json", REPO.parent / "shared" / "vectors" / "cometbft.json")
    if p.exists()
)
_DERIVED = json.loads(_VECTORS.read_text())["derived"]
FIXTURE = _DERIVED["commit_verification"]
EVIDENCE = _DERIVED["duplicate_vote_evidence"]["json_v0_34_to_v0_39"]
CHAIN_ID = FIXTURE["chain_id"]
HEIGHT = int(FIXTURE["commit"]["height"])


def header_json(height: str) -> dict:
    return vectors_header_json(CHAIN_ID, height)


def commit_result(commit_json: dict | None = None) -> dict:
    commit_json = copy.deepcopy(FIXTURE["commit"]) if commit_json is None else commit_json
    return {"signed_header": {"header": header_json(commit_json["height"]), "commit": commit_json}, "canonical": True}


def validators_result() -> dict:
    return copy.deepcopy(FIXTURE["validators_result"])


def error_of(func, value) -> str:
    with pytest.raises(CometError) as info:
        func(value)
    return str(info.value)


# ------------------------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    "text, seconds, nanos",
    [
        ("0001-01-01T00:00:00Z", -62135596800, 0),
        ("1970-01-01T00:00:00Z", 0, 0),
        ("1969-12-31T23:59:59.999999999Z", -1, 999999999),
        ("2024-02-29T12:00:05.2Z", 1709208005, 200000000),
        ("9999-12-31T23:59:59.000000001Z", 253402300799, 1),
    ],
)
def test_parse_and_format_time(text, seconds, nanos):
    assert parse_time(text) == Timestamp(seconds, nanos)
    assert format_time(Timestamp(seconds, nanos)) == text


@pytest.mark.parametrize(
    "text",
    [
        "2024-06-01T12:00:05.123456789012Z",  # 12 fractional digits
        "2024-06-01T12:00:05.1234567890Z",  # 10
        "2024-06-01T12:00:05+00:00",
        "2024-06-01T12:00:05.5+02:00",
        "2024-06-01T12:00:05z",
        "2024-06-01t12:00:05Z",
        "2024-06-01 12:00:05Z",
        "2024-06-01T12:00:05",
        "2024-06-01T12:00:05.Z",
        "2024-06-01T12:00:05Z\n",
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-06-01T24:00:00Z",
        "2024-06-01T12:60:00Z",
        "2024-06-01T12:00:60Z",
        "0000-01-01T00:00:00Z",
        "２０２４-06-01T12:00:05Z",
        "",
    ],
)
def test_bad_times_are_rejected(text):
    assert "time" in error_of(parse_time, text)


def test_format_time_trims_and_rejects():
    assert format_time(Timestamp(1717243205, 120000000)) == "2024-06-01T12:00:05.12Z"
    with pytest.raises(CometError, match="nanos"):
        Timestamp(0, 1_000_000_000)
    with pytest.raises(CometError, match="years"):
        format_time(Timestamp(253402300800, 0))


@settings(max_examples=300, deadline=None)
@given(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))
def test_time_round_trip(seconds, nanos):
    ts = Timestamp(seconds, nanos)
    text = format_time(ts)
    assert parse_time(text) == ts
    frac = text[20:-1]
    assert not frac.endswith("0") and len(frac) <= 9


# -------------------------------------------------------------------------------------- envelope


def test_result_of():
    assert result_of({"jsonrpc": "2.0", "id": 1, "result": {"a": 1}}) == {"a": 1}
    msg = error_of(result_of, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "Internal error",
                                                                   "data": "height 9 must be less than or equal to 5"}})
    assert "-32603" in msg and "Internal error" in msg and "height 9" in msg
    assert "missing" in error_of(result_of, {"jsonrpc": "2.0", "id": 1})
    assert "object" in error_of(result_of, [1, 2])
    assert "object" in error_of(result_of, {"result": "x"})


# ------------------------------------------------------------------------------------------ commit


def mutated(path: str, value=None, delete: bool = False) -> dict:
    """The fixture's /commit result with one value at ``path`` (dotted, [i] for lists) replaced or removed."""
    result = commit_result()
    node = result["signed_header"]
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    for k in keys[:-1]:
        node = node[k]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return result


SIG63 = base64.b64encode(b"\x01" * 63).decode()


@pytest.mark.parametrize(
    "path, value, expect",
    [
        ("commit.signatures[3].signature", SIG63, "commit.signatures[3].signature: 63 bytes, want 64"),
        ("commit.signatures[0].signature", "not base64!", "commit.signatures[0].signature: not valid base64"),
        ("commit.signatures[0].signature", "rK6zfXMfrVTHdACf", "commit.signatures[0].signature: 12 bytes, want 64"),
        ("commit.signatures[0].signature", "rK6zfXMfrVTHdACf+KESkZ028y2", "not valid base64"),
        ("commit.signatures[0].signature", None, "commit.signatures[0].signature: 0 bytes, want 64"),
        ("commit.signatures[0].signature", 12, "commit.signatures[0].signature: a number, want base64"),
        ("commit.signatures[1].timestamp", "2024-06-01T12:00:05.123456789012Z", "commit.signatures[1].timestamp"),
        ("commit.signatures[1].timestamp", 1717243205, "commit.signatures[1].timestamp"),
        ("commit.height", 1234567, "commit.height: a number, cmtjson writes int64 as a string"),
        ("commit.height", "1.5e6", "commit.height: '1.5e6' is not a decimal int64"),
        ("commit.height", "99999999999999999999", "commit.height"),
        ("commit.height", "-5", "commit.height: -5 out of range"),
        ("header.height", 12, "header.height: a number, cmtjson writes int64 as a string"),
        ("commit.round", "1", "commit.round: a string, cmtjson writes 32-bit integers as numbers"),
        ("commit.round", 1.0, "commit.round: a number, want an integer"),
        ("commit.round", 2**31, "commit.round"),
        ("commit.signatures[0].block_id_flag", True, "commit.signatures[0].block_id_flag: a boolean"),
        ("commit.signatures[0].block_id_flag", 4, "commit.signatures[0].block_id_flag: 4, want 1"),
        ("commit.signatures[0].block_id_flag", 0, "block_id_flag: 0"),
        ("commit.signatures[4].signature", SIG63, "must be null for an ABSENT"),
        ("commit.signatures[4].validator_address", "E74FBE24164CFC4F88E311C3AC92E63D0DC310D8", "must be empty"),
        ("commit.signatures[4].timestamp", "2024-06-01T12:00:05Z", "must be 0001-01-01T00:00:00Z"),
        ("commit.signatures[0].validator_address", "E74FBE24", "commit.signatures[0].validator_address: 4 bytes, want 20"),
        ("commit.signatures[0].validator_address", "XYZ", "is not hex"),
        ("commit.signatures[0].validator_address", "E74FBE24164CFC4F88E311C3AC92E63D0DC310D", "is not hex"),
        ("commit.signatures[0].validator_address", "E7 4F", "is not hex"),
        ("commit.block_id.hash", "62A722DB", "commit.block_id.hash: 4 bytes, want 0 or 32"),
        ("commit.block_id.parts", {"total": 1}, "commit.block_id.parts.hash: missing"),
        ("commit.block_id.parts.total", -1, "commit.block_id.parts.total: -1 out of range"),
        ("commit.signatures", {}, "commit.signatures: an object, want a list"),
        ("commit.signatures[2]", [], "commit.signatures[2]: a list, want an object"),
        ("header.chain_id", 7, "header.chain_id: a number, want a string"),
        ("header.time", "yesterday", "header.time"),
        ("header.last_block_id", None, "header.last_block_id: null, want an object"),
    ],
)
def test_bad_commit_fields(path, value, expect):
    assert expect in error_of(parse_commit, mutated(path, value))


@pytest.mark.parametrize(
    "path",
    [
        "commit.height",
        "commit.round",
        "commit.block_id",
        "commit.block_id.parts",
        "commit.signatures",
        "commit.signatures[1].signature",
        "commit.signatures[1].timestamp",
        "commit.signatures[1].validator_address",
        "commit.signatures[1].block_id_flag",
        "header.chain_id",
        "header.time",
        "header.proposer_address",
    ],
)
def test_missing_commit_fields(path):
    msg = error_of(parse_commit, mutated(path, delete=True))
    assert msg == f"result.signed_header.{path}: missing"


def test_commit_top_level_shape():
    assert "missing" in error_of(parse_commit, {"canonical": True})
    assert "canonical: a string" in error_of(parse_commit, {**commit_result(), "canonical": "true"})
    assert "object" in error_of(parse_commit, "commit")


def test_more_signatures_than_validators():
    result = commit_result()
    result["signed_header"]["commit"]["signatures"].append(copy.deepcopy(FIXTURE["commit"]["signatures"][4]))
    commit = parse_commit(result).commit
    validators = parse_validators(validators_result()).validators
    with pytest.raises(CometError, match="6 signatures, validator set has 5"):
        check_signatures(CHAIN_ID, validators, commit)
    for mode in ("full", "light", "light_all"):
        out = verify_commit(CHAIN_ID, validators, commit.block_id, HEIGHT, commit, mode)
        assert not out.ok and out.reason == "commit has 6 signatures, validator set has 5"
    fewer = verify_commit(CHAIN_ID, validators[:4], commit.block_id, HEIGHT, parse_commit(commit_result()).commit)
    assert not fewer.ok and "validator set has 4" in fewer.reason


def test_block_id_mismatch_and_bad_mode():
    commit = parse_commit(commit_result()).commit
    validators = parse_validators(validators_result()).validators
    assert verify_commit(CHAIN_ID, validators, commit.block_id, HEIGHT, commit).ok
    other = BlockID(commit.block_id.hash, 3, commit.block_id.parts_hash)
    out = verify_commit(CHAIN_ID, validators, other, HEIGHT, commit)
    assert not out.ok and "does not match the expected" in out.reason
    with pytest.raises(CometError, match="mode"):
        verify_commit(CHAIN_ID, validators, None, HEIGHT, commit, "fast")
    with pytest.raises(CometError, match="trust level"):
        verify_commit_light_trusting(CHAIN_ID, validators, commit, 1, 0)


# -------------------------------------------------------------------------------------- validators


def test_bad_validators():
    def page(path: str, value) -> dict:
        result = validators_result()
        node = result
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return result

    assert "result.validators[0].voting_power: a number, cmtjson writes int64 as a string" in error_of(
        parse_validators, page("validators[0].voting_power", 30)
    )
    assert "result.block_height: a number" in error_of(parse_validators, page("block_height", 5))
    assert "result.count: a number" in error_of(parse_validators, page("count", 5))
    assert "voting_power: -1 out of range" in error_of(parse_validators, page("validators[0].voting_power", "-1"))
    assert "result.validators[0].pub_key.value: 63 bytes, want 32" in error_of(parse_validators, page("validators[0].pub_key.value", SIG63))
    assert "not SHA-256(pub_key)[:20]" in error_of(
        parse_validators, page("validators[0].address", FIXTURE["validators_result"]["validators"][1]["address"])
    )
    assert "count: 4, but the page lists 5" in error_of(parse_validators, page("count", "4"))
    assert "less than count" in error_of(parse_validators, page("total", "2"))
    assert "pub_key.type: null" in error_of(parse_validators, page("validators[0].pub_key.type", None))
    assert "pub_key.value: not valid base64" in error_of(parse_validators, page("validators[0].pub_key.value", "@@"))


def test_non_ed25519_validators_parse_but_do_not_verify():
    result = validators_result()
    secp = base64.b64encode(b"\x02" + b"\x11" * 32).decode()
    result["validators"][1]["pub_key"] = {"type": "tendermint/PubKeySecp256k1", "value": secp}
    page = parse_validators(result)
    assert [v.verifiable for v in page.validators] == [True, False, True, True, True]
    assert page.validators[1].pub_key_type == "tendermint/PubKeySecp256k1"
    commit = parse_commit(commit_result()).commit
    checks = check_signatures(CHAIN_ID, page.validators, commit)
    assert checks[1].valid is False and "tendermint/PubKeySecp256k1" in checks[1].reason
    out = verify_commit(CHAIN_ID, page.validators, commit.block_id, HEIGHT, commit)
    assert not out.ok and "only ed25519" in out.reason


# ----------------------------------------------------------------------------------- block, status


def block_result() -> dict:
    return {
        "block_id": {"hash": "AB" * 32, "parts": {"total": 1, "hash": "CD" * 32}},
        "block": {
            "header": header_json(str(HEIGHT + 1)),
            "data": {"txs": ["dHgx", "dHgy"]},
            "evidence": {"evidence": [{"type": "tendermint/LightClientAttackEvidence", "value": {"x": 1}}]},
            "last_commit": copy.deepcopy(FIXTURE["commit"]),
        },
    }


def test_parse_block():
    block = parse_block(block_result())
    assert block.txs == 2 and block.header.height == HEIGHT + 1
    assert block.last_commit.height == HEIGHT and len(block.last_commit.signatures) == 5
    (ev,) = block.evidence
    assert isinstance(ev, OtherEvidence) and ev.type == "tendermint/LightClientAttackEvidence"
    empty = block_result()
    empty["block"].update(data={"txs": None}, evidence={"evidence": None}, last_commit=None)
    parsed = parse_block(empty)
    assert (parsed.txs, parsed.evidence, parsed.last_commit) == (0, [], None)


def test_bad_block():
    bad = block_result()
    bad["block"]["data"]["txs"] = [1]
    assert "block.data.txs[0]: a number, want a string" in error_of(parse_block, bad)
    bad = block_result()
    bad["block"]["evidence"]["evidence"] = [{"type": "tendermint/DuplicateVoteEvidence", "value": {}}]
    assert error_of(parse_block, bad) == "result.block.evidence.evidence[0].value.vote_a: missing"
    bad["block"]["evidence"]["evidence"] = [{"type": "tendermint/DuplicateVoteEvidence", "value": {"vote_a": {}}}]
    assert error_of(parse_block, bad) == "result.block.evidence.evidence[0].value.vote_a.type: missing"
    item = copy.deepcopy(EVIDENCE)
    del item["value"]["TotalVotingPower"]
    bad["block"]["evidence"]["evidence"] = [item]
    assert error_of(parse_block, bad) == (
        "result.block.evidence.evidence[0].value.total_voting_power: missing (also as TotalVotingPower)"
    )
    item = copy.deepcopy(EVIDENCE)
    item["value"]["vote_b"]["signature"] = SIG63
    item["value"]["vote_a"]["height"] = 1234560
    bad["block"]["evidence"]["evidence"] = [item]
    assert "vote_a.height: a number, cmtjson writes int64 as a string" in error_of(parse_block, bad)
    item["value"]["vote_a"]["height"] = "1234560"
    assert "value.vote_b.signature: 63 bytes, want 64" in error_of(parse_block, bad)
    bad = block_result()
    bad["block"]["last_commit"]["signatures"][0]["signature"] = SIG63
    assert "block.last_commit.signatures[0].signature: 63 bytes, want 64" in error_of(parse_block, bad)


def status_result() -> dict:
    return {
        "node_info": {"network": CHAIN_ID, "moniker": "n0", "other": {}},
        "sync_info": {
            "latest_block_hash": "AB" * 32,
            "latest_app_hash": "",
            "latest_block_height": "1234568",
            "latest_block_time": "2024-06-01T12:00:06.5Z",
            "earliest_block_hash": "",
            "earliest_block_height": "1",
            "catching_up": False,
        },
        "validator_info": {"address": "E74FBE24164CFC4F88E311C3AC92E63D0DC310D8", "voting_power": "30"},
    }


def test_parse_status():
    status = parse_status(status_result())
    assert (status.chain_id, status.latest_height, status.earliest_height, status.catching_up) == (
        CHAIN_ID, 1234568, 1, False,
    )
    assert format_time(status.latest_block_time) == "2024-06-01T12:00:06.5Z"
    bad = status_result()
    bad["sync_info"]["catching_up"] = "false"
    assert "sync_info.catching_up: a string, want true or false" in error_of(parse_status, bad)
    bad = status_result()
    bad["sync_info"]["latest_block_height"] = 1234568
    assert "a number, cmtjson writes int64 as a string" in error_of(parse_status, bad)


# ------------------------------------------------------------------------- verification beyond vectors

SEEDS = [bytes([i + 1]) * 32 for i in range(4)]


def signed_commit(powers_by_seed: list[int], flags: list[int], tamper: int | None = None):
    """A commit signed with test keys (sorted by power desc, then address), its validators and block id."""
    keys = [SigningKey(s) for s in SEEDS[: len(powers_by_seed)]]
    entries = sorted(
        ((p, address_of(bytes(k.verify_key)), k) for p, k in zip(powers_by_seed, keys)), key=lambda e: (-e[0], e[1])
    )
    block_id = BlockID(b"\x07" * 32, 1, b"\x08" * 32)
    validators = {
        "block_height": "50",
        "validators": [
            {"address": a.hex().upper(), "pub_key": {"type": "tendermint/PubKeyEd25519",
                                                      "value": base64.b64encode(bytes(k.verify_key)).decode()},
             "voting_power": str(p), "proposer_priority": "0"}
            for p, a, k in entries
        ],
        "count": str(len(entries)),
        "total": str(len(entries)),
    }
    sigs = []
    for i, ((_, address, key), flag) in enumerate(zip(entries, flags)):
        if flag == ABSENT:
            sigs.append({"block_id_flag": 1, "validator_address": "", "timestamp": "0001-01-01T00:00:00Z",
                         "signature": None})
            continue
        ts = Timestamp(1717243205, 1000 * (i + 1))
        msg = vote_sign_bytes(2, 50, 0, block_id if flag == COMMIT else None, ts, CHAIN_ID)
        sig = key.sign(msg).signature
        if i == tamper:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        sigs.append({"block_id_flag": flag, "validator_address": address.hex().upper(),
                     "timestamp": format_time(ts), "signature": base64.b64encode(sig).decode()})
    commit_json = {
        "height": "50",
        "round": 0,
        "block_id": {"hash": block_id.hash.hex().upper(),
                     "parts": {"total": 1, "hash": block_id.parts_hash.hex().upper()}},
        "signatures": sigs,
    }
    return parse_commit(commit_result(commit_json)).commit, parse_validators(validators).validators, block_id


def test_light_stops_early_light_all_does_not():
    commit, validators, block_id = signed_commit([40, 30, 20, 10], [COMMIT] * 4, tamper=3)
    full = verify_commit(CHAIN_ID, validators, block_id, 50, commit, "full")
    light = verify_commit(CHAIN_ID, validators, block_id, 50, commit, "light")
    light_all = verify_commit(CHAIN_ID, validators, block_id, 50, commit, "light_all")
    assert not full.ok and full.reason == "wrong signature at index 3"
    assert light.ok and light.committed_power == 70 and len(light.checks) == 2  # 40 + 30 > 66: stops
    assert not light_all.ok and light_all.reason == "wrong signature at index 3"


def test_nil_votes_count_for_nothing_but_are_checked():
    commit, validators, block_id = signed_commit([40, 30, 20, 10], [COMMIT, NIL, COMMIT, COMMIT])
    full = verify_commit(CHAIN_ID, validators, block_id, 50, commit)
    assert full.ok and full.committed_power == 70 and [c.valid for c in full.checks] == [True] * 4
    commit, validators, block_id = signed_commit([40, 30, 20, 10], [COMMIT, NIL, ABSENT, COMMIT])
    out = verify_commit(CHAIN_ID, validators, block_id, 50, commit)
    assert not out.ok and out.reason == "not enough voting power signed: got 50, needed more than 66"


def test_trusting_skips_unknown_and_rejects_double_votes():
    commit, validators, _ = signed_commit([40, 30, 20, 10], [COMMIT] * 4)
    # Another set that knows only two of the signers (and one stranger): unknown signers are skipped.
    stranger = SigningKey(b"\x09" * 32).verify_key
    other = [validators[2], validators[3]]
    other.append(type(validators[0])(address_of(bytes(stranger)), validators[0].pub_key_type, bytes(stranger), 50, 0))
    out = verify_commit_light_trusting(CHAIN_ID, other, commit, 1, 3)
    assert out.total_power == 80 and out.needed == 26 and out.ok and out.committed_power == 30
    # The same validator's signature twice is an error (even after a valid first one).
    commit.signatures[1] = commit.signatures[0]
    out = verify_commit_light_trusting(CHAIN_ID, validators, commit, 2, 3)
    assert not out.ok and out.reason.startswith("double vote from") and "indexes 0 and 1" in out.reason


def test_verify_signature_never_raises():
    key = SigningKey(SEEDS[0])
    pub, sig = bytes(key.verify_key), key.sign(b"msg").signature
    assert verify_signature(pub, b"msg", sig)
    assert not verify_signature(pub, b"msh", sig)
    assert not verify_signature(pub[:31], b"msg", sig)
    assert not verify_signature(pub, b"msg", sig[:63])
    assert not verify_signature(pub, b"msg", sig + b"\x00")
    assert not verify_signature(None, b"msg", sig)
    assert not verify_signature(pub, None, sig)
    assert not verify_signature(pub, b"msg", bytearray(64))
    assert not verify_signature(b"\x00" * 32, b"msg", b"\x00" * 64)


def test_address_of_wrong_length():
    with pytest.raises(CometError, match="33 bytes, want 32"):
        address_of(b"\x02" * 33)


# ---------------------------------------------------------------------------------------- fuzzing

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


_BASE = commit_result()
_BASE_PATHS = [p for p in _paths(_BASE) if p]
_VALIDATORS = parse_validators(validators_result()).validators


def _string_edits(text: str) -> st.SearchStrategy:
    return st.sampled_from(
        [text[:-1], text + "0", text.lower(), text.upper(), " " + text, text[1:], text * 2, "", text.replace("Z", "")]
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_commit_raises_only_comet_error(data):
    result = copy.deepcopy(_BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_BASE_PATHS))
        parent = result
        try:
            for k in path[:-1]:
                parent = parent[k]
            if not isinstance(parent, (dict, list)):
                continue  # an earlier mutation replaced a container by a string (which indexes too)
            old = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this part
        action = data.draw(st.sampled_from(["replace", "delete", "edit"]))
        if action == "delete":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        elif action == "edit" and isinstance(old, str):
            parent[path[-1]] = data.draw(_string_edits(old))
        elif action == "edit" and isinstance(old, int) and not isinstance(old, bool):
            parent[path[-1]] = data.draw(st.sampled_from([old + 1, old - 1, -old, str(old), float(old), 2**63]))
        else:
            parent[path[-1]] = data.draw(_JSON_VALUES)
    try:
        signed = parse_commit(result)
    except CometError:
        return
    commit = signed.commit
    for mode in ("full", "light", "light_all"):
        verify_commit(CHAIN_ID, _VALIDATORS, None, HEIGHT, commit, mode)
    verify_commit_light_trusting(CHAIN_ID, _VALIDATORS, commit)
    try:
        check_signatures(CHAIN_ID, _VALIDATORS, commit)
    except CometError:
        pass
