// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Generations} from "./lib/Generations.sol";

interface ILicenseOwners {
    function ownerOf(uint256 tokenId) external view returns (address);
    function ownersOf(uint256[] calldata tokenIds) external view returns (address[] memory);
}

/// @dev The RewardVault's bookkeeping of the list: a license's delegation span under an operator.
interface IRewardSettle {
    function onListed(uint256 tokenId, uint256 operatorIndex, uint256 fromEpoch) external;
    function onUnlisted(uint256 tokenId, uint256 operatorIndex, uint256 fromEpoch) external;
    function isSuspended(uint256 tokenId, uint256 epoch) external view returns (bool);
}

interface IEpochClock {
    function currentEpoch() external view returns (uint256);
}

/// @title OperatorRegistry
/// @notice Operators and the delegation state of every license (PROTOCOL.md section 4).
/// @dev License states: Free -> Pending -> Delegated -> Free. The registry keeps the list that exact committees
///      are drawn from and that presence is counted on (issue 16): the Delegated, unsuspended licenses, each
///      listed from the epoch after it became Delegated until the epoch after it left, at a position (0-based)
///      that is stable within an epoch. Removal swaps the last license into the hole. With the list it keeps
///      each license's operator and each operator's count of listed licenses per epoch. Every word keeps its
///      recent generations (lib/Generations.sol), so epoch `e`'s values stay readable until the end of `e + 2`.
///      Every listing and unlisting is reported to the RewardVault, which credits a license for the epochs its
///      operator was present in while it was listed under it. A license suspended by the vault is unlisted
///      ("parked") and stays Delegated; `resume` lists it again once the suspension ends.
contract OperatorRegistry is Ownable {
    using Generations for uint256;

    enum LicenseState {
        Free,
        Pending,
        Delegated
    }

    struct Operator {
        bool registered;
        uint16 commissionBps; // fixed forever at registration
        uint32 delegated; // licenses in state Delegated with this operator
        uint32 pending; // licenses in state Pending with this operator
        uint32 index; // 1-based registration order: the operator's id in per-epoch records
        string metadataURI;
    }

    struct Delegation {
        address operator;
        LicenseState state;
        bool parked; // Delegated but unlisted while suspended
    }

    /// @notice Highest commission an operator may register with (basis points).
    uint16 public constant MAX_COMMISSION_BPS = 5000;

    ILicenseOwners public immutable license;
    /// @notice The RewardVault settled on every transition. Set once.
    IRewardSettle public rewardVault;
    /// @notice Cap on Delegated licenses per operator (0 = no cap).
    uint32 public maxLicensesPerOperator;
    /// @notice When on, only allowlisted accounts may register as operators.
    bool public operatorAllowlistEnabled;
    /// @notice Oldest node release operators may run, as major << 16 | minor << 8 | patch (0: any). Nodes read it at
    /// start and every epoch; an older node stops sending transactions (docs/node.md, "Upgrades").
    uint32 public minNodeVersion;
    mapping(address => bool) public operatorAllowlisted;

    mapping(address => Operator) private _operators;
    mapping(uint256 => Delegation) private _delegations;
    /// @notice Registered operators, in registration order.
    address[] public operatorList;
    /// @notice The epoch clock (the AuditProtocol); list changes take effect from its next epoch. Set once.
    IEpochClock public clock;
    /// @dev The committee list: its length, the license at each position, each license's position + 1.
    uint256 private _listed;
    mapping(uint256 => uint256) private _listAt;
    mapping(uint256 => uint256) private _listPos;
    /// @dev Each license's operator index while listed (0: not listed), each operator's listed count.
    mapping(uint256 => uint256) private _listOperator;
    mapping(uint256 => uint256) private _operatorListed;

    error AlreadyRegistered(address operator);
    error CommissionTooHigh(uint256 commissionBps, uint256 max);
    error OperatorNotAllowlisted(address operator);
    error NotRegistered(address operator);
    error NotLicenseOwner(uint256 tokenId, address caller);
    error NotFree(uint256 tokenId);
    error NotPending(uint256 tokenId);
    error AlreadyFree(uint256 tokenId);
    error NotYourLicense(uint256 tokenId, address operator);
    error NotDelegatedTo(uint256 tokenId, address operator);
    error OperatorFull(address operator, uint256 max);
    error NotLicense(address caller);
    error AlreadySet();
    error ZeroAddress();
    error IdTooLarge(uint256 tokenId);
    error NotParked(uint256 tokenId);
    error StillSuspended(uint256 tokenId);
    error NotVault(address caller);

    event OperatorRegistered(address indexed operator, uint16 commissionBps, string metadataURI);
    event LicenseStateChanged(uint256 indexed tokenId, address indexed operator, LicenseState state);
    event MaxLicensesPerOperatorSet(uint32 max);
    event MinNodeVersionSet(uint32 version);
    event OperatorAllowlistEnabled(bool enabled);
    event OperatorAllowlisted(address indexed operator, bool allowed);
    event RewardVaultSet(address vault);
    event ClockSet(address clock);
    /// @notice `tokenId` joins (`listed`) or leaves the committee list from epoch `fromEpoch`.
    event Listed(uint256 indexed tokenId, bool listed, uint256 fromEpoch);
    /// @notice A suspended license left the list (`parked`) or came back to it.
    event Parked(uint256 indexed tokenId, bool parked);

    constructor(ILicenseOwners license_, uint32 maxLicensesPerOperator_, address owner_) Ownable(owner_) {
        license = license_;
        maxLicensesPerOperator = maxLicensesPerOperator_;
    }

    /// @notice Wire the RewardVault (once, at deployment).
    function setRewardVault(IRewardSettle vault) external onlyOwner {
        if (address(rewardVault) != address(0)) revert AlreadySet();
        if (address(vault) == address(0)) revert ZeroAddress();
        rewardVault = vault;
        emit RewardVaultSet(address(vault));
    }

    /// @notice Wire the epoch clock (once, at deployment).
    function setClock(IEpochClock clock_) external onlyOwner {
        if (address(clock) != address(0)) revert AlreadySet();
        if (address(clock_) == address(0)) revert ZeroAddress();
        clock = clock_;
        emit ClockSet(address(clock_));
    }

    // ------------------------------------------------------------------------------------- operators

    /// @notice Register the caller as an operator with a commission that can never change.
    function registerOperator(uint16 commissionBps, string calldata metadataURI) external {
        Operator storage op = _operators[msg.sender];
        if (op.registered) revert AlreadyRegistered(msg.sender);
        if (commissionBps > MAX_COMMISSION_BPS) revert CommissionTooHigh(commissionBps, MAX_COMMISSION_BPS);
        if (operatorAllowlistEnabled && !operatorAllowlisted[msg.sender]) revert OperatorNotAllowlisted(msg.sender);
        op.registered = true;
        op.commissionBps = commissionBps;
        op.metadataURI = metadataURI;
        operatorList.push(msg.sender);
        op.index = uint32(operatorList.length);
        emit OperatorRegistered(msg.sender, commissionBps, metadataURI);
    }

    // ------------------------------------------------------------------------------------ delegation

    /// @notice Delegate the caller's Free licenses to `operator`: Pending, or Delegated at once when the
    ///         caller is that operator.
    function delegate(uint256[] calldata tokenIds, address operator) external {
        Operator storage op = _operators[operator];
        if (!op.registered) revert NotRegistered(operator);
        bool self = operator == msg.sender;
        LicenseState next = self ? LicenseState.Delegated : LicenseState.Pending;
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (license.ownerOf(id) != msg.sender) revert NotLicenseOwner(id, msg.sender);
            Delegation storage d = _delegations[id];
            if (d.state != LicenseState.Free) revert NotFree(id);
            d.operator = operator;
            d.state = next;
            emit LicenseStateChanged(id, operator, next);
            if (self) _list(id);
        }
        uint32 n = uint32(tokenIds.length);
        if (self) {
            _checkCap(op, operator, n);
            op.delegated += n;
        } else {
            op.pending += n;
        }
    }

    /// @notice Accept Pending licenses delegated to the caller: Delegated.
    function approve(uint256[] calldata tokenIds) external {
        Operator storage op = _operators[msg.sender];
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            Delegation storage d = _delegations[id];
            if (d.state != LicenseState.Pending) revert NotPending(id);
            if (d.operator != msg.sender) revert NotYourLicense(id, msg.sender);
            d.state = LicenseState.Delegated;
            emit LicenseStateChanged(id, msg.sender, LicenseState.Delegated);
            _list(id);
        }
        uint32 n = uint32(tokenIds.length);
        _checkCap(op, msg.sender, n);
        op.pending -= n;
        op.delegated += n;
    }

    /// @notice The owner takes licenses back, at once: Free.
    function undelegate(uint256[] calldata tokenIds) external {
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (license.ownerOf(id) != msg.sender) revert NotLicenseOwner(id, msg.sender);
            _free(id);
        }
    }

    /// @notice The operator drops licenses delegated (or pending) to it: Free.
    function forceUndelegate(uint256[] calldata tokenIds) external {
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (_delegations[id].operator != msg.sender || _delegations[id].state == LicenseState.Free) {
                revert NotYourLicense(id, msg.sender);
            }
            _free(id);
        }
    }

    /// @notice Called by the license on every transfer: the delegation ends with the old owner.
    function onLicenseTransfer(uint256 tokenId) external {
        if (msg.sender != address(license)) revert NotLicense(msg.sender);
        if (_delegations[tokenId].state != LicenseState.Free) _free(tokenId);
    }

    /// @notice Take a suspended license off the list from the next epoch; it stays Delegated (the RewardVault).
    function park(uint256 tokenId) external {
        if (msg.sender != address(rewardVault)) revert NotVault(msg.sender);
        Delegation storage d = _delegations[tokenId];
        if (d.state != LicenseState.Delegated || d.parked) return;
        d.parked = true;
        emit Parked(tokenId, true);
        _unlist(tokenId);
    }

    /// @notice List parked licenses again from the next epoch, once their suspension has ended by then (anyone:
    ///         the operator's node does it in the epoch before the suspension ends).
    function resume(uint256[] calldata tokenIds) external {
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            Delegation storage d = _delegations[id];
            if (d.state != LicenseState.Delegated || !d.parked) revert NotParked(id);
            if (rewardVault.isSuspended(id, _from())) revert StillSuspended(id);
            d.parked = false;
            emit Parked(id, false);
            _list(id);
        }
    }

    // ---------------------------------------------------------------------------------- governance

    function setMaxLicensesPerOperator(uint32 max) external onlyOwner {
        maxLicensesPerOperator = max;
        emit MaxLicensesPerOperatorSet(max);
    }

    /// @notice Set the oldest node release operators may run (major << 16 | minor << 8 | patch; 0: any).
    function setMinNodeVersion(uint32 version) external onlyOwner {
        minNodeVersion = version;
        emit MinNodeVersionSet(version);
    }

    function setOperatorAllowlistEnabled(bool enabled) external onlyOwner {
        operatorAllowlistEnabled = enabled;
        emit OperatorAllowlistEnabled(enabled);
    }

    function setOperatorAllowlisted(address operator, bool allowed) external onlyOwner {
        operatorAllowlisted[operator] = allowed;
        emit OperatorAllowlisted(operator, allowed);
    }

    // ----------------------------------------------------------------------------------------- views

    function getOperator(address operator) external view returns (Operator memory) {
        return _operators[operator];
    }

    function commissionOf(address operator) external view returns (uint16) {
        return _operators[operator].commissionBps;
    }

    function isOperator(address operator) external view returns (bool) {
        return _operators[operator].registered;
    }

    function operatorCount() external view returns (uint256) {
        return operatorList.length;
    }

    function delegationOf(uint256 tokenId) external view returns (address operator, LicenseState state) {
        Delegation storage d = _delegations[tokenId];
        return (d.operator, d.state);
    }

    /// @notice Whether a Delegated license is parked (off the list while suspended).
    function isParked(uint256 tokenId) external view returns (bool) {
        return _delegations[tokenId].parked;
    }

    /// @notice The operator's index (1-based registration order; 0: not registered) and commission.
    function operatorIndexOf(address operator) external view returns (uint256 index, uint16 commissionBps) {
        Operator storage op = _operators[operator];
        return (op.index, op.commissionBps);
    }

    /// @notice The operator `tokenId` was listed under in `epoch` (index; 0: not listed).
    function operatorOfAt(uint256 tokenId, uint256 epoch) external view returns (uint256) {
        return _listOperator[tokenId].valueAt(epoch);
    }

    /// @notice How many licenses were listed under operator `index` in `epoch`.
    function listedCountAt(uint256 index, uint256 epoch) external view returns (uint256) {
        return _operatorListed[index].valueAt(epoch);
    }

    /// @notice Revert unless every license is Delegated to `operator`; returns the operator's commission.
    /// @dev The AuditProtocol's batch check for heartbeat and commit: one call for the whole batch.
    function requireDelegated(address operator, uint256[] calldata tokenIds) external view returns (uint16) {
        for (uint256 i; i < tokenIds.length; ++i) {
            Delegation storage d = _delegations[tokenIds[i]];
            if (d.operator != operator || d.state != LicenseState.Delegated) {
                revert NotDelegatedTo(tokenIds[i], operator);
            }
        }
        return _operators[operator].commissionBps;
    }

    /// @notice How many licenses the committee list of `epoch` holds.
    function listedAt(uint256 epoch) external view returns (uint256) {
        return _listed.valueAt(epoch);
    }

    /// @notice The license at position `index` of the committee list of `epoch`.
    function licenseAt(uint256 index, uint256 epoch) external view returns (uint256) {
        return _listAt[index].valueAt(epoch);
    }

    /// @notice The committee list's length in `epoch` and `tokenId`'s position + 1 in it (0: not listed).
    function positionAt(uint256 tokenId, uint256 epoch) external view returns (uint256 listed, uint256 position) {
        return (_listed.valueAt(epoch), _listPos[tokenId].valueAt(epoch));
    }

    /// @notice `positionAt` for many licenses.
    function positionsAt(uint256[] calldata tokenIds, uint256 epoch)
        external
        view
        returns (uint256 listed, uint256[] memory positions)
    {
        listed = _listed.valueAt(epoch);
        positions = new uint256[](tokenIds.length);
        for (uint256 i; i < tokenIds.length; ++i) {
            positions[i] = _listPos[tokenIds[i]].valueAt(epoch);
        }
    }

    // -------------------------------------------------------------------------------------- internal

    /// @dev The epoch list changes made now take effect from (0 before the clock is wired: at once).
    function _from() internal view returns (uint256) {
        IEpochClock c = clock;
        return address(c) == address(0) ? 0 : c.currentEpoch() + 1;
    }

    function _list(uint256 id) internal {
        if (id > type(uint32).max) revert IdTooLarge(id);
        uint256 from = _from();
        IRewardSettle vault = rewardVault;
        Delegation storage d = _delegations[id];
        if (address(vault) != address(0) && vault.isSuspended(id, from)) {
            d.parked = true;
            emit Parked(id, true);
            return;
        }
        uint256 opIndex = _operators[d.operator].index;
        _listOperator[id] = _listOperator[id].write(opIndex, from);
        _operatorListed[opIndex] = _operatorListed[opIndex].write(_operatorListed[opIndex].latest() + 1, from);
        if (address(vault) != address(0)) vault.onListed(id, opIndex, from);
        uint256 n = _listed.latest();
        _listAt[n] = _listAt[n].write(id, from);
        _listPos[id] = _listPos[id].write(n + 1, from);
        _listed = _listed.write(n + 1, from);
        emit Listed(id, true, from);
    }

    function _unlist(uint256 id) internal {
        uint256 from = _from();
        uint256 opIndex = _listOperator[id].latest();
        _listOperator[id] = _listOperator[id].write(0, from);
        _operatorListed[opIndex] = _operatorListed[opIndex].write(_operatorListed[opIndex].latest() - 1, from);
        if (address(rewardVault) != address(0)) rewardVault.onUnlisted(id, opIndex, from);
        uint256 i = _listPos[id].latest() - 1;
        uint256 last = _listed.latest() - 1;
        if (i != last) {
            uint256 moved = _listAt[last].latest();
            _listAt[i] = _listAt[i].write(moved, from);
            _listPos[moved] = _listPos[moved].write(i + 1, from);
        }
        _listAt[last] = _listAt[last].write(0, from);
        _listPos[id] = _listPos[id].write(0, from);
        _listed = _listed.write(last, from);
        emit Listed(id, false, from);
    }

    function _free(uint256 id) internal {
        Delegation storage d = _delegations[id];
        LicenseState state = d.state;
        if (state == LicenseState.Free) revert AlreadyFree(id);
        Operator storage op = _operators[d.operator];
        if (state == LicenseState.Delegated) {
            op.delegated -= 1;
            if (d.parked) {
                d.parked = false;
                emit Parked(id, false);
            } else {
                _unlist(id);
            }
        } else {
            op.pending -= 1;
        }
        emit LicenseStateChanged(id, d.operator, LicenseState.Free);
        d.state = LicenseState.Free;
        d.operator = address(0);
    }

    function _checkCap(Operator storage op, address operator, uint32 adding) internal view {
        uint32 max = maxLicensesPerOperator;
        if (max != 0 && op.delegated + adding > max) revert OperatorFull(operator, max);
    }

}
