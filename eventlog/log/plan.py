"""Planning an append: what `EventLog.append` would write, for dry runs, computed without writing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventlog.errors import IntegrityError
from eventlog.format.envelope import ExchangeRecord, decode_record
from eventlog.log.prepare import Prepared, prepare
from eventlog.log.writer import CHUNK, MAX_LISTED_MISMATCHES, AppendResult, EventLog
from eventlog.redaction.redactor import Redactor

__all__ = ["plan_append"]


def plan_append(log: EventLog, records: Iterable[ExchangeRecord | dict[str, Any]], *,
                redactor: Redactor | None = None) -> AppendResult:
    """What `log.append(records, redactor=redactor)` would do now, without writing anything or taking the lock.

    Records are validated, redacted and hashed as by append, and classified the same way (observed, revisited,
    already present, hash mismatches); seqs and seals are left out. Raises what append raises. Memory holds
    the id and content hash of every record of the call, as append's index does.
    """
    redactor = redactor or log.redactor
    observed = revisited = present = redacted = mismatch_count = 0
    mismatches: list[str] = []
    seen: dict[str, str] = {}
    payloads: set[str] = set()
    iterator = iter(records)
    number = 0
    while True:
        batch: list[Prepared] = []
        for item in iterator:
            number += 1
            record = item if isinstance(item, ExchangeRecord) else decode_record(item, source=f"record {number}")
            batch.append(prepare(record, redactor, max_bytes=log.max_record_bytes, number=number))
            if len(batch) >= CHUNK:
                break
        if not batch:
            break
        known = log.index.known_events([p.exchange_id for p in batch if p.exchange_id not in seen])
        payloads.update(log.index.known_contents(list({p.content_sha256 for p in batch} - payloads)))
        for p in batch:
            prior = seen.get(p.exchange_id) or (known[p.exchange_id][1] if p.exchange_id in known else None)
            if prior is not None:
                if prior != p.content_sha256:
                    raise IntegrityError(
                        f"exchange {p.exchange_id} is already in the log with content {prior}, "
                        f"not {p.content_sha256}; an exchange id names one observation")
                present += 1
                continue
            seen[p.exchange_id] = p.content_sha256
            if p.content_sha256 in payloads:
                revisited += 1
            else:
                observed += 1
                payloads.add(p.content_sha256)
            redacted += p.redacted
            if p.hash_mismatch:
                mismatch_count += 1
                if len(mismatches) < MAX_LISTED_MISMATCHES:
                    mismatches.append(p.exchange_id)
    return AppendResult(observed=observed, revisited=revisited, already_present=present, redacted=redacted,
                        hash_mismatches=tuple(mismatches), hash_mismatch_count=mismatch_count)
