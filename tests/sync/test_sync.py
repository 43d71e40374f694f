"""Sync between lakes and one database: union by event id, shared captures, conflicts and their strategies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import Lake
from eventlog.errors import ConflictError, InputError, IntegrityError
from eventlog.format.envelope import content_sha256
from eventlog.sql.store import SqlEventStore
from projections import reproject
from projections.tables import attach
from tests.sync.helpers import (
    NOW,
    current_content,
    database_digest,
    event_ids,
    folder_digest,
    lake_digest,
    lake_event_ids,
    page,
    row_counts,
)


@pytest.fixture
def lakes(tmp_path: Path) -> Iterator[list[Lake]]:
    opened = [Lake.init(tmp_path / name) for name in ("a", "b", "c")]
    yield opened
    for lake in opened:
        lake.close()


def test_union_both_ways_and_a_second_sync_changes_nothing(lakes: list[Lake], sql_url: str, sql_schema: str,
                                                           tmp_path: Path) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    a.append([page("Ada", 1, 1), page("Bea", 1, 1)])
    b.append([page("Cy", 1, 2), page("Dee", 1, 2)])
    first = a.sync(**options)
    assert (first.to_sql, first.to_json, first.full_reconciliation) == (2, 0, True)
    second = b.sync(**options)
    assert (second.to_sql, second.to_json) == (2, 2)
    third = a.sync(**options)
    assert (third.to_sql, third.to_json) == (0, 2)
    assert not b.sync(**options).changed and not a.sync(**options).changed
    assert sorted(lake_event_ids(a)) == sorted(lake_event_ids(b)) == sorted(event_ids(sql_url, sql_schema))
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path) == database_digest(sql_url, sql_schema)


def test_a_capture_ingested_by_two_lakes_is_one_observation(lakes: list[Lake], sql_url: str, sql_schema: str,
                                                            tmp_path: Path) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    shared = [page("Ada", 1, 1), page("Bea", 2, 3)]
    a.append(shared)
    b.append([*shared, page("Cy", 1, 1)])
    a.sync(**options)
    result = b.sync(**options)
    assert (result.to_sql, result.shared) == (1, 2)
    a.sync(**options)
    assert len(event_ids(sql_url, sql_schema)) == 3 == len(lake_event_ids(a)) == len(lake_event_ids(b))
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path) == database_digest(sql_url, sql_schema)


def test_a_shared_observation_met_by_the_push_pass_alone_is_counted(lakes: list[Lake], sql_url: str,
                                                                     sql_schema: str) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    a.append([page("Ada", 1, 1)])
    a.sync(**options)
    b.append([page("Ada", 1, 1), page("Bea", 1, 1)])
    assert b.sync(direction="sql_to_json", **options).shared == 1
    # The database's copy is behind b's pull watermark now: only the push pass meets it.
    result = b.sync(**options)
    assert (result.to_sql, result.to_json, result.shared) == (1, 0, 1)


def test_one_exchange_id_with_two_contents_is_an_integrity_error_and_nothing_is_written(
        lakes: list[Lake], sql_url: str, sql_schema: str) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    a.append([page("Ada", 1, 1)])
    a.sync(**options)
    altered = dict(page("Ada", 2, 1), exchange_id=next(iter(lake_event_ids(a))))
    b.append([altered, page("Bea", 1, 1)])
    before, log_before = row_counts(sql_url, sql_schema), lake_event_ids(b)
    with pytest.raises(IntegrityError, match=r"this lake.s log holds .* the database holds"):
        b.sync(**options)
    assert row_counts(sql_url, sql_schema) == before and lake_event_ids(b) == log_before


def _diverge(a: Lake, b: Lake, options: dict[str, str]) -> tuple[str, str]:
    """Both lakes agree on Ada rev 1, then each observes a different new version; returns (a's, b's) hashes."""
    a.append([page("Ada", 1, 1)])
    a.sync(**options)
    b.sync(**options)
    a.append([page("Ada", 2, 5)])  # newer
    b.append([page("Ada", 3, 4)])
    b.sync(**options)  # the database now has b's version
    return content_sha256(page("Ada", 2, 5)), content_sha256(page("Ada", 3, 4))


@pytest.mark.parametrize(("strategy", "expected"), [("prefer_newest", 0), ("prefer_json", 0), ("prefer_sql", 1)])
def test_strategies_decide_once_and_the_decision_travels(lakes: list[Lake], sql_url: str, sql_schema: str,
                                                         tmp_path: Path, strategy: str, expected: int) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    versions = _diverge(a, b, options)
    result = a.sync(conflict=strategy, **options)  # type: ignore[arg-type]
    (conflict,) = result.conflicts
    assert conflict.natural_key == "Ada" and conflict.winner == versions[expected]
    assert {item.content_sha256 for item in conflict.candidates} == set(versions)
    assert result.resolutions == 1 and result.projection is not None
    b.sync(**options)
    # Settled: never reported again, whatever the strategy of later runs, and the winner stays.
    for later in ("prefer_sql", "prefer_json", "prefer_newest", "fail"):
        for lake in (a, b):
            again = lake.sync(conflict=later, **options)  # type: ignore[arg-type]
            assert again.conflicts == () and not again.changed
    digests = {lake_digest(a, tmp_path), lake_digest(b, tmp_path), database_digest(sql_url, sql_schema)}
    assert len(digests) == 1
    assert current_content(sql_url, sql_schema, "Ada") == versions[expected]


def test_fail_stops_before_any_write(lakes: list[Lake], sql_url: str, sql_schema: str) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    _diverge(a, b, options)
    a.append([page("Bea", 1, 1)])
    before, folder = row_counts(sql_url, sql_schema), folder_digest(a.root / "log" / "segments")
    with pytest.raises(ConflictError) as caught:
        a.sync(conflict="fail", **options)
    assert caught.value.exit_code == 9 and len(caught.value.conflicts) == 1
    assert row_counts(sql_url, sql_schema) == before
    assert folder_digest(a.root / "log" / "segments") == folder
    assert a.sync(conflict="prefer_json", **options).resolutions == 1


def test_dry_run_writes_nothing_and_its_plan_is_what_the_run_does(lakes: list[Lake], sql_url: str,
                                                                   sql_schema: str) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    _diverge(a, b, options)
    a.append([page("Bea", 1, 1), page("Cy", 2, 2)])
    counts, folder = row_counts(sql_url, sql_schema), folder_digest(a.root)
    plan = a.sync(dry_run=True, **options)
    assert row_counts(sql_url, sql_schema) == counts and folder_digest(a.root) == folder
    done = a.sync(**options)
    assert plan.dry_run and not done.dry_run
    assert (plan.to_sql, plan.to_json, plan.resolutions, plan.keys_touched, plan.conflicts) == (
        done.to_sql, done.to_json, done.resolutions, done.keys_touched, done.conflicts)
    assert (plan.to_sql, plan.to_json, len(plan.conflicts)) == (4, 2, 1)


def test_dry_run_on_a_database_without_tables_creates_none(lakes: list[Lake], tmp_path: Path) -> None:
    a = lakes[0]
    a.append([page("Ada", 1, 1)])
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    plan = a.sync(dry_run=True, database_url=url)
    assert (plan.to_sql, plan.to_json) == (1, 0)
    assert not (tmp_path / "fresh.db").exists() or row_counts(url, "lake")["ExchangeEvent"] == 0


def test_the_database_projection_follows_its_tables_incrementally_whichever_lake_syncs(
        lakes: list[Lake], sql_url: str, sql_schema: str, tmp_path: Path) -> None:
    a, b, _ = lakes
    options = {"database_url": sql_url, "schema": sql_schema}
    a.append([page("Ada", 1, 1)])
    first = a.sync(**options)
    assert first.projection is not None and first.projection.mode == "rebuild"
    b.append([page("Bea", 1, 1), page("Ada", 2, 2)])
    one_way = b.sync(direction="json_to_sql", **options)
    # b's log lacks a's events, but the table is the projection of the tables: both lakes' events, incrementally.
    assert one_way.projection is not None and one_way.projection.mode == "incremental"
    # Both lakes changed Ada since they (never) agreed: a conflict, decided for the newer version.
    assert (one_way.to_sql, one_way.to_json, one_way.resolutions) == (3, 0, 1)
    assert current_content(sql_url, sql_schema, "Ada") == content_sha256(page("Ada", 2, 2))
    a.sync(**options)
    assert lake_digest(a, tmp_path) == database_digest(sql_url, sql_schema)
    # A plain reprojection from b follows the tables too; the library's log reprojection refuses such a table.
    assert b.reproject(**options).mode == "incremental"
    assert database_digest(sql_url, sql_schema) == lake_digest(a, tmp_path)
    # `check` compares the rows with the checkpoint's digest there as well: a row changed in place is rebuilt.
    assert b.reproject(check=True, **options).mode == "incremental"
    with SqlEventStore(sql_url, schema=sql_schema) as store, store.begin() as conn:
        record = attach(store).record
        conn.execute(record.update().values(observation_count=record.c.observation_count + 1))
    checked = b.reproject(check=True, **options)
    assert checked.mode == "rebuild" and checked.reason is not None and "state digest" in checked.reason
    assert database_digest(sql_url, sql_schema) == lake_digest(a, tmp_path)
    with SqlEventStore(sql_url, schema=sql_schema) as store, pytest.raises(InputError, match="eventlog sync"):
        reproject(b.log, store, now=NOW)
    assert b.reproject(rebuild=True, **options).mode == "rebuild"  # asked for: b's log alone
    assert a.sync(**options).projection.mode == "rebuild"  # type: ignore[union-attr]
    assert database_digest(sql_url, sql_schema) == lake_digest(a, tmp_path)
