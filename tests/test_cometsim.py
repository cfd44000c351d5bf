"""The CometBFT simulator (devnet/cometsim.py) checked the way an auditor checks a chain.

A simulator process with every fault and endpoint mode is run for a few seconds; its answers are fetched
over HTTP and read only with ``alignment_node.cometbft``'s strict parsers, and commits are verified with
``verify.verify_commit(mode="full")`` against the validator set the honest endpoint serves for the same
height. A few properties that need many heights (fractions, power changes, speed) use the chain model in
process with a clock given by the test.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from alignment_node.cometbft import CometError, rpc, verify
from alignment_node.devnet.cometsim import (
    GARBAGE_KINDS,
    POWER_CHANGE_EVERY,
    Chain,
    CometSimProcess,
    RpcService,
    parse_fault,
    validator_addresses,
)

CHAIN = "devnet-comet-1"
N = 7
OFFLINE, FEW_MISSES, SIGNER, JOINER = 2, 3, 4, 6
DOUBLE_SIGN_AT, JOIN_AT = 6, 4
FAULTS = [f"{OFFLINE}=offline:0.3", f"{FEW_MISSES}=few-misses:0.05", f"{SIGNER}=double-sign@{DOUBLE_SIGN_AT}",
          f"{JOINER}=join@{JOIN_AT}"]
ENDPOINTS = {"rpc0": "honest", "forge": "forge", "fork": "fork", "other": "wrong-chain", "junk": "garbage"}
HEIGHTS = 36  # heights every module test looks at (made in about 3.6 s)


def fetch(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def result(url: str) -> dict:
    status, body, _ = fetch(url)
    assert status == 200, body[:200]
    return rpc.result_of(json.loads(body))


def error(url: str) -> dict:
    status, body, _ = fetch(url)
    envelope = json.loads(body)
    assert status == 500 and envelope["jsonrpc"] == "2.0" and envelope["id"] == -1 and "result" not in envelope
    with pytest.raises(CometError):
        rpc.result_of(envelope)
    return envelope["error"]


def wait_height(base: str, height: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        latest = rpc.parse_status(result(f"{base}/status")).latest_height
        if latest >= height or time.monotonic() > deadline:
            return latest
        time.sleep(0.05)


def validator_set(base: str, height: int, per_page: int = 3) -> list[rpc.Validator]:
    """Every page of /validators at ``height``."""
    out: list[rpc.Validator] = []
    page = 1
    while True:
        p = rpc.parse_validators(result(f"{base}/validators?height={height}&page={page}&per_page={per_page}"))
        assert p.block_height == height and p.count == len(p.validators) <= per_page
        out += p.validators
        if len(out) >= p.total:
            assert len(out) == p.total
            return out
        page += 1


@pytest.fixture(scope="module")
def sim():
    with CometSimProcess(validators=N, block_time=0.1, seed=1, faults=FAULTS, endpoints=ENDPOINTS) as s:
        assert wait_height(s.endpoint_url("rpc0"), HEIGHTS) >= HEIGHTS
        yield s


@pytest.fixture(scope="module")
def sets(sim) -> dict[int, list[rpc.Validator]]:
    base = sim.endpoint_url("rpc0")
    return {h: validator_set(base, h) for h in range(1, HEIGHTS + 1)}


def commit_at(sim, endpoint: str, height: int) -> rpc.SignedHeader:
    return rpc.parse_commit(result(f"{sim.endpoint_url(endpoint)}/commit?height={height}"))


def block_at(sim, endpoint: str, height: int) -> rpc.Block:
    return rpc.parse_block(result(f"{sim.endpoint_url(endpoint)}/block?height={height}"))


def full(validators: list[rpc.Validator], commit: rpc.Commit, chain_id: str = CHAIN) -> verify.CommitResult:
    return verify.verify_commit(chain_id, validators, commit.block_id, commit.height, commit, mode="full")


# ------------------------------------------------------------------------------------------- honest

def test_honest_commits_verify_at_every_height(sim, sets):
    base = sim.endpoint_url("rpc0")
    rounds, nil_heights = set(), 0
    for h in range(1, HEIGHTS + 1):
        signed = commit_at(sim, "rpc0", h)
        block = block_at(sim, "rpc0", h)
        assert signed.header.chain_id == CHAIN and signed.header.height == h and signed.canonical
        assert block.block_id == signed.commit.block_id and block.header.raw == signed.header.raw
        assert signed.header.proposer_address in {v.address for v in sets[h]}
        check = full(sets[h], signed.commit)
        assert check.ok, (h, check.reason)
        last = block_at(sim, "rpc0", h + 1).last_commit
        assert last == signed.commit  # the seen commit is the canonical one here
        if h > 1:
            assert block.header.last_block_id == commit_at(sim, "rpc0", h - 1).commit.block_id
        rounds.add(signed.commit.round)
        nil_heights += any(s.block_id_flag == verify.NIL for s in signed.commit.signatures)
    assert rounds & {1, 2} and 0 in rounds
    assert nil_heights > 0
    first = block_at(sim, "rpc0", 1)
    assert first.last_commit is not None and first.last_commit.height == 0 and first.last_commit.signatures == []
    assert first.header.last_block_id.is_zero()
    status = rpc.parse_status(result(f"{base}/status"))
    assert status.chain_id == CHAIN and not status.catching_up and status.earliest_height == 1
    latest = rpc.parse_commit(result(f"{base}/commit"))
    assert not latest.canonical and latest.header.height >= status.latest_height


def test_validator_sets_are_ordered_and_addressed(sim, sets):
    addresses = sim.validator_addresses()
    assert addresses == validator_addresses(1, N) and len(set(addresses)) == N
    for h, vals in sets.items():
        keys = [(-v.voting_power, v.address) for v in vals]
        assert keys == sorted(keys) and all(10 <= v.voting_power <= 100 for v in vals)
        assert {v.address for v in vals} <= set(addresses)
        assert all(v.verifiable for v in vals)
    one_page = rpc.parse_validators(result(f"{sim.endpoint_url('rpc0')}/validators?height=5"))
    assert one_page.validators == sets[5] and one_page.count == one_page.total == len(sets[5])
    v1 = rpc.parse_validators(result(f"{sim.url}/rpc0/v1/validators?height=5&per_page=100"))
    assert v1.validators == sets[5]


def test_join_adds_the_validator_at_its_height(sim, sets):
    joiner = sim.validator_addresses()[JOINER]
    assert all(joiner not in {v.address for v in sets[h]} for h in range(1, JOIN_AT))
    assert all(joiner in {v.address for v in sets[h]} for h in range(JOIN_AT, DOUBLE_SIGN_AT + 3))
    assert commit_at(sim, "rpc0", JOIN_AT - 1).header.next_validators_hash == \
        commit_at(sim, "rpc0", JOIN_AT).header.validators_hash


def test_offline_validator_is_absent_at_about_its_fraction(sim, sets):
    addresses = sim.validator_addresses()
    absent = {OFFLINE: 0, FEW_MISSES: 0}
    others_absent = 0
    for h in range(1, HEIGHTS + 1):
        vals, sigs = sets[h], commit_at(sim, "rpc0", h).commit.signatures
        for v, s in zip(vals, sigs):
            is_absent = s.block_id_flag == verify.ABSENT
            if is_absent:
                assert s.validator_address == b"" and s.signature is None and s.timestamp.seconds == -62135596800
            else:
                assert s.validator_address == v.address
            key = addresses.index(v.address)
            if key in absent:
                absent[key] += is_absent
            else:
                others_absent += is_absent
    assert 0.15 <= absent[OFFLINE] / HEIGHTS <= 0.45
    assert absent[FEW_MISSES] / HEIGHTS <= 0.2 and others_absent == 0


def test_commit_timestamps_are_cmtjson_times(sim):
    texts = []
    for h in range(1, HEIGHTS + 1):
        raw = result(f"{sim.endpoint_url('rpc0')}/commit?height={h}")["signed_header"]
        texts += [s["timestamp"] for s in raw["commit"]["signatures"] if s["block_id_flag"] != 1]
        assert raw["header"]["height"] == str(h) and isinstance(raw["commit"]["round"], int)
    fractions = [t[20:-1] if "." in t else "" for t in texts]
    assert all(not f.endswith("0") for f in fractions)  # trailing zeros trimmed
    assert "" in fractions  # whole seconds
    assert {len(f) for f in fractions} >= {3, 6, 9}


# --------------------------------------------------------------------------------------- double sign

def test_double_sign_evidence_is_in_block_h_plus_2_and_the_signer_is_jailed(sim, sets):
    signer = sim.validator_addresses()[SIGNER]
    for h in range(1, HEIGHTS + 1):
        evidence = block_at(sim, "rpc0", h).evidence
        assert len(evidence) == (h == DOUBLE_SIGN_AT + 2), h
    (ev,) = block_at(sim, "rpc0", DOUBLE_SIGN_AT + 2).evidence
    assert isinstance(ev, rpc.DuplicateVoteEvidence)
    vals = sets[DOUBLE_SIGN_AT]
    index = [v.address for v in vals].index(signer)
    assert ev.vote_a.validator_address == signer and ev.vote_a.validator_index == index
    assert ev.vote_a.height == DOUBLE_SIGN_AT and ev.vote_a.round == commit_at(sim, "rpc0", DOUBLE_SIGN_AT).commit.round
    assert ev.total_voting_power == sum(v.voting_power for v in vals) and ev.validator_power == vals[index].voting_power
    assert verify.verify_duplicate_vote(ev, CHAIN, vals[index].pub_key) == (True, "ok: two valid conflicting votes")
    committed = commit_at(sim, "rpc0", DOUBLE_SIGN_AT).commit
    assert committed.block_id in (ev.vote_a.block_id, ev.vote_b.block_id)
    assert committed.signatures[index].signature in (ev.vote_a.signature, ev.vote_b.signature)
    moved = replace(ev, vote_b=replace(ev.vote_b, timestamp=replace(ev.vote_b.timestamp, nanos=1)))
    assert not verify.verify_duplicate_vote(moved, CHAIN, vals[index].pub_key)[0]
    assert all(signer in {v.address for v in sets[h]} for h in range(DOUBLE_SIGN_AT, DOUBLE_SIGN_AT + 3))
    assert all(signer not in {v.address for v in sets[h]} for h in range(DOUBLE_SIGN_AT + 3, HEIGHTS + 1))


# ---------------------------------------------------------------------------------------- bad modes

def test_forge_endpoint_commits_fail_full_verification(sim, sets):
    for h in range(1, HEIGHTS + 1):
        honest, forged = commit_at(sim, "rpc0", h).commit, commit_at(sim, "forge", h).commit
        assert forged.block_id == honest.block_id
        check = full(sets[h], forged)
        assert not check.ok and 1 <= sum(c.valid is False for c in check.checks) <= 2, (h, check.reason)
        last = block_at(sim, "forge", h + 1).last_commit
        assert last == forged and not full(sets[h], last).ok


def test_fork_endpoint_serves_other_block_ids(sim, sets):
    for h in range(1, HEIGHTS + 1):
        honest, forked = commit_at(sim, "rpc0", h).commit, commit_at(sim, "fork", h).commit
        block = block_at(sim, "fork", h)
        assert block.block_id == forked.block_id
        if h % 3 == 0:
            assert forked.block_id != honest.block_id
            assert [s.signature for s in forked.signatures] == [s.signature for s in honest.signatures]
            check = full(sets[h], forked)
            assert not check.ok and check.committed_power == 0, (h, check.reason)
            assert block_at(sim, "fork", h + 1).header.last_block_id == forked.block_id
        else:
            assert forked == honest and full(sets[h], forked).ok


def test_wrong_chain_endpoint_claims_another_chain(sim, sets):
    status = rpc.parse_status(result(f"{sim.endpoint_url('other')}/status"))
    assert status.chain_id != CHAIN
    for h in (1, 5, 20):
        signed = commit_at(sim, "other", h)
        assert signed.header.chain_id == status.chain_id
        check = full(sets[h], signed.commit, chain_id=signed.header.chain_id)
        assert not check.ok and all(c.valid is not True for c in check.checks)
        assert full(sets[h], signed.commit).ok  # the signatures are this chain's


def test_garbage_answers_make_the_parsers_raise_comet_error(sim, sets):
    parsers = {"status": rpc.parse_status, "validators": rpc.parse_validators, "commit": rpc.parse_commit,
               "block": rpc.parse_block}
    seen: dict[str, set[str]] = {route: set() for route in parsers}
    for route, parse in parsers.items():
        for _ in range(len(GARBAGE_KINDS)):  # the kinds come in turn, one per request
            query = "" if route == "status" else "?height=12"
            status, body, headers = fetch(f"{sim.endpoint_url('junk')}/{route}{query}")
            kind = headers["X-Cometsim-Garbage"]
            seen[route].add(kind)
            assert status == 200
            if kind == "non-json":
                with pytest.raises(ValueError):
                    json.loads(body)
                continue
            raw = rpc.result_of(json.loads(body))
            if route == "status" and kind in ("wrong-length", "bad-base64"):
                # only validator_info.pub_key is bytes in /status, and the status parser does not read it
                assert raw["validator_info"]["pub_key"]["value"] != \
                    result(f"{sim.endpoint_url('rpc0')}/status")["validator_info"]["pub_key"]["value"]
                parse(raw)
                continue
            if kind == "extra-signatures" and route in ("commit", "block"):
                parsed = parse(raw)
                commit = parsed.commit if route == "commit" else parsed.last_commit
                assert len(commit.signatures) == len(sets[12 if route == "commit" else 11]) + 1
                with pytest.raises(CometError):
                    verify.check_signatures(CHAIN, sets[commit.height], commit)
                assert not full(sets[commit.height], commit).ok
                continue
            with pytest.raises(CometError):
                parse(raw)
    assert all(kinds == set(GARBAGE_KINDS) for kinds in seen.values())


def test_errors_are_cometbft_envelopes(sim):
    base = sim.endpoint_url("rpc0")
    err = error(f"{base}/commit?height=100000")
    assert err["code"] == -32603 and err["message"] == "Internal error"
    assert err["data"].startswith("height 100000 must be less than or equal to the current blockchain height ")
    assert error(f"{base}/block?height=0")["data"] == "height must be greater than 0, but got 0"
    assert error(f"{base}/validators?height=5&page=9&per_page=3")["data"] == \
        f"page should be within [1, {-(-N // 3)}] range, given 9"
    assert error(f"{base}/commit?height=abc")["code"] == -32602
    assert rpc.parse_commit(result(f'{base}/commit?height="4"')).header.height == 4
    assert fetch(f"{sim.url}/nowhere/status")[0] == 404
    assert fetch(f"{base}/abci_info")[0] == 404


# ------------------------------------------------------------------------------------- halt and keep

def test_halt_stops_the_chain_and_keep_prunes_old_heights():
    with CometSimProcess(validators=4, block_time=0.1, seed=3, halt_at=5, keep=2, endpoints={"n": "honest"}) as s:
        base = s.endpoint_url("n")
        assert wait_height(base, 5) == 5
        time.sleep(0.4)
        status = rpc.parse_status(result(f"{base}/status"))
        assert status.latest_height == 5 and status.earliest_height == 4
        assert error(f"{base}/commit?height=6")["data"] == \
            "height 6 must be less than or equal to the current blockchain height 5"
        assert error(f"{base}/commit?height=3")["data"] == "height 3 is not available, lowest height is 4"
        latest = rpc.parse_commit(result(f"{base}/commit?height=5"))
        assert not latest.canonical and full(validator_set(base, 5), latest.commit).ok
        earliest = rpc.parse_block(result(f"{base}/block?height=4"))
        assert earliest.last_commit is not None and earliest.last_commit.height == 3
        assert earliest.header.last_block_id == earliest.last_commit.block_id


# ------------------------------------------------------------------------------------- chain model

def _chain(seed: int = 1, validators: int = N, faults: list[str] = FAULTS, start_ns: int = 10 ** 18) -> Chain:
    return Chain(CHAIN, validators, block_time=0.5, seed=seed, faults=[parse_fault(f, validators) for f in faults],
                 start_ns=start_ns)


def _service(chain: Chain) -> RpcService:
    return RpcService(chain, {"rpc0": "honest"})


def _result(service: RpcService, route: str, **query: object) -> dict:
    status, body, _ = service.answer("rpc0", route, {k: [str(v)] for k, v in query.items()})
    assert status == 200
    return rpc.result_of(json.loads(body))


def test_the_chain_is_a_function_of_the_seed():
    a, b, c = _chain(), _chain(), _chain(seed=2)
    for chain in (a, b, c):
        chain.advance(chain.start_ns + 20 * chain.block_ns)
    assert a.latest == b.latest == c.latest == 21
    sa, sb, sc = _service(a), _service(b), _service(c)
    assert _result(sa, "commit", height=20) == _result(sb, "commit", height=20)
    assert _result(sa, "block", height=8) == _result(sb, "block", height=8)
    assert _result(sa, "commit", height=20) != _result(sc, "commit", height=20)


def test_power_changes_every_interval_and_fractions_hold_over_many_heights():
    chain = _chain()
    service = _service(chain)
    heights = 3 * POWER_CHANGE_EVERY + 1
    chain.advance(chain.start_ns + (heights - 1) * chain.block_ns)
    offline = validator_addresses(1, N)[OFFLINE]
    hashes, absent, nil, rounds = [], 0, 0, 0
    for h in range(1, heights + 1):
        vals = rpc.parse_validators(_result(service, "validators", height=h, per_page=100)).validators
        signed = rpc.parse_commit(_result(service, "commit", height=h))
        assert full(vals, signed.commit).ok, h
        hashes.append(signed.header.validators_hash)
        index = [v.address for v in vals].index(offline)
        absent += signed.commit.signatures[index].block_id_flag == verify.ABSENT
        nil += sum(s.block_id_flag == verify.NIL for s in signed.commit.signatures)
        rounds += signed.commit.round > 0
    changes = {h for h in range(2, heights + 1) if hashes[h - 1] != hashes[h - 2]}
    assert {POWER_CHANGE_EVERY, 2 * POWER_CHANGE_EVERY, 3 * POWER_CHANGE_EVERY} <= changes
    assert changes <= {JOIN_AT, DOUBLE_SIGN_AT + 3} | set(range(POWER_CHANGE_EVERY, heights + 1, POWER_CHANGE_EVERY))
    assert 0.2 <= absent / heights <= 0.4
    assert 0.01 <= nil / (heights * N) <= 0.06 and 0.03 <= rounds / heights <= 0.2


def test_a_hundred_validators_keep_up_with_half_second_blocks():
    chain = _chain(validators=100, faults=["7=offline:0.3"], start_ns=time.time_ns() - 10 * 500_000_000)
    service = _service(chain)
    began = time.monotonic()
    latest = chain.advance()
    for h in range(1, latest + 1):
        _result(service, "block", height=h)
        _result(service, "commit", height=h)
    assert latest >= 10 and time.monotonic() - began < 0.5 * latest / 2
    vals = rpc.parse_validators(_result(service, "validators", height=latest, per_page=100))
    assert vals.total == 100 and full(vals.validators, rpc.parse_commit(_result(service, "commit", height=latest)).commit).ok
