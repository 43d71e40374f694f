"""Mirror and projection throughput, each against a floor measured in the same run.

    PYTHONPATH=. python tests/benchmarks/bench_projection.py [--events 100000] [--lake-events 1000000]
        [--new-events 1000] [--original 20000] [--only mirror,rebuild,incremental,original] [--seed S]

Results, one JSON line each:
- mirror: `Lake.mirror` of N seeded OpenAlex-shaped events of about 2 KB into an empty database (target 20,000
  events/s). Floor: the very rows the store writes (ExchangeEvent and ExchangeContent) into bare tables without
  keys or indexes, by the store's own bulk path (COPY on PostgreSQL, the driver's executemany elsewhere).
- rebuild: `reproject --rebuild` of RawExchangeRecord from those N events (target 30,000 events/s). Floor: the
  resulting rows written by the same bulk path into a bare table with the same columns and no key or index.
- incremental: a lake of M small events projected in full, then K new events (half new keys, half new versions of
  old ones) projected incrementally; the cost must stay under 2% of the full rebuild, which is the floor here.
  peak_rss_mb is the whole process's, lake building included.
- digest_check: then, with nothing new, `reproject --check` (the state digest of every row as stored against the
  checkpoint's) beside a plain run (the row count only), each against the full rebuild.
- original: ingest + mirror + reproject of 20,000 records from an NDJSON file into SQLite, the job the original
  tool needed 304 s for. Floor: executemany of the 20,000 input lines as text into a bare SQLite table.

SQLite always; PostgreSQL and MariaDB for mirror and rebuild when EVENTLOG_TEST_POSTGRES_URL /
EVENTLOG_TEST_MYSQL_URL are set (a schema of the run's own, dropped afterwards).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from eventlog import Lake, SegmentPolicy
from eventlog.capture.ingest import read_inputs
from eventlog.sql.dialects import bulk_insert
from eventlog.sql.store import SqlEventStore
from projections.raw_exchange import RECORD_COLUMNS
from projections.tables import attach
from tests.benchmarks.bench_mirror import backends, floor_insert, settle
from tests.factories import BASE_TIME, openalex_record

SEED = 20261126
ORIGINAL_SECONDS = 304.0
NOW = "2026-01-01T00:00:00.000000Z"


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def build_lake(root: Path, count: int, seed: int) -> Lake:
    """A lake of `count` seeded ~2 KB events; every tenth one observes earlier content again (a revisit)."""
    lake = Lake.init(root, segment_policy=SegmentPolicy(max_events=100_000, max_bytes=0, max_age_seconds=0))
    for start in range(0, count, 10_000):
        records = []
        for n in range(start, min(count, start + 10_000)):
            source = n - 5 if n % 10 == 9 else n
            records.append(openalex_record(source, rng=random.Random(seed * 1_000_003 + source),
                                           observed=BASE_TIME + timedelta(seconds=n)))
        lake.append(records)
    return lake


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def bench_mirror(lake: Lake, folder: Path, count: int, seed: int) -> None:
    for backend, url, schema in backends(folder):
        settle(url)
        seconds, result = timed(lambda url=url, schema=schema: lake.mirror(database_url=url, schema=schema))
        assert result.written == count, result
        events = list(lake.events())
        with SqlEventStore(url, schema=schema) as store:
            floor = floor_insert(store, events, 5000)
        del events
        gc.collect()
        emit({"bench": "mirror", "backend": backend, "events": count, "seed": seed, "seconds": round(seconds, 3),
              "events_per_s": round(count / seconds), "target_events_per_s": 20_000,
              "floor_seconds": round(floor, 3), "floor_events_per_s": round(count / floor),
              "ratio": round(floor / seconds, 3)})


def bare_row_insert(url: str, schema: str) -> float:
    """Seconds to write RawExchangeRecord's rows into a bare table of the same columns by the store's bulk path."""
    with SqlEventStore(url, schema=schema) as store:
        record = attach(store).record
        with store.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(sa.select(*(record.c[name] for name in RECORD_COLUMNS)))]
        metadata = sa.MetaData(schema=store.tables.schema)
        bare = sa.Table("BareRawExchangeRecord", metadata, *(sa.Column(column.name, column.type)
                                                            for column in record.columns))
        with store.begin() as conn:
            metadata.create_all(conn)
        settle(url)
        started = time.perf_counter()
        with store.begin() as conn:
            for start in range(0, len(rows), 2000):
                bulk_insert(conn, bare, RECORD_COLUMNS, rows[start:start + 2000])
        return time.perf_counter() - started


def bench_rebuild(lake: Lake, folder: Path, count: int, seed: int) -> None:
    for backend, url, schema in backends(folder):
        with SqlEventStore(url, schema=schema) as store:
            store.create_schema()
        settle(url)
        seconds, result = timed(lambda url=url, schema=schema: lake.reproject(rebuild=True, database_url=url,
                                                                              schema=schema))
        floor = bare_row_insert(url, schema)
        emit({"bench": "rebuild", "backend": backend, "events": count, "rows": result.rows_inserted, "seed": seed,
              "seconds": round(seconds, 3), "events_per_s": round(count / seconds), "target_events_per_s": 30_000,
              "floor_seconds": round(floor, 3), "floor_rows_per_s": round(result.rows_inserted / floor),
              "ratio": round(floor / seconds, 3)})


def small_record(n: int, version: int = 0) -> dict[str, Any]:
    """A short page pull (about 300 bytes), key n."""
    return {"exchange_type": "mediawiki", "source_system": "wiki", "entity_type": "page", "natural_key": f"P{n}",
            "observed_at_utc": (BASE_TIME + timedelta(seconds=n, days=version)).isoformat(),
            "request": {"url": f"https://wiki.example/P{n}"}, "response": {"status": 200, "rev": version}}


def bench_incremental(folder: Path, lake_events: int, new_events: int, seed: int) -> None:
    rng = random.Random(seed)
    started = time.perf_counter()
    with Lake.init(folder / "big", segment_policy=SegmentPolicy(max_events=100_000, max_bytes=0,
                                                                 max_age_seconds=0)) as lake:
        for start in range(0, lake_events, 50_000):
            lake.append(small_record(n) for n in range(start, min(lake_events, start + 50_000)))
        built = time.perf_counter() - started
        url = f"sqlite:///{folder / 'big.db'}"
        full_seconds, full = timed(lambda: lake.reproject(database_url=url))
        fresh = [small_record(lake_events + n) for n in range(new_events // 2)]
        fresh += [small_record(rng.randrange(lake_events), version=1) for _ in range(new_events - len(fresh))]
        lake.append(fresh)
        seconds, result = timed(lambda: lake.reproject(database_url=url))
        assert result.mode == "incremental" and result.events_read == new_events, result
        # With nothing new: the plain run's row count against `check`'s read of every row's digest columns.
        plain_seconds, _ = timed(lambda: lake.reproject(database_url=url))
        check_seconds, checked = timed(lambda: lake.reproject(check=True, database_url=url))
        assert checked.mode == "incremental" and checked.events_read == 0, checked
    emit({"bench": "incremental", "backend": "sqlite", "lake_events": lake_events, "new_events": new_events,
          "seed": seed, "lake_build_seconds": round(built, 1), "seconds": round(seconds, 3),
          "full_rebuild_seconds": round(full_seconds, 3), "full_events_per_s": round(full.events_read / full_seconds),
          "floor_seconds": round(full_seconds, 3), "ratio": round(seconds / full_seconds, 5), "target_ratio": 0.02,
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    emit({"bench": "digest_check", "backend": "sqlite", "lake_events": lake_events, "rows": full.rows_inserted,
          "seed": seed, "seconds": round(check_seconds, 3), "plain_seconds": round(plain_seconds, 3),
          "full_rebuild_seconds": round(full_seconds, 3), "ratio_to_rebuild": round(check_seconds / full_seconds, 4)})


def bench_original(folder: Path, count: int, seed: int) -> None:
    source = folder / "original.ndjson"
    with open(source, "w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(json.dumps(openalex_record(n, rng=random.Random(seed + n))) + "\n")
    url = f"sqlite:///{folder / 'original.db'}"
    started = time.perf_counter()
    with Lake.init(folder / "original") as lake:
        ingest, appended = timed(lambda: lake.append(read_inputs([source])))
        mirror, _ = timed(lambda: lake.mirror(database_url=url))
        project, _ = timed(lambda: lake.reproject(database_url=url))
    total = time.perf_counter() - started
    assert appended.observed == count, appended
    db = sqlite3.connect(folder / "floor.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE bare (line TEXT)")
    lines = [(line,) for line in source.read_text(encoding="utf-8").splitlines()]
    floor_started = time.perf_counter()
    db.executemany("INSERT INTO bare VALUES (?)", lines)
    db.commit()
    floor = time.perf_counter() - floor_started
    db.close()
    emit({"bench": "original", "backend": "sqlite", "records": count, "seed": seed, "seconds": round(total, 3),
          "ingest_seconds": round(ingest, 3), "mirror_seconds": round(mirror, 3),
          "reproject_seconds": round(project, 3), "original_tool_seconds": ORIGINAL_SECONDS,
          "speedup": round(ORIGINAL_SECONDS / total, 1), "floor_seconds": round(floor, 3),
          "ratio": round(floor / total, 3)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--lake-events", type=int, default=1_000_000)
    parser.add_argument("--new-events", type=int, default=1000)
    parser.add_argument("--original", type=int, default=20_000)
    parser.add_argument("--only", default="mirror,rebuild,incremental,original")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    print(f"# seed {args.seed}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if wanted & {"mirror", "rebuild"}:
            with build_lake(folder / "lake", args.events, args.seed) as lake:
                if "mirror" in wanted:
                    bench_mirror(lake, folder, args.events, args.seed)
                if "rebuild" in wanted:
                    bench_rebuild(lake, folder, args.events, args.seed)
        if "original" in wanted:
            bench_original(folder, args.original, args.seed)
        if "incremental" in wanted:
            bench_incremental(folder, args.lake_events, args.new_events, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
