"""Several processes recording into one lake at once: every exchange is found, and the shared index equals a rebuild."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eventlog.app.lake import Lake
from eventlog.replay import Replayer
from eventlog.replay.shape import request_dict

WRITER = '''
import sys
from eventlog.replay import Replayer
from eventlog.replay.shape import request_dict

lake, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Replayer(lake, mode="record", dataset="shared") as replayer:
    for n in range(count):
        request = request_dict("GET", f"https://h.example/{name}?n={n}", [], None)
        replayer.record(request, {"status": 200, "body": f"{name} {n}"})
        assert replayer.lookup(request).body == f"{name} {n}".encode()
'''


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return [row for table in ("contents", "requests", "shapes")
                for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4")]


@pytest.mark.slow
def test_processes_recording_at_once_share_the_lake_and_its_index(tmp_path: Path) -> None:
    Lake.init(tmp_path / "lake").close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "lake"), name, "40"],
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b", "c")]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with Replayer(tmp_path / "lake", dataset="shared") as replayer:
        for name in ("a", "b", "c"):
            for n in range(40):
                request = request_dict("GET", f"https://h.example/{name}?n={n}", [], None)
                assert replayer.lookup(request).body == f"{name} {n}".encode()
        assert replayer.index.count() == 120
        shared = _rows(tmp_path / "lake" / "replay" / "index.sqlite")
        replayer.index.rebuild()
        assert _rows(tmp_path / "lake" / "replay" / "index.sqlite") == shared
