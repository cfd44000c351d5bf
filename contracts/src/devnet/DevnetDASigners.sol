// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

/// @title BN254
/// @notice Small alt_bn128 helpers for the devnet DA stand-ins (written for this repo). The point types have
///         the same layout as 0G's `BN254.G1Point` / `BN254.G2Point`, so ABI tuples are identical:
///         G1 = (X, Y), G2 = (uint256[2] X, uint256[2] Y). The point at infinity is (0, 0).
/// @dev Uses the EIP-196/197/198 precompiles: 0x05 modexp, 0x06 add, 0x07 mul, 0x08 pairing.
library BN254 {
    /// @notice Base field modulus p.
    uint256 internal constant FP_MODULUS =
        21888242871839275222246405745257275088696311157297823662689037894645226208583;
    /// @notice Group order r.
    uint256 internal constant FR_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @dev (p + 1) / 4: as p = 3 mod 4, beta^((p+1)/4) is a square root of beta whenever one exists.
    uint256 private constant SQRT_EXPONENT = 0xc19139cb84c680a6e14116da060561765e05aa45a1c72a34f082305b61f3f52;

    struct G1Point {
        uint256 X;
        uint256 Y;
    }

    /// @dev Word order is the caller's business: the DASigners records use chain order (real part first),
    ///      the pairing precompile takes EVM order (imaginary part first).
    struct G2Point {
        uint256[2] X;
        uint256[2] Y;
    }

    function generatorG1() internal pure returns (G1Point memory) {
        return G1Point(1, 2);
    }

    /// @notice -G2 (the negated standard generator) in EVM (EIP-197) word order.
    function negGeneratorG2() internal pure returns (G2Point memory g) {
        g.X[0] = 11559732032986387107991004021392285783925812861821192530917403151452391805634;
        g.X[1] = 10857046999023057135944570762232829481370756359578518086990519993285655852781;
        g.Y[0] = 17805874995975841540914202342111839520379459829704422454583296818431106115052;
        g.Y[1] = 13392588948715843804641432497768002650278120570034223513918757245338268106653;
    }

    function isZero(G1Point memory a) internal pure returns (bool) {
        return a.X == 0 && a.Y == 0;
    }

    /// @notice y^2 == x^3 + 3 over Fp with both coordinates reduced, or the point at infinity.
    function isOnCurve(G1Point memory a) internal pure returns (bool) {
        if (isZero(a)) return true;
        if (a.X >= FP_MODULUS || a.Y >= FP_MODULUS) return false;
        uint256 rhs = addmod(mulmod(mulmod(a.X, a.X, FP_MODULUS), a.X, FP_MODULUS), 3, FP_MODULUS);
        return mulmod(a.Y, a.Y, FP_MODULUS) == rhs;
    }

    /// @notice a + b via precompile 0x06. Points off the curve revert here, before the precompile (which would
    ///         otherwise consume all the gas it is given).
    function add(G1Point memory a, G1Point memory b) internal view returns (G1Point memory out) {
        require(isOnCurve(a) && isOnCurve(b), "BN254: point not on curve");
        uint256[4] memory input = [a.X, a.Y, b.X, b.Y];
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x06, input, 0x80, out, 0x40)
        }
        require(ok, "BN254: G1 addition failed");
    }

    /// @notice s * a via precompile 0x07 (off-curve points revert before the call, as in `add`).
    function mul(G1Point memory a, uint256 s) internal view returns (G1Point memory out) {
        require(isOnCurve(a), "BN254: point not on curve");
        uint256[3] memory input = [a.X, a.Y, s];
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x07, input, 0x60, out, 0x40)
        }
        require(ok, "BN254: G1 multiplication failed");
    }

    /// @notice base^e mod p via precompile 0x05.
    function expModP(uint256 base, uint256 e) internal view returns (uint256 result) {
        uint256[6] memory input = [uint256(32), 32, 32, base, e, FP_MODULUS];
        uint256[1] memory output;
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x05, input, 0xc0, output, 0x20)
        }
        require(ok, "BN254: modexp failed");
        result = output[0];
    }

    /// @notice 0G's try-and-increment map of a digest to G1: x = digest mod p; while x^3 + 3 is not a
    ///         square, x = x + 1 mod p; y = (x^3 + 3)^((p+1)/4) (this root, never its negation).
    function hashToG1(bytes32 digest) internal view returns (G1Point memory) {
        uint256 x = uint256(digest) % FP_MODULUS;
        while (true) {
            uint256 beta = addmod(mulmod(mulmod(x, x, FP_MODULUS), x, FP_MODULUS), 3, FP_MODULUS);
            uint256 y = expModP(beta, SQRT_EXPONENT);
            if (mulmod(y, y, FP_MODULUS) == beta) return G1Point(x, y);
            x = addmod(x, 1, FP_MODULUS);
        }
        revert(); // unreachable
    }

    /// @notice e(a1, b1) * e(a2, b2) == 1 via precompile 0x08 with a gas cap (G2 in EVM word order).
    /// @return success whether the precompile call succeeded; valid whether the product is one.
    function pairing2(G1Point memory a1, G2Point memory b1, G1Point memory a2, G2Point memory b2, uint256 gasCap)
        internal
        view
        returns (bool success, bool valid)
    {
        uint256[12] memory input = [
            a1.X, a1.Y, b1.X[0], b1.X[1], b1.Y[0], b1.Y[1], a2.X, a2.Y, b2.X[0], b2.X[1], b2.Y[0], b2.Y[1]
        ];
        uint256[1] memory output;
        assembly ("memory-safe") {
            success := staticcall(gasCap, 0x08, input, 0x180, output, 0x20)
        }
        valid = success && output[0] == 1;
    }
}

/// @notice The parts of 0G's DASigners precompile interface the devnet stand-in implements, with 0G's
///         struct layouts, event signatures and function signatures (0g-chain precompiles/dasigners/IDASigners.abi).
interface IDASigners {
    struct SignerDetail {
        address signer;
        string socket;
        BN254.G1Point pkG1;
        /// @dev chain word order: X = [x0, x1], Y = [y0, y1] (real part first).
        BN254.G2Point pkG2;
    }

    struct Params {
        uint256 tokensPerVote;
        uint256 maxVotesPerSigner;
        uint256 maxQuorums;
        uint256 epochBlocks;
        uint256 encodedSlices;
    }

    event NewSigner(address indexed signer, BN254.G1Point pkG1, BN254.G2Point pkG2);
    event SocketUpdated(address indexed signer, string socket);

    function params() external view returns (Params memory);
    function epochNumber() external view returns (uint256);
    function quorumCount(uint256 _epoch) external view returns (uint256);
    function isSigner(address _account) external view returns (bool);
    function getSigner(address[] memory _account) external view returns (SignerDetail[] memory);
    function getQuorum(uint256 _epoch, uint256 _quorumId) external view returns (address[] memory);
    function getQuorumRow(uint256 _epoch, uint256 _quorumId, uint32 _rowIndex) external view returns (address);
    function registerSigner(SignerDetail memory _signer, BN254.G1Point memory _signature) external;
    function updateSocket(string memory _socket) external;
    function registeredEpoch(address _account, uint256 _epoch) external view returns (bool);
    function registerNextEpoch(BN254.G1Point memory _signature) external;
    function getAggPkG1(uint256 _epoch, uint256 _quorumId, bytes memory _quorumBitmap)
        external
        view
        returns (BN254.G1Point memory aggPkG1, uint256 total, uint256 hit);
}

/// @title DevnetDASigners
/// @notice DEVNET ONLY. A stand-in for 0G's DASigners precompile (0x...1000) with the real ABI for the views
///         an auditor uses (epochNumber, quorumCount, getQuorum, getQuorumRow, getSigner, isSigner,
///         registeredEpoch, getAggPkG1, params) and the real NewSigner / SocketUpdated events. The devnet puts
///         this contract's runtime code at 0x0000000000000000000000000000000000001000 with anvil_setCode, so
///         nothing is set in a constructor: the first caller of `devnetInit` names the admin.
/// @dev Deliberate differences from the chain module, all for a devnet:
///      * no registration proofs: `registerSigner`'s and `registerNextEpoch`'s signatures are ignored (only pkG1
///        is checked to be on the curve), and there is no stake or vote accounting;
///      * epochs do not follow blocks: the admin opens one with `newEpoch(quorums)`, giving each quorum's rows
///        (one address per encoded row); `makeEpoch` is a no-op;
///      * the admin can register or re-key any signer, enrol signers for an epoch (`enrol`) and set any
///        signer's socket (`updateSocket(address,string)`).
///      Anyone who calls `devnetInit` first controls it: never deploy this outside a devnet.
contract DevnetDASigners is IDASigners {
    struct SignerRecord {
        bool exists;
        string socket;
        BN254.G1Point pkG1;
        BN254.G2Point pkG2;
    }

    address private _admin;
    uint256 private _epochNumber;
    /// @dev epoch => quorum id => rows (one signer address per row).
    mapping(uint256 => address[][]) private _quorums;
    mapping(address => SignerRecord) private _signers;
    mapping(address => mapping(uint256 => bool)) private _registeredEpoch;

    event DevnetAdminSet(address indexed admin);
    event DevnetEpochStarted(uint256 indexed epoch, uint256 quorumCount);

    modifier onlyAdmin() {
        require(_admin != address(0) && msg.sender == _admin, "DevnetDASigners: not admin");
        _;
    }

    // ------------------------------------------------------------------------------------------- admin

    /// @notice Sets the admin once (first call wins). Devnet only: there is no other access control.
    function devnetInit(address admin) external {
        require(_admin == address(0), "DevnetDASigners: already initialised");
        require(admin != address(0), "DevnetDASigners: zero admin");
        _admin = admin;
        emit DevnetAdminSet(admin);
    }

    function devnetAdmin() external view returns (address) {
        return _admin;
    }

    /// @notice Opens epoch `epochNumber() + 1` with the given quorums: `quorums[q][row]` is the signer of that
    ///         row. Every row's signer must be registered; each becomes registered for the new epoch.
    function newEpoch(address[][] calldata quorums) external onlyAdmin returns (uint256 epoch) {
        epoch = _epochNumber + 1;
        _epochNumber = epoch;
        address[][] storage stored = _quorums[epoch];
        for (uint256 q; q < quorums.length; ++q) {
            address[] calldata rows = quorums[q];
            require(rows.length > 0, "DevnetDASigners: empty quorum");
            for (uint256 i; i < rows.length; ++i) {
                require(_signers[rows[i]].exists, "DevnetDASigners: row signer not registered");
                _registeredEpoch[rows[i]][epoch] = true;
            }
            stored.push(rows);
        }
        emit DevnetEpochStarted(epoch, quorums.length);
    }

    /// @notice Marks `signer` as registered for `epoch` (the devnet's registerNextEpoch).
    function enrol(address signer, uint256 epoch) external onlyAdmin {
        require(_signers[signer].exists, "DevnetDASigners: signer not found");
        _registeredEpoch[signer][epoch] = true;
    }

    /// @notice Sets `signer`'s socket (admin only); emits SocketUpdated.
    function updateSocket(address signer, string calldata socket) external onlyAdmin {
        _setSocket(signer, socket);
    }

    // ------------------------------------------------------------------------------- real-ABI writes

    /// @notice Registers (or, by the admin, re-keys) a signer; the signature is not checked on the devnet.
    ///         Callable by the signer itself or the admin. Emits NewSigner then SocketUpdated, as the chain does.
    function registerSigner(SignerDetail memory _signer, BN254.G1Point memory) external {
        address account = _signer.signer;
        require(account != address(0), "DevnetDASigners: zero signer");
        bool byAdmin = _admin != address(0) && msg.sender == _admin;
        require(byAdmin || msg.sender == account, "DevnetDASigners: sender is not the signer");
        require(byAdmin || !_signers[account].exists, "DevnetDASigners: signer exists");
        require(
            !BN254.isZero(_signer.pkG1) && BN254.isOnCurve(_signer.pkG1), "DevnetDASigners: pkG1 not on curve"
        );
        SignerRecord storage rec = _signers[account];
        rec.exists = true;
        rec.socket = _signer.socket;
        rec.pkG1 = _signer.pkG1;
        rec.pkG2 = _signer.pkG2;
        emit NewSigner(account, _signer.pkG1, _signer.pkG2);
        emit SocketUpdated(account, _signer.socket);
    }

    /// @notice The caller's socket (the chain's updateSocket).
    function updateSocket(string memory _socket) external {
        _setSocket(msg.sender, _socket);
    }

    /// @notice Registers the caller for the next epoch; the signature is not checked on the devnet.
    function registerNextEpoch(BN254.G1Point memory) external {
        require(_signers[msg.sender].exists, "DevnetDASigners: signer not found");
        _registeredEpoch[msg.sender][_epochNumber + 1] = true;
    }

    /// @notice No-op (epochs are opened by `newEpoch`); present because 0G's DAEntrance calls it.
    function makeEpoch() external {}

    function _setSocket(address signer, string memory socket) internal {
        require(_signers[signer].exists, "DevnetDASigners: signer not found");
        _signers[signer].socket = socket;
        emit SocketUpdated(signer, socket);
    }

    // ------------------------------------------------------------------------------------ real views

    /// @notice Devnet values (no stake accounting, epochs not tied to blocks): encodedSlices is the row count of
    ///         quorum 0 of the current epoch, or 0G's production 3072 before any quorum exists.
    function params() external view returns (Params memory) {
        address[][] storage qs = _quorums[_epochNumber];
        uint256 rows = qs.length > 0 ? qs[0].length : 3072;
        return Params({tokensPerVote: 0, maxVotesPerSigner: 1024, maxQuorums: 10, epochBlocks: 0, encodedSlices: rows});
    }

    function epochNumber() external view returns (uint256) {
        return _epochNumber;
    }

    function quorumCount(uint256 _epoch) external view returns (uint256) {
        return _quorums[_epoch].length;
    }

    function isSigner(address _account) external view returns (bool) {
        return _signers[_account].exists;
    }

    function registeredEpoch(address _account, uint256 _epoch) external view returns (bool) {
        return _registeredEpoch[_account][_epoch];
    }

    /// @notice The signers' records, in the order asked; reverts on an unknown address.
    function getSigner(address[] memory _account) external view returns (SignerDetail[] memory out) {
        out = new SignerDetail[](_account.length);
        for (uint256 i; i < _account.length; ++i) {
            SignerRecord storage rec = _signers[_account[i]];
            require(rec.exists, "DevnetDASigners: signer not found");
            out[i] = SignerDetail({signer: _account[i], socket: rec.socket, pkG1: rec.pkG1, pkG2: rec.pkG2});
        }
    }

    function getQuorum(uint256 _epoch, uint256 _quorumId) external view returns (address[] memory) {
        return _quorum(_epoch, _quorumId);
    }

    function getQuorumRow(uint256 _epoch, uint256 _quorumId, uint32 _rowIndex) external view returns (address) {
        address[] storage rows = _quorum(_epoch, _quorumId);
        require(_rowIndex < rows.length, "DevnetDASigners: row index out of bound");
        return rows[_rowIndex];
    }

    /// @notice The x/dasigners AggregatePubkeyG1 rule. The bitmap must be exactly ceil(rows / 8) bytes; bit i
    ///         is `bitmap[i / 8] >> (i % 8) & 1`. Walking the rows in order, a row whose signer was already
    ///         added is a hit whatever its bit; otherwise a set bit adds that signer's pkG1 (once) and is a hit.
    /// @return aggPkG1 the sum of the added signers' pkG1; total the row count; hit the rows counted.
    function getAggPkG1(uint256 _epoch, uint256 _quorumId, bytes memory _quorumBitmap)
        external
        view
        returns (BN254.G1Point memory aggPkG1, uint256 total, uint256 hit)
    {
        address[] storage rows = _quorum(_epoch, _quorumId);
        total = rows.length;
        require(_quorumBitmap.length == (total + 7) / 8, "DevnetDASigners: quorum bitmap length mismatch");
        address[] memory added = new address[](total);
        uint256 addedCount;
        for (uint256 i; i < total; ++i) {
            address signer = rows[i];
            bool seen;
            for (uint256 j; j < addedCount; ++j) {
                if (added[j] == signer) {
                    seen = true;
                    break;
                }
            }
            if (seen) {
                ++hit;
                continue;
            }
            if ((uint8(_quorumBitmap[i >> 3]) >> (i & 7)) & 1 == 0) continue;
            ++hit;
            added[addedCount++] = signer;
            SignerRecord storage rec = _signers[signer];
            require(rec.exists, "DevnetDASigners: signer not found");
            aggPkG1 = BN254.add(aggPkG1, rec.pkG1);
        }
    }

    function _quorum(uint256 _epoch, uint256 _quorumId) internal view returns (address[] storage) {
        address[][] storage qs = _quorums[_epoch];
        require(_quorumId < qs.length, "DevnetDASigners: quorum not found");
        return qs[_quorumId];
    }
}
