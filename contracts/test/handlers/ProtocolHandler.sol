// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Vm} from "../utils/Vm.sol";
import {AlignmentLicense} from "../../src/AlignmentLicense.sol";
import {OperatorRegistry} from "../../src/OperatorRegistry.sol";
import {TargetRegistry} from "../../src/TargetRegistry.sol";
import {AuditProtocol} from "../../src/AuditProtocol.sol";
import {RewardVault} from "../../src/RewardVault.sol";
import {StakingVault} from "../../src/StakingVault.sol";
import {RewardToken} from "../../src/RewardToken.sol";

/// @notice Drives the whole protocol with random sequences of what owners, operators, reporters, fee payers,
///         the trap keeper and governance may do, catching the reverts the rules call for. Ghost variables
///         record what the invariants check.
contract ProtocolHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant MAX_LICENSES = 24;
    uint256 internal constant BPS = 10_000;

    RewardToken public immutable token;
    AlignmentLicense public immutable license;
    OperatorRegistry public immutable registry;
    TargetRegistry public immutable targets;
    AuditProtocol public immutable protocol;
    RewardVault public immutable vault;
    StakingVault public immutable staking;
    address public immutable sale;
    address public immutable keeper;
    address public immutable timelock;

    address[] public actors;
    address[] public reporters;
    uint256[] public licenses;
    address[] public operators;
    mapping(address => uint16) public commissionAtRegistration;

    /// @dev What an operator committed for an epoch, kept to reveal it later: its salt, its listed votes (every
    ///      vote of its active licenses that is not OK), and the duties (license, target) it audited, as the
    ///      protocol stated them during the epoch.
    struct Opening {
        bytes32 salt;
        AuditProtocol.Vote[] votes;
        uint256[] dutyLicenses;
        uint256[] dutyTargets;
    }

    mapping(uint256 => mapping(address => Opening)) internal _openings; // epoch => operator
    mapping(uint256 => mapping(address => bool)) internal _hasOpening;
    mapping(uint256 => address[]) internal _committed; // epoch => operators

    uint256 public trapTarget;
    bytes32 internal constant TRAP_SALT = keccak256("trap salt");
    uint8 internal constant TRAP_OUTCOME = 2;

    // ------------------------------------------------------------------------------------ ghosts

    /// @notice Everything funded to licenses, computed here: emission + node share of every fee deposit.
    uint256 public ghostFunded;
    /// @notice Everything the vault paid to license owners, operators and reporters.
    uint256 public ghostPaidOut;
    uint256 public ghostTreasuryWithdrawn;
    /// @notice A claim that paid something other than what it returned.
    uint256 public ghostPaymentMismatch;
    /// @notice Miss reports that succeeded for a (epoch, license, target) already reported.
    uint256 public ghostDoubleMissReports;
    uint256 public ghostMissReports;
    bytes32[] public missKeys;
    mapping(bytes32 => uint256) public missReportCount;
    /// @notice Licenses made active by a heartbeat in an epoch they were suspended in, by a suspension imposed
    ///         before that epoch (a license suspended during an epoch stays active in it: it was listed).
    uint256 public ghostSuspendedHeartbeats;
    /// @notice Heartbeats of an operator one of whose Delegated licenses was suspended then.
    uint256 public ghostSuspendedHeartbeatAttempts;
    /// @notice `resume` calls that listed a license still suspended in the next epoch.
    uint256 public ghostResumedWhileSuspended;
    /// @notice Heartbeats accepted from an account that is not a registered operator.
    uint256 public ghostNonOperatorPresence;
    uint256 public ghostResumes;
    /// @notice Operators registered with a commission above the maximum.
    uint256 public ghostCommissionAboveMax;
    /// @notice Duties computed during their epoch that the protocol no longer states at reveal time.
    uint256 public ghostDutyMoved;
    /// @notice Reveals of a committed (salt, votes) in their window that the protocol refused.
    uint256 public ghostCommittedRevealRefused;
    /// @notice A second reveal of a revealed operator that reverted or changed a stored vote.
    uint256 public ghostSecondRevealChanged;
    /// @notice A listed vote whose stored verdict or root is not the committed one.
    uint256 public ghostVoteNotCommitted;
    /// @notice Coverage counters (printed by the invariant test's logs, asserted loosely).
    uint256 public ghostHeartbeats;
    uint256 public ghostReveals;
    uint256 public ghostSettles;
    uint256 public ghostClaims;

    constructor(
        RewardToken token_,
        AlignmentLicense license_,
        OperatorRegistry registry_,
        TargetRegistry targets_,
        AuditProtocol protocol_,
        RewardVault vault_,
        StakingVault staking_,
        address sale_,
        address keeper_,
        address timelock_,
        uint256 trapTarget_
    ) {
        token = token_;
        license = license_;
        registry = registry_;
        targets = targets_;
        protocol = protocol_;
        vault = vault_;
        staking = staking_;
        sale = sale_;
        keeper = keeper_;
        timelock = timelock_;
        trapTarget = trapTarget_;
        for (uint256 i; i < 5; ++i) {
            actors.push(vm.addr(uint256(keccak256(abi.encode("actor", i)))));
        }
        for (uint256 i; i < 2; ++i) {
            reporters.push(vm.addr(uint256(keccak256(abi.encode("reporter", i)))));
        }
    }

    // ----------------------------------------------------------------------------------- views

    function licenseCount() external view returns (uint256) {
        return licenses.length;
    }

    function operatorCount() external view returns (uint256) {
        return operators.length;
    }

    function reporterCount() external view returns (uint256) {
        return reporters.length;
    }

    function missKeyCount() external view returns (uint256) {
        return missKeys.length;
    }

    function trapSeal() external view returns (bytes32) {
        return keccak256(abi.encode(trapTarget, TRAP_OUTCOME, TRAP_SALT));
    }

    // -------------------------------------------------------------------------------- internals

    /// @dev Every action moves the chain 0-2 blocks first, so time passes between actions.
    modifier tick(uint256 seed) {
        vm.roll(block.number + (seed % 3));
        _;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _license(uint256 seed) internal view returns (uint256) {
        return licenses[seed % licenses.length];
    }

    function _operator(uint256 seed) internal view returns (address) {
        return operators[seed % operators.length];
    }

    function _one(uint256 x) internal pure returns (uint256[] memory a) {
        a = new uint256[](1);
        a[0] = x;
    }

    function _state(uint256 id) internal view returns (address op, OperatorRegistry.LicenseState s) {
        (op, s) = registry.delegationOf(id);
    }

    function _opIndex(address op) internal view returns (uint256 index) {
        (index,) = registry.operatorIndexOf(op);
    }

    /// @dev The licenses listed under `op` in the current epoch `e` that are active (its heartbeat was sent).
    function _activeUnder(address op, uint256 e) internal view returns (uint256[] memory ids) {
        uint256 idx = _opIndex(op);
        ids = new uint256[](licenses.length);
        uint256 n;
        for (uint256 i; i < licenses.length; ++i) {
            uint256 id = licenses[i];
            if (registry.operatorOfAt(id, e) == idx && vault.isActive(id, e)) ids[n++] = id;
        }
        assembly {
            mstore(ids, n)
        }
    }

    function _mintFor(uint256 amount) internal {
        token.mint(address(this), amount);
        token.approve(address(vault), amount);
    }

    /// @dev `op` sends its heartbeat (refused if it already did this epoch); then no license the heartbeat made
    ///      active may be suspended by a suspension imposed before this epoch (those are parked).
    function _heartbeat(address op) internal {
        uint256 e = protocol.currentEpoch();
        uint256 idx = _opIndex(op);
        bool withSuspended;
        for (uint256 i; i < licenses.length; ++i) {
            (address o, OperatorRegistry.LicenseState s) = _state(licenses[i]);
            if (o == op && s == OperatorRegistry.LicenseState.Delegated && vault.isSuspended(licenses[i], e)) {
                withSuspended = true;
            }
        }
        vm.prank(op);
        try protocol.heartbeat() {
            ghostHeartbeats += 1;
            if (withSuspended) ghostSuspendedHeartbeatAttempts += 1;
            (,,,,,,,, uint32 suspendEpochs,) = vault.params();
            for (uint256 i; i < licenses.length; ++i) {
                uint256 id = licenses[i];
                if (registry.operatorOfAt(id, e) != idx || !vault.isSuspended(id, e)) continue;
                (, uint32 until,,) = vault.accounts(id);
                if (until != e + 1 + suspendEpochs) ghostSuspendedHeartbeats += 1; // suspended before e
            }
        } catch {}
    }

    /// @dev `op` commits the hash of the votes of its active licenses (a later commit in the epoch replaces the
    ///      root, and with it the operator's opening: the set of its active licenses cannot change within the epoch).
    function _commit(address op, uint256 verdictSeed) internal {
        uint256 e = protocol.currentEpoch();
        protocol.poke();
        uint256[] memory ids = _activeUnder(op, e);
        if (ids.length == 0) return;
        (AuditProtocol.Vote[] memory votes, uint256[] memory dl, uint256[] memory dt) = _votesOf(e, ids, verdictSeed);
        bytes32 salt = keccak256(abi.encode(verdictSeed, e, op));
        bytes32 root = protocol.commitmentOf(e, op, salt, votes);
        vm.prank(op);
        try protocol.commit(e, root) {
            Opening storage o = _openings[e][op];
            o.salt = salt;
            delete o.votes;
            for (uint256 i; i < votes.length; ++i) {
                o.votes.push(votes[i]);
            }
            o.dutyLicenses = dl;
            o.dutyTargets = dt;
            if (!_hasOpening[e][op]) {
                _hasOpening[e][op] = true;
                _committed[e].push(op);
            }
        } catch {}
    }

    /// @dev The duties of `ids` in epoch `e` (as the protocol states them now) with random verdicts: mostly OK
    ///      (not listed), some FAULT or UNREACHABLE, and some NO_VOTE (a duty not audited: a miss). The votes are
    ///      sorted by (target, license) as `reveal` requires (`ids` are increasing).
    function _votesOf(uint256 e, uint256[] memory ids, uint256 verdictSeed)
        internal
        view
        returns (AuditProtocol.Vote[] memory votes, uint256[] memory dutyLicenses, uint256[] memory dutyTargets)
    {
        uint256 nTargets = targets.targetCount();
        votes = new AuditProtocol.Vote[](nTargets * ids.length);
        dutyLicenses = new uint256[](nTargets * ids.length);
        dutyTargets = new uint256[](nTargets * ids.length);
        uint256 m;
        uint256 d;
        for (uint256 t; t < nTargets; ++t) {
            for (uint256 i; i < ids.length; ++i) {
                if (!protocol.isAssigned(e, ids[i], t)) continue;
                (dutyLicenses[d], dutyTargets[d]) = (ids[i], t);
                ++d;
                uint256 r = uint256(keccak256(abi.encode(verdictSeed, ids[i], t))) % 10;
                if (r < 6) continue; // OK
                uint8 v = r < 8 ? 2 : (r < 9 ? 3 : 0);
                votes[m++] = AuditProtocol.Vote(ids[i], t, v, keccak256(abi.encode("evidence", e, ids[i], t)));
            }
        }
        assembly {
            mstore(votes, m)
            mstore(dutyLicenses, d)
            mstore(dutyTargets, d)
        }
    }

    /// @dev Reveal the openings of the previous epoch, skipping the operators whose bit in `skipMask` is set (their
    ///      duties become misses). Checks that a committed opening always opens, that its duties did not move,
    ///      that the votes stored are the committed ones, and that a second reveal changes nothing.
    function _revealPrevious(uint256 skipMask) internal {
        uint256 c = protocol.currentEpoch();
        if (c == 0) return;
        uint256 e = c - 1;
        (uint256 start, uint256 end) = protocol.revealWindow(e);
        if (block.number < start || block.number >= end) return;
        address[] storage list = _committed[e];
        for (uint256 i; i < list.length; ++i) {
            if ((skipMask >> (i % 256)) & 1 == 1) continue;
            address op = list[i];
            Opening storage o = _openings[e][op];
            for (uint256 j; j < o.dutyLicenses.length; ++j) {
                if (!protocol.isAssigned(e, o.dutyLicenses[j], o.dutyTargets[j])) ghostDutyMoved += 1;
            }
            AuditProtocol.Vote[] memory votes = o.votes;
            bool before = protocol.hasRevealed(op, e);
            try protocol.reveal(e, op, o.salt, votes) {
                if (!before) ghostReveals += 1;
            } catch {
                ghostCommittedRevealRefused += 1;
                continue;
            }
            _checkVotes(e, votes);
            // A second reveal (a copy, a retry) is a no-op.
            try protocol.reveal(e, op, o.salt, votes) {} catch {
                ghostSecondRevealChanged += 1;
            }
            _checkVotes(e, votes);
        }
    }

    /// @dev Every listed vote is stored as committed.
    function _checkVotes(uint256 e, AuditProtocol.Vote[] memory votes) internal {
        for (uint256 j; j < votes.length; ++j) {
            AuditProtocol.Vote memory v = votes[j];
            (bool listed, uint8 verdict, bytes32 root) = protocol.voteOf(e, v.targetId, v.license);
            if (!listed || verdict != v.verdict || root != v.evidenceRoot) ghostVoteNotCommitted += 1;
        }
    }

    function _reportMiss(address reporter, uint256 e, uint256 id, uint256 t) internal returns (bool ok) {
        bytes32 key = keccak256(abi.encode(e, id, t));
        vm.prank(reporter);
        try protocol.reportMiss(e, id, t) {
            ok = true;
            ghostMissReports += 1;
            if (missReportCount[key] == 0) missKeys.push(key);
            missReportCount[key] += 1;
            if (missReportCount[key] > 1) ghostDoubleMissReports += 1;
        } catch {}
        if (ok) {
            // The same miss again must be refused.
            vm.prank(reporter);
            try protocol.reportMiss(e, id, t) {
                missReportCount[key] += 1;
                ghostDoubleMissReports += 1;
            } catch {}
        }
    }

    // ------------------------------------------------------------------------------ owners, sale

    function mintLicenses(uint256 seed, uint256 n) external tick(seed) {
        n = 1 + n % 3;
        address to = _actor(seed >> 8);
        for (uint256 i; i < n && licenses.length < MAX_LICENSES; ++i) {
            vm.prank(sale);
            licenses.push(license.mint(to));
        }
    }

    function transferLicense(uint256 seed, uint256 toSeed) external tick(seed) {
        if (licenses.length == 0) return;
        uint256 id = _license(seed >> 8);
        if (block.timestamp < license.transferUnlockTime()) vm.warp(license.transferUnlockTime());
        address from = license.ownerOf(id);
        address to = _actor(toSeed);
        vm.prank(from);
        try license.transferFrom(from, to, id) {} catch {}
    }

    // ------------------------------------------------------------------------------- delegation

    function registerOperator(uint256 seed, uint256 commission) external tick(seed) {
        address who = _actor(seed >> 8);
        uint16 bps = uint16(commission % 5600); // some above the 5000 maximum
        vm.prank(who);
        try registry.registerOperator(bps, "ipfs://op") {
            operators.push(who);
            commissionAtRegistration[who] = bps;
            if (bps > registry.MAX_COMMISSION_BPS()) ghostCommissionAboveMax += 1;
        } catch {}
    }

    function delegate(uint256 seed, uint256 opSeed) external tick(seed) {
        if (licenses.length == 0) return;
        uint256 id = _license(seed >> 8);
        // Mostly registered operators, sometimes any actor (maybe not registered).
        address op = operators.length > 0 && opSeed % 5 != 0 ? _operator(opSeed >> 8) : _actor(opSeed >> 8);
        address owner = license.ownerOf(id);
        vm.prank(owner);
        try registry.delegate(_one(id), op) {
            // Most operators accept at once.
            if (op != owner && (opSeed >> 4) % 4 != 0) {
                vm.prank(op);
                try registry.approve(_one(id)) {} catch {}
            }
        } catch {}
    }

    function approve(uint256 seed, uint256 opSeed) external tick(seed) {
        if (operators.length == 0 || licenses.length == 0) return;
        address op = _operator(opSeed);
        uint256 start = seed >> 8;
        uint256 id = _license(start);
        for (uint256 i; i < licenses.length; ++i) {
            uint256 cand = licenses[(start + i) % licenses.length];
            (address o, OperatorRegistry.LicenseState s) = _state(cand);
            if (o == op && s == OperatorRegistry.LicenseState.Pending) {
                id = cand;
                break;
            }
        }
        vm.prank(op);
        try registry.approve(_one(id)) {} catch {}
    }

    function undelegate(uint256 seed, uint256 callerSeed) external tick(seed) {
        if (licenses.length == 0) return;
        uint256 id = _license(seed >> 8);
        address caller = callerSeed % 4 == 0 ? _actor(callerSeed >> 8) : license.ownerOf(id);
        vm.prank(caller);
        try registry.undelegate(_one(id)) {} catch {}
    }

    function forceUndelegate(uint256 seed, uint256 callerSeed) external tick(seed) {
        if (licenses.length == 0) return;
        uint256 id = _license(seed >> 8);
        (address op,) = _state(id);
        address caller = op == address(0) || callerSeed % 4 == 0 ? _actor(callerSeed >> 8) : op;
        vm.prank(caller);
        try registry.forceUndelegate(_one(id)) {} catch {}
    }

    // ------------------------------------------------------------------------------- the epoch

    /// @dev An operator's heartbeat; sometimes also someone who is not an operator (refused). A second heartbeat
    ///      in the epoch is refused (AlreadyPresent).
    function heartbeat(uint256 seed, uint256 mask) external tick(seed) {
        if (operators.length == 0 || mask % 8 == 0) {
            address who = _actor(seed >> 8);
            if (registry.isOperator(who)) {
                _heartbeat(who);
                return;
            }
            vm.prank(who);
            try protocol.heartbeat() {
                ghostNonOperatorPresence += 1;
            } catch {}
            return;
        }
        _heartbeat(_operator(seed >> 8));
    }

    /// @dev The heartbeat of an operator with a suspended license (it must not make the license active once the
    ///      suspension's epoch has passed), and a try to resume the license early.
    function heartbeatSuspended(uint256 seed) external tick(seed) {
        uint256 e = protocol.currentEpoch();
        for (uint256 i; i < licenses.length; ++i) {
            uint256 id = licenses[(seed % licenses.length + i) % licenses.length];
            if (!vault.isSuspended(id, e)) continue;
            (address op, OperatorRegistry.LicenseState s) = _state(id);
            if (s != OperatorRegistry.LicenseState.Delegated) continue;
            _resume(id);
            _heartbeat(op);
            return;
        }
    }

    /// @dev Anyone may resume a parked license; it must be refused while the license is suspended next epoch.
    function _resume(uint256 id) internal {
        uint256 e = protocol.currentEpoch();
        bool stillSuspended = vault.isSuspended(id, e + 1);
        try registry.resume(_one(id)) {
            ghostResumes += 1;
            if (stillSuspended) ghostResumedWhileSuspended += 1;
        } catch {}
    }

    /// @dev Resume a parked license (the node does it in the epoch before its suspension ends).
    function resume(uint256 seed) external tick(seed) {
        for (uint256 i; i < licenses.length; ++i) {
            uint256 id = licenses[(seed % licenses.length + i) % licenses.length];
            if (!registry.isParked(id)) continue;
            _resume(id);
            return;
        }
    }

    function commit(uint256 seed, uint256 verdictSeed) external tick(seed) {
        if (operators.length == 0) return;
        _commit(_operator(seed >> 8), verdictSeed);
    }

    function reveal(uint256 seed, uint256 skipMask) external tick(seed) {
        // Skip about one operator in eight: its duties become misses.
        uint256 mask;
        for (uint256 i; i < 32; ++i) {
            if ((skipMask >> (3 * i)) & 7 == 0) mask |= 1 << i;
        }
        _revealPrevious(mask);
    }

    /// @dev An honest-ish round for every operator: accept pending licenses, heartbeat what may, commit, and
    ///      reveal the previous epoch (skipping about a quarter of the operators).
    function nodeRound(uint256 seed, uint256 verdictSeed) external tick(seed) {
        _nodeRound(seed, verdictSeed);
    }

    /// @dev Move into the reveal window of the epoch that just ended, then run a node round.
    function advanceEpoch(uint256 seed, uint256 verdictSeed) external {
        uint256 next = protocol.currentEpoch() + 1;
        vm.roll(protocol.epochStartBlock(next) + seed % 15);
        _nodeRound(seed, verdictSeed);
    }

    function _nodeRound(uint256 seed, uint256 verdictSeed) internal {
        uint256 e = protocol.currentEpoch();
        for (uint256 i; i < licenses.length; ++i) {
            (address o, OperatorRegistry.LicenseState st) = _state(licenses[i]);
            if (st != OperatorRegistry.LicenseState.Pending) continue;
            vm.prank(o);
            try registry.approve(_one(licenses[i])) {} catch {}
        }
        for (uint256 i; i < licenses.length; ++i) {
            if (registry.isParked(licenses[i]) && !vault.isSuspended(licenses[i], e + 1)) _resume(licenses[i]);
        }
        for (uint256 i; i < operators.length; ++i) {
            address op = operators[i];
            if (!vault.isPresent(_opIndex(op), e)) _heartbeat(op);
            _commit(op, verdictSeed);
        }
        _revealPrevious(uint256(keccak256(abi.encode(verdictSeed))) & uint256(keccak256(abi.encode(seed))));
    }

    function settle(uint256 seed, uint256 back) external tick(seed) {
        uint256 c = protocol.currentEpoch();
        uint256 b = 1 + back % 3;
        if (c < b) return;
        uint256 e = c - b;
        uint256 nTargets = targets.targetCount();
        for (uint256 t; t < nTargets; ++t) {
            try protocol.settle(e, t) {
                ghostSettles += 1;
            } catch {}
        }
    }

    function reportMiss(uint256 seed, uint256 back, uint256 licSeed, uint256 targetSeed) external tick(seed) {
        uint256 c = protocol.currentEpoch();
        uint256 b = 1 + back % 4;
        if (c < b || licenses.length == 0) return;
        _reportMiss(reporters[seed % reporters.length], c - b, _license(licSeed), targetSeed % targets.targetCount());
    }

    /// @dev Report the first reportable miss of the last three epochs (tries every license and target).
    function reportAnyMiss(uint256 seed) external tick(seed) {
        uint256 c = protocol.currentEpoch();
        uint256 nTargets = targets.targetCount();
        address reporter = reporters[seed % reporters.length];
        for (uint256 b = 1; b <= 3 && b <= c; ++b) {
            uint256 e = c - b;
            (, uint256 end) = protocol.revealWindow(e);
            if (block.number < end) continue;
            for (uint256 i; i < licenses.length; ++i) {
                uint256 id = licenses[i];
                // The list of an epoch is readable until the end of the epoch two later.
                try vault.isActive(id, e) returns (bool active) {
                    if (!active) continue;
                } catch {
                    continue;
                }
                for (uint256 t; t < nTargets; ++t) {
                    if (protocol.missReported(keccak256(abi.encode(e, id, t)))) continue;
                    try protocol.isAssigned(e, id, t) returns (bool assigned) {
                        if (!assigned) continue;
                    } catch {
                        continue;
                    }
                    if (_reportMiss(reporter, e, id, t)) return;
                }
            }
        }
    }

    /// @dev Report again a miss that was already reported: must always fail.
    function reportMissAgain(uint256 seed) external tick(seed) {
        if (missKeys.length == 0) return;
        // Keys are hashes: find the (epoch, license, target) by scanning recent epochs.
        bytes32 key = missKeys[seed % missKeys.length];
        uint256 c = protocol.currentEpoch();
        uint256 nTargets = targets.targetCount();
        for (uint256 b = 1; b <= 6 && b <= c; ++b) {
            for (uint256 i; i < licenses.length; ++i) {
                for (uint256 t; t < nTargets; ++t) {
                    if (keccak256(abi.encode(c - b, licenses[i], t)) != key) continue;
                    vm.prank(reporters[0]);
                    try protocol.reportMiss(c - b, licenses[i], t) {
                        missReportCount[key] += 1;
                        ghostDoubleMissReports += 1;
                    } catch {}
                    return;
                }
            }
        }
    }

    function roll(uint256 blocks) external {
        vm.roll(block.number + 5 + blocks % 40);
    }

    // ----------------------------------------------------------------------------- money in/out

    function depositFees(uint256 seed, uint256 amount) external tick(seed) {
        amount = 1 + amount % 5000 ether;
        _mintFor(amount);
        (uint16 nodeShare,,,,,,,,,) = vault.params();
        try vault.depositFees(amount) {
            ghostFunded += amount * nodeShare / BPS;
        } catch {}
    }

    function fundEmission(uint256 seed, uint256 amount) external tick(seed) {
        amount = 1 + amount % 20_000 ether;
        _mintFor(amount);
        try vault.fundEmission(amount) {
            ghostFunded += amount;
        } catch {}
    }

    function stake(uint256 seed, uint256 amount) external tick(seed) {
        amount = 1 ether + amount % 1000 ether;
        address who = _actor(seed >> 8);
        token.mint(who, amount);
        vm.startPrank(who);
        token.approve(address(staking), amount);
        staking.deposit(amount, who);
        vm.stopPrank();
    }

    function claim(uint256 seed) external tick(seed) {
        address owner = _actor(seed >> 8);
        uint256[] memory ids = new uint256[](licenses.length);
        uint256 n;
        for (uint256 i; i < licenses.length; ++i) {
            if (license.ownerOf(licenses[i]) == owner) ids[n++] = licenses[i];
        }
        if (n == 0) return;
        assembly {
            mstore(ids, n)
        }
        uint256 prior = token.balanceOf(owner);
        vm.prank(owner);
        try vault.claim(ids) returns (uint256 paid) {
            ghostClaims += 1;
            ghostPaidOut += paid;
            if (token.balanceOf(owner) - prior != paid) ghostPaymentMismatch += 1;
        } catch {}
    }

    function claimCommission(uint256 seed) external tick(seed) {
        if (operators.length == 0) return;
        address op = _operator(seed >> 8);
        uint256 prior = token.balanceOf(op);
        vm.prank(op);
        if ((seed >> 200) % 2 == 0) {
            try vault.claimCommission() returns (uint256 paid) {
                ghostPaidOut += paid;
                if (token.balanceOf(op) - prior != paid) ghostPaymentMismatch += 1;
            } catch {}
        } else {
            // Credit every license first: an operator's commission is booked as its licenses are credited.
            try vault.claimCommissionFor(licenses) returns (uint256 paid) {
                ghostPaidOut += paid;
                if (token.balanceOf(op) - prior != paid) ghostPaymentMismatch += 1;
            } catch {}
        }
    }

    function claimBounty(uint256 seed) external tick(seed) {
        address r = reporters[(seed >> 8) % reporters.length];
        uint256 prior = token.balanceOf(r);
        vm.prank(r);
        try vault.claimBounty() returns (uint256 paid) {
            ghostPaidOut += paid;
            if (token.balanceOf(r) - prior != paid) ghostPaymentMismatch += 1;
        } catch {}
    }

    function withdrawTreasury(uint256 seed) external tick(seed) {
        try vault.withdrawTreasury() returns (uint256 paid) {
            ghostTreasuryWithdrawn += paid;
        } catch {}
    }

    // ---------------------------------------------------------------------- keeper, governance

    function revealTrap(uint256 seed) external tick(seed) {
        vm.prank(keeper);
        try targets.revealTrap(trapTarget, TRAP_OUTCOME, TRAP_SALT) {} catch {}
    }

    function setTargetEnabled(uint256 seed, bool enabled) external tick(seed) {
        uint256 t = (seed >> 8) % targets.targetCount();
        vm.prank(timelock);
        targets.setTargetEnabled(t, enabled);
    }
}
