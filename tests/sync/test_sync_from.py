"""`sync --from PATH`: merging a lake or log folder copied from another machine, which is only read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eventlog import Lake
from eventlog.errors import ConflictError, IntegrityError
from eventlog.log.segments import list_segments
from tests.cli.runner import Run
from tests.sync.helpers import (
    copy_lake,
    database_digest,
    folder_digest,
    lake_digest,
    lake_event_ids,
    page,
    sync_from,
)


def test_both_lakes_hold_the_union_and_agree_and_the_copies_are_untouched(lakes: tuple[Lake, Lake],
                                                                          tmp_path: Path) -> None:
    a, b = lakes
    shared = page("Eve", 1, 5)
    a.append([page("Ada", 1, 1), page("Bea", 1, 1), shared])
    b.append([page("Cy", 1, 2), shared])
    a.seal()  # a sealed segment and its seal travel too, and are checked
    a.append([page("Ada", 2, 4)])
    copy_a = copy_lake(a, tmp_path / "copy-a")
    before = folder_digest(copy_a)

    into_b = sync_from(b, copy_a)
    assert (into_b.to_json, into_b.shared, into_b.to_sql) == (3, 1, 0)
    assert folder_digest(copy_a) == before
    assert not sync_from(b, copy_a).changed  # a second run of the same folder adds nothing

    copy_b = copy_lake(b, tmp_path / "copy-b")
    into_a = sync_from(a, copy_b / "log")  # the log/ folder alone reads as well
    assert (into_a.to_json, into_a.shared) == (1, 1)
    assert not sync_from(a, copy_b).changed
    assert sorted(lake_event_ids(a)) == sorted(lake_event_ids(b))
    assert len(lake_event_ids(a)) == 5
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path)
    # Foreign events keep their identity: the same event id, digest, origin and recorded time on both sides.
    ours = {event.event_id: event for event in a.events()}
    foreign = [event for event in b.events() if event.origin == a.config.replica_id]
    assert len(foreign) == 3
    for event in foreign:
        mine = ours[event.event_id]
        assert (mine.digest, mine.origin, mine.recorded_at_utc) == (event.digest, event.origin,
                                                                     event.recorded_at_utc)


def test_a_damaged_line_is_refused_naming_it_and_nothing_is_written(lakes: tuple[Lake, Lake],
                                                                    tmp_path: Path) -> None:
    a, b = lakes
    a.append([page("Ada", 1, 1), page("Bea", 1, 1), page("Cy", 1, 1)])
    b.append([page("Dee", 1, 1)])
    copy_a = copy_lake(a, tmp_path / "copy-a")
    (_, segment), = list_segments(copy_a / "log" / "segments")
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"Bea"', b'"Bee"', 1)
    segment.write_bytes(b"\n".join(lines))
    before, events = folder_digest(b.root), lake_event_ids(b)
    with pytest.raises(IntegrityError) as caught:
        b.sync_from(copy_a)
    assert segment.name in str(caught.value) and "line 2" in str(caught.value)
    assert folder_digest(b.root) == before and lake_event_ids(b) == events


def test_a_dry_run_writes_nothing_and_plans_what_the_run_does(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    a, b = lakes
    a.append([page("Ada", 1, 1), page("Bea", 1, 1)])
    b.append([page("Ada", 2, 3)])  # both changed Ada since they last agreed: a conflict
    copy_a = copy_lake(a, tmp_path / "copy-a")
    before = folder_digest(b.root)
    plan = sync_from(b, copy_a, dry_run=True)
    assert plan.dry_run and (plan.to_json, len(plan.conflicts)) == (3, 1)
    assert folder_digest(b.root) == before
    done = sync_from(b, copy_a)
    assert (done.to_json, done.resolutions) == (plan.to_json, plan.resolutions) == (3, 1)
    assert done.conflicts[0].winner == plan.conflicts[0].winner


def test_conflicts_follow_the_strategies_of_sync(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    a, b = lakes
    a.append([page("Ada", 1, 1)])
    b.append([page("Ada", 2, 3)])
    copy_a = copy_lake(a, tmp_path / "copy-a")
    before = folder_digest(b.root)
    with pytest.raises(ConflictError) as caught:
        b.sync_from(copy_a, conflict="fail")
    assert caught.value.exit_code == 9 and folder_digest(b.root) == before
    decided = sync_from(b, copy_a, conflict="prefer_sql")  # the copied folder's side
    winner = decided.conflicts[0].winner
    assert winner == next(item.content_sha256 for item in decided.conflicts[0].candidates
                          if "sql" in item.current_on)
    # The decision travels: lake a, syncing from b's copy, applies it and does not decide again.
    back = sync_from(a, copy_lake(b, tmp_path / "copy-b"), conflict="prefer_json")
    assert back.conflicts == () and back.to_json == 2
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path)


def test_a_change_made_after_seeing_ours_is_no_conflict(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    """b took a's version of a key from a copy, then changed the key: a copy of b brings a a newer version made
    knowing a's, not a conflict, even under `fail` (the copy holds a's event, so a changed nothing b lacks)."""
    a, b = lakes
    a.append([page("Ada", 1, 1)])
    sync_from(b, copy_lake(a, tmp_path / "copy-a"))
    b.append([page("Ada", 2, 3)])
    result = sync_from(a, copy_lake(b, tmp_path / "copy-b"), conflict="fail")
    assert result.conflicts == () and result.to_json == 1
    assert lake_digest(a, tmp_path) == lake_digest(b, tmp_path)
    # And the other way: a key both changed since they last agreed is one.
    a.append([page("Bea", 1, 1)])
    b.append([page("Bea", 2, 2)])
    with pytest.raises(ConflictError):
        b.sync_from(copy_lake(a, tmp_path / "copy-a2"), conflict="fail")


def test_the_cli_merges_a_copied_folder(lakes: tuple[Lake, Lake], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = lakes
    a.append([page("Ada", 1, 1)])
    copy_a = copy_lake(a, tmp_path / "copy-a")
    b.close()
    run = Run(capsys, monkeypatch, b.root)
    code, out, _ = run("sync", "--from", str(copy_a), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["to_json"] == 1 and json.loads(out)["dry_run"]
    code, out, _ = run("sync", "--from", str(copy_a))
    assert code == 0 and "appended 1 event(s)" in out
    code, out, _ = run("sync", "--from", str(copy_a))
    assert code == 0 and "nothing to do" in out
    code, out, err = run("sync", "--from", str(tmp_path), "--json")
    assert code == 3 and "holds no event log" in err + out
    code, out, err = run("sync", "--from", str(copy_a), "--direction", "json_to_sql")
    assert code == 3 and "--direction does not apply" in err + out


def test_a_copied_pack_folder_is_read_as_import_reads_it(lakes: tuple[Lake, Lake], tmp_path: Path) -> None:
    from eventlog.app.datasets import ImportResult
    from eventlog.log.writer import AppendResult

    _, b = lakes
    pack = shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "packs" / "original", tmp_path / "pack")
    before = folder_digest(pack)
    result = b.sync_from(pack)
    assert isinstance(result, ImportResult) and result.read == 7
    assert folder_digest(pack) == before
    assert isinstance(result.append, AppendResult) and result.append.observed == len(lake_event_ids(b)) > 0
    again = b.sync_from(pack)
    assert isinstance(again, ImportResult) and isinstance(again.append, AppendResult)
    assert (again.append.observed, again.append.revisited) == (0, 0) and len(lake_event_ids(b)) == result.append.observed


def test_with_a_database_its_projection_follows(lakes: tuple[Lake, Lake], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = lakes
    a.append([page("Ada", 1, 1), page("Bea", 2, 2)])
    b.append([page("Cy", 1, 1)])
    url = f"sqlite:///{tmp_path / 'b.db'}"
    monkeypatch.setenv("EVENTLOG_DATABASE_URL", url)
    result = sync_from(b, copy_lake(a, tmp_path / "copy-a"))
    assert result.projection is not None
    assert result.projection.state_digest == lake_digest(b, tmp_path) == database_digest(url, "lake")
