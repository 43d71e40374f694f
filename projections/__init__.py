"""Projections rebuilt from the log: RawExchangeRecord, checkpoints with state digests, point-in-time filters.

Only the application layer (`eventlog.app.lake`, the CLI, the scheduler) composes the log with these; no core module
of `eventlog/` imports them.
"""

from projections.checkpoints import Checkpoint, read_checkpoint
from projections.pointintime import PointInTime, parse_moment
from projections.raw_exchange import PROJECTION, ReprojectResult, reproject
from projections.verify import ProjectionReport, RowDifference, verify_projection

__all__ = [
    "PROJECTION",
    "Checkpoint",
    "PointInTime",
    "ProjectionReport",
    "ReprojectResult",
    "RowDifference",
    "parse_moment",
    "read_checkpoint",
    "reproject",
    "verify_projection",
]
