"""Typed errors of the library, one tree, mapped to exit codes by the CLI.

EventLogError                      root; exit code 1
├── InputError                     bad input: names what and where; exit code 3
│   ├── CanonicalError             value that has no canonical JSON form (NaN, lone surrogate, duplicate key, ...)
│   ├── EnvelopeError              an exchange record that does not validate
│   └── ManifestError              a dataset manifest that does not validate
├── LakeError                      the lake folder or its lake.json; exit code 4
├── LockBusyError                  another writer holds the lake's lock; exit code 5
├── IntegrityError                 verify found a difference, or one event id has two digests; exit code 6
├── DatabaseError                  the SQL database refused or could not be reached; exit code 7
├── ArchiveError                   cold-storage archive cannot be read, decrypted or trusted; exit code 8
│   └── UnsafeArchiveError         an archive that would write outside its target, or expand past a limit
├── ConflictError                  sync found conflicts under the `fail` strategy; exit code 9
└── NotFoundError                  the exchange, event or segment asked for is not in the lake; exit code 10
    └── ReplayMissError            no recorded response matches a request; lists the nearest and what differs
"""

from __future__ import annotations

from typing import Any


class EventLogError(Exception):
    """Root of every error this library raises on purpose."""

    exit_code = 1


class InputError(EventLogError):
    """Input that cannot be accepted; the message names what and where (file, line, JSON path)."""

    exit_code = 3

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.path = path
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source if self.line is None else f"{self.source}, line {self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.path is not None:
            where.append(f"at {self.path}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(self, *, source: str | None = None, line: int | None = None) -> InputError:
        """Return a copy of this error that also names the file and line it came from."""
        err = type(self).__new__(type(self))
        InputError.__init__(err, self.reason, source=source if source is not None else self.source,
                            line=line if line is not None else self.line, path=self.path)
        return err


RECORD_PREFIX = "record "


def record_source(number: int) -> str:
    """The `source` of an InputError about the `number`th record (from 1) of one append, where no file is known."""
    return f"{RECORD_PREFIX}{number}"


def record_number(source: str | None) -> int | None:
    """The record number of a `record_source`, or None for any other source."""
    if source is None or not source.startswith(RECORD_PREFIX):
        return None
    digits = source[len(RECORD_PREFIX):]
    return int(digits) if digits.isdigit() else None


class CanonicalError(InputError):
    """A value that has no canonical JSON form."""


class EnvelopeError(InputError):
    """An exchange record that does not validate."""


class ManifestError(InputError):
    """A dataset manifest that does not validate."""


class LakeError(EventLogError):
    """The lake folder is missing, already exists, or its lake.json is unreadable."""

    exit_code = 4


class LockBusyError(EventLogError):
    """Another process holds the lake's single-writer lock."""

    exit_code = 5


class IntegrityError(EventLogError):
    """Stored data disagrees with its hashes, seals or digests."""

    exit_code = 6


class DatabaseError(EventLogError):
    """The SQL database could not be reached, refused the credentials, or failed a statement."""

    exit_code = 7


class ArchiveError(EventLogError):
    """A cold-storage archive that cannot be read, decrypted or trusted."""

    exit_code = 8


class UnsafeArchiveError(ArchiveError):
    """An archive whose entries would escape the target folder, are links, or expand past a limit."""


class ConflictError(EventLogError):
    """Sync found conflicting current content under the `fail` strategy."""

    exit_code = 9

    def __init__(self, message: str, conflicts: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.conflicts = conflicts or []


class NotFoundError(EventLogError):
    """The exchange, event or segment asked for is not in the lake."""

    exit_code = 10


class ReplayMissError(NotFoundError):
    """No recorded response matches a request.

    `request` holds the request's method and URL as normalised; `nearest` the closest recorded requests, closest
    first, each with its method, url, dataset, seq and `differences` (kind, name, recorded, requested).
    """

    def __init__(self, message: str, *, request: dict[str, Any], nearest: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.request = request
        self.nearest = nearest
