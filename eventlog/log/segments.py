"""Segment files: names that sort in log order, durable writes, line reading and torn-tail recovery.

`<first>-<last>.ndjson` is a sealed segment and `<first>.active.ndjson` the one being appended to; seq numbers are
written as 20 decimal digits, so name order is log order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SEQ_WIDTH = 20
_SEALED = re.compile(r"^(\d{20})-(\d{20})\.ndjson$")
_ACTIVE = re.compile(r"^(\d{20})\.active\.ndjson$")
_SEAL = re.compile(r"^(\d{20})-(\d{20})\.json$")


@dataclass(frozen=True, slots=True)
class SegmentName:
    """What a segment file name says: its first seq, its last seq (sealed only), and whether it is active."""

    first_seq: int
    last_seq: int | None

    @property
    def active(self) -> bool:
        return self.last_seq is None

    @property
    def label(self) -> str:
        """The seq range as written in names: `<first>-<last>` or `<first>` for the active segment."""
        if self.last_seq is None:
            return f"{self.first_seq:0{SEQ_WIDTH}d}"
        return f"{self.first_seq:0{SEQ_WIDTH}d}-{self.last_seq:0{SEQ_WIDTH}d}"


def format_segment_name(first_seq: int, last_seq: int | None = None) -> str:
    """File name of a segment: sealed when last_seq is given, active otherwise."""
    label = SegmentName(first_seq, last_seq).label
    return f"{label}.ndjson" if last_seq is not None else f"{label}.active.ndjson"


def parse_segment_name(name: str) -> SegmentName | None:
    """Inverse of format_segment_name; None for a file that is not a segment."""
    if match := _SEALED.match(name):
        return SegmentName(int(match[1]), int(match[2]))
    if match := _ACTIVE.match(name):
        return SegmentName(int(match[1]), None)
    return None


def format_seal_name(first_seq: int, last_seq: int) -> str:
    """File name of the seal record of a sealed segment."""
    return f"{first_seq:0{SEQ_WIDTH}d}-{last_seq:0{SEQ_WIDTH}d}.json"


def parse_seal_name(name: str) -> tuple[int, int] | None:
    """Inverse of format_seal_name; None for a file that is not a seal."""
    if match := _SEAL.match(name):
        return int(match[1]), int(match[2])
    return None


def list_segments(folder: Path) -> list[tuple[SegmentName, Path]]:
    """Segments in log order (sealed by range, the active one last)."""
    found = []
    if folder.is_dir():
        for entry in os.scandir(folder):
            parsed = parse_segment_name(entry.name)
            if parsed is not None:
                found.append((parsed, Path(entry.path)))
    found.sort(key=lambda item: (item[0].first_seq, item[0].active))
    return found






def lines_of(handle: BinaryIO, *, start_offset: int = 0, chunk_size: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line without newline) for every complete line of an open file, from `start_offset`."""
    handle.seek(start_offset)
    offset = start_offset
    pending = b""
    while chunk := handle.read(chunk_size):
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield offset, pending[start:end]
            offset += end - start + 1
            start = end + 1
        pending = pending[start:]


def iter_lines(path: Path, *, start_offset: int = 0, chunk_size: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line without newline) for every complete line; a torn last line is not yielded."""
    with open(path, "rb") as handle:
        yield from lines_of(handle, start_offset=start_offset, chunk_size=chunk_size)


def complete_length(path: Path) -> int:
    """Length of the file up to and including its last newline: what survives a torn tail."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        block = 1 << 16
        position = size
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            data = handle.read(position - start)
            index = data.rfind(b"\n")
            if index >= 0:
                return start + index + 1
            position = start
    return 0




def last_line(path: Path) -> bytes | None:
    """The last complete line of a file, without its newline."""
    end = complete_length(path)
    if end == 0:
        return None
    with open(path, "rb") as handle:
        block = 1 << 16
        position = end - 1
        while True:
            start = max(0, position - block)
            handle.seek(start)
            data = handle.read(end - 1 - start)
            index = data.rfind(b"\n")
            if index >= 0 or start == 0:
                return data[index + 1:]
            position = start
