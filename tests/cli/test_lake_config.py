"""lake.json is read strictly: unknown keys and a missing or malformed replica id are refused, never replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventlog import Lake
from tests.cli.runner import Run


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    Lake.init(tmp_path / "lake").close()
    return Run(capsys, monkeypatch, tmp_path / "lake")


def _edit(root: Path, change: dict[str, object], *, drop: str | None = None) -> bytes:
    path = root / "lake.json"
    settings = json.loads(path.read_text())
    settings.update(change)
    if drop is not None:
        del settings[drop]
    path.write_text(json.dumps(settings))
    return path.read_bytes()


@pytest.mark.parametrize(("change", "drop", "words"), [
    ({"segment_polcy": {"max_events": 10}}, None, "segment_polcy"),
    ({"segment_policy": {"max_event": 10}}, None, "max_event"),
    ({"archive": {"evict": True, "recipient": []}}, None, "recipient"),
    ({}, "replica_id", "replica_id"),
    ({"replica_id": ""}, None, "replica_id"),
    ({"replica_id": "a b"}, None, "replica_id"),
    ({"replica_id": 7}, None, "replica_id"),
    ({"replica_id": "x" * 65}, None, "replica_id"),
])
def test_unknown_keys_and_bad_replica_ids_are_refused_and_left_alone(run: Run, change: dict[str, object],
                                                                     drop: str | None, words: str) -> None:
    before = _edit(run.lake, change, drop=drop)
    for command in (("verify",), ("log",), ("append", "-")):
        code, _, err = run(*command, stdin=b"")
        assert code == 4, (command, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err and "lake.json" in err
    assert (run.lake / "lake.json").read_bytes() == before


def test_a_folder_where_lake_json_belongs_is_named(run: Run) -> None:
    (run.lake / "lake.json").unlink()
    (run.lake / "lake.json").mkdir()
    code, _, err = run("verify")
    assert code == 4 and "lake.json is a folder" in err


def test_the_replica_id_survives_every_open(run: Run) -> None:
    first = json.loads((run.lake / "lake.json").read_text())["replica_id"]
    for _ in range(3):
        assert run("verify")[0] == 0
    assert json.loads((run.lake / "lake.json").read_text())["replica_id"] == first
