"""A synthetic day of the sample's contract envelopes, published like the outbox relay does.

For tests and benches: the events follow the sample spec (same types, payload fields, topics
and event metadata), with deterministic ids, so a test can publish a day, record its offset
ranges and check what the analytics sink made of it without running the whole migration first.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strangler.migration.kafka_clients import KafkaClients
from strangler.migration.kafka_records import EventRecord, OffsetRange, envelope, headers
from strangler.spec import current_spec

_NS = uuid.UUID("6f1c1a52-5d0e-4c1e-9a55-0c8f6a1b2c3d")
SERVICES = ("ocr", "classification", "thumbnail")
STATUSES = ("processed", "archived", "failed")


@dataclass(frozen=True, slots=True)
class Event:
    """An event before it is on a topic (EventRecord without the Kafka coordinates)."""

    event_id: uuid.UUID
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime
    payload: dict[str, Any]
    position: int

    def record(
        self, day: str, topic: str = "", partition: int = -1, offset: int = -1
    ) -> EventRecord:
        return EventRecord(
            event_id=self.event_id,
            event_type=self.event_type,
            schema_version=1,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.aggregate_id,
            aggregate_version=self.aggregate_version,
            occurred_at=self.occurred_at,
            partition_day=day,
            payload=self.payload,
            metadata={},
            position=self.position,
            topic=topic,
            kafka_partition=partition,
            offset=offset,
        )


def day_events(day: date, n_documents: int, *, seed: int = 7, tag: str = "") -> Iterator[Event]:
    """About 7 events per document: customer, upload, status, 2 pages, a job started + finished."""
    rng = random.Random(seed)
    t0 = datetime(day.year, day.month, day.day, tzinfo=UTC)
    position = 0
    n_customers = max(1, n_documents // 5)

    def ev(
        agg_type: str, agg_id: int, version: int, etype: str, at: datetime, payload: dict[str, Any]
    ) -> Event:
        nonlocal position
        position += 1
        return Event(
            event_id=uuid.uuid5(_NS, f"{tag}:{day}:{agg_type}:{agg_id}:{version}"),
            event_type=etype,
            aggregate_type=agg_type,
            aggregate_id=str(agg_id),
            aggregate_version=version,
            occurred_at=at,
            payload=payload,
            position=position,
        )

    for c in range(1, n_customers + 1):
        at = t0 + timedelta(seconds=rng.randrange(3600))
        yield ev(
            "Customer",
            c,
            1,
            "CustomerRegistered",
            at,
            {
                "customer_id": c,
                "name": f"Customer {c}",
                "email": f"c{c}@example.com",
                "plan": rng.choice(("free", "pro", "enterprise")),
                "country": rng.choice(("DE", "FR", "US")),
                "metadata": {},
            },
        )
    page_id = job_id = 0
    for d in range(1, n_documents + 1):
        customer = rng.randint(1, n_customers)
        at = t0 + timedelta(seconds=3600 + rng.randrange(20 * 3600))
        pages = rng.randint(1, 3)
        yield ev(
            "Document",
            d,
            1,
            "DocumentUploaded",
            at,
            {
                "document_id": d,
                "customer_id": customer,
                "title": f"Doc {d}",
                "category": rng.choice(("invoice", "contract", "letter")),
                "mime_type": "application/pdf",
                "size_bytes": rng.randint(10_000, 5_000_000),
                "page_count": pages,
                "attributes": {},
            },
        )
        status = rng.choice(STATUSES)
        yield ev(
            "Document",
            d,
            2,
            "DocumentStatusChanged",
            at + timedelta(minutes=5),
            {
                "document_id": d,
                "status": status,
            },
        )
        for p in range(1, min(pages, 2) + 1):
            page_id += 1
            yield ev(
                "OcrPage",
                page_id,
                1,
                "OcrPageExtracted",
                at + timedelta(minutes=1, seconds=p),
                {
                    "page_id": page_id,
                    "document_id": d,
                    "page_number": p,
                    "text": "lorem ipsum " * rng.randint(1, 20),
                    "confidence": round(rng.random(), 3),
                },
            )
        job_id += 1
        service = rng.choice(SERVICES)
        duration = rng.randint(100, 90_000)
        failed = rng.random() < 0.1
        yield ev(
            "ProcessingJob",
            job_id,
            1,
            "ProcessingJobStarted",
            at + timedelta(seconds=30),
            {
                "job_id": job_id,
                "document_id": d,
                "service": service,
                "attempt": 1,
            },
        )
        finished = at + timedelta(seconds=30, milliseconds=duration)
        yield ev(
            "ProcessingJob",
            job_id,
            2,
            "ProcessingJobFailed" if failed else "ProcessingJobCompleted",
            finished,
            {
                "job_id": job_id,
                "document_id": d,
                "service": service,
                "status": "failed" if failed else "completed",
                "duration_ms": duration,
                "error": "timeout" if failed else None,
                "finished_at": finished.isoformat(),
            },
        )


def create_topics(admin: AdminClient, topics: Sequence[str], partitions: int = 3) -> None:
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
    deadline = time.monotonic() + 30
    while True:  # a new topic answers offset requests only once each partition has a leader
        meta = admin.list_topics(timeout=10).topics
        ready = all(
            t in meta
            and len(meta[t].partitions) == partitions
            and all(p.leader >= 0 for p in meta[t].partitions.values())
            for t in topics
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {list(topics)} have no leaders after 30s")
        time.sleep(0.2)


def publish_day(
    kafka: KafkaClients,
    events: Iterable[Event],
    day: date,
    *,
    transactional_id: str,
    partitions: int = 3,
    transaction_size: int = 50_000,
) -> list[OffsetRange]:
    """Publish transactionally (like the relay), keyed by aggregate id; return the day's ranges.

    A range is [end before, end after) per partition, where "end" is the last stable offset
    (what a read_committed reader can reach) once it has caught up with the high watermark:
    commit markers land on the partitions just after `commit_transaction` returns.
    """
    key = day.isoformat()
    topics = [kafka.topic(t) for t in current_spec().topics.values()]
    spec = current_spec()
    tables = {a.name: a.source.table for a in spec.aggregates}
    committed = kafka.consumer(f"watermarks-{uuid.uuid4().hex[:8]}")
    uncommitted = kafka.consumer(
        f"watermarks-{uuid.uuid4().hex[:8]}", **{"isolation.level": "read_uncommitted"}
    )
    producer = kafka.producer(**{"transactional.id": transactional_id})
    try:
        before = _stable_ends(committed, uncommitted, topics, partitions)
        producer.init_transactions(30)
        producer.begin_transaction()
        in_txn = 0
        for e in events:
            producer.produce(
                kafka.topic(current_spec().topic_of(e.aggregate_type)),
                key=e.aggregate_id.encode(),
                value=envelope(
                    event_id=e.event_id,
                    event_type=e.event_type,
                    schema_version=1,
                    aggregate_type=e.aggregate_type,
                    aggregate_id=e.aggregate_id,
                    aggregate_version=e.aggregate_version,
                    occurred_at=e.occurred_at,
                    partition_day=key,
                    payload=e.payload,
                    metadata={
                        "source_table": tables[e.aggregate_type],
                        "source_id": e.aggregate_id,
                        "partition_day": key,
                    },
                    position=e.position,
                ),
                headers=_headers(e, key),
            )
            in_txn += 1
            if in_txn >= transaction_size:
                producer.commit_transaction(60)
                producer.begin_transaction()
                in_txn = 0
            producer.poll(0)
        producer.commit_transaction(60)
        after = _stable_ends(committed, uncommitted, topics, partitions)
    finally:
        committed.close()
        uncommitted.close()
    return [
        OffsetRange(topic, partition, start, after[(topic, partition)])
        for (topic, partition), start in sorted(before.items())
        if after[(topic, partition)] > start
    ]


def _stable_ends(
    committed: Consumer, uncommitted: Consumer, topics: Sequence[str], partitions: int
) -> dict[tuple[str, int], int]:
    deadline = time.monotonic() + 30
    while True:
        stable = _high_watermarks(committed, topics, partitions)
        if stable == _high_watermarks(uncommitted, topics, partitions):
            return stable
        if time.monotonic() > deadline:
            raise TimeoutError("the last stable offsets did not catch up with the high watermarks")
        time.sleep(0.05)


def _headers(e: Event, key: str) -> list[tuple[str, str | bytes | None]]:
    return [(k, v) for k, v in headers(e.event_id, e.event_type, 1, e.occurred_at, key)]


def _high_watermarks(
    consumer: Consumer, topics: Sequence[str], partitions: int
) -> dict[tuple[str, int], int]:
    out = {}
    for topic in topics:
        for p in range(partitions):
            out[(topic, p)] = _high(consumer, TopicPartition(topic, p))
    return out


def _high(consumer: Consumer, tp: TopicPartition, wait_s: float = 30.0) -> int:
    """High watermark; retried while a fresh topic's leadership settles on the broker."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(high)
        except KafkaException as exc:
            if (
                time.monotonic() > deadline
                or not exc.args[0].retriable()
                and "LEADER" not in str(exc)
            ):
                raise
            time.sleep(0.2)


def record_ranges(
    conn: psycopg.Connection[Any],
    partition_key: str,
    ranges: Sequence[OffsetRange],
    asset_prefix: str = "kafka/",
) -> None:
    """Write ranges the way the relay records them (replacing earlier ones for the day)."""
    for r in ranges:
        conn.execute(
            "INSERT INTO migration_state.kafka_offset_ranges"
            " (topic, partition_key, kafka_partition, start_offset, end_offset, asset_key)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (topic, partition_key, kafka_partition) DO UPDATE SET"
            " start_offset = EXCLUDED.start_offset, end_offset = EXCLUDED.end_offset,"
            " recorded_at = now()",
            (
                r.topic,
                partition_key,
                r.kafka_partition,
                r.start_offset,
                r.end_offset,
                f"{asset_prefix}{r.topic}",
            ),
        )
