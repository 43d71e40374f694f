"""The two replicas a sync joins, as the engine reads them: the log's events and the database's, by event id.

`LogSide` and `SqlSide` give the same three things: the events after a position up to an end (in their own order),
which of a batch of event ids they hold (with the digest), and the full event for an id whose digest differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import sqlalchemy as sa

from eventlog.format.events import Event
from eventlog.log.writer import EventLog
from eventlog.sql.dialects import in_values, select_in
from eventlog.sql.rowcodec import decode_event
from eventlog.sql.store import SqlEventStore

__all__ = ["LogSide", "SqlSide", "chunks"]


def chunks(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    """`events` in lists of `size`."""
    while chunk := list(islice(events, size)):
        yield chunk


class LogSide:
    """A lake's log as one side of a sync."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def end(self) -> int:
        """The last acknowledged seq."""
        return self.log.index.committed_last_seq()

    def events(self, after: int, end: int) -> Iterator[Event]:
        """Events with after < seq <= end, in log order."""
        for event in self.log.events(after_seq=after):
            if event.seq > end:
                return
            yield event

    def digests(self, ids: Sequence[str]) -> dict[str, str]:
        """event id -> digest of those ids the log holds."""
        return {event_id: digest for event_id, (digest, _) in self.log.index.known_events(ids).items()}

    def get(self, event_id: str) -> Event:
        """The log's event with this id (which `digests` said it holds)."""
        entry = self.log.index.by_exchange_id(event_id)
        assert entry is not None
        return self.log.read_at(entry)


class SqlSide:
    """A database's event tables as one side of a sync; `exists` False reads as an empty database."""

    def __init__(self, store: SqlEventStore, *, exists: bool) -> None:
        self.store = store
        self.exists = exists
        event, content = store.tables.event, store.tables.content
        self._digests = sa.select(event.c.event_id, event.c.digest).where(
            in_values(event.c.event_id, "ids", store.dialect_name))
        joined = event.outerjoin(content, sa.and_(content.c.content_sha256 == event.c.content_sha256,
                                                  event.c.type == "observed"))
        self._by_id = sa.select(event, content.c.request, content.c.response).select_from(joined).where(
            event.c.event_id == sa.bindparam("event_id"))

    def end(self) -> int:
        """The highest event_seq (0 for an empty or absent table)."""
        return self.store.max_event_seq() if self.exists else 0

    def events(self, after: int, end: int) -> Iterator[Event]:
        """Events with after < event_seq <= end, in event_seq order (log fields seq/prev as the sender wrote them)."""
        if not self.exists:
            return
        for position, event in self.store.events(after):
            if position > end:
                return
            yield event

    def positioned(self, after: int, end: int) -> Iterator[tuple[int, Event]]:
        """(event_seq, event) with after < event_seq <= end."""
        if not self.exists:
            return
        for position, event in self.store.events(after):
            if position > end:
                return
            yield position, event

    def digests(self, ids: Sequence[str], conn: sa.Connection | None = None) -> dict[str, str]:
        """event id -> digest of those ids the tables hold."""
        if not self.exists or not ids:
            return {}
        with self.store.translated():
            if conn is not None:
                return {row.event_id: row.digest for row in select_in(conn, self._digests, "ids", list(ids))}
            with self.store.engine.connect() as own:
                return {row.event_id: row.digest for row in select_in(own, self._digests, "ids", list(ids))}

    def get(self, event_id: str) -> Event:
        """The tables' event with this id (which `digests` said they hold)."""
        return self.get_positioned(event_id)[1]

    def get_positioned(self, event_id: str) -> tuple[int, Event]:
        """(event_seq, event) of the tables' event with this id (which `digests` said they hold)."""
        with self.store.translated(), self.store.engine.connect() as conn:
            row: Any = conn.execute(self._by_id, {"event_id": event_id}).one()
        return int(row.event_seq), decode_event(row._mapping)
