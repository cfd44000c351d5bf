"""Exact committees (issue 16): the swap-or-not shuffle against consensus-specs' known answers, its inverse, and
the committee and duty functions the node and the contracts share."""

import hashlib
import random

import pytest

from alignment_node import protocol as P


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


# compute_shuffled_index(i, n, seed) for i < n with sha256 and 90 rounds, seed = 0x2a20 followed by 30 zero bytes:
# the values of Lodestar's shuffling test ("Values from unshuffleList()", which is the specification's direction).
KNOWN = {
    8: [6, 3, 4, 0, 1, 5, 7, 2],
    16: [8, 4, 11, 7, 10, 6, 0, 3, 15, 12, 5, 14, 1, 9, 13, 2],
}


@pytest.mark.parametrize("n", sorted(KNOWN))
def test_shuffle_matches_the_specifications_known_answers(n):
    seed = bytes([42, 32]) + bytes(30)
    assert [P.shuffled_index(i, n, seed, h=sha256) for i in range(n)] == KNOWN[n]
    assert [P.shuffled_index(i, n, seed) for i in range(n)] != KNOWN[n]  # keccak256 on chain: another permutation


@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 1000])
def test_shuffle_is_a_permutation_and_unshuffle_inverts_it(n):
    seed = random.Random(n).randbytes(32)
    fw = [P.shuffled_index(i, n, seed) for i in range(n)]
    assert sorted(fw) == list(range(n))
    assert [P.unshuffled_index(q, n, seed) for q in fw] == list(range(n))
    assert P.unshuffled_indexes(fw, n, seed) == list(range(n))


def test_shuffle_rejects_an_index_out_of_range():
    with pytest.raises(AssertionError):
        P.shuffled_index(5, 5, bytes(32))


@pytest.mark.parametrize("listed,targets", [(24, 15), (200, 7), (60, 40), (5, 3), (3, 4)])
def test_every_target_gets_exactly_k_distinct_licenses_and_duties_agree(listed, targets):
    k = 5
    seed = random.Random(listed * targets).randbytes(32)
    committees = {t: P.committee_positions(seed, t, listed, k) for t in range(targets)}
    for t, c in committees.items():
        assert len(c) == min(k, listed) and len(set(c)) == len(c)
    # the license's side: duties from its list position, the same sets
    positions = {1000 + q: q for q in range(listed)}
    duties = P.duties(seed, positions, listed, k, range(targets))
    for t, c in committees.items():
        assert sorted(1000 + q for q in c) == sorted(lic for lic, ts in duties.items() if t in ts)
    # every license carries targets * k / listed seats, give or take one
    if listed > k:
        loads = [len(ts) for ts in duties.values()]
        assert max(loads) - min(loads) <= 1 and sum(loads) == targets * k


def test_duties_leave_out_disabled_targets():
    seed = bytes(range(32))
    positions = {q: q for q in range(50)}
    full = P.duties(seed, positions, 50, 5, range(20))
    part = P.duties(seed, positions, 50, 5, [t for t in range(20) if t % 2])
    assert all(part[lic] == [t for t in full[lic] if t % 2] for lic in positions)
