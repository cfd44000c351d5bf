// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {BN254, IDASigners} from "./DevnetDASigners.sol";

/// @notice The parts of 0G's DAEntrance interface the devnet stand-in implements, with 0G's struct layout and
///         event signatures (0g-da-contract contracts/interface/IDAEntrance.sol).
interface IDAEntrance {
    struct CommitRootSubmission {
        bytes32 dataRoot;
        uint256 epoch;
        uint256 quorumId;
        BN254.G1Point erasureCommitment;
        bytes quorumBitmap;
        /// @dev EVM (EIP-197) word order: X = [x1, x0], Y = [y1, y0], as the pairing precompile takes it.
        BN254.G2Point aggPkG2;
        BN254.G1Point signature;
    }

    event DataUpload(address sender, bytes32 dataRoot, uint256 epoch, uint256 quorumId, uint256 blobPrice);
    event ErasureCommitmentVerified(bytes32 dataRoot, uint256 epoch, uint256 quorumId);

    function submitOriginalData(bytes32[] memory _dataRoots) external payable;
    function verifiedErasureCommitment(bytes32, uint256, uint256) external view returns (BN254.G1Point memory);
    function submitVerifiedCommitRoots(CommitRootSubmission[] memory _submissions) external;
}

/// @title DevnetDAEntrance
/// @notice DEVNET ONLY. A stand-in for 0G's DAEntrance covering blob upload and commit-root verification, with
///         0G's ABI for those parts: `submitOriginalData` emits DataUpload with the DASigners' current epoch and
///         a round-robin quorum; `submitVerifiedCommitRoots` checks each submission against
///         DA_SIGNERS.getAggPkG1 (at the precompile address 0x...1000), the 2/3 row threshold and the aggregated
///         BLS signature exactly as 0G's SubmissionLib.validateSignature, then records the commitment and
///         emits ErasureCommitmentVerified.
/// @dev No sampling rounds, rewards, fees or admin: blobPrice is always 0 (any value sent stays in the
///      contract; nothing can withdraw it), and the
///      epoch is read from DASigners on every call instead of being synced through makeEpoch.
contract DevnetDAEntrance is IDAEntrance {
    IDASigners public constant DA_SIGNERS = IDASigners(0x0000000000000000000000000000000000001000);

    uint256 public constant SLICE_NUMERATOR = 2;
    uint256 public constant SLICE_DENOMINATOR = 3;
    /// @notice Gas given to the pairing precompile, as 0G's SubmissionLib.
    uint256 public constant PAIRING_GAS = 120000;

    /// @dev keccak256(abi.encodePacked(dataRoot, epoch, quorumId)) => verified erasure commitment.
    mapping(bytes32 => BN254.G1Point) private _verified;
    uint256 private _quorumIndex;
    /// @dev Never set: the devnet's blob price is 0.
    uint256 private _blobPrice;

    // ------------------------------------------------------------------------------------------ views

    /// @notice The DASigners epoch (0G's contract returns its synced copy of the same number).
    function currentEpoch() external view returns (uint256) {
        return DA_SIGNERS.epochNumber();
    }

    /// @notice Always 0 on the devnet.
    function blobPrice() external view returns (uint256) {
        return _blobPrice;
    }

    /// @notice The erasure commitment verified for (dataRoot, epoch, quorumId), or (0, 0) if none.
    function verifiedErasureCommitment(bytes32 _dataRoot, uint256 _epoch, uint256 _quorumId)
        public
        view
        returns (BN254.G1Point memory)
    {
        return _verified[computeIdentifier(_dataRoot, _epoch, _quorumId)];
    }

    /// @notice Whether a commitment was verified for (dataRoot, epoch, quorumId).
    function commitmentExists(bytes32 _dataRoot, uint256 _epoch, uint256 _quorumId) public view returns (bool) {
        return !BN254.isZero(verifiedErasureCommitment(_dataRoot, _epoch, _quorumId));
    }

    /// @notice 0G's submission identifier, keccak256(abi.encodePacked(dataRoot, epoch, quorumId)).
    function computeIdentifier(bytes32 _dataRoot, uint256 _epoch, uint256 _quorumId) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(_dataRoot, _epoch, _quorumId));
    }

    /// @notice H(m) of a commit root: hashToG1(keccak256(dataRoot, epoch, quorumId, commitment.X, commitment.Y)).
    function commitRootHash(bytes32 _dataRoot, uint256 _epoch, uint256 _quorumId, BN254.G1Point memory _commitment)
        public
        view
        returns (BN254.G1Point memory)
    {
        return BN254.hashToG1(
            keccak256(abi.encodePacked(_dataRoot, _epoch, _quorumId, _commitment.X, _commitment.Y))
        );
    }

    // ------------------------------------------------------------------------------------------ writes

    /// @notice Announces blobs: one DataUpload per root, all in the current epoch and the next quorum
    ///         (the quorum index advances once per call, before use, as in 0G's contract).
    function submitOriginalData(bytes32[] memory _dataRoots) external payable {
        uint256 epoch = DA_SIGNERS.epochNumber();
        uint256 count = DA_SIGNERS.quorumCount(epoch);
        require(count > 0, "DevnetDAEntrance: No DA Signers");
        uint256 quorumId = (_quorumIndex + 1) % count;
        _quorumIndex = quorumId;
        for (uint256 i; i < _dataRoots.length; ++i) {
            emit DataUpload(msg.sender, _dataRoots[i], epoch, quorumId, _blobPrice);
        }
    }

    /// @notice Verifies and records commit roots; an already verified (dataRoot, epoch, quorumId) is skipped.
    function submitVerifiedCommitRoots(CommitRootSubmission[] memory _submissions) external {
        for (uint256 i; i < _submissions.length; ++i) {
            CommitRootSubmission memory s = _submissions[i];
            bytes32 id = computeIdentifier(s.dataRoot, s.epoch, s.quorumId);
            if (!BN254.isZero(_verified[id])) continue;
            (BN254.G1Point memory aggPkG1, uint256 total, uint256 hit) =
                DA_SIGNERS.getAggPkG1(s.epoch, s.quorumId, s.quorumBitmap);
            _validateSignature(s, aggPkG1);
            require(SLICE_NUMERATOR * total <= hit * SLICE_DENOMINATOR, "DevnetDAEntrance: insufficient signed slices");
            _verified[id] = s.erasureCommitment;
            emit ErasureCommitmentVerified(s.dataRoot, s.epoch, s.quorumId);
        }
    }

    /// @dev gamma = keccak256(sig.X, sig.Y, aggPkG1.X, aggPkG1.Y, aggPkG2.X[0], X[1], Y[0], Y[1], H.X, H.Y) mod r;
    ///      accept iff e(sig + gamma*aggPkG1, -G2) * e(H + gamma*G1, aggPkG2) == 1.
    function _validateSignature(CommitRootSubmission memory s, BN254.G1Point memory aggPkG1) internal view {
        BN254.G1Point memory h = commitRootHash(s.dataRoot, s.epoch, s.quorumId, s.erasureCommitment);
        BN254.G2Point memory pk2 = s.aggPkG2;
        BN254.G1Point memory sig = s.signature;
        uint256 gamma = uint256(
            keccak256(
                abi.encodePacked(
                    sig.X, sig.Y, aggPkG1.X, aggPkG1.Y, pk2.X[0], pk2.X[1], pk2.Y[0], pk2.Y[1], h.X, h.Y
                )
            )
        ) % BN254.FR_MODULUS;
        (bool success, bool valid) = BN254.pairing2(
            BN254.add(sig, BN254.mul(aggPkG1, gamma)),
            BN254.negGeneratorG2(),
            BN254.add(h, BN254.mul(BN254.generatorG1(), gamma)),
            pk2,
            PAIRING_GAS
        );
        require(success, "DevnetDAEntrance: pairing precompile call failed");
        require(valid, "DevnetDAEntrance: signature is invalid");
    }
}
