"""Zip packs: deterministic packing, safe unpacking, sealed packs and the original tool's encrypted packs."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from eventlog.cold.container import read_header
from eventlog.cold.keys import Argon2Params, Keys, SymmetricKey, X25519Identity
from eventlog.cold.packs import LEGACY_PASSPHRASE_ENV, entry_problem, pack_folder, unpack
from eventlog.errors import ArchiveError, InputError, UnsafeArchiveError

KEY = SymmetricKey(bytes(range(32)))
FAST = Argon2Params(memory_kib=8192, iterations=1, lanes=1)


def make_pack_folder(root: Path) -> Path:
    folder = root / "dataset"
    files = {
        "manifest.json": b'{"name": "wiki"}\n',
        "index.jsonl": b'{"h": "ab", "k": "Q1", "id": "x", "t": "2024-01-01T00:00:00Z", "f": "c"}\n',
        "records/2024/2024-01-01/chunk-0001.ndjson": b'{"a": 1}\n' * 500,
        "records/2024/2024-01-02/chunk-0001.ndjson": b'{"b": 2}\n' * 3,
        "records/2023/2023-12-31/chunk-0001.ndjson": b"",
    }
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def build_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


# Packing -----------------------------------------------------------------------------------------------


def test_same_folder_packs_to_the_same_bytes(tmp_path: Path) -> None:
    folder = make_pack_folder(tmp_path)
    first = pack_folder(folder, tmp_path / "one.zip")
    os.utime(folder / "manifest.json", (1_700_000_000, 1_700_000_000))
    (folder / "index.jsonl").chmod(0o600)
    second = pack_folder(folder, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    assert first.zip_sha256 == second.zip_sha256 and first.entries == 5
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_pack_unpack_round_trip(tmp_path: Path) -> None:
    folder = make_pack_folder(tmp_path)
    pack_folder(folder, tmp_path / "pack.zip")
    info = unpack(tmp_path / "pack.zip", tmp_path / "restored" / "dataset")
    assert tree(tmp_path / "restored" / "dataset") == tree(folder)
    assert (info.entries, info.source) == (5, "zip")
    assert not [p for p in (tmp_path / "restored").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("seal_keys,open_keys", [
    (Keys(key=KEY), Keys(key=KEY)),
    (Keys(passphrase="pack passphrase"), Keys(passphrase="pack passphrase")),
    (Keys(recipients=[(me := X25519Identity.generate()).recipient]), Keys(identities=[me])),
], ids=["key", "passphrase", "x25519"])
def test_sealed_pack_round_trip(tmp_path: Path, seal_keys: Keys, open_keys: Keys) -> None:
    folder = make_pack_folder(tmp_path)
    plain = pack_folder(folder, tmp_path / "plain.zip")
    sealed = pack_folder(folder, tmp_path / "pack.evlarc", encrypt_with=seal_keys, kdf=FAST,
                         metadata={"dataset": "wiki"})
    assert sealed.encrypted and sealed.zip_sha256 == plain.zip_sha256
    with (tmp_path / "pack.evlarc").open("rb") as src:
        assert read_header(src).metadata == {"dataset": "wiki"}
    assert not (tmp_path / "pack.evlarc").read_bytes().startswith(b"PK")
    info = unpack(tmp_path / "pack.evlarc", tmp_path / "out", keys=open_keys)
    assert tree(tmp_path / "out") == tree(folder) and info.source == "eventlog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "out", "pack.evlarc", "plain.zip"]


def test_sealed_pack_with_wrong_key_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEGACY_PASSPHRASE_ENV, raising=False)
    folder = make_pack_folder(tmp_path)
    pack_folder(folder, tmp_path / "pack.evlarc", encrypt_with=Keys(key=KEY))
    with pytest.raises(ArchiveError, match="wrong key or passphrase for"):
        unpack(tmp_path / "pack.evlarc", tmp_path / "out", keys=Keys(key=SymmetricKey(bytes(32))))
    with pytest.raises(ArchiveError, match="encrypted: give a key"):
        unpack(tmp_path / "pack.evlarc", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset", "pack.evlarc"]


def test_pack_refuses_links_and_output_inside(tmp_path: Path) -> None:
    folder = make_pack_folder(tmp_path)
    with pytest.raises(InputError, match="inside the folder"):
        pack_folder(folder, folder / "self.zip")
    (folder / "escape").symlink_to(tmp_path)
    with pytest.raises(ArchiveError, match="escape is a symbolic link"):
        pack_folder(folder, tmp_path / "pack.zip")
    assert not (tmp_path / "pack.zip").exists()


# Refusals ----------------------------------------------------------------------------------------------


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


UNSAFE: dict[str, tuple[list[tuple[zipfile.ZipInfo | str, bytes]], str]] = {
    "zip-slip": ([("ok.txt", b"fine"), ("../evil.txt", b"x")], "'../evil.txt' has a '..' component"),
    "nested zip-slip": ([("a/../../evil.txt", b"x")], "'..' component"),
    "absolute": ([("/tmp/evil.txt", b"x")], "'/tmp/evil.txt' has an absolute path"),
    "drive letter": ([("C:/evil.txt", b"x")], "'C:/evil.txt' starts with a drive letter"),
    "backslash": ([("..\\evil.txt", b"x")], "has a backslash"),
    "symlink": ([(symlink_entry("link"), b"/etc/passwd")], "'link' is a symbolic link"),
    "duplicate": ([("a.txt", b"1"), ("a.txt", b"2")], "'a.txt' appears twice"),
    "file and folder": ([("a", b"1"), ("a/b", b"2")], "needs 'a' as a folder"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    entries, message = UNSAFE[case]
    archive = build_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(UnsafeArchiveError, match=message):
        unpack(archive, tmp_path / "deep" / "out")
    assert listing(tmp_path) == ["bad.zip"]


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("zeros.bin", "w") as dst:
        for _ in range(40):
            dst.write(bytes(1 << 20))
    assert archive.stat().st_size < 200_000
    with pytest.raises(UnsafeArchiveError, match=r"'zeros.bin' expands the pack more than 100 times"):
        unpack(archive, tmp_path / "out")
    with pytest.raises(UnsafeArchiveError, match=r"'zeros.bin' takes the pack past the limit of 1000000"):
        unpack(archive, tmp_path / "out", max_bytes=1_000_000)
    assert listing(tmp_path) == ["bomb.zip"]


def test_decompressed_bytes_are_counted_not_declared(tmp_path: Path) -> None:
    archive = build_zip(tmp_path / "liar.zip", [("a.bin", bytes(300_000)), ("b.bin", bytes(300_000))])
    raw = bytearray(archive.read_bytes())
    # Rewrite every uncompressed-size field (local headers and central directory) to claim 10 bytes.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            raw[start + offset : start + offset + 4] = (10).to_bytes(4, "little")
            start += 4
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError):
        unpack(archive, tmp_path / "out", max_bytes=400_000)
    assert listing(tmp_path) == ["liar.zip"]
    honest = build_zip(tmp_path / "honest.zip", [("a.bin", bytes(300_000)), ("b.bin", bytes(300_000))])
    with pytest.raises(UnsafeArchiveError, match=r"'b\.bin'"):
        unpack(honest, tmp_path / "out", max_bytes=400_000)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    archive = build_zip(tmp_path / "many.zip", [(f"f{i:03}.txt", b"x") for i in range(101)])
    with pytest.raises(UnsafeArchiveError, match=r"101 entries, more than the limit of 100 \(entry 'f100.txt'"):
        unpack(archive, tmp_path / "out", max_entries=100)
    assert listing(tmp_path) == ["many.zip"]
    assert unpack(archive, tmp_path / "out", max_entries=101).entries == 101


def test_existing_files_need_force(tmp_path: Path) -> None:
    folder = make_pack_folder(tmp_path)
    pack_folder(folder, tmp_path / "pack.zip")
    out = tmp_path / "out"
    (out / "records").mkdir(parents=True)
    (out / "manifest.json").write_bytes(b"old")
    (out / "keep.txt").write_bytes(b"mine")
    with pytest.raises(UnsafeArchiveError, match=r"'manifest\.json' would overwrite the existing file"):
        unpack(tmp_path / "pack.zip", out)
    assert listing(out) == ["keep.txt", "manifest.json", "records"]
    assert (out / "manifest.json").read_bytes() == b"old"
    unpack(tmp_path / "pack.zip", out, force=True)
    assert tree(out) == {**tree(folder), "keep.txt": b"mine"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_links_inside_an_existing_target_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "records").symlink_to(outside)
    archive = build_zip(tmp_path / "pack.zip", [("records/x.ndjson", b"{}\n")])
    with pytest.raises(UnsafeArchiveError, match="write through the symbolic link"):
        unpack(archive, out, force=True)
    assert list(outside.iterdir()) == []
    (tmp_path / "link-target").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match="is a symbolic link"):
        unpack(archive, tmp_path / "link-target")


@pytest.mark.parametrize("name,problem", [
    ("records/2024/chunk-0001.ndjson", None), ("dir/", None), ("a//b", "empty or '.'"), ("./a", "empty or '.'"),
    ("ab:c", "colon"), ("a\x00b", "NUL"), ("", "empty name"), ("d:\\x", "backslash"),
])
def test_entry_problem(name: str, problem: str | None) -> None:
    found = entry_problem(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


# The original tool's encrypted packs -------------------------------------------------------------------


def original_tool_encrypt(zip_bytes: bytes, passphrase: str) -> bytes:
    """What the original tool wrote: salt | nonce | AES-GCM(ciphertext || tag), PBKDF2-SHA256 480k."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=480_000).derive(
        passphrase.encode())
    return salt + nonce + AESGCM(key).encrypt(nonce, zip_bytes, None)


def test_original_tool_pack_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_pack_folder(tmp_path)
    pack_folder(folder, tmp_path / "pack.zip")
    legacy = tmp_path / "pack.zip.enc"
    legacy.write_bytes(original_tool_encrypt((tmp_path / "pack.zip").read_bytes(), "old secret"))
    monkeypatch.setenv(LEGACY_PASSPHRASE_ENV, "old secret")
    info = unpack(legacy, tmp_path / "from-env")
    assert tree(tmp_path / "from-env") == tree(folder) and info.source == "legacy"
    monkeypatch.delenv(LEGACY_PASSPHRASE_ENV)
    unpack(legacy, tmp_path / "from-keys", keys=Keys(passphrase="old secret"))
    assert tree(tmp_path / "from-keys") == tree(folder)


@pytest.mark.parametrize("damage", [
    lambda data: data, lambda data: data[:-1], lambda data: data[:20] + bytes([data[20] ^ 1]) + data[21:],
    lambda data: data[:-20] + bytes([data[-20] ^ 1]) + data[-19:],
], ids=["wrong passphrase", "truncated", "salt flipped", "ciphertext flipped"])
def test_original_tool_pack_damaged_or_wrong_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        damage: Callable[[bytes], bytes]) -> None:
    zip_path = build_zip(tmp_path / "p.zip", [("a.txt", b"a")])
    secret = "old secret"
    data = original_tool_encrypt(zip_path.read_bytes(), secret)
    zip_path.unlink()
    legacy = tmp_path / "pack.enc"
    legacy.write_bytes(damage(data))
    monkeypatch.setenv(LEGACY_PASSPHRASE_ENV, "not it" if damage(data) == data else secret)
    with pytest.raises(ArchiveError, match="wrong key or passphrase for"):
        unpack(legacy, tmp_path / "out")
    assert listing(tmp_path) == ["pack.enc"]


def test_unknown_file_without_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEGACY_PASSPHRASE_ENV, raising=False)
    odd = tmp_path / "notes.txt"
    odd.write_bytes(b"just some text, not a pack at all")
    with pytest.raises(ArchiveError, match="neither a zip nor an eventlog archive"):
        unpack(odd, tmp_path / "out")
    assert listing(tmp_path) == ["notes.txt"]
