"""Benchmark: seal and open N MiB of segment-like NDJSON as a cold-storage archive, file to file.

    PYTHONPATH=. python tests/benchmarks/bench_archive.py [--size-mib 1024] [--seed 1] [--workdir DIR]

Prints one JSON line per result: seal, seal with read-back verification (the default of `encrypt_file`),
open. Each measured run happens in a fresh child process so that its peak RSS is its own. The floor is
measured in the same run on the same file: zstd (same level, same 64 KiB chunking) plus AES-256-GCM per
chunk, reading, writing and fsyncing files, but no header, no hashing, no look-ahead, no temp file and
rename. For verified seals the floor is the same seal floor. ratio = throughput / floor throughput. MB/s
counts plaintext bytes, 1 MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventlog.cold.container import CHUNK_SIZE, ZSTD_LEVEL, decrypt_file, encrypt_file
from eventlog.cold.keys import Keys, X25519Identity

BLOCK = 1 << 20


def generate(path: Path, size: int, seed: int) -> None:
    """Write `size` bytes of canonical-JSON-like event lines (hash chain, ids, envelopes) from a seed."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "wiki", "page", "revision", "author", "2024", "category", "the",
             "of", "and", "summary", "text", "link", "title", "openalex", "work", "citation"]
    bodies = []
    for _ in range(512):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(10, 120)))
        bodies.append(json.dumps({"request": {"method": "GET", "url": f"https://example.org/w/api.php?page="
                                                                      f"{rng.randrange(10**7)}"},
                                  "response": {"status": 200, "body": {"title": text[:40], "text": text}}},
                                 separators=(",", ":"), sort_keys=True))
    template = ('{"body":{"content_sha256":"%s","entity_type":"page","exchange_id":"%s","natural_key":"Q%d",'
                '"observed_at_utc":"2024-03-%02dT%02d:%02d:%02dZ","payload":%s,"source_system":"wiki"},'
                '"event_id":"%s","origin":"7d9c6e3a-replica","prev":"%s","recorded_at_utc":"2024-03-%02dT%02d:'
                '%02d:%02dZ","seq":%d,"type":"observed"}\n')
    written, seq = 0, 0
    with path.open("wb") as out:
        buffer: list[str] = []
        pending = 0
        while written + pending < size:
            seq += 1
            day, hour, minute, second = rng.randrange(1, 29), rng.randrange(24), rng.randrange(60), rng.randrange(60)
            line = template % (f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(128):032x}", rng.randrange(10**6),
                               day, hour, minute, second, rng.choice(bodies), f"{rng.getrandbits(128):032x}",
                               f"{rng.getrandbits(256):064x}", day, hour, minute, second, seq)
            buffer.append(line)
            pending += len(line)
            if pending > BLOCK:
                written += out.write("".join(buffer).encode())
                buffer, pending = [], 0
        data = "".join(buffer).encode()[: size - written]
        out.write(data)


def floor_seal(src: Path, dst: Path) -> None:
    chunker = zstandard.ZstdCompressor(level=ZSTD_LEVEL).chunker(chunk_size=CHUNK_SIZE)
    aead = AESGCM(bytes(32))
    index = 0
    with src.open("rb") as reader, dst.open("wb") as writer:
        while block := reader.read(BLOCK):
            for chunk in chunker.compress(block):
                writer.write(aead.encrypt(index.to_bytes(12, "big"), chunk, None))
                index += 1
        for chunk in chunker.finish():
            writer.write(aead.encrypt(index.to_bytes(12, "big"), chunk, None))
            index += 1
        writer.flush()
        os.fsync(writer.fileno())


def floor_open(src: Path, dst: Path) -> None:
    aead = AESGCM(bytes(32))
    index = 0
    with src.open("rb") as reader, dst.open("wb") as writer:
        sink = zstandard.ZstdDecompressor().stream_writer(writer, closefd=False)
        while chunk := reader.read(CHUNK_SIZE + 16):
            sink.write(aead.decrypt(index.to_bytes(12, "big"), chunk, None))
            index += 1
        writer.flush()
        os.fsync(writer.fileno())


def child(args: argparse.Namespace) -> None:
    """Run one measured phase and print {seconds, peak_rss_mib}."""
    work = Path(args.workdir)
    identity = X25519Identity.from_text((work / "identity.txt").read_text().strip())
    started = time.perf_counter()
    digest = None
    if args.phase in ("seal", "seal-verified"):
        digest = encrypt_file(work / "segment.ndjson", work / "segment.evlarc",
                              keys=Keys(recipients=[identity.recipient]), metadata={"first_seq": 1},
                              verify=args.phase == "seal-verified", overwrite=True).plaintext_sha256
    elif args.phase == "open":
        digest = decrypt_file(work / "segment.evlarc", work / "restored.ndjson", keys=Keys(identities=[identity]),
                     overwrite=True).plaintext_sha256
    elif args.phase == "floor-seal":
        floor_seal(work / "segment.ndjson", work / "floor.bin")
    else:
        floor_open(work / "floor.bin", work / "floor.ndjson")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": round(peak, 1), "sha256": digest}))


def measure(phase: str, work: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--workdir", str(work)],
                            capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="folder for the data files (default: a temp folder)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.workdir))
    try:
        size = args.size_mib << 20
        generate(work / "segment.ndjson", size, args.seed)
        (work / "identity.txt").write_text(X25519Identity.generate().secret_text() + "\n")
        if hasattr(os, "sync"):
            os.sync()  # so write-back of the generated file does not run during the measurements
        print(json.dumps({"note": "generated", "size_mib": args.size_mib, "seed": args.seed}), file=sys.stderr)
        sealed_sha256 = None
        for name, phase, floor in (("archive_seal", "seal", "floor-seal"),
                                   ("archive_seal_verified", "seal-verified", "floor-seal"),
                                   ("archive_open", "open", "floor-open")):
            floor_run = measure(floor, work)
            run = measure(phase, work)
            if phase == "seal":
                sealed_sha256 = run["sha256"]
            elif phase == "open":
                (work / "restored.ndjson").unlink()
                (work / "floor.ndjson").unlink()
            mb_s = size / run["seconds"] / 1e6
            floor_mb_s = size / floor_run["seconds"] / 1e6
            print(json.dumps({
                "bench": name, "size_mib": args.size_mib, "seed": args.seed, "seconds": round(run["seconds"], 3),
                "mb_s": round(mb_s, 1), "peak_rss_mib": run["peak_rss_mib"], "floor_mb_s": round(floor_mb_s, 1),
                "floor_peak_rss_mib": floor_run["peak_rss_mib"], "ratio": round(mb_s / floor_mb_s, 3),
                "archive_bytes": (work / "segment.evlarc").stat().st_size, "plaintext_bytes": size,
                "round_trip_ok": run["sha256"] == sealed_sha256,
            }), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
