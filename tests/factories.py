"""Seeded, example-shaped exchange records for tests and benchmarks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

_WORDS = ("replay", "ledger", "window", "archive", "signal", "harbor", "orbit", "canyon", "meadow", "quartz",
          "Zürich", "東京", "naïve", "café", "data", "pipeline", "source", "entity", "lake", "river")


def text(rng: random.Random, size: int) -> str:
    """Prose of about `size` characters."""
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)


def openalex_record(n: int, *, rng: random.Random | None = None, version: int = 0,
                    observed: datetime | None = None) -> dict[str, Any]:
    """An OpenAlex-style work pull of about 2 KB."""
    rng = rng or random.Random(n)
    work = f"W{1000000 + n}"
    return {
        "exchange_type": "openalex", "source_system": "openalex", "entity_type": "work", "natural_key": work,
        "observed_at_utc": (observed or BASE_TIME + timedelta(seconds=n)).isoformat(),
        "request": {"method": "GET", "url": f"https://api.openalex.org/works/{work}?mailto=team@example.org"},
        "response": {"status": 200, "body": {
            "id": f"https://openalex.org/{work}", "title": text(rng, 80), "publication_year": 2000 + n % 25,
            "cited_by_count": n % 97 + version, "version": version, "fwci": round(rng.random() * 4, 4),
            "authorships": [{"author": {"id": f"https://openalex.org/A{rng.randrange(10**6)}",
                                        "display_name": text(rng, 14)}, "author_position": pos,
                             "institutions": [{"display_name": text(rng, 24), "country_code": "CH"}]}
                            for pos in ("first", "middle", "last")],
            "concepts": [{"display_name": text(rng, 12), "level": level, "score": round(rng.random(), 4)}
                         for level in range(4)],
            "referenced_works": [f"https://openalex.org/W{rng.randrange(10**7)}" for _ in range(12)],
            "abstract": text(rng, 280),
        }},
        "provenance": {"runner": "test", "host": "test-host", "connector_version": "1.0"},
    }


def page_record(title: str, revision: int, *, observed: datetime | None = None, body: str | None = None,
                source: str = "wikipedia-en") -> dict[str, Any]:
    """A MediaWiki-style page pull; each revision has different content."""
    return {
        "exchange_type": "mediawiki", "source_system": source, "entity_type": "page", "natural_key": title,
        "observed_at_utc": (observed or BASE_TIME + timedelta(hours=revision)).isoformat(),
        "request": {"method": "GET", "url": f"https://en.wikipedia.org/w/api.php?action=query&titles={title}"},
        "response": {"status": 200, "body": {"title": title, "revid": revision,
                                             "content": body if body is not None else f"{title} revision {revision}"}},
    }
