"""Partitioned asset checks over the plain checks, plus the reconciliation and alert sensors.

Each check is partitioned like the asset it guards, so every day keeps its own history.
Checks on `event_store/events` and `kafka/*` are blocking: a day that is not whole there must
not flow on to ClickHouse and Weaviate in the same run.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from strangler.analytics.ddl import DdlOptions, validate_identifier
from strangler.checks import alerts
from strangler.checks import clickhouse as ch_checks
from strangler.checks import event_store as es_checks
from strangler.checks import kafka as kafka_checks
from strangler.checks import weaviate as wv_checks
from strangler.checks.outcome import CheckOutcome
from strangler.checks.report import store_report
from strangler.checks.runner import SYSTEMS, CheckTargets, System, run_partition
from strangler.dagster_preview import partitioned_checks
from strangler.migration.events import TOPICS
from strangler.partitions import daily_partitions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.schema import TYPES, CollectionNames
from strangler.settings import Settings, get_settings

EVENT_STORE_KEY = dg.AssetKey(["event_store", "events"])
CLICKHOUSE_KEY = dg.AssetKey(["clickhouse", "events"])


def kafka_key(aggregate_type: str) -> dg.AssetKey:
    return dg.AssetKey(["kafka", TOPICS[aggregate_type]])


def weaviate_key(aggregate_type: str) -> dg.AssetKey:
    return dg.AssetKey(["weaviate", aggregate_type])


_settings = get_settings()


class ConsistencyCheckConfig(dg.Config):
    """Where the checked stores live (defaults: the same settings the assets use)."""

    clickhouse_database: str = Field(default=_settings.clickhouse_database)
    collection_prefix: str = Field(default=_settings.weaviate_collection_prefix)


# -- outcome <-> Dagster ---------------------------------------------------------------------


def check_name(outcome_name: str) -> str:
    """`kafka.matches_event_store` -> `matches_event_store` (the asset says the system)."""
    return outcome_name.split(".", 1)[1]


def asset_key_for(outcome: CheckOutcome, topic_prefix: str = "") -> dg.AssetKey | None:
    """The asset an outcome belongs to (None for outcomes no asset check declares)."""
    if outcome.system == "event-store":
        return EVENT_STORE_KEY
    if outcome.system == "clickhouse":
        return CLICKHOUSE_KEY
    if outcome.system == "kafka":
        topic = outcome.target.split(",")[0].removeprefix(topic_prefix)
        return dg.AssetKey(["kafka", topic]) if topic in TOPICS.values() else None
    if outcome.system == "weaviate":
        for t in sorted(TYPES, key=len, reverse=True):
            if outcome.target.endswith(t):
                return weaviate_key(t)
    return None


def _metadata(outcome: CheckOutcome) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in outcome.metadata().items():
        if key == "reproduce":
            meta[key] = dg.MetadataValue.md(f"```sql\n{value}\n```") if value else ""
        elif isinstance(value, dict | list):
            meta[key] = dg.JsonMetadataValue(json.loads(json.dumps(value, default=str)))
        elif isinstance(value, float):
            meta[key] = dg.FloatMetadataValue(value)
        elif value is None:
            meta[key] = dg.MetadataValue.null()
        else:
            meta[key] = value
    return meta


def _severity(outcome: CheckOutcome) -> dg.AssetCheckSeverity:
    return (
        dg.AssetCheckSeverity.ERROR if outcome.severity == "ERROR" else dg.AssetCheckSeverity.WARN
    )


def to_result(outcome: CheckOutcome, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name(outcome.name),
        passed=outcome.passed,
        severity=_severity(outcome),
        metadata=_metadata(outcome),
        description=outcome.description,
    )


def to_evaluation(outcome: CheckOutcome, asset_key: dg.AssetKey) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=check_name(outcome.name),
        passed=outcome.passed,
        metadata=_metadata(outcome),
        severity=_severity(outcome),
        description=outcome.description,
        partition=outcome.partition_key,
    )


def _spec(name: str, asset: dg.AssetKey, description: str, blocking: bool) -> dg.AssetCheckSpec:
    with partitioned_checks():
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            description=description,
            blocking=blocking,
            partitions_def=daily_partitions,
        )


def _selected(
    context: dg.AssetCheckExecutionContext, outcomes: Iterable[tuple[CheckOutcome, dg.AssetKey]]
) -> Iterator[dg.AssetCheckResult]:
    wanted = context.selected_asset_check_keys
    for outcome, key in outcomes:
        if dg.AssetCheckKey(key, check_name(outcome.name)) in wanted:
            yield to_result(outcome, key)


# -- event store -------------------------------------------------------------------------------

EVENT_STORE_SPECS = [
    _spec(
        "monolith_accounted",
        EVENT_STORE_KEY,
        "Every monolith row of D has events or an unresolved failed_entities row.",
        True,
    ),
    _spec(
        "versions_ordered",
        EVENT_STORE_KEY,
        "Per aggregate, versions in append order are 1..n (no gap, duplicate or swap).",
        True,
    ),
    _spec(
        "failed_entities_bounded",
        EVENT_STORE_KEY,
        "Unresolved failed_entities of D stay under STRANGLER_CHECK_MAX_UNRESOLVED_FAILED.",
        False,
    ),
]


@dg.multi_asset_check(specs=EVENT_STORE_SPECS, can_subset=True, name="event_store_consistency")
def event_store_consistency(
    context: dg.AssetCheckExecutionContext,
    postgres: PostgresResource,
    monolith: PostgresResource,
) -> Iterator[dg.AssetCheckResult]:
    t = get_settings()
    pk = context.partition_key
    with postgres.connection() as conn, monolith.connection() as source_conn:
        outcomes = [
            es_checks.check_monolith_accounted(
                conn, pk, sample=t.check_sample_keys, monolith=source_conn
            ),
            es_checks.check_store_versions(conn, pk, sample=t.check_sample_keys),
            es_checks.check_failed_entities(
                conn, pk, max_unresolved=t.check_max_unresolved_failed, sample=t.check_sample_keys
            ),
        ]
        conn.rollback()
    yield from _selected(context, ((o, EVENT_STORE_KEY) for o in outcomes))


# -- kafka -------------------------------------------------------------------------------------

_KAFKA_CHECKS = {
    "matches_event_store": (
        "D's events and D's records in the recorded offset ranges match (count, id hash sums).",
        True,
    ),
    "keys_ordered": ("Per key, offsets ascend with aggregate versions.", True),
    "fresh": ("The newest event time of D here is close to the event store's.", False),
    "consumer_lag": ("Consumer groups lag at most STRANGLER_CHECK_MAX_CONSUMER_LAG.", False),
}
KAFKA_SPECS = [
    _spec(name, kafka_key(t), description, blocking)
    for t in TOPICS
    for name, (description, blocking) in _KAFKA_CHECKS.items()
]


@dg.multi_asset_check(specs=KAFKA_SPECS, can_subset=True, name="kafka_consistency")
def kafka_consistency(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource, kafka: KafkaResource
) -> Iterator[dg.AssetCheckResult]:
    t = get_settings()
    pk = context.partition_key
    wanted_assets = {k.asset_key for k in context.selected_asset_check_keys}
    with postgres.connection() as conn:
        for aggregate_type in TOPICS:
            key = kafka_key(aggregate_type)
            if key not in wanted_assets:
                continue
            k = kafka_checks.check_kafka_day(
                conn,
                kafka.consumer,
                pk,
                topic_prefix=kafka.topic_prefix,
                aggregate_types=[aggregate_type],
                max_freshness_lag_s=t.check_max_freshness_lag_s,
                start_depth=t.check_start_depth,
                leaf_rows=t.check_leaf_rows,
                sample=t.check_sample_keys,
            )
            lag = kafka_checks.check_consumer_lag(
                conn,
                pk,
                topics=[kafka.topic(TOPICS[aggregate_type])],
                max_lag=t.check_max_consumer_lag,
                sample=t.check_sample_keys,
            )
            yield from _selected(context, ((o, key) for o in (k.matches, k.ordered, k.fresh, lag)))


# -- clickhouse --------------------------------------------------------------------------------

CLICKHOUSE_SPECS = [
    _spec(
        "matches_event_store",
        CLICKHOUSE_KEY,
        "D's event ids match the event store; view targets of D equal a direct GROUP BY.",
        False,
    ),
    _spec(
        "known_aggregates",
        CLICKHOUSE_KEY,
        "Every row of D belongs to an aggregate the event store knows.",
        False,
    ),
    _spec(
        "fresh", CLICKHOUSE_KEY, "The newest event time of D is close to the event store's.", False
    ),
]


@dg.multi_asset_check(specs=CLICKHOUSE_SPECS, can_subset=True, name="clickhouse_consistency")
def clickhouse_consistency(
    context: dg.AssetCheckExecutionContext,
    config: ConsistencyCheckConfig,
    postgres: PostgresResource,
    clickhouse: ClickHouseResource,
) -> Iterator[dg.AssetCheckResult]:
    t = get_settings()
    ddl = DdlOptions(
        database=validate_identifier(config.clickhouse_database, "database name"),
        cluster=_settings.clickhouse_cluster,
    )
    with postgres.connection() as conn:
        c = ch_checks.check_clickhouse_day(
            conn,
            clickhouse.client,
            context.partition_key,
            ddl=ddl,
            max_freshness_lag_s=t.check_max_freshness_lag_s,
            start_depth=t.check_start_depth,
            leaf_rows=t.check_leaf_rows,
            sample=t.check_sample_keys,
        )
    yield from _selected(
        context, ((o, CLICKHOUSE_KEY) for o in (c.matches, c.known_aggregates, c.fresh))
    )


# -- weaviate ----------------------------------------------------------------------------------

_WEAVIATE_CHECKS = {
    "matches_event_store": "Every aggregate created on D (not parked) is an object of D.",
    "references_resolve": "No orphan objects; every reference points to an existing object.",
    "vectors_complete": "Every object of D has a finite, non-zero vector of the model's size.",
    "fresh": "The newest event time of D's objects is close to the event store's.",
}
WEAVIATE_SPECS = [
    _spec(name, weaviate_key(t), description, False)
    for t in TYPES
    for name, description in _WEAVIATE_CHECKS.items()
]


@dg.multi_asset_check(specs=WEAVIATE_SPECS, can_subset=True, name="weaviate_consistency")
def weaviate_consistency(
    context: dg.AssetCheckExecutionContext,
    config: ConsistencyCheckConfig,
    postgres: PostgresResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
) -> Iterator[dg.AssetCheckResult]:
    t = get_settings()
    names = CollectionNames(config.collection_prefix)
    wanted_assets = {k.asset_key for k in context.selected_asset_check_keys}
    with postgres.connection() as conn, weaviate.client() as client:
        for aggregate_type in TYPES:
            key = weaviate_key(aggregate_type)
            if key not in wanted_assets:
                continue
            w = wv_checks.check_weaviate_collection(
                conn,
                client,
                context.partition_key,
                aggregate_type,
                names=names,
                dimension=embedder.dimension,
                max_freshness_lag_s=t.check_max_freshness_lag_s,
                sample=t.check_sample_keys,
            )
            yield from _selected(context, ((o, key) for o in w.all()))


consistency_checks: list[dg.AssetChecksDefinition] = [
    event_store_consistency,
    kafka_consistency,
    clickhouse_consistency,
    weaviate_consistency,
]
ALL_SPECS = [*EVENT_STORE_SPECS, *KAFKA_SPECS, *CLICKHOUSE_SPECS, *WEAVIATE_SPECS]


# -- sensors -----------------------------------------------------------------------------------


def reconcile_targets(
    postgres: PostgresResource,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource | None,
    thresholds: Settings,
) -> CheckTargets:
    settings = get_settings()
    return CheckTargets(
        postgres_conninfo=postgres.conninfo(),
        monolith_conninfo=settings.monolith_conninfo(),
        consumer_factory=kafka.consumer,
        topic_prefix=kafka.topic_prefix,
        clickhouse=clickhouse.client,
        clickhouse_ddl=DdlOptions(
            database=settings.clickhouse_database, cluster=settings.clickhouse_cluster
        ),
        weaviate=weaviate.client,
        collection_names=CollectionNames(settings.weaviate_collection_prefix),
        dimension=(lambda: embedder.dimension) if embedder is not None else (lambda: None),
        thresholds=thresholds,
    )


def recent_partitions(days: int, now: datetime | None = None) -> list[str]:
    """The last `days` partitions that exist, oldest first."""
    keys = daily_partitions.get_partition_keys(current_time=now or datetime.now(UTC))
    return list(keys[-days:])


def next_partition(cursor: str | None, recent: Sequence[str]) -> str | None:
    """Round robin over the recent partitions, one per tick, newest first after a full turn."""
    if not recent:
        return None
    ordered = list(reversed(recent))
    if cursor in ordered:
        return ordered[(ordered.index(cursor) + 1) % len(ordered)]
    return ordered[0]


def evaluations(
    outcomes: Iterable[CheckOutcome], topic_prefix: str = ""
) -> list[dg.AssetCheckEvaluation]:
    declared = {spec.key for spec in ALL_SPECS}
    out = []
    for o in outcomes:
        key = asset_key_for(o, topic_prefix)
        if key is None or dg.AssetCheckKey(key, check_name(o.name)) not in declared:
            continue
        out.append(to_evaluation(o, key))
    return out


def _systems(thresholds: Settings) -> list[System]:
    wanted = [s.strip() for s in thresholds.check_reconcile_systems.split(",") if s.strip()]
    return [s for s in SYSTEMS if s in wanted]


@dg.sensor(
    name="consistency_reconciliation",
    minimum_interval_seconds=get_settings().check_reconcile_interval_s,
    description=(
        "Re-runs the consistency checks on one recent partition per tick (round robin over the "
        "last STRANGLER_CHECK_RECONCILE_DAYS) and reports each result on its partition, so drift "
        "after a materialization shows up too; every report is stored in consistency_reports."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def consistency_reconciliation(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
) -> dg.SensorResult | dg.SkipReason:
    thresholds = get_settings()
    pk = next_partition(context.cursor, recent_partitions(thresholds.check_reconcile_days))
    if pk is None:
        return dg.SkipReason("no partitions yet")
    targets = reconcile_targets(postgres, kafka, clickhouse, weaviate, embedder, thresholds)
    outcomes = run_partition(targets, pk, _systems(thresholds))
    with postgres.connection() as conn:
        store_report(conn, outcomes, source="sensor")
    failed = [o.summary() for o in outcomes if not o.passed]
    context.log.info(f"{pk}: {len(outcomes)} checks, {len(failed)} not passed")
    for line in failed:
        context.log.warning(line)
    return dg.SensorResult(asset_events=evaluations(outcomes, kafka.topic_prefix), cursor=pk)


@dg.sensor(
    name="check_failure_alerts",
    minimum_interval_seconds=60,
    description=(
        "Posts each newly failed asset check (consistency and freshness, per partition) once to "
        "STRANGLER_ALERT_WEBHOOK_URL as JSON; a check that passes again re-arms its alert."
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def check_failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
    thresholds = get_settings()
    state = alerts.AlertState.load(context.cursor)
    records = alerts.new_evaluations(context.instance, _check_keys(context), state.after)
    sent = alerts.process(
        records,
        state,
        url=thresholds.alert_webhook_url,
        timeout_s=thresholds.alert_timeout_s,
        log=context.log.info,
    )
    context.update_cursor(state.dump())
    if not records:
        return dg.SkipReason("no new check evaluations")
    return dg.SkipReason(f"{len(records)} evaluations read, {sent} alerts posted")


def _check_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetCheckKey]:
    """Every asset check of the code location (ours and the freshness checks included)."""
    repo = context.repository_def
    if repo is not None:
        return sorted(repo.asset_graph.asset_check_keys, key=str)
    from strangler.checks.freshness import freshness_checks

    keys = {spec.key for spec in ALL_SPECS}
    keys |= {k for c in freshness_checks for k in c.check_keys}
    return sorted(keys, key=str)


def _freshness_sensors() -> list[dg.SensorDefinition]:
    from strangler.checks.freshness import freshness_checks_sensor

    return [freshness_checks_sensor]


check_sensors: list[dg.SensorDefinition] = [
    consistency_reconciliation,
    check_failure_alerts,
    *_freshness_sensors(),
]
