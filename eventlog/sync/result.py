"""What a sync plans and does: msgspec Structs, the same for a dry run and a real run."""

from __future__ import annotations

from typing import Literal

import msgspec

from projections.raw_exchange import ReprojectResult

__all__ = ["DIRECTIONS", "STRATEGIES", "Candidate", "Conflict", "Direction", "Strategy", "SyncResult"]

Direction = Literal["bidirectional", "json_to_sql", "sql_to_json"]
Strategy = Literal["prefer_newest", "prefer_sql", "prefer_json", "fail"]
DIRECTIONS: tuple[Direction, ...] = ("bidirectional", "json_to_sql", "sql_to_json")
STRATEGIES: tuple[Strategy, ...] = ("prefer_newest", "prefer_sql", "prefer_json", "fail")


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """One version in a conflict: its content, its best observation, and the side(s) on which it was current."""

    content_sha256: str
    observed_at_utc: str
    exchange_id: str
    current_on: tuple[str, ...]  # "json" (this lake's log), "sql" (the database's event tables), or neither


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """Versions of one natural key current on different replicas since they last agreed, and the decision."""

    source_system: str
    entity_type: str
    natural_key: str
    candidates: tuple[Candidate, ...]
    winner: str | None  # None under `fail`
    strategy: Strategy
    resolution_event_id: str | None


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    """The plan (dry run) or the outcome of one sync between a lake's log and a database's event tables.

    `to_sql` / `to_json` count events copied each way (resolutions included), `shared` the observations both
    sides hold under different origins (kept once on each side, not copied). `keys_touched` is the number of
    record keys whose RawExchangeRecord row the new events may change. `projection` is the reprojection of the
    database's RawExchangeRecord from its event tables that the run made (None in a dry run). For a copied folder
    (`sync --from`), `segments_read` counts the segments of the copy opened (files or archives) and `note` says why
    a watermark was dropped and the copy read whole.
    """

    direction: Direction
    strategy: Strategy
    dry_run: bool
    full_reconciliation: bool
    to_sql: int
    to_json: int
    shared: int
    conflicts: tuple[Conflict, ...]
    resolutions: int
    keys_touched: int
    log_position: int
    database_position: int
    projection: ReprojectResult | None = None
    segments_read: int = 0
    note: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the run wrote (or, planned, would write) any event."""
        return bool(self.to_sql or self.to_json or self.resolutions)
