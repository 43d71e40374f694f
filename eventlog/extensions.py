"""The one loader of the optional C extensions: `speedups` (eventlog/_speedups.c) and `records` (eventlog/_records.c).

Each is the extension module, or None where it is not built or where EVENTLOG_PURE=1 asks for the pure-Python
paths. Every function in them has a pure-Python equivalent with the same results; the C only makes them faster.
Callers read `extensions.records` / `extensions.speedups` when they run (not at import), so a test can set either
to None to take the pure-Python path.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["PURE_ENV", "forced_pure", "missing", "records", "speedups"]

PURE_ENV = "EVENTLOG_PURE"


def forced_pure() -> bool:
    """Whether EVENTLOG_PURE=1 asks for the pure-Python paths."""
    return os.environ.get(PURE_ENV) == "1"


def _load(name: str) -> ModuleType | None:
    if forced_pure():
        return None
    try:
        return __import__(f"eventlog.{name}", fromlist=["_"])
    except ImportError:  # built without a C compiler (or, for _records, without OpenSSL's headers)
        return None


speedups: ModuleType | None = _load("_speedups")
records: ModuleType | None = _load("_records")


def missing() -> list[str]:
    """The extensions that were not built (empty when EVENTLOG_PURE=1 set them aside on purpose)."""
    if forced_pure():
        return []
    return [name for name, module in (("eventlog._speedups", speedups), ("eventlog._records", records))
            if module is None]
