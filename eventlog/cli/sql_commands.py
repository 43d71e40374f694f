"""Commands of the SQL side: mirror, reproject, ddl."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec

from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.errors import IntegrityError
from eventlog.log.config import DEFAULT_SCHEMA, DIALECT_NAMES

if TYPE_CHECKING:
    from projections import PackResult, ProjectionReport, ReprojectResult

F = TypeVar("F", bound=Callable[..., Any])


def database_options(func: F) -> F:
    """--database-url and --schema, shared by the commands that talk to the database."""
    func = click.option("--schema", default=None,
                        help=f"Schema of the lake tables (default: {DEFAULT_SCHEMA}; on MariaDB/MySQL, where a schema "
                             "is a database, the URL's database; ignored on SQLite).")(func)
    return click.option("--database-url", metavar="URL",
                        help="SQLAlchemy URL of the database (default: $EVENTLOG_DATABASE_URL, else lake.json's, "
                             "else SQLite inside the lake).")(func)


@cli.command()
@database_options
@json_option
@click.pass_context
def mirror(ctx: click.Context, database_url: str | None, schema: str) -> None:
    """Copy the log's new events into the SQL tables ExchangeEvent and ExchangeContent."""
    with app(ctx).open_lake() as lake, Progress(ctx, "mirroring") as progress:
        result = lake.mirror(database_url=database_url, schema=schema, progress=progress,
                             expect=progress.set_total)
    emit(ctx, result, f"mirrored {result.read:,} events ({result.written:,} new) in {result.batches} batch(es); "
                      f"watermark seq {result.watermark_before:,} -> {result.watermark:,}")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Empty the table (DELETE) and replay the whole log.")
@click.option("--as-of", metavar="T", help="The world as observed up to T: observations with observed_at_utc <= T.")
@click.option("--known-at", metavar="T", help="What the lake knew at T: events with recorded_at_utc <= T.")
@click.option("--at-seq", type=click.IntRange(min=0), metavar="N", help="What the lake knew at log seq N.")
@click.option("--check", is_flag=True,
              help="First compare the table's state digest with its checkpoint (one read of every row, payloads "
                   "aside) and rebuild when a row was changed outside the lake.")
@click.option("--verify", is_flag=True,
              help="Afterwards, recompute the table from the log in a scratch database and compare (exit 6 if "
                   "they differ).")
@click.option("--packs", is_flag=True,
              help="Bring the snapshot packs of the datasets registered under snapshots/ up to the log instead.")
@click.option("--dataset", "datasets", multiple=True, metavar="NAME",
              help="With --packs: only this dataset (repeatable).")
@database_options
@json_option
@click.pass_context
def reproject(ctx: click.Context, rebuild: bool, as_of: str | None, known_at: str | None, at_seq: int | None,
              check: bool, verify: bool, packs: bool, datasets: tuple[str, ...], database_url: str | None, schema: str) -> None:
    """Bring lake.RawExchangeRecord up to the log: incrementally, from scratch, or as of a point in time.

    Timestamps are ISO 8601 with a UTC offset (2024-05-01T12:00:00Z). After a point-in-time run, the next plain
    run rebuilds the table. With --packs, the snapshot packs of the registered datasets instead.
    """
    if packs:
        if as_of or known_at or at_seq is not None or verify or check:
            raise click.UsageError("--packs takes --rebuild and --dataset only")
        _reproject_packs(ctx, rebuild=rebuild, datasets=datasets)
        return
    if datasets:
        raise click.UsageError("--dataset goes with --packs")
    with app(ctx).open_lake() as lake, Progress(ctx, "reprojecting") as progress:
        result = lake.reproject(rebuild=rebuild, check=check, as_of=as_of, known_at=known_at, at_seq=at_seq,
                                database_url=database_url, schema=schema, progress=progress,
                                expect=progress.set_total)
        report = lake.verify_projection(database_url=database_url, schema=schema) if verify else None
    output: dict[str, Any] = msgspec.to_builtins(result)
    if report is not None:
        output["verify"] = msgspec.to_builtins(report)
    emit(ctx, output, lambda: _reproject_text(result, report))
    if report is not None and not report.ok:
        if not app(ctx).as_json:
            for problem in report.problems:
                click.echo(problem, err=True)
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise IntegrityError(f"projection verify failed: {report.problems[0]}{more}")


def _reproject_packs(ctx: click.Context, *, rebuild: bool, datasets: tuple[str, ...]) -> None:
    with app(ctx).open_lake() as lake, Progress(ctx, "packs", total=lambda: lake.log.last_seq) as progress:
        results = lake.reproject_packs(rebuild=rebuild, names=datasets or None, progress=progress)
    emit(ctx, {"packs": [msgspec.to_builtins(result) for result in results]},
         lambda: "\n".join(_pack_text(result) for result in results) or "no dataset registered under snapshots/")


def _pack_text(result: PackResult) -> str:
    how = "incremental" if result.reason is None else f"rebuilt ({result.reason})"
    return (f"{result.dataset}: {how}; seq {result.position_before:,} -> {result.position:,}, {result.records:,} "
            f"record(s), {result.records_added:,} added, {result.records_moved:,} moved, "
            f"{result.dates_rewritten} date(s) rewritten")


def _reproject_text(result: ReprojectResult, report: ProjectionReport | None) -> str:
    how = "incremental" if result.reason is None else f"rebuilt from scratch ({result.reason})"
    text = (f"{result.projection}: {how}; seq {result.position_before:,} -> {result.position:,}, "
            f"{result.events_applied:,} of {result.events_read:,} events applied, {result.rows_inserted:,} rows "
            f"inserted, {result.rows_updated:,} updated")
    if result.resolutions_applied or result.resolutions_ignored:
        text += f", {result.resolutions_applied} resolution(s) applied, {result.resolutions_ignored} ignored"
    text += f"; state digest {result.state_digest}"
    if report is not None and report.ok:
        text += f"\nverified: {report.rows:,} rows equal a rebuild from the log at seq {report.position:,}"
    return text


@cli.command()
@click.option("--dialect", type=click.Choice(DIALECT_NAMES), required=True, help="SQL dialect of the DDL.")
@click.option("--schema", default=DEFAULT_SCHEMA, show_default=True, help="Schema name (ignored for sqlite).")
@json_option
@click.pass_context
def ddl(ctx: click.Context, dialect: str, schema: str) -> None:
    """Print the DDL of the lake tables and views for one dialect (idempotent; never drops anything)."""
    # Imported here: it brings SQLAlchemy, which the other commands' start need not pay for.
    from projections.ddl import render_ddl

    text = render_ddl(dialect, schema=schema)
    if app(ctx).as_json:
        emit(ctx, {"dialect": dialect, "schema": schema, "ddl": text}, "")
    else:
        click.echo(text, nl=False)
