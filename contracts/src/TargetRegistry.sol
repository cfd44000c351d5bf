// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";

/// @title TargetRegistry
/// @notice The nodes of the monitored network that auditors check, and the sealed traps among them
///         (PROTOCOL.md section 9; trap rules: docs/protocol.md, "Traps").
/// @dev Enabling or disabling a target takes effect from the first epoch that starts after the change, so the
///      duties of an epoch in progress never move. Every change is checkpointed, so the status of any past
///      epoch stays what it was (misses are reported epochs later).
/// @dev Traps. Every target, trap or not, is added by the owner (governance, through the timelock): the trap
///      keeper proposes its traps like anyone else, and nothing in a target's record or events marks a trap.
///      Before its trap is registered the keeper posts an anonymous seal,
///      `keccak256(abi.encode(targetId, outcome, salt))` for the id the trap will get (ids are sequential);
///      the registry keys it by the hash only. A seal judges a target only if it was posted before that
///      target's registration (the keeper cannot overrule a committee on a target already registered), at most
///      `sealCap()` seals are live at once, and a trap must be revealed within `trapRevealBlocks` of its
///      target's registration. A seal neither revealed nor cancelled within `sealTtlBlocks` expires: anyone
///      may close it, which dismisses the keeper that posted it (withholding a trap, or posting two seals for
///      one target and revealing the convenient one, costs the keeper its seat).
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

    /// @notice Seal states.
    uint8 public constant SEAL_LIVE = 1;
    uint8 public constant SEAL_REVEALED = 2;
    uint8 public constant SEAL_CLOSED = 3; // cancelled or expired

    struct Target {
        uint8 kind;
        bool enabled; // status in epochs starting after `changedAtBlock`
        bool enabledBefore; // status in epochs starting after the previous change, up to `changedAtBlock`
        uint64 changedAtBlock; // the latest change (`isEnabledAt` reads the full history)
        string endpoint;
        bytes identity;
    }

    /// @dev A posted seal: nothing in it names a target.
    struct Seal {
        uint64 postedAt; // block
        uint64 targetsAtPost; // targetCount() when posted: only ids >= this may open it
        uint32 keeperTerm; // the keeper term it was posted in (`keeperTerm` when posted)
        uint8 state; // 0 never posted, SEAL_LIVE, SEAL_REVEALED, SEAL_CLOSED
    }

    /// @notice The account that seals and reveals traps (it adds no targets: governance does).
    address public trapKeeper;
    /// @notice Incremented at every keeper change; a seal expiring dismisses the keeper only in its own term.
    uint32 public keeperTerm;
    /// @notice Live seals at most: `max(1, targetCount * trapCapBps / 10_000)`.
    uint16 public trapCapBps = 500;
    /// @notice A live seal expires this many blocks after it was posted.
    uint64 public sealTtlBlocks = 100_800;
    /// @notice A trap must be revealed at most this many blocks after its target's registration.
    uint64 public trapRevealBlocks = 7_200;
    /// @notice Seals posted and neither revealed nor closed.
    uint256 public liveSeals;
    /// @notice Seals by hash.
    mapping(bytes32 => Seal) public seals;

    Target[] private _targets;
    /// @dev Per target, every status change: (block of the change, 1 enabled / 0 disabled). The first one is the
    ///      registration.
    mapping(uint256 => Checkpoints.Trace208) private _history;
    /// @dev Revealed traps' outcomes (0: not a revealed trap).
    mapping(uint256 => uint8) private _trapOutcomes;

    error InvalidKind(uint8 kind);
    error UnknownTarget(uint256 targetId);
    error NotKeeper(address caller);
    error SealExists(bytes32 seal);
    error SealCapReached(uint256 cap);
    error NotLive(bytes32 seal);
    error BadTrapReveal(uint256 targetId);
    error SealPostdatesTarget(uint256 targetId);
    error AlreadyRevealed(uint256 targetId);
    error RevealTooLate(uint256 targetId, uint256 deadline);
    error InvalidOutcome(uint8 outcome);
    error SealNotExpired(bytes32 seal, uint256 expiresAt);
    error SealInUse(bytes32 seal);
    error InvalidTrapParams();

    event TargetAdded(uint256 indexed targetId, uint8 kind, string endpoint, bytes identity);
    event TargetEnabled(uint256 indexed targetId, bool enabled, uint256 fromBlock);
    event TrapKeeperSet(address keeper);
    event TrapParamsSet(uint16 capBps, uint64 sealTtlBlocks, uint64 trapRevealBlocks);
    /// @notice An anonymous seal was posted (it names no target).
    event TrapSealed(bytes32 indexed seal);
    event TrapRevealed(uint256 indexed targetId, uint8 outcome, bytes32 seal);
    /// @notice A live seal was closed unrevealed: cancelled by the keeper, or expired (which dismisses the keeper).
    event SealClosed(bytes32 indexed seal, bool expired);

    constructor(address owner_, address trapKeeper_) Ownable(owner_) {
        trapKeeper = trapKeeper_;
        emit TrapKeeperSet(trapKeeper_);
    }

    modifier onlyKeeper() {
        if (msg.sender != trapKeeper || msg.sender == address(0)) revert NotKeeper(msg.sender);
        _;
    }

    /// @notice Register a target, enabled from the next epoch (governance only: traps come this way too).
    ///         Returns its id (ids start at 0).
    /// @param identity what the target must prove it is: kind-specific (chain id and genesis hash; flow
    ///        contract address; model baseline hash; ...).
    function addTarget(uint8 kind, string calldata endpoint, bytes calldata identity)
        external
        onlyOwner
        returns (uint256 targetId)
    {
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

    /// @notice Appoint the trap keeper (governance); a new term starts.
    function setTrapKeeper(address keeper) external onlyOwner {
        trapKeeper = keeper;
        ++keeperTerm;
        emit TrapKeeperSet(keeper);
    }

    /// @notice The trap rules (governance): the live-seal cap in basis points of the target count (at least one
    ///         seal is always allowed), a seal's lifetime, and the reveal deadline after a trap's registration
    ///         (set it to cover the trap's first epoch and that epoch's reveal window: about two epochs plus
    ///         `revealBlocks`; the seal lifetime must also cover the governance delay before registration).
    function setTrapParams(uint16 capBps, uint64 sealTtl, uint64 revealBlocks_) external onlyOwner {
        if (capBps > 10_000 || revealBlocks_ == 0 || sealTtl < revealBlocks_) revert InvalidTrapParams();
        trapCapBps = capBps;
        sealTtlBlocks = sealTtl;
        trapRevealBlocks = revealBlocks_;
        emit TrapParamsSet(capBps, sealTtl, revealBlocks_);
    }

    /// @notice Post an anonymous seal, `keccak256(abi.encode(targetId, outcome, salt))`, for a trap target the
    ///         keeper has proposed and governance has not registered yet (`targetId` is the id it will get).
    function sealTrap(bytes32 seal) external onlyKeeper {
        if (seals[seal].state != 0) revert SealExists(seal);
        uint256 cap = sealCap();
        if (liveSeals >= cap) revert SealCapReached(cap);
        seals[seal] = Seal(uint64(block.number), uint64(_targets.length), keeperTerm, SEAL_LIVE);
        ++liveSeals;
        emit TrapSealed(seal);
    }

    /// @notice Reveal a trap: `outcome` becomes the truth for every epoch of the target settled from now on.
    ///         The seal must be live and posted before the target's registration, and the reveal must come
    ///         within `trapRevealBlocks` of that registration (and before the seal expires).
    function revealTrap(uint256 targetId, uint8 outcome, bytes32 salt) external onlyKeeper {
        if (outcome < OK || outcome > UNREACHABLE) revert InvalidOutcome(outcome);
        bytes32 h = keccak256(abi.encode(targetId, outcome, salt));
        Seal storage s = seals[h];
        if (s.state != SEAL_LIVE) revert BadTrapReveal(targetId);
        if (targetId >= _targets.length) revert UnknownTarget(targetId);
        if (targetId < s.targetsAtPost) revert SealPostdatesTarget(targetId);
        if (_trapOutcomes[targetId] != 0) revert AlreadyRevealed(targetId);
        uint256 deadline = registeredAt(targetId) + trapRevealBlocks;
        uint256 expiry = uint256(s.postedAt) + sealTtlBlocks;
        if (expiry < deadline) deadline = expiry;
        if (block.number > deadline) revert RevealTooLate(targetId, deadline);
        s.state = SEAL_REVEALED;
        --liveSeals;
        _trapOutcomes[targetId] = outcome;
        emit TrapRevealed(targetId, outcome, h);
    }

    /// @notice Withdraw a live seal while no target was registered since it was posted (a trap proposal that
    ///         failed): no committee can have been judged by it.
    function cancelSeal(bytes32 seal) external onlyKeeper {
        Seal storage s = seals[seal];
        if (s.state != SEAL_LIVE) revert NotLive(seal);
        if (_targets.length != s.targetsAtPost) revert SealInUse(seal);
        s.state = SEAL_CLOSED;
        --liveSeals;
        emit SealClosed(seal, false);
    }

    /// @notice Close a live seal past its lifetime (anyone). If the keeper that posted it still holds the
    ///         office, it is dismissed: a trap it sealed went unrevealed.
    function expireSeal(bytes32 seal) external {
        Seal storage s = seals[seal];
        if (s.state != SEAL_LIVE) revert NotLive(seal);
        uint256 expiresAt = uint256(s.postedAt) + sealTtlBlocks;
        if (block.number <= expiresAt) revert SealNotExpired(seal, expiresAt);
        s.state = SEAL_CLOSED;
        --liveSeals;
        emit SealClosed(seal, true);
        if (s.keeperTerm == keeperTerm && trapKeeper != address(0)) {
            trapKeeper = address(0);
            ++keeperTerm;
            emit TrapKeeperSet(address(0));
        }
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
        return _trapOutcomes[targetId];
    }

    /// @notice How many seals may be live at once: `max(1, targetCount * trapCapBps / 10_000)`.
    function sealCap() public view returns (uint256 cap) {
        cap = _targets.length * trapCapBps / 10_000;
        if (cap == 0) cap = 1;
    }

    /// @notice The block `targetId` was registered in.
    function registeredAt(uint256 targetId) public view returns (uint256) {
        _target(targetId);
        return _history[targetId].at(0)._key;
    }

    function _target(uint256 targetId) internal view returns (Target storage) {
        if (targetId >= _targets.length) revert UnknownTarget(targetId);
        return _targets[targetId];
    }
}
