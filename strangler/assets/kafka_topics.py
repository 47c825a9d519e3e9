"""Kafka topics as daily-partitioned assets, published together from the outbox."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
from pydantic import Field

from strangler.assets.monolith import OWNERS
from strangler.assets.policies import freshness_policy
from strangler.dagster_preview import range_backfills
from strangler.migration.outbox_relay import DayRelay, RelayOptions, TopicResult
from strangler.migration.range_relay import RangeRelay, lock_partitions
from strangler.migration.ranges import relay_pending
from strangler.migration.source import REFERENCE
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.partitions import build_partitions, range_backfill_policy, run_partition_keys
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

CODE_VERSION = "1"
_settings = get_settings()


def kafka_topic_key(topic: str) -> dg.AssetKey:
    return dg.AssetKey(["kafka", topic])


class OutboxRelayConfig(dg.Config):
    dry_run: bool = Field(
        default=_settings.dry_run,
        description="Count what would be sent; publish nothing (default: STRANGLER_DRY_RUN).",
    )
    workers: int = Field(
        default=_settings.relay_workers, ge=1, description="Topics published in parallel."
    )
    batch_size: int = Field(
        default=_settings.relay_batch_size, ge=1, description="Outbox rows per fetch."
    )
    transaction_size: int = Field(
        default=_settings.relay_transaction_size, ge=1, description="Events per Kafka transaction."
    )


def build_kafka_topics(spec: EstateSpec, *, reference: bool = False) -> dg.AssetsDefinition | None:
    """The topics of the spec's daily aggregates (or of its reference data), relayed together.

    Reference topics are one unpartitioned asset run under the partition key `reference`.
    """
    aggregates = spec.reference if reference else spec.daily
    topics = sorted({spec.topic_of(a.name) for a in aggregates})
    if not topics:
        return None
    upstream = dg.AssetKey(["event_store", "reference" if reference else "events"])

    with range_backfills():  # backfill policies are a Dagster 1.13 beta

        @dg.multi_asset(
            specs=[
                dg.AssetSpec(
                    key=kafka_topic_key(topic),
                    freshness_policy=freshness_policy(),
                    deps=[upstream],
                    group_name="kafka",
                    kinds={"kafka"},
                    owners=OWNERS,
                    code_version=CODE_VERSION,
                    description=(
                        f"Topic `{topic}` (key = aggregate id). A partition is published exactly once"
                        " for read_committed readers; its offsets per Kafka partition are recorded in"
                        " migration_state.kafka_offset_ranges."
                    ),
                    skippable=True,
                )
                for topic in topics
            ],
            backfill_policy=None if reference else range_backfill_policy(),
            partitions_def=None if reference else build_partitions(spec),
            can_subset=True,
            name="kafka_reference_topics" if reference else "kafka_topics",
        )
        def relay(
            context: dg.AssetExecutionContext,
            config: OutboxRelayConfig,
            postgres: PostgresResource,
            kafka: KafkaResource,
        ):  # type: ignore[no-untyped-def]
            keys = [REFERENCE] if reference else run_partition_keys(context)
            if len(keys) == 1:
                yield from _relay(context, config, postgres, kafka, keys[0], topics)
            else:
                yield from _relay_range(context, config, postgres, kafka, keys, topics)

    return relay


def _relay_range(
    context: dg.AssetExecutionContext,
    config: OutboxRelayConfig,
    postgres: PostgresResource,
    kafka: KafkaResource,
    partition_keys: list[str],
    all_topics: list[str],
) -> Iterator[dg.MaterializeResult]:
    """A range run: only partitions with unpublished outbox rows are relayed (one query finds
    them), all of them through one transactional producer per topic, with the progress of
    every partition read in one scan (`RangeRelay`: exactly once per partition as in a single
    run, at a fixed cost per range instead of per partition). Each partition of the range gets
    its own metadata; the others say why they sent nothing. A failure fails the run; the
    transactions committed before it stay (a re-run sends only what is left)."""
    selected = [key.path[-1] for key in context.selected_asset_keys]
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        pending = relay_pending(conn, partition_keys, [kafka.topic(t) for t in selected])
    context.log.info(
        f"range {partition_keys[0]}..{partition_keys[-1]}: {len(pending)} of"
        f" {len(partition_keys)} partitions hold events to publish"
    )
    progress_topic, drift = _ensure_topics(context, kafka, all_topics)
    relayed: dict[str, list[TopicResult]] = {}
    if pending:
        relayed = RangeRelay(
            postgres.conninfo(),
            kafka,
            pending,
            [kafka.topic(t) for t in selected],
            progress_topic,
            run_id=context.run.run_id,
            options=_relay_options(config),
            report=context.log.info,
            fenced_range=(partition_keys[0], partition_keys[-1]),
        ).run()
    published = dict.fromkeys(selected, 0)
    for partition_key in partition_keys:
        results = relayed.get(partition_key)
        for index, name in enumerate(selected):
            result = results[index] if results is not None else None
            if result is None or not (result.published or result.failed or result.would_send):
                metadata: dict[str, Any] = {
                    "dry_run": config.dry_run,
                    "events_published": 0,
                    "outcome": "nothing to send",
                }
            else:
                metadata = {
                    **_topic_metadata(config, result, drift),
                    "outcome": "dry run" if config.dry_run else "published",
                }
                published[name] += result.published
            context.add_asset_metadata(
                metadata, asset_key=kafka_topic_key(name), partition_key=partition_key
            )
    for name in selected:
        yield dg.MaterializeResult(
            asset_key=kafka_topic_key(name),
            metadata={
                "range": f"{partition_keys[0]}..{partition_keys[-1]}",
                "range_partitions": len(partition_keys),
                "range_relayed": len(pending),
                "range_events_published": published[name],
            },
        )


def _relay_options(config: OutboxRelayConfig) -> RelayOptions:
    return RelayOptions(
        dry_run=config.dry_run,
        workers=config.workers,
        batch_size=config.batch_size,
        transaction_size=config.transaction_size,
        message_max_bytes=get_settings().kafka_message_max_bytes,
        code_version=CODE_VERSION,
    )


def _ensure_topics(
    context: dg.AssetExecutionContext, kafka: KafkaResource, all_topics: list[str]
) -> tuple[str, list[str]]:
    """Create missing topics (drift is reported, never changed): the progress topic's name
    and the drift found."""
    settings = get_settings()
    specs = domain_topic_specs(
        kafka.topic_prefix,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        retention_days=settings.kafka_retention_days,
        compaction=settings.kafka_compaction,
        message_max_bytes=settings.kafka_message_max_bytes,
        names=all_topics,
    )
    progress_spec = progress_topic_spec(kafka.topic_prefix, settings.kafka_replication_factor)
    admin = kafka.admin()
    drift = ensure_topics(admin, [*specs, progress_spec])
    for line in drift:
        context.log.warning(f"topic config drift (not changed): {line}")
    return progress_spec.name, drift


def _day_relay(
    context: dg.AssetExecutionContext,
    config: OutboxRelayConfig,
    postgres: PostgresResource,
    kafka: KafkaResource,
    partition_key: str,
    selected: list[str],
    progress_topic: str,
) -> list[TopicResult]:
    """One partition, holding its relay lock (a range run of it waits, and the other way)."""
    with psycopg.connect(postgres.conninfo(), autocommit=True) as lock:
        lock_partitions(lock, [partition_key])
        return DayRelay(
            postgres.conninfo(),
            kafka,
            partition_key,
            [kafka.topic(t) for t in selected],
            progress_topic,
            run_id=context.run.run_id,
            options=_relay_options(config),
            report=context.log.info,
        ).run()


def _topic_metadata(
    config: OutboxRelayConfig, result: TopicResult, drift: list[str]
) -> dict[str, Any]:
    return {
        "dry_run": config.dry_run,
        "topic": result.topic,
        "events_published": result.published,
        "bytes": result.bytes,
        "events_per_s": dg.FloatMetadataValue(round(result.rate, 1)),
        "duration_s": dg.FloatMetadataValue(round(result.duration_s, 3)),
        "transactions": result.transactions,
        "retries": result.retries,
        "failed": result.failed,
        "would_send": result.would_send,
        "would_send_bytes": result.would_send_bytes,
        "offset_ranges": dg.JsonMetadataValue(result.offset_ranges()),
        "published_total_for_day": result.progress.published,
        "config_drift": dg.JsonMetadataValue(
            [d for d in drift if d.startswith(result.topic + ":")]
        ),
    }


def _relay(
    context: dg.AssetExecutionContext,
    config: OutboxRelayConfig,
    postgres: PostgresResource,
    kafka: KafkaResource,
    partition_key: str,
    all_topics: list[str],
) -> Iterator[dg.MaterializeResult]:
    selected = [key.path[-1] for key in context.selected_asset_keys]
    progress_topic, drift = _ensure_topics(context, kafka, all_topics)
    results = _day_relay(context, config, postgres, kafka, partition_key, selected, progress_topic)
    for name, result in zip(selected, results, strict=True):
        yield dg.MaterializeResult(
            asset_key=kafka_topic_key(name), metadata=_topic_metadata(config, result, drift)
        )


def build_daily_topics(spec: EstateSpec) -> dg.AssetsDefinition:
    topics = build_kafka_topics(spec)
    if topics is None:
        raise ValueError(f"estate {spec.estate.name!r} has no aggregate partitioned by day")
    return topics


def build_kafka_assets(spec: EstateSpec) -> list[dg.AssetsDefinition]:
    """The topics of the spec: the daily ones and, with reference data, the reference ones."""
    reference = build_kafka_topics(spec, reference=True)
    return [build_daily_topics(spec), *([reference] if reference else [])]


def __getattr__(name: str) -> Any:
    """`kafka_topics` / `kafka_reference_topics` of the configured spec, built on first use."""
    if name == "kafka_topics":
        return build_daily_topics(current_spec())
    if name == "kafka_reference_topics":
        return build_kafka_topics(current_spec(), reference=True)
    raise AttributeError(name)
