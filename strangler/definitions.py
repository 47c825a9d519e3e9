"""The one `Definitions` object of the code location."""

from __future__ import annotations

import dagster as dg
from dagster_k8s import k8s_job_executor

from strangler.assets.clickhouse_tables import clickhouse_assets
from strangler.assets.event_store import event_store_events, event_store_reference
from strangler.assets.kafka_topics import kafka_reference_topics, kafka_topics
from strangler.assets.monolith import monolith_sources
from strangler.assets.weaviate_collections import weaviate_assets, weaviate_checks
from strangler.checks.consistency import check_sensors, consistency_checks
from strangler.checks.freshness import freshness_checks
from strangler.checks.partition_live import partition_live
from strangler.checks.source_drift import source_drift_checks
from strangler.resources.factory import build_resources
from strangler.rollback.job import rollback_jobs
from strangler.sensors.backfill import backfill_sensors
from strangler.sensors.rollback import rollback_sensors
from strangler.settings import Settings, get_settings


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """Multiprocess on one machine, one pod a step in Kubernetes (see "From laptop to cluster")."""
    if settings.executor == "k8s":
        return k8s_job_executor
    if settings.executor == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({"max_concurrent": settings.max_concurrent_steps})


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            *monolith_sources,
            event_store_events,
            *([event_store_reference] if event_store_reference else []),
            kafka_topics,
            *([kafka_reference_topics] if kafka_reference_topics else []),
            *clickhouse_assets,
            *weaviate_assets,
        ],
        asset_checks=[
            *weaviate_checks,
            *consistency_checks,
            *freshness_checks,
            partition_live,
            *source_drift_checks,
        ],
        sensors=[*check_sensors, *rollback_sensors, *backfill_sensors],
        jobs=[*rollback_jobs],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


defs = build_definitions(get_settings())
