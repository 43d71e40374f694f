"""Cold-storage commands end to end: real lakes, real key files, real processes, exit codes and one sentence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventlog import Lake, SegmentPolicy
from eventlog.cold.keys import Keys, SymmetricKey, load_key_file
from eventlog.cold.reader import format_archive_name, read_location
from eventlog.log.segments import format_segment_name, list_segments
from tests.cli.runner import Run
from tests.conftest import seeded
from tests.eventlog.test_packs import original_tool_encrypt
from tests.factories import openalex_record

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--argon2", "64:1:1")
NO_KEYS = Keys()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    for name in ("EVENTLOG_IDENTITY", "EVENTLOG_KEY_FILE", "EVENTLOG_PASSPHRASE", "SNAPSHOT_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    return Run(capsys, monkeypatch, tmp_path / "lake")


def build_lake(root: Path, segments: int, *, size: int = 3) -> list[str]:
    """A lake of `segments` sealed segments of `size` events and one active event; returns the event lines."""
    with Lake.init(root, segment_policy=SegmentPolicy(max_events=0, max_bytes=0, max_age_seconds=0)) as lake:
        for number in range(segments):
            lake.append([openalex_record(number * size + i) for i in range(size)])
            lake.seal()
        lake.append([openalex_record(10**6)])
        return [json.dumps(event.event_id) for event in lake.events()]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the lake's log folder but the index (which reads may touch), by relative path."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted((root / "log").rglob("*"))
            if path.is_file() and path.name not in ("index.sqlite", "writer.lock")}


def leftovers(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob(".*") if path.is_file())


def one_sentence(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1


def test_keygen_writes_private_keys_and_prints_the_public_one(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("keygen", "--out", str(tmp_path / "id.txt"))
    public = out.strip()
    assert code == 0 and public.startswith("eventlog-x25519-public-1:")
    identity = tmp_path / "id.txt"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600 and public in identity.read_text()
    code, out, _ = run("--json", "keygen", "--out", str(tmp_path / "id2.txt"))
    assert json.loads(out)["public_key"].startswith("eventlog-x25519-public-1:")
    code, out, _ = run("keygen", "--key-file", str(tmp_path / "k.bin"), "--json")
    key_file = tmp_path / "k.bin"
    assert code == 0 and json.loads(out) == {"key_file": str(key_file)}
    assert len(key_file.read_bytes()) == 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    code, _, err = run("keygen", "--out", str(identity))
    assert code == 3 and one_sentence(err) and "refusing to overwrite" in err
    assert run("keygen")[0] == 2
    assert run("keygen", "--out", str(tmp_path / "a"), "--key-file", str(tmp_path / "b"))[0] == 2


def test_archive_evict_read_with_env_key_verify_restore(run: Run, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    build_lake(run.lake, 3)
    before = snapshot(run.lake)
    (tmp_path / "pass.txt").write_text("a long passphrase\n")
    monkeypatch.setenv("ARCHIVE_PASS", "a long passphrase")
    code, out, err = run("--json", "archive", "--evict", "--segments", "1-6", "--passphrase-env", "ARCHIVE_PASS",
                         *FAST)
    report = json.loads(out)
    assert code == 0, err
    assert [(s["segment"], s["evicted"], s["verified"]) for s in report["segments"]] == [
        (f"{1:020d}-{3:020d}", True, "decryption"), (f"{4:020d}-{6:020d}", True, "decryption")]
    code, out, _ = run("verify", "--json")
    assert code == 0 and json.loads(out)["evicted"] == 2
    code, _, err = run("log")
    assert code == 8 and one_sentence(err) and f"archive/{format_archive_name(1, 3)}" in err
    assert "EVENTLOG_PASSPHRASE" in err and "a long passphrase" not in err
    monkeypatch.setenv("EVENTLOG_PASSPHRASE", "a long passphrase")
    code, out, _ = run("log", "--json")
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == list(range(1, 11))
    assert run("verify")[0] == 0
    monkeypatch.delenv("EVENTLOG_PASSPHRASE")
    code, out, err = run("restore", "--segments", "1-", "--passphrase-file", str(tmp_path / "pass.txt"))
    assert code == 0 and "2 segment(s) restored" in out, err
    after = snapshot(run.lake)
    assert {k: v for k, v in after.items() if "locations" not in k} == before
    assert run("verify")[0] == 0 and leftovers(run.lake) == []
    code, out, _ = run("archive", "--key-file", str(tmp_path / "none"), "--segments", "0-0")
    assert code == 3


def test_archive_before_and_its_parse_errors(run: Run, tmp_path: Path) -> None:
    build_lake(run.lake, 2)
    run("keygen", "--key-file", str(tmp_path / "k.bin"))
    key = ("--key-file", str(tmp_path / "k.bin"))
    code, out, _ = run("archive", "--before", "2000-01-01", *key)
    assert code == 0 and out.strip() == "no sealed segment selected"
    code, out, _ = run("--json", "archive", "--before", "2999-01-01T00:00:00+02:00", *key)
    assert code == 0 and json.loads(out)["archived"] == 2
    for bad, message in (("2024-05-01T10:00:00", "no UTC offset"), ("yesterday", "neither a date")):
        code, _, err = run("archive", "--before", bad, *key)
        assert code == 3 and one_sentence(err) and message in err


@pytest.mark.parametrize(("options", "code", "message"), [
    ((), 3, "no key to seal archives to"),
    (("--recipient", "eventlog-x25519-public-1:AAAA"), 3, "recipient argument: the X25519 public key is damaged"),
    (("--passphrase-env", "UNSET_VARIABLE"), 3, "UNSET_VARIABLE is not set"),
    (("--passphrase-env", "X", "--passphrase-file", "f"), 2, "give the passphrase one way"),
    (("--argon2", "1:1"), 3, "--argon2 '1:1' is not MEMORY_KIB:ITERATIONS:LANES"),
    (("--passphrase", "secret"), 2, "No such option '--passphrase'"),
])
def test_archive_refusals_write_nothing(run: Run, options: tuple[str, ...], code: int, message: str) -> None:
    build_lake(run.lake, 2)
    before = snapshot(run.lake)
    got, _, err = run("archive", "--evict", *options)
    assert got == code and message in err, err
    assert snapshot(run.lake) == before and list((run.lake / "archive").iterdir()) == []


def test_archive_of_a_segment_that_differs_from_its_seal_exits_6(run: Run, tmp_path: Path) -> None:
    build_lake(run.lake, 1)
    run("keygen", "--key-file", str(tmp_path / "k.bin"))
    _, segment = list_segments(run.lake / "log" / "segments")[0]
    segment.write_bytes(segment.read_bytes().replace(b"W1000001", b"W1000009"))
    before = snapshot(run.lake)
    code, _, err = run("archive", "--evict", "--key-file", str(tmp_path / "k.bin"))
    assert code == 6 and one_sentence(err) and "does not match its seal" in err
    assert snapshot(run.lake) == before and list((run.lake / "archive").iterdir()) == []
    assert leftovers(run.lake) == []


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _alter(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _alter_header(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b'"count":3', b'"count":4'))


@pytest.mark.parametrize(("case", "message"), [
    ("wrong key file", "wrong key or passphrase for"),
    ("wrong passphrase", "wrong key or passphrase for"),
    ("truncated", "truncated"),
    ("altered", "failed authentication"),
    ("altered header", "header of .* failed authentication"),
    ("another lake", "does not hold the segment"),
    ("not an archive", "is not an eventlog archive"),
    ("no key", "restoring needs the archives' key"),
    ("missing", "cannot read"),
])
def test_restore_failures_are_one_sentence_exit_8_and_write_nothing(run: Run, tmp_path: Path, case: str,
                                                                     message: str) -> None:
    build_lake(run.lake, 2)
    key_file = tmp_path / "k.bin"
    run("keygen", "--key-file", str(key_file))
    (tmp_path / "pass.txt").write_text("the passphrase")
    assert run("archive", "--evict", "--key-file", str(key_file), "--passphrase-file", str(tmp_path / "pass.txt"),
               *FAST)[0] == 0
    archive = run.lake / "archive" / format_archive_name(1, 3)
    keys: tuple[str, ...] = ("--key-file", str(key_file))
    if case == "wrong key file":
        run("keygen", "--key-file", str(tmp_path / "other.bin"))
        keys = ("--key-file", str(tmp_path / "other.bin"))
    elif case == "wrong passphrase":
        (tmp_path / "wrong.txt").write_text("not the passphrase")
        keys = ("--passphrase-file", str(tmp_path / "wrong.txt"))
    elif case == "truncated":
        _truncate(archive)
    elif case == "altered":
        _alter(archive)
    elif case == "altered header":
        _alter_header(archive)
    elif case == "another lake":
        other = tmp_path / "other"
        build_lake(other, 1, size=3)
        with Lake.open(other, keys=NO_KEYS) as lake:
            lake.archive(keys=Keys(key=load_key_file(key_file)))
        shutil.copyfile(other / "archive" / format_archive_name(1, 3), archive)
    elif case == "not an archive":
        archive.write_bytes(b"PK\x03\x04 not an archive at all")
    elif case == "no key":
        keys = ()
    else:
        archive.unlink()
    before = snapshot(run.lake)
    code, _, err = run("restore", str(archive), *keys)
    assert code == 8, err
    assert one_sentence(err) and __import__("re").search(message, err), err
    assert "the passphrase" not in err.replace("passphrase for", "")
    assert snapshot(run.lake) == before and leftovers(run.lake) == []


def test_restore_refuses_to_overwrite_a_different_segment(run: Run, tmp_path: Path) -> None:
    build_lake(run.lake, 1)
    run("keygen", "--key-file", str(tmp_path / "k.bin"))
    run("archive", "--key-file", str(tmp_path / "k.bin"))
    segment = run.lake / "log" / "segments" / format_segment_name(1, 3)
    code, out, _ = run("restore", str(run.lake / "archive" / format_archive_name(1, 3)), "--key-file",
                       str(tmp_path / "k.bin"))
    assert code == 0 and "already hot" in out
    segment.write_bytes(segment.read_bytes()[:-1] + b" ")
    before = snapshot(run.lake)
    code, _, err = run("restore", str(run.lake / "archive" / format_archive_name(1, 3)), "--key-file",
                       str(tmp_path / "k.bin"))
    assert code == 8 and one_sentence(err) and "refusing to overwrite" in err
    assert snapshot(run.lake) == before


def test_pack_and_unpack(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("init")
    manifest = tmp_path / "manifests" / "pages" / "manifest.json"
    run("init", "--name", "pages", "--source", "wiki", "--entity", "page", "--out", str(tmp_path / "manifests"))
    code, _, err = run("pack", "--manifest", str(manifest), "--out", str(tmp_path / "p.zip"))
    assert code == 10 and one_sentence(err) and "snapshots/pages/ does not exist" in err
    day = run.lake / "snapshots" / "pages" / "records" / "2024" / "2024-05-01"
    day.mkdir(parents=True)
    (day / "chunk-0001.ndjson").write_text('{"k": "Ada"}\n')
    code, out, _ = run("pack", "--manifest", str(manifest), "--out", str(tmp_path / "p.zip"))
    assert code == 0 and "packed 1 file(s)" in out
    code, _, err = run("pack", "--manifest", str(manifest), "--out", str(tmp_path / "p.zip"))
    assert code == 8 and "refusing to overwrite" in err
    code, _, err = run("pack", "--manifest", str(manifest), "--out", str(tmp_path / "s.zip"), "--encrypt")
    assert code == 3 and "SNAPSHOT_ENCRYPTION_KEY" in err
    monkeypatch.setenv("SNAPSHOT_ENCRYPTION_KEY", "pack secret")
    code, out, _ = run("--json", "pack", "--manifest", str(manifest), "--out", str(tmp_path / "s.zip"), "--encrypt",
                       *FAST)
    assert code == 0 and json.loads(out)["encrypted"] is True
    code, out, _ = run("unpack", "--in", str(tmp_path / "s.zip"), "--out", str(tmp_path / "out"))
    assert code == 0 and (tmp_path / "out" / "records" / "2024" / "2024-05-01" / "chunk-0001.ndjson").exists()
    legacy = tmp_path / "legacy.enc"
    legacy.write_bytes(original_tool_encrypt((tmp_path / "p.zip").read_bytes(), "pack secret"))
    code, out, _ = run("--json", "unpack", "--in", str(legacy), "--out", str(tmp_path / "legacy"))
    assert code == 0 and json.loads(out)["source"] == "legacy"
    code, _, err = run("unpack", "--in", str(legacy), "--out", str(tmp_path / "legacy"))
    assert code == 8 and one_sentence(err)
    assert run("unpack", "--in", str(legacy), "--out", str(tmp_path / "legacy"), "--force")[0] == 0
    monkeypatch.setenv("SNAPSHOT_ENCRYPTION_KEY", "wrong")
    code, _, err = run("unpack", "--in", str(legacy), "--out", str(tmp_path / "again"))
    assert code == 8 and one_sentence(err) and "wrong key or passphrase" in err
    assert not (tmp_path / "again").exists()


ARCHIVER = [sys.executable, "-m", "eventlog", "--lake"]


def _archive_process(lake: Path, key_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([*ARCHIVER, str(lake), "archive", "--evict", "--key-file", str(key_file), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def _timed(lake: Path, key_file: Path, *extra: str) -> float:
    started = time.monotonic()
    child = _archive_process(lake, key_file, *extra)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    return time.monotonic() - started


def _assert_every_segment_hot_or_archived(root: Path, keys: Keys, events: list[str], label: str) -> tuple[int, int]:
    hot = archived = 0
    for seal in sorted((root / "log" / "seals").iterdir()):
        segment = root / "log" / "segments" / seal.name.replace(".json", ".ndjson")
        if segment.exists():
            hot += 1
            continue
        location = read_location(root / "log" / "locations" / seal.name)
        archive = root / location.archive
        assert archive.exists(), f"{label}: {segment.name} is neither hot nor archived"
        archived += 1
    for opened in (NO_KEYS, keys):
        with Lake.open(root, keys=opened) as lake:
            report = lake.verify()
            assert report.ok, f"{label}: {report.problems[:3]}"
    with Lake.open(root, keys=keys) as lake:
        assert [json.dumps(event.event_id) for event in lake.events()] == events, label
    return hot, archived


@pytest.mark.slow
def test_sigkill_during_archive_evict_loses_no_segment(tmp_path: Path) -> None:
    seed, rng = seeded("archive crash test")
    template = tmp_path / "template"
    events = build_lake(template, 40, size=12)
    key_file = tmp_path / "k.bin"
    key_file.write_bytes(SymmetricKey.generate().reveal())
    keys = Keys(key=load_key_file(key_file))
    shutil.copytree(template, tmp_path / "measure")
    startup = _timed(tmp_path / "measure", key_file, "--segments", "0-0")
    full = _timed(tmp_path / "measure", key_file)
    interrupted = 0
    for trial in range(12):
        root = tmp_path / f"trial-{trial}"
        shutil.copytree(template, root)
        child = _archive_process(root, key_file)
        time.sleep(rng.uniform(startup * 0.8, full * 1.05))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        label = f"trial {trial} (seed {seed})"
        _, archived = _assert_every_segment_hot_or_archived(root, keys, events, label)
        interrupted += 0 < archived < 40
        rerun = _archive_process(root, key_file)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, f"{label}: {err.decode()}"
        assert _assert_every_segment_hot_or_archived(root, keys, events, label) == (0, 40)
        assert leftovers(root) == [], label
    print(f"{interrupted} of 12 trials were killed part-way through the archive run")
