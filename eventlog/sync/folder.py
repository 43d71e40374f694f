"""Reading a log folder copied from another machine, read only, checking it as it is read.

`CopiedLog` reads another lake's folder (or its log/ folder) without taking its writer lock, recovering it,
opening its index or writing anything into it: it lists the segment files (and, with a `ColdStore` over the copy,
the segments evicted to its archive/ folder) and reads their complete lines in log order, checking each line's
seq, its prev (the hash of the line before it), its digest, and each sealed segment against its seal (checksum,
last line hash, the seal chain). Damage stops the reader with an IntegrityError naming the file and the line; a
torn last line of the active segment (a write the other machine never acknowledged) is not read.

Reading may start after a position reached before (`resume`): the sealed segments wholly at or below it are not
opened, only their seals are checked (checksum, the seal chain, each seal's first prev against the last line hash
of the one before), and the chain of the lines read is checked from the last line hash of the seal before them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from eventlog.cold.reader import ARCHIVE_DIR, ColdStore, format_archive_name
from eventlog.errors import ArchiveError, InputError, IntegrityError
from eventlog.format.events import GENESIS, Event, event_digest, line_hash
from eventlog.log.reader import decode_at, segment_sources
from eventlog.log.seals import Seal, read_seal, seal_hash
from eventlog.log.segments import SegmentName, format_seal_name, format_segment_name, lines_of

__all__ = ["FULL", "CopiedLog", "Start", "log_folder"]

KEY_OPTIONS = ("--identity, --key-file, --passphrase-env, --passphrase-file or --ask-passphrase (or the "
               "EVENTLOG_IDENTITY, EVENTLOG_KEY_FILE or EVENTLOG_PASSPHRASE variable)")


def log_folder(path: Path) -> Path | None:
    """The log folder in `path` (a lake's folder, or its log/ folder), or None when `path` holds no log."""
    for candidate in (path / "log", path):
        if (candidate / "segments").is_dir():
            return candidate
    return None


class Start(NamedTuple):
    """Where reading a copied log begins: the segment starting at `first_seq`, the hash of the line before it and
    of the seal before it; lines up to `after` are checked but not returned."""

    after: int
    first_seq: int
    prev: str
    previous_seal: str


FULL = Start(after=0, first_seq=1, prev=GENESIS, previous_seal=GENESIS)


class _Chain:
    """The line chain as it is read: the seq expected next and the hash of the last line."""

    def __init__(self, root: Path, start: Start) -> None:
        self.root = root
        self.expected, self.prev = start.first_seq, start.prev

    def check(self, raw: bytes, label: str, number: int) -> Event:
        event = decode_at(raw, label, f"line {number}")
        where = f"{label}, line {number}"
        if event.seq != self.expected:
            raise IntegrityError(f"{where}: seq {event.seq} where {self.expected} was expected")
        if event.prev != self.prev:
            raise IntegrityError(f"{where}: seq {event.seq} does not follow the line before it (its prev is not "
                                 "that line's hash): the copied log was altered")
        if event_digest(event) != event.digest:
            raise IntegrityError(f"{where}: event {event.event_id} does not match its digest: the copied log was "
                                 "altered")
        self.prev, self.expected = line_hash(raw), self.expected + 1
        return event


class CopiedLog:
    """The events of a copied log folder, in log order, read only and checked line by line.

    `cold` reads the copy's evicted segments (None: they count as missing). `segments_opened` holds the first seqs
    of the segment files and archives opened, so that a caller can tell what a run read. `reached` is the (seq, line hash) of the
    last line read.
    """

    def __init__(self, root: Path, *, cold: ColdStore | None = None) -> None:
        self.root = root
        self.segments_dir = root / "segments"
        self.seals_dir = root / "seals"
        self.cold = cold
        self.segments_opened: set[int] = set()
        self.reached = (0, GENESIS)
        if not self.segments_dir.is_dir():
            raise InputError("holds no log (no segments/ folder)", source=str(root))

    def _label(self, name: SegmentName) -> str:
        return f"{self.root}/segments/{format_segment_name(name.first_seq, name.last_seq)}"

    def _sources(self) -> list[tuple[SegmentName, Path | None]]:
        return segment_sources(self.segments_dir, self.cold)

    def events(self, start: Start = FULL, *, end: int | None = None) -> Iterator[Event]:
        """The events after `start.after` (up to seq `end`), checked; IntegrityError naming the file and line on
        damage, ArchiveError naming the archive when an evicted segment cannot be read."""
        chain, previous_seal = _Chain(self.root, start), start.previous_seal
        for name, path in self._sources():
            if name.last_seq is not None and name.last_seq < start.first_seq:
                continue
            label = self._label(name)
            if name.first_seq != chain.expected:
                raise IntegrityError(f"{label} starts at seq {name.first_seq} where {chain.expected} was expected: "
                                     f"events {chain.expected}-{name.first_seq - 1} are missing from the copied log")
            with self._open(name, path) as handle:
                for number, (_, raw) in enumerate(lines_of(handle), start=1):
                    if end is not None and chain.expected > end:
                        return
                    event = chain.check(raw, label, number)
                    self.reached = (event.seq, chain.prev)
                    if event.seq > start.after:
                        yield event
            if name.last_seq is not None:
                previous_seal = self._check_seal(name, label, chain.expected - 1, chain.prev, previous_seal)

    def resume(self, seq: int, hash_at: str) -> Start | None:
        """Where to read the events after `seq`, whose line had hash `hash_at` when read before; None when the copy
        no longer holds that line (it was truncated or replaced), so it must be read whole.

        Opens no sealed segment at or below `seq`: their seals are checked against each other instead. Reads the
        segment holding `seq` up to it when `seq` is not the last line of a sealed segment.
        """
        prev, previous_seal, expected = GENESIS, GENESIS, 1
        for name, path in self._sources():
            label = self._label(name)
            if name.first_seq != expected:
                raise IntegrityError(f"{label} starts at seq {name.first_seq} where {expected} was expected: "
                                     f"events {expected}-{name.first_seq - 1} are missing from the copied log")
            start = Start(after=seq, first_seq=name.first_seq, prev=prev, previous_seal=previous_seal)
            if name.last_seq is None or name.last_seq > seq:
                if path is None:
                    self.refuse_without_key(start)
                return start if self._holds(name, path, start, hash_at) else None
            seal, raw = self._seal(name, label)
            if seal.first_prev != prev or seal.prev_seal_sha256 != previous_seal:
                raise IntegrityError(f"{self.root}/seals/{format_seal_name(name.first_seq, name.last_seq)}: the seal "
                                     "chain is broken (the seal does not follow the one before it)")
            prev, previous_seal, expected = seal.last_line_hash, seal_hash(raw), name.last_seq + 1
            if name.last_seq == seq:
                if prev != hash_at:
                    return None
                return Start(after=seq, first_seq=seq + 1, prev=prev, previous_seal=previous_seal)
        return None

    def _holds(self, name: SegmentName, path: Path | None, start: Start, hash_at: str) -> bool:
        """Whether the segment `name` holds the line at `start.after` with hash `hash_at` (read up to it)."""
        chain = _Chain(self.root, start)
        with self._open(name, path) as handle:
            for number, (_, raw) in enumerate(lines_of(handle), start=1):
                event = chain.check(raw, self._label(name), number)
                if event.seq == start.after:
                    return chain.prev == hash_at
        return False

    def evicted_from(self, start: Start) -> list[SegmentName]:
        """The evicted segments that reading from `start` opens."""
        if self.cold is None:
            return []
        return [name for name in self.cold.evicted()
                if name.last_seq is not None and name.last_seq >= start.first_seq]

    def refuse_without_key(self, start: Start) -> None:
        """Raise ArchiveError, naming the first archive and the key options, when reading from `start` needs
        evicted segments and no key to open them is at hand."""
        needed = self.evicted_from(start)
        if not needed or self.cold is None or self.cold.can_read():
            return
        first = needed[0]
        assert first.last_seq is not None
        archive = self.cold.archive_dir / format_archive_name(first.first_seq, first.last_seq)
        raise ArchiveError(f"the copied log at {self.root} has {len(needed)} segment(s) evicted to cold storage "
                           f"that this sync must read, the first ({first.label}) in {archive}: pass its key with "
                           f"{KEY_OPTIONS}")

    def _open(self, name: SegmentName, path: Path | None) -> BinaryIO:
        self.segments_opened.add(name.first_seq)
        if path is not None:
            return open(path, "rb")
        assert self.cold is not None
        try:
            return self.cold.open_segment(name)
        except ArchiveError as exc:
            raise ArchiveError(f"the copied log at {self.root}: {exc}".replace(
                f" {ARCHIVE_DIR}/", f" {self.cold.archive_dir}/")) from None

    def _seal(self, name: SegmentName, label: str) -> tuple[Seal, bytes]:
        assert name.last_seq is not None
        path = self.seals_dir / format_seal_name(name.first_seq, name.last_seq)
        where = f"{self.root}/seals/{path.name}"
        if not path.is_file():
            raise IntegrityError(f"{where} is missing: the sealed segment {label} cannot be checked")
        try:
            seal, raw = read_seal(path)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: {str(exc).removeprefix(f'log/seals/{path.name} ')}") from None
        if seal.checksum != seal.expected_checksum():
            raise IntegrityError(f"{where}: the seal's checksum does not match its fields (the seal was altered)")
        return seal, raw

    def _check_seal(self, name: SegmentName, label: str, reached: int, last_hash: str, previous_seal: str) -> str:
        """Check a sealed segment against its seal; returns the seal's hash (the next seal's prev)."""
        assert name.last_seq is not None
        if reached != name.last_seq:
            raise IntegrityError(f"{label} ends at seq {reached}, but its name says {name.last_seq}: the copied log "
                                 "is damaged or truncated")
        seal, raw = self._seal(name, label)
        where = f"{self.root}/seals/{format_seal_name(name.first_seq, name.last_seq)}"
        if seal.last_line_hash != last_hash:
            raise IntegrityError(f"{where}: the last line of {label} is not the one the seal records "
                                 "(the segment or its seal was altered)")
        if seal.prev_seal_sha256 != previous_seal:
            raise IntegrityError(f"{where}: the seal chain is broken (prev_seal_sha256 is not the previous "
                                 "seal's hash)")
        return seal_hash(raw)
