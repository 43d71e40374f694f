"""When two copies of one event id are the same event, and how to say that they are not.

Events travel with their digest, which covers origin and recorded_at_utc. Two lakes that ingested the same capture
hold the same observation (same exchange id, content hash and observed time) under different origins and
recorded times, so with different digests: that is one observation, kept once on each side. Two resolutions
with the same body (the same decision, made on two replicas) are one decision. Anything else under one event id
is an integrity error naming both sides.
"""

from __future__ import annotations

from typing import Any

from eventlog.errors import IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.events import OBSERVATION_TYPES, Event

__all__ = ["Identity", "clash", "identity_of", "same_event"]

Identity = tuple[Any, ...]


def identity_of(event_type: str, body: dict[str, Any]) -> Identity:
    """What must agree between two copies of one event id: the observation, or the resolution's whole body."""
    if event_type in OBSERVATION_TYPES:
        return ("observation", body.get("exchange_id"), body.get("content_sha256"), body.get("observed_at_utc"))
    return (event_type, canonical_json(body))


def same_event(ours: Event, theirs: Event) -> bool:
    """Whether two copies of one event id are one event (equal digests, or one shared observation or decision)."""
    return ours.digest == theirs.digest or identity_of(ours.type, ours.body) == identity_of(theirs.type, theirs.body)


def describe(event: Event) -> str:
    """One event as the integrity error shows it."""
    body = event.body
    if event.type in OBSERVATION_TYPES:
        return (f"{event.type} exchange {body.get('exchange_id')} content {body.get('content_sha256')} observed at "
                f"{body.get('observed_at_utc')} (origin {event.origin}, recorded {event.recorded_at_utc})")
    return f"{event.type} {canonical_json(body).decode()[:200]} (origin {event.origin})"


def clash(event_id: str, lake_side: Event, sql_side: Event, *, other: str = "the database") -> IntegrityError:
    """The error for one event id naming two different events (`other`: the other replica); nothing is written."""
    return IntegrityError(f"event {event_id} is two different events: this lake's log holds {describe(lake_side)}, "
                          f"{other} holds {describe(sql_side)}; nothing was written")
