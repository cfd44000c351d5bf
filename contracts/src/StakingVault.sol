// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

/// @title StakingVault
/// @notice Stakers deposit the reward token and receive shares (PROTOCOL.md section 8). The RewardVault sends
///         the stakers' share of every fee deposit here, which raises the assets per share.
/// @dev Plain OpenZeppelin ERC4626; the decimals offset blunts the first-depositor inflation attack.
contract StakingVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("Staked Alignment Reward", "sALR") ERC4626(asset_) {}

    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }
}
