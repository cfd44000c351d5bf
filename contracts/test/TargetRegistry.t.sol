// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {TargetRegistry} from "../src/TargetRegistry.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract TargetRegistryTest is Deployed {
    address internal stranger = makeAddr("stranger");

    function setUp() public {
        _deploy();
    }

    function _start(uint256 epoch) internal view returns (uint256) {
        return protocol.epochStartBlock(epoch);
    }

    function _setEnabled(uint256 t, bool on) internal {
        vm.prank(address(timelock));
        targets.setTargetEnabled(t, on);
    }

    /// @dev The keeper's anonymous seal for target id `t` (posted before `t` is registered).
    function _seal(uint256 t, uint8 outcome, bytes32 salt) internal returns (bytes32 h) {
        h = keccak256(abi.encode(t, outcome, salt));
        vm.prank(keeper);
        targets.sealTrap(h);
    }

    // ---------------------------------------------------------------------------------- adding

    function test_addTargetByTimelockNumbersFromZero() public {
        vm.prank(address(timelock));
        uint256 a = targets.addTarget(2, "http://cometbft:26657", abi.encode("chain-a"));
        vm.prank(address(timelock));
        uint256 b = targets.addTarget(5, "http://model:8000", abi.encode(keccak256("baseline")));
        assertEq(a, 0, "first id");
        assertEq(b, 1, "second id");
        assertEq(targets.targetCount(), 2, "count");
        TargetRegistry.Target memory t = targets.getTarget(1);
        assertEq(t.kind, 5, "kind");
        assertEq(keccak256(bytes(t.endpoint)), keccak256("http://model:8000"), "endpoint");
        assertEq(keccak256(t.identity), keccak256(abi.encode(keccak256("baseline"))), "identity");
    }

    function test_addTargetRejectsAnyoneElseTheKeeperToo() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        targets.addTarget(1, "x", "");
        // Traps come through governance like every target: the keeper has no path of its own.
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, keeper));
        vm.prank(keeper);
        targets.addTarget(1, "x", "");
        // The deployer handed ownership to the timelock.
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        targets.addTarget(1, "x", "");
    }

    function test_addTargetRejectsKindOutsideOneToFive() public {
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.InvalidKind.selector, 0));
        vm.prank(address(timelock));
        targets.addTarget(0, "x", "");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.InvalidKind.selector, 6));
        vm.prank(address(timelock));
        targets.addTarget(6, "x", "");
        for (uint8 k = 1; k <= 5; ++k) {
            vm.prank(address(timelock));
            assertEq(targets.addTarget(k, "x", ""), k - 1, "valid kind");
        }
    }

    function test_unknownTargetIsRejectedAndNeverEnabled() public {
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.UnknownTarget.selector, 0));
        vm.prank(address(timelock));
        targets.setTargetEnabled(0, false);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.UnknownTarget.selector, 3));
        targets.getTarget(3);
        // A seal for an id not registered yet cannot be opened yet.
        _seal(0, 2, "salt");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.UnknownTarget.selector, 0));
        vm.prank(keeper);
        targets.revealTrap(0, 2, "salt");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.UnknownTarget.selector, 0));
        targets.registeredAt(0);
        assertFalse(targets.isEnabledAt(7, type(uint64).max), "unknown id");
    }

    function test_setTargetEnabledIsOnlyTheTimelock() public {
        uint256 t = _addTarget(1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, keeper));
        vm.prank(keeper);
        targets.setTargetEnabled(t, false);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        targets.setTrapKeeper(stranger);
    }

    // ------------------------------------------------------------------------ epoch boundaries

    function test_newTargetCountsFromTheNextEpochStart() public {
        vm.roll(_start(1) + 7);
        uint256 t = _addTarget(1);
        assertFalse(targets.isEnabledAt(t, _start(1)), "epoch in progress keeps its duties");
        assertFalse(targets.isEnabledAt(t, block.number), "a start at the change block is before it");
        assertTrue(targets.isEnabledAt(t, block.number + 1), "any later start");
        assertTrue(targets.isEnabledAt(t, _start(2)), "next epoch");
    }

    function test_disablingTakesEffectFromTheNextEpochStart() public {
        uint256 t = _addTarget(1); // block 100 = start of epoch 0
        vm.roll(_start(2) + 5);
        _setEnabled(t, false);
        assertFalse(targets.isEnabledAt(t, _start(0)), "epoch 0 started at the add block");
        assertTrue(targets.isEnabledAt(t, _start(1)), "epoch 1");
        assertTrue(targets.isEnabledAt(t, _start(2)), "epoch 2 is in progress");
        assertFalse(targets.isEnabledAt(t, _start(3)), "epoch 3");
        TargetRegistry.Target memory info = targets.getTarget(t);
        assertFalse(info.enabled, "latest status");
        assertEq(info.changedAtBlock, _start(2) + 5, "changed at");

        vm.roll(_start(4) + 1);
        _setEnabled(t, true);
        assertTrue(targets.isEnabledAt(t, _start(2)), "epoch 2 after re-enable");
        assertFalse(targets.isEnabledAt(t, _start(3)), "epoch 3 after re-enable");
        assertFalse(targets.isEnabledAt(t, _start(4)), "epoch 4 in progress");
        assertTrue(targets.isEnabledAt(t, _start(5)), "epoch 5");
    }

    /// Two changes inside one epoch must not move the duties of that epoch.
    function test_twoChangesInOneEpochKeepTheEpochInProgress() public {
        uint256 t = _addTarget(1);
        vm.roll(_start(2) + 3);
        _setEnabled(t, false);
        vm.roll(_start(2) + 9);
        _setEnabled(t, true);
        assertTrue(targets.isEnabledAt(t, _start(2)), "epoch 2 saw the target enabled");
        assertTrue(targets.isEnabledAt(t, _start(3)), "epoch 3 sees it enabled again");

        vm.roll(_start(5) + 1);
        _setEnabled(t, false);
        vm.roll(_start(5) + 2);
        _setEnabled(t, true);
        vm.roll(_start(5) + 3);
        _setEnabled(t, false);
        assertTrue(targets.isEnabledAt(t, _start(5)), "epoch 5 in progress");
        assertFalse(targets.isEnabledAt(t, _start(6)), "epoch 6");
    }

    function test_changesInTheSameBlockKeepTheLastStatus() public {
        uint256 t = _addTarget(1);
        vm.roll(_start(1) + 2);
        _setEnabled(t, false);
        _setEnabled(t, true);
        _setEnabled(t, false);
        assertTrue(targets.isEnabledAt(t, _start(1)), "epoch in progress");
        assertFalse(targets.isEnabledAt(t, _start(2)), "last status wins");
    }

    /// Misses can be reported up to 40 epochs back, so an old epoch's status must survive later changes:
    /// a target added during epoch 1 and disabled in epoch 2 was never a duty of epoch 1.
    function test_reportMissIgnoresTargetThatWasNotEnabledInThatEpoch() public {
        address op = makeAddr("op");
        uint256[] memory ids = _operatorWithLicenses(op, 0, op, 3);
        uint256 t0 = _addTarget(1); // enabled from epoch 1
        _rollToEpoch(1);
        uint256 t1 = _addTarget(2); // enabled from epoch 2
        vm.prank(op);
        protocol.heartbeat();
        assertTrue(protocol.isAssigned(1, ids[0], t0), "t0 is a duty of epoch 1");
        assertFalse(protocol.isAssigned(1, ids[0], t1), "t1 is not");

        _rollToEpoch(2);
        _setEnabled(t1, false);
        _rollPastReveal(1);
        assertFalse(targets.isEnabledAt(t1, _start(1)), "epoch 1 still without t1");
        assertFalse(protocol.isAssigned(1, ids[0], t1), "still not a duty");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[0], t1));
        protocol.reportMiss(1, ids[0], t1);
        // t0 was a duty and nobody revealed it.
        protocol.reportMiss(1, ids[0], t0);
    }

    function test_enabledTargetsAtListsTheTargetsOfAnEpoch() public {
        uint256 a = _addTarget(1);
        uint256 b = _addTarget(2);
        vm.roll(_start(1) + 4);
        uint256 c = _addTarget(3);
        _setEnabled(a, false);

        uint256[] memory e0 = targets.enabledTargetsAt(_start(0));
        assertEq(e0.length, 0, "epoch 0: nothing yet");
        uint256[] memory e1 = targets.enabledTargetsAt(_start(1));
        assertEq(e1.length, 2, "epoch 1 length");
        assertEq(e1[0], a, "epoch 1 [0]");
        assertEq(e1[1], b, "epoch 1 [1]");
        uint256[] memory e2 = targets.enabledTargetsAt(_start(2));
        assertEq(e2.length, 2, "epoch 2 length");
        assertEq(e2[0], b, "epoch 2 [0]");
        assertEq(e2[1], c, "epoch 2 [1]");
    }

    // ----------------------------------------------------------------------------------- traps

    function test_sealTrapOnlyByKeeperAndOnce() public {
        bytes32 h = keccak256(abi.encode(uint256(0), uint8(2), bytes32("salt")));
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotKeeper.selector, address(timelock)));
        vm.prank(address(timelock));
        targets.sealTrap(h);
        vm.roll(block.number + 3);
        _seal(0, 2, "salt");
        (uint64 postedAt, uint64 targetsAtPost, uint32 term, uint8 state) = targets.seals(h);
        assertEq(postedAt, block.number, "posted at");
        assertEq(targetsAtPost, 0, "targets when posted");
        assertEq(term, targets.keeperTerm(), "keeper term");
        assertEq(state, targets.SEAL_LIVE(), "live");
        assertEq(targets.liveSeals(), 1, "one live seal");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealExists.selector, h));
        vm.prank(keeper);
        targets.sealTrap(h);
    }

    function test_revealTrapChecksKeeperSealOutcomeAndHash() public {
        _seal(0, 2, "salt");
        uint256 t = _addTarget(1);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotKeeper.selector, stranger));
        vm.prank(stranger);
        targets.revealTrap(t, 2, "salt");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.BadTrapReveal.selector, t));
        vm.prank(keeper);
        targets.revealTrap(t, 1, "salt"); // wrong outcome
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.BadTrapReveal.selector, t));
        vm.prank(keeper);
        targets.revealTrap(t, 2, "pepper"); // wrong salt
        assertEq(targets.trapOutcome(t), 0, "not revealed yet");

        vm.prank(keeper);
        targets.revealTrap(t, 2, "salt");
        assertEq(targets.trapOutcome(t), 2, "revealed");
        assertEq(targets.liveSeals(), 0, "its slot is free");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.BadTrapReveal.selector, t));
        vm.prank(keeper);
        targets.revealTrap(t, 2, "salt"); // the seal is spent

        _seal(1, 4, "salt");
        uint256 u = _addTarget(1);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.BadTrapReveal.selector, u));
        vm.prank(keeper);
        targets.revealTrap(u, 2, "salt"); // no seal for (u, 2, salt)
        // An out-of-range outcome is refused even when it matches the seal.
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.InvalidOutcome.selector, 4));
        vm.prank(keeper);
        targets.revealTrap(u, 4, "salt");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.InvalidOutcome.selector, 0));
        vm.prank(keeper);
        targets.revealTrap(u, 0, "salt");
        assertEq(targets.trapOutcome(u), 0, "u unrevealed");
    }

    function test_setTrapKeeperMovesTheRole() public {
        address next = makeAddr("nextKeeper");
        vm.prank(address(timelock));
        targets.setTrapKeeper(next);
        assertEq(targets.keeperTerm(), 1, "a new term");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotKeeper.selector, keeper));
        vm.prank(keeper);
        targets.sealTrap(keccak256("h"));
        vm.prank(next);
        targets.sealTrap(keccak256("h"));
    }

    function test_setTrapParamsIsGovernanceAndChecked() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, keeper));
        vm.prank(keeper);
        targets.setTrapParams(100, 1000, 100);
        vm.startPrank(address(timelock));
        vm.expectRevert(TargetRegistry.InvalidTrapParams.selector);
        targets.setTrapParams(10_001, 1000, 100);
        vm.expectRevert(TargetRegistry.InvalidTrapParams.selector);
        targets.setTrapParams(100, 1000, 0);
        vm.expectRevert(TargetRegistry.InvalidTrapParams.selector);
        targets.setTrapParams(100, 99, 100); // a seal must live at least until its reveal deadline
        targets.setTrapParams(100, 1000, 100);
        vm.stopPrank();
        assertEq(targets.trapCapBps(), 100, "cap");
        assertEq(targets.sealTtlBlocks(), 1000, "ttl");
        assertEq(targets.trapRevealBlocks(), 100, "reveal blocks");
    }
}
