"""`eventlog import --from-original-table`: the original tool's RawExchangeRecord read into the log, table untouched."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from eventlog.app.lake import Lake
from eventlog.app.migration import import_original_table, rename_statement
from eventlog.format.envelope import content_sha256
from eventlog.sql.dialects import create_schema_sql
from eventlog.sql.store import SqlEventStore
from projections.tables import attach
from tests.cli.runner import Run
from tests.factories import page_record

SECRET = "Bearer original-tool-secret-token"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    return Run(capsys, monkeypatch, tmp_path / "lake")


def _envelope(title: str, revision: int, *, stored_hash: str | None = None) -> dict[str, Any]:
    """An envelope as the original tool stored it in payload_json (null provenance and tags included)."""
    record = page_record(title, revision)
    record.update(exchange_id=str(uuid.uuid4()), provenance=None, tags=None, redactions_applied=None,
                  schema_version=1)
    record["content_sha256"] = stored_hash or content_sha256(page_record(title, revision))
    return record


def _original_table(url: str, schema: str | None, envelopes: list[dict[str, Any]], *,
                    payload_type: sa.types.TypeEngine[Any] | None = None) -> sa.Table:
    """Create the original tool's table (exchange_id primary key, content_sha256 unique) holding `envelopes`."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData(schema=None if engine.dialect.name == "sqlite" else schema)
    table = sa.Table(
        "RawExchangeRecord", metadata,
        sa.Column("exchange_id", sa.String(36), primary_key=True),
        sa.Column("exchange_type", sa.String(32), nullable=False),
        sa.Column("source_system", sa.String(200), nullable=False),
        sa.Column("entity_type", sa.String(200), nullable=False),
        sa.Column("natural_key", sa.Text),
        sa.Column("observed_at_utc", sa.String(40), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("payload_json", payload_type if payload_type is not None else sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("created_at_utc", sa.String(40), nullable=False),
        sa.Column("updated_at_utc", sa.String(40), nullable=False),
    )
    try:
        with engine.begin() as conn:
            if metadata.schema is not None:
                conn.exec_driver_sql(create_schema_sql(engine.dialect.name, metadata.schema))
            metadata.create_all(conn)
            conn.execute(table.insert(), [
                {"exchange_id": item["exchange_id"], "exchange_type": item["exchange_type"],
                 "source_system": item["source_system"], "entity_type": item["entity_type"],
                 "natural_key": item["natural_key"], "observed_at_utc": item["observed_at_utc"],
                 "content_sha256": item["content_sha256"], "payload_json": item if payload_type is not None else json.dumps(item), "schema_version": 1,
                 "created_at_utc": item["observed_at_utc"], "updated_at_utc": item["observed_at_utc"]}
                for item in envelopes])
    finally:
        engine.dispose()
    return table


def _rows(url: str, table: sa.Table) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.select(table).order_by(table.c.exchange_id))]
    finally:
        engine.dispose()


def _log_bytes(lake: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted((lake / "log").rglob("*.ndjson")))


def test_original_table_imports_reports_and_prints_the_rename(run: Run, sql_url: str, sql_schema: str,
                                                              sql_backend: str) -> None:
    good = [_envelope("Ada", 1), _envelope("Bea", 1), _envelope("Ada", 2)]
    good[0]["request"]["headers"] = {"Authorization": SECRET}
    good[0]["content_sha256"] = content_sha256({k: v for k, v in good[0].items()
                                                if k not in ("provenance", "tags", "redactions_applied")})
    wrong = _envelope("Cid", 1, stored_hash="0" * 64)
    table = _original_table(sql_url, sql_schema, [*good, wrong])
    before = _rows(sql_url, table)
    database = ("--database-url", sql_url, "--schema", sql_schema)
    assert run("init")[0] == 0

    code, out, err = run("import", "--from-original-table", "--dry-run", "--json", *database)
    plan = json.loads(out)
    assert code == 0, err
    assert (plan["read"], plan["append"]["observed"], plan["dry_run"]) == (4, 4, True)
    assert _log_bytes(run.lake) == b""

    code, out, err = run("import", "--from-original-table", "--json", *database)
    result = json.loads(out)
    assert code == 0, err
    assert (result["read"], result["append"]["observed"]) == (4, 4)
    assert result["append"]["hash_mismatches"] == [wrong["exchange_id"]]  # reported and kept
    assert result["append"]["redacted"] == 1
    quoted = {"sqlite": '"RawExchangeRecord"', "postgresql": f'"{sql_schema}"."RawExchangeRecord"',
              "mysql": f"`{sql_schema}`.`RawExchangeRecord`"}[sql_backend]
    assert quoted in result["rename_statement"] and "RawExchangeRecord_original" in result["rename_statement"]
    with Lake.open(run.lake) as lake:
        for item in [*good, wrong]:
            event = lake.get(item["exchange_id"])
            assert event is not None and event.type == "observed"
        assert lake.log.last_seq == 4
    assert SECRET.encode() not in _log_bytes(run.lake)
    assert _rows(sql_url, table) == before  # only read

    code, out, _ = run("import", "--from-original-table", *database)  # a rerun adds nothing
    assert code == 0 and "0 observed, 0 revisited, 4 already present" in out
    assert result["rename_statement"] in out and "hash_mismatch" not in out
    with Lake.open(run.lake) as lake:
        assert lake.log.last_seq == 4
    assert _rows(sql_url, table) == before


def test_a_naive_timestamp_is_named_and_nothing_is_written(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'original.db'}"
    naive = _envelope("Dee", 1)
    naive["observed_at_utc"] = "2024-05-01T13:00:00"
    _original_table(url, None, [_envelope("Ada", 1), naive, _envelope("Bea", 1)])
    assert run("init")[0] == 0
    code, out, err = run("import", "--from-original-table", "--database-url", url)
    assert code == 3 and out == ""
    assert f"exchange_id {naive['exchange_id']}" in err and "$.observed_at_utc" in err and "naive" in err
    assert "Traceback" not in err
    assert _log_bytes(run.lake) == b""


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_row_the_log_refuses_is_named_by_its_exchange_id(run: Run, tmp_path: Path, dry_run: bool) -> None:
    """What the log itself refuses at append (here a NUL in a natural key, which no SQL server stores in text) is
    named by the row's exchange_id, not by its place in the append; a dry run says the same."""
    url = f"sqlite:///{tmp_path / 'original.db'}"
    rows = [_envelope(title, 1) for title in ("Ada", "Bea", "Cy", "Dee")]
    bad = sorted(rows, key=lambda row: row["exchange_id"])[2]
    bad["natural_key"] = "Cy\u0000"
    _original_table(url, None, rows)
    assert run("init")[0] == 0
    code, out, err = run("import", "--from-original-table", "--database-url", url, *(["--dry-run"] * dry_run))
    assert code == 3 and out == "" and "Traceback" not in err, err
    assert f"exchange_id {bad['exchange_id']}, at $.natural_key: holds a NUL character" in err, err
    assert _log_bytes(run.lake) == b""


def test_a_table_of_the_new_shape_is_not_migrated(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = SqlEventStore(url)
    attach(store)
    store.create_schema()
    store.dispose()
    assert run("init")[0] == 0
    code, out, err = run("import", "--from-original-table", "--database-url", url, "--json")
    assert code == 3 and out == ""
    assert json.loads(err)["error"] == (f"RawExchangeRecord in {url} already has this tool's shape (a projection "
                                        f"with record_key); there is no original table to migrate from")
    code, _, err = run("import", "--from-original-table", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert code == 3 and "there is no table RawExchangeRecord" in err


def test_options_go_together(run: Run, tmp_path: Path) -> None:
    assert run("init")[0] == 0
    code, _, err = run("import", "--from-original-table", "--manifest", str(tmp_path / "m.json"))
    assert code == 2 and "--from-original-table" in err
    code, _, err = run("import", "--database-url", "sqlite://")
    assert code == 2 and "--from-original-table" in err


def test_pages_of_a_json_column_read_every_row_once(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    envelopes = [_envelope(f"P{n}", n) for n in range(7)]
    table = _original_table(sql_url, sql_schema, envelopes, payload_type=sa.JSON())
    before = _rows(sql_url, table)
    seen: list[int] = []
    with Lake.init(tmp_path / "lake") as lake:
        plan = import_original_table(lake, database_url=sql_url, schema=sql_schema, dry_run=True, page_rows=3)
        result = import_original_table(lake, database_url=sql_url, schema=sql_schema, page_rows=3,
                                       progress=seen.append)
        again = import_original_table(lake, database_url=sql_url, schema=sql_schema, page_rows=7)
        ids = [event.body["exchange_id"] for event in lake.events()]
    assert plan.append.observed == result.append.observed == result.read == 7 and seen[-1] == 7
    assert ids == sorted(item["exchange_id"] for item in envelopes)  # keyset order, each row once
    assert (again.append.observed, again.append.already_present) == (0, 7)
    assert _rows(sql_url, table) == before


def test_a_table_of_neither_shape_is_refused(run: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "RawExchangeRecord" (exchange_id TEXT PRIMARY KEY, payload_json TEXT)')
    engine.dispose()
    assert run("init")[0] == 0
    code, _, err = run("import", "--from-original-table", "--database-url", url)
    assert code == 3 and "does not have the original tool's shape" in err


def test_rename_statement_per_dialect() -> None:
    assert rename_statement("sqlite", None) == 'ALTER TABLE "RawExchangeRecord" RENAME TO "RawExchangeRecord_original";'
    assert rename_statement("postgresql", "lake") == \
        'ALTER TABLE "lake"."RawExchangeRecord" RENAME TO "RawExchangeRecord_original";'
    assert rename_statement("mysql", "lake") == "RENAME TABLE `lake`.`RawExchangeRecord` TO `lake`.`RawExchangeRecord_original`;"
    assert rename_statement("mssql", "lake") == "EXEC sp_rename 'lake.RawExchangeRecord', 'RawExchangeRecord_original';"
