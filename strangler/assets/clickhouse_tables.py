"""`clickhouse/*`: the analytics-service's tables, one day at a time (Kafka day -> atomic day swap).

Thin Dagster layer over strangler.analytics.sink: one op reads day D (Kafka offset ranges, or
the event store when they are gone), swaps D into analytics.events, document_processing and
the materialized-view targets atomically, and reports each table as its own asset.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg
from pydantic import Field

from strangler.analytics.ddl import DdlOptions, validate_identifier
from strangler.analytics.sink import CONSUMER_GROUP, SinkOptions, load_day
from strangler.assets.monolith import OWNERS
from strangler.assets.policies import freshness_policy
from strangler.partitions import daily_partitions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings

CODE_VERSION = "1"
GROUP = "clickhouse"
KINDS = {"clickhouse", "kafka"}

KAFKA_TOPIC_KEYS = {
    name: dg.AssetKey(["kafka", f"{name}.events"])
    for name in ("customers", "documents", "ocr", "processing")
}
EVENTS_KEY = dg.AssetKey(["clickhouse", "events"])


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
    insert_batch_rows: int = Field(default=100_000, ge=1, description="Rows per insert.")
    track_events: bool = Field(
        default=True, description="One microservices.service_processing row per event."
    )
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Give up on a silent topic.")


_TABLES: dict[str, str] = {
    "events": "One flattened row per domain event of the day (analytics.events).",
    "document_processing": "One row per processing job with duration and outcome.",
    "event_counts_daily": "MV target: events per type and customer per day.",
    "processing_latency_daily": "MV target: latency quantile states per service per day.",
    "documents_status_daily": "MV target: documents entering each status per day.",
}


def _spec(table: str, description: str) -> dg.AssetSpec:
    if table == "events":
        deps: list[dg.AssetKey] = list(KAFKA_TOPIC_KEYS.values())
    elif table == "document_processing":
        deps = [EVENTS_KEY, KAFKA_TOPIC_KEYS["processing"]]
    else:
        deps = [EVENTS_KEY]
    return dg.AssetSpec(
        key=dg.AssetKey(["clickhouse", table]),
        freshness_policy=freshness_policy(),
        deps=deps,
        description=description,
        group_name=GROUP,
        kinds=KINDS,
        owners=OWNERS,
        code_version=CODE_VERSION,
        partitions_def=daily_partitions,
    )


@dg.multi_asset(
    name="clickhouse_analytics",
    specs=[_spec(t, d) for t, d in _TABLES.items()],
    partitions_def=daily_partitions,
    pool="clickhouse",
    can_subset=False,
    description=(
        "Loads the partition's events from Kafka by the offset ranges the relay recorded "
        "(event store when they are gone) and swaps the day into every analytics table at once."
    ),
)
def clickhouse_analytics(
    context: dg.AssetExecutionContext,
    config: ClickHouseSinkConfig,
    clickhouse: ClickHouseResource,
    kafka: KafkaResource,
    postgres: PostgresResource,
) -> Iterator[dg.MaterializeResult]:
    day = date.fromisoformat(context.partition_key)
    ddl = DdlOptions(
        database=validate_identifier(config.database, "database name"), cluster=config.cluster
    )
    result = load_day(
        day,
        clickhouse=clickhouse.client,
        postgres_conninfo=postgres.conninfo(),
        consumer_factory=kafka.consumer,
        topic_prefix=kafka.topic_prefix,
        options=SinkOptions(
            ddl=ddl,
            consumer_group=config.consumer_group,
            code_version=CODE_VERSION,
            insert_batch_rows=config.insert_batch_rows,
            idle_timeout_s=config.idle_timeout_s,
            track_events=config.track_events,
        ),
        log=context.log.info,
    )
    if result.fallback_reason:
        context.log.warning(f"{day}: read from the event store: {result.fallback_reason}")
    common = {
        "source": result.source,
        "fallback_reason": result.fallback_reason or "",
        "duration_s": dg.FloatMetadataValue(round(result.duration_s, 3)),
    }
    for table in _TABLES:
        storage = result.storage.get(table)
        meta: dict[str, dg.RawMetadataValue] = {
            **common,
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
                    "duplicates_dropped": result.swap.duplicates_dropped,
                    "skipped_other_day": result.skipped_other_day,
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
        yield dg.MaterializeResult(asset_key=dg.AssetKey(["clickhouse", table]), metadata=meta)


clickhouse_assets: list[dg.AssetsDefinition] = [clickhouse_analytics]
