"""Record against a real HTTP server, then replay with the network blocked: httpx (sync, async) and requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests

from eventlog.app.lake import Lake
from eventlog.errors import InputError, ReplayMissError
from eventlog.replay import AsyncHttpxTransport, HttpxTransport, Mode, Replayer, RequestsAdapter
from tests.replay.conftest import BINARY, GZIPPED_TEXT, Server


def _httpx_get(lake: Lake, mode: Mode, url: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(transport=HttpxTransport(lake, mode=mode)) as client:
        response = client.get(url, **kwargs)
        response.read()
        return response


def _requests_get(lake: Lake, mode: Mode, url: str, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:
        session.mount("http://", RequestsAdapter(lake, mode=mode))
        return session.get(url, **kwargs)


def _async_get(lake: Lake, mode: Mode, url: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=AsyncHttpxTransport(lake, mode=mode)) as client:
            response = await client.get(url, **kwargs)
            await response.aread()
            return response

    return asyncio.run(run())


def _observed(response: httpx.Response | requests.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    if isinstance(response, httpx.Response):
        headers = [(k.decode(), v.decode()) for k, v in response.headers.raw]
    else:
        headers = list(response.raw.headers.items())
    return response.status_code, sorted(headers), response.content


CLIENTS: dict[str, Callable[..., httpx.Response | requests.Response]] = {
    "httpx": _httpx_get, "httpx-async": _async_get, "requests": _requests_get}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("path", ["/items?page=2&lang=en", "/bytes", "/missing"])
def test_record_then_replay_gives_back_status_headers_and_body_bytes(
        lake: Lake, server: Server, client: str, path: str) -> None:
    call = CLIENTS[client]
    recorded = _observed(call(lake, "record", server.base + path))
    assert len(server.calls) == 1
    if path == "/bytes":
        assert recorded[2] == BINARY
    assert ("Content-Length", str(len(recorded[2]))) in recorded[1]

    blocked = pytest.MonkeyPatch()
    blocked.setattr("socket.socket.connect", _refuse)
    try:
        for replay in CLIENTS.values():  # recorded by one client, replayed by every one
            assert _observed(replay(lake, "replay", server.base + path)) == recorded
    finally:
        blocked.undo()
    assert len(server.calls) == 1


def _refuse(self: object, address: object) -> None:
    raise OSError(f"network blocked: connect to {address!r}")


def test_replay_mode_never_opens_a_socket(lake: Lake, server: Server, block_network: list[object]) -> None:
    with pytest.raises(httpx.ConnectError):
        _httpx_get(lake, "record", server.base + "/items")
    assert block_network, "the blocked connect was reached by the record mode"
    block_network.clear()
    with pytest.raises(ReplayMissError):
        _httpx_get(lake, "replay", server.base + "/items")
    with pytest.raises(ReplayMissError):
        _requests_get(lake, "replay", server.base + "/items")
    with pytest.raises(ReplayMissError):
        _async_get(lake, "replay", server.base + "/items")
    assert block_network == []
    assert server.calls == []


def test_replay_answers_with_the_network_blocked(lake: Lake, server: Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _httpx_get(lake, "record", server.base + "/items?page=1")
    attempts: list[object] = []

    def refuse(self: object, address: object) -> None:
        attempts.append(address)
        raise OSError("network blocked")

    monkeypatch.setattr("socket.socket.connect", refuse)
    assert json.loads(_httpx_get(lake, "replay", server.base + "/items?page=1").content)["query"] == {"page": ["1"]}
    assert json.loads(_requests_get(lake, "replay", server.base + "/items?page=1").content)["version"] == 1
    assert json.loads(_async_get(lake, "replay", server.base + "/items?page=1").content)["path"] == "/items"
    assert attempts == []
    assert len(server.calls) == 1


def _chat(client: httpx.Client, prompt: str, *, key: str) -> dict[str, Any]:
    response = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                           json={"model": "example-small", "temperature": 0.2,
                                 "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": prompt}]})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def test_llm_json_post_replays_by_its_body_and_the_secret_never_reaches_the_lake(
        lake: Lake, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-live0000000000000000000001secret"
    with httpx.Client(base_url=server.base, transport=HttpxTransport(lake, mode="record")) as client:
        first = _chat(client, "What is a ledger?", key=key)
        second = _chat(client, "What is a lake?", key=key)
    assert first["choices"][0]["message"]["content"] == "echo: What is a ledger?"
    segments = b"".join(path.read_bytes() for path in (lake.root / "log" / "segments").iterdir())
    assert key.encode() not in segments and b"[REDACTED]" in segments

    monkeypatch.setattr("socket.socket.connect", _refuse)
    other_key = "sk-live0000000000000000000002other"
    with httpx.Client(base_url=server.base, transport=HttpxTransport(lake)) as client:
        assert _chat(client, "What is a lake?", key=key) == second
        assert _chat(client, "What is a ledger?", key=other_key) == first
        with pytest.raises(ReplayMissError) as missed:
            _chat(client, "What is a river?", key=key)
    assert "$.messages[1].content" in str(missed.value)
    assert len(server.calls) == 2


def test_new_episodes_replays_what_is_known_and_records_the_rest(lake: Lake, server: Server) -> None:
    with httpx.Client(base_url=server.base, transport=HttpxTransport(lake, mode="new_episodes")) as client:
        assert client.get("/items?page=1").json()["version"] == 1
        server.version = 2
        assert client.get("/items?page=1").json()["version"] == 1  # known: replayed
        assert client.get("/items?page=2").json()["version"] == 2  # new: recorded
    assert [path for _, path in server.calls] == ["/items?page=1", "/items?page=2"]
    with httpx.Client(base_url=server.base, transport=HttpxTransport(lake)) as client:
        assert client.get("/items?page=2").json()["version"] == 2


def test_requests_adapter_records_a_form_post_and_replays_it(lake: Lake, server: Server) -> None:
    with requests.Session() as session:
        session.mount("http://", RequestsAdapter(lake, mode="record"))
        live = session.post(server.base + "/form", data={"b": "2", "a": "1"})
    with requests.Session() as session:
        session.mount("http://", RequestsAdapter(lake))
        replayed = session.post(server.base + "/form", data={"a": "1", "b": "2"})  # field order does not matter
        assert replayed.content == live.content
        with pytest.raises(ReplayMissError) as missed:
            session.post(server.base + "/form", data={"a": "1", "b": "3"})
    assert "body at $.b" in str(missed.value)


def test_a_secret_in_a_response_header_is_replayed_as_its_redaction_marker(lake: Lake, server: Server) -> None:
    live = _requests_get(lake, "record", server.base + "/login")
    assert live.headers["Set-Cookie"] == "session=s3cr3t-value"
    replayed = _requests_get(lake, "replay", server.base + "/login")
    assert replayed.headers["Set-Cookie"] == "[REDACTED]"
    assert replayed.content == live.content


def test_an_adapter_takes_a_replayer_with_its_own_mode(lake: Lake, server: Server) -> None:
    with Replayer(lake, mode="record", dataset="local") as replayer:
        with httpx.Client(transport=HttpxTransport(replayer)) as client:
            assert client.get(server.base + "/items?page=5").json()["query"] == {"page": ["5"]}
        with pytest.raises(InputError, match="set the mode and options on the Replayer"):
            RequestsAdapter(replayer, mode="replay")
        with pytest.raises(InputError, match="set the mode and options on the Replayer"):
            HttpxTransport(replayer, dataset="other")
    with Replayer(lake, dataset="local") as replayer, requests.Session() as session:
        session.mount("http://", RequestsAdapter(replayer))
        assert session.get(server.base + "/items?page=5").json()["query"] == {"page": ["5"]}
    assert len(server.calls) == 1


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_compressed_response_is_stored_decoded_and_replayed_without_its_content_encoding(
        lake: Lake, server: Server, client: str) -> None:
    live = CLIENTS[client](lake, "record", server.base + "/gzip")
    assert live.content == GZIPPED_TEXT.encode()
    replayed = CLIENTS[client](lake, "replay", server.base + "/gzip")
    assert _observed(replayed) == _observed(live)
    assert "Content-Encoding" not in replayed.headers
    assert replayed.headers["Content-Length"] == str(len(GZIPPED_TEXT.encode()))
    event = lake.get(_last_exchange_id(lake))
    assert event is not None and event.body["response"]["body"] == GZIPPED_TEXT


def _last_exchange_id(lake: Lake) -> str:
    *_, last = lake.events()
    return str(last.body["exchange_id"])


def test_a_streamed_read_of_a_replayed_response_gives_the_recorded_bytes(lake: Lake, server: Server) -> None:
    _httpx_get(lake, "record", server.base + "/bytes")
    with httpx.Client(transport=HttpxTransport(lake)) as client, client.stream("GET", server.base + "/bytes") as reply:
        assert b"".join(reply.iter_bytes()) == BINARY
