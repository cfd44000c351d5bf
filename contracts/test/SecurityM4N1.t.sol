// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed, FiveSoloOperators} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Security review M4: FAULT and UNREACHABLE together are "not OK" for the 2/3 supermajority; an
///         INCONCLUSIVE tally prices nobody, even with a strict majority (docs/security.md, docs/protocol.md).
contract SecurityM4Test is FiveSoloOperators {
    function _operatorTag() internal pure override returns (string memory) {
        return "m4 operator";
    }

    function _root(uint256 lic, uint8 v) internal pure returns (bytes32) {
        return keccak256(abi.encode("evidence", lic, v));
    }

    function _salt(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", i));
    }

    /// @dev Operator i's votes: nothing listed for OK, else its license's vote `v` on `t`.
    function _votesOf(uint256 i, uint8 v) internal view returns (AuditProtocol.Vote[] memory) {
        return v == OK ? _allOk() : _votes(_vote(ids[i], t, v, _root(ids[i], v)));
    }

    /// @dev Epoch 1: license i (its own operator) votes vs[i] on `t`; all reveal (in reverse order when `reversed`);
    ///      then the window closes.
    function _cast(uint8[] memory vs, bool reversed) internal returns (uint256[] memory lics) {
        uint256 n = vs.length;
        lics = new uint256[](n);
        _rollToEpoch(1);
        for (uint256 i; i < n; ++i) {
            lics[i] = ids[i];
            vm.prank(ops[i]);
            protocol.heartbeat();
        }
        for (uint256 i; i < n; ++i) {
            _commitVotes(ops[i], 1, _salt(i), _votesOf(i, vs[i]));
        }
        _rollToReveal(1);
        for (uint256 j; j < n; ++j) {
            uint256 i = reversed ? n - 1 - j : j;
            protocol.reveal(1, ops[i], _salt(i), _votesOf(i, vs[i]));
        }
        _rollPastReveal(1);
    }

    function _cast(uint8[] memory vs) internal returns (uint256[] memory) {
        return _cast(vs, false);
    }

    /// @dev Settle (1, t) and return the licenses the settlement penalized for disagreeing, in order.
    function _settle(uint8 want) internal returns (uint256[] memory penalized) {
        vm.recordLogs();
        assertEq(protocol.settle(1, t), want, "outcome");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        penalized = new uint256[](logs.length);
        uint256 m;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(vault) || logs[i].topics[0] != RewardVault.Penalized.selector) continue;
            (uint8 kind,,) = abi.decode(logs[i].data, (uint8, uint256, uint256));
            assertEq(kind, protocol.PENALTY_DISAGREE(), "a disagree penalty");
            penalized[m++] = uint256(logs[i].topics[1]);
        }
        assembly {
            mstore(penalized, m)
        }
    }

    function _v(uint8 a, uint8 b, uint8 c, uint8 d, uint8 e) internal pure returns (uint8[] memory v) {
        v = new uint8[](5);
        (v[0], v[1], v[2], v[3], v[4]) = (a, b, c, d, e);
    }

    function test_M4_threeFaultTwoUnreachableSettlesFault() public {
        _cast(_v(FAULT, FAULT, FAULT, UNREACHABLE, UNREACHABLE));
        uint256[] memory p = _settle(FAULT); // was INCONCLUSIVE: neither verdict alone had 2/3
        assertEq(p.length, 0, "FAULT and UNREACHABLE agree: nobody pays");
    }

    function test_M4_twoFaultThreeUnreachableSettlesUnreachable() public {
        _cast(_v(FAULT, UNREACHABLE, FAULT, UNREACHABLE, UNREACHABLE));
        assertEq(_settle(UNREACHABLE).length, 0, "nobody pays");
        // M6: the first seat in committee order (the list order here) that voted UNREACHABLE.
        assertEq(protocol.evidenceRoot(1, t, UNREACHABLE), _root(ids[1], UNREACHABLE), "ev");
    }

    function test_M4_aFaultUnreachableTieSettlesFaultAndPricesTheOkVote() public {
        // 4 not OK of 5 (2 FAULT, 2 UNREACHABLE): FAULT wins the tie; the OK voter disagrees.
        _cast(_v(UNREACHABLE, OK, FAULT, UNREACHABLE, FAULT));
        uint256[] memory p = _settle(FAULT);
        assertEq(p.length, 1, "one penalty");
        assertEq(p[0], ids[1], "the OK voter");
    }

    function test_M4_aSplitPricesNobody_aColludingThirdOnlyKeepsTheTargetUnflagged() public {
        // 3 FAULT + 2 OK: 60% not OK, no supermajority: INCONCLUSIVE, not flagged this epoch, and nobody pays. Pricing
        // a split's minority was tried and charged honest auditors at a fault's onset (docs/protocol.md, "Verdicts").
        _cast(_v(FAULT, FAULT, OK, FAULT, OK));
        assertEq(_settle(INCONCLUSIVE).length, 0, "a split prices nobody");
        (,,,, uint8 outcome) = protocol.tally(1, t);
        assertEq(outcome, INCONCLUSIVE, "the target is not flagged");
    }

    function test_M4_anOkMajorityWithoutSupermajorityPricesNobody() public {
        _cast(_v(OK, FAULT, OK, UNREACHABLE, OK));
        assertEq(_settle(INCONCLUSIVE).length, 0, "3 OK of 5 is no supermajority: nobody pays");
    }

    function test_M4_anEvenSplitPaysNobody() public {
        uint8[] memory vs = new uint8[](4);
        (vs[0], vs[1], vs[2], vs[3]) = (OK, FAULT, OK, UNREACHABLE);
        _cast(vs);
        assertEq(_settle(INCONCLUSIVE).length, 0, "no majority: nobody pays");
    }

    function test_M4_belowMinRevealsPaysNobody() public {
        uint8[] memory vs = new uint8[](2);
        (vs[0], vs[1]) = (FAULT, OK);
        _cast(vs);
        assertEq(_settle(INCONCLUSIVE).length, 0, "too few votes: nobody pays");
    }

    /// M6: the root a flag names is chosen by a fixed rule, the first seat in committee order that voted the
    ///     outcome, not by who revealed first (a racer revealing junk first no longer picks it).
    function test_M6_theFlaggedRootIsTheFirstSeatInCommitteeOrderNotTheFirstReveal() public {
        _rollToEpoch(1);
        protocol.poke();
        uint256[] memory seats = protocol.committee(1, t);
        assertEq(seats.length, 5, "everyone sits");
        // Seat 0 votes OK; the other four FAULT, each with its own root; reveals land in reverse seat order.
        uint8[] memory vs = new uint8[](5);
        uint256 firstFault;
        for (uint256 i; i < 5; ++i) {
            vs[i] = ids[i] == seats[0] ? OK : FAULT;
            if (ids[i] == seats[1]) firstFault = ids[i];
        }
        _castInSeatOrder(vs, seats);
        assertEq(protocol.evidenceRoot(1, t, FAULT), _root(firstFault, FAULT), "the first FAULT seat's root");
        vm.recordLogs();
        assertEq(protocol.settle(1, t), FAULT, "outcome");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 flags;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(protocol) || logs[i].topics[0] != AuditProtocol.ViolationFlagged.selector) {
                continue;
            }
            (uint8 outcome, bytes32 root) = abi.decode(logs[i].data, (uint8, bytes32));
            assertEq(outcome, FAULT, "flagged FAULT");
            assertEq(root, _root(firstFault, FAULT), "the flag names the first FAULT seat's root");
            ++flags;
        }
        assertEq(flags, 1, "one flag");
    }

    /// @dev Like `_cast`, revealing in the reverse of the committee's seat order `seats`.
    function _castInSeatOrder(uint8[] memory vs, uint256[] memory seats) internal {
        for (uint256 i; i < 5; ++i) {
            vm.prank(ops[i]);
            protocol.heartbeat();
            _commitVotes(ops[i], 1, _salt(i), _votesOf(i, vs[i]));
        }
        _rollToReveal(1);
        for (uint256 j = seats.length; j > 0; --j) {
            for (uint256 i; i < 5; ++i) {
                if (ids[i] == seats[j - 1]) protocol.reveal(1, ops[i], _salt(i), _votesOf(i, vs[i]));
            }
        }
        _rollPastReveal(1);
    }
}

/// @notice Security review N1: one commitment opened two ways. With per-license openings in a sorted-pair tree an
///         operator could hold an OK and a FAULT opening of one license under one root and reveal whichever matched
///         the majority. Now the root is one hash of the operator's whole vote list (`commitmentOf`): exactly one
///         (salt, votes) opens it, and any other payload reverts NoCommitment.
contract SecurityN1Test is Deployed {
    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal ids;
    uint256 internal t;
    bytes32 internal constant SALT = keccak256("n1 salt");

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, 3);
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16));
    }

    function _epochOne() internal {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
    }

    function _faultOn(uint256 lic) internal view returns (AuditProtocol.Vote[] memory) {
        return _votes(_vote(lic, t, 2, keccak256(abi.encode("evidence", lic))));
    }

    function _expectNoCommitment(address who, bytes32 salt, AuditProtocol.Vote[] memory votes) internal {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, who));
        protocol.reveal(1, who, salt, votes);
    }

    /// The committed list (license 0 FAULT) opens the root; the OK "opening" of license 0 (nothing listed), another
    /// verdict, another root, another salt, an extra vote, or another operator's name do not.
    function test_N1_oneRootOpensExactlyTheCommittedVoteList() public {
        _epochOne();
        AuditProtocol.Vote[] memory votes = _faultOn(ids[0]);
        _commitVotes(op, 1, SALT, votes);
        _rollToReveal(1);
        _expectNoCommitment(op, SALT, _allOk()); // license 0's OK opening
        _expectNoCommitment(op, SALT, _votes(_vote(ids[0], t, 3, votes[0].evidenceRoot))); // another verdict
        _expectNoCommitment(op, SALT, _votes(_vote(ids[0], t, 2, keccak256("other evidence")))); // another root
        _expectNoCommitment(op, keccak256("other salt"), votes);
        AuditProtocol.Vote[] memory more = new AuditProtocol.Vote[](2);
        (more[0], more[1]) = (votes[0], _vote(ids[1], t, 2, bytes32(0)));
        _expectNoCommitment(op, SALT, more);
        address other = makeAddr("other");
        _expectNoCommitment(other, SALT, votes); // no operator: no root
        assertFalse(protocol.isRevealed(ids[0], 1), "nothing opened");
        protocol.reveal(1, op, SALT, votes);
        (uint8 ok, uint8 fault,, uint8 n,) = protocol.tally(1, t);
        assertEq(fault, 1, "license 0's committed FAULT");
        assertEq(ok, 2, "the other two OK");
        assertEq(n, 3, "three seats revealed");
    }

    /// The old attack, with the new hash: a root over the commitments of two vote lists (one with license 0 OK,
    /// one with it FAULT) opens neither.
    function test_N1_aRootOverTwoVoteListsOpensNeither() public {
        _epochOne();
        bytes32 okRoot = _commitmentOf(1, op, SALT, _allOk());
        bytes32 faultRoot = _commitmentOf(1, op, SALT, _faultOn(ids[0]));
        (bytes32 lo, bytes32 hi) = okRoot < faultRoot ? (okRoot, faultRoot) : (faultRoot, okRoot);
        vm.prank(op);
        protocol.commit(1, keccak256(abi.encode(lo, hi)));
        _rollToReveal(1);
        _expectNoCommitment(op, SALT, _allOk());
        _expectNoCommitment(op, SALT, _faultOn(ids[0]));
        assertFalse(protocol.hasRevealed(op, 1), "neither list");
    }

    /// A later commit in the epoch replaces the root: only the last committed list opens, once; the earlier one
    /// reverts before and after.
    function test_N1_aLaterCommitReplacesTheRootAndOnlyItsListOpens() public {
        _epochOne();
        _commitVotes(op, 1, SALT, _allOk());
        _commitVotes(op, 1, SALT, _faultOn(ids[0]));
        _rollToReveal(1);
        _expectNoCommitment(op, SALT, _allOk());
        protocol.reveal(1, op, SALT, _faultOn(ids[0]));
        _expectNoCommitment(op, SALT, _allOk());
        (uint8 ok, uint8 fault,,,) = protocol.tally(1, t);
        assertEq(fault, 1, "the FAULT list counts");
        assertEq(ok, 2, "two OK");
    }
}
