"""pytest plugin (entry point `pytest11`): an `eventlog_replayer` fixture over a lake chosen on the command line.

Options: ``--eventlog-lake PATH`` (default $EVENTLOG_LAKE, else ./lake), ``--eventlog-dataset NAME`` and
``--eventlog-mode replay|record|new_episodes`` (default replay). A test may override them with the marker
``@pytest.mark.eventlog_replay(dataset=..., mode=..., as_of=..., rules=...)``. Hand the fixture to an adapter:
``httpx.Client(transport=HttpxTransport(eventlog_replayer))``. The lake must exist (``eventlog --lake PATH init``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog.errors import EventLogError
from eventlog.log.config import CONFIG_NAME
from eventlog.replay.replayer import MODES, Replayer

__all__ = ["eventlog_replayer", "pytest_addoption", "pytest_configure"]

_MARKER = "eventlog_replay"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventlog", "replay HTTP exchanges from an exchange-eventlog lake")
    group.addoption("--eventlog-lake", default=None, metavar="PATH",
                    help="Lake to replay from and record into (default: $EVENTLOG_LAKE, else ./lake).")
    group.addoption("--eventlog-dataset", default=None, metavar="NAME",
                    help="Dataset (source_system) to look up and record under (default: any; records by host).")
    group.addoption("--eventlog-mode", default="replay", choices=MODES,
                    help="replay: never the network (default); record: live, every exchange appended; "
                         "new_episodes: replay what is known, record the rest.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{_MARKER}(dataset=None, mode=None, as_of=None, rules=None): "
                                       "replay options for one test's eventlog_replayer")


@pytest.fixture
def eventlog_replayer(request: pytest.FixtureRequest) -> Iterator[Replayer]:
    """A Replayer over the chosen lake, dataset and mode (the test's eventlog_replay marker overrides them)."""
    config = request.config
    marker = request.node.get_closest_marker(_MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    lake = Path(config.getoption("eventlog_lake") or os.environ.get("EVENTLOG_LAKE") or "lake")
    if not (lake / CONFIG_NAME).exists():
        raise pytest.UsageError(f"--eventlog-lake {lake} is not a lake ({CONFIG_NAME} is missing); "
                                f"create it with `eventlog --lake {lake} init`")
    options.setdefault("dataset", config.getoption("eventlog_dataset"))
    options.setdefault("mode", config.getoption("eventlog_mode"))
    try:
        replayer = Replayer(lake, **options)
    except EventLogError as exc:
        raise pytest.UsageError(f"eventlog replay: {exc}") from None
    with replayer:
        yield replayer
