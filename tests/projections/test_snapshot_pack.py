"""The snapshot pack projection: incremental equals rebuild byte for byte, any arrival order, dates and chunks."""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.app.lake import Lake
from eventlog.capture.manifest import DatasetManifest
from eventlog.errors import InputError
from projections import project_pack
from projections.pack_files import CHUNK_LINES, FileWriter, IndexLine, index_line
from projections.snapshot_pack import read_pack_checkpoint

MANIFEST = DatasetManifest(dataset_name="pages", source_system="wiki", entity_type="page")
START = datetime(2024, 3, 1, 22, 0, tzinfo=UTC)


def record(key: str, version: int, observed: datetime, *, exchange: int, source: str = "wiki") -> dict[str, Any]:
    return {"exchange_id": f"00000000-0000-4000-8000-{exchange:012d}", "exchange_type": "mediawiki",
            "source_system": source, "entity_type": "page", "natural_key": key,
            "observed_at_utc": observed.isoformat(),
            "request": {"url": f"https://wiki.example/{key}"},
            "response": {"status": 200, "body": {"title": key, "version": version}},
            "provenance": {"runner": "test"}}


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) of a pack but the manifest, which the projection never writes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() else None
            for path in sorted(folder.rglob("*")) if path.name != "manifest.json"}


def rebuilt(lake: Lake, folder: Path) -> dict[str, bytes | None]:
    project_pack(lake.log, MANIFEST, folder, checkpoint=None, replica=lake.config.replica_id)
    return tree(folder)


# One observation: (key, version, minutes after START, dataset or not). Versions make contents; the same
# (key, version) observed twice is a revisit, and its first observation may arrive after a later one.
observation = st.tuples(st.sampled_from(["Ada", "Bea", "Cy", "Dee"]), st.integers(0, 3), st.integers(0, 3000),
                        st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(observation, min_size=1, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=4),
       seed=st.integers(0, 2**16))
def test_incremental_equals_rebuild_and_any_arrival_order(history: list[tuple[str, int, int, bool]],
                                                          cuts: list[int], seed: int) -> None:
    records = [record(key, version, START + timedelta(minutes=minutes), exchange=number,
                      source="wiki" if ours else "other")
               for number, (key, version, minutes, ours) in enumerate(history)]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        lake = Lake.init(root / "a")
        folder, checkpoint = root / "a-pack", root / "a-checkpoint.json"
        bounds = sorted({0, len(records), *(min(cut, len(records)) for cut in cuts)})
        for start, end in pairwise(bounds):
            lake.append(records[start:end])
            result = project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint,
                                  replica=lake.config.replica_id)
            assert result.position == lake.log.last_seq
        incremental = tree(folder)
        assert incremental == rebuilt(lake, root / "a-rebuilt")
        # Another replica that received the same observations in another order writes the same bytes.
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        other = Lake.init(root / "b")
        other.append(shuffled)
        assert rebuilt(other, root / "b-pack") == incremental
        lines = [line for name, data in incremental.items() if name.startswith("records/") and data is not None
                 for line in data.splitlines()]
        contents = {json.loads(line)["content_sha256"] for line in lines}
        assert len(lines) == len(contents) == len((incremental.get("index.jsonl") or b"").splitlines())
        assert contents == {event.content_sha256 for event in lake.events()
                            if event.body["source_system"] == "wiki"}
        lake.close()
        other.close()


def test_each_record_is_filed_under_its_own_date_across_midnight(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake")
    midnight = datetime(2024, 1, 16, tzinfo=UTC)
    lake.append([record("Han", 1, midnight - timedelta(seconds=1), exchange=1),
                 record("Chewie", 1, midnight - timedelta(microseconds=1), exchange=2),
                 record("Yoda", 1, midnight, exchange=3)])
    folder = tmp_path / "pack"
    project_pack(lake.log, MANIFEST, folder, checkpoint=tmp_path / "c.json", replica=lake.config.replica_id)
    before = (folder / "records/2024/2024-01-15/chunk-0001.ndjson").read_bytes().splitlines()
    after = (folder / "records/2024/2024-01-16/chunk-0001.ndjson").read_bytes().splitlines()
    assert [json.loads(line)["natural_key"] for line in before] == ["Han", "Chewie"]
    assert [json.loads(line)["natural_key"] for line in after] == ["Yoda"]
    index = [json.loads(line) for line in (folder / "index.jsonl").read_bytes().splitlines()]
    assert [list(entry) for entry in index] == [["h", "k", "id", "t", "f"]] * 3
    assert [entry["f"] for entry in index] == ["records/2024/2024-01-15/chunk-0001.ndjson"] * 2 + [
        "records/2024/2024-01-16/chunk-0001.ndjson"]
    assert index[2] == {"h": json.loads(after[0])["content_sha256"], "k": "wiki|page|Yoda",
                        "id": "00000000-0000-4000-8000-000000000003", "t": "2024-01-16T00:00:00.000000Z",
                        "f": "records/2024/2024-01-16/chunk-0001.ndjson"}


def test_chunks_hold_at_most_1000_lines_and_appends_fill_the_last(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake")
    day = datetime(2024, 2, 1, tzinfo=UTC)
    folder, checkpoint = tmp_path / "pack", tmp_path / "c.json"

    def batch(first: int, count: int) -> list[dict[str, Any]]:
        return [record(f"K{n:05d}", 0, day + timedelta(seconds=n), exchange=n) for n in range(first, first + count)]

    lake.append(batch(0, 2500))
    project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    date = folder / "records/2024/2024-02-01"
    assert [len(path.read_bytes().splitlines()) for path in sorted(date.iterdir())] == [1000, 1000, 500]
    assert tree(folder) == rebuilt(lake, tmp_path / "rebuilt-first")
    lake.append(batch(2500, 450))
    project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    lake.append(batch(2950, 600))
    result = project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    assert (result.mode, result.records, result.dates_rewritten) == ("incremental", 3550, 0)
    assert [len(path.read_bytes().splitlines()) for path in sorted(date.iterdir())] == [1000, 1000, 1000, 550]
    assert max(len(path.read_bytes().splitlines()) for path in folder.rglob("chunk-*")) == CHUNK_LINES
    assert tree(folder) == rebuilt(lake, tmp_path / "rebuilt")


def test_an_earlier_observation_recorded_late_moves_the_line(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake")
    folder, checkpoint = tmp_path / "pack", tmp_path / "c.json"
    late = record("Ada", 1, datetime(2024, 5, 2, 9, tzinfo=UTC), exchange=1)
    lake.append([late])
    project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    lake.append([dict(late, exchange_id="00000000-0000-4000-8000-000000000002",
                      observed_at_utc="2024-05-01T09:00:00+00:00")])
    result = project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    assert (result.records, result.records_moved, result.dates_rewritten) == (1, 1, 1)
    assert not (folder / "records/2024/2024-05-02").exists()
    line = json.loads((folder / "records/2024/2024-05-01/chunk-0001.ndjson").read_bytes())
    # A revisit's envelope with the payload of the content's observed event.
    assert line["exchange_id"].endswith("000000000002") and line["response"]["body"]["title"] == "Ada"
    assert tree(folder) == rebuilt(lake, tmp_path / "rebuilt")


def test_a_run_that_stopped_midway_is_rebuilt(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake")
    folder, checkpoint = tmp_path / "pack", tmp_path / "c.json"
    lake.append([record("Ada", 1, START, exchange=1)])
    project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    state = read_pack_checkpoint(checkpoint)
    assert state is not None and not state.dirty and state.position == 1
    checkpoint.write_bytes(msgspec.json.encode(msgspec.structs.replace(state, dirty=True)))
    (folder / "records/2024/2024-03-01/chunk-0001.ndjson").write_bytes(b"torn")
    result = project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
    assert result.mode == "rebuild" and result.reason == "the last run stopped before it finished"
    assert tree(folder) == rebuilt(lake, tmp_path / "rebuilt")


def test_a_pack_the_lake_did_not_build_is_not_overwritten(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake")
    folder = tmp_path / "pack"
    (folder / "records").mkdir(parents=True)
    (folder / "index.jsonl").write_bytes(b"{}\n")
    with pytest.raises(InputError, match="holds a pack this lake did not build"):
        project_pack(lake.log, MANIFEST, folder, checkpoint=tmp_path / "c.json", replica=lake.config.replica_id)
    assert (folder / "index.jsonl").read_bytes() == b"{}\n"


def test_index_lines_are_msgspec_encodings_of_the_original_field_order() -> None:
    for natural in ("Ada", None, 'quote " and \\ and 東京 and \u2028'):
        line = index_line(content="ab" * 32, prefix="wiki|page|", natural_key=natural,
                          exchange_id="00000000-0000-4000-8000-000000000001", observed="2024-01-01T00:00:00.000000Z",
                          chunk="records/2024/2024-01-01/chunk-0001.ndjson")
        expected = msgspec.json.encode(IndexLine(h="ab" * 32, k="wiki|page|" + (natural or ""),
                                                 id="00000000-0000-4000-8000-000000000001",
                                                 t="2024-01-01T00:00:00.000000Z",
                                                 f="records/2024/2024-01-01/chunk-0001.ndjson")) + b"\n"
        assert line == expected


PROJECTOR = """
import sys
from pathlib import Path
from eventlog.app.lake import Lake
from projections import project_pack
from tests.projections.test_snapshot_pack import MANIFEST
lake = Lake.open(sys.argv[1])
print("started", flush=True)
while True:  # until killed: incremental runs, and now and then a rebuild
    for rebuild in (False, False, True):
        project_pack(lake.log, MANIFEST, Path(sys.argv[2]), checkpoint=Path(sys.argv[3]),
                     replica=lake.config.replica_id, rebuild=rebuild)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_then_a_rerun_equals_a_rebuild(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import seeded

    seed, rng = seeded("pack-sigkill")
    root = Path(__file__).resolve().parents[2]
    lake = Lake.init(tmp_path / "lake")
    folder, checkpoint = tmp_path / "pack", tmp_path / "checkpoint.json"
    number = stopped_midway = 0
    for trial in range(12):
        # New observations each trial: new contents, and earlier observations of old ones (lines that move).
        batch = []
        for _ in range(rng.randint(200, 1500)):
            number += 1
            key = f"K{rng.randrange(400)}"
            batch.append(record(key, rng.randrange(3), START + timedelta(minutes=rng.randrange(-3000, 3000)),
                                exchange=number))
        lake.append(batch)
        child = subprocess.Popen([sys.executable, "-c", PROJECTOR, str(lake.root), str(folder), str(checkpoint)],
                                 cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"started\n"
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, (seed, trial, err)
        state = read_pack_checkpoint(checkpoint)
        stopped_midway += state is None or state.dirty
        project_pack(lake.log, MANIFEST, folder, checkpoint=checkpoint, replica=lake.config.replica_id)
        assert tree(folder) == rebuilt(lake, tmp_path / f"rebuilt-{trial}"), (seed, trial)
    assert stopped_midway >= 3, (seed, stopped_midway)  # the kills did land inside runs
    lake.close()


def test_the_background_writer_writes_every_file_and_raises_the_first_error(tmp_path: Path) -> None:
    with FileWriter(depth=2) as writer:
        for n in range(10):
            writer.submit(tmp_path / f"f{n}", bytes([n]) * 1000)
    assert [(tmp_path / f"f{n}").read_bytes() for n in range(10)] == [bytes([n]) * 1000 for n in range(10)]
    with pytest.raises(FileNotFoundError) as failed, FileWriter(depth=2) as writer:
        writer.submit(tmp_path / "missing" / "a", b"x")
        writer.submit(tmp_path / "b", b"y")
    assert "missing" in str(failed.value)
    # A write after the failing one is not made: the run stops at its first error.
    with pytest.raises(FileNotFoundError), FileWriter(depth=1) as writer:
        writer.submit(tmp_path / "missing" / "a", b"x")
        for n in range(5):
            writer.submit(tmp_path / f"g{n}", b"z")
    assert not (tmp_path / "g4").exists()
