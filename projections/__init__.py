"""Projections rebuilt from the log: RawExchangeRecord, snapshot packs, checkpoints with state digests,
point-in-time filters, and the one rule of which version of a key is current (`projections.rules`).

Only the application layer (`eventlog.app`, the CLI) composes the log with these; no core wing of `eventlog/`
imports them. Names load on first use, so `projections.rules` costs no SQL import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventlog.lazy import lazy_exports

_WHERE = {
    "PROJECTION": "projections.raw_exchange",
    "Checkpoint": "projections.checkpoints",
    "PackCheckpoint": "projections.snapshot_pack",
    "PackResult": "projections.snapshot_pack",
    "PointInTime": "projections.pointintime",
    "ProjectionReport": "projections.verify",
    "ReprojectResult": "projections.raw_exchange",
    "RowDifference": "projections.verify",
    "parse_moment": "projections.pointintime",
    "project_pack": "projections.snapshot_pack",
    "read_checkpoint": "projections.checkpoints",
    "reproject": "projections.raw_exchange",
    "reproject_tables": "projections.sql_source",
    "verify_projection": "projections.verify",
}

__all__ = [
    "PROJECTION",
    "Checkpoint",
    "PackCheckpoint",
    "PackResult",
    "PointInTime",
    "ProjectionReport",
    "ReprojectResult",
    "RowDifference",
    "parse_moment",
    "project_pack",
    "read_checkpoint",
    "reproject",
    "reproject_tables",
    "verify_projection",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)


if TYPE_CHECKING:
    from projections.checkpoints import Checkpoint, read_checkpoint
    from projections.pointintime import PointInTime, parse_moment
    from projections.raw_exchange import PROJECTION, ReprojectResult, reproject
    from projections.snapshot_pack import PackCheckpoint, PackResult, project_pack
    from projections.sql_source import reproject_tables
    from projections.verify import ProjectionReport, RowDifference, verify_projection
