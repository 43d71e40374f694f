"""The Replayer: recorded responses looked up by request fingerprint, and live exchanges recorded into the lake.

A request is fingerprinted after the lake's redactor has run over it, exactly as the stored request was before it
was written, so a live request carrying a real secret finds the recording that holds its redaction marker. The
look-up index (replay/index.sqlite) is caught up when the Replayer opens, after each recording it makes, and once
more before a miss is reported, so exchanges appended by other processes are found too.

Modes say what an adapter does with a request: `replay` answers from the lake only and never calls the network;
`record` calls the network for every request and appends each exchange; `new_episodes` answers what the lake
knows and calls and records the rest. The Replayer itself never opens a socket.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args

import msgspec

from eventlog.errors import InputError, NotFoundError, ReplayMissError
from eventlog.format.envelope import format_utc, parse_utc
from eventlog.log.config import read_config
from eventlog.log.writer import EventLog
from eventlog.replay.fingerprint import (
    Difference,
    closeness,
    describe,
    differences,
    display_url,
    distance,
    fingerprint,
    normalise,
)
from eventlog.replay.index import FingerprintIndex, Hit, read_payload, route_of
from eventlog.replay.rules import MatchRule, Rules
from eventlog.replay.shape import body_bytes, header_pairs, request_dict, response_dict

if TYPE_CHECKING:
    from eventlog.cold.reader import ColdStore

__all__ = ["MODES", "LakeLike", "Mode", "Nearest", "RecordedResponse", "Replayer", "open_replayer"]

Mode = Literal["replay", "record", "new_episodes"]
MODES: Final[tuple[str, ...]] = get_args(Mode)
RULES_FILE: Final = "replay/rules.json"
INDEX_FILE: Final = "replay/index.sqlite"
# How many distinct recorded requests a miss compares with, and how many it reports.
_CANDIDATES: Final = 200


class LakeLike(Protocol):
    """What the Replayer needs of a lake (eventlog.app.lake.Lake is one): its folder and its log."""

    root: Path
    log: EventLog


class RecordedResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded response as it was stored (after redaction), with the exchange it came from."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    exchange_id: str
    observed_at_utc: str
    seq: int
    content_sha256: str
    dataset: str


class Nearest(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded request close to one that missed, and what differs between them."""

    method: str
    url: str
    dataset: str
    seq: int
    differences: tuple[Difference, ...]


class Replayer:
    """Look up recorded responses in a lake by request, and record live exchanges into it.

    `lake` is a Lake (anything with `root` and `log`) or the path of a lake folder, which the Replayer then opens
    and closes. `dataset` limits look-ups to exchanges of that source_system and is the source_system of what it
    records (default: the request's host). `rules` is a Rules, a list of rule objects or mappings, or a path to a
    rules file; None takes <lake>/replay/rules.json when it exists. `as_of` (timezone-aware datetime or ISO text)
    answers with the response as observed then. Raises InputError for a bad mode, rules or as_of, LakeError for a
    folder that is not a lake.
    """

    def __init__(self, lake: LakeLike | str | os.PathLike[str], *, dataset: str | None = None,
                 rules: Rules | Sequence[MatchRule | Mapping[str, Any]] | str | os.PathLike[str] | None = None,
                 mode: Mode = "replay", as_of: datetime | str | None = None, exchange_type: str = "http",
                 entity_type: str = "exchange", provenance: Mapping[str, Any] | None = None,
                 nearest: int = 3) -> None:
        if mode not in MODES:
            raise InputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode: Mode = mode
        self.dataset = dataset
        self.as_of = _utc_text(as_of)
        self.exchange_type = exchange_type
        self.entity_type = entity_type
        self.provenance = _provenance(provenance)
        self.nearest = nearest
        self._cold: ColdStore | None = None
        self.root = root = Path(lake) if isinstance(lake, str | os.PathLike) else lake.root
        self.rules = _rules(rules, root).for_dataset(dataset)
        if isinstance(lake, str | os.PathLike):
            # Imported here: cold storage brings cryptography, which a Replayer over an open Lake (and the pytest
            # plugin, loaded into every test session) does without.
            from eventlog.cold.reader import ColdStore

            config = read_config(root)
            self._cold = ColdStore(root)
            try:
                self.log = EventLog.from_config(root, config, cold=self._cold)
            except BaseException:
                self._cold.close()
                raise
            self._owns_log = True
        else:
            self.log, self._owns_log = lake.log, False
        self._record_lock = threading.Lock()
        try:
            self.index = FingerprintIndex(self.log, self.rules, path=root / INDEX_FILE)
        except BaseException:
            self._close_owned()
            raise

    def close(self) -> None:
        self.index.close()
        self._close_owned()

    def _close_owned(self) -> None:
        if self._owns_log:
            self.log.close()
            if self._cold is not None:
                self._cold.close()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------------------------

    def request(self, method: str, url: str, *, headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
                body: bytes | None = None) -> dict[str, Any]:
        """A request in the lake's JSON shape from what a client sends (not yet redacted)."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return request_dict(method, url, pairs, body)

    def normal_form(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The request's normal form after the lake's redaction (see eventlog.replay.fingerprint)."""
        redacted, _, _ = self.log.redactor.redact(dict(request), None)
        return normalise(redacted, self.rules)

    # -- looking up ----------------------------------------------------------------------------------------------

    def lookup(self, request: Mapping[str, Any]) -> RecordedResponse:
        """The recorded response to `request` (the newest, or the newest observed by `as_of`).

        Raises ReplayMissError (a NotFoundError) listing the nearest recorded requests and what differs, and
        InputError for a request without a usable URL.
        """
        normal = self.normal_form(request)
        digest = fingerprint(normal)
        hit = self.index.find(digest, source=self.dataset, observed_by=self.as_of)
        if hit is None and self.index.catch_up():  # another process may have recorded it meanwhile
            hit = self.index.find(digest, source=self.dataset, observed_by=self.as_of)
        if hit is None:
            raise self._miss(normal, digest)
        return self._response(hit)

    def find(self, request: Mapping[str, Any]) -> RecordedResponse | None:
        """Like `lookup`, None on a miss (without working out the nearest requests)."""
        digest = fingerprint(self.normal_form(request))
        hit = self.index.find(digest, source=self.dataset, observed_by=self.as_of)
        return None if hit is None else self._response(hit)

    def explain(self, request: Mapping[str, Any]) -> list[Nearest]:
        """The recorded requests nearest to `request`, each with what differs, closest first."""
        return self._nearest(self.normal_form(request))

    def _response(self, hit: Hit) -> RecordedResponse:
        payload = read_payload(self.index.read_line(hit.segment, hit.offset, hit.length))
        response = payload.response
        if not isinstance(response, dict):
            if payload.response_ref is not None:
                raise NotFoundError(f"exchange {hit.exchange_id} keeps its response by reference "
                                    f"({payload.response_ref.get('uri')}); replay serves inline responses only")
            response = {}
        status = response.get("status", 200)
        try:
            body = body_bytes(response)
        except ValueError as exc:
            raise NotFoundError(f"exchange {hit.exchange_id} has a response body replay cannot read: {exc}") from None
        return RecordedResponse(status=status if isinstance(status, int) else 200,
                                headers=tuple(header_pairs(response.get("headers"))), body=body,
                                exchange_id=hit.exchange_id, observed_at_utc=hit.observed, seq=hit.seq,
                                content_sha256=hit.content, dataset=hit.source)

    # -- misses --------------------------------------------------------------------------------------------------

    def _miss(self, normal: dict[str, Any], digest: bytes) -> ReplayMissError:
        asked = f"{normal['method']} {display_url(normal)}"
        where = f" in dataset {self.dataset!r}" if self.dataset is not None else ""
        when = f" as of {self.as_of}" if self.as_of is not None else ""
        notes = []
        if self.as_of is not None:
            first = self.index.first_observed(digest, source=self.dataset)
            if first is not None:
                notes.append(f"it was first recorded at {first}, after {self.as_of}")
        if self.dataset is not None:
            others = [source for source in self.index.sources_of(digest) if source != self.dataset]
            if others:
                notes.append(f"it is recorded in dataset(s) {', '.join(map(repr, others))}")
        nearest = self._nearest(normal)
        lines = [f"no recorded response for {asked}{where}{when}" + (f" ({'; '.join(notes)})" if notes else "")]
        if nearest:
            lines[0] += "; the nearest recorded requests:"
            for number, item in enumerate(nearest, 1):
                lines.append(f"  {number}. {item.method} {item.url} (dataset {item.dataset!r}, seq {item.seq}): "
                             + "; ".join(describe(difference) for difference in item.differences))
        else:
            lines[0] += f"; nothing is recorded for host {normal['host']}{where}"
        return ReplayMissError("\n".join(lines), request={"method": normal["method"], "url": display_url(normal)},
                               nearest=[msgspec.json.decode(msgspec.json.encode(item)) for item in nearest])

    def _nearest(self, normal: dict[str, Any]) -> list[Nearest]:
        shapes = self.index.shapes(route=route_of(normal), source=self.dataset, limit=_CANDIDATES)
        if len(shapes) < self.nearest:
            seen = {shape.fingerprint for shape in shapes}
            shapes += [shape for shape in self.index.shapes(host=normal["host"], source=self.dataset,
                                                             limit=_CANDIDATES) if shape.fingerprint not in seen]
        ranked: list[tuple[int, float, int, Nearest]] = []
        for shape in shapes:
            payload = read_payload(self.index.read_line(shape.segment, shape.offset, shape.length))
            recorded = normalise(payload.request, self.rules)
            found = differences(recorded, normal)
            if not found:
                continue  # the same request, recorded after as_of or in another dataset: said in the message
            ranked.append((distance(found), -closeness(found), -shape.last_seq,
                           Nearest(method=recorded["method"], url=display_url(recorded), dataset=shape.source,
                                   seq=shape.last_seq, differences=tuple(found))))
        ranked.sort(key=lambda item: item[:3])
        return [item[3] for item in ranked[:self.nearest]]

    def answer(self, request: Mapping[str, Any]) -> RecordedResponse | None:
        """What an adapter serves for `request` by the mode: the recording, or None to call the network and
        `record_live` the exchange. In replay mode a miss raises ReplayMissError."""
        if self.mode == "record":
            return None
        if self.mode == "replay":
            return self.lookup(request)
        return self.find(request)

    # -- recording -----------------------------------------------------------------------------------------------

    def record_live(self, request: Mapping[str, Any], status: int, headers: Iterable[tuple[str, str]],
                    body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Record a live response read whole and decoded; returns what the client gets: status, headers (without
        the framing headers the decoded body no longer has, see eventlog.replay.shape) and body."""
        response = response_dict(status, headers, body)
        self.record(request, response)
        return status, header_pairs(response["headers"]), body

    def record(self, request: Mapping[str, Any], response: Mapping[str, Any], *,
               observed_at: datetime | None = None) -> str:
        """Append one live exchange (shapes of eventlog.replay.shape) through the lake's redaction; returns its
        exchange id. The look-up index sees it on return.

        Raises InputError for a request without a usable URL, LockBusyError when another writer holds the lake.
        """
        normal = self.normal_form(request)
        observed = observed_at or self.log.clock()
        exchange_id = str(uuid.uuid4())
        record = {
            "exchange_id": exchange_id, "exchange_type": self.exchange_type, "source_system": self.dataset or normal["host"],
            "entity_type": self.entity_type, "natural_key": fingerprint(normal).hex(),
            "observed_at_utc": format_utc(observed), "request": dict(request), "response": dict(response),
            "provenance": self.provenance,
        }
        with self._record_lock:
            self.log.append([record])
            self.index.catch_up()
        return exchange_id


def _utc_text(moment: datetime | str | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = parse_utc(moment)
        except ValueError as exc:
            raise InputError(f"as_of {moment!r} is not a timestamp with a UTC offset: {exc}") from None
    elif moment.tzinfo is None:
        raise InputError("as_of is a naive datetime; give it a timezone (UTC)")
    return format_utc(moment)


def _rules(rules: Rules | Sequence[MatchRule | Mapping[str, Any]] | str | os.PathLike[str] | None,
           root: Path) -> Rules:
    if isinstance(rules, Rules):
        return rules
    if isinstance(rules, str | os.PathLike):
        return Rules.load(rules)
    if rules is None:
        default = root / RULES_FILE
        return Rules.load(default) if default.exists() else Rules()
    if all(isinstance(rule, MatchRule) for rule in rules):
        return Rules([rule for rule in rules if isinstance(rule, MatchRule)])
    return Rules.from_mapping([msgspec.to_builtins(rule) for rule in rules])


def _provenance(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"runner": "eventlog.replay", "host": socket.gethostname(), "connector_version": _version(),
            **(extra or {})}


@functools.cache
def _version() -> str:
    """This package's version: looked up once, since reading package metadata takes milliseconds."""
    try:
        return metadata.version("exchange-eventlog")
    except metadata.PackageNotFoundError:
        return "unknown"


def open_replayer(lake: LakeLike | Replayer | str | os.PathLike[str], mode: Mode | None,
                  **options: Any) -> tuple[Replayer, bool]:
    """The Replayer an adapter works with, and whether the adapter owns (and closes) it.

    A Replayer given as `lake` is used as it is; then `mode` and `options` must be left unset (InputError).
    """
    given = {name: value for name, value in options.items() if value is not None}
    if isinstance(lake, Replayer):
        if (mode is not None and mode != lake.mode) or given:
            raise InputError("a Replayer was given: set the mode and options on the Replayer itself")
        return lake, False
    return Replayer(lake, mode=mode or "replay", **given), True
