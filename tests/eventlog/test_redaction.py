"""Redaction: every family of secret, the near misses that must stay, policy input, paths and determinism."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import extensions
from eventlog.errors import InputError
from eventlog.format.canonical import canonical_json
from eventlog.redaction.redactor import (
    DEFAULT_MARKER,
    RedactionPolicy,
    Redactor,
    format_path,
    name_parts,
    parse_path,
)

R = DEFAULT_MARKER
DATA = Path(__file__).parent.parent / "data" / "redaction"

# Fake secrets, assembled so that no literal here looks like a live credential.
JWT = ".".join(["eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"])
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_TEMP_ID = "ASIA" + "Y34FZKBOKMUTVV7A"
OPENAI = "sk-" + "proj-" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8i9J0"
ANTHROPIC = "sk-" + "ant-api03-" + "Zx9" * 10
GITHUB = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0" + "123456789_" + "abcdefghij" * 5
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
SLACK = "xoxb-" + "1234567890-" + "0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
       "aFDrBz9vFqU4yQIDAQABAoIBAH3K\n-----END RSA PRIVATE KEY-----")


def pure_python(redactor: Redactor) -> Redactor:
    """The redactor with the pre-filter's C scanner (where it was built) replaced by its regex probes."""
    redactor._needles = redactor._needles._replace(scanner=None)
    return redactor


def redact(request: Any = None, response: Any = None, **policy: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """Redact with and without the pre-filter, and with its pure-Python form; all must agree."""
    fast = Redactor(RedactionPolicy(**policy)).redact(request, response)
    full = Redactor(RedactionPolicy(**policy), prefilter=False).redact(request, response)
    assert fast == full == pure_python(Redactor(RedactionPolicy(**policy))).redact(request, response)
    return fast


def req(request: Any, **policy: Any) -> tuple[Any, tuple[str, ...]]:
    new, _, paths = redact(request, None, **policy)
    return new, paths


# Headers -------------------------------------------------------------------------------------------------

def test_header_dict_case_insensitive() -> None:
    headers = {"Authorization": "Bearer abc123def456", "proxy-authorization": "Basic dXNlcjpwYXNz",
               "COOKIE": "sid=1; theme=dark", "X-Goog-Api-Key": "k", "x-auth-token": "t",
               "X-Amz-Security-Token": "st", "X-CSRF-Token": "c", "X-Session-Id": "s",
               "X-Hub-Signature-256": "h",
               "X-Client-Credential": "cc", "X-Api-Key": "a", "apikey": "b", "Accept": "application/json",
               "X-Request-Id": "r-1", "Content-Type": "text/plain"}
    new, paths = req({"headers": headers})
    kept = {"Accept", "X-Request-Id", "Content-Type"}
    assert new["headers"] == {k: (v if k in kept else R) for k, v in headers.items()}
    assert paths == tuple(sorted("$.request.headers" + (f".{k}" if k.isidentifier() else f'["{k}"]')
                                 for k in headers if k not in kept))


def test_set_cookie_list_values() -> None:
    _, response, paths = redact(None, {"headers": {"Set-Cookie": ["a=1; Path=/", "b=2"], "Vary": "Cookie"}})
    assert response == {"headers": {"Set-Cookie": [R, R], "Vary": "Cookie"}}
    assert paths == ('$.response.headers["Set-Cookie"][0]', '$.response.headers["Set-Cookie"][1]')


def test_header_pairs() -> None:
    new, paths = req({"headers": [["Authorization", "Bearer x1y2z3w4v5"], ["Accept", "*/*"],
                                  ["set-cookie", "sid=abc"], ["X-Api-Key", ["k1", "k2"]]]})
    assert new == {"headers": [["Authorization", R], ["Accept", "*/*"], ["set-cookie", R], ["X-Api-Key",
                                                                                            [R, R]]]}
    assert paths == ("$.request.headers[0][1]", "$.request.headers[2][1]", "$.request.headers[3][1][0]",
                     "$.request.headers[3][1][1]")


def test_header_name_value_objects() -> None:
    har = [{"name": "Cookie", "value": "sid=1"}, {"value": "tok", "name": "X-Auth-Token"},
           {"name": "Accept", "value": "*/*"}, {"key": "apiKey", "value": "pm", "type": "text"}]
    new, paths = req({"headers": har})
    assert new == {"headers": [{"name": "Cookie", "value": R}, {"value": R, "name": "X-Auth-Token"},
                               {"name": "Accept", "value": "*/*"}, {"key": "apiKey", "value": R,
                                                                    "type": "text"}]}
    assert paths == ("$.request.headers[0].value", "$.request.headers[1].value", "$.request.headers[3].value")


def test_a_lone_pair_or_two_tags_is_not_a_header_list() -> None:
    request = {"tags": ["secret", "token"], "names": ["A. Token", "B. Secret"], "one": ["Cookie", "x"],
               "mixed": [["token", "t"], "other"]}
    assert req(request) == (request, ())


def test_har_cookies_lose_only_their_values() -> None:
    cookies = [{"name": "sid", "value": "31d4", "path": "/", "domain": "x.example", "httpOnly": True},
               {"name": "pref", "value": "dark", "session_key": "sk1"}]
    new, paths = req({"cookies": cookies})
    assert new == {"cookies": [{"name": "sid", "value": R, "path": "/", "domain": "x.example",
                                "httpOnly": True},
                               {"name": "pref", "value": R, "session_key": R}]}
    assert paths == ("$.request.cookies[0].value", "$.request.cookies[1].session_key",
                     "$.request.cookies[1].value")


def test_tuples_are_walked_and_kept_tuples() -> None:
    new, paths = req({"headers": (("Authorization", "Basic abc"), ("Accept", "x"))})
    assert new == {"headers": (("Authorization", R), ("Accept", "x"))}
    assert paths == ("$.request.headers[0][1]",)


# URLs and forms ------------------------------------------------------------------------------------------

def test_query_parameters_keep_the_rest_of_the_url_byte_identical() -> None:
    url = ("https://api.example.com/v1/items?q=caf%C3%A9&access_token=abc.DEF-123&page=2&api_key=K&apiKey=K2"
           "&client_secret=s%2Fx&X-Amz-Signature=0f1e&X-Amz-Credential=AK%2F2024&sort=asc#section")
    new, paths = req({"url": url})
    assert new["url"] == ("https://api.example.com/v1/items?q=caf%C3%A9&access_token=[REDACTED]&page=2"
                          "&api_key=[REDACTED]&apiKey=[REDACTED]&client_secret=[REDACTED]"
                          "&X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]&sort=asc#section")
    assert paths == ("$.request.url",)


def test_fragment_matrix_and_encoded_names() -> None:
    urls = ["https://app.example/cb#access_token=tok1&token_type=bearer&expires_in=3600",
            "https://shop.example/cart;jsessionid=0A1B2C3D?x=1", "https://x.example/?api%5Fkey=zz&Key=fine",
            "https://x.example/?user%5Bpassword%5D=hunter2"]
    new, paths = req({"urls": urls})
    assert new["urls"] == ["https://app.example/cb#access_token=[REDACTED]&token_type=bearer&expires_in=3600",
                           "https://shop.example/cart;jsessionid=[REDACTED]?x=1",
                           "https://x.example/?api%5Fkey=[REDACTED]&Key=fine",
                           "https://x.example/?user%5Bpassword%5D=[REDACTED]"]
    assert paths == ("$.request.urls[0]", "$.request.urls[1]", "$.request.urls[2]", "$.request.urls[3]")


def test_url_anywhere_in_a_response() -> None:
    response = {"data": {"items": [{"next": "https://api.example/p?cursor=abc&session=s3ss"}]}}
    _, new, paths = redact(None, response)
    assert new == {"data": {"items": [{"next": "https://api.example/p?cursor=abc&session=[REDACTED]"}]}}
    assert paths == ("$.response.data.items[0].next",)


def test_url_user_info_password() -> None:
    new, paths = req({"url": "postgresql://app:s3cr3t@db.example:5432/lake",
                      "doc": "mail me at bob@example.org"})
    assert new == {"url": "postgresql://app:[REDACTED]@db.example:5432/lake",
                   "doc": "mail me at bob@example.org"}
    assert paths == ("$.request.url",)


def test_form_encoded_body_and_form_dict() -> None:
    body = "grant_type=password&username=bob&password=hunter2&client_id=app&client_secret=xyz&scope=read"
    new, paths = req({"body": body, "form": {"username": "bob", "Password": "pw", "remember": True}})
    assert new == {"body": "grant_type=password&username=bob&password=[REDACTED]&client_id=app&client_secret="
                           "[REDACTED]&scope=read",
                   "form": {"username": "bob", "Password": R, "remember": True}}
    assert paths == ("$.request.body", "$.request.form.Password")


def test_params_as_pairs_and_log_text() -> None:
    request = {"params": [["q", "lake"], ["api_key", "abc"]],
               "text": "curl -H 'Authorization: Bearer abcdef123456' 'https://x.example/?token=t0k3n'",
               "log": "user=bob password=\"hunter 2\" retry=3"}
    new, paths = req(request)
    assert new == {"params": [["q", "lake"], ["api_key", R]],
                   "text": "curl -H 'Authorization: Bearer [REDACTED]' 'https://x.example/?token=[REDACTED]'",
                   "log": 'user=bob password="[REDACTED]" retry=3'}
    assert paths == ("$.request.log", "$.request.params[1][1]", "$.request.text")


def test_authorization_line_in_raw_http_text() -> None:
    raw = "GET / HTTP/1.1\r\nHost: x\r\nauthorization: Basic dXNlcjpwYXNz\r\nAccept: */*\r\n\r\n"
    new, _ = req({"raw": raw})
    assert new["raw"] == "GET / HTTP/1.1\r\nHost: x\r\nauthorization: Basic [REDACTED]\r\nAccept: */*\r\n\r\n"


def test_embedded_json_and_python_text() -> None:
    request = {"json_text": '{"user": "bob", "client_secret": "abc\\"def", "n": 3}',
               "repr": "{'password': 'pw', 'user': 'bob'}"}
    new, paths = req(request)
    assert new == {"json_text": '{"user": "bob", "client_secret": "[REDACTED]", "n": 3}',
                   "repr": "{'password': '[REDACTED]', 'user': 'bob'}"}
    assert paths == ("$.request.json_text", "$.request.repr")


# JSON keys -----------------------------------------------------------------------------------------------

def test_nested_keys_at_any_depth() -> None:
    response = {"body": {"items": [{"id": 1}, {"id": 2}, {"id": 3},
                                   {"access_token": "at", "refresh_token": "rt", "id_token": "it",
                                    "token_type": "Bearer", "expires_in": 3600, "scope": "read"}],
                         "config": {"db": {"password": "pw", "host": "h", "privateKey": "pk",
                                           "private_key": "pk2",
                                           "secretAccessKey": "sak", "signingKey": "sk", "passwd": "p"}}}}
    _, new, paths = redact(None, response)
    items = new["body"]["items"]
    assert items[3] == {"access_token": R, "refresh_token": R, "id_token": R, "token_type": "Bearer",
                        "expires_in": 3600, "scope": "read"}
    assert new["body"]["config"]["db"] == {"password": R, "host": "h", "privateKey": R, "private_key": R,
                                           "secretAccessKey": R, "signingKey": R, "passwd": R}
    assert paths == ("$.response.body.config.db.passwd", "$.response.body.config.db.password",
                     "$.response.body.config.db.privateKey", "$.response.body.config.db.private_key",
                     "$.response.body.config.db.secretAccessKey", "$.response.body.config.db.signingKey",
                     "$.response.body.items[3].access_token", "$.response.body.items[3].id_token",
                     "$.response.body.items[3].refresh_token")


def test_containers_under_sensitive_keys_keep_numbers_and_empty_strings() -> None:
    request = {"credentials": {"user": "bob", "pass": "pw", "pin": 1234, "mfa": True, "note": None,
                               "hint": "",
                               "tags": ["a", 2]},
               "session": {"id": "abc", "ttl": 60}, "password": 12345, "api_key": None, "secret": ""}
    new, paths = req(request)
    assert new == {"credentials": {"user": R, "pass": R, "pin": 1234, "mfa": True, "note": None, "hint": "",
                                   "tags": [R, 2]},
                   "session": {"id": R, "ttl": 60}, "password": 12345, "api_key": None, "secret": ""}
    assert paths == ("$.request.credentials.pass", "$.request.credentials.tags[0]",
                     "$.request.credentials.user",
                     "$.request.session.id")


def test_llm_usage_counts_and_tokenizer_are_kept() -> None:
    request = {"model": "gpt-x", "max_tokens": 100, "tokenizer": "cl100k_base", "stop_tokens": ["###"],
               "messages": [{"role": "user", "content": "Explain what a session token is."}]}
    response = {"usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
                "logprobs": {"tokens": ["A", " session", " token"], "token_logprobs": [-0.1, -0.2, -0.3]},
                "choices": [{"text": "A session token is a secret that identifies a login; keep it safe."}]}
    new_request, new_response, paths = redact(request, response)
    assert new_request is request and new_response is response and paths == ()


def test_names_split_into_word_parts() -> None:
    assert name_parts("X-Goog-Api-Key") == ("x", "goog", "api", "key")
    assert name_parts("apiToken") == ("api", "token")
    assert name_parts("XMLHttpRequest") == ("xml", "http", "request")
    assert name_parts("user%5Bpassword%5D") == ("user", "password")
    redactor = Redactor()
    sensitive = ["access_token", "X-Auth-Token", "apiToken", "csrftoken", "clientSecret", "JSESSIONID",
                 "PHPSESSID",
                 "AccessKeyId", "aws_secret_access_key", "consumer_key", "Proxy-Authorization", "set-cookie",
                 "credentials", "passphrase", "TOKEN", "x-signature"]
    kept = ["tokenizer", "tokens", "max_tokens", "tokens_used", "keywords", "key", "monkey", "possession",
            "token_type", "token_endpoint", "session_count", "pageToken", "next_page_token", "primary_key",
            "cache_key", "sortKey", "author", "passage", "secretary", "x" * 300 + "_token"]
    assert [n for n in sensitive if not redactor.is_sensitive_name(n)] == []
    assert [n for n in kept if redactor.is_sensitive_name(n)] == []


# Token shapes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "secret", [JWT, AWS_ID, AWS_TEMP_ID, OPENAI, ANTHROPIC, GITHUB, GITHUB_FINE, GOOGLE, SLACK, STRIPE, PEM],
    ids=["jwt", "aws", "aws-temporary", "openai", "anthropic", "github", "github-fine", "google", "slack",
         "stripe", "pem"])
def test_token_shapes_replaced_in_place(secret: str) -> None:
    text = f"before {secret} after"
    new, paths = req({"prompt": text, "alone": secret, "list": [secret]})
    assert new == {"prompt": f"before {R} after", "alone": R, "list": [R]}
    assert paths == ("$.request.alone", "$.request.list[0]", "$.request.prompt")


def test_bearer_token_keeps_the_scheme_word() -> None:
    new, _ = req({"note": "send Bearer abc.DEF_123-xyz= to the API", "tight": "bearer\t9f8e7d6c5b4a"})
    assert new == {"note": f"send Bearer {R} to the API", "tight": f"bearer\t{R}"}


def test_pem_blocks() -> None:
    key = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----")
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    truncated = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    new, _ = req({"k": f"a\n{key}\nb", "cert": cert, "t": truncated, "rsa": PEM})
    assert new == {"k": f"a\n{R}\nb", "cert": cert, "t": f"key: {R}", "rsa": R}


# Things that must stay -----------------------------------------------------------------------------------

def test_prose_and_near_misses_are_left_alone() -> None:
    response = {
        "text": ("He was a bearer of bad news. Bearer bonds are risk-free, see the task-list and the "
                 "desk-top. Use sk-learn for the tokenizer. The secret to success is a password policy."),
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "sha1": "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "uuid": "123e4567-e89b-12d3-a456-426614174000",
        "title": "Session types for Rust",
        "url": "https://openalex.org/keywords/session-types?page=2&per-page=25",
        "authors": ["A. Token", "B. Secret"], "doi": "https://doi.org/10.1145/3243176.3243195",
        "abstract_inverted_index": {"session": [0, 7], "token": [3], "key": [5]},
        "oauth": {"token_endpoint": "https://auth.example/oauth/token", "token_type": "bearer"},
        "code": "tokenizer = AutoTokenizer.from_pretrained(name)", "email": "jane.doe@example.org",
        "ref": "git@github.com:org/repo.git", "ip": "http://[::1]:8080/a?b=c",
        "nextPageToken": "CAUQAA", "AKIA": "AKIA is a prefix", "tags": ["secret", "token"],
    }
    _, new, paths = redact({"method": "GET"}, response)
    assert new is response and paths == ()


def test_unchanged_values_are_the_same_objects() -> None:
    request = {"method": "POST", "url": "https://api.example/x?q=1", "headers": {"Accept": "*/*"},
               "json": {"a": [1, 2, {"b": "c"}]}}
    response = {"status": 200, "body": "ok"}
    new_request, new_response, paths = redact(request, response)
    assert new_request is request and new_response is response and paths == ()
    partly = {"keep": {"x": [1]}, "headers": {"Cookie": "a=b"}}
    new, _ = req(partly)
    assert new["keep"] is partly["keep"]


# Policy --------------------------------------------------------------------------------------------------

def test_allow_list_by_name_and_by_path() -> None:
    request = {"headers": {"X-Session-Id": "visible", "Authorization": "Bearer abc123def456",
                           "X-Api-Key": "hidden"},
               "json": {"items": [{"password": "a"}, {"password": "b"}], "session": {"id": "s",
                                                                                     "nested": "n"}},
               "oddly named": {"token": "t"}}
    allow = ("x-session-id", "$.request.json.items[1].password", '$.request["oddly named"].token',
             "$.request.json.session.nested")
    new, paths = req(request, allow=allow)
    assert new == {"headers": {"X-Session-Id": "visible", "Authorization": R, "X-Api-Key": R},
                   "json": {"items": [{"password": R}, {"password": "b"}], "session": {"id": R,
                                                                                       "nested": "n"}},
                   "oddly named": {"token": "t"}}
    assert paths == ("$.request.headers.Authorization", '$.request.headers["X-Api-Key"]',
                     "$.request.json.items[0].password", "$.request.json.session.id")
    assert redact(request, None, allow=("$",))[2] == ()


def test_allowed_names_also_apply_inside_strings() -> None:
    new, _ = req({"url": "https://x.example/?session=keep&token=drop"}, allow=("session",))
    assert new == {"url": "https://x.example/?session=keep&token=[REDACTED]"}


def test_policy_extension_from_a_mapping() -> None:
    policy = RedactionPolicy.from_mapping(
        {"names": ["tenant id", "pin"], "patterns": [r"ACME-[0-9]{6}", r"acct:(?P<secret>[a-z]{5})\b"],
         "allow": ["x-csrf-token"], "marker": "***"}, source="lake.json")
    assert policy == RedactionPolicy(names=("tenant id", "pin"),
                                     patterns=(r"ACME-[0-9]{6}", r"acct:(?P<secret>[a-z]{5})\b"),
                                     allow=("x-csrf-token",), marker="***")
    request = {"headers": {"X-Tenant-Id": "t-42", "X-CSRF-Token": "c", "Authorization": "Basic x"},
               "json": {"userPin": "0000", "pins": "kept", "note": "order ACME-123456 on acct:abcde now"}}
    new, _, paths = Redactor(policy).redact(request, None)
    assert new == {"headers": {"X-Tenant-Id": "***", "X-CSRF-Token": "c", "Authorization": "***"},
                   "json": {"userPin": "***", "pins": "kept", "note": "order *** on acct:*** now"}}
    assert paths == ("$.request.headers.Authorization", '$.request.headers["X-Tenant-Id"]',
                     "$.request.json.note", "$.request.json.userPin")
    assert Redactor(policy, prefilter=False).redact(request, None) == (new, None, paths)


def test_extra_names_win_over_the_built_in_exemptions() -> None:
    new, _ = req({"token_type": "mac", "pageToken": "p"}, names=("token type", "page token"))
    assert new == {"token_type": R, "pageToken": R}


def test_merged_policies() -> None:
    lake = RedactionPolicy(names=("a",), patterns=("x{3}",), allow=("b",))
    manifest = RedactionPolicy(names=("a", "c"), allow=("$.request.d",), marker="<hidden>")
    merged = lake.merged(manifest)
    assert merged == RedactionPolicy(names=("a", "c"), patterns=("x{3}",), allow=("b", "$.request.d"),
                                     marker="<hidden>")
    assert manifest.merged(lake).marker == "<hidden>"
    assert not lake.merged(RedactionPolicy(enabled=False)).enabled


def test_disabled_policy_changes_nothing() -> None:
    request = {"headers": {"Authorization": "Bearer abc123def456"}}
    assert Redactor(RedactionPolicy(enabled=False)).redact(request, None) == (request, None, ())


@pytest.mark.parametrize(("data", "path", "words"), [
    ({"names": "token"}, "$.redaction.names", "Expected `array`"),
    ({"names": [1]}, "$.redaction.names[0]", "Expected `str`"),
    ({"nmes": ["x"]}, "$.redaction", "unknown field `nmes`"),
    ({"patterns": ["ok", "(unclosed"]}, "$.redaction.patterns[1]", "cannot be compiled by RE2"),
        ({"patterns": [r"(a)\1"]}, "$.redaction.patterns[0]", "no backreferences or lookaround"),
        ({"patterns": ["(?<=a)b"]}, "$.redaction.patterns[0]", "no backreferences or lookaround"),
    ({"patterns": ["a*"]}, "$.redaction.patterns[0]", "matches the empty string"),
    ({"patterns": ["RED"]}, "$.redaction.patterns[0]", "or the marker"),
    ({"allow": ["$.request[x]"]}, "$.redaction.allow[0]", "malformed"),
    ({"allow": ["--"]}, "$.redaction.allow[0]", "needs letters or digits"),
    ({"allow": ["$.headers.Cookie"]}, "$.redaction.allow[0]", "must start with one of the redacted fields"),
    ({"names": ["123"]}, "$.redaction.names[0]", "needs letters"),
    ({"marker": ""}, "$.redaction.marker", "must not be empty"),
    ({"enabled": "yes"}, "$.redaction.enabled", "Expected `bool`"),
])
def test_invalid_policy_input_names_source_and_key(data: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        RedactionPolicy.from_mapping(data, source="lake.json")
    assert caught.value.source == "lake.json" and caught.value.path == path
    assert words in str(caught.value) and str(caught.value).startswith("lake.json, at " + path)


def test_invalid_policy_given_directly_to_the_redactor() -> None:
    with pytest.raises(InputError, match=r"patterns\[0\]"):
        Redactor(RedactionPolicy(patterns=("[",)))
    with pytest.raises(InputError, match="must be an object"):
        RedactionPolicy.from_mapping(["names"], source="manifest.json")  # type: ignore[arg-type]


# Paths, determinism, inputs ------------------------------------------------------------------------------

def test_paths_round_trip() -> None:
    segments = ("request", "headers", "X-Api-Key", 3, "a b", 'q"uote', "_ok1")
    text = format_path(segments)
    assert text == '$.request.headers["X-Api-Key"][3]["a b"]["q\\"uote"]._ok1'
    assert parse_path(text) == segments
    assert format_path((), root="$.response") == "$.response"


def test_deterministic_idempotent_and_inputs_not_mutated() -> None:
    request = {"url": f"https://x.example/?access_token={JWT}", "headers": [["Cookie", "a=1"]],
               "json": {"password": "pw", "text": f"key {OPENAI}", "list": [{"client_secret": ["s"]}]}}
    response = {"choices": [{"text": f"{GITHUB} and {AWS_ID}"}]}
    before = copy.deepcopy((request, response))
    first = Redactor().redact(request, response)
    second = Redactor().redact(request, response)
    assert first == second
    assert (request, response) == before
    glued = Redactor().redact({"t": AWS_ID + JWT + "=" + GITHUB}, None)
    assert glued[0]["t"] == R + R + "=" + R and Redactor().redact(glued[0], None)[2] == ()
    again = Redactor().redact(first[0], first[1])
    assert again == (first[0], first[1], ())
    assert again[0] is first[0]


def test_many_hits_fall_back_to_a_full_walk() -> None:
    items = [{"title": f"session {i}", "token": f"t{i}", "url": f"https://x.example/?a=1&token=v{i}"}
             for i in range(100)]
    _, response, paths = redact(None, {"items": items})
    assert response["items"][99] == {"title": "session 99", "token": R,
                                     "url": "https://x.example/?a=1&token=[REDACTED]"}
    assert len(paths) == 200


def test_values_msgspec_cannot_encode_fall_back_to_a_full_walk() -> None:
    marker = object()
    new, paths = req({"obj": marker, "password": "pw"})
    assert new == {"obj": marker, "password": R} and paths == ("$.request.password",)


def test_non_string_keys_are_named_as_strings() -> None:
    new, paths = req({1: {"token": "t"}})
    assert new == {1: {"token": R}} and paths == ('$.request["1"].token',)


# Recorded exchanges, as data -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(p.name for p in DATA.iterdir() if p.is_dir()))
def test_recorded_exchanges(case: str) -> None:
    given_ = json.loads((DATA / case / "input.json").read_text(encoding="utf-8"))
    expected = json.loads((DATA / case / "expected.json").read_text(encoding="utf-8"))
    request, response, paths = redact(given_["request"], given_["response"])
    assert {"request": request, "response": response, "redactions_applied": list(paths)} == expected
    encoded = (canonical_json(given_["request"]), canonical_json(given_["response"]))
    assert Redactor().redact(given_["request"], given_["response"], encoded=encoded) == (request, response, paths)


# The pre-filter never misses what the full walk finds ----------------------------------------------------

WORDS = ["token", "Authorization", "X-Api-Key", "apiKey", "password", "session", "sessid", "keywords",
         "key", "max_tokens", "name", "value", "key", "cookie", "Set-Cookie", "client_secret", "tokenizer",
         "Bearer", "bearer", "possession", "secret", "signature", "credential", "pageToken", "token_type",
         "url", "pass", "api%5Fkey", "user[password]", "risk-free", "sk-", "@", "://", "=", "&", "?", ":",
         '"', "'", " ", "\n", "\\", "[", "]", "{", "}", "AKIA", "ASIA", "ACCA", "eyJ", ".", "-----BEGIN ",
         "PRIVATE KEY-----", "ghp_", "xoxb-", "é", "\u2028", "0", "1234567890", "abcdefghijklmnopqrstuvwxyz",
         "ABCDEFGHIJKLMNOP", JWT, OPENAI, GOOGLE, SLACK, STRIPE, AWS_ID, "https://x.example/?a=1&token=2",
         "u:p@h", "x://u:p@h", "authorization: basic ",
         "sig", "=", "pwd", "pass", "cookies", " = ", ": ", "my password is ", "Hunter2", "AccountKey", "\t",
         "glpat-", "glft-", "GR1348941", "hf_", "SG.", "npm_", "abcdefghij1234567890", "AC" + "0123456789abcdef" * 2,
         "MTA" + "yMzQ1Njc4OTAxMjM0NTY3OA" + "." + "GaBcDe" + "." + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0",
         "123456789" + ":" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "0123456789abcdef" * 2 + "-us12", "\x01"]
text = st.lists(st.sampled_from(WORDS), max_size=6).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | text,
    lambda inner: (st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
                   | st.lists(st.tuples(text, inner).map(list), min_size=1, max_size=3)
                   | st.fixed_dictionaries({"name": text, "value": inner}, optional={"path": text})),
    max_leaves=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=json_values, response=json_values)
def test_prefilter_agrees_with_the_full_walk_and_is_idempotent(request: Any, response: Any) -> None:
    fast = Redactor().redact(request, response)
    full = Redactor(prefilter=False).redact(request, response)
    assert fast == full
    encoded = (canonical_json(request), canonical_json(response))  # the log passes the bytes it already has
    assert Redactor().redact(request, response, encoded=encoded) == full
    assert pure_python(Redactor()).redact(request, response, encoded=encoded) == full
    assert Redactor().redact(fast[0], fast[1]) == (fast[0], fast[1], ())
    assert [p for p in fast[2] if not (p.startswith("$.request") or p.startswith("$.response"))] == []


POLICIES = [RedactionPolicy(), RedactionPolicy(names=("name", "bear", "s")), RedactionPolicy(enabled=False),
            RedactionPolicy(allow=("$",)), RedactionPolicy(patterns=("abcdef",))]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=json_values, response=json_values, policy=st.sampled_from(POLICIES))
def test_encoded_clear_never_vouches_for_a_value_redact_would_change(request: Any, response: Any,
                                                                       policy: RedactionPolicy) -> None:
    """The log skips `redact` where `encoded_clear` says the encodings need nothing: it must never say so
    wrongly."""
    clear = Redactor(policy).encoded_clear
    if policy.patterns:
        assert clear is None  # patterns of the policy's own: only `redact` can tell
        return
    if clear is None:  # without the C scanner only `redact` can tell, where redaction is on at all
        assert extensions.speedups is None and policy.enabled and not policy.allow
        return
    encoded = (canonical_json(request), canonical_json(response))
    full = Redactor(policy, prefilter=False).redact(request, response)
    if clear(*encoded):
        assert full == (request, response, ())
    else:  # the log then redacts without searching again
        assert Redactor(policy).redact(request, response, encoded=encoded, searched=True) == full


def test_encoded_clear_answers_where_it_can() -> None:
    assert Redactor(RedactionPolicy(enabled=False)).encoded_clear is not None
    assert Redactor(prefilter=False).encoded_clear is None
    clear = Redactor().encoded_clear
    if extensions.speedups is None:  # pure Python: only `redact` can tell
        assert clear is None
        return
    assert clear is not None
    assert clear(b'{"url":"https://api.example.org/works?page=2"}', b'{"title":"a walk in the park"}')
    assert not clear(b'{"headers":{"Authorization":"x"}}', b"null")
    assert not clear(b"null", b'{"note":"see https://user:pw@host.example/"}')
    assert not clear(b"null", b"null", b'["W1",{"ci_token":"x"}]')  # the other fields' encoding


@settings(max_examples=100, deadline=None)
@given(request=json_values)
def test_prefilter_agrees_with_extensions(request: Any) -> None:
    policy = RedactionPolicy(names=("name", "bear", "sess", "s", "x"), patterns=("abcdef",),
                             allow=("cookie", "$.request[0]"))
    full = Redactor(policy, prefilter=False).redact(request, None)
    assert Redactor(policy).redact(request, None) == full == pure_python(Redactor(policy)).redact(request, None)
    names_only = RedactionPolicy(names=policy.names)  # without patterns, a miss in C ends the search early
    encoded = (canonical_json(request), b"null")
    full = Redactor(names_only, prefilter=False).redact(request, None)
    assert Redactor(names_only).redact(request, None, encoded=encoded) == full
