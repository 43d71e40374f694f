"""The Replayer over a lake: misses that explain themselves, volatile parts, as_of, datasets, and the index."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventlog.app.lake import Lake
from eventlog.cold.keys import Keys, SymmetricKey
from eventlog.errors import InputError, LakeError, NotFoundError, ReplayMissError
from eventlog.format.events import new_resolution
from eventlog.log.config import SegmentPolicy
from eventlog.replay import HttpxTransport, MatchRule, Replayer
from eventlog.replay.shape import request_dict
from tests.replay.conftest import Server

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
WIKI = "https://en.wikipedia.org/w/api.php?action=query&prop=revisions&rvprop=content|ids|timestamp&format=json&formatversion=2"


def _append_examples(lake: Lake, *names: str) -> None:
    for name in names:
        lake.append(json.loads(line) for line in (EXAMPLES / name).read_text().splitlines() if line.strip())


def _wiki(title: str, **headers: str) -> dict[str, Any]:
    return request_dict("GET", f"{WIKI}&titles={title}",
                        [("User-Agent", "other-client/2.0"), ("Accept", "application/json"), *headers.items()], None)


def _chat(prompt: str, *, key: str = "sk-real0000000000000000000000000key", temperature: float = 0.2) -> dict[str, Any]:
    body = {"model": "example-model-small", "temperature": temperature, "max_tokens": 128,
            "messages": [{"role": "system", "content": "You are a concise assistant."},
                         {"role": "user", "content": prompt}]}
    return request_dict("POST", "https://llm.example.org/v1/chat/completions",
                        [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")],
                        json.dumps(body).encode())


def _one_miss(replayer: Replayer, request: dict[str, Any]) -> ReplayMissError:
    with pytest.raises(ReplayMissError) as missed:
        replayer.lookup(request)
    assert isinstance(missed.value, NotFoundError) and missed.value.exit_code == 10
    return missed.value


def test_captured_mediawiki_pages_replay_newest_and_as_of(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake) as replayer:
        newest = replayer.lookup(_wiki("Ada_Lovelace"))
        assert newest.observed_at_utc == "2024-05-06T09:00:00.000000Z" and newest.status == 200
        assert json.loads(newest.body)["query"]["pages"][0]["title"] == "Ada Lovelace"
        assert ("Content-Type", "application/json; charset=utf-8") in newest.headers
    with Replayer(lake, as_of="2024-05-01T01:30:00Z") as replayer:
        older = replayer.lookup(_wiki("Ada_Lovelace"))
    assert older.observed_at_utc == "2024-05-01T01:15:00.000000Z" and older.body != newest.body


def test_an_llm_conversation_replays_by_its_body_with_a_real_key_against_the_redacted_one(lake: Lake) -> None:
    _append_examples(lake, "llm-completions.ndjson")
    with Replayer(lake, dataset="llm-gateway") as replayer:
        answer = json.loads(replayer.lookup(_chat("Summarise the Analytical Engine in one sentence.")).body)
        assert answer["id"] == "cmpl-0"


def test_a_miss_names_the_query_parameter_that_differs_and_lists_the_nearest(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake) as replayer:
        request = _wiki("Ada_Lovelace")
        request["url"] = request["url"].replace("formatversion=2", "formatversion=3")
        miss = _one_miss(replayer, request)
    message = str(miss)
    assert message.startswith("no recorded response for GET https://en.wikipedia.org/w/api.php?")
    assert "query parameter 'formatversion' is '2' in the recording, '3' in the request" in message
    assert len(miss.nearest) == 3
    closest = miss.nearest[0]
    assert closest["differences"] == [{"kind": "query", "name": "formatversion", "recorded": "2",
                                       "requested": "3"}]
    assert "titles=Ada_Lovelace" in str(closest["url"]) or "Ada+Lovelace" in str(closest["url"])
    # The others differ in the title as well: they come after.
    assert all(len(item["differences"]) == 2 for item in miss.nearest[1:])


def test_a_miss_names_the_header_that_differs(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake) as replayer:
        miss = _one_miss(replayer, _wiki("Ada_Lovelace", **{"Accept": "text/html"}))
    assert miss.nearest[0]["differences"] == [{"kind": "header", "name": "accept", "recorded": "application/json",
                                               "requested": "application/json, text/html"}]
    assert "header 'accept' is 'application/json' in the recording" in str(miss)


def test_a_miss_names_the_json_path_of_the_body_that_differs(lake: Lake) -> None:
    _append_examples(lake, "llm-completions.ndjson")
    with Replayer(lake, dataset="llm-gateway") as replayer:
        miss = _one_miss(replayer, _chat("Summarise the Analytical Engine in one sentence.", temperature=0.7))
    assert miss.nearest[0]["differences"] == [{"kind": "body", "name": "$.temperature", "recorded": 0.2,
                                               "requested": 0.7}]
    assert "body at $.temperature is 0.2 in the recording, 0.7 in the request" in str(miss)
    assert "dataset 'llm-gateway'" in str(miss)


def test_a_miss_with_nothing_recorded_for_the_host_says_so(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake) as replayer:
        miss = _one_miss(replayer, request_dict("GET", "https://api.openalex.org/works/W1", [], None))
    assert miss.nearest == [] and "nothing is recorded for host api.openalex.org" in str(miss)


def test_volatile_parts_declared_in_rules_do_not_cause_misses(lake: Lake, tmp_path: Path) -> None:
    lake.append([{
        "exchange_type": "http", "source_system": "crawler", "entity_type": "page", "observed_at_utc": "2024-01-01T00:00:00Z",
        "request": request_dict("POST", "https://api.example.org/search?q=lake&_=1704067200&cursor=abc",
                                [("X-Request-Id", "r-1"), ("Content-Type", "application/json")],
                                b'{"query": "lake", "client": {"nonce": "n-1", "name": "c"}}'),
        "response": {"status": 200, "body": "found"}}])
    live = request_dict("POST", "https://api.example.org/search?cursor=xyz&q=lake&_=1704070000",
                        [("X-Request-Id", "r-2"), ("Content-Type", "application/json")],
                        b'{"client": {"name": "c", "nonce": "n-2"}, "query": "lake"}')
    with Replayer(lake) as strict:
        miss = _one_miss(strict, live)
    assert {(d["kind"], d["name"]) for d in miss.nearest[0]["differences"]} == {
        ("query", "_"), ("query", "cursor"), ("header", "x-request-id"), ("body", "$.client.nonce")}
    rules = [{"host": "api.example.org", "ignore_query": ["_", "cursor"], "ignore_headers": ["x-request-id"],
              "ignore_body": ["$.client.nonce"]}]
    with Replayer(lake, rules=rules) as tolerant:
        assert tolerant.lookup(live).body == b"found"
    # The same rules from the lake's replay/rules.json, as a file.
    (lake.root / "replay" / "rules.json").write_text(json.dumps({"rules": rules}))
    with Replayer(lake) as from_file:
        assert from_file.lookup(live).body == b"found"


def test_as_of_replays_the_response_as_observed_then_after_newer_versions_were_recorded(
        lake: Lake, server: Server) -> None:
    url = server.base + "/items?page=1"
    with httpx.Client(transport=HttpxTransport(lake, mode="record")) as client:
        assert client.get(url).json()["version"] == 1
        between = datetime.now(UTC)
        server.version = 2
        assert client.get(url).json()["version"] == 2
        server.version = 3
        assert client.get(url).json()["version"] == 3
    with httpx.Client(transport=HttpxTransport(lake)) as client:
        assert client.get(url).json()["version"] == 3
    with httpx.Client(transport=HttpxTransport(lake, as_of=between)) as client:
        assert client.get(url).json()["version"] == 1
    with Replayer(lake, as_of=datetime(2000, 1, 1, tzinfo=UTC)) as early:
        miss = _one_miss(early, request_dict("GET", url, [("Accept", "*/*")], None))
    assert "it was first recorded at" in str(miss)


def test_a_revisit_of_older_content_makes_it_current_again(lake: Lake) -> None:
    def page(body: str, when: str) -> dict[str, Any]:
        return {"exchange_type": "http", "source_system": "s", "entity_type": "e", "observed_at_utc": when,
                "request": {"method": "GET", "url": "https://h.example/p"}, "response": {"status": 200, "body": body}}

    result = lake.append([page("A", "2024-01-01T00:00:00Z"), page("B", "2024-01-02T00:00:00Z"),
                          page("A", "2024-01-03T00:00:00Z")])
    assert result.revisited == 1
    with Replayer(lake) as replayer:
        assert replayer.lookup({"method": "GET", "url": "https://h.example/p"}).body == b"A"
    with Replayer(lake, as_of="2024-01-02T12:00:00+00:00") as replayer:
        assert replayer.lookup({"method": "GET", "url": "https://h.example/p"}).body == b"B"


def test_dataset_limits_look_ups_and_a_miss_says_where_the_request_is_recorded(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake, dataset="wikipedia-de") as replayer:
        miss = _one_miss(replayer, _wiki("Ada_Lovelace"))
    assert "it is recorded in dataset(s) 'wikipedia-en'" in str(miss)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return [row for table in ("contents", "requests", "shapes")
                for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4")]


def test_the_index_catches_up_incrementally_and_a_rebuild_gives_the_same_rows(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    index_path = lake.root / "replay" / "index.sqlite"
    with Replayer(lake) as replayer:
        assert replayer.index.count() == 10
        _append_examples(lake, "llm-completions.ndjson")  # after the Replayer opened: found on the miss path
        assert json.loads(replayer.lookup(_chat("Summarise the Analytical Engine in one sentence.")).body)["id"] \
            == "cmpl-0"
        assert replayer.index.catch_up() == 0
        incremental = _rows(index_path)
        assert replayer.index.rebuild() == 13
        assert _rows(index_path) == incremental


def test_an_unreadable_index_is_rebuilt_from_the_log(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    with Replayer(lake):
        pass
    index_path = lake.root / "replay" / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{index_path}{suffix}").unlink(missing_ok=True)
    index_path.write_bytes(b"not a database" * 100)
    with Replayer(lake) as replayer:
        assert replayer.index.count() == 10


def test_a_replayer_opened_on_a_path_records_and_finds(lake: Lake) -> None:
    with Replayer(lake.root, mode="record", dataset="demo") as replayer:
        request = request_dict("GET", "https://h.example/x", [], None)
        exchange_id = replayer.record(request, {"status": 201, "headers": {"X-A": "1"}, "body": "made"})
        found = replayer.lookup(request)
    assert (found.status, found.headers, found.body, found.exchange_id) == (201, (("X-A", "1"),), b"made",
                                                                             exchange_id)
    event = lake.get(exchange_id)
    assert event is not None and event.body["source_system"] == "demo"


def test_bad_options_are_input_errors(lake: Lake) -> None:
    with pytest.raises(InputError, match="mode"):
        Replayer(lake, mode="live")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="naive"):
        Replayer(lake, as_of=datetime(2024, 1, 1))
    with pytest.raises(InputError, match=r"\$\.rules\[0\]"):
        Replayer(lake, rules=[{"ignore_body": ["no-dollar"]}])
    with Replayer(lake, rules=[MatchRule(ignore_query=("t",))]) as replayer:
        assert replayer.rules.rules == (MatchRule(ignore_query=("t",)),)
    with pytest.raises(LakeError, match="is not a lake"):
        Replayer(lake.root.parent / "elsewhere")


def test_look_ups_follow_segments_as_they_are_sealed(tmp_path: Path) -> None:
    policy = SegmentPolicy(max_events=2, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy) as lake, Replayer(lake, mode="record") as replayer:
        def get(n: int) -> dict[str, Any]:
            return request_dict("GET", f"https://h.example/p?n={n}", [], None)

        replayer.record(get(0), {"status": 200, "body": "zero"})
        assert replayer.lookup(get(0)).body == b"zero"  # read from the active segment, its descriptor kept open
        for n in range(1, 7):
            replayer.record(get(n), {"status": 200, "body": f"page {n}"})
        assert len(list((lake.root / "log" / "seals").iterdir())) == 3
        assert [replayer.lookup(get(n)).body for n in range(7)] == [b"zero"] + [f"page {n}".encode()
                                                                               for n in range(1, 7)]


def test_exchanges_in_segments_evicted_to_cold_storage_still_replay(tmp_path: Path) -> None:
    keys = Keys(key=SymmetricKey.generate())
    policy = SegmentPolicy(max_events=2, max_bytes=0, max_age_seconds=0)
    with Lake.init(tmp_path / "lake", segment_policy=policy) as lake:
        _append_examples(lake, "mediawiki-pages.ndjson")
        lake.archive(keys=keys, evict=True)
        assert len(list((lake.root / "log" / "segments").iterdir())) <= 1
    with Lake.open(tmp_path / "lake", keys=keys) as lake, Replayer(lake, as_of="2024-05-01T00:30:00Z") as replayer:
        found = replayer.lookup(_wiki("Ada_Lovelace"))
    assert found.seq == 1 and json.loads(found.body)["query"]["pages"][0]["title"] == "Ada Lovelace"


def test_the_index_folds_past_resolutions(lake: Lake) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson")
    resolution = new_resolution(body={"scope": "sync", "natural_key": "Ada_Lovelace", "strategy": "prefer_newest",
                                      "winner": "0" * 64, "candidates": ["0" * 64]},
                                origin=lake.config.replica_id, recorded_at_utc="2024-06-01T00:00:00.000000Z")
    assert lake.log.append_events([resolution]) == 1
    _append_examples(lake, "llm-completions.ndjson")
    with Replayer(lake) as replayer:
        assert replayer.index.count() == 13
        assert replayer.index.catch_up() == 0
        assert json.loads(replayer.lookup(_chat("Summarise the Analytical Engine in one sentence.")).body)["id"] \
            == "cmpl-0"


def test_a_fold_committed_in_chunks_gives_the_rows_of_one_pass(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _append_examples(lake, "mediawiki-pages.ndjson", "llm-completions.ndjson")
    monkeypatch.setattr("eventlog.replay.index._COMMIT_EVERY", 4)
    counts: list[int] = []
    with Replayer(lake) as replayer:
        assert replayer.index.rebuild(progress=counts.append) == 13
        chunked = _rows(lake.root / "replay" / "index.sqlite")
        monkeypatch.undo()
        assert replayer.index.rebuild() == 13
    assert counts == [4, 8, 12, 13]
    assert _rows(lake.root / "replay" / "index.sqlite") == chunked
