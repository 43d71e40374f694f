"""log/head.json: the seq and line hash of the last acknowledged event, so that lost acknowledged data is noticed.

An append call writes the head after its batch is durable and before it returns, in place, as one fixed-size block
of 128 bytes (canonical JSON with a checksum, padded with spaces): on disk the head is never ahead of what a
crash keeps, so a log that ends before the head has lost acknowledged events, and a torn last line at or before
the head is damage, never a torn tail to cut. The head is not fsynced per call (that would cost a second flush):
after a power loss it may be behind, which only narrows what is noticed to the last call, never raises a false
alarm. A missing head (a lake from before it existed) is written at the log's tail on the next open.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import msgspec

from eventlog.errors import IntegrityError
from eventlog.format.canonical import canonical_json

__all__ = ["HEAD_NAME", "HEAD_SIZE", "Head", "HeadFile", "encode_head", "read_head"]

HEAD_NAME = "head.json"
HEAD_SIZE = 128


class Head(NamedTuple):
    """The last acknowledged event: its seq and the hash of its line (0 and GENESIS for an empty log)."""

    seq: int
    line_hash: str


class _Stored(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    check: str
    line_hash: str
    seq: int


def _check(seq: int, line_hash: str) -> str:
    return hashlib.sha256(f"{seq}:{line_hash}".encode()).hexdigest()[:16]


def encode_head(head: Head) -> bytes:
    """The head's 128 bytes: canonical JSON, spaces, a newline."""
    text = canonical_json({"check": _check(*head), "line_hash": head.line_hash, "seq": head.seq})
    return text.ljust(HEAD_SIZE - 1) + b"\n"


def read_head(path: Path) -> Head | None:
    """The head stored at `path`; None when the file does not exist.

    Raises IntegrityError naming the file when it is damaged (not the 128 bytes this module writes, or a checksum
    that does not match), and OSError for a file that cannot be read at all.
    """
    label = f"log/{path.name}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise IntegrityError(f"{label} is a folder where the log's head record belongs") from None
    try:
        stored = msgspec.json.decode(raw, type=_Stored)
    except msgspec.DecodeError as exc:
        raise IntegrityError(f"{label} is damaged ({exc}); it records the last acknowledged event, so the log "
                             "cannot tell whether acknowledged events are missing") from None
    if len(raw) != HEAD_SIZE or stored.check != _check(stored.seq, stored.line_hash):
        raise IntegrityError(f"{label} is damaged (its checksum does not match); it records the last acknowledged "
                             "event, so the log cannot tell whether acknowledged events are missing")
    return Head(stored.seq, stored.line_hash)


class HeadFile:
    """Writes the head in place through one open descriptor (opened on first use, closed by `close`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def write(self, head: Head, *, durable: bool = False) -> None:
        """Store `head`; with `durable`, fsync it (on open and recovery, not per append)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        os.pwrite(self._fd, encode_head(head), 0)
        if durable:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
