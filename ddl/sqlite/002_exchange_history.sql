-- Generated from eventlog/sql/schema.py and projections/tables.py by `python -m projections.ddl --write`; do not edit by hand.
-- Idempotent: creates what is missing, never drops or alters an existing table.

CREATE VIEW IF NOT EXISTS "ExchangeHistory" AS
SELECT e.event_seq, e.event_id, e.type, e.exchange_id, e.exchange_type, e.source_system, e.entity_type, e.natural_key, e.record_key, e.observed_at_utc, e.recorded_at_utc, e.origin, e.content_sha256, e.schema_version, e.provenance, e.tags, e.redactions_applied, e.response_ref, c.request, c.response, c.content_bytes
FROM "ExchangeEvent" AS e LEFT OUTER JOIN "ExchangeContent" AS c ON c.content_sha256 = e.content_sha256
WHERE e.type IN ('observed', 'revisited');
