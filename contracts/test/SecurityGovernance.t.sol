// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AlignmentLicense} from "../src/AlignmentLicense.sol";
import {AlignmentGovernor} from "../src/AlignmentGovernor.sol";
import {NodeSale, ILicenseMinter} from "../src/NodeSale.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @notice Security finding M2: governance taken over during the sale. Licenses vote from mint, so while the
///         sale runs the first buyers are the whole electorate. The fixes tested here: the quorum counts on
///         the planned supply until the sale is over; the treasury, the promo codes and the pause are out of
///         governance's reach while the sale is in progress; proceeds booked during the sale always reach the
///         treasury fixed when it opened; promo discounts are capped.
contract SecurityGovernanceTest is Deployed {
    uint256 internal constant MAX = type(uint256).max;
    uint8 internal constant AGAINST = 0;
    uint8 internal constant FOR = 1;
    uint256 internal constant PLANNED = 1000; // Deployed's default tiers: 100 + 200 + 700

    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal attacker = makeAddr("attacker");
    address internal sybil = makeAddr("sybil");

    function setUp() public {
        _deploy();
    }

    // ---------------------------------------------------------------------------------- helpers

    function _rollBy(uint256 n) internal {
        vm.roll(vm.getBlockNumber() + n);
    }

    function _buy(address buyer, uint256 quantity) internal {
        uint256 cost = sale.quote(quantity);
        vm.deal(buyer, buyer.balance + cost);
        vm.prank(buyer);
        sale.buy{value: cost}(quantity, MAX, "", new bytes32[](0), 0);
    }

    function _protocolChange() internal view returns (address[] memory, uint256[] memory, bytes[] memory) {
        AuditProtocol.Params memory p =
            AuditProtocol.Params({revealBlocks: 12, committeeSize: 7, minReveals: 4, maxCommittee: 14});
        return _singleCall(address(protocol), abi.encodeCall(AuditProtocol.setParams, (p)));
    }

    /// @dev Propose as `proposer`, have every voter vote For, and roll past the deadline; returns the id.
    function _proposeAndVoteFor(
        address proposer,
        address[] memory voters,
        address[] memory t,
        uint256[] memory v,
        bytes[] memory c,
        string memory d
    ) internal returns (uint256 id) {
        _rollBy(1);
        vm.prank(proposer);
        id = governor.propose(t, v, c, d);
        _rollBy(VOTING_DELAY + 1);
        for (uint256 i; i < voters.length; ++i) {
            vm.prank(voters[i]);
            governor.castVote(id, FOR);
        }
        _rollBy(VOTING_PERIOD);
    }

    function _pair(address a, address b) internal pure returns (address[] memory out) {
        out = new address[](2);
        out[0] = a;
        out[1] = b;
    }

    // ------------------------------------------------------------------- quorum on planned supply

    function test_earlyBuyersHoldingEveryVoteCannotReachQuorum() public {
        vm.warp(publicStart);
        _buy(alice, 30);
        _buy(bob, 9);
        assertEq(license.totalMinted(), 39, "every license minted so far");
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _protocolChange();
        uint256 id = _proposeAndVoteFor(alice, _pair(alice, bob), t, v, c, "early majority");
        assertEq(governor.quorum(governor.proposalSnapshot(id)), PLANNED * 4 / 100, "4 % of the planned 1000");
        (, uint256 forVotes,) = governor.proposalVotes(id);
        assertEq(forVotes, 39, "all 39 votes For");
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Defeated), "below quorum: defeated");
    }

    function test_quorumIsOnThePlannedSupplyBeforeAnyLicenseIsMinted() public {
        assertEq(governor.plannedSupply(), PLANNED, "planned");
        assertEq(governor.plannedSupplyUntil(), saleEnd, "until the sale's end");
        _rollBy(2);
        assertEq(license.getPastTotalSupply(vm.getBlockNumber() - 1), 0, "nothing minted");
        assertEq(governor.quorum(vm.getBlockNumber() - 1), 40, "4 % of the plan");
    }

    function test_quorumFallsToMintedSupplyOnceTheSaleIsOver() public {
        vm.warp(publicStart);
        _buy(alice, 30);
        _buy(bob, 9);
        vm.expectRevert(abi.encodeWithSelector(AlignmentGovernor.SupplyNotSettleable.selector, publicStart, saleEnd));
        governor.settleSupply();

        // The sale ends 961 licenses short: the first proposal after it settles the supply on the 39 minted.
        vm.warp(saleEnd);
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _protocolChange();
        uint256 id = _proposeAndVoteFor(alice, _pair(alice, bob), t, v, c, "after the sale");
        assertTrue(governor.supplySettledAt() != 0, "settled by propose");
        assertEq(governor.quorum(governor.proposalSnapshot(id)), 1, "4 % of 39, rounded down");
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Succeeded), "succeeded");
        vm.expectRevert(abi.encodeWithSelector(AlignmentGovernor.SupplyNotSettleable.selector, saleEnd, saleEnd));
        governor.settleSupply();
    }

    function test_settlingDoesNotChangeTheQuorumOfEarlierSnapshots() public {
        vm.warp(publicStart);
        _buy(alice, 30);
        _rollBy(2);
        uint256 before = vm.getBlockNumber() - 1;
        vm.warp(saleEnd);
        governor.settleSupply();
        _rollBy(1);
        assertEq(governor.quorum(before), 40, "snapshot before settling: planned supply");
        assertEq(governor.quorum(vm.getBlockNumber() - 1), 1, "from settling on: 4 % of 30");
    }

    // ---------------------------------------------------- the finding's attack, end to end

    function test_earlyCohortProposalCannotTakeTheSaleOrItsProceeds() public {
        // The whole first tier (100 licenses, 10 ether) in two wallets: 10 % of the plan, above the 4 % quorum.
        vm.warp(publicStart);
        _buy(attacker, 50);
        _buy(sybil, 50);
        (address[] memory t, uint256[] memory v, bytes[] memory c) =
            _singleCall(address(sale), abi.encodeCall(NodeSale.setTreasury, (attacker)));
        string memory d = "treasury to me";
        uint256 id = _proposeAndVoteFor(attacker, _pair(attacker, sybil), t, v, c, d);
        assertEq(uint256(governor.state(id)), uint256(IGovernor.ProposalState.Succeeded), "passed by the cohort");
        governor.queue(t, v, c, keccak256(bytes(d)));
        uint256 eta = governor.proposalEta(id);
        vm.warp(eta);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, eta, saleEnd));
        governor.execute(t, v, c, keccak256(bytes(d)));
        assertEq(sale.treasury(), treasury, "treasury unchanged during the sale");

        // Later buyers pay into the treasury fixed at open.
        _buy(carol, 10);
        uint256 booked = sale.treasuryBalance();
        assertEq(booked, 10 ether + 2 ether, "tier 1 and ten tier-2 licenses");

        // Executed once the sale is over, the change pays what the sale booked to the old treasury first.
        vm.warp(saleEnd);
        uint256 before = treasury.balance;
        governor.execute(t, v, c, keccak256(bytes(d)));
        assertEq(sale.treasury(), attacker, "treasury changed after the sale");
        assertEq(treasury.balance - before, booked, "the sale's proceeds reached the treasury fixed at open");
        assertEq(attacker.balance, 0, "the cohort got none of them");
        assertEq(sale.treasuryBalance(), 0, "nothing left to redirect");
    }

    // ------------------------------------------------------------- sale setters during the sale

    function test_setTreasuryRevertsDuringTheSaleAndWorksBeforeAndAfter() public {
        address next = makeAddr("next");
        vm.prank(address(timelock));
        sale.setTreasury(next); // before the sale opens
        assertEq(sale.treasury(), next, "set before open");
        for (uint256 i; i < 3; ++i) {
            uint64 when = [allowlistStart, publicStart, saleEnd - 1][i];
            vm.warp(when);
            assertTrue(sale.saleInProgress(), "in progress");
            vm.prank(address(timelock));
            vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, when, saleEnd));
            sale.setTreasury(treasury);
        }
        vm.warp(saleEnd);
        assertFalse(sale.saleInProgress(), "over");
        assertTrue(sale.saleEnded(), "ended");
        vm.prank(address(timelock));
        sale.setTreasury(treasury);
        assertEq(sale.treasury(), treasury, "set after the sale");
    }

    function test_setPromoCodeRevertsDuringTheSaleAndWorksAfter() public {
        vm.prank(address(timelock));
        sale.setPromoCode(keccak256("EARLY"), 1000, address(0), 0);
        vm.warp(publicStart);
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, publicStart, saleEnd));
        sale.setPromoCode(keccak256("LATE"), 1000, address(0), 0);
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, publicStart, saleEnd));
        sale.setPromoCode(keccak256("EARLY"), 0, address(0), 0); // nor changed or removed
        assertEq(sale.quoteWithPromo(10, "EARLY"), 0.9 ether, "the code published before open still applies");
        vm.warp(saleEnd);
        vm.prank(address(timelock));
        sale.setPromoCode(keccak256("LATE"), 1000, address(0), 0);
        (uint16 discount,,) = sale.promos(keccak256("LATE"));
        assertEq(discount, 1000, "set after the sale");
    }

    function test_settersWorkOnceTheSaleSellsOut() public {
        NodeSale.Tier[] memory t = new NodeSale.Tier[](1);
        t[0] = NodeSale.Tier(1 ether, 3);
        AlignmentLicense lic = new AlignmentLicense("Small", "SML", block.timestamp + 365 days, address(this));
        NodeSale small = new NodeSale(
            ILicenseMinter(address(lic)),
            t,
            uint64(block.timestamp),
            uint64(block.timestamp),
            uint64(block.timestamp + 1000),
            5,
            50,
            bytes32(0),
            treasury,
            address(this)
        );
        lic.setMinter(address(small));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, block.timestamp, block.timestamp + 1000));
        small.setTreasury(alice);
        vm.deal(bob, 3 ether);
        vm.prank(bob);
        small.buy{value: 3 ether}(3, MAX, "", new bytes32[](0), 0);
        assertTrue(small.saleEnded() && !small.saleInProgress(), "sold out");
        uint256 before = treasury.balance;
        small.setTreasury(alice);
        assertEq(treasury.balance - before, 3 ether, "booked proceeds paid to the old treasury");
        small.setPromoCode(keccak256("X"), 100, address(0), 0);
        small.pause();
    }

    function test_promoDiscountAboveTheCapIsRefused() public {
        assertEq(sale.MAX_DISCOUNT_BPS(), 2000, "20 %");
        vm.startPrank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("FREE"), 10_000, address(0), 0);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("FREE"), 2001, address(0), 0);
        sale.setPromoCode(keccak256("MAX"), 2000, address(0), 0);
        vm.stopPrank();
        vm.warp(publicStart);
        assertEq(sale.quoteWithPromo(10, "MAX"), 0.8 ether, "20 % off");
    }

    function test_pauseRefusedDuringTheSaleButUnpauseAllowed() public {
        vm.prank(address(timelock));
        sale.pause(); // before open: allowed
        vm.warp(publicStart);
        vm.prank(address(timelock));
        sale.unpause();
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleInProgress.selector, publicStart, saleEnd));
        sale.pause();
        _buy(alice, 1);
        assertEq(license.balanceOf(alice), 1, "later buyers cannot be kept out");
    }

    function test_pauseBeforeOpenBlocksBuysUntilUnpaused() public {
        vm.prank(address(timelock));
        sale.pause();
        vm.warp(publicStart);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        sale.buy{value: 0.1 ether}(1, MAX, "", new bytes32[](0), 0);
    }
}
