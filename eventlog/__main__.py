"""`python -m eventlog` runs the command line."""

from eventlog.cli import console

console()
