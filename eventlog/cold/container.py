"""Cold-storage archive container: an authenticated header, then compressed data in AES-256-GCM chunks.

Layout (docs/archive-format.md has every field, the derivations and test vectors):

    magic b"\\x89EVLARC" | version 0x01 | header length, u32 big-endian | header JSON | header MAC, 32 bytes
    chunk 0 | chunk 1 | ... | final chunk           each: AES-256-GCM ciphertext of up to 64 KiB || 16-byte tag

A random 32-byte file key is wrapped once per recipient stanza in the header (passphrase via Argon2id, key file,
X25519). From the file key come the header MAC key and the payload key; the payload key also takes the SHA-256 of
the header bytes as HKDF salt, so every chunk is bound to the whole header. Each chunk's nonce is an 11-byte
big-endian counter and a last-chunk flag byte (the STREAM construction): truncation, reordering, swapped chunks,
appended data and any altered byte all fail authentication.

Streaming: memory stays constant (a few chunks plus the zstd window) whatever the size. `decrypt_stream` writes
each chunk only after its tag verified, but truncation shows only at the end: write to a temporary file and
rename it after success, which `decrypt_file` does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any, BinaryIO, Literal, Protocol, cast

import msgspec
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from eventlog import durable
from eventlog.cold.keys import Argon2Params, Keys, Passphrase, X25519Identity
from eventlog.errors import ArchiveError, InputError

MAGIC = b"\x89EVLARC"
FORMAT_VERSION = 1
SUITE = "aes-256-gcm-stream"
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
MAC_SIZE = 32
MAX_HEADER_BYTES = 1 << 20
MAX_RECIPIENTS = 256
ZSTD_LEVEL = 3

Compression = Literal["zstd", "none"]

_PREAMBLE = struct.Struct(">7sBI")
_READ_SIZE = 1 << 20
_WRAP_NONCE = bytes(12)
_INFO_KEY = b"eventlog-archive/v1 key"
_INFO_X25519 = b"eventlog-archive/v1 x25519"
_INFO_HEADER = b"eventlog-archive/v1 header"
_INFO_PAYLOAD = b"eventlog-archive/v1 payload"

_Hex16 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
_Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_Hex48 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{96}$")]


class PassphraseStanza(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="argon2id"):
    """Header stanza: the file key wrapped with Argon2id(passphrase, salt, memory_kib, iterations, lanes)."""

    salt: _Hex16
    memory_kib: Annotated[int, msgspec.Meta(ge=8, le=1 << 21)]
    iterations: Annotated[int, msgspec.Meta(ge=1, le=100)]
    lanes: Annotated[int, msgspec.Meta(ge=1, le=64)]
    wrapped_key: _Hex48


class KeyStanza(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="key"):
    """Header stanza: the file key wrapped with HKDF-SHA256(key file, salt)."""

    salt: _Hex16
    wrapped_key: _Hex48


class X25519Stanza(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="x25519"):
    """Header stanza: the file key wrapped for one X25519 recipient via an ephemeral key."""

    ephemeral: _Hex32
    wrapped_key: _Hex48


Stanza = PassphraseStanza | KeyStanza | X25519Stanza


class _HeaderDoc(msgspec.Struct, frozen=True, kw_only=True):
    suite: str
    compression: Compression
    chunk_size: int
    recipients: Annotated[tuple[Stanza, ...], msgspec.Meta(min_length=1, max_length=MAX_RECIPIENTS)]
    metadata: dict[str, Any]


class ArchiveHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What an archive's header says.

    `read_header` returns it without any key, so trust `metadata` only once a decryption with a key succeeded
    (the MAC and every chunk cover the header). `header_sha256` is the SHA-256 of the header bytes (magic through
    header JSON); `data_offset` is where chunk 0 starts.
    """

    version: int
    suite: str
    compression: Compression
    chunk_size: int
    recipients: tuple[Stanza, ...]
    metadata: dict[str, Any]
    header_sha256: str
    data_offset: int


class ArchiveInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Result of sealing or opening an archive: its header and the plaintext's size and SHA-256 (hex)."""

    header: ArchiveHeader
    plaintext_bytes: int
    plaintext_sha256: str
    archive_bytes: int
    chunks: int


def encrypt_stream(src: BinaryIO, dst: BinaryIO, *, keys: Keys, compression: Compression = "zstd",
                   level: int = ZSTD_LEVEL, metadata: Mapping[str, Any] | None = None,
                   kdf: Argon2Params | None = None, chunk_size: int = CHUNK_SIZE) -> ArchiveInfo:
    """Read `src` to its end and write one archive to `dst`, sealed to every key in `keys`.

    `metadata` (JSON values, string keys) goes into the authenticated header, e.g. segment range, plaintext
    SHA-256, Merkle root. `kdf` sets the Argon2id cost when `keys` has a passphrase. `chunk_size` (a power of two,
    1 KiB to 16 MiB) exists for tests and tuning; readers take it from the header. Raises InputError for unusable
    keys or metadata. Memory is constant; each call draws a fresh file key.
    """
    return _seal(src, dst, keys=keys, compression=compression, level=level, metadata=metadata or {},
                 kdf=kdf or Argon2Params(), chunk_size=chunk_size, randbytes=secrets.token_bytes)[0]


def decrypt_stream(src: BinaryIO, dst: BinaryIO, *, keys: Keys, name: str | None = None) -> ArchiveInfo:
    """Open the archive in `src` with `keys` and write its plaintext to `dst`.

    Raises ArchiveError "wrong key or passphrase for <name>" when no stanza opens, and an ArchiveError naming the
    chunk index for any altered, reordered or truncated data. Chunks are written as they verify, so on error
    `dst` holds a prefix: point `dst` at a temporary file (or use `decrypt_file`). `name` is used in messages
    (default: `src.name`).
    """
    return _open(src, dst, keys=keys, label=_label(src, name))


def read_header(src: BinaryIO, *, name: str | None = None) -> ArchiveHeader:
    """Read and parse the header without any key (to list metadata); raises ArchiveError if malformed."""
    return _parse_header(src, _label(src, name))[0]


def is_archive(prefix: bytes) -> bool:
    """True if `prefix` (the first bytes of a file, at least 7) starts with this format's magic."""
    return prefix[: len(MAGIC)] == MAGIC


def encrypt_file(source: Path, archive: Path, *, keys: Keys, compression: Compression = "zstd",
                 level: int = ZSTD_LEVEL, metadata: Mapping[str, Any] | None = None,
                 kdf: Argon2Params | None = None, verify: bool = True, overwrite: bool = False) -> ArchiveInfo:
    """Seal the file `source` into `archive` via temp -> fsync -> rename -> fsync(dir).

    With `verify` (the default) the written temp file is read back and decrypted with the file key still held
    in memory, so no secret key is needed (a server with only public keys can do it), and must reproduce the
    plaintext size and SHA-256 before it is renamed into place; this roughly doubles the CPU cost. Compare
    `plaintext_sha256` of the result with what you expect the source to hold. Refuses an existing `archive`
    unless `overwrite`; on any error no file is left behind.
    """
    label = str(archive)
    with _open_input(source) as src, write_atomically(archive, overwrite=overwrite) as dst:
        info, file_key = _seal(src, dst, keys=keys, compression=compression, level=level,
                               metadata=metadata or {}, kdf=kdf or Argon2Params(), chunk_size=CHUNK_SIZE,
                               randbytes=secrets.token_bytes)
        if verify:
            dst.flush()
            with Path(dst.name).open("rb") as reader:
                again = _open(reader, _NullSink(), keys=None, label=label, file_key=file_key)
            if (again.plaintext_bytes, again.plaintext_sha256) != (info.plaintext_bytes, info.plaintext_sha256):
                raise ArchiveError(f"{label}: read back after writing, it does not reproduce {source}")
    return info


def decrypt_file(archive: Path, out: Path, *, keys: Keys, expected_sha256: str | None = None,
                 verify: Callable[[ArchiveInfo], None] | None = None, overwrite: bool = False) -> ArchiveInfo:
    """Open `archive` into `out`: decrypt to a temp file beside `out`, check, fsync, rename, fsync(dir).

    Before the rename the plaintext SHA-256 must equal `expected_sha256` (when given) and `verify(info)` (when
    given) must return; anything it raises propagates. On any error the temp file is removed and `out` is
    untouched. Refuses an existing `out` unless `overwrite`.
    """
    with _open_input(archive) as src, write_atomically(out, overwrite=overwrite) as dst:
        info = decrypt_stream(src, dst, keys=keys, name=str(archive))
        _check_sha256(info, expected_sha256, str(archive))
        if verify is not None:
            verify(info)
    return info


def verify_file(archive: Path, *, keys: Keys, expected_sha256: str | None = None) -> ArchiveInfo:
    """Decrypt `archive` fully without writing anything, proving it opens with `keys` and is intact."""
    with _open_input(archive) as src:
        info = _open(src, _NullSink(), keys=keys, label=str(archive))
    _check_sha256(info, expected_sha256, str(archive))
    return info


@contextmanager
def write_atomically(path: Path, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """`durable.write_atomically`, its refusal to overwrite an existing file raised as an ArchiveError."""
    try:
        with durable.write_atomically(path, overwrite=overwrite) as handle:
            yield handle
    except FileExistsError as exc:
        raise ArchiveError(str(exc)) from None



def _open(src: BinaryIO, dst: _Writable, *, keys: Keys | None, label: str,
          file_key: bytes | None = None) -> ArchiveInfo:
    header, header_bytes, mac = _parse_header(src, label)
    if file_key is None:
        file_key = _unwrap(header, keys or Keys(), label)
    expected = hmac.new(_hkdf(file_key, b"", _INFO_HEADER), header_bytes, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise ArchiveError(f"the header of {label} failed authentication: it was altered")
    aead = AESGCM(_hkdf(file_key, hashlib.sha256(header_bytes).digest(), _INFO_PAYLOAD))
    sink = _HashingSink(dst)
    chunks = _ChunkReader(src, aead, header.chunk_size, label)
    if header.compression == "zstd":
        # The writer hands output on in bounded pieces, so a highly compressed chunk cannot balloon memory.
        writer = zstandard.ZstdDecompressor().stream_writer(cast(IO[bytes], sink), closefd=False)
        try:
            for plain in chunks:
                writer.write(plain)
        except zstandard.ZstdError:
            raise ArchiveError(f"{label}: the compressed data inside is malformed") from None
    else:
        for plain in chunks:
            sink.write(plain)
    return ArchiveInfo(header=header, plaintext_bytes=sink.count, plaintext_sha256=sink.digest.hexdigest(),
                       archive_bytes=header.data_offset + chunks.bytes_read, chunks=chunks.count)


def _seal(src: BinaryIO, dst: BinaryIO, *, keys: Keys, compression: Compression, level: int,
          metadata: Mapping[str, Any], kdf: Argon2Params, chunk_size: int,
          randbytes: Callable[[int], bytes]) -> tuple[ArchiveInfo, bytes]:
    if compression not in ("zstd", "none"):
        raise InputError(f"unknown compression {compression!r}: use 'zstd' or 'none'")
    _check_chunk_size(chunk_size)
    file_key = randbytes(32)
    doc = _HeaderDoc(suite=SUITE, compression=compression, chunk_size=chunk_size,
                     recipients=_wrap_for(keys, file_key, kdf, randbytes), metadata=_normalise(metadata))
    body = msgspec.json.encode(doc, order="sorted")
    if len(body) > MAX_HEADER_BYTES:
        raise InputError(f"archive header would be {len(body)} bytes; the limit is {MAX_HEADER_BYTES}")
    header_bytes = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body)) + body
    dst.write(header_bytes)
    dst.write(hmac.new(_hkdf(file_key, b"", _INFO_HEADER), header_bytes, hashlib.sha256).digest())
    aead = AESGCM(_hkdf(file_key, hashlib.sha256(header_bytes).digest(), _INFO_PAYLOAD))
    plain = _HashingSource(src)
    if compression == "zstd":
        chunker = zstandard.ZstdCompressor(level=level).chunker(chunk_size=chunk_size)
        pieces: Iterator[bytes] = _compressed(plain, chunker)
    else:
        pieces = iter(plain)
    written = len(header_bytes) + MAC_SIZE
    index = 0
    pending: bytes | None = None
    for chunk in _fixed_chunks(pieces, chunk_size):
        if pending is not None:
            sealed = aead.encrypt(_nonce(index, last=False), pending, None)
            dst.write(sealed)
            written += len(sealed)
            index += 1
        pending = chunk
    sealed = aead.encrypt(_nonce(index, last=True), pending or b"", None)
    dst.write(sealed)
    written += len(sealed)
    header = _to_header(doc, header_bytes)
    info = ArchiveInfo(header=header, plaintext_bytes=plain.count, plaintext_sha256=plain.digest.hexdigest(),
                       archive_bytes=written, chunks=index + 1)
    return info, file_key


def _wrap_for(keys: Keys, file_key: bytes, kdf: Argon2Params,
              randbytes: Callable[[int], bytes]) -> tuple[Stanza, ...]:
    if keys.is_empty():
        raise InputError("no key to seal the archive to: give a passphrase, a key file or a recipient")
    stanzas: list[Stanza] = []
    if keys.key is not None:
        salt = randbytes(16)
        wrap_key = _hkdf(keys.key.reveal(), salt, _INFO_KEY)
        stanzas.append(KeyStanza(salt=salt.hex(), wrapped_key=_wrap(wrap_key, file_key)))
    recipients = dict.fromkeys([*keys.recipients, *(identity.recipient for identity in keys.identities)])
    for recipient in recipients:
        ephemeral = X25519PrivateKey.from_private_bytes(randbytes(32))
        epk = ephemeral.public_key().public_bytes_raw()
        try:
            shared = ephemeral.exchange(recipient.public_key())
        except ValueError:
            raise InputError(f"recipient {recipient.text} is not a usable X25519 public key") from None
        wrap_key = _hkdf(shared, epk + recipient.raw, _INFO_X25519)
        stanzas.append(X25519Stanza(ephemeral=epk.hex(), wrapped_key=_wrap(wrap_key, file_key)))
    if keys.passphrase is not None:
        salt = randbytes(16)
        wrap_key = _argon2(keys.passphrase, salt, kdf.memory_kib, kdf.iterations, kdf.lanes)
        stanzas.append(PassphraseStanza(salt=salt.hex(), memory_kib=kdf.memory_kib, iterations=kdf.iterations,
                                        lanes=kdf.lanes, wrapped_key=_wrap(wrap_key, file_key)))
    if len(stanzas) > MAX_RECIPIENTS:
        raise InputError(f"an archive takes at most {MAX_RECIPIENTS} recipients, got {len(stanzas)}")
    return tuple(stanzas)


def _unwrap(header: ArchiveHeader, keys: Keys, label: str) -> bytes:
    # Cheap stanzas first: an Argon2id attempt costs a deliberate fraction of a second.
    for stanza in sorted(header.recipients, key=lambda s: isinstance(s, PassphraseStanza)):
        for wrap_key in _wrap_key_candidates(stanza, keys, label):
            try:
                return AESGCM(wrap_key).decrypt(_WRAP_NONCE, bytes.fromhex(stanza.wrapped_key), None)
            except InvalidTag:
                continue
    kinds = ", ".join(sorted({_KIND_NAMES[type(stanza)] for stanza in header.recipients}))
    raise ArchiveError(f"wrong key or passphrase for {label} (it opens with: {kinds})")


def _wrap_key_candidates(stanza: Stanza, keys: Keys, label: str) -> Iterator[bytes]:
    if isinstance(stanza, KeyStanza) and keys.key is not None:
        yield _hkdf(keys.key.reveal(), bytes.fromhex(stanza.salt), _INFO_KEY)
    elif isinstance(stanza, X25519Stanza):
        epk = bytes.fromhex(stanza.ephemeral)
        for identity in keys.identities:
            shared = _exchange(identity, epk)
            if shared is not None:
                yield _hkdf(shared, epk + identity.recipient.raw, _INFO_X25519)
    elif isinstance(stanza, PassphraseStanza) and keys.passphrase is not None:
        if stanza.memory_kib < 8 * stanza.lanes:
            raise ArchiveError(f"{label}: header is malformed: Argon2id memory below 8 KiB per lane")
        yield _argon2(keys.passphrase, bytes.fromhex(stanza.salt), stanza.memory_kib, stanza.iterations,
                      stanza.lanes)


_KIND_NAMES: dict[type[Stanza], str] = {PassphraseStanza: "passphrase", KeyStanza: "key file",
                                        X25519Stanza: "X25519 identity"}


def _exchange(identity: X25519Identity, epk: bytes) -> bytes | None:
    try:
        return identity.private_key().exchange(X25519PublicKey.from_public_bytes(epk))
    except ValueError:
        # A low-order ephemeral point gives an all-zero secret; such a stanza cannot be ours.
        return None


def _parse_header(src: BinaryIO, label: str) -> tuple[ArchiveHeader, bytes, bytes]:
    preamble = _read_exact(src, _PREAMBLE.size)
    if not is_archive(preamble):
        raise ArchiveError(f"{label} is not an eventlog archive (its first bytes are not the format's magic)")
    if len(preamble) < _PREAMBLE.size:
        raise ArchiveError(f"{label} is truncated inside its header")
    _, version, length = _PREAMBLE.unpack(preamble)
    if version != FORMAT_VERSION:
        raise ArchiveError(f"{label} uses archive format version {version}; this version reads version "
                           f"{FORMAT_VERSION}")
    if length > MAX_HEADER_BYTES:
        raise ArchiveError(f"{label}: header length {length} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    body = _read_exact(src, length)
    mac = _read_exact(src, MAC_SIZE)
    if len(body) < length or len(mac) < MAC_SIZE:
        raise ArchiveError(f"{label} is truncated inside its header")
    try:
        doc = msgspec.json.decode(body, type=_HeaderDoc)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{label}: header is malformed: {exc}") from None
    if doc.suite != SUITE:
        raise ArchiveError(f"{label}: unknown cipher suite {doc.suite!r} (this version reads {SUITE!r})")
    try:
        _check_chunk_size(doc.chunk_size)
    except InputError as exc:
        raise ArchiveError(f"{label}: header is malformed: {exc}") from None
    if sum(isinstance(stanza, PassphraseStanza) for stanza in doc.recipients) > 1:
        # Each Argon2id attempt is deliberately expensive; a crafted header must not multiply that cost.
        raise ArchiveError(f"{label}: header is malformed: more than one argon2id stanza")
    header_bytes = preamble + body
    return _to_header(doc, header_bytes), header_bytes, mac


def _to_header(doc: _HeaderDoc, header_bytes: bytes) -> ArchiveHeader:
    return ArchiveHeader(version=FORMAT_VERSION, suite=doc.suite, compression=doc.compression,
                         chunk_size=doc.chunk_size, recipients=doc.recipients, metadata=doc.metadata,
                         header_sha256=hashlib.sha256(header_bytes).hexdigest(),
                         data_offset=len(header_bytes) + MAC_SIZE)


class _ChunkReader:
    """Iterate the verified plaintext of each chunk; one chunk of look-ahead tells which one is final."""

    def __init__(self, src: BinaryIO, aead: AESGCM, chunk_size: int, label: str) -> None:
        self._src, self._aead, self._label = src, aead, label
        self._size = chunk_size + TAG_SIZE
        self.count = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        current = _read_exact(self._src, self._size)
        index = 0
        while True:
            following = _read_exact(self._src, self._size) if len(current) == self._size else b""
            last = not following
            self.bytes_read += len(current)
            plain = self._open(index, current, last=last)
            self.count = index + 1
            yield plain
            if last:
                return
            current, index = following, index + 1

    def _open(self, index: int, sealed: bytes, *, last: bool) -> bytes:
        label = self._label
        if len(sealed) < TAG_SIZE:
            if index == 0 and not sealed:
                raise ArchiveError(f"{label} is truncated: it ends after the header, before chunk 0")
            raise ArchiveError(f"{label} is truncated inside chunk {index}")
        try:
            plain = self._aead.decrypt(_nonce(index, last=last), sealed, None)
        except InvalidTag:
            raise ArchiveError(self._diagnose(index, sealed, last=last)) from None
        if last and not plain and index > 0:
            raise ArchiveError(f"{label}: chunk {index} is an empty final chunk, which this format never writes")
        return plain

    def _diagnose(self, index: int, sealed: bytes, *, last: bool) -> str:
        # A chunk that opens with the other flag pinpoints truncation or appended data.
        try:
            self._aead.decrypt(_nonce(index, last=not last), sealed, None)
        except InvalidTag:
            return (f"{self._label}: chunk {index} failed authentication (altered, reordered, swapped or "
                    "truncated data)")
        if last:
            return f"{self._label} is truncated: it ends after chunk {index}, which is not the final chunk"
        return f"{self._label} has data appended after its final chunk {index}"


class _HashingSource:
    """Read blocks from a stream, counting and hashing them."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.count = 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        while block := self._src.read(_READ_SIZE):
            self.count += len(block)
            self.digest.update(block)
            yield block


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class _HashingSink:
    """Write to a stream, counting and hashing what passes."""

    def __init__(self, dst: _Writable) -> None:
        self._dst = dst
        self.count = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.count += len(data)
        self.digest.update(data)
        self._dst.write(data)
        return len(data)

    def flush(self) -> None:
        return None


class _NullSink:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def _compressed(plain: _HashingSource, chunker: Any) -> Iterator[bytes]:
    for block in plain:
        yield from chunker.compress(block)
    yield from chunker.finish()


def _fixed_chunks(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Re-cut arbitrary pieces into chunks of exactly `size` bytes and one shorter, non-empty last chunk."""
    buffer = bytearray()
    for piece in pieces:
        if not buffer and len(piece) == size:
            yield piece
            continue
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _nonce(index: int, *, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _wrap(wrap_key: bytes, file_key: bytes) -> str:
    # Each wrap key is fresh (new salt or ephemeral key per stanza), so a fixed nonce is safe.
    return AESGCM(wrap_key).encrypt(_WRAP_NONCE, file_key, None).hex()


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _argon2(passphrase: Passphrase, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib)
    return kdf.derive(passphrase.reveal())


def _normalise(metadata: Mapping[str, Any]) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(msgspec.json.encode(dict(metadata)), type=dict[str, Any])
    except (msgspec.EncodeError, msgspec.DecodeError, TypeError, ValueError) as exc:
        raise InputError(f"archive metadata must be a JSON object with string keys: {exc}") from None
    return decoded


def _check_chunk_size(size: int) -> None:
    if not (1 << 10 <= size <= 1 << 24) or size & (size - 1):
        raise InputError(f"chunk size must be a power of two from 1 KiB to 16 MiB, got {size}")


def _check_sha256(info: ArchiveInfo, expected: str | None, label: str) -> None:
    if expected is not None and info.plaintext_sha256 != expected.lower():
        raise ArchiveError(f"{label}: the decrypted data has SHA-256 {info.plaintext_sha256}, expected "
                           f"{expected.lower()}")


def _read_exact(src: IO[bytes], size: int) -> bytes:
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _open_input(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror}") from None


def _label(src: IO[bytes], name: str | None) -> str:
    if name is not None:
        return name
    stream_name = getattr(src, "name", None)
    return stream_name if isinstance(stream_name, str) else "<archive stream>"

