"""The public API: every name of `eventlog.__all__` resolves, lazily, and importing the package or its format wing
loads no SQL, cryptography or scheduler code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import eventlog
import projections

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves() -> None:
    for package in (eventlog, projections):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
        assert set(dir(package)) >= set(package.__all__)


def test_importing_the_package_or_canonical_json_loads_nothing_heavy() -> None:
    probe = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
             "print(sorted(m for m in ('sqlalchemy', 'cryptography', 'apscheduler', 'click') if m in sys.modules))")
    for module in ("eventlog", "eventlog.format.canonical", "eventlog.log.writer", "projections.rules"):
        done = subprocess.run([sys.executable, "-c", probe, module], capture_output=True, text=True, cwd=ROOT,
                              check=True)
        assert done.stdout.strip() == "[]", (module, done.stdout)
