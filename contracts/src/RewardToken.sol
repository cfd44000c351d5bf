// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title RewardToken
/// @notice A plain ERC20 for the devnet's rewards, fees and staking. The owner mints.
contract RewardToken is ERC20, Ownable {
    constructor(string memory name_, string memory symbol_, address owner_) ERC20(name_, symbol_) Ownable(owner_) {}

    /// @notice Mint `amount` (wei of the token) to `to`. Devnet only: a real network brings its own token.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
