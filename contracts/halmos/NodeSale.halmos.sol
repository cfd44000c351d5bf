// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {HalmosBase} from "./HalmosBase.sol";
import {NodeSale, ILicenseMinter} from "../src/NodeSale.sol";

/// @dev Counts the licenses the sale mints (stands in for AlignmentLicense: the check is about the sale).
contract CountingMinter is ILicenseMinter {
    uint256 public minted;

    function mint(address) external returns (uint256) {
        return ++minted;
    }
}

/// @notice Property 1: the sale never mints past its last tier and charges each unit its tier's price.
/// @dev Three tiers of fixed supplies (2, 1, 2: a one-unit middle tier, so one buy can span all three) and
///      distinct fixed prices; a first buy of a symbolic quantity puts `sold` anywhere in the tiers, then a
///      second symbolic buy (or quote) follows. The expected cost is computed independently of NodeSale's loop:
///      per tier, price * |[sold, sold + q) ∩ [tierStart, tierEnd)|. (Symbolic supplies too passed for `quote`
///      with supplies 1..3 and q2 <= 10, but took 9,818 paths and 9 minutes: too slow for a routine run.)
contract NodeSaleCheck is HalmosBase {
    uint128 internal constant P0 = 1 ether;
    uint128 internal constant P1 = 3 ether;
    uint128 internal constant P2 = 7 ether;
    uint128 internal constant S0 = 2;
    uint128 internal constant S1 = 1;
    uint128 internal constant S2 = 2;
    uint64 internal constant OPENS = 1_000;
    uint64 internal constant ENDS = 2_000;

    function _deploy(uint128 s0, uint128 s1, uint128 s2) internal returns (NodeSale sale, CountingMinter minter) {
        minter = new CountingMinter();
        NodeSale.Tier[] memory t = new NodeSale.Tier[](3);
        t[0] = NodeSale.Tier(P0, s0);
        t[1] = NodeSale.Tier(P1, s1);
        t[2] = NodeSale.Tier(P2, s2);
        // allowlist phase empty (allowlistStart == publicStart): every buy is in the public phase.
        sale = new NodeSale(
            minter, t, OPENS, OPENS, ENDS, 0, type(uint32).max, bytes32(0), address(0xBEEF), address(this)
        );
        vm.warp(OPENS + 1);
        vm.deal(address(this), 1_000 ether);
    }

    function _overlap(uint256 a, uint256 b, uint256 lo, uint256 hi) internal pure returns (uint256) {
        uint256 start = a > lo ? a : lo;
        uint256 end = b < hi ? b : hi;
        return end > start ? end - start : 0;
    }

    /// @dev What `q` licenses cost after `sold` were sold, each at its own tier's price.
    function _expected(uint256 s0, uint256 s1, uint256 s2, uint256 sold, uint256 q) internal pure returns (uint256) {
        uint256 b = sold + q;
        return P0 * _overlap(sold, b, 0, s0) + P1 * _overlap(sold, b, s0, s0 + s1)
            + P2 * _overlap(sold, b, s0 + s1, s0 + s1 + s2);
    }

    function _buy(NodeSale sale, uint256 q) internal returns (bool ok) {
        try sale.buy{value: 100 ether}(q, type(uint256).max, "", new bytes32[](0), 0) returns (uint256) {
            ok = true;
        } catch {
            ok = false;
        }
    }

    /// @notice Two buys: each succeeds iff it fits in the tiers, pays exactly the per-tier cost, mints exactly
    ///         its quantity; `sold` never passes the last tier and equals the licenses minted.
    function check_buyChargesTierPricesAndNeverOversells(uint8 q1, uint8 q2) external {
        (uint128 a, uint128 b, uint128 c) = (S0, S1, S2);
        vm.assume(q1 >= 1);
        vm.assume(q1 <= 4);
        vm.assume(q2 >= 1);
        vm.assume(q2 <= 4);
        (NodeSale sale, CountingMinter minter) = _deploy(a, b, c);
        uint256 cap = uint256(a) + b + c;
        assert(sale.totalSupplyCap() == cap);

        uint256[2] memory qs = [uint256(q1), uint256(q2)];
        for (uint256 i; i < 2; ++i) {
            uint256 before = sale.sold();
            uint256 treasuryBefore = sale.treasuryBalance();
            uint256 mintedBefore = minter.minted();
            uint256 paidBefore = address(this).balance;
            bool ok = _buy(sale, qs[i]);
            // It fails exactly when it would sell past the last tier.
            assert(ok == (before + qs[i] <= cap));
            uint256 cost = ok ? _expected(a, b, c, before, qs[i]) : 0;
            assert(sale.sold() == before + (ok ? qs[i] : 0));
            assert(minter.minted() == mintedBefore + (ok ? qs[i] : 0));
            assert(sale.treasuryBalance() == treasuryBefore + cost);
            assert(paidBefore - address(this).balance == cost);
            assert(sale.sold() <= cap);
            assert(minter.minted() == sale.sold());
        }
    }

    /// @notice `quote` agrees with the per-tier cost from any point of the sale, and reverts past the end.
    function check_quoteMatchesTiers(uint8 q1, uint8 q2) external {
        (uint128 a, uint128 b, uint128 c) = (S0, S1, S2);
        vm.assume(q1 >= 1);
        vm.assume(q1 <= 4);
        vm.assume(q2 >= 1);
        vm.assume(q2 <= 8);
        (NodeSale sale,) = _deploy(a, b, c);
        uint256 cap = uint256(a) + b + c;
        _buy(sale, q1);
        uint256 sold = sale.sold();
        try sale.quote(q2) returns (uint256 cost) {
            assert(sold + q2 <= cap);
            assert(cost == _expected(a, b, c, sold, q2));
        } catch {
            assert(sold + q2 > cap);
        }
    }
}
