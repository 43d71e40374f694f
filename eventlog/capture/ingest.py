"""Reading captured exchanges from files: NDJSON envelopes and the original tool's snapshot packs.

Readers are generators of validated records, so a whole ingest is one append call: a bad line anywhere means
nothing of the ingest enters the log, and memory stays bounded however many files there are.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from eventlog.capture.manifest import MANIFEST_NAME, DatasetManifest, manifest_redactor, read_manifest
from eventlog.errors import InputError, record_number
from eventlog.format.canonical import parse_json
from eventlog.format.envelope import MAX_RECORD_BYTES, ExchangeRecord, content_sha256, decode_record
from eventlog.redaction.redactor import Redactor

ProgressHook = Callable[[int], None]


class InputTrail:
    """Where each record read came from (file and line), so that an error about the Nth record of an append can
    name them. Kept as runs of records on consecutive lines of one file: a few entries per file, not one per record.
    """

    __slots__ = ("_count", "_firsts", "_runs")

    def __init__(self) -> None:
        self._count = 0
        self._firsts: list[int] = []  # the record number each run starts with
        self._runs: list[tuple[str, int]] = []  # (file, line) of that record

    def note(self, source: str, line: int) -> None:
        """Record that the next record comes from `source`, line `line`."""
        self._count += 1
        if self._runs:
            last_source, last_line = self._runs[-1]
            if last_source == source and line - last_line == self._count - self._firsts[-1]:
                return
        self._firsts.append(self._count)
        self._runs.append((source, line))

    def locate(self, number: int) -> tuple[str, int] | None:
        """(file, line) of the `number`th record read (from 1), or None when it was not read through this trail."""
        if not 1 <= number <= self._count:
            return None
        at = bisect.bisect_right(self._firsts, number) - 1
        source, line = self._runs[at]
        return source, line + number - self._firsts[at]

    @contextmanager
    def naming(self) -> Iterator[None]:
        """Within the block, an InputError about the Nth record of an append (`record_source`) is raised again
        naming that record's file and line instead."""
        try:
            yield
        except InputError as exc:
            number = record_number(exc.source)
            place = self.locate(number) if number is not None else None
            if place is None:
                raise
            raise exc.located(source=place[0], line=place[1]) from None


def read_ndjson_lines(lines: Iterable[bytes], *, source: str, max_bytes: int = MAX_RECORD_BYTES,
                      trail: InputTrail | None = None) -> Iterator[ExchangeRecord]:
    """Validate NDJSON envelope lines; blank lines are skipped, a file with no record at all is refused.

    A line longer than `max_bytes` is refused before it is parsed (large payloads go by reference).
    """
    count = 0
    for number, raw in enumerate(lines, start=1):
        if len(raw) > max_bytes:
            raise InputError(f"the line is {len(raw):,} bytes, over the {max_bytes:,}-byte limit for one inline "
                             f"exchange; store large responses by reference (response_ref)",
                             source=source, line=number)
        text = raw.strip()
        if not text:
            continue
        value = parse_json(text, source=source, line=number)
        if isinstance(value, dict):
            from_original(value)
        record = decode_record(value, source=source, line=number)
        if trail is not None:
            trail.note(source, number)
        yield record
        count += 1
    if count == 0:
        raise InputError("no exchange records found (the input is empty)", source=source)


def from_original(value: dict[str, Any]) -> None:
    """Read the original tool's envelope shapes: null provenance, tags or redactions, a response_ref path."""
    for key, empty in (("provenance", {}), ("tags", []), ("redactions_applied", [])):
        if key in value and value[key] is None:
            value[key] = empty
    ref = value.get("response_ref")
    if isinstance(ref, str):
        value["response_ref"] = {"uri": ref}


def _file_lines(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            yield from handle
    except IsADirectoryError:
        raise InputError("is a folder; give a snapshot pack folder or NDJSON files", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None


def read_ndjson(path: Path, *, max_bytes: int = MAX_RECORD_BYTES,
                trail: InputTrail | None = None) -> Iterator[ExchangeRecord]:
    """Records of one NDJSON file (or `-` for standard input)."""
    if str(path) == "-":
        return read_ndjson_lines(sys.stdin.buffer, source="<stdin>", max_bytes=max_bytes, trail=trail)
    if not path.exists():
        raise InputError("no such file", source=str(path))
    return read_ndjson_lines(_file_lines(path), source=str(path), max_bytes=max_bytes, trail=trail)


def pack_chunk_files(folder: Path) -> list[Path]:
    """Chunk files of a snapshot pack in date and chunk order (chunk numbers compared as numbers)."""

    def order(path: Path) -> tuple[str, int]:
        number = path.name.removeprefix("chunk-").removesuffix(".ndjson")
        return (path.parent.as_posix(), int(number) if number.isdigit() else -1)

    # Hidden folders are a writer's staging (see projections/snapshot_pack.py), not part of the pack.
    records = folder / "records"
    found = (path for path in records.rglob("chunk-*.ndjson")
             if not any(part.startswith(".") for part in path.relative_to(records).parts))
    return sorted(found, key=order)


def read_pack(folder: Path, *, manifest: DatasetManifest | None = None, redact: bool = True,
              max_bytes: int = MAX_RECORD_BYTES, trail: InputTrail | None = None) -> Iterator[ExchangeRecord]:
    """Records of a snapshot pack: manifest.json, index.jsonl, records/YYYY/YYYY-MM-DD/chunk-NNNN.ndjson.

    Packs of the original tool read as they are (its envelope's null provenance and path response_ref
    included). `manifest` defaults to the pack's manifest.json; its redaction additions are applied here (the
    lake's own policy runs again at append) unless `redact` is false, for a caller that appends with the merged
    policy (Lake.append(..., redaction=...)). A record of another source system or entity type is refused.
    """
    where = folder / MANIFEST_NAME
    if manifest is None:
        manifest = read_manifest(where)
    redactor = manifest_redactor(manifest, source=str(where)) if redact else None
    for chunk in pack_chunk_files(folder):
        records = read_ndjson(chunk, max_bytes=max_bytes, trail=trail)
        for record in records if redactor is None else redact_records(records, redactor):
            if (record.source_system, record.entity_type) != (manifest.source_system, manifest.entity_type):
                raise InputError(
                    f"record {record.exchange_id} belongs to {record.source_system}/{record.entity_type}, "
                    f"not to the pack's {manifest.source_system}/{manifest.entity_type}", source=str(chunk))
            yield record


def redact_records(records: Iterable[ExchangeRecord], redactor: Redactor) -> Iterator[ExchangeRecord]:
    """Apply an additional redaction policy (a dataset manifest's) to records, noting the paths it redacted.

    A stated content_sha256 that is the hash of the record before this redaction is dropped (the log computes its
    own): the record agreed with itself, so it is not reported as a mismatch; any other stated hash is kept.
    """
    for record in records:
        redacted = redactor.redact_record(record)
        stated = record.content_sha256
        if redacted is not record and stated is not None and stated == content_sha256(record):
            redacted = msgspec.structs.replace(redacted, content_sha256=None)
        yield redacted


def expand_inputs(paths: Iterable[str]) -> list[Path]:
    """Files and pack folders to read, in a stable order.

    A folder with a manifest.json is a snapshot pack; any other folder contributes the packs and *.ndjson files
    found under it, in name order.
    """
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if text == "-" or path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = _walk_folder(path)
            if not inside:
                raise InputError("holds no snapshot pack (manifest.json) and no *.ndjson files", source=text)
            found.extend(inside)
        else:
            raise InputError("no such file or folder", source=text)
    return found


def _walk_folder(folder: Path) -> list[Path]:
    if (folder / "manifest.json").is_file():
        return [folder]
    found: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.is_symlink():
            found.extend(_walk_folder(child))
        elif child.is_file() and child.suffix == ".ndjson":
            found.append(child)
    return found


def read_inputs(paths: Iterable[Path], *, progress: ProgressHook | None = None, max_bytes: int = MAX_RECORD_BYTES,
                trail: InputTrail | None = None) -> Iterator[ExchangeRecord]:
    """Records of every input in order, reporting the running count to `progress` and each one's place to
    `trail`."""
    count = 0
    for path in paths:
        records = (read_pack(path, max_bytes=max_bytes, trail=trail) if path.is_dir()
                   else read_ndjson(path, max_bytes=max_bytes, trail=trail))
        for record in records:
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(count)
            yield record
    if progress is not None:
        progress(count)


def count_lines(paths: Iterable[Path]) -> int | None:
    """About how many records the inputs hold (their line count), for a progress bar; None for standard input."""
    total = 0
    for path in paths:
        if str(path) == "-":
            return None
        for file in pack_chunk_files(path) if path.is_dir() else [path]:
            try:
                with open(file, "rb") as handle:
                    while block := handle.read(1 << 20):
                        total += block.count(b"\n")
            except OSError:
                return None
    return total

