"""Creating the SQL schema: two processes at once both succeed, and on MariaDB/MySQL the URL's database is used
unless a schema is asked for by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog.sql.store import SqlEventStore
from tests.conftest import drop_test_schema, server_url

ROOT = Path(__file__).resolve().parents[2]
CREATOR = """
import sys, time
sys.path.insert(0, {root!r})
from eventlog.sql.store import SqlEventStore
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
with SqlEventStore({url!r}, schema={schema!r}) as store:
    store.create_schema()
"""


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_two_first_runs_at_once_both_create_the_schema(sql_backend: str, sql_url: str, sql_schema: str,
                                                       attempt: int) -> None:
    import time

    script = CREATOR.format(root=str(ROOT), url=sql_url, schema=sql_schema)
    start = str(time.time() + 1.0)
    runs = [subprocess.Popen([sys.executable, "-c", script, start], stderr=subprocess.PIPE) for _ in range(2)]
    outcomes = [(run.wait(timeout=120), run.communicate()[1].decode()) for run in runs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    with SqlEventStore(sql_url, schema=sql_schema) as store:
        assert store.max_event_seq() == 0


def test_mysql_uses_the_database_of_the_url_unless_a_schema_is_asked_for() -> None:
    url = server_url("mysql")
    base = sa.make_url(url)
    name = "t_urldb_default"
    drop_test_schema(url, name)
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    engine.dispose()
    try:
        with SqlEventStore(base.set(database=name).render_as_string(hide_password=False)) as store:
            store.create_schema()
            assert store.tables.schema is None
        engine = sa.create_engine(base)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names(schema=name))
            assert "ExchangeEvent" in tables
            assert not sa.inspect(conn).has_schema("lake") or "ExchangeEvent" not in set(
                sa.inspect(conn).get_table_names(schema="lake"))
        engine.dispose()
        with SqlEventStore(url, schema=name) as store:
            assert store.tables.schema == name
    finally:
        drop_test_schema(url, name)


def test_other_backends_keep_the_lake_schema_by_default(tmp_path: Path) -> None:
    with SqlEventStore("postgresql+psycopg://u@127.0.0.1:1/db") as store:
        assert store.tables.schema == "lake"
    with SqlEventStore(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert store.tables.schema is None
