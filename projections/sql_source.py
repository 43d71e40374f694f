"""RawExchangeRecord as the projection of a database's event tables: the union that lakes syncing with it hold.

The same fold as a log's projection (`projections.raw_exchange`), reading ExchangeEvent in `event_seq` order and
asking the tables what it asks a log's index. The checkpoint names the replica `TABLES_REPLICA` and holds an
`event_seq`, so whichever lake syncs, the table is brought up incrementally from the events after it, never
rebuilt from one lake's log. `event_seq` order is commit order (appends serialise on AppendLock), so reading after
the checkpoint never skips a row that committed late.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import sqlalchemy as sa

from eventlog.errors import IntegrityError
from eventlog.format.events import Event
from eventlog.sql.dialects import in_values, select_in
from eventlog.sql.rowcodec import decode_event
from eventlog.sql.store import SqlEventStore
from projections.checkpoints import Checkpoint, format_digest, read_checkpoint, write_checkpoint
from projections.log_source import Observation, _observation, observation
from projections.pointintime import PointInTime
from projections.raw_exchange import (
    CHUNK,
    PROJECTION,
    TABLES_REPLICA,
    ReprojectResult,
    _digest_changed,
    _Fold,
    _fold_all,
    _incremental,
    _rebuild_asked_or_unbuilt,
    _result,
    _Statements,
    _Totals,
    hold_projection_lock,
)
from projections.rules import Settlement, resolution_candidates, resolution_scope_matches, resolution_winner
from projections.tables import attach

__all__ = ["TABLES_REPLICA", "TablesReader", "kept_by_tables", "read_tables", "reproject_tables"]



def read_tables(store: SqlEventStore, *, after: int = 0, batch: int = CHUNK) -> Iterator[Observation | Event]:
    """The events after `event_seq` `after` in event_seq order: Observations, and resolutions as Events, each with
    its event_seq as `seq`. Keyset pages of `batch` rows; no cursor stays open between them."""
    event, content = store.tables.event, store.tables.content
    joined = event.outerjoin(content, sa.and_(content.c.content_sha256 == event.c.content_sha256,
                                              event.c.type == "observed"))
    query = (sa.select(event, content.c.request, content.c.response).select_from(joined)
             .where(event.c.event_seq > sa.bindparam("after")).order_by(event.c.event_seq).limit(batch))
    position = after
    while True:
        with store.translated(), store.engine.connect() as conn:
            rows = conn.execute(query, {"after": position}).all()
        for row in rows:
            yield _item(row._mapping)
        if len(rows) < batch:
            return
        position = rows[-1].event_seq


def _item(row: Any) -> Observation | Event:
    seq = int(row["event_seq"])
    if row["type"] == "resolved" or row["body"] is not None or None in (
            row["exchange_id"], row["observed_at_utc"], row["content_sha256"], row["schema_version"],
            row["source_system"], row["entity_type"]):
        # Whatever the scalar columns do not carry as they are: the full event, as the log would give it.
        event = msgspec.structs.replace(decode_event(row), seq=seq)
        return event if event.type == "resolved" else observation(event)
    payload = None
    if row["type"] == "observed":
        if row["request"] is None:
            raise IntegrityError(f"observed event {row['event_id']} refers to content {row['content_sha256']} "
                                 "that ExchangeContent does not hold")
        payload = f'{{"request":{row["request"]},"response":{row["response"]}}}'.encode()
    return _observation(seq, row["recorded_at_utc"], row["observed_at_utc"], row["content_sha256"],
                        row["exchange_id"], row["exchange_type"], int(row["schema_version"]), row["source_system"],
                        row["entity_type"], row["natural_key"], payload)


class TablesReader:
    """The fold's look-ups (`projections.log_source.EventSource`) answered by the event tables."""

    def __init__(self, store: SqlEventStore) -> None:
        self.store = store
        event, content = store.tables.event, store.tables.content
        name = store.dialect_name
        observation_types = event.c.type != "resolved"
        self._first = (sa.select(event.c.content_sha256, sa.func.min(event.c.event_seq).label("first"))
                       .where(in_values(event.c.content_sha256, "hashes", name), observation_types)
                       .group_by(event.c.content_sha256))
        self._first_by = (sa.select(event.c.content_sha256, sa.func.min(event.c.event_seq).label("first"))
                          .where(in_values(event.c.content_sha256, "hashes", name), observation_types,
                                 event.c.observed_at_utc <= sa.bindparam("observed_by"))
                          .group_by(event.c.content_sha256))
        joined = event.outerjoin(content, sa.and_(content.c.content_sha256 == event.c.content_sha256,
                                                  event.c.type == "observed"))
        full = sa.select(event, content.c.request, content.c.response).select_from(joined)
        self._of_content = full.where(event.c.content_sha256 == sa.bindparam("content"), observation_types,
                                      event.c.event_seq < sa.bindparam("before")).order_by(event.c.event_seq)
        self._of_key = full.where(event.c.source_system == sa.bindparam("source"),
                                  event.c.entity_type == sa.bindparam("entity"),
                                  event.c.natural_key == sa.bindparam("natural"), observation_types,
                                  event.c.event_seq <= sa.bindparam("upto")).order_by(event.c.event_seq)
        # A resolution has no content hash: the index on content_sha256 finds the few resolutions among all the
        # events, where `type` alone, which no index covers, would read the whole table on every run.
        self._resolved = (full.where(event.c.content_sha256.is_(None), event.c.type == "resolved")
                          .order_by(event.c.event_seq))
        self._payload = sa.select(content.c.request, content.c.response).where(
            content.c.content_sha256 == sa.bindparam("content"))
        self._resolutions: list[Event] | None = None

    def _rows(self, query: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
        with self.store.translated(), self.store.engine.connect() as conn:
            return [row._mapping for row in conn.execute(query, params)]

    def first_seqs(self, hashes: Iterable[str], *, observed_by: str | None) -> dict[str, int]:
        asked = sorted(set(hashes))
        query = self._first if observed_by is None else self._first_by
        with self.store.translated(), self.store.engine.connect() as conn:
            if observed_by is not None:
                query = query.params(observed_by=observed_by)
            return {row.content_sha256: int(row.first) for row in select_in(conn, query, "hashes", asked)}

    def observations_of(self, content: str, *, before_seq: int) -> list[Event]:
        return [_event(row) for row in self._rows(self._of_content, {"content": content, "before": before_seq})]

    def payload(self, content: str) -> bytes:
        rows = self._rows(self._payload, {"content": content})
        if not rows:
            raise IntegrityError(f"content {content} is not in ExchangeContent")
        return f'{{"request":{rows[0]["request"]},"response":{rows[0]["response"]}}}'.encode()

    def settlements(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                    point: PointInTime | None) -> list[Settlement]:
        if self._resolutions is None:
            self._resolutions = [_event(row) for row in self._rows(self._resolved, {})]
        found: list[Settlement] = []
        for event in self._resolutions:
            if event.seq > upto or (point is not None and not point.admits(event)):
                continue
            winner = resolution_winner(event.body)
            if winner is not None and resolution_scope_matches(event.body, source_system, entity_type, natural_key):
                found.append(Settlement(event.event_id, winner, resolution_candidates(event.body)))
        return found

    def key_observations(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                         point: PointInTime | None) -> list[Observation]:
        if natural_key is None:
            return []
        rows = self._rows(self._of_key, {"source": source_system, "entity": entity_type, "natural": natural_key,
                                         "upto": upto})
        events = [_event(row) for row in rows]
        return [observation(event) for event in events if point is None or point.admits(event)]


def _event(row: Any) -> Event:
    return msgspec.structs.replace(decode_event(row), seq=int(row["event_seq"]))


def kept_by_tables(store: SqlEventStore) -> bool:
    """Whether the database's RawExchangeRecord is the projection of its event tables (sync keeps it so)."""
    tables = attach(store)
    with store.translated(), store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(tables.checkpoint.name, schema=tables.schema):
            return False
        checkpoint = read_checkpoint(conn, tables, PROJECTION)
    return checkpoint is not None and checkpoint.replica == TABLES_REPLICA and checkpoint.point is None


def reproject_tables(store: SqlEventStore, *, now: str, rebuild: bool = False, check: bool = False,
                     batch: int = CHUNK, progress: Callable[[int], None] | None = None) -> ReprojectResult:
    """Bring RawExchangeRecord up to the database's event tables: incrementally from its checkpoint, or from
    scratch when asked, when there is no checkpoint, or when the table was built from a lake's log (or, with
    `check`, when its rows do not add up to the checkpoint's state digest).

    One transaction per `batch` events holds rows, checkpoint and digest, under the projection lock. Raises
    DatabaseError, IntegrityError. Cost: the events after the checkpoint; memory: one batch.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    tables = attach(store)
    store.create_schema()
    statements = _Statements(tables, store.dialect_name)
    totals = _Totals()
    reader = TablesReader(store)
    before: int | None = None
    while True:
        with store.begin() as conn:
            hold_projection_lock(conn, store, now=now)
            checkpoint = read_checkpoint(conn, tables, PROJECTION)
            end = store.max_event_seq(conn=conn)
            if before is None:
                before = checkpoint.position if checkpoint is not None else 0
            reason = _rebuild_reason(checkpoint, rebuild=rebuild, end=end)
            if reason is None and check and checkpoint is not None:
                reason = _digest_changed(conn, tables, checkpoint)
            if reason is not None:
                conn.execute(tables.record.delete())
                fold = _Fold(conn, statements, reader, None, 0, totals, rebuild_of=end)
                position = _fold_all(fold, read_tables(store, batch=batch), totals, batch=batch, point=None,
                                     progress=progress)
                done = Checkpoint(projection=PROJECTION, replica=TABLES_REPLICA, position=position,
                                  state_digest=format_digest(fold.digest))
                write_checkpoint(conn, tables, done, now=now)
                return _result(totals, "rebuild", reason, None, before, done)
        assert checkpoint is not None
        finished = _incremental(read_tables(store, after=checkpoint.position, batch=batch), store, statements,
                                reader, checkpoint, totals, now=now, batch=batch, progress=progress)
        if finished is not None:
            return _result(totals, "incremental", None, None, before, finished)


def _rebuild_reason(checkpoint: Checkpoint | None, *, rebuild: bool, end: int) -> str | None:
    if (reason := _rebuild_asked_or_unbuilt(checkpoint, rebuild=rebuild)) is not None or checkpoint is None:
        return reason
    if checkpoint.replica != TABLES_REPLICA:
        return f"the table was built from the log of replica {checkpoint.replica}, not from the event tables"
    if checkpoint.position > end:
        return f"the checkpoint is at event_seq {checkpoint.position}, past the end of the tables ({end})"
    return None
