// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";

/// @notice Gas budgets of the per-license operations (batched over 100 licenses of one operator), of an
///         operator's reveal and of settlement, asserted so a regression fails the suite, and recorded with
///         `vm.snapshotValue` (forge writes them to snapshots/GasTest.json).
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
    ///      epoch already touched by another operator's heartbeat; measured 567 + 277 = 844).
    uint256 internal constant PRESENCE_AND_COMMIT_BUDGET = 1_000;
    /// @dev A reveal is one transaction per operator and epoch (issue 16): it reads the operator's index and
    ///      root, hashes the votes, sets the operator's revealed bit (a word another operator of the same 256
    ///      already set in the epoch, in steady state) and stores nothing for an all-OK epoch. Measured 25,252
    ///      for 100 licenses voting OK on every seat (252 per license; it does not grow with them), budget
    ///      about 10% above.
    uint256 internal constant REVEAL_OPERATOR_BUDGET = 28_000;
    /// @dev A listed vote (FAULT, UNREACHABLE or NO_VOTE) reads its license's operator in the epoch and stores
    ///      the verdict and the evidence root in two new slots. Per listed vote, the reveal's fixed cost spread
    ///      over them: measured 51,819 (FAULT on every fourth target: about 25 votes), budget about 10% above.
    uint256 internal constant REVEAL_LISTED_VOTE_BUDGET = 57_000;
    /// @dev Credit is lazy, so every claim books the license's span: its span and previous span, its operator's
    ///      presence and `acc` (warm after the first license), the span's new base and the balance. Measured
    ///      20,342 (20,697 when the claim also rolls the budget and books the operator's ended epoch).
    uint256 internal constant CLAIM_BUDGET = 21_500;
    /// @dev Settlement reads the committee (5 forward shuffles), each seat's operator, presence and revealed
    ///      bit and listed vote, then debits the disagreeing licenses (a penalty books the license's span).
    ///      Measured 316,291 all agreeing (the committee's five shuffles and per-seat reads dominate) and 376,952
    ///      with one disagreeing OK vote penalized (the costliest), budget about 10% above. Only a target with a
    ///      vote that is not OK, a trap or a referee ruling needs settling (issue 16).
    uint256 internal constant SETTLE_BUDGET = 415_000;

    /// @dev Ceilings of the cases that pay new storage slots or the epoch's fixed costs (measured plus about 10%):
    ///      - the epoch's first touch: its seed and committee size (two new slots), the vault's roll of the ended
    ///        epoch's budget and the new epoch's active count (a new slot);
    ///      - the operator's first heartbeat (its presence and address slots are new), its first booking (its
    ///        `acc` and commission slots are new), and the first commit of each epoch parity (a new root slot);
    ///      - a reveal that is the first of its epoch's word of revealed bits (a new slot, 22,100);
    ///      - the first claim books three epochs into balances that go from zero to non-zero and back.
    uint256 internal constant FIRST_TOUCH_CEILING = 1_700; // measured 1,492
    uint256 internal constant FIRST_PRESENCE_CEILING = 1_070; // measured 660 and 738
    uint256 internal constant NEW_ROOT_SLOT_CEILING = 500; // measured 423
    uint256 internal constant FIRST_REVEAL_OF_THE_WORD_CEILING = 47_000; // measured 42,352
    uint256 internal constant FIRST_CLAIM_CEILING = 43_500; // measured 40,829

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

    function _copy(uint256[] memory a) internal pure returns (uint256[] memory b) {
        b = new uint256[](a.length);
        for (uint256 i; i < a.length; ++i) {
            b[i] = a[i];
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
    ///      a reveal's listed votes add 128 bytes each).
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

    /// @dev Commit the hash of `votes` (computed outside the measurement).
    function _commit(string memory name, uint256 e, AuditProtocol.Vote[] memory votes) internal returns (uint256) {
        bytes memory data = abi.encodeCall(AuditProtocol.commit, (e, _commitmentOf(e, op, _salt(e), votes)));
        vm.prank(op);
        uint256 g = _call(address(protocol), data);
        return _record(name, g, data, LICENSES);
    }

    /// @dev The operator's reveal of `votes`, recorded per `units` (licenses, or listed votes).
    function _reveal(string memory name, uint256 e, AuditProtocol.Vote[] memory votes, uint256 units)
        internal
        returns (uint256)
    {
        bytes memory data = abi.encodeCall(AuditProtocol.reveal, (e, op, _salt(e), votes));
        vm.prank(op);
        uint256 g = _call(address(protocol), data);
        return _record(name, g, data, units);
    }

    /// @dev The other operator commits (during `e`) and, later, reveals (for `e`) an all-OK epoch: its reveal
    ///      sets the epoch's word of revealed bits first, as one of many operators would.
    function _otherCommit(uint256 e) internal {
        _commitVotes(other, e, _salt(e), _allOk());
    }

    function _otherReveal(uint256 e) internal {
        _revealVotes(other, e, _salt(e), _allOk());
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

    // ------------------------------------------------------------------------------------- votes

    function _salt(uint256 e) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", e));
    }

    /// @dev The operator's listed votes of epoch `e`: FAULT on every fourth target for each of its licenses
    ///      seated there (exact committees of 5 of the 101 listed licenses over 20 targets), sorted by (target,
    ///      license); OK (implicit) everywhere else.
    function _faultEveryFourth(uint256 e) internal view returns (AuditProtocol.Vote[] memory votes) {
        votes = new AuditProtocol.Vote[](TARGETS * 5);
        uint256 n;
        for (uint256 t; t < TARGETS; t += 4) {
            uint256[] memory c = _sorted(protocol.committee(e, t));
            for (uint256 j; j < c.length; ++j) {
                if (c[j] < ids[0] || c[j] > ids[LICENSES - 1]) continue; // op's licenses only
                votes[n++] = _vote(c[j], t, 2, keccak256(abi.encode("evidence", e, c[j], t)));
            }
        }
        assembly ("memory-safe") {
            mstore(votes, n)
        }
    }

    // ------------------------------------------------------------------------------------- tests

    /// @notice Heartbeat, commit, reveal and claim of 100 licenses, from the first-ever epoch to steady state.
    function test_gasPerLicenseFromFirstEpochToSteadyState() public {
        _operatorWithLicenses(other, 0, makeAddr("other owner"), 1);
        _warm();
        AuditProtocol.Vote[] memory none = _allOk();
        // Epoch 1: the first-ever epoch (the operator's presence, root and the epoch's slots are new).
        _rollToEpoch(1);
        _otherHeartbeat();
        _otherCommit(1);
        uint256 hb1 = _heartbeat("heartbeat_per_license_first_epoch");
        uint256 c1 = _commit("commit_per_license_first_epoch", 1, none);

        // Epoch 2: the heartbeat books epoch 1 (the operator's `acc` and commission slots are new); the
        // operator's reveal of epoch 1 is the first of its word of revealed bits; the other parity's root slot
        // is new.
        _rollToEpoch(2);
        _otherHeartbeat();
        _otherCommit(2);
        uint256 hb2 = _heartbeat("heartbeat_per_license_first_booking");
        uint256 rv1 = _reveal("reveal_per_operator_first_of_its_word", 1, none, 1);
        _otherReveal(1);
        uint256 c2 = _commit("commit_per_license_second_epoch", 2, none);

        // Epoch 3 on: steady state (another operator touched the epoch and revealed first).
        _rollToEpoch(3);
        _otherHeartbeat();
        _otherCommit(3);
        uint256 hb3 = _heartbeat("heartbeat_per_license");
        _otherReveal(2);
        uint256 rv2 = _reveal("reveal_per_operator", 2, none, 1);
        uint256 cd = _calldataGas(abi.encodeCall(AuditProtocol.reveal, (2, op, _salt(2), none)));
        vm.snapshotValue("reveal_per_license", rv2 / LICENSES); // the same reveal, per license
        vm.snapshotValue("reveal_per_license_with_tx", (rv2 + 21_000 + cd) / LICENSES);
        AuditProtocol.Vote[] memory v3 = _faultEveryFourth(3);
        assertGt(v3.length, 10, "listed votes");
        uint256 c3 = _commit("commit_per_license", 3, v3);

        // Epoch 4: the operator's heartbeat is the epoch's first touch (seed, committee size, the vault's roll);
        // its reveal lists FAULT votes (two new slots each).
        _rollToEpoch(4);
        uint256 hb4 = _heartbeat("heartbeat_per_license_epoch_first_touch");
        _otherHeartbeat();
        _otherCommit(4);
        _otherReveal(3);
        uint256 rv3 = _reveal("reveal_per_listed_vote", 3, v3, v3.length);
        uint256 c4 = _commit("commit_per_license_epoch4", 4, none);

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
        assertLe(rv2, REVEAL_OPERATOR_BUDGET, "an all-OK reveal of 100 licenses (steady)");
        assertLe(rv3, REVEAL_LISTED_VOTE_BUDGET, "a reveal per listed vote");
        assertLe(cl2, CLAIM_BUDGET, "claim per license");
        assertLe(cl3, CLAIM_BUDGET, "claim per license, booking the operator's ended epoch");

        // New slots and the epoch's fixed costs (see the ceilings above).
        assertLe(hb1, FIRST_PRESENCE_CEILING, "the operator's first heartbeat");
        assertLe(hb2, FIRST_PRESENCE_CEILING, "the operator's first booking");
        assertLe(hb4, FIRST_TOUCH_CEILING, "a heartbeat that is the epoch's first touch");
        assertLe(c1, NEW_ROOT_SLOT_CEILING, "first commit: new root slot");
        assertLe(c2, NEW_ROOT_SLOT_CEILING, "second epoch: the other parity's root slot is new");
        assertLe(rv1, FIRST_REVEAL_OF_THE_WORD_CEILING, "the first reveal of the epoch's word");
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
        vm.prank(op);
        protocol.heartbeat();
        // The operator's listed votes, by (target, license): target 0: all OK (none listed); target 1: 4 OK,
        // the fifth seat FAULT; target 2: 4 FAULT, the fifth seat OK.
        AuditProtocol.Vote[] memory votes = new AuditProtocol.Vote[](5);
        uint256 n;
        for (uint256 t = 1; t < 3; ++t) {
            uint256[] memory sorted = _sorted(_copy(c[t]));
            for (uint256 i; i < 5; ++i) {
                bool fifth = sorted[i] == c[t][4];
                if (t == 1 ? fifth : !fifth) {
                    votes[n++] = _vote(sorted[i], t, 2, keccak256(abi.encode("evidence", uint256(1), sorted[i], t)));
                }
            }
        }
        assertEq(n, 5, "five listed FAULT votes");
        _commitVotes(op, 1, _salt(1), votes);
        _rollToEpoch(2);
        vm.prank(op);
        protocol.heartbeat(); // books epoch 1 into the operator
        // Book it into the licenses too (credit is lazy), as steady state has them booked before: the disagreeing
        // license has a balance to lose, and its penalty does not pay a first credit into an empty balance.
        vault.settleLicenses(ids);
        _revealVotes(op, 1, _salt(1), votes);
        _rollPastReveal(1);
        assertEq(protocol.outcomeOf(1, 0), 1, "target 0 is OK without settling");

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
