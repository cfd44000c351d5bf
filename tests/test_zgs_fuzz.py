"""Hostile input to the 0G Storage proof verifier, the position check and the base64 decoder
(alignment_node/zgs/merkle.py): arbitrary lemmas and paths (a thousand levels, wrong-length hashes, non-bytes,
non-booleans), arbitrary tree sizes and indexes, arbitrary base64-ish text. Each must end in ProofError or
ValueError, never another exception, and the verifier must accept exactly the honest proof of a leaf: honest
trees are built, their proofs mutated, and every mutation that is not the honest proof of the claimed index must
be refused."""

from __future__ import annotations

import base64
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment_node.zgs import merkle as m

hashes = st.binary(min_size=32, max_size=32)
anything = st.none() | st.booleans() | st.integers() | st.text(max_size=70) | st.binary(max_size=40) | \
    st.floats(allow_nan=False)
lemma_entries = st.binary(min_size=30, max_size=34) | hashes | anything
path_entries = st.booleans() | st.sampled_from([0, 1, "true", None, 1.0])
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def walk(lemma, path) -> bytes:
    x = lemma[0]
    for i, is_left in enumerate(path):
        x = m.keccak(x + lemma[i + 1]) if is_left else m.keccak(lemma[i + 1] + x)
    return x


@functools.lru_cache(maxsize=None)
def index_tree(n: int) -> m.SegmentTree:
    return m.SegmentTree([i.to_bytes(32, "big") for i in range(n)])


# ------------------------------------------------------------------------------------- arbitrary proofs


@FAST
@given(lemma=st.lists(lemma_entries, max_size=8) | st.lists(hashes, min_size=60, max_size=1002) | anything,
       path=st.lists(path_entries, max_size=8) | st.lists(st.booleans(), min_size=60, max_size=1000) | anything,
       leaf=hashes | anything, root=hashes, index=st.integers(-3, 300) | anything,
       leaves=st.integers(-3, 300) | st.integers() | anything)
def test_verify_arbitrary_proofs(lemma, path, leaf, root, index, leaves):
    proof = m.Proof(lemma, path)
    try:
        m.verify_proof(proof, leaf, root, index, leaves)
    except m.ProofError as exc:
        assert exc.step in {"shape", "leaf", "walk", "root", "position"}
        return
    # accepted: then it really is a proof of leaf at index under root
    assert all(isinstance(b, bool) for b in path) and all(isinstance(x, bytes) and len(x) == 32 for x in lemma)
    assert lemma[0] == leaf and walk(lemma, path) == lemma[-1] == root
    assert m.proof_position(path, leaves) == index


@FAST
@given(proof=anything | st.lists(anything, max_size=3) | st.dictionaries(st.text(max_size=5), anything),
       leaf=hashes, root=hashes)
def test_verify_non_proof_objects(proof, leaf, root):
    try:
        m.verify_proof(proof, leaf, root, 0, 1)
    except m.ProofError as exc:
        assert exc.step == "shape"
    else:
        raise AssertionError(f"{proof!r} accepted")


@FAST
@given(path=st.lists(st.booleans(), max_size=1000) | st.lists(path_entries, max_size=10) | anything,
       leaves=st.integers(1, 200) | st.integers(-5, 2**70) | anything)
def test_proof_position_arbitrary(path, leaves):
    try:
        pos = m.proof_position(path, leaves)
    except m.ProofError as exc:
        assert exc.step in {"shape", "position"}
        return
    assert isinstance(pos, int) and 0 <= pos < leaves
    if leaves <= 200:  # a path that lands on a leaf is exactly that leaf's honest path
        assert index_tree(leaves).proof(pos).path == tuple(path)


# ----------------------------------------------------------------------------- honest trees, mutated


@st.composite
def honest_case(draw):
    n = draw(st.integers(1, 4) | st.integers(1, 80))
    pool = draw(st.lists(hashes, min_size=1, max_size=3))  # a small pool makes equal siblings likely
    if draw(st.booleans()):
        leaves = [draw(st.sampled_from(pool)) for _ in range(n)]
    else:
        leaves = draw(st.lists(hashes, min_size=n, max_size=n))
    return leaves, draw(st.integers(0, n - 1))


mutation = st.one_of(
    st.tuples(st.just("set_lemma"), st.integers(0, 100), hashes),
    st.tuples(st.just("copy_lemma"), st.integers(0, 100), st.integers(0, 100)),
    st.tuples(st.just("insert_lemma"), st.integers(0, 100), hashes),
    st.tuples(st.just("delete_lemma"), st.integers(0, 100)),
    st.tuples(st.just("flip_path"), st.integers(0, 100)),
    st.tuples(st.just("insert_path"), st.integers(0, 100), st.booleans()),
    st.tuples(st.just("delete_path"), st.integers(0, 100)),
    st.tuples(st.just("drop_level"), st.integers(0, 100)),
    st.tuples(st.just("swap_levels"), st.integers(0, 100), st.integers(0, 100)),
    st.tuples(st.just("reverse_path"),),
    st.tuples(st.just("index"), st.integers(-2, 90)),
    st.tuples(st.just("root"), hashes),
    st.tuples(st.just("leaf"), hashes),
    st.tuples(st.just("other_proof"), st.integers(0, 100)),
)


def apply(op, tree, lemma, path, index, root, leaf):
    kind = op[0]

    def at(seq, i, extra=0):
        return i % (len(seq) + extra) if len(seq) + extra else None

    if kind == "set_lemma" and lemma:
        lemma[at(lemma, op[1])] = op[2]
    elif kind == "copy_lemma" and lemma:
        lemma[at(lemma, op[1])] = lemma[at(lemma, op[2])]
    elif kind == "insert_lemma":
        lemma.insert(at(lemma, op[1], 1), op[2])
    elif kind == "delete_lemma" and lemma:
        del lemma[at(lemma, op[1])]
    elif kind == "flip_path" and path:
        j = at(path, op[1])
        path[j] = not path[j]
    elif kind == "insert_path":
        path.insert(at(path, op[1], 1), op[2])
    elif kind == "delete_path" and path:
        del path[at(path, op[1])]
    elif kind == "drop_level" and path and len(lemma) > 2:
        j = op[1] % min(len(path), len(lemma) - 2)
        del path[j]
        del lemma[j + 1]
    elif kind == "swap_levels" and path and len(lemma) > 2:
        k = min(len(path), len(lemma) - 2)
        a, b = op[1] % k, op[2] % k
        path[a], path[b] = path[b], path[a]
        lemma[a + 1], lemma[b + 1] = lemma[b + 1], lemma[a + 1]
    elif kind == "reverse_path":
        path.reverse()
    elif kind == "index":
        index = op[1]
    elif kind == "root":
        root = op[1]
    elif kind == "leaf":
        leaf = op[1]
    elif kind == "other_proof":
        other = tree.proof(op[1] % len(tree.levels[0]))
        lemma[:], path[:] = list(other.lemma), list(other.path)
    return lemma, path, index, root, leaf


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=honest_case(), ops=st.lists(mutation, min_size=1, max_size=4))
def test_only_the_honest_proof_is_accepted(case, ops):
    leaves, index = case
    tree = m.SegmentTree(leaves)
    n, root = len(leaves), tree.root
    honest = tree.proof(index)
    m.verify_proof(honest, leaves[index], root, index, n)
    lemma, path, claimed_index, claimed_root, claimed_leaf = list(honest.lemma), list(honest.path), index, root, \
        leaves[index]
    for op in ops:
        lemma, path, claimed_index, claimed_root, claimed_leaf = apply(op, tree, lemma, path, claimed_index,
                                                                       claimed_root, claimed_leaf)
    is_honest = (0 <= claimed_index < n and claimed_root == root and claimed_leaf == leaves[claimed_index]
                 and (tuple(lemma), tuple(path)) == (tree.proof(claimed_index).lemma, tree.proof(claimed_index).path))
    try:
        m.verify_proof(m.Proof(tuple(lemma), tuple(path)), claimed_leaf, claimed_root, claimed_index, n)
        accepted = True
    except m.ProofError:
        accepted = False
    assert accepted == is_honest, (ops, lemma, path)


# ------------------------------------------------------------------------------------------- base64

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def retouch(text: str, where: int, char: str) -> str:
    """Valid base64 with one character replaced (often one with unused bits, just before the padding)."""
    if not text:
        return char
    i = where % len(text)
    return text[:i] + char + text[i + 1:]


valid_b64 = st.builds(lambda b: base64.b64encode(b).decode(), st.binary(max_size=40))
b64ish = st.text(alphabet=B64 + "=", max_size=40) | st.text(alphabet=B64 + "= \n\r\t-_.é\x00", max_size=40) | \
    st.text(max_size=40) | valid_b64 | \
    st.builds(retouch, valid_b64, st.integers(-3, 60), st.sampled_from(B64 + "=\n é"))


@settings(max_examples=1000, deadline=None)
@given(text=b64ish | anything, max_bytes=st.integers(0, 40))
def test_decode_base64_arbitrary(text, max_bytes):
    try:
        data = m.decode_base64(text, max_bytes)
    except ValueError:
        return
    # accepted: it is the one canonical encoding of bytes within the limit
    assert isinstance(data, bytes) and len(data) <= max_bytes
    assert base64.b64encode(data).decode() == text


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), slack=st.integers(-3, 3))
def test_decode_base64_round_trip(data, slack):
    text = base64.b64encode(data).decode()
    limit = len(data) + slack
    if limit >= len(data):
        assert m.decode_base64(text, max(limit, 0)) == data
    else:
        try:
            m.decode_base64(text, limit)
        except ValueError:
            return
        raise AssertionError(f"{len(data)} bytes accepted with a limit of {limit}")


# ------------------------------------------------------------- the storage audit's answer parsers

from alignment_node.audits.http import classify_body  # noqa: E402
from alignment_node.zgs.rpc import (  # noqa: E402
    parse_file_info,
    parse_shard_config,
    parse_status,
    segment_extractor,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=80) | st.sampled_from(["0x" + "ab" * 32, "ab" * 32, "0x" + "12" * 20, "AAEC", "!!"]),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.sampled_from(["data", "proof", "lemma", "path", "root", "index", "fileSize", "tx", "seq", "size",
                         "finalized", "pruned", "networkIdentity", "chainId", "flowAddress", "logSyncHeight",
                         "logSyncBlock", "nextTxSeq", "shardId", "numShard", "merkleNodes", "x"]),
        children, max_size=8),
    max_leaves=30)


@FAST
@given(JSON)
def test_storage_answer_parsers_reject_anything_malformed_without_crashing(value):
    import json

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": value}).encode()
    for extract in (parse_status, parse_shard_config, parse_file_info, segment_extractor(700_000, 2),
                    segment_extractor(1, 0)):
        obs = classify_body(200, body, 1, extract)  # never raises: ok or malformed
        assert obs["status"] in ("ok", "malformed"), obs
        if obs["status"] == "ok" and obs["result"] is not None and extract in (parse_status, parse_shard_config):
            assert all(type(v) in (int, str) for v in obs["result"].values())
