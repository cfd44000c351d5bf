// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {TargetRegistry} from "./TargetRegistry.sol";

/// @dev What the court reads from the audit protocol.
interface ICourtProtocol {
    function seed(uint256 epoch) external view returns (bytes32);
    function revealWindow(uint256 epoch) external view returns (uint256 revealStart, uint256 revealEnd);
}

/// @title RefereeCourt
/// @notice The referee duty of MODEL audits (docs/protocol.md, "The referee duty"): operators who hold a
///         baseline's registered weights bond themselves to it, are drawn per (epoch, target) from the epoch's
///         seed, and after the committee's reveal window submit a verdict on the committee's public evidence,
///         re-scored with the weights. `AuditProtocol.settle` waits for the referees' window and reads
///         `ruling`: a referee majority of FAULT turns an OK or INCONCLUSIVE tally into FAULT.
/// @dev A referee's bond is slashed by governance (the owner, the timelock) when it upholds a challenge: anyone
///      who re-runs the referee's bundle with the weights and gets another decision.
contract RefereeCourt is Ownable {
    using SafeERC20 for IERC20;

    uint8 public constant KIND_MODEL = 5;
    uint8 public constant OK = 1;
    uint8 public constant FAULT = 2;
    /// @notice At most this many referees per baseline (the assignment scans at most `committee` of them).
    uint256 public constant MAX_REFEREES = 64;
    uint8 public constant MAX_COMMITTEE = 3;

    struct Params {
        uint128 minBond; // reward-token wei a referee must bond
        uint32 refereeBlocks; // blocks after the reveal window in which verdicts are accepted
        uint32 unbondBlocks; // blocks a leaving referee's bond stays slashable
        uint8 committee; // referees drawn per (epoch, target), 1 to MAX_COMMITTEE
    }

    struct Unbonding {
        uint128 amount;
        uint64 releaseBlock;
    }

    IERC20 public immutable bondToken;
    TargetRegistry public immutable targets;
    ICourtProtocol public immutable protocol;
    Params public params;

    /// @notice The baseline a MODEL target is bound to (its registered identity), or zero if not bound yet.
    mapping(uint256 => bytes32) public baselineOf;
    /// @notice The bond of an active referee of a baseline (zero: not a referee).
    mapping(bytes32 => mapping(address => uint256)) public bondOf;
    mapping(bytes32 => mapping(address => Unbonding)) public unbonding;
    /// @notice Whether a referee judged (epoch, target): keyed by keccak256(abi.encode(epoch, target, referee)).
    mapping(bytes32 => bool) public judged;
    mapping(bytes32 => address[]) private _referees;
    /// @dev Per (epoch, target): OK votes (bits 0-7) and FAULT votes (bits 8-15); the first FAULT's root.
    mapping(uint256 => uint256) private _votes;
    mapping(uint256 => bytes32) private _faultRoot;

    error InvalidParams();
    error InvalidBaseline();
    error AlreadyReferee(bytes32 baseline, address referee);
    error NotReferee(bytes32 baseline, address referee);
    error BondTooSmall(uint256 bond, uint256 minBond);
    error TooManyReferees(bytes32 baseline);
    error NothingToWithdraw();
    error StillBonded(uint256 releaseBlock);
    error NotAModelTarget(uint256 targetId);
    error InvalidVerdict(uint8 verdict);
    error VerdictWindowClosed(uint256 epoch, uint256 opensAt, uint256 closesAt);
    error NotAssignedReferee(uint256 epoch, uint256 targetId, address referee);
    error AlreadyJudged(uint256 epoch, uint256 targetId, address referee);

    event ParamsSet(Params params);
    event TargetBound(uint256 indexed targetId, bytes32 indexed baseline);
    event RefereeRegistered(bytes32 indexed baseline, address indexed referee, uint256 bond);
    event RefereeLeft(bytes32 indexed baseline, address indexed referee, uint256 releaseBlock);
    event BondWithdrawn(bytes32 indexed baseline, address indexed referee, uint256 amount);
    event RefereeSlashed(bytes32 indexed baseline, address indexed referee, uint256 amount, address to);
    event RefereeVerdict(
        uint256 indexed epoch, uint256 indexed targetId, address indexed referee, uint8 verdict, bytes32 evidenceRoot
    );

    constructor(IERC20 bondToken_, TargetRegistry targets_, ICourtProtocol protocol_, Params memory params_, address owner_)
        Ownable(owner_)
    {
        bondToken = bondToken_;
        targets = targets_;
        protocol = protocol_;
        _setParams(params_);
    }

    // ------------------------------------------------------------------------------------ referees

    /// @notice Become a referee of `baseline` (its registered weights' holder), bonding `bond` reward tokens.
    function register(bytes32 baseline, uint256 bond) external {
        if (baseline == bytes32(0)) revert InvalidBaseline();
        if (bondOf[baseline][msg.sender] != 0) revert AlreadyReferee(baseline, msg.sender);
        uint256 minBond = params.minBond;
        if (bond < minBond || bond == 0 || bond > type(uint128).max) revert BondTooSmall(bond, minBond);
        address[] storage set = _referees[baseline];
        if (set.length >= MAX_REFEREES) revert TooManyReferees(baseline);
        set.push(msg.sender);
        bondOf[baseline][msg.sender] = bond;
        emit RefereeRegistered(baseline, msg.sender, bond);
        bondToken.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @notice Stop refereeing `baseline`; the bond stays slashable for `unbondBlocks`, then `withdraw` it.
    function leave(bytes32 baseline) external {
        uint256 bond = _remove(baseline, msg.sender);
        Unbonding storage u = unbonding[baseline][msg.sender];
        u.amount += uint128(bond);
        u.releaseBlock = uint64(block.number + params.unbondBlocks);
        emit RefereeLeft(baseline, msg.sender, u.releaseBlock);
    }

    function withdraw(bytes32 baseline) external {
        Unbonding memory u = unbonding[baseline][msg.sender];
        if (u.amount == 0) revert NothingToWithdraw();
        if (block.number < u.releaseBlock) revert StillBonded(u.releaseBlock);
        delete unbonding[baseline][msg.sender];
        emit BondWithdrawn(baseline, msg.sender, u.amount);
        bondToken.safeTransfer(msg.sender, u.amount);
    }

    /// @notice Governance upholds a challenge of `referee`: its whole bond (active and unbonding) goes to `to`
    ///         and it stops being a referee of `baseline`.
    function slash(bytes32 baseline, address referee, address to) external onlyOwner {
        uint256 amount = bondOf[baseline][referee] != 0 ? _remove(baseline, referee) : 0;
        amount += unbonding[baseline][referee].amount;
        delete unbonding[baseline][referee];
        if (amount == 0) revert NotReferee(baseline, referee);
        emit RefereeSlashed(baseline, referee, amount, to);
        bondToken.safeTransfer(to, amount);
    }

    /// @notice Bind MODEL target `targetId` to the baseline its registered identity names (anyone; identities
    ///         never change, so binding twice changes nothing). Only bound targets are refereed.
    function bindTarget(uint256 targetId) external {
        TargetRegistry.Target memory t = targets.getTarget(targetId);
        if (t.kind != KIND_MODEL || t.identity.length != 32) revert NotAModelTarget(targetId);
        bytes32 b = bytes32(t.identity);
        baselineOf[targetId] = b;
        emit TargetBound(targetId, b);
    }

    // -------------------------------------------------------------------------------------- verdicts

    /// @notice Whether `who` is one of the `committee` referees drawn for (`epoch`, `targetId`): consecutive
    ///         entries of the baseline's referee list from an offset drawn from the epoch's seed.
    function isAssigned(uint256 epoch, uint256 targetId, address who) public view returns (bool) {
        bytes32 b = baselineOf[targetId];
        if (b == bytes32(0) || bondOf[b][who] == 0) return false;
        address[] storage set = _referees[b];
        uint256 n = set.length;
        bytes32 s = protocol.seed(epoch);
        if (s == bytes32(0)) return false;
        uint256 k = params.committee < n ? params.committee : n;
        uint256 start = uint256(keccak256(abi.encode(s, "referee", targetId))) % n;
        for (uint256 i; i < k; ++i) {
            if (set[(start + i) % n] == who) return true;
        }
        return false;
    }

    /// @notice Submit the verdict (OK or FAULT) on (`epoch`, `targetId`), with the root of the referee's evidence
    ///         bundle, in the `refereeBlocks` blocks after the epoch's reveal window.
    function submitVerdict(uint256 epoch, uint256 targetId, uint8 verdict, bytes32 evidenceRoot) external {
        if (verdict != OK && verdict != FAULT) revert InvalidVerdict(verdict);
        (, uint256 opensAt) = protocol.revealWindow(epoch);
        uint256 closesAt = opensAt + params.refereeBlocks;
        if (block.number < opensAt || block.number >= closesAt) revert VerdictWindowClosed(epoch, opensAt, closesAt);
        if (!isAssigned(epoch, targetId, msg.sender)) revert NotAssignedReferee(epoch, targetId, msg.sender);
        bytes32 jk = keccak256(abi.encode(epoch, targetId, msg.sender));
        if (judged[jk]) revert AlreadyJudged(epoch, targetId, msg.sender);
        judged[jk] = true;
        uint256 key = _key(epoch, targetId);
        if (verdict == OK) {
            _votes[key] += 1;
        } else {
            _votes[key] += 1 << 8;
            if (_faultRoot[key] == bytes32(0)) _faultRoot[key] = evidenceRoot;
        }
        emit RefereeVerdict(epoch, targetId, msg.sender, verdict, evidenceRoot);
    }

    /// @notice For `AuditProtocol.settle`: the block from which (`epoch`, `targetId`) may be settled, given that
    ///         its reveal window ends at `revealEnd` (later by `refereeBlocks` when the target's baseline has
    ///         referees), and the referees' majority verdict (0: none or a tie) with its evidence root.
    function ruling(uint256 epoch, uint256 targetId, uint256 revealEnd)
        external
        view
        returns (uint256 opensAt, uint8 verdict, bytes32 root)
    {
        opensAt = revealEnd;
        bytes32 b = baselineOf[targetId];
        // An unbound target (every non-MODEL target) has no referees and no verdicts: one storage read.
        if (b == bytes32(0)) return (opensAt, 0, bytes32(0));
        if (_referees[b].length != 0) opensAt = revealEnd + params.refereeBlocks;
        uint256 key = _key(epoch, targetId);
        uint256 v = _votes[key];
        uint256 ok = uint8(v);
        uint256 fault = uint8(v >> 8);
        if (fault > ok) {
            verdict = FAULT;
            root = _faultRoot[key];
        } else if (ok > fault) {
            verdict = OK;
        }
    }

    /// @notice OK and FAULT verdicts submitted on (`epoch`, `targetId`), and the first FAULT's evidence root.
    function votes(uint256 epoch, uint256 targetId) external view returns (uint8 ok, uint8 fault, bytes32 faultRoot) {
        uint256 key = _key(epoch, targetId);
        uint256 v = _votes[key];
        return (uint8(v), uint8(v >> 8), _faultRoot[key]);
    }

    function referees(bytes32 baseline) external view returns (address[] memory) {
        return _referees[baseline];
    }

    // ------------------------------------------------------------------------------------ governance

    function setParams(Params calldata params_) external onlyOwner {
        _setParams(params_);
    }

    // -------------------------------------------------------------------------------------- internal

    function _setParams(Params memory p) internal {
        if (p.refereeBlocks == 0 || p.committee == 0 || p.committee > MAX_COMMITTEE) revert InvalidParams();
        params = p;
        emit ParamsSet(p);
    }

    /// @dev Drop `who` from `baseline`'s referees (swap with the last); returns its bond.
    function _remove(bytes32 baseline, address who) internal returns (uint256 bond) {
        bond = bondOf[baseline][who];
        if (bond == 0) revert NotReferee(baseline, who);
        delete bondOf[baseline][who];
        address[] storage set = _referees[baseline];
        uint256 last = set.length - 1;
        for (uint256 i; i <= last; ++i) {
            if (set[i] == who) {
                set[i] = set[last];
                set.pop();
                break;
            }
        }
    }

    function _key(uint256 epoch, uint256 targetId) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(epoch, targetId)));
    }
}
