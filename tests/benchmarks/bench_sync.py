"""Sync cost follows the delta: a bidirectional sync after new events on each side, against a full
reconciliation of the same lake, in the same run.

    PYTHONPATH=. python tests/benchmarks/bench_sync.py [--events N] [--delta D] [--seed S]

A lake of N small events (about 300 B each: a short page pull) is synced into an empty SQLite database (the full
reconciliation: first contact, both sides read whole). Then D new events are appended to the lake, and D more reach
the database from a second lake, and the first lake syncs again (the incremental sync, conflicts included: some of
the second lake's events are new versions of the first lake's keys). Each of the two syncs runs in a process of
its own, timed around the sync call, with its peak RSS; the floor of memory is a process that opens the same lake
and database and syncs nothing. Then a third lake of its own 100 events runs `sync --from` the first lake's folder
(first contact: the folder read whole), and again once that lake has D more events (from its watermark on). One
JSON line per result, with the seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from datetime import timedelta
from itertools import islice
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
# One sync (or, as the floor, the lake and the database opened and nothing synced) in a process of its own, so
# that its peak memory is its own; the time is that of the sync call alone.
RUN = """
import json, resource, sys, time
from eventlog import Lake
with Lake.open(sys.argv[1]) as lake:
    if sys.argv[3] == "floor":
        with lake.sql_store(database_url=sys.argv[2]) as store:
            store.max_event_seq()
        found = {}
    elif sys.argv[3] == "from":  # sys.argv[2] is then the folder of another lake
        started = time.perf_counter()
        result = lake.sync_from(sys.argv[2])
        found = {"seconds": time.perf_counter() - started, "to_sql": 0, "to_json": result.to_json,
                 "conflicts": len(result.conflicts), "full": result.full_reconciliation,
                 "segments_read": result.segments_read}
    else:
        started = time.perf_counter()
        result = lake.sync(database_url=sys.argv[2])
        found = {"seconds": time.perf_counter() - started, "to_sql": result.to_sql, "to_json": result.to_json,
                 "conflicts": len(result.conflicts), "full": result.full_reconciliation}
found["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(found))
"""


def run(lake: Path, url: str, what: str) -> dict[str, Any]:
    """Sync `lake` with `url` (or open both, for `what` "floor") in a child process; what it reports."""
    out = subprocess.run([sys.executable, "-c", RUN, str(lake), url, what], check=True, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    found: dict[str, Any] = json.loads(out)
    return found


def append_many(lake: Lake, records: Iterable[dict[str, Any]]) -> None:
    """Append in batches of 50,000, made as they are appended."""
    iterator = iter(records)
    while batch := list(islice(iterator, 50_000)):
        lake.append(batch)


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
        with Lake.init(root / "a", segment_policy=policy) as a:
            append_many(a, (small(f"P{n}", 0, n % 24) for n in range(args.events)))
        full = run(root / "a", url, "sync")
        floor = run(root / "a", url, "floor")
        print(json.dumps({"bench": "sync_full_reconciliation", "events": args.events, "seed": args.seed,
                          "seconds": round(full["seconds"], 3), "to_sql": full["to_sql"],
                          "full_reconciliation": full["full"], "peak_rss_mb": full["peak_rss_mb"],
                          "floor_rss_mb": floor["peak_rss_mb"]}))
        with Lake.init(root / "b", segment_policy=policy) as b:
            b.sync(direction="sql_to_json", database_url=url)
            b.append([small(f"P{rng.randrange(args.events)}", 1, 30) for _ in range(args.delta // 2)]
                     + [small(f"M{n}", 0, 1) for n in range(args.delta - args.delta // 2)])
            b.sync(database_url=url)
        with Lake.open(root / "a") as a:
            a.append([small(f"N{n}", 0, 1) for n in range(args.delta)])
        delta = run(root / "a", url, "sync")
        print(json.dumps({"bench": "sync_after_delta", "events": args.events, "delta_each_side": args.delta,
                          "seed": args.seed, "seconds": round(delta["seconds"], 3), "to_sql": delta["to_sql"],
                          "to_json": delta["to_json"], "conflicts": delta["conflicts"],
                          "peak_rss_mb": delta["peak_rss_mb"], "floor_rss_mb": floor["peak_rss_mb"],
                          "ratio_to_full": round(delta["seconds"] / full["seconds"], 4)}))
        with Lake.init(root / "c", segment_policy=policy) as c:
            c.append([small(f"C{n}", 0, 2) for n in range(100)])
        first = run(root / "c", str(root / "a"), "from")
        print(json.dumps({"bench": "sync_from_folder_first_contact", "events": args.events, "seed": args.seed,
                          "seconds": round(first["seconds"], 3), "to_json": first["to_json"],
                          "full_reconciliation": first["full"], "peak_rss_mb": first["peak_rss_mb"],
                          "floor_rss_mb": floor["peak_rss_mb"]}))
        with Lake.open(root / "a") as a:
            a.append([small(f"F{n}", 0, 1) for n in range(args.delta)])
        again = run(root / "c", str(root / "a"), "from")
        print(json.dumps({"bench": "sync_from_folder_after_delta", "events": args.events, "delta": args.delta,
                          "seed": args.seed, "seconds": round(again["seconds"], 3), "to_json": again["to_json"],
                          "segments_read": again["segments_read"], "peak_rss_mb": again["peak_rss_mb"],
                          "ratio_to_first": round(again["seconds"] / first["seconds"], 4)}))


if __name__ == "__main__":
    main()
