"""The JSON shape of an HTTP exchange's request and response, as replay writes and reads them.

A request is ``{"method", "url", "headers", <body>}`` and a response ``{"status", "headers", <body>}``; docs/replay.md
describes both field by field. Headers are an object from name (as sent) to a string, or to a list of strings for a
repeated name; a list of ``[name, value]`` pairs is read too. The body is one of ``"json"`` (a request body sent as
JSON, kept as its value), ``"body"`` (UTF-8 text, kept as a string so its bytes come back exactly) or
``"body_base64"`` (any other bytes); no key means no body. A response recorded elsewhere whose ``"body"`` is a JSON
value rather than a string is served as that value's compact JSON.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

__all__ = ["body_bytes", "content_type", "header_pairs", "headers_object", "is_json_type", "request_dict", "response_dict"]

# Headers a recorded response does not keep: the body is stored decoded and whole, so its transfer framing and
# compression no longer describe it.
_FRAMING: Final = frozenset({"content-encoding", "transfer-encoding"})
_decode_json: Final = msgspec.json.decode
_encode_json: Final = msgspec.json.encode


def request_dict(method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None) -> dict[str, Any]:
    """The JSON shape of a request from what a client sends: a JSON body (by its content type) becomes ``json``."""
    shaped = headers_object(headers)
    request: dict[str, Any] = {"method": method.upper(), "url": url, "headers": shaped}
    if body:
        if is_json_type(content_type(shaped)):
            try:
                request["json"] = _decode_json(body)
                return request
            except msgspec.DecodeError:
                pass  # not JSON after all: kept as text or bytes below
        request.update(_body_field(body))
    return request


def response_dict(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The JSON shape of a response whose body was read whole and decoded: its framing headers are dropped and a
    Content-Length it had is set to the decoded length."""
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in _FRAMING:
            continue
        kept.append((name, str(len(body)) if lower == "content-length" else value))
    response: dict[str, Any] = {"status": status, "headers": headers_object(kept)}
    if body:
        response.update(_body_field(body))
    return response


def headers_object(headers: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Headers as a JSON object: names as first spelled, a repeated name (in any case) holding a list of values."""
    out: dict[str, str | list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in headers:
        key = spelling.setdefault(name.lower(), name)
        held = out.get(key)
        if held is None:
            out[key] = value
        elif isinstance(held, list):
            held.append(value)
        else:
            out[key] = [held, value]
    return out


def header_pairs(headers: Any) -> list[tuple[str, str]]:
    """(name, value) pairs of headers in either JSON shape; values that are not strings are written as JSON."""
    pairs: list[tuple[str, str]] = []
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, list):
        items = (item for item in headers if isinstance(item, list | tuple) and len(item) == 2)
    else:
        return pairs
    for name, value in items:
        for one in value if isinstance(value, list) else (value,):
            pairs.append((str(name), one if isinstance(one, str) else _encode_json(one).decode()))
    return pairs


def content_type(headers: Any) -> str:
    """The media type of a Content-Type header, lower-cased and without parameters ("" when there is none)."""
    for name, value in header_pairs(headers):
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def body_bytes(message: Mapping[str, Any]) -> bytes:
    """The body bytes of a request or response in this shape (b"" when it has none).

    Raises ValueError when ``body_base64`` is not base64.
    """
    if "body_base64" in message:
        try:
            return base64.b64decode(message["body_base64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise ValueError(f"body_base64 is not base64: {exc}") from None
    body = message.get("body")
    if isinstance(body, str):
        return body.encode()
    if body is not None:
        return bytes(_encode_json(body))
    if "json" in message:
        return bytes(_encode_json(message["json"]))
    return b""


def is_json_type(media_type: str) -> bool:
    """Whether a media type names JSON (application/json, application/problem+json, ...)."""
    return media_type == "application/json" or media_type.endswith("+json") or media_type.endswith("/json")


def _body_field(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode()}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode()}
