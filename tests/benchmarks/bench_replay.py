"""Replay look-ups: latency as the lake grows, and against vcrpy on the same recorded interactions.

    PYTHONPATH=. python tests/benchmarks/bench_replay.py [--counts 10000,1000000] [--lookups 2000] [--vcr 10000]
                                                         [--vcr-lookups 100] [--seed S] [--folder DIR]

For each count, a lake of that many seeded exchanges (four in five MediaWiki-style GETs, one in five LLM-style JSON
POSTs with a bearer key, responses of about 0.5 KB) is appended in batches, the replay index is built, and then:
`open_ms` is the time to open a Replayer over the open lake with its index caught up (median of 20),
`open_path_ms` the same from the lake's path (the log opened too), `index_build_s` the first open, which builds the
index (about nothing when `--folder` holds the lake and its index from an earlier run), `lookup_us`
the median, p90 and p99 of `Replayer.lookup` for `--lookups` recorded requests drawn at random and built as a client
sends them (with the real key, which redaction turns into the recorded marker). Floor: `fingerprint_us`, the
median of redaction + normalisation + fingerprint alone, which every look-up pays before it touches the index.

vcrpy (not a dependency: `pip install vcrpy` to run this part) gets the same first `--vcr` interactions in one
YAML cassette, written by vcrpy itself. `open_ms` is `Cassette.load` (the whole cassette parsed); `lookup_us` is
what its HTTP stubs do per request (for `--vcr-lookups` of them): `can_play_response_for` then `play_response`,
each a scan of the interactions with its matchers (method, scheme, host, port, path, query and body, so that the
POSTs are told apart). When a count equals `--vcr`, a last line gives the ratios, vcrpy's time over ours, for the
median look-up and for opening. One JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog.app.lake import Lake
from eventlog.log.config import SegmentPolicy
from eventlog.replay import Replayer, fingerprint
from eventlog.replay.shape import request_dict

SEED = 20261206
BATCH = 5000
KEY = "sk-bench00000000000000000000000000live"
WORDS = ("ledger", "harbor", "orbit", "canyon", "meadow", "quartz", "Zürich", "東京", "café", "river", "signal")


def live_request(n: int) -> tuple[str, str, list[tuple[str, str]], bytes | None]:
    """Request number n as a client sends it: method, URL, headers, body."""
    if n % 5 == 4:
        body = {"model": "bench-small", "temperature": 0.2, "max_tokens": 256,
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": f"Question {n}: what is a {WORDS[n % len(WORDS)]}?"}]}
        return ("POST", "https://llm.example.org/v1/chat/completions",
                [("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json"),
                 ("User-Agent", "bench/1.0")], json.dumps(body).encode())
    return ("GET", f"https://en.wikipedia.org/w/api.php?action=query&prop=revisions&titles=Page_{n}"
                   f"&format=json&formatversion=2", [("Accept", "application/json"), ("User-Agent", "bench/1.0")],
            None)


def response_body(n: int, rng: random.Random) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(50))
    return json.dumps({"n": n, "title": f"Page_{n}", "content": words}, ensure_ascii=False)


def records(count: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for first in range(0, count, BATCH):
        chunk = []
        for n in range(first, min(count, first + BATCH)):
            method, url, headers, body = live_request(n)
            chunk.append({"exchange_type": "llm" if method == "POST" else "mediawiki",
                          "source_system": "bench", "entity_type": "exchange",
                          "observed_at_utc": (start + timedelta(seconds=n)).isoformat(),
                          "request": request_dict(method, url, headers, body),
                          "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                                       "body": response_body(n, rng)}})
        yield chunk


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def emit(result: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(result), flush=True)
    return result


def bench_lake(folder: Path, count: int, lookups: int, seed: int) -> dict[str, Any]:
    policy = SegmentPolicy(max_bytes=256 * 1024 * 1024, max_events=500_000, max_age_seconds=0)
    root = folder / f"lake-{count}"
    appended: float | None = None
    if (root / "lake.json").exists():  # a lake left by an earlier run with --folder: measured again as it is
        lake = Lake.open(root)
    else:
        lake = Lake.init(root, segment_policy=policy)
        begun = time.perf_counter()
        for chunk in records(count, seed):
            lake.append(chunk)
        appended = time.perf_counter() - begun
    begun = time.perf_counter()
    Replayer(lake).close()
    indexed = time.perf_counter() - begun
    opens, path_opens = [], []
    for _ in range(20):
        begun = time.perf_counter()
        replayer = Replayer(lake)
        opens.append(time.perf_counter() - begun)
        replayer.close()
        begun = time.perf_counter()
        replayer = Replayer(root)
        path_opens.append(time.perf_counter() - begun)
        replayer.close()
    rng = random.Random(seed + count)
    chosen = [rng.randrange(count) for _ in range(lookups)]
    latencies, floors = [], []
    with Replayer(lake) as replayer:
        for n in chosen:
            method, url, headers, body = live_request(n)
            begun = time.perf_counter_ns()
            request = replayer.request(method, url, headers=headers, body=body)
            found = replayer.lookup(request)
            latencies.append((time.perf_counter_ns() - begun) / 1000)
            if json.loads(found.body)["n"] != n:
                raise AssertionError(f"request {n} was answered with another response")
            begun = time.perf_counter_ns()
            fingerprint(replayer.normal_form(replayer.request(method, url, headers=headers, body=body)))
            floors.append((time.perf_counter_ns() - begun) / 1000)
    size = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    index_size = (root / "replay" / "index.sqlite").stat().st_size
    lake.close()
    return emit({"bench": "replay_lookup", "exchanges": count, "seed": seed, "lookups": lookups,
          "lookup_us_median": round(statistics.median(latencies), 1),
          "lookup_us_p90": round(percentile(latencies, 0.90), 1),
          "lookup_us_p99": round(percentile(latencies, 0.99), 1),
          "fingerprint_us_median": round(statistics.median(floors), 1),
          "open_ms_median": round(statistics.median(opens) * 1000, 2),
          "open_path_ms_median": round(statistics.median(path_opens) * 1000, 2),
          "index_build_s": round(indexed, 2), "append_s": None if appended is None else round(appended, 2),
          "lake_mb": round(size / 2**20, 1), "index_mb": round(index_size / 2**20, 1)})


def bench_vcr(folder: Path, count: int, lookups: int, seed: int) -> dict[str, Any] | None:
    try:
        from vcr import matchers
        from vcr.cassette import Cassette
        from vcr.request import Request
    except ImportError:
        emit({"bench": "replay_vs_vcrpy", "skipped": "vcrpy is not installed (pip install vcrpy)"})
        return None
    match_on = tuple(getattr(matchers, name) for name in ("method", "scheme", "host", "port", "path", "query", "body"))
    path = folder / "cassette.yaml"
    cassette = Cassette(str(path), record_mode="all", match_on=match_on)
    rng = random.Random(seed)
    for n in range(count):
        method, url, headers, body = live_request(n)
        request = Request(method, url, body, {name: value for name, value in headers})
        cassette.append(request, {"status": {"code": 200, "message": "OK"},
                                  "headers": {"Content-Type": ["application/json"]},
                                  "body": {"string": response_body(n, rng).encode()}})
    cassette._save(force=True)
    opens = []
    for _ in range(3):
        begun = time.perf_counter()
        loaded = Cassette.load(path=str(path), match_on=match_on, allow_playback_repeats=True)
        opens.append(time.perf_counter() - begun)
    choice = random.Random(seed + count)
    latencies = []
    for _ in range(lookups):
        n = choice.randrange(count)
        method, url, headers, body = live_request(n)
        begun = time.perf_counter_ns()
        request = Request(method, url, body, {name: value for name, value in headers})
        if not loaded.can_play_response_for(request):
            raise AssertionError(f"vcrpy cannot play request {n}")
        response = loaded.play_response(request)
        latencies.append((time.perf_counter_ns() - begun) / 1000)
        if json.loads(response["body"]["string"])["n"] != n:
            raise AssertionError(f"vcrpy answered request {n} with another response")
    return emit({"bench": "replay_vs_vcrpy", "interactions": count, "seed": seed, "lookups": lookups,
          "vcrpy_open_ms_median": round(statistics.median(opens) * 1000, 1),
          "vcrpy_lookup_us_median": round(statistics.median(latencies), 1),
          "vcrpy_lookup_us_p99": round(percentile(latencies, 0.99), 1),
          "cassette_mb": round(path.stat().st_size / 2**20, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,1000000")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--vcr", type=int, default=10000, help="interactions for the vcrpy comparison (0: none)")
    parser.add_argument("--vcr-lookups", type=int, default=100, help="look-ups timed in vcrpy (each scans the cassette)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--folder", type=Path, default=None, help="where the lakes go (default: a temporary one)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench-replay-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        vcr = bench_vcr(folder, args.vcr, args.vcr_lookups, args.seed) if args.vcr else None
        for count in (int(text) for text in args.counts.split(",") if text):
            ours = bench_lake(folder, count, args.lookups, args.seed)
            if vcr is not None and count == args.vcr:
                emit({"bench": "replay_vs_vcrpy_ratio", "interactions": count,
                      "lookup_median_ratio": round(vcr["vcrpy_lookup_us_median"] / ours["lookup_us_median"]),
                      "open_ratio": round(vcr["vcrpy_open_ms_median"] / ours["open_path_ms_median"])})
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
