"""A lake written by release 0.1, before the code was laid out in wings, opens, verifies, appends and projects."""

from __future__ import annotations

import shutil
from pathlib import Path

from eventlog import Lake
from tests.factories import page_record

WRITTEN_BY_0_1 = Path(__file__).resolve().parents[1] / "data" / "lakes" / "written-by-0.1"


def test_a_lake_written_by_0_1_opens_verifies_appends_and_projects(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(WRITTEN_BY_0_1, root)
    with Lake.open(root) as lake:
        report = lake.verify()
        assert report.ok, report
        assert [event.seq for event in lake.events()] == list(range(1, 25))
        result = lake.append([page_record("Grace", 1)])
        assert (result.first_seq, result.last_seq) == (25, 25)
        assert lake.seal() is not None
        assert lake.verify().ok
        url = f"sqlite:///{tmp_path / 'lake.db'}"
        assert lake.mirror(database_url=url).written == 25
        reprojected = lake.reproject(database_url=url)
        assert (reprojected.position, reprojected.events_applied) == (25, 25)
        assert lake.verify_projection(database_url=url).ok
