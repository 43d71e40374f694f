"""log/index.sqlite: a rebuildable index from event id, content hash and natural key to segment and offset.

The log is the truth; the index is derived. It is written after the log batch is durable and runs without fsync:
on open, an index that is behind the log is caught up, and one that is ahead of it (or unreadable) is rebuilt.

Event ids and content hashes are random, so a B-tree over them takes each insert on a different page. They are
looked up by 64-bit keys (`lookup_key`, from a SHA-256 of the text), whose trees are a fraction of the size of trees
over the text: an append's look-ups, inserts and commit cost about three quarters of what they cost over the
text, on a 100,000-event index and on a 1,000,000-event one (tests/benchmarks/bench_index.py). Rows found by key
are checked against the full text, so a shared key is harmless.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from eventlog import extensions
from eventlog.errors import LakeError

# Version 1 had a UNIQUE text index on event_id and an index on content_sha256 text; version 2 has the keys, from
# BLAKE2b; version 3 takes them from SHA-256, which the C assembly of lines (eventlog/_records.c) computes.
SCHEMA_VERSION: Final = 3
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        digest TEXT NOT NULL,
        content_sha256 TEXT,
        exchange_key TEXT,
        observed_at_utc TEXT,
        segment INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        event_key INTEGER NOT NULL,
        content_key INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS events_event ON events (event_key)",
    "CREATE INDEX IF NOT EXISTS events_content ON events (content_key)",
    "CREATE INDEX IF NOT EXISTS events_key ON events (exchange_key)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
# Written without fsync (see the module's docstring), read while a writer appends.
PRAGMAS: Final = ("journal_mode=WAL", "synchronous=OFF", "cache_size=-32768")
# The columns of an IndexEntry, in its order.
COLUMNS: Final = "seq, event_id, type, digest, content_sha256, exchange_key, observed_at_utc, segment, offset, length"

_LOOKUP_CHUNK = 500


def lookup_key(text: str) -> int:
    """The 64-bit look-up key of an event id or content hash: the first 8 bytes of its SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def select_by_keys(db: sqlite3.Connection, query: str, texts: Iterable[str],
                   *params: object) -> Iterator[tuple[Any, ...]]:
    """Rows of `query` for the look-up keys of `texts`, bound where `query` says ``{keys}``, then `params`.

    At most _LOOKUP_CHUNK keys go in one query. A shared key may bring rows of other texts along: callers check the
    full text.
    """
    key = lookup_key if extensions.records is None else extensions.records.lookup_key
    keys = [key(text) for text in texts]
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start:start + _LOOKUP_CHUNK]
        yield from db.execute(query.format(keys=",".join("?" * len(chunk))), (*chunk, *params))


def is_damaged(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says the index file is damaged (rather than the disk full or read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the index, also where its folder cannot be written (a read-only file system):
    there, without a shared-memory file, what is still only in a WAL is not seen."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
        _version(db)  # opening is lazy: this is where a missing shared-memory file shows
        return db
    except sqlite3.OperationalError:
        if not path.is_file():
            raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


def remove_index_files(path: Path) -> None:
    """Delete an index database with its WAL and shared-memory files (before a rebuild from the segments)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        target = path.with_name(path.name + suffix)
        if target.is_dir() and not target.is_symlink():
            target.rmdir()  # an empty folder where the file belongs; a full one raises and is named
        else:
            target.unlink(missing_ok=True)


def _has_events_table(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone() is not None


def _upgrade(db: sqlite3.Connection, version: int) -> None:
    """Bring an index of an earlier version to this one in place, inside the caller's transaction.

    In place rather than rebuilt, because rebuilding reads every segment, and evicted ones only with their key.
    """
    db.create_function("lookup_key", 1, lookup_key, deterministic=True)
    if version == 2:
        db.execute("UPDATE events SET event_key = lookup_key(event_id), content_key = "
                   "CASE WHEN content_sha256 IS NULL THEN NULL ELSE lookup_key(content_sha256) END")
        return
    db.execute("ALTER TABLE events RENAME TO events_v1")
    for index in ("events_content", "events_key"):
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute(_SCHEMA[0])
    db.execute(f"INSERT INTO events SELECT {COLUMNS}, lookup_key(event_id), "
               "CASE WHEN content_sha256 IS NULL THEN NULL ELSE lookup_key(content_sha256) END FROM events_v1")
    db.execute("DROP TABLE events_v1")


class IndexEntry(NamedTuple):
    """One indexed event."""

    seq: int
    event_id: str
    type: str
    digest: str
    content_sha256: str | None
    exchange_key: str | None
    observed_at_utc: str | None
    segment: int
    offset: int
    length: int


class LogIndex:
    """The index database of one lake."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._db = self._connect_read_only() if read_only else self._connect()
        self._committed_before: int | None = None

    def _connect_read_only(self) -> sqlite3.Connection:
        """For a lake on a read-only folder or a full disk: read only; where no shared-memory file can be made,
        changes still in a WAL are not seen (readers stop at what was checkpointed)."""
        if not self.path.is_file():
            raise LakeError(f"{self.path} is missing and cannot be rebuilt here (the lake cannot be written)")
        db = connect_read_only(self.path)
        if _version(db) != SCHEMA_VERSION:
            db.close()
            raise LakeError(f"{self.path} is not version {SCHEMA_VERSION} of the index and cannot be upgraded here "
                            "(the lake cannot be written)")
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            db.execute(f"PRAGMA {pragma}")
        version = _version(db)
        if version == SCHEMA_VERSION:
            return db  # nothing to write: a write here would break into another process's append
        if version > SCHEMA_VERSION:
            db.close()
            raise LakeError(f"{self.path} is version {version} of the index, newer than this release reads "
                            f"({SCHEMA_VERSION}); use a release that reads it, or delete the file to have it "
                            f"rebuilt from the segments")
        db.execute("BEGIN IMMEDIATE")  # two processes opening a new or older index take turns
        try:
            version = _version(db)
            if version < SCHEMA_VERSION:  # the other may have done it meanwhile
                if _has_events_table(db):
                    _upgrade(db, version)
                for statement in _SCHEMA:
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        self._db.execute("DELETE FROM events")

    def last_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def count(self) -> int:
        """How many entries the index holds: fewer than the log's last seq when some went missing."""
        row = self._db.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0] or 0)

    def begin(self) -> None:
        """Start the transaction that one append call's entries share."""
        self._db.execute("BEGIN")
        self._committed_before = self.last_seq()

    def commit(self) -> None:
        self._db.execute("COMMIT")
        self._committed_before = None

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._committed_before = None

    def committed_last_seq(self) -> int:
        """The last seq of acknowledged events: this connection sees its own uncommitted rows, other readers
        would not, so during a write the position at its start is the answer."""
        return self._committed_before if self._committed_before is not None else self.last_seq()

    def add(self, entries: Iterable[IndexEntry]) -> None:
        """Add entries inside the current transaction."""
        self.add_rows(index_rows(entries))

    def add_rows(self, rows: Iterable[Sequence[object]]) -> None:
        """Add rows inside the current transaction: an IndexEntry's fields, then lookup_key of its event id and of
        its content hash (None without one)."""
        self._db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def known_events(self, event_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """event_id -> (digest, content_sha256) for those ids already in the log."""
        wanted = set(event_ids)
        rows = select_by_keys(self._db, "SELECT event_id, digest, content_sha256 FROM events "
                              "WHERE event_key IN ({keys})", wanted)
        return {event_id: (digest, content) for event_id, digest, content in rows if event_id in wanted}

    def known_contents(self, hashes: Sequence[str]) -> set[str]:
        """Those content hashes whose payload the log already holds (an `observed` event)."""
        wanted = set(hashes)
        rows = select_by_keys(self._db, "SELECT content_sha256 FROM events WHERE content_key IN ({keys}) "
                              "AND type = 'observed'", wanted)
        return {content for content, in rows if content in wanted}

    def by_exchange_id(self, event_id: str) -> IndexEntry | None:
        row = self._db.execute(f"SELECT {COLUMNS} FROM events WHERE event_key = ? AND event_id = ?",
                               (lookup_key(event_id), event_id)).fetchone()
        return IndexEntry(*row) if row else None

    def by_seq(self, seq: int) -> IndexEntry | None:
        row = self._db.execute(f"SELECT {COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
        return IndexEntry(*row) if row else None

    def first_payload(self, content_sha256: str) -> IndexEntry | None:
        """The first observed event carrying this content's payload."""
        row = self._db.execute(
            f"SELECT {COLUMNS} FROM events WHERE content_key = ? AND content_sha256 = ? AND type = 'observed' "
            "ORDER BY seq LIMIT 1", (lookup_key(content_sha256), content_sha256)).fetchone()
        return IndexEntry(*row) if row else None

    def by_key(self, key: str) -> list[IndexEntry]:
        """Every event of one natural key, in log order."""
        rows = self._db.execute(f"SELECT {COLUMNS} FROM events WHERE exchange_key = ? ORDER BY seq", (key,))
        return [IndexEntry(*row) for row in rows]

    def by_type(self, event_type: str) -> list[IndexEntry]:
        """Every event of one type, in log order."""
        rows = self._db.execute(f"SELECT {COLUMNS} FROM events WHERE type = ? ORDER BY seq", (event_type,))
        return [IndexEntry(*row) for row in rows]

    def between(self, after: int, upto: int) -> Iterator[IndexEntry]:
        """The events with `after` < seq <= `upto`, in log order, streamed (memory: one row at a time)."""
        rows = self._db.execute(f"SELECT {COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
                                (after, upto))
        for row in rows:
            yield IndexEntry(*row)

    def position_after(self, seq: int) -> tuple[int, int] | None:
        """(segment, offset) of the first event after `seq`, to start a read there."""
        row = self._db.execute("SELECT segment, offset FROM events WHERE seq > ? ORDER BY seq LIMIT 1",
                               (seq,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None


def index_rows(entries: Iterable[IndexEntry]) -> Iterator[tuple[object, ...]]:
    """The rows of `entries` for LogIndex.add_rows: each entry's fields and its look-up keys."""
    for entry in entries:
        content = entry.content_sha256
        yield (*entry, lookup_key(entry.event_id), None if content is None else lookup_key(content))
