// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

/// @title TargetRegistry
/// @notice The nodes of the monitored network that auditors check, and the sealed traps among them
///         (PROTOCOL.md section 9).
/// @dev Enabling or disabling a target takes effect from the first epoch that starts after the change, so the
///      duties of an epoch in progress never move. Every change is checkpointed, so the status of any past
///      epoch stays what it was (misses are reported epochs later). Traps look like any other target; only
///      the keeper knows.
contract TargetRegistry is Ownable {
    using Checkpoints for Checkpoints.Trace208;

    /// @notice Target kinds.
    uint8 public constant KIND_EVM_RPC = 1;
    uint8 public constant KIND_COMETBFT = 2;
    uint8 public constant KIND_ZGS_STORAGE = 3;
    uint8 public constant KIND_DA_SIGNER = 4;
    uint8 public constant KIND_MODEL = 5;

    /// @notice Verdict codes a trap's sealed outcome may take.
    uint8 public constant OK = 1;
    uint8 public constant FAULT = 2;
    uint8 public constant UNREACHABLE = 3;

    struct Target {
        uint8 kind;
        bool enabled; // status in epochs starting after `changedAtBlock`
        bool enabledBefore; // status in epochs starting after the previous change, up to `changedAtBlock`
        uint64 changedAtBlock; // the latest change (`isEnabledAt` reads the full history)
        string endpoint;
        bytes identity;
    }

    struct Trap {
        bytes32 sealHash; // keccak256(abi.encode(targetId, outcome, salt))
        uint8 outcome; // 0 until revealed
    }

    /// @notice The account that may add targets and seal and reveal traps.
    address public trapKeeper;
    Target[] private _targets;
    mapping(uint256 => Trap) public traps;
    /// @dev Per target, every status change: (block of the change, 1 enabled / 0 disabled).
    mapping(uint256 => Checkpoints.Trace208) private _history;

    error InvalidKind(uint8 kind);
    error UnknownTarget(uint256 targetId);
    error NotKeeper(address caller);
    error NotOwnerOrKeeper(address caller);
    error AlreadySealed(uint256 targetId);
    error NotSealed(uint256 targetId);
    error AlreadyRevealed(uint256 targetId);
    error BadTrapReveal(uint256 targetId);
    error InvalidOutcome(uint8 outcome);

    event TargetAdded(uint256 indexed targetId, uint8 kind, string endpoint, bytes identity);
    event TargetEnabled(uint256 indexed targetId, bool enabled, uint256 fromBlock);
    event TrapKeeperSet(address keeper);
    event TrapSealed(uint256 indexed targetId, bytes32 sealHash);
    event TrapRevealed(uint256 indexed targetId, uint8 outcome);

    constructor(address owner_, address trapKeeper_) Ownable(owner_) {
        trapKeeper = trapKeeper_;
        emit TrapKeeperSet(trapKeeper_);
    }

    modifier onlyKeeper() {
        if (msg.sender != trapKeeper) revert NotKeeper(msg.sender);
        _;
    }

    /// @notice Register a target, enabled from the next epoch. Governance or the trap keeper (whose
    ///         targets must look ordinary). Returns its id (ids start at 0).
    /// @param identity what the target must prove it is: kind-specific (chain id and genesis hash; flow
    ///        contract address; model baseline hash; ...).
    function addTarget(uint8 kind, string calldata endpoint, bytes calldata identity)
        external
        returns (uint256 targetId)
    {
        if (msg.sender != owner() && msg.sender != trapKeeper) revert NotOwnerOrKeeper(msg.sender);
        if (kind < KIND_EVM_RPC || kind > KIND_MODEL) revert InvalidKind(kind);
        targetId = _targets.length;
        _targets.push(Target(kind, true, false, uint64(block.number), endpoint, identity));
        _history[targetId].push(uint48(block.number), 1);
        emit TargetAdded(targetId, kind, endpoint, identity);
        emit TargetEnabled(targetId, true, block.number);
    }

    /// @notice Enable or disable a target from the next epoch on (governance).
    function setTargetEnabled(uint256 targetId, bool enabled) external onlyOwner {
        Target storage t = _target(targetId);
        // The summary returned by getTarget; the checkpoint below is what isEnabledAt reads.
        t.enabledBefore = t.changedAtBlock < block.number ? t.enabled : t.enabledBefore;
        t.enabled = enabled;
        t.changedAtBlock = uint64(block.number);
        _history[targetId].push(uint48(block.number), enabled ? 1 : 0);
        emit TargetEnabled(targetId, enabled, block.number);
    }

    function setTrapKeeper(address keeper) external onlyOwner {
        trapKeeper = keeper;
        emit TrapKeeperSet(keeper);
    }

    /// @notice Seal a trap's known outcome: `sealHash = keccak256(abi.encode(targetId, outcome, salt))`.
    function sealTrap(uint256 targetId, bytes32 sealHash) external onlyKeeper {
        _target(targetId);
        if (traps[targetId].sealHash != bytes32(0)) revert AlreadySealed(targetId);
        traps[targetId].sealHash = sealHash;
        emit TrapSealed(targetId, sealHash);
    }

    /// @notice Reveal a trap: `outcome` becomes the truth for every epoch of the target not yet settled.
    function revealTrap(uint256 targetId, uint8 outcome, bytes32 salt) external onlyKeeper {
        Trap storage trap = traps[targetId];
        if (trap.sealHash == bytes32(0)) revert NotSealed(targetId);
        if (trap.outcome != 0) revert AlreadyRevealed(targetId);
        if (outcome < OK || outcome > UNREACHABLE) revert InvalidOutcome(outcome);
        if (keccak256(abi.encode(targetId, outcome, salt)) != trap.sealHash) revert BadTrapReveal(targetId);
        trap.outcome = outcome;
        emit TrapRevealed(targetId, outcome);
    }

    // ----------------------------------------------------------------------------------------- views

    function targetCount() external view returns (uint256) {
        return _targets.length;
    }

    function getTarget(uint256 targetId) external view returns (Target memory) {
        return _target(targetId);
    }

    /// @notice Whether `targetId` counts in an epoch that starts at block `epochStartBlock`: its status after
    ///         the last change made strictly before that block.
    function isEnabledAt(uint256 targetId, uint256 epochStartBlock) public view returns (bool) {
        if (targetId >= _targets.length || epochStartBlock == 0) return false;
        uint256 lastBlock = epochStartBlock - 1;
        if (lastBlock > type(uint48).max) lastBlock = type(uint48).max;
        return _history[targetId].upperLookupRecent(uint48(lastBlock)) == 1;
    }

    /// @notice Ids of every target enabled in the epoch starting at `epochStartBlock` (for nodes; O(targets)).
    function enabledTargetsAt(uint256 epochStartBlock) external view returns (uint256[] memory ids) {
        uint256 n;
        ids = new uint256[](_targets.length);
        for (uint256 i; i < _targets.length; ++i) {
            if (isEnabledAt(i, epochStartBlock)) ids[n++] = i;
        }
        assembly {
            mstore(ids, n)
        }
    }

    /// @notice A revealed trap's outcome, or 0 if `targetId` is not a revealed trap.
    function trapOutcome(uint256 targetId) external view returns (uint8) {
        return traps[targetId].outcome;
    }

    function _target(uint256 targetId) internal view returns (Target storage) {
        if (targetId >= _targets.length) revert UnknownTarget(targetId);
        return _targets[targetId];
    }
}
