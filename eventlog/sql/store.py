"""The SQL replica of the event log: one SQLAlchemy Core implementation for every backend.

`SqlEventStore(url)` picks the backend from the URL alone (sqlite, postgresql+psycopg, mysql+pymysql,
mssql+pyodbc; drivers are imported lazily by SQLAlchemy). Events go into ExchangeEvent with their payload stored
once per content hash in ExchangeContent; reading them back rejoins the payload and yields events equal to the
ones appended. Driver errors surface as `DatabaseError` with one sentence and no password.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa

from eventlog.errors import DatabaseError, InputError, IntegrityError
from eventlog.format.envelope import format_utc
from eventlog.format.events import Event
from eventlog.log.config import DEFAULT_SCHEMA
from eventlog.sql.ddl import view_sql
from eventlog.sql.dialects import (
    MYSQL_NAMES,
    bulk_insert,
    check_schema_name,
    create_schema_sql,
    engine_options,
    in_values,
    insert_ignore,
    on_connect,
    schema_creation_lock,
    select_in,
    translate_error,
    upsert,
    uses_schema,
)
from eventlog.sql.rowcodec import CONTENT_COLUMNS, EVENT_COLUMNS, EncodedEvent, decode_event, encode_event
from eventlog.sql.schema import APPEND_LOCK_NAME, LakeTables, build_tables

# How many times creating the schema looks again after a CREATE that another process got to first.
_CREATE_ATTEMPTS = 10


class SqlEventStore:
    """Events of the lake mirrored into SQL tables, in schema `schema` (ignored on SQLite).

    Without a schema: `lake`, except on MariaDB and MySQL, where a schema is a database: there the tables go in the
    URL's database (into `lake` when the URL names none); a schema asked for by name is used on every backend.

    Raises InputError for a bad schema name or URL; every database failure is a DatabaseError.
    Construction does not connect; the first call does. `max_packet` caps the bytes of one INSERT statement on
    MySQL/MariaDB below the server's max_allowed_packet, which is otherwise read from the server.
    """

    def __init__(self, url: str, *, schema: str | None = None, max_packet: int | None = None) -> None:
        self.max_packet = max_packet
        if schema is not None:
            check_schema_name(schema)
        try:
            self._url = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise InputError("the database URL is not a valid SQLAlchemy URL (dialect+driver://...)") from None
        if schema is None:
            in_url = self._url.get_backend_name() in MYSQL_NAMES and self._url.database
            schema = None if in_url else DEFAULT_SCHEMA
        try:
            self._engine = sa.create_engine(self._url, **engine_options(self._url.get_backend_name()))
        except sa.exc.NoSuchModuleError:
            raise InputError(f"the database URL names an unknown backend {self._url.drivername!r}") from None
        except ModuleNotFoundError as exc:
            raise translate_error(exc, self._url) from exc
        self.dialect_name: str = self._engine.dialect.name
        self._driver_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        sa.event.listen(self._engine, "connect",
                        lambda dbapi_connection, _record: on_connect(dbapi_connection, self.dialect_name))
        self.tables: LakeTables = build_tables(schema if uses_schema(self.dialect_name) else None)
        self.views: dict[str, sa.Select[Any]] = {}  # name -> query, created by create_schema where missing
        self.statements = StoreStatements(self.tables, self.dialect_name)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for projections that share these tables."""
        return self._engine

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Turn driver errors raised inside the block into DatabaseError; the one place that does so."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc, self._url) from exc
        except self._driver_error as exc:  # raised by driver calls made outside SQLAlchemy (PostgreSQL COPY)
            raise translate_error(exc, self._url) from exc

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction, committed when the block ends and rolled back if it raises."""
        with self.translated(), self._engine.begin() as conn:
            yield conn

    def create_schema(self) -> None:
        """Create the schema, the tables and indexes of the metadata, and the views of `views`, if missing; never
        drops or alters anything.

        Safe to call on every start: a second call changes nothing and keeps every row. What exists is looked up
        first, so a user without CREATE rights can call it on a schema an administrator created. Tables and views
        that projections added (`projections.tables.attach`) are created with the rest.
        """
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                self._create_schema()
                return
            except DatabaseError:
                # Another process created some of it between our look and our CREATE (where no server lock
                # orders the two: SQLite creates table by table); looking again finds it.
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))

    def _create_schema(self) -> None:
        views = self.views
        schema = self.tables.schema
        with self.begin() as conn, schema_creation_lock(conn, self.dialect_name):
            if schema is not None and not sa.inspect(conn).has_schema(schema):
                conn.exec_driver_sql(create_schema_sql(self.dialect_name, schema))
            self.tables.metadata.create_all(conn, checkfirst=True)
            if views:
                present = set(sa.inspect(conn).get_view_names(schema=schema))
                for name, query in views.items():
                    if name not in present:
                        conn.exec_driver_sql(view_sql(name, schema, query, conn.dialect))
            conn.execute(self.statements.seed_lock, [self._lock_row()])

    def append_events(self, events: Iterable[Event | EncodedEvent], *, conn: sa.Connection | None = None,
                      batch: int = 5000) -> int:
        """Append events (decoded, or already encoded by `sqlrows.encode_line`) not yet present (by event_id).

        Returns how many were written.
        All or nothing: in one transaction of its own, or in `conn`'s. Payloads of observed events go to
        ExchangeContent once per content hash. Raises IntegrityError if an event_id is already present (or
        repeated) with another digest, or an observed event's payload does not hash to its content_sha256;
        InputError for an event that cannot be stored (bad id, digest or timestamp). Concurrent appends wait
        for each other, so event_seq order is commit order. Events are encoded and written `batch` at a time
        (COPY on PostgreSQL, executemany elsewhere); memory grows with `batch`, not with the input.
        """
        if conn is None:
            with self.begin() as own:
                return self._append(own, events, batch)
        with self.translated():
            return self._append(conn, events, batch)

    def _append(self, conn: sa.Connection, events: Iterable[Event | EncodedEvent], batch: int) -> int:
        statements = self.statements
        taken = {"lock_name": APPEND_LOCK_NAME, "taken_at": _now()}
        if conn.execute(statements.take_lock, taken).rowcount == 0:
            conn.execute(statements.seed_lock, [self._lock_row()])
            conn.execute(statements.take_lock, taken)
        seen: dict[str, str] = {}
        stored_content: set[str] = set()
        strings: dict[str, bytes] = {}
        written = 0
        iterator = iter(events)
        while chunk := list(islice(iterator, batch)):
            fresh: dict[str, Event | EncodedEvent] = {}
            for event in chunk:
                event_id = event.event_id
                known = seen.get(event_id)
                if known is None:
                    seen[event_id] = event.digest
                    fresh[event_id] = event
                elif known != event.digest:
                    raise _digest_conflict(event_id, known, event.digest)
            present: dict[str, str] = {row.event_id: row.digest for row in select_in(
                conn, statements.event_digests, "ids", list(fresh))}
            for event_id, stored in present.items():
                digest = fresh.pop(event_id).digest
                if stored != digest:
                    raise _digest_conflict(event_id, stored, digest)
            event_rows: list[tuple[Any, ...]] = []
            content_rows: dict[str, tuple[Any, ...]] = {}
            for event in fresh.values():
                row, content = event if isinstance(event, EncodedEvent) else encode_event(event, strings=strings)
                event_rows.append(row)
                if content is not None and content[0] not in stored_content:
                    content_rows.setdefault(content[0], content)
            # Under the append lock nobody else adds content, so what is absent now can be inserted plainly.
            for content_hash, in select_in(conn, statements.content_present, "hashes", sorted(content_rows)):
                del content_rows[content_hash]
            stored_content.update(content_rows)
            bulk_insert(conn, self.tables.content, CONTENT_COLUMNS, content_rows.values(), max_packet=self.max_packet)
            bulk_insert(conn, self.tables.event, EVENT_COLUMNS, event_rows, max_packet=self.max_packet)
            written += len(event_rows)
        return written

    def max_event_seq(self, *, conn: sa.Connection | None = None) -> int:
        """Highest event_seq in the table (0 when empty)."""
        return int(self._scalar(self.statements.max_event_seq, {}, conn) or 0)

    def events(self, after_event_seq: int = 0, *, batch: int = 1000) -> Iterator[tuple[int, Event]]:
        """Events with event_seq > after_event_seq, in event_seq order, as (event_seq, Event).

        Reads `batch` rows per query (keyset paging), so memory stays flat and no cursor stays open between
        batches. Raises IntegrityError for an observed event whose content row is missing.
        """
        position = after_event_seq
        while True:
            with self.translated(), self._engine.connect() as conn:
                rows = conn.execute(self.statements.read_events(batch), {"after": position}).all()
            for row in rows:
                yield row.event_seq, decode_event(row._mapping)
            if len(rows) < batch:
                return
            position = rows[-1].event_seq

    def event_ids_after(self, after_event_id: str = "", *, batch: int = 10_000) -> Iterator[tuple[str, str]]:
        """(event_id, digest) of events whose id sorts after `after_event_id`, in event_id order.

        The order is byte order on every backend (binary collation), the same as Python's string order, so a
        reconciliation can merge-join this stream with the log's.
        """
        position = after_event_id
        while True:
            with self.translated(), self._engine.connect() as conn:
                rows = [(row.event_id, row.digest)
                        for row in conn.execute(self.statements.ids_after(batch), {"after": position})]
            yield from rows
            if len(rows) < batch:
                return
            position = rows[-1][0]

    def all_event_ids(self, *, batch: int = 10_000) -> Iterator[tuple[str, str]]:
        """(event_id, digest) of every event, in event_id order (see `event_ids_after`)."""
        return self.event_ids_after("", batch=batch)

    def digest_of(self, event_id: str) -> str | None:
        """The digest stored for one event id, or None when the table does not hold it."""
        event = self.tables.event
        stmt = sa.select(event.c.digest).where(event.c.event_id == sa.bindparam("event_id"))
        found = self._scalar(stmt, {"event_id": event_id}, None)
        return None if found is None else str(found)

    def get_watermark(self, key: str, *, conn: sa.Connection | None = None) -> int:
        """The sync watermark stored under `key`, or 0 if none was set."""
        return int(self._scalar(self.statements.get_watermark, {"sync_key": key}, conn) or 0)

    def set_watermark(self, key: str, value: int, conn: sa.Connection | None = None) -> None:
        """Store the sync watermark `value` under `key`, in `conn`'s transaction if given."""
        params = {"sync_key": key, "watermark": value, "updated_at_utc": _now()}
        if conn is None:
            with self.begin() as own:
                own.execute(self.statements.set_watermark, [params])
            return
        with self.translated():
            conn.execute(self.statements.set_watermark, [params])

    def _scalar(self, stmt: sa.Executable, params: Mapping[str, Any], conn: sa.Connection | None) -> Any:
        with self.translated():
            if conn is not None:
                return conn.execute(stmt, params).scalar()
            with self._engine.connect() as own:
                return own.execute(stmt, params).scalar()

    @staticmethod
    def _lock_row() -> dict[str, str]:
        return {"name": APPEND_LOCK_NAME, "updated_at_utc": _now()}


class StoreStatements:
    """Every statement the store issues, built once per dialect (and compiled in tests for SQL Server too).

    The two inserts run through `dialects.bulk_insert` (COPY on PostgreSQL, the driver's executemany elsewhere).
    """

    def __init__(self, tables: LakeTables, dialect_name: str) -> None:
        event, content, lock = tables.event, tables.content, tables.append_lock
        self.tables = tables
        self.insert_event = event.insert()
        self.insert_content = content.insert()
        self.seed_lock = insert_ignore(lock, dialect_name)
        self.take_lock = (lock.update().where(lock.c.name == sa.bindparam("lock_name"))
                          .values(updated_at_utc=sa.bindparam("taken_at")))
        self.event_digests = sa.select(event.c.event_id, event.c.digest).where(
            in_values(event.c.event_id, "ids", dialect_name))
        self.content_present = sa.select(content.c.content_sha256).where(
            in_values(content.c.content_sha256, "hashes", dialect_name))
        self.max_event_seq = sa.select(sa.func.max(event.c.event_seq))
        sync = tables.sync_state
        self.get_watermark = sa.select(sync.c.watermark).where(sync.c.sync_key == sa.bindparam("sync_key"))
        self.set_watermark = upsert(sync, dialect_name, update=["watermark", "updated_at_utc"])

    def read_events(self, batch: int) -> sa.Select[Any]:
        """Events after :after in event_seq order, observed ones joined to their payload."""
        event, content = self.tables.event, self.tables.content
        joined = event.outerjoin(content, sa.and_(content.c.content_sha256 == event.c.content_sha256,
                                                  event.c.type == "observed"))
        return (sa.select(event, content.c.request, content.c.response).select_from(joined)
                .where(event.c.event_seq > sa.bindparam("after")).order_by(event.c.event_seq).limit(batch))

    def ids_after(self, batch: int) -> sa.Select[Any]:
        """(event_id, digest) after :after in event_id order."""
        event = self.tables.event
        return (sa.select(event.c.event_id, event.c.digest).where(event.c.event_id > sa.bindparam("after"))
                .order_by(event.c.event_id).limit(batch))

    def all(self) -> list[sa.Executable]:
        """Every statement, for compile checks."""
        return [self.insert_event, self.insert_content, self.seed_lock, self.take_lock, self.event_digests,
                self.content_present, self.max_event_seq, self.get_watermark, self.set_watermark, self.read_events(1000),
                self.ids_after(1000)]


def _digest_conflict(event_id: str, stored: str, incoming: str) -> IntegrityError:
    return IntegrityError(f"event {event_id} is already stored with digest {stored} but arrives with {incoming}")


def _now() -> str:
    return format_utc(datetime.now(UTC))

