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
}

/// @title RewardVault
/// @notice Fee split, per-epoch budgets, presence credit, penalties, commission and claims
///         (PROTOCOL.md section 8). Every amount is in wei of the reward token; every payment is pulled.
/// @dev Each license has two storage slots (presence and account), so every per-license operation is O(1):
///      - presence: the last epoch it was active in (its one pending epoch), a bitmap of its activity in the
///        `ACTIVITY_HORIZON` epochs up to that one (for miss reports), and the operator and commission that
///        earned that epoch (so a later delegation change cannot move earned commission);
///      - account: its signed balance (a debt is paid from later credit), suspension and penalty window.
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

    struct Presence {
        uint32 lastEpochPlus1; // 0 = never active
        uint40 activity; // bit i: active in epoch (lastEpoch - i)
        bool credited; // lastEpoch's credit already booked
        uint16 commissionBps; // commission of the operator that earned lastEpoch
        address operator; // operator that earned lastEpoch
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

    mapping(uint256 => Presence) public presence;
    mapping(uint256 => Account) private _accounts;
    mapping(uint256 => EpochInfo) public epochs;
    /// @notice Commission owed to each operator, bounties owed to each miss reporter (wei).
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
    error AlreadySet();
    error ZeroAddress();
    error InvalidParams();
    error ZeroAmount();
    error Suspended(uint256 tokenId, uint256 until);
    error AlreadyActive(uint256 tokenId, uint256 epoch);
    error NotActive(uint256 tokenId, uint256 epoch);
    error NotLicenseOwner(uint256 tokenId, address caller);
    error NothingToClaim();

    event Wired(address protocol, address registry);
    event ParamsSet(Params params);
    event TreasurySet(address treasury);
    event EmissionFunded(address indexed from, uint256 amount);
    event FeesDeposited(address indexed from, uint256 amount, uint256 toLicenses, uint256 toStakers, uint256 toTreasury);
    event EpochFinalized(uint256 indexed epoch, uint256 budget, uint256 activeCount, uint256 rewardPerLicense);
    event Heartbeats(uint256 indexed epoch, address indexed operator, uint256[] tokenIds);
    event Credited(uint256 indexed tokenId, uint256 indexed epoch, address indexed operator, uint256 toLicense, uint256 commission);
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
        if (toStakers > 0) token.safeTransfer(stakingVault, toStakers);
    }

    /// @notice Finalize every ended epoch's budget (anyone; also done by every other call).
    function poke() external {
        _roll(_currentEpoch());
    }

    // ------------------------------------------------------------------------------ protocol hooks

    /// @notice Record that `tokenIds` are active in `epoch` (the current one) for `operator`, crediting each
    ///         license's previous pending epoch first. Called by the AuditProtocol's `heartbeat`.
    function recordHeartbeats(address operator, uint16 commissionBps, uint256[] calldata tokenIds, uint256 epoch)
        external
        onlyProtocol
    {
        _roll(epoch);
        uint256 sameOperatorCommission;
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            Account storage a = _accounts[id];
            if (a.suspendedUntil > epoch) revert Suspended(id, a.suspendedUntil);
            Presence memory p = presence[id];
            uint256 last = p.lastEpochPlus1;
            if (last == epoch + 1) revert AlreadyActive(id, epoch);
            uint256 bits;
            if (last != 0) {
                last -= 1;
                if (!p.credited) {
                    uint256 c = _credit(id, last, p, a);
                    if (p.operator == operator) sameOperatorCommission += c;
                    else commissionOf[p.operator] += c;
                }
                uint256 shift = epoch - last;
                bits = shift >= ACTIVITY_HORIZON ? 0 : (uint256(p.activity) << shift) & ACTIVITY_MASK;
            }
            presence[id] = Presence(uint32(epoch + 1), uint40(bits | 1), false, commissionBps, operator);
        }
        if (sameOperatorCommission > 0) commissionOf[operator] += sameOperatorCommission;
        epochs[epoch].activeCount += uint32(tokenIds.length);
        emit Heartbeats(epoch, operator, tokenIds);
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
            _settlePending(id);
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

    /// @notice Book the ended pending epoch of each license (no-op for the others). Called on every
    ///         delegation change; harmless for anyone to call.
    function settleLicenses(uint256[] calldata tokenIds) external {
        _roll(_currentEpoch());
        for (uint256 i; i < tokenIds.length; ++i) {
            _settlePending(tokenIds[i]);
        }
    }

    // ---------------------------------------------------------------------------------------- claims

    /// @notice Pay the caller the positive balances of its licenses (after booking ended pending epochs).
    function claim(uint256[] calldata tokenIds) external nonReentrant returns (uint256 amount) {
        _roll(_currentEpoch());
        address[] memory owners = license.ownersOf(tokenIds);
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (owners[i] != msg.sender) revert NotLicenseOwner(id, msg.sender);
            _settlePending(id);
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

    /// @notice Pay the calling operator its commission.
    function claimCommission() external nonReentrant returns (uint256 amount) {
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

    /// @notice Whether `tokenId` was active in `epoch` (false beyond `ACTIVITY_HORIZON` epochs back).
    function isActive(uint256 tokenId, uint256 epoch) public view returns (bool) {
        Presence memory p = presence[tokenId];
        if (p.lastEpochPlus1 == 0 || epoch + 1 > p.lastEpochPlus1) return false;
        uint256 back = p.lastEpochPlus1 - 1 - epoch;
        return back < ACTIVITY_HORIZON && (p.activity >> back) & 1 == 1;
    }

    /// @notice Revert unless every license is active in `epoch` (the AuditProtocol's commit check).
    function requireActive(uint256[] calldata tokenIds, uint256 epoch) external view {
        for (uint256 i; i < tokenIds.length; ++i) {
            if (presence[tokenIds[i]].lastEpochPlus1 != epoch + 1) revert NotActive(tokenIds[i], epoch);
        }
    }

    /// @notice What `tokenId` could claim now, including an ended pending epoch not yet booked. Negative
    ///         means a debt that later credit pays first.
    function claimable(uint256 tokenId) external view returns (int256 balance) {
        balance = _accounts[tokenId].balance;
        Presence memory p = presence[tokenId];
        if (p.lastEpochPlus1 != 0 && !p.credited) {
            uint256 last = p.lastEpochPlus1 - 1;
            if (last < _currentEpoch()) {
                uint256 amount = last < poolEpoch ? epochs[last].rewardPerLicense : _projectedReward(last);
                balance += int256(amount - amount * p.commissionBps / BPS);
            }
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

    function _settlePending(uint256 id) internal {
        Presence memory p = presence[id];
        if (p.lastEpochPlus1 == 0 || p.credited) return;
        uint256 last = p.lastEpochPlus1 - 1;
        if (last >= poolEpoch) return; // not ended yet
        commissionOf[p.operator] += _credit(id, last, p, _accounts[id]);
        presence[id].credited = true;
    }

    /// @dev Book `epoch`'s credit for license `id`; returns the commission (the caller adds it to the operator).
    function _credit(uint256 id, uint256 epoch, Presence memory p, Account storage a)
        internal
        returns (uint256 commission)
    {
        uint256 amount = epochs[epoch].rewardPerLicense;
        if (amount == 0) return 0;
        commission = amount * p.commissionBps / BPS;
        uint256 net = amount - commission;
        int256 bal = a.balance;
        int256 next = bal + int256(net);
        a.balance = int128(next);
        a.opened = true;
        // Credit that pays a debt is not claimable by anyone: it goes back to the budget.
        uint256 repaid = bal < 0 ? (net < uint256(-bal) ? net : uint256(-bal)) : 0;
        pool += repaid;
        totalLiabilities += amount - repaid;
        emit Credited(id, epoch, p.operator, net, commission);
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
        }
    }

    function _setParams(Params memory p) internal {
        if (uint256(p.nodeShareBps) + p.stakerShareBps > BPS || p.missBountyBps > BPS) revert InvalidParams();
        params = p;
        emit ParamsSet(p);
    }
}
