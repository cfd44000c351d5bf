// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./Test.sol";
import {AlignmentLicense} from "../../src/AlignmentLicense.sol";
import {NodeSale, ILicenseMinter} from "../../src/NodeSale.sol";
import {OperatorRegistry, ILicenseOwners, IRewardSettle, IEpochClock} from "../../src/OperatorRegistry.sol";
import {TargetRegistry} from "../../src/TargetRegistry.sol";
import {AuditProtocol, IDelegations, ITargets, IPresenceVault, IRefereeCourt} from "../../src/AuditProtocol.sol";
import {RefereeCourt, ICourtProtocol} from "../../src/RefereeCourt.sol";
import {RewardVault, ILicenseOwnersBatch} from "../../src/RewardVault.sol";
import {StakingVault} from "../../src/StakingVault.sol";
import {RewardToken} from "../../src/RewardToken.sol";
import {AlignmentGovernor} from "../../src/AlignmentGovernor.sol";
import {Timelock} from "../../src/Timelock.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice The whole protocol deployed and wired the way the Python deployer does it, with the devnet's
///         default parameters (PROTOCOL.md section 10). Every setter is owned by the timelock.
abstract contract Deployed is Test {
    uint32 internal constant EPOCH_LENGTH = 30;
    uint256 internal constant EMISSION = 1000 ether;
    uint256 internal constant STAKING_DRIP = 1 hours; // StakingVault: seconds over which fees vest
    uint256 internal constant TIMELOCK_DELAY = 10; // seconds
    uint48 internal constant VOTING_DELAY = 1; // blocks
    uint32 internal constant VOTING_PERIOD = 20; // blocks

    RewardToken internal token;
    AlignmentLicense internal license;
    Timelock internal timelock;
    AlignmentGovernor internal governor;
    OperatorRegistry internal registry;
    TargetRegistry internal targets;
    StakingVault internal staking;
    RewardVault internal vault;
    AuditProtocol internal protocol;
    RefereeCourt internal court;
    NodeSale internal sale;

    address internal treasury = makeAddr("treasury");
    address internal keeper = makeAddr("keeper");
    address internal saleStartSetter = address(this);

    uint64 internal allowlistStart;
    uint64 internal publicStart;
    uint64 internal saleEnd;

    function _defaultVaultParams() internal pure returns (RewardVault.Params memory) {
        return RewardVault.Params({
            nodeShareBps: 7000,
            stakerShareBps: 2000,
            missBountyBps: 1000,
            missPenaltyBps: 30_000,
            disagreePenaltyBps: 20_000,
            trapPenaltyBps: 100_000,
            suspendAfter: 3,
            suspendWindow: 10,
            suspendEpochs: 20,
            emissionPerEpoch: uint128(EMISSION)
        });
    }

    function _defaultProtocolParams() internal pure returns (AuditProtocol.Params memory) {
        return AuditProtocol.Params({revealBlocks: 15, committeeSize: 5, minReveals: 3, maxCommittee: 16});
    }

    function _defaultTiers() internal pure returns (NodeSale.Tier[] memory tiers) {
        tiers = new NodeSale.Tier[](3);
        tiers[0] = NodeSale.Tier({price: 0.1 ether, supply: 100});
        tiers[1] = NodeSale.Tier({price: 0.2 ether, supply: 200});
        tiers[2] = NodeSale.Tier({price: 0.4 ether, supply: 700});
    }

    function _deploy() internal {
        vm.roll(100);
        vm.warp(1_000_000);
        allowlistStart = uint64(block.timestamp + 100);
        publicStart = uint64(block.timestamp + 1000);
        saleEnd = uint64(block.timestamp + 100_000);

        token = new RewardToken("Alignment Reward", "ALR", address(this));
        license = new AlignmentLicense("Alignment Node License", "ALN", block.timestamp + 365 days, address(this));
        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1);
        timelock = new Timelock(TIMELOCK_DELAY, none, anyone, address(this));
        // Quorum on the planned supply (the default tiers' 1000 licenses) until the sale ends.
        governor = new AlignmentGovernor(license, timelock, VOTING_DELAY, VOTING_PERIOD, 1, 4, 1000, saleEnd);
        registry = new OperatorRegistry(ILicenseOwners(address(license)), 0, address(this));
        targets = new TargetRegistry(address(this), keeper);
        staking = new StakingVault(IERC20(address(token)), STAKING_DRIP);
        vault = new RewardVault(
            IERC20(address(token)),
            address(staking),
            ILicenseOwnersBatch(address(license)),
            treasury,
            _defaultVaultParams(),
            address(this)
        );
        protocol = new AuditProtocol(
            IDelegations(address(registry)),
            ITargets(address(targets)),
            IPresenceVault(address(vault)),
            block.number,
            EPOCH_LENGTH,
            keccak256("genesis"),
            _defaultProtocolParams(),
            address(this)
        );
        court = new RefereeCourt(
            IERC20(address(token)),
            targets,
            ICourtProtocol(address(protocol)),
            RefereeCourt.Params({minBond: 100 ether, refereeBlocks: 15, unbondBlocks: 1000, committee: 1}),
            address(timelock)
        );
        sale = new NodeSale(
            ILicenseMinter(address(license)),
            _defaultTiers(),
            allowlistStart,
            publicStart,
            saleEnd,
            5,
            50,
            bytes32(0),
            treasury,
            address(this)
        );

        license.setMinter(address(sale));
        license.setTransferHook(address(registry));
        registry.setRewardVault(IRewardSettle(address(vault)));
        registry.setClock(IEpochClock(address(protocol)));
        vault.wire(address(protocol), address(registry));
        protocol.setCourt(IRefereeCourt(address(court)));

        license.transferOwnership(address(timelock));
        sale.transferOwnership(address(timelock));
        registry.transferOwnership(address(timelock));
        targets.transferOwnership(address(timelock));
        vault.transferOwnership(address(timelock));
        protocol.transferOwnership(address(timelock));
        timelock.grantRole(timelock.PROPOSER_ROLE(), address(governor));
        timelock.grantRole(timelock.CANCELLER_ROLE(), address(governor));
        timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), address(this));
    }

    // ------------------------------------------------------------------------------------- helpers

    /// @dev Mint `n` licenses to `to` directly as the sale would; returns their ids.
    function _mintLicenses(address to, uint256 n) internal returns (uint256[] memory ids) {
        ids = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            vm.prank(address(sale));
            ids[i] = license.mint(to);
        }
    }

    /// @dev Register `operator` with `commissionBps` and delegate + approve `n` fresh licenses of `owner`.
    function _operatorWithLicenses(address operator, uint16 commissionBps, address owner, uint256 n)
        internal
        returns (uint256[] memory ids)
    {
        if (!registry.isOperator(operator)) {
            vm.prank(operator);
            registry.registerOperator(commissionBps, "ipfs://operator");
        }
        ids = _mintLicenses(owner, n);
        vm.prank(owner);
        registry.delegate(ids, operator);
        if (owner != operator) {
            vm.prank(operator);
            registry.approve(ids);
        }
    }

    function _addTarget(uint8 kind) internal returns (uint256 id) {
        vm.prank(address(timelock)); // governance adds every target, traps included
        id = targets.addTarget(kind, "http://127.0.0.1:8545", abi.encode(uint256(31337)));
    }

    function _fundEmission(uint256 amount) internal {
        token.mint(address(this), amount);
        token.approve(address(vault), amount);
        vault.fundEmission(amount);
    }

    function _depositFees(uint256 amount) internal {
        token.mint(address(this), amount);
        token.approve(address(vault), amount);
        vault.depositFees(amount);
    }

    /// @dev Move to the first block of `epoch`.
    function _rollToEpoch(uint256 epoch) internal {
        vm.roll(protocol.epochStartBlock(epoch));
    }

    /// @dev Move into the reveal window of `epoch`.
    function _rollToReveal(uint256 epoch) internal {
        (uint256 start,) = protocol.revealWindow(epoch);
        vm.roll(start);
    }

    /// @dev Move past the reveal window of `epoch`.
    function _rollPastReveal(uint256 epoch) internal {
        (, uint256 end) = protocol.revealWindow(epoch);
        vm.roll(end);
    }

    /// @dev The listed vote of `lic` on target `t` (FAULT, UNREACHABLE or NO_VOTE) with evidence root `root`.
    function _vote(uint256 lic, uint256 t, uint8 verdict, bytes32 root) internal pure returns (AuditProtocol.Vote memory) {
        return AuditProtocol.Vote(lic, t, verdict, root);
    }

    /// @dev No listed vote: every seated license of the operator votes OK.
    function _allOk() internal pure returns (AuditProtocol.Vote[] memory votes) {}

    /// @dev One listed vote.
    function _votes(AuditProtocol.Vote memory v) internal pure returns (AuditProtocol.Vote[] memory votes) {
        votes = new AuditProtocol.Vote[](1);
        votes[0] = v;
    }

    /// @dev What `operator` commits for `votes` under `salt` in `epoch` (AuditProtocol.commitmentOf).
    function _commitmentOf(uint256 epoch, address operator, bytes32 salt, AuditProtocol.Vote[] memory votes)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(epoch, operator, salt, votes));
    }

    /// @dev `operator` commits `votes` (sorted by target, then license) under `salt` for the current epoch `epoch`.
    function _commitVotes(address operator, uint256 epoch, bytes32 salt, AuditProtocol.Vote[] memory votes)
        internal
        returns (bytes32 root)
    {
        root = _commitmentOf(epoch, operator, salt, votes);
        vm.prank(operator);
        protocol.commit(epoch, root);
    }

    /// @dev `operator` reveals `votes` under `salt` for `epoch` (in its reveal window).
    function _revealVotes(address operator, uint256 epoch, bytes32 salt, AuditProtocol.Vote[] memory votes) internal {
        vm.prank(operator);
        protocol.reveal(epoch, operator, salt, votes);
    }

    /// @dev The index of `operator` in per-operator records (1-based registration order).
    function _opIndex(address operator) internal view returns (uint256 index) {
        (index,) = registry.operatorIndexOf(operator);
    }

    /// @dev A governance proposal of one call of `data` to `target`, no value.
    function _singleCall(address target, bytes memory data)
        internal
        pure
        returns (address[] memory t, uint256[] memory v, bytes[] memory c)
    {
        t = new address[](1);
        v = new uint256[](1);
        c = new bytes[](1);
        t[0] = target;
        c[0] = data;
    }

    function _one(uint256 x) internal pure returns (uint256[] memory a) {
        a = new uint256[](1);
        a[0] = x;
    }
}

/// @notice Five operators with one license each (owned by `owner`), one EVM target, emission funded, and
///         committees of 16 so every license sits on every committee: the set-up of the M4 and M6 reviews' tests.
abstract contract FiveSoloOperators is Deployed {
    uint8 internal constant OK = 1;
    uint8 internal constant FAULT = 2;
    uint8 internal constant UNREACHABLE = 3;
    uint8 internal constant INCONCLUSIVE = 4;

    address internal owner = makeAddr("owner");
    address[] internal ops;
    uint256[] internal ids;
    uint256 internal t;

    /// @dev Seeds the operators' keys, so each suite has its own addresses.
    function _operatorTag() internal pure virtual returns (string memory);

    function setUp() public virtual {
        _deploy();
        _fundEmission(100_000 ether);
        for (uint256 i; i < 5; ++i) {
            address o = vm.addr(uint256(keccak256(abi.encode(_operatorTag(), i))));
            ops.push(o);
            ids.push(_operatorWithLicenses(o, 1000, owner, 1)[0]);
        }
        t = _addTarget(1);
        vm.prank(address(timelock));
        protocol.setParams(AuditProtocol.Params(15, 16, 3, 16)); // everyone sits on every committee
    }
}
