"""0G Storage node JSON-RPC (docs/spec/ZGS.md), strictly parsed: every method's result shape, and a small client.

A storage node's answers are evidence. Each ``parse_*`` function takes a JSON-RPC ``result`` and returns what
an audit keeps of it, or raises ValueError naming the first field that is missing or mistyped (numbers must
be JSON integers in uint64, not strings or floats; hashes ``0x`` + 64 hex digits; booleans true/false); used as
the ``extract`` of ``audits.http.Session.call``, such an answer becomes a ``malformed`` observation, never a
crash. Segment data is decoded (strict base64, at most 256 KiB) and reduced to its size, SHA-256 and segment
root as it is parsed, so nothing keeps the bytes.

``ZgsClient(session)`` calls each method of docs/spec/ZGS.md with its parser and returns the observation.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from . import merkle

__all__ = ["parse_status", "parse_shard_config", "parse_file_info", "parse_finalized", "parse_flow_context",
           "parse_segment", "segment_extractor", "ZgsClient", "MAX_UINT64"]

MAX_UINT64 = (1 << 64) - 1



def _int(value: Any, what: str) -> int:
    """A JSON integer (not a string, float or bool) in uint64."""
    if type(value) is not int or not 0 <= value <= MAX_UINT64:
        raise ValueError(f"{what} is {str(value)[:40]!r}, not a JSON integer in uint64")
    return value


def _bool(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{what} is {str(value)[:40]!r}, not true/false")
    return value


def _hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 66 or value[:2] != "0x":
        raise ValueError(f"{what} is {str(value)[:80]!r}, not 0x + 64 hex digits")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{what} is {value!r}, not 0x + 64 hex digits") from None
    return value.lower()


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or value[:2] != "0x":
        raise ValueError(f"{what} is {str(value)[:80]!r}, not an address")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{what} is {value!r}, not an address") from None
    return value.lower()


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is {type(value).__name__}, not an object")
    return value


def parse_status(r: Any) -> dict[str, Any]:
    """What the audit keeps of ``zgs_getStatus``."""
    r = _object(r, "status")
    ident = _object(r.get("networkIdentity"), "networkIdentity")
    return {"logSyncHeight": _int(r.get("logSyncHeight"), "logSyncHeight"),
            "logSyncBlock": _hash(r.get("logSyncBlock"), "logSyncBlock"),
            "nextTxSeq": _int(r.get("nextTxSeq"), "nextTxSeq"),
            "connectedPeers": _int(r.get("connectedPeers"), "connectedPeers"),
            "chainId": _int(ident.get("chainId"), "networkIdentity.chainId"),
            "flowAddress": _address(ident.get("flowAddress"), "networkIdentity.flowAddress")}


def parse_shard_config(r: Any) -> dict[str, int]:
    r = _object(r, "shard config")
    shard, num = _int(r.get("shardId"), "shardId"), _int(r.get("numShard"), "numShard")
    if num < 1 or num & (num - 1) or shard >= num:
        raise ValueError(f"shard {shard} of {num}: numShard must be a power of two above shardId")
    return {"shardId": shard, "numShard": num}


def parse_file_info(r: Any) -> dict[str, Any] | None:
    """What the audit keeps of ``zgs_getFileInfoByTxSeq`` (null: the node does not know the transaction)."""
    if r is None:
        return None
    r = _object(r, "file info")
    tx = _object(r.get("tx"), "tx")
    nodes = tx.get("merkleNodes")
    if not isinstance(nodes, list) or len(nodes) > merkle.MAX_PROOF_DEPTH:
        raise ValueError("tx.merkleNodes is not a list of at most 64 [height, root] pairs")
    for pair in nodes:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("a tx.merkleNodes entry is not a [height, root] pair")
        _int(pair[0], "merkleNodes height")
        _hash(pair[1], "merkleNodes root")
    return {"seq": _int(tx.get("seq"), "tx.seq"),
            "startEntryIndex": _int(tx.get("startEntryIndex"), "tx.startEntryIndex"),
            "size": _int(tx.get("size"), "tx.size"),
            "dataMerkleRoot": _hash(tx.get("dataMerkleRoot"), "tx.dataMerkleRoot"),
            "finalized": _bool(r.get("finalized"), "finalized"),
            "pruned": _bool(r.get("pruned"), "pruned"),
            "isCached": _bool(r.get("isCached"), "isCached"),
            "uploadedSegNum": _int(r.get("uploadedSegNum"), "uploadedSegNum")}


def segment_extractor(size: int, index: int) -> Callable[[Any], dict[str, Any] | None]:
    """The extract function of ``zgs_downloadSegmentWithProof`` for segment ``index`` of a file of ``size``
    bytes: decodes and hashes the data (never keeping it), keeps the proof."""
    leaf_count = merkle.segment_leaf_count(size, index)

    def extract(r: Any) -> dict[str, Any] | None:
        if r is None:
            return None
        r = _object(r, "segment")
        data = merkle.decode_base64(r.get("data"), merkle.SEGMENT)
        if len(data) > merkle.SEGMENT:
            raise ValueError(f"segment data of {len(data)} bytes, longer than {merkle.SEGMENT}")
        proof = _object(r.get("proof"), "proof")
        lemma, path = proof.get("lemma"), proof.get("path")
        if not isinstance(lemma, list) or not isinstance(path, list):
            raise ValueError("proof.lemma and proof.path must be lists")
        if len(path) > merkle.MAX_PROOF_DEPTH or len(lemma) > merkle.MAX_PROOF_DEPTH + 2:
            raise ValueError(f"proof of {len(path)} levels and {len(lemma)} lemma hashes "
                             f"(at most {merkle.MAX_PROOF_DEPTH} levels)")
        kept = {"root": _hash(r.get("root"), "root"), "index": _int(r.get("index"), "index"),
                "fileSize": _int(r.get("fileSize"), "fileSize"),
                "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "proof": {"lemma": [_hash(h, "lemma entry") for h in lemma],
                          "path": [_bool(b, "path entry") for b in path]}}
        fits = -(-len(data) // merkle.CHUNK) <= leaf_count
        kept["segment_root"] = "0x" + merkle.segment_root(data, leaf_count).hex() if fits and data else None
        return kept

    return extract


def parse_finalized(r: Any) -> bool | None:
    """``zgs_checkFileFinalized``: true, false, or null (unknown file)."""
    return None if r is None else _bool(r, "finalized")


def parse_flow_context(r: Any) -> dict[str, Any]:
    """``zgs_getFlowContext``: [flowRoot, flowLength]."""
    if not isinstance(r, list) or len(r) != 2:
        raise ValueError("flow context is not [flowRoot, flowLength]")
    return {"flowRoot": _hash(r[0], "flowRoot"), "flowLength": _int(r[1], "flowLength")}


def parse_segment(r: Any) -> dict[str, Any] | None:
    """``zgs_downloadSegment``: base64 bytes (at most one segment) or null, kept as size and SHA-256."""
    if r is None:
        return None
    data = merkle.decode_base64(r, merkle.SEGMENT)
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class ZgsClient:
    """The methods of docs/spec/ZGS.md over one ``audits.http.Session``; each returns the call's observation."""

    def __init__(self, session, deadline_at: float | None = None):
        self.session = session
        self.deadline_at = deadline_at

    async def _call(self, method: str, params: list, extract: Callable[[Any], Any]) -> dict[str, Any]:
        return await self.session.call(method, params, extract, self.deadline_at)

    async def get_status(self) -> dict[str, Any]:
        return await self._call("zgs_getStatus", [], parse_status)

    async def get_shard_config(self) -> dict[str, Any]:
        return await self._call("zgs_getShardConfig", [], parse_shard_config)

    async def get_file_info(self, root: str, need_available: bool = False) -> dict[str, Any]:
        return await self._call("zgs_getFileInfo", [root, need_available], parse_file_info)

    async def get_file_info_by_tx_seq(self, seq: int) -> dict[str, Any]:
        return await self._call("zgs_getFileInfoByTxSeq", [seq], parse_file_info)

    async def check_file_finalized(self, seq_or_root: int | str) -> dict[str, Any]:
        return await self._call("zgs_checkFileFinalized", [seq_or_root], parse_finalized)

    async def download_segment(self, root: str, start_chunk: int, end_chunk: int) -> dict[str, Any]:
        if not 0 < end_chunk - start_chunk <= merkle.SEGMENT_CHUNKS:
            raise ValueError("a download spans 1 to 1024 chunks")
        return await self._call("zgs_downloadSegment", [root, start_chunk, end_chunk], parse_segment)

    async def download_segment_with_proof(self, root: str, index: int, file_size: int) -> dict[str, Any]:
        return await self._call("zgs_downloadSegmentWithProof", [root, index], segment_extractor(file_size, index))

    async def get_flow_context(self) -> dict[str, Any]:
        return await self._call("zgs_getFlowContext", [], parse_flow_context)
