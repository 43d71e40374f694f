"""The scheduler's jobs: the registry of job names, and one run of a job under its overlap lock.

A job is a callable taking the opened Lake and returning a summary (a msgspec Struct, a mapping, a scalar or
None); built in are mirror, reproject, reproject-check (reproject after comparing the table's state digest with its
checkpoint, rebuilding it when a row was changed outside the lake), packs (the snapshot packs of the registered
datasets), seal and verify (which fails the run, exit code 6, when verify finds a problem). EVENTLOG_SCHEDULER_EXTRA_JOBS adds jobs as comma-separated `name=module:function` entries: only the
operator's environment names code, never the database.

A run holds a non-blocking flock on <lake>/run/<job>.lock, so a job never overlaps itself across processes; a
run that finds the lock held logs `skipped: still running` and returns. Every run logs one line on the
`eventlog.app.scheduler` logger: job, start, duration, outcome and the counts the job returned.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from eventlog.app.lake import Lake
from eventlog.errors import EventLogError, InputError, IntegrityError
from eventlog.format.envelope import format_utc

JobFunc = Callable[[Lake], object]

EXTRA_JOBS_ENV = "EVENTLOG_SCHEDULER_EXTRA_JOBS"
RUN_DIR = "run"
JOB_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
_SHORT_WORD = 48

log = logging.getLogger("eventlog.app.scheduler")


def _mirror(lake: Lake) -> object:
    return lake.mirror()


def _reproject(lake: Lake) -> object:
    return lake.reproject()


def _reproject_check(lake: Lake) -> object:
    return lake.reproject(check=True)


def _packs(lake: Lake) -> object:
    results = lake.reproject_packs()
    return {"datasets": len(results), "records": sum(r.records for r in results),
            "records_added": sum(r.records_added for r in results),
            "rebuilt": sum(r.mode == "rebuild" for r in results)}


def _seal(lake: Lake) -> object:
    return {"sealed": lake.seal()}


def _verify(lake: Lake) -> object:
    report = lake.verify()
    if not report.ok:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise IntegrityError(f"verify failed: {report.problems[0]}{more}")
    return {"events": report.events, "segments": report.segments, "seals": report.seals, "evicted": report.evicted}


BUILTIN_JOBS: dict[str, JobFunc] = {"mirror": _mirror, "reproject": _reproject, "reproject-check": _reproject_check,
                                    "packs": _packs, "seal": _seal, "verify": _verify}


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
        if not equals or not colon or not JOB_NAME.match(name) or not module_name or not attribute:
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
    """Hold <lake>/run/<job>.lock without waiting; yields None when held, else what the holder wrote in it.

    A flock, not a database row: the kernel releases it when its process dies, so a killed run never leaves a
    job locked.
    """
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


def run_job(lake_path: str, name: str) -> JobRun:
    """Run one job against the lake once, under its lock, and log its line. Never raises for a job's failure.

    The job is found by name in this process's registry, so nothing but a name ever selects the code that runs.
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
                     outcome="failed", detail=sentence(exc), exit_code=code)
        # An unexpected exception is a bug: its traceback goes with the line.
        log.error(run.line(), exc_info=not isinstance(exc, EventLogError))
        return run
    run = JobRun(job=name, start_utc=format_utc(started), duration_seconds=time.monotonic() - clock, outcome="ok",
                 counts=counts)
    log.info(run.line())
    return run


def sentence(exc: BaseException) -> str:
    """An exception as one line: its message, prefixed by its type unless it is one of ours."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, EventLogError) else f"{type(exc).__name__}: {text}"
