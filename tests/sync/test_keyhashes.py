"""KeyHashes answers as a Python set of the same hashes would."""

from __future__ import annotations

import random

import pytest

from eventlog.sync.keyhashes import KeyHashes


def test_it_holds_what_a_set_holds_through_growth() -> None:
    rng = random.Random(20240501)
    print("seed 20240501")
    values = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(5000)]
    values += [*values[:700], 0, -2, 1, (1 << 63) - 1, -(1 << 63), 1024, 2048]
    held, expected = KeyHashes(), set()
    for value in values:
        assert held.add(value) == (value not in expected)
        expected.add(value)
    assert len(held) == len(expected)
    assert all(value in held for value in expected)
    absent = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(5000)]
    assert [value in held for value in absent] == [value in expected for value in absent]
    assert -1 not in held and "Ada" not in held and not KeyHashes()


def test_keys_by_their_hash() -> None:
    names = [("wiki", "page", f"P{n}") for n in range(3000)]
    held = KeyHashes(hash(name) for name in names + names[:10])
    assert len(held) == 3000 and hash(("wiki", "page", "P3000")) not in held


def test_minus_one_is_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        KeyHashes().add(-1)
