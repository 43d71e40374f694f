"""The lake's database password, kept out of lake.json: from the environment or from a private credentials file.

lake.json keeps the database URL without its password. When a URL carries no password, the password comes from
EVENTLOG_DATABASE_PASSWORD, else from the credentials file (lake.json's `credentials_file`, by default
<lake>/credentials.json): a JSON object that maps a database URL without its password to the password, created
with mode 0600. A password is given only to the URL it was stored for, so a URL edited to point elsewhere does not
receive it. A URL that still carries its own password (the environment's, or an older lake.json) keeps it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from eventlog.durable import fsync_dir, write_private
from eventlog.errors import InputError, LakeError
from eventlog.format.canonical import canonical_json

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

CREDENTIALS_NAME = "credentials.json"
PASSWORD_ENV = "EVENTLOG_DATABASE_PASSWORD"
CREDENTIALS_FORMAT = 1


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """The contents of a credentials file: database passwords by the URL they belong to (without its password)."""

    format: int = CREDENTIALS_FORMAT
    database_passwords: dict[str, str] = msgspec.field(default_factory=dict)


def _parse(url: str) -> URL:
    # Imported here: SQLAlchemy is paid for only by what talks to a database.
    import sqlalchemy as sa

    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError("the database URL is not a valid SQLAlchemy URL (dialect+driver://...)") from None


def split_password(url: str) -> tuple[str, str | None]:
    """The URL without its password (normalised, as lake.json and the credentials file keep it) and the password.

    Raises InputError for a string that is not a SQLAlchemy URL (the message never repeats it).
    """
    parsed = _parse(url)
    password = parsed.password
    # URL.set() reads None as "unchanged": replace the field of the named tuple instead.
    return parsed._replace(password=None).render_as_string(hide_password=False), (str(password) if password else None)


def read_credentials(path: Path) -> Credentials:
    """Read a credentials file; a missing file holds nothing. Raises LakeError for an unreadable or invalid one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Credentials()
    except OSError as exc:
        raise LakeError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    try:
        credentials = msgspec.json.decode(raw, type=Credentials)
    except msgspec.DecodeError:
        # msgspec's message may quote the text around the error, which is a password: name the file only.
        raise LakeError(f"the credentials file {path} is not a JSON object of the documented form "
                        "({\"format\": 1, \"database_passwords\": {URL: password}})") from None
    if credentials.format > CREDENTIALS_FORMAT:
        raise LakeError(f"the credentials file {path} has format {credentials.format}; this version reads up to "
                        f"{CREDENTIALS_FORMAT}")
    return credentials


def store_password(path: Path, url: str, password: str) -> None:
    """Keep `password` for `url` (without its password) in the credentials file, created or replaced with mode 0600.

    The file is written whole to a private temp file and renamed, so it is never readable by others, not even
    for a moment, and a crash leaves the old file or the new one.
    """
    existing = read_credentials(path)
    document = Credentials(database_passwords={**existing.database_passwords, url: password})
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    write_private(temp, canonical_json(msgspec.to_builtins(document)) + b"\n")
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def with_password(url: str, *, credentials_path: Path, environ: Mapping[str, str] | None = None) -> str:
    """`url` with the password it should connect with: its own, else EVENTLOG_DATABASE_PASSWORD, else the file's.

    A URL without a host (SQLite) is returned as it is; so is one for which no password is known.
    """
    environ = os.environ if environ is None else environ
    if "@" not in url and not environ.get(PASSWORD_ENV) and not credentials_path.exists():
        return url  # nothing to add, and no need to load SQLAlchemy to find that out
    parsed = _parse(url)
    if parsed.password or not parsed.host:
        return url
    password = environ.get(PASSWORD_ENV) or read_credentials(credentials_path).database_passwords.get(
        parsed.render_as_string(hide_password=False))
    if not password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def shown(url: str) -> str:
    """`url` fit to print: its password, if any, replaced by ***."""
    return _parse(url).render_as_string(hide_password=True) if "@" in url else url


def credential_warnings(*, config_url: str | None, config_path: Path, credentials_path: Path) -> list[str]:
    """One sentence per secret kept where it should not be: a password in lake.json, a credentials file others read."""
    warnings = []
    if config_url is not None and "@" in config_url:
        try:
            _, password = split_password(config_url)
        except InputError:
            password = None
        if password:
            warnings.append(f"{config_path} holds the database password in database_url; remove it from the URL and "
                            f"set {PASSWORD_ENV} or keep it in {credentials_path} (mode 0600) instead")
    try:
        mode = credentials_path.stat().st_mode
    except FileNotFoundError:
        return warnings
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"the credentials file {credentials_path} can be read by others (mode "
                        f"{stat.S_IMODE(mode):04o}); make it private with chmod 600")
    return warnings
