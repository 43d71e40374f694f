-- Generated from eventlog/sql/schema.py and projections/tables.py by `python -m projections.ddl --write`; do not edit by hand.
-- Idempotent: creates what is missing, never drops or alters an existing table.

IF SCHEMA_ID(N'lake') IS NULL EXEC(N'CREATE SCHEMA [lake]')
GO

IF OBJECT_ID(N'lake.[AppendLock]', N'U') IS NULL
CREATE TABLE lake.[AppendLock] (
	name VARCHAR(32) COLLATE Latin1_General_BIN2 NOT NULL,
	updated_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	CONSTRAINT [pk_AppendLock] PRIMARY KEY (name)
)
GO

IF OBJECT_ID(N'lake.[ExchangeContent]', N'U') IS NULL
CREATE TABLE lake.[ExchangeContent] (
	content_sha256 VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	request NVARCHAR(max) NOT NULL,
	response NVARCHAR(max) NOT NULL,
	content_bytes BIGINT NOT NULL,
	first_event_id VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	CONSTRAINT [pk_ExchangeContent] PRIMARY KEY (content_sha256)
)
GO

IF OBJECT_ID(N'lake.[ExchangeEvent]', N'U') IS NULL
CREATE TABLE lake.[ExchangeEvent] (
	event_seq BIGINT NOT NULL IDENTITY,
	event_id VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	type VARCHAR(16) COLLATE Latin1_General_BIN2 NOT NULL,
	exchange_id VARCHAR(64) COLLATE Latin1_General_BIN2 NULL,
	exchange_type VARCHAR(32) COLLATE Latin1_General_BIN2 NULL,
	source_system NVARCHAR(200) NULL,
	entity_type NVARCHAR(200) NULL,
	natural_key NVARCHAR(max) NULL,
	record_key VARCHAR(64) COLLATE Latin1_General_BIN2 NULL,
	observed_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NULL,
	recorded_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	origin NVARCHAR(100) NOT NULL,
	digest VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	content_sha256 VARCHAR(64) COLLATE Latin1_General_BIN2 NULL,
	schema_version INTEGER NULL,
	response_ref NVARCHAR(max) NULL,
	provenance NVARCHAR(max) NULL,
	tags NVARCHAR(max) NULL,
	redactions_applied NVARCHAR(max) NULL,
	body NVARCHAR(max) NULL,
	log_seq BIGINT NULL,
	log_prev VARCHAR(64) COLLATE Latin1_General_BIN2 NULL,
	CONSTRAINT [pk_ExchangeEvent] PRIMARY KEY (event_seq),
	CONSTRAINT [uq_ExchangeEvent_event_id] UNIQUE (event_id)
)
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_ExchangeEvent_content_sha256' AND object_id = OBJECT_ID(N'lake.[ExchangeEvent]'))
CREATE INDEX [ix_ExchangeEvent_content_sha256] ON lake.[ExchangeEvent] (content_sha256)
GO

IF OBJECT_ID(N'lake.[ProjectionCheckpoint]', N'U') IS NULL
CREATE TABLE lake.[ProjectionCheckpoint] (
	projection NVARCHAR(200) NOT NULL,
	position BIGINT NOT NULL,
	state_digest VARCHAR(64) COLLATE Latin1_General_BIN2 NULL,
	updated_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	CONSTRAINT [pk_ProjectionCheckpoint] PRIMARY KEY (projection)
)
GO

IF OBJECT_ID(N'lake.[RawExchangeRecord]', N'U') IS NULL
CREATE TABLE lake.[RawExchangeRecord] (
	record_key VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	exchange_id VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	exchange_type VARCHAR(32) COLLATE Latin1_General_BIN2 NOT NULL,
	source_system NVARCHAR(200) NOT NULL,
	entity_type NVARCHAR(200) NOT NULL,
	natural_key NVARCHAR(max) NULL,
	observed_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	content_sha256 VARCHAR(64) COLLATE Latin1_General_BIN2 NOT NULL,
	payload_json NVARCHAR(max) NOT NULL,
	schema_version INTEGER NOT NULL,
	created_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	updated_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	first_observed_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	last_observed_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	observation_count BIGINT NOT NULL,
	version_count BIGINT NOT NULL,
	event_seq BIGINT NOT NULL,
	CONSTRAINT [pk_RawExchangeRecord] PRIMARY KEY (record_key)
)
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_RawExchangeRecord_content_sha256' AND object_id = OBJECT_ID(N'lake.[RawExchangeRecord]'))
CREATE INDEX [ix_RawExchangeRecord_content_sha256] ON lake.[RawExchangeRecord] (content_sha256)
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_RawExchangeRecord_source_system_entity_type' AND object_id = OBJECT_ID(N'lake.[RawExchangeRecord]'))
CREATE INDEX [ix_RawExchangeRecord_source_system_entity_type] ON lake.[RawExchangeRecord] (source_system, entity_type)
GO

IF OBJECT_ID(N'lake.[SyncState]', N'U') IS NULL
CREATE TABLE lake.[SyncState] (
	sync_key NVARCHAR(200) NOT NULL,
	watermark BIGINT NOT NULL,
	updated_at_utc VARCHAR(27) COLLATE Latin1_General_BIN2 NOT NULL,
	CONSTRAINT [pk_SyncState] PRIMARY KEY (sync_key)
)
GO
