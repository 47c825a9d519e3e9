"""`event_store/events`: one day of monolith rows as validated domain events + outbox rows."""

from collections import Counter
from typing import Any

import dagster as dg
from pydantic import Field

from strangler.assets.monolith import OWNERS, monolith_key
from strangler.assets.policies import freshness_policy
from strangler.dagster_preview import range_backfills
from strangler.migration.partition_run import PartitionResult, RunOptions
from strangler.migration.ranges import PartitionOutcome, migrate_range
from strangler.migration.source import REFERENCE
from strangler.partitions import build_partitions, range_backfill_policy, run_partition_keys
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
    rerun_complete: bool = Field(
        default=False,
        description="In a range run, migrate again the partitions already completed at the"
        " monolith's current version (skipped otherwise). A single partition always runs.",
    )


def migration_metadata(result: PartitionResult) -> dict[str, Any]:
    """One partition's migration as materialization metadata."""
    return {
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


def migrate_partitions(
    context: dg.AssetExecutionContext,
    spec: EstateSpec,
    partition_keys: list[str],
    config: EventStoreMigrationConfig,
    postgres: PostgresResource,
    monolith: PostgresResource,
    kafka: KafkaResource,
) -> dg.MaterializeResult:
    """Migrate the run's partitions: one, as always, or a range (a backfill run), one after
    the other in this run, each partition with its own materialization metadata."""

    ranged = len(partition_keys) > 1
    failing: Counter[str] = Counter()
    """A range run's validation failures per rule (one warning for the run, not one per
    partition: each log line is a Dagster event)."""
    failing_partitions: list[str] = []

    def reported(outcome: PartitionOutcome) -> None:
        result = outcome.result
        if result.failed and ranged:
            failing.update(result.failures_by_rule)
            failing_partitions.append(outcome.partition_key)
        elif result.failed:
            context.log.warning(
                f"{result.failed} of {result.source_rows} rows of {outcome.partition_key} failed"
                " validation: "
                + ", ".join(f"{rule}={n}" for rule, n in sorted(result.failures_by_rule.items()))
                + " (see migration_state.failed_entities)"
            )
        if len(partition_keys) > 1:
            context.add_asset_metadata(
                {**migration_metadata(result), "outcome": outcome.outcome},
                partition_key=outcome.partition_key,
            )

    outcomes = migrate_range(
        postgres.conninfo(),
        partition_keys,
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
        on_partition=reported,
        rerun_complete=config.rerun_complete,
    )
    if len(outcomes) == 1:
        return dg.MaterializeResult(metadata=migration_metadata(outcomes[0].result))
    if failing_partitions:
        context.log.warning(
            f"rows of {len(failing_partitions)} partitions failed validation: "
            + ", ".join(f"{rule}={n}" for rule, n in sorted(failing.items()))
            + " (each partition's count is in its metadata; see migration_state.failed_entities)"
        )
    counts = Counter(o.outcome for o in outcomes)
    return dg.MaterializeResult(
        metadata={
            "range": f"{outcomes[0].partition_key}..{outcomes[-1].partition_key}",
            "range_partitions": len(outcomes),
            "range_migrated": counts["migrated"],
            "range_unchanged": counts["unchanged"],
            "range_empty": counts["empty"],
        }
    )


def build_event_store_asset(spec: EstateSpec) -> dg.AssetsDefinition:
    """`event_store/events` for the spec's daily aggregates."""

    with range_backfills():  # backfill policies are a Dagster 1.13 beta

        @dg.asset(
            key=["event_store", "events"],
            deps=[monolith_key(a.source.table) for a in spec.daily],
            partitions_def=build_partitions(spec),
            backfill_policy=range_backfill_policy(),
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
            return migrate_partitions(
                context, spec, run_partition_keys(context), config, postgres, monolith, kafka
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
        return migrate_partitions(context, spec, [REFERENCE], config, postgres, monolith, kafka)

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
