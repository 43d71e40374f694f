"""Crash safety and the single-writer rule, with real processes, real files and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest

from eventlog import Lake, LockBusyError, SegmentPolicy
from eventlog.log.config import read_config, write_config
from tests.conftest import seeded

ROOT = Path(__file__).resolve().parents[2]

APPENDER = textwrap.dedent("""
    import random, sys
    import eventlog.log.writer
    from eventlog import Lake
    from tests.factories import openalex_record
    eventlog.log.writer.CHUNK = 7  # calls of up to 40 records then seal within the call as well as after it
    eventlog.log.writer.THREADED_WRITE_BYTES = 4096  # and each chunk is written on a thread of its own, killed or not
    lake_path, offset, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    lake = Lake.open(lake_path)
    n = offset
    while True:
        batch = [openalex_record(n + i) for i in range(rng.randint(1, 40))]
        n += len(batch)
        result = lake.append(batch)
        ids = [event.event_id for event in lake.events(after_seq=result.first_seq - 1)] if result.first_seq else []
        sys.stdout.write("".join(f"{event_id}\\n" for event_id in ids))
        sys.stdout.flush()
""")


def _child(*args: str, code: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=ROOT)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_event(tmp_path: Path) -> None:
    seed, rng = seeded("crash test")
    root = tmp_path / "lake"
    Lake.init(root, segment_policy=SegmentPolicy(max_events=60, max_bytes=0, max_age_seconds=0)).close()
    acknowledged: list[str] = []
    for trial in range(24):
        child = _child(str(root), str(trial * 100_000), str(rng.randrange(2**32)), code=APPENDER)
        time.sleep(rng.uniform(0.4, 1.2))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err.decode()
        lines = out.decode().split("\n")
        acknowledged.extend(line for line in lines[:-1] if line)
        with Lake.open(root) as lake:
            report = lake.verify()
            assert report.ok, f"trial {trial} (seed {seed}): {report.problems[:3]}"
            ids = [event.event_id for event in lake.events()]
        assert len(ids) == len(set(ids)), f"trial {trial} (seed {seed}): an event is present twice"
        missing = set(acknowledged) - set(ids)
        assert not missing, f"trial {trial} (seed {seed}): {len(missing)} acknowledged events lost"
    assert len(acknowledged) > 100


WRITER = textwrap.dedent("""
    import sys
    from eventlog import Lake
    from tests.factories import page_record
    lake_path, name = sys.argv[1], sys.argv[2]
    lake = Lake.open(lake_path)
    for batch in range(40):
        lake.append([page_record(f"{name}-{batch}", revision) for revision in range(10)])
""")


@pytest.mark.slow
def test_two_processes_appending_at_once_never_interleave(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root, segment_policy=SegmentPolicy(max_events=150, max_bytes=0, max_age_seconds=0)).close()
    children = [_child(str(root), name, code=WRITER) for name in ("left", "right")]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    with Lake.open(root) as lake:
        assert lake.verify().ok
        events = list(lake.events())
    assert [event.seq for event in events] == list(range(1, 801))
    by_batch: dict[str, list[int]] = {}
    for event in events:
        by_batch.setdefault(event.body["natural_key"], []).append(event.seq)
    assert len(by_batch) == 80
    for seqs in by_batch.values():
        assert seqs == list(range(seqs[0], seqs[0] + 10)), "a batch was interleaved with another writer's"


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from eventlog.log.locking import WriterLock
    lock = WriterLock(Path(sys.argv[1]) / "log" / "writer.lock", timeout=5)
    with lock.held():
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
""")


@pytest.mark.slow
def test_second_writer_fails_with_a_clear_message_after_its_bound(tmp_path: Path) -> None:
    from tests.factories import page_record

    root = tmp_path / "lake"
    Lake.init(root).close()
    write_config(root, msgspec.structs.replace(read_config(root), lock_timeout_seconds=0.3))
    with Lake.open(root) as lake:
        holder = _child(str(root), "3", code=HOLDER)
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        started = time.monotonic()
        with pytest.raises(LockBusyError, match=rf"another process \(pid {holder.pid}\) is writing.*0.3 s"):
            lake.append([page_record("Ada", 1)])
        assert time.monotonic() - started < 2
        assert list(lake.events()) == []
        lake.log.lock.timeout = 30
        result = lake.append([page_record("Ada", 1)])  # waits for the holder, then goes through
        assert result.observed == 1
        holder.communicate()
