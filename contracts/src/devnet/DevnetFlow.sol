// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @title DevnetFlow
/// @notice A minimal stand-in for 0G Storage's Flow contract, for the devnet: it records file submissions
///         and emits `Submit` with 0G's exact signature and fields, which is all a storage audit reads
///         (../shared/ZGS.md). No fees, no mining context, no flow Merkle tree.
/// @dev Field meanings follow 0G's Flow: the event's top-level `length` is the number of flow entries
///      (256-byte chunks) the submission occupies, sum(2**height) of its nodes; the file size in bytes is
///      `submission.length`. `identity` is keccak256(abi.encode(nodes)), as 0G's submission digest (it is
///      not the data root: the data root is the right fold of the nodes' roots).
///      Unlike 0G's own check, `submit` requires the nodes to be exactly the perfect subtrees of the padded
///      chunk count of `length` (flow padding, ZGS.md), so the devnet never holds a submission an auditor
///      would reject.
contract DevnetFlow {
    struct SubmissionNode {
        bytes32 root;
        uint256 height;
    }

    struct Submission {
        uint256 length;
        bytes tags;
        SubmissionNode[] nodes;
    }

    /// @notice 0G's event, field for field.
    event Submit(
        address indexed sender,
        bytes32 indexed identity,
        uint256 submissionIndex,
        uint256 startPos,
        uint256 length,
        Submission submission
    );

    uint256 public constant MAX_NODES = 64;
    /// @notice Node heights are below this (a node of 2**64 chunks is far beyond any file).
    uint256 public constant MAX_HEIGHT = 64;
    /// @notice Chunks of a segment: a submission starts aligned to its first node, at most to a segment.
    uint256 public constant SEGMENT_CHUNKS = 1024;
    uint256 internal constant CHUNK_BYTES = 256;

    uint256 private _numSubmissions;
    uint256 private _flowLength;

    error EmptySubmission();
    error BadNodeCount(uint256 count);
    error NodeTooHigh(uint256 position, uint256 height);
    error HeightsNotDecreasing(uint256 position);
    error PaddingMismatch(uint256 expectedEntries, uint256 nodeEntries);

    /// @notice Record a file of `s.length` bytes whose submission nodes are `s.nodes` (highest first).
    /// @return index the submission index (0, 1, ...)
    /// @return identity keccak256(abi.encode(s.nodes))
    /// @return startPos the flow entry where the submission starts: the flow length rounded up to a multiple
    ///         of 2**nodes[0].height, capped at a segment (1024 entries)
    /// @return length flow entries taken: sum(2**height)
    function submit(Submission calldata s)
        external
        returns (uint256 index, bytes32 identity, uint256 startPos, uint256 length)
    {
        if (s.length == 0) revert EmptySubmission();
        uint256 n = s.nodes.length;
        if (n == 0 || n > MAX_NODES) revert BadNodeCount(n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 h = s.nodes[i].height;
            if (h >= MAX_HEIGHT) revert NodeTooHigh(i, h);
            if (i > 0 && h >= s.nodes[i - 1].height) revert HeightsNotDecreasing(i);
            length += 1 << h; // < 2**64 * 64: no overflow
        }
        uint256 padded = paddedChunks(s.length);
        if (length != padded) revert PaddingMismatch(padded, length);

        uint256 align = 1 << s.nodes[0].height;
        if (align > SEGMENT_CHUNKS) align = SEGMENT_CHUNKS;
        startPos = (_flowLength + align - 1) / align * align;
        _flowLength = startPos + length;

        identity = keccak256(abi.encode(s.nodes));
        index = _numSubmissions++;
        emit Submit(msg.sender, identity, index, startPos, length, s);
    }

    /// @notice Chunk count of a file of `size` bytes after 0G's flow padding: ceil(size / 256) if that is a
    ///         power of two, else rounded up to a multiple of max(1, nextPow2 / 16).
    function paddedChunks(uint256 size) public pure returns (uint256) {
        uint256 chunks = size / CHUNK_BYTES + (size % CHUNK_BYTES == 0 ? 0 : 1);
        uint256 p = 1;
        while (p < chunks) p <<= 1;
        if (p == chunks) return chunks;
        uint256 m = p < 16 ? 1 : p / 16;
        return (chunks + m - 1) / m * m;
    }

    function numSubmissions() external view returns (uint256) {
        return _numSubmissions;
    }

    /// @notice Flow entries used so far (alignment gaps included).
    function flowLength() external view returns (uint256) {
        return _flowLength;
    }
}
