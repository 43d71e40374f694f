"""Contract suite of the SQL event store, run on every backend `sql_url` provides."""

from __future__ import annotations

import random
import uuid
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa

from eventlog.errors import DatabaseError, InputError, IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import content_sha256, decode_record, derive_exchange_id, envelope_dict
from eventlog.format.events import GENESIS, Event, EventType, event_digest, new_resolution
from eventlog.format.identity import record_key
from eventlog.sql.dialects import JsonDocument, bulk_insert, copy_types, in_values, select_in
from eventlog.sql.store import SqlEventStore
from projections.tables import HISTORY_VIEW, attach
from tests.conftest import drop_test_schema, server_url
from tests.factories import openalex_record, page_record

ORIGIN = "5b0c1f7e-0d7a-4c52-9d0e-1f3a2b4c5d6e"
RECORDED = "2024-06-01T08:00:00.000000Z"


def make_event(record: dict[str, Any], *, event_type: EventType = "observed", origin: str = ORIGIN,
               recorded_at_utc: str = RECORDED, seq: int = 1, prev: str = GENESIS,
               extra: dict[str, Any] | None = None) -> Event:
    """An observed or revisited event for `record`, with its content hash and digest as the log computes them."""
    prepared = decode_record(record)
    digest = content_sha256(prepared)
    prepared = msgspec.structs.replace(
        prepared, content_sha256=digest,
        exchange_id=prepared.exchange_id or derive_exchange_id(digest, prepared.observed_at_utc))
    body = envelope_dict(prepared)
    if event_type == "revisited":
        del body["request"], body["response"]
    body.update(extra or {})
    event_id = body["exchange_id"] if event_type == "observed" else str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{body['exchange_id']}|{recorded_at_utc}"))
    unsealed = Event(type=event_type, event_id=event_id, seq=seq, recorded_at_utc=recorded_at_utc,
                     origin=origin, prev=prev, digest="", body=body)
    return msgspec.structs.replace(unsealed, digest=event_digest(unsealed))


def sample_events(count: int, *, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        record = openalex_record(n, rng=rng) if n % 2 else page_record(f"Page_{n}", n)
        events.append(make_event(record, seq=n + 1, prev=f"{n:064x}"))
    return events


@pytest.fixture
def store(sql_url: str, sql_schema: str) -> Any:
    with SqlEventStore(sql_url, schema=sql_schema) as opened:
        attach(opened)  # the audit view over the event tables, as a lake's store has it
        opened.create_schema()
        yield opened


def count(store: SqlEventStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_create_schema_twice_keeps_rows(store: SqlEventStore) -> None:
    events = sample_events(3)
    assert store.append_events(events) == 3
    store.create_schema()
    store.create_schema()
    assert [event for _, event in store.events()] == events


def test_round_trip_equals_input(store: SqlEventStore) -> None:
    odd = page_record("Ünïcode/“quoted”", 3, body="nul \u0000 tab \t emoji \U0001f600 𝄞")
    # 1e21 is where msgspec's float layout and RFC 8785's part: the store must fall back to the exact encoder.
    odd["response"]["body"]["numbers"] = [0, -1, 2**53 + 1, -(10**30), 1.5, 1e-7, 1e21, 123456789.125, True, None]
    odd["response"]["body"]["nested"] = {"": {"a": [[], {}]}, "é": "x"}
    odd["tags"] = ["b", "a"]
    odd["redactions_applied"] = ["$.request.headers.authorization"]
    odd["response_ref"] = {"uri": "s3://bucket/key", "size_bytes": 10}
    no_key = {**page_record("x", 1), "natural_key": None}
    observed = make_event(odd)
    events = [
        observed,
        make_event(no_key, seq=2),
        make_event(odd, event_type="revisited", recorded_at_utc="2024-06-02T08:00:00.000001Z", seq=3),
        make_event(page_record("Extra", 1), extra={"future_field": {"x": 1}, "schema_version": "2"}),
        # What the text form of PostgreSQL's COPY would have to escape.
        make_event(page_record("tab\there\nnew\\line\r", 1), seq=4),
        new_resolution(body={"scope": "wikipedia-en/page", "natural_key": "Extra", "winner": "ab" * 32,
                             "strategy": "prefer_newest", "candidates": ["ab" * 32, "cd" * 32]},
                       origin=ORIGIN, recorded_at_utc=RECORDED),
    ]
    assert store.append_events(events) == len(events)
    read = list(store.events())
    assert [event for _, event in read] == events
    assert [seq for seq, _ in read] == sorted(seq for seq, _ in read)
    assert store.max_event_seq() == read[-1][0]
    content = store.tables.content
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(content.c.request, content.c.response).where(
            content.c.content_sha256 == observed.content_sha256)).one()
    assert stored.response == canonical_json(odd["response"]).decode()
    assert stored.request == canonical_json(odd["request"]).decode()


def test_events_page_and_resume(store: SqlEventStore) -> None:
    events = sample_events(25)
    store.append_events(events, batch=7)
    read = list(store.events(batch=4))
    assert [event for _, event in read] == events
    middle = read[10][0]
    assert [event for _, event in store.events(middle, batch=3)] == events[11:]
    assert list(store.events(store.max_event_seq())) == []


def test_reappend_is_idempotent(store: SqlEventStore) -> None:
    events = sample_events(10)
    assert store.append_events(events[:6]) == 6
    assert store.append_events(events) == 4
    assert store.append_events(events + events) == 0
    assert [event for _, event in store.events()] == events


def test_digest_conflict_writes_nothing_from_the_batch(store: SqlEventStore) -> None:
    events = sample_events(6)
    store.append_events(events[:2])
    forged = msgspec.structs.replace(events[1], digest="f" * 64)
    with pytest.raises(IntegrityError, match=events[1].event_id):
        store.append_events([*events[2:5], forged, events[5]])
    assert [event for _, event in store.events()] == events[:2]
    assert count(store, store.tables.content) == 2
    with pytest.raises(IntegrityError):
        store.append_events([events[3], msgspec.structs.replace(events[3], digest="e" * 64)])
    assert store.max_event_seq() == 2


def test_payload_that_does_not_match_its_hash_is_refused(store: SqlEventStore) -> None:
    event = sample_events(1)[0]
    tampered = msgspec.structs.replace(event, body={**event.body, "response": {"status": 500}})
    with pytest.raises(IntegrityError, match="is not the hash of its content"):
        store.append_events([tampered])
    assert store.max_event_seq() == 0


def test_payload_stored_once_per_content(store: SqlEventStore) -> None:
    record = page_record("Same", 1)
    first = make_event(record)
    again = make_event({**record, "observed_at_utc": "2024-07-01T00:00:00+00:00"})
    revisit = make_event(record, event_type="revisited", recorded_at_utc="2024-06-03T00:00:00.000000Z")
    assert first.content_sha256 == again.content_sha256 and first.event_id != again.event_id
    store.append_events([first])
    store.append_events([again, revisit])
    assert count(store, store.tables.content) == 1
    assert [event for _, event in store.events()] == [first, again, revisit]
    history = sa.table(HISTORY_VIEW, sa.column("event_id"), sa.column("request"),
                       sa.column("provenance"), schema=store.tables.schema)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(history.c.event_id, history.c.request)).all()
    assert {row.event_id for row in rows} == {first.event_id, again.event_id, revisit.event_id}
    assert all(row.request is not None for row in rows)


def test_transaction_rolls_back_append_and_watermark(store: SqlEventStore) -> None:
    events = sample_events(3)
    with pytest.raises(RuntimeError), store.begin() as conn:
        store.append_events(events, conn=conn)
        store.set_watermark("replica-a|sql|json_to_sql", 3, conn)
        raise RuntimeError("abort")
    assert store.max_event_seq() == 0
    assert store.get_watermark("replica-a|sql|json_to_sql") == 0
    with store.begin() as conn:
        store.append_events(events, conn=conn)
        store.set_watermark("replica-a|sql|json_to_sql", 3, conn)
    store.set_watermark("replica-a|sql|json_to_sql", 5)
    assert store.get_watermark("replica-a|sql|json_to_sql") == 5
    assert store.max_event_seq() > 0


def test_event_ids_stream_in_python_order(store: SqlEventStore) -> None:
    events = sample_events(30)
    store.append_events(events)
    expected = sorted((event.event_id, event.digest) for event in events)
    assert list(store.all_event_ids(batch=7)) == expected
    assert list(store.event_ids_after(expected[9][0], batch=4)) == expected[10:]


@pytest.mark.parametrize("name", ["lake-1", "lake 1", "lake;drop", 'a"b', "läke", "", "x" * 64, "a.b"])
def test_bad_schema_name_is_refused_before_anything_is_written(sql_url: str, name: str) -> None:
    with pytest.raises(InputError, match="schema name"):
        SqlEventStore(sql_url, schema=name)


def test_bad_event_is_refused(store: SqlEventStore) -> None:
    event = sample_events(1)[0]
    with pytest.raises(InputError, match="recorded_at_utc"):
        store.append_events([msgspec.structs.replace(event, recorded_at_utc="2024-06-01 08:00")])
    with pytest.raises(InputError, match="no request"):
        store.append_events([msgspec.structs.replace(
            event, body={k: v for k, v in event.body.items() if k != "request"})])
    assert store.max_event_seq() == 0


def _assert_one_clean_sentence(error: DatabaseError, *, secret: str) -> str:
    message = str(error)
    assert secret not in message
    assert "\n" not in message and message.endswith(".") and message[0].isupper()
    return message


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://someone:s3cret-pw@127.0.0.1:1/test",
    "mysql+pymysql://someone:s3cret-pw@127.0.0.1:1/test",
])
def test_unreachable_server(url: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        SqlEventStore(url).create_schema()
    message = _assert_one_clean_sentence(caught.value, secret="s3cret-pw")
    assert message.startswith("Cannot reach the") and "127.0.0.1:1" in message


def test_sqlite_file_in_missing_folder(tmp_path: Any) -> None:
    with pytest.raises(DatabaseError, match="Cannot open the SQLite database file"):
        SqlEventStore(f"sqlite:///{tmp_path / 'missing' / 'lake.db'}").create_schema()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_wrong_credentials_and_missing_database(backend: str) -> None:
    from tests.conftest import server_url

    url = sa.make_url(server_url(backend))
    stranger = url.set(username="no_such_user_x", password="s3cret-pw")
    with pytest.raises(DatabaseError) as caught:
        SqlEventStore(stranger.render_as_string(hide_password=False)).create_schema()
    message = _assert_one_clean_sentence(caught.value, secret="s3cret-pw")
    assert "refused the credentials of user 'no_such_user_x'" in message
    missing = url.set(database="no_such_database_x")
    with pytest.raises(DatabaseError) as caught:
        SqlEventStore(missing.render_as_string(hide_password=False)).create_schema()
    assert "'no_such_database_x' does not exist" in _assert_one_clean_sentence(caught.value, secret="s3cret-pw")


def test_bad_url_is_input_error() -> None:
    with pytest.raises(InputError, match="not a valid"):
        SqlEventStore("not a url with s3cret")
    with pytest.raises(InputError, match="unknown backend"):
        SqlEventStore("nosuchdb://user:pw@host/db")


def test_large_batch_lookups_find_every_present_event(store: SqlEventStore) -> None:
    # Past LOOKUP_CHUNK keys: several queries on SQLite and MariaDB, one text parameter on PostgreSQL.
    events = sample_events(1205, seed=11)
    assert store.append_events(events[:600]) == 600
    assert store.append_events(events) == 605
    assert store.append_events(events) == 0
    assert count(store, store.tables.content) == 1205


def test_record_key_column_matches_the_schema_function(store: SqlEventStore) -> None:
    events = [make_event(page_record("Keyed", 1)), make_event({**page_record("Unkeyed", 1), "natural_key": None})]
    store.append_events(events)
    table = store.tables.event
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(table.c.event_id, table.c.record_key)).all())
    for event in events:
        body = event.body
        assert stored[event.event_id] == record_key(body["source_system"], body["entity_type"],
                                                    body["natural_key"], body["content_sha256"])


def test_postgresql_look_ups_are_planned_for_the_table_as_it_is() -> None:
    # psycopg prepares a statement on the server after five runs, and the server then settles on one generic plan
    # unless told otherwise. Made while the table is small, that plan is a sequential scan, kept as the table
    # grows (a mirror in 20,000-event batches fell under 1,000 events/s). The store's sessions plan every run.
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    ids = [uuid.uuid4().hex for _ in range(1000)]
    try:
        with SqlEventStore(url, schema=schema) as store:
            store.create_schema()
            with store.begin() as conn:
                for _ in range(20):
                    list(select_in(conn, store.statements.event_digests, "ids", ids))
                plans = conn.execute(sa.text("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                                             "WHERE statement LIKE :pattern"), {"pattern": "%ExchangeEvent%ANY%"}).all()
    finally:
        drop_test_schema(url, schema)
    assert len(plans) == 1 and plans[0].custom_plans > 0
    assert plans[0].generic_plans == 0


def test_postgresql_compresses_payloads_with_lz4(tmp_path: Any) -> None:
    # A payload past PostgreSQL's 2 KB compression threshold: the store's sessions compress it with lz4, whose
    # server CPU cost is a fraction of the default pglz's.
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    record = page_record("Large", 1)
    record["response"] = {"text": " ".join(f"word{n}" for n in range(2000))}
    try:
        with SqlEventStore(url, schema=schema) as store:
            store.create_schema()
            store.append_events([make_event(record)])
            content = store.tables.content
            with store.engine.connect() as conn:
                method = conn.execute(sa.select(sa.func.pg_column_compression(content.c.response))).scalar_one()
    finally:
        drop_test_schema(url, schema)
    assert method == "lz4"


@pytest.mark.parametrize("keys", [
    ["plain", "line\nbreak", "comma,brace}", "quote\"back\\slash"],
    [""],
    ["", "plain"],
    ["line\nbreak"],
    ["\x01\n\x02", "é\U0001f600"],
])
def test_select_in_finds_exactly_the_keys_asked_for(store: SqlEventStore, keys: list[str]) -> None:
    # The keys travel as one text on PostgreSQL, split at a separator that no key may contain.
    stored = ["plain", "line\nbreak", "line", "break", "comma,brace}", "quote\"back\\slash", "", "\x01\n\x02",
              "\x01", "é\U0001f600"]
    metadata = sa.MetaData(schema=store.tables.schema)
    table = sa.Table("KeyProbe", metadata, sa.Column("k", sa.Unicode(40), primary_key=True))
    with store.begin() as conn:
        metadata.create_all(conn)
        conn.execute(table.insert(), [{"k": key} for key in stored])
        statement = sa.select(table.c.k).where(in_values(table.c.k, "keys", store.dialect_name))
        found = sorted(row.k for row in select_in(conn, statement, "keys", keys))
    assert found == sorted(set(keys))


@pytest.mark.parametrize("with_float", [False, True], ids=["binary", "text"])
def test_postgresql_copy_takes_binary_form_where_every_column_allows_it(with_float: bool) -> None:
    # Integers of each width, bounded and unbounded text and JSON documents go in COPY's binary form; a table
    # with any other column type keeps the text form. Both store the same values.
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    metadata = sa.MetaData(schema=schema)
    columns = [sa.Column("small", sa.SmallInteger), sa.Column("int", sa.Integer), sa.Column("big", sa.BigInteger),
               sa.Column("name", sa.Unicode(20)), sa.Column("text", sa.UnicodeText),
               sa.Column("doc", JsonDocument())]
    if with_float:
        columns.append(sa.Column("ratio", sa.Float))
    table = sa.Table("CopyProbe", metadata, *columns)
    names = tuple(column.name for column in columns)
    rows = [(-(2**15), -(2**31), -(2**63), "tab\there", "new\nline \\ back\rslash é\U0001f600", '{"a":"\\n"}'),
            (None, None, None, None, None, None)]
    rows = [(*row, 0.5) for row in rows] if with_float else rows
    try:
        with SqlEventStore(url, schema=schema) as store:
            store.create_schema()
            with store.begin() as conn:
                metadata.create_all(conn)
                bulk_insert(conn, table, names, rows)
                stored = [tuple(row) for row in conn.execute(sa.select(table).order_by(table.c.small))]
            assert (copy_types(table, names, store.engine.dialect) is None) is with_float
    finally:
        drop_test_schema(url, schema)
    assert stored == rows
