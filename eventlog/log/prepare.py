"""Record preparation: one ExchangeRecord made ready for the log, redacted before anything is hashed or written.

`prepare` encodes the payload once, redacts it and every other stored field (the redactor's pre-filter searches those
bytes and one encoding of the other fields), hashes the content,
derives the exchange id where none was given, and pre-encodes the envelope around the payload, so that the writer
only splices lines. Where eventlog._records is built the same work runs in C, from the same field tables.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import NamedTuple

import msgspec

from eventlog import extensions
from eventlog.errors import EnvelopeError, record_source
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import (
    EXCHANGE_ID_NAMESPACE,
    MAX_RECORD_BYTES,
    ExchangeRecord,
    content_bytes,
    derive_exchange_id,
    encode_names,
    format_utc,
    sql_row_problem,
)
from eventlog.format.events import envelope_extras, envelope_parts
from eventlog.format.identity import exchange_key
from eventlog.redaction.redactor import Redactor, encode_fields

__all__ = ["Prepared", "hash_report", "prepare"]


class Prepared(NamedTuple):
    """A record ready to be written: redacted, hashed, identified, its envelope pre-encoded."""

    exchange_id: str
    content_sha256: str
    observed_at_utc: str
    key: str | None
    head: bytes
    tail: bytes
    request_json: bytes
    response_json: bytes
    hash_mismatch: bool
    redacted: bool


def prepare(record: ExchangeRecord, redactor: Redactor, *, max_bytes: int = MAX_RECORD_BYTES,
            number: int | None = None) -> Prepared:
    """Redact, hash and identify one record. Redaction comes first: a secret is never hashed or written.

    Raises EnvelopeError when the payload is larger than `max_bytes` (such payloads go by reference).
    """
    # Encoding first lets the redactor's pre-filter search these bytes instead of encoding again; nothing is
    # hashed or written before redaction.
    request_json = canonical_json(record.request)
    response_json = canonical_json(record.response)
    fields_json = encode_fields(record)
    clear = redactor.encoded_clear
    paths: tuple[str, ...] = ()
    unredacted = (record, request_json, response_json)
    if clear is None or fields_json is None or not clear(request_json, response_json, fields_json):
        request, response, paths = redactor.redact(record.request, record.response,
                                                   encoded=(request_json, response_json), searched=clear is not None)
        if request is not record.request:
            request_json = canonical_json(request)
        if response is not record.response:
            response_json = canonical_json(response)
        record, field_paths = redactor.redact_envelope_fields(record, encoded=fields_json, searched=clear is not None)
        paths = tuple(sorted(paths + field_paths)) if field_paths else paths
    if len(request_json) + len(response_json) > max_bytes:
        raise EnvelopeError(
            f"the payload is {len(request_json) + len(response_json):,} bytes, over the {max_bytes:,}-byte limit "
            f"for one inline exchange; store it by reference (response_ref)",
            source=record_source(number) if number is not None else None, path="$.response")
    redactions = sorted(set(record.redactions_applied).union(paths)) if paths or record.redactions_applied else []
    records = extensions.records
    if records is not None:
        try:
            prepared: Prepared = records.prepare_record(record, request_json, response_json, redactions, bool(paths))
            _check_row(prepared, number)
            return _stated_hash_of_unredacted(prepared, unredacted) if prepared.hash_mismatch and paths \
                else prepared
        except UnicodeEncodeError:  # a lone surrogate in a name: the Python path names it
            pass
    observed = format_utc(record.observed_at_utc)
    given = record.exchange_id
    exchange_id = _normalize_id(given) if given else None
    extras = envelope_extras(record, redactions)
    names = encode_names(record)
    content_hash = hashlib.sha256(content_bytes(record, request_json, response_json, names=names)).hexdigest()
    exchange_id = exchange_id or derive_exchange_id(content_hash, observed)
    head, tail = envelope_parts(record, names, extras, content_sha256=content_hash, exchange_id=exchange_id,
                                observed_at_utc=observed)
    prepared = Prepared(exchange_id, content_hash, observed,
                        exchange_key(record.source_system, record.entity_type, record.natural_key),
                        head, tail, request_json, response_json,
                        record.content_sha256 is not None and record.content_sha256 != content_hash, bool(paths))
    _check_row(prepared, number)
    return _stated_hash_of_unredacted(prepared, unredacted) if prepared.hash_mismatch and paths else prepared


def _check_row(prepared: Prepared, number: int | None) -> None:
    """Raise EnvelopeError when the record would not fit one SQL row of every supported server."""
    problem = sql_row_problem((prepared.head, prepared.request_json, prepared.response_json, prepared.tail))
    if problem is not None:
        raise EnvelopeError(problem, source=record_source(number) if number is not None else None, path="$")


def _stated_hash_of_unredacted(prepared: Prepared, unredacted: tuple[ExchangeRecord, bytes, bytes]) -> Prepared:
    """No mismatch when the stated hash is that of the content before redaction: the record agrees with itself,
    and only redaction (which must run before hashing) changed what the log holds."""
    original, request_json, response_json = unredacted
    before = hashlib.sha256(content_bytes(original, request_json, response_json)).hexdigest()
    return prepared._replace(hash_mismatch=False) if before == original.content_sha256 else prepared


def _normalize_id(given: str) -> str:
    """A given exchange id in the UUID's canonical form (lower case, hyphens)."""
    return str(uuid.UUID(given))


if extensions.records is not None:
    extensions.records.set_helpers(canonical_json, msgspec.to_builtins, _normalize_id, format_utc,
                               EXCHANGE_ID_NAMESPACE.bytes, Prepared)


def hash_report(record: ExchangeRecord, redactor: Redactor) -> dict[str, object]:
    """What the log would record of one record's content: its content hash after `redactor` (the lake's), the hash
    of the unredacted content, the JSON paths redacted, and the hash the record itself states (or None)."""
    prepared = prepare(record, redactor)
    stated = msgspec.json.decode(b"{" + prepared.head + b"," + prepared.tail + b"}")["redactions_applied"]
    return {"content_sha256": prepared.content_sha256,
            "unredacted_sha256": hashlib.sha256(content_bytes(record, canonical_json(record.request),
                                                              canonical_json(record.response))).hexdigest(),
            "redactions_applied": stated, "stated_sha256": record.content_sha256}
