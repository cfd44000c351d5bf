// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {HalmosBase} from "./HalmosBase.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault} from "../src/AuditProtocol.sol";

/// @dev Fixed answers for the protocol's registry, target registry and vault: one operator (index 1) holding
///      every license, a list of two (licenses 2 and 1, in that order: every committee is those two seats), every
///      target enabled, everyone present and active. The checks are about commit/reveal, not sortition.
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

/// @notice Property 2: a commitment opens to exactly one vote list, once, and the votes counted are the committed
///         ones (issue 16: one hash per operator and epoch, `commitmentOf`; security review N1 and H1).
/// @dev A vote list has 0, 1 or 2 votes (the length symbolic), each (license, target, verdict, evidence root)
///      symbolic; the salt and the revealed operator's address are symbolic too. halmos models keccak256 as an
///      injective function whose outputs differ for inputs of different lengths.
contract AuditProtocolCheck is HalmosBase {
    uint256 internal constant GENESIS = 100;
    uint32 internal constant LENGTH = 10;

    function _deploy() internal returns (AuditProtocol ap) {
        vm.roll(GENESIS);
        ProtocolWorld world = new ProtocolWorld();
        ap = new AuditProtocol(world, world, world, GENESIS, LENGTH, bytes32(uint256(1)),
            AuditProtocol.Params(5, 2, 1, 4), address(this));
    }

    /// @dev A list of `n` (at most 2) votes, vote i from the four symbolic words f[i]. (Each length a branch of its
    ///      own: halmos allocates memory of concrete sizes only.)
    function _list(uint256[4][2] calldata f, uint256 n) internal pure returns (AuditProtocol.Vote[] memory v) {
        if (n == 0) v = new AuditProtocol.Vote[](0);
        else if (n == 1) v = new AuditProtocol.Vote[](1);
        else v = new AuditProtocol.Vote[](2);
        for (uint256 i; i < v.length; ++i) {
            v[i] = AuditProtocol.Vote(f[i][0], f[i][1], uint8(f[i][2]), bytes32(f[i][3]));
        }
    }

    function _sameVotes(AuditProtocol.Vote[] memory a, AuditProtocol.Vote[] memory b) internal pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 i; i < a.length; ++i) {
            if (
                a[i].license != b[i].license || a[i].targetId != b[i].targetId || a[i].verdict != b[i].verdict
                    || a[i].evidenceRoot != b[i].evidenceRoot
            ) return false;
        }
        return true;
    }

    /// @dev This contract (the operator) commits the hash of `votes` under `salt` for epoch 0, then the chain
    ///      moves into epoch 0's reveal window.
    function _committed(bytes32 salt, AuditProtocol.Vote[] memory votes) internal returns (AuditProtocol ap) {
        ap = _deploy();
        bytes32 root = keccak256(abi.encode(uint256(0), address(this), salt, votes));
        assert(root == ap.commitmentOf(0, address(this), salt, votes));
        vm.assume(root != bytes32(0));
        ap.commit(0, root);
        vm.roll(GENESIS + LENGTH);
    }

    function _reveal(AuditProtocol ap, address operator, bytes32 salt, AuditProtocol.Vote[] memory votes)
        internal
        returns (bool ok, bytes memory err)
    {
        try ap.reveal(0, operator, salt, votes) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
    }

    /// @notice The operator commits list A under salt sA; a reveal of (operator B, salt sB, list B), all symbolic,
    ///         succeeds only if it is (the operator, sA, A) field for field; any other payload reverts exactly
    ///         NoCommitment(0, B's operator). The committed payload itself never reverts NoCommitment (it may
    ///         revert for an invalid list: unsorted, a verdict other than FAULT, UNREACHABLE or NO_VOTE). So one
    ///         commitment opens to one vote list: no OK and FAULT of one license under one root (N1).
    function check_aCommitmentOpensToExactlyOneVoteList(
        bytes32 sA,
        uint256[4][2] calldata fa,
        uint8 na,
        address opB,
        bytes32 sB,
        uint256[4][2] calldata fb,
        uint8 nb
    ) external {
        vm.assume(na <= 2 && nb <= 2);
        AuditProtocol.Vote[] memory a = _list(fa, na);
        AuditProtocol.Vote[] memory b = _list(fb, nb);
        AuditProtocol ap = _committed(sA, a);
        bool same = opB == address(this) && sB == sA && _sameVotes(a, b);
        (bool ok, bytes memory err) = _reveal(ap, opB, sB, b);
        if (ok) {
            assert(same);
            assert(ap.hasRevealed(address(this), 0));
        } else if (same) {
            assert(bytes4(err) != AuditProtocol.NoCommitment.selector);
        } else {
            assert(keccak256(err) == keccak256(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 0, opB)));
        }
    }

    /// @notice After the operator's list A is revealed, a second reveal of any payload (symbolic operator, salt and
    ///         list) changes nothing: the protocol's whole storage is the same after it (so every vote, tally,
    ///         seed and commitment reads as before), and the committed payload sent again (a copy, a retry) does
    ///         not revert (security review H1). (The same storage: halmos's storage snapshot, equal only when
    ///         every slot holds the same expression; a rewrite of a different value in any slot breaks it.)
    function check_aSecondRevealChangesNothing(
        bytes32 sA,
        uint256[4][2] calldata fa,
        uint8 na,
        address opB,
        bytes32 sB,
        uint256[4][2] calldata fb,
        uint8 nb
    ) external {
        vm.assume(na <= 2 && nb <= 2);
        AuditProtocol.Vote[] memory a = _list(fa, na);
        AuditProtocol.Vote[] memory b = _list(fb, nb);
        AuditProtocol ap = _committed(sA, a);
        (bool first,) = _reveal(ap, address(this), sA, a);
        vm.assume(first);
        uint256 before = svm.snapshotStorage(address(ap));

        (bool again,) = _reveal(ap, opB, sB, b);
        if (opB == address(this) && sB == sA && _sameVotes(a, b)) assert(again);
        assert(svm.snapshotStorage(address(ap)) == before);
        assert(ap.hasRevealed(address(this), 0));
    }

    /// @notice The votes counted are the committed ones: after the operator reveals list A, each seat of target
    ///         `qt` (licenses 2 and 1) counts the verdict A lists for it, or OK when A lists none (NO_VOTE: not
    ///         revealed); a vote A lists for a license off the committee counts nowhere; `voteOf` returns A's vote.
    function check_theVotesCountedAreTheCommittedOnes(bytes32 sA, uint256[4][2] calldata fa, uint8 na, uint256 qt)
        external
    {
        vm.assume(na <= 2 && qt < 4);
        AuditProtocol.Vote[] memory a = _list(fa, na);
        AuditProtocol ap = _committed(sA, a);
        (bool revealed,) = _reveal(ap, address(this), sA, a);
        vm.assume(revealed);
        uint256[3] memory want; // OK, FAULT, UNREACHABLE
        uint256 reveals;
        for (uint256 seat = 2; seat >= 1; --seat) {
            uint8 v = 1;
            bool found;
            for (uint256 i; i < a.length; ++i) {
                if (a[i].targetId == qt && a[i].license == seat) {
                    assert(!found); // the list is strictly sorted: one vote per (target, license)
                    (v, found) = (a[i].verdict, true);
                }
            }
            (bool listed, uint8 verdict, bytes32 root) = ap.voteOf(0, qt, seat);
            assert(listed == found);
            if (found) assert(verdict == v && root == _rootOf(a, qt, seat));
            if (v != 0) {
                ++reveals;
                ++want[v - 1];
            }
        }
        (uint8 ok, uint8 fault, uint8 unreachable, uint8 n,) = ap.tally(0, qt);
        assert(ok == want[0] && fault == want[1] && unreachable == want[2] && n == reveals);
    }

    function _rootOf(AuditProtocol.Vote[] memory a, uint256 t, uint256 lic) internal pure returns (bytes32) {
        for (uint256 i; i < a.length; ++i) {
            if (a[i].targetId == t && a[i].license == lic) return a[i].evidenceRoot;
        }
        return bytes32(0);
    }
}
