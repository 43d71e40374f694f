"""Redaction of secrets from every stored field of an exchange, before hashing and before any write.

`Redactor.redact(request, response)` returns new values with every secret replaced by a fixed marker (default
``[REDACTED]``) and the sorted JSON paths of the strings it changed (``$.request.headers.Authorization``);
`Redactor.redact_fields` does the same for the envelope's other stored fields (natural_key, provenance, tags,
response_ref, source_system, entity_type). Inputs are never mutated; a value with nothing to redact comes back as
the very same object. The output depends only on the input and the policy: redaction is deterministic and
idempotent. Which names and patterns count (the rule book) is docs/redaction.md; the rules are
`eventlog.redaction.rules`, a policy's additions `eventlog.redaction.policy`, and the pre-filter that keeps the
common record (no secret) cheap `eventlog.redaction.prefilter`. A Redactor may be shared between threads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from eventlog.format.canonical import format_path
from eventlog.format.envelope import ExchangeRecord, ResponseRef
from eventlog.redaction.policy import DEFAULT_MARKER, CompiledPolicy, PathNode, RedactionPolicy, parse_path
from eventlog.redaction.prefilter import (
    ALL,
    BY_NAME,
    BY_PATTERN,
    BY_SHAPE,
    HAR_NAME_KEYS,
    NUMERIC_LIST,
    compile_needles,
    decode_string,
    may_hold_named_value,
    nothing_to_find,
    string_hits,
)
from eventlog.redaction.rules import (
    AUTH_LINE,
    KV,
    MAX_NAME,
    QUOTED,
    SPACED,
    STATED,
    TOKENS,
    USERINFO,
    YAML,
    builtin_sensitive,
    contains,
    looks_stated,
    name_parts,
    sensitive_in_field,
)

__all__ = ["DEFAULT_MARKER", "RedactionPolicy", "Redactor", "encode_fields", "format_path", "name_parts", "parse_path"]

# Encodes a (request, response) pair for the pre-filter when the caller has no encoding of it.
_ENCODER: Final = msgspec.json.Encoder()


def encode_fields(record: ExchangeRecord) -> bytes | None:
    """The envelope's redacted fields other than the payload in one JSON text, for the pre-filter to search.

    None where msgspec cannot encode them (a lone surrogate): they are then examined whole, and the canonical
    encoding names the problem later.
    """
    try:
        return _ENCODER.encode((record.natural_key, record.provenance, record.tags, record.response_ref,
                                record.source_system, record.entity_type))
    except (TypeError, ValueError, OverflowError):  # UnicodeEncodeError is a ValueError
        return None
_Node = PathNode


class _Context:
    """What one `redact` call may change, from the pre-filter; None fields mean "examine everything".

    `names` are the sensitive names present, `changed` the strings that change and what they become,
    `sides` which of request (1) and response (2) hold anything that changes.
    """

    __slots__ = ("changed", "names", "sides")

    def __init__(self, names: set[str] | None, changed: dict[str, str] | None, sides: int) -> None:
        self.names = names
        self.changed = changed
        self.sides = sides


_EVERYTHING: Final = _Context(None, None, 3)


def _clear(*texts: bytes) -> bool:
    return True


_Paths = list[tuple[str | int, ...]]
_NO_PATHS: Final[_Paths] = []


class Redactor:
    """Redacts requests and responses under a policy; build once, call `redact` for every record.

    `prefilter=False` examines every key and string instead of only those around a pre-filter hit; the
    result is the same, only slower (tests use it as the reference).
    """

    def __init__(self, policy: RedactionPolicy | None = None, *, prefilter: bool = True) -> None:
        self.policy = policy if policy is not None else RedactionPolicy()
        compiled = CompiledPolicy(self.policy, source="redaction policy", at="$")
        self._marker = self.policy.marker
        self._fragments = compiled.fragments
        self._patterns = compiled.patterns
        self._allow_names = compiled.allow_names
        self._allow_request = compiled.allow_paths.children.get("request")
        self._allow_response = compiled.allow_paths.children.get("response")
        self._allow_all = compiled.allow_paths.terminal
        self._allow_fields = compiled.allow_paths.children
        self._prefilter = prefilter
        self._needles = compile_needles(compiled.anchors)
        self._names: dict[str, bool] = {}
        # Given the encodings of request and response (and of the other fields, see `redact_fields`), True when
        # `redact` and `redact_fields` would surely change nothing: the C scanner's one call (see nothing_to_find),
        # for callers that hold the encodings. None where only `redact` can tell (no C scanner, patterns of the
        # policy's own, no pre-filter).
        self.encoded_clear: Callable[..., bool] | None = None
        if not self.policy.enabled or self._allow_all:
            self.encoded_clear = _clear
        elif prefilter and not self._patterns and self._needles.scanner is not None:
            self.encoded_clear = self._needles.scanner.clear_of

    def redact(self, request: Any, response: Any, *, encoded: tuple[bytes, bytes] | None = None,
               searched: bool = False) -> tuple[Any, Any, tuple[str, ...]]:
        """Return (request, response, redacted paths); unchanged values are returned as the same objects.

        `encoded` may hold the JSON encodings of request and response the caller already has (compact, as msgspec
        or canonical_json write them); the pre-filter then searches those instead of encoding again. `searched`
        says that `encoded_clear(*encoded)` was False already, so that its search is not run again.
        """
        if not self.policy.enabled or self._allow_all:
            return request, response, ()
        context = self._prefiltered(request, response, encoded, searched) if self._prefilter else _EVERYTHING
        if context is None:
            return request, response, ()
        new_request, request_paths = (self._walk(request, self._allow_request, context) if context.sides & 1
                                      else (request, _NO_PATHS))
        new_response, response_paths = (self._walk(response, self._allow_response, context)
                                        if context.sides & 2 else (response, _NO_PATHS))
        paths = {format_path(p, root="$.request") for p in request_paths}
        paths.update(format_path(p, root="$.response") for p in response_paths)
        return new_request, new_response, tuple(sorted(paths))

    def redact_fields(self, fields: Mapping[str, Any], *, encoded: bytes | None = None,
                      searched: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Redact the envelope's stored fields other than the payload: return (the changed ones, redacted paths).

        `fields` maps field names (natural_key, provenance, tags, response_ref as plain JSON, source_system,
        entity_type) to their values; each is examined whole, as `redact` examines a payload, with paths rooted at
        ``$.<field>``. `encoded`, the JSON encoding of all the values, lets the pre-filter skip fields that hold
        nothing a rule needs; `searched` says `encoded_clear` looked at it already and found something.
        """
        if not self.policy.enabled or self._allow_all:
            return {}, ()
        if self._prefilter and encoded is not None and not self._patterns and not searched \
                and nothing_to_find(self._needles, (encoded,)):
            return {}, ()
        if self._prefilter and encoded is not None and string_hits(self._needles, encoded, self._patterns) == {}:
            return {}, ()
        changed: dict[str, Any] = {}
        paths: set[str] = set()
        for field, value in fields.items():
            allow = self._allow_fields.get(field)
            if allow is not None and allow.terminal:
                continue
            new, found = self._walk(value, allow, _EVERYTHING)
            if new is not value:
                changed[field] = new
                paths.update(format_path(p, root=f"$.{field}") for p in found)
        return changed, tuple(sorted(paths))

    def redact_envelope_fields(self, record: ExchangeRecord, *, encoded: bytes | None = None,
                               searched: bool = False) -> tuple[ExchangeRecord, tuple[str, ...]]:
        """The record with its other stored fields redacted (see `redact_fields`), and the paths that changed.

        A redacted natural key is the record's key from then on: it is derived from the input alone (redaction
        is deterministic), so the same capture appended again lands on the same key. `encoded` is
        `encode_fields(record)` where the caller has it.
        """
        ref = record.response_ref
        changed, paths = self.redact_fields({
            "natural_key": record.natural_key, "provenance": record.provenance, "tags": record.tags,
            "response_ref": None if ref is None else msgspec.to_builtins(ref),
            "source_system": record.source_system, "entity_type": record.entity_type,
        }, encoded=encoded or encode_fields(record), searched=searched)
        if not changed:
            return record, ()
        if "response_ref" in changed:
            changed["response_ref"] = msgspec.convert(changed["response_ref"], ResponseRef)
        return msgspec.structs.replace(record, **changed), paths

    def redact_record(self, record: ExchangeRecord) -> ExchangeRecord:
        """The record with every stored field redacted and `redactions_applied` extended by the paths changed."""
        request, response, paths = self.redact(record.request, record.response)
        record, field_paths = self.redact_envelope_fields(record)
        if not paths and not field_paths:
            return record
        return msgspec.structs.replace(
            record, request=request, response=response,
            redactions_applied=tuple(sorted(set(record.redactions_applied).union(paths, field_paths))))

    def is_sensitive_name(self, name: str) -> bool:
        """Whether values under this key, header, query or form field name are redacted."""
        known = self._names.get(name)
        if known is None:
            known = self._classify(name)
            if len(self._names) >= 65536:
                self._names.clear()
            self._names[name] = known
        return known

    def redact_text(self, text: str) -> str:
        """Apply the in-string rules (fields, embedded JSON, URLs, token shapes) to one string."""
        redacted = self._scan(text, ALL)
        return text if redacted is None else redacted

    def _classify(self, name: str) -> bool:
        if len(name) > MAX_NAME:
            return False
        parts = name_parts(name)
        if not parts or parts in self._allow_names:
            return False
        return contains(parts, self._fragments) or builtin_sensitive(parts)

    # Pre-filter -----------------------------------------------------------------------------------------

    def _prefiltered(self, request: Any, response: Any, encoded: tuple[bytes, bytes] | None = None,
                     searched: bool = False) -> _Context | None:
        """Find the keys and strings that may need redaction, or None when nothing can."""
        if encoded is not None:
            if not searched and not self._patterns and nothing_to_find(self._needles, encoded):
                return None
            blob = b"".join((b"[", encoded[0], b",", encoded[1], b"]"))
            split = 1 + len(encoded[0])
        else:
            try:
                blob = _ENCODER.encode((request, response))
            except (TypeError, ValueError, OverflowError):
                return _EVERYTHING
            split = -1
        spans = string_hits(self._needles, blob, self._patterns)
        if spans is None:
            return _EVERYTHING
        if not spans:
            return None
        if split < 0:
            split = 1 + len(_ENCODER.encode(request))  # the response's bytes start after this
        names: set[str] = set()
        changed: dict[str, str] = {}
        sides = 0
        scrubbed = -1  # the string value of a sensitive key: replaced whole, no need to scan it
        for start in sorted(spans):
            end, kinds, first_name = spans[start]
            side = 1 if start < split else 2
            after = blob[end + 1:end + 2]
            is_key = after == b":"
            in_pair = blob[start - 1:start] == b"[" and after == b","
            har_name = blob.endswith(HAR_NAME_KEYS, 0, start)
            if (start == scrubbed and not har_name) or (
                    kinds == BY_NAME and not (is_key or in_pair or har_name)
                    and not may_hold_named_value(blob, first_name, end)):
                continue
            text = decode_string(blob, start, end)
            if text is None:
                continue
            if is_key:
                if kinds & BY_NAME and self.is_sensitive_name(text):
                    names.add(text)
                    value = blob[end + 2:end + 3]
                    if value == b'"':
                        scrubbed = end + 2
                    if value in (b'"', b"{") or (
                            value == b"[" and NUMERIC_LIST.match(blob, end + 2) is None):
                        sides |= side
                continue
            redacted = self._scan(text, kinds)
            if redacted is not None:
                changed[text] = redacted
                sides |= side
            # A pair's or HAR entry's name is judged once redacted itself, as the walk sees it.
            final = text if redacted is None else redacted
            if (kinds & BY_NAME or redacted is not None) and self.is_sensitive_name(final):
                names.add(final)
                if in_pair or har_name:
                    sides |= side
        return _Context(names, changed, sides) if sides else None


    def _scan(self, text: str, kinds: int) -> str | None:
        """Apply the in-string rules of the given kinds; None when nothing changed.

        A replacement can expose another secret (a marker ends a word that hid a token's start), so a
        changed string is scanned again with every rule until it stays the same: redacting is idempotent.
        """
        out = self._scan_once(text, kinds)
        if out == text:
            return None
        for _ in range(8):
            again = self._scan_once(out, ALL)
            if again == out:
                break
            out = again
        return out

    def _scan_once(self, text: str, kinds: int) -> str:
        out = text
        if kinds & BY_NAME:
            if "=" in out:
                out = SPACED.sub(self._named_value, out)  # first: "q=password = x" holds two fields
                out = KV.sub(self._field_value, out)
            if ":" in out:
                if '"' in out or "'" in out:
                    out = QUOTED.sub(self._named_value, out)
                out = YAML.sub(self._named_value, out)
                if "uthoriz" in out.lower():
                    out = AUTH_LINE.sub(self._group_value, out)
            lowered = out.lower()
            if " is" in lowered or "=" in out or " was" in lowered:
                out = STATED.sub(self._stated_value, out)
        if kinds & BY_SHAPE:
            if "@" in out:
                out = USERINFO.sub(self._group_value, out)
            out = TOKENS.sub(self._token, out)
        if kinds & BY_PATTERN:
            for pattern in self._patterns:
                out = pattern.sub(self._custom, out)
        return out

    def _splice(self, m: Any, group: str) -> str:
        """`m`'s text with its `group` replaced by the marker (`m` from re or, for a policy's pattern, RE2)."""
        start, end = m.span(m.re.groupindex[group])  # RE2 matches take group numbers only
        whole: str = m.group(0)
        if start == end or m.group(group) == self._marker:
            return whole
        return whole[:start - m.start()] + self._marker + whole[end - m.start():]

    def _field_value(self, m: re.Match[str]) -> str:
        """A ``name=value`` field: the field-only rules first (``sig``, ``cookies``), then the general ones."""
        name = m.group("name")
        if len(name) <= MAX_NAME:
            parts = name_parts(name)
            field = None if parts in self._allow_names else sensitive_in_field(name, parts)
            if field is not None:
                return self._value(m) if field else m.group(0)
        return self._value(m) if self.is_sensitive_name(name) else m.group(0)

    def _named_value(self, m: re.Match[str]) -> str:
        if not self.is_sensitive_name(m.group("name")):
            return m.group(0)
        return self._value(m)

    def _value(self, m: re.Match[str]) -> str:
        for group in ("dq", "sq", "v"):
            if m.group(group) is not None:
                return self._splice(m, group)
        return m.group(0)

    def _group_value(self, m: re.Match[str]) -> str:
        return self._splice(m, "v")

    def _stated_value(self, m: re.Match[str]) -> str:
        return self._splice(m, "v") if looks_stated(m.group("v")) else m.group(0)

    def _token(self, m: re.Match[str]) -> str:
        if m.group("bearer") is not None:
            return self._splice(m, "bearer")
        return m.group(0) if m.group(0) == self._marker else self._marker

    def _custom(self, m: Any) -> str:
        if "secret" in m.re.groupindex and m.group("secret") is not None:
            return self._splice(m, "secret")
        return self._marker

    # Walk -----------------------------------------------------------------------------------------------

    def _name_hit(self, name: Any, context: _Context, *, redacted: bool = False) -> bool:
        """Whether `name` is sensitive; with `redacted`, judge the string as the walk will leave it."""
        if not isinstance(name, str):
            return False
        if redacted:
            final = (context.changed.get(name) if context.changed is not None else self._scan(name, ALL))
            name = name if final is None else final
        if context.names is not None:
            return name in context.names
        return self.is_sensitive_name(name)

    def _walk(self, value: Any, allow: _Node | None, context: _Context) -> tuple[Any, _Paths]:
        if isinstance(value, str):
            changed = context.changed
            redacted = changed.get(value) if changed is not None else self._scan(value, ALL)
            return (value, _NO_PATHS) if redacted is None else (redacted, [()])
        if isinstance(value, dict):
            return self._walk_dict(value, allow, context)
        if isinstance(value, list | tuple):
            return self._walk_list(value, allow, context)
        return value, _NO_PATHS

    def _walk_dict(self, value: dict[Any, Any], allow: _Node | None, context: _Context,
                   *, scrub_value: bool = False) -> tuple[Any, _Paths]:
        named_value = "value" in value and (
            scrub_value or self._name_hit(value.get("name"), context, redacted=True)
            or self._name_hit(value.get("key"), context, redacted=True))
        names, changed = context.names, context.changed
        out: dict[Any, Any] | None = None
        paths: _Paths = []
        for key, item in value.items():
            sub = allow.children.get(key) if allow is not None else None
            if sub is not None and sub.terminal:
                continue
            if (named_value and key == "value") or (
                    key in names if names is not None else self._name_hit(key, context)):
                new, found = self._scrub(item, sub, context)
            elif isinstance(item, str):
                redacted = changed.get(item) if changed is not None else self._scan(item, ALL)
                if redacted is None:
                    continue
                new, found = redacted, [()]
            elif isinstance(item, dict | list | tuple):
                new, found = self._walk(item, sub, context)
            else:
                continue
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
                segment = key if isinstance(key, str) else str(key)
                paths.extend((segment, *p) for p in found)
        return (value if out is None else out), paths

    def _walk_list(self, value: list[Any] | tuple[Any, ...], allow: _Node | None, context: _Context,
                   *, pair: bool = False) -> tuple[Any, _Paths]:
        # A list of [name, value] pairs (headers, query parameters) redacts the value of a sensitive name.
        pairs = not pair and bool(value) and all(
            isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str) for item in value)
        sensitive_pair = pair and self._name_hit(value[0], context, redacted=True)
        out: list[Any] | None = None
        paths: _Paths = []
        for i, item in enumerate(value):
            sub = allow.children.get(i) if allow is not None else None
            if sub is not None and sub.terminal:
                continue
            if sensitive_pair and i == 1:
                new, found = self._scrub(item, sub, context)
            elif pairs:
                new, found = self._walk_list(item, sub, context, pair=True)
            else:
                new, found = self._walk(item, sub, context)
            if new is not item:
                if out is None:
                    out = list(value)
                out[i] = new
                paths.extend((i, *p) for p in found)
        if out is None:
            return value, paths
        return (tuple(out) if isinstance(value, tuple) else out), paths

    def _scrub(self, value: Any, allow: _Node | None, context: _Context) -> tuple[Any, _Paths]:
        """Replace every non-empty string in `value` (the value of a sensitive name) with the marker.

        A ``{"name": ..., "value": ...}`` object inside (a HAR cookie) loses only its value; its other
        fields are walked as usual.
        """
        if isinstance(value, str):
            if value and value != self._marker:
                return self._marker, [()]
            return value, _NO_PATHS
        if isinstance(value, dict) and "value" in value and (
                isinstance(value.get("name"), str) or isinstance(value.get("key"), str)):
            return self._walk_dict(value, allow, context, scrub_value=True)
        if isinstance(value, dict | list | tuple):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            out: Any = None
            paths: _Paths = []
            for key, item in items:
                sub = allow.children.get(key) if allow is not None else None
                if sub is not None and sub.terminal:
                    continue
                new, found = self._scrub(item, sub, context)
                if new is not item:
                    if out is None:
                        out = dict(value) if isinstance(value, dict) else list(value)
                    out[key] = new
                    segment = key if isinstance(key, str | int) else str(key)
                    paths.extend((segment, *p) for p in found)
            if out is None:
                return value, paths
            return (tuple(out) if isinstance(value, tuple) else out), paths
        return value, _NO_PATHS
