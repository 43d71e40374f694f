"""Request fingerprints: the canonical JSON of a normalised request, and what differs between two requests.

Normalisation keeps what a server answers to and drops what it does not: the method (upper-cased); scheme and host
lower-cased, the default port dropped; the path; query parameters as sorted (name, value) pairs; headers by
lower-cased name, without the ones the rules (and `BUILTIN_IGNORED_HEADERS`) ignore; the body as its JSON value
when it is JSON, its fields when it is a form, else its SHA-256. The request must already be redacted: a live
request and the recorded one then normalise alike, whatever secret the live one carried.

The fingerprint is the SHA-256 of the canonical JSON (RFC 8785) of that normal form, so it is stable across
machines and releases of the same `NORMALISATION_VERSION`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote_plus, urlencode, urlsplit

import msgspec

from eventlog.errors import InputError
from eventlog.format.canonical import canonical_json, format_path
from eventlog.replay.rules import WILDCARD, PathStep, Rules
from eventlog.replay.shape import body_bytes, content_type, header_pairs, is_json_type

__all__ = ["Difference", "describe", "differences", "display_url", "fingerprint", "normalise"]

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
FORM_TYPE: Final = "application/x-www-form-urlencoded"
# Route parts weigh more than any count of query, header or body differences when ranking the nearest requests.
_ROUTE_WEIGHT: Final = 100
_MAX_DIFFERENCES: Final = 20
_VALUE_WIDTH: Final = 60
_COMPARED: Final = 200  # characters of two differing strings that ranking compares


def normalise(request: Mapping[str, Any], rules: Rules) -> dict[str, Any]:
    """The normal form of a (redacted) request in the shape of eventlog.replay.shape.

    Raises InputError naming the JSON path of a request that has no URL, a URL without a host, or a bad port.
    """
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise InputError("a request needs a URL string", path="$.url")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        raise InputError(f"URL {url!r} has no scheme or host", path="$.url")
    try:
        port = parts.port
    except ValueError:
        raise InputError(f"URL {url!r} has a port that is not a number from 0 to 65535", path="$.url") from None
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    applied = rules.applied(host)
    query = sorted([name, value] for name, value in parse_query(parts.query) if not applied.query_ignored(name))
    headers: dict[str, str] = {}
    for name, value in header_pairs(request.get("headers")):
        lower = name.lower()
        if applied.header_ignored(lower):
            continue
        headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
    method = request.get("method")
    return {"method": method.upper() if isinstance(method, str) and method else "GET", "scheme": scheme,
            "host": host, "port": port, "path": parts.path or "/", "query": query, "headers": headers,
            "body": _body(request, applied.ignore_body)}


def parse_query(text: str) -> list[tuple[str, str]]:
    """(name, value) pairs of a query string or form body, as urllib's parse_qsl(keep_blank_values=True) gives
    them, in a quarter of its time: it runs for every look-up, and most parts need no unquoting."""
    pairs = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        pairs.append((name, value))
    return pairs


def fingerprint(normal: Mapping[str, Any]) -> bytes:
    """SHA-256 (32 bytes) of the canonical JSON of a normal form."""
    return hashlib.sha256(canonical_json(normal)).digest()


def display_url(normal: Mapping[str, Any]) -> str:
    """The URL of a normal form, as messages show it (query sorted, ignored parts left out)."""
    port = "" if normal["port"] is None else f":{normal['port']}"
    query = f"?{urlencode([tuple(pair) for pair in normal['query']], safe='|,:/@')}" if normal["query"] else ""
    return f"{normal['scheme']}://{normal['host']}{port}{normal['path']}{query}"


def _body(request: Mapping[str, Any], ignored: tuple[tuple[PathStep, ...], ...]) -> dict[str, Any] | None:
    if "json" in request:
        return {"json": _without(request["json"], ignored)}
    body = request.get("body")
    if body is not None and not isinstance(body, str):  # captured elsewhere as a JSON value
        return {"json": _without(body, ignored)}
    try:
        raw = body_bytes(request)
    except ValueError as exc:
        raise InputError(str(exc), path="$.body_base64") from None
    if not raw:
        return None
    media = content_type(request.get("headers"))
    if is_json_type(media):
        try:
            return {"json": _without(msgspec.json.decode(raw), ignored)}
        except msgspec.DecodeError:
            pass  # declared JSON, sent something else: compared by its bytes
    if media == FORM_TYPE:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None:
            fields: dict[str, list[str]] = {}
            for name, value in parse_query(text):
                fields.setdefault(name, []).append(value)
            return {"form": _without(fields, ignored)}
    return {"sha256": hashlib.sha256(raw).hexdigest()}


def _without(value: Any, paths: tuple[tuple[PathStep, ...], ...]) -> Any:
    """A copy of a JSON value without the parts at `paths` (removed from objects, nulled in arrays)."""
    if not paths:
        return value
    value = msgspec.json.decode(msgspec.json.encode(value))  # a private copy to cut from
    for path in paths:
        _remove(value, path)
    return value


def _remove(node: Any, path: tuple[PathStep, ...]) -> None:
    step, rest = path[0], path[1:]
    if step is WILDCARD:
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        if not rest:
            if isinstance(node, dict):
                node.clear()
            elif isinstance(node, list):
                node[:] = [None] * len(node)
            return
        for child in children:
            _remove(child, rest)
        return
    if isinstance(node, dict) and isinstance(step, str) and step in node:
        if rest:
            _remove(node[step], rest)
        else:
            del node[step]
    elif isinstance(node, list) and isinstance(step, int) and -len(node) <= step < len(node):
        if rest:
            _remove(node[step], rest)
        else:
            node[step] = None  # removing would shift the items after it and make them all differ


class Difference(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One way a recorded request differs from the one asked for.

    `kind` is method, scheme, host, port, path, query, header or body; `name` the query parameter, header name or
    JSON path of the body (``$`` for the whole body); `recorded` / `requested` the two values, left out (UNSET)
    where that side has none.
    """

    kind: str
    name: str = ""
    recorded: Any = msgspec.UNSET
    requested: Any = msgspec.UNSET


def differences(recorded: Mapping[str, Any], requested: Mapping[str, Any]) -> list[Difference]:
    """What differs between two normal forms: route parts first, then query, headers and body (at most 20)."""
    found: list[Difference] = [Difference(kind=part, recorded=recorded[part], requested=requested[part])
                               for part in ("method", "scheme", "host", "port", "path")
                               if recorded[part] != requested[part]]
    found += _multimap_differences("query", _pairs_map(recorded["query"]), _pairs_map(requested["query"]))
    found += _multimap_differences("header", recorded["headers"], requested["headers"])
    found += _body_differences(recorded["body"], requested["body"])
    return found[:_MAX_DIFFERENCES]


def distance(found: list[Difference]) -> int:
    """How far apart two requests are, for ranking: a route difference outweighs all others together."""
    return sum(_ROUTE_WEIGHT if item.kind in ("method", "scheme", "host", "port", "path") else 1 for item in found)


def closeness(found: list[Difference]) -> float:
    """How alike the differing values are (0 to 1 per difference, summed): ranks requests the same distance away,
    so that a prompt with one word changed comes before an unrelated one."""
    total = 0.0
    for item in found:
        if isinstance(item.recorded, str) and isinstance(item.requested, str):
            total += difflib.SequenceMatcher(None, item.recorded[:_COMPARED], item.requested[:_COMPARED]).ratio()
    return total


def _pairs_map(pairs: list[list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        held = out.get(name)
        out[name] = value if held is None else [*held, value] if isinstance(held, list) else [held, value]
    return out


def _multimap_differences(kind: str, recorded: Mapping[str, Any], requested: Mapping[str, Any]) -> list[Difference]:
    out = []
    for name in sorted(set(recorded) | set(requested)):
        if recorded.get(name, msgspec.UNSET) != requested.get(name, msgspec.UNSET):
            out.append(Difference(kind=kind, name=name, recorded=recorded.get(name, msgspec.UNSET),
                                  requested=requested.get(name, msgspec.UNSET)))
    return out


def _body_differences(recorded: dict[str, Any] | None, requested: dict[str, Any] | None) -> list[Difference]:
    if recorded == requested:
        return []
    if recorded is None or requested is None or set(recorded) != set(requested) or "sha256" in recorded:
        return [Difference(kind="body", name="$", recorded=_body_summary(recorded),
                           requested=_body_summary(requested))]
    kind = next(iter(recorded))
    out: list[Difference] = []
    _json_differences(recorded[kind], requested[kind], [], out)
    return out


def _body_summary(body: dict[str, Any] | None) -> Any:
    if body is None:
        return msgspec.UNSET
    if "sha256" in body:
        return f"bytes with SHA-256 {body['sha256'][:12]}"
    return body.get("json", body.get("form"))


def _json_differences(recorded: Any, requested: Any, path: list[str | int], out: list[Difference]) -> None:
    if len(out) >= _MAX_DIFFERENCES:
        return
    if isinstance(recorded, dict) and isinstance(requested, dict):
        for key in sorted(set(recorded) | set(requested)):
            if key not in recorded or key not in requested:
                out.append(Difference(kind="body", name=format_path([*path, key]),
                                      recorded=recorded.get(key, msgspec.UNSET),
                                      requested=requested.get(key, msgspec.UNSET)))
            else:
                _json_differences(recorded[key], requested[key], [*path, key], out)
        return
    if isinstance(recorded, list) and isinstance(requested, list):
        for index in range(max(len(recorded), len(requested))):
            if index >= len(recorded) or index >= len(requested):
                out.append(Difference(kind="body", name=format_path([*path, index]),
                                      recorded=recorded[index] if index < len(recorded) else msgspec.UNSET,
                                      requested=requested[index] if index < len(requested) else msgspec.UNSET))
            else:
                _json_differences(recorded[index], requested[index], [*path, index], out)
        return
    if type(recorded) is not type(requested) or recorded != requested:
        out.append(Difference(kind="body", name=format_path(path), recorded=recorded, requested=requested))


_LABELS: Final = {"query": "query parameter", "header": "header", "body": "body at"}


def describe(item: Difference) -> str:
    """One phrase for a difference: ``query parameter 'page' is '2' in the recording, '3' in the request``."""
    if item.kind in _LABELS:
        subject = (f"body at {item.name}" if item.kind == "body" and item.name != "$" else
                   "body" if item.kind == "body" else f"{_LABELS[item.kind]} {item.name!r}")
    else:
        subject = item.kind
    return f"{subject} is {_show(item.recorded)} in the recording, {_show(item.requested)} in the request"


def _show(value: Any) -> str:
    if value is msgspec.UNSET:
        return "absent"
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= _VALUE_WIDTH else text[:_VALUE_WIDTH - 3] + "..."
