"""Checks that read Kafka: 2 ids match the event store, 5 per-key order, 8 lag, 9 freshness.

Kafka cannot aggregate server-side, so one pass over D's recorded offset ranges
(`read_committed`) computes the bucket sums, the per-key order and the newest event time at
once; only differing buckets are read again, to list their ids.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer

from strangler.checks.diff import BucketSum, bisect_diff, id_hash
from strangler.checks.event_store import EventStoreSide
from strangler.checks.outcome import CheckOutcome
from strangler.migration.kafka_records import (
    OffsetRange,
    OffsetsGone,
    load_offset_ranges,
    read_ranges,
)
from strangler.spec import current_spec

SYSTEM = "kafka"
SCAN_DEPTH = 3
ConsumerFactory = Callable[[str], Consumer]


def check_group() -> str:
    """A throwaway consumer group: checks read by assignment and never commit."""
    return f"strangler-check-{uuid.uuid4().hex[:8]}"


@dataclass
class _Order:
    version: int
    event_id: str
    offset: int


@dataclass
class KafkaScan:
    """What one pass over D's ranges found."""

    records: int = 0
    buckets: dict[str, BucketSum] = field(default_factory=dict)
    out_of_order: list[str] = field(default_factory=list)
    out_of_order_count: int = 0
    newest: datetime | None = None


class KafkaDaySide:
    """D's records in the recorded offset ranges, as one side of a bisecting diff."""

    def __init__(
        self,
        consumer_factory: ConsumerFactory,
        ranges: Sequence[OffsetRange],
        partition_key: str,
        *,
        idle_timeout_s: float = 30.0,
        sample: int = 10,
        label: str = "kafka",
    ) -> None:
        self.consumer_factory = consumer_factory
        self.ranges = list(ranges)
        self.key = partition_key
        self.idle_timeout_s = idle_timeout_s
        self.sample = sample
        self.label = label
        self._scan: KafkaScan | None = None
        self.passes = 0

    def _read(self) -> Any:
        consumer = self.consumer_factory(check_group())
        self.passes += 1
        try:
            yield from read_ranges(
                consumer, self.ranges, self.key, idle_timeout_s=self.idle_timeout_s
            )
        finally:
            consumer.close()

    def scan(self) -> KafkaScan:
        """The one full pass (cached): bucket sums at SCAN_DEPTH, per-key order, newest time."""
        if self._scan is not None:
            return self._scan
        scan = KafkaScan()
        counts: Counter[str] = Counter()
        sums: Counter[str] = Counter()
        last: dict[tuple[str, str], _Order] = {}
        for batch in self._read():
            for r in batch:
                eid = str(r.event_id)
                b = eid[:SCAN_DEPTH]
                counts[b] += 1
                sums[b] += id_hash(eid)
                scan.records += 1
                if scan.newest is None or r.occurred_at > scan.newest:
                    scan.newest = r.occurred_at
                stream = (r.topic, r.aggregate_id)
                prev = last.get(stream)
                if (
                    prev is not None
                    and prev.event_id != eid
                    and r.aggregate_version <= prev.version
                ):
                    scan.out_of_order_count += 1
                    if len(scan.out_of_order) < self.sample:
                        scan.out_of_order.append(
                            f"{r.topic} key {r.aggregate_id}: v{r.aggregate_version} at offset "
                            f"{r.kafka_partition}:{r.offset} after v{prev.version} at offset "
                            f"{r.kafka_partition}:{prev.offset}"
                        )
                if prev is None or r.aggregate_version > prev.version:
                    last[stream] = _Order(r.aggregate_version, eid, r.offset)
        scan.buckets = {b: BucketSum(counts[b], sums[b]) for b in counts}
        self._scan = scan
        return scan

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        if depth <= SCAN_DEPTH:
            out: dict[str, list[int]] = {}
            wanted = tuple(prefixes) if prefixes else None
            for b, s in self.scan().buckets.items():
                if wanted is not None and not b.startswith(wanted):
                    continue
                acc = out.setdefault(b[:depth], [0, 0])
                acc[0] += s.count
                acc[1] += s.hash_sum
            return {b: BucketSum(c, h) for b, (c, h) in out.items()}
        ids = self.ids(prefixes or [""])
        counts: Counter[str] = Counter()
        sums: Counter[str] = Counter()
        for i, n in ids.items():
            counts[i[:depth]] += n
            sums[i[:depth]] += n * id_hash(i)
        return {b: BucketSum(counts[b], sums[b]) for b in counts}

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        wanted = tuple(prefixes)
        found: Counter[str] = Counter()
        for batch in self._read():
            for r in batch:
                eid = str(r.event_id)
                if eid.startswith(wanted):
                    found[eid] += 1
        return found


@dataclass
class KafkaOutcomes:
    matches: CheckOutcome
    ordered: CheckOutcome
    fresh: CheckOutcome


def topics_for(
    prefix: str,
    aggregate_types: Sequence[str] | None = None,
    topics: Mapping[str, str] | None = None,
) -> list[str]:
    """Prefixed topics of these stream types (`topics`: the spec's, default the settings')."""
    by_type = topics if topics is not None else current_spec().topics
    types = aggregate_types or list(by_type)
    return [f"{prefix}{by_type[t]}" for t in types]


def check_kafka_day(
    conn: psycopg.Connection[Any],
    consumer_factory: ConsumerFactory,
    partition_key: str,
    *,
    topic_prefix: str = "",
    aggregate_types: Sequence[str] | None = None,
    max_freshness_lag_s: float = 3_600.0,
    start_depth: int = 2,
    leaf_rows: int = 5_000,
    sample: int = 10,
    idle_timeout_s: float = 30.0,
    spec_topics: Mapping[str, str] | None = None,
) -> KafkaOutcomes:
    """Checks 2, 5 (Kafka) and 9 (Kafka) for D, from one pass over the recorded ranges.

    `spec_topics` (stream type -> topic) defaults to the settings' spec.
    """
    started = time.monotonic()
    by_type = spec_topics if spec_topics is not None else current_spec().topics
    types = list(aggregate_types) if aggregate_types else list(by_type)
    topics = topics_for(topic_prefix, types, by_type)
    target = ",".join(topics) if len(topics) < len(by_type) else f"{topic_prefix}*"
    ranges = load_offset_ranges(conn, partition_key, topics)
    store = EventStoreSide(conn, partition_key, types, published_only=True)
    kafka = KafkaDaySide(
        consumer_factory, ranges, partition_key, idle_timeout_s=idle_timeout_s, sample=sample
    )
    ranges_text = "; ".join(
        f"{r.topic}[{r.kafka_partition}] {r.start_offset}..{r.end_offset}" for r in ranges
    )
    reproduce = (
        f"{store.query(start_depth)}  -- vs Kafka: read_committed consumer over "
        f"migration_state.kafka_offset_ranges WHERE partition_key = '{partition_key}'"
        f" (header partition_day = '{partition_key}'): {ranges_text or 'no ranges recorded'}"
    )
    try:
        diff = bisect_diff(store, kafka, start_depth=start_depth, leaf_rows=leaf_rows)
    except OffsetsGone as gone:
        conn.rollback()
        failed = CheckOutcome(
            name="kafka.matches_event_store",
            system=SYSTEM,
            partition_key=partition_key,
            passed=False,
            description=f"Kafka no longer holds all of the day: {gone}",
            target=target,
            reproduce=reproduce,
            duration_s=time.monotonic() - started,
        )

        def skipped(name: str) -> CheckOutcome:
            return CheckOutcome(
                name,
                SYSTEM,
                partition_key,
                passed=True,
                description="not checked: the day is gone from Kafka",
                target=target,
            )

        return KafkaOutcomes(failed, skipped("kafka.keys_ordered"), skipped("kafka.fresh"))
    scan = kafka.scan()
    newest_store = store.newest()
    conn.rollback()
    only_duplicates = bool(diff.duplicated) and not (diff.missing or diff.extra)
    matches = CheckOutcome(
        name="kafka.matches_event_store",
        system=SYSTEM,
        partition_key=partition_key,
        passed=diff.equal,
        description=(
            "D's events (minus those parked as too large) and D's Kafka records in the recorded "
            "offset ranges (read_committed) match by count and by per-bucket id hash sums."
        ),
        target=target,
        left_label="event_store",
        right_label="kafka",
        left_count=diff.left_count,
        right_count=diff.right_count,
        offending=diff.culprits(sample),
        reproduce=reproduce,
        severity="WARN" if only_duplicates else "ERROR",
        details={
            "missing": len(diff.missing),
            "extra": len(diff.extra),
            "duplicated": len(diff.duplicated),
            "buckets_compared": diff.buckets_compared,
            "differing_buckets": diff.differing_buckets[:20],
            "kafka_passes": kafka.passes,
            "offset_ranges": len(ranges),
        },
    )
    ordered = CheckOutcome(
        name="kafka.keys_ordered",
        system=SYSTEM,
        partition_key=partition_key,
        passed=scan.out_of_order_count == 0,
        description="Per key (aggregate id), Kafka offsets ascend with aggregate versions.",
        target=target,
        left_label="records",
        right_label="out_of_order",
        left_count=scan.records,
        right_count=scan.out_of_order_count,
        offending=scan.out_of_order,
        reproduce=reproduce,
    )
    fresh = freshness_outcome(
        "kafka.fresh",
        SYSTEM,
        partition_key,
        target,
        newest_store,
        scan.newest,
        max_freshness_lag_s,
        reproduce,
    )
    for o in (matches, ordered, fresh):
        o.duration_s = time.monotonic() - started
    return KafkaOutcomes(matches, ordered, fresh)


def _utc(value: datetime | None) -> datetime | None:
    """Drivers differ (ClickHouse hands back naive UTC): compare everything as aware UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def freshness_outcome(
    name: str,
    system: str,
    partition_key: str,
    target: str,
    newest_store: datetime | None,
    newest_here: datetime | None,
    max_lag_s: float,
    reproduce: str,
) -> CheckOutcome:
    """Check 9 for one store: its newest event time of D is close to the event store's."""
    newest_store, newest_here = _utc(newest_store), _utc(newest_here)
    if newest_store is None:
        passed, lag = True, 0.0
    elif newest_here is None:
        passed, lag = False, float("inf")
    else:
        lag = max((newest_store - newest_here).total_seconds(), 0.0)
        passed = lag <= max_lag_s
    return CheckOutcome(
        name=name,
        system=system,
        partition_key=partition_key,
        passed=passed,
        description=(
            f"The newest event time of the day here is within {max_lag_s:.0f}s of the event "
            "store's newest."
        ),
        target=target,
        offending=[]
        if passed
        else [f"newest here {newest_here}, event store {newest_store} (behind {lag:.0f}s)"],
        reproduce=reproduce,
        details={
            "newest_event_store": newest_store.isoformat() if newest_store else None,
            "newest_here": newest_here.isoformat() if newest_here else None,
            "lag_s": None if lag == float("inf") else round(lag, 3),
        },
    )


def check_consumer_lag(
    conn: psycopg.Connection[Any],
    partition_key: str,
    *,
    topics: Sequence[str],
    max_lag: int,
    sample: int = 10,
) -> CheckOutcome:
    """Check 8: every consumer group's recorded lag (sync_status) on these topics is small."""
    started = time.monotonic()
    rows = conn.execute(
        "SELECT service, consumer_group, topic, kafka_partition, lag, updated_at"
        " FROM microservices.sync_status WHERE topic = ANY(%s) ORDER BY lag DESC, 1, 2, 3, 4",
        (list(topics),),
    ).fetchall()
    conn.rollback()
    behind = [r for r in rows if int(r[4]) > max_lag]
    worst = max((int(r[4]) for r in rows), default=0)
    return CheckOutcome(
        name="kafka.consumer_lag",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not behind,
        description=f"Each service's consumer lag per topic partition is at most {max_lag}.",
        target=",".join(topics),
        left_label="max_lag",
        right_label="threshold",
        left_count=worst,
        right_count=max_lag,
        offending=[
            f"{r[0]} (group {r[1]}) {r[2]}[{r[3]}] lag {r[4]} at {r[5].isoformat()}"
            for r in behind[:sample]
        ],
        reproduce=(
            "SELECT service, consumer_group, topic, kafka_partition, lag FROM"
            f" microservices.sync_status WHERE lag > {max_lag} ORDER BY lag DESC"
        ),
        details={"partitions_tracked": len(rows), "lagging": len(behind)},
        duration_s=time.monotonic() - started,
    )
