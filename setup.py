"""Builds the optional C speed-ups; the metadata is in pyproject.toml.

eventlog._speedups needs a C compiler, eventlog._records also OpenSSL's libcrypto and its headers. A module that
cannot be built is skipped, and its pure-Python equivalents are used.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("eventlog._speedups", ["eventlog/_speedups.c"], depends=["eventlog/_arguments.h"], optional=True),
    Extension("eventlog._records", ["eventlog/_records.c"], depends=["eventlog/_arguments.h"], libraries=["crypto"],
              optional=True),
])
