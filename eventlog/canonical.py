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
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from eventlog.errors import CanonicalError, InputError

__all__ = ["canonical_json", "format_path", "parse_json"]

_SORTED: Final = msgspec.json.Encoder(order="sorted")
_DECODE: Final = msgspec.json.decode

# A string above this length makes decoding dearer than walking the few values around it, so documents made
# mostly of long text take the exact path (see `_canonical_fast`).
_LONG_TEXT: Final = 4096
_WALK_BUDGET: Final = 64

_SAFE_FLOAT: Final = 2.0**53

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
    # json.dumps, unlike msgspec, accepts lone surrogates; they are shown as \udxxx escapes.
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("ascii", "replace") \
        if not text.isascii() else json.dumps(text)


# ---------------------------------------------------------------------------------------------------------------
# Numbers


def format_float(number: float) -> str:
    """ECMAScript Number-to-String of a finite float, as RFC 8785 section 3.2.2.3 requires.

    repr() gives the shortest digits that round-trip, the same digits ECMAScript chooses; only their layout
    differs: Python switches to exponent form outside 1e-4 <= |x| < 1e16, ECMAScript outside 1e-6 <= |x| < 1e21.
    """
    text = repr(number)
    if "e" not in text:
        if text.endswith(".0"):
            text = text[:-2]
            return "0" if text == "-0" else text
        return text
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text)
    if -7 < exponent < 21:
        sign = ""
        if mantissa[0] == "-":
            sign, mantissa = "-", mantissa[1:]
        digits = mantissa.replace(".", "")
        if exponent > 0:
            return sign + digits + "0" * (exponent + 1 - len(digits))
        return sign + "0." + "0" * (-exponent - 1) + digits
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{-exponent if exponent < 0 else exponent}"


class _Pending:
    """A decoded float whose msgspec layout differs from JCS; equal to the float, encoded as its JCS text."""

    __slots__ = ("number", "raw")

    def __init__(self, number: float, text: str) -> None:
        self.number = number
        self.raw = msgspec.Raw(text.encode("ascii"))

    def __eq__(self, other: object) -> bool:
        return bool(other == self.number)

    __hash__ = None  # type: ignore[assignment]


def _pending_raw(obj: object) -> msgspec.Raw:
    if type(obj) is _Pending:
        return obj.raw
    raise NotImplementedError


# Writes dicts in their own order and each _Pending as its JCS text.
_AS_IS: Final = msgspec.json.Encoder(enc_hook=_pending_raw)


class _FloatCheck(threading.local):
    """Per-thread decoder whose float hook compares each float token with its JCS text."""

    def __init__(self) -> None:
        self.pending = False
        self.decode: Callable[[bytes], Any] = msgspec.json.Decoder(float_hook=self._check).decode

    def _check(self, token: str) -> object:
        number = float(token)
        text = format_float(number)
        if text == token:
            return number
        self.pending = True
        return _Pending(number, text)


_FLOATS: Final = _FloatCheck()


# ---------------------------------------------------------------------------------------------------------------
# canonical_json


def canonical_json(value: object) -> bytes:
    """The RFC 8785 canonical JSON bytes of `value`.

    Accepts dict (str keys), list, tuple (as an array), str, int, float, bool and None, subclasses read as their
    base type. Raises CanonicalError, whose `path` names the offending value (``$.a.b[3]``), for NaN, Infinity,
    lone surrogates in strings or keys, non-string keys and every other type. Costs about two msgspec passes.
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
    """msgspec's sorted encoding where it is proven to equal JCS, else None."""
    try:
        out = _SORTED.encode(value)
    except Exception:  # unsupported type, non-string key, lone surrogate, cycle: the exact path explains it
        return None
    if not out.isascii():
        # Code point order (msgspec) and UTF-16 order (JCS) differ only between U+E000..U+FFFF (UTF-8 lead byte
        # EE or EF) and characters above U+FFFF (lead bytes F0..F4).
        if (b"\xee" in out or b"\xef" in out) and (
                b"\xf0" in out or b"\xf1" in out or b"\xf2" in out or b"\xf3" in out or b"\xf4" in out):
            return None
        if len(out) > _LONG_TEXT and _few_values(value):
            return None
    check = _FLOATS
    check.pending = False
    try:
        decoded = check.decode(out)
        same = decoded == value
    except Exception:  # a user-defined __eq__ that raises: let the exact path decide
        return None
    if not same:
        return None
    return _AS_IS.encode(decoded) if check.pending else out


def _few_values(value: object) -> bool:
    """Whether `value` holds at most _WALK_BUDGET containers and scalars; stops counting past the budget."""
    pending = [value]
    seen = 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > _WALK_BUDGET:
            return False
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return True


class _Refused(Exception):
    """Raised by `_normalize`; `_locate` then finds the value and its path."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


def _normalize(value: object) -> object:
    """`value` rebuilt so that msgspec's unsorted encoding of it is exactly JCS (lone surrogates aside)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _normalize_float(value)  # type: ignore[arg-type]
    if kind is dict:
        return _normalize_dict(value)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return [_normalize(item) for item in value]  # type: ignore[attr-defined]
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
    if value.is_integer() and abs(value) <= _SAFE_FLOAT:
        return int(value)  # cheaper than a Raw, and the same digits where every integer is exact
    return msgspec.Raw(format_float(value).encode("ascii"))


def _normalize_dict(value: dict[Any, Any]) -> dict[str, object]:
    keys = list(value)
    for key in keys:
        if not isinstance(key, str):
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
    reports; both carry `source` and `line`. The happy path costs one msgspec decode and one encode.
    """
    try:
        value = _DECODE(data)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise _parse_failure(data, exc, source=source, line=line) from None
    # Proof that no key was repeated: every raw ':' is a separator or inside a string, and msgspec writes ':' raw.
    # A repeated key drops at least its own separator from the re-encoding, so equal counts mean no repeat, unless
    # an escaped colon (\u003a) in the input added one back.
    again = _AS_IS.encode(value)
    colons = data.count(b":") if isinstance(data, bytes) else data.count(":")
    if colons != again.count(b":") or _has_escaped_colon(data):
        _check_duplicates(data, source=source, line=line)
    return value


def _has_escaped_colon(data: bytes | str) -> bool:
    if isinstance(data, str):
        return "\\u003a" in data or "\\u003A" in data
    return b"\\u003a" in data or b"\\u003A" in data


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


def _check_duplicates(data: bytes | str, *, source: str | None, line: int | None) -> None:
    try:
        problem = _slow_problem(data.decode("utf-8") if isinstance(data, bytes) else data)
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
