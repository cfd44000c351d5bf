// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title StakingVault
/// @notice Stakers deposit the reward token and receive shares (PROTOCOL.md section 8). The RewardVault sends
///         the stakers' share of every fee deposit here and calls `sync`; fees then vest linearly over
///         `dripPeriod` seconds, so the assets per share rise gradually and a deposit made just before a fee
///         deposit and redeemed just after it earns (almost) nothing of it.
/// @dev OpenZeppelin ERC4626 with `totalAssets` = the assets the vault accounts for (deposits less withdrawals
///      plus synced fees) less the part of the synced fees not vested yet. Tokens sent to the vault directly are
///      not counted until `sync` (anyone) adds them to the drip, so no transfer moves the share price at once;
///      with the decimals offset this also blunts the first-depositor inflation attack.
contract StakingVault is ERC4626 {
    /// @notice Seconds over which synced fees vest.
    uint256 public immutable dripPeriod;

    /// @notice Assets accounted for: deposits - withdrawals + synced fees (vested or not).
    uint256 public accountedAssets;
    /// @notice The drip: `lockedAmount` unvested at `lastSync`, vesting linearly until `unlockEnd`.
    uint128 public lockedAmount;
    uint64 public lastSync;
    uint64 public unlockEnd;

    event FeesSynced(uint256 amount, uint256 locked, uint256 unlockEnd);

    error ZeroDripPeriod();

    constructor(IERC20 asset_, uint256 dripPeriod_)
        ERC20("Staked Alignment Reward", "sALR")
        ERC4626(asset_)
    {
        if (dripPeriod_ == 0) revert ZeroDripPeriod();
        dripPeriod = dripPeriod_;
    }

    /// @notice Add the tokens received since the last sync (fees, donations) to the drip. The part of earlier
    ///         fees still unvested and the new amount vest together until an end weighted by their amounts
    ///         (remaining time of the old part, `dripPeriod` for the new), so a dust sync cannot postpone the
    ///         vesting of earlier fees noticeably.
    function sync() external returns (uint256 added) {
        uint256 balance = IERC20(asset()).balanceOf(address(this));
        uint256 accounted = accountedAssets;
        if (balance <= accounted) return 0;
        added = balance - accounted;
        uint256 remaining = unvested();
        uint256 remainingTime = remaining == 0 ? 0 : unlockEnd - block.timestamp;
        uint256 locked = remaining + added;
        uint256 end = block.timestamp + (remaining * remainingTime + added * dripPeriod) / locked;
        accountedAssets = accounted + added;
        lockedAmount = SafeCast.toUint128(locked);
        lastSync = uint64(block.timestamp);
        unlockEnd = SafeCast.toUint64(end);
        emit FeesSynced(added, locked, end);
    }

    /// @notice Synced fees not vested yet (rounded up, so `totalAssets` never counts unvested wei).
    function unvested() public view returns (uint256) {
        uint256 end = unlockEnd;
        if (block.timestamp >= end) return 0;
        return Math.mulDiv(lockedAmount, end - block.timestamp, end - lastSync, Math.Rounding.Ceil);
    }

    function totalAssets() public view override returns (uint256) {
        return accountedAssets - unvested();
    }

    function _deposit(address caller, address receiver, uint256 assets, uint256 shares) internal override {
        super._deposit(caller, receiver, assets, shares);
        accountedAssets += assets;
    }

    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
    {
        accountedAssets -= assets;
        super._withdraw(caller, receiver, owner, assets, shares);
    }

    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }
}
