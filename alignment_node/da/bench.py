"""Micro-benchmark of DA signature verification per BN254 backend: ``python -m alignment_node.da.bench``.

Times, per available backend, a full check of one BatchSign signature (arkworks decode, commit-root
digest, hash-to-G1, e(H, pk) * e(-sig, G2) == 1), the G2 subgroup check a pkG2 decode runs, and the
x/dasigners registration check (two scalar multiplications and one 2-pairing check).
"""

from __future__ import annotations

import argparse
import json
import time

from . import bls


def _rate(fn, min_seconds: float, max_iters: int) -> float:
    n, start = 0, time.perf_counter()
    while n < max_iters and (n == 0 or time.perf_counter() - start < min_seconds):
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def run(min_seconds: float = 1.0) -> dict:
    results = {}
    sk = 0x1F2E3D4C5B6A79880123456789ABCDEF
    root, commitment = bytes(range(32)), (1, 2)
    for name in bls.available_backends():
        b = bls.get_backend(name)
        pk1, pk2 = bls.keypair(sk, b)
        h = bls.commit_root_hash(root, 7, 0, commitment)
        raw = bls.encode_g1_ark(bls.sign(sk, h, b))
        reg_h = bls.pubkey_registration_hash(bytes(20), 16600)
        reg_sig = bls.sign(sk, reg_h, b)
        cap = 3 if name == "py_ecc" else 100000

        def verify_full():
            sig = bls.decode_g1_ark(raw)
            assert bls.verify_signature(sig, bls.commit_root_hash(root, 7, 0, commitment), pk2, b)

        results[name] = {
            "verify_signature_per_s": round(_rate(verify_full, min_seconds, cap), 1),
            "g2_subgroup_check_per_s": round(_rate(lambda: b.g2_in_subgroup(pk2), min_seconds, 50 if name == "py_ecc" else 100000), 1),
            "verify_registration_per_s": round(_rate(lambda: bls.verify_registration(reg_h, reg_sig, pk1, pk2, b), min_seconds, cap), 1),
        }
    results["hash_to_g1_per_s"] = round(_rate(lambda: bls.hash_to_g1(bls.commit_root_digest(root, 7, 0, commitment)), min_seconds, 10 ** 6), 1)
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement")
    print(json.dumps(run(ap.parse_args(argv).seconds), indent=2))


if __name__ == "__main__":
    main()
