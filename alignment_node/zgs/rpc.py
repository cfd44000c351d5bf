"""0G Storage node JSON-RPC (docs/spec/ZGS.md), strictly parsed: the result shapes the storage audit reads.

A storage node's answers are evidence. Each ``parse_*`` function takes a JSON-RPC ``result`` and returns what
an audit keeps of it, or raises ValueError naming the first field that is missing or mistyped (numbers must
be JSON integers in uint64, not strings or floats; hashes ``0x`` + 64 hex digits; booleans true/false); used as
the ``extract`` of ``audits.http.Session.call``, such an answer becomes a ``malformed`` observation, never a
crash. Segment data is decoded (strict base64, at most 256 KiB) and reduced to its size, SHA-256 and segment
root as it is parsed, so nothing keeps the bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from . import merkle

__all__ = ["parse_status", "parse_shard_config", "parse_file_info", "segment_extractor", "MAX_UINT64"]

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


def _hex(value: Any, what: str, length: int, kind: str) -> str:
    """``value`` lower-cased if it is a ``0x`` string of ``length`` characters of hex, else ValueError."""
    if not isinstance(value, str) or len(value) != length or value[:2] != "0x":
        raise ValueError(f"{what} is {str(value)[:80]!r}, not {kind}")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{what} is {value!r}, not {kind}") from None
    return value.lower()


def _hash(value: Any, what: str) -> str:
    return _hex(value, what, 66, "0x + 64 hex digits")


def _address(value: Any, what: str) -> str:
    return _hex(value, what, 42, "an address")


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
