"""The Lake facade: one folder holding the log, its configuration and (later) projections and archives."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from eventlog.config import (
    CONFIG_NAME,
    LakeConfig,
    SegmentPolicy,
    default_database_url,
    read_config,
    write_config,
)
from eventlog.envelope import ExchangeRecord
from eventlog.errors import LakeError
from eventlog.events import Event
from eventlog.index import IndexEntry, exchange_key
from eventlog.log import AppendResult, EventLog
from eventlog.redaction import RedactionPolicy, Redactor
from eventlog.verify import VerifyReport, verify_log

DEFAULT_LAKE = "lake"


def default_lake_path() -> Path:
    """--lake, else EVENTLOG_LAKE, else ./lake."""
    return Path(os.environ.get("EVENTLOG_LAKE", DEFAULT_LAKE))


class Lake:
    """A lake folder opened for reading and writing.

    Use `Lake.init(path)` to create one and `Lake.open(path)` to open it; both return a Lake that is also a
    context manager. Writes take the single-writer lock per call, so several processes may hold a Lake open.
    """

    def __init__(self, root: Path, config: LakeConfig, *, clock: Callable[[], datetime] | None = None,
                 redaction: RedactionPolicy | None = None) -> None:
        self.root = root
        self.config = config
        policy = RedactionPolicy.from_mapping(config.redaction, source=str(root / CONFIG_NAME))
        if redaction is not None:
            policy = policy.merged(redaction)
        self.redaction = policy
        self.log = EventLog(root / "log", replica_id=config.replica_id, policy=config.segment_policy,
                            redactor=Redactor(policy), durable=config.durability == "fsync",
                            lock_timeout=config.lock_timeout_seconds, max_record_bytes=config.max_record_bytes,
                            clock=clock)

    @classmethod
    def init(cls, path: str | os.PathLike[str], *, database_url: str | None = None, replica_id: str | None = None,
             segment_policy: SegmentPolicy | None = None, redaction: dict[str, Any] | None = None,
             exist_ok: bool = False, clock: Callable[[], datetime] | None = None) -> Lake:
        """Create a lake folder with a fresh replica id; with exist_ok, open an existing one instead."""
        root = Path(path)
        if (root / CONFIG_NAME).exists():
            if exist_ok:
                return cls.open(root, clock=clock)
            raise LakeError(f"{root} is already a lake ({CONFIG_NAME} exists)")
        if redaction is not None:
            RedactionPolicy.from_mapping(redaction, source="the redaction policy")
        fields: dict[str, Any] = {"database_url": database_url, "redaction": redaction or {}}
        if replica_id is not None:
            fields["replica_id"] = replica_id
        if segment_policy is not None:
            fields["segment_policy"] = segment_policy
        config = LakeConfig(**fields)
        for folder in ("log/segments", "log/seals", "snapshots", "archive"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        write_config(root, config)
        return cls(root, config, clock=clock)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Callable[[], datetime] | None = None) -> Lake:
        """Open an existing lake; recovers a torn tail and catches the index up under the writer lock."""
        root = Path(path)
        return cls(root, read_config(root), clock=clock)

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    @property
    def database_url(self) -> str:
        """The SQL mirror's URL: EVENTLOG_DATABASE_URL, else lake.json, else SQLite inside the lake."""
        return (os.environ.get("EVENTLOG_DATABASE_URL") or self.config.database_url
                or default_database_url(self.root))

    def append(self, records: Iterable[ExchangeRecord | dict[str, Any]]) -> AppendResult:
        """Append records as one durable batch (see EventLog.append)."""
        return self.log.append(records)

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        """Every event after `after_seq`, in log order."""
        return self.log.events(after_seq=after_seq)

    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Recompute hashes, chain, seals and seal chain; the report names the first disagreement."""
        return verify_log(self.root / "log", progress=progress)

    def seal(self) -> str | None:
        """Seal the active segment now; returns its seq range, or None when there is nothing to seal."""
        return self.log.seal()

    def reindex(self) -> int:
        """Rebuild log/index.sqlite from the segments."""
        return self.log.reindex()

    def get(self, exchange_id: str) -> Event | None:
        """The event of one exchange with its payload (taken from the first observation of that content)."""
        entry = self.log.index.by_exchange_id(exchange_id.lower())
        return None if entry is None else self._with_payload(entry)

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
