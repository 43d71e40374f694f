"""The envelope's field list and the event line's layout are defined once (eventlog.format.events): every encoder,
decoder and the C assembly of eventlog/_records.c follow those tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from eventlog.format import events
from eventlog.format.envelope import ExchangeRecord, content_bytes, encode_names
from eventlog.format.events import (
    CONTENT_KEYS,
    ENVELOPE_HEAD_KEYS,
    ENVELOPE_KEYS,
    ENVELOPE_TAIL_KEYS,
    LINE_KEYS,
    PAYLOAD_KEYS,
    Event,
    RawEnvelope,
    RawLine,
    encode_observation,
    envelope_extras,
    envelope_parts,
)

RECORDS_C = Path(events.__file__).resolve().parents[1] / "_records.c"
RECORD = ExchangeRecord(source_system="wiki", entity_type="page", natural_key="Ada",
                        observed_at_utc=datetime(2026, 1, 2, tzinfo=UTC), request={"q": 1}, response={"r": 2})


def _keys(encoded: bytes) -> list[str]:
    return list(msgspec.json.decode(encoded))


def test_the_tables_follow_the_envelope_struct_and_the_design() -> None:
    assert set(ENVELOPE_KEYS) == {field.name for field in msgspec.structs.fields(ExchangeRecord)}
    assert (*ENVELOPE_HEAD_KEYS, *PAYLOAD_KEYS, *ENVELOPE_TAIL_KEYS) == ENVELOPE_KEYS
    assert set(CONTENT_KEYS) == {"exchange_type", "source_system", "entity_type", "natural_key", "request",
                                 "response"}
    assert {field.name for field in msgspec.structs.fields(Event)} == set(LINE_KEYS)
    assert tuple(field.name for field in msgspec.structs.fields(RawLine)) == LINE_KEYS
    assert {field.name for field in msgspec.structs.fields(RawEnvelope)} == set(ENVELOPE_KEYS)


def test_the_splicing_encoders_write_the_tables_in_their_order() -> None:
    names = encode_names(RECORD)
    head, tail = envelope_parts(RECORD, names, envelope_extras(RECORD, []), content_sha256="0" * 64,
                                exchange_id="00000000-0000-5000-8000-000000000000",
                                observed_at_utc="2026-01-02T00:00:00.000000Z")
    assert _keys(b"{" + head + b"}") == list(ENVELOPE_HEAD_KEYS)
    assert _keys(b"{" + tail + b"}") == list(ENVELOPE_TAIL_KEYS)
    assert _keys(content_bytes(RECORD, b"{}", b"{}")) == list(CONTENT_KEYS)
    line, _ = encode_observation(event_type="observed", event_id="e", envelope_head=head, envelope_tail=tail,
                                 request_json=b"{}", response_json=b"{}", origin="o",
                                 recorded_at_utc="2026-01-02T00:00:00.000000Z", seq=1, prev="0" * 64)
    decoded = msgspec.json.decode(line)
    assert list(decoded) == list(LINE_KEYS)
    assert list(decoded["body"]) == list(ENVELOPE_KEYS)


def test_the_c_assembly_reads_and_writes_the_same_fields() -> None:
    source = RECORDS_C.read_text(encoding="utf-8")
    table = re.search(r"field_names\[F_COUNT\] = \{(.*?)\};", source, re.S)
    assert table is not None
    read = set(re.findall(r'"(\w+)"', table.group(1)))
    # request, response and redactions_applied reach the C as arguments, already encoded and redacted.
    assert read == set(ENVELOPE_KEYS) - {*PAYLOAD_KEYS, "redactions_applied"}
    for name, expected in (("content", CONTENT_KEYS), ("head", ENVELOPE_HEAD_KEYS), ("tail", ENVELOPE_TAIL_KEYS)):
        block = re.search(r"Piece " + name + r"\[\] = \{(.*?)\};", source, re.S)
        assert block is not None, name
        written = re.findall(r'\\"(\w+)\\":', block.group(1))
        assert tuple(written) == expected, name
    line_keys = re.findall(r'\\"(\w+)\\":', source[source.index("encode_chunk"):])
    assert [key for key in line_keys if key in LINE_KEYS][:len(LINE_KEYS)] == list(LINE_KEYS)
