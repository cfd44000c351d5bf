// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {OperatorRegistry, ILicenseOwners, IRewardSettle} from "../src/OperatorRegistry.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract OperatorRegistryTest is Deployed {
    address internal opA = makeAddr("opA");
    address internal opB = makeAddr("opB");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");

    function setUp() public {
        _deploy();
    }

    // ----------------------------------------------------------------------------------- helpers

    function _register(address op, uint16 bps) internal {
        vm.prank(op);
        registry.registerOperator(bps, "ipfs://op");
    }

    function _state(uint256 id) internal view returns (address op, uint256 state) {
        OperatorRegistry.LicenseState s;
        (op, s) = registry.delegationOf(id);
        state = uint256(s);
    }

    function _assertState(uint256 id, address op, OperatorRegistry.LicenseState want, string memory what)
        internal
        view
    {
        (address gotOp, uint256 got) = _state(id);
        assertEq(gotOp, op, what);
        assertEq(got, uint256(want), what);
    }

    function _assertCounts(address op, uint256 delegated, uint256 pending, string memory what) internal view {
        OperatorRegistry.Operator memory o = registry.getOperator(op);
        assertEq(o.delegated, delegated, string.concat(what, ": delegated"));
        assertEq(o.pending, pending, string.concat(what, ": pending"));
    }

    function _two(uint256 a, uint256 b) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](2);
        ids[0] = a;
        ids[1] = b;
    }

    // ------------------------------------------------------------------------------ registration

    function test_registerOperatorFixesCommissionAndListsOperator() public {
        _register(opA, 1234);
        OperatorRegistry.Operator memory o = registry.getOperator(opA);
        assertTrue(o.registered, "registered");
        assertEq(o.commissionBps, 1234, "commission");
        assertEq(registry.commissionOf(opA), 1234, "commissionOf");
        assertTrue(registry.isOperator(opA), "isOperator");
        assertEq(registry.operatorCount(), 1, "count");
        assertEq(registry.operatorList(0), opA, "list");
        assertEq(keccak256(bytes(o.metadataURI)), keccak256("ipfs://op"), "metadata");
    }

    function test_registerOperatorRejectsSecondRegistration() public {
        _register(opA, 1000);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.AlreadyRegistered.selector, opA));
        vm.prank(opA);
        registry.registerOperator(0, "again");
        assertEq(registry.commissionOf(opA), 1000, "commission unchanged");
    }

    function test_registerOperatorRejectsCommissionAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.CommissionTooHigh.selector, 5001, 5000));
        vm.prank(opA);
        registry.registerOperator(5001, "");
        // The maximum itself is allowed.
        _register(opA, 5000);
        assertEq(registry.commissionOf(opA), 5000, "max commission");
    }

    function test_registerOperatorRequiresAllowlistWhenOn() public {
        vm.prank(address(timelock));
        registry.setOperatorAllowlistEnabled(true);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.OperatorNotAllowlisted.selector, opA));
        vm.prank(opA);
        registry.registerOperator(100, "");

        vm.prank(address(timelock));
        registry.setOperatorAllowlisted(opA, true);
        _register(opA, 100);
        assertTrue(registry.isOperator(opA), "allowlisted registers");

        // Turning the allowlist off lets anyone register.
        vm.prank(address(timelock));
        registry.setOperatorAllowlistEnabled(false);
        _register(opB, 100);
        assertTrue(registry.isOperator(opB), "open again");
    }

    function test_governanceSettersAreOnlyTheTimelock() public {
        vm.startPrank(opA);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, opA));
        registry.setMaxLicensesPerOperator(1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, opA));
        registry.setOperatorAllowlistEnabled(true);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, opA));
        registry.setOperatorAllowlisted(opA, true);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, opA));
        registry.setRewardVault(IRewardSettle(address(1)));
        vm.stopPrank();
    }

    // -------------------------------------------------------------------------------- delegation

    function test_delegateToAnotherOperatorIsPending() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 2);
        vm.prank(alice);
        registry.delegate(ids, opA);
        _assertState(ids[0], opA, OperatorRegistry.LicenseState.Pending, "first");
        _assertState(ids[1], opA, OperatorRegistry.LicenseState.Pending, "second");
        _assertCounts(opA, 0, 2, "opA");
    }

    function test_delegateToSelfIsDelegatedAtOnce() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(opA, 2);
        vm.prank(opA);
        registry.delegate(ids, opA);
        _assertState(ids[0], opA, OperatorRegistry.LicenseState.Delegated, "first");
        _assertState(ids[1], opA, OperatorRegistry.LicenseState.Delegated, "second");
        _assertCounts(opA, 2, 0, "opA");
        assertEq(registry.requireDelegated(opA, ids), 1000, "requireDelegated returns commission");
    }

    function test_delegateRejectsUnregisteredOperator() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotRegistered.selector, opA));
        vm.prank(alice);
        registry.delegate(ids, opA);
    }

    function test_delegateRejectsLicenseOfSomeoneElse() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotLicenseOwner.selector, ids[0], bob));
        vm.prank(bob);
        registry.delegate(ids, opA);
    }

    function test_delegateRejectsLicenseThatIsNotFree() public {
        _register(opA, 1000);
        _register(opB, 1000);
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotFree.selector, ids[0]));
        vm.prank(alice);
        registry.delegate(ids, opB);
        // The same id twice in one batch is caught the same way.
        uint256[] memory fresh = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotFree.selector, fresh[0]));
        vm.prank(alice);
        registry.delegate(_two(fresh[0], fresh[0]), opB);
        _assertCounts(opB, 0, 0, "opB untouched");
    }

    function test_approveMakesPendingDelegated() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 3);
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.prank(opA);
        registry.approve(_two(ids[0], ids[2]));
        _assertState(ids[0], opA, OperatorRegistry.LicenseState.Delegated, "0");
        _assertState(ids[1], opA, OperatorRegistry.LicenseState.Pending, "1");
        _assertState(ids[2], opA, OperatorRegistry.LicenseState.Delegated, "2");
        _assertCounts(opA, 2, 1, "opA");
    }

    function test_approveRejectsLicenseThatIsNotPending() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 1);
        // Free.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotPending.selector, ids[0]));
        vm.prank(opA);
        registry.approve(ids);
        // Already Delegated.
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.prank(opA);
        registry.approve(ids);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotPending.selector, ids[0]));
        vm.prank(opA);
        registry.approve(ids);
        _assertCounts(opA, 1, 0, "counted once");
    }

    function test_approveRejectsLicensePendingWithAnotherOperator() public {
        _register(opA, 1000);
        _register(opB, 1000);
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotYourLicense.selector, ids[0], opB));
        vm.prank(opB);
        registry.approve(ids);
        _assertState(ids[0], opA, OperatorRegistry.LicenseState.Pending, "still pending with A");
    }

    function test_approveRespectsMaxLicensesPerOperatorSetByTimelock() public {
        vm.prank(address(timelock));
        registry.setMaxLicensesPerOperator(2);
        assertEq(registry.maxLicensesPerOperator(), 2, "cap");
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 3);
        vm.prank(alice);
        registry.delegate(ids, opA);
        // Three at once exceed the cap.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.OperatorFull.selector, opA, 2));
        vm.prank(opA);
        registry.approve(ids);
        vm.prank(opA);
        registry.approve(_two(ids[0], ids[1]));
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.OperatorFull.selector, opA, 2));
        vm.prank(opA);
        registry.approve(_one(ids[2]));
        _assertCounts(opA, 2, 1, "at cap");
        // Freeing one makes room.
        vm.prank(alice);
        registry.undelegate(_one(ids[0]));
        vm.prank(opA);
        registry.approve(_one(ids[2]));
        _assertCounts(opA, 2, 0, "room reused");
    }

    function test_selfDelegationRespectsMaxLicensesPerOperator() public {
        vm.prank(address(timelock));
        registry.setMaxLicensesPerOperator(1);
        _register(opA, 0);
        uint256[] memory ids = _mintLicenses(opA, 2);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.OperatorFull.selector, opA, 1));
        vm.prank(opA);
        registry.delegate(ids, opA);
        vm.prank(opA);
        registry.delegate(_one(ids[0]), opA);
        _assertCounts(opA, 1, 0, "one delegated");
    }

    function test_undelegateByOwnerFreesPendingAndDelegated() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 2);
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.prank(opA);
        registry.approve(_one(ids[0]));
        _assertCounts(opA, 1, 1, "before");
        vm.prank(alice);
        registry.undelegate(ids);
        _assertState(ids[0], address(0), OperatorRegistry.LicenseState.Free, "0 free");
        _assertState(ids[1], address(0), OperatorRegistry.LicenseState.Free, "1 free");
        _assertCounts(opA, 0, 0, "after");
    }

    function test_undelegateRejectsCallerThatDoesNotOwnTheLicense() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.prank(alice);
        registry.delegate(ids, opA);
        // Not even the operator may use undelegate.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotLicenseOwner.selector, ids[0], opA));
        vm.prank(opA);
        registry.undelegate(ids);
    }

    function test_undelegateRejectsFreeLicense() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.AlreadyFree.selector, ids[0]));
        vm.prank(alice);
        registry.undelegate(ids);
    }

    function test_forceUndelegateByOperatorFreesPendingAndDelegated() public {
        _register(opA, 1000);
        uint256[] memory ids = _mintLicenses(alice, 2);
        vm.prank(alice);
        registry.delegate(ids, opA);
        vm.prank(opA);
        registry.approve(_one(ids[1]));
        vm.prank(opA);
        registry.forceUndelegate(ids);
        _assertState(ids[0], address(0), OperatorRegistry.LicenseState.Free, "pending freed");
        _assertState(ids[1], address(0), OperatorRegistry.LicenseState.Free, "delegated freed");
        _assertCounts(opA, 0, 0, "after");
        // Free again: the owner may delegate elsewhere.
        _register(opB, 0);
        vm.prank(alice);
        registry.delegate(ids, opB);
        _assertCounts(opB, 0, 2, "opB");
    }

    function test_forceUndelegateRejectsLicenseOfAnotherOperatorOrFree() public {
        _register(opA, 1000);
        _register(opB, 1000);
        uint256[] memory ids = _operatorWithLicenses(opA, 1000, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotYourLicense.selector, ids[0], opB));
        vm.prank(opB);
        registry.forceUndelegate(ids);
        // The owner is not the operator either.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotYourLicense.selector, ids[0], alice));
        vm.prank(alice);
        registry.forceUndelegate(ids);
        vm.prank(alice);
        registry.undelegate(ids);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotYourLicense.selector, ids[0], opA));
        vm.prank(opA);
        registry.forceUndelegate(ids);
    }

    function test_countersTrackDelegatedAndPendingPerOperator() public {
        _register(opA, 1000);
        _register(opB, 2000);
        uint256[] memory a = _mintLicenses(alice, 4);
        uint256[] memory b = _mintLicenses(bob, 3);
        vm.prank(alice);
        registry.delegate(a, opA);
        vm.prank(bob);
        registry.delegate(b, opB);
        _assertCounts(opA, 0, 4, "A after delegate");
        _assertCounts(opB, 0, 3, "B after delegate");
        vm.prank(opA);
        registry.approve(_two(a[0], a[1]));
        vm.prank(opB);
        registry.approve(b);
        _assertCounts(opA, 2, 2, "A after approve");
        _assertCounts(opB, 3, 0, "B after approve");
        vm.prank(alice);
        registry.undelegate(_two(a[0], a[2])); // one Delegated, one Pending
        vm.prank(opB);
        registry.forceUndelegate(_one(b[1]));
        _assertCounts(opA, 1, 1, "A after undelegate");
        _assertCounts(opB, 2, 0, "B after force");
        // a[0] moves from A to B.
        vm.prank(alice);
        registry.delegate(_one(a[0]), opB);
        _assertCounts(opA, 1, 1, "A unchanged");
        _assertCounts(opB, 2, 1, "B pending");
    }

    // ---------------------------------------------------------------------- requireDelegated

    function test_requireDelegatedRejectsLicenseNotDelegatedToOperator() public {
        _register(opA, 700);
        _register(opB, 0);
        uint256[] memory ids = _operatorWithLicenses(opA, 700, alice, 2);
        assertEq(registry.requireDelegated(opA, ids), 700, "commission");
        // Delegated to someone else.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotDelegatedTo.selector, ids[0], opB));
        registry.requireDelegated(opB, ids);
        // Pending is not enough.
        uint256[] memory pend = _mintLicenses(alice, 1);
        vm.prank(alice);
        registry.delegate(pend, opA);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotDelegatedTo.selector, pend[0], opA));
        registry.requireDelegated(opA, _two(ids[0], pend[0]));
        // Free is not enough.
        vm.prank(alice);
        registry.undelegate(_one(ids[1]));
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotDelegatedTo.selector, ids[1], opA));
        registry.requireDelegated(opA, ids);
        // A heartbeat takes no ids (issue 16): only a registered operator may send one.
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperator.selector, alice));
        vm.prank(alice);
        protocol.heartbeat();
    }

    // ------------------------------------------------------------------------- license hook

    function test_onLicenseTransferOnlyFromTheLicense() public {
        uint256[] memory ids = _operatorWithLicenses(opA, 0, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotLicense.selector, alice));
        vm.prank(alice);
        registry.onLicenseTransfer(ids[0]);
        _assertState(ids[0], opA, OperatorRegistry.LicenseState.Delegated, "unchanged");
    }

    function test_licenseTransferEndsDelegationAndSettlesEarnedEpoch() public {
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(opA, 1000, alice, 1);
        _rollToEpoch(1);
        vm.prank(opA);
        protocol.heartbeat();
        _rollToEpoch(2);
        vm.warp(license.transferUnlockTime());
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        _assertState(ids[0], address(0), OperatorRegistry.LicenseState.Free, "free after transfer");
        _assertCounts(opA, 0, 0, "opA");
        // Epoch 1 held its own emission plus epoch 0's (no active license): 2000 for the one license,
        // booked at the transfer with A's 10%.
        assertEq(vault.commissionOf(opA), 200 ether, "commission booked at transfer");
        (int128 bal,,,) = vault.accounts(ids[0]);
        assertEq(int256(bal), int256(1800 ether), "balance booked at transfer");
        // The new owner claims what the license holds.
        vm.prank(bob);
        assertEq(vault.claim(ids), 1800 ether, "bob claims");
    }

    // ------------------------------------------------------------------------ listing views

    /// The per-epoch views of the list: a license is listed under its operator from the epoch after it became
    /// Delegated until the epoch after it left, and each operator's listed count follows.
    function test_listingViewsFollowDelegationFromTheNextEpoch() public {
        _register(opA, 700);
        _register(opB, 0);
        (uint256 ia, uint16 bpsA) = registry.operatorIndexOf(opA);
        (uint256 ib,) = registry.operatorIndexOf(opB);
        (uint256 none,) = registry.operatorIndexOf(alice);
        assertEq(ia, 1, "A registered first");
        assertEq(ib, 2, "B second");
        assertEq(bpsA, 700, "commission");
        assertEq(none, 0, "not an operator");
        uint256[] memory ids = _operatorWithLicenses(opA, 700, alice, 2); // epoch 0
        assertEq(registry.operatorOfAt(ids[0], 0), 0, "not listed in the epoch it was delegated in");
        assertEq(registry.operatorOfAt(ids[0], 1), ia, "listed under A from epoch 1");
        assertEq(registry.listedCountAt(ia, 0), 0, "A: none in epoch 0");
        assertEq(registry.listedCountAt(ia, 1), 2, "A: two from epoch 1");
        _rollToEpoch(1);
        // Pending is not listed; approved in epoch 1, listed from epoch 2.
        uint256[] memory more = _mintLicenses(bob, 1);
        vm.prank(bob);
        registry.delegate(more, opB);
        assertEq(registry.listedCountAt(ib, 2), 0, "pending: not listed");
        vm.prank(opB);
        registry.approve(more);
        assertEq(registry.operatorOfAt(more[0], 1), 0, "not in epoch 1");
        assertEq(registry.operatorOfAt(more[0], 2), ib, "under B from epoch 2");
        // Undelegated in epoch 1: still listed in epoch 1, gone from epoch 2.
        vm.prank(alice);
        registry.undelegate(_one(ids[1]));
        assertEq(registry.operatorOfAt(ids[1], 1), ia, "epoch 1 keeps it");
        assertEq(registry.operatorOfAt(ids[1], 2), 0, "gone from epoch 2");
        assertEq(registry.listedCountAt(ia, 1), 2, "A's count of epoch 1 unchanged");
        assertEq(registry.listedCountAt(ia, 2), 1, "one from epoch 2");
        assertEq(registry.listedAt(2), 2, "list of epoch 2: one of A, one of B");
    }

    function test_parkIsOnlyTheVault() public {
        uint256[] memory ids = _operatorWithLicenses(opA, 0, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotVault.selector, opA));
        vm.prank(opA);
        registry.park(ids[0]);
        assertFalse(registry.isParked(ids[0]), "not parked");
        // The vault parking a license that is not Delegated changes nothing.
        uint256[] memory free = _mintLicenses(alice, 1);
        vm.prank(address(vault));
        registry.park(free[0]);
        assertFalse(registry.isParked(free[0]), "a free license is never parked");
    }

    function test_resumeRejectsALicenseThatIsNotParked() public {
        uint256[] memory ids = _operatorWithLicenses(opA, 0, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotParked.selector, ids[0]));
        registry.resume(ids);
        uint256[] memory free = _mintLicenses(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NotParked.selector, free[0]));
        registry.resume(free);
    }

    /// A parked license that leaves its operator is no longer parked, and keeps its suspension: delegated again
    /// while suspended, it is parked at once.
    function test_aLicenseDelegatedWhileSuspendedIsParkedAtOnce() public {
        _register(opB, 0);
        uint256[] memory ids = _operatorWithLicenses(opA, 0, alice, 1);
        _rollToEpoch(2);
        vm.startPrank(address(protocol));
        vault.penalize(ids, 1, 1, address(0));
        vault.penalize(ids, 1, 2, address(0));
        vault.penalize(ids, 1, 3, address(0));
        vm.stopPrank();
        assertTrue(vault.isSuspended(ids[0], 3), "suspended");
        assertTrue(registry.isParked(ids[0]), "parked");
        assertEq(registry.operatorOfAt(ids[0], 2), _opIndex(opA), "still listed in the epoch of the suspension");
        assertEq(registry.operatorOfAt(ids[0], 3), 0, "unlisted from the next");
        vm.prank(alice);
        registry.undelegate(ids);
        assertFalse(registry.isParked(ids[0]), "free: not parked");
        vm.prank(alice);
        registry.delegate(ids, opB);
        vm.prank(opB);
        registry.approve(ids);
        _assertState(ids[0], opB, OperatorRegistry.LicenseState.Delegated, "delegated to B");
        assertTrue(registry.isParked(ids[0]), "parked at once");
        assertEq(registry.operatorOfAt(ids[0], 3), 0, "not listed under B");
        assertEq(registry.listedCountAt(_opIndex(opB), 3), 0, "B lists nothing");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.StillSuspended.selector, ids[0]));
        registry.resume(ids);
    }

    // --------------------------------------------------------------------------- reward vault

    function test_setRewardVaultOnceAndNotZero() public {
        OperatorRegistry fresh = new OperatorRegistry(ILicenseOwners(address(license)), 0, address(this));
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.ZeroAddress.selector));
        fresh.setRewardVault(IRewardSettle(address(0)));
        fresh.setRewardVault(IRewardSettle(address(vault)));
        assertEq(address(fresh.rewardVault()), address(vault), "set");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.AlreadySet.selector));
        fresh.setRewardVault(IRewardSettle(address(0xBEEF)));
        // The deployed registry is already wired.
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.AlreadySet.selector));
        vm.prank(address(timelock));
        registry.setRewardVault(IRewardSettle(address(0xBEEF)));
    }

    // ------------------------------------------------------------------- settle on transition

    /// Active under A (10%) in epoch 1, moved to B (40%) once epoch 1 has ended: epoch 1's commission is A's,
    /// booked by the undelegation itself.
    function test_redelegationAfterEpochEndCreditsEndedEpochAtFirstOperatorsRate() public {
        _fundEmission(100_000 ether);
        _register(opB, 4000);
        uint256[] memory ids = _operatorWithLicenses(opA, 1000, alice, 1);
        _rollToEpoch(1);
        vm.prank(opA);
        protocol.heartbeat();

        _rollToEpoch(2);
        vm.prank(alice);
        registry.undelegate(ids);
        // Budget of epoch 1 = 1000 (carried from empty epoch 0) + 1000 = 2000 for one license.
        assertEq(vault.commissionOf(opA), 200 ether, "A's 10% booked at undelegate");
        vm.prank(alice);
        registry.delegate(ids, opB);
        vm.prank(opB);
        registry.approve(ids);
        // Listed under B from epoch 3: B's heartbeat in epoch 2 makes nothing active.
        vm.prank(opB);
        protocol.heartbeat();
        assertEq(vault.activeCount(2), 0, "nobody active in epoch 2");
        assertFalse(vault.isActive(ids[0], 2), "not listed in epoch 2");
        assertEq(vault.commissionOf(opB), 0, "B earned nothing of epoch 1");

        _rollToEpoch(3);
        vm.prank(opB);
        protocol.heartbeat();
        assertTrue(vault.isActive(ids[0], 3), "active under B from epoch 3");
        _rollToEpoch(4);
        vm.prank(alice);
        uint256 paid = vault.claim(ids);
        // Epoch 2 (nobody active) carried its 1000 into epoch 3: 2000, 40% to B.
        assertEq(vault.commissionOf(opA), 200 ether, "A unchanged");
        assertEq(vault.commissionOf(opB), 800 ether, "B's 40% of epoch 3");
        assertEq(paid, 1800 ether + 1200 ether, "owner's share of both epochs");
    }

    /// Moved to B while epoch 1 is still running: the credit of epoch 1 is A's, at A's rate, booked once epoch 1
    /// has ended by whatever touches A or the license (not by B's heartbeat).
    function test_redelegationWithinEpochKeepsEarnedCommissionWithFirstOperator() public {
        _fundEmission(100_000 ether);
        _register(opB, 4000);
        uint256[] memory ids = _operatorWithLicenses(opA, 1000, alice, 1);
        _rollToEpoch(1);
        vm.prank(opA);
        protocol.heartbeat();
        vm.startPrank(alice);
        registry.undelegate(ids);
        registry.delegate(ids, opB);
        vm.stopPrank();
        vm.prank(opB);
        registry.approve(ids);
        assertEq(vault.commissionOf(opA), 0, "nothing booked before the epoch ends");

        _rollToEpoch(2);
        vm.prank(opB);
        protocol.heartbeat();
        assertTrue(vault.isActive(ids[0], 2), "active under B in epoch 2");
        assertEq(vault.commissionOf(opA), 0, "B's heartbeat does not book A");
        assertEq(vault.claimable(ids[0]), int256(1800 ether), "but the license can already claim it");
        vault.settleLicenses(ids);
        assertEq(vault.commissionOf(opA), 200 ether, "A's 10% of epoch 1");
        assertEq(vault.commissionOf(opB), 0, "none for B");
        (int128 bal,,,) = vault.accounts(ids[0]);
        assertEq(int256(bal), int256(1800 ether), "owner's 90%");

        vm.prank(opA);
        assertEq(vault.claimCommission(), 200 ether, "A claims");
    }

    /// Every kind of transition books the ended pending epoch before changing the state: the operator's whole
    /// present epoch (its commission for all four licenses) at the first one, the license's own share each time.
    function test_everyTransitionSettlesEndedPendingEpoch() public {
        _fundEmission(100_000 ether);
        _register(opB, 0);
        uint256[] memory ids = _operatorWithLicenses(opA, 2500, alice, 4);
        _rollToEpoch(1);
        vm.prank(opA);
        protocol.heartbeat();
        _rollToEpoch(2);
        // Epoch 1: 2000 over 4 licenses = 500 each, 25% commission = 125 each, paid as each license is credited.
        vm.prank(opA);
        registry.forceUndelegate(_one(ids[0]));
        assertEq(vault.commissionOf(opA), 125 ether, "forceUndelegate books A's epoch, credits the license");
        (int128 b1,,,) = vault.accounts(ids[1]);
        assertEq(int256(b1), 0, "the other licenses are credited lazily");
        vm.prank(alice);
        registry.undelegate(_one(ids[1]));
        assertEq(vault.commissionOf(opA), 250 ether, "undelegate: booked once, credits the license");
        (b1,,,) = vault.accounts(ids[1]);
        assertEq(int256(b1), int256(375 ether), "undelegate settles the license");
        vm.prank(alice);
        registry.delegate(_one(ids[0]), opB);
        assertEq(vault.commissionOf(opA), 250 ether, "already settled: no double booking");
        vm.prank(opB);
        registry.approve(_one(ids[0]));
        assertEq(vault.commissionOf(opA), 250 ether, "approve: still no double booking");
        (int128 b0,,,) = vault.accounts(ids[0]);
        (int128 b2,,,) = vault.accounts(ids[2]);
        assertEq(int256(b0), int256(375 ether), "settled license booked");
        assertEq(int256(b2), 0, "untouched license not yet booked");
        assertEq(vault.claimable(ids[2]), int256(375 ether), "but claimable");
    }
}
