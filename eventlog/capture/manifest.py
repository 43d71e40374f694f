"""Dataset manifests in the original tool's format: what a dataset is, where its projection lives, its policies.

The format is the original tool's, field by field (docs/file-formats.md#dataset-manifests): dataset_name,
description, owner, exchange_type, source_system, entity_type, sql_target, sync_policy, redaction_policy,
encryption_policy, created_at, updated_at, version. Manifests written by earlier releases of this tool (`name`,
`source`, `entity`, `type`, `schema`, `table`, `redaction`, `created_at_utc`, `format`) read unchanged; they are
mapped onto the same fields. SQL identifiers are validated here, so nothing from a manifest reaches SQL text.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from eventlog.durable import write_atomic
from eventlog.errors import InputError, ManifestError
from eventlog.format.canonical import parse_json
from eventlog.format.envelope import EXCHANGE_TYPES, ExchangeType, format_utc
from eventlog.redaction.redactor import RedactionPolicy, Redactor

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "DatasetManifest",
    "EncryptionPolicy",
    "ManifestRedaction",
    "SqlTarget",
    "SyncPolicy",
    "manifest_bytes",
    "manifest_redaction",
    "manifest_redactor",
    "new_manifest",
    "parse_manifest",
    "read_manifest",
    "validate_dataset_name",
    "validate_identifier",
    "write_new_manifest",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_KEY_ENV = "SNAPSHOT_ENCRYPTION_KEY"
ALGORITHMS = ("aes-256-gcm",)

Direction = Literal["bidirectional", "json_to_sql", "sql_to_json"]
Strategy = Literal["prefer_newest", "prefer_sql", "prefer_json", "fail"]
KeySource = Literal["env", "file", "prompt"]

# Field names of this tool's earlier manifests, and where each one lives now.
_TOP_ALIASES = {"name": "dataset_name", "source": "source_system", "entity": "entity_type", "type": "exchange_type",
                "created_at_utc": "created_at", "format": "version"}
_TARGET_ALIASES = ("schema", "table")


class SqlTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where the dataset's SQL projection lives; every name is a validated identifier."""

    schema: str = "lake"
    table: str = "RawExchangeRecord"
    natural_key_column: str | None = None
    hash_column: str = "content_sha256"


class SyncPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults of `sync` for the dataset: its direction and its conflict strategy."""

    direction_default: Direction = "bidirectional"
    conflict_strategy: Strategy = "prefer_newest"


class ManifestRedaction(msgspec.Struct, frozen=True, kw_only=True):
    """The original tool's redaction policy: header names and regular expressions added to the lake's rules.

    A manifest can only add to redaction: `enabled: false` turns nothing off, and the names and patterns it
    lists still apply, because a name written into a manifest says that it is sensitive.
    """

    enabled: bool = False
    patterns: tuple[str, ...] = ()
    headers_to_redact: tuple[str, ...] = ()


class EncryptionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Where `pack --encrypt` takes its passphrase: an environment variable, a file, or the terminal."""

    enabled: bool = False
    algorithm: str = "aes-256-gcm"
    key_source: KeySource = "env"
    key_env_var: str = DEFAULT_KEY_ENV
    key_file_path: str | None = None


class DatasetManifest(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset: its identity, its SQL location, its sync defaults and its redaction and encryption policies.

    Field order is the original tool's, so a manifest written here reads the same there. `redaction` holds
    additions in this tool's own policy form (`names`, `patterns`, `allow`, `marker`), as earlier releases wrote.
    """

    dataset_name: str
    description: str = ""
    owner: str = ""
    exchange_type: ExchangeType = "generic"
    source_system: str
    entity_type: str
    sql_target: SqlTarget = msgspec.field(default_factory=SqlTarget)
    sync_policy: SyncPolicy = msgspec.field(default_factory=SyncPolicy)
    redaction_policy: ManifestRedaction = msgspec.field(default_factory=ManifestRedaction)
    encryption_policy: EncryptionPolicy = msgspec.field(default_factory=EncryptionPolicy)
    created_at: str | None = None
    updated_at: str | None = None
    version: int = MANIFEST_VERSION
    redaction: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The dataset's name: the folder name of its pack under snapshots/."""
        return self.dataset_name


def validate_identifier(value: str, *, what: str, source: str | None = None, path: str | None = None) -> str:
    """Refuse any SQL identifier but letters, digits and underscore (nothing from input reaches SQL text)."""
    if not IDENTIFIER.match(value):
        raise ManifestError(f"{what} {value!r} may contain only letters, digits and underscore, "
                            f"and must not start with a digit", source=source, path=path)
    return value


def validate_dataset_name(value: str, *, source: str | None = None, path: str | None = "$.dataset_name") -> str:
    """Refuse a dataset name that is not one plain folder name (it names snapshots/<name>/)."""
    if (not value.strip() or value in (".", "..") or value.startswith(".") or any(c in value for c in "/\\:\x00")
            or len(value.encode()) > 200):
        raise ManifestError(f"dataset name {value!r} must be one plain folder name: not empty, no '/', '\\' or ':', "
                            "not starting with '.'", source=source, path=path)
    return value


def _upgrade(value: dict[str, Any]) -> dict[str, Any]:
    """Map the field names of this tool's earlier manifests onto the original tool's."""
    value = dict(value)
    for old, new in _TOP_ALIASES.items():
        if old in value and new not in value:
            value[new] = value.pop(old)
    target = value.get("sql_target")
    if any(key in value for key in _TARGET_ALIASES) and (target is None or isinstance(target, dict)):
        target = dict(target or {})
        for key in _TARGET_ALIASES:
            if key in value:
                target.setdefault(key, value.pop(key))
        value["sql_target"] = target
    return value


def _check_time(text: str | None, *, source: str, path: str) -> None:
    if text is None:
        return
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ManifestError(f"{text!r} is not an ISO 8601 time", source=source, path=path) from None
    if moment.tzinfo is None:
        raise ManifestError(f"{text!r} has no UTC offset; write it with Z or +00:00", source=source, path=path)


def read_manifest(path: Path) -> DatasetManifest:
    """Read and validate a manifest file; errors name the file and the JSON path.

    Raises ManifestError for a missing or unreadable file, a wrong type, an unknown strategy or direction, a
    dataset name that is not a folder name, an SQL name that is not an identifier, an unsupported encryption
    algorithm, a bad redaction pattern or a time without offset.
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError("no such manifest file", source=source) from None
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc.strerror}", source=source) from None
    return parse_manifest(raw, source=source)


def parse_manifest(raw: bytes, *, source: str) -> DatasetManifest:
    """Validate a manifest's bytes (see read_manifest); errors name `source` and the JSON path."""
    value = parse_json(raw, source=source)
    if not isinstance(value, dict):
        raise ManifestError("a manifest must be a JSON object", source=source, path="$")
    upgraded = _upgrade(value)
    # An error in a field an earlier release wrote elsewhere names the path the file has.
    moved = {f"$.{new}": f"$.{old}" for old, new in _TOP_ALIASES.items() if old in value and new not in value}
    moved.update({f"$.sql_target.{key}": f"$.{key}" for key in _TARGET_ALIASES if key in value})
    try:
        try:
            manifest = msgspec.convert(upgraded, DatasetManifest)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).rpartition(" - at `")
            raise ManifestError(message or str(exc), source=source, path=where.rstrip("`") or None) from None
        _validate(manifest, source=source)
    except ManifestError as exc:
        if exc.path in moved:
            raise ManifestError(exc.reason, source=source, path=moved[exc.path]) from None
        raise
    return manifest


def _validate(manifest: DatasetManifest, *, source: str) -> None:
    validate_dataset_name(manifest.dataset_name, source=source)
    for field, what in (("source_system", "source system"), ("entity_type", "entity type")):
        if not getattr(manifest, field).strip():
            raise ManifestError(f"the {what} must not be empty", source=source, path=f"$.{field}")
    target = manifest.sql_target
    for field in ("schema", "table", "natural_key_column", "hash_column"):
        name = getattr(target, field)
        if name is not None:
            validate_identifier(name, what=field.replace("_", " "), source=source, path=f"$.sql_target.{field}")
    encryption = manifest.encryption_policy
    if encryption.algorithm.lower() not in ALGORITHMS:
        raise ManifestError(f"encryption algorithm {encryption.algorithm!r} is not supported; use "
                            f"{', '.join(ALGORITHMS)}", source=source, path="$.encryption_policy.algorithm")
    if encryption.key_source == "file" and not encryption.key_file_path:
        raise ManifestError("key_source 'file' needs key_file_path", source=source,
                            path="$.encryption_policy.key_file_path")
    if encryption.key_source == "env" and not encryption.key_env_var:
        raise ManifestError("key_source 'env' needs key_env_var", source=source,
                            path="$.encryption_policy.key_env_var")
    _check_time(manifest.created_at, source=source, path="$.created_at")
    _check_time(manifest.updated_at, source=source, path="$.updated_at")
    manifest_redaction(manifest, source=source)


def manifest_redaction(manifest: DatasetManifest, *, source: str) -> RedactionPolicy | None:
    """The manifest's additions to the lake's redaction policy, or None when it adds nothing.

    `redaction_policy.headers_to_redact` become sensitive names (matched like the lake's own names, so
    ``x-tenant-id`` also catches ``X-Tenant-Id``), `redaction_policy.patterns` regular expressions matched
    without regard to case, as the original tool compiled them; `redaction` is this tool's own policy form.
    Raises ManifestError naming the JSON path of a bad name or pattern.
    """
    policy = RedactionPolicy()
    if manifest.redaction:
        policy = RedactionPolicy.from_mapping(manifest.redaction, source=source, at="$.redaction")
    extra = manifest.redaction_policy
    for i, text in enumerate(extra.patterns):
        try:
            re.compile(text)
        except re.error as exc:
            raise ManifestError(f"invalid regular expression {text!r}: {exc}", source=source,
                                path=f"$.redaction_policy.patterns[{i}]") from None
    if extra.headers_to_redact or extra.patterns:
        try:
            added = RedactionPolicy.from_mapping(
                {"names": list(extra.headers_to_redact), "patterns": [f"(?i:{text})" for text in extra.patterns]},
                source=source, at="$.redaction_policy")
        except InputError as exc:
            where = (exc.path or "").replace(".names", ".headers_to_redact")
            raise ManifestError(exc.reason, source=source, path=where or None) from None
        policy = policy.merged(added)
    return None if policy == RedactionPolicy() else policy


def manifest_redactor(manifest: DatasetManifest, *, source: str) -> Redactor | None:
    """The redactor for a manifest's additions (the lake's built-in rules included), or None when it adds nothing."""
    policy = manifest_redaction(manifest, source=source)
    return None if policy is None else Redactor(policy)


def new_manifest(*, name: str, source_system: str, entity_type: str, exchange_type: str = "generic",
                 description: str | None = None, owner: str | None = None, now: datetime) -> DatasetManifest:
    """A manifest as `eventlog init --name ... --out` writes it. Raises InputError for an empty or unusable value."""
    if exchange_type not in EXCHANGE_TYPES:
        raise InputError(f"exchange type {exchange_type!r} is not one of {', '.join(EXCHANGE_TYPES)}")
    for what, value in (("name", name), ("source", source_system), ("entity", entity_type)):
        if not value.strip():
            raise InputError(f"the dataset {what} must not be empty")
    try:
        validate_dataset_name(name, path=None)
    except ManifestError as exc:
        raise InputError(f"--name: {exc.reason}") from None
    stamp = format_utc(now)
    return DatasetManifest(dataset_name=name, source_system=source_system, entity_type=entity_type,
                           exchange_type=exchange_type,  # type: ignore[arg-type]
                           description=description or "", owner=owner or "", created_at=stamp, updated_at=stamp)


def manifest_bytes(manifest: DatasetManifest) -> bytes:
    """A manifest file's bytes: indented JSON in the original tool's field order; `redaction` only when set."""
    value = msgspec.to_builtins(manifest)
    if not manifest.redaction:
        del value["redaction"]
    return msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"


def write_new_manifest(folder: Path, manifest: DatasetManifest, *, force: bool = False) -> Path:
    """Write `folder`/<dataset_name>/manifest.json (folders made as needed) and return its path.

    Raises InputError when the manifest exists (unless `force`), when `folder` or the dataset's folder is a
    file, or when the folders cannot be made or written; nothing is left half-written.
    """
    target = folder / manifest.dataset_name
    path = target / MANIFEST_NAME
    for place in (folder, target):
        if place.exists() and not place.is_dir():
            raise InputError("exists and is not a folder", source=str(place))
    if path.is_dir():
        raise InputError("is a folder, not a manifest file", source=str(path))
    if path.exists() and not force:
        raise InputError("already exists; pass --force to overwrite it", source=str(path))
    try:
        target.mkdir(parents=True, exist_ok=True)
        write_atomic(path, manifest_bytes(manifest))
    except OSError as exc:
        raise InputError(f"cannot write the manifest: {exc.strerror or exc}", source=str(path)) from None
    return path
