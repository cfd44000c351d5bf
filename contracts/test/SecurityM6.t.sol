// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {FiveSoloOperators} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Security review M6, its on-chain part: evidence nobody can fetch costs money. Anyone may bond
///         `challengeBond` on a counted FAULT or UNREACHABLE vote; the bundle whose keccak256 is the vote's root
///         must then be served on chain within `answerBlocks`, or the license is penalized as for a miss and the
///         challenger is its reporter (docs/security.md, M6).
contract SecurityM6Test is FiveSoloOperators {
    address internal challenger = makeAddr("challenger");
    address internal server = makeAddr("server");

    function _operatorTag() internal pure override returns (string memory) {
        return "m6 operator";
    }

    function setUp() public override {
        super.setUp();
        vm.deal(challenger, 10 ether);
    }

    function _bundle(uint256 i) internal pure returns (bytes memory) {
        return abi.encodePacked('{"bound":{"license":', i, '},"verdict":"FAULT"}');
    }

    /// @dev Operator i's votes in epoch 1: licenses 0 and 1 FAULT on `t`, 2 UNREACHABLE, each with the root of its
    ///      bundle; license 3 NO_VOTE; license 4 OK (nothing listed). A vote of license 0 on target 999 (which
    ///      does not exist, so it sits on no committee) rides along.
    function _votesOf(uint256 i) internal view returns (AuditProtocol.Vote[] memory votes) {
        if (i == 4) return _allOk();
        if (i == 3) return _votes(_vote(ids[i], t, 0, bytes32(0)));
        uint8 v = i == 2 ? UNREACHABLE : FAULT;
        if (i != 0) return _votes(_vote(ids[i], t, v, keccak256(_bundle(i))));
        votes = new AuditProtocol.Vote[](2);
        votes[0] = _vote(ids[0], t, v, keccak256(_bundle(0)));
        votes[1] = _vote(ids[0], 999, v, keccak256(_bundle(0)));
    }

    function _castAndSettle() internal {
        _rollToEpoch(1);
        for (uint256 i; i < 5; ++i) {
            vm.prank(ops[i]);
            protocol.heartbeat();
            _commitVotes(ops[i], 1, keccak256(abi.encode("salt", i)), _votesOf(i));
        }
        _rollToReveal(1);
        for (uint256 i; i < 5; ++i) {
            protocol.reveal(1, ops[i], keccak256(abi.encode("salt", i)), _votesOf(i));
        }
        _rollPastReveal(1);
        protocol.settle(1, t);
    }

    function _challenge(uint256 license) internal returns (uint256 deadline) {
        uint256 bond = protocol.challengeBond();
        vm.prank(challenger);
        protocol.challengeEvidence{value: bond}(1, t, license);
        (, uint64 d,,) = protocol.challenges(keccak256(abi.encode(uint256(1), t, license)));
        return d;
    }

    /// @dev The miss penalties the vault booked in the recorded logs, by license.
    function _missPenalties(Vm.Log[] memory logs, uint256 license) internal view returns (uint256 n, uint256 amount) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(vault) || logs[i].topics[0] != RewardVault.Penalized.selector) continue;
            (uint8 kind, uint256 a,) = abi.decode(logs[i].data, (uint8, uint256, uint256));
            if (kind == protocol.PENALTY_MISS() && uint256(logs[i].topics[1]) == license) {
                ++n;
                amount += a;
            }
        }
    }

    function test_M6_anUnservedBundleCostsAMissPenaltyAndPaysTheChallenger() public {
        _castAndSettle();
        uint256 before = challenger.balance;
        uint256 deadline = _challenge(ids[1]);
        assertEq(deadline, block.number + protocol.answerBlocks(), "deadline");
        assertEq(challenger.balance, before - protocol.challengeBond(), "bonded");
        vm.roll(deadline + 1);
        vm.recordLogs();
        protocol.expireChallenge(1, t, ids[1]);
        (uint256 n, uint256 amount) = _missPenalties(vm.getRecordedLogs(), ids[1]);
        assertEq(n, 1, "penalized once, as a miss");
        assertGt(amount, 0, "a penalty that costs something");
        assertGt(vault.bountyOf(challenger), 0, "the challenger is the reporter");
        assertEq(challenger.balance, before, "bond returned");
        (,, uint8 state,) = protocol.challenges(keccak256(abi.encode(uint256(1), t, ids[1])));
        assertEq(state, 3, "upheld");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.ChallengeNotOpen.selector, 1, t, ids[1]));
        protocol.expireChallenge(1, t, ids[1]);
    }

    function test_M6_aServedBundleIsPublicAndPaysTheBondToTheServer() public {
        _castAndSettle();
        uint256 deadline = _challenge(ids[2]); // an UNREACHABLE vote
        vm.roll(deadline); // the last block it may be served in
        vm.recordLogs();
        vm.prank(server);
        protocol.answerChallenge(1, t, ids[2], _bundle(2));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        (uint256 n,) = _missPenalties(logs, ids[2]);
        assertEq(n, 0, "no penalty");
        assertEq(server.balance, protocol.challengeBond(), "the server got the bond");
        assertEq(logs[0].topics[0], AuditProtocol.EvidenceServed.selector, "served");
        vm.roll(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.ChallengeNotOpen.selector, 1, t, ids[2]));
        protocol.expireChallenge(1, t, ids[2]);
    }

    function test_M6_aWrongBundleIsRefusedAndBothWindowsAreEnforced() public {
        _castAndSettle();
        uint256 deadline = _challenge(ids[0]);
        bytes memory wrong = _bundle(1); // another license's bundle: a real one, but not this vote's
        vm.expectRevert(
            abi.encodeWithSelector(AuditProtocol.WrongBundle.selector, keccak256(_bundle(0)), keccak256(wrong))
        );
        protocol.answerChallenge(1, t, ids[0], wrong);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AnswerWindowOpen.selector, 1, t, ids[0], deadline));
        protocol.expireChallenge(1, t, ids[0]);
        vm.roll(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AnswerWindowClosed.selector, 1, t, ids[0], deadline));
        protocol.answerChallenge(1, t, ids[0], _bundle(0));
        protocol.expireChallenge(1, t, ids[0]);
    }

    function test_M6_onlyACountedNotOkVoteIsChallengedOnceForTheExactBond() public {
        _castAndSettle();
        uint256 bond = protocol.challengeBond();
        vm.startPrank(challenger);
        // OK (nothing listed) and NO_VOTE have no evidence on chain; a vote on a target the license does not
        // sit on is never counted, so it is not challengeable either.
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoEvidence.selector, 1, t, ids[4]));
        protocol.challengeEvidence{value: bond}(1, t, ids[4]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoEvidence.selector, 1, t, ids[3]));
        protocol.challengeEvidence{value: bond}(1, t, ids[3]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoEvidence.selector, 1, 999, ids[0]));
        protocol.challengeEvidence{value: bond}(1, 999, ids[0]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.WrongBond.selector, bond - 1, bond));
        protocol.challengeEvidence{value: bond - 1}(1, t, ids[0]);
        protocol.challengeEvidence{value: bond}(1, t, ids[0]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.ChallengeExists.selector, 1, t, ids[0]));
        protocol.challengeEvidence{value: bond}(1, t, ids[0]);
        vm.stopPrank();
    }

    function test_M6_onlyGovernanceSetsTheBondAndTheWindow() public {
        vm.expectRevert();
        protocol.setChallengeParams(1 ether, 10);
        vm.startPrank(address(timelock));
        vm.expectRevert(AuditProtocol.InvalidParams.selector);
        protocol.setChallengeParams(1 ether, 0);
        protocol.setChallengeParams(1 ether, 10);
        vm.stopPrank();
        assertEq(protocol.challengeBond(), 1 ether, "bond");
        assertEq(protocol.answerBlocks(), 10, "window");
    }
}
