"""Replay commands: answer one request from the recorded exchanges, or say why none matches; keep the index."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from eventlog.cli.app import Progress, app, cli, emit, json_option
from eventlog.errors import InputError, ReplayMissError
from eventlog.replay import RecordedResponse, Replayer


@cli.group(name="replay")
def replay_group() -> None:
    """Answer HTTP requests from the lake's recorded exchanges (see docs/replay.md)."""


def _replay_options(func: Any) -> Any:
    for option in reversed((
        click.option("--dataset", help="Only exchanges of this dataset (source_system)."),
        click.option("--rules", "rules_path", type=click.Path(path_type=Path, dir_okay=False),
                     help="Match rules file (default: <lake>/replay/rules.json when it exists)."),
    )):
        func = option(func)
    return func


@replay_group.command(name="lookup")
@click.option("--method", "-X", default="GET", show_default=True, help="HTTP method.")
@click.option("--url", required=True, help="Request URL, with its query string.")
@click.option("--header", "-H", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="A request header; repeat for more.")
@click.option("--data", "-d", help="Request body; @FILE reads it from a file.")
@click.option("--as-of", help="Answer as observed at this time (ISO 8601 with a UTC offset).")
@_replay_options
@json_option
@click.pass_context
def lookup_command(ctx: click.Context, method: str, url: str, headers: tuple[str, ...], data: str | None,
                   as_of: str | None, dataset: str | None, rules_path: Path | None) -> None:
    """Print the recorded response to a request, or (exit 10) the nearest recorded requests and what differs."""
    pairs = [_header(text) for text in headers]
    body = _body(data)
    with app(ctx).open_lake() as lake, Replayer(lake, dataset=dataset, rules=rules_path, as_of=as_of) as replayer:
        try:
            found = replayer.lookup(replayer.request(method, url, headers=pairs, body=body))
        except ReplayMissError as miss:
            if not app(ctx).as_json:
                raise
            emit(ctx, {"error": "not_found", "message": str(miss), "request": miss.request,
                       "nearest": miss.nearest}, "")
            sys.exit(miss.exit_code)
    emit(ctx, _response_json(found), lambda: _response_text(found))


@replay_group.command(name="reindex")
@click.option("--rebuild", is_flag=True, help="Truncate the index of these rules and fold the whole log again.")
@_replay_options
@json_option
@click.pass_context
def reindex_command(ctx: click.Context, rebuild: bool, dataset: str | None, rules_path: Path | None) -> None:
    """Bring replay/index.sqlite up to the log (it also catches up by itself when a look-up opens it)."""
    progress = Progress(ctx, "events read")
    with app(ctx).open_lake() as lake, Replayer(lake, dataset=dataset, rules=rules_path) as replayer:
        read = replayer.index.rebuild(progress=progress) if rebuild else replayer.index.catch_up(progress=progress)
        count = replayer.index.count()
    progress.done()
    emit(ctx, {"events_read": read, "requests": count, "rules": replayer.rules.identity},
         f"read {read} event(s); the index holds {count} recorded request(s)")


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise click.BadParameter(f"{text!r} is not 'NAME: VALUE'", param_hint="--header")
    return name.strip(), value.strip()


def _body(data: str | None) -> bytes | None:
    if data is None or not data.startswith("@"):
        return None if data is None else data.encode()
    try:
        return Path(data[1:]).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the request body: {exc.strerror}", source=data[1:]) from None


def _response_json(found: RecordedResponse) -> dict[str, Any]:
    result: dict[str, Any] = {"status": found.status, "headers": [list(pair) for pair in found.headers]}
    try:
        result["body"] = found.body.decode()
    except UnicodeDecodeError:
        result["body_base64"] = base64.b64encode(found.body).decode()
    result.update(exchange_id=found.exchange_id, observed_at_utc=found.observed_at_utc, seq=found.seq,
                  dataset=found.dataset, content_sha256=found.content_sha256)
    return result


def _response_text(found: RecordedResponse) -> str:
    lines = [f"{found.status}  (exchange {found.exchange_id}, dataset {found.dataset}, observed "
             f"{found.observed_at_utc}, seq {found.seq})"]
    lines += [f"{name}: {value}" for name, value in found.headers]
    try:
        text = found.body.decode()
    except UnicodeDecodeError:
        text = f"<{len(found.body)} bytes that are not UTF-8; --json gives them as body_base64>"
    return "\n".join(lines) + "\n\n" + text
