"""A redaction policy: the names, patterns and allow-list a lake or a dataset adds to the built-in rules.

Patterns come from lake.json and dataset manifests, that is from people and packs this process may not trust, so
they are compiled with RE2, which matches in time linear in the input: no pattern can stall an ingest. A pattern RE2
cannot express (backreferences, lookaround) is refused with a sentence naming where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from eventlog.errors import InputError
from eventlog.redaction.rules import name_parts

__all__ = ["DEFAULT_MARKER", "FIELDS", "CompiledPolicy", "PathNode", "RedactionPolicy", "parse_path"]

DEFAULT_MARKER: Final = "[REDACTED]"
# The envelope's fields that are redacted, as the first segment of a JSON path (request and response first).
FIELDS: Final = ("request", "response", "natural_key", "provenance", "tags", "response_ref", "source_system",
                 "entity_type")

_PATH_SEGMENT = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?[0-9]+)\]|\[("(?:[^"\\]|\\.)*")\]')


def parse_path(text: str) -> tuple[str | int, ...]:
    """Parse a JSON path as written in `redactions_applied` (``$.a.b[0]["c d"]``) into its segments."""
    if not text.startswith("$"):
        raise ValueError(f"JSON path {text!r} must start with '$'")
    segments: list[str | int] = []
    pos = 1
    while pos < len(text):
        m = _PATH_SEGMENT.match(text, pos)
        if m is None:
            raise ValueError(f"JSON path {text!r} is malformed at character {pos}")
        ident, index, quoted = m.groups()
        segments.append(ident if ident is not None else int(index) if index is not None
                        else msgspec.json.decode(quoted, type=str))
        pos = m.end()
    return tuple(segments)


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(item for item in second if item not in first)


class RedactionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Extensions to the built-in redaction rules, as read from lake.json and from a dataset manifest.

    `names` are extra sensitive name fragments, `patterns` extra regular expressions (RE2 syntax) for
    token-shaped strings, `allow` names or JSON paths (starting with ``$``) never redacted. The built-in rules
    always apply while `enabled`.
    """

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    marker: str = DEFAULT_MARKER
    enabled: bool = True

    def merged(self, other: RedactionPolicy) -> RedactionPolicy:
        """Combine with a more specific policy (lake.json policy, then a manifest's).

        Names, patterns and allow entries are united in order; the other marker wins unless it is the
        default; redaction stays enabled only if both policies enable it.
        """
        return RedactionPolicy(
            names=_union(self.names, other.names), patterns=_union(self.patterns, other.patterns),
            allow=_union(self.allow, other.allow),
            marker=other.marker if other.marker != DEFAULT_MARKER else self.marker,
            enabled=self.enabled and other.enabled)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str,
                     at: str = "$.redaction") -> RedactionPolicy:
        """Validate a policy object (``{"names": [...], "patterns": [...], "allow": [...], ...}``).

        Raises InputError naming `source` and the JSON path (under `at`) of a wrong type, an unknown key,
        a name without letters, a pattern RE2 cannot compile or that matches the empty string, or a malformed
        path. The messages name the entry by its path, never by its text.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"a redaction policy must be an object, not {type(data).__name__}",
                             source=source, path=at)
        try:
            policy = msgspec.convert(dict(data), type=cls)
        except msgspec.ValidationError as exc:
            reason, _, where = str(exc).partition(" - at `$")
            raise InputError(reason, source=source, path=at + where.rstrip("`")) from None
        CompiledPolicy(policy, source=source, at=at)
        return policy


class PathNode:
    """A trie of allowed JSON paths."""

    __slots__ = ("children", "terminal")

    def __init__(self) -> None:
        self.terminal = False
        self.children: dict[str | int, PathNode] = {}


class CompiledPolicy:
    """A policy checked and compiled; raises InputError on the first bad entry."""

    def __init__(self, policy: RedactionPolicy, *, source: str, at: str) -> None:
        self.fragments: list[tuple[str, ...]] = []
        anchors: list[str] = []
        for i, name in enumerate(policy.names):
            parts = name_parts(name)
            if all(part.isdigit() for part in parts):
                raise InputError("an extra sensitive name needs letters to match on", source=source,
                                 path=f"{at}.names[{i}]")
            self.fragments.append(parts)
            anchors.append(max((p for p in parts if not p.isdigit()), key=len))
        self.anchors = tuple(anchors)
        self.patterns: list[Any] = []  # RE2 patterns (re2 ships no type information)
        for i, text in enumerate(policy.patterns):
            self.patterns.append(_compile(text, marker=policy.marker, source=source, path=f"{at}.patterns[{i}]"))
        self.allow_names: set[tuple[str, ...]] = set()
        self.allow_paths = PathNode()
        for i, entry in enumerate(policy.allow):
            if entry.startswith("$"):
                try:
                    segments = parse_path(entry)
                    if segments and segments[0] not in FIELDS:
                        raise ValueError(f"JSON path {entry!r} must start with one of the redacted fields "
                                         f"({', '.join('$.' + f for f in FIELDS)})")
                except ValueError as exc:
                    raise InputError(str(exc), source=source, path=f"{at}.allow[{i}]") from None
                node = self.allow_paths
                for segment in segments:
                    node = node.children.setdefault(segment, PathNode())
                node.terminal = True
            else:
                parts = name_parts(entry)
                if not parts:
                    raise InputError("an allowed name needs letters or digits", source=source,
                                     path=f"{at}.allow[{i}]")
                self.allow_names.add(parts)
        if not policy.marker:
            raise InputError("the marker must not be empty", source=source, path=f"{at}.marker")


def _compile(text: str, *, marker: str, source: str, path: str) -> Any:
    """Compile a user's pattern with RE2 (linear time), or refuse it with a sentence naming where it is."""
    import re2  # only a policy with patterns pays for loading it

    options = re2.Options()
    options.log_errors = False  # the refusal is our sentence, not a line on stderr
    try:
        pattern = re2.compile(text, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InputError(f"the pattern cannot be compiled by RE2, which redaction patterns use so that matching "
                         f"stays linear in time (no backreferences or lookaround): {reason}",
                         source=source, path=path) from None
    if pattern.search("") is not None or pattern.search(marker) is not None:
        raise InputError("the pattern matches the empty string or the marker", source=source, path=path)
    return pattern
