"""Cold storage of sealed segments: archive them (evicting the hot copy when asked) and restore them.

On disk (docs/file-formats.md, "Cold storage"):

    archive/<first>-<last>.evlarc        one archive per sealed segment, in the format of eventlog.cold.container
    log/locations/<first>-<last>.json    where a sealed segment's verified archive lives: a sidecar, because
                                         seals are immutable and hash-chained and cannot record it

Order of work, so that a kill at any instant loses nothing: the archive is written temp -> fsync -> rename ->
fsync(dir) and read back (the plaintext must reproduce the seal's size and SHA-256; when a secret key is at hand
it is decrypted with that key and the Merkle root recomputed from its lines); then its location is written the
same way; only then is the hot segment removed. Every segment is hot, or evicted with a location whose archive
was verified before the removal. Work on the log's files holds the writer lock, one segment at a time.
Reading evicted segments back is eventlog.cold.reader's part.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple, cast

import msgspec

from eventlog.cold.container import Compression, decrypt_stream, encrypt_file, read_header, write_atomically
from eventlog.cold.keys import Argon2Params, Keys, load_recipients
from eventlog.cold.reader import (
    ARCHIVE_DIR,
    ENV_IDENTITY,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    LOCATIONS_DIR,
    ColdStore,
    Location,
    check_against_seal,
    file_digest,
    format_archive_name,
    has_secret,
    open_archive,
    read_location,
    segment_metadata,
    segment_of,
)
from eventlog.durable import fsync_dir, write_atomic
from eventlog.errors import ArchiveError, InputError, IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import format_utc
from eventlog.format.events import line_hash
from eventlog.log.config import ArchivePolicy
from eventlog.log.seals import MerkleTree, Seal, read_seal, seal_hash
from eventlog.log.segments import SegmentName, format_seal_name, format_segment_name, parse_seal_name
from eventlog.log.writer import EventLog

# What a killed archive or restore can leave: cryptobox temp files and the location's write_atomic temp.
_ARCHIVE_LEFTOVER = re.compile(r"^\.\d{20}-\d{20}\.evlarc\.[0-9a-f]{12}\.tmp$")
_SEGMENT_LEFTOVER = re.compile(r"^\.\d{20}-\d{20}\.ndjson\.[0-9a-f]{12}\.tmp$")
_LOCATION_LEFTOVER = re.compile(r"^\.\d{20}-\d{20}\.json\.tmp$")


class SeqRange(NamedTuple):
    """Seq bounds for selecting segments; None leaves that side open."""

    first: int | None = None
    last: int | None = None

    def holds(self, first_seq: int, last_seq: int) -> bool:
        """True when the whole segment lies inside the range."""
        return (self.first is None or first_seq >= self.first) and (self.last is None or last_seq <= self.last)


def parse_seq_range(text: str) -> SeqRange:
    """Parse `FIRST-LAST`, `FIRST-`, `-LAST` or one seq (e.g. a segment label); raises InputError."""
    first, dash, last = text.strip().partition("-")
    try:
        bounds = SeqRange(int(first) if first else None, int(last) if last else None) if dash else \
            SeqRange(int(first), int(first))
    except ValueError:
        raise InputError(f"segment range {text!r} is not FIRST-LAST (seq numbers; either side may be left "
                         "open)") from None
    if bounds.first is not None and bounds.last is not None and bounds.first > bounds.last:
        raise InputError(f"segment range {text!r} ends before it starts")
    return bounds


class ArchivedSegment(msgspec.Struct, frozen=True, kw_only=True):
    """What `archive_segments` did with one sealed segment."""

    segment: str
    first_seq: int
    last_seq: int
    count: int
    archive: str
    archived: bool
    evicted: bool
    hot: bool
    verified: str
    plaintext_bytes: int
    archive_bytes: int


class ArchiveReport(msgspec.Struct, frozen=True, kw_only=True):
    """The segments an archive run selected, in log order, with counts of what it did."""

    segments: tuple[ArchivedSegment, ...]
    archived: int
    evicted: int


class RestoredSegment(msgspec.Struct, frozen=True, kw_only=True):
    """One archive given to `restore_segments` and the hot segment it stands for."""

    archive: str
    segment: str
    path: str
    restored: bool


class RestoreReport(msgspec.Struct, frozen=True, kw_only=True):
    """The archives restored (or found already hot), in the order given."""

    segments: tuple[RestoredSegment, ...]
    restored: int


def policy_keys(policy: ArchivePolicy, root: Path) -> Keys:
    """The recipients lake.json's `archive.recipients` names (public keys, or files relative to the lake)."""
    found = []
    for value in policy.recipients:
        text = value.strip()
        if not text.startswith("eventlog-x25519-public-1:") and not Path(text).is_absolute():
            text = str(root / text)
        found.extend(load_recipients(text))
    return Keys(recipients=found)


def merge_keys(*parts: Keys | None) -> Keys:
    """One Keys holding all of `parts` (the first passphrase and key file win)."""
    given = [part for part in parts if part is not None]
    return Keys(passphrase=next((k.passphrase for k in given if k.passphrase is not None), None),
                key=next((k.key for k in given if k.key is not None), None),
                recipients=[r for k in given for r in k.recipients],
                identities=[i for k in given for i in k.identities])


def archive_segments(log: EventLog, root: Path, *, keys: Keys, before: datetime | None = None,
                     seqs: SeqRange | None = None, compression: Compression = "zstd", evict: bool = False,
                     kdf: Argon2Params | None = None,
                     progress: Callable[[ArchivedSegment], None] | None = None) -> ArchiveReport:
    """Archive each selected sealed segment to archive/<first>-<last>.evlarc; with `evict`, remove the hot copy.

    Selected: sealed segments whose every event was recorded before `before` (the seal's recorded_to_utc is
    earlier) and that lie wholly inside `seqs`; both None selects every sealed segment. Segments already
    archived are not archived again (the archive is re-hashed against its location before an eviction).
    Raises InputError when `keys` is empty, IntegrityError when a hot segment no longer matches its seal, and
    ArchiveError when a check of a written archive fails; on any error the segment at hand keeps its hot copy
    and no partial archive is left. Takes the writer lock once per segment, so appends go on in between.
    """
    if keys.is_empty():
        raise InputError("no key to seal archives to: give a recipient, a key file or a passphrase, or set "
                         "archive.recipients in lake.json")
    cutoff = format_utc(before) if before is not None else None
    archive_dir = root / ARCHIVE_DIR
    locations_dir = log.root / LOCATIONS_DIR
    archive_dir.mkdir(parents=True, exist_ok=True)
    locations_dir.mkdir(parents=True, exist_ok=True)
    with log.lock.held():
        _remove_leftovers(archive_dir, _ARCHIVE_LEFTOVER)
        _remove_leftovers(locations_dir, _LOCATION_LEFTOVER)
    results = []
    for seal_path in _seal_paths(log.seals_dir):
        seal, _ = read_seal(seal_path)
        if cutoff is not None and not seal.recorded_to_utc < cutoff:
            continue
        if seqs is not None and not seqs.holds(seal.first_seq, seal.last_seq):
            continue
        with log.lock.held():
            outcome = _archive_one(log, root, seal_path, keys=keys, compression=compression, evict=evict,
                                   kdf=kdf)
        results.append(outcome)
        if progress is not None:
            progress(outcome)
    return ArchiveReport(segments=tuple(results), archived=sum(r.archived for r in results),
                         evicted=sum(r.evicted for r in results))


def restore_segments(log: EventLog, archives: Iterable[Path], *, keys: Keys) -> RestoreReport:
    """Put evicted segments back under log/segments from their archives, checking everything first.

    Each archive is decrypted to a temporary file beside its target; before the rename its header must name a
    segment this lake has a seal for, with that seal's SHA-256, and the plaintext must reproduce the seal's
    size, file SHA-256, line count, seq range, chain hashes and Merkle root. A hot segment that is already
    there and matches its seal is left alone; one that differs is never overwritten (ArchiveError). Raises
    ArchiveError for a wrong key or a truncated, altered or foreign archive; each archive is restored
    atomically, so a failure leaves the log as it was before that archive.
    """
    if not has_secret(keys):
        raise ArchiveError("restoring needs the archives' key: give an identity, a key file or a passphrase, or "
                           f"set {ENV_IDENTITY}, {ENV_KEY_FILE} or {ENV_PASSPHRASE}")
    results = []
    for archive in archives:
        label = str(archive)
        with open_archive(archive, label) as src:
            name = segment_of(read_header(src, name=label), label)
        assert name.last_seq is not None
        seal_path = log.seals_dir / format_seal_name(name.first_seq, name.last_seq)
        target = log.segments_dir / format_segment_name(name.first_seq, name.last_seq)
        shown = f"log/segments/{target.name}"
        if not seal_path.exists():
            raise ArchiveError(f"{label} holds segment {name.label}, but this lake has no seal log/seals/"
                               f"{seal_path.name}; restore it into the lake it was archived from")
        with log.lock.held():
            _remove_leftovers(log.segments_dir, _SEGMENT_LEFTOVER)
            seal, seal_raw = read_seal(seal_path)
            if target.exists():
                if file_digest(target) != (seal.byte_length, seal.file_sha256):
                    raise ArchiveError(f"refusing to overwrite {shown}: it exists and differs from its seal "
                                       "(run `eventlog verify`)")
                results.append(RestoredSegment(archive=label, segment=name.label, path=shown, restored=False))
                continue
            with open_archive(archive, label) as src, write_atomically(target) as dst:
                lines = _LineCheck(dst)
                info = decrypt_stream(src, cast(BinaryIO, lines), keys=keys, name=label)
                check_against_seal(info, seal, seal_raw, label)
                lines.check(seal, label)
        results.append(RestoredSegment(archive=label, segment=name.label, path=shown, restored=True))
    return RestoreReport(segments=tuple(results), restored=sum(r.restored for r in results))


def evicted_archives(root: Path, seqs: SeqRange | None = None) -> list[Path]:
    """Archive paths of the evicted segments inside `seqs` (all when None), in log order."""
    store = ColdStore(root, keys=Keys())
    return [store.archive_dir / format_archive_name(name.first_seq, name.last_seq or 0)
            for name in store.evicted() if seqs is None or seqs.holds(name.first_seq, name.last_seq or 0)]


def _archive_one(log: EventLog, root: Path, seal_path: Path, *, keys: Keys, compression: Compression,
                 evict: bool, kdf: Argon2Params | None) -> ArchivedSegment:
    seal, seal_raw = read_seal(seal_path)
    name = SegmentName(seal.first_seq, seal.last_seq)
    hot = log.segments_dir / format_segment_name(seal.first_seq, seal.last_seq)
    archive = root / ARCHIVE_DIR / format_archive_name(seal.first_seq, seal.last_seq)
    location_path = log.root / LOCATIONS_DIR / format_seal_name(seal.first_seq, seal.last_seq)
    label = f"{ARCHIVE_DIR}/{archive.name}"
    location = _valid_location(location_path, archive, seal, seal_raw, check_archive=hot.exists() and evict)
    archived = False
    if location is None:
        if not hot.exists():
            raise ArchiveError(f"segment {name.label} is evicted but {label} does not match its location; "
                               f"restore it from another copy of the archive")
        if location_path.exists():
            # A stale location must not outlive the archive it describes while that is rewritten.
            location_path.unlink()
            fsync_dir(location_path.parent)
        location = _write_archive(hot, archive, label, seal, seal_raw, keys=keys, compression=compression,
                                  kdf=kdf, replica_id=log.replica_id, now=format_utc(log.clock()))
        write_atomic(location_path, canonical_json(msgspec.to_builtins(location)) + b"\n")
        archived = True
    evicted = False
    if evict and hot.exists():
        hot.unlink()
        fsync_dir(hot.parent)
        evicted = True
    return ArchivedSegment(segment=name.label, first_seq=seal.first_seq, last_seq=seal.last_seq, count=seal.count,
                           archive=label, archived=archived, evicted=evicted, hot=hot.exists(),
                           verified=location.verified, plaintext_bytes=seal.byte_length,
                           archive_bytes=location.archive_bytes)


def _valid_location(path: Path, archive: Path, seal: Seal, seal_raw: bytes, *, check_archive: bool) -> Location | None:
    """The segment's location if it describes this seal (and, with `check_archive`, the archive still matches)."""
    try:
        location = read_location(path)
    except (OSError, ValueError):
        return None
    if (location.file_sha256, location.seal_sha256) != (seal.file_sha256, seal_hash(seal_raw)):
        return None
    if check_archive and (not archive.exists()
                          or file_digest(archive) != (location.archive_bytes, location.archive_sha256)):
        return None
    return location


def _write_archive(hot: Path, archive: Path, label: str, seal: Seal, seal_raw: bytes, *, keys: Keys,
                   compression: Compression, kdf: Argon2Params | None, replica_id: str, now: str) -> Location:
    """Seal one segment to `archive`, prove the result, and return its location; no archive is left on error."""
    metadata = dict(segment_metadata(seal, seal_raw), replica_id=replica_id)
    info = encrypt_file(hot, archive, keys=keys, compression=compression, metadata=metadata, kdf=kdf,
                        verify=True, overwrite=True)
    try:
        if (info.plaintext_bytes, info.plaintext_sha256) != (seal.byte_length, seal.file_sha256):
            raise IntegrityError(f"log/segments/{hot.name} does not match its seal (run `eventlog verify`); it was "
                                 "not archived")
        verified: Literal["decryption", "read-back"] = "read-back"
        if has_secret(keys):
            lines = _LineCheck(None)
            with open_archive(archive, label) as src:
                opened = decrypt_stream(src, cast(BinaryIO, lines), keys=keys, name=label)
            check_against_seal(opened, seal, seal_raw, label)
            lines.check(seal, label)
            verified = "decryption"
        size, digest = file_digest(archive)
    except BaseException:
        archive.unlink(missing_ok=True)
        fsync_dir(archive.parent)
        raise
    return Location(first_seq=seal.first_seq, last_seq=seal.last_seq, archive=label, archive_bytes=size,
                    archive_sha256=digest, file_sha256=seal.file_sha256, merkle_root=seal.merkle_root,
                    seal_sha256=seal_hash(seal_raw), verified=verified, archived_at_utc=now)


class _LineCheck:
    """A sink for decrypted segment bytes: passes them on and rebuilds the Merkle tree of their line hashes."""

    def __init__(self, dst: BinaryIO | None) -> None:
        self._dst = dst
        self._pending = bytearray()
        self.tree = MerkleTree()
        self.first: bytes | None = None
        self.last: bytes | None = None

    def write(self, data: bytes) -> int:
        if self._dst is not None:
            self._dst.write(data)
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._pending:
                self._pending += data[start:end]
                self._line(bytes(self._pending))
                self._pending.clear()
            else:
                self._line(data[start:end])
            start = end + 1
        self._pending += data[start:]
        return len(data)

    def flush(self) -> None:
        if self._dst is not None:
            self._dst.flush()

    def _line(self, line: bytes) -> None:
        if self.first is None:
            self.first = line
        self.last = line
        self.tree.add(hashlib.sha256(line).digest())

    def check(self, seal: Seal, label: str) -> None:
        """Raise ArchiveError unless the lines reproduce the seal's count, seqs, chain hashes and Merkle root."""
        problem = None
        if self._pending:
            problem = "its data does not end with a complete line"
        elif self.tree.count != seal.count or self.first is None or self.last is None:
            problem = f"it holds {self.tree.count} lines, the seal says {seal.count}"
        elif self.tree.root() != seal.merkle_root:
            problem = "the Merkle root of its lines differs from the seal's"
        else:
            first, last = msgspec.json.decode(self.first), msgspec.json.decode(self.last)
            if (first.get("seq"), last.get("seq")) != (seal.first_seq, seal.last_seq):
                problem = "its first and last seq differ from the seal's range"
            elif first.get("prev") != seal.first_prev or line_hash(self.last) != seal.last_line_hash:
                problem = "its chain hashes differ from the seal's"
        if problem is not None:
            raise ArchiveError(f"{label} decrypts, but {problem}")


def _seal_paths(seals_dir: Path) -> list[Path]:
    found = [(parsed, Path(entry.path)) for entry in os.scandir(seals_dir)
             if (parsed := parse_seal_name(entry.name)) is not None]
    return [path for _, path in sorted(found)]


def _remove_leftovers(folder: Path, pattern: re.Pattern[str]) -> None:
    """Delete temporary files a killed run left (callers hold the writer lock, so none is in use)."""
    if not folder.is_dir():
        return
    removed = False
    for entry in os.scandir(folder):
        if pattern.match(entry.name):
            Path(entry.path).unlink(missing_ok=True)
            removed = True
    if removed:
        fsync_dir(folder)
