"""Replay for connectors: recorded responses served to HTTP clients from the lake, misses that explain themselves.

`Replayer` looks requests up by fingerprint in a projection of the log (replay/index.sqlite) and records live
exchanges through the lake's redaction. The adapters `HttpxTransport`, `AsyncHttpxTransport` and `RequestsAdapter`
plug it into httpx and requests; they are imported on first use, so httpx and requests (the `[httpx]` and
`[requests]` extras) are needed only by code that uses them. docs/replay.md is the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventlog.errors import ReplayMissError
from eventlog.replay.fingerprint import Difference, fingerprint, normalise
from eventlog.replay.replayer import MODES, Mode, Nearest, RecordedResponse, Replayer
from eventlog.replay.rules import MatchRule, Rules

if TYPE_CHECKING:
    from eventlog.replay.httpx_transport import AsyncHttpxTransport, HttpxTransport
    from eventlog.replay.requests_adapter import RequestsAdapter

__all__ = [
    "MODES",
    "AsyncHttpxTransport",
    "Difference",
    "HttpxTransport",
    "MatchRule",
    "Mode",
    "Nearest",
    "RecordedResponse",
    "ReplayMissError",
    "Replayer",
    "RequestsAdapter",
    "Rules",
    "fingerprint",
    "normalise",
]

_ADAPTERS = {
    "HttpxTransport": "eventlog.replay.httpx_transport",
    "AsyncHttpxTransport": "eventlog.replay.httpx_transport",
    "RequestsAdapter": "eventlog.replay.requests_adapter",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventlog.replay' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
