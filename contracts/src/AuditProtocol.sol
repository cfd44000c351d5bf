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
///         (PROTOCOL.md sections 5 to 7; committees, seeds and reveals as changed by issue 16, docs/protocol.md).
/// @dev Committees are exact: the OperatorRegistry's list of epoch e (licenses Delegated before e began) is
///      permuted by the swap-or-not shuffle under seed(e); target t's seats are t*k .. t*k+k-1 modulo the list
///      length n (k = committeeSize), so every target has k distinct licenses when n >= k, everyone when
///      n <= k. A seated license that is not active in e (no heartbeat) has no duty: its seat stays empty.
/// @dev Presence, commitments and reveals are per operator (issue 16): `heartbeat()` makes every license listed
///      under the caller active; `commit` stores one hash of the operator's votes; `reveal` opens it once for all
///      its licenses. A revealed operator's active licenses vote OK on every target they sit on, except where
///      the reveal lists a vote: FAULT, UNREACHABLE, or NO_VOTE (the seat counts as not revealed). Only those
///      listed votes are stored, so an epoch of honest OK verdicts costs O(1) storage per operator; a target's
///      tally is read from its committee's seats when it is needed (`tally`, `settle`, `reportMiss`), and a
///      vote by a license that does not sit on the target is never counted (no seat check at reveal).
contract AuditProtocol is Ownable {
    /// @notice Verdict and outcome codes. NO_VOTE, only in a reveal's list: the license did not audit the target.
    uint8 public constant NO_VOTE = 0;
    uint8 public constant OK = 1;
    uint8 public constant FAULT = 2;
    uint8 public constant UNREACHABLE = 3;
    uint8 public constant INCONCLUSIVE = 4;

    uint8 public constant PENALTY_MISS = 1;
    uint8 public constant PENALTY_DISAGREE = 2;
    uint8 public constant PENALTY_TRAP = 3;

    /// @notice Hard cap on `maxCommittee`, the bound on `committeeSize`.
    uint256 public constant MAX_COMMITTEE_CAP = 16;

    /// @notice How many epochs back the vault remembers each operator's presence (RewardVault.ACTIVITY_HORIZON):
    ///         a committee's seats can be read for the epochs since then only; older ones revert `HistoryLost`.
    uint256 public constant PRESENCE_HORIZON = 40;

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

    /// @notice One listed vote of a reveal: `license`'s verdict on `targetId` (FAULT, UNREACHABLE or NO_VOTE) and
    ///         the root of its evidence bundle. A reveal's votes are strictly increasing by (targetId, license).
    struct Vote {
        uint256 license;
        uint256 targetId;
        uint8 verdict;
        bytes32 evidenceRoot;
    }

    /// @dev A target's committee as seen in one epoch, seat by seat (only licenses with a duty: active ones).
    struct Seats {
        uint256[] licenses;
        uint8[] verdicts; // OK, FAULT, UNREACHABLE, or NO_VOTE when its operator did not reveal (or listed NO_VOTE)
        uint256 ok;
        uint256 fault;
        uint256 unreachable;
        uint256 reveals;
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
    /// @dev Per operator index, the hash of its votes (`commitmentOf`), by epoch parity.
    mapping(uint256 => bytes32[2]) private _roots;
    /// @dev Per epoch, bit i of word w: operator index w*256+i revealed.
    mapping(uint256 => mapping(uint256 => uint256)) private _revealedBits;
    /// @dev Listed votes by keccak256(abi.encode(epoch, targetId, license)): 0x100 | verdict, and the evidence root.
    mapping(bytes32 => uint256) private _votes;
    mapping(bytes32 => bytes32) private _voteRoots;
    /// @dev Settled outcome per (epoch, target) key (0: not settled).
    mapping(uint256 => uint8) private _outcomes;
    /// @notice Whether a miss of (epoch, license, target) was reported: keyed by keccak256(abi.encode(e, l, t)).
    mapping(bytes32 => bool) public missReported;
    /// @dev The clocks before `previousClock`, oldest (genesis) first: each applies up to the next one's anchor.
    Clock[] private _olderClocks;

    /// @notice Evidence challenges (security review M6): the bond a challenger posts, paid to whoever serves the
    ///         bundle, and the blocks the bundle has to be served in. Set by governance.
    uint96 public challengeBond = 0.01 ether;
    uint32 public answerBlocks = 100;

    /// @notice A challenge of one listed vote's evidence, keyed like the vote (epoch, target, license).
    struct Challenge {
        address challenger;
        uint64 deadline; // last block the bundle may be served in
        uint8 state; // 1 open, 2 served, 3 upheld (not served: the license was penalized)
        uint96 bond;
    }

    mapping(bytes32 => Challenge) public challenges;

    error InvalidParams();
    error NotStarted();
    error ClockChangePending(uint256 effectiveBlock);
    error WrongEpoch(uint256 given, uint256 current);
    error InvalidCommitment();
    error NotOperator(address caller);
    error NotPresent(address operator, uint256 epoch);
    error RevealWindowClosed(uint256 epoch, uint256 opensAt, uint256 closesAt);
    error RevealWindowOpen(uint256 epoch, uint256 closesAt);
    error NoCommitment(uint256 epoch, address operator);
    error VotesNotSorted(uint256 index);
    error InvalidVerdict(uint256 index, uint8 verdict);
    error NotOperatorsLicense(uint256 epoch, uint256 license, address operator);
    error NotAssigned(uint256 epoch, uint256 license, uint256 targetId);
    error IdTooLarge(uint256 id);
    error AlreadySettled(uint256 epoch, uint256 targetId);
    error UnknownTarget(uint256 targetId);
    error MissAlreadyReported(uint256 epoch, uint256 license, uint256 targetId);
    error NotMissed(uint256 epoch, uint256 license, uint256 targetId);
    error RefereeWindowOpen(uint256 epoch, uint256 targetId, uint256 opensAt);
    error HistoryLost(uint256 epoch);
    error NoEvidence(uint256 epoch, uint256 targetId, uint256 license);
    error WrongBond(uint256 sent, uint256 bond);
    error ChallengeExists(uint256 epoch, uint256 targetId, uint256 license);
    error ChallengeNotOpen(uint256 epoch, uint256 targetId, uint256 license);
    error AnswerWindowClosed(uint256 epoch, uint256 targetId, uint256 license, uint256 deadline);
    error AnswerWindowOpen(uint256 epoch, uint256 targetId, uint256 license, uint256 deadline);
    error WrongBundle(bytes32 root, bytes32 given);
    error PayoutFailed(address to);

    event ClockSet(uint256 anchorBlock, uint256 anchorEpoch, uint256 length);
    event ParamsSet(Params params);
    event SeedRecorded(uint256 indexed epoch, bytes32 seed);
    event Heartbeat(uint256 indexed epoch, address indexed operator, uint256 licenses);
    /// @notice `operator` committed `root`, the hash of its votes for `epoch` (`commitmentOf`).
    event Committed(uint256 indexed epoch, address indexed operator, bytes32 root);
    /// @notice `operator` revealed its votes for `epoch`: its active licenses vote OK wherever they sit, except
    ///         for the `votes` listed.
    event Revealed(uint256 indexed epoch, address indexed operator, Vote[] votes);
    event TargetSettled(uint256 indexed epoch, uint256 indexed targetId, uint8 outcome, uint8 ok, uint8 fault, uint8 unreachable);
    event ViolationFlagged(uint256 indexed epoch, uint256 indexed targetId, uint8 outcome, bytes32 evidenceRoot);
    event CourtSet(address court);
    /// @notice The referees' FAULT turned an OK or INCONCLUSIVE tally into FAULT (no disagreement penalties).
    event RefereeDecided(uint256 indexed epoch, uint256 indexed targetId, bytes32 evidenceRoot);
    /// @notice Someone bonded `challengeBond` asking for the bundle behind `license`'s vote on `targetId` in
    ///         `epoch` (root `evidenceRoot`), to be served by block `deadline`.
    event EvidenceChallenged(
        uint256 indexed epoch, uint256 indexed targetId, uint256 indexed license, bytes32 evidenceRoot, uint256 deadline
    );
    /// @notice The bundle was served: its bytes are this transaction's calldata, public for good.
    event EvidenceServed(uint256 indexed epoch, uint256 indexed targetId, uint256 indexed license, address server);
    /// @notice Not served in time: `license` was penalized as for a miss, the challenger its reporter.
    event EvidenceUnserved(uint256 indexed epoch, uint256 indexed targetId, uint256 indexed license);
    event ChallengeParamsSet(uint256 bond, uint256 answerBlocks);
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
        return _committee(epoch, targetId);
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

    /// @notice Commit the caller's votes for the current epoch `epoch`: `root` is `commitmentOf(epoch, caller,
    ///         salt, votes)`, the hash of every vote of its licenses that is not OK (see `reveal`), under a secret
    ///         salt. The caller must be present in `epoch`; a later commit in the epoch replaces the root.
    function commit(uint256 epoch, bytes32 root) external {
        uint256 e = _touch();
        if (epoch != e) revert WrongEpoch(epoch, e);
        if (root == bytes32(0)) revert InvalidCommitment();
        (uint256 op,) = registry.operatorIndexOf(msg.sender);
        if (op == 0 || !vault.isPresent(op, e)) revert NotPresent(msg.sender, e);
        _roots[op][e & 1] = root;
        emit Committed(e, msg.sender, root);
    }

    /// @notice What `commit` takes: keccak256(abi.encode(epoch, operator, salt, votes)).
    function commitmentOf(uint256 epoch, address operator, bytes32 salt, Vote[] calldata votes)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(epoch, operator, salt, votes));
    }

    /// @notice Open `operator`'s commitment for `epoch` during the first `revealBlocks` blocks of `epoch + 1`
    ///         (anyone holding the opening may send it). Every license listed under `operator` in `epoch` and
    ///         active then votes OK on each target it sits on, except for the `votes` listed: FAULT,
    ///         UNREACHABLE, or NO_VOTE (the license did not audit the target: its seat counts as not revealed).
    ///         Votes strictly increasing by (targetId, license), each of a license listed under `operator` in
    ///         `epoch`. A vote on a target the license does not sit on is stored but never counted. A second
    ///         reveal of the same operator and epoch changes nothing (security review H1: a copied reveal is the
    ///         operator's own).
    function reveal(uint256 epoch, address operator, bytes32 salt, Vote[] calldata votes) external {
        _touch();
        (uint256 revealStart, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealStart || block.number >= revealEnd) {
            revert RevealWindowClosed(epoch, revealStart, revealEnd);
        }
        (uint256 op,) = registry.operatorIndexOf(operator);
        bytes32 root = _roots[op][epoch & 1];
        if (op == 0 || root == bytes32(0) || root != commitmentOf(epoch, operator, salt, votes)) {
            revert NoCommitment(epoch, operator);
        }
        uint256 bit = uint256(1) << (op & 255);
        uint256 word = _revealedBits[epoch][op >> 8];
        if (word & bit != 0) return;
        _revealedBits[epoch][op >> 8] = word | bit;
        for (uint256 i; i < votes.length; ++i) {
            Vote calldata v = votes[i];
            if (
                i > 0
                    && (v.targetId < votes[i - 1].targetId
                        || (v.targetId == votes[i - 1].targetId && v.license <= votes[i - 1].license))
            ) revert VotesNotSorted(i);
            if (v.verdict != NO_VOTE && v.verdict != FAULT && v.verdict != UNREACHABLE) {
                revert InvalidVerdict(i, v.verdict);
            }
            if (registry.operatorOfAt(v.license, epoch) != op) revert NotOperatorsLicense(epoch, v.license, operator);
            bytes32 vk = _voteKey(epoch, v.targetId, v.license);
            _votes[vk] = 0x100 | uint256(v.verdict);
            if (v.evidenceRoot != bytes32(0)) _voteRoots[vk] = v.evidenceRoot;
        }
        emit Revealed(epoch, operator, votes);
    }

    /// @notice Decide `targetId`'s outcome in `epoch` after the reveal window (and, for a MODEL target whose
    ///         baseline has referees, after the referees' window) (anyone), and debit the licenses that disagreed
    ///         with it (nobody for an INCONCLUSIVE tally: docs/protocol.md, "Verdicts"). The committee's tally
    ///         decides; a referee majority of FAULT turns an OK or INCONCLUSIVE tally into FAULT
    ///         ("referee-decided": nobody is debited for disagreeing with it). Only needed when it changes
    ///         something (issue 16): a target whose committee all revealed OK has the outcome OK (`outcomeOf`)
    ///         and nobody to debit, so nobody has to pay for its settlement.
    function settle(uint256 epoch, uint256 targetId) external returns (uint8 outcome) {
        _touch();
        (, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealEnd) revert RevealWindowOpen(epoch, revealEnd);
        if (targetId >= targets.targetCount()) revert UnknownTarget(targetId);
        (uint8 refVerdict, bytes32 refRoot) = _refereeRuling(epoch, targetId, revealEnd);
        uint256 key = _key(epoch, targetId);
        if (_outcomes[key] != 0) revert AlreadySettled(epoch, targetId);

        Seats memory s = _seats(epoch, targetId);
        uint8 trap = targets.trapOutcome(targetId);
        outcome = trap != 0 ? trap : _tallyOutcome(s);
        bool byReferee = trap == 0 && refVerdict == FAULT && (outcome == OK || outcome == INCONCLUSIVE);
        if (byReferee) outcome = FAULT;
        _outcomes[key] = outcome;
        emit TargetSettled(epoch, targetId, outcome, uint8(s.ok), uint8(s.fault), uint8(s.unreachable));
        if (byReferee) {
            emit RefereeDecided(epoch, targetId, refRoot);
            emit ViolationFlagged(epoch, targetId, FAULT, refRoot);
            return outcome;
        }
        if (outcome == FAULT || outcome == UNREACHABLE) {
            emit ViolationFlagged(epoch, targetId, outcome, _firstRoot(epoch, targetId, s, outcome));
        }
        if (outcome != INCONCLUSIVE) _penalizeDisagreement(epoch, s, outcome, trap != 0);
    }

    /// @notice Report that `license` was assigned `targetId` in `epoch` and did not reveal it (anyone, after
    ///         the reveal window, once per (epoch, license, target)): its operator did not reveal, or listed
    ///         NO_VOTE for it. The reporter earns a bounty.
    function reportMiss(uint256 epoch, uint256 license, uint256 targetId) external {
        _touch();
        (, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealEnd) revert RevealWindowOpen(epoch, revealEnd);
        bytes32 missKey = keccak256(abi.encode(epoch, license, targetId));
        if (missReported[missKey]) revert MissAlreadyReported(epoch, license, targetId);
        if (!isAssigned(epoch, license, targetId)) revert NotAssigned(epoch, license, targetId);
        if (_verdictOf(epoch, targetId, license) != NO_VOTE) revert NotMissed(epoch, license, targetId);
        missReported[missKey] = true;
        emit MissReported(epoch, license, targetId, msg.sender);
        uint256[] memory ids = new uint256[](1);
        ids[0] = license;
        vault.penalize(ids, epoch, PENALTY_MISS, msg.sender);
    }

    // ------------------------------------------------------------------- evidence challenges (M6)

    /// @notice Ask for the bundle behind `license`'s listed vote (FAULT or UNREACHABLE) on `targetId` in `epoch`,
    ///         bonding exactly `challengeBond`. Only a vote that counts can be challenged: the license sat on the
    ///         target's committee and was active (so within the registry's history, until the end of `epoch + 2`).
    ///         One challenge per vote.
    function challengeEvidence(uint256 epoch, uint256 targetId, uint256 license) external payable {
        bytes32 vk = _voteKey(epoch, targetId, license);
        bytes32 root = _voteRoots[vk];
        uint8 v = uint8(_votes[vk]);
        if (root == bytes32(0) || (v != FAULT && v != UNREACHABLE) || !isAssigned(epoch, license, targetId)) {
            revert NoEvidence(epoch, targetId, license);
        }
        uint96 bond = challengeBond;
        if (msg.value != bond) revert WrongBond(msg.value, bond);
        if (challenges[vk].state != 0) revert ChallengeExists(epoch, targetId, license);
        uint64 deadline = uint64(block.number + answerBlocks);
        challenges[vk] = Challenge(msg.sender, deadline, 1, bond);
        emit EvidenceChallenged(epoch, targetId, license, root, deadline);
    }

    /// @notice Serve the challenged bundle (anyone holding it): `bundle` must hash (keccak256) to the vote's root.
    ///         The bond goes to the sender, who paid the calldata.
    function answerChallenge(uint256 epoch, uint256 targetId, uint256 license, bytes calldata bundle) external {
        bytes32 vk = _voteKey(epoch, targetId, license);
        Challenge storage c = challenges[vk];
        if (c.state != 1) revert ChallengeNotOpen(epoch, targetId, license);
        if (block.number > c.deadline) revert AnswerWindowClosed(epoch, targetId, license, c.deadline);
        bytes32 given = keccak256(bundle);
        if (given != _voteRoots[vk]) revert WrongBundle(_voteRoots[vk], given);
        c.state = 2;
        emit EvidenceServed(epoch, targetId, license, msg.sender);
        _pay(msg.sender, c.bond);
    }

    /// @notice After the deadline of an unanswered challenge (anyone): the license is penalized as for a miss
    ///         (the vote had no evidence anyone could check), the challenger is its reporter (the miss bounty)
    ///         and gets its bond back.
    function expireChallenge(uint256 epoch, uint256 targetId, uint256 license) external {
        bytes32 vk = _voteKey(epoch, targetId, license);
        Challenge storage c = challenges[vk];
        if (c.state != 1) revert ChallengeNotOpen(epoch, targetId, license);
        if (block.number <= c.deadline) revert AnswerWindowOpen(epoch, targetId, license, c.deadline);
        c.state = 3;
        emit EvidenceUnserved(epoch, targetId, license);
        uint256[] memory ids = new uint256[](1);
        ids[0] = license;
        vault.penalize(ids, epoch, PENALTY_MISS, c.challenger);
        _pay(c.challenger, c.bond);
    }

    function setChallengeParams(uint96 bond, uint32 answerBlocks_) external onlyOwner {
        if (answerBlocks_ == 0) revert InvalidParams();
        challengeBond = bond;
        answerBlocks = answerBlocks_;
        emit ChallengeParamsSet(bond, answerBlocks_);
    }

    function _pay(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert PayoutFailed(to);
    }

    // ----------------------------------------------------------------------------------------- views

    /// @notice Vote counts and reveal count of (`epoch`, `targetId`), read from its committee's seats (active
    ///         licenses only), and the settled outcome (0 = not settled).
    function tally(uint256 epoch, uint256 targetId)
        external
        view
        returns (uint8 ok, uint8 fault, uint8 unreachable, uint8 reveals, uint8 outcome)
    {
        Seats memory s = _seats(epoch, targetId);
        return (uint8(s.ok), uint8(s.fault), uint8(s.unreachable), uint8(s.reveals), _outcomes[_key(epoch, targetId)]);
    }

    /// @notice The outcome of (`epoch`, `targetId`): the settled one, else what `settle` would decide now (0
    ///         while settling is not open yet).
    function outcomeOf(uint256 epoch, uint256 targetId) external view returns (uint8 outcome) {
        outcome = _outcomes[_key(epoch, targetId)];
        if (outcome != 0) return outcome;
        (, uint256 revealEnd) = revealWindow(epoch);
        if (block.number < revealEnd || targetId >= targets.targetCount()) return 0;
        uint8 refVerdict;
        IRefereeCourt c = court;
        if (address(c) != address(0)) {
            uint256 opensAt;
            (opensAt, refVerdict,) = c.ruling(epoch, targetId, revealEnd);
            if (block.number < opensAt) return 0;
        }
        uint8 trap = targets.trapOutcome(targetId);
        if (trap != 0) return trap;
        outcome = _tallyOutcome(_seats(epoch, targetId));
        if (refVerdict == FAULT && (outcome == OK || outcome == INCONCLUSIVE)) outcome = FAULT;
    }

    /// @notice The licenses of (`epoch`, `targetId`)'s committee that revealed, with their verdicts, seat by seat.
    function revealers(uint256 epoch, uint256 targetId)
        external
        view
        returns (uint256[] memory licenses, uint8[] memory verdicts)
    {
        Seats memory s = _seats(epoch, targetId);
        licenses = new uint256[](s.reveals);
        verdicts = new uint8[](s.reveals);
        uint256 m;
        for (uint256 i; i < s.licenses.length; ++i) {
            if (s.verdicts[i] == NO_VOTE) continue;
            (licenses[m], verdicts[m]) = (s.licenses[i], s.verdicts[i]);
            ++m;
        }
    }

    /// @notice The vote `license` listed on `targetId` in its operator's reveal of `epoch` (verdict 0 and root 0
    ///         when none was listed: OK if its operator revealed).
    function voteOf(uint256 epoch, uint256 targetId, uint256 license)
        external
        view
        returns (bool listed, uint8 verdict, bytes32 root)
    {
        bytes32 vk = _voteKey(epoch, targetId, license);
        uint256 v = _votes[vk];
        return (v != 0, uint8(v), _voteRoots[vk]);
    }

    /// @notice The root stored for operator `operator` for `epoch` (or for the epoch two before it: same slot).
    function rootOf(address operator, uint256 epoch) external view returns (bytes32) {
        (uint256 op,) = registry.operatorIndexOf(operator);
        return _roots[op][epoch & 1];
    }

    /// @notice Whether `operator` revealed its votes for `epoch`.
    function hasRevealed(address operator, uint256 epoch) external view returns (bool) {
        (uint256 op,) = registry.operatorIndexOf(operator);
        return op != 0 && _opRevealed(epoch, op);
    }

    /// @notice Whether `license`'s operator in `epoch` revealed its votes for `epoch`.
    function isRevealed(uint256 license, uint256 epoch) external view returns (bool) {
        uint256 op = registry.operatorOfAt(license, epoch);
        return op != 0 && _opRevealed(epoch, op);
    }

    /// @notice The first block in which (`epoch`, `targetId`) may be settled.
    function settleOpensAt(uint256 epoch, uint256 targetId) external view returns (uint256 opensAt) {
        (, opensAt) = revealWindow(epoch);
        IRefereeCourt c = court;
        if (address(c) != address(0)) (opensAt,,) = c.ruling(epoch, targetId, opensAt);
    }

    /// @notice The evidence root of (`epoch`, `targetId`)'s first seat (committee order) that revealed `verdict`
    ///         (FAULT or UNREACHABLE): the one a flag names (security review M6: a fixed rule, not reveal order).
    function evidenceRoot(uint256 epoch, uint256 targetId, uint8 verdict) external view returns (bytes32) {
        if (verdict != FAULT && verdict != UNREACHABLE) return bytes32(0);
        return _firstRoot(epoch, targetId, _seats(epoch, targetId), verdict);
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

    /// @dev The committee's outcome from its seats (PROTOCOL.md section 7, as changed by security review M4):
    ///      with >= minReveals votes, OK if >= 2/3 of them are OK; "not OK" if >= 2/3 are FAULT and UNREACHABLE
    ///      together: FAULT when FAULT votes >= UNREACHABLE votes, else UNREACHABLE; INCONCLUSIVE otherwise.
    function _tallyOutcome(Seats memory s) internal view returns (uint8) {
        uint256 n = s.reveals;
        if (n < params.minReveals || n == 0) return INCONCLUSIVE;
        if (s.ok * 3 >= 2 * n) return OK;
        if ((s.fault + s.unreachable) * 3 >= 2 * n) return s.fault >= s.unreachable ? FAULT : UNREACHABLE;
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

    /// @dev The licenses on `targetId`'s committee in `epoch`, seat by seat (see `committee`).
    function _committee(uint256 epoch, uint256 targetId) internal view returns (uint256[] memory licenses) {
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

    /// @dev The seats of (`epoch`, `targetId`) that carry a duty (an active license; none if the target was not
    ///      enabled at the epoch's start), each with its verdict: NO_VOTE unless its operator revealed, then the
    ///      vote its reveal listed, else OK.
    function _seats(uint256 epoch, uint256 targetId) internal view returns (Seats memory s) {
        // Presence beyond the vault's horizon reads "absent": every seat would look empty and the tally
        // INCONCLUSIVE. Say that the history is gone instead.
        if (epoch + PRESENCE_HORIZON <= currentEpoch()) revert HistoryLost(epoch);
        uint256[] memory all = _committee(epoch, targetId);
        if (all.length != 0 && !targets.isEnabledAt(targetId, epochStartBlock(epoch))) all = new uint256[](0);
        s.licenses = new uint256[](all.length);
        s.verdicts = new uint8[](all.length);
        uint256 m;
        for (uint256 i; i < all.length; ++i) {
            uint256 op = registry.operatorOfAt(all[i], epoch);
            if (op == 0 || !vault.isPresent(op, epoch)) continue;
            uint8 v = _opRevealed(epoch, op) ? _listedOrOk(epoch, targetId, all[i]) : NO_VOTE;
            s.licenses[m] = all[i];
            s.verdicts[m] = v;
            if (v == OK) ++s.ok;
            else if (v == FAULT) ++s.fault;
            else if (v == UNREACHABLE) ++s.unreachable;
            if (v != NO_VOTE) ++s.reveals;
            ++m;
        }
        uint256[] memory ls = s.licenses;
        uint8[] memory vs = s.verdicts;
        assembly ("memory-safe") {
            mstore(ls, m)
            mstore(vs, m)
        }
    }

    /// @dev `license`'s verdict on `targetId` in `epoch` (NO_VOTE when its operator did not reveal).
    function _verdictOf(uint256 epoch, uint256 targetId, uint256 license) internal view returns (uint8) {
        uint256 op = registry.operatorOfAt(license, epoch);
        if (op == 0 || !_opRevealed(epoch, op)) return NO_VOTE;
        return _listedOrOk(epoch, targetId, license);
    }

    function _listedOrOk(uint256 epoch, uint256 targetId, uint256 license) internal view returns (uint8) {
        uint256 v = _votes[_voteKey(epoch, targetId, license)];
        return v == 0 ? OK : uint8(v);
    }

    function _opRevealed(uint256 epoch, uint256 op) internal view returns (bool) {
        return (_revealedBits[epoch][op >> 8] >> (op & 255)) & 1 == 1;
    }

    /// @dev The evidence root of the first seat whose verdict is `verdict`.
    function _firstRoot(uint256 epoch, uint256 targetId, Seats memory s, uint8 verdict)
        internal
        view
        returns (bytes32)
    {
        for (uint256 i; i < s.licenses.length; ++i) {
            if (s.verdicts[i] == verdict) return _voteRoots[_voteKey(epoch, targetId, s.licenses[i])];
        }
        return bytes32(0);
    }

    function _penalizeDisagreement(uint256 epoch, Seats memory s, uint8 outcome, bool isTrap) internal {
        uint256[] memory ids = new uint256[](s.reveals);
        uint256 m;
        for (uint256 i; i < s.licenses.length; ++i) {
            uint8 v = s.verdicts[i];
            if (v != NO_VOTE && (outcome == OK) != (v == OK)) ids[m++] = s.licenses[i];
        }
        if (m == 0) return;
        assembly ("memory-safe") {
            mstore(ids, m)
        }
        vault.penalize(ids, epoch, isTrap ? PENALTY_TRAP : PENALTY_DISAGREE, address(0));
    }

    function _voteKey(uint256 epoch, uint256 targetId, uint256 license) internal pure returns (bytes32) {
        return keccak256(abi.encode(epoch, targetId, license));
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
