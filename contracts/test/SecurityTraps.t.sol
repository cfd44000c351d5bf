// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Vm} from "./utils/Vm.sol";
import {Deployed} from "./utils/Deployed.sol";
import {TargetRegistry} from "../src/TargetRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @dev The storage-access cheatcodes (not in utils/Vm.sol).
interface VmAccesses {
    function record() external;
    function accesses(address target) external returns (bytes32[] memory reads, bytes32[] memory writes);
}

/// @notice Findings H3 (traps are visible on chain) and M3 (the keeper can seal any target, without a cap, and
///         reveal when it suits it). See TargetRegistry's trap rules.
contract SecurityTrapsTest is Deployed {
    bytes32 internal constant SALT = keccak256("keeper salt");
    address internal anyone = makeAddr("anyone");

    function setUp() public {
        _deploy();
    }

    function _sealFor(uint256 id, uint8 outcome, bytes32 salt) internal returns (bytes32 h) {
        h = keccak256(abi.encode(id, outcome, salt));
        vm.prank(keeper);
        targets.sealTrap(h);
    }

    function _governanceAdds(string memory endpoint) internal returns (uint256 id) {
        vm.prank(address(timelock));
        id = targets.addTarget(1, endpoint, abi.encode(uint256(31337)));
    }

    // ============================================================================================ H3

    /// The keeper has no registration path of its own: a trap is added by governance like any target.
    function test_H3_theKeeperCannotRegisterTargets() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, keeper));
        vm.prank(keeper);
        targets.addTarget(1, "http://trap", "");
    }

    /// Registering a trap and a real target writes the same storage and emits the same events, and neither the
    /// seal's storage nor its event names the target.
    function test_H3_storageAndEventsDoNotTellATrapFromATarget() public {
        uint256 trapId = targets.targetCount();
        vm.recordLogs();
        VmAccesses(address(vm)).record();
        bytes32 h = _sealFor(trapId, FAULT_, SALT);
        (, bytes32[] memory sealWrites) = VmAccesses(address(vm)).accesses(address(targets));
        Vm.Log[] memory sealLogs = vm.getRecordedLogs();

        // The seal's event carries the hash only.
        assertEq(sealLogs.length, 1, "one event");
        assertEq(sealLogs[0].topics.length, 2, "signature and seal");
        assertEq(sealLogs[0].topics[1], h, "the seal hash");
        assertEq(sealLogs[0].data.length, 0, "no data");
        // No slot written by sealTrap is a mapping entry keyed by the target id (slots 0..31 of any mapping).
        for (uint256 i; i < sealWrites.length; ++i) {
            for (uint256 slot; slot < 32; ++slot) {
                assertTrue(sealWrites[i] != keccak256(abi.encode(trapId, slot)), "a slot keyed by the target id");
            }
        }
        // The seal's record says when and in which keeper term, not for which target.
        (uint64 postedAt, uint64 targetsAtPost,,) = targets.seals(h);
        assertEq(postedAt, block.number, "posted at");
        assertEq(targetsAtPost, trapId, "the target count, which every later target shares");

        // The trap and a real target, both through governance: same event shapes, same record shapes.
        vm.recordLogs();
        assertEq(_governanceAdds("http://a"), trapId, "the sealed id");
        Vm.Log[] memory trapLogs = vm.getRecordedLogs();
        vm.recordLogs();
        uint256 realId = _governanceAdds("http://b");
        Vm.Log[] memory realLogs = vm.getRecordedLogs();
        assertEq(trapLogs.length, realLogs.length, "same number of events");
        for (uint256 i; i < trapLogs.length; ++i) {
            assertEq(trapLogs[i].topics.length, realLogs[i].topics.length, "same topics");
            assertEq(trapLogs[i].topics[0], realLogs[i].topics[0], "same event");
            assertEq(trapLogs[i].data.length, realLogs[i].data.length, "same data length");
        }
        TargetRegistry.Target memory a = targets.getTarget(trapId);
        TargetRegistry.Target memory b = targets.getTarget(realId);
        assertEq(a.kind, b.kind, "kind");
        assertTrue(a.enabled == b.enabled, "enabled");
        assertEq(a.changedAtBlock, b.changedAtBlock, "changed at");
        assertEq(targets.trapOutcome(trapId), 0, "nothing until the reveal");
        assertEq(targets.trapOutcome(realId), 0, "nothing");

        // No per-target trap getter is left (the old `traps(uint256)`).
        (bool ok,) = address(targets).staticcall(abi.encodeWithSignature("traps(uint256)", trapId));
        assertFalse(ok, "no traps(targetId) getter");
    }

    // ============================================================================================ M3

    /// A seal posted after a target's registration never judges it: the keeper cannot overrule the committee of
    /// a target governance added.
    function test_M3_theKeeperCannotSealAnAlreadyRegisteredTarget() public {
        uint256 real = _governanceAdds("http://real");
        _sealFor(real, OK_, SALT);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealPostdatesTarget.selector, real));
        vm.prank(keeper);
        targets.revealTrap(real, OK_, SALT);
        assertEq(targets.trapOutcome(real), 0, "the committee decides");
    }

    /// Live seals are capped: max(1, targets * trapCapBps / 10_000), 5% by default; a reveal frees a slot.
    function test_M3_liveSealsAreCapped() public {
        assertEq(targets.sealCap(), 1, "at least one");
        _sealFor(0, FAULT_, SALT);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealCapReached.selector, 1));
        vm.prank(keeper);
        targets.sealTrap(keccak256("second"));

        for (uint256 i; i < 40; ++i) {
            _governanceAdds("http://t");
        }
        assertEq(targets.sealCap(), 2, "5% of 40");
        vm.prank(keeper);
        targets.sealTrap(keccak256("second"));
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealCapReached.selector, 2));
        vm.prank(keeper);
        targets.sealTrap(keccak256("third"));

        vm.prank(keeper);
        targets.revealTrap(0, FAULT_, SALT);
        assertEq(targets.liveSeals(), 1, "revealed: slot freed");
        vm.prank(keeper);
        targets.sealTrap(keccak256("third"));

        vm.prank(address(timelock));
        targets.setTrapParams(0, 100_800, 7_200);
        assertEq(targets.sealCap(), 1, "governance may lower it to the floor");
    }

    /// The reveal has a deadline counted from the trap's registration: a keeper cannot sit on a trap and open
    /// it when the votes of later epochs suit it.
    function test_M3_aTrapCannotBeRevealedAfterItsDeadline() public {
        _sealFor(0, FAULT_, SALT);
        uint256 t = _governanceAdds("http://trap");
        uint256 deadline = targets.registeredAt(t) + targets.trapRevealBlocks();
        vm.roll(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.RevealTooLate.selector, t, deadline));
        vm.prank(keeper);
        targets.revealTrap(t, FAULT_, SALT);
        assertEq(targets.trapOutcome(t), 0, "too late: the committee decided");
    }

    /// Withholding: a trap left unrevealed expires, and closing it (anyone) dismisses the keeper.
    function test_M3_withholdingATrapDismissesTheKeeper() public {
        bytes32 h = _sealFor(0, FAULT_, SALT);
        _governanceAdds("http://trap");
        (uint64 postedAt,,,) = targets.seals(h);
        uint256 expiresAt = postedAt + targets.sealTtlBlocks();
        vm.roll(expiresAt);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealNotExpired.selector, h, expiresAt));
        targets.expireSeal(h);
        vm.roll(expiresAt + 1);
        vm.prank(anyone);
        targets.expireSeal(h);
        assertEq(targets.trapKeeper(), address(0), "dismissed");
        assertEq(targets.liveSeals(), 0, "closed");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotLive.selector, h));
        targets.expireSeal(h);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotKeeper.selector, keeper));
        vm.prank(keeper);
        targets.sealTrap(keccak256("again"));
    }

    /// Equivocation: two seals for one id (OK and FAULT) let the keeper pick after the votes; only one can be
    /// revealed, and the other expires and dismisses the keeper.
    function test_M3_twoSealsForOneTargetCostTheKeeperItsSeat() public {
        vm.prank(address(timelock));
        targets.setTrapParams(10_000, 100_800, 7_200);
        _governanceAdds("http://a");
        _governanceAdds("http://b"); // two targets: room for two seals
        bytes32 ok = _sealFor(2, OK_, SALT);
        _sealFor(2, FAULT_, SALT);
        uint256 t = _governanceAdds("http://trap");
        vm.prank(keeper);
        targets.revealTrap(t, FAULT_, SALT);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.AlreadyRevealed.selector, t));
        vm.prank(keeper);
        targets.revealTrap(t, OK_, SALT);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.SealInUse.selector, ok));
        vm.prank(keeper);
        targets.cancelSeal(ok);
        (uint64 postedAt,,,) = targets.seals(ok);
        vm.roll(postedAt + targets.sealTtlBlocks() + 1);
        targets.expireSeal(ok);
        assertEq(targets.trapKeeper(), address(0), "dismissed");
        assertEq(targets.trapOutcome(t), FAULT_, "the first reveal stands");
    }

    /// A seal whose trap was never registered may be withdrawn while no target was registered after it.
    function test_cancelSealOnlyWhileNoTargetWasRegisteredSince() public {
        bytes32 h = _sealFor(0, FAULT_, SALT);
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.NotKeeper.selector, anyone));
        vm.prank(anyone);
        targets.cancelSeal(h);
        vm.prank(keeper);
        targets.cancelSeal(h);
        assertEq(targets.liveSeals(), 0, "freed");
        _governanceAdds("http://x");
        vm.expectRevert(abi.encodeWithSelector(TargetRegistry.BadTrapReveal.selector, 0));
        vm.prank(keeper);
        targets.revealTrap(0, FAULT_, SALT);
    }

    /// A seal of a former keeper expiring does not dismiss its successor.
    function test_anOldTermsSealDoesNotDismissTheNextKeeper() public {
        bytes32 h = _sealFor(0, FAULT_, SALT);
        _governanceAdds("http://trap");
        address next = makeAddr("next keeper");
        vm.prank(address(timelock));
        targets.setTrapKeeper(next);
        vm.roll(block.number + targets.sealTtlBlocks() + 1);
        targets.expireSeal(h);
        assertEq(targets.trapKeeper(), next, "still in office");
    }

    uint8 internal constant OK_ = 1;
    uint8 internal constant FAULT_ = 2;
}
