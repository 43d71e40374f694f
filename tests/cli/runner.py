"""Running `eventlog` in-process through its real entry point, for the CLI tests."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from eventlog.cli import main


class Run:
    """Invoke `eventlog` in-process through its real entry point, capturing exit code and output."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, lake: Path) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.lake = lake

    def __call__(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            main(["--lake", str(self.lake), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err
