"""The scheduler service: `serve` runs the configured jobs on their schedules, `run_once` runs each once.

`serve` uses APScheduler 3 with its in-memory job store: the jobs come from the configuration file on every
start, never from the database. What must outlive a restart is plain run state in the lake's database (see
state.py): a job whose schedule is unchanged resumes from its stored next run, so runs missed while stopped are
made up once (coalesced). A job never overlaps itself: within one process APScheduler runs one instance at a
time, and across processes each run holds its flock (see jobs.py).
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa

from eventlog.app.lake import Lake
from eventlog.app.scheduler.config import SchedulerConfig, job_trigger
from eventlog.app.scheduler.jobs import RUN_DIR, JobRun, run_job, sentence
from eventlog.app.scheduler.state import JobState, RunStateTable, open_engine, parse_stored_time
from eventlog.errors import EventLogError
from eventlog.format.envelope import format_utc
from eventlog.sql.dialects import translate_error

JOB_ID_PREFIX = "eventlog."
MISSED_COUNT_CAP = 10_000

log = logging.getLogger("eventlog.app.scheduler")


def run_once(config: SchedulerConfig, lake_path: Path) -> list[JobRun]:
    """Run every configured job once, in file order, each under its lock; the run-state table is not touched."""
    Lake.open(lake_path).close()
    return [run_job(str(lake_path.resolve()), spec.name) for spec in config.jobs]


@contextmanager
def setup_lock(lake_root: Path) -> Iterator[None]:
    """Hold <lake>/run/scheduler-setup.lock, waiting for it: a scheduler's start-up, one process at a time."""
    fd = os.open(lake_root / RUN_DIR / "scheduler-setup.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Repeated(logging.Filter):
    """Drops APScheduler's own lines for skipped and missed runs, which this module logs in its own form."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Run time of job", "Execution of job"))


class _StateKeeper:
    """Carries next and last runs from the running scheduler to the run-state table, from one thread.

    Finished runs are queued by the executor's threads; `flush` (called by the main loop) writes the rows that
    changed. A write that fails is logged once and retried at the next flush: the jobs keep running.
    """

    def __init__(self, table: RunStateTable, states: dict[str, JobState]) -> None:
        self.table = table
        self.saved = dict(states)
        self.wanted = dict(states)
        self.finished: collections.deque[JobRun] = collections.deque()
        self.failing = False

    def flush(self, next_runs: dict[str, datetime | None]) -> None:
        """Write what changed since the last write: the runs that finished and `next_runs` (by job name)."""
        while self.finished:
            run = self.finished.popleft()
            if run.job in self.wanted:
                self.wanted[run.job] = msgspec.structs.replace(
                    self.wanted[run.job], last_start_utc=run.start_utc,
                    last_duration_seconds=round(run.duration_seconds, 6), last_outcome=run.outcome)
        for name, moment in next_runs.items():
            if name in self.wanted:
                text = None if moment is None else format_utc(moment.astimezone(UTC))
                self.wanted[name] = msgspec.structs.replace(self.wanted[name], next_run_utc=text)
        changed = [state for name, state in self.wanted.items() if state != self.saved.get(name)]
        if not changed:
            return
        try:
            self.table.save(changed)
        except sa.exc.DBAPIError as exc:
            if not self.failing:
                log.warning(f"cannot save the run state, retrying: {translate_error(exc, self.table.engine.url)}")
            self.failing = True
            return
        if self.failing:
            log.info("the run state is saved again")
        self.failing = False
        self.saved = dict(self.wanted)


def _next_runs(scheduler: Any) -> dict[str, datetime | None]:
    return {job.id.removeprefix(JOB_ID_PREFIX): job.next_run_time for job in scheduler.get_jobs()}


def serve(config: SchedulerConfig, lake_path: Path, *, stop: threading.Event | None = None) -> None:
    """Run the configured jobs on their schedules until SIGTERM or SIGINT (or `stop` is set), then stop cleanly.

    Stopping lets a running job finish, then shuts the scheduler down. The run state lives in table
    `config.table` of the lake's database; a job whose schedule is unchanged resumes from its stored next run,
    so runs missed while stopped are made up once on start. Raises LakeError for a missing lake, DatabaseError
    when the run-state table cannot be used at start, InputError when that table has another shape, and
    EventLogError when the scheduler's own loop fails (the process should then be restarted).
    """
    from apscheduler.events import (
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        JobExecutionEvent,
        JobSubmissionEvent,
    )
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    root = lake_path.resolve()
    with Lake.open(root) as lake:
        database_url, replica_id = lake.database_url, lake.config.replica_id
    (root / RUN_DIR).mkdir(exist_ok=True)
    engine = open_engine(database_url)
    table = RunStateTable(engine, table=config.table, replica_id=replica_id, source=config.source)
    # No job store is named: APScheduler keeps the jobs in memory, built from the configuration on each start.
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=len(config.jobs))},
                                    job_defaults={"coalesce": True, "max_instances": 1},
                                    timezone=ZoneInfo(config.timezone))
    failure: list[BaseException] = []
    received: list[str] = []
    keeper: _StateKeeper | None = None

    def on_skip(event: JobSubmissionEvent) -> None:
        name = event.job_id.removeprefix(JOB_ID_PREFIX)
        for moment in event.scheduled_run_times:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                log.info(JobRun(job=name, start_utc=format_utc(moment), duration_seconds=0.0, outcome="skipped",
                                detail="still running (in this scheduler)").line())
            else:
                log.warning(f"job={name} start={format_utc(moment)} duration=0.000s outcome=missed: later than "
                            "its misfire grace")

    def on_executed(event: JobExecutionEvent) -> None:
        if keeper is not None and isinstance(event.retval, JobRun):
            keeper.finished.append(event.retval)

    def on_thread_error(args: threading.ExceptHookArgs) -> None:
        failure.append(args.exc_value or RuntimeError("the scheduler thread stopped"))
        log.error(f"the scheduler stopped after an error: {sentence(args.exc_value or RuntimeError())}",
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
        stop.set()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        # Only flag it here: logging from a signal handler could wait on a lock the interrupted code holds.
        received.append(signal.Signals(number).name)
        stop.set()

    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    scheduler.add_listener(on_executed, EVENT_JOB_EXECUTED)
    quiet = _Repeated()
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).addFilter(quiet)
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        previous_handlers = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    previous_hook = threading.excepthook
    threading.excepthook = on_thread_error
    try:
        try:
            # Two schedulers of one lake starting together would race to create the table and its rows.
            with setup_lock(root):
                for notice in table.prepare():
                    log.warning(notice)
                stored = table.load({spec.name for spec in config.jobs})
                for notice in stored.notices:
                    log.warning(notice)
                scheduler.start(paused=True)
                states = _add_jobs(scheduler, config, str(root), stored.jobs)
                table.save(states.values())
                keeper = _StateKeeper(table, states)
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc, engine.url) from exc
        scheduler.resume()
        jobs = "; ".join(spec.describe(config.timezone) for spec in config.jobs)
        log.info(f"scheduler started: lake {root}, run state in table {config.table}, jobs: {jobs}")
        while not stop.wait(1.0):
            keeper.flush(_next_runs(scheduler))
        if received:
            log.info(f"received {received[0]}: finishing running jobs, then stopping")
    finally:
        if scheduler.running:
            next_runs = _next_runs(scheduler)
            # Paused and without its store, APScheduler's loop submits nothing more: left alone, it makes one last
            # pass once shutdown begins and fails to submit whatever fell due while running jobs finished.
            scheduler.pause()
            scheduler.remove_jobstore("default", shutdown=False)
            scheduler.shutdown(wait=True)
            if keeper is not None:
                keeper.flush(next_runs)
        engine.dispose()
        threading.excepthook = previous_hook
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).removeFilter(quiet)
    if failure:
        raise EventLogError(f"the scheduler stopped after an error: {sentence(failure[0])}")
    log.info("scheduler stopped")


def _add_jobs(scheduler: Any, config: SchedulerConfig, lake: str, stored: dict[str, JobState]) -> dict[str, JobState]:
    """Add the configured jobs; one whose stored schedule text is unchanged resumes from its stored next run."""
    now = datetime.now(UTC)
    states = {}
    for spec in config.jobs:
        description = spec.describe(config.timezone)
        trigger = job_trigger(spec, config.timezone)
        options: dict[str, Any] = {}
        previous = stored.get(spec.name)
        if previous is not None and previous.schedule == description:
            next_run = parse_stored_time(previous.next_run_utc)
            options["next_run_time"] = next_run
            missed = _missed_runs(trigger, next_run, now)
            if missed:
                log.info(f"job={spec.name} missed {missed} run(s) while stopped; they run once now "
                         f"(coalesced) if within the misfire grace of {spec.misfire_grace:g}s")
        job = scheduler.add_job(run_job, trigger, args=[lake, spec.name], id=JOB_ID_PREFIX + spec.name,
                                name=description, coalesce=True, max_instances=1,
                                misfire_grace_time=max(1, round(spec.misfire_grace)), **options)
        states[spec.name] = JobState(
            job=spec.name, schedule=description,
            next_run_utc=None if job.next_run_time is None else format_utc(job.next_run_time.astimezone(UTC)),
            last_start_utc=previous.last_start_utc if previous else None,
            last_duration_seconds=previous.last_duration_seconds if previous else None,
            last_outcome=previous.last_outcome if previous else None)
    return states


def _missed_runs(trigger: Any, moment: datetime | None, now: datetime) -> str:
    """How many fire times of `trigger` from `moment` on passed before `now` ("" when none)."""
    count = 0
    while moment is not None and moment <= now and count < MISSED_COUNT_CAP:
        count += 1
        moment = trigger.get_next_fire_time(moment, now + timedelta(microseconds=1))
    if count == 0:
        return ""
    return f"{count}+" if count >= MISSED_COUNT_CAP else str(count)
