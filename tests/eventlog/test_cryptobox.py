"""Archive container: round trips, tamper and truncation detection, keys, test vectors, stand-alone decryptor."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.cold.container import (
    CHUNK_SIZE,
    ArchiveInfo,
    PassphraseStanza,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    read_header,
    verify_file,
)
from eventlog.cold.keys import (
    Argon2Params,
    Keys,
    Passphrase,
    SymmetricKey,
    X25519Identity,
    X25519Recipient,
    generate_keypair,
    load_identities,
    load_key_file,
    load_recipients,
    passphrase_from_env,
    passphrase_from_file,
    write_identity_file,
    write_key_file,
)
from eventlog.errors import ArchiveError, InputError

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "data" / "archives"
DOC = ROOT / "docs" / "archive-format.md"
FAST = Argon2Params(memory_kib=8192, iterations=1, lanes=1)
KEY = SymmetricKey(bytes(range(32)))
IDENTITY = X25519Identity.generate()
PASSPHRASE = "a passphrase for tests"
KEY_KINDS = {
    "passphrase": (Keys(passphrase=PASSPHRASE), Keys(passphrase=PASSPHRASE)),
    "key": (Keys(key=KEY), Keys(key=KEY)),
    "x25519": (Keys(recipients=[IDENTITY.recipient]), Keys(identities=[IDENTITY])),
}
SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17]


def seal(data: bytes, keys: Keys, **options: object) -> bytes:
    out = io.BytesIO()
    options.setdefault("kdf", FAST)
    encrypt_stream(io.BytesIO(data), out, keys=keys, **options)  # type: ignore[arg-type]
    return out.getvalue()


def open_(archive: bytes, keys: Keys) -> tuple[bytes, ArchiveInfo]:
    out = io.BytesIO()
    info = decrypt_stream(io.BytesIO(archive), out, keys=keys, name="test.evlarc")
    return out.getvalue(), info


def sample(size: int, seed: int) -> bytes:
    """Half random, half repetitive, so both compressions see realistic input."""
    head = random.Random(seed).randbytes(size // 2)
    return head + (b'{"k":"v"}\n' * (size // 10 + 1))[: size - len(head)]


def chunk_boundaries(archive: bytes, chunk_size: int) -> list[int]:
    offset = read_header(io.BytesIO(archive)).data_offset
    return list(range(offset, len(archive), chunk_size + 16))


# Round trips -------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(size=st.one_of(st.sampled_from(SIZES), st.integers(0, 4 * CHUNK_SIZE)), seed=st.integers(0, 2**32),
       kind=st.sampled_from(sorted(KEY_KINDS)), compression=st.sampled_from(["zstd", "none"]))
def test_round_trip_across_chunk_boundaries(size: int, seed: int, kind: str, compression: str) -> None:
    data = sample(size, seed)
    seal_keys, open_keys = KEY_KINDS[kind]
    archive = seal(data, seal_keys, compression=compression, metadata={"size": size})
    plain, info = open_(archive, open_keys)
    assert plain == data
    assert info.plaintext_bytes == size
    assert info.archive_bytes == len(archive)
    assert info.header.metadata == {"size": size}
    assert info.header.compression == compression


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_every_boundary_size_with_every_key_kind(size: int, compression: str) -> None:
    data = random.Random(size).randbytes(size)
    archive = seal(data, Keys(passphrase=PASSPHRASE, key=KEY, recipients=[IDENTITY.recipient]),
                   compression=compression)
    for _, open_keys in KEY_KINDS.values():
        assert open_(archive, open_keys)[0] == data
    if compression == "none":
        expected_chunks = max(1, -(-size // CHUNK_SIZE))
        assert open_(archive, Keys(key=KEY))[1].chunks == expected_chunks


def test_encrypt_reports_what_decrypt_finds() -> None:
    data = sample(200_000, 1)
    out = io.BytesIO()
    sealed = encrypt_stream(io.BytesIO(data), out, keys=Keys(key=KEY), metadata={"first_seq": 1})
    _, opened = open_(out.getvalue(), Keys(key=KEY))
    assert sealed.plaintext_sha256 == opened.plaintext_sha256
    assert sealed.chunks == opened.chunks
    assert sealed.archive_bytes == opened.archive_bytes == len(out.getvalue())
    assert sealed.header.header_sha256 == opened.header.header_sha256


def test_default_argon2_parameters() -> None:
    archive = seal(b"default cost", Keys(passphrase=PASSPHRASE), kdf=Argon2Params())
    (stanza,) = read_header(io.BytesIO(archive)).recipients
    assert isinstance(stanza, PassphraseStanza)
    assert (stanza.memory_kib, stanza.iterations, stanza.lanes) == (65536, 3, 4)
    assert open_(archive, Keys(passphrase=PASSPHRASE))[0] == b"default cost"


def test_multiple_recipients_each_decrypt() -> None:
    identities = [X25519Identity.generate() for _ in range(3)]
    archive = seal(b"for three", Keys(recipients=[i.recipient for i in identities]))
    assert len(read_header(io.BytesIO(archive)).recipients) == 3
    for identity in identities:
        assert open_(archive, Keys(identities=[identity]))[0] == b"for three"
    stranger = X25519Identity.generate()
    assert open_(archive, Keys(identities=[stranger, identities[2]]))[0] == b"for three"


def test_read_header_lists_metadata_without_a_key() -> None:
    meta = {"first_seq": 1, "last_seq": 9, "plaintext_sha256": "ab" * 32, "merkle_root": "cd" * 32}
    header = read_header(io.BytesIO(seal(b"x", Keys(key=KEY), metadata=meta)))
    assert header.metadata == meta
    assert header.version == 1 and header.chunk_size == CHUNK_SIZE


def test_metadata_must_be_json() -> None:
    with pytest.raises(InputError, match="metadata"):
        seal(b"x", Keys(key=KEY), metadata={"when": object()})


def test_sealing_needs_a_key() -> None:
    with pytest.raises(InputError, match="no key"):
        seal(b"x", Keys())


# Tampering and truncation ------------------------------------------------------------------------------


def small_archive() -> tuple[bytes, bytes]:
    data = random.Random(5).randbytes(2 * 1024 + 300)
    return data, seal(data, Keys(key=KEY), compression="none", chunk_size=1024,
                      metadata={"segment": "1-3"})


def test_every_single_byte_flip_fails() -> None:
    _, archive = small_archive()
    assert open_(archive, Keys(key=KEY))[1].chunks == 3
    for position in range(len(archive)):
        for mask in (0x01, 0x80):
            damaged = bytearray(archive)
            damaged[position] ^= mask
            with pytest.raises(ArchiveError):
                open_(bytes(damaged), Keys(key=KEY))


def test_flips_in_default_size_chunks_fail_naming_the_chunk() -> None:
    data = random.Random(6).randbytes(2 * CHUNK_SIZE + 999)
    archive = seal(data, Keys(key=KEY), compression="none")
    boundaries = chunk_boundaries(archive, CHUNK_SIZE)
    for index, start in enumerate(boundaries):
        end = boundaries[index + 1] if index + 1 < len(boundaries) else len(archive)
        for position in (start, start + 1, (start + end) // 2, end - 17, end - 1):
            damaged = bytearray(archive)
            damaged[position] ^= 0x40
            with pytest.raises(ArchiveError, match=f"test.evlarc: chunk {index} failed authentication"):
                open_(bytes(damaged), Keys(key=KEY))


def test_truncation_at_each_chunk_boundary_fails() -> None:
    _, archive = small_archive()
    boundaries = chunk_boundaries(archive, 1024)
    with pytest.raises(ArchiveError, match="ends after the header, before chunk 0"):
        open_(archive[: boundaries[0]], Keys(key=KEY))
    for index, cut in enumerate(boundaries[1:]):
        with pytest.raises(ArchiveError, match=f"truncated: it ends after chunk {index}"):
            open_(archive[:cut], Keys(key=KEY))
    with pytest.raises(ArchiveError, match="truncated inside its header"):
        open_(archive[:40], Keys(key=KEY))
    with pytest.raises(ArchiveError, match="chunk 2"):
        open_(archive[:-1], Keys(key=KEY))


def test_appended_data_fails() -> None:
    archive = seal(bytes(3 * 1024), Keys(key=KEY), compression="none", chunk_size=1024)
    with pytest.raises(ArchiveError, match="appended after its final chunk 2"):
        open_(archive + b"more", Keys(key=KEY))


def test_swapped_chunks_fail() -> None:
    _, archive = small_archive()
    first, second, third = chunk_boundaries(archive, 1024)
    swapped = archive[:first] + archive[second:third] + archive[first:second] + archive[third:]
    with pytest.raises(ArchiveError, match="chunk 0 failed authentication"):
        open_(swapped, Keys(key=KEY))


def test_chunk_from_another_archive_fails() -> None:
    data, archive = small_archive()
    other = seal(data, Keys(key=KEY), compression="none", chunk_size=1024, metadata={"segment": "1-3"})
    second = chunk_boundaries(archive, 1024)[1]
    spliced = archive[:second] + other[second:]
    with pytest.raises(ArchiveError, match="chunk 1 failed authentication"):
        open_(spliced, Keys(key=KEY))


def rewrite_header(archive: bytes, change: object) -> bytes:
    length = int.from_bytes(archive[8:12], "big")
    doc = json.loads(archive[12 : 12 + length])
    change(doc)  # type: ignore[operator]
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return archive[:8] + len(body).to_bytes(4, "big") + body + archive[12 + length :]


@pytest.mark.parametrize("change", [
    lambda doc: doc["metadata"].update(segment="1-4"),
    lambda doc: doc.update(compression="zstd"),
    lambda doc: doc["metadata"].update(extra=True),
], ids=["metadata value", "compression", "added metadata"])
def test_changed_header_field_fails(change: object) -> None:
    _, archive = small_archive()
    assert open_(rewrite_header(archive, lambda doc: None), Keys(key=KEY))  # re-encoding alone is harmless
    with pytest.raises(ArchiveError, match=r"header of test\.evlarc failed authentication"):
        open_(rewrite_header(archive, change), Keys(key=KEY))


def test_changed_kdf_parameter_fails() -> None:
    archive = seal(b"x", Keys(passphrase=PASSPHRASE))
    changed = rewrite_header(archive, lambda doc: doc["recipients"][0].update(iterations=2))
    with pytest.raises(ArchiveError, match="wrong key or passphrase"):
        open_(changed, Keys(passphrase=PASSPHRASE))


def test_malformed_headers_are_named() -> None:
    _, archive = small_archive()
    with pytest.raises(ArchiveError, match="not an eventlog archive"):
        open_(b"PK\x03\x04" + archive[4:], Keys(key=KEY))
    with pytest.raises(ArchiveError, match="format version 2"):
        open_(archive[:7] + b"\x02" + archive[8:], Keys(key=KEY))
    with pytest.raises(ArchiveError, match=r"header is malformed.*\$\.chunk_size"):
        open_(rewrite_header(archive, lambda doc: doc.update(chunk_size="big")), Keys(key=KEY))
    with pytest.raises(ArchiveError, match="chunk size must be a power of two"):
        open_(rewrite_header(archive, lambda doc: doc.update(chunk_size=1000)), Keys(key=KEY))
    with pytest.raises(ArchiveError, match="exceeds the limit"):
        open_(archive[:8] + (1 << 30).to_bytes(4, "big") + archive[12:], Keys(key=KEY))
    huge = rewrite_header(seal(b"x", Keys(passphrase=PASSPHRASE)),
                          lambda doc: doc["recipients"][0].update(memory_kib=1 << 30))
    with pytest.raises(ArchiveError, match="memory_kib"):
        open_(huge, Keys(passphrase=PASSPHRASE))
    doubled = rewrite_header(seal(b"x", Keys(passphrase=PASSPHRASE)),
                             lambda doc: doc["recipients"].append(doc["recipients"][0]))
    with pytest.raises(ArchiveError, match="more than one argon2id stanza"):
        open_(doubled, Keys(passphrase=PASSPHRASE))


@pytest.mark.parametrize("wrong", [
    Keys(passphrase="not the passphrase"),
    Keys(key=SymmetricKey(bytes(32))),
    Keys(identities=[X25519Identity.generate()]),
], ids=["passphrase", "key", "identity"])
def test_wrong_key_fails_and_names_the_file(wrong: Keys) -> None:
    archive = seal(b"secret data", Keys(passphrase=PASSPHRASE, key=KEY, recipients=[IDENTITY.recipient]))
    with pytest.raises(ArchiveError, match=r"^wrong key or passphrase for test\.evlarc") as caught:
        open_(archive, wrong)
    assert PASSPHRASE not in str(caught.value)


# Files: temp -> rename, nothing left on failure --------------------------------------------------------


def test_file_round_trip_and_verify(tmp_path: Path) -> None:
    source = tmp_path / "segment.ndjson"
    source.write_bytes(sample(150_000, 2))
    archive = tmp_path / "segment.evlarc"
    sealed = encrypt_file(source, archive, keys=Keys(recipients=[IDENTITY.recipient]),
                          metadata={"segment": "1-9"})
    assert verify_file(archive, keys=Keys(identities=[IDENTITY]),
                       expected_sha256=sealed.plaintext_sha256).plaintext_bytes == 150_000
    restored = tmp_path / "restored.ndjson"
    seen: list[ArchiveInfo] = []
    decrypt_file(archive, restored, keys=Keys(identities=[IDENTITY]), expected_sha256=sealed.plaintext_sha256,
                 verify=seen.append)
    assert restored.read_bytes() == source.read_bytes()
    assert seen[0].header.metadata == {"segment": "1-9"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restored.ndjson", "segment.evlarc", "segment.ndjson"]


def test_no_temp_file_left_on_any_failure(tmp_path: Path) -> None:
    _, archive_bytes = small_archive()
    archive = tmp_path / "a.evlarc"
    archive.write_bytes(archive_bytes)
    out = tmp_path / "out" / "plain"
    out.parent.mkdir()
    damaged = tmp_path / "damaged.evlarc"
    flipped = bytearray(archive_bytes)
    flipped[-5] ^= 1
    damaged.write_bytes(bytes(flipped))
    truncated = tmp_path / "truncated.evlarc"
    truncated.write_bytes(archive_bytes[: chunk_boundaries(archive_bytes, 1024)[2]])

    def refuse(info: ArchiveInfo) -> None:
        raise ArchiveError("merkle root differs")

    attempts = [
        (archive, Keys(key=SymmetricKey(bytes(32))), {}, "wrong key"),
        (damaged, Keys(key=KEY), {}, "chunk 2"),
        (truncated, Keys(key=KEY), {}, "truncated"),
        (archive, Keys(key=KEY), {"expected_sha256": "00" * 32}, "expected 0000"),
        (archive, Keys(key=KEY), {"verify": refuse}, "merkle root differs"),
    ]
    for path, keys, options, message in attempts:
        with pytest.raises(ArchiveError, match=message):
            decrypt_file(path, out, keys=keys, **options)  # type: ignore[arg-type]
        assert list(out.parent.iterdir()) == []
    with pytest.raises(InputError):
        encrypt_file(archive, out, keys=Keys())
    assert list(out.parent.iterdir()) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(b"one")
    archive = tmp_path / "a.evlarc"
    encrypt_file(source, archive, keys=Keys(key=KEY))
    with pytest.raises(ArchiveError, match="refusing to overwrite"):
        encrypt_file(source, archive, keys=Keys(key=KEY))
    source.write_bytes(b"two")
    encrypt_file(source, archive, keys=Keys(key=KEY), overwrite=True)
    with pytest.raises(ArchiveError, match="refusing to overwrite"):
        decrypt_file(archive, source, keys=Keys(key=KEY))
    decrypt_file(archive, source, keys=Keys(key=KEY), overwrite=True)
    assert source.read_bytes() == b"two"


# Keys --------------------------------------------------------------------------------------------------


def test_keypair_text_round_trip_and_checksum() -> None:
    secret, public = generate_keypair()
    assert secret.startswith("eventlog-x25519-secret-1:") and public.startswith("eventlog-x25519-public-1:")
    identity = X25519Identity.from_text(secret)
    assert identity.recipient == X25519Recipient.from_text(public)
    assert identity.secret_text() == secret
    typo = public[:-3] + ("A" if public[-3] != "A" else "B") + public[-2:]
    with pytest.raises(InputError, match="damaged"):
        X25519Recipient.from_text(typo)
    with pytest.raises(InputError, match="should start with") as caught:
        X25519Identity.from_text(public)
    assert public not in str(caught.value)


def test_secrets_never_show_in_reprs() -> None:
    secret, _ = generate_keypair()
    identity = X25519Identity.from_text(secret)
    keys = Keys(passphrase="hunter2-secret", key=KEY, identities=[identity])
    shown = " ".join([repr(keys), str(keys), repr(Passphrase("hunter2-secret")), repr(KEY), str(identity),
                      f"{keys.passphrase}"])
    assert "hunter2" not in shown and secret.split(":")[1] not in shown
    assert KEY.reveal().hex() not in shown and "<hidden>" in shown


def test_identity_and_key_files(tmp_path: Path) -> None:
    identity_path = tmp_path / "me.key"
    recipient = write_identity_file(identity_path)
    assert stat.S_IMODE(identity_path.stat().st_mode) == 0o600
    assert recipient.text in identity_path.read_text()
    (identity,) = load_identities(identity_path)
    assert identity.recipient == recipient
    assert load_recipients(str(identity_path)) == [recipient]
    assert load_recipients(recipient.text) == [recipient]
    listed = tmp_path / "recipients.txt"
    other = X25519Identity.generate().recipient
    listed.write_text(f"# team\n{recipient.text}\n\n{other.text}\n")
    assert load_recipients(str(listed)) == [recipient, other]
    listed.write_text("# team\nnot-a-key\n")
    with pytest.raises(InputError, match=r"recipients.txt, line 2"):
        load_recipients(str(listed))
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_identity_file(identity_path)

    key_path = tmp_path / "archive.key"
    write_key_file(key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(load_key_file(key_path).reveal()) == 32
    key_path.write_bytes(b"short")
    with pytest.raises(InputError, match="exactly 32 bytes, this one holds 5"):
        load_key_file(key_path)


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_PASSPHRASE", "from the environment")
    assert passphrase_from_env("ARCHIVE_PASSPHRASE").reveal() == b"from the environment"
    monkeypatch.delenv("ARCHIVE_PASSPHRASE")
    with pytest.raises(InputError, match="ARCHIVE_PASSPHRASE is not set"):
        passphrase_from_env("ARCHIVE_PASSPHRASE")
    path = tmp_path / "pass.txt"
    path.write_text("from a file\n")
    assert passphrase_from_file(path).reveal() == b"from a file"
    path.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        passphrase_from_file(path)


# Test vectors and the stand-alone decryptor ------------------------------------------------------------


def load_vector_maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_are_stable_and_open() -> None:
    built = load_vector_maker().vectors()
    for name, data in built.items():
        assert (VECTORS / name).read_bytes() == data, f"{name} differs from what the format produces now"
    key = load_key_file(VECTORS / "key.bin")
    identities = load_identities(VECTORS / "identity.txt")
    passphrase = passphrase_from_file(VECTORS / "passphrase.txt")
    for name, keys in [("key-none", Keys(key=key)), ("x25519-zstd", Keys(identities=identities)),
                       ("passphrase-none-3chunks", Keys(passphrase=passphrase))]:
        plain, _ = open_((VECTORS / f"{name}.evlarc").read_bytes(), keys)
        assert plain == (VECTORS / f"{name}.plain").read_bytes()


def test_document_shows_the_vector_bytes() -> None:
    text = DOC.read_text()
    block = re.search(r"<!-- vector:key-none.evlarc:begin -->\n```\n(.*?)```", text, re.S)
    assert block is not None
    assert bytes.fromhex(block.group(1).replace("\n", "")) == (VECTORS / "key-none.evlarc").read_bytes()


def standalone_decryptor(tmp_path: Path) -> Path:
    text = DOC.read_text()
    block = re.search(r"<!-- standalone-decryptor:begin -->\n```python\n(.*?)```\n<!-- standalone-decryptor:end",
                      text, re.S)
    assert block is not None, "the decryptor block markers are missing from docs/archive-format.md"
    script = tmp_path / "decrypt.py"
    script.write_text(block.group(1))
    assert len(block.group(1).splitlines()) <= 80
    return script


@pytest.mark.parametrize("kind", ["key", "x25519", "passphrase"])
@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_standalone_decryptor_reads_what_the_library_writes(tmp_path: Path, kind: str, compression: str) -> None:
    script = standalone_decryptor(tmp_path)
    data = sample(3 * CHUNK_SIZE + 123, 9)
    source = tmp_path / "plain"
    source.write_bytes(data)
    archive = tmp_path / "a.evlarc"
    identity_path = tmp_path / "me.key"
    recipient = write_identity_file(identity_path)
    key_path = tmp_path / "k.bin"
    key_path.write_bytes(KEY.reveal())
    keys = {"key": Keys(key=KEY), "x25519": Keys(recipients=[recipient]),
            "passphrase": Keys(passphrase=PASSPHRASE)}[kind]
    encrypt_file(source, archive, keys=keys, compression=compression, kdf=FAST)  # type: ignore[arg-type]
    env = {"PATH": os.environ.get("PATH", ""),
           {"key": "EVENTLOG_KEY_FILE", "x25519": "EVENTLOG_IDENTITY", "passphrase": "EVENTLOG_PASSPHRASE"}[kind]:
           {"key": str(key_path), "x25519": str(identity_path), "passphrase": PASSPHRASE}[kind]}
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(script), str(archive), str(out)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == data

    flipped = bytearray(archive.read_bytes())
    flipped[-20] ^= 1
    archive.write_bytes(bytes(flipped))
    result = subprocess.run([sys.executable, str(script), str(archive), str(out)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "failed authentication" in result.stderr
