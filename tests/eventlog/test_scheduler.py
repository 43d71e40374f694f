"""The scheduler with real processes, real time (1 s intervals), real flocks and the run state in the lake's SQLite.

A test-only job, `record`, is registered through EVENTLOG_SCHEDULER_EXTRA_JOBS; it appends `start`/`end` lines
with its pid and the time to the file named by EVENTLOG_TEST_RUNS and sleeps EVENTLOG_TEST_JOB_SECONDS between.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eventlog import InputError, Lake
from eventlog.app.scheduler import (
    DEFAULT_TABLE,
    EXTRA_JOBS_ENV,
    LEGACY_TABLE,
    cron_trigger,
    job_lock,
    job_registry,
    load_config,
    parse_duration,
)
from eventlog.cli import main
from tests.factories import page_record

ROOT = Path(__file__).resolve().parents[2]
RECORD_JOB = "record=tests.eventlog.test_scheduler:recording_job"


def recording_job(lake: Lake) -> dict[str, Any]:
    """Test-only job: notes its start and end (pid, time) and sleeps in between."""
    runs = Path(os.environ["EVENTLOG_TEST_RUNS"])
    seconds = float(os.environ.get("EVENTLOG_TEST_JOB_SECONDS", "0"))
    _note(runs, "start")
    time.sleep(seconds)
    _note(runs, "end")
    return {"slept_ms": int(seconds * 1000), "lake": lake.root.name}


def _note(path: Path, what: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def read_runs(path: Path) -> list[tuple[int, float, float | None]]:
    """(pid, start, end or None) of every run, in start order."""
    runs: list[tuple[int, float, float | None]] = []
    open_runs: dict[int, int] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        what, pid, moment = line.split()
        if what == "start":
            open_runs[int(pid)] = len(runs)
            runs.append((int(pid), float(moment), None))
        else:
            index = open_runs.pop(int(pid))
            runs[index] = (runs[index][0], runs[index][1], float(moment))
    return runs


def assert_no_overlap(runs: list[tuple[int, float, float | None]]) -> None:
    finished = [(start, end) for _, start, end in runs if end is not None]
    for (_, previous_end), (next_start, _) in itertools.pairwise(finished):
        assert next_start >= previous_end, f"runs overlap: {runs}"
    assert all(end is not None for _, _, end in runs[:-1]), runs


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


class Schedulers:
    """Scheduler processes started by one test; any still running at the end are killed."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.lake = tmp_path / "lake"
        self.runs = tmp_path / "runs.log"
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        Lake.init(self.lake).close()

    def config(self, text: str) -> Path:
        path = self.tmp_path / f"scheduler-{len(list(self.tmp_path.glob('scheduler-*.toml')))}.toml"
        path.write_text(text)
        return path

    def start(self, config: Path, *args: str, job_seconds: float = 0.0) -> subprocess.Popen[bytes]:
        env = {key: value for key, value in os.environ.items()
               if key not in ("EVENTLOG_LAKE", "EVENTLOG_DATABASE_URL")}
        env.update({"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "error", EXTRA_JOBS_ENV: RECORD_JOB,
                    "EVENTLOG_TEST_RUNS": str(self.runs), "EVENTLOG_TEST_JOB_SECONDS": str(job_seconds)})
        log = self.tmp_path / f"stderr-{len(self.started)}.log"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "eventlog", "--lake", str(self.lake), "schedule", "--config", str(config),
                 *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr)
        self.started.append((process, log))
        return process

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        """What the process logged so far; a traceback or warning in it fails the test."""
        text = next(log for started, log in self.started if started is process).read_text()
        assert "Traceback" not in text and "Warning" not in text, text
        return text

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=15)

    def close(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def schedulers(tmp_path: Path) -> Iterator[Schedulers]:
    started = Schedulers(tmp_path)
    yield started
    started.close()


def ended(runs: Path, count: int) -> Callable[[], bool]:
    return lambda: sum(1 for _, _, end in read_runs(runs) if end is not None) >= count


def state_rows(lake: Path) -> dict[str, dict[str, Any]]:
    """The run-state table's rows in the lake's SQLite, by job."""
    with sqlite3.connect(lake / "lake.db") as db:
        db.row_factory = sqlite3.Row
        rows = {row["job"]: dict(row) for row in db.execute(f"SELECT * FROM {DEFAULT_TABLE}")}
    db.close()
    return rows


def test_jobs_run_and_log_one_line_per_run_with_the_run_state_in_the_lake_database(schedulers: Schedulers) -> None:
    with Lake.open(schedulers.lake) as lake:
        lake.append([page_record("Foo", 1)])
    config = schedulers.config('[jobs.seal]\nevery = "1s"\n\n[jobs.record]\nevery = "1s"\n')
    process = schedulers.start(config)
    wait_for(ended(schedulers.runs, 2))
    assert schedulers.stop(process) == 0
    log = schedulers.stderr(process)
    assert re.search(r"job=seal start=\S+Z duration=\d+\.\d{3}s outcome=ok sealed=0+1-0+1\n", log), log
    assert re.search(r"job=record start=\S+Z duration=\S+s outcome=ok lake=lake slept_ms=0\n", log), log
    assert "scheduler started: lake" in log and log.rstrip().endswith("scheduler stopped")
    rows = state_rows(schedulers.lake)
    assert sorted(rows) == ["record", "seal"]
    replica = json.loads((schedulers.lake / "lake.json").read_text())["replica_id"]
    for name, row in rows.items():
        assert row["replica_id"] == replica and row["schedule"] == f"{name} every 1s, misfire grace 1s"
        assert row["last_outcome"] == "ok" and row["last_duration_seconds"] >= 0
        assert datetime.fromisoformat(row["next_run_utc"]) > datetime.fromisoformat(row["last_start_utc"])
    # Nothing but plain text and numbers is stored.
    assert {type(value) for row in rows.values() for value in row.values()} <= {str, float}


@pytest.mark.slow
def test_a_slow_job_never_overlaps_itself_and_sigterm_lets_it_finish(schedulers: Schedulers) -> None:
    config = schedulers.config('[jobs.record]\nevery = "1s"\n')
    process = schedulers.start(config, job_seconds=1.5)
    # The second run starts only after the first ended; stop while it runs.
    wait_for(lambda: len(read_runs(schedulers.runs)) >= 2)
    assert read_runs(schedulers.runs)[-1][2] is None
    assert schedulers.stop(process) == 0
    runs = read_runs(schedulers.runs)
    assert len(runs) == 2 and all(end is not None for _, _, end in runs)
    assert_no_overlap(runs)
    log = schedulers.stderr(process)
    assert "outcome=skipped: still running (in this scheduler)" in log
    assert log.index("received SIGTERM") < log.rindex("job=record") < log.index("scheduler stopped")


@pytest.mark.slow
def test_no_overlap_across_two_scheduler_processes(schedulers: Schedulers) -> None:
    config = schedulers.config('[jobs.record]\nevery = "1s"\n')
    # A run elsewhere holds the job's lock: a run here skips it and says so.
    with job_lock(schedulers.lake, "record") as holder:
        assert holder is None
        once = schedulers.start(config, "--once")
        assert once.wait(timeout=15) == 0
    log = schedulers.stderr(once)
    assert re.search(rf"job=record .* outcome=skipped: still running \(pid {os.getpid()} since \S+Z\)", log), log
    assert read_runs(schedulers.runs) == []
    first = schedulers.start(config, job_seconds=0.7)
    second = schedulers.start(config, job_seconds=0.7)
    wait_for(ended(schedulers.runs, 4), timeout=15)
    assert schedulers.stop(first) == 0 and schedulers.stop(second) == 0
    runs = read_runs(schedulers.runs)
    assert_no_overlap(runs)
    assert {pid for pid, _, _ in runs} <= {first.pid, second.pid}


def test_runs_missed_while_stopped_are_made_up_once(schedulers: Schedulers) -> None:
    config = schedulers.config('[jobs.record]\nevery = "1h"\n')
    process = schedulers.start(config)
    wait_for(lambda: "scheduler started" in schedulers.stderr(process))
    assert schedulers.stop(process) == 0
    assert read_runs(schedulers.runs) == []
    assert datetime.fromisoformat(state_rows(schedulers.lake)["record"]["next_run_utc"]) > datetime.now(UTC)
    # As if this scheduler had been down for three hours: its stored next run lies in the past.
    past = (datetime.now(UTC) - timedelta(hours=3, seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(schedulers.lake / "lake.db") as db:
        db.execute(f"UPDATE {DEFAULT_TABLE} SET next_run_utc = ? WHERE job = 'record'", (past,))
    db.close()
    again = schedulers.start(config)
    wait_for(ended(schedulers.runs, 1))
    time.sleep(0.5)
    assert schedulers.stop(again) == 0
    assert len(read_runs(schedulers.runs)) == 1
    log = schedulers.stderr(again)
    assert re.search(r"job=record missed 4 run\(s\) while stopped; they run once now \(coalesced\)", log), log
    assert "skipped" not in log
    row = state_rows(schedulers.lake)["record"]
    assert row["last_outcome"] == "ok" and row["last_start_utc"] > past
    # The next run follows the made-up one by the interval, as the stored cadence said.
    assert datetime.fromisoformat(row["next_run_utc"]) - datetime.fromisoformat(past) == timedelta(hours=4)


class _ShellCommand:
    """Unpickling this runs `touch PATH` through the shell: what a crafted row of the old job store could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def test_a_crafted_row_in_the_database_is_data_never_code(schedulers: Schedulers) -> None:
    marker = schedulers.tmp_path / "marker"
    # The payload works: unpickled, it runs its shell command.
    control = schedulers.tmp_path / "control"
    assert pickle.loads(pickle.dumps(_ShellCommand(control))) == 0 and control.exists()
    payload = pickle.dumps({"version": 1, "id": "eventlog.record", "func": _ShellCommand(marker)})
    replica = json.loads((schedulers.lake / "lake.json").read_text())["replica_id"]
    with sqlite3.connect(schedulers.lake / "lake.db") as db:
        # The old APScheduler job store, as its SQLAlchemyJobStore laid it out, with a row for a configured job.
        db.execute(f"CREATE TABLE {LEGACY_TABLE} (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
                   "job_state BLOB NOT NULL)")
        db.execute(f"INSERT INTO {LEGACY_TABLE} VALUES (?, ?, ?)", ("eventlog.record", 0.0, payload))
        # The new table, with the payload as text in every column that is read.
        db.execute(f"CREATE TABLE {DEFAULT_TABLE} (replica_id VARCHAR(36) NOT NULL, job VARCHAR(63) NOT NULL, "
                   "schedule VARCHAR(400) NOT NULL, next_run_utc VARCHAR(32), last_start_utc VARCHAR(32), "
                   "last_duration_seconds FLOAT, last_outcome VARCHAR(16), updated_utc VARCHAR(32) NOT NULL, "
                   "PRIMARY KEY (replica_id, job))")
        text = payload.decode("latin-1")
        db.execute(f"INSERT INTO {DEFAULT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (replica, "record", text, text, text, text, text, text))
        db.execute(f"INSERT INTO {DEFAULT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (replica, text, text, text, text, text, text, text))
        db.execute(f"INSERT INTO {DEFAULT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (replica, "seal", text, "2024-05-01T00:00:00.000000Z", text, text, text, text))
    db.close()
    config = schedulers.config('[jobs.record]\nevery = "1s"\n\n[jobs.seal]\nevery = "1h"\n')
    process = schedulers.start(config)
    wait_for(ended(schedulers.runs, 1))
    assert schedulers.stop(process) == 0
    log = schedulers.stderr(process)
    assert (f"WARNING eventlog.app.scheduler: table {LEGACY_TABLE} of an older version holds APScheduler's pickled "
            "jobs; it is never read (the jobs come from the configuration file)") in log, log
    assert (f"job=record: its row in table {DEFAULT_TABLE} holds no valid schedule and next run (UTC timestamp); "
            "the row is ignored and the job starts its schedule afresh") in log
    assert f"removed 1 row(s) of table {DEFAULT_TABLE} that name no configured job" in log
    # The seal row's next run is a timestamp but its schedule is not this one: it starts afresh, nothing made up.
    assert "job=seal missed" not in log and "job=seal " not in log
    assert re.search(r"job=record .* outcome=ok", log) and "scheduler stopped" in log
    assert not marker.exists()
    rows = state_rows(schedulers.lake)
    assert sorted(rows) == ["record", "seal"]
    assert rows["seal"]["schedule"] == "seal every 3600s, misfire grace 3600s" and rows["record"]["last_outcome"] == "ok"
    with sqlite3.connect(schedulers.lake / "lake.db") as db:
        assert db.execute(f"SELECT job_state FROM {LEGACY_TABLE}").fetchone()[0] == payload
    db.close()
    assert not marker.exists()


def test_a_table_of_another_shape_is_refused_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Lake.init(tmp_path / "lake").close()
    with sqlite3.connect(tmp_path / "lake" / "lake.db") as db:
        db.execute("CREATE TABLE upkeep (id VARCHAR(191) PRIMARY KEY, job_state BLOB)")
    db.close()
    path = tmp_path / "scheduler.toml"
    path.write_text('[scheduler]\ntable = "upkeep"\n\n[jobs.seal]\nevery = "1h"\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["--lake", str(tmp_path / "lake"), "schedule", "--config", str(path)])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert err == (f"error: {path}, at scheduler.table: table upkeep exists in the lake's database without the "
                   "run-state columns replica_id, job, schedule, next_run_utc, last_start_utc, "
                   "last_duration_seconds, last_outcome, updated_utc; name another table\n")


def test_the_run_state_is_saved_again_after_the_database_failed_while_running(schedulers: Schedulers) -> None:
    config = schedulers.config('[jobs.record]\nevery = "1s"\n')
    process = schedulers.start(config)
    wait_for(ended(schedulers.runs, 1))
    with sqlite3.connect(schedulers.lake / "lake.db") as db:
        ddl = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (DEFAULT_TABLE,)).fetchone()[0]
        db.execute(f"DROP TABLE {DEFAULT_TABLE}")
    db.close()
    wait_for(lambda: "cannot save the run state, retrying: " in schedulers.stderr(process))
    runs = len(read_runs(schedulers.runs))
    wait_for(ended(schedulers.runs, runs + 1))
    with sqlite3.connect(schedulers.lake / "lake.db") as db:
        db.execute(ddl)
    db.close()
    wait_for(lambda: "the run state is saved again" in schedulers.stderr(process))
    assert schedulers.stop(process) == 0
    log = schedulers.stderr(process)
    assert log.count("cannot save the run state") == 1 and log.count("the run state is saved again") == 1
    assert state_rows(schedulers.lake)["record"]["last_outcome"] == "ok"


def test_once_runs_each_job_once_with_mirror_and_reproject(schedulers: Schedulers) -> None:
    with Lake.open(schedulers.lake) as lake:
        lake.append([page_record("Foo", number) for number in range(3)])
    config = schedulers.config('[jobs.mirror]\nevery = "5m"\n\n[jobs.reproject]\ncron = "*/10 * * * *"\n\n'
                               '[jobs.seal]\nevery = "1h"\n\n[jobs.verify]\nevery = "1d"\n\n[jobs.record]\nevery = "1s"\n')
    process = schedulers.start(config, "--once", "--json")
    assert process.wait(timeout=15) == 0, schedulers.stderr(process)
    assert process.stdout is not None
    runs = json.loads(process.stdout.read())["runs"]
    assert [(run["job"], run["outcome"]) for run in runs] == [
        ("mirror", "ok"), ("reproject", "ok"), ("seal", "ok"), ("verify", "ok"), ("record", "ok")]
    assert runs[3]["counts"] == {"events": 3, "evicted": 0, "seals": 1, "segments": 1}
    assert runs[0]["counts"]["written"] == 3 and runs[1]["counts"]["events_applied"] == 3
    assert runs[2]["counts"]["sealed"] == f"{1:020d}-{3:020d}"
    assert len(read_runs(schedulers.runs)) == 1
    log = schedulers.stderr(process)
    assert len([line for line in log.splitlines() if " job=" in line]) == 5
    assert re.search(r"job=mirror .* outcome=ok batches=1 read=3 watermark=3 watermark_before=0 written=3", log)


def test_the_packs_job_brings_registered_datasets_packs_up_to_the_log(schedulers: Schedulers) -> None:
    with Lake.open(schedulers.lake) as lake:
        lake.append([page_record("Foo", number) for number in range(3)])
    folder = schedulers.lake / "snapshots" / "pages"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"dataset_name": "pages", "source_system": "wikipedia-en",
                                                      "entity_type": "page"}))
    process = schedulers.start(schedulers.config('[jobs.packs]\nevery = "5m"\n'), "--once", "--json")
    assert process.wait(timeout=15) == 0, schedulers.stderr(process)
    assert process.stdout is not None
    runs = json.loads(process.stdout.read())["runs"]
    assert [(run["job"], run["outcome"], run["counts"]) for run in runs] == [
        ("packs", "ok", {"datasets": 1, "rebuilt": 1, "records": 3, "records_added": 3})]
    assert len((folder / "index.jsonl").read_text().splitlines()) == 3


def test_a_failing_job_is_logged_and_sets_the_exit_code_of_once(schedulers: Schedulers) -> None:
    with Lake.open(schedulers.lake) as lake:
        lake.append([page_record("Foo", 1)])
        assert lake.seal() is not None
    segment = next((schedulers.lake / "log" / "segments").glob("*.ndjson"))
    segment.write_bytes(segment.read_bytes().replace(b"Foo revision 1", b"Foo revision X"))
    config = schedulers.config('[jobs.verify]\nevery = "1h"\n\n[jobs.seal]\nevery = "5m"\n')
    process = schedulers.start(config, "--once")
    assert process.wait(timeout=15) == 6
    log = schedulers.stderr(process)
    assert re.search(rf"job=verify .* outcome=failed: verify failed: log/segments/{segment.name}, line 1: ", log), log
    assert re.search(r"job=seal .* outcome=ok", log)
    assert log.rstrip().splitlines()[-1].startswith("error: job verify failed: verify failed: ")


def test_an_unreachable_database_fails_the_mirror_run_and_stops_the_scheduler(schedulers: Schedulers) -> None:
    lake_json = schedulers.lake / "lake.json"
    settings = json.loads(lake_json.read_text())
    lake_json.write_text(json.dumps({**settings, "database_url": "postgresql+psycopg://nobody@127.0.0.1:9/none"}))
    config = schedulers.config('[jobs.mirror]\nevery = "5m"\n')
    once = schedulers.start(config, "--once")
    assert once.wait(timeout=30) == 7
    assert re.search(r"job=mirror .* outcome=failed: Cannot reach the PostgreSQL server at 127.0.0.1:9",
                     schedulers.stderr(once))
    # The run state lives in the same database: the scheduler cannot start without it.
    served = schedulers.start(config)
    assert served.wait(timeout=30) == 7
    assert schedulers.stderr(served).startswith("error: Cannot reach the PostgreSQL server at 127.0.0.1:9")


# -- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "where", "reason"), [
    ('[jobs.bogus]\nevery = "1m"\n', "jobs.bogus", "unknown job 'bogus'; known jobs: mirror, packs, reproject, reproject-check, seal, verify"),
    ('[jobs.seal]\nevery = "5 minutes"\n', "jobs.seal.every", "is not a duration"),
    ('[jobs.seal]\nevery = "0s"\n', "jobs.seal.every", "is not a positive duration"),
    ('[jobs.seal]\ncron = "*/10 * * *"\n', "jobs.seal.cron", "has 4 fields"),
    ('[jobs.seal]\ncron = "61 * * * *"\n', "jobs.seal.cron", "is not a valid cron expression"),
    ('[jobs.seal]\ncron = "0 0 * * 9"\n', "jobs.seal.cron", "is not a day of the week"),
    ('[jobs.seal]\nevry = "1m"\n', "jobs.seal.evry", "unknown key; expected cron, every, misfire_grace"),
    ('[jobs.seal]\nevery = "1m"\ncron = "* * * * *"\n', "jobs.seal", "exactly one of `every`"),
    ('[jobs.seal]\nmisfire_grace = "1m"\n', "jobs.seal", "exactly one of `every`"),
    ('[jobs.seal]\nevery = "1m"\nmisfire_grace = "soon"\n', "jobs.seal.misfire_grace", "is not a duration"),
    ('[scheduler]\ntimezone = "Mars/Olympus"\n[jobs.seal]\nevery = "1m"\n', "scheduler.timezone", "unknown time"),
    ('[scheduler]\ntable = "jobs; drop"\n[jobs.seal]\nevery = "1m"\n', "scheduler.table", "not a plain SQL"),
    ('[scheduler]\ntable = "eventlog_scheduler_jobs"\n[jobs.seal]\nevery = "1m"\n', "scheduler.table",
     "is the old APScheduler job store, which held pickled jobs and is never read"),
    ('[scheduler]\nlake = "x"\n[jobs.seal]\nevery = "1m"\n', "scheduler.lake", "unknown key"),
    ('[job.seal]\nevery = "1m"\n', "job", "unknown key"),
    ('[scheduler]\n', "jobs", "no jobs are configured"),
    ("jobs = 3\n", "jobs", "expected a table"),
])
def test_bad_configurations_exit_3_naming_the_file_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               text: str, where: str, reason: str) -> None:
    path = tmp_path / "scheduler.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main(["--lake", str(tmp_path / "lake"), "schedule", "--config", str(path)])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}, at {where}: ") and reason in err, err
    assert len(err.splitlines()) == 1


def test_unreadable_configurations(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[jobs.seal\nevery = 1\n")
    with pytest.raises(InputError, match=r"broken.toml: not valid TOML: .*line 1"):
        load_config(broken)


def test_a_valid_configuration(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[scheduler]\ntimezone = "Europe/Zurich"\n\n[jobs.mirror]\nevery = "1h30m"\n\n'
                    '[jobs.reproject]\ncron = "*/10  * * * *"\nmisfire_grace = 90\n\n[jobs.seal]\nevery = 45\n')
    config = load_config(path)
    assert config.timezone == "Europe/Zurich" and config.table == DEFAULT_TABLE
    mirror, reproject, seal = config.jobs
    assert (mirror.name, mirror.every, mirror.misfire_grace) == ("mirror", 5400.0, 5400.0)
    assert (reproject.cron, reproject.misfire_grace) == ("*/10 * * * *", 90.0)
    assert seal.every == 45.0


def test_the_example_configuration_is_valid() -> None:
    config = load_config(ROOT / "ops" / "scheduler.example.toml")
    assert [spec.name for spec in config.jobs] == ["mirror", "reproject", "reproject-check", "packs", "seal",
                                                     "verify"]
    unit = (ROOT / "ops" / "eventlog-scheduler.service").read_text()
    assert "schedule --config" in unit and "KillSignal=SIGTERM" in unit


def test_durations() -> None:
    assert parse_duration("5m") == 300 and parse_duration("1h30m") == 5400 and parse_duration("1d") == 86400
    assert parse_duration("500ms") == 0.5 and parse_duration(2) == 2 and parse_duration("1.5s") == 1.5
    for bad in ("", "5", "m5", "5 m", True, -1, "1w"):
        with pytest.raises(InputError):
            parse_duration(bad)


@pytest.mark.parametrize(("field", "weekday"), [("0", 6), ("7", 6), ("sun", 6), ("1", 0), ("1-5", 3), ("5-7", 4),
                                                 ("6", 5), ("0-6/2", 3), ("SAT", 5), ("*", 3), ("*/3", 5)])
def test_cron_weekdays_count_from_sunday_as_crontab_does(field: str, weekday: int) -> None:
    # Just after midnight on Wednesday 2024-05-01: the next run falls on the first matching day from Thursday on.
    trigger = cron_trigger(f"0 0 * * {field}", "UTC")
    assert trigger.get_next_fire_time(None, datetime(2024, 5, 1, 0, 0, 30, tzinfo=UTC)).weekday() == weekday


def test_extra_jobs_hook() -> None:
    registry = job_registry({EXTRA_JOBS_ENV: f" {RECORD_JOB} , "})
    assert registry["record"] is recording_job and {"mirror", "reproject", "seal", "verify"} <= set(registry)
    for bad in ("record", "Record=tests.eventlog.test_scheduler:recording_job", "x=tests.nothing_here:job",
                "x=tests.eventlog.test_scheduler:absent", "x=tests.eventlog.test_scheduler:ROOT"):
        with pytest.raises(InputError, match=EXTRA_JOBS_ENV):
            job_registry({EXTRA_JOBS_ENV: bad})
