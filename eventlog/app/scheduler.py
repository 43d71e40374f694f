"""Scheduled upkeep of a lake: named jobs (mirror, reproject, seal, ...) on intervals or cron expressions.

The scheduler is APScheduler 3 with its job store in the lake's database, so a restart knows which runs it missed
and makes them up once (coalesced). A job never overlaps itself: within one process APScheduler runs one instance
at a time, and across processes each run holds a non-blocking flock on <lake>/run/<job>.lock; a run that finds
the lock held logs `skipped: still running` and returns. Every run logs one line on the `eventlog.app.scheduler`
logger: job, start, duration, outcome and the counts the job returned.

Jobs come from a registry: name -> callable(lake) -> summary (a msgspec Struct, a mapping, a scalar or None);
built in are mirror, reproject, seal and verify (which fails the run, exit code 6, when verify finds a problem).
EVENTLOG_SCHEDULER_EXTRA_JOBS adds jobs as comma-separated `name=module:function` entries.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import re
import signal
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import sqlalchemy as sa

from eventlog.app.lake import Lake
from eventlog.errors import EventLogError, InputError, IntegrityError
from eventlog.format.envelope import format_utc
from eventlog.sql.dialects import engine_options, on_connect, translate_error

JobFunc = Callable[[Lake], object]

EXTRA_JOBS_ENV = "EVENTLOG_SCHEDULER_EXTRA_JOBS"
DEFAULT_TABLE = "eventlog_scheduler_jobs"
RUN_DIR = "run"
JOB_ID_PREFIX = "eventlog."
# A cron job missed by more than this is skipped rather than made up (an interval job's grace is its interval).
CRON_MISFIRE_GRACE = 3600.0
MISSED_COUNT_CAP = 10_000
_SHORT_WORD = 48

log = logging.getLogger("eventlog.app.scheduler")

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SCHEDULER_KEYS = ("table", "timezone")
_JOB_KEYS = ("cron", "every", "misfire_grace")


# -- the registry -------------------------------------------------------------------------------------------------


def _mirror(lake: Lake) -> object:
    return lake.mirror()


def _reproject(lake: Lake) -> object:
    return lake.reproject()


def _seal(lake: Lake) -> object:
    return {"sealed": lake.seal()}


def _verify(lake: Lake) -> object:
    report = lake.verify()
    if not report.ok:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise IntegrityError(f"verify failed: {report.problems[0]}{more}")
    return {"events": report.events, "segments": report.segments, "seals": report.seals, "evicted": report.evicted}


BUILTIN_JOBS: dict[str, JobFunc] = {"mirror": _mirror, "reproject": _reproject, "seal": _seal, "verify": _verify}


def job_registry(environ: Mapping[str, str] | None = None) -> dict[str, JobFunc]:
    """The built-in jobs plus those EVENTLOG_SCHEDULER_EXTRA_JOBS names (`name=module:function`, comma-separated).

    Raises InputError naming the variable and the entry when an entry is malformed or does not import.
    """
    registry = dict(BUILTIN_JOBS)
    text = (os.environ if environ is None else environ).get(EXTRA_JOBS_ENV, "")
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, target = entry.partition("=")
        module_name, colon, attribute = target.strip().partition(":")
        name = name.strip()
        if not equals or not colon or not _NAME.match(name) or not module_name or not attribute:
            raise InputError(f"entry {entry!r} is not name=module:function (a lowercase job name)",
                             source=EXTRA_JOBS_ENV)
        try:
            func = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"job {name!r}: cannot load {target.strip()}: {exc}", source=EXTRA_JOBS_ENV) from None
        if not callable(func):
            raise InputError(f"job {name!r}: {target.strip()} is not callable", source=EXTRA_JOBS_ENV)
        registry[name] = func
    return registry


# -- configuration ------------------------------------------------------------------------------------------------


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One configured job: exactly one of `every` (seconds) and `cron` (five crontab fields)."""

    name: str
    every: float | None = None
    cron: str | None = None
    misfire_grace: float

    def describe(self, timezone: str) -> str:
        """A stable text of the schedule; a stored job whose text differs is replaced on start."""
        when = f"every {self.every:g}s" if self.every is not None else f"cron {self.cron!r} {timezone}"
        return f"{self.name} {when}, misfire grace {self.misfire_grace:g}s"


class SchedulerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A validated scheduler configuration file."""

    source: str
    timezone: str = "UTC"
    table: str = DEFAULT_TABLE
    jobs: tuple[JobSpec, ...]


def load_config(path: Path, *, registry: Mapping[str, JobFunc] | None = None) -> SchedulerConfig:
    """Read and validate a TOML scheduler configuration.

    Raises InputError naming the file and the key for an unreadable file, an unknown key or job, a malformed
    interval or cron expression, or a job with both or neither of `every` and `cron`.
    """
    source = str(path)
    jobs_known = BUILTIN_JOBS if registry is None else registry
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("the scheduler configuration file does not exist", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the scheduler configuration: {exc}", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source=source) from None
    for key in document:
        if key not in ("scheduler", "jobs"):
            raise InputError("unknown key; expected [scheduler] and [jobs.NAME] tables", source=source, path=key)
    settings = _table(document.get("scheduler", {}), source, "scheduler")
    _known_keys(settings, _SCHEDULER_KEYS, source, "scheduler")
    timezone = _text(settings.get("timezone", "UTC"), source, "scheduler.timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {timezone!r}", source=source, path="scheduler.timezone") from None
    table = _text(settings.get("table", DEFAULT_TABLE), source, "scheduler.table")
    if not _TABLE.match(table):
        raise InputError(f"table name {table!r} is not a plain SQL identifier", source=source, path="scheduler.table")
    jobs_table = _table(document.get("jobs", {}), source, "jobs")
    if not jobs_table:
        raise InputError("no jobs are configured; add a [jobs.NAME] table", source=source, path="jobs")
    specs = []
    for name, value in jobs_table.items():
        where = f"jobs.{name}"
        if name not in jobs_known:
            raise InputError(f"unknown job {name!r}; known jobs: {', '.join(sorted(jobs_known))}",
                             source=source, path=where)
        specs.append(_job_spec(name, _table(value, source, where), timezone, source, where))
    return SchedulerConfig(source=source, timezone=timezone, table=table, jobs=tuple(specs))


def _job_spec(name: str, fields: dict[str, Any], timezone: str, source: str, where: str) -> JobSpec:
    _known_keys(fields, _JOB_KEYS, source, where)
    if ("every" in fields) == ("cron" in fields):
        raise InputError("give exactly one of `every` (an interval such as \"5m\") and `cron` "
                         "(five crontab fields)", source=source, path=where)
    grace = None
    if "misfire_grace" in fields:
        grace = parse_duration(fields["misfire_grace"], source=source, path=f"{where}.misfire_grace")
    if "every" in fields:
        every = parse_duration(fields["every"], source=source, path=f"{where}.every")
        return JobSpec(name=name, every=every, misfire_grace=grace if grace is not None else every)
    cron = " ".join(_text(fields["cron"], source, f"{where}.cron").split())
    cron_trigger(cron, timezone, source=source, path=f"{where}.cron")
    return JobSpec(name=name, cron=cron, misfire_grace=grace if grace is not None else CRON_MISFIRE_GRACE)


def _table(value: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError("expected a table", source=source, path=where)
    return value


def _text(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise InputError("expected a string", source=source, path=where)
    return value


def _known_keys(fields: Mapping[str, Any], allowed: tuple[str, ...], source: str, where: str) -> None:
    for key in fields:
        if key not in allowed:
            raise InputError(f"unknown key; expected {', '.join(allowed)}", source=source, path=f"{where}.{key}")


def parse_duration(value: object, *, source: str | None = None, path: str | None = None) -> float:
    """Seconds in a duration such as "5m", "90s", "1h30m", "500ms", or a number of seconds; must be > 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and _DURATION_PART.sub("", value.strip()) == "":
        seconds = sum(float(number) * _UNIT_SECONDS[unit]
                      for number, unit in _DURATION_PART.findall(value.strip()))
    else:
        raise InputError(f"{value!r} is not a duration such as \"30s\", \"5m\", \"1h30m\" or \"1d\"",
                         source=source, path=path)
    if not seconds > 0 or seconds == float("inf"):
        raise InputError(f"{value!r} is not a positive duration", source=source, path=path)
    return seconds


def cron_trigger(expression: str, timezone: str, *, source: str | None = None, path: str | None = None) -> Any:
    """An APScheduler CronTrigger for five crontab fields, with crontab's weekdays (0 and 7 are Sunday).

    APScheduler 3 counts weekdays from Monday; the day-of-week field is expanded to day names so that a
    crontab line means here what it means to cron. Raises InputError for a malformed expression.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise InputError(f"{expression!r} has {len(fields)} fields; a cron expression has five "
                         "(minute hour day-of-month month day-of-week)", source=source, path=path)
    try:
        weekdays = _weekdays(fields[4])
        return CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3], day_of_week=weekdays,
                           timezone=ZoneInfo(timezone))
    except ValueError as exc:
        raise InputError(f"{expression!r} is not a valid cron expression: {exc}", source=source, path=path) from None


def _weekdays(field: str) -> str:
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if slash and step_text.isdigit() and int(step_text) > 0 else None
        if slash and step is None:
            raise ValueError(f"bad step in day-of-week {part!r}")
        if span == "*":
            first, last = 0, 6
        else:
            low, dash, high = span.partition("-")
            first = _weekday(low)
            last = _weekday(high) if dash else (6 if slash else first)
            if dash and high in ("7", "sun") and first > 0:
                last = 7
        if last < first:
            raise ValueError(f"day-of-week range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_DAYS[day] for day in sorted(days))


def _weekday(text: str) -> int:
    if text in _DAYS:
        return _DAYS.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def _trigger(spec: JobSpec, timezone: str) -> Any:
    from apscheduler.triggers.interval import IntervalTrigger

    if spec.every is not None:
        return IntervalTrigger(seconds=spec.every, timezone=ZoneInfo(timezone))
    assert spec.cron is not None
    return cron_trigger(spec.cron, timezone)


# -- one run ------------------------------------------------------------------------------------------------------


class JobRun(msgspec.Struct, frozen=True, kw_only=True):
    """What one run of a job did: outcome `ok`, `failed` or `skipped`, and the counts the job returned."""

    job: str
    start_utc: str
    duration_seconds: float
    outcome: str
    detail: str | None = None
    counts: dict[str, Any] = msgspec.field(default_factory=dict)
    exit_code: int = 0

    def line(self) -> str:
        """The run's log line."""
        text = f"job={self.job} start={self.start_utc} duration={self.duration_seconds:.3f}s outcome={self.outcome}"
        if self.detail:
            text += f": {self.detail}"
        return text + "".join(f" {key}={_show(value)}" for key, value in self.counts.items())


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def summarize(result: object) -> dict[str, Any]:
    """The counts a job's result shows in its log line: numbers, short words, and lists by their length.

    Prose and long strings (reasons, digests) stay out of the one-line log.
    """
    try:
        value = msgspec.to_builtins(result)
    except TypeError:
        return {}
    if not isinstance(value, dict):
        value = {} if value is None else {"result": value}
    counts: dict[str, Any] = {}
    for key in sorted(value):
        item = value[key]
        if isinstance(item, bool | int | float) or (
                isinstance(item, str) and 0 < len(item) <= _SHORT_WORD and not any(char.isspace() for char in item)):
            counts[key] = item
        elif isinstance(item, list):
            counts[key] = len(item)
    return counts


@contextmanager
def job_lock(lake_root: Path, job: str) -> Iterator[str | None]:
    """Hold <lake>/run/<job>.lock without waiting; yields None when held, else what the holder wrote in it."""
    folder = lake_root / RUN_DIR
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{job}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        holder: str | None = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        if holder is not None:
            yield holder
            return
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {format_utc(datetime.now(UTC))}\n".encode(), 0)
            yield None
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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


def run_job(lake_path: str, name: str) -> JobRun:
    """Run one job against the lake once, under its lock, and log its line. Never raises for a job's failure.

    This is the function the job store refers to, so it takes only plain arguments and finds the job by name
    in this process's registry.
    """
    started = datetime.now(UTC)
    clock = time.monotonic()
    root = Path(lake_path)
    try:
        func = job_registry()[name]
        with job_lock(root, name) as holder:
            if holder is not None:
                run = JobRun(job=name, start_utc=format_utc(started), duration_seconds=time.monotonic() - clock,
                             outcome="skipped", detail=f"still running ({holder})")
                log.info(run.line())
                return run
            with Lake.open(root) as lake:
                counts = summarize(func(lake))
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, EventLogError) else 1
        run = JobRun(job=name, start_utc=format_utc(started), duration_seconds=time.monotonic() - clock,
                     outcome="failed", detail=_sentence(exc), exit_code=code)
        # An unexpected exception is a bug: its traceback goes with the line.
        log.error(run.line(), exc_info=not isinstance(exc, EventLogError))
        return run
    run = JobRun(job=name, start_utc=format_utc(started), duration_seconds=time.monotonic() - clock, outcome="ok",
                 counts=counts)
    log.info(run.line())
    return run


def _sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, EventLogError) else f"{type(exc).__name__}: {text}"


def run_once(config: SchedulerConfig, lake_path: Path) -> list[JobRun]:
    """Run every configured job once, in file order, each under its lock; the job store is not touched."""
    Lake.open(lake_path).close()
    return [run_job(str(lake_path.resolve()), spec.name) for spec in config.jobs]


# -- the scheduler ------------------------------------------------------------------------------------------------


class _Repeated(logging.Filter):
    """Drops APScheduler's own lines for skipped and missed runs, which this module logs in its own form."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Run time of job", "Execution of job"))


def serve(config: SchedulerConfig, lake_path: Path, *, stop: threading.Event | None = None) -> None:
    """Run the configured jobs on their schedules until SIGTERM or SIGINT (or `stop` is set), then stop cleanly.

    Stopping lets a running job finish, then shuts the scheduler down. Jobs live in table `config.table` of the
    lake's database; a job whose schedule is unchanged keeps its stored next run, so runs missed while stopped
    are made up once on start. Raises LakeError for a missing lake, DatabaseError when the job store cannot be
    used, and EventLogError when the scheduler's own loop fails (the process should then be restarted).
    """
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobSubmissionEvent
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    root = lake_path.resolve()
    with Lake.open(root) as lake:
        database_url = lake.database_url
    (root / RUN_DIR).mkdir(exist_ok=True)
    engine = _engine(database_url)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=config.table)},
        executors={"default": ThreadPoolExecutor(max_workers=len(config.jobs))},
        job_defaults={"coalesce": True, "max_instances": 1}, timezone=ZoneInfo(config.timezone))
    failure: list[BaseException] = []
    received: list[str] = []

    def on_skip(event: JobSubmissionEvent) -> None:
        name = event.job_id.removeprefix(JOB_ID_PREFIX)
        for moment in event.scheduled_run_times:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                log.info(JobRun(job=name, start_utc=format_utc(moment), duration_seconds=0.0, outcome="skipped",
                                detail="still running (in this scheduler)").line())
            else:
                log.warning(f"job={name} start={format_utc(moment)} duration=0.000s outcome=missed: later than "
                            "its misfire grace")

    def on_thread_error(args: threading.ExceptHookArgs) -> None:
        failure.append(args.exc_value or RuntimeError("the scheduler thread stopped"))
        log.error(f"the scheduler stopped after an error: {_sentence(args.exc_value or RuntimeError())}",
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]
        stop.set()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        # Only flag it here: logging from a signal handler could wait on a lock the interrupted code holds.
        received.append(signal.Signals(number).name)
        stop.set()

    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
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
            # Two schedulers of one lake starting together would race to create the job store table (APScheduler
            # checks, then creates) and to reconcile its jobs: one at a time.
            with setup_lock(root):
                scheduler.start(paused=True)
                _reconcile(scheduler, config, str(root))
        except sa.exc.DBAPIError as exc:
            raise translate_error(exc, engine.url) from exc
        scheduler.resume()
        jobs = "; ".join(spec.describe(config.timezone) for spec in config.jobs)
        log.info(f"scheduler started: lake {root}, job store table {config.table}, jobs: {jobs}")
        while not stop.wait(1.0):
            pass
        if received:
            log.info(f"received {received[0]}: finishing running jobs, then stopping")
    finally:
        if scheduler.running:
            # Paused and without its store, APScheduler's loop submits nothing more: left alone, it makes one last
            # pass once shutdown begins and fails to submit whatever fell due while running jobs finished.
            scheduler.pause()
            scheduler.remove_jobstore("default", shutdown=False)
            scheduler.shutdown(wait=True)
        engine.dispose()
        threading.excepthook = previous_hook
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).removeFilter(quiet)
    if failure:
        raise EventLogError(f"the scheduler stopped after an error: {_sentence(failure[0])}")
    log.info("scheduler stopped")


def _engine(database_url: str) -> sa.Engine:
    """An engine on the lake's database with the session settings the SQL store uses (WAL, busy timeout)."""
    try:
        url = sa.make_url(database_url)
    except sa.exc.ArgumentError:
        raise InputError("the lake's database URL is not a valid SQLAlchemy URL (dialect+driver://...)") from None
    try:
        engine = sa.create_engine(url, **engine_options(url.get_backend_name()))
    except sa.exc.NoSuchModuleError:
        raise InputError(f"the lake's database URL names an unknown backend {url.drivername!r}") from None
    except ModuleNotFoundError as exc:
        raise translate_error(exc, url) from exc
    dialect = engine.dialect.name
    sa.event.listen(engine, "connect", lambda dbapi_connection, _record: on_connect(dbapi_connection, dialect))
    return engine


def _reconcile(scheduler: Any, config: SchedulerConfig, lake: str) -> None:
    """Make the job store hold exactly the configured jobs; unchanged ones keep their stored next run."""
    now = datetime.now(UTC)
    wanted = {JOB_ID_PREFIX + spec.name: spec for spec in config.jobs}
    for job in scheduler.get_jobs():
        if job.id.startswith(JOB_ID_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id)
    for job_id, spec in wanted.items():
        stored = scheduler.get_job(job_id)
        description = spec.describe(config.timezone)
        if stored is not None and stored.name == description and list(stored.args) == [lake, spec.name]:
            missed = _missed_runs(stored, now)
            if missed:
                log.info(f"job={spec.name} missed {missed} run(s) while stopped; they run once now "
                         f"(coalesced) if within the misfire grace of {spec.misfire_grace:g}s")
            continue
        scheduler.add_job(run_job, _trigger(spec, config.timezone), args=[lake, spec.name], id=job_id,
                          name=description, replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, round(spec.misfire_grace)))


def _missed_runs(job: Any, now: datetime) -> str:
    """How many fire times of a stored job passed before `now` ("" when none)."""
    count = 0
    moment = job.next_run_time
    while moment is not None and moment <= now and count < MISSED_COUNT_CAP:
        count += 1
        moment = job.trigger.get_next_fire_time(moment, now + timedelta(microseconds=1))
    if count == 0:
        return ""
    return f"{count}+" if count >= MISSED_COUNT_CAP else str(count)
