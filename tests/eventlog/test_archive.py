"""Cold storage in the lake: archive, evict, read evicted segments, verify them, restore. Real files throughout."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import ArchiveError, IntegrityError, Lake, NotFoundError, SegmentPolicy
from eventlog.cold.archiver import SeqRange, evicted_archives, parse_seq_range
from eventlog.cold.keys import (
    Argon2Params,
    Keys,
    SymmetricKey,
    X25519Identity,
    load_identities,
    load_recipients,
    write_identity_file,
)
from eventlog.cold.packs import pack_dataset, unpack
from eventlog.cold.reader import format_archive_name, parse_archive_name, read_location
from eventlog.errors import InputError
from eventlog.log.config import read_config, write_config
from eventlog.log.segments import SegmentName, list_segments
from tests.factories import BASE_TIME, openalex_record, page_record

FAST = Argon2Params(memory_kib=64, iterations=1, lanes=1)
NO_KEYS = Keys()
POLICY = SegmentPolicy(max_events=0, max_bytes=0, max_age_seconds=0)


def make_lake(root: Path, sizes: list[int], *, clock: list[datetime] | None = None) -> Lake:
    """A lake with one sealed segment per entry of `sizes` (that many events each) and a short active one."""
    now = clock or [BASE_TIME]
    lake = Lake.init(root, segment_policy=POLICY, clock=lambda: now[0])
    lake.close()
    lake = Lake.open(root, keys=NO_KEYS, clock=lambda: now[0])
    n = 0
    for size in sizes:
        lake.append([openalex_record(n + i) for i in range(size)])
        n += size
        assert lake.seal() is not None
        now[0] += timedelta(hours=1)
    lake.append([page_record("Tail", 1)])
    return lake


def segment_files(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for _, path in list_segments(root / "log" / "segments")}


def leftovers(root: Path) -> list[str]:
    """Temporary files anywhere in the lake (a finished or failed operation must leave none)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob(".*") if path.is_file())


def test_names_and_ranges() -> None:
    assert format_archive_name(1, 20) == f"{1:020d}-{20:020d}.evlarc"
    assert parse_archive_name(format_archive_name(7, 9)) == SegmentName(7, 9)
    assert parse_archive_name("00000000000000000001-00000000000000000002.ndjson") is None
    assert parse_seq_range("5-10") == SeqRange(5, 10)
    assert parse_seq_range("-10") == SeqRange(None, 10) and parse_seq_range("5-") == SeqRange(5, None)
    assert parse_seq_range(f"{1:020d}-{20:020d}") == SeqRange(1, 20)
    assert SeqRange(1, 20).holds(1, 20) and not SeqRange(1, 20).holds(11, 21)
    for bad in ("x-3", "9-2", ""):
        with pytest.raises(InputError, match="segment range"):
            parse_seq_range(bad)


KEY_KINDS = ("key", "x25519", "passphrase")


def key_pair(kind: str) -> tuple[Keys, Keys]:
    """(keys to archive with, keys to read with) of one kind; x25519 archives to a public key only."""
    if kind == "key":
        key = SymmetricKey.generate()
        return Keys(key=key), Keys(key=key)
    if kind == "x25519":
        identity = X25519Identity.generate()
        return Keys(recipients=[identity.recipient]), Keys(identities=[identity])
    return Keys(passphrase="correct horse"), Keys(passphrase="correct horse")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(),
       kind=st.sampled_from(KEY_KINDS), evict=st.booleans(), compression=st.sampled_from(["zstd", "none"]))
def test_archive_evict_restore_round_trip(sizes: list[int], data: st.DataObject, kind: str, evict: bool,
                                          compression: str) -> None:
    chosen = data.draw(st.sets(st.integers(0, len(sizes) - 1)), label="segments to archive")
    seal_keys, open_keys = key_pair(kind)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "lake"
        with make_lake(root, sizes) as lake:
            before = segment_files(root)
            events = list(lake.events())
            sealed = [name for name, _ in list_segments(root / "log" / "segments") if not name.active]
            for index in sorted(chosen):
                name = sealed[index]
                report = lake.archive(keys=seal_keys, seqs=SeqRange(name.first_seq, name.last_seq), evict=evict,
                                      kdf=FAST, compression="zstd" if compression == "zstd" else "none")
                assert [s.segment for s in report.segments] == [name.label]
                assert report.segments[0].verified == ("read-back" if kind == "x25519" else "decryption")
            assert lake.verify().ok
            evicted = {name.label for name in lake.cold.evicted()}
            assert evicted == ({sealed[i].label for i in chosen} if evict else set())
        with Lake.open(root, keys=open_keys) as lake:
            checked = lake.verify()
            assert checked.ok and checked.events == len(events) and checked.evicted == len(evicted)
            assert list(lake.events()) == events
            restored = lake.restore(evicted_archives(root))
            assert restored.restored == len(evicted)
            assert segment_files(root) == before
            assert lake.verify().ok and lake.cold.evicted() == []
        assert leftovers(root) == []


def test_events_from_evicted_segments_need_a_key_and_equal_the_original(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    identity_file = tmp_path / "me.txt"
    write_identity_file(identity_file)
    with make_lake(root, [3, 4, 2]) as lake:
        events = list(lake.events())
        report = lake.archive(keys=Keys(recipients=load_recipients(str(identity_file))), seqs=SeqRange(None, 7),
                              evict=True)
        assert [s.evicted for s in report.segments] == [True, True]
        with pytest.raises(ArchiveError) as caught:
            list(lake.events())
        message = str(caught.value)
        assert f"archive/{format_archive_name(1, 3)}" in message and "EVENTLOG_IDENTITY" in message
        assert "X25519 identity" in message and "eventlog restore --segments 1-3" in message
        # What lies after the evicted range reads without a key.
        assert list(lake.events(after_seq=7)) == events[7:]
        with pytest.raises(ArchiveError, match="was evicted"):
            lake.get(events[0].event_id)
    with Lake.open(root, keys=Keys(identities=load_identities(identity_file))) as lake:
        assert list(lake.events()) == events
        assert list(lake.events(after_seq=2)) == events[2:]
        assert lake.get(events[4].event_id) == events[4]
        body = events[1].body
        assert lake.history(body["source_system"], body["entity_type"], body["natural_key"]) == [events[1]]


def test_environment_keys_open_evicted_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lake"
    key_file = tmp_path / "key.bin"
    key = SymmetricKey.generate()
    key_file.write_bytes(key.reveal())
    with make_lake(root, [2, 2]) as lake:
        events = list(lake.events())
        lake.archive(keys=Keys(key=key), evict=True)
    monkeypatch.setenv("EVENTLOG_KEY_FILE", str(key_file))
    with Lake.open(root) as lake:
        assert list(lake.events()) == events
    monkeypatch.delenv("EVENTLOG_KEY_FILE")
    monkeypatch.setenv("EVENTLOG_PASSPHRASE", "not the key")
    with Lake.open(root) as lake, pytest.raises(ArchiveError, match="wrong key or passphrase"):
        list(lake.events())


def test_index_rebuild_reads_cold_segments(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    keys = Keys(key=SymmetricKey.generate())
    with make_lake(root, [3, 3]) as lake:
        events = list(lake.events())
        lake.archive(keys=keys, evict=True)
    (root / "log" / "index.sqlite").unlink()
    with pytest.raises(ArchiveError, match="was evicted"):
        Lake.open(root, keys=NO_KEYS)
    (root / "log" / "index.sqlite").unlink(missing_ok=True)
    with Lake.open(root, keys=keys) as lake:
        assert lake.get(events[2].event_id) == events[2]
        result = lake.append([openalex_record(0), openalex_record(100)])
        assert (result.already_present, result.observed) == (1, 1)


def test_verify_checks_evicted_archives_without_a_key(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    keys = Keys(key=SymmetricKey.generate())
    with make_lake(root, [3, 3, 3]) as lake:
        lake.archive(keys=keys, evict=True, seqs=SeqRange(1, 6))
    archive = root / "archive" / format_archive_name(4, 6)
    original = archive.read_bytes()
    with Lake.open(root, keys=NO_KEYS) as lake:
        report = lake.verify()
        assert report.ok and (report.segments, report.evicted, report.events) == (4, 2, 4)
        archive.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        problems = lake.verify().problems
        assert [str(p) for p in problems] == [
            f"archive/{archive.name}: the archive does not match the size and SHA-256 its location records (it was "
            "altered, truncated or replaced)"]
        archive.unlink()
        assert "has no copy" in str(lake.verify().problems[0])
    archive.write_bytes(original)
    with Lake.open(root, keys=keys) as lake:
        assert lake.verify().ok
    with Lake.open(root, keys=Keys(key=SymmetricKey.generate())) as lake:
        problems = lake.verify().problems
        assert len(problems) == 2 and all("wrong key or passphrase" in str(p) for p in problems)


def test_verify_with_a_key_checks_every_line_of_an_evicted_segment(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    keys = Keys(key=SymmetricKey.generate())
    with make_lake(root, [3]) as lake:
        lake.archive(keys=keys, evict=True)
    location = root / "log" / "locations" / f"{SegmentName(1, 3).label}.json"
    fields = msgspec.json.decode(location.read_bytes())
    fields["seal_sha256"] = "0" * 64
    location.write_bytes(json.dumps(fields).encode())
    with Lake.open(root, keys=keys) as lake:
        assert "the location describes a different segment" in str(lake.verify().problems[0])


def test_a_segment_that_differs_from_its_seal_is_not_archived(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with make_lake(root, [3]) as lake:
        _, segment = list_segments(root / "log" / "segments")[0]
        data = bytearray(segment.read_bytes())
        data[-5] ^= 1
        segment.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match="does not match its seal"):
            lake.archive(keys=Keys(key=SymmetricKey.generate()), evict=True)
        assert segment.read_bytes() == bytes(data)
    assert list((root / "archive").iterdir()) == [] and list((root / "log" / "locations").iterdir()) == []
    assert leftovers(root) == []


def test_a_damaged_archive_of_a_hot_segment_is_rewritten_before_eviction(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    keys = Keys(key=SymmetricKey.generate())
    with make_lake(root, [3]) as lake:
        events = list(lake.events())
        first = lake.archive(keys=keys)
        assert first.segments[0].archived and first.segments[0].hot
        again = lake.archive(keys=keys)
        assert not again.segments[0].archived
        archive = root / "archive" / format_archive_name(1, 3)
        archive.write_bytes(archive.read_bytes()[:-10])
        report = lake.archive(keys=keys, evict=True)
        assert report.segments[0].archived and report.segments[0].evicted
    with Lake.open(root, keys=keys) as lake:
        assert lake.verify().ok and list(lake.events()) == events


def test_before_selects_segments_recorded_entirely_before(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    with make_lake(root, [1, 1, 1]) as lake:  # recorded at BASE_TIME, +1 h, +2 h
        report = lake.archive(keys=Keys(key=SymmetricKey.generate()), before=BASE_TIME + timedelta(hours=1))
        assert [s.first_seq for s in report.segments] == [1]
        report = lake.archive(keys=Keys(key=SymmetricKey.generate()),
                              before=BASE_TIME + timedelta(hours=1, microseconds=1))
        assert [(s.first_seq, s.archived) for s in report.segments] == [(1, False), (2, True)]


def test_lake_json_policy_supplies_recipients_compression_and_evict(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    make_lake(root, [2]).close()
    identity = root / "archive-identity.txt"
    recipient = write_identity_file(identity)
    config = read_config(root)
    write_config(root, msgspec.structs.replace(config, archive=msgspec.structs.replace(
        config.archive, recipients=("archive-identity.txt", recipient.text), compression="none", evict=True)))
    with Lake.open(root, keys=NO_KEYS) as lake:
        report = lake.archive()
        assert report.evicted == 1 and report.segments[0].verified == "read-back"
    write_config(root, config)
    with Lake.open(root, keys=NO_KEYS) as lake, pytest.raises(InputError, match="no key to seal"):
        lake.archive()
    location = read_location(root / "log" / "locations" / f"{SegmentName(1, 2).label}.json")
    assert location.archive == f"archive/{format_archive_name(1, 2)}" and location.verified == "read-back"


def test_restore_refuses_a_different_existing_segment_and_foreign_archives(tmp_path: Path) -> None:
    keys = Keys(key=SymmetricKey.generate())
    root, other = tmp_path / "lake", tmp_path / "other"
    with make_lake(root, [2, 2]) as lake:
        lake.archive(keys=keys)
    with make_lake(other, [2]) as lake:
        lake.archive(keys=keys)
    archive = root / "archive" / format_archive_name(1, 2)
    with Lake.open(root, keys=keys) as lake:
        assert lake.restore([archive]).segments[0].restored is False  # hot and identical: left alone
        segment = root / "log" / "segments" / f"{SegmentName(1, 2).label}.ndjson"
        segment.write_bytes(segment.read_bytes().replace(b'"seq":2', b'"seq":3'))
        with pytest.raises(ArchiveError, match=r"refusing to overwrite .* differs from its seal"):
            lake.restore([archive])
    foreign = tmp_path / "foreign.evlarc"
    foreign.write_bytes((other / "archive" / format_archive_name(1, 2)).read_bytes())
    segment.unlink()
    with Lake.open(root, keys=keys) as lake, pytest.raises(ArchiveError, match="does not hold the segment"):
        lake.restore([foreign])
    assert not segment.exists() and leftovers(root) == []


def test_pack_dataset_round_trip_and_missing_dataset(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root).close()
    manifest = tmp_path / "pages.json"
    manifest.write_text(json.dumps({"name": "pages", "source_system": "wiki", "entity_type": "page"}))
    with pytest.raises(NotFoundError, match=r"dataset 'pages' has no snapshot pack .*snapshots/pages/"):
        pack_dataset(root, manifest, tmp_path / "pages.zip")
    folder = root / "snapshots" / "pages" / "records" / "2024" / "2024-05-01"
    folder.mkdir(parents=True)
    (folder / "chunk-0001.ndjson").write_text('{"a": 1}\n')
    (root / "snapshots" / "pages" / "manifest.json").write_text("{}\n")
    plain = pack_dataset(root, manifest, tmp_path / "pages.zip")
    sealed = pack_dataset(root, manifest, tmp_path / "pages.evlarc", keys=Keys(passphrase="pw"), kdf=FAST)
    assert (plain.entries, plain.encrypted, sealed.encrypted) == (2, False, True)
    unpack(tmp_path / "pages.evlarc", tmp_path / "out", keys=Keys(passphrase="pw"))
    assert (tmp_path / "out" / "records" / "2024" / "2024-05-01" / "chunk-0001.ndjson").read_text() == '{"a": 1}\n'
    manifest.write_text(json.dumps({"name": "../x", "source_system": "wiki", "entity_type": "page"}))
    with pytest.raises(InputError, match=r"at \$\.name: dataset name .*must be one plain folder name"):
        pack_dataset(root, manifest, tmp_path / "x.zip")


def test_evicting_keeps_appends_and_seals_working(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    keys = Keys(key=SymmetricKey.generate())
    with make_lake(root, [2, 2]) as lake:
        lake.archive(keys=keys, evict=True)
        result = lake.append([openalex_record(500)])
        assert result.first_seq == 6
        lake.seal()
        assert sorted(os.listdir(root / "log" / "segments")) == [f"{SegmentName(5, 6).label}.ndjson"]
    with Lake.open(root, keys=keys) as lake:
        assert lake.verify().ok and [e.seq for e in lake.events()] == [1, 2, 3, 4, 5, 6]


def test_point_in_time_rebuild_after_truncation_works_from_cold_storage_alone(tmp_path: Path) -> None:
    import sqlite3

    keys = Keys(key=SymmetricKey.generate())
    root = tmp_path / "lake"
    t = [BASE_TIME + timedelta(days=day) for day in range(4)]

    def rows() -> list[tuple[object, ...]]:
        with sqlite3.connect(root / "lake.db") as db:
            return db.execute("SELECT * FROM RawExchangeRecord ORDER BY record_key").fetchall()

    policy = SegmentPolicy(max_events=2, max_bytes=0, max_age_seconds=0)
    with Lake.init(root, segment_policy=policy) as lake:
        for version, moment in enumerate(t[:3]):
            lake.append([page_record("Ada", version, observed=moment), openalex_record(version)])
        lake.append([page_record("Bea", 1, observed=t[3])])
        lake.reproject(as_of=t[1])
        expected = rows()
        assert [row[5] for row in expected].count("Ada") == 1
        report = lake.archive(keys=keys, evict=True)
        assert report.archived == 3
    assert [name.label for name, _ in list_segments(root / "log" / "segments")] == [f"{7:020d}"]
    with sqlite3.connect(root / "lake.db") as db:
        db.execute("DELETE FROM RawExchangeRecord")
        db.execute("DELETE FROM ProjectionCheckpoint")
    with Lake.open(root, keys=Keys()) as lake, pytest.raises(ArchiveError):
        lake.reproject(as_of=t[1])
    assert rows() == []
    with Lake.open(root, keys=keys) as lake:
        lake.reproject(as_of=t[1])
    assert rows() == expected
