"""`sync --from PATH`: merge a log folder copied from another machine into this lake's log, read only.

The copied folder is one more replica (`eventlog.sync.folder.CopiedLog`, which never writes into it and checks its
hash chain and seals as it reads). Merge is the union by event id, into this lake only: the copied events this log
lacks are appended through the log's foreign-event path, keeping their identity (event id, digest, origin,
recorded time). A capture both lakes ingested (same exchange id, content hash and observed time under another
origin) is one observation, kept once; any other event under a known id is an integrity error and nothing is
written. Conflicts are found and decided by the sync engine's code (`eventlog.sync.engine.find_conflicts`): this
lake's log plays the `json` side, the copied log the `sql` side (so `prefer_sql` prefers the copied folder).

Incremental from a watermark: `log/sources/<source replica>.json` (eventlog.sync.source_marks) records the copied
log's seq and line hash reached by the last run and this log's end then. A later run of a copy of the same replica
opens only the segments after that seq (the seals of the others are checked, and the chain from the watermark
line's hash); a key is in conflict when this log has events of it after its recorded end that the copy lacks and
the copy brings new events of it, as `sync` counts changes since the two last agreed. First contact, a bare log
folder (no lake.json naming its replica) and a copy that no longer holds the watermark line (truncated or
replaced) are read whole: a full reconciliation, said in the result's `note` when a watermark had to be dropped.
A second run of the same folder appends nothing. Segments the copy evicted to cold storage are read from its
archive/ folder with the keys given; when reading needs one and none is at hand, nothing is read or written.
Memory: one batch of events, a 64-bit hash (8 to 16 bytes) for each key this log changed since the two last agreed
and for each key the copied log brings new events of, and the ids, names and new events of the keys both changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from eventlog.cold.keys import Keys
from eventlog.cold.reader import ColdStore
from eventlog.errors import InputError
from eventlog.format.events import Event
from eventlog.format.identity import exchange_key
from eventlog.log.writer import EventLog
from eventlog.sync.conflicts import Name, event_name
from eventlog.sync.engine import BATCH, Plan, find_conflicts, refuse_under_fail
from eventlog.sync.folder import FULL, CopiedLog, Start, log_folder
from eventlog.sync.identity import clash, same_event
from eventlog.sync.keyhashes import KeyHashes
from eventlog.sync.result import STRATEGIES, Strategy, SyncResult
from eventlog.sync.sides import LogSide, chunks
from eventlog.sync.source_marks import SourceMark, read_mark, source_replica, write_mark
from projections.log_source import IndexReader

__all__ = ["sync_from"]


def sync_from(log: EventLog, path: Path, *, conflict: Strategy = "prefer_newest", dry_run: bool = False, now: str,
              keys: Keys | None = None, batch: int = BATCH,
              progress: Callable[[int], None] | None = None) -> SyncResult:
    """Append the events of the log folder at `path` (a lake's folder or its log/ folder) that `log` lacks.

    `keys` open the copy's evicted segments (None: those of the environment). Returns the plan (`dry_run`: nothing
    is written) or what was done, as a SyncResult whose `to_json` counts the events appended (resolutions
    included) and `to_sql` is 0. Raises InputError when `path` holds no log (or is this lake's own), IntegrityError
    naming the file and line when the copied log is damaged, or naming both sides when one event id is two
    different events, ArchiveError (exit 8) naming the archive and the key options when an evicted segment must be
    read and no key is at hand, or cannot be opened with the one given, ConflictError (exit 9) under `fail`: in
    each case before anything is written.
    """
    if conflict not in STRATEGIES:
        raise InputError(f"unknown conflict strategy {conflict!r}; use one of {', '.join(STRATEGIES)}")
    root = log_folder(path)
    if root is None:
        raise InputError("holds no event log (neither a lake's folder nor a log/ folder with segments/)",
                         source=str(path))
    if root.resolve() == log.root.resolve():
        raise InputError("is this lake's own log", source=str(path))
    # Decrypted segments go to anonymous files in this lake's log folder: the copy is never written.
    cold = ColdStore(root.parent, keys=keys, log_dir=root, scratch=log.root)
    try:
        return _sync_from(log, CopiedLog(root, cold=cold), conflict=conflict, dry_run=dry_run, now=now,
                          batch=batch, progress=progress)
    finally:
        cold.close()


def _sync_from(log: EventLog, copied: CopiedLog, *, conflict: Strategy, dry_run: bool, now: str, batch: int,
               progress: Callable[[int], None] | None) -> SyncResult:
    ours = LogSide(log)
    other = f"the copied log at {copied.root}"
    plan = Plan()
    plan.push_end = ours.end()
    source = source_replica(copied.root)
    mark = read_mark(log.root, replica=log.replica_id, source=source) if source is not None else None
    start, agreed, note = FULL, 0, None
    if mark is not None:
        resumed = copied.resume(mark.source_seq, mark.source_line_hash) if mark.log_seq <= plan.push_end else None
        if resumed is None:
            note = (f"full reconciliation: the copied log no longer holds seq {mark.source_seq}, where the last sync "
                    "from it stopped (it was truncated or replaced), so it was read whole")
        else:
            start, agreed = resumed, mark.log_seq
    plan.full = start == FULL
    plan.pull_after = plan.pull_end = start.after
    copied.refuse_without_key(start)

    # Memory: 8 to 16 bytes for each key this log changed since the two last agreed and for each key the copy
    # brings new events of (`KeyHashes`); names and ids only for the keys both changed, which a second read of the
    # copy collects when there are any. A key is hashed by its exchange_key on both sides, as the index holds it.
    mine_keys = _keys_changed(log, agreed, plan.push_end)
    pulled_keys = KeyHashes()
    overlap: set[Name] = set()  # keys the copy brings new events of, which this log changed too
    for chunk in chunks(copied.events(start), batch):
        present = ours.digests([event.event_id for event in chunk])
        for event in chunk:
            plan.pull_end = event.seq
            digest = present.get(event.event_id)
            if digest is None:
                plan.to_json += 1
                name = event_name(event)
                if name is not None:
                    key = hash(exchange_key(*name))
                    pulled_keys.add(key)
                    if key in mine_keys:
                        overlap.add(name)
            elif digest != event.digest:
                mine_event = ours.get(event.event_id)
                if not same_event(mine_event, event):
                    raise clash(event.event_id, mine_event, event, other=other)
                plan.shared += 1
    reached = copied.reached
    plan.keys_touched = len(pulled_keys)
    del mine_keys, pulled_keys

    # A key is in conflict only when both sides changed it: the copied log brings new events of it and this log
    # holds events of it that the copied log lacks (after `agreed`: what this log held when it last merged the copy).
    pushed: dict[Name, set[str]] = {}
    if overlap:
        held = _held(copied, start, plan.pull_end, overlap, batch)
        with IndexReader(log) as reader:
            for name in sorted(overlap):
                source_system, entity, natural = name
                mine_only = {item.exchange_id for item in reader.key_observations(
                    source_system, entity, natural, upto=plan.push_end, point=None)
                    if item.seq > agreed and item.exchange_id not in held}
                settled_before = {item.event_id for item in reader.settlements(
                    source_system, entity, natural, upto=agreed, point=None)} if agreed else set()
                mine_only.update(item.event_id for item in reader.settlements(
                    source_system, entity, natural, upto=plan.push_end, point=None)
                    if item.event_id not in held and item.event_id not in settled_before)
                if mine_only:
                    pushed[name] = mine_only
        del held
    del overlap
    if pushed:
        pulled: dict[Name, list[Event]] = {}
        for event in _missing(copied, start, plan.pull_end, ours, batch):
            name = event_name(event)
            if name is not None and name in pushed:
                pulled.setdefault(name, []).append(event)
        find_conflicts(log, plan, pushed, pulled, conflict, now=now)
    refuse_under_fail(plan, conflict)
    written = 0
    if not dry_run:
        if plan.to_json or plan.resolutions:
            written = log.append_events(_to_append(copied, start, ours, plan, batch, progress))
        if source is not None and reached[0] > 0 and (mark is None or note is not None
                                                      or (mark.source_seq, mark.source_line_hash) != reached):
            write_mark(log.root, SourceMark(replica=log.replica_id, source=source, source_seq=reached[0],
                                            source_line_hash=reached[1], log_seq=ours.end(), synced_at_utc=now))
    return SyncResult(direction="sql_to_json", strategy=conflict, dry_run=dry_run, full_reconciliation=plan.full,
                      to_sql=0, to_json=plan.to_json + len(plan.resolutions) if dry_run else written,
                      shared=plan.shared, conflicts=tuple(plan.conflicts), resolutions=len(plan.resolutions),
                      keys_touched=plan.keys_touched, log_position=plan.push_end, database_position=plan.pull_end,
                      segments_read=len(copied.segments_opened), note=note)


def _keys_changed(log: EventLog, after: int, upto: int) -> KeyHashes:
    """The hashed exchange_keys of this log's events with `after` < seq <= `upto`, from its index (a resolution's
    key from its event, which names it)."""
    keys = KeyHashes()
    for entry in log.index.between(after, upto):
        key = entry.exchange_key
        if entry.type == "resolved":
            name = event_name(log.read_at(entry))
            key = exchange_key(*name) if name is not None else None
        if key is not None:
            keys.add(hash(key))
    return keys


def _held(copied: CopiedLog, start: Start, end: int, names: set[Name], batch: int) -> set[str]:
    """The ids of the copied log's events after `start` up to `end` that speak of one of `names`."""
    return {event.event_id for chunk in chunks(copied.events(start, end=end), batch) for event in chunk
            if event_name(event) in names}


def _missing(copied: CopiedLog, start: Start, end: int, ours: LogSide, batch: int) -> Iterator[Event]:
    """The copied log's events after `start` up to `end` whose ids this log does not hold."""
    for chunk in chunks(copied.events(start, end=end), batch):
        known = ours.digests([event.event_id for event in chunk])
        yield from (event for event in chunk if event.event_id not in known)


def _to_append(copied: CopiedLog, start: Start, ours: LogSide, plan: Plan, batch: int,
               progress: Callable[[int], None] | None) -> Iterator[Event]:
    """The events to append, as the log's foreign-event path takes them: the missing ones, then the resolutions.

    Read again from the folder (checked again): memory stays one batch."""
    done = 0
    for event in _missing(copied, start, plan.pull_end, ours, batch):
        yield event
        done += 1
        if progress is not None and done % batch == 0:
            progress(done)
    if progress is not None:
        progress(done)
    known = ours.digests([event.event_id for event in plan.resolutions])
    yield from (event for event in plan.resolutions if event.event_id not in known)
