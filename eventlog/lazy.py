"""Lazy public names for a package: `from package import Name` imports the defining module on first use only.

A package's `__init__` lists where each public name is defined and takes its module-level `__getattr__` and
`__dir__` from `lazy_exports`, so importing the package costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names are defined in the modules `where` names."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        defined_in = where.get(name)
        if defined_in is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(defined_in), name)
        namespace[name] = value  # the next look-up finds it without this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace["__all__"]))

    return __getattr__, __dir__
