"""The segment log through the Lake facade: appends, identity, sealing, recovery, index, reading."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import CanonicalError, EnvelopeError, IntegrityError, Lake, LakeError, SegmentPolicy, extensions
from eventlog.format.canonical import canonical_json
from eventlog.format.events import GENESIS, Event, decode_line, encode_event, line_hash
from eventlog.log import tally as tally_module
from eventlog.log import writer as log_module
from eventlog.log.index import COLUMNS, lookup_key
from eventlog.log.segments import format_segment_name, list_segments
from projections.log_source import IndexReader
from tests.factories import openalex_record, page_record


class Clock:
    """An injected clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture
def lake(tmp_path: Path, clock: Clock) -> Lake:
    with Lake.init(tmp_path / "lake", clock=clock) as opened:
        yield opened


def log_bytes(lake: Lake) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for _, path in list_segments(lake.root / "log" / "segments")}


def test_append_counts_and_reads_back_in_order(lake: Lake) -> None:
    records = [page_record("Ada", revision) for revision in range(3)]
    result = lake.append(records)
    assert (result.observed, result.revisited, result.already_present) == (3, 0, 0)
    assert (result.first_seq, result.last_seq) == (1, 3)
    events = list(lake.events())
    assert [event.seq for event in events] == [1, 2, 3]
    assert [event.body["response"]["body"]["revid"] for event in events] == [0, 1, 2]
    assert events[0].prev == GENESIS
    raw = (lake.root / "log" / "segments" / format_segment_name(1)).read_bytes().splitlines()
    assert events[1].prev == line_hash(raw[0]) and events[2].prev == line_hash(raw[1])


def test_replaying_the_same_captures_adds_nothing(lake: Lake) -> None:
    records = [openalex_record(n) for n in range(20)]
    lake.append(records)
    before = log_bytes(lake)
    again = lake.append(records)
    assert (again.observed, again.revisited, again.already_present) == (0, 0, 20)
    assert again.first_seq is None
    assert log_bytes(lake) == before


def test_same_content_observed_later_is_a_revisit_without_payload(lake: Lake) -> None:
    first = page_record("Ada", 1, observed=datetime(2024, 1, 1, tzinfo=UTC))
    later = page_record("Ada", 1, observed=datetime(2024, 2, 1, tzinfo=UTC))
    result = lake.append([first, later])
    assert (result.observed, result.revisited) == (1, 1)
    observed, revisited = lake.events()
    assert revisited.type == "revisited"
    assert "request" not in revisited.body and "response" not in revisited.body
    assert revisited.content_sha256 == observed.content_sha256
    shown = lake.get(revisited.event_id)
    assert shown is not None and shown.body["response"] == observed.body["response"]


def test_one_call_over_several_chunks_remembers_earlier_chunks(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append call keeps only its current chunk in memory; the index answers for the chunks before it."""
    monkeypatch.setattr(log_module, "CHUNK", 3)
    records = [page_record("Ada", revision) for revision in range(6)]
    again = page_record("Ada", 1)  # the same exchange, three chunks on
    later = page_record("Ada", 2, observed=datetime(2024, 3, 1, tzinfo=UTC))  # the same content, observed later
    result = lake.append([*records, again, later, again])
    assert (result.observed, result.revisited, result.already_present) == (6, 1, 2)
    assert [event.type for event in lake.events()] == ["observed"] * 6 + ["revisited"]

    exchange_id = "1b4e28ba-2fa1-4d2b-9c1e-000000000002"
    before = log_bytes(lake)
    mixed = [dict(page_record("Bea", 1), exchange_id=exchange_id), *(page_record("Cy", n) for n in range(4)),
             dict(page_record("Bea", 2), exchange_id=exchange_id)]
    with pytest.raises(IntegrityError, match=exchange_id):
        lake.append(mixed)
    assert log_bytes(lake) == before


def test_a_stated_hash_of_the_content_before_redaction_is_no_mismatch(lake: Lake) -> None:
    from eventlog.format.envelope import content_sha256, decode_record

    record = page_record("Ada", 1)
    record["request"]["headers"] = {"Authorization": "Bearer abcdef0123456789"}
    record["exchange_id"] = "00000000-0000-4000-8000-000000000001"
    agreeing = dict(record, content_sha256=content_sha256(decode_record(record)))
    disagreeing = dict(record, exchange_id="00000000-0000-4000-8000-000000000002", content_sha256="0" * 64)
    result = lake.append([agreeing, disagreeing])
    assert (result.redacted, result.hash_mismatches) == (2, ("00000000-0000-4000-8000-000000000002",))


def test_hash_mismatches_are_counted_and_the_first_listed(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tally_module, "MAX_LISTED_MISMATCHES", 2)
    records = [dict(page_record("Ada", revision), content_sha256="0" * 64) for revision in range(5)]
    result = lake.append([*records, page_record("Bea", 1)])
    assert result.hash_mismatch_count == 5
    assert list(result.hash_mismatches) == [event.event_id for event in lake.events()][:2]


def test_content_hash_ignores_everything_but_content(lake: Lake) -> None:
    a = page_record("Ada", 1)
    b = dict(page_record("Ada", 1), provenance={"runner": "other"}, tags=["x"],
             observed_at_utc="2030-01-01T00:00:00+05:00")
    lake.append([a, b])
    first, second = lake.events()
    assert first.content_sha256 == second.content_sha256
    assert second.body["observed_at_utc"] == "2029-12-31T19:00:00.000000Z"


def test_exchange_id_reused_for_other_content_is_refused_and_nothing_written(lake: Lake) -> None:
    exchange_id = "1b4e28ba-2fa1-4d2b-9c1e-000000000001"
    lake.append([dict(page_record("Ada", 1), exchange_id=exchange_id)])
    before = log_bytes(lake)
    with pytest.raises(IntegrityError, match=exchange_id):
        lake.append([page_record("Bea", 1), dict(page_record("Ada", 2), exchange_id=exchange_id)])
    assert log_bytes(lake) == before
    assert lake.log.index.last_seq() == 1


def test_bad_record_rolls_back_the_whole_call(lake: Lake) -> None:
    lake.append([page_record("Ada", 1)])
    before = log_bytes(lake)

    def records():  # the bad record comes after a full chunk has already been written
        for n in range(2500):
            yield openalex_record(n)
        yield dict(page_record("Bea", 1), observed_at_utc="2024-01-01T00:00:00")

    with pytest.raises(EnvelopeError, match=r"record 2501, at \$\.observed_at_utc: the timestamp is naive"):
        lake.append(records())
    assert log_bytes(lake) == before
    assert lake.log.index.last_seq() == 1
    result = lake.append([page_record("Bea", 1)])
    assert result.first_seq == 2
    assert lake.verify().ok


def test_oversized_payload_is_refused(tmp_path: Path) -> None:
    with Lake.init(tmp_path / "lake") as lake:
        big = page_record("Big", 1, body="x" * (17 * 1024 * 1024))
        with pytest.raises(EnvelopeError, match=r"over the 16,777,216-byte limit.*response_ref"):
            lake.append([big])
        assert list(lake.events()) == []


def test_seal_on_demand_writes_a_seal_chain(lake: Lake) -> None:
    lake.append([page_record("Ada", n) for n in range(3)])
    assert lake.seal() == f"{1:020d}-{3:020d}"
    assert lake.seal() is None
    lake.append([page_record("Bea", n) for n in range(2)])
    lake.seal()
    seals = sorted((lake.root / "log" / "seals").iterdir())
    assert [path.name for path in seals] == [f"{1:020d}-{3:020d}.json", f"{4:020d}-{5:020d}.json"]
    first, second = (json.loads(path.read_bytes()) for path in seals)
    assert first["prev_seal_sha256"] == GENESIS and first["count"] == 3
    import hashlib
    assert second["prev_seal_sha256"] == hashlib.sha256(seals[0].read_bytes()).hexdigest()
    assert second["first_prev"] == first["last_line_hash"]
    report = lake.verify()
    assert report.ok, report.problems
    assert (report.events, report.seals) == (5, 2)


def test_policy_seals_by_count_size_and_age(tmp_path: Path, clock: Clock) -> None:
    policy = SegmentPolicy(max_events=4, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "count", segment_policy=policy, clock=clock) as lake:
        for n in range(10):
            lake.append([openalex_record(n)])
        names = [name.label for name, _ in list_segments(lake.root / "log" / "segments")]
        assert names == [f"{1:020d}-{4:020d}", f"{5:020d}-{8:020d}", f"{9:020d}"]
    policy = SegmentPolicy(max_events=0, max_bytes=5000, max_age_seconds=0)
    with Lake.init(tmp_path / "size", segment_policy=policy, clock=clock) as lake:
        results = [lake.append([openalex_record(n)]) for n in range(6)]
        assert any(result.sealed for result in results)
        assert lake.verify().ok
    policy = SegmentPolicy(max_events=0, max_bytes=0, max_age_seconds=3600)
    with Lake.init(tmp_path / "age", segment_policy=policy, clock=clock) as lake:
        assert not lake.append([openalex_record(1)]).sealed
        clock.advance(minutes=59)
        assert not lake.append([openalex_record(2)]).sealed
        clock.advance(minutes=2)
        assert lake.append([openalex_record(3)]).sealed == (f"{1:020d}-{3:020d}",)


def seal_files(lake: Lake) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (lake.root / "log" / "seals").iterdir()}


def test_one_large_call_seals_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`eventlog ingest` appends all its inputs in one call; the policy still holds, to within one chunk."""
    monkeypatch.setattr(log_module, "CHUNK", 3)
    policy = SegmentPolicy(max_events=5, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy) as lake:
        result = lake.append([openalex_record(n) for n in range(20)])
        labels = [f"{1:020d}-{6:020d}", f"{7:020d}-{12:020d}", f"{13:020d}-{18:020d}"]
        assert result.sealed == tuple(labels)
        names = [name.label for name, _ in list_segments(lake.root / "log" / "segments")]
        assert names == [*labels, f"{19:020d}"]
        report = lake.verify()
        assert report.ok and (report.events, report.seals) == (20, 3)


def test_chunks_are_cut_by_payload_bytes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large records (long pages) make small chunks: memory and segment sizes follow bytes, not only counts."""
    monkeypatch.setattr(log_module, "CHUNK_BYTES", 1)  # every record is a chunk of its own
    policy = SegmentPolicy(max_events=3, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy) as lake:
        records = [page_record("Ada", revision) for revision in range(8)]
        result = lake.append([*records, records[2]])
        assert (result.observed, result.already_present) == (8, 1)
        assert result.sealed == (f"{1:020d}-{3:020d}", f"{4:020d}-{6:020d}")
        assert lake.verify().ok


def test_events_from_another_replica_are_chunked_by_bytes_too(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Lake.init(tmp_path / "a") as source:
        source.append([page_record("Ada", revision) for revision in range(8)])
        events = list(source.events())
    monkeypatch.setattr(log_module, "CHUNK_BYTES", 1)  # every event is a chunk of its own
    policy = SegmentPolicy(max_events=3, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "b", segment_policy=policy) as target:
        assert target.log.append_events([*events, events[2]]) == 8
        assert sorted(seal_files(target)) == [f"{1:020d}-{3:020d}.json", f"{4:020d}-{6:020d}.json"]
        assert [event.event_id for event in target.events()] == [event.event_id for event in events]
        assert target.verify().ok


def test_a_failed_call_undoes_the_seals_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module, "CHUNK", 3)
    policy = SegmentPolicy(max_events=5, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy) as lake:
        lake.append([page_record("Ada", revision) for revision in range(7)])  # 1-6 sealed within the call
        lake.append([page_record("Bea", revision) for revision in range(2)])  # 7-9 active
        # The failing call seals 7-12, the segment active at its start, then 13-18 and 19-24, begins 25.
        segments, seals = log_bytes(lake), seal_files(lake)

        def records():  # three seals' worth of good records, then a bad one
            yield from (openalex_record(n) for n in range(16))
            yield dict(page_record("Cy", 1), observed_at_utc="2024-01-01T00:00:00")

        with pytest.raises(EnvelopeError, match=r"record 17, at \$\.observed_at_utc"):
            lake.append(records())
        assert (log_bytes(lake), seal_files(lake)) == (segments, seals)
        assert lake.log.index.last_seq() == 9
        assert lake.append([page_record("Cy", 1)]).first_seq == 10
        assert lake.verify().ok

    with Lake.open(tmp_path / "lake") as lake:  # the same from a state with no active segment
        lake.seal()
        segments, seals = log_bytes(lake), seal_files(lake)
        with pytest.raises(EnvelopeError, match=r"record 17"):
            lake.append(records())
        assert (log_bytes(lake), seal_files(lake)) == (segments, seals)
        assert lake.verify().ok


@pytest.mark.parametrize("assembly", ["C", "Python"])
def test_an_index_insert_failing_while_the_chunk_is_written_leaves_nothing(
        tmp_path: Path, assembly: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index takes a chunk's rows while the I/O thread writes its bytes: when the index fails, the rollback
    waits for the write before it cuts the segment back, or the write would land after the cut."""
    if assembly == "Python":
        monkeypatch.setattr(extensions, "records", None)
    with Lake.init(tmp_path / "lake") as lake:
        lake.append([openalex_record(n) for n in range(5)])
        before = log_bytes(lake)
        with closing(sqlite3.connect(lake.root / "log" / "index.sqlite")) as db:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq = 6 "
                       "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
            db.commit()
        records = [openalex_record(n) for n in range(5, 2000)]  # about 4 MB in one chunk
        write = log_module.EventLog._write_data

        def late_write(self: log_module.EventLog, data: bytes, fsync: bool) -> None:
            time.sleep(0.3)  # the index fails first
            write(self, data, fsync)

        monkeypatch.setattr(log_module.EventLog, "_write_data", late_write)
        with pytest.raises(sqlite3.IntegrityError, match="refused by the test"):
            lake.append(records)
        monkeypatch.setattr(log_module.EventLog, "_write_data", write)
        left = [thread for thread in threading.enumerate() if thread.name == "eventlog-write"]
        for thread in left:
            thread.join()
        assert not left, "the call returned before its write ended"
        assert log_bytes(lake) == before
        assert lake.log.index.last_seq() == 5
        with closing(sqlite3.connect(lake.root / "log" / "index.sqlite")) as db:
            db.execute("DROP TRIGGER refuse")
            db.commit()
        assert lake.append(records).first_seq == 6
        assert lake.verify().ok
    with Lake.open(tmp_path / "lake") as lake:
        assert lake.log.last_seq == 2000
        assert lake.verify().ok


FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    from eventlog import Lake
    from tests.factories import openalex_record
    lake = Lake.open(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    try:
        lake.append([openalex_record(n) for n in range(5, 2000)])
    except OSError as error:
        print(error.errno)
    lake.close()
""")


def test_no_thread_outlives_a_call(lake: Lake) -> None:
    """A large chunk is written on a thread of its own, which ends before the call returns: a process that forks
    between calls leaves its child no write in flight and no thread to wait for."""
    before = threading.active_count()
    seen: list[str] = []
    write = log_module.EventLog._write_data

    def noting_write(self: log_module.EventLog, data: bytes, fsync: bool) -> None:
        seen.append(threading.current_thread().name)
        write(self, data, fsync)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_module.EventLog, "_write_data", noting_write)
        lake.append([openalex_record(n) for n in range(2000)])  # threaded: about 4 MB
        lake.append([openalex_record(2000)])  # inline: one record
    assert seen == ["eventlog-write", threading.current_thread().name]
    assert threading.active_count() == before


def test_a_segment_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    """A real write error (the process's file-size limit) on the I/O thread reaches the caller, and the call is
    rolled back as a whole."""
    with Lake.init(tmp_path / "lake") as lake:
        lake.append([openalex_record(n) for n in range(5)])
        before = log_bytes(lake)
    limit = max(len(data) for data in before.values()) + 100_000  # the index's files stay under it
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(tmp_path / "lake"), str(limit)],
                          capture_output=True, text=True, env=env, cwd=root, check=True)
    assert done.stdout.strip() == str(errno.EFBIG), done.stderr
    with Lake.open(tmp_path / "lake") as lake:
        assert log_bytes(lake) == before
        assert lake.log.last_seq == 5
        assert lake.verify().ok
        assert lake.append([openalex_record(n) for n in range(5, 2000)]).first_seq == 6


def test_recorded_time_comes_from_the_injected_clock(lake: Lake, clock: Clock) -> None:
    lake.append([page_record("Ada", 1)])
    clock.advance(days=2)
    lake.append([page_record("Ada", 2)])
    assert [event.recorded_at_utc for event in lake.events()] == [
        "2025-01-01T00:00:00.000000Z", "2025-01-03T00:00:00.000000Z"]


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root) as lake:
        lake.append([page_record("Ada", n) for n in range(3)])
    active = root / "log" / "segments" / format_segment_name(1)
    whole = active.read_bytes()
    with open(active, "ab") as handle:
        handle.write(b'{"body":{"content_sha256":"ab')
    with Lake.open(root) as lake:
        assert active.read_bytes() == whole
        assert lake.verify().ok
        assert lake.append([page_record("Ada", 9)]).first_seq == 4
        assert lake.verify().ok


def test_renamed_but_unsealed_segment_gets_its_seal_on_open(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root) as lake:
        lake.append([page_record("Ada", n) for n in range(3)])
        lake.seal()
    seal = root / "log" / "seals" / f"{1:020d}-{3:020d}.json"
    seal.unlink()
    with Lake.open(root) as lake:
        assert seal.exists()
        assert lake.verify().ok


def test_index_is_rebuilt_when_lost_and_caught_up_when_behind(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root) as lake:
        lake.append([openalex_record(n) for n in range(30)])
        wanted = [event.event_id for event in lake.events()]
    for name in os.listdir(root / "log"):
        if name.startswith("index.sqlite"):
            os.unlink(root / "log" / name)
    with Lake.open(root) as lake:
        assert lake.log.index.last_seq() == 30
        assert all(lake.get(event_id) is not None for event_id in wanted)
        assert lake.reindex() == 30
        again = lake.append([openalex_record(n) for n in range(30)])
        assert again.already_present == 30


# log/index.sqlite as the first release wrote it: text indexes on the event id and the content hash.
INDEX_V1 = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    digest TEXT NOT NULL, content_sha256 TEXT, exchange_key TEXT, observed_at_utc TEXT, segment INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL);
CREATE INDEX events_content ON events (content_sha256);
CREATE INDEX events_key ON events (exchange_key);
"""


def lake_of_thirty(tmp_path: Path) -> tuple[Path, list[str]]:
    """A lake of 30 events and their ids."""
    root = tmp_path / "lake"
    with Lake.init(root) as lake:
        lake.append([openalex_record(n) for n in range(30)])
        return root, [event.event_id for event in lake.events()]


def reopened_after_upgrade(root: Path, wanted: list[str]) -> list[tuple[object, ...]]:
    """Open the lake (which upgrades its index), check the index serves it and has this version's keys; returns
    its rows."""
    with Lake.open(root) as lake:
        assert all(lake.get(event_id) is not None for event_id in wanted)
        assert lake.append([openalex_record(n) for n in range(30)]).already_present == 30
    with closing(sqlite3.connect(root / "log" / "index.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert [name for name, in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["events"]
        keys = db.execute("SELECT event_id, event_key, content_sha256, content_key FROM events").fetchall()
        upgraded = db.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
    assert len(keys) == 30
    assert all(key == lookup_key(event_id) and content_key == lookup_key(content)
               for event_id, key, content, content_key in keys)
    return upgraded


def test_an_index_of_the_first_version_is_upgraded_in_place(tmp_path: Path) -> None:
    root, wanted = lake_of_thirty(tmp_path)
    path = root / "log" / "index.sqlite"
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
    for name in os.listdir(root / "log"):
        if name.startswith("index.sqlite"):
            os.unlink(root / "log" / name)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(INDEX_V1)
        db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        # A rebuild from the segments would not keep this value; an upgrade in place does.
        db.execute("UPDATE events SET observed_at_utc = 'kept' WHERE seq = 7")
        db.commit()
    upgraded = reopened_after_upgrade(root, wanted)
    assert upgraded == [row if row[0] != 7 else (*row[:6], "kept", *row[7:]) for row in rows]


def test_an_index_of_the_second_version_gets_its_keys_again_in_place(tmp_path: Path) -> None:
    root, wanted = lake_of_thirty(tmp_path)
    with closing(sqlite3.connect(root / "log" / "index.sqlite")) as db:
        rows = db.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
        # Version 2 took its keys from BLAKE2b.
        db.create_function("blake2b_key", 1, lambda text: int.from_bytes(
            hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True))
        db.execute("UPDATE events SET event_key = blake2b_key(event_id), content_key = blake2b_key(content_sha256)")
        db.execute("UPDATE events SET observed_at_utc = 'kept' WHERE seq = 7")
        db.execute("PRAGMA user_version = 2")
        db.commit()
    upgraded = reopened_after_upgrade(root, wanted)
    assert upgraded == [row if row[0] != 7 else (*row[:6], "kept", *row[7:]) for row in rows]


def test_an_index_newer_than_this_release_is_refused_in_one_sentence(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root).close()
    with closing(sqlite3.connect(root / "log" / "index.sqlite")) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(LakeError, match=r"index\.sqlite is version 9 of the index, newer than this release reads "
                                        r"\(3\); use a release that reads it, or delete the file"):
        Lake.open(root)


def test_index_lookups_check_the_full_text_behind_a_shared_key(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root) as lake:
        lake.append([openalex_record(1), openalex_record(2)])
        first, second = list(lake.events())
    assert second.content_sha256 != first.content_sha256
    # Give the second event the first one's keys, as a collision of their SHA-256 prefixes would.
    with closing(sqlite3.connect(root / "log" / "index.sqlite")) as db:
        db.execute("UPDATE events SET event_key = ?, content_key = ? WHERE seq = 2",
                   (lookup_key(first.event_id), lookup_key(first.content_sha256 or "")))
        db.commit()
    with Lake.open(root) as lake:
        index = lake.log.index
        assert index.known_events([first.event_id]) == {first.event_id: (first.digest, first.content_sha256)}
        assert index.known_contents([first.content_sha256 or ""]) == {first.content_sha256}
        entry = index.by_exchange_id(first.event_id)
        payload = index.first_payload(first.content_sha256 or "")
        assert entry is not None and payload is not None and entry.seq == payload.seq == 1
        with IndexReader(lake.log) as reader:
            assert reader.first_seqs([first.content_sha256 or ""], observed_by=None) == {first.content_sha256: 1}
            assert [event.seq for event in reader.observations_of(first.content_sha256 or "", before_seq=9)] == [1]


def test_events_after_seq_skips_earlier_segments(tmp_path: Path) -> None:
    with Lake.init(tmp_path / "lake", segment_policy=SegmentPolicy(max_events=5)) as lake:
        for start in range(0, 23, 4):
            lake.append([openalex_record(n) for n in range(start, start + 4)])
        assert [event.seq for event in lake.events(after_seq=17)] == list(range(18, 25))
        assert [event.seq for event in lake.events(after_seq=24)] == []


def test_history_lists_every_observation_of_a_key(lake: Lake) -> None:
    lake.append([page_record("Ada", 1), page_record("Bea", 1), page_record("Ada", 2),
                 page_record("Ada", 1, observed=datetime(2024, 9, 1, tzinfo=UTC))])
    history = lake.history("wikipedia-en", "page", "Ada")
    assert [event.type for event in history] == ["observed", "observed", "revisited"]


def test_lines_are_canonical_and_decode(lake: Lake) -> None:
    from eventlog.format.canonical import canonical_json

    lake.append([openalex_record(n) for n in range(5)])
    for _, path in list_segments(lake.root / "log" / "segments"):
        for line in path.read_bytes().splitlines():
            assert canonical_json(json.loads(line)) == line
            assert decode_line(line).origin == lake.config.replica_id


def test_init_refuses_an_existing_lake_and_open_refuses_a_missing_one(tmp_path: Path) -> None:
    from eventlog import LakeError

    Lake.init(tmp_path / "lake").close()
    with pytest.raises(LakeError, match="already a lake"):
        Lake.init(tmp_path / "lake")
    with pytest.raises(LakeError, match=r"lake\.json is missing"):
        Lake.open(tmp_path / "elsewhere")


def test_hand_written_envelope_equals_canonical_json_of_every_field(lake: Lake) -> None:
    from eventlog.format.canonical import canonical_json

    full = dict(page_record("Zürich \"Süd\"\n", 1, source="wikipedia-\u00e9\U0001F600"),
                tags=["b", "a", "ü"], provenance={"runner": "r", "nested": {"z": 1, "a": [1.5, None]}},
                response_ref={"uri": "s3://bucket/o", "sha256": "a" * 64, "size_bytes": 12},
                redactions_applied=["$.request.headers.X"], schema_version=3)
    bare = dict(page_record("Ada", 1), natural_key=None)
    lake.append([full, bare])
    for line in (lake.root / "log" / "segments" / f"{1:020d}.active.ndjson").read_bytes().splitlines():
        assert canonical_json(json.loads(line)) == line
    first, second = lake.events()
    assert first.body["tags"] == ["b", "a", "ü"] and first.body["response_ref"]["size_bytes"] == 12
    assert second.body["natural_key"] is None


def test_readers_never_see_lines_of_a_batch_that_is_not_acknowledged(lake: Lake) -> None:
    lake.append([page_record("Ada", n) for n in range(3)])
    seen_mid_batch: list[int] = []

    def records():
        for n in range(2500):  # more than one chunk: the first 2,000 lines are on disk before this fails
            yield openalex_record(n)
        seen_mid_batch.extend(event.seq for event in lake.events())
        yield dict(page_record("Bea", 1), observed_at_utc="2024-01-01T00:00:00")

    with pytest.raises(EnvelopeError):
        lake.append(records())
    assert lake.log.segments_dir.joinpath(format_segment_name(1)).stat().st_size > 0
    assert seen_mid_batch == [1, 2, 3]
    assert [event.seq for event in lake.events()] == [1, 2, 3]


def test_seal_gathered_while_writing_equals_a_seal_computed_by_reading(tmp_path: Path, clock: Clock) -> None:
    from eventlog.log.seals import compute_seal, read_seal
    from eventlog.log.segments import SegmentName

    with Lake.init(tmp_path / "lake", clock=clock) as lake:
        lake.append([page_record("Ada", n, observed=datetime(2024, 1, 10 - n, tzinfo=UTC)) for n in range(5)])
        clock.advance(hours=1)
        lake.append([openalex_record(n) for n in range(7)])
        label = lake.seal()
    assert label is not None
    path = tmp_path / "lake" / "log" / "segments" / f"{label}.ndjson"
    written, _ = read_seal(tmp_path / "lake" / "log" / "seals" / f"{label}.json")
    computed = compute_seal(path, SegmentName(1, 12), prev_seal_sha256=written.prev_seal_sha256,
                            sealed_at_utc=written.sealed_at_utc)
    assert written.to_bytes() == computed.to_bytes()
    assert (written.observed_from_utc, written.recorded_to_utc) == (
        "2024-01-06T00:00:00.000000Z", "2025-01-01T01:00:00.000000Z")


def test_events_from_another_replica_keep_their_identity(tmp_path: Path, clock: Clock) -> None:
    import msgspec

    from eventlog.format.events import event_digest

    with Lake.init(tmp_path / "a", clock=clock) as source:
        source.append([page_record("Ada", n) for n in range(3)])
        events = list(source.events())
    with Lake.init(tmp_path / "b") as target:
        target.append([page_record("Bea", 1)])
        assert target.log.append_events(events) == 3
        assert target.log.append_events(events) == 0
        copied = list(target.events())[1:]
        assert [(e.event_id, e.digest, e.origin, e.recorded_at_utc) for e in copied] == [
            (e.event_id, e.digest, e.origin, e.recorded_at_utc) for e in events]
        assert [e.seq for e in copied] == [2, 3, 4]
        assert all(event_digest(e) == e.digest for e in copied)
        forged = msgspec.structs.replace(events[0], digest="0" * 64)
        before = log_bytes(target)
        with pytest.raises(IntegrityError, match="refusing to merge it"):
            target.log.append_events([forged])
        assert log_bytes(target) == before
        assert target.verify().ok


# Strings with what JSON escapes and what it leaves as is, and JSON values made of them.
names = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\b\f\n\r\t\x00\x1f\x7f\u2028é😀'), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False) | names,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(body=st.dictionaries(names, json_values, max_size=4), texts=st.lists(names, min_size=5, max_size=5),
       seq=st.integers(1, 2**70), kind=st.sampled_from(["observed", "revisited", "resolved"]))
def test_a_spliced_event_line_is_the_canonical_json_of_the_line(body: dict[str, Any], texts: list[str], seq: int,
                                                                kind: str) -> None:
    event_id, digest, origin, prev, recorded = texts
    event = Event(type=kind, event_id=event_id, seq=0, recorded_at_utc=recorded,  # type: ignore[arg-type]
                  origin=origin, prev="", digest=digest, body=body)
    whole = canonical_json({"body": body, "digest": digest, "event_id": event_id, "origin": origin, "prev": prev,
                            "recorded_at_utc": recorded, "seq": seq, "type": kind})
    assert encode_event(event, seq=seq, prev=prev) == whole
    assert encode_event(event, seq=seq, prev=prev, body_json=canonical_json(body)) == whole


def test_a_spliced_event_line_names_the_field_it_cannot_encode() -> None:
    event = Event(type="resolved", event_id="a\udc00", seq=0, recorded_at_utc="r", origin="o", prev="", digest="d",
                  body={})
    with pytest.raises(CanonicalError) as raised:
        encode_event(event, seq=1, prev="p")
    assert raised.value.path == "$.event_id"
