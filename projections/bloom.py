"""A Bloom filter of SHA-256 hex digests: which record keys and contents a rebuild has already met.

A rebuild starts from an empty table, so most keys and contents it meets are new. Asking the database about each
one costs more than the rest of the fold; this filter answers "certainly not met" for nearly all of them, and
only a "maybe" goes on to the exact look-up. It never answers "not met" for a digest it met before, so the fold's
result is exactly what the look-ups alone give.
"""

from __future__ import annotations

from typing import Final

# Sixteen bits per expected digest and three probes: about 0.5% of the digests not met come out "maybe".
_BITS_PER_ITEM: Final = 16
_MIN_BITS: Final = 1 << 16


class SeenDigests:
    """The digests met so far, sized for `expected` of them (about 0.5% false "maybe"s; more raise the rate)."""

    __slots__ = ("_bits", "_size")

    def __init__(self, expected: int) -> None:
        self._size = max(_MIN_BITS, _BITS_PER_ITEM * expected)
        self._bits = bytearray(self._size // 8 + 1)

    def meet(self, digest: str) -> bool:
        """Note `digest` as met: False when it certainly was not met before, True when it was (or, rarely, may
        have been)."""
        # The string's own hash (computed once per string, and already by the dicts the fold keeps) places it; a
        # filter only ever errs towards "maybe", so any fixed function of the digest keeps the answers exact.
        value, size, bits = hash(digest), self._size, self._bits
        first, step = value % size, (value >> 32) % size | 1
        met = True
        for position in (first, (first + step) % size, (first + 2 * step) % size):
            byte, mask = position >> 3, 1 << (position & 7)
            if not bits[byte] & mask:
                met = False
                bits[byte] |= mask
        return met
