"""CometBFT commit audits on one core: Ed25519 signatures per second and heights audited per second.

    .venv/bin/python bench/cometbft_verify.py [--quick] [--validators 100] [--heights 200] [--seconds 2]

Pins this process to CPU 0 and measures:

(a) Ed25519 commit signatures verified per second, single thread: PyNaCl's own ``VerifyKey.verify`` (the
    anchor), ``verify_signature`` on prepared sign bytes (raw), and ``check_signatures`` on parsed commits
    (sign bytes built per signature, address checks included);
(b) heights audited per second for a ``--validators`` set: the /validators result and one /commit result
    per height are JSON text as a CometBFT node prints it (signed with deterministic test keys); per height
    the audit runs ``json.loads`` + ``result_of`` + ``parse_commit`` + ``verify_commit(mode="full")``, with
    the validators parsed once. Also shown: the same without the signature checks (parse cost alone).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey, VerifyKey  # noqa: E402

from alignment_node.cometbft import (  # noqa: E402
    BlockID,
    Timestamp,
    address_of,
    check_signatures,
    commit_sign_bytes,
    format_time,
    parse_commit,
    parse_validators,
    result_of,
    verify_commit,
    verify_signature,
    vote_sign_bytes,
)

CHAIN_ID = "alignment-bench-chain-1"
FIRST_HEIGHT = 1_000_000


def envelope(result: dict) -> str:
    """A JSON-RPC response as the node's HTTP handler writes it (two-space indent)."""
    return json.dumps({"jsonrpc": "2.0", "id": -1, "result": result}, indent=2)


def block_id_json(block_id: BlockID) -> dict:
    return {"hash": block_id.hash.hex().upper(),
            "parts": {"total": block_id.parts_total, "hash": block_id.parts_hash.hex().upper()}}


def make_chain(n_validators: int, n_heights: int) -> tuple[str, list[tuple[int, BlockID, str]]]:
    """(/validators text, [(height, block id, /commit text)]) for a chain with deterministic keys."""
    keys = [SigningKey(hashlib.sha256(f"bench-validator-{i}".encode()).digest()) for i in range(n_validators)]
    entries = sorted(
        ((1000 + 7 * i, address_of(bytes(k.verify_key)), k) for i, k in enumerate(keys)),
        key=lambda e: (-e[0], e[1]),
    )
    validators = envelope({
        "block_height": str(FIRST_HEIGHT),
        "validators": [
            {"address": addr.hex().upper(),
             "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(bytes(k.verify_key)).decode()},
             "voting_power": str(power), "proposer_priority": str(power - 1300)}
            for power, addr, k in entries
        ],
        "count": str(n_validators),
        "total": str(n_validators),
    })
    heights = []
    for h in range(FIRST_HEIGHT, FIRST_HEIGHT + n_heights):
        digest = hashlib.sha256(h.to_bytes(8, "big")).digest()
        block_id = BlockID(digest, 1, hashlib.sha256(digest).digest())
        base = 1_717_243_200 + 6 * (h - FIRST_HEIGHT)
        sigs = []
        for i, (_, addr, key) in enumerate(entries):
            ts = Timestamp(base + 1, (i * 7_654_321 + h) % 1_000_000_000)
            sig = key.sign(vote_sign_bytes(2, h, 0, block_id, ts, CHAIN_ID)).signature
            sigs.append({"block_id_flag": 2, "validator_address": addr.hex().upper(),
                         "timestamp": format_time(ts), "signature": base64.b64encode(sig).decode()})
        header = {
            "version": {"block": "11", "app": "1"}, "chain_id": CHAIN_ID, "height": str(h),
            "time": format_time(Timestamp(base, 500_000_000)),
            "last_block_id": block_id_json(BlockID(b"\x01" * 32, 1, b"\x02" * 32)),
            "last_commit_hash": "AB" * 32, "data_hash": "CD" * 32, "validators_hash": "EF" * 32,
            "next_validators_hash": "EF" * 32, "consensus_hash": "01" * 32, "app_hash": "23" * 32,
            "last_results_hash": "", "evidence_hash": "", "proposer_address": entries[0][1].hex().upper(),
        }
        commit = {"height": str(h), "round": 0, "block_id": block_id_json(block_id), "signatures": sigs}
        heights.append((h, block_id, envelope({"signed_header": {"header": header, "commit": commit},
                                               "canonical": True})))
    return validators, heights


def per_second(items: list, fn, units_per_item: int, seconds: float) -> float:
    """Units per second of ``fn(item)``, from the median time of one call over repeated passes on ``items``.

    The median keeps a burst of another job on the same core from skewing the number.
    """
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or not times:
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - start)
    return units_per_item / statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few heights and short runs (a smoke test)")
    p.add_argument("--validators", type=int, default=100)
    p.add_argument("--heights", type=int, default=100)
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    args = p.parse_args()
    if args.quick:
        args.heights, args.seconds = min(args.heights, 10), min(args.seconds, 0.5)

    os.sched_setaffinity(0, {0})
    print(f"pinned to CPU 0; python {sys.version.split()[0]}; {args.validators} validators, "
          f"{args.heights} heights, chain id {CHAIN_ID!r}")
    start = time.perf_counter()
    validators_text, heights = make_chain(args.validators, args.heights)
    print(f"built and signed {args.heights * args.validators:,} votes in {time.perf_counter() - start:.1f} s; "
          f"one /commit response: {len(heights[0][2]):,} bytes")

    validators = parse_validators(result_of(json.loads(validators_text))).validators
    commits = [(h, bid, parse_commit(result_of(json.loads(text))).commit) for h, bid, text in heights]
    n_sigs = args.heights * args.validators

    # (a) signatures per second
    prepared = [
        (v.pub_key, commit_sign_bytes(c, i, CHAIN_ID), s.signature)
        for _, _, c in commits for i, (v, s) in enumerate(zip(validators, c.signatures))
    ]
    assert all(verify_signature(*t) for t in prepared[: args.validators])
    verify_keys = {pub: VerifyKey(pub) for pub, _, _ in prepared}
    per_commit = [prepared[i:i + args.validators] for i in range(0, n_sigs, args.validators)]

    def nacl_commit(triples):
        for pub, msg, sig in triples:
            verify_keys[pub].verify(msg, sig)

    def raw_commit(triples):
        for t in triples:
            verify_signature(*t)

    nacl_rate = per_second(per_commit, nacl_commit, args.validators, args.seconds)
    raw_rate = per_second(per_commit, raw_commit, args.validators, args.seconds)
    check_rate = per_second(
        commits, lambda hc: check_signatures(CHAIN_ID, validators, hc[2]), args.validators, args.seconds
    )
    print(f"ed25519 verify (PyNaCl VerifyKey.verify): {nacl_rate:,.0f} sig/s")
    print(f"ed25519 verify (verify_signature, prepared sign bytes): {raw_rate:,.0f} sig/s "
          f"({raw_rate / nacl_rate:.0%} of PyNaCl)")
    print(f"commit signatures through check_signatures: {check_rate:,.0f} sig/s ({check_rate / nacl_rate:.0%} of PyNaCl)")

    # (b) heights audited per second
    def audit(verify: bool):
        def run(height):
            h, bid, text = height
            commit = parse_commit(result_of(json.loads(text))).commit
            if verify:
                result = verify_commit(CHAIN_ID, validators, bid, h, commit, "full")
                if not result.ok:
                    raise SystemExit(f"height {h}: {result.reason}")
        return run

    parse_rate = per_second(heights, audit(False), 1, args.seconds)
    audit_rate = per_second(heights, audit(True), 1, args.seconds)
    floor = nacl_rate / args.validators
    print(f"parse only (json.loads + parse_commit), {args.validators} validators: {parse_rate:,.0f} heights/s "
          f"({1e3 / parse_rate:.2f} ms/height)")
    print(f"heights audited, {args.validators} validators, full verification: {audit_rate:,.0f} heights/s "
          f"({1e3 / audit_rate:.2f} ms/height; {args.validators} bare PyNaCl verifies alone: {floor:,.0f} heights/s, "
          f"so {audit_rate / floor:.0%} of that bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
