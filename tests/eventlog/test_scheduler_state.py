"""The scheduler's run-state table on every backend: plain rows, read as data, one lake replica's rows only."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from eventlog.app.scheduler import JobState, RunStateTable, open_engine
from eventlog.errors import InputError


@pytest.fixture
def table_name(sql_url: str) -> Iterator[str]:
    """A table of this test's own in the server's default schema, dropped afterwards (tests only)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    engine = sa.create_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    finally:
        engine.dispose()


def test_states_round_trip_and_crafted_rows_are_data(sql_url: str, table_name: str) -> None:
    engine = open_engine(sql_url)
    try:
        mine = RunStateTable(engine, table=table_name, replica_id="replica-a", source="scheduler.toml")
        theirs = RunStateTable(engine, table=table_name, replica_id="replica-b", source="scheduler.toml")
        assert mine.prepare() == [] and mine.prepare() == []
        mirror = JobState(job="mirror", schedule="mirror every 300s, misfire grace 300s",
                          next_run_utc="2024-05-01T12:05:00.000000Z")
        seal = JobState(job="seal", schedule="seal every 3600s, misfire grace 3600s",
                        next_run_utc="2024-05-01T13:00:00.000000Z", last_start_utc="2024-05-01T12:00:00.000100Z",
                        last_duration_seconds=0.25, last_outcome="ok")
        mine.save([mirror, seal])
        theirs.save([JobState(job="mirror", schedule="other", next_run_utc="2030-01-01T00:00:00.000000Z")])
        mine.save([JobState(job="mirror", schedule=mirror.schedule, next_run_utc="2024-05-01T12:10:00.000000Z")])
        loaded = mine.load({"mirror", "seal"})
        assert loaded.notices == []
        assert loaded.jobs == {"mirror": JobState(job="mirror", schedule=mirror.schedule,
                                                  next_run_utc="2024-05-01T12:10:00.000000Z"), "seal": seal}
        # Crafted values: a pickle as text in a job name, a schedule, timestamps and the outcome.
        text = pickle.dumps({"func": "os:system"}).decode("latin-1").replace("\x00", "")
        with engine.begin() as connection:
            connection.execute(mine.table.update().where(mine.table.c.job == "seal").values(
                next_run_utc=text[:32], last_outcome=text[:16]))
            connection.execute(mine.table.insert().values(
                replica_id="replica-a", job=text[:63], schedule=text, next_run_utc=text[:32], updated_utc=text[:32]))
            connection.execute(mine.table.update().where(
                mine.table.c.job == "mirror", mine.table.c.replica_id == "replica-a").values(
                last_start_utc=text[:32], last_outcome="bogus"))
        loaded = mine.load({"mirror", "seal"})
        assert loaded.jobs == {"mirror": JobState(job="mirror", schedule=mirror.schedule,
                                                  next_run_utc="2024-05-01T12:10:00.000000Z")}
        assert loaded.notices == [
            f"job=seal: its row in table {table_name} holds no valid schedule and next run (UTC timestamp); the "
            "row is ignored and the job starts its schedule afresh",
            f"removed 1 row(s) of table {table_name} that name no configured job"]
        assert theirs.load({"mirror"}).jobs["mirror"].schedule == "other"
    finally:
        engine.dispose()


def test_a_table_of_another_shape_is_refused(sql_url: str, table_name: str) -> None:
    engine = open_engine(sql_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE {table_name} (id VARCHAR(191) PRIMARY KEY, job_state TEXT)")
        with pytest.raises(InputError, match=f"scheduler.toml, at scheduler.table: table {table_name} exists"):
            RunStateTable(engine, table=table_name, replica_id="r", source="scheduler.toml").prepare()
    finally:
        engine.dispose()
