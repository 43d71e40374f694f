"""Events of the log and their one-line canonical encoding.

A line is the canonical JSON of {body, digest, event_id, origin, prev, recorded_at_utc, seq, type}. Its hash
(SHA-256 of the line without the newline) is the next line's `prev`. The `digest` covers what travels between
replicas: type, event_id, origin, recorded_at_utc and the body without its inline payload (request and response),
which `content_sha256` in the body binds instead. seq and prev are this replica's own.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final, Literal, NamedTuple

import msgspec

from eventlog.errors import CanonicalError
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import EncodedNames, ExchangeRecord, decode_record

EventType = Literal["observed", "revisited", "resolved"]
GENESIS = "0" * 64
PAYLOAD_KEYS = ("request", "response")
OBSERVATION_TYPES: Final = ("observed", "revisited")
RESOLUTION_ID_NAMESPACE = uuid.UUID("0b7f6c52-3d3e-5f3c-a9f3-6a1f2d0c9e84")

# The layout of an event line and its envelope, defined once. Keys are listed in RFC 8785 order (the order every
# encoder here writes them); the splicing encoders below, eventlog/_records.c and the raw decoders follow these
# tables, and tests/eventlog/test_codec.py holds each of them to it.
LINE_KEYS: Final = ("body", "digest", "event_id", "origin", "prev", "recorded_at_utc", "seq", "type")
ENVELOPE_KEYS: Final = tuple(sorted(field.name for field in msgspec.structs.fields(ExchangeRecord)))  # all ASCII
ENVELOPE_HEAD_KEYS: Final = tuple(key for key in ENVELOPE_KEYS if key < PAYLOAD_KEYS[0])
ENVELOPE_TAIL_KEYS: Final = tuple(key for key in ENVELOPE_KEYS if key > PAYLOAD_KEYS[1])
CONTENT_KEYS: Final = ("entity_type", "exchange_type", "natural_key", "request", "response", "source_system")



class Event(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One decoded log line."""

    type: EventType
    event_id: str
    seq: int
    recorded_at_utc: str
    origin: str
    prev: str
    digest: str
    body: dict[str, Any]

    @property
    def content_sha256(self) -> str | None:
        """Content hash the event observed (observed/revisited) or chose (resolved)."""
        value = self.body.get("content_sha256")
        return value if isinstance(value, str) else None

    def record(self) -> ExchangeRecord:
        """The exchange envelope of an observed or revisited event (revisited ones carry no payload)."""
        if self.type == "resolved":
            raise ValueError(f"event {self.event_id} is a resolution, not an observation")
        return decode_record(self.body)


_line_decoder = msgspec.json.Decoder(Event)


def decode_line(raw: bytes) -> Event:
    """Decode one log line (without its newline). Raises msgspec errors on malformed lines."""
    return _line_decoder.decode(raw)


def line_hash(raw: bytes) -> str:
    """Hash of a line as the chain sees it."""
    return hashlib.sha256(raw).hexdigest()


ABSENT: Final = msgspec.Raw(b"")


class RawEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of an observed or revisited line as the log writes it: scalars typed, JSON fields and the payload
    left as the line's own canonical bytes (`ABSENT` where a revisit carries no payload)."""

    content_sha256: str
    entity_type: str
    exchange_id: str
    exchange_type: str
    natural_key: str | None
    observed_at_utc: str
    provenance: msgspec.Raw
    redactions_applied: msgspec.Raw
    response_ref: msgspec.Raw
    schema_version: int
    source_system: str
    tags: msgspec.Raw
    request: msgspec.Raw = ABSENT
    response: msgspec.Raw = ABSENT


class RawLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An observed or revisited line decoded without turning its payload into Python objects."""

    body: RawEnvelope
    digest: str
    event_id: str
    origin: str
    prev: str
    recorded_at_utc: str
    seq: int
    type: str


_raw_line_decoder = msgspec.json.Decoder(RawLine)


def decode_raw_line(raw: bytes) -> RawLine | None:
    """The fast decoding of an observed or revisited line, or None for a line it does not fit (a resolution, an
    envelope with other keys or types), which `decode_line` then decodes in full. Raises msgspec.DecodeError for a
    line that is not JSON."""
    try:
        return _raw_line_decoder.decode(raw)
    except msgspec.ValidationError:
        return None


class EnvelopeExtras(NamedTuple):
    """Canonical JSON of the envelope fields that are not names, ids, times or payload; mostly their defaults."""

    provenance: bytes
    redactions_applied: bytes
    response_ref: bytes
    schema_version: bytes
    tags: bytes


def envelope_extras(record: ExchangeRecord, redactions: list[str]) -> EnvelopeExtras:
    """Encode the envelope's other fields (`redactions` as the envelope will state them)."""
    ref = record.response_ref
    return EnvelopeExtras(
        canonical_json(record.provenance) if record.provenance else b"{}",
        canonical_json(redactions) if redactions else b"[]",
        b"null" if ref is None else canonical_json(msgspec.to_builtins(ref)),
        canonical_json(record.schema_version),
        canonical_json(list(record.tags)) if record.tags else b"[]",
    )


def envelope_parts(record: ExchangeRecord, names: EncodedNames, extras: EnvelopeExtras, *, content_sha256: str,
                   exchange_id: str, observed_at_utc: str) -> tuple[bytes, bytes]:
    """Canonical JSON of the envelope's head and tail around the payload keys, without their braces.

    Written field by field in RFC 8785 key order (the same bytes as canonical_json of the whole envelope, which a
    test checks), because this runs once per appended record. Hashes, ids and times are ASCII with nothing to
    escape.
    """
    head = b"".join((
        b'"content_sha256":"', content_sha256.encode(), b'","entity_type":', names.entity_type,
        b',"exchange_id":"', exchange_id.encode(), b'","exchange_type":"', record.exchange_type.encode(),
        b'","natural_key":', names.natural_key, b',"observed_at_utc":"', observed_at_utc.encode(),
        b'","provenance":', extras.provenance, b',"redactions_applied":', extras.redactions_applied,
    ))
    tail = b"".join((
        b'"response_ref":', extras.response_ref, b',"schema_version":', extras.schema_version,
        b',"source_system":', names.source_system, b',"tags":', extras.tags,
    ))
    return head, tail


def encode_observation(*, event_type: EventType, event_id: str, envelope_head: bytes, envelope_tail: bytes,
                       request_json: bytes, response_json: bytes, origin: str, recorded_at_utc: str,
                       seq: int, prev: str) -> tuple[bytes, str]:
    """Encode an observed or revisited event from pre-encoded parts; returns (line, digest).

    Splicing keeps the payload encoded once: the same bytes serve the content hash and the line.
    """
    bare_body = b"{" + envelope_head + b"," + envelope_tail + b"}"
    if event_type == "observed":
        body = b"".join((b"{", envelope_head, b',"request":', request_json, b',"response":', response_json,
                         b",", envelope_tail, b"}"))
    else:
        body = bare_body
    # ids, times and type are ASCII with nothing to escape: a literal quote pair is their canonical form.
    meta_id = b'"' + event_id.encode() + b'"'
    meta_origin = b'"' + origin.encode() + b'"'
    meta_recorded = b'"' + recorded_at_utc.encode() + b'"'
    meta_type = b'"' + event_type.encode() + b'"'
    digest = hashlib.sha256(b"".join((
        b'{"body":', bare_body, b',"event_id":', meta_id, b',"origin":', meta_origin,
        b',"recorded_at_utc":', meta_recorded, b',"type":', meta_type, b"}",
    ))).hexdigest()
    line = b"".join((
        b'{"body":', body, b',"digest":"', digest.encode(), b'","event_id":', meta_id, b',"origin":', meta_origin,
        b',"prev":"', prev.encode(), b'","recorded_at_utc":', meta_recorded, b',"seq":', str(seq).encode(),
        b',"type":', meta_type, b"}",
    ))
    return line, digest


def event_digest(event: Event) -> str:
    """Recompute the digest of a decoded event from its travelling fields."""
    bare = {key: value for key, value in event.body.items() if key not in PAYLOAD_KEYS}
    return hashlib.sha256(canonical_json({
        "body": bare, "event_id": event.event_id, "origin": event.origin,
        "recorded_at_utc": event.recorded_at_utc, "type": event.type,
    })).hexdigest()


def encode_event(event: Event, *, seq: int, prev: str, body_json: bytes | None = None) -> bytes:
    """Encode an event (from another replica, or a resolution) at this replica's seq and chain position.

    `body_json` is canonical_json(event.body) where the caller has it already. The fields are spliced in RFC 8785
    key order, which gives canonical_json of the whole line (a test checks).
    """
    try:
        return b"".join((
            b'{"body":', canonical_json(event.body) if body_json is None else body_json,
            b',"digest":', canonical_json(event.digest), b',"event_id":', canonical_json(event.event_id),
            b',"origin":', canonical_json(event.origin), b',"prev":', canonical_json(prev),
            b',"recorded_at_utc":', canonical_json(event.recorded_at_utc), b',"seq":', canonical_json(seq),
            b',"type":', canonical_json(event.type), b"}",
        ))
    except CanonicalError:  # the whole line's encoding names the field at fault
        return canonical_json({
            "body": event.body, "digest": event.digest, "event_id": event.event_id, "origin": event.origin,
            "prev": prev, "recorded_at_utc": event.recorded_at_utc, "seq": seq, "type": event.type,
        })


def new_resolution(*, body: dict[str, Any], origin: str, recorded_at_utc: str) -> Event:
    """A `resolved` event for a sync decision; its id is derived from the decision, so replays agree."""
    event_id = str(uuid.uuid5(RESOLUTION_ID_NAMESPACE, canonical_json(body).decode()))
    unsealed = Event(type="resolved", event_id=event_id, seq=0, recorded_at_utc=recorded_at_utc, origin=origin,
                     prev=GENESIS, digest="", body=body)
    return msgspec.structs.replace(unsealed, digest=event_digest(unsealed))
