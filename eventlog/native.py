"""The optional C assembly of log lines (eventlog/_records.c), or None where it is not built.

Callers read `native.records` when they run, so that tests can set it to None to take the pure-Python path.
"""

from __future__ import annotations

from types import ModuleType

records: ModuleType | None
try:
    from eventlog import _records

    records = _records
except ImportError:  # built without a C compiler or without OpenSSL's headers
    records = None
