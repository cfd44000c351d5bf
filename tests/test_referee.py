"""The referee of served-model audits (``models.referee``): the holder of the registered weights re-scores the
completions recorded in version-2 evidence bundles. Bundles are built in-process from the serving setups of
``models.tokenvariants`` (no servers): benign setups pass, substitutions, a lower temperature and edited
logprobs are caught, other weights are refused, and the ``referee rescore`` command judges bundle files."""

from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("torch", reason="the referee runs the registered model: the 'models' extra")

from alignment_node import cli  # noqa: E402
from alignment_node.models import baseline as B  # noqa: E402
from alignment_node.models import keeper, tokenvariants  # noqa: E402
from alignment_node.models import referee as R  # noqa: E402
from alignment_node.models.served_audit import draw_prompts  # noqa: E402
from alignment_node.protocol import canonical_json, keccak  # noqa: E402

N = 40  # completions per audit
SAMPLES = 10  # fresh samples per completion for the rank test (the default is 20)
ALPHA = 0.01
# mode -> (FAULT expected, tests that must fire (None: any))
PLAN = {
    "fp32": (False, set()),
    "bf16": (False, set()),  # benign: float32 weights in bfloat16, logprobs drift by up to 0.05
    "small": (True, {"flags", "drift"}),
    "4bit": (True, {"flags", "drift"}),
    "temp-0.7": (True, {"rut"}),  # the right model's logprobs, sampled too cold: only the rank test sees it
}


@pytest.fixture(scope="module")
def world():
    baseline = keeper.cached_served_baseline(0)
    model = R.load_registered(baseline)
    prompts = draw_prompts(baseline, bytes([9] * 32), 1, 3, N)
    return {"baseline": baseline, "hash": B.baseline_hash(baseline), "model": model, "prompts": prompts,
            "completions": {}}


def completions(world, mode: str, prompts=None, seed: int = 5) -> list[dict]:
    key = (mode, seed, None if prompts is None else tuple(prompts))
    if key not in world["completions"]:
        served = tokenvariants.make_variant(mode, world["model"])
        world["completions"][key] = R.served_completions(served, prompts or world["prompts"], seed=seed)
    return copy.deepcopy(world["completions"][key])


def judge(world, comps, seed: int = 1):
    return R.referee_test(world["model"], comps, ALPHA, seed, temperature=1.0, samples=SAMPLES, max_tokens=24)


@pytest.mark.parametrize("mode", sorted(PLAN))
def test_verdict_per_mode(world, mode):
    fault, must_fire = PLAN[mode]
    r = judge(world, completions(world, mode))
    fired = set(r.details["fired"])
    assert r.reject == fault, (mode, r.details["tests"])
    assert must_fire <= fired, (mode, fired)
    counts = r.details["counts"]
    assert counts["completions"] == N and counts["ranked"] == N
    assert counts["rescored"] + counts["skipped_count_mismatch"] == N
    if not fault or mode == "temp-0.7":  # the registered model's own logprobs: nothing flagged
        assert counts["flagged"] == 0 and fired <= {"rut"}, r.details["tests"][0]["details"]["examples"]
        assert counts["verified"] >= N // 2


def _statuses(world, comps):
    preps = [R._prepared(c, i) for i, c in enumerate(comps)]
    flags, drift, results = R.rescore(world["model"], preps, ALPHA)
    return flags, {i: r["status"] for i, r in results.items()}


def test_edited_logprobs_are_flagged_and_a_misfit_is_skipped(world):
    comps = completions(world, "fp32")
    _, before = _statuses(world, comps)
    verified = [i for i, s in sorted(before.items()) if s == "verified" and len(comps[i]["positions"]) >= 3]
    chosen, topk, dropped = verified[0:12:2], verified[1:12:2], verified[12]
    for i in chosen:  # the sampled token's logprob made 0.5 lower
        cat, lp, tops = comps[i]["positions"][1].split(":", 2)
        comps[i]["positions"][1] = f"{cat}:{float(lp) - 0.5!r}:{tops}"
    for i in topk:  # the third most likely token's logprob made 0.3 lower
        cat, lp, tops = comps[i]["positions"][0].split(":", 2)
        values = tops.split(",")
        values[2] = repr(float(values[2]) - 0.3)
        comps[i]["positions"][0] = f"{cat}:{lp}:{','.join(values)}"
    del comps[dropped]["positions"][-2:]  # two positions fewer than the text's tokens: skipped, not guessed
    flags, after = _statuses(world, comps)
    assert sorted(i for i, s in after.items() if s == "flagged") == sorted(chosen + topk)
    assert dropped not in after and flags.details["skipped_count_mismatch"] == \
        sum(1 for i in range(N) if i not in before) + 1
    assert all(after[i] == s for i, s in before.items() if i not in chosen + topk + [dropped])
    assert any("not the registered model's" in e for e in flags.details["examples"])
    r = judge(world, comps)
    assert r.reject and "flags" in r.details["fired"], r.details["tests"]


def test_the_result_repeats_given_the_seed(world):
    comps = completions(world, "fp32")[:12]
    a = R.referee_test(world["model"], comps, ALPHA, 3, samples=4)
    b = R.referee_test(world["model"], comps, ALPHA, 3, samples=4)
    strip = lambda r: {k: v for k, v in r.to_dict()["details"].items() if k != "seconds"}  # noqa: E731
    assert strip(a) == strip(b) and a.p_value == b.p_value


def test_other_weights_are_refused(world):
    base = world["baseline"]
    wrong = copy.deepcopy(base)
    wrong["model"]["weights_sha256"] = "ab" * 32
    with pytest.raises(R.RefereeError, match="refusing to re-score with other weights"):
        R.load_registered(wrong)
    other_tok = copy.deepcopy(base)
    other_tok["model"]["tokenizer_sha256"] = "cd" * 32
    with pytest.raises(R.RefereeError, match="another tokenizer"):
        R.load_registered(other_tok)
    absent = copy.deepcopy(base)
    absent["model"]["seed"] = 12345
    with pytest.raises(R.RefereeError, match="does not hold the weights"):
        R.load_registered(absent)
    with pytest.raises(R.RefereeError, match="version-2"):
        R.load_registered({"version": 1, "kind": "MODEL_BASELINE"})
    # in a batch: the bundles of that baseline are skipped with the reason, no verdict is guessed
    h = B.baseline_hash(wrong)
    b = _bundle(7, 5, 3, h, completions(world, "fp32"))
    [v] = R.rescore_bundles([b], {h: wrong}, seed=0)
    assert v["verdict"] == "INCONCLUSIVE" and not v["tests"] and "refusing" in v["reason"]
    assert v["skipped"][0]["root"] == "0x" + keccak(canonical_json(b)).hex()


def _bundle(epoch: int, target: int, license_id: int, baseline_hash: str, comps: list[dict]) -> dict:
    """A committee member's version-2 bundle as the audit stores it (the fields the referee reads, and others)."""
    return {"version": 2, "kind": "MODEL_SERVED", "epoch": epoch, "license": license_id, "baseline": baseline_hash,
            "target": {"id": target, "endpoint": "http://127.0.0.1:9", "identity": baseline_hash},
            "seed": "0x" + "5a" * 32, "observations": [], "lt": {}, "completions": comps, "verdict": "OK"}


def test_the_rescore_command_pools_a_committee(world, tmp_path, capsys):
    base, h = world["baseline"], world["hash"]
    B.save(base, tmp_path / "baselines")
    p1 = draw_prompts(base, bytes([1] * 32), 1, 3, 20)
    p2 = draw_prompts(base, bytes([2] * 32), 1, 4, 20)
    bundles = [_bundle(7, 1, 3, h, completions(world, "fp32", p1, 11)),  # two committee members of target 1
               _bundle(7, 1, 4, h, completions(world, "bf16", p2, 12)),
               _bundle(7, 2, 3, h, completions(world, "small", p1, 13)),  # target 2 serves the small model
               _bundle(7, 3, 3, "0x" + "77" * 32, completions(world, "fp32", p1, 11))]  # an unknown baseline
    files, roots = [], []
    for n, b in enumerate(bundles):
        body = canonical_json(b)
        f = tmp_path / f"evidence-{n}.json"
        f.write_bytes(body)
        files.append(str(f))
        roots.append("0x" + keccak(body).hex())
    assert cli.main(["referee", "rescore", "--baselines", str(tmp_path / "baselines"), *files, "--json",
                     "--samples", str(SAMPLES)]) == 0
    verdicts = {v["target"]: v for v in json.loads(capsys.readouterr().out)["verdicts"]}
    one, two, three = verdicts[1], verdicts[2], verdicts[3]
    assert one["verdict"] == "OK" and one["bundles"] == roots[:2] and one["completions"] == 40, one["tests"]
    assert [r[:2] for r in one["per_completion"]] == [[b, j] for b in (0, 1) for j in range(20)]
    assert two["verdict"] == "FAULT" and two["bundles"] == [roots[2]]
    assert {t["test"] for t in two["tests"] if t["reject"]} >= {"flags"}
    assert three["verdict"] == "INCONCLUSIVE" and not three["tests"] and "no usable baseline" in three["reason"]
    assert all(v["epoch"] == 7 and v["baseline"] for v in verdicts.values())
    # the text output names each verdict
    assert cli.main(["referee", "rescore", "--baselines", str(tmp_path / "baselines"), files[2],
                     "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("epoch 7 target 2: FAULT") and "fired: flags" in out
