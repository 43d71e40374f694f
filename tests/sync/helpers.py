"""Lakes, a shared database and the digests that say whether they agree."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from eventlog import Lake
from eventlog.sql.store import SqlEventStore
from eventlog.sync import SyncResult
from projections import PROJECTION, read_checkpoint, reproject
from projections.tables import attach
from tests.factories import BASE_TIME

RECORDED = datetime(2024, 6, 1, 8, 0, tzinfo=BASE_TIME.tzinfo)
NOW = "2024-07-01T00:00:00.000000Z"


def lake_digest(lake: Lake, folder: Path) -> str:
    """The state digest of RawExchangeRecord projected from the lake's log alone, in a scratch SQLite file."""
    path = folder / f"scratch-{lake.config.replica_id}-{os.getpid()}.db"
    path.unlink(missing_ok=True)
    with SqlEventStore(f"sqlite:///{path}") as store:
        digest = reproject(lake.log, store, now=NOW, rebuild=True).state_digest
    path.unlink()
    return digest


def database_digest(url: str, schema: str) -> str | None:
    """The state digest of the database's RawExchangeRecord, from its checkpoint (None before any)."""
    with SqlEventStore(url, schema=schema) as store, store.engine.connect() as conn:
        tables = attach(store)
        if not sa.inspect(conn).has_table(tables.checkpoint.name, schema=tables.schema):
            return None
        checkpoint = read_checkpoint(conn, tables, PROJECTION)
    return None if checkpoint is None else checkpoint.state_digest


def row_counts(url: str, schema: str) -> dict[str, int]:
    """Rows per lake table (an absent table counts as none)."""
    counts: dict[str, int] = {}
    with SqlEventStore(url, schema=schema) as store, store.engine.connect() as conn:
        tables = attach(store)
        present = set(sa.inspect(conn).get_table_names(schema=tables.schema))
        for table in store.tables.metadata.tables.values():
            counts[table.name] = (conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                                  if table.name in present else 0)
    return counts


def event_ids(url: str, schema: str) -> list[str]:
    """Every event id in the database's event table, in event_seq order."""
    with SqlEventStore(url, schema=schema) as store:
        return [event.event_id for _, event in store.events()]


def folder_digest(root: Path) -> str:
    """SHA-256 over every file's path and bytes under `root`, but SQLite's shared-memory files (-shm): a reader
    of a WAL database writes its read marks there, which are no data."""
    total = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith("-shm"):
            total.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return total.hexdigest()


def lake_event_ids(lake: Lake) -> list[str]:
    return [event.event_id for event in lake.events()]


def page(title: str, revision: int, hour: int) -> dict[str, Any]:
    from datetime import timedelta

    from tests.factories import page_record

    return page_record(title, revision, observed=BASE_TIME + timedelta(hours=hour))


def current_content(url: str, schema: str, natural_key: str) -> str:
    """The content hash of the database's RawExchangeRecord row for one natural key."""
    with SqlEventStore(url, schema=schema) as store, store.engine.connect() as conn:
        record = attach(store).record
        value: str = conn.execute(sa.select(record.c.content_sha256).where(
            record.c.natural_key == natural_key)).scalar_one()
    return value


def copy_lake(lake: Lake, target: Path) -> Path:
    """The lake's folder as it would arrive from another machine."""
    shutil.copytree(lake.root, target)
    return target


def sync_from(lake: Lake, folder: Path, **options: object) -> SyncResult:
    """`lake.sync_from(folder, ...)`, a merge (never the plan of a dry run)."""
    result = lake.sync_from(folder, **options)  # type: ignore[arg-type]
    assert isinstance(result, SyncResult)
    return result
