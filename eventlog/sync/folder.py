"""Reading a log folder copied from another machine, read only, checking it as it is read.

`CopiedLog` reads another lake's folder (or its log/ folder) without taking its writer lock, recovering it,
opening its index or writing anything into it: it lists the segment files and reads their complete lines in log
order, checking each line's seq, its prev (the hash of the line before it), its digest, and each sealed segment
against its seal (checksum, last line hash, the seal chain). Damage stops the reader with an IntegrityError
naming the file and the line; a torn last line of the active segment (a write the other machine never
acknowledged) is not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from eventlog.errors import InputError, IntegrityError
from eventlog.format.events import GENESIS, Event, event_digest, line_hash
from eventlog.log.reader import decode_at
from eventlog.log.seals import read_seal, seal_hash
from eventlog.log.segments import format_seal_name, format_segment_name, lines_of, list_segments

__all__ = ["CopiedLog", "log_folder"]


def log_folder(path: Path) -> Path | None:
    """The log folder in `path` (a lake's folder, or its log/ folder), or None when `path` holds no log."""
    for candidate in (path / "log", path):
        if (candidate / "segments").is_dir():
            return candidate
    return None


class CopiedLog:
    """The events of a copied log folder, in log order, read only and checked line by line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.segments_dir = root / "segments"
        self.seals_dir = root / "seals"
        if not self.segments_dir.is_dir():
            raise InputError("holds no log (no segments/ folder)", source=str(root))

    def events(self) -> Iterator[Event]:
        """Every complete event line, checked; IntegrityError naming the file and line on damage."""
        expected, prev, previous_seal = 1, GENESIS, GENESIS
        for name, path in list_segments(self.segments_dir):
            label = f"{self.root}/segments/{format_segment_name(name.first_seq, name.last_seq)}"
            if name.first_seq != expected:
                raise IntegrityError(f"{label} starts at seq {name.first_seq} where {expected} was expected: "
                                     f"events {expected}-{name.first_seq - 1} are missing from the copied log")
            with open(path, "rb") as handle:
                for number, (_, raw) in enumerate(lines_of(handle), start=1):
                    event = decode_at(raw, label, f"line {number}")
                    where = f"{label}, line {number}"
                    if event.seq != expected:
                        raise IntegrityError(f"{where}: seq {event.seq} where {expected} was expected")
                    if event.prev != prev:
                        raise IntegrityError(f"{where}: seq {event.seq} does not follow the line before it (its "
                                             "prev is not that line's hash): the copied log was altered")
                    if event_digest(event) != event.digest:
                        raise IntegrityError(f"{where}: event {event.event_id} does not match its digest: "
                                             "the copied log was altered")
                    prev, expected = line_hash(raw), expected + 1
                    yield event
            if name.last_seq is not None:
                previous_seal = self._check_seal(name.first_seq, name.last_seq, label, expected - 1, prev,
                                                 previous_seal)

    def _check_seal(self, first: int, last: int, label: str, reached: int, last_hash: str,
                    previous_seal: str) -> str:
        """Check a sealed segment against its seal; returns the seal's hash (the next seal's prev)."""
        path = self.seals_dir / format_seal_name(first, last)
        where = f"{self.root}/seals/{path.name}"
        if reached != last:
            raise IntegrityError(f"{label} ends at seq {reached}, but its name says {last}: the copied log is "
                                 "damaged or truncated")
        if not path.is_file():
            raise IntegrityError(f"{where} is missing: the sealed segment {label} cannot be checked")
        try:
            seal, raw = read_seal(path)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: {str(exc).removeprefix(f'log/seals/{path.name} ')}") from None
        if seal.checksum != seal.expected_checksum():
            raise IntegrityError(f"{where}: the seal's checksum does not match its fields (the seal was altered)")
        if seal.last_line_hash != last_hash:
            raise IntegrityError(f"{where}: the last line of {label} is not the one the seal records "
                                 "(the segment or its seal was altered)")
        if seal.prev_seal_sha256 != previous_seal:
            raise IntegrityError(f"{where}: the seal chain is broken (prev_seal_sha256 is not the previous "
                                 "seal's hash)")
        return seal_hash(raw)
