"""`eventlog sync`: merge the log with the database's event tables, decide conflicts, reproject."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec

from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.cli.archive_commands import key_options, keys_from_options
from eventlog.cli.sql_commands import database_options
from eventlog.errors import ConflictError, InputError

if TYPE_CHECKING:
    from eventlog.cold.keys import Keys
    from eventlog.sync import Conflict, SyncResult

DIRECTIONS = ("bidirectional", "json_to_sql", "sql_to_json")
STRATEGIES = ("prefer_newest", "prefer_sql", "prefer_json", "fail")
_SHORT = 12


@cli.command()
@click.option("--manifest", "manifest_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A dataset manifest whose sync_policy gives the defaults of --direction and --conflict.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default=None,
              help="Copy events both ways, only from the log (json) to the database (sql), or only back. "
                   "[default: the manifest's sync_policy.direction_default, else bidirectional]")
@click.option("--conflict", type=click.Choice(STRATEGIES), default=None,
              help="How to decide a key whose current version differs between the two sides: the newest "
                   "observation, the database's side, this lake's side, or stop (exit 9) and write nothing. "
                   "[default: the manifest's sync_policy.conflict_strategy, else prefer_newest]")
@click.option("--dry-run", is_flag=True, help="Print the plan (events each way, conflicts, keys touched); write "
                                              "nothing.")
@click.option("--from", "from_path", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Merge a folder copied from another machine instead: a lake's folder, its log/ folder, or a "
                   "snapshot pack folder. It is only read; with --conflict, prefer_sql prefers the folder's side.")
@key_options(sealing=False)
@database_options
@json_option
@click.pass_context
def sync(ctx: click.Context, /, manifest_path: Path | None, direction: str | None, conflict: str | None, dry_run: bool,
         from_path: Path | None, database_url: str | None, schema: str, **options: Any) -> None:
    """Merge the log with the database's event tables (union by event id), decide conflicts, and reproject
    RawExchangeRecord.

    Several lakes may sync with one database; each run brings this lake and the database to the same events.
    A second run right after a run changes nothing. With --from PATH, the events of a copied lake, log or
    pack folder are merged into this lake instead (PATH is never written); the key options open the segments
    that lake evicted to cold storage.
    """
    if from_path is not None and direction is not None:
        raise InputError("--direction does not apply to --from: a copied folder is only read")
    keys = keys_from_options(options)
    if keys is not None and from_path is None:
        raise InputError("the key options apply to --from only (they open a copied lake's evicted segments)")
    if manifest_path is not None:
        from eventlog.capture.manifest import read_manifest

        policy = read_manifest(manifest_path).sync_policy
        direction = direction or policy.direction_default
        conflict = conflict or policy.conflict_strategy
    direction = direction or "bidirectional"
    conflict = conflict or "prefer_newest"
    progress = Progress(ctx, "syncing")
    if from_path is not None:
        _sync_from(ctx, from_path, conflict, dry_run, keys, progress)
        return
    with app(ctx).open_lake() as lake, _conflicts_reported(ctx, progress):
        result = lake.sync(direction=direction, conflict=conflict, dry_run=dry_run,  # type: ignore[arg-type]
                           database_url=database_url, schema=schema, progress=progress)
    emit(ctx, result, lambda: _text(result))


@contextmanager
def _conflicts_reported(ctx: click.Context, progress: Progress) -> Iterator[None]:
    """Close the progress bar when the block ends; a ConflictError leaving it lists the conflicts first."""
    try:
        yield
    except ConflictError as error:
        progress.done()
        _report_conflicts(ctx, error)
        raise
    finally:
        progress.done()


def _sync_from(ctx: click.Context, path: Path, conflict: str, dry_run: bool, keys: Keys | None,
               progress: Progress) -> None:
    from eventlog.cli.dataset_commands import import_text
    from eventlog.sync import SyncResult

    with app(ctx).open_lake() as lake, _conflicts_reported(ctx, progress):
        result = lake.sync_from(path, conflict=conflict, dry_run=dry_run,  # type: ignore[arg-type]
                                keys=keys, progress=progress)
    if isinstance(result, SyncResult):
        emit(ctx, result, lambda: _from_text(result, path))
    else:
        emit(ctx, msgspec.to_builtins(result), lambda: import_text(result))


def _from_text(result: SyncResult, path: Path) -> str:
    verb = "would append" if result.dry_run else "appended"
    read = "read whole" if result.full_reconciliation else "read after the last sync's watermark"
    lines = [f"{verb} {result.to_json:,} event(s) from {path} to the log; {result.shared:,} shared observation(s) "
             f"kept once; {result.keys_touched:,} key(s) touched; {result.segments_read:,} segment(s) {read}"]
    if result.note is not None:
        lines.append(result.note)
    lines.extend(_decided(item, result.dry_run) for item in result.conflicts)
    if result.projection is not None:
        lines.append(f"{result.projection.projection}: {result.projection.mode}, state digest "
                     f"{result.projection.state_digest}")
    if not result.changed and not result.dry_run:
        lines.append(f"nothing to do: the log holds every event of {path}")
    return "\n".join(lines)


def _report_conflicts(ctx: click.Context, error: ConflictError) -> None:
    """Under --json the error is one JSON object on stdout with the conflicts; else one line per conflict."""
    if app(ctx).as_json:
        click.echo(msgspec.json.encode({"error": str(error), "exit_code": error.exit_code,
                                        "conflicts": error.conflicts}).decode())
        sys.exit(error.exit_code)
    for item in error.conflicts:
        click.echo(_conflict_line(item), err=True)


def _conflict_line(item: dict[str, Any]) -> str:
    candidates = ", ".join(
        f"{candidate['content_sha256'][:_SHORT]} (observed {candidate['observed_at_utc']}"
        f"{', current on ' + '+'.join(candidate['current_on']) if candidate['current_on'] else ''})"
        for candidate in item["candidates"])
    return f"conflict {item['source_system']}/{item['entity_type']}/{item['natural_key']}: {candidates}"


def _text(result: SyncResult) -> str:
    verb = "would copy" if result.dry_run else "copied"
    lines = [f"{verb} {result.to_sql:,} event(s) to the database and {result.to_json:,} to the log "
             f"({result.direction}{', full reconciliation' if result.full_reconciliation else ''}); "
             f"{result.shared:,} shared observation(s) kept once; {result.keys_touched:,} key(s) touched"]
    for item in result.conflicts:
        lines.append(_decided(item, result.dry_run))
    if result.projection is not None:
        projection = result.projection
        lines.append(f"{projection.projection}: {projection.mode}, {projection.rows_inserted:,} row(s) inserted, "
                     f"{projection.rows_updated:,} updated; state digest {projection.state_digest}")
    if not result.changed and not result.dry_run:
        lines.append("nothing to do: the log and the database hold the same events")
    return "\n".join(lines)


def _decided(item: Conflict, dry_run: bool) -> str:
    line = _conflict_line(msgspec.to_builtins(item))
    if item.winner is None:
        return line
    return f"{line} -> {'would keep' if dry_run else 'kept'} {item.winner[:_SHORT]} ({item.strategy})"
