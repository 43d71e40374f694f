"""Canonical JSON (RFC 8785, JCS) and the strict JSON parser used on every captured input line.

`canonical_json` writes the RFC 8785 form: object keys in UTF-16 code unit order, ECMAScript number formatting,
minimal escaping, UTF-8, no whitespace. Integers outside +-(2**53 - 1), which JCS leaves undefined, are written as
their exact decimal digits. `parse_json` reads strict JSON and refuses what has no canonical form.

Speed comes from msgspec. Its sorted output equals JCS except in four places: float layout, NaN and Infinity
(written as null), key order between U+E000..U+FFFF and characters above U+FFFF, and the types it encodes natively
that JSON lacks (datetime, UUID, bytes, sets, Structs, ...). The fast path encodes with msgspec, then proves the
output right: a walk (in eventlog/_speedups.c where it is built, else level by level with gc.get_referents and
map(type, ...)) shows that the value holds only exact JSON types and collects its floats, whose msgspec layout is
checked in one more encode; the few documents with floats to lay out are decoded once with a float hook and
encoded again. Whatever cannot be proven goes through the exact path, a Python walk that is the reference and
names the JSON path of any value it refuses.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from eventlog.errors import CanonicalError, InputError
from eventlog.extensions import speedups as _speedups

__all__ = ["canonical_json", "format_path", "parse_json"]

_SORTED: Final = msgspec.json.Encoder(order="sorted")
_ENCODE_SORTED: Final = _SORTED.encode
_DECODE: Final = msgspec.json.decode

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def format_path(segments: Sequence[str | int], *, root: str = "$") -> str:
    """Write a JSON path as errors show it: ``$.a.b[3]``, keys that are not identifiers as ``$["we ird"]``."""
    out = [root]
    for segment in segments:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _IDENT.match(segment):
            out.append("." + segment)
        else:
            out.append(f"[{_quote(segment)}]")
    return "".join(out)


def _quote(text: str) -> str:
    # json.dumps, unlike msgspec, accepts lone surrogates; backslashreplace shows them as \udxxx escapes.
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Numbers


def _jcs_float(token: str) -> str:
    """ECMAScript Number-to-String layout (RFC 8785 section 3.2.2.3) of a float token written by msgspec.

    msgspec writes floats with Ryu: the shortest digits that round-trip, the nearest of them to the exact value,
    ties to even, which are exactly the digits ECMAScript (and repr()) pick. Only the layout differs. With n the
    position of the decimal point (value = 0.DIGITS * 10**n), msgspec writes integral values with n <= 16 in full
    plus ".0", other values with -5 < n <= 16 in fixed notation, and the rest as D[.DIGITS]e[-]X with X = n - 1
    and no "+". ECMAScript uses fixed notation for -6 < n <= 21, no ".0", and "e+" for positive exponents.
    """
    mantissa, mark, exponent = token.partition("e")
    if not mark:
        if token[-2:] != ".0":
            return token
        return "0" if token == "0.0" or token == "-0.0" else token[:-2]
    # Compared as text, which is cheaper than int(): exponents below -6 or above 20 keep exponent notation.
    if exponent[0] == "-":
        if len(exponent) > 2 or exponent > "-6":
            return token
    elif len(exponent) > 2 or (len(exponent) == 2 and exponent > "20"):
        return f"{mantissa}e+{exponent}"
    return _jcs_fixed(mantissa, int(exponent))


def _jcs_fixed(mantissa: str, exponent: int) -> str:
    """Fixed notation of D[.DIGITS] * 10**exponent, for -6 <= exponent <= 20."""
    sign = ""
    if mantissa[0] == "-":
        sign, mantissa = "-", mantissa[1:]
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    point = exponent + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


class _Float:
    """A float token of msgspec's output, decoded as its JCS text and written back as such by `_as_raw`."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _as_raw(obj: object) -> msgspec.Raw:
    if type(obj) is _Float:
        return msgspec.Raw(obj.text.encode("ascii"))
    raise NotImplementedError


# Writes dicts in their own order and each _Float as its JCS text.
_AS_IS: Final = msgspec.json.Encoder(enc_hook=_as_raw)

# Past this many floats, a decoder hook call per float costs more than the exact path, which lays out float
# arrays with one msgspec call each.
_MANY_FLOATS: Final = 32


def _relayout(out: bytes) -> bytes:
    """`out`, msgspec's encoding of plain JSON types, with its float tokens in ECMAScript layout."""
    return _AS_IS.encode(msgspec.json.Decoder(float_hook=lambda token: _Float(_jcs_float(token))).decode(out))


# ---------------------------------------------------------------------------------------------------------------
# canonical_json


def canonical_json(value: object) -> bytes:
    """The RFC 8785 canonical JSON bytes of `value`.

    Accepts dict (str keys), list, tuple (as an array), str, int, float, bool and None, subclasses read as their
    base type. Raises CanonicalError, whose `path` names the offending value (``$.a.b[3]``), for NaN, Infinity,
    lone surrogates in strings or keys, non-string keys and every other type. Costs about four times
    msgspec.json.encode; documents with many floats or with other types take the slower exact path.
    """
    kind = type(value)
    if kind is str:
        try:
            return _SORTED.encode(value)
        except UnicodeEncodeError:
            pass
    elif kind is int or kind is bool or value is None:
        return _SORTED.encode(value)
    if _c_fast is None:
        out = _canonical_fast(value)
    else:
        found = _c_fast(value, _ENCODE_SORTED, _MANY_FLOATS)
        out = _relayout(found[0]) if isinstance(found, tuple) else found
    return out if out is not None else _canonical_exact(value)


def _canonical_fast(value: object) -> bytes | None:
    """msgspec's sorted encoding where it is proven to equal JCS (float tokens relaid), else None.

    eventlog/_speedups.c has the same in one call (canonical_fast), which canonical_json takes where it is built.
    """
    try:
        out = _SORTED.encode(value)
    except Exception:  # unsupported type, non-string key, lone surrogate, cycle: the exact path explains it
        return None
    # Code point order (msgspec) and UTF-16 order (JCS) differ only between U+E000..U+FFFF (UTF-8 lead byte EE
    # or EF) and characters above U+FFFF (lead bytes F0..F4); with both present the keys need a look.
    keys_at_risk = not out.isascii() and (b"\xee" in out or b"\xef" in out) and (
        b"\xf0" in out or b"\xf1" in out or b"\xf2" in out or b"\xf3" in out or b"\xf4" in out)
    if not keys_at_risk and type(value) is dict and {*map(type, value), *map(type, value.values())} == _STR:
        return out  # string keys and values (headers, provenance): nothing for the walk to find
    floats = _plain_floats(value, keys_at_risk)
    if floats is None:
        return None
    if not floats:
        return out
    tokens = _SORTED.encode(floats)
    if b"null" in tokens:  # NaN or Infinity
        return None
    if b"e" not in tokens and b".0," not in tokens and b".0]" not in tokens:
        return out  # fixed notation without ".0" is already JCS (see _jcs_float)
    return _relayout(out)


_STR: Final = {str}
# canonical_fast of eventlog/_speedups.c: returns the output, a 1-tuple of output to relay out, or None.
_c_fast: Callable[[object, Callable[[object], bytes], int], bytes | tuple[bytes] | None] | None = (
    None if _speedups is None else _speedups.canonical_fast)
_JSON_TYPES: Final = frozenset({dict, list, tuple, str, int, bool, type(None), float})
_HIGH_KEY: Final = re.compile("[\ue000-\U0010ffff]")


def _plain_floats(value: object, keys_at_risk: bool) -> list[float] | None:
    """The floats in `value` if it is made of exact dict, list, tuple, str, int, bool, None and float only.

    None if anything else is in it (subclasses, datetime, sets, ...), if `keys_at_risk` and a key has a
    character at or above U+E000, or past _MANY_FLOATS floats. Otherwise msgspec's output of `value` (which has
    string keys, no lone surrogate and no cycle, or it would not have encoded) is JCS but for those floats.

    The walk runs in C, a level at a time: gc.get_referents of dicts, lists and tuples gives their values and
    items (dict keys too, unless all of them are exact str), and map(type, ...) their types.
    """
    floats: list[float] = []
    level: list[Any] = [value]
    while level:
        found = set(map(type, level))
        if not found <= _JSON_TYPES:
            return None
        if float in found:
            floats += [item for item in level if type(item) is float]
            if len(floats) > _MANY_FLOATS:
                return None
        if keys_at_risk and dict in found:
            for item in level:
                if type(item) is dict and _HIGH_KEY.search("".join(item)):
                    return None
        # Scalars have no referents; every other object that could have some was refused above.
        level = gc.get_referents(*level)
    return floats


class _Refused(Exception):
    """Raised by `_normalize`; `_locate` then finds the value and its path."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


def _normalize(value: Any) -> object:
    """`value` rebuilt so that msgspec's unsorted encoding of it is exactly JCS (lone surrogates aside)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _normalize_float(value)
    if kind is dict:
        return _normalize_dict(value)
    if kind is list or kind is tuple:
        if value and type(value[0]) is float and set(map(type, value)) == _FLOAT_ONLY:
            return _float_array(value)
        return [_normalize(item) for item in value]
    # Subclasses are read as their base type; the base methods are called directly so overrides cannot change
    # what is written.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return _normalize_float(float.__float__(value))
    if isinstance(value, dict):
        return _normalize_dict(value)
    if isinstance(value, (list, tuple)):
        return [_normalize(item) for item in value]
    raise _Refused


def _normalize_float(value: float) -> object:
    if not math.isfinite(value):
        raise _Refused
    return msgspec.Raw(_jcs_float(_SORTED.encode(value).decode("ascii")).encode("ascii"))


_FLOAT_ONLY: Final = {float}
_STR_ONLY: Final = {str}


def _float_array(values: Sequence[float]) -> msgspec.Raw:
    """An array of floats laid out from one msgspec call: embeddings and series stay cheap."""
    inner = _SORTED.encode(values).decode("ascii")[1:-1]
    if "null" in inner:  # NaN or Infinity
        raise _Refused
    return msgspec.Raw(f"[{','.join(map(_jcs_float, inner.split(',')))}]".encode("ascii"))


def _normalize_dict(value: dict[Any, Any]) -> dict[str, object]:
    keys = list(value)
    if set(map(type, keys)) != _STR_ONLY and not all(isinstance(key, str) for key in keys):
        raise _Refused
    if "".join(keys).isascii():
        keys.sort()
    else:
        try:
            keys.sort(key=_utf16_key)
        except UnicodeEncodeError:  # a lone surrogate
            raise _Refused from None
    return {str.__str__(key): _normalize(value[key]) for key in keys}


def _canonical_exact(value: object) -> bytes:
    """The reference encoder: a Python walk, then msgspec for strings and the output."""
    try:
        return _AS_IS.encode(_normalize(value))
    except (_Refused, UnicodeEncodeError):
        pass
    except RecursionError:
        raise CanonicalError("the value is nested too deeply or contains itself", path="$") from None
    try:
        problem = _locate(value, [])
    except RecursionError:
        raise CanonicalError("the value is nested too deeply or contains itself", path="$") from None
    if problem is None:  # pragma: no cover - _normalize and _locate refuse the same values
        raise CanonicalError("the value has no canonical JSON form", path="$")
    reason, segments = problem
    raise CanonicalError(reason, path=format_path(segments))


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _surrogate_reason(text: str, what: str) -> str | None:
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"{what} has a lone surrogate U+{ord(found.group()):04X} at index {found.start()}; it cannot be UTF-8"


def _locate(value: object, segments: list[str | int]) -> tuple[str, list[str | int]] | None:
    """The first value (depth first, in insertion order) that has no canonical form, with its path."""
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, str):
        reason = _surrogate_reason(value, "the string")
        return None if reason is None else (reason, segments)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN has no JSON form", segments
        if math.isinf(value):
            return f"{'-' if value < 0 else ''}Infinity has no JSON form", segments
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"object key {key!r} is of type {_type_name(key)}, not a string", segments
            reason = _surrogate_reason(key, f"object key {_quote(key)}")
            if reason is not None:
                return reason, segments
            found = _locate(item, [*segments, key])
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _locate(item, [*segments, index])
            if found is not None:
                return found
        return None
    return (f"a value of type {_type_name(value)} has no JSON form; use dict, list, tuple, str, int, float, bool "
            f"or None", segments)


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


# ---------------------------------------------------------------------------------------------------------------
# parse_json


def parse_json(data: bytes | str, *, source: str | None = None, line: int | None = None) -> Any:
    """Parse one strict JSON document: no duplicate keys, NaN, Infinity, invalid UTF-8, lone surrogates or garbage.

    Raises CanonicalError for a value with no canonical form (duplicate key, lone surrogate escape, NaN, a number
    out of range), naming its JSON path, and InputError for anything else, with the byte position msgspec
    reports; both carry `source` and `line`. The happy path costs one msgspec decode and a proof that no key was
    repeated: in C (eventlog/_speedups.c) a count of colons against a walk of the value, else one encode and
    two byte counts.
    """
    try:
        value = _DECODE(data)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise _parse_failure(data, exc, source=source, line=line) from None
    raw = data.encode("utf-8") if isinstance(data, str) else data
    proven = (_no_repeated_key(raw, _AS_IS.encode(value)) if _c_no_repeated_key is None
              else _c_no_repeated_key(raw, value))
    if not proven:
        _check_duplicates(raw, source=source, line=line)
    return value


# no_repeated_key of eventlog/_speedups.c: the same proof without encoding again (see its docstring).
_c_no_repeated_key: Callable[[bytes, object], bool] | None = None if _speedups is None else _speedups.no_repeated_key


def _no_repeated_key(data: bytes, again: bytes) -> bool:
    """Whether valid JSON `data` is proven free of repeated keys by `again`, msgspec's encoding of its value.

    The value keeps one entry per distinct key. If re-encoding gives back the input, nothing was dropped.
    Otherwise count colons: each raw ':' of the input is a name separator or sits in a string, and msgspec
    writes ':' raw, so a dropped entry takes at least its separator with it and leaves fewer colons, unless an
    escaped colon in the input (\\u003a) adds one back; that case goes to the slow check.
    """
    if again == data:
        return True
    # len - len(replace) counts a byte several times faster than bytes.count.
    if len(data) - len(data.replace(b":", b"")) != len(again) - len(again.replace(b":", b"")):
        return False
    # One search for the escapes \u0030..\u003f stands in for \u003a and \u003A; a false alarm costs a slow check.
    return b"\\u003" not in data


class _Constant:
    """NaN, Infinity or an out-of-range number met by the slow parser."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Object(dict[str, Any]):
    """An object from the slow parser, remembering its first repeated key."""

    repeated: str | None = None


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                obj.repeated = key
                break
            seen.add(key)
    return obj


def _parse_float(text: str) -> float | _Constant:
    number = float(text)
    return number if math.isfinite(number) else _Constant(text)


def _slow_parse(text: str) -> Any:
    """The stdlib parser with hooks that keep what msgspec refuses or merges, for `_find_problem`."""
    return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_Constant, parse_float=_parse_float)


def _find_problem(value: object, segments: list[str | int]) -> tuple[str, list[str | int]] | None:
    """The first duplicate key, NaN/Infinity, out-of-range number or lone surrogate, depth first."""
    if isinstance(value, _Constant):
        if value.text in ("NaN", "Infinity", "-Infinity"):
            return f"{value.text} is not a JSON number and has no canonical form", segments
        return f"the number {value.text} is out of range for a double", segments
    if isinstance(value, str):
        reason = _surrogate_reason(value, "the string")
        return None if reason is None else (reason, segments)
    if isinstance(value, _Object):
        if value.repeated is not None:
            return f"duplicate key {_quote(value.repeated)}", segments
        for key, item in value.items():
            reason = _surrogate_reason(key, f"object key {_quote(key)}")
            if reason is not None:
                return reason, segments
            found = _find_problem(item, [*segments, key])
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_problem(item, [*segments, index])
            if found is not None:
                return found
    return None


def _slow_problem(text: str) -> tuple[str, list[str | int]] | None:
    """The first value problem in `text`; raises ValueError or RecursionError if the slow parser cannot read it."""
    return _find_problem(_slow_parse(text), [])


def _check_duplicates(data: bytes, *, source: str | None, line: int | None) -> None:
    try:
        problem = _slow_problem(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InputError(f"cannot check the document for duplicate keys: {exc}", source=source,
                         line=line) from None
    if problem is not None:
        reason, segments = problem
        raise CanonicalError(reason, source=source, line=line, path=format_path(segments))


def _parse_failure(data: bytes | str, exc: Exception, *, source: str | None, line: int | None) -> InputError:
    """The clearest error for input msgspec refused."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return InputError(f"not valid UTF-8 (byte {bad.start})", source=source, line=line)
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as bad:
            return CanonicalError(f"the text has a lone surrogate at character {bad.start}; it cannot be UTF-8",
                                  source=source, line=line)
    if not text.strip():
        return InputError("empty input: expected a JSON value", source=source, line=line)
    try:
        problem = _slow_problem(text)
    except (ValueError, RecursionError):
        problem = None
    if problem is not None:
        reason, segments = problem
        return CanonicalError(reason, source=source, line=line, path=format_path(segments))
    message = str(exc)
    if message.startswith("JSON is malformed: "):
        message = message[len("JSON is malformed: "):]
    return InputError(f"invalid JSON: {message[:1].lower()}{message[1:]}", source=source, line=line)
