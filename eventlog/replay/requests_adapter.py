"""`RequestsAdapter`: a transport adapter for requests.Session that answers from the lake.

Only this module imports requests (the `[requests]` extra). Mount it on a session for the prefixes to replay
(`session.mount("https://", RequestsAdapter(lake))`). In replay mode it never calls the network: the parent
HTTPAdapter's `send`, which opens connections, runs only to record.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any

import requests
import requests.adapters
from urllib3 import HTTPHeaderDict, HTTPResponse

from eventlog.errors import InputError
from eventlog.replay.replayer import LakeLike, Mode, Replayer, open_replayer
from eventlog.replay.rules import MatchRule, Rules

__all__ = ["RequestsAdapter"]


class RequestsAdapter(requests.adapters.HTTPAdapter):
    """A requests transport adapter that replays, records or both (`mode`: replay, record, new_episodes).

    `lake` is a Lake, a lake folder, or a Replayer (which then brings its own mode and options); other keyword
    arguments go to HTTPAdapter (pool sizes, retries) for the live calls. A miss in replay mode raises
    ReplayMissError from the session call.
    """

    def __init__(self, lake: LakeLike | Replayer | str | os.PathLike[str], mode: Mode | None = None, *,
                 dataset: str | None = None,
                 rules: Rules | Sequence[MatchRule | Mapping[str, Any]] | str | os.PathLike[str] | None = None,
                 as_of: datetime | str | None = None, **adapter_options: Any) -> None:
        super().__init__(**adapter_options)
        self.replayer, self._owns = open_replayer(lake, mode, dataset=dataset, rules=rules, as_of=as_of)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        """Answer from the lake, or call the network and record, by the mode (see eventlog.replay.replayer)."""
        body = _body(request)
        shaped = self.replayer.request(request.method or "GET", request.url or "",
                                       headers=_text_pairs(request.headers.items()), body=body)
        recorded = self.replayer.answer(shaped)
        if recorded is not None:
            return self._response(request, recorded.status, recorded.headers, recorded.body)
        live = super().send(request, stream=False, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        content = live.content
        raw_headers = getattr(live.raw, "headers", None)
        pairs = list(raw_headers.items()) if isinstance(raw_headers, HTTPHeaderDict) else list(live.headers.items())
        status, headers, content = self.replayer.record_live(shaped, live.status_code, pairs, content)
        response = self._response(request, status, headers, content)
        response.elapsed = live.elapsed
        response.history = live.history
        return response

    def close(self) -> None:
        super().close()
        if self._owns:
            self.replayer.close()

    def _response(self, request: requests.PreparedRequest, status: int, headers: Iterable[tuple[str, str]],
                  body: bytes) -> requests.Response:
        held = HTTPHeaderDict()
        for name, value in headers:
            held.add(name, value)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        raw = HTTPResponse(body=io.BytesIO(body), headers=held, status=status, reason=reason,
                           preload_content=False, decode_content=False, request_method=request.method)
        return self.build_response(request, raw)


def _body(request: requests.PreparedRequest) -> bytes | None:
    body = request.body
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    read = getattr(body, "read", None)
    if read is None:  # a generator: it can be consumed once, so there is nothing to send after fingerprinting
        raise InputError("a request body given as an iterator cannot be replayed; pass bytes, text or a file")
    data = read()
    data = data.encode() if isinstance(data, str) else bytes(data)
    request.body = data  # consumed: the live call, if any, sends these bytes
    return data


def _text_pairs(items: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
    return [(name, value.decode("latin-1") if isinstance(value, bytes) else value) for name, value in items]
