// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AlignmentLicense} from "../src/AlignmentLicense.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/// @dev Pays nothing and accepts no licenses.
contract NotAReceiver {}

contract AlignmentLicenseTest is Deployed {
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal op = makeAddr("operator");
    address internal stranger = makeAddr("stranger");

    uint256 internal unlock;

    function setUp() public {
        _deploy();
        unlock = license.transferUnlockTime();
    }

    function _fresh() internal returns (AlignmentLicense) {
        return new AlignmentLicense("Fresh", "FRS", block.timestamp + 1 days, address(this));
    }

    // ------------------------------------------------------------------------------------ wiring

    function test_deploymentWiresSaleAsMinterAndRegistryAsHook() public view {
        assertEq(license.minter(), address(sale), "minter");
        assertEq(license.transferHook(), address(registry), "hook");
        assertEq(license.owner(), address(timelock), "owner");
        assertEq(unlock, 1_000_000 + 365 days, "unlock time");
        assertEq(license.totalMinted(), 0, "nothing minted");
    }

    function test_setMinterRejectsSecondCall() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        license.setMinter(stranger);
        assertEq(license.minter(), address(sale), "minter unchanged");
    }

    function test_setTransferHookRejectsSecondCall() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        license.setTransferHook(stranger);
        assertEq(license.transferHook(), address(registry), "hook unchanged");
    }

    function test_setMinterAndHookRejectNonOwner() public {
        address[3] memory callers = [address(this), address(governor), stranger];
        for (uint256 i; i < callers.length; ++i) {
            bytes memory err = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, callers[i]);
            vm.prank(callers[i]);
            vm.expectRevert(err);
            license.setMinter(callers[i]);
            vm.prank(callers[i]);
            vm.expectRevert(err);
            license.setTransferHook(callers[i]);
        }
    }

    function test_setMinterRejectsZeroAddressThenSetsOnce() public {
        AlignmentLicense lic = _fresh();
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.ZeroAddress.selector));
        lic.setMinter(address(0));
        assertEq(lic.minter(), address(0), "still unset");
        vm.expectEmit(true, true, true, true);
        emit AlignmentLicense.MinterSet(alice);
        lic.setMinter(alice);
        assertEq(lic.minter(), alice, "minter");
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        lic.setMinter(bob);
    }

    function test_setTransferHookRejectsZeroAddressThenSetsOnce() public {
        AlignmentLicense lic = _fresh();
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.ZeroAddress.selector));
        lic.setTransferHook(address(0));
        vm.expectEmit(true, true, true, true);
        emit AlignmentLicense.TransferHookSet(alice);
        lic.setTransferHook(alice);
        assertEq(lic.transferHook(), alice, "hook");
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        lic.setTransferHook(bob);
    }

    // -------------------------------------------------------------------------------------- mint

    function test_mintRejectsAnyoneButTheMinter() public {
        address[4] memory callers = [address(this), address(timelock), address(governor), stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.NotMinter.selector, callers[i]));
            license.mint(alice);
        }
        assertEq(license.totalMinted(), 0, "nothing minted");
    }

    function test_mintByMinterIssuesSequentialIdsFromOne() public {
        vm.prank(address(sale));
        uint256 a = license.mint(alice);
        vm.prank(address(sale));
        uint256 b = license.mint(bob);
        assertEq(a, 1, "first id");
        assertEq(b, 2, "second id");
        assertEq(license.ownerOf(1), alice, "owner 1");
        assertEq(license.ownerOf(2), bob, "owner 2");
        assertEq(license.totalMinted(), 2, "minted");
    }

    function test_mintToContractWithoutReceiverReverts() public {
        NotAReceiver c = new NotAReceiver();
        vm.prank(address(sale));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(c)));
        license.mint(address(c));
    }

    function test_ownersOfReturnsEachOwnerAndZeroForUnminted() public {
        _mintLicenses(alice, 2);
        _mintLicenses(bob, 1);
        uint256[] memory ids = new uint256[](5);
        ids[0] = 3;
        ids[1] = 1;
        ids[2] = 0;
        ids[3] = 2;
        ids[4] = 4;
        address[] memory owners = license.ownersOf(ids);
        assertEq(owners.length, 5, "length");
        assertEq(owners[0], bob, "3");
        assertEq(owners[1], alice, "1");
        assertEq(owners[2], address(0), "0 never minted");
        assertEq(owners[3], alice, "2");
        assertEq(owners[4], address(0), "4 not yet minted");
        assertEq(license.ownersOf(new uint256[](0)).length, 0, "empty");
    }

    // ------------------------------------------------------------------------------------- votes

    function test_mintedLicenseSelfDelegatesVotes() public {
        assertEq(license.delegates(alice), address(0), "no delegate before");
        _mintLicenses(alice, 3);
        assertEq(license.delegates(alice), alice, "self-delegated");
        assertEq(license.getVotes(alice), 3, "votes");
        assertEq(license.getVotes(alice), license.balanceOf(alice), "votes == balance");
        uint256 mintBlock = vm.getBlockNumber();
        vm.roll(mintBlock + 1);
        assertEq(license.getPastVotes(alice, mintBlock), 3, "past votes");
        assertEq(license.getPastTotalSupply(mintBlock), 3, "past supply");
    }

    function test_licenseBoughtInSaleVotes() public {
        vm.warp(publicStart);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 0.4 ether}(4, type(uint256).max, "", new bytes32[](0), 0);
        assertEq(license.getVotes(alice), 4, "votes");
        assertEq(license.delegates(alice), alice, "self-delegated");
    }

    function test_mintKeepsAVoteDelegateAlreadyChosen() public {
        _mintLicenses(bob, 1);
        vm.prank(alice);
        license.delegate(bob);
        _mintLicenses(alice, 2);
        assertEq(license.delegates(alice), bob, "delegate kept");
        assertEq(license.getVotes(alice), 0, "alice votes through bob");
        assertEq(license.getVotes(bob), 3, "bob's own + alice's");
    }

    // ---------------------------------------------------------------------------------- transfer

    function test_transferBeforeUnlockIsSoulbound() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.warp(unlock - 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.Soulbound.selector, ids[0], unlock));
        license.transferFrom(alice, bob, ids[0]);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.Soulbound.selector, ids[0], unlock));
        license.safeTransferFrom(alice, bob, ids[0]);
        // An approved operator cannot move it either.
        vm.prank(alice);
        license.setApprovalForAll(carol, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.Soulbound.selector, ids[0], unlock));
        license.transferFrom(alice, bob, ids[0]);
        assertEq(license.ownerOf(ids[0]), alice, "still alice's");
    }

    function test_transferAllowedFromUnlockTimeOn() public {
        uint256[] memory ids = _mintLicenses(alice, 2);
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        assertEq(license.ownerOf(ids[0]), bob, "bob owns it");
        vm.warp(unlock + 30 days);
        vm.prank(alice);
        license.safeTransferFrom(alice, carol, ids[1]);
        assertEq(license.ownerOf(ids[1]), carol, "carol owns it");
        assertEq(license.balanceOf(alice), 0, "alice has none");
    }

    function test_transferResetsDelegatedLicenseToFree() public {
        uint256[] memory ids = _operatorWithLicenses(op, 1000, alice, 2);
        (address o, OperatorRegistry.LicenseState s) = registry.delegationOf(ids[0]);
        assertEq(o, op, "delegated to op");
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Delegated), "delegated");
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        (o, s) = registry.delegationOf(ids[0]);
        assertEq(o, address(0), "no operator");
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Free), "free");
        (o, s) = registry.delegationOf(ids[1]);
        assertEq(o, op, "other license untouched");
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Delegated), "other still delegated");
        assertEq(registry.getOperator(op).delegated, 1, "operator count");
        // The new owner can delegate it afresh.
        vm.prank(bob);
        registry.delegate(_one(ids[0]), op);
        (, s) = registry.delegationOf(ids[0]);
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Pending), "bob's delegation pending");
    }

    function test_transferResetsPendingLicenseToFree() public {
        vm.prank(op);
        registry.registerOperator(500, "ipfs://op");
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.prank(alice);
        registry.delegate(ids, op);
        assertEq(registry.getOperator(op).pending, 1, "pending");
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        (address o, OperatorRegistry.LicenseState s) = registry.delegationOf(ids[0]);
        assertEq(o, address(0), "no operator");
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Free), "free");
        assertEq(registry.getOperator(op).pending, 0, "pending cleared");
    }

    function test_transferOfFreeLicenseLeavesItFree() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        (address o, OperatorRegistry.LicenseState s) = registry.delegationOf(ids[0]);
        assertEq(o, address(0), "no operator");
        assertEq(uint256(s), uint256(OperatorRegistry.LicenseState.Free), "free");
    }

    function test_transferMovesVotesBetweenSelfDelegatedHolders() public {
        uint256[] memory ids = _mintLicenses(alice, 2);
        _mintLicenses(bob, 1);
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, bob, ids[0]);
        assertEq(license.getVotes(alice), 1, "alice");
        assertEq(license.getVotes(bob), 2, "bob");
        assertEq(license.getVotes(alice) + license.getVotes(bob), 3, "no vote created or lost");
    }

    /// @dev Only a mint self-delegates: a license received by transfer votes once the receiver delegates.
    function test_transferToAccountWithoutDelegateVotesOnceItDelegates() public {
        uint256[] memory ids = _mintLicenses(alice, 1);
        vm.warp(unlock);
        vm.prank(alice);
        license.transferFrom(alice, carol, ids[0]);
        assertEq(license.getVotes(alice), 0, "alice lost the vote");
        assertEq(license.getVotes(carol), 0, "carol has not delegated");
        vm.prank(carol);
        license.delegate(carol);
        assertEq(license.getVotes(carol), 1, "carol votes");
    }
}
