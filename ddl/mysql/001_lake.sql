-- Generated from eventlog/sql/schema.py and projections/tables.py by `python -m projections.ddl --write`; do not edit by hand.
-- Idempotent: creates what is missing, never drops or alters an existing table.

CREATE DATABASE IF NOT EXISTS `lake` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS lake.`AppendLock` (
	name VARCHAR(32) NOT NULL,
	updated_at_utc VARCHAR(27) NOT NULL,
	CONSTRAINT `pk_AppendLock` PRIMARY KEY (name)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS lake.`ExchangeContent` (
	content_sha256 VARCHAR(64) NOT NULL,
	request LONGTEXT NOT NULL,
	response LONGTEXT NOT NULL,
	content_bytes BIGINT NOT NULL,
	first_event_id VARCHAR(64) NOT NULL,
	CONSTRAINT `pk_ExchangeContent` PRIMARY KEY (content_sha256)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS lake.`ExchangeEvent` (
	event_seq BIGINT NOT NULL AUTO_INCREMENT,
	event_id VARCHAR(64) NOT NULL,
	type VARCHAR(16) NOT NULL,
	exchange_id VARCHAR(64),
	exchange_type VARCHAR(32),
	source_system VARCHAR(200),
	entity_type VARCHAR(200),
	natural_key LONGTEXT,
	record_key VARCHAR(64),
	observed_at_utc VARCHAR(27),
	recorded_at_utc VARCHAR(27) NOT NULL,
	origin VARCHAR(100) NOT NULL,
	digest VARCHAR(64) NOT NULL,
	content_sha256 VARCHAR(64),
	schema_version INTEGER,
	response_ref LONGTEXT,
	provenance LONGTEXT,
	tags LONGTEXT,
	redactions_applied LONGTEXT,
	body LONGTEXT,
	log_seq BIGINT,
	log_prev VARCHAR(64),
	CONSTRAINT `pk_ExchangeEvent` PRIMARY KEY (event_seq),
	CONSTRAINT `uq_ExchangeEvent_event_id` UNIQUE (event_id)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX IF NOT EXISTS `ix_ExchangeEvent_content_sha256` ON lake.`ExchangeEvent` (content_sha256);

CREATE TABLE IF NOT EXISTS lake.`ProjectionCheckpoint` (
	projection VARCHAR(200) NOT NULL,
	position BIGINT NOT NULL,
	state_digest VARCHAR(64),
	updated_at_utc VARCHAR(27) NOT NULL,
	CONSTRAINT `pk_ProjectionCheckpoint` PRIMARY KEY (projection)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS lake.`RawExchangeRecord` (
	record_key VARCHAR(64) NOT NULL,
	exchange_id VARCHAR(64) NOT NULL,
	exchange_type VARCHAR(32) NOT NULL,
	source_system VARCHAR(200) NOT NULL,
	entity_type VARCHAR(200) NOT NULL,
	natural_key LONGTEXT,
	observed_at_utc VARCHAR(27) NOT NULL,
	content_sha256 VARCHAR(64) NOT NULL,
	payload_json LONGTEXT NOT NULL,
	schema_version INTEGER NOT NULL,
	created_at_utc VARCHAR(27) NOT NULL,
	updated_at_utc VARCHAR(27) NOT NULL,
	first_observed_at_utc VARCHAR(27) NOT NULL,
	last_observed_at_utc VARCHAR(27) NOT NULL,
	observation_count BIGINT NOT NULL,
	version_count BIGINT NOT NULL,
	event_seq BIGINT NOT NULL,
	CONSTRAINT `pk_RawExchangeRecord` PRIMARY KEY (record_key)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;

CREATE INDEX IF NOT EXISTS `ix_RawExchangeRecord_content_sha256` ON lake.`RawExchangeRecord` (content_sha256);

CREATE INDEX IF NOT EXISTS `ix_RawExchangeRecord_source_system_entity_type` ON lake.`RawExchangeRecord` (source_system, entity_type);

CREATE TABLE IF NOT EXISTS lake.`SyncState` (
	sync_key VARCHAR(200) NOT NULL,
	watermark BIGINT NOT NULL,
	updated_at_utc VARCHAR(27) NOT NULL,
	CONSTRAINT `pk_SyncState` PRIMARY KEY (sync_key)
)ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin;
