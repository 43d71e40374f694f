"""`eventlog mirror`, `reproject` and `ddl` end to end: JSON output, exit codes, one-sentence errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog.sql.store import SqlEventStore
from projections.tables import attach
from tests.cli.runner import Run
from tests.factories import BASE_TIME, page_record


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    return Run(capsys, monkeypatch, tmp_path / "lake")


def _append(run: Run, tmp_path: Path, records: list[dict[str, object]], name: str = "in.ndjson") -> None:
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    code, _, err = run("append", str(path))
    assert code == 0, err


def test_mirror_and_reproject_with_json(run: Run, tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    database = ("--database-url", sql_url, "--schema", sql_schema)
    assert run("init")[0] == 0
    _append(run, tmp_path, [page_record("Ada", n) for n in range(3)] + [page_record("Bea", 1)])
    code, out, _ = run("mirror", "--json", *database)
    assert code == 0 and json.loads(out) == {"read": 4, "written": 4, "watermark_before": 0, "watermark": 4,
                                             "batches": 1}
    code, out, _ = run("--json", "mirror", *database)
    assert code == 0 and json.loads(out)["read"] == 0
    code, out, _ = run("reproject", "--json", "--verify", *database)
    first = json.loads(out)
    assert code == 0 and first["mode"] == "rebuild" and first["rows_inserted"] == 2
    assert first["verify"]["ok"] and first["verify"]["state_digest"] == first["state_digest"]
    _append(run, tmp_path, [page_record("Ada", 3)], "more.ndjson")
    code, out, _ = run("reproject", *database)
    assert code == 0 and out.startswith("RawExchangeRecord: incremental; seq 4 -> 5, 1 of 1 events applied")
    code, out, _ = run("reproject", "--json", "--at-seq", "2", *database)
    assert code == 0 and json.loads(out)["point_in_time"] == {"at_seq": 2}
    code, out, _ = run("reproject", "--json", *database)
    again = json.loads(out)
    assert again["mode"] == "rebuild" and "point-in-time" in again["reason"]
    with SqlEventStore(sql_url, schema=sql_schema) as store, store.engine.connect() as conn:
        counts = dict(conn.execute(sa.select(attach(store).record.c.natural_key,
                                             attach(store).record.c.version_count)).all())
    assert counts == {"Ada": 4, "Bea": 1}


def test_reproject_as_of_and_known_at(run: Run, tmp_path: Path) -> None:
    run("init")
    _append(run, tmp_path, [page_record("Ada", n) for n in range(1, 4)])  # observed at hours 1, 2, 3
    code, out, _ = run("--json", "reproject", "--as-of", (BASE_TIME.replace(hour=14)).isoformat())
    assert code == 0 and json.loads(out)["events_applied"] == 2
    code, out, _ = run("--json", "reproject", "--known-at", "2000-01-01T00:00:00+02:00")
    result = json.loads(out)
    assert code == 0 and result["events_applied"] == 0 and result["point_in_time"] == {
        "known_at": "1999-12-31T22:00:00.000000Z"}


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--as-of", "2024-05-01T12:00:00", "error: --as-of 2024-05-01T12:00:00 has no UTC offset"),
    ("--known-at", "yesterday", "error: --known-at 'yesterday' is not an ISO 8601 timestamp"),
])
def test_bad_timestamps_are_exit_3(run: Run, option: str, value: str, message: str) -> None:
    run("init")
    code, out, err = run("reproject", option, value)
    assert code == 3 and out == "" and err.startswith(message) and err.count("\n") == 1


def test_verify_failure_is_exit_6(run: Run, tmp_path: Path) -> None:
    run("init")
    _append(run, tmp_path, [page_record("Ada", 1), page_record("Bea", 1)])
    assert run("reproject")[0] == 0
    with SqlEventStore(f"sqlite:///{run.lake / 'lake.db'}") as store, store.begin() as conn:
        conn.execute(attach(store).record.update().where(attach(store).record.c.natural_key == "Bea")
                     .values(payload_json='{"request":null,"response":null}'))
    code, out, err = run("reproject", "--verify")
    assert code == 6
    assert "1 different" in err and "(payload_json)" in err and err.splitlines()[-1].startswith(
        "error: projection verify failed: RawExchangeRecord differs from a rebuild")
    code, out, _ = run("reproject", "--verify", "--json")
    assert code == 6 and json.loads(out)["verify"]["differences"][0]["columns"] == ["payload_json"]
    code, out, _ = run("reproject", "--rebuild", "--verify")
    assert code == 0 and "verified: 2 rows equal a rebuild" in out


@pytest.mark.parametrize("command", ["mirror", "reproject"])
def test_unreachable_database_is_exit_7_and_writes_nothing(run: Run, tmp_path: Path, command: str) -> None:
    run("init")
    _append(run, tmp_path, [page_record("Ada", 1)])
    url = "postgresql+psycopg://someone:s3cret-pw@127.0.0.1:1/test"
    code, out, err = run(command, "--database-url", url)
    assert code == 7 and out == ""
    assert err == "error: Cannot reach the PostgreSQL server at 127.0.0.1:1 (connection refused).\n"
    missing = tmp_path / "nowhere" / "lake.db"
    code, _, err = run(command, "--database-url", f"sqlite:///{missing}")
    assert code == 7 and "Cannot open the SQLite database file" in err and not missing.parent.exists()
    assert not (run.lake / "lake.db").exists()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_wrong_credentials_are_exit_7(run: Run, tmp_path: Path, backend: str) -> None:
    from tests.conftest import server_url

    run("init")
    _append(run, tmp_path, [page_record("Ada", 1)])
    url = sa.make_url(server_url(backend)).set(username="no_such_user_x", password="s3cret-pw")
    code, _, err = run("reproject", "--database-url", url.render_as_string(hide_password=False))
    assert code == 7 and "refused the credentials of user 'no_such_user_x'" in err and "s3cret-pw" not in err


def test_ddl(run: Run) -> None:
    code, out, _ = run("ddl", "--dialect", "postgresql")
    assert code == 0 and 'CREATE TABLE IF NOT EXISTS lake."RawExchangeRecord"' in out and "DROP" not in out
    code, out, _ = run("ddl", "--dialect", "mssql", "--schema", "warehouse", "--json")
    result = json.loads(out)
    assert code == 0 and (result["dialect"], result["schema"]) == ("mssql", "warehouse")
    assert "warehouse.[ProjectionCheckpoint]" in result["ddl"]
    code, _, err = run("ddl", "--dialect", "oracle")
    assert code == 2 and "oracle" in err
    code, _, err = run("ddl", "--dialect", "sqlite", "--schema", "bad-name")
    assert code == 0  # SQLite has no schemas: the name is not used
    code, _, err = run("ddl", "--dialect", "mysql", "--schema", "bad-name")
    assert code == 3 and "schema name 'bad-name' is not valid" in err
