"""DA custody checks per second: ``python bench/da_rows.py``.

Times ``da.rows.verify_slice`` (the row check of the DA_SIGNER audit: decode, keccak Merkle path to the data
root, commitment comparison) on the devnet's default blob (16 rows of 256 bytes) and on blobs shaped like 0G's
production rows (about 32 KiB per row, 3072 rows: 12 proof levels), and the signature checks of
``alignment_node.da.bench`` per BN254 backend.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment_node.da import bench as sig_bench  # noqa: E402
from alignment_node.da import rows  # noqa: E402


def rate(blob: rows.Blob, seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = n % len(blob.slices)
        assert rows.verify_slice(blob.slices[i], i, blob.storage_root, blob.commitment) is None
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    small = rows.make_blob(b"bench-small")
    large = rows.make_blob(b"bench-large", rows=3072, row_bytes=32 * 1024)
    print(json.dumps({
        "rows_verified_per_s": {"16x256B": round(rate(small)), "3072x32KiB": round(rate(large))},
        "signatures": sig_bench.run(1.0),
    }, indent=2))


if __name__ == "__main__":
    main()
