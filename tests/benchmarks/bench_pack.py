"""Snapshot pack projection: a rebuild against its floor, and an incremental run against the rebuild.

    PYTHONPATH=. python tests/benchmarks/bench_pack.py [--events 100000] [--new-events 1000] [--repeat 3] [--seed S]

Results, one JSON line each:
- rebuild: `project_pack` from scratch over N seeded OpenAlex-shaped events of about 2 KB (every tenth a revisit
  of earlier content), target within 2x of the floor. Floor, measured in the same run: reading the same events
  (every line of the log, in order) and writing the same bytes (the pack's chunk files and index.jsonl, each
  written and fsynced once, as the projection does). Rebuild and floor alternate; the best of --repeat runs of
  each is reported.
- incremental: K new events (half new contents, half revisits) appended, then projected from the checkpoint; its
  time against the rebuild's (cost follows the new events, not the history).
peak_rss_mb is the whole process's, lake building included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog import Lake, SegmentPolicy
from eventlog.capture.manifest import DatasetManifest
from projections import project_pack
from tests.factories import BASE_TIME, openalex_record

SEED = 20261206
MANIFEST = DatasetManifest(dataset_name="works", source_system="openalex", entity_type="work")


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def records(first: int, count: int, seed: int) -> list[dict[str, Any]]:
    made = []
    for n in range(first, first + count):
        source = n - 5 if n % 10 == 9 else n  # a revisit of content observed five events earlier
        made.append(openalex_record(source, rng=random.Random(seed * 1_000_003 + source),
                                    observed=BASE_TIME + timedelta(seconds=n)))
    return made


def build_lake(root: Path, count: int, seed: int) -> Lake:
    lake = Lake.init(root, segment_policy=SegmentPolicy(max_events=100_000, max_bytes=0, max_age_seconds=0))
    for start in range(0, count, 10_000):
        lake.append(records(start, min(10_000, count - start), seed))
    return lake


def floor(lake: Lake, pack: Path, target: Path) -> tuple[float, int]:
    """Read every line of the log, and write the pack's files again (write + fsync each); seconds, bytes."""
    files = [(path.relative_to(pack), path.read_bytes()) for path in sorted(pack.rglob("*")) if path.is_file()]
    started = time.perf_counter()
    read = 0
    for _, _, raw in lake.log.lines():
        read += len(raw)
    for relative, data in files:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return time.perf_counter() - started, sum(len(data) for _, data in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--new-events", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--repeat", type=int, default=3, help="Rebuild and floor runs; the best of each counts.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as scratch:
        root = Path(scratch)
        lake = build_lake(root / "lake", args.events, args.seed)
        pack, checkpoint = root / "pack", root / "checkpoint.json"
        replica = lake.config.replica_id
        # Rebuild and floor alternate, best of --repeat each: other work on the machine slows single runs.
        rebuilds, floors = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = project_pack(lake.log, MANIFEST, pack, checkpoint=checkpoint, replica=replica, rebuild=True)
            rebuilds.append(time.perf_counter() - started)
            floor_seconds, written = floor(lake, pack, root / "floor")
            floors.append(floor_seconds)
            shutil.rmtree(root / "floor")
        rebuild, floor_seconds = min(rebuilds), min(floors)
        emit({"bench": "pack_rebuild", "events": args.events, "records": result.records, "pack_bytes": written,
              "seconds": round(rebuild, 3), "runs": [round(value, 3) for value in rebuilds], "events_per_s": round(args.events / rebuild),
              "floor_seconds": round(floor_seconds, 3), "ratio_to_floor": round(rebuild / floor_seconds, 2),
              "target_ratio": 2.0, "seed": args.seed,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        lake.append(records(args.events, args.new_events, args.seed))
        started = time.perf_counter()
        step = project_pack(lake.log, MANIFEST, pack, checkpoint=checkpoint, replica=replica)
        incremental = time.perf_counter() - started
        emit({"bench": "pack_incremental", "events": args.events, "new_events": args.new_events,
              "records_added": step.records_added, "mode": step.mode, "seconds": round(incremental, 3),
              "rebuild_seconds": round(rebuild, 3), "ratio_to_rebuild": round(incremental / rebuild, 4),
              "seed": args.seed,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        lake.close()


if __name__ == "__main__":
    main()
