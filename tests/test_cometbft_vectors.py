"""Every vector of ../shared/vectors/cometbft.json is a test of alignment_node.cometbft.

Sections (each one's ``about`` text sets the expected outcome):
- sign_bytes_upstream, sign_bytes_tendermint_rs, derived.sign_bytes: vote_sign_bytes equals the bytes;
  each RFC3339 time parses to the given seconds/nanos and formats back to the same text.
- end_to_end_upstream: sign bytes + signature verify; the real-node commit JSON parses, gives the same
  sign bytes and passes VerifyCommit against its one-validator set.
- address_derivation, derived.keys: SHA-256(pub)[:20]; the seeds give the listed public keys.
- derived.signatures: verify_signature matches ``valid`` (negatives included).
- derived.commit_verification (+ variants), commit_two_thirds_boundary: per-signature sign bytes and
  the outcome of full / light / light_all / trusting 1/3.
- derived.duplicate_vote_evidence: both JSON key casings parse; both votes verify.
- negative_legacy_amino: the Amino-era signature must NOT verify over the protobuf sign bytes.
- rpc_json: the shapes parse; the spec's /commit example parses but its signature does not verify.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from alignment_node.cometbft import (
    ABSENT,
    COMMIT,
    NIL,
    ZERO_BLOCK_ID,
    BlockID,
    CometError,
    DuplicateVoteEvidence,
    Timestamp,
    Vote,
    address_of,
    check_signatures,
    commit_sign_bytes,
    format_time,
    parse_block,
    parse_commit,
    parse_time,
    parse_validators,
    verify_commit,
    verify_commit_light_trusting,
    verify_duplicate_vote,
    verify_signature,
    vote_extension_sign_bytes,
    vote_sign_bytes,
)

REPO = Path(__file__).resolve().parents[1]
COMMITTED_FILE = REPO / "tests" / "vectors" / "cometbft.json"
SHARED_FILE = REPO.parent / "shared" / "vectors" / "cometbft.json"


def load_vectors() -> dict:
    for path in (COMMITTED_FILE, SHARED_FILE):
        if path.exists():
            return json.loads(path.read_text())
    pytest.fail(f"the vectors are missing: {COMMITTED_FILE} (copy of {SHARED_FILE})", pytrace=False)


V = load_vectors()
DERIVED = V["derived"]


def test_committed_vectors_are_the_shared_ones():
    if not (COMMITTED_FILE.exists() and SHARED_FILE.exists()):
        pytest.skip("only one copy of cometbft.json is present")
    assert COMMITTED_FILE.read_bytes() == SHARED_FILE.read_bytes()


# ------------------------------------------------------------------------------------------ helpers


def block_id_of(norm: dict | None) -> BlockID | None:
    """A normalised vector block id ({hash, part_set_header{total, hash}}, lowercase hex) or None."""
    if norm is None:
        return None
    psh = norm["part_set_header"]
    return BlockID(bytes.fromhex(norm["hash"]), psh["total"], bytes.fromhex(psh["hash"]))


def timestamp_of(norm: dict) -> Timestamp:
    return Timestamp(norm["seconds"], norm["nanos"])


def header_json(chain_id: str, height: str) -> dict:
    """A header in cmtjson shape (the vectors carry bare commits; /commit wraps them with a header)."""
    return {
        "version": {"block": "11", "app": "1"},
        "chain_id": chain_id,
        "height": height,
        "time": "2024-06-01T12:00:00Z",
        "last_block_id": {"hash": "", "parts": {"total": 0, "hash": ""}},
        "last_commit_hash": "",
        "data_hash": "",
        "validators_hash": "",
        "next_validators_hash": "",
        "consensus_hash": "",
        "app_hash": "",
        "last_results_hash": "",
        "evidence_hash": "",
        "proposer_address": "",
    }


def commit_result(commit_json: dict, chain_id: str) -> dict:
    """The /commit result around a bare commit object."""
    return {
        "signed_header": {"header": header_json(chain_id, commit_json["height"]), "commit": commit_json},
        "canonical": True,
    }


def parse_bare_commit(commit_json: dict, chain_id: str = "c"):
    return parse_commit(commit_result(commit_json, chain_id)).commit


def one_validator_result(pubkey_b64: str, address: str, power: str, height: str) -> dict:
    return {
        "block_height": height,
        "validators": [
            {
                "address": address,
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": pubkey_b64},
                "voting_power": power,
                "proposer_priority": "0",
            }
        ],
        "count": "1",
        "total": "1",
    }


def cases(section: dict) -> list:
    return [pytest.param(c, id=c["id"]) for c in section["cases"]]


# -------------------------------------------------------------------------------------- sign bytes

SIGN_BYTES_CASES = (
    cases(V["sign_bytes_upstream"])
    + cases(V["sign_bytes_tendermint_rs"])
    + [pytest.param(c, id=c["id"]) for c in DERIVED["sign_bytes"]]
)


@pytest.mark.parametrize("case", SIGN_BYTES_CASES)
def test_sign_bytes(case):
    ts = parse_time(case["timestamp"]["rfc3339"])
    assert ts == timestamp_of(case["timestamp"])
    assert format_time(ts) == case["timestamp"]["rfc3339"]
    got = vote_sign_bytes(
        case["type"], case["height"], case["round"], block_id_of(case["block_id"]), ts, case["chain_id"]
    )
    assert got.hex() == case["sign_bytes"]


@pytest.mark.parametrize("case", SIGN_BYTES_CASES)
def test_vote_sign_bytes_method(case):
    """Vote.sign_bytes gives the same bytes; address, index and signature are not signed."""
    vote = Vote(
        type=case["type"],
        height=case["height"],
        round=case["round"],
        block_id=block_id_of(case["block_id"]) or ZERO_BLOCK_ID,
        timestamp=timestamp_of(case["timestamp"]),
        validator_address=b"\x01" * 20,
        validator_index=7,
        signature=b"\x02" * 64,
    )
    assert vote.sign_bytes(case["chain_id"]).hex() == case["sign_bytes"]


def test_vote_extension_sign_bytes():
    case = DERIVED["vote_extension"]
    got = vote_extension_sign_bytes(
        case["extension_utf8"].encode(), case["height"], case["round"], case["chain_id"]
    )
    assert got.hex() == case["sign_bytes"]


# ------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("case", cases(V["end_to_end_upstream"]))
def test_end_to_end(case):
    assert case["valid"] is True
    pub = bytes.fromhex(case["pubkey"])
    assert base64.b64decode(case["pubkey_base64"]) == pub
    assert address_of(pub).hex().upper() == case["address"]
    vote = case["vote"]
    sign_bytes = vote_sign_bytes(
        vote["type"], vote["height"], vote["round"], block_id_of(vote["block_id"]),
        parse_time(vote["timestamp"]["rfc3339"]), case["chain_id"],
    )
    assert sign_bytes.hex() == case["sign_bytes"]
    signature = base64.b64decode(case["signature_base64"])
    assert signature.hex() == case["signature"]
    assert verify_signature(pub, sign_bytes, signature)


END_TO_END_COMMITS = [pytest.param(c, id=c["id"]) for c in V["end_to_end_upstream"]["cases"] if "commit_json" in c]


@pytest.mark.parametrize("case", END_TO_END_COMMITS)
def test_end_to_end_commit_json(case):
    """The real node's commit JSON parses, gives the vector's sign bytes and passes every mode."""
    commit = parse_bare_commit(case["commit_json"], case["chain_id"])
    index = case["signature_index"]
    assert commit_sign_bytes(commit, index, case["chain_id"]).hex() == case["sign_bytes"]
    page = parse_validators(
        one_validator_result(case["pubkey_base64"], case["address"], case["voting_power"], case["commit_json"]["height"])
    )
    checks = check_signatures(case["chain_id"], page.validators, commit)
    assert [c.valid for c in checks] == [True]
    block_id = block_id_of(case["vote"]["block_id"])
    height = case["vote"]["height"]
    for mode in ("full", "light", "light_all"):
        result = verify_commit(case["chain_id"], page.validators, block_id, height, commit, mode)
        assert result.ok, (mode, result.reason)
        assert (result.committed_power, result.total_power) == (int(case["voting_power"]),) * 2
    assert verify_commit_light_trusting(case["chain_id"], page.validators, commit).ok
    wrong_chain = verify_commit("other-chain", page.validators, block_id, height, commit)
    assert not wrong_chain.ok and "wrong signature at index 0" in wrong_chain.reason


# --------------------------------------------------------------------------------- keys / addresses


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c["address"]) for c in V["address_derivation"]["cases"]]
)
def test_address_derivation(case):
    pub = base64.b64decode(case["pubkey_base64"])
    assert pub.hex() == case["pubkey"]
    assert address_of(pub).hex().upper() == case["address"]
    page = parse_validators(one_validator_result(case["pubkey_base64"], case["address"], "1", "1"))
    assert page.validators[0].address.hex().upper() == case["address"]
    wrong = case["address"][:-1] + ("0" if case["address"][-1] != "0" else "1")
    with pytest.raises(CometError, match="SHA-256"):
        parse_validators(one_validator_result(case["pubkey_base64"], wrong, "1", "1"))


@pytest.mark.parametrize("key", [pytest.param(k, id=k["name"]) for k in DERIVED["keys"]])
def test_derived_keys(key):
    pub = bytes(SigningKey(bytes.fromhex(key["seed"])).verify_key)
    assert pub.hex() == key["pubkey"]
    assert base64.b64decode(key["pubkey_base64"]) == pub
    assert address_of(pub).hex().upper() == key["address"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in DERIVED["signatures"]])
def test_derived_signatures(case):
    signature = base64.b64decode(case["signature_base64"])
    assert signature.hex() == case["signature"]
    pub = bytes.fromhex(case["pubkey"])
    assert address_of(pub).hex().upper() == case["address"]
    assert verify_signature(pub, bytes.fromhex(case["sign_bytes"]), signature) is case["valid"]


# ------------------------------------------------------------------------------ commit verification

FIXTURES = {
    "commit_verification": DERIVED["commit_verification"],
    "commit_two_thirds_boundary": DERIVED["commit_two_thirds_boundary"],
}


@pytest.mark.parametrize("name", FIXTURES)
def test_commit_fixture_per_signature(name):
    fx = FIXTURES[name]
    chain_id = fx["chain_id"]
    commit = parse_bare_commit(fx["commit"], chain_id)
    validators = parse_validators(fx["validators_result"]).validators
    checks = check_signatures(chain_id, validators, commit)
    for want, check in zip(fx["per_signature"], checks, strict=True):
        i = want["index"]
        assert commit.signatures[i].block_id_flag == want["flag"] == check.flag
        got = commit_sign_bytes(commit, i, chain_id)
        assert (got.hex() if got is not None else None) == want["sign_bytes"]
        assert check.valid is want["signature_valid"], check.reason
    counted = sum(
        v.voting_power for v, want in zip(validators, fx["per_signature"]) if want["counts_toward_power"]
    )
    assert counted == fx["expect"]["commit_power"]


def expected_outcome(text: str) -> tuple[bool, list[str], tuple[int, int] | None]:
    """A vector's expectation ("ok", "ok: 55 > 33", "error: <phrase> (why)") as (ok, words, powers)."""
    text = text.split(" (", 1)[0]
    if text.startswith("ok"):
        m = re.fullmatch(r"ok: (\d+) > (\d+)", text)
        return True, [], (int(m[1]), int(m[2])) if m else None
    assert text.startswith("error: "), text
    return False, re.findall(r"\w+", text[len("error: "):]), None


def assert_outcome(result, text: str) -> None:
    ok, words, powers = expected_outcome(text)
    assert result.ok is ok, (text, result.reason)
    assert set(words) <= set(re.findall(r"\w+", result.reason)), (text, result.reason)
    if powers:
        assert (result.committed_power, result.needed) == powers
    m = re.search(r"at index (\d+)", text)
    if m:
        failed = [c.index for c in result.checks if c.valid is False]
        assert failed[:1] == [int(m[1])]


@pytest.mark.parametrize("name", FIXTURES)
def test_commit_fixture_outcomes(name):
    fx = FIXTURES[name]
    expect = fx["expect"]
    chain_id = fx["chain_id"]
    commit = parse_bare_commit(fx["commit"], chain_id)
    validators = parse_validators(fx["validators_result"]).validators
    height = int(fx["commit"]["height"])
    full = verify_commit(chain_id, validators, commit.block_id, height, commit, "full")
    assert (full.total_power, full.committed_power, full.needed) == (
        expect["total_power"], expect["commit_power"], expect["needed_more_than"],
    )
    assert_outcome(full, expect["verify_commit"])
    if "verify_commit_light" in expect:
        for mode in ("light", "light_all"):
            assert_outcome(
                verify_commit(chain_id, validators, commit.block_id, height, commit, mode),
                expect["verify_commit_light"],
            )
    trusting = verify_commit_light_trusting(chain_id, validators, commit, 1, 3)
    assert trusting.needed == expect["total_power"] // 3
    assert_outcome(trusting, expect["verify_commit_light_trusting_1_3"])


def apply_change(commit_json: dict, validators_json: dict, change: dict) -> None:
    for path, value in change.items():
        if path == "validators":
            assert value == "swap entries 0 and 1 of the /validators list"
            vals = validators_json["validators"]
            vals[0], vals[1] = vals[1], vals[0]
            continue
        m = re.fullmatch(r"signatures\[(\d+)\](?:\.(\w+))?", path)
        assert m, path
        index, key = int(m[1]), m[2]
        if key:
            commit_json["signatures"][index][key] = value
        else:
            commit_json["signatures"][index] = value


VARIANTS = [pytest.param(v, id=v["id"]) for v in DERIVED["commit_verification"]["variants"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_commit_variants(variant):
    fx = DERIVED["commit_verification"]
    commit_json = copy.deepcopy(fx["commit"])
    validators_json = copy.deepcopy(fx["validators_result"])
    apply_change(commit_json, validators_json, variant.get("change", {}))
    chain_id = variant.get("verify_with_chain_id", fx["chain_id"])
    height = variant.get("verify_with_height", int(fx["commit"]["height"]))
    commit = parse_bare_commit(commit_json, fx["chain_id"])
    validators = parse_validators(validators_json).validators
    expect = variant["expect"]

    def run(mode):
        return verify_commit(chain_id, validators, commit.block_id, height, commit, mode)

    assert_outcome(run("full"), expect["verify_commit"])
    light_text = expect["verify_commit_light"]
    if light_text == "error: same":
        light_text = expect["verify_commit"]
    # In every variant the decisive signature comes before the 2/3 threshold, so AllSignatures agrees.
    for mode in ("light", "light_all"):
        assert_outcome(run(mode), light_text)
    if "verify_commit_light_trusting_1_3" in expect:
        assert_outcome(
            verify_commit_light_trusting(chain_id, validators, commit, 1, 3),
            expect["verify_commit_light_trusting_1_3"],
        )


# ------------------------------------------------------------------------------------------ evidence


def evidence_block_result(evidence_item: dict) -> dict:
    return {
        "block_id": {"hash": "AB" * 32, "parts": {"total": 1, "hash": "CD" * 32}},
        "block": {
            "header": header_json("testnet-commit-vectors-1", "1234561"),
            "data": {"txs": []},
            "evidence": {"evidence": [evidence_item]},
            "last_commit": None,
        },
    }


def evidence_variants() -> list:
    ev = DERIVED["duplicate_vote_evidence"]
    go = copy.deepcopy(ev["json_v0_34_to_v0_39"])
    v1 = copy.deepcopy(go)
    for key in ("TotalVotingPower", "ValidatorPower", "Timestamp"):
        del v1["value"][key]
    v1["value"].update(ev["value_v1_keys"])
    return [pytest.param(go, id="go_keys_v0_34_to_v0_39"), pytest.param(v1, id="snake_case_keys_v1")]


@pytest.mark.parametrize("item", evidence_variants())
def test_duplicate_vote_evidence(item):
    fx = DERIVED["duplicate_vote_evidence"]
    block = parse_block(evidence_block_result(item))
    (ev,) = block.evidence
    assert isinstance(ev, DuplicateVoteEvidence)
    assert (ev.total_voting_power, ev.validator_power) == (100, 25)
    assert format_time(ev.timestamp) == "2024-06-01T11:58:59.9Z"
    assert ev.vote_a.block_id.is_zero() and not ev.vote_b.block_id.is_zero()
    assert ev.vote_a.sign_bytes(fx["chain_id"]).hex() == fx["vote_a_sign_bytes"]
    assert ev.vote_b.sign_bytes(fx["chain_id"]).hex() == fx["vote_b_sign_bytes"]
    pub = base64.b64decode(fx["pubkey_base64"])
    assert verify_signature(pub, ev.vote_a.sign_bytes(fx["chain_id"]), ev.vote_a.signature) is fx["expect"]["vote_a_valid"]
    assert verify_signature(pub, ev.vote_b.sign_bytes(fx["chain_id"]), ev.vote_b.signature) is fx["expect"]["vote_b_valid"]
    assert verify_duplicate_vote(ev, fx["chain_id"], pub) == (True, "ok: two valid conflicting votes")
    assert verify_duplicate_vote((ev.vote_a, ev.vote_b), fx["chain_id"], pub)[0]
    # Negative checks on the same evidence.
    other_pub = base64.b64decode(DERIVED["keys"][0]["pubkey_base64"])
    assert verify_duplicate_vote(ev, fx["chain_id"], other_pub)[0] is False
    assert verify_duplicate_vote(ev, "another-chain", pub) == (False, "vote_a: wrong signature")
    assert verify_duplicate_vote((ev.vote_a, ev.vote_a), fx["chain_id"], pub)[0] is False


# ---------------------------------------------------------------------------------- legacy (negative)


def test_negative_legacy_amino():
    case = V["negative_legacy_amino"]
    pub = base64.b64decode(case["pubkey_base64"])
    assert pub.hex() == case["pubkey"] and address_of(pub).hex().upper() == case["address"]
    signature = base64.b64decode(case["signature_base64"])
    assert signature.hex() == case["signature"]
    vote = case["vote"]
    ts = parse_time(vote["timestamp"]["rfc3339"])
    assert ts == timestamp_of(vote["timestamp"])
    sign_bytes = vote_sign_bytes(vote["type"], vote["height"], vote["round"], block_id_of(vote["block_id"]), ts, case["chain_id"])
    assert sign_bytes.hex() == case["protobuf_sign_bytes"]
    assert verify_signature(pub, sign_bytes, signature) is case["valid_over_protobuf_sign_bytes"] is False
    assert verify_signature(pub, bytes.fromhex(case["amino_sign_bytes"]), signature) is case["valid_over_amino_sign_bytes"]
    # Through the commit path it is rejected too.
    bid = block_id_of(vote["block_id"])
    commit_json = {
        "height": str(vote["height"]),
        "round": vote["round"],
        "block_id": {"hash": bid.hash.hex().upper(), "parts": {"total": bid.parts_total, "hash": bid.parts_hash.hex().upper()}},
        "signatures": [
            {"block_id_flag": 2, "validator_address": case["address"], "timestamp": vote["timestamp"]["rfc3339"],
             "signature": case["signature_base64"]}
        ],
    }
    commit = parse_bare_commit(commit_json, case["chain_id"])
    validators = parse_validators(one_validator_result(case["pubkey_base64"], case["address"], "10", "1")).validators
    result = verify_commit(case["chain_id"], validators, bid, vote["height"], commit)
    assert not result.ok and "wrong signature at index 0" in result.reason


# ---------------------------------------------------------------------------------------- rpc shapes


def test_rpc_commit_sig_absent():
    fx = DERIVED["commit_verification"]
    commit_json = copy.deepcopy(fx["commit"])
    commit_json["signatures"][4] = copy.deepcopy(V["rpc_json"]["commit_sig_absent"])
    sig = parse_bare_commit(commit_json).signatures[4]
    assert (sig.block_id_flag, sig.validator_address, sig.signature) == (ABSENT, b"", None)
    assert sig.timestamp == Timestamp(-62135596800, 0)
    assert commit_sign_bytes(parse_bare_commit(commit_json), 4, fx["chain_id"]) is None
    assert {s.block_id_flag for s in parse_bare_commit(commit_json).signatures} == {ABSENT, COMMIT, NIL}


def test_rpc_nil_vote_block_id():
    item = copy.deepcopy(DERIVED["duplicate_vote_evidence"]["json_v0_34_to_v0_39"])
    item["value"]["vote_a"]["block_id"] = copy.deepcopy(V["rpc_json"]["nil_vote_block_id_in_vote_json"])
    (ev,) = parse_block(evidence_block_result(item)).evidence
    assert ev.vote_a.block_id == ZERO_BLOCK_ID
    # The empty JSON block id is never encoded: field 4 is left out, as for block_id None.
    vote = ev.vote_a
    assert vote.sign_bytes("x") == vote_sign_bytes(vote.type, vote.height, vote.round, None, vote.timestamp, "x")
    with_parts = BlockID(b"", 1, b"\x00" * 32)
    assert vote_sign_bytes(vote.type, vote.height, vote.round, with_parts, vote.timestamp, "x") != vote.sign_bytes("x")


def test_rpc_spec_commit_example_parses_but_does_not_verify():
    example = V["rpc_json"]["spec_commit_example"]
    signed = parse_commit(copy.deepcopy(example["result"]))
    assert signed.canonical is True
    assert (signed.header.chain_id, signed.header.height, signed.commit.height) == ("cosmoshub-2", 12, 1311801)
    assert format_time(signed.header.time) == "2019-04-22T17:01:51.701356223Z"
    page = parse_validators(copy.deepcopy(V["rpc_json"]["spec_validators_example"]))
    assert (page.block_height, page.count, page.total) == (55, 1, 25)
    assert page.validators[0].address == signed.commit.signatures[0].validator_address
    assert (page.validators[0].voting_power, page.validators[0].proposer_priority) == (239727, -11896414)
    # Illustrative only: the signature does not verify under any chain id it could belong to.
    for chain_id in ("cosmoshub-2", "cosmoshub-1"):
        result = verify_commit(chain_id, page.validators, None, signed.commit.height, signed.commit)
        assert not result.ok and result.reason == "wrong signature at index 0"
        assert [c.valid for c in check_signatures(chain_id, page.validators, signed.commit)] == [False]
    mismatch = verify_commit("cosmoshub-2", page.validators, None, signed.header.height, signed.commit)
    assert not mismatch.ok and "does not match the requested height" in mismatch.reason
