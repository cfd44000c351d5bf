"""``alignment-node model ...``: make a MODEL target's baseline bundle.

    alignment-node model baseline --out DIR [--seed 0] [--samples-per-probe 200] [--no-embeddings] [--json]

Builds the bundle from the local copy of the devnet model (trained once and cached) and the MiniLM embedding
model, writes ``DIR/<hash>.json`` and prints the hash: the identity to register on chain for the target.
"""

from __future__ import annotations

import json
import sys

__all__ = ["add_model_args"]


def cmd_model(args) -> int:
    from ..errors import CliError
    from . import baseline as B

    if args.model_cmd != "baseline":  # pragma: no cover - argparse requires a subcommand
        raise CliError("unknown model command")
    if args.samples_per_probe < 20:
        raise CliError("--samples-per-probe must be at least 20")
    bundle = B.make_baseline(seed=args.seed, samples_per_probe=args.samples_per_probe,
                             embeddings=not args.no_embeddings,
                             log=None if args.json else (lambda m: print(m, file=sys.stderr)))
    h, path = B.save(bundle, args.out)
    if args.json:
        print(json.dumps({"hash": h, "path": str(path), "weights_sha256": bundle["model"]["weights_sha256"],
                          "probes": len(bundle["probes"]), "bytes": path.stat().st_size}, sort_keys=True))
    else:
        print(h)
    return 0


def add_model_args(sub) -> None:
    model = sub.add_parser("model", help="MODEL targets: baseline bundles")
    ms = model.add_subparsers(dest="model_cmd", required=True)
    b = ms.add_parser("baseline", help="make a baseline bundle from the local model; print its hash")
    b.add_argument("--out", required=True, help="directory to write <hash>.json into")
    b.add_argument("--seed", type=int, default=0, help="the devnet model's training seed (default 0)")
    b.add_argument("--samples-per-probe", type=int, default=200, help="reference samples per probe prompt")
    b.add_argument("--no-embeddings", action="store_true", help="leave out the embedding section")
    b.add_argument("--json", action="store_true", help="print JSON")
    model.set_defaults(func=cmd_model)
