"""The code location's definitions, built from one estate spec and the settings.

`build_definitions(spec, settings)` is the only place that assembles them: the repository's
`defs` (for `dagster dev`, `strangler ui` and the CLI) and the `strangler.Estate` component
(`strangler/component.py`) both call it, so they cannot differ.
"""

from __future__ import annotations

import dagster as dg
from dagster_k8s import k8s_job_executor

from strangler.assets.clickhouse_tables import build_clickhouse_assets
from strangler.assets.event_store import build_event_store_assets
from strangler.assets.kafka_topics import build_kafka_assets
from strangler.assets.monolith import build_monolith_sources
from strangler.assets.weaviate_collections import build_weaviate_assets
from strangler.checks.consistency import build_check_sensors, build_consistency_checks
from strangler.checks.freshness import build_freshness_checks
from strangler.checks.partition_live import build_partition_live
from strangler.checks.source_drift import build_source_drift_checks
from strangler.resources.factory import build_resources
from strangler.rollback.job import build_rollback_jobs
from strangler.sensors.backfill import build_backfill_sensors
from strangler.sensors.rollback import build_rollback_sensors
from strangler.settings import Settings, get_settings
from strangler.spec import EstateSpec, current_spec


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Multiprocess on one machine, one pod a step in Kubernetes (see "From laptop to cluster")."""
    if settings.executor == "k8s":
        return k8s_job_executor
    if settings.executor == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_steps})


def build_definitions(spec: EstateSpec, settings: Settings) -> dg.Definitions:
    """Every asset, check, sensor and job of the estate the spec describes, with its resources."""
    weaviate_assets, weaviate_checks = build_weaviate_assets(spec)
    freshness_checks = build_freshness_checks(spec)
    rollback_jobs = build_rollback_jobs(spec)
    return dg.Definitions(
        assets=[
            *build_monolith_sources(spec),
            *build_event_store_assets(spec),
            *build_kafka_assets(spec),
            *build_clickhouse_assets(spec),
            *weaviate_assets,
        ],
        asset_checks=[
            *weaviate_checks,
            *build_consistency_checks(spec, settings),
            *freshness_checks,
            build_partition_live(spec),
            *build_source_drift_checks(spec),
        ],
        sensors=[
            *build_check_sensors(spec, freshness_checks),
            *build_rollback_sensors(rollback_jobs[0]),
            *build_backfill_sensors(spec),
        ],
        jobs=rollback_jobs,
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


def _configured() -> dg.Definitions:
    settings = get_settings()
    return build_definitions(current_spec(settings.spec), settings)


defs = _configured()
