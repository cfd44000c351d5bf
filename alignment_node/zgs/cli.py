"""The ``alignment-node zgs`` commands: 0G Storage data roots of local files.

    alignment-node zgs root FILE [--json]

prints the file's data root (0x + 64 hex digits), the root the flow contract's ``Submit`` event commits to, so an
operator can check what a storage node should be holding. The file is read once, a segment (256 KiB) at a time,
with memory bounded whatever its size (``merkle.submission_nodes`` keeps O(log size) subtree roots). ``--json``
adds the sizes and the submission nodes ``[[height, root], ...]``. A missing file, a directory or an empty file
(0G stores no empty file, so it has no data root) is a one-line error and exit status 1.

Wiring in alignment_node/cli.py: ``add_zgs_args(sub)`` on the top-level subparsers registers the ``zgs`` group
with ``cmd_zgs`` as its handler.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys

from ..errors import CliError
from . import merkle


def add_zgs_args(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``zgs`` and its subcommands on ``sub`` (the top-level subparsers); returns the group's parser."""
    zgs = sub.add_parser("zgs", help="0G Storage: data roots of local files")
    zs = zgs.add_subparsers(dest="zgs_cmd", metavar="ZGS_COMMAND", required=True)
    root = zs.add_parser("root", help="print a file's 0G Storage data root (0x + 64 hex digits)")
    root.add_argument("file", help="the file (at least 1 byte)")
    root.add_argument("--json", action="store_true",
                      help="print JSON: root, size, chunks, padded_chunks, segments, nodes [[height, root], ...]")
    zgs.set_defaults(func=cmd_zgs)
    return zgs


def file_summary(path: str) -> dict:
    """The data root of the file at ``path`` and what it is made of; CliError when there is none."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CliError(f"{path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise CliError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CliError(f"{path} is empty: 0G Storage stores no empty file, so it has no data root")
            nodes = merkle.submission_nodes(f, size)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # the file shrank while it was read
        raise CliError(f"{path}: {exc}") from None
    return {
        "root": "0x" + merkle.fold_nodes([r for _, r in nodes]).hex(),
        "size": size,
        "chunks": merkle.num_chunks(size),
        "padded_chunks": merkle.padded_chunks(size),
        "segments": merkle.num_segments(size),
        "nodes": [[height, "0x" + r.hex()] for height, r in nodes],
    }


def cmd_zgs(args: argparse.Namespace) -> int:
    """Handler of the ``zgs`` group (``args.zgs_cmd`` names the subcommand); returns the exit status."""
    try:
        if args.zgs_cmd == "root":
            summary = file_summary(args.file)
            print(json.dumps(summary, sort_keys=True) if args.json else summary["root"])
            return 0
        raise CliError(f"unknown zgs command {args.zgs_cmd!r}")
    except CliError as exc:  # reported here as alignment_node.cli's main does, for callers of the handler alone
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "error_name": exc.error_name}, sort_keys=True))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
