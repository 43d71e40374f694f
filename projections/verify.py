"""Verification of RawExchangeRecord: recompute it from the log in a scratch database and compare.

The state the table claims (its checkpoint: replica, position, point-in-time filter) is rebuilt from the log into a
temporary SQLite file by the same fold that `reproject` runs, then both tables are read in record_key order and
compared row by row, every column included. The checkpoint's digest, the digest of the rows as stored and the digest
of the rebuild must all agree.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from eventlog.log.writer import EventLog
from eventlog.sql.store import SqlEventStore
from projections.checkpoints import add_digest, format_digest, read_checkpoint, row_digest
from projections.pointintime import PointInTime
from projections.raw_exchange import (
    DIGEST_COLUMNS,
    PROJECTION,
    ROW_COLUMNS,
    hold_projection_lock,
    reproject,
)
from projections.tables import attach

__all__ = ["ProjectionReport", "RowDifference", "verify_projection"]

PAGE = 1000
SHOWN = 20
COLUMNS = (*ROW_COLUMNS, "payload_json")


class RowDifference(msgspec.Struct, frozen=True, kw_only=True):
    """One row that differs from the rebuild: missing from the table, unexpected in it, or with other values."""

    record_key: str
    natural_key: str | None
    problem: Literal["missing", "unexpected", "different"]
    columns: tuple[str, ...] = ()


class ProjectionReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of `verify_projection`; `problems` holds one sentence per disagreement, the first one first."""

    ok: bool
    projection: str
    replica: str | None
    position: int
    point_in_time: PointInTime | None
    rows: int
    expected_rows: int
    missing: int
    unexpected: int
    different: int
    differences: tuple[RowDifference, ...]
    state_digest: str | None
    rows_digest: str
    expected_digest: str
    problems: tuple[str, ...]


def verify_projection(log: EventLog, store: SqlEventStore, *, now: str,
                      progress: Callable[[int], None] | None = None) -> ProjectionReport:
    """Compare RawExchangeRecord and its checkpoint with a rebuild of the same state from `log`; never repairs.

    Holds the projection lock meanwhile, so no reprojection changes the table under the comparison. Cost: a full
    rebuild into a temporary SQLite file, plus one read of the table. Raises DatabaseError.
    """
    tables = attach(store)
    store.create_schema()
    with store.begin() as conn:
        hold_projection_lock(conn, store, now=now)
        checkpoint = read_checkpoint(conn, tables, PROJECTION)
        position = checkpoint.position if checkpoint is not None else 0
        claimed = checkpoint.point if checkpoint is not None else None
        limit = position if claimed is None or claimed.at_seq is None else min(position, claimed.at_seq)
        point = msgspec.structs.replace(claimed or PointInTime(), at_seq=limit)
        problems: list[str] = []
        if checkpoint is not None and checkpoint.replica != log.replica_id:
            problems.append(f"{PROJECTION} was built from the log of replica {checkpoint.replica}, not from this "
                            f"lake's ({log.replica_id}); it cannot be checked against this log")
        with tempfile.TemporaryDirectory(prefix="eventlog-verify-") as folder, \
                SqlEventStore(f"sqlite:///{Path(folder) / 'verify.db'}") as scratch:
            expected = reproject(log, scratch, now=now, point=point, progress=progress)
            with scratch.engine.connect() as other:
                comparison = _compare(_rows(conn, store), _rows(other, scratch))
    if checkpoint is None and comparison.rows:
        problems.append(f"{PROJECTION} holds {comparison.rows} rows but no checkpoint says what state they are")
    if comparison.differences:
        first = comparison.differences[0]
        columns = f" ({', '.join(first.columns)})" if first.columns else ""
        problems.append(
            f"{PROJECTION} differs from a rebuild from the log at seq {position}: {comparison.missing} rows "
            f"missing, {comparison.unexpected} unexpected, {comparison.different} different; first: "
            f"{first.problem} row {first.record_key} (natural key {first.natural_key!r}){columns}")
    stored_digest = checkpoint.state_digest if checkpoint is not None else None
    rows_digest = format_digest(comparison.digest)
    if stored_digest is not None and stored_digest != rows_digest:
        problems.append(f"the checkpoint's state digest {stored_digest} is not the digest of the rows ({rows_digest})")
    if rows_digest != expected.state_digest:
        problems.append(f"the rows' digest {rows_digest} is not the digest of a rebuild ({expected.state_digest})")
    return ProjectionReport(
        ok=not problems, projection=PROJECTION, replica=checkpoint.replica if checkpoint else None,
        position=position, point_in_time=claimed, rows=comparison.rows, expected_rows=comparison.expected_rows,
        missing=comparison.missing, unexpected=comparison.unexpected, different=comparison.different,
        differences=tuple(comparison.differences[:SHOWN]), state_digest=stored_digest, rows_digest=rows_digest,
        expected_digest=expected.state_digest, problems=tuple(problems))


class _Comparison:
    def __init__(self) -> None:
        self.rows = self.expected_rows = self.missing = self.unexpected = self.different = 0
        self.digest = 0
        self.differences: list[RowDifference] = []

    def note(self, difference: RowDifference) -> None:
        if len(self.differences) < SHOWN:
            self.differences.append(difference)


def _compare(actual: Iterator[dict[str, Any]], expected: Iterator[dict[str, Any]]) -> _Comparison:
    """Merge-join two row streams ordered by record_key; the digest is that of the actual rows."""
    result = _Comparison()
    have, want = next(actual, None), next(expected, None)
    while have is not None or want is not None:
        if want is None or (have is not None and have["record_key"] < want["record_key"]):
            assert have is not None
            result.unexpected += 1
            result.note(RowDifference(record_key=have["record_key"], natural_key=have["natural_key"],
                                      problem="unexpected"))
        elif have is None or want["record_key"] < have["record_key"]:
            result.missing += 1
            result.note(RowDifference(record_key=want["record_key"], natural_key=want["natural_key"],
                                      problem="missing"))
        else:
            columns = tuple(name for name in COLUMNS if have[name] != want[name])
            if columns:
                result.different += 1
                result.note(RowDifference(record_key=have["record_key"], natural_key=have["natural_key"],
                                          problem="different", columns=columns))
        taken = have is not None and (want is None or have["record_key"] <= want["record_key"])
        given = want is not None and (have is None or want["record_key"] <= have["record_key"])
        if taken:
            assert have is not None
            result.rows += 1
            result.digest = add_digest(result.digest, row_digest(have, DIGEST_COLUMNS))
            have = next(actual, None)
        if given:
            result.expected_rows += 1
            want = next(expected, None)
    return result


def _rows(conn: sa.Connection, store: SqlEventStore) -> Iterator[dict[str, Any]]:
    """Every row of the table in record_key order, a page at a time (keyset paging keeps memory flat)."""
    record = attach(store).record
    query = (sa.select(*(record.c[name] for name in COLUMNS)).where(record.c.record_key > sa.bindparam("after"))
             .order_by(record.c.record_key).limit(PAGE))
    after = ""
    while True:
        page = [dict(row._mapping) for row in conn.execute(query, {"after": after})]
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["record_key"]
