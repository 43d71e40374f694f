"""exchange-eventlog: captured request/response exchanges in an immutable, content-addressed log.

The public API is what `__all__` lists; everything else may change between releases.
"""

from eventlog.archive import ArchivedSegment, ArchiveReport, RestoreReport, SeqRange
from eventlog.canonical import canonical_json, parse_json
from eventlog.config import LakeConfig, SegmentPolicy
from eventlog.envelope import ExchangeRecord, ResponseRef, content_sha256, decode_record
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
from eventlog.events import Event
from eventlog.keys import Keys
from eventlog.lake import Lake
from eventlog.log import AppendResult
from eventlog.redaction import RedactionPolicy, Redactor
from eventlog.verify import Problem, VerifyReport

__version__ = "0.1.0"

__all__ = [
    "AppendResult",
    "ArchiveError",
    "ArchiveReport",
    "ArchivedSegment",
    "CanonicalError",
    "ConflictError",
    "DatabaseError",
    "EnvelopeError",
    "Event",
    "EventLogError",
    "ExchangeRecord",
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
    "UnsafeArchiveError",
    "VerifyReport",
    "__version__",
    "canonical_json",
    "content_sha256",
    "decode_record",
    "parse_json",
]
