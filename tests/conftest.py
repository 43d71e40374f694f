"""Shared fixtures: the SQL backends the contract suites run on.

`sql_url` runs a test on every backend: SQLite (a temporary file) always; PostgreSQL and MariaDB/MySQL when
EVENTLOG_TEST_POSTGRES_URL / EVENTLOG_TEST_MYSQL_URL are set, e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test and mysql+pymysql://root@127.0.0.1:3306/test. Unset or
unreachable servers skip, unless EVENTLOG_TEST_REQUIRE_SERVERS=1, which turns that into a failure.
`sql_schema` is a schema of the test's own (a database on MariaDB), dropped when the test ends.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SERVER_ENV = {"postgresql": "EVENTLOG_TEST_POSTGRES_URL", "mysql": "EVENTLOG_TEST_MYSQL_URL"}
BACKENDS = ("sqlite", "postgresql", "mysql")

_reachable: dict[str, str | None] = {}


def seeded(label: str) -> tuple[int, random.Random]:
    """A random seed for a randomised test and a generator on it: EVENTLOG_TEST_SEED replays a failure.

    The seed is printed (pytest shows it with a failure) and goes into the test's assertion messages.
    """
    seed = int(os.environ.get("EVENTLOG_TEST_SEED", random.randrange(2**32)))
    print(f"{label} seed {seed}")
    return seed, random.Random(seed)


def servers_required() -> bool:
    """Whether a missing or unreachable test server is a failure rather than a skip."""
    return os.environ.get("EVENTLOG_TEST_REQUIRE_SERVERS") == "1"


def server_url(backend: str) -> str:
    """URL of the test server for `backend`; skips (or fails when servers are required) if there is none."""
    variable = SERVER_ENV[backend]
    url = os.environ.get(variable)
    if not url:
        _unavailable(f"{variable} is not set")
    assert url is not None
    if backend not in _reachable:
        _reachable[backend] = _probe(url)
    problem = _reachable[backend]
    if problem is not None:
        _unavailable(f"the {backend} test server from {variable} is unreachable: {problem}")
    return url


def _probe(url: str) -> str | None:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        return str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    finally:
        engine.dispose()
    return None


def _unavailable(reason: str) -> None:
    if servers_required():
        pytest.fail(f"{reason} (EVENTLOG_TEST_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend under test: sqlite, postgresql or mysql."""
    backend: str = request.param
    return backend


@pytest.fixture
def sql_url(sql_backend: str, tmp_path: Path) -> str:
    """Database URL of the backend under test (a fresh SQLite file, or the server from the environment)."""
    if sql_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'lake.db'}"
    return server_url(sql_backend)


@pytest.fixture
def sql_schema(sql_backend: str, sql_url: str) -> Iterator[str]:
    """A schema name used by this test only; dropped with everything in it afterwards (ignored on SQLite)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    if sql_backend != "sqlite":
        drop_test_schema(sql_url, name)


def drop_test_schema(url: str, name: str) -> None:
    """Drop a schema a test created (tests only: the product never drops anything)."""
    assert name.startswith("t_") and name.replace("_", "").isalnum()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        engine.dispose()
