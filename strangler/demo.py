"""The main job on the local stack: seed the sample monolith, then migrate every day through Dagster."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg

from strangler.db.migrations import migrate
from strangler.sample.seed import SeedReport, seed
from strangler.settings import Settings


def seed_sample(
    settings: Settings, *, days: int, scale: float, dirty_rate: float, seed_value: int
) -> SeedReport:
    migrate(settings.postgres_url)
    with psycopg.connect(settings.postgres_url) as conn:
        report = seed(conn, seed=seed_value, days=days, scale=scale, dirty_rate=dirty_rate)
        conn.commit()
    return report


def sample_days(report: SeedReport) -> list[date]:
    return [report.start_day + timedelta(days=i) for i in range(report.days)]
