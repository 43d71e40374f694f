"""The redaction pre-filter: which JSON strings of an encoded request and response any redaction rule could touch.

Redaction runs on every appended record, and almost every record holds no secret. Instead of examining every key
and string, the pre-filter searches the compact JSON bytes the log encodes anyway for the literals ("needles")
that every rule needs, lower-cased: the bytes are lower-cased and the rarer letters in ANCHORS become one byte in
a single translate; then a few regexes, each starting with one literal byte, find every candidate (Python's re
scans for a literal prefix fast, for a character set slowly). Needles without those letters are anchored on "s",
then on "_", "3" or "w", the rest on their first byte. User info in URLs (scheme://user:password@) is found by its
own byte pattern, so e-mail addresses, which API requests carry often (mailto=), cost nothing. `string_hits` returns the strings
around the hits; `eventlog.redaction.redactor` decides what they mean.

Token families without a literal to search for (Twilio, Discord, Telegram, Mailchimp) are found by their shape,
SHAPE_BYTES, which reads runs of token bytes. Where the optional C speed-ups are built (eventlog/_speedups.c), one
pass in C tells whether any needle occurs at all, so the regexes run only for the rare record where one does, and
the user info and shape patterns run in C too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

import msgspec

from eventlog.extensions import speedups as _speedups

if TYPE_CHECKING:
    from eventlog._speedups import NeedleScanner

__all__ = ["ALL", "BY_NAME", "BY_PATTERN", "BY_SHAPE", "HAR_NAME_KEYS", "KEY_QUALIFIERS", "NUMERIC_LIST",
           "Needles", "compile_needles", "decode_string", "may_hold_named_value", "nothing_to_find", "string_hits"]

# Name parts after which "key" is a sensitive part (api_key, privateKey); the name rules share them.
KEY_QUALIFIERS: Final = frozenset({
    "api", "private", "access", "signing", "client", "consumer", "app", "master", "encryption", "account", "auth",
    "iam", "hmac",
})
USERINFO_BYTES: Final = re.compile(rb"://[^\s/?#@:'\"\\]*:[^\s/?#@'\"\\]+@")
# Tokens with no literal in them, each a whole run of token bytes (or runs joined by ':' or '.'): Twilio account
# SIDs and API keys, Mailchimp API keys, Telegram and Discord bot tokens. A JSON escape before a token (\n, \u0001)
# ends the run as its decoded character would. The C scanner's has_shape reads the same.
SHAPE_BYTES: Final = re.compile(
    rb"(?:(?<![A-Za-z0-9_-])|(?<=\\[bfnrt])|(?<=\\u[0-9A-Za-z_-]{4}))"
    rb"(?:(?:AC|SK)[a-z0-9]{32}|[0-9a-z]{32}-us[0-9]{1,2}|[0-9]{8,10}:[A-Za-z0-9_-]{35}"
    rb"|[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,})(?![A-Za-z0-9_-])")
_NAME_NEEDLES: Final = ("token", "secret", "pass", "pwd", "session", "sessid", "signature", "credential",
                        "authorization", "cookie", "key", "sig=")
# "key" is sensitive only after a qualifier part (apikey, api_key, X-Api-Key, privateKey, api%5Fkey).
_QUALIFIER_BYTES: Final = tuple(q.encode() for q in sorted(KEY_QUALIFIERS))
_SEPARATOR_BYTES: Final = bytes(c for c in range(256) if not bytes([c]).isalnum())
_ESCAPE_TAIL = re.compile(rb"%[0-9a-f]{2}\Z")
_Candidate = tuple[int, bytes, int, bool]
_TOKEN_NEEDLES: Final = ("eyj", "akia", "asia", "abia", "acca", "a3t", "sk-", "k_live_", "k_test_", "ghp_",
                         "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "aiza", "-----begin", "bearer",
                         "xoxa-", "xoxb-", "xoxo-", "xoxp-", "xoxr-", "xoxs-", "hooks.slack.com/services/",
                         "glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glptt-", "glcbt-", "glimt-", "glagent-",
                         "gloas-", "gr1348941", "hf_", "sg.", "npm_", "pypi-age", "sq0csp-", "sq0atp-", "akc")
ANCHORS: Final = b"bgjkxyz"
TABLE: Final = bytes((1 if c in ANCHORS else c) for c in bytes(range(256)).lower())
NUMERIC_LIST = re.compile(rb"\[[-0-9.eE+,]*\]")
HAR_NAME_KEYS: Final = (b'"name":', b'"key":')
# Kinds of rule a pre-filter hit can trigger in a string.
BY_NAME: Final = 1
BY_SHAPE: Final = 2
BY_PATTERN: Final = 4
ALL: Final = 7
# Past this many strings with hits, examining every string is cheaper than locating each one.
_MAX_SPANS: Final = 64


def string_hits(needles: Needles, blob: bytes, patterns: Sequence[re.Pattern[str]]) -> dict[int, list[int]] | None:
    """Every JSON string in `blob` with a hit: its opening quote -> [closing quote, kinds, first name hit].

    Empty when no rule can apply; None when hits are so many that examining everything is cheaper.
    """
    probes = needles.probes
    if needles.scanner is None:
        translated = blob.translate(TABLE)
        for first, probe in enumerate(probes):
            m = probe.search(translated)
            if m is not None:
                return _spans(needles, blob, translated, first, m.start(), patterns)
    elif needles.scanner.find(blob) >= 0:
        return _spans(needles, blob, blob.translate(TABLE), 0, 0, patterns)
    if not has_userinfo(blob) and not has_shape(blob) and not patterns:
        return {}
    return _spans(needles, blob, b"", len(probes), 0, patterns)  # past the probes: no translation needed


def nothing_to_find(needles: Needles, texts: Sequence[bytes]) -> bool:
    """Whether the C scanner proves that no needle, no password in a URL and no shape occurs in any of `texts`.

    Each text is a whole JSON value, so searching them one by one finds what searching them joined would: no
    needle holds the brackets and comma that join them, and a password in a URL lies inside one string. False
    without the C speed-ups, which is "look further", never a wrong answer.
    """
    scanner = needles.scanner
    return scanner is not None and scanner.clear_of(*texts)


def userinfo_by_regex(blob: bytes) -> bool:
    """Whether a URL in `blob` carries a password (scheme://user:password@)."""
    return USERINFO_BYTES.search(blob) is not None


has_userinfo: Final = userinfo_by_regex if _speedups is None else _speedups.has_userinfo


_RUNS: Final = bytes((0x61 if bytes([c]).isalnum() or c in b"_-" else 0x20) for c in range(128)) + b" " * 128
_LONG_RUN: Final = b"a" * 24


def shape_ends(blob: bytes) -> Iterator[int]:
    """Where each token of a family without a literal (see SHAPE_BYTES) ends in `blob`, as SHAPE_BYTES finds them.

    Every such token is, starts with or (Telegram's) ends with a run of 24 or more token bytes: runs are found in
    a translated copy by bytes.find, and the pattern is tried only where they are.
    """
    runs = blob.translate(_RUNS)
    at = runs.find(_LONG_RUN)
    while at >= 0:
        end = runs.find(b" ", at)
        end = len(blob) if end < 0 else end
        m = SHAPE_BYTES.match(blob, at) or SHAPE_BYTES.match(blob, _unescaped(blob, at, end))
        if m is None and end - at == 35 and blob[at - 1:at] == b":":
            digits = runs.rfind(b" ", 0, at - 1) + 1
            m = SHAPE_BYTES.match(blob, digits) or SHAPE_BYTES.match(blob, _unescaped(blob, digits, at - 1))
        if m is not None:
            yield m.end() - 1
        at = runs.find(_LONG_RUN, end)


def _unescaped(blob: bytes, start: int, end: int) -> int:
    """Where a run's token starts once a JSON escape before it (\\n, \\u0001) is skipped."""
    if start == 0 or blob[start - 1] != 0x5C:
        return start
    if blob[start] in b"bfnrt":
        return start + 1
    return start + 5 if blob[start] == 0x75 and end - start >= 5 else start


def shape_by_regex(blob: bytes) -> bool:
    """Whether `blob` holds a token of a family without a literal (see SHAPE_BYTES)."""
    return next(shape_ends(blob), -1) >= 0


has_shape: Final = shape_by_regex if _speedups is None else _speedups.has_shape


def _spans(needles: Needles, blob: bytes, translated: bytes, first: int, offset: int,
       patterns: Sequence[re.Pattern[str]]) -> dict[int, list[int]] | None:
    """Every JSON string with a hit: its opening quote -> [closing quote, kinds, first name hit].

    Probes before `first` found nothing; probe `first` finds nothing before `offset`. None when hits
    are so many that walking everything is cheaper.
    """
    spans: dict[int, list[int]] = {}
    candidates_at = needles.candidates.get
    width = needles.width
    for i in range(first, len(needles.probes)):
        search, possible = needles.probes[i].search, needles.probe_kinds[i]
        start = end = -1
        entry: list[int] = []
        m = search(translated, offset if i == first else 0)
        while m is not None:
            hit = m.start()
            kinds = 0
            for index, needle, kind, qualified in candidates_at(translated[m.end() - width:m.end()], ()):
                at = hit - index
                if blob[at:at + len(needle)].lower() == needle and (
                        not qualified or _after_key_qualifier(blob, at)):
                    kinds |= kind
            if not kinds:  # letters that only look alike once translated
                m = search(translated, hit + 1)
                continue
            if not start < hit < end:
                start, end = string_bounds(blob, hit)
                if start < 0 or end < 0:
                    start = end = -1
                    m = search(translated, hit + 1)
                    continue
                entry = spans.setdefault(start, [end, 0, end])
                if len(spans) > _MAX_SPANS:
                    return None
            entry[1] |= kinds
            if kinds & BY_NAME and hit < entry[2]:
                entry[2] = hit
            # Needles may overlap: resume one byte on, or past the string once it has every kind.
            m = search(translated, end if entry[1] & possible == possible else hit + 1)
    extra = [(m.end() - 1, BY_SHAPE) for m in USERINFO_BYTES.finditer(blob)]
    extra.extend((end, BY_SHAPE) for end in shape_ends(blob))
    if patterns:
        extra.extend((hit, BY_PATTERN) for hit in _pattern_hits(blob, patterns))
    for hit, kinds in extra:
        start, end = string_bounds(blob, hit)
        if start >= 0 and end >= 0:
            spans.setdefault(start, [end, 0, end])[1] |= kinds
            if len(spans) > _MAX_SPANS:
                return None
    return spans


def _pattern_hits(blob: bytes, patterns: Sequence[re.Pattern[str]]) -> list[int]:
    text = blob.decode()
    ascii_only = len(text) == len(blob)
    return [m.start() if ascii_only else len(text[:m.start()].encode())
            for pattern in patterns for m in pattern.finditer(text)]


def _anchor(translated: bytes) -> tuple[bytes, int]:
    """The byte a needle is searched by, and its index: a rare letter, else "s", else a rarer byte than a common
    first letter ("_" of hf_ and npm_, "3" of A3T, "w" of pwd), else its first byte."""
    for anchor in (b"\x01", b"s", b"_", b"3", b"w"):
        i = translated.find(anchor)
        if i >= 0:
            return anchor, i
    return translated[:1], 0


class Needles(NamedTuple):
    probes: tuple[re.Pattern[bytes], ...]
    probe_kinds: tuple[int, ...]  # per probe, the kinds of rule its hits can trigger
    width: int  # how many last bytes of a probe match identify the needle it matched
    candidates: dict[bytes, tuple[_Candidate, ...]]  # per such tail, the needles it may stand for
    # Finds where any needle occurs, in C: a miss skips the probes; None without the C speed-ups.
    scanner: NeedleScanner | None


@functools.lru_cache(maxsize=32)
def compile_needles(extra: tuple[str, ...]) -> Needles:
    """Compile the built-in needles plus `extra` name needles into probes.

    Each probe is one regex starting with a single literal byte. A candidate is (its anchor's index, the
    needle, the kinds of rule it triggers, whether it counts only after a key qualifier). Translation makes
    the anchor letters alike, and a probe reports only the first of two needles whose suffixes start alike,
    so a tail stands for every needle sharing its anchor whose suffix is a prefix of its own, or the
    reverse; a hit checks which of them the lower-cased bytes really hold.
    """
    entries = [(n, BY_NAME, n == "key") for n in _NAME_NEEDLES]
    entries += [(n, BY_SHAPE, False) for n in _TOKEN_NEEDLES] + [(n, BY_NAME, False) for n in extra]
    width = min(3, *(len(needle) for needle, _, _ in entries))
    groups: dict[bytes, dict[bytes, set[bytes]]] = {}
    kinds: dict[bytes, int] = {}
    keyed = []
    for needle, kind, qualified in entries:
        text = needle.encode().translate(TABLE)
        anchor, i = _anchor(text)
        check = b"(?<=" + re.escape(text) + b")" if i else b""
        groups.setdefault(anchor, {}).setdefault(text[i + 1:], set()).add(check)
        kinds[anchor] = kinds.get(anchor, 0) | kind
        keyed.append((anchor, text[i:], text[-width:], (i, needle.encode(), kind, qualified)))
    candidates: dict[bytes, set[_Candidate]] = {}
    for anchor, suffix, tail, _ in keyed:
        for other_anchor, other_suffix, _, candidate in keyed:
            if anchor == other_anchor and (
                    other_suffix.startswith(suffix) or suffix.startswith(other_suffix)):
                candidates.setdefault(tail, set()).add(candidate)
    order = sorted(groups)
    return Needles(probes=tuple(re.compile(re.escape(a) + _alternation(groups[a])) for a in order),
                    probe_kinds=tuple(kinds[a] for a in order), width=width,
                    candidates={tail: tuple(sorted(found)) for tail, found in candidates.items()},
                    scanner=None if _speedups is None else _speedups.NeedleScanner([n.encode() for n, _, _ in entries]))


def _alternation(branches: dict[bytes, set[bytes]]) -> bytes:
    """A regex for `suffix + check` over all branches, factored on the suffixes' first bytes.

    Factoring lets re reject most anchor positions after one byte comparison per branch group.
    """
    ends = branches.get(b"", set())
    if b"" in ends:
        return b""
    by_first: dict[bytes, dict[bytes, set[bytes]]] = {}
    for suffix, checks in branches.items():
        if suffix:
            by_first.setdefault(suffix[:1], {}).setdefault(suffix[1:], set()).update(checks)
    alternatives = [re.escape(first) + _alternation(rest) for first, rest in sorted(by_first.items())]
    alternatives.extend(sorted(ends))
    return alternatives[0] if len(alternatives) == 1 else b"(?:" + b"|".join(alternatives) + b")"


def string_bounds(blob: bytes, pos: int) -> tuple[int, int]:
    """The quotes of the JSON string around `pos`: the nearest unescaped quotes before and after."""
    start = blob.rfind(b'"', 0, pos)
    while start > 0 and _escaped(blob, start):
        start = blob.rfind(b'"', 0, start)
    end = blob.find(b'"', pos)
    while end > 0 and _escaped(blob, end):
        end = blob.find(b'"', end + 1)
    return start, end


def _after_key_qualifier(blob: bytes, at: int) -> bool:
    """Whether the name part before `at` may be a key qualifier (or lies beyond the bytes looked at)."""
    before = blob[max(0, at - 96):at].lower().rstrip(_SEPARATOR_BYTES)
    while _ESCAPE_TAIL.search(before) is not None:
        before = before[:-3].rstrip(_SEPARATOR_BYTES)
    return not before or before.endswith(_QUALIFIER_BYTES)


_NAMED_VALUE_AFTER: Final = re.compile(rb"(?i)[=:]|is|was")


def may_hold_named_value(blob: bytes, name: int, end: int) -> bool:
    """Whether a name found at `name` can be followed by ``=value``, ``": value``, ``: <scheme> value`` or, in
    prose, ``is value``."""
    return _NAMED_VALUE_AFTER.search(blob, name, end) is not None


def decode_string(blob: bytes, start: int, end: int) -> str | None:
    raw = blob[start + 1:end]
    if b"\\" not in raw:
        return raw.decode()
    try:
        text = msgspec.json.decode(blob[start:end + 1])
    except msgspec.DecodeError:
        return None  # not a string after all: a user name part found in a number or a literal
    return text if isinstance(text, str) else None


def _escaped(blob: bytes, quote: int) -> bool:
    i = quote
    while i > 0 and blob[i - 1] == 0x5C:
        i -= 1
    return (quote - i) % 2 == 1
