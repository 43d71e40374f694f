"""One nesting limit, checked at append: a record is refused there with a sentence, or every reader and every
SQL backend takes it (append, verify, log, mirror, reproject)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventlog import Lake
from eventlog.errors import InputError
from eventlog.format.nesting import MAX_DEPTH, nesting_depth
from tests.factories import page_record

FIXED = datetime(2025, 1, 1, tzinfo=UTC)


def _nested(depth: int, kind: str) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if (kind == "list" or (kind == "mixed" and level % 2)) else {"k": value}
    return value


# Every kind of value a record may hold, at the edges the SQL backends and readers care about.
VALUE_KINDS: dict[str, Any] = {
    "integers beyond 2**53": [2**53 + 1, -(2**63), 10**30],
    "floats": [0.1, 1e300, -0.0, 5e-324],
    "unicode": ["Zürich", "東京", "\U0001f600", "\u2028", "tab\tand\nnewline"],
    "empty containers": [[], {}, ""],
    "literals": [None, True, False],
    "long text": "x" * 100_000,
    "many keys": {f"k{n}": n for n in range(2000)},
}


@pytest.mark.parametrize("depth", [1, 2, 10, 100, MAX_DEPTH - 2, MAX_DEPTH + 1, 500, 979, 1000, 5000, 100_000])
def test_depths_are_refused_at_append_or_work_everywhere(tmp_path: Path, sql_url: str, sql_schema: str,
                                                         depth: int) -> None:
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        record = {**page_record("Deep", 1), "response": _nested(depth, "mixed")}
        if depth > MAX_DEPTH:
            with pytest.raises(InputError, match="nest"):  # the limit, or past it the encoder's own refusal
                lake.append([record])
            assert lake.log.last_seq == 0
            return
        lake.append([record])
        _every_reader_takes_it(lake, sql_url, sql_schema)


def test_every_value_kind_works_everywhere(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        lake.append([{**page_record(f"Kind {name}", 1), "response": {"value": value}}
                     for name, value in VALUE_KINDS.items()])
        _every_reader_takes_it(lake, sql_url, sql_schema)


def _every_reader_takes_it(lake: Lake, sql_url: str, sql_schema: str) -> None:
    assert lake.verify().ok
    events = list(lake.events())
    assert events
    assert lake.mirror(database_url=sql_url, schema=sql_schema).watermark == lake.log.last_seq
    result = lake.reproject(database_url=sql_url, schema=sql_schema)
    assert result.position == lake.log.last_seq
    assert lake.verify_projection(database_url=sql_url, schema=sql_schema).ok
    assert lake.reindex() == lake.log.last_seq


def test_nesting_depth_counts_without_recursion() -> None:
    assert nesting_depth("x") == 0
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    assert nesting_depth(_nested(100_000, "list"), limit=10) == 11
