"""The devnet's tiny byte-level model (alignment_node/models/lm.py) and its substitution variants
(alignment_node/models/variants.py): deterministic training and the cache, the sampling API and its
log-probabilities, and that each variant differs from the base the way it claims.

The default model (seed 0, a session fixture) and the ``seed`` variant's model (seed 1) come from the cache
(``$ALIGNMENT_MODEL_CACHE`` or ``.cache/models``); with an empty cache they are trained first, 3 to 4 minutes
each on one core. Afterwards this file runs in about 15 s.
"""

from __future__ import annotations

import math
import time

import pytest

torch = pytest.importorskip("torch")

from alignment_node.models import lm, variants  # noqa: E402

PROMPTS = [b"Return the ", b"This module ", b"If the ", b"class ", b"The default is ", b"Raise ",
           b"A list of ", b"Note: "]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def base():
    return lm.load_or_train(0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------- training and cache

def test_size_and_corpus():
    assert 0.7e6 < lm.n_parameters(lm.TinyLM()) < 1.3e6
    docs = lm.corpus()
    assert len(docs) > 1000 and sum(map(len, docs)) > 300_000
    assert lm.corpus_sha256() == lm.corpus_sha256()


def test_corpus_ignores_methods_other_packages_add(monkeypatch):
    """transformers adds ``logging.Logger.warning_once``: a process that imported it first must train (and look
    up in the cache) the same model."""
    import logging

    before = lm._module_docs("logging")

    def warning_once(self, *args):
        """A method another package added to a standard-library class."""

    monkeypatch.setattr(logging.Logger, "warning_once", warning_once, raising=False)
    assert lm._module_docs("logging") == before


def test_training_is_deterministic_and_depends_on_the_seed():
    a, b, c = lm.train(3, steps=3), lm.train(3, steps=3), lm.train(4, steps=3)
    assert lm.weights_hash(a) == lm.weights_hash(b)
    assert lm.weights_hash(a) != lm.weights_hash(c)
    assert lm.weights_hash(a) != lm.weights_hash(lm.train(3, steps=0))


def test_cache_trains_once_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNMENT_MODEL_CACHE", str(tmp_path))
    first = lm.load_or_train(seed=7, steps=2)
    files = list(tmp_path.glob("tinylm-seed7-steps2-*.pt"))
    assert len(files) == 1
    t = time.monotonic()
    second = lm.load_or_train(seed=7, steps=2)
    assert time.monotonic() - t < 1.0
    assert lm.weights_hash(first) == lm.weights_hash(second) == lm.weights_hash(lm.train(7, steps=2))
    files[0].write_bytes(b"not a checkpoint")  # a corrupt cache file is rebuilt, not trusted
    assert lm.weights_hash(lm.load_or_train(seed=7, steps=2)) == lm.weights_hash(first)


def test_weights_hash_sees_one_changed_weight(base):
    changed = variants.add_noise(base, 0.0)
    assert lm.weights_hash(changed) == lm.weights_hash(base)
    with torch.no_grad():
        changed.blocks[2].fc.weight[5, 7] += 1e-6
    assert lm.weights_hash(changed) != lm.weights_hash(base)


def test_the_model_learned_its_text(base):
    """Per-byte log-likelihood on training text: far above a uniform guess (-5.55) and above a bigram
    model's (about -2.6) on the same bytes."""
    docs = [d[:100] for d in lm.corpus()[::97][:24] if len(d) > 40]
    per_byte = sum(lm.logprob_batch(base, [b""] * len(docs), docs)) / sum(map(len, docs))
    assert per_byte > -2.2, per_byte
    untrained = lm.train(0, steps=0)
    assert sum(lm.logprob_batch(untrained, [b""] * len(docs), docs)) / sum(map(len, docs)) < -5.0


# ----------------------------------------------------------------------------------------------- sampling

def test_sample_shapes_and_reproducibility(base):
    text, lps = lm.sample(base, b"Return the ", 32, 1.0, gen(1))
    assert isinstance(text, bytes) and len(text) == len(lps) == 32
    assert all(lp <= 0.0 and math.isfinite(lp) for lp in lps)
    assert lm.sample(base, b"Return the ", 32, 1.0, gen(1)) == (text, lps)
    assert lm.sample(base, b"Return the ", 32, 1.0, gen(2))[0] != text
    assert lm.sample(base, b"", 0, 1.0, gen(1)) == (b"", [])
    greedy = lm.sample(base, b"Return the ", 16, 0.0, gen(1))
    assert lm.sample(base, b"Return the ", 16, 0.0, gen(99)) == greedy


def test_samples_are_varied_and_text_like(base):
    outs = [t for t, _ in lm.sample_batch(base, [b"The "] * 24, 32, 1.0, seed=5)]
    assert len(set(outs)) == 24
    data = b"".join(outs)
    printable = sum(32 <= b < 127 or b == 10 for b in data) / len(data)
    assert printable > 0.97, printable
    assert data.count(b" ") / len(data) > 0.08  # words, not a byte soup


@pytest.mark.parametrize("prompt,n", [(b"Return the ", 32), (b"", 20), (b"x" * 120, 30), (b"y" * 300, 12)])
def test_logprob_agrees_with_sampling(base, prompt, n):
    """Scoring a sampled completion gives the log-probabilities sampling reported, including when the
    context outgrows the window (prompt of 120 + 30 bytes) or starts beyond it (300 bytes)."""
    text, lps = lm.sample(base, prompt, n, 0.8, gen(11))
    again = lm.token_logprobs(base, prompt, text)
    assert max(abs(a - b) for a, b in zip(lps, again)) < 1e-4
    assert abs(lm.logprob(base, prompt, text) - math.fsum(lps)) < 1e-3


def test_batch_rows_match_single_runs(base):
    prompts = PROMPTS[:5] + [b"z" * 140]
    batch = lm.sample_batch(base, prompts, 24, 1.0, seed=40)
    for i, p in enumerate(prompts):
        single = lm.sample_batch(base, [p], 24, 1.0, seed=40 + i)[0]
        assert single[0] == batch[i][0]
        assert max(abs(a - b) for a, b in zip(single[1], batch[i][1])) < 1e-4
    scored = lm.logprob_batch(base, prompts, [t for t, _ in batch])
    assert all(abs(s - math.fsum(lp)) < 1e-3 for s, (_, lp) in zip(scored, batch))


def test_temperature_sharpens(base):
    cold = [sum(lp) for _, lp in lm.sample_batch(base, [b"The "] * 32, 24, 0.5, seed=1)]
    hot = [sum(lp) for _, lp in lm.sample_batch(base, [b"The "] * 32, 24, 1.0, seed=1)]
    assert sum(cold) > sum(hot)


def test_bad_input_is_a_clear_error(base):
    with pytest.raises(TypeError):
        lm.sample(base, "text", 4)
    with pytest.raises(ValueError):
        lm.sample(base, b"x", -1)
    with pytest.raises(ValueError):
        lm.sample(base, b"x", 4, float("nan"))
    with pytest.raises(ValueError):
        lm.logprob_batch(base, [b"a"], [])
    with pytest.raises(ValueError):
        variants.make_variant("bogus", base)
    with pytest.raises(ValueError):
        variants.make_variant("route-1.5", base)


# ----------------------------------------------------------------------------------------------- variants

def test_honest_is_the_base(base):
    served = variants.make_variant("honest", base)
    assert served.model is base and served.weights_hash() == lm.weights_hash(base)
    assert served.sample(b"The ", 16, 1.0, gen(3)) == lm.sample(base, b"The ", 16, 1.0, gen(3))
    assert served.sample_batch(PROMPTS, 16, 1.0, 8) == lm.sample_batch(base, PROMPTS, 16, 1.0, 8)


@pytest.mark.parametrize("name,min_changed", [("int8", 1), ("4bit", 4), ("noise-0.1", 0), ("noise-1", 1),
                                              ("finetuned", 4), ("seed", 7)])
def test_weight_variants_differ(base, name, min_changed):
    """Other weights: another hash, other log-probabilities of the same text, and (but for the faintest)
    other samples from the same random numbers."""
    served = variants.make_variant(name, base)
    assert served.weights_hash() != lm.weights_hash(base)
    mine = served.sample_batch(PROMPTS, 32, 1.0, 21)
    theirs = lm.sample_batch(base, PROMPTS, 32, 1.0, 21)
    texts = [t for t, _ in theirs]
    assert lm.logprob_batch(served.model, PROMPTS, texts) != lm.logprob_batch(base, PROMPTS, texts)
    changed = sum(a[0] != b[0] for a, b in zip(mine, theirs))
    assert changed >= min_changed, (name, changed)
    if name == "4bit":
        assert all(len(torch.unique(row)) <= 16 for row in served.model.blocks[0].fc.weight)
    if name == "int8":
        assert any("quantized.dynamic" in type(m).__module__ for m in served.model.modules())


def test_finetuned_is_cached_and_moves_towards_code(base):
    a, b = variants.finetuned(base), variants.finetuned(base)
    assert lm.weights_hash(a) == lm.weights_hash(b)
    code = [b"    def __init__(self, ", b"        return self._"]
    assert sum(lm.logprob_batch(a, [b"\n"] * 2, code)) > sum(lm.logprob_batch(base, [b"\n"] * 2, code))


def test_temperature_variant(base):
    served = variants.make_variant("temp-0.7", base)
    assert served.weights_hash() == lm.weights_hash(base)
    assert served.sample(b"The ", 24, 1.0, gen(4)) == lm.sample(base, b"The ", 24, 0.7, gen(4))
    assert served.sample(b"The ", 24, 1.0, gen(4)) != lm.sample(base, b"The ", 24, 1.0, gen(4))


def test_routing(base):
    sub = variants.make_variant("finetuned", base)
    subs = [sub.sample(b"The ", 12, 1.0, gen(k)) for k in range(40)]
    for q, low, high in ((0.0, 0, 0), (1.0, 40, 40), (0.5, 10, 30)):
        routed = variants.make_variant(f"route-{q}", base)
        outs = [routed.sample(b"The ", 12, 1.0, gen(k)) for k in range(40)]
        from_sub = sum(o == s for o, s in zip(outs, subs))
        assert low <= from_sub <= high and routed.calls["substitute"] == from_sub
    again = variants.make_variant("route-0.5", base)
    assert [again.sample(b"The ", 12, 1.0, gen(k)) for k in range(40)] == outs  # same route_seed, same calls


def test_evasive_serves_repeated_and_known_prompts_honestly(base):
    sub = variants.make_variant("finetuned", base)
    evasive = variants.make_variant("evasive", base)
    first = evasive.sample(b"Return the ", 24, 1.0, gen(6))
    assert first == sub.sample(b"Return the ", 24, 1.0, gen(6))
    assert evasive.sample(b"Return the ", 24, 1.0, gen(6)) == lm.sample(base, b"Return the ", 24, 1.0, gen(6))
    known = variants.make_variant("evasive", base, probes={b"If the "})
    assert known.sample(b"If the ", 24, 1.0, gen(6)) == lm.sample(base, b"If the ", 24, 1.0, gen(6))
    assert evasive.calls == {"base": 1, "substitute": 1}
