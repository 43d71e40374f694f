"""Append throughput and memory of the segment log.

Speed: N example-shaped exchanges of about 2 KB appended durably (fsync per batch) with redaction on, against a
floor measured in the same run on the same records: canonical encoding + SHA-256 + write + fsync per batch. Each
batch runs through the floor and the append one after the other (taking turns at going first), so that drifts in
the machine's speed reach both.
Memory: peak RSS of a fresh process appending N small events from a generator, for two values of N, in calls of
10,000 events and in one call for all of them. With --cli N: `eventlog append` of N of the 2 KB exchanges from an
NDJSON file, its time against the same floor and its peak RSS. With --pages N (3,000 unless 0): peak RSS of a
fresh process appending N MediaWiki-shaped pages of about 100 KB in one call.

    python tests/benchmarks/bench_append.py [--count 100000] [--batch 1000] [--memory 100000,1000000] [--cli N]
                                            [--pages 3000]

Prints one JSON line per result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog import Lake, canonical_json
from eventlog.cli import console
from tests.factories import openalex_record

SEED = 20261126


def floor_batch(records: list[dict[str, object]], handle: BinaryIO) -> None:
    """Canonical encoding + SHA-256 + write + fsync of one batch of records."""
    lines = []
    for record in records:
        line = canonical_json(record)
        hashlib.sha256(line).digest()
        lines.append(line)
    handle.write(b"\n".join(lines) + b"\n")
    handle.flush()
    os.fsync(handle.fileno())


def floor(count: int, batch: int, folder: Path) -> float:
    """The floor of the example exchanges in batches; the seconds the batches took, not their making."""
    seconds = 0.0
    with open(folder / "floor.ndjson", "ab") as handle:
        for chunk in example_batches(count, batch):
            started = time.perf_counter()
            floor_batch(chunk, handle)
            seconds += time.perf_counter() - started
    return seconds


def speed(count: int, batch: int) -> dict[str, object]:
    """Batch by batch, the floor and the append of the same batch one after the other, so that both run on the
    machine as it is at that moment: on a shared machine whose speed drifts within a run, the ratio stays a
    ratio. Each batch is made just before it is timed, as a caller streaming its exchanges would hold them."""
    seconds = floor_seconds = 0.0
    size = 0
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "floor.ndjson", "ab") as handle, \
            Lake.init(Path(tmp) / "lake") as lake:
        for n, chunk in enumerate(example_batches(count, batch)):
            if n == 0:
                size = round(sum(len(canonical_json(record)) for record in chunk) / len(chunk))
            # Whichever runs second finds the batch's records in the CPU's caches: they take turns.
            for step in ((floor_batch, lake.append) if n % 2 == 0 else (lake.append, floor_batch)):
                started = time.perf_counter()
                if step is floor_batch:
                    floor_batch(chunk, handle)
                    floor_seconds += time.perf_counter() - started
                else:
                    lake.append(chunk)
                    seconds += time.perf_counter() - started
        assert lake.log.last_seq == count
    return {"benchmark": "append", "events": count, "batch": batch, "avg_record_bytes": size,
            "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "floor_seconds": round(floor_seconds, 3), "floor_events_per_s": round(count / floor_seconds),
            "ratio_to_floor": round(seconds / floor_seconds, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
            "seed": SEED}


def command_line(count: int, batch: int) -> dict[str, object]:
    """`eventlog append FILE` of `count` example exchanges written as NDJSON, in a process of its own: the main
    job's path, with strict parsing of every line, one call for the whole file and sealing within it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "records.ndjson"
        with open(source, "wb") as out:
            for chunk in example_batches(count, batch):
                out.write(b"".join(json.dumps(record).encode() + b"\n" for record in chunk))
        floor_seconds = floor(count, batch, folder)
        lake = ["--lake", str(folder / "lake")]
        subprocess.run([sys.executable, "-m", "eventlog", *lake, "init"], check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        # The child reports its own peak, which, unlike the rusage of a child, does not count the pages of this
        # process that it shared between fork and exec.
        done = subprocess.run([sys.executable, __file__, "--cli-child", *lake, "append", str(source)], check=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - started
        peak = float(done.stderr.strip().splitlines()[-1])
        size = source.stat().st_size
    return {"benchmark": "append_cli", "events": count, "file_bytes": size,
            "seconds": round(seconds, 3), "events_per_s": round(count / seconds),
            "floor_events_per_s": round(count / floor_seconds), "ratio_to_floor": round(seconds / floor_seconds, 2),
            "peak_rss_mib": round(peak, 1), "seed": SEED}


def cli_child(arguments: list[str]) -> None:
    """Run `eventlog` with `arguments` as its program does, then print this process's peak RSS on stderr."""
    sys.argv = ["eventlog", *arguments]
    try:
        console()
    finally:
        print(peak_rss_mib(), file=sys.stderr)


def example_batches(count: int, batch: int) -> Iterator[list[dict[str, object]]]:
    """`count` seeded OpenAlex-shaped exchanges in lists of `batch`, made as they are asked for."""
    rng = random.Random(SEED)
    for start in range(0, count, batch):
        yield [openalex_record(n, rng=rng) for n in range(start, min(start + batch, count))]


def peak_rss_mib() -> float:
    """VmHWM of this process: unlike ru_maxrss it is not inherited across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def small_events(count: int):
    for n in range(count):
        yield {"exchange_type": "generic", "source_system": "bench", "entity_type": "tick", "natural_key": f"k{n % 1000}",
               "observed_at_utc": f"2024-01-01T00:00:{n % 60:02d}Z", "request": {"n": n}, "response": {"ok": n % 7}}


def long_pages(count: int) -> Iterator[dict[str, object]]:
    """MediaWiki-shaped pages of about 100 KB of text each, seeded."""
    rng = random.Random(SEED)
    words = ["alpha", "beta", "gamma", "delta", "Zürich", "lake", "river", "data", "pipeline", "archive"]
    for n in range(count):
        text = " ".join(rng.choices(words, k=16_000))
        yield {"exchange_type": "mediawiki", "source_system": "wiki", "entity_type": "page", "natural_key": f"P{n}",
               "observed_at_utc": "2024-01-01T00:00:00Z", "request": {"url": f"https://wiki.example.org/?page=P{n}"},
               "response": {"status": 200, "body": {"parse": {"title": f"P{n}", "text": text}}}}


def memory_child_pages(count: int) -> None:
    """Peak RSS of appending `count` long pages in one call."""
    with tempfile.TemporaryDirectory() as tmp, Lake.init(Path(tmp) / "lake") as lake:
        started = time.perf_counter()
        lake.append(long_pages(count))
        seconds = time.perf_counter() - started
        peak = peak_rss_mib()
        segments = len(list((Path(tmp) / "lake" / "log" / "segments").iterdir()))
    print(json.dumps({"benchmark": "append_memory_pages", "events": count, "events_per_call": count,
                      "record_bytes": len(canonical_json(next(long_pages(1)))), "seconds": round(seconds, 2),
                      "segments": segments, "peak_rss_mib": round(peak, 1)}))


def memory_child(count: int, batch: int) -> None:
    """Peak RSS of appending `count` small events in calls of `batch`, or in one call when `batch` is 0 (as
    `eventlog append` and `eventlog ingest` do with all their inputs)."""
    with tempfile.TemporaryDirectory() as tmp, Lake.init(Path(tmp) / "lake") as lake:
        started = time.perf_counter()
        events = small_events(count)
        if batch == 0:
            lake.append(events)
        while batch:
            chunk = [record for _, record in zip(range(batch), events, strict=False)]
            if not chunk:
                break
            lake.append(chunk)
        seconds = time.perf_counter() - started
        peak = peak_rss_mib()
        print(json.dumps({"benchmark": "append_memory", "events": count, "events_per_call": batch or count,
                          "seconds": round(seconds, 2), "events_per_s": round(count / seconds),
                          "peak_rss_mib": round(peak, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--memory", default="100000,1000000", help="comma-separated event counts; empty to skip")
    parser.add_argument("--cli", type=int, default=0, help="also time `eventlog append` of this many records")
    parser.add_argument("--pages", type=int, default=3000, help="long pages (100 KB) in one call; 0 to skip")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pages-child", type=int, help=argparse.SUPPRESS)
    if sys.argv[1:2] == ["--cli-child"]:  # the rest are eventlog's own arguments
        cli_child(sys.argv[2:])
        return
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.batch)
        return
    if args.pages_child:
        memory_child_pages(args.pages_child)
        return
    if args.count:
        print(json.dumps(speed(args.count, args.batch)), flush=True)
    if args.cli:
        print(json.dumps(command_line(args.cli, args.batch)), flush=True)
    for count in filter(None, args.memory.split(",")):
        for batch in ("10000", "0"):
            subprocess.run([sys.executable, __file__, "--memory-child", count, "--batch", batch], check=True)
    if args.pages:
        subprocess.run([sys.executable, __file__, "--pages-child", str(args.pages)], check=True)


if __name__ == "__main__":
    main()
