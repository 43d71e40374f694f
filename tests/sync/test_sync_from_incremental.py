"""`sync --from PATH` on a copy that grew, was cut back, or evicted segments to cold storage.

A second run reads only the segments after the watermark of the first (proven by a copy whose old sealed segments
are garbage); a copy that no longer holds the watermark line is read whole, and says so; evicted segments are read
with a key and refused, with one sentence and nothing written, without one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eventlog import Lake
from eventlog.cold.keys import Keys, write_key_file
from eventlog.cold.keys import load_key_file as read_key
from eventlog.errors import ArchiveError, IntegrityError
from eventlog.log.segments import list_segments
from tests.cli.runner import Run
from tests.sync.helpers import copy_lake, folder_digest, lake_digest, lake_event_ids, page, sync_from


def _grow(lake: Lake, titles: str, hour: int) -> None:
    """Append one page per letter and seal them: one more sealed segment."""
    lake.append([page(title, 1, hour) for title in titles])
    lake.seal()


def _spoil(segment: Path) -> None:
    """Replace a segment's bytes with garbage of the same length: reading it would fail."""
    segment.write_bytes(b"x" * segment.stat().st_size)


def test_a_grown_copy_is_read_from_the_watermark_on(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    a, b = lakes
    _grow(a, "AB", 1)
    _grow(a, "CD", 2)
    a.append([page("E", 1, 3)])  # the active segment: the watermark falls inside it
    first = sync_from(b, copy_lake(a, tmp_path / "copy-1"))
    assert first.full_reconciliation and first.to_json == 5 and first.segments_read == 3

    a.seal()  # the segment the watermark was in is sealed now, ending at it
    _grow(a, "FG", 4)
    a.append([page("H", 1, 5)])
    copy = copy_lake(a, tmp_path / "copy-2")
    old = [path for name, path in list_segments(copy / "log" / "segments") if name.last_seq is not None
           and name.last_seq <= 5]
    assert len(old) == 3
    for path in old:
        _spoil(path)
    before = folder_digest(copy)

    second = sync_from(b, copy)
    assert not second.full_reconciliation and second.note is None
    assert (second.to_json, second.segments_read) == (3, 2)  # F-G's segment and the active one
    assert folder_digest(copy) == before
    assert sorted(lake_event_ids(b)) == sorted(lake_event_ids(a))
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path)

    third = sync_from(b, copy)  # nothing new: only the active segment is opened
    assert not third.changed and third.segments_read == 1

    with pytest.raises(IntegrityError) as caught:  # read whole, the spoiled segments are refused
        sync_from(Lake.init(tmp_path / "c"), copy)
    assert old[0].name in str(caught.value)


def test_damage_after_the_watermark_is_still_found(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    a, b = lakes
    _grow(a, "AB", 1)
    sync_from(b, copy_lake(a, tmp_path / "copy-1"))
    _grow(a, "CD", 2)
    copy = copy_lake(a, tmp_path / "copy-2")
    (_, second_segment), = [(name, path) for name, path in list_segments(copy / "log" / "segments")
                            if name.first_seq == 3]
    lines = second_segment.read_bytes().split(b"\n")
    second_segment.write_bytes(b"\n".join([lines[1], lines[0], *lines[2:]]))  # two lines swapped
    events = lake_event_ids(b)
    with pytest.raises(IntegrityError) as caught:
        sync_from(b, copy)
    assert second_segment.name in str(caught.value)
    assert lake_event_ids(b) == events


def test_a_copy_without_the_watermark_line_is_read_whole_and_says_so(lakes: tuple[Lake, Lake],
                                                                     tmp_path: Path) -> None:
    a, b = lakes
    _grow(a, "AB", 1)
    older = copy_lake(a, tmp_path / "older")
    _grow(a, "CD", 2)
    assert sync_from(b, copy_lake(a, tmp_path / "newer")).to_json == 4
    again = sync_from(b, older)  # an older copy: it ends before the watermark
    assert again.full_reconciliation and not again.changed
    assert again.note is not None and "read whole" in again.note and "seq 4" in again.note

    replaced = tmp_path / "replaced"  # the same replica id over another log
    shutil.copytree(Lake.init(tmp_path / "other").root, replaced)
    config = json.loads((replaced / "lake.json").read_text())
    config["replica_id"] = a.config.replica_id
    (replaced / "lake.json").write_text(json.dumps(config))
    with Lake.open(replaced) as other:
        other.append([page(title, 2, 6) for title in "WXYZ"])
    result = sync_from(b, replaced)
    assert result.full_reconciliation and result.note is not None and result.to_json == 4


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "copy.key"
    write_key_file(path)
    return path


def _evicting(a: Lake, key_file: Path) -> None:
    """Lake a with two sealed segments evicted to archive/ and one event in its active segment."""
    _grow(a, "AB", 1)
    _grow(a, "CD", 2)
    a.append([page("E", 1, 3)])
    report = a.archive(keys=Keys(key=read_key(key_file)), evict=True)
    assert len(report.segments) == 2
    assert [name.last_seq for name, _ in list_segments(a.root / "log" / "segments")] == [None]


def test_evicted_segments_are_read_with_the_key(lakes: tuple[Lake, Lake], tmp_path: Path, key_file: Path) -> None:
    a, b = lakes
    _evicting(a, key_file)
    copy = copy_lake(a, tmp_path / "copy")
    before = folder_digest(copy)
    result = sync_from(b, copy, keys=Keys(key=read_key(key_file)))
    assert result.to_json == 5 and result.segments_read == 3
    assert folder_digest(copy) == before
    with Lake.open(a.root, keys=Keys(key=read_key(key_file))) as keyed:
        assert sorted(lake_event_ids(b)) == sorted(lake_event_ids(keyed))

    _grow(a, "FG", 4)  # sealed with E, where the watermark is
    a.archive(keys=Keys(key=read_key(key_file)), evict=True)
    # The evicted segments at or below the watermark need no key; the one holding it and F, G is refused
    # without one.
    with pytest.raises(ArchiveError) as caught:
        sync_from(b, copy_lake(a, tmp_path / "copy-2"))
    message = str(caught.value)
    assert "00000000000000000005-00000000000000000007" in message and "--key-file" in message


def test_without_a_key_evicted_segments_are_refused_and_nothing_is_written(
        lakes: tuple[Lake, Lake], tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = lakes
    _evicting(a, key_file)
    b.append([page("Z", 1, 1)])
    b.close()
    copy = copy_lake(a, tmp_path / "copy")
    before_copy, before_lake = folder_digest(copy), folder_digest(b.root)
    with Lake.open(b.root) as reopened, pytest.raises(ArchiveError) as caught:
        reopened.sync_from(copy)
    assert str(copy / "archive") in str(caught.value)
    assert folder_digest(b.root) == before_lake

    run = Run(capsys, monkeypatch, b.root)
    code, out, err = run("sync", "--from", str(copy))
    assert code == 8 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "evicted to cold storage" in err and "--key-file" in err and str(copy / "archive") in err
    assert folder_digest(b.root) == before_lake and folder_digest(copy) == before_copy

    code, out, err = run("sync", "--from", str(copy), "--key-file", str(key_file), "--json")
    assert code == 0, err
    assert json.loads(out)["to_json"] == 5
    assert folder_digest(copy) == before_copy
    code, out, err = run("sync", "--key-file", str(key_file))
    assert code == 3 and "apply to --from only" in err
