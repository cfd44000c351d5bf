// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {HalmosBase} from "./HalmosBase.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault} from "../src/AuditProtocol.sol";

/// @dev Fixed answers for the protocol's registry, target registry and vault: one operator (index 1) holding
///      every license, a list of one (so every listed license sits on every committee), every target enabled,
///      everyone present and active. The checks are about commit/reveal, not sortition.
contract ProtocolWorld is IDelegations, ITargets, IPresenceVault {
    function operatorIndexOf(address) external pure returns (uint256, uint16) {
        return (1, 0);
    }

    function operatorOfAt(uint256, uint256) external pure returns (uint256) {
        return 1;
    }

    function listedCountAt(uint256, uint256) external pure returns (uint256) {
        return 1;
    }

    function positionAt(uint256 tokenId, uint256) external pure returns (uint256, uint256) {
        return (1, tokenId == 0 ? 0 : 1);
    }

    function licenseAt(uint256, uint256) external pure returns (uint256) {
        return 1;
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

/// @notice Property 2: a commitment opens to one reveal only.
/// @dev An opening is (epoch, license, targetIds, verdicts, evidenceRoots, salt), here with one target each
///      (every field symbolic). Its leaf is keccak256(bytes.concat(keccak256(abi.encode(...)))); halmos treats
///      keccak256 as an injective function whose outputs differ for inputs of different lengths.
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

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @notice With the operator's root over the opening A and one other leaf `sibling`, a reveal (proof of
    ///         length 0 or 1, symbolic) succeeds only for A itself or for the sibling leaf: no third opening
    ///         verifies, and no inner node passes for a leaf.
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
        ap.commit(0, _hashPair(leafA, sibling));
        vm.roll(GENESIS + LENGTH); // the reveal window of epoch 0
        bytes32[] memory proof = new bytes32[](withProof ? 1 : 0);
        if (withProof) proof[0] = proofNode;
        bool ok = _reveal(ap, 0, b, proof);
        if (ok) {
            assert(_same(a, b) || _leaf(0, b) == sibling);
            assert(ap.isRevealed(b.license, 0));
        }
    }

    /// @notice Once a license's opening for an epoch is revealed, no opening (symbolic, with a symbolic proof of
    ///         length 0 or 1) reveals that license for that epoch again, by `reveal` or `revealMany`, and the tally keeps the first reveal's single vote.
    function check_secondRevealFails(uint256[5] calldata fa, uint256[5] calldata fb, bytes32 proofNode, bool withProof)
        external
    {
        Opening memory a = _opening(fa);
        Opening memory b = _opening(fb);
        AuditProtocol ap = _deploy();
        ap.commit(0, _leaf(0, a));
        vm.roll(GENESIS + LENGTH);
        bool first = _reveal(ap, 0, a, new bytes32[](0));
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
