"""The SQL mirror on every backend: incremental from its watermark, idempotent, consistent after SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventlog import DatabaseError, Lake, SegmentPolicy
from eventlog.sql.dialects import translate_error
from eventlog.sql.mirror import mirror_key, mirror_log
from eventlog.sql.store import SqlEventStore
from tests.conftest import drop_test_schema, seeded, server_url
from tests.factories import BASE_TIME, openalex_record, page_record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    opened = Lake.init(tmp_path / "lake", segment_policy=SegmentPolicy(max_events=40, max_bytes=0, max_age_seconds=0))
    yield opened  # type: ignore[misc]
    opened.close()


def _mirrored(url: str, schema: str) -> list[tuple[int, str]]:
    """(log seq, event id) of every mirrored event, in event_seq order."""
    with SqlEventStore(url, schema=schema) as store:
        return [(event.seq, event.event_id) for _, event in store.events()]


def test_mirror_is_incremental_and_idempotent(lake: Lake, sql_url: str, sql_schema: str) -> None:
    lake.append([page_record("Ada", n) for n in range(5)] + [openalex_record(n) for n in range(60)])
    lake.append([page_record("Ada", 2, observed=BASE_TIME + timedelta(days=9))])  # a revisit: no second payload
    first = lake.mirror(database_url=sql_url, schema=sql_schema)
    assert (first.read, first.written, first.watermark_before, first.watermark) == (66, 66, 0, 66)
    again = lake.mirror(database_url=sql_url, schema=sql_schema)
    assert (again.read, again.written, again.watermark) == (0, 0, 66)
    lake.append([page_record("Bea", n) for n in range(7)])
    more = lake.mirror(database_url=sql_url, schema=sql_schema)
    assert (more.read, more.written, more.watermark_before, more.watermark) == (7, 7, 66, 73)
    with SqlEventStore(sql_url, schema=sql_schema) as store:
        assert [event for _, event in store.events()] == list(lake.events())
        assert store.get_watermark(mirror_key(lake.config.replica_id)) == 73
        with store.engine.connect() as conn:
            contents = conn.execute(sa.select(sa.func.count()).select_from(store.tables.content)).scalar_one()
    assert contents == 72


def test_batches_commit_with_their_watermark(lake: Lake, sql_url: str, sql_schema: str) -> None:
    lake.append([openalex_record(n) for n in range(25)])
    with SqlEventStore(sql_url, schema=sql_schema) as store:
        result = mirror_log(lake.log, store, batch=10)
        assert (result.batches, result.watermark) == (3, 25)
        # A lost watermark only costs a re-read: the rows are there, nothing is written twice.
        with store.begin() as conn:
            conn.execute(store.tables.sync_state.delete())
        again = mirror_log(lake.log, store, batch=7)
        assert (again.read, again.written, again.watermark) == (25, 0, 25)
    assert _mirrored(sql_url, sql_schema) == [(event.seq, event.event_id) for event in lake.events()]


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://someone:s3cret-pw@127.0.0.1:1/test",
    "mysql+pymysql://someone:s3cret-pw@127.0.0.1:1/test",
])
def test_unreachable_database_is_one_sentence(lake: Lake, url: str) -> None:
    lake.append([page_record("Ada", 1)])
    with pytest.raises(DatabaseError) as caught:
        lake.mirror(database_url=url)
    message = str(caught.value)
    assert message.startswith("Cannot reach the") and "s3cret-pw" not in message and "\n" not in message


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_wrong_credentials_write_nothing(lake: Lake, backend: str) -> None:
    url = server_url(backend)
    lake.append([page_record("Ada", 1)])
    schema = f"t_{uuid.uuid4().hex[:16]}"
    stranger = sa.make_url(url).set(username="no_such_user_x", password="s3cret-pw")
    with pytest.raises(DatabaseError, match="refused the credentials of user 'no_such_user_x'") as caught:
        lake.mirror(database_url=stranger.render_as_string(hide_password=False), schema=schema)
    assert "s3cret-pw" not in str(caught.value)
    engine = sa.create_engine(url)
    try:
        assert not sa.inspect(engine).has_schema(schema)
    finally:
        engine.dispose()


def kill_midway(code: str, args: list[str], rng: random.Random, *, batches: int) -> bool:
    """Run `code` in a child that prints "started", then a line per committed batch; SIGKILL it after a random
    number of batches (1 to `batches`) and a random moment, inside a transaction or between two.

    Returns whether the kill landed before the child finished; a child that fails otherwise fails the test.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, cwd=ROOT) as child:
        assert child.stdout is not None and child.stdout.readline() == b"started\n"
        for _ in range(rng.randint(1, batches)):
            child.stdout.readline()
        time.sleep(rng.uniform(0, 0.02))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
    assert child.returncode in (0, -signal.SIGKILL), err.decode()
    return child.returncode == -signal.SIGKILL


MIRROR = textwrap.dedent("""
    import sys
    from eventlog import Lake
    from eventlog.sql.mirror import mirror_log
    from eventlog.sql.store import SqlEventStore
    lake_path, url, schema, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with Lake.open(lake_path) as lake, SqlEventStore(url, schema=schema) as store:
        print("started", flush=True)
        mirror_log(lake.log, store, batch=batch, progress=lambda count: print(count, flush=True))
""")


@pytest.mark.slow
def test_sigkill_during_mirror_leaves_tables_and_watermark_consistent(tmp_path: Path, sql_url: str,
                                                                      sql_schema: str) -> None:
    seed, rng = seeded("mirror crash test")
    root = tmp_path / "lake"
    Lake.init(root).close()
    killed = 0
    for trial in range(5):
        with Lake.open(root) as lake:  # fresh work for every child, so that it is killed halfway through
            lake.append([openalex_record(n) for n in range(trial * 2000, trial * 2000 + 2000)])
            expected = [(event.seq, event.event_id) for event in lake.events()]
            replica = lake.config.replica_id
        killed += kill_midway(MIRROR, [str(root), sql_url, sql_schema, str(rng.choice([5, 10, 20]))], rng, batches=50)
        with SqlEventStore(sql_url, schema=sql_schema) as store:
            store.create_schema()  # the child may have died before it made the tables
            watermark = store.get_watermark(mirror_key(replica))
        mirrored = _mirrored(sql_url, sql_schema)
        # Every committed batch carries its watermark: the table holds exactly the log's first `watermark` events.
        assert mirrored == expected[:watermark], f"trial {trial} (seed {seed})"
    print(f"{killed} of 5 children killed mid-run")
    assert killed >= 4, f"children finished before they were killed (seed {seed})"
    with Lake.open(root) as lake:
        rest = lake.mirror(database_url=sql_url, schema=sql_schema)
    assert rest.watermark == len(expected)
    assert _mirrored(sql_url, sql_schema) == expected


def _mysql_store_or_skip(schema: str, *, max_packet: int) -> SqlEventStore:
    url = server_url("mysql")  # skips (or fails, where servers are required) without a MariaDB/MySQL server
    return SqlEventStore(url, schema=schema, max_packet=max_packet)


@pytest.fixture
def mysql_schema() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    drop_test_schema(server_url("mysql"), name)


def test_mysql_inserts_stay_within_max_allowed_packet(lake: Lake, mysql_schema: str) -> None:
    # 60 payloads of about 2 KB: one batch of the mirror, split into statements of at most 16 KiB each.
    lake.append([openalex_record(n) for n in range(60)])
    with _mysql_store_or_skip(mysql_schema, max_packet=16384) as store:
        store.create_schema()
        with store.begin() as conn:
            before = int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_insert'").one()[1])
            written = store.append_events(lake.events(), conn=conn)
            inserts = int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_insert'").one()[1]) - before
        assert written == 60
        # Content rows of ~2 KB, event rows of ~1 KB: at least 60 * 3 KB / 16 KiB statements.
        assert inserts >= 60 * 3000 // 16384
    with SqlEventStore(server_url("mysql"), schema=mysql_schema) as store:
        assert [event for _, event in store.events()] == list(lake.events())


def test_mysql_row_beyond_max_allowed_packet_is_named(lake: Lake, mysql_schema: str) -> None:
    lake.append([page_record("Ada", 1), page_record("Big", 1, body="x" * 40_000), page_record("Cy", 1)])
    with _mysql_store_or_skip(mysql_schema, max_packet=32768) as store:
        with pytest.raises(DatabaseError) as refused:
            mirror_log(lake.log, store)
        message = str(refused.value)
        assert "max_allowed_packet of 32768 bytes" in message and "ExchangeContent row" in message
        assert "Cannot reach" not in message
        assert store.max_event_seq() == 0  # all or nothing: the batch with the large row kept nothing
    with SqlEventStore(server_url("mysql"), schema=mysql_schema) as store:
        result = mirror_log(lake.log, store)  # the server's own limit (16 MiB by default) takes the row
        assert result.written == 3


def test_mysql_refusal_of_a_large_packet_names_the_cause() -> None:
    url = server_url("mysql")
    engine = sa.create_engine(url)
    try:
        conn = engine.connect()
        limit = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        with pytest.raises(sa.exc.DBAPIError) as failed:
            conn.exec_driver_sql("SELECT %s", ("x" * (limit + 1024),))
        conn.invalidate()  # the server closed it
    finally:
        engine.dispose()
    message = str(translate_error(failed.value, sa.make_url(url)))
    assert "max_allowed_packet" in message and "Cannot reach" not in message, message
