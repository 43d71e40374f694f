"""The C extension a test module is about, through the one loader, or a skip where it is not in use.

Under EVENTLOG_PURE=1 the extensions are set aside on purpose and their tests skip. Otherwise a missing extension
skips, unless EVENTLOG_TEST_REQUIRE_SPEEDUPS=1 makes its absence a failure.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from eventlog import extensions


def require(name: str) -> ModuleType:
    """`extensions.<name>` ("speedups" or "records"), or skip the calling test module."""
    module: ModuleType | None = getattr(extensions, name)
    if module is not None:
        return module
    if extensions.forced_pure():
        pytest.skip(f"{extensions.PURE_ENV}=1 sets eventlog._{name} aside", allow_module_level=True)
    if os.environ.get("EVENTLOG_TEST_REQUIRE_SPEEDUPS") == "1":
        raise ImportError(f"EVENTLOG_TEST_REQUIRE_SPEEDUPS=1, but eventlog._{name} is not built")
    pytest.skip(f"eventlog._{name} is not built (no C compiler, or for _records no OpenSSL headers)",
                allow_module_level=True)
    raise AssertionError("unreachable")
