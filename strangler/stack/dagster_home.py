"""The Dagster instance of the local stack: runs, events and schedules in its Postgres."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from strangler.settings import Settings

EVENT_BATCH_SIZE = "1000"
"""DAGSTER_EVENT_BATCH_SIZE where Strangler launches runs: a range run writes its planned events
and per-partition materializations in batches of this many instead of one Postgres write (and
connection) each; 0 turns batching off."""


def event_batch_env() -> dict[str, str]:
    """The env that makes Dagster batch a run's events (an operator's own value wins)."""
    return {
        "DAGSTER_EVENT_BATCH_SIZE": os.environ.get("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    }


def dagster_storage_url(settings: Settings) -> str:
    """The stack's Postgres URL, pointed at the Dagster database."""
    parsed = urlparse(settings.postgres_url)
    return urlunparse(parsed._replace(path=f"/{settings.dagster_postgres_db}"))


def write_dagster_home(settings: Settings) -> Path:
    """Render DAGSTER_HOME/dagster.yaml; the password, if any, stays an env reference."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    parsed = urlparse(dagster_storage_url(settings))
    password = (
        "      password: {env: STRANGLER_POSTGRES_PASSWORD}\n" if settings.postgres_password else ""
    )
    (home / "dagster.yaml").write_text(
        "# Written by `strangler stack up`; production uses deploy/dagster.yaml.\n"
        "storage:\n"
        "  postgres:\n"
        "    postgres_db:\n"
        f"      username: {parsed.username or 'postgres'}\n"
        f"{password}"
        f"      hostname: {parsed.hostname or '127.0.0.1'}\n"
        f"      port: {parsed.port or 5432}\n"
        f"      db_name: {settings.dagster_postgres_db}\n"
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "concurrency:\n"
        "  runs:\n"
        "    max_concurrent_runs: 4\n"
        "  pools:\n"
        "    default_limit: 1\n"
        "telemetry:\n"
        "  enabled: false\n"
    )
    return home
