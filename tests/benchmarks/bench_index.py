"""Upkeep of log/index.sqlite per appended event, as the index grows.

    PYTHONPATH=. python tests/benchmarks/bench_index.py [--counts 100000,1000000] [--batch 1000] [--seed S]

Each append call does to the index what this does per batch: look the batch's event ids and content hashes up,
insert its rows, commit. The entries are seeded and shaped like the log's own (uuid5-like ids, SHA-256 hex
content hashes, natural keys in arrival order). Floor: the same rows inserted by executemany into a bare table
of the same columns, without keys or indexes, committed per batch, with the index's own pragmas. One JSON line
per count; `last_tenth_us_per_event` is the cost over the last tenth of the batches, where the index is nearly
full-grown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog.format.identity import exchange_key
from eventlog.log.index import PRAGMAS, IndexEntry, LogIndex

SEED = 20261126


def entries(count: int, batch: int, seed: int) -> Iterator[list[IndexEntry]]:
    rng = random.Random(seed)
    for start in range(0, count, batch):
        chunk = []
        for seq in range(start + 1, min(count, start + batch) + 1):
            content = hashlib.sha256(rng.randbytes(16)).hexdigest()
            chunk.append(IndexEntry(seq, str(uuid.UUID(bytes=rng.randbytes(16), version=5)), "observed",
                                    hashlib.sha256(content.encode()).hexdigest(), content,
                                    exchange_key("openalex", "work", f"W{seq}"), "2024-05-01T12:00:00.000000Z",
                                    1, seq * 2200, 2200))
        yield chunk


def upkeep(folder: Path, count: int, batch: int, seed: int) -> tuple[float, float, dict[str, float]]:
    """Seconds in all, seconds over the last tenth of the batches, and seconds per step."""
    index = LogIndex(folder / "index.sqlite")
    steps = {"lookup": 0.0, "insert": 0.0, "commit": 0.0}
    batches = -(-count // batch)
    last = 0.0
    try:
        for number, chunk in enumerate(entries(count, batch, seed)):
            begun = time.perf_counter()
            index.begin()
            index.known_events([entry.event_id for entry in chunk])
            index.known_contents([entry.content_sha256 for entry in chunk if entry.content_sha256])
            looked = time.perf_counter()
            index.add(chunk)
            inserted = time.perf_counter()
            index.commit()
            done = time.perf_counter()
            steps["lookup"] += looked - begun
            steps["insert"] += inserted - looked
            steps["commit"] += done - inserted
            if number >= batches - max(1, batches // 10):
                last += done - begun
    finally:
        index.close()
    return sum(steps.values()), last, steps


def floor(folder: Path, count: int, batch: int, seed: int) -> float:
    db = sqlite3.connect(folder / "bare.sqlite", isolation_level=None)
    for pragma in PRAGMAS:
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE events (seq, event_id, type, digest, content_sha256, exchange_key, observed_at_utc, "
               "segment, offset, length)")
    seconds = 0.0
    try:
        for chunk in entries(count, batch, seed):
            started = time.perf_counter()
            db.execute("BEGIN")
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", chunk)
            db.execute("COMMIT")
            seconds += time.perf_counter() - started
    finally:
        db.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="100000,1000000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for count in (int(text) for text in args.counts.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            seconds, last, steps = upkeep(folder, count, args.batch, args.seed)
            floor_seconds = floor(folder, count, args.batch, args.seed)
        last_events = min(count, max(1, -(-count // args.batch) // 10) * args.batch)
        print(json.dumps({
            "bench": "index", "events": count, "batch": args.batch, "seed": args.seed,
            "seconds": round(seconds, 3), "us_per_event": round(seconds / count * 1e6, 2),
            **{f"{step}_us_per_event": round(value / count * 1e6, 2) for step, value in steps.items()},
            "last_tenth_us_per_event": round(last / last_events * 1e6, 2),
            "floor_seconds": round(floor_seconds, 3), "floor_us_per_event": round(floor_seconds / count * 1e6, 2),
            "ratio_to_floor": round(seconds / floor_seconds, 2),
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
