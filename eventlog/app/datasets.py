"""Datasets of a lake: their manifests under snapshots/, their packs, and import and export of packs.

A dataset is registered in a lake by its manifest at `<lake>/snapshots/<dataset_name>/manifest.json`; that folder
is also where the dataset's snapshot pack projection lives (projections/snapshot_pack.py). Checkpoints of the
lake's packs are kept apart, in `<lake>/snapshots/.checkpoints/<dataset_name>.json`, so a pack folder holds nothing
that depends on the replica that wrote it.

Import reads the pack beside a manifest into the log (then the SQL side and the lake's pack follow). Export is
the reverse: the pack beside a manifest becomes the projection of the log, after any records it held that the
log lacks were imported, so an export never loses a record of the pack it writes into.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from eventlog.capture.ingest import InputTrail, pack_chunk_files, read_pack
from eventlog.capture.manifest import (
    MANIFEST_NAME,
    DatasetManifest,
    Strategy,
    manifest_bytes,
    manifest_redaction,
    read_manifest,
)
from eventlog.durable import write_atomic
from eventlog.errors import ConflictError, InputError
from eventlog.format.envelope import ExchangeRecord, format_utc
from eventlog.format.events import new_resolution
from eventlog.format.identity import exchange_key
from eventlog.log.plan import plan_append
from eventlog.log.prepare import prepare
from eventlog.log.writer import AppendResult
from eventlog.redaction.redactor import RedactionPolicy, Redactor

if TYPE_CHECKING:
    from eventlog.app.lake import Lake
    from eventlog.sql.mirror import MirrorResult
    from projections import PackResult, ReprojectResult

__all__ = ["CHECKPOINTS", "SNAPSHOTS", "Conflict", "ExportResult", "ImportResult", "dataset_manifests",
           "export_dataset", "find_conflicts", "import_dataset", "reproject_packs"]

SNAPSHOTS = "snapshots"
CHECKPOINTS = ".checkpoints"
ProgressHook = Callable[[int], None]


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """A natural key whose current version in the lake differs from the one the pack brings, and its decision.

    `winner` is the content the strategy chose (None under `fail`): the pack's under prefer_json, the lake's
    under prefer_sql, the newer observation (then the larger content hash) under prefer_newest.
    """

    source_system: str
    entity_type: str
    natural_key: str
    lake: str
    pack: str
    lake_observed_at_utc: str
    pack_observed_at_utc: str
    winner: str | None = None

    def decided(self, strategy: Strategy) -> Conflict:
        """This conflict with the winner `strategy` chooses."""
        if strategy == "fail":
            return self
        if strategy == "prefer_json":
            winner = self.pack
        elif strategy == "prefer_sql":
            winner = self.lake
        else:
            winner = max((self.lake_observed_at_utc, self.lake), (self.pack_observed_at_utc, self.pack))[1]
        return msgspec.structs.replace(self, winner=winner)

    def resolution(self, strategy: Strategy) -> dict[str, object]:
        """The body of the `resolved` event that records the decision (see docs/projections.md)."""
        return {"candidates": sorted({self.lake, self.pack}), "entity_type": self.entity_type,
                "natural_key": self.natural_key, "scope": f"{self.source_system}/{self.entity_type}",
                "source_system": self.source_system, "strategy": strategy, "winner": self.winner}


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did, or (dry_run) would do: the append's counts, conflicts, and what followed it."""

    dataset: str
    manifest: str
    folder: str
    dry_run: bool
    conflict_strategy: Strategy
    read: int
    append: AppendResult
    conflicts: tuple[Conflict, ...] = ()
    registered: bool = False
    mirror: MirrorResult | None = None
    reproject: ReprojectResult | None = None
    pack: PackResult | None = None


class ExportResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an export did, or (dry_run) would do: records of the pack new to the log, and the pack's records."""

    dataset: str
    manifest: str
    folder: str
    dry_run: bool
    imported: AppendResult
    records_before: int
    records: int
    pack: PackResult | None = None


def dataset_manifests(root: Path) -> list[tuple[Path, DatasetManifest]]:
    """Every dataset registered in the lake at `root`: (pack folder, manifest), by name."""
    found = []
    base = root / SNAPSHOTS
    if not base.is_dir():
        return []
    for folder in sorted(base.iterdir()):
        if folder.name.startswith(".") or not (folder / MANIFEST_NAME).is_file():
            continue
        manifest = read_manifest(folder / MANIFEST_NAME)
        if manifest.dataset_name != folder.name:
            raise InputError(f"the manifest names dataset {manifest.dataset_name!r}, but its folder is "
                             f"{folder.name!r}; a dataset lives in snapshots/<dataset_name>/",
                             source=str(folder / MANIFEST_NAME), path="$.dataset_name")
        found.append((folder, manifest))
    return found


def reproject_packs(lake: Lake, *, rebuild: bool = False, names: Iterable[str] | None = None,
                    progress: ProgressHook | None = None) -> list[PackResult]:
    """Bring the pack of every registered dataset (or those `names`) up to the log; see project_pack."""
    from projections import project_pack  # imported here: projections import eventlog's modules

    wanted = None if names is None else set(names)
    datasets = dataset_manifests(lake.root)
    if wanted is not None:
        missing = wanted - {manifest.dataset_name for _, manifest in datasets}
        if missing:
            raise InputError(f"no dataset {', '.join(sorted(missing))} in {lake.root / SNAPSHOTS} "
                             "(register one with: eventlog init --name ... --out <lake>/snapshots)")
    return [project_pack(lake.log, manifest, folder, checkpoint=_checkpoint_path(lake.root, manifest),
                         replica=lake.config.replica_id, rebuild=rebuild, progress=progress)
            for folder, manifest in datasets if wanted is None or manifest.dataset_name in wanted]


def _checkpoint_path(root: Path, manifest: DatasetManifest) -> Path:
    return root / SNAPSHOTS / CHECKPOINTS / f"{manifest.dataset_name}.json"


def _counted(records: Iterable[ExchangeRecord], counter: list[int],
             progress: ProgressHook | None) -> Iterator[ExchangeRecord]:
    for record in records:
        counter[0] += 1
        if progress is not None and counter[0] % 1000 == 0:
            progress(counter[0])
        yield record


def _pack_records(lake: Lake, folder: Path, manifest: DatasetManifest,
                  trail: InputTrail | None = None) -> Iterator[ExchangeRecord]:
    """The pack's records as they are: the manifest's redaction applies at append, merged into the lake's. Each
    record's file and line go to `trail`."""
    if not (folder / "records").is_dir():
        raise InputError("holds no records/ folder: there is no pack beside the manifest", source=str(folder))
    return read_pack(folder, manifest=manifest, redact=False, max_bytes=lake.config.max_record_bytes, trail=trail)


def find_conflicts(lake: Lake, records: Iterable[ExchangeRecord], *,
                   redaction: RedactionPolicy | None = None) -> list[Conflict]:
    """Natural keys whose newest version in `records` differs from the lake's current one, which it lacks.

    Versions are ordered as the projection orders them: newest observed_at_utc, then larger content hash; content
    hashes are those of the records redacted by the lake's policy with `redaction` added.
    """
    newest: dict[tuple[str, str, str], tuple[str, str]] = {}
    redactor = lake.redactor_with(redaction) or lake.log.redactor
    for number, record in enumerate(records, start=1):
        if record.natural_key is None:
            continue
        prepared = prepare(record, redactor, max_bytes=lake.config.max_record_bytes, number=number)
        version = (prepared.observed_at_utc, prepared.content_sha256)
        key = (record.source_system, record.entity_type, record.natural_key)
        if key not in newest or version > newest[key]:
            newest[key] = version
    conflicts = []
    index = lake.log.index
    for (source, entity, natural), (observed, content) in sorted(newest.items()):
        lookup = exchange_key(source, entity, natural)
        assert lookup is not None
        entries = index.by_key(lookup)
        if not entries or any(entry.content_sha256 == content for entry in entries):
            continue
        current = max(entries, key=lambda entry: (entry.observed_at_utc or "", entry.content_sha256 or "",
                                                  entry.event_id))
        conflicts.append(Conflict(source_system=source, entity_type=entity, natural_key=natural,
                                  lake=current.content_sha256 or "", pack=content,
                                  lake_observed_at_utc=current.observed_at_utc or "", pack_observed_at_utc=observed))
    return conflicts


def _database_configured(lake: Lake) -> bool:
    return bool(os.environ.get("EVENTLOG_DATABASE_URL") or lake.config.database_url)


def import_dataset(lake: Lake, manifest_path: Path, *, dry_run: bool = False, conflict: Strategy | None = None,
                   progress: ProgressHook | None = None) -> ImportResult:
    """Read the pack beside `manifest_path` into the log; then the SQL side and the lake's pack follow.

    The manifest's redaction additions apply, merged into the lake's policy for the append. With `dry_run` nothing is written and the result's counts are what
    the real run would do. Conflicts (keys whose newest version in the pack differs from the lake's current
    one) are listed with the strategy's winner and recorded as `resolved` events after the records; under
    `fail` a ConflictError is raised before anything is written. The manifest is
    registered in the lake (snapshots/<dataset_name>/manifest.json) when it is not yet, and the lake's pack of
    the dataset is brought up to the log. When a database is configured (lake.json or EVENTLOG_DATABASE_URL),
    the log is mirrored and RawExchangeRecord reprojected. Raises InputError (nothing written) for a bad record,
    naming its file and line.
    """
    manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    strategy: Strategy = conflict or manifest.sync_policy.conflict_strategy
    redaction = manifest_redaction(manifest, source=str(manifest_path))
    # Each read of the pack has its trail, so that an error about a record names its file and line.
    first = InputTrail()
    with first.naming():
        conflicts = [item.decided(strategy)
                     for item in find_conflicts(lake, _pack_records(lake, folder, manifest, first),
                                                redaction=redaction)]
    base = dict(dataset=manifest.dataset_name, manifest=str(manifest_path), folder=str(folder),
                conflict_strategy=strategy, conflicts=tuple(conflicts))
    if strategy == "fail" and conflicts:
        raise ConflictError(f"{len(conflicts)} conflict(s) under the 'fail' strategy, first: natural key "
                            f"{conflicts[0].natural_key!r} (lake {conflicts[0].lake[:12]}, pack "
                            f"{conflicts[0].pack[:12]}); nothing was written",
                            conflicts=[msgspec.to_builtins(item) for item in conflicts])
    counter = [0]
    trail = InputTrail()
    records = _counted(_pack_records(lake, folder, manifest, trail), counter, progress)
    if dry_run:
        with trail.naming():
            plan = plan_append(lake.log, records, redactor=lake.redactor_with(redaction))
        return ImportResult(**base, dry_run=True, read=counter[0], append=plan)  # type: ignore[arg-type]
    with trail.naming():
        appended = lake.append(records, redaction=redaction)
    if conflicts:
        # Each decision travels as a `resolved` event, so reprojection reproduces it and audit shows it; a decided
        # conflict is not found again (the lake now holds the pack's version).
        recorded = format_utc(lake.log.clock())
        lake.log.append_events([new_resolution(body=item.resolution(strategy), origin=lake.config.replica_id,
                                               recorded_at_utc=recorded) for item in conflicts])
    registered = _register(lake.root, manifest_path, manifest)
    pack_folder = lake.root / SNAPSHOTS / manifest.dataset_name
    checkpoint = _checkpoint_path(lake.root, manifest)
    from projections import project_pack

    pack = project_pack(lake.log, manifest, pack_folder, checkpoint=checkpoint, replica=lake.config.replica_id,
                        rebuild=not checkpoint.exists())
    mirrored = reprojected = None
    if _database_configured(lake):
        mirrored = lake.mirror()
        reprojected = lake.reproject()
    return ImportResult(**base, dry_run=False, read=counter[0], append=appended,  # type: ignore[arg-type]
                        registered=registered, mirror=mirrored, reproject=reprojected, pack=pack)


def _register(root: Path, manifest_path: Path, manifest: DatasetManifest) -> bool:
    target = root / SNAPSHOTS / manifest.dataset_name / MANIFEST_NAME
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, manifest_bytes(manifest))
    return True


def _pack_record_count(folder: Path) -> int:
    count = 0
    for chunk in pack_chunk_files(folder):
        with open(chunk, "rb") as handle:
            count += sum(1 for line in handle if line.strip())
    return count


def export_dataset(lake: Lake, manifest_path: Path, *, dry_run: bool = False,
                   progress: ProgressHook | None = None) -> ExportResult:
    """Make the pack beside `manifest_path` the projection of the log for the manifest's dataset.

    Records the pack holds that the log lacks are imported first (the manifest's redaction applies), so every
    record of an existing pack is kept; then records/ and index.jsonl are rebuilt. manifest.json stays where it
    is, beside them, and is registered in the lake when it is not yet. With `dry_run` nothing is written;
    `imported` and `records` are what the run would do.
    """
    manifest = read_manifest(manifest_path)
    folder = manifest_path.parent
    before = _pack_record_count(folder)
    existing = (folder / "records").is_dir()
    base = dict(dataset=manifest.dataset_name, manifest=str(manifest_path), folder=str(folder),
                records_before=before)
    redaction = manifest_redaction(manifest, source=str(manifest_path))
    trail = InputTrail()
    if dry_run:
        contents: set[str] = set()
        plan = AppendResult()
        if existing:
            redactor = lake.redactor_with(redaction) or lake.log.redactor
            with trail.naming():
                plan = plan_append(lake.log, _remember(_pack_records(lake, folder, manifest, trail), lake, redactor,
                                                       contents), redactor=redactor)
        contents.update(_dataset_contents(lake, manifest))
        return ExportResult(**base, dry_run=True, imported=plan, records=len(contents))  # type: ignore[arg-type]
    with trail.naming():
        imported = (lake.append(_pack_records(lake, folder, manifest, trail), redaction=redaction) if existing
                    else AppendResult())
    _register(lake.root, manifest_path, manifest)
    from projections import project_pack

    pack = project_pack(lake.log, manifest, folder, checkpoint=None, replica=lake.config.replica_id, rebuild=True,
                        progress=progress)
    return ExportResult(**base, dry_run=False, imported=imported, records=pack.records,  # type: ignore[arg-type]
                        pack=pack)


def _remember(records: Iterable[ExchangeRecord], lake: Lake, redactor: Redactor,
              contents: set[str]) -> Iterator[ExchangeRecord]:
    for number, record in enumerate(records, start=1):
        contents.add(prepare(record, redactor, max_bytes=lake.config.max_record_bytes, number=number).content_sha256)
        yield record


def _dataset_contents(lake: Lake, manifest: DatasetManifest) -> set[str]:
    found: set[str] = set()
    scope = (manifest.source_system, manifest.entity_type)
    for event in lake.events():
        body = event.body
        if event.type != "resolved" and (body.get("source_system"), body.get("entity_type")) == scope:
            found.add(str(body["content_sha256"]))
    return found

