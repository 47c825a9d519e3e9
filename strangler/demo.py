"""The main job on the local stack: seed the sample monolith, then migrate every day through Dagster."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from strangler.db.migrations import migrate
from strangler.sample.seed import SeedReport, seed
from strangler.settings import Settings


def migrated_sample_start(conn: psycopg.Connection[Any]) -> date | None:
    """The first day the event store already holds (None when nothing was migrated yet)."""
    row = conn.execute("SELECT min(partition_day) FROM eventstore.events").fetchone()
    return row[0] if row else None


def seed_sample(
    settings: Settings, *, days: int, scale: float, dirty_rate: float, seed_value: int
) -> SeedReport:
    """Seed the sample; once it was migrated, on the same days as then.

    The sample's days default to the week before today. Re-seeding an estate that already
    holds a migrated sample on later days would give the same row ids other days, so the
    migration would see every row moved; keeping the migrated days makes the main job a no-op
    re-run on any later day (roll the old days back to move the sample).
    """
    migrate(settings.postgres_url)
    with psycopg.connect(settings.postgres_url) as conn:
        start_day = migrated_sample_start(conn)
        report = seed(
            conn,
            seed=seed_value,
            days=days,
            scale=scale,
            dirty_rate=dirty_rate,
            start_day=start_day,
        )
        conn.commit()
    return report


def sample_days(report: SeedReport) -> list[date]:
    return [report.start_day + timedelta(days=i) for i in range(report.days)]
