"""A Bloom filter of SHA-256 hex digests: which record keys and contents a rebuild has already met.

A rebuild starts from an empty table, so most keys and contents it meets are new. Asking the database about each
one costs more than the rest of the fold; this filter answers "certainly not met" for nearly all of them, and
only a "maybe" goes on to the exact look-up. It never answers "not met" for a digest it was given, so the fold's
result is exactly what the look-ups alone give.
"""

from __future__ import annotations

from typing import Final

# Sixteen bits per expected digest and three probes: about 0.5% of the digests not met come out "maybe".
_BITS_PER_ITEM: Final = 16
_MIN_BITS: Final = 1 << 16


class SeenDigests:
    """Digests added so far, sized for `expected` of them (about 0.5% false "maybe"s; more only raise the rate)."""

    __slots__ = ("_bits", "_size")

    def __init__(self, expected: int) -> None:
        self._size = max(_MIN_BITS, _BITS_PER_ITEM * expected)
        self._bits = bytearray(self._size // 8 + 1)

    def _positions(self, digest: str) -> tuple[int, int, int]:
        # SHA-256 output is uniform: three disjoint 64-bit slices of it are three independent hashes.
        size = self._size
        return int(digest[0:16], 16) % size, int(digest[16:32], 16) % size, int(digest[32:48], 16) % size

    def add(self, digest: str) -> None:
        bits = self._bits
        for position in self._positions(digest):
            bits[position >> 3] |= 1 << (position & 7)

    def may_hold(self, digest: str) -> bool:
        """False when `digest` was certainly never added; True when it was, or (rarely) when it only may have been."""
        bits = self._bits
        return all(bits[position >> 3] >> (position & 7) & 1 for position in self._positions(digest))
