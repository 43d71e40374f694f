"""The `eventlog` command group: global options, output in text or JSON, errors mapped to exit codes.

Exit codes: 0 success; 1 unexpected error; 2 usage error; 3 bad input; 4 lake missing or unreadable, or a file or
folder it needs cannot be used (full disk, read-only, a folder where a file belongs);
5 writer lock busy; 6 integrity failure (verify); 7 database error; 8 archive error; 9 sync conflict under
`fail`; 10 not found.
"""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from eventlog import extensions
from eventlog.app.lake import Lake, default_lake_path
from eventlog.errors import ConflictError, EventLogError
from eventlog.log.index import is_damaged

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
    """A progress bar on a terminal's stderr (count, total, rate, time left); silent when stderr is not a terminal
    or JSON is asked for.

    Call it with the running count. `total` is the expected count, or a function that computes it, called only
    when the bar is shown (so a pipe never pays for counting). Use it as a context manager, or call `done`.
    """

    def __init__(self, ctx: click.Context, label: str, *, total: int | Callable[[], int | None] | None = None,
                 unit: str = "events") -> None:
        self.enabled = sys.stderr.isatty() and not app(ctx).as_json
        self.label = label
        self.unit = unit
        self._total = total
        self._bar: Any = None
        self._task: Any = None
        self._started = time.monotonic()

    def _start(self) -> None:
        # Imported here: rich costs a few tens of milliseconds, which a piped or scripted run need not pay.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        total = self._total() if callable(self._total) else self._total
        self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[rate]}"), TextColumn("left"), TimeRemainingColumn(),
                        TextColumn("elapsed"), TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, rate="")
        self._started = time.monotonic()

    def __call__(self, count: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        task = self._bar.tasks[0]
        elapsed = time.monotonic() - self._started
        rate = f"{count / elapsed:,.0f} {self.unit}/s" if elapsed > 0 else ""
        if task.total is not None and count > task.total:
            self._bar.update(self._task, total=count)
        self._bar.update(self._task, completed=count, rate=rate)

    def set_total(self, total: int) -> None:
        """Change the expected count (when it becomes known after the work started)."""
        self._total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done()


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
    """Console entry point: run the group and turn library errors into one sentence and an exit code.

    Under `--json` an error is a JSON object on stderr too: {"error": sentence, "exit_code": n, "kind": class}.
    """
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args[:args.index("--")] if "--" in args else "--json" in args
    try:
        cli.main(args=argv, prog_name="eventlog", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 1, "Abort", as_json=as_json)
    except click.ClickException as exc:
        if as_json:
            _fail(exc.format_message(), exc.exit_code, type(exc).__name__, as_json=True)
        exc.show()
        sys.exit(exc.exit_code)
    except EventLogError as exc:
        extra = {"conflicts": exc.conflicts} if isinstance(exc, ConflictError) and exc.conflicts else {}
        _fail(f"error: {exc}", exc.exit_code, type(exc).__name__, as_json=as_json, **extra)
    except KeyboardInterrupt:
        _fail("interrupted", 130, "KeyboardInterrupt", as_json=as_json)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        _fail(f"error: {describe_os_error(exc)}", FILE_EXIT_CODE, type(exc).__name__, as_json=as_json)
    except sqlite3.DatabaseError as exc:
        # Not the SQL side (its errors arrive as DatabaseError): the log's own index.
        if is_damaged(exc):
            message = f"error: log/index.sqlite is damaged ({exc}); rebuild it with `eventlog reindex`"
        else:
            message = f"error: log/index.sqlite cannot be used ({exc})"
        _fail(message, FILE_EXIT_CODE, type(exc).__name__, as_json=as_json)
    except RecursionError:
        _fail("error: a record is nested too deeply to be read", 3, "RecursionError", as_json=as_json)
    except Exception as exc:  # the last resort: one sentence, never a traceback; EVENTLOG_DEBUG=1 shows it
        if os.environ.get("EVENTLOG_DEBUG"):
            raise
        _fail(f"error: unexpected {type(exc).__name__}: {exc} (set EVENTLOG_DEBUG=1 to see where)", 1,
              type(exc).__name__, as_json=as_json)


def _fail(message: str, code: int, kind: str, *, as_json: bool, **extra: Any) -> None:
    if as_json:
        text = message.removeprefix("error: ")
        click.echo(msgspec.json.encode({"error": text, "exit_code": code, "kind": kind, **extra}).decode(), err=True)
    else:
        click.echo(message, err=True)
    sys.exit(code)


# A file or folder of the lake, or one a command reads or writes, cannot be used (see docs/cli.md).
FILE_EXIT_CODE = 4
_OS_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a folder where a file belongs",
    errno.ENOTDIR: "a part of the path is a file where a folder belongs",
    errno.ENOENT: "it does not exist",
    errno.EEXIST: "it exists already",
}


def describe_os_error(exc: OSError) -> str:
    """One sentence for an operating-system error: which path, and what went wrong in words."""
    reason = _OS_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    paths = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    if paths:
        return f"cannot use {' -> '.join(paths)}: {reason}"
    return f"a file operation failed: {reason}"
