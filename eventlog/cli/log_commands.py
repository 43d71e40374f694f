"""Commands over the log itself: init, append, ingest, verify, log, show, hash, seal, reindex."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec

from eventlog.app.credentials import PASSWORD_ENV
from eventlog.app.lake import Lake
from eventlog.capture.ingest import InputTrail, count_lines, expand_inputs, read_inputs, redact_records
from eventlog.capture.manifest import manifest_redactor, new_manifest, read_manifest, write_new_manifest
from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.errors import IntegrityError, NotFoundError
from eventlog.format.canonical import parse_json
from eventlog.format.envelope import EXCHANGE_TYPES, decode_record
from eventlog.log.config import CONFIG_NAME
from eventlog.log.prepare import hash_report
from eventlog.log.writer import AppendResult
from eventlog.redaction.redactor import Redactor


@cli.command()
@click.option("--name", help="Dataset name (with --out: write a dataset manifest instead of a lake).")
@click.option("--source", help="Dataset source system, e.g. mediawiki.")
@click.option("--entity", help="Dataset entity type, e.g. page.")
@click.option("--type", "exchange_type", type=click.Choice(EXCHANGE_TYPES), default="generic", show_default=True,
              help="Exchange type of the dataset.")
@click.option("--description", help="What the dataset holds.")
@click.option("--owner", help="Who answers for the dataset.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=True),
              help="Folder of datasets: the manifest goes to OUT/<name>/manifest.json (as the original tool did).")
@click.option("--database-url", help="SQL mirror URL for a new lake (default: SQLite inside the lake); a password "
              "in it goes to the credentials file, not to lake.json.")
@click.option("--credentials-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Where the lake keeps its database password, mode 0600 (default: <lake>/credentials.json).")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest file.")
@click.option("--exist-ok", is_flag=True, help="Succeed when the lake already exists.")
@json_option
@click.pass_context
def init(ctx: click.Context, name: str | None, source: str | None, entity: str | None, exchange_type: str,
         description: str | None, owner: str | None, out: Path | None, database_url: str | None,
         credentials_file: Path | None, force: bool, exist_ok: bool) -> None:
    """Create a lake, or (with --name --source --entity --out DIR) a dataset manifest in DIR/<name>/."""
    dataset_options = {"--name": name, "--source": source, "--entity": entity, "--out": out}
    if any(value is not None for value in dataset_options.values()):
        missing = [option for option, value in dataset_options.items() if value is None]
        if missing:
            raise click.UsageError(f"a dataset manifest needs {', '.join(missing)} as well")
        if database_url is not None or credentials_file is not None or exist_ok:
            raise click.UsageError("--database-url, --credentials-file and --exist-ok are for a new lake, not a "
                                   "dataset manifest")
        assert out is not None and name is not None and source is not None and entity is not None
        manifest = new_manifest(name=name, source_system=source, entity_type=entity, exchange_type=exchange_type,
                                description=description, owner=owner, now=datetime.now(UTC))
        written = write_new_manifest(out, manifest, force=force)
        emit(ctx, {"manifest": str(written), "dataset_name": name, "folder": str(written.parent)},
             f"wrote manifest {written}")
        return
    path = app(ctx).lake_path
    with Lake.init(path, database_url=database_url, credentials_file=credentials_file, exist_ok=exist_ok) as lake:
        stored = lake.password_stored_in
        text = f"created lake {path} (replica {lake.config.replica_id})"
        if stored is not None:
            text += (f"\nstored the database password in {stored} (mode 0600), not in lake.json; to keep it out "
                     f"of files, delete {stored.name} and set {PASSWORD_ENV} in the environment instead")
        warn(lake)
        emit(ctx, {"lake": str(path), "replica_id": lake.config.replica_id, "database_url": lake.shown_database_url,
                   "password_file": None if stored is None else str(stored)}, text)


def warn(lake: Lake) -> None:
    """Print the lake's warnings (secrets kept where they should not be) on stderr, one line each."""
    for sentence in lake.warnings():
        click.echo(f"warning: {sentence}", err=True)


def _append_summary(result: AppendResult, files: int) -> str:
    text = (f"{files} input(s): {result.observed} observed, {result.revisited} revisited, "
            f"{result.already_present} already present")
    if result.redacted:
        text += f"; {result.redacted} record(s) redacted"
    if result.hash_mismatch_count:
        text += f"; {result.hash_mismatch_count} record(s) whose stated content_sha256 differs from ours"
    if result.sealed:
        text += f"; sealed {', '.join(result.sealed)}"
    return text


def _ingest(ctx: click.Context, paths: tuple[str, ...], label: str, manifest_path: Path | None) -> None:
    inputs = expand_inputs(paths)
    redactor = None
    if manifest_path is not None:
        redactor = manifest_redactor(read_manifest(manifest_path), source=str(manifest_path))
    with app(ctx).open_lake() as lake, Progress(ctx, label, total=lambda: count_lines(inputs),
                                                unit="records") as progress:
        trail = InputTrail()
        records = read_inputs(inputs, progress=progress, max_bytes=lake.config.max_record_bytes, trail=trail)
        with trail.naming():
            result = lake.append(records if redactor is None else redact_records(records, redactor))
    emit(ctx, {"inputs": [str(path) for path in inputs], **msgspec.to_builtins(result)},
         lambda: _append_summary(result, len(inputs)))


MANIFEST_OPTION = click.option(
    "--manifest", "manifest_path", type=click.Path(path_type=Path, dir_okay=False),
    help="Dataset manifest whose redaction additions apply to these inputs.")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@MANIFEST_OPTION
@json_option
@click.pass_context
def append(ctx: click.Context, files: tuple[str, ...], manifest_path: Path | None) -> None:
    """Append NDJSON exchange envelopes from FILES (or - for standard input) as one durable batch."""
    _ingest(ctx, files, "appending", manifest_path)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@MANIFEST_OPTION
@json_option
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], manifest_path: Path | None) -> None:
    """Ingest snapshot pack folders, NDJSON files or folders of them; a second ingest adds nothing."""
    _ingest(ctx, paths, "ingesting", manifest_path)



@cli.command()
@json_option
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Recompute every line hash, the chain, digests, seals and the seal chain."""
    with app(ctx).open_lake() as lake, Progress(ctx, "verifying", total=lambda: lake.log.last_seq) as progress:
        warn(lake)
        report = lake.verify(progress=progress)
    if app(ctx).as_json:
        emit(ctx, report, "")
    elif report.ok:
        evicted = f" ({report.evicted} in cold storage)" if report.evicted else ""
        click.echo(f"ok: {report.events} events in {report.segments} segment(s){evicted}, {report.seals} seal(s)")
    else:
        for problem in report.problems:
            click.echo(str(problem), err=True)
    if not report.ok:
        first = report.problems[0]
        raise IntegrityError(f"verify failed: {first}" + (f" (and {len(report.problems) - 1} more)"
                                                          if len(report.problems) > 1 else ""))


@cli.command(name="log")
@click.option("--after-seq", type=click.IntRange(min=0), default=0, help="Only events after this seq.")
@click.option("--type", "event_type", type=click.Choice(["observed", "revisited", "resolved"]),
              help="Only events of this type.")
@click.option("--source", help="Only this source system.")
@click.option("--entity", help="Only this entity type.")
@click.option("--key", help="Only this natural key.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many events.")
@json_option
@click.pass_context
def log_command(ctx: click.Context, after_seq: int, event_type: str | None, source: str | None,
                entity: str | None, key: str | None, limit: int | None) -> None:
    """List events in log order (NDJSON summaries with --json)."""
    shown = 0
    with app(ctx).open_lake() as lake:
        for event in lake.events(after_seq=after_seq):
            body = event.body
            if ((event_type and event.type != event_type) or (source and body.get("source_system") != source)
                    or (entity and body.get("entity_type") != entity) or (key and body.get("natural_key") != key)):
                continue
            summary = {"seq": event.seq, "type": event.type, "event_id": event.event_id,
                       "recorded_at_utc": event.recorded_at_utc, "observed_at_utc": body.get("observed_at_utc"),
                       "source_system": body.get("source_system"), "entity_type": body.get("entity_type"),
                       "natural_key": body.get("natural_key"), "content_sha256": event.content_sha256}
            if app(ctx).as_json:
                click.echo(msgspec.json.encode(summary).decode())
            else:
                click.echo(f"{event.seq:>8} {event.type:<9} {event.recorded_at_utc} {event.event_id} "
                           f"{body.get('source_system', '-')}/{body.get('entity_type', '-')}/"
                           f"{body.get('natural_key') or '-'} {(event.content_sha256 or '')[:12]}")
            shown += 1
            if limit is not None and shown >= limit:
                break


@cli.command()
@click.argument("exchange_id")
@json_option
@click.pass_context
def show(ctx: click.Context, exchange_id: str) -> None:
    """Print one exchange's event, with its payload, as JSON."""
    with app(ctx).open_lake() as lake:
        event = lake.get(exchange_id)
    if event is None:
        raise NotFoundError(f"exchange {exchange_id} is not in the lake at {app(ctx).lake_path}")
    text = msgspec.json.encode(event)
    click.echo(text.decode() if app(ctx).as_json else msgspec.json.format(text, indent=2).decode())


@cli.command(name="hash")
@MANIFEST_OPTION
@json_option
@click.pass_context
def hash_command(ctx: click.Context, manifest_path: Path | None) -> None:
    """Content hash of one envelope read from standard input, as the lake would log it.

    Redaction is the lake's (its lake.json policy, where --lake or ./lake is a lake; else the built-in one), plus
    the additions of --manifest.
    """
    record = decode_record(parse_json(sys.stdin.buffer.read(), source="<stdin>"), source="<stdin>")
    additions = None if manifest_path is None else manifest_redactor(read_manifest(manifest_path),
                                                                      source=str(manifest_path))
    if additions is not None:
        record = next(redact_records([record], additions))
    lake_path = app(ctx).lake_path
    if (lake_path / CONFIG_NAME).exists():
        with app(ctx).open_lake() as lake:
            result = hash_report(record, lake.log.redactor)
    else:
        result = hash_report(record, Redactor())
    emit(ctx, result, str(result["content_sha256"]))


@cli.command()
@json_option
@click.pass_context
def seal(ctx: click.Context) -> None:
    """Seal the active segment now."""
    with app(ctx).open_lake() as lake:
        label = lake.seal()
    emit(ctx, {"sealed": label}, f"sealed {label}" if label else "nothing to seal")


@cli.command()
@json_option
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild log/index.sqlite from the segments."""
    with app(ctx).open_lake() as lake:
        count = lake.reindex()
    emit(ctx, {"indexed": count}, f"indexed {count} events")
