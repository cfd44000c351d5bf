// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {Generations} from "../src/lib/Generations.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @dev Cheatcodes these tests need beyond test/utils/Vm.sol (forge's exact signatures).
interface AuditVm {
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
}

/// @notice Shared fixture: `nLicenses` licenses of one owner (listed from epoch 1), each with its own operator, so
///         that which licenses are active and which reveal stays a per-license choice here (a heartbeat makes every
///         license listed under its operator active, and a reveal opens all of them, issue 16); three targets
///         enabled from epoch 1, committees of 16 (so up to 16 licenses all sit on every committee, in list order).
abstract contract AuditFixture is Deployed {
    AuditVm internal constant vmx = AuditVm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant MAX = type(uint256).max;
    bytes32 internal constant GENESIS_SEED = keccak256("genesis");
    uint8 internal constant NO_VOTE = 0;
    uint8 internal constant OK = 1;
    uint8 internal constant FAULT = 2;
    uint8 internal constant UNREACHABLE = 3;
    uint8 internal constant INCONCLUSIVE = 4;

    address internal op = makeAddr("op"); // the operator of ids[0]
    mapping(uint256 => address) internal opOf;
    address internal owner = makeAddr("owner");
    address internal reporter = makeAddr("reporter");
    uint256[] internal ids;
    uint256 internal t0;
    uint256 internal t1;
    uint256 internal t2;

    function _fixture(uint256 nLicenses) internal {
        _deploy();
        _fundEmission(100_000 ether);
        ids = new uint256[](nLicenses);
        for (uint256 i; i < nLicenses; ++i) {
            address o = i == 0 ? op : vm.addr(uint256(keccak256(abi.encode("operator", i))));
            ids[i] = _operatorWithLicenses(o, 1000, owner, 1)[0];
            opOf[ids[i]] = o;
        }
        // An anonymous trap seal (id 0, OK) posted before any registration; only the trap tests reveal it.
        vm.prank(keeper);
        targets.sealTrap(keccak256(abi.encode(uint256(0), uint8(1), keccak256("trap salt"))));
        t0 = _addTarget(1);
        t1 = _addTarget(2);
        t2 = _addTarget(3);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16));
    }

    function _first(uint256 n) internal view returns (uint256[] memory out) {
        out = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = ids[i];
        }
    }

    /// @dev The operators of `lics` send their heartbeats.
    function _heartbeat(uint256[] memory lics) internal {
        for (uint256 i; i < lics.length; ++i) {
            vm.prank(opOf[lics[i]]);
            protocol.heartbeat();
        }
    }

    /// @dev The salt of `lic`'s operator (one per operator; every epoch the same here).
    function _salt(uint256 lic) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", lic));
    }

    /// @dev The evidence root `lic` gives for verdict `v` on target `t`.
    function _root(uint256 lic, uint256 t, uint8 v) internal pure returns (bytes32) {
        return keccak256(abi.encode("root", lic, t, v));
    }

    /// @dev `lic`'s listed votes for verdict vs[t] on target t = 0, 1, ...: OK is not listed (implicit), NO_VOTE
    ///      is listed with a zero root, FAULT and UNREACHABLE with `_root`.
    function _ballot(uint256 lic, uint8[] memory vs) internal pure returns (AuditProtocol.Vote[] memory votes) {
        uint256 n;
        for (uint256 t; t < vs.length; ++t) {
            if (vs[t] != OK) ++n;
        }
        votes = new AuditProtocol.Vote[](n);
        n = 0;
        for (uint256 t; t < vs.length; ++t) {
            if (vs[t] == OK) continue;
            votes[n++] = _vote(lic, t, vs[t], vs[t] == NO_VOTE ? bytes32(0) : _root(lic, t, vs[t]));
        }
    }

    function _v(uint8 a, uint8 b, uint8 c) internal pure returns (uint8[] memory v) {
        v = new uint8[](3);
        (v[0], v[1], v[2]) = (a, b, c);
    }

    /// @dev `lic` votes `v` on all three targets.
    function _same(uint256 lic, uint8 v) internal pure returns (AuditProtocol.Vote[] memory) {
        return _ballot(lic, _v(v, v, v));
    }

    /// @dev `lic` votes `v` on target `t` and did not audit the two others (NO_VOTE).
    function _only(uint256 lic, uint256 t, uint8 v) internal pure returns (AuditProtocol.Vote[] memory) {
        uint8[] memory vs = new uint8[](3);
        vs[t] = v;
        return _ballot(lic, vs);
    }

    /// @dev `lic`'s operator commits `votes` for epoch `e` under `_salt(lic)`.
    function _commit(uint256 e, uint256 lic, AuditProtocol.Vote[] memory votes) internal {
        _commitVotes(opOf[lic], e, _salt(lic), votes);
    }

    /// @dev `lic`'s operator commits a raw root.
    function _commitHash(uint256 e, uint256 lic, bytes32 c) internal {
        vm.prank(opOf[lic]);
        protocol.commit(e, c);
    }

    /// @dev Reveal `lic`'s operator's votes (sent by this test contract: anyone holding the opening may).
    function _reveal(uint256 e, uint256 lic, AuditProtocol.Vote[] memory votes) internal {
        protocol.reveal(e, opOf[lic], _salt(lic), votes);
    }

    /// @dev Epoch 1: licenses 1..n reveal verdicts[i] on target `t` and NO_VOTE on the two others; afterwards
    ///      the reveal window is over (credit of epoch 1 booked at the epoch-2 heartbeats).
    function _votesOn(uint256 t, uint8[] memory verdicts) internal returns (uint256[] memory lics) {
        uint256 n = verdicts.length;
        lics = _first(n);
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _commit(1, lics[i], _only(lics[i], t, verdicts[i]));
        }
        _rollToEpoch(2);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _reveal(1, lics[i], _only(lics[i], t, verdicts[i]));
        }
        _rollPastReveal(1);
    }

    /// @dev What the license can claim: its balance plus the credit of final epochs not booked yet (lazy).
    function _balance(uint256 lic) internal view returns (int256 bal) {
        bal = vault.claimable(lic);
    }
}

contract AuditProtocolTest is AuditFixture {
    function setUp() public {
        _fixture(16);
    }

    // ================================================================================ constructor

    function _newProtocol(uint256 genesisBlock, uint32 length, AuditProtocol.Params memory p)
        internal
        returns (AuditProtocol)
    {
        return new AuditProtocol(
            IDelegations(address(registry)),
            ITargets(address(targets)),
            IPresenceVault(address(vault)),
            genesisBlock,
            length,
            keccak256("g"),
            p,
            address(this)
        );
    }

    function _p(uint32 revealBlocks, uint16 committeeSize, uint16 minReveals, uint16 maxCommittee)
        internal
        pure
        returns (AuditProtocol.Params memory)
    {
        return AuditProtocol.Params(revealBlocks, committeeSize, minReveals, maxCommittee);
    }

    function test_constructorSetsClockSeedAndParams() public {
        vm.roll(500);
        vm.expectEmit();
        emit AuditProtocol.ClockSet(450, 0, 40);
        vm.expectEmit();
        emit AuditProtocol.ParamsSet(_p(10, 4, 2, 12));
        AuditProtocol p = _newProtocol(450, 40, _p(10, 4, 2, 12));
        (uint64 anchorBlock, uint32 anchorEpoch, uint32 length) = p.clock();
        assertEq(anchorBlock, 450, "anchor block");
        assertEq(anchorEpoch, 0, "anchor epoch");
        assertEq(length, 40, "length");
        (anchorBlock, anchorEpoch, length) = p.previousClock();
        assertEq(anchorBlock, 450, "previous anchor block");
        assertEq(length, 40, "previous length");
        assertEq(p.lastSeed(), keccak256("g"), "genesis seed");
        (uint32 rb, uint16 cs, uint16 mr, uint16 mc) = p.params();
        assertEq(rb, 10, "revealBlocks");
        assertEq(cs, 4, "committeeSize");
        assertEq(mr, 2, "minReveals");
        assertEq(mc, 12, "maxCommittee");
        assertEq(p.currentEpoch(), 1, "block 500 is in epoch 1");
        assertEq(p.owner(), address(this), "owner");
    }

    function test_constructorRejectsGenesisInTheFuture() public {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
        _newProtocol(vm.getBlockNumber() + 1, 30, _defaultProtocolParams());
    }

    function test_constructorRejectsZeroEpochLength() public {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
        _newProtocol(vm.getBlockNumber(), 0, _defaultProtocolParams());
    }

    function test_constructorRejectsGenesisBeyondUint64() public {
        uint256 g = uint256(type(uint64).max) + 1;
        vm.roll(g);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
        _newProtocol(g, 30, _defaultProtocolParams());
    }

    function test_constructorRejectsEachInvalidParam() public {
        AuditProtocol.Params[6] memory bad = [
            _p(0, 5, 3, 16), // revealBlocks 0
            _p(30, 5, 3, 16), // revealBlocks >= epoch length
            _p(15, 0, 3, 16), // committeeSize 0
            _p(15, 5, 0, 0), // maxCommittee 0
            _p(15, 5, 3, 17), // maxCommittee above the tally's cap
            _p(15, 5, 9, 8) // minReveals > maxCommittee
        ];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
            _newProtocol(vm.getBlockNumber(), 30, bad[i]);
        }
        // The boundaries themselves are accepted.
        _newProtocol(vm.getBlockNumber(), 30, _p(29, 1, 16, 16));
    }

    // ===================================================================================== clock

    function test_epochsFollowTheGenesisClock() public {
        // Deployed at block 100 with 30-block epochs.
        assertEq(protocol.epochAt(100), 0, "genesis block");
        assertEq(protocol.epochAt(129), 0, "last block of epoch 0");
        assertEq(protocol.epochAt(130), 1, "first block of epoch 1");
        assertEq(protocol.epochStartBlock(5), 250, "start of epoch 5");
        (uint256 rs, uint256 re) = protocol.revealWindow(1);
        assertEq(rs, 160, "reveal start of epoch 1");
        assertEq(re, 175, "reveal end of epoch 1");
        assertEq(protocol.epochLength(), 30, "length");
        vm.roll(189);
        assertEq(protocol.currentEpoch(), 2, "current epoch");
    }

    function test_epochAtRejectsBlocksBeforeGenesis() public {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotStarted.selector));
        protocol.epochAt(99);
    }

    function test_setEpochLengthKeepsEpochNumbersContinuous() public {
        vm.roll(200); // epoch 3 = [190, 220)
        vm.expectEmit();
        emit AuditProtocol.ClockSet(220, 4, 50);
        vm.prank(address(timelock));
        protocol.setEpochLength(50);
        assertEq(protocol.epochLength(), 50, "new length");
        assertEq(protocol.currentEpoch(), 3, "still epoch 3");
        assertEq(protocol.epochAt(150), 1, "old blocks keep their epoch");
        assertEq(protocol.epochAt(219), 3, "last block under the old length");
        assertEq(protocol.epochAt(220), 4, "boundary");
        assertEq(protocol.epochAt(269), 4, "epoch 4 lasts 50 blocks");
        assertEq(protocol.epochAt(270), 5, "epoch 5");
        assertEq(protocol.epochStartBlock(1), 130, "start of epoch 1");
        assertEq(protocol.epochStartBlock(3), 190, "start of epoch 3");
        assertEq(protocol.epochStartBlock(4), 220, "start of epoch 4");
        assertEq(protocol.epochStartBlock(6), 320, "start of epoch 6");
        (uint256 rs, uint256 re) = protocol.revealWindow(3);
        assertEq(rs, 220, "epoch 3 reveals open at the boundary");
        assertEq(re, 235, "for revealBlocks blocks");
        (rs, re) = protocol.revealWindow(4);
        assertEq(rs, 270, "epoch 4 reveals");
        assertEq(re, 285, "epoch 4 reveal end");
    }

    function test_setEpochLengthRejectsAChangeWhileOneIsPending() public {
        vm.roll(200);
        vm.prank(address(timelock));
        protocol.setEpochLength(50);
        vm.roll(219);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.ClockChangePending.selector, 220));
        vm.prank(address(timelock));
        protocol.setEpochLength(40);
    }

    function test_twoEpochLengthChangesKeepEveryEarlierEpochAddressable() public {
        vm.roll(200);
        vm.prank(address(timelock));
        protocol.setEpochLength(50); // epoch 4 starts at 220
        vm.roll(230);
        vm.prank(address(timelock));
        protocol.setEpochLength(40); // epoch 5 starts at 270, epoch 6 at 310
        assertEq(protocol.epochAt(100), 0, "genesis");
        assertEq(protocol.epochAt(150), 1, "epoch 1 under the genesis clock");
        assertEq(protocol.epochAt(219), 3, "epoch 3");
        assertEq(protocol.epochAt(269), 4, "epoch 4");
        assertEq(protocol.epochAt(309), 5, "epoch 5");
        assertEq(protocol.epochAt(310), 6, "epoch 6");
        assertEq(protocol.epochStartBlock(0), 100, "start of epoch 0");
        assertEq(protocol.epochStartBlock(2), 160, "start of epoch 2");
        assertEq(protocol.epochStartBlock(4), 220, "start of epoch 4");
        assertEq(protocol.epochStartBlock(7), 350, "start of epoch 7");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotStarted.selector));
        protocol.epochAt(99);
    }

    function test_threeEpochLengthChangesKeepEveryEraAddressable() public {
        uint32[3] memory lengths = [uint32(50), 40, 20];
        uint256[3] memory at = [uint256(200), 230, 280];
        for (uint256 i; i < 3; ++i) {
            vm.roll(at[i]);
            vm.prank(address(timelock));
            protocol.setEpochLength(lengths[i]);
        }
        vm.roll(400);
        // Eras: [100, 220) by 30 from epoch 0; [220, 270) by 50 from 4; [270, 310) by 40 from 5; by 20 from 6.
        uint256[8] memory blocks = [uint256(100), 159, 160, 240, 300, 315, 335, 399];
        uint256[8] memory epochs_ = [uint256(0), 1, 2, 4, 5, 6, 7, 10];
        for (uint256 i; i < 8; ++i) {
            assertEq(protocol.epochAt(blocks[i]), epochs_[i], "epochAt");
        }
        uint256[7] memory starts = [uint256(100), 160, 190, 220, 270, 310, 350];
        uint256[7] memory startEpochs = [uint256(0), 2, 3, 4, 5, 6, 8];
        for (uint256 i; i < 7; ++i) {
            assertEq(protocol.epochStartBlock(startEpochs[i]), starts[i], "epochStartBlock");
        }
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotStarted.selector));
        protocol.epochAt(99);
    }

    function test_oldEpochStillSettlesAfterTwoEpochLengthChanges() public {
        _rollToEpoch(1);
        uint256[] memory lics = _first(3);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _commit(1, lics[i], _allOk());
        }
        _rollToReveal(1);
        for (uint256 i; i < 3; ++i) {
            _reveal(1, lics[i], _allOk());
        }
        vm.roll(200);
        vm.prank(address(timelock));
        protocol.setEpochLength(50);
        vm.roll(230);
        vm.prank(address(timelock));
        protocol.setEpochLength(40);
        vm.roll(300);
        assertEq(protocol.settle(1, t0), 1, "epoch 1 settles OK");
    }

    function test_setEpochLengthRejectsInvalidLengths() public {
        vm.startPrank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
        protocol.setEpochLength(0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
        protocol.setEpochLength(15); // revealBlocks is 15
        vm.stopPrank();
    }

    function test_setEpochLengthIsOnlyTheTimelocks() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        protocol.setEpochLength(50);
    }

    // ==================================================================================== params

    function test_setParamsByTheTimelockReplacesParams() public {
        vm.expectEmit();
        emit AuditProtocol.ParamsSet(_p(20, 7, 4, 10));
        vm.prank(address(timelock));
        protocol.setParams(_p(20, 7, 4, 10));
        (uint32 rb, uint16 cs, uint16 mr, uint16 mc) = protocol.params();
        assertEq(rb, 20, "revealBlocks");
        assertEq(cs, 7, "committeeSize");
        assertEq(mr, 4, "minReveals");
        assertEq(mc, 10, "maxCommittee");
    }

    function test_setParamsRejectsEachInvalidParam() public {
        AuditProtocol.Params[6] memory bad = [
            _p(0, 5, 3, 16),
            _p(30, 5, 3, 16),
            _p(15, 0, 3, 16),
            _p(15, 5, 0, 0),
            _p(15, 5, 3, 17),
            _p(15, 5, 9, 8)
        ];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidParams.selector));
            vm.prank(address(timelock));
            protocol.setParams(bad[i]);
        }
    }

    function test_setParamsIsOnlyTheTimelocks() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        vm.prank(owner);
        protocol.setParams(_p(20, 7, 4, 10));
    }

    // ===================================================================================== seeds

    function test_seedIsRecordedAtTheFirstTouchOfEachEpoch() public {
        assertEq(protocol.lastSeed(), GENESIS_SEED, "genesis seed");
        assertEq(protocol.seed(0), bytes32(0), "epoch 0 untouched");

        _rollToEpoch(1);
        bytes32 h1 = keccak256("block 129");
        vmx.setBlockhash(vm.getBlockNumber() - 1, h1);
        bytes32 s1 = keccak256(abi.encode(GENESIS_SEED, h1, uint256(1)));
        vm.expectEmit();
        emit AuditProtocol.SeedRecorded(1, s1);
        protocol.poke();
        assertEq(protocol.seed(1), s1, "seed 1");
        assertEq(protocol.lastSeed(), s1, "last seed 1");

        // A later touch of the same epoch changes nothing.
        vm.roll(vm.getBlockNumber() + 5);
        vmx.setBlockhash(vm.getBlockNumber() - 1, keccak256("other"));
        protocol.poke();
        assertEq(protocol.seed(1), s1, "seed 1 fixed");

        // Epoch 2 is never touched; epoch 3's seed chains on epoch 1's, recorded by a heartbeat.
        _rollToEpoch(3);
        bytes32 h3 = keccak256("block 189");
        vmx.setBlockhash(vm.getBlockNumber() - 1, h3);
        bytes32 s3 = keccak256(abi.encode(s1, h3, uint256(3)));
        vm.expectEmit();
        emit AuditProtocol.SeedRecorded(3, s3);
        _heartbeat(_first(1));
        assertEq(protocol.seed(2), bytes32(0), "epoch 2 has no seed");
        assertEq(protocol.seed(3), s3, "seed 3");
        assertEq(protocol.lastSeed(), s3, "last seed 3");
    }

    function test_seedUsesTheHashOfTheBlockBeforeTheEpochWhoeverTouchesIt() public {
        vm.roll(145); // epoch 1 began at block 130: the first touch in its 16th block does not pick the block
        bytes32 expected = keccak256(abi.encode(GENESIS_SEED, blockhash(129), uint256(1)));
        assertTrue(blockhash(129) != blockhash(144), "distinct hashes");
        _heartbeat(_first(2));
        assertEq(protocol.seed(1), expected, "seed from blockhash(epochStartBlock(1) - 1)");
    }

    function test_seedFallsBackToThePreviousBlockAfter256Blocks() public {
        vm.roll(130 + 300); // epoch 11 began at block 430; epoch 1 is never touched
        _rollToEpoch(20);
        vm.roll(vm.getBlockNumber() + 10);
        vmx.setBlockhash(protocol.epochStartBlock(20) - 1, keccak256("anchor"));
        bytes32 expected = keccak256(abi.encode(GENESIS_SEED, keccak256("anchor"), uint256(20)));
        protocol.poke();
        assertEq(protocol.seed(20), expected, "within 256 blocks: the anchor block");
        _rollToEpoch(40);
        vm.roll(vm.getBlockNumber() + 29); // 29 blocks in
        uint256 anchor = protocol.epochStartBlock(40) - 1;
        // the anchor is 30 blocks back: still readable; 300 blocks later it is not
        vm.roll(anchor + 300);
        assertEq(protocol.currentEpoch(), 49, "epoch 49");
        vmx.setBlockhash(vm.getBlockNumber() - 1, keccak256("late"));
        protocol.poke();
        bytes32 s49 = keccak256(abi.encode(expected, blockhash(protocol.epochStartBlock(49) - 1), uint256(49)));
        assertEq(protocol.seed(49), s49, "epoch 49's own anchor is recent");
    }

    function test_settleAndReportMissAlsoRecordTheSeed() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        _commit(1, ids[0], _allOk()); // never revealed
        _rollPastReveal(1); // block 175, epoch 2, untouched so far
        bytes32 s2 = keccak256(abi.encode(protocol.seed(1), blockhash(159), uint256(2)));
        protocol.settle(1, t0);
        assertEq(protocol.seed(2), s2, "settle recorded seed 2");
        _rollToEpoch(3);
        bytes32 s3 = keccak256(abi.encode(s2, blockhash(vm.getBlockNumber() - 1), uint256(3)));
        protocol.reportMiss(1, ids[0], t1);
        assertEq(protocol.seed(3), s3, "reportMiss recorded seed 3");
    }

    // ================================================================================ sortition

    /// @dev Committees of `k` from now on (the fixture's are 16).
    function _committee(uint16 k) internal {
        vm.prank(address(timelock));
        protocol.setParams(_p(15, k, 3, 16));
    }

    function test_everyTargetGetsExactlyKDistinctListedLicenses() public {
        _committee(5);
        _rollToEpoch(1);
        assertEq(protocol.committee(1, t0).length, 0, "no seed yet: no committee");
        assertFalse(protocol.isAssigned(1, ids[0], t0), "no seed yet: no duty");
        _heartbeat(_first(12)); // licenses 13..16 are listed but not active
        uint256 duties;
        for (uint256 t; t < 3; ++t) {
            uint256[] memory c = protocol.committee(1, t);
            assertEq(c.length, 5, "exactly k");
            for (uint256 j; j < 5; ++j) {
                assertTrue(c[j] >= ids[0] && c[j] <= ids[15], "a listed license");
                for (uint256 m; m < j; ++m) {
                    assertTrue(c[m] != c[j], "distinct");
                }
            }
            for (uint256 i; i < 16; ++i) {
                bool seated;
                for (uint256 j; j < 5; ++j) {
                    if (c[j] == ids[i]) seated = true;
                }
                // the seat computed from the license's side (inverse shuffle) agrees with the committee
                assertEq(protocol.isAssigned(1, ids[i], t) ? 1 : 0, seated && i < 12 ? 1 : 0, "isAssigned");
                if (seated && i < 12) ++duties;
            }
        }
        assertGt(duties, 0, "some duty");
        assertFalse(protocol.isAssigned(1, ids[0], 3), "unknown target");
    }

    function test_everyoneSitsOnEveryCommitteeWhileTheListIsNoLongerThanK() public {
        _committee(16);
        _rollToEpoch(1);
        _heartbeat(_first(16));
        for (uint256 t; t < 3; ++t) {
            assertEq(protocol.committee(1, t).length, 16, "all 16");
            for (uint256 i; i < 16; ++i) {
                assertTrue(protocol.isAssigned(1, ids[i], t), "all assigned");
            }
        }
    }

    function test_theListChangesFromTheNextEpochAndTheOldOneStaysReadable() public {
        _committee(5);
        uint256 last = ids[15];
        _rollToEpoch(1);
        assertEq(registry.listedAt(1), 16, "16 listed in epoch 1");
        assertEq(registry.listedAt(0), 0, "none in epoch 0: delegated during it");
        // The owner takes license 1 back during epoch 1, and delegates it again during epoch 2.
        uint256[] memory one = _one(ids[0]);
        vm.prank(owner);
        registry.undelegate(one);
        (uint256 n, uint256 pos) = registry.positionAt(ids[0], 1);
        assertEq(n, 16, "epoch 1 keeps its list");
        assertEq(pos, 1, "and the license's position");
        (n, pos) = registry.positionAt(ids[0], 2);
        assertEq(n, 15, "15 from epoch 2");
        assertEq(pos, 0, "not listed");
        (, pos) = registry.positionAt(last, 2);
        assertEq(pos, 1, "the last license moves into the hole");
        assertEq(registry.licenseAt(0, 1), ids[0], "epoch 1 unchanged");
        assertEq(registry.licenseAt(0, 2), last, "epoch 2 swapped");
        _rollToEpoch(2);
        vm.prank(owner);
        registry.delegate(one, op);
        vm.prank(op);
        registry.approve(one);
        (n, pos) = registry.positionAt(ids[0], 3);
        assertEq(n, 16, "back from epoch 3");
        assertEq(pos, 16, "at the end");
        _rollToEpoch(3);
        vm.prank(owner);
        registry.undelegate(one);
        _rollToEpoch(4);
        assertEq(registry.listedAt(1), 16, "epoch 1's list: read in epoch 4 (three generations later)");
        assertEq(registry.listedAt(2), 15, "epoch 2");
        assertEq(registry.listedAt(3), 16, "epoch 3");
        assertEq(registry.listedAt(4), 15, "epoch 4");
        vm.prank(owner);
        registry.delegate(one, op);
        vm.prank(op);
        registry.approve(one);
        // the list's length word now holds epochs 2..5: epoch 1 is gone
        vm.expectRevert(abi.encodeWithSelector(Generations.HistoryLost.selector, 1));
        registry.listedAt(1);
    }

    // ================================================================================= heartbeat

    function test_heartbeatMarksTheOperatorsListedLicensesActive() public {
        _rollToEpoch(1);
        uint256[] memory lics = _first(4);
        vm.expectEmit();
        emit AuditProtocol.Heartbeat(1, op, 1); // op's one listed license
        _heartbeat(lics);
        assertEq(vault.activeCount(1), 4, "active count");
        assertTrue(vault.isActive(lics[3], 1), "active");
        assertFalse(vault.isActive(ids[4], 1), "its operator sent no heartbeat");
        assertTrue(vault.isPresent(_opIndex(op), 1), "op present");
    }

    function test_heartbeatRejectsACallerThatIsNotAnOperator() public {
        _rollToEpoch(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperator.selector, owner));
        vm.prank(owner);
        protocol.heartbeat();
    }

    function test_heartbeatRejectsASecondHeartbeatInTheSameEpoch() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        vm.expectRevert(abi.encodeWithSelector(RewardVault.AlreadyPresent.selector, opOf[ids[1]], 1));
        _heartbeat(_one(ids[1]));
        assertEq(vault.activeCount(1), 2, "counted once");
    }

    // ==================================================================================== commit

    function test_commitStoresOneRootPerOperator() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        vm.expectEmit();
        emit AuditProtocol.Committed(1, op, keccak256("r0"));
        _commitHash(1, ids[0], keccak256("r0"));
        _commitHash(1, ids[1], keccak256("r1"));
        assertEq(protocol.rootOf(op, 1), keccak256("r0"), "op's root");
        assertEq(protocol.rootOf(opOf[ids[1]], 1), keccak256("r1"), "the other operator's root");
        assertEq(protocol.rootOf(op, 2), bytes32(0), "the other parity's slot is empty");
        // A later commit in the same epoch replaces it.
        _commitHash(1, ids[0], keccak256("r0'"));
        assertEq(protocol.rootOf(op, 1), keccak256("r0'"), "replaced");
    }

    function test_commitRejectsAnotherEpoch() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.WrongEpoch.selector, 0, 1));
        vm.prank(op);
        protocol.commit(0, keccak256("r"));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.WrongEpoch.selector, 2, 1));
        vm.prank(op);
        protocol.commit(2, keccak256("r"));
    }

    function test_commitRejectsAZeroRoot() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidCommitment.selector));
        vm.prank(op);
        protocol.commit(1, bytes32(0));
    }

    function test_commitRejectsAnOperatorThatIsNotPresent() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotPresent.selector, opOf[ids[1]], 1));
        vm.prank(opOf[ids[1]]);
        protocol.commit(1, keccak256("r"));
    }

    function test_commitRejectsACallerThatIsNotAnOperator() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotPresent.selector, reporter, 1));
        vm.prank(reporter);
        protocol.commit(1, keccak256("r"));
    }


    // ==================================================================================== reveal

    /// @dev Epoch 1 (everyone seated): the first `n` licenses heartbeat and commit `v` on all three targets.
    function _epochOneCommitted(uint256 n, uint8 v) internal returns (uint256[] memory lics) {
        _rollToEpoch(1);
        lics = _first(n);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _commit(1, lics[i], _same(lics[i], v));
        }
    }

    function test_revealCountsVotesAndRecordsRevealers() public {
        uint256[] memory lics = _epochOneCommitted(2, FAULT);
        _rollToReveal(1);
        AuditProtocol.Vote[] memory votes = _same(lics[0], FAULT);
        assertEq(votes.length, 3, "three listed FAULT votes");
        vm.expectEmit();
        emit AuditProtocol.Revealed(1, op, votes);
        vm.prank(reporter); // anyone holding the opening may reveal
        protocol.reveal(1, op, _salt(lics[0]), votes);
        assertTrue(protocol.isRevealed(lics[0], 1), "marked revealed");
        assertTrue(protocol.hasRevealed(op, 1), "its operator revealed");
        assertFalse(protocol.isRevealed(lics[1], 1), "not yet");
        assertFalse(protocol.hasRevealed(opOf[lics[1]], 1), "not yet (operator)");
        (, uint8 f1,, uint8 n1,) = protocol.tally(1, t0);
        assertEq(f1, 1, "one FAULT vote so far");
        assertEq(n1, 1, "one reveal so far");
        _reveal(1, lics[1], _same(lics[1], FAULT));
        for (uint256 t; t < 3; ++t) {
            (uint8 ok, uint8 fault, uint8 unr, uint8 n, uint8 outcome) = protocol.tally(1, t);
            assertEq(ok, 0, "ok");
            assertEq(fault, 2, "fault votes");
            assertEq(unr, 0, "unreachable");
            assertEq(n, 2, "reveals");
            assertEq(outcome, 0, "not settled");
            (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, t);
            assertEq(who.length, 2, "two revealers");
            assertEq(who[0], lics[0], "first seat");
            assertEq(who[1], lics[1], "second seat");
            assertEq(vs[0], FAULT, "first verdict");
            assertEq(vs[1], FAULT, "second verdict");
            (bool listed, uint8 verdict, bytes32 root) = protocol.voteOf(1, t, lics[1]);
            assertTrue(listed, "listed");
            assertEq(verdict, FAULT, "listed verdict");
            assertEq(root, _root(lics[1], t, FAULT), "listed root");
            // The first FAULT seat's root is the target's evidence.
            assertEq(protocol.evidenceRoot(1, t, FAULT), _root(lics[0], t, FAULT), "evidence root");
            assertEq(protocol.evidenceRoot(1, t, UNREACHABLE), bytes32(0), "no unreachable evidence");
            assertEq(protocol.evidenceRoot(1, t, OK), bytes32(0), "OK has no evidence");
        }
    }

    function test_commitmentOfIsTheHashTheTestsCommit() public view {
        AuditProtocol.Vote[] memory votes = _same(ids[0], UNREACHABLE);
        bytes32 salt = keccak256("s");
        assertEq(
            protocol.commitmentOf(7, op, salt, votes),
            keccak256(abi.encode(uint256(7), op, salt, votes)),
            "keccak256(abi.encode(epoch, operator, salt, votes))"
        );
        assertEq(protocol.commitmentOf(7, op, salt, _allOk()), _commitmentOf(7, op, salt, _allOk()), "no votes");
    }

    function test_aRevealWithoutListedVotesVotesOkOnEverySeatOfTheOperator() public {
        uint256[] memory lics = _epochOneCommitted(2, OK); // both commit an empty list
        _rollToReveal(1);
        _reveal(1, lics[0], _allOk()); // lics[1]'s operator is present but never reveals
        for (uint256 t; t < 3; ++t) {
            (uint8 ok, uint8 fault, uint8 unr, uint8 n,) = protocol.tally(1, t);
            assertEq(ok, 1, "implicit OK");
            assertEq(fault + unr, 0, "nothing else");
            assertEq(n, 1, "one reveal: the silent operator's seat is not one");
            (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, t);
            assertEq(who.length, 1, "one revealer");
            assertEq(who[0], lics[0], "the revealed license");
            assertEq(vs[0], OK, "OK");
            (bool listed, uint8 verdict,) = protocol.voteOf(1, t, lics[0]);
            assertFalse(listed, "an implicit OK is not listed");
            assertEq(verdict, 0, "nothing stored");
        }
    }

    function test_revealRejectsBeforeTheWindowOpens() public {
        uint256[] memory lics = _epochOneCommitted(1, OK);
        vm.roll(159);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowClosed.selector, 1, 160, 175));
        _reveal(1, lics[0], _allOk());
    }

    function test_revealRejectsAfterTheWindowCloses() public {
        uint256[] memory lics = _epochOneCommitted(1, OK);
        vm.roll(175);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowClosed.selector, 1, 160, 175));
        _reveal(1, lics[0], _allOk());
        vm.roll(174);
        _reveal(1, lics[0], _allOk()); // last block of the window
        assertTrue(protocol.hasRevealed(op, 1), "revealed");
    }

    function test_revealRejectsAnOperatorThatDidNotCommit() public {
        _epochOneCommitted(1, OK);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, opOf[ids[1]]));
        _reveal(1, ids[1], _allOk());
        // Not an operator at all.
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, reporter));
        protocol.reveal(1, reporter, _salt(ids[0]), _allOk());
    }

    function test_revealRejectsACommitmentFromTwoEpochsBefore() public {
        // Epoch 1 commitment left unrevealed sits in the slot epoch 3 uses: it cannot open epoch 3.
        uint256[] memory lics = _epochOneCommitted(1, OK);
        _rollToEpoch(3);
        _heartbeat(lics);
        _rollToReveal(3);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 3, op));
        _reveal(3, lics[0], _allOk());
    }

    function test_aSecondRevealIsASilentNoOp() public {
        uint256[] memory lics = _epochOneCommitted(1, FAULT);
        _rollToReveal(1);
        _reveal(1, lics[0], _same(lics[0], FAULT));
        vm.recordLogs();
        vm.prank(reporter); // a copy of the reveal, by anyone: no revert, no event, nothing counted twice
        protocol.reveal(1, op, _salt(lics[0]), _same(lics[0], FAULT));
        assertEq(vm.getRecordedLogs().length, 0, "no event");
        (, uint8 fault,, uint8 n,) = protocol.tally(1, t1);
        assertEq(fault, 1, "counted once");
        assertEq(n, 1, "one reveal");
        // Another opening still has to match the root.
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, op));
        _reveal(1, lics[0], _allOk());
    }

    function test_revealRejectsUnsortedVotes() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        AuditProtocol.Vote[] memory dup = new AuditProtocol.Vote[](3);
        dup[0] = _vote(ids[0], t0, FAULT, bytes32(0));
        dup[1] = _vote(ids[0], t1, FAULT, bytes32(0));
        dup[2] = _vote(ids[0], t1, UNREACHABLE, bytes32(0)); // the same (target, license) twice
        AuditProtocol.Vote[] memory down = new AuditProtocol.Vote[](2);
        down[0] = _vote(ids[1], t2, FAULT, bytes32(0));
        down[1] = _vote(ids[1], t0, FAULT, bytes32(0));
        _commit(1, ids[0], dup);
        _commit(1, ids[1], down);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.VotesNotSorted.selector, 2));
        _reveal(1, ids[0], dup);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.VotesNotSorted.selector, 1));
        _reveal(1, ids[1], down);
        assertFalse(protocol.hasRevealed(op, 1), "nothing revealed");
    }

    function test_revealRejectsInvalidVerdicts() public {
        _rollToEpoch(1);
        _heartbeat(_first(3));
        AuditProtocol.Vote[] memory a = _ballot(ids[0], _v(FAULT, FAULT, FAULT));
        a[1].verdict = OK; // OK is implicit: never listed
        AuditProtocol.Vote[] memory b = _same(ids[1], UNREACHABLE);
        b[2].verdict = INCONCLUSIVE; // an outcome, not a verdict
        AuditProtocol.Vote[] memory c = _same(ids[2], NO_VOTE);
        c[0].verdict = 255;
        _commit(1, ids[0], a);
        _commit(1, ids[1], b);
        _commit(1, ids[2], c);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidVerdict.selector, 1, OK));
        _reveal(1, ids[0], a);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidVerdict.selector, 2, INCONCLUSIVE));
        _reveal(1, ids[1], b);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidVerdict.selector, 0, uint8(255)));
        _reveal(1, ids[2], c);
    }

    function test_revealRejectsAVoteOfALicenseNotListedUnderTheOperator() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        // op lists a vote of ids[1] (listed under another operator); that operator lists an unminted license.
        AuditProtocol.Vote[] memory foreign = _votes(_vote(ids[1], t0, FAULT, keccak256("r")));
        uint256 big = uint256(type(uint32).max) + 1;
        AuditProtocol.Vote[] memory unlisted = _votes(_vote(big, t0, FAULT, keccak256("r")));
        _commit(1, ids[0], foreign);
        _commit(1, ids[1], unlisted);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperatorsLicense.selector, 1, ids[1], op));
        _reveal(1, ids[0], foreign);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperatorsLicense.selector, 1, big, opOf[ids[1]]));
        _reveal(1, ids[1], unlisted);
        assertFalse(protocol.hasRevealed(op, 1), "nothing revealed");
        (, uint8 fault,,,) = protocol.tally(1, t0);
        assertEq(fault, 0, "nothing counted");
    }

    function test_aVoteOnATargetTheLicenseDoesNotSitOnIsNeverCounted() public {
        _committee(5);
        _rollToEpoch(2);
        _heartbeat(_first(8));
        (uint256 lic, uint256 t, bool found) = (0, 0, false);
        for (uint256 i; i < 8 && !found; ++i) {
            for (uint256 j; j < 3 && !found; ++j) {
                if (!protocol.isAssigned(2, ids[i], j)) (lic, t, found) = (ids[i], j, true);
            }
        }
        assertTrue(found, "some active license does not sit on some target");
        AuditProtocol.Vote[] memory votes = _votes(_vote(lic, t, FAULT, keccak256("stray")));
        _commit(2, lic, votes);
        _rollToReveal(2);
        _reveal(2, lic, votes); // no seat check at reveal
        (bool listed, uint8 verdict, bytes32 root) = protocol.voteOf(2, t, lic);
        assertTrue(listed, "stored");
        assertEq(verdict, FAULT, "as listed");
        assertEq(root, keccak256("stray"), "with its root");
        (uint8 ok, uint8 fault, uint8 unr, uint8 n,) = protocol.tally(2, t);
        assertEq(fault, 0, "never counted");
        (uint256[] memory who,) = protocol.revealers(2, t);
        for (uint256 i; i < who.length; ++i) {
            assertTrue(who[i] != lic, "not a revealer of the target");
        }
        assertEq(protocol.evidenceRoot(2, t, FAULT), bytes32(0), "not the target's evidence");
        _rollPastReveal(2);
        uint8 expected = protocol.outcomeOf(2, t);
        vm.recordLogs();
        assertEq(protocol.settle(2, t), expected, "settle decides what outcomeOf said");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            assertTrue(logs[i].topics[0] != AuditProtocol.ViolationFlagged.selector, "no flag");
            assertTrue(logs[i].topics[0] != RewardVault.Penalized.selector, "no penalty");
        }
        (uint8 ok2, uint8 fault2, uint8 unr2, uint8 n2,) = protocol.tally(2, t);
        assertEq(ok2 + fault2 + unr2 + n2, ok + fault + unr + n, "settle reads the same seats");
    }

    function test_aVoteOnATargetDisabledBeforeTheEpochIsNeverCounted() public {
        vm.prank(address(timelock));
        targets.setTargetEnabled(t1, false);
        _rollToEpoch(1);
        _heartbeat(_first(1));
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[0], t1, FAULT, keccak256("r")));
        _commit(1, ids[0], votes);
        _rollToReveal(1);
        _reveal(1, ids[0], votes);
        assertFalse(protocol.isAssigned(1, ids[0], t1), "disabled target has no duty");
        (uint8 ok, uint8 fault, uint8 unr, uint8 n,) = protocol.tally(1, t1);
        assertEq(uint256(ok) + fault + unr + n, 0, "no seat has a duty");
        (uint256[] memory who,) = protocol.revealers(1, t1);
        assertEq(who.length, 0, "no revealer");
        (ok,,, n,) = protocol.tally(1, t0);
        assertEq(ok, 1, "the enabled targets get the implicit OK");
        _rollPastReveal(1);
        assertEq(protocol.outcomeOf(1, t1), INCONCLUSIVE, "nobody voted");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[0], t1));
        protocol.reportMiss(1, ids[0], t1);
    }

    function test_targetDisabledDuringAnEpochStillCountsInThatEpoch() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.prank(address(timelock));
        targets.setTargetEnabled(t1, false);
        assertTrue(protocol.isAssigned(1, ids[0], t1), "epoch 1 keeps its duties");
        _commit(1, ids[0], _allOk());
        _rollToEpoch(2);
        _heartbeat(_first(1));
        assertFalse(protocol.isAssigned(2, ids[0], t1), "disabled from epoch 2");
        _rollToReveal(1);
        _reveal(1, ids[0], _allOk());
        (uint8 ok,,,,) = protocol.tally(1, t1);
        assertEq(ok, 1, "vote counted");
    }

    function test_aVoteOnAnUnknownTargetIsNeverCounted() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[0], 3, FAULT, keccak256("r")));
        _commit(1, ids[0], votes);
        _rollToReveal(1);
        _reveal(1, ids[0], votes);
        (uint8 ok, uint8 fault, uint8 unr, uint8 n,) = protocol.tally(1, 3);
        assertEq(uint256(ok) + fault + unr + n, 0, "an unknown target has no seat with a duty");
        (ok,,,,) = protocol.tally(1, t2);
        assertEq(ok, 1, "the known targets get the implicit OK");
        _rollPastReveal(1);
        assertEq(protocol.outcomeOf(1, 3), 0, "no outcome");
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.UnknownTarget.selector, 3));
        protocol.settle(1, 3);
    }

    function test_tallyRejectsEpochAndTargetIdsBeyondTheKey() public {
        uint256 bigEpoch = uint256(type(uint64).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, bigEpoch));
        protocol.tally(bigEpoch, 0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, bigEpoch));
        protocol.outcomeOf(bigEpoch, 0);
        uint256 bigTarget = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, bigTarget));
        protocol.tally(0, bigTarget);
    }

    function test_sixteenRevealersAreCountedInSeatOrder() public {
        uint256[] memory lics = _first(16);
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < 16; ++i) {
            _commit(1, lics[i], _allOk());
        }
        _rollToReveal(1);
        for (uint256 i = 16; i > 0; --i) {
            _reveal(1, lics[i - 1], _allOk()); // last seat first
        }
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t0);
        assertEq(ok, 16, "16 votes counted");
        assertEq(n, 16, "16 revealers");
        uint256[] memory c = protocol.committee(1, t0);
        (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, t0);
        assertEq(who.length, 16, "all 16");
        for (uint256 i; i < 16; ++i) {
            assertEq(who[i], c[i], "seat order, not reveal order");
            assertEq(who[i], lics[i], "a list no longer than k: list order");
            assertEq(vs[i], OK, "verdict");
        }
        _rollPastReveal(1);
        assertEq(protocol.settle(1, t0), OK, "OK");
    }

    function test_aCommitteeLargerThanTheTallyIsRefused() public {
        vm.prank(address(timelock));
        vm.expectRevert(AuditProtocol.InvalidParams.selector);
        protocol.setParams(_p(15, 12, 3, 10));
    }

    function test_evidenceRootIsTheFirstSeatsRootInCommitteeOrder() public {
        // Committees of 5 drawn from 16: pick a target whose seat 1 is not the lowest license of seats 1..4, so
        // that neither "first revealed" (reveals go by license id below) nor "lowest license" names its root.
        _committee(5);
        _rollToEpoch(2);
        _heartbeat(_first(16));
        uint256[] memory c;
        uint256 t;
        bool found;
        for (; t < 3 && !found; ++t) {
            c = protocol.committee(2, t);
            for (uint256 j = 2; j < 5; ++j) {
                if (c[j] < c[1]) found = true;
            }
        }
        --t;
        assertTrue(found, "a committee whose seat order is not license order");
        // Seat 0 votes OK (implicitly), seats 1..4 FAULT with their own roots.
        for (uint256 j; j < 5; ++j) {
            _commit(2, c[j], j == 0 ? _allOk() : _votes(_vote(c[j], t, FAULT, _root(c[j], t, FAULT))));
        }
        _rollToReveal(2);
        for (uint256 i; i < 16; ++i) {
            for (uint256 j; j < 5; ++j) {
                if (c[j] == ids[i]) {
                    _reveal(2, c[j], j == 0 ? _allOk() : _votes(_vote(c[j], t, FAULT, _root(c[j], t, FAULT))));
                }
            }
        }
        assertEq(protocol.evidenceRoot(2, t, FAULT), _root(c[1], t, FAULT), "seat 1's root");
        _rollPastReveal(2);
        assertEq(protocol.outcomeOf(2, t), FAULT, "4 FAULT of 5");
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(2, t, FAULT, 1, 4, 0);
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(2, t, FAULT, _root(c[1], t, FAULT));
        assertEq(protocol.settle(2, t), FAULT, "FAULT");
    }

    // ==================================================================================== settle

    /// @dev Epoch 1: licenses 1..n reveal verdicts[i] on target t0 only; credit booked at the epoch-2 heartbeat.
    function _votesOnT0(uint8[] memory verdicts) internal returns (uint256[] memory lics) {
        return _votesOn(t0, verdicts);
    }

    function _v4(uint8 a, uint8 b, uint8 c, uint8 d) internal pure returns (uint8[] memory v) {
        v = new uint8[](4);
        (v[0], v[1], v[2], v[3]) = (a, b, c, d);
    }

    /// @dev Per-license credit of epoch 1 for `n` active licenses: epoch 0's carried emission plus epoch 1's.
    function _perLicense(uint256 n) internal pure returns (uint256) {
        return 2 * EMISSION / n;
    }

    function _net(uint256 amount) internal pure returns (uint256) {
        return amount - amount * 1000 / 10_000;
    }

    function test_settleTwoThirdsOkPenalizesTheFaultVote() public {
        uint256[] memory lics = _votesOnT0(_v(1, 2, 1));
        uint256 per = _perLicense(3);
        assertEq(protocol.outcomeOf(1, t0), OK, "outcomeOf before settling");
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, t0, 1, 2, 1, 0);
        vm.expectEmit();
        emit RewardVault.Penalized(lics[1], 1, 2, 2 * per, _net(per));
        assertEq(protocol.settle(1, t0), 1, "OK");
        (,,,, uint8 outcome) = protocol.tally(1, t0);
        assertEq(outcome, 1, "recorded");
        assertEq(_balance(lics[0]), int256(_net(per)), "agreeing license untouched");
        assertEq(_balance(lics[1]), int256(_net(per)) - int256(2 * per), "disagree penalty");
    }

    function _v6(uint8 a, uint8 b, uint8 c, uint8 d, uint8 e, uint8 f) internal pure returns (uint8[] memory v) {
        v = new uint8[](6);
        (v[0], v[1], v[2], v[3], v[4], v[5]) = (a, b, c, d, e, f);
    }

    function test_settleFaultFlagsTheViolationWithAnAgreeingRoot() public {
        // 4 FAULT of 6 is 2/3; the UNREACHABLE vote does not disagree with FAULT, the OK vote does.
        uint256[] memory lics = _votesOnT0(_v6(3, 1, 2, 2, 2, 2));
        uint256 per = _perLicense(6);
        bytes32 faultRoot = _root(lics[2], t0, FAULT); // the first FAULT seat (committee = list order here)
        assertEq(protocol.outcomeOf(1, t0), FAULT, "outcomeOf before settling");
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, t0, 2, 1, 4, 1);
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, t0, 2, faultRoot);
        vm.expectEmit();
        emit RewardVault.Penalized(lics[1], 1, 2, 2 * per, _net(per));
        assertEq(protocol.settle(1, t0), 2, "FAULT");
        assertEq(_balance(lics[0]), int256(_net(per)), "UNREACHABLE vote is not a disagreement");
        assertEq(_balance(lics[1]), int256(_net(per)) - int256(2 * per), "OK vote disagrees");
        for (uint256 i = 2; i < 6; ++i) {
            assertEq(_balance(lics[i]), int256(_net(per)), "FAULT voters untouched");
        }
    }

    function test_settleUnreachableFlagsTheUnreachableRoot() public {
        uint256[] memory lics = _votesOnT0(_v(2, 3, 3));
        uint256 per = _perLicense(3);
        bytes32 root = _root(lics[1], t0, UNREACHABLE);
        assertEq(protocol.outcomeOf(1, t0), UNREACHABLE, "outcomeOf before settling");
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, t0, 3, root);
        assertEq(protocol.settle(1, t0), 3, "UNREACHABLE");
        assertEq(_balance(lics[0]), int256(_net(per)), "FAULT is not a disagreement with UNREACHABLE");
    }

    function test_settleEvenSplitIsInconclusiveWithoutPenalties() public {
        // 2 OK against 2 not-OK (FAULT + UNREACHABLE): no supermajority and no strict majority either (M4).
        uint256[] memory lics = _votesOnT0(_v4(1, 1, 2, 3));
        uint256 per = _perLicense(4);
        assertEq(protocol.outcomeOf(1, t0), INCONCLUSIVE, "outcomeOf before settling");
        vm.recordLogs();
        assertEq(protocol.settle(1, t0), 4, "INCONCLUSIVE");
        _assertNoPenaltyLogged();
        for (uint256 i; i < 4; ++i) {
            assertEq(_balance(lics[i]), int256(_net(per)), "no penalty");
        }
    }

    function test_settleBelowMinRevealsIsInconclusive() public {
        _votesOnT0(_v4(1, 1, 1, 1)); // 4 licenses active, only t0 revealed (NO_VOTE on t1, t2)
        vm.prank(address(timelock));
        protocol.setParams(_p(15, 5, 5, 16));
        assertEq(protocol.outcomeOf(1, t0), INCONCLUSIVE, "outcomeOf: 4 reveals < minReveals 5");
        assertEq(protocol.settle(1, t0), 4, "4 reveals < minReveals 5");
        assertEq(protocol.settle(1, t1), 4, "no reveal at all");
    }

    function test_settleExactlyMinRevealsDecides() public {
        _votesOnT0(_v(1, 1, 1));
        (,,, uint8 n,) = protocol.tally(1, t0);
        assertEq(n, 3, "three reveals");
        (,,, n,) = protocol.tally(1, t1);
        assertEq(n, 0, "NO_VOTE everywhere else");
        assertEq(protocol.settle(1, t0), 1, "3 reveals, all OK");
    }

    function test_settleUsesTheRevealedTrapOutcomeAndTheTrapPenalty() public {
        bytes32 salt = keccak256("trap salt"); // sealed in the fixture, before t0's registration
        uint256[] memory lics = _votesOnT0(_v(2, 2, 1)); // the majority says FAULT, the trap is OK
        uint256 per = _perLicense(3);
        assertEq(protocol.outcomeOf(1, t0), FAULT, "the tally, while the trap is sealed");
        vm.prank(keeper);
        targets.revealTrap(t0, 1, salt);
        assertEq(protocol.outcomeOf(1, t0), OK, "the trap's truth once revealed");
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, t0, 1, 1, 2, 0);
        assertEq(protocol.settle(1, t0), 1, "trap truth");
        assertEq(_balance(lics[0]), int256(_net(per)) - int256(10 * per), "trap penalty");
        assertEq(_balance(lics[1]), int256(_net(per)) - int256(10 * per), "trap penalty");
        assertEq(_balance(lics[2]), int256(_net(per)), "right about the trap");
    }

    function test_outcomeOfIsZeroUntilTheRevealWindowEndsThenWhatSettleDecides() public {
        // t0: 2 FAULT, 1 OK -> FAULT (later overruled by its trap, OK); t1: nobody audited -> INCONCLUSIVE;
        // t2: 3 implicit OK -> OK.
        uint256[] memory lics = _first(3);
        AuditProtocol.Vote[][] memory b = new AuditProtocol.Vote[][](3);
        b[0] = _ballot(lics[0], _v(FAULT, NO_VOTE, OK));
        b[1] = _ballot(lics[1], _v(FAULT, NO_VOTE, OK));
        b[2] = _ballot(lics[2], _v(OK, NO_VOTE, OK));
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _commit(1, lics[i], b[i]);
        }
        _rollToReveal(1);
        for (uint256 i; i < 3; ++i) {
            _reveal(1, lics[i], b[i]);
        }
        (, uint256 end) = protocol.revealWindow(1);
        vm.roll(end - 1);
        for (uint256 t; t < 3; ++t) {
            assertEq(protocol.outcomeOf(1, t), 0, "0 while the reveal window is open");
        }
        vm.roll(end);
        assertEq(protocol.outcomeOf(1, t0), FAULT, "t0: the tally");
        assertEq(protocol.outcomeOf(1, t1), INCONCLUSIVE, "t1: no reveal");
        assertEq(protocol.outcomeOf(1, t2), OK, "t2: all OK");
        vm.prank(keeper);
        targets.revealTrap(t0, 1, keccak256("trap salt"));
        assertEq(protocol.outcomeOf(1, t0), OK, "t0: the trap");
        uint8[3] memory expected = [OK, INCONCLUSIVE, OK];
        for (uint256 t; t < 3; ++t) {
            assertEq(protocol.settle(1, t), expected[t], "settle decides what outcomeOf said");
            assertEq(protocol.outcomeOf(1, t), expected[t], "the settled outcome");
        }
    }

    function test_settleOfAnAllOkTargetChangesNothingButMayBeCalled() public {
        uint256[] memory lics = _first(3);
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _commit(1, lics[i], _allOk());
        }
        _rollToEpoch(2);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _reveal(1, lics[i], _allOk());
        }
        _rollPastReveal(1);
        assertEq(protocol.outcomeOf(1, t0), OK, "OK without settling");
        (,,,, uint8 settled) = protocol.tally(1, t0);
        assertEq(settled, 0, "not settled");
        int256[] memory before = new int256[](3);
        for (uint256 i; i < 3; ++i) {
            before[i] = _balance(lics[i]);
        }
        uint256 pool = vault.pool();
        vm.recordLogs();
        assertEq(protocol.settle(1, t0), OK, "OK");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one event");
        assertEq(logs[0].topics[0], AuditProtocol.TargetSettled.selector, "TargetSettled");
        assertEq(keccak256(logs[0].data), keccak256(abi.encode(OK, uint8(3), uint8(0), uint8(0))), "OK, 3 OK votes");
        for (uint256 i; i < 3; ++i) {
            assertEq(_balance(lics[i]), before[i], "no balance changes");
        }
        assertEq(vault.pool(), pool, "no forfeit");
        assertEq(protocol.outcomeOf(1, t0), OK, "the same outcome");
        (,,,, settled) = protocol.tally(1, t0);
        assertEq(settled, OK, "recorded");
    }

    function test_settleRejectsWhileTheRevealWindowIsOpen() public {
        _epochOneCommitted(1, OK);
        vm.roll(174);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowOpen.selector, 1, 175));
        protocol.settle(1, t0);
        _rollToEpoch(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowOpen.selector, 1, 175));
        protocol.settle(1, t0);
    }

    function test_settleRejectsAnUnknownTarget() public {
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.UnknownTarget.selector, 3));
        protocol.settle(1, 3);
    }

    function test_settleRejectsASecondSettlement() public {
        _votesOnT0(_v(1, 1, 1));
        protocol.settle(1, t0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AlreadySettled.selector, 1, t0));
        protocol.settle(1, t0);
    }

    function _assertNoPenaltyLogged() internal {
        bytes32 sig = RewardVault.Penalized.selector;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            assertTrue(logs[i].topics.length == 0 || logs[i].topics[0] != sig, "no Penalized event");
        }
    }

    // ================================================================================ reportMiss

    function test_reportMissPenalizesAndPaysTheReporter() public {
        // Licenses 1..3 active and committed in epoch 1; license 3's operator never reveals.
        _rollToEpoch(1);
        uint256[] memory lics = _first(3);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _commit(1, lics[i], _allOk());
        }
        _rollToEpoch(2);
        _heartbeat(lics);
        _reveal(1, lics[0], _allOk());
        _reveal(1, lics[1], _allOk());
        _rollPastReveal(1);
        uint256 per = _perLicense(3);
        uint256 freed = _net(per); // its whole balance, less than 3 epochs of credit
        uint256 bounty = freed * 1000 / 10_000;
        vm.expectEmit();
        emit AuditProtocol.MissReported(1, lics[2], t1, reporter);
        vm.expectEmit();
        emit RewardVault.Penalized(lics[2], 1, 1, 3 * per, freed);
        vm.prank(reporter);
        protocol.reportMiss(1, lics[2], t1); // t1 was never settled: a miss does not need it
        assertTrue(protocol.missReported(keccak256(abi.encode(uint256(1), lics[2], t1))), "recorded");
        assertEq(_balance(lics[2]), int256(_net(per)) - int256(3 * per), "miss penalty");
        assertEq(vault.bountyOf(reporter), bounty, "bounty");
        uint256 before = token.balanceOf(reporter);
        vm.prank(reporter);
        assertEq(vault.claimBounty(), bounty, "claimed");
        assertEq(token.balanceOf(reporter) - before, bounty, "paid");
        // Another target of the same license is a separate miss.
        vm.prank(reporter);
        protocol.reportMiss(1, lics[2], t2);
        assertEq(_balance(lics[2]), int256(_net(per)) - int256(6 * per), "second miss");
        assertEq(vault.bountyOf(reporter), 0, "nothing left to forfeit, no bounty");
    }

    function test_noVoteMakesTheSeatMissableWhileAnImplicitOkIsNot() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[0], t1, NO_VOTE, bytes32(0)));
        _commit(1, ids[0], votes);
        _rollToReveal(1);
        _reveal(1, ids[0], votes);
        assertTrue(protocol.isRevealed(ids[0], 1), "its operator revealed");
        (bool listed, uint8 verdict,) = protocol.voteOf(1, t1, ids[0]);
        assertTrue(listed, "NO_VOTE is listed");
        assertEq(verdict, NO_VOTE, "as NO_VOTE");
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t1);
        assertEq(ok, 0, "no OK on t1");
        assertEq(n, 0, "the seat is not revealed");
        (uint256[] memory who,) = protocol.revealers(1, t1);
        assertEq(who.length, 0, "no revealer on t1");
        (ok,,, n,) = protocol.tally(1, t0);
        assertEq(ok, 1, "t0: implicit OK");
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[0], t0));
        protocol.reportMiss(1, ids[0], t0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[0], t2));
        protocol.reportMiss(1, ids[0], t2);
        vm.expectEmit();
        emit AuditProtocol.MissReported(1, ids[0], t1, reporter);
        vm.prank(reporter);
        protocol.reportMiss(1, ids[0], t1);
    }

    function test_reportMissRejectsWhileTheRevealWindowIsOpen() public {
        _epochOneCommitted(1, OK);
        vm.roll(174);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowOpen.selector, 1, 175));
        protocol.reportMiss(1, ids[0], t0);
    }

    function test_reportMissRejectsASecondReport() public {
        _epochOneCommitted(1, OK);
        _rollPastReveal(1);
        protocol.reportMiss(1, ids[0], t0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.MissAlreadyReported.selector, 1, ids[0], t0));
        protocol.reportMiss(1, ids[0], t0);
    }

    function test_reportMissRejectsAnInactiveLicense() public {
        _epochOneCommitted(1, OK);
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[1], t0));
        protocol.reportMiss(1, ids[1], t0);
    }

    function test_reportMissRejectsADisabledTarget() public {
        vm.prank(address(timelock));
        targets.setTargetEnabled(t2, false);
        _epochOneCommitted(1, OK);
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[0], t2));
        protocol.reportMiss(1, ids[0], t2);
    }

    function test_reportMissRejectsATargetNotDrawn() public {
        _committee(5);
        _rollToEpoch(2);
        _heartbeat(_first(8));
        (uint256 lic, uint256 t, bool found) = (0, 0, false);
        for (uint256 i; i < 8 && !found; ++i) {
            for (uint256 j; j < 3 && !found; ++j) {
                uint256[] memory c = protocol.committee(2, j);
                bool seated;
                for (uint256 m; m < c.length; ++m) {
                    if (c[m] == ids[i]) seated = true;
                }
                if (!seated) (lic, t, found) = (ids[i], j, true);
            }
        }
        assertTrue(found, "some pair is not drawn");
        _rollPastReveal(2);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 2, lic, t));
        protocol.reportMiss(2, lic, t);
    }

    function test_reportMissRejectsALicenseThatRevealed() public {
        uint256[] memory lics = _epochOneCommitted(1, FAULT);
        _rollToReveal(1);
        _reveal(1, lics[0], _same(lics[0], FAULT));
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, lics[0], t1));
        protocol.reportMiss(1, lics[0], t1);
    }
}


/// @notice Fuzzed exact committees: both directions of the shuffle (the committee, each license's seat) agree.
contract AuditProtocolSortitionFuzzTest is AuditFixture {
    uint256 internal constant N = 24;
    uint256 internal disabledTarget;

    function setUp() public {
        _fixture(N);
        disabledTarget = _addTarget(4);
        vm.roll(101);
        vm.prank(address(timelock));
        targets.setTargetEnabled(disabledTarget, false);
    }

    function _p(uint32 revealBlocks, uint16 committeeSize, uint16 minReveals, uint16 maxCommittee)
        internal
        pure
        returns (AuditProtocol.Params memory)
    {
        return AuditProtocol.Params(revealBlocks, committeeSize, minReveals, maxCommittee);
    }

    function testFuzz_committeesAreExactAndAgreeWithIsAssigned(
        uint256 k,
        uint256 activeMask,
        bytes32 h2,
        uint256 probeLicense,
        uint256 probeTarget
    ) public {
        k = bound(k, 1, 16);
        vm.prank(address(timelock));
        protocol.setParams(_p(15, uint16(k), 3, 16));

        // Epoch 2: a random subset active; the anchor block's hash is the fuzzer's.
        _rollToEpoch(2);
        vmx.setBlockhash(vm.getBlockNumber() - 1, h2);
        bool[] memory active = new bool[](N);
        uint256 count;
        for (uint256 i; i < N; ++i) {
            active[i] = (activeMask >> i) & 1 == 1;
            if (active[i]) ++count;
        }
        uint256[] memory act = new uint256[](count);
        count = 0;
        for (uint256 i; i < N; ++i) {
            if (active[i]) act[count++] = ids[i];
        }
        if (count > 0) _heartbeat(act);
        else protocol.poke();
        assertEq(protocol.seed(2), keccak256(abi.encode(GENESIS_SEED, h2, uint256(2))), "seed(2)");

        uint256 size = k < N ? k : N;
        uint256[] memory seats = new uint256[](N);
        for (uint256 t; t <= disabledTarget; ++t) {
            uint256[] memory c = protocol.committee(2, t);
            assertEq(c.length, size, "exactly min(k, listed)");
            for (uint256 j; j < c.length; ++j) {
                assertTrue(c[j] >= ids[0] && c[j] <= ids[N - 1], "listed");
                seats[c[j] - ids[0]] += 1;
                for (uint256 m; m < j; ++m) {
                    assertTrue(c[m] != c[j], "distinct");
                }
            }
            for (uint256 i; i < N; ++i) {
                bool seated;
                for (uint256 j; j < c.length; ++j) {
                    if (c[j] == ids[i]) seated = true;
                }
                bool expected = active[i] && t != disabledTarget && seated;
                assertEq(protocol.isAssigned(2, ids[i], t) ? 1 : 0, expected ? 1 : 0, "isAssigned");
            }
        }
        // seats spread evenly: every license sits on floor or ceil(targets * k / N) committees
        uint256 total = (disabledTarget + 1) * size;
        for (uint256 i; i < N; ++i) {
            assertTrue(seats[i] * N + (N - 1) >= total && seats[i] * N <= total + (N - 1), "even spread");
        }
        // Any other (license, target) pair: unlisted licenses and unknown targets have no duty.
        probeLicense = bound(probeLicense, ids[N - 1] + 1, type(uint32).max);
        probeTarget = bound(probeTarget, disabledTarget + 1, 64);
        assertFalse(protocol.isAssigned(2, probeLicense, 0), "unlisted license");
        assertFalse(protocol.isAssigned(2, ids[0], probeTarget), "unknown target");
    }
}

/// @notice One operator with three licenses (issue 16): one commitment and one reveal open the votes of all its
///         licenses; a vote of a license listed under another operator, unsorted votes, and openings that differ
///         from the committed one in any field are refused; a second reveal is a no-op.
contract AuditProtocolOperatorTest is Deployed {
    address internal op = makeAddr("op");
    address internal op2 = makeAddr("op2");
    address internal op3 = makeAddr("op3");
    address internal owner = makeAddr("owner");
    address internal reporter = makeAddr("reporter");
    uint256[] internal ids;
    uint256 internal foreign; // op2's license
    uint256 internal ta;
    uint256 internal tb;

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, 3);
        foreign = _operatorWithLicenses(op2, 0, owner, 1)[0];
        _operatorWithLicenses(op3, 0, owner, 1);
        ta = _addTarget(1);
        tb = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16)); // everyone sits on every committee
    }

    function _heartbeats() internal {
        vm.prank(op);
        protocol.heartbeat();
        vm.prank(op2);
        protocol.heartbeat();
        vm.prank(op3);
        protocol.heartbeat();
    }

    function _reveal(uint256 e, address operator, bytes32 salt, AuditProtocol.Vote[] memory votes) internal {
        protocol.reveal(e, operator, salt, votes);
    }

    function test_oneRevealOpensTheVotesOfEveryLicenseOfTheOperator() public {
        _rollToEpoch(1);
        _heartbeats();
        AuditProtocol.Vote[] memory votes = new AuditProtocol.Vote[](3);
        votes[0] = _vote(ids[1], ta, 2, keccak256("fault"));
        votes[1] = _vote(ids[2], ta, 0, bytes32(0));
        votes[2] = _vote(ids[0], tb, 3, keccak256("unreachable"));
        bytes32 root = _commitVotes(op, 1, "salt", votes);
        assertEq(protocol.rootOf(op, 1), root, "one root for the operator");
        _rollToReveal(1);
        vm.expectEmit();
        emit AuditProtocol.Revealed(1, op, votes);
        _reveal(1, op, "salt", votes);
        for (uint256 i; i < 3; ++i) {
            assertTrue(protocol.isRevealed(ids[i], 1), "every license of the operator");
        }
        assertFalse(protocol.isRevealed(foreign, 1), "another operator's license");
        assertFalse(protocol.hasRevealed(op2, 1), "another operator");
        // ta: ids[0] OK (implicit), ids[1] FAULT, ids[2] NO_VOTE; op2's and op3's seats did not reveal.
        (uint8 ok, uint8 fault, uint8 unr, uint8 n,) = protocol.tally(1, ta);
        assertEq(ok, 1, "ta: one OK");
        assertEq(fault, 1, "ta: one FAULT");
        assertEq(unr, 0, "ta: no UNREACHABLE");
        assertEq(n, 2, "ta: two reveals");
        (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, ta);
        assertEq(who.length, 2, "ta: two revealers");
        assertEq(who[0], ids[0], "seat of ids[0]");
        assertEq(vs[0], 1, "OK");
        assertEq(who[1], ids[1], "seat of ids[1]");
        assertEq(vs[1], 2, "FAULT");
        assertEq(protocol.evidenceRoot(1, ta, 2), keccak256("fault"), "ta: evidence");
        // tb: ids[0] UNREACHABLE, ids[1] and ids[2] OK (implicit).
        (ok, fault, unr, n,) = protocol.tally(1, tb);
        assertEq(ok, 2, "tb: two OK");
        assertEq(unr, 1, "tb: one UNREACHABLE");
        assertEq(n, 3, "tb: three reveals");
        assertEq(protocol.evidenceRoot(1, tb, 3), keccak256("unreachable"), "tb: evidence");
        (bool listed,,) = protocol.voteOf(1, tb, ids[1]);
        assertFalse(listed, "an implicit OK is not stored");
        // op2 present, not revealed: its seat is missable; ids[2]'s NO_VOTE too; ids[0]'s implicit OK is not.
        _rollPastReveal(1);
        protocol.reportMiss(1, foreign, ta);
        protocol.reportMiss(1, ids[2], ta);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[0], ta));
        protocol.reportMiss(1, ids[0], ta);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, ids[2], tb));
        protocol.reportMiss(1, ids[2], tb);
    }

    function test_aLicenseOfAnOperatorWithoutAHeartbeatHasNoSeat() public {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat(); // op2 and op3 stay away
        _commitVotes(op, 1, "salt", _allOk());
        _rollToReveal(1);
        _reveal(1, op, "salt", _allOk());
        (uint8 ok,,, uint8 n,) = protocol.tally(1, ta);
        assertEq(ok, 3, "op's three licenses");
        assertEq(n, 3, "op2's seat has no duty");
        assertEq(protocol.committee(1, ta).length, 5, "the committee still lists all five");
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, foreign, ta));
        protocol.reportMiss(1, foreign, ta);
    }

    function test_votesOfOneTargetAreOrderedByLicense() public {
        AuditProtocol.Vote[] memory down = new AuditProtocol.Vote[](2);
        down[0] = _vote(ids[2], ta, 2, bytes32(0));
        down[1] = _vote(ids[1], ta, 2, bytes32(0));
        AuditProtocol.Vote[] memory twice = new AuditProtocol.Vote[](3);
        twice[0] = _vote(ids[0], ta, 2, bytes32(0));
        twice[1] = _vote(ids[1], ta, 2, bytes32(0));
        twice[2] = _vote(ids[1], ta, 3, bytes32(0));
        AuditProtocol.Vote[] memory sorted = new AuditProtocol.Vote[](3);
        sorted[0] = _vote(ids[2], ta, 2, bytes32(0)); // target first: a higher license on a lower target
        sorted[1] = _vote(ids[0], tb, 2, bytes32(0));
        sorted[2] = _vote(ids[1], tb, 3, bytes32(0));
        // Each opening needs its own commitment (the root is checked first): epochs 1, 2 and 3.
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        _commitVotes(op, 1, "salt", down);
        _rollToReveal(1); // epoch 2
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.VotesNotSorted.selector, 1));
        _reveal(1, op, "salt", down);
        vm.prank(op);
        protocol.heartbeat();
        _commitVotes(op, 2, "salt", twice);
        _rollToReveal(2); // epoch 3
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.VotesNotSorted.selector, 2));
        _reveal(2, op, "salt", twice);
        vm.prank(op);
        protocol.heartbeat();
        _commitVotes(op, 3, "salt", sorted);
        _rollToReveal(3);
        _reveal(3, op, "salt", sorted);
        assertTrue(protocol.hasRevealed(op, 3), "sorted by (target, license)");
        assertFalse(protocol.hasRevealed(op, 1), "epoch 1 refused");
        assertFalse(protocol.hasRevealed(op, 2), "epoch 2 refused");
    }

    function test_aVoteOfAnotherOperatorsLicenseReverts() public {
        _rollToEpoch(1);
        _heartbeats();
        AuditProtocol.Vote[] memory votes = new AuditProtocol.Vote[](2);
        votes[0] = _vote(ids[0], ta, 2, keccak256("r"));
        votes[1] = _vote(foreign, ta, 2, keccak256("r")); // listed under op2
        _commitVotes(op, 1, "salt", votes);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperatorsLicense.selector, 1, foreign, op));
        _reveal(1, op, "salt", votes);
        assertFalse(protocol.hasRevealed(op, 1), "not revealed");
        (bool listed,,) = protocol.voteOf(1, ta, ids[0]);
        assertFalse(listed, "nothing stored");
    }

    function test_aLicenseMovedToAnotherOperatorVotesUnderTheOneItWasListedUnderInTheEpoch() public {
        // ids[2] leaves op during epoch 1 and is listed under op2 from epoch 3 (delegated and approved in 2).
        _rollToEpoch(1);
        _heartbeats();
        vm.prank(owner);
        registry.undelegate(_one(ids[2]));
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[2], ta, 2, keccak256("r")));
        _commitVotes(op, 1, "salt", votes); // still listed under op in epoch 1
        _rollToEpoch(2);
        vm.prank(owner);
        registry.delegate(_one(ids[2]), op2);
        vm.prank(op2);
        registry.approve(_one(ids[2]));
        _reveal(1, op, "salt", votes);
        (, uint8 fault,,,) = protocol.tally(1, ta);
        assertEq(fault, 1, "counted in epoch 1 under op");
        _rollToEpoch(3);
        _heartbeats();
        _commitVotes(op, 3, "salt", votes);
        _rollToReveal(3);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotOperatorsLicense.selector, 3, ids[2], op));
        _reveal(3, op, "salt", votes);
    }

    function test_aSecondRevealIsANoOpWhoeverSendsIt() public {
        _rollToEpoch(1);
        _heartbeats();
        AuditProtocol.Vote[] memory votes = _votes(_vote(ids[1], ta, 2, keccak256("r")));
        _commitVotes(op, 1, "salt", votes);
        _rollToReveal(1);
        vm.prank(op);
        _reveal(1, op, "salt", votes);
        vm.recordLogs();
        vm.prank(reporter);
        protocol.reveal(1, op, "salt", votes);
        _reveal(1, op, "salt", votes);
        assertEq(vm.getRecordedLogs().length, 0, "no event");
        (uint8 ok, uint8 fault,, uint8 n,) = protocol.tally(1, ta);
        assertEq(ok, 2, "two OK");
        assertEq(fault, 1, "one FAULT");
        assertEq(n, 3, "three reveals, once each");
    }

    function _copy(AuditProtocol.Vote[] memory votes) internal pure returns (AuditProtocol.Vote[] memory c) {
        c = new AuditProtocol.Vote[](votes.length);
        for (uint256 i; i < votes.length; ++i) {
            AuditProtocol.Vote memory v = votes[i];
            c[i] = AuditProtocol.Vote(v.license, v.targetId, v.verdict, v.evidenceRoot);
        }
    }

    function _expectNoCommitment(uint256 e, address operator, bytes32 salt, AuditProtocol.Vote[] memory votes)
        internal
    {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, e, operator));
        protocol.reveal(e, operator, salt, votes);
    }

    /// @dev A reveal that differs from the committed opening in any one field (a vote's license, target,
    ///      verdict or root, a vote more or less, the salt, the epoch, the operator) reverts NoCommitment; the
    ///      unchanged reveal passes.
    function testFuzz_commitmentBindsEveryField(
        uint256 idx,
        uint8 verdictSeed,
        bytes32 rootSeed,
        bytes32 salt,
        uint256 otherEpoch,
        uint8 newVerdict,
        bytes32 newRoot,
        bytes32 newSalt
    ) public {
        AuditProtocol.Vote[] memory votes = new AuditProtocol.Vote[](3);
        uint8[3] memory allowed = [uint8(0), 2, 3];
        votes[0] = _vote(ids[0], ta, allowed[verdictSeed % 3], keccak256(abi.encode(rootSeed, 0)));
        votes[1] = _vote(ids[2], ta, allowed[(verdictSeed / 3) % 3], keccak256(abi.encode(rootSeed, 1)));
        votes[2] = _vote(ids[1], tb, allowed[(verdictSeed / 9) % 3], keccak256(abi.encode(rootSeed, 2)));
        idx = bound(idx, 0, 2);
        if (otherEpoch == 1) otherEpoch = 2;
        if (newVerdict == votes[idx].verdict) newVerdict = newVerdict ^ 0x80;
        if (newRoot == votes[idx].evidenceRoot) newRoot = ~newRoot;
        if (newSalt == salt) newSalt = ~newSalt;

        _rollToEpoch(1);
        _heartbeats();
        bytes32 root = _commitVotes(op, 1, salt, votes);
        assertEq(protocol.commitmentOf(1, op, salt, votes), root, "the contract's hash is the tests'");
        vm.prank(op2); // op2 copies op's root: only the operator differs
        protocol.commit(1, root);
        vm.prank(op3); // op3 commits the same votes hashed for another epoch
        protocol.commit(1, _commitmentOf(otherEpoch, op3, salt, votes));
        _rollToReveal(1);

        _expectNoCommitment(1, op2, salt, votes); // the operator
        _expectNoCommitment(1, op3, salt, votes); // the epoch
        _expectNoCommitment(1, op, newSalt, votes); // the salt
        AuditProtocol.Vote[] memory m = _copy(votes);
        m[idx].license = ids[(idx + 1) % 3] == m[idx].license ? ids[(idx + 2) % 3] : ids[(idx + 1) % 3];
        _expectNoCommitment(1, op, salt, m); // one license
        m = _copy(votes);
        m[idx].targetId = m[idx].targetId == ta ? tb : ta;
        _expectNoCommitment(1, op, salt, m); // one target id
        m = _copy(votes);
        m[idx].verdict = newVerdict;
        _expectNoCommitment(1, op, salt, m); // one verdict
        m = _copy(votes);
        m[idx].evidenceRoot = newRoot;
        _expectNoCommitment(1, op, salt, m); // one evidence root
        m = new AuditProtocol.Vote[](2);
        (m[0], m[1]) = (votes[0], votes[1]);
        _expectNoCommitment(1, op, salt, m); // a vote left out
        _expectNoCommitment(1, op, salt, _allOk()); // all of them left out

        _reveal(1, op, salt, votes);
        assertTrue(protocol.hasRevealed(op, 1), "unchanged reveal passes");
        for (uint256 i; i < 3; ++i) {
            (bool listed, uint8 verdict, bytes32 r) = protocol.voteOf(1, votes[i].targetId, votes[i].license);
            assertTrue(listed, "listed");
            assertEq(verdict, votes[i].verdict, "verdict");
            assertEq(r, votes[i].evidenceRoot, "root");
        }
    }
}
