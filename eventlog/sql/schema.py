"""The SQL schema of the lake as SQLAlchemy Core metadata, for any schema name.

Tables (schema `lake` by default; SQLite has no schema prefix):

- ExchangeEvent: one row per event, in the SQL side's own arrival order `event_seq`; the envelope's scalar
  columns, JSON columns for provenance/tags/redactions/response_ref, and `body` for what the columns do not carry
  (the whole body of a `resolved` event). Payloads live in ExchangeContent.
- ExchangeContent: one row per content_sha256 with the canonical JSON of request and response.
- SyncState: watermarks per replica pair, written in the caller's transaction.
- AppendLock: one row that every append updates first, so concurrent appends serialize and commit in
  `event_seq` order (a reader's `event_seq` watermark never skips a row that commits later).

The projections' tables (RawExchangeRecord, ProjectionCheckpoint, the ExchangeHistory view) belong to
`projections.tables`, which adds them to the same metadata.

Timestamps are fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as `format_utc` writes them) in
binary-collated columns: text order is time order and the round trip is exact on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from eventlog.log.config import DEFAULT_SCHEMA
from eventlog.sql.dialects import (
    JsonDocument,
    ascii_key,
    check_schema_name,
    identity_type,
    long_text,
    name_text,
    table_options,
)

UTC_TEXT_LENGTH = 27

APPEND_LOCK_NAME = "events"

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}


@dataclass(frozen=True, slots=True)
class LakeTables:
    """The event tables of one schema, and the metadata that projections add their tables to."""

    metadata: sa.MetaData
    event: sa.Table
    content: sa.Table
    sync_state: sa.Table
    append_lock: sa.Table

    @property
    def schema(self) -> str | None:
        """The schema the tables live in (None on SQLite)."""
        return self.metadata.schema


def build_tables(schema: str | None = DEFAULT_SCHEMA) -> LakeTables:
    """Build the metadata in `schema` (None: no schema, for SQLite).

    Raises InputError for a schema name that is not 1-63 ASCII letters, digits or underscores.
    """
    if schema is not None:
        check_schema_name(schema)
    metadata = sa.MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    options = table_options()

    event = sa.Table(
        "ExchangeEvent", metadata,
        sa.Column("event_seq", identity_type(), sa.Identity(), primary_key=True),
        sa.Column("event_id", ascii_key(64), nullable=False, unique=True),
        sa.Column("type", ascii_key(16), nullable=False),
        sa.Column("exchange_id", ascii_key(64)),
        sa.Column("exchange_type", ascii_key(32)),
        sa.Column("source_system", name_text(200)),
        sa.Column("entity_type", name_text(200)),
        sa.Column("natural_key", long_text()),
        sa.Column("record_key", ascii_key(64)),
        sa.Column("observed_at_utc", ascii_key(UTC_TEXT_LENGTH)),
        sa.Column("recorded_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("origin", name_text(100), nullable=False),
        sa.Column("digest", ascii_key(64), nullable=False),
        sa.Column("content_sha256", ascii_key(64), index=True),
        sa.Column("schema_version", sa.Integer),
        sa.Column("response_ref", JsonDocument()),
        sa.Column("provenance", JsonDocument()),
        sa.Column("tags", JsonDocument()),
        sa.Column("redactions_applied", JsonDocument()),
        sa.Column("body", JsonDocument()),
        sa.Column("log_seq", sa.BigInteger),
        sa.Column("log_prev", ascii_key(64)),
        sqlite_autoincrement=True,
        **options,
    )
    content = sa.Table(
        "ExchangeContent", metadata,
        sa.Column("content_sha256", ascii_key(64), primary_key=True),
        sa.Column("request", JsonDocument(), nullable=False),
        sa.Column("response", JsonDocument(), nullable=False),
        sa.Column("content_bytes", sa.BigInteger, nullable=False),
        sa.Column("first_event_id", ascii_key(64), nullable=False),
        **options,
    )
    sync_state = sa.Table(
        "SyncState", metadata,
        sa.Column("sync_key", name_text(200), primary_key=True),
        sa.Column("watermark", sa.BigInteger, nullable=False),
        sa.Column("updated_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        **options,
    )
    append_lock = sa.Table(
        "AppendLock", metadata,
        sa.Column("name", ascii_key(32), primary_key=True),
        sa.Column("updated_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        **options,
    )
    return LakeTables(metadata=metadata, event=event, content=content, sync_state=sync_state,
                      append_lock=append_lock)
