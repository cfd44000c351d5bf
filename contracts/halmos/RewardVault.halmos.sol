// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {HalmosBase} from "./HalmosBase.sol";
import {RewardVault, ILicenseOwnersBatch} from "../src/RewardVault.sol";
import {RewardToken} from "../src/RewardToken.sol";

/// @notice Properties 3 and 4 on the RewardVault, bounded: two operators, three licenses, a few epochs.
/// @dev The check contract plays the vault's owner, its AuditProtocol (clock, heartbeats, penalties), its
///      OperatorRegistry (listings), the license contract (it owns every license) and an empty StakingVault.
///      Amounts (emission per epoch, fees) are symbolic picks among values chosen to make rounding bite
///      (`_emission`, `_fees`); commissions are fixed. Presence, claims, penalty kind and reporter are symbolic.
contract RewardVaultCheck is HalmosBase {
    address internal constant OP1 = address(0x1001);
    address internal constant OP2 = address(0x1002);
    address internal constant REPORTER = address(0x2001);

    RewardVault internal vault;
    RewardToken internal token;
    uint256 public currentEpoch;
    mapping(uint256 => uint256) internal _operatorOf;

    // ------------------------------------------------------------- the roles the check plays

    function operatorOfAt(uint256 tokenId, uint256) external view returns (uint256) {
        return _operatorOf[tokenId];
    }

    function park(uint256) external {}

    function ownersOf(uint256[] calldata ids) external view returns (address[] memory owners) {
        owners = new address[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            owners[i] = address(this);
        }
    }

    /// @dev As the StakingVault: nobody stakes, so the stakers' share goes to the treasury.
    function totalSupply() external pure returns (uint256) {
        return 0;
    }

    // ---------------------------------------------------------------------------------- setup

    /// @dev The amounts are picked, not free: with free 256-bit amounts every comparison and division in the vault
    ///      forks the exploration, which had not finished in 30 minutes here (docs/halmos.md). Each pick is a
    ///      symbolic choice among values that make the rounding bite: 1 wei (everything rounds to zero), an odd
    ///      amount not divisible by the shares, bps or license counts, and the largest the vault takes.
    function _emission(uint8 pick) internal pure returns (uint256) {
        if (pick == 0) return 1;
        if (pick == 1) return 1 ether + 7;
        vm.assume(pick == 2);
        return type(uint96).max / 8;
    }

    function _fees(uint8 pick) internal pure returns (uint256) {
        if (pick == 0) return 0;
        if (pick == 1) return 3;
        vm.assume(pick == 2);
        return 10_000 ether + 1;
    }

    function _deploy(uint256 emissionPerEpoch) internal {
        // Funded for every epoch the checks run, and one odd wei over (so the emission drawn is the same on every
        // path and the reserve never divides evenly).
        uint256 funded = emissionPerEpoch * 8 + 1;
        token = new RewardToken("Reward", "RWD", address(this));
        RewardVault.Params memory p = RewardVault.Params({
            nodeShareBps: 7_000,
            stakerShareBps: 2_000,
            missBountyBps: 1_000,
            missPenaltyBps: 10_000,
            disagreePenaltyBps: 20_000,
            trapPenaltyBps: 30_000,
            suspendAfter: 0,
            suspendWindow: 10,
            suspendEpochs: 2,
            emissionPerEpoch: uint128(emissionPerEpoch)
        });
        vault = new RewardVault(token, address(this), ILicenseOwnersBatch(address(this)), address(0x7777), p, address(this));
        vault.wire(address(this), address(this));
        token.mint(address(this), type(uint128).max);
        token.approve(address(vault), type(uint256).max);
        vault.fundEmission(funded);
    }

    function _list(uint256 tokenId, uint256 op) internal {
        if (_operatorOf[tokenId] != 0) vault.onUnlisted(tokenId, _operatorOf[tokenId], currentEpoch + 1);
        _operatorOf[tokenId] = op;
        vault.onListed(tokenId, op, currentEpoch + 1);
    }

    function _present(bool yes, address operator, uint256 op, uint16 bps, uint256 count) internal {
        if (yes) vault.recordPresence(operator, op, bps, count, currentEpoch);
    }

    function _claim(uint256 tokenId) internal returns (uint256 amount) {
        uint256[] memory ids = new uint256[](1);
        ids[0] = tokenId;
        try vault.claim(ids) returns (uint256 a) {
            amount = a;
        } catch {}
    }

    function _positive(uint256 tokenId) internal view returns (uint256) {
        (int128 bal,,,) = vault.accounts(tokenId);
        return bal > 0 ? uint256(int256(bal)) : 0;
    }

    /// @dev Gross per-license credit of `epoch`.
    function _per(uint256 epoch) internal view returns (uint256) {
        (uint128 per,,) = vault.epochs(epoch);
        return per;
    }

    /// @dev What a license with no debt keeps of gross credit `gross` earned under an operator with commission
    ///      `bps` from the operator's first presence on: the commission is rounded on the running sum.
    function _netOf(uint256 gross, uint16 bps) internal pure returns (uint256) {
        return gross - gross * bps / 10_000;
    }

    // ----------------------------------------------------------------------------------- checks

    /// @notice Property 3 (bounded): license 1 stays under operator 1; license 2 moves from operator 1 to
    ///         operator 2 at epoch 3. Commissions 15% and 5%. Operator 1 is present or not in epochs 1 and 2,
    ///         operator 2 in epoch 3 (symbolic), operator 1 is present in epoch 3; the licenses are claimed or not
    ///         in epoch 3 (symbolic), and everything is claimed in epoch 5. Each license
    ///         is paid exactly once the credit of each epoch it was active in, net of its operator's commission
    ///         (rounded on the sum, however the claims cut it): never twice, never lost.
    function check_licenseCreditedOncePerEpoch(uint8 emissionPick, uint8 feesPick, bool[3] calldata present, bool claimEarly)
        external
    {
        uint256 fees = _fees(feesPick);
        _deploy(_emission(emissionPick));
        (uint16 bps1, uint16 bps2) = (1_500, 500);
        _list(1, 1);
        _list(2, 1);

        currentEpoch = 1;
        _present(present[0], OP1, 1, bps1, 2);
        if (fees > 0) vault.depositFees(fees);

        currentEpoch = 2;
        _present(present[1], OP1, 1, bps1, 2);
        _list(2, 2); // under operator 2 from epoch 3

        currentEpoch = 3;
        _present(true, OP1, 1, bps1, 1);
        _present(present[2], OP2, 2, bps2, 1);
        uint256[3] memory paid;
        if (claimEarly) {
            paid[1] += _claim(1);
            paid[2] += _claim(2);
        }

        currentEpoch = 5;
        paid[1] += _claim(1);
        paid[2] += _claim(2);
        // Claiming again pays nothing.
        assert(_claim(1) == 0 && _claim(2) == 0);

        uint256 g12 = (present[0] ? _per(1) : 0) + (present[1] ? _per(2) : 0);
        assert(paid[1] == _netOf(g12 + _per(3), bps1));
        assert(paid[2] == _netOf(g12, bps1) + (present[2] ? _netOf(_per(3), bps2) : 0));
    }

    /// @notice Property 4 (bounded): commissions 15% (operator 1) and 100% (operator 2); after funding, fees,
    ///         presence (operator 1 in epochs 1 and 2, operator 2 in epoch 3: symbolic; the others fixed present),
    ///         license 2 moving to operator 2, a penalty of a symbolic kind on licenses 1 and 3 with or without a
    ///         reporter, and claims in epochs 2 and 5, what was paid
    ///         out plus what is still owed (license balances, commissions, bounties) never exceeds what was funded
    ///         to licenses (`totalFunded`), and the vault's token balance covers everything it still owes.
    function check_nothingClaimableBeyondFunded(
        uint8 emissionPick,
        uint8 feesPick,
        bool[3] calldata present,
        uint8 kind,
        bool withReporter
    ) external {
        uint256 fees = _fees(feesPick);
        vm.assume(kind >= 1);
        vm.assume(kind <= 3);
        _deploy(_emission(emissionPick));
        (uint16 bps1, uint16 bps2) = (1_500, 10_000);
        _list(1, 1);
        _list(2, 1);
        _list(3, 2);

        currentEpoch = 1;
        _present(present[0], OP1, 1, bps1, 2);
        _present(true, OP2, 2, bps2, 1);
        if (fees > 0) vault.depositFees(fees);

        currentEpoch = 2;
        uint256[] memory ids = new uint256[](2);
        (ids[0], ids[1]) = (1, 3);
        vault.penalize(ids, 1, kind, withReporter ? REPORTER : address(0));
        _present(present[1], OP1, 1, bps1, 2);
        _list(2, 2); // under operator 2 from epoch 3
        uint256 paid = _claim(1) + _claim(3);

        currentEpoch = 3;
        _present(true, OP1, 1, bps1, 1);
        _present(present[2], OP2, 2, bps2, 2);

        currentEpoch = 5;
        paid += _claim(1) + _claim(2) + _claim(3);

        uint256 owed = _positive(1) + _positive(2) + _positive(3) + vault.commissionOf(OP1) + vault.commissionOf(OP2)
            + vault.bountyOf(REPORTER);
        assert(paid + owed <= vault.totalFunded());
        assert(vault.totalLiabilities() <= vault.totalFunded());
        assert(token.balanceOf(address(vault)) >= owed + vault.treasuryBalance());
    }
}
