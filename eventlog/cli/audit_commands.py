"""Audit commands: history of a key (which version was current when), provenance of one exchange, version diffs."""

from __future__ import annotations

from typing import Any, Literal, cast

import click
import msgspec

from eventlog.app.audit import (
    DIFF_PARTS,
    Change,
    Diff,
    DiffPart,
    History,
    ProvenanceReport,
    diff,
    history,
    provenance,
)
from eventlog.cli.app import app, cli, emit, json_option

_SHORT = 12
_VALUE_WIDTH = 120
_PROVENANCE_KEYS = ("runner", "host", "git_sha", "connector_version")


def _key_options(func: Any) -> Any:
    for option in reversed((
        click.option("--source", "source_system", required=True, help="Source system, e.g. wikipedia-en."),
        click.option("--entity", "entity_type", required=True, help="Entity type, e.g. page."),
        click.option("--key", "natural_key", required=True, help="Natural key, e.g. a page title."),
    )):
        func = option(func)
    return func


@cli.command(name="history")
@_key_options
@click.option("--order", type=click.Choice(["observed", "log"]), default="observed", show_default=True,
              help="Row order: by observed time, or by log order (seq).")
@json_option
@click.pass_context
def history_command(ctx: click.Context, source_system: str, entity_type: str, natural_key: str,
                    order: str) -> None:
    """Every observation of one key, with the version current after each and each version's current periods."""
    with app(ctx).open_lake() as lake:
        result = history(lake, source_system, entity_type, natural_key,
                         order=cast(Literal["observed", "log"], order))
    emit(ctx, result, lambda: _history_text(result))


@cli.command(name="provenance")
@click.argument("exchange_id")
@json_option
@click.pass_context
def provenance_command(ctx: click.Context, exchange_id: str) -> None:
    """Everything known about one observation: envelope, provenance, identity, payload and where its line lives."""
    with app(ctx).open_lake() as lake:
        result = provenance(lake, exchange_id)
    emit(ctx, result, lambda: _provenance_text(result))


@cli.command(name="diff")
@_key_options
@click.option("--from", "from_ref", default="previous", show_default=True,
              help="Old version: content hash prefix, exchange id, 'previous' or 'current'.")
@click.option("--to", "to_ref", default="current", show_default=True,
              help="New version: content hash prefix, exchange id, 'previous' or 'current'.")
@click.option("--part", type=click.Choice(DIFF_PARTS), default="response", show_default=True,
              help="What to compare: the response, the request, or both.")
@json_option
@click.pass_context
def diff_command(ctx: click.Context, source_system: str, entity_type: str, natural_key: str, from_ref: str,
                 to_ref: str, part: str) -> None:
    """What changed between two versions of a key, as JSON paths (added, removed, changed)."""
    with app(ctx).open_lake() as lake:
        result = diff(lake, source_system, entity_type, natural_key, from_ref=from_ref, to_ref=to_ref,
                      part=cast(DiffPart, part))
    emit(ctx, result, lambda: _diff_text(result))


def _provenance_summary(provenance_map: dict[str, Any]) -> str:
    keys = [key for key in _PROVENANCE_KEYS if key in provenance_map]
    keys += sorted(key for key in provenance_map if key not in _PROVENANCE_KEYS)
    return " ".join(f"{key}={_compact(provenance_map[key], 40)}" for key in keys) or "-"


def _compact(value: Any, width: int = _VALUE_WIDTH) -> str:
    text = value if isinstance(value, str) and " " not in value else msgspec.json.encode(value).decode()
    return text if len(text) <= width else text[:width - 1] + "…"


def _history_text(result: History) -> str:
    lines = [f"{result.source_system}/{result.entity_type}/{result.natural_key}: {len(result.rows)} observation(s), "
             f"{len(result.versions)} version(s), current {(result.current or '-')[:_SHORT]} "
             f"(rows in {result.order} order; * = became current)",
             f"{'seq':>8}  {'type':<9}  {'observed_at_utc':<27}  {'recorded_at_utc':<27}  {'content':<12}  "
             f"{'current':<12}  {'exchange_id':<36}  {'origin':<8}  provenance"]
    for row in result.rows:
        mark = "*" if row.made_current else " "
        lines.append(f"{row.seq:>8}  {row.type:<9}  {row.observed_at_utc:<27}  {row.recorded_at_utc:<27}  "
                     f"{row.content_sha256[:_SHORT]}  {row.current_after[:_SHORT]}{mark} {row.exchange_id}  "
                     f"{row.origin[:8]}  {_provenance_summary(row.provenance)}")
    lines.append("versions (current periods in observed time):")
    for version in result.versions:
        periods = ", ".join(f"{period.current_from_utc} .. {period.current_until_utc or 'now'}"
                            for period in version.periods) or "never current"
        lines.append(f"  {version.content_sha256[:_SHORT]}  {version.observations} observation(s), first "
                     f"{version.first_exchange_id} (seq {version.first_seq}){'  [current]' if version.current else ''}")
        lines.append(f"      current: {periods}")
    if result.resolutions:
        lines.append("resolutions:")
        for resolution in result.resolutions:
            lines.append(f"  seq {resolution.seq} {resolution.recorded_at_utc} {resolution.strategy or '-'}: "
                         f"winner {(resolution.winner or '-')[:_SHORT]} of "
                         f"{', '.join(item[:_SHORT] for item in resolution.candidates) or '-'} "
                         f"(event {resolution.event_id})")
    return "\n".join(lines)


def _provenance_text(result: ProvenanceReport) -> str:
    placement = result.placement
    lines = [
        f"exchange_id        {result.exchange_id}",
        f"type               {result.type}",
        f"seq                {result.seq}",
        f"recorded_at_utc    {result.recorded_at_utc}",
        f"observed_at_utc    {result.envelope.get('observed_at_utc') or '-'}",
        f"origin             {result.origin}",
        f"digest             {result.digest}",
        f"prev               {result.prev}",
        f"content_sha256     {result.content_sha256 or '-'}",
        f"key                {result.envelope.get('source_system', '-')}/{result.envelope.get('entity_type', '-')}/"
        f"{result.envelope.get('natural_key') or '-'}",
        f"provenance         {_provenance_summary(result.provenance)}",
        f"redactions_applied {', '.join(result.redactions_applied) or '-'}",
    ]
    if result.first_observation is not None:
        first = result.first_observation
        lines.append(f"payload            revisit of {first.exchange_id} (seq {first.seq})")
    elif result.payload == "revisit":
        lines.append("payload            revisit; the first observation of this content is not in this lake")
    else:
        lines.append(f"payload            {result.payload}")
    lines.append(f"segment            {placement.segment} ({placement.state}), offset {placement.offset}, "
                 f"{placement.length} bytes")
    if placement.seal is not None:
        lines.append(f"seal               {placement.seal} (sealed {placement.sealed_at_utc or '-'})")
    if placement.archive is not None:
        lines.append(f"archive            {placement.archive}")
    return "\n".join(lines)


def _change_text(change: Change) -> list[str]:
    if change.op == "added":
        return [f"+ {change.path}: {_compact(change.new)}"]
    if change.op == "removed":
        return [f"- {change.path}: {_compact(change.old)}"]
    if change.text_diff is not None:
        return [f"~ {change.path}: text, {change.old_length} -> {change.new_length} characters",
                *(f"    {line}" for line in change.text_diff)]
    return [f"~ {change.path}: {_compact(change.old)} -> {_compact(change.new)}"]


def _diff_text(result: Diff) -> str:
    old, new = result.from_version, result.to_version
    lines = [f"{result.source_system}/{result.entity_type}/{result.natural_key} ({result.part})",
             f"--- {old.content_sha256[:_SHORT]}  observed {old.observed_at_utc}  exchange {old.exchange_id}",
             f"+++ {new.content_sha256[:_SHORT]}  observed {new.observed_at_utc}  exchange {new.exchange_id}"]
    for change in result.changes:
        lines.extend(_change_text(change))
    lines.append(f"{result.changed} changed, {result.added} added, {result.removed} removed")
    return "\n".join(lines)
