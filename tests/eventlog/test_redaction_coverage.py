"""Redaction over every stored field and every token family, with detect-secrets as an independent oracle.

Whatever detect-secrets' detectors flag in an exchange before redaction must be gone after it: on generated
exchanges (hypothesis, derandomized so a failure prints its example and reproduces) and on the fixture exchanges
in tests/data/redaction/. Its two entropy detectors and its public-IP detector are left out: they flag content
hashes, ids and addresses, which are data, not secrets. Its Artifactory "AP" rule is left out too: it flags
ordinary words such as "APE1234567890".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import Lake
from eventlog.errors import InputError
from eventlog.format.envelope import ExchangeRecord, decode_record
from eventlog.redaction.redactor import DEFAULT_MARKER, RedactionPolicy, Redactor, encode_fields
from tests.eventlog.test_redaction import json_values, pure_python
from tests.eventlog.test_redaction import text as text_values
from tests.factories import openalex_record

R = DEFAULT_MARKER
DATA = Path(__file__).parent.parent / "data" / "redaction"
PLUGINS = ("AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector",
           "CloudantDetector", "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector",
           "IbmCloudIamDetector", "IbmCosHmacDetector", "JwtTokenDetector", "KeywordDetector", "MailchimpDetector",
           "NpmDetector", "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector",
           "SlackDetector", "SoftlayerDetector", "SquareOAuthDetector", "StripeDetector",
           "TelegramBotTokenDetector", "TwilioKeyDetector")


def flagged(texts: list[str]) -> set[str]:
    """The secret values detect-secrets' detectors find in the texts, line by line."""
    found: set[str] = set()
    with transient_settings({"plugins_used": [{"name": name} for name in PLUGINS]}):
        for text in texts:
            for line in text.splitlines():
                found.update(s.secret_value for s in scan_line(line) if s.secret_value)
    return found


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def stored(record: ExchangeRecord) -> list[str]:
    return list(strings(msgspec.to_builtins(record)))


# Fake secrets of every family, assembled so that no literal here looks like a live credential.
A36 = "A1b2C3d4E5" * 3 + "f6G7h8"
FAMILIES: dict[str, str] = {
    "gitlab": "glpat-" + "x9Y8w7V6u5T4s3R2q1P0",
    "gitlab-runner": "glrt-" + "Zy9Xw8Vu7Ts6Rq5Po4Nm",
    "gitlab-deploy": "gldt-" + "Qw3Er4Ty5Ui6Op7As8Df",
    "gitlab-feed": "glft-" + "Mn8Bv7Cx6Zl5Kj4Hg3Fd",
    "gitlab-scim": "glsoat-" + "Pl0Ok9Ij8Uh7Yg6Tf5Rd",
    "gitlab-pipeline-trigger": "glptt-" + "a1B2c3D4e5" * 4,
    "gitlab-build": "glcbt-" + "2a_" + "Wq1Er2Ty3Ui4Op5As6Df",
    "gitlab-incoming-mail": "glimt-" + "Zx1Cv2Bn3Mq4Wr5Ty6Ui7Op8",
    "gitlab-agent": "glagent-" + "Hk2Jl3Zx4Cv5" * 5,
    "gitlab-oauth-app": "gloas-" + "0a1b2c3d4e5f6a7b" * 4,
    "gitlab-runner-registration": "GR1348941" + "Vb6Nm7Qw8Er9Ty0Ui1Op",
    "huggingface": "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
    "sendgrid": "SG." + "aB3dE6gH9jK2mN5pQ8sT1v" + "." + "wX4yZ7aB0cD3eF6gH9iJ2kL5mN8oP1qR4sT7uV0wX3y",
    "npm": "npm_" + A36,
    "pypi": "pypi-" + "AgEIcHlwaS5vcmc" + "CJDk3ZWQ5" * 9,
    "github": "ghp_" + A36,
    "github-fine": "github_pat_" + "11ABCDEFG0" + "123456789_" + "abcdefghij" * 5,
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws-temporary": "ASIA" + "Y34FZKBOKMUTVV7A",
    "aws-acca": "ACCA" + "X7Q2LM9RT4VN8KDW",
    "openai": "sk-" + "proj-" + "a1B2c3D4e5F6g7H8i9J0" + "T3BlbkFJ" + "k1L2m3N4o5P6q7R8s9T0",
    "anthropic": "sk-" + "ant-api03-" + "Zx9" * 10,
    "stripe": "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "slack": "xoxb-" + "1234567890-" + "0987654321-" + "abcdefghijklmnopqrstuvwx",
    "slack-webhook": "https://hooks.slack.com/services/" + "T0AB12CD3/" + "B0EF45GH6/" + "aBcDeFgHiJkLmNoPqRsTuVwX",
    "google": "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "twilio-sid": "AC" + "0123456789abcdef" * 2,
    "twilio-key": "SK" + "fedcba9876543210" * 2,
    "discord": "MTA" + "yMzQ1Njc4OTAxMjM0NTY3OA" + "." + "GaBcDe" + "." + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0",
    "telegram": "123456789" + ":" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    "mailchimp": "0123456789abcdef" * 2 + "-us12",
    "square": "sq0csp-" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_aBcDe",
    "artifactory": "AKC" + "p8aBcDeFgHiJkLmNoPq",
    "jwt": ".".join(["eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"]),
    "private-key": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I\n"
                    "-----END RSA PRIVATE KEY-----"),
}
# Secrets known by the name they stand under: (text holding the secret, the secret).
AZURE_KEY = "Zm9vYmFy" * 11
NAMED: dict[str, tuple[str, str]] = {
    "azure-connection-string": (
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + AZURE_KEY + ";EndpointSuffix=core.windows.net",
        AZURE_KEY),
    "azure-sas-url": ("https://acme.blob.core.windows.net/c/b.txt?sv=2022-11-02&se=2030-01-01&sp=r&sig="
                      + "q9W8e7R6t5Y4u3I2o1P0aSdFgHjKl%3D", "q9W8e7R6t5Y4u3I2o1P0aSdFgHjKl%3D"),
    "form-pwd": ("user=bob&pwd=Tr0ub4dor-and-3", "Tr0ub4dor-and-3"),
    "form-pass": ("login=bob&pass=C0rrect-h0rse", "C0rrect-h0rse"),
    "aws-secret-spaced": ("[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                          "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "yaml": ("database:\n  host: db.internal\n  password: s3cr3t-Yaml-Pw\n", "s3cr3t-Yaml-Pw"),
    "yaml-quoted": ("api_token: \"tok-1234-abcd-5678\"\n", "tok-1234-abcd-5678"),
    "llm-prompt": ("Please log in for me, my password is Hunter2-Secret. Thanks!", "Hunter2-Secret"),
    "twilio-auth-token": ("TWILIO_AUTH_TOKEN=" + "9f8e7d6c5b4a3210" * 2, "9f8e7d6c5b4a3210" * 2),
    "npm-rc": ("//registry.npmjs.org/:_authToken=" + "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
               "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"),
    "basic-auth-url": ("https://deploy:Pa55-w0rd-x@git.example.org/repo.git", "Pa55-w0rd-x"),
    "json-in-string": ('{"callback": "https://hooks.example/x?sig=AbC123dEf456", "note": "ok"}', "AbC123dEf456"),
}
SECRETS: dict[str, tuple[str, str]] = {name: (f"see {secret} here", secret) for name, secret in FAMILIES.items()}
SECRETS.update(NAMED)

NEAR_MISSES = [
    "Cookie Monster loves cookies=many and milk.",
    "He was the bearer of bad news about the token economy.",
    "The password prompt appears twice; the password is required.",
    "Try the sk-ii skincare line and the sk-learn tokenizer.",
    "https://api.openalex.org/works?keywords=token%20economy&tokens_used=12&per-page=25",
    "https://example.org/search?q=secret+garden&session_count=3",
    "Tokens: 1234",
    "key: value pairs are ordinary YAML",
    "The signal design is significant; see the design doc.",
    "Our passage was a pass through the compass.",
]


def exchange(text: str, where: str, *, neutral: bool = False) -> dict[str, Any]:
    """An example record with `text` in one stored field; `neutral` puts it under names that say nothing."""
    if neutral and where in ("provenance", "natural_key", "response_ref"):
        return {**openalex_record(1), "provenance": {"note": text}} if where == "provenance" else \
            {**openalex_record(1), "natural_key": text} if where == "natural_key" else \
            {**openalex_record(1), "response_ref": {"uri": text}}
    record: dict[str, Any] = {**openalex_record(1)}
    if where == "request":
        record["request"] = {"method": "POST", "url": "https://api.example.org/login", "body": text}
    elif where == "response":
        record["response"] = {"status": 200, "body": {"echo": text}}
    elif where == "provenance":
        record["provenance"] = {"runner": "ci", "ci_token": text, "note": text}
    elif where == "tags":
        record["tags"] = ["nightly", text]
    elif where == "natural_key":
        record["natural_key"] = f"https://api.example.org/items/7?api_key={text}"
    elif where == "natural_key_text":
        record["natural_key"] = text
    elif where == "response_ref":
        record["response_ref"] = {"uri": f"https://store.example.org/blob?token={text}&x=1"}
    return record


def placed(case: str, where: str) -> str:
    """The text of a case as it goes into a field: a URL's query holds no spaces, so there the secret alone."""
    text, secret = SECRETS[case]
    return secret if where in ("natural_key", "response_ref") and any(c.isspace() for c in text) else text


FIELDS = ["request", "response", "provenance", "tags", "natural_key", "natural_key_text", "response_ref"]


@pytest.mark.parametrize("where", FIELDS)
@pytest.mark.parametrize("case", sorted(SECRETS))
def test_every_family_in_every_field_is_redacted(case: str, where: str) -> None:
    secret = SECRETS[case][1]
    record = decode_record(exchange(placed(case, where), where))
    redacted = Redactor().redact_record(record)
    assert secret not in json.dumps(stored(redacted))
    assert redacted.redactions_applied  # the paths name what changed
    assert Redactor(prefilter=False).redact_record(record) == redacted
    assert Redactor().redact_record(redacted) == redacted  # idempotent


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stay_untouched(text: str) -> None:
    for where in FIELDS:
        record = decode_record(exchange(text, where, neutral=True))
        assert Redactor().redact_record(record) is record
        assert Redactor(prefilter=False).redact_record(record) is record


def test_fields_and_paths() -> None:
    token = FAMILIES["github"]
    record = decode_record({**openalex_record(1), "natural_key": f"https://api.example/x?id=7&api_key={token}",
                            "provenance": {"runner": "ci", "ci_token": token, "host": "build-7"},
                            "tags": ["nightly", f"deploy key {token}"],
                            "response_ref": {"uri": f"https://u:{token}@store.example/blob"}})
    redacted = Redactor().redact_record(record)
    assert redacted.natural_key == f"https://api.example/x?id=7&api_key={R}"
    assert redacted.provenance == {"runner": "ci", "ci_token": R, "host": "build-7"}
    assert redacted.tags == ("nightly", f"deploy key {R}")
    assert redacted.response_ref is not None and redacted.response_ref.uri == f"https://u:{R}@store.example/blob"
    assert redacted.redactions_applied == ("$.natural_key", "$.provenance.ci_token", "$.response_ref.uri",
                                           "$.tags[1]")
    allowed = Redactor(RedactionPolicy(allow=("$.provenance.ci_token", "$.tags")))
    partly = allowed.redact_record(record)
    assert partly.provenance["ci_token"] == token and partly.tags == record.tags
    assert partly.natural_key == redacted.natural_key


def test_a_redacted_natural_key_is_a_stable_key(tmp_path: Path) -> None:
    """Two captures of one entity with different secrets in the key's query share the redacted key."""
    first = {**openalex_record(1), "natural_key": "https://api.example/items/7?api_key=" + "k1" * 10}
    second = {**openalex_record(2), "natural_key": "https://api.example/items/7?api_key=" + "k2" * 10}
    with Lake.init(tmp_path / "lake") as lake:
        lake.append([first, second])
        keys = {event.body["natural_key"] for event in lake.events()}
        lake.mirror()
        lake.reproject()
    assert keys == {f"https://api.example/items/7?api_key={R}"}
    with closing(sqlite3.connect(tmp_path / "lake" / "lake.db")) as db:
        rows = db.execute('SELECT natural_key, observation_count FROM "RawExchangeRecord"').fetchall()
    assert rows == [(f"https://api.example/items/7?api_key={R}", 2)]


def lake_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a lake (segments, index, lake.db and its journal), after the lake is closed."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_no_secret_reaches_segments_index_or_database(tmp_path: Path, case: str) -> None:
    """Each family in each field, through append, mirror and reproject: on disk nowhere."""
    secret = SECRETS[case][1]
    records = [{**exchange(placed(case, where), where), "observed_at_utc": f"2024-05-0{1 + i}T00:00:00Z"}
               for i, where in enumerate(FIELDS)]
    with Lake.init(tmp_path / "lake") as lake:
        lake.append(records)
        lake.mirror()
        lake.reproject()
    files = lake_bytes(tmp_path / "lake")
    assert {"lake.db", "log/index.sqlite"} <= set(files)
    needles = {secret.encode(), json.dumps(secret)[1:-1].encode()}
    assert [name for name, data in files.items() if any(n in data for n in needles)] == []


def test_no_secret_reaches_any_sql_backend(tmp_path: Path, sql_url: str, sql_schema: str) -> None:
    """Every family in every field, mirrored and projected into each backend: no table holds a secret."""
    import sqlalchemy as sa

    records = [{**exchange(placed(case, where), where), "observed_at_utc": f"2024-05-01T00:{i // 60:02d}:{i % 60:02d}Z"}
               for i, (case, where) in enumerate((c, w) for c in sorted(SECRETS) for w in FIELDS)]
    with Lake.init(tmp_path / "lake") as lake:
        lake.append(records)
        lake.mirror(database_url=sql_url, schema=sql_schema)
        lake.reproject(database_url=sql_url, schema=sql_schema)
    engine = sa.create_engine(sql_url)
    try:
        with engine.connect() as connection:
            dialect_schema = None if engine.dialect.name == "sqlite" else sql_schema
            metadata = sa.MetaData()
            metadata.reflect(connection, schema=dialect_schema)
            texts = []
            for table in metadata.tables.values():
                for row in connection.execute(sa.select(table)):
                    texts.extend(str(value) for value in row if value is not None)
    finally:
        engine.dispose()
    assert len(texts) > len(records)
    blob = "\n".join(texts)
    assert [case for case, (_, secret) in SECRETS.items() if secret in blob] == []


# detect-secrets as the oracle --------------------------------------------------------------------------------

PLACES = ["{s}", "token: {s}", "see {s}.", "https://h.example/p?q={s}&page=2", '{{"note": "{s}"}}',
          "line one\n{s}\nline two", "Authorization: Bearer {s}", "x={s}"]
_alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _text(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size)


_lower = "abcdefghijklmnopqrstuvwxyz0123456789"
_urlsafe = _alnum + "_-"
generated_secrets = st.one_of(
    st.tuples(st.sampled_from(["glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "GR1348941"]),
              _text(_urlsafe, 20)).map("".join),
    _text(_urlsafe, 25).map(lambda s: "glimt-" + s),
    _text(_urlsafe, 40).map(lambda s: "glptt-" + s),
    _text(_urlsafe, 50).map(lambda s: "glagent-" + s),
    _text(_urlsafe, 64).map(lambda s: "gloas-" + s),
    _text(_alnum, 34).map(lambda s: "hf_" + s),
    st.tuples(_text(_urlsafe, 22), _text(_urlsafe, 43)).map(lambda p: f"SG.{p[0]}.{p[1]}"),
    _text(_alnum, 36).map(lambda s: "npm_" + s),
    _text(_alnum, 36).map(lambda s: "ghp_" + s),
    st.tuples(st.sampled_from(["AKIA", "ASIA", "ABIA", "ACCA", "A3TX"]),
              _text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16)).map("".join),
    _text(_alnum, 24).map(lambda s: "sk_" + "live_" + s),
    st.tuples(st.sampled_from(["AC", "SK"]), _text(_lower, 32)).map("".join),
    st.tuples(st.sampled_from("MNO"), _text(_urlsafe, 23), _text(_urlsafe, 6), _text(_urlsafe, 27)).map(
        lambda p: f"{p[0]}{p[1]}.{p[2]}.{p[3]}"),
    st.tuples(_text("0123456789", 9), _text(_urlsafe, 35)).map(lambda p: f"{p[0]}:{p[1]}"),
    st.tuples(_text(_lower, 32), st.integers(1, 20)).map(lambda p: f"{p[0]}-us{p[1]}"),
    _text(_urlsafe, 43).map(lambda s: "sq0csp-" + s),
    _text(_urlsafe, 72).map(lambda s: "pypi-AgEIcHlwaS5vcmc" + s),
    _text(_alnum + "+/", 86).map(lambda s: f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={s}==;"),
    _text(_alnum, 12).map(lambda s: f"https://user:{s}@host.example/"),
    _text(_alnum, 16).map(lambda s: f'password = "{s}"'),
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(secret=generated_secrets, place=st.sampled_from(PLACES), where=st.sampled_from(FIELDS))
def test_what_detect_secrets_flags_is_gone_after_redaction(secret: str, place: str, where: str) -> None:
    record = decode_record(exchange(place.format(s=secret), where))
    before = flagged(stored(record))
    after = "\n".join(stored(Redactor().redact_record(record)))
    assert [value for value in before if value in after] == []


def test_the_oracle_knows_most_families() -> None:
    """detect-secrets flags most of our families (not Hugging Face or Google keys): the oracle is not idle."""
    known = [name for name, (text, _) in SECRETS.items() if flagged([text])]
    assert len(known) >= 20, sorted(set(SECRETS) - set(known))


def fixture_records() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DATA.glob("*/input.json")) + sorted(DATA.glob("*.ndjson")):
        if path.suffix == ".ndjson":
            found.extend((f"{path.stem}-{i}", json.loads(line))
                         for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()))
        else:
            given_ = json.loads(path.read_text(encoding="utf-8"))
            found.append((path.parent.name, {**openalex_record(0), "request": given_["request"],
                                             "response": given_["response"]}))
    return found


@pytest.mark.parametrize(("name", "data"), fixture_records(), ids=[name for name, _ in fixture_records()])
def test_fixture_exchanges_hold_nothing_detect_secrets_flags_after_redaction(name: str, data: dict[str, Any]) -> None:
    record = decode_record(data)
    redacted = Redactor().redact_record(record)
    after = "\n".join(stored(redacted))
    assert [value for value in flagged(stored(record)) if value in after] == []


# Policy patterns run in linear time ----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$", "(a*)*b", "(x+x+)+y"])
def test_catastrophic_patterns_finish_in_linear_time(pattern: str) -> None:
    redactor = Redactor(RedactionPolicy(patterns=(pattern,)))
    text = "a" * 50_000 + "!"
    started = time.perf_counter()
    redactor.redact({"q": text, "x" * 5: "x" * 50_000 + "!"}, None)
    assert time.perf_counter() - started < 0.1


def test_a_pattern_re2_cannot_express_is_refused_with_a_sentence() -> None:
    with pytest.raises(InputError) as caught:
        RedactionPolicy.from_mapping({"patterns": [r"(?P<x>a)(?P=x)"]}, source="manifest.json")
    assert str(caught.value).startswith("manifest.json, at $.redaction.patterns[0]: the pattern cannot be compiled")
    assert "\n" not in str(caught.value)


# The pre-filter never misses what the full walk finds in the other fields ------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(natural_key=st.none() | text_values, provenance=st.dictionaries(text_values, json_values, max_size=3),
       tags=st.lists(text_values, max_size=3), uri=st.none() | text_values)
def test_prefilter_agrees_with_the_full_walk_on_the_other_fields(natural_key: str | None, provenance: dict[str, Any],
                                                                  tags: list[str], uri: str | None) -> None:
    record = decode_record({**openalex_record(1), "natural_key": natural_key, "provenance": provenance,
                            "tags": tags, "response_ref": None if uri is None else {"uri": uri}})
    full = Redactor(prefilter=False).redact_record(record)
    assert Redactor().redact_record(record) == full == pure_python(Redactor()).redact_record(record)
    clear = Redactor().encoded_clear
    fields = encode_fields(record)
    if clear is not None and fields is not None and clear(b"null", b"null", fields):
        assert full.natural_key == record.natural_key and full.provenance == record.provenance
        assert full.tags == record.tags and full.response_ref == record.response_ref
