"""The optional C speed-ups give the answers of their pure-Python equivalents.

Without a C compiler the extension is not built and these tests are skipped, unless EVENTLOG_TEST_REQUIRE_SPEEDUPS
is set (CI sets it), under which a missing extension is a failure.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eventlog import CanonicalError, parse_json
from eventlog.format import canonical
from eventlog.format.canonical import _MANY_FLOATS, _plain_floats
from eventlog.redaction.prefilter import SHAPE_BYTES, shape_by_regex, userinfo_by_regex
from tests.extensions import require

_speedups = require("speedups")

NEEDLES = [b"token", b"key", b"sk-", b"-----begin", b"x", b"\xc3\xa9t", b"eyj", b"bearer", b"tok"]
PIECES = [n.upper() for n in NEEDLES] + NEEDLES + [b"Tok", b"ToKeN", b"k", b"e", b"s", b"-", b"\x00", b"\xff",
                                                  b"\xc3\xa9", b"\xc3\x89T", b" ", b"\n", b'"', b"a", b"BEAR"]
blobs = st.lists(st.sampled_from(PIECES) | st.binary(max_size=4), max_size=12).map(b"".join)


def first_needle(blob: bytes, needles: list[bytes], start: int = 0) -> int:
    """The reference: the earliest position of any needle in the ASCII-lower-cased bytes."""
    lowered = blob.lower()
    found = [at for needle in needles if (at := lowered.find(needle, start)) >= 0]
    return min(found, default=-1)


@settings(max_examples=600, deadline=None)
@given(blob=st.lists(st.sampled_from(PIECES) | st.binary(max_size=40), max_size=30).map(b"".join),
       chosen=st.lists(st.sampled_from([n for n in NEEDLES if len(n) > 1] + [b"k-", b"\xc3\xa9"]), min_size=1,
                       unique=True),
       start=st.integers(-2, 300))
def test_needle_scanner_finds_the_first_needle_in_long_blobs(blob: bytes, chosen: list[bytes], start: int) -> None:
    """Long enough for the 16-byte vector filter, which needles of two bytes or more take, to run."""
    scanner = _speedups.NeedleScanner(chosen)
    assert scanner.find(blob, start) == first_needle(blob, chosen, max(start, 0))


def test_needle_scanner_finds_needles_at_every_offset_of_a_block() -> None:
    for needle in (b"token", b"sk-", b"\xc3\xa9t", b"eyj", b"k-"):
        scanner = _speedups.NeedleScanner([needle, b"bearer"])
        for size in range(len(needle), 70):
            for at in range(0, size - len(needle) + 1):
                blob = bytearray(b"." * size)
                blob[at:at + len(needle)] = needle.upper() if at % 2 else needle
                assert scanner.find(bytes(blob)) == at, (needle, size, at)
                assert scanner.find(bytes(blob), at + 1) == -1


@settings(max_examples=600, deadline=None)
@given(blob=blobs, chosen=st.lists(st.sampled_from(NEEDLES), unique=True), start=st.integers(-2, 40))
def test_needle_scanner_finds_the_first_needle(blob: bytes, chosen: list[bytes], start: int) -> None:
    scanner = _speedups.NeedleScanner(chosen)
    assert scanner.find(blob) == first_needle(blob, chosen)
    assert scanner.find(blob, start) == first_needle(blob, chosen, max(start, 0))


def test_needle_scanner_edges() -> None:
    scanner = _speedups.NeedleScanner([b"x", b"key"])
    assert [scanner.find(b) for b in (b"", b"x", b"X", b"ab", b"aX", b"KE", b"KEY", b"aKEy")] == [
        -1, 0, 0, -1, 1, -1, 0, 1]
    assert scanner.find(bytearray(b"--KeY")) == 2 and scanner.find(memoryview(b"--x")) == 2
    assert _speedups.NeedleScanner([]).find(b"anything") == -1


@pytest.mark.parametrize(("needles", "error", "message"), [
    ([b"ok", b""], ValueError, "needle 1 is not a non-empty bytes object"),
    (["text"], ValueError, "needle 0 is not a non-empty bytes object"),
    (5, TypeError, "needles must be a sequence of bytes"),
])
def test_needle_scanner_refuses_bad_needles(needles: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _speedups.NeedleScanner(needles)  # type: ignore[arg-type]


def test_needle_scanner_refuses_what_is_not_bytes() -> None:
    scanner = _speedups.NeedleScanner([b"key"])
    with pytest.raises(TypeError):
        scanner.find("key")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes data and an optional start"):
        scanner.find()  # type: ignore[call-arg]


URL_PIECES = [b"://", b":", b"/", b"@", b"?", b"#", b"'", b'"', b"\\", b" ", b"\t", b"\x0b", b"\x0c", b"\r",
              b"\n", b"u", b"pw", b"https", b"h.example", b"%40", b"\xc3\xa9"]


@settings(max_examples=800, deadline=None)
@given(blob=st.lists(st.sampled_from(URL_PIECES), max_size=14).map(b"".join))
def test_has_userinfo_agrees_with_the_regex(blob: bytes) -> None:
    assert _speedups.has_userinfo(blob) == userinfo_by_regex(blob)


@pytest.mark.parametrize(("blob", "expected"), [
    (b"https://user:secret@host/", True), (b'"ftp://a:b@c"', True), (b"https://user:@host", False),
    (b"https://user@host", False), (b"mailto:team@example.org", False), (b"https://h/?to=a:b@c", False),
    (b"https://u:p w@h", False), (b"x://:p@h", True), (b"", False), (b"://", False),
])
def test_has_userinfo_examples(blob: bytes, expected: bool) -> None:
    assert _speedups.has_userinfo(blob) is expected is userinfo_by_regex(blob)


SHAPE_PIECES = [b"AC", b"SK", b"M", b"N", b"O", b"a" * 8, b"0" * 8, b"ab12", b"-us", b"1", b".", b":", b" ", b"_",
                b"-", b'"', b"Z", b"a" * 32, b"0123456789", b"x" * 27, b"\xc3\xa9", b"\\", b"n", b"u0001", b"\\n", b"\\u001f"]


@settings(max_examples=1500, deadline=None)
@given(blob=st.lists(st.sampled_from(SHAPE_PIECES), max_size=16).map(b"".join))
def test_has_shape_agrees_with_the_regex(blob: bytes) -> None:
    expected = SHAPE_BYTES.search(blob) is not None
    assert _speedups.has_shape(blob) is expected
    assert shape_by_regex(blob) is expected


@pytest.mark.parametrize("blob", [
    b"x AC" + b"a1" * 16 + b" y", b"SK" + b"f" * 32, b"123456789:" + b"A" * 35, b"b" * 32 + b"-us12",
    b"M" + b"a" * 23 + b".abcdef." + b"b" * 27, b'"N' + b"z" * 25 + b".ab_-12." + b"c" * 38 + b'"',
    b"line\\nAC" + b"0" * 32, b"\\u0001" + b"123456789:" + b"A" * 35, b"\\t123456789:" + b"A" * 35,
])
def test_has_shape_examples(blob: bytes) -> None:
    assert _speedups.has_shape(blob) is True is shape_by_regex(blob)
    assert _speedups.has_shape(b"x" + blob) is (SHAPE_BYTES.search(b"x" + blob) is not None)


class Number(int):
    pass


_leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
           | st.sampled_from([Number(3), "x", 1.5, b"bytes", {1, 2}, 2.5j]))
_keys = st.text(max_size=3) | st.sampled_from(["\ue000", "a\U0001f600", "\uffff", "\ud7ff"])
_values = st.recursive(
    _leaves,
    lambda inner: (st.lists(inner, max_size=5) | st.lists(inner, max_size=3).map(tuple)
                   | st.dictionaries(_keys, inner, max_size=4)
                   | st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2)
                   | st.lists(st.floats(), min_size=30, max_size=40)),
    max_leaves=30)


@settings(max_examples=800, deadline=None)
@given(value=_values, keys_at_risk=st.booleans())
def test_plain_floats_walks_as_the_python_walk_does(value: object, keys_at_risk: bool) -> None:
    try:  # the walk's precondition: msgspec encoded the value (so its keys are strings)
        msgspec.json.encode(value, order="sorted")
    except (TypeError, ValueError, OverflowError):
        assume(False)
    expected = _plain_floats(value, keys_at_risk)
    got = _speedups.plain_floats(value, keys_at_risk, _MANY_FLOATS)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert sorted(map(repr, got)) == sorted(map(repr, expected))


def test_plain_floats_goes_deep_without_the_c_stack() -> None:
    value: object = [1.5]
    for _ in range(200_000):
        value = [value]
    assert _speedups.plain_floats(value, False, 32) == [1.5]
    with pytest.raises(TypeError, match=r"takes 3 arguments \(2 given\)"):
        _speedups.plain_floats(value, False)  # type: ignore[call-arg]


def test_canonical_fast_leaves_to_the_exact_path_what_it_cannot_prove() -> None:
    encode = msgspec.json.Encoder(order="sorted").encode
    assert _speedups.canonical_fast({"b": [1, "x"], "a": None}, encode, 32) == b'{"a":null,"b":[1,"x"]}'
    assert _speedups.canonical_fast({"a": 1e21}, encode, 32) == (b'{"a":1e21}',)  # a float to lay out again
    assert _speedups.canonical_fast({"a": 2.5}, encode, 32) == b'{"a":2.5}'
    assert _speedups.canonical_fast([float("nan")], encode, 32) is None
    assert _speedups.canonical_fast([Number(1)], encode, 32) is None
    assert _speedups.canonical_fast({1: 2}, encode, 32) is None  # msgspec refuses it: the exact path names it
    assert _speedups.canonical_fast([0.5] * 33, encode, 32) is None


def test_canonical_fast_passes_on_what_is_not_an_error_of_the_value() -> None:
    def interrupted(value: object) -> bytes:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _speedups.canonical_fast([1], interrupted, 32)
    with pytest.raises(TypeError, match="encode must return bytes"):
        _speedups.canonical_fast([1], lambda value: "text", 32)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"takes 3 arguments \(1 given\)"):
        _speedups.canonical_fast([1])  # type: ignore[call-arg]


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(PIECES) | st.binary(max_size=30) | st.sampled_from(
    [b"https://u:p@h", b"x://a:@b", b"://", b":"]), max_size=20).map(b"".join), max_size=3),
       chosen=st.lists(st.sampled_from(NEEDLES), unique=True))
def test_clear_of_is_no_needle_and_no_password_in_any_text(texts: list[bytes], chosen: list[bytes]) -> None:
    expected = not any(first_needle(text, chosen) >= 0 or userinfo_by_regex(text) or shape_by_regex(text)
                       for text in texts)
    assert _speedups.NeedleScanner(chosen).clear_of(*texts) is expected


# Raw JSON text whose objects may repeat keys: an object is a list of members, written as they come.
_raw_keys = st.sampled_from(["a", "b", "a:b", ":", "\u00e9:", "\u4e2d", "\U0001f600:", "x\\u003ay", "\\u003a",
                             "\\u0030", "q"])
_raw_scalars = st.sampled_from(['1', '-2.5e3', 'true', 'null', '"x:y"', '"::"', '"\\u003a"', '"\u00e9:\u4e2d:"',
                                '""', '"\\"a\\":1"', '"\\u0041"'])
_raw_values = st.recursive(
    _raw_scalars,
    lambda inner: (st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
                   | st.lists(st.tuples(_raw_keys, inner), max_size=4).map(
                       lambda members: "{" + ",".join(f'"{key}" :{value}' for key, value in members) + "}")),
    max_leaves=25)


def _repeats_a_key(value: str) -> bool:
    """The reference: whether any object of the JSON text `value` has the same key twice."""
    repeated = False

    def pairs(members: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal repeated
        repeated = repeated or len({key for key, _ in members}) < len(members)
        return dict(members)

    json.loads(value, object_pairs_hook=pairs)
    return repeated


@settings(max_examples=1500, deadline=None)
@given(_raw_values)
def test_no_repeated_key_never_vouches_for_a_text_that_repeats_one(text: str) -> None:
    data = text.encode()
    value = msgspec.json.decode(data)
    proven = _speedups.no_repeated_key(data, value)
    if _repeats_a_key(text):
        assert not proven
    elif b"\\u003" not in data:
        assert proven  # the proof holds for every text without a repeat and without escapes of 0 to ?
    for path in ("C", "Python"):
        with pytest.MonkeyPatch.context() as patch:
            if path == "Python":
                patch.setattr(canonical, "_c_no_repeated_key", None)
            if _repeats_a_key(text):
                with pytest.raises(CanonicalError, match="duplicate key"):
                    parse_json(data)
            else:
                assert parse_json(data) == value


def test_no_repeated_key_refuses_what_a_decode_does_not_make() -> None:
    assert _speedups.no_repeated_key(b'{"a": [1]}', {"a": [1]})
    assert not _speedups.no_repeated_key(b'{"a": [1]}', {"a": (1,)})  # a tuple: the slow check decides
    assert not _speedups.no_repeated_key(b'{"1": 1}', {1: 1})
    assert not _speedups.no_repeated_key(b'{"a": 1}', {"a": 1, "b": 2})  # more keys than separators
    deep: object = {"k:": 1}
    for _ in range(100_000):
        deep = [deep]
    assert _speedups.no_repeated_key(b"[" * 100_000 + b'{"k:": 1}' + b"]" * 100_000, deep)
    with pytest.raises(TypeError, match="takes bytes"):
        _speedups.no_repeated_key("{}", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes 2 arguments \(1 given\)"):
        _speedups.no_repeated_key(b"{}")  # type: ignore[call-arg]
