"""Conflicts between a lake's log and a database, and their decisions as `resolved` events.

A key is in conflict when each side holds events of it the other lacks and, counting each side's own events, the
two sides disagree on its current version (`projections.rules.settle`), unless a resolution either side holds
already chose between those versions: a settled conflict is never decided again, only a new candidate opens a new
one. The decision is a `resolved` event whose body has no time in it, so two replicas making the same decision make
the same event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from eventlog.format.events import OBSERVATION_TYPES, Event
from eventlog.sync.result import Candidate, Conflict, Strategy
from projections.log_source import Observation, observation
from projections.rules import Settlement, resolution_candidates, resolution_winner, settle

__all__ = ["KeyEvents", "Name", "decide", "event_name", "find_conflict", "resolution_body"]

Name = tuple[str, str, str]  # (source_system, entity_type, natural_key): the keys a resolution can speak of


def event_name(event: Event) -> Name | None:
    """The natural key an event speaks of, or None (a record without a natural key, an unreadable body)."""
    body = event.body
    if event.type in OBSERVATION_TYPES:
        source, entity, natural = body.get("source_system"), body.get("entity_type"), body.get("natural_key")
    else:
        natural = body.get("natural_key")
        if "source_system" in body or "entity_type" in body:
            source, entity = body.get("source_system"), body.get("entity_type")
        else:
            scope = body.get("scope")
            source, _, entity = scope.partition("/") if isinstance(scope, str) else (None, "", None)
    if isinstance(source, str) and isinstance(entity, str) and isinstance(natural, str):
        return (source, entity, natural)
    return None


class KeyEvents:
    """What one side holds of one key: its observations (best per content) and its resolutions."""

    def __init__(self) -> None:
        self.best: dict[str, Observation] = {}
        self.settlements: dict[str, Settlement] = {}

    def observe(self, item: Observation) -> None:
        known = self.best.get(item.content)
        if known is None or item.rank > known.rank:
            self.best[item.content] = item

    def add(self, event: Event) -> None:
        """Add an observed, revisited or resolved event."""
        if event.type in OBSERVATION_TYPES:
            self.observe(observation(event))
            return
        winner = resolution_winner(event.body)
        if winner is not None:
            self.settlements[event.event_id] = Settlement(event.event_id, winner,
                                                          resolution_candidates(event.body))

    def current(self) -> str | None:
        return settle({content: item.rank for content, item in self.best.items()}, self.settlements.values())

    def merged(self, other: KeyEvents) -> KeyEvents:
        union = KeyEvents()
        for side in (self, other):
            for item in side.best.values():
                union.observe(item)
            union.settlements.update(side.settlements)
        return union


def find_conflict(name: Name, ours: KeyEvents, theirs: KeyEvents) -> tuple[Name, KeyEvents, str, str,
                                                                           frozenset[str]] | None:
    """The conflict on `name` between this lake (`ours`) and the database (`theirs`), if any:
    (name, both sides' union, our current, their current, candidates)."""
    mine, other = ours.current(), theirs.current()
    if mine is None or other is None or mine == other:
        return None
    union = ours.merged(theirs)
    pair = {mine, other}
    if any(pair <= settlement.candidates for settlement in union.settlements.values()):
        return None  # settled already: the recorded decision applies
    candidates = set(pair)
    for settlement in union.settlements.values():
        if settlement.winner in pair:
            candidates.update(settlement.candidates)
    return (name, union, mine, other, frozenset(content for content in candidates if content in union.best))


def decide(strategy: Strategy, union: KeyEvents, ours: str, theirs: str, candidates: Iterable[str]) -> str | None:
    """The winning content under `strategy` (None under `fail`)."""
    if strategy == "prefer_json":
        return ours
    if strategy == "prefer_sql":
        return theirs
    if strategy == "prefer_newest":
        return max(candidates, key=lambda content: (union.best[content].observed, content))
    return None


def resolution_body(name: Name, winner: str, strategy: Strategy, candidates: Iterable[str]) -> dict[str, Any]:
    """The body of the `resolved` event of one decision (no time in it: equal decisions are one event)."""
    source, entity, natural = name
    return {"source_system": source, "entity_type": entity, "natural_key": natural, "scope": f"{source}/{entity}",
            "winner": winner, "strategy": strategy, "candidates": sorted(candidates)}


def describe_conflict(name: Name, union: KeyEvents, ours: str, theirs: str, candidates: Iterable[str],
                      strategy: Strategy, winner: str | None, event_id: str | None) -> Conflict:
    """The Conflict as a result reports it."""
    listed: list[Candidate] = []
    for content in sorted(candidates):
        item = union.best[content]
        sides = tuple(side for side, current in (("json", ours), ("sql", theirs)) if current == content)
        listed.append(Candidate(content_sha256=content, observed_at_utc=item.observed, exchange_id=item.exchange_id,
                                current_on=sides))
    source, entity, natural = name
    return Conflict(source_system=source, entity_type=entity, natural_key=natural, candidates=tuple(listed),
                    winner=winner, strategy=strategy, resolution_event_id=event_id)


def key_events_of(observations: Iterable[Observation], settlements: Iterable[Settlement], *,
                  skip: Collection[str] = ()) -> KeyEvents:
    """A KeyEvents from a side's observations and settlements, leaving out the events whose ids are in `skip`."""
    found = KeyEvents()
    for item in observations:
        if item.exchange_id not in skip:
            found.observe(item)
    for settlement in settlements:
        if settlement.event_id not in skip:
            found.settlements[settlement.event_id] = settlement
    return found
