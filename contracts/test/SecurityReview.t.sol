// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Findings of the security review (docs/security.md) that the contracts answer: H1, a front-run reveal
///         cannot break the operator's own (one payload per operator opens its root; a second reveal is a silent
///         no-op); H4's second half, what a miss costs and pays when the license's credit was claimed before the
///         miss was reported.
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

    bytes32 internal constant SALT = keccak256("op salt");

    /// @dev Epoch 1: the operator heartbeats and commits the hash of `votes` (its licenses' votes that are not
    ///      OK) under SALT; epoch 2 begins and the operator heartbeats again.
    function _epochOneCommitted(AuditProtocol.Vote[] memory votes) internal {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        _commitVotes(op, 1, SALT, votes);
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

    /// The reveal is one transaction per operator: whoever copies it out of the mempool sends the operator's own
    /// whole payload (only that payload opens the root), so the copy counts exactly the operator's votes, and the
    /// operator's own transaction, landing second, is a silent no-op instead of a revert: nothing is lost, nothing
    /// counted twice, and nobody has a miss to report.
    function test_H1_aCopiedRevealIsTheOperatorsOwnAndItsOwnTransactionStillSucceeds() public {
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[1], t, protocol.FAULT(), keccak256("evidence")));
        _epochOneCommitted(votes);
        _rollToReveal(1);
        vm.recordLogs();
        vm.prank(attacker);
        protocol.reveal(1, op, SALT, votes); // copied out of the operator's pending transaction, mined first
        assertEq(_revealedEvents(), 1, "the copy reveals the operator's votes");
        vm.recordLogs();
        _revealVotes(op, 1, SALT, votes); // the operator's own transaction does not revert
        assertEq(_revealedEvents(), 0, "a second reveal emits nothing");
        assertTrue(protocol.hasRevealed(op, 1), "revealed");
        for (uint256 i; i < 3; ++i) {
            assertTrue(protocol.isRevealed(ids[i], 1), "every license revealed");
        }
        (uint8 ok, uint8 fault,, uint8 n,) = protocol.tally(1, t);
        assertEq(n, 3, "each license counted once");
        assertEq(ok, 2, "two OK votes");
        assertEq(fault, 1, "the operator's one FAULT vote");
        (bool listed, uint8 verdict, bytes32 root) = protocol.voteOf(1, t, ids[1]);
        assertTrue(listed, "listed");
        assertEq(verdict, protocol.FAULT(), "the committed verdict");
        assertEq(root, keccak256("evidence"), "the committed root");
        // Nobody missed: the attacker has no miss to report.
        _rollPastReveal(1);
        for (uint256 i; i < 3; ++i) {
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[i], t));
            vm.prank(attacker);
            protocol.reportMiss(1, ids[i], t);
        }
        assertEq(protocol.settle(1, t), 1, "settles OK by two thirds");
        assertEq(vault.bountyOf(attacker), 0, "no bounty");
    }

    /// A second reveal of the same opening changes nothing (no revert, no event, no second count); a payload that
    /// does not open the root still reverts NoCommitment, before or after the reveal.
    function test_H1_aSecondRevealIsASilentNoOp() public {
        _epochOneCommitted(_allOk());
        _rollToReveal(1);
        _revealVotes(op, 1, SALT, _allOk());
        vm.recordLogs();
        _revealVotes(op, 1, SALT, _allOk());
        protocol.reveal(1, op, SALT, _allOk()); // anyone, again
        assertEq(_revealedEvents(), 0, "no event");
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t);
        assertEq(n, 3, "counted once");
        assertEq(ok, 3, "three OK votes");
        // A different list cannot be added afterwards: it does not open the root.
        AuditProtocol.Vote[] memory late = _votes(_vote(ids[0], t, protocol.FAULT(), bytes32(0)));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, op));
        protocol.reveal(1, op, SALT, late);
        (bool listed,,) = protocol.voteOf(1, t, ids[0]);
        assertFalse(listed, "nothing listed");
        (ok,,, n,) = protocol.tally(1, t);
        assertEq(ok, 3, "still three OK votes");
    }

    /// Only the committed (salt, votes) opens the root: a wrong salt, a vote added or a vote dropped reverts
    /// NoCommitment and reveals nothing; the committed payload then goes through.
    function test_H1_aWrongPayloadRevertsAndRevealsNothing() public {
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[2], t, protocol.UNREACHABLE(), bytes32(0)));
        _epochOneCommitted(votes);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, op));
        protocol.reveal(1, op, keccak256("wrong"), votes);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, op));
        protocol.reveal(1, op, SALT, _allOk());
        AuditProtocol.Vote[] memory more = new AuditProtocol.Vote[](2);
        (more[0], more[1]) = (_vote(ids[1], t, protocol.FAULT(), bytes32(0)), votes[0]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, op));
        protocol.reveal(1, op, SALT, more);
        assertFalse(protocol.hasRevealed(op, 1), "nothing revealed");
        protocol.reveal(1, op, SALT, votes);
        assertTrue(protocol.hasRevealed(op, 1), "the committed payload opens it");
    }

    // ============================================ H4, second half: credit claimed before the miss report

    /// @dev Numbers of docs/security.md (H4): licenses 1 and 2 miss target t in epoch 1. License 1's owner claims
    ///      epoch 1's credit during the reveal window; license 2's does not. The penalty (3 epochs of credit) hits
    ///      both in full; only the bounty differs: 10% of what was forfeited, zero when nothing was left to take.
    ///      License 1's penalty is a debt that its next credit pays back into the budget.
    function test_H4_aClaimBeforeTheMissReportTurnsThePenaltyIntoDebtAndTheBountyIntoZero() public {
        // The operator reveals, listing NO_VOTE for licenses 1 and 2 on t (they did not audit it): only license 0
        // counts as revealed on t.
        AuditProtocol.Vote[] memory votes = new AuditProtocol.Vote[](2);
        votes[0] = _vote(ids[1], t, protocol.NO_VOTE(), bytes32(0));
        votes[1] = _vote(ids[2], t, protocol.NO_VOTE(), bytes32(0));
        _epochOneCommitted(votes);
        _rollToReveal(1);
        protocol.reveal(1, op, SALT, votes);
        uint256[] memory first = _one(ids[1]);
        vm.prank(owner);
        uint256 claimed = vault.claim(first); // epoch 1's credit, before the miss can be reported
        (uint128 per,,) = vault.epochs(1);
        uint256 net = uint256(per) - uint256(per) * 1000 / 10_000;
        assertEq(claimed, net, "epoch 1's credit, less commission");
        assertEq(vault.claimable(ids[2]), int256(net), "license 2 leaves it in the vault");

        _rollPastReveal(1);
        (,,, uint8 n, uint8 settled) = protocol.tally(1, t);
        assertEq(n, 1, "one seat revealed");
        assertEq(settled, 0, "misses are reported without settling the target");
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
