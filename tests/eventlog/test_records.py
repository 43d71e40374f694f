"""The optional C assembly of log lines gives, byte for byte, what its pure-Python equivalents give.

Without a C compiler or OpenSSL's headers the module is not built and these tests are skipped, unless
EVENTLOG_TEST_REQUIRE_SPEEDUPS is set (CI sets it), under which a missing module is a failure.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import CanonicalError, Lake, SegmentPolicy, extensions
from eventlog.format.envelope import ExchangeRecord, ResponseRef, decode_record, format_utc
from eventlog.format.events import encode_observation, line_hash
from eventlog.log import writer as log_module
from eventlog.log.index import IndexEntry, lookup_key
from eventlog.log.prepare import Prepared, prepare
from eventlog.log.seals import MerkleTree
from eventlog.redaction.redactor import Redactor
from tests.extensions import require
from tests.factories import openalex_record, page_record

_records = require("records")


@contextmanager
def python_path() -> Iterator[None]:
    """Within it, the log takes its pure-Python path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extensions, "records", None)
        yield


# Names with every kind of character JSON escapes or leaves as is.
names = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\b\f\n\r\t\x00\x1f\x7f\u2028é😀'),
                min_size=1, max_size=12)
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False) \
    | names
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4), max_leaves=12)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                  timezone(timedelta(hours=-11))]))
uuids = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
records = st.builds(
    ExchangeRecord,
    source_system=names, entity_type=names, observed_at_utc=moments,
    exchange_type=st.sampled_from(["http", "mediawiki", "openalex", "llm", "file", "generic"]),
    exchange_id=st.none() | uuids, natural_key=st.none() | names, request=json_values, response=json_values,
    provenance=st.dictionaries(names, json_values, max_size=3), tags=st.lists(names, max_size=3).map(tuple),
    redactions_applied=st.lists(names, max_size=2).map(tuple), schema_version=st.integers(1, 3),
    content_sha256=st.none() | st.sampled_from(["0" * 64]),
    response_ref=st.none() | st.builds(ResponseRef, uri=names, sha256=st.none() | st.sampled_from(["a" * 64]),
                                       size_bytes=st.none() | st.integers(0, 2**40), media_type=st.none() | names))


def both_ways(record: ExchangeRecord, redactor: Redactor) -> tuple[Prepared, Prepared]:
    fast = prepare(record, redactor)
    with python_path():
        slow = prepare(record, redactor)
    return fast, slow


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records)
def test_prepare_in_c_equals_prepare_in_python(record: ExchangeRecord) -> None:
    fast, slow = both_ways(record, Redactor())
    assert fast == slow


def test_prepare_of_example_records_and_secrets_equals_python() -> None:
    redactor = Redactor()
    secret = {"url": "https://api.example.org/?api_key=abc", "headers": {"Authorization": "Bearer abc.def.ghi"}}
    examples = [openalex_record(n) for n in range(20)] + [page_record(f"P{n}", n) for n in range(5)] + [
        {**openalex_record(1), "request": secret, "exchange_id": "6F1D3B0E-8C1A-5C53-9A53-2F0E6B7C4D21"}]
    for example in examples:
        fast, slow = both_ways(decode_record(example), redactor)
        assert fast == slow


def test_prepare_of_secrets_in_every_field_equals_python() -> None:
    """The other fields are redacted before either path runs: both write the same redacted envelope."""
    token = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
    redactor = Redactor()
    record = decode_record({**openalex_record(1), "natural_key": f"https://api.example/x?api_key={token}",
                            "provenance": {"ci_token": token}, "tags": [f"key {token}"],
                            "response_ref": {"uri": f"https://u:{token}@h.example/b"}})
    fast, slow = both_ways(record, redactor)
    assert fast == slow and fast.redacted
    envelope = fast.head + fast.tail + fast.request_json + fast.response_json
    assert token.encode() not in envelope and fast.key is not None and token not in fast.key
    assert b'"$.natural_key","$.provenance.ci_token","$.response_ref.uri","$.tags[0]"' in fast.head


def test_a_lone_surrogate_in_a_name_is_refused_as_the_python_path_refuses_it() -> None:
    record = decode_record({**openalex_record(1), "entity_type": "work\ud800"})
    with pytest.raises(UnicodeEncodeError):
        _records.prepare_record(record, b"{}", b"{}", [], False)
    with pytest.raises(CanonicalError) as fast:
        prepare(record, Redactor())
    with python_path(), pytest.raises(CanonicalError) as slow:
        prepare(record, Redactor())
    assert str(fast.value) == str(slow.value)


def test_prepare_record_refuses_bad_arguments() -> None:
    record = decode_record(openalex_record(1))
    with pytest.raises(TypeError, match="request_json must be bytes, not str"):
        _records.prepare_record(record, "{}", b"{}", [], False)
    with pytest.raises(TypeError, match=r"takes 5 arguments \(4 given\)"):
        _records.prepare_record(record, b"{}", b"{}", [])  # type: ignore[call-arg]
    with pytest.raises(AttributeError, match="observed_at_utc"):
        _records.prepare_record(object(), b"{}", b"{}", [], False)
    with pytest.raises(TypeError, match="prepared_type a tuple subclass"):
        _records.set_helpers(len, len, str, str, b"", dict)  # type: ignore[arg-type]


def python_chunk(batch: list[Prepared], kinds: bytes, origin: str, recorded: str, seq: int, prev: str,
                 segment: int, offset: int) -> tuple[bytes, list[tuple[Any, ...]], bytes, str]:
    """What the log's Python path writes for a chunk: lines, index rows with their keys, leaves, last hash."""
    lines, rows, leaves = [], [], b""
    for n, (p, kind) in enumerate(zip(batch, kinds, strict=True)):
        event_type = "observed" if kind else "revisited"
        line, digest = encode_observation(event_type=event_type, event_id=p.exchange_id, envelope_head=p.head,
                                          envelope_tail=p.tail, request_json=p.request_json,
                                          response_json=p.response_json, origin=origin, recorded_at_utc=recorded,
                                          seq=seq + n, prev=prev)
        entry = IndexEntry(seq + n, p.exchange_id, event_type, digest, p.content_sha256, p.key, p.observed_at_utc,
                           segment, offset, len(line))
        rows.append((*entry, lookup_key(p.exchange_id), lookup_key(p.content_sha256)))
        prev = line_hash(line)
        leaves += bytes.fromhex(prev)
        offset += len(line) + 1
        lines.append(line)
    return b"".join(line + b"\n" for line in lines), rows, leaves, prev


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chosen=st.lists(records, max_size=6), data=st.data(), seq=st.integers(1, 10**15),
       segment=st.integers(1, 10**6), offset=st.integers(0, 10**9),
       prev=st.binary(min_size=32, max_size=32).map(bytes.hex), origin=uuids,
       recorded=moments.map(format_utc))
def test_encode_chunk_equals_the_python_lines(chosen: list[ExchangeRecord], data: st.DataObject, seq: int,
                                              segment: int, offset: int, prev: str, origin: str,
                                              recorded: str) -> None:
    batch = [prepare(record, Redactor()) for record in chosen]
    kinds = bytes(data.draw(st.lists(st.integers(0, 1), min_size=len(batch), max_size=len(batch))))
    got = _records.encode_chunk(batch, kinds, origin, recorded, seq, prev, segment, offset)
    assert got == python_chunk(batch, kinds, origin, recorded, seq, prev, segment, offset)


def test_encode_chunk_refuses_bad_arguments() -> None:
    p = prepare(decode_record(openalex_record(1)), Redactor())
    good: list[Any] = [[p], b"\x01", "origin", "2025-01-01T00:00:00.000000Z", 1, "0" * 64, 1, 0]
    assert _records.encode_chunk(*good)[3] != "0" * 64
    cases: list[tuple[int, object, type[Exception], str]] = [
        (0, (p,), TypeError, "batch must be a list"),
        (0, [("not", "prepared")], TypeError, "item 0 of the batch is not a Prepared record"),
        (0, [p._replace(head="text")], TypeError, "head must be bytes, not str"),
        (0, [p._replace(content_sha256=None)], TypeError, "item 0 of the batch has no content hash"),
        (1, b"", ValueError, "observed has 0 flags for 1 records"),
        (5, "0" * 63, ValueError, "prev must be a hash of 64 hex digits"),
        (4, "1", TypeError, "cannot be interpreted as an integer"),
        (2, None, TypeError, "origin must be a str, not NoneType"),
    ]
    for position, value, error, message in cases:
        arguments = list(good)
        arguments[position] = value
        with pytest.raises(error, match=message):
            _records.encode_chunk(*arguments)
    with pytest.raises(TypeError, match=r"takes 8 arguments \(7 given\)"):
        _records.encode_chunk(*good[:7])
    with pytest.raises(UnicodeEncodeError):
        _records.encode_chunk([p._replace(exchange_id="\udc00")], b"\x01", "o", "r", 1, "0" * 64, 1, 0)


@settings(max_examples=200, deadline=None)
@given(before=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
       added=st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_merkle_extend_equals_adding_leaves_one_by_one(before: list[bytes], added: list[bytes]) -> None:
    fast, slow = MerkleTree(), MerkleTree()
    for leaf in before:
        fast.add(leaf)
    with python_path():
        for leaf in before + added:
            slow.add(leaf)
    fast.extend(b"".join(added))
    assert (fast.count, fast.root()) == (slow.count, slow.root())


def test_merkle_extend_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="leaves must be 32-byte hashes"):
        _records.merkle_extend([], b"x" * 33)
    with pytest.raises(TypeError, match="stack items must be"):
        _records.merkle_extend([(1, b"short")], b"x" * 32)
    with pytest.raises(TypeError, match="stack must be a list"):
        _records.merkle_extend((), b"")


@settings(max_examples=300, deadline=None)
@given(moment=moments)
def test_format_utc_in_c_equals_python(moment: datetime) -> None:
    in_utc = moment.astimezone(UTC)
    assert _records.format_utc(in_utc) == format_utc(in_utc) == format_utc(moment)
    if moment.tzinfo is not UTC:
        assert _records.format_utc(moment) is None  # the Python path converts it
    assert _records.format_utc(moment.replace(tzinfo=None)) is None
    assert _records.format_utc(moment.date()) is None


@given(text=st.text())
def test_lookup_key_in_c_equals_python(text: str) -> None:
    try:
        expected = lookup_key(text)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            _records.lookup_key(text)
        return
    assert _records.lookup_key(text) == expected


def lake_files(root: Path) -> dict[str, bytes]:
    log = root / "log"
    files = {str(path.relative_to(log)): path.read_bytes()
             for folder in ("segments", "seals") for path in sorted((log / folder).iterdir())}
    with closing(sqlite3.connect(log / "index.sqlite")) as db:
        files["index rows"] = repr(db.execute("SELECT * FROM events ORDER BY seq").fetchall()).encode()
    return files


def test_a_lake_appended_in_c_equals_one_appended_in_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments, seals and index rows, over sealing within a call, revisits, a second call and repeats."""
    monkeypatch.setattr(log_module, "CHUNK", 5)  # so that calls seal between chunks

    def build(root: Path) -> dict[str, bytes]:
        moment = datetime(2025, 3, 1, tzinfo=UTC)
        with Lake.init(root, replica_id="8d5e2a8c-2f6b-4a44-9a3e-0f3f5c1b7a10", clock=lambda: moment,
                       segment_policy=SegmentPolicy(max_events=7)) as lake:
            first = [openalex_record(n) for n in range(12)] + [page_record(f"P{n}", n) for n in range(3)]
            revisits = [{**openalex_record(n), "observed_at_utc": "2025-02-01T00:00:00+01:00"} for n in range(4)]
            lake.append(first + revisits)
            lake.append([openalex_record(n) for n in range(20)])
            lake.seal()
        return lake_files(root)

    fast = build(tmp_path / "c")
    with python_path():
        slow = build(tmp_path / "python")
    assert list(fast) == list(slow)
    assert len([name for name in fast if name.startswith("seals")]) >= 3
    assert fast == slow

