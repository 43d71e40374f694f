"""`eventlog sync`: text and JSON output, --dry-run, and exit 9 with the conflicts under --conflict fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventlog import Lake
from tests.cli.runner import Run
from tests.sync.helpers import page, row_counts


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    with Lake.init(tmp_path / "lake"):
        pass
    return Run(capsys, monkeypatch, tmp_path / "lake")


def test_sync_dry_run_then_sync_then_nothing(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Lake.open(run.lake) as lake:
        lake.append([page("Ada", 1, 1), page("Bea", 1, 1)])
    code, out, _ = run("sync", "--dry-run", "--database-url", url, "--json")
    plan = json.loads(out)
    assert code == 0 and (plan["dry_run"], plan["to_sql"], plan["to_json"]) == (True, 2, 0)
    assert not (tmp_path / "shared.db").exists() or row_counts(url, "lake")["ExchangeEvent"] == 0
    code, out, _ = run("sync", "--database-url", url)
    assert code == 0 and "copied 2 event(s) to the database" in out and "RawExchangeRecord" in out
    code, out, _ = run("sync", "--database-url", url)
    assert code == 0 and "nothing to do" in out


def test_sync_fail_exits_9_naming_the_conflict(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Lake.open(run.lake) as lake, Lake.init(tmp_path / "other") as other:
        lake.append([page("Ada", 1, 1)])
        lake.sync(database_url=url)
        other.sync(database_url=url)
        lake.append([page("Ada", 2, 5)])
        other.append([page("Ada", 3, 4)])
        other.sync(database_url=url)
    before = row_counts(url, "lake")
    code, out, err = run("sync", "--conflict", "fail", "--database-url", url)
    assert code == 9 and "conflict wikipedia-en/page/Ada" in err and "1 conflict(s)" in err
    code, out, _ = run("sync", "--conflict", "fail", "--database-url", url, "--json")
    report = json.loads(out)
    assert code == 9 and report["exit_code"] == 9 and report["conflicts"][0]["natural_key"] == "Ada"
    assert row_counts(url, "lake") == before
    code, out, _ = run("sync", "--conflict", "prefer_sql", "--database-url", url)
    assert code == 0 and "kept" in out and "(prefer_sql)" in out


def test_sync_help_names_the_original_words(run: Run) -> None:
    code, out, _ = run("sync", "--help")
    assert code == 0
    for word in ("--direction", "bidirectional", "json_to_sql", "sql_to_json", "--conflict", "prefer_newest",
                 "prefer_sql", "prefer_json", "fail", "--dry-run", "--json"):
        assert word in out


def test_sync_takes_its_defaults_from_a_manifest_sync_policy(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({
        "dataset_name": "pages", "source_system": "wikipedia-en", "entity_type": "page", "exchange_type": "mediawiki",
        "sync_policy": {"direction_default": "json_to_sql", "conflict_strategy": "fail"}}))
    with Lake.open(run.lake) as lake:
        lake.append([page("Ada", 1, 1)])
    code, out, _ = run("sync", "--manifest", str(manifest), "--database-url", url, "--json")
    result = json.loads(out)
    assert code == 0 and (result["direction"], result["strategy"]) == ("json_to_sql", "fail")
    code, out, _ = run("sync", "--manifest", str(manifest), "--direction", "sql_to_json", "--database-url", url,
                       "--json")
    assert code == 0 and json.loads(out)["direction"] == "sql_to_json"
