"""Sync under SIGKILL and under concurrency: a rerun converges with nothing lost or doubled; many writers through
one PostgreSQL converge; a reader by position never skips an append that commits late."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from eventlog import Lake
from eventlog.sql.store import SqlEventStore
from tests.conftest import drop_test_schema, seeded, server_url
from tests.eventlog.test_mirror import ROOT, kill_midway
from tests.sync.helpers import database_digest, event_ids, lake_digest, lake_event_ids, page

SYNC = textwrap.dedent("""
    import sys
    from eventlog import Lake
    from eventlog.format.envelope import format_utc
    from eventlog.sync import sync
    lake_path, url, schema = sys.argv[1], sys.argv[2], sys.argv[3]
    with Lake.open(lake_path) as lake, lake.sql_store(database_url=url, schema=schema) as store:
        print("started", flush=True)
        sync(lake.log, store, now=format_utc(lake.log.clock()), batch=40,
             progress=lambda count: print(count, flush=True))
""")


def _check_converged(lakes: list[Lake], url: str, schema: str, folder: Path) -> None:
    ids = event_ids(url, schema)
    assert len(ids) == len(set(ids))
    for lake in lakes:
        mine = lake_event_ids(lake)
        assert len(mine) == len(set(mine)) and set(mine) == set(ids)
    digests = {lake_digest(lake, folder) for lake in lakes} | {database_digest(url, schema)}
    assert len(digests) == 1


@pytest.mark.slow
def test_sigkill_during_sync_then_a_rerun_converges(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    seed, rng = seeded("sync crash test")
    options = {"database_url": sql_url, "schema": sql_schema}
    a, b = Lake.init(tmp_path / "a"), Lake.init(tmp_path / "b")
    killed = 0
    try:
        for trial in range(10):
            base = trial * 1000
            a.append([page(f"P{base + n}", 1, n % 5) for n in range(300)] + [page("Shared", trial, 1)])
            b.append([page(f"Q{base + n}", 1, n % 5) for n in range(300)] + [page("Shared", trial, 1),
                                                                               page("Ada", trial, trial % 3)])
            a.append([page("Ada", trial + 50, (trial + 1) % 3)])
            b.sync(**options)
            a.close()
            killed += kill_midway(SYNC, [str(tmp_path / "a"), sql_url, sql_schema], rng, batches=12)
            a = Lake.open(tmp_path / "a")
            a.sync(**options)
            b.sync(**options)
            _check_converged([a, b], sql_url, sql_schema, tmp_path)
            assert not a.sync(**options).changed, f"seed {seed}, trial {trial}"
    finally:
        a.close()
        b.close()
    assert killed >= 5, f"seed {seed}: only {killed} of 10 kills landed mid-sync"


WRITER = textwrap.dedent("""
    import random, sys, time
    from datetime import timedelta
    from eventlog import Lake
    from tests.factories import BASE_TIME, page_record
    lake_path, url, schema, seed, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    with Lake.open(lake_path) as lake:
        rounds = 0
        while time.monotonic() < end:
            titles = [f"K{rng.randrange(30)}" for _ in range(rng.randint(1, 20))]
            lake.append([page_record(title, rng.randrange(5), observed=BASE_TIME + timedelta(hours=rng.randrange(6)))
                         for title in titles])
            lake.sync(database_url=url, schema=schema)
            rounds += 1
        print(rounds, flush=True)
""")


@pytest.mark.slow
def test_three_writers_each_with_a_lake_sync_through_one_postgresql(tmp_path: Path) -> None:
    url = server_url("postgresql")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    seed, _ = seeded("three writers")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    roots = [tmp_path / f"writer{number}" for number in range(3)]
    for root in roots:
        Lake.init(root).close()
    try:
        with SqlEventStore(url, schema=schema) as store:
            store.create_schema()  # two first syncs racing to CREATE SCHEMA would fail on the catalog
        children = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), url, schema, str(seed + number), "15"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
                    for number, root in enumerate(roots)]
        rounds = []
        for child in children:
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0, err.decode()
            rounds.append(int(out))
        assert all(count > 0 for count in rounds)
        lakes = [Lake.open(root) for root in roots]
        try:
            for _ in range(3):
                if not any([lake.sync(database_url=url, schema=schema).changed for lake in lakes]):
                    break
            _check_converged(lakes, url, schema, tmp_path)
        finally:
            for lake in lakes:
                lake.close()
    finally:
        drop_test_schema(url, schema)


def test_a_reader_by_position_never_skips_an_append_that_commits_late(tmp_path: Path, sql_url: str,
                                                                      sql_schema: str) -> None:
    with Lake.init(tmp_path / "lake") as lake:
        lake.append([page("Ada", 1, 1), page("Bea", 1, 1)])
        first, second = list(lake.events())
    with SqlEventStore(sql_url, schema=sql_schema) as store:
        store.create_schema()
        finished: list[float] = []
        with store.begin() as held:
            store.append_events([first], conn=held)  # took the append lock and its event_seq; not committed
            late = threading.Thread(target=lambda: (store.append_events([second]),
                                                    finished.append(time.monotonic())))
            late.start()
            time.sleep(0.5)
            # The second append waits for the first to commit: it cannot take a position and commit before it.
            assert late.is_alive() and not finished
            assert [event.event_id for _, event in store.events()] == []
            committed_at = time.monotonic()
        late.join(timeout=30)
        assert finished and finished[0] >= committed_at
        positions = list(store.events())
        assert [event.event_id for _, event in positions] == [first.event_id, second.event_id]
        assert positions[0][0] < positions[1][0]
        # A reader that took the first row's position as its watermark finds the second after it.
        assert [event.event_id for _, event in store.events(positions[0][0])] == [second.event_id]
