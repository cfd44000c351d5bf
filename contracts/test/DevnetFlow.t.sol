// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {DevnetFlow} from "../src/devnet/DevnetFlow.sol";

contract DevnetFlowTest is Test {
    // 0G's Submit event, by its canonical signature (what an auditor filters logs on).
    bytes32 internal constant SUBMIT_TOPIC =
        keccak256("Submit(address,bytes32,uint256,uint256,uint256,(uint256,bytes,(bytes32,uint256)[]))");

    event Submit(
        address indexed sender,
        bytes32 indexed identity,
        uint256 submissionIndex,
        uint256 startPos,
        uint256 length,
        DevnetFlow.Submission submission
    );

    DevnetFlow internal flow;
    address internal uploader = makeAddr("uploader");

    function setUp() public {
        flow = new DevnetFlow();
    }

    /// @dev A submission of `size` bytes with one node per given height (roots derived from the height).
    function _sub(uint256 size, uint256[] memory heights) internal pure returns (DevnetFlow.Submission memory s) {
        s.length = size;
        s.tags = hex"";
        s.nodes = new DevnetFlow.SubmissionNode[](heights.length);
        for (uint256 i; i < heights.length; ++i) {
            s.nodes[i] = DevnetFlow.SubmissionNode(keccak256(abi.encode("node", size, heights[i])), heights[i]);
        }
    }

    /// @dev The valid submission of `size` bytes: one node per set bit of its padded chunk count.
    function _valid(uint256 size) internal view returns (DevnetFlow.Submission memory) {
        uint256 padded = flow.paddedChunks(size);
        uint256 count;
        for (uint256 h; h < 64; ++h) if (padded >> h & 1 == 1) ++count;
        uint256[] memory hs = new uint256[](count);
        uint256 k;
        for (uint256 h = 64; h > 0; --h) if (padded >> (h - 1) & 1 == 1) hs[k++] = h - 1;
        return _sub(size, hs);
    }

    function _heights(uint256 a) internal pure returns (uint256[] memory hs) {
        hs = new uint256[](1);
        hs[0] = a;
    }

    function _heights(uint256 a, uint256 b) internal pure returns (uint256[] memory hs) {
        hs = new uint256[](2);
        (hs[0], hs[1]) = (a, b);
    }

    // --------------------------------------------------------------------------------------- padding

    function test_paddedChunksFollowsFlowPadding() public view {
        assertEq(flow.paddedChunks(1), 1, "1 byte");
        assertEq(flow.paddedChunks(256), 1, "one chunk");
        assertEq(flow.paddedChunks(257), 2, "two chunks");
        assertEq(flow.paddedChunks(3 * 256), 3, "3 chunks: below 16, no padding");
        assertEq(flow.paddedChunks(17 * 256), 18, "17 chunks: multiple of 32/16");
        assertEq(flow.paddedChunks(1025 * 256), 1152, "1025 chunks: multiple of 2048/16");
        assertEq(flow.paddedChunks(3584 * 256 - 5), 3584, "3.5 segments");
        assertEq(flow.paddedChunks(4096 * 256), 4096, "a power of two stays");
    }

    // ----------------------------------------------------------------------------------------- event

    function test_submitEmitsZeroGSubmitWithExactTopicsAndFields() public {
        DevnetFlow.Submission memory s = _valid(3584 * 256 - 5); // heights 11, 10, 9
        assertEq(s.nodes.length, 3, "three nodes");
        bytes32 identity = keccak256(abi.encode(s.nodes));
        vm.recordLogs();
        vm.prank(uploader);
        (uint256 index, bytes32 id, uint256 start, uint256 length) = flow.submit(s);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one log");
        assertEq(logs[0].emitter, address(flow), "emitter");
        assertEq(logs[0].topics.length, 3, "three topics");
        assertEq(logs[0].topics[0], SUBMIT_TOPIC, "0G's Submit topic");
        assertEq(logs[0].topics[1], bytes32(uint256(uint160(uploader))), "sender topic");
        assertEq(logs[0].topics[2], identity, "identity topic");
        assertEq(keccak256(logs[0].data), keccak256(abi.encode(uint256(0), uint256(0), uint256(3584), s)), "data");
        assertEq(index, 0, "index");
        assertEq(id, identity, "identity");
        assertEq(start, 0, "start");
        assertEq(length, 3584, "entries");
        assertEq(flow.numSubmissions(), 1, "count");
        assertEq(flow.flowLength(), 3584, "flow length");
    }

    function test_submitEventMatchesExpectEmit() public {
        flow.submit(_valid(1));
        DevnetFlow.Submission memory s = _valid(300);
        vm.expectEmit(true, true, true, true);
        emit Submit(uploader, keccak256(abi.encode(s.nodes)), 1, 2, 2, s);
        vm.prank(uploader);
        flow.submit(s);
    }

    function test_tagsAreCarriedIntoTheEvent() public {
        DevnetFlow.Submission memory s = _valid(1);
        s.tags = hex"c0ffee";
        vm.recordLogs();
        flow.submit(s);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(keccak256(logs[0].data), keccak256(abi.encode(uint256(0), uint256(0), uint256(1), s)), "data");
    }

    // ------------------------------------------------------------------------------------- alignment

    function test_startPosAlignsToFirstNodeCappedAtASegment() public {
        (, , uint256 a, ) = flow.submit(_valid(1)); // 1 entry at 0
        (, , uint256 b, ) = flow.submit(_valid(300)); // 2 entries, aligned to 2
        (, , uint256 c, ) = flow.submit(_valid(5 * 256)); // 5 entries (heights 2, 0), aligned to 4
        (, , uint256 d, ) = flow.submit(_valid(3584 * 256)); // heights 11, 10, 9: aligned to 1024, not 2048
        (uint256 i, , uint256 e, ) = flow.submit(_valid(1));
        assertEq(a, 0, "a");
        assertEq(b, 2, "b");
        assertEq(c, 4, "c");
        assertEq(d, 1024, "d");
        assertEq(e, 1024 + 3584, "e follows d");
        assertEq(i, 4, "fifth submission");
        assertEq(flow.flowLength(), 1024 + 3584 + 1, "flow length");
        assertEq(flow.numSubmissions(), 5, "count");
    }

    function testFuzz_validSubmissionsAreAcceptedAndAligned(uint256 prior, uint256 size) public {
        prior = bound(prior, 1, 5000 * 256);
        size = bound(size, 1, 1 << 40);
        flow.submit(_valid(prior));
        uint256 before = flow.flowLength();
        DevnetFlow.Submission memory s = _valid(size);
        (, , uint256 start, uint256 length) = flow.submit(s);
        uint256 align = 1 << s.nodes[0].height;
        if (align > 1024) align = 1024;
        assertEq(start % align, 0, "aligned");
        assertGe(start, before, "after the flow");
        assertLt(start - before, align, "smallest aligned position");
        assertEq(length, flow.paddedChunks(size), "entries");
        assertGe(length * 256, size, "holds the file");
        assertEq(flow.flowLength(), start + length, "flow length");
    }

    // ------------------------------------------------------------------------------------ validation

    function test_rejectsAnEmptyFile() public {
        DevnetFlow.Submission memory s = _valid(1);
        s.length = 0;
        vm.expectRevert(DevnetFlow.EmptySubmission.selector);
        flow.submit(s);
    }

    function test_rejectsNoNodesOrTooMany() public {
        DevnetFlow.Submission memory s = _sub(1, new uint256[](0));
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.BadNodeCount.selector, 0));
        flow.submit(s);
        uint256[] memory hs = new uint256[](65);
        for (uint256 i; i < 65; ++i) hs[i] = 64 - i;
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.BadNodeCount.selector, 65));
        flow.submit(_sub(1, hs));
    }

    function test_rejectsHeightsThatDoNotStrictlyDecrease() public {
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.HeightsNotDecreasing.selector, 1));
        flow.submit(_sub(2 * 256, _heights(0, 0)));
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.HeightsNotDecreasing.selector, 1));
        flow.submit(_sub(3 * 256, _heights(0, 1)));
    }

    function test_rejectsANodeTooHigh() public {
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.NodeTooHigh.selector, 0, 64));
        flow.submit(_sub(1, _heights(64)));
    }

    function test_rejectsNodesThatAreNotThePaddedChunkCount() public {
        // 2 chunks need one node of height 1
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.PaddingMismatch.selector, 2, 1));
        flow.submit(_sub(300, _heights(0)));
        // 3 chunks are 2 + 1, not 4
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.PaddingMismatch.selector, 3, 4));
        flow.submit(_sub(3 * 256, _heights(2)));
        // 17 chunks pad to 18 = 16 + 2, not 16 + 1
        vm.expectRevert(abi.encodeWithSelector(DevnetFlow.PaddingMismatch.selector, 18, 17));
        flow.submit(_sub(17 * 256, _heights(4, 0)));
        assertEq(flow.numSubmissions(), 0, "nothing recorded");
        assertEq(flow.flowLength(), 0, "flow untouched");
    }
}
