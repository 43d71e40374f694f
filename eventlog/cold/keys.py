"""Key material for cold-storage archives: passphrases, key files and X25519 recipients.

Three kinds of key open an archive (see docs/archive-format.md):

- a passphrase, stretched with Argon2id (parameters stored in the archive header);
- a key file: exactly 32 random bytes (`write_key_file` makes one);
- an X25519 identity (secret key) whose public half, the recipient, is all a server needs to archive.

Text forms of X25519 keys are `eventlog-x25519-public-1:` or `eventlog-x25519-secret-1:` followed by the unpadded
base64url encoding of the 32 key bytes and a 4-byte checksum, SHA-256(prefix || key)[:4], so a mistyped key is
refused instead of silently sealing archives nobody can open.

Secrets never appear in a repr, a log line or an error message: the wrappers below print `<hidden>` and errors
name the source (environment variable, file and line), never the value. Passphrases are read from an environment
variable, a file or an interactive prompt, never from the command line.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from eventlog import durable
from eventlog.errors import InputError

PUBLIC_PREFIX = "eventlog-x25519-public-1:"
SECRET_PREFIX = "eventlog-x25519-secret-1:"
KEY_FILE_BYTES = 32
_CHECKSUM_BYTES = 4


class Argon2Params(msgspec.Struct, frozen=True, kw_only=True):
    """Argon2id cost for passphrase-wrapped archives; the defaults follow RFC 9106's second recommendation.

    `memory_kib` is in KiB (65536 = 64 MiB). Readers refuse parameters past the caps in the stanza schema so a
    crafted archive cannot make decryption take unbounded memory or time.
    """

    memory_kib: Annotated[int, msgspec.Meta(ge=8, le=1 << 21)] = 1 << 16
    iterations: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    lanes: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4

    def __post_init__(self) -> None:
        if self.memory_kib < 8 * self.lanes:
            raise InputError(f"Argon2id needs at least 8 KiB of memory per lane ({8 * self.lanes} KiB for "
                             f"{self.lanes} lanes), got {self.memory_kib}")


class Passphrase:
    """A passphrase, kept as its UTF-8 bytes (no Unicode normalisation); prints as `<hidden>`."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if not raw:
            raise InputError("the passphrase is empty")
        self._value = raw

    def reveal(self) -> bytes:
        """Return the passphrase bytes; only key derivation should call this."""
        return self._value

    def __repr__(self) -> str:
        return "Passphrase(<hidden>)"

    __str__ = __repr__


class SymmetricKey:
    """A 32-byte key from a key file; prints as `<hidden>`."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if len(value) != KEY_FILE_BYTES:
            raise InputError(f"a key must be exactly {KEY_FILE_BYTES} bytes, got {len(value)}")
        self._value = bytes(value)

    @classmethod
    def generate(cls) -> SymmetricKey:
        """Return a new random key."""
        return cls(secrets.token_bytes(KEY_FILE_BYTES))

    def reveal(self) -> bytes:
        """Return the key bytes; only key derivation should call this."""
        return self._value

    def __repr__(self) -> str:
        return "SymmetricKey(<hidden>)"

    __str__ = __repr__


class X25519Recipient:
    """An X25519 public key: archives sealed to it open only with the matching identity."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise InputError(f"an X25519 public key is 32 bytes, got {len(raw)}")
        self._raw = bytes(raw)

    @classmethod
    def from_text(cls, text: str, *, source: str | None = None, line: int | None = None) -> X25519Recipient:
        """Parse `eventlog-x25519-public-1:...`; raises InputError naming the source, not the text."""
        return cls(_decode_key_text(text.strip(), PUBLIC_PREFIX, "public key", source=source, line=line))

    @property
    def raw(self) -> bytes:
        """The 32 public key bytes."""
        return self._raw

    @property
    def text(self) -> str:
        """The text form, safe to print and share."""
        return _encode_key_text(self._raw, PUBLIC_PREFIX)

    def public_key(self) -> X25519PublicKey:
        """The key as a `cryptography` object."""
        return X25519PublicKey.from_public_bytes(self._raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"X25519Recipient({self.text})"


class X25519Identity:
    """An X25519 secret key; prints only its public half."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> X25519Identity:
        """Return a new random identity."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str, *, source: str | None = None, line: int | None = None) -> X25519Identity:
        """Parse `eventlog-x25519-secret-1:...`; raises InputError naming the source, never the text."""
        raw = _decode_key_text(text.strip(), SECRET_PREFIX, "secret key", source=source, line=line)
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def secret_text(self) -> str:
        """Return the secret text form; write it only to a private file."""
        return _encode_key_text(self._key.private_bytes_raw(), SECRET_PREFIX)

    @property
    def recipient(self) -> X25519Recipient:
        """The public half, to give to whoever archives."""
        return X25519Recipient(self._key.public_key().public_bytes_raw())

    def private_key(self) -> X25519PrivateKey:
        """The key as a `cryptography` object; only key agreement should call this."""
        return self._key

    def __repr__(self) -> str:
        return f"X25519Identity(public={self.recipient.text})"

    __str__ = __repr__


class Keys:
    """The keys an archive is sealed to, or opened with.

    Sealing uses the passphrase, the key and every recipient (identities count as their public halves), one
    header stanza each. Opening tries every stanza the given material can unwrap; the first that works wins.
    """

    __slots__ = ("identities", "key", "passphrase", "recipients")

    def __init__(self, *, passphrase: Passphrase | str | None = None, key: SymmetricKey | None = None,
                 recipients: Iterable[X25519Recipient] = (), identities: Iterable[X25519Identity] = ()) -> None:
        self.passphrase = Passphrase(passphrase) if isinstance(passphrase, str) else passphrase
        self.key = key
        self.recipients = tuple(recipients)
        self.identities = tuple(identities)

    def is_empty(self) -> bool:
        """True when there is nothing to seal to or open with."""
        return self.passphrase is None and self.key is None and not self.recipients and not self.identities

    def __repr__(self) -> str:
        parts = []
        if self.passphrase is not None:
            parts.append("passphrase=<hidden>")
        if self.key is not None:
            parts.append("key=<hidden>")
        if self.recipients:
            parts.append(f"recipients={list(self.recipients)!r}")
        if self.identities:
            parts.append(f"identities={list(self.identities)!r}")
        return f"Keys({', '.join(parts)})"


def generate_keypair() -> tuple[str, str]:
    """Return a new X25519 key pair as text: (secret_text, public_text)."""
    identity = X25519Identity.generate()
    return identity.secret_text(), identity.recipient.text


def write_identity_file(path: Path) -> X25519Recipient:
    """Create a new identity file (mode 0600, refused if the path exists) and return its recipient.

    The file holds two comment lines (what it is, and the public key) and the secret line.
    """
    identity = X25519Identity.generate()
    text = ("# eventlog X25519 identity: a secret key, keep this file private\n"
            f"# public key: {identity.recipient.text}\n"
            f"{identity.secret_text()}\n")
    _write_private(path, text.encode("ascii"))
    return identity.recipient


def write_key_file(path: Path) -> None:
    """Create a new key file of 32 random bytes (mode 0600, refused if the path exists)."""
    _write_private(path, secrets.token_bytes(KEY_FILE_BYTES))


def load_key_file(path: Path) -> SymmetricKey:
    """Read a key file: exactly 32 bytes; raises InputError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read key file: {exc.strerror}", source=str(path)) from None
    if len(raw) != KEY_FILE_BYTES:
        raise InputError(f"a key file must hold exactly {KEY_FILE_BYTES} bytes, this one holds {len(raw)}",
                         source=str(path))
    return SymmetricKey(raw)


def load_identities(path: Path) -> list[X25519Identity]:
    """Read every `eventlog-x25519-secret-1:` line of an identity file (`#` comments and blanks skipped)."""
    identities = [X25519Identity.from_text(text, source=str(path), line=number)
                  for number, text in _key_lines(path) if text.startswith(SECRET_PREFIX)]
    if not identities:
        raise InputError("no eventlog-x25519-secret-1 line in this identity file", source=str(path))
    return identities


def load_recipients(value: str) -> list[X25519Recipient]:
    """Return the recipients named by a public key text, or by a file of them (one per line).

    A file may also hold secret lines (an identity file): their public halves are used, so one can archive
    to oneself. Raises InputError naming the file and line of a malformed key.
    """
    if value.strip().startswith(PUBLIC_PREFIX):
        return [X25519Recipient.from_text(value, source="recipient argument")]
    path = Path(value)
    found: list[X25519Recipient] = []
    for number, text in _key_lines(path):
        if text.startswith(SECRET_PREFIX):
            found.append(X25519Identity.from_text(text, source=value, line=number).recipient)
        else:
            found.append(X25519Recipient.from_text(text, source=value, line=number))
    if not found:
        raise InputError("no recipient in this file", source=value)
    return found


def passphrase_from_env(name: str) -> Passphrase:
    """Read a passphrase from the environment variable `name`; raises InputError if unset or empty."""
    value = os.environ.get(name)
    if not value:
        raise InputError(f"environment variable {name} is not set or empty; it should hold the passphrase")
    return Passphrase(value)


def passphrase_from_file(path: Path) -> Passphrase:
    """Read a passphrase from a UTF-8 file; one trailing line break is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read passphrase file: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError("the passphrase file is not UTF-8 text", source=str(path)) from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise InputError("the passphrase file is empty", source=str(path))
    return Passphrase(text)


def prompt_passphrase(*, confirm: bool = False, prompt: str = "Passphrase: ") -> Passphrase:
    """Ask on the terminal (no echo); with `confirm`, ask twice and require the same answer."""
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the passphrase; pass an environment variable name or a file")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise InputError("the two passphrases differ")
    return Passphrase(first)


def resolve_passphrase(*, env: str | None = None, file: Path | None = None, prompt: bool = False,
                       confirm: bool = False) -> Passphrase | None:
    """Return the passphrase from the first source given (env var name, file, prompt), or None."""
    if env is not None:
        return passphrase_from_env(env)
    if file is not None:
        return passphrase_from_file(file)
    if prompt:
        return prompt_passphrase(confirm=confirm)
    return None


def _encode_key_text(raw: bytes, prefix: str) -> str:
    checksum = hashlib.sha256(prefix.encode("ascii") + raw).digest()[:_CHECKSUM_BYTES]
    return prefix + base64.urlsafe_b64encode(raw + checksum).decode("ascii").rstrip("=")


def _decode_key_text(text: str, prefix: str, what: str, *, source: str | None, line: int | None) -> bytes:
    if not text.startswith(prefix):
        raise InputError(f"not an eventlog X25519 {what}: it should start with {prefix}", source=source,
                         line=line)
    body = text[len(prefix):]
    try:
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InputError(f"the X25519 {what} is not valid base64url", source=source, line=line) from None
    raw, checksum = blob[:-_CHECKSUM_BYTES], blob[-_CHECKSUM_BYTES:]
    if len(raw) != 32 or hashlib.sha256(prefix.encode("ascii") + raw).digest()[:_CHECKSUM_BYTES] != checksum:
        raise InputError(f"the X25519 {what} is damaged (wrong length or checksum)", source=source, line=line)
    return raw


def _key_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise InputError(f"cannot read key file: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError("a key file must be ASCII text", source=str(path)) from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _write_private(path: Path, data: bytes) -> None:
    try:
        durable.write_private(path, data)
    except FileExistsError:
        raise InputError("refusing to overwrite an existing file", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot create key file: {exc.strerror}", source=str(path)) from None
