"""Commands of datasets, in the original tool's words: import and export of the pack beside a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
import msgspec

from eventlog.capture.ingest import count_lines
from eventlog.capture.manifest import Strategy
from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.cli.log_commands import ingest

if TYPE_CHECKING:
    from eventlog.app.datasets import ExportResult, ImportResult
    from eventlog.app.migration import OriginalTableResult
    from eventlog.log.writer import AppendResult

STRATEGIES = ("prefer_newest", "prefer_sql", "prefer_json", "fail")

MANIFEST = click.option("--manifest", "manifest_path", type=click.Path(path_type=Path, dir_okay=False),
                        help="Dataset manifest; its pack is the folder it lies in (manifest.json, index.jsonl, "
                             "records/).")
DRY_RUN = click.option("--dry-run", is_flag=True, help="Print what would be done; write nothing.")


@cli.command(name="import")
@click.argument("paths", nargs=-1)
@MANIFEST
@DRY_RUN
@click.option("--conflict", type=click.Choice(STRATEGIES),
              help="Conflict strategy (default: the manifest's sync_policy.conflict_strategy); 'fail' stops "
                   "before anything is written when the pack's version of a key differs from the lake's.")
@click.option("--from-original-table", "from_original_table", is_flag=True,
              help="Read the original tool's SQL table RawExchangeRecord (exchange_id primary key) into the log; "
                   "the table is only read, and the statement that renames it is printed, not run.")
@click.option("--database-url", help="With --from-original-table: the database holding it (default: the lake's).")
@click.option("--schema", help="With --from-original-table: its schema (default: lake; ignored on SQLite).")
@json_option
@click.pass_context
def import_command(ctx: click.Context, paths: tuple[str, ...], manifest_path: Path | None, dry_run: bool,
                   conflict: str | None, from_original_table: bool, database_url: str | None,
                   schema: str | None) -> None:
    """Read the pack beside --manifest into the log (then the SQL side and the lake's pack follow).

    With PATHS instead, the same as `eventlog ingest PATHS` (--manifest then adds its redaction only). With
    --from-original-table, the rows of the original tool's RawExchangeRecord table.
    """
    if from_original_table:
        if paths or manifest_path or conflict:
            raise click.UsageError("--from-original-table goes without PATHS, --manifest and --conflict")
        _import_original(ctx, database_url=database_url, schema=schema, dry_run=dry_run)
        return
    if database_url or schema:
        raise click.UsageError("--database-url and --schema go with --from-original-table")
    if paths:
        if dry_run or conflict:
            raise click.UsageError("--dry-run and --conflict go with --manifest alone (no PATHS)")
        ctx.invoke(ingest, paths=paths, manifest_path=manifest_path)
        return
    if manifest_path is None:
        raise click.UsageError("give --manifest FILE (the pack is the folder it lies in), or PATHS to ingest")
    with app(ctx).open_lake() as lake, Progress(ctx, "importing", unit="records",
                                                total=lambda: count_lines([manifest_path.parent])) as progress:
        result = lake.import_pack(manifest_path, dry_run=dry_run, conflict=cast("Strategy | None", conflict),
                                  progress=progress)
    emit(ctx, msgspec.to_builtins(result), lambda: import_text(result))


def _import_original(ctx: click.Context, *, database_url: str | None, schema: str | None, dry_run: bool) -> None:
    from eventlog.app.migration import import_original_table

    with app(ctx).open_lake() as lake, Progress(ctx, "importing", unit="rows") as progress:
        result = import_original_table(lake, database_url=database_url, schema=schema, dry_run=dry_run,
                                       progress=progress)
    emit(ctx, msgspec.to_builtins(result), lambda: _original_text(result))


def _original_text(result: OriginalTableResult) -> str:
    verb = "would import" if result.dry_run else "imported"
    lines = _append_lines(f"{result.table} in {result.database}: {verb} {result.read:,} row(s)", result.append,
                          noun="row(s)", stated="stored")
    lines.append("The table was only read. To let the new RawExchangeRecord projection take its name, a DBA runs:")
    lines.append(f"  {result.rename_statement}")
    return "\n".join(lines)


def import_text(result: ImportResult) -> str:
    verb = "would import" if result.dry_run else "imported"
    lines = _append_lines(f"{result.dataset}: {verb} {result.read:,} record(s) from {result.folder}", result.append,
                          noun="record(s)", stated="stated")
    for item in result.conflicts:
        lines.append(f"  conflict ({result.conflict_strategy}): {item.natural_key!r}: lake {item.lake[:12]} "
                     f"({item.lake_observed_at_utc}), pack {item.pack[:12]} ({item.pack_observed_at_utc})")
    if result.registered:
        lines.append(f"  registered the dataset in the lake: snapshots/{result.dataset}/manifest.json")
    if result.pack is not None:
        lines.append(f"  lake pack snapshots/{result.dataset}/: {result.pack.records:,} record(s)")
    if result.mirror is not None:
        lines.append(f"  mirrored {result.mirror.written:,} new event(s) to the database")
    if result.reproject is not None:
        lines.append(f"  RawExchangeRecord: {result.reproject.rows_inserted:,} row(s) inserted, "
                     f"{result.reproject.rows_updated:,} updated")
    return "\n".join(lines)


@cli.command(name="export")
@MANIFEST
@DRY_RUN
@json_option
@click.pass_context
def export_command(ctx: click.Context, manifest_path: Path | None, dry_run: bool) -> None:
    """Write the log's snapshot pack of the manifest's dataset into the folder the manifest lies in.

    Records the folder's pack holds that the log lacks are imported first, so none is lost.
    """
    if manifest_path is None:
        raise click.UsageError("give --manifest FILE (the pack is written into the folder it lies in)")
    with app(ctx).open_lake() as lake, Progress(ctx, "exporting", total=lambda: lake.log.last_seq) as progress:
        result = lake.export_pack(manifest_path, dry_run=dry_run, progress=progress)
    emit(ctx, msgspec.to_builtins(result), lambda: _export_text(result))


def _export_text(result: ExportResult) -> str:
    verb = "would hold" if result.dry_run else "holds"
    text = (f"{result.dataset}: the pack in {result.folder} {verb} {result.records:,} record(s) "
            f"(before: {result.records_before:,})")
    imported = result.imported.observed + result.imported.revisited
    if imported:
        text += f"; {imported:,} record(s) of the pack were new to the log and {'would be' if result.dry_run else 'were'} imported"
    return text


def _append_lines(head: str, done: AppendResult, *, noun: str, stated: str) -> list[str]:
    """The lines of an import's summary that tell what its append did: counts, hash disagreements, redactions."""
    lines = [f"{head}: {done.observed:,} observed, {done.revisited:,} revisited, "
             f"{done.already_present:,} already present"]
    if done.hash_mismatch_count:
        lines.append(f"  {done.hash_mismatch_count:,} {noun} whose {stated} content_sha256 differs from ours "
                     f"(kept): {', '.join(done.hash_mismatches[:5])}{' ...' if done.hash_mismatch_count > 5 else ''}")
    if done.redacted:
        lines.append(f"  {done.redacted:,} {noun} redacted")
    return lines
