"""Mirror throughput: SqlEventStore.append_events against a plain executemany floor, in one run.

    PYTHONPATH=. python tests/benchmarks/bench_mirror.py [--events N] [--seed S] [--batch B]

SQLite always; PostgreSQL and MariaDB when EVENTLOG_TEST_POSTGRES_URL / EVENTLOG_TEST_MYSQL_URL are set (each
run uses a schema of its own and drops it afterwards). The floor inserts the very rows the store writes
(ExchangeEvent and ExchangeContent rows, encoded beforehand) into bare tables without keys or indexes by the
store's own bulk path (COPY on PostgreSQL, the driver's executemany elsewhere), in batches of the same size, in
one transaction. One JSON line per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from eventlog.format.envelope import content_sha256, decode_record, derive_exchange_id, envelope_dict
from eventlog.format.events import GENESIS, Event, event_digest
from eventlog.sql.dialects import bulk_insert
from eventlog.sql.rowcodec import CONTENT_COLUMNS, EVENT_COLUMNS, encode_event
from eventlog.sql.store import SqlEventStore
from tests.conftest import drop_test_schema
from tests.factories import BASE_TIME, openalex_record

ORIGIN = "0d9e4a8c-1b2f-4c3d-8e5f-6a7b8c9d0e1f"


def make_events(count: int, seed: int) -> list[Event]:
    """Seeded OpenAlex-shaped events of about 2 KB; every tenth one revisits earlier content."""
    rng = random.Random(seed)
    events: list[Event] = []
    prev = GENESIS
    for n in range(count):
        revisit = n % 10 == 9
        source = n - 5 if revisit else n
        record = openalex_record(source, rng=random.Random(seed * 1_000_003 + source),
                                 observed=BASE_TIME + timedelta(seconds=n))
        prepared = decode_record(record)
        digest = content_sha256(prepared)
        prepared = msgspec.structs.replace(prepared, content_sha256=digest,
                                           exchange_id=derive_exchange_id(digest, prepared.observed_at_utc))
        body = envelope_dict(prepared)
        if revisit:
            del body["request"], body["response"]
        recorded = f"2024-06-01T00:00:{n // 1_000_000:02d}.{n % 1_000_000:06d}Z"
        unsealed = Event(type="revisited" if revisit else "observed", event_id=body["exchange_id"], seq=n + 1,
                         recorded_at_utc=recorded, origin=ORIGIN, prev=prev, digest="", body=body)
        events.append(msgspec.structs.replace(unsealed, digest=event_digest(unsealed)))
        prev = f"{rng.getrandbits(256):064x}"
    return events


def bare_tables(store: SqlEventStore) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """Tables with the store's columns and types but no key, constraint or index."""
    metadata = sa.MetaData(schema=store.tables.schema)
    copies = []
    for source in (store.tables.event, store.tables.content):
        columns = [sa.Column(column.name, column.type) for column in source.columns if column.name != "event_seq"]
        copies.append(sa.Table(f"Bare{source.name}", metadata, *columns))
    return metadata, copies[0], copies[1]


def floor_insert(store: SqlEventStore, events: list[Event], batch: int) -> float:
    """Seconds to write the store's own rows into bare tables with its bulk path, in one transaction."""
    metadata, bare_event, bare_content = bare_tables(store)
    rows = [encode_event(event) for event in events]
    with store.begin() as conn:
        metadata.create_all(conn)
    settle(store.engine.url.render_as_string(hide_password=False))
    started = time.perf_counter()
    with store.begin() as conn:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            bulk_insert(conn, bare_content, CONTENT_COLUMNS, [content for _, content in chunk if content is not None])
            bulk_insert(conn, bare_event, EVENT_COLUMNS, [row for row, _ in chunk])
    return time.perf_counter() - started


def settle(url: str) -> None:
    """Have a PostgreSQL server write out the WAL of earlier work, so that its checkpoint does not land inside the
    next timed section (the section's own WAL may still cause one there). Other backends need nothing."""
    if sa.make_url(url).get_backend_name() != "postgresql":
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except sa.exc.DBAPIError as exc:
        print(f"# CHECKPOINT refused ({type(exc.orig).__name__}): timings may include earlier work's flush",
              file=sys.stderr)
    finally:
        engine.dispose()


def run(backend: str, url: str, schema: str, events: list[Event], batch: int, seed: int) -> dict[str, Any]:
    with SqlEventStore(url, schema=schema) as store:
        store.create_schema()
        settle(url)
        started = time.perf_counter()
        written = store.append_events(events, batch=batch)
        elapsed = time.perf_counter() - started
        assert written == len(events), (written, len(events))
        floor = floor_insert(store, events, batch)
    payload = sum(len(json.dumps(event.body)) for event in events[:1000]) / min(len(events), 1000)
    return {"bench": "mirror_append", "backend": backend, "events": len(events), "batch": batch, "seed": seed,
            "avg_event_bytes": round(payload), "seconds": round(elapsed, 3),
            "events_per_s": round(len(events) / elapsed), "floor_seconds": round(floor, 3),
            "floor_events_per_s": round(len(events) / floor), "ratio": round(floor / elapsed, 3)}


def backends(folder: Path) -> Iterator[tuple[str, str, str]]:
    """(backend, url, schema) of every database to measure; server schemas are dropped after use."""
    yield "sqlite", f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.db'}", "lake"
    for backend, variable in (("postgresql", "EVENTLOG_TEST_POSTGRES_URL"), ("mysql", "EVENTLOG_TEST_MYSQL_URL")):
        url = os.environ.get(variable, "")
        if not url:
            print(f"# {variable} is not set: {backend} skipped", file=sys.stderr)
            continue
        schema = f"t_bench_{uuid.uuid4().hex[:12]}"
        try:
            yield backend, url, schema
        finally:
            drop_test_schema(url, schema)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    print(f"# seed {args.seed}, building {args.events} events", file=sys.stderr)
    events = make_events(args.events, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        for backend, url, schema in backends(Path(folder)):
            print(json.dumps(run(backend, url, schema, events, args.batch, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
