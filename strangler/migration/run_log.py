"""`migration_runs` rows: one per run (and topic), with progress, rate and ETA for the UI and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg


def start_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    migration: str,
    partition_key: str,
    *,
    dry_run: bool,
    code_version: str,
    total: int,
) -> None:
    """Insert the run, or reset it to running when the same run id starts again."""
    conn.execute(
        "INSERT INTO migration_state.migration_runs"
        " (run_id, migration, partition_key, status, dry_run, code_version, total_items)"
        " VALUES (%s, %s, %s, 'running', %s, %s, %s)"
        " ON CONFLICT (run_id) DO UPDATE SET status = 'running', total_items = EXCLUDED.total_items,"
        " processed_items = 0, failed_items = 0, updated_at = now(), finished_at = NULL,"
        " error = NULL",
        (run_id, migration, partition_key, dry_run, code_version, total),
    )


def update_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    *,
    processed: int,
    failed: int,
    rate: float,
    eta: datetime | None,
) -> None:
    conn.execute(
        "UPDATE migration_state.migration_runs SET processed_items = %s, failed_items = %s,"
        " rate_per_s = %s, eta_at = %s, updated_at = now() WHERE run_id = %s",
        (processed, failed, rate, eta, run_id),
    )


def finish_run(
    conn: psycopg.Connection[Any],
    run_id: str,
    *,
    status: str,
    processed: int,
    failed: int,
    rate: float,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE migration_state.migration_runs SET status = %s, error = %s, processed_items = %s,"
        " failed_items = %s, rate_per_s = %s, eta_at = NULL, updated_at = now(),"
        " finished_at = now() WHERE run_id = %s",
        (status, error, processed, failed, rate, run_id),
    )
