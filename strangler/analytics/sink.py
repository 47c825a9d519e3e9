"""The analytics-service: load one day of events into ClickHouse, exactly and atomically.

Reads day D by the offset ranges the outbox relay recorded (read_committed), or from the event
store when no ranges were recorded or retention already removed them; flattens the events
into staging twins in bounded batches (Arrow inserts, flat memory); swaps D into every table
(swap.DaySwap); then commits the consumer group's offsets and records its bookkeeping.

The ClickHouse client is opened per unit of work (a batch insert, the swap): with the embedded
engine each open holds the cross-process lock, and other processes need their turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import psycopg
from confluent_kafka import Consumer, TopicPartition

from strangler.analytics.ddl import DdlOptions, Schema, apply_schema, default_schema
from strangler.analytics.flatten import EventColumns
from strangler.analytics.swap import DaySwap, PartitionStorage, SwapStats, partition_storage
from strangler.analytics.tracking import ServiceTracker
from strangler.migration.day_events import read_day_from_store
from strangler.migration.events import TOPICS
from strangler.migration.kafka_records import (
    EventRecord,
    OffsetRange,
    OffsetsGone,
    load_offset_ranges,
    read_ranges,
)

SERVICE = "analytics-service"
CONSUMER_GROUP = "analytics-service"
AGGREGATE_TYPES: tuple[str, ...] = tuple(TOPICS)

Source = Literal["kafka", "event_store"]
ClientFactory = Callable[[], AbstractContextManager[Any]]
ConsumerFactory = Callable[[str], Consumer]


def service_version(code_version: str) -> str:
    try:
        package = version("strangler")
    except PackageNotFoundError:
        package = "0+unknown"
    return f"{package}+code.{code_version}"


@dataclass(frozen=True, slots=True)
class SinkOptions:
    ddl: DdlOptions = field(default_factory=DdlOptions)
    consumer_group: str = CONSUMER_GROUP
    service: str = SERVICE
    code_version: str = "1"
    insert_batch_rows: int = 100_000
    """Rows per ClickHouse insert (and per bookkeeping batch); bounds memory."""
    read_batch: int = 5_000
    idle_timeout_s: float = 30.0
    track_events: bool = True
    """Write one service_processing row per event (costly at millions of events a day)."""


@dataclass(frozen=True, slots=True)
class DayResult:
    partition_key: str
    source: Source
    fallback_reason: str | None
    events_read: int
    skipped_other_day: int
    batches: int
    swap: SwapStats
    storage: dict[str, PartitionStorage]
    ranges: list[OffsetRange]
    committed: list[tuple[str, int, int, int]]
    duration_s: float
    read_s: float
    swap_s: float

    @property
    def rows(self) -> int:
        return self.swap.rows.get("events", 0)

    @property
    def rate(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0


def _record_batches(
    consumer: Consumer | None,
    ranges: Sequence[OffsetRange],
    store_conninfo: str,
    key: str,
    options: SinkOptions,
    source: Source,
) -> Iterator[list[EventRecord]]:
    if source == "kafka":
        assert consumer is not None
        yield from read_ranges(
            consumer,
            ranges,
            key,
            batch_size=options.read_batch,
            idle_timeout_s=options.idle_timeout_s,
        )
        return
    # A connection of its own: the named cursor needs an open transaction for the whole read.
    with psycopg.connect(store_conninfo) as conn:
        yield from read_day_from_store(conn, key, AGGREGATE_TYPES, batch_size=options.read_batch)


def load_day(
    day: date,
    *,
    clickhouse: ClientFactory,
    postgres_conninfo: str,
    consumer_factory: ConsumerFactory,
    topic_prefix: str = "",
    options: SinkOptions | None = None,
    schema: Schema | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> DayResult:
    """Replace day D in every analytics table; see the module docstring."""
    options = options or SinkOptions()
    schema = schema or default_schema()
    key = day.isoformat()
    started = time.monotonic()
    topics = [f"{topic_prefix}{t}" for t in TOPICS.values()]
    swap = DaySwap(day, options.ddl, schema)

    with psycopg.connect(postgres_conninfo, autocommit=True) as pg:
        tracker = ServiceTracker(
            pg,
            options.service,
            service_version(options.code_version),
            track_events=options.track_events,
        )
        tracker.health("healthy", {"phase": "starting", "partition_key": key})
        try:
            ranges = load_offset_ranges(pg, key, topics)
            source: Source = (
                "kafka" if any(r.end_offset > r.start_offset for r in ranges) else "event_store"
            )
            fallback_reason = None if source == "kafka" else "no offset ranges recorded for the day"
            consumer = consumer_factory(options.consumer_group)
            try:
                with clickhouse() as client:
                    apply_schema(client, options.ddl, schema)
                    swap.prepare(client)
                try:
                    read = _stage(
                        swap,
                        clickhouse,
                        consumer,
                        ranges,
                        postgres_conninfo,
                        key,
                        options,
                        source,
                        tracker,
                        log,
                    )
                except OffsetsGone as exc:
                    fallback_reason = str(exc)
                    log(f"{key}: {exc}; reading the day from the event store instead")
                    tracker.log(
                        f"{key}: falling back to the event store", {"reason": str(exc)}, "warning"
                    )
                    source = "event_store"
                    with clickhouse() as client:
                        swap.prepare(client)
                    read = _stage(
                        swap,
                        clickhouse,
                        consumer,
                        ranges,
                        postgres_conninfo,
                        key,
                        options,
                        source,
                        tracker,
                        log,
                    )
                read_done = time.monotonic()
                with clickhouse() as client:
                    stats = swap.finish(client)
                    storage = partition_storage(client, options.ddl, day, schema.swapped_tables)
                swap_s = time.monotonic() - read_done
                committed = (
                    _commit_offsets(consumer, options.consumer_group, ranges)
                    if source == "kafka"
                    else []
                )
            finally:
                consumer.close()
        except BaseException as exc:
            tracker.finish("failed", f"{type(exc).__name__}: {exc}"[:2000])
            tracker.log(f"{key} failed", {"error": repr(exc)[:2000]}, "error")
            tracker.health("degraded", {"partition_key": key, "error": repr(exc)[:2000]})
            tracker.close()
            # The twins may be half-filled; drop them so nothing stale lingers (D is untouched).
            try:
                with clickhouse() as client:
                    swap.discard(client)
            except Exception as cleanup:  # the original error matters more; say so and go on
                log(f"{key}: could not drop staging tables: {cleanup!r}")
            raise
        tracker.finish("succeeded")
        tracker.sync_status(options.consumer_group, committed)
        duration = time.monotonic() - started
        result = DayResult(
            partition_key=key,
            source=source,
            fallback_reason=fallback_reason,
            events_read=read[0],
            skipped_other_day=read[1],
            batches=read[2],
            swap=stats,
            storage=storage,
            ranges=ranges,
            committed=committed,
            duration_s=duration,
            read_s=read_done - started,
            swap_s=swap_s,
        )
        tracker.log(
            f"{key} swapped in",
            {
                "source": source,
                "rows": stats.rows,
                "duplicates_dropped": stats.duplicates_dropped,
                "duration_s": round(duration, 3),
                "rows_per_s": round(result.rate, 1),
            },
        )
        tracker.health(
            "healthy",
            {"phase": "idle", "last_partition_key": key, "source": source, "rows": result.rows},
        )
        tracker.close()
        return result


def _stage(
    swap: DaySwap,
    clickhouse: ClientFactory,
    consumer: Consumer,
    ranges: Sequence[OffsetRange],
    store_conninfo: str,
    key: str,
    options: SinkOptions,
    source: Source,
    tracker: ServiceTracker,
    log: Callable[[str], None],
) -> tuple[int, int, int]:
    """Flatten and insert D's records into the staging twin; (events, skipped, batches)."""
    buffer = EventColumns()
    events = skipped = batches = 0
    batch_started = time.monotonic()

    def flush() -> None:
        nonlocal batches, batch_started
        n = len(buffer)
        ids = buffer.event_ids()
        rows = buffer.take()
        with clickhouse() as client:
            swap.insert(client, rows)
        batches += 1
        elapsed = time.monotonic() - batch_started
        tracker.batch(
            ids,
            {
                "partition_key": key,
                "source": source,
                "rows": n,
                "arrow_bytes": rows.nbytes,
                "duration_s": round(elapsed, 3),
                "rows_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
            },
        )
        log(f"{key}: staged batch {batches} ({n} rows, {events} so far, from {source})")
        batch_started = time.monotonic()

    for records in _record_batches(consumer, ranges, store_conninfo, key, options, source):
        for record in records:
            if record.partition_day != key:
                skipped += 1
                continue
            buffer.add(record)
            events += 1
        if len(buffer) >= options.insert_batch_rows:
            flush()
    if len(buffer):
        flush()
    return events, skipped, batches


def _commit_offsets(
    consumer: Consumer, group: str, ranges: Sequence[OffsetRange]
) -> list[tuple[str, int, int, int]]:
    """Move the group to the end of D's ranges (never backwards: a backfill of an old day must
    not make the group look behind); returns (topic, partition, committed, end) for sync_status."""
    tps = [TopicPartition(r.topic, r.kafka_partition) for r in ranges]
    if not tps:
        return []
    current = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=30)}
    to_commit = [
        TopicPartition(r.topic, r.kafka_partition, r.end_offset)
        for r in ranges
        if r.end_offset > current.get((r.topic, r.kafka_partition), -1)
    ]
    if to_commit:
        consumer.commit(offsets=to_commit, asynchronous=False)
    out: list[tuple[str, int, int, int]] = []
    for r in ranges:
        committed = max(r.end_offset, current.get((r.topic, r.kafka_partition), -1))
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(r.topic, r.kafka_partition), timeout=10
        )
        out.append((r.topic, r.kafka_partition, committed, int(high)))
    return out
