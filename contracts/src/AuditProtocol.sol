// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {SwapOrNot} from "./lib/SwapOrNot.sol";

interface IDelegations {
    function operatorIndexOf(address operator) external view returns (uint256 index, uint16 commissionBps);
    function operatorOfAt(uint256 tokenId, uint256 epoch) external view returns (uint256);
    function listedCountAt(uint256 index, uint256 epoch) external view returns (uint256);
    function positionAt(uint256 tokenId, uint256 epoch) external view returns (uint256 listed, uint256 position);
    function licenseAt(uint256 index, uint256 epoch) external view returns (uint256);
}

interface ITargets {
    function isEnabledAt(uint256 targetId, uint256 epochStartBlock) external view returns (bool);
    function trapOutcome(uint256 targetId) external view returns (uint8);
    function targetCount() external view returns (uint256);
}

interface IPresenceVault {
    function recordPresence(address operator, uint256 operatorIndex, uint16 commissionBps, uint256 count, uint256 epoch)
        external;
    function penalize(uint256[] calldata tokenIds, uint256 epoch, uint8 kind, address reporter) external;
    function activeCount(uint256 epoch) external view returns (uint256);
    function isActive(uint256 tokenId, uint256 epoch) external view returns (bool);
    function isPresent(uint256 operatorIndex, uint256 epoch) external view returns (bool);
}

/// @dev The referee court of MODEL targets (RefereeCourt.sol), if governance set one.
interface IRefereeCourt {
    function ruling(uint256 epoch, uint256 targetId, uint256 revealEnd)
        external
        view
        returns (uint256 opensAt, uint8 verdict, bytes32 root);
}

/// @title AuditProtocol
/// @notice Epochs, seeds, heartbeats, committees, commit/reveal of verdicts, settlement and misses
///         (PROTOCOL.md sections 5 to 7; committees and seeds as changed by issue 16, docs/protocol.md).
/// @dev Committees are exact: the OperatorRegistry's list of epoch e (licenses Delegated before e began) is
///      permuted by the swap-or-not shuffle under seed(e); target t's seats are t*k .. t*k+k-1 modulo the list
///      length n (k = committeeSize), so every target has k distinct licenses when n >= k, everyone when
///      n <= k. A seated license that is not active in e (no heartbeat) has no duty: its seat stays empty.
/// @dev Storage per (epoch, target) is a tally of three slots: slot 0 packs the vote counts, the settled
///      outcome and the first 5 revealers; slots 1 and 2 hold 6 revealers each. A revealer is
///      (uint32 license, uint8 verdict). So license ids must fit in 32 bits and `maxCommittee <= 16`.
///      Presence and commitments are per operator (issue 16): `heartbeat()` makes every license listed under the
///      caller active; `commit` stores one Merkle root over the openings of the caller's licenses (one of two
///      slots per operator, by epoch parity), and each license's opening is revealed with its proof. A license's
///      last revealed epoch is kept in one slot, so steady-state commits and reveals only rewrite non-zero slots.
contract AuditProtocol is Ownable {
    /// @notice Verdict and outcome codes.
    uint8 public constant OK = 1;
    uint8 public constant FAULT = 2;
    uint8 public constant UNREACHABLE = 3;
    uint8 public constant INCONCLUSIVE = 4;

    uint8 public constant PENALTY_MISS = 1;
    uint8 public constant PENALTY_DISAGREE = 2;
    uint8 public constant PENALTY_TRAP = 3;

    /// @notice Hard cap on `maxCommittee` (the tally holds 16 revealers).
    uint256 public constant MAX_COMMITTEE_CAP = 16;

    /// @notice Epoch `anchorEpoch` starts at `anchorBlock`; every epoch after it lasts `length` blocks.
    struct Clock {
        uint64 anchorBlock;
        uint32 anchorEpoch;
        uint32 length;
    }

    struct Params {
        uint32 revealBlocks;
        uint16 committeeSize;
        uint16 minReveals;
        uint16 maxCommittee;
    }

    /// @notice One license's reveal for `revealMany`: its opening and the opening's proof against its
    ///         operator's root.
    struct Reveal {
        uint256 license;
        uint256[] targetIds;
        uint8[] verdicts;
        bytes32[] evidenceRoots;
        bytes32 salt;
        bytes32[] proof;
    }

    /// @dev What every reveal of one epoch checks against.
    struct RevealContext {
        bytes32 seed;
        uint256 startBlock;
        uint256 maxCommittee;
        uint256 committeeSize;
        uint256 listed; // the epoch's list length
        uint256 depth; // the depth of the epoch's commitment trees: the least d with 2**d >= listed
        uint256[] pivots; // the shuffle's pivots for the epoch's list (empty when everyone sits everywhere)
    }

    IDelegations public immutable registry;
    ITargets public immutable targets;
    IPresenceVault public immutable vault;

    Clock public clock;
    /// @notice The clock before the latest epoch-length change (applies to blocks from its `anchorBlock` up to
    ///         `clock.anchorBlock`; blocks before it use the older clocks).
    Clock public previousClock;
    Params public params;
    /// @notice The referee court (zero: none); set by governance.
    IRefereeCourt public court;

    /// @notice The most recently recorded seed (the genesis seed until epoch 0 is touched).
    bytes32 public lastSeed;
    mapping(uint256 => bytes32) private _seeds;
    /// @dev committeeSize of each epoch, fixed at its first touch (a governance change applies from the next).
    mapping(uint256 => uint256) private _committeeSizes;
    /// @dev Per operator index, the Merkle root of its licenses' openings, by epoch parity.
    mapping(uint256 => bytes32[2]) private _roots;
    /// @dev Per license, its last revealed epoch + 1.
    mapping(uint256 => uint256) private _revealedPlus1;
    mapping(uint256 => uint256[3]) private _tallies;
    /// @dev First evidence root revealed per (epoch, target) for FAULT [0] and UNREACHABLE [1].
    mapping(uint256 => bytes32[2]) private _evidence;
    /// @notice Whether a miss of (epoch, license, target) was reported: keyed by keccak256(abi.encode(e, l, t)).
    mapping(bytes32 => bool) public missReported;
    /// @dev The clocks before `previousClock`, oldest (genesis) first: each applies up to the next one's anchor.
    Clock[] private _olderClocks;

    error InvalidParams();
    error NotStarted();
    error ClockChangePending(uint256 effectiveBlock);
    error WrongEpoch(uint256 given, uint256 current);
    error InvalidCommitment();
    error NotOperator(address caller);
    error NotPresent(address operator, uint256 epoch);
    error RevealWindowClosed(uint256 epoch, uint256 opensAt, uint256 closesAt);
    error RevealWindowOpen(uint256 epoch, uint256 closesAt);
    error LengthMismatch();
    error NoCommitment(uint256 epoch, uint256 license);
    error AlreadyRevealed(uint256 epoch, uint256 license);
    error TargetsNotSorted(uint256 index);
    error InvalidVerdict(uint256 index, uint8 verdict);
    error NotAssigned(uint256 epoch, uint256 license, uint256 targetId);
    error IdTooLarge(uint256 id);
    error AlreadySettled(uint256 epoch, uint256 targetId);
    error UnknownTarget(uint256 targetId);
    error MissAlreadyReported(uint256 epoch, uint256 license, uint256 targetId);
    error NotMissed(uint256 epoch, uint256 license, uint256 targetId);
    error CommitteeFull(uint256 epoch, uint256 targetId);
    error RefereeWindowOpen(uint256 epoch, uint256 targetId, uint256 opensAt);

    event ClockSet(uint256 anchorBlock, uint256 anchorEpoch, uint256 length);
    event ParamsSet(Params params);
    event SeedRecorded(uint256 indexed epoch, bytes32 seed);
    event Heartbeat(uint256 indexed epoch, address indexed operator, uint256 licenses);
    /// @notice `operator` committed `root`, the Merkle root of its licenses' openings for `epoch`.
    event Committed(uint256 indexed epoch, address indexed operator, bytes32 root);
    event Revealed(
        uint256 indexed epoch, uint256 indexed license, uint256[] targetIds, uint8[] verdicts, bytes32[] evidenceRoots
    );
    event VoteDropped(uint256 indexed epoch, uint256 indexed targetId, uint256 indexed license);
    event TargetSettled(uint256 indexed epoch, uint256 indexed targetId, uint8 outcome, uint8 ok, uint8 fault, uint8 unreachable);
    event ViolationFlagged(uint256 indexed epoch, uint256 indexed targetId, uint8 outcome, bytes32 evidenceRoot);
    event CourtSet(address court);
    /// @notice The referees' FAULT turned an OK or INCONCLUSIVE tally into FAULT (no disagreement penalties).
    event RefereeDecided(uint256 indexed epoch, uint256 indexed targetId, bytes32 evidenceRoot);
    event MissReported(uint256 indexed epoch, uint256 indexed license, uint256 indexed targetId, address reporter);

    constructor(
        IDelegations registry_,
        ITargets targets_,
        IPresenceVault vault_,
        uint256 genesisBlock,
        uint32 epochLength_,
        bytes32 genesisSeed,
        Params memory params_,
        address owner_
    ) Ownable(owner_) {
        if (genesisBlock > block.number || epochLength_ == 0 || genesisBlock > type(uint64).max) revert InvalidParams();
        registry = registry_;
        targets = targets_;
        vault = vault_;
        clock = Clock(uint64(genesisBlock), 0, epochLength_);
        previousClock = clock;
        lastSeed = genesisSeed;
        emit ClockSet(genesisBlock, 0, epochLength_);
        _setParams(params_, epochLength_);
    }

    // ------------------------------------------------------------------------------------------ clock

    /// @notice The epoch block `blockNumber` belongs to.
    function epochAt(uint256 blockNumber) public view returns (uint256) {
        Clock memory c = clock;
        if (blockNumber < c.anchorBlock) {
            c = previousClock;
            if (blockNumber < c.anchorBlock) {
                uint256 i = _olderClocks.length;
                while (true) {
                    if (i == 0) revert NotStarted();
                    c = _olderClocks[--i];
                    if (blockNumber >= c.anchorBlock) break;
                }
            }
        }
        return c.anchorEpoch + (blockNumber - c.anchorBlock) / c.length;
    }

    function currentEpoch() public view returns (uint256) {
        return epochAt(block.number);
    }

    /// @notice First block of epoch `epoch`.
    function epochStartBlock(uint256 epoch) public view returns (uint256) {
        Clock memory c = clock;
        if (epoch < c.anchorEpoch) {
            c = previousClock;
            // The genesis clock (anchor epoch 0) is the oldest, so the search always ends.
            for (uint256 i = _olderClocks.length; epoch < c.anchorEpoch;) {
                c = _olderClocks[--i];
            }
        }
        return c.anchorBlock + (epoch - c.anchorEpoch) * c.length;
    }

    /// @notice Reveals for `epoch` are accepted in blocks [revealStart, revealEnd).
    function revealWindow(uint256 epoch) public view returns (uint256 revealStart, uint256 revealEnd) {
        revealStart = epochStartBlock(epoch + 1);
        revealEnd = revealStart + params.revealBlocks;
    }

    /// @notice Epoch length in blocks (the current one).
    function epochLength() external view returns (uint256) {
        return clock.length;
    }

    // ------------------------------------------------------------------------------- seed, sortition

    /// @notice The seed of `epoch`, or zero if nothing touched that epoch yet.
    function seed(uint256 epoch) external view returns (bytes32) {
        return _seeds[epoch];
    }

    /// @notice The committee size of `epoch`: `params.committeeSize` at the epoch's first touch (0 before).
    function committeeSizeOf(uint256 epoch) external view returns (uint256) {
        return _committeeSizes[epoch];
    }

    /// @notice Whether license `license` must audit `targetId` in `epoch`: it is active in `epoch`, the target
    ///         is enabled at the epoch's start, and one of the target's seats is the license's.
    function isAssigned(uint256 epoch, uint256 license, uint256 targetId) public view returns (bool) {
        bytes32 s = _seeds[epoch];
        if (s == bytes32(0)) return false;
        if (!vault.isActive(license, epoch)) return false;
        if (!targets.isEnabledAt(targetId, epochStartBlock(epoch))) return false;
        uint256 k = _committeeSizes[epoch];
        (uint256 n, uint256 seat) = _seat(epoch, license, s, k);
        return n != 0 && _seated(seat, targetId, n, k);
    }

    /// @notice The licenses on `targetId`'s committee in `epoch`, seat by seat (empty before the epoch's seed;
    ///         whether each is active, and so audits, is `vault.isActive`).
    function committee(uint256 epoch, uint256 targetId) external view returns (uint256[] memory licenses) {
        bytes32 s = _seeds[epoch];
        if (s == bytes32(0)) return licenses;
        (uint256 n,) = registry.positionAt(0, epoch);
        uint256 k = _committeeSizes[epoch];
        if (n <= k) {
            licenses = new uint256[](n);
            for (uint256 i; i < n; ++i) {
                licenses[i] = registry.licenseAt(i, epoch);
            }
        } else {
            licenses = new uint256[](k);
            uint256 base = (targetId % n) * k;
            uint256[] memory ps = SwapOrNot.pivots(n, s);
            for (uint256 j; j < k; ++j) {
                licenses[j] = registry.licenseAt(SwapOrNot.shuffleWith((base + j) % n, n, s, ps), epoch);
            }
        }
    }

    // ---------------------------------------------------------------------------------- the epoch

    /// @notice Record this epoch's seed if nobody has yet (anyone).
    function poke() external {
        _touch();
    }

    /// @notice Make every license listed under the calling operator in the current epoch active (once per
    ///         epoch; O(1) storage whatever the number of licenses).
    function heartbeat() external {
        uint256 e = _touch();
        (uint256 op, uint16 commissionBps) = registry.operatorIndexOf(msg.sender);
        if (op == 0) revert NotOperator(msg.sender);
        uint256 count = registry.listedCountAt(op, e);
        vault.recordPresence(msg.sender, op, commissionBps, count, e);
        emit Heartbeat(e, msg.sender, count);
    }

    /// @notice Commit the caller's verdicts for the current epoch `epoch`: `root` is the root of an ordered Merkle
    ///         tree of depth d (the least d with 2**d >= the epoch's list length, `registry.listedAt(epoch)`) whose
    ///         leaf at position p is the opening of the license at list position p (`positionAt` - 1), as
    ///         `keccak256(bytes.concat(keccak256(abi.encode(epoch, license, targetIds, verdicts, evidenceRoots, salt))))`;
    ///         an inner node is `keccak256(abi.encode(left, right))` (security review N1: a position holds one
    ///         opening, so a root opens at most one per license; docs/protocol.md has the node's layout, with
    ///         zero for empty subtrees). The caller must be present in `epoch`; a later commit in the epoch
    ///         replaces the root.
    function commit(uint256 epoch, bytes32 root) external {
        uint256 e = _touch();
        if (epoch != e) revert WrongEpoch(epoch, e);
        if (root == bytes32(0)) revert InvalidCommitment();
        (uint256 op,) = registry.operatorIndexOf(msg.sender);
        if (op == 0 || !vault.isPresent(op, e)) revert NotPresent(msg.sender, e);
        _roots[op][e & 1] = root;
        emit Committed(e, msg.sender, root);
    }

    /// @notice Reveal one license's committed verdicts for `epoch` with the proof of its leaf under its operator's
    ///         root, during the first `revealBlocks` blocks of `epoch + 1`. `targetIds` strictly increasing; each
    ///         must be assigned to `license`. Anyone holding the opening may reveal it.
    function reveal(
        uint256 epoch,
        uint256 license,
        uint256[] calldata targetIds,
        uint8[] calldata verdicts,
        bytes32[] calldata evidenceRoots,
        bytes32 salt,
        bytes32[] calldata proof
    ) external {
        RevealContext memory ctx = _openReveal(epoch);
        _reveal(epoch, license, targetIds, verdicts, evidenceRoots, salt, proof, ctx);
    }

    /// @notice `reveal` for many licenses in one transaction. An entry whose license is already revealed for
    ///         `epoch` is skipped without an event (anyone may copy an opening out of a pending batch and reveal
    ///         it first: security review H1, docs/security.md); the single `reveal` still reverts AlreadyRevealed.
    function revealMany(uint256 epoch, Reveal[] calldata reveals) external {
        RevealContext memory ctx = _openReveal(epoch);
        for (uint256 i; i < reveals.length; ++i) {
            Reveal calldata r = reveals[i];
            if (_revealedPlus1[r.license] == epoch + 1) continue;
            _reveal(epoch, r.license, r.targetIds, r.verdicts, r.evidenceRoots, r.salt, r.proof, ctx);
        }
    }

    /// @notice Decide `targetId`'s outcome in `epoch` after the reveal window (and, for a MODEL target whose
    ///         baseline has referees, after the referees' window) (anyone), and debit the licenses that disagreed
    ///         with it (nobody for an INCONCLUSIVE tally: docs/protocol.md, "Verdicts"). The committee's tally
    ///         decides; a referee majority of FAULT turns an OK or INCONCLUSIVE tally into FAULT
    ///         ("referee-decided": nobody is debited for disagreeing with it).
    function settle(uint256 epoch, uint256 targetId) external returns (uint8 outcome) {
        _touch();
        (, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealEnd) revert RevealWindowOpen(epoch, revealEnd);
        if (targetId >= targets.targetCount()) revert UnknownTarget(targetId);
        (uint8 refVerdict, bytes32 refRoot) = _refereeRuling(epoch, targetId, revealEnd);
        uint256 key = _key(epoch, targetId);
        uint256 head = _tallies[key][0];
        if (uint8(head >> 32) != 0) revert AlreadySettled(epoch, targetId);

        uint8 trap = targets.trapOutcome(targetId);
        outcome = trap != 0 ? trap : _tallyOutcome(head);
        bool byReferee = trap == 0 && refVerdict == FAULT && (outcome == OK || outcome == INCONCLUSIVE);
        if (byReferee) outcome = FAULT;
        _tallies[key][0] = head | (uint256(outcome) << 32);
        emit TargetSettled(epoch, targetId, outcome, uint8(head), uint8(head >> 8), uint8(head >> 16));
        if (byReferee) {
            emit RefereeDecided(epoch, targetId, refRoot);
            emit ViolationFlagged(epoch, targetId, FAULT, refRoot);
            return outcome;
        }
        if (outcome == FAULT || outcome == UNREACHABLE) {
            emit ViolationFlagged(epoch, targetId, outcome, _evidence[key][outcome - FAULT]);
        }
        if (outcome != INCONCLUSIVE) _penalizeDisagreement(epoch, key, uint8(head >> 24), outcome, trap != 0);
    }

    /// @notice Report that `license` was assigned `targetId` in `epoch` and did not reveal it (anyone, after
    ///         the reveal window, once per (epoch, license, target)). The reporter earns a bounty.
    function reportMiss(uint256 epoch, uint256 license, uint256 targetId) external {
        _touch();
        (, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealEnd) revert RevealWindowOpen(epoch, revealEnd);
        bytes32 missKey = keccak256(abi.encode(epoch, license, targetId));
        if (missReported[missKey]) revert MissAlreadyReported(epoch, license, targetId);
        if (!isAssigned(epoch, license, targetId)) revert NotAssigned(epoch, license, targetId);
        uint256 key = _key(epoch, targetId);
        uint256 n = uint8(_tallies[key][0] >> 24);
        for (uint256 i; i < n; ++i) {
            (uint256 who,) = _revealer(key, i);
            if (who == license) revert NotMissed(epoch, license, targetId);
        }
        if (n >= params.maxCommittee) revert CommitteeFull(epoch, targetId);
        missReported[missKey] = true;
        emit MissReported(epoch, license, targetId, msg.sender);
        uint256[] memory ids = new uint256[](1);
        ids[0] = license;
        vault.penalize(ids, epoch, PENALTY_MISS, msg.sender);
    }

    // ----------------------------------------------------------------------------------------- views

    /// @notice Vote counts, reveal count and settled outcome (0 = not settled) of (`epoch`, `targetId`).
    function tally(uint256 epoch, uint256 targetId)
        external
        view
        returns (uint8 ok, uint8 fault, uint8 unreachable, uint8 reveals, uint8 outcome)
    {
        uint256 head = _tallies[_key(epoch, targetId)][0];
        return (uint8(head), uint8(head >> 8), uint8(head >> 16), uint8(head >> 24), uint8(head >> 32));
    }

    /// @notice Licenses that revealed (`epoch`, `targetId`), with their verdicts, in reveal order.
    function revealers(uint256 epoch, uint256 targetId)
        external
        view
        returns (uint256[] memory licenses, uint8[] memory verdicts)
    {
        uint256 key = _key(epoch, targetId);
        uint256 n = uint8(_tallies[key][0] >> 24);
        licenses = new uint256[](n);
        verdicts = new uint8[](n);
        for (uint256 i; i < n; ++i) {
            (licenses[i], verdicts[i]) = _revealer(key, i);
        }
    }

    /// @notice The root stored for operator `operator` for `epoch` (or for the epoch two before it: same slot).
    function rootOf(address operator, uint256 epoch) external view returns (bytes32) {
        (uint256 op,) = registry.operatorIndexOf(operator);
        return _roots[op][epoch & 1];
    }

    /// @notice Whether `license`'s opening for `epoch` was revealed.
    function isRevealed(uint256 license, uint256 epoch) external view returns (bool) {
        return _revealedPlus1[license] == epoch + 1;
    }

    /// @notice The first block in which (`epoch`, `targetId`) may be settled.
    function settleOpensAt(uint256 epoch, uint256 targetId) external view returns (uint256 opensAt) {
        (, opensAt) = revealWindow(epoch);
        IRefereeCourt c = court;
        if (address(c) != address(0)) (opensAt,,) = c.ruling(epoch, targetId, opensAt);
    }

    /// @notice The first evidence root revealed for `verdict` (FAULT or UNREACHABLE) on (`epoch`, `targetId`).
    function evidenceRoot(uint256 epoch, uint256 targetId, uint8 verdict) external view returns (bytes32) {
        if (verdict != FAULT && verdict != UNREACHABLE) return bytes32(0);
        return _evidence[_key(epoch, targetId)][verdict - FAULT];
    }

    // ------------------------------------------------------------------------------------ governance

    function setParams(Params calldata params_) external onlyOwner {
        _setParams(params_, clock.length);
    }

    /// @notice Set (or, with zero, remove) the referee court of MODEL targets.
    function setCourt(IRefereeCourt court_) external onlyOwner {
        court = court_;
        emit CourtSet(address(court_));
    }

    /// @notice Change the epoch length from the next epoch boundary on. Epoch numbers stay continuous.
    function setEpochLength(uint32 length) external onlyOwner {
        Clock memory c = clock;
        if (block.number < c.anchorBlock) revert ClockChangePending(c.anchorBlock);
        if (length == 0 || params.revealBlocks >= length) revert InvalidParams();
        uint256 next = currentEpoch() + 1;
        uint256 boundary = epochStartBlock(next);
        Clock memory prev = previousClock;
        if (prev.anchorBlock < c.anchorBlock) _olderClocks.push(prev);
        previousClock = c;
        clock = Clock(uint64(boundary), uint32(next), length);
        emit ClockSet(boundary, next, length);
    }

    // -------------------------------------------------------------------------------------- internal

    function _setParams(Params memory p, uint256 length) internal {
        if (
            p.revealBlocks == 0 || p.revealBlocks >= length || p.committeeSize == 0 || p.maxCommittee == 0
                || p.maxCommittee > MAX_COMMITTEE_CAP || p.minReveals > p.maxCommittee || p.committeeSize > p.maxCommittee
        ) revert InvalidParams();
        params = p;
        emit ParamsSet(p);
    }

    /// @dev The referees' verdict on (epoch, targetId) and its root; reverts while their window is open.
    function _refereeRuling(uint256 epoch, uint256 targetId, uint256 revealEnd)
        internal
        view
        returns (uint8 verdict, bytes32 root)
    {
        IRefereeCourt c = court;
        if (address(c) == address(0)) return (0, bytes32(0));
        uint256 opensAt;
        (opensAt, verdict, root) = c.ruling(epoch, targetId, revealEnd);
        if (block.number < opensAt) revert RefereeWindowOpen(epoch, targetId, opensAt);
    }

    /// @dev The committee's outcome from a tally head (PROTOCOL.md section 7, as changed by security review M4):
    ///      with >= minReveals votes, OK if >= 2/3 of them are OK; "not OK" if >= 2/3 are FAULT and UNREACHABLE
    ///      together: FAULT when FAULT votes >= UNREACHABLE votes, else UNREACHABLE; INCONCLUSIVE otherwise.
    function _tallyOutcome(uint256 head) internal view returns (uint8) {
        uint256 ok = uint8(head);
        uint256 fault = uint8(head >> 8);
        uint256 unreachable = uint8(head >> 16);
        uint256 n = uint8(head >> 24);
        if (n < params.minReveals || n == 0) return INCONCLUSIVE;
        if (ok * 3 >= 2 * n) return OK;
        if ((fault + unreachable) * 3 >= 2 * n) return fault >= unreachable ? FAULT : UNREACHABLE;
        return INCONCLUSIVE;
    }

    /// @dev Records the epoch's seed at its first touch: keccak256(lastSeed, hash of the block before the epoch,
    ///      e). That block is fixed before the epoch begins, so no caller chooses it (issue 16); it is readable
    ///      for 256 blocks, after which the block before the touch stands in (an epoch nobody touched for that
    ///      long). What its proposer controls, and what nobody does: docs/protocol.md.
    function _touch() internal returns (uint256 e) {
        e = currentEpoch();
        if (_seeds[e] == bytes32(0)) {
            uint256 start = epochStartBlock(e);
            bytes32 h = start == 0 ? bytes32(0) : blockhash(start - 1);
            if (h == bytes32(0)) h = blockhash(block.number - 1);
            bytes32 s = keccak256(abi.encode(lastSeed, h, e));
            _seeds[e] = s;
            _committeeSizes[e] = params.committeeSize;
            lastSeed = s;
            emit SeedRecorded(e, s);
        }
    }

    function _openReveal(uint256 epoch) internal returns (RevealContext memory ctx) {
        _touch();
        (uint256 revealStart, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealStart || block.number >= revealEnd) {
            revert RevealWindowClosed(epoch, revealStart, revealEnd);
        }
        bytes32 s = _seeds[epoch];
        uint256 k = _committeeSizes[epoch];
        (uint256 n,) = registry.positionAt(0, epoch);
        uint256[] memory ps;
        if (n > k) ps = SwapOrNot.pivots(n, s);
        uint256 depth;
        while ((uint256(1) << depth) < n) ++depth;
        ctx = RevealContext(s, epochStartBlock(epoch), params.maxCommittee, k, n, depth, ps);
    }

    function _reveal(
        uint256 epoch,
        uint256 license,
        uint256[] calldata targetIds,
        uint8[] calldata verdicts,
        bytes32[] calldata evidenceRoots,
        bytes32 salt,
        bytes32[] calldata proof,
        RevealContext memory ctx
    ) internal {
        if (verdicts.length != targetIds.length || evidenceRoots.length != targetIds.length) revert LengthMismatch();
        if (license > type(uint32).max) revert IdTooLarge(license);
        if (_revealedPlus1[license] == epoch + 1) revert AlreadyRevealed(epoch, license);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(epoch, license, targetIds, verdicts, evidenceRoots, salt))));
        bytes32 root = _roots[registry.operatorOfAt(license, epoch)][epoch & 1];
        (, uint256 position) = registry.positionAt(license, epoch);
        // The leaf sits at the license's list position (security review N1): one opening per license per root.
        if (root == bytes32(0) || position == 0 || !_verifyAt(proof, root, leaf, position - 1, ctx.depth)) {
            revert NoCommitment(epoch, license);
        }
        _revealedPlus1[license] = epoch + 1;
        _countVotes(epoch, license, position, targetIds, verdicts, evidenceRoots, ctx);
        emit Revealed(epoch, license, targetIds, verdicts, evidenceRoots);
    }

    function _countVotes(
        uint256 epoch,
        uint256 license,
        uint256 position,
        uint256[] calldata targetIds,
        uint8[] calldata verdicts,
        bytes32[] calldata evidenceRoots,
        RevealContext memory ctx
    ) internal {
        if (targetIds.length == 0) return;
        uint256 n = position == 0 ? 0 : ctx.listed;
        uint256 seat;
        if (n > ctx.committeeSize) seat = SwapOrNot.unshuffleWith(position - 1, n, ctx.seed, ctx.pivots);
        for (uint256 i; i < targetIds.length; ++i) {
            uint256 t = targetIds[i];
            if (i > 0 && t <= targetIds[i - 1]) revert TargetsNotSorted(i);
            if (verdicts[i] < OK || verdicts[i] > UNREACHABLE) revert InvalidVerdict(i, verdicts[i]);
            if (n == 0 || !_seated(seat, t, n, ctx.committeeSize) || !targets.isEnabledAt(t, ctx.startBlock)) {
                revert NotAssigned(epoch, license, t);
            }
            _recordVote(epoch, t, license, verdicts[i], evidenceRoots[i], ctx.maxCommittee);
        }
    }

    function _recordVote(uint256 epoch, uint256 t, uint256 license, uint8 v, bytes32 root, uint256 maxCommittee)
        internal
    {
        uint256 key = _key(epoch, t);
        uint256[3] storage slots = _tallies[key];
        uint256 head = slots[0];
        uint256 n = uint8(head >> 24);
        if (n >= maxCommittee) {
            emit VoteDropped(epoch, t, license);
            return;
        }
        uint256 entry = license | (uint256(v) << 32);
        head += (uint256(1) << (8 * (v - 1))) + (uint256(1) << 24);
        if (n < 5) {
            head |= entry << (40 + 40 * n);
        } else {
            uint256 slot = n < 11 ? 1 : 2;
            uint256 pos = n < 11 ? n - 5 : n - 11;
            slots[slot] |= entry << (40 * pos);
        }
        slots[0] = head;
        if (v != OK) {
            bytes32[2] storage ev = _evidence[key];
            if (ev[v - FAULT] == bytes32(0)) ev[v - FAULT] = root;
        }
    }

    /// @dev Whether `proof` (exactly `depth` siblings, bottom up) folds `leaf` at position `index` into `root`:
    ///      bit i of `index` says whether the node is the right (1) or left (0) child on level i. The tree is
    ///      ordered (not sorted-pair) and its depth fixed, so a root opens at most one leaf per position.
    function _verifyAt(bytes32[] calldata proof, bytes32 root, bytes32 leaf, uint256 index, uint256 depth)
        internal
        pure
        returns (bool)
    {
        if (proof.length != depth) return false;
        bytes32 node = leaf;
        for (uint256 i; i < depth; ++i) {
            bytes32 sibling = proof[i];
            bool right = (index >> i) & 1 == 1;
            assembly ("memory-safe") {
                mstore(0x00, xor(node, mul(xor(node, sibling), right)))
                mstore(0x20, xor(sibling, mul(xor(node, sibling), right)))
                node := keccak256(0x00, 0x40)
            }
        }
        return node == root;
    }

    function _revealer(uint256 key, uint256 i) internal view returns (uint256 license, uint8 verdict) {
        uint256 word;
        if (i < 5) word = _tallies[key][0] >> (40 + 40 * i);
        else if (i < 11) word = _tallies[key][1] >> (40 * (i - 5));
        else word = _tallies[key][2] >> (40 * (i - 11));
        license = uint32(word);
        verdict = uint8(word >> 32);
    }

    function _penalizeDisagreement(uint256 epoch, uint256 key, uint256 n, uint8 outcome, bool isTrap) internal {
        uint256[] memory ids = new uint256[](n);
        uint256 m;
        for (uint256 i; i < n; ++i) {
            (uint256 who, uint8 v) = _revealer(key, i);
            if ((outcome == OK) != (v == OK)) ids[m++] = who;
        }
        if (m == 0) return;
        assembly {
            mstore(ids, m)
        }
        vault.penalize(ids, epoch, isTrap ? PENALTY_TRAP : PENALTY_DISAGREE, address(0));
    }

    /// @dev The epoch's list length and the license's seat: its unshuffled list position (0 when the list is no
    ///      longer than a committee: everyone sits on every committee). n = 0: the license is not listed.
    function _seat(uint256 epoch, uint256 license, bytes32 s, uint256 k)
        internal
        view
        returns (uint256 n, uint256 seat)
    {
        uint256 position;
        (n, position) = registry.positionAt(license, epoch);
        if (position == 0) return (0, 0);
        if (n > k) seat = SwapOrNot.unshuffle(position - 1, n, s);
    }

    /// @dev Whether `seat` is one of target `t`'s seats t*k .. t*k+k-1 (modulo n).
    function _seated(uint256 seat, uint256 t, uint256 n, uint256 k) internal pure returns (bool) {
        return n <= k || (seat + n - (t % n) * k % n) % n < k;
    }

    function _key(uint256 epoch, uint256 targetId) internal pure returns (uint256) {
        if (epoch > type(uint64).max) revert IdTooLarge(epoch);
        if (targetId > type(uint128).max) revert IdTooLarge(targetId);
        return (epoch << 128) | targetId;
    }
}
