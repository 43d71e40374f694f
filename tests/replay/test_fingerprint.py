"""Normalisation and fingerprints: what counts, what is ignored, and how the lake's redaction takes part."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

import pytest

from eventlog.errors import InputError
from eventlog.redaction.redactor import Redactor
from eventlog.replay import MatchRule, Rules, fingerprint, normalise
from eventlog.replay.fingerprint import describe, differences, parse_query
from eventlog.replay.shape import body_bytes, request_dict, response_dict
from tests.conftest import seeded


def _fp(request: dict[str, Any], rules: Rules | None = None) -> bytes:
    return fingerprint(normalise(request, rules or Rules()))


def test_scheme_host_case_default_port_and_query_order_do_not_matter() -> None:
    one = {"method": "get", "url": "HTTPS://En.Wikipedia.ORG:443/w/api.php?titles=Ada%20Lovelace&action=query#top"}
    two = {"method": "GET", "url": "https://en.wikipedia.org/w/api.php?action=query&titles=Ada+Lovelace"}
    assert _fp(one) == _fp(two)
    normal = normalise(one, Rules())
    assert normal == {"method": "GET", "scheme": "https", "host": "en.wikipedia.org", "port": None,
                      "path": "/w/api.php", "query": [["action", "query"], ["titles", "Ada Lovelace"]],
                      "headers": {}, "body": None}


def test_path_port_method_and_query_values_do_matter() -> None:
    base = {"method": "GET", "url": "http://h.example/a?x=1"}
    for other in ({"method": "GET", "url": "http://h.example/b?x=1"},
                  {"method": "GET", "url": "http://h.example:8080/a?x=1"},
                  {"method": "POST", "url": "http://h.example/a?x=1"},
                  {"method": "GET", "url": "http://h.example/a?x=2"},
                  {"method": "GET", "url": "http://h.example/a?x=1&x=2"}):
        assert _fp(other) != _fp(base), other


def test_client_headers_are_ignored_and_others_count_by_lower_case_name() -> None:
    one = request_dict("GET", "http://h.example/", [("User-Agent", "python-httpx/0.28"), ("Accept", "text/html"),
                                                   ("Accept-Encoding", "gzip"), ("X-Stainless-Retry-Count", "0")], None)
    two = request_dict("GET", "http://h.example/", [("accept", "text/html"), ("User-Agent", "python-requests/2")],
                       None)
    assert _fp(one) == _fp(two)
    assert normalise(one, Rules())["headers"] == {"accept": "text/html"}
    assert _fp(request_dict("GET", "http://h.example/", [("Accept", "application/json")], None)) != _fp(one)


def test_json_body_is_compared_as_canonical_json() -> None:
    one = request_dict("POST", "http://h.example/v1", [("Content-Type", "application/json")],
                       b'{"b": [1, 2.0], "a": "x"}')
    two = request_dict("POST", "http://h.example/v1", [("Content-Type", "application/json; charset=utf-8")],
                       b'{"a":"x","b":[1,2]}')
    assert one["json"] == {"b": [1, 2.0], "a": "x"}
    no_headers = Rules([MatchRule(match_headers=())])  # the two differ in their Content-Type parameters
    assert normalise(one, no_headers) == normalise(two, no_headers)


def test_form_body_is_compared_by_sorted_fields_and_other_bodies_by_sha256() -> None:
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    one = request_dict("POST", "http://h.example/f", form, b"b=2&a=1&a=0")
    two = request_dict("POST", "http://h.example/f", form, b"a=1&a=0&b=2")
    assert normalise(one, Rules())["body"] == {"form": {"a": ["1", "0"], "b": ["2"]}}
    assert _fp(one) == _fp(two)
    binary = request_dict("PUT", "http://h.example/f", [("Content-Type", "application/octet-stream")], b"\xff\x00")
    assert binary["body_base64"] == "/wA="
    assert normalise(binary, Rules())["body"] == {"sha256": hashlib.sha256(b"\xff\x00").hexdigest()}


def test_rules_ignore_volatile_query_headers_and_body_paths_per_host() -> None:
    rules = Rules([MatchRule(host="*.example.org", ignore_query=("_", "cache*"), ignore_headers=("x-request-id",),
                             ignore_body=("$.metadata.nonce", "$.messages[*].id"))])
    def request(n: int, host: str = "api.example.org") -> dict[str, Any]:
        return request_dict("POST", f"https://{host}/v1?q=1&_={n}&cachebust={n * 7}",
                            [("X-Request-Id", str(n)), ("Content-Type", "application/json")],
                            f'{{"metadata": {{"nonce": {n}, "user": "u"}}, "messages": [{{"id": {n}, "text": "hi"}}]}}'
                            .encode())
    assert _fp(request(1), rules) == _fp(request(2), rules)
    assert normalise(request(1), rules)["body"] == {"json": {"metadata": {"user": "u"},
                                                             "messages": [{"text": "hi"}]}}
    # The rule names a host: elsewhere the same parts count.
    assert _fp(request(1, "api.example.com"), rules) != _fp(request(2, "api.example.com"), rules)


def test_rules_for_a_dataset_apply_only_to_that_dataset() -> None:
    rules = Rules([MatchRule(dataset="wiki", ignore_query=("curtimestamp",))])
    one = {"url": "https://w.example/api?curtimestamp=1&a=b"}
    two = {"url": "https://w.example/api?curtimestamp=2&a=b"}
    assert _fp(one, rules.for_dataset("wiki")) == _fp(two, rules.for_dataset("wiki"))
    assert _fp(one, rules.for_dataset(None)) != _fp(two, rules.for_dataset(None))
    assert rules.for_dataset("wiki").identity != rules.for_dataset(None).identity


def test_a_live_secret_and_its_recorded_redaction_have_one_fingerprint() -> None:
    redactor = Redactor()
    live = request_dict("GET", "https://api.example.org/works?api_key=abc123secret&page=2",
                        [("Authorization", "Bearer sk-live0000000000000000000001"), ("Accept", "application/json")],
                        None)
    other_secret = request_dict("GET", "https://api.example.org/works?api_key=zzz999other&page=2",
                                [("Authorization", "Bearer sk-live0000000000000000000002"),
                                 ("Accept", "application/json")], None)
    recorded, _, paths = redactor.redact(live, None)
    assert "$.request.headers.Authorization" in paths and "abc123secret" not in recorded["url"]
    again, _, _ = redactor.redact(other_secret, None)
    assert _fp(recorded) == _fp(again)
    assert _fp(recorded) != _fp(live)  # without the redaction they would not match: replay redacts first


def test_a_request_without_a_usable_url_is_refused_with_its_path() -> None:
    for request in ({"method": "GET"}, {"url": "/relative/only"}, {"url": "http://h.example:99999/"}):
        with pytest.raises(InputError) as error:
            normalise(request, Rules())
        assert error.value.path == "$.url"


def test_differences_name_each_kind() -> None:
    rules = Rules()
    recorded = normalise(request_dict("POST", "https://h.example/v1?page=2", [("Accept", "text/csv"),
                                      ("Content-Type", "application/json")], b'{"a": {"b": [1, 2]}, "keep": true}'),
                         rules)
    requested = normalise(request_dict("POST", "https://h.example/v1?page=3", [("Accept", "text/tsv"),
                                       ("Content-Type", "application/json")], b'{"a": {"b": [1, 5, 6]}, "keep": true}'),
                          rules)
    found = differences(recorded, requested)
    assert [(d.kind, d.name) for d in found] == [("query", "page"), ("header", "accept"), ("body", "$.a.b[1]"),
                                                 ("body", "$.a.b[2]")]
    assert describe(found[0]) == "query parameter 'page' is '2' in the recording, '3' in the request"
    assert describe(found[3]) == "body at $.a.b[2] is absent in the recording, 6 in the request"


def test_response_shape_keeps_bytes_and_drops_framing() -> None:
    shaped = response_dict(200, [("Content-Type", "text/plain"), ("Content-Encoding", "gzip"),
                                 ("Content-Length", "12"), ("Link", "a"), ("link", "b")], "café".encode())
    assert shaped == {"status": 200, "headers": {"Content-Type": "text/plain", "Content-Length": "5",
                                                 "Link": ["a", "b"]}, "body": "café"}
    assert body_bytes(shaped) == "café".encode()
    assert body_bytes({"body": {"a": 1}}) == b'{"a":1}'  # captured elsewhere as a JSON value
    assert body_bytes(response_dict(200, [], b"\x80")) == b"\x80"


def test_rules_files_are_validated_with_their_path(tmp_path: Any) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [{"host": "a", "ignore_body": ["metadata"]}]}')
    with pytest.raises(InputError) as error:
        Rules.load(path)
    assert str(path) in str(error.value) and "$.rules[0].ignore_body[0]" in str(error.value)
    path.write_text('{"rules": [{"hots": "a"}]}')
    with pytest.raises(InputError, match="hots"):
        Rules.load(path)
    path.write_text('[{"host": "a.example", "ignore_query": ["t"]}]')
    assert Rules.load(path).rules == (MatchRule(host="a.example", ignore_query=("t",)),)


def test_query_parsing_agrees_with_urllib() -> None:
    seed, rng = seeded("query parsing")
    alphabet = "ab=&%2B+%zz%41é;x "
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(14)))
        assert parse_query(text) == parse_qsl(text, keep_blank_values=True), (seed, text)
