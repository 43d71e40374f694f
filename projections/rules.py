"""The one rule of which version of a key is current, shared by the projection, the audit and sync.

Observations of one key (source_system, entity_type, natural_key) compete by rank: the newest observed_at_utc
wins, ties broken by the larger content hash, then by the larger exchange id (UTC texts are fixed-width, so text
order is time order). A `resolved` event settles a conflict between its `candidates` in favour of its `winner`: it
competes with the rank of its best-ranked candidate and beats an observation of equal rank, so only a version
newer than every candidate (a new candidate) takes over from it. Among resolutions of equal rank the one with more
candidates applies, then the one with the smaller event id. A resolution whose winner this replica has not observed
changes nothing.

The rule is a function of the set of events, not of their order: replicas that hold the same events agree on the
current version whatever order their logs hold them in. docs/projections.md states it in prose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["Rank", "Settlement", "VersionRace", "rank", "resolution_candidates", "resolution_scope_matches",
           "resolution_winner", "settle"]

Rank = tuple[str, str, str]


def rank(observed_at_utc: str, content_sha256: str, exchange_id: str) -> Rank:
    """Order of precedence of an observation: the larger rank is the current version."""
    return (observed_at_utc, content_sha256, exchange_id)


def resolution_winner(body: Mapping[str, Any]) -> str | None:
    """The content hash a `resolved` event chose (`winner`, or `content_sha256` in older bodies), if any."""
    winner = body.get("winner", body.get("content_sha256"))
    return winner if isinstance(winner, str) else None


def resolution_candidates(body: Mapping[str, Any]) -> frozenset[str]:
    """The content hashes a `resolved` event chose between (always including its winner)."""
    found = body.get("candidates")
    candidates = {item for item in found if isinstance(item, str)} if isinstance(found, list) else set()
    winner = resolution_winner(body)
    if winner is not None:
        candidates.add(winner)
    return frozenset(candidates)


def resolution_scope_matches(body: Mapping[str, Any], source_system: str, entity_type: str,
                             natural_key: str | None) -> bool:
    """Whether a `resolved` event's body speaks of this key (by its fields, or by its `scope` "source/entity")."""
    if natural_key is None or body.get("natural_key") != natural_key:
        return False
    if "source_system" in body or "entity_type" in body:
        return body.get("source_system") == source_system and body.get("entity_type") == entity_type
    return body.get("scope") == f"{source_system}/{entity_type}"


class Settlement(NamedTuple):
    """A resolution as the rule reads it."""

    event_id: str
    winner: str
    candidates: frozenset[str]


def settle(best: Mapping[str, Rank], resolutions: Iterable[Settlement]) -> str | None:
    """The current content of a key: `best` maps each observed content to its best rank, `resolutions` are the
    key's resolutions. None when nothing was observed."""
    current: str | None = None
    top: tuple[Rank, int, int] | None = None
    top_id = ""
    for content, ranked in best.items():
        item = (ranked, 0, 0)
        if top is None or item > top:
            current, top = content, item
    for resolution in resolutions:
        if resolution.winner not in best:
            continue
        fence = max(best[content] for content in resolution.candidates if content in best)
        item = (fence, 1, len(resolution.candidates))
        assert top is not None
        if item > top or (item == top and resolution.event_id < top_id):
            current, top, top_id = resolution.winner, item, resolution.event_id
    return current


class VersionRace:
    """The current version of one key, from its observations and resolutions (in any order)."""

    def __init__(self) -> None:
        self._newest: dict[str, Rank] = {}
        self._resolutions: list[Settlement] = []

    @property
    def best(self) -> Rank | None:
        """Rank of the current version's best observation, or None before any observation."""
        current = self.current
        return None if current is None else self._newest[current]

    @property
    def current(self) -> str | None:
        """Content hash of the current version, or None before any observation."""
        return settle(self._newest, self._resolutions)

    def observe(self, observed_at_utc: str, content_sha256: str, exchange_id: str) -> None:
        """Apply one observation."""
        candidate = rank(observed_at_utc, content_sha256, exchange_id)
        newest = self._newest.get(content_sha256)
        if newest is None or candidate > newest:
            self._newest[content_sha256] = candidate

    def resolve(self, winner: str | None, *, candidates: Iterable[str] = (), event_id: str = "") -> bool:
        """Apply a resolution choosing `winner` among `candidates`; returns whether its winner was observed."""
        if winner is None:
            return False
        self._resolutions.append(Settlement(event_id, winner, frozenset({winner, *candidates})))
        return winner in self._newest
