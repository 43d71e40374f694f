"""Builds the optional C speed-ups (eventlog._speedups); the metadata is in pyproject.toml.

Without a C compiler the build of the extension is skipped and the pure-Python equivalents are used.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("eventlog._speedups", ["eventlog/_speedups.c"], optional=True)])
