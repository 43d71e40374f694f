"""What an append makes of its records: the rules the writer and its dry-run plan share.

`prepare_item` validates, redacts and hashes one record as given (an ExchangeRecord or a dict). Then, a chunk at a
time, a record whose exchange id the log (or the call) holds already is present, or an IntegrityError when it holds it
with other content; otherwise it is fresh: observed when its content is new to the log, revisited when the log
holds that content's payload already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventlog.errors import EnvelopeError, IntegrityError, record_source
from eventlog.format.envelope import ExchangeRecord, decode_record, identity_problem
from eventlog.log.prepare import Prepared, prepare
from eventlog.redaction.redactor import Redactor

__all__ = ["MAX_LISTED_MISMATCHES", "Tally", "prepare_item"]

# An append lists at most this many ids of records whose stated content hash differs from ours, and counts all.
MAX_LISTED_MISMATCHES = 1000


def prepare_item(item: ExchangeRecord | dict[str, Any], redactor: Redactor, *, max_bytes: int,
                 number: int) -> Prepared:
    """Record `number` of a call, decoded if need be, redacted and hashed; EnvelopeError naming it when it does
    not validate (nested too deeply, an identity that does not hold)."""
    try:
        record = item if isinstance(item, ExchangeRecord) else decode_record(item, source=record_source(number))
        prepared = prepare(record, redactor, max_bytes=max_bytes, number=number)
    except RecursionError:
        raise EnvelopeError("nested too deeply to be encoded", source=record_source(number)) from None
    if (problem := identity_problem(record)) is not None:
        raise EnvelopeError(problem[1], source=record_source(number), path=problem[0])
    return prepared


class Tally:
    """The counts of one append call, as its chunks are classified."""

    __slots__ = ("mismatch_count", "mismatches", "observed", "present", "redacted", "revisited")

    def __init__(self) -> None:
        self.observed = self.revisited = self.present = self.redacted = self.mismatch_count = 0
        self.mismatches: list[str] = []  # the first MAX_LISTED_MISMATCHES of them

    def classify(self, batch: list[Prepared], seen: dict[str, str], known: Mapping[str, tuple[str, str | None]],
                 payloads: set[str]) -> tuple[list[Prepared], bytearray]:
        """The fresh records of `batch` and their kinds (1 observed, 0 revisited), counting every record.

        `seen` maps the ids this call took so far to their content, `known` the ids the log holds to (digest,
        content); `payloads` holds the contents whose payload the log (or the call) holds. Both `seen` and
        `payloads` take the fresh records. Raises IntegrityError for an id held with other content.
        """
        fresh: list[Prepared] = []
        kinds = bytearray()
        observed = revisited = present = 0
        for p in batch:
            exchange_id = p.exchange_id
            if exchange_id in seen or exchange_id in known:
                prior = seen[exchange_id] if exchange_id in seen else known[exchange_id][1]
                if prior != p.content_sha256:
                    raise IntegrityError(f"exchange {exchange_id} is already in the log with content {prior}, "
                                         f"not {p.content_sha256}; an exchange id names one observation")
                present += 1
                continue
            seen[exchange_id] = p.content_sha256
            is_new = p.content_sha256 not in payloads
            payloads.add(p.content_sha256)
            fresh.append(p)
            kinds.append(is_new)
            if is_new:
                observed += 1
            else:
                revisited += 1
            self.redacted += p.redacted
            if p.hash_mismatch:
                self.mismatch_count += 1
                if len(self.mismatches) < MAX_LISTED_MISMATCHES:
                    self.mismatches.append(exchange_id)
        self.observed += observed
        self.revisited += revisited
        self.present += present
        return fresh, kinds
