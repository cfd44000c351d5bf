// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Two full epochs end to end: three operators (0%, 10%, 25% commission), twelve licenses of four
///         owners, four targets of which one is a trap. Epoch 1 seats everyone on every committee (committees of
///         16, 12 licenses listed); epoch 2 draws exact committees of 5 of the 12. Every balance is checked against
///         an independent model of PROTOCOL.md sections 6 to 8.
contract FullEpochTest is Deployed {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant FEES = 3000 ether;
    uint256 internal constant N = 12;
    uint8 internal constant NO_VOTE = 0;
    uint8 internal constant OK = 1;
    uint8 internal constant FAULT = 2;
    uint8 internal constant UNREACHABLE = 3;
    uint8 internal constant INCONCLUSIVE = 4;
    bytes32 internal constant TRAP_SALT = keccak256("trap salt");

    address internal opA = makeAddr("opA"); // 0%
    address internal opB = makeAddr("opB"); // 10%
    address internal opC = makeAddr("opC"); // 25%
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal dave = makeAddr("dave");
    address internal reporter = makeAddr("reporter");

    uint256 internal tOk;
    uint256 internal tFault;
    uint256 internal tSplit;
    uint256 internal tTrap;

    // License ids are 1..12 in mint order.
    uint256 internal constant X = 2; // opA: votes FAULT on the OK target (disagrees)
    uint256 internal constant Z = 6; // opB: votes OK on the FAULT target (disagrees)
    uint256 internal constant M = 8; // opB: audits nothing, its operator lists NO_VOTE for it (misses)
    uint256 internal constant U = 10; // opC: votes UNREACHABLE on the FAULT target (not a disagreement)
    uint256 internal constant Y = 11; // opC: votes OK on the trap (trap penalty)

    mapping(uint256 => address) internal operatorOf;
    mapping(address => uint256) internal bpsOf;
    mapping(address => uint256[]) internal licensesOf; // per operator
    mapping(address => uint256[]) internal ownedBy; // per owner

    // The independent model.
    mapping(uint256 => int256) internal expBal;
    mapping(address => uint256) internal expCommission;
    mapping(uint256 => uint256) internal grossOf; // per license: its operator's per-license credit sum so far
    uint256 internal expBounty;
    uint256 internal expPool; // the accumulating epoch's budget so far (fees, forfeits, carry, repaid debt)

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        _add(opA, 0, alice, 3); // 1, 2, 3
        _add(opA, 0, bob, 1); // 4
        _add(opB, 1000, bob, 2); // 5, 6
        _add(opB, 1000, carol, 2); // 7, 8
        _add(opC, 2500, dave, 3); // 9, 10, 11
        _add(opC, 2500, alice, 1); // 12
        tOk = _addTarget(1);
        tFault = _addTarget(2);
        tSplit = _addTarget(3);
        // The keeper's anonymous seal for the next id, posted before governance registers the trap.
        uint256 nextId = targets.targetCount();
        vm.prank(keeper);
        targets.sealTrap(keccak256(abi.encode(nextId, FAULT, TRAP_SALT)));
        tTrap = _addTarget(5);
        _committees(16);
    }

    function _committees(uint16 k) internal {
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, k, 3, 16));
    }

    function _add(address op, uint16 bps, address owner, uint256 n) internal {
        uint256[] memory got = _operatorWithLicenses(op, bps, owner, n);
        for (uint256 i; i < n; ++i) {
            operatorOf[got[i]] = op;
            licensesOf[op].push(got[i]);
            ownedBy[owner].push(got[i]);
        }
        bpsOf[op] = bps;
    }

    // ------------------------------------------------------------------------------------- model

    function _credit(uint256 lic, uint256 per) internal {
        // Commission is rounded on the operator's running sum of per-license credit (the license's base).
        uint256 bps = bpsOf[operatorOf[lic]];
        uint256 commission = (grossOf[lic] + per) * bps / BPS - grossOf[lic] * bps / BPS;
        grossOf[lic] += per;
        int256 bal = expBal[lic];
        // The whole credit repays a debt first (back to the budget); commission only on what is left (L2).
        uint256 repaid = bal < 0 ? (per < uint256(-bal) ? per : uint256(-bal)) : 0;
        expPool += repaid;
        if (repaid > 0) commission = commission * (per - repaid) / per;
        expBal[lic] = bal + int256(per - commission);
        expCommission[operatorOf[lic]] += commission;
    }

    /// @return freed the claimable money the penalty took (it goes back to the budget)
    /// @dev What a penalty of `amount` forfeits of the license's modelled balance (nothing from a debt).
    function _forfeit(uint256 lic, uint256 amount) internal view returns (uint256) {
        int256 bal = expBal[lic];
        return bal <= 0 ? 0 : uint256(bal) < amount ? uint256(bal) : amount;
    }

    function _penalty(uint256 lic, uint256 amount) internal returns (uint256 freed) {
        int256 bal = expBal[lic];
        if (bal > 0) freed = uint256(bal) < amount ? uint256(bal) : amount;
        expBal[lic] = bal - int256(amount);
    }

    function _assertModel(string memory when) internal view {
        for (uint256 l = 1; l <= N; ++l) {
            (int128 bal,,,) = vault.accounts(l);
            assertEq(int256(bal), expBal[l], when);
        }
        assertEq(vault.commissionOf(opA), expCommission[opA], "commission opA");
        assertEq(vault.commissionOf(opB), expCommission[opB], "commission opB");
        assertEq(vault.commissionOf(opC), expCommission[opC], "commission opC");
        assertEq(vault.bountyOf(reporter), expBounty, "bounty");
        assertEq(vault.pool(), expPool, "pool");
    }

    // ---------------------------------------------------------------------------------- openings

    function _root(uint256 e, uint256 lic, uint256 t) internal pure returns (bytes32) {
        return keccak256(abi.encode("evidence", e, lic, t));
    }

    /// @dev One salt per operator and epoch.
    function _salt(uint256 e, address op) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", e, op));
    }

    /// @dev Epoch 1: every license audits every target (M audits nothing).
    function _vote1(uint256 lic, uint256 t) internal view returns (uint8) {
        if (lic == M) return NO_VOTE;
        if (t == tOk) return lic == X ? FAULT : OK;
        if (t == tFault) return lic == Z ? OK : lic == U ? UNREACHABLE : FAULT;
        if (t == tSplit) return lic <= 6 ? OK : FAULT; // 6 OK of 11 revealers, 5 FAULT
        return lic == Y ? OK : FAULT; // the trap is faulty
    }

    /// @dev Epoch 2: each license audits the targets drawn for it (section 6, computed here), honestly: the trap
    ///      is FAULT, everything else OK.
    function _vote2(uint256 lic, uint256 t) internal view returns (uint8) {
        return _seated(2, t, lic) && t == tTrap ? FAULT : OK;
    }

    /// @dev The operator's listed votes of epoch `e`: every vote of its licenses that is not OK (OK is implicit),
    ///      sorted by (target, license) (its licenses are in ascending order).
    function _votesOf(address op, uint256 e) internal view returns (AuditProtocol.Vote[] memory votes) {
        uint256[] storage lics = licensesOf[op];
        votes = new AuditProtocol.Vote[](4 * lics.length);
        uint256 n;
        for (uint256 t; t < 4; ++t) {
            for (uint256 i; i < lics.length; ++i) {
                uint8 v = e == 1 ? _vote1(lics[i], t) : _vote2(lics[i], t);
                if (v == OK) continue;
                votes[n++] = _vote(lics[i], t, v, v == NO_VOTE ? bytes32(0) : _root(e, lics[i], t));
            }
        }
        assembly ("memory-safe") {
            mstore(votes, n)
        }
    }

    /// @dev Whether `lic` sits on `t`'s committee in `e`, read from the committee (the shuffle's forward
    ///      direction; isAssigned computes the license's seat with the inverse).
    function _seated(uint256 e, uint256 t, uint256 lic) internal view returns (bool) {
        uint256[] memory c = protocol.committee(e, t);
        for (uint256 i; i < c.length; ++i) {
            if (c[i] == lic) return true;
        }
        return false;
    }

    /// @dev Each operator commits one hash of its listed votes of epoch `e`.
    function _commitAll(uint256 e) internal {
        _commitVotes(opA, e, _salt(e, opA), _votesOf(opA, e));
        _commitVotes(opB, e, _salt(e, opB), _votesOf(opB, e));
        _commitVotes(opC, e, _salt(e, opC), _votesOf(opC, e));
    }

    /// @dev Each operator's reveal of epoch `e` (sent by anyone: here the test).
    function _revealAll(uint256 e) internal {
        protocol.reveal(e, opA, _salt(e, opA), _votesOf(opA, e));
        protocol.reveal(e, opB, _salt(e, opB), _votesOf(opB, e));
        protocol.reveal(e, opC, _salt(e, opC), _votesOf(opC, e));
    }

    /// @dev One heartbeat per operator makes all its listed licenses active.
    function _heartbeatAll() internal {
        vm.prank(opA);
        protocol.heartbeat();
        vm.prank(opB);
        protocol.heartbeat();
        vm.prank(opC);
        protocol.heartbeat();
    }

    /// @dev Credit is booked per license lazily: book every license so balances match the model's.
    function _settleAll() internal {
        uint256[] memory all = new uint256[](N);
        for (uint256 l = 1; l <= N; ++l) {
            all[l - 1] = l;
        }
        vault.settleLicenses(all);
    }

    // ------------------------------------------------------------------------------------- the test

    function test_twoFullEpochsPayExactlyWhatTheRulesSay() public {
        // ============================== epoch 1: everyone audits everything ==============================
        _rollToEpoch(1);
        _depositFees(FEES);
        // Epoch 0 had nobody active: its emission carried into epoch 1's budget.
        expPool = EMISSION + FEES * 7000 / BPS;
        assertEq(token.balanceOf(address(staking)), 0, "no stakers: the staker share goes to the treasury");
        assertEq(vault.treasuryBalance(), FEES - FEES * 7000 / BPS, "treasury share");

        bytes32 seed1 = keccak256(abi.encode(keccak256("genesis"), blockhash(vm.getBlockNumber() - 1), uint256(1)));
        _heartbeatAll();
        assertEq(protocol.seed(1), seed1, "seed 1");
        assertEq(vault.activeCount(1), N, "all twelve active");
        assertEq(protocol.committee(1, 0).length, N, "epoch 1: everyone seated");
        for (uint256 l = 1; l <= N; ++l) {
            for (uint256 t; t < 4; ++t) {
                assertTrue(protocol.isAssigned(1, l, t), "all assigned");
            }
        }
        _commitAll(1); // opB's votes list NO_VOTE for M on every target
        _assertModel("epoch 1: nothing credited yet");
        _committees(5); // from epoch 2, fixed at its first touch; epoch 1 keeps its committees of 16

        // ============================== epoch 2 opens: heartbeats book epoch 1 ==============================
        _rollToEpoch(2);
        uint256 budget1 = expPool + EMISSION;
        uint256 per1 = budget1 / N;
        expPool = budget1 - per1 * N; // the division remainder carries over
        bytes32 seed2 = keccak256(abi.encode(seed1, blockhash(protocol.epochStartBlock(2) - 1), uint256(2)));
        _heartbeatAll();
        _settleAll();
        for (uint256 l = 1; l <= N; ++l) {
            _credit(l, per1);
        }
        assertEq(protocol.seed(2), seed2, "seed 2 chains on seed 1");
        (uint128 rewardPerLicense, uint32 active1, bool finalized) = vault.epochs(1);
        assertEq(rewardPerLicense, per1, "per-license credit of epoch 1 = budget / activeCount");
        assertEq(active1, N, "active count");
        assertTrue(finalized, "finalized");
        _assertModel("epoch 1 credited");

        // Reveal epoch 1: one reveal per operator (M's seats stay unrevealed: NO_VOTE).
        _revealAll(1);
        for (uint256 l = 1; l <= N; ++l) {
            assertTrue(protocol.isRevealed(l, 1), "every operator revealed");
        }
        (,,, uint8 reveals,) = protocol.tally(1, tOk);
        assertEq(reveals, N - 1, "M's seat is not revealed");

        // Commit epoch 2: exact committees of 5 of the 12 listed.
        assertEq(protocol.committeeSizeOf(1), 16, "epoch 1's committees");
        assertEq(protocol.committeeSizeOf(2), 5, "epoch 2's");
        uint256 duties;
        for (uint256 l = 1; l <= N; ++l) {
            for (uint256 t; t < 4; ++t) {
                assertEq(protocol.isAssigned(2, l, t) ? 1 : 0, _seated(2, t, l) ? 1 : 0, "epoch-2 duty");
                if (_seated(2, t, l)) ++duties;
            }
        }
        assertEq(duties, 4 * 5, "every target: exactly 5");
        _commitAll(2);

        // ============================== settle epoch 1 ==============================
        _rollPastReveal(1);
        vm.prank(keeper);
        targets.revealTrap(tTrap, FAULT, TRAP_SALT);

        // OK target: 10 OK, 1 FAULT (X) -> OK, X pays the disagree penalty.
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, tOk, OK, 10, 1, 0);
        vm.expectEmit();
        emit RewardVault.Penalized(X, 1, 2, 2 * per1, uint256(expBal[X]));
        assertEq(protocol.settle(1, tOk), OK, "OK target");
        expPool += _penalty(X, 2 * per1);

        // FAULT target: 9 FAULT, 1 OK (Z), 1 UNREACHABLE (U) -> FAULT; the evidence is license 1's root.
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, tFault, FAULT, 1, 9, 1);
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, tFault, FAULT, _root(1, 1, tFault));
        assertEq(protocol.settle(1, tFault), FAULT, "FAULT target");
        expPool += _penalty(Z, 2 * per1);

        // Split target: 6 OK, 5 FAULT of 11 -> INCONCLUSIVE, nobody pays (docs/protocol.md, "Verdicts").
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, tSplit, INCONCLUSIVE, 6, 5, 0);
        assertEq(protocol.settle(1, tSplit), INCONCLUSIVE, "split target");

        // Trap: sealed FAULT, revealed after the reveal window; Y voted OK and pays the trap penalty.
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, tTrap, FAULT, 1, 10, 0);
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, tTrap, FAULT, _root(1, 1, tTrap));
        vm.expectEmit();
        emit RewardVault.Penalized(Y, 1, 3, 10 * per1, _forfeit(Y, 10 * per1));
        assertEq(protocol.settle(1, tTrap), FAULT, "trap");
        expPool += _penalty(Y, 10 * per1);
        _assertModel("epoch 1 settled");

        // M was assigned every target and revealed none: a third party reports it and earns the bounty.
        vm.expectEmit();
        emit AuditProtocol.MissReported(1, M, tOk, reporter);
        vm.prank(reporter);
        protocol.reportMiss(1, M, tOk);
        uint256 freed = _penalty(M, 3 * per1);
        uint256 bounty = freed * 1000 / BPS;
        expBounty += bounty;
        expPool += freed - bounty;
        vm.prank(reporter);
        protocol.reportMiss(1, M, tSplit); // M is in debt now: nothing forfeited, no bounty
        expPool += _penalty(M, 3 * per1);
        _assertModel("misses reported");
        assertGt(bounty, 0, "a bounty was earned");

        uint256 before = token.balanceOf(reporter);
        vm.prank(reporter);
        assertEq(vault.claimBounty(), bounty, "bounty claimed");
        assertEq(token.balanceOf(reporter) - before, bounty, "bounty paid");
        expBounty = 0;

        // ============================== epoch 3 opens: book epoch 2, reveal and settle it ==============================
        _rollToEpoch(3);
        uint256 budget2 = expPool + EMISSION;
        uint256 per2 = budget2 / N;
        expPool = budget2 - per2 * N;
        _heartbeatAll();
        _settleAll();
        for (uint256 l = 1; l <= N; ++l) {
            _credit(l, per2);
        }
        (rewardPerLicense,,) = vault.epochs(2);
        assertEq(rewardPerLicense, per2, "per-license credit of epoch 2 (forfeits included)");
        _assertModel("epoch 2 credited");

        _revealAll(2);
        _rollPastReveal(2);
        for (uint256 t; t < 4; ++t) {
            uint256[] memory c = protocol.committee(2, t);
            (uint256[] memory who, uint8[] memory vs) = protocol.revealers(2, t);
            assertEq(who.length, 5, "committee size");
            for (uint256 j; j < 5; ++j) {
                assertEq(who[j], c[j], "revealers in seat order");
                assertEq(vs[j], t == tTrap ? FAULT : OK, "honest verdicts");
            }
            if (t == tTrap) {
                // The trap keeper settles the trap; the first seat's root is the flag's evidence.
                assertEq(protocol.outcomeOf(2, t), FAULT, "trap outcome");
                vm.expectEmit();
                emit AuditProtocol.ViolationFlagged(2, t, FAULT, _root(2, c[0], t));
                assertEq(protocol.settle(2, t), FAULT, "epoch-2 trap");
            } else {
                // All OK: nothing to debit, so nobody settles it; its outcome is OK all the same.
                assertEq(protocol.outcomeOf(2, t), OK, "epoch-2 outcome without settling");
                (,,,, uint8 settled) = protocol.tally(2, t);
                assertEq(settled, 0, "not settled");
            }
        }
        _assertModel("epoch 2 settled: honest votes, no penalty");

        // ============================== claims ==============================
        _claimAndCheck(alice);
        _claimAndCheck(bob);
        _claimAndCheck(carol);
        _claimAndCheck(dave);
        _claimCommissionAndCheck(opA); // 0% commission: nothing to claim
        _claimCommissionAndCheck(opB);
        _claimCommissionAndCheck(opC);
        _assertModel("after claims");
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "liabilities never exceed funding");
    }

    function _claimAndCheck(address owner) internal {
        uint256[] storage lics = ownedBy[owner];
        uint256 expected;
        for (uint256 i; i < lics.length; ++i) {
            if (expBal[lics[i]] > 0) {
                expected += uint256(expBal[lics[i]]);
                expBal[lics[i]] = 0;
            }
        }
        uint256 before = token.balanceOf(owner);
        if (expected == 0) {
            vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        }
        vm.prank(owner);
        vault.claim(lics);
        assertEq(token.balanceOf(owner) - before, expected, "claim pays the positive balances");
    }

    function _claimCommissionAndCheck(address op) internal {
        uint256 expected = expCommission[op];
        uint256 before = token.balanceOf(op);
        if (expected == 0) {
            vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        }
        vm.prank(op);
        vault.claimCommission();
        assertEq(token.balanceOf(op) - before, expected, "commission paid");
        expCommission[op] = 0;
    }
}
