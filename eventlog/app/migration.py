"""Migration from the original tool's SQL table: its RawExchangeRecord rows read into the log.

The original tool kept one table, `lake.RawExchangeRecord` (no schema on SQLite), keyed by exchange_id, with
content_sha256 unique and the whole envelope in payload_json. This module recognises that shape, reads the rows in
exchange_id order, a page at a time (keyset paging, so memory stays bounded and no OFFSET rescans), and appends them
to the log as observed events through the lake's normal append path: redaction and hashing as for any capture, the
hash recomputed; a row whose stored content_sha256 disagrees is reported and kept. A row that does not validate
(a naive timestamp, say) is named by its exchange_id and nothing of the import is written.

The old table is only read: nothing is dropped, altered or renamed. The statement that renames it, so that the new
RawExchangeRecord projection can take its name, is returned for a DBA to run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec
import sqlalchemy as sa

from eventlog.app.credentials import shown
from eventlog.capture.ingest import from_original
from eventlog.errors import InputError, record_number
from eventlog.format.canonical import parse_json
from eventlog.format.envelope import ExchangeRecord, decode_record, json_kind
from eventlog.log.plan import plan_append
from eventlog.log.writer import AppendResult
from eventlog.sql.dialects import dialect_by_name

if TYPE_CHECKING:
    from eventlog.app.lake import Lake
    from eventlog.sql.store import SqlEventStore

__all__ = ["ORIGINAL_TABLE", "RENAMED_TABLE", "OriginalTableResult", "import_original_table", "rename_statement"]

ORIGINAL_TABLE: Final = "RawExchangeRecord"
RENAMED_TABLE: Final = "RawExchangeRecord_original"
PAGE_ROWS: Final = 500
# Columns only this tool's projection has: their presence means the table already has the new shape.
NEW_SHAPE_COLUMNS: Final = frozenset({"record_key", "event_seq"})
ProgressHook = Callable[[int], None]


class OriginalTableResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an import of the original table did, or (dry_run) would do, and the rename statement to run."""

    database: str  # the URL, any password replaced by ***
    table: str
    dry_run: bool
    read: int
    append: AppendResult
    rename_statement: str


def import_original_table(lake: Lake, *, database_url: str | None = None, schema: str | None = None,
                          dry_run: bool = False, progress: ProgressHook | None = None,
                          page_rows: int = PAGE_ROWS) -> OriginalTableResult:
    """Read the original tool's RawExchangeRecord at `database_url` (default: the lake's) into the log.

    One append call, so a bad row means nothing is written; InputError names the row by its exchange_id. Raises
    InputError when the table is missing or already has this tool's shape (nothing to migrate), DatabaseError
    when the database cannot be read. With `dry_run` nothing is written and the counts are the real run's.
    `page_rows` rows are read per query, each page in its own short transaction.
    """
    store = lake.sql_store(database_url=database_url, schema=schema)
    database = shown(database_url or lake.database_url)
    try:
        table = _original_table(store, database=database)
        where = _qualified(table)
        counter = [0]
        records = _read_rows(store, table, where=where, counter=counter, progress=progress, page_rows=page_rows)
        try:
            append = plan_append(lake.log, records) if dry_run else lake.append(records)
        except InputError as exc:
            number = record_number(exc.source)
            if number is None:
                raise
            # The log names the Nth record of its append: the Nth row in exchange_id order.
            raise exc.located(source=_row_source(store, table, where, number)) from None
        return OriginalTableResult(database=database,
                                   table=where, dry_run=dry_run, read=counter[0], append=append,
                                   rename_statement=rename_statement(store.dialect_name, table.schema))
    finally:
        store.dispose()


def rename_statement(dialect_name: str, schema: str | None) -> str:
    """The one statement that renames the original table to RawExchangeRecord_original, in the dialect's words.

    `schema` was validated (a plain identifier), and identifiers are quoted by the dialect's own rules.
    """
    quote = dialect_by_name(dialect_name).identifier_preparer.quote_identifier
    old = ".".join(quote(part) for part in (schema, ORIGINAL_TABLE) if part is not None)
    if dialect_name in ("mysql", "mariadb"):
        new = ".".join(quote(part) for part in (schema, RENAMED_TABLE) if part is not None)
        return f"RENAME TABLE {old} TO {new};"
    if dialect_name == "mssql":  # sp_rename takes the old name qualified and the new one bare
        return f"EXEC sp_rename '{schema + '.' if schema else ''}{ORIGINAL_TABLE}', '{RENAMED_TABLE}';"
    return f"ALTER TABLE {old} RENAME TO {quote(RENAMED_TABLE)};"


def _original_table(store: SqlEventStore, *, database: str) -> sa.TableClause:
    """The original table as a lightweight table clause, after checking its shape."""
    schema = store.tables.schema
    where = f"{schema}.{ORIGINAL_TABLE}" if schema else ORIGINAL_TABLE
    where = f"{where} in {database}"
    with store.begin() as conn:
        inspector = sa.inspect(conn)
        if not inspector.has_table(ORIGINAL_TABLE, schema=schema):
            raise InputError(f"there is no table {where} to migrate from")
        columns = {column["name"] for column in inspector.get_columns(ORIGINAL_TABLE, schema=schema)}
        if columns & NEW_SHAPE_COLUMNS:
            raise InputError(f"{where} already has this tool's shape (a projection with record_key); there is "
                             f"no original table to migrate from")
        primary = inspector.get_pk_constraint(ORIGINAL_TABLE, schema=schema).get("constrained_columns") or []
        # A UNIQUE constraint on some backends, a unique index on others (MariaDB reflects it as both).
        unique = [list(item["column_names"])
                  for item in inspector.get_unique_constraints(ORIGINAL_TABLE, schema=schema)]
        unique += [[str(name) for name in item["column_names"]] for item in inspector.get_indexes(ORIGINAL_TABLE, schema=schema)
                   if item.get("unique")]
        missing = {"exchange_id", "content_sha256", "payload_json"} - columns
        if missing or list(primary) != ["exchange_id"] or ["content_sha256"] not in unique:
            raise InputError(f"{where} does not have the original tool's shape (exchange_id primary key, "
                             f"content_sha256 unique, payload_json)")
    return sa.table(ORIGINAL_TABLE, sa.column("exchange_id"), sa.column("content_sha256"),
                    sa.column("payload_json"), schema=schema)


def _row_source(store: SqlEventStore, table: sa.TableClause, where: str, number: int) -> str:
    """How an error names the `number`th row (from 1) of the table in exchange_id order."""
    query = sa.select(table.c.exchange_id).order_by(table.c.exchange_id).offset(number - 1).limit(1)
    with store.begin() as conn:
        exchange_id = conn.execute(query).scalar()
    return f"{where}, exchange_id {exchange_id}" if exchange_id is not None else f"{where}, row {number}"


def _qualified(table: sa.TableClause) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def _read_rows(store: SqlEventStore, table: sa.TableClause, *, where: str, counter: list[int],
               progress: ProgressHook | None, page_rows: int) -> Iterator[ExchangeRecord]:
    """The table's rows as records, in exchange_id order, one short read per page."""
    c = table.c
    query = sa.select(c.exchange_id, c.content_sha256, c.payload_json).order_by(c.exchange_id).limit(page_rows)
    after: str | None = None
    while True:
        with store.begin() as conn:
            page = conn.execute(query if after is None else query.where(c.exchange_id > after)).all()
        for exchange_id, stored_hash, payload in page:
            counter[0] += 1
            if progress is not None and counter[0] % 1000 == 0:
                progress(counter[0])
            yield _record(str(exchange_id), stored_hash, payload, source=f"{where}, exchange_id {exchange_id}")
        if len(page) < page_rows:
            break
        after = str(page[-1][0])
    if progress is not None:
        progress(counter[0])


def _record(exchange_id: str, stored_hash: Any, payload: Any, *, source: str) -> ExchangeRecord:
    """One row's envelope, with the row's exchange_id and its stored hash as the stated one (checked at append)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload)
    value = parse_json(payload, source=source) if isinstance(payload, str | bytes) else payload
    if not isinstance(value, dict):
        raise InputError(f"payload_json holds a JSON {json_kind(value)}, not an envelope object", source=source)
    from_original(value)
    stated = value.get("exchange_id")
    if stated is not None and stated != exchange_id:
        raise InputError("payload_json names another exchange_id than the row's", source=source,
                         path="$.exchange_id")
    value["exchange_id"] = exchange_id
    value["content_sha256"] = stored_hash
    return decode_record(value, source=source)
