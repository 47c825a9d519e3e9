"""Partition-aware freshness: "yesterday's partition of each daily asset exists by the deadline".

`FreshnessPolicy.time_window` on the assets (set in the asset modules) looks only at the last
materialization, so a backfill of an old day makes a stale asset look fresh; these checks ask
for the newest complete partition instead. Deadline: STRANGLER_FRESHNESS_DEADLINE_CRON (UTC).
"""

from __future__ import annotations

import dagster as dg

from strangler.dagster_preview import partition_freshness_checks
from strangler.migration.events import TOPICS
from strangler.search.schema import TYPES
from strangler.settings import get_settings

DAILY_ASSETS: list[dg.AssetKey] = [
    dg.AssetKey(["event_store", "events"]),
    *(dg.AssetKey(["kafka", topic]) for topic in TOPICS.values()),
    dg.AssetKey(["clickhouse", "events"]),
    *(dg.AssetKey(["weaviate", t]) for t in TYPES),
]

with partition_freshness_checks():
    freshness_checks: list[dg.AssetChecksDefinition] = list(
        dg.build_time_partition_freshness_checks(
            assets=DAILY_ASSETS,
            deadline_cron=get_settings().freshness_deadline_cron,
            timezone="UTC",
            severity=dg.AssetCheckSeverity.WARN,
        )
    )
    freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        name="partition_freshness_checks",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
