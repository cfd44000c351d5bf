"""What an auditor reads of 0G's Flow contract: the ``Submit`` events, decoded and checked.

``Submit(address indexed sender, bytes32 indexed identity, uint256 submissionIndex, uint256 startPos,
uint256 length, (uint256 length, bytes tags, (bytes32 root, uint256 height)[] nodes) submission)``

The event's ``length`` counts flow entries (sectors of 256 bytes: the sum of 2**height over the nodes, as 0G's
Flow emits ``submission.size()``); the submission's ``length`` is the file's size in bytes.

A submission's data root is the right fold of its nodes (``merkle.fold_nodes``). A log that does not decode,
or whose nodes cannot be the submission nodes of its length (heights not those of the padded chunk count),
is rejected with ValueError: no auditor challenges a storage node on a file whose root it cannot trust.
``SubmissionIndex`` keeps the decoded submissions of one flow contract, following its logs in block ranges.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any

from eth_abi import decode

from ..chain.keccak import keccak256
from . import merkle

__all__ = ["SUBMIT_SIGNATURE", "SUBMIT_TOPIC", "SUBMIT_DATA_TYPES", "Submission", "decode_submit",
           "SubmissionIndex", "flow_identity", "parse_flow_identity"]

log = logging.getLogger("alignment_node.zgs")

SUBMIT_SIGNATURE = "Submit(address,bytes32,uint256,uint256,uint256,(uint256,bytes,(bytes32,uint256)[]))"
SUBMIT_TOPIC = "0x" + keccak256(SUBMIT_SIGNATURE.encode()).hex()
SUBMIT_DATA_TYPES = ("uint256", "uint256", "uint256", "(uint256,bytes,(bytes32,uint256)[])")
MAX_NODES = 64
LOG_RANGE = 2_000  # blocks per eth_getLogs


def flow_identity(chain_id: int, flow_address: str) -> bytes:
    """The registered identity of a ZGS_STORAGE target: abi.encode(uint256 chainId, address flow) (64 bytes)."""
    from eth_abi import encode

    return encode(["uint256", "address"], [chain_id, flow_address])


def parse_flow_identity(identity: bytes) -> tuple[int, str]:
    """(chain id, flow address as lower-case 0x hex) of a ZGS_STORAGE identity; ValueError if it is not one."""
    if len(identity) != 64 or any(identity[32:44]):
        raise ValueError("a ZGS_STORAGE identity is abi.encode(uint256 chainId, address flow): 64 bytes")
    return int.from_bytes(identity[:32], "big"), "0x" + identity[44:].hex()


@dataclass(frozen=True)
class Submission:
    index: int
    start_pos: int
    length: int
    nodes: tuple[tuple[bytes, int], ...]  # (root, height), highest first
    root: bytes  # the data root: the right fold of the nodes
    block: int
    sender: str
    identity: bytes

    @property
    def entries(self) -> int:
        """Flow entries (padded chunks) the submission occupies."""
        return sum(1 << h for _, h in self.nodes)

    @property
    def segments(self) -> int:
        """Segments that hold file data (the ones a storage node can be challenged on)."""
        return -(-merkle.num_chunks(self.length) // merkle.SEGMENT_CHUNKS)

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "startPos": self.start_pos, "length": self.length, "block": self.block,
                "root": "0x" + self.root.hex(),
                "nodes": [["0x" + r.hex(), h] for r, h in self.nodes]}


def _hex_int(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"not a hex quantity: {str(value)[:40]!r}")
    return int(value, 16)


def decode_submit(entry: dict[str, Any]) -> Submission:
    """A ``Submit`` log (as eth_getLogs returns it) as a Submission; ValueError if it is not a valid one."""
    try:
        topics = entry["topics"]
        if len(topics) != 3 or topics[0].lower() != SUBMIT_TOPIC:
            raise ValueError("not a Submit log")
        data = bytes.fromhex(entry["data"][2:])
        index, start, sectors, (length, _tags, nodes) = decode(list(SUBMIT_DATA_TYPES), data)
        block = _hex_int(entry["blockNumber"])
        sender = "0x" + topics[1][-40:].lower()
        identity = bytes.fromhex(topics[2][2:])
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"malformed Submit log: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # eth_abi's decoding errors
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"Submit log data does not decode: {exc}") from None
    if length < 1:
        raise ValueError(f"submission {index}: a file of {length} bytes")
    if not 0 < len(nodes) <= MAX_NODES:
        raise ValueError(f"submission {index}: {len(nodes)} nodes")
    heights = [h for _, h in nodes]
    if heights != merkle.submission_heights(length):
        raise ValueError(f"submission {index}: node heights {heights} are not those of {length} bytes "
                         f"({merkle.submission_heights(length)})")
    if sectors != merkle.padded_chunks(length):
        raise ValueError(f"submission {index}: the event's length {sectors} is not the {merkle.padded_chunks(length)} "
                         f"flow entries of {length} bytes")
    pairs = tuple((bytes(r), int(h)) for r, h in nodes)
    return Submission(index=index, start_pos=start, length=length, nodes=pairs,
                      root=merkle.fold_nodes([r for r, _ in pairs]), block=block, sender=sender,
                      identity=identity)


class SubmissionIndex:
    """The valid submissions of one flow contract, in order, read incrementally up to a block."""

    def __init__(self, flow_address: str, from_block: int = 0):
        self.flow = flow_address.lower()
        self.submissions: list[Submission] = []
        self.by_index: dict[int, Submission] = {}
        self.invalid: dict[int, str] = {}  # submission index (or -log position) -> why it was rejected
        self.next_block = from_block  # first block not read yet
        self._blocks: list[int] = []  # block of every Submit log read, valid or not, in order
        self._valid_blocks: list[int] = []  # block and index of each valid submission, in order
        self._valid_indexes: list[int] = []

    async def update(self, rpc, to_block: int) -> None:
        """Read Submit logs of blocks [next_block, to_block]."""
        while self.next_block <= to_block:
            end = min(to_block, self.next_block + LOG_RANGE - 1)
            logs = await rpc.get_logs(self.flow, [SUBMIT_TOPIC], self.next_block, end)
            if not isinstance(logs, list):
                raise ValueError("eth_getLogs did not answer a list")
            for entry in logs:
                try:
                    self._blocks.append(_hex_int(entry["blockNumber"]))
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"eth_getLogs answered a log without a block number: {str(entry)[:80]}") from None
                try:
                    s = decode_submit(entry)
                except ValueError as exc:
                    self.invalid[-len(self.invalid) - 1] = str(exc)
                    log.warning("flow %s: %s", self.flow, exc)
                    continue
                if s.index in self.by_index:
                    continue
                self.by_index[s.index] = s
                self.submissions.append(s)
                self._valid_blocks.append(s.block)
                self._valid_indexes.append(s.index)
            self.next_block = end + 1

    def count_until(self, block: int) -> int:
        """Submit logs (valid or not) in blocks <= ``block``: the ``nextTxSeq`` of a node synced to ``block``."""
        return bisect.bisect_right(self._blocks, block)

    def valid_until(self, block: int) -> list[Submission]:
        """The valid submissions made in blocks <= ``block``, in order."""
        return self.submissions[:bisect.bisect_right(self._valid_blocks, block)]

    def eligible(self, block: int, next_tx_seq: int) -> int:
        """How many of the first valid submissions were made in blocks <= ``block`` with an index below
        ``next_tx_seq``: the files a node synced to there can be asked for."""
        return min(bisect.bisect_right(self._valid_blocks, block), bisect.bisect_left(self._valid_indexes, next_tx_seq))
