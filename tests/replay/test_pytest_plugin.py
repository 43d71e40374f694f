"""The pytest plugin, run as a user runs it: pytest in a process of its own, with the options on its command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eventlog.app.lake import Lake

INNER = '''
import pytest
from eventlog.replay import Replayer

REQUEST = {"method": "GET", "url": "https://api.example.org/items?page=1", "headers": {"Accept": "application/json"}}


def test_record(eventlog_replayer):
    assert isinstance(eventlog_replayer, Replayer) and eventlog_replayer.mode == "record"
    assert eventlog_replayer.dataset == "demo"
    eventlog_replayer.record(REQUEST, {"status": 200, "headers": {"X-Page": "1"}, "body": "page one"})


def test_replay(eventlog_replayer):
    assert eventlog_replayer.mode == "replay"
    assert eventlog_replayer.lookup(REQUEST).body == b"page one"


@pytest.mark.eventlog_replay(dataset="elsewhere")
def test_marker_overrides_the_dataset(eventlog_replayer):
    assert eventlog_replayer.dataset == "elsewhere"
    assert eventlog_replayer.find(REQUEST) is None
'''


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_options_choose_lake_dataset_and_mode_and_a_marker_overrides_them(tmp_path: Path) -> None:
    Lake.init(tmp_path / "lake").close()
    (tmp_path / "test_inner.py").write_text(INNER)
    lake = str(tmp_path / "lake")
    recorded = _pytest(tmp_path, "--eventlog-lake", lake, "--eventlog-dataset", "demo", "--eventlog-mode", "record",
                       "-k", "test_record")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    replayed = _pytest(tmp_path, "--eventlog-lake", lake, "--eventlog-dataset", "demo", "-k", "not test_record")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "2 passed" in replayed.stdout


def test_a_missing_lake_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    result = _pytest(tmp_path, "--eventlog-lake", str(tmp_path / "nowhere"), "-k", "test_replay")
    assert result.returncode != 0
    assert "is not a lake (lake.json is missing); create it with `eventlog --lake" in result.stdout + result.stderr
