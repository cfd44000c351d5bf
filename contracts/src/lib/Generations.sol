// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @title Generations
/// @notice A uint32 value whose writes take effect at a later epoch, readable as it was in recent epochs: one
///         storage word holds its last four generations, each (value uint32, effective-from epoch uint32), the
///         newest in the low 64 bits. A write effective from epoch `e1` replaces the newest generation if that
///         one is also effective from `e1`, else pushes a generation (the oldest drops out). A read for epoch
///         `e` returns the newest generation effective at `e`; it reverts when the four kept are all newer.
///         With writes effective from the next epoch, epoch `e`'s value stays readable until the end of
///         epoch `e + 2` whatever is written meanwhile. An untouched word reads 0 for every epoch.
library Generations {
    error HistoryLost(uint256 epoch);

    /// @notice `word` with `value` effective from epoch `from`.
    function write(uint256 word, uint256 value, uint256 from) internal pure returns (uint256) {
        if (uint32(word >> 32) == from) return (word & ~uint256(0xFFFFFFFF)) | uint32(value);
        return (word << 64) | (from << 32) | uint32(value);
    }

    /// @notice The value in effect at epoch `epoch`.
    function valueAt(uint256 word, uint256 epoch) internal pure returns (uint256) {
        for (uint256 i; i < 4; ++i) {
            uint256 g = word >> (64 * i);
            if (uint32(g >> 32) <= epoch) return uint32(g);
        }
        revert HistoryLost(epoch);
    }

    /// @notice The latest value written (whenever it takes effect).
    function latest(uint256 word) internal pure returns (uint256) {
        return uint32(word);
    }
}
