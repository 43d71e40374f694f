"""Tamper evidence: recompute every line hash, the chain, digests, content hashes, seals and the seal chain.

Each line is checked on its own first (valid event, canonical bytes, digest, content hash), so a flipped byte is
named at the line it sits in, not at the next line whose `prev` no longer matches.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from eventlog.canonical import canonical_json
from eventlog.events import GENESIS, decode_line, event_digest, line_hash
from eventlog.seals import MerkleTree, Seal, read_seal, seal_hash
from eventlog.segments import format_seal_name, iter_lines, list_segments, parse_seal_name

CONTENT_KEYS = ("entity_type", "exchange_type", "natural_key", "request", "response", "source_system")


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One disagreement, located."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.message}"


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of `verify`: counts and every problem found, the first one first."""

    ok: bool
    segments: int
    seals: int
    events: int
    problems: tuple[Problem, ...] = ()


def verify_log(log_root: Path, *, progress: Callable[[int], None] | None = None,
               max_problems: int = 100) -> VerifyReport:
    """Check a log folder end to end; never raises for bad data, reports it."""
    segments_dir, seals_dir = log_root / "segments", log_root / "seals"
    problems: list[Problem] = []
    seals: dict[tuple[int, int], tuple[Seal, bytes, str]] = {}
    for entry in sorted(os.scandir(seals_dir), key=lambda e: e.name) if seals_dir.is_dir() else []:
        parsed = parse_seal_name(entry.name)
        if parsed is None:
            continue
        try:
            seal, raw = read_seal(Path(entry.path))
        except ValueError as exc:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None, message=f"unreadable seal: {exc}"))
            continue
        if seal.checksum != seal.expected_checksum() or seal.to_bytes() != raw:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None,
                                    message="seal checksum does not match its fields (the seal was altered)"))
        elif (seal.first_seq, seal.last_seq) != parsed:
            problems.append(Problem(file=f"log/seals/{entry.name}", line=None,
                                    message="seal names a different seq range than its file name"))
        seals[parsed] = (seal, raw, entry.name)

    previous_seal = GENESIS
    for (_, _), (seal, raw, name) in sorted(seals.items()):
        if seal.prev_seal_sha256 != previous_seal:
            problems.append(Problem(file=f"log/seals/{name}", line=None,
                                    message="seal chain broken: prev_seal_sha256 does not match the previous seal"))
        previous_seal = seal_hash(raw)

    expected_seq, last_hash, events = 1, GENESIS, 0
    seen_ids: set[bytes] = set()
    segment_list = list_segments(segments_dir)
    for name, path in segment_list:
        label = f"log/segments/{path.name}"
        if name.first_seq != expected_seq:
            problems.append(Problem(file=label, line=None,
                                    message=f"segment starts at seq {name.first_seq}, expected {expected_seq}"))
        digest = hashlib.sha256()
        tree = MerkleTree()
        size = 0
        first_prev = None
        for number, (_, line) in enumerate(iter_lines(path), start=1):
            digest.update(line + b"\n")
            size += len(line) + 1
            message = check_line(line, expected_seq=expected_seq, prev=last_hash, seen_ids=seen_ids)
            if message is not None:
                problems.append(Problem(file=label, line=number, message=message))
                if len(problems) >= max_problems:
                    return _report(problems, segment_list, seals, events)
            if first_prev is None:
                first_prev = last_hash
            last_hash = line_hash(line)
            tree.add(bytes.fromhex(last_hash))
            expected_seq += 1
            events += 1
            if progress is not None and events % 10_000 == 0:
                progress(events)
        if path.stat().st_size != size:
            problems.append(Problem(file=label, line=tree.count + 1, message="segment ends in a torn line"))
        if name.active:
            continue
        assert name.last_seq is not None
        entry = seals.get((name.first_seq, name.last_seq))
        if entry is None:
            problems.append(Problem(file=label, line=None,
                                    message=f"sealed segment has no seal log/seals/"
                                            f"{format_seal_name(name.first_seq, name.last_seq)}"))
            continue
        seal = entry[0]
        checks = (
            (seal.count == tree.count, f"seal says {seal.count} events, segment holds {tree.count}"),
            (name.last_seq == expected_seq - 1, f"segment name ends at {name.last_seq}, lines end at "
                                                f"{expected_seq - 1}"),
            (seal.byte_length == size, f"seal says {seal.byte_length} bytes, segment has {size}"),
            (seal.file_sha256 == digest.hexdigest(), "file SHA-256 does not match its seal"),
            (seal.merkle_root == tree.root(), "Merkle root does not match its seal"),
            (seal.last_line_hash == last_hash, "last line hash does not match its seal"),
            (first_prev is None or seal.first_prev == first_prev, "first line's prev does not match its seal"),
        )
        problems.extend(Problem(file=label, line=None, message=message) for ok, message in checks if not ok)

    present = {(name.first_seq, name.last_seq) for name, _ in segment_list}
    for key, (_, _, seal_name) in sorted(seals.items()):
        if key not in present:
            problems.append(Problem(file=f"log/seals/{seal_name}", line=None,
                                    message="the segment this seal describes is missing from log/segments"))
    return _report(problems, segment_list, seals, events)


def check_line(line: bytes, *, expected_seq: int, prev: str, seen_ids: set[bytes]) -> str | None:
    """The first thing wrong with one line at its place in the chain, or None."""
    try:
        event = decode_line(line)
    except ValueError as exc:  # msgspec's decode and validation errors, and invalid UTF-8 in keys
        return f"not a valid event line ({exc})"
    try:
        if canonical_json(msgspec.json.decode(line)) != line:
            return "line is not in canonical JSON form"
    except Exception as exc:  # any refusal of the canonical encoder is a finding here, not a crash
        return f"line has no canonical JSON form ({exc})"
    if event.seq != expected_seq:
        return f"seq {event.seq} where {expected_seq} was expected"
    if event.prev != prev:
        return "prev does not match the hash of the line before (chain broken)"
    if event_digest(event) != event.digest:
        return f"digest of event {event.event_id} does not match its content"
    body = event.body
    if event.type != "resolved":
        if "request" in body:
            content = canonical_json({key: body.get(key) for key in CONTENT_KEYS})
            if hashlib.sha256(content).hexdigest() != body.get("content_sha256"):
                return f"content_sha256 of event {event.event_id} does not match its request/response"
        if event.event_id != body.get("exchange_id"):
            return f"event id {event.event_id} differs from the envelope's exchange_id"
    try:
        raw_id = bytes.fromhex(event.event_id.replace("-", ""))
    except ValueError:
        return f"event id {event.event_id!r} is not a UUID"
    if raw_id in seen_ids:
        return f"event id {event.event_id} appears twice in the log"
    seen_ids.add(raw_id)
    return None


def _report(problems: list[Problem], segments: list[object], seals: dict[object, object], events: int) -> VerifyReport:
    return VerifyReport(ok=not problems, segments=len(segments), seals=len(seals), events=events,
                        problems=tuple(problems))
