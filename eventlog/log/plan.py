"""Planning an append: what `EventLog.append` would write, for dry runs, computed without writing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventlog.format.envelope import ExchangeRecord
from eventlog.log.prepare import Prepared
from eventlog.log.tally import Tally, prepare_item
from eventlog.log.writer import CHUNK, AppendResult, EventLog
from eventlog.redaction.redactor import Redactor

__all__ = ["plan_append"]


def plan_append(log: EventLog, records: Iterable[ExchangeRecord | dict[str, Any]], *,
                redactor: Redactor | None = None) -> AppendResult:
    """What `log.append(records, redactor=redactor)` would do now, without writing anything or taking the lock.

    Records are validated, redacted and hashed as by append, and classified by the same code
    (`eventlog.log.tally`: observed, revisited, already present, hash mismatches); seqs and seals are left out. Raises what append raises. Memory holds
    the id and content hash of every record of the call, as append's index does.
    """
    redactor = redactor or log.redactor
    tally = Tally()
    seen: dict[str, str] = {}
    payloads: set[str] = set()
    iterator = iter(records)
    number = 0
    while True:
        batch: list[Prepared] = []
        for item in iterator:
            number += 1
            batch.append(prepare_item(item, redactor, max_bytes=log.max_record_bytes, number=number))
            if len(batch) >= CHUNK:
                break
        if not batch:
            break
        known = log.index.known_events([p.exchange_id for p in batch if p.exchange_id not in seen])
        payloads.update(log.index.known_contents(list({p.content_sha256 for p in batch} - payloads)))
        tally.classify(batch, seen, known, payloads)
    return AppendResult(observed=tally.observed, revisited=tally.revisited, already_present=tally.present,
                        redacted=tally.redacted, hash_mismatches=tuple(tally.mismatches),
                        hash_mismatch_count=tally.mismatch_count)
