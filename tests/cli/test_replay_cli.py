"""`eventlog replay lookup` and `replay reindex` end to end: a lake of captured examples, text and JSON, exit codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from eventlog import Lake
from tests.cli.runner import Run

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
WIKI = ("https://en.wikipedia.org/w/api.php?action=query&prop=revisions&rvprop=content|ids|timestamp"
        "&titles=Ada_Lovelace&format=json&formatversion=2")
LLM = "https://llm.example.org/v1/chat/completions"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    with Lake.init(tmp_path / "lake") as lake:
        for name in ("mediawiki-pages.ndjson", "llm-completions.ndjson"):
            lake.append(json.loads(line) for line in (EXAMPLES / name).read_text().splitlines() if line.strip())
        lake.append([{"exchange_type": "file", "source_system": "files", "entity_type": "blob",
                      "observed_at_utc": "2024-01-01T00:00:00Z", "request": {"method": "GET",
                                                                            "url": "https://files.example/b"},
                      "response": {"status": 200, "body_base64": base64.b64encode(b"\xff\x00").decode()}}])
    return Run(capsys, monkeypatch, tmp_path / "lake")


def test_lookup_prints_the_recorded_response(run: Run) -> None:
    code, out, err = run("replay", "lookup", "--url", WIKI, "-H", "Accept: application/json")
    assert code == 0, err
    head, _, body = out.partition("\n\n")
    assert head.startswith("200  (exchange ") and "observed 2024-05-06T09:00:00.000000Z" in head
    assert "Content-Type: application/json; charset=utf-8" in head
    assert json.loads(body)["query"]["pages"][0]["title"] == "Ada Lovelace"


def test_lookup_as_of_and_json(run: Run) -> None:
    code, out, err = run("replay", "lookup", "--url", WIKI, "-H", "Accept: application/json",
                         "--as-of", "2024-05-01T00:30:00Z", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["observed_at_utc"] == "2024-05-01T00:15:00.000000Z" and result["status"] == 200
    assert result["headers"] == [["Content-Type", "application/json; charset=utf-8"]]
    assert result["dataset"] == "wikipedia-en"


def test_lookup_of_a_json_post_with_a_real_key_finds_the_redacted_recording(run: Run, tmp_path: Path) -> None:
    body = {"model": "example-model-small", "temperature": 0.2, "max_tokens": 128,
            "messages": [{"role": "system", "content": "You are a concise assistant."},
                         {"role": "user", "content": "Summarise the Analytical Engine in one sentence."}]}
    (tmp_path / "body.json").write_text(json.dumps(body))
    code, out, err = run("replay", "lookup", "-X", "POST", "--url", LLM, "-H", "Content-Type: application/json",
                         "-H", "Authorization: Bearer sk-mine00000000000000000000000001",
                         "--data", f"@{tmp_path / 'body.json'}", "--json")
    assert code == 0, err
    assert json.loads(json.loads(out)["body"])["id"] == "cmpl-0"


def test_lookup_gives_bytes_that_are_not_text_as_base64(run: Run) -> None:
    code, out, _ = run("--json", "replay", "lookup", "--url", "https://files.example/b")
    assert code == 0 and json.loads(out)["body_base64"] == "/wA="
    code, out, _ = run("replay", "lookup", "--url", "https://files.example/b")
    assert code == 0 and "<2 bytes that are not UTF-8" in out


def test_a_miss_exits_10_with_what_differs(run: Run) -> None:
    code, out, err = run("replay", "lookup", "--url", WIKI.replace("formatversion=2", "formatversion=1"),
                         "-H", "Accept: application/json")
    assert code == 10 and out == ""
    assert err.startswith("error: no recorded response for GET https://en.wikipedia.org/w/api.php?")
    assert "query parameter 'formatversion' is '2' in the recording, '1' in the request" in err
    assert "Traceback" not in err
    code, out, err = run("replay", "lookup", "-X", "POST", "--url", LLM, "--data", "{}", "--json",
                         "-H", "Content-Type: application/json")
    assert code == 10
    result = json.loads(out)
    assert result["error"] == "not_found" and result["request"] == {"method": "POST", "url": LLM}
    assert result["nearest"][0]["differences"][0]["kind"] == "header"  # the recording's Authorization
    assert {item["name"] for item in result["nearest"][0]["differences"]} >= {"$.model", "$.messages"}


def test_bad_input_is_one_sentence_with_its_exit_code(run: Run, tmp_path: Path) -> None:
    code, _, err = run("replay", "lookup", "--url", "https://h.example/", "-H", "no colon")
    assert code == 2 and "'no colon' is not 'NAME: VALUE'" in err
    code, _, err = run("replay", "lookup", "--url", "/relative")
    assert code == 3 and err.startswith("error: at $.url: URL '/relative' has no scheme or host")
    code, _, err = run("replay", "lookup", "--url", "https://h.example/", "--as-of", "yesterday")
    assert code == 3 and "as_of 'yesterday'" in err
    code, _, err = run("replay", "lookup", "--url", "https://h.example/", "--data", f"@{tmp_path / 'none'}")
    assert code == 3 and "cannot read the request body" in err
    (tmp_path / "rules.json").write_text('{"rules": [{"ignore_body": ["x"]}]}')
    code, _, err = run("replay", "lookup", "--url", "https://h.example/", "--rules", str(tmp_path / "rules.json"))
    assert code == 3 and "$.rules[0].ignore_body[0]" in err


def test_reindex_catches_up_and_rebuilds(run: Run) -> None:
    code, out, err = run("replay", "reindex", "--json")
    assert code == 0, err
    assert json.loads(out)["requests"] == 14
    code, out, err = run("replay", "reindex", "--rebuild")
    assert code == 0 and out.strip() == "read 14 event(s); the index holds 14 recorded request(s)"


def test_every_replay_command_has_help(run: Run) -> None:
    for command in (("replay",), ("replay", "lookup"), ("replay", "reindex")):
        code, out, _ = run(*command, "--help")
        assert code == 0 and "Usage: eventlog" in out
