"""The analytics-service: load one partition of events into ClickHouse, exactly and atomically.

Reads partition P by the offset ranges the outbox relay recorded (read_committed), or from the
event store when no ranges were recorded or retention already removed them. Python does no
per-event work: Kafka is consumed in large batches and the raw record values (with their
Kafka coordinates) go to ClickHouse as Arrow columns, into P's landing twin; ClickHouse then
extracts the typed columns, keeps P's records once each, rebuilds the current-state, derived
and view tables and swaps P into every table (swap.PartitionSwap). Then the consumer group's
offsets are committed and the bookkeeping recorded (set-based, tracking.ServiceTracker).

One ClickHouse client serves the whole load (with the embedded engine each open costs a
fraction of a second and holds the cross-process lock; other processes wait their turn). The
first partition's Kafka read starts before that client is opened: the engine's start and the
schema check overlap the read of the first batch.
Guarantees: P's tables change only in the swap (atomic per table), a re-run gives the same
rows (event ids deduplicated, no ingestion time), read_committed readers see no aborted
records, and a killed run leaves twins that the next run of P drops first.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from itertools import accumulate
from typing import Any, Literal

import psycopg
import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

from strangler.analytics.ddl import DdlOptions, Schema, apply_schema
from strangler.analytics.estate_ddl import estate_schema
from strangler.analytics.swap import (
    EVENTS_TABLE,
    LANDING_SCHEMA,
    PartitionStorage,
    PartitionSwap,
    SwapStats,
    partition_key_of,
    partition_storage,
)
from strangler.analytics.tracking import ServiceTracker
from strangler.migration.kafka_records import (
    OffsetRange,
    OffsetsGone,
    load_offset_ranges,
    watermarks,
)
from strangler.spec import current_spec
from strangler.spec.models import EstateSpec

SERVICE = "analytics-service"
CONSUMER_GROUP = "analytics-service"

Source = Literal["kafka", "event_store", "nothing"]
"""Where a partition was read from (`nothing`: a range run skipped an empty partition)."""
ClientFactory = Callable[[], AbstractContextManager[Any]]
ConsumerFactory = Callable[..., Consumer]
"""`KafkaResource.consumer`: (group id, **librdkafka overrides) -> Consumer."""

BULK_READ: dict[str, Any] = {
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "queued.max.messages.kbytes": 256 * 1024,
}
"""A bulk reader of known ranges: large fetches per partition instead of librdkafka's 1 MiB."""


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
    """Records per ClickHouse insert (and per bookkeeping line); bounds memory."""
    read_batch: int = 50_000
    """Records asked of the Kafka consumer per call."""
    idle_timeout_s: float = 30.0
    track_events: bool = False
    """Also write one service_processing row per event (one set-based upsert per partition;
    it costs about as much as the load itself, so it is an opt-in audit trail: the partition's
    counts, offsets and health are recorded either way)."""


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
    rebuilt: tuple[str, ...] = ()
    """Schema objects created or rebuilt before the load (new or changed DDL)."""

    @property
    def rows(self) -> int:
        return self.swap.rows.get(EVENTS_TABLE, 0)

    @property
    def rate(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0


PartitionResult = DayResult


def _offsets_array(values: Sequence[bytes], kind: pa.DataType) -> pa.Array:
    """A binary/string Arrow array straight from its buffers: `pa.array` on a Python list
    would import pandas (seconds per process) and walk the list once more."""
    offsets = array("i", accumulate(map(len, values), initial=0))
    return pa.Array.from_buffers(
        kind, len(values), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(values))]
    )


def landing_table(
    values: Sequence[bytes],
    topics: Sequence[str],
    partitions: Sequence[int],
    offsets: Sequence[int],
) -> pa.Table:
    """Records as LANDING_SCHEMA columns."""
    n = len(values)
    return pa.Table.from_arrays(
        [
            _offsets_array(values, pa.binary()),
            _offsets_array([t.encode() for t in topics], pa.string()),
            pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(array("i", partitions))]),
            pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array("q", offsets))]),
        ],
        schema=LANDING_SCHEMA,
    )


def _kafka_batches(
    consumer: Consumer,
    ranges: Sequence[OffsetRange],
    key: str,
    *,
    batch_rows: int,
    read_batch: int,
    idle_timeout_s: float,
    poll_timeout_s: float = 0.1,
) -> Iterator[pa.Table]:
    """Raw records of the ranges as Arrow tables of LANDING_SCHEMA, as a read_committed reader.

    Transaction markers occupy offsets too, so a range is finished when the consumer's
    position reaches its end, not when a record with offset end-1 arrives. Raises OffsetsGone
    if retention already deleted the start of a range.
    """
    pending = {(r.topic, r.kafka_partition): r for r in ranges if r.end_offset > r.start_offset}
    if not pending:
        return
    for r in pending.values():
        low, _high = watermarks(consumer, r.topic, r.kafka_partition)
        if low > r.start_offset:
            raise OffsetsGone(
                f"{r.topic}[{r.kafka_partition}] starts at offset {low}, after the recorded start "
                f"{r.start_offset} of {key}: retention removed part of the partition"
            )
    ends = {k: r.end_offset for k, r in pending.items()}
    assigned = [TopicPartition(t, p, r.start_offset) for (t, p), r in pending.items()]
    consumer.assign(assigned)
    # a consumer reused across the partitions of a range run: librdkafka keeps a partition
    # paused (as the previous partition's read left it) through unassign and assign
    consumer.resume(assigned)
    values: list[bytes] = []
    topics: list[str] = []
    partitions: list[int] = []
    offsets: list[int] = []

    def take() -> pa.Table:
        table = landing_table(values, topics, partitions, offsets)
        values.clear()
        topics.clear()
        partitions.clear()
        offsets.clear()
        return table

    # the hot loop: bound methods and the current partition's end looked up once per run
    add_value, add_topic = values.append, topics.append
    add_partition, add_offset = partitions.append, offsets.append
    last: tuple[Any, Any] = (None, None)
    end = -1
    idle = 0.0
    try:
        while pending:
            messages = consumer.consume(num_messages=read_batch, timeout=poll_timeout_s)
            idle = 0.0 if messages else idle + poll_timeout_s
            if idle >= idle_timeout_s:
                raise TimeoutError(
                    f"no records for {idle_timeout_s}s; still waiting on {sorted(pending)}"
                )
            for msg in messages:
                if msg.error() is not None:
                    raise RuntimeError(f"Kafka error while reading {key}: {msg.error()}")
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if (topic, partition) != last:
                    last = (topic, partition)
                    end = ends.get(last, -1)  # type: ignore[arg-type]
                if offset is None or offset >= end:
                    continue
                value = msg.value()
                if value is None:
                    continue
                add_value(value)
                add_topic(topic)  # type: ignore[arg-type]
                add_partition(partition)  # type: ignore[arg-type]
                add_offset(offset)
            done = [
                tp
                for tp in consumer.position(
                    [TopicPartition(r.topic, r.kafka_partition) for r in pending.values()]
                )
                if tp.offset >= ends[(tp.topic, tp.partition)]
            ]
            if done:
                consumer.pause(done)
                for tp in done:
                    del pending[(tp.topic, tp.partition)]
            if len(values) >= batch_rows:
                yield take()
        if values:
            yield take()
    finally:
        consumer.unassign()


@dataclass(frozen=True, slots=True)
class _ReadAhead:
    """A partition's Kafka read whose first batch is being read by a worker thread."""

    key: str
    ranges: list[OffsetRange]
    batches: Iterator[pa.Table]
    first: Future[pa.Table | None]

    def resumed(self) -> Iterator[pa.Table]:
        """The read's batches, the one read ahead first."""
        table = self.first.result()
        if table is None:
            return
        yield table
        yield from self.batches

    def close(self) -> None:
        """Wait for the worker, then end the read (unassigns the consumer)."""
        wait([self.first])
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()


def _read_ahead(
    pool: ThreadPoolExecutor,
    consumer: Consumer,
    pg: psycopg.Connection[Any],
    key: str,
    topics: Sequence[str],
    options: SinkOptions,
) -> _ReadAhead | None:
    """Start reading the partition's first batch from Kafka (None: nothing to read there)."""
    ranges = load_offset_ranges(pg, key, topics)
    if not any(r.end_offset > r.start_offset for r in ranges):
        return None
    batches = _kafka_batches(
        consumer,
        ranges,
        key,
        batch_rows=options.insert_batch_rows,
        read_batch=options.read_batch,
        idle_timeout_s=options.idle_timeout_s,
    )
    return _ReadAhead(key, ranges, batches, pool.submit(next, batches, None))


_STORE_QUERY = """
SELECT (o.payload || jsonb_build_object('partition_day', o.partition_key))::text, o.topic
FROM eventstore.outbox o
WHERE o.partition_key = %s AND o.payload ->> 'aggregate_type' = ANY(%s)
ORDER BY o.position
"""


def _store_batches(
    conninfo: str, key: str, stream_types: Sequence[str], batch_rows: int
) -> Iterator[pa.Table]:
    """P's events from the event store's outbox, as the relay would have published them."""
    with psycopg.connect(conninfo) as conn, conn.cursor(name="analytics_partition") as cur:
        cur.itersize = batch_rows
        cur.execute(_STORE_QUERY, (key, list(stream_types)))
        while rows := cur.fetchmany(batch_rows):
            yield landing_table(
                [r[0].encode() for r in rows],
                [r[1] for r in rows],
                [-1] * len(rows),
                [-1] * len(rows),
            )


def load_partition(
    partition_key: str | date,
    *,
    clickhouse: ClientFactory,
    postgres_conninfo: str,
    consumer_factory: ConsumerFactory,
    topic_prefix: str = "",
    options: SinkOptions | None = None,
    spec: EstateSpec | None = None,
    schema: Schema | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> DayResult:
    """Replace partition P in every analytics table; see the module docstring."""
    (result,) = load_partitions(
        [partition_key],
        clickhouse=clickhouse,
        postgres_conninfo=postgres_conninfo,
        consumer_factory=consumer_factory,
        topic_prefix=topic_prefix,
        options=options,
        spec=spec,
        schema=schema,
        log=log,
    )
    return result


_HELD_QUERY = """
SELECT DISTINCT partition_key FROM eventstore.outbox
WHERE partition_key = ANY(%s) AND payload ->> 'aggregate_type' = ANY(%s)
"""


def _partitions_to_load(
    pg: psycopg.Connection[Any],
    client: Any,
    ddl: DdlOptions,
    keys: Sequence[str],
    stream_types: Sequence[str],
    topics: Sequence[str],
) -> set[str]:
    """The keys that hold something: recorded offset ranges, outbox events, or rows already
    in ClickHouse (to be replaced or dropped). The others are left alone: loading them would
    swap nothing into nothing (years of sparse days are mostly such keys)."""
    held = {str(r[0]) for r in pg.execute(_HELD_QUERY, (list(keys), list(stream_types)))}
    held |= {
        str(r[0])
        for r in pg.execute(
            "SELECT DISTINCT partition_key FROM migration_state.kafka_offset_ranges"
            " WHERE partition_key = ANY(%s) AND topic = ANY(%s) AND end_offset > start_offset",
            (list(keys), list(topics)),
        )
    }
    held |= {
        str(r[0])
        for r in client.query(
            f"SELECT DISTINCT partition_key FROM {ddl.table(EVENTS_TABLE)}"
            " WHERE has({keys:Array(String)}, partition_key)",
            parameters={"keys": list(keys)},
        ).result_rows
    }
    return held


def load_partitions(
    partition_keys: Sequence[str | date],
    *,
    clickhouse: ClientFactory,
    postgres_conninfo: str,
    consumer_factory: ConsumerFactory,
    topic_prefix: str = "",
    options: SinkOptions | None = None,
    spec: EstateSpec | None = None,
    schema: Schema | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    skip_empty: bool = False,
) -> list[DayResult]:
    """Replace each partition in every analytics table, oldest first, with one engine open,
    one schema check, one Kafka consumer and one Postgres connection for all of them (a range
    run's fixed cost is paid once). Each partition is swapped on its own, so atomicity and
    idempotence hold per partition exactly as in a single load; the first failure stops the
    run with the partitions before it swapped and the failed one untouched.

    `skip_empty`: keys with nothing recorded anywhere (no offset ranges, no outbox events,
    no ClickHouse rows) are not loaded; their result says `source="nothing"`.
    """
    options = options or SinkOptions()
    spec = spec or current_spec()
    run_started = time.monotonic()
    keys = [partition_key_of(k) for k in partition_keys]
    stream_types = list(spec.topics)
    topics = [f"{topic_prefix}{t}" for t in spec.topics.values()]
    results: list[DayResult] = []
    with psycopg.connect(postgres_conninfo, autocommit=True) as pg:
        schema = schema or estate_schema(pg, spec)
        tracker = ServiceTracker(
            pg,
            options.service,
            service_version(options.code_version),
            track_events=options.track_events,
        )
        consumer: Consumer | None = None
        ahead: _ReadAhead | None = None
        try:
            consumer = consumer_factory(options.consumer_group, **BULK_READ)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
                if keys:
                    ahead = _read_ahead(pool, consumer, pg, keys[0], topics, options)
                with clickhouse() as client:
                    rebuilt = tuple(apply_schema(client, options.ddl, schema))
                    wanted = (
                        _partitions_to_load(pg, client, options.ddl, keys, stream_types, topics)
                        if skip_empty
                        else set(keys)
                    )
                    for key in keys:
                        if key not in wanted:
                            results.append(_nothing(key, schema))
                            continue
                        results.append(
                            _load_one(
                                key,
                                client=client,
                                pg=pg,
                                consumer=consumer,
                                tracker=tracker,
                                postgres_conninfo=postgres_conninfo,
                                topics=topics,
                                stream_types=stream_types,
                                options=options,
                                schema=schema,
                                log=log,
                                rebuilt=rebuilt if not results else (),
                                # the first partition's time includes the run's setup
                                started=None if results else run_started,
                                ahead=ahead if ahead is not None and ahead.key == key else None,
                            )
                        )
        finally:
            try:
                if ahead is not None:
                    ahead.close()
            finally:
                if consumer is not None:
                    consumer.close()
                tracker.close()
    return results


def _nothing(key: str, schema: Schema) -> DayResult:
    return DayResult(
        partition_key=key,
        source="nothing",
        fallback_reason=None,
        events_read=0,
        skipped_other_day=0,
        batches=0,
        swap=SwapStats(rows=dict.fromkeys(schema.swapped_tables, 0), duplicates_dropped=0),
        storage={},
        ranges=[],
        committed=[],
        duration_s=0.0,
        read_s=0.0,
        swap_s=0.0,
    )


def _load_one(
    key: str,
    *,
    client: Any,
    pg: psycopg.Connection[Any],
    consumer: Consumer,
    tracker: ServiceTracker,
    postgres_conninfo: str,
    topics: Sequence[str],
    stream_types: Sequence[str],
    options: SinkOptions,
    schema: Schema,
    log: Callable[[str], None],
    rebuilt: tuple[str, ...],
    started: float | None = None,
    ahead: _ReadAhead | None = None,
) -> DayResult:
    """Land and swap one partition through the run's open client, consumer and tracker
    (`ahead`: its Kafka read, already started)."""
    started = time.monotonic() if started is None else started
    swap = PartitionSwap(key, options.ddl, schema)
    tracker.health("healthy", {"phase": "starting", "partition_key": key})
    try:
        ranges = ahead.ranges if ahead is not None else load_offset_ranges(pg, key, topics)
        source: Source = (
            "kafka" if any(r.end_offset > r.start_offset for r in ranges) else "event_store"
        )
        fallback_reason = (
            None if source == "kafka" else "no offset ranges recorded for the partition"
        )
        swap.prepare(client)

        def batches(source: Source) -> Iterator[pa.Table]:
            if source == "kafka" and ahead is not None:
                return ahead.resumed()
            if source == "kafka":
                return _kafka_batches(
                    consumer,
                    ranges,
                    key,
                    batch_rows=options.insert_batch_rows,
                    read_batch=options.read_batch,
                    idle_timeout_s=options.idle_timeout_s,
                )
            return _store_batches(postgres_conninfo, key, stream_types, options.insert_batch_rows)

        try:
            landed = _land(swap, client, batches(source), tracker, key, source, log)
        except OffsetsGone as exc:
            fallback_reason = str(exc)
            log(f"{key}: {exc}; reading the partition from the event store instead")
            tracker.log(
                f"{key}: falling back to the event store",
                {"reason": str(exc), "partition_key": key},
                "warning",
            )
            source = "event_store"
            swap.prepare(client)
            landed = _land(swap, client, batches(source), tracker, key, source, log)
        read_done = time.monotonic()
        stats = swap.finish(client)
        storage = partition_storage(client, options.ddl, key, schema.swapped_tables)
        swap_s = time.monotonic() - read_done
        event_ids = (
            [
                str(v)
                for v in client.query_arrow(
                    f"SELECT toString(event_id) FROM {options.ddl.table(EVENTS_TABLE)}"
                    " WHERE partition_key = {key:String}",
                    parameters={"key": key},
                )
                .column(0)
                .to_pylist()
            ]
            if options.track_events
            else []
        )
        committed = _commit_offsets(consumer, ranges) if source == "kafka" else []
    except BaseException as exc:
        tracker.log(f"{key} failed", {"error": repr(exc)[:2000], "partition_key": key}, "error")
        tracker.health("degraded", {"partition_key": key, "error": repr(exc)[:2000]})
        # The twins may be half-filled; drop them so nothing stale lingers (P is untouched).
        try:
            swap.discard(client)
        except Exception as cleanup:  # the original error matters more; say so and go on
            log(f"{key}: could not drop staging tables: {cleanup!r}")
        raise
    tracker.succeeded(event_ids)
    tracker.sync_status(options.consumer_group, committed)
    duration = time.monotonic() - started
    result = DayResult(
        partition_key=key,
        source=source,
        fallback_reason=fallback_reason,
        events_read=landed[0],
        skipped_other_day=stats.other_partitions,
        batches=landed[1],
        swap=stats,
        storage=storage,
        ranges=ranges,
        committed=committed,
        duration_s=duration,
        read_s=read_done - started,
        swap_s=swap_s,
        rebuilt=rebuilt,
    )
    tracker.log(
        f"{key} swapped in",
        {
            "partition_key": key,
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
    return result


load_day = load_partition
"""The former name (a partition was always a day)."""


def _land(
    swap: PartitionSwap,
    client: Any,
    batches: Iterator[pa.Table],
    tracker: ServiceTracker,
    key: str,
    source: Source,
    log: Callable[[str], None],
) -> tuple[int, int]:
    """Insert the raw batches into P's landing twin; (records, batches).

    A batch is inserted by a worker thread while the next one is read (both release the GIL:
    librdkafka and the ClickHouse engine); at most one insert is in flight, so at most two
    batches are in memory.
    """
    records = count = 0
    batch_started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing") as pool:
        in_flight: Future[None] | None = None
        for table in batches:
            if in_flight is not None:
                in_flight.result()
            in_flight = pool.submit(swap.land, client, table)
            count += 1
            records += table.num_rows
            elapsed = time.monotonic() - batch_started
            tracker.batch(
                {
                    "partition_key": key,
                    "source": source,
                    "records": table.num_rows,
                    "arrow_bytes": table.nbytes,
                    "duration_s": round(elapsed, 3),
                    "records_per_s": round(table.num_rows / elapsed, 1) if elapsed > 0 else None,
                }
            )
            log(
                f"{key}: landed batch {count} ({table.num_rows} records, {records} so far, {source})"
            )
            batch_started = time.monotonic()
        if in_flight is not None:
            in_flight.result()
    return records, count


def _commit_offsets(
    consumer: Consumer, ranges: Sequence[OffsetRange]
) -> list[tuple[str, int, int, int]]:
    """Move the group to the end of P's ranges (never backwards: a backfill of an old partition
    must not make the group look behind); returns (topic, partition, committed, end)."""
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
