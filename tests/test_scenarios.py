"""The devnet scenarios of the audit loop, end to end: real anvil, contracts, fault proxies, node processes.

Each runs `alignment-node devnet scenario NAME --json` as a user would and checks its report, which the
scenario builds from the chain (events and transactions), not from what the nodes say about themselves.
"""

import json
import subprocess
import sys

import pytest


CLI = [sys.executable, "-m", "alignment_node.cli", "devnet", "scenario"]


def run_scenario(name: str, *extra: str) -> dict:
    out = subprocess.run(CLI + [name, "--json", *extra], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["scenario"] == name
    assert report["leftover_processes"] == []
    for op in report["operators"]:
        assert op["rss_kb_max"] is not None and op["rss_kb_max"] <= 65536, op
    return report


def assert_faults_flagged_and_honest_spared(report: dict, targets: list[dict], penalties: bool = True,
                                           sampled: tuple[str, ...] = ()) -> None:
    """Every detectable fault flagged and, once flagged, never judged OK again (a fault may look healthy before
    it is detectable: a chain halted a few blocks ago is not yet behind) unless its detection is a sample
    (``sampled`` modes: an epoch's challenges can all miss a partly dropped store); honest targets only OK or
    INCONCLUSIVE; no reveal missed, nothing sent twice; honest auditors agreeing with an honest majority are
    never penalized."""
    assert report["missed_faults"] == []
    assert report["false_flags"] == []
    for t in targets:
        if t["fault"] and t.get("detectable", True):
            assert t["first_flagged_epoch"] is not None, t
            later = [o for e, o in t["outcomes"].items() if int(e) >= t["first_flagged_epoch"]]
            assert "OK" not in later or t["fault"] in sampled, t
        elif not t["fault"]:
            assert set(t["outcomes"].values()) <= {"OK", "INCONCLUSIVE"}, t
    for op in report["operators"]:
        assert op["missed_reveals"] == 0 and op["duplicate_txs"] == 0, op
    if penalties:
        assert [lic for lic in report["licenses"] if lic["penalties"]] == []


def test_evm_faults_are_all_flagged_and_no_honest_target_is():
    report = run_scenario("evm-faults", "--epochs", "6")
    faults = {t["fault"] for t in report["targets"] if t["fault"]}
    assert faults >= {"down", "slow", "lagging", "halted", "forked", "wrong-chain", "garbage"}
    assert sum(1 for t in report["targets"] if not t["fault"]) >= 8
    assert len(report["operators"]) >= 3
    assert_faults_flagged_and_honest_spared(report, report["targets"])
    for t in report["targets"]:
        if t["fault"]:
            assert t["seconds_to_flag"] is not None
        # one reason per INCONCLUSIVE epoch, read from the chain
        assert sorted(t["inconclusive_reasons"]) == sorted(e for e, o in t["outcomes"].items() if o == "INCONCLUSIVE")
        assert set(t["inconclusive_reasons"].values()) <= {"short-committee", "split", "missing-reveals", "other"}
    # Exact committees (issue 16): from the second epoch on (the first may start before every node is up), no
    # committee is short and at most 1 % of the (target, epoch) outcomes are INCONCLUSIVE.
    first = min(int(e) for t in report["targets"] for e in t["outcomes"])
    later = [(t["inconclusive_reasons"].get(e), o) for t in report["targets"] for e, o in t["outcomes"].items()
             if int(e) > first]
    assert "short-committee" not in {why for why, _ in later}
    assert sum(o == "INCONCLUSIVE" for _, o in later) <= 0.01 * len(later), later


def test_lazy_auditor_is_penalized_and_earns_less_than_every_honest_operator():
    report = run_scenario("lazy-auditor")
    lazy = [op["address"] for op in report["operators"] if op["lazy"]]
    assert len(lazy) == 1
    lazy_licenses = [lic for lic in report["licenses"] if lic["operator"] == lazy[0]]
    honest_licenses = [lic for lic in report["licenses"] if lic["operator"] != lazy[0]]
    assert all(lic["penalties"] > 0 for lic in lazy_licenses)
    kinds = {k for lic in lazy_licenses for k in lic["penalty_kinds"]}
    assert 3 in kinds, "caught by the trap"
    assert 2 in kinds, "penalized for disagreeing with the honest majority"
    best_lazy = max(int(lic["net_wei"]) for lic in lazy_licenses)
    worst_honest = min(int(lic["net_wei"]) for lic in honest_licenses)
    assert best_lazy < worst_honest
    assert [lic for lic in honest_licenses if lic["penalties"]] == []


@pytest.mark.solo  # a node SIGKILLed and restarted must reveal within 15 blocks of 0.25 s: no other load beside it
def test_crash_loses_no_reveal_and_sends_nothing_twice():
    report = run_scenario("crash")
    killed = [op for op in report["operators"] if op["kills"]]
    assert len(killed) == 1 and killed[0]["kills"] >= 5
    for op in report["operators"]:
        assert op["missed_reveals"] == 0, op
        assert op["duplicate_txs"] == 0, op
    assert report["false_flags"] == []


def test_storage_faults_are_all_flagged_and_no_honest_storage_node_is():
    report = run_scenario("storage-faults", "--epochs", "6")
    storage = [t for t in report["targets"] if t["kind"] == "ZGS_STORAGE"]
    faults = {t["fault"] for t in storage if t["fault"]}
    assert faults == {"drop", "corrupt", "wrong-index", "wrong-root", "empty", "wrong-flow", "lying-lag", "garbage"}
    honest = {t["mode"] for t in storage if not t["fault"]}
    assert honest == {"honest", "slow", "behind"}  # slow but honest, and behind but saying so, are honest
    assert any(t["shard"] != [0, 1] for t in storage)
    assert report["files_uploaded"] > 5  # files keep arriving while the nodes run
    # An honest auditor whose sample misses a partly dropped store votes OK against a FAULT majority and is
    # penalized for disagreeing (the protocol's rule does not know sampling): penalties are not asserted here.
    assert_faults_flagged_and_honest_spared(report, storage, penalties=False, sampled=("drop",))


@pytest.mark.solo  # 3 nodes auditing 8 served LLMs saturate both cores
def test_model_faults_served_llms_are_judged_without_weights():
    """Served chat LLMs audited by nodes that hold no weights: every detectable substitution and TEE fault is
    flagged, no benign serving setup is, and the model worker stays under its 128 MB."""
    report = run_scenario("model-faults", "--epochs", "1")  # the default 2 adds a drift check, and 140 s
    models = [t for t in report["targets"] if t["kind"] == "MODEL"]
    assert {t["mode"] for t in models if not t["fault"]} == {"fp32", "bf16", "tee-honest"}
    assert {t["mode"] for t in models if t["fault"]} >= {"small", "4bit", "temp-0.7", "tee-forged", "garbage"}
    assert_faults_flagged_and_honest_spared(report, models, penalties=False)
    for op in report["operators"]:
        assert op["model_worker_rss_kb_max"] is not None and op["model_worker_rss_kb_max"] <= 128 * 1024, op


def test_consensus_faults_every_faulty_validator_and_rpc_is_flagged_and_no_honest_one():
    report = run_scenario("consensus-faults")
    comet = [t for t in report["targets"] if t["kind"] == "COMETBFT"]
    assert {t["mode"] for t in comet if t["fault"]} == {"offline", "double-sign", "forge", "fork", "garbage",
                                                        "wrong-chain", "halt"}
    assert {t["mode"] for t in comet if not t["fault"]} == {"honest", "few-misses", "rpc-honest"}
    assert_faults_flagged_and_honest_spared(report, comet, penalties=False)


def test_da_faults_every_faulty_signer_is_flagged_and_no_honest_one():
    report = run_scenario("da-faults", "--epochs", "6")
    da = [t for t in report["targets"] if t["kind"] == "DA_SIGNER"]
    assert {t["mode"] for t in da if t["fault"]} == {"offline", "not-enrolled", "wrong-socket", "never-signs",
                                                      "drops-rows", "corrupts-rows", "prunes-early",
                                                      "invalid-signatures", "garbage"}
    assert [t["mode"] for t in da if not t["fault"]] == ["honest"] * 3
    assert report["da_blobs"]["verified"] > 10 and report["da_blobs"]["failed"] == 0  # blobs kept arriving
    assert report["missed_faults"] == []
    assert report["false_flags"] == []
    for op in report["operators"]:
        assert op["rss_kb_max"] is not None and op["rss_kb_max"] <= 65536, op
    assert_faults_flagged_and_honest_spared(report, da, penalties=False, sampled=("prunes-early",))


@pytest.mark.solo  # five nodes killed and restarted every few seconds, reorgs and fee spikes: tight timing
def test_chaos_kills_reorgs_fee_spikes_and_a_flapping_endpoint_flag_no_honest_target():
    """Issue 18's chaos scenario, seeded: no missed fault, no false flag, no missed reveal; duplicate transactions
    at most one in all (0 in four of the five seeded runs in docs/node.md, one reverted settlement in the other, a
    race since closed by cancelling a settlement made pointless: the bound leaves room for a race on a loaded
    machine)."""
    report = run_scenario("chaos")
    chaos = report["chaos"]
    assert chaos["kills"] >= 50 and chaos["reorgs"] >= 5 and chaos["fee_spikes"] >= 5 and chaos["endpoint_flaps"] >= 10
    assert sum(op["kills"] for op in report["operators"]) == chaos["kills"]
    assert report["missed_faults"] == [] and report["false_flags"] == []
    epochs = len(report["epochs"])
    for op in report["operators"]:
        assert {"replacements", "reorged_txs", "reorgs", "fee_spikes", "missed_reveals", "duplicate_txs"} <= set(op)
        assert op["heartbeats"] >= 0.75 * epochs, op  # present in most epochs although killed every ~10 s
        # a healthy endpoint existed throughout: the second is the chain
        assert op["missed_reveals"] == 0, (op["missed_reveal_epochs"], op["missed_reveal_reasons"])
    assert sum(op["duplicate_txs"] for op in report["operators"]) <= 1, report["operators"]
    for t in report["targets"]:
        if not t["fault"]:
            assert set(t["outcomes"].values()) <= {"OK", "INCONCLUSIVE"}, t
