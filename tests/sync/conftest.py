"""Fixtures of the sync tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog import Lake

# Key sources a run's environment may set; the tests give keys explicitly or not at all.
_KEY_VARIABLES = ("EVENTLOG_IDENTITY", "EVENTLOG_KEY_FILE", "EVENTLOG_PASSPHRASE")


@pytest.fixture
def lakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lake, Lake]]:
    """Two new lakes, a and b."""
    for name in _KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    a, b = Lake.init(tmp_path / "a"), Lake.init(tmp_path / "b")
    yield a, b
    a.close()
    b.close()
