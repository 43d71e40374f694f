"""Projection checkpoints and state digests, kept in `ProjectionCheckpoint` in the projection's own transaction.

A checkpoint says which state a projection table holds: the projection, the replica whose log it was built from
(log seqs are per replica), the point-in-time filter if any, the last log seq applied (`position`) and the state
digest. All of that but the position and digest is the row's `projection` text, the canonical JSON of
`{"as_of"?, "at_seq"?, "known_at"?, "projection", "replica", "rows"?}`, so one projection has exactly one row at a
time. `rows` is the number of rows the table held when the checkpoint was written: a plain reproject compares it
with the table's count, so a table emptied or cut behind the lake's back is noticed (and rebuilt) without reading it.

The state digest is order-independent and cheap to keep: the sum, modulo 2**256, of the SHA-256 of each row's
canonical JSON (`row_digest`). Changing a row subtracts its old digest and adds the new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import sqlalchemy as sa

from eventlog.errors import InputError
from eventlog.format.canonical import canonical_json
from eventlog.sql.dialects import upsert
from projections.pointintime import PointInTime
from projections.tables import ProjectionTables

__all__ = [
    "DIGEST_MODULUS",
    "EMPTY_DIGEST",
    "Checkpoint",
    "add_digest",
    "format_digest",
    "parse_digest",
    "read_checkpoint",
    "row_digest",
    "values_digest",
    "write_checkpoint",
]

DIGEST_MODULUS = 2**256
EMPTY_DIGEST = "0" * 64
NAME_LENGTH = 200


class _Name(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    projection: str
    replica: str
    as_of: str | None = None
    known_at: str | None = None
    at_seq: int | None = None
    rows: int | None = None


_decode_name = msgspec.json.Decoder(_Name).decode


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The state a projection table holds: built from `replica`'s log up to `position`, under `point` if set."""

    projection: str
    replica: str
    position: int
    state_digest: str = EMPTY_DIGEST
    point: PointInTime | None = None
    rows: int | None = None  # rows of the table at this checkpoint; None in checkpoints written before it was kept

    def name(self) -> str:
        """The text stored in ProjectionCheckpoint.projection. Raises InputError past the column's 200 characters."""
        point = self.point or PointInTime()
        text = canonical_json(msgspec.to_builtins(_Name(
            projection=self.projection, replica=self.replica, as_of=point.as_of, known_at=point.known_at,
            at_seq=point.at_seq, rows=self.rows))).decode()
        if len(text) > NAME_LENGTH:
            raise InputError(f"the checkpoint name of {self.projection} for replica {self.replica!r} is longer than "
                             f"{NAME_LENGTH} characters; use a shorter replica id")
        return text


def parse_name(text: str) -> _Name | None:
    """The parts of a checkpoint name this module wrote, or None for any other text."""
    if not text.startswith("{"):
        return None
    try:
        return _decode_name(text)
    except msgspec.DecodeError:
        return None


def read_checkpoint(conn: sa.Connection, tables: ProjectionTables, projection: str) -> Checkpoint | None:
    """The checkpoint of `projection`, whichever replica and filter it was written with; None when there is none."""
    table = tables.checkpoint
    found: Checkpoint | None = None
    for row in conn.execute(sa.select(table.c.projection, table.c.position, table.c.state_digest)):
        name = parse_name(row.projection)
        if name is None or name.projection != projection:
            continue
        point = PointInTime(as_of=name.as_of, known_at=name.known_at, at_seq=name.at_seq)
        candidate = Checkpoint(projection=projection, replica=name.replica, position=int(row.position),
                               state_digest=row.state_digest or EMPTY_DIGEST,
                               point=None if point == PointInTime() else point, rows=name.rows)
        # Only one row per projection is ever committed; should two be found, the higher position is the newer.
        if found is None or candidate.position > found.position:
            found = candidate
    return found


def write_checkpoint(conn: sa.Connection, tables: ProjectionTables, checkpoint: Checkpoint, *, now: str) -> None:
    """Make `checkpoint` the only row of its projection, in `conn`'s transaction."""
    table = tables.checkpoint
    name = checkpoint.name()
    stale = [row.projection for row in conn.execute(sa.select(table.c.projection))
             if row.projection != name and _belongs(row.projection, checkpoint.projection)]
    if stale:
        conn.execute(table.delete().where(table.c.projection.in_(stale)))
    stmt = upsert(table, conn.dialect.name, update=["position", "state_digest", "updated_at_utc"])
    conn.execute(stmt, [{"projection": name, "position": checkpoint.position,
                         "state_digest": checkpoint.state_digest, "updated_at_utc": now}])


def _belongs(text: str, projection: str) -> bool:
    name = parse_name(text)
    return name is not None and name.projection == projection


def row_digest(row: Mapping[Any, Any], columns: Iterable[str]) -> int:
    """SHA-256 of the canonical JSON of `row` restricted to `columns`, as an integer."""
    return values_digest({name: row[name] for name in columns})


def values_digest(values: dict[str, Any]) -> int:
    """SHA-256 of the canonical JSON of `values`, as an integer: `row_digest` of a row already cut to its columns."""
    return int.from_bytes(hashlib.sha256(canonical_json(values)).digest(), "big")


def add_digest(total: int, delta: int) -> int:
    """`total + delta` in the digest's group (integers modulo 2**256); subtract with a negative delta."""
    return (total + delta) % DIGEST_MODULUS


def format_digest(total: int) -> str:
    """The digest as 64 hex digits."""
    return f"{total % DIGEST_MODULUS:064x}"


def parse_digest(text: str) -> int:
    """The integer of a 64-hex-digit digest."""
    return int(text, 16)
