"""Rebuild the broken-lake fixtures: python tests/data/lakes/make_fixtures.py (from the repository root).

Each folder is a lake's log/ with one kind of damage and an expected.json naming the first problem verify must
report. The pristine lake is made with a fixed clock and replica id, so the bytes are the same on every machine.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import msgspec  # noqa: E402

from eventlog import Lake, SegmentPolicy, canonical_json  # noqa: E402
from eventlog.log.seals import read_seal  # noqa: E402
from tests.factories import page_record  # noqa: E402

REPLICA = "5a1c0de0-0000-4000-8000-000000000001"
FIRST = "00000000000000000001-00000000000000000003"
SECOND = "00000000000000000004-00000000000000000006"
ACTIVE = "00000000000000000007.active"


def pristine(target: Path) -> None:
    policy = SegmentPolicy(max_events=3, max_bytes=0, max_age_seconds=0)
    with Lake.init(target, replica_id=REPLICA, segment_policy=policy,
                   clock=lambda: datetime(2025, 1, 1, tzinfo=UTC)) as lake:
        for title in ("Ada", "Bea"):
            lake.append([page_record(title, revision) for revision in range(3)])
        lake.append([page_record("Cy", 1)])


def edit_line(path: Path, number: int, old: bytes, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    assert old in lines[number - 1], (path, number, old)
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    path.write_bytes(b"\n".join(lines))


def append_bytes(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def set_prev(path: Path, number: int, prev: str) -> None:
    lines = path.read_bytes().split(b"\n")
    event = json.loads(lines[number - 1])
    event["prev"] = prev
    lines[number - 1] = canonical_json(event)
    path.write_bytes(b"\n".join(lines))


def rewrite_seal(path: Path, **changes: object) -> None:
    seal, _ = read_seal(path)
    path.write_bytes(msgspec.structs.replace(seal, **changes).to_bytes())


def main() -> None:
    work = HERE / "_pristine"
    shutil.rmtree(work, ignore_errors=True)
    pristine(work)
    log = work / "log"
    cases = {
        "torn-tail": (lambda d: append_bytes(d / "segments" / f"{ACTIVE}.ndjson", b'{"body":{"cont'),
                      f"log/segments/{ACTIVE}.ndjson", 2, "torn line"),
        "bad-hash": (lambda d: edit_line(d / "segments" / f"{FIRST}.ndjson", 2, b"Ada revision 1", b"Ada revision X"),
                     f"log/segments/{FIRST}.ndjson", 2, "content_sha256"),
        "broken-chain": (lambda d: set_prev(d / "segments" / f"{SECOND}.ndjson", 3, "f" * 64),
                         f"log/segments/{SECOND}.ndjson", 3, "prev does not match"),
        "missing-seal": (lambda d: (d / "seals" / f"{SECOND}.json").unlink(),
                         f"log/segments/{SECOND}.ndjson", None, "has no seal"),
        "bad-seal-chain": (lambda d: rewrite_seal(d / "seals" / f"{SECOND}.json", prev_seal_sha256="1" * 64),
                           f"log/seals/{SECOND}.json", None, "seal chain broken"),
        "bad-merkle-root": (lambda d: rewrite_seal(d / "seals" / f"{SECOND}.json", merkle_root="2" * 64),
                            f"log/segments/{SECOND}.ndjson", None, "Merkle root"),
    }
    for name, (damage, file, line, message) in cases.items():
        target = HERE / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(log, target / "log", ignore=shutil.ignore_patterns("index.sqlite*", "writer.lock"))
        damage(target / "log")
        (target / "expected.json").write_text(json.dumps({"file": file, "line": line, "message": message},
                                                         indent=1) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
