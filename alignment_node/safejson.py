"""json.loads for bytes from untrusted peers: refuses nesting that could exhaust the C stack.

CPython's JSON scanner recurses once per nesting level; with a raised recursion limit, a body of a few hundred
thousand '[' can overflow the C stack and kill the process instead of raising RecursionError. Every answer
from a target or an RPC endpoint goes through ``loads`` here first.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 128


class TooDeep(ValueError):
    """The JSON nests deeper than MAX_DEPTH."""


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """Deepest [/{ nesting outside strings, scanning at most until ``limit`` is exceeded."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0  # cannot nest deeper than the number of openers
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads that raises TooDeep (a ValueError) instead of risking the process on deep nesting."""
    if nesting_depth(data, max_depth) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(data)
