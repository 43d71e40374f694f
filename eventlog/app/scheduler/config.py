"""The scheduler's configuration file (TOML) and the APScheduler triggers its schedules make.

The file is the only source of jobs: `[jobs.NAME]` tables with `every` or `cron`, and an optional `[scheduler]`
table with the time zone of cron expressions and the name of the run-state table. Every error names the file
and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from eventlog.app.scheduler.jobs import BUILTIN_JOBS, JobFunc
from eventlog.errors import InputError

DEFAULT_TABLE = "eventlog_scheduler_state"
# Where APScheduler's SQLAlchemy job store kept pickled jobs before; never read, never reused.
LEGACY_TABLE = "eventlog_scheduler_jobs"
# A cron job missed by more than this is skipped rather than made up (an interval job's grace is its interval).
CRON_MISFIRE_GRACE = 3600.0

_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SCHEDULER_KEYS = ("table", "timezone")
_JOB_KEYS = ("cron", "every", "misfire_grace")


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One configured job: exactly one of `every` (seconds) and `cron` (five crontab fields)."""

    name: str
    every: float | None = None
    cron: str | None = None
    misfire_grace: float

    def describe(self, timezone: str) -> str:
        """A stable text of the schedule; a stored next run is kept only while this text is unchanged."""
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
    interval or cron expression, a job with both or neither of `every` and `cron`, or a `scheduler.table` that
    names the old pickled job store.
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
    if table.lower() == LEGACY_TABLE:
        raise InputError(f"{LEGACY_TABLE} is the old APScheduler job store, which held pickled jobs and is never "
                         f"read; remove the key (the run state goes to {DEFAULT_TABLE}) or name another table",
                         source=source, path="scheduler.table")
    jobs_table = _table(document.get("jobs", {}), source, "jobs")
    if not jobs_table:
        raise InputError("no jobs are configured; add a [jobs.NAME] table", source=source, path="jobs")
    specs = []
    for name, value in jobs_table.items():
        where = f"jobs.{name}"
        if name not in jobs_known:
            raise InputError(f"unknown job {name!r}; known jobs: {', '.join(sorted(jobs_known))}",
                             source=source, path=where)
        specs.append(_job_spec(name, _table(value, source, where), source, where, timezone=timezone))
    return SchedulerConfig(source=source, timezone=timezone, table=table, jobs=tuple(specs))


def _job_spec(name: str, fields: dict[str, Any], source: str, where: str, *, timezone: str) -> JobSpec:
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


def job_trigger(spec: JobSpec, timezone: str) -> Any:
    """The APScheduler trigger of one configured job (interval or cron)."""
    from apscheduler.triggers.interval import IntervalTrigger

    if spec.every is not None:
        return IntervalTrigger(seconds=spec.every, timezone=ZoneInfo(timezone))
    assert spec.cron is not None
    return cron_trigger(spec.cron, timezone)
