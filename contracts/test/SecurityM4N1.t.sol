// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {Merkle, IListPositions} from "./utils/Merkle.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Security review M4: FAULT and UNREACHABLE together are "not OK" for the 2/3 supermajority; an
///         INCONCLUSIVE tally prices nobody, even with a strict majority (docs/security.md, docs/protocol.md).
contract SecurityM4Test is Deployed {
    uint8 internal constant OK = 1;
    uint8 internal constant FAULT = 2;
    uint8 internal constant UNREACHABLE = 3;
    uint8 internal constant INCONCLUSIVE = 4;

    address internal owner = makeAddr("owner");
    address[] internal ops;
    uint256[] internal ids;
    uint256 internal t;

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        for (uint256 i; i < 5; ++i) {
            address o = vm.addr(uint256(keccak256(abi.encode("m4 operator", i))));
            ops.push(o);
            ids.push(_operatorWithLicenses(o, 1000, owner, 1)[0]);
        }
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16)); // everyone sits on every committee
    }

    function _opening(uint256 lic, uint8 v) internal view returns (AuditProtocol.Reveal memory r) {
        r.license = lic;
        r.targetIds = _one(t);
        r.verdicts = new uint8[](1);
        r.verdicts[0] = v;
        r.evidenceRoots = new bytes32[](1);
        r.evidenceRoots[0] = keccak256(abi.encode("evidence", lic, v));
        r.salt = keccak256(abi.encode("salt", lic));
    }

    /// @dev Epoch 1: license i (its own operator) votes vs[i] on `t`; all reveal; then the window closes.
    function _votes(uint8[] memory vs) internal returns (uint256[] memory lics) {
        uint256 n = vs.length;
        lics = new uint256[](n);
        _rollToEpoch(1);
        AuditProtocol.Reveal[][] memory trees = new AuditProtocol.Reveal[][](n);
        for (uint256 i; i < n; ++i) {
            lics[i] = ids[i];
            vm.prank(ops[i]);
            protocol.heartbeat();
        }
        for (uint256 i; i < n; ++i) {
            trees[i] = new AuditProtocol.Reveal[](1);
            trees[i][0] = _opening(ids[i], vs[i]);
            _commitTree(ops[i], 1, trees[i]);
        }
        _rollToReveal(1);
        for (uint256 i; i < n; ++i) {
            protocol.revealMany(1, trees[i]);
        }
        _rollPastReveal(1);
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
        _votes(_v(FAULT, FAULT, FAULT, UNREACHABLE, UNREACHABLE));
        uint256[] memory p = _settle(FAULT); // was INCONCLUSIVE: neither verdict alone had 2/3
        assertEq(p.length, 0, "FAULT and UNREACHABLE agree: nobody pays");
    }

    function test_M4_twoFaultThreeUnreachableSettlesUnreachable() public {
        _votes(_v(FAULT, UNREACHABLE, FAULT, UNREACHABLE, UNREACHABLE));
        assertEq(_settle(UNREACHABLE).length, 0, "nobody pays");
        assertEq(protocol.evidenceRoot(1, t, UNREACHABLE), keccak256(abi.encode("evidence", ids[1], UNREACHABLE)), "ev");
    }

    function test_M4_aFaultUnreachableTieSettlesFaultAndPricesTheOkVote() public {
        // 4 not OK of 5 (2 FAULT, 2 UNREACHABLE): FAULT wins the tie; the OK voter disagrees.
        _votes(_v(UNREACHABLE, OK, FAULT, UNREACHABLE, FAULT));
        uint256[] memory p = _settle(FAULT);
        assertEq(p.length, 1, "one penalty");
        assertEq(p[0], ids[1], "the OK voter");
    }

    function test_M4_aSplitPricesNobody_aColludingThirdOnlyKeepsTheTargetUnflagged() public {
        // 3 FAULT + 2 OK: 60% not OK, no supermajority: INCONCLUSIVE, not flagged this epoch, and nobody pays. Pricing
        // a split's minority was tried and charged honest auditors at a fault's onset (docs/protocol.md, "Verdicts").
        _votes(_v(FAULT, FAULT, OK, FAULT, OK));
        assertEq(_settle(INCONCLUSIVE).length, 0, "a split prices nobody");
        (,,,, uint8 outcome) = protocol.tally(1, t);
        assertEq(outcome, INCONCLUSIVE, "the target is not flagged");
    }

    function test_M4_anOkMajorityWithoutSupermajorityPricesNobody() public {
        _votes(_v(OK, FAULT, OK, UNREACHABLE, OK));
        assertEq(_settle(INCONCLUSIVE).length, 0, "3 OK of 5 is no supermajority: nobody pays");
    }

    function test_M4_anEvenSplitPaysNobody() public {
        uint8[] memory vs = new uint8[](4);
        (vs[0], vs[1], vs[2], vs[3]) = (OK, FAULT, OK, UNREACHABLE);
        _votes(vs);
        assertEq(_settle(INCONCLUSIVE).length, 0, "no majority: nobody pays");
    }

    function test_M4_belowMinRevealsPaysNobody() public {
        uint8[] memory vs = new uint8[](2);
        (vs[0], vs[1]) = (FAULT, OK);
        _votes(vs);
        assertEq(_settle(INCONCLUSIVE).length, 0, "too few votes: nobody pays");
    }
}

/// @notice Security review N1: an operator's commitment tree holds at most one opening per license. It used to be
///         a sorted-pair (unordered) tree: an operator could put an OK and a FAULT opening of one license in it and
///         reveal whichever matched the majority. Now each leaf sits at its license's list position.
contract SecurityN1Test is Deployed {
    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal ids;
    uint256 internal t;

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, 3);
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16));
    }

    function _opening(uint256 lic, uint8 v) internal view returns (AuditProtocol.Reveal memory r) {
        r.license = lic;
        r.targetIds = _one(t);
        r.verdicts = new uint8[](1);
        r.verdicts[0] = v;
        r.evidenceRoots = new bytes32[](1);
        r.salt = keccak256(abi.encode("salt", lic, v));
    }

    function _leaf(AuditProtocol.Reveal memory r) internal pure returns (bytes32) {
        return Merkle.leaf(1, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt);
    }

    function _sortedPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function _reveal(AuditProtocol.Reveal memory r, bytes32[] memory proof) internal {
        protocol.reveal(1, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, proof);
    }

    function _epochOne() internal {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
    }

    function test_N1_theSortedPairDoubleOpeningNoLongerReveals() public {
        _epochOne();
        AuditProtocol.Reveal memory good = _opening(ids[0], 1);
        AuditProtocol.Reveal memory bad = _opening(ids[0], 2); // the same license, the other verdict
        bytes32 a = _leaf(good);
        bytes32 b = _leaf(bad);
        bytes32 cd = _sortedPair(_leaf(_opening(ids[1], 1)), _leaf(_opening(ids[2], 1)));
        vm.prank(op);
        protocol.commit(1, _sortedPair(_sortedPair(a, b), cd));
        _rollToReveal(1);
        bytes32[] memory proof = new bytes32[](2);
        (proof[0], proof[1]) = (a, cd);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(bad, proof); // passed OpenZeppelin's sorted-pair check before the fix
        (proof[0], proof[1]) = (b, cd);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(good, proof);
        assertFalse(protocol.isRevealed(ids[0], 1), "neither opening");
    }

    function test_N1_anOrderedTreeOpensOnlyTheLeafAtTheLicensesPosition() public {
        _epochOne();
        // A list of 3: depth 2, the licenses at positions 0, 1, 2; position 3 belongs to nobody.
        (uint256[] memory pos, uint256 d) = Merkle.positions(IListPositions(address(registry)), 1, ids);
        assertEq(d, 2, "depth");
        AuditProtocol.Reveal memory good = _opening(ids[0], 1);
        AuditProtocol.Reveal memory bad = _opening(ids[0], 2);
        // Whatever other position the second opening takes, it cannot be revealed for ids[0].
        for (uint256 q; q < 4; ++q) {
            if (q == pos[0]) continue;
            _rollToEpoch(1);
            bytes32[] memory leaves = new bytes32[](2);
            uint256[] memory at = new uint256[](2);
            (leaves[0], at[0]) = (_leaf(good), pos[0]);
            (leaves[1], at[1]) = (_leaf(bad), q);
            vm.prank(op);
            protocol.commit(1, Merkle.root(leaves, at, d));
            _rollToReveal(1);
            bytes32[] memory proofAtQ = Merkle.proof(leaves, at, d, 1);
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
            _reveal(bad, proofAtQ);
            bytes32[] memory proofAtP = Merkle.proof(leaves, at, d, 0);
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
            _reveal(bad, proofAtP);
            if (q == 3) {
                _reveal(good, proofAtP); // the opening at the license's own position is the one that counts
                (uint8 ok, uint8 fault,, uint8 n,) = protocol.tally(1, t);
                assertEq(ok, 1, "the OK opening");
                assertEq(fault, 0, "not the FAULT one");
                assertEq(n, 1, "one reveal");
            }
        }
    }

    function test_N1_aProofOfTheWrongLengthReverts() public {
        _epochOne();
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](3);
        for (uint256 i; i < 3; ++i) {
            rs[i] = _opening(ids[i], 1);
        }
        _commitTree(op, 1, rs);
        _rollToReveal(1);
        bytes32[] memory longer = new bytes32[](3);
        (longer[0], longer[1]) = (rs[0].proof[0], rs[0].proof[1]);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(rs[0], longer);
        _reveal(rs[0], rs[0].proof);
        assertTrue(protocol.isRevealed(ids[0], 1), "the right proof passes");
    }
}
