"""DDL text of record for each dialect, generated from the metadata in `eventlog.sql.schema`.

`ddl/<dialect>/NNN_name.sql` are written by `python -m eventlog.sql.ddl --write` (or `write_ddl(root)`) and a test
keeps them equal to the metadata. Every statement is idempotent and none drops anything: tables and indexes are
created only if missing, the view is created or replaced. SQL Server files separate batches with GO.
The mysql files use MariaDB's `CREATE INDEX IF NOT EXISTS`, which MySQL 8.0 lacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from eventlog.log.config import DEFAULT_SCHEMA, DIALECT_NAMES
from eventlog.sql.dialects import (
    create_schema_sql,
    create_view_prefix,
    dialect_by_name,
    uses_schema,
)
from eventlog.sql.schema import LakeTables, build_tables

HEADER = ("-- Generated from eventlog/sql/schema.py by `python -m eventlog.sql.ddl --write`; do not edit by hand.\n"
          "-- Idempotent: creates what is missing, never drops or alters an existing table.\n")


def ddl_files(dialect: str, *, schema: str = DEFAULT_SCHEMA) -> dict[str, list[str]]:
    """The statements of each DDL file for `dialect`, by file name, in the order they must run."""
    compiler = dialect_by_name(dialect)
    tables = build_tables(schema if uses_schema(dialect) else None)
    setup = [create_schema_sql(dialect, schema)] if uses_schema(dialect) else []
    for table in tables.metadata.sorted_tables:
        setup.append(_create_table(table, compiler))
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            setup.append(_create_index(index, compiler))
    return {"001_lake.sql": setup, "002_exchange_history.sql": [view_sql(tables, compiler)]}


def render_file(dialect: str, statements: list[str]) -> str:
    """Text of one DDL file: the header, then each statement terminated for the dialect's usual client."""
    terminator = "\nGO\n" if dialect == "mssql" else ";\n"
    return HEADER + "".join(f"\n{statement}{terminator}" for statement in statements)


def render_ddl(dialect: str, *, schema: str = DEFAULT_SCHEMA) -> str:
    """All DDL for `dialect` as one text, file after file, as `eventlog ddl --dialect D` prints it.

    Raises InputError for an unknown dialect or a bad schema name.
    """
    parts = []
    for name, statements in ddl_files(dialect, schema=schema).items():
        parts.append(f"-- {dialect}/{name}\n" + render_file(dialect, statements))
    return "\n".join(parts)


def write_ddl(root: Path) -> list[Path]:
    """Write `root/<dialect>/NNN_name.sql` for every dialect; returns the paths written."""
    written = []
    for dialect in DIALECT_NAMES:
        folder = root / dialect
        folder.mkdir(parents=True, exist_ok=True)
        for name, statements in ddl_files(dialect).items():
            path = folder / name
            path.write_text(render_file(dialect, statements), encoding="utf-8", newline="\n")
            written.append(path)
    return written


def view_sql(tables: LakeTables, dialect: Dialect) -> str:
    """The idempotent CREATE VIEW statement of the ExchangeHistory audit view for `dialect`."""
    view = sa.table(tables.history_name, schema=tables.schema)
    name = dialect.identifier_preparer.format_table(view)
    query = tables.history_select().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return _tidy(f"{create_view_prefix(dialect.name)} {name} AS\n{query}")


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


def main(argv: list[str] | None = None) -> int:
    """`python -m eventlog.sql.ddl --write [ROOT]` regenerates the files; `--dialect D` prints one dialect's DDL."""
    parser = argparse.ArgumentParser(prog="python -m eventlog.sql.ddl", description=main.__doc__)
    parser.add_argument("--write", metavar="ROOT", nargs="?", const="ddl", help="write ROOT/<dialect>/*.sql")
    parser.add_argument("--dialect", choices=DIALECT_NAMES, help="print the DDL of one dialect")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_ddl(Path(args.write)):
            print(path)
    if args.dialect:
        sys.stdout.write(render_ddl(args.dialect))
    if not args.write and not args.dialect:
        parser.print_usage()
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
