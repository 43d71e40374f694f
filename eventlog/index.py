"""log/index.sqlite: a rebuildable index from event id, content hash and natural key to segment and offset.

The log is the truth; the index is derived. It is written after the log batch is durable and runs without fsync:
on open, an index that is behind the log is caught up, and one that is ahead of it (or unreadable) is rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    digest TEXT NOT NULL,
    content_sha256 TEXT,
    exchange_key TEXT,
    observed_at_utc TEXT,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_content ON events (content_sha256);
CREATE INDEX IF NOT EXISTS events_key ON events (exchange_key);
"""

_LOOKUP_CHUNK = 500


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


def exchange_key(source_system: str, entity_type: str, natural_key: str | None) -> str | None:
    """The index's key for a natural key: one string, unambiguous since the parts are JSON-encoded."""
    if natural_key is None:
        return None
    return "\x1f".join((source_system, entity_type, natural_key))


class LogIndex:
    """The index database of one lake."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = self._connect()
        self._committed_before: int | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-32768")
        db.executescript(_SCHEMA)
        return db

    def close(self) -> None:
        self._db.close()

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        self._db.execute("DELETE FROM events")

    def last_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM events").fetchone()
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
        self._db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", entries)

    def known_events(self, event_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """event_id -> (digest, content_sha256) for those ids already in the log."""
        found: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(event_ids), _LOOKUP_CHUNK):
            chunk = event_ids[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for event_id, digest, content in self._db.execute(
                    f"SELECT event_id, digest, content_sha256 FROM events WHERE event_id IN ({marks})", chunk):
                found[event_id] = (digest, content)
        return found

    def known_contents(self, hashes: Sequence[str]) -> set[str]:
        """Those content hashes whose payload the log already holds (an `observed` event)."""
        found: set[str] = set()
        for start in range(0, len(hashes), _LOOKUP_CHUNK):
            chunk = hashes[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(row[0] for row in self._db.execute(
                f"SELECT DISTINCT content_sha256 FROM events WHERE type = 'observed' AND content_sha256 IN ({marks})",
                chunk))
        return found

    def by_exchange_id(self, event_id: str) -> IndexEntry | None:
        row = self._db.execute("SELECT * FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return IndexEntry(*row) if row else None

    def by_seq(self, seq: int) -> IndexEntry | None:
        row = self._db.execute("SELECT * FROM events WHERE seq = ?", (seq,)).fetchone()
        return IndexEntry(*row) if row else None

    def first_payload(self, content_sha256: str) -> IndexEntry | None:
        """The first observed event carrying this content's payload."""
        row = self._db.execute(
            "SELECT * FROM events WHERE content_sha256 = ? AND type = 'observed' ORDER BY seq LIMIT 1",
            (content_sha256,)).fetchone()
        return IndexEntry(*row) if row else None

    def by_key(self, key: str) -> list[IndexEntry]:
        """Every event of one natural key, in log order."""
        rows = self._db.execute("SELECT * FROM events WHERE exchange_key = ? ORDER BY seq", (key,)).fetchall()
        return [IndexEntry(*row) for row in rows]

    def by_type(self, event_type: str) -> list[IndexEntry]:
        """Every event of one type, in log order."""
        rows = self._db.execute("SELECT * FROM events WHERE type = ? ORDER BY seq", (event_type,)).fetchall()
        return [IndexEntry(*row) for row in rows]

    def position_after(self, seq: int) -> tuple[int, int] | None:
        """(segment, offset) of the first event after `seq`, to start a read there."""
        row = self._db.execute("SELECT segment, offset FROM events WHERE seq > ? ORDER BY seq LIMIT 1",
                               (seq,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None
