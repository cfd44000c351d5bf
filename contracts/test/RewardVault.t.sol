// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {RewardVault, ILicenseOwnersBatch} from "../src/RewardVault.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @dev An epoch clock the tests move by hand, standing in for the AuditProtocol of a fresh vault.
contract ManualClock {
    uint256 public currentEpoch;

    function set(uint256 e) external {
        currentEpoch = e;
    }
}

/// @dev An ERC20 that calls the receiver back on every transfer to an opted-in contract (ERC777-like).
contract HookToken is ERC20 {
    mapping(address => bool) public hooked;

    constructor() ERC20("Hook", "HOOK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setHooked(address who) external {
        hooked[who] = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (hooked[to]) GreedyClaimer(to).onTokenReceived(value);
    }
}

/// @dev Operator and license owner at once; tries to claim again from inside the token callback.
contract GreedyClaimer {
    RewardVault internal immutable vault;
    uint256[] internal ids;
    uint256 public reentries;
    uint256 public reentrySucceeded;
    bytes public lastError;

    constructor(RewardVault vault_) {
        vault = vault_;
    }

    function setIds(uint256[] calldata ids_) external {
        ids = ids_;
    }

    function claim() external returns (uint256) {
        return vault.claim(ids);
    }

    function claimCommission() external returns (uint256) {
        return vault.claimCommission();
    }

    function onTokenReceived(uint256) external {
        reentries += 1;
        try vault.claim(ids) {
            reentrySucceeded += 1;
        } catch (bytes memory err) {
            lastError = err;
        }
        try vault.claimCommission() {
            reentrySucceeded += 1;
        } catch (bytes memory err) {
            lastError = err;
        }
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return 0x150b7a02;
    }
}

contract RewardVaultTest is Deployed {
    uint8 internal constant MISS = 1;
    uint8 internal constant DISAGREE = 2;
    uint8 internal constant TRAP = 3;

    address internal op = makeAddr("op");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal reporter = makeAddr("reporter");
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        _deploy();
    }

    // ----------------------------------------------------------------------------------- helpers

    /// @dev The license's balance once everything it earned in final epochs is booked (credit is lazy).
    function _balance(uint256 id) internal returns (int256 bal) {
        vault.settleLicenses(_one(id));
        (int128 b,,,) = vault.accounts(id);
        bal = b;
    }

    function _perLicense(uint256 epoch) internal view returns (uint256 per) {
        (uint128 p,,) = vault.epochs(epoch);
        per = p;
    }

    function _heartbeat(address operator) internal {
        vm.prank(operator);
        protocol.heartbeat();
    }

    function _penalize(uint256[] memory ids, uint256 epoch, uint8 kind, address who) internal {
        vm.prank(address(protocol));
        vault.penalize(ids, epoch, kind, who);
    }

    function _two(uint256 a, uint256 b) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](2);
        ids[0] = a;
        ids[1] = b;
    }

    function _salt(uint256 e) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", e));
    }

    /// @dev The operator's votes on target `t`: verdict `vs[i]` of `lics[i]` (licenses increasing), those not OK
    ///      listed (NO_VOTE: the license did not audit `t`).
    function _votesOn(uint256[] memory lics, uint256 t, uint8[] memory vs)
        internal
        pure
        returns (AuditProtocol.Vote[] memory votes)
    {
        votes = new AuditProtocol.Vote[](lics.length);
        uint256 m;
        for (uint256 i; i < lics.length; ++i) {
            if (vs[i] != 1) votes[m++] = _vote(lics[i], t, vs[i], bytes32(0));
        }
        assembly {
            mstore(votes, m)
        }
    }

    /// @dev The operator commits, for the current epoch, verdict `vs[i]` of `lics[i]` on target `t`.
    function _commit(address operator, uint256[] memory lics, uint256 t, uint8[] memory vs) internal {
        uint256 e = protocol.currentEpoch();
        _commitVotes(operator, e, _salt(e), _votesOn(lics, t, vs));
    }

    /// @dev The operator's one license `lic` votes OK on `t`, `missed` (its other license) did not audit it.
    function _okAndMissed(uint256 lic, uint256 missed)
        internal
        pure
        returns (uint256[] memory lics, uint8[] memory vs)
    {
        lics = _two(lic, missed);
        vs = new uint8[](2);
        (vs[0], vs[1]) = (1, 0);
        if (missed < lic) (lics[0], lics[1], vs[0], vs[1]) = (missed, lic, 0, 1);
    }

    /// @dev The operator reveals what `_commit` committed for epoch `e`.
    function _reveal(address operator, uint256 e, uint256[] memory lics, uint256 t, uint8[] memory vs) internal {
        protocol.reveal(e, operator, _salt(e), _votesOn(lics, t, vs));
    }

    // ------------------------------------------------------------------------------- fee split

    function test_depositFeesWithNobodyStakedSendsStakersShareToTreasury() public {
        _depositFees(1000 ether);
        assertEq(vault.pool(), 700 ether, "70% to the epoch budget");
        assertEq(vault.treasuryBalance(), 300 ether, "20% stakers + 10% treasury");
        assertEq(token.balanceOf(address(staking)), 0, "nothing to an empty staking vault");
        assertEq(vault.totalFunded(), 700 ether, "funded to licenses");
        assertEq(token.balanceOf(address(vault)), 1000 ether, "vault holds everything");

        vm.prank(stranger);
        assertEq(vault.withdrawTreasury(), 300 ether, "withdrawn");
        assertEq(token.balanceOf(treasury), 300 ether, "to the treasury, whoever calls");
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vault.withdrawTreasury();
    }

    function test_depositFeesRaisesStakingSharePriceWhenSomeoneStaked() public {
        address staker = makeAddr("staker");
        token.mint(staker, 1000 ether);
        vm.startPrank(staker);
        token.approve(address(staking), 1000 ether);
        uint256 shares = staking.deposit(1000 ether, staker);
        vm.stopPrank();
        // ERC4626 with a decimals offset of 6: 10^6 shares per wei on an empty vault.
        assertEq(shares, 1000 ether * 1e6, "shares");
        assertEq(staking.convertToAssets(shares), 1000 ether, "price before");

        _depositFees(1000 ether);
        assertEq(token.balanceOf(address(staking)), 1200 ether, "20% to stakers");
        assertEq(vault.treasuryBalance(), 100 ether, "10% to treasury");
        assertEq(vault.pool(), 700 ether, "70% to licenses");
        // The fees vest over the drip period (security finding M7): no jump at the deposit.
        assertEq(staking.convertToAssets(shares), 1000 ether, "price at the deposit");
        vm.warp(block.timestamp + STAKING_DRIP);
        // assets = shares * (totalAssets + 1) / (totalSupply + 10^6), rounded down.
        uint256 expected = shares * (1200 ether + 1) / (shares + 1e6);
        assertEq(staking.convertToAssets(shares), expected, "price after");
        assertGt(expected, 1199.99 ether, "the staker owns the fee share");
        vm.prank(staker);
        assertEq(staking.redeem(shares, staker, staker), expected, "redeemed");
    }

    function testFuzz_depositFeesSplitAddsUpToTheAmount(uint256 amount) public {
        amount = bound(amount, 1, 1e40);
        _depositFees(amount);
        uint256 toLicenses = amount * 7000 / 10_000;
        assertEq(vault.pool(), toLicenses, "licenses");
        assertEq(vault.totalFunded(), toLicenses, "funded");
        assertEq(vault.treasuryBalance(), amount - toLicenses, "treasury takes stakers' share and rest");
        assertEq(token.balanceOf(address(vault)), amount, "held");
    }

    function test_fundEmissionAndDepositFeesRejectZero() public {
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAmount.selector));
        vault.fundEmission(0);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAmount.selector));
        vault.depositFees(0);
    }

    function test_fundEmissionFillsTheReserve() public {
        _fundEmission(2500 ether);
        assertEq(vault.emissionReserve(), 2500 ether, "reserve");
        assertEq(vault.totalFunded(), 2500 ether, "funded");
        assertEq(vault.pool(), 0, "not in a budget yet");
    }

    // --------------------------------------------------------------------------------- budgets

    /// Budgets of epochs with no active license, and the emission of epochs nobody touched, carry into the
    /// next epoch that has licenses; its credit is budget / activeCount with the remainder carried on.
    function test_budgetCarriesOverEmptyAndUntouchedEpochs() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 1000, alice, 3);

        _rollToEpoch(1);
        _depositFees(500 ether); // 350 to epoch 1; epoch 0 (no license) carries its 1000
        assertEq(vault.pool(), 1350 ether, "epoch 1 so far");
        assertEq(vault.poolEpoch(), 1, "accumulating epoch");

        _rollToEpoch(3); // epoch 2 untouched
        _heartbeat(op);
        // Epoch 1 (no license): 1350 + 1000; epoch 2's emission: 1000.
        assertEq(vault.pool(), 3350 ether, "carried into epoch 3");
        assertEq(vault.emissionReserve(), 100_000 ether - 3000 ether, "three emissions drawn");
        (, uint32 count1, bool fin1) = vault.epochs(1);
        assertEq(count1, 0, "epoch 1 empty");
        assertTrue(fin1, "epoch 1 finalized");
        assertEq(vault.activeCount(3), 3, "three active");
        _depositFees(1000 ether);

        _rollToEpoch(4);
        vault.poke();
        uint256 budget = 3350 ether + 700 ether + 1000 ether;
        uint256 per = budget / 3;
        assertEq(_perLicense(3), per, "credit per license");
        assertEq(vault.pool(), budget - 3 * per, "division remainder carried");
        assertEq(vault.pool(), 1, "one wei");

        vm.prank(alice);
        uint256 paid = vault.claim(ids);
        uint256 commission = per * 1000 / 10_000;
        assertEq(paid, 3 * (per - commission), "owner's 90%");
        assertEq(vault.commissionOf(op), 3 * commission, "operator's 10%");
        vm.prank(op);
        assertEq(vault.claimCommission(), 3 * commission, "commission paid");
        assertEq(token.balanceOf(alice), paid, "alice paid");
    }

    function test_creditSplitsBetweenOperatorsAtTheirOwnRates() public {
        _fundEmission(100_000 ether);
        address op2 = makeAddr("op2");
        uint256[] memory a = _operatorWithLicenses(op, 500, alice, 1);
        uint256[] memory b = _operatorWithLicenses(op2, 5000, bob, 3);
        _rollToEpoch(1);
        _heartbeat(op);
        _heartbeat(op2);
        _rollToEpoch(2);
        // 2000 over 4 licenses.
        vm.prank(alice);
        assertEq(vault.claim(a), 475 ether, "alice 95% of 500");
        vm.prank(bob);
        assertEq(vault.claim(b), 750 ether, "bob 50% of 1500");
        assertEq(vault.commissionOf(op), 25 ether, "op 5%");
        assertEq(vault.commissionOf(op2), 750 ether, "op2 50%");
        assertEq(vault.totalLiabilities(), 2000 ether, "all credited");
    }

    function test_claimableProjectsTheEndedEpochBeforeItIsBooked() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 2000, alice, 2);
        _rollToEpoch(1);
        _heartbeat(op);
        assertEq(vault.claimable(ids[0]), int256(0), "epoch in progress");
        _rollToEpoch(2);
        // Not rolled yet: projected from pool + emission.
        assertEq(vault.claimable(ids[0]), int256(800 ether), "80% of 1000");
        vault.poke();
        assertEq(vault.claimable(ids[0]), int256(800 ether), "same after finalizing");
    }

    // ---------------------------------------------------------------------------------- claims

    function test_claimPaysOnceThenNothingToClaim() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        _rollToEpoch(1);
        _heartbeat(op);
        _rollToEpoch(2);
        vm.prank(alice);
        assertEq(vault.claim(ids), 2000 ether, "paid");
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(alice);
        vault.claim(ids);
        assertEq(token.balanceOf(alice), 2000 ether, "paid exactly once");
        assertEq(_balance(ids[0]), 0, "zeroed");
    }

    function test_claimRejectsLicenseOfSomeoneElse() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 1);
        _rollToEpoch(1);
        _heartbeat(op);
        _rollToEpoch(2);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotLicenseOwner.selector, ids[0], bob));
        vm.prank(bob);
        vault.claim(ids);
        // Not even the operator.
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotLicenseOwner.selector, ids[0], op));
        vm.prank(op);
        vault.claim(ids);
        // An id never minted has no owner.
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotLicenseOwner.selector, 999, alice));
        vm.prank(alice);
        vault.claim(_one(999));
    }

    function test_claimCommissionAndBountyRejectEmptyBalances() public {
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(op);
        vault.claimCommission();
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(reporter);
        vault.claimBounty();
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(alice);
        vault.claim(ids);
    }

    /// Claims pay in a token; a token that calls the receiver back cannot make the vault pay twice.
    function test_reentrantClaimFromTokenCallbackCannotPayTwice() public {
        HookToken hook = new HookToken();
        ManualClock clock = new ManualClock();
        RewardVault v = new RewardVault(
            IERC20(address(hook)),
            address(staking),
            ILicenseOwnersBatch(address(license)),
            treasury,
            _defaultVaultParams(),
            address(this)
        );
        // This test stands in for the registry of the fresh vault: it reports the listing itself.
        v.wire(address(clock), address(this));
        hook.mint(address(this), 10_000 ether);
        hook.approve(address(v), 10_000 ether);
        v.fundEmission(10_000 ether);

        GreedyClaimer greedy = new GreedyClaimer(v);
        uint256[] memory ids = _mintLicenses(address(greedy), 1);
        greedy.setIds(ids);
        hook.setHooked(address(greedy));
        // The greedy contract is operator 1 (10%) of its own license, listed and present in epoch 0.
        v.onListed(ids[0], 1, 0);
        vm.prank(address(clock));
        v.recordPresence(address(greedy), 1, 1000, 1, 0);
        clock.set(1);

        assertEq(greedy.claim(), 900 ether, "license share of epoch 0's 1000");
        assertEq(greedy.reentries(), 1, "callback ran");
        assertEq(greedy.reentrySucceeded(), 0, "no nested claim paid");
        assertEq(
            keccak256(greedy.lastError()),
            keccak256(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector)),
            "guarded"
        );
        assertEq(greedy.claimCommission(), 100 ether, "commission");
        assertEq(greedy.reentrySucceeded(), 0, "still none");
        assertEq(hook.balanceOf(address(greedy)), 1000 ether, "paid exactly once each");
        assertEq(hook.balanceOf(address(v)), 9000 ether, "the rest stays");
    }

    // ------------------------------------------------------------------------------- penalties

    /// A penalty larger than the balance leaves a debt; later credit pays it first and the repaid part
    /// goes back to the next budget.
    function test_penaltyDebtIsRepaidFromLaterCreditIntoTheBudget() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        uint256 a = ids[0];
        uint256 b = ids[1];
        _rollToEpoch(1);
        _heartbeat(op);
        _rollToEpoch(2);
        _heartbeat(op); // books epoch 1: 2000 / 2
        vault.settleLicenses(ids);
        assertEq(_balance(a), int256(1000 ether), "a credited");
        assertEq(vault.pool(), 0, "epoch 2 starts empty");

        _penalize(_one(a), 1, MISS, reporter); // 3 x 1000
        assertEq(_balance(a), -int256(2000 ether), "debt");
        assertEq(vault.bountyOf(reporter), 100 ether, "10% of the 1000 forfeited");
        assertEq(vault.pool(), 900 ether, "forfeit less bounty to the budget");
        assertEq(vault.totalLiabilities(), 1100 ether, "b's 1000 + bounty");
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(alice);
        vault.claim(_one(a));

        _rollToEpoch(3);
        _heartbeat(op); // epoch 2: (900 + 1000) / 2 = 950
        assertEq(vault.claimable(a), -int256(1050 ether), "claimable shows the partly repaid debt");
        vault.settleLicenses(ids); // the credit repays the debt when the license is booked
        assertEq(_balance(a), -int256(1050 ether), "partly repaid");
        assertEq(vault.pool(), 950 ether, "repaid credit joins epoch 3's budget");
        _rollToEpoch(4);
        _heartbeat(op); // epoch 3: (950 + 1000) / 2 = 975
        vault.settleLicenses(ids);
        assertEq(_balance(a), -int256(75 ether), "almost repaid");
        assertEq(vault.pool(), 975 ether, "repaid again");
        _rollToEpoch(5);
        _heartbeat(op); // epoch 4: (975 + 1000) / 2 = 987.5
        vault.settleLicenses(ids);
        assertEq(_balance(a), int256(912.5 ether), "positive again");
        assertEq(vault.pool(), 75 ether, "only the debt's remainder");

        vm.prank(alice);
        assertEq(vault.claim(ids), 912.5 ether + 3912.5 ether, "a + b");
        vm.prank(reporter);
        assertEq(vault.claimBounty(), 100 ether, "bounty");
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(reporter);
        vault.claimBounty();
    }

    function test_missBountyIsAShareOfWhatWasActuallyForfeited() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        _rollToEpoch(1);
        _heartbeat(op);
        for (uint256 e = 2; e <= 5; ++e) {
            _rollToEpoch(e);
            _heartbeat(op);
        }
        // Epoch 1: 1000 each; epochs 2-4: 500 each (nothing carried). b holds 2500.
        assertEq(_perLicense(1), 1000 ether, "epoch 1");
        assertEq(_perLicense(4), 500 ether, "epoch 4");
        assertEq(_balance(ids[1]), int256(2500 ether), "b");
        // Penalty of 3 x 500 fully covered by the balance: bounty on all of it.
        _penalize(_one(ids[1]), 4, MISS, reporter);
        assertEq(vault.bountyOf(reporter), 150 ether, "10% of 1500");
        assertEq(_balance(ids[1]), int256(1000 ether), "b after");
        // 3 x 1000 against 1000: bounty on the 1000 only.
        _penalize(_one(ids[1]), 1, MISS, reporter);
        assertEq(vault.bountyOf(reporter), 250 ether, "plus 10% of 1000");
        assertEq(_balance(ids[1]), -int256(2000 ether), "b in debt");
        // Already in debt: nothing forfeited, no bounty; the debt grows.
        _penalize(_one(ids[1]), 2, MISS, reporter);
        assertEq(vault.bountyOf(reporter), 250 ether, "no bounty from a debt");
        assertEq(_balance(ids[1]), -int256(3500 ether), "deeper debt");
        // The budget got the forfeits less bounties: 1350 + 900.
        assertEq(vault.pool(), 2250 ether, "forfeits to the budget");
    }

    function test_penaltyKindsScaleTheEpochsCreditAndOnlyMissesPayBounties() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        address op2 = makeAddr("op2");
        uint256[] memory c = _operatorWithLicenses(op2, 0, bob, 1);
        _rollToEpoch(1);
        _heartbeat(op);
        _rollToEpoch(2);
        _heartbeat(op); // 1000 each
        _penalize(_one(ids[0]), 1, DISAGREE, reporter);
        assertEq(_balance(ids[0]), -int256(1000 ether), "2 x 1000");
        _penalize(_one(ids[1]), 1, TRAP, reporter);
        assertEq(_balance(ids[1]), -int256(9000 ether), "10 x 1000");
        assertEq(vault.bountyOf(reporter), 0, "no bounty for disagreement or trap");
        assertEq(vault.pool(), 2000 ether, "both balances forfeited to the budget");
        assertEq(vault.totalLiabilities(), 0, "nothing owed");
        // A miss without a reporter pays no bounty either: c, listed under op2 since epoch 1, active in epoch 2.
        _heartbeat(op2);
        _rollToEpoch(3);
        _heartbeat(op2); // epoch 2: (2000 + 1000) / 3 = 1000
        _penalize(c, 2, MISS, address(0));
        assertEq(_balance(c[0]), -int256(2000 ether), "3 x 1000");
        assertEq(vault.pool(), 1000 ether, "all of it to the budget");
    }

    function test_penalizeAndRecordPresenceAreOnlyTheProtocolListingOnlyTheRegistry() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotProtocol.selector, stranger));
        vm.prank(stranger);
        vault.penalize(ids, 0, MISS, stranger);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotProtocol.selector, address(registry)));
        vm.prank(address(registry));
        vault.recordPresence(stranger, 1, 0, 1, 0);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotRegistry.selector, address(protocol)));
        vm.prank(address(protocol));
        vault.onListed(ids[0], 1, 1);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NotRegistry.selector, stranger));
        vm.prank(stranger);
        vault.onUnlisted(ids[0], 1, 1);
    }

    // ------------------------------------------------------------------------------ suspension

    function test_threePenaltiesWithinTheWindowSuspendForSuspendEpochs() public {
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        uint256 a = ids[0];
        _rollToEpoch(6);
        _penalize(_one(a), 1, MISS, reporter);
        _penalize(_one(a), 5, DISAGREE, address(0));
        assertFalse(vault.isSuspended(a, 6), "two are not enough");
        _penalize(_one(a), 2, TRAP, address(0)); // epochs 1, 5, 2: all within [1, 11)
        (, uint32 until,,) = vault.accounts(a);
        assertEq(until, 6 + 1 + 20, "suspended through epoch 26");
        assertTrue(vault.isSuspended(a, 26), "26");
        assertFalse(vault.isSuspended(a, 27), "27");
        // Parked: still Delegated, unlisted from the next epoch.
        assertTrue(registry.isParked(a), "parked");
        (address opOfA, OperatorRegistry.LicenseState st) = registry.delegationOf(a);
        assertEq(opOfA, op, "still the operator's");
        assertEq(uint256(st), uint256(OperatorRegistry.LicenseState.Delegated), "still Delegated");

        // Suspended in epoch 6, it was listed in 6: the operator's heartbeat still counts it in this epoch only.
        _heartbeat(op);
        assertTrue(vault.isActive(a, 6), "active in the epoch of its suspension");
        assertEq(vault.activeCount(6), 2, "both in epoch 6");
        _rollToEpoch(7);
        _heartbeat(op);
        assertFalse(vault.isActive(a, 7), "parked: not active");
        assertTrue(vault.isActive(ids[1], 7), "the other license is fine");
        assertEq(vault.activeCount(7), 1, "not counted");
        assertEq(registry.listedCountAt(_opIndex(op), 7), 1, "not listed");

        // resume lists it again from the next epoch, once it is no longer suspended then.
        _rollToEpoch(25);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.StillSuspended.selector, a));
        registry.resume(_one(a));
        _rollToEpoch(26);
        vm.prank(stranger); // anyone
        registry.resume(_one(a));
        assertFalse(registry.isParked(a), "resumed");
        _heartbeat(op);
        assertFalse(vault.isActive(a, 26), "still suspended in 26: not listed");
        assertEq(vault.activeCount(26), 1, "one in 26");
        _rollToEpoch(27);
        _heartbeat(op);
        assertTrue(vault.isActive(a, 27), "active again");
        assertEq(vault.activeCount(27), 2, "both in 27");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotParked.selector, a));
        registry.resume(_one(a));
    }

    function test_penaltiesSpreadBeyondTheWindowDoNotSuspend() public {
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 1);
        _rollToEpoch(15);
        _penalize(ids, 1, MISS, address(0));
        _penalize(ids, 2, MISS, address(0));
        _penalize(ids, 11, MISS, address(0)); // 11 >= 1 + 10: a new window
        assertFalse(vault.isSuspended(ids[0], 15), "window restarted");
        _heartbeat(op);
        _penalize(ids, 12, MISS, address(0));
        assertFalse(vault.isSuspended(ids[0], 15), "two in the new window");
        _penalize(ids, 13, MISS, address(0));
        assertTrue(vault.isSuspended(ids[0], 15 + 20), "three in the new window");
        assertFalse(vault.isSuspended(ids[0], 15 + 21), "until");
    }

    // ----------------------------------------------------------------------- protocol path

    /// The typical miss: a node heartbeats, crashes, never reveals and never heartbeats again. Its ended
    /// epoch's credit is booked before the penalty, so the reporter's bounty counts it.
    function test_reportMissForfeitsTheEndedEpochsCreditAndPaysTheReporter() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        uint256 t = _addTarget(1);
        _rollToEpoch(1);
        _heartbeat(op);
        // ids[1] votes OK; ids[0] did not audit t: the operator's reveal lists NO_VOTE for it.
        (uint256[] memory lics, uint8[] memory vs) = _okAndMissed(ids[1], ids[0]);
        _commit(op, lics, t, vs);
        _rollToReveal(1);
        _reveal(op, 1, lics, t, vs);
        _rollPastReveal(1);

        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[1], t));
        vm.prank(reporter);
        protocol.reportMiss(1, ids[1], t);

        vm.prank(reporter);
        protocol.reportMiss(1, ids[0], t);
        // Epoch 1: 2000 / 2 = 1000 each; penalty 3000 takes all 1000 and leaves a 2000 debt.
        assertEq(vault.bountyOf(reporter), 100 ether, "10% of the forfeited 1000");
        assertEq(_balance(ids[0]), -int256(2000 ether), "debt");
        assertEq(vault.claimable(ids[0]), -int256(2000 ether), "claimable shows the debt");
        assertEq(vault.pool(), 900 ether, "forfeit to epoch 2's budget");

        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.MissAlreadyReported.selector, 1, ids[0], t));
        vm.prank(reporter);
        protocol.reportMiss(1, ids[0], t);
        assertEq(vault.bountyOf(reporter), 100 ether, "bounty once");

        vm.prank(alice);
        assertEq(vault.claim(ids), 1000 ether, "only the revealer's credit");
        vm.prank(reporter);
        assertEq(vault.claimBounty(), 100 ether, "reporter paid");
    }

    /// Settlement debits the license that voted against the outcome, after booking its ended epoch.
    function test_settleDebitsTheDisagreeingRevealer() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 3);
        uint256 t = _addTarget(1);
        _rollToEpoch(1);
        _heartbeat(op);
        uint8[] memory vs = new uint8[](3);
        (vs[0], vs[1], vs[2]) = (1, 1, 2);
        _commit(op, ids, t, vs); // one hash of the operator's votes
        _rollToReveal(1);
        _reveal(op, 1, ids, t, vs); // lists ids[2]'s FAULT; the other two vote OK
        _rollPastReveal(1);
        assertEq(protocol.settle(1, t), 1, "OK by two thirds");
        uint256 per = uint256(2000 ether) / 3;
        assertEq(_perLicense(1), per, "per license");
        assertEq(_balance(ids[2]), int256(per) - int256(2 * per), "credit booked, then 2 x credit debited");
        assertEq(vault.pool(), 2000 ether - 3 * per + per, "remainder + forfeited credit");
        assertEq(vault.bountyOf(address(this)), 0, "no bounty for disagreement");
        vm.prank(alice);
        assertEq(vault.claim(ids), 2 * per, "the agreeing two");
    }

    function test_settleLicensesBooksOnceWhoeverCalls() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 1000, alice, 1);
        _rollToEpoch(1);
        _heartbeat(op);
        vm.prank(stranger);
        vault.settleLicenses(ids);
        assertEq(vault.commissionOf(op), 0, "epoch 1 not ended: nothing booked");
        _rollToEpoch(2);
        vm.prank(stranger);
        vault.settleLicenses(ids);
        vm.prank(stranger);
        vault.settleLicenses(ids);
        assertEq(vault.commissionOf(op), 200 ether, "10% of 2000, once");
        assertEq(_balance(ids[0]), int256(1800 ether), "90%, once");
        assertEq(vault.totalLiabilities(), 2000 ether, "booked once");
    }

    function test_repeatedMissesSuspendTheLicenseUntilItMayHeartbeatAgain() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        uint256 a = ids[0];
        uint256 b = ids[1];
        uint256 t = _addTarget(1);
        // b votes OK on t every epoch; a never audits it (NO_VOTE in each reveal).
        (uint256[] memory lics, uint8[] memory vs) = _okAndMissed(b, a);
        _rollToEpoch(1);
        _heartbeat(op);
        _commit(op, lics, t, vs);
        for (uint256 e = 1; e <= 3; ++e) {
            _rollToReveal(e); // start of epoch e + 1
            _heartbeat(op);
            _commit(op, lics, t, vs);
            _reveal(op, e, lics, t, vs);
            _rollPastReveal(e);
            vm.prank(reporter);
            protocol.reportMiss(e, a, t);
        }
        // Third miss reported in epoch 4: suspended through epoch 4 + 20, parked from epoch 5.
        assertTrue(vault.isSuspended(a, 24), "suspended");
        assertFalse(vault.isSuspended(a, 25), "until 25");
        assertTrue(registry.isParked(a), "parked");
        _rollToEpoch(5);
        _heartbeat(op);
        assertFalse(vault.isActive(a, 5), "parked: not active");
        assertTrue(vault.isActive(b, 5), "b active");
        assertEq(vault.activeCount(5), 1, "only b counted");
        _rollToEpoch(6);
        _heartbeat(op);
        int256 held = vault.claimable(a);
        _rollToEpoch(23);
        _heartbeat(op);
        assertEq(vault.claimable(a), held, "no credit while parked");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.StillSuspended.selector, a));
        registry.resume(_one(a));
        _rollToEpoch(24);
        registry.resume(_one(a)); // suspended through 24, listed again from 25
        _heartbeat(op);
        assertFalse(vault.isActive(a, 24), "not yet");
        _rollToEpoch(25);
        _heartbeat(op);
        assertTrue(vault.isActive(a, 25), "back");
        assertEq(vault.activeCount(25), 2, "both counted");
    }

    function test_heartbeatTwiceInAnEpochIsAlreadyPresent() public {
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 2);
        _rollToEpoch(1);
        _heartbeat(op);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.AlreadyPresent.selector, op, 1));
        _heartbeat(op);
        assertEq(vault.activeCount(1), 2, "counted once");
        // A license moved to another operator is listed under it from the next epoch only: op2's heartbeat in
        // the same epoch does not make it active a second time.
        address op2 = makeAddr("op2");
        vm.prank(op2);
        registry.registerOperator(0, "");
        vm.startPrank(alice);
        registry.undelegate(_one(ids[0]));
        registry.delegate(_one(ids[0]), op2);
        vm.stopPrank();
        vm.prank(op2);
        registry.approve(_one(ids[0]));
        _heartbeat(op2);
        assertEq(vault.activeCount(1), 2, "still two");
        assertEq(registry.operatorOfAt(ids[0], 1), _opIndex(op), "op's in epoch 1");
        assertEq(registry.operatorOfAt(ids[0], 2), _opIndex(op2), "op2's from epoch 2");
        assertTrue(vault.isPresent(_opIndex(op2), 1), "op2 present with nothing listed");
    }

    function test_commitWithoutHeartbeatIsNotPresent() public {
        uint256[] memory ids = _operatorWithLicenses(op, 0, alice, 1);
        uint256 t = _addTarget(1);
        _rollToEpoch(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotPresent.selector, op, 1));
        this.commitAs(op, ids[0], t);
        assertFalse(vault.isPresent(_opIndex(op), 1), "not present");
        assertFalse(vault.isActive(ids[0], 1), "so its licenses are not active");
        // Someone who is not an operator is never present.
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotPresent.selector, stranger, 1));
        vm.prank(stranger);
        protocol.commit(1, keccak256("root"));
    }

    /// @dev External so expectRevert applies to the commit itself.
    function commitAs(address operator, uint256 lic, uint256 t) external {
        uint8[] memory vs = new uint8[](1);
        vs[0] = 1;
        _commit(operator, _one(lic), t, vs);
    }

    // ------------------------------------------------------------------- presence per operator

    function test_oneHeartbeatMakesEveryListedLicenseActive() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 1000, alice, 5);
        uint256[] memory pending = _mintLicenses(bob, 1);
        vm.prank(bob);
        registry.delegate(pending, op); // pending: never listed
        uint256 idx = _opIndex(op);
        _rollToEpoch(1);
        assertEq(registry.listedCountAt(idx, 1), 5, "five listed");
        vm.expectEmit();
        emit RewardVault.Present(1, op, 5);
        vm.expectEmit();
        emit AuditProtocol.Heartbeat(1, op, 5);
        _heartbeat(op);
        assertEq(vault.activeCount(1), registry.listedCountAt(idx, 1), "active count = listed count");
        for (uint256 i; i < 5; ++i) {
            assertTrue(vault.isActive(ids[i], 1), "every listed license active");
        }
        assertFalse(vault.isActive(pending[0], 1), "a pending license is not");
        assertTrue(vault.isPresent(idx, 1), "present in 1");
        assertFalse(vault.isPresent(idx, 0), "not in 0");
        (uint32 lastPlus1, uint32 count,, bool booked, uint16 bps,) = vault.presence(idx);
        assertEq(lastPlus1, 2, "last present epoch 1");
        assertEq(count, 5, "with five licenses");
        assertFalse(booked, "not final yet");
        assertEq(bps, 1000, "commission");
        assertEq(vault.operatorAddress(idx), op, "address of the index");
        _rollToEpoch(2);
        assertFalse(vault.isActive(ids[0], 2), "a new epoch needs a new heartbeat");
        // Epoch 1: 2000 over five licenses.
        vm.prank(alice);
        assertEq(vault.claim(ids), 5 * 360 ether, "every license earned 90% of 400");
        assertEq(vault.commissionOf(op), 200 ether, "10%");
    }

    function test_aLicenseDelegatedMidEpochEarnsFromTheNextEpochOnly() public {
        _fundEmission(100_000 ether);
        uint256[] memory a = _operatorWithLicenses(op, 0, alice, 1); // listed from epoch 1
        _rollToEpoch(1);
        uint256[] memory b = _operatorWithLicenses(op, 0, bob, 1); // delegated during epoch 1
        _heartbeat(op);
        assertTrue(vault.isActive(a[0], 1), "a active");
        assertFalse(vault.isActive(b[0], 1), "b not listed in epoch 1");
        assertEq(vault.activeCount(1), 1, "one active");
        _rollToEpoch(2);
        _heartbeat(op);
        assertTrue(vault.isActive(b[0], 2), "b active from epoch 2");
        assertEq(vault.activeCount(2), 2, "two active");
        assertEq(vault.claimable(b[0]), 0, "b has nothing of epoch 1");
        assertEq(vault.claimable(a[0]), int256(2000 ether), "a has all of epoch 1");
        _rollToEpoch(3);
        // Epoch 2: 1000 over two.
        assertEq(vault.claimable(b[0]), int256(500 ether), "b: epoch 2");
        vm.prank(bob);
        assertEq(vault.claim(b), 500 ether, "b paid epoch 2 only");
        vm.prank(alice);
        assertEq(vault.claim(a), 2500 ether, "a paid both");
    }

    /// L moves from op (10%) to op2 (40%) during epoch 2; K leaves op for op2 and comes back to op within the same
    /// epoch (a span of no epoch under op2). Each license earns exactly its operators' present epochs while it was
    /// listed under them, at their rates.
    function test_movingToAnotherOperatorWithinAnEpochCreditsEachSpanExactly() public {
        _fundEmission(100_000 ether);
        address op2 = makeAddr("op2");
        uint256[] memory mine = _operatorWithLicenses(op, 1000, alice, 2); // L, K
        uint256[] memory theirs = _operatorWithLicenses(op2, 4000, bob, 2); // M, N
        (uint256 l, uint256 k) = (mine[0], mine[1]);
        for (uint256 e = 1; e <= 4; ++e) {
            _rollToEpoch(e);
            _heartbeat(op);
            _heartbeat(op2);
            assertEq(vault.activeCount(e), 4, "four active every epoch");
            if (e != 2) continue;
            vm.startPrank(alice);
            registry.undelegate(_one(l));
            registry.delegate(_one(l), op2);
            registry.undelegate(_one(k));
            registry.delegate(_one(k), op2);
            vm.stopPrank();
            vm.prank(op2);
            registry.approve(_two(l, k));
            vm.prank(alice);
            registry.undelegate(_one(k));
            vm.prank(alice);
            registry.delegate(_one(k), op);
            vm.prank(op);
            registry.approve(_one(k));
            assertTrue(vault.isActive(l, 2), "L is op's in epoch 2");
        }
        assertEq(registry.operatorOfAt(l, 3), _opIndex(op2), "L under op2 from epoch 3");
        assertEq(registry.operatorOfAt(k, 3), _opIndex(op), "K back under op");
        assertEq(registry.listedCountAt(_opIndex(op2), 3), 3, "op2 lists three");
        _rollToEpoch(5);
        // Epoch 1: 2000 / 4 = 500; epochs 2-4: 250.
        uint256 expectL = 450 ether + 225 ether + 150 ether + 150 ether;
        uint256 expectK = 450 ether + 3 * 225 ether;
        assertEq(vault.claimable(l), int256(expectL), "L claimable: op's epochs 1-2, op2's 3-4");
        assertEq(vault.claimable(k), int256(expectK), "K claimable: op's epochs 1-4");
        vm.prank(alice);
        assertEq(vault.claim(mine), expectL + expectK, "paid exactly the spans");
        vault.settleLicenses(theirs);
        // op: 2 x 50 (epoch 1) + 2 x 25 (epoch 2) + 25 + 25; op2: 2 x 200 + 2 x 100 + 3 x 100 + 3 x 100.
        assertEq(vault.commissionOf(op), 200 ether, "op's commission");
        assertEq(vault.commissionOf(op2), 1200 ether, "op2's commission");
        assertEq(vault.totalLiabilities(), 2000 ether + 3 * 1000 ether, "four epochs fully credited");
    }

    function test_claimAfterTheOperatorStoppedHeartbeatingPaysTheLastPresentEpoch() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 1000, alice, 2);
        _rollToEpoch(1);
        _heartbeat(op); // epoch 1: 2000 / 2
        _rollToEpoch(2);
        _heartbeat(op); // epoch 2: 1000 / 2; the operator's last heartbeat
        assertEq(vault.commissionOf(op), 0, "epoch 1 booked; its commission is paid as the licenses are credited");
        assertEq(vault.commissionClaimable(op, ids), 200 ether, "10% of epoch 1");
        _rollToEpoch(6); // epochs 3-5 untouched, epoch 2 not booked yet
        assertEq(vault.lastActivePlus1(ids[0]), 3, "last active in epoch 2");
        assertEq(vault.claimable(ids[0]), int256(900 ether + 450 ether), "claimable includes epoch 2");
        vm.prank(alice);
        assertEq(vault.claim(ids), 2 * 1350 ether, "paid through epoch 2");
        assertEq(vault.commissionOf(op), 300 ether, "epoch 2's commission booked by the claim");
        assertEq(_perLicense(2), 500 ether, "epoch 2 finalized by the claim");
        vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(alice);
        vault.claim(ids);
    }

    function test_commissionGoesToTheOperatorOncePerPresentEpoch() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 2000, alice, 4);
        _rollToEpoch(1);
        _heartbeat(op);
        _rollToEpoch(2);
        // Epoch 1: 2000 / 4 = 500 each; 400 net per license, 4 x 100 commission, booked by the heartbeat and
        // paid to the operator as each license is credited (security finding L2).
        vm.expectEmit();
        emit RewardVault.OperatorBooked(1, op, 4, 400 ether, 400 ether);
        _heartbeat(op);
        assertEq(vault.commissionOf(op), 0, "nothing before the licenses are credited");
        vault.settleLicenses(_one(ids[0]));
        assertEq(vault.commissionOf(op), 100 ether, "one license credited");
        vault.settleLicenses(ids);
        assertEq(vault.commissionOf(op), 400 ether, "all four");
        vault.settleLicenses(ids);
        vm.prank(alice);
        assertEq(vault.claim(ids), 1600 ether, "the licenses' net");
        assertEq(vault.commissionOf(op), 400 ether, "settling and claiming book no more");
        _rollToEpoch(3);
        // Epoch 2: 1000 / 4 = 250 each; booked by the first license settled (the operator sent no heartbeat).
        vault.settleLicenses(_one(ids[2]));
        assertEq(vault.commissionOf(op), 450 ether, "epoch 2's 50 of the license credited");
        vault.settleLicenses(ids);
        assertEq(vault.commissionOf(op), 600 ether, "epoch 2's 4 x 50");
        _heartbeat(op);
        assertEq(vault.commissionOf(op), 600 ether, "once");
        vm.prank(op);
        assertEq(vault.claimCommission(), 600 ether, "paid");
        assertEq(vault.totalLiabilities(), 3000 ether, "epochs 1 and 2 credited once");
    }

    /// Heartbeats, moves between two operators, penalties and settlements at random: whatever happened,
    /// `claimable` is exactly what booking then books and what `claim` then pays.
    function testFuzz_claimableIsWhatClaimPays(uint256 seed) public {
        _fundEmission(100_000 ether);
        address op2 = makeAddr("op2");
        uint256[] memory all = new uint256[](5);
        {
            uint256[] memory a = _operatorWithLicenses(op, 1000, alice, 3);
            uint256[] memory b = _operatorWithLicenses(op2, 3000, alice, 2);
            (all[0], all[1], all[2], all[3], all[4]) = (a[0], a[1], a[2], b[0], b[1]);
        }
        for (uint256 e = 1; e <= 8; ++e) {
            _rollToEpoch(e);
            uint256 r = uint256(keccak256(abi.encode(seed, e)));
            bool early2 = r & 2 == 2;
            if (r & 1 == 1) _heartbeat(op);
            if (early2) _heartbeat(op2);
            if (r & 4 == 4) _depositFees(1 + (r >> 64) % 3000 ether);
            if ((r >> 3) % 3 == 0) {
                uint256 id = all[(r >> 8) % 5];
                (address cur,) = registry.delegationOf(id);
                address to = cur == op ? op2 : op;
                vm.startPrank(alice);
                registry.undelegate(_one(id));
                registry.delegate(_one(id), to);
                vm.stopPrank();
                vm.prank(to);
                registry.approve(_one(id));
            }
            if ((r >> 16) % 4 == 0) _penalize(_one(all[(r >> 24) % 5]), e - 1, DISAGREE, address(0));
            if ((r >> 32) % 3 == 0) vault.settleLicenses(_one(all[(r >> 40) % 5]));
            if (!early2 && (r >> 48) % 2 == 0) _heartbeat(op2); // after this epoch's moves
        }
        _rollToEpoch(9 + seed % 3);
        int256[] memory views = new int256[](5);
        uint256 expected;
        for (uint256 i; i < 5; ++i) {
            views[i] = vault.claimable(all[i]);
            if (views[i] > 0) expected += uint256(views[i]);
        }
        vault.settleLicenses(all);
        for (uint256 i; i < 5; ++i) {
            (int128 bal,,,) = vault.accounts(all[i]);
            assertEq(int256(bal), views[i], "claimable = the balance once booked");
        }
        if (expected == 0) vm.expectRevert(abi.encodeWithSelector(RewardVault.NothingToClaim.selector));
        vm.prank(alice);
        vault.claim(all);
        assertEq(token.balanceOf(alice), expected, "claim pays the positive claimables");
        assertLe(vault.totalLiabilities(), vault.totalFunded(), "liabilities <= funded");
    }

    // ------------------------------------------------------------------------------ governance

    function test_wireOnceAndNotZero() public {
        vm.expectRevert(abi.encodeWithSelector(RewardVault.AlreadySet.selector));
        vm.prank(address(timelock));
        vault.wire(address(1), address(2));

        RewardVault fresh = new RewardVault(
            IERC20(address(token)),
            address(staking),
            ILicenseOwnersBatch(address(license)),
            treasury,
            _defaultVaultParams(),
            address(this)
        );
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        fresh.wire(address(0), address(registry));
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        fresh.wire(address(protocol), address(0));
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        fresh.wire(address(protocol), address(registry));
        _rollToEpoch(3);
        fresh.wire(address(protocol), address(registry));
        assertEq(fresh.protocol(), address(protocol), "protocol");
        assertEq(fresh.registry(), address(registry), "registry");
        assertEq(fresh.poolEpoch(), 3, "budget starts at the current epoch");
    }

    function test_constructorRejectsZeroAddresses() public {
        RewardVault.Params memory p = _defaultVaultParams();
        ILicenseOwnersBatch lic = ILicenseOwnersBatch(address(license));
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        new RewardVault(IERC20(address(0)), address(staking), lic, treasury, p, address(this));
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        new RewardVault(IERC20(address(token)), address(0), lic, treasury, p, address(this));
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        new RewardVault(IERC20(address(token)), address(staking), lic, address(0), p, address(this));
    }

    function test_setParamsByTimelockRejectsInvalidShares() public {
        RewardVault.Params memory p = _defaultVaultParams();
        p.nodeShareBps = 8001; // + 2000 > 10000
        vm.expectRevert(abi.encodeWithSelector(RewardVault.InvalidParams.selector));
        vm.prank(address(timelock));
        vault.setParams(p);
        p = _defaultVaultParams();
        p.missBountyBps = 10_001;
        vm.expectRevert(abi.encodeWithSelector(RewardVault.InvalidParams.selector));
        vm.prank(address(timelock));
        vault.setParams(p);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        vault.setParams(_defaultVaultParams());

        // A valid change applies to the next deposit.
        p = _defaultVaultParams();
        p.nodeShareBps = 8000;
        vm.prank(address(timelock));
        vault.setParams(p);
        (uint16 nodeShare,,,,,,,,,) = vault.params();
        assertEq(nodeShare, 8000, "stored");
        _depositFees(1000 ether);
        assertEq(vault.pool(), 800 ether, "new split");
        assertEq(vault.treasuryBalance(), 200 ether, "rest");
    }

    function test_setTreasuryByTimelockNotZero() public {
        vm.expectRevert(abi.encodeWithSelector(RewardVault.ZeroAddress.selector));
        vm.prank(address(timelock));
        vault.setTreasury(address(0));
        vm.prank(address(timelock));
        vault.setTreasury(bob);
        _depositFees(1000 ether);
        vault.withdrawTreasury();
        assertEq(token.balanceOf(bob), 300 ether, "new treasury paid");
        assertEq(token.balanceOf(treasury), 0, "old one not");
    }
}
