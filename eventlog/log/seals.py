"""Seal records of sealed segments and the RFC 6962 Merkle tree over their line hashes.

A seal states what a sealed segment holds (count, seq and time ranges, byte length, file SHA-256, Merkle root of
its line hashes) and the hash of the previous seal file, so seals form a chain of their own next to the line chain.
Leaves are the 32-byte line hashes: leaf = SHA-256(0x00 || line hash), node = SHA-256(0x01 || left || right).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from eventlog import extensions
from eventlog.errors import IntegrityError
from eventlog.format.canonical import canonical_json
from eventlog.format.events import GENESIS, decode_line, line_hash
from eventlog.log.segments import SegmentName, iter_lines

SEAL_FORMAT = 1


class MerkleTree:
    """Streaming RFC 6962 Merkle tree hash: constant memory per level, leaves added in order."""

    __slots__ = ("_count", "_stack")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []
        self._count = 0

    def add(self, leaf_data: bytes) -> None:
        """Add the next leaf (its data; the 0x00 prefix is applied here)."""
        size, digest = 1, hashlib.sha256(b"\x00" + leaf_data).digest()
        stack = self._stack
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, hashlib.sha256(b"\x01" + left + digest).digest()
        stack.append((size, digest))
        self._count += 1

    def extend(self, leaves: bytes) -> None:
        """Add leaves given as concatenated 32-byte line hashes, in order."""
        records = extensions.records
        if records is None:
            for at in range(0, len(leaves), 32):
                self.add(leaves[at:at + 32])
            return
        records.merkle_extend(self._stack, leaves)
        self._count += len(leaves) // 32

    @property
    def count(self) -> int:
        return self._count

    def root(self) -> str:
        """Merkle tree hash of the leaves so far (hex); SHA-256 of nothing for an empty tree."""
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = hashlib.sha256(b"\x01" + left + digest).digest()
        return digest.hex()


def merkle_root(leaves: list[bytes]) -> str:
    """Merkle tree hash of a list of leaf data (hex)."""
    tree = MerkleTree()
    for leaf in leaves:
        tree.add(leaf)
    return tree.root()


class Seal(msgspec.Struct, frozen=True, kw_only=True):
    """What a sealed segment holds, and the hash of the seal before it."""

    format: int = SEAL_FORMAT
    first_seq: int
    last_seq: int
    count: int
    byte_length: int
    file_sha256: str
    merkle_root: str
    first_prev: str
    last_line_hash: str
    observed_from_utc: str | None
    observed_to_utc: str | None
    recorded_from_utc: str
    recorded_to_utc: str
    prev_seal_sha256: str
    sealed_at_utc: str
    checksum: str = ""

    def expected_checksum(self) -> str:
        """SHA-256 of the seal's other fields: a flipped byte in the newest seal, which no later seal covers yet,
        is still caught."""
        fields = msgspec.to_builtins(self)
        fields.pop("checksum", None)
        return hashlib.sha256(canonical_json(fields)).hexdigest()

    def to_bytes(self) -> bytes:
        """The seal file's bytes: canonical JSON, its checksum filled in, and a newline."""
        sealed = msgspec.structs.replace(self, checksum=self.expected_checksum())
        return canonical_json(msgspec.to_builtins(sealed)) + b"\n"


def read_seal(path: Path) -> tuple[Seal, bytes]:
    """Read a seal file; returns the seal and its raw bytes (whose hash the next seal holds).

    Raises IntegrityError naming the file when it is not a seal (damaged, truncated, a folder), OSError when it
    cannot be read.
    """
    label = f"log/seals/{path.name}"
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise IntegrityError(f"{label} is a folder where a seal file belongs") from None
    try:
        return msgspec.json.decode(raw, type=Seal), raw
    except msgspec.DecodeError as exc:
        raise IntegrityError(f"{label} is not a readable seal ({exc})") from None


def seal_hash(raw: bytes) -> str:
    """Hash of a seal file as the seal chain sees it."""
    return hashlib.sha256(raw).hexdigest()


class SealAccumulator:
    """What a seal states about a segment, gathered line by line as the segment is written or read.

    The writer feeds it every line it appends, so sealing a segment costs no second read of it.
    """

    __slots__ = ("file_hash", "first_prev", "last_hash", "observed_from", "observed_to", "recorded_from",
                 "recorded_to", "size", "tree")

    def __init__(self) -> None:
        self.file_hash = hashlib.sha256()
        self.tree = MerkleTree()
        self.size = 0
        self.first_prev = self.last_hash = GENESIS
        self.observed_from: str | None = None
        self.observed_to: str | None = None
        self.recorded_from = self.recorded_to = ""

    def add(self, *, prev: str, line_hash: str, observed: str | None, recorded: str) -> None:
        """Note one line: the hash before it, its own hash, its observed and recorded times."""
        self.add_lines(prev=prev, leaves=bytes.fromhex(line_hash), observed=[observed], recorded=recorded)

    def add_lines(self, *, prev: str, leaves: bytes, observed: list[str | None], recorded: str) -> None:
        """Note lines at once: `leaves` are their hashes (32 bytes each, in order), `prev` the hash before the first,
        `observed` their observed times."""
        if not leaves:
            return
        if self.tree.count == 0:
            self.first_prev, self.recorded_from = prev, recorded
        self.last_hash = leaves[-32:].hex()
        self.tree.extend(leaves)
        if recorded < self.recorded_from:
            self.recorded_from = recorded
        if recorded > self.recorded_to:
            self.recorded_to = recorded
        times = [moment for moment in observed if moment is not None]
        if times:
            first, last = min(times), max(times)
            if self.observed_from is None or first < self.observed_from:
                self.observed_from = first
            if self.observed_to is None or last > self.observed_to:
                self.observed_to = last

    def add_bytes(self, data: bytes) -> None:
        """Note bytes written to the file (whole lines with their newlines)."""
        self.file_hash.update(data)
        self.size += len(data)

    def seal(self, name: SegmentName, *, prev_seal_sha256: str, sealed_at_utc: str) -> Seal:
        assert name.last_seq is not None
        return Seal(first_seq=name.first_seq, last_seq=name.last_seq, count=self.tree.count,
                    byte_length=self.size, file_sha256=self.file_hash.hexdigest(), merkle_root=self.tree.root(),
                    first_prev=self.first_prev, last_line_hash=self.last_hash,
                    observed_from_utc=self.observed_from, observed_to_utc=self.observed_to,
                    recorded_from_utc=self.recorded_from, recorded_to_utc=self.recorded_to,
                    prev_seal_sha256=prev_seal_sha256, sealed_at_utc=sealed_at_utc)


def compute_seal(path: Path, name: SegmentName, *, prev_seal_sha256: str, sealed_at_utc: str) -> Seal:
    """Read a sealed segment once and state what it holds."""
    accumulator = SealAccumulator()
    for _, raw in iter_lines(path):
        accumulator.add_bytes(raw + b"\n")
        event = decode_line(raw)
        stamp = event.body.get("observed_at_utc")
        accumulator.add(prev=event.prev, line_hash=line_hash(raw), observed=stamp if isinstance(stamp, str) else None,
                        recorded=event.recorded_at_utc)
    return accumulator.seal(name, prev_seal_sha256=prev_seal_sha256, sealed_at_utc=sealed_at_utc)
