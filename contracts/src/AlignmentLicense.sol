// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Votes} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Hook the license calls when a license changes hands, so its delegation ends with its old owner.
interface ILicenseTransferHook {
    function onLicenseTransfer(uint256 tokenId) external;
}

/// @title AlignmentLicense
/// @notice The node license NFT (PROTOCOL.md section 2). One license = one auditor seat and one governance vote.
/// @dev Soulbound until `transferUnlockTime` (mint and burn always allowed). A license minted to an account
///      that has not chosen a vote delegate self-delegates, so licenses vote without an extra transaction.
///      Token ids start at 1; 0 means "no license" everywhere in the protocol.
contract AlignmentLicense is ERC721, ERC721Votes, Ownable {
    /// @notice Unix time (seconds) from which holders may transfer licenses.
    uint256 public immutable transferUnlockTime;
    /// @notice The only address allowed to mint: the NodeSale. Set once.
    address public minter;
    /// @notice The OperatorRegistry, told of every transfer. Set once.
    address public transferHook;
    /// @notice Licenses minted so far; also the highest token id.
    uint256 public totalMinted;

    /// @notice A transfer was attempted before `transferUnlockTime`.
    error Soulbound(uint256 tokenId, uint256 unlockTime);
    /// @notice Caller is not the minter.
    error NotMinter(address caller);
    /// @notice The minter or hook was already set, or the address given is zero.
    error AlreadySet();
    error ZeroAddress();

    event MinterSet(address indexed minter);
    event TransferHookSet(address indexed hook);

    constructor(string memory name_, string memory symbol_, uint256 transferUnlockTime_, address owner_)
        ERC721(name_, symbol_)
        EIP712(name_, "1")
        Ownable(owner_)
    {
        transferUnlockTime = transferUnlockTime_;
    }

    /// @notice Set the sale contract as the only minter (once, at deployment).
    function setMinter(address minter_) external onlyOwner {
        if (minter != address(0)) revert AlreadySet();
        if (minter_ == address(0)) revert ZeroAddress();
        minter = minter_;
        emit MinterSet(minter_);
    }

    /// @notice Set the registry told of transfers (once, at deployment).
    function setTransferHook(address hook) external onlyOwner {
        if (transferHook != address(0)) revert AlreadySet();
        if (hook == address(0)) revert ZeroAddress();
        transferHook = hook;
        emit TransferHookSet(hook);
    }

    /// @notice Mint the next license to `to`; returns its id. Only the sale.
    function mint(address to) external returns (uint256 tokenId) {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        tokenId = ++totalMinted;
        _safeMint(to, tokenId);
    }

    /// @notice Owners of many licenses in one call (address(0) for ids never minted or burnt).
    function ownersOf(uint256[] calldata tokenIds) external view returns (address[] memory owners) {
        owners = new address[](tokenIds.length);
        for (uint256 i; i < tokenIds.length; ++i) {
            owners[i] = _ownerOf(tokenIds[i]);
        }
    }

    function _update(address to, uint256 tokenId, address auth)
        internal
        override(ERC721, ERC721Votes)
        returns (address from)
    {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0)) {
            if (block.timestamp < transferUnlockTime) revert Soulbound(tokenId, transferUnlockTime);
            if (transferHook != address(0)) ILicenseTransferHook(transferHook).onLicenseTransfer(tokenId);
        }
        if (from == address(0) && to != address(0) && delegates(to) == address(0)) {
            _delegate(to, to);
        }
    }

    function _increaseBalance(address account, uint128 amount) internal override(ERC721, ERC721Votes) {
        super._increaseBalance(account, amount);
    }
}
