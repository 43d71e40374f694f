"""A lake on a full disk and on a read-only file system: writes end in one sentence, nothing acknowledged is lost,
and `verify` and `log` still work. Needs a small tmpfs, mounted here where the machine allows it (root)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import Lake, SegmentPolicy
from tests.cli.runner import Run
from tests.factories import page_record


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, disk: Path) -> Run:
    return Run(capsys, monkeypatch, disk / "lake")


def _records(path: Path, prefix: str, count: int) -> Path:
    path.write_text("".join(json.dumps(page_record(f"{prefix} {n}", 1, body="x" * 3000)) + "\n"
                            for n in range(count)))
    return path


def _fill(disk: Path) -> None:
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _one_sentence(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def test_full_disk_keeps_what_was_acknowledged(run: Run, disk: Path, tmp_path: Path) -> None:
    Lake.init(run.lake).close()
    assert run("append", str(_records(tmp_path / "a.ndjson", "Before", 40)))[0] == 0
    assert run("mirror")[0] == 0
    _fill(disk)
    for attempt in range(3):  # append until the disk refuses, as a busy capture would
        code, _, err = run("append", str(_records(tmp_path / "b.ndjson", f"Full {attempt}", 40)))
        if code != 0:
            break
    assert code == 4 and _one_sentence(err) and ("no space" in err or "cannot be written" in err), err
    code, out, err = run("verify")
    assert code in (0, 6) and "Traceback" not in err
    code, out, _ = run("log")
    assert code == 0 and "observed" in out
    for command in (("mirror",), ("reproject",), ("seal",), ("reindex",)):
        code, _, err = run(*command)
        assert code in (0, 4, 7) and (code == 0 or _one_sentence(err)), (command, err)
    (disk / "filler").unlink()
    assert run("reindex")[0] == 0
    code, out, err = run("verify")
    assert code == 0, err
    code, out, _ = run("--json", "log")
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 40
    assert run("append", str(_records(tmp_path / "c.ndjson", "After", 5)))[0] == 0
    assert run("verify")[0] == 0


def test_read_only_lake_reads_and_refuses_writes_with_a_sentence(run: Run, disk: Path, tmp_path: Path) -> None:
    Lake.init(run.lake).close()
    assert run("append", str(_records(tmp_path / "a.ndjson", "Page", 20)))[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        assert not os.access(disk, os.W_OK) or subprocess.run(["touch", str(disk / "x")]).returncode != 0
        code, out, err = run("verify")
        assert code == 0, err
        code, out, err = run("--json", "log")
        assert code == 0 and len(out.splitlines()) == 20, err
        code, _, err = run("append", str(_records(tmp_path / "b.ndjson", "More", 2)))
        assert code == 4 and _one_sentence(err), err
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert run("verify")[0] == 0


def _small_segments(root: Path) -> None:
    Lake.init(root, segment_policy=SegmentPolicy(max_events=10, max_bytes=0, max_age_seconds=0)).close()


def test_full_disk_during_mirror(run: Run, disk: Path, tmp_path: Path) -> None:
    """The SQLite database sits in the lake on the full disk: the mirror stops with a sentence, keeps no partial
    batch, and a rerun once there is room copies everything."""
    _small_segments(run.lake)
    assert run("append", str(_records(tmp_path / "a.ndjson", "Page", 40)))[0] == 0
    assert run("mirror")[0] == 0  # the database file and its tables exist before the disk fills
    assert run("append", str(_records(tmp_path / "b.ndjson", "More", 60)))[0] == 0
    _fill(disk)
    code, _, err = run("mirror")
    assert code == 7 and _one_sentence(err) and "lake.db' cannot be written: its disk is full" in err, err
    code, _, err = run("verify")
    assert code == 0, err
    (disk / "filler").unlink()
    code, out, err = run("--json", "mirror")
    assert code == 0, err
    assert json.loads(out)["watermark"] == 100
    with Lake.open(run.lake) as lake, lake.sql_store() as store:
        assert [event for _, event in store.events()] == list(lake.events())
    assert run("verify")[0] == 0


def test_full_disk_during_archive(run: Run, disk: Path, tmp_path: Path) -> None:
    """archive/ on the full disk: the archive stops with a sentence, leaves no partial archive and keeps every hot
    segment; once there is room it archives and evicts, and verify passes throughout."""
    key = tmp_path / "archive.key"
    assert run("keygen", "--key-file", str(key))[0] == 0
    _small_segments(run.lake)
    for batch in range(5):  # an append call seals after its batch: one sealed segment per call of 10
        assert run("append", str(_records(tmp_path / "a.ndjson", f"Page {batch}", 10)))[0] == 0
    sealed = sorted(path.name for path in (run.lake / "log" / "segments").iterdir() if ".active." not in path.name)
    assert len(sealed) == 5
    _fill(disk)
    code, _, err = run("archive", "--evict", "--compression", "none", "--key-file", str(key))
    assert code == 4 and _one_sentence(err), err
    assert re.search(r"cannot use \S+/archive/\d{20}-\d{20}\.evlarc: no space left on the device", err), err
    archive = run.lake / "archive"
    assert not archive.exists() or not [path for path in archive.iterdir() if path.name.startswith(".")]
    assert sorted(path.name for path in (run.lake / "log" / "segments").iterdir()
                  if ".active." not in path.name) == sealed
    code, _, err = run("verify")
    assert code == 0, err
    (disk / "filler").unlink()
    code, _, err = run("archive", "--evict", "--compression", "none", "--key-file", str(key))
    assert code == 0, err
    assert not [path for path in (run.lake / "log" / "segments").iterdir() if path.name in sealed]
    code, _, err = run("verify")
    assert code == 0, err


def test_full_disk_during_a_pack_rebuild(run: Run, disk: Path, tmp_path: Path) -> None:
    """The pack's chunks are written on a thread of their own: a full disk there still ends in one sentence, the
    pack readers see stays whole, and a rerun once there is room rebuilds it."""
    Lake.init(run.lake).close()
    assert run("append", str(_records(tmp_path / "a.ndjson", "Page", 60)))[0] == 0
    code, _, err = run("init", "--name", "pages", "--source", "wikipedia-en", "--entity", "page",
                       "--out", str(run.lake / "snapshots"))
    assert code == 0, err
    assert run("reproject", "--packs")[0] == 0
    pack = run.lake / "snapshots" / "pages"
    before = {path.relative_to(pack): path.read_bytes() for path in pack.rglob("*") if path.is_file()}
    assert sum(map(len, before.values())) > 150_000
    _fill(disk)
    filler = disk / "filler"
    os.truncate(filler, filler.stat().st_size - 48 * 1024)  # room for the checkpoint, not for the chunks
    code, _, err = run("reproject", "--packs", "--rebuild")
    assert code == 4 and _one_sentence(err), err
    # The chunk a writer thread was writing, or the index file beside them, whichever met the full disk first.
    assert re.search(r"cannot use \S+/snapshots/pages/\.(records\.rebuild/\S+\.ndjson|index\.jsonl\.rebuild): no "
                     r"space left on the device", err), err
    assert {path.relative_to(pack): path.read_bytes() for path in pack.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(pack).parts)} == before
    (disk / "filler").unlink()
    code, _, err = run("reproject", "--packs", "--rebuild")
    assert code == 0, err
    assert {path.relative_to(pack): path.read_bytes() for path in pack.rglob("*") if path.is_file()} == before
