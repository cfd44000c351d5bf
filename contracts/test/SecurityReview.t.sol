// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Findings of the security review (docs/security.md) that the contracts answer: H1, a front-run reveal
///         no longer breaks the operator's batch; H4's second half, what a miss costs and pays when the
///         license's credit was claimed before the miss was reported.
contract SecurityReviewTest is Deployed {
    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    address internal attacker = makeAddr("attacker");
    address internal reporter = makeAddr("reporter");
    uint256[] internal ids;
    uint256 internal t;

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, 3); // 10% commission
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16)); // everyone sits on every committee
    }

    function _opening(uint256 e, uint256 lic) internal view returns (AuditProtocol.Reveal memory r) {
        r.license = lic;
        r.targetIds = _one(t);
        r.verdicts = new uint8[](1);
        r.verdicts[0] = 1;
        r.evidenceRoots = new bytes32[](1);
        r.salt = keccak256(abi.encode("salt", e, lic));
    }

    /// @dev Epoch 1: the operator heartbeats and commits one tree over its three licenses' openings.
    function _epochOneCommitted() internal returns (AuditProtocol.Reveal[] memory rs) {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        rs = new AuditProtocol.Reveal[](3);
        for (uint256 i; i < 3; ++i) {
            rs[i] = _opening(1, ids[i]);
        }
        _commitTree(op, 1, rs);
        _rollToEpoch(2);
        vm.prank(op);
        protocol.heartbeat();
    }

    // ======================================================================= H1: front-run reveal

    function _revealedEvents() internal returns (uint256 n) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(protocol) && logs[i].topics[0] == AuditProtocol.Revealed.selector) ++n;
        }
    }

    function test_H1_aRevealCopiedFromAPendingBatchDoesNotRevertTheBatch() public {
        AuditProtocol.Reveal[] memory rs = _epochOneCommitted();
        _rollToReveal(1);
        // The attacker copies the middle entry out of the operator's pending revealMany and lands it first.
        AuditProtocol.Reveal memory r = rs[1];
        vm.prank(attacker);
        protocol.reveal(1, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, r.proof);
        // The operator's batch still goes through: the revealed entry is skipped, the others are counted.
        vm.recordLogs();
        vm.prank(op);
        protocol.revealMany(1, rs);
        assertEq(_revealedEvents(), 2, "one Revealed event per entry not revealed before");
        for (uint256 i; i < 3; ++i) {
            assertTrue(protocol.isRevealed(ids[i], 1), "revealed");
        }
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t);
        assertEq(n, 3, "each license counted once");
        assertEq(ok, 3, "three OK votes");
        // Nobody missed: the attacker has no miss to report.
        _rollPastReveal(1);
        for (uint256 i; i < 3; ++i) {
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[i], t));
            vm.prank(attacker);
            protocol.reportMiss(1, ids[i], t);
        }
        assertEq(protocol.settle(1, t), 1, "settles OK");
        assertEq(vault.bountyOf(attacker), 0, "no bounty");
    }

    function test_H1_aSingleRevealOfARevealedLicenseStillReverts() public {
        AuditProtocol.Reveal[] memory rs = _epochOneCommitted();
        _rollToReveal(1);
        vm.prank(op);
        protocol.revealMany(1, rs);
        AuditProtocol.Reveal memory r = rs[0];
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AlreadyRevealed.selector, 1, ids[0]));
        protocol.reveal(1, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, r.proof);
        // A batch of nothing but revealed entries is a no-op, not a second count.
        protocol.revealMany(1, rs);
        (,,, uint8 n,) = protocol.tally(1, t);
        assertEq(n, 3, "counted once");
    }

    function test_H1_aSkippedEntryIsNotChecked_anInvalidOneStillReverts() public {
        AuditProtocol.Reveal[] memory rs = _epochOneCommitted();
        _rollToReveal(1);
        // An entry that was never revealed is still verified: a wrong salt reverts the whole batch.
        rs[2].salt = keccak256("wrong");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[2]));
        protocol.revealMany(1, rs);
    }

    // ============================================ H4, second half: credit claimed before the miss report

    /// @dev Numbers of docs/security.md (H4): licenses 1 and 2 miss target t in epoch 1. License 1's owner claims
    ///      epoch 1's credit during the reveal window; license 2's does not. The penalty (3 epochs of credit) hits
    ///      both in full; only the bounty differs: 10% of what was forfeited, zero when nothing was left to take.
    ///      License 1's penalty is a debt that its next credit pays back into the budget.
    function test_H4_aClaimBeforeTheMissReportTurnsThePenaltyIntoDebtAndTheBountyIntoZero() public {
        AuditProtocol.Reveal[] memory rs = _epochOneCommitted();
        _rollToReveal(1);
        AuditProtocol.Reveal memory r = rs[0];
        protocol.reveal(1, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, r.proof);
        uint256[] memory first = _one(ids[1]);
        vm.prank(owner);
        uint256 claimed = vault.claim(first); // epoch 1's credit, before the miss can be reported
        (uint128 per,,) = vault.epochs(1);
        uint256 net = uint256(per) - uint256(per) * 1000 / 10_000;
        assertEq(claimed, net, "epoch 1's credit, less commission");
        assertEq(vault.claimable(ids[2]), int256(net), "license 2 leaves it in the vault");

        _rollPastReveal(1);
        vm.startPrank(reporter);
        protocol.reportMiss(1, ids[1], t);
        assertEq(vault.bountyOf(reporter), 0, "nothing forfeited, no bounty");
        protocol.reportMiss(1, ids[2], t);
        vm.stopPrank();
        uint256 bounty = net * 1000 / 10_000; // 10% of the forfeited balance
        assertEq(vault.bountyOf(reporter), bounty, "license 2's miss pays 10% of its forfeited balance");
        assertEq(vault.claimable(ids[1]), -int256(3 * uint256(per)), "license 1: the whole penalty as debt");
        assertEq(vault.claimable(ids[2]), int256(net) - int256(3 * uint256(per)), "license 2: penalty less balance");

        // Epoch 2's credit pays license 1's debt first: none of it is claimable.
        _rollToEpoch(3);
        vault.settleLicenses(first); // finalizes epoch 2's budget and books the credit
        (uint128 per2,,) = vault.epochs(2);
        assertGt(per2, 0, "epoch 2 credited");
        // Security finding L2: the whole credit, commission included, pays the debt first.
        assertEq(vault.claimable(ids[1]), int256(uint256(per2)) - int256(3 * uint256(per)), "debt paid down by credit");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vault.claim(first);
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "solvent");
    }
}
