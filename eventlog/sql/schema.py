"""The SQL schema of the lake as SQLAlchemy Core metadata, for any schema name.

Tables (schema `lake` by default; SQLite has no schema prefix):

- ExchangeEvent: one row per event, in the SQL side's own arrival order `event_seq`; the envelope's scalar
  columns, JSON columns for provenance/tags/redactions/response_ref, and `body` for what the columns do not carry
  (the whole body of a `resolved` event). Payloads live in ExchangeContent.
- ExchangeContent: one row per content_sha256 with the canonical JSON of request and response.
- RawExchangeRecord: the projection users query, one row per `record_key` (see `eventlog.format.identity`).
- ProjectionCheckpoint, SyncState: positions and watermarks, written in the caller's transaction.
- AppendLock: one row that every append updates first, so concurrent appends serialize and commit in
  `event_seq` order (a reader's `event_seq` watermark never skips a row that commits later).
- The view ExchangeHistory: every observation with its provenance and the content it saw.

Timestamps are fixed-width UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as `format_utc` writes them) in
binary-collated columns: text order is time order and the round trip is exact on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from eventlog.format.events import OBSERVATION_TYPES
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
    """The tables and the audit view query of one schema."""

    metadata: sa.MetaData
    event: sa.Table
    content: sa.Table
    record: sa.Table
    checkpoint: sa.Table
    sync_state: sa.Table
    append_lock: sa.Table
    history_name: str

    @property
    def schema(self) -> str | None:
        """The schema the tables live in (None on SQLite)."""
        return self.metadata.schema

    def history_select(self) -> sa.Select[tuple[object, ...]]:
        """The query behind the ExchangeHistory view: observations joined to the content they saw."""
        event, content = self.event.alias("e"), self.content.alias("c")
        return (
            sa.select(
                event.c.event_seq, event.c.event_id, event.c.type, event.c.exchange_id, event.c.exchange_type,
                event.c.source_system, event.c.entity_type, event.c.natural_key, event.c.record_key,
                event.c.observed_at_utc, event.c.recorded_at_utc, event.c.origin, event.c.content_sha256,
                event.c.schema_version, event.c.provenance, event.c.tags, event.c.redactions_applied,
                event.c.response_ref, content.c.request, content.c.response, content.c.content_bytes,
            )
            .select_from(event.outerjoin(content, content.c.content_sha256 == event.c.content_sha256))
            .where(event.c.type.in_(OBSERVATION_TYPES))
        )


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
    record = sa.Table(
        "RawExchangeRecord", metadata,
        sa.Column("record_key", ascii_key(64), primary_key=True),
        sa.Column("exchange_id", ascii_key(64), nullable=False),
        sa.Column("exchange_type", ascii_key(32), nullable=False),
        sa.Column("source_system", name_text(200), nullable=False),
        sa.Column("entity_type", name_text(200), nullable=False),
        sa.Column("natural_key", long_text()),
        sa.Column("observed_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("content_sha256", ascii_key(64), nullable=False, index=True),
        sa.Column("payload_json", JsonDocument(), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("created_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("updated_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("first_observed_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("last_observed_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        sa.Column("observation_count", sa.BigInteger, nullable=False),
        sa.Column("version_count", sa.BigInteger, nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Index(None, "source_system", "entity_type"),
        **options,
    )
    checkpoint = sa.Table(
        "ProjectionCheckpoint", metadata,
        sa.Column("projection", name_text(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("state_digest", ascii_key(64)),
        sa.Column("updated_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
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
    return LakeTables(metadata=metadata, event=event, content=content, record=record, checkpoint=checkpoint,
                      sync_state=sync_state, append_lock=append_lock, history_name="ExchangeHistory")
