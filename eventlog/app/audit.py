"""Audit over the full history of a lake: which version of a key was current when, provenance, version diffs.

Everything here reads the log through the `Lake` facade and its index; nothing is written. The current version of
a natural key follows the projection rule: the newest observed_at_utc wins, ties go to the larger content hash, and
an older observation recorded late does not become current. A recorded `resolved` event applies as recorded: its
winner becomes current with its newest observation so far (the rules of projections/raw_exchange.py).
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from eventlog.app.lake import Lake
from eventlog.cold.reader import ARCHIVE_DIR, format_archive_name
from eventlog.errors import InputError, NotFoundError
from eventlog.format.canonical import canonical_json, format_path
from eventlog.format.envelope import json_kind, parse_utc
from eventlog.format.events import PAYLOAD_KEYS, Event
from eventlog.log.reader import segment_sources
from eventlog.log.seals import read_seal
from eventlog.log.segments import format_seal_name, format_segment_name
from projections.rules import VersionRace, resolution_candidates, resolution_scope_matches, resolution_winner

DiffPart = Literal["response", "request", "all"]
DIFF_PARTS: tuple[str, ...] = ("response", "request", "all")
# Strings past this many characters, or holding a line break, are shown as a unified diff of their lines.
LONG_TEXT = 200
MIN_PREFIX = 4
_HEX = re.compile(r"[0-9a-f]+\Z")


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    """One observation of a key and the version that was current after the lake applied it."""

    seq: int
    type: str
    exchange_id: str
    observed_at_utc: str
    recorded_at_utc: str
    origin: str
    provenance: dict[str, Any]
    content_sha256: str
    current_after: str
    made_current: bool


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """A stretch of observed time during which one version was current; `until` None means still current."""

    current_from_utc: str
    current_until_utc: str | None


class Version(msgspec.Struct, frozen=True, kw_only=True):
    """One distinct content of a key: its observations and when (in observed time) it was current."""

    content_sha256: str
    first_exchange_id: str
    first_seq: int
    observations: int
    first_observed_at_utc: str
    last_observed_at_utc: str
    current: bool
    periods: tuple[Period, ...]


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded sync decision for the key."""

    seq: int
    event_id: str
    recorded_at_utc: str
    origin: str
    winner: str | None
    strategy: str | None
    candidates: tuple[str, ...]
    current_after: str | None


class History(msgspec.Struct, frozen=True, kw_only=True):
    """Every observation of one natural key, its versions, resolutions and the version current now."""

    source_system: str
    entity_type: str
    natural_key: str
    order: str
    current: str | None
    rows: tuple[HistoryRow, ...]
    versions: tuple[Version, ...]
    resolutions: tuple[Resolution, ...]


def history(lake: Lake, source_system: str, entity_type: str, natural_key: str, *,
            order: Literal["observed", "log"] = "observed") -> History:
    """The audit history of one key; rows in observed order (observed_at_utc, then seq) or in log order.

    `current_after` is computed in log order whatever the display order. Raises NotFoundError when the lake
    holds no observation of the key. Cost: the key's events plus the lake's resolved events, read by index.
    """
    observed = [event for event in lake.history(source_system, entity_type, natural_key)
                if event.type != "resolved"]
    if not observed:
        raise NotFoundError(f"no observation of {source_system}/{entity_type}/{natural_key} "
                            f"is in the lake at {lake.root}")
    resolved = [event for event in _resolved_events(lake)
                if resolution_scope_matches(event.body, source_system, entity_type, natural_key)]
    rows, resolutions, current = _fold(observed, resolved)
    if order == "observed":
        rows.sort(key=lambda row: (parse_utc(row.observed_at_utc), row.seq))
    return History(source_system=source_system, entity_type=entity_type, natural_key=natural_key, order=order,
                   current=current, rows=tuple(rows), versions=_versions(observed, current),
                   resolutions=tuple(resolutions))


def _fold(observed: list[Event], resolved: list[Event]) -> tuple[list[HistoryRow], list[Resolution], str | None]:
    """Apply observations and resolutions in log order, noting the current version after each (projections.rules)."""
    race = VersionRace()
    rows: list[HistoryRow] = []
    resolutions: list[Resolution] = []
    for event in sorted([*observed, *resolved], key=lambda item: item.seq):
        body = event.body
        before = race.current
        if event.type == "resolved":
            winner = resolution_winner(body)
            race.resolve(winner, candidates=resolution_candidates(body), event_id=event.event_id)
            resolutions.append(Resolution(
                seq=event.seq, event_id=event.event_id, recorded_at_utc=event.recorded_at_utc, origin=event.origin,
                winner=winner, strategy=body.get("strategy") if isinstance(body.get("strategy"), str) else None,
                candidates=tuple(str(item) for item in body.get("candidates") or ()),
                current_after=race.current))
            continue
        content = event.content_sha256 or ""
        race.observe(body["observed_at_utc"], content, str(body.get("exchange_id") or event.event_id))
        current = race.current
        assert current is not None  # an observation was just applied
        rows.append(HistoryRow(
            seq=event.seq, type=event.type, exchange_id=event.event_id, observed_at_utc=body["observed_at_utc"],
            recorded_at_utc=event.recorded_at_utc, origin=event.origin, provenance=dict(body.get("provenance") or {}),
            content_sha256=content, current_after=current, made_current=current == content and before != content))
    return rows, resolutions, race.current


def _versions(observed: list[Event], current: str | None) -> tuple[Version, ...]:
    """Distinct contents in order of first observation, each with its current periods in observed time."""
    by_content: dict[str, list[Event]] = {}
    for event in observed:
        by_content.setdefault(event.content_sha256 or "", []).append(event)
    periods: dict[str, list[Period]] = {content: [] for content in by_content}
    # At each observed instant the largest content hash of that instant is current: the rule's tie-break.
    winners: dict[datetime, tuple[str, str]] = {}
    for event in observed:
        text = event.body["observed_at_utc"]
        stamp, content = parse_utc(text), event.content_sha256 or ""
        if stamp not in winners or content > winners[stamp][1]:
            winners[stamp] = (text, content)
    open_period: tuple[str, str] | None = None
    for stamp in sorted(winners):
        text, content = winners[stamp]
        if open_period is not None and open_period[1] == content:
            continue
        if open_period is not None:
            periods[open_period[1]].append(Period(current_from_utc=open_period[0], current_until_utc=text))
        open_period = (text, content)
    if open_period is not None:
        periods[open_period[1]].append(Period(current_from_utc=open_period[0], current_until_utc=None))
    versions = []
    for content, events in by_content.items():
        stamps = sorted((parse_utc(event.body["observed_at_utc"]), event.body["observed_at_utc"]) for event in events)
        versions.append(Version(
            content_sha256=content, first_exchange_id=events[0].event_id, first_seq=events[0].seq,
            observations=len(events), first_observed_at_utc=stamps[0][1], last_observed_at_utc=stamps[-1][1],
            current=content == current, periods=tuple(periods[content])))
    versions.sort(key=lambda version: (parse_utc(version.first_observed_at_utc), version.content_sha256))
    return tuple(versions)


def _resolved_events(lake: Lake) -> Iterator[Event]:
    """Every `resolved` event of the lake, found through the index rather than a scan of the log."""
    for entry in lake.log.index.by_type("resolved"):
        yield lake.log.read_at(entry)


# -- provenance ---------------------------------------------------------------------------------------------------


class FirstObservation(msgspec.Struct, frozen=True, kw_only=True):
    """The observation whose line holds the payload a revisit refers to."""

    exchange_id: str
    seq: int
    observed_at_utc: str | None
    recorded_at_utc: str


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """Where an event's line lives: segment file, its state, seal and archive, byte offset and length."""

    segment: str
    state: Literal["active", "sealed", "evicted"]
    seal: str | None
    sealed_at_utc: str | None
    archive: str | None
    offset: int
    length: int


class ProvenanceReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the lake knows about one observation, without its payload."""

    exchange_id: str
    type: str
    seq: int
    recorded_at_utc: str
    origin: str
    digest: str
    prev: str
    content_sha256: str | None
    provenance: dict[str, Any]
    redactions_applied: tuple[str, ...]
    payload: Literal["inline", "revisit", "none"]
    first_observation: FirstObservation | None
    envelope: dict[str, Any]
    placement: Placement


def provenance(lake: Lake, exchange_id: str) -> ProvenanceReport:
    """What the lake knows about one exchange (or any event id): envelope, identity, payload, placement.

    Raises NotFoundError when the id is not in the lake; reading an evicted segment needs its archive's key.
    """
    entry = lake.log.index.by_exchange_id(exchange_id.strip().lower())
    if entry is None:
        raise NotFoundError(f"exchange {exchange_id} is not in the lake at {lake.root}")
    event = lake.log.read_at(entry)
    body = event.body
    first = None
    payload: Literal["inline", "revisit", "none"] = "none"
    if event.type == "observed":
        payload = "inline"
    elif event.type == "revisited":
        payload = "revisit"
        origin_entry = lake.log.index.first_payload(entry.content_sha256) if entry.content_sha256 else None
        if origin_entry is not None:
            source = lake.log.read_at(origin_entry)
            first = FirstObservation(exchange_id=source.event_id, seq=source.seq,
                                     observed_at_utc=source.body.get("observed_at_utc"),
                                     recorded_at_utc=source.recorded_at_utc)
    return ProvenanceReport(
        exchange_id=event.event_id, type=event.type, seq=event.seq, recorded_at_utc=event.recorded_at_utc,
        origin=event.origin, digest=event.digest, prev=event.prev, content_sha256=event.content_sha256,
        provenance=dict(body.get("provenance") or {}),
        redactions_applied=tuple(body.get("redactions_applied") or ()), payload=payload, first_observation=first,
        envelope={key: value for key, value in body.items() if key not in PAYLOAD_KEYS},
        placement=_placement(lake, entry.segment, entry.offset, entry.length))


def _placement(lake: Lake, first_seq: int, offset: int, length: int) -> Placement:
    for name, path in segment_sources(lake.log.segments_dir, lake.cold):
        if name.first_seq != first_seq:
            continue
        if name.last_seq is None:
            return Placement(segment=format_segment_name(first_seq), state="active", seal=None, sealed_at_utc=None,
                             archive=None, offset=offset, length=length)
        seal_name = format_seal_name(first_seq, name.last_seq)
        seal_path = lake.log.seals_dir / seal_name
        sealed_at = read_seal(seal_path)[0].sealed_at_utc if seal_path.exists() else None
        archived = any(item.first_seq == first_seq for item in lake.cold.locations())
        return Placement(segment=format_segment_name(first_seq, name.last_seq),
                         state="evicted" if path is None else "sealed", seal=seal_name, sealed_at_utc=sealed_at,
                         archive=f"{ARCHIVE_DIR}/{format_archive_name(first_seq, name.last_seq)}" if archived else None,
                         offset=offset, length=length)
    raise NotFoundError(f"the segment starting at seq {first_seq} is not in the lake at {lake.root}")


# -- diff ---------------------------------------------------------------------------------------------------------


class Change(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One difference at a JSON path: added (new), removed (old), or changed (old and new, or a text diff).

    A changed long text carries its lengths and `text_diff` (unified diff lines) instead of both values.
    """

    op: Literal["added", "removed", "changed"]
    path: str
    old: Any = msgspec.UNSET
    new: Any = msgspec.UNSET
    old_length: int | None = None
    new_length: int | None = None
    text_diff: tuple[str, ...] | None = None


class VersionRef(msgspec.Struct, frozen=True, kw_only=True):
    """The version a diff side stands for, and the observation its payload was read from."""

    content_sha256: str
    exchange_id: str
    seq: int
    observed_at_utc: str
    response_ref: dict[str, Any] | None


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed between two versions of a key, in a deterministic order."""

    source_system: str
    entity_type: str
    natural_key: str
    part: str
    from_version: VersionRef = msgspec.field(name="from")
    to_version: VersionRef = msgspec.field(name="to")
    added: int
    removed: int
    changed: int
    changes: tuple[Change, ...]


def diff(lake: Lake, source_system: str, entity_type: str, natural_key: str, *, from_ref: str = "previous",
         to_ref: str = "current", part: DiffPart = "response") -> Diff:
    """Diff two versions of one key; a REF is a content hash prefix, an exchange id, `previous` or `current`.

    `current` is the version current now, `previous` the most recently observed other version. Raises
    NotFoundError when the key, a REF, or a previous version is missing, InputError for a malformed or ambiguous
    REF (an ambiguous prefix lists its matches).
    """
    audit = history(lake, source_system, entity_type, natural_key, order="log")
    old = _resolve_ref(lake, audit, from_ref, "--from")
    new = _resolve_ref(lake, audit, to_ref, "--to")
    old_event, new_event = lake.get(old.exchange_id), lake.get(new.exchange_id)
    assert old_event is not None and new_event is not None
    parts = ("request", "response") if part == "all" else (part,)
    changes: list[Change] = []
    for name in parts:
        _compare(old_event.body.get(name), new_event.body.get(name), [name], changes)
    return Diff(source_system=source_system, entity_type=entity_type, natural_key=natural_key, part=part,
                from_version=_with_ref(old, old_event), to_version=_with_ref(new, new_event),
                added=sum(change.op == "added" for change in changes),
                removed=sum(change.op == "removed" for change in changes),
                changed=sum(change.op == "changed" for change in changes), changes=tuple(changes))


def _with_ref(ref: VersionRef, event: Event) -> VersionRef:
    value = event.body.get("response_ref")
    return msgspec.structs.replace(ref, response_ref=value if isinstance(value, dict) else None)


def _resolve_ref(lake: Lake, audit: History, ref: str, option: str) -> VersionRef:
    label = f"{audit.source_system}/{audit.entity_type}/{audit.natural_key}"
    text = ref.strip().lower()
    versions = {version.content_sha256: version for version in audit.versions}
    if text == "current":
        if audit.current is None:
            raise NotFoundError(f"{label} has no current version")
        return _version_ref(versions[audit.current])
    if text == "previous":
        others = [version for version in audit.versions if version.content_sha256 != audit.current]
        if not others:
            raise NotFoundError(f"{label} has one version ({(audit.current or '')[:12]}); there is no previous "
                                f"version to compare with")
        return _version_ref(max(others, key=lambda version: (parse_utc(version.last_observed_at_utc),
                                                               version.content_sha256)))
    if "-" in text:
        try:
            exchange_id = str(uuid.UUID(text))
        except ValueError:
            raise InputError(f"{option} {ref!r} is not a content hash prefix, an exchange id, 'previous' or "
                             f"'current'") from None
        for row in audit.rows:
            if row.exchange_id == exchange_id:
                return VersionRef(content_sha256=row.content_sha256, exchange_id=row.exchange_id, seq=row.seq,
                                  observed_at_utc=row.observed_at_utc, response_ref=None)
        if lake.get(exchange_id) is None:
            raise NotFoundError(f"{option}: exchange {exchange_id} is not in the lake at {lake.root}")
        raise InputError(f"{option}: exchange {exchange_id} is not an observation of {label}")
    if not _HEX.match(text) or len(text) > 64:
        raise InputError(f"{option} {ref!r} is not a content hash prefix, an exchange id, 'previous' or 'current'")
    if len(text) < MIN_PREFIX:
        raise InputError(f"{option} {ref!r} is too short; a content hash prefix needs at least {MIN_PREFIX} "
                         f"hex digits")
    matches = sorted(content for content in versions if content.startswith(text))
    if not matches:
        raise NotFoundError(f"{option}: no version of {label} has a content hash starting with {text}")
    if len(matches) > 1:
        raise InputError(f"{option} {ref!r} is ambiguous: it starts {len(matches)} versions of {label} "
                         f"({', '.join(match[:16] for match in matches)})")
    return _version_ref(versions[matches[0]])


def _version_ref(version: Version) -> VersionRef:
    return VersionRef(content_sha256=version.content_sha256, exchange_id=version.first_exchange_id,
                      seq=version.first_seq, observed_at_utc=version.first_observed_at_utc, response_ref=None)


def _compare(old: Any, new: Any, path: list[str | int], out: list[Change]) -> None:
    """Append the changes from `old` to `new` below `path`: object keys in sorted order, arrays aligned."""
    kind = json_kind(old)
    if kind != json_kind(new):
        out.append(Change(op="changed", path=format_path(path), old=old, new=new))
    elif kind == "object":
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                out.append(Change(op="removed", path=format_path([*path, key]), old=old[key]))
            elif key not in old:
                out.append(Change(op="added", path=format_path([*path, key]), new=new[key]))
            else:
                _compare(old[key], new[key], [*path, key], out)
    elif kind == "array":
        _compare_arrays(old, new, path, out)
    elif kind == "string" and old != new and _long_text(old, new):
        lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
        out.append(Change(op="changed", path=format_path(path), old_length=len(old), new_length=len(new),
                          text_diff=tuple(line for line in lines if not line.startswith(("---", "+++")))))
    elif old != new:
        out.append(Change(op="changed", path=format_path(path), old=old, new=new))


def _long_text(old: str, new: str) -> bool:
    return "\n" in old or "\n" in new or max(len(old), len(new)) > LONG_TEXT


def _compare_arrays(old: Sequence[Any], new: Sequence[Any], path: list[str | int], out: list[Change]) -> None:
    """Align two arrays by their elements' canonical JSON, so an insertion shows as one added element.

    Removed elements carry their index in the old array; added and changed ones their index in the new one.
    """
    matcher = difflib.SequenceMatcher(None, [canonical_json(item) for item in old],
                                      [canonical_json(item) for item in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        for offset in range(paired):
            _compare(old[i1 + offset], new[j1 + offset], [*path, j1 + offset], out)
        for index in range(i1 + paired, i2):
            out.append(Change(op="removed", path=format_path([*path, index]), old=old[index]))
        for index in range(j1 + paired, j2):
            out.append(Change(op="added", path=format_path([*path, index]), new=new[index]))
