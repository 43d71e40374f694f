"""The command line end to end: real lakes, real files, exit codes and one-sentence errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from eventlog.cli import cli
from eventlog.log import writer as log_module
from eventlog.log.config import read_config, write_config
from eventlog.log.segments import list_segments
from tests.cli.runner import Run
from tests.factories import page_record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    return Run(capsys, monkeypatch, tmp_path / "lake")


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return path


def _segment_bytes(lake: Path) -> bytes:
    return b"".join(path.read_bytes() for _, path in list_segments(lake / "log" / "segments"))


def test_every_command_has_help(run: Run) -> None:
    for name in sorted(cli.list_commands(None)):  # type: ignore[arg-type]
        code, out, _ = run(name, "--help")
        assert code == 0 and "Usage:" in out, name


LOADED_AFTER = """
import sys
from eventlog.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert not exit.code, exit.code
print("loaded:", *sorted(name for name in ("sqlalchemy", "apscheduler", "projections.raw_exchange") if name in sys.modules))
"""


def test_commands_of_the_log_start_without_the_sql_side(tmp_path: Path) -> None:
    """SQLAlchemy and the scheduler load only for the commands that use them: the others start in a third of
    the time."""
    lake = ["--lake", str(tmp_path / "lake")]

    def loaded(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", LOADED_AFTER, *lake, *args], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        return done.stdout.splitlines()[-1].removeprefix("loaded:").strip()

    assert loaded("init") == ""
    for command in (["ingest", str(EXAMPLES)], ["verify"], ["log"], ["seal"], ["--help"]):
        assert loaded(*command) == "", command
    assert loaded("ddl", "--dialect", "sqlite") == "sqlalchemy"
    assert "sqlalchemy" in loaded("mirror")


def test_ingest_examples_then_again_adds_nothing(run: Run) -> None:
    assert run("init")[0] == 0
    code, out, _ = run("--json", "ingest", str(EXAMPLES))
    assert code == 0
    first = json.loads(out)
    assert first["observed"] > 20 and first["revisited"] >= 1
    assert first["redacted"] >= 3
    # One record of the original tool's pack was edited after it was hashed: reported, and still ingested.
    assert first["hash_mismatches"] == ["7d9f0c2e-5b1a-4c3e-8f00-000000010000"]
    before = _segment_bytes(run.lake)
    code, out, _ = run("ingest", str(EXAMPLES), "--json")
    second = json.loads(out)
    assert (second["observed"], second["revisited"]) == (0, 0)
    assert second["already_present"] == first["observed"] + first["revisited"]
    assert _segment_bytes(run.lake) == before
    code, out, _ = run("verify")
    assert code == 0 and out.startswith("ok:")


def test_secrets_in_examples_never_reach_the_log(run: Run) -> None:
    run("init")
    run("ingest", str(EXAMPLES))
    data = _segment_bytes(run.lake)
    for secret in (b"sk-example0000000000000000notreal", b"EXAMPLEKEY1notreal", b"enwikiSession=EXAMPLE"):
        assert secret not in data


def test_log_show_and_hash(run: Run) -> None:
    run("init")
    run("ingest", str(EXAMPLES / "llm-completions.ndjson"))
    code, out, _ = run("log", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["seq"] for row in rows] == [1, 2, 3]
    code, out, _ = run("show", rows[1]["event_id"])
    shown = json.loads(out)
    assert code == 0 and shown["body"]["request"]["headers"]["Authorization"] == "[REDACTED]"
    line = (EXAMPLES / "llm-completions.ndjson").read_bytes().splitlines()[1]
    code, out, _ = run("hash", stdin=line)
    assert code == 0 and out.strip() == rows[1]["content_sha256"]
    code, _, err = run("show", "00000000-0000-0000-0000-000000000000")
    assert code == 10 and "is not in the lake" in err


def test_seal_reindex_and_verify_failure_exit_code(run: Run, tmp_path: Path) -> None:
    run("init")
    run("append", str(_write(tmp_path / "a.ndjson", [json.dumps(page_record("Ada", n)) for n in range(3)])))
    code, out, _ = run("--json", "seal")
    assert code == 0 and json.loads(out)["sealed"] == f"{1:020d}-{3:020d}"
    code, out, _ = run("reindex")
    assert code == 0 and "indexed 3" in out
    _, segment = list_segments(run.lake / "log" / "segments")[0]
    data = bytearray(segment.read_bytes())
    data[data.index(b"Ada revision 1")] ^= 0x20
    segment.write_bytes(bytes(data))
    code, _, err = run("verify")
    assert code == 6
    assert f"log/segments/{segment.name}, line 2" in err and "content_sha256" in err


def test_init_writes_a_dataset_manifest(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    code, _, _ = run("init", "--name", "pages", "--source", "wikipedia-en", "--entity", "page", "--type",
                     "mediawiki", "--owner", "data-team", "--out", str(out))
    assert code == 0
    manifest = json.loads((out / "pages" / "manifest.json").read_text())
    assert manifest["source_system"] == "wikipedia-en" and manifest["exchange_type"] == "mediawiki"
    code, _, err = run("init", "--name", "pages", "--source", "x", "--entity", "y", "--out", str(out))
    assert code == 3 and "--force" in err
    code, _, err = run("init", "--name", "pages", "--out", str(out))
    assert code == 2 and "--source" in err


def test_missing_lake_is_exit_code_4(run: Run) -> None:
    code, _, err = run("verify")
    assert code == 4 and "is not a lake" in err


GOOD = json.dumps(page_record("Ada", 1))


@pytest.mark.parametrize(("lines", "message"), [
    ([GOOD, '{"source_system": "x",'], r"bad\.ndjson, line 2"),
    ([GOOD, json.dumps(dict(page_record("Bea", 1), observed_at_utc="2024-01-01T00:00:00"))],
     r"bad\.ndjson, line 2, at \$\.observed_at_utc: the timestamp is naive"),
    ([GOOD, GOOD.replace('"status": 200', '"status": NaN')], r"bad\.ndjson, line 2.*NaN"),
    ([GOOD, GOOD.replace('"revid": 1', '"revid": 1, "revid": 2')],
     r'bad\.ndjson, line 2, at \$\.response\.body.*duplicate key "revid"'),
    ([GOOD, GOOD.replace('"source_system": "wikipedia-en"', '"source_system": 5')],
     r"bad\.ndjson, line 2, at \$\.source_system: expected `str`, got `int`"),
    ([], r"bad\.ndjson: no exchange records found \(the input is empty\)"),
    ([GOOD, bytes(range(256)) * 4], r"bad\.ndjson, line 2"),
    ([GOOD, json.dumps(page_record("Big", 1, body="x" * (50 * 1024 * 1024)))],
     r"bad\.ndjson, line 2: the line is 52,4\d\d,\d\d\d bytes, over the 16,777,216-byte limit"),
])
def test_bad_input_is_one_sentence_exit_3_and_nothing_written(run: Run, tmp_path: Path, lines: list[str | bytes],
                                                              message: str) -> None:
    run("init")
    run("append", str(_write(tmp_path / "ok.ndjson", [json.dumps(page_record("Old", 1))])))
    before = _segment_bytes(run.lake)
    code, _, err = run("append", str(_write(tmp_path / "bad.ndjson", lines)))
    assert code == 3, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert _segment_bytes(run.lake) == before
    assert run("verify")[0] == 0


def test_a_bad_line_after_seals_within_the_call_leaves_the_log_as_it_was(run: Run, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run("init")
    config = read_config(run.lake)
    write_config(run.lake, msgspec.structs.replace(
        config, segment_policy=msgspec.structs.replace(config.segment_policy, max_events=4, max_bytes=0)))
    monkeypatch.setattr(log_module, "CHUNK", 3)
    run("append", str(_write(tmp_path / "ok.ndjson", [json.dumps(page_record("Old", n)) for n in range(5)])))
    def log_files() -> dict[str, bytes]:  # segments and seals, by name
        return {f"{path.parent.name}/{path.name}": path.read_bytes()
                for folder in ("segments", "seals") for path in (run.lake / "log" / folder).iterdir()}

    before = log_files()
    assert "seals/" + "0" * 19 + "1-" + "0" * 19 + "5.json" in before  # sealed within the first call
    lines = [json.dumps(page_record("New", n)) for n in range(20)] + ['{"source_system": "x",']
    code, _, err = run("append", str(_write(tmp_path / "bad.ndjson", lines)))
    assert code == 3 and "bad.ndjson, line 21" in err, err
    assert log_files() == before
    assert run("verify")[0] == 0


def test_append_from_stdin(run: Run) -> None:
    run("init")
    code, out, _ = run("--json", "append", "-", stdin=(GOOD + "\n").encode())
    assert code == 0 and json.loads(out)["observed"] == 1


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    command = [sys.executable, "-m", "eventlog", "--lake", str(lake)]
    assert subprocess.run([*command, "init"], capture_output=True, cwd=ROOT).returncode == 0
    done = subprocess.run([*command, "ingest", str(tmp_path / "examples")], capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # no progress output when stderr is not a terminal
    assert b"observed" in done.stdout


def test_manifest_redaction_additions_apply_to_inputs(run: Run, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"name": "pages", "source": "wikipedia-en", "entity": "page",
                                    "redaction": {"names": ["tenant id"]}}))
    record = page_record("Ada", 1)
    record["request"]["headers"] = {"X-Tenant-Id": "acme-internal-42"}
    run("init")
    code, out, _ = run("--json", "append", "--manifest", str(manifest),
                       str(_write(tmp_path / "in.ndjson", [json.dumps(record)])))
    assert code == 0 and json.loads(out)["observed"] == 1
    assert b"acme-internal-42" not in _segment_bytes(run.lake)
    code, out, _ = run("log", "--json")
    shown = json.loads(run("show", json.loads(out)["event_id"])[1])
    assert shown["body"]["redactions_applied"] == ['$.request.headers["X-Tenant-Id"]']


def test_manifest_with_a_bad_table_name_is_refused(run: Run, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"name": "pages", "source": "s", "entity": "e", "table": "Raw; DROP TABLE x"}))
    run("init")
    code, _, err = run("append", "--manifest", str(manifest), str(_write(tmp_path / "in.ndjson", [GOOD])))
    assert code == 3
    assert "at $.table: table 'Raw; DROP TABLE x' may contain only letters, digits and underscore" in err
    assert _segment_bytes(run.lake) == b""


def test_hash_agrees_with_the_log_under_an_extended_redaction_policy(run: Run, tmp_path: Path) -> None:
    from eventlog import Lake

    Lake.init(run.lake, redaction={"names": ["X-Tenant"]}).close()
    record = page_record("Ada", 1)
    record["request"]["headers"] = {"X-Tenant": "acme-internal"}
    line = json.dumps(record).encode()
    run("append", str(_write(tmp_path / "a.ndjson", [line.decode()])))
    code, out, _ = run("log", "--json")
    logged = json.loads(out.splitlines()[0])["content_sha256"]
    code, out, _ = run("--json", "hash", stdin=line)
    result = json.loads(out)
    assert code == 0 and result["content_sha256"] == logged
    assert result["redactions_applied"] == ['$.request.headers["X-Tenant"]']
    assert result["unredacted_sha256"] != logged
    code, out, _ = run("--lake", str(tmp_path / "no-lake"), "hash", stdin=line)
    assert code == 0 and out.strip() != logged  # the built-in policy alone keeps the tenant header
