"""The chain reader of the DA_SIGNER audit: what 0G's DASigners precompile and a DAEntrance contract say about
one signer, as ``audits.da.DaChainFacts``.

Sources (docs/spec/DA.md): DASigners is the precompile at ``DA_SIGNERS_ADDRESS``; its views ``epochNumber``,
``isSigner``, ``registeredEpoch``, ``getSigner`` and ``getQuorum`` give registration, enrolment, socket, keys and
each quorum's rows (one signer address per encoded row). A DAEntrance emits ``ErasureCommitmentVerified(dataRoot,
epoch, quorumId)`` when a blob's aggregated signature passed; the event does not carry the quorum bitmap (which
signers were counted) nor the commitment, so the reader takes both from the input of the transaction that
emitted it: a ``submitVerifiedCommitRoots(CommitRootSubmission[])`` call, whose submission with the same
(dataRoot, epoch, quorumId) is the one verified. A verified blob whose transaction is not such a call (sent
through another contract) is kept out of the window and counted in ``undecodable``: the auditor never guesses
a bitmap.

``DaChainReader.refresh(entrance)`` scans the entrance's new events (from ``lookback_blocks`` before the head on
first use, then incrementally) and keeps the newest ``window_blobs`` verified blobs, each with its quorum's rows
per signer and the set of signers its bitmap counted (x/dasigners' aggregation rule, ``bls.aggregate_quorum``).
``facts(signer, entrance)`` then costs three ``eth_call``s per signer; quorums are read once per (epoch, quorum).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..audits.da import DaChainFacts
from ..chain.abi import AbiDecodeError, ContractAbi, decode_params
from ..chain.contracts import Contract
from ..chain.manifest import scan_logs
from ..chain.rpc import RpcClient
from . import bls
from .errors import DaError

__all__ = ["DA_SIGNERS_ADDRESS", "DA_SIGNERS_ABI", "DA_ENTRANCE_ABI", "DaChainReader", "VerifiedBlob"]

log = logging.getLogger("alignment_node.da.chain")

DA_SIGNERS_ADDRESS = "0x0000000000000000000000000000000000001000"


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[dict]) -> dict:
    return {"type": "function", "name": name, "stateMutability": "view",
            "inputs": [{"name": n, "type": t} for n, t in inputs], "outputs": outputs}


def _out(t: str) -> list[dict]:
    return [{"name": "", "type": t}]


_G1 = {"type": "tuple", "components": [{"name": "X", "type": "uint256"}, {"name": "Y", "type": "uint256"}]}
_G2 = {"type": "tuple", "components": [{"name": "X", "type": "uint256[2]"}, {"name": "Y", "type": "uint256[2]"}]}

#: The views of 0G's IDASigners (0g-chain precompiles/dasigners/IDASigners.abi) the reader calls.
DA_SIGNERS_ABI = [
    _fn("epochNumber", [], _out("uint256")),
    _fn("isSigner", [("_account", "address")], _out("bool")),
    _fn("registeredEpoch", [("_account", "address"), ("_epoch", "uint256")], _out("bool")),
    _fn("getQuorum", [("_epoch", "uint256"), ("_quorumId", "uint256")], _out("address[]")),
    _fn("getSigner", [("_account", "address[]")], [{"name": "", "type": "tuple[]", "components": [
        {"name": "signer", "type": "address"}, {"name": "socket", "type": "string"},
        dict(_G1, name="pkG1"), dict(_G2, name="pkG2")]}]),
]
#: The parts of 0G's IDAEntrance (0g-da-contract contracts/interface/IDAEntrance.sol) the reader decodes.
DA_ENTRANCE_ABI = [
    {"type": "event", "name": "ErasureCommitmentVerified", "anonymous": False, "inputs": [
        {"name": "dataRoot", "type": "bytes32", "indexed": False},
        {"name": "epoch", "type": "uint256", "indexed": False},
        {"name": "quorumId", "type": "uint256", "indexed": False}]},
    {"type": "function", "name": "submitVerifiedCommitRoots", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "_submissions", "type": "tuple[]", "components": [
         {"name": "dataRoot", "type": "bytes32"}, {"name": "epoch", "type": "uint256"},
         {"name": "quorumId", "type": "uint256"}, dict(_G1, name="erasureCommitment"),
         {"name": "quorumBitmap", "type": "bytes"}, dict(_G2, name="aggPkG2"), dict(_G1, name="signature")]}]},
]
_ENTRANCE = ContractAbi(DA_ENTRANCE_ABI, "IDAEntrance")
_VERIFIED = _ENTRANCE.event("ErasureCommitmentVerified")
_SUBMIT = _ENTRANCE.function("submitVerifiedCommitRoots")
MAX_QUORUMS_CACHED = 64


@dataclass(frozen=True)
class VerifiedBlob:
    """One verified blob of the window: its identity, commitment, block, and the signers its bitmap counted."""

    data_root: bytes
    epoch: int
    quorum: int
    commitment: bls.G1Point
    block: int
    counted: frozenset[str]  # lower-case 0x addresses


@dataclass
class _EntranceState:
    scanned_to: int = -1
    blobs: deque = field(default_factory=deque)
    undecodable: int = 0


class DaChainReader:
    """The DA chain facts of signers, read over one JSON-RPC client."""

    def __init__(self, rpc: RpcClient, window_blobs: int = 64, lookback_blocks: int = 20_000,
                 signers_address: str = DA_SIGNERS_ADDRESS):
        if window_blobs < 1 or lookback_blocks < 1:
            raise ValueError("window_blobs and lookback_blocks must be at least 1")
        self.rpc = rpc
        self.signers = Contract(rpc, signers_address, DA_SIGNERS_ABI, "DASigners")
        self.window_blobs, self.lookback_blocks = window_blobs, lookback_blocks
        self.da_epoch = 0
        self._entrances: dict[str, _EntranceState] = {}
        self._quorums: OrderedDict[tuple[int, int], dict[str, tuple[int, ...]]] = OrderedDict()
        self._quorum_rows: dict[tuple[int, int], list[bytes]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------------------------- the window

    async def refresh(self, entrances: list[str]) -> None:
        """Read the current DA epoch and each entrance's newly verified blobs."""
        async with self._lock:
            self.da_epoch = await self.signers.call("epochNumber")
            head = await self.rpc.block_number()
            for entrance in entrances:
                await self._scan(entrance.lower(), head)

    async def _scan(self, entrance: str, head: int) -> None:
        state = self._entrances.setdefault(entrance, _EntranceState(blobs=deque(maxlen=self.window_blobs)))
        start = state.scanned_to + 1 if state.scanned_to >= 0 else max(0, head - self.lookback_blocks)
        if start > head:
            return
        txs: dict[str, list[dict[str, Any]] | None] = {}
        async for logs in scan_logs(self.rpc, entrance, ["0x" + _VERIFIED.topic.hex()], start, head):
            for entry in logs:
                blob = await self._verified_blob(entry, txs)
                if blob is None:
                    state.undecodable += 1
                else:
                    state.blobs.append(blob)
        state.scanned_to = head

    async def _verified_blob(self, entry: dict[str, Any], txs: dict) -> VerifiedBlob | None:
        try:
            ev = _VERIFIED.decode_entry(entry)
        except (AbiDecodeError, ValueError, KeyError) as exc:
            log.warning("an ErasureCommitmentVerified log does not decode: %s", exc)
            return None
        root, epoch, quorum = ev["dataRoot"], ev["epoch"], ev["quorumId"]
        tx_hash = entry["transactionHash"]
        if tx_hash not in txs:
            txs[tx_hash] = await self._submissions(tx_hash)
        for s in txs[tx_hash] or []:
            if (s["dataRoot"], s["epoch"], s["quorumId"]) != (root, epoch, quorum):
                continue
            try:
                commitment = bls.check_g1((s["erasureCommitment"]["X"], s["erasureCommitment"]["Y"]),
                                          "erasureCommitment")
                rows = await self._rows(epoch, quorum)
                added = bls.aggregate_quorum(rows, s["quorumBitmap"]).signers
            except DaError as exc:
                log.warning("verified blob 0x%s (epoch %d, quorum %d): %s", root.hex(), epoch, quorum, exc)
                return None
            return VerifiedBlob(root, epoch, quorum, commitment, int(entry["blockNumber"], 16),
                                frozenset("0x" + a.hex() for a in added))
        log.warning("verified blob 0x%s: its transaction %s is not a submitVerifiedCommitRoots call naming it "
                    "(the bitmap cannot be read); left out", root.hex(), tx_hash)
        return None

    async def _submissions(self, tx_hash: str) -> list[dict[str, Any]] | None:
        tx = await self.rpc.get_transaction(tx_hash)
        data = bytes.fromhex((tx or {}).get("input", "0x")[2:])
        if data[:4] != _SUBMIT.selector:
            return None
        try:
            return decode_params(_SUBMIT.inputs, data[4:], _SUBMIT.signature, named=True)[0]
        except AbiDecodeError:
            return None

    async def _rows(self, epoch: int, quorum: int) -> list[bytes]:
        """getQuorum(epoch, quorum) as 20-byte addresses (cached; a quorum never changes once its epoch opened)."""
        key = (epoch, quorum)
        if key not in self._quorum_rows:
            rows = [bytes.fromhex(a[2:]) for a in await self.signers.call("getQuorum", epoch, quorum)]
            by_signer: dict[str, list[int]] = {}
            for i, a in enumerate(rows):
                by_signer.setdefault("0x" + a.hex(), []).append(i)
            self._quorum_rows[key] = rows
            self._quorums[key] = {s: tuple(r) for s, r in by_signer.items()}
            while len(self._quorums) > MAX_QUORUMS_CACHED:
                old, _ = self._quorums.popitem(last=False)
                self._quorum_rows.pop(old, None)
        self._quorums.move_to_end(key)
        return self._quorum_rows[key]

    def window(self, entrance: str) -> list[VerifiedBlob]:
        state = self._entrances.get(entrance.lower())
        return list(state.blobs) if state else []

    def undecodable(self, entrance: str) -> int:
        state = self._entrances.get(entrance.lower())
        return state.undecodable if state else 0

    # --------------------------------------------------------------------------------- one signer

    async def facts(self, signer: str, entrance: str) -> DaChainFacts:
        """The chain facts of ``signer`` against ``entrance``'s window (``refresh`` first)."""
        signer = signer.lower()
        da_epoch = self.da_epoch
        if not await self.signers.call("isSigner", signer):
            return DaChainFacts(da_epoch=da_epoch, registered=False, enrolled=False)
        enrolled, [detail] = await asyncio.gather(self.signers.call("registeredEpoch", signer, da_epoch),
                                                  self.signers.call("getSigner", [signer], named=True))
        x, y = detail["pkG2"]["X"], detail["pkG2"]["Y"]
        blobs = []
        for b in self.window(entrance):
            rows = (await self._quorum_of(b.epoch, b.quorum)).get(signer, ())
            if rows:
                blobs.append({"data_root": "0x" + b.data_root.hex(), "epoch": b.epoch, "quorum": b.quorum,
                              "commitment": [hex(b.commitment[0]), hex(b.commitment[1])], "rows": list(rows),
                              "counted": signer in b.counted})
        return DaChainFacts(
            da_epoch=da_epoch, registered=True, enrolled=bool(enrolled), socket=detail["socket"],
            pk_g1=[hex(detail["pkG1"]["X"]), hex(detail["pkG1"]["Y"])],
            pk_g2=[[hex(v) for v in x], [hex(v) for v in y]], blobs=blobs)

    async def _quorum_of(self, epoch: int, quorum: int) -> dict[str, tuple[int, ...]]:
        if (epoch, quorum) not in self._quorums:
            await self._rows(epoch, quorum)
        return self._quorums[(epoch, quorum)]
