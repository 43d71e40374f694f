"""Sync cost follows the delta: a bidirectional sync after new events on each side, against a full
reconciliation of the same lake, in the same run.

    PYTHONPATH=. python tests/benchmarks/bench_sync.py [--events N] [--delta D] [--seed S]

A lake of N small events (about 300 B each: a short page pull) is synced into an empty SQLite database (the full
reconciliation: first contact, both sides read whole). Then D new events are appended to the lake, and D more reach
the database from a second lake, and the first lake syncs again (the incremental sync, conflicts included: some of
the second lake's events are new versions of the first lake's keys). One JSON line per result, with the seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from eventlog import Lake
from eventlog.log.config import SegmentPolicy
from tests.factories import BASE_TIME


def small(title: str, revision: int, hour: int) -> dict[str, Any]:
    """A page pull of about 300 bytes on the log line."""
    return {"exchange_type": "mediawiki", "source_system": "wiki", "entity_type": "page", "natural_key": title,
            "observed_at_utc": (BASE_TIME + timedelta(hours=hour)).isoformat(),
            "request": {"url": f"/w/{title}"}, "response": {"status": 200, "rev": revision}}


ROOT = Path(__file__).resolve().parents[2]
FULL = """
import sys
from eventlog import Lake
with Lake.open(sys.argv[1]) as lake:
    print(lake.sync(database_url=sys.argv[2]).to_sql)
"""


def append_many(lake: Lake, records: list[dict[str, Any]]) -> None:
    for start in range(0, len(records), 50_000):
        lake.append(records[start:start + 50_000])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--delta", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        policy = SegmentPolicy(max_events=0, max_bytes=64 * 1024 * 1024, max_age_seconds=0)
        url = f"sqlite:///{root / 'shared.db'}"
        with Lake.init(root / "a", segment_policy=policy) as a, Lake.init(root / "b", segment_policy=policy) as b:
            append_many(a, [small(f"P{n}", 0, n % 24) for n in range(args.events)])
            # The full reconciliation runs in a process of its own, so that its peak memory is its own.
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", FULL, str(root / "a"), url], check=True,
                                 capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
            full_seconds = time.perf_counter() - started
            print(json.dumps({"bench": "sync_full_reconciliation", "events": args.events, "seed": args.seed,
                              "seconds": round(full_seconds, 3), "to_sql": int(out.split()[0]),
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
            b.sync(direction="sql_to_json", database_url=url)
            a.append([small(f"N{n}", 0, 1) for n in range(args.delta)])
            b.append([small(f"P{rng.randrange(args.events)}", 1, 30) for _ in range(args.delta // 2)]
                     + [small(f"M{n}", 0, 1) for n in range(args.delta - args.delta // 2)])
            b.sync(database_url=url)
            started = time.perf_counter()
            delta = a.sync(database_url=url)
            delta_seconds = time.perf_counter() - started
            print(json.dumps({"bench": "sync_after_delta", "events": args.events, "delta_each_side": args.delta,
                              "seed": args.seed, "seconds": round(delta_seconds, 3), "to_sql": delta.to_sql,
                              "to_json": delta.to_json, "conflicts": len(delta.conflicts),
                              "ratio_to_full": round(delta_seconds / full_seconds, 4)}))


if __name__ == "__main__":
    main()
