"""`eventlog schedule`: run the lake's upkeep jobs (mirror, reproject, seal, ...) on their schedules."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from eventlog.cli.app import app, cli, emit, json_option
from eventlog.errors import EventLogError


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record is emitted (it may be replaced after setup)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging() -> None:
    """One line per record on stderr, UTC timestamps; APScheduler's own chatter only from warnings up."""
    logger = logging.getLogger("eventlog.app.scheduler")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logging.getLogger("apscheduler").addHandler(handler)
    logger.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="TOML file naming the jobs and their schedules.")
@click.option("--once", is_flag=True, help="Run each configured job once, in file order, then exit.")
@json_option
@click.pass_context
def schedule(ctx: click.Context, config_path: Path, once: bool) -> None:
    """Run mirror, reproject, seal and other jobs on intervals or cron expressions until SIGTERM/SIGINT.

    One log line per run on stderr. With --once, exit non-zero when a job failed (with that job's exit code).
    """
    # Imported here: the scheduler brings SQLAlchemy, which the other commands' start need not pay for.
    from eventlog.app.scheduler import job_registry, load_config, run_once, serve

    config = load_config(config_path, registry=job_registry())
    configure_logging()
    if not once:
        serve(config, app(ctx).lake_path)
        return
    runs = run_once(config, app(ctx).lake_path)
    if app(ctx).as_json:
        emit(ctx, {"runs": runs}, "")
    failed = [run for run in runs if run.outcome == "failed"]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        error = EventLogError(f"job {failed[0].job} failed: {failed[0].detail}{more}")
        error.exit_code = failed[0].exit_code
        raise error
