"""The SQL mirror: every event of the log copied into ExchangeEvent/ExchangeContent, incrementally.

The mirror keeps a watermark in SyncState under `mirror|<replica id>`: the last log seq copied. Each batch of events
and the watermark that covers it commit in one transaction, so a crash at any moment leaves the tables and the
watermark in agreement, and the next run starts where the last commit ended. Events already present (by event id)
are skipped, so a rerun, or a second mirror racing the first, never duplicates a row.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from itertools import islice

import msgspec

from eventlog.errors import IntegrityError
from eventlog.format.events import Event
from eventlog.log.writer import EventLog
from eventlog.sql.rowcodec import EncodedEvent, encode_line
from eventlog.sql.store import SqlEventStore

__all__ = ["MIRROR_BATCH", "MirrorResult", "check_watermark", "mirror_key", "mirror_log"]

MIRROR_BATCH = 5000


class MirrorResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one mirror run did: events read after the watermark, how many were new to the tables, the watermarks."""

    read: int
    written: int
    watermark_before: int
    watermark: int
    batches: int


def mirror_key(replica_id: str) -> str:
    """The SyncState key of the mirror watermark of one replica's log."""
    return f"mirror|{replica_id}"


def mirror_log(log: EventLog, store: SqlEventStore, *, batch: int = MIRROR_BATCH,
               progress: Callable[[int], None] | None = None,
               expect: Callable[[int], None] | None = None) -> MirrorResult:
    """Copy the events after the watermark from `log` into `store`'s tables; creates the schema if missing.

    One transaction per `batch` events holds both the rows and the advanced watermark. First checks that the log
    still holds the event at the watermark (`check_watermark`); a missing or damaged event stops the copy with
    IntegrityError, never a gap. Raises DatabaseError when
    the database cannot be reached or refuses a statement (nothing of the failing batch is kept), IntegrityError
    when an event id is already stored with another digest. `progress` gets the running count of events read,
    `expect` how many the run will read. Cost: the events after the watermark; memory: one batch.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    store.create_schema()
    key = mirror_key(log.replica_id)
    start = store.get_watermark(key)
    check_watermark(log, start, store)
    if expect is not None:
        expect(max(0, log.last_seq - start))
    watermark, read, written, batches = start, 0, 0, 0
    events = _encoded(log, start)
    while chunk := _take(events, batch):
        last = chunk[-1].seq
        with store.begin() as conn:
            written += store.append_events(chunk, conn=conn, batch=batch)
            # append_events holds the append lock now: a concurrent mirror that went further keeps its watermark.
            if store.get_watermark(key, conn=conn) < last:
                store.set_watermark(key, last, conn)
        watermark = max(watermark, last)
        read += len(chunk)
        batches += 1
        if progress is not None:
            progress(read)
    return MirrorResult(read=read, written=written, watermark_before=start, watermark=watermark, batches=batches)


def check_watermark(log: EventLog, watermark: int, store: SqlEventStore) -> None:
    """Stop, with IntegrityError, unless the log still holds the event the mirror copied last, with its digest.

    A log that lost acknowledged events and was written again would hand the mirror new events under seqs it
    already passed: they would never be copied. One look-up in the index and one in the table.
    """
    if log.damage is not None:
        raise log.damage
    if watermark == 0:
        return
    # The index entry names the event (checked against the line by `verify`), so an evicted segment needs no key.
    entry = log.index.by_seq(watermark) if watermark <= log.last_seq else None
    if entry is not None:
        event_id, digest = entry.event_id, entry.digest
    else:
        try:
            event = log.event_at(watermark)
        except IntegrityError as exc:
            raise IntegrityError(f"the mirror has copied the log up to seq {watermark}, but {exc}; acknowledged "
                                 "events are missing from the log (see `eventlog verify`)") from None
        event_id, digest = event.event_id, event.digest
    stored = store.digest_of(event_id)
    if stored != digest:
        state = "is not in the database" if stored is None else "has another digest in the database"
        raise IntegrityError(f"the log's event at seq {watermark} ({event_id}), where the mirror stopped, "
                             f"{state}: the log is not the one the mirror copied (see `eventlog verify`)")


def _encoded(log: EventLog, after_seq: int) -> Iterator[EncodedEvent | Event]:
    """The log's events after `after_seq`, as store rows straight from their lines where that path applies."""
    strings: dict[str, bytes] = {}
    for _, _, raw in log.lines(after_seq=after_seq):
        event = encode_line(raw, strings=strings)
        if event.seq > after_seq:
            yield event


def _take(events: Iterator[EncodedEvent | Event], count: int) -> list[EncodedEvent | Event]:
    """The next `count` events, encoded with the cyclic garbage collector paused.

    Encoding makes several objects per event and no reference cycle; with the collector running, it walks the
    growing batch again and again, which cost a fifth of the mirror's time. Refcounting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(islice(events, count))
    finally:
        if enabled:
            gc.enable()
