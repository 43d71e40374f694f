"""How far this lake has merged a copied folder of another replica: one small record per source replica.

`log/sources/<source replica id>.json` holds the copied log's last seq merged, the hash of that line (so a copy
that was truncated or replaced since is recognised and read whole again), and this log's last seq once the merge
was written (its events up to there are what this lake held when the two last agreed). The record is written
temp -> fsync -> rename -> fsync(dir), only after the merged events were appended; losing it costs one full read.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import msgspec

from eventlog.durable import write_atomic
from eventlog.format.canonical import canonical_json

__all__ = ["SourceMark", "read_mark", "source_replica", "write_mark"]

MARK_FORMAT = 1
SOURCES_DIR = "sources"


class SourceMark(msgspec.Struct, frozen=True, kw_only=True):
    """log/sources/<source>.json: the position reached in a copied log of replica `source` by this log (`replica`)."""

    format: int = MARK_FORMAT
    replica: str
    source: str
    source_seq: int
    source_line_hash: str
    log_seq: int
    synced_at_utc: str


def source_replica(log_root: Path) -> str | None:
    """The replica id in the lake.json beside a copied log folder, or None (a bare log folder, an unreadable or
    odd lake.json: such a copy is read whole each time)."""
    try:
        config = json.loads((log_root.parent / "lake.json").read_bytes())
        return str(uuid.UUID(str(config["replica_id"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _path(log_root: Path, source: str) -> Path:
    return log_root / SOURCES_DIR / f"{source}.json"


def read_mark(log_root: Path, *, replica: str, source: str) -> SourceMark | None:
    """This log's record of `source`, or None when it has none (or one it cannot use: unreadable, of another
    replica, of a newer format)."""
    try:
        mark = msgspec.json.decode(_path(log_root, source).read_bytes(), type=SourceMark)
    except (OSError, msgspec.DecodeError):
        return None
    if mark.format > MARK_FORMAT or mark.replica != replica or mark.source != source or mark.source_seq < 1:
        return None
    return mark


def write_mark(log_root: Path, mark: SourceMark) -> None:
    """Write (or replace) the record, durably."""
    path = _path(log_root, mark.source)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, canonical_json(msgspec.to_builtins(mark)) + b"\n")
