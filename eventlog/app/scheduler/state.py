"""The scheduler's run state: one plain row per (lake replica, job) in a table of the lake's database.

The row holds text and numbers only (the schedule's text, the next and the last run as UTC timestamps, the last
run's duration and outcome) and is read as data: a value of the wrong type or shape is ignored with a sentence,
never interpreted. Nothing here can name code; which code runs is decided by the configuration file and the job
registry alone. The old APScheduler job store table (pickled jobs) is never read; its presence is reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime

import msgspec
import sqlalchemy as sa

from eventlog.app.scheduler.config import LEGACY_TABLE
from eventlog.app.scheduler.jobs import JOB_NAME
from eventlog.errors import InputError
from eventlog.format.envelope import format_utc
from eventlog.sql.dialects import engine_options, on_connect, translate_error

_TIMESTAMP = 32
_OUTCOMES = ("ok", "failed", "skipped")
_COLUMNS = ("replica_id", "job", "schedule", "next_run_utc", "last_start_utc", "last_duration_seconds",
            "last_outcome", "updated_utc")


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """What the run-state table keeps of one job: its schedule's text, its next run and its last run."""

    job: str
    schedule: str
    next_run_utc: str | None = None
    last_start_utc: str | None = None
    last_duration_seconds: float | None = None
    last_outcome: str | None = None


class StoredState(msgspec.Struct, frozen=True, kw_only=True):
    """The rows read back for this replica: usable states by job name, and one sentence per value ignored."""

    jobs: dict[str, JobState]
    notices: list[str]


def open_engine(database_url: str) -> sa.Engine:
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


def parse_stored_time(value: object) -> datetime | None:
    """A UTC timestamp read from the table, or None when the value is not one (wrong type, shape or zone)."""
    if not isinstance(value, str) or len(value) > _TIMESTAMP:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() != UTC.utcoffset(None):
        return None
    return moment


class RunStateTable:
    """The run-state table `table` in the database of `engine`, restricted to the rows of one lake replica.

    `source` (the configuration file) is named in errors about the table. Driver errors are raised as they
    come (sqlalchemy.exc.DBAPIError); the caller translates them.
    """

    def __init__(self, engine: sa.Engine, *, table: str, replica_id: str, source: str) -> None:
        self.engine = engine
        self.replica_id = replica_id
        self.source = source
        self.table = sa.Table(
            table, sa.MetaData(),
            sa.Column("replica_id", sa.String(36), primary_key=True),
            sa.Column("job", sa.String(63), primary_key=True),
            sa.Column("schedule", sa.String(400), nullable=False),
            sa.Column("next_run_utc", sa.String(_TIMESTAMP)),
            sa.Column("last_start_utc", sa.String(_TIMESTAMP)),
            sa.Column("last_duration_seconds", sa.Float),
            sa.Column("last_outcome", sa.String(16)),
            sa.Column("updated_utc", sa.String(_TIMESTAMP), nullable=False))

    def prepare(self) -> list[str]:
        """Create the table when missing; one sentence per thing worth telling (an old job store found).

        Raises InputError naming the configuration's `scheduler.table` when a table of that name exists without
        the run-state columns.
        """
        notices = []
        with self.engine.begin() as connection:
            inspector = sa.inspect(connection)
            if inspector.has_table(LEGACY_TABLE):
                notices.append(f"table {LEGACY_TABLE} of an older version holds APScheduler's pickled jobs; it is "
                               "never read (the jobs come from the configuration file): drop it once no older "
                               "scheduler uses this database")
            if inspector.has_table(self.table.name):
                present = {column["name"].lower() for column in inspector.get_columns(self.table.name)}
                missing = [name for name in _COLUMNS if name not in present]
                if missing:
                    raise InputError(f"table {self.table.name} exists in the lake's database without the run-state "
                                     f"columns {', '.join(missing)}; name another table",
                                     source=self.source, path="scheduler.table")
            else:
                self.table.create(connection, checkfirst=True)
        return notices

    def load(self, jobs: Collection[str]) -> StoredState:
        """Read this replica's rows for the configured `jobs`; rows of other jobs are deleted and counted.

        A row whose schedule or next run is not plain text of the expected shape is left out, with a sentence.
        """
        states: dict[str, JobState] = {}
        notices: list[str] = []
        strangers: list[object] = []
        columns = (self.table.c.job, self.table.c.schedule, self.table.c.next_run_utc, self.table.c.last_start_utc,
                   self.table.c.last_duration_seconds, self.table.c.last_outcome)
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(*columns).where(self.table.c.replica_id == self.replica_id)).all()
        for job, schedule, next_run, last_start, last_duration, last_outcome in rows:
            if not isinstance(job, str) or not JOB_NAME.match(job) or job not in jobs:
                strangers.append(job)
                continue
            if not isinstance(schedule, str) or parse_stored_time(next_run) is None:
                notices.append(f"job={job}: its row in table {self.table.name} holds no valid schedule and next "
                               "run (UTC timestamp); the row is ignored and the job starts its schedule afresh")
                continue
            duration = last_duration if isinstance(last_duration, float | int) and last_duration >= 0 else None
            states[job] = JobState(
                job=job, schedule=schedule, next_run_utc=next_run,
                last_start_utc=last_start if parse_stored_time(last_start) is not None else None,
                last_duration_seconds=None if duration is None else float(duration),
                last_outcome=last_outcome if last_outcome in _OUTCOMES else None)
        if strangers:
            with self.engine.begin() as connection:
                for job in strangers:
                    connection.execute(self.table.delete().where(
                        self.table.c.replica_id == self.replica_id, self.table.c.job == job))
            notices.append(f"removed {len(strangers)} row(s) of table {self.table.name} that name no configured "
                           "job")
        return StoredState(jobs=states, notices=notices)

    def save(self, states: Iterable[JobState]) -> None:
        """Write the states of some jobs (update, else insert); a row another process inserted first is updated."""
        now = format_utc(datetime.now(UTC))
        missing: list[dict[str, object]] = []
        with self.engine.begin() as connection:
            for state in states:
                values = {**msgspec.structs.asdict(state), "replica_id": self.replica_id, "updated_utc": now}
                updated = connection.execute(self.table.update().where(
                    self.table.c.replica_id == self.replica_id, self.table.c.job == state.job).values(values))
                if updated.rowcount == 0:
                    missing.append(values)
        for values in missing:
            try:
                with self.engine.begin() as connection:
                    connection.execute(self.table.insert().values(values))
            except sa.exc.IntegrityError:
                # Another scheduler of this lake inserted the row in the meantime: its values are as recent.
                continue
