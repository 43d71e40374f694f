"""The exchange envelope: one captured request/response pair and what is known about it.

`ExchangeRecord` is the schema of record. Input in the original tool's envelope JSON decodes unchanged; fields it
did not have take their defaults. Decode errors name the JSON path (`$.observed_at_utc`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from eventlog.errors import EnvelopeError
from eventlog.format.canonical import canonical_json

ExchangeType = Literal["http", "mediawiki", "openalex", "llm", "file", "generic"]
EXCHANGE_TYPES: tuple[str, ...] = ("http", "mediawiki", "openalex", "llm", "file", "generic")
SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 16 * 1024 * 1024

# uuid5 namespace for exchange ids derived from content and observed time; fixed forever, since ids must
# come out the same on every machine and every release.
EXCHANGE_ID_NAMESPACE = uuid.UUID("6f1d3b0e-8c1a-5c53-9a53-2f0e6b7c4d21")

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# Identity text every SQL server stores: names within the 200-character columns of ExchangeEvent and
# RawExchangeRecord, no NUL (PostgreSQL refuses it in text). Checked at append (`identity_problem`), not when a
# stored record is read back, so that what older lakes hold stays readable.
MAX_NAME_CHARS = 200
# The largest SQL row one exchange may need, counted as MySQL's text protocol sends it (each backslash and quote
# escaped): MariaDB's default max_allowed_packet of 16 MiB, the smallest default of the supported servers, less
# room for the statement around the row. Checked at append (`sql_row_problem`), so that every record the log takes
# can be mirrored into every supported server as it is installed.
MAX_SQL_ROW_BYTES = 16 * 1024 * 1024 - 64 * 1024
Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class ResponseRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Pointer to a payload kept outside the envelope (a large body, a file)."""

    uri: str
    sha256: Sha256Hex | None = None
    size_bytes: int | None = None
    media_type: str | None = None


class ExchangeRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One observed exchange: what was asked, what came back, when, and by whom.

    `observed_at_utc` must carry a timezone; it is normalised to UTC. `exchange_id` and `content_sha256` may be
    absent on input: `prepare()` fills them deterministically.
    """

    source_system: NonEmpty
    entity_type: NonEmpty
    observed_at_utc: AwareDatetime
    exchange_type: ExchangeType = "generic"
    exchange_id: str | None = None
    natural_key: str | None = None
    request: Any = None
    response: Any = None
    response_ref: ResponseRef | None = None
    provenance: dict[str, Any] = msgspec.field(default_factory=dict)
    content_sha256: str | None = None
    schema_version: int = SCHEMA_VERSION
    tags: tuple[str, ...] = ()
    redactions_applied: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.exchange_id is not None:
            try:
                uuid.UUID(self.exchange_id)
            except ValueError:
                raise ValueError("exchange_id is not a UUID") from None  # the value may be a misplaced secret


def sql_row_problem(parts: tuple[bytes, ...]) -> str | None:
    """Why the encoded pieces of one log line (envelope and payload) would not fit one SQL row, or None.

    Each row the mirror and the projection write for an exchange (its event, its content, its RawExchangeRecord)
    holds at most what its log line holds, and the text protocol adds one byte per backslash and quote; a row
    within MAX_SQL_ROW_BYTES fits every supported server's default packet.
    """
    size = sum(map(len, parts))
    if 2 * size <= MAX_SQL_ROW_BYTES:  # even with every byte escaped: most records are not counted
        return None
    sent = size + sum(part.count(b"\\") + part.count(b'"') + part.count(b"'") for part in parts)
    if sent <= MAX_SQL_ROW_BYTES:
        return None
    return (f"the exchange takes {sent:,} bytes in one SQL row, over the {MAX_SQL_ROW_BYTES:,} bytes every supported "
            "server accepts (MariaDB's default max_allowed_packet is 16 MiB); store its body by reference "
            "(response_ref)")


def identity_problem(record: ExchangeRecord) -> tuple[str, str] | None:
    """(JSON path, reason) of identity text no SQL server stores (see MAX_NAME_CHARS), or None."""
    for name in ("source_system", "entity_type"):
        if len(getattr(record, name)) > MAX_NAME_CHARS:
            return f"$.{name}", f"longer than the {MAX_NAME_CHARS} characters the SQL columns hold"
    for name in ("source_system", "entity_type", "natural_key"):
        if "\x00" in (getattr(record, name) or ""):
            return f"$.{name}", "holds a NUL character, which SQL servers do not store in text"
    return None


def decode_record(value: Any, *, source: str | None = None, line: int | None = None) -> ExchangeRecord:
    """Validate a decoded JSON value as an `ExchangeRecord`.

    Raises EnvelopeError naming source, line and the JSON path of the first problem and the rule it breaks, never
    the value (a secret in the wrong field must not reach a log through an error message).
    """
    if isinstance(value, ExchangeRecord):
        return value
    if not isinstance(value, dict):
        raise EnvelopeError(f"expected a JSON object for an exchange record, got a JSON {json_kind(value)}",
                            source=source, line=line, path="$")
    try:
        return msgspec.convert(value, ExchangeRecord, strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).rpartition(" - at `")
        if not message:  # raised by __post_init__, which names the field first
            message = str(exc)
            path = "$." + message.split(" ", 1)[0] if message.startswith("exchange_id ") else "$"
        if message.startswith("Invalid enum value"):  # msgspec quotes the value, which may be a secret
            message = f"must be one of {', '.join(EXCHANGE_TYPES)}"
        if "with a timezone component" in message:
            message = "the timestamp is naive; write it with a UTC offset such as Z or +02:00"
        raise EnvelopeError(_lower_first(message), source=source, line=line, path=path.rstrip("`")) from None


def content_sha256(record: ExchangeRecord | dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of exactly the content fields the design names.

    The fields are exchange_type, source_system, entity_type, natural_key, request and response: the same content
    observed twice has the same hash. Redaction must already have happened.
    """
    if isinstance(record, dict):
        record = decode_record(record)
    return hashlib.sha256(content_bytes(record, canonical_json(record.request),
                                        canonical_json(record.response))).hexdigest()


class EncodedNames(NamedTuple):
    """Canonical JSON of a record's identifying strings, encoded once for the content hash and the envelope."""

    entity_type: bytes
    natural_key: bytes
    source_system: bytes


def encode_names(record: ExchangeRecord) -> EncodedNames:
    """Encode entity_type, natural_key and source_system (CanonicalError for a lone surrogate in them)."""
    try:  # a string or None: msgspec's encoding is the canonical one, whichever encoder writes it
        return EncodedNames(_ENCODE(record.entity_type), _ENCODE(record.natural_key), _ENCODE(record.source_system))
    except UnicodeEncodeError:  # canonical_json names the field's problem
        return EncodedNames(canonical_json(record.entity_type), canonical_json(record.natural_key),
                            canonical_json(record.source_system))


_ENCODE: Final = msgspec.json.encode


def content_bytes(record: ExchangeRecord, request_json: bytes, response_json: bytes, *,
                  names: EncodedNames | None = None) -> bytes:
    """Canonical JSON of the content object, reusing already-encoded request and response.

    Keys are written in their RFC 8785 order; the result equals canonical_json() of the same object.
    """
    names = names or encode_names(record)
    return b"".join((
        b'{"entity_type":', names.entity_type,
        b',"exchange_type":"', record.exchange_type.encode(),
        b'","natural_key":', names.natural_key,
        b',"request":', request_json,
        b',"response":', response_json,
        b',"source_system":', names.source_system,
        b"}",
    ))


def format_utc(moment: datetime) -> str:
    """Fixed-width UTC timestamp with microseconds, so that text order is time order."""
    if moment.tzinfo is not UTC:  # decoded timestamps written with Z or +00:00 already are
        moment = _to_utc(moment)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def parse_utc(text: str) -> datetime:
    """Parse a timestamp written by `format_utc` (or any ISO 8601 time with an offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return _to_utc(moment)


def _to_utc(moment: datetime) -> datetime:
    """`moment` in UTC. Raises EnvelopeError for a time that UTC cannot hold (past 9999-12-31 or before year 1)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise EnvelopeError(f"time {moment.isoformat()} is outside years 1-9999 once converted to UTC") from None


def derive_exchange_id(content_hash: str, observed_at_utc: str | datetime) -> str:
    """Deterministic exchange id: uuid5 over the content hash and the observed time (as format_utc writes it)."""
    if isinstance(observed_at_utc, datetime):
        observed_at_utc = format_utc(observed_at_utc)
    return uuid5_text(EXCHANGE_ID_NAMESPACE, f"{content_hash}|{observed_at_utc}")


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """str(uuid.uuid5(namespace, name)), computed without building UUID objects (it runs once per record)."""
    text = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).hexdigest()
    # RFC 4122: the version nibble becomes 5, the variant's two high bits become 10.
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def envelope_dict(record: ExchangeRecord) -> dict[str, Any]:
    """The envelope as a plain JSON object, as it is written into the log."""
    return {
        "content_sha256": record.content_sha256,
        "entity_type": record.entity_type,
        "exchange_id": record.exchange_id,
        "exchange_type": record.exchange_type,
        "natural_key": record.natural_key,
        "observed_at_utc": format_utc(record.observed_at_utc),
        "provenance": record.provenance,
        "redactions_applied": list(record.redactions_applied),
        "request": record.request,
        "response": record.response,
        "response_ref": msgspec.to_builtins(record.response_ref),
        "schema_version": record.schema_version,
        "source_system": record.source_system,
        "tags": list(record.tags),
    }


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's kind (null, boolean, number, string, array, object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
