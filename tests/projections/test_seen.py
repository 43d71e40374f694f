"""The rebuild's Bloom filter of digests: never "not met" for a digest it was given, rarely "maybe" for others."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from projections.seen import SeenDigests


def digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@given(st.lists(st.binary(max_size=40), max_size=300))
def test_every_digest_added_is_held(blobs: list[bytes]) -> None:
    seen = SeenDigests(len(blobs))
    added = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    for item in added:
        seen.add(item)
    assert all(seen.may_hold(item) for item in added)


def test_digests_never_added_are_mostly_certainly_not_met() -> None:
    seen = SeenDigests(20_000)
    for n in range(20_000):
        seen.add(digest(n))
    false_maybes = sum(seen.may_hold(digest(n)) for n in range(20_000, 40_000))
    # At the designed load the rate is about 0.5% (88 here); a filter that answered "maybe" to everything gives 20,000.
    assert false_maybes < 200


def test_an_empty_filter_has_met_nothing() -> None:
    seen = SeenDigests(0)
    assert not any(seen.may_hold(digest(n)) for n in range(1000))
