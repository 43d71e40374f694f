"""`eventlog init --database-url` with a password, and the warnings for a lake.json that still holds one."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from eventlog.app.credentials import PASSWORD_ENV
from tests.cli.runner import Run

URL = "postgresql+psycopg://eventlog:hunter2@db.internal:5432/lake"
BARE = "postgresql+psycopg://eventlog@db.internal:5432/lake"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    for name in ("EVENTLOG_DATABASE_URL", PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    return Run(capsys, monkeypatch, tmp_path / "lake")


def test_init_says_where_the_password_went(run: Run) -> None:
    code, out, err = run("init", "--database-url", URL)
    credentials = run.lake / "credentials.json"
    assert code == 0 and err == ""
    assert out.splitlines()[1] == (
        f"stored the database password in {credentials} (mode 0600), not in lake.json; to keep it out of files, "
        f"delete credentials.json and set {PASSWORD_ENV} in the environment instead")
    assert json.loads((run.lake / "lake.json").read_text())["database_url"] == BARE
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert "hunter2" not in (run.lake / "lake.json").read_text() and "hunter2" in credentials.read_text()
    code, out, err = run("--json", "init", "--exist-ok")
    assert code == 0 and err == "" and "hunter2" not in out
    assert json.loads(out)["database_url"] == "postgresql+psycopg://eventlog:***@db.internal:5432/lake"
    assert json.loads(out)["password_file"] is None


def test_init_json_names_the_password_file(run: Run, tmp_path: Path) -> None:
    private = tmp_path / "private.json"
    code, out, _ = run("init", "--json", "--database-url", URL, "--credentials-file", str(private))
    assert code == 0 and "hunter2" not in out
    assert json.loads(out)["password_file"] == str(private) and stat.S_IMODE(private.stat().st_mode) == 0o600


def test_an_old_lake_json_with_a_password_warns_in_verify_and_init(run: Run) -> None:
    assert run("init")[0] == 0
    settings = json.loads((run.lake / "lake.json").read_text())
    (run.lake / "lake.json").write_text(json.dumps({**settings, "database_url": URL}))
    warning = (f"warning: {run.lake / 'lake.json'} holds the database password in database_url; remove it from "
               f"the URL and set {PASSWORD_ENV} or keep it in {run.lake / 'credentials.json'} (mode 0600) instead\n")
    code, out, err = run("verify")
    assert code == 0 and out.startswith("ok: ") and err == warning
    code, _, err = run("init", "--exist-ok")
    assert code == 0 and err == warning


def test_a_bad_database_url_is_one_sentence_and_no_lake(run: Run) -> None:
    code, out, err = run("init", "--database-url", "nonsense:hunter2@x")
    assert code == 3 and out == "" and "hunter2" not in err
    assert err == "error: the database URL is not a valid SQLAlchemy URL (dialect+driver://...)\n"
    assert not (run.lake / "lake.json").exists()
