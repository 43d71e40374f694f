"""The DDL files of record match the metadata, apply cleanly, and everything compiles for SQL Server."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from eventlog.errors import InputError
from eventlog.log.config import DIALECT_NAMES
from eventlog.sql.ddl import render_file
from eventlog.sql.dialects import create_schema_sql, insert_ignore, upsert
from eventlog.sql.schema import build_tables
from eventlog.sql.store import SqlEventStore, StoreStatements
from projections.ddl import ddl_files, render_ddl
from projections.tables import attach, projection_tables
from tests.eventlog.test_sqlstore import sample_events

DDL_ROOT = Path(__file__).resolve().parents[2] / "ddl"
REGENERATE = "regenerate them with `python -m projections.ddl --write` and commit the result"


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_ddl_files_match_the_metadata(dialect: str) -> None:
    expected = {name: render_file(dialect, statements) for name, statements in ddl_files(dialect).items()}
    folder = DDL_ROOT / dialect
    present = sorted(path.name for path in folder.glob("*.sql")) if folder.is_dir() else []
    assert present == sorted(expected), f"ddl/{dialect}/ holds {present}, expected {sorted(expected)}: {REGENERATE}"
    for name, text in expected.items():
        actual = (folder / name).read_text(encoding="utf-8")
        assert actual == text, f"ddl/{dialect}/{name} differs from the metadata: {REGENERATE}"


def test_render_ddl_names_every_file() -> None:
    text = render_ddl("postgresql")
    assert "-- postgresql/001_lake.sql" in text and "-- postgresql/002_exchange_history.sql" in text
    assert re.search(r"\bDROP\s+(TABLE|SCHEMA|DATABASE|VIEW|INDEX)\b", text, re.IGNORECASE) is None
    with pytest.raises(InputError, match="unknown SQL dialect"):
        render_ddl("oracle")
    with pytest.raises(InputError, match="schema name"):
        render_ddl("postgresql", schema="lake;x")


def test_everything_compiles_for_sql_server() -> None:
    dialect = mssql.dialect()
    tables = build_tables("lake")
    projection = projection_tables(tables)
    for statements in ddl_files("mssql").values():
        assert statements
    statements = StoreStatements(tables, "mssql").all()
    statements += [insert_ignore(table, "mssql") for table in tables.metadata.sorted_tables
                   if table is not tables.event]
    statements += [upsert(projection.checkpoint, "mssql", update=["position", "state_digest", "updated_at_utc"])]
    for statement in statements:
        sql = str(statement.compile(dialect=dialect))  # type: ignore[attr-defined]
        assert "lake" in sql, sql
    merge = str(insert_ignore(tables.content, "mssql").compile(dialect=dialect))  # type: ignore[attr-defined]
    assert merge.startswith("MERGE INTO lake.[ExchangeContent]") and "WHEN MATCHED" not in merge
    assert create_schema_sql("mssql", "lake") == "IF SCHEMA_ID(N'lake') IS NULL EXEC(N'CREATE SCHEMA [lake]')"


def test_sqlite_files_build_the_same_schema_as_create_schema(tmp_path: Path) -> None:
    from_files = tmp_path / "files.db"
    with sqlite3.connect(from_files) as db:
        for name in sorted(ddl_files("sqlite")):
            db.executescript((DDL_ROOT / "sqlite" / name).read_text(encoding="utf-8"))
    from_store = tmp_path / "store.db"
    with SqlEventStore(f"sqlite:///{from_store}") as store:
        attach(store)
        store.create_schema()
    assert _sqlite_schema(from_files) == _sqlite_schema(from_store)
    with SqlEventStore(f"sqlite:///{from_files}") as store:
        store.create_schema()
        events = sample_events(3)
        assert store.append_events(events) == 3
        assert [event for _, event in store.events()] == events


def _sqlite_schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                          "ORDER BY type, name").fetchall()
    return [tuple(row) for row in rows]


def test_rendered_ddl_applies_on_the_server(sql_backend: str, sql_url: str, sql_schema: str) -> None:
    if sql_backend == "sqlite":
        pytest.skip("covered by the SQLite file test")
    engine = sa.create_engine(sql_url)
    try:
        with engine.begin() as conn:
            for statements in ddl_files(sql_backend, schema=sql_schema).values():
                for statement in statements:
                    conn.exec_driver_sql(statement)
                    conn.exec_driver_sql(statement)
            names = set(sa.inspect(conn).get_table_names(schema=sql_schema))
    finally:
        engine.dispose()
    core = build_tables(sql_schema)
    projection_tables(core)
    assert names == {table.name for table in core.metadata.sorted_tables}
    assert {"ExchangeEvent", "ExchangeContent", "RawExchangeRecord", "ProjectionCheckpoint"} <= names
    with SqlEventStore(sql_url, schema=sql_schema) as store:
        store.create_schema()
        events = sample_events(3)
        assert store.append_events(events) == 3
        assert [event for _, event in store.events()] == events
