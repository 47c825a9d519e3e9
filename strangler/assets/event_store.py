"""`event_store/events`: one day of monolith rows as validated domain events + outbox rows."""

from typing import Any

import dagster as dg
from pydantic import Field

from strangler.assets.monolith import OWNERS, monolith_key
from strangler.assets.policies import freshness_policy
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.source import REFERENCE
from strangler.partitions import build_daily_partitions
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

CODE_VERSION = "1"
_settings = get_settings()


class EventStoreMigrationConfig(dg.Config):
    dry_run: bool = Field(
        default=_settings.dry_run,
        description="Validate and count only; nothing is written (default: STRANGLER_DRY_RUN).",
    )
    batch_size: int = Field(default=2_000, ge=1, description="Source rows per transaction.")
    snapshot_every: int = Field(
        default=_settings.snapshot_every,
        ge=1,
        description="Snapshot every N versions (default: STRANGLER_SNAPSHOT_EVERY).",
    )


def migrate_partition(
    context: dg.AssetExecutionContext,
    spec: EstateSpec,
    partition_key: str,
    config: EventStoreMigrationConfig,
    postgres: PostgresResource,
    monolith: PostgresResource,
    kafka: KafkaResource,
) -> dg.MaterializeResult:
    """Run one partition's migration and describe it as the materialization's metadata."""
    result = PartitionMigration(
        postgres.conninfo(),
        partition_key,
        spec=spec,
        source_conninfo=monolith.conninfo(),
        run_id=context.run.run_id,
        options=RunOptions(
            batch_size=config.batch_size,
            dry_run=config.dry_run,
            code_version=CODE_VERSION,
            topic_prefix=kafka.topic_prefix,
            snapshot_every=config.snapshot_every,
        ),
        report=context.log.info,
    ).run()
    if result.failed:
        context.log.warning(
            f"{result.failed} of {result.source_rows} rows of {partition_key} failed validation: "
            + ", ".join(f"{rule}={n}" for rule, n in sorted(result.failures_by_rule.items()))
            + " (see migration_state.failed_entities)"
        )
    return dg.MaterializeResult(
        metadata={
            "dry_run": result.dry_run,
            "source_rows": result.source_rows,
            "migrated": result.migrated,
            "failed": result.failed,
            "skipped": result.skipped,
            "deleted": result.deleted,
            "events_written": result.events_written,
            "events_already_stored": result.events_existing,
            "rows_per_s": dg.FloatMetadataValue(round(result.rate, 1)),
            "duration_s": dg.FloatMetadataValue(round(result.duration_s, 3)),
            "failures_by_rule": dg.JsonMetadataValue(result.failures_by_rule),
            "per_table": dg.JsonMetadataValue(result.per_table),
            "resumed_from": dg.JsonMetadataValue(result.resumed_from),
        }
    )


def build_event_store_asset(spec: EstateSpec) -> dg.AssetsDefinition:
    """`event_store/events` for the spec's daily aggregates."""

    @dg.asset(
        key=["event_store", "events"],
        deps=[monolith_key(a.source.table) for a in spec.daily],
        partitions_def=build_daily_partitions(spec),
        group_name="event_store",
        kinds={"postgres"},
        owners=OWNERS,
        code_version=CODE_VERSION,
        freshness_policy=freshness_policy(),
        description=(
            "Domain events (with their outbox rows, in the same transaction) for the monolith rows "
            "of the partition's day. Deterministic event ids: re-running a day appends nothing "
            "twice. Dirty rows go to migration_state.failed_entities with the rule broken."
        ),
    )
    def event_store_events(
        context: dg.AssetExecutionContext,
        config: EventStoreMigrationConfig,
        postgres: PostgresResource,
        monolith: PostgresResource,
        kafka: KafkaResource,
    ) -> dg.MaterializeResult:
        return migrate_partition(
            context, spec, context.partition_key, config, postgres, monolith, kafka
        )

    return event_store_events


def build_reference_asset(spec: EstateSpec) -> dg.AssetsDefinition | None:
    """`event_store/reference`: reference data (no time column), migrated as a whole."""
    if not spec.reference:
        return None

    @dg.asset(
        key=["event_store", "reference"],
        deps=[monolith_key(a.source.table) for a in spec.reference],
        group_name="event_store",
        kinds={"postgres"},
        owners=OWNERS,
        code_version=CODE_VERSION,
        freshness_policy=freshness_policy(),
        description=(
            "Reference data ("
            + ", ".join(a.name for a in spec.reference)
            + ") as domain events, all rows at once under the partition key `reference`;"
            " a change to any row changes the source's data version, so it is noticed."
        ),
    )
    def event_store_reference(
        context: dg.AssetExecutionContext,
        config: EventStoreMigrationConfig,
        postgres: PostgresResource,
        monolith: PostgresResource,
        kafka: KafkaResource,
    ) -> dg.MaterializeResult:
        return migrate_partition(context, spec, REFERENCE, config, postgres, monolith, kafka)

    return event_store_reference


def build_event_store_assets(spec: EstateSpec) -> list[dg.AssetsDefinition]:
    """The event store's assets of the spec: the daily one and, with reference data, its own."""
    reference = build_reference_asset(spec)
    return [build_event_store_asset(spec), *([reference] if reference else [])]


def __getattr__(name: str) -> Any:
    """`event_store_events` / `event_store_reference` of the configured spec, built on first use."""
    if name == "event_store_events":
        return build_event_store_asset(current_spec())
    if name == "event_store_reference":
        return build_reference_asset(current_spec())
    raise AttributeError(name)
