"""The Dagster layer of the check catalogue: partitioned asset checks and the check sensors.

Everything is generated from `strangler.checks.catalogue` for one estate spec: one
multi-asset check per store, declaring each catalogue check on each unit's asset (the event
store, every daily topic, ClickHouse, every searchable aggregate's collection), partitioned
like the asset it guards so every day keeps its own history. Checks the catalogue marks
blocking (event store, Kafka) stop a day that is not whole from flowing on to ClickHouse and
Weaviate in the same run.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg
from pydantic import Field

from strangler.analytics.ddl import DdlOptions, validate_identifier
from strangler.checks import alerts
from strangler.checks.catalogue import (
    CATALOGUE,
    CheckTargets,
    DeclaredCheck,
    StoreChecks,
    declared_checks,
)
from strangler.checks.freshness import build_freshness_checks, build_freshness_sensor
from strangler.checks.outcome import CheckOutcome
from strangler.checks.report import store_report
from strangler.checks.runner import run_partition
from strangler.checks.systems import SYSTEMS, System
from strangler.dagster_preview import partitioned_checks
from strangler.partitions import build_daily_partitions, log_check_evaluations, run_partition_keys
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.schema import CollectionNames
from strangler.settings import Settings, get_settings
from strangler.spec import EstateSpec, current_spec

_settings = get_settings()


class ConsistencyCheckConfig(dg.Config):
    """Where the checked stores live (defaults: the same settings the assets use)."""

    clickhouse_database: str = Field(default=_settings.clickhouse_database)
    collection_prefix: str = Field(default=_settings.weaviate_collection_prefix)


# -- outcome <-> Dagster ---------------------------------------------------------------------


def check_name(outcome_name: str) -> str:
    """`kafka.matches_event_store` -> `matches_event_store` (the asset says the system)."""
    return outcome_name.split(".", 1)[1]


def asset_key_for(outcome: CheckOutcome) -> dg.AssetKey | None:
    """The asset an outcome belongs to (None when the runner recorded no unit)."""
    return dg.AssetKey(list(outcome.asset)) if outcome.asset else None


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


def check_spec(
    declared: DeclaredCheck, partitions_def: dg.PartitionsDefinition
) -> dg.AssetCheckSpec:
    """The Dagster spec of one catalogue check on one asset."""
    with partitioned_checks():
        return dg.AssetCheckSpec(
            declared.check.name,
            asset=dg.AssetKey(list(declared.asset)),
            description=declared.check.description,
            blocking=declared.check.blocking,
            partitions_def=partitions_def,
        )


# -- the asset checks, one multi-asset check per store -------------------------------------------

_RESOURCES: dict[System, set[str]] = {
    "event-store": {"postgres", "monolith"},
    "kafka": {"postgres", "kafka"},
    "clickhouse": {"postgres", "clickhouse"},
    "weaviate": {"postgres", "weaviate", "embedder"},
}
"""The resources each store's checks read."""


def _slug(system: System) -> str:
    return system.replace("-", "_")


def targets_from_resources(
    resources: Any, config: ConsistencyCheckConfig, spec: EstateSpec, settings: Settings
) -> CheckTargets:
    """The check targets of a Dagster run: its resources, the config's names, the spec."""
    postgres: PostgresResource = resources.postgres
    monolith: PostgresResource | None = getattr(resources, "monolith", None)
    kafka: KafkaResource | None = getattr(resources, "kafka", None)
    clickhouse: ClickHouseResource | None = getattr(resources, "clickhouse", None)
    weaviate: WeaviateResource | None = getattr(resources, "weaviate", None)
    embedder: EmbedderResource | None = getattr(resources, "embedder", None)
    return CheckTargets(
        postgres_conninfo=postgres.conninfo(),
        monolith_conninfo=monolith.conninfo() if monolith is not None else None,
        consumer_factory=kafka.consumer if kafka is not None else None,
        topic_prefix=kafka.topic_prefix if kafka is not None else "",
        clickhouse=clickhouse.client if clickhouse is not None else None,
        clickhouse_ddl=DdlOptions(
            database=validate_identifier(config.clickhouse_database, "database name"),
            cluster=settings.clickhouse_cluster,
        ),
        weaviate=weaviate.client if weaviate is not None else None,
        collection_names=CollectionNames(config.collection_prefix),
        dimension=(lambda: embedder.dimension) if embedder is not None else (lambda: None),
        thresholds=settings,
        spec=spec,
    )


def _store_check(
    group: StoreChecks, spec: EstateSpec, settings: Settings | None
) -> dg.AssetChecksDefinition | None:
    declared = declared_checks(spec, [group.system])
    if not declared:
        return None
    partitions_def = build_daily_partitions(spec)
    units = list(dict.fromkeys(d.unit for d in declared))

    @dg.multi_asset_check(
        specs=[check_spec(d, partitions_def) for d in declared],
        can_subset=True,
        name=f"{_slug(group.system)}_consistency",
        required_resource_keys=_RESOURCES[group.system],
        description=f"The {group.system} checks of the check catalogue, per {group.scope}.",
    )
    def store_consistency(
        context: dg.AssetCheckExecutionContext, config: ConsistencyCheckConfig
    ) -> Iterator[dg.AssetCheckResult]:
        targets = targets_from_resources(
            context.resources, config, spec, settings or get_settings()
        )
        wanted = {k.asset_key for k in context.selected_asset_check_keys}
        keys = run_partition_keys(context)
        in_range: list[dg.AssetCheckEvaluation] = []
        with psycopg.connect(targets.postgres_conninfo) as conn:
            for unit in units:
                key = dg.AssetKey(list(unit.asset))
                if key not in wanted:
                    continue
                if len(keys) == 1:
                    yield from _selected(context, group.evaluate(targets, conn, unit, keys[0]), key)
                    continue
                for partition_key in keys:  # a range run: results under their own partition
                    in_range += [
                        to_evaluation(r, key)
                        for r in group.evaluate(targets, conn, unit, partition_key)
                        if dg.AssetCheckKey(key, check_name(r.name))
                        in context.selected_asset_check_keys
                    ]
        log_check_evaluations(context, in_range)
        blocking = {d.check.name for d in declared if d.check.blocking}
        failed = [e for e in in_range if not e.passed and e.check_name in blocking]
        if failed:  # what a failed blocking result does in a single run: stop downstream
            raise dg.Failure(
                description=", ".join(f"{e.check_name} failed for {e.partition}" for e in failed)
            )

    return store_consistency


def _selected(
    context: dg.AssetCheckExecutionContext, outcomes: Iterable[CheckOutcome], key: dg.AssetKey
) -> Iterator[dg.AssetCheckResult]:
    wanted = context.selected_asset_check_keys
    for outcome in outcomes:
        if dg.AssetCheckKey(key, check_name(outcome.name)) in wanted:
            yield to_result(outcome, key)


def build_consistency_checks(
    spec: EstateSpec, settings: Settings | None = None
) -> list[dg.AssetChecksDefinition]:
    """One partitioned multi-asset check per store of the catalogue that the spec gives units."""
    built = (_store_check(group, spec, settings) for group in CATALOGUE)
    return [c for c in built if c is not None]


def consistency_check_keys(spec: EstateSpec) -> list[dg.AssetCheckKey]:
    """The check keys `build_consistency_checks` declares (the catalogue's, on the spec)."""
    return [
        dg.AssetCheckKey(dg.AssetKey(list(d.asset)), d.check.name) for d in declared_checks(spec)
    ]


# -- sensors -----------------------------------------------------------------------------------


def reconcile_targets(
    postgres: PostgresResource,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource | None,
    thresholds: Settings,
    spec: EstateSpec | None = None,
) -> CheckTargets:
    """The check targets of the deployment: its resources and the settings' names."""
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
        spec=spec,
    )


def recent_partitions(
    days: int, now: datetime | None = None, spec: EstateSpec | None = None
) -> list[str]:
    """The last `days` partitions that exist, oldest first."""
    partitions = build_daily_partitions(spec or current_spec())
    keys = partitions.get_partition_keys(current_time=now or datetime.now(UTC))
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
    outcomes: Iterable[CheckOutcome], declared: Iterable[dg.AssetCheckKey]
) -> list[dg.AssetCheckEvaluation]:
    """The outcomes of declared checks as evaluations to report (others, e.g. `runnable`, are
    in the stored report only)."""
    keys = set(declared)
    out = []
    for o in outcomes:
        key = asset_key_for(o)
        if key is None or dg.AssetCheckKey(key, check_name(o.name)) not in keys:
            continue
        out.append(to_evaluation(o, key))
    return out


def reconcile_systems(thresholds: Settings) -> list[System]:
    wanted = [s.strip() for s in thresholds.check_reconcile_systems.split(",") if s.strip()]
    return [s for s in SYSTEMS if s in wanted]


def build_reconciliation_sensor(spec: EstateSpec) -> dg.SensorDefinition:
    """Re-runs the catalogue's checks of the spec on one recent partition per tick."""
    declared = consistency_check_keys(spec)

    @dg.sensor(
        name="consistency_reconciliation",
        minimum_interval_seconds=get_settings().check_reconcile_interval_s,
        description=(
            "Re-runs the consistency checks on one recent partition per tick (round robin over"
            " the last STRANGLER_CHECK_RECONCILE_DAYS) and reports each result on its partition,"
            " so drift after a materialization shows up too; every report is stored in"
            " consistency_reports."
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
        pk = next_partition(
            context.cursor, recent_partitions(thresholds.check_reconcile_days, spec=spec)
        )
        if pk is None:
            return dg.SkipReason("no partitions yet")
        targets = reconcile_targets(
            postgres, kafka, clickhouse, weaviate, embedder, thresholds, spec
        )
        outcomes = run_partition(targets, pk, reconcile_systems(thresholds))
        with postgres.connection() as conn:
            store_report(conn, outcomes, source="sensor")
        failed = [o.summary() for o in outcomes if not o.passed]
        context.log.info(f"{pk}: {len(outcomes)} checks, {len(failed)} not passed")
        for line in failed:
            context.log.warning(line)
        return dg.SensorResult(asset_events=evaluations(outcomes, declared), cursor=pk)

    return consistency_reconciliation


def build_alert_sensor(fallback_keys: Sequence[dg.AssetCheckKey]) -> dg.SensorDefinition:
    """Posts newly failed check evaluations; reads every check of the code location (or
    `fallback_keys` when it runs without a repository, as in tests)."""

    @dg.sensor(
        name="check_failure_alerts",
        minimum_interval_seconds=60,
        description=(
            "Posts each newly failed asset check (consistency and freshness, per partition) once"
            " to STRANGLER_ALERT_WEBHOOK_URL as JSON; a check that passes again re-arms its alert."
        ),
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def check_failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
        thresholds = get_settings()
        state = alerts.AlertState.load(context.cursor)
        repo = context.repository_def
        keys = (
            sorted(repo.asset_graph.asset_check_keys, key=str)
            if repo is not None
            else list(fallback_keys)
        )
        records = alerts.new_evaluations(context.instance, keys, state.after)
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

    return check_failure_alerts


def build_check_sensors(
    spec: EstateSpec, freshness_checks: Sequence[dg.AssetChecksDefinition] | None = None
) -> list[dg.SensorDefinition]:
    """The reconciliation, alert and partition-freshness sensors of the spec's checks.

    Pass the freshness checks the definitions hold (default: built here from the spec)."""
    freshness = (
        list(freshness_checks) if freshness_checks is not None else build_freshness_checks(spec)
    )
    keys = [*consistency_check_keys(spec), *(k for c in freshness for k in c.check_keys)]
    return [
        build_reconciliation_sensor(spec),
        build_alert_sensor(sorted(keys, key=str)),
        build_freshness_sensor(freshness),
    ]


def __getattr__(name: str) -> Any:
    """`consistency_checks` / `check_sensors` of the settings' spec, built on first use."""
    if name == "consistency_checks":
        return build_consistency_checks(current_spec())
    if name == "check_sensors":
        return build_check_sensors(current_spec())
    raise AttributeError(name)
