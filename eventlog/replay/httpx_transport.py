"""httpx transports that answer from the lake: `HttpxTransport` for httpx.Client, `AsyncHttpxTransport` for
httpx.AsyncClient (the OpenAI and Anthropic Python clients take one as `http_client`).

Only this module imports httpx (the `[httpx]` extra). In replay mode no live transport is ever made, so no socket is
opened. A live response is read whole (and decoded) before it is recorded and handed to the client; recording
appends to the lake, with its fsync, on the calling thread, also in the async transport.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from eventlog.replay.replayer import LakeLike, Mode, RecordedResponse, Replayer, open_replayer
from eventlog.replay.rules import MatchRule, Rules

__all__ = ["AsyncHttpxTransport", "HttpxTransport"]

RulesArg = Rules | Sequence[MatchRule | Mapping[str, Any]] | str | os.PathLike[str] | None


class HttpxTransport(httpx.BaseTransport):
    """A transport for httpx.Client that replays, records or both (`mode`: replay, record, new_episodes).

    `lake` is a Lake, a lake folder, or a Replayer (which then brings its own mode and options). `transport` is
    the live transport used to record (default: httpx.HTTPTransport(), made on first need). A miss in replay mode
    raises ReplayMissError from the client call.
    """

    def __init__(self, lake: LakeLike | Replayer | str | os.PathLike[str], mode: Mode | None = None, *,
                 dataset: str | None = None, rules: RulesArg = None, as_of: datetime | str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.replayer, self._owns = open_replayer(lake, mode, dataset=dataset, rules=rules, as_of=as_of)
        self._live = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        shaped = self.replayer.request(request.method, str(request.url), headers=_pairs(request.headers),
                                       body=request.read())
        recorded = self.replayer.answer(shaped)
        if recorded is not None:
            return _replayed(recorded, request)
        if self._live is None:
            self._live = httpx.HTTPTransport()
        live = self._live.handle_request(request)
        try:
            body = live.read()
        finally:
            live.close()
        status, headers, body = self.replayer.record_live(shaped, live.status_code, _pairs(live.headers), body)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request,
                              extensions=_extensions(live))

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        if self._owns:
            self.replayer.close()


class AsyncHttpxTransport(httpx.AsyncBaseTransport):
    """A transport for httpx.AsyncClient; the same as HttpxTransport (live default: httpx.AsyncHTTPTransport())."""

    def __init__(self, lake: LakeLike | Replayer | str | os.PathLike[str], mode: Mode | None = None, *,
                 dataset: str | None = None, rules: RulesArg = None, as_of: datetime | str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.replayer, self._owns = open_replayer(lake, mode, dataset=dataset, rules=rules, as_of=as_of)
        self._live = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shaped = self.replayer.request(request.method, str(request.url), headers=_pairs(request.headers),
                                       body=await request.aread())
        recorded = self.replayer.answer(shaped)
        if recorded is not None:
            return _replayed(recorded, request)
        if self._live is None:
            self._live = httpx.AsyncHTTPTransport()
        live = await self._live.handle_async_request(request)
        try:
            body = await live.aread()
        finally:
            await live.aclose()
        status, headers, body = self.replayer.record_live(shaped, live.status_code, _pairs(live.headers), body)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request,
                              extensions=_extensions(live))

    async def aclose(self) -> None:
        if self._live is not None:
            await self._live.aclose()
        if self._owns:
            self.replayer.close()


def _pairs(headers: httpx.Headers) -> list[tuple[str, str]]:
    """Headers with their names as sent (httpx's own views lower-case them)."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers.raw]


def _replayed(recorded: RecordedResponse, request: httpx.Request) -> httpx.Response:
    # A ByteStream, not `content=`: httpx would add a Content-Length the recording may not have had.
    return httpx.Response(recorded.status, headers=list(recorded.headers), stream=httpx.ByteStream(recorded.body),
                          request=request)


def _extensions(live: httpx.Response) -> dict[str, Any]:
    return {key: value for key, value in live.extensions.items() if key in ("http_version", "reason_phrase")}
