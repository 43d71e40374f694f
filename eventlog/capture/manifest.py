"""Dataset manifests: what a dataset is (source, entity, type), where its SQL projection lives, its policies.

The original tool's manifests (written by its `init --name --source --entity ...`) read unchanged: its field names
`source` and `entity` are accepted beside `source_system` and `entity_type`.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from eventlog.errors import InputError, ManifestError
from eventlog.format.canonical import parse_json
from eventlog.format.envelope import EXCHANGE_TYPES, ExchangeType, format_utc
from eventlog.redaction.redactor import RedactionPolicy, Redactor

MANIFEST_FORMAT = 1
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ALIASES = {"source": "source_system", "entity": "entity_type", "type": "exchange_type"}


class DatasetManifest(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset: its identity, its SQL location and its redaction additions."""

    name: str
    source_system: str
    entity_type: str
    exchange_type: ExchangeType = "generic"
    description: str | None = None
    owner: str | None = None
    schema: str = "lake"
    table: str = "RawExchangeRecord"
    redaction: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at_utc: str | None = None
    format: int = MANIFEST_FORMAT


def validate_identifier(value: str, *, what: str, source: str | None = None, path: str | None = None) -> str:
    """Refuse any SQL identifier but letters, digits and underscore (nothing from input reaches SQL text)."""
    if not IDENTIFIER.match(value):
        raise ManifestError(f"{what} {value!r} may contain only letters, digits and underscore, "
                            f"and must not start with a digit", source=source, path=path)
    return value


def read_manifest(path: Path) -> DatasetManifest:
    """Read and validate a manifest file; errors name the file and the JSON path."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest: {exc.strerror}", source=source) from None
    value = parse_json(raw, source=source)
    if not isinstance(value, dict):
        raise ManifestError("a manifest must be a JSON object", source=source, path="$")
    for old, new in _ALIASES.items():
        if old in value and new not in value:
            value[new] = value.pop(old)
    try:
        manifest = msgspec.convert(value, DatasetManifest)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        raise ManifestError(message or str(exc), source=source, path=where.rstrip("`") or None) from None
    validate_identifier(manifest.schema, what="schema", source=source, path="$.schema")
    validate_identifier(manifest.table, what="table", source=source, path="$.table")
    RedactionPolicy.from_mapping(manifest.redaction, source=source, at="$.redaction")
    return manifest


def manifest_redactor(manifest: DatasetManifest, *, source: str) -> Redactor | None:
    """The redactor for a manifest's additions to the lake's policy, or None when it adds nothing."""
    if not manifest.redaction:
        return None
    return Redactor(RedactionPolicy.from_mapping(manifest.redaction, source=source, at="$.redaction"))


def new_manifest(*, name: str, source_system: str, entity_type: str, exchange_type: str = "generic",
                 description: str | None = None, owner: str | None = None, now: datetime) -> DatasetManifest:
    """A manifest as `eventlog init --name ... --out` writes it."""
    if exchange_type not in EXCHANGE_TYPES:
        raise InputError(f"exchange type {exchange_type!r} is not one of {', '.join(EXCHANGE_TYPES)}")
    for what, value in (("name", name), ("source", source_system), ("entity", entity_type)):
        if not value.strip():
            raise InputError(f"the dataset {what} must not be empty")
    return DatasetManifest(name=name, source_system=source_system, entity_type=entity_type,
                           exchange_type=exchange_type,  # type: ignore[arg-type]
                           description=description, owner=owner, created_at_utc=format_utc(now))


def manifest_bytes(manifest: DatasetManifest) -> bytes:
    """A manifest file's bytes: indented JSON for people, keys in a stable order."""
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
