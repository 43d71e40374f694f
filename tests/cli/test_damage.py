"""Every command against a damaged lake: a documented exit code and one sentence, never a traceback.

A fixture lake holds an evicted segment (its archive and location sidecar), two hot sealed segments with their seals,
an active segment, the index, the head and lake.json. Each case damages one file of a copy (bytes flipped at sampled
positions: first, middle, last, inside a key name; truncated to half; deleted; swapped with a file of its kind; a
folder in its place), then runs every command through the real entry point, in the order a user would. Wherever the
damage touches acknowledged data (a segment, a seal, the head, an archive or its location), `verify` fails.
All 80 cases run in under a minute.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from eventlog import Lake, SegmentPolicy
from eventlog.cold.archiver import SeqRange
from eventlog.cold.keys import Keys, SymmetricKey
from eventlog.log.segments import list_segments
from tests.cli.runner import Run
from tests.factories import page_record

# Exit codes docs/cli.md documents for a command that meets a damaged lake.
DOCUMENTED = {0, 3, 4, 6, 7, 8, 10}
KEY_BYTES = bytes(range(32))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The fixture lake, its key file and the exchange id of an event in a hot sealed segment."""
    base = tmp_path_factory.mktemp("damage")
    key_file = base / "archive.key"
    key_file.write_bytes(KEY_BYTES)
    root = base / "lake"
    with Lake.init(root, segment_policy=SegmentPolicy(max_events=3, max_bytes=0, max_age_seconds=0)) as lake:
        for start in range(0, 9, 3):
            lake.append([page_record(f"Page {start + n}", 1) for n in range(3)])
        lake.append([page_record("Active 1", 1), page_record("Active 2", 1)])
        lake.mirror()
        lake.reproject()
        lake.archive(keys=Keys(key=SymmetricKey(KEY_BYTES)), seqs=SeqRange(1, 3), evict=True)
        assert lake.verify().ok
        entry = lake.log.index.by_seq(5)
        assert entry is not None
    return root, key_file, entry.event_id


def _kinds(root: Path) -> dict[str, Path]:
    """One file of each kind, by a name for the test id."""
    log = root / "log"
    segments = [path for _, path in list_segments(log / "segments")]
    seals = sorted((log / "seals").iterdir())
    return {
        "sealed segment": segments[0],
        "newest sealed segment": segments[-2],
        "active segment": segments[-1],
        "seal": seals[1],
        "newest seal": seals[-1],
        "index": log / "index.sqlite",
        "head": log / "head.json",
        "lake.json": root / "lake.json",
        "location": next((log / "locations").iterdir()),
        "archive": next((root / "archive").iterdir()),
    }


def _flip(path: Path, where: str) -> None:
    data = bytearray(path.read_bytes())
    if where == "first":
        at = 0
    elif where == "middle":
        at = len(data) // 2
    elif where == "last":
        at = len(data) - 2 if data.endswith(b"\n") and len(data) > 1 else len(data) - 1
    else:  # inside a key name: the second character of the first quoted word, where the file has one
        quote = data.find(b'"')
        at = quote + 2 if quote >= 0 and quote + 2 < len(data) else len(data) // 3
    data[at] ^= 0x20 if data[at:at + 1].isalpha() else 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _delete(path: Path) -> None:
    path.unlink()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _folder(path: Path) -> None:
    _delete(path)
    path.mkdir()
    (path / "stray").write_text("a file inside a folder where a file belongs\n")


def _swap(path: Path) -> None:
    """Exchange the bytes with the other file of its kind nearest in name order (or with lake.json)."""
    siblings = sorted(p for p in path.parent.iterdir() if p.is_file() and p.suffix == path.suffix and p != path)
    lake = next(parent for parent in path.parents if (parent / "lake.json").exists())
    other = siblings[-1] if siblings else next(p for p in sorted(lake.rglob("*.json")) if p.is_file() and p != path)
    mine, theirs = path.read_bytes(), other.read_bytes()
    path.write_bytes(theirs)
    other.write_bytes(mine)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "flip first byte": lambda path: _flip(path, "first"),
    "flip middle byte": lambda path: _flip(path, "middle"),
    "flip last byte": lambda path: _flip(path, "last"),
    "flip inside a key name": lambda path: _flip(path, "key"),
    "truncate to half": _truncate,
    "delete": _delete,
    "swap": _swap,
    "folder in its place": _folder,
}
# Damage that leaves no acknowledged data gone: the index is derived (verify may still name it).
DERIVED = {"index"}
# Damage that opening the lake repairs as it repairs a crash: the newest seal, missing, is written again from its
# segment (a crash between the rename of a sealed segment and its seal leaves the same state); no later seal
# holds its hash.
# A deleted head is written again at the log's tail, as for a lake from before the head existed.
REPAIRED = {("newest seal", "delete"), ("head", "delete")}
_ALL = [(kind, damage) for kind in ("sealed segment", "newest sealed segment", "active segment", "seal",
                                    "newest seal", "index", "head", "lake.json", "location", "archive")
        for damage in DAMAGES]


CASES = [pytest.param(kind, damage, id=f"{kind}-{damage}") for kind, damage in _ALL]


def _one_sentence(err: str, command: str) -> bool:
    """One line `error: ...`; verify lists the problems it found first, one a line, as docs/cli.md says."""
    lines = [line for line in err.splitlines() if line.strip()]
    if command == "verify":
        lines = lines[-1:] if all(not line.startswith("error: ") for line in lines[:-1]) else lines
    return len(lines) == 1 and lines[0].startswith("error: ")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    for name in ("EVENTLOG_IDENTITY", "EVENTLOG_PASSPHRASE", "EVENTLOG_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return Run(capsys, monkeypatch, tmp_path / "lake")


@pytest.mark.parametrize(("kind", "damage"), CASES)
def test_every_command_meets_damage_with_one_sentence(pristine: tuple[Path, Path, str], run: Run, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, kind: str,
                                                      damage: str) -> None:
    source, key_file, exchange_id = pristine
    shutil.copytree(source, run.lake)
    monkeypatch.setenv("EVENTLOG_KEY_FILE", str(key_file))
    target = _kinds(run.lake)[kind]
    DAMAGES[damage](target)
    (tmp_path / "new.ndjson").write_text(json.dumps(page_record("After the damage", 1)) + "\n")
    commands = [
        ("verify",), ("log",), ("show", exchange_id), ("mirror",), ("reproject",), ("reindex",),
        ("append", str(tmp_path / "new.ndjson")), ("archive", "--key-file", str(key_file)),
        ("restore", "--segments", "1-3", "--key-file", str(key_file)), ("verify",),
        ("mirror",), ("reproject", "--verify"),
    ]
    codes: list[tuple[str, int]] = []
    for command in commands:
        code, _, err = run(*command)
        where = f"{kind} / {damage} / {' '.join(command)}"
        assert "Traceback" not in err, where
        assert code in DOCUMENTED, (where, code, err)
        if code != 0:
            assert _one_sentence(err, command[0]), (where, err)
        codes.append((command[0], code))
    if kind not in DERIVED and (kind, damage) not in REPAIRED:
        assert codes[0][1] != 0, f"verify passed after {damage} of the {kind}"
    # After the damage and a new append, the mirror either refused or holds every event the log holds (no silent
    # gap), and a projection that succeeded equals a clean rebuild of the log (`--verify` rebuilt and compared).
    code, out, _ = run("--json", "log")
    if codes[-2][1] == 0 and code == 0:
        logged = {json.loads(line)["event_id"] for line in out.splitlines()}
        with sqlite3.connect(run.lake / "lake.db") as db:
            mirrored = {row[0] for row in db.execute('SELECT event_id FROM "ExchangeEvent"')}
        assert logged <= mirrored, f"{kind} / {damage}: the mirror exited 0 without {len(logged - mirrored)} events"



def test_far_future_time_with_negative_offset_is_refused_with_a_sentence(run: Run) -> None:
    Lake.init(run.lake).close()
    record = {**page_record("Late", 1), "observed_at_utc": "9999-12-31T23:59:59.999999-01:00"}
    code, _, err = run("append", "-", stdin=(json.dumps(record) + "\n").encode())
    assert code == 3 and _one_sentence(err, "append") and "9999-12-31T23:59:59.999999-01:00" in err
    assert run("verify")[0] == 0


def test_unpack_into_a_folder_that_cannot_be_created_is_named(run: Run, tmp_path: Path) -> None:
    Lake.init(run.lake).close()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    pack = tmp_path / "pack.zip"
    pack.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    code, _, err = run("unpack", "--in", str(pack), "--out", str(blocker / "inside"))
    assert code in DOCUMENTED - {0} and _one_sentence(err, "unpack") and str(blocker) in err


def test_restore_brings_back_exactly_the_range_asked(run: Run, tmp_path: Path) -> None:
    key_file = tmp_path / "k.key"
    key_file.write_bytes(KEY_BYTES)
    with Lake.init(run.lake, segment_policy=SegmentPolicy(max_events=3, max_bytes=0, max_age_seconds=0)) as lake:
        for start in range(0, 9, 3):
            lake.append([page_record(f"Range {start + n}", 1) for n in range(3)])
        lake.archive(keys=Keys(key=SymmetricKey(KEY_BYTES)), evict=True)
    assert [name.label for name, _ in list_segments(run.lake / "log" / "segments")] == []
    code, _, err = run("restore", "--segments", "4-6", "--key-file", str(key_file))
    assert code == 0, err
    assert [(name.first_seq, name.last_seq) for name, _ in list_segments(run.lake / "log" / "segments")] == [(4, 6)]
    code, _, err = run("restore", "--segments", "1-3", "--key-file", str(key_file))
    assert code == 0, err
    assert [(name.first_seq, name.last_seq) for name, _ in list_segments(run.lake / "log" / "segments")] == [
        (1, 3), (4, 6)]


@pytest.mark.parametrize(("change", "words"), [
    ({"natural_key": "a\u0000b"}, "natural_key"),
    ({"source_system": "s" * 201}, "source_system"),
    ({"entity_type": "e\u0000"}, "entity_type"),
])
def test_identity_text_no_server_can_store_is_refused_at_append(run: Run, change: dict[str, str],
                                                                  words: str) -> None:
    """A NUL, or a name longer than the SQL columns, would be refused by PostgreSQL or MariaDB on every mirror
    run, so that nothing after it is ever mirrored: it is refused at append instead, naming the field."""
    Lake.init(run.lake).close()
    record = {**page_record("Named", 1), **change}
    code, _, err = run("append", "-", stdin=(json.dumps(record) + "\n").encode())
    assert code == 3 and _one_sentence(err, "append") and words in err, err
    assert run("log")[1] == ""


def test_a_record_too_large_for_a_default_sql_packet_is_refused_at_append(run: Run) -> None:
    """A record whose SQL row would be over MariaDB's default max_allowed_packet (once the text protocol escapes its
    quotes) would stop every mirror into such a server at it: it is refused at append, with its size and the way
    out, on stdin's line 2."""
    Lake.init(run.lake).close()
    record = {**page_record("Quoted", 1), "response": '"' * (6 * 1024 * 1024)}
    lines = json.dumps(page_record("Plain", 1)) + "\n" + json.dumps(record) + "\n"
    code, _, err = run("append", "-", stdin=lines.encode())
    assert code == 3 and _one_sentence(err, "append") and "max_allowed_packet" in err, err
    assert err.startswith("error: <stdin>, line 2, at $: "), err
    assert run("log")[1] == ""


def test_a_record_refused_by_the_log_is_named_by_its_file_and_line(run: Run, tmp_path: Path) -> None:
    """What the log refuses at append (here a NUL in a natural key) is named by the input file and line it came
    from, across files and blank lines, not by its place in the batch."""
    Lake.init(run.lake).close()
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    first.write_text("".join(json.dumps(page_record(f"P{n}", 1)) + "\n" for n in range(3)))
    bad = {**page_record("Bad", 1), "natural_key": "a\u0000b"}
    second.write_text(json.dumps(page_record("Q", 1)) + "\n\n" + json.dumps(bad) + "\n")
    code, _, err = run("append", str(first), str(second))
    assert code == 3 and _one_sentence(err, "append"), err
    assert err.startswith(f"error: {second}, line 3, at $.natural_key: "), err
    assert run("log")[1] == ""


def test_unknown_envelope_field_is_refused_not_dropped(run: Run) -> None:
    """A field the envelope does not know would be lost without a word (it is not in the content hash or the
    log line): it is refused at append, naming it."""
    Lake.init(run.lake).close()
    record = {**page_record("Extra", 1), "fetched_by": "crawler-7"}
    code, _, err = run("append", "-", stdin=(json.dumps(record) + "\n").encode())
    assert code == 3 and _one_sentence(err, "append") and "fetched_by" in err, err
    assert run("log")[1] == ""
