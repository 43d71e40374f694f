"""Fixtures for replay tests: a lake, a real HTTP server on 127.0.0.1, and a network that refuses connections."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from eventlog.app.lake import Lake

# Bytes that are not UTF-8, served by /bytes: they must come back exactly.
BINARY = bytes(range(256)) + b"\xff\xfe\x00tail"
# Text that /gzip serves compressed.
GZIPPED_TEXT = "compressed on the wire, stored decoded: " + "ledger " * 200


class Server:
    """What the test server has been asked, and a version number tests bump to change its answers."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.version = 1
        self.calls: list[tuple[str, str]] = []


class _Handler(BaseHTTPRequestHandler):
    server_version = "ReplayTest/1.0"
    state: Server

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        state = self.state
        state.calls.append((self.command, self.path))
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/bytes":
            self._send(200, [("Content-Type", "application/octet-stream")], BINARY)
        elif parts.path == "/v1/chat/completions":
            prompt = json.loads(body)["messages"][-1]["content"]
            reply = {"id": "cmpl-1", "object": "chat.completion", "version": state.version,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {prompt}"}}]}
            self._send(200, [("Content-Type", "application/json")], json.dumps(reply).encode())
        elif parts.path == "/gzip":
            self._send(200, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Encoding", "gzip")],
                       gzip.compress(GZIPPED_TEXT.encode(), mtime=0))
        elif parts.path == "/missing":
            self._send(404, [("Content-Type", "text/plain; charset=utf-8")], "nothing here: café".encode())
        else:
            page = {"path": parts.path, "query": query, "version": state.version,
                    "accept": self.headers.get("Accept")}
            self._send(200, [("Content-Type", "application/json; charset=utf-8"), ("X-Version", str(state.version)),
                             ("Link", "</items?page=2>; rel=next"), ("Link", "</items?page=9>; rel=last")]
                       + ([("Set-Cookie", "session=s3cr3t-value")] if "login" in parts.path else []),
                       json.dumps(page, sort_keys=True).encode())

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    """A real HTTP server on 127.0.0.1 in a thread of this process."""
    handler: type[_Handler] = type("Handler", (_Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state = Server(int(httpd.server_address[1]))
    handler.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    with Lake.init(tmp_path / "lake") as opened:
        yield opened


class NetworkBlocked(OSError):
    """Raised by any attempt to open a connection while the network is blocked (an OSError, so that the
    standard library closes the socket it made, as it does for a refused connection)."""


@pytest.fixture
def block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Make every socket connect fail (and note the attempt): a replay that tries the network fails loudly."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise NetworkBlocked(f"network blocked: connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts
