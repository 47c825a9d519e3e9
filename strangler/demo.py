"""The main job on the local stack: seed the sample monolith and migrate every day through Dagster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import psycopg
from dagster._core.definitions.observe import observe  # no public API observes in-process (1.13)

from strangler.assets.event_store import event_store_events
from strangler.assets.monolith import monolith_sources
from strangler.db.migrations import migrate
from strangler.resources.factory import build_resources
from strangler.sample.seed import SeedReport, seed
from strangler.settings import Settings


@dataclass(frozen=True)
class DayResult:
    day: str
    run_id: str
    source_rows: int
    migrated: int
    failed: int
    events_written: int
    seconds: float


def seed_sample(
    settings: Settings, *, days: int, scale: float, dirty_rate: float, seed_value: int
) -> SeedReport:
    migrate(settings.postgres_url)
    with psycopg.connect(settings.postgres_url) as conn:
        report = seed(conn, seed=seed_value, days=days, scale=scale, dirty_rate=dirty_rate)
        conn.commit()
    return report


def migrate_days(
    settings: Settings,
    days: list[date],
    instance: dg.DagsterInstance,
    report: Callable[[str], None],
) -> list[DayResult]:
    """One Dagster run per day, recorded in the stack's instance (visible in the UI)."""
    resources = build_resources(settings)
    observe(monolith_sources, instance=instance, resources={"postgres": resources["postgres"]})
    results: list[DayResult] = []
    for day in days:
        outcome = dg.materialize(
            [event_store_events],
            partition_key=day.isoformat(),
            instance=instance,
            resources={"postgres": resources["postgres"], "kafka": resources["kafka"]},
            tags={"strangler/job": "demo"},
        )
        if not outcome.success:
            raise RuntimeError(
                f"materializing event_store/events for {day} failed (run {outcome.run_id})"
            )
        meta = outcome.asset_materializations_for_node(event_store_events.op.name)[0].metadata
        result = DayResult(
            day.isoformat(),
            outcome.run_id,
            int(meta["source_rows"].value),  # type: ignore[arg-type]
            int(meta["migrated"].value),  # type: ignore[arg-type]
            int(meta["failed"].value),  # type: ignore[arg-type]
            int(meta["events_written"].value),  # type: ignore[arg-type]
            float(meta["duration_s"].value),  # type: ignore[arg-type]
        )
        report(
            f"{result.day}: {result.source_rows} rows -> {result.migrated} migrated, "
            f"{result.failed} failed, {result.events_written} new events ({result.seconds:.1f}s)"
        )
        results.append(result)
    return results


def sample_days(report: SeedReport) -> list[date]:
    return [report.start_day + timedelta(days=i) for i in range(report.days)]
