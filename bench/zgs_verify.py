"""0G Storage segment proofs on one core: verified segments per second, against raw keccak throughput.

    .venv/bin/python bench/zgs_verify.py [--seconds 2] [--segments 64]

Pins this process to CPU 0 and measures, each for ``--seconds``:

(a) raw keccak256 throughput: one 256 KiB buffer hashed again and again (the physical limit of the hash here);
(b) leaf hashing: ``merkle.chunk_leaves`` over distinct 256 KiB segments (1,024 hashes of 256 bytes each), in
    MB/s and as a fraction of (a);
(c) full segment verification as an audit does it on a ``zgs_downloadSegmentWithProof`` answer: decode the
    base64 data (``decode_base64``), rebuild the segment root (``segment_root`` with the segment's leaf count),
    parse the proof's hex hashes and walk it to the data root of a file of ``--segments`` segments with the
    position check (``verify_proof``). Target: >= 300 segments per second;
(d) the streaming data root of a file (``file_root``, what ``alignment-node zgs root`` runs), in MB/s.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sha3  # noqa: E402

from alignment_node.zgs import merkle  # noqa: E402

TARGET = 300  # segments per second per core
MB = 1e6


def rate(fn, seconds: float) -> tuple[int, float]:
    """(calls, elapsed seconds) of calling ``fn`` repeatedly for about ``seconds``."""
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    p.add_argument("--segments", type=int, default=64, help="segments of the file whose proofs are walked")
    args = p.parse_args()

    os.sched_setaffinity(0, {0})
    print(f"pinned to CPU 0; python {sys.version.split()[0]}; segment = {merkle.SEGMENT // 1024} KiB")

    # (a) raw keccak
    buf = random.Random(1).randbytes(merkle.SEGMENT)
    calls, took = rate(lambda: sha3.keccak_256(buf).digest(), args.seconds)
    raw = calls * merkle.SEGMENT / took / MB
    print(f"(a) raw keccak256: {raw:.1f} MB/s (one 256 KiB buffer hashed {calls} times)")

    # the file: --segments full segments of random bytes, served as a storage node would
    size = args.segments * merkle.SEGMENT
    data = random.Random(2).randbytes(size)
    segments = [data[i * merkle.SEGMENT:(i + 1) * merkle.SEGMENT] for i in range(args.segments)]

    # (b) leaf hashing
    it = iter(range(10**12))
    calls, took = rate(lambda: merkle.chunk_leaves(segments[next(it) % len(segments)]), args.seconds)
    leaves = calls * merkle.SEGMENT / took / MB
    print(f"(b) leaf hashing (chunk_leaves on 256 KiB segments): {leaves:.1f} MB/s = {leaves / raw:.2f} of raw keccak")

    # (c) full segment verification
    roots = merkle.file_segment_roots(io.BytesIO(data), size)
    tree = merkle.SegmentTree(roots)
    root = tree.root
    served = [{"data": base64.b64encode(seg).decode(), "proof": tree.proof(i).as_json()}
              for i, seg in enumerate(segments)]
    n = merkle.num_segments(size)
    steps = {"decode": 0.0, "root": 0.0, "proof": 0.0}

    def verify(i: int) -> None:
        answer = served[i]
        t0 = time.perf_counter()
        seg = merkle.decode_base64(answer["data"], merkle.SEGMENT)
        t1 = time.perf_counter()
        leaf = merkle.segment_root(seg, merkle.segment_leaf_count(size, i))
        t2 = time.perf_counter()
        proof = merkle.Proof(tuple(bytes.fromhex(x[2:]) for x in answer["proof"]["lemma"]),
                             tuple(answer["proof"]["path"]))
        merkle.verify_proof(proof, leaf, root, i, n)
        t3 = time.perf_counter()
        steps["decode"] += t1 - t0
        steps["root"] += t2 - t1
        steps["proof"] += t3 - t2

    it = iter(range(10**12))
    calls, took = rate(lambda: verify(next(it) % n), args.seconds)
    per_s = calls / took
    verdict = "meets the target" if per_s >= TARGET else "BELOW the target"
    print(f"(c) segment verification: {per_s:.0f} segments/s = {per_s * merkle.SEGMENT / MB:.1f} MB/s "
          f"(target >= {TARGET}: {verdict}); per segment: decode {steps['decode'] / calls * 1e3:.2f} ms, "
          f"segment root {steps['root'] / calls * 1e3:.2f} ms, proof {steps['proof'] / calls * 1e3:.3f} ms "
          f"({len(served[0]['proof']['path'])} levels)")

    # (d) streaming file root
    calls, took = rate(lambda: merkle.file_root(io.BytesIO(data), size), args.seconds)
    print(f"(d) file root (streaming, `zgs root`): {calls * size / took / MB:.1f} MB/s "
          f"({size // (1 << 20)} MiB file, {calls} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
