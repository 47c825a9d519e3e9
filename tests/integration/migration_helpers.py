"""Throwaway databases for migration tests: each gets the schema and a seeded monolith."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg

from strangler.db.scratch import scratch_database, with_database

__all__ = [
    "START_DAY",
    "ensure_test_topics",
    "seeded_database",
    "store_fingerprint",
    "small_topic_specs",
    "with_database",
]
from strangler.migration.topics import (
    TopicSpec,
    domain_topic_specs,
    ensure_topics,
    progress_topic_spec,
)
from strangler.resources.kafka import KafkaResource
from strangler.sample.seed import seed
from strangler.spec import current_spec

START_DAY = date(2026, 3, 2)


def small_topic_specs(prefix: str, partitions: int = 3) -> list[TopicSpec]:
    """Small domain topics: enough partitions to spread keys, few enough to read back fast."""
    return domain_topic_specs(
        prefix,
        partitions=partitions,
        replication_factor=1,
        min_insync_replicas=1,
        retention_days=30,
        compaction=False,
        message_max_bytes=1_000_000,
        names=current_spec().topics.values(),
    )


def ensure_test_topics(kafka: KafkaResource, partitions: int = 3) -> str:
    """The domain topics and the relay progress topic under the resource's prefix."""
    progress = progress_topic_spec(kafka.topic_prefix, 1)
    ensure_topics(kafka.admin(), [*small_topic_specs(kafka.topic_prefix, partitions), progress])
    return progress.name


@contextmanager
def seeded_database(
    base_url: str,
    *,
    days: int = 2,
    scale: float = 0.5,
    dirty_rate: float = 0.05,
    seed_value: int = 11,
    start_day: date = START_DAY,
) -> Iterator[str]:
    """A scratch database holding a seeded sample monolith."""
    with scratch_database(base_url) as url:
        with psycopg.connect(url) as conn:
            seed(
                conn,
                seed=seed_value,
                days=days,
                scale=scale,
                dirty_rate=dirty_rate,
                start_day=start_day,
            )
            conn.commit()
        yield url


def store_fingerprint(url: str) -> dict[str, Any]:
    """Everything a run writes that must be identical however the run got there."""
    with psycopg.connect(url) as conn:
        events = conn.execute(
            "SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type,"
            " payload::text FROM eventstore.events ORDER BY event_id"
        ).fetchall()
        outbox = conn.execute(
            "SELECT event_id, topic, message_key, partition_day FROM eventstore.outbox ORDER BY event_id"
        ).fetchall()
        failed = conn.execute(
            "SELECT source_table, source_key, rule, partition_key FROM migration_state.failed_entities"
            " WHERE resolved_at IS NULL ORDER BY 1, 2, 3"
        ).fetchall()
    return {"events": events, "outbox": outbox, "failed": failed}
