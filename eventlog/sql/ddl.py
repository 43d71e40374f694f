"""DDL text for each dialect, compiled from SQLAlchemy metadata: the statements behind ddl/<dialect>/*.sql.

`projections.ddl` composes the event tables with the projections' into the files of record, written by
`python -m projections.ddl --write`, and a test keeps them equal to the metadata. Every statement is idempotent
and none drops anything: tables and indexes are created only if missing, a view is created or replaced. SQL Server files separate batches with GO.
The mysql files use MariaDB's `CREATE INDEX IF NOT EXISTS`, which MySQL 8.0 lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from eventlog.sql.dialects import (
    create_schema_sql,
    create_view_prefix,
    dialect_by_name,
)

HEADER = ("-- Generated from eventlog/sql/schema.py and projections/tables.py by `python -m projections.ddl --write`;"
          " do not edit by hand.\n"
          "-- Idempotent: creates what is missing, never drops or alters an existing table.\n")


def ddl_statements(metadata: sa.MetaData, views: Mapping[str, sa.Select[Any]], dialect: str, *,
                   schema: str | None) -> tuple[list[str], list[str]]:
    """The statements that create `metadata`'s schema, tables and indexes, and those that create `views`, for
    `dialect`, in the order they must run."""
    compiler = dialect_by_name(dialect)
    setup = [create_schema_sql(dialect, schema)] if schema is not None else []
    for table in metadata.sorted_tables:
        setup.append(_create_table(table, compiler))
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            setup.append(_create_index(index, compiler))
    return setup, [view_sql(name, schema, query, compiler) for name, query in views.items()]


def render_file(dialect: str, statements: list[str]) -> str:
    """Text of one DDL file: the header, then each statement terminated for the dialect's usual client."""
    terminator = "\nGO\n" if dialect == "mssql" else ";\n"
    return HEADER + "".join(f"\n{statement}{terminator}" for statement in statements)


def view_sql(name: str, schema: str | None, query: sa.Select[Any], dialect: Dialect) -> str:
    """The idempotent CREATE VIEW statement of the view `name` over `query` for `dialect`."""
    view = sa.table(name, schema=schema)
    quoted = dialect.identifier_preparer.format_table(view)
    compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return _tidy(f"{create_view_prefix(dialect.name)} {quoted} AS\n{compiled}")


def _create_table(table: sa.Table, dialect: Dialect) -> str:
    if dialect.name == "mssql":
        name = dialect.identifier_preparer.format_table(table)
        return _tidy(f"IF OBJECT_ID(N'{name}', N'U') IS NULL\n{str(CreateTable(table).compile(dialect=dialect)).strip()}")
    return _tidy(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))


def _create_index(index: sa.Index, dialect: Dialect) -> str:
    if dialect.name == "mssql":
        table = dialect.identifier_preparer.format_table(index.table)  # type: ignore[arg-type]
        return _tidy(f"IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'{index.name}' "
                     f"AND object_id = OBJECT_ID(N'{table}'))\n{str(CreateIndex(index).compile(dialect=dialect)).strip()}")
    return _tidy(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))


def _tidy(sql: str) -> str:
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())
