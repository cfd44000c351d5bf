// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

interface IEpochClock {
    function currentEpoch() external view returns (uint256);
}

interface ILicenseOwnersBatch {
    function ownersOf(uint256[] calldata tokenIds) external view returns (address[] memory);
}

interface IStakingShares {
    function totalSupply() external view returns (uint256);
    function sync() external returns (uint256);
}

interface IListing {
    function operatorOfAt(uint256 tokenId, uint256 epoch) external view returns (uint256);
    function park(uint256 tokenId) external;
}

/// @title RewardVault
/// @notice Fee split, per-epoch budgets, presence credit, penalties, commission and claims
///         (PROTOCOL.md section 8 with presence per operator, issue 16). Every amount is in wei of the reward
///         token; every payment is pulled.
/// @dev Presence is per operator: one heartbeat makes every license listed under the operator in that epoch
///      (OperatorRegistry) active, and costs O(1) storage whatever the number of licenses. Per operator the vault
///      keeps its last present epoch with its license count (booked once that epoch's budget is final) and a
///      running sum `acc` of the net per-license credit of the epochs it was present in. A license's credit is
///      derived lazily: the registry reports each listing and unlisting (a span [from, until) under one
///      operator), and the license earns `acc(until) - acc(from)`, where `acc(x)` is the operator's sum over its
///      present epochs before `x`. The operator records `acc` at each epoch a span starts or ends (one pending
///      checkpoint, written at its next touch). Penalties, suspension and claims stay per license.
///      `acc` sums the gross per-license credit, and commission is taken per license as it is credited
///      (security finding L2): a span's gross first repays the license's debt, and the operator's commission is
///      its share of the span's commission in proportion to what is left, so an operator earns nothing on a
///      license whose penalties are not repaid yet (it shares the license's debt). An operator's commission rate
///      is fixed at registration, so a span's commission is `floor(acc(until) * bps / BPS) - floor(acc(from) *
///      bps / BPS)`: the same however the span is cut into credits.
///      An epoch's budget is final at the first touch of a later epoch ("roll"); its per-license credit is
///      `budget / activeCount`, the division remainder carried to the next epoch.
contract RewardVault is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint256 public constant BPS = 10_000;
    /// @notice Epochs of activity history kept per license: a miss older than this cannot be reported.
    uint256 public constant ACTIVITY_HORIZON = 40;
    uint256 private constant ACTIVITY_MASK = (1 << ACTIVITY_HORIZON) - 1;

    /// @notice Penalty kinds.
    uint8 public constant PENALTY_MISS = 1;
    uint8 public constant PENALTY_DISAGREE = 2;
    uint8 public constant PENALTY_TRAP = 3;

    /// @notice An operator's presence: its last present epoch, the licenses it made active then, whether that
    ///         epoch's credit is booked into `acc`, its activity bitmap, and the epoch whose `acc` is still to
    ///         be recorded for a span that starts or ends then.
    struct Presence {
        uint32 lastEpochPlus1; // 0 = never present
        uint32 count; // licenses listed under it in lastEpoch
        uint40 activity; // bit i: present in epoch (lastEpoch - i)
        bool booked; // lastEpoch's credit added to acc
        uint16 commissionBps;
        uint32 checkpointPlus1; // 0 = none pending
    }

    /// @notice A license's span under one operator: listed from `from` until `until` (0: still listed); `base`
    ///         is the operator's `acc` up to which it was credited (`based` false: not known yet, it is the
    ///         operator's `acc(from)`).
    struct Span {
        uint32 operatorIndex;
        uint32 from;
        uint32 until;
        bool based;
        uint128 base;
    }

    struct Account {
        int128 balance;
        uint32 suspendedUntil; // first epoch it may heartbeat again
        uint32 windowStart; // first audited epoch of the current penalty window
        uint16 penaltiesInWindow;
        // Set at the first credit and never cleared, so a claim that empties the balance leaves the slot
        // non-zero and the next credit rewrites it for 2,900 gas instead of 20,000.
        bool opened;
    }

    struct EpochInfo {
        uint128 rewardPerLicense;
        uint32 activeCount;
        bool finalized;
    }

    /// @notice Parameters set by governance. Penalties are in basis points of the per-license credit of the
    ///         epoch the fault happened in (30_000 = three epochs of credit).
    struct Params {
        uint16 nodeShareBps;
        uint16 stakerShareBps;
        uint16 missBountyBps;
        uint32 missPenaltyBps;
        uint32 disagreePenaltyBps;
        uint32 trapPenaltyBps;
        uint16 suspendAfter;
        uint32 suspendWindow;
        uint32 suspendEpochs;
        uint128 emissionPerEpoch;
    }

    IERC20 public immutable token;
    address public immutable stakingVault;
    ILicenseOwnersBatch public immutable license;
    /// @notice The AuditProtocol (heartbeats, penalties, the clock) and the OperatorRegistry. Set once.
    address public protocol;
    address public registry;
    address public treasury;
    Params public params;

    /// @notice Per operator index (OperatorRegistry): presence, `acc` (the sum of the gross per-license credit of
    ///         its present epochs, commission included), its address, and `acc` at span edges.
    mapping(uint256 => Presence) public presence;
    mapping(uint256 => uint256) public operatorAcc;
    mapping(uint256 => address) public operatorAddress;
    mapping(uint256 => mapping(uint256 => uint256)) private _accAt;
    /// @notice Per license: its current span and the span before it, if that one is not credited yet.
    mapping(uint256 => Span) public spans;
    mapping(uint256 => Span) public previousSpans;
    mapping(uint256 => Account) private _accounts;
    mapping(uint256 => EpochInfo) public epochs;
    /// @notice Commission owed to each operator (booked as its licenses are credited), bounties owed to each miss
    ///         reporter (wei).
    mapping(address => uint256) public commissionOf;
    mapping(address => uint256) public bountyOf;

    /// @notice The epoch whose budget is accumulating, and what it holds so far (fees, forfeits, carry).
    uint32 public poolEpoch;
    uint256 public pool;
    /// @notice Funded emission not yet added to a budget.
    uint256 public emissionReserve;
    /// @notice The treasury's share of fees, and stakers' share while nobody stakes.
    uint256 public treasuryBalance;
    /// @notice Everything ever funded to licenses (emission + node share of fees), and everything ever made
    ///         claimable by licenses, operators and reporters less what penalties forfeited (claims do not
    ///         lower it). The protocol's invariant: `totalLiabilities <= totalFunded`.
    uint256 public totalFunded;
    uint256 public totalLiabilities;

    error NotProtocol(address caller);
    error NotRegistry(address caller);
    error AlreadySet();
    error ZeroAddress();
    error InvalidParams();
    error ZeroAmount();
    error AlreadyPresent(address operator, uint256 epoch);
    error NotLicenseOwner(uint256 tokenId, address caller);
    error NothingToClaim();

    event Wired(address protocol, address registry);
    event ParamsSet(Params params);
    event TreasurySet(address treasury);
    event EmissionFunded(address indexed from, uint256 amount);
    event FeesDeposited(address indexed from, uint256 amount, uint256 toLicenses, uint256 toStakers, uint256 toTreasury);
    event EpochFinalized(uint256 indexed epoch, uint256 budget, uint256 activeCount, uint256 rewardPerLicense);
    event Present(uint256 indexed epoch, address indexed operator, uint256 licenses);
    /// @notice An operator's present epoch booked: `perLicense` net credit for each of `licenses`, and the
    ///         `commission` on them at the operator's rate (paid to the operator as each license is credited, from
    ///         what is left after its debt; rounded per span, so a wei may move between license and operator).
    event OperatorBooked(uint256 indexed epoch, address indexed operator, uint256 licenses, uint256 perLicense, uint256 commission);
    /// @notice A license credited `amount` (net of the commission taken) for its span under `operatorIndex`.
    event Credited(uint256 indexed tokenId, uint256 indexed operatorIndex, uint256 amount);
    event Penalized(uint256 indexed tokenId, uint256 indexed epoch, uint8 kind, uint256 amount, uint256 forfeited);
    event LicenseSuspended(uint256 indexed tokenId, uint256 untilEpoch);
    event BountyCredited(address indexed reporter, uint256 amount);
    event Claimed(address indexed owner, uint256[] tokenIds, uint256 amount);
    event CommissionClaimed(address indexed operator, uint256 amount);
    event BountyClaimed(address indexed reporter, uint256 amount);
    event TreasuryWithdrawn(address indexed treasury, uint256 amount);

    constructor(
        IERC20 token_,
        address stakingVault_,
        ILicenseOwnersBatch license_,
        address treasury_,
        Params memory params_,
        address owner_
    ) Ownable(owner_) {
        if (address(token_) == address(0) || stakingVault_ == address(0) || treasury_ == address(0)) {
            revert ZeroAddress();
        }
        token = token_;
        stakingVault = stakingVault_;
        license = license_;
        treasury = treasury_;
        _setParams(params_);
    }

    modifier onlyProtocol() {
        if (msg.sender != protocol) revert NotProtocol(msg.sender);
        _;
    }

    /// @notice Wire the AuditProtocol and OperatorRegistry (once, at deployment).
    function wire(address protocol_, address registry_) external onlyOwner {
        if (protocol != address(0)) revert AlreadySet();
        if (protocol_ == address(0) || registry_ == address(0)) revert ZeroAddress();
        protocol = protocol_;
        registry = registry_;
        poolEpoch = uint32(IEpochClock(protocol_).currentEpoch());
        emit Wired(protocol_, registry_);
    }

    // --------------------------------------------------------------------------------------- funding

    /// @notice Add `amount` to the emission reserve; `emissionPerEpoch` is drawn from it every epoch.
    function fundEmission(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);
        emissionReserve += amount;
        totalFunded += amount;
        emit EmissionFunded(msg.sender, amount);
    }

    /// @notice Deposit network fees: `nodeShareBps` to this epoch's license budget, `stakerShareBps` to the
    ///         StakingVault (to the treasury while nobody stakes), the rest to the treasury.
    function depositFees(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);
        _roll(_currentEpoch());
        Params memory p = params;
        uint256 toLicenses = amount * p.nodeShareBps / BPS;
        uint256 toStakers = amount * p.stakerShareBps / BPS;
        uint256 toTreasury = amount - toLicenses - toStakers;
        pool += toLicenses;
        totalFunded += toLicenses;
        if (toStakers > 0 && IStakingShares(stakingVault).totalSupply() == 0) {
            toTreasury += toStakers;
            toStakers = 0;
        }
        treasuryBalance += toTreasury;
        emit FeesDeposited(msg.sender, amount, toLicenses, toStakers, toTreasury);
        if (toStakers > 0) {
            // The StakingVault vests it over its drip period (security finding M7): no share-price jump.
            token.safeTransfer(stakingVault, toStakers);
            IStakingShares(stakingVault).sync();
        }
    }

    /// @notice Finalize every ended epoch's budget (anyone; also done by every other call).
    function poke() external {
        _roll(_currentEpoch());
    }

    // ------------------------------------------------------------------------------ protocol hooks

    modifier onlyRegistry() {
        if (msg.sender != registry) revert NotRegistry(msg.sender);
        _;
    }

    /// @notice Record that operator `operatorIndex` is present in `epoch` (the current one) with the `count`
    ///         licenses listed under it, booking its previous present epoch first. Called by the AuditProtocol's
    ///         `heartbeat`; O(1) storage whatever `count` is.
    function recordPresence(address operator, uint256 operatorIndex, uint16 commissionBps, uint256 count, uint256 epoch)
        external
        onlyProtocol
    {
        _roll(epoch);
        Presence memory p = _book(operatorIndex, epoch);
        if (p.lastEpochPlus1 == epoch + 1) revert AlreadyPresent(operator, epoch);
        uint256 bits;
        if (p.lastEpochPlus1 != 0) {
            uint256 shift = epoch + 1 - p.lastEpochPlus1;
            bits = shift >= ACTIVITY_HORIZON ? 0 : (uint256(p.activity) << shift) & ACTIVITY_MASK;
        }
        presence[operatorIndex] =
            Presence(uint32(epoch + 1), uint32(count), uint40(bits | 1), false, commissionBps, p.checkpointPlus1);
        if (operatorAddress[operatorIndex] == address(0)) operatorAddress[operatorIndex] = operator;
        epochs[epoch].activeCount += uint32(count);
        emit Present(epoch, operator, count);
    }

    /// @notice `tokenId` is listed under operator `operatorIndex` from epoch `fromEpoch` (the next one). Called
    ///         by the OperatorRegistry.
    function onListed(uint256 tokenId, uint256 operatorIndex, uint256 fromEpoch) external onlyRegistry {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        _checkpoint(operatorIndex, fromEpoch, nowEpoch);
        _settleLicense(tokenId, nowEpoch);
        Span memory cur = spans[tokenId];
        if (cur.operatorIndex != 0) {
            // A span that ended this epoch cannot be credited before its operator's epoch is final: keep it.
            previousSpans[tokenId] = cur;
        }
        spans[tokenId] = Span(uint32(operatorIndex), uint32(fromEpoch), 0, false, 0);
    }

    /// @notice `tokenId` leaves operator `operatorIndex`'s list from epoch `fromEpoch`. Called by the registry.
    function onUnlisted(uint256 tokenId, uint256 operatorIndex, uint256 fromEpoch) external onlyRegistry {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        Span storage sp = spans[tokenId];
        if (sp.from == fromEpoch) {
            delete spans[tokenId]; // listed and unlisted within one epoch: it never earned
            return;
        }
        _checkpoint(operatorIndex, fromEpoch, nowEpoch);
        sp.until = uint32(fromEpoch);
        _settleLicense(tokenId, nowEpoch);
    }

    /// @notice Debit a penalty of `kind` for audited epoch `epoch` from each license, after booking its ended
    ///         pending epoch (so a node that stopped heartbeating loses that credit first). For a miss, the
    ///         reporter gets `missBountyBps` of what is actually forfeited. Called by the AuditProtocol.
    function penalize(uint256[] calldata tokenIds, uint256 epoch, uint8 kind, address reporter)
        external
        onlyProtocol
    {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        Params memory p = params;
        uint256 bps = kind == PENALTY_MISS
            ? p.missPenaltyBps
            : kind == PENALTY_DISAGREE ? p.disagreePenaltyBps : p.trapPenaltyBps;
        uint256 amount = uint256(epochs[epoch].rewardPerLicense) * bps / BPS;
        uint256 forfeited;
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            _settleLicense(id, nowEpoch);
            Account storage a = _accounts[id];
            uint256 freed = _debit(a, amount);
            forfeited += freed;
            _countPenalty(id, a, epoch, nowEpoch, p);
            emit Penalized(id, epoch, kind, amount, freed);
        }
        if (kind == PENALTY_MISS && reporter != address(0)) {
            uint256 bounty = forfeited * p.missBountyBps / BPS;
            if (bounty > 0) {
                forfeited -= bounty;
                bountyOf[reporter] += bounty;
                totalLiabilities += bounty;
                emit BountyCredited(reporter, bounty);
            }
        }
        pool += forfeited;
    }

    /// @notice Book the credit each license has earned in final epochs (harmless for anyone to call).
    function settleLicenses(uint256[] calldata tokenIds) external {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        for (uint256 i; i < tokenIds.length; ++i) {
            _settleLicense(tokenIds[i], nowEpoch);
        }
    }

    // ---------------------------------------------------------------------------------------- claims

    /// @notice Pay the caller the positive balances of its licenses (after booking ended pending epochs).
    function claim(uint256[] calldata tokenIds) external nonReentrant returns (uint256 amount) {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        address[] memory owners = license.ownersOf(tokenIds);
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (owners[i] != msg.sender) revert NotLicenseOwner(id, msg.sender);
            _settleLicense(id, nowEpoch);
            Account storage a = _accounts[id];
            int128 bal = a.balance;
            if (bal > 0) {
                amount += uint128(bal);
                a.balance = 0;
            }
        }
        if (amount == 0) revert NothingToClaim();
        emit Claimed(msg.sender, tokenIds, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Pay the calling operator its commission booked so far (licenses credited).
    function claimCommission() external nonReentrant returns (uint256 amount) {
        return _payCommission();
    }

    /// @notice Credit `tokenIds` (the operator's licenses: its commission is booked as they are credited), then
    ///         pay the calling operator its commission.
    function claimCommissionFor(uint256[] calldata tokenIds) external nonReentrant returns (uint256 amount) {
        uint256 nowEpoch = _currentEpoch();
        _roll(nowEpoch);
        for (uint256 i; i < tokenIds.length; ++i) {
            _settleLicense(tokenIds[i], nowEpoch);
        }
        return _payCommission();
    }

    function _payCommission() internal returns (uint256 amount) {
        amount = commissionOf[msg.sender];
        if (amount == 0) revert NothingToClaim();
        commissionOf[msg.sender] = 0;
        emit CommissionClaimed(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Pay the caller its miss-report bounties.
    function claimBounty() external nonReentrant returns (uint256 amount) {
        amount = bountyOf[msg.sender];
        if (amount == 0) revert NothingToClaim();
        bountyOf[msg.sender] = 0;
        emit BountyClaimed(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Send the treasury its balance. Anyone may call; the money only goes to `treasury`.
    function withdrawTreasury() external nonReentrant returns (uint256 amount) {
        amount = treasuryBalance;
        if (amount == 0) revert NothingToClaim();
        treasuryBalance = 0;
        emit TreasuryWithdrawn(treasury, amount);
        token.safeTransfer(treasury, amount);
    }

    // ------------------------------------------------------------------------------------ governance

    function setParams(Params calldata params_) external onlyOwner {
        _roll(_currentEpoch());
        _setParams(params_);
    }

    function setTreasury(address treasury_) external onlyOwner {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    // ----------------------------------------------------------------------------------------- views

    /// @notice A license's signed balance (wei; negative = debt), suspension end and penalty window.
    function accounts(uint256 tokenId)
        external
        view
        returns (int128 balance, uint32 suspendedUntil, uint32 windowStart, uint16 penaltiesInWindow)
    {
        Account storage a = _accounts[tokenId];
        return (a.balance, a.suspendedUntil, a.windowStart, a.penaltiesInWindow);
    }

    /// @notice Licenses active in `epoch`.
    function activeCount(uint256 epoch) external view returns (uint256) {
        return epochs[epoch].activeCount;
    }

    /// @notice Whether operator `operatorIndex` was present in `epoch` (false beyond `ACTIVITY_HORIZON` back).
    function isPresent(uint256 operatorIndex, uint256 epoch) public view returns (bool) {
        Presence memory p = presence[operatorIndex];
        if (p.lastEpochPlus1 == 0 || epoch + 1 > p.lastEpochPlus1) return false;
        uint256 back = p.lastEpochPlus1 - 1 - epoch;
        return back < ACTIVITY_HORIZON && (p.activity >> back) & 1 == 1;
    }

    /// @notice Whether `tokenId` was active in `epoch`: listed under an operator that was present then. Reverts
    ///         `HistoryLost` for epochs whose list is no longer kept (older than two epochs back).
    function isActive(uint256 tokenId, uint256 epoch) public view returns (bool) {
        uint256 op = IListing(registry).operatorOfAt(tokenId, epoch);
        return op != 0 && isPresent(op, epoch);
    }

    /// @notice The last epoch `tokenId` was active in, + 1 (0: not within `ACTIVITY_HORIZON` epochs of its
    ///         operator's last presence, or never), judged on its current span (or the one before it).
    function lastActivePlus1(uint256 tokenId) external view returns (uint256) {
        uint256 found = _lastActiveIn(spans[tokenId]);
        return found != 0 ? found : _lastActiveIn(previousSpans[tokenId]);
    }

    /// @notice What `tokenId` could claim now, including credit of final epochs not yet booked. Negative means
    ///         a debt that later credit pays first.
    function claimable(uint256 tokenId) external view returns (int256 balance) {
        (balance,) = _creditView(tokenId, address(0));
    }

    /// @notice The commission `operator` could claim now: booked, plus what crediting `tokenIds` would add.
    function commissionClaimable(address operator, uint256[] calldata tokenIds) external view returns (uint256 amount) {
        amount = commissionOf[operator];
        for (uint256 i; i < tokenIds.length; ++i) {
            (, uint256 c) = _creditView(tokenIds[i], operator);
            amount += c;
        }
    }

    /// @notice Whether `tokenId` is suspended in `epoch`.
    function isSuspended(uint256 tokenId, uint256 epoch) external view returns (bool) {
        return _accounts[tokenId].suspendedUntil > epoch;
    }

    // -------------------------------------------------------------------------------------- internal

    function _currentEpoch() internal view returns (uint256) {
        return IEpochClock(protocol).currentEpoch();
    }

    /// @dev Finalize the accumulating epoch's budget once a later epoch has begun, carrying what no license
    ///      earned (no active license, division remainder) and the emission of untouched epochs forward.
    function _roll(uint256 nowEpoch) internal {
        uint256 open = poolEpoch;
        if (nowEpoch <= open) return;
        uint256 budget = pool + _takeEmission(1);
        EpochInfo storage info = epochs[open];
        uint256 count = info.activeCount;
        uint256 per;
        if (count > 0) {
            per = budget / count;
            info.rewardPerLicense = uint128(per);
        }
        info.finalized = true;
        emit EpochFinalized(open, budget, count, per);
        uint256 carry = budget - per * count;
        if (nowEpoch - open > 1) carry += _takeEmission(nowEpoch - open - 1);
        pool = carry;
        poolEpoch = uint32(nowEpoch);
    }

    function _projectedReward(uint256 epoch) internal view returns (uint256) {
        uint256 count = epochs[epoch].activeCount;
        if (count == 0) return 0;
        uint256 emission = uint256(params.emissionPerEpoch);
        if (emission > emissionReserve) emission = emissionReserve;
        return (pool + emission) / count;
    }

    function _takeEmission(uint256 nEpochs) internal returns (uint256 amount) {
        amount = uint256(params.emissionPerEpoch) * nEpochs;
        uint256 reserve = emissionReserve;
        if (amount > reserve) amount = reserve;
        emissionReserve = reserve - amount;
    }

    /// @dev The operator's presence after booking its last present epoch if that epoch's budget is final (at
    ///      `nowEpoch`, after `_roll`), and recording its pending checkpoint if that epoch has begun.
    function _book(uint256 op, uint256 nowEpoch) internal returns (Presence memory p) {
        p = presence[op];
        bool changed;
        if (p.lastEpochPlus1 != 0 && !p.booked && p.lastEpochPlus1 <= nowEpoch) {
            uint256 e = p.lastEpochPlus1 - 1;
            uint256 amount = epochs[e].rewardPerLicense;
            uint256 commission = amount * p.commissionBps / BPS;
            operatorAcc[op] += amount;
            totalLiabilities += amount * p.count;
            p.booked = true;
            changed = true;
            emit OperatorBooked(e, operatorAddress[op], p.count, amount - commission, commission * p.count);
        }
        // No present epoch lies between the checkpoint and now (a presence records it first), and every
        // present epoch before it is booked: `acc` is the operator's sum before the checkpoint.
        if (p.checkpointPlus1 != 0 && p.checkpointPlus1 <= nowEpoch + 1) {
            _accAt[op][p.checkpointPlus1 - 1] = operatorAcc[op];
            p.checkpointPlus1 = 0;
            changed = true;
        }
        if (changed) presence[op] = p;
    }

    /// @dev Ask operator `op` to record `acc` at epoch `edge` (a span edge: nowEpoch + 1).
    function _checkpoint(uint256 op, uint256 edge, uint256 nowEpoch) internal {
        Presence memory p = _book(op, nowEpoch);
        if (p.checkpointPlus1 == edge + 1) return;
        presence[op].checkpointPlus1 = uint32(edge + 1);
    }

    /// @dev Book what `id` earned in final epochs: its previous span (ended) and its current span up to now.
    function _settleLicense(uint256 id, uint256 nowEpoch) internal {
        Span memory prev = previousSpans[id];
        if (prev.operatorIndex != 0 && prev.until <= nowEpoch) {
            _book(prev.operatorIndex, nowEpoch);
            _creditSpan(id, prev, _accAt[prev.operatorIndex][prev.until]);
            delete previousSpans[id];
        }
        Span memory sp = spans[id];
        if (sp.operatorIndex == 0 || sp.from > nowEpoch) return;
        _book(sp.operatorIndex, nowEpoch);
        if (sp.until != 0 && sp.until <= nowEpoch) {
            _creditSpan(id, sp, _accAt[sp.operatorIndex][sp.until]);
            delete spans[id];
        } else {
            uint256 acc = operatorAcc[sp.operatorIndex];
            _creditSpan(id, sp, acc);
            spans[id] = Span(sp.operatorIndex, sp.from, sp.until, true, uint128(acc));
        }
    }

    /// @dev Apply the credit of a span from `base` to `end` (operator `acc`, commission rate `bps`) to balance
    ///      `bal`: the gross first repays a debt (`repaid`), and the operator takes the span's commission in
    ///      proportion to what is left (security finding L2).
    function _applyCredit(int256 bal, uint256 base, uint256 end, uint256 bps)
        internal
        pure
        returns (int256 newBalance, uint256 toOperator, uint256 repaid)
    {
        if (end <= base) return (bal, 0, 0);
        uint256 gross = end - base;
        uint256 commission = end * bps / BPS - base * bps / BPS;
        if (bal < 0) repaid = gross < uint256(-bal) ? gross : uint256(-bal);
        toOperator = repaid == 0 ? commission : commission * (gross - repaid) / gross;
        newBalance = bal + int256(gross - toOperator);
    }

    /// @dev Credit `id` the operator's `acc` between the span's base and `end`, less the commission, which goes
    ///      to the operator from what is left after the license's debt is repaid.
    function _creditSpan(uint256 id, Span memory sp, uint256 end) internal {
        uint256 op = sp.operatorIndex;
        uint256 base = sp.based ? sp.base : _accAt[op][sp.from];
        if (end <= base) return;
        Account storage a = _accounts[id];
        int256 before = a.balance;
        (int256 bal, uint256 toOperator, uint256 repaid) = _applyCredit(before, base, end, presence[op].commissionBps);
        a.balance = int128(bal);
        a.opened = true;
        // Credit that pays a debt is not claimable by anyone: it goes back to the budget.
        if (repaid > 0) {
            pool += repaid;
            totalLiabilities -= repaid;
        }
        if (toOperator > 0) commissionOf[operatorAddress[op]] += toOperator;
        emit Credited(id, op, uint256(bal - before));
    }

    /// @dev `id`'s balance after crediting its spans at now, and the commission that would go to `operator`.
    function _creditView(uint256 id, address operator) internal view returns (int256 balance, uint256 commission) {
        balance = _accounts[id].balance;
        uint256 nowEpoch = _currentEpoch();
        uint256 c;
        Span memory prev = previousSpans[id];
        if (prev.operatorIndex != 0) {
            (balance, c) = _creditSpanView(prev, prev.until, balance, nowEpoch);
            if (operatorAddress[prev.operatorIndex] == operator) commission += c;
        }
        Span memory sp = spans[id];
        if (sp.operatorIndex != 0 && sp.from <= nowEpoch) {
            uint256 end = sp.until != 0 && sp.until <= nowEpoch ? sp.until : nowEpoch;
            (balance, c) = _creditSpanView(sp, end, balance, nowEpoch);
            if (operatorAddress[sp.operatorIndex] == operator) commission += c;
        }
    }

    function _creditSpanView(Span memory sp, uint256 end, int256 balance, uint256 nowEpoch)
        internal
        view
        returns (int256, uint256 toOperator)
    {
        uint256 base = sp.based ? sp.base : _accView(sp, sp.from, nowEpoch);
        uint256 bps = presence[sp.operatorIndex].commissionBps;
        (balance, toOperator,) = _applyCredit(balance, base, _accView(sp, end, nowEpoch), bps);
        return (balance, toOperator);
    }

    /// @dev `acc(x)` of the span's operator as it would be after booking at `nowEpoch` (for views).
    function _accView(Span memory sp, uint256 x, uint256 nowEpoch) internal view returns (uint256) {
        uint256 op = sp.operatorIndex;
        Presence memory p = presence[op];
        // A recorded edge holds acc(x); otherwise x is the pending checkpoint or now, both after every
        // present epoch booked so far.
        if (p.checkpointPlus1 != x + 1 && x < nowEpoch && (x == sp.until || x == sp.from)) return _accAt[op][x];
        uint256 acc = operatorAcc[op];
        if (p.lastEpochPlus1 != 0 && !p.booked && p.lastEpochPlus1 <= nowEpoch && p.lastEpochPlus1 <= x) {
            uint256 e = p.lastEpochPlus1 - 1;
            acc += e < poolEpoch ? epochs[e].rewardPerLicense : _projectedReward(e);
        }
        return acc;
    }

    /// @dev The last epoch + 1 within the span in which its operator was present (0: none found).
    function _lastActiveIn(Span memory sp) internal view returns (uint256) {
        if (sp.operatorIndex == 0) return 0;
        Presence memory p = presence[sp.operatorIndex];
        if (p.lastEpochPlus1 == 0) return 0;
        uint256 last = p.lastEpochPlus1 - 1;
        for (uint256 back; back < ACTIVITY_HORIZON && back <= last; ++back) {
            uint256 e = last - back;
            if (e < sp.from) break;
            if ((p.activity >> back) & 1 == 1 && (sp.until == 0 || e < sp.until)) return e + 1;
        }
        return 0;
    }

    /// @dev Debit `amount`; returns the part that was claimable money (now forfeited).
    function _debit(Account storage a, uint256 amount) internal returns (uint256 freed) {
        int256 bal = a.balance;
        if (bal > 0) freed = uint256(bal) < amount ? uint256(bal) : amount;
        a.balance = int128(bal - int256(amount));
        totalLiabilities -= freed;
    }

    function _countPenalty(uint256 id, Account storage a, uint256 epoch, uint256 nowEpoch, Params memory p)
        internal
    {
        if (a.penaltiesInWindow == 0 || epoch >= uint256(a.windowStart) + p.suspendWindow) {
            a.windowStart = uint32(epoch);
            a.penaltiesInWindow = 1;
        } else {
            a.penaltiesInWindow += 1;
        }
        if (p.suspendAfter != 0 && a.penaltiesInWindow >= p.suspendAfter) {
            uint32 until = uint32(nowEpoch + 1 + p.suspendEpochs);
            a.suspendedUntil = until;
            a.penaltiesInWindow = 0;
            emit LicenseSuspended(id, until);
            IListing(registry).park(id);
        }
    }

    function _setParams(Params memory p) internal {
        if (uint256(p.nodeShareBps) + p.stakerShareBps > BPS || p.missBountyBps > BPS) revert InvalidParams();
        params = p;
        emit ParamsSet(p);
    }
}
