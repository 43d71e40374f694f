"""Durable file operations, the one place the lake's files are made durable.

Immutable files are written temp -> fsync -> rename -> fsync(folder), so a reader never sees a partial file and a
crash leaves either the old state or the new one. Truncation is fsynced before it is relied on.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

__all__ = ["fsync_dir", "named", "truncate_to", "write_atomic", "write_atomically", "write_private"]


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable (a no-op where folders cannot be opened)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` in one step: temp -> fsync -> rename -> fsync(folder). Replaces an existing file.

    The temp file is `.<name>.tmp` beside `path`, a fixed name that the writer's own clean-up recognises.
    """
    temp = path.with_name(f".{path.name}.tmp")
    with named(path):
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            temp.unlink(missing_ok=True)
            raise
        os.replace(temp, path)
        fsync_dir(path.parent)


@contextmanager
def named(path: Path) -> Iterator[None]:
    """Give an OSError raised inside the block that names no file (a write, a flush, an fsync) `path` as its file,
    so that the sentence reporting it (a full disk, say) says where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


@contextmanager
def write_atomically(path: Path, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a temp file beside `path`; on clean exit fsync it, rename it to `path` and fsync the folder.

    On any exception the temp file is removed and `path` is untouched; an OSError that names no file (a write
    on a full disk) is raised naming `path`. Raises FileExistsError for an existing
    `path` unless `overwrite` (checked before and again just before the rename).
    """
    if not overwrite and path.exists():
        raise FileExistsError(f"refusing to overwrite {path}: it exists")
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    with named(path):
        handle = temp.open("xb")
        try:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            if not overwrite and path.exists():
                raise FileExistsError(f"refusing to overwrite {path}: it appeared while writing")
            os.replace(temp, path)
        except BaseException:
            # Closing flushes what is still buffered, which fails again on a full disk; the temp file goes anyway.
            with suppress(OSError):
                handle.close()
            temp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only (mode 0600) and write `data` durably.

    Raises FileExistsError when `path` exists (it is never overwritten) and OSError when it cannot be created.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def truncate_to(path: Path, length: int) -> None:
    """Cut a file to `length` bytes, durably."""
    with open(path, "r+b") as handle:
        handle.truncate(length)
        handle.flush()
        os.fsync(handle.fileno())
