"""Convergence, as a property: lakes and one database, random histories, random orders and directions of sync.

Histories hold conflicting versions of the same keys and captures ingested by more than one lake. After syncing
until quiet, every lake's RawExchangeRecord (projected from its log alone) and the database's have one state
digest, and one more sync changes nothing; for each strategy. Under `fail`, a sync that meets a conflict writes
nothing anywhere.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import Lake
from eventlog.errors import ConflictError
from tests.conftest import drop_test_schema, seeded, server_url
from tests.sync.helpers import database_digest, folder_digest, lake_digest, page, row_counts

TITLES = ("Ada", "Bea", "Cy")
DIRECTIONS = ("bidirectional", "json_to_sql", "sql_to_json")
STRATEGIES = ("prefer_newest", "prefer_sql", "prefer_json", "fail")


@dataclass(frozen=True)
class Append:
    """The same records (title, revision, observed hour) appended to each of `lakes`: a shared capture."""

    lakes: tuple[int, ...]
    records: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Sync:
    lake: int
    direction: str


def steps(lakes: int) -> st.SearchStrategy[Append | Sync]:
    record = st.tuples(st.sampled_from(TITLES), st.integers(0, 3), st.integers(0, 5))
    return st.one_of(
        st.builds(Append, st.sets(st.integers(0, lakes - 1), min_size=1).map(lambda found: tuple(sorted(found))),
                  st.lists(record, min_size=1, max_size=3).map(tuple)),
        st.builds(Sync, st.integers(0, lakes - 1), st.sampled_from(DIRECTIONS)),
    )


def play(folder: Path, url: str, schema: str, count: int, history: list[Append | Sync], strategy: str) -> None:
    """Run `history`, then sync round-robin until quiet, and check that every replica agrees."""
    lakes = [Lake.init(folder / f"lake{number}") for number in range(count)]
    options = {"database_url": url, "schema": schema}
    try:
        for step in history:
            if isinstance(step, Append):
                for number in step.lakes:
                    lakes[number].append([page(*record) for record in step.records])
                continue
            _sync(lakes[step.lake], strategy, options, direction=step.direction)
        if strategy == "fail":
            return  # conflicts may stay open: what fail must show is that it never wrote (checked in _sync)
        for _ in range(2 * count + 2):
            if not any([_sync(lake, strategy, options) for lake in lakes]):
                break
        else:
            raise AssertionError("the replicas did not become quiet")
        digests = {lake_digest(lake, folder) for lake in lakes}
        digests.add(database_digest(url, schema) or "")
        assert len(digests) == 1, digests
        for lake in lakes:
            again = lake.sync(conflict=strategy, **options)  # type: ignore[arg-type]
            assert not again.changed and again.conflicts == ()
    finally:
        for lake in lakes:
            lake.close()


def _sync(lake: Lake, strategy: str, options: dict[str, str], *, direction: str = "bidirectional") -> bool:
    """One sync; under `fail`, a refused one must leave the database and the log as they were."""
    if strategy != "fail":
        return lake.sync(direction=direction, conflict=strategy, **options).changed  # type: ignore[arg-type]
    counts, log = row_counts(options["database_url"], options["schema"]), folder_digest(lake.root / "log")
    try:
        return lake.sync(direction=direction, conflict="fail", **options).changed  # type: ignore[arg-type]
    except ConflictError:
        assert row_counts(options["database_url"], options["schema"]) == counts
        assert folder_digest(lake.root / "log") == log
        return False


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), count=st.integers(2, 3))
def test_replicas_converge_on_sqlite(strategy: str, data: st.DataObject, count: int) -> None:
    history = data.draw(st.lists(steps(count), min_size=1, max_size=10))
    with tempfile.TemporaryDirectory() as folder:
        play(Path(folder), f"sqlite:///{folder}/shared.db", "lake", count, history, strategy)


def _random_history(seed_label: str, count: int, length: int) -> list[Append | Sync]:
    _, rng = seeded(seed_label)
    history: list[Append | Sync] = []
    for _ in range(length):
        if rng.random() < 0.6:
            members = tuple(sorted(rng.sample(range(count), rng.randint(1, count))))
            history.append(Append(members, tuple((rng.choice(TITLES), rng.randrange(4), rng.randrange(6))
                                                 for _ in range(rng.randint(1, 3)))))
        else:
            history.append(Sync(rng.randrange(count), rng.choice(DIRECTIONS)))
    return history


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_replicas_converge_through_postgresql(strategy: str, tmp_path: Path) -> None:
    url = server_url("postgresql")
    for trial in range(3):
        schema = f"t_{uuid.uuid4().hex[:16]}"
        folder = tmp_path / str(trial)
        folder.mkdir()
        try:
            play(folder, url, schema, 3, _random_history(f"{strategy} trial {trial}", 3, 12), strategy)
        finally:
            drop_test_schema(url, schema)
