// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {AuditFixture} from "./AuditProtocol.t.sol";
import {AuditProtocol, IRefereeCourt} from "../src/AuditProtocol.sol";
import {RefereeCourt, ICourtProtocol} from "../src/RefereeCourt.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice The referee duty on chain: bonding, assignment, the verdict window, and how `settle` reads the
///         referees' ruling (docs/protocol.md, "The referee duty").
contract RefereeCourtTest is AuditFixture {
    uint128 internal constant BOND = 100 ether;
    uint32 internal constant REFEREE_BLOCKS = 10;
    uint32 internal constant UNBOND_BLOCKS = 50;
    bytes32 internal constant BASELINE = keccak256("baseline bundle");
    bytes32 internal constant REF_ROOT = keccak256("referee evidence");

    address internal ref1 = makeAddr("ref1");
    address internal ref2 = makeAddr("ref2");
    address internal ref3 = makeAddr("ref3");
    address internal challenger = makeAddr("challenger");
    uint256 internal model; // a MODEL target bound to BASELINE

    function setUp() public {
        _fixture(16);
        court = new RefereeCourt(
            IERC20(address(token)),
            targets,
            ICourtProtocol(address(protocol)),
            RefereeCourt.Params({minBond: BOND, refereeBlocks: REFEREE_BLOCKS, unbondBlocks: UNBOND_BLOCKS, committee: 1}),
            address(timelock)
        );
        vm.prank(address(timelock));
        protocol.setCourt(IRefereeCourt(address(court)));
        vm.prank(address(timelock));
        model = targets.addTarget(5, "http://127.0.0.1:9000", abi.encodePacked(BASELINE));
        court.bindTarget(model);
        address[3] memory refs = [ref1, ref2, ref3];
        for (uint256 i; i < 3; ++i) {
            token.mint(refs[i], 1000 ether);
            vm.prank(refs[i]);
            token.approve(address(court), type(uint256).max);
        }
    }

    function _register(address who) internal {
        vm.prank(who);
        court.register(BASELINE, BOND);
    }

    /// @dev ref1, the only referee, judges `verdict` on the committee's `votes`; settle after its window.
    function _settleAfterOneReferee(uint8[] memory votes, uint8 verdict) internal returns (uint8) {
        _register(ref1);
        _committeeVotes(model, votes);
        vm.prank(ref1);
        court.submitVerdict(1, model, verdict, REF_ROOT);
        (, uint256 revealEnd) = protocol.revealWindow(1);
        vm.roll(revealEnd + REFEREE_BLOCKS);
        return protocol.settle(1, model);
    }

    function _vs(uint8 a, uint8 b, uint8 c) internal pure returns (uint8[] memory v) {
        v = new uint8[](3);
        (v[0], v[1], v[2]) = (a, b, c);
    }

    /// @dev License i's operator lists its vote verdicts[i] on `t` (nothing listed for OK).
    function _ballotOn(uint256 lic, uint256 t, uint8 v) internal pure returns (AuditProtocol.Vote[] memory) {
        return v == 1 ? _allOk() : _votes(_vote(lic, t, v, keccak256(abi.encode("root", lic, t, v))));
    }

    /// @dev Epoch 1: licenses 1..n (each its own operator) vote verdicts[i] on `t` (OK wherever else they sit);
    ///      afterwards the reveal window is over.
    function _committeeVotes(uint256 t, uint8[] memory verdicts) internal returns (uint256[] memory lics) {
        uint256 n = verdicts.length;
        lics = new uint256[](n);
        _rollToEpoch(1);
        for (uint256 i; i < n; ++i) {
            lics[i] = ids[i];
            vm.prank(opOf[lics[i]]);
            protocol.heartbeat();
            _commitVotes(opOf[lics[i]], 1, keccak256(abi.encode("salt", lics[i])), _ballotOn(lics[i], t, verdicts[i]));
        }
        _rollToReveal(1);
        for (uint256 i; i < n; ++i) {
            bytes32 salt = keccak256(abi.encode("salt", lics[i]));
            protocol.reveal(1, opOf[lics[i]], salt, _ballotOn(lics[i], t, verdicts[i]));
        }
        _rollPastReveal(1);
    }

    function _assigned(uint256 e, uint256 t) internal view returns (address) {
        address[] memory set = court.referees(BASELINE);
        for (uint256 i; i < set.length; ++i) {
            if (court.isAssigned(e, t, set[i])) return set[i];
        }
        return address(0);
    }

    // ================================================================================== bonding

    function test_registerTakesTheBondAndListsTheReferee() public {
        vm.expectEmit();
        emit RefereeCourt.RefereeRegistered(BASELINE, ref1, BOND);
        _register(ref1);
        assertEq(court.bondOf(BASELINE, ref1), BOND, "bond");
        assertEq(token.balanceOf(address(court)), BOND, "held by the court");
        assertEq(court.referees(BASELINE).length, 1, "listed");
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.AlreadyReferee.selector, BASELINE, ref1));
        _register(ref1);
    }

    function test_registerRejectsASmallBondAndAZeroBaseline() public {
        vm.prank(ref1);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.BondTooSmall.selector, BOND - 1, BOND));
        court.register(BASELINE, BOND - 1);
        vm.prank(ref1);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.InvalidBaseline.selector));
        court.register(bytes32(0), BOND);
    }

    function test_leaveUnbondsAfterTheDelayAndSlashTakesUnbondingBonds() public {
        _register(ref1);
        _register(ref2);
        vm.prank(ref1);
        court.leave(BASELINE);
        assertEq(court.referees(BASELINE).length, 1, "ref1 left the list");
        assertEq(court.referees(BASELINE)[0], ref2, "ref2 stays");
        vm.prank(ref1);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.StillBonded.selector, block.number + UNBOND_BLOCKS));
        court.withdraw(BASELINE);
        // Governance upholds a challenge while the bond is unbonding: it is slashed all the same.
        vm.prank(address(timelock));
        court.slash(BASELINE, ref1, challenger);
        assertEq(token.balanceOf(challenger), BOND, "slashed to the challenger's recipient");
        vm.prank(ref1);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.NothingToWithdraw.selector));
        court.withdraw(BASELINE);
        // ref2 leaves and withdraws after the delay.
        vm.prank(ref2);
        court.leave(BASELINE);
        vm.roll(block.number + UNBOND_BLOCKS);
        uint256 before = token.balanceOf(ref2);
        vm.prank(ref2);
        court.withdraw(BASELINE);
        assertEq(token.balanceOf(ref2) - before, BOND, "bond returned");
    }

    function test_onlyGovernanceSlashesAndSetsParams() public {
        _register(ref1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        court.slash(BASELINE, ref1, treasury);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        court.setParams(RefereeCourt.Params(1, 1, 1, 1));
        vm.startPrank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.InvalidParams.selector));
        court.setParams(RefereeCourt.Params(1, 1, 1, 4)); // committee above 3
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.InvalidParams.selector));
        court.setParams(RefereeCourt.Params(1, 0, 1, 1)); // no window
        vm.stopPrank();
    }

    function test_bindTargetNeedsAModelTargetWithA32ByteIdentity() public {
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.NotAModelTarget.selector, t0));
        court.bindTarget(t0);
        vm.prank(address(timelock));
        uint256 odd = targets.addTarget(5, "http://127.0.0.1:9001", hex"1234");
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.NotAModelTarget.selector, odd));
        court.bindTarget(odd);
        assertEq(court.baselineOf(model), BASELINE, "bound in setUp");
    }

    // ================================================================================ assignment

    function test_committeeOfOneDrawsExactlyOneRefereePerTarget() public {
        _register(ref1);
        _register(ref2);
        _register(ref3);
        _committeeVotes(model, _vs(1, 1, 1));
        uint256 drawn;
        address[3] memory refs = [ref1, ref2, ref3];
        for (uint256 i; i < 3; ++i) {
            if (court.isAssigned(1, model, refs[i])) drawn++;
        }
        assertEq(drawn, 1, "one referee of three");
        assertFalse(court.isAssigned(1, t0, ref1), "unbound target: no referee");
        assertFalse(court.isAssigned(99, model, ref1), "an epoch without a seed: no referee");
        vm.prank(address(timelock));
        court.setParams(RefereeCourt.Params(BOND, REFEREE_BLOCKS, UNBOND_BLOCKS, 3));
        for (uint256 i; i < 3; ++i) {
            assertTrue(court.isAssigned(1, model, refs[i]), "committee of three: all");
        }
    }

    // ============================================================================ verdicts, settle

    function test_settleWaitsForTheRefereeWindowOnlyWhereThereAreReferees() public {
        _register(ref1);
        _committeeVotes(model, _vs(1, 1, 1));
        (, uint256 revealEnd) = protocol.revealWindow(1);
        assertEq(protocol.settleOpensAt(1, model), revealEnd + REFEREE_BLOCKS, "model target waits");
        assertEq(protocol.settleOpensAt(1, t0), revealEnd, "other targets do not");
        vm.expectRevert(
            abi.encodeWithSelector(AuditProtocol.RefereeWindowOpen.selector, 1, model, revealEnd + REFEREE_BLOCKS)
        );
        protocol.settle(1, model);
        vm.roll(revealEnd + REFEREE_BLOCKS);
        assertEq(protocol.settle(1, model), 1, "no referee verdict: the tally's OK");
    }

    function test_aRefereeFaultTurnsAnOkTallyIntoFaultWithoutPenalties() public {
        _register(ref1);
        uint256[] memory lics = _committeeVotes(model, _vs(1, 1, 1));
        int256[3] memory before;
        for (uint256 i; i < 3; ++i) {
            (int128 b,,,) = vault.accounts(lics[i]);
            before[i] = b;
        }
        vm.expectEmit();
        emit RefereeCourt.RefereeVerdict(1, model, ref1, 2, REF_ROOT);
        vm.prank(ref1);
        court.submitVerdict(1, model, 2, REF_ROOT);
        vm.prank(ref1);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.AlreadyJudged.selector, 1, model, ref1));
        court.submitVerdict(1, model, 1, REF_ROOT);
        (, uint256 revealEnd) = protocol.revealWindow(1);
        vm.roll(revealEnd + REFEREE_BLOCKS);
        vm.prank(ref1);
        vm.expectRevert(
            abi.encodeWithSelector(RefereeCourt.VerdictWindowClosed.selector, 1, revealEnd, revealEnd + REFEREE_BLOCKS)
        );
        court.submitVerdict(1, model, 2, REF_ROOT);
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, model, 2, 3, 0, 0);
        vm.expectEmit();
        emit AuditProtocol.RefereeDecided(1, model, REF_ROOT);
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, model, 2, REF_ROOT);
        assertEq(protocol.settle(1, model), 2, "referee-decided FAULT");
        for (uint256 i; i < 3; ++i) {
            (int128 b,,,) = vault.accounts(lics[i]);
            assertEq(int256(b), before[i], "no disagreement penalty for the committee");
        }
    }

    function test_aRefereeOkNeverOverturnsACommitteeFault() public {
        assertEq(_settleAfterOneReferee(_vs(2, 2, 2), 1), 2, "committee FAULT stands");
    }

    function test_aRefereeFaultDecidesAnInconclusiveTally() public {
        assertEq(_settleAfterOneReferee(_vs(1, 2, 3), 2), 2, "no 2/3 majority: the referee's FAULT");
    }

    function test_refereesDecideByMajorityAndATieIsNoVerdict() public {
        _register(ref1);
        _register(ref2);
        _register(ref3);
        vm.prank(address(timelock));
        court.setParams(RefereeCourt.Params(BOND, REFEREE_BLOCKS, UNBOND_BLOCKS, 3));
        _committeeVotes(model, _vs(1, 1, 1));
        vm.prank(ref1);
        court.submitVerdict(1, model, 2, REF_ROOT);
        vm.prank(ref2);
        court.submitVerdict(1, model, 1, bytes32(0));
        (, uint256 revealEnd) = protocol.revealWindow(1);
        (uint256 opensAt, uint8 verdict,) = court.ruling(1, model, revealEnd);
        assertEq(opensAt, revealEnd + REFEREE_BLOCKS, "window");
        assertEq(verdict, 0, "1-1 is no verdict");
        vm.prank(ref3);
        court.submitVerdict(1, model, 2, keccak256("second root"));
        bytes32 root;
        (, verdict, root) = court.ruling(1, model, revealEnd);
        assertEq(verdict, 2, "2-1 FAULT");
        assertEq(root, REF_ROOT, "the first FAULT's root");
        vm.roll(revealEnd + REFEREE_BLOCKS);
        assertEq(protocol.settle(1, model), 2, "settled FAULT");
    }

    function test_onlyTheDrawnRefereeMayJudgeAndOnlyOkOrFault() public {
        _register(ref1);
        _register(ref2);
        _committeeVotes(model, _vs(1, 1, 1));
        address drawn = _assigned(1, model);
        address other = drawn == ref1 ? ref2 : ref1;
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.NotAssignedReferee.selector, 1, model, other));
        court.submitVerdict(1, model, 2, REF_ROOT);
        vm.prank(drawn);
        vm.expectRevert(abi.encodeWithSelector(RefereeCourt.InvalidVerdict.selector, 3));
        court.submitVerdict(1, model, 3, REF_ROOT);
        // Before the reveal window ends, no verdict.
        (uint256 revealStart, uint256 revealEnd) = protocol.revealWindow(1);
        vm.roll(revealStart);
        vm.prank(drawn);
        vm.expectRevert(
            abi.encodeWithSelector(RefereeCourt.VerdictWindowClosed.selector, 1, revealEnd, revealEnd + REFEREE_BLOCKS)
        );
        court.submitVerdict(1, model, 2, REF_ROOT);
    }

    function test_withoutACourtSettleIsUnchanged() public {
        vm.prank(address(timelock));
        protocol.setCourt(IRefereeCourt(address(0)));
        _register(ref1);
        _committeeVotes(model, _vs(1, 1, 1));
        (, uint256 revealEnd) = protocol.revealWindow(1);
        assertEq(protocol.settleOpensAt(1, model), revealEnd, "no wait");
        assertEq(protocol.settle(1, model), 1, "OK at once");
    }
}
