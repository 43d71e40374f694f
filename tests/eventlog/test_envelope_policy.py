"""The envelope policy as a property: any envelope is refused at append with one sentence, or every reader and
every SQL backend takes it (verify, the log's events, mirror, reproject, a rebuild compared row by row, reindex).

Envelopes are generated whole: identity text of any characters and length (NUL and lone surrogates included),
observed times with any offset in years 1 to 9999, payloads of every JSON kind (integers beyond 64 bits, floats at
their edges, any Unicode text and key) nested from 1 to 100,000 levels, provenance and tags. One lake per backend
takes the examples one after the other, so each accepted example is read back beside all that came before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventlog import Lake
from eventlog.errors import InputError

LEAVES = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
          | st.floats(allow_nan=False, allow_infinity=False)
          | st.text(st.characters(codec=None, exclude_categories=()), max_size=12))
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(st.characters(exclude_categories=()), max_size=6), inner, max_size=4),
                    max_leaves=16)
SHORT_NAMES = st.text(st.characters(exclude_categories=()), min_size=1, max_size=8)
LONG_NAMES = st.text(min_size=195, max_size=205)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                     timezones=OFFSETS)


PLAIN: dict[str, Any] = {"source_system": "s", "entity_type": "e", "observed_at_utc": "2024-01-01T00:00:00Z",
                         "request": {}, "response": {}}


def _nest(value: Any, depth: int) -> Any:
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    # Most draws are plain, so that most examples reach the readers; one in ten is at or past a limit.
    depth = draw(st.sampled_from([0, 1, 5, 50, 500, 950])) if draw(st.integers(0, 9)) else draw(
        st.sampled_from([975, 990, 2000, 100_000]))
    source, entity = (draw(SHORT_NAMES) if draw(st.integers(0, 9)) else draw(LONG_NAMES) for _ in range(2))
    record: dict[str, Any] = {
        "source_system": source, "entity_type": entity,
        "exchange_type": draw(st.sampled_from(["http", "mediawiki", "openalex", "llm", "file", "generic"])),
        "natural_key": draw(st.none() | st.text(st.characters(exclude_categories=()), max_size=20)),
        "observed_at_utc": draw(TIMES).isoformat(),
        "request": draw(JSON), "response": _nest(draw(JSON), depth),
    }
    if draw(st.booleans()):
        record["provenance"] = draw(st.dictionaries(st.text(max_size=6), JSON, max_size=3))
    if draw(st.booleans()):
        record["tags"] = draw(st.lists(st.text(st.characters(exclude_categories=()), max_size=8), max_size=3))
    return record


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with Lake.init(tmp_path / "lake") as opened:
        yield opened


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(envelopes(), min_size=1, max_size=2))
@example(batch=[{**PLAIN, "observed_at_utc": "9999-12-31T23:59:59.999999-01:00"}])  # past year 9999 in UTC
@example(batch=[{**PLAIN, "response": {"\ud800": 1}}])  # a lone surrogate in a key
@example(batch=[{**PLAIN, "natural_key": "\U0001f600\u2028\x00"}])
@example(batch=[{**PLAIN, "response": [2**64, -(2**63) - 1, 5e-324, -0.0, "\x7f\u0085\ufeff"]}])
def test_every_envelope_is_refused_at_append_or_read_everywhere(lake: Lake, sql_url: str, sql_schema: str,
                                                                batch: list[dict[str, Any]]) -> None:
    before = lake.log.last_seq
    try:
        lake.append(batch)
    except InputError as refused:
        message = str(refused)
        assert message and "\n" not in message and "Traceback" not in message
        assert lake.log.last_seq == before, "a refused append wrote something"
        return
    report = lake.verify()
    assert report.ok, report.problems
    assert sum(1 for _ in lake.events()) == lake.log.last_seq
    assert lake.mirror(database_url=sql_url, schema=sql_schema).watermark == lake.log.last_seq
    assert lake.reproject(database_url=sql_url, schema=sql_schema).position == lake.log.last_seq
    checked = lake.verify_projection(database_url=sql_url, schema=sql_schema)
    assert checked.ok, checked.problems
    assert lake.reindex() == lake.log.last_seq
