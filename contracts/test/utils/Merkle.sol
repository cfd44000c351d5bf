// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @dev What the tree layout needs from the OperatorRegistry.
interface IListPositions {
    function positionAt(uint256 tokenId, uint256 epoch) external view returns (uint256 listed, uint256 position);
}

/// @notice The operator's commitment tree (issue 16, ordered since security review N1), built in Solidity for the
///         tests: a tree of depth d (the least d with 2**d >= the epoch's list length) whose leaf at position p is
///         the opening of the license at list position p; inner nodes hash (left, right) in that order; empty
///         subtrees are zero and a node over two empty subtrees is zero. This is the layout the node builds
///         (alignment_node.protocol.merkle_layers) and what AuditProtocol._verifyAt checks.
library Merkle {
    /// @notice A license's leaf: its opening hashed twice, so no inner node can pass for a leaf.
    function leaf(
        uint256 epoch,
        uint256 license,
        uint256[] memory targetIds,
        uint8[] memory verdicts,
        bytes32[] memory evidenceRoots,
        bytes32 salt
    ) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(epoch, license, targetIds, verdicts, evidenceRoots, salt))));
    }

    /// @notice An inner node over its left and right children.
    function node(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return keccak256(abi.encode(left, right));
    }

    /// @notice The depth of the trees of an epoch whose list holds `listed` licenses.
    function depth(uint256 listed) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < listed) ++d;
    }

    /// @notice The tree positions of `licenses` in `epoch` (list position - 1; type(uint256).max for a license
    ///         that is not listed: it has no place in the tree) and the epoch's tree depth.
    function positions(IListPositions registry, uint256 epoch, uint256[] memory licenses)
        internal
        view
        returns (uint256[] memory pos, uint256 d)
    {
        pos = new uint256[](licenses.length);
        uint256 listed;
        for (uint256 i; i < licenses.length; ++i) {
            uint256 p;
            (listed, p) = registry.positionAt(licenses[i], epoch);
            pos[i] = p == 0 ? type(uint256).max : p - 1;
        }
        if (licenses.length == 0) (listed,) = registry.positionAt(0, epoch);
        d = depth(listed);
    }

    /// @notice The root over `leaves` at `pos` (leaves whose position is outside the tree are left out).
    function root(bytes32[] memory leaves, uint256[] memory pos, uint256 d) internal pure returns (bytes32 r) {
        (r,) = _build(leaves, pos, d, 0);
    }

    /// @notice The proof of leaf `i`: its sibling on every level, bottom up (zero for an empty subtree).
    function proof(bytes32[] memory leaves, uint256[] memory pos, uint256 d, uint256 i)
        internal
        pure
        returns (bytes32[] memory path)
    {
        (, path) = _build(leaves, pos, d, pos[i]);
    }

    /// @notice The root of a tree holding the one leaf `l` at position `p`.
    function soloRoot(bytes32 l, uint256 p, uint256 d) internal pure returns (bytes32 r) {
        r = l;
        for (uint256 i; i < d; ++i) {
            r = (p >> i) & 1 == 0 ? node(r, bytes32(0)) : node(bytes32(0), r);
        }
    }

    /// @dev The root, and the path of the leaf at position `target`.
    function _build(bytes32[] memory leaves, uint256[] memory pos, uint256 d, uint256 target)
        private
        pure
        returns (bytes32 r, bytes32[] memory path)
    {
        require(leaves.length == pos.length, "Merkle: lengths");
        uint256 n;
        uint256[] memory ps = new uint256[](leaves.length);
        bytes32[] memory vs = new bytes32[](leaves.length);
        for (uint256 i; i < leaves.length; ++i) {
            if (d < 256 && pos[i] >> d != 0) continue; // outside the tree
            // insertion sort by position
            uint256 j = n++;
            while (j > 0 && ps[j - 1] > pos[i]) {
                (ps[j], vs[j]) = (ps[j - 1], vs[j - 1]);
                --j;
            }
            require(j == 0 || ps[j - 1] != pos[i], "Merkle: two leaves at one position");
            (ps[j], vs[j]) = (pos[i], leaves[i]);
        }
        path = new bytes32[](d);
        for (uint256 level; level < d; ++level) {
            for (uint256 j; j < n; ++j) {
                if (ps[j] == target ^ 1) path[level] = vs[j];
            }
            uint256 m;
            for (uint256 j; j < n;) {
                uint256 p = ps[j];
                bytes32 left;
                bytes32 right;
                if (p & 1 == 0) {
                    left = vs[j];
                    if (j + 1 < n && ps[j + 1] == p + 1) {
                        right = vs[j + 1];
                        ++j;
                    }
                } else {
                    right = vs[j];
                }
                ++j;
                (ps[m], vs[m]) = (p >> 1, node(left, right));
                ++m;
            }
            n = m;
            target >>= 1;
        }
        r = n == 0 ? bytes32(0) : vs[0];
    }
}
