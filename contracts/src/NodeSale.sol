// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

interface ILicenseMinter {
    function mint(address to) external returns (uint256);
}

/// @title NodeSale
/// @notice The tiered license sale (PROTOCOL.md section 3), paid in the native coin.
/// @dev Tiers are sold in order; a purchase crossing a boundary pays each unit at its own tier's price.
///      Prices, supplies and phase times are fixed at construction: nobody can change them once deployed,
///      so everyone pays the same price for the same tier. Proceeds and referral shares are pulled.
///      While the sale is in progress (from `allowlistStart` until it ends or sells out, `saleInProgress`)
///      the owner (governance, which early buyers already vote in) cannot change what later buyers pay or
///      where the money goes: promo codes, the allowlist root and the treasury are fixed when the sale opens,
///      and the sale cannot be paused (a pause would freeze the electorate at the early buyers).
contract NodeSale is Ownable, Pausable, ReentrancyGuard {
    /// @notice One price tier: `price` in wei per license, `supply` licenses.
    struct Tier {
        uint128 price;
        uint128 supply;
    }

    /// @notice A promo code's terms, keyed by keccak256 of the code's bytes.
    struct Promo {
        uint16 discountBps;
        uint16 referrerBps;
        address referrer;
    }

    uint256 public constant BPS = 10_000;
    /// @notice The largest promo discount: 20 %. A code is public once used (it travels in calldata), so a
    ///         discount is in effect open to everyone; capping it bounds how much cheaper a vote can be bought
    ///         than the tier price (at most 1.25 licenses for the price of one).
    uint16 public constant MAX_DISCOUNT_BPS = 2_000;

    ILicenseMinter public immutable license;
    /// @notice Unix seconds: allowlist phase [allowlistStart, publicStart), public phase [publicStart, saleEnd).
    uint64 public immutable allowlistStart;
    uint64 public immutable publicStart;
    uint64 public immutable saleEnd;
    /// @notice Per-wallet caps for the allowlist phase and the public phase (licenses).
    uint32 public immutable allowlistMaxPerWallet;
    uint32 public immutable publicMaxPerWallet;
    /// @notice Licenses the sale can ever sell (sum of tier supplies).
    uint256 public immutable totalSupplyCap;

    Tier[] private _tiers;
    /// @notice Merkle root over leaves keccak256(bytes.concat(keccak256(abi.encode(account, allowance)))).
    bytes32 public allowlistRoot;
    /// @notice Where proceeds go (pulled by `withdrawProceeds`).
    address public treasury;
    /// @notice Licenses sold so far.
    uint256 public sold;
    /// @notice Proceeds owed to the treasury (wei).
    uint256 public treasuryBalance;
    /// @notice Referral shares owed to each referrer (wei).
    mapping(address => uint256) public referralBalance;
    /// @notice Licenses bought by each wallet in the allowlist phase and the public phase.
    mapping(address => uint256) public boughtInAllowlist;
    mapping(address => uint256) public boughtInPublic;
    mapping(bytes32 => Promo) public promos;

    error NoTiers();
    error InvalidTier(uint256 index);
    error InvalidSchedule();
    error ZeroAddress();
    error ZeroQuantity();
    error SaleNotOpen(uint256 nowTime, uint256 opensAt);
    error SaleEnded(uint256 nowTime, uint256 endedAt);
    error SoldOut(uint256 requested, uint256 remaining);
    error CostAboveMax(uint256 cost, uint256 maxCost);
    error InsufficientPayment(uint256 cost, uint256 paid);
    error NotAllowlisted(address account);
    error WalletCapExceeded(address account, uint256 requested, uint256 allowed);
    error UnknownPromoCode(bytes32 codeHash);
    error InvalidPromo();
    error AllowlistLocked();
    /// @notice The call would change the sale's terms or its treasury while the sale is in progress.
    error SaleInProgress(uint256 nowTime, uint256 endsAt);
    error NothingToWithdraw();
    error TransferFailed(address to, uint256 amount);

    event Purchased(
        address indexed buyer, uint256 firstTokenId, uint256 quantity, uint256 cost, bytes32 indexed promoHash
    );
    event ReferralCredited(address indexed referrer, bytes32 indexed promoHash, uint256 amount);
    event PromoCodeSet(bytes32 indexed codeHash, uint16 discountBps, address referrer, uint16 referrerBps);
    event AllowlistRootSet(bytes32 root);
    event TreasurySet(address treasury);
    event ProceedsWithdrawn(address indexed treasury, uint256 amount);
    event ReferralWithdrawn(address indexed referrer, uint256 amount);

    constructor(
        ILicenseMinter license_,
        Tier[] memory tiers_,
        uint64 allowlistStart_,
        uint64 publicStart_,
        uint64 saleEnd_,
        uint32 allowlistMaxPerWallet_,
        uint32 publicMaxPerWallet_,
        bytes32 allowlistRoot_,
        address treasury_,
        address owner_
    ) Ownable(owner_) {
        if (tiers_.length == 0) revert NoTiers();
        if (!(allowlistStart_ <= publicStart_ && publicStart_ < saleEnd_)) revert InvalidSchedule();
        if (treasury_ == address(0) || address(license_) == address(0)) revert ZeroAddress();
        uint256 cap;
        for (uint256 i; i < tiers_.length; ++i) {
            if (tiers_[i].supply == 0) revert InvalidTier(i);
            _tiers.push(tiers_[i]);
            cap += tiers_[i].supply;
        }
        totalSupplyCap = cap;
        license = license_;
        allowlistStart = allowlistStart_;
        publicStart = publicStart_;
        saleEnd = saleEnd_;
        allowlistMaxPerWallet = allowlistMaxPerWallet_;
        publicMaxPerWallet = publicMaxPerWallet_;
        allowlistRoot = allowlistRoot_;
        treasury = treasury_;
    }

    // ----------------------------------------------------------------------------------------- views

    /// @notice All tiers in sale order.
    function tiers() external view returns (Tier[] memory) {
        return _tiers;
    }

    /// @notice True from `allowlistStart` until the sale ends (`saleEnd`) or sells out. While it is, the
    ///         promo codes, the allowlist root and the treasury cannot change and the sale cannot be paused.
    function saleInProgress() public view returns (bool) {
        return block.timestamp >= allowlistStart && block.timestamp < saleEnd && sold < totalSupplyCap;
    }

    /// @notice True once the sale has ended or sold out: no license can be sold any more.
    function saleEnded() external view returns (bool) {
        return block.timestamp >= saleEnd || sold >= totalSupplyCap;
    }

    /// @notice The tier the next license comes from, its price and how many remain in it.
    ///         `index == tiers().length` means sold out.
    function currentTier() external view returns (uint256 index, uint256 price, uint256 remainingInTier) {
        uint256 offset = sold;
        for (uint256 i; i < _tiers.length; ++i) {
            if (offset < _tiers[i].supply) return (i, _tiers[i].price, _tiers[i].supply - offset);
            offset -= _tiers[i].supply;
        }
        return (_tiers.length, 0, 0);
    }

    /// @notice Cost in wei of the next `quantity` licenses before any promo discount.
    function quote(uint256 quantity) public view returns (uint256 cost) {
        uint256 offset = sold;
        uint256 left = quantity;
        for (uint256 i; i < _tiers.length && left > 0; ++i) {
            uint256 supply = _tiers[i].supply;
            if (offset >= supply) {
                offset -= supply;
                continue;
            }
            uint256 take = supply - offset;
            if (take > left) take = left;
            cost += take * _tiers[i].price;
            left -= take;
            offset = 0;
        }
        if (left > 0) revert SoldOut(quantity, quantity - left);
    }

    /// @notice Cost after applying the promo code `code` ("" for none).
    function quoteWithPromo(uint256 quantity, string calldata code) external view returns (uint256) {
        (uint256 cost,,) = _priced(quantity, code);
        return cost;
    }

    // ------------------------------------------------------------------------------------------- buy

    /// @notice Buy `quantity` licenses. Pays each unit at its tier's price, minus the promo discount.
    /// @param maxCost revert if the total cost (wei) would exceed this: protects against tier moves.
    /// @param promoCode a promo code, or "" for none.
    /// @param proof Merkle proof of (msg.sender, allowance) during the allowlist phase; ignored after.
    /// @param allowance the allowance the proof is for (allowlist phase only).
    /// @dev Overpayment is refunded in the same call.
    function buy(
        uint256 quantity,
        uint256 maxCost,
        string calldata promoCode,
        bytes32[] calldata proof,
        uint256 allowance
    ) external payable nonReentrant whenNotPaused returns (uint256 firstTokenId) {
        if (quantity == 0) revert ZeroQuantity();
        if (block.timestamp < allowlistStart) revert SaleNotOpen(block.timestamp, allowlistStart);
        if (block.timestamp >= saleEnd) revert SaleEnded(block.timestamp, saleEnd);

        if (block.timestamp < publicStart) {
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(msg.sender, allowance))));
            if (!MerkleProof.verifyCalldata(proof, allowlistRoot, leaf)) revert NotAllowlisted(msg.sender);
            uint256 cap = allowance < allowlistMaxPerWallet ? allowance : allowlistMaxPerWallet;
            uint256 already = boughtInAllowlist[msg.sender];
            // `already` can exceed `cap` for an account listed twice that bought under its larger allowance.
            if (already + quantity > cap) {
                revert WalletCapExceeded(msg.sender, quantity, already < cap ? cap - already : 0);
            }
            boughtInAllowlist[msg.sender] = already + quantity;
        } else {
            uint256 already = boughtInPublic[msg.sender];
            if (already + quantity > publicMaxPerWallet) {
                revert WalletCapExceeded(msg.sender, quantity, publicMaxPerWallet - already);
            }
            boughtInPublic[msg.sender] = already + quantity;
        }

        (uint256 cost, bytes32 promoHash, Promo memory promo) = _priced(quantity, promoCode);
        if (cost > maxCost) revert CostAboveMax(cost, maxCost);
        if (msg.value < cost) revert InsufficientPayment(cost, msg.value);

        uint256 referral = cost * promo.referrerBps / BPS;
        if (referral > 0) {
            referralBalance[promo.referrer] += referral;
            emit ReferralCredited(promo.referrer, promoHash, referral);
        }
        treasuryBalance += cost - referral;
        sold += quantity;

        firstTokenId = license.mint(msg.sender);
        for (uint256 i = 1; i < quantity; ++i) {
            license.mint(msg.sender);
        }
        emit Purchased(msg.sender, firstTokenId, quantity, cost, promoHash);

        uint256 refund = msg.value - cost;
        if (refund > 0) _pay(msg.sender, refund);
    }

    // -------------------------------------------------------------------------------------- payouts

    /// @notice Send the treasury its proceeds. Anyone may call; the money only goes to `treasury`.
    function withdrawProceeds() external nonReentrant {
        uint256 amount = treasuryBalance;
        if (amount == 0) revert NothingToWithdraw();
        treasuryBalance = 0;
        emit ProceedsWithdrawn(treasury, amount);
        _pay(treasury, amount);
    }

    /// @notice Withdraw the caller's referral shares.
    function withdrawReferral() external nonReentrant {
        uint256 amount = referralBalance[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        referralBalance[msg.sender] = 0;
        emit ReferralWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------- governance only

    /// @notice Add or replace a promo code. `codeHash` = keccak256(bytes(code)). Not while the sale is in
    ///         progress: every buyer buys under the codes published before it opened. The discount is at most
    ///         `MAX_DISCOUNT_BPS`.
    function setPromoCode(bytes32 codeHash, uint16 discountBps, address referrer, uint16 referrerBps)
        external
        onlyOwner
        notDuringSale
    {
        if (discountBps > MAX_DISCOUNT_BPS || referrerBps > BPS || (referrerBps > 0 && referrer == address(0))) {
            revert InvalidPromo();
        }
        promos[codeHash] = Promo(discountBps, referrerBps, referrer);
        emit PromoCodeSet(codeHash, discountBps, referrer, referrerBps);
    }

    /// @notice Replace the allowlist root; only before the sale opens.
    function setAllowlistRoot(bytes32 root) external onlyOwner {
        if (block.timestamp >= allowlistStart) revert AllowlistLocked();
        allowlistRoot = root;
        emit AllowlistRootSet(root);
    }

    /// @notice Where proceeds go from now on. Not while the sale is in progress, and proceeds already booked
    ///         are first paid to the treasury they were booked for: the sale's proceeds always reach the
    ///         treasury fixed when it opened, even through a proposal queued during the sale and executed
    ///         after it (reverts, like `withdrawProceeds`, if that treasury refuses the coin).
    function setTreasury(address treasury_) external onlyOwner notDuringSale nonReentrant {
        if (treasury_ == address(0)) revert ZeroAddress();
        address old = treasury;
        uint256 owed = treasuryBalance;
        treasury = treasury_;
        emit TreasurySet(treasury_);
        if (owed > 0) {
            treasuryBalance = 0;
            emit ProceedsWithdrawn(old, owed);
            _pay(old, owed);
        }
    }

    /// @notice Stop buying. Not while the sale is in progress: the terms are immutable, so a pause could fix
    ///         nothing, and it would let whoever holds the votes so far keep later buyers out.
    function pause() external onlyOwner notDuringSale {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    // ------------------------------------------------------------------------------------- internal

    modifier notDuringSale() {
        if (saleInProgress()) revert SaleInProgress(block.timestamp, saleEnd);
        _;
    }

    function _priced(uint256 quantity, string calldata code)
        internal
        view
        returns (uint256 cost, bytes32 promoHash, Promo memory promo)
    {
        cost = quote(quantity);
        if (bytes(code).length > 0) {
            promoHash = keccak256(bytes(code));
            promo = promos[promoHash];
            if (promo.discountBps == 0 && promo.referrer == address(0)) revert UnknownPromoCode(promoHash);
            cost -= cost * promo.discountBps / BPS;
        }
    }

    function _pay(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
