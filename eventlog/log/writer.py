"""The append-only segment log of one replica: batched durable appends, sealing, recovery and reading.

One call to `append` is one group commit: every record is validated, redacted and hashed, written in one pass,
fsynced once, and only then acknowledged. A bad record anywhere in the call rolls the whole call back, so nothing
of a failing batch enters the log. A call lands in one segment; sealing is checked after it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from eventlog import extensions
from eventlog.durable import fsync_dir, named, truncate_to, write_atomic
from eventlog.errors import EventLogError, IntegrityError, LakeError
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import (
    MAX_RECORD_BYTES,
    ExchangeRecord,
    format_utc,
    parse_utc,
)
from eventlog.format.events import (
    GENESIS,
    Event,
    EventType,
    encode_event,
    encode_observation,
    line_hash,
)
from eventlog.format.identity import exchange_key
from eventlog.log.config import CONFIG_NAME, LakeConfig, SegmentPolicy
from eventlog.log.head import HEAD_NAME, Head, HeadFile, read_head
from eventlog.log.index import IndexEntry, LogIndex, index_rows, is_damaged, remove_index_files
from eventlog.log.locking import WriterLock
from eventlog.log.prepare import Prepared
from eventlog.log.reader import ColdSegments, LogReader, decode_at, reason_of
from eventlog.log.seals import Seal, SealAccumulator, compute_seal, read_seal, seal_hash
from eventlog.log.segments import (
    SegmentName,
    complete_length,
    format_seal_name,
    format_segment_name,
    iter_lines,
    last_line,
    list_segments,
    parse_seal_name,
)
from eventlog.log.tally import Tally, prepare_item
from eventlog.redaction.redactor import RedactionPolicy, Redactor

CHUNK = 2000
CHUNK_BYTES = 8 * 1024 * 1024
# A chunk's write runs on a thread of its own, beside the index inserts, from this many bytes on; below, starting
# the thread (about 60 µs) would cost more than the overlap gains.
THREADED_WRITE_BYTES = 64 * 1024
# Errors that say the lake cannot be written here at all (a read-only folder or disk, a full disk): readers read it
# as it is.
_CANNOT_WRITE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class AppendResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one append call did."""

    observed: int = 0
    revisited: int = 0
    already_present: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    redacted: int = 0
    hash_mismatches: tuple[str, ...] = ()  # the first tally.MAX_LISTED_MISMATCHES of them
    hash_mismatch_count: int = 0
    sealed: tuple[str, ...] = ()


@dataclass
class _Tail:
    """Where the log ends: the next seq, the last line hash, and the active segment if there is one."""

    next_seq: int = 1
    last_hash: str = GENESIS
    active: SegmentName | None = None
    active_path: Path | None = None
    active_size: int = 0
    synced_size: int = -1  # the active segment's size at its last fsync
    active_first_recorded: str | None = None
    # The active segment's seal so far, when this process has seen every line of it (it wrote them all).
    accumulator: SealAccumulator | None = None
    fingerprint: tuple[Any, ...] = field(default_factory=tuple)


class EventLog(LogReader):
    """The segment log under <lake>/log. Reading needs no lock; every write holds the writer lock.

    `cold` makes segments evicted to cold storage readable in `scan`, `events` and `read_at`.
    """

    def __init__(self, root: Path, *, replica_id: str, policy: SegmentPolicy, redactor: Redactor,
                 durable: bool = True, lock_timeout: float = 30.0, max_record_bytes: int = MAX_RECORD_BYTES,
                 clock: Callable[[], datetime] | None = None, cold: ColdSegments | None = None) -> None:
        self.root = root
        self.cold = cold
        self.segments_dir = root / "segments"
        self.seals_dir = root / "seals"
        self.replica_id = replica_id
        self.policy = policy
        self.redactor = redactor
        self.durable = durable
        self.max_record_bytes = max_record_bytes
        self.clock = clock or (lambda: datetime.now(UTC))
        for folder in (self.segments_dir, self.seals_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(root / "writer.lock", timeout=lock_timeout)
        self.head_file = HeadFile(root / HEAD_NAME)
        # Acknowledged events missing or damaged: set by `_recover`, raised by every write, named by readers.
        self.damage: IntegrityError | None = None
        self._tail = _Tail()
        self._sealed_in_call: list[tuple[Path, Path, Path]] = []
        self._writing: _Background | None = None  # a chunk's write in flight (see `_write`)
        opened: LogIndex | None = None
        try:
            self.index = opened = self._open_index()
            with self.lock.held():
                self._recover()
        except (OSError, sqlite3.OperationalError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _CANNOT_WRITE:
                raise
            # A lake on a read-only folder, or a disk too full for the index's WAL: read it as it is.
            if opened is not None:
                opened.close()
            self.index = LogIndex(root / "index.sqlite", read_only=True)
            self._recover(write=False)

    @classmethod
    def from_config(cls, lake_root: Path, config: LakeConfig, *, redaction: RedactionPolicy | None = None,
                    clock: Callable[[], datetime] | None = None, cold: ColdSegments | None = None) -> EventLog:
        """The log under `lake_root`/log as lake.json's `config` sets it up; `redaction` adds to its policy.

        Raises InputError naming lake.json for a redaction policy that does not validate.
        """
        policy = RedactionPolicy.from_mapping(config.redaction, source=str(lake_root / CONFIG_NAME))
        if redaction is not None:
            policy = policy.merged(redaction)
        return cls(lake_root / "log", replica_id=config.replica_id, policy=config.segment_policy,
                   redactor=Redactor(policy), durable=config.durability == "fsync",
                   lock_timeout=config.lock_timeout_seconds, max_record_bytes=config.max_record_bytes,
                   clock=clock, cold=cold)

    def close(self) -> None:
        self.index.close()
        self.head_file.close()

    def _open_index(self) -> LogIndex:
        """The index, rebuilt from nothing when its file is damaged (it is derived from the segments)."""
        path = self.root / "index.sqlite"
        try:
            return LogIndex(path)
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
        with self.lock.held():
            remove_index_files(path)
            return LogIndex(path)

    def _check_damage(self) -> None:
        """Refuse a write to a log whose acknowledged events are missing or damaged: a write would reuse their
        seqs or chain onto a line that is not the acknowledged one."""
        if self.damage is not None:
            raise self.damage
        if self.index.read_only:
            raise LakeError(f"the lake at {self.root.parent} cannot be written here: its folder is read-only or its "
                            "disk is full")

    # -- writing -------------------------------------------------------------------------------------------------

    def append(self, records: Iterable[ExchangeRecord | dict[str, Any]], *,
               redactor: Redactor | None = None) -> AppendResult:
        """Append records as one durable batch; returns after the fsync.

        `redactor` replaces the log's own for this call (a dataset's additions merged into the lake's policy).
        Raises InputError (nothing written) for any invalid record, IntegrityError when an exchange id already in
        the log carries different content, LockBusyError when another writer holds the lock past the timeout.
        """
        with self.lock.held():
            self._refresh()
            self._check_damage()
            result = self._append_locked(records, redactor or self.redactor)
            if self._should_seal():
                result = msgspec.structs.replace(result, sealed=(*result.sealed, self._seal_locked()))
        return result

    def append_events(self, events: Iterable[Event]) -> int:
        """Append events recorded elsewhere (another replica, a resolution) keeping their identity; returns count.

        Events already present with the same digest are skipped; the same id with another digest is an
        IntegrityError and nothing is written.
        """
        with self.lock.held():
            self._refresh()
            self._check_damage()
            written = 0
            with self._group_commit():
                iterator = iter(events)
                while True:
                    # Chunks as in append: up to CHUNK events or CHUNK_BYTES of encoded bodies.
                    chunk: list[tuple[Event, bytes]] = []
                    size = 0
                    for event in iterator:
                        body_json = canonical_json(event.body)
                        chunk.append((event, body_json))
                        size += len(body_json)
                        if len(chunk) >= CHUNK or size >= CHUNK_BYTES:
                            break
                    if not chunk:
                        break
                    written += self._write_foreign(chunk)
                    self._seal_within_call()
            if self._should_seal():
                self._seal_locked()
        return written

    def seal(self) -> str | None:
        """Seal the active segment now; returns its label, or None when it is empty."""
        with self.lock.held():
            self._refresh()
            self._check_damage()
            if self._tail.active is None or self._tail.active_size == 0:
                return None
            return self._seal_locked()

    @contextmanager
    def _group_commit(self) -> Iterator[None]:
        """One durable batch under the lock: fsync and index commit at the end; on any error the segment is cut
        back to where the batch began, segments the batch sealed or began are undone and its index rows are
        rolled back, so nothing of it remains.

        `_seal_within_call` notes in `_sealed_in_call` what it seals: (the segment's active path, its sealed path,
        its seal file).
        """
        tail = self._tail
        start = (tail.next_seq, tail.last_hash, tail.active_path, tail.active_size)
        self._sealed_in_call = []
        self.index.begin()
        try:
            yield
            self._sync()
            self.index.commit()
        except BaseException:
            self._rollback(*start)
            raise
        finally:
            self._sealed_in_call = []
        # After the batch is durable, so the head on disk is never ahead of the log; outside the rollback,
        # since the batch is acknowledged by now.
        if tail.next_seq != start[0]:
            self.head_file.write(Head(tail.next_seq - 1, tail.last_hash))

    def _seal_within_call(self) -> str | None:
        """Seal the active segment between two chunks of one call when the policy says so; its label, or None.

        A call of any size (`eventlog ingest` makes one of all its inputs) so keeps segments near the policy's
        size and count, over it by at most one chunk. The segment is made durable first, as a seal vouches for
        its bytes; `_rollback` undoes the seal if the call fails later.
        """
        if not self._should_seal():
            return None
        self._sync()
        tail = self._tail
        assert tail.active is not None and tail.active_path is not None
        first, last = tail.active.first_seq, tail.next_seq - 1
        # Noted before sealing, so that a seal failing halfway is undone too.
        self._sealed_in_call.append((tail.active_path, self.segments_dir / format_segment_name(first, last),
                                     self.seals_dir / format_seal_name(first, last)))
        return self._seal_locked()

    def _append_locked(self, records: Iterable[ExchangeRecord | dict[str, Any]], redactor: Redactor) -> AppendResult:
        tail = self._tail
        first_seq = tail.next_seq
        tally = Tally()
        sealed: list[str] = []
        recorded = format_utc(self.clock())
        with self._group_commit():
            iterator = iter(records)
            number = 0
            while True:
                # A chunk holds its records' encodings only, up to CHUNK records or CHUNK_BYTES of payload.
                # Earlier chunks of this call are in the index already (inside its transaction, which this
                # connection reads), so what a chunk must remember of itself is all that memory holds.
                batch: list[Prepared] = []
                size = 0
                last = False
                for item in iterator:
                    number += 1
                    p = prepare_item(item, redactor, max_bytes=self.max_record_bytes, number=number)
                    batch.append(p)
                    size += len(p.request_json) + len(p.response_json)
                    if len(batch) >= CHUNK or size >= CHUNK_BYTES:
                        break
                else:
                    last = True  # the call's last chunk: its write is also its fsync
                if not batch:
                    break
                # Within the chunk: ids written so far (with their content) and contents whose payload the log
                # holds, starting from what the index knows.
                seen: dict[str, str] = {}
                known = self.index.known_events([p.exchange_id for p in batch])
                payloads = self.index.known_contents(list({p.content_sha256 for p in batch}))
                fresh, kinds = tally.classify(batch, seen, known, payloads)
                self._write_prepared(fresh, bytes(kinds), recorded, sync=last)
                if (label := self._seal_within_call()) is not None:
                    sealed.append(label)
        first = first_seq if tail.next_seq > first_seq else None
        return AppendResult(observed=tally.observed, revisited=tally.revisited, already_present=tally.present,
                            first_seq=first, last_seq=tail.next_seq - 1 if first else None, redacted=tally.redacted,
                            hash_mismatches=tuple(tally.mismatches), hash_mismatch_count=tally.mismatch_count,
                            sealed=tuple(sealed))

    def _write_foreign(self, events: list[tuple[Event, bytes]]) -> int:
        """Write events with the canonical JSON of their bodies; returns how many were not in the log already."""
        tail = self._tail
        known = self.index.known_events([event.event_id for event, _ in events])
        lines: list[bytes] = []
        entries: list[IndexEntry] = []
        batch_ids: dict[str, str] = {}
        for event, body_json in events:
            prior = batch_ids.get(event.event_id) or (known[event.event_id][0] if event.event_id in known else None)
            if prior is not None:
                if prior != event.digest:
                    raise IntegrityError(f"event {event.event_id} is already in the log with digest {prior}, "
                                         f"not {event.digest}; refusing to merge it")
                continue
            batch_ids[event.event_id] = event.digest
            line = encode_event(event, seq=tail.next_seq, prev=tail.last_hash, body_json=body_json)
            entries.append(self._place(line, event.type, event.event_id, event.digest, event.content_sha256,
                                       _event_key(event), event.body.get("observed_at_utc"), event.recorded_at_utc))
            lines.append(line)
        self._write_lines(lines, entries)
        return len(lines)

    def _write_prepared(self, batch: list[Prepared], kinds: bytes, recorded: str, *, sync: bool = False) -> None:
        """Write observations of prepared records: `kinds` has a byte per record, 1 for observed, 0 for revisited.
        With `sync`, the segment is made durable too."""
        records = extensions.records
        if records is None:
            lines: list[bytes] = []
            entries: list[IndexEntry] = []
            for p, kind in zip(batch, kinds, strict=True):
                event_type: EventType = "observed" if kind else "revisited"
                line, digest = encode_observation(
                    event_type=event_type, event_id=p.exchange_id, envelope_head=p.head, envelope_tail=p.tail,
                    request_json=p.request_json, response_json=p.response_json, origin=self.replica_id,
                    recorded_at_utc=recorded, seq=self._tail.next_seq, prev=self._tail.last_hash)
                entries.append(self._place(line, event_type, p.exchange_id, digest, p.content_sha256, p.key,
                                           p.observed_at_utc, recorded))
                lines.append(line)
            self._write_lines(lines, entries, sync=sync)
            return
        if not batch:
            return
        tail = self._tail
        active = self._start_segment(recorded)
        prev = tail.last_hash
        data, rows, leaves, tail.last_hash = records.encode_chunk(
            batch, kinds, self.replica_id, recorded, tail.next_seq, prev, active.first_seq, tail.active_size)
        tail.next_seq += len(batch)
        tail.active_size += len(data)
        if tail.accumulator is not None:
            tail.accumulator.add_lines(prev=prev, leaves=leaves, observed=[p.observed_at_utc for p in batch],
                                       recorded=recorded)
        self._write(data, rows, sync=sync)

    def _start_segment(self, recorded: str) -> SegmentName:
        """The active segment, begun here if there is none; notes the first recorded time of its lines."""
        tail = self._tail
        if tail.active is None:
            tail.active = SegmentName(tail.next_seq, None)
            tail.active_path = self.segments_dir / format_segment_name(tail.next_seq)
            tail.active_size = 0
            tail.synced_size = -1
            tail.accumulator = SealAccumulator()
        if tail.active_first_recorded is None:
            tail.active_first_recorded = recorded
        return tail.active

    def _place(self, line: bytes, event_type: str, event_id: str, digest: str, content: str | None,
               key: str | None, observed: str | None, recorded: str) -> IndexEntry:
        """Advance the tail past one line about to be written; returns its index entry."""
        tail = self._tail
        active = self._start_segment(recorded)
        entry = IndexEntry(tail.next_seq, event_id, event_type, digest, content, key, observed,
                           active.first_seq, tail.active_size, len(line))
        tail.active_size += len(line) + 1
        prev, tail.last_hash = tail.last_hash, line_hash(line)
        if tail.accumulator is not None:
            tail.accumulator.add(prev=prev, line_hash=tail.last_hash, observed=observed, recorded=recorded)
        tail.next_seq += 1
        return entry

    def _write_lines(self, lines: list[bytes], entries: list[IndexEntry], *, sync: bool = False) -> None:
        """`_write` for lines encoded one at a time, with their index entries."""
        if lines:
            self._write(b"\n".join(lines) + b"\n", index_rows(entries), sync=sync)

    def _write(self, data: bytes, rows: Iterable[Sequence[object]], *, sync: bool = False) -> None:
        """Write whole lines to the active segment, and with `sync` fsync it, on a thread of their own, while this
        one inserts their rows into the index and adds them to the seal's file hash. The system calls, each SQLite
        step and SHA-256 over more than 2 KiB all release the GIL, so on a second core the two overlap. The thread
        ends before this returns: none outlives a call, and a process that forks between calls leaves its child
        no write in flight and no thread to wait for."""
        tail = self._tail
        fsync = sync and self.durable
        if len(data) < THREADED_WRITE_BYTES:
            self._write_data(data, fsync)
        else:
            self._writing = _Background(self._write_data, data, fsync)
        try:
            self.index.add_rows(rows)
            if tail.accumulator is not None:
                tail.accumulator.add_bytes(data)
        finally:
            self._settle_write()
        if sync:
            tail.synced_size = tail.active_size

    def _settle_write(self) -> None:
        """Wait for the write in flight, if any, and raise its error."""
        writing = self._await_write()
        if writing is not None:
            writing.raise_error()

    def _await_write(self) -> _Background | None:
        """Wait for the write in flight, if any, and return it. Nothing may touch the segment before it ends: a
        rollback that truncated first would have the write land after the cut."""
        writing = self._writing
        if writing is not None:
            writing.wait()  # an interrupt here leaves `_writing` set, for the rollback to wait on
            self._writing = None
        return writing

    def _write_data(self, data: bytes, fsync: bool) -> None:
        """Append whole lines, each with its newline, to the active segment; with `fsync`, make them durable."""
        path = self._tail.active_path
        assert path is not None
        created = not path.exists()
        with named(path), open(path, "ab") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        if created:
            fsync_dir(self.segments_dir)

    def _sync(self) -> None:
        """Make the active segment durable, unless its last write did."""
        tail = self._tail
        path = tail.active_path
        if self.durable and path is not None and tail.synced_size != tail.active_size and path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        tail.synced_size = tail.active_size
        tail.fingerprint = self._fingerprint()

    def _rollback(self, next_seq: int, last_hash: str, active_path: Path | None, active_size: int) -> None:
        """Undo a failed call: drop its index rows, remove the seals it wrote and the segments it began, give
        the segment that was active at its start back its name, and cut that one back to its length then."""
        self._await_write()  # set when the call was interrupted while waiting for it
        self.index.rollback()
        current = self._tail.active_path
        if current is not None and current != active_path:
            current.unlink(missing_ok=True)  # begun by this call
        for was_active, segment, seal in reversed(self._sealed_in_call):
            seal.unlink(missing_ok=True)
            if not segment.exists():
                continue  # the seal failed before its rename
            if was_active == active_path:
                os.replace(segment, was_active)
            else:
                segment.unlink()
        if self._sealed_in_call:
            fsync_dir(self.seals_dir)
            fsync_dir(self.segments_dir)
        if active_path is not None and active_path.exists():
            truncate_to(active_path, active_size)
        self._tail = _Tail()
        self._load_tail()
        if (self._tail.next_seq, self._tail.last_hash) != (next_seq, last_hash):
            raise EventLogError("the log's tail changed while a failed append was rolled back")

    def _should_seal(self) -> bool:
        tail, policy = self._tail, self.policy
        if tail.active is None or tail.active_size == 0:
            return False
        count = tail.next_seq - tail.active.first_seq
        if policy.max_bytes and tail.active_size >= policy.max_bytes:
            return True
        if policy.max_events and count >= policy.max_events:
            return True
        if policy.max_age_seconds and tail.active_first_recorded is not None:
            age = (self.clock() - parse_utc(tail.active_first_recorded)).total_seconds()
            return age >= policy.max_age_seconds
        return False

    def _seal_locked(self) -> str:
        tail = self._tail
        assert tail.active is not None and tail.active_path is not None
        last_seq = tail.next_seq - 1
        sealed_path = self.segments_dir / format_segment_name(tail.active.first_seq, last_seq)
        accumulator = tail.accumulator if tail.accumulator and tail.accumulator.size == tail.active_size else None
        os.replace(tail.active_path, sealed_path)
        fsync_dir(self.segments_dir)
        label = self._write_seal(SegmentName(tail.active.first_seq, last_seq), sealed_path, accumulator)
        tail.active = tail.active_path = tail.active_first_recorded = tail.accumulator = None
        tail.active_size = 0
        tail.fingerprint = self._fingerprint()
        return label

    def _write_seal(self, name: SegmentName, path: Path, accumulator: SealAccumulator | None = None) -> str:
        assert name.last_seq is not None
        previous = self._previous_seal(name.first_seq)
        sealed_at = format_utc(self.clock())
        seal = (accumulator.seal(name, prev_seal_sha256=previous, sealed_at_utc=sealed_at) if accumulator
                else compute_seal(path, name, prev_seal_sha256=previous, sealed_at_utc=sealed_at))
        write_atomic(self.seals_dir / format_seal_name(name.first_seq, name.last_seq), seal.to_bytes())
        return name.label

    def _previous_seal(self, first_seq: int) -> str:
        """Hash of the seal file just before `first_seq` (the seal chain's link), GENESIS for the first."""
        path = self._newest_seal_path(below=first_seq)
        return GENESIS if path is None else seal_hash(path.read_bytes())

    def _newest_seal_path(self, *, below: int | None = None) -> Path | None:
        """The seal file with the highest last seq (below `below`, when given)."""
        best: tuple[int, Path] | None = None
        for entry in os.scandir(self.seals_dir):
            parsed = parse_seal_name(entry.name)
            if (parsed is not None and (below is None or parsed[1] < below)
                    and (best is None or parsed[1] > best[0])):
                best = (parsed[1], Path(entry.path))
        return None if best is None else best[1]

    # -- state and recovery --------------------------------------------------------------------------------------

    def _fingerprint(self) -> tuple[Any, ...]:
        names = sorted(entry.name for entry in os.scandir(self.segments_dir))
        active = self._tail.active_path
        size = active.stat().st_size if active is not None and active.exists() else -1
        return (tuple(names), size)

    def _refresh(self) -> None:
        """Reload the tail if another process wrote since this one last looked."""
        if self._fingerprint() != self._tail.fingerprint:
            self._recover()

    def _recover(self, *, write: bool = True) -> None:
        """Cut a torn tail, seal renamed-but-unsealed segments, bring the index up to date, and note in `damage`
        acknowledged events that are missing or damaged (those are reported, never cut). Under the lock; with
        `write` False (a read-only lake) it only reads."""
        head_path = self.root / HEAD_NAME
        damage: IntegrityError | None = None
        try:
            head = read_head(head_path)
        except IntegrityError as exc:
            head, damage = None, exc
        for name, path in list_segments(self.segments_dir):
            label = f"log/segments/{path.name}"
            if path.is_dir():
                damage = damage or IntegrityError(f"{label} is a folder where a segment file belongs")
                continue
            if name.active:
                length = complete_length(path)
                if length < path.stat().st_size:
                    held = _last_complete_seq(path, name, label)
                    if head is not None and head.seq > held:
                        # The torn part holds an acknowledged event: a lost newline or cut line, not a torn write.
                        damage = damage or IntegrityError(
                            f"{label} ends in an incomplete line after seq {held}, but {head_path.name} records "
                            f"seq {head.seq} as acknowledged: acknowledged events are damaged or missing; restore "
                            "the segment from a backup")
                    elif write:
                        truncate_to(path, length)
            elif write and not (self.seals_dir / format_seal_name(name.first_seq, name.last_seq or 0)).exists():
                self._write_seal(name, path)
        self._tail = _Tail()
        try:
            self._load_tail()
        except IntegrityError as exc:
            self._tail = _Tail()
            damage = damage or exc
        tail = self._tail
        last = tail.next_seq - 1
        if head is not None and damage is None:
            if head.seq > last:
                where = "the active segment" if tail.active is not None else "the newest sealed segment"
                damage = IntegrityError(
                    f"log/{HEAD_NAME} records seq {head.seq} as acknowledged, but the log ends at seq {last} "
                    f"({where}): acknowledged events {last + 1}-{head.seq} are missing; restore them from a backup "
                    "(no new event is written until then, so their seqs are never reused)")
            elif head.seq == last and head.line_hash != tail.last_hash:
                damage = IntegrityError(
                    f"the line of seq {last} is not the one acknowledged (its hash differs from log/{HEAD_NAME}); "
                    "the log was altered or replaced")
        self.damage = damage
        if write and damage is None:
            if head is None or head.seq != last:
                # A lake from before the head, or complete lines of a killed call that this open adopts.
                self.head_file.write(Head(last, tail.last_hash), durable=True)
            try:
                self._index_catch_up()
            except sqlite3.DatabaseError as exc:
                if not is_damaged(exc):
                    raise
                self.index.close()
                remove_index_files(self.index.path)
                self.index = LogIndex(self.index.path)
                self._index_catch_up()
        self._tail.fingerprint = self._fingerprint()

    def _index_catch_up(self) -> None:
        indexed = self.index.last_seq()
        if indexed >= self._tail.next_seq:
            self.index.reset()
            indexed = 0
        if indexed < self._tail.next_seq - 1:
            self._index_from(indexed)

    def _load_tail(self) -> None:
        tail = self._tail
        segments = list_segments(self.segments_dir)
        last_sealed = self._last_seal()
        if last_sealed is not None:
            tail.next_seq, tail.last_hash = last_sealed.last_seq + 1, last_sealed.last_line_hash
        for name, path in segments:
            if not name.active:
                continue
            label = f"log/segments/{path.name}"
            tail.active, tail.active_path = name, path
            tail.active_size = path.stat().st_size
            first = next(iter_lines(path), None)
            last = last_line(path)
            if first is not None and last is not None:
                tail.active_first_recorded = decode_at(first[1], label, "first line").recorded_at_utc
                event = decode_at(last, label, "last line")
                tail.next_seq, tail.last_hash = event.seq + 1, line_hash(last)
            else:
                tail.next_seq = name.first_seq
                if tail.active_size == 0:
                    tail.accumulator = SealAccumulator()

    def _last_seal(self) -> Seal | None:
        path = self._newest_seal_path()
        if path is None:
            return None
        try:
            return read_seal(path)[0]
        except (OSError, IntegrityError) as exc:
            raise IntegrityError(f"the newest seal log/seals/{path.name} cannot be read ({reason_of(exc)}); "
                                 "the log's tail is unknown") from None

    def _index_from(self, after_seq: int) -> None:
        self.index.begin()
        batch: list[IndexEntry] = []
        for segment, offset, raw, event in self.scan(after_seq=after_seq, committed_only=False):
            batch.append(IndexEntry(event.seq, event.event_id, event.type, event.digest, event.content_sha256,
                                    _event_key(event), event.body.get("observed_at_utc"), segment, offset,
                                    len(raw)))
            if len(batch) >= CHUNK:
                self.index.add(batch)
                batch = []
        self.index.add(batch)
        self.index.commit()

    def reindex(self) -> int:
        """Rebuild log/index.sqlite from the segments (a new file, so a damaged one goes); returns the number of
        events indexed. Raises IntegrityError naming the segment and line that cannot be read."""
        with self.lock.held():
            self.index.close()
            remove_index_files(self.index.path)
            self.index = LogIndex(self.index.path)
            self._recover()
            if self.damage is not None:
                raise self.damage
        return self.index.last_seq()

    @property
    def last_seq(self) -> int:
        return self._tail.next_seq - 1


class _Background:
    """One call run on a thread of its own: `wait` for it to end, then `raise_error` raises what it raised."""

    def __init__(self, target: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target, args), name="eventlog-write")
        self._thread.start()

    def _run(self, target: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            target(*args)
        except BaseException as error:  # handed to the waiting thread
            self._error = error

    def wait(self) -> None:
        self._thread.join()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _last_complete_seq(path: Path, name: SegmentName, label: str) -> int:
    """The seq of the last complete line of an active segment; the seq before it when it has none."""
    last = last_line(path)
    return name.first_seq - 1 if last is None else decode_at(last, label, "last line").seq


def _event_key(event: Event) -> str | None:
    """The index's natural-key entry of an observation (None for a resolution or a record without one)."""
    if event.type == "resolved":
        return None
    body = event.body
    return exchange_key(body["source_system"], body["entity_type"], body.get("natural_key"))
