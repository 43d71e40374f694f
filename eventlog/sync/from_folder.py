"""`sync --from PATH`: merge a log folder copied from another machine into this lake's log, read only.

The copied folder is one more replica (`eventlog.sync.folder.CopiedLog`, which never writes into it and checks its
hash chain and seals as it reads). Merge is the union by event id, into this lake only: the copied events this log
lacks are appended through the log's foreign-event path, keeping their identity (event id, digest, origin,
recorded time). A capture both lakes ingested (same exchange id, content hash and observed time under another
origin) is one observation, kept once; any other event under a known id is an integrity error and nothing is
written. Conflicts are found and decided by the sync engine's code (`eventlog.sync.engine.find_conflicts`): this
lake's log plays the `json` side, the copied log the `sql` side (so `prefer_sql` prefers the copied folder).

Incremental by event identity: the folder is read whole each time (it carries no watermark of ours), and a second
run of the same folder appends nothing. Memory: one batch of events, the ids of the copied log's events, the keys
its new events touch, and the new events of keys both sides changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from eventlog.errors import InputError
from eventlog.format.events import Event
from eventlog.log.writer import EventLog
from eventlog.sync.conflicts import Name, event_name
from eventlog.sync.engine import BATCH, Plan, find_conflicts, refuse_under_fail
from eventlog.sync.folder import CopiedLog, log_folder
from eventlog.sync.identity import clash, same_event
from eventlog.sync.result import STRATEGIES, Strategy, SyncResult
from eventlog.sync.sides import LogSide, chunks
from projections.log_source import IndexReader

__all__ = ["sync_from"]


def sync_from(log: EventLog, path: Path, *, conflict: Strategy = "prefer_newest", dry_run: bool = False, now: str,
              batch: int = BATCH, progress: Callable[[int], None] | None = None) -> SyncResult:
    """Append the events of the log folder at `path` (a lake's folder or its log/ folder) that `log` lacks.

    Returns the plan (`dry_run`: nothing is written) or what was done, as a SyncResult whose `to_json` counts
    the events appended (resolutions included) and `to_sql` is 0. Raises InputError when `path` holds no log
    (or is this lake's own), IntegrityError naming the file and line when the copied log is damaged, or naming
    both sides when one event id is two different events, ConflictError (exit 9) under `fail`: in each case
    before anything is written.
    """
    if conflict not in STRATEGIES:
        raise InputError(f"unknown conflict strategy {conflict!r}; use one of {', '.join(STRATEGIES)}")
    root = log_folder(path)
    if root is None:
        raise InputError("holds no event log (neither a lake's folder nor a log/ folder with segments/)",
                         source=str(path))
    if root.resolve() == log.root.resolve():
        raise InputError("is this lake's own log", source=str(path))
    copied, ours = CopiedLog(root), LogSide(log)
    other = f"the copied log at {root}"
    plan = Plan()
    plan.full = True
    plan.push_end = ours.end()

    held: set[str] = set()
    touched: set[Name] = set()
    for chunk in chunks(copied.events(), batch):
        present = ours.digests([event.event_id for event in chunk])
        for event in chunk:
            held.add(event.event_id)
            plan.pull_end = event.seq
            digest = present.get(event.event_id)
            if digest is None:
                plan.to_json += 1
                name = event_name(event)
                if name is not None:
                    touched.add(name)
            elif digest != event.digest:
                mine = ours.get(event.event_id)
                if not same_event(mine, event):
                    raise clash(event.event_id, mine, event, other=other)
                plan.shared += 1
    plan.keys_touched = len(touched)

    # A key is in conflict only when both sides changed it: the copied log brings new events of it and this log
    # holds events of it that the copied log lacks.
    pushed: dict[Name, set[str]] = {}
    if touched:
        with IndexReader(log) as reader:
            for name in sorted(touched):
                source, entity, natural = name
                mine_only = {item.exchange_id for item in reader.key_observations(
                    source, entity, natural, upto=plan.push_end, point=None) if item.exchange_id not in held}
                mine_only.update(item.event_id for item in reader.settlements(
                    source, entity, natural, upto=plan.push_end, point=None) if item.event_id not in held)
                if mine_only:
                    pushed[name] = mine_only
    del held, touched
    if pushed:
        pulled: dict[Name, list[Event]] = {}
        for event in _missing(copied, ours, batch):
            name = event_name(event)
            if name is not None and name in pushed:
                pulled.setdefault(name, []).append(event)
        find_conflicts(log, plan, pushed, pulled, conflict, now=now)
    refuse_under_fail(plan, conflict)
    written = 0
    if not dry_run and (plan.to_json or plan.resolutions):
        written = log.append_events(_to_append(copied, ours, plan, batch, progress))
    return SyncResult(direction="sql_to_json", strategy=conflict, dry_run=dry_run, full_reconciliation=True,
                      to_sql=0, to_json=plan.to_json + len(plan.resolutions) if dry_run else written,
                      shared=plan.shared, conflicts=tuple(plan.conflicts), resolutions=len(plan.resolutions),
                      keys_touched=plan.keys_touched, log_position=plan.push_end, database_position=plan.pull_end)


def _missing(copied: CopiedLog, ours: LogSide, batch: int) -> Iterator[Event]:
    """The copied log's events whose ids this log does not hold."""
    for chunk in chunks(copied.events(), batch):
        known = ours.digests([event.event_id for event in chunk])
        yield from (event for event in chunk if event.event_id not in known)


def _to_append(copied: CopiedLog, ours: LogSide, plan: Plan, batch: int,
               progress: Callable[[int], None] | None) -> Iterator[Event]:
    """The events to append, as the log's foreign-event path takes them: the missing ones, then the resolutions.

    Read again from the folder (checked again): memory stays one batch."""
    done = 0
    for event in _missing(copied, ours, batch):
        yield event
        done += 1
        if progress is not None and done % batch == 0:
            progress(done)
    if progress is not None:
        progress(done)
    known = ours.digests([event.event_id for event in plan.resolutions])
    yield from (event for event in plan.resolutions if event.event_id not in known)
