"""exchange-eventlog: captured request/response exchanges in an immutable, content-addressed log.

The public API is what `__all__` lists; everything else may change between releases. Names load on first use, so
`import eventlog` (and any one wing, such as `eventlog.format.canonical`) costs only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventlog.lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> the module that defines it.
_WHERE = {
    "AppendResult": "eventlog.log.writer",
    "ArchiveError": "eventlog.errors",
    "ArchiveReport": "eventlog.cold.archiver",
    "ArchivedSegment": "eventlog.cold.archiver",
    "CanonicalError": "eventlog.errors",
    "ConflictError": "eventlog.errors",
    "DatabaseError": "eventlog.errors",
    "DatasetManifest": "eventlog.capture.manifest",
    "EnvelopeError": "eventlog.errors",
    "Event": "eventlog.format.events",
    "EventLogError": "eventlog.errors",
    "ExchangeRecord": "eventlog.format.envelope",
    "ExportResult": "eventlog.app.datasets",
    "ImportResult": "eventlog.app.datasets",
    "InputError": "eventlog.errors",
    "IntegrityError": "eventlog.errors",
    "Keys": "eventlog.cold.keys",
    "Lake": "eventlog.app.lake",
    "LakeConfig": "eventlog.log.config",
    "LakeError": "eventlog.errors",
    "LockBusyError": "eventlog.errors",
    "ManifestError": "eventlog.errors",
    "NotFoundError": "eventlog.errors",
    "Problem": "eventlog.log.verify",
    "RedactionPolicy": "eventlog.redaction.redactor",
    "Redactor": "eventlog.redaction.redactor",
    "ResponseRef": "eventlog.format.envelope",
    "RestoreReport": "eventlog.cold.archiver",
    "SegmentPolicy": "eventlog.log.config",
    "SeqRange": "eventlog.cold.archiver",
    "SyncResult": "eventlog.sync.result",
    "UnsafeArchiveError": "eventlog.errors",
    "VerifyReport": "eventlog.log.verify",
    "canonical_json": "eventlog.format.canonical",
    "content_sha256": "eventlog.format.envelope",
    "decode_record": "eventlog.format.envelope",
    "parse_json": "eventlog.format.canonical",
    "read_manifest": "eventlog.capture.manifest",
}

__all__ = [
    "AppendResult",
    "ArchiveError",
    "ArchiveReport",
    "ArchivedSegment",
    "CanonicalError",
    "ConflictError",
    "DatabaseError",
    "DatasetManifest",
    "EnvelopeError",
    "Event",
    "EventLogError",
    "ExchangeRecord",
    "ExportResult",
    "ImportResult",
    "InputError",
    "IntegrityError",
    "Keys",
    "Lake",
    "LakeConfig",
    "LakeError",
    "LockBusyError",
    "ManifestError",
    "NotFoundError",
    "Problem",
    "RedactionPolicy",
    "Redactor",
    "ResponseRef",
    "RestoreReport",
    "SegmentPolicy",
    "SeqRange",
    "SyncResult",
    "UnsafeArchiveError",
    "VerifyReport",
    "__version__",
    "canonical_json",
    "content_sha256",
    "decode_record",
    "parse_json",
    "read_manifest",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


if TYPE_CHECKING:
    from eventlog.app.datasets import ExportResult, ImportResult
    from eventlog.app.lake import Lake
    from eventlog.capture.manifest import DatasetManifest, read_manifest
    from eventlog.cold.archiver import ArchivedSegment, ArchiveReport, RestoreReport, SeqRange
    from eventlog.cold.keys import Keys
    from eventlog.errors import (
        ArchiveError,
        CanonicalError,
        ConflictError,
        DatabaseError,
        EnvelopeError,
        EventLogError,
        InputError,
        IntegrityError,
        LakeError,
        LockBusyError,
        ManifestError,
        NotFoundError,
        UnsafeArchiveError,
    )
    from eventlog.format.canonical import canonical_json, parse_json
    from eventlog.format.envelope import ExchangeRecord, ResponseRef, content_sha256, decode_record
    from eventlog.format.events import Event
    from eventlog.log.config import LakeConfig, SegmentPolicy
    from eventlog.log.verify import Problem, VerifyReport
    from eventlog.log.writer import AppendResult
    from eventlog.redaction.redactor import RedactionPolicy, Redactor
    from eventlog.sync.result import SyncResult
