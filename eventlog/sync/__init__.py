"""Sync = merge + reprojection: a lake's log and a database's event tables made to hold the same events.

`sync` merges by event id in both directions from watermarks, decides conflicts with one of four strategies
(each decision a `resolved` event that travels like any other) and reprojects RawExchangeRecord. docs/sync.md
states the model.
"""

from eventlog.sync.engine import sync, watermark_keys
from eventlog.sync.result import DIRECTIONS, STRATEGIES, Candidate, Conflict, Direction, Strategy, SyncResult

__all__ = ["DIRECTIONS", "STRATEGIES", "Candidate", "Conflict", "Direction", "Strategy", "SyncResult", "sync",
           "watermark_keys"]
