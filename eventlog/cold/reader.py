"""Evicted segments read back from cold storage, and the names, locations and checks archives share.

A sealed segment is hot while log/segments/<first>-<last>.ndjson exists and evicted when only its archive,
archive/<first>-<last>.evlarc, recorded in log/locations/<first>-<last>.json, holds it (eventlog.cold.archiver writes
both). `ColdStore` implements log.ColdSegments: it lists evicted segments, decrypts one into an anonymous
temporary file checked against its seal, and checks archives without a key for `verify`.

Keys for reading come from `Lake.open(..., keys=...)` or, when none are given, from the environment:
EVENTLOG_IDENTITY (an identity file), EVENTLOG_KEY_FILE (a key file), EVENTLOG_PASSPHRASE (the passphrase),
the same names the stand-alone decryptor in docs/archive-format.md reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import msgspec

from eventlog.cold.container import (
    ArchiveHeader,
    ArchiveInfo,
    KeyStanza,
    PassphraseStanza,
    Stanza,
    X25519Stanza,
    decrypt_stream,
    read_header,
)
from eventlog.cold.keys import Keys, Passphrase, load_identities, load_key_file
from eventlog.errors import ArchiveError, IntegrityError
from eventlog.log.seals import Seal, read_seal, seal_hash
from eventlog.log.segments import SegmentName, format_seal_name, format_segment_name, parse_seal_name

ARCHIVE_DIR = "archive"
LOCATIONS_DIR = "locations"
SEGMENT_KIND = "eventlog-segment"
LOCATION_FORMAT = 1
ENV_IDENTITY = "EVENTLOG_IDENTITY"
ENV_KEY_FILE = "EVENTLOG_KEY_FILE"
ENV_PASSPHRASE = "EVENTLOG_PASSPHRASE"

_ARCHIVE_NAME = re.compile(r"^(\d{20})-(\d{20})\.evlarc$")
_READ_SIZE = 1 << 20


def format_archive_name(first_seq: int, last_seq: int) -> str:
    """File name of a sealed segment's archive: `<first>-<last>.evlarc`, 20-digit seqs."""
    return f"{SegmentName(first_seq, last_seq).label}.evlarc"


def parse_archive_name(name: str) -> SegmentName | None:
    """Inverse of format_archive_name; None for a file that is not a segment archive."""
    if match := _ARCHIVE_NAME.match(name):
        return SegmentName(int(match[1]), int(match[2]))
    return None


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """log/locations/<first>-<last>.json: where a sealed segment's verified archive is, and what it holds.

    Written only after the archive was read back and checked; the hot segment is removed only after this.
    `archive_bytes` and `archive_sha256` let `verify` check an evicted segment's archive without a key.
    """

    format: int = LOCATION_FORMAT
    first_seq: int
    last_seq: int
    archive: str
    archive_bytes: int
    archive_sha256: str
    file_sha256: str
    merkle_root: str
    seal_sha256: str
    verified: Literal["decryption", "read-back"]
    archived_at_utc: str


def keys_from_env(environ: Mapping[str, str] | None = None) -> Keys:
    """Keys named by EVENTLOG_IDENTITY, EVENTLOG_KEY_FILE and EVENTLOG_PASSPHRASE (empty Keys when none is set).

    Raises InputError naming the variable's file when it cannot be read; never shows a secret.
    """
    env = os.environ if environ is None else environ
    identity, key_file, passphrase = env.get(ENV_IDENTITY), env.get(ENV_KEY_FILE), env.get(ENV_PASSPHRASE)
    return Keys(identities=load_identities(Path(identity)) if identity else (),
                key=load_key_file(Path(key_file)) if key_file else None,
                passphrase=Passphrase(passphrase) if passphrase else None)


def has_secret(keys: Keys) -> bool:
    """True when `keys` can open an archive (not only seal one)."""
    return keys.passphrase is not None or keys.key is not None or bool(keys.identities)


class ColdStore:
    """The evicted segments of one lake, read back from their archives (implements log.ColdSegments).

    `keys` opens the archives; None means "from the environment, looked up when first needed", so a lake with
    nothing evicted never reads key files. Decrypted segments go to anonymous temporary files in `scratch` (the lake's
    archive folder unless given: a copied lake, which is only read, gets another), in constant memory; one is kept
    for `read_line` until `close`. `log_dir` is the log folder when it is not `root`/log.
    """

    def __init__(self, root: Path, *, keys: Keys | None = None, log_dir: Path | None = None,
                 scratch: Path | None = None) -> None:
        self.root = root
        log_dir = root / "log" if log_dir is None else log_dir
        self.archive_dir = root / ARCHIVE_DIR
        self.locations_dir = log_dir / LOCATIONS_DIR
        self.segments_dir = log_dir / "segments"
        self.seals_dir = log_dir / "seals"
        self.scratch = self.archive_dir if scratch is None else scratch
        self._keys: Keys | None = keys
        self._cached: tuple[SegmentName, BinaryIO] | None = None

    def keys(self) -> Keys:
        """The keys given, else those of the environment (possibly empty)."""
        if self._keys is None:
            self._keys = keys_from_env()
        return self._keys

    def close(self) -> None:
        if self._cached is not None:
            self._cached[1].close()
            self._cached = None

    def locations(self) -> list[SegmentName]:
        """Every sealed segment with a recorded archive, hot or not, in log order."""
        found = []
        if self.locations_dir.is_dir():
            for entry in os.scandir(self.locations_dir):
                parsed = parse_seal_name(entry.name)
                if parsed is not None:
                    found.append(SegmentName(*parsed))
        return sorted(found, key=lambda name: name.first_seq)

    def evicted(self) -> list[SegmentName]:
        return [name for name in self.locations()
                if not (self.segments_dir / format_segment_name(name.first_seq, name.last_seq)).exists()]

    def can_read(self) -> bool:
        return has_secret(self.keys())

    def open_segment(self, name: SegmentName) -> BinaryIO:
        assert name.last_seq is not None
        archive = self.archive_dir / format_archive_name(name.first_seq, name.last_seq)
        label = f"{ARCHIVE_DIR}/{archive.name}"
        keys = self.keys()
        if not has_secret(keys):
            raise ArchiveError(_no_key_message(archive, label, name))
        seal, seal_raw = _read_seal_for(self.seals_dir, name, label)
        # Anonymous where the platform allows: nothing is left behind if the process dies.
        plain = cast(BinaryIO, tempfile.TemporaryFile(dir=self.scratch))  # noqa: SIM115 (returned open)
        try:
            with open_archive(archive, label) as src:
                info = decrypt_stream(src, plain, keys=keys, name=label)
            check_against_seal(info, seal, seal_raw, label)
            plain.seek(0)
        except BaseException:
            plain.close()
            raise
        return plain

    def read_line(self, name: SegmentName, offset: int, length: int) -> bytes:
        if self._cached is None or self._cached[0] != name:
            self.close()
            self._cached = (name, self.open_segment(name))
        handle = self._cached[1]
        handle.seek(offset)
        return handle.read(length)

    def check(self, name: SegmentName) -> list[tuple[str, str]]:
        assert name.last_seq is not None
        location_label = f"log/{LOCATIONS_DIR}/{format_seal_name(name.first_seq, name.last_seq)}"
        archive = self.archive_dir / format_archive_name(name.first_seq, name.last_seq)
        label = f"{ARCHIVE_DIR}/{archive.name}"
        try:
            location = read_location(self.locations_dir / format_seal_name(name.first_seq, name.last_seq))
        except (OSError, ValueError) as exc:
            return [(location_label, f"unreadable location: {exc}")]
        if not archive.exists():
            return [(label, f"the archive of evicted segment {name.label} is missing: the segment has no copy")]
        if location.archive != label or file_digest(archive) != (location.archive_bytes, location.archive_sha256):
            return [(label, "the archive does not match the size and SHA-256 its location records (it was "
                            "altered, truncated or replaced)")]
        seal_path = self.seals_dir / format_seal_name(name.first_seq, name.last_seq)
        if not seal_path.exists():
            return []
        try:
            seal, seal_raw = read_seal(seal_path)
        except (IntegrityError, OSError):
            return []  # verify names the seal itself
        try:
            with open_archive(archive, label) as src:
                header = read_header(src, name=label)
            check_header(header, seal, seal_raw, label)
        except ArchiveError as exc:
            return [(label, str(exc))]
        if (location.file_sha256, location.seal_sha256) != (seal.file_sha256, seal_hash(seal_raw)):
            return [(location_label, "the location describes a different segment than its seal")]
        return []


def read_location(path: Path) -> Location:
    """Read a location sidecar; raises OSError or msgspec's ValueError subclasses."""
    return msgspec.json.decode(path.read_bytes(), type=Location)


def segment_of(header: ArchiveHeader, label: str) -> SegmentName:
    """The segment a segment archive's header names; ArchiveError for any other archive."""
    meta = header.metadata
    first, last = meta.get("first_seq"), meta.get("last_seq")
    if meta.get("kind") != SEGMENT_KIND or not isinstance(first, int) or not isinstance(last, int) \
            or not 0 < first <= last:
        raise ArchiveError(f"{label} is not an archive of a log segment (its header names no segment)")
    return SegmentName(first, last)


def check_header(header: ArchiveHeader, seal: Seal, seal_raw: bytes, label: str) -> None:
    """Raise ArchiveError unless the header's metadata names exactly this seal's segment."""
    expected = segment_metadata(seal, seal_raw)
    differ = sorted(key for key, value in expected.items() if header.metadata.get(key) != value)
    if differ:
        raise ArchiveError(f"{label} does not hold the segment log/seals/{format_seal_name(seal.first_seq, seal.last_seq)}"
                           f" describes ({', '.join(differ)} differ)")


def check_against_seal(info: ArchiveInfo, seal: Seal, seal_raw: bytes, label: str) -> None:
    """Raise ArchiveError unless a decrypted archive's header and plaintext match the seal."""
    check_header(info.header, seal, seal_raw, label)
    if (info.plaintext_bytes, info.plaintext_sha256) != (seal.byte_length, seal.file_sha256):
        raise ArchiveError(f"{label} decrypts to data whose size or SHA-256 differs from its seal")


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while block := src.read(_READ_SIZE):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def segment_metadata(seal: Seal, seal_raw: bytes) -> dict[str, Any]:
    """The header metadata of a segment archive: what its seal says, and the seal's own SHA-256."""
    return {"kind": SEGMENT_KIND, "segment": SegmentName(seal.first_seq, seal.last_seq).label,
            "first_seq": seal.first_seq, "last_seq": seal.last_seq, "count": seal.count,
            "byte_length": seal.byte_length, "file_sha256": seal.file_sha256, "merkle_root": seal.merkle_root,
            "seal_sha256": seal_hash(seal_raw)}


def _read_seal_for(seals_dir: Path, name: SegmentName, label: str) -> tuple[Seal, bytes]:
    path = seals_dir / format_seal_name(name.first_seq, name.last_seq or 0)
    try:
        return read_seal(path)
    except OSError:
        raise ArchiveError(f"{label}: the seal log/seals/{path.name} it must match is missing") from None


def open_archive(path: Path, label: str) -> BinaryIO:
    """Open an archive for reading; ArchiveError naming `label` when it cannot be."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read {label}: {exc.strerror}") from None


def _no_key_message(archive: Path, label: str, name: SegmentName) -> str:
    kinds = ""
    try:
        with archive.open("rb") as src:
            header = read_header(src, name=label)
        kinds = " (it opens with: " + ", ".join(sorted({_STANZA_NAMES[type(s)] for s in header.recipients})) + ")"
    except (OSError, ArchiveError):
        pass
    return (f"segment {name.label} was evicted to {label}{kinds}; reading it needs its key: set {ENV_IDENTITY}, "
            f"{ENV_KEY_FILE} or {ENV_PASSPHRASE} (in Python, Lake.open(..., keys=...)), or bring it back with "
            f"`eventlog restore --segments {name.first_seq}-{name.last_seq}`")


_STANZA_NAMES: dict[type[Stanza], str] = {PassphraseStanza: "passphrase", KeyStanza: "key file",
                                          X25519Stanza: "X25519 identity"}
