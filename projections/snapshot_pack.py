"""The snapshot pack projection: a dataset's unique contents as the original tool's browsable folder.

A pack folder holds manifest.json (written by whoever registers the dataset, never by the projection),
index.jsonl and records/YYYY/YYYY-MM-DD/chunk-NNNN.ndjson. The rules, which docs/projections.md states in full:

- One line per unique content_sha256 of the dataset (its source_system and entity_type): the envelope of the
  content's first observation, the one with the smallest (observed_at_utc, exchange_id), with its request and
  response, as canonical JSON. It is filed under that observation's own date, and each date's lines are sorted
  by (observed_at_utc, content_sha256), 1,000 to a chunk. index.jsonl has one line per content in the same
  order, with the original tool's field names {"h", "k", "id", "t", "f"}.
- Nothing in a pack depends on the order in which a replica received events, nor on seq, origin or
  recorded_at_utc: replicas holding the same events write the same bytes.
- Incremental application reads the events after the checkpoint and rewrites only the dates they touch (in the
  common case, events newer than everything in the pack, it appends to the last chunk and to index.jsonl). A
  rebuild writes the same bytes from scratch, by construction: both produce the one layout the rules define.
- A rebuild takes each content's first observation from the log index (one pass over its table; records
  without a natural key are told apart by their lines), then reads each chosen line by position.
- Crash safety: the checkpoint is marked dirty (written atomically) before any file of the pack changes and
  clean with its new position after; a dirty checkpoint found on the next run makes it rebuild. Chunks and
  rewritten index files replace their predecessors by rename (a rebuild swaps whole staging folders in), so a
  reader never sees a partial chunk; index.jsonl is appended to in the common case.
"""

from __future__ import annotations

import heapq
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import msgspec

from eventlog.capture.manifest import DatasetManifest
from eventlog.durable import fsync_dir, named, write_atomic
from eventlog.errors import InputError, IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.log.reader import segment_sources
from eventlog.log.segments import SegmentName
from eventlog.log.writer import EventLog
from projections.log_source import IndexReader
from projections.pack_files import (
    CHUNK_LINES,
    INDEX_NAME,
    RECORDS,
    FileWriter,
    clean_staging,
    date_lines,
    date_tail,
    index_line,
    index_line_of_envelope,
    last_index_key,
    rewrite_index,
    sync_tree,
    write_date,
)

__all__ = ["PackCheckpoint", "PackResult", "project_pack", "read_pack_checkpoint"]

CHECKPOINT_FORMAT = 1

Mode = Literal["incremental", "rebuild"]
ProgressHook = Callable[[int], None]


class PackCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where a pack's projection stands: the log seq applied, for which replica's log, and whether it is clean."""

    format: int = CHECKPOINT_FORMAT
    dataset: str
    scope: tuple[str, str]
    replica: str
    position: int
    records: int
    dirty: bool = False


class PackResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one projection of a pack did. `reason` says why it was rebuilt (None: incremental)."""

    dataset: str
    folder: str
    mode: Mode
    reason: str | None
    position_before: int
    position: int
    events_read: int
    records: int
    records_added: int
    records_moved: int
    dates_rewritten: int


class _Candidate(NamedTuple):
    """An observation that may be a content's first: where its line is and what its pack line is filed under."""

    observed: str
    exchange_id: str
    content: str
    natural_key: str | None
    segment: int
    offset: int
    length: int
    observed_type: bool  # an observed event (it carries the payload), not a revisit

    @property
    def key(self) -> tuple[str, str]:
        """Order of lines in the pack: observed time, then content hash."""
        return (self.observed, self.content)

    @property
    def first(self) -> tuple[str, str]:
        """Order of a content's observations: the smallest is the one its line shows."""
        return (self.observed, self.exchange_id)


class _ProbeBody(msgspec.Struct, frozen=True):
    source_system: str = ""
    entity_type: str = ""
    content_sha256: str = ""
    observed_at_utc: str = ""
    exchange_id: str = ""
    natural_key: str | None = None


class _Probe(msgspec.Struct, frozen=True):
    type: str
    seq: int
    body: _ProbeBody


class _RawLine(msgspec.Struct, frozen=True):
    type: str
    body: msgspec.Raw


class _Payload(msgspec.Struct, frozen=True):
    request: msgspec.Raw = msgspec.Raw(b"null")
    response: msgspec.Raw = msgspec.Raw(b"null")


class _PayloadLine(msgspec.Struct, frozen=True):
    body: _Payload


_pack_order = attrgetter("observed", "content")  # _Candidate.key, as a C-level getter for sorting
_decode_probe = msgspec.json.Decoder(_Probe).decode
_decode_raw_line = msgspec.json.Decoder(_RawLine).decode
_decode_payload = msgspec.json.Decoder(_PayloadLine).decode


def read_pack_checkpoint(path: Path) -> PackCheckpoint | None:
    """The checkpoint at `path`, or None when there is none or it cannot be read (which makes a rebuild)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=PackCheckpoint)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class _LineReader:
    """Reads log lines by position, keeping segment files open; lines of evicted segments come from archives."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.handles: dict[int, BinaryIO] = {}
        self._list()

    def _list(self) -> None:
        self.sources: dict[int, tuple[SegmentName, Path | None]] = {
            name.first_seq: (name, path) for name, path in segment_sources(self.log.segments_dir, self.log.cold)}

    def read(self, segment: int, offset: int, length: int) -> bytes:
        handle = self.handles.get(segment)
        if handle is None:
            handle = self._open(segment)
            if handle is None:
                name, _ = self.sources[segment]
                assert self.log.cold is not None
                return self.log.cold.read_line(name, offset, length)
        return os.pread(handle.fileno(), length, offset)

    def _open(self, segment: int) -> BinaryIO | None:
        for attempt in range(2):
            if segment not in self.sources:
                self._list()
            path = self.sources[segment][1]
            if path is None:
                return None
            try:
                handle = open(path, "rb")  # noqa: SIM115 - kept open across calls, closed in close()
            except FileNotFoundError:  # sealed (renamed) or evicted since listing
                if attempt:
                    raise
                self._list()
                continue
            self.handles[segment] = handle
            return handle
        return None

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()


class _Projector:
    def __init__(self, log: EventLog, manifest: DatasetManifest, folder: Path, progress: ProgressHook | None) -> None:
        self.log = log
        self.manifest = manifest
        self.folder = folder
        self.scope = (manifest.source_system, manifest.entity_type)
        self.prefix = f"{manifest.source_system}|{manifest.entity_type}|"
        self.progress = progress
        self.reader = _LineReader(log)
        self.payload_at: dict[str, tuple[int, int, int]] = {}
        self.events_read = 0

    # -- reading the log ------------------------------------------------------------------------------------------

    def first_in_index(self, end: int) -> dict[str, _Candidate] | None:
        """The first observation of each content of the dataset up to seq `end`, from the log index (which
        holds every event's content, observed time, natural key and place); None when the index cannot answer
        (it is behind the log, or a name holds U+001F), so that the caller reads the log instead."""
        source, entity = self.scope
        if self.log.index.last_seq() < end or "\x1f" in source + entity:
            return None
        best: dict[str, _Candidate] = {}
        with IndexReader(self.log) as index:
            for content, observed, event_id, natural, segment, offset, length, kind in index.first_observations(
                    source, entity, up_to_seq=end):
                best[content] = _Candidate(observed, event_id, content, natural, segment, offset, length,
                                           kind == "observed")
            # Records without a natural key have no dataset in the index: their lines tell.
            for content, observed, event_id, segment, offset, length, kind in index.keyless_observations(
                    up_to_seq=end):
                held = best.get(content)
                if held is not None and (held.observed, held.exchange_id) <= (observed, event_id):
                    continue
                body = _decode_probe(self.reader.read(segment, offset, length)).body
                if body.source_system == source and body.entity_type == entity:
                    best[content] = _Candidate(observed, event_id, content, None, segment, offset, length,
                                               kind == "observed")
        self.events_read += end
        if self.progress is not None:
            self.progress(end)
        return best

    def scan(self, after_seq: int, end: int) -> dict[str, _Candidate]:
        """The first observation of each content among the dataset's events after `after_seq`, up to `end`."""
        best: dict[str, _Candidate] = {}
        source, entity = self.scope
        progress, read = self.progress, 0
        payload_at = self.payload_at
        for segment, offset, raw in self.log.lines(after_seq=after_seq):
            probe = _decode_probe(raw)
            if probe.seq <= after_seq:
                continue
            if probe.seq > end:
                break
            read += 1
            if progress is not None and not read % 10_000:
                progress(read)
            kind = probe.type
            body = probe.body
            if kind == "resolved" or body.source_system != source or body.entity_type != entity:
                continue
            content = body.content_sha256
            observed = kind == "observed"
            if observed and content not in payload_at:
                payload_at[content] = (segment, offset, len(raw))
            held = best.get(content)
            if held is None or (body.observed_at_utc, body.exchange_id) < (held[0], held[1]):
                best[content] = _Candidate(body.observed_at_utc, body.exchange_id, content, body.natural_key,
                                           segment, offset, len(raw), observed)
        if progress is not None:
            progress(read)
        self.events_read += read
        return best

    def prior(self, contents: Iterable[str], position: int) -> dict[str, _Candidate]:
        """The first observation of each content among the events up to `position`, from the log index."""
        found: dict[str, _Candidate] = {}
        with IndexReader(self.log) as index:
            for content, observed, event_id, segment, offset, length, kind in index.observations_up_to(
                    contents, seq=position):
                held = found.get(content)
                if held is None or (observed, event_id) < held.first:
                    found[content] = _Candidate(observed, event_id, content, None, segment, offset, length,
                                                kind == "observed")
        return found

    def envelopes(self, candidates: Iterable[_Candidate]) -> Iterator[tuple[tuple[str, str], bytes]]:
        """(pack order key, envelope) of each candidate; a hot segment's lines are read with one pread each."""
        handles, read, envelope = self.reader.handles, os.pread, self.envelope
        for candidate in candidates:
            handle = handles.get(candidate.segment)
            if candidate.observed_type and handle is not None:
                raw = read(handle.fileno(), candidate.length, candidate.offset)
                end = raw.rfind(b',"digest":"')
                if end > 0 and raw.startswith(b'{"body":'):  # see `envelope`
                    yield (candidate.observed, candidate.content), raw[8:end]
                    continue
            yield (candidate.observed, candidate.content), envelope(candidate)

    def envelope(self, candidate: _Candidate) -> bytes:
        """The canonical JSON of the envelope of an observation, with its content's request and response."""
        raw = self.reader.read(candidate.segment, candidate.offset, candidate.length)
        if candidate.observed_type:
            # A line is canonical JSON of {body, digest, event_id, origin, prev, recorded_at_utc, seq, type}: the
            # body is its first member, and the last top-level `,"digest":"` ends it (what follows it holds only
            # hex digits, uuids, times and a number, so the text cannot occur there again).
            end = raw.rfind(b',"digest":"')
            if raw.startswith(b'{"body":') and end > 0:
                return raw[8:end]
        line = _decode_raw_line(raw)
        if line.type == "observed":
            return bytes(line.body)
        where = self.payload_at.get(candidate.content)
        if where is None:
            entry = self.log.index.first_payload(candidate.content)
            if entry is None:
                raise IntegrityError(f"content {candidate.content} has no observed event in the log to take its "
                                     "payload from")
            where = (entry.segment, entry.offset, entry.length)
        payload = _decode_payload(self.reader.read(*where)).body
        body = msgspec.json.decode(line.body)
        body["request"] = msgspec.json.decode(payload.request)
        body["response"] = msgspec.json.decode(payload.response)
        return canonical_json(body)

    def index_line(self, candidate: _Candidate, chunk: str) -> bytes:
        return index_line(content=candidate.content, prefix=self.prefix, natural_key=candidate.natural_key,
                          exchange_id=candidate.exchange_id, observed=candidate.observed, chunk=chunk)

def project_pack(log: EventLog, manifest: DatasetManifest, folder: Path, *, checkpoint: Path | None,
                 replica: str, rebuild: bool = False, progress: ProgressHook | None = None) -> PackResult:
    """Bring the pack in `folder` up to the log, incrementally from `checkpoint` or from scratch.

    Without a checkpoint path, or with `rebuild`, the pack's records/ and index.jsonl are rebuilt from the whole
    log; so is a pack whose checkpoint is missing, dirty, of another replica or dataset, or past the log's end.
    A folder holding records/ but no checkpoint is refused (InputError) unless `rebuild`: its records may not be
    in the log (import them first). Cost: incremental work follows the new events and the dates they touch.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clean_staging(folder)  # what a killed run left, before anything is compared or written
    projector = _Projector(log, manifest, folder, progress)
    try:
        state = read_pack_checkpoint(checkpoint) if checkpoint is not None else None
        reason = _rebuild_reason(state, manifest, replica, _log_end(log), rebuild=rebuild, checkpointed=checkpoint)
        if (reason is not None and not rebuild and checkpoint is not None and not checkpoint.exists()
                and ((folder / RECORDS).exists() or (folder / INDEX_NAME).exists())):
            raise InputError(f"holds a pack this lake did not build (no checkpoint at {checkpoint}); import it "
                             "first (eventlog import --manifest), then rebuild it (--rebuild)", source=str(folder))
        if reason is not None or state is None:
            return _rebuild(projector, checkpoint, replica, reason or "asked for")
        return _incremental(projector, checkpoint, state)
    finally:
        projector.reader.close()


def _rebuild_reason(state: PackCheckpoint | None, manifest: DatasetManifest, replica: str, last_seq: int, *,
                    rebuild: bool, checkpointed: Path | None) -> str | None:
    if rebuild:
        return "asked for"
    if checkpointed is None:
        return "no checkpoint is kept for this folder"
    if state is None:
        return "there is no checkpoint"
    if state.dirty:
        return "the last run stopped before it finished"
    if state.replica != replica:
        return f"the checkpoint is of another replica's log ({state.replica})"
    if state.scope != (manifest.source_system, manifest.entity_type) or state.dataset != manifest.dataset_name:
        return "the manifest names another dataset than the checkpoint"
    if state.position > last_seq:
        return f"the checkpoint ({state.position}) is past the end of the log ({last_seq})"
    return None


def _write_checkpoint(path: Path | None, state: PackCheckpoint) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, msgspec.json.encode(state) + b"\n")


def _rebuild(projector: _Projector, checkpoint: Path | None, replica: str, reason: str) -> PackResult:
    folder, manifest = projector.folder, projector.manifest
    position = _log_end(projector.log)
    state = PackCheckpoint(dataset=manifest.dataset_name, scope=projector.scope, replica=replica, position=position,
                           records=0, dirty=True)
    _write_checkpoint(checkpoint, state)
    best = projector.first_in_index(position)
    if best is None:
        best = projector.scan(0, position)
    ordered = sorted(best.values(), key=_pack_order)
    staging = folder / ".records.rebuild"
    index_stage = folder / f".{INDEX_NAME}.rebuild"
    # An error of the index's own writes names it, as the writer's name their chunks.
    with named(index_stage), open(index_stage, "wb") as index, FileWriter() as writer:
        for date, group in _by_date(ordered):
            placed = write_date(staging, date, projector.envelopes(group), staged=True, writer=writer)
            index.write(b"".join(projector.index_line(candidate, chunk)
                                 for candidate, (_, chunk) in zip(group, placed, strict=True)))
        index.flush()
        os.fsync(index.fileno())
    staging.mkdir(exist_ok=True)
    sync_tree(staging)
    old = folder / ".records.old"
    if (folder / RECORDS).exists():
        (folder / RECORDS).rename(old)
    staging.rename(folder / RECORDS)
    os.replace(index_stage, folder / INDEX_NAME)
    fsync_dir(folder)
    if old.exists():
        shutil.rmtree(old)
    _write_checkpoint(checkpoint, msgspec.structs.replace(state, records=len(ordered), dirty=False))
    return PackResult(dataset=manifest.dataset_name, folder=str(folder), mode="rebuild", reason=reason,
                      position_before=0, position=position, events_read=projector.events_read,
                      records=len(ordered), records_added=len(ordered), records_moved=0,
                      dates_rewritten=len({c.observed[:10] for c in ordered}))


def _log_end(log: EventLog) -> int:
    """The last acknowledged seq, as far as this process knows; a run projects the events up to it."""
    return max(log.last_seq, log.index.committed_last_seq())


def _by_date(ordered: list[_Candidate]) -> Iterator[tuple[str, list[_Candidate]]]:
    start = 0
    while start < len(ordered):
        date = ordered[start].observed[:10]
        end = start
        while end < len(ordered) and ordered[end].observed[:10] == date:
            end += 1
        yield date, ordered[start:end]
        start = end


def _incremental(projector: _Projector, checkpoint: Path | None, state: PackCheckpoint) -> PackResult:
    folder, manifest = projector.folder, projector.manifest
    position = _log_end(projector.log)
    fresh = projector.scan(state.position, position)
    prior = projector.prior(fresh, state.position) if fresh else {}
    inserts: list[_Candidate] = []
    removals: dict[str, _Candidate] = {}
    for content, candidate in fresh.items():
        held = prior.get(content)
        if held is None or candidate.first < held.first:
            inserts.append(candidate)
            if held is not None:
                removals[content] = held
    result = dict(dataset=manifest.dataset_name, folder=str(folder), mode="incremental", reason=None,
                  position_before=state.position, position=position, events_read=projector.events_read)
    if not inserts:
        _write_checkpoint(checkpoint, msgspec.structs.replace(state, position=position))
        return PackResult(**result, records=state.records, records_added=0, records_moved=0,  # type: ignore[arg-type]
                          dates_rewritten=0)
    _write_checkpoint(checkpoint, msgspec.structs.replace(state, dirty=True))
    inserts.sort(key=_pack_order)
    removed_dates: dict[str, set[str]] = {}
    for held in removals.values():
        removed_dates.setdefault(held.observed[:10], set()).add(held.content)
    records_dir = folder / RECORDS
    index_path = folder / INDEX_NAME
    last_index = last_index_key(index_path)
    appended: list[bytes] = []
    rewritten: dict[str, list[bytes]] = {}
    grouped = dict(_by_date(inserts))
    for date in sorted(set(grouped) | set(removed_dates)):
        group = grouped.get(date, [])
        date_dir = records_dir / date[:4] / date
        tail = date_tail(date_dir)
        if date not in removed_dates and (tail is None or group[0].key > tail[3]):
            number, head, count = (tail[0], tail[1], tail[2]) if tail is not None else (1, b"", 0)
            if count == CHUNK_LINES:
                number, head, count = number + 1, b"", 0
            placed = write_date(records_dir, date, projector.envelopes(group),
                                          first_chunk=number, head=head, head_lines=count)
            appended.extend(projector.index_line(c, chunk) for c, (_, chunk) in zip(group, placed, strict=True))
            continue
        rewritten[date] = _rewrite_date(projector, records_dir, date, group, removed_dates.get(date, set()))
    if not rewritten and (last_index is None or inserts[0].key > last_index):
        with open(index_path, "ab") as index:
            index.write(b"".join(appended))
            index.flush()
            os.fsync(index.fileno())
    else:
        rewrite_index(index_path, appended, rewritten, set(removals))
    records = state.records + len(inserts) - len(removals)
    _write_checkpoint(checkpoint, msgspec.structs.replace(state, position=position, records=records, dirty=False))
    return PackResult(**result, records=records, records_added=len(inserts) - len(removals),  # type: ignore[arg-type]
                      records_moved=len(removals), dates_rewritten=len(rewritten))


def _rewrite_date(projector: _Projector, records_dir: Path, date: str, group: list[_Candidate],
                  removed: set[str]) -> list[bytes]:
    """Write a date's chunks anew into a staging folder and swap it in; returns the date's index lines."""
    date_dir = records_dir / date[:4] / date
    staging_root = records_dir / date[:4] / f".{date}.rewrite"
    if staging_root.exists():
        shutil.rmtree(staging_root)
    kept = ((key, line) for key, line in date_lines(date_dir) if key[1] not in removed)
    added = projector.envelopes(group)
    merged = heapq.merge(kept, added, key=lambda item: item[0])
    by_content = {c.content: c for c in group}
    lines: list[bytes] = []
    index_lines: list[bytes] = []

    def tagged() -> Iterator[tuple[tuple[str, str], bytes]]:
        for key, envelope in merged:
            lines.append(envelope)
            yield key, envelope

    # Staged under records/YYYY/.<date>.rewrite/YYYY/<date>/, the layout write_date makes, then swapped in.
    placed = write_date(staging_root, date, tagged(), staged=True)
    sync_tree(staging_root)
    for envelope, (key, chunk) in zip(lines, placed, strict=True):
        candidate = by_content.get(key[1])
        if candidate is None:
            index_lines.append(index_line_of_envelope(envelope, prefix=projector.prefix, chunk=chunk))
        else:
            index_lines.append(projector.index_line(candidate, chunk))
    old = records_dir / date[:4] / f".{date}.old"
    if date_dir.exists():
        date_dir.rename(old)
    if placed:
        (staging_root / date[:4] / date).rename(date_dir)
    fsync_dir(date_dir.parent)
    shutil.rmtree(staging_root)
    if old.exists():
        shutil.rmtree(old)
    if not any(date_dir.parent.iterdir()):  # the year's last date moved away
        date_dir.parent.rmdir()
    return index_lines


