"""The Python mirror of the RewardVault's credit rules (alignment_node/protocol): commission and debt (security
finding L2) and the fee split; contracts/test/SecurityVault.t.sol checks the same numbers on chain."""

from alignment_node import protocol as P

ETHER = 10**18


def test_commission_split_without_debt_is_the_operator_rate():
    assert P.commission_split(1000 * ETHER, 1000) == (900 * ETHER, 100 * ETHER)
    assert P.commission_split(0, 1000) == (0, 0)
    assert P.commission_split(999, 0) == (999, 0)


def test_commission_split_debt_is_repaid_from_the_whole_credit_before_any_commission():
    # A license 3000 in debt earns 1000: all of it repays the debt, the operator gets nothing.
    assert P.commission_split(1000 * ETHER, 1000, debt=3000 * ETHER) == (1000 * ETHER, 0)
    # 3000 of credit, 1000 of debt: 2000 left, 10% of it to the operator (SecurityVault.t.sol, epoch 3).
    assert P.commission_split(3000 * ETHER, 1000, debt=1000 * ETHER) == (2800 * ETHER, 200 * ETHER)
    # Exactly the debt: nothing left, no commission.
    assert P.commission_split(500, 2500, debt=500) == (500, 0)
    # A negative "debt" (a positive balance) changes nothing.
    assert P.commission_split(1000, 1000, debt=-5) == (900, 100)


def test_commission_split_rounds_on_the_running_sum_however_the_credit_is_cut():
    credits = [333_333_333_333_333_333, 7, 1_000_000_000_000_000_001, 19]
    bps = 1500
    whole = P.commission_split(sum(credits), bps)
    parts, before = [], 0
    for c in credits:
        parts.append(P.commission_split(c, bps, credited_before=before))
        before += c
    assert (sum(p[0] for p in parts), sum(p[1] for p in parts)) == whole
    assert sum(whole) == sum(credits)


def test_fee_split_stakers_share_goes_to_the_treasury_while_nobody_stakes():
    assert P.fee_split(1000, 7000, 2000) == (700, 200, 100)
    assert P.fee_split(1000, 7000, 2000, stakers_exist=False) == (700, 0, 300)
