"""Declarative match rules: which parts of a request replay ignores, per dataset and per host.

A rule names where it applies (`dataset`: the replayer's dataset; `host`: a glob over the request's host, case
ignored; either may be left out) and what it ignores: query parameters (`ignore_query`, globs over names),
headers (`ignore_headers`, globs over lower-cased names, or `match_headers`: only these count) and parts of the body
(`ignore_body`, JSON paths such as ``$.metadata.request_id`` or ``$.messages[*].id``; for a form body ``$.field``).
Every rule that applies to a request adds to what is ignored. A few headers that clients set on their own
(`BUILTIN_IGNORED_HEADERS`) are always ignored. The file format is in docs/replay.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from eventlog.errors import InputError
from eventlog.format.canonical import canonical_json

__all__ = ["BUILTIN_IGNORED_HEADERS", "WILDCARD", "AppliedRules", "MatchRule", "Rules", "parse_body_path"]

# Headers that say how a client talks rather than what it asks: connection handling, framing, compression it
# accepts, its name and version, trace ids, and the per-attempt headers of the OpenAI and Anthropic clients.
BUILTIN_IGNORED_HEADERS: Final = (
    "accept-encoding", "connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "user-agent", "traceparent", "tracestate", "baggage", "idempotency-key",
    "x-stainless-*",
)
# Bumped when normalisation changes, so that look-up indexes built by an older release are rebuilt.
NORMALISATION_VERSION: Final = 1


class _Wildcard:
    """The ``[*]`` step of a body path: every item of an array (or every value of an object)."""

    def __repr__(self) -> str:
        return "[*]"


WILDCARD: Final = _Wildcard()
PathStep = str | int | _Wildcard

_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\.\*|\[(-?[0-9]+)\]|\[\*\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_body_path(text: str) -> tuple[PathStep, ...]:
    """Parse ``$.a.b[0]["c d"][*]`` into its steps. Raises ValueError for a malformed path."""
    if not text.startswith("$"):
        raise ValueError(f"a body path must start with '$', not {text[:1]!r}")
    steps: list[PathStep] = []
    pos = 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(f"body path {text!r} is malformed at character {pos}")
        name, index, quoted = m.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        elif quoted is not None:
            steps.append(msgspec.json.decode(quoted, type=str))
        else:
            steps.append(WILDCARD)
        pos = m.end()
    if not steps:
        raise ValueError("a body path must name a part of the body, not the whole '$'")
    return tuple(steps)


class MatchRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One rule: where it applies (`dataset`, `host` glob) and which request parts it ignores."""

    dataset: str | None = None
    host: str | None = None
    ignore_query: tuple[str, ...] = ()
    ignore_headers: tuple[str, ...] = ()
    match_headers: tuple[str, ...] | None = None
    ignore_body: tuple[str, ...] = ()

    def applies_to(self, host: str) -> bool:
        return self.host is None or fnmatch.fnmatchcase(host, self.host.lower())


class AppliedRules:
    """What the rules that apply to one host ignore, compiled for normalisation (one regular expression per list
    of globs, since it runs for every query parameter and header of every look-up)."""

    def __init__(self, *, ignore_query: tuple[str, ...], ignore_headers: tuple[str, ...],
                 match_headers: tuple[str, ...] | None, ignore_body: tuple[tuple[PathStep, ...], ...]) -> None:
        self.ignore_body = ignore_body
        self._query = _globs(ignore_query)
        self._headers = _globs(ignore_headers)
        self._only = None if match_headers is None else _globs(match_headers) or _NOTHING

    def query_ignored(self, name: str) -> bool:
        return self._query is not None and self._query.match(name) is not None

    def header_ignored(self, lower_name: str) -> bool:
        if self._only is not None and self._only.match(lower_name) is None:
            return True
        return self._headers is not None and self._headers.match(lower_name) is not None


_NOTHING: Final = re.compile(r"(?!)")


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns), re.DOTALL)


class Rules:
    """An ordered set of match rules, with a stable identity for the look-up index built under them."""

    def __init__(self, rules: Iterable[MatchRule] = ()) -> None:
        self.rules: tuple[MatchRule, ...] = tuple(rules)
        self._applied: dict[str, AppliedRules] = {}
        for number, rule in enumerate(self.rules):
            for at, path in enumerate(rule.ignore_body):
                try:
                    parse_body_path(path)
                except ValueError as exc:
                    raise InputError(str(exc), path=f"$.rules[{number}].ignore_body[{at}]") from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | Sequence[Any], *, source: str = "the replay rules") -> Rules:
        """Validate ``{"rules": [...]}`` (or the bare list). Raises InputError naming `source` and the JSON path."""
        items = data.get("rules", []) if isinstance(data, Mapping) else data
        at = "$.rules" if isinstance(data, Mapping) else "$"
        if isinstance(data, Mapping) and set(data) - {"rules"}:
            unknown = sorted(set(data) - {"rules"})[0]
            raise InputError(f"unknown key {unknown!r}", source=source, path="$")
        try:
            rules = msgspec.convert(list(items), list[MatchRule])
        except (msgspec.ValidationError, TypeError) as exc:
            reason, _, where = str(exc).partition(" - at `$")
            raise InputError(reason, source=source, path=at + where.rstrip("`")) from None
        try:
            return cls(rules)
        except InputError as exc:
            raise exc.located(source=source) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rules:
        """Read a rules file (JSON). Raises InputError naming the file for unreadable or invalid content."""
        source = str(path)
        try:
            data = msgspec.json.decode(Path(path).read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read the rules: {exc.strerror}", source=source) from None
        except msgspec.DecodeError as exc:
            raise InputError(f"not JSON: {exc}", source=source) from None
        if not isinstance(data, Mapping | list):
            raise InputError("the rules must be a JSON object or array", source=source, path="$")
        return cls.from_mapping(data, source=source)

    def for_dataset(self, dataset: str | None) -> Rules:
        """The rules in force for a replayer of `dataset`: those naming no dataset, and those naming this one."""
        return Rules(rule for rule in self.rules if rule.dataset is None or rule.dataset == dataset)

    @property
    def identity(self) -> str:
        """SHA-256 of the rules and the normalisation version: equal for rule sets that match alike."""
        payload = {"version": NORMALISATION_VERSION, "builtin_ignored_headers": list(BUILTIN_IGNORED_HEADERS),
                   "rules": [msgspec.to_builtins(rule) for rule in self.rules]}
        return hashlib.sha256(canonical_json(payload)).hexdigest()

    def to_json(self) -> bytes:
        """The rules as canonical JSON, as the look-up index keeps them beside its rows."""
        return canonical_json({"rules": [msgspec.to_builtins(rule) for rule in self.rules]})

    def applied(self, host: str) -> AppliedRules:
        """What is ignored for requests to `host` (lower-case), merged over every rule that applies."""
        found = self._applied.get(host)
        if found is None:
            matching = [rule for rule in self.rules if rule.applies_to(host)]
            allow = [rule.match_headers for rule in matching if rule.match_headers is not None]
            found = AppliedRules(
                ignore_query=tuple(p for rule in matching for p in rule.ignore_query),
                ignore_headers=BUILTIN_IGNORED_HEADERS + tuple(p.lower() for rule in matching
                                                               for p in rule.ignore_headers),
                match_headers=tuple(p.lower() for names in allow for p in names) if allow else None,
                ignore_body=tuple(parse_body_path(p) for rule in matching for p in rule.ignore_body))
            if len(self._applied) >= 4096:
                self._applied.clear()
            self._applied[host] = found
        return found
