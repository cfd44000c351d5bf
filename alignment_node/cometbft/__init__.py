"""CometBFT commit audits: vote sign bytes, strict RPC JSON parsers and commit verification.

Spec: ../shared/COMETBFT.md. Modules: ``types`` (times, block ids, votes, sign bytes, Ed25519),
``rpc`` (parsers of the ``result`` of /status, /validators, /commit, /block) and ``verify``
(CometBFT's VerifyCommit, VerifyCommitLight(AllSignatures), VerifyCommitLightTrusting, duplicate votes).
"""

from .types import (
    ZERO_BLOCK_ID,
    BlockID,
    CometError,
    Timestamp,
    Vote,
    address_of,
    format_time,
    parse_time,
    verify_signature,
    vote_extension_sign_bytes,
    vote_sign_bytes,
)

__all__ = [
    "ZERO_BLOCK_ID",
    "BlockID",
    "CometError",
    "Timestamp",
    "Vote",
    "address_of",
    "format_time",
    "parse_time",
    "verify_signature",
    "vote_extension_sign_bytes",
    "vote_sign_bytes",
]
