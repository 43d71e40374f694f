"""Redaction of secrets from an exchange's request and response, before hashing and before any write.

`Redactor.redact(request, response)` returns new values with every secret replaced by a fixed marker (default
``[REDACTED]``) and the sorted JSON paths of the strings it changed (``$.request.headers.Authorization``,
``$.response.items[3].access_token``, ``$.request.headers["X-Api-Key"]``; paths sort as plain strings). Inputs
are never mutated; a value with nothing to redact comes back as the very same object. The output depends only
on the input and the policy, so redaction is deterministic and idempotent (redacting twice changes nothing
more).

What is a sensitive name (JSON keys, header names, query and form field names): the name is cut into
lower-case word parts at non-alphanumerics, ``%XX`` escapes, camelCase and letter/digit boundaries
(``X-Goog-Api-Key`` -> x goog api key, ``apiToken`` -> api token, ``user%5Bpassword%5D`` -> user password). It
is sensitive when a part is token, secret, password, passwd, passphrase, session, sessionid, sessid,
signature, credential(s), authorization, cookie(s), apikey or privatekey; when a part ends in token, secret,
password, passwd, apikey, privatekey, sessionid or sessid (``csrftoken``, ``clientsecret``, ``jsessionid``);
or when ``key`` follows api, private, access, signing, client, consumer, app, master or encryption. So
``access_token``, ``X-Auth-Token``, ``Proxy-Authorization``, ``Set-Cookie`` match, while ``tokenizer``,
``max_tokens``, ``tokens_used``, ``keywords`` and ``possession`` do not. Names whose last part is a descriptor
(type, types, endpoint, url, uri, count, counts, limit, limits, usage) describe a secret rather than hold one
(``token_type``, ``token_endpoint``) and are kept, as are pagination cursors (``pageToken``,
``next_page_token``). Names longer than 256 characters are never names. `RedactionPolicy.names` adds fragments
matched the same way (``"tenant id"`` matches ``X-Tenant-Id``), and they win over the descriptor and cursor
exemptions; `RedactionPolicy.allow` exempts whole names (matched by their parts) and JSON paths (with
everything beneath them).

What is replaced:
- under a sensitive key, the string value, or every string anywhere inside a list or object value (but only
  the value of a ``{"name": ..., "value": ...}`` object in it, such as a HAR cookie); numbers, booleans and
  null are kept (``prompt_tokens: 12``), and so are empty strings and strings already equal to the marker;
- header containers in all three shapes: an object (by key), a list of ``[name, value]`` pairs (a list whose
  items are all two-element lists starting with a string; a lone pair or a two-word list of tags is not one),
  and a list of ``{"name": ..., "value": ...}`` or ``{"key": ..., "value": ...}`` objects (HAR, Postman);
  query parameters given as pairs or objects are the same shapes;
- inside any string: values of sensitive ``name=value`` fields (URL query and fragment parameters, form
  bodies, cookies, ``;jsessionid=``, also ``name="value"``), values of sensitive keys in JSON or Python text
  embedded in the string (``{"password": "x"}``, ``{'password': 'x'}``, one level of encoding), credentials
  after ``Authorization: <scheme>`` in header text, the password of ``scheme://user:password@host``, and
  token-shaped substrings: JWTs, AWS access key ids (AKIA, ASIA), ``Bearer <token>`` (the token must have a
  digit and 8+ characters, so "a bearer of bad news" stays), OpenAI/Anthropic ``sk-`` keys (20+ characters
  with a digit, not preceded by a letter, so "risk-free" and "task-list" stay), Stripe
  ``sk_live_``/``rk_live_`` keys, GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_`` tokens,
  Google ``AIza`` keys, Slack ``xox?-`` tokens and PEM private key blocks (the whole block). Only the secret's
  characters are replaced: the rest of a URL or text stays byte-identical. Ordinary hex digests and UUIDs are
  not token shapes. `RedactionPolicy.patterns` adds regular expressions; a match is replaced whole, or only
  its ``secret`` named group when it has one.
- Dict keys are never rewritten: a secret used as a key stays.

Cost: the pre-filter (`eventlog.redaction.prefilter`) searches one ``msgspec.json.encode`` of the pair and one translated
copy of those bytes for the few literals any rule needs (three anchored regexes, one pass each); only the
strings around a hit are decoded and examined, and a side (request or response) is walked only when something
in it will change. Past 64 strings with hits, every string is examined instead. `Redactor(prefilter=False)`
always examines everything and gives the same result. Building a Redactor is cheap (compiled needles are cached), and one may be shared between
threads. A custom pattern is also searched in the compact JSON text, so it must be able to match the secret
there: no ``^``/``$`` anchors and no reliance on quotes, backslashes or control characters, which JSON
escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from eventlog.errors import InputError
from eventlog.format.canonical import format_path
from eventlog.redaction.prefilter import (
    ALL,
    BY_NAME,
    BY_PATTERN,
    BY_SHAPE,
    HAR_NAME_KEYS,
    KEY_QUALIFIERS,
    NUMERIC_LIST,
    compile_needles,
    decode_string,
    may_hold_named_value,
    nothing_to_find,
    string_hits,
)

__all__ = ["DEFAULT_MARKER", "RedactionPolicy", "Redactor", "format_path", "name_parts", "parse_path"]

DEFAULT_MARKER: Final = "[REDACTED]"
_MAX_NAME: Final = 256

_SINGLE: Final = frozenset({
    "token", "secret", "password", "passwd", "passphrase", "session", "sessionid", "sessid", "signature",
    "credential", "credentials", "authorization", "cookie", "cookies", "apikey", "privatekey",
})
_SUFFIXES: Final = ("token", "secret", "password", "passwd", "apikey", "privatekey", "sessionid", "sessid")
_DESCRIPTORS: Final = frozenset({
    "type", "types", "endpoint", "url", "uri", "count", "counts", "limit", "limits", "usage",
})

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_parts(name: str) -> tuple[str, ...]:
    """Cut a name into lower-case word parts, the unit every name rule matches on."""
    if "%" in name:
        name = _PERCENT.sub(" ", name)
    return tuple(word.lower() for word in _WORD.findall(name))


def _builtin_sensitive(parts: tuple[str, ...]) -> bool:
    if parts[-1] in _DESCRIPTORS:
        return False
    for i, part in enumerate(parts):
        if part == "key":
            if i and parts[i - 1] in KEY_QUALIFIERS:
                return True
        elif part in _SINGLE or part.endswith(_SUFFIXES):
            if part.endswith("pagetoken") or (part == "token" and i and parts[i - 1] == "page"):
                continue
            return True
    return False


def _contains(parts: tuple[str, ...], fragments: Sequence[tuple[str, ...]]) -> bool:
    for fragment in fragments:
        n = len(fragment)
        for i in range(len(parts) - n + 1):
            if parts[i:i + n] == fragment:
                return True
    return False


# Rules applied inside strings. Name and value character classes exclude what JSON escapes, so the
# pre-filter finds every name verbatim in the encoded bytes.
_KV = re.compile(
    r"""(?:^|(?<=[\s?&;#,'"(]))(?P<name>[^\x00-\x20=&?#;,'"()<>{}\\\x7f]{1,128})="""
    r"""(?:"(?P<dq>[^"\\\n]*)"|'(?P<sq>[^'\\\n]*)'|(?P<v>[^&#;?\s'"\\<>]*))""")
_QUOTED = re.compile(
    r"""(?P<q>["'])(?P<name>[^"'\\\n]{1,128})(?P=q)\s*:\s*"""
    r"""(?:"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>(?:[^'\\\n]|\\.)*)')""")
_AUTH_LINE = re.compile(
    r"(?i)(?<![A-Za-z0-9-])(?:proxy-)?authorization[ \t]*:[ \t]*"
    r"(?:basic|bearer|digest|token|negotiate|ntlm|aws4-hmac-sha256)[ \t]+"
    r"""(?P<v>[^\s'"\\](?:[^\r\n'"\\]*[^\s'"\\])?)""")
_USERINFO = re.compile(
    r"""(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:'"\\]*:(?P<v>[^\s/?#@'"\\]+)@""")
_TOKENS = re.compile(
    r"-----BEGIN (?P<pl>(?:[A-Z0-9]+ )*)PRIVATE KEY(?P<pt>(?: BLOCK)?)-----"
    r"(?:[\s\S]{0,8192}?-----END (?P=pl)PRIVATE KEY(?P=pt)-----|[A-Za-z0-9+/=\s:,\\-]*)"
    r"|(?<![A-Za-z0-9_-])(?i:bearer)[ \t\r\n]+(?P<bearer>(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{8,}=*)"
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
    r"|(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"
    r"|(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}"
    r"|(?<![A-Za-z0-9_-])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"
    r"|(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35,}"
    r"|(?<![A-Za-z0-9_-])xox[abposr]-[A-Za-z0-9-]{10,}")
# Encodes a (request, response) pair for the pre-filter when the caller has no encoding of it.
_ENCODER: Final = msgspec.json.Encoder()

_Trie = dict[str | int, "_Node"]


class _Node:
    __slots__ = ("children", "terminal")

    def __init__(self) -> None:
        self.terminal = False
        self.children: _Trie = {}


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

    `names` are extra sensitive name fragments, `patterns` extra regular expressions for token-shaped
    strings, `allow` names or JSON paths (starting with ``$``) never redacted. The built-in rules always apply
    while `enabled`.
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
        a name without letters, an invalid or empty-matching regular expression, or a malformed path.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"a redaction policy must be an object, not {type(data).__name__}",
                             source=source, path=at)
        try:
            policy = msgspec.convert(dict(data), type=cls)
        except msgspec.ValidationError as exc:
            reason, _, where = str(exc).partition(" - at `$")
            raise InputError(reason, source=source, path=at + where.rstrip("`")) from None
        _Compiled(policy, source=source, at=at)
        return policy


class _Compiled:
    """A policy checked and compiled; raises InputError on the first bad entry."""

    def __init__(self, policy: RedactionPolicy, *, source: str, at: str) -> None:
        self.fragments: list[tuple[str, ...]] = []
        anchors: list[str] = []
        for i, name in enumerate(policy.names):
            parts = name_parts(name)
            if all(part.isdigit() for part in parts):
                raise InputError(f"name {name!r} has no letters to match on", source=source,
                                 path=f"{at}.names[{i}]")
            self.fragments.append(parts)
            anchors.append(max((p for p in parts if not p.isdigit()), key=len))
        self.anchors = tuple(anchors)
        self.patterns: list[re.Pattern[str]] = []
        for i, text in enumerate(policy.patterns):
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise InputError(f"invalid regular expression {text!r}: {exc}", source=source,
                                 path=f"{at}.patterns[{i}]") from None
            if pattern.search("") is not None or pattern.search(policy.marker) is not None:
                raise InputError(f"regular expression {text!r} matches the empty string or the marker",
                                 source=source, path=f"{at}.patterns[{i}]")
            self.patterns.append(pattern)
        self.allow_names: set[tuple[str, ...]] = set()
        self.allow_paths = _Node()
        for i, entry in enumerate(policy.allow):
            if entry.startswith("$"):
                try:
                    segments = parse_path(entry)
                    if segments and segments[0] not in ("request", "response"):
                        raise ValueError(f"JSON path {entry!r} must start with $.request or $.response")
                except ValueError as exc:
                    raise InputError(str(exc), source=source, path=f"{at}.allow[{i}]") from None
                node = self.allow_paths
                for segment in segments:
                    node = node.children.setdefault(segment, _Node())
                node.terminal = True
            else:
                parts = name_parts(entry)
                if not parts:
                    raise InputError(f"allowed name {entry!r} has no letters or digits", source=source,
                                     path=f"{at}.allow[{i}]")
                self.allow_names.add(parts)
        if not policy.marker:
            raise InputError("the marker must not be empty", source=source, path=f"{at}.marker")


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


def _clear(request_json: bytes, response_json: bytes) -> bool:
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
        compiled = _Compiled(self.policy, source="redaction policy", at="$")
        self._marker = self.policy.marker
        self._fragments = compiled.fragments
        self._patterns = compiled.patterns
        self._allow_names = compiled.allow_names
        self._allow_request = compiled.allow_paths.children.get("request")
        self._allow_response = compiled.allow_paths.children.get("response")
        self._allow_all = compiled.allow_paths.terminal
        self._prefilter = prefilter
        self._needles = compile_needles(compiled.anchors)
        self._names: dict[str, bool] = {}
        # Given the encodings of request and response, True when `redact` would surely change nothing: the C
        # scanner's one call (see nothing_to_find), for callers that hold the encodings. None where only `redact`
        # can tell (no C scanner, patterns of the policy's own, no pre-filter).
        self.encoded_clear: Callable[[bytes, bytes], bool] | None = None
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
        if len(name) > _MAX_NAME:
            return False
        parts = name_parts(name)
        if not parts or parts in self._allow_names:
            return False
        return _contains(parts, self._fragments) or _builtin_sensitive(parts)

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
                out = _KV.sub(self._named_value, out)
            if ":" in out:
                if '"' in out or "'" in out:
                    out = _QUOTED.sub(self._named_value, out)
                if "uthoriz" in out.lower():
                    out = _AUTH_LINE.sub(self._group_value, out)
        if kinds & BY_SHAPE:
            if "@" in out:
                out = _USERINFO.sub(self._group_value, out)
            out = _TOKENS.sub(self._token, out)
        if kinds & BY_PATTERN:
            for pattern in self._patterns:
                out = pattern.sub(self._custom, out)
        return out

    def _splice(self, m: re.Match[str], group: str) -> str:
        start, end = m.span(group)
        if start == end or m.group(group) == self._marker:
            return m.group(0)
        whole = m.group(0)
        return whole[:start - m.start()] + self._marker + whole[end - m.start():]

    def _named_value(self, m: re.Match[str]) -> str:
        if not self.is_sensitive_name(m.group("name")):
            return m.group(0)
        for group in ("dq", "sq", "v"):
            if m.group(group) is not None:
                return self._splice(m, group)
        return m.group(0)

    def _group_value(self, m: re.Match[str]) -> str:
        return self._splice(m, "v")

    def _token(self, m: re.Match[str]) -> str:
        if m.group("bearer") is not None:
            return self._splice(m, "bearer")
        return m.group(0) if m.group(0) == self._marker else self._marker

    def _custom(self, m: re.Match[str]) -> str:
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
