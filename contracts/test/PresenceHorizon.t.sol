// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {FiveSoloOperators} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";

/// @notice A committee's tally is read from the vault's record of each operator's presence, which reaches
///         `ACTIVITY_HORIZON` epochs back. Beyond it every seat would read "absent" and the tally INCONCLUSIVE
///         (found by `devnet up --outcomes` over a 30-minute run: 84 % of honest outcomes read INCONCLUSIVE);
///         now those reads revert `HistoryLost`, like a committee list that is gone.
contract PresenceHorizonTest is FiveSoloOperators {
    function _operatorTag() internal pure override returns (string memory) {
        return "horizon operator";
    }

    function _allRevealOk() internal {
        _rollToEpoch(1);
        for (uint256 i; i < 5; ++i) {
            vm.prank(ops[i]);
            protocol.heartbeat();
            _commitVotes(ops[i], 1, keccak256(abi.encode("salt", i)), _allOk());
        }
        _rollToReveal(1);
        for (uint256 i; i < 5; ++i) {
            protocol.reveal(1, ops[i], keccak256(abi.encode("salt", i)), _allOk());
        }
        _rollPastReveal(1);
    }

    function test_theHorizonIsTheVaults() public view {
        assertEq(protocol.PRESENCE_HORIZON(), vault.ACTIVITY_HORIZON(), "one horizon");
    }

    function test_anAllOkTallyReadsOkUpToTheHorizonAndRevertsHistoryLostBeyondIt() public {
        _allRevealOk();
        assertEq(protocol.outcomeOf(1, t), OK, "OK by view");
        uint256 h = protocol.PRESENCE_HORIZON();
        _rollToEpoch(1 + h - 1);
        assertEq(protocol.outcomeOf(1, t), OK, "still OK at the horizon's last epoch");
        (uint8 ok,,, uint8 reveals,) = protocol.tally(1, t);
        assertEq(ok, 5, "five OK");
        assertEq(reveals, 5, "five reveals");
        _rollToEpoch(1 + h);
        bytes memory lost = abi.encodeWithSelector(AuditProtocol.HistoryLost.selector, 1);
        vm.expectRevert(lost);
        protocol.outcomeOf(1, t);
        vm.expectRevert(lost);
        protocol.tally(1, t);
        vm.expectRevert(lost);
        protocol.settle(1, t); // would have settled an honest target INCONCLUSIVE
    }
}
