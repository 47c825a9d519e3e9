"""Consumer lag per service: committed offsets vs log end, written to `sync_status`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class PartitionLag:
    service: str
    consumer_group: str
    topic: str
    kafka_partition: int
    committed_offset: int
    end_offset: int

    @property
    def lag(self) -> int:
        return max(self.end_offset - self.committed_offset, 0)


def measure_lag(
    consumer: Consumer, service: str, group_id: str, topics: Sequence[str], timeout: float = 10.0
) -> list[PartitionLag]:
    """`consumer` must belong to `group_id`; a partition never committed counts from 0."""
    metadata = consumer.list_topics(timeout=timeout).topics
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        if topic in metadata
        for p in sorted(metadata[topic].partitions)
    ]
    if not partitions:
        return []
    committed = consumer.committed(partitions, timeout=timeout)
    lags = []
    for tp in committed:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=timeout
        )
        lags.append(
            PartitionLag(service, group_id, tp.topic, tp.partition, max(tp.offset, 0), high)
        )
    return lags


def record_lag(conn: psycopg.Connection[Any], lags: Sequence[PartitionLag]) -> None:
    """Upsert the measurements into microservices.sync_status."""
    conn.cursor().executemany(
        "INSERT INTO microservices.sync_status"
        " (service, consumer_group, topic, kafka_partition, committed_offset, end_offset)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (service, consumer_group, topic, kafka_partition) DO UPDATE SET"
        " committed_offset = EXCLUDED.committed_offset, end_offset = EXCLUDED.end_offset, updated_at = now()",
        [
            (
                x.service,
                x.consumer_group,
                x.topic,
                x.kafka_partition,
                x.committed_offset,
                x.end_offset,
            )
            for x in lags
        ],
    )


def refresh_sync_status(
    conn: psycopg.Connection[Any],
    consumer: Consumer,
    service: str,
    group_id: str,
    topics: Sequence[str],
) -> list[PartitionLag]:
    """Measure and record one service's lag; the checks read it back from sync_status."""
    lags = measure_lag(consumer, service, group_id, topics)
    record_lag(conn, lags)
    return lags
