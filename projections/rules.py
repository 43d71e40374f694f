"""The one rule of which version of a key is current, shared by the projection and the audit.

Observations of one key (source_system, entity_type, natural_key) compete by rank: the newest observed_at_utc
wins, ties broken by the larger content hash, then by the larger exchange id (UTC texts are fixed-width, so text
order is time order). A `resolved` event makes its winner current with the winner's best-ranked observation made
before it; an observation made later still has to outrank that to take over. A resolution whose winner this
replica has not observed (for the key in its scope) changes nothing. docs/projections.md states the rule in prose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Rank", "VersionRace", "rank", "resolution_scope_matches", "resolution_winner"]

Rank = tuple[str, str, str]


def rank(observed_at_utc: str, content_sha256: str, exchange_id: str) -> Rank:
    """Order of precedence of an observation: the larger rank is the current version."""
    return (observed_at_utc, content_sha256, exchange_id)


def resolution_winner(body: Mapping[str, Any]) -> str | None:
    """The content hash a `resolved` event chose (`winner`, or `content_sha256` in older bodies), if any."""
    winner = body.get("winner", body.get("content_sha256"))
    return winner if isinstance(winner, str) else None


def resolution_scope_matches(body: Mapping[str, Any], source_system: str, entity_type: str,
                             natural_key: str | None) -> bool:
    """Whether a `resolved` event's body speaks of this key (by its fields, or by its `scope` "source/entity")."""
    if natural_key is None or body.get("natural_key") != natural_key:
        return False
    if "source_system" in body or "entity_type" in body:
        return body.get("source_system") == source_system and body.get("entity_type") == entity_type
    return body.get("scope") == f"{source_system}/{entity_type}"


class VersionRace:
    """The current version of one key, folded from its observations and resolutions in log order."""

    def __init__(self) -> None:
        self.best: Rank | None = None
        self._newest: dict[str, Rank] = {}

    @property
    def current(self) -> str | None:
        """Content hash of the current version, or None before any observation."""
        return self.best[1] if self.best is not None else None

    def observe(self, observed_at_utc: str, content_sha256: str, exchange_id: str) -> None:
        """Apply one observation."""
        candidate = rank(observed_at_utc, content_sha256, exchange_id)
        newest = self._newest.get(content_sha256)
        if newest is None or candidate > newest:
            self._newest[content_sha256] = candidate
        if self.best is None or candidate > self.best:
            self.best = candidate

    def resolve(self, winner: str | None) -> bool:
        """Apply a resolution choosing `winner`; returns whether it applied (the winner was observed before it)."""
        chosen = self._newest.get(winner) if winner is not None else None
        if chosen is None:
            return False
        self.best = chosen
        return True
