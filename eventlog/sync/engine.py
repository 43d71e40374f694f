"""Sync = merge + reprojection, between a lake's log and a database's event tables.

Merge is a union by event id, in both directions, incremental from two watermarks per lake in SyncState
(`sync|<replica>|json_to_sql`: the log seq pushed, `sync|<replica>|sql_to_json`: the event_seq pulled). A watermark
past its side's end (a log replaced, tables truncated) and first contact read that side whole: a full
reconciliation, one batch in memory at a time. Foreign events keep their identity (event id, digest, origin,
recorded time). Conflicts are found and decided before anything is written (`eventlog.sync.conflicts`); under
`fail`, or in a dry run, nothing is written at all.

Order of writes, so that a crash anywhere leaves a state a rerun finishes: one database transaction holds the
pushed events, the new resolutions and the push watermark; then the log takes the pulled events and the
resolutions; then the pull watermark. Every step skips what is present, so a rerun neither duplicates nor loses.
Syncs of one database run one at a time (a row lock in AppendLock on a server, a file lock beside a SQLite file),
and each ends by bringing the database's RawExchangeRecord up to its event tables (`projections.sql_source`),
incrementally whichever lake synced last: the projection of the union, never one lake's partial view.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import sqlalchemy as sa

from eventlog.errors import ConflictError, InputError
from eventlog.format.events import Event, new_resolution
from eventlog.log.locking import WriterLock
from eventlog.log.writer import EventLog
from eventlog.sql.dialects import upsert
from eventlog.sql.store import SqlEventStore
from eventlog.sync.conflicts import (
    Name,
    decide,
    describe_conflict,
    event_name,
    find_conflict,
    key_events_of,
    resolution_body,
)
from eventlog.sync.identity import clash, same_event
from eventlog.sync.keyhashes import KeyHashes
from eventlog.sync.result import DIRECTIONS, STRATEGIES, Conflict, Direction, Strategy, SyncResult
from eventlog.sync.sides import LogSide, SqlSide, chunks
from projections.log_source import IndexReader
from projections.raw_exchange import ReprojectResult
from projections.sql_source import reproject_tables
from projections.tables import attach

__all__ = ["BATCH", "SYNC_LOCK", "Plan", "find_conflicts", "refuse_under_fail", "sync", "watermark_keys"]

BATCH = 2000
SYNC_LOCK = "sync"


def watermark_keys(replica_id: str) -> tuple[str, str]:
    """SyncState keys of one lake's (push, pull) watermarks."""
    return f"sync|{replica_id}|json_to_sql", f"sync|{replica_id}|sql_to_json"


class Plan:
    """What the reading pass found: counts, positions, the keys touched, the conflicts and their decisions."""

    def __init__(self) -> None:
        self.to_sql = self.to_json = 0
        self.shared = 0  # observations (and decisions) both sides hold under different origins
        self.push_after = self.push_end = self.pull_after = self.pull_end = 0
        self.full = False
        self.keys_touched = 0
        self.conflicts: list[Conflict] = []
        self.resolutions: list[Event] = []


def sync(log: EventLog, store: SqlEventStore, *, direction: Direction = "bidirectional",
         conflict: Strategy = "prefer_newest", dry_run: bool = False, now: str, batch: int = BATCH,
         progress: Callable[[int], None] | None = None) -> SyncResult:
    """Merge `log` and `store`'s event tables, decide conflicts, and reproject the database's RawExchangeRecord.

    `now` is the recorded time of the resolutions this run appends. Raises InputError for an unknown direction or
    strategy, IntegrityError (nothing written) when one event id names two different events, ConflictError
    (exit 9, nothing written) for conflicts under `fail`, DatabaseError, LockBusyError. A dry run reads both
    sides and returns the plan; it writes nothing, not even the schema. Cost: the events after the watermarks,
    plus a look-up of each key both sides changed; memory: one batch, and the keys the new events touch.
    """
    if direction not in DIRECTIONS:
        raise InputError(f"unknown sync direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if conflict not in STRATEGIES:
        raise InputError(f"unknown conflict strategy {conflict!r}; use one of {', '.join(STRATEGIES)}")
    attach(store)
    if dry_run:
        plan = _plan(log, store, direction, conflict, now=now, batch=batch, exists=_schema_exists(store))
        return _result(plan, direction, conflict, dry_run=True)
    store.create_schema()
    with _sync_lock(store):
        plan = _plan(log, store, direction, conflict, now=now, batch=batch, exists=True)
        _apply(log, store, plan, direction, batch=batch, progress=progress)
        projection = reproject_tables(store, now=now)
    return _result(plan, direction, conflict, dry_run=False, projection=projection)


def _result(plan: Plan, direction: Direction, strategy: Strategy, *, dry_run: bool,
            projection: ReprojectResult | None = None) -> SyncResult:
    return SyncResult(direction=direction, strategy=strategy, dry_run=dry_run, full_reconciliation=plan.full,
                      to_sql=plan.to_sql + len(plan.resolutions) if direction != "sql_to_json" else 0,
                      to_json=plan.to_json + len(plan.resolutions) if direction != "json_to_sql" else 0,
                      shared=plan.shared, conflicts=tuple(plan.conflicts), resolutions=len(plan.resolutions),
                      keys_touched=plan.keys_touched, log_position=plan.push_end, database_position=plan.pull_end,
                      projection=projection)


def _schema_exists(store: SqlEventStore) -> bool:
    with store.translated(), store.engine.connect() as conn:
        return sa.inspect(conn).has_table(store.tables.event.name, schema=store.tables.schema)


@contextmanager
def _sync_lock(store: SqlEventStore) -> Iterator[None]:
    """Hold the database's sync lock: one sync of a database at a time."""
    if store.dialect_name == "sqlite":
        database = store.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        path = Path(database)
        with WriterLock(path.with_name(path.name + ".sync.lock"), timeout=float(
                os.environ.get("EVENTLOG_SYNC_LOCK_TIMEOUT", 600))).held():
            yield
        return
    with store.translated(), store.engine.connect() as conn, conn.begin():
        # The row stays locked until this transaction ends: a second sync waits here.
        conn.execute(upsert(store.tables.append_lock, store.dialect_name, update=["updated_at_utc"]),
                     [{"name": SYNC_LOCK, "updated_at_utc": "1970-01-01T00:00:00.000000Z"}])
        yield


# -- the reading pass ----------------------------------------------------------------------------------------------

def _plan(log: EventLog, store: SqlEventStore, direction: Direction, strategy: Strategy, *, now: str, batch: int,
          exists: bool) -> Plan:
    plan = Plan()
    ours, theirs = LogSide(log), SqlSide(store, exists=exists)
    push_key, pull_key = watermark_keys(log.replica_id)
    plan.push_end, plan.pull_end = ours.end(), theirs.end()
    plan.push_after = store.get_watermark(push_key) if exists else 0
    plan.pull_after = store.get_watermark(pull_key) if exists else 0
    plan.full = plan.push_after == 0 and plan.pull_after == 0
    if plan.push_after > plan.push_end:  # the log was replaced or cut back: read it whole
        plan.push_after, plan.full = 0, True
    if plan.pull_after > plan.pull_end:
        plan.pull_after, plan.full = 0, True

    # Memory stays one batch of events plus a 64-bit hash per key touched (`KeyHashes`: 8 to 16 bytes a key):
    # the pull side is read first for the keys it changes, the push side then keeps event ids only for keys both
    # sides changed, and only when there are such keys is the pull side read again for their events.
    pulled_keys = KeyHashes()
    for event in _new_events(theirs, ours, plan.pull_after, plan.pull_end, batch, plan, pulling=True):
        plan.to_json += 1
        name = event_name(event)
        if name is not None:
            pulled_keys.add(hash(name))
    pushed_only = KeyHashes()
    pushed: dict[Name, set[str]] = {}
    for event in _new_events(ours, theirs, plan.push_after, plan.push_end, batch, plan, pulling=False):
        plan.to_sql += 1
        name = event_name(event)
        if name is not None:
            key = hash(name)
            if key in pulled_keys:
                pushed.setdefault(name, set()).add(event.event_id)
            else:
                pushed_only.add(key)
    plan.keys_touched = len(pulled_keys) + len(pushed_only)
    del pushed_only, pulled_keys
    pulled: dict[Name, list[Event]] = {}
    if pushed:
        for event in _new_events(theirs, ours, plan.pull_after, plan.pull_end, batch, None, pulling=True):
            name = event_name(event)
            if name is not None and name in pushed:
                pulled.setdefault(name, []).append(event)

    if pulled:
        find_conflicts(log, plan, pushed, pulled, strategy, now=now)
    refuse_under_fail(plan, strategy)
    return plan


def refuse_under_fail(plan: Plan, strategy: Strategy) -> None:
    """Raise the ConflictError (exit 9) listing the plan's conflicts under `fail`; nothing is written yet."""
    if plan.conflicts and strategy == "fail":
        listed = "; ".join(f"{item.source_system}/{item.entity_type}/{item.natural_key} "
                           f"({', '.join(candidate.content_sha256[:12] for candidate in item.candidates)})"
                           for item in plan.conflicts[:5])
        more = f" and {len(plan.conflicts) - 5} more" if len(plan.conflicts) > 5 else ""
        raise ConflictError(f"{len(plan.conflicts)} conflict(s) under the fail strategy, nothing written: "
                            f"{listed}{more}", conflicts=[_conflict_dict(item) for item in plan.conflicts])


def _new_events(source: LogSide | SqlSide, target: LogSide | SqlSide, after: int, end: int, batch: int,
                plan: Plan | None, *, pulling: bool) -> Iterator[Event]:
    """`source`'s events in (after, end] that `target` lacks. A copy under the same id that is the same event
    (a shared observation or decision) is counted in `plan.shared`, once although both passes meet it; another
    event under that id raises the integrity error naming both sides."""
    for chunk in chunks(source.events(after, end), batch):
        present = target.digests([event.event_id for event in chunk])
        for event in chunk:
            digest = present.get(event.event_id)
            if digest is None:
                yield event
            elif digest != event.digest and plan is not None:
                if isinstance(target, SqlSide):
                    position, other = target.get_positioned(event.event_id)
                    # The pull pass, which runs first, counted it when the database's copy is in its range.
                    counted = plan.pull_after < position <= plan.pull_end
                else:
                    other, counted = target.get(event.event_id), False
                lake_side, sql_side = (other, event) if pulling else (event, other)
                if not same_event(lake_side, sql_side):
                    raise clash(event.event_id, lake_side, sql_side)
                if not counted:
                    plan.shared += 1


def find_conflicts(log: EventLog, plan: Plan, pushed: dict[Name, set[str]], pulled: dict[Name, list[Event]],
                    strategy: Strategy, *, now: str) -> None:
    """Compare, for each key both sides changed, this lake's current version with the database's."""
    with IndexReader(log) as reader:
        for name in sorted(pulled):
            source, entity, natural = name
            observations = reader.key_observations(source, entity, natural, upto=plan.push_end, point=None)
            settlements = reader.settlements(source, entity, natural, upto=plan.push_end, point=None)
            ours = key_events_of(observations, settlements)
            theirs = key_events_of(observations, settlements, skip=pushed[name])
            for event in pulled[name]:
                theirs.add(event)
            found = find_conflict(name, ours, theirs)
            if found is None:
                continue
            _, union, mine, other, candidates = found
            winner = decide(strategy, union, mine, other, candidates)
            event_id = None
            if winner is not None:
                resolution = new_resolution(body=resolution_body(name, winner, strategy, candidates),
                                            origin=log.replica_id, recorded_at_utc=now)
                plan.resolutions.append(resolution)
                event_id = resolution.event_id
            plan.conflicts.append(describe_conflict(name, union, mine, other, candidates, strategy, winner,
                                                    event_id))


def _conflict_dict(item: Conflict) -> dict[str, object]:
    built: dict[str, object] = msgspec.to_builtins(item)
    return built


# -- the writing pass ------------------------------------------------------------------------------------------------

def _apply(log: EventLog, store: SqlEventStore, plan: Plan, direction: Direction, *, batch: int,
           progress: Callable[[int], None] | None) -> None:
    ours, theirs = LogSide(log), SqlSide(store, exists=True)
    push_key, pull_key = watermark_keys(log.replica_id)
    done = 0
    pull_to = plan.pull_end
    if direction != "sql_to_json":
        with store.begin() as conn:
            # append_events takes the append lock first: nobody else appends until this commits.
            store.append_events([], conn=conn)
            untouched = store.max_event_seq(conn=conn) == plan.pull_end
            for chunk in chunks(ours.events(plan.push_after, plan.push_end), batch):
                present = theirs.digests([event.event_id for event in chunk], conn)
                store.append_events([event for event in chunk if event.event_id not in present], conn=conn)
                done += len(chunk)
                if progress is not None:
                    progress(done)
            fresh = theirs.digests([event.event_id for event in plan.resolutions], conn)
            store.append_events([event for event in plan.resolutions if event.event_id not in fresh], conn=conn)
            store.set_watermark(push_key, plan.push_end, conn)
            if untouched:
                # What this transaction added is already in the log or about to be: no need to read it back.
                pull_to = store.max_event_seq(conn=conn)
    if direction != "json_to_sql":
        log.append_events(_new_to_log(ours, theirs, plan, batch, progress, done))
        store.set_watermark(pull_key, pull_to if direction == "bidirectional" else plan.pull_end)


def _new_to_log(ours: LogSide, theirs: SqlSide, plan: Plan, batch: int, progress: Callable[[int], None] | None,
                done: int) -> Iterator[Event]:
    """The database's events the log lacks, then the new resolutions, as the log's append takes them."""
    for chunk in chunks(theirs.events(plan.pull_after, plan.pull_end), batch):
        known = ours.digests([event.event_id for event in chunk])
        yield from (event for event in chunk if event.event_id not in known)
        done += len(chunk)
        if progress is not None:
            progress(done)
    known = ours.digests([event.event_id for event in plan.resolutions])
    yield from (event for event in plan.resolutions if event.event_id not in known)

