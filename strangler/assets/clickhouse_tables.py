"""`clickhouse/*`: the analytics tables of the spec, one partition at a time (atomic swap).

Thin Dagster layer over strangler.analytics.sink: one op reads partition P (Kafka offset
ranges, or the event store when they are gone) and swaps P into `events`, every current-state
table and the user's analytics tables at once, reporting each table as its own asset. Reference
data (partition key `reference`) is its own unpartitioned asset, loaded and swapped as a whole.
"""

import logging
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from strangler.analytics.ddl import DdlOptions, Schema, build_schema, validate_identifier
from strangler.analytics.range_load import load_range
from strangler.analytics.sink import CONSUMER_GROUP, DayResult, SinkOptions, load_partitions
from strangler.analytics.state import state_table
from strangler.assets.monolith import OWNERS
from strangler.assets.policies import freshness_policy
from strangler.dagster_preview import range_backfills
from strangler.migration.source import REFERENCE
from strangler.partitions import build_partitions, range_backfill_policy, run_partition_keys
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

log = logging.getLogger(__name__)

CODE_VERSION = "2"
GROUP = "clickhouse"
KINDS = {"clickhouse", "kafka"}
EVENTS_KEY = dg.AssetKey(["clickhouse", "events"])
REFERENCE_KEY = dg.AssetKey(["clickhouse", "reference"])

_settings = get_settings()


class ClickHouseSinkConfig(dg.Config):
    database: str = Field(
        default=_settings.clickhouse_database,
        description="ClickHouse database of the analytics tables.",
    )
    cluster: str | None = Field(
        default=_settings.clickhouse_cluster,
        description="ON CLUSTER name (Replicated engines); unset on a single node.",
    )
    consumer_group: str = Field(default=CONSUMER_GROUP, description="Kafka consumer group.")
    insert_batch_rows: int = Field(default=100_000, ge=1, description="Records per insert.")
    track_events: bool = Field(
        default=False,
        description=(
            "Also one microservices.service_processing row per event (an audit trail that"
            " costs about as much as the load)."
        ),
    )
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Give up on a silent topic.")


def _descriptions(spec: EstateSpec, schema: Schema) -> dict[str, str]:
    out = {"events": "One row per domain event of every aggregate (typed columns + payload)."}
    for aggregate in spec.aggregates:
        out[state_table(aggregate)] = (
            f"Current state of {aggregate.name}: the latest version of each row, deletes"
            " honoured (ReplacingMergeTree; read with FINAL)."
        )
    for table in schema.swapped_tables:
        out.setdefault(table, "User analytics (the spec's analytics folder), rebuilt per swap.")
    return out


def _deps(spec: EstateSpec, schema: Schema, table: str, topics: list[str]) -> list[dg.AssetKey]:
    if table == "events":
        return [dg.AssetKey(["kafka", t]) for t in topics]
    sources = {d.source for d in (*schema.derived, *schema.views) if d.target == table}
    return [dg.AssetKey(["clickhouse", s]) for s in sorted(sources)] or [EVENTS_KEY]


def _load(
    context: dg.AssetExecutionContext,
    spec: EstateSpec,
    keys: list[str],
    config: ClickHouseSinkConfig,
    clickhouse: ClickHouseResource,
    kafka: KafkaResource,
    postgres: PostgresResource,
) -> list[DayResult]:
    """Load the run's partitions (one, or a range: one engine open and schema check for all;
    a range leaves alone the partitions with nothing recorded anywhere)."""
    ddl = DdlOptions(
        database=validate_identifier(config.database, "database name"), cluster=config.cluster
    )
    ranged = len(keys) > 1
    started = time.monotonic()
    results = (load_range if ranged else load_partitions)(
        keys,
        clickhouse=clickhouse.client,
        postgres_conninfo=postgres.conninfo(),
        consumer_factory=kafka.consumer,
        topic_prefix=kafka.topic_prefix,
        spec=spec,
        options=SinkOptions(
            ddl=ddl,
            consumer_group=config.consumer_group,
            code_version=CODE_VERSION,
            insert_batch_rows=config.insert_batch_rows,
            idle_timeout_s=config.idle_timeout_s,
            track_events=config.track_events,
        ),
        # a range run's per-batch lines go to the process log: each Dagster log line is an
        # event written to the instance, thousands of them over years of partitions
        log=log.debug if ranged else context.log.info,
    )
    if ranged:
        loaded = [r for r in results if r.source != "nothing"]
        context.log.info(
            f"range {keys[0]}..{keys[-1]}: {len(loaded)} of {len(keys)} partitions loaded,"
            f" {sum(r.events_read for r in loaded)} events, {time.monotonic() - started:.1f} s"
        )
    for result in results:
        if result.fallback_reason:
            context.log.warning(
                f"{result.partition_key}: read from the event store: {result.fallback_reason}"
            )
        if result.rebuilt:
            context.log.info(f"created or rebuilt from events: {', '.join(result.rebuilt)}")
    return results


def _metadata(result: DayResult, table: str) -> dict[str, Any]:
    storage = result.storage.get(table)
    meta: dict[str, Any] = {
        "source": result.source,
        "outcome": "nothing to load" if result.source == "nothing" else "swapped",
        "fallback_reason": result.fallback_reason or "",
        "duration_s": dg.FloatMetadataValue(round(result.duration_s, 3)),
        "rows": result.swap.rows.get(table, 0),
        "bytes_on_disk": storage.bytes_on_disk if storage else 0,
        "compression_ratio": dg.FloatMetadataValue(
            round(storage.compression_ratio, 2) if storage else 0.0
        ),
    }
    if table == "events":
        meta.update(
            {
                "rows_per_s": dg.FloatMetadataValue(round(result.rate, 1)),
                "read_s": dg.FloatMetadataValue(round(result.read_s, 3)),
                "swap_s": dg.FloatMetadataValue(round(result.swap_s, 3)),
                "batches": result.batches,
                "records_landed": result.swap.landed,
                "duplicates_dropped": result.swap.duplicates_dropped,
                "skipped_other_partitions": result.skipped_other_day,
                "offset_ranges": dg.JsonMetadataValue(
                    [
                        {
                            "topic": r.topic,
                            "partition": r.kafka_partition,
                            "start": r.start_offset,
                            "end": r.end_offset,
                        }
                        for r in result.ranges
                    ]
                ),
            }
        )
    return meta


def _range_results(
    context: dg.AssetExecutionContext, schema: Schema, keys: list[str], results: list[DayResult]
) -> Iterator[dg.MaterializeResult]:
    """A range run: each partition's metadata under its own partition, then one result per
    table summing the range."""
    for result in results:
        for table in schema.swapped_tables:
            context.add_asset_metadata(
                _metadata(result, table),
                asset_key=dg.AssetKey(["clickhouse", table]),
                partition_key=result.partition_key,
            )
    loaded = [r for r in results if r.source != "nothing"]
    for table in schema.swapped_tables:
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["clickhouse", table]),
            metadata={
                "range": f"{keys[0]}..{keys[-1]}",
                "range_partitions": len(keys),
                "range_loaded": len(loaded),
                "range_rows": sum(r.swap.rows.get(table, 0) for r in loaded),
            },
        )


def build_clickhouse_assets(
    spec: EstateSpec, schema: Schema | None = None
) -> list[dg.AssetsDefinition]:
    """The spec's ClickHouse assets: every table's daily partitions in one multi-asset and,
    with reference data, `clickhouse/reference` for the `reference` partition of every table."""
    schema = schema or build_schema(spec)
    descriptions = _descriptions(spec, schema)
    daily_topics = sorted({spec.topic_of(a.name) for a in spec.daily})
    reference_topics = sorted({spec.topic_of(a.name) for a in spec.reference})
    out: list[dg.AssetsDefinition] = []
    if spec.daily:
        partitions = build_partitions(spec)
        specs = [
            dg.AssetSpec(
                key=dg.AssetKey(["clickhouse", table]),
                freshness_policy=freshness_policy(),
                deps=_deps(spec, schema, table, daily_topics),
                description=descriptions[table],
                group_name=GROUP,
                kinds=KINDS,
                owners=OWNERS,
                code_version=CODE_VERSION,
                partitions_def=partitions,
            )
            for table in schema.swapped_tables
        ]

        with range_backfills():  # backfill policies are a Dagster 1.13 beta

            @dg.multi_asset(
                name="clickhouse_analytics",
                specs=specs,
                partitions_def=partitions,
                backfill_policy=range_backfill_policy(),
                pool="clickhouse",
                can_subset=False,
                description=(
                    "Loads the partition's events from Kafka by the offset ranges the relay"
                    " recorded (event store when they are gone) and swaps the partition into every"
                    " analytics table at once: events, current state per aggregate, the user's"
                    " analytics. A range run loads its partitions one after the other in one"
                    " engine session, each swapped on its own."
                ),
            )
            def clickhouse_analytics(
                context: dg.AssetExecutionContext,
                config: ClickHouseSinkConfig,
                clickhouse: ClickHouseResource,
                kafka: KafkaResource,
                postgres: PostgresResource,
            ) -> Iterator[dg.MaterializeResult]:
                keys = run_partition_keys(context)
                results = _load(context, spec, keys, config, clickhouse, kafka, postgres)
                if len(keys) == 1:
                    for table in schema.swapped_tables:
                        yield dg.MaterializeResult(
                            asset_key=dg.AssetKey(["clickhouse", table]),
                            metadata=_metadata(results[0], table),
                        )
                    return
                yield from _range_results(context, schema, keys, results)

        out.append(clickhouse_analytics)
    if spec.reference:

        @dg.asset(
            key=REFERENCE_KEY,
            deps=[dg.AssetKey(["kafka", t]) for t in reference_topics],
            freshness_policy=freshness_policy(),
            group_name=GROUP,
            kinds=KINDS,
            owners=OWNERS,
            code_version=CODE_VERSION,
            pool="clickhouse",
            description=(
                "The `reference` partition of every analytics table (reference data: "
                + ", ".join(a.name for a in spec.reference)
                + "), loaded and swapped as a whole."
            ),
        )
        def clickhouse_reference(
            context: dg.AssetExecutionContext,
            config: ClickHouseSinkConfig,
            clickhouse: ClickHouseResource,
            kafka: KafkaResource,
            postgres: PostgresResource,
        ) -> dg.MaterializeResult:
            (result,) = _load(context, spec, [REFERENCE], config, clickhouse, kafka, postgres)
            meta = _metadata(result, "events")
            meta["rows_per_table"] = dg.JsonMetadataValue(dict(result.swap.rows))
            return dg.MaterializeResult(metadata=meta)

        out.append(clickhouse_reference)
    return out


def __getattr__(name: str) -> Any:
    """`clickhouse_assets` / `clickhouse_analytics` of the configured spec, built on first use."""
    if name == "clickhouse_assets":
        return build_clickhouse_assets(current_spec())
    if name == "clickhouse_analytics":
        return build_clickhouse_assets(current_spec())[0]
    raise AttributeError(name)
