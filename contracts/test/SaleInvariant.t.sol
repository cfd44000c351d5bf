// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {AlignmentLicense} from "../src/AlignmentLicense.sol";
import {NodeSale, ILicenseMinter} from "../src/NodeSale.sol";

/// @dev Drives the sale in its public phase: random buyers, quantities, promo codes, over- and underpayment,
///      and both pull withdrawals. It predicts every outcome independently (cost, revert reason, who is owed
///      what) and raises `broken` when the sale disagrees, since forge ignores handler reverts here.
contract SaleHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant BPS = 10_000;

    NodeSale public immutable sale;
    AlignmentLicense public immutable license;
    address public immutable treasury;
    uint256 public immutable walletCap;

    address[] public buyers;
    address[] public referrers;
    string[] internal codes;
    uint16[] internal discountOf;
    uint16[] internal referrerBpsOf;
    address[] internal referrerOf;
    uint256[] internal prices;
    uint256[] internal supplies;

    // ghost state, computed here without reading the sale's accounting
    uint256 public ghostSold;
    uint256 public ghostPaidIn;
    uint256 public ghostPaidOut;
    uint256 public ghostTreasuryOwed;
    mapping(address => uint256) public ghostReferralOwed;
    mapping(address => uint256) public ghostBought;

    uint256 public buys;
    uint256 public soldOutHits;
    bool public broken;
    string public whyBroken;

    constructor(
        NodeSale sale_,
        AlignmentLicense license_,
        address treasury_,
        uint256 walletCap_,
        NodeSale.Tier[] memory tiers_,
        address[] memory buyers_,
        address[] memory referrers_
    ) {
        sale = sale_;
        license = license_;
        treasury = treasury_;
        walletCap = walletCap_;
        buyers = buyers_;
        referrers = referrers_;
        for (uint256 i; i < tiers_.length; ++i) {
            prices.push(tiers_[i].price);
            supplies.push(tiers_[i].supply);
        }
        // "" = no promo; the last one was never registered.
        _code("", 0, address(0), 0);
        _code("ALPHA", 500, referrers_[0], 1000);
        _code("BETA", 0, referrers_[1], 2500);
        _code("GAMMA", 1000, address(0), 0);
        _code("DELTA", 333, referrers_[0], 777);
        _code("NOPE", 0, address(0), 0);
    }

    function _code(string memory c, uint16 d, address r, uint16 rb) internal {
        codes.push(c);
        discountOf.push(d);
        referrerOf.push(r);
        referrerBpsOf.push(rb);
    }

    function _fail(string memory why) internal {
        if (!broken) {
            broken = true;
            whyBroken = why;
        }
    }

    function totalSupply() public view returns (uint256 total) {
        for (uint256 i; i < supplies.length; ++i) {
            total += supplies[i];
        }
    }

    function buyerCount() external view returns (uint256) {
        return buyers.length;
    }

    /// @dev Unit-by-unit reference price of the next `quantity` licenses after `alreadySold`.
    function refCost(uint256 alreadySold, uint256 quantity) public view returns (uint256 cost) {
        for (uint256 unit = alreadySold; unit < alreadySold + quantity; ++unit) {
            uint256 edge;
            uint256 i;
            while (true) {
                edge += supplies[i];
                if (unit < edge) break;
                ++i;
            }
            cost += prices[i];
        }
    }

    function buy(uint256 buyerSeed, uint256 quantitySeed, uint256 codeSeed, uint256 paySeed, uint256 overpaySeed)
        external
    {
        uint256 n = buyers.length;
        uint256 start = buyerSeed % n;
        address b = buyers[start];
        uint256 quantity = 1 + quantitySeed % 7;
        if ((quantitySeed >> 8) % 4 != 0) {
            // Mostly stay within wallet caps (so the sale sells out), sometimes test them.
            for (uint256 k = 1; k < n && ghostBought[b] >= walletCap; ++k) {
                b = buyers[(start + k) % n];
            }
            uint256 room = walletCap - ghostBought[b];
            if (room > 0 && quantity > room) quantity = room;
        }
        // Mostly known codes (and none), one time in twelve the unregistered one.
        uint256 c = codeSeed % 12 == 11 ? codes.length - 1 : codeSeed % (codes.length - 1);
        uint256 payMode = paySeed % 10;
        uint256 overpay = overpaySeed % 2 ether;

        bytes memory expectedError;
        uint256 cost;
        uint256 value = 5 ether;
        uint256 maxCost = type(uint256).max;
        uint256 total = totalSupply();
        if (ghostBought[b] + quantity > walletCap) {
            expectedError = abi.encodeWithSelector(
                NodeSale.WalletCapExceeded.selector, b, quantity, walletCap - ghostBought[b]
            );
        } else if (ghostSold + quantity > total) {
            expectedError = abi.encodeWithSelector(NodeSale.SoldOut.selector, quantity, total - ghostSold);
        } else if (c == codes.length - 1) {
            expectedError = abi.encodeWithSelector(NodeSale.UnknownPromoCode.selector, keccak256(bytes(codes[c])));
        } else {
            uint256 gross = refCost(ghostSold, quantity);
            cost = gross - gross * discountOf[c] / BPS;
            value = cost + overpay;
            if (payMode == 0 && cost > 0) {
                maxCost = cost - 1;
                expectedError = abi.encodeWithSelector(NodeSale.CostAboveMax.selector, cost, maxCost);
            } else if (payMode == 1 && cost > 0) {
                value = cost - 1;
                expectedError = abi.encodeWithSelector(NodeSale.InsufficientPayment.selector, cost, value);
            }
        }

        vm.deal(b, value);
        vm.prank(b);
        try sale.buy{value: value}(quantity, maxCost, codes[c], new bytes32[](0), 0) returns (uint256 firstId) {
            if (expectedError.length != 0) return _fail("buy succeeded where a revert was due");
            if (firstId != ghostSold + 1) return _fail("first token id");
            if (b.balance != value - cost) return _fail("buyer was not charged exactly the cost");
            uint256 referral = cost * referrerBpsOf[c] / BPS;
            if (referral > 0) ghostReferralOwed[referrerOf[c]] += referral;
            ghostTreasuryOwed += cost - referral;
            ghostPaidIn += cost;
            ghostSold += quantity;
            ghostBought[b] += quantity;
            buys += 1;
        } catch (bytes memory err) {
            if (keccak256(err) != keccak256(expectedError)) return _fail("unexpected revert reason");
            if (b.balance != value) return _fail("a failed buy cost the buyer");
            if (bytes4(err) == NodeSale.SoldOut.selector) soldOutHits += 1;
        }
    }

    function withdrawProceeds(uint256 callerSeed) external {
        address caller = buyers[callerSeed % buyers.length];
        uint256 owed = ghostTreasuryOwed;
        uint256 before = treasury.balance;
        vm.prank(caller);
        try sale.withdrawProceeds() {
            if (owed == 0) return _fail("withdrew nothing owed");
            if (treasury.balance - before != owed) return _fail("treasury paid wrong amount");
            ghostPaidOut += owed;
            ghostTreasuryOwed = 0;
        } catch (bytes memory err) {
            if (owed != 0) return _fail("proceeds withdrawal failed");
            if (keccak256(err) != keccak256(abi.encodeWithSelector(NodeSale.NothingToWithdraw.selector))) {
                return _fail("wrong error for empty proceeds");
            }
        }
    }

    function withdrawReferral(uint256 referrerSeed) external {
        address r = referrers[referrerSeed % referrers.length];
        uint256 owed = ghostReferralOwed[r];
        uint256 before = r.balance;
        vm.prank(r);
        try sale.withdrawReferral() {
            if (owed == 0) return _fail("referral withdrew nothing owed");
            if (r.balance - before != owed) return _fail("referrer paid wrong amount");
            ghostPaidOut += owed;
            ghostReferralOwed[r] = 0;
        } catch (bytes memory err) {
            if (owed != 0) return _fail("referral withdrawal failed");
            if (keccak256(err) != keccak256(abi.encodeWithSelector(NodeSale.NothingToWithdraw.selector))) {
                return _fail("wrong error for empty referral");
            }
        }
    }
}

contract SaleInvariantTest is Test {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    /// @dev 7 + 11 + 13 licenses; 8 buyers capped at 6 each can buy 48, so the sale can sell out.
    uint256 internal constant TOTAL = 31;
    uint256 internal constant WALLET_CAP = 6;

    AlignmentLicense internal license;
    NodeSale internal sale;
    SaleHandler internal handler;
    address internal treasury = makeAddr("treasury");
    address[] internal buyers;
    address[] internal referrers;

    function setUp() public {
        vm.warp(1_000_000);
        NodeSale.Tier[] memory tiers = new NodeSale.Tier[](3);
        tiers[0] = NodeSale.Tier({price: 0.1 ether, supply: 7});
        tiers[1] = NodeSale.Tier({price: 0.25 ether, supply: 11});
        tiers[2] = NodeSale.Tier({price: 0.4 ether + 7, supply: 13});
        license = new AlignmentLicense("Alignment Node License", "ALN", 2_000_000, address(this));
        sale = new NodeSale(
            ILicenseMinter(address(license)),
            tiers,
            1_000_001,
            1_000_001,
            1_000_001 + 100 days,
            5,
            uint32(WALLET_CAP),
            bytes32(0),
            treasury,
            address(this)
        );
        license.setMinter(address(sale));
        for (uint256 i; i < 8; ++i) {
            buyers.push(makeAddr(string(abi.encodePacked("buyer", bytes1(uint8(48 + i))))));
        }
        referrers.push(makeAddr("referrerA"));
        referrers.push(makeAddr("referrerB"));
        handler = new SaleHandler(sale, license, treasury, WALLET_CAP, tiers, buyers, referrers);
        sale.setPromoCode(keccak256("ALPHA"), 500, referrers[0], 1000);
        sale.setPromoCode(keccak256("BETA"), 0, referrers[1], 2500);
        sale.setPromoCode(keccak256("GAMMA"), 1000, address(0), 0);
        sale.setPromoCode(keccak256("DELTA"), 333, referrers[0], 777);
        vm.warp(1_000_001); // promo codes are fixed before the sale opens
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory selectors) {
        bytes4[] memory s = new bytes4[](3);
        s[0] = SaleHandler.buy.selector;
        s[1] = SaleHandler.withdrawProceeds.selector;
        s[2] = SaleHandler.withdrawReferral.selector;
        selectors = new FuzzSelector[](1);
        selectors[0] = FuzzSelector(address(handler), s);
    }

    // ------------------------------------------------------------------------------- invariants

    function invariant_soldNeverExceedsTierSupplies() public view {
        assertLe(sale.sold(), TOTAL, "sold past the last tier");
        assertEq(sale.totalSupplyCap(), TOTAL, "supply cap");
        assertEq(sale.sold(), handler.ghostSold(), "sold == successful quantities");
    }

    function invariant_everyLicenseSoldWasMintedOnce() public view {
        assertEq(license.totalMinted(), sale.sold(), "minted == sold");
        uint256 held;
        for (uint256 i; i < buyers.length; ++i) {
            held += license.balanceOf(buyers[i]);
            assertLe(sale.boughtInPublic(buyers[i]), WALLET_CAP, "wallet cap");
            assertEq(license.balanceOf(buyers[i]), sale.boughtInPublic(buyers[i]), "licenses == bought");
        }
        assertEq(held, sale.sold(), "buyers hold every license");
    }

    function invariant_saleBalanceEqualsWhatItOwes() public view {
        uint256 owed = sale.treasuryBalance();
        for (uint256 i; i < referrers.length; ++i) {
            owed += sale.referralBalance(referrers[i]);
        }
        assertEq(address(sale).balance, owed, "balance == treasury + referrals");
    }

    function invariant_nothingCreatedNothingLost() public view {
        assertEq(address(sale).balance, handler.ghostPaidIn() - handler.ghostPaidOut(), "in - out");
        assertEq(sale.treasuryBalance(), handler.ghostTreasuryOwed(), "treasury owed");
        for (uint256 i; i < referrers.length; ++i) {
            assertEq(sale.referralBalance(referrers[i]), handler.ghostReferralOwed(referrers[i]), "referral owed");
        }
    }

    function invariant_handlerSawOnlyPredictedOutcomes() public view {
        assertFalse(handler.broken(), handler.whyBroken());
    }

    // ----------------------------------------------------------- the handler itself, deterministically

    /// @dev Sells the sale out through the handler and checks the invariants hold at the edge, so the
    ///      handler's predictions are known to be right before forge drives it at random.
    function test_handlerSellsOutAndWithdrawsWithPredictedOutcomes() public {
        for (uint256 i; i < 8; ++i) {
            // 4 each from 8 buyers = 32 > 31: the last buy must hit SoldOut; codes 0..4 cover every known promo.
            handler.buy(i, 3, i % 5, 7, i * 0.1 ether);
        }
        assertEq(handler.soldOutHits(), 1, "one sold-out");
        assertEq(sale.sold(), 28, "7 buys of 4");
        handler.buy(7, 2, 0, 7, 0); // 3 left; buyer 7 bought nothing yet
        assertEq(sale.sold(), 31, "sold out");
        handler.buy(0, 0, 0, 7, 0);
        assertEq(handler.soldOutHits(), 2, "sold out again");
        handler.buy(0, 5, 0, 7, 0); // 4 + 3 > 6: wallet cap comes first
        handler.buy(1, 0, 11, 7, 0); // unknown code (after the cap and supply checks)
        assertEq(handler.soldOutHits(), 3, "sold out before unknown code");
        assertFalse(handler.broken(), handler.whyBroken());
        invariant_saleBalanceEqualsWhatItOwes();
        invariant_nothingCreatedNothingLost();
        handler.withdrawReferral(0);
        handler.withdrawReferral(1);
        handler.withdrawReferral(1);
        handler.withdrawProceeds(3);
        handler.withdrawProceeds(3);
        assertFalse(handler.broken(), handler.whyBroken());
        assertEq(address(sale).balance, 0, "all paid out");
        assertEq(treasury.balance + referrers[0].balance + referrers[1].balance, handler.ghostPaidIn(), "all paid");
        invariant_soldNeverExceedsTierSupplies();
        invariant_everyLicenseSoldWasMintedOnce();
        invariant_saleBalanceEqualsWhatItOwes();
        invariant_nothingCreatedNothingLost();
    }

    function test_handlerPredictsPaymentErrors() public {
        handler.buy(0, 1, 1, 0, 0); // maxCost one below the cost
        handler.buy(0, 1, 2, 1, 0); // one wei short
        assertEq(sale.sold(), 0, "nothing sold");
        handler.buy(0, 1, 3, 2, 1 ether);
        assertEq(sale.sold(), 2, "sold");
        assertFalse(handler.broken(), handler.whyBroken());
    }
}
