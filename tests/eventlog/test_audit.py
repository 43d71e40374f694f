"""Audit over real lakes: history with the version current after each event, provenance, diffs between versions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from eventlog import InputError, Lake, NotFoundError, SegmentPolicy
from eventlog.app.audit import diff, history, provenance
from eventlog.cold.keys import Keys, SymmetricKey
from eventlog.cold.reader import format_archive_name
from eventlog.format.envelope import content_sha256, format_utc
from eventlog.format.events import new_resolution
from eventlog.log.segments import format_seal_name, format_segment_name
from projections.tables import attach
from tests.factories import BASE_TIME, page_record

MANUAL = SegmentPolicy(max_events=0, max_bytes=0, max_age_seconds=0)
RECORDED = datetime(2024, 6, 1, tzinfo=BASE_TIME.tzinfo)
PROVENANCE = {"runner": "nightly", "host": "ingest-1", "git_sha": "0123abcd", "connector_version": "2.1"}
KEY = ("wikipedia-en", "page", "Foo")


class Clock:
    """The lake's clock, moved by the test: recorded_at_utc is whatever it says at append time."""

    def __init__(self) -> None:
        self.now = RECORDED

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> None:
        self.now += timedelta(days=1)


def at(hours: int) -> datetime:
    return BASE_TIME + timedelta(hours=hours)


def revision(number: int, hours: int, **extra: Any) -> dict[str, Any]:
    return {**page_record("Foo", number, observed=at(hours)), "provenance": PROVENANCE, **extra}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lake(tmp_path: Path, clock: Clock) -> Iterator[Lake]:
    """Foo: r1 observed 13:00, r3 observed 15:00, then r2 observed 14:00 but recorded last, then r1 again at 17:00."""
    with Lake.init(tmp_path / "lake", segment_policy=MANUAL, clock=clock) as lake:
        for record in (revision(1, 1), revision(3, 3), revision(2, 2), revision(1, 5)):
            lake.append([record])
            clock.advance()
        lake.append([page_record("Bar", 1)])
        yield lake


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Lake]:
    with Lake.init(tmp_path / "empty", segment_policy=MANUAL) as lake:
        yield lake


def hashes() -> dict[int, str]:
    return {number: content_sha256(page_record("Foo", number)) for number in (1, 2, 3)}


def test_history_rows_in_observed_order_with_the_version_current_after_each(lake: Lake) -> None:
    h = hashes()
    result = history(lake, *KEY)
    assert [(row.seq, row.type, row.content_sha256) for row in result.rows] == [
        (1, "observed", h[1]), (3, "observed", h[2]), (2, "observed", h[3]), (4, "revisited", h[1])]
    # r2 was observed before r3 but recorded after it: it never became current.
    assert [row.current_after for row in result.rows] == [h[1], h[3], h[3], h[1]]
    assert [row.made_current for row in result.rows] == [True, False, True, True]
    assert result.current == h[1]
    first = result.rows[0]
    assert first.observed_at_utc == format_utc(at(1)) and first.recorded_at_utc == format_utc(RECORDED)
    assert first.provenance == PROVENANCE and first.origin == lake.config.replica_id
    assert result.rows[3].recorded_at_utc == format_utc(RECORDED + timedelta(days=3))
    assert result.resolutions == ()


def test_history_in_log_order(lake: Lake) -> None:
    result = history(lake, *KEY, order="log")
    assert [row.seq for row in result.rows] == [1, 2, 3, 4]
    assert result.order == "log"


def test_versions_have_current_periods_in_observed_time(lake: Lake) -> None:
    h = hashes()
    versions = {version.content_sha256: version for version in history(lake, *KEY).versions}
    assert list(versions) == [h[1], h[2], h[3]]
    r1, r2, r3 = versions[h[1]], versions[h[2]], versions[h[3]]
    assert r1.observations == 2 and r1.current and not r2.current and not r3.current
    assert (r1.first_seq, r1.first_observed_at_utc, r1.last_observed_at_utc) == (1, format_utc(at(1)),
                                                                                 format_utc(at(5)))
    assert [(p.current_from_utc, p.current_until_utc) for p in r1.periods] == [
        (format_utc(at(1)), format_utc(at(2))), (format_utc(at(5)), None)]
    assert [(p.current_from_utc, p.current_until_utc) for p in r2.periods] == [(format_utc(at(2)), format_utc(at(3)))]
    assert [(p.current_from_utc, p.current_until_utc) for p in r3.periods] == [(format_utc(at(3)), format_utc(at(5)))]


def test_a_tie_in_observed_time_goes_to_the_larger_content_hash(empty: Lake) -> None:
    lake = empty
    one, two = revision(1, 1), revision(2, 1)
    low, high = sorted([content_sha256(one), content_sha256(two)])
    # The larger hash first, so the smaller one arrives last and still does not win.
    lake.append([one if content_sha256(one) == high else two])
    lake.append([two if content_sha256(one) == high else one])
    result = history(lake, *KEY, order="log")
    assert [row.current_after for row in result.rows] == [high, high]
    versions = {version.content_sha256: version for version in result.versions}
    assert versions[low].periods == () and len(versions[high].periods) == 1


def test_recorded_resolutions_apply_as_recorded(lake: Lake, clock: Clock) -> None:
    h = hashes()
    body = {"scope": "wikipedia-en/page", "natural_key": "Foo", "winner": h[3], "strategy": "prefer_sql",
            "candidates": [h[1], h[3]]}
    other = {**body, "natural_key": "Bar"}
    for resolution_body in (body, other):
        lake.log.append_events([new_resolution(body=resolution_body, origin=lake.config.replica_id,
                                               recorded_at_utc=format_utc(clock.now))])
    result = history(lake, *KEY)
    assert len(result.resolutions) == 1
    resolution = result.resolutions[0]
    assert (resolution.winner, resolution.strategy, resolution.candidates) == (h[3], "prefer_sql", (h[1], h[3]))
    assert resolution.current_after == h[3] and result.current == h[3]
    # A resolution naming content this key never had changes nothing.
    stray = {**body, "winner": "ab" * 32, "candidates": [h[3], "ab" * 32]}
    lake.log.append_events([new_resolution(body=stray, origin=lake.config.replica_id,
                                           recorded_at_utc=format_utc(clock.now))])
    again = history(lake, *KEY)
    assert again.current == h[3] and again.resolutions[-1].current_after == h[3]
    # An observation newer than the winner's still takes over afterwards.
    lake.append([revision(4, 9)])
    assert history(lake, *KEY).current == content_sha256(page_record("Foo", 4))


def test_the_current_version_agrees_with_the_projection(lake: Lake, clock: Clock) -> None:
    h = hashes()
    lake.log.append_events([new_resolution(
        body={"scope": "wikipedia-en/page", "natural_key": "Foo", "winner": h[2], "strategy": "prefer_json",
              "candidates": [h[1], h[2]]}, origin=lake.config.replica_id, recorded_at_utc=format_utc(clock.now))])
    lake.append([revision(5, 1)])  # older than the winner: stays behind it
    lake.reproject()
    with lake.sql_store() as store, store.engine.connect() as conn:
        record = attach(store).record
        projected = conn.execute(sa.select(record.c.content_sha256).where(
            record.c.source_system == "wikipedia-en", record.c.natural_key == "Foo")).scalar_one()
    assert projected == history(lake, *KEY).current
    assert projected == h[2]


def test_history_of_an_unknown_key_is_not_found(lake: Lake) -> None:
    with pytest.raises(NotFoundError, match="no observation of wikipedia-en/page/Nope"):
        history(lake, "wikipedia-en", "page", "Nope")


# -- provenance -----------------------------------------------------------------------------------------------------


def test_provenance_of_an_observation_in_the_active_segment(empty: Lake) -> None:
    lake = empty
    secret = revision(1, 1, request={"method": "GET", "url": "https://example.org/x",
                                     "headers": {"Authorization": "Bearer abc.def.ghi"}})
    lake.append([secret])
    row = history(lake, *KEY).rows[0]
    report = provenance(lake, row.exchange_id.upper())
    assert report.exchange_id == row.exchange_id and report.type == "observed" and report.seq == 1
    assert report.payload == "inline" and report.first_observation is None
    assert report.provenance == PROVENANCE and report.redactions_applied
    assert "request" not in report.envelope and "response" not in report.envelope
    assert report.envelope["redactions_applied"] == list(report.redactions_applied)
    assert report.content_sha256 == row.content_sha256 and report.origin == lake.config.replica_id
    assert len(report.digest) == 64 and len(report.prev) == 64
    placement = report.placement
    assert (placement.segment, placement.state, placement.seal, placement.archive) == (
        format_segment_name(1), "active", None, None)
    assert placement.offset == 0 and placement.length > 0


def test_provenance_of_a_revisit_names_the_first_observation_and_its_sealed_segment(lake: Lake) -> None:
    assert lake.seal() is not None
    rows = history(lake, *KEY, order="log").rows
    report = provenance(lake, rows[3].exchange_id)
    assert report.type == "revisited" and report.payload == "revisit"
    assert report.first_observation is not None
    assert (report.first_observation.exchange_id, report.first_observation.seq) == (rows[0].exchange_id, 1)
    assert report.placement.state == "sealed"
    assert report.placement.segment == format_segment_name(1, 5)
    assert report.placement.seal == format_seal_name(1, 5) and report.placement.sealed_at_utc is not None


def test_provenance_of_an_evicted_segment_names_its_archive(tmp_path: Path) -> None:
    key = SymmetricKey.generate()
    Lake.init(tmp_path / "lake", segment_policy=MANUAL).close()
    with Lake.open(tmp_path / "lake", keys=Keys(key=key)) as lake:
        lake.append([revision(1, 1)])
        lake.seal()
        lake.archive(keys=Keys(key=key), evict=True)
        report = provenance(lake, history(lake, *KEY).rows[0].exchange_id)
    assert report.placement.state == "evicted"
    assert report.placement.archive == f"archive/{format_archive_name(1, 1)}"


def test_provenance_of_an_unknown_exchange_is_not_found(lake: Lake) -> None:
    with pytest.raises(NotFoundError, match="exchange 00000000-0000-0000-0000-000000000000 is not in the lake"):
        provenance(lake, "00000000-0000-0000-0000-000000000000")


# -- diff -----------------------------------------------------------------------------------------------------------


def test_diff_defaults_to_the_previous_and_the_current_version(lake: Lake) -> None:
    h = hashes()
    result = diff(lake, *KEY)
    # Current is r1 (observed again at 17:00); the most recently observed other version is r3.
    assert (result.from_version.content_sha256, result.to_version.content_sha256) == (h[3], h[1])
    assert [(c.op, c.path, c.old, c.new) for c in result.changes] == [
        ("changed", "$.response.body.content", "Foo revision 3", "Foo revision 1"),
        ("changed", "$.response.body.revid", 3, 1)]
    assert (result.added, result.removed, result.changed) == (0, 0, 2)


def test_diff_refs_by_prefix_exchange_id_and_keyword(lake: Lake) -> None:
    h = hashes()
    rows = history(lake, *KEY, order="log").rows
    result = diff(lake, *KEY, from_ref=h[2][:8].upper(), to_ref=rows[1].exchange_id)
    assert (result.from_version.content_sha256, result.to_version.content_sha256) == (h[2], h[3])
    assert result.to_version.exchange_id == rows[1].exchange_id
    same = diff(lake, *KEY, from_ref="current", to_ref=h[1])
    assert same.changes == () and same.from_version == same.to_version
    assert diff(lake, *KEY, from_ref="current", to_ref="previous").to_version.content_sha256 == h[3]


def response_record(key: str, response: Any, hours: int, request: Any = None) -> dict[str, Any]:
    return {"exchange_type": "http", "source_system": "api", "entity_type": "doc", "natural_key": key,
            "observed_at_utc": at(hours).isoformat(), "request": request or {"url": "https://example.org/doc"},
            "response": response}


def test_diff_is_structural_with_json_paths_aligned_arrays_and_text_diffs(empty: Lake) -> None:
    lake = empty
    old_text = "\n".join(f"line {n}" for n in range(10))
    new_text = old_text.replace("line 5", "line five")
    old = {"status": 200, "body": {"tags": ["a", "b", "c"], "flag": 1, "gone": {"x": 1}, "we ird": "k",
                                   "text": old_text, "items": [{"id": 1}, {"id": 2}], "kind": [1]}}
    new = {"status": 200, "body": {"tags": ["z", "a", "b", "c"], "flag": True, "we ird": "K", "text": new_text,
                                   "items": [{"id": 1}, {"id": 3}], "kind": {"a": 1}, "fresh": None}}
    lake.append([response_record("d1", old, 1), response_record("d1", new, 2)])
    result = diff(lake, "api", "doc", "d1")
    summary = [(change.op, change.path) for change in result.changes]
    assert summary == [
        ("changed", "$.response.body.flag"),
        ("added", "$.response.body.fresh"),
        ("removed", "$.response.body.gone"),
        ("changed", "$.response.body.items[1].id"),
        ("changed", "$.response.body.kind"),
        ("added", "$.response.body.tags[0]"),
        ("changed", "$.response.body.text"),
        ("changed", '$.response.body["we ird"]'),
    ]
    changes = {change.path: change for change in result.changes}
    assert (changes["$.response.body.flag"].old, changes["$.response.body.flag"].new) == (1, True)
    assert changes["$.response.body.fresh"].new is None
    assert changes["$.response.body.gone"].old == {"x": 1}
    assert changes["$.response.body.tags[0]"].new == "z"
    text = changes["$.response.body.text"]
    assert (text.old_length, text.new_length) == (len(old_text), len(new_text))
    assert text.text_diff is not None and "-line 5" in text.text_diff and "+line five" in text.text_diff
    assert text.text_diff[0].startswith("@@")
    assert (result.added, result.removed, result.changed) == (2, 1, 5)
    assert diff(lake, "api", "doc", "d1") == result


def test_diff_of_the_request_part(empty: Lake) -> None:
    lake = empty
    lake.append([response_record("d", {"n": 1}, 1, request={"url": "a"}),
                 response_record("d", {"n": 1}, 2, request={"url": "b"})])
    assert diff(lake, "api", "doc", "d").changes == ()
    assert [(c.path, c.old, c.new) for c in diff(lake, "api", "doc", "d", part="all").changes] == [
        ("$.request.url", "a", "b")]
    assert diff(lake, "api", "doc", "d", part="request").changed == 1


def colliding_revisions() -> tuple[int, int]:
    """Two revisions of Foo whose content hashes share their first four hex digits."""
    seen: dict[str, int] = {}
    for number in itertools.count(1):
        prefix = content_sha256(page_record("Foo", number))[:4]
        if prefix in seen:
            return seen[prefix], number
        seen[prefix] = number
    raise AssertionError("unreachable")


def test_diff_ref_errors(lake: Lake) -> None:
    bar = history(lake, "wikipedia-en", "page", "Bar").rows[0].exchange_id
    missing = next(prefix for prefix in ("ffffffff", "eeeeeeee")
                   if not any(value.startswith(prefix) for value in hashes().values()))
    with pytest.raises(NotFoundError, match="no version of wikipedia-en/page/Foo has a content hash starting"):
        diff(lake, *KEY, from_ref=missing)
    with pytest.raises(InputError, match="--to 'newest' is not a content hash prefix"):
        diff(lake, *KEY, to_ref="newest")
    with pytest.raises(InputError, match="too short"):
        diff(lake, *KEY, from_ref="abc")
    with pytest.raises(InputError, match=f"exchange {bar} is not an observation of wikipedia-en/page/Foo"):
        diff(lake, *KEY, from_ref=bar)
    with pytest.raises(NotFoundError, match="exchange 00000000-0000-0000-0000-000000000001 is not in the lake"):
        diff(lake, *KEY, from_ref="00000000-0000-0000-0000-000000000001")
    with pytest.raises(NotFoundError, match="Bar has one version"):
        diff(lake, "wikipedia-en", "page", "Bar")


def test_an_ambiguous_prefix_lists_its_matches(empty: Lake) -> None:
    first, second = colliding_revisions()
    lake = empty
    lake.append([page_record("Foo", first), page_record("Foo", second)])
    prefix = content_sha256(page_record("Foo", first))[:4]
    with pytest.raises(InputError, match=f"--from '{prefix}' is ambiguous: it starts 2 versions") as caught:
        diff(lake, *KEY, from_ref=prefix)
    assert caught.value.exit_code == 3
