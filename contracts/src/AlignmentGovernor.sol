// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";

/// @title AlignmentGovernor
/// @notice License holders govern the network: one license, one vote (PROTOCOL.md section 2). Proposals that
///         pass are queued in and executed by the TimelockController, which owns every setter of every contract.
/// @dev Composed of OpenZeppelin pieces; the clock is block numbers (the license's default).
///      The quorum is a fraction of the planned supply (every license the sale can sell), not of the licenses
///      minted so far, until the sale is over: licenses vote from mint, so a quorum of the minted count would
///      let the first buyers govern alone. Once `plannedSupplyUntil` (the sale's end) has passed, anyone may
///      `settleSupply`, and proposals from then on count the quorum on the licenses actually minted (a sale that
///      did not sell out must not leave a quorum nobody can reach).
contract AlignmentGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @notice Licenses the sale can sell: the quorum's base until the supply is settled.
    uint256 public immutable plannedSupply;
    /// @notice Unix seconds (the sale's end) from which the supply can be settled.
    uint64 public immutable plannedSupplyUntil;
    /// @notice Clock (block) from which the quorum counts the minted supply; 0 while not settled.
    uint48 public supplySettledAt;

    /// @notice `settleSupply` was called before `plannedSupplyUntil`, or a second time.
    error SupplyNotSettleable(uint256 nowTime, uint256 settleableFrom);

    /// @notice From block `timepoint` on, the quorum is a fraction of the licenses minted.
    event SupplySettled(uint48 timepoint);

    /// @param votingDelay_ blocks between proposing and voting
    /// @param votingPeriod_ blocks voting stays open
    /// @param proposalThreshold_ licenses a proposer must hold (votes)
    /// @param quorumPercent_ percent of all license votes that must take part (for + abstain): of the planned
    ///        supply (at least) until the supply is settled, then of the licenses minted at the snapshot
    /// @param plannedSupply_ licenses the sale can sell (the sum of its tiers' supplies)
    /// @param plannedSupplyUntil_ unix seconds from which the supply may be settled (the sale's end)
    constructor(
        IVotes license,
        TimelockController timelock,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumPercent_,
        uint256 plannedSupply_,
        uint64 plannedSupplyUntil_
    )
        Governor("AlignmentGovernor")
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(license)
        GovernorVotesQuorumFraction(quorumPercent_)
        GovernorTimelockControl(timelock)
    {
        plannedSupply = plannedSupply_;
        plannedSupplyUntil = plannedSupplyUntil_;
    }

    /// @notice Count the quorum on the licenses minted from this block on. Anyone, once, from
    ///         `plannedSupplyUntil` (after which the sale mints no more); `propose` does it when due.
    function settleSupply() public {
        if (supplySettledAt != 0 || block.timestamp < plannedSupplyUntil) {
            revert SupplyNotSettleable(block.timestamp, plannedSupplyUntil);
        }
        uint48 settledAt = clock();
        supplySettledAt = settledAt;
        emit SupplySettled(settledAt);
    }

    /// @notice Votes needed (for + abstain) for a proposal whose snapshot is `timepoint`: the quorum fraction
    ///         of the larger of the planned and the minted supply, or of the minted supply once settled.
    function quorum(uint256 timepoint)
        public
        view
        override(Governor, GovernorVotesQuorumFraction)
        returns (uint256)
    {
        uint256 supply = token().getPastTotalSupply(timepoint);
        uint48 settled = supplySettledAt;
        if ((settled == 0 || timepoint < settled) && supply < plannedSupply) supply = plannedSupply;
        return supply * quorumNumerator(timepoint) / quorumDenominator();
    }

    function propose(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        string memory description
    ) public override returns (uint256) {
        if (supplySettledAt == 0 && block.timestamp >= plannedSupplyUntil) settleSupply();
        return super.propose(targets, values, calldatas, description);
    }

    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}
