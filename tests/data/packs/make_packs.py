"""Write the fixture packs in the original tool's layout, as that tool wrote them (run from the repository root).

The original tool hashed content as json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":")) of
NFC-normalised values, wrote envelopes with json.dumps(ensure_ascii=False) in its own field order, timestamps with
datetime.isoformat() ("+00:00"), index lines {"h", "k", "id", "t", "f"}, and numbered chunks with one counter per
writer, filing a whole chunk under the date of its first record (so chunk-0002 below spans midnight).

- original/          a complete pack: 7 records, one edited after it was hashed, several with null provenance, one
                     whose request carries a header named only in the manifest's redaction_policy, one whose
                     response holds a string its redaction pattern matches
- naive-timestamp/   the same pack with one record observed at a time without offset
- duplicate-record/  the same pack with one record written twice
"""

from __future__ import annotations

import hashlib
import json
import shutil
import unicodedata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

MANIFEST = {
    "dataset_name": "wookieepedia-pages",
    "description": "Star Wars wiki page snapshots",
    "owner": "data-team",
    "exchange_type": "mediawiki",
    "source_system": "wookieepedia",
    "entity_type": "page",
    "sql_target": {"schema": "lake", "table": "RawExchangeRecord", "natural_key_column": "natural_key",
                   "hash_column": "content_sha256"},
    "sync_policy": {"direction_default": "bidirectional", "conflict_strategy": "prefer_newest"},
    "redaction_policy": {"enabled": True, "patterns": ["internal-[0-9]{6}"],
                         "headers_to_redact": ["authorization", "cookie", "x-tenant-id"]},
    "encryption_policy": {"enabled": False, "algorithm": "aes-256-gcm", "key_source": "env",
                          "key_env_var": "SNAPSHOT_ENCRYPTION_KEY", "key_file_path": None},
    "created_at": "2024-01-15T09:00:00+00:00",
    "updated_at": "2024-01-16T08:00:00+00:00",
    "version": 1,
}

# (title, observed time, revision, extra request headers, provenance)
PAGES = [
    ("Luke_Skywalker", "2024-01-15T10:30:00+00:00", 1, {}, {"runner_name": "wiki-runner", "host": "ingest-1",
                                                             "git_sha": "abc1234", "connector_version": "0.3"}),
    ("Darth_Vader", "2024-01-15T10:31:00+00:00", 1, {}, None),
    ("Leia_Organa", "2024-01-15T11:00:00+00:00", 1, {"X-Tenant-Id": "tenant-rebel-7731"}, None),
    ("Han_Solo", "2024-01-15T23:58:30+00:00", 1, {}, None),
    ("Chewbacca", "2024-01-15T23:59:59.500000+00:00", 1, {}, None),
    ("Yoda", "2024-01-16T00:00:01+00:00", 1, {}, None),
    ("Luke_Skywalker", "2024-01-16T07:45:00+00:00", 2, {}, None),
]
EDITED = "Darth_Vader"  # its response was changed after the hash was computed
CHUNK = 3


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {_nfc(k): _nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    return value


def original_hash(record: dict[str, Any]) -> str:
    content = {key: record[key] for key in ("exchange_type", "source_system", "entity_type", "natural_key",
                                            "request", "response")}
    text = json.dumps(_nfc(content), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def records() -> list[dict[str, Any]]:
    made = []
    for number, (title, observed, revision, headers, provenance) in enumerate(PAGES, start=1):
        record: dict[str, Any] = {
            "exchange_id": f"5e1f0c2e-5b1a-4c3e-8f00-{number:012d}",
            "exchange_type": "mediawiki",
            "source_system": "wookieepedia",
            "entity_type": "page",
            "natural_key": title,
            "request": {"method": "GET", "headers": {"User-Agent": "holocron/0.3", **headers},
                        "url": f"https://starwars.fandom.com/api.php?action=parse&page={title}"},
            "response": {"status": 200, "body": {"title": title, "revid": 1000 * number + revision,
                                                 "text": f"{title.replace('_', ' ')}, revision {revision}."
                                                         + (" Ref INTERNAL-004211." if title == "Yoda" else "")}},
            "observed_at_utc": observed,
            "provenance": provenance,
            "content_sha256": "",
            "schema_version": 1,
            "tags": [],
            "redactions_applied": ["request_headers", "request_secrets", "response_secrets"],
            "response_ref": None,
        }
        record["content_sha256"] = original_hash(record)
        if title == EDITED:
            record["response"]["body"]["text"] += " (edited by hand)"
        made.append(record)
    return made


def write_pack(folder: Path, lines: list[dict[str, Any] | str]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "records").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(MANIFEST, indent=2, ensure_ascii=False), encoding="utf-8")
    index = []
    for counter, start in enumerate(range(0, len(lines), CHUNK), start=1):
        chunk = lines[start:start + CHUNK]
        first = chunk[0]
        day = (first if isinstance(first, str) else json.dumps(first))  # the date of the chunk's first record
        date = json.loads(day)["observed_at_utc"][:10]
        path = folder / "records" / date[:4] / date / f"chunk-{counter:04d}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            for line in chunk:
                out.write((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n")
        for line in chunk:
            record = json.loads(line) if isinstance(line, str) else line
            index.append({"h": record["content_sha256"],
                          "k": f"{record['source_system']}|{record['entity_type']}|{record['natural_key'] or ''}",
                          "id": record["exchange_id"], "t": record["observed_at_utc"],
                          "f": path.relative_to(folder).as_posix()})
    with open(folder / "index.jsonl", "w", encoding="utf-8") as out:
        for entry in index:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def main() -> None:
    made = records()
    write_pack(HERE / "original", list(made))
    naive = [dict(record) for record in made]
    naive[4]["observed_at_utc"] = naive[4]["observed_at_utc"].removesuffix("+00:00")
    write_pack(HERE / "naive-timestamp", list(naive))
    write_pack(HERE / "duplicate-record", [*made[:3], made[1], *made[3:]])


if __name__ == "__main__":
    main()
