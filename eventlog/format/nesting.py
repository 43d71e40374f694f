"""How deeply a record's request and response may nest: one limit, checked at append, well below what any reader needs.

Readers decode lines with recursive decoders (msgspec, the canonical encoder, SQL drivers), whose stack runs out
near a depth of 1,000 in CPython; a record accepted at append must never make a reader fail later. The check is
cheap: a payload with fewer `[` and `{` bytes than the limit cannot nest deeper, so only payloads with that many
containers are walked.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "nesting_depth", "within_limit"]

MAX_DEPTH = 256


def within_limit(encoded: bytes) -> bool:
    """Whether canonical JSON bytes certainly nest no deeper than MAX_DEPTH (fewer openers than the limit)."""
    return encoded.count(b"[") + encoded.count(b"{") <= MAX_DEPTH


def nesting_depth(value: Any, *, limit: int = MAX_DEPTH) -> int:
    """The depth of nested lists and objects in a decoded JSON value (0 for a scalar), counted without recursion;
    stops counting once past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest
