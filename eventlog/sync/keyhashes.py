"""A set of the 64-bit hashes of the keys a sync met, in one flat array: 8 to 16 bytes a key.

A full reconciliation can touch every key of a lake; a Python set of their hashes costs about 70 bytes a key (an
int object and a slot), which at millions of keys outgrows the rest of the sync. Here the hashes sit in an
open-addressing table of signed 64-bit slots, kept at most half full. `hash()` never returns -1, so -1 marks an
empty slot and every hash value can be held: the set answers exactly as a set of the same hashes would.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final

__all__ = ["KeyHashes"]

_EMPTY: Final = -1


class KeyHashes:
    """Distinct `hash()` values, added one at a time; `len` is how many, `in` asks for one."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, values: Iterable[int] = ()) -> None:
        self._slots = array("q", [_EMPTY]) * 1024
        self._mask = len(self._slots) - 1
        self._count = 0
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int) or value == _EMPTY:
            return False
        slots, mask = self._slots, self._mask
        slot = value & mask
        while True:
            held = slots[slot]
            if held == value:
                return True
            if held == _EMPTY:
                return False
            slot = (slot + 1) & mask

    def add(self, value: int) -> bool:
        """Add a hash (a value of `hash()`: a signed 64-bit int other than -1); whether it was new."""
        if value == _EMPTY:
            raise ValueError("-1 is not a value hash() returns")
        if not self._place(self._slots, self._mask, value):
            return False
        self._count += 1
        if 2 * self._count > len(self._slots):
            self._grow()
        return True

    @staticmethod
    def _place(slots: array[int], mask: int, value: int) -> bool:
        """Put `value` in `slots` unless it is there; whether it was added."""
        slot = value & mask  # two's complement: the low bits of a negative value index as they do unsigned
        while True:
            held = slots[slot]
            if held == value:
                return False
            if held == _EMPTY:
                slots[slot] = value
                return True
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = self._slots
        slots = array("q", [_EMPTY]) * (2 * len(old))
        mask = len(slots) - 1
        for value in old:
            if value != _EMPTY:
                self._place(slots, mask, value)
        self._slots, self._mask = slots, mask
