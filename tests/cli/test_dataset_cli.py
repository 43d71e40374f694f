"""Datasets on the command line: manifests in the original tool's format, init, import, export, packs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog.app.lake import Lake
from eventlog.capture.manifest import read_manifest
from eventlog.log.segments import list_segments
from tests.cli.runner import Run

DATA = Path(__file__).resolve().parents[1] / "data" / "packs"
ORIGINAL = DATA / "original"
DATASET = "wookieepedia-pages"
EDITED = "5e1f0c2e-5b1a-4c3e-8f00-000000000002"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    return Run(capsys, monkeypatch, tmp_path / "lake")


def copy_pack(source: Path, tmp_path: Path, name: str = "pack") -> Path:
    target = tmp_path / name
    shutil.copytree(source, target)
    return target / "manifest.json"


def log_bytes(lake: Path) -> bytes:
    return b"".join(path.read_bytes() for _, path in list_segments(lake / "log" / "segments"))


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([folder, *folder.rglob("*")]):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# -- manifests and init -----------------------------------------------------------------------------------------

def test_the_original_tools_manifest_reads_field_by_field() -> None:
    manifest = read_manifest(ORIGINAL / "manifest.json")
    assert (manifest.dataset_name, manifest.source_system, manifest.entity_type) == (DATASET, "wookieepedia", "page")
    assert manifest.sql_target.natural_key_column == "natural_key"
    assert manifest.sync_policy.conflict_strategy == "prefer_newest"
    assert manifest.redaction_policy.headers_to_redact == ("authorization", "cookie", "x-tenant-id")
    assert manifest.encryption_policy.key_source == "env"
    assert (manifest.created_at, manifest.version) == ("2024-01-15T09:00:00+00:00", 1)


@pytest.mark.parametrize(("change", "where"), [
    ({"sql_target": {"table": "Raw; DROP TABLE x"}}, "at $.sql_target.table: table 'Raw; DROP TABLE x'"),
    ({"sql_target": {"hash_column": "1hash"}}, "at $.sql_target.hash_column"),
    ({"sync_policy": {"conflict_strategy": "prefer_mine"}}, "at $.sync_policy.conflict_strategy"),
    ({"sync_policy": {"direction_default": "sideways"}}, "at $.sync_policy.direction_default"),
    ({"encryption_policy": {"key_source": "file"}}, "at $.encryption_policy.key_file_path"),
    ({"encryption_policy": {"algorithm": "rot13"}}, "at $.encryption_policy.algorithm"),
    ({"redaction_policy": {"patterns": ["(unclosed"]}}, "at $.redaction_policy.patterns[0]"),
    ({"dataset_name": "../escape"}, "at $.dataset_name"),
    ({"created_at": "2024-01-15T09:00:00"}, "at $.created_at: '2024-01-15T09:00:00' has no UTC offset"),
])
def test_a_bad_manifest_field_is_named(run: Run, tmp_path: Path, change: dict[str, object], where: str) -> None:
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    value = json.loads(manifest_path.read_text())
    value.update(change)
    manifest_path.write_text(json.dumps(value))
    run("init")
    code, _, err = run("import", "--manifest", str(manifest_path))
    assert code == 3 and where in err and err.count("\n") == 1, err
    assert log_bytes(run.lake) == b""


def test_init_writes_dir_name_manifest_as_the_original_did(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "data" / "snapshots"
    code, stdout, _ = run("--json", "init", "--name", "wookieepedia-pages", "--source", "wookieepedia", "--entity",
                          "page", "--type", "mediawiki", "--description", "pages", "--out", f"{out}/")
    assert code == 0 and json.loads(stdout)["manifest"] == str(out / DATASET / "manifest.json")
    written = json.loads((out / DATASET / "manifest.json").read_text())
    assert list(written) == ["dataset_name", "description", "owner", "exchange_type", "source_system",
                             "entity_type", "sql_target", "sync_policy", "redaction_policy", "encryption_policy",
                             "created_at", "updated_at", "version"]
    assert read_manifest(out / DATASET / "manifest.json").exchange_type == "mediawiki"
    code, _, err = run("init", "--name", DATASET, "--source", "s", "--entity", "e", "--out", str(out))
    assert code == 3 and "already exists; pass --force" in err
    # Both variants that used to end in a traceback: --force onto an existing folder, --out below a file.
    assert run("init", "--name", DATASET, "--source", "s", "--entity", "e", "--out", str(out), "--force")[0] == 0
    (tmp_path / "plain").write_text("x")
    code, _, err = run("init", "--name", "n", "--source", "s", "--entity", "e", "--out", str(tmp_path / "plain"))
    assert code == 3 and err == f"error: {tmp_path / 'plain'}: exists and is not a folder\n"
    code, _, err = run("init", "--name", "n", "--source", "s", "--entity", "e", "--out",
                       str(tmp_path / "plain" / "below"))
    assert code == 3 and "cannot write the manifest" in err and "Traceback" not in err
    code, _, err = run("init", "--name", "a/b", "--source", "s", "--entity", "e", "--out", str(out))
    assert code == 3 and "one plain folder name" in err


def test_manifests_written_by_earlier_releases_still_read(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"name": "pages", "source": "wikipedia-en", "entity": "page", "type": "mediawiki",
                                "schema": "lake", "table": "Pages", "redaction": {"names": ["tenant id"]},
                                "created_at_utc": "2024-01-01T00:00:00.000000Z", "format": 1}))
    manifest = read_manifest(path)
    assert (manifest.dataset_name, manifest.source_system, manifest.entity_type) == ("pages", "wikipedia-en", "page")
    assert (manifest.sql_target.schema, manifest.sql_target.table) == ("lake", "Pages")
    assert manifest.redaction == {"names": ["tenant id"]} and manifest.created_at == "2024-01-01T00:00:00.000000Z"


# -- import ---------------------------------------------------------------------------------------------------------

def test_an_original_pack_imports_completely_by_import_and_by_ingest(run: Run, tmp_path: Path) -> None:
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    run("init")
    code, out, err = run("--json", "import", "--manifest", str(manifest_path))
    assert code == 0, err
    result = json.loads(out)
    assert result["read"] == 7 and result["append"]["observed"] == 7
    # One record was edited after it was hashed: reported, and kept. Two others were changed by the manifest's
    # redaction, but their stated hashes are those of their content before it: they agree with themselves.
    assert result["append"]["hash_mismatches"] == [EDITED]
    assert result["append"]["redacted"] == 2  # the manifest's header and pattern, merged into the lake's policy
    data = log_bytes(run.lake)
    assert b"tenant-rebel-7731" not in data and b"INTERNAL-004211" not in data
    assert {event.event_id for event in Lake.open(run.lake).events()} == {
        f"5e1f0c2e-5b1a-4c3e-8f00-{n:012d}" for n in range(1, 8)}
    assert result["registered"] and (run.lake / "snapshots" / DATASET / "manifest.json").is_file()
    assert result["pack"]["records"] == 7
    # The same pack through `ingest` (its own manifest.json applies) gives the same events.
    other = Run(run.capsys, run.monkeypatch, tmp_path / "other")
    other("init")
    code, out, _ = other("--json", "ingest", str(manifest_path.parent))
    assert code == 0 and json.loads(out)["observed"] == 7 and json.loads(out)["hash_mismatches"] == [EDITED]
    assert [e.body for e in Lake.open(other.lake).events()] == [e.body for e in Lake.open(run.lake).events()]


def test_a_naive_timestamp_is_named_and_nothing_is_written(run: Run, tmp_path: Path) -> None:
    manifest_path = copy_pack(DATA / "naive-timestamp", tmp_path)
    run("init")
    before = folder_digest(run.lake)
    code, _, err = run("import", "--manifest", str(manifest_path))
    chunk = manifest_path.parent / "records" / "2024" / "2024-01-15" / "chunk-0002.ndjson"
    assert code == 3 and err == (f"error: {chunk}, line 2, at $.observed_at_utc: the timestamp is naive; write it "
                                 "with a UTC offset such as Z or +02:00\n")
    assert folder_digest(run.lake) == before


@pytest.mark.parametrize("command", [["import"], ["import", "--dry-run"], ["export"], ["export", "--dry-run"]])
def test_a_record_the_log_refuses_is_named_by_its_chunk_file_and_line(run: Run, tmp_path: Path,
                                                                      command: list[str]) -> None:
    """What the log itself refuses at append (a NUL in a natural key, which no SQL server stores in text) is
    named by the pack's chunk file and line, by import and export, dry or not; nothing is written."""
    manifest_path = copy_pack(DATA / "duplicate-record", tmp_path)
    chunk = manifest_path.parent / "records" / "2024" / "2024-01-15" / "chunk-0002.ndjson"
    lines = chunk.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["natural_key"] = record["natural_key"] + "\u0000"
    lines[1] = json.dumps(record).encode() + b"\n"
    chunk.write_bytes(b"".join(lines))
    run("init")
    before = folder_digest(run.lake)
    code, _, err = run(*command, "--manifest", str(manifest_path))
    assert code == 3 and err.startswith(f"error: {chunk}, line 2, at $.natural_key: holds a NUL character"), err
    assert folder_digest(run.lake) == before


def test_the_same_record_twice_is_one_event(run: Run, tmp_path: Path) -> None:
    manifest_path = copy_pack(DATA / "duplicate-record", tmp_path)
    run("init")
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path))
    result = json.loads(out)["append"]
    assert code == 0 and (result["observed"], result["already_present"]) == (7, 1)
    assert sum(1 for _ in Lake.open(run.lake).events()) == 7


def test_dry_run_writes_nothing_and_plans_what_the_run_does(run: Run, tmp_path: Path) -> None:
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    database = f"sqlite:///{tmp_path / 'mirror.db'}"
    run("init", "--database-url", database)
    run("import", "--manifest", str(copy_pack(DATA / "duplicate-record", tmp_path, "half")))  # a first part

    def rows() -> dict[str, int]:
        engine = sa.create_engine(database)
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            counts = {name: conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}
        engine.dispose()
        return counts

    lake_before, rows_before = folder_digest(run.lake), rows()
    pack_before = folder_digest(manifest_path.parent)
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path), "--dry-run")
    plan = json.loads(out)
    assert code == 0 and plan["dry_run"]
    assert (folder_digest(run.lake), rows(), folder_digest(manifest_path.parent)) == (
        lake_before, rows_before, pack_before)
    code, out, _ = run("--json", "export", "--manifest", str(manifest_path), "--dry-run")
    export_plan = json.loads(out)
    assert (folder_digest(run.lake), rows(), folder_digest(manifest_path.parent)) == (
        lake_before, rows_before, pack_before)
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path))
    done = json.loads(out)
    for field in ("observed", "revisited", "already_present", "hash_mismatch_count", "hash_mismatches"):
        assert plan["append"][field] == done["append"][field], field
    assert done["mirror"]["written"] == rows()["ExchangeEvent"] - rows_before["ExchangeEvent"]
    code, out, _ = run("--json", "export", "--manifest", str(manifest_path))
    exported = json.loads(out)
    assert exported["records"] == export_plan["records"] == 7


def test_conflict_fail_stops_before_any_write(run: Run, tmp_path: Path) -> None:
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    run("init")
    run("import", "--manifest", str(manifest_path))
    chunk = manifest_path.parent / "records" / "2024" / "2024-01-16" / "chunk-0003.ndjson"
    record = json.loads(chunk.read_bytes())
    record.update(exchange_id="5e1f0c2e-5b1a-4c3e-8f00-000000000099", observed_at_utc="2024-01-17T00:00:00+00:00")
    record["response"]["body"]["text"] = "Luke Skywalker, revision 3."
    chunk.write_text(chunk.read_text() + json.dumps(record) + "\n")
    before = folder_digest(run.lake)
    code, _, err = run("--json", "import", "--manifest", str(manifest_path), "--conflict", "fail")
    error = json.loads(err)
    assert code == 9 and error["exit_code"] == 9 and error["kind"] == "ConflictError"
    assert error["conflicts"][0]["natural_key"] == "Luke_Skywalker"
    assert folder_digest(run.lake) == before
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path), "--dry-run")
    assert code == 0 and [c["natural_key"] for c in json.loads(out)["conflicts"]] == ["Luke_Skywalker"]


# -- export and packs -----------------------------------------------------------------------------------------------

def test_export_into_an_existing_pack_keeps_every_record(run: Run, tmp_path: Path) -> None:
    # The lake holds two records the pack lacks; the pack holds seven the lake lacks.
    run("init")
    lake_only = tmp_path / "lake-only.ndjson"
    lines = [json.loads(line) for line in (ORIGINAL / "records/2024/2024-01-15/chunk-0001.ndjson").read_text()
             .splitlines()][:2]
    for number, line in enumerate(lines):
        line.update(exchange_id=f"6e1f0c2e-5b1a-4c3e-8f00-{number:012d}", natural_key=f"Lake_{number}",
                    content_sha256=None)
    lake_only.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run("append", str(lake_only))
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    manifest_before = manifest_path.read_bytes()
    code, out, _ = run("--json", "export", "--manifest", str(manifest_path))
    result = json.loads(out)
    assert code == 0 and (result["records_before"], result["records"]) == (7, 9)
    assert result["imported"]["observed"] == 7
    assert manifest_path.read_bytes() == manifest_before  # manifest.json stays beside the pack
    index = [json.loads(line) for line in (manifest_path.parent / "index.jsonl").read_text().splitlines()]
    assert len(index) == 9 and {entry["k"] for entry in index} >= {"wookieepedia|page|Lake_0",
                                                                     "wookieepedia|page|Han_Solo"}
    # What export wrote is the lake's own projection of the dataset, byte for byte.
    code, _, _ = run("reproject", "--packs")
    lake_pack = run.lake / "snapshots" / DATASET
    assert code == 0
    for part in ("records", "index.jsonl"):
        assert folder_digest(lake_pack / part) == folder_digest(manifest_path.parent / part), part


def test_reproject_packs_of_registered_datasets(run: Run, tmp_path: Path) -> None:
    run("init")
    code, out, _ = run("--json", "reproject", "--packs")
    assert code == 0 and json.loads(out) == {"packs": []}
    run("init", "--name", DATASET, "--source", "wookieepedia", "--entity", "page",
        "--out", str(run.lake / "snapshots"))
    run("ingest", str(ORIGINAL))
    code, out, _ = run("--json", "reproject", "--packs")
    first = json.loads(out)["packs"][0]
    assert code == 0 and (first["mode"], first["records"]) == ("rebuild", 7)
    code, out, _ = run("--json", "reproject", "--packs", "--dataset", DATASET)
    assert json.loads(out)["packs"][0]["mode"] == "incremental"
    code, _, err = run("reproject", "--packs", "--dataset", "nope")
    assert code == 3 and "no dataset nope" in err


def test_pack_encrypt_takes_its_key_from_the_encryption_policy(run: Run, tmp_path: Path) -> None:
    key_file = tmp_path / "pack.key"
    key_file.write_text("pack secret\n")
    run("init")
    run("init", "--name", DATASET, "--source", "wookieepedia", "--entity", "page",
        "--out", str(run.lake / "snapshots"))
    manifest_path = run.lake / "snapshots" / DATASET / "manifest.json"
    value = json.loads(manifest_path.read_text())
    value["encryption_policy"].update(enabled=True, key_source="file", key_file_path=str(key_file))
    manifest_path.write_text(json.dumps(value))
    run("ingest", str(ORIGINAL))
    run("reproject", "--packs")
    code, out, err = run("--json", "pack", "--manifest", str(manifest_path), "--out", str(tmp_path / "p.zip"))
    assert code == 0 and json.loads(out)["encrypted"], err
    code, _, err = run("unpack", "--in", str(tmp_path / "p.zip"), "--out", str(tmp_path / "back"),
                       "--passphrase-file", str(key_file))
    assert code == 0, err
    assert ((tmp_path / "back" / DATASET / "index.jsonl").read_bytes()
            == (manifest_path.parent / "index.jsonl").read_bytes())


def test_errors_under_json_are_json_objects(run: Run, tmp_path: Path) -> None:
    code, _, err = run("--json", "import", "--manifest", str(tmp_path / "missing.json"))
    assert code == 4 and json.loads(err)["kind"] == "LakeError"
    run("init")
    code, _, err = run("import", "--json", "--manifest", str(tmp_path / "missing.json"))
    assert code == 3 and json.loads(err) == {"error": f"{tmp_path / 'missing.json'}: no such manifest file",
                                             "exit_code": 3, "kind": "ManifestError"}
    code, _, err = run("--json", "import")
    assert code == 2 and json.loads(err)["kind"] == "UsageError"


@pytest.mark.parametrize(("strategy", "side"), [("prefer_json", "pack"), ("prefer_sql", "lake"),
                                                ("prefer_newest", "lake")])
def test_a_decided_conflict_is_recorded_applied_and_not_decided_again(run: Run, tmp_path: Path, strategy: str,
                                                                      side: str) -> None:
    database = f"sqlite:///{tmp_path / 'mirror.db'}"
    run("init", "--database-url", database)
    # The lake holds a newer version of Luke_Skywalker than any the pack brings.
    newer = json.loads((ORIGINAL / "records/2024/2024-01-16/chunk-0003.ndjson").read_text())
    newer.update(exchange_id="7e1f0c2e-5b1a-4c3e-8f00-000000000001", observed_at_utc="2024-01-20T00:00:00+00:00")
    newer["response"]["body"]["text"] = "Luke Skywalker, revision 9."
    (tmp_path / "newer.ndjson").write_text(json.dumps(newer) + "\n")
    run("append", str(tmp_path / "newer.ndjson"))
    manifest_path = copy_pack(ORIGINAL, tmp_path)
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path), "--conflict", strategy)
    result = json.loads(out)
    assert code == 0 and [c["natural_key"] for c in result["conflicts"]] == ["Luke_Skywalker"]
    conflict = result["conflicts"][0]
    assert conflict["winner"] == conflict[side]
    lake = Lake.open(run.lake)
    resolutions = [event for event in lake.events() if event.type == "resolved"]
    assert [(event.body["winner"], event.body["strategy"]) for event in resolutions] == [(conflict[side], strategy)]
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        current = conn.execute(sa.text("SELECT content_sha256 FROM \"RawExchangeRecord\" WHERE natural_key = "
                                       "'Luke_Skywalker'")).scalar_one()
    engine.dispose()
    assert current == conflict[side]
    code, out, _ = run("--json", "import", "--manifest", str(manifest_path), "--conflict", strategy)
    assert code == 0 and json.loads(out)["conflicts"] == []
    assert sum(1 for event in Lake.open(run.lake).events() if event.type == "resolved") == 1


def test_a_progress_bar_on_a_terminal_and_none_when_piped(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "eventlog", "--lake", str(lake)]
    subprocess.run([*command, "init"], check=True, capture_output=True, cwd=root)
    main, follower = pty.openpty()
    done = subprocess.run([*command, "ingest", str(ORIGINAL)], stdout=subprocess.PIPE, stderr=follower, cwd=root,
                          env=dict(os.environ, COLUMNS="160"))
    os.close(follower)
    shown = b""
    while True:
        try:
            block = os.read(main, 65536)
        except OSError:
            break
        if not block:
            break
        shown += block
    os.close(main)
    assert done.returncode == 0 and b"observed" in done.stdout
    assert b"ingesting" in shown and b"7/7" in shown and b"100%" in shown and b"records/s" in shown
    piped = subprocess.run([*command, "ingest", str(ORIGINAL)], capture_output=True, cwd=root)
    assert piped.returncode == 0 and piped.stderr == b""


def test_pack_unpack_import_round_trip_puts_manifest_where_the_docs_say(run: Run, tmp_path: Path) -> None:
    """The original tool's README: pack, unpack --out data/snapshots/, import --manifest
    data/snapshots/<name>/manifest.json. Its unpack left manifest.json in data/snapshots/ itself."""
    run("init")
    run("import", "--manifest", str(copy_pack(ORIGINAL, tmp_path)))
    lake_manifest = run.lake / "snapshots" / DATASET / "manifest.json"
    assert run("pack", "--manifest", str(lake_manifest), "--out", str(tmp_path / "migration.zip"))[0] == 0
    snapshots = tmp_path / "elsewhere" / "data" / "snapshots"
    code, out, _ = run("--json", "unpack", "--in", str(tmp_path / "migration.zip"), "--out", f"{snapshots}/")
    unpacked = json.loads(out)
    assert code == 0 and (unpacked["dataset"], unpacked["out_dir"]) == (DATASET, str(snapshots / DATASET))
    assert not (snapshots / "manifest.json").exists()
    assert (snapshots / DATASET / "manifest.json").read_bytes() == lake_manifest.read_bytes()
    other = Run(run.capsys, run.monkeypatch, tmp_path / "other-lake")
    other("init")
    code, out, _ = other("--json", "import", "--manifest", str(snapshots / DATASET / "manifest.json"))
    assert code == 0 and json.loads(out)["append"]["observed"] == 7
    # Unpacking into a folder already named for the dataset does not nest it again.
    code, out, _ = run("--json", "unpack", "--in", str(tmp_path / "migration.zip"), "--out",
                       str(tmp_path / "again" / DATASET))
    assert code == 0 and json.loads(out)["out_dir"] == str(tmp_path / "again" / DATASET)
    assert (tmp_path / "again" / DATASET / "index.jsonl").is_file()
