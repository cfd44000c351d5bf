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
        uint256[] memory tids = _one(t);
        uint8[] memory v = new uint8[](1);
        v[0] = 1;
        bytes32[] memory roots = new bytes32[](1);
        roots[0] = keccak256("evidence");
        bytes32 salt = keccak256("salt");
        // One root over the three openings; each license reveals with its proof.
        AuditProtocol.Reveal[] memory rs = new AuditProtocol.Reveal[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            rs[i] = AuditProtocol.Reveal(ids[i], tids, v, roots, salt, new bytes32[](0));
        }
        _commitTree(op, e, rs);
        _rollToReveal(e);
        for (uint256 i; i < ids.length; ++i) {
            protocol.reveal(e, ids[i], tids, v, roots, salt, rs[i].proof);
        }
        _rollPastReveal(e);
        assertEq(protocol.settle(e, t), 1, "outcome OK");
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
