"""Pure tests of the operator's listed votes and their commitment (issue 16, step 2: one reveal per operator,
an OK is implicit, NO_VOTE marks a seat that did not audit) and of the tally (security review M4: FAULT and
UNREACHABLE together are "not OK"; a split prices nobody). The contract side: contracts/test/SecurityM4N1.t.sol;
the differential tests (test_protocol_differential.py) hold the two together."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode

from alignment_node import protocol as P

Z = bytes(32)
OPERATOR = "0x" + "33" * 20


def test_the_listed_votes_are_the_not_ok_ones_sorted_by_target_then_license():
    openings = [
        (9, [1, 4, 7], [P.OK, P.FAULT, P.NO_VOTE], [b"\x01" * 32, b"\x02" * 32, Z]),
        (3, [4, 7], [P.UNREACHABLE, P.OK], [b"\x03" * 32, b"\x04" * 32]),
        (5, [], [], []),
    ]
    assert P.sorted_votes(openings) == [(3, 4, P.UNREACHABLE, b"\x03" * 32), (9, 4, P.FAULT, b"\x02" * 32),
                                        (9, 7, P.NO_VOTE, Z)]
    assert P.sorted_votes([(1, [0, 1], [P.OK, P.OK], [Z, Z])]) == []  # all OK: nothing listed
    with pytest.raises(AssertionError, match="twice"):
        P.sorted_votes([(1, [2], [P.FAULT], [Z]), (1, [2], [P.FAULT], [Z])])
    with pytest.raises(AssertionError, match="equal lengths"):
        P.sorted_votes([(1, [2], [P.FAULT], [])])
    with pytest.raises(AssertionError):
        P.sorted_votes([(1, [2], [P.INCONCLUSIVE], [Z])])


@pytest.mark.parametrize("seed", range(4))
def test_the_commitment_is_the_abi_encoding_of_epoch_operator_salt_and_votes(seed):
    rng = random.Random(seed)
    openings = [(lic, sorted(rng.sample(range(20), 4)), [rng.choice([P.OK, P.FAULT, P.UNREACHABLE, P.NO_VOTE])
                                                          for _ in range(4)], [rng.randbytes(32) for _ in range(4)])
                for lic in rng.sample(range(1, 100), 5)]
    votes = P.sorted_votes(openings)
    salt = rng.randbytes(32)
    body = encode(["uint256", "address", "bytes32", "(uint256,uint256,uint8,bytes32)[]"], [7, OPERATOR, salt, votes])
    assert P.vote_commitment(7, OPERATOR, salt, votes) == P.keccak(body)
    # every field binds it
    others = {P.vote_commitment(8, OPERATOR, salt, votes), P.vote_commitment(7, "0x" + "34" * 20, salt, votes),
              P.vote_commitment(7, OPERATOR, bytes(32), votes), P.vote_commitment(7, OPERATOR, salt, votes[:-1])}
    assert P.vote_commitment(7, OPERATOR, salt, votes) not in others and len(others) == 4


def test_a_commitment_of_unsorted_or_ok_votes_is_refused():
    a, b = (1, 2, P.FAULT, Z), (2, 2, P.FAULT, Z)
    assert P.vote_commitment(1, OPERATOR, Z, [a, b]) != P.vote_commitment(1, OPERATOR, Z, [])
    with pytest.raises(AssertionError, match="increasing"):
        P.vote_commitment(1, OPERATOR, Z, [b, a])
    with pytest.raises(AssertionError, match="increasing"):
        P.vote_commitment(1, OPERATOR, Z, [a, a])
    with pytest.raises(AssertionError, match="NO_VOTE, FAULT or UNREACHABLE"):
        P.vote_commitment(1, OPERATOR, Z, [(1, 2, P.OK, Z)])


def test_a_seat_is_ok_unless_listed_and_not_revealed_without_its_operators_reveal():
    assert P.seat_verdict(False, None) == P.seat_verdict(False, P.FAULT) == P.NO_VOTE
    assert P.seat_verdict(True, None) == P.OK
    assert [P.seat_verdict(True, v) for v in (P.FAULT, P.UNREACHABLE, P.NO_VOTE)] == [P.FAULT, P.UNREACHABLE,
                                                                                      P.NO_VOTE]
    assert P.seat_tally([P.OK, P.NO_VOTE, P.FAULT, P.OK, P.UNREACHABLE, P.NO_VOTE]) == (2, 1, 1, 4)
    assert P.seat_tally([]) == (0, 0, 0, 0)


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
