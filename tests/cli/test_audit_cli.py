"""`eventlog history`, `provenance` and `diff` end to end: real lakes, text and JSON output, exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventlog import Lake, SegmentPolicy
from eventlog.format.envelope import content_sha256
from tests.cli.runner import Run
from tests.factories import BASE_TIME, page_record

KEY_ARGS = ("--source", "wikipedia-en", "--entity", "page", "--key", "Foo")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    """A lake where Foo's revision 2 (observed 14:00) was recorded after revision 3 (observed 15:00)."""
    recorded = [datetime(2024, 6, 1, tzinfo=UTC)]
    policy = SegmentPolicy(max_events=0, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy, clock=lambda: recorded[0]) as lake:
        for number in (1, 3, 2):
            record = {**page_record("Foo", number),
                      "provenance": {"runner": "nightly", "host": "ingest-1", "git_sha": "0123abcd"}}
            lake.append([record])
            recorded[0] += timedelta(days=1)
        lake.append([page_record("Foo", 1, observed=BASE_TIME + timedelta(hours=5))])
    return Run(capsys, monkeypatch, tmp_path / "lake")


def hashes() -> dict[int, str]:
    return {number: content_sha256(page_record("Foo", number)) for number in (1, 2, 3)}


def as_json(out: str) -> Any:
    lines = out.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_history_text(run: Run) -> None:
    code, out, err = run("history", *KEY_ARGS)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("wikipedia-en/page/Foo: 4 observation(s), 3 version(s), current "
                               f"{hashes()[1][:12]}")
    rows = [line.split() for line in lines[2:6]]
    assert [row[0] for row in rows] == ["1", "3", "2", "4"]
    assert "runner=nightly host=ingest-1 git_sha=0123abcd" in lines[2]
    assert "versions (current periods in observed time):" in lines


def test_history_json(run: Run) -> None:
    h = hashes()
    code, out, _ = run("history", *KEY_ARGS, "--json", "--order", "log")
    assert code == 0
    result = as_json(out)
    assert result["current"] == h[1] and result["order"] == "log"
    assert [row["seq"] for row in result["rows"]] == [1, 2, 3, 4]
    assert [row["current_after"] for row in result["rows"]] == [h[1], h[3], h[3], h[1]]
    assert [row["type"] for row in result["rows"]] == ["observed", "observed", "observed", "revisited"]
    assert set(result["rows"][0]) >= {"exchange_id", "observed_at_utc", "recorded_at_utc", "origin", "provenance",
                                      "content_sha256", "made_current"}
    assert result["versions"][0]["periods"][-1]["current_until_utc"] is None
    assert result["resolutions"] == []


def test_provenance_text_and_json(run: Run) -> None:
    _, out, _ = run("--json", "history", *KEY_ARGS, "--order", "log")
    rows = as_json(out)["rows"]
    code, out, _ = run("provenance", rows[3]["exchange_id"], "--json")
    assert code == 0
    report = as_json(out)
    assert report["payload"] == "revisit" and report["seq"] == 4
    assert report["first_observation"]["exchange_id"] == rows[0]["exchange_id"]
    assert report["placement"]["state"] == "active" and "response" not in report["envelope"]
    code, out, _ = run("provenance", rows[0]["exchange_id"])
    assert code == 0
    assert f"exchange_id        {rows[0]['exchange_id']}" in out
    assert "payload            inline" in out and "(active)" in out and "git_sha=0123abcd" in out


def test_diff_text_and_json(run: Run) -> None:
    h = hashes()
    code, out, _ = run("diff", *KEY_ARGS)
    assert code == 0
    assert out.splitlines() == [
        "wikipedia-en/page/Foo (response)",
        f"--- {h[3][:12]}  observed 2024-05-01T15:00:00.000000Z  exchange {as_id(run, h[3])}",
        f"+++ {h[1][:12]}  observed 2024-05-01T13:00:00.000000Z  exchange {as_id(run, h[1])}",
        '~ $.response.body.content: "Foo revision 3" -> "Foo revision 1"',
        "~ $.response.body.revid: 3 -> 1",
        "2 changed, 0 added, 0 removed",
    ]
    code, out, _ = run("diff", *KEY_ARGS, "--from", h[2][:10], "--to", "current", "--json")
    assert code == 0
    result = as_json(out)
    assert result["from"]["content_sha256"] == h[2] and result["to"]["content_sha256"] == h[1]
    assert [change["path"] for change in result["changes"]] == ["$.response.body.content", "$.response.body.revid"]
    assert result["changes"][1] == {"op": "changed", "path": "$.response.body.revid", "old": 2, "new": 1}


def as_id(run: Run, content: str) -> str:
    _, out, _ = run("--json", "history", *KEY_ARGS, "--order", "log")
    return next(str(row["exchange_id"]) for row in as_json(out)["rows"] if row["content_sha256"] == content)


def test_errors_are_one_sentence_with_their_exit_code(run: Run) -> None:
    code, _, err = run("history", "--source", "wikipedia-en", "--entity", "page", "--key", "Nope")
    assert code == 10 and err.startswith("error: no observation of wikipedia-en/page/Nope")
    code, _, err = run("provenance", "00000000-0000-0000-0000-000000000000")
    assert code == 10 and err.startswith("error: exchange 00000000-0000-0000-0000-000000000000 is not in the lake")
    code, _, err = run("diff", *KEY_ARGS, "--from", "zz-top")
    assert code == 3 and "is not a content hash prefix, an exchange id" in err
    code, _, err = run("diff", *KEY_ARGS, "--to", "12")
    assert code == 3 and "too short" in err
    code, _, err = run("diff", *KEY_ARGS, "--part", "headers")
    assert code == 2
    code, _, err = run("history", "--source", "wikipedia-en")
    assert code == 2 and "--entity" in err
    assert len([line for line in err.splitlines() if line.startswith("Error")]) == 1
