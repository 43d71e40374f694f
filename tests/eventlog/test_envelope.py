"""The envelope: validation with JSON paths, the content hash and its golden vectors, derived ids and times."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from eventlog import EnvelopeError, ExchangeRecord, canonical_json, content_sha256, decode_record
from eventlog.format.envelope import (
    EXCHANGE_ID_NAMESPACE,
    derive_exchange_id,
    format_utc,
    parse_utc,
    uuid5_text,
)

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "envelope" / "content_hash_vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_content_hash_golden_vectors(vector: dict[str, object]) -> None:
    """A change here changes the identity of stored content: it is a breaking change, never a refactor."""
    record = decode_record(vector["record"])
    content = {key: getattr(record, key) for key in
               ("exchange_type", "source_system", "entity_type", "natural_key", "request", "response")}
    assert canonical_json(content).decode() == vector["canonical_content"]
    assert content_sha256(record) == vector["content_sha256"]
    assert content_sha256(vector["record"]) == vector["content_sha256"]  # type: ignore[arg-type]


def test_original_envelope_decodes_unchanged() -> None:
    original = {
        "exchange_id": "7d9f0c2e-5b1a-4c3e-8f00-000000000000", "exchange_type": "mediawiki",
        "source_system": "wikipedia-de", "entity_type": "page", "natural_key": "Bern",
        "observed_at_utc": "2024-04-10T10:00:00Z", "request": {"url": "https://de.wikipedia.org/"},
        "response": {"status": 200}, "response_ref": None, "provenance": {"runner": "legacy"},
        "content_sha256": "a" * 64, "schema_version": 1, "tags": ["x"], "redactions_applied": [],
    }
    record = decode_record(original)
    assert record.exchange_id == original["exchange_id"]
    assert record.observed_at_utc == datetime(2024, 4, 10, 10, tzinfo=UTC)
    assert record.tags == ("x",)


@pytest.mark.parametrize(("change", "path", "message"), [
    ({"observed_at_utc": "2024-01-01T00:00:00"}, "$.observed_at_utc", "the timestamp is naive"),
    ({"observed_at_utc": "yesterday"}, "$.observed_at_utc", "invalid rfc3339"),
    ({"source_system": 5}, "$.source_system", "expected `str`, got `int`"),
    ({"source_system": ""}, "$.source_system", "length >= 1"),
    ({"exchange_type": "ftp"}, "$.exchange_type", "must be one of http, mediawiki, openalex, llm, file, generic"),
    ({"tags": "a,b"}, "$.tags", "expected `array`, got `str`"),
    ({"exchange_id": "not-a-uuid"}, "$.exchange_id", "is not a uuid"),
    ({"response_ref": {"uri": 3}}, "$.response_ref.uri", "expected `str`"),
])
def test_validation_errors_name_the_json_path(change: dict[str, object], path: str, message: str) -> None:
    record = {"source_system": "s", "entity_type": "e", "observed_at_utc": "2024-01-01T00:00:00Z", **change}
    with pytest.raises(EnvelopeError) as caught:
        decode_record(record, source="in.ndjson", line=4)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"in.ndjson, line 4, at {path}: ")
    assert message in str(caught.value).lower()


SECRET = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"


@pytest.mark.parametrize("field", ["exchange_type", "exchange_id", "observed_at_utc"])
def test_errors_never_echo_a_value_that_may_be_secret(field: str) -> None:
    record = {"source_system": "s", "entity_type": "e", "observed_at_utc": "2024-01-01T00:00:00Z", field: SECRET}
    with pytest.raises(EnvelopeError) as caught:
        decode_record(record, source="in.ndjson", line=1)
    assert caught.value.path == f"$.{field}" and SECRET not in str(caught.value)


def test_missing_field_and_non_object() -> None:
    with pytest.raises(EnvelopeError, match=r"at \$: object missing required field `entity_type`"):
        decode_record({"source_system": "s", "observed_at_utc": "2024-01-01T00:00:00Z"})
    with pytest.raises(EnvelopeError, match=r"line 2, at \$: expected a JSON object for an exchange record, got a JSON array"):
        decode_record([1], line=2)


def test_observed_time_is_normalised_to_utc() -> None:
    record = decode_record({"source_system": "s", "entity_type": "e", "observed_at_utc": "2024-01-01T02:00:00+02:00"})
    assert format_utc(record.observed_at_utc) == "2024-01-01T00:00:00.000000Z"
    assert parse_utc("2024-01-01T00:00:00.000000Z") == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no timezone"):
        parse_utc("2024-01-01T00:00:00")


def test_format_utc_is_fixed_width_and_sorts_as_time() -> None:
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
               datetime(2024, 2, 29, 12, tzinfo=timezone(timedelta(hours=-5))), datetime(9999, 1, 1, tzinfo=UTC)]
    texts = [format_utc(moment) for moment in moments]
    assert {len(text) for text in texts} == {27}
    assert sorted(texts) == texts


def test_format_utc_of_every_kind_of_utc_offset() -> None:
    expected = "2024-02-29T12:00:00.000001Z"
    for zone in (UTC, timezone(timedelta(0), "GMT"), timezone(timedelta(hours=5, minutes=30))):
        moment = datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=UTC).astimezone(zone)
        assert format_utc(moment) == expected, zone


def test_derived_exchange_id_is_uuid5_over_hash_and_time() -> None:
    observed = datetime(2024, 5, 1, 12, tzinfo=UTC)
    expected = uuid.uuid5(EXCHANGE_ID_NAMESPACE, f"{'ab' * 32}|2024-05-01T12:00:00.000000Z")
    assert derive_exchange_id("ab" * 32, observed) == str(expected)
    for name in ("", "x", "Zürich", "😀" * 50, *map(str, range(64))):  # every value of the variant's nibble
        assert uuid5_text(EXCHANGE_ID_NAMESPACE, name) == str(uuid.uuid5(EXCHANGE_ID_NAMESPACE, name))


def test_record_is_frozen() -> None:
    record = ExchangeRecord(source_system="s", entity_type="e", observed_at_utc=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(AttributeError):
        record.source_system = "t"  # type: ignore[misc]
