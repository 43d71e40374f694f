"""Canonical JSON (RFC 8785, JCS) and the strict JSON parser used on every captured input line.

`canonical_json` writes the RFC 8785 form: object keys in UTF-16 code unit order, ECMAScript number formatting,
minimal escaping, UTF-8, no whitespace. Integers outside +-(2**53 - 1), which JCS leaves undefined, are written as
their exact decimal digits. `parse_json` reads strict JSON and refuses what has no canonical form.

Speed comes from msgspec. msgspec's sorted output equals JCS except in four places: float layout, NaN and
Infinity (written as null), key order between U+E000..U+FFFF and characters above U+FFFF, and the types it encodes
natively that JSON does not have (datetime, UUID, bytes, sets, Structs, ...). The fast path encodes with msgspec,
decodes the result and compares it with the input, which proves in C that the input held nothing but JSON values;
the decoder's float hook checks every float token against the ECMAScript layout and marks those to rewrite.
Whatever cannot be proven identical goes through the exact path, which is the reference and names the JSON path
of any value it refuses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from eventlog.errors import CanonicalError, InputError

__all__ = ["canonical_json", "format_path", "parse_json"]

_SORTED: Final = msgspec.json.Encoder(order="sorted")
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
    """A float token of msgspec's output, decoded as its JCS text.

    It equals any float: by construction the value at its place in the input was a finite float (NaN and
    Infinity become null, nothing else is written as a float token), so the comparison with the input only has to
    prove the types. It is written back as its JCS text through `_as_raw`.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float)

    __hash__ = None  # type: ignore[assignment]


_ANY_FLOAT: Final = _Float("")


def _as_raw(obj: object) -> msgspec.Raw:
    if type(obj) is _Float:
        return msgspec.Raw(obj.text.encode("ascii"))
    raise NotImplementedError


# Writes dicts in their own order and each _Float as its JCS text.
_AS_IS: Final = msgspec.json.Encoder(enc_hook=_as_raw)


class _Relayout(Exception):
    """Raised from the checking decoder's float hook: a float token needs the ECMAScript layout."""


class _ManyFloats(Exception):
    """Raised from the relayout decoder's float hook: the exact path, which lays out arrays in bulk, is cheaper."""


# Past this many floats, decoding them one hook call at a time costs more than the exact path.
_MANY_FLOATS: Final = 32


def _float_as_is(token: str) -> _Float:
    # Fixed notation without ".0" is already JCS (see _jcs_float).
    if "e" in token or token[-2:] == ".0":
        raise _Relayout
    return _ANY_FLOAT


_CHECK: Final = msgspec.json.Decoder(float_hook=_float_as_is).decode


def _relayout(value: object, out: bytes) -> bytes | None:
    """`out` with its float tokens in ECMAScript layout, if decoding it gives back `value`; else None."""
    floats = 0

    def relayout(token: str) -> _Float:
        nonlocal floats
        floats += 1
        if floats > _MANY_FLOATS:
            raise _ManyFloats
        return _Float(_jcs_float(token))

    try:
        decoded = msgspec.json.Decoder(float_hook=relayout).decode(out)
        same = decoded == value
    except Exception:  # _ManyFloats, or a user-defined __eq__ that raises: let the exact path decide
        return None
    return _AS_IS.encode(decoded) if same else None


# ---------------------------------------------------------------------------------------------------------------
# canonical_json


def canonical_json(value: object) -> bytes:
    """The RFC 8785 canonical JSON bytes of `value`.

    Accepts dict (str keys), list, tuple (as an array), str, int, float, bool and None, subclasses read as their
    base type. Raises CanonicalError, whose `path` names the offending value (``$.a.b[3]``), for NaN, Infinity,
    lone surrogates in strings or keys, non-string keys and every other type. Costs two to four msgspec passes.
    """
    kind = type(value)
    if kind is str:
        try:
            return _SORTED.encode(value)
        except UnicodeEncodeError:
            pass
    elif kind is int or kind is bool or value is None:
        return _SORTED.encode(value)
    out = _canonical_fast(value)
    return out if out is not None else _canonical_exact(value)


def _canonical_fast(value: object) -> bytes | None:
    """msgspec's sorted encoding where it is proven to equal JCS (float tokens rewritten), else None."""
    try:
        out = _SORTED.encode(value)
    except Exception:  # unsupported type, non-string key, lone surrogate, cycle: the exact path explains it
        return None
    # Code point order (msgspec) and UTF-16 order (JCS) differ only between U+E000..U+FFFF (UTF-8 lead byte EE
    # or EF) and characters above U+FFFF (lead bytes F0..F4); with both present the keys need a look.
    keys_at_risk = not out.isascii() and (b"\xee" in out or b"\xef" in out) and (
        b"\xf0" in out or b"\xf1" in out or b"\xf2" in out or b"\xf3" in out or b"\xf4" in out)
    if len(out) >= _LONG and _plain(value, len(out) >> _BYTES_PER_VALUE_SHIFT, keys_at_risk):
        return out
    if keys_at_risk:
        return None
    try:
        same = _CHECK(out) == value
    except _Relayout:
        return _relayout(value, out)
    except Exception:  # a user-defined __eq__ that raises: let the exact path decide
        return None
    return out if same else None


# Decoding costs per byte, walking per value: a long document of few values (a page of text) is proven faster
# by walking it, once it has at most one value per 128 bytes.
_LONG: Final = 2048
_HIGH_KEY: Final = re.compile("[\ue000-\U0010ffff]")
_BYTES_PER_VALUE_SHIFT: Final = 7


def _plain(value: object, budget: int, keys_at_risk: bool) -> bool:
    """Whether `value` is at most `budget` dicts, lists, str, int, bool and None (exact types, so no floats).

    With msgspec's output in hand (string keys, no lone surrogates) that output is then JCS as it stands, unless
    `keys_at_risk` and some key has a character at or above U+E000.
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            # Counting on the way in stops a document of many values at its first large container.
            budget -= len(item)
            if budget < 0:
                return False
            if kind is list:
                stack.extend(item)
                continue
            if keys_at_risk and _HIGH_KEY.search("".join(item)):
                return False
            stack.extend(item.values())
        elif not (kind is str or kind is int or kind is bool or item is None):
            return False
    return True


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
    probe = inner + ","
    if (".0," in probe or "e-6," in probe or "e16," in probe or "e17," in probe or "e18," in probe
            or "e19," in probe or "e20," in probe):
        inner = ",".join([_jcs_float(token) for token in inner.split(",")])
    else:
        # Only positive exponents differ (see _jcs_float): they gain their "+" in one pass.
        inner = inner.replace("e", "e+").replace("e+-", "e-")
    return msgspec.Raw(f"[{inner}]".encode("ascii"))


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
    reports; both carry `source` and `line`. The happy path costs one msgspec decode and one encode, plus two byte counts unless the input was compact.
    """
    try:
        value = _DECODE(data)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise _parse_failure(data, exc, source=source, line=line) from None
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not _no_repeated_key(raw, _AS_IS.encode(value)):
        _check_duplicates(raw, source=source, line=line)
    return value


_ESCAPED_COLON: Final = re.compile(rb"\\u003[aA]")


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
    return b"\\" not in data or _ESCAPED_COLON.search(data) is None


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
