"""The files of a snapshot pack: chunk names and writing, date folders, index.jsonl lines, staging folders.

Layout (docs/file-formats.md#snapshot-packs): records/YYYY/YYYY-MM-DD/chunk-NNNN.ndjson of at most CHUNK_LINES
lines, and index.jsonl with the original tool's field names. Lines of a date and of the index are ordered by
(observed_at_utc, content_sha256); these helpers keep that order and know nothing of the log.
"""

from __future__ import annotations

import heapq
import os
import queue
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from eventlog.durable import fsync_dir, named, write_atomic, write_atomically
from eventlog.errors import IntegrityError

__all__ = ["CHUNK_LINES", "INDEX_NAME", "RECORDS", "STAGING", "FileWriter", "IndexLine", "chunk_name", "chunk_number",
           "clean_staging", "date_lines", "date_tail", "index_line", "index_line_of_envelope", "last_index_key",
           "rewrite_index", "sync_tree", "write_date", "write_fsynced"]

CHUNK_LINES = 1000
INDEX_NAME = "index.jsonl"
RECORDS = "records"
# Staging names in a pack folder; a date's own staging is records/YYYY/.<date>.rewrite and .<date>.old.
STAGING = (".records.rebuild", ".records.old", f".{INDEX_NAME}.rebuild")
# The temp files of eventlog.durable's atomic writes (`.<name>.tmp`, `.<name>.<12 hex>.tmp`) that a killed run left.
_LEFTOVER = re.compile(r"\.[^/]+?(?:\.[0-9a-f]{12})?\.tmp")


class IndexLine(msgspec.Struct, frozen=True):
    """One line of index.jsonl, in the original tool's field order."""

    h: str
    k: str
    id: str
    t: str
    f: str


class _LineKey(msgspec.Struct, frozen=True):
    observed_at_utc: str
    content_sha256: str


_decode_index = msgspec.json.Decoder(IndexLine).decode
_decode_key = msgspec.json.Decoder(_LineKey).decode
_encode = msgspec.json.Encoder().encode


def chunk_name(date: str, number: int) -> str:
    """The path of a chunk inside a pack: records/YYYY/YYYY-MM-DD/chunk-NNNN.ndjson (at least four digits)."""
    return f"{RECORDS}/{date[:4]}/{date}/chunk-{number:04d}.ndjson"


def chunk_number(path: Path) -> int:
    """The number in a chunk file's name (chunks sort by it, past chunk-9999 too)."""
    return int(path.name.removeprefix("chunk-").removesuffix(".ndjson"))


def write_date(records_dir: Path, date: str, lines: Iterable[tuple[tuple[str, str], bytes]], *,
               first_chunk: int = 1, head: bytes = b"", head_lines: int = 0, staged: bool = False,
               writer: FileWriter | None = None) -> list[tuple[tuple[str, str], str]]:
    """Write a date's lines (key, envelope) into chunks; return (key, chunk path) per line.

    `head` is what the first chunk written already holds (`head_lines` lines), for an append to it. `staged`
    writes into a staging folder that is renamed into place afterwards: files are written and fsynced in
    place (by `writer`, when given, while the next chunk is made), and the caller fsyncs the folders once (see
    `sync_tree`) after closing the writer; otherwise each chunk replaces its predecessor atomically.
    """
    folder = records_dir / date[:4] / date
    folder.mkdir(parents=True, exist_ok=True)
    placed: list[tuple[tuple[str, str], str]] = []
    number, parts, count = first_chunk, [head], head_lines
    write: Callable[[Path, bytes], None] = (
        write_atomic if not staged else writer.submit if writer is not None else write_fsynced)
    name = chunk_name(date, number)
    for key, envelope in lines:
        parts.append(envelope)
        parts.append(b"\n")
        count += 1
        placed.append((key, name))
        if count == CHUNK_LINES:
            write(folder / f"chunk-{number:04d}.ndjson", b"".join(parts))
            number, parts, count = number + 1, [], 0
            name = chunk_name(date, number)
    if count:
        write(folder / f"chunk-{number:04d}.ndjson", b"".join(parts))
    return placed

def date_lines(folder: Path) -> Iterator[tuple[tuple[str, str], bytes]]:
    """The lines of one date folder of the pack, in order, with their keys."""
    for path in sorted(folder.glob("chunk-*.ndjson"), key=chunk_number):
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.rstrip(b"\n")
                if not text:
                    continue
                try:
                    key = _decode_key(text)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    raise IntegrityError(f"{path}, line {number}: not a record of this pack's projection; "
                                         "rebuild the pack") from None
                yield (key.observed_at_utc, key.content_sha256), text


def write_fsynced(path: Path, data: bytes) -> None:
    """Write the new file `path` and fsync it; an OSError names `path` (a full disk shows at the write)."""
    with named(path), open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class FileWriter:
    """Writes and fsyncs new files (`write_fsynced`) on a thread of its own, so that the caller makes the next
    file meanwhile: the disk's time and Python's overlap. At most `depth` files wait. The first error a write meets
    is raised, as it was, by the next `submit` or by leaving the `with` block, which waits for every file."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[tuple[Path, bytes] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pack-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    write_fsynced(*item)
                except BaseException as exc:  # handed to the caller's thread, raised there
                    self._error = exc

    def submit(self, path: Path, data: bytes) -> None:
        """Queue `data` to be written to the new file `path` and fsynced."""
        if self._error is not None:
            self._raise()
        self._queue.put((path, data))

    def _raise(self) -> None:
        error, self._error = self._error, None
        assert error is not None
        raise error

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc is None:
            self._raise()


def sync_tree(root: Path) -> None:
    """fsync every folder under `root` and `root` itself, deepest first (new entries made durable)."""
    for folder in sorted((path for path in root.rglob("*") if path.is_dir()), key=lambda p: -len(p.parts)):
        fsync_dir(folder)
    fsync_dir(root)


def clean_staging(folder: Path) -> None:
    """Remove what an interrupted run left in `folder`: its staging folders and the temp files of atomic writes."""
    for name in STAGING:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and _LEFTOVER.fullmatch(entry.name):
            os.unlink(entry.path)


def date_tail(folder: Path) -> tuple[int, bytes, int, tuple[str, str]] | None:
    """(last chunk number, its bytes, its line count, key of its last line) of a date folder, or None if empty."""
    chunks = sorted(folder.glob("chunk-*.ndjson"), key=chunk_number) if folder.is_dir() else []
    if not chunks:
        return None
    data = chunks[-1].read_bytes()
    lines = data.splitlines()
    if not lines:
        return None
    key = _decode_key(lines[-1])
    return chunk_number(chunks[-1]), data, len(lines), (key.observed_at_utc, key.content_sha256)


class _EnvelopeNames(msgspec.Struct, frozen=True):
    content_sha256: str
    exchange_id: str
    observed_at_utc: str
    natural_key: str | None = None


def index_line(*, content: str, prefix: str, natural_key: str | None, exchange_id: str, observed: str,
               chunk: str) -> bytes:
    """One line of index.jsonl; `prefix` is "<source_system>|<entity_type>|".

    The same bytes as msgspec's encoding of an IndexLine (a test checks): hashes, ids, times and chunk paths are
    ASCII with nothing to escape, so only `k` goes through the encoder.
    """
    return b"".join((b'{"h":"', content.encode(), b'","k":', _encode(prefix + (natural_key or "")), b',"id":"',
                     exchange_id.encode(), b'","t":"', observed.encode(), b'","f":"', chunk.encode(), b'"}\n'))


def index_line_of_envelope(envelope: bytes, *, prefix: str, chunk: str) -> bytes:
    """The index.jsonl line of a pack line (an envelope) filed in `chunk`."""
    names = msgspec.json.decode(envelope, type=_EnvelopeNames)
    return index_line(content=names.content_sha256, prefix=prefix, natural_key=names.natural_key,
                      exchange_id=names.exchange_id, observed=names.observed_at_utc, chunk=chunk)


def last_index_key(path: Path) -> tuple[str, str] | None:
    """(t, h) of the last line of index.jsonl, or None when it is missing or empty."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            tail = handle.read().rstrip(b"\n").rpartition(b"\n")[2]
    except FileNotFoundError:
        return None
    if not tail:
        return None
    line = _decode_index(tail)
    return (line.t, line.h)


def rewrite_index(path: Path, appended: list[bytes], rewritten: dict[str, list[bytes]], removed: set[str]) -> None:
    """Write index.jsonl anew: its lines but those of `rewritten` dates and `removed` contents, merged in order
    with `appended` lines and the lines of the rewritten dates."""

    def old_lines() -> Iterator[tuple[tuple[str, str], bytes]]:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after the merge has read it
        except FileNotFoundError:
            return
        with handle:
            for raw in handle:
                if not raw.strip():
                    continue
                line = _decode_index(raw)
                if line.h in removed or line.t[:10] in rewritten:
                    continue
                yield (line.t, line.h), raw if raw.endswith(b"\n") else raw + b"\n"

    def keyed(lines: Iterable[bytes]) -> Iterator[tuple[tuple[str, str], bytes]]:
        for raw in lines:
            line = _decode_index(raw)
            yield (line.t, line.h), raw

    fresh = sorted(keyed([*appended, *(line for lines in rewritten.values() for line in lines)]))
    with write_atomically(path, overwrite=True) as out:
        for _, raw in heapq.merge(old_lines(), fresh, key=lambda item: item[0]):
            out.write(raw)

