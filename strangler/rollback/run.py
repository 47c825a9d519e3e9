"""The whole rollback as one call (the CLI's dry run and tests; the job runs the same steps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from strangler.rollback.execute import execute
from strangler.rollback.plan import Plan, build_plan
from strangler.rollback.report import Report, save_report, set_request_status
from strangler.rollback.scope import Scope
from strangler.rollback.snapshot import snapshot_dir, take_snapshot
from strangler.rollback.targets import Targets
from strangler.rollback.validate import validate

T = TypeVar("T")


def timed(report: Report, step: str, fn: Callable[[], T]) -> T:
    started = time.monotonic()
    try:
        return fn()
    finally:
        report.durations_s[step] = round(time.monotonic() - started, 3)


def run_rollback(
    targets: Targets,
    scope: Scope,
    request_id: str,
    *,
    dry_run: bool = False,
    plan: Plan | None = None,
) -> Report:
    """plan -> (dry run stops) snapshot -> execute -> validate -> report; errors are reported."""
    with psycopg.connect(targets.postgres_conninfo) as conn:
        set_request_status(conn, request_id, "running")
        conn.commit()
    started = time.monotonic()
    the_plan = plan or build_plan(targets, scope, dry_run=dry_run)
    report = Report(request_id, dry_run, the_plan)
    report.durations_s["plan"] = round(time.monotonic() - started, 3)
    try:
        if not dry_run:
            report.snapshot = timed(
                report, "snapshot", lambda: take_snapshot(targets, request_id, the_plan)
            )
            report.executed = timed(report, "execute", lambda: execute(targets, the_plan))
            report.validation = timed(report, "validate", lambda: validate(targets, the_plan))
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with psycopg.connect(targets.postgres_conninfo) as conn:
            save_report(conn, report, snapshot_dir(targets, request_id))
            conn.commit()
    return report
