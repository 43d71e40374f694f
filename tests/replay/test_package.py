"""The public face of eventlog.replay: a sorted __all__, and httpx and requests imported only by their adapters."""

from __future__ import annotations

import subprocess
import sys

import eventlog.replay as replay


def test_all_is_sorted_and_every_name_resolves() -> None:
    def kind(name: str) -> tuple[int, str]:  # the order ruff keeps __all__ in: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert replay.__all__ == sorted(replay.__all__, key=kind)
    assert all(getattr(replay, name) is not None for name in replay.__all__)


def test_importing_replay_does_not_import_the_http_clients() -> None:
    code = ("import sys, eventlog.replay, eventlog.replay.pytest_plugin, eventlog.cli; "
            "print(sorted(name for name in ('httpx', 'requests') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
