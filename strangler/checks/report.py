"""Storing and rendering check reports (`migration_state.consistency_reports`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from strangler.checks.outcome import CheckOutcome

Source = Literal["cli", "sensor", "asset_check"]
Format = Literal["table", "json", "markdown"]


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def store_report(
    conn: psycopg.Connection[Any],
    outcomes: Sequence[CheckOutcome],
    *,
    source: Source,
    report_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """One row per outcome, all under one report id (returned)."""
    report_id = report_id or uuid.uuid4()
    if outcomes:
        conn.cursor().executemany(
            "INSERT INTO migration_state.consistency_reports (report_id, source, partition_key,"
            " system, check_name, target, status, severity, left_label, left_count, right_label,"
            " right_count, offending, reproduce, description, details, duration_s)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    report_id,
                    source,
                    o.partition_key,
                    o.system,
                    o.name,
                    o.target,
                    o.status,
                    o.severity,
                    o.left_label,
                    o.left_count,
                    o.right_label,
                    o.right_count,
                    Jsonb(_json(o.offending)),
                    o.reproduce,
                    o.description,
                    Jsonb(_json(o.details)),
                    max(o.duration_s, 0.0),
                )
                for o in outcomes
            ],
        )
    conn.commit()
    return report_id


def render(outcomes: Sequence[CheckOutcome], fmt: Format, console: Console | None = None) -> str:
    """The report as text (json, markdown) or printed as a rich table (returns '')."""
    if fmt == "json":
        return json.dumps([o.to_dict() for o in outcomes], indent=2, default=str)
    if fmt == "markdown":
        lines = [
            "| partition | check | target | status | counts | culprits |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for o in outcomes:
            counts = (
                f"{o.left_label}={o.left_count} {o.right_label}={o.right_count}"
                if o.left_label
                else ""
            )
            culprits = "<br>".join(o.offending[:5]).replace("|", "\\|")
            lines.append(
                f"| {o.partition_key} | {o.name} | {o.target} | {o.status} | {counts} | {culprits} |"
            )
        failed = sum(1 for o in outcomes if not o.passed)
        lines.append("")
        lines.append(f"{len(outcomes)} checks, {failed} not passed.")
        return "\n".join(lines)
    table = Table(title="consistency report")
    for column in ("partition", "check", "target", "status", "counts", "culprits"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        colour = {"passed": "green", "failed": "red", "warning": "yellow"}[o.status]
        table.add_row(
            o.partition_key,
            o.name,
            o.target,
            f"[{colour}]{o.status}[/{colour}]",
            f"{o.left_label}={o.left_count} {o.right_label}={o.right_count}"
            if o.left_label
            else "",
            "\n".join(o.offending[:3]),
        )
    (console or Console()).print(table)
    return ""
