"""The current-version rule as a function of the set of events: resolutions settle their candidates."""

from __future__ import annotations

import itertools

from projections.rules import Settlement, VersionRace, settle

OLD, MID, NEW = ("2024-05-01T00:00:00.000000Z", "a" * 64, "x"), ("2024-05-02T00:00:00.000000Z", "b" * 64, "y"), (
    "2024-05-03T00:00:00.000000Z", "c" * 64, "z")


def test_a_resolution_keeps_its_winner_against_its_candidates_until_a_newer_version() -> None:
    best = {OLD[1]: OLD, MID[1]: MID}
    chosen = Settlement("e1", OLD[1], frozenset({OLD[1], MID[1]}))
    assert settle(best, []) == MID[1]
    assert settle(best, [chosen]) == OLD[1]
    # The loser observed again, later still: a candidate already decided, not a new one.
    assert settle({OLD[1]: OLD, MID[1]: ("2024-06-01T00:00:00.000000Z", MID[1], "y2")}, [chosen]) == OLD[1]
    # A new version newer than every candidate takes over; one older than the best candidate does not.
    assert settle({**best, NEW[1]: NEW}, [chosen]) == NEW[1]
    assert settle({**best, "d" * 64: ("2024-05-01T12:00:00.000000Z", "d" * 64, "w")}, [chosen]) == OLD[1]
    # A winner the key never had changes nothing.
    assert settle(best, [Settlement("e2", "f" * 64, frozenset({"f" * 64, MID[1]}))]) == MID[1]


def test_two_decisions_of_one_conflict_apply_the_same_one_in_any_order() -> None:
    best = {OLD[1]: OLD, MID[1]: MID}
    candidates = frozenset(best)
    one, other = Settlement("0f", OLD[1], candidates), Settlement("a1", MID[1], candidates)
    results = {settle(best, list(order)) for order in itertools.permutations([one, other])}
    assert results == {OLD[1]}  # the smaller event id


def test_a_later_conflict_over_more_versions_supersedes_an_earlier_one() -> None:
    best = {OLD[1]: OLD, MID[1]: MID, NEW[1]: NEW}
    first = Settlement("ff", NEW[1], frozenset({MID[1], NEW[1]}))
    second = Settlement("00", OLD[1], frozenset({OLD[1], MID[1], NEW[1]}))
    for order in itertools.permutations([first, second]):
        assert settle(best, list(order)) == OLD[1]


def test_the_race_gives_the_same_current_version_in_every_order() -> None:
    steps = [("observe", OLD), ("observe", MID), ("resolve", OLD[1]), ("observe", NEW)]
    seen = set()
    for order in itertools.permutations(steps):
        race = VersionRace()
        for kind, value in order:
            if kind == "observe":
                race.observe(*value)  # type: ignore[misc]
            else:
                race.resolve(value, candidates=[OLD[1], MID[1]], event_id="e1")  # type: ignore[arg-type]
        seen.add(race.current)
    assert seen == {NEW[1]}
