"""Readers that follow a sealing append: mirror, reproject, verify and a scheduled job run while another process
appends and seals every few events, and none of them fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventlog import Lake, SegmentPolicy
from eventlog.app.scheduler import run_job
from tests.factories import page_record

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from eventlog import Lake
from tests.factories import page_record
stop = Path({stop!r})
with Lake.open({lake!r}) as lake:
    n = 0
    while not stop.exists():
        # Calls of three events into segments of five: nearly every call seals, or begins a segment.
        lake.append([page_record(f"Racing {{n}}-{{k}}", 1) for k in range(3)])
        n += 1
        time.sleep(0.005)  # a busy capture, not a flood: the readers' work stays bounded
"""


@pytest.mark.slow
def test_readers_run_through_seals_happening_under_them(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with Lake.init(root, segment_policy=SegmentPolicy(max_events=5, max_bytes=0, max_age_seconds=0)) as lake:
        lake.append([page_record("First", 1)])
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), stop=str(stop), lake=str(root))])
    try:
        with Lake.open(root) as lake:
            for _ in range(50):
                lake.mirror()
                lake.reproject()
                report = lake.verify()
                assert report.ok, report.problems[:3]
                assert run_job(str(root), "mirror").outcome == "ok"
    finally:
        stop.touch()
        assert writer.wait(timeout=60) == 0
    with Lake.open(root) as lake:
        assert lake.log.last_seq > 50  # the writer did append (and seal) while the readers ran
        lake.mirror()
        result = lake.reproject()
        assert lake.verify().ok
        with lake.sql_store() as store:
            assert store.max_event_seq() == lake.log.last_seq
        rebuilt = lake.reproject(rebuild=True)
        assert rebuilt.state_digest == result.state_digest
