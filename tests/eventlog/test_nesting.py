"""Nesting at append: a record is refused there with a sentence, or every reader and every SQL backend takes it
(append, verify, log, mirror, reproject, reindex). The canonical encoder refuses what CPython's stack cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventlog import Lake
from eventlog.errors import InputError
from tests.factories import page_record

FIXED = datetime(2025, 1, 1, tzinfo=UTC)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
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


@pytest.mark.parametrize("depth", [1, 2, 10, 100, 500, 900, 960, 975, 979, 985, 1000, 5000, 100_000])
def test_depths_are_refused_at_append_or_work_everywhere(tmp_path: Path, sql_url: str, sql_schema: str,
                                                         depth: int) -> None:
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        record = {**page_record("Deep", 1), "response": _nested(depth)}
        try:
            lake.append([record])
        except InputError as refused:
            assert "nest" in str(refused)
            assert lake.log.last_seq == 0
            assert depth > 100, "refused a depth that real data reaches"
            return
        _every_reader_takes_it(lake, sql_url, sql_schema)


def test_every_value_kind_works_everywhere(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        lake.append([{**page_record(f"Kind {name}", 1), "response": {"value": value}}
                     for name, value in VALUE_KINDS.items()])
        _every_reader_takes_it(lake, sql_url, sql_schema)


def _every_reader_takes_it(lake: Lake, sql_url: str, sql_schema: str) -> None:
    assert lake.verify().ok
    assert list(lake.events())
    assert lake.mirror(database_url=sql_url, schema=sql_schema).watermark == lake.log.last_seq
    assert lake.reproject(database_url=sql_url, schema=sql_schema).position == lake.log.last_seq
    assert lake.verify_projection(database_url=sql_url, schema=sql_schema).ok
    assert lake.reindex() == lake.log.last_seq
