// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

interface ILicenseOwners {
    function ownerOf(uint256 tokenId) external view returns (address);
    function ownersOf(uint256[] calldata tokenIds) external view returns (address[] memory);
}

interface IRewardSettle {
    function settleLicenses(uint256[] calldata tokenIds) external;
}

/// @title OperatorRegistry
/// @notice Operators and the delegation state of every license (PROTOCOL.md section 4).
/// @dev License states: Free -> Pending -> Delegated -> Free. Every transition first settles the license's
///      pending reward in the RewardVault, so commission is taken at the rate of the operator that earned it.
contract OperatorRegistry is Ownable {
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
        string metadataURI;
    }

    struct Delegation {
        address operator;
        LicenseState state;
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
    mapping(address => bool) public operatorAllowlisted;

    mapping(address => Operator) private _operators;
    mapping(uint256 => Delegation) private _delegations;
    /// @notice Registered operators, in registration order.
    address[] public operatorList;

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

    event OperatorRegistered(address indexed operator, uint16 commissionBps, string metadataURI);
    event LicenseStateChanged(uint256 indexed tokenId, address indexed operator, LicenseState state);
    event MaxLicensesPerOperatorSet(uint32 max);
    event OperatorAllowlistEnabled(bool enabled);
    event OperatorAllowlisted(address indexed operator, bool allowed);
    event RewardVaultSet(address vault);

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
        emit OperatorRegistered(msg.sender, commissionBps, metadataURI);
    }

    // ------------------------------------------------------------------------------------ delegation

    /// @notice Delegate the caller's Free licenses to `operator`: Pending, or Delegated at once when the
    ///         caller is that operator.
    function delegate(uint256[] calldata tokenIds, address operator) external {
        Operator storage op = _operators[operator];
        if (!op.registered) revert NotRegistered(operator);
        _settle(tokenIds);
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
        _settle(tokenIds);
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            Delegation storage d = _delegations[id];
            if (d.state != LicenseState.Pending) revert NotPending(id);
            if (d.operator != msg.sender) revert NotYourLicense(id, msg.sender);
            d.state = LicenseState.Delegated;
            emit LicenseStateChanged(id, msg.sender, LicenseState.Delegated);
        }
        uint32 n = uint32(tokenIds.length);
        _checkCap(op, msg.sender, n);
        op.pending -= n;
        op.delegated += n;
    }

    /// @notice The owner takes licenses back, at once: Free.
    function undelegate(uint256[] calldata tokenIds) external {
        _settle(tokenIds);
        for (uint256 i; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (license.ownerOf(id) != msg.sender) revert NotLicenseOwner(id, msg.sender);
            _free(id);
        }
    }

    /// @notice The operator drops licenses delegated (or pending) to it: Free.
    function forceUndelegate(uint256[] calldata tokenIds) external {
        _settle(tokenIds);
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
        if (_delegations[tokenId].state != LicenseState.Free) {
            uint256[] memory ids = new uint256[](1);
            ids[0] = tokenId;
            if (address(rewardVault) != address(0)) rewardVault.settleLicenses(ids);
            _free(tokenId);
        }
    }

    // ---------------------------------------------------------------------------------- governance

    function setMaxLicensesPerOperator(uint32 max) external onlyOwner {
        maxLicensesPerOperator = max;
        emit MaxLicensesPerOperatorSet(max);
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

    // -------------------------------------------------------------------------------------- internal

    function _free(uint256 id) internal {
        Delegation storage d = _delegations[id];
        LicenseState state = d.state;
        if (state == LicenseState.Free) revert AlreadyFree(id);
        Operator storage op = _operators[d.operator];
        if (state == LicenseState.Delegated) op.delegated -= 1;
        else op.pending -= 1;
        emit LicenseStateChanged(id, d.operator, LicenseState.Free);
        d.state = LicenseState.Free;
        d.operator = address(0);
    }

    function _checkCap(Operator storage op, address operator, uint32 adding) internal view {
        uint32 max = maxLicensesPerOperator;
        if (max != 0 && op.delegated + adding > max) revert OperatorFull(operator, max);
    }

    function _settle(uint256[] calldata tokenIds) internal {
        if (address(rewardVault) != address(0)) rewardVault.settleLicenses(tokenIds);
    }
}
