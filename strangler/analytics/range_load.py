"""Load a range of partitions into ClickHouse with one landing, one extraction and one swap
statement per table, instead of a full load per partition.

Years of sparse history are thousands of partitions of a few dozen events; a partition's own
load (twins created, ~30 statements, its own swaps, offsets committed) costs far more than its
rows. Here the partitions of a range that were relayed to Kafka are loaded in groups of at most
`GROUP` (ClickHouse refuses an insert spanning more than 100 partitions):

- the group's offset ranges are merged per Kafka partition and read once; every record lands in
  one set of twins keyed by the group (records of other partitions are dropped by the
  extraction, duplicates by event id as in a single load);
- the derived tables and view targets are rebuilt for the whole group from the staged events;
- each table takes the group's partitions with ONE `ALTER TABLE ... REPLACE PARTITION ID ...
  FROM twin, ...` (or DROP PARTITION where the twin has none): each partition is still replaced
  atomically (a reader sees its old or its new rows), as in `PartitionSwap`;
- the consumer group's offsets, the bookkeeping and the per-partition results follow once.

Partitions read from the event store (no offset ranges, or retention removed them) go through
`sink.load_partitions` one by one, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from strangler.analytics.ddl import DdlOptions, Schema, apply_schema, derivation_sql
from strangler.analytics.estate_ddl import estate_schema
from strangler.analytics.sink import (
    BULK_READ,
    ClientFactory,
    ConsumerFactory,
    DayResult,
    SinkOptions,
    _commit_offsets,
    _kafka_batches,
    _land,
    _nothing,
    _partitions_to_load,
    load_partitions,
    service_version,
)
from strangler.analytics.swap import (
    EVENTS_TABLE,
    PartitionStorage,
    PartitionSwap,
    SwapStats,
    partition_id,
    partition_key_of,
)
from strangler.analytics.tracking import ServiceTracker
from strangler.migration.kafka_records import OffsetRange, OffsetsGone
from strangler.spec import current_spec
from strangler.spec.models import EstateSpec

GROUP = 100
"""Partitions landed together (ClickHouse's max_partitions_per_insert_block)."""


class GroupSwap(PartitionSwap):
    """PartitionSwap over several partitions: one set of twins, one swap statement per table."""

    def __init__(self, keys: Sequence[str], options: DdlOptions, schema: Schema) -> None:
        self.keys = [partition_key_of(k) for k in keys]
        # the twins are named after the group (a key-like name, never a real partition key)
        super().__init__(f"g{self.keys[0]}-{self.keys[-1]}".replace("-", ""), options, schema)

    def _kept_partitions(self) -> str:
        """The records of the group's partitions."""
        return "has({keys:Array(String)}, e.partition_day)"

    def _kept_parameters(self) -> dict[str, Any]:
        return {"keys": self.keys}

    def _dedupe(self, client: Any) -> None:
        """One row per event id in the events twin (the twin refilled from a deduplicated
        copy; no reader sees twins)."""
        o = self.options
        dedup_name = f"{EVENTS_TABLE}__dedup_{self.key}"
        dedup = o.table(dedup_name)
        staged = self._staged(EVENTS_TABLE)
        client.command(f"DROP TABLE IF EXISTS {dedup}{o.on_cluster} SYNC")
        client.command(f"CREATE TABLE {dedup}{o.on_cluster} AS {staged}")
        try:
            client.command(
                f"INSERT INTO {dedup} SELECT * FROM {staged}"
                " ORDER BY event_id, kafka_offset LIMIT 1 BY event_id"
            )
            client.command(f"TRUNCATE TABLE {staged}{o.on_cluster}")
            client.command(f"INSERT INTO {staged} SELECT * FROM {dedup}")
        finally:
            client.command(f"DROP TABLE IF EXISTS {dedup}{o.on_cluster} SYNC")

    def finish_group(self, client: Any) -> tuple[dict[str, SwapStats], int]:
        """Stage, rebuild and swap every partition of the group: its stats per key, and the
        landed records of partitions outside the group."""
        landed, other, duplicates = self._stage_events(client)
        for derivation in (*self.schema.derived, *self.schema.views):
            client.command(derivation_sql(derivation, self.options, self.staging))
        counted = client.query(
            " UNION ALL ".join(
                f"SELECT {i} AS t, partition_key, count() FROM {self._staged(table)}"
                " WHERE has({keys:Array(String)}, partition_key) GROUP BY partition_key"
                for i, table in enumerate(self.schema.swapped_tables)
            ),
            parameters={"keys": self.keys},
        ).result_rows
        rows: dict[str, dict[str, int]] = {
            k: dict.fromkeys(self.schema.swapped_tables, 0) for k in self.keys
        }
        for i, key, n in counted:
            rows[str(key)][self.schema.swapped_tables[int(i)]] = int(n)
        for table in self.schema.swapped_tables:
            staged = self._staged(table)
            commands = [
                f"REPLACE PARTITION ID '{partition_id(k)}' FROM {staged}"
                if rows[k][table]
                else f"DROP PARTITION ID '{partition_id(k)}'"
                for k in self.keys
            ]
            client.command(f"ALTER TABLE {self.options.table(table)} {', '.join(commands)}")
        self.discard(client)
        stats = {
            k: SwapStats(
                rows=rows[k],
                duplicates_dropped=duplicates if i == 0 else 0,
                landed=rows[k][EVENTS_TABLE],
                other_partitions=other if i == 0 else 0,
            )
            for i, k in enumerate(self.keys)
        }
        return stats, landed


def _ranges(
    pg: psycopg.Connection[Any], keys: Sequence[str], topics: Sequence[str]
) -> dict[str, list[OffsetRange]]:
    """The recorded offset ranges of every key (one query)."""
    out: dict[str, list[OffsetRange]] = {k: [] for k in keys}
    for key, topic, partition, start, end in pg.execute(
        "SELECT partition_key, topic, kafka_partition, start_offset, end_offset"
        " FROM migration_state.kafka_offset_ranges WHERE partition_key = ANY(%s)"
        " AND topic = ANY(%s) ORDER BY partition_key, topic, kafka_partition",
        (list(keys), list(topics)),
    ):
        out[str(key)].append(OffsetRange(str(topic), int(partition), int(start), int(end)))
    return out


def _merged(ranges: Sequence[OffsetRange]) -> list[OffsetRange]:
    """One range per Kafka partition spanning all of them (records in the gaps belong to
    other partitions and are dropped by the extraction)."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for r in ranges:
        if r.end_offset <= r.start_offset:
            continue
        first, last = spans.get((r.topic, r.kafka_partition), (r.start_offset, r.end_offset))
        spans[(r.topic, r.kafka_partition)] = (
            min(first, r.start_offset),
            max(last, r.end_offset),
        )
    return [OffsetRange(t, p, s, e) for (t, p), (s, e) in sorted(spans.items())]


def _storage(
    client: Any, options: DdlOptions, keys: Sequence[str], tables: tuple[str, ...]
) -> dict[str, dict[str, PartitionStorage]]:
    """Rows and bytes per key and table, from the active parts (one query)."""
    by_pid = {partition_id(k): k for k in keys}
    out = {k: {t: PartitionStorage(0, 0, 0, 0) for t in tables} for k in keys}
    result = client.query(
        "SELECT partition_id, table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes),"
        " sum(data_uncompressed_bytes) FROM system.parts"
        " WHERE active AND database = {db:String} AND has({pids:Array(String)}, partition_id)"
        " AND has({tables:Array(String)}, table) GROUP BY partition_id, table",
        parameters={"db": options.database, "pids": list(by_pid), "tables": list(tables)},
    )
    for pid, table, rows, on_disk, compressed, uncompressed in result.result_rows:
        out[by_pid[str(pid)]][str(table)] = PartitionStorage(
            int(rows), int(on_disk), int(compressed), int(uncompressed)
        )
    return out


def load_range(
    partition_keys: Sequence[str],
    *,
    clickhouse: ClientFactory,
    postgres_conninfo: str,
    consumer_factory: ConsumerFactory,
    topic_prefix: str = "",
    options: SinkOptions | None = None,
    spec: EstateSpec | None = None,
    schema: Schema | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[DayResult]:
    """Replace each partition of the range that holds something, oldest first (see the module
    docstring); partitions with nothing recorded anywhere are left alone (`source="nothing"`)."""
    options = options or SinkOptions()
    spec = spec or current_spec()
    if options.track_events:  # the per-event audit trail is written partition by partition
        return load_partitions(
            partition_keys,
            clickhouse=clickhouse,
            postgres_conninfo=postgres_conninfo,
            consumer_factory=consumer_factory,
            topic_prefix=topic_prefix,
            options=options,
            spec=spec,
            schema=schema,
            log=log,
            skip_empty=True,
        )
    keys = sorted(partition_key_of(k) for k in partition_keys)
    stream_types = list(spec.topics)
    topics = [f"{topic_prefix}{t}" for t in spec.topics.values()]
    results: dict[str, DayResult] = {}
    by_store: list[str] = []
    with psycopg.connect(postgres_conninfo, autocommit=True) as pg:
        schema = schema or estate_schema(pg, spec)
        tracker = ServiceTracker(
            pg, options.service, service_version(options.code_version), track_events=False
        )
        consumer = consumer_factory(options.consumer_group, **BULK_READ)
        try:
            with clickhouse() as client:
                rebuilt = tuple(apply_schema(client, options.ddl, schema))
                wanted = _partitions_to_load(pg, client, options.ddl, keys, stream_types, topics)
                ranges = _ranges(pg, sorted(wanted), topics)
                relayed = [
                    k
                    for k in keys
                    if k in wanted and any(r.end_offset > r.start_offset for r in ranges[k])
                ]
                by_store = [k for k in keys if k in wanted and k not in relayed]
                for start in range(0, len(relayed), GROUP):
                    group = relayed[start : start + GROUP]
                    try:
                        results.update(
                            _load_group(
                                group,
                                client=client,
                                consumer=consumer,
                                tracker=tracker,
                                ranges=ranges,
                                options=options,
                                schema=schema,
                                log=log,
                                rebuilt=rebuilt if not results else (),
                            )
                        )
                    except OffsetsGone as exc:
                        log(f"{group[0]}..{group[-1]}: {exc}; loading partition by partition")
                        by_store += group
        finally:
            consumer.close()
            tracker.close()
    if by_store:
        # one by one, as a single load does (Kafka where it can, else the event store)
        for result in load_partitions(
            sorted(by_store),
            clickhouse=clickhouse,
            postgres_conninfo=postgres_conninfo,
            consumer_factory=consumer_factory,
            topic_prefix=topic_prefix,
            options=options,
            spec=spec,
            schema=schema,
            log=log,
        ):
            results[result.partition_key] = result
    return [results.get(k) or _nothing(k, schema) for k in keys]


def _load_group(
    group: list[str],
    *,
    client: Any,
    consumer: Any,
    tracker: ServiceTracker,
    ranges: dict[str, list[OffsetRange]],
    options: SinkOptions,
    schema: Schema,
    log: Callable[[str], None],
    rebuilt: tuple[str, ...],
) -> dict[str, DayResult]:
    """Land, extract and swap one group of relayed partitions."""
    started = time.monotonic()
    label = f"{group[0]}..{group[-1]}"
    swap = GroupSwap(group, options.ddl, schema)
    merged = _merged([r for k in group for r in ranges[k]])
    tracker.health("healthy", {"phase": "starting", "partition_key": label})
    try:
        swap.prepare(client)
        batches = _kafka_batches(
            consumer,
            merged,
            label,
            batch_rows=options.insert_batch_rows,
            read_batch=options.read_batch,
            idle_timeout_s=options.idle_timeout_s,
        )
        events_landed, batch_count = _land(swap, client, batches, tracker, label, "kafka", log)
        read_done = time.monotonic()
        stats, _landed = swap.finish_group(client)
        storage = _storage(client, options.ddl, group, schema.swapped_tables)
        committed = _commit_offsets(consumer, merged)
    except BaseException as exc:
        tracker.log(f"{label} failed", {"error": repr(exc)[:2000], "partition_key": label}, "error")
        tracker.health("degraded", {"partition_key": label, "error": repr(exc)[:2000]})
        try:
            swap.discard(client)
        except Exception as cleanup:  # the original error matters more; say so and go on
            log(f"{label}: could not drop staging tables: {cleanup!r}")
        raise
    tracker.sync_status(options.consumer_group, committed)
    done = time.monotonic()
    share = (done - started) / len(group)
    out = {
        key: DayResult(
            partition_key=key,
            source="kafka",
            fallback_reason=None,
            events_read=stats[key].rows[EVENTS_TABLE],
            skipped_other_day=stats[key].other_partitions,
            batches=batch_count if i == 0 else 0,
            swap=stats[key],
            storage=storage[key],
            ranges=ranges[key],
            committed=committed if i == 0 else [],
            duration_s=share,
            read_s=(read_done - started) / len(group),
            swap_s=(done - read_done) / len(group),
            rebuilt=rebuilt if i == 0 else (),
        )
        for i, key in enumerate(group)
    }
    rows = sum(s.rows[EVENTS_TABLE] for s in stats.values())
    tracker.log(
        f"{label} swapped in",
        {
            "partition_key": label,
            "partitions": len(group),
            "source": "kafka",
            "records_landed": events_landed,
            "rows": rows,
            "duration_s": round(done - started, 3),
        },
    )
    tracker.health("healthy", {"phase": "idle", "last_partition_key": group[-1], "source": "kafka"})
    return out
