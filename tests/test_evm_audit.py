"""The EVM_RPC audit against a real anvil behind real fault-injecting proxy processes, one per target.

One epoch audits a dozen proxies (every mode) at once; each test reads the verdict of the target it is about.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from alignment_node.audits.base import Target
from alignment_node.audits import http as audit_http
from alignment_node.audits.evm import CHECKS, EvmAuditor, evaluate, evm_identity, parse_evm_identity
from alignment_node.devnet.anvil import Anvil, AnvilError, find_anvil
from alignment_node.devnet.faultproxy import FaultProxyProcess
from alignment_node.protocol import FAULT, KIND_EVM_RPC, OK, UNREACHABLE, canonical_json, evidence_root

# policy for a 0.25 s block devnet: one call may take 1 s; 4 blocks of lag are allowed; 1 s without progress
# (while peers are ahead) is a halt, and the second head reading comes at least 1.5 s after the first.
POLICY = dict(request_deadline_ms=1000, max_lag_blocks=4, safety_margin_blocks=1, halt_ms=1000,
              head_interval_ms=1500)
DEADLINE_S = 8.0

# name -> (mode, options, expected verdict, the check that must fail)
CASES = {
    "honest-1": ("honest", {}, OK, None),
    "honest-2": ("honest", {}, OK, None),
    "honest-3": ("honest", {}, OK, None),
    "slow-within": ("slow", {"delay": 0.2}, OK, None),
    "flaky-once": ("flaky", {"k": 1}, OK, None),
    "down": ("down", {}, UNREACHABLE, "reachable"),
    "slow-beyond": ("slow", {"delay": 3.0}, UNREACHABLE, "reachable"),
    "flaky-twice": ("flaky", {"k": 2}, UNREACHABLE, "reachable"),
    "lagging": ("lagging", {"k": 20}, FAULT, "lag"),
    "halted": ("halted", {}, FAULT, "halted"),
    "forked": ("forked", {}, FAULT, "fork"),
    "wrong-chain": ("wrong-chain", {}, FAULT, "chain_id"),
    "garbage": ("garbage", {}, FAULT, "well_formed"),
}


def _failed(bundle: dict) -> list[str]:
    return [c["name"] for c in bundle["checks"] if c["ok"] is False]


@pytest.fixture(scope="module")
def devnet():
    """anvil with 0.25 s blocks and one proxy process per case; the chain has moved past the fork height."""
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    with Anvil(block_time=0.25) as node:
        chain_id = int(node.rpc("eth_chainId"), 16)
        genesis = bytes.fromhex(node.rpc("eth_getBlockByNumber", ["0x0", False])["hash"][2:])
        proxies = {}
        try:
            for name, (mode, options, _, _) in CASES.items():
                proxies[name] = FaultProxyProcess(node.url, mode, **options).start()
            fork_height = node.block_number()
            while node.block_number() < fork_height + 12:  # common height = median - 4 - 1 > fork height
                time.sleep(0.1)
            identity = evm_identity(chain_id, genesis)
            targets = {name: Target(i + 1, KIND_EVM_RPC, p.url, identity) for i, (name, p) in enumerate(proxies.items())}
            yield node, proxies, targets
        finally:
            for p in proxies.values():
                p.stop()


@pytest.fixture(scope="module")
def epoch_results(devnet):
    _, _, targets = devnet
    auditor = EvmAuditor(**POLICY)
    everyone = list(targets.values())
    started = time.monotonic()
    results = asyncio.run(auditor.audit_epoch(7, everyone, everyone, DEADLINE_S))
    return results, targets, time.monotonic() - started


@pytest.mark.parametrize("name", list(CASES))
def test_each_proxy_mode_gets_its_verdict_and_failed_check(epoch_results, name):
    results, targets, _ = epoch_results
    _, _, verdict, failed_check = CASES[name]
    result = results[targets[name].id]
    failed = _failed(result.bundle)
    assert result.verdict == verdict, (name, result.bundle["checks"])
    if failed_check is None:
        assert failed == []
    else:
        assert failed_check in failed
    assert [c["name"] for c in result.bundle["checks"]] == list(CHECKS)


def test_epoch_returns_within_its_deadline(epoch_results):
    _, _, took = epoch_results
    assert took <= DEADLINE_S


def test_judge_reproduces_every_verdict_from_the_bundle_alone(epoch_results):
    results, _, _ = epoch_results
    judge = EvmAuditor().judge  # a fresh auditor: no state, other policy defaults
    for result in results.values():
        bundle = result.bundle
        assert judge(bundle) == result.verdict
        again = json.loads(canonical_json(bundle))
        assert judge(again) == result.verdict
        assert evidence_root(again) == result.root
        assert evaluate(again)[1] == bundle["checks"]
        assert bundle["verdict"] == result.verdict_name


def test_judge_rejects_a_tampered_bundle(epoch_results):
    results, targets, _ = epoch_results
    bundle = json.loads(canonical_json(results[targets["honest-1"].id].bundle))
    for o in bundle["observations"]:
        if o["call"] == "chain_id":
            o["result"] += 1
    assert EvmAuditor().judge(bundle) == FAULT
    with pytest.raises(ValueError):
        EvmAuditor().judge({"kind": "EVM_RPC", "observations": "nonsense"})


def test_slowness_within_the_deadline_is_recorded_but_not_a_fault(epoch_results):
    results, targets, _ = epoch_results
    obs = results[targets["slow-within"].id].bundle["observations"]
    assert all(o["status"] == "ok" and 180 <= o["elapsed_ms"] < 1000 for o in obs)


def test_a_transient_failure_is_retried_once(epoch_results):
    results, targets, _ = epoch_results
    once = [(o["attempt"], o["status"]) for o in results[targets["flaky-once"].id].bundle["observations"]
            if o["call"] == "chain_id"]
    assert once == [(1, "reset"), (2, "ok")]
    twice = [(o["attempt"], o["status"]) for o in results[targets["flaky-twice"].id].bundle["observations"]]
    assert twice == [(1, "reset"), (2, "reset")]


def test_beyond_the_deadline_is_a_timeout_cut_at_the_request_deadline(epoch_results):
    results, targets, _ = epoch_results
    obs = results[targets["slow-beyond"].id].bundle["observations"]
    assert [o["status"] for o in obs] == ["timeout", "timeout"]
    assert all(990 <= o["elapsed_ms"] < 1500 for o in obs)


def test_garbage_evidence_names_the_response_hash_and_size(epoch_results):
    results, targets, _ = epoch_results
    bundle = results[targets["garbage"].id].bundle
    (obs,) = bundle["observations"]  # garbage is not retried, and the round stops there
    assert obs["status"] in ("malformed", "bad_utf8", "oversized")
    assert obs["size"] > 0 and len(obs["sha256"]) == 64
    detail = next(c["detail"] for c in bundle["checks"] if c["name"] == "well_formed")
    assert obs["sha256"] in detail


def test_each_kind_of_garbage_is_classified(devnet):
    _, proxies, _ = devnet

    async def go():
        client = audit_http.AuditHttpClient(request_deadline_s=5.0)
        async with client.session(proxies["garbage"].url) as s:
            return [await s.call("eth_chainId") for _ in range(3)]

    observations = asyncio.run(go())
    assert {o["status"] for o in observations} == {"malformed", "bad_utf8", "oversized"}
    oversized = next(o for o in observations if o["status"] == "oversized")
    assert 1 << 20 < oversized["size"] < (1 << 20) + (1 << 17)


def test_each_peer_is_observed_once_per_epoch(devnet, monkeypatch):
    _, _, targets = devnet
    honest = [targets[f"honest-{i}"] for i in (1, 2, 3)]
    calls: dict[str, int] = {}
    real_call = audit_http.Session.call

    async def counting(self, method, *args, **kwargs):
        calls[self.endpoint.port] = calls.get(self.endpoint.port, 0) + 1
        return await real_call(self, method, *args, **kwargs)

    monkeypatch.setattr(audit_http.Session, "call", counting)
    results = asyncio.run(EvmAuditor(**dict(POLICY, head_interval_ms=0)).audit_epoch(8, honest, honest, DEADLINE_S))
    assert all(r.verdict == OK for r in results.values())
    assert sorted(calls.values()) == [6, 6, 6]  # 4 first-round calls + second head + common block, each once
    assert all(len(r.bundle["peers"]) == 2 for r in results.values())


def test_halt_is_detected_across_epochs_from_the_remembered_reading(devnet):
    node, _, targets = devnet
    with FaultProxyProcess(node.url, "halted") as halted:
        frozen = Target(99, KIND_EVM_RPC, halted.url, targets["honest-1"].identity)
        peers = [frozen, targets["honest-1"], targets["honest-2"], targets["honest-3"]]
        # lag allowed to be large: only the halt is under test; no wait inside an epoch
        auditor = EvmAuditor(**dict(POLICY, max_lag_blocks=1000, head_interval_ms=0))
        first = asyncio.run(auditor.audit_epoch(10, [frozen], peers, DEADLINE_S))[99]
        assert first.verdict == OK and first.bundle["earlier"] is None
        time.sleep(1.2)
        second = asyncio.run(auditor.audit_epoch(11, [frozen], peers, DEADLINE_S))[99]
    assert second.verdict == FAULT and _failed(second.bundle) == ["halted"]
    earlier = second.bundle["earlier"]
    assert earlier["epoch"] == 10 and earlier["head"] == first.bundle["observations"][2]["result"]
    assert EvmAuditor().judge(json.loads(canonical_json(second.bundle))) == FAULT


def test_identity_is_abi_encoded_chain_id_and_genesis_hash():
    genesis = bytes(range(32))
    identity = evm_identity(31337, genesis)
    assert identity == (31337).to_bytes(32, "big") + genesis
    assert parse_evm_identity(identity) == (31337, "0x" + genesis.hex())
    with pytest.raises(ValueError):
        parse_evm_identity(identity[:40])
