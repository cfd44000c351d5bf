// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {Test} from "./utils/Test.sol";
import {Vm} from "./utils/Vm.sol";
import {BN254, IDASigners, DevnetDASigners} from "../src/devnet/DevnetDASigners.sol";
import {IDAEntrance, DevnetDAEntrance} from "../src/devnet/DevnetDAEntrance.sol";

/// @dev The one cheatcode this file needs beyond utils/Vm.sol.
interface IEtchCheat {
    function etch(address target, bytes calldata newRuntimeBytecode) external;
}

/// @dev Key material computed offline with alignment_node.da.bls (py_ecc / mcl), see each constant's comment.
contract DevnetDATest is Test {
    event NewSigner(address indexed signer, BN254.G1Point pkG1, BN254.G2Point pkG2);
    event SocketUpdated(address indexed signer, string socket);
    event DataUpload(address sender, bytes32 dataRoot, uint256 epoch, uint256 quorumId, uint256 blobPrice);
    event ErasureCommitmentVerified(bytes32 dataRoot, uint256 epoch, uint256 quorumId);

    address internal constant PRECOMPILE = 0x0000000000000000000000000000000000001000;

    // Canonical signatures an auditor filters on / calls (0G's ABI).
    bytes32 internal constant DATA_UPLOAD_TOPIC = keccak256("DataUpload(address,bytes32,uint256,uint256,uint256)");
    bytes32 internal constant VERIFIED_TOPIC = keccak256("ErasureCommitmentVerified(bytes32,uint256,uint256)");
    bytes32 internal constant NEW_SIGNER_TOPIC =
        keccak256("NewSigner(address,(uint256,uint256),(uint256[2],uint256[2]))");

    address internal A = address(0xA11CE);
    address internal B = address(0xB0B);
    address internal C = address(0xC4A5);

    DevnetDASigners internal signers;
    DevnetDAEntrance internal entrance;

    // bls.keypair(7), (11), (13): pkG1, and pkG2 in chain order (x0, x1, y0, y1).
    function _pkA() internal pure returns (BN254.G1Point memory g1, BN254.G2Point memory g2) {
        g1 = BN254.G1Point(
            10415861484417082502655338383609494480414113902179649885744799961447382638712,
            10196215078179488638353184030336251401353352596818396260819493263908881608606
        );
        g2.X = [
            15512671280233143720612069991584289591749188907863576513414377951116606878472,
            18551411094430470096460536606940536822990217226529861227533666875800903099477
        ];
        g2.Y = [
            13376798835316611669264291046140500151806347092962367781523498857425536295743,
            1711576522631428957817575436337311654689480489843856945284031697403898093784
        ];
    }

    function _pkB() internal pure returns (BN254.G1Point memory g1, BN254.G2Point memory g2) {
        g1 = BN254.G1Point(
            19033251874843656108471242320417533909414939332036131356573128480367742634479,
            20792135454608030201903199625673964159744755218442260092768620403349374102584
        );
        g2.X = [
            8472151341754925747860535367990505955708751825377817860727104273184244800723,
            15624790064206502667756020446826209080711344272800176518784649088946231692936
        ];
        g2.Y = [
            1196137947243150610106053819405501111182787323156221967342356892090037828244,
            19488077321171448217727198730828487286865984357780136663388739985720647978898
        ];
    }

    function _pkC() internal pure returns (BN254.G1Point memory g1, BN254.G2Point memory g2) {
        g1 = BN254.G1Point(
            2672242651313367459976336264061690128665099451055893690004467838496751824703,
            18247534626997477790812670345925575171672701304065784723769023620148097699216
        );
        g2.X = [
            16137324789686743234629608741537369181251990815455155257427276976918350071287,
            280672898440571232725436467950720547829638241593507531241322547969961007057
        ];
        g2.Y = [
            12136420650226457477690750437223209427924916790606163705631661913973995426040,
            17641806683785498955878869918183868440783188556637975525088932771694068429840
        ];
    }

    // pkA + pkB, pkA + pkC, pkA + pkB + pkC (G1)
    function _aggAB() internal pure returns (BN254.G1Point memory) {
        return BN254.G1Point(
            20687098839691105097230132006705975099432129393118730698937199498853576759031,
            2784555085364475896955849729890301289648525422842103121195101376751786827234
        );
    }

    function _aggAC() internal pure returns (BN254.G1Point memory) {
        return BN254.G1Point(
            18947110137775984544896515092961257947872750783784269176923414004072777296602,
            12292085037693291586083644966434670280746730626861846747147579999202931064992
        );
    }

    function _aggABC() internal pure returns (BN254.G1Point memory) {
        return BN254.G1Point(
            9366015879375004571250438303432407971238053874512316318402267084951246439740,
            18456548560916331602912926306132216314029103442570467520030714287463663922742
        );
    }

    // The blob: dataRoot = keccak256("devnet-da-blob"), epoch 1, quorum 0, commitment = 12345 * G1.
    bytes32 internal constant ROOT = 0x244d093946f46a8ffe60afcc7e0f54cd1c148e46ac849072b87096eea4536c87;

    function _commitment() internal pure returns (BN254.G1Point memory) {
        return BN254.G1Point(
            11404940445424363337823423808411232433223590477377068719858726746225925918890,
            2424505913866680143139332783087422983475325405994502385033744924144562639386
        );
    }

    /// @dev bls.commit_root_hash(ROOT, 1, 0, commitment)
    function _hash() internal pure returns (BN254.G1Point memory) {
        return BN254.G1Point(
            15831359531516249736784865386177736597538360805311449420087999244930467409657,
            15910725004342215787931059492652335303919614017379371114563445000137896224231
        );
    }

    /// @dev The submission signed by A and B: sig = 7*H + 11*H, aggPkG2 = pkA2 + pkB2 in EVM order, bitmap 0x03.
    function _submissionAB() internal pure returns (IDAEntrance.CommitRootSubmission memory s) {
        s.dataRoot = ROOT;
        s.epoch = 1;
        s.quorumId = 0;
        s.erasureCommitment = _commitment();
        s.quorumBitmap = hex"03";
        s.aggPkG2.X = [
            2340397631753377231733695849605175904192686240823302317010817541021442684215,
            20205499060794531252933875633738005730862970290858724536535646342356383399601
        ];
        s.aggPkG2.Y = [
            16043100915801004480558860970627457165771089947026304620667150347633022941611,
            771167834318126387609064441475164048125404542719317359271138050303825914032
        ];
        s.signature = BN254.G1Point(
            16317214759405544185424863054945440648329837953262660086155979878477227081735,
            15077078211644917098984729340822156108173689140347517005874372851834062687047
        );
    }

    /// @dev A alone: sig = 7*H, aggPkG2 = pkA2 in EVM order, bitmap 0x01 (rows 0 and 2: 2 of 4 rows).
    function _submissionA() internal pure returns (IDAEntrance.CommitRootSubmission memory s) {
        s = _submissionAB();
        s.quorumBitmap = hex"01";
        s.aggPkG2.X = [
            18551411094430470096460536606940536822990217226529861227533666875800903099477,
            15512671280233143720612069991584289591749188907863576513414377951116606878472
        ];
        s.aggPkG2.Y = [
            1711576522631428957817575436337311654689480489843856945284031697403898093784,
            13376798835316611669264291046140500151806347092962367781523498857425536295743
        ];
        s.signature = BN254.G1Point(
            3752520488268145650301557608757181558285094514718721360248562832743958162110,
            20641136295088538353499157888225931795089167355509704735019952643290805558816
        );
    }

    function _detail(address who, string memory socket, BN254.G1Point memory g1, BN254.G2Point memory g2)
        internal
        pure
        returns (IDASigners.SignerDetail memory d)
    {
        d = IDASigners.SignerDetail({signer: who, socket: socket, pkG1: g1, pkG2: g2});
    }

    function _one(IDAEntrance.CommitRootSubmission memory s)
        internal
        pure
        returns (IDAEntrance.CommitRootSubmission[] memory arr)
    {
        arr = new IDAEntrance.CommitRootSubmission[](1);
        arr[0] = s;
    }

    function _err(string memory message) internal pure returns (bytes memory) {
        return abi.encodeWithSignature("Error(string)", message);
    }

    function setUp() public {
        IEtchCheat(address(vm)).etch(PRECOMPILE, address(new DevnetDASigners()).code);
        signers = DevnetDASigners(PRECOMPILE);
        signers.devnetInit(address(this));
        (BN254.G1Point memory a1, BN254.G2Point memory a2) = _pkA();
        (BN254.G1Point memory b1, BN254.G2Point memory b2) = _pkB();
        (BN254.G1Point memory c1, BN254.G2Point memory c2) = _pkC();
        BN254.G1Point memory none;
        signers.registerSigner(_detail(A, "10.0.0.1:34000", a1, a2), none);
        signers.registerSigner(_detail(B, "10.0.0.2:34000", b1, b2), none);
        signers.registerSigner(_detail(C, "10.0.0.3:34000", c1, c2), none);
        address[][] memory quorums = new address[][](2);
        quorums[0] = new address[](4);
        (quorums[0][0], quorums[0][1], quorums[0][2], quorums[0][3]) = (A, B, A, C);
        quorums[1] = new address[](3);
        (quorums[1][0], quorums[1][1], quorums[1][2]) = (C, C, B);
        signers.newEpoch(quorums);
        entrance = new DevnetDAEntrance();
    }

    // ------------------------------------------------------------------------------------ known answers

    /// @dev tests/vectors/da-bls.json zerog[0] (0g-da-node blob_verified_hash_test): root 0x11..11, epoch 1,
    ///      quorum 2, commitment (1, 2).
    function test_hashToG1_matchesZeroGVector() public view {
        BN254.G1Point memory h = entrance.commitRootHash(
            0x1111111111111111111111111111111111111111111111111111111111111111, 1, 2, BN254.G1Point(1, 2)
        );
        assertEq(h.X, 3104132272622526655068902279970515367044771064982988265068273751564440697689, "H.x");
        assertEq(h.Y, 14983672482514514723382346054400511740670770934276906876175822994665721348371, "H.y");
    }

    function test_hashToG1_matchesPythonForBlob() public view {
        BN254.G1Point memory h = entrance.commitRootHash(ROOT, 1, 0, _commitment());
        assertEq(h.X, _hash().X, "H.x");
        assertEq(h.Y, _hash().Y, "H.y");
    }

    function test_selectorsMatchZeroG() public pure {
        assertEq(bytes32(IDASigners.getAggPkG1.selector), bytes32(bytes4(keccak256("getAggPkG1(uint256,uint256,bytes)"))), "getAggPkG1");
        assertEq(
            bytes32(IDASigners.getSigner.selector), bytes32(bytes4(keccak256("getSigner(address[])"))), "getSigner"
        );
        assertEq(
            bytes32(IDASigners.registerSigner.selector),
            bytes32(bytes4(keccak256("registerSigner((address,string,(uint256,uint256),(uint256[2],uint256[2])),(uint256,uint256))"))),
            "registerSigner"
        );
        assertEq(
            bytes32(IDAEntrance.submitVerifiedCommitRoots.selector),
            bytes32(
                bytes4(
                    keccak256(
                        "submitVerifiedCommitRoots((bytes32,uint256,uint256,(uint256,uint256),bytes,(uint256[2],uint256[2]),(uint256,uint256))[])"
                    )
                )
            ),
            "submitVerifiedCommitRoots"
        );
        assertEq(DATA_UPLOAD_TOPIC, IDAEntrance.DataUpload.selector, "DataUpload");
        assertEq(VERIFIED_TOPIC, IDAEntrance.ErasureCommitmentVerified.selector, "ErasureCommitmentVerified");
        assertEq(NEW_SIGNER_TOPIC, IDASigners.NewSigner.selector, "NewSigner");
    }

    // ------------------------------------------------------------------------------------------ signers

    function test_views() public view {
        assertEq(signers.epochNumber(), 1, "epoch");
        assertEq(signers.quorumCount(1), 2, "quorums");
        assertEq(signers.quorumCount(0), 0, "no quorums at epoch 0");
        address[] memory q0 = signers.getQuorum(1, 0);
        assertEq(q0.length, 4, "rows");
        assertEq(q0[2], A, "row 2");
        assertEq(signers.getQuorumRow(1, 1, 2), B, "q1 row 2");
        assertTrue(signers.isSigner(C), "C signer");
        assertFalse(signers.isSigner(address(0xdead)), "stranger");
        assertTrue(signers.registeredEpoch(A, 1), "A in epoch 1");
        assertFalse(signers.registeredEpoch(A, 2), "A not in epoch 2");
        address[] memory who = new address[](2);
        (who[0], who[1]) = (B, A);
        IDASigners.SignerDetail[] memory d = signers.getSigner(who);
        (BN254.G1Point memory a1, BN254.G2Point memory a2) = _pkA();
        assertEq(d[1].signer, A, "signer");
        assertEq(keccak256(bytes(d[1].socket)), keccak256("10.0.0.1:34000"), "socket");
        assertEq(d[1].pkG1.X, a1.X, "pkG1.X");
        assertEq(d[1].pkG2.X[0], a2.X[0], "pkG2 chain order x0");
        assertEq(d[1].pkG2.Y[1], a2.Y[1], "pkG2 chain order y1");
        assertEq(d[0].signer, B, "order kept");
        assertEq(signers.params().encodedSlices, 4, "params: rows of quorum 0");
    }

    function test_viewReverts() public {
        vm.expectRevert(_err("DevnetDASigners: row index out of bound"));
        signers.getQuorumRow(1, 0, 4);
        vm.expectRevert(_err("DevnetDASigners: quorum not found"));
        signers.getQuorum(1, 2);
        address[] memory who = new address[](1);
        who[0] = address(0xdead);
        vm.expectRevert(_err("DevnetDASigners: signer not found"));
        signers.getSigner(who);
    }

    function _agg(bytes memory bitmap, BN254.G1Point memory want, uint256 wantHit, string memory what) internal view {
        (BN254.G1Point memory agg, uint256 total, uint256 hit) = signers.getAggPkG1(1, 0, bitmap);
        assertEq(total, 4, what);
        assertEq(hit, wantHit, what);
        assertEq(agg.X, want.X, what);
        assertEq(agg.Y, want.Y, what);
    }

    /// @dev Quorum 0 rows are A, B, A, C.
    function test_getAggPkG1_bitmaps() public view {
        (BN254.G1Point memory a1,) = _pkA();
        BN254.G1Point memory zero;
        _agg(hex"03", _aggAB(), 3, "rows 0,1: A, B; row 2 is A again");
        _agg(hex"01", a1, 2, "row 0: A, and row 2 follows");
        _agg(hex"04", a1, 1, "row 2 only: row 0 came before A was added");
        _agg(hex"0f", _aggABC(), 4, "all rows");
        _agg(hex"0d", _aggAC(), 3, "rows 0,2,3");
        _agg(hex"00", zero, 0, "no rows");
        _agg(hex"f3", _aggAB(), 3, "bits past the last row are ignored");
        (BN254.G1Point memory agg, uint256 total, uint256 hit) = signers.getAggPkG1(1, 1, hex"01");
        (BN254.G1Point memory c1,) = _pkC();
        assertEq(total, 3, "q1 total");
        assertEq(hit, 2, "q1: C's second row follows its first");
        assertEq(agg.X, c1.X, "q1 agg");
    }

    function test_getAggPkG1_bitmapLength() public {
        vm.expectRevert(_err("DevnetDASigners: quorum bitmap length mismatch"));
        signers.getAggPkG1(1, 0, hex"0300");
        vm.expectRevert(_err("DevnetDASigners: quorum bitmap length mismatch"));
        signers.getAggPkG1(1, 0, hex"");
        vm.expectRevert(_err("DevnetDASigners: quorum not found"));
        signers.getAggPkG1(2, 0, hex"03");
    }

    function test_getAggPkG1_gas64Rows() public {
        address[][] memory quorums = new address[][](1);
        quorums[0] = new address[](64);
        for (uint256 i; i < 64; ++i) quorums[0][i] = i % 3 == 0 ? A : (i % 3 == 1 ? B : C);
        signers.newEpoch(quorums);
        uint256 before = gasleft();
        (BN254.G1Point memory agg, uint256 total, uint256 hit) =
            signers.getAggPkG1(2, 0, hex"ffffffffffffffff");
        uint256 used = before - gasleft();
        assertEq(total, 64, "total");
        assertEq(hit, 64, "hit");
        assertEq(agg.X, _aggABC().X, "agg");
        assertLt(used, 400000, "gas for 64 rows");
    }

    function test_registerSigner_eventsAndAccess() public {
        (BN254.G1Point memory a1, BN254.G2Point memory a2) = _pkA();
        address d = address(0xD0D);
        BN254.G1Point memory none;
        vm.expectEmit();
        emit NewSigner(d, a1, a2);
        vm.expectEmit();
        emit SocketUpdated(d, "host:1");
        vm.prank(d);
        signers.registerSigner(_detail(d, "host:1", a1, a2), none);
        assertTrue(signers.isSigner(d), "registered");

        vm.prank(d);
        vm.expectRevert(_err("DevnetDASigners: signer exists"));
        signers.registerSigner(_detail(d, "host:1", a1, a2), none);

        address e = address(0xE0E);
        vm.prank(d);
        vm.expectRevert(_err("DevnetDASigners: sender is not the signer"));
        signers.registerSigner(_detail(e, "x", a1, a2), none);

        vm.expectRevert(_err("DevnetDASigners: pkG1 not on curve"));
        signers.registerSigner(_detail(e, "x", BN254.G1Point(1, 3), a2), none);

        vm.expectEmit();
        emit SocketUpdated(d, "host:2");
        vm.prank(d);
        signers.updateSocket("host:2");
        vm.expectEmit();
        emit SocketUpdated(d, "host:3");
        signers.updateSocket(d, "host:3");
        address[] memory who = new address[](1);
        who[0] = d;
        assertEq(keccak256(bytes(signers.getSigner(who)[0].socket)), keccak256("host:3"), "socket");
    }

    function test_adminAndEpochs() public {
        vm.expectRevert(_err("DevnetDASigners: already initialised"));
        signers.devnetInit(address(1));
        address[][] memory quorums = new address[][](1);
        quorums[0] = new address[](1);
        quorums[0][0] = B;
        vm.prank(A);
        vm.expectRevert(_err("DevnetDASigners: not admin"));
        signers.newEpoch(quorums);
        vm.prank(A);
        vm.expectRevert(_err("DevnetDASigners: not admin"));
        signers.enrol(A, 5);

        signers.enrol(A, 5);
        assertTrue(signers.registeredEpoch(A, 5), "enrolled");
        vm.prank(C);
        signers.registerNextEpoch(BN254.G1Point(0, 0));
        assertTrue(signers.registeredEpoch(C, 2), "C next epoch");

        quorums[0][0] = address(0xdead);
        vm.expectRevert(_err("DevnetDASigners: row signer not registered"));
        signers.newEpoch(quorums);
        quorums[0][0] = B;
        assertEq(signers.newEpoch(quorums), 2, "epoch 2");
        assertEq(signers.epochNumber(), 2, "epochNumber");
        assertEq(signers.quorumCount(2), 1, "one quorum");
        assertTrue(signers.registeredEpoch(B, 2), "B in epoch 2");
        assertFalse(signers.registeredEpoch(A, 2), "A not in epoch 2");
    }

    /// @dev A fresh copy of the runtime code is uninitialised: the first devnetInit caller picks the admin.
    function test_freshCodeHasNoAdmin() public {
        address other = address(0x2000);
        IEtchCheat(address(vm)).etch(other, address(new DevnetDASigners()).code);
        DevnetDASigners s = DevnetDASigners(other);
        assertEq(s.devnetAdmin(), address(0), "no admin");
        assertEq(s.epochNumber(), 0, "epoch 0");
        vm.prank(B);
        s.devnetInit(C);
        assertEq(s.devnetAdmin(), C, "admin");
    }

    // ----------------------------------------------------------------------------------------- entrance

    function test_submitOriginalData_roundRobin() public {
        bytes32[] memory roots = new bytes32[](2);
        (roots[0], roots[1]) = (bytes32(uint256(1)), bytes32(uint256(2)));
        vm.expectEmit();
        emit DataUpload(address(this), roots[0], 1, 1, 0);
        vm.expectEmit();
        emit DataUpload(address(this), roots[1], 1, 1, 0);
        entrance.submitOriginalData(roots);
        vm.expectEmit();
        emit DataUpload(address(this), roots[0], 1, 0, 0);
        entrance.submitOriginalData(roots);
        vm.recordLogs();
        entrance.submitOriginalData(roots);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "two logs");
        assertEq(logs[0].topics[0], DATA_UPLOAD_TOPIC, "topic");
        (, , , uint256 quorumId,) = abi.decode(logs[0].data, (address, bytes32, uint256, uint256, uint256));
        assertEq(quorumId, 1, "third call back to quorum 1");
    }

    function test_submitOriginalData_noQuorum() public {
        address[][] memory none = new address[][](0);
        signers.newEpoch(none);
        bytes32[] memory roots = new bytes32[](1);
        vm.expectRevert(_err("DevnetDAEntrance: No DA Signers"));
        entrance.submitOriginalData(roots);
    }

    function test_submitVerifiedCommitRoots_valid() public {
        assertFalse(entrance.commitmentExists(ROOT, 1, 0), "not yet");
        vm.expectEmit();
        emit ErasureCommitmentVerified(ROOT, 1, 0);
        uint256 before = gasleft();
        entrance.submitVerifiedCommitRoots(_one(_submissionAB()));
        uint256 used = before - gasleft();
        assertLt(used, 400000, "gas");
        assertTrue(entrance.commitmentExists(ROOT, 1, 0), "verified");
        assertFalse(entrance.commitmentExists(ROOT, 1, 1), "other quorum");
        assertFalse(entrance.commitmentExists(ROOT, 2, 0), "other epoch");
        BN254.G1Point memory c = entrance.verifiedErasureCommitment(ROOT, 1, 0);
        assertEq(c.X, _commitment().X, "commitment.X");
        assertEq(c.Y, _commitment().Y, "commitment.Y");
        // a second submission of the same blob is skipped, even with a bad signature
        IDAEntrance.CommitRootSubmission memory again = _submissionA();
        vm.recordLogs();
        entrance.submitVerifiedCommitRoots(_one(again));
        assertEq(vm.getRecordedLogs().length, 0, "skipped");
    }

    function test_submitVerifiedCommitRoots_tamperedSignature() public {
        IDAEntrance.CommitRootSubmission memory s = _submissionAB();
        s.signature = _submissionA().signature; // on the curve, wrong value
        vm.expectRevert(_err("DevnetDAEntrance: signature is invalid"));
        entrance.submitVerifiedCommitRoots(_one(s));

        s = _submissionAB();
        s.signature.Y = BN254.FP_MODULUS - s.signature.Y; // the negated signature
        vm.expectRevert(_err("DevnetDAEntrance: signature is invalid"));
        entrance.submitVerifiedCommitRoots(_one(s));

        s = _submissionAB();
        s.signature.Y += 1; // off the curve
        vm.expectRevert(_err("BN254: point not on curve"));
        entrance.submitVerifiedCommitRoots(_one(s));
        assertFalse(entrance.commitmentExists(ROOT, 1, 0), "nothing recorded");
    }

    function test_submitVerifiedCommitRoots_tamperedFields() public {
        IDAEntrance.CommitRootSubmission memory s = _submissionAB();
        s.dataRoot = bytes32(uint256(ROOT) ^ 1);
        vm.expectRevert(_err("DevnetDAEntrance: signature is invalid"));
        entrance.submitVerifiedCommitRoots(_one(s));

        s = _submissionAB();
        s.quorumBitmap = hex"0d"; // rows 0,2,3: aggPkG1 = A + C does not match aggPkG2 = A + B
        vm.expectRevert(_err("DevnetDAEntrance: signature is invalid"));
        entrance.submitVerifiedCommitRoots(_one(s));

        s = _submissionAB();
        (s.aggPkG2.X[0], s.aggPkG2.X[1]) = (s.aggPkG2.X[1], s.aggPkG2.X[0]); // chain order instead of EVM order
        (s.aggPkG2.Y[0], s.aggPkG2.Y[1]) = (s.aggPkG2.Y[1], s.aggPkG2.Y[0]);
        vm.expectRevert(_err("DevnetDAEntrance: pairing precompile call failed"));
        entrance.submitVerifiedCommitRoots(_one(s));

        s = _submissionAB();
        s.quorumBitmap = hex"0300";
        vm.expectRevert(_err("DevnetDASigners: quorum bitmap length mismatch"));
        entrance.submitVerifiedCommitRoots(_one(s));
    }

    function test_submitVerifiedCommitRoots_threshold() public {
        // A alone signs validly, but covers rows 0 and 2 only: 2 * 4 > 3 * 2.
        vm.expectRevert(_err("DevnetDAEntrance: insufficient signed slices"));
        entrance.submitVerifiedCommitRoots(_one(_submissionA()));
    }
}
