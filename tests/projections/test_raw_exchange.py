"""RawExchangeRecord: incremental == rebuild, point in time, resolutions, verification, crash safety.

Lakes are real folders with an injected clock (recorded_at_utc); databases are SQLite always and PostgreSQL and
MariaDB through the `sql_url` fixture. Expected rows come from `reference_rows`, an independent fold over the
whole event list with no SQL, no index and no chunks.
"""

from __future__ import annotations

import random
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import InputError, Lake
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import content_sha256, format_utc
from eventlog.format.events import Event, new_resolution
from eventlog.format.identity import record_key
from eventlog.sql.dialects import JsonDocument
from eventlog.sql.store import SqlEventStore
from projections import PROJECTION, PointInTime, read_checkpoint, reproject
from projections.checkpoints import add_digest, format_digest, row_digest
from projections.raw_exchange import DIGEST_COLUMNS, Row, _digest_of
from projections.rules import Settlement, resolution_candidates, resolution_scope_matches, settle
from projections.tables import HISTORY_VIEW, attach
from tests.conftest import drop_test_schema, seeded, server_url
from tests.eventlog.test_mirror import kill_midway
from tests.factories import BASE_TIME, page_record

RECORDED = datetime(2024, 6, 1, 8, 0, tzinfo=BASE_TIME.tzinfo)


class Clock:
    """A settable clock for Lake(clock=...): recorded_at_utc is whatever the test says it is."""

    def __init__(self, now: datetime = RECORDED) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- the reference ------------------------------------------------------------------------------------------------

def _rank(event: Event) -> tuple[str, str, str]:
    return (event.body["observed_at_utc"], event.body["content_sha256"], event.body["exchange_id"])


def _key(body: dict[str, Any]) -> str:
    return record_key(body["source_system"], body["entity_type"], body["natural_key"], body["content_sha256"])


def reference_rows(events: list[Event], point: PointInTime | None = None) -> dict[str, dict[str, Any]]:
    """The rows the projection must hold, folded naively from the full event list (projections.rules.settle)."""
    payloads = {event.body["content_sha256"]: canonical_json(
        {"request": event.body["request"], "response": event.body["response"]}).decode()
        for event in events if event.type == "observed"}
    applied = [event for event in events if point is None or point.admits(event)]
    rows: dict[str, dict[str, Any]] = {}
    best: dict[str, dict[str, Event]] = {}
    for number, event in enumerate(applied):
        if event.type == "resolved":
            winner = event.body["winner"]
            earlier = [seen for seen in applied[:number]
                       if seen.type != "resolved" and seen.body["content_sha256"] == winner]
            if earlier:
                rows[_key(earlier[0].body)]["event_seq"] = event.seq
            continue
        body = event.body
        key = _key(body)
        row = rows.setdefault(key, {
            "record_key": key, "source_system": body["source_system"], "entity_type": body["entity_type"],
            "natural_key": body["natural_key"], "first_observed_at_utc": body["observed_at_utc"],
            "last_observed_at_utc": body["observed_at_utc"], "observation_count": 0})
        versions = best.setdefault(key, {})
        known = versions.get(body["content_sha256"])
        if known is None or _rank(event) > _rank(known):
            versions[body["content_sha256"]] = event
        row["observation_count"] += 1
        row["version_count"] = len(versions)
        row["first_observed_at_utc"] = row["created_at_utc"] = min(row["first_observed_at_utc"],
                                                                   body["observed_at_utc"])
        row["last_observed_at_utc"] = row["updated_at_utc"] = max(row["last_observed_at_utc"],
                                                                  body["observed_at_utc"])
        row["event_seq"] = event.seq
    for key, row in rows.items():
        versions = best[key]
        settlements = [Settlement(event.event_id, event.body["winner"], resolution_candidates(event.body))
                       for event in applied if event.type == "resolved" and resolution_scope_matches(
                           event.body, row["source_system"], row["entity_type"], row["natural_key"])]
        current = versions[settle({content: _rank(event) for content, event in versions.items()}, settlements)
                           or ""]
        body = current.body
        row.update(exchange_id=body["exchange_id"], exchange_type=body["exchange_type"],
                   observed_at_utc=body["observed_at_utc"], content_sha256=body["content_sha256"],
                   schema_version=body["schema_version"], payload_json=payloads[body["content_sha256"]])
    return rows


def reference_digest(rows: dict[str, dict[str, Any]]) -> str:
    total = 0
    for row in rows.values():
        total = add_digest(total, row_digest(row, DIGEST_COLUMNS))
    return format_digest(total)


# -- reading the database -----------------------------------------------------------------------------------------

def stored_rows(url: str, schema: str) -> dict[str, dict[str, Any]]:
    with SqlEventStore(url, schema=schema) as store, store.engine.connect() as conn:
        return {row.record_key: dict(row._mapping) for row in conn.execute(sa.select(attach(store).record))}


def stored_digest(url: str, schema: str) -> str:
    with SqlEventStore(url, schema=schema) as store, store.engine.connect() as conn:
        checkpoint = read_checkpoint(conn, attach(store), PROJECTION)
    assert checkpoint is not None
    return checkpoint.state_digest


def drop_lake_tables(url: str, schema: str) -> None:
    """Tests only: remove every lake table (the schema on a server, every table and view on SQLite)."""
    if not url.startswith("sqlite"):
        drop_test_schema(url, schema)
        return
    with SqlEventStore(url, schema=schema) as store, store.begin() as conn:
        conn.exec_driver_sql(f'DROP VIEW IF EXISTS "{HISTORY_VIEW}"')
        attach(store)
        store.tables.metadata.drop_all(conn)


# -- scenarios ----------------------------------------------------------------------------------------------------

KEYS = ("Ada", "Bea", "Cy")


@dataclass(frozen=True)
class Append:
    """Append page records (title None: without a natural key) at a recorded time, in minutes from RECORDED."""

    records: tuple[tuple[str | None, int, int], ...]  # (title, revision, observed hour)
    recorded_minute: int


@dataclass(frozen=True)
class Resolve:
    """Append a resolution making revision `revision` of `title` current (ignored if never observed)."""

    title: str
    revision: int
    recorded_minute: int


def _page(title: str | None, revision: int, hour: int) -> dict[str, Any]:
    record = page_record(title or "untitled", revision, observed=BASE_TIME + timedelta(hours=hour))
    if title is None:
        record["natural_key"] = None
    return record


def play(lake: Lake, clock: Clock, step: Append | Resolve) -> None:
    """Apply one scenario step to the lake."""
    clock.now = RECORDED + timedelta(minutes=step.recorded_minute)
    if isinstance(step, Append):
        lake.append([_page(*record) for record in step.records])
        return
    winner = content_sha256(_page(step.title, step.revision, 0))
    body = {"scope": "wikipedia-en/page", "natural_key": step.title, "winner": winner, "strategy": "prefer_sql",
            "candidates": [winner], "decided_at_utc": format_utc(clock.now)}
    lake.log.append_events([new_resolution(body=body, origin=lake.config.replica_id,
                                           recorded_at_utc=format_utc(clock.now))])


records = st.tuples(st.sampled_from((*KEYS, None)), st.integers(0, 3), st.integers(0, 6))
steps = st.one_of(
    st.builds(Append, st.lists(records, min_size=1, max_size=6).map(tuple), st.integers(0, 90)),
    st.builds(Resolve, st.sampled_from(KEYS), st.integers(0, 3), st.integers(0, 90)),
)


def random_steps(rng: random.Random, count: int) -> list[Append | Resolve]:
    """A seeded scenario of the same shape as the hypothesis strategy."""
    made: list[Append | Resolve] = []
    for _ in range(count):
        if rng.random() < 0.2:
            made.append(Resolve(rng.choice(KEYS), rng.randrange(4), rng.randrange(91)))
        else:
            made.append(Append(tuple((rng.choice((*KEYS, None)), rng.randrange(4), rng.randrange(7))
                                     for _ in range(rng.randint(1, 6))), rng.randrange(91)))
    return made


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lake(tmp_path: Path, clock: Clock) -> Iterator[Lake]:
    with Lake.init(tmp_path / "lake", clock=clock) as opened:
        yield opened


# -- tests --------------------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=st.lists(st.tuples(steps, st.booleans()), min_size=1, max_size=8), batch=st.integers(1, 7))
def test_incremental_in_random_splits_equals_rebuild(scenario: list[tuple[Append | Resolve, bool]],
                                                     batch: int) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder, Lake.init(Path(folder) / "lake", clock=clock) as lake:
        incremental, rebuilt = f"sqlite:///{folder}/incremental.db", f"sqlite:///{folder}/rebuilt.db"
        with SqlEventStore(incremental) as store:
            for step, reproject_now in scenario:
                play(lake, clock, step)
                if reproject_now:
                    reproject(lake.log, store, now="2024-07-01T00:00:00.000000Z", batch=batch)
            result = reproject(lake.log, store, now="2024-07-01T00:00:00.000000Z", batch=batch)
        with SqlEventStore(rebuilt) as store:
            reproject(lake.log, store, now="2024-07-01T00:00:00.000000Z", rebuild=True)
        expected = reference_rows(list(lake.events()))
        assert stored_rows(incremental, "lake") == stored_rows(rebuilt, "lake") == expected
        assert stored_digest(incremental, "lake") == stored_digest(rebuilt, "lake") == result.state_digest
        assert result.state_digest == reference_digest(expected)
        assert lake.verify_projection(database_url=incremental).ok


def test_rebuild_after_truncate_or_dropping_every_table_is_identical(lake: Lake, clock: Clock, sql_url: str,
                                                                     sql_schema: str) -> None:
    seed, rng = seeded("scenario")
    for step in random_steps(rng, 30):
        play(lake, clock, step)
        if rng.random() < 0.4:
            lake.reproject(database_url=sql_url, schema=sql_schema)
    lake.reproject(database_url=sql_url, schema=sql_schema)
    rows, digest = stored_rows(sql_url, sql_schema), stored_digest(sql_url, sql_schema)
    assert rows == reference_rows(list(lake.events())), f"seed {seed}"
    assert digest == reference_digest(rows)

    with SqlEventStore(sql_url, schema=sql_schema) as store, store.begin() as conn:
        conn.execute(attach(store).record.delete())
    broken = lake.verify_projection(database_url=sql_url, schema=sql_schema)
    assert not broken.ok and broken.missing == len(rows) and broken.rows == 0
    result = lake.reproject(rebuild=True, database_url=sql_url, schema=sql_schema)
    assert (result.mode, result.reason) == ("rebuild", "rebuild asked for")
    assert stored_rows(sql_url, sql_schema) == rows and stored_digest(sql_url, sql_schema) == digest

    drop_lake_tables(sql_url, sql_schema)
    result = lake.reproject(database_url=sql_url, schema=sql_schema)
    assert result.mode == "rebuild" and result.reason is not None and "no checkpoint" in result.reason
    assert stored_rows(sql_url, sql_schema) == rows and stored_digest(sql_url, sql_schema) == digest
    assert lake.verify_projection(database_url=sql_url, schema=sql_schema).ok


def test_current_version_counts_and_times(lake: Lake, clock: Clock, sql_url: str, sql_schema: str) -> None:
    def at(hour: int) -> datetime:
        return BASE_TIME + timedelta(hours=hour)

    clock.now = RECORDED
    lake.append([page_record("Ada", 1, observed=at(1)), page_record("Ada", 2, observed=at(5))])
    clock.now = RECORDED + timedelta(minutes=5)
    # Late arrivals: an older observation of a third version, and version 1 again, older still.
    lake.append([page_record("Ada", 3, observed=at(3)), page_record("Ada", 1, observed=at(0))])
    lake.reproject(database_url=sql_url, schema=sql_schema)
    (row,) = stored_rows(sql_url, sql_schema).values()
    assert row["payload_json"] == canonical_json({"request": page_record("Ada", 2)["request"],
                                                  "response": page_record("Ada", 2)["response"]}).decode()
    assert (row["observation_count"], row["version_count"], row["event_seq"]) == (4, 3, 4)
    assert (row["observed_at_utc"], row["first_observed_at_utc"], row["last_observed_at_utc"]) == (
        format_utc(at(5)), format_utc(at(0)), format_utc(at(5)))
    # Recorded times are replica-local: created/updated are the key's first and last observed times.
    assert (row["created_at_utc"], row["updated_at_utc"]) == (format_utc(at(0)), format_utc(at(5)))
    clock.now = RECORDED + timedelta(minutes=9)
    lake.append([page_record("Ada", 2, observed=at(6))])  # the current content seen again, later
    result = lake.reproject(database_url=sql_url, schema=sql_schema)
    assert (result.mode, result.position_before, result.position, result.rows_updated) == ("incremental", 4, 5, 1)
    (again,) = stored_rows(sql_url, sql_schema).values()
    assert again["content_sha256"] == row["content_sha256"] and again["observed_at_utc"] == format_utc(at(6))
    assert (again["observation_count"], again["version_count"], again["event_seq"]) == (5, 3, 5)


def test_point_in_time_as_of_and_known_at(lake: Lake, clock: Clock, sql_url: str, sql_schema: str) -> None:
    t1, t2, t3 = (BASE_TIME + timedelta(days=day) for day in (1, 2, 3))
    r1, r2, r3, r4 = (RECORDED + timedelta(hours=hour) for hour in (1, 2, 3, 4))
    versions = {n: page_record("Ada_Lovelace", n, observed=moment) for n, moment in ((1, t1), (2, t2), (3, t3))}
    hashes = {n: content_sha256(record) for n, record in versions.items()}
    for recorded, number in ((r1, 3), (r2, 1), (r3, 2)):  # recorded out of order: t3 first, then t1, then t2
        clock.now = recorded
        lake.append([versions[number]])
    options = {"database_url": sql_url, "schema": sql_schema}

    def current(**point: Any) -> dict[str, Any]:
        result = lake.reproject(**point, **options)
        (row,) = stored_rows(sql_url, sql_schema).values()
        assert lake.verify_projection(**options).ok
        assert result.state_digest == reference_digest(
            reference_rows(list(lake.events()), PointInTime.of(**point)))
        return row

    assert current()["content_sha256"] == hashes[3]
    row = current(as_of=format_utc(t2))
    assert (row["content_sha256"], row["observation_count"], row["version_count"]) == (hashes[2], 2, 2)
    assert (row["created_at_utc"], row["updated_at_utc"]) == (format_utc(t1), format_utc(t2))
    assert current(as_of=t1 + timedelta(hours=1))["content_sha256"] == hashes[1]
    row = current(known_at=r1.isoformat())
    assert (row["content_sha256"], row["observation_count"]) == (hashes[3], 1)
    row = current(known_at=format_utc(r2))
    assert (row["content_sha256"], row["observation_count"], row["first_observed_at_utc"]) == (
        hashes[3], 2, format_utc(t1))
    assert current(at_seq=2) == row
    assert current(as_of=format_utc(t2), known_at=format_utc(r2))["content_sha256"] == hashes[1]

    # A resolution (recorded at r4) makes version 1 current; before r4 the lake did not know it.
    clock.now = r4
    body = {"scope": "wikipedia-en/page", "natural_key": "Ada_Lovelace", "winner": hashes[1],
            "strategy": "prefer_sql", "candidates": [hashes[3], hashes[1]]}
    lake.log.append_events([new_resolution(body=body, origin=lake.config.replica_id, recorded_at_utc=format_utc(r4))])
    assert current(known_at=format_utc(r3))["content_sha256"] == hashes[3]
    row = current(known_at=format_utc(r4))
    assert (row["content_sha256"], row["observed_at_utc"], row["updated_at_utc"]) == (
        hashes[1], format_utc(t1), format_utc(t3))
    with pytest.raises(InputError, match="no UTC offset"):
        lake.reproject(as_of="2024-05-02T00:00:00", **options)
    plain = lake.reproject(**options)
    assert plain.mode == "rebuild" and plain.reason is not None and "point-in-time" in plain.reason
    assert (plain.resolutions_applied, stored_rows(sql_url, sql_schema).popitem()[1]["content_sha256"]) == (
        1, hashes[1])
    assert lake.reproject(**options).mode == "incremental"


def test_verify_names_a_tampered_row(lake: Lake, sql_url: str, sql_schema: str) -> None:
    lake.append([page_record(f"Page_{n}", 1) for n in range(5)])
    lake.reproject(database_url=sql_url, schema=sql_schema)
    with SqlEventStore(sql_url, schema=sql_schema) as store, store.begin() as conn:
        record = attach(store).record
        key = conn.execute(sa.select(record.c.record_key).order_by(record.c.record_key).limit(1)).scalar_one()
        conn.execute(record.update().where(record.c.record_key == key).values(observation_count=7))
    report = lake.verify_projection(database_url=sql_url, schema=sql_schema)
    assert not report.ok and (report.different, report.missing, report.unexpected) == (1, 0, 0)
    assert report.differences[0].record_key == key and report.differences[0].columns == ("observation_count",)
    assert report.state_digest == report.expected_digest != report.rows_digest
    assert "1 different" in report.problems[0]


def test_a_row_changed_in_place_is_found_by_the_digest_check_and_rebuilt(lake: Lake, sql_url: str,
                                                                        sql_schema: str) -> None:
    """A DBA's UPDATE keeps the row count, which every reproject compares; `check` compares the state digest of
    the rows as stored with the checkpoint's, rebuilds and says why. A table that agrees is left alone."""
    lake.append([page_record(f"Page_{n}", 1) for n in range(5)])
    lake.reproject(database_url=sql_url, schema=sql_schema)
    rows, digest = stored_rows(sql_url, sql_schema), stored_digest(sql_url, sql_schema)
    untouched = lake.reproject(check=True, database_url=sql_url, schema=sql_schema)
    assert (untouched.mode, untouched.reason, untouched.events_read) == ("incremental", None, 0)
    with SqlEventStore(sql_url, schema=sql_schema) as store, store.begin() as conn:
        record = attach(store).record
        key = conn.execute(sa.select(record.c.record_key).order_by(record.c.record_key).limit(1)).scalar_one()
        conn.execute(record.update().where(record.c.record_key == key).values(natural_key="Page_X"))
    assert lake.reproject(database_url=sql_url, schema=sql_schema).mode == "incremental"  # the count agrees
    result = lake.reproject(check=True, database_url=sql_url, schema=sql_schema)
    assert result.mode == "rebuild" and result.reason is not None
    assert "5 rows of RawExchangeRecord do not add up to its checkpoint's state digest" in result.reason
    assert stored_rows(sql_url, sql_schema) == rows and stored_digest(sql_url, sql_schema) == digest
    assert lake.verify_projection(database_url=sql_url, schema=sql_schema).ok


REPROJECT = textwrap.dedent("""
    import sys
    from eventlog import Lake
    from eventlog.sql.store import SqlEventStore
    from projections import reproject
    lake_path, url, schema, batch, rebuild = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    with Lake.open(lake_path) as lake, SqlEventStore(url, schema=schema) as store:
        print("started", flush=True)
        reproject(lake.log, store, now="2024-07-01T00:00:00.000000Z", batch=batch, rebuild=rebuild == "1",
                  progress=lambda count: print(count, flush=True))
""")


def test_sigkill_during_reprojection_leaves_a_consistent_table(tmp_path: Path, sql_url: str,
                                                               sql_schema: str) -> None:
    seed, rng = seeded("reprojection crash test")
    root = tmp_path / "lake"
    clock = Clock()
    with Lake.init(root, clock=clock) as lake:
        for step in random_steps(rng, 40):
            play(lake, clock, step)
        lake.reproject(database_url=sql_url, schema=sql_schema)
    killed = 0
    for trial in range(6):
        with Lake.open(root, clock=clock) as lake:  # fresh work for every child, so that it is killed halfway
            clock.now += timedelta(minutes=1)
            lake.append([_page(f"Page_{n % 400}", n % 7, n % 13) for n in range(trial * 800, trial * 800 + 800)])
        rebuild = "1" if trial % 3 == 2 else "0"
        killed += kill_midway(REPROJECT, [str(root), sql_url, sql_schema, str(rng.choice([10, 25, 60])), rebuild],
                              rng, batches=10)
        with Lake.open(root) as lake:
            report = lake.verify_projection(database_url=sql_url, schema=sql_schema)
        assert report.ok, f"trial {trial} (seed {seed}): {report.problems}"
    print(f"{killed} of 6 children killed mid-run")
    assert killed >= 3, f"children finished before they were killed (seed {seed})"
    with Lake.open(root) as lake:
        done = lake.reproject(database_url=sql_url, schema=sql_schema)
        assert done.position == lake.log.last_seq
        events = list(lake.events())
    expected = reference_rows(events)
    assert stored_rows(sql_url, sql_schema) == expected
    assert done.state_digest == stored_digest(sql_url, sql_schema) == reference_digest(expected)


def test_public_api_is_sorted_and_complete() -> None:
    import projections

    def kind(name: str) -> tuple[int, str]:  # the order ruff keeps __all__ in: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    assert projections.__all__ == sorted(projections.__all__, key=kind)
    assert all(hasattr(projections, name) for name in projections.__all__)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(texts=st.lists(_TEXT, min_size=11, max_size=11), natural=st.none() | _TEXT,
       counts=st.lists(st.integers(min_value=0, max_value=2**63), min_size=4, max_size=4))
def test_the_fast_row_digest_equals_the_canonical_json_digest(texts: list[str], natural: str | None,
                                                              counts: list[int]) -> None:
    # Strings with escapes, U+2028, private-use and astral characters, and a null natural key: the one-call
    # encoding of a fold row must give the digest that canonical_json of the same columns gives.
    row = Row(record_key=texts[0], exchange_id=texts[1], exchange_type=texts[2], source_system=texts[3],
              entity_type=texts[4], natural_key=natural, observed_at_utc=texts[5], content_sha256=texts[6],
              schema_version=counts[0], created_at_utc=texts[7], updated_at_utc=texts[8],
              first_observed_at_utc=texts[9], last_observed_at_utc=texts[10], observation_count=counts[1],
              version_count=counts[2], event_seq=counts[3])
    assert _digest_of(row) == row_digest(asdict(row), DIGEST_COLUMNS)


def test_postgresql_json_columns_of_an_earlier_release_keep_working(lake: Lake, clock: Clock) -> None:
    # Earlier releases made the JSON columns PostgreSQL `json`; creating the schema never alters a table, so such
    # tables stay. Mirror, rebuild and an incremental update (UPDATE of payload_json) must work on them as on TEXT.
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        with SqlEventStore(url, schema=schema) as store:
            attach(store)
            store.create_schema()
            with store.begin() as conn:
                conn.exec_driver_sql(f'DROP VIEW "{schema}"."{HISTORY_VIEW}"')
                for table in (store.tables.event, store.tables.content, attach(store).record):
                    for column in table.columns:
                        if isinstance(column.type, JsonDocument):
                            conn.exec_driver_sql(f'ALTER TABLE "{schema}"."{table.name}" ALTER COLUMN '
                                                 f'"{column.name}" TYPE json USING "{column.name}"::json')
            store.create_schema()  # the view again, over the json columns, as the earlier release left it
        lake.append([page_record("Ada", 1), page_record("Grace", 1)])
        assert lake.mirror(database_url=url, schema=schema).written == 2
        lake.reproject(rebuild=True, database_url=url, schema=schema)
        clock.now = RECORDED + timedelta(minutes=1)
        lake.append([page_record("Ada", 2, observed=BASE_TIME + timedelta(days=1))])
        lake.mirror(database_url=url, schema=schema)
        assert lake.reproject(database_url=url, schema=schema).rows_updated == 1
        assert stored_rows(url, schema) == reference_rows(list(lake.events()))
        with SqlEventStore(url, schema=schema) as store:
            assert [event for _, event in store.events()] == list(lake.events())
            with store.engine.connect() as conn:
                kinds = set(conn.execute(sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = :schema "
                    "AND column_name IN ('payload_json', 'request', 'body')"), {"schema": schema}).scalars())
        assert kinds == {"json"}
        assert lake.verify_projection(database_url=url, schema=schema).ok
    finally:
        drop_test_schema(url, schema)
