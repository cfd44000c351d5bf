// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./utils/Test.sol";
import {RewardVault, ILicenseOwnersBatch} from "../src/RewardVault.sol";
import {StakingVault} from "../src/StakingVault.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";

contract SecToken is ERC20 {
    constructor() ERC20("Reward", "RWD") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @dev The epoch clock of a fresh vault, moved by hand (it is also the vault's "protocol").
contract SecClock {
    uint256 public currentEpoch;

    function set(uint256 e) external {
        currentEpoch = e;
    }
}

/// @dev The StakingVault before the M7 fix: a plain ERC4626 whose price moves with its token balance. Kept as
///      the control that shows the sandwich test detects the attack.
contract InstantStakingVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("Instant", "INS") ERC4626(asset_) {}

    function _decimalsOffset() internal pure override returns (uint8) {
        return 6;
    }
}

/// @notice Security findings L2 (commission taken before debt repayment) and M7 (fee deposits jump the
///         StakingVault's share price) on a vault wired to a hand-moved clock; this test stands in for the
///         OperatorRegistry (listings) and the license contract (owners).
contract SecurityVaultTest is Test {
    uint256 internal constant DRIP = 1 hours;
    uint256 internal constant EMISSION = 1000 ether;
    uint256 internal constant OP = 1; // operator index
    uint16 internal constant COMMISSION = 1000; // 10%
    uint256 internal constant LIC = 7;

    SecToken internal token;
    SecClock internal clock;
    StakingVault internal staking;
    RewardVault internal vault;

    address internal operator = makeAddr("operator");
    address internal owner = makeAddr("owner");
    address internal staker = makeAddr("staker");
    address internal attacker = makeAddr("attacker");

    function setUp() public {
        vm.warp(1_000_000);
        token = new SecToken();
        clock = new SecClock();
        staking = new StakingVault(IERC20(address(token)), DRIP);
        vault = new RewardVault(
            IERC20(address(token)), address(staking), ILicenseOwnersBatch(address(this)), makeAddr("treasury"),
            _params(), address(this)
        );
        vault.wire(address(clock), address(this));
        token.mint(address(this), 1e30);
        token.approve(address(vault), type(uint256).max);
        vault.fundEmission(1_000_000 ether);
    }

    function _params() internal pure returns (RewardVault.Params memory) {
        return RewardVault.Params({
            nodeShareBps: 7000,
            stakerShareBps: 2000,
            missBountyBps: 0,
            missPenaltyBps: 30_000,
            disagreePenaltyBps: 20_000,
            trapPenaltyBps: 100_000,
            suspendAfter: 0,
            suspendWindow: 10,
            suspendEpochs: 20,
            emissionPerEpoch: uint128(EMISSION)
        });
    }

    /// @dev As the license contract: `owner` owns every license.
    function ownersOf(uint256[] calldata ids) external view returns (address[] memory owners) {
        owners = new address[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            owners[i] = owner;
        }
    }

    function _near(uint256 a, uint256 b, uint256 tol, string memory message) internal pure {
        assertLe(a > b ? a - b : b - a, tol, message);
    }

    function _one(uint256 a) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](1);
        ids[0] = a;
    }

    function _present(uint256 epoch) internal {
        clock.set(epoch);
        vm.prank(address(clock));
        vault.recordPresence(operator, OP, COMMISSION, 1, epoch);
    }

    function _balance(uint256 id) internal returns (int256) {
        vault.settleLicenses(_one(id));
        (int128 b,,,) = vault.accounts(id);
        return b;
    }

    function _stake(address who, uint256 amount) internal returns (uint256 shares) {
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(staking), amount);
        shares = staking.deposit(amount, who);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------------------------------- L2

    /// L2: a license in debt repays it from its whole credit before its operator earns any commission on it; once
    /// repaid, the operator's rate applies only to what is left.
    function test_L2_lazyOperatorWithLicenseInDebtGetsNoCommissionUntilRepaid() public {
        vault.onListed(LIC, OP, 0);
        _present(0); // epoch 0: the only active license, 1000 of credit
        _present(1); // books epoch 0
        assertEq(_balance(LIC), int256(900 ether), "90% of epoch 0");
        assertEq(vault.commissionOf(operator), 100 ether, "10% of epoch 0");
        vm.prank(owner);
        vault.claim(_one(LIC));

        // A miss in epoch 0: 3 x 1000, all of it a debt.
        vm.prank(address(clock));
        vault.penalize(_one(LIC), 0, uint8(1), address(0));
        assertEq(_balance(LIC), -int256(3000 ether), "debt");

        // Epochs 1 and 2: the lazy operator heartbeats; their 1000 each goes entirely to the debt.
        _present(2);
        _present(3);
        assertEq(_balance(LIC), -int256(1000 ether), "2 x 1000 repaid");
        assertEq(vault.commissionOf(operator), 100 ether, "no commission while the license is in debt");
        vm.prank(operator);
        assertEq(vault.claimCommissionFor(_one(LIC)), 100 ether, "only epoch 0's");

        // Epoch 3's budget: 1000 emission + the 2000 repaid. It repays the last 1000; the operator gets 10% of
        // the 2000 left.
        assertEq(vault.commissionClaimable(operator, _one(LIC)), 0, "epoch 3 not over");
        clock.set(4);
        assertEq(vault.claimable(LIC), int256(1800 ether), "view: 2000 left less 10%");
        assertEq(vault.commissionClaimable(operator, _one(LIC)), 200 ether, "view: 10% of what is left");
        vm.prank(operator);
        assertEq(vault.claimCommissionFor(_one(LIC)), 200 ether, "claimed after crediting the license");
        assertEq(_balance(LIC), int256(1800 ether), "license's share of what is left");
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "funding invariant");
        vm.prank(owner);
        assertEq(vault.claim(_one(LIC)), 1800 ether, "owner paid");
    }

    /// The same rule when several epochs in debt are credited at once: the operator's commission is its rate
    /// of the part left after the debt.
    function test_L2_commissionOnlyFromCreditLeftAfterDebtWhenSettledAtOnce() public {
        vault.onListed(LIC, OP, 0);
        _present(0);
        clock.set(1);
        vm.prank(owner);
        assertEq(vault.claim(_one(LIC)), 900 ether, "epoch 0, 90%");
        vm.prank(address(clock));
        vault.penalize(_one(LIC), 0, uint8(2), address(0)); // debt 2000
        _present(1);
        _present(2);
        _present(3);
        clock.set(4);
        // Epochs 1-3: 3000 gross; 2000 repays the debt, 1000 is left: 10% of it.
        vm.prank(operator);
        assertEq(vault.claimCommissionFor(_one(LIC)), 100 ether + 100 ether, "epoch 0's 100 + 10% of 1000");
        assertEq(_balance(LIC), int256(900 ether), "license");
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "funding invariant");
        assertGe(token.balanceOf(address(vault)), vault.totalLiabilities(), "held");
    }

    /// Without debt, commission is unchanged: 10% of every credit, booked as the license is credited.
    function test_L2_noDebtCommissionUnchanged() public {
        vault.onListed(LIC, OP, 0);
        _present(0);
        _present(1);
        clock.set(2);
        assertEq(vault.commissionClaimable(operator, _one(LIC)), 200 ether, "two epochs, projected");
        vm.prank(owner);
        assertEq(vault.claim(_one(LIC)), 1800 ether, "owner 90%");
        vm.prank(operator);
        assertEq(vault.claimCommission(), 200 ether, "operator 10%");
    }

    // ------------------------------------------------------------------------------------------- M7

    /// M7: deposit right before a fee deposit, redeem right after: the attacker gets back no more than it put in.
    function test_M7_sandwichAroundDepositFeesEarnsNothing() public {
        _stake(staker, 1000 ether);
        uint256 shares = _stake(attacker, 1_000_000 ether);
        vault.depositFees(10_000 ether); // 2000 to stakers
        vm.prank(attacker);
        uint256 out = staking.redeem(shares, attacker, attacker);
        assertLe(out, 1_000_000 ether, "no profit in the same block");

        // A block later (12 s of a one-hour drip) the attacker would still get almost nothing.
        uint256 shares2 = _stake(attacker, 1_000_000 ether);
        vault.depositFees(10_000 ether);
        vm.warp(block.timestamp + 12);
        vm.prank(attacker);
        out = staking.redeem(shares2, attacker, attacker);
        // 4000 drip (both deposits) over about DRIP seconds: at most 12 seconds' worth.
        assertLe(out, 1_000_000 ether + 4000 ether * 12 / DRIP, "at most the fees vested while staked");
    }

    /// The control: the same sandwich on the pre-fix vault (price follows the balance) takes most of the fees.
    function test_M7_controlSandwichProfitsOnInstantVault() public {
        InstantStakingVault instant = new InstantStakingVault(IERC20(address(token)));
        token.mint(staker, 1000 ether);
        vm.startPrank(staker);
        token.approve(address(instant), 1000 ether);
        instant.deposit(1000 ether, staker);
        vm.stopPrank();
        token.mint(attacker, 1_000_000 ether);
        vm.startPrank(attacker);
        token.approve(address(instant), 1_000_000 ether);
        uint256 shares = instant.deposit(1_000_000 ether, attacker);
        vm.stopPrank();
        token.mint(address(instant), 2000 ether); // what depositFees sent it
        vm.prank(attacker);
        uint256 out = instant.redeem(shares, attacker, attacker);
        assertGt(out, 1_000_000 ether + 1990 ether, "the attacker took >99% of the stakers' fees");
    }

    /// A staker who stays the whole drip period gets the fees; halfway it has half.
    function test_M7_stakerStayingTheDripPeriodGetsTheFees() public {
        uint256 shares = _stake(staker, 1000 ether);
        vault.depositFees(1000 ether); // 200 to stakers
        assertEq(token.balanceOf(address(staking)), 1200 ether, "fees held");
        _near(staking.convertToAssets(shares), 1000 ether, 1, "nothing vested yet");
        vm.warp(block.timestamp + DRIP / 2);
        _near(staking.convertToAssets(shares), 1100 ether, 1e9, "half vested");
        vm.warp(block.timestamp + DRIP / 2);
        assertEq(staking.totalAssets(), 1200 ether, "all vested");
        vm.prank(staker);
        uint256 out = staking.redeem(shares, staker, staker);
        _near(out, 1200 ether, 1e6, "the staker has the fees");
    }

    /// Tokens sent to the vault directly do not move the price; `sync` (anyone) adds them to the drip.
    function test_M7_directTransferDoesNotJumpThePrice() public {
        uint256 shares = _stake(staker, 1000 ether);
        token.mint(address(staking), 500 ether);
        _near(staking.convertToAssets(shares), 1000 ether, 1, "donation not counted");
        assertEq(staking.sync(), 500 ether, "synced");
        _near(staking.convertToAssets(shares), 1000 ether, 1, "synced, not vested");
        assertEq(staking.sync(), 0, "nothing new");
        vm.warp(block.timestamp + DRIP);
        _near(staking.convertToAssets(shares), 1500 ether, 1e6, "vested");
    }

    /// A dust sync barely postpones fees already dripping (end weighted by amounts).
    function test_M7_dustSyncDoesNotPostponeTheDrip() public {
        _stake(staker, 1000 ether);
        vault.depositFees(1000 ether); // 200
        vm.warp(block.timestamp + DRIP - 60);
        token.mint(address(staking), 1);
        staking.sync();
        vm.warp(block.timestamp + 61);
        assertEq(staking.unvested(), 0, "still ends about when it would have");
    }

    function test_M7_zeroDripPeriodRejected() public {
        vm.expectRevert(StakingVault.ZeroDripPeriod.selector);
        new StakingVault(IERC20(address(token)), 0);
    }

    /// Fuzz: any deposit before and redeem after a fee deposit in the same block returns at most the deposit.
    function testFuzz_M7_sandwichNeverProfits(uint256 stake, uint256 deposit, uint256 fees) public {
        stake = bound(stake, 1, 1e27);
        deposit = bound(deposit, 1, 1e27);
        fees = bound(fees, 1, 1e27);
        _stake(staker, stake);
        uint256 shares = _stake(attacker, deposit);
        vault.depositFees(fees);
        vm.prank(attacker);
        uint256 out = staking.redeem(shares, attacker, attacker);
        assertLe(out, deposit, "no profit");
    }
}
