"""Pure tests of the commitment tree (security review N1: ordered, one leaf per list position) and of the tally
(security review M4: FAULT and UNREACHABLE together are "not OK"; the minority of an INCONCLUSIVE tally with a
strict majority is priced). The contract side: contracts/test/SecurityM4N1.t.sol; the differential tests hold
the two together."""

from __future__ import annotations

import random

import pytest

from alignment_node import protocol as P

Z = bytes(32)


def naive_root(leaves: dict[int, bytes], depth: int, lo: int = 0) -> bytes:
    """The same tree by recursion over the whole position range: an empty range is zero."""
    if depth == 0:
        return leaves.get(lo, Z)
    half = 1 << (depth - 1)
    left, right = naive_root(leaves, depth - 1, lo), naive_root(leaves, depth - 1, lo + half)
    return Z if left == right == Z else P.keccak(left + right)


def test_tree_depth_is_the_least_d_with_two_to_the_d_at_least_the_list():
    assert [P.tree_depth(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 175_500)] == [0, 0, 1, 2, 2, 3, 3, 4, 18]


@pytest.mark.parametrize("seed", range(6))
def test_root_proofs_and_verify_agree_with_a_naive_tree(seed):
    rng = random.Random(seed)
    listed = rng.randrange(1, 300)
    depth = P.tree_depth(listed)
    positions = rng.sample(range(listed), rng.randrange(1, min(listed, 12) + 1))
    leaves = {q: rng.randbytes(32) for q in positions}
    layers = P.merkle_layers(leaves, depth)
    root = P.merkle_root(leaves, depth)
    assert root == layers[-1][0] == naive_root(leaves, depth)
    for q, leaf in leaves.items():
        proof = P.merkle_proof(layers, q)
        assert len(proof) == depth
        assert P.merkle_verify(proof, root, leaf, q, depth)
        assert not P.merkle_verify(proof, root, rng.randbytes(32), q, depth)
        assert not P.merkle_verify(proof + [Z], root, leaf, q, depth)  # the depth is fixed
        if depth:
            assert not P.merkle_verify(proof[:-1], root, leaf, q, depth)
            assert not P.merkle_verify(proof, root, leaf, q ^ 1, depth)  # another position: another path


def test_a_single_leaf_at_position_zero_of_a_list_of_one_is_the_root():
    leaf = b"\x07" * 32
    assert P.merkle_root({0: leaf}, 0) == leaf and P.merkle_proof(P.merkle_layers({0: leaf}, 0), 0) == []
    with pytest.raises(AssertionError):
        P.merkle_layers({2: leaf}, 1)  # outside a tree of depth 1
    with pytest.raises(AssertionError):
        P.merkle_layers({}, 3)


def test_n1_a_root_opens_one_opening_per_list_position():
    """Two openings of one license: whichever the tree holds at the license's position, the other one has no
    proof there; put at another position, its proof does not verify at the license's position. The sorted-pair
    tree of before opened both."""
    depth, p = 3, 5
    ok_leaf, fault_leaf = P.opening_leaf(b"\x01" * 32), P.opening_leaf(b"\x02" * 32)
    for q in range(8):
        if q == p:
            continue
        layers = P.merkle_layers({p: ok_leaf, q: fault_leaf}, depth)
        root = layers[-1][0]
        assert P.merkle_verify(P.merkle_proof(layers, p), root, ok_leaf, p, depth)
        for position in range(8):  # any proof the tree offers
            assert not P.merkle_verify(P.merkle_proof(layers, position), root, fault_leaf, p, depth)
    # the old attack: the root is the sorted pair of the two openings' leaves; at one position, one order only
    pair = P.keccak(min(ok_leaf, fault_leaf) + max(ok_leaf, fault_leaf))
    opens = [P.merkle_verify([other], pair, leaf, 0, 1) for leaf, other in ((ok_leaf, fault_leaf),
                                                                               (fault_leaf, ok_leaf))]
    assert opens.count(True) == 1


@pytest.mark.parametrize("votes, outcome, priced", [
    ((0, 3, 2), P.FAULT, P.FAULT),  # 3 FAULT + 2 UNREACHABLE: not OK (was INCONCLUSIVE)
    ((0, 2, 3), P.UNREACHABLE, P.UNREACHABLE),
    ((1, 2, 2), P.FAULT, P.FAULT),  # a FAULT/UNREACHABLE tie settles FAULT
    ((1, 1, 1), P.FAULT, P.FAULT),  # 2/3 not OK
    ((2, 3, 0), P.INCONCLUSIVE, P.INCONCLUSIVE),  # a colluding 2 of 5 keep it unflagged; a split prices nobody
    ((3, 1, 1), P.INCONCLUSIVE, P.INCONCLUSIVE),  # a fault's onset as honest auditors see it: nobody pays
    ((6, 5, 0), P.INCONCLUSIVE, P.INCONCLUSIVE),
    ((2, 1, 1), P.INCONCLUSIVE, P.INCONCLUSIVE),  # an even split: nobody pays
    ((4, 1, 1), P.OK, P.OK),  # exactly 2/3
    ((1, 1, 0), P.INCONCLUSIVE, P.INCONCLUSIVE),  # fewer than minReveals
    ((0, 0, 0), P.INCONCLUSIVE, P.INCONCLUSIVE),
])
def test_m4_outcome_and_priced_side(votes, outcome, priced):
    assert P.outcome(*votes, 3) == outcome
    assert P.priced_side(*votes, 3) == priced
    assert P.priced_side(*votes, 3, P.OK) == P.OK  # a trap's truth prices everyone against it


def test_m4_who_pays_in_the_colluding_third_case():
    """A split prices nobody (docs/protocol.md, "Verdicts": pricing its minority charged honest auditors at a
    fault's onset); a not-OK supermajority prices the OK votes."""
    for ballots, paying in (([P.FAULT, P.FAULT, P.FAULT, P.OK, P.OK], [False] * 5),
                            ([P.FAULT, P.UNREACHABLE, P.FAULT, P.UNREACHABLE, P.OK], [False] * 4 + [True])):
        side = P.priced_side(ballots.count(P.OK), ballots.count(P.FAULT), ballots.count(P.UNREACHABLE), 3)
        assert [P.disagrees(b, side) for b in ballots] == paying
