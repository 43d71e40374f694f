"""The rebuild's Bloom filter of digests: never "not met" for a digest met before, rarely "maybe" for others."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from projections.bloom import SeenDigests


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@given(st.lists(st.binary(max_size=40), max_size=300))
def test_every_digest_met_before_is_met_again(blobs: list[bytes]) -> None:
    seen = SeenDigests(len(blobs))
    met = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    for item in met:
        seen.meet(item)
    assert all(seen.meet(item) for item in met)


def test_new_digests_are_mostly_certainly_not_met() -> None:
    seen = SeenDigests(20_000)
    # All distinct, so every True is a false "maybe": the rate climbs to about 0.5% as the filter fills to the
    # size it was made for (about 25 of them); a filter that answered "maybe" to everything would give 20,000.
    false_maybes = sum(seen.meet(digest(n)) for n in range(20_000))
    assert false_maybes < 100


def test_an_empty_filter_has_met_nothing() -> None:
    seen = SeenDigests(0)
    assert [seen.meet(digest(n)) for n in range(3)] == [False, False, False]
    assert seen.meet(digest(1))
