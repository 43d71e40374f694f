"""The projections' SQL tables, added to the event tables' metadata: RawExchangeRecord, ProjectionCheckpoint and the
ExchangeHistory audit view.

They live in the same schema as ExchangeEvent and ExchangeContent (`eventlog.sql.schema`); `attach` adds them to a
store's metadata and views, so that `SqlEventStore.create_schema` creates them with the rest. Timestamps are the same
fixed-width UTC text as the event tables'.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from eventlog.format.events import OBSERVATION_TYPES
from eventlog.sql.dialects import JsonDocument, ascii_key, long_text, name_text, table_options
from eventlog.sql.schema import UTC_TEXT_LENGTH, LakeTables
from eventlog.sql.store import SqlEventStore

__all__ = ["HISTORY_VIEW", "ProjectionTables", "attach", "history_select", "projection_tables"]

HISTORY_VIEW = "ExchangeHistory"


@dataclass(frozen=True, slots=True)
class ProjectionTables:
    """The projection's tables in one schema, beside the event tables they are built from."""

    core: LakeTables
    record: sa.Table
    checkpoint: sa.Table

    @property
    def schema(self) -> str | None:
        """The schema the tables live in (None on SQLite)."""
        return self.core.schema


def projection_tables(core: LakeTables) -> ProjectionTables:
    """The projection's tables in `core`'s metadata, added the first time (later calls return the same tables)."""
    metadata = core.metadata
    options = table_options()
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
        keep_existing=True,
    )
    checkpoint = sa.Table(
        "ProjectionCheckpoint", metadata,
        sa.Column("projection", name_text(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("state_digest", ascii_key(64)),
        sa.Column("updated_at_utc", ascii_key(UTC_TEXT_LENGTH), nullable=False),
        **options,
        keep_existing=True,
    )
    return ProjectionTables(core=core, record=record, checkpoint=checkpoint)


def history_select(core: LakeTables) -> sa.Select[tuple[object, ...]]:
    """The query behind the ExchangeHistory view: every observation joined to the content it saw."""
    event, content = core.event.alias("e"), core.content.alias("c")
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


def attach(store: SqlEventStore) -> ProjectionTables:
    """Add the projection's tables and the audit view to `store`, so that its `create_schema` creates them.

    Idempotent; returns the tables.
    """
    tables = projection_tables(store.tables)
    store.views.setdefault(HISTORY_VIEW, history_select(store.tables))
    return tables
