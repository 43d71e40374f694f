"""Rows of ExchangeEvent and ExchangeContent: encoded from an Event, straight from a log line, and decoded back.

An event becomes one ExchangeEvent row (a tuple in `EVENT_COLUMNS` order) and, when it is observed, one
ExchangeContent row (`CONTENT_COLUMNS` order) holding the canonical JSON of its request and response. `encode_line`
takes the rows from a log line's bytes without turning its payload into Python objects; it gives the same rows as
`encode_event` of the decoded line, and hands back the decoded Event for every line outside its narrow path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import msgspec

from eventlog.errors import InputError, IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.events import (
    ABSENT,
    ENVELOPE_HEAD_KEYS,
    ENVELOPE_TAIL_KEYS,
    PAYLOAD_KEYS,
    Event,
    EventType,
    RawLine,
    decode_line,
    decode_raw_line,
)
from eventlog.format.identity import record_key_of_encoded

__all__ = ["CONTENT_COLUMNS", "EVENT_COLUMNS", "EncodedEvent", "decode_event", "encode_event", "encode_line"]

EVENT_TYPES = ("observed", "revisited", "resolved")
UTC_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
HEX64 = re.compile(r"[0-9a-f]{64}")
ASCII_ID = re.compile(r"[\x21-\x7e]{1,64}")

# Envelope keys with a scalar column of their own, and the test a value must pass to live in it (None always
# does). A value that fails, or a key not listed, goes into the `body` JSON column, so every body reads back
# exactly as it was.
_SCALAR_KEYS: dict[str, Callable[[Any], bool]] = {
    "exchange_id": lambda v: isinstance(v, str) and ASCII_ID.fullmatch(v) is not None,
    "exchange_type": lambda v: isinstance(v, str) and len(v) <= 32 and v.isascii(),
    "source_system": lambda v: isinstance(v, str) and len(v) <= 200,
    "entity_type": lambda v: isinstance(v, str) and len(v) <= 200,
    "natural_key": lambda v: isinstance(v, str),
    "observed_at_utc": lambda v: isinstance(v, str) and UTC_TEXT.fullmatch(v) is not None,
    "content_sha256": lambda v: isinstance(v, str) and HEX64.fullmatch(v) is not None,
    "schema_version": lambda v: type(v) is int and -(2**31) <= v < 2**31,
}
# The envelope without its payload, from the one definition in eventlog.format.events; what has no scalar column
# is a JSON column.
ENVELOPE_KEYS = (*ENVELOPE_HEAD_KEYS, *ENVELOPE_TAIL_KEYS)
_JSON_KEYS = tuple(key for key in ENVELOPE_KEYS if key not in _SCALAR_KEYS)
_SCALAR_ITEMS = tuple(_SCALAR_KEYS.items())
_ENVELOPE_KEY_SET = frozenset(ENVELOPE_KEYS)
_OBSERVED_KEYS = _ENVELOPE_KEY_SET | frozenset(PAYLOAD_KEYS)
_REVISITED_SIZE, _OBSERVED_SIZE = len(_ENVELOPE_KEY_SET), len(_OBSERVED_KEYS)
_NO_ENVELOPE = dict.fromkeys(ENVELOPE_KEYS)

# Table order (event_seq, the identity, is the database's to assign); a test holds them equal to the metadata.
EVENT_COLUMNS = ("event_id", "type", "exchange_id", "exchange_type", "source_system", "entity_type", "natural_key",
                 "record_key", "observed_at_utc", "recorded_at_utc", "origin", "digest", "content_sha256",
                 "schema_version", "response_ref", "provenance", "tags", "redactions_applied", "body", "log_seq",
                 "log_prev")
CONTENT_COLUMNS = ("content_sha256", "request", "response", "content_bytes", "first_event_id")
_ID, _DIGEST, _SEQ = EVENT_COLUMNS.index("event_id"), EVENT_COLUMNS.index("digest"), EVENT_COLUMNS.index("log_seq")

_decode_json = msgspec.json.Decoder().decode
_SORTED = msgspec.json.Encoder(order="sorted")


class EncodedEvent(NamedTuple):
    """The ExchangeEvent row of an event and, for an observed one, its ExchangeContent row."""

    row: tuple[Any, ...]
    content: tuple[Any, ...] | None

    @property
    def event_id(self) -> str:
        return cast(str, self.row[_ID])

    @property
    def digest(self) -> str:
        return cast(str, self.row[_DIGEST])

    @property
    def seq(self) -> int:
        return cast(int, self.row[_SEQ])


def encode_event(event: Event, *, strings: dict[str, bytes] | None = None) -> EncodedEvent:
    """The rows of an event.

    `strings` caches the canonical JSON of short strings that repeat from event to event (source system, entity
    type, exchange type). Raises InputError for what no row can hold, IntegrityError for a payload that does
    not match its hash.
    """
    _check_event(event)
    body = event.body
    row: dict[str, Any] = {
        "event_id": event.event_id, "type": event.type, "recorded_at_utc": event.recorded_at_utc,
        "origin": event.origin, "digest": event.digest, "log_seq": event.seq, "log_prev": event.prev,
        "record_key": None, "body": None,
    }
    if event.type == "resolved":
        row.update(_NO_ENVELOPE)
        row["body"] = _encode_json(body)
        return EncodedEvent(_ordered(row), None)
    rest: dict[str, Any] = {}
    try:
        for key, fits in _SCALAR_ITEMS:
            value = body[key]
            if value is None or fits(value):
                row[key] = value
            else:
                row[key] = None
                rest[key] = value
        for key in _JSON_KEYS:
            value = body[key]
            row[key] = None if value is None else _encode_json(value)
    except KeyError:
        missing = [key for key in ENVELOPE_KEYS if key not in body]
        raise InputError(f"{event.type} event {event.event_id} has no {', '.join(missing)} in its body") from None
    observed = event.type == "observed"
    if observed and ("request" not in body or "response" not in body):
        missing = [key for key in PAYLOAD_KEYS if key not in body]
        raise InputError(f"observed event {event.event_id} has no {', '.join(missing)} in its body")
    if len(body) > (_OBSERVED_SIZE if observed else _REVISITED_SIZE):
        for key in body.keys() - (_OBSERVED_KEYS if observed else _ENVELOPE_KEY_SET):
            rest[key] = body[key]
    if rest:
        row["body"] = _encode_json(rest)
    cache = {} if strings is None else strings
    source, entity = _cached_json(body["source_system"], cache), _cached_json(body["entity_type"], cache)
    natural_key = body["natural_key"]
    natural = canonical_json(natural_key)
    if isinstance(body["source_system"], str) and isinstance(body["entity_type"], str) and row["content_sha256"]:
        row["record_key"] = _record_key(source, entity, natural_key, natural, row["content_sha256"])
    if event.type != "observed":
        return EncodedEvent(_ordered(row), None)
    exchange_type = _cached_json(body["exchange_type"], cache)
    # msgspec's sorted output is the canonical form for most payloads, at a fraction of the cost. A match of the
    # content hash proves the bytes are the canonical ones; anything else takes the exact canonical encoder.
    try:
        request, response = _SORTED.encode(body["request"]), _SORTED.encode(body["response"])
    except (TypeError, msgspec.EncodeError):
        request = response = b""
    content = _content_row(event.event_id, body["content_sha256"], source, entity, exchange_type, natural, request,
                           response)
    if content is None:
        request, response = canonical_json(body["request"]), canonical_json(body["response"])
        content = _content_row(event.event_id, body["content_sha256"], source, entity, exchange_type, natural,
                               request, response)
        if content is None:
            digest = hashlib.sha256(_content_json(source, entity, exchange_type, natural, request, response))
            raise IntegrityError(f"observed event {event.event_id}: $.body.content_sha256 is not the hash of its "
                                 f"content, which is {digest.hexdigest()}")
    return EncodedEvent(_ordered(row), content)


# --- straight from a log line -----------------------------------------------------------------------------------

def encode_line(raw: bytes, *, strings: dict[str, bytes] | None = None) -> EncodedEvent | Event:
    """The rows of a log line (without its newline), or its decoded Event where only `encode_event` will do.

    The fast path takes the JSON fields and the payload as the line's own bytes: the log writes canonical JSON,
    so those slices are the canonical text `encode_event` would produce, and the content hash proves it for the
    payload. A resolution, a body with keys or values the scalar columns do not take as they are, or an event
    that fails a check comes back decoded, for `encode_event` to store or to refuse with its error. Raises
    msgspec.DecodeError for a line that is not JSON.
    """
    line = decode_raw_line(raw)
    if line is None:
        return decode_line(raw)
    encoded = _encode_fast(line, {} if strings is None else strings)
    return encoded if encoded is not None else decode_line(raw)


def _encode_fast(line: RawLine, cache: dict[str, bytes]) -> EncodedEvent | None:
    body = line.body
    observed = line.type == "observed"
    if not (observed or line.type == "revisited") or (body.request is ABSENT) is observed or (
            (body.response is ABSENT) is observed) or not _fits_columns(line):
        return None
    source, entity = _cached_json(body.source_system, cache), _cached_json(body.entity_type, cache)
    natural = canonical_json(body.natural_key)
    row = (line.event_id, line.type, body.exchange_id, body.exchange_type, body.source_system, body.entity_type,
           body.natural_key, _record_key(source, entity, body.natural_key, natural, body.content_sha256),
           body.observed_at_utc, line.recorded_at_utc, line.origin, line.digest, body.content_sha256,
           body.schema_version, _raw_text(body.response_ref), _raw_text(body.provenance), _raw_text(body.tags),
           _raw_text(body.redactions_applied), None, line.seq, line.prev)
    if not observed:
        return EncodedEvent(row, None)
    content = _content_row(line.event_id, body.content_sha256, source, entity,
                           _cached_json(body.exchange_type, cache), natural, body.request, body.response)
    return None if content is None else EncodedEvent(row, content)


# The fast path's column tests as one match over its ASCII fields joined by U+0080, which none of them may hold.
_FITS = re.compile("\x80".join((ASCII_ID.pattern, HEX64.pattern, UTC_TEXT.pattern, f"(?:{ASCII_ID.pattern})?",
                                 ASCII_ID.pattern, r"[\x00-\x7f]{0,32}", UTC_TEXT.pattern, HEX64.pattern)))


def _fits_columns(line: RawLine) -> bool:
    """Whether every scalar goes to its column as it is and the event passes `_check_event`'s tests."""
    body = line.body
    return (_FITS.fullmatch(f"{line.event_id}\x80{line.digest}\x80{line.recorded_at_utc}\x80{line.prev}\x80"
                            f"{body.exchange_id}\x80{body.exchange_type}\x80{body.observed_at_utc}\x80"
                            f"{body.content_sha256}") is not None
            and 0 < len(line.origin) <= 100 and len(body.source_system) <= 200 and len(body.entity_type) <= 200
            and -(2**31) <= body.schema_version < 2**31)


def _raw_text(raw: msgspec.Raw) -> str | None:
    text = str(raw, "utf-8")
    return None if text == "null" else text


# --- shared parts ---------------------------------------------------------------------------------------------

def _record_key(source: bytes, entity: bytes, natural_key: object, natural: bytes, content_sha256: str) -> str | None:
    """record_key from the encoded parts; None when the natural key is neither text nor null."""
    if isinstance(natural_key, str):
        return record_key_of_encoded([source, entity, natural])
    if natural_key is None:
        return record_key_of_encoded([source, entity, natural, canonical_json(content_sha256)])
    return None


def _content_json(source: bytes, entity: bytes, exchange_type: bytes, natural: bytes, request: bytes | msgspec.Raw,
                  response: bytes | msgspec.Raw) -> bytes:
    """The canonical JSON the content hash covers, from its canonically encoded parts."""
    return b"".join((b'{"entity_type":', entity, b',"exchange_type":', exchange_type, b',"natural_key":', natural,
                     b',"request":', request, b',"response":', response, b',"source_system":', source, b"}"))


def _content_row(event_id: str, content_sha256: object, source: bytes, entity: bytes, exchange_type: bytes,
                 natural: bytes, request: bytes | msgspec.Raw, response: bytes | msgspec.Raw) -> tuple[Any, ...] | None:
    """The ExchangeContent row, or None when the parts do not hash to `content_sha256`."""
    content = _content_json(source, entity, exchange_type, natural, request, response)
    if hashlib.sha256(content).hexdigest() != content_sha256:
        return None
    return (content_sha256, str(request, "utf-8"), str(response, "utf-8"), len(content), event_id)


def _ordered(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in EVENT_COLUMNS)


def decode_event(row: Mapping[Any, Any]) -> Event:
    """Rebuild the Event of an ExchangeEvent row (joined to request/response for an observed one)."""
    event_type = cast(EventType, row["type"])
    body: dict[str, Any]
    if event_type == "resolved":
        body = _decode_json(row["body"])
    else:
        body = {key: row[key] for key in _SCALAR_KEYS}
        for key in _JSON_KEYS:
            body[key] = None if row[key] is None else _decode_json(row[key])
        if event_type == "observed":
            if row["request"] is None:
                raise IntegrityError(f"observed event {row['event_id']} refers to content "
                                     f"{row['content_sha256']} that ExchangeContent does not hold")
            body["request"] = _decode_json(row["request"])
            body["response"] = _decode_json(row["response"])
        if row["body"] is not None:
            body.update(_decode_json(row["body"]))
    return Event(type=event_type, event_id=row["event_id"], seq=row["log_seq"] or 0,
                 recorded_at_utc=row["recorded_at_utc"], origin=row["origin"], prev=row["log_prev"] or "",
                 digest=row["digest"], body=body)


def _check_event(event: Event) -> None:
    """Refuse an event whose fields break the table's rules; messages name the field and the rule, never the value,
    which may be a secret put in the wrong field."""
    which = (f"event {event.event_id}" if isinstance(event.event_id, str) and ASCII_ID.fullmatch(event.event_id)
             else "an event")
    if event.type not in EVENT_TYPES:
        raise InputError(f"{which} has a type that is not one of {', '.join(EVENT_TYPES)}", path="$.type")
    if not isinstance(event.event_id, str) or ASCII_ID.fullmatch(event.event_id) is None:
        raise InputError("an event id is not 1 to 64 printable ASCII characters", path="$.event_id")
    if not isinstance(event.digest, str) or HEX64.fullmatch(event.digest) is None:
        raise InputError(f"{which} has a digest that is not 64 lowercase hex digits", path="$.digest")
    if not isinstance(event.recorded_at_utc, str) or UTC_TEXT.fullmatch(event.recorded_at_utc) is None:
        raise InputError(f"{which} has a recorded_at_utc that is not YYYY-MM-DDTHH:MM:SS.ffffffZ",
                         path="$.recorded_at_utc")
    if not isinstance(event.origin, str) or not 0 < len(event.origin) <= 100:
        raise InputError(f"{which} has an origin that is not 1 to 100 characters", path="$.origin")
    if not isinstance(event.prev, str) or (event.prev and ASCII_ID.fullmatch(event.prev) is None):
        raise InputError(f"{which} has a prev that is not a line hash", path="$.prev")
    if not isinstance(event.body, dict):
        raise InputError(f"{which} has a body that is not a JSON object", path="$.body")


def _encode_json(value: Any) -> str:
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return canonical_json(value).decode()


def _cached_json(value: Any, cache: dict[str, bytes]) -> bytes:
    if not isinstance(value, str) or len(value) > 200:
        return canonical_json(value)
    encoded = cache.get(value)
    if encoded is None:
        if len(cache) > 10_000:
            cache.clear()
        encoded = cache[value] = canonical_json(value)
    return encoded
