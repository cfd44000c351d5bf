// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AlignmentLicense} from "../src/AlignmentLicense.sol";
import {NodeSale} from "../src/NodeSale.sol";
import {OperatorRegistry, IRewardSettle} from "../src/OperatorRegistry.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract GovernanceTest is Deployed {
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal whale = makeAddr("whale");
    address internal stranger = makeAddr("stranger");

    uint8 internal constant AGAINST = 0;
    uint8 internal constant FOR = 1;
    uint8 internal constant ABSTAIN = 2;

    function setUp() public {
        _deploy();
    }

    // ---------------------------------------------------------------------------------- helpers

    /// @dev via-IR may re-read NUMBER after a roll, so read the block number through the cheatcode.
    function _rollBy(uint256 n) internal {
        vm.roll(vm.getBlockNumber() + n);
    }

    function _state(uint256 id) internal view returns (uint256) {
        return uint256(governor.state(id));
    }

    function _s(IGovernor.ProposalState s) internal pure returns (uint256) {
        return uint256(s);
    }

    function _newProtocolParams() internal pure returns (AuditProtocol.Params memory) {
        return AuditProtocol.Params({revealBlocks: 12, committeeSize: 7, minReveals: 4, maxCommittee: 14});
    }

    function _newVaultParams() internal pure returns (RewardVault.Params memory p) {
        p = RewardVault.Params({
            nodeShareBps: 6500,
            stakerShareBps: 2500,
            missBountyBps: 1500,
            missPenaltyBps: 40_000,
            disagreePenaltyBps: 25_000,
            trapPenaltyBps: 120_000,
            suspendAfter: 4,
            suspendWindow: 12,
            suspendEpochs: 30,
            emissionPerEpoch: 2000 ether
        });
    }

    function _paramsProposal()
        internal
        view
        returns (address[] memory t, uint256[] memory v, bytes[] memory c, string memory description)
    {
        t = new address[](2);
        v = new uint256[](2);
        c = new bytes[](2);
        t[0] = address(protocol);
        c[0] = abi.encodeCall(AuditProtocol.setParams, (_newProtocolParams()));
        t[1] = address(vault);
        c[1] = abi.encodeCall(RewardVault.setParams, (_newVaultParams()));
        description = "Raise the committee to 7 and retune rewards";
    }

    /// @dev The sale is over: from here on the quorum counts on the licenses minted, not the planned supply.
    function _afterSale() internal {
        vm.warp(saleEnd);
        governor.settleSupply();
    }

    // ------------------------------------------------------------------------------- round trip

    function test_holdersChangeProtocolAndVaultParamsThroughGovernorAndTimelock() public {
        // alice buys her licenses in the sale; bob and carol get theirs minted as the sale would.
        vm.warp(publicStart);
        vm.deal(alice, 10 ether);
        vm.prank(alice);
        sale.buy{value: 5 ether}(50, type(uint256).max, "", new bytes32[](0), 0);
        _mintLicenses(bob, 10);
        _mintLicenses(carol, 5);
        _rollBy(1);
        assertEq(license.getVotes(alice), 50, "alice votes");

        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(alice);
        uint256 id = governor.propose(t, v, c, d);
        assertEq(id, governor.hashProposal(t, v, c, keccak256(bytes(d))), "proposal id");
        assertEq(_state(id), _s(IGovernor.ProposalState.Pending), "pending");
        uint256 proposedAt = vm.getBlockNumber();
        assertEq(governor.proposalSnapshot(id), proposedAt + VOTING_DELAY, "snapshot");
        assertEq(governor.proposalDeadline(id), proposedAt + VOTING_DELAY + VOTING_PERIOD, "deadline");
        // During the sale the quorum counts on the planned supply (1000 licenses), not the 65 minted.
        assertEq(governor.quorum(proposedAt - 1), 40, "quorum: 4 % of the planned 1000 licenses");

        _rollBy(VOTING_DELAY + 1);
        assertEq(_state(id), _s(IGovernor.ProposalState.Active), "active");
        vm.prank(alice);
        assertEq(governor.castVote(id, FOR), 50, "alice weight");
        vm.prank(bob);
        assertEq(governor.castVote(id, AGAINST), 10, "bob weight");
        vm.prank(carol);
        assertEq(governor.castVote(id, ABSTAIN), 5, "carol weight");
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        assertEq(forVotes, 50, "for");
        assertEq(against, 10, "against");
        assertEq(abstain, 5, "abstain");

        _rollBy(VOTING_PERIOD);
        assertEq(_state(id), _s(IGovernor.ProposalState.Succeeded), "succeeded");

        bytes32 descHash = keccak256(bytes(d));
        governor.queue(t, v, c, descHash);
        assertEq(_state(id), _s(IGovernor.ProposalState.Queued), "queued");
        uint256 eta = publicStart + TIMELOCK_DELAY;
        assertEq(governor.proposalEta(id), eta, "eta");
        bytes32 salt = bytes20(address(governor)) ^ descHash;
        bytes32 opId = timelock.hashOperationBatch(t, v, c, 0, salt);
        assertTrue(timelock.isOperationPending(opId), "scheduled in the timelock");

        // Not before the delay.
        vm.warp(eta - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                opId,
                bytes32(1 << uint8(TimelockController.OperationState.Ready))
            )
        );
        governor.execute(t, v, c, descHash);

        vm.warp(eta);
        governor.execute(t, v, c, descHash);
        assertEq(_state(id), _s(IGovernor.ProposalState.Executed), "executed");
        assertTrue(timelock.isOperationDone(opId), "done in the timelock");

        (uint32 revealBlocks, uint16 committeeSize, uint16 minReveals, uint16 maxCommittee) = protocol.params();
        assertEq(committeeSize, 7, "committee size");
        assertEq(revealBlocks, 12, "reveal blocks");
        assertEq(minReveals, 4, "min reveals");
        assertEq(maxCommittee, 14, "max committee");
        (
            uint16 nodeShareBps,
            uint16 stakerShareBps,
            uint16 missBountyBps,
            uint32 missPenaltyBps,
            uint32 disagreePenaltyBps,
            uint32 trapPenaltyBps,
            uint16 suspendAfter,
            uint32 suspendWindow,
            uint32 suspendEpochs,
            uint128 emissionPerEpoch
        ) = vault.params();
        assertEq(nodeShareBps, 6500, "node share");
        assertEq(stakerShareBps, 2500, "staker share");
        assertEq(missBountyBps, 1500, "miss bounty");
        assertEq(missPenaltyBps, 40_000, "miss penalty");
        assertEq(disagreePenaltyBps, 25_000, "disagree penalty");
        assertEq(trapPenaltyBps, 120_000, "trap penalty");
        assertEq(suspendAfter, 4, "suspend after");
        assertEq(suspendWindow, 12, "suspend window");
        assertEq(suspendEpochs, 30, "suspend epochs");
        assertEq(emissionPerEpoch, 2000 ether, "emission");

        // Executed once only.
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Executed,
                bytes32(1 << uint8(IGovernor.ProposalState.Queued))
            )
        );
        governor.execute(t, v, c, descHash);
    }

    function test_proposalBelowQuorumIsDefeated() public {
        _mintLicenses(whale, 96);
        _mintLicenses(alice, 3);
        _mintLicenses(bob, 1);
        _afterSale();
        _rollBy(1);
        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(alice);
        uint256 id = governor.propose(t, v, c, d);
        _rollBy(VOTING_DELAY + 1);
        assertEq(governor.quorum(governor.proposalSnapshot(id)), 4, "quorum = 4 % of 100");
        vm.prank(alice);
        governor.castVote(id, FOR);
        _rollBy(VOTING_PERIOD);
        assertEq(_state(id), _s(IGovernor.ProposalState.Defeated), "3 of 4 needed: defeated");
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Defeated,
                bytes32(1 << uint8(IGovernor.ProposalState.Succeeded))
            )
        );
        governor.queue(t, v, c, keccak256(bytes(d)));
        (, uint16 committeeSize,,) = protocol.params();
        assertEq(committeeSize, 5, "unchanged");
    }

    function test_proposalReachingExactlyQuorumSucceeds() public {
        _mintLicenses(whale, 96);
        _mintLicenses(alice, 3);
        _mintLicenses(bob, 1);
        _afterSale();
        _rollBy(1);
        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(alice);
        uint256 id = governor.propose(t, v, c, d);
        _rollBy(VOTING_DELAY + 1);
        vm.prank(alice);
        governor.castVote(id, FOR);
        vm.prank(bob);
        governor.castVote(id, ABSTAIN); // abstain counts towards quorum
        _rollBy(VOTING_PERIOD);
        assertEq(_state(id), _s(IGovernor.ProposalState.Succeeded), "4 of 4: succeeded");
    }

    function test_proposalWithMoreVotesAgainstIsDefeated() public {
        _mintLicenses(alice, 3);
        _mintLicenses(bob, 4);
        _rollBy(1);
        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(alice);
        uint256 id = governor.propose(t, v, c, d);
        _rollBy(VOTING_DELAY + 1);
        vm.prank(alice);
        governor.castVote(id, FOR);
        vm.prank(bob);
        governor.castVote(id, AGAINST);
        _rollBy(VOTING_PERIOD);
        assertEq(_state(id), _s(IGovernor.ProposalState.Defeated), "defeated");
    }

    function test_accountWithoutLicenseCannotPropose() public {
        _mintLicenses(alice, 3);
        _rollBy(1);
        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IGovernor.GovernorInsufficientProposerVotes.selector, stranger, 0, 1)
        );
        governor.propose(t, v, c, d);
    }

    function test_licensesMintedAfterSnapshotDoNotVote() public {
        _mintLicenses(alice, 3);
        _rollBy(1);
        (address[] memory t, uint256[] memory v, bytes[] memory c, string memory d) = _paramsProposal();
        vm.prank(alice);
        uint256 id = governor.propose(t, v, c, d);
        _rollBy(VOTING_DELAY + 1);
        _mintLicenses(bob, 50);
        vm.prank(bob);
        assertEq(governor.castVote(id, AGAINST), 0, "bob had no license at the snapshot");
    }

    function test_timelockSchedulesOnlyForTheGovernor() public {
        (address[] memory t, uint256[] memory v, bytes[] memory c) =
            _singleCall(address(protocol), abi.encodeCall(AuditProtocol.setEpochLength, (40)));
        bytes32 role = timelock.PROPOSER_ROLE();
        assertTrue(timelock.hasRole(role, address(governor)), "governor proposes");
        assertFalse(timelock.hasRole(role, address(this)), "deployer does not");
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(this)), "deployer not admin");
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role));
        timelock.scheduleBatch(t, v, c, 0, bytes32(0), TIMELOCK_DELAY);
    }

    // ------------------------------------------------------------------ setters: timelock only

    function _callers() internal view returns (address[4] memory) {
        return [address(this), address(governor), alice, stranger];
    }

    function _unauthorized(address caller) internal {
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, caller));
    }

    function test_licenseSettersAreTimelockOnlyAndAlreadySet() public {
        address[4] memory callers = _callers();
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            license.setMinter(callers[i]);
            _unauthorized(callers[i]);
            license.setTransferHook(callers[i]);
        }
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        license.setMinter(stranger);
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(AlignmentLicense.AlreadySet.selector));
        license.setTransferHook(stranger);
        assertEq(license.minter(), address(sale), "minter");
        assertEq(license.transferHook(), address(registry), "hook");
    }

    function test_saleSettersAreTimelockOnly() public {
        address[4] memory callers = _callers();
        bytes32 h = keccak256("CODE");
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            sale.setPromoCode(h, 100, alice, 100);
            _unauthorized(callers[i]);
            sale.setAllowlistRoot(h);
            _unauthorized(callers[i]);
            sale.setTreasury(stranger);
            _unauthorized(callers[i]);
            sale.pause();
            _unauthorized(callers[i]);
            sale.unpause();
        }
        vm.startPrank(address(timelock));
        sale.setPromoCode(h, 100, alice, 200);
        sale.setAllowlistRoot(h);
        sale.setTreasury(stranger);
        sale.pause();
        assertTrue(sale.paused(), "paused");
        sale.unpause();
        vm.stopPrank();
        (uint16 d, uint16 r, address ref) = sale.promos(h);
        assertEq(d, 100, "discount");
        assertEq(r, 200, "referrer bps");
        assertEq(ref, alice, "referrer");
        assertEq(sale.allowlistRoot(), h, "root");
        assertEq(sale.treasury(), stranger, "treasury");
        assertFalse(sale.paused(), "unpaused");
    }

    function test_registrySettersAreTimelockOnly() public {
        address[4] memory callers = _callers();
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            registry.setMaxLicensesPerOperator(7);
            _unauthorized(callers[i]);
            registry.setOperatorAllowlistEnabled(true);
            _unauthorized(callers[i]);
            registry.setOperatorAllowlisted(alice, true);
            _unauthorized(callers[i]);
            registry.setRewardVault(IRewardSettle(stranger));
        }
        vm.startPrank(address(timelock));
        registry.setMaxLicensesPerOperator(7);
        registry.setOperatorAllowlistEnabled(true);
        registry.setOperatorAllowlisted(alice, true);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.AlreadySet.selector));
        registry.setRewardVault(IRewardSettle(stranger));
        vm.stopPrank();
        assertEq(registry.maxLicensesPerOperator(), 7, "max");
        assertTrue(registry.operatorAllowlistEnabled(), "allowlist on");
        assertTrue(registry.operatorAllowlisted(alice), "alice allowlisted");
        assertFalse(registry.operatorAllowlisted(bob), "bob not");
        assertEq(address(registry.rewardVault()), address(vault), "vault unchanged");
    }

    function test_targetRegistrySettersAreTimelockOnly() public {
        uint256 id = _addTarget(1);
        address[4] memory callers = _callers();
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            targets.setTargetEnabled(id, false);
            _unauthorized(callers[i]);
            targets.setTrapKeeper(callers[i]);
        }
        _rollBy(1);
        vm.startPrank(address(timelock));
        targets.setTargetEnabled(id, false);
        targets.setTrapKeeper(stranger);
        vm.stopPrank();
        assertFalse(targets.getTarget(id).enabled, "disabled");
        assertEq(targets.trapKeeper(), stranger, "keeper");
    }

    function test_vaultSettersAreTimelockOnly() public {
        address[4] memory callers = _callers();
        RewardVault.Params memory p = _newVaultParams();
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            vault.setParams(p);
            _unauthorized(callers[i]);
            vault.setTreasury(stranger);
            _unauthorized(callers[i]);
            vault.wire(stranger, stranger);
        }
        vm.startPrank(address(timelock));
        vault.setParams(p);
        vault.setTreasury(stranger);
        vm.expectRevert(abi.encodeWithSelector(RewardVault.AlreadySet.selector));
        vault.wire(stranger, stranger);
        vm.stopPrank();
        (,, uint16 missBountyBps,,,,,,, uint128 emission) = vault.params();
        assertEq(missBountyBps, 1500, "miss bounty");
        assertEq(emission, 2000 ether, "emission");
        assertEq(vault.treasury(), stranger, "treasury");
        assertEq(vault.protocol(), address(protocol), "protocol unchanged");
    }

    function test_protocolSettersAreTimelockOnly() public {
        address[4] memory callers = _callers();
        AuditProtocol.Params memory p = _newProtocolParams();
        for (uint256 i; i < callers.length; ++i) {
            _unauthorized(callers[i]);
            protocol.setParams(p);
            _unauthorized(callers[i]);
            protocol.setEpochLength(40);
        }
        uint256 next = protocol.currentEpoch() + 1;
        uint256 boundary = protocol.epochStartBlock(next);
        vm.startPrank(address(timelock));
        protocol.setParams(p);
        protocol.setEpochLength(40);
        vm.stopPrank();
        (, uint16 committeeSize,,) = protocol.params();
        assertEq(committeeSize, 7, "committee");
        (uint64 anchorBlock, uint32 anchorEpoch, uint32 length) = protocol.clock();
        assertEq(anchorBlock, boundary, "new clock from next boundary");
        assertEq(anchorEpoch, next, "epoch numbers continue");
        assertEq(length, 40, "length");
        assertEq(protocol.epochStartBlock(next + 1), boundary + 40, "next epoch is 40 blocks");
    }

    function test_everyOwnableContractIsOwnedByTheTimelock() public view {
        assertEq(license.owner(), address(timelock), "license");
        assertEq(sale.owner(), address(timelock), "sale");
        assertEq(registry.owner(), address(timelock), "registry");
        assertEq(targets.owner(), address(timelock), "targets");
        assertEq(vault.owner(), address(timelock), "vault");
        assertEq(protocol.owner(), address(timelock), "protocol");
    }
}
