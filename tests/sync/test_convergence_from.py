"""Convergence through copied folders, as a property: lakes that only ever see copies of each other's folders.

Random histories of appends (conflicting versions of the same keys, captures ingested by more than one lake) and of
`sync --from` a fresh copy of another lake's folder (the same path each time, so later runs start from the
watermark, and a copy may be older than the last one read). After syncing round-robin until quiet, every lake's
RawExchangeRecord (projected from its log alone) has one state digest, and one more round changes nothing; for each
strategy. Under `fail`, a sync that meets a conflict writes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import Lake
from eventlog.errors import ConflictError
from tests.sync.helpers import folder_digest, lake_digest, page
from tests.sync.test_convergence import STRATEGIES, TITLES, Append


@dataclass(frozen=True)
class CopySync:
    """`target` syncs from a copy of `source`'s folder taken now (`fresh`) or the last copy taken, if any."""

    source: int
    target: int
    fresh: bool


def steps(lakes: int) -> st.SearchStrategy[Append | CopySync]:
    record = st.tuples(st.sampled_from(TITLES), st.integers(0, 3), st.integers(0, 5))
    pair = st.permutations(range(lakes)).map(lambda order: (order[0], order[1]))
    return st.one_of(
        st.builds(Append, st.sets(st.integers(0, lakes - 1), min_size=1).map(lambda found: tuple(sorted(found))),
                  st.lists(record, min_size=1, max_size=3).map(tuple)),
        st.builds(lambda ends, fresh: CopySync(ends[0], ends[1], fresh), pair, st.booleans()),
    )


def _sync_from(lakes: list[Lake], folder: Path, step: CopySync, strategy: str) -> bool:
    """One sync from a copy; under `fail`, a refused one must leave the log as it was."""
    copy = folder / f"copy-of-{step.source}"
    if step.fresh or not copy.exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(lakes[step.source].root, copy)
    target = lakes[step.target]
    if strategy != "fail":
        return target.sync_from(copy, conflict=strategy).changed  # type: ignore[arg-type, union-attr]
    log = folder_digest(target.root / "log")
    try:
        return target.sync_from(copy, conflict="fail").changed  # type: ignore[union-attr]
    except ConflictError:
        assert folder_digest(target.root / "log") == log
        return False


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), count=st.integers(2, 3))
def test_lakes_converge_through_copies_of_their_folders(strategy: str, data: st.DataObject, count: int) -> None:
    history = data.draw(st.lists(steps(count), min_size=1, max_size=10))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        lakes = [Lake.init(folder / f"lake{number}") for number in range(count)]
        try:
            for step in history:
                if isinstance(step, Append):
                    for number in step.lakes:
                        lakes[number].append([page(*record) for record in step.records])
                else:
                    _sync_from(lakes, folder, step, strategy)
            if strategy == "fail":
                return  # conflicts may stay open: what fail must show is that it never wrote (checked above)
            rounds = [CopySync(source, target, True) for target in range(count) for source in range(count)
                      if source != target]
            for _ in range(2 * count + 2):
                if not any([_sync_from(lakes, folder, step, strategy) for step in rounds]):
                    break
            else:
                raise AssertionError("the lakes did not become quiet")
            digests = {lake_digest(lake, folder) for lake in lakes}
            assert len(digests) == 1, digests
            for step in rounds:
                assert not _sync_from(lakes, folder, step, strategy)
        finally:
            for lake in lakes:
                lake.close()
