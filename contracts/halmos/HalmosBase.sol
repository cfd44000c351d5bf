// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @notice The cheatcodes the halmos checks use (halmos implements them at forge's cheatcode address).
interface HalmosVm {
    function assume(bool condition) external pure;
    function prank(address sender) external;
    function deal(address account, uint256 newBalance) external;
    function roll(uint256 newHeight) external;
    function warp(uint256 newTimestamp) external;
}

/// @notice halmos's own cheatcodes (at keccak256("svm cheat code")).
interface HalmosSvm {
    /// @dev An id of the account's whole storage: equal ids, the same stored expression in every slot.
    function snapshotStorage(address account) external returns (uint256);
}

/// @notice Base of the symbolic checks (scripts/halmos.sh, docs/halmos.md). Every `check_*` argument is
///         symbolic; a failing `assert` is a counterexample.
abstract contract HalmosBase {
    HalmosVm internal constant vm = HalmosVm(address(uint160(uint256(keccak256("hevm cheat code")))));
    HalmosSvm internal constant svm = HalmosSvm(address(uint160(uint256(keccak256("svm cheat code")))));

    receive() external payable {}
}
