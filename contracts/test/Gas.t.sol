// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Gas budgets of the per-license operations (batched over 100 licenses of one operator) and of
///         settlement, asserted so a regression fails the suite, and recorded with `vm.snapshotValue`
///         (forge writes them to snapshots/GasTest.json).
/// @dev Every test runs in isolation mode (inline config below): each call from the test is its own
///      transaction, so storage is cold and "original values" are those before the call, as on chain.
///      gasleft() around an isolated call measures the whole transaction as its receipt would: execution
///      plus the 21,000 base plus calldata (16 gas per non-zero byte, 4 per zero byte), less the SSTORE refunds
///      (capped at 1/5 of the transaction), plus a few hundred gas of the test's own CALL. We report
///      `exec` = measured - 21,000 - calldata (what the budgets bound; conservative by the CALL overhead) and
///      `tx` = exec + 21,000 + calldata. Only claims earn refunds (a balance set to zero): GasPreRefundTest
///      measures them without isolation, i.e. before refunds.
/// forge-config: default.isolate = true
contract GasTest is Deployed {
    uint256 internal constant LICENSES = 100;
    uint256 internal constant TARGETS = 20;

    uint256 internal constant HEARTBEAT_BUDGET = 25_000;
    uint256 internal constant COMMIT_BUDGET = 30_000;
    /// @dev Since exact committees (issue 16) a license's reveal computes its seat: one inverse swap-or-not
    ///      shuffle (90 rounds, their pivots computed once per transaction), about 20,000 gas per license.
    uint256 internal constant REVEAL_BUDGET = 60_000;
    uint256 internal constant CLAIM_BUDGET = 15_000;
    uint256 internal constant SETTLE_BUDGET = 100_000;

    /// @dev Ceilings for the cases that cannot meet the budgets above because each pays a zero-to-non-zero
    ///      SSTORE per license (measured value plus about 5%, so a regression still fails):
    ///      - first-ever heartbeat: `presence[id]` is a new slot (22,100) + the delegation read in the
    ///        OperatorRegistry (2,100 cold) + `accounts[id]` read for suspension (2,100 cold);
    ///      - a heartbeat that books credit into an empty balance (first credit, or after a claim zeroed a
    ///        never-penalized account): `accounts[id]` goes 0 -> non-zero (20,000 on top of the cold read);
    ///      - the commit of epoch 2: `_commitments[id][0]` is a new slot (22,100), as `[1]` was in epoch 1;
    ///      - a claim that books an ended epoch into an empty balance: `accounts[id]` 0 -> non-zero -> 0
    ///        (20,000 charged, 19,900 refunded at the end of the transaction, refunds capped at 1/5 of it).
    uint256 internal constant FIRST_HEARTBEAT_CEILING = 31_000;
    uint256 internal constant CREDIT_INTO_EMPTY_BALANCE_CEILING = 38_500;
    uint256 internal constant NEW_COMMITMENT_SLOT_CEILING = 31_500;
    uint256 internal constant CLAIM_BOOKING_CEILING = 31_000;

    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal ids;

    /// @notice One measurement: `exec` and `tx` are per unit (license or verdict), `units` the batch.
    event GasMeasured(string name, uint256 exec, uint256 txTotal, uint256 units);

    function setUp() public {
        _deploy();
        _fundEmission(1_000_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, LICENSES);
        for (uint256 t; t < TARGETS; ++t) {
            _addTarget(1);
        }
    }

    function _sorted(uint256[] memory a) internal pure returns (uint256[] memory) {
        for (uint256 i = 1; i < a.length; ++i) {
            for (uint256 j = i; j > 0 && a[j - 1] > a[j]; --j) {
                (a[j - 1], a[j]) = (a[j], a[j - 1]);
            }
        }
        return a;
    }

    // --------------------------------------------------------------------------------- measuring

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    /// @dev Turn a measured isolated call into per-unit numbers, record them and return exec per unit.
    function _record(string memory name, uint256 measured, bytes memory callData, uint256 units)
        internal
        returns (uint256 execPerUnit)
    {
        uint256 cd = _calldataGas(callData);
        assertGt(measured, 21_000 + cd, "isolation mode must be on (each call its own transaction)");
        uint256 exec = measured - 21_000 - cd;
        execPerUnit = exec / units;
        uint256 txPerUnit = (exec + 21_000 + cd) / units;
        vm.snapshotValue(name, execPerUnit);
        vm.snapshotValue(string.concat(name, "_with_tx"), txPerUnit);
        emit GasMeasured(name, execPerUnit, txPerUnit, units);
    }

    function _heartbeat(string memory name) internal returns (uint256) {
        uint256[] memory lics = ids;
        vm.prank(op);
        uint256 g = gasleft();
        protocol.heartbeat(lics);
        g -= gasleft();
        return _record(name, g, abi.encodeCall(AuditProtocol.heartbeat, (lics)), lics.length);
    }

    function _commit(string memory name, uint256 e, AuditProtocol.Reveal[] memory rs) internal returns (uint256) {
        AuditProtocol.Commitment[] memory cs = new AuditProtocol.Commitment[](rs.length);
        for (uint256 i; i < rs.length; ++i) {
            cs[i] = AuditProtocol.Commitment(
                rs[i].license,
                keccak256(abi.encode(e, rs[i].license, rs[i].targetIds, rs[i].verdicts, rs[i].evidenceRoots, rs[i].salt))
            );
        }
        vm.prank(op);
        uint256 g = gasleft();
        protocol.commit(e, cs);
        g -= gasleft();
        return _record(name, g, abi.encodeCall(AuditProtocol.commit, (e, cs)), cs.length);
    }

    function _reveal(string memory name, uint256 e, AuditProtocol.Reveal[] memory rs) internal returns (uint256) {
        uint256 verdicts;
        for (uint256 i; i < rs.length; ++i) {
            verdicts += rs[i].targetIds.length;
        }
        vm.prank(op);
        uint256 g = gasleft();
        protocol.revealMany(e, rs);
        g -= gasleft();
        return _record(name, g, abi.encodeCall(AuditProtocol.revealMany, (e, rs)), verdicts);
    }

    function _claim(string memory name) internal returns (uint256) {
        uint256[] memory lics = ids;
        vm.prank(owner);
        uint256 g = gasleft();
        vault.claim(lics);
        g -= gasleft();
        return _record(name, g, abi.encodeCall(RewardVault.claim, (lics)), lics.length);
    }

    /// @dev Warm the protocol's address in the test's own frame, as a transaction's `to` is warm, and check
    ///      that calls really are isolated: a cheap call then costs at least the 21,000 base.
    function _warm() internal {
        assertGt(address(protocol).code.length + address(vault).code.length, 0, "deployed");
        uint256 g = gasleft();
        vault.poke();
        g -= gasleft();
        assertGe(g, 21_000, "isolation mode must be on: forge-config default.isolate = true");
    }

    // ---------------------------------------------------------------------------------- openings

    /// @dev Each license reveals the targets whose committee seats are its own: exact committees of 5 of the
    ///      100 licenses over 20 targets give every license exactly one target, every target 5 revealers.
    function _openingsSpread(uint256 e) internal view returns (AuditProtocol.Reveal[] memory rs) {
        return _openingsDrawn(e);
    }

    function _openingsDrawn(uint256 e) internal view returns (AuditProtocol.Reveal[] memory rs) {
        uint256[] memory count = new uint256[](LICENSES);
        uint256[][] memory seated = new uint256[][](TARGETS);
        for (uint256 t; t < TARGETS; ++t) {
            seated[t] = protocol.committee(e, t);
            for (uint256 j; j < seated[t].length; ++j) {
                count[seated[t][j] - ids[0]] += 1;
            }
        }
        rs = new AuditProtocol.Reveal[](LICENSES);
        for (uint256 i; i < LICENSES; ++i) {
            uint256[] memory tids = new uint256[](count[i]);
            uint256 n;
            for (uint256 t; t < TARGETS; ++t) {
                for (uint256 j; j < seated[t].length; ++j) {
                    if (seated[t][j] == ids[i]) tids[n++] = t;
                }
            }
            rs[i] = _opening(e, ids[i], tids);
        }
    }

    /// @dev Verdicts: FAULT on every fourth target (its evidence root is stored), OK elsewhere.
    function _opening(uint256 e, uint256 lic, uint256[] memory tids)
        internal
        pure
        returns (AuditProtocol.Reveal memory r)
    {
        r.license = lic;
        r.targetIds = tids;
        r.verdicts = new uint8[](tids.length);
        r.evidenceRoots = new bytes32[](tids.length);
        for (uint256 i; i < tids.length; ++i) {
            r.verdicts[i] = tids[i] % 4 == 0 ? 2 : 1;
            r.evidenceRoots[i] = keccak256(abi.encode("evidence", e, lic, tids[i]));
        }
        r.salt = keccak256(abi.encode("salt", e, lic));
    }

    // ------------------------------------------------------------------------------------- tests

    /// @notice Heartbeat, commit, reveal and claim of 100 licenses, from the first-ever epoch to steady state.
    function test_gasPerLicenseFromFirstEpochToSteadyState() public {
        _warm();
        // Epoch 1: the first-ever epoch (every slot is new).
        _rollToEpoch(1);
        uint256 hb1 = _heartbeat("heartbeat_per_license_first_epoch");
        AuditProtocol.Reveal[] memory r1 = _openingsSpread(1);
        uint256 c1 = _commit("commit_per_license_first_epoch", 1, r1);

        // Epoch 2: heartbeats book epoch 1's credit into empty balances; the other commitment slot is new.
        _rollToEpoch(2);
        uint256 hb2 = _heartbeat("heartbeat_per_license_first_credit");
        uint256 rv1 = _reveal("reveal_per_verdict_first_epoch", 1, r1);
        AuditProtocol.Reveal[] memory r2 = _openingsDrawn(2);
        uint256 c2 = _commit("commit_per_license_second_epoch", 2, r2);

        // Epoch 3 on: steady state.
        _rollToEpoch(3);
        uint256 hb3 = _heartbeat("heartbeat_per_license");
        uint256 rv2 = _reveal("reveal_per_verdict", 2, r2);
        AuditProtocol.Reveal[] memory r3 = _openingsDrawn(3);
        uint256 c3 = _commit("commit_per_license", 3, r3);

        _rollToEpoch(4);
        uint256 hb4 = _heartbeat("heartbeat_per_license_epoch4");
        uint256 rv3 = _reveal("reveal_per_verdict_epoch3", 3, r3);
        AuditProtocol.Reveal[] memory r4 = _openingsDrawn(4);
        uint256 c4 = _commit("commit_per_license_epoch4", 4, r4);

        // Claim while the pending epoch is still running (nothing to book): the usual claim.
        uint256 cl1 = _claim("claim_per_license");

        // Epoch 5: the heartbeat books epoch 4's credit into the balances the claim just emptied.
        _rollToEpoch(5);
        uint256 hb5 = _heartbeat("heartbeat_per_license_after_claim");
        _claim("claim_per_license_epoch5");

        // Epoch 6, no heartbeat yet: the claim books the ended epoch 5 itself.
        _rollToEpoch(6);
        uint256 cl2 = _claim("claim_per_license_booking");

        // The budgets, in steady state.
        assertLe(hb3, HEARTBEAT_BUDGET, "heartbeat per license (steady)");
        assertLe(hb4, HEARTBEAT_BUDGET, "heartbeat per license (epoch 4)");
        assertLe(c3, COMMIT_BUDGET, "commit per license (steady)");
        assertLe(c4, COMMIT_BUDGET, "commit per license (epoch 4)");
        assertLe(rv1, REVEAL_BUDGET, "reveal per verdict (first epoch)");
        assertLe(rv2, REVEAL_BUDGET, "reveal per verdict (steady)");
        assertLe(rv3, REVEAL_BUDGET, "reveal per verdict (epoch 3)");
        assertLe(cl1, CLAIM_BUDGET, "claim per license");
        assertLe(c1, COMMIT_BUDGET, "commit per license (first-ever epoch)");

        // Over budget by construction of the storage layout (see the ceilings above):
        // each of these pays one zero-to-non-zero SSTORE (22,100 gas cold) per license.
        assertLe(hb1, FIRST_HEARTBEAT_CEILING, "first-ever heartbeat: new presence slot");
        assertLe(hb2, CREDIT_INTO_EMPTY_BALANCE_CEILING, "first credit: new balance slot");
        assertLe(hb5, CREDIT_INTO_EMPTY_BALANCE_CEILING, "credit after a claim emptied the balance slot");
        assertLe(c2, NEW_COMMITMENT_SLOT_CEILING, "second epoch: the other parity's commitment slot is new");
        assertLe(cl2, CLAIM_BOOKING_CEILING, "claim booking an ended epoch into an empty balance slot");
    }

    /// @notice Settling a target revealed by a committee of 5: all agreeing, one disagreeing, and a FAULT
    ///         outcome with one disagreeing OK vote.
    function test_gasSettleCommitteeOfFive() public {
        _warm();
        // Epoch 1: targets 0, 1, 2 revealed by their committees of five (exact committees of the 100 listed).
        _rollToEpoch(1);
        protocol.poke();
        uint256[][] memory c = new uint256[][](3);
        for (uint256 t; t < 3; ++t) {
            c[t] = protocol.committee(1, t);
        }
        // the licenses seated on any of them, each with its seats' verdicts
        uint256[] memory five = new uint256[](15);
        uint256 m;
        for (uint256 t; t < 3; ++t) {
            for (uint256 j; j < 5; ++j) {
                bool seen;
                for (uint256 q; q < m; ++q) {
                    if (five[q] == c[t][j]) seen = true;
                }
                if (!seen) five[m++] = c[t][j];
            }
        }
        assembly {
            mstore(five, m)
        }
        five = _sorted(five);
        vm.prank(op);
        protocol.heartbeat(five);
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](m);
        AuditProtocol.Commitment[] memory cs = new AuditProtocol.Commitment[](m);
        for (uint256 i; i < m; ++i) {
            uint256 n;
            uint256[] memory tids = new uint256[](3);
            uint8[] memory vs = new uint8[](3);
            for (uint256 t; t < 3; ++t) {
                for (uint256 j; j < 5; ++j) {
                    if (c[t][j] != five[i]) continue;
                    tids[n] = t;
                    // target 0: all OK; target 1: 4 OK, the fifth seat FAULT; target 2: 4 FAULT, the fifth OK
                    vs[n++] = t == 0 ? 1 : t == 1 ? (j == 4 ? 2 : 1) : (j == 4 ? 1 : 2);
                }
            }
            assembly {
                mstore(tids, n)
                mstore(vs, n)
            }
            AuditProtocol.Reveal memory r = _opening(1, five[i], tids);
            r.verdicts = vs;
            rs[i] = r;
            cs[i] = AuditProtocol.Commitment(
                five[i], keccak256(abi.encode(uint256(1), r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt))
            );
        }
        vm.prank(op);
        protocol.commit(1, cs);
        _rollToEpoch(2);
        vm.prank(op);
        protocol.heartbeat(five); // books epoch 1's credit: the disagreeing license has a balance to lose
        protocol.revealMany(1, rs);
        _rollPastReveal(1);

        uint256 g = gasleft();
        assertEq(protocol.settle(1, 0), 1, "all agree OK");
        g -= gasleft();
        uint256 agree = _record("settle_committee5_agree", g, abi.encodeCall(AuditProtocol.settle, (1, 0)), 1);

        g = gasleft();
        assertEq(protocol.settle(1, 1), 1, "OK, one FAULT vote penalized");
        g -= gasleft();
        uint256 disagree =
            _record("settle_committee5_one_disagrees", g, abi.encodeCall(AuditProtocol.settle, (1, 1)), 1);

        g = gasleft();
        assertEq(protocol.settle(1, 2), 2, "FAULT, one OK vote penalized");
        g -= gasleft();
        uint256 fault = _record("settle_committee5_fault_one_disagrees", g, abi.encodeCall(AuditProtocol.settle, (1, 2)), 1);

        assertLe(agree, SETTLE_BUDGET, "settle, committee of 5 agreeing");
        assertLe(disagree, SETTLE_BUDGET, "settle, one disagreeing");
        assertLe(fault, SETTLE_BUDGET, "settle FAULT, one disagreeing");
    }
}

/// @notice The claims again, without isolation: one measured call per test, after a setUp transaction, so the
///         gas is execution only and before refunds (a claim zeroes balances and is refunded at the end of its
///         transaction). Also the steady heartbeat, as a cross-check of the isolated measurement.
contract GasPreRefundTest is Deployed {
    uint256 internal constant CLAIM_BUDGET = 15_000;
    uint256 internal constant HEARTBEAT_BUDGET = 25_000;
    uint256 internal constant CLAIM_BOOKING_CEILING = 38_500;

    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal first; // licenses 1..100: never claimed
    uint256[] internal second; // licenses 101..200: claimed in epoch 4 (empty balances)

    event GasMeasured(string name, uint256 exec, uint256 txTotal, uint256 units);

    function setUp() public {
        _deploy();
        _fundEmission(1_000_000 ether);
        uint256[] memory all = _operatorWithLicenses(op, 1000, owner, 200);
        for (uint256 i; i < 100; ++i) {
            first.push(all[i]);
            second.push(all[100 + i]);
        }
        for (uint256 e = 1; e <= 4; ++e) {
            _rollToEpoch(e);
            vm.prank(op);
            protocol.heartbeat(all);
        }
        vm.prank(owner);
        vault.claim(second);
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _record(string memory name, uint256 exec, bytes memory callData, uint256 units)
        internal
        returns (uint256 execPerUnit)
    {
        uint256 cd = _calldataGas(callData);
        execPerUnit = exec / units;
        uint256 txPerUnit = (exec + 21_000 + cd) / units;
        vm.snapshotValue(name, execPerUnit);
        vm.snapshotValue(string.concat(name, "_with_tx"), txPerUnit);
        emit GasMeasured(name, execPerUnit, txPerUnit, units);
    }

    function _measureClaim(string memory name, uint256[] memory lics) internal returns (uint256) {
        assertGt(address(vault).code.length, 0, "warm the called address, as a transaction's `to`");
        vm.prank(owner);
        uint256 g = gasleft();
        vault.claim(lics);
        g -= gasleft();
        return _record(name, g, abi.encodeCall(RewardVault.claim, (lics)), lics.length);
    }

    function test_gasClaimWhileThePendingEpochRuns() public {
        // Still epoch 4 (blocks [220, 250)): nothing to book, the balances go to zero.
        uint256 perLicense = _measureClaim("claim_per_license_pre_refund", first);
        assertLe(perLicense, CLAIM_BUDGET, "claim per license, before refunds");
    }

    function test_gasClaimBookingAnEndedEpoch() public {
        vm.roll(250); // epoch 5, nobody touched it yet
        uint256 perLicense = _measureClaim("claim_per_license_booking_pre_refund", first);
        assertLe(perLicense, CLAIM_BOOKING_CEILING, "claim booking epoch 4 into non-empty balances");
    }

    function test_gasClaimBookingIntoEmptyBalances() public {
        vm.roll(250);
        uint256 perLicense = _measureClaim("claim_per_license_booking_empty_pre_refund", second);
        assertLe(perLicense, CLAIM_BOOKING_CEILING, "claim booking epoch 4 into empty balances");
    }

    function test_gasHeartbeatSteadyCrossCheck() public {
        vm.roll(250);
        uint256[] memory lics = first;
        assertGt(address(protocol).code.length, 0, "warm the called address");
        vm.prank(op);
        uint256 g = gasleft();
        protocol.heartbeat(lics);
        g -= gasleft();
        uint256 perLicense =
            _record("heartbeat_per_license_not_isolated", g, abi.encodeCall(AuditProtocol.heartbeat, (lics)), 100);
        assertLe(perLicense, HEARTBEAT_BUDGET, "heartbeat per license (steady), not isolated");
    }
}
