"""Lost acknowledged events are noticed and reported, never cut or written over; a torn unacknowledged tail is cut.

The lake's head (log/head.json) records the last acknowledged event. Each case damages a copy of one lake the way a
careless copy, a full disk or a bad restore would, and checks that verify fails, that no append reuses a seq, and
that the mirror and the projection stop with a sentence instead of copying around a gap.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog import Lake, SegmentPolicy
from eventlog.errors import IntegrityError
from eventlog.format.events import line_hash
from eventlog.log.head import HEAD_NAME, Head, encode_head, read_head
from eventlog.log.segments import list_segments
from projections.tables import attach
from tests.factories import page_record

FIXED = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Events 1-8 in two sealed segments of four, 9-10 in the active one; mirrored and projected to seq 10."""
    root = tmp_path_factory.mktemp("loss") / "lake"
    policy = SegmentPolicy(max_events=4, max_bytes=0, max_age_seconds=0)
    with Lake.init(root, segment_policy=policy, clock=lambda: FIXED) as lake:
        for start in range(0, 10, 2):
            lake.append([page_record(f"Page {start + n}", 1) for n in range(2)])
        lake.mirror()
        lake.reproject()
        assert lake.verify().ok
    return root


@pytest.fixture
def lake_copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "lake"
    shutil.copytree(pristine, target)
    return target


def _segments(root: Path) -> list[Path]:
    return [path for _, path in list_segments(root / "log" / "segments")]


def _cut_active_to_lines(root: Path, keep: int) -> None:
    active = _segments(root)[-1]
    lines = active.read_bytes().splitlines(keepends=True)
    active.write_bytes(b"".join(lines[:keep]))


def _delete_active(root: Path) -> None:
    _segments(root)[-1].unlink()


def _delete_newest_sealed_with_seal(root: Path) -> None:
    _segments(root)[-1].unlink()  # the active one first, so that the newest sealed segment is the log's end
    sealed = _segments(root)[-1]
    sealed.unlink()
    (root / "log" / "seals" / sealed.name.replace(".ndjson", ".json")).unlink()


def _lose_final_newline(root: Path) -> None:
    active = _segments(root)[-1]
    active.write_bytes(active.read_bytes()[:-1])


LOSSES: dict[str, Callable[[Path], None]] = {
    "active segment cut to one line": lambda root: _cut_active_to_lines(root, 1),
    "active segment emptied": lambda root: _cut_active_to_lines(root, 0),
    "active segment deleted": _delete_active,
    "newest sealed segment deleted with its seal": _delete_newest_sealed_with_seal,
    "final newline lost": _lose_final_newline,
}


@pytest.mark.parametrize("damage", list(LOSSES))
def test_lost_acknowledged_events_are_reported_and_never_reused(pristine: Path, lake_copy: Path, damage: str) -> None:
    LOSSES[damage](lake_copy)
    before = {path.name: path.read_bytes() for path in _segments(lake_copy)}
    with Lake.open(lake_copy) as lake:
        report = lake.verify()
        assert not report.ok
        assert any("acknowledged" in problem.message or "torn" in problem.message for problem in report.problems)
        assert lake.log.damage is not None
        with pytest.raises(IntegrityError, match="acknowledged"):
            lake.append([page_record("After the loss", 1)])
        with pytest.raises(IntegrityError):
            lake.mirror()
        with pytest.raises(IntegrityError):
            lake.reproject()
    # Nothing was cut or written: the damaged files are as they were left.
    assert {path.name: path.read_bytes() for path in _segments(lake_copy)} == before
    assert read_head(lake_copy / "log" / HEAD_NAME) == read_head(pristine / "log" / HEAD_NAME)


def test_torn_unacknowledged_tail_is_cut_and_the_log_goes_on(lake_copy: Path) -> None:
    active = _segments(lake_copy)[-1]
    whole = active.read_bytes()
    active.write_bytes(whole + b'{"body":{"half a line')  # a write the crash cut short, never acknowledged
    with Lake.open(lake_copy) as lake:
        assert active.read_bytes() == whole
        assert lake.verify().ok
        result = lake.append([page_record("Next", 1)])
        assert result.first_seq == 11
        assert lake.mirror().written == 1
        assert lake.verify().ok


def test_unacknowledged_whole_lines_are_adopted_by_the_head(lake_copy: Path) -> None:
    """Lines a killed call wrote in full stay (they are readers' events now), and the head moves to them."""
    with Lake.open(lake_copy) as lake:
        lake.append([page_record("Extra", 1)])
    head = read_head(lake_copy / "log" / HEAD_NAME)
    assert head is not None and head.seq == 11
    # Put the head back one event, as a kill between the write and the head would leave it.
    lines = _segments(lake_copy)[-1].read_bytes().splitlines()
    (lake_copy / "log" / HEAD_NAME).write_bytes(encode_head(Head(10, line_hash(lines[-2]))))
    with Lake.open(lake_copy) as lake:
        assert lake.log.damage is None
        assert lake.verify().ok
    assert read_head(lake_copy / "log" / HEAD_NAME) == head


def test_deleted_middle_segment_stops_the_mirror_with_the_gap(lake_copy: Path) -> None:
    # A fresh database, so that the mirror reads from the start and meets the gap.
    (lake_copy / "lake.db").unlink()
    middle = _segments(lake_copy)[1]
    middle.unlink()
    with Lake.open(lake_copy) as lake:
        assert not lake.verify().ok
        with pytest.raises(IntegrityError, match="events 5-8 are missing"):
            lake.mirror()
        with pytest.raises(IntegrityError, match="events 5-8 are missing"):
            lake.reproject(rebuild=True)


def test_damaged_sealed_line_stops_readers_instead_of_skipping(lake_copy: Path) -> None:
    (lake_copy / "lake.db").unlink()
    first = _segments(lake_copy)[0]
    data = bytearray(first.read_bytes())
    at = data.index(b"Page 1") + 5
    data[at] = ord("9")  # still valid JSON, still a valid event: only the chain can tell
    first.write_bytes(bytes(data))
    with Lake.open(lake_copy) as lake:
        assert not lake.verify().ok
        with pytest.raises(IntegrityError, match="was altered"):
            lake.mirror()
        with pytest.raises(IntegrityError, match="was altered"):
            lake.reproject(rebuild=True)
        with pytest.raises(IntegrityError):
            list(lake.events())


def test_mirror_watermark_past_a_rewritten_log_stops(lake_copy: Path, tmp_path: Path) -> None:
    """The log lost its tail and was written again under the same seqs (head removed by hand): the mirror, whose
    watermark is at seq 10, finds another event there and stops instead of reporting 0 new events."""
    _cut_active_to_lines(lake_copy, 1)
    (lake_copy / "log" / HEAD_NAME).unlink()
    with Lake.open(lake_copy) as lake:
        lake.append([page_record("Rewritten", 1)])
        assert lake.log.last_seq == 10
        with pytest.raises(IntegrityError, match="is not in the database"):
            lake.mirror()


def test_deleted_index_row_fails_verify_and_reindex_repairs_it(lake_copy: Path) -> None:
    index = lake_copy / "log" / "index.sqlite"
    with sa.create_engine(f"sqlite:///{index}").begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE seq = 3"))
    with Lake.open(lake_copy) as lake:
        report = lake.verify()
        assert not report.ok
        assert report.problems[0].file == "log/index.sqlite"
        assert "seq 3" in report.problems[0].message
        assert lake.reindex() == 10
        assert lake.verify().ok


def test_show_of_an_event_missing_from_the_index_points_to_reindex(lake_copy: Path) -> None:
    index = lake_copy / "log" / "index.sqlite"
    with sa.create_engine(f"sqlite:///{index}").begin() as conn:
        event_id = conn.execute(sa.text("SELECT event_id FROM events WHERE seq = 3")).scalar_one()
        conn.execute(sa.text("DELETE FROM events WHERE seq = 3"))
    with Lake.open(lake_copy) as lake:
        with pytest.raises(IntegrityError, match=rf"exchange {event_id} is in the log at seq 3.*eventlog reindex"):
            lake.get(event_id)
        assert lake.get("00000000-0000-4000-8000-000000000000") is None  # truly absent: not found, not damage
        assert lake.get(lake.log.index.by_seq(4).event_id) is not None  # type: ignore[union-attr]
        lake.reindex()
        shown = lake.get(event_id)
        assert shown is not None and shown.seq == 3


def test_damaged_index_file_is_rebuilt(lake_copy: Path) -> None:
    index = lake_copy / "log" / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        index.with_name(index.name + suffix).unlink(missing_ok=True)
    index.write_bytes(b"not a database" * 100)
    with Lake.open(lake_copy) as lake:
        assert lake.verify().ok
        assert lake.log.index.last_seq() == 10


def test_emptied_projection_table_is_noticed_and_rebuilt(lake_copy: Path) -> None:
    with Lake.open(lake_copy) as lake:
        with lake.sql_store() as store, store.begin() as conn:
            expected = conn.execute(sa.select(sa.func.count()).select_from(attach(store).record)).scalar_one()
            conn.execute(attach(store).record.delete())
        result = lake.reproject()
        assert result.mode == "rebuild"
        assert result.reason is not None and "emptied or changed outside the lake" in result.reason
        with lake.sql_store() as store, store.begin() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(attach(store).record)).scalar_one() == expected
        again = lake.reproject()
        assert again.mode == "incremental" and again.events_read == 0


def test_watermark_in_an_evicted_segment_needs_no_key(lake_copy: Path) -> None:
    """The mirror and the projection check their position through the index, so a log whose every segment went to
    cold storage still mirrors and projects without the archive key."""
    from eventlog.cold.archiver import SeqRange
    from eventlog.cold.keys import Keys, SymmetricKey

    with Lake.open(lake_copy) as lake:
        lake.seal()
        lake.archive(keys=Keys(key=SymmetricKey(bytes(32))), seqs=SeqRange(None, None), evict=True)
    assert _segments(lake_copy) == []
    with Lake.open(lake_copy, keys=Keys()) as lake:
        assert lake.mirror().read == 0
        assert lake.reproject().events_read == 0
