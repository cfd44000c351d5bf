// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";
import {Merkle} from "./utils/Merkle.sol";

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

    /// @dev Presence and commitments are per operator (issue 16): one heartbeat and one commit per operator and
    ///      epoch, whatever the number of licenses. Their sum per license, with 100 licenses, in steady state (the
    ///      epoch already touched by another operator's heartbeat; measured 624 + 279 = 903).
    uint256 internal constant PRESENCE_AND_COMMIT_BUDGET = 1_000;
    /// @dev A reveal computes the license's seat (one inverse swap-or-not shuffle, about 20,000 gas), reads the
    ///      license's operator in the epoch (about 3,300), verifies its Merkle proof against that operator's root
    ///      (7 sorted-pair hashes for 100 leaves) and rewrites the license's last revealed epoch. Measured 62,994
    ///      per verdict (one verdict per license), budget about 10% above.
    uint256 internal constant REVEAL_BUDGET = 69_000;
    /// @dev Credit is lazy, so every claim books the license's span: its span and previous span, its operator's
    ///      presence and `acc` (warm after the first license), the span's new base and the balance. Measured
    ///      19,098 (19,527 when the claim also rolls the budget and books the operator's ended epoch).
    uint256 internal constant CLAIM_BUDGET = 21_500;
    /// @dev A penalty books the license's span before debiting it. Measured 104,416 (one disagreeing vote whose
    ///      forfeit is the first money of an empty budget pool).
    uint256 internal constant SETTLE_BUDGET = 115_000;

    /// @dev Ceilings of the cases that pay new storage slots or the epoch's fixed costs (measured plus about 10%):
    ///      - the epoch's first touch: its seed and committee size (two new slots), the vault's roll of the ended
    ///        epoch's budget and the new epoch's active count (a new slot);
    ///      - the operator's first heartbeat (its presence and address slots are new), its first booking (its
    ///        `acc` and commission slots are new), and the first commit of each epoch parity (a new root slot);
    ///      - the first reveal of each license: its last-revealed slot is new (22,100);
    ///      - the first claim books three epochs into balances that go from zero to non-zero and back.
    uint256 internal constant FIRST_TOUCH_CEILING = 1_700; // measured 1,552
    uint256 internal constant FIRST_PRESENCE_CEILING = 1_070; // measured 663 and 966
    uint256 internal constant NEW_ROOT_SLOT_CEILING = 500; // measured 450
    uint256 internal constant FIRST_REVEAL_CEILING = 88_000; // measured 80,268
    uint256 internal constant FIRST_CLAIM_CEILING = 43_500; // measured 39,420

    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    /// @dev Another operator, with one license, whose heartbeat touches each epoch first (as one of many would).
    address internal other = makeAddr("other");
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

    /// @dev An isolated call of `target` with `data` encoded beforehand, so that the measured window holds the
    ///      transaction and not the test's own ABI encoding of the arguments (which grows with the calldata:
    ///      a reveal's proofs add 224 bytes per license).
    function _call(address target, bytes memory data) internal returns (uint256 g) {
        g = gasleft();
        (bool ok, bytes memory ret) = target.call(data);
        g -= gasleft();
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
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
        bytes memory data = abi.encodeCall(AuditProtocol.heartbeat, ());
        vm.prank(op);
        uint256 g = _call(address(protocol), data);
        return _record(name, g, data, LICENSES);
    }

    /// @dev The other operator's heartbeat: the epoch's first touch, not measured.
    function _otherHeartbeat() internal {
        vm.prank(other);
        protocol.heartbeat();
    }

    /// @dev Commit the root over `rs` (the tree is built outside the measurement); each opening gets its proof.
    function _commit(string memory name, uint256 e, AuditProtocol.Reveal[] memory rs) internal returns (uint256) {
        bytes32 root = _withProofs(e, rs);
        bytes memory data = abi.encodeCall(AuditProtocol.commit, (e, root));
        vm.prank(op);
        uint256 g = _call(address(protocol), data);
        return _record(name, g, data, LICENSES);
    }

    function _reveal(string memory name, uint256 e, AuditProtocol.Reveal[] memory rs) internal returns (uint256) {
        uint256 verdicts;
        for (uint256 i; i < rs.length; ++i) {
            verdicts += rs[i].targetIds.length;
        }
        bytes memory data = abi.encodeCall(AuditProtocol.revealMany, (e, rs));
        vm.prank(op);
        uint256 g = _call(address(protocol), data);
        return _record(name, g, data, verdicts);
    }

    function _claim(string memory name) internal returns (uint256) {
        uint256[] memory lics = ids;
        bytes memory data = abi.encodeCall(RewardVault.claim, (lics));
        vm.prank(owner);
        uint256 g = _call(address(vault), data);
        return _record(name, g, data, LICENSES);
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
    ///      101 listed licenses (op's 100 and the other operator's one) over 20 targets give about one target per
    ///      license.
    function _openingsSpread(uint256 e) internal view returns (AuditProtocol.Reveal[] memory rs) {
        return _openingsDrawn(e);
    }

    function _openingsDrawn(uint256 e) internal view returns (AuditProtocol.Reveal[] memory rs) {
        uint256[] memory count = new uint256[](LICENSES);
        uint256[][] memory seated = new uint256[][](TARGETS);
        for (uint256 t; t < TARGETS; ++t) {
            seated[t] = protocol.committee(e, t);
            for (uint256 j; j < seated[t].length; ++j) {
                uint256 lic = seated[t][j];
                if (lic >= ids[0] && lic <= ids[LICENSES - 1]) count[lic - ids[0]] += 1; // op's licenses only
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
        _operatorWithLicenses(other, 0, makeAddr("other owner"), 1);
        _warm();
        // Epoch 1: the first-ever epoch (the operator's presence, root and the epoch's slots are new).
        _rollToEpoch(1);
        _otherHeartbeat();
        uint256 hb1 = _heartbeat("heartbeat_per_license_first_epoch");
        AuditProtocol.Reveal[] memory r1 = _openingsSpread(1);
        uint256 c1 = _commit("commit_per_license_first_epoch", 1, r1);

        // Epoch 2: the heartbeat books epoch 1 (the operator's `acc` and commission slots are new); every
        // license's first reveal; the other parity's root slot is new.
        _rollToEpoch(2);
        _otherHeartbeat();
        uint256 hb2 = _heartbeat("heartbeat_per_license_first_booking");
        uint256 rv1 = _reveal("reveal_per_verdict_first_epoch", 1, r1);
        AuditProtocol.Reveal[] memory r2 = _openingsDrawn(2);
        uint256 c2 = _commit("commit_per_license_second_epoch", 2, r2);

        // Epoch 3 on: steady state (another operator touched the epoch first).
        _rollToEpoch(3);
        _otherHeartbeat();
        uint256 hb3 = _heartbeat("heartbeat_per_license");
        uint256 rv2 = _reveal("reveal_per_verdict", 2, r2);
        AuditProtocol.Reveal[] memory r3 = _openingsDrawn(3);
        uint256 c3 = _commit("commit_per_license", 3, r3);

        // Epoch 4: the operator's heartbeat is the epoch's first touch (seed, committee size, the vault's roll).
        _rollToEpoch(4);
        uint256 hb4 = _heartbeat("heartbeat_per_license_epoch_first_touch");
        _otherHeartbeat();
        uint256 rv3 = _reveal("reveal_per_verdict_epoch3", 3, r3);
        AuditProtocol.Reveal[] memory r4 = _openingsDrawn(4);
        uint256 c4 = _commit("commit_per_license_epoch4", 4, r4);

        // The first claim books epochs 1-3 into balances that were never credited.
        uint256 cl1 = _claim("claim_per_license_first");

        // Epoch 5: the usual claim books the last ended epoch into each license.
        _rollToEpoch(5);
        _otherHeartbeat();
        uint256 hb5 = _heartbeat("heartbeat_per_license_epoch5");
        uint256 cl2 = _claim("claim_per_license");

        // Epoch 6, nobody touched it yet: the claim also rolls the budget and books the operator's epoch 5.
        _rollToEpoch(6);
        uint256 cl3 = _claim("claim_per_license_booking");

        // The budgets, in steady state.
        assertLe(hb3 + c3, PRESENCE_AND_COMMIT_BUDGET, "heartbeat + commit per license (steady)");
        assertLe(hb5 + c4, PRESENCE_AND_COMMIT_BUDGET, "heartbeat + commit per license (epochs 5, 4)");
        assertLe(rv2, REVEAL_BUDGET, "reveal per verdict (steady)");
        assertLe(rv3, REVEAL_BUDGET, "reveal per verdict (epoch 3)");
        assertLe(cl2, CLAIM_BUDGET, "claim per license");
        assertLe(cl3, CLAIM_BUDGET, "claim per license, booking the operator's ended epoch");

        // New slots and the epoch's fixed costs (see the ceilings above).
        assertLe(hb1, FIRST_PRESENCE_CEILING, "the operator's first heartbeat");
        assertLe(hb2, FIRST_PRESENCE_CEILING, "the operator's first booking");
        assertLe(hb4, FIRST_TOUCH_CEILING, "a heartbeat that is the epoch's first touch");
        assertLe(c1, NEW_ROOT_SLOT_CEILING, "first commit: new root slot");
        assertLe(c2, NEW_ROOT_SLOT_CEILING, "second epoch: the other parity's root slot is new");
        assertLe(rv1, FIRST_REVEAL_CEILING, "every license's first reveal");
        assertLe(cl1, FIRST_CLAIM_CEILING, "the first claim");
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
        protocol.heartbeat();
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](m);
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
        }
        _commitTree(op, 1, rs);
        _rollToEpoch(2);
        vm.prank(op);
        protocol.heartbeat(); // books epoch 1 into the operator
        // Book it into the licenses too (credit is lazy), as steady state has them booked before: the disagreeing
        // license has a balance to lose, and its penalty does not pay a first credit into an empty balance.
        vault.settleLicenses(five);
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
///         transaction). Also a heartbeat of 200 licenses, as a cross-check that its cost does not grow with them.
contract GasPreRefundTest is Deployed {
    uint256 internal constant CLAIM_BUDGET = 24_500; // measured 22,388
    uint256 internal constant FIRST_CLAIM_CEILING = 43_500; // measured 39,339
    /// @dev The epoch's first touch included (seed, committee size, the vault's roll), spread over 200 licenses.
    uint256 internal constant HEARTBEAT_CEILING = 830; // measured 751

    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal first; // licenses 1..100: never claimed
    uint256[] internal second; // licenses 101..200: claimed in epoch 4 (booked through epoch 3)

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
            protocol.heartbeat();
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

    function test_gasClaimBookingAnEndedEpoch() public {
        vm.roll(250); // epoch 5, nobody touched it yet: the claim books epoch 4 into claimed-before balances
        uint256 perLicense = _measureClaim("claim_per_license_pre_refund", second);
        assertLe(perLicense, CLAIM_BUDGET, "claim per license, before refunds");
    }

    function test_gasFirstClaim() public {
        // Still epoch 4: the first claim books epochs 1-3 into balances never credited before.
        uint256 perLicense = _measureClaim("claim_per_license_first_pre_refund", first);
        assertLe(perLicense, FIRST_CLAIM_CEILING, "first claim per license, before refunds");
    }

    function test_gasHeartbeatOf200LicensesCrossCheck() public {
        vm.roll(250); // the epoch's first touch
        assertGt(address(protocol).code.length, 0, "warm the called address");
        vm.prank(op);
        uint256 g = gasleft();
        protocol.heartbeat();
        g -= gasleft();
        uint256 perLicense =
            _record("heartbeat_per_license_200_not_isolated", g, abi.encodeCall(AuditProtocol.heartbeat, ()), 200);
        assertEq(vault.activeCount(5), 200, "all 200 active");
        assertLe(perLicense, HEARTBEAT_CEILING, "heartbeat per license, 200 licenses, not isolated");
    }
}
