"""Run the checks of chosen systems for one partition, with plain clients (CLI, sensor, tests)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import weaviate

from strangler.analytics.ddl import DdlOptions
from strangler.checks import clickhouse as ch_checks
from strangler.checks import event_store as es_checks
from strangler.checks import kafka as kafka_checks
from strangler.checks import weaviate as wv_checks
from strangler.checks.outcome import CheckOutcome
from strangler.checks.systems import SYSTEMS, System
from strangler.migration.events import TOPICS
from strangler.migration.partition_run import source_session
from strangler.search.schema import CollectionNames
from strangler.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class CheckTargets:
    """Where each store lives; prefixes and database names keep tests and deployments apart."""

    postgres_conninfo: str
    monolith_conninfo: str | None = None
    """The monolith, when it is not the estate's database (read only)."""
    consumer_factory: kafka_checks.ConsumerFactory | None = None
    topic_prefix: str = ""
    clickhouse: Callable[[], AbstractContextManager[Any]] | None = None
    clickhouse_ddl: DdlOptions = field(default_factory=DdlOptions)
    weaviate: Callable[[], AbstractContextManager[weaviate.WeaviateClient]] | None = None
    collection_names: CollectionNames = field(default_factory=CollectionNames)
    dimension: Callable[[], int | None] = lambda: None
    thresholds: Settings = field(default_factory=Settings)
    kafka_idle_timeout_s: float = 30.0


def _error_outcome(system: str, partition_key: str, exc: BaseException) -> CheckOutcome:
    """A check that could not run is a failed check, with the error as its culprit."""
    return CheckOutcome(
        name=f"{system.replace('-', '_')}.runnable",
        system=system,
        partition_key=partition_key,
        passed=False,
        description=f"The {system} checks could not run.",
        offending=[f"{type(exc).__name__}: {exc}"[:500]],
    )


def run_partition(
    targets: CheckTargets, partition_key: str, systems: Sequence[System] = SYSTEMS
) -> list[CheckOutcome]:
    """Every check of the chosen systems for D; a system that cannot be reached fails its row."""
    t = targets.thresholds
    out: list[CheckOutcome] = []
    with psycopg.connect(targets.postgres_conninfo) as conn:
        for system in systems:
            try:
                out += _run_system(targets, conn, system, partition_key)
            except Exception as exc:  # reported as a failed check, never swallowed
                log.exception("%s checks of %s could not run", system, partition_key)
                conn.rollback()
                out.append(_error_outcome(system, partition_key, exc))
    sample = t.check_sample_keys
    for o in out:
        o.offending = o.offending[:sample]
    return out


def _run_system(
    targets: CheckTargets, conn: psycopg.Connection[Any], system: System, pk: str
) -> list[CheckOutcome]:
    t = targets.thresholds
    sample = t.check_sample_keys
    if system == "event-store":
        with source_session(targets.monolith_conninfo or targets.postgres_conninfo) as monolith:
            accounted = es_checks.check_monolith_accounted(
                conn, pk, sample=sample, monolith=monolith
            )
        outcomes = [
            accounted,
            es_checks.check_store_versions(conn, pk, sample=sample),
            es_checks.check_failed_entities(
                conn, pk, max_unresolved=t.check_max_unresolved_failed, sample=sample
            ),
        ]
        conn.rollback()
        return outcomes
    if system == "kafka":
        if targets.consumer_factory is None:
            raise RuntimeError("no Kafka consumer factory configured")
        outcomes = []
        for aggregate_type in TOPICS:
            k = kafka_checks.check_kafka_day(
                conn,
                targets.consumer_factory,
                pk,
                topic_prefix=targets.topic_prefix,
                aggregate_types=[aggregate_type],
                max_freshness_lag_s=t.check_max_freshness_lag_s,
                start_depth=t.check_start_depth,
                leaf_rows=t.check_leaf_rows,
                sample=sample,
                idle_timeout_s=targets.kafka_idle_timeout_s,
            )
            lag = kafka_checks.check_consumer_lag(
                conn,
                pk,
                topics=kafka_checks.topics_for(targets.topic_prefix, [aggregate_type]),
                max_lag=t.check_max_consumer_lag,
                sample=sample,
            )
            outcomes += [k.matches, k.ordered, k.fresh, lag]
        return outcomes
    if system == "clickhouse":
        if targets.clickhouse is None:
            raise RuntimeError("no ClickHouse client configured")
        c = ch_checks.check_clickhouse_day(
            conn,
            targets.clickhouse,
            pk,
            ddl=targets.clickhouse_ddl,
            max_freshness_lag_s=t.check_max_freshness_lag_s,
            start_depth=t.check_start_depth,
            leaf_rows=t.check_leaf_rows,
            sample=sample,
        )
        return [c.matches, c.known_aggregates, c.fresh]
    if targets.weaviate is None:
        raise RuntimeError("no Weaviate client configured")
    with targets.weaviate() as client:
        return wv_checks.check_weaviate_day(
            conn,
            client,
            pk,
            names=targets.collection_names,
            dimension=targets.dimension(),
            max_freshness_lag_s=t.check_max_freshness_lag_s,
            sample=sample,
        )


def run_range(
    targets: CheckTargets, partition_keys: Sequence[str], systems: Sequence[System] = SYSTEMS
) -> list[CheckOutcome]:
    return [o for pk in partition_keys for o in run_partition(targets, pk, systems)]
