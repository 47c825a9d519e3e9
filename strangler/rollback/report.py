"""Step 5: what was planned, snapshotted, removed, reset and validated, and how long it took.

Rows go to `migration_state.rollback_reports` (one per day and store); the whole report is
also rendered as JSON and Markdown (run metadata, and files beside the snapshot).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from strangler.rollback.execute import ExecuteResult
from strangler.rollback.plan import Plan
from strangler.rollback.scope import Scope
from strangler.rollback.snapshot import SnapshotResult
from strangler.rollback.validate import Validation


def create_request(
    conn: psycopg.Connection[Any],
    scope: Scope,
    days: list[str],
    *,
    reason: str,
    requested_by: str,
    dry_run: bool,
    status: str = "pending",
    undo_of: str | None = None,
) -> str:
    """A rollback_requests row (the sensor launches pending ones; the CLI files running ones)."""
    keys = days or [
        f"after {scope.after.isoformat()}"
        if scope.after
        else f"code version > {scope.code_version}"
    ]
    row = conn.execute(
        "INSERT INTO migration_state.rollback_requests"
        " (asset_key, partition_keys, reason, requested_by, dry_run, status, services, after_ts,"
        "  code_version, undo_of, started_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        "         CASE WHEN %s = 'running' THEN now() END)"
        " RETURNING request_id::text",
        (
            "*",
            keys,
            reason,
            requested_by,
            dry_run,
            status,
            list(scope.services),
            scope.after,
            scope.code_version,
            undo_of,
            status,
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])


def set_request_status(
    conn: psycopg.Connection[Any], request_id: str, status: str, run_id: str | None = None
) -> None:
    conn.execute(
        "UPDATE migration_state.rollback_requests SET status = %s,"
        " dagster_run_id = coalesce(%s, dagster_run_id),"
        " started_at = CASE WHEN %s = 'running' THEN coalesce(started_at, now()) ELSE started_at END,"
        " finished_at = CASE WHEN %s IN ('succeeded', 'failed', 'rejected') THEN now() END"
        " WHERE request_id = %s",
        (status, run_id, status, status, request_id),
    )


@dataclass
class Report:
    request_id: str
    dry_run: bool
    plan: Plan
    snapshot: SnapshotResult | None = None
    executed: ExecuteResult | None = None
    validation: Validation | None = None
    durations_s: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        if self.dry_run:
            return "succeeded"
        return "succeeded" if self.validation is not None and self.validation.ok else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "plan": self.plan.to_dict(),
            "snapshot": asdict(self.snapshot) if self.snapshot else None,
            "removed": self.executed.removed if self.executed else None,
            "offset_resets": [asdict(r) for r in self.executed.resets] if self.executed else [],
            "validation": self.validation.to_dict() if self.validation else None,
            "durations_s": self.durations_s,
            "error": self.error,
        }

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def markdown(self) -> str:
        lines = [
            f"# Rollback {self.request_id}: {self.status}{' (dry run)' if self.dry_run else ''}",
            "",
            self.plan.markdown(),
            "",
        ]
        if self.executed:
            lines += [
                "## Removed",
                "",
                "| service | store | day | items |",
                "| --- | --- | --- | ---: |",
            ]
            for service, stores in self.executed.removed.items():
                for store, per_day in stores.items():
                    for day, n in per_day.items():
                        lines.append(f"| {service} | {store} | {day} | {n} |")
            lines.append("")
            if self.executed.resets:
                lines += ["## Consumer-group offsets reset", ""]
                lines += [
                    f"- {r.group} {r.topic}[{r.partition}]: {r.before} -> {r.after}"
                    for r in self.executed.resets
                ]
                lines.append("")
        if self.validation:
            v = self.validation
            lines += [
                "## Validation",
                "",
                f"- reachable: {v.reachable}",
                f"- left over: {v.leftovers or 'nothing'}",
                f"- neighbour days changed: {v.neighbour_changes or 'none'}",
                f"- checks still finding rolled-back data: {v.checks_still_finding or 'none'}",
                f"- neighbour checks that regressed: {v.neighbour_check_regressions or 'none'}",
                "",
            ]
            for day, lines_ in v.neighbour_references_dangling.items():
                lines += [
                    f"References of {day} into the rolled-back days (they resolve again once"
                    " those days are re-materialized or the rollback is undone):",
                    "",
                ]
                lines += [f"- {line}" for line in lines_]
                lines.append("")
            for day, missing in v.checks_report_missing.items():
                lines += [f"Checks reporting {day} missing:", ""]
                lines += [f"- {line}" for line in missing] or ["- none"]
                lines.append("")
        lines += ["## Durations", ""] + [f"- {k}: {s:.2f}s" for k, s in self.durations_s.items()]
        if self.error:
            lines += ["", f"**Error:** {self.error}"]
        return "\n".join(lines)


def _rows(report: Report) -> list[tuple[str, str, str, int | None, int | None, dict[str, Any]]]:
    out: list[tuple[str, str, str, int | None, int | None, dict[str, Any]]] = []
    after = report.validation.after if report.validation else {}
    for day, per in report.plan.counts.items():
        for service, stores in per.items():
            for store, before in stores.items():
                now = after.get(day, {}).get(service, {}).get(store)
                status = "skipped" if report.dry_run else report.status
                out.append((day, f"{service}:{store}", status, before, now, {"service": service}))
    return out


def save_report(conn: psycopg.Connection[Any], report: Report, folder: Path | None) -> None:
    """rollback_reports rows, the request's final status, and JSON/Markdown files."""
    for day, store, status, before, now, details in _rows(report):
        conn.execute(
            "INSERT INTO migration_state.rollback_reports"
            " (request_id, partition_key, store, status, rows_before, rows_after, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (request_id, partition_key, store) DO UPDATE SET status = EXCLUDED.status,"
            " rows_before = EXCLUDED.rows_before, rows_after = EXCLUDED.rows_after,"
            " details = EXCLUDED.details, created_at = now()",
            (report.request_id, day, store, status, before, now, Jsonb(details)),
        )
    set_request_status(conn, report.request_id, report.status)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(report.json(), encoding="utf-8")
        (folder / "report.md").write_text(report.markdown(), encoding="utf-8")


def stamp() -> str:
    return datetime.now().isoformat(timespec="seconds")
