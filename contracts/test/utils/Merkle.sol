// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @notice The operator's commitment tree of issue 16, built in Solidity for the tests: leaves in the given order,
///         each layer pairs neighbours with sorted-pair (commutative) keccak256, an odd last node moves up
///         unchanged. This is the layout the node builds (alignment_node.protocol.merkle_layers) and what
///         OpenZeppelin's MerkleProof verifies with the sibling path below.
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

    function pair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev The layer above `layer`.
    function _up(bytes32[] memory layer) private pure returns (bytes32[] memory next) {
        next = new bytes32[]((layer.length + 1) / 2);
        for (uint256 i; i < next.length; ++i) {
            uint256 j = 2 * i;
            next[i] = j + 1 < layer.length ? pair(layer[j], layer[j + 1]) : layer[j];
        }
    }

    /// @notice The root over `leaves` (one leaf: the leaf itself).
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        require(leaves.length > 0, "Merkle: no leaves");
        bytes32[] memory layer = leaves;
        while (layer.length > 1) {
            layer = _up(layer);
        }
        return layer[0];
    }

    /// @notice The proof of leaf `index`: its sibling on every layer that has one, bottom up (one leaf: empty).
    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory out) {
        require(index < leaves.length, "Merkle: index");
        bytes32[] memory tmp = new bytes32[](256);
        uint256 n;
        bytes32[] memory layer = leaves;
        while (layer.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < layer.length) tmp[n++] = layer[sibling];
            index /= 2;
            layer = _up(layer);
        }
        out = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = tmp[i];
        }
    }
}
