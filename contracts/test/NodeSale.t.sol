// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AlignmentLicense} from "../src/AlignmentLicense.sol";
import {NodeSale, ILicenseMinter} from "../src/NodeSale.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/// @dev A buyer (and referrer) whose receive() or onERC721Received() re-enters the sale.
contract ReentrantBuyer {
    enum Mode {
        None,
        BuyFromRefund,
        WithdrawReferralFromRefund,
        WithdrawProceedsFromRefund,
        BuyFromMint
    }

    NodeSale public immutable sale;
    Mode public mode;
    /// @dev When true the failed re-entry is caught, so the outer call can finish; else its revert bubbles up.
    bool public swallow;
    uint256 public attempts;
    bool public reentrySucceeded;
    bytes public lastError;

    constructor(NodeSale sale_) {
        sale = sale_;
    }

    function configure(Mode mode_, bool swallow_) external {
        mode = mode_;
        swallow = swallow_;
    }

    function buy(uint256 quantity, uint256 value, string calldata code) external returns (uint256) {
        return sale.buy{value: value}(quantity, type(uint256).max, code, new bytes32[](0), 0);
    }

    function withdrawReferral() external {
        sale.withdrawReferral();
    }

    receive() external payable {
        if (mode == Mode.BuyFromRefund || mode == Mode.WithdrawReferralFromRefund || mode == Mode.WithdrawProceedsFromRefund)
        {
            _attack();
        }
    }

    function onERC721Received(address, address, uint256, bytes calldata) external returns (bytes4) {
        if (mode == Mode.BuyFromMint) _attack();
        return this.onERC721Received.selector;
    }

    bool private _attacking;

    /// @dev One nested attempt per outer callback; a re-entrant buy pays with everything the attacker holds,
    ///      so only the guard (not a payment check) can stop it.
    function _attack() internal {
        if (_attacking) return;
        _attacking = true;
        attempts += 1;
        bytes memory data;
        uint256 value;
        if (mode == Mode.WithdrawReferralFromRefund) {
            data = abi.encodeCall(NodeSale.withdrawReferral, ());
        } else if (mode == Mode.WithdrawProceedsFromRefund) {
            data = abi.encodeCall(NodeSale.withdrawProceeds, ());
        } else {
            data = abi.encodeCall(NodeSale.buy, (1, type(uint256).max, "", new bytes32[](0), 0));
            value = address(this).balance;
        }
        (bool ok, bytes memory ret) = address(sale).call{value: value}(data);
        _attacking = false;
        if (ok) reentrySucceeded = true;
        lastError = ret;
        if (!ok && !swallow) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}

/// @dev Holds licenses but refuses the native coin.
contract CoinRejecter {
    function buy(NodeSale sale, uint256 quantity, uint256 value) external {
        sale.buy{value: value}(quantity, type(uint256).max, "", new bytes32[](0), 0);
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC721Received.selector;
    }
}

/// @dev A contract that can pay but cannot receive licenses.
contract NoReceiverBuyer {
    function buy(NodeSale sale, uint256 quantity) external payable {
        sale.buy{value: msg.value}(quantity, type(uint256).max, "", new bytes32[](0), 0);
    }
}

contract NodeSaleTest is Deployed {
    uint256 internal constant MAX = type(uint256).max;
    uint256 internal constant PUBLIC_CAP = 50;
    uint256 internal constant ALLOWLIST_CAP = 5;

    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal dave = makeAddr("dave");
    address internal eve = makeAddr("eve");
    address internal referrer = makeAddr("referrer");
    address internal stranger = makeAddr("stranger");

    bytes32 internal root;
    mapping(address => bytes32[]) internal proofOf;
    mapping(address => uint256) internal allowanceOf;

    function setUp() public {
        _deploy();
        address[4] memory accounts = [alice, bob, carol, dave];
        uint256[4] memory allowances = [uint256(2), 10, 1, 5];
        bytes32[][] memory proofs;
        (root, proofs) = _tree(accounts, allowances);
        for (uint256 i; i < 4; ++i) {
            proofOf[accounts[i]] = proofs[i];
            allowanceOf[accounts[i]] = allowances[i];
        }
        vm.prank(address(timelock));
        sale.setAllowlistRoot(root);
    }

    // ------------------------------------------------------------------------------ merkle helpers

    function _leaf(address account, uint256 allowance) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, allowance))));
    }

    /// @dev OpenZeppelin's commutative pair hash: the smaller word first.
    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encodePacked(a, b)) : keccak256(abi.encodePacked(b, a));
    }

    /// @dev A 4-leaf tree: root = H(H(l0, l1), H(l2, l3)).
    function _tree(address[4] memory accounts, uint256[4] memory allowances)
        internal
        pure
        returns (bytes32 treeRoot, bytes32[][] memory proofs)
    {
        bytes32[4] memory l;
        for (uint256 i; i < 4; ++i) {
            l[i] = _leaf(accounts[i], allowances[i]);
        }
        bytes32 n01 = _hashPair(l[0], l[1]);
        bytes32 n23 = _hashPair(l[2], l[3]);
        treeRoot = _hashPair(n01, n23);
        proofs = new bytes32[][](4);
        for (uint256 i; i < 4; ++i) {
            proofs[i] = new bytes32[](2);
            proofs[i][0] = l[i ^ 1];
            proofs[i][1] = i < 2 ? n23 : n01;
        }
    }

    // ---------------------------------------------------------------------------------- helpers

    function _none() internal pure returns (bytes32[] memory) {
        return new bytes32[](0);
    }

    function _buy(address buyer, uint256 quantity, uint256 value) internal returns (uint256) {
        vm.deal(buyer, buyer.balance + value);
        vm.prank(buyer);
        return sale.buy{value: value}(quantity, MAX, "", _none(), 0);
    }

    /// @dev Reference cost: walk unit by unit, each unit priced by the tier its position falls in.
    function _refCost(NodeSale.Tier[] memory t, uint256 alreadySold, uint256 quantity)
        internal
        pure
        returns (uint256 cost)
    {
        for (uint256 unit = alreadySold; unit < alreadySold + quantity; ++unit) {
            uint256 edge;
            uint256 i;
            while (true) {
                edge += t[i].supply;
                if (unit < edge) break;
                ++i;
            }
            cost += t[i].price;
        }
    }

    function _sum(NodeSale.Tier[] memory t) internal pure returns (uint256 total) {
        for (uint256 i; i < t.length; ++i) {
            total += t[i].supply;
        }
    }

    /// @dev A standalone license + sale owned by this test, already in its public phase.
    function _smallSale(NodeSale.Tier[] memory t, uint32 publicCap)
        internal
        returns (AlignmentLicense lic, NodeSale s)
    {
        lic = new AlignmentLicense("Small", "SML", block.timestamp + 365 days, address(this));
        s = new NodeSale(
            ILicenseMinter(address(lic)),
            t,
            uint64(block.timestamp),
            uint64(block.timestamp),
            uint64(block.timestamp + 1000),
            uint32(ALLOWLIST_CAP),
            publicCap,
            bytes32(0),
            treasury,
            address(this)
        );
        lic.setMinter(address(s));
    }

    function _tiers3(uint256 s0, uint256 s1, uint256 s2, uint256 p0, uint256 p1, uint256 p2)
        internal
        pure
        returns (NodeSale.Tier[] memory t)
    {
        t = new NodeSale.Tier[](3);
        t[0] = NodeSale.Tier(uint128(p0), uint128(s0));
        t[1] = NodeSale.Tier(uint128(p1), uint128(s1));
        t[2] = NodeSale.Tier(uint128(p2), uint128(s2));
    }

    function _toPublic() internal {
        vm.warp(publicStart);
    }

    function _setPromo(string memory code, uint16 discountBps, address ref, uint16 referrerBps) internal {
        vm.prank(address(timelock));
        sale.setPromoCode(keccak256(bytes(code)), discountBps, ref, referrerBps);
    }

    // ------------------------------------------------------------------------------ constructor

    function _construct(NodeSale.Tier[] memory t, uint64 a, uint64 p, uint64 e, address lic, address tr)
        internal
        returns (NodeSale)
    {
        return new NodeSale(ILicenseMinter(lic), t, a, p, e, 5, 50, bytes32(0), tr, address(this));
    }

    function test_constructorRejectsNoTiers() public {
        NodeSale.Tier[] memory t = new NodeSale.Tier[](0);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NoTiers.selector));
        _construct(t, 10, 20, 30, address(license), treasury);
    }

    function test_constructorRejectsTierWithZeroSupply() public {
        NodeSale.Tier[] memory t = _tiers3(10, 0, 10, 1, 2, 3);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidTier.selector, 1));
        _construct(t, 10, 20, 30, address(license), treasury);
    }

    function test_constructorRejectsAllowlistAfterPublicStart() public {
        NodeSale.Tier[] memory t = _defaultTiers();
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidSchedule.selector));
        _construct(t, 21, 20, 30, address(license), treasury);
    }

    function test_constructorRejectsSaleEndingWhenPublicStarts() public {
        NodeSale.Tier[] memory t = _defaultTiers();
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidSchedule.selector));
        _construct(t, 10, 30, 30, address(license), treasury);
    }

    function test_constructorRejectsZeroTreasury() public {
        NodeSale.Tier[] memory t = _defaultTiers();
        vm.expectRevert(abi.encodeWithSelector(NodeSale.ZeroAddress.selector));
        _construct(t, 10, 20, 30, address(license), address(0));
    }

    function test_constructorRejectsZeroLicense() public {
        NodeSale.Tier[] memory t = _defaultTiers();
        vm.expectRevert(abi.encodeWithSelector(NodeSale.ZeroAddress.selector));
        _construct(t, 10, 20, 30, address(0), treasury);
    }

    function test_constructorAcceptsAllowlistPhaseOfZeroLength() public {
        NodeSale s = _construct(_defaultTiers(), 20, 20, 30, address(license), treasury);
        assertEq(s.allowlistStart(), 20, "allowlistStart");
        assertEq(s.publicStart(), 20, "publicStart");
    }

    function test_deployedSaleExposesTiersScheduleAndCaps() public view {
        NodeSale.Tier[] memory t = sale.tiers();
        assertEq(t.length, 3, "tiers");
        assertEq(t[0].price, 0.1 ether, "p0");
        assertEq(t[0].supply, 100, "s0");
        assertEq(t[1].price, 0.2 ether, "p1");
        assertEq(t[1].supply, 200, "s1");
        assertEq(t[2].price, 0.4 ether, "p2");
        assertEq(t[2].supply, 700, "s2");
        assertEq(sale.totalSupplyCap(), 1000, "cap");
        assertEq(sale.allowlistStart(), allowlistStart, "allowlistStart");
        assertEq(sale.publicStart(), publicStart, "publicStart");
        assertEq(sale.saleEnd(), saleEnd, "saleEnd");
        assertEq(sale.allowlistMaxPerWallet(), ALLOWLIST_CAP, "allowlist cap");
        assertEq(sale.publicMaxPerWallet(), PUBLIC_CAP, "public cap");
        assertEq(sale.treasury(), treasury, "treasury");
        assertEq(sale.allowlistRoot(), root, "root");
        (uint256 index, uint256 price, uint256 remaining) = sale.currentTier();
        assertEq(index, 0, "index");
        assertEq(price, 0.1 ether, "price");
        assertEq(remaining, 100, "remaining");
    }

    // ---------------------------------------------------------------------------------- quotes

    function test_quoteCrossesEveryTierBoundary() public view {
        assertEq(sale.quote(1), 0.1 ether, "1");
        assertEq(sale.quote(100), 10 ether, "100");
        assertEq(sale.quote(101), 10.2 ether, "101");
        assertEq(sale.quote(300), 10 ether + 40 ether, "300");
        assertEq(sale.quote(301), 50.4 ether, "301");
        assertEq(sale.quote(1000), 10 ether + 40 ether + 280 ether, "1000");
    }

    function test_quoteRejectsMoreThanTheSaleHolds() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SoldOut.selector, 1001, 1000));
        sale.quote(1001);
    }

    // ------------------------------------------------------------------------------- buy: timing

    function test_buyRejectsZeroQuantity() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.ZeroQuantity.selector));
        sale.buy{value: 1 ether}(0, MAX, "", _none(), 0);
    }

    function test_buyRejectsBeforeAllowlistOpens() public {
        vm.warp(allowlistStart - 1);
        bytes32[] memory proof = proofOf[alice];
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleNotOpen.selector, allowlistStart - 1, allowlistStart));
        sale.buy{value: 1 ether}(1, MAX, "", proof, 2);
    }

    function test_buyRejectsFromSaleEnd() public {
        vm.warp(saleEnd);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SaleEnded.selector, saleEnd, saleEnd));
        sale.buy{value: 1 ether}(1, MAX, "", _none(), 0);
    }

    function test_buyAcceptedInLastSecondOfSale() public {
        vm.warp(saleEnd - 1);
        _buy(alice, 1, 0.1 ether);
        assertEq(sale.sold(), 1, "sold");
    }

    // ------------------------------------------------------------------------------- buy: public

    function test_publicBuyMintsLicensesAndBooksProceeds() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        uint256 first = sale.buy{value: 0.3 ether}(3, 0.3 ether, "", _none(), 0);
        assertEq(first, 1, "first id");
        assertEq(license.balanceOf(alice), 3, "licenses");
        assertEq(license.ownerOf(1), alice, "owner 1");
        assertEq(license.ownerOf(3), alice, "owner 3");
        assertEq(license.totalMinted(), 3, "minted");
        assertEq(sale.sold(), 3, "sold");
        assertEq(sale.boughtInPublic(alice), 3, "bought public");
        assertEq(sale.boughtInAllowlist(alice), 0, "bought allowlist");
        assertEq(sale.treasuryBalance(), 0.3 ether, "treasury owed");
        assertEq(address(sale).balance, 0.3 ether, "sale balance");
        assertEq(alice.balance, 0.7 ether, "alice paid");
        assertEq(license.getVotes(alice), 3, "votes");

        uint256 second = _buy(bob, 2, 0.2 ether);
        assertEq(second, 4, "ids continue");
        assertEq(license.ownerOf(5), bob, "owner 5");
    }

    function test_buyEmitsPurchased() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.expectEmit(true, true, true, true);
        emit NodeSale.Purchased(alice, 1, 2, 0.2 ether, bytes32(0));
        vm.prank(alice);
        sale.buy{value: 0.5 ether}(2, MAX, "", _none(), 0);
    }

    function test_buyAcrossTierBoundaryPaysEachUnitAtItsTier() public {
        _toPublic();
        _buy(bob, 50, 5 ether);
        _buy(carol, 48, 4.8 ether);
        assertEq(sale.quote(5), 2 * 0.1 ether + 3 * 0.2 ether, "quote");
        vm.deal(alice, 10 ether);
        vm.prank(alice);
        sale.buy{value: 10 ether}(5, 0.8 ether, "", _none(), 0);
        assertEq(alice.balance, 10 ether - 0.8 ether, "paid per tier");
        assertEq(sale.treasuryBalance(), 5 ether + 4.8 ether + 0.8 ether, "proceeds");
        (uint256 index, uint256 price, uint256 remaining) = sale.currentTier();
        assertEq(index, 1, "tier");
        assertEq(price, 0.2 ether, "price");
        assertEq(remaining, 197, "remaining");
    }

    function test_buyRefundsOverpaymentInTheSameCall() public {
        _toPublic();
        vm.deal(alice, 10 ether);
        vm.prank(alice);
        sale.buy{value: 7 ether}(2, MAX, "", _none(), 0);
        assertEq(alice.balance, 10 ether - 0.2 ether, "only the cost left alice");
        assertEq(address(sale).balance, 0.2 ether, "sale keeps only the cost");
        assertEq(sale.treasuryBalance(), 0.2 ether, "proceeds");
    }

    function test_buyRejectsUnderpayment() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InsufficientPayment.selector, 0.2 ether, 0.2 ether - 1));
        sale.buy{value: 0.2 ether - 1}(2, MAX, "", _none(), 0);
    }

    function test_buyRejectsCostAboveMaxCost() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.CostAboveMax.selector, 0.2 ether, 0.2 ether - 1));
        sale.buy{value: 1 ether}(2, 0.2 ether - 1, "", _none(), 0);
    }

    function test_maxCostProtectsAgainstATierMove() public {
        _toPublic();
        _buy(bob, 50, 5 ether);
        _buy(carol, 49, 4.9 ether);
        // alice saw quote(2) = 0.2 ether, but one license left in tier 0 by the time she buys.
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.CostAboveMax.selector, 0.3 ether, 0.2 ether));
        sale.buy{value: 1 ether}(2, 0.2 ether, "", _none(), 0);
    }

    function test_publicBuyRejectsMoreThanWalletCapAtOnce() public {
        _toPublic();
        vm.deal(alice, 100 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, 51, 50));
        sale.buy{value: 100 ether}(51, MAX, "", _none(), 0);
    }

    function test_publicBuyRejectsPurchasesPastWalletCap() public {
        _toPublic();
        _buy(alice, 45, 4.5 ether);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, 6, 5));
        sale.buy{value: 1 ether}(6, MAX, "", _none(), 0);
        _buy(alice, 5, 0.5 ether);
        assertEq(sale.boughtInPublic(alice), 50, "cap reached");
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, 1, 0));
        sale.buy{value: 1 ether}(1, MAX, "", _none(), 0);
    }

    function test_publicPhaseIgnoresProofAndAllowance() public {
        _toPublic();
        bytes32[] memory junk = new bytes32[](1);
        junk[0] = keccak256("junk");
        vm.deal(eve, 1 ether);
        vm.prank(eve);
        sale.buy{value: 0.1 ether}(1, MAX, "", junk, 777);
        assertEq(license.balanceOf(eve), 1, "eve bought");
        assertEq(sale.boughtInAllowlist(eve), 0, "not an allowlist purchase");
    }

    function test_buyToContractWithoutReceiverReverts() public {
        _toPublic();
        NoReceiverBuyer b = new NoReceiverBuyer();
        vm.deal(address(this), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(b)));
        b.buy{value: 0.1 ether}(sale, 1);
    }

    // ---------------------------------------------------------------------------- buy: sold out

    function test_saleNeverSellsPastItsLastTier() public {
        NodeSale.Tier[] memory t = _tiers3(2, 3, 4, 1 ether, 2 ether, 3 ether);
        (AlignmentLicense lic, NodeSale s) = _smallSale(t, 100);
        vm.deal(alice, 100 ether);
        vm.startPrank(alice);
        s.buy{value: 3 ether}(2, MAX, "", _none(), 0);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SoldOut.selector, 8, 7));
        s.buy{value: 50 ether}(8, MAX, "", _none(), 0);
        s.buy{value: 50 ether}(7, MAX, "", _none(), 0);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.SoldOut.selector, 1, 0));
        s.buy{value: 50 ether}(1, MAX, "", _none(), 0);
        vm.stopPrank();
        assertEq(s.sold(), 9, "sold");
        assertEq(lic.totalMinted(), 9, "minted");
        assertEq(alice.balance, 100 ether - (2 * 1 ether + 3 * 2 ether + 4 * 3 ether), "paid");
        (uint256 index, uint256 price, uint256 remaining) = s.currentTier();
        assertEq(index, 3, "sold out index");
        assertEq(price, 0, "price");
        assertEq(remaining, 0, "remaining");
    }

    // ------------------------------------------------------------------------------- allowlist

    function test_allowlistBuyWithValidProofUpToAllowance() public {
        vm.warp(allowlistStart);
        bytes32[] memory proof = proofOf[alice];
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 0.2 ether}(2, MAX, "", proof, 2);
        assertEq(sale.boughtInAllowlist(alice), 2, "bought");
        assertEq(license.balanceOf(alice), 2, "licenses");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, 1, 0));
        sale.buy{value: 0.1 ether}(1, MAX, "", proof, 2);
    }

    function test_allowlistCapIsTheSmallerOfAllowanceAndPhaseMax() public {
        vm.warp(allowlistStart);
        bytes32[] memory proof = proofOf[bob]; // allowance 10, phase max 5
        vm.deal(bob, 10 ether);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, bob, 6, 5));
        sale.buy{value: 1 ether}(6, MAX, "", proof, 10);
        vm.prank(bob);
        sale.buy{value: 0.5 ether}(5, MAX, "", proof, 10);
        assertEq(sale.boughtInAllowlist(bob), 5, "bought");
        assertEq(bob.balance, 10 ether - 0.5 ether, "paid");
    }

    function test_allowlistEveryLeafOfTheTreeVerifies() public {
        vm.warp(allowlistStart);
        address[4] memory accounts = [alice, bob, carol, dave];
        for (uint256 i; i < 4; ++i) {
            bytes32[] memory proof = proofOf[accounts[i]];
            uint256 allowance = allowanceOf[accounts[i]];
            vm.deal(accounts[i], 1 ether);
            vm.prank(accounts[i]);
            sale.buy{value: 0.1 ether}(1, MAX, "", proof, allowance);
            assertEq(license.balanceOf(accounts[i]), 1, "bought");
        }
        assertEq(sale.sold(), 4, "sold");
    }

    /// @dev An account listed twice with different allowances keeps one allowlist count: after buying under the
    ///      larger allowance it may buy nothing under the smaller one, and is told so with WalletCapExceeded.
    function test_allowlistAccountListedTwiceIsCappedByTheLeafItUses() public {
        address[4] memory accounts = [alice, alice, carol, dave];
        uint256[4] memory allowances = [uint256(5), 2, 1, 5];
        (bytes32 r, bytes32[][] memory proofs) = _tree(accounts, allowances);
        vm.prank(address(timelock));
        sale.setAllowlistRoot(r);
        vm.warp(allowlistStart);
        vm.deal(alice, 10 ether);
        vm.prank(alice);
        sale.buy{value: 0.5 ether}(5, MAX, "", proofs[0], 5);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, 1, 0));
        sale.buy{value: 0.1 ether}(1, MAX, "", proofs[1], 2);
        assertEq(sale.boughtInAllowlist(alice), 5, "bought");
    }

    function test_allowlistRejectsWrongAllowance() public {
        vm.warp(allowlistStart);
        bytes32[] memory proof = proofOf[alice];
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NotAllowlisted.selector, alice));
        sale.buy{value: 0.1 ether}(1, MAX, "", proof, 3);
    }

    function test_allowlistRejectsAnotherAccountsProof() public {
        vm.warp(allowlistStart);
        bytes32[] memory proof = proofOf[alice];
        vm.deal(eve, 1 ether);
        vm.prank(eve);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NotAllowlisted.selector, eve));
        sale.buy{value: 0.1 ether}(1, MAX, "", proof, 2);
    }

    function test_allowlistRejectsEmptyProof() public {
        vm.warp(allowlistStart);
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NotAllowlisted.selector, alice));
        sale.buy{value: 0.1 ether}(1, MAX, "", _none(), 2);
    }

    function test_allowlistPurchasesDoNotCountTowardsPublicCap() public {
        vm.warp(allowlistStart);
        bytes32[] memory proof = proofOf[dave];
        vm.deal(dave, 100 ether);
        vm.prank(dave);
        sale.buy{value: 0.5 ether}(5, MAX, "", proof, 5);
        _toPublic();
        vm.prank(dave);
        sale.buy{value: 5 ether}(50, MAX, "", _none(), 0);
        assertEq(license.balanceOf(dave), 55, "licenses");
        assertEq(sale.boughtInAllowlist(dave), 5, "allowlist");
        assertEq(sale.boughtInPublic(dave), 50, "public");
    }

    function test_setAllowlistRootBeforeOpenReplacesTree() public {
        address[4] memory accounts = [eve, bob, carol, dave];
        uint256[4] memory allowances = [uint256(3), 10, 1, 5];
        (bytes32 newRoot, bytes32[][] memory proofs) = _tree(accounts, allowances);
        vm.expectEmit(true, true, true, true);
        emit NodeSale.AllowlistRootSet(newRoot);
        vm.prank(address(timelock));
        sale.setAllowlistRoot(newRoot);
        assertEq(sale.allowlistRoot(), newRoot, "root");
        vm.warp(allowlistStart);
        vm.deal(eve, 1 ether);
        vm.prank(eve);
        sale.buy{value: 0.3 ether}(3, MAX, "", proofs[0], 3);
        assertEq(license.balanceOf(eve), 3, "eve now allowlisted");
        bytes32[] memory oldProof = proofOf[alice];
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NotAllowlisted.selector, alice));
        sale.buy{value: 0.1 ether}(1, MAX, "", oldProof, 2);
    }

    function test_setAllowlistRootLockedOnceSaleOpens() public {
        vm.warp(allowlistStart);
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.AllowlistLocked.selector));
        sale.setAllowlistRoot(keccak256("other"));
        assertEq(sale.allowlistRoot(), root, "root unchanged");
    }

    // ---------------------------------------------------------------------------------- promos

    function test_setPromoCodeStoresTerms() public {
        bytes32 h = keccak256("FRIEND");
        vm.expectEmit(true, true, true, true);
        emit NodeSale.PromoCodeSet(h, 1000, referrer, 500);
        _setPromo("FRIEND", 1000, referrer, 500);
        (uint16 d, uint16 r, address ref) = sale.promos(h);
        assertEq(d, 1000, "discount");
        assertEq(r, 500, "referrer bps");
        assertEq(ref, referrer, "referrer");
    }

    function test_setPromoCodeRejectsDiscountAboveFullPrice() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("X"), 10_001, referrer, 0);
    }

    function test_setPromoCodeRejectsDiscountAboveTheCap() public {
        uint16 cap = sale.MAX_DISCOUNT_BPS();
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("X"), cap + 1, referrer, 0);
    }

    function test_setPromoCodeRejectsReferrerShareAboveFull() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("X"), 0, referrer, 10_001);
    }

    function test_setPromoCodeRejectsReferrerShareWithoutReferrer() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.InvalidPromo.selector));
        sale.setPromoCode(keccak256("X"), 500, address(0), 1);
    }

    function test_buyRejectsUnknownPromoCode() public {
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.UnknownPromoCode.selector, keccak256("NOPE")));
        sale.buy{value: 1 ether}(1, MAX, "NOPE", _none(), 0);
    }

    function test_promoCodeDiscountsAndCreditsReferrer() public {
        _setPromo("FRIEND", 1000, referrer, 500);
        _toPublic();
        // gross 0.3, discount 10% -> 0.27; referrer 5% of 0.27 = 0.0135; treasury 0.2565.
        assertEq(sale.quoteWithPromo(3, "FRIEND"), 0.27 ether, "quote with promo");
        assertEq(sale.quoteWithPromo(3, ""), 0.3 ether, "quote without promo");
        vm.deal(alice, 2 ether);
        vm.expectEmit(true, true, true, true);
        emit NodeSale.ReferralCredited(referrer, keccak256("FRIEND"), 0.0135 ether);
        vm.expectEmit(true, true, true, true);
        emit NodeSale.Purchased(alice, 1, 3, 0.27 ether, keccak256("FRIEND"));
        vm.prank(alice);
        sale.buy{value: 1.27 ether}(3, 0.27 ether, "FRIEND", _none(), 0);
        assertEq(alice.balance, 2 ether - 0.27 ether, "alice paid the discounted cost");
        assertEq(sale.referralBalance(referrer), 0.0135 ether, "referral");
        assertEq(sale.treasuryBalance(), 0.2565 ether, "treasury");
        assertEq(address(sale).balance, 0.27 ether, "sale holds both");
    }

    function test_promoCodeWithoutDiscountStillCreditsReferrer() public {
        _setPromo("REF", 0, referrer, 2500);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 0.4 ether}(4, MAX, "REF", _none(), 0);
        assertEq(alice.balance, 0.6 ether, "full price");
        assertEq(sale.referralBalance(referrer), 0.1 ether, "25% to referrer");
        assertEq(sale.treasuryBalance(), 0.3 ether, "rest to treasury");
    }

    function test_largestDiscountChargesEightyPercent() public {
        _setPromo("MAX", 2000, address(0), 0);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 0.16 ether}(2, 0.16 ether, "MAX", _none(), 0);
        assertEq(license.balanceOf(alice), 2, "licenses");
        assertEq(sale.treasuryBalance(), 0.16 ether, "80 % of the price owed");
    }

    function test_removedPromoCodeIsUnknown() public {
        _setPromo("OLD", 1000, address(0), 0);
        _setPromo("OLD", 0, address(0), 0);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.UnknownPromoCode.selector, keccak256("OLD")));
        sale.buy{value: 1 ether}(1, MAX, "OLD", _none(), 0);
    }

    function test_referrerWithdrawsShareByPull() public {
        _setPromo("FRIEND", 1000, referrer, 500);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 0.27 ether}(3, MAX, "FRIEND", _none(), 0);
        uint256 before = referrer.balance;
        vm.expectEmit(true, true, true, true);
        emit NodeSale.ReferralWithdrawn(referrer, 0.0135 ether);
        vm.prank(referrer);
        sale.withdrawReferral();
        assertEq(referrer.balance - before, 0.0135 ether, "paid");
        assertEq(sale.referralBalance(referrer), 0, "cleared");
        assertEq(address(sale).balance, 0.2565 ether, "treasury part stays");
        vm.prank(referrer);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NothingToWithdraw.selector));
        sale.withdrawReferral();
    }

    function test_withdrawReferralRejectsAccountWithNothingOwed() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NothingToWithdraw.selector));
        sale.withdrawReferral();
    }

    // -------------------------------------------------------------------------------- treasury

    function test_withdrawProceedsPaysTreasuryWhoeverCalls() public {
        _toPublic();
        _buy(alice, 3, 0.3 ether);
        uint256 before = treasury.balance;
        vm.expectEmit(true, true, true, true);
        emit NodeSale.ProceedsWithdrawn(treasury, 0.3 ether);
        vm.prank(stranger);
        sale.withdrawProceeds();
        assertEq(treasury.balance - before, 0.3 ether, "treasury paid");
        assertEq(sale.treasuryBalance(), 0, "cleared");
        assertEq(address(sale).balance, 0, "sale empty");
        assertEq(stranger.balance, 0, "caller got nothing");
    }

    function test_withdrawProceedsRejectsWhenNothingOwed() public {
        vm.expectRevert(abi.encodeWithSelector(NodeSale.NothingToWithdraw.selector));
        sale.withdrawProceeds();
    }

    function test_setTreasuryRedirectsProceeds() public {
        address newTreasury = makeAddr("newTreasury");
        vm.expectEmit(true, true, true, true);
        emit NodeSale.TreasurySet(newTreasury);
        vm.prank(address(timelock));
        sale.setTreasury(newTreasury);
        _toPublic();
        _buy(alice, 1, 0.1 ether);
        uint256 oldBefore = treasury.balance;
        sale.withdrawProceeds();
        assertEq(newTreasury.balance, 0.1 ether, "new treasury paid");
        assertEq(treasury.balance, oldBefore, "old treasury not paid");
    }

    function test_setTreasuryRejectsZeroAddress() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(NodeSale.ZeroAddress.selector));
        sale.setTreasury(address(0));
    }

    function test_withdrawProceedsRevertsAndKeepsBalanceWhenTreasuryRejects() public {
        CoinRejecter rejecter = new CoinRejecter();
        vm.prank(address(timelock));
        sale.setTreasury(address(rejecter));
        _toPublic();
        _buy(alice, 2, 0.2 ether);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.TransferFailed.selector, address(rejecter), 0.2 ether));
        sale.withdrawProceeds();
        assertEq(sale.treasuryBalance(), 0.2 ether, "still owed");
        assertEq(address(sale).balance, 0.2 ether, "still held");
    }

    function test_refundToBuyerThatRejectsCoinRevertsPurchase() public {
        _toPublic();
        CoinRejecter rejecter = new CoinRejecter();
        vm.deal(address(rejecter), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.TransferFailed.selector, address(rejecter), 0.05 ether));
        rejecter.buy(sale, 1, 0.15 ether);
        assertEq(sale.sold(), 0, "nothing sold");
        // Paying the exact cost needs no refund, so it works.
        rejecter.buy(sale, 1, 0.1 ether);
        assertEq(license.balanceOf(address(rejecter)), 1, "bought");
        assertEq(address(rejecter).balance, 0.9 ether, "paid exactly");
    }

    // ------------------------------------------------------------------------------------ pause

    function test_pausedSaleRejectsBuysUntilUnpaused() public {
        vm.prank(address(timelock));
        sale.pause(); // before the sale opens: a pause cannot start while it is in progress
        _toPublic();
        assertTrue(sale.paused(), "paused");
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        sale.buy{value: 0.1 ether}(1, MAX, "", _none(), 0);
        vm.prank(address(timelock));
        sale.unpause();
        _buy(alice, 1, 0.1 ether);
        assertEq(license.balanceOf(alice), 1, "bought after unpause");
    }

    function test_pauseDoesNotBlockWithdrawals() public {
        _setPromo("FRIEND", 0, referrer, 1000);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 1 ether}(10, MAX, "FRIEND", _none(), 0);
        vm.warp(saleEnd); // no pause while the sale is in progress
        vm.prank(address(timelock));
        sale.pause();
        sale.withdrawProceeds();
        vm.prank(referrer);
        sale.withdrawReferral();
        assertEq(treasury.balance, 0.9 ether, "treasury");
        assertEq(referrer.balance, 0.1 ether, "referrer");
    }

    function test_pauseTwiceAndUnpauseUnpausedRevert() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(Pausable.ExpectedPause.selector));
        sale.unpause();
        vm.prank(address(timelock));
        sale.pause();
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(Pausable.EnforcedPause.selector));
        sale.pause();
    }

    // -------------------------------------------------------------------------------- ownership

    function test_settersRejectEveryoneButTheTimelock() public {
        address[3] memory callers = [address(this), address(governor), stranger];
        for (uint256 i; i < callers.length; ++i) {
            address c = callers[i];
            bytes memory err = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, c);
            vm.prank(c);
            vm.expectRevert(err);
            sale.setPromoCode(keccak256("X"), 100, address(0), 0);
            vm.prank(c);
            vm.expectRevert(err);
            sale.setAllowlistRoot(keccak256("root"));
            vm.prank(c);
            vm.expectRevert(err);
            sale.setTreasury(c);
            vm.prank(c);
            vm.expectRevert(err);
            sale.pause();
            vm.prank(c);
            vm.expectRevert(err);
            sale.unpause();
        }
        assertEq(sale.owner(), address(timelock), "owner");
    }

    // ------------------------------------------------------------------------------ reentrancy

    function test_reentrantBuyFromRefundRevertsTheWholePurchase() public {
        _toPublic();
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        attacker.configure(ReentrantBuyer.Mode.BuyFromRefund, false);
        vm.deal(address(attacker), 5 ether);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.TransferFailed.selector, address(attacker), 0.8 ether));
        attacker.buy(2, 1 ether, "");
        assertEq(address(attacker).balance, 5 ether, "attacker kept its coin");
        assertEq(license.balanceOf(address(attacker)), 0, "no license");
        assertEq(sale.sold(), 0, "nothing sold");
        assertEq(address(sale).balance, 0, "sale holds nothing");
    }

    function test_reentrantBuyFromRefundCaughtGainsNothing() public {
        _toPublic();
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        attacker.configure(ReentrantBuyer.Mode.BuyFromRefund, true);
        vm.deal(address(attacker), 5 ether);
        attacker.buy(2, 1 ether, "");
        assertEq(attacker.attempts(), 1, "one re-entry attempt");
        assertFalse(attacker.reentrySucceeded(), "re-entry blocked");
        assertEq(
            keccak256(attacker.lastError()),
            keccak256(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector)),
            "guard error"
        );
        assertEq(address(attacker).balance, 5 ether - 0.2 ether, "paid exactly the cost");
        assertEq(license.balanceOf(address(attacker)), 2, "two licenses");
        assertEq(sale.sold(), 2, "two sold");
        assertEq(sale.treasuryBalance(), 0.2 ether, "proceeds");
        assertEq(address(sale).balance, 0.2 ether, "sale balance");
    }

    function test_reentrantBuyFromMintHookIsBlocked() public {
        _toPublic();
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        attacker.configure(ReentrantBuyer.Mode.BuyFromMint, false);
        vm.deal(address(attacker), 5 ether);
        vm.expectRevert(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));
        attacker.buy(3, 0.3 ether, "");
        assertEq(sale.sold(), 0, "nothing sold");
        assertEq(address(attacker).balance, 5 ether, "nothing spent");

        attacker.configure(ReentrantBuyer.Mode.BuyFromMint, true);
        attacker.buy(3, 0.3 ether, "");
        assertEq(attacker.attempts(), 3, "one attempt per mint");
        assertFalse(attacker.reentrySucceeded(), "re-entry blocked");
        assertEq(license.balanceOf(address(attacker)), 3, "only the outer purchase");
        assertEq(sale.sold(), 3, "three sold");
        assertEq(address(attacker).balance, 5 ether - 0.3 ether, "paid exactly");
    }

    function test_reentrantReferralWithdrawalFromRefundIsBlocked() public {
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        _setPromo("EVIL", 0, address(attacker), 1000);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 1 ether}(10, MAX, "EVIL", _none(), 0); // credits attacker 0.1 ether
        assertEq(sale.referralBalance(address(attacker)), 0.1 ether, "credited");

        attacker.configure(ReentrantBuyer.Mode.WithdrawReferralFromRefund, true);
        vm.deal(address(attacker), 1 ether);
        attacker.buy(1, 0.5 ether, "");
        assertFalse(attacker.reentrySucceeded(), "re-entry blocked");
        assertEq(sale.referralBalance(address(attacker)), 0.1 ether, "credit untouched");
        assertEq(address(attacker).balance, 1 ether - 0.1 ether, "paid exactly one license");
    }

    function test_reentrantReferralWithdrawalPaysOnce() public {
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        _setPromo("EVIL", 0, address(attacker), 1000);
        _toPublic();
        vm.deal(alice, 1 ether);
        vm.prank(alice);
        sale.buy{value: 1 ether}(10, MAX, "EVIL", _none(), 0);

        // Bubbling re-entry: the withdrawal fails as a whole, the credit stays.
        attacker.configure(ReentrantBuyer.Mode.WithdrawReferralFromRefund, false);
        vm.expectRevert(abi.encodeWithSelector(NodeSale.TransferFailed.selector, address(attacker), 0.1 ether));
        attacker.withdrawReferral();
        assertEq(sale.referralBalance(address(attacker)), 0.1 ether, "credit kept");
        assertEq(address(attacker).balance, 0, "nothing paid");

        // Caught re-entry: paid exactly once.
        attacker.configure(ReentrantBuyer.Mode.WithdrawReferralFromRefund, true);
        attacker.withdrawReferral();
        assertEq(attacker.attempts(), 1, "one attempt");
        assertFalse(attacker.reentrySucceeded(), "re-entry blocked");
        assertEq(address(attacker).balance, 0.1 ether, "paid once");
        assertEq(sale.referralBalance(address(attacker)), 0, "cleared");
        assertEq(address(sale).balance, 0.9 ether, "treasury part intact");
        assertEq(sale.treasuryBalance(), 0.9 ether, "treasury owed");
    }

    function test_reentrantProceedsWithdrawalFromRefundIsBlocked() public {
        _toPublic();
        _buy(alice, 5, 0.5 ether);
        ReentrantBuyer attacker = new ReentrantBuyer(sale);
        attacker.configure(ReentrantBuyer.Mode.WithdrawProceedsFromRefund, true);
        vm.deal(address(attacker), 1 ether);
        uint256 before = treasury.balance;
        attacker.buy(1, 0.3 ether, "");
        assertFalse(attacker.reentrySucceeded(), "re-entry blocked");
        assertEq(treasury.balance, before, "treasury not paid mid-purchase");
        assertEq(sale.treasuryBalance(), 0.6 ether, "owed");
        assertEq(address(sale).balance, 0.6 ether, "held");
    }

    // ------------------------------------------------------------------------------------- fuzz

    /// @dev Tier-boundary pricing: the cost of `quantity` after `alreadySold` equals a unit-by-unit reference,
    ///      both in `quote` and in what the buyer actually pays.
    function testFuzz_costAcrossTiersMatchesReference(
        uint256 s0,
        uint256 s1,
        uint256 s2,
        uint256 p0,
        uint256 p1,
        uint256 p2,
        uint256 alreadySold,
        uint256 quantity,
        uint256 overpay
    ) public {
        NodeSale.Tier[] memory t = _tiers3(
            bound(s0, 1, 12),
            bound(s1, 1, 12),
            bound(s2, 1, 12),
            bound(p0, 0, 3 ether),
            bound(p1, 0, 3 ether),
            bound(p2, 0, 3 ether)
        );
        uint256 total = _sum(t);
        alreadySold = bound(alreadySold, 0, total - 1);
        quantity = bound(quantity, 1, total - alreadySold);
        overpay = bound(overpay, 0, 10 ether);
        (AlignmentLicense lic, NodeSale s) = _smallSale(t, uint32(total));

        if (alreadySold > 0) {
            uint256 c0 = _refCost(t, 0, alreadySold);
            vm.deal(bob, c0);
            vm.prank(bob);
            s.buy{value: c0}(alreadySold, MAX, "", _none(), 0);
        }
        uint256 expected = _refCost(t, alreadySold, quantity);
        assertEq(s.quote(quantity), expected, "quote");
        uint256 treasuryBefore = s.treasuryBalance();
        vm.deal(alice, expected + overpay);
        vm.prank(alice);
        uint256 first = s.buy{value: expected + overpay}(quantity, expected, "", _none(), 0);
        assertEq(first, alreadySold + 1, "first id");
        assertEq(alice.balance, overpay, "alice paid exactly the reference cost");
        assertEq(s.treasuryBalance() - treasuryBefore, expected, "proceeds");
        assertEq(lic.balanceOf(alice), quantity, "licenses");
        assertEq(s.sold(), alreadySold + quantity, "sold");
    }

    /// @dev The deployed 3-tier schedule quoted from an empty sale against the unit-by-unit reference.
    function testFuzz_quoteOnDeployedTiersMatchesReference(uint256 quantity) public view {
        quantity = bound(quantity, 1, 1000);
        assertEq(sale.quote(quantity), _refCost(_defaultTiers(), 0, quantity), "quote");
    }

    /// @dev Public phase: a wallet never ends up with more than `publicMaxPerWallet`, and the error says how
    ///      many it may still buy.
    function testFuzz_publicWalletCapNeverExceeded(uint256 q0, uint256 q1, uint256 q2, uint256 q3) public {
        _toPublic();
        uint256[4] memory qs = [bound(q0, 1, 60), bound(q1, 1, 60), bound(q2, 1, 60), bound(q3, 1, 60)];
        uint256 bought;
        vm.deal(alice, 1000 ether);
        for (uint256 i; i < 4; ++i) {
            vm.prank(alice);
            if (bought + qs[i] > PUBLIC_CAP) {
                vm.expectRevert(
                    abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, qs[i], PUBLIC_CAP - bought)
                );
                sale.buy{value: 10 ether}(qs[i], MAX, "", _none(), 0);
            } else {
                sale.buy{value: 10 ether}(qs[i], MAX, "", _none(), 0);
                bought += qs[i];
            }
            assertLe(sale.boughtInPublic(alice), PUBLIC_CAP, "cap");
        }
        assertEq(sale.boughtInPublic(alice), bought, "bought");
        assertEq(license.balanceOf(alice), bought, "licenses");
    }

    /// @dev Allowlist phase: the cap is min(allowance in the leaf, allowlistMaxPerWallet).
    function testFuzz_allowlistCapIsMinOfAllowanceAndPhaseMax(uint256 allowance, uint256 q0, uint256 q1) public {
        allowance = bound(allowance, 1, 12);
        address[4] memory accounts = [bob, alice, carol, dave];
        uint256[4] memory allowances = [uint256(7), allowance, 1, 5];
        (bytes32 r, bytes32[][] memory proofs) = _tree(accounts, allowances);
        vm.prank(address(timelock));
        sale.setAllowlistRoot(r);
        vm.warp(allowlistStart);

        uint256 cap = allowance < ALLOWLIST_CAP ? allowance : ALLOWLIST_CAP;
        uint256[2] memory qs = [bound(q0, 1, 8), bound(q1, 1, 8)];
        uint256 bought;
        vm.deal(alice, 100 ether);
        for (uint256 i; i < 2; ++i) {
            vm.prank(alice);
            if (bought + qs[i] > cap) {
                vm.expectRevert(abi.encodeWithSelector(NodeSale.WalletCapExceeded.selector, alice, qs[i], cap - bought));
                sale.buy{value: 1 ether}(qs[i], MAX, "", proofs[1], allowance);
            } else {
                sale.buy{value: 1 ether}(qs[i], MAX, "", proofs[1], allowance);
                bought += qs[i];
            }
        }
        assertLe(sale.boughtInAllowlist(alice), cap, "cap");
        assertEq(sale.boughtInAllowlist(alice), bought, "bought");
        assertEq(license.balanceOf(alice), bought, "licenses");
    }

    /// @dev Any overpayment comes back in the same call: the buyer's balance drops by exactly the cost.
    function testFuzz_refundIsExact(uint256 quantity, uint256 overpay, bool withPromo) public {
        _setPromo("FRIEND", 1500, referrer, 700);
        _toPublic();
        quantity = bound(quantity, 1, PUBLIC_CAP);
        overpay = bound(overpay, 0, 1_000_000 ether);
        uint256 gross = _refCost(_defaultTiers(), 0, quantity);
        uint256 cost = withPromo ? gross - gross * 1500 / 10_000 : gross;
        string memory code = withPromo ? "FRIEND" : "";
        vm.deal(alice, cost + overpay);
        vm.prank(alice);
        sale.buy{value: cost + overpay}(quantity, MAX, code, _none(), 0);
        assertEq(alice.balance, overpay, "refund exact");
        assertEq(address(sale).balance, cost, "sale keeps the cost");
        uint256 referral = withPromo ? cost * 700 / 10_000 : 0;
        assertEq(sale.referralBalance(referrer), referral, "referral");
        assertEq(sale.treasuryBalance(), cost - referral, "treasury");
    }

    /// @dev Random purchases against a small sale: everything past the last tier reverts with SoldOut and the
    ///      number that was left, and the license count always equals `sold`.
    function testFuzz_neverSellsPastLastTier(uint256 s0, uint256 s1, uint256 s2, uint256 seed) public {
        NodeSale.Tier[] memory t = _tiers3(bound(s0, 1, 10), bound(s1, 1, 10), bound(s2, 1, 10), 1 gwei, 2 gwei, 3 gwei);
        uint256 total = _sum(t);
        (AlignmentLicense lic, NodeSale s) = _smallSale(t, uint32(1000));
        uint256 sold;
        vm.deal(alice, 1000 ether);
        for (uint256 i; i < 8; ++i) {
            uint256 q = bound(uint256(keccak256(abi.encode(seed, i))), 1, total + 3);
            vm.prank(alice);
            if (sold + q > total) {
                vm.expectRevert(abi.encodeWithSelector(NodeSale.SoldOut.selector, q, total - sold));
                s.buy{value: 1 ether}(q, MAX, "", _none(), 0);
            } else {
                s.buy{value: 1 ether}(q, MAX, "", _none(), 0);
                sold += q;
            }
            assertEq(s.sold(), sold, "sold");
            assertLe(s.sold(), total, "never past last tier");
            assertEq(lic.totalMinted(), sold, "minted == sold");
        }
        if (sold == total) {
            vm.prank(alice);
            vm.expectRevert(abi.encodeWithSelector(NodeSale.SoldOut.selector, 1, 0));
            s.buy{value: 1 ether}(1, MAX, "", _none(), 0);
        }
        assertEq(alice.balance, 1000 ether - _refCost(t, 0, sold), "paid the reference cost");
    }
}
