#!/usr/bin/env python3
"""Export the deployable contracts' forge artifacts to alignment_node/chain/artifacts/<Name>.json.

Each output holds only {"contractName", "abi", "bytecode", "deployedBytecode"}, written with sorted keys
and fixed formatting so a re-export of the same build is byte-identical. The outputs are committed:
the Python side needs neither Node nor forge at run time.

    cd contracts && node_modules/.bin/forge build      # writes contracts/out
    python scripts/export_artifacts.py                 # reads contracts/out
    python scripts/export_artifacts.py --check         # exit 1 if the committed files differ
    python scripts/export_artifacts.py --build         # run forge build first
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "contracts"
DEFAULT_FORGE_OUT = CONTRACTS / "out"
DEFAULT_DEST = REPO / "alignment_node" / "chain" / "artifacts"

# Same set as alignment_node.chain.artifacts.DEPLOYABLE (kept here so the script needs no install).
CONTRACT_NAMES = (
    "AlignmentLicense",
    "NodeSale",
    "OperatorRegistry",
    "TargetRegistry",
    "AuditProtocol",
    "RefereeCourt",
    "RewardVault",
    "StakingVault",
    "AlignmentGovernor",
    "Timelock",
    "RewardToken",
    "DevnetFlow",
    "DevnetDASigners",
    "DevnetDAEntrance",
)


class ExportError(RuntimeError):
    pass


def _bytecode(entry: object, where: str) -> str:
    obj = entry.get("object") if isinstance(entry, dict) else entry
    if not isinstance(obj, str) or not obj:
        raise ExportError(f"{where}: missing bytecode object")
    body = obj[2:] if obj.startswith("0x") else obj
    if "__$" in body:
        raise ExportError(f"{where}: needs library linking, which the deployer does not do")
    if not body:
        raise ExportError(f"{where}: empty bytecode (abstract contract or interface?)")
    bytes.fromhex(body)  # validate
    return "0x" + body.lower()


def render(name: str, forge_out: Path) -> str:
    """The exported JSON text of contract `name` from forge's output directory."""
    src = forge_out / f"{name}.sol" / f"{name}.json"
    try:
        data = json.loads(src.read_text())
    except FileNotFoundError:
        raise ExportError(f"{src} not found: run `node_modules/.bin/forge build` in contracts/ first") from None
    abi = data.get("abi")
    if not isinstance(abi, list):
        raise ExportError(f"{src}: no abi")
    out = {
        "contractName": name,
        "abi": abi,
        "bytecode": _bytecode(data.get("bytecode"), f"{src} bytecode"),
        "deployedBytecode": _bytecode(data.get("deployedBytecode"), f"{src} deployedBytecode"),
    }
    return json.dumps(out, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def export_all(forge_out: Path) -> dict[str, str]:
    """Exported JSON text by file name (``<Name>.json``)."""
    return {f"{n}.json": render(n, forge_out) for n in CONTRACT_NAMES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forge-out", type=Path, default=DEFAULT_FORGE_OUT, help="forge output dir (default contracts/out)")
    ap.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where to write (default the committed artifacts)")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    ap.add_argument("--build", action="store_true", help="run `forge build` (contracts/, default out dir) first")
    args = ap.parse_args(argv)

    if args.build:
        forge = CONTRACTS / "node_modules" / ".bin" / "forge"
        env = dict(os.environ)
        env.pop("FOUNDRY_OUT", None)
        cmd = [str(forge), "build", "--skip", "test", "--skip", "script"]
        if subprocess.run(cmd, cwd=CONTRACTS, env=env).returncode != 0:
            print("forge build failed", file=sys.stderr)
            return 2
    try:
        files = export_all(args.forge_out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        stale = [f for f, text in files.items() if not (args.dest / f).is_file() or (args.dest / f).read_text() != text]
        for f in stale:
            print(f"differs: {args.dest / f}", file=sys.stderr)
        return 1 if stale else 0

    args.dest.mkdir(parents=True, exist_ok=True)
    for f, text in files.items():
        path = args.dest / f
        if not path.is_file() or path.read_text() != text:
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text)
            tmp.replace(path)
            print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
