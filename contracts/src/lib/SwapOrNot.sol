// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @title SwapOrNot
/// @notice The swap-or-not permutation of ethereum/consensus-specs (`compute_shuffled_index`, 90 rounds), with
///         keccak256 where the specification uses sha256. Byte order as in the specification: the pivot is the
///         first 8 bytes of the round's hash read little-endian, the position block is a little-endian uint32.
///         `alignment_node.protocol.shuffled_index` is the same function (tests/test_committees.py holds it to
///         the specification's known answers with sha256, and to this library with keccak256).
library SwapOrNot {
    uint256 internal constant ROUNDS = 90;

    /// @notice Where `index` goes in the permutation of `count` items under `seed` (`index < count < 2**32`).
    function shuffle(uint256 index, uint256 count, bytes32 seed) internal pure returns (uint256) {
        return _rounds(index, count, seed, pivots(count, seed), false);
    }

    /// @notice The inverse of `shuffle`: each round swaps a pair or not, so the rounds run backwards.
    function unshuffle(uint256 index, uint256 count, bytes32 seed) internal pure returns (uint256) {
        return _rounds(index, count, seed, pivots(count, seed), true);
    }

    /// @notice `unshuffle` with the rounds' pivots computed beforehand (`pivots(count, seed)`), for many
    ///         positions of one list.
    function unshuffleWith(uint256 index, uint256 count, bytes32 seed, uint256[] memory ps)
        internal
        pure
        returns (uint256)
    {
        return _rounds(index, count, seed, ps, true);
    }

    /// @notice `shuffle` with the rounds' pivots computed beforehand.
    function shuffleWith(uint256 index, uint256 count, bytes32 seed, uint256[] memory ps)
        internal
        pure
        returns (uint256)
    {
        return _rounds(index, count, seed, ps, false);
    }

    /// @notice The 90 rounds' pivots for `count` items under `seed`: the first 8 bytes of
    ///         keccak256(seed, round), little-endian, modulo `count`.
    function pivots(uint256 count, bytes32 seed) internal pure returns (uint256[] memory ps) {
        ps = new uint256[](ROUNDS);
        assembly ("memory-safe") {
            mstore(0x00, seed)
            for { let r := 0 } lt(r, 90) { r := add(r, 1) } {
                mstore(0x20, shl(248, r))
                let p := shr(192, keccak256(0x00, 33))
                p := or(shr(8, and(p, 0xFF00FF00FF00FF00)), shl(8, and(p, 0x00FF00FF00FF00FF)))
                p := or(shr(16, and(p, 0xFFFF0000FFFF0000)), shl(16, and(p, 0x0000FFFF0000FFFF)))
                p := and(or(shr(32, p), shl(32, p)), 0xFFFFFFFFFFFFFFFF)
                mstore(add(add(ps, 0x20), shl(5, r)), mod(p, count))
            }
        }
    }

    /// @dev The 90 rounds (backwards: 89 down to 0) in the scratch space: seed at 0x00, then the round byte and
    ///      the position's block of 256 as 4 little-endian bytes (one word written at 0x20) for the source hash.
    function _rounds(uint256 index, uint256 count, bytes32 seed, uint256[] memory ps, bool backwards)
        private
        pure
        returns (uint256)
    {
        assembly ("memory-safe") {
            mstore(0x00, seed)
            for { let i := 0 } lt(i, 90) { i := add(i, 1) } {
                let r := i
                if backwards { r := sub(89, i) }
                let flip := mod(sub(add(mload(add(add(ps, 0x20), shl(5, r))), count), index), count)
                let position := index
                if gt(flip, index) { position := flip }
                let b := shr(8, position)
                let le := or(
                    or(shl(24, and(b, 0xFF)), shl(16, and(shr(8, b), 0xFF))),
                    or(shl(8, and(shr(16, b), 0xFF)), and(shr(24, b), 0xFF))
                )
                mstore(0x20, or(shl(248, r), shl(216, le)))
                if and(shr(and(position, 7), byte(shr(3, and(position, 0xFF)), keccak256(0x00, 37))), 1) {
                    index := flip
                }
            }
        }
        return index;
    }
}
