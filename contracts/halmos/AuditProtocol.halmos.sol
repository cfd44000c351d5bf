// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {HalmosBase} from "./HalmosBase.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault} from "../src/AuditProtocol.sol";

/// @dev Fixed answers for the protocol's registry, target registry and vault: one operator (index 1) holding
///      every license, a list of two (so every listed license sits on every committee; commitment trees have
///      depth 1), an odd license at list position 1, an even one at 0 (license 0 is not listed), every target
///      enabled, everyone present and active. The checks are about commit/reveal, not sortition.
contract ProtocolWorld is IDelegations, ITargets, IPresenceVault {
    function operatorIndexOf(address) external pure returns (uint256, uint16) {
        return (1, 0);
    }

    function operatorOfAt(uint256, uint256) external pure returns (uint256) {
        return 1;
    }

    function listedCountAt(uint256, uint256) external pure returns (uint256) {
        return 2;
    }

    function positionAt(uint256 tokenId, uint256) external pure returns (uint256, uint256) {
        return (2, tokenId == 0 ? 0 : 1 + (tokenId & 1));
    }

    function licenseAt(uint256 index, uint256) external pure returns (uint256) {
        return index == 0 ? 2 : 1;
    }

    function isEnabledAt(uint256, uint256) external pure returns (bool) {
        return true;
    }

    function trapOutcome(uint256) external pure returns (uint8) {
        return 0;
    }

    function targetCount() external pure returns (uint256) {
        return 4;
    }

    function recordPresence(address, uint256, uint16, uint256, uint256) external {}

    function penalize(uint256[] calldata, uint256, uint8, address) external {}

    function activeCount(uint256) external pure returns (uint256) {
        return 1;
    }

    function isActive(uint256, uint256) external pure returns (bool) {
        return true;
    }

    function isPresent(uint256, uint256) external pure returns (bool) {
        return true;
    }
}

/// @notice Property 2: a commitment opens to one reveal only, and to at most one opening per license (security
///         review N1).
/// @dev An opening is (epoch, license, targetIds, verdicts, evidenceRoots, salt), here with one target each
///      (every field symbolic). Its leaf is keccak256(bytes.concat(keccak256(abi.encode(...)))); halmos treats
///      keccak256 as an injective function whose outputs differ for inputs of different lengths. The tree is
///      ordered: the leaf of the license at list position p is on the left (p = 0) or right (p = 1) of the root.
contract AuditProtocolCheck is HalmosBase {
    uint256 internal constant GENESIS = 100;
    uint32 internal constant LENGTH = 10;

    struct Opening {
        uint256 license;
        uint256 target;
        uint8 verdict;
        bytes32 evidence;
        bytes32 salt;
    }

    function _deploy() internal returns (AuditProtocol ap) {
        vm.roll(GENESIS);
        ProtocolWorld world = new ProtocolWorld();
        ap = new AuditProtocol(world, world, world, GENESIS, LENGTH, bytes32(uint256(1)),
            AuditProtocol.Params(5, 2, 1, 4), address(this));
    }

    /// @dev An opening from five symbolic words (license, target, verdict, evidence root, salt).
    function _opening(uint256[5] calldata f) internal pure returns (Opening memory) {
        return Opening(f[0], f[1], uint8(f[2]), bytes32(f[3]), bytes32(f[4]));
    }

    function _arrays(Opening memory o)
        internal
        pure
        returns (uint256[] memory t, uint8[] memory v, bytes32[] memory ev)
    {
        t = new uint256[](1);
        v = new uint8[](1);
        ev = new bytes32[](1);
        t[0] = o.target;
        v[0] = o.verdict;
        ev[0] = o.evidence;
    }

    function _leaf(uint256 epoch, Opening memory o) internal pure returns (bytes32) {
        (uint256[] memory t, uint8[] memory v, bytes32[] memory ev) = _arrays(o);
        return keccak256(bytes.concat(keccak256(abi.encode(epoch, o.license, t, v, ev, o.salt))));
    }

    function _reveal(AuditProtocol ap, uint256 epoch, Opening memory o, bytes32[] memory proof)
        internal
        returns (bool ok)
    {
        (uint256[] memory t, uint8[] memory v, bytes32[] memory ev) = _arrays(o);
        try ap.reveal(epoch, o.license, t, v, ev, o.salt, proof) {
            ok = true;
        } catch {
            ok = false;
        }
    }

    function _same(Opening memory a, Opening memory b) internal pure returns (bool) {
        return a.license == b.license && a.target == b.target && a.verdict == b.verdict && a.evidence == b.evidence
            && a.salt == b.salt;
    }

    /// @dev The list position of a listed license (the world's rule).
    function _position(uint256 license) internal pure returns (uint256) {
        return license & 1 == 1 ? 1 : 0;
    }

    /// @dev The root of a depth-1 tree with `leaf` at `position` and `other` at the other position.
    function _root(bytes32 leaf, uint256 position, bytes32 other) internal pure returns (bytes32) {
        return position == 0 ? keccak256(abi.encode(leaf, other)) : keccak256(abi.encode(other, leaf));
    }

    /// @notice With the operator's root over the opening A at A's list position and one other leaf `sibling`, a
    ///         reveal (proof of length 0 or 1, symbolic) succeeds only for A itself or for an opening of a license
    ///         at the other position whose leaf is the sibling: no third opening verifies, no inner node passes for
    ///         a leaf, and no other opening of A's license does (N1).
    function check_revealOpensOnlyACommittedLeaf(
        uint256[5] calldata fa,
        bytes32 sibling,
        uint256[5] calldata fb,
        bytes32 proofNode,
        bool withProof
    ) external {
        Opening memory a = _opening(fa);
        Opening memory b = _opening(fb);
        AuditProtocol ap = _deploy();
        bytes32 leafA = _leaf(0, a);
        ap.commit(0, _root(leafA, _position(a.license), sibling));
        vm.roll(GENESIS + LENGTH); // the reveal window of epoch 0
        bytes32[] memory proof = new bytes32[](withProof ? 1 : 0);
        if (withProof) proof[0] = proofNode;
        bool ok = _reveal(ap, 0, b, proof);
        if (ok) {
            assert(_same(a, b) || (_leaf(0, b) == sibling && _position(b.license) != _position(a.license)));
            assert(ap.isRevealed(b.license, 0));
        }
    }

    /// @notice N1: whatever root an operator commits (symbolic) and whatever proofs (symbolic, length 0 or 1),
    ///         two different openings of one license never both verify: the same root, committed to two fresh
    ///         protocols, reveals A on the first and B (same license) on the second only if A = B. (With the
    ///         sorted-pair tree this failed: root = hash of the sorted pair of A's and B's leaves opened both.)
    function check_oneOpeningPerLicense(
        uint256[5] calldata fa,
        uint256[5] calldata fb,
        bytes32 root,
        bytes32 proofA,
        bytes32 proofB,
        bool withProof
    ) external {
        Opening memory a = _opening(fa);
        Opening memory b = _opening(fb);
        b.license = a.license;
        AuditProtocol ap1 = _deploy();
        AuditProtocol ap2 = new AuditProtocol(ap1.registry(), ap1.targets(), ap1.vault(), GENESIS, LENGTH,
            bytes32(uint256(1)), AuditProtocol.Params(5, 2, 1, 4), address(this));
        vm.assume(root != bytes32(0));
        ap1.commit(0, root);
        ap2.commit(0, root);
        vm.roll(GENESIS + LENGTH);
        bytes32[] memory pa = new bytes32[](withProof ? 1 : 0);
        bytes32[] memory pb = new bytes32[](withProof ? 1 : 0);
        if (withProof) (pa[0], pb[0]) = (proofA, proofB);
        if (_reveal(ap1, 0, a, pa) && _reveal(ap2, 0, b, pb)) assert(_same(a, b));
    }

    /// @notice Once a license's opening for an epoch is revealed, no opening (symbolic, with a symbolic proof of
    ///         length 0 or 1) reveals that license for that epoch again, by `reveal` or `revealMany`, and the tally keeps the first reveal's single vote.
    function check_secondRevealFails(uint256[5] calldata fa, uint256[5] calldata fb, bytes32 proofNode, bool withProof)
        external
    {
        Opening memory a = _opening(fa);
        Opening memory b = _opening(fb);
        AuditProtocol ap = _deploy();
        bytes32 other = bytes32(uint256(7));
        ap.commit(0, _root(_leaf(0, a), _position(a.license), other));
        vm.roll(GENESIS + LENGTH);
        bytes32[] memory proofA = new bytes32[](1);
        proofA[0] = other;
        bool first = _reveal(ap, 0, a, proofA);
        vm.assume(first);
        assert(ap.isRevealed(a.license, 0));
        (,,, uint8 reveals,) = ap.tally(0, a.target);
        assert(reveals == 1);

        b.license = a.license;
        bytes32[] memory proof = new bytes32[](withProof ? 1 : 0);
        if (withProof) proof[0] = proofNode;
        assert(!_reveal(ap, 0, b, proof));

        AuditProtocol.Reveal[] memory batch = new AuditProtocol.Reveal[](1);
        (uint256[] memory t, uint8[] memory v, bytes32[] memory ev) = _arrays(b);
        batch[0] = AuditProtocol.Reveal(b.license, t, v, ev, b.salt, proof);
        try ap.revealMany(0, batch) {} catch {}
        (,,, reveals,) = ap.tally(0, a.target);
        assert(reveals == 1);
        (,,, uint8 revealsB,) = ap.tally(0, b.target);
        assert(b.target == a.target ? revealsB == 1 : revealsB == 0);
    }
}
