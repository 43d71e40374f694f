"""Tamper evidence: recompute every line hash, the chain, digests, content hashes, seals and the seal chain.

Each line is checked on its own first (valid event, canonical bytes, digest, content hash), so a flipped byte is
named at the line it sits in, not at the next line whose `prev` no longer matches.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from eventlog.errors import EventLogError, IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.events import GENESIS, decode_line, event_digest, line_hash
from eventlog.log.head import HEAD_NAME, read_head
from eventlog.log.index import connect_read_only
from eventlog.log.locking import WriterLock
from eventlog.log.reader import ColdSegments, segment_sources
from eventlog.log.seals import MerkleTree, Seal, read_seal, seal_hash
from eventlog.log.segments import (
    SegmentName,
    format_seal_name,
    format_segment_name,
    lines_of,
    parse_seal_name,
)

# The top-level fields of a canonical line after its body: digest, event_id, ..., seq (keys in canonical order).
_LINE_IDS = re.compile(rb',"digest":"([0-9a-f]{64})","event_id":"([^"]*)","origin":"[^"]*","prev":"[0-9a-f]{64}",'
                       rb'"recorded_at_utc":"[^"]*","seq":(\d{1,20}),"type":"[a-z]+"}$')
CONTENT_KEYS = ("entity_type", "exchange_type", "natural_key", "request", "response", "source_system")


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One disagreement, located."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.message}"


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of `verify`: counts and every problem found, the first one first.

    `segments` counts hot and evicted segments; `evicted` those only in cold storage; `events` the lines read.
    """

    ok: bool
    segments: int
    seals: int
    events: int
    problems: tuple[Problem, ...] = ()
    evicted: int = 0


def verify_log(log_root: Path, *, progress: Callable[[int], None] | None = None,
               max_problems: int = 100, cold: ColdSegments | None = None) -> VerifyReport:
    """Check a log folder end to end; never raises for bad data, reports it.

    Segments, seals, the index (log/index.sqlite, entry by entry) and the head (log/head.json, the last acknowledged
    event) are checked against each other: a log that ends before its head has lost acknowledged events.

    With `cold`, an evicted segment is checked through its archive: without a key, the archive must match what
    its location records and its header must name the segment's seal, and the chain resumes from the seal; with
    a key, its lines are decrypted and checked like a hot segment's.
    """
    segments_dir, seals_dir = log_root / "segments", log_root / "seals"
    problems: list[Problem] = []
    seals: dict[tuple[int, int], tuple[Seal, bytes, str]] = {}
    head_error: Exception | None = None
    with _listing(log_root):
        seal_entries = sorted(os.scandir(seals_dir), key=lambda e: e.name) if seals_dir.is_dir() else []
        segment_list = segment_sources(segments_dir, cold)
        try:
            head = read_head(log_root / HEAD_NAME)
        except (IntegrityError, OSError) as exc:
            head, head_error = None, exc
    for entry in seal_entries:
        parsed = parse_seal_name(entry.name)
        if parsed is None:
            continue
        try:
            seal, raw = read_seal(Path(entry.path))
        except (IntegrityError, OSError) as exc:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None, message=f"unreadable seal: {exc}"))
            continue
        if seal.checksum != seal.expected_checksum() or seal.to_bytes() != raw:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None,
                                    message="seal checksum does not match its fields (the seal was altered)"))
        elif (seal.first_seq, seal.last_seq) != parsed:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None,
                                    message="seal names a different seq range than its file name"))
        seals[parsed] = (seal, raw, entry.name)

    previous_seal = GENESIS
    for (_, _), (seal, raw, seal_file) in sorted(seals.items()):
        if seal.prev_seal_sha256 != previous_seal:
            problems.append(Problem(file=f"log/seals/{seal_file}", line=None,
                                    message="seal chain broken: prev_seal_sha256 does not match the previous seal"))
        previous_seal = seal_hash(raw)

    expected_seq, last_hash, events = 1, GENESIS, 0
    seen_ids: set[bytes] = set()
    index_problems: list[Problem] = []  # reported after the log's own: a damaged line explains its entry too
    index = _IndexCheck(log_root / "index.sqlite", index_problems)
    if head_error is not None:
        problems.append(Problem(file=f"log/{HEAD_NAME}", line=None,
                                message=str(head_error).removeprefix(f"log/{HEAD_NAME} ")))
    head_hash: str | None = None
    evicted = 0
    for name, path in segment_list:
        label = f"log/segments/{format_segment_name(name.first_seq, name.last_seq)}"
        if name.first_seq != expected_seq:
            problems.append(Problem(file=label, line=None,
                                    message=f"segment starts at seq {name.first_seq}, expected {expected_seq}"))
        if path is None:
            evicted += 1
            handle = _open_evicted(cold, name, label, seals, problems)
            if handle is None:
                sealed = seals.get((name.first_seq, name.last_seq or 0))
                if sealed is not None:
                    # Without the key the seal vouches for the range; the chain resumes where it ends.
                    if sealed[0].first_prev != last_hash:
                        problems.append(Problem(file=label, line=None,
                                                message="first line's prev does not match its seal"))
                    expected_seq, last_hash = sealed[0].last_seq + 1, sealed[0].last_line_hash
                index.skip_through(name.last_seq or 0)
                continue
        else:
            try:
                handle = _open_segment(path, name)
            except OSError as exc:
                problems.append(Problem(file=label, line=None, message=f"cannot be read ({exc.strerror})"))
                continue
        digest = hashlib.sha256()
        tree = MerkleTree()
        size = 0
        first_prev = None
        for number, (offset, line) in enumerate(_owned_lines(handle), start=1):
            digest.update(line + b"\n")
            size += len(line) + 1
            message = check_line(line, expected_seq=expected_seq, prev=last_hash, seen_ids=seen_ids)
            if message is None:
                index.check(line, segment=name.first_seq, offset=offset, label=label, number=number)
            else:
                problems.append(Problem(file=label, line=number, message=message))
                if len(problems) >= max_problems:
                    return _report(problems + index_problems, segment_list, seals, events, evicted)
            if first_prev is None:
                first_prev = last_hash
            last_hash = line_hash(line)
            tree.add(bytes.fromhex(last_hash))
            if head is not None and head.seq == expected_seq:
                head_hash = last_hash
            expected_seq += 1
            events += 1
            if progress is not None and events % 10_000 == 0:
                progress(events)
        # Only the active segment may grow while verify reads it: bytes past its last line are then a writer's,
        # when the head moved past both that line and what it acknowledged before verify began.
        acknowledged = head.seq if head is not None else 0
        if path is not None and path.exists() and path.stat().st_size != size and not (
                name.active and _appended_since(log_root, max(expected_seq - 1, acknowledged))):
            problems.append(Problem(file=label, line=tree.count + 1, message="segment ends in a torn line"))
        if name.active:
            continue
        assert name.last_seq is not None
        sealed_entry = seals.get((name.first_seq, name.last_seq))
        if sealed_entry is None:
            problems.append(Problem(file=label, line=None,
                                    message=f"sealed segment has no seal log/seals/"
                                            f"{format_seal_name(name.first_seq, name.last_seq)}"))
            continue
        seal = sealed_entry[0]
        checks = (
            (seal.count == tree.count, f"seal says {seal.count} events, segment holds {tree.count}"),
            (name.last_seq == expected_seq - 1, f"segment name ends at {name.last_seq}, lines end at "
                                                f"{expected_seq - 1}"),
            (seal.byte_length == size, f"seal says {seal.byte_length} bytes, segment has {size}"),
            (seal.file_sha256 == digest.hexdigest(), "file SHA-256 does not match its seal"),
            (seal.merkle_root == tree.root(), "Merkle root does not match its seal"),
            (seal.last_line_hash == last_hash, "last line hash does not match its seal"),
            (first_prev is None or seal.first_prev == first_prev, "first line's prev does not match its seal"),
        )
        problems.extend(Problem(file=label, line=None, message=message) for ok, message in checks if not ok)

    index.finish(expected_seq - 1, log_root)
    if head is not None:
        if head.seq > expected_seq - 1:
            problems.append(Problem(file=f"log/{HEAD_NAME}", line=None, message=(
                f"records seq {head.seq} as acknowledged, but the log ends at seq {expected_seq - 1}: "
                f"acknowledged events {expected_seq}-{head.seq} are missing")))
        elif head.seq > 0 and head_hash is not None and head_hash != head.line_hash:
            problems.append(Problem(file=f"log/{HEAD_NAME}", line=None, message=(
                f"the line of seq {head.seq} is not the one acknowledged (its hash differs)")))
    present = {(name.first_seq, name.last_seq) for name, _ in segment_list}
    for key, (_, _, seal_name) in sorted(seals.items()):
        if key not in present:
            problems.append(Problem(file=f"log/seals/{seal_name}", line=None,
                                    message="the segment this seal describes is missing from log/segments"))
    return _report(problems + index_problems, segment_list, seals, events, evicted)


class _IndexCheck:
    """log/index.sqlite read beside the lines: every line's entry must name its seq, id, digest and place."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.problems = problems
        self.label = "log/index.sqlite"
        self.rows: Iterator[tuple[Any, ...]] | None = None
        self.pending: tuple[Any, ...] | None = None
        self.reported = 0
        if not path.is_file():
            self._report(None, "is missing (it is rebuilt from the segments on the next open or by `eventlog "
                         "reindex`)")
            return
        try:
            self.db = connect_read_only(path)
            self.rows = iter(self.db.execute(
                "SELECT seq, event_id, digest, segment, offset, length FROM events ORDER BY seq"))
        except sqlite3.Error as exc:
            self._fail(exc)

    def _report(self, line: int | None, message: str) -> None:
        if self.reported < 10:  # one damaged index is named by a few entries, not by every event
            self.problems.append(Problem(file=self.label, line=line, message=message))
        self.reported += 1

    def _fail(self, exc: sqlite3.Error) -> None:
        self._report(None, f"cannot be read ({exc}); rebuild it with `eventlog reindex`")
        self.rows = None

    def _next(self) -> tuple[Any, ...] | None:
        if self.pending is not None:
            row, self.pending = self.pending, None
            return row
        if self.rows is None:
            return None
        try:
            return next(self.rows, None)
        except sqlite3.Error as exc:
            self._fail(exc)
            return None

    def check(self, line: bytes, *, segment: int, offset: int, label: str, number: int) -> None:
        if self.rows is None:
            return
        match = _LINE_IDS.search(line, max(0, len(line) - 400))
        if match is None:
            return  # the line itself is reported
        seq = int(match[3])
        row = self._next()
        while row is not None and row[0] < seq:
            self._report(None, f"has an entry for seq {row[0]}, which the log does not hold")
            row = self._next()
        if row is None:
            # Behind the log: its rows end where the index was when verify began (a batch being written, or a
            # crash before the index was caught up, which the next open does).
            self.rows = None
            return
        if row[0] > seq:
            self.pending = row
            self._report(None, f"has no entry for seq {seq} ({label}, line {number}); "
                               "rebuild it with `eventlog reindex`")
            return
        wanted = (match[2].decode(), match[1].decode(), segment, offset, len(line))
        if tuple(row[1:]) != wanted:
            self._report(None, f"entry of seq {seq} does not match {label}, line {number}; "
                               "rebuild it with `eventlog reindex`")

    def skip_through(self, seq: int) -> None:
        """Pass over the entries up to `seq`: their lines are in an archive that cannot be read here."""
        row = self._next()
        while row is not None and row[0] <= seq:
            row = self._next()
        self.pending = row

    def finish(self, last_seq: int, log_root: Path) -> None:
        row = self._next()
        if row is not None and not _appended_since(log_root, last_seq):
            self._report(None, f"has entries past the log's last seq {last_seq} (from seq {row[0]})")
        if self.rows is not None:
            self.db.close()


@contextmanager
def _listing(log_root: Path) -> Iterator[None]:
    """Hold the writer lock while the seals and segments are listed, so that both lists show the same seals (a seal
    renames its segment and writes its seal under the lock); none is taken where the lake cannot be written."""
    path = log_root / "writer.lock"
    try:
        if not path.is_file():
            raise FileNotFoundError(path)  # never written to: no writer to wait for, and verify makes no files
        lock = WriterLock(path, timeout=60.0).held()
        lock.__enter__()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _open_segment(path: Path, name: SegmentName) -> BinaryIO:
    """Open a segment; an active one sealed since the folder was listed is opened under its sealed name."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        if not name.active:
            raise
        sealed = sorted(path.parent.glob(f"{name.label}-*.ndjson"))
        if not sealed:
            raise
        return open(sealed[0], "rb")


def _appended_since(log_root: Path, last_seq: int) -> bool:
    """Whether a writer acknowledged events past `last_seq` while verify read (so what lies past it is theirs)."""
    try:
        head = read_head(log_root / HEAD_NAME)
    except (IntegrityError, OSError):
        return False
    return head is not None and head.seq > last_seq


def _open_evicted(cold: ColdSegments | None, name: SegmentName, label: str,
                  seals: dict[tuple[int, int], tuple[Seal, bytes, str]],
                  problems: list[Problem]) -> BinaryIO | None:
    """Check an evicted segment's archive; its decrypted bytes when a key is at hand, else None."""
    assert cold is not None and name.last_seq is not None
    if (name.first_seq, name.last_seq) not in seals:
        problems.append(Problem(file=label, line=None, message="evicted segment has no seal log/seals/"
                                f"{format_seal_name(name.first_seq, name.last_seq)}"))
    problems.extend(Problem(file=file, line=None, message=message) for file, message in cold.check(name))
    if not cold.can_read():
        return None
    try:
        return cold.open_segment(name)
    except EventLogError as exc:
        problems.append(Problem(file=label, line=None, message=str(exc)))
        return None


def _owned_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    with handle:
        yield from lines_of(handle)


def check_line(line: bytes, *, expected_seq: int, prev: str, seen_ids: set[bytes]) -> str | None:
    """The first thing wrong with one line at its place in the chain, or None."""
    try:
        event = decode_line(line)
    except ValueError as exc:  # msgspec's decode and validation errors, and invalid UTF-8 in keys
        return f"not a valid event line ({exc})"
    try:
        if canonical_json(msgspec.json.decode(line)) != line:
            return "line is not in canonical JSON form"
    except Exception as exc:  # any refusal of the canonical encoder is a finding here, not a crash
        return f"line has no canonical JSON form ({exc})"
    if event.seq != expected_seq:
        return f"seq {event.seq} where {expected_seq} was expected"
    if event.prev != prev:
        return "prev does not match the hash of the line before (chain broken)"
    if event_digest(event) != event.digest:
        return f"digest of event {event.event_id} does not match its content"
    body = event.body
    if event.type != "resolved":
        if "request" in body:
            content = canonical_json({key: body.get(key) for key in CONTENT_KEYS})
            if hashlib.sha256(content).hexdigest() != body.get("content_sha256"):
                return f"content_sha256 of event {event.event_id} does not match its request/response"
        if event.event_id != body.get("exchange_id"):
            return f"event id {event.event_id} differs from the envelope's exchange_id"
    try:
        raw_id = bytes.fromhex(event.event_id.replace("-", ""))
    except ValueError:
        return "the event id ($.event_id) is not a UUID"
    if raw_id in seen_ids:
        return f"event id {event.event_id} appears twice in the log"
    seen_ids.add(raw_id)
    return None


def _report(problems: list[Problem], segments: list[Any], seals: dict[Any, Any], events: int,
            evicted: int) -> VerifyReport:
    return VerifyReport(ok=not problems, segments=len(segments), seals=len(seals), events=events,
                        problems=tuple(problems), evicted=evicted)
