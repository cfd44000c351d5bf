// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./utils/Test.sol";
import {OperatorRegistry, ILicenseOwners} from "../src/OperatorRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The governance-set minimum node release (OperatorRegistry.minNodeVersion), on a registry alone: the
/// setter reads nothing else, so no other contract is deployed. In a deployment its owner is the Timelock.
contract MinNodeVersionTest is Test {
    OperatorRegistry internal registry;
    address internal timelock = makeAddr("timelock");
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        registry = new OperatorRegistry(ILicenseOwners(makeAddr("license")), 0, timelock);
    }

    function _version(uint256 major, uint256 minor, uint256 patch) internal pure returns (uint32) {
        return uint32((major << 16) | (minor << 8) | patch);
    }

    function test_minNodeVersionStartsAtZeroMeaningAny() public view {
        assertEq(registry.minNodeVersion(), 0, "no minimum at deployment");
    }

    function test_ownerSetsMinNodeVersionWithEvent() public {
        uint32 v = _version(1, 2, 3);
        assertEq(v, 0x010203, "packing");
        vm.expectEmit(true, true, true, true);
        emit OperatorRegistry.MinNodeVersionSet(v);
        vm.prank(timelock);
        registry.setMinNodeVersion(v);
        assertEq(registry.minNodeVersion(), v, "set");
        vm.prank(timelock);
        registry.setMinNodeVersion(0);
        assertEq(registry.minNodeVersion(), 0, "lifted again");
    }

    function test_setMinNodeVersionRejectsAnyoneButTheOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        registry.setMinNodeVersion(_version(0, 2, 0));
        assertEq(registry.minNodeVersion(), 0, "unchanged");
    }

    function testFuzz_minNodeVersionLeavesTheOtherSettingsOfItsSlot(uint32 v, uint32 maxLicenses, bool allowlist)
        public
    {
        vm.startPrank(timelock);
        registry.setMaxLicensesPerOperator(maxLicenses);
        registry.setOperatorAllowlistEnabled(allowlist);
        registry.setMinNodeVersion(v);
        vm.stopPrank();
        assertEq(registry.minNodeVersion(), v, "version");
        assertEq(registry.maxLicensesPerOperator(), maxLicenses, "max licenses");
        assertTrue(registry.operatorAllowlistEnabled() == allowlist, "allowlist");
    }
}
