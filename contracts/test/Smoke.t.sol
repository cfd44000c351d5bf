// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Deployed} from "./utils/Deployed.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";

contract SmokeTest is Deployed {
    function setUp() public {
        _deploy();
    }

    function test_deploymentHandsEverySetterToTheTimelock() public view {
        assertEq(license.owner(), address(timelock), "license owner");
        assertEq(protocol.owner(), address(timelock), "protocol owner");
        assertEq(vault.owner(), address(timelock), "vault owner");
        assertEq(license.minter(), address(sale), "minter");
    }

    function test_oneEpochOfHeartbeatCommitRevealSettleClaim() public {
        address op = makeAddr("op");
        address owner = makeAddr("owner");
        _fundEmission(100_000 ether);
        uint256[] memory ids = _operatorWithLicenses(op, 1000, owner, 3);
        uint256 t = _addTarget(1);
        _rollToEpoch(1);
        vm.prank(op);
        protocol.heartbeat(); // every license listed under the operator is active
        uint256 e = protocol.currentEpoch();
        assertEq(vault.activeCount(e), 3, "three active");
        // One commitment for the operator: no listed vote, so each of its licenses votes OK where it sits.
        bytes32 salt = keccak256("salt");
        _commitVotes(op, e, salt, _allOk());
        _rollToReveal(e);
        vm.prank(makeAddr("anyone")); // anyone holding the opening may reveal it
        protocol.reveal(e, op, salt, _allOk());
        assertTrue(protocol.hasRevealed(op, e), "revealed");
        (uint8 ok,,, uint8 reveals,) = protocol.tally(e, t);
        assertEq(ok, 3, "three implicit OK votes");
        assertEq(reveals, 3, "three reveals");
        _rollPastReveal(e);
        assertEq(protocol.outcomeOf(e, t), 1, "outcome OK without settling");
        assertEq(protocol.settle(e, t), 1, "settling it anyway changes nothing");
        vm.prank(op);
        protocol.heartbeat();
        vm.prank(owner);
        uint256 paid = vault.claim(ids);
        // Epoch 0 had no active license, so its emission carried into epoch 1: two epochs' worth.
        uint256 perLicense = 2 * EMISSION / 3;
        uint256 commission = perLicense * 1000 / 10_000;
        assertEq(paid, 3 * (perLicense - commission), "license share");
        assertEq(vault.commissionOf(op), 3 * commission, "commission");
    }
}
