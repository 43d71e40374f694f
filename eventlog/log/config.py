"""lake.json: the lake's format version, replica id, database URL and policies."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from eventlog.durable import write_atomic
from eventlog.errors import LakeError
from eventlog.format.canonical import canonical_json
from eventlog.format.envelope import MAX_RECORD_BYTES

LAKE_FORMAT = 1
CONFIG_NAME = "lake.json"
# The SQL side's names, here rather than with SQLAlchemy, so that commands which never touch SQL start without it.
DEFAULT_SCHEMA = "lake"
DIALECT_NAMES = ("sqlite", "postgresql", "mysql", "mssql")
# A replica id travels in every event's `origin` and names checkpoints and watermarks: printable ASCII words only.
ReplicaId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


def new_replica_id() -> str:
    """A fresh replica id (a random UUID), for a new lake."""
    return str(uuid.uuid4())


class SegmentPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the active segment is sealed: whichever limit is reached first (0 disables a limit)."""

    max_bytes: int = 64 * 1024 * 1024
    max_events: int = 100_000
    max_age_seconds: int = 24 * 3600


class ArchivePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Defaults for `eventlog archive`: compression and public-key recipients (secrets never live here)."""

    compression: Literal["zstd", "none"] = "zstd"
    recipients: tuple[str, ...] = ()
    evict: bool = False


class LakeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The contents of lake.json. New fields get defaults, so older files stay readable.

    It holds no secret: `database_url` is kept without its password, which lives in the environment or in the
    private file `credentials_file` names (see eventlog.app.credentials).

    Unknown keys are refused (a misspelt policy must not be ignored), and so is a missing or malformed replica id:
    the lake's identity is never replaced by a new one.
    """

    replica_id: ReplicaId
    format: int = LAKE_FORMAT
    database_url: str | None = None
    credentials_file: str | None = None
    durability: Literal["fsync", "none"] = "fsync"
    lock_timeout_seconds: float = 30.0
    max_record_bytes: int = MAX_RECORD_BYTES
    segment_policy: SegmentPolicy = msgspec.field(default_factory=SegmentPolicy)
    redaction: dict[str, Any] = msgspec.field(default_factory=dict)
    archive: ArchivePolicy = msgspec.field(default_factory=ArchivePolicy)


def default_database_url(root: Path) -> str:
    """The embedded default: a SQLite file inside the lake."""
    return f"sqlite:///{(root / 'lake.db').resolve()}"


def read_config(root: Path) -> LakeConfig:
    """Read and validate <lake>/lake.json."""
    path = root / CONFIG_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LakeError(f"{root} is not a lake: {CONFIG_NAME} is missing (create one with `eventlog init`)") from None
    except IsADirectoryError:
        raise LakeError(f"{path} is a folder where the lake's configuration file belongs") from None
    try:
        config = msgspec.json.decode(raw, type=LakeConfig)
    except msgspec.ValidationError as exc:
        if "replica_id" in str(exc):
            raise LakeError(f"{path} is invalid: {exc}; the lake's replica id is its identity and is never replaced "
                            "(restore lake.json from a backup)") from None
        raise LakeError(f"{path} is invalid: {exc}") from None
    except msgspec.DecodeError as exc:
        raise LakeError(f"{path} is not valid JSON: {exc}") from None
    if config.format > LAKE_FORMAT:
        raise LakeError(f"{path} has format {config.format}; this version reads up to {LAKE_FORMAT}")
    return config


def write_config(root: Path, config: LakeConfig) -> None:
    """Write lake.json atomically (mode 0644: it holds no secret). Raises LakeError for a configuration that
    reading it back would refuse."""
    try:
        msgspec.json.decode(msgspec.json.encode(config), type=LakeConfig)
    except msgspec.ValidationError as exc:
        raise LakeError(f"refusing to write {root / CONFIG_NAME}: {exc}") from None
    write_atomic(root / CONFIG_NAME, canonical_json(msgspec.to_builtins(config)) + b"\n")
