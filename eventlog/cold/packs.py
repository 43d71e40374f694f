"""Zip packs of a folder: deterministic packing, and unpacking that refuses anything unsafe.

`pack_folder` writes the same bytes for the same folder: entries sorted by path, fixed timestamps and modes,
regular files only (empty folders are not kept). With `encrypt_with` the zip is sealed in the archive format
of `eventlog.cold.container` (compression "none": the zip is already deflated).

`unpack` reads three kinds of file, told apart by their first bytes: a plain zip, a zip sealed by
`pack_folder(..., encrypt_with=...)`, and the original tool's encrypted packs (salt 16 | nonce 12 | AES-256-GCM
ciphertext | tag 16, key = PBKDF2-HMAC-SHA256(passphrase, salt, 480,000 iterations); passphrase by default from
the environment variable SNAPSHOT_ENCRYPTION_KEY). Before anything lands in the target it checks every entry:
absolute paths, drive letters, `..`, backslashes, links and device entries, duplicate names, the entry count,
the bytes actually decompressed (headers are not trusted) and the overall expansion ratio. Files are extracted
into a staging folder beside the target and moved in only when all of them were read, so a refused archive
leaves no trace. Extracted files get default permissions; modes stored in the zip are ignored. A snapshot pack
(a zip whose root holds a valid dataset manifest) goes to `<out>/<dataset_name>/`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from eventlog.capture.manifest import MANIFEST_NAME, DatasetManifest, parse_manifest, read_manifest
from eventlog.cold.container import decrypt_file, encrypt_stream, is_archive, write_atomically
from eventlog.cold.keys import (
    Argon2Params,
    Keys,
    Passphrase,
    passphrase_from_env,
    passphrase_from_file,
    prompt_passphrase,
)
from eventlog.durable import fsync_dir
from eventlog.errors import ArchiveError, InputError, NotFoundError, UnsafeArchiveError
from eventlog.log.config import read_config

PACK_KIND = "eventlog-snapshot-pack"

LEGACY_PASSPHRASE_ENV = "SNAPSHOT_ENCRYPTION_KEY"
LEGACY_ITERATIONS = 480_000
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_BYTES = 16 << 30
DEFAULT_MAX_RATIO = 100

# Deflate cannot exceed ~1032:1 on one entry; the ratio limit catches overlapping-entry bombs and is applied
# only past this many output bytes so that tiny, highly compressible packs are never refused.
_RATIO_FLOOR = 16 << 20
_MANIFEST_LIMIT = 1 << 20
_COPY_SIZE = 1 << 20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_LEGACY_SALT, _LEGACY_NONCE, _LEGACY_TAG = 16, 12, 16
_DRIVE = re.compile(r"^[A-Za-z]:")

PackSource = Literal["zip", "eventlog", "legacy"]


class PackInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Result of `pack_folder`: the zip's entry count, content bytes and SHA-256 (of the zip, before sealing)."""

    path: str
    entries: int
    content_bytes: int
    zip_sha256: str
    encrypted: bool


class UnpackInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Result of `unpack`: where the files went, how many and their bytes, which kind of file was read, and the
    dataset when it was a snapshot pack."""

    out_dir: str
    entries: int
    content_bytes: int
    source: PackSource
    dataset: str | None = None


class _Entry(msgspec.Struct, frozen=True):
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def pack_folder(folder: Path, out_zip: Path, *, encrypt_with: Keys | None = None,
                kdf: Argon2Params | None = None, metadata: Mapping[str, Any] | None = None,
                overwrite: bool = False) -> PackInfo:
    """Pack every regular file under `folder` into a deterministic zip at `out_zip` (temp -> rename).

    Raises ArchiveError for a link, device or a name `unpack` would refuse, and for an existing `out_zip`
    unless `overwrite`. With `encrypt_with` the zip is sealed to those keys, `metadata` goes into the sealed
    header (e.g. the dataset name) and `kdf` sets the Argon2id cost.
    """
    if Path(os.path.abspath(out_zip)).is_relative_to(os.path.abspath(folder)):
        raise InputError(f"cannot pack {folder} into {out_zip}: the pack would be inside the folder it packs")
    files = _collect(folder)
    if encrypt_with is None:
        with write_atomically(out_zip, overwrite=overwrite) as handle:
            content = _write_zip(handle, files)
        return PackInfo(path=str(out_zip), entries=len(files), content_bytes=content,
                        zip_sha256=_sha256_file(out_zip), encrypted=False)
    staging = out_zip.with_name(f".{out_zip.name}.{os.urandom(6).hex()}.zip.tmp")
    try:
        with staging.open("x+b") as spool:
            content = _write_zip(spool, files)
            spool.seek(0)
            with write_atomically(out_zip, overwrite=overwrite) as handle:
                info = encrypt_stream(spool, handle, keys=encrypt_with, compression="none", kdf=kdf,
                                      metadata=metadata)
    finally:
        staging.unlink(missing_ok=True)
    return PackInfo(path=str(out_zip), entries=len(files), content_bytes=content,
                    zip_sha256=info.plaintext_sha256, encrypted=True)


def unpack(archive: Path, out_dir: Path, *, keys: Keys | None = None, force: bool = False,
           max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES,
           max_ratio: float = DEFAULT_MAX_RATIO) -> UnpackInfo:
    """Extract a pack into `out_dir`, refusing anything unsafe before the target is touched.

    `keys` opens sealed packs; without it (or without a passphrase in it) the passphrase comes from the
    environment variable SNAPSHOT_ENCRYPTION_KEY when set. Raises UnsafeArchiveError naming the entry for an
    unsafe path, a link, a duplicate, an existing file (unless `force`, which replaces files), or a pack past
    `max_entries`, `max_bytes` (bytes actually decompressed) or `max_ratio` (output over zip size); ArchiveError
    for a wrong key or damaged file. On any error nothing is left in or beside `out_dir`.
    """
    label = str(archive)
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.is_symlink():
        raise UnsafeArchiveError(f"refusing to unpack {label}: the target {out_dir} is a symbolic link")
    if out_dir.exists() and not out_dir.is_dir():
        raise ArchiveError(f"refusing to unpack {label}: the target {out_dir} exists and is not a folder")
    try:
        with archive.open("rb") as probe:
            head = probe.read(8)
    except OSError as exc:
        raise ArchiveError(f"cannot read {label}: {exc.strerror}") from None
    created = _first_missing(out_dir.parent)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.unpack-{os.urandom(6).hex()}"
    staging.mkdir()
    try:
        source: PackSource
        if is_archive(head):
            source, zip_path = "eventlog", staging / "pack.zip"
            decrypt_file(archive, zip_path, keys=_with_default_passphrase(keys))
        elif head[:4] in _ZIP_MAGICS:
            source, zip_path = "zip", archive
        else:
            source, zip_path = "legacy", staging / "pack.zip"
            _decrypt_legacy(archive, zip_path, _legacy_passphrase(keys, label))
        tree = staging / "tree"
        tree.mkdir()
        target, dataset = _dataset_folder(zip_path, out_dir)
        if target != out_dir:
            if out_dir.exists() and not out_dir.is_dir():
                raise ArchiveError(f"refusing to unpack {label}: the target {out_dir} exists and is not a folder")
            if not out_dir.exists():
                out_dir.mkdir()
                created = created or out_dir
        entries, total = _extract(zip_path, tree, target, label=label, force=force, max_entries=max_entries,
                                  max_bytes=max_bytes, max_ratio=max_ratio)
        _install(tree, target, entries, label=label, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return UnpackInfo(out_dir=str(target), entries=sum(1 for e in entries if not e.is_dir),
                      content_bytes=total, source=source, dataset=dataset)


def _dataset_folder(zip_path: Path, out_dir: Path) -> tuple[Path, str | None]:
    """Where a zip goes: OUT/<dataset_name>/ when its root holds a valid dataset manifest (a snapshot pack), as
    the original tool's documentation has it, or OUT itself when OUT is already named so, or for any other zip."""
    try:
        with zipfile.ZipFile(zip_path) as zf, zf.open(MANIFEST_NAME) as handle:
            raw = handle.read(_MANIFEST_LIMIT + 1)
    except (KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError):
        return out_dir, None
    if len(raw) > _MANIFEST_LIMIT:
        return out_dir, None
    try:
        name = parse_manifest(raw, source=MANIFEST_NAME).dataset_name
    except InputError:
        return out_dir, None
    return (out_dir if out_dir.name == name else out_dir / name), name


def entry_problem(name: str) -> str | None:
    """Why an entry name is unsafe to extract (absolute, drive, `..`, backslash, ...), or None if it is fine."""
    if not name or name in ("/", "./"):
        return "has an empty name"
    if "\x00" in name:
        return "has a NUL byte in its name"
    if "\\" in name:
        return "has a backslash in its name"
    if name.startswith("/"):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ":" in name:
        return "has a colon in its name"
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        return "has a '..' component"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' path component"
    return None


def _collect(folder: Path) -> list[tuple[str, Path, int]]:
    if not folder.is_dir():
        raise InputError(f"cannot pack {folder}: it is not a folder")
    files: list[tuple[str, Path, int]] = []
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        for name in [*dirs, *names]:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"cannot pack {folder}: {rel} is a symbolic link")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise ArchiveError(f"cannot pack {folder}: {rel} is not a regular file")
            problem = entry_problem(rel)
            if problem is not None:
                raise ArchiveError(f"cannot pack {folder}: {rel!r} {problem}, which unpack refuses")
            files.append((rel, path, path.stat().st_size))
    files.sort(key=lambda item: item[0])
    return files


def _write_zip(handle: BinaryIO, files: list[tuple[str, Path, int]]) -> int:
    content = 0
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for rel, path, size in files:
            info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.file_size = size
            with path.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _COPY_SIZE)
            content += size
    return content


def _plan(zf: zipfile.ZipFile, out_dir: Path, *, label: str, force: bool, max_entries: int,
          max_bytes: int) -> list[_Entry]:
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise UnsafeArchiveError(f"{label} has {len(infos)} entries, more than the limit of {max_entries} "
                                 f"(entry {infos[max_entries].filename!r} is past it)")
    entries: list[_Entry] = []
    seen: dict[tuple[str, ...], bool] = {}
    declared = 0
    for info in infos:
        name = info.filename
        problem = entry_problem(info.orig_filename) or entry_problem(name)
        if problem is not None:
            raise UnsafeArchiveError(f"{label}: entry {info.orig_filename!r} {problem}")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{label}: entry {name!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"{label}: entry {name!r} is not a regular file or folder")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{label}: entry {name!r} uses zip's own encryption, which is not supported")
        parts = tuple(name.removesuffix("/").split("/"))
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        if parts in seen:
            raise UnsafeArchiveError(f"{label}: entry {name!r} appears twice")
        seen[parts] = is_dir
        declared += 0 if is_dir else info.file_size
        if declared > max_bytes:
            raise UnsafeArchiveError(f"{label}: entry {name!r} takes the pack past the limit of {max_bytes} "
                                     "bytes")
        entries.append(_Entry(info, parts, is_dir))
    for entry in entries:
        for depth in range(1, len(entry.parts)):
            if seen.get(entry.parts[:depth]) is False:
                raise UnsafeArchiveError(f"{label}: entry {entry.info.filename!r} needs "
                                         f"{'/'.join(entry.parts[:depth])!r} as a folder, but it is a file")
        _check_target(entry, out_dir, label=label, force=force)
    return entries


def _check_target(entry: _Entry, out_dir: Path, *, label: str, force: bool) -> None:
    """Refuse an entry that would write through a link or over something in an existing target."""
    name = entry.info.filename
    path = out_dir
    for depth, part in enumerate(entry.parts, start=1):
        path = path / part
        if not os.path.lexists(path):
            return
        final = depth == len(entry.parts)
        if path.is_symlink():
            if not final or entry.is_dir:
                raise UnsafeArchiveError(f"{label}: entry {name!r} would write through the symbolic link {path}")
            if not force:
                raise UnsafeArchiveError(f"{label}: entry {name!r} would replace the existing link {path}; "
                                         "pass force to replace it")
        elif not final or entry.is_dir:
            if not path.is_dir():
                raise UnsafeArchiveError(f"{label}: entry {name!r} needs {path} to be a folder, but it is not")
        elif path.is_dir():
            raise UnsafeArchiveError(f"{label}: entry {name!r} would replace the folder {path}")
        elif not force:
            raise UnsafeArchiveError(f"{label}: entry {name!r} would overwrite the existing file {path}; "
                                     "pass force to replace it")


def _extract(zip_path: Path, tree: Path, out_dir: Path, *, label: str, force: bool, max_entries: int,
             max_bytes: int, max_ratio: float) -> tuple[list[_Entry], int]:
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"{label} is not a readable zip: {exc}") from None
    with zf:
        entries = _plan(zf, out_dir, label=label, force=force, max_entries=max_entries, max_bytes=max_bytes)
        ratio_limit = max(_RATIO_FLOOR, max_ratio * zip_path.stat().st_size)
        total = 0
        for entry in entries:
            dest = tree.joinpath(*entry.parts)
            if entry.is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            name = entry.info.filename
            try:
                with zf.open(entry.info) as src, dest.open("xb") as dst:
                    for block in _blocks(src):
                        total += len(block)
                        if total > max_bytes:
                            raise UnsafeArchiveError(f"{label}: entry {name!r} expands the pack past the "
                                                     f"limit of {max_bytes} bytes")
                        if total > ratio_limit:
                            raise UnsafeArchiveError(f"{label}: entry {name!r} expands the pack more than "
                                                     f"{max_ratio:g} times its size (a zip bomb?)")
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
            except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError, RuntimeError) as exc:
                raise ArchiveError(f"{label}: entry {name!r} cannot be read: {exc}") from None
            except OSError as exc:
                raise ArchiveError(f"{label}: entry {name!r} cannot be read or written: {exc}") from None
    return entries, total


def _blocks(src: IO[bytes]) -> Iterator[bytes]:
    while block := src.read(_COPY_SIZE):
        yield block


def _install(tree: Path, out_dir: Path, entries: list[_Entry], *, label: str, force: bool) -> None:
    if not os.path.lexists(out_dir):
        tree.rename(out_dir)
        fsync_dir(out_dir.parent)
        return
    touched: set[Path] = set()
    for entry in entries:
        _check_target(entry, out_dir, label=label, force=force)
        dest = out_dir.joinpath(*entry.parts)
        if entry.is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tree.joinpath(*entry.parts), dest)
        touched.add(dest.parent)
    for folder in sorted(touched):
        fsync_dir(folder)


def _with_default_passphrase(keys: Keys | None) -> Keys:
    if keys is not None and not keys.is_empty():
        return keys
    value = os.environ.get(LEGACY_PASSPHRASE_ENV)
    if not value:
        raise ArchiveError(f"the pack is encrypted: give a key, or set {LEGACY_PASSPHRASE_ENV}")
    return Keys(passphrase=value)


def _legacy_passphrase(keys: Keys | None, label: str) -> Passphrase:
    if keys is not None and keys.passphrase is not None:
        return keys.passphrase
    value = os.environ.get(LEGACY_PASSPHRASE_ENV)
    if not value:
        raise ArchiveError(f"{label} is neither a zip nor an eventlog archive; if it is an encrypted pack of the "
                           f"original tool, give its passphrase (or set {LEGACY_PASSPHRASE_ENV})")
    return Passphrase(value)


def _decrypt_legacy(archive: Path, out: Path, passphrase: Passphrase) -> None:
    """Decrypt the original tool's format (salt | nonce | ciphertext | tag) streaming, tag read first."""
    label = str(archive)
    with archive.open("rb") as src:
        size = os.fstat(src.fileno()).st_size
        if size < _LEGACY_SALT + _LEGACY_NONCE + _LEGACY_TAG:
            raise ArchiveError(f"{label} is too short to be an encrypted pack")
        salt, nonce = src.read(_LEGACY_SALT), src.read(_LEGACY_NONCE)
        src.seek(size - _LEGACY_TAG)
        tag = src.read(_LEGACY_TAG)
        src.seek(_LEGACY_SALT + _LEGACY_NONCE)
        key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt,
                         iterations=LEGACY_ITERATIONS).derive(passphrase.reveal())
        decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
        remaining = size - _LEGACY_SALT - _LEGACY_NONCE - _LEGACY_TAG
        with out.open("xb") as dst:
            while remaining:
                block = src.read(min(_COPY_SIZE, remaining))
                if not block:
                    raise ArchiveError(f"{label} shrank while it was being read")
                remaining -= len(block)
                dst.write(decryptor.update(block))
            try:
                dst.write(decryptor.finalize())
            except InvalidTag:
                raise ArchiveError(f"wrong key or passphrase for {label} (or the file is damaged)") from None
    with out.open("rb") as check:
        if check.read(4) not in _ZIP_MAGICS:
            raise ArchiveError(f"{label} decrypted, but what it holds is not a zip")


def _first_missing(folder: Path) -> Path | None:
    missing = None
    while not folder.exists():
        missing, folder = folder, folder.parent
    return missing


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        for block in _blocks(src):
            digest.update(block)
    return digest.hexdigest()


def pack_dataset(root: Path, manifest: Path, out: Path, *, keys: Keys | None = None,
                 kdf: Argon2Params | None = None, overwrite: bool = False) -> PackInfo:
    """Zip the lake's snapshot pack of the dataset `manifest` names (snapshots/<name>/), sealed when `keys`.

    Raises NotFoundError when the lake has no such folder, ManifestError for a bad manifest, ArchiveError from
    packing (see packs.pack_folder).
    """
    read_config(root)
    dataset = read_manifest(manifest).dataset_name
    folder = root / "snapshots" / dataset
    if not folder.is_dir():
        raise NotFoundError(f"dataset {dataset!r} has no snapshot pack in the lake at {root}: snapshots/{dataset}/ "
                            "does not exist (build its projection first: eventlog reproject --packs)")
    sealed = keys is not None and not keys.is_empty()
    return pack_folder(folder, out, encrypt_with=keys if sealed else None, kdf=kdf, overwrite=overwrite,
                       metadata={"kind": PACK_KIND, "dataset": dataset} if sealed else None)


def manifest_keys(manifest: DatasetManifest, *, base: Path | None = None) -> Keys:
    """The passphrase a manifest's encryption_policy names: its environment variable, its file, or the terminal.

    A relative key_file_path is taken from the working directory, as the original tool did (or from `base`).
    Raises InputError when the variable is unset, the file unreadable, or there is no terminal to ask.
    """
    policy = manifest.encryption_policy
    if policy.key_source == "env":
        return Keys(passphrase=passphrase_from_env(policy.key_env_var))
    if policy.key_source == "file":
        assert policy.key_file_path is not None  # read_manifest checks it
        path = Path(policy.key_file_path)
        return Keys(passphrase=passphrase_from_file(path if base is None or path.is_absolute() else base / path))
    return Keys(passphrase=prompt_passphrase(confirm=True))
