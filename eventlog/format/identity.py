"""The keys that identify a record across the lake, defined once.

- `exchange_key`: the log index's key of a natural key (source_system, entity_type, natural_key), or None.
- `record_key`: the key of a RawExchangeRecord row, a SHA-256 so it fits every backend's index length limit.
"""

from __future__ import annotations

import hashlib

from eventlog.format.canonical import canonical_json

__all__ = ["exchange_key", "record_key", "record_key_of_encoded"]


def exchange_key(source_system: str, entity_type: str, natural_key: str | None) -> str | None:
    """The index's key for a natural key: one string, unambiguous since the parts are JSON-encoded."""
    if natural_key is None:
        return None
    return "\x1f".join((source_system, entity_type, natural_key))


def record_key(source_system: str, entity_type: str, natural_key: str | None, content_sha256: str) -> str:
    """Key of a RawExchangeRecord row: SHA-256 (hex) of the canonical JSON of what identifies the record.

    With a natural key: [source_system, entity_type, natural_key]; without one, a row per content:
    [source_system, entity_type, null, content_sha256]. A fixed-width hash rather than the raw columns, so the
    unique key fits every backend's index length limit (MySQL 3072 bytes, SQL Server 1700) whatever the key's length.
    """
    parts: list[str | None] = [source_system, entity_type, natural_key]
    if natural_key is None:
        parts.append(content_sha256)
    return record_key_of_encoded([canonical_json(part) for part in parts])


def record_key_of_encoded(parts: list[bytes]) -> str:
    """`record_key` from the canonical JSON of its parts, for callers that have them encoded already."""
    return hashlib.sha256(b"[" + b",".join(parts) + b"]").hexdigest()
