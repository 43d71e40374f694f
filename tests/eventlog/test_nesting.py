"""Nesting and size at append: a record is refused there with a sentence, or every reader and every SQL backend takes
it (append, verify, log, mirror, reproject, reindex). The canonical encoder refuses what CPython's stack cannot hold;
a record is refused whose SQL row would be over the smallest default packet of the supported servers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventlog import Lake
from eventlog.errors import InputError
from eventlog.format.envelope import MAX_SQL_ROW_BYTES, sql_row_problem
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


# Sizes at append: a record whose SQL row would not fit every supported server's default packet (MariaDB's
# 16 MiB max_allowed_packet, quotes and backslashes escaped) is refused there; one just within it works everywhere.
@pytest.mark.slow
def test_the_largest_row_the_log_takes_works_everywhere(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        lake.append([{**page_record("Large", 1), "response": "x" * (MAX_SQL_ROW_BYTES - 4096)}])
        _every_reader_takes_it(lake, sql_url, sql_schema)


def test_a_row_no_server_takes_by_default_is_refused_at_append(tmp_path: Path) -> None:
    # 6 MiB of quotes: 12 MiB of JSON, within the payload limit, but 24 MiB once the SQL text protocol escapes it.
    quotes = '"' * (6 * 1024 * 1024)
    with Lake.init(tmp_path / "lake", clock=lambda: FIXED) as lake:
        lake.append([page_record("Small", 1)])
        with pytest.raises(InputError) as refused:
            lake.append([page_record("Other", 1), {**page_record("Quotes", 1), "response": quotes}])
        assert str(refused.value).startswith("record 2, at $: the exchange takes 25,1"), str(refused.value)
        assert "max_allowed_packet" in str(refused.value) and "response_ref" in str(refused.value)
        assert lake.log.last_seq == 1
        assert lake.verify().ok


def test_the_row_bound_counts_what_the_text_protocol_escapes() -> None:
    assert sql_row_problem((b"x" * (MAX_SQL_ROW_BYTES // 2),)) is None
    assert sql_row_problem((b"x" * MAX_SQL_ROW_BYTES,)) is None
    assert sql_row_problem((b"x" * (MAX_SQL_ROW_BYTES + 1),)) is not None
    half = MAX_SQL_ROW_BYTES // 2
    assert sql_row_problem((b"\\" * half, b"'" * (MAX_SQL_ROW_BYTES - 2 * half))) is None
    assert sql_row_problem((b'"' * (half + 1),)) is not None
