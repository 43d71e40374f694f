"""Canonical JSON (RFC 8785) against the rfc8785 package, and the strict parser."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import random
import struct
import uuid
from collections import OrderedDict
from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.errors import CanonicalError, InputError
from eventlog.format import canonical
from eventlog.format.canonical import _canonical_exact, canonical_json, format_path, parse_json

SAFE = 2**53 - 1

# ---------------------------------------------------------------------------------------------------------------
# Generated JSON values

# Every exponent range: hypothesis' own floats (subnormals, -0.0, huge and tiny), decimal strings of any
# exponent, and the places where ECMAScript switches layout.
_SWITCHES = [1e21, 9.999999999999999e20, 1e20, 1e16, 9999999999999998.0, 1e15, 1e-6, 9.999999999999999e-7,
             1e-7, 1e-5, 1e-4, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.0, -0.0,
             2.0**53, 2.0**53 + 2, -(2.0**63), 2.0**64, 0.1, 1.0, -1.0, 100.0, 123456789012345680000.0]
_decimal_floats = st.builds(
    lambda digits, exponent: float(f"{digits}e{exponent}"),
    st.integers(1, 10**17 - 1), st.integers(-340, 290)).filter(math.isfinite)
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), _decimal_floats, st.sampled_from(_SWITCHES),
                   _decimal_floats.map(lambda f: -f))

# Control characters, the escapes, U+007F, U+2028, private use (U+E000..U+F8FF), U+FFFF and astral characters,
# including those that sort differently in UTF-16 than in code points.
_SPECIAL = "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1f\"\\/\x7f\u2028\u2029\ue000\uf8ff\ufeff\uffff\U00010000\U0001f600\U0010ffff"
_chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from(_SPECIAL))
texts = st.text(_chars, max_size=12)
keys = st.one_of(texts, st.sampled_from(["", "a", "b", "aa", "\ue000", "\uffff", "\U0001f600", "\U00010000",
                                         "a\ue000", "a\U0001f600", "é", "\x7f"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-SAFE, SAFE), floats, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.lists(inner, max_size=4).map(tuple),
                            st.dictionaries(keys, inner, max_size=6)),
    max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_matches_rfc8785(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonical_json(value) == expected
    assert _canonical_exact(value) == expected  # the reference path on its own, whatever the fast path did


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_matches_rfc8785_with_the_fast_path_in_python(value: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical, "_c_fast", None)  # as without a C compiler
        assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, json_values, min_size=1, max_size=4), st.text(_chars, min_size=1, max_size=40),
       st.integers(2100, 6000))
def test_long_documents_match_rfc8785(head: dict[str, Any], piece: str, size: int) -> None:
    # Long text takes the walking proof; astral and private-use keys beside it put key order at risk.
    doc = {**head, "text": (piece * (size // len(piece) + 1))[:size], "\U0001f600": 1, "\ue000": 2}
    assert canonical_json(doc) == rfc8785.dumps(doc)
    del doc["\ue000"]
    assert canonical_json(doc) == rfc8785.dumps(doc)


@settings(max_examples=100, deadline=None)
@given(st.lists(floats, min_size=1, max_size=120), st.lists(floats, max_size=3))
def test_float_arrays_match_rfc8785(series: list[float], few: list[float]) -> None:
    doc = {"series": series, "few": few, "nested": [series[:3], {"x": series[-1]}]}
    assert canonical_json(doc) == rfc8785.dumps(doc)
    assert canonical_json(series) == rfc8785.dumps(series)


def test_random_doubles_match_rfc8785() -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    values = [v for v in (struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
                          for _ in range(20000)) if math.isfinite(v)]
    values += [float(rng.randrange(-10**17, 10**17)) * 10.0 ** rng.randint(-30, 30) for _ in range(5000)]
    assert canonical_json(values) == rfc8785.dumps(values), f"seed {seed}"
    for value in values[:3000]:
        assert canonical_json(value) == rfc8785.dumps(value), f"seed {seed}: {value!r}"


# ---------------------------------------------------------------------------------------------------------------
# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript text

APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(hex_bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(hex_bits))[0])


@pytest.mark.parametrize(("hex_bits", "expected"), APPENDIX_B)
def test_appendix_b_numbers(hex_bits: str, expected: str) -> None:
    number = _double(hex_bits)
    assert canonical_json(number) == expected.encode()
    assert canonical_json([number]) == f"[{expected}]".encode()
    assert canonical_json({"n": number, "m": [number] * 3}) == f'{{"m":[{expected},{expected},{expected}],"n":{expected}}}'.encode()


@pytest.mark.parametrize(("hex_bits", "name"), [("7fffffffffffffff", "NaN"), ("7ff0000000000000", "Infinity")])
def test_appendix_b_refusals(hex_bits: str, name: str) -> None:
    with pytest.raises(CanonicalError, match=name):
        canonical_json({"n": _double(hex_bits)})


@pytest.mark.parametrize(("value", "expected"), [
    (1.0, b"1"), (1e21, b"1e+21"), (1e-7, b"1e-7"), (0.000001, b"0.000001"), (-0.0, b"0"), (1e20, b"100000000000000000000"),
    (1e16, b"10000000000000000"), (1.5e-6, b"0.0000015"), (123.456, b"123.456"), (-1e300, b"-1e+300"),
])
def test_number_layout(value: float, expected: bytes) -> None:
    assert canonical_json(value) == expected
    assert canonical_json({"v": [value]}) == b'{"v":[' + expected + b"]}"


# ---------------------------------------------------------------------------------------------------------------
# Integers, strings, keys, accepted types


@pytest.mark.parametrize("number", [2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1,
                                    10**30 + 7, 2**200 + 3])
def test_big_integers_are_exact(number: int) -> None:
    assert canonical_json(number) == str(number).encode()
    assert canonical_json(-number) == str(-number).encode()
    assert canonical_json({"n": [number, -number], "f": 0.5}) == f'{{"f":0.5,"n":[{number},{-number}]}}'.encode()


def test_escaping_is_minimal_and_lowercase() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u2029é😀'
    expected = ('"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f'
                "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c"
                '\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028\u2029é😀"').encode()
    assert canonical_json(text) == expected
    assert canonical_json({text: text}) == b"{" + expected + b":" + expected + b"}"


def test_keys_sort_by_utf16_code_units() -> None:
    # U+E000 sorts after U+1F600 in UTF-16 (D83D DE00 < E000) but before it in code points.
    value = {"\ue000": 1, "\U0001f600": 2, "b": 3, "a": 4, "é": 5, "": 6, "aa": 7}
    expected = '{"":6,"a":4,"aa":7,"b":3,"é":5,"😀":2,"\ue000":1}'.encode()
    assert canonical_json(value) == expected == rfc8785.dumps(value)
    # Objects of strings only take a shorter proof; the order rule holds for them too.
    strings = {key: str(number) for key, number in value.items()}
    assert canonical_json(strings) == rfc8785.dumps(strings)


def test_no_unicode_normalisation() -> None:
    composed, decomposed = "\u00e9", "e\u0301"
    assert canonical_json(composed) != canonical_json(decomposed)
    assert canonical_json({composed: 1, decomposed: 2}) == '{"e\u0301":2,"\u00e9":1}'.encode()


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_accepted_types() -> None:
    assert canonical_json(True) == b"true" and canonical_json(False) == b"false" and canonical_json(None) == b"null"
    assert canonical_json({"a": True, "b": 1}) == b'{"a":true,"b":1}'
    assert canonical_json((1, (2.5, "x"), [])) == b'[1,[2.5,"x"],[]]'
    assert canonical_json(OrderedDict([("b", 1), ("a", (2,))])) == b'{"a":[2],"b":1}'
    assert canonical_json({"c": Colour.RED, Name("k"): Name("v")}) == b'{"c":1,"k":"v"}'
    assert canonical_json({}) == b"{}" and canonical_json([]) == b"[]" and canonical_json("") == b'""'


# ---------------------------------------------------------------------------------------------------------------
# Refusals name the JSON path


@dataclasses.dataclass
class Point:
    x: int


class Shade(enum.Enum):
    DARK = "dark"


class Item(msgspec.Struct):
    x: int


@pytest.mark.parametrize(("value", "path", "reason"), [
    (math.nan, "$", "NaN"),
    ({"a": {"b": [0, 1, 2, math.inf]}}, "$.a.b[3]", "Infinity"),
    ({"a": [-math.inf]}, "$.a[0]", "-Infinity"),
    ({"we ird": [1.5, math.nan]}, '$["we ird"][1]', "NaN"),
    ({"a": {1: "x"}}, "$.a", "object key 1 is of type int"),
    ({None: 1}, "$", "object key None"),
    ({"a": "x", 2: "y"}, "$", "object key 2 is of type int"),
    ({"a": "x", "b": "\udfff"}, "$.b", "lone surrogate U+DFFF"),
    ({("t",): 1}, "$", "object key ('t',)"),
    ({"a": ["ok", "bad \ud800 here"]}, "$.a[1]", "lone surrogate U+D800 at index 4"),
    ({"k\udc00": 1}, "$", 'object key "k\\udc00" has a lone surrogate U+DC00'),
    ("\ud83d\ude00", "$", "lone surrogate U+D83D"),
    ({"when": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)}, "$.when", "datetime.datetime"),
    ({"d": datetime.date(2024, 1, 1)}, "$.d", "datetime.date"),
    ({"n": decimal.Decimal("1.5")}, "$.n", "decimal.Decimal"),
    ({"b": b"bytes"}, "$.b", "type bytes"),
    ({"s": {1, 2}}, "$.s", "type set"),
    ({"f": frozenset()}, "$.f", "type frozenset"),
    ({"u": uuid.UUID(int=1)}, "$.u", "uuid.UUID"),
    ({"p": Point(1)}, "$.p", "Point"),
    ({"e": Shade.DARK}, "$.e", "Shade"),
    ({"m": Item(x=1)}, "$.m", "Item"),
    ({"raw": msgspec.Raw(b"1")}, "$.raw", "msgspec.Raw"),
    ({"o": [object()]}, "$.o[0]", "type object"),
    ({"x": {"y-z": {"0": [{"ok": 1}, {"_a1": math.nan}]}}}, '$.x["y-z"]["0"][1]._a1', "NaN"),
])
def test_refusals_name_the_path(value: object, path: str, reason: str) -> None:
    with pytest.raises(CanonicalError) as caught:
        canonical_json(value)
    assert caught.value.path == path
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"at {path}: ")


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalError, match="nested too deeply or contains itself"):
        canonical_json({"a": loop})


def test_format_path() -> None:
    assert format_path([]) == "$"
    assert format_path(["a", "b", 3]) == "$.a.b[3]"
    assert format_path(["we ird", 0, "_x9", "9x", "é", 'q"']) == '$["we ird"][0]._x9["9x"]["é"]["q\\""]'
    assert format_path(["body"], root="$.response") == "$.response.body"


# ---------------------------------------------------------------------------------------------------------------
# parse_json


def test_parse_round_trip() -> None:
    value = {"b": [1, 2.5, None, True, "é\n"], "a": {"z": 1e21, "y": -0.0, "big": 2**70}}
    for data in (json.dumps(value).encode(), json.dumps(value, indent=2, ensure_ascii=False),
                 canonical_json(value), json.dumps(value, separators=(",", ":")).encode()):
        assert parse_json(data) == value
        assert canonical_json(parse_json(data)) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_parse_then_canonical_matches_rfc8785(value: Any) -> None:
    for data in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False, indent=1).encode()):
        parsed = parse_json(data)
        assert canonical_json(parsed) == rfc8785.dumps(value)


@pytest.mark.parametrize(("data", "path", "key"), [
    (b'{"id": 1, "id": 2}', "$", "id"),
    (b'{"response": {"body": {"id": 1, "x": [1, 2], "id": 3}}}', "$.response.body", "id"),
    (b'[0, {"a": [{"k": {"k": 1, "k": 2}}]}]', "$[1].a[0].k", "k"),
    (b'{"we ird": {"a b": 1, "a b": 1}}', '$["we ird"]', "a b"),
    # An escaped colon adds back the colon a dropped entry takes away: the slow check still sees it.
    (b'{"a": "\\u003a", "a": 1}', "$", "a"),
    (b'{"x\\u003ay": 1, "x:y": 2}', "$", "x:y"),
])
def test_duplicate_keys_are_refused_with_their_path(data: bytes, path: str, key: str) -> None:
    with pytest.raises(CanonicalError) as caught:
        parse_json(data, source="captures.ndjson", line=7)
    assert caught.value.path == path
    assert str(caught.value) == f'captures.ndjson, line 7, at {path}: duplicate key {json.dumps(key)}'
    assert (caught.value.source, caught.value.line) == ("captures.ndjson", 7)


def test_duplicate_key_message_reads_as_documented() -> None:
    with pytest.raises(CanonicalError, match=r'^captures\.ndjson, line 7, at \$\.response\.body: duplicate key "id"$'):
        parse_json('{"response": {"body": {"id": 1, "id": 1}}}', source="captures.ndjson", line=7)


def test_same_keys_in_different_objects_are_fine() -> None:
    assert parse_json(b'[{"id": 1}, {"id": 2}, {"a": {"id": 3}, "id": 4}]') == [
        {"id": 1}, {"id": 2}, {"a": {"id": 3}, "id": 4}]
    assert parse_json(b'{"a:b": "c:d", "e": "\\u003a"}') == {"a:b": "c:d", "e": ":"}


@pytest.mark.parametrize(("data", "kind", "message"), [
    (b"NaN", CanonicalError, "at $: NaN is not a JSON number"),
    (b'{"a": [1, NaN]}', CanonicalError, "at $.a[1]: NaN is not a JSON number"),
    (b'{"a": Infinity}', CanonicalError, "at $.a: Infinity is not a JSON number"),
    (b"[-Infinity]", CanonicalError, "at $[0]: -Infinity is not a JSON number"),
    (b'{"n": 1e400}', CanonicalError, "at $.n: the number 1e400 is out of range"),
    (b'{"s": ["\\ud800"]}', CanonicalError, "at $.s[0]: the string has a lone surrogate U+D800"),
    (b'{"s": "x\\udc00"}', CanonicalError, "at $.s: the string has a lone surrogate U+DC00 at index 1"),
    (b'{"\\ud800": 1}', CanonicalError, "at $: object key"),
    (b'{"a": "\xff"}', InputError, "not valid UTF-8 (byte 7)"),
    (b'"\xed\xa0\x80"', InputError, "not valid UTF-8 (byte 1)"),
    (b"", InputError, "empty input"),
    (b"  \n ", InputError, "empty input"),
    (b"[1] x", InputError, "invalid JSON: trailing characters (byte 5)"),
    (b'{"a": 1}{"b": 2}', InputError, "invalid JSON: trailing characters (byte 9)"),
    (b'{"a" 1}', InputError, "invalid JSON: expected ':' (byte 5)"),
    (b"[1,]", InputError, "invalid JSON: trailing comma in array (byte 3)"),
    (b'{"a": 1', InputError, "invalid JSON: input data was truncated"),
    (b"\xef\xbb\xbf[1]", InputError, "invalid JSON: invalid character (byte 0)"),
])
def test_bad_input(data: bytes, kind: type[InputError], message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_json(data, source="captures.ndjson", line=3)
    assert type(caught.value) is kind
    assert str(caught.value).startswith("captures.ndjson, line 3")
    assert message in str(caught.value)


def test_text_input_with_a_lone_surrogate() -> None:
    with pytest.raises(CanonicalError, match="lone surrogate"):
        parse_json('["\ud800"]')
    assert parse_json('{"a": "\u00e9"}') == {"a": "\u00e9"}
