"""What projections read from the log: observations decoded straight from raw lines, and index lookups.

A projection needs the envelope's scalar fields and, for the current version, the payload bytes. Lines are decoded
into a struct whose request and response stay `msgspec.Raw`: the log writes canonical JSON, so those slices are
the payload's canonical bytes, and no payload becomes Python objects (which costs more than everything else the
fold does). `resolved` lines, whose bodies are free-form, are decoded in full.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol

from eventlog.errors import IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.events import ABSENT, OBSERVATION_TYPES, Event, decode_line, decode_raw_line
from eventlog.format.identity import exchange_key, record_key_of_encoded
from eventlog.log.index import COLUMNS as INDEX_COLUMNS
from eventlog.log.index import IndexEntry, connect_read_only, lookup_key, select_by_keys
from eventlog.log.writer import EventLog
from projections.pointintime import PointInTime
from projections.rules import (
    Rank,
    Settlement,
    rank,
    resolution_candidates,
    resolution_scope_matches,
    resolution_winner,
)

__all__ = ["EventSource", "IndexReader", "Observation", "observation", "read_log"]


class Observation(NamedTuple):
    """What a projection reads from an observed or revisited event; `payload` is None for a revisit."""

    seq: int
    recorded: str
    observed: str
    content: str
    exchange_id: str
    exchange_type: str
    schema_version: int
    source: str
    entity: str
    natural: str | None
    key: str
    payload: bytes | None

    @property
    def rank(self) -> Rank:
        """Order of precedence for the current version (projections.rules)."""
        return rank(self.observed, self.content, self.exchange_id)


def read_log(log: EventLog, *, after_seq: int = 0) -> Iterator[Observation | Event]:
    """The events after `after_seq` in log order: an Observation for each observed or revisited one, the
    resolved ones as Events. Raises IntegrityError for an observation whose envelope a projection cannot use."""
    for _, _, raw in log.lines(after_seq=after_seq):
        line = decode_raw_line(raw)  # None for a resolution's free-form body, or an envelope `observation` judges
        if line is None or line.type not in OBSERVATION_TYPES or (line.body.request is ABSENT) is (
                line.type == "observed"):
            event = decode_line(raw)
            if event.seq > after_seq:
                yield event if event.type == "resolved" else observation(event)
            continue
        if line.seq <= after_seq:
            continue
        body = line.body
        payload = None
        if line.type == "observed":
            payload = b"".join((b'{"request":', body.request, b',"response":', body.response, b"}"))
        yield _observation(line.seq, line.recorded_at_utc, body.observed_at_utc, body.content_sha256,
                           body.exchange_id, body.exchange_type, body.schema_version, body.source_system,
                           body.entity_type, body.natural_key, payload)


def observation(event: Event) -> Observation:
    """The Observation of a decoded observed or revisited event. Raises IntegrityError for a body it cannot use."""
    body = event.body
    try:
        values = (body["observed_at_utc"], body["content_sha256"], body["exchange_id"], body["exchange_type"],
                  body["schema_version"], body["source_system"], body["entity_type"], body["natural_key"])
    except KeyError as missing:
        raise IntegrityError(f"event {event.seq} ({event.event_id}) has no {missing.args[0]} in its body; "
                             "it cannot be projected") from None
    observed, content, exchange_id, exchange_type, version, source, entity, natural = values
    if not (all(isinstance(value, str) for value in values[:4] + values[5:7])
            and type(version) is int and (natural is None or isinstance(natural, str))):
        raise IntegrityError(f"event {event.seq} ({event.event_id}) has an envelope field of the wrong type; "
                             "it cannot be projected")
    payload = None
    if event.type == "observed":
        payload = canonical_json({"request": body.get("request"), "response": body.get("response")})
    return _observation(event.seq, event.recorded_at_utc, observed, content, exchange_id, exchange_type, version,
                        source, entity, natural, payload)


def _observation(seq: int, recorded: str, observed: str, content: str, exchange_id: str, exchange_type: str,
                 version: int, source: str, entity: str, natural: str | None, payload: bytes | None) -> Observation:
    parts = [_names(source), _names(entity), canonical_json(natural)]
    if natural is None:
        parts.append(canonical_json(content))
    return Observation(seq, recorded, observed, content, exchange_id, exchange_type, version, source, entity, natural,
                       record_key_of_encoded(parts), payload)


@functools.lru_cache(maxsize=4096)
def _names(text: str) -> bytes:
    """Canonical JSON of a source system or entity type: a few values, repeated on every event."""
    return canonical_json(text)


class EventSource(Protocol):
    """The look-ups a projection's fold makes besides reading events in order: a log's index (`IndexReader`), or
    a database's event tables (`projections.sql_source.TablesReader`). Positions (`seq`) are the source's own."""

    def first_seqs(self, hashes: Iterable[str], *, observed_by: str | None) -> dict[str, int]:
        """The first position at which each content was observed (observed_at_utc <= `observed_by` when given)."""
        ...

    def observations_of(self, content: str, *, before_seq: int) -> list[Event]:
        """The observed and revisited events of one content before a position, in order."""
        ...

    def payload(self, content: str) -> bytes:
        """The canonical JSON of {"request", "response"} of a content."""
        ...

    def settlements(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                    point: PointInTime | None) -> list[Settlement]:
        """The resolutions of one key up to a position."""
        ...

    def key_observations(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                         point: PointInTime | None) -> list[Observation]:
        """Every observation of one key up to a position."""
        ...


class IndexReader:
    """Read-only queries on log/index.sqlite that `LogIndex` does not offer.

    The table is read directly, by the columns docs/file-formats.md documents. Rows below a seq that a reader has
    seen in the log are committed (the index is written in the append call, before the next one starts).
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._db = connect_read_only(log.index.path)
        self._resolutions: list[Event] | None = None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def first_seqs(self, hashes: Iterable[str], *, observed_by: str | None) -> dict[str, int]:
        """The first seq at which each content was observed (observed_at_utc <= `observed_by` when given)."""
        asked = set(hashes)
        extra = "" if observed_by is None else " AND observed_at_utc <= ?"
        query = (f"SELECT content_sha256, min(seq) FROM events WHERE type != 'resolved' AND content_key IN ({{keys}})"
                 f"{extra} GROUP BY content_sha256")
        params = () if observed_by is None else (observed_by,)
        # A shared look-up key may bring other contents along.
        return {content: int(seq) for content, seq in select_by_keys(self._db, query, asked, *params)
                if content in asked}

    def observations_up_to(self, hashes: Iterable[str], *, seq: int) -> Iterator[tuple[str, str, str, int, int, int, str]]:
        """(content_sha256, observed_at_utc, event_id, segment, offset, length, type) of every observed or
        revisited event of these contents at or before `seq`, in no particular order."""
        asked = set(hashes)
        query = ("SELECT content_sha256, observed_at_utc, event_id, segment, offset, length, type FROM events "
                 "WHERE content_key IN ({keys}) AND seq <= ? AND type != 'resolved'")
        for row in select_by_keys(self._db, query, asked, seq):
            if row[0] in asked:  # a shared look-up key may bring other contents along
                yield row

    def first_observations(self, source_system: str, entity_type: str, *,
                           up_to_seq: int) -> Iterator[tuple[str, str, str, str, int, int, int, str]]:
        """Per content of events with a natural key of this source system and entity type, at or before
        `up_to_seq`: its observation with the smallest (observed_at_utc, event_id), as (content_sha256,
        observed_at_utc, event_id, natural_key, segment, offset, length, type). Names holding U+001F are refused
        (ValueError): the index's key column could not tell them apart. Memory: one tuple per content."""
        if "\x1f" in source_system or "\x1f" in entity_type:
            raise ValueError("a source system or entity type holding U+001F")
        prefix = f"{source_system}\x1f{entity_type}\x1f"
        # One pass over the table in its own order (NOT INDEXED): cheaper than walking the key index and fetching
        # each row, or than a GROUP BY, which sorts; the minimum is kept here.
        rows = self._db.execute(
            "SELECT content_sha256, observed_at_utc, event_id, exchange_key, segment, offset, length, type "
            "FROM events NOT INDEXED WHERE exchange_key >= ? AND exchange_key < ? AND seq <= ? "
            "AND type != 'resolved'", (prefix, prefix[:-1] + "\x20", up_to_seq))
        best: dict[str, tuple[str, str, str, str, int, int, int, str]] = {}
        cut = len(prefix)
        for content, observed, event_id, key, segment, offset, length, kind in rows:
            held = best.get(content)
            if held is None or (observed, event_id) < (held[1], held[2]):
                best[content] = (content, observed, event_id, key[cut:], segment, offset, length, kind)
        yield from best.values()

    def keyless_observations(self, *, up_to_seq: int) -> Iterator[tuple[str, str, str, int, int, int, str]]:
        """(content_sha256, observed_at_utc, event_id, segment, offset, length, type) of every observed or
        revisited event without a natural key, at or before `up_to_seq`, of any dataset."""
        yield from self._db.execute(
            "SELECT content_sha256, observed_at_utc, event_id, segment, offset, length, type FROM events "
            "WHERE exchange_key IS NULL AND seq <= ? AND type != 'resolved'", (up_to_seq,))

    def observations_of(self, content: str, *, before_seq: int) -> list[Event]:
        """The observed and revisited events of one content before `before_seq`, in log order."""
        rows = self._db.execute(f"SELECT {INDEX_COLUMNS} FROM events WHERE content_key = ? AND content_sha256 = ? "
                                "AND seq < ? AND type != 'resolved' ORDER BY seq",
                                (lookup_key(content), content, before_seq)).fetchall()
        return [self.log.read_at(IndexEntry(*row)) for row in rows]

    def settlements(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                    point: PointInTime | None) -> list[Settlement]:
        """The resolutions of one key up to seq `upto` (admitted by `point`), as the rule reads them.

        The log's resolutions are read once per reader (one scan of the index for them): they are few.
        """
        if self._resolutions is None:
            self._resolutions = [self.log.read_at(entry) for entry in self.log.index.by_type("resolved")]
        found: list[Settlement] = []
        for event in self._resolutions:
            if event.seq > upto or (point is not None and not point.admits(event)):
                continue
            body = event.body
            winner = resolution_winner(body)
            if winner is not None and resolution_scope_matches(body, source_system, entity_type, natural_key):
                found.append(Settlement(event.event_id, winner, resolution_candidates(body)))
        return found

    def key_observations(self, source_system: str, entity_type: str, natural_key: str | None, *, upto: int,
                         point: PointInTime | None) -> list[Observation]:
        """Every observation of one key up to seq `upto` (admitted by `point`)."""
        key = exchange_key(source_system, entity_type, natural_key)
        if key is None:
            return []
        found: list[Observation] = []
        for entry in self.log.index.by_key(key):
            if entry.seq > upto or entry.type == "resolved":
                continue
            event = self.log.read_at(entry)
            if point is None or point.admits(event):
                found.append(observation(event))
        return found

    def payload(self, content: str) -> bytes:
        """The canonical JSON of {"request", "response"} of a content, from its first observed event."""
        entry = self.log.index.first_payload(content)
        if entry is None:
            raise IntegrityError(f"content {content} has no observed event in the log to take its payload from")
        found = observation(self.log.read_at(entry)).payload
        assert found is not None
        return found
