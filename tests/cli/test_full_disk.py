"""A lake on a full disk and on a read-only file system: writes end in one sentence, nothing acknowledged is lost,
and `verify` and `log` still work. Needs a small tmpfs, mounted here where the machine allows it (root)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import Lake
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
