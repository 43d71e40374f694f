"""The Lake facade: one folder holding the log, its configuration, the SQL side, projections and archives."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from eventlog.app.credentials import (
    CREDENTIALS_NAME,
    credential_warnings,
    shown,
    split_password,
    store_password,
    with_password,
)
from eventlog.cold.archiver import (
    ArchivedSegment,
    ArchiveReport,
    RestoreReport,
    SeqRange,
    archive_segments,
    merge_keys,
    policy_keys,
    restore_segments,
)
from eventlog.cold.container import Compression
from eventlog.cold.keys import Argon2Params, Keys
from eventlog.cold.reader import ColdStore
from eventlog.errors import IntegrityError, LakeError
from eventlog.format.envelope import ExchangeRecord, format_utc
from eventlog.format.events import Event
from eventlog.format.identity import exchange_key
from eventlog.log.config import (
    CONFIG_NAME,
    LakeConfig,
    SegmentPolicy,
    default_database_url,
    new_replica_id,
    read_config,
    write_config,
)
from eventlog.log.index import IndexEntry
from eventlog.log.reader import decode_at
from eventlog.log.verify import VerifyReport, verify_log
from eventlog.log.writer import AppendResult, EventLog
from eventlog.redaction.redactor import RedactionPolicy, Redactor

if TYPE_CHECKING:
    from eventlog.app.datasets import ExportResult, ImportResult
    from eventlog.capture.manifest import Strategy
    from eventlog.sql.mirror import MirrorResult
    from eventlog.sql.store import SqlEventStore
    from eventlog.sync import Direction, SyncResult
    from projections import PackResult, ProjectionReport, ReprojectResult

DEFAULT_LAKE = "lake"


def default_lake_path() -> Path:
    """--lake, else EVENTLOG_LAKE, else ./lake."""
    return Path(os.environ.get("EVENTLOG_LAKE", DEFAULT_LAKE))


class Lake:
    """A lake folder opened for reading and writing.

    Use `Lake.init(path)` to create one and `Lake.open(path)` to open it; both return a Lake that is also a
    context manager. Writes take the single-writer lock per call, so several processes may hold a Lake open. A
    process that forks opens the lake again in the child: SQLite's connections must not cross a fork.
    """

    def __init__(self, root: Path, config: LakeConfig, *, clock: Callable[[], datetime] | None = None,
                 redaction: RedactionPolicy | None = None, keys: Keys | None = None) -> None:
        self.root = root
        self.config = config
        # Set by `init` when it kept the database password out of lake.json, so the caller can say where it went.
        self.password_stored_in: Path | None = None
        self.cold = ColdStore(root, keys=keys)
        self.log = EventLog.from_config(root, config, redaction=redaction, clock=clock, cold=self.cold)
        self.redaction = self.log.redactor.policy

    @classmethod
    def init(cls, path: str | os.PathLike[str], *, database_url: str | None = None, replica_id: str | None = None,
             segment_policy: SegmentPolicy | None = None, redaction: dict[str, Any] | None = None,
             credentials_file: str | os.PathLike[str] | None = None, exist_ok: bool = False,
             clock: Callable[[], datetime] | None = None) -> Lake:
        """Create a lake folder with a fresh replica id; with exist_ok, open an existing one instead.

        A password in `database_url` is not written to lake.json: it goes to the credentials file
        (`credentials_file`, default <lake>/credentials.json, created with mode 0600) and the new Lake's
        `password_stored_in` names that file. Raises InputError for a database URL that does not parse.
        """
        root = Path(path)
        if (root / CONFIG_NAME).exists():
            if exist_ok:
                return cls.open(root, clock=clock)
            raise LakeError(f"{root} is already a lake ({CONFIG_NAME} exists)")
        if redaction is not None:
            RedactionPolicy.from_mapping(redaction, source="the redaction policy")
        password = None
        if database_url is not None:
            database_url, password = split_password(database_url)
        fields: dict[str, Any] = {"database_url": database_url, "redaction": redaction or {},
                                  "replica_id": replica_id or new_replica_id()}
        if credentials_file is not None:
            fields["credentials_file"] = str(Path(credentials_file).resolve())
        if segment_policy is not None:
            fields["segment_policy"] = segment_policy
        config = LakeConfig(**fields)
        for folder in ("log/segments", "log/seals", "snapshots", "archive"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        stored_in = None
        if password is not None:
            assert database_url is not None
            stored_in = root / (config.credentials_file or CREDENTIALS_NAME)
            try:
                store_password(stored_in, database_url, password)
            except OSError as exc:
                raise LakeError(f"cannot write the credentials file {stored_in}: {exc.strerror}") from None
        # lake.json last: a folder without it is not a lake, so a failure above leaves no lake half-made.
        write_config(root, config)
        lake = cls(root, config, clock=clock)
        lake.password_stored_in = stored_in
        return lake

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Callable[[], datetime] | None = None,
             keys: Keys | None = None) -> Lake:
        """Open an existing lake; recovers a torn tail and catches the index up under the writer lock.

        `keys` opens archives of evicted segments when they are read; None takes them from the environment
        (EVENTLOG_IDENTITY, EVENTLOG_KEY_FILE, EVENTLOG_PASSPHRASE) when first needed, `Keys()` uses none.
        """
        root = Path(path)
        return cls(root, read_config(root), clock=clock, keys=keys)

    def close(self) -> None:
        self.log.close()
        self.cold.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    @property
    def database_url(self) -> str:
        """The SQL mirror's URL to connect with, password included: never print it (see `shown_database_url`).

        EVENTLOG_DATABASE_URL, else lake.json's, else SQLite inside the lake; a URL without a password takes it
        from EVENTLOG_DATABASE_PASSWORD, else from the credentials file.
        """
        return with_password(os.environ.get("EVENTLOG_DATABASE_URL") or self.config.database_url
                             or default_database_url(self.root), credentials_path=self.credentials_path)

    @property
    def shown_database_url(self) -> str:
        """The SQL mirror's URL fit to print: any password replaced by ***."""
        return shown(self.database_url)

    @property
    def credentials_path(self) -> Path:
        """The private file the lake reads its database password from: lake.json's `credentials_file`, else
        <lake>/credentials.json."""
        return self.root / (self.config.credentials_file or CREDENTIALS_NAME)

    def warnings(self) -> list[str]:
        """One sentence per secret kept where it should not be (a password in lake.json, a readable credentials
        file); the lake works all the same."""
        return credential_warnings(config_url=self.config.database_url, config_path=self.root / CONFIG_NAME,
                                   credentials_path=self.credentials_path)

    def append(self, records: Iterable[ExchangeRecord | dict[str, Any]], *,
               redaction: RedactionPolicy | None = None) -> AppendResult:
        """Append records as one durable batch (see EventLog.append); `redaction` adds to the lake's policy."""
        return self.log.append(records, redactor=self.redactor_with(redaction))

    def redactor_with(self, redaction: RedactionPolicy | None) -> Redactor | None:
        """The redactor of the lake's policy merged with `redaction` (None: the log's own)."""
        return None if redaction is None else Redactor(self.redaction.merged(redaction))

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        """Every event after `after_seq`, in log order."""
        return self.log.events(after_seq=after_seq)

    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Recompute hashes, chain, seals and seal chain; the report names the first disagreement.

        Evicted segments are checked through their archives: fully when a key is at hand, else by the archive's
        SHA-256 against its location and its header against the seal.
        """
        return verify_log(self.root / "log", progress=progress, cold=self.cold)

    def seal(self) -> str | None:
        """Seal the active segment now; returns its seq range, or None when there is nothing to seal."""
        return self.log.seal()

    def reindex(self) -> int:
        """Rebuild log/index.sqlite from the segments."""
        return self.log.reindex()

    def archive(self, *, keys: Keys | None = None, before: datetime | None = None, seqs: SeqRange | None = None,
                compression: Compression | None = None, evict: bool | None = None, kdf: Argon2Params | None = None,
                progress: Callable[[ArchivedSegment], None] | None = None) -> ArchiveReport:
        """Archive sealed segments to archive/ (see eventlog.cold.archiver.archive_segments), evicting when asked.

        Seals to `keys` plus lake.json's `archive.recipients`; `compression` and `evict` default to lake.json's
        `archive` policy. A hot segment is removed only after its archive was written, read back and verified.
        """
        policy = self.config.archive
        return archive_segments(self.log, self.root, keys=merge_keys(keys, policy_keys(policy, self.root)),
                                before=before, seqs=seqs, compression=compression or policy.compression,
                                evict=policy.evict if evict is None else evict, kdf=kdf, progress=progress)

    def restore(self, archives: Iterable[Path], *, keys: Keys | None = None) -> RestoreReport:
        """Put archived segments back under log/segments, verified first (see eventlog.cold.archiver.restore_segments).

        `keys` None uses the keys the lake was opened with (or the environment's).
        """
        return restore_segments(self.log, archives, keys=keys if keys is not None else self.cold.keys())

    def sql_store(self, *, database_url: str | None = None, schema: str | None = None) -> SqlEventStore:
        """The SQL side at `database_url` (default: the lake's), with the projections' tables and audit view, not
        yet connected; the caller disposes of it.

        A `database_url` without a password takes the lake's for that same URL, as `database_url` does.
        """
        # Imported here: they bring SQLAlchemy, which the log alone does not need.
        from eventlog.sql.store import SqlEventStore
        from projections.tables import attach

        url = self.database_url if database_url is None else with_password(
            database_url, credentials_path=self.credentials_path)
        store = SqlEventStore(url, schema=schema)
        attach(store)
        return store

    def mirror(self, *, database_url: str | None = None, schema: str | None = None,
               progress: Callable[[int], None] | None = None,
               expect: Callable[[int], None] | None = None) -> MirrorResult:
        """Copy the log's new events into the SQL event tables (see eventlog.sql.mirror.mirror_log)."""
        from eventlog.sql.mirror import mirror_log

        with self.sql_store(database_url=database_url, schema=schema) as store:
            return mirror_log(self.log, store, progress=progress, expect=expect)

    def reproject(self, *, rebuild: bool = False, check: bool = False, as_of: datetime | str | None = None,
                  known_at: datetime | str | None = None, at_seq: int | None = None,
                  database_url: str | None = None, schema: str | None = None,
                  progress: Callable[[int], None] | None = None,
                  expect: Callable[[int], None] | None = None) -> ReprojectResult:
        """Bring RawExchangeRecord up to the log, or rewrite it as of a point in time (see projections.reproject).

        Timestamps need a UTC offset (InputError otherwise). The plain call after a point-in-time one rebuilds.
        `check` compares the table's state digest with its checkpoint's first (one read of every row's digest
        columns) and rebuilds when a row was changed outside the lake; the row count is compared on every call.
        A table that `sync` keeps as the projection of the database's event tables is brought up to those tables
        instead (never replaced by this lake's log alone, unless `rebuild`).
        """
        from projections import PointInTime, reproject  # imported here: projections import eventlog's modules
        from projections.sql_source import kept_by_tables, reproject_tables

        point = PointInTime.of(as_of=as_of, known_at=known_at, at_seq=at_seq)
        with self.sql_store(database_url=database_url, schema=schema) as store:
            if point is None and not rebuild and kept_by_tables(store):
                return reproject_tables(store, now=format_utc(self.log.clock()), check=check, progress=progress)
            return reproject(self.log, store, now=format_utc(self.log.clock()), rebuild=rebuild, check=check,
                             point=point, progress=progress, expect=expect)

    def reproject_packs(self, *, rebuild: bool = False, names: Iterable[str] | None = None,
                        progress: Callable[[int], None] | None = None) -> list[PackResult]:
        """Bring the snapshot pack of every dataset registered under snapshots/ up to the log.

        See eventlog.app.datasets.reproject_packs and projections.snapshot_pack.project_pack.
        """
        from eventlog.app.datasets import reproject_packs

        return reproject_packs(self, rebuild=rebuild, names=names, progress=progress)

    def import_pack(self, manifest: Path, *, dry_run: bool = False, conflict: Strategy | None = None,
                    progress: Callable[[int], None] | None = None) -> ImportResult:
        """Read the pack beside `manifest` into the log (see eventlog.app.datasets.import_dataset)."""
        from eventlog.app.datasets import import_dataset

        return import_dataset(self, manifest, dry_run=dry_run, conflict=conflict, progress=progress)

    def export_pack(self, manifest: Path, *, dry_run: bool = False,
                    progress: Callable[[int], None] | None = None) -> ExportResult:
        """Write the log's projection of a dataset into the pack beside `manifest` (see export_dataset)."""
        from eventlog.app.datasets import export_dataset

        return export_dataset(self, manifest, dry_run=dry_run, progress=progress)

    def sync(self, *, direction: Direction = "bidirectional", conflict: Strategy = "prefer_newest",
             dry_run: bool = False, database_url: str | None = None, schema: str | None = None,
             progress: Callable[[int], None] | None = None) -> SyncResult:
        """Merge the log with the database's event tables, decide conflicts and reproject (see eventlog.sync).

        Returns the plan (`dry_run`: nothing is written) or what was done. Raises ConflictError under `fail`
        when there are conflicts, IntegrityError when one event id names two different events; in both cases
        nothing is written.
        """
        from eventlog.sync import sync

        with self.sql_store(database_url=database_url, schema=schema) as store:
            return sync(self.log, store, direction=direction, conflict=conflict, dry_run=dry_run,
                        now=format_utc(self.log.clock()), progress=progress)

    def sync_from(self, path: str | os.PathLike[str], *, conflict: Strategy = "prefer_newest", dry_run: bool = False,
                  keys: Keys | None = None,
                  progress: Callable[[int], None] | None = None) -> SyncResult | ImportResult:
        """Merge a folder copied from another machine into this lake, reading it only (see eventlog.sync.from_folder).

        A lake's folder or its log/ folder is merged by event id (foreign events keep their identity, conflicts
        follow `conflict`) and returns a SyncResult; a snapshot pack folder (manifest.json beside records/) is
        imported as `import_pack` does and returns an ImportResult. Then, unless `dry_run`, the lake's snapshot
        packs and (with a database configured) its event tables and RawExchangeRecord are brought up to the log.
        `keys` open the segments the copied lake evicted to its archive/ folder (default: those of the environment,
        looked up only when such a segment must be read); only the segments after the last run's watermark are read.
        Raises InputError, IntegrityError (the folder is damaged: file and line named), ArchiveError (an evicted
        segment to read and no key, or a wrong one), ConflictError under `fail`, before anything is written.
        """
        from eventlog.capture.manifest import MANIFEST_NAME
        from eventlog.sync.from_folder import sync_from

        folder = Path(path)
        if (folder / MANIFEST_NAME).is_file() and (folder / "records").is_dir():
            return self.import_pack(folder / MANIFEST_NAME, dry_run=dry_run, conflict=conflict, progress=progress)
        result = sync_from(self.log, folder, conflict=conflict, dry_run=dry_run, now=format_utc(self.log.clock()),
                           keys=keys, progress=progress)
        if dry_run or not result.changed:
            return result
        self.reproject_packs()
        if os.environ.get("EVENTLOG_DATABASE_URL") or self.config.database_url:
            self.mirror()
            result = msgspec.structs.replace(result, projection=self.reproject())
        return result

    def verify_projection(self, *, database_url: str | None = None, schema: str | None = None,
                          progress: Callable[[int], None] | None = None) -> ProjectionReport:
        """Recompute RawExchangeRecord from the log in a scratch database and compare rows and digests with it."""
        from projections import verify_projection

        with self.sql_store(database_url=database_url, schema=schema) as store:
            return verify_projection(self.log, store, now=format_utc(self.log.clock()), progress=progress)

    def get(self, exchange_id: str) -> Event | None:
        """The event of one exchange with its payload (taken from the first observation of that content).

        None when the log does not hold it. Raises IntegrityError when the index misses the id but the log holds
        it (an index that lost entries): the log is scanned for it only when the index holds fewer entries than
        the log has events, so a plain miss costs one count.
        """
        event_id = exchange_id.lower()
        entry = self.log.index.by_exchange_id(event_id)
        if entry is None:
            self._check_index_misses(event_id)
            return None
        return self._with_payload(entry)

    def _check_index_misses(self, event_id: str) -> None:
        index = self.log.index
        if index.count() >= self.log.last_seq:
            return
        needle = event_id.encode()
        for segment, position, raw in self.log.lines():
            if needle not in raw:
                continue
            event = decode_at(raw, f"the segment from seq {segment}", f"offset {position}")
            if event.event_id == event_id:
                raise IntegrityError(
                    f"exchange {event_id} is in the log at seq {event.seq}, but {self.root / 'log' / 'index.sqlite'} "
                    "lacks it: run `eventlog reindex` to rebuild the index from the segments")

    def history(self, source_system: str, entity_type: str, natural_key: str) -> list[Event]:
        """Every observation of one natural key, in log order, without payloads."""
        key = exchange_key(source_system, entity_type, natural_key)
        assert key is not None
        return [self.log.read_at(entry) for entry in self.log.index.by_key(key)]

    def _with_payload(self, entry: IndexEntry) -> Event:
        event = self.log.read_at(entry)
        if event.type != "revisited" or entry.content_sha256 is None:
            return event
        first = self.log.index.first_payload(entry.content_sha256)
        if first is None:
            return event
        source = self.log.read_at(first).body
        body = dict(event.body, request=source.get("request"), response=source.get("response"))
        return msgspec.structs.replace(event, body=body)
