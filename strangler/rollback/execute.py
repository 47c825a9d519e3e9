"""Step 3: remove the planned days, downstream first, and rewind consumers to them.

Order: Weaviate objects, ClickHouse partitions (base and MV targets), consumer-group offsets,
relay progress (tombstones) and offset ranges, then event-store events, outbox rows and
checkpoints. A consumer group with active members is refused before anything is touched:
rewinding offsets under a live consumer would be overwritten by its next commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from weaviate.classes.query import Filter

from strangler.analytics.swap import partition_id
from strangler.migration.relay_progress import progress_key
from strangler.migration.source import day_bounds
from strangler.rollback.plan import Plan
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.stores import clickhouse_tables
from strangler.rollback.targets import Targets
from strangler.search.schema import DAY
from strangler.search.tenants import scopes

GROUP_SERVICES = (ANALYTICS, SEARCH)
"""Services that consume Kafka through a consumer group."""


class RollbackRefused(RuntimeError):
    """The rollback cannot run safely now; nothing was changed."""


@dataclass(frozen=True)
class OffsetReset:
    group: str
    topic: str
    partition: int
    before: int
    after: int


@dataclass
class ExecuteResult:
    removed: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """service -> store -> day -> items removed."""
    resets: list[OffsetReset] = field(default_factory=list)

    def add(self, service: str, store: str, day: str, n: int) -> None:
        per = self.removed.setdefault(service, {}).setdefault(store, {})
        per[day] = per.get(day, 0) + n


def _ensure_idle(targets: Targets, groups: list[str]) -> None:
    if not groups:
        return
    admin = targets.kafka.admin()
    futures = admin.describe_consumer_groups(groups, request_timeout=30)
    for group, future in futures.items():
        description = future.result()
        members = list(description.members or [])
        if members:
            clients = ", ".join(sorted({m.client_id for m in members}))
            raise RollbackRefused(
                f"consumer group {group!r} has {len(members)} active member(s) ({clients}); "
                "stop the service's consumers and run the rollback again (nothing was changed)"
            )


def _committed(
    targets: Targets, group: str, tps: list[TopicPartition]
) -> dict[tuple[str, int], int]:
    if not tps:
        return {}
    admin = targets.kafka.admin()
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])
    result = futures[group].result()
    return {(tp.topic, tp.partition): int(tp.offset) for tp in result.topic_partitions or []}


def _range_starts(targets: Targets, days: list[str]) -> dict[tuple[str, int], int]:
    """First offset of the days per Kafka partition, from the relay's recorded ranges."""
    with psycopg.connect(targets.postgres_conninfo) as conn:
        rows = conn.execute(
            "SELECT topic, kafka_partition, min(start_offset) FROM migration_state.kafka_offset_ranges"
            " WHERE partition_key = ANY(%s) AND topic = ANY(%s) GROUP BY 1, 2",
            (days, targets.topics),
        ).fetchall()
    return {(str(t), int(p)): int(o) for t, p, o in rows}


def _time_starts(targets: Targets, at: datetime) -> dict[tuple[str, int], int]:
    """First offset at or after `at` per partition (offsets_for_times); none if nothing after."""
    admin = targets.kafka.admin()
    metadata = admin.list_topics(timeout=15)
    ms = int(at.timestamp() * 1000)
    tps = [
        TopicPartition(topic, p, ms)
        for topic in targets.topics
        if topic in metadata.topics
        for p in metadata.topics[topic].partitions
    ]
    if not tps:
        return {}
    consumer = targets.kafka.consumer(f"strangler-rollback-times-{ms}")
    try:
        found = consumer.offsets_for_times(tps, timeout=30)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): int(tp.offset) for tp in found if tp.offset >= 0}


def reset_targets(targets: Targets, plan: Plan) -> dict[tuple[str, int], int]:
    """Where the groups go back to: the days' first offsets, or the first offset after T."""
    if plan.scope.after is not None:
        return _time_starts(targets, plan.scope.after)
    starts = _range_starts(targets, plan.days)
    if not starts and plan.days:
        start, _end = day_bounds(date.fromisoformat(min(plan.days)))
        return _time_starts(targets, start)
    return starts


def reset_group(
    targets: Targets, group: str, starts: dict[tuple[str, int], int]
) -> list[OffsetReset]:
    """Move the group back to `starts` where it is past them (never forwards)."""
    tps = [TopicPartition(t, p) for t, p in starts]
    committed = _committed(targets, group, tps)
    moves = [
        OffsetReset(group, t, p, committed[(t, p)], start)
        for (t, p), start in sorted(starts.items())
        if committed.get((t, p), -1) > start
    ]
    if moves:
        admin = targets.kafka.admin()
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(m.topic, m.partition, m.after) for m in moves]
        )
        futures = admin.alter_consumer_group_offsets([request])
        futures[group].result()
    return moves


def _delete_weaviate(targets: Targets, plan: Plan, result: ExecuteResult) -> None:
    with targets.weaviate() as client:
        for type_ in reversed(targets.collections):  # referrers first
            name = targets.names.of(type_)
            if not client.collections.exists(name):
                continue
            handles = [h for _tenant, h in scopes(client, name)]
            for day in plan.days:
                removed = 0
                for coll in handles:
                    while True:  # delete_many is capped per call (QUERY_MAXIMUM_RESULTS)
                        outcome = coll.data.delete_many(where=Filter.by_property(DAY).equal(day))
                        removed += int(outcome.successful)
                        if outcome.failed:
                            raise RuntimeError(
                                f"Weaviate refused to delete {outcome.failed} objects of {name} {day}"
                            )
                        if outcome.matches == 0 or outcome.successful == 0:
                            break
                result.add(SEARCH, f"weaviate.{type_}", day, removed)


def _drop_clickhouse(targets: Targets, plan: Plan, result: ExecuteResult) -> None:
    tables = clickhouse_tables(targets)
    with targets.clickhouse() as client:
        for table in tables:
            live = targets.ddl.table(table)
            for day in plan.days:
                pid = partition_id(day)
                n = client.query(
                    f"SELECT count() FROM {live} WHERE _partition_id = {{p:String}}",
                    parameters={"p": pid},
                ).result_rows[0][0]
                client.command(
                    f"ALTER TABLE {live}{targets.ddl.on_cluster} DROP PARTITION ID '{pid}'"
                )
                result.add(ANALYTICS, f"clickhouse.{table}", day, int(n))


def _tombstone_progress(targets: Targets, days: list[str]) -> int:
    """Forget the relay's progress of the days, so a re-run publishes them again."""
    producer = targets.kafka.producer()
    keys = [progress_key(t, d) for t in targets.topics for d in days]
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key in keys:
        producer.produce(
            targets.progress_topic, key=key.encode(), value=None, on_delivery=delivered
        )
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(
            f"relay progress tombstones not delivered: {remaining} pending, {errors[:3]}"
        )
    return len(keys)


def _delete_postgres(targets: Targets, plan: Plan, result: ExecuteResult) -> None:
    services = plan.scope.services
    with psycopg.connect(targets.postgres_conninfo) as conn:
        if RELAY in services:
            cur = conn.execute(
                "DELETE FROM migration_state.kafka_offset_ranges"
                " WHERE partition_key = ANY(%s) AND topic = ANY(%s) RETURNING partition_key",
                (plan.days, targets.topics),
            )
            per: dict[str, int] = defaultdict(int)
            for (day,) in cur.fetchall():
                per[str(day)] += 1
            for day in plan.days:
                result.add(RELAY, "postgres.kafka_offset_ranges", day, per.get(day, 0))
            conn.execute(
                "DELETE FROM migration_state.outbox_published"
                " WHERE partition_key = ANY(%s) AND topic = ANY(%s)",
                (plan.days, targets.topics),
            )
        if EVENT_STORE in services:
            for day in plan.days:
                outbox = conn.execute(
                    "DELETE FROM eventstore.outbox WHERE partition_day = %s::date", (day,)
                ).rowcount
                events = conn.execute(
                    "DELETE FROM eventstore.events WHERE partition_day = %s::date", (day,)
                ).rowcount
                checkpoints = conn.execute(
                    "DELETE FROM migration_state.migration_checkpoints WHERE partition_key = %s",
                    (day,),
                ).rowcount
                result.add(EVENT_STORE, "postgres.outbox", day, outbox)
                result.add(EVENT_STORE, "postgres.events", day, events)
                result.add(EVENT_STORE, "postgres.checkpoints", day, checkpoints)
        conn.commit()


def execute(targets: Targets, plan: Plan) -> ExecuteResult:
    """Remove the plan's days from its services; raises RollbackRefused before any change."""
    result = ExecuteResult()
    if not plan.days:
        return result
    services = plan.scope.services
    groups = [targets.consumer_groups[s] for s in GROUP_SERVICES if s in services]
    _ensure_idle(targets, groups)
    starts = reset_targets(targets, plan) if groups else {}
    if SEARCH in services:
        _delete_weaviate(targets, plan, result)
    if ANALYTICS in services:
        _drop_clickhouse(targets, plan, result)
    for group in groups:
        result.resets.extend(reset_group(targets, group, starts))
    if RELAY in services:
        n = _tombstone_progress(targets, plan.days)
        result.add(RELAY, "kafka.relay_progress", ",".join(plan.days), n)
    _delete_postgres(targets, plan, result)
    return result


def utc_now() -> datetime:
    return datetime.now(UTC)
