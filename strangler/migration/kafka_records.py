"""The wire contract of our Kafka topics, and reading one day back by its recorded offsets.

Value: JSON envelope of the event (below). Key: aggregate id (UTF-8), so one aggregate's events
stay ordered in one Kafka partition. Headers: event_id, event_type, schema_version,
occurred_at, partition_day, source. Offsets of a day are recorded per Kafka partition in
`migration_state.kafka_offset_ranges` as [start_offset, end_offset); a range may also hold
records of other days (a late edit published after them), so readers keep only the records
whose `partition_day` header is the day they asked for.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from strangler.event_store._db import dumps

SOURCE = "strangler.outbox-relay"


@dataclass(frozen=True, slots=True)
class OffsetRange:
    topic: str
    kafka_partition: int
    start_offset: int
    end_offset: int
    """Exclusive."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as read back from Kafka."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime
    partition_day: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    position: int
    topic: str
    kafka_partition: int
    offset: int


def envelope(
    *,
    event_id: uuid.UUID | str,
    event_type: str,
    schema_version: int,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    occurred_at: datetime,
    partition_day: str,
    payload: dict[str, Any],
    metadata: dict[str, Any],
    position: int,
) -> bytes:
    """The record value: a self-describing JSON envelope of the event."""
    return dumps(
        {
            "event_id": str(event_id),
            "event_type": event_type,
            "schema_version": schema_version,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "aggregate_version": aggregate_version,
            "occurred_at": occurred_at.isoformat(),
            "partition_day": partition_day,
            "position": position,
            "payload": payload,
            "metadata": metadata,
        }
    ).encode()


def headers(
    event_id: uuid.UUID | str,
    event_type: str,
    schema_version: int,
    occurred_at: datetime,
    partition_day: str,
) -> list[tuple[str, bytes]]:
    return [
        ("event_id", str(event_id).encode()),
        ("event_type", event_type.encode()),
        ("schema_version", str(schema_version).encode()),
        ("occurred_at", occurred_at.isoformat().encode()),
        ("partition_day", partition_day.encode()),
        ("source", SOURCE.encode()),
    ]


def decode(value: bytes, topic: str, kafka_partition: int, offset: int) -> EventRecord:
    doc = json.loads(value)
    return EventRecord(
        event_id=uuid.UUID(doc["event_id"]),
        event_type=doc["event_type"],
        schema_version=int(doc["schema_version"]),
        aggregate_type=doc["aggregate_type"],
        aggregate_id=doc["aggregate_id"],
        aggregate_version=int(doc["aggregate_version"]),
        occurred_at=datetime.fromisoformat(doc["occurred_at"]),
        partition_day=doc["partition_day"],
        payload=doc["payload"],
        metadata=doc.get("metadata") or {},
        position=int(doc["position"]),
        topic=topic,
        kafka_partition=kafka_partition,
        offset=offset,
    )


def load_offset_ranges(
    conn: psycopg.Connection[Any], partition_key: str, topics: Sequence[str] | None = None
) -> list[OffsetRange]:
    """The ranges the relay recorded for a day (optionally only some topics)."""
    rows = conn.execute(
        "SELECT topic, kafka_partition, start_offset, end_offset FROM migration_state.kafka_offset_ranges"
        " WHERE partition_key = %s AND (%s::text[] IS NULL OR topic = ANY(%s::text[]))"
        " ORDER BY topic, kafka_partition",
        (partition_key, list(topics) if topics else None, list(topics) if topics else None),
    ).fetchall()
    return [OffsetRange(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


def _settling(exc: BaseException) -> bool:
    """Errors a just-created or just-restarted partition gives while its leader settles."""
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    return isinstance(error, KafkaError) and (
        error.retriable()
        or error.code() in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    )


@retry(
    retry=retry_if_exception(_settling),
    wait=wait_exponential_jitter(multiplier=0.2, max=2),
    stop=stop_after_delay(30),
    reraise=True,
)
def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(low, high) offsets of a partition, riding out a leader that is still settling."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    return int(low), int(high)


class OffsetsGone(RuntimeError):
    """A recorded range starts before the log start: retention removed part of the day."""


def read_ranges(
    consumer: Consumer,
    ranges: Sequence[OffsetRange],
    partition_day: str,
    *,
    batch_size: int = 5_000,
    poll_timeout_s: float = 1.0,
    idle_timeout_s: float = 30.0,
) -> Iterator[list[EventRecord]]:
    """Batches of the day's records, exactly the recorded ranges, as a `read_committed` reader.

    The consumer must be configured with `isolation.level=read_committed`. Transaction
    markers occupy offsets too, so a range is finished when the consumer's position reaches
    its end, not when a record with offset end-1 arrives. Raises OffsetsGone if retention
    already deleted the start of a range (callers then fall back to the event store).
    """
    pending = {(r.topic, r.kafka_partition): r for r in ranges if r.end_offset > r.start_offset}
    if not pending:
        return
    for r in pending.values():
        low, _high = watermarks(consumer, r.topic, r.kafka_partition)
        if low > r.start_offset:
            raise OffsetsGone(
                f"{r.topic}[{r.kafka_partition}] starts at offset {low}, after the recorded start "
                f"{r.start_offset} of {partition_day}: retention removed part of the day"
            )
    consumer.assign([TopicPartition(t, p, r.start_offset) for (t, p), r in pending.items()])
    batch: list[EventRecord] = []
    idle = 0.0
    try:
        while pending:
            messages = consumer.consume(num_messages=batch_size, timeout=poll_timeout_s)
            idle = 0.0 if messages else idle + poll_timeout_s
            if idle >= idle_timeout_s:
                raise TimeoutError(
                    f"no records for {idle_timeout_s}s; still waiting on {sorted(pending)}"
                )
            for msg in messages:
                err = msg.error()
                if err is not None:
                    raise RuntimeError(f"Kafka error while reading {partition_day}: {err}")
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is None or partition is None or offset is None:
                    continue
                wanted = pending.get((topic, partition))
                value = msg.value()
                if wanted is None or offset >= wanted.end_offset or value is None:
                    continue
                record = decode(value, topic, partition, offset)
                if record.partition_day == partition_day:
                    batch.append(record)
            for key, r in list(pending.items()):
                position = consumer.position([TopicPartition(r.topic, r.kafka_partition)])[0].offset
                if position >= r.end_offset:
                    del pending[key]
            if len(batch) >= batch_size or (not pending and batch):
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        consumer.unassign()
