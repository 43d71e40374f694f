"""Tamper evidence: any flipped byte in a segment or seal fails verify, naming the file and the line."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventlog import Lake, SegmentPolicy
from eventlog.log.seals import merkle_root
from eventlog.log.segments import list_segments
from eventlog.log.verify import verify_log
from tests.conftest import seeded
from tests.factories import openalex_record, page_record

FIXED = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sealed segments and an active one, with observed, revisited and unicode content."""
    root = tmp_path_factory.mktemp("pristine") / "lake"
    policy = SegmentPolicy(max_events=4, max_bytes=0, max_age_seconds=0)
    with Lake.init(root, segment_policy=policy, clock=lambda: FIXED) as lake:
        lake.append([page_record("Zürich", 1), page_record("東京", 1), openalex_record(1)])
        lake.append([page_record("Zürich", 1, observed=datetime(2024, 9, 1, tzinfo=UTC))])
        lake.append([page_record("Ada", n) for n in range(5)])
        lake.append([page_record("Bea", 1), page_record("Bea", 2)])
        assert lake.verify().ok
    return root


def _copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "lake"
    shutil.copytree(pristine, target)
    return target


def _files(root: Path) -> list[Path]:
    segments = [path for _, path in list_segments(root / "log" / "segments")]
    return segments + sorted((root / "log" / "seals").iterdir())


def test_pristine_lake_verifies(pristine: Path) -> None:
    report = verify_log(pristine / "log")
    assert report.ok, report.problems
    assert (report.events, report.segments, report.seals) == (11, 3, 2)


def test_every_sampled_byte_flip_is_caught_and_located(pristine: Path, tmp_path: Path) -> None:
    seed, rng = seeded("byte flip")
    root = _copy(pristine, tmp_path)
    checked = 0
    for path in _files(root):
        data = path.read_bytes()
        relative = path.relative_to(root).as_posix()
        positions = sorted(rng.sample(range(len(data)), min(len(data), 120)))
        for position in positions:
            flipped = bytearray(data)
            flipped[position] ^= rng.randrange(1, 256)
            path.write_bytes(bytes(flipped))
            report = verify_log(root / "log")
            assert not report.ok, f"flip at {relative}:{position} (seed {seed}) went unnoticed"
            first = report.problems[0]
            assert first.file == relative, (position, seed, first)
            if "segments" in relative:
                expected_line = data.count(b"\n", 0, position) + 1
                assert first.line == expected_line, (position, seed, first)
            checked += 1
        path.write_bytes(data)
    assert checked == 5 * 120
    assert verify_log(root / "log").ok


def test_broken_chain_is_named_at_the_line_whose_prev_disagrees(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    _, active = list_segments(root / "log" / "segments")[-1]
    lines = active.read_bytes().splitlines(keepends=True)
    active.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))  # two lines swapped
    problem = verify_log(root / "log").problems[0]
    assert problem.line == 1 and "seq" in problem.message


def test_missing_segment_and_missing_seal_are_reported(pristine: Path, tmp_path: Path) -> None:
    root = _copy(pristine, tmp_path)
    seal = sorted((root / "log" / "seals").iterdir())[1]
    seal.unlink()
    report = verify_log(root / "log")
    assert any("has no seal" in problem.message for problem in report.problems)
    root = _copy(pristine, tmp_path / "second")
    _, first_segment = list_segments(root / "log" / "segments")[0]
    first_segment.unlink()
    messages = [problem.message for problem in verify_log(root / "log").problems]
    assert any("starts at seq 5, expected 1" in message for message in messages)
    assert any("segment this seal describes is missing" in message for message in messages)


FIXTURES = Path(__file__).parents[1] / "data" / "lakes"
BROKEN = sorted(path.name for path in FIXTURES.iterdir() if (path / "expected.json").exists())


@pytest.mark.parametrize("case", BROKEN)
def test_broken_lake_fixtures_fail_verify_where_expected(case: str) -> None:
    expected = json.loads((FIXTURES / case / "expected.json").read_text())
    report = verify_log(FIXTURES / case / "log")
    assert not report.ok
    first = report.problems[0]
    assert (first.file, first.line) == (expected["file"], expected["line"]), first
    assert expected["message"] in first.message, first


def test_torn_tail_fixture_is_repaired_by_opening(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "torn-tail" / "log", tmp_path / "lake" / "log")
    (tmp_path / "lake" / "lake.json").write_text('{"replica_id": "5a1c0de0-0000-4000-8000-000000000001"}')
    with Lake.open(tmp_path / "lake") as lake:
        assert lake.verify().ok
        assert [event.seq for event in lake.events()] == list(range(1, 8))


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 as written: split at the largest power of two smaller than n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 100])
def test_streaming_merkle_root_matches_the_rfc_definition(count: int) -> None:
    leaves = [hashlib.sha256(str(n).encode()).digest() for n in range(count)]
    assert merkle_root(leaves) == _reference_root(leaves).hex()


def test_merkle_root_of_the_rfc6962_test_leaves() -> None:
    # The eight leaves used by the Certificate Transparency reference tests, and their published root.
    leaves = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                         "606162636465666768696a6b6c6d6e6f")]
    assert merkle_root(leaves) == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
