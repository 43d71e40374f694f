"""The `eventlog` command group: global options, output in text or JSON, errors mapped to exit codes.

Exit codes: 0 success; 1 unexpected error; 2 usage error; 3 bad input; 4 lake missing or unreadable;
5 writer lock busy; 6 integrity failure (verify); 7 database error; 8 archive error; 9 sync conflict under
`fail`; 10 not found.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from eventlog import extensions
from eventlog.app.lake import Lake, default_lake_path
from eventlog.errors import EventLogError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """What every command gets: the lake path and the output mode."""

    lake_path: Path
    as_json: bool

    def open_lake(self) -> Lake:
        return Lake.open(self.lake_path)


def json_option(func: F) -> F:
    """`--json` on a command, as well as before it; either turns on JSON output."""

    def turn_on(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(AppContext).as_json = True

    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=turn_on,
                        help="Print the result as JSON for scripts.")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lake", "lake_path", type=click.Path(path_type=Path), default=None,
              help="Lake folder (default: $EVENTLOG_LAKE, else ./lake).")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON for scripts.")
@click.version_option(package_name="exchange-eventlog")
@click.pass_context
def cli(ctx: click.Context, lake_path: Path | None, as_json: bool) -> None:
    """Capture request/response exchanges into an immutable, content-addressed log; mirror and rebuild from it."""
    ctx.obj = AppContext(lake_path=lake_path or default_lake_path(), as_json=as_json)
    missing = extensions.missing()
    if missing and sys.stderr.isatty():
        click.echo(f"note: {' and '.join(missing)} not built; the pure-Python paths serve, slower (set "
                   f"{extensions.PURE_ENV}=1 to choose them and silence this)", err=True)


def app(ctx: click.Context) -> AppContext:
    obj = ctx.find_object(AppContext)
    assert obj is not None
    return obj


def emit(ctx: click.Context, result: Any, text: str | Callable[[], str]) -> None:
    """Print a command's result: JSON when asked for, else the human text."""
    if app(ctx).as_json:
        click.echo(msgspec.json.encode(result).decode())
    else:
        click.echo(text() if callable(text) else text)


class Progress:
    """A one-line counter on a terminal's stderr; silent when stderr is not a terminal or JSON is asked for."""

    def __init__(self, ctx: click.Context, label: str) -> None:
        self.enabled = sys.stderr.isatty() and not app(ctx).as_json
        self.label = label
        self.shown = False

    def __call__(self, count: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{self.label}: {count:,}")
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def console() -> None:
    """The `eventlog` program: `main` in a process of its own."""
    # An ingest keeps a chunk of records alive and makes hundreds of containers per record. What is loaded by
    # now lives as long as the process: frozen, full collections do not walk it. Collecting the youngest
    # generation every 50,000 net allocations instead of 700 leaves cycles a little longer uncollected. Together
    # they take garbage collection from about 14% of an ingest's time to under 1%.
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    main()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group and turn library errors into one sentence and an exit code."""
    try:
        cli.main(args=argv, prog_name="eventlog", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EventLogError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
