"""The `eventlog` command line: a thin layer that parses options, makes one library call and formats it."""

from eventlog.cli import archive_commands as archive_commands
from eventlog.cli import audit_commands as audit_commands
from eventlog.cli import dataset_commands as dataset_commands
from eventlog.cli import log_commands as log_commands
from eventlog.cli import replay_commands as replay_commands
from eventlog.cli import schedule_commands as schedule_commands
from eventlog.cli import sql_commands as sql_commands
from eventlog.cli import sync_commands as sync_commands
from eventlog.cli.app import cli, console, main

__all__ = ["cli", "console", "main"]
