"""The DDL files of record, ddl/<dialect>/NNN_name.sql: the event tables with the projections' tables and view.

`python -m projections.ddl --write` regenerates them (or `write_ddl(root)`); `eventlog ddl --dialect D` prints one
dialect's; a test keeps the files equal to the metadata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eventlog.log.config import DEFAULT_SCHEMA, DIALECT_NAMES
from eventlog.sql.ddl import ddl_statements, render_file
from eventlog.sql.dialects import uses_schema
from eventlog.sql.schema import build_tables
from projections.tables import HISTORY_VIEW, history_select, projection_tables

__all__ = ["ddl_files", "render_ddl", "write_ddl"]


def ddl_files(dialect: str, *, schema: str = DEFAULT_SCHEMA) -> dict[str, list[str]]:
    """The statements of each DDL file for `dialect`, by file name, in the order they must run.

    Raises InputError for an unknown dialect or a bad schema name.
    """
    named = schema if uses_schema(dialect) else None
    core = build_tables(named)
    projection_tables(core)
    tables, views = ddl_statements(core.metadata, {HISTORY_VIEW: history_select(core)}, dialect, schema=named)
    return {"001_lake.sql": tables, "002_exchange_history.sql": views}


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


def main(argv: list[str] | None = None) -> int:
    """`python -m projections.ddl --write [ROOT]` regenerates the files; `--dialect D` prints one dialect's DDL."""
    parser = argparse.ArgumentParser(prog="python -m projections.ddl", description=main.__doc__)
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
