"""Cold-storage commands: keygen, archive, restore, pack, unpack.

Secrets come from a file, an environment variable or the terminal, never from the command line. Reading
commands that get no key option fall back to EVENTLOG_IDENTITY, EVENTLOG_KEY_FILE and EVENTLOG_PASSPHRASE.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import msgspec

from eventlog.capture.manifest import read_manifest
from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.cold.archiver import (
    ArchivedSegment,
    ArchiveReport,
    evicted_archives,
    merge_keys,
    parse_seq_range,
)
from eventlog.cold.container import Compression
from eventlog.cold.keys import (
    Argon2Params,
    Keys,
    Passphrase,
    load_identities,
    load_key_file,
    load_recipients,
    resolve_passphrase,
    write_identity_file,
    write_key_file,
)
from eventlog.cold.packs import LEGACY_PASSPHRASE_ENV, manifest_keys, pack_dataset, unpack
from eventlog.cold.reader import keys_from_env
from eventlog.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])
_PASSPHRASE_SOURCES = ("passphrase_env", "passphrase_file", "ask_passphrase")


def key_options(*, sealing: bool) -> Callable[[F], F]:
    """The key options of a command; with `sealing`, also --recipient and --argon2."""

    def decorate(func: F) -> F:
        options = [
            click.option("--identity", "identities", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
                         help="Identity file (X25519 secret key, from `eventlog keygen`); repeatable."),
            click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
                         help="Key file of 32 random bytes (from `eventlog keygen --key-file`)."),
            click.option("--passphrase-env", metavar="VAR", help="Read the passphrase from environment variable VAR."),
            click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
                         help="Read the passphrase from this file (UTF-8, one trailing line break dropped)."),
            click.option("--ask-passphrase", is_flag=True, help="Ask for the passphrase on the terminal."),
        ]
        if sealing:
            options += [
                click.option("--recipient", "recipients", multiple=True, metavar="PUBKEY_OR_FILE",
                             help="X25519 public key, or a file of them (an identity file gives its public half); "
                                  "repeatable."),
                click.option("--argon2", metavar="MEMORY_KIB:ITERATIONS:LANES",
                             help="Argon2id cost for a passphrase (default 65536:3:4)."),
            ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def keys_from_options(options: dict[str, Any], *, confirm: bool = False) -> Keys | None:
    """Keys from the key options given, or None when none was given."""
    given = [name for name in _PASSPHRASE_SOURCES if options.get(name)]
    if len(given) > 1:
        raise click.UsageError("give the passphrase one way: --passphrase-env, --passphrase-file or "
                               "--ask-passphrase")
    passphrase = resolve_passphrase(env=options.get("passphrase_env"), file=options.get("passphrase_file"),
                                    prompt=bool(options.get("ask_passphrase")), confirm=confirm)
    key_file = options.get("key_file")
    keys = Keys(passphrase=passphrase, key=load_key_file(key_file) if key_file else None,
                identities=[i for path in options.get("identities", ()) for i in load_identities(path)],
                recipients=[r for value in options.get("recipients", ()) for r in load_recipients(value)])
    return None if keys.is_empty() else keys


def parse_argon2(text: str | None) -> Argon2Params | None:
    """Parse MEMORY_KIB:ITERATIONS:LANES; None when not given."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        memory, iterations, lanes = (int(part) for part in parts)
        return msgspec.convert({"memory_kib": memory, "iterations": iterations, "lanes": lanes}, Argon2Params)
    except (ValueError, msgspec.ValidationError) as exc:
        detail = f": {exc}" if isinstance(exc, msgspec.ValidationError) else ""
        raise InputError(f"--argon2 {text!r} is not MEMORY_KIB:ITERATIONS:LANES within the allowed bounds"
                         f"{detail}") from None


def parse_before(text: str | None) -> datetime | None:
    """A date (midnight UTC) or an RFC 3339 time with an offset; a time without one is refused."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--before {text!r} is neither a date (YYYY-MM-DD) nor an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise InputError(f"--before {text!r} has no UTC offset; add Z or +HH:MM")
    return moment


@cli.command()
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a new X25519 identity (secret key) here, mode 0600, and print its public key.")
@click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a new 32-byte symmetric key file here instead, mode 0600.")
@json_option
@click.pass_context
def keygen(ctx: click.Context, out: Path | None, key_file: Path | None) -> None:
    """Make a key for archives: an X25519 identity (--out) or a symmetric key file (--key-file)."""
    if (out is None) == (key_file is None):
        raise click.UsageError("give either --out FILE (an X25519 identity) or --key-file FILE (a symmetric key)")
    if out is not None:
        recipient = write_identity_file(out)
        emit(ctx, {"identity": str(out), "public_key": recipient.text}, recipient.text)
    else:
        assert key_file is not None
        write_key_file(key_file)
        emit(ctx, {"key_file": str(key_file)}, f"wrote key file {key_file}")


@cli.command(name="archive")
@click.option("--before", metavar="DATE",
              help="Only segments whose events were all recorded before DATE (YYYY-MM-DD as UTC midnight, or an "
                   "RFC 3339 time with offset).")
@click.option("--segments", "seq_range", metavar="RANGE",
              help="Only segments wholly inside FIRST-LAST (seq numbers; either side may be left open).")
@click.option("--evict/--no-evict", default=None,
              help="Remove each hot segment once its archive is verified (default: lake.json archive.evict).")
@click.option("--compression", type=click.Choice(["zstd", "none"]), default=None,
              help="Compression inside the archive (default: lake.json archive.compression).")
@key_options(sealing=True)
@json_option
@click.pass_context
def archive_command(ctx: click.Context, /, before: str | None, seq_range: str | None, evict: bool | None,
                    compression: str | None, **options: Any) -> None:
    """Archive sealed segments to archive/, encrypted; with --evict, drop the hot copies once verified."""
    keys = keys_from_options(options, confirm=True)
    cutoff = parse_before(before)
    seqs = parse_seq_range(seq_range) if seq_range is not None else None
    kdf = parse_argon2(options.get("argon2"))
    done: list[ArchivedSegment] = []
    with app(ctx).open_lake() as lake, Progress(
            ctx, "archiving", unit="segments",
            total=lambda: sum(1 for _ in (lake.root / "log" / "seals").glob("*.json"))) as progress:

        def step(segment: ArchivedSegment) -> None:
            done.append(segment)
            progress(len(done))

        report = lake.archive(keys=keys, before=cutoff, seqs=seqs, evict=evict, kdf=kdf, progress=step,
                              compression=cast("Compression | None", compression))
    emit(ctx, report, lambda: _archive_text(report))


def _archive_text(report: ArchiveReport) -> str:
    lines = []
    for segment in report.segments:
        if segment.archived:
            text = (f"{segment.segment}: archived to {segment.archive} ({segment.count} events, "
                    f"{segment.plaintext_bytes:,} -> {segment.archive_bytes:,} bytes, verified by {segment.verified})")
        else:
            text = f"{segment.segment}: already in {segment.archive}"
        if segment.evicted:
            text += "; hot copy removed"
        elif not segment.hot:
            text += "; evicted"
        lines.append(text)
    lines.append(f"{report.archived} archived, {report.evicted} evicted, {len(report.segments)} segment(s) selected"
                 if report.segments else "no sealed segment selected")
    return "\n".join(lines)


@cli.command()
@click.argument("archives", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--segments", "seq_range", metavar="RANGE",
              help="Restore every evicted segment inside FIRST-LAST from its archive in archive/.")
@key_options(sealing=False)
@json_option
@click.pass_context
def restore(ctx: click.Context, /, archives: tuple[Path, ...], seq_range: str | None, **options: Any) -> None:
    """Put archived segments back under log/segments, each verified against its seal before it is written."""
    if not archives and seq_range is None:
        raise click.UsageError("name the archives to restore, or give --segments RANGE")
    keys = keys_from_options(options)
    with app(ctx).open_lake() as lake:
        paths = [*archives, *(evicted_archives(lake.root, parse_seq_range(seq_range)) if seq_range else [])]
        report = lake.restore(paths, keys=keys)
    emit(ctx, report, lambda: "\n".join(
        [f"{item.path}: {'restored from' if item.restored else 'already hot, left alone; archive'} {item.archive}"
         for item in report.segments] + [f"{report.restored} segment(s) restored"]))


@cli.command()
@click.option("--manifest", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Dataset manifest; its name picks snapshots/<name>/ of the lake.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Zip file to write.")
@click.option("--encrypt", is_flag=True,
              help="Seal the zip; without key options the passphrase comes from the manifest's encryption_policy "
                   "(default: SNAPSHOT_ENCRYPTION_KEY).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@key_options(sealing=True)
@json_option
@click.pass_context
def pack(ctx: click.Context, /, manifest: Path, out: Path, encrypt: bool, force: bool, **options: Any) -> None:
    """Zip a dataset's snapshot pack (deterministic bytes), optionally encrypted."""
    keys = keys_from_options(options, confirm=True)
    if keys is None and (encrypt or read_manifest(manifest).encryption_policy.enabled):
        keys = manifest_keys(read_manifest(manifest))
    info = pack_dataset(app(ctx).lake_path, manifest, out, keys=keys, kdf=parse_argon2(options.get("argon2")),
                        overwrite=force)
    emit(ctx, info, f"packed {info.entries} file(s), {info.content_bytes:,} bytes, into {info.path}"
                    + (" (encrypted)" if info.encrypted else ""))


@cli.command(name="unpack")
@click.option("--in", "source", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Pack to read: a zip, a sealed zip, or the original tool's encrypted pack.")
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder to fill.")
@click.option("--force", is_flag=True, help="Replace files that already exist in --out.")
@key_options(sealing=False)
@json_option
@click.pass_context
def unpack_command(ctx: click.Context, /, source: Path, out: Path, force: bool, **options: Any) -> None:
    """Extract a pack, refusing unsafe paths, links and archive bombs before anything is written."""
    keys = keys_from_options(options) or keys_from_env()
    legacy = os.environ.get(LEGACY_PASSPHRASE_ENV)
    if keys.passphrase is None and legacy:
        keys = merge_keys(keys, Keys(passphrase=Passphrase(legacy)))
    info = unpack(source, out, keys=None if keys.is_empty() else keys, force=force)
    emit(ctx, info, f"unpacked {info.entries} file(s), {info.content_bytes:,} bytes, into {info.out_dir}")
