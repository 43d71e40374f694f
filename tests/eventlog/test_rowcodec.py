"""Rows of the SQL event tables: the fast path from log lines equals the general one, and falls back where it must."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa

from eventlog.errors import InputError, IntegrityError
from eventlog.format.events import Event, decode_line, encode_event, new_resolution
from eventlog.sql.dialects import positional_insert
from eventlog.sql.rowcodec import CONTENT_COLUMNS, EVENT_COLUMNS, EncodedEvent, encode_line
from eventlog.sql.rowcodec import encode_event as encode_rows
from eventlog.sql.schema import build_tables
from eventlog.sql.store import SqlEventStore
from tests.eventlog.test_sqlstore import ORIGIN, RECORDED, make_event
from tests.factories import openalex_record, page_record


def line_of(event: Event) -> bytes:
    return encode_event(event, seq=event.seq, prev=event.prev)


def odd_record() -> dict[str, Any]:
    record = page_record("Ünïcode/“quoted”", 3, body="nul \u0000 tab \t emoji \U0001f600 𝄞")
    record["response"]["body"]["numbers"] = [0, -1, 2**53 + 1, -(10**30), 1.5, 1e-7, 1e21, 123456789.125, None]
    record["tags"] = ["b", "a"]
    record["redactions_applied"] = ["$.request.headers.authorization"]
    record["response_ref"] = {"uri": "s3://bucket/key", "size_bytes": 10}
    record["provenance"] = {"runner": "r", "ratio": 0.1}
    return record


@pytest.mark.parametrize("event", [
    make_event(openalex_record(1)),
    make_event(odd_record()),
    make_event({**page_record("x", 1), "natural_key": None}),
    make_event(openalex_record(2), event_type="revisited", recorded_at_utc="2024-06-02T08:00:00.000001Z"),
    make_event(page_record("x", 1), event_type="revisited", extra={"exchange_type": "p\n2024-06-01T08:00:00.000000Z"}),
], ids=["openalex", "odd", "no-natural-key", "revisited", "type-with-newline"])
def test_fast_path_gives_the_rows_of_the_decoded_event(event: Event) -> None:
    encoded = encode_line(line_of(event))
    assert isinstance(encoded, EncodedEvent)
    assert encoded == encode_rows(event)
    assert (encoded.event_id, encoded.digest, encoded.seq) == (event.event_id, event.digest, event.seq)


@pytest.mark.parametrize("event", [
    make_event(page_record("Extra", 1), extra={"future_field": {"x": 1}}),
    make_event(page_record("Extra", 1), extra={"schema_version": "2"}),
    make_event(page_record("Extra", 1), extra={"schema_version": 2**40}),
    make_event(page_record("Extra", 1), event_type="revisited", extra={"exchange_id": "not ascii é"}),
    make_event(page_record("Extra", 1), event_type="revisited", extra={"natural_key": 7}),
    new_resolution(body={"scope": "wikipedia-en/page", "natural_key": "Extra", "winner": "ab" * 32,
                         "strategy": "prefer_newest", "candidates": ["ab" * 32]}, origin=ORIGIN,
                   recorded_at_utc=RECORDED),
], ids=["extra-key", "text-version", "huge-version", "non-ascii-id", "numeric-key", "resolution"])
def test_lines_outside_the_fast_path_come_back_decoded(event: Event) -> None:
    line = line_of(event)
    decoded = encode_line(line)
    assert decoded == decode_line(line)
    assert isinstance(decoded, Event)
    assert encode_rows(decoded).row[EVENT_COLUMNS.index("event_id")] == event.event_id


@pytest.mark.parametrize(("body", "fields"), [
    ({"exchange_type": "x" * 33}, {}),
    ({"exchange_type": "page\x80"}, {}),
    ({"observed_at_utc": "junk\n2024-06-01T08:00:00.000000Z"}, {}),
    ({"content_sha256": "AB" * 32}, {}),
    ({"exchange_id": "two words"}, {}),
    ({"source_system": "s" * 201}, {}),
    ({}, {"prev": "not a hash"}),
    ({}, {"event_id": "x" * 65}),
    ({}, {"origin": "o" * 101}),
], ids=["long-type", "type-with-separator", "time-with-newline", "upper-hash", "spaced-id",
        "long-source", "bad-prev", "long-event-id", "long-origin"])
def test_each_column_test_sends_the_line_down_the_general_path(body: dict[str, str], fields: dict[str, str]) -> None:
    event = make_event(page_record("Fits", 1), event_type="revisited", extra=body)
    line = line_of(msgspec.structs.replace(event, **fields))
    assert encode_line(line) == decode_line(line)


def test_tampered_payload_is_refused_through_the_general_path() -> None:
    event = make_event(openalex_record(3))
    tampered = msgspec.structs.replace(event, body={**event.body, "response": {"status": 500}})
    decoded = encode_line(line_of(tampered))
    assert isinstance(decoded, Event)
    with pytest.raises(IntegrityError, match="content_sha256"):
        encode_rows(decoded)


@pytest.mark.parametrize("change", [{"digest": "X" * 64}, {"recorded_at_utc": "2024-06-01 08:00"}, {"origin": ""}])
def test_bad_event_fields_are_refused_through_the_general_path(change: dict[str, str]) -> None:
    decoded = encode_line(line_of(msgspec.structs.replace(make_event(openalex_record(4)), **change)))
    assert isinstance(decoded, Event)
    with pytest.raises(InputError):
        encode_rows(decoded)


SECRET = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"


@pytest.mark.parametrize(("change", "path"), [
    ({"type": SECRET}, "$.type"), ({"event_id": SECRET + " x"}, "$.event_id"), ({"digest": SECRET}, "$.digest"),
    ({"recorded_at_utc": SECRET}, "$.recorded_at_utc"), ({"origin": SECRET * 5}, "$.origin"),
    ({"prev": SECRET + " x"}, "$.prev"),
])
def test_refusals_name_the_field_and_rule_never_the_value(change: dict[str, str], path: str) -> None:
    event = msgspec.structs.replace(make_event(openalex_record(4)), **change)
    with pytest.raises(InputError) as caught:
        encode_rows(event)
    assert caught.value.path == path and SECRET not in str(caught.value)


def test_a_wrong_content_hash_is_not_echoed() -> None:
    event = make_event(openalex_record(3))
    tampered = msgspec.structs.replace(event, body={**event.body, "content_sha256": "f" * 64})
    with pytest.raises(IntegrityError) as caught:
        encode_rows(tampered)
    assert "f" * 64 not in str(caught.value) and "$.body.content_sha256" in str(caught.value)


def test_observed_line_without_payload_is_refused() -> None:
    event = make_event(openalex_record(5))
    body = {key: value for key, value in event.body.items() if key != "response"}
    decoded = encode_line(line_of(msgspec.structs.replace(event, body=body)))
    assert isinstance(decoded, Event)
    with pytest.raises(InputError, match="has no response"):
        encode_rows(decoded)


def test_line_that_is_not_json_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        encode_line(b'{"body":')


def test_column_tuples_follow_the_tables() -> None:
    tables = build_tables(None)
    assert tuple(column.name for column in tables.event.columns if column.name != "event_seq") == EVENT_COLUMNS
    assert tuple(column.name for column in tables.content.columns) == CONTENT_COLUMNS


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql", "mariadb", "mssql"])
def test_positional_insert_binds_in_table_order(dialect: str) -> None:
    content = build_tables(None).content
    sql = positional_insert(content, CONTENT_COLUMNS, dialect)
    assert sql.count("?" if dialect in ("sqlite", "mssql") else "%s") == len(CONTENT_COLUMNS)
    with pytest.raises(ValueError, match="table order"):
        positional_insert(content, CONTENT_COLUMNS[::-1], dialect)


def _page_size(url: str) -> int:
    with SqlEventStore(url) as store, store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())


def test_new_sqlite_file_gets_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new = f"sqlite:///{tmp_path / 'new.db'}"
    with SqlEventStore(new) as store:
        store.create_schema()
    assert _page_size(new) == 16384
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA page_size=4096")
        conn.exec_driver_sql("CREATE TABLE t (x)")
    engine.dispose()
    old = f"sqlite:///{tmp_path / 'old.db'}"
    with SqlEventStore(old) as store:
        store.create_schema()
        store.append_events([make_event(openalex_record(6))])
    assert _page_size(old) == 4096
