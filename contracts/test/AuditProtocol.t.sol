// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {Vm} from "./utils/Vm.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault} from "../src/AuditProtocol.sol";
import {RewardVault} from "../src/RewardVault.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {Generations} from "../src/lib/Generations.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Merkle, IListPositions} from "./utils/Merkle.sol";

/// @dev Cheatcodes these tests need beyond test/utils/Vm.sol (forge's exact signatures).
interface AuditVm {
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
}

/// @dev What a license commits to and later reveals.
struct Opening {
    uint256[] tids;
    uint8[] verdicts;
    bytes32[] roots;
    bytes32 salt;
}

/// @notice Shared fixture: `nLicenses` licenses of one owner (listed from epoch 1), each with its own operator, so
///         that which licenses are active stays a per-license choice here (a heartbeat makes every license listed
///         under its operator active, issue 16), and each operator's root is its one license's leaf; three targets
///         enabled from epoch 1, committees of 16 (so up to 16 licenses all sit on every committee).
abstract contract AuditFixture is Deployed {
    AuditVm internal constant vmx = AuditVm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant MAX = type(uint256).max;
    bytes32 internal constant GENESIS_SEED = keccak256("genesis");

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
        // An anonymous trap seal (id 0, OK) posted before any registration; only the trap test reveals it.
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

    /// @dev An opening voting `v` on every target of `tids`, with a root and salt unique to `lic`.
    function _opening(uint256 lic, uint256[] memory tids, uint8 v) internal pure returns (Opening memory o) {
        o.tids = tids;
        o.verdicts = new uint8[](tids.length);
        o.roots = new bytes32[](tids.length);
        for (uint256 i; i < tids.length; ++i) {
            o.verdicts[i] = v;
            o.roots[i] = keccak256(abi.encode("root", lic, tids[i], v));
        }
        o.salt = keccak256(abi.encode("salt", lic));
    }

    /// @dev The opening's leaf.
    function _hash(uint256 e, uint256 lic, Opening memory o) internal pure returns (bytes32) {
        return Merkle.leaf(e, lic, o.tids, o.verdicts, o.roots, o.salt);
    }

    /// @dev Tree depth + 1 of each epoch a solo root was built for (kept so that a reveal's proof needs no
    ///      external call between `vm.expectRevert` and the reveal).
    mapping(uint256 => uint256) internal _depthPlus1;

    /// @dev The root of `e`'s tree holding only `leaf`, at `lic`'s list position (security review N1).
    function _soloRoot(uint256 e, uint256 lic, bytes32 leaf) internal returns (bytes32) {
        uint256[] memory one = new uint256[](1);
        one[0] = lic;
        (uint256[] memory pos, uint256 d) = Merkle.positions(IListPositions(address(registry)), e, one);
        _depthPlus1[e] = d + 1;
        return Merkle.soloRoot(leaf, pos[0], d);
    }

    /// @dev The proof of the only leaf of an epoch-`e` tree: a zero sibling on every level.
    function _soloProof(uint256 e) internal view returns (bytes32[] memory) {
        uint256 d = _depthPlus1[e];
        return new bytes32[](d == 0 ? 0 : d - 1);
    }

    /// @dev `lic`'s operator commits root `c`.
    function _commitHash(uint256 e, uint256 lic, bytes32 c) internal {
        vm.prank(opOf[lic]);
        protocol.commit(e, c);
    }

    function _commit(uint256 e, uint256 lic, Opening memory o) internal {
        _commitHash(e, lic, _soloRoot(e, lic, _hash(e, lic, o)));
    }

    /// @dev Reveal a single-leaf tree's opening: the proof is all zero siblings.
    function _reveal(uint256 e, uint256 lic, Opening memory o) internal {
        protocol.reveal(e, lic, o.tids, o.verdicts, o.roots, o.salt, _soloProof(e));
    }

    /// @dev Epoch 1: licenses 1..n reveal verdicts[i] on target `t` only; afterwards the reveal window is over.
    function _votesOn(uint256 t, uint8[] memory verdicts) internal returns (uint256[] memory lics) {
        uint256 n = verdicts.length;
        lics = _first(n);
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _commit(1, lics[i], _opening(lics[i], _one(t), verdicts[i]));
        }
        _rollToEpoch(2);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _reveal(1, lics[i], _opening(lics[i], _one(t), verdicts[i]));
        }
        _rollPastReveal(1);
    }

    function _three() internal view returns (uint256[] memory tids) {
        tids = new uint256[](3);
        (tids[0], tids[1], tids[2]) = (t0, t1, t2);
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
            _commit(1, lics[i], _opening(lics[i], _one(t0), 1));
        }
        _rollToReveal(1);
        for (uint256 i; i < 3; ++i) {
            _reveal(1, lics[i], _opening(lics[i], _one(t0), 1));
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
        _commit(1, ids[0], _opening(ids[0], _one(t0), 1));
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

    /// @dev Epoch 1 (everyone assigned): the first `n` licenses heartbeat and commit `v` on all three targets.
    function _epochOneCommitted(uint256 n, uint8 v) internal returns (uint256[] memory lics) {
        _rollToEpoch(1);
        lics = _first(n);
        _heartbeat(lics);
        for (uint256 i; i < n; ++i) {
            _commit(1, lics[i], _opening(lics[i], _three(), v));
        }
    }

    function test_revealCountsVotesAndRecordsRevealers() public {
        uint256[] memory lics = _epochOneCommitted(2, 2);
        _rollToReveal(1);
        Opening memory o = _opening(lics[0], _three(), 2);
        vm.expectEmit();
        emit AuditProtocol.Revealed(1, lics[0], o.tids, o.verdicts, o.roots);
        vm.prank(reporter); // anyone holding the opening may reveal
        protocol.reveal(1, lics[0], o.tids, o.verdicts, o.roots, o.salt, _soloProof(1));
        assertTrue(protocol.isRevealed(lics[0], 1), "marked revealed");
        assertFalse(protocol.isRevealed(lics[1], 1), "not yet");
        _reveal(1, lics[1], _opening(lics[1], _three(), 2));
        for (uint256 t; t < 3; ++t) {
            (uint8 ok, uint8 fault, uint8 unr, uint8 n, uint8 outcome) = protocol.tally(1, t);
            assertEq(ok, 0, "ok");
            assertEq(fault, 2, "fault votes");
            assertEq(unr, 0, "unreachable");
            assertEq(n, 2, "reveals");
            assertEq(outcome, 0, "not settled");
            (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, t);
            assertEq(who.length, 2, "two revealers");
            assertEq(who[0], lics[0], "first revealer");
            assertEq(who[1], lics[1], "second revealer");
            assertEq(vs[0], 2, "first verdict");
            // The first FAULT root is kept as the target's evidence.
            assertEq(protocol.evidenceRoot(1, t, 2), o.roots[t], "evidence root");
            assertEq(protocol.evidenceRoot(1, t, 3), bytes32(0), "no unreachable evidence");
            assertEq(protocol.evidenceRoot(1, t, 1), bytes32(0), "OK has no evidence slot");
        }
    }

    function test_revealManyRevealsEveryLicense() public {
        uint256[] memory lics = _epochOneCommitted(3, 1);
        _rollToReveal(1);
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](3);
        for (uint256 i; i < 3; ++i) {
            Opening memory o = _opening(lics[i], _three(), 1);
            rs[i] = AuditProtocol.Reveal(lics[i], o.tids, o.verdicts, o.roots, o.salt, _soloProof(1));
        }
        protocol.revealMany(1, rs);
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t2);
        assertEq(ok, 3, "three OK votes");
        assertEq(n, 3, "three reveals");
        // Revealed entries are skipped, not counted twice (security review H1, test/SecurityReview.t.sol).
        protocol.revealMany(1, rs);
        (,,, n,) = protocol.tally(1, t2);
        assertEq(n, 3, "still three reveals");
    }

    function test_revealAnEmptyDutyList() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        Opening memory o = _opening(ids[0], new uint256[](0), 1);
        _commit(1, ids[0], o);
        _rollToReveal(1);
        _reveal(1, ids[0], o);
        assertTrue(protocol.isRevealed(ids[0], 1), "revealed");
    }

    function test_revealRejectsBeforeTheWindowOpens() public {
        uint256[] memory lics = _epochOneCommitted(1, 1);
        vm.roll(159);
        Opening memory o = _opening(lics[0], _three(), 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowClosed.selector, 1, 160, 175));
        _reveal(1, lics[0], o);
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](1);
        rs[0] = AuditProtocol.Reveal(lics[0], o.tids, o.verdicts, o.roots, o.salt, _soloProof(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowClosed.selector, 1, 160, 175));
        protocol.revealMany(1, rs);
    }

    function test_revealRejectsAfterTheWindowCloses() public {
        uint256[] memory lics = _epochOneCommitted(1, 1);
        vm.roll(175);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowClosed.selector, 1, 160, 175));
        _reveal(1, lics[0], _opening(lics[0], _three(), 1));
        vm.roll(174);
        _reveal(1, lics[0], _opening(lics[0], _three(), 1)); // last block of the window
    }

    function test_revealRejectsMismatchedLengths() public {
        uint256[] memory lics = _epochOneCommitted(1, 1);
        _rollToReveal(1);
        Opening memory o = _opening(lics[0], _three(), 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.LengthMismatch.selector));
        protocol.reveal(1, lics[0], o.tids, new uint8[](2), o.roots, o.salt, _soloProof(1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.LengthMismatch.selector));
        protocol.reveal(1, lics[0], o.tids, o.verdicts, new bytes32[](4), o.salt, _soloProof(1));
    }

    function test_revealRejectsALicenseThatDidNotCommit() public {
        _epochOneCommitted(1, 1);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[1]));
        _reveal(1, ids[1], _opening(ids[1], _three(), 1));
    }

    function test_revealRejectsACommitmentFromTwoEpochsBefore() public {
        // Epoch 1 commitment left unrevealed sits in the slot epoch 3 uses: it cannot open epoch 3.
        uint256[] memory lics = _epochOneCommitted(1, 1);
        _rollToEpoch(3);
        _heartbeat(lics);
        _rollToReveal(3);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 3, lics[0]));
        _reveal(3, lics[0], _opening(lics[0], _three(), 1));
    }

    function test_revealRejectsASecondReveal() public {
        uint256[] memory lics = _epochOneCommitted(1, 1);
        _rollToReveal(1);
        _reveal(1, lics[0], _opening(lics[0], _three(), 1));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AlreadyRevealed.selector, 1, lics[0]));
        _reveal(1, lics[0], _opening(lics[0], _three(), 1));
    }

    function test_revealRejectsUnsortedTargets() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        uint256[] memory dup = new uint256[](3);
        (dup[0], dup[1], dup[2]) = (t0, t1, t1);
        uint256[] memory down = new uint256[](2);
        (down[0], down[1]) = (t2, t0);
        Opening memory a = _opening(ids[0], dup, 1);
        Opening memory b = _opening(ids[1], down, 1);
        _commit(1, ids[0], a);
        _commit(1, ids[1], b);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.TargetsNotSorted.selector, 2));
        _reveal(1, ids[0], a);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.TargetsNotSorted.selector, 1));
        _reveal(1, ids[1], b);
    }

    function test_revealRejectsInvalidVerdicts() public {
        _rollToEpoch(1);
        _heartbeat(_first(2));
        Opening memory a = _opening(ids[0], _three(), 1);
        a.verdicts[1] = 0;
        Opening memory b = _opening(ids[1], _three(), 3);
        b.verdicts[2] = 4; // INCONCLUSIVE is an outcome, not a verdict
        _commit(1, ids[0], a);
        _commit(1, ids[1], b);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidVerdict.selector, 1, 0));
        _reveal(1, ids[0], a);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.InvalidVerdict.selector, 2, 4));
        _reveal(1, ids[1], b);
    }

    function test_revealRejectsATargetNotDrawnForTheLicense() public {
        _committee(5);
        _rollToEpoch(2);
        _heartbeat(_first(8));
        (uint256 lic, uint256 t, bool found) = (0, 0, false);
        for (uint256 i; i < 8 && !found; ++i) {
            for (uint256 j; j < 3 && !found; ++j) {
                if (!protocol.isAssigned(2, ids[i], j)) (lic, t, found) = (ids[i], j, true);
            }
        }
        assertTrue(found, "some pair is not drawn");
        Opening memory o = _opening(lic, _one(t), 1);
        _commit(2, lic, o);
        _rollToReveal(2);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 2, lic, t));
        _reveal(2, lic, o);
    }

    function test_revealRejectsATargetDisabledBeforeTheEpoch() public {
        vm.prank(address(timelock));
        targets.setTargetEnabled(t1, false);
        _rollToEpoch(1);
        _heartbeat(_first(1));
        Opening memory o = _opening(ids[0], _three(), 1);
        _commit(1, ids[0], o);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[0], t1));
        _reveal(1, ids[0], o);
        assertFalse(protocol.isAssigned(1, ids[0], t1), "disabled target has no duty");
    }

    function test_targetDisabledDuringAnEpochStillCountsInThatEpoch() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        vm.prank(address(timelock));
        targets.setTargetEnabled(t1, false);
        assertTrue(protocol.isAssigned(1, ids[0], t1), "epoch 1 keeps its duties");
        Opening memory o = _opening(ids[0], _three(), 1);
        _commit(1, ids[0], o);
        _rollToEpoch(2);
        _heartbeat(_first(1));
        assertFalse(protocol.isAssigned(2, ids[0], t1), "disabled from epoch 2");
        _rollToReveal(1);
        _reveal(1, ids[0], o);
        (uint8 ok,,,,) = protocol.tally(1, t1);
        assertEq(ok, 1, "vote counted");
    }

    function test_revealRejectsAnUnknownTarget() public {
        _rollToEpoch(1);
        _heartbeat(_first(1));
        Opening memory o = _opening(ids[0], _one(3), 1);
        _commit(1, ids[0], o);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[0], 3));
        _reveal(1, ids[0], o);
    }

    function test_revealRejectsLicenseIdsBeyond32Bits() public {
        _epochOneCommitted(1, 1);
        _rollToReveal(1);
        uint256 big = uint256(type(uint32).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, big));
        _reveal(1, big, _opening(big, _three(), 1));
    }

    function test_tallyRejectsEpochAndTargetIdsBeyondTheKey() public {
        uint256 bigEpoch = uint256(type(uint64).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, bigEpoch));
        protocol.tally(bigEpoch, 0);
        uint256 bigTarget = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.IdTooLarge.selector, bigTarget));
        protocol.revealers(0, bigTarget);
    }

    function test_sixteenRevealersFillTheThreeTallySlotsInOrder() public {
        uint256[] memory lics = _first(16);
        _rollToEpoch(1);
        _heartbeat(lics);
        for (uint256 i; i < 16; ++i) {
            _commit(1, lics[i], _opening(lics[i], _one(t0), 1));
        }
        _rollToReveal(1);
        for (uint256 i; i < 16; ++i) {
            _reveal(1, lics[i], _opening(lics[i], _one(t0), 1));
        }
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t0);
        assertEq(ok, 16, "16 votes counted");
        assertEq(n, 16, "16 revealers");
        (uint256[] memory who, uint8[] memory vs) = protocol.revealers(1, t0);
        for (uint256 i; i < 16; ++i) {
            assertEq(who[i], lics[i], "revealer order across the three tally slots");
            assertEq(vs[i], 1, "verdict");
        }
        _rollPastReveal(1);
        assertEq(protocol.settle(1, t0), 1, "OK");
    }

    function test_aCommitteeLargerThanTheTallyIsRefused() public {
        vm.prank(address(timelock));
        vm.expectRevert(AuditProtocol.InvalidParams.selector);
        protocol.setParams(_p(15, 12, 3, 10));
    }

    // ==================================================================================== settle

    /// @dev Epoch 1: licenses 1..n reveal verdicts[i] on target t0 only; credit booked at the epoch-2 heartbeat.
    function _votesOnT0(uint8[] memory verdicts) internal returns (uint256[] memory lics) {
        return _votesOn(t0, verdicts);
    }

    function _v(uint8 a, uint8 b, uint8 c) internal pure returns (uint8[] memory v) {
        v = new uint8[](3);
        (v[0], v[1], v[2]) = (a, b, c);
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
        bytes32 faultRoot = _opening(lics[2], _one(t0), 2).roots[0];
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
        bytes32 root = _opening(lics[1], _one(t0), 3).roots[0];
        vm.expectEmit();
        emit AuditProtocol.ViolationFlagged(1, t0, 3, root);
        assertEq(protocol.settle(1, t0), 3, "UNREACHABLE");
        assertEq(_balance(lics[0]), int256(_net(per)), "FAULT is not a disagreement with UNREACHABLE");
    }

    function test_settleEvenSplitIsInconclusiveWithoutPenalties() public {
        // 2 OK against 2 not-OK (FAULT + UNREACHABLE): no supermajority and no strict majority either (M4).
        uint256[] memory lics = _votesOnT0(_v4(1, 1, 2, 3));
        uint256 per = _perLicense(4);
        vm.recordLogs();
        assertEq(protocol.settle(1, t0), 4, "INCONCLUSIVE");
        _assertNoPenaltyLogged();
        for (uint256 i; i < 4; ++i) {
            assertEq(_balance(lics[i]), int256(_net(per)), "no penalty");
        }
    }

    function test_settleBelowMinRevealsIsInconclusive() public {
        _votesOnT0(_v4(1, 1, 1, 1)); // 4 licenses active, only t0 revealed
        vm.prank(address(timelock));
        protocol.setParams(_p(15, 5, 5, 16));
        assertEq(protocol.settle(1, t0), 4, "4 reveals < minReveals 5");
        assertEq(protocol.settle(1, t1), 4, "no reveal at all");
    }

    function test_settleExactlyMinRevealsDecides() public {
        _votesOnT0(_v(1, 1, 1));
        assertEq(protocol.settle(1, t0), 1, "3 reveals, all OK");
    }

    function test_settleUsesTheRevealedTrapOutcomeAndTheTrapPenalty() public {
        bytes32 salt = keccak256("trap salt"); // sealed in the fixture, before t0's registration
        uint256[] memory lics = _votesOnT0(_v(2, 2, 1)); // the majority says FAULT, the trap is OK
        uint256 per = _perLicense(3);
        vm.prank(keeper);
        targets.revealTrap(t0, 1, salt);
        vm.expectEmit();
        emit AuditProtocol.TargetSettled(1, t0, 1, 1, 2, 0);
        assertEq(protocol.settle(1, t0), 1, "trap truth");
        assertEq(_balance(lics[0]), int256(_net(per)) - int256(10 * per), "trap penalty");
        assertEq(_balance(lics[1]), int256(_net(per)) - int256(10 * per), "trap penalty");
        assertEq(_balance(lics[2]), int256(_net(per)), "right about the trap");
    }

    function test_settleRejectsWhileTheRevealWindowIsOpen() public {
        _epochOneCommitted(1, 1);
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
        // Licenses 1..3 active and committed in epoch 1; license 3 never reveals t1.
        _rollToEpoch(1);
        uint256[] memory lics = _first(3);
        _heartbeat(lics);
        for (uint256 i; i < 3; ++i) {
            _commit(1, lics[i], _opening(lics[i], _three(), 1));
        }
        _rollToEpoch(2);
        _heartbeat(lics);
        _reveal(1, lics[0], _opening(lics[0], _three(), 1));
        _reveal(1, lics[1], _opening(lics[1], _three(), 1));
        _rollPastReveal(1);
        uint256 per = _perLicense(3);
        uint256 freed = _net(per); // its whole balance, less than 3 epochs of credit
        uint256 bounty = freed * 1000 / 10_000;
        vm.expectEmit();
        emit AuditProtocol.MissReported(1, lics[2], t1, reporter);
        vm.expectEmit();
        emit RewardVault.Penalized(lics[2], 1, 1, 3 * per, freed);
        vm.prank(reporter);
        protocol.reportMiss(1, lics[2], t1);
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

    function test_reportMissRejectsWhileTheRevealWindowIsOpen() public {
        _epochOneCommitted(1, 1);
        vm.roll(174);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.RevealWindowOpen.selector, 1, 175));
        protocol.reportMiss(1, ids[0], t0);
    }

    function test_reportMissRejectsASecondReport() public {
        _epochOneCommitted(1, 1);
        _rollPastReveal(1);
        protocol.reportMiss(1, ids[0], t0);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.MissAlreadyReported.selector, 1, ids[0], t0));
        protocol.reportMiss(1, ids[0], t0);
    }

    function test_reportMissRejectsAnInactiveLicense() public {
        _epochOneCommitted(1, 1);
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotAssigned.selector, 1, ids[1], t0));
        protocol.reportMiss(1, ids[1], t0);
    }

    function test_reportMissRejectsADisabledTarget() public {
        vm.prank(address(timelock));
        targets.setTargetEnabled(t2, false);
        _epochOneCommitted(1, 1);
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
        uint256[] memory lics = _epochOneCommitted(1, 2);
        _rollToReveal(1);
        _reveal(1, lics[0], _opening(lics[0], _three(), 2));
        _rollPastReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NotMissed.selector, 1, lics[0], t1));
        protocol.reportMiss(1, lics[0], t1);
    }

    // ================================================================================ fuzz: binding

    function _copy(Opening memory o) internal pure returns (Opening memory c) {
        c.tids = new uint256[](o.tids.length);
        c.verdicts = new uint8[](o.tids.length);
        c.roots = new bytes32[](o.tids.length);
        for (uint256 i; i < o.tids.length; ++i) {
            (c.tids[i], c.verdicts[i], c.roots[i]) = (o.tids[i], o.verdicts[i], o.roots[i]);
        }
        c.salt = o.salt;
    }

    function _expectNoCommitment(uint256 e, uint256 lic, Opening memory o) internal {
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, e, lic));
        _reveal(e, lic, o);
    }

    /// @dev A reveal that differs from the committed opening in any one field reverts NoCommitment; the
    ///      unchanged reveal passes.
    function testFuzz_commitmentBindsEveryField(
        uint256 targetMask,
        uint256 verdictBits,
        bytes32 rootSeed,
        bytes32 salt,
        uint256 otherEpoch,
        uint256 idx,
        uint256 newTarget,
        uint8 newVerdict,
        bytes32 newRoot,
        bytes32 newSalt
    ) public {
        targetMask = bound(targetMask, 1, 7);
        Opening memory o;
        uint256 n = (targetMask & 1) + ((targetMask >> 1) & 1) + ((targetMask >> 2) & 1);
        o.tids = new uint256[](n);
        o.verdicts = new uint8[](n);
        o.roots = new bytes32[](n);
        uint256 j;
        for (uint256 t; t < 3; ++t) {
            if ((targetMask >> t) & 1 == 1) {
                o.tids[j] = t;
                o.verdicts[j] = uint8(1 + ((verdictBits >> (8 * j)) & 0xff) % 3);
                o.roots[j] = keccak256(abi.encode(rootSeed, j));
                ++j;
            }
        }
        o.salt = salt;
        if (otherEpoch == 1) otherEpoch = 2;
        idx = bound(idx, 0, n - 1);
        if (newTarget == o.tids[idx]) newTarget = newTarget + 1;
        if (newVerdict == o.verdicts[idx]) newVerdict = newVerdict ^ 0x80;
        if (newRoot == o.roots[idx]) newRoot = ~newRoot;
        if (newSalt == o.salt) newSalt = ~newSalt;

        (uint256 a, uint256 b, uint256 c) = (ids[0], ids[1], ids[2]);
        _rollToEpoch(1);
        _heartbeat(_first(3));
        _commit(1, a, o);
        _commitHash(1, b, _soloRoot(1, b, _hash(1, a, o))); // b copied a's commitment: only the license differs
        _commitHash(1, c, _soloRoot(1, c, Merkle.leaf(otherEpoch, c, o.tids, o.verdicts, o.roots, o.salt)));
        _rollToReveal(1);

        _expectNoCommitment(1, b, o); // license
        _expectNoCommitment(1, c, o); // epoch
        Opening memory m = _copy(o);
        m.tids[idx] = newTarget;
        _expectNoCommitment(1, a, m); // one target id
        m = _copy(o);
        m.verdicts[idx] = newVerdict;
        _expectNoCommitment(1, a, m); // one verdict
        m = _copy(o);
        m.roots[idx] = newRoot;
        _expectNoCommitment(1, a, m); // one evidence root
        m = _copy(o);
        m.salt = newSalt;
        _expectNoCommitment(1, a, m); // the salt

        _reveal(1, a, o);
        assertTrue(protocol.isRevealed(a, 1), "unchanged reveal passes");
        for (uint256 i; i < n; ++i) {
            (uint8 ok, uint8 fault, uint8 unr, uint8 reveals,) = protocol.tally(1, o.tids[i]);
            assertEq(reveals, 1, "one reveal");
            assertEq(o.verdicts[i] == 1 ? ok : o.verdicts[i] == 2 ? fault : unr, 1, "vote counted");
        }
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

/// @notice One operator's root over the openings of its three licenses (issue 16): each license reveals its own
///         opening with its proof; wrong proofs, leaves of another epoch or of another operator's license, and
///         second reveals are refused.
contract AuditProtocolMerkleTest is Deployed {
    address internal op = makeAddr("op");
    address internal owner = makeAddr("owner");
    uint256[] internal ids;
    uint256 internal t;

    function setUp() public {
        _deploy();
        _fundEmission(100_000 ether);
        ids = _operatorWithLicenses(op, 1000, owner, 3);
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16)); // everyone sits on every committee
    }

    function _opening(uint256 e, uint256 lic, uint8 v) internal view returns (AuditProtocol.Reveal memory r) {
        r.license = lic;
        r.targetIds = _one(t);
        r.verdicts = new uint8[](1);
        r.verdicts[0] = v;
        r.evidenceRoots = new bytes32[](1);
        r.evidenceRoots[0] = keccak256(abi.encode("evidence", e, lic));
        r.salt = keccak256(abi.encode("salt", e, lic));
    }

    function _openings(uint256 e) internal view returns (AuditProtocol.Reveal[] memory rs) {
        rs = new AuditProtocol.Reveal[](3);
        for (uint256 i; i < 3; ++i) {
            rs[i] = _opening(e, ids[i], 1);
        }
    }

    function _reveal(uint256 e, AuditProtocol.Reveal memory r, bytes32[] memory proof) internal {
        protocol.reveal(e, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, proof);
    }

    function _epochOne() internal returns (AuditProtocol.Reveal[] memory rs) {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        rs = _openings(1);
        _commitTree(op, 1, rs);
    }

    function test_aThreeLeafTreeRevealsEachLicenseWithItsProof() public {
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        AuditProtocol.Reveal[] memory rs = _openings(1);
        bytes32 root = _commitTree(op, 1, rs);
        // By hand: a list of 3 gives depth 2; the licenses sit at list positions 0, 1, 2; position 3 is empty
        // (zero), so leaf 2's node is (leaf 2, 0) in that order.
        for (uint256 i; i < 3; ++i) {
            (uint256 listed, uint256 position) = registry.positionAt(ids[i], 1);
            assertEq(listed, 3, "three listed");
            assertEq(position, i + 1, "list position");
        }
        bytes32[] memory leaves = _leaves(1, rs);
        bytes32 n01 = Merkle.node(leaves[0], leaves[1]);
        bytes32 n2 = Merkle.node(leaves[2], bytes32(0));
        assertEq(root, Merkle.node(n01, n2), "root");
        assertEq(protocol.rootOf(op, 1), root, "stored");
        assertEq(rs[0].proof.length, 2, "leaf 0: two siblings");
        assertEq(rs[0].proof[0], leaves[1], "leaf 0: leaf 1");
        assertEq(rs[0].proof[1], n2, "leaf 0: then the node of 2");
        assertEq(rs[1].proof[0], leaves[0], "leaf 1: leaf 0");
        assertEq(rs[2].proof.length, 2, "leaf 2: two siblings, the first empty");
        assertEq(rs[2].proof[0], bytes32(0), "leaf 2: the empty position 3");
        assertEq(rs[2].proof[1], n01, "leaf 2: the node of 0 and 1");
        _rollToReveal(1);
        _reveal(1, rs[2], rs[2].proof);
        AuditProtocol.Reveal[] memory two = new AuditProtocol.Reveal[](2);
        (two[0], two[1]) = (rs[0], rs[1]);
        protocol.revealMany(1, two);
        for (uint256 i; i < 3; ++i) {
            assertTrue(protocol.isRevealed(ids[i], 1), "revealed");
        }
        (uint8 ok,,, uint8 n,) = protocol.tally(1, t);
        assertEq(ok, 3, "three OK votes");
        assertEq(n, 3, "three reveals");
        _rollPastReveal(1);
        assertEq(protocol.settle(1, t), 1, "OK");
    }

    function test_aWrongProofRevertsNoCommitment() public {
        AuditProtocol.Reveal[] memory rs = _epochOne();
        _rollToReveal(1);
        bytes32[] memory good = rs[0].proof;
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, rs[0], rs[1].proof); // another leaf's proof
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, rs[0], new bytes32[](0)); // as if its leaf were the root
        bytes32[] memory bad = new bytes32[](2);
        (bad[0], bad[1]) = (good[0], keccak256("not the sibling"));
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, rs[0], bad);
        (bad[0], bad[1]) = (good[1], good[0]); // the right siblings in the wrong order
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, rs[0], bad);
        bytes32[] memory shorter = new bytes32[](1);
        shorter[0] = good[0];
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, rs[0], shorter); // a proof cut short ends at an inner node, not at the root
        // A wrong opening under the right proof.
        AuditProtocol.Reveal memory other = _opening(1, ids[0], 2);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[0]));
        _reveal(1, other, good);
        _reveal(1, rs[0], good);
        assertTrue(protocol.isRevealed(ids[0], 1), "the right proof passes");
    }

    function test_aLeafOfAnotherEpochReverts() public {
        // Epoch 1's root is over leaves hashed with epoch 2: none of them opens epoch 1.
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        AuditProtocol.Reveal[] memory rs = _openings(1);
        bytes32[] memory leaves = _leaves(2, rs);
        (uint256[] memory pos, uint256 d) = Merkle.positions(IListPositions(address(registry)), 1, ids);
        vm.prank(op);
        protocol.commit(1, Merkle.root(leaves, pos, d));
        _rollToReveal(1);
        bytes32[] memory proof = Merkle.proof(leaves, pos, d, 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, ids[1]));
        _reveal(1, rs[1], proof);
        // Epoch 3 uses the slot of epoch 1: an epoch-1 opening and proof cannot open epoch 3.
        rs = _openings(1);
        _rollToEpoch(3);
        vm.prank(op);
        protocol.heartbeat();
        leaves = _leaves(1, rs);
        (pos, d) = Merkle.positions(IListPositions(address(registry)), 3, ids);
        vm.prank(op);
        protocol.commit(3, Merkle.root(leaves, pos, d));
        _rollToReveal(3);
        proof = Merkle.proof(leaves, pos, d, 1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 3, ids[1]));
        _reveal(3, rs[1], proof);
    }

    function test_aLeafForALicenseOfAnotherOperatorReverts() public {
        // op2's license is listed under op2; op puts its leaf in op's own tree.
        address op2 = makeAddr("op2");
        uint256 foreign = _operatorWithLicenses(op2, 0, owner, 1)[0];
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat();
        vm.prank(op2);
        protocol.heartbeat();
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](2);
        (rs[0], rs[1]) = (_opening(1, ids[0], 1), _opening(1, foreign, 2));
        _commitTree(op, 1, rs);
        _rollToReveal(1);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.NoCommitment.selector, 1, foreign));
        _reveal(1, rs[1], rs[1].proof); // checked against op2's root, which op2 never committed
        _reveal(1, rs[0], rs[0].proof);
    }

    function test_aSecondRevealReverts() public {
        AuditProtocol.Reveal[] memory rs = _epochOne();
        _rollToReveal(1);
        _reveal(1, rs[1], rs[1].proof);
        vm.expectRevert(abi.encodeWithSelector(AuditProtocol.AlreadyRevealed.selector, 1, ids[1]));
        _reveal(1, rs[1], rs[1].proof);
        protocol.revealMany(1, rs); // the batch holds it again: skipped (security review H1), the others count
        (,,, uint8 n,) = protocol.tally(1, t);
        assertEq(n, 3, "license 1 counted once");
    }
}
