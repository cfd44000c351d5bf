// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {NodeSaleCheck} from "./NodeSale.halmos.sol";
import {AuditProtocolCheck} from "./AuditProtocol.halmos.sol";
import {AuditProtocol} from "../src/AuditProtocol.sol";
import {NodeSale} from "../src/NodeSale.sol";

/// TEMPORARY: each check here must FAIL (its counterexample shows the real check's success path is reachable).
contract VacuityNodeSale is NodeSaleCheck {
    function check_vac_buySucceeds(uint8 q1) external {
        vm.assume(q1 >= 1);
        vm.assume(q1 <= 4);
        (NodeSale sale,) = _deploy(S0, S1, S2);
        assert(!_buy(sale, q1));
    }
}

contract VacuityAudit is AuditProtocolCheck {
    function check_vac_revealSucceeds(uint256[5] calldata fa) external {
        Opening memory a = _opening(fa);
        AuditProtocol ap = _deploy();
        ap.commit(0, _leaf(0, a));
        vm.roll(GENESIS + LENGTH);
        assert(!_reveal(ap, 0, a, new bytes32[](0)));
    }

    function check_vac_siblingReveal(uint256[5] calldata fa, uint256[5] calldata fb) external {
        Opening memory a = _opening(fa);
        Opening memory b = _opening(fb);
        AuditProtocol ap = _deploy();
        ap.commit(0, _hashPair(_leaf(0, a), _leaf(0, b)));
        vm.roll(GENESIS + LENGTH);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = _leaf(0, a);
        assert(!_reveal(ap, 0, b, proof));
    }
}
