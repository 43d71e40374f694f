"""The RawExchangeRecord projection: one row per record key, folded from the log, incrementally or from scratch.

A row per (source_system, entity_type, natural_key), or per content for records without a natural key
(`eventlog.sql.schema.record_key`). The rules, which docs/projections.md states in full:

- The current version is the observation with the largest (observed_at_utc, content_sha256, exchange_id): the
  newest observed time wins, ties go to the larger content hash, so an older observation recorded late never
  takes over. A `resolved` event settles a conflict between its candidates (`projections.rules.settle`): only a
  version newer than every candidate takes over from its winner.
- Every column but event_seq is a function of the set of events applied, not of their order or of which replica
  recorded them: observation_count (observed + revisited events), version_count (distinct contents),
  first/last_observed_at_utc, created_at_utc / updated_at_utc (the earliest / latest observed_at_utc of the
  key's observations; recorded times are replica-local). event_seq is the log seq of the last event applied.
  No wall clock enters a row, so a rebuild reproduces every row exactly, and replicas holding the same events
  have the same state digest.

Events are applied in chunks: the chunk's rows are loaded (without payloads), folded, and written back with the
checkpoint and the state digest in the same transaction. A rebuild is the same fold from seq 0 into an emptied
table, so it equals incremental application by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from itertools import islice
from operator import attrgetter
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from eventlog.errors import InputError, IntegrityError
from eventlog.format.events import Event
from eventlog.log.writer import EventLog
from eventlog.sql.dialects import bulk_insert, in_values, select_in, upsert
from eventlog.sql.store import SqlEventStore
from projections.bloom import SeenDigests
from projections.checkpoints import (
    DIGEST_MODULUS,
    Checkpoint,
    add_digest,
    format_digest,
    parse_digest,
    read_checkpoint,
    row_digest,
    values_digest,
    write_checkpoint,
)
from projections.log_source import EventSource, IndexReader, Observation, observation, read_log
from projections.pointintime import PointInTime
from projections.rules import Settlement, rank, resolution_scope_matches, resolution_winner, settle
from projections.tables import ProjectionTables, attach

__all__ = ["CHUNK", "PROJECTION", "TABLES_REPLICA", "ReprojectResult", "hold_projection_lock", "reproject",
           "table_digest"]

PROJECTION = "RawExchangeRecord"
# The checkpoint's replica when the table is the projection of the database's event tables (kept by sync).
TABLES_REPLICA = "@tables"
LOCK_NAME = "projection:RawExchangeRecord"
CHUNK = 2000
PAGE_ROWS = 5000  # rows a digest check holds at once

Mode = Literal["incremental", "rebuild", "point-in-time"]


class ReprojectResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one reprojection did. `reason` says why the table was rebuilt from scratch (None: incremental)."""

    projection: str
    mode: Mode
    reason: str | None
    point_in_time: PointInTime | None
    position_before: int
    position: int
    events_read: int
    events_applied: int
    rows_inserted: int
    rows_updated: int
    resolutions_applied: int
    resolutions_ignored: int
    state_digest: str


@dataclass(slots=True)
class Row:
    """One RawExchangeRecord row without its payload, as the fold keeps it."""

    record_key: str
    exchange_id: str
    exchange_type: str
    source_system: str
    entity_type: str
    natural_key: str | None
    observed_at_utc: str
    content_sha256: str
    schema_version: int
    created_at_utc: str
    updated_at_utc: str
    first_observed_at_utc: str
    last_observed_at_utc: str
    observation_count: int
    version_count: int
    event_seq: int


ROW_COLUMNS = tuple(field.name for field in fields(Row))
# event_seq is this replica's own numbering and payload_json is bound by content_sha256: the digest leaves both
# out, so replicas holding the same events in another order agree on it.
DIGEST_COLUMNS = tuple(name for name in ROW_COLUMNS if name != "event_seq")


# The table's columns in its own order: the row's, with payload_json after content_sha256.
_PAYLOAD_AT = ROW_COLUMNS.index("content_sha256") + 1
RECORD_COLUMNS = (*ROW_COLUMNS[:_PAYLOAD_AT], "payload_json", *ROW_COLUMNS[_PAYLOAD_AT:])
_row_tuple = attrgetter(*ROW_COLUMNS)


# A row's digest input in one msgspec call: a Struct whose fields are DIGEST_COLUMNS in RFC 8785 key order (ASCII
# names sort alike by code point and by UTF-16 unit) encodes to the very bytes canonical_json writes for the dict,
# as long as every value is a str, an int or None, which is what the fold's rows hold.
_SORTED_DIGEST_COLUMNS = tuple(sorted(DIGEST_COLUMNS))
_DigestRow = msgspec.defstruct("_DigestRow", [(name, Any) for name in _SORTED_DIGEST_COLUMNS])
_digest_fields = attrgetter(*_SORTED_DIGEST_COLUMNS)
_encode_digest_row = msgspec.json.Encoder().encode
_SCALARS = frozenset({str, int, type(None)})


def _digest_of(row: Row) -> int:
    """`row_digest` of a row."""
    return _digest_of_sorted(_digest_fields(row))


def _digest_of_sorted(values: Sequence[Any]) -> int:
    """`row_digest` of a row's DIGEST_COLUMNS values, given in the order of their sorted names."""
    if set(map(type, values)) <= _SCALARS:
        try:
            return int.from_bytes(hashlib.sha256(_encode_digest_row(_DigestRow(*values))).digest(), "big")
        except UnicodeEncodeError:  # a lone surrogate: canonical_json names it
            pass
    return values_digest(dict(zip(_SORTED_DIGEST_COLUMNS, values, strict=True)))


class _Versions:
    """Whether an observation brings its key a content it had not had before (a new version).

    A content belongs to one key (its hash covers source, entity and natural key), so the question is whether an
    applied event before this one carried the content. The index answers it for any filter it can express
    (none, --at-seq, --as-of); under --known-at, whose recorded times the index lacks, the contents applied so far
    are remembered (memory: one hash per distinct content). A rebuild passes `seen`, a filter of the contents
    applied so far: a content it has certainly not met is new without asking the index.
    """

    def __init__(self, reader: EventSource, point: PointInTime | None, seen: SeenDigests | None) -> None:
        self._reader = reader
        self._as_of = point.as_of if point is not None else None
        self._applied: set[str] | None = set() if point is not None and point.known_at is not None else None
        self._seen = seen

    def new(self, observations: Sequence[Observation]) -> list[bool]:
        applied = self._applied
        if applied is not None:
            flags = []
            for item in observations:
                flags.append(item.content not in applied)
                applied.add(item.content)
            return flags
        asked = {item.content for item in observations}
        if self._seen is not None:
            # A content met before in this chunk or an earlier one is asked for; the first seq the index gives
            # for one met here first is that event's own.
            asked = set()
            for item in observations:
                if self._seen.meet(item.content):
                    asked.add(item.content)
        firsts = self._reader.first_seqs(asked, observed_by=self._as_of) if asked else {}
        return [firsts.get(item.content, item.seq) >= item.seq for item in observations]


class _Totals:
    def __init__(self) -> None:
        self.read = self.applied = self.inserted = self.updated = self.resolved = self.ignored = 0


class _Statements:
    """The statements one fold issues, built once per run."""

    def __init__(self, tables: ProjectionTables, dialect_name: str) -> None:
        record = tables.record
        self.tables = tables
        self.load = sa.select(*(record.c[name] for name in ROW_COLUMNS)).where(
            in_values(record.c.record_key, "keys", dialect_name))
        # executemany UPDATEs: the SET columns are the parameter keys other than b_key.
        self.update = record.update().where(record.c.record_key == sa.bindparam("b_key"))


class _Fold:
    """Applies chunks of events to RawExchangeRecord inside one transaction, keeping the state digest.

    `rebuild_of` is the number of events a rebuild will read at most, for a fold that starts from an emptied
    table: then only the rows of keys it has met before can be in the table, and only those are looked up.
    """

    def __init__(self, conn: sa.Connection, statements: _Statements, reader: EventSource,
                 point: PointInTime | None, digest: int, totals: _Totals, *, rebuild_of: int | None = None) -> None:
        self.conn = conn
        self.statements = statements
        self.reader = reader
        self.point = point
        self.digest = digest
        self.totals = totals
        self.keys_met = SeenDigests(rebuild_of) if rebuild_of is not None else None
        self.versions = _Versions(reader, point, SeenDigests(rebuild_of) if rebuild_of is not None else None)

    def apply(self, events: Sequence[Observation | Event]) -> None:
        """Fold `events` (in log order) into the table."""
        point = self.point
        upto = max(item.seq for item in events) if events else 0
        items: list[Observation | Event] = []
        observations: list[Observation] = []
        payloads: dict[str, bytes] = {}
        targets: dict[int, Observation | None] = {}
        for item in events:
            if isinstance(item, Event):
                if point is None or point.admits(item):
                    target = targets[item.seq] = self._winner(item)
                    if target is not None and target.payload is not None:
                        payloads.setdefault(target.content, target.payload)
                    items.append(item)
                continue
            if point is not None and not point.admits_at(seq=item.seq, recorded_at_utc=item.recorded,
                                                         observed_at_utc=item.observed):
                continue
            observations.append(item)
            items.append(item)
            if item.payload is not None:
                payloads.setdefault(item.content, item.payload)
        self.totals.applied += len(items)
        keys = {item.key for item in observations}
        keys.update(target.key for target in targets.values() if target is not None)
        if self.keys_met is not None:
            met = self.keys_met
            wanted = sorted(key for key in keys if met.meet(key))
        else:
            wanted = sorted(keys)
        rows, stored = self._load(wanted)
        changed: dict[str, Row] = {}
        stale: set[str] = set()
        # Whether an observation is a new version depends on the log alone, not on the fold: asked for in bulk.
        flags = iter(self.versions.new(observations))
        for entry in items:
            if isinstance(entry, Event):
                self._resolve(rows, entry, targets[entry.seq], changed)
            else:
                self._observe(rows, entry, next(flags), changed, stale)
        # Keys with resolutions: the current version is settled over the key's whole history up to here, so that
        # it does not depend on the order in which this replica learned the events (projections.rules).
        for key in sorted(changed):
            row = changed[key]
            if row.natural_key is None:
                continue
            settlements = self.reader.settlements(row.source_system, row.entity_type, row.natural_key, upto=upto,
                                                  point=point)
            if settlements:
                self._settle(row, settlements, upto, stale, payloads)
        self._write(changed, stored, stale, payloads)

    def _settle(self, row: Row, settlements: list[Settlement], upto: int, stale: set[str],
                payloads: dict[str, bytes]) -> None:
        best: dict[str, Observation] = {}
        for item in self.reader.key_observations(row.source_system, row.entity_type, row.natural_key, upto=upto,
                                                 point=self.point):
            known = best.get(item.content)
            if known is None or item.rank > known.rank:
                best[item.content] = item
            if item.payload is not None:
                payloads.setdefault(item.content, item.payload)
        winner = settle({content: item.rank for content, item in best.items()}, settlements)
        if winner is not None:
            _make_current(row, best[winner], stale)

    def _observe(self, rows: dict[str, Row], item: Observation, new: bool, changed: dict[str, Row],
                 stale: set[str]) -> None:
        row = rows.get(item.key)
        if row is None:
            rows[item.key] = changed[item.key] = Row(
                record_key=item.key, exchange_id=item.exchange_id, exchange_type=item.exchange_type,
                source_system=item.source, entity_type=item.entity, natural_key=item.natural,
                observed_at_utc=item.observed, content_sha256=item.content, schema_version=item.schema_version,
                created_at_utc=item.observed, updated_at_utc=item.observed, first_observed_at_utc=item.observed,
                last_observed_at_utc=item.observed, observation_count=1, version_count=1, event_seq=item.seq)
            stale.add(item.key)
            return
        row.observation_count += 1
        row.version_count += new
        row.first_observed_at_utc = min(row.first_observed_at_utc, item.observed)
        row.last_observed_at_utc = max(row.last_observed_at_utc, item.observed)
        row.created_at_utc = min(row.created_at_utc, item.observed)
        row.updated_at_utc = max(row.updated_at_utc, item.observed)
        row.event_seq = item.seq
        if item.rank > rank(row.observed_at_utc, row.content_sha256, row.exchange_id):
            _make_current(row, item, stale)
        changed[item.key] = row

    def _resolve(self, rows: dict[str, Row], event: Event, target: Observation | None,
                 changed: dict[str, Row]) -> None:
        """Note a resolution's key for settling; the rule itself runs once the chunk is applied."""
        row = rows.get(target.key) if target is not None else None
        if target is None or row is None:
            self.totals.ignored += 1
            return
        row.event_seq = event.seq
        changed[target.key] = row
        self.totals.resolved += 1

    def _winner(self, event: Event) -> Observation | None:
        """The best observation before it of the content a resolution chose, if it is of the resolution's key."""
        body = event.body
        winner = resolution_winner(body)
        if winner is None:
            return None
        best: Observation | None = None
        for candidate in self.reader.observations_of(winner, before_seq=event.seq):
            if self.point is not None and not self.point.admits(candidate):
                continue
            item = observation(candidate)
            if best is None or item.rank > best.rank:
                best = item
        if best is None or not resolution_scope_matches(body, best.source, best.entity, best.natural):
            return None
        return best

    def _load(self, keys: list[str]) -> tuple[dict[str, Row], dict[str, int]]:
        """Rows of `keys` present in the table, and the digest of each as stored."""
        rows: dict[str, Row] = {}
        digests: dict[str, int] = {}
        for found in select_in(self.conn, self.statements.load, "keys", keys):
            values = found._mapping
            row = Row(**{name: values[name] for name in ROW_COLUMNS})
            rows[row.record_key] = row
            digests[row.record_key] = row_digest(values, DIGEST_COLUMNS)
        return rows, digests

    def _write(self, changed: dict[str, Row], stored: dict[str, int], stale: set[str],
               payloads: dict[str, bytes]) -> None:
        updates: list[dict[str, Any]] = []
        summaries: list[dict[str, Any]] = []
        inserted = 0

        def encoded() -> Iterator[tuple[Any, ...]]:
            """New rows, encoded as the insert consumes them (PostgreSQL's COPY works meanwhile)."""
            nonlocal inserted
            for key, row in changed.items():
                values = _row_tuple(row)
                self.digest = add_digest(self.digest, _digest_of(row) - stored.get(key, 0))
                if key not in stored:
                    # A new row is always stale: its payload is written with it.
                    inserted += 1
                    yield (*values[:_PAYLOAD_AT], self._payload(row.content_sha256, payloads), *values[_PAYLOAD_AT:])
                    continue
                named = dict(zip(ROW_COLUMNS, values, strict=True))
                del named["record_key"]
                named["b_key"] = key
                if key in stale:
                    named["payload_json"] = self._payload(row.content_sha256, payloads)
                    updates.append(named)
                else:
                    summaries.append(named)

        bulk_insert(self.conn, self.statements.tables.record, RECORD_COLUMNS, encoded())
        for batch in (updates, summaries):
            if batch:
                self.conn.execute(self.statements.update, batch)
        self.totals.inserted += inserted
        self.totals.updated += len(updates) + len(summaries)

    def _payload(self, content: str, payloads: dict[str, bytes]) -> str:
        """payload_json of a content: the canonical JSON of {"request": ..., "response": ...}."""
        payload = payloads.get(content)
        return (payload if payload is not None else self.reader.payload(content)).decode()


def _make_current(row: Row, item: Observation, stale: set[str]) -> None:
    if item.content != row.content_sha256:
        stale.add(row.record_key)
    row.exchange_id, row.exchange_type, row.schema_version = item.exchange_id, item.exchange_type, item.schema_version
    row.observed_at_utc, row.content_sha256 = item.observed, item.content


def _chunks(events: Iterator[Observation | Event], size: int,
            point: PointInTime | None) -> Iterator[list[Observation | Event]]:
    """Chunks of `events`, stopping after --at-seq."""
    stop = point.at_seq if point is not None else None
    while chunk := list(islice(events, size)):
        if stop is not None and chunk[-1].seq > stop:
            chunk = [event for event in chunk if event.seq <= stop]
            if chunk:
                yield chunk
            return
        yield chunk


def hold_projection_lock(conn: sa.Connection, store: SqlEventStore, *, now: str) -> None:
    """Take the projection's lock until `conn`'s transaction ends; the first statement of every such transaction.

    A row of AppendLock named `projection:RawExchangeRecord`, upserted: reprojections (and verifications) of one
    database run one at a time, and each sees the checkpoint the previous one committed.
    """
    conn.execute(upsert(store.tables.append_lock, store.dialect_name, update=["updated_at_utc"]),
                 [{"name": LOCK_NAME, "updated_at_utc": now}])


def _rebuild_asked_or_unbuilt(checkpoint: Checkpoint | None, *, rebuild: bool) -> str | None:
    """Why a table must be rebuilt, whatever it is projected from: asked for, never built, or a point in time."""
    if rebuild:
        return "rebuild asked for"
    if checkpoint is None:
        return "no checkpoint: the projection was never built in this database"
    if checkpoint.point is not None:
        return f"the table held a point-in-time state ({checkpoint.point.describe()})"
    return None


def _rebuild_reason(checkpoint: Checkpoint | None, *, rebuild: bool, point: PointInTime | None, replica: str,
                    log_end: int) -> str | None:
    if point is not None:
        return f"point in time ({point.describe()})"
    if (reason := _rebuild_asked_or_unbuilt(checkpoint, rebuild=rebuild)) is not None or checkpoint is None:
        return reason
    if checkpoint.replica != replica:
        return f"the table was built from the log of replica {checkpoint.replica}, not this lake's {replica}"
    if checkpoint.position > log_end:
        raise IntegrityError(f"RawExchangeRecord was projected up to seq {checkpoint.position}, past the end of this "
                             f"log (seq {log_end}): acknowledged events are missing from the log (see `eventlog "
                             "verify`; `reproject --rebuild` projects what the log holds now)")
    return None


def _check_position(log: EventLog, checkpoint: Checkpoint) -> None:
    """Stop unless the log still holds the event the checkpoint ends at (readers after it check the chain)."""
    if checkpoint.position == 0 or (checkpoint.position <= log.last_seq
                                    and log.index.by_seq(checkpoint.position) is not None):
        return  # the index, checked against the lines on open and by verify, holds it (evicted or not)
    try:
        log.event_at(checkpoint.position)
    except IntegrityError as exc:
        raise IntegrityError(f"RawExchangeRecord was projected up to seq {checkpoint.position}, but {exc} (see "
                             "`eventlog verify`; `reproject --rebuild` projects what the log holds now)") from None


def _table_changed(conn: sa.Connection, tables: ProjectionTables, checkpoint: Checkpoint) -> str | None:
    """Why the table is not what its checkpoint says (a count of its rows), or None."""
    if checkpoint.rows is None:
        return None
    count = conn.execute(sa.select(sa.func.count()).select_from(tables.record)).scalar_one()
    if count == checkpoint.rows:
        return None
    return (f"RawExchangeRecord holds {count} rows, but its checkpoint says {checkpoint.rows}: it was emptied or "
            "changed outside the lake, so it was rebuilt from the log")


def _digest_changed(conn: sa.Connection, tables: ProjectionTables, checkpoint: Checkpoint) -> str | None:
    """Why the table's rows do not add up to its checkpoint's state digest, or None."""
    rows, digest = table_digest(conn, tables)
    if format_digest(digest) == checkpoint.state_digest:
        return None
    return (f"the {rows} rows of RawExchangeRecord do not add up to its checkpoint's state digest: a row was changed "
            "outside the lake, so it was rebuilt from the log")


def table_digest(conn: sa.Connection, tables: ProjectionTables) -> tuple[int, int]:
    """(rows, state digest) of RawExchangeRecord as stored, its digest columns streamed once (no payload read)."""
    record = tables.record
    query = sa.select(*(record.c[name] for name in _SORTED_DIGEST_COLUMNS)).execution_options(yield_per=PAGE_ROWS)
    rows = total = 0
    for row in conn.execute(query):
        rows += 1
        total += _digest_of_sorted(row)
    return rows, total % DIGEST_MODULUS


def reproject(log: EventLog, store: SqlEventStore, *, now: str, rebuild: bool = False, check: bool = False,
              point: PointInTime | None = None, batch: int = CHUNK,
              progress: Callable[[int], None] | None = None,
              expect: Callable[[int], None] | None = None) -> ReprojectResult:
    """Bring RawExchangeRecord up to the log: incrementally from its checkpoint, or from scratch.

    From scratch (DELETE, then replay in one transaction) when asked, for a point in time, when there is no
    checkpoint, or when the table holds another state (a point in time, another replica's log). Incrementally
    otherwise: one transaction per `batch` events holds the rows, the checkpoint and the digest. `now` stamps the
    checkpoint row only. `progress` gets the running count of events read, `expect` how many the run will read
    (for a progress bar's total). Raises DatabaseError, and IntegrityError for an event that cannot be projected.
    Cost: the events after the checkpoint; memory: one batch of events and the rows they touch. Every run compares
    the table's row count with its checkpoint's; `check` also reads every row's digest columns and compares their
    state digest (a row changed in place keeps the count), at the cost of one read of the table.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if log.damage is not None:
        raise log.damage
    tables = attach(store)
    store.create_schema()
    statements = _Statements(tables, store.dialect_name)
    totals = _Totals()
    replica = log.replica_id
    before: int | None = None
    with IndexReader(log) as reader:
        while True:
            with store.begin() as conn:
                hold_projection_lock(conn, store, now=now)
                checkpoint = read_checkpoint(conn, statements.tables, PROJECTION)
                log_end = max(log.last_seq, log.index.last_seq())
                reason = _rebuild_reason(checkpoint, rebuild=rebuild, point=point, replica=replica, log_end=log_end)
                if reason is None and checkpoint is not None:
                    _check_position(log, checkpoint)
                    reason = _table_changed(conn, statements.tables, checkpoint)
                    if reason is None and check:
                        reason = _digest_changed(conn, statements.tables, checkpoint)
                if before is None:
                    before = checkpoint.position if checkpoint is not None else 0
                    if expect is not None:
                        expect(log_end if reason is not None else max(0, log_end - before))
                if (checkpoint is not None and checkpoint.replica == TABLES_REPLICA and point is None
                        and not rebuild):
                    raise InputError("RawExchangeRecord in this database is the projection of its event tables, "
                                     "kept by `eventlog sync`; run `eventlog sync` to bring it up to date (or "
                                     "`eventlog reproject --rebuild` to replace it with this lake's log alone)")
                if reason is not None:
                    conn.execute(statements.tables.record.delete())
                    fold = _Fold(conn, statements, reader, point, 0, totals, rebuild_of=log_end)
                    inserted = totals.inserted
                    position = _fold_all(fold, read_log(log), totals, batch=batch, point=point, progress=progress)
                    if point is not None and point.at_seq is not None:
                        position = max(position, min(point.at_seq, log_end))
                    done = Checkpoint(projection=PROJECTION, replica=replica, position=position,
                                      state_digest=format_digest(fold.digest), point=point,
                                      rows=totals.inserted - inserted)
                    write_checkpoint(conn, statements.tables, done, now=now)
                    return _result(totals, "point-in-time" if point is not None else "rebuild", reason, point,
                                   before, done)
            assert checkpoint is not None
            finished = _incremental(read_log(log, after_seq=checkpoint.position), store, statements, reader,
                                    checkpoint, totals, now=now, batch=batch, progress=progress)
            if finished is not None:
                return _result(totals, "incremental", None, None, before, finished)


def _fold_all(fold: _Fold, events: Iterator[Observation | Event], totals: _Totals, *, batch: int,
              point: PointInTime | None, progress: Callable[[int], None] | None) -> int:
    """Fold `events` into the table of one transaction, a chunk at a time; returns the last seq folded (0 for none).

    The rebuild of a log's projection and of the event tables' both run it."""
    position = 0
    for chunk in _chunks(events, batch, point):
        fold.apply(chunk)
        position = chunk[-1].seq
        totals.read += len(chunk)
        if progress is not None:
            progress(totals.read)
    return position


def _incremental(events: Iterator[Observation | Event], store: SqlEventStore, statements: _Statements,
                 reader: EventSource, checkpoint: Checkpoint, totals: _Totals, *, now: str, batch: int,
                 progress: Callable[[int], None] | None) -> Checkpoint | None:
    """Apply `events` (those after `checkpoint`, from the log or the event tables), a transaction per batch; None
    when another run moved the checkpoint."""
    current = checkpoint
    for chunk in _chunks(events, batch, None):
        with store.begin() as conn:
            hold_projection_lock(conn, store, now=now)
            if read_checkpoint(conn, statements.tables, PROJECTION) != current:
                return None
            fold = _Fold(conn, statements, reader, None, parse_digest(current.state_digest), totals)
            inserted = totals.inserted
            fold.apply(chunk)
            rows = None if current.rows is None else current.rows + totals.inserted - inserted
            current = msgspec.structs.replace(current, position=chunk[-1].seq,
                                              state_digest=format_digest(fold.digest), rows=rows)
            write_checkpoint(conn, statements.tables, current, now=now)
        totals.read += len(chunk)
        if progress is not None:
            progress(totals.read)
    return current


def _result(totals: _Totals, mode: Mode, reason: str | None, point: PointInTime | None, before: int,
            checkpoint: Checkpoint) -> ReprojectResult:
    return ReprojectResult(
        projection=PROJECTION, mode=mode, reason=reason, point_in_time=point, position_before=before,
        position=checkpoint.position, events_read=totals.read, events_applied=totals.applied,
        rows_inserted=totals.inserted, rows_updated=totals.updated, resolutions_applied=totals.resolved,
        resolutions_ignored=totals.ignored, state_digest=checkpoint.state_digest)
