"""replay/index.sqlite: request fingerprints of the log's exchanges, a projection kept beside the lake.

For each rule set (identified by `Rules.identity`) the index holds, per observed or revisited exchange whose request
has a URL, its fingerprint, observed time, content hash and dataset (source_system), and per content where its
payload line lies in the log. Each rule set has its own checkpoint: the last seq folded in. Opening the index catches
it up from the log's lines after that seq, so the cost grows with new events only; `rebuild` truncates and folds
the whole log again, with the same rows as a result. It needs neither the network nor the SQL mirror.

The file is derived data: a file that cannot be read, that another replica's log wrote, or whose checkpoint is past
the log's end (a truncated or replaced lake) is rebuilt. Several processes may share it: a catch-up holds SQLite's
write lock, and reads see committed rows only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

from eventlog.errors import EventLogError, IntegrityError, LakeError
from eventlog.format.events import ABSENT, decode_line, decode_raw_line
from eventlog.log.reader import segment_sources
from eventlog.log.segments import SegmentName
from eventlog.log.writer import EventLog
from eventlog.replay.fingerprint import fingerprint, normalise
from eventlog.replay.rules import Rules

__all__ = ["FingerprintIndex", "Hit", "Shape"]

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS rule_sets (
        id INTEGER PRIMARY KEY, identity TEXT NOT NULL UNIQUE, rules TEXT NOT NULL,
        checkpoint INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS contents (
        rule_set INTEGER NOT NULL, content TEXT NOT NULL, fingerprint BLOB,
        segment INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
        PRIMARY KEY (rule_set, content)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS requests (
        rule_set INTEGER NOT NULL, fingerprint BLOB NOT NULL, observed TEXT NOT NULL, seq INTEGER NOT NULL,
        content TEXT NOT NULL, source TEXT NOT NULL, exchange_id TEXT NOT NULL,
        PRIMARY KEY (rule_set, fingerprint, observed, content, seq)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS shapes (
        rule_set INTEGER NOT NULL, fingerprint BLOB NOT NULL, source TEXT NOT NULL, route TEXT NOT NULL,
        host TEXT NOT NULL, content TEXT NOT NULL, last_seq INTEGER NOT NULL,
        PRIMARY KEY (rule_set, fingerprint, source))""",
    "CREATE INDEX IF NOT EXISTS shapes_route ON shapes (rule_set, route, last_seq)",
    "CREATE INDEX IF NOT EXISTS shapes_host ON shapes (rule_set, host, last_seq)",
    "CREATE INDEX IF NOT EXISTS shapes_seq ON shapes (rule_set, last_seq)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_COMMIT_EVERY: Final = 20_000
_OPEN_SEGMENTS: Final = 16


class Hit(NamedTuple):
    """A recorded exchange that answers a fingerprint, and where the line with its payload lies."""

    seq: int
    observed: str
    content: str
    exchange_id: str
    source: str
    segment: int
    offset: int
    length: int


class Shape(NamedTuple):
    """A distinct recorded request (by fingerprint and dataset): the newest content recorded for it."""

    fingerprint: bytes
    source: str
    last_seq: int
    segment: int
    offset: int
    length: int


class Seen(NamedTuple):
    """What the index takes from one log line: a resolution has type "resolved" and nothing else."""

    type: str
    seq: int
    observed: str = ""
    content: str = ""
    exchange_id: str = ""
    source: str = ""
    request: Any = None


class Payload(NamedTuple):
    """The request, response and response_ref of an observed line, as decoded JSON."""

    request: Any
    response: Any
    response_ref: Any


def read_seen(raw: bytes) -> Seen:
    """Decode a log line as far as the index needs: the payload's request only for an observed line.

    Raises IntegrityError for an observation whose envelope lacks a field the index needs.
    """
    line = decode_raw_line(raw)
    if line is not None:
        body = line.body
        request = _decode_json(body.request) if line.type == "observed" and body.request is not ABSENT else None
        return Seen(line.type, line.seq, body.observed_at_utc, body.content_sha256, body.exchange_id,
                    body.source_system, request)
    event = decode_line(raw)  # a resolution, or an envelope the fast decoder does not fit
    if event.type == "resolved":
        return Seen(event.type, event.seq)
    observed, content, exchange_id, source = (event.body.get(name) for name in (
        "observed_at_utc", "content_sha256", "exchange_id", "source_system"))
    if not (isinstance(observed, str) and isinstance(content, str) and isinstance(exchange_id, str)
            and isinstance(source, str)):
        raise IntegrityError(f"event {event.seq} ({event.event_id}) lacks an envelope field replay needs")
    return Seen(event.type, event.seq, observed, content, exchange_id, source, event.body.get("request"))


def read_payload(raw: bytes) -> Payload:
    """The payload of an observed line."""
    line = decode_raw_line(raw)
    if line is None:
        full = decode_line(raw).body
        return Payload(full.get("request"), full.get("response"), full.get("response_ref"))
    body = line.body
    return Payload(*(None if part is ABSENT else _decode_json(part)
                     for part in (body.request, body.response, body.response_ref)))


_decode_json: Final = msgspec.json.decode


class FingerprintIndex:
    """The look-up index of one rule set over one lake's log; thread-safe, caught up on open.

    Raises LakeError when the index folder cannot be created.
    """

    def __init__(self, log: EventLog, rules: Rules, *, path: Path) -> None:
        self.log = log
        self.rules = rules
        self.path = path
        self._lock = threading.RLock()
        self._sources: dict[int, tuple[SegmentName, Path | None]] = {}
        self._handles: dict[int, int] = {}  # segment first seq -> an open file descriptor
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(f"cannot create {path.parent}: {exc.strerror}") from None
        self._db = self._connect()
        self._rule_set = self._register()
        self.catch_up()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            for handle in self._handles.values():
                os.close(handle)
            self._handles.clear()

    # -- keeping up with the log ---------------------------------------------------------------------------------

    def catch_up(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Fold the log's events after the checkpoint into the index; returns how many events were read."""
        with self._lock:
            if self.log.index.committed_last_seq() <= self._checkpoint():
                if self.log.index.committed_last_seq() < self._checkpoint():
                    return self._rebuild_locked(progress)
                return 0
            return self._fold(progress)

    def rebuild(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Truncate this rule set's rows and fold the whole log again; returns how many events were read."""
        with self._lock:
            return self._rebuild_locked(progress)

    def _rebuild_locked(self, progress: Callable[[int], None] | None) -> int:
        with _transaction(self._db):
            for table in ("contents", "requests", "shapes"):
                self._db.execute(f"DELETE FROM {table} WHERE rule_set = ?", (self._rule_set,))
            self._db.execute("UPDATE rule_sets SET checkpoint = 0 WHERE id = ?", (self._rule_set,))
        return self._fold(progress)

    def _fold(self, progress: Callable[[int], None] | None) -> int:
        db = self._db
        rule_set = self._rule_set
        read = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            checkpoint = self._checkpoint()  # another process may have caught up while this one waited
            contents: dict[str, bytes | None] = {}
            for segment, offset, raw in self.log.lines(after_seq=checkpoint):
                seen = read_seen(raw)
                if seen.seq <= checkpoint:
                    continue
                checkpoint = seen.seq
                read += 1
                if read % _COMMIT_EVERY == 0:  # a long fold lets readers and other writers in now and then
                    db.execute("UPDATE rule_sets SET checkpoint = ? WHERE id = ?", (checkpoint - 1, rule_set))
                    db.execute("COMMIT")
                    contents.clear()
                    if progress is not None:
                        progress(read)
                    db.execute("BEGIN IMMEDIATE")
                if seen.type == "resolved":
                    continue  # nothing to replay, but the checkpoint moves past it
                normal = None
                if seen.type == "observed":
                    normal = self._normal_form(seen.request)
                    digest = None if normal is None else fingerprint(normal)
                    contents[seen.content] = digest
                    db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?, ?, ?, ?)",
                               (rule_set, seen.content, digest, segment, offset, len(raw)))
                else:
                    digest = self._known_fingerprint(seen.content, contents)
                if digest is not None:
                    self._add_request(seen, digest, normal)
            db.execute("UPDATE rule_sets SET checkpoint = ? WHERE id = ?", (checkpoint, rule_set))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if progress is not None:
            progress(read)
        return read

    def _normal_form(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict) or not isinstance(request.get("url"), str):
            return None
        try:
            return normalise(request, self.rules)
        except EventLogError:
            return None  # a request replay cannot address (no host, bad port, no canonical form)

    def _known_fingerprint(self, content: str, contents: dict[str, bytes | None]) -> bytes | None:
        if content in contents:
            return contents[content]
        row = self._db.execute("SELECT fingerprint FROM contents WHERE rule_set = ? AND content = ?",
                               (self._rule_set, content)).fetchone()
        digest: bytes | None = None if row is None else row[0]
        contents[content] = digest
        return digest

    def _add_request(self, seen: Seen, digest: bytes, normal: dict[str, Any] | None) -> None:
        """One observation of a request; `normal` is its normal form when its payload is on this line."""
        self._db.execute("INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (self._rule_set, digest, seen.observed, seen.seq, seen.content, seen.source,
                          seen.exchange_id))
        if normal is None:  # a revisit: the shape exists since the content's first observation
            self._db.execute("UPDATE shapes SET last_seq = ? WHERE rule_set = ? AND fingerprint = ? AND source = ?",
                             (seen.seq, self._rule_set, digest, seen.source))
            return
        self._db.execute(
            "INSERT INTO shapes VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule_set, fingerprint, source) "
            "DO UPDATE SET last_seq = excluded.last_seq, content = excluded.content",
            (self._rule_set, digest, seen.source, route_of(normal), normal["host"], seen.content, seen.seq))

    # -- reading -------------------------------------------------------------------------------------------------

    def find(self, digest: bytes, *, source: str | None = None, observed_by: str | None = None) -> Hit | None:
        """The newest recorded exchange with this fingerprint (observed_at_utc <= `observed_by` when given)."""
        query = ("SELECT r.seq, r.observed, r.content, r.exchange_id, r.source, c.segment, c.offset, c.length "
                 "FROM requests r JOIN contents c ON c.rule_set = r.rule_set AND c.content = r.content "
                 "WHERE r.rule_set = ? AND r.fingerprint = ?")
        params: list[object] = [self._rule_set, digest]
        if source is not None:
            query += " AND r.source = ?"
            params.append(source)
        if observed_by is not None:
            query += " AND r.observed <= ?"
            params.append(observed_by)
        query += " ORDER BY r.observed DESC, r.content DESC LIMIT 1"
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        return None if row is None else Hit(*row)

    def first_observed(self, digest: bytes, *, source: str | None = None) -> str | None:
        """When a request with this fingerprint was first observed (in `source` when given), or None."""
        query = "SELECT min(observed) FROM requests WHERE rule_set = ? AND fingerprint = ?"
        params: list[object] = [self._rule_set, digest]
        if source is not None:
            query += " AND source = ?"
            params.append(source)
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        return None if row is None else row[0]

    def sources_of(self, digest: bytes) -> list[str]:
        """The datasets in which a request with this fingerprint was recorded."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT source FROM shapes WHERE rule_set = ? AND fingerprint = ? "
                                    "ORDER BY source", (self._rule_set, digest)).fetchall()
        return [row[0] for row in rows]

    def shapes(self, *, route: str | None = None, host: str | None = None, source: str | None = None,
               limit: int = 200) -> list[Shape]:
        """Distinct recorded requests, newest first: on one route, else on one host, else any."""
        query = ("SELECT s.fingerprint, s.source, s.last_seq, c.segment, c.offset, c.length FROM shapes s "
                 "JOIN contents c ON c.rule_set = s.rule_set AND c.content = s.content WHERE s.rule_set = ?")
        params: list[object] = [self._rule_set]
        if route is not None:
            query += " AND s.route = ?"
            params.append(route)
        elif host is not None:
            query += " AND s.host = ?"
            params.append(host)
        if source is not None:
            query += " AND s.source = ?"
            params.append(source)
        query += " ORDER BY s.last_seq DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            return [Shape(*row) for row in self._db.execute(query, params).fetchall()]

    def count(self) -> int:
        """How many recorded requests (observations with a URL) the index holds for this rule set."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM requests WHERE rule_set = ?",
                                        (self._rule_set,)).fetchone()[0])

    def read_line(self, segment: int, offset: int, length: int) -> bytes:
        """The raw log line at a position the index gave (from cold storage when its segment was evicted)."""
        with self._lock:  # a descriptor is closed under the lock when too many are open
            handle = self._handles.get(segment)
            if handle is not None:
                return os.pread(handle, length, offset)
            for attempt in (0, 1):
                if attempt or segment not in self._sources:
                    self._sources = {name.first_seq: (name, path)
                                     for name, path in segment_sources(self.log.segments_dir, self.log.cold)}
                found = self._sources.get(segment)
                if found is None:
                    continue
                name, path = found
                if path is None:
                    if self.log.cold is None:
                        break
                    return self.log.cold.read_line(name, offset, length)
                try:
                    handle = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # sealed (renamed) or evicted since the listing: list again
                # An open descriptor stays valid when its segment is sealed (renamed) or evicted (unlinked), and it
                # sees what is appended to the active segment; keeping a few saves an open per look-up.
                if len(self._handles) >= _OPEN_SEGMENTS:
                    os.close(self._handles.pop(next(iter(self._handles))))
                self._handles[segment] = handle
                return os.pread(handle, length, offset)
        raise EventLogError(f"segment {segment} named by replay/index.sqlite is not in the log; "
                            "rebuild it with `eventlog replay reindex --rebuild`")

    # -- the file ------------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            db = self._open()
        except sqlite3.DatabaseError:
            # Derived data that cannot be read is made again from the log.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            db = self._open()
        return db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                db.close()
                self.path.unlink()
                return self._open()
            replica = None if version == 0 else db.execute("SELECT value FROM meta WHERE key = 'replica_id'").fetchone()
            if replica is None or replica[0] != self.log.replica_id:
                with _transaction(db):  # looked at again under the write lock: another process may be here too
                    for statement in _SCHEMA:
                        db.execute(statement)
                    replica = db.execute("SELECT value FROM meta WHERE key = 'replica_id'").fetchone()
                    if replica is None or replica[0] != self.log.replica_id:
                        # New, or a copy of another lake's index: nothing in it describes this log.
                        for table in ("contents", "requests", "shapes", "rule_sets"):
                            db.execute(f"DELETE FROM {table}")
                        db.execute("INSERT OR REPLACE INTO meta VALUES ('replica_id', ?)", (self.log.replica_id,))
        except BaseException:
            db.close()
            raise
        return db

    def _register(self) -> int:
        identity = self.rules.identity
        row = self._db.execute("SELECT id FROM rule_sets WHERE identity = ?", (identity,)).fetchone()
        if row is None:
            with _transaction(self._db):
                self._db.execute("INSERT OR IGNORE INTO rule_sets (identity, rules) VALUES (?, ?)",
                                 (identity, self.rules.to_json().decode()))
                row = self._db.execute("SELECT id FROM rule_sets WHERE identity = ?", (identity,)).fetchone()
        return int(row[0])

    def _checkpoint(self) -> int:
        row = self._db.execute("SELECT checkpoint FROM rule_sets WHERE id = ?", (self._rule_set,)).fetchone()
        return int(row[0])


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on a connection in autocommit mode, begun with SQLite's write lock held."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def route_of(normal: dict[str, Any]) -> str:
    """The route of a normal form: method, scheme, host, port and path, as the index groups requests by."""
    port = "" if normal["port"] is None else f":{normal['port']}"
    return f"{normal['method']} {normal['scheme']}://{normal['host']}{port}{normal['path']}"

