"""Reading the segment log: every line in log order, checked against the one before it, and single events.

Readers take no lock. They read only acknowledged lines (up to what the index has committed), follow a segment
sealed or evicted under them, and never skip: a missing, reordered or altered line stops them with an
IntegrityError naming the segment and offset. `EventLog` (eventlog.log.writer) is a LogReader.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from eventlog.errors import EventLogError, IntegrityError
from eventlog.format.events import GENESIS, Event, decode_line, line_hash
from eventlog.log.index import IndexEntry, LogIndex
from eventlog.log.seals import read_seal
from eventlog.log.segments import SegmentName, format_seal_name, format_segment_name, lines_of, list_segments

__all__ = ["ColdSegments", "LogReader", "decode_at", "reason_of", "segment_sources"]

# The end of a canonical event line: its prev, recorded time, seq and type (keys in canonical order).
_LINE_END = re.compile(rb',"prev":"([0-9a-f]{64})","recorded_at_utc":"[^"]*","seq":(\d{1,20}),"type":"[a-z]+"}$')
# How many times a reader lists the segments again when the active one is sealed while it reads.
_RELISTS = 1000


class ColdSegments(Protocol):
    """Sealed segments that left log/segments for cold storage, and how to read them back (see eventlog.cold.archiver)."""

    def evicted(self) -> list[SegmentName]:
        """Sealed segments whose only copy is in cold storage, in log order."""
        ...

    def can_read(self) -> bool:
        """Whether a key to open the archives is at hand."""
        ...

    def open_segment(self, name: SegmentName) -> BinaryIO:
        """The segment's exact bytes, checked against its seal, at offset 0; the caller closes it.

        Raises ArchiveError naming the archive when it cannot be read (no key, wrong key, damaged archive).
        """
        ...

    def read_line(self, name: SegmentName, offset: int, length: int) -> bytes:
        """One line of an evicted segment, by its offset and length."""
        ...

    def check(self, name: SegmentName) -> list[tuple[str, str]]:
        """Problems (file, message) with an evicted segment's archive that show without a key."""
        ...


def segment_sources(segments_dir: Path, cold: ColdSegments | None) -> list[tuple[SegmentName, Path | None]]:
    """Every segment in log order: hot ones with their path, evicted ones (path None) from `cold`."""
    hot: list[tuple[SegmentName, Path | None]] = list(list_segments(segments_dir))
    if cold is None:
        return hot
    present = {name.first_seq for name, _ in hot}
    hot.extend((name, None) for name in cold.evicted() if name.first_seq not in present)
    hot.sort(key=lambda item: (item[0].first_seq, item[0].active))
    return hot


class LogReader:
    """The reading half of a segment log; `EventLog` supplies these attributes and `last_seq`."""

    root: Path
    segments_dir: Path
    seals_dir: Path
    index: LogIndex
    cold: ColdSegments | None
    # The segments by first seq, as `read_at` last listed them (kept: listing costs a scan of the folder).
    _placed_segments: dict[int, tuple[SegmentName, Path | None]] | None = None

    @property
    def last_seq(self) -> int:
        """The seq of the last event this log holds."""
        raise NotImplementedError

    def scan(self, *, after_seq: int = 0, committed_only: bool = True) -> Iterator[tuple[int, int, bytes, Event]]:
        """Yield (segment first seq, offset, raw line, event) for every event after `after_seq`, in log order.

        Evicted segments are read from cold storage; without a key that raises ArchiveError naming the archive.
        """
        for segment, position, raw in self.lines(after_seq=after_seq, committed_only=committed_only):
            event = decode_at(raw, f"the segment from seq {segment}", f"offset {position}")
            if event.seq > after_seq:
                yield segment, position, raw, event

    def lines(self, *, after_seq: int = 0, committed_only: bool = True) -> Iterator[tuple[int, int, bytes]]:
        """Like `scan`, undecoded, for readers with a decoder of their own: (segment first seq, offset, raw line).

        Reading stops at the last acknowledged event (the index is committed only after a batch's fsync): lines of
        a batch still being written, which a failing batch may yet take back, are never seen. Every line read is
        checked against the one before it (its seq follows, its prev is that line's hash), starting from the line
        of `after_seq` where the index places it, so a reader never skips a missing or damaged event: it gets an
        IntegrityError naming the segment and offset. A segment sealed while it is read is found again under its
        sealed name, and reading goes on from the seq reached.
        """
        end_seq = self.index.committed_last_seq() if committed_only else None
        if end_seq is not None and self.index.read_only:
            end_seq = max(end_seq, self.last_seq)  # an index that could not be caught up here is behind the log
        if end_seq is not None and end_seq <= after_seq:
            return
        start = self.index.by_seq(after_seq) if after_seq else None
        begin = None if start is None else (start.segment, start.offset)
        done = after_seq - 1 if start is not None else (0 if after_seq == 0 else -1)
        expected: int | None = 1 if after_seq == 0 else (after_seq if start is not None else None)
        prev: str | None = GENESIS if after_seq == 0 else None
        seal_path = None if start is None else self.seals_dir / format_seal_name(start.segment, after_seq)
        if seal_path is not None and seal_path.exists():
            # `after_seq` ends a sealed segment: its seal holds the line's hash, and the segment (perhaps evicted,
            # perhaps without its key at hand) need not be opened.
            begin, done, expected, prev = None, after_seq, after_seq + 1, read_seal(seal_path)[0].last_line_hash
        # A listing taken while the active segment is renamed may show it under neither name: a gap or an early
        # end is only believed when listing again shows it too.
        doubts = 0
        for _ in range(_RELISTS):
            relist = False
            for name, path in segment_sources(self.segments_dir, self.cold):
                if name.last_seq is not None and name.last_seq <= (after_seq if done < 0 else done):
                    continue
                if end_seq is not None and name.first_seq > end_seq:
                    return
                label = f"log/segments/{format_segment_name(name.first_seq, name.last_seq)}"
                offset = begin[1] if begin is not None and begin[0] == name.first_seq else 0
                try:
                    handle = self._open_source(name, path)
                except FileNotFoundError:
                    if not name.active:
                        raise IntegrityError(f"{label} disappeared while the log was read") from None
                    break  # sealed under this reader: list again and go on from `done`
                except IsADirectoryError:
                    raise IntegrityError(f"{label} is a folder where a segment file belongs") from None
                with handle:
                    for position, raw in lines_of(handle, start_offset=offset):
                        seq, line_prev = _line_place(raw, label, position)
                        if expected is not None and seq > expected and offset == 0 and position == 0 and doubts < 3:
                            doubts += 1
                            relist = True
                            break
                        if expected is not None and seq != expected:
                            raise IntegrityError(
                                f"{label}, offset {position}: seq {seq} where {expected} was expected; "
                                + (f"events {expected}-{seq - 1} are missing from the log" if seq > expected
                                   else "the log's order is broken") + " (see `eventlog verify`)")
                        if prev is not None and line_prev != prev:
                            raise IntegrityError(
                                f"{label}, offset {position}: seq {seq} does not follow the line before it (its "
                                f"prev is not that line's hash): seq {seq - 1} or this line was altered "
                                "(see `eventlog verify`)")
                        prev, expected, done = line_hash(raw), seq + 1, seq
                        if seq > after_seq:
                            yield name.first_seq, position, raw
                        if end_seq is not None and seq >= end_seq:
                            return
                if relist:
                    break
                begin = None
            else:
                if end_seq is not None and done < end_seq and doubts < 3:
                    doubts += 1
                    continue
                if end_seq is not None and done < end_seq:
                    raise IntegrityError(
                        f"the log's segments end at seq {max(done, 0)}, but log/index.sqlite records seq {end_seq} "
                        "as written: acknowledged events are missing from the log, or the index is wrong "
                        "(see `eventlog verify`)")
                return
        raise EventLogError(f"the segments of {self.root} kept changing while they were read")

    def event_at(self, seq: int) -> Event:
        """The event of one seq, checked to be that seq. Raises IntegrityError when the log does not hold it
        (a reader's watermark past the log's end: acknowledged events went missing) or it cannot be read."""
        entry = self.index.by_seq(seq)
        if entry is not None:
            try:
                event = self.read_at(entry)
            except (OSError, ValueError):
                event = None
            if event is not None and event.seq == seq:
                return event
        for _, _, raw in self.lines(after_seq=seq - 1, committed_only=False):
            event = decode_at(raw, f"the line of seq {seq}", "")
            if event.seq == seq:
                return event
            break
        raise IntegrityError(f"the log holds no event at seq {seq}; it ends at seq {self.last_seq}")

    def events(self, *, after_seq: int = 0) -> Iterator[Event]:
        """Every event after `after_seq`, in log order. Reads only complete lines; takes no lock."""
        for _, _, _, event in self.scan(after_seq=after_seq):
            yield event

    def read_at(self, entry: IndexEntry) -> Event:
        """The event an index entry points to (from cold storage when its segment was evicted).

        The segments are listed once and the listing kept: a read it cannot serve (a segment sealed, evicted,
        restored or created since) lists them again and tries once more, so a real error is raised as it is.
        """
        placed = self._placed_segments
        if placed is not None:
            try:
                return self._read_at(entry, placed)
            except (EventLogError, OSError):
                pass  # the listing may be stale: list again
        try:
            return self._read_at(entry, self._list_placed())
        except FileNotFoundError:
            return self._read_at(entry, self._list_placed())  # its segment was sealed since it was listed

    def _list_placed(self) -> dict[int, tuple[SegmentName, Path | None]]:
        placed = {name.first_seq: (name, path) for name, path in segment_sources(self.segments_dir, self.cold)}
        self._placed_segments = placed
        return placed

    def _read_at(self, entry: IndexEntry, placed: dict[int, tuple[SegmentName, Path | None]]) -> Event:
        found = placed.get(entry.segment)
        if found is not None:
            name, path = found
            label = f"log/segments/{format_segment_name(name.first_seq, name.last_seq)}"
            if path is None and self.cold is not None:
                raw = self.cold.read_line(name, entry.offset, entry.length)
            else:
                try:
                    with self._open_source(name, path) as handle:
                        handle.seek(entry.offset)
                        raw = handle.read(entry.length)
                except IsADirectoryError:
                    raise IntegrityError(f"{label} is a folder where a segment file belongs") from None
            event = decode_at(raw, label, f"offset {entry.offset}")
            if event.event_id != entry.event_id:
                raise IntegrityError(f"{label}, offset {entry.offset}: holds event {event.event_id}, not "
                                     f"{entry.event_id} as log/index.sqlite says (run `eventlog verify`)")
            return event
        raise IntegrityError(f"the segment from seq {entry.segment} holding event {entry.event_id} is missing from "
                             "the log (run `eventlog verify`)")

    def _open_source(self, name: SegmentName, path: Path | None) -> BinaryIO:
        if path is not None:
            try:
                return open(path, "rb")
            except FileNotFoundError:
                # Evicted between listing and opening: its archive is the copy now.
                if self.cold is None or name.active:
                    raise
        if self.cold is None:
            raise EventLogError(f"segment {name.label} is not in the hot log")
        return self.cold.open_segment(name)


def _line_place(raw: bytes, label: str, position: int) -> tuple[int, str]:
    """The seq and prev of a line, read from its end. Raises IntegrityError naming the line when it has none."""
    match = _LINE_END.search(raw, max(0, len(raw) - 200))
    if match is None:
        raise IntegrityError(f"{label}, offset {position}: not an event line (damaged); see `eventlog verify`")
    return int(match[2]), match[1].decode()


def decode_at(raw: bytes, label: str, which: str) -> Event:
    """Decode one line; IntegrityError naming the file and which line it is when it is not an event."""
    try:
        return decode_line(raw)
    except ValueError as exc:
        where = f"{label}, {which}" if which else label
        raise IntegrityError(f"{where}: not a valid event line ({reason_of(exc)})") from None


def reason_of(exc: BaseException) -> str:
    """An error's own words, without a trailing period, for use inside a sentence."""
    return str(exc).rstrip(".") or type(exc).__name__
