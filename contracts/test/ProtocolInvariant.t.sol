// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {ProtocolHandler} from "./handlers/ProtocolHandler.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @notice Random sequences of the whole protocol (licenses, operators, delegation, heartbeats, commits and
///         reveals, settlement, misses, traps, fees, emission, claims, transfers) against the money and
///         delegation invariants of PROTOCOL.md sections 4 to 8.
/// forge-config: default.invariant.runs = 48
/// forge-config: default.invariant.depth = 150
/// forge-config: deep.invariant.runs = 10000
/// forge-config: deep.invariant.depth = 40
contract ProtocolInvariantTest is Deployed {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    ProtocolHandler internal handler;

    function setUp() public {
        _deploy();
        _addTarget(1);
        _addTarget(2);
        uint256 trap = targets.targetCount(); // sealed before governance registers it
        handler = new ProtocolHandler(
            token, license, registry, targets, protocol, vault, staking, address(sale), keeper, address(timelock), trap
        );
        bytes32 seal = handler.trapSeal();
        vm.prank(keeper);
        targets.sealTrap(seal);
        _addTarget(4);
        vm.prank(address(timelock));
        registry.setMaxLicensesPerOperator(8);
        token.transferOwnership(address(handler));
    }

    function targetContracts() public view returns (address[] memory a) {
        a = new address[](1);
        a[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory selectors) {
        bytes4[] memory s = new bytes4[](28);
        s[0] = ProtocolHandler.mintLicenses.selector;
        s[1] = ProtocolHandler.transferLicense.selector;
        s[2] = ProtocolHandler.registerOperator.selector;
        s[3] = ProtocolHandler.delegate.selector;
        s[4] = ProtocolHandler.approve.selector;
        s[5] = ProtocolHandler.undelegate.selector;
        s[6] = ProtocolHandler.forceUndelegate.selector;
        s[7] = ProtocolHandler.heartbeat.selector;
        s[8] = ProtocolHandler.heartbeatSuspended.selector;
        s[9] = ProtocolHandler.commit.selector;
        s[10] = ProtocolHandler.reveal.selector;
        s[11] = ProtocolHandler.nodeRound.selector;
        s[12] = ProtocolHandler.settle.selector;
        s[13] = ProtocolHandler.reportMiss.selector;
        s[14] = ProtocolHandler.reportAnyMiss.selector;
        s[15] = ProtocolHandler.reportMissAgain.selector;
        s[16] = ProtocolHandler.roll.selector;
        s[17] = ProtocolHandler.depositFees.selector;
        s[18] = ProtocolHandler.fundEmission.selector;
        s[19] = ProtocolHandler.stake.selector;
        s[20] = ProtocolHandler.claim.selector;
        s[21] = ProtocolHandler.claimCommission.selector;
        s[22] = ProtocolHandler.claimBounty.selector;
        s[23] = ProtocolHandler.withdrawTreasury.selector;
        s[24] = ProtocolHandler.revealTrap.selector;
        s[25] = ProtocolHandler.setTargetEnabled.selector;
        s[26] = ProtocolHandler.advanceEpoch.selector;
        s[27] = ProtocolHandler.resume.selector;
        selectors = new FuzzSelector[](1);
        selectors[0] = FuzzSelector(address(handler), s);
    }

    // ---------------------------------------------------------------------------------- sums

    struct Sums {
        uint256 positive; // sum of positive license balances
        uint256 commissions;
        uint256 bounties;
        uint256 pending; // finalized credit of operators' present epochs not yet booked
        uint256 claimableView; // sum of max(claimable(id), 0)
    }

    function _sums() internal view returns (Sums memory s) {
        uint256 poolEpoch = vault.poolEpoch();
        uint256 n = handler.licenseCount();
        for (uint256 i; i < n; ++i) {
            uint256 id = handler.licenses(i);
            (int128 bal,,,) = vault.accounts(id);
            if (bal > 0) s.positive += uint256(int256(bal));
            int256 c = vault.claimable(id);
            if (c > 0) s.claimableView += uint256(c);
        }
        uint256 ops = handler.operatorCount();
        for (uint256 i; i < ops; ++i) {
            address op = handler.operators(i);
            s.commissions += vault.commissionOf(op);
            // Presence is per operator: its last present epoch, once final, is owed to its `count` licenses
            // and the operator from its booking on.
            (uint256 idx,) = registry.operatorIndexOf(op);
            (uint32 lastPlus1, uint32 count,, bool booked,,) = vault.presence(idx);
            if (lastPlus1 != 0 && !booked && lastPlus1 - 1 < poolEpoch) {
                (uint128 per,,) = vault.epochs(lastPlus1 - 1);
                s.pending += uint256(per) * count;
            }
        }
        uint256 reps = handler.reporterCount();
        for (uint256 i; i < reps; ++i) {
            s.bounties += vault.bountyOf(handler.reporters(i));
        }
    }

    // ----------------------------------------------------------------------------- invariants

    /// Everything claimable plus everything paid never exceeds what was funded; once every license is booked
    /// (credit is lazy: booked into an operator, then into each license at its next touch) the vault's liability
    /// counter is exactly that sum, and each license's balance is what `claimable` showed before booking.
    function invariant_claimablePlusPaidNeverExceedsFunded() public {
        Sums memory s = _sums();
        uint256 paid = handler.ghostPaidOut();
        uint256 funded = vault.totalFunded();
        assertLe(s.positive + s.commissions + s.bounties + paid, funded, "claimable + paid <= funded");
        assertLe(vault.totalLiabilities(), funded, "liabilities <= funded");
        assertLe(s.claimableView + s.commissions + s.bounties + paid, funded, "claimable views <= funded");

        uint256 n = handler.licenseCount();
        uint256[] memory ids = new uint256[](n);
        int256[] memory views = new int256[](n);
        for (uint256 i; i < n; ++i) {
            ids[i] = handler.licenses(i);
            views[i] = vault.claimable(ids[i]);
        }
        uint256 snap = vm.snapshotState();
        vault.settleLicenses(ids);
        for (uint256 i; i < n; ++i) {
            (int128 bal,,,) = vault.accounts(ids[i]);
            assertEq(int256(bal), views[i], "claimable = the balance once booked");
        }
        Sums memory booked = _sums();
        assertEq(
            vault.totalLiabilities(), booked.positive + booked.commissions + booked.bounties + paid, "liabilities exact"
        );
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "liabilities <= funded once booked");
        vm.revertToState(snap);
    }

    /// Every funded wei is in exactly one place: emission reserve, the accumulating budget, finalized credit
    /// not yet booked, or a liability.
    function invariant_fundsAreConserved() public view {
        Sums memory s = _sums();
        assertEq(vault.totalFunded(), handler.ghostFunded(), "funded as deposited");
        assertEq(
            vault.totalFunded(),
            vault.emissionReserve() + vault.pool() + s.pending + vault.totalLiabilities(),
            "reserve + pool + pending + liabilities"
        );
    }

    function invariant_vaultHoldsEverythingItOwes() public view {
        Sums memory s = _sums();
        uint256 bal = token.balanceOf(address(vault));
        uint256 owed = s.positive + s.commissions + s.bounties + vault.pool() + vault.emissionReserve()
            + vault.treasuryBalance();
        assertGe(bal, owed, "balance covers claimables, pool, reserve, treasury");
        assertEq(bal, vault.totalFunded() + vault.treasuryBalance() - handler.ghostPaidOut(), "balance exact");
        assertEq(handler.ghostPaymentMismatch(), 0, "claims pay what they return");
    }

    /// @notice The StakingVault counts only tokens it holds, and fees only as they vest (security finding M7).
    function invariant_stakingVaultCountsOnlyWhatItHolds() public view {
        assertLe(staking.accountedAssets(), token.balanceOf(address(staking)), "accounted <= held");
        assertLe(staking.totalAssets(), staking.accountedAssets(), "unvested fees not counted");
    }

    function invariant_everyLicenseHasAtMostOneOperator() public view {
        uint256 n = handler.licenseCount();
        uint256 ops = handler.operatorCount();
        assertEq(registry.operatorCount(), ops, "operators registered only by the handler");
        uint256[] memory delegated = new uint256[](ops);
        uint256[] memory pending = new uint256[](ops);
        uint256 notFree;
        for (uint256 i; i < n; ++i) {
            (address op, OperatorRegistry.LicenseState st) = registry.delegationOf(handler.licenses(i));
            if (st == OperatorRegistry.LicenseState.Free) {
                assertEq(op, address(0), "a free license has no operator");
                continue;
            }
            notFree += 1;
            bool found;
            for (uint256 j; j < ops; ++j) {
                if (handler.operators(j) != op) continue;
                found = true;
                if (st == OperatorRegistry.LicenseState.Delegated) delegated[j] += 1;
                else pending[j] += 1;
            }
            assertTrue(found, "operator is registered");
        }
        uint256 sum;
        for (uint256 j; j < ops; ++j) {
            OperatorRegistry.Operator memory o = registry.getOperator(handler.operators(j));
            assertEq(o.delegated, delegated[j], "delegated counter");
            assertEq(o.pending, pending[j], "pending counter");
            assertLe(o.delegated, 8, "cap");
            sum += uint256(o.delegated) + o.pending;
        }
        assertEq(sum, notFree, "sum of counters = non-Free licenses");
    }

    function invariant_operatorCommissionNeverChanges() public view {
        uint256 ops = handler.operatorCount();
        for (uint256 j; j < ops; ++j) {
            address op = handler.operators(j);
            assertEq(registry.commissionOf(op), handler.commissionAtRegistration(op), "commission fixed");
            assertLe(registry.commissionOf(op), 5000, "commission <= max");
        }
        assertEq(handler.ghostCommissionAboveMax(), 0, "no registration above max");
    }

    function invariant_missIsReportableOnce() public view {
        assertEq(handler.ghostDoubleMissReports(), 0, "no double report");
        uint256 n = handler.missKeyCount();
        for (uint256 i; i < n; ++i) {
            bytes32 key = handler.missKeys(i);
            assertEq(handler.missReportCount(key), 1, "reported once");
            assertTrue(protocol.missReported(key), "recorded");
        }
        assertEq(n, handler.ghostMissReports(), "one key per report");
    }

    /// A suspended license is parked: it is not active in any epoch after the one it was suspended in, until it
    /// is resumed, which is refused while it is still suspended in the next epoch.
    function invariant_suspendedLicenseNeverHeartbeats() public view {
        assertEq(handler.ghostSuspendedHeartbeats(), 0, "suspended license made active");
        assertEq(handler.ghostResumedWhileSuspended(), 0, "resumed while suspended");
        assertEq(handler.ghostNonOperatorPresence(), 0, "presence without registering");
    }

    function invariant_dutiesOfAnEpochNeverMove() public view {
        assertEq(handler.ghostDutyMoved(), 0, "a duty computed during its epoch was gone at reveal");
    }

    /// An operator's committed (salt, votes) always opens its root in the reveal window, a second reveal changes
    /// nothing, and the votes stored are the committed ones (issue 16: one reveal per operator).
    function invariant_aCommittedRevealOpensOnceWithTheCommittedVotes() public view {
        assertEq(handler.ghostCommittedRevealRefused(), 0, "a committed opening was refused");
        assertEq(handler.ghostSecondRevealChanged(), 0, "a second reveal reverted");
        assertEq(handler.ghostVoteNotCommitted(), 0, "a stored vote is not the committed one");
    }

    // ------------------------------------------------------------------------------ coverage

    /// A scripted pseudo-random walk through the same handler shows it reaches every part of the protocol
    /// (so the invariants above are not vacuous), then checks every invariant at the end.
    function test_handlerReachesEveryPartOfTheProtocol() public {
        uint256 r = uint256(keccak256("walk"));
        bytes4[] memory s = targetSelectors()[0].selectors;
        for (uint256 step; step < 600; ++step) {
            r = uint256(keccak256(abi.encode(r)));
            bytes4 sel = s[r % s.length];
            uint256 a = uint256(keccak256(abi.encode(r, 1)));
            uint256 b = uint256(keccak256(abi.encode(r, 2)));
            bytes memory data = sel == ProtocolHandler.roll.selector || sel == ProtocolHandler.revealTrap.selector
                || sel == ProtocolHandler.heartbeatSuspended.selector || sel == ProtocolHandler.reportAnyMiss.selector
                || sel == ProtocolHandler.reportMissAgain.selector || sel == ProtocolHandler.claim.selector
                || sel == ProtocolHandler.claimCommission.selector || sel == ProtocolHandler.claimBounty.selector
                || sel == ProtocolHandler.withdrawTreasury.selector || sel == ProtocolHandler.resume.selector
                ? abi.encodeWithSelector(sel, a)
                : sel == ProtocolHandler.reportMiss.selector
                    ? abi.encodeWithSelector(sel, a, b, a >> 128, b >> 128)
                    : sel == ProtocolHandler.setTargetEnabled.selector
                        ? abi.encodeWithSelector(sel, a, b % 3 != 0)
                        : abi.encodeWithSelector(sel, a, b);
            (bool ok,) = address(handler).call(data);
            assertTrue(ok, "handler actions never revert");
        }
        assertGt(handler.ghostHeartbeats(), 0, "heartbeats");
        assertGt(handler.ghostReveals(), 0, "reveals");
        assertGt(handler.ghostSettles(), 0, "settlements");
        assertGt(handler.ghostMissReports(), 0, "miss reports");
        assertGt(handler.ghostClaims(), 0, "license claims");
        assertGt(handler.ghostSuspendedHeartbeatAttempts(), 0, "a license got suspended and tried");
        assertGt(handler.ghostPaidOut(), 0, "payments");
        invariant_claimablePlusPaidNeverExceedsFunded();
        invariant_fundsAreConserved();
        invariant_vaultHoldsEverythingItOwes();
        invariant_everyLicenseHasAtMostOneOperator();
        invariant_operatorCommissionNeverChanges();
        invariant_missIsReportableOnce();
        invariant_suspendedLicenseNeverHeartbeats();
        invariant_dutiesOfAnEpochNeverMove();
        invariant_aCommittedRevealOpensOnceWithTheCommittedVotes();
    }
}
