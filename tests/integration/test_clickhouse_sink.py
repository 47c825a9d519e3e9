"""The analytics sink against real Kafka, real Postgres and the embedded ClickHouse engine.

Each test publishes its own day of the sample's events to uniquely prefixed topics with a
transactional producer (as the outbox relay does), records the offset ranges, and loads into a
ClickHouse database of its own. The spec-driven path from a migrated monolith (sample and
shop) is tests/integration/test_clickhouse_spec.py.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest
from confluent_kafka import TopicPartition

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import DayResult, SinkOptions, load_day
from strangler.assets.clickhouse_tables import clickhouse_analytics
from strangler.db.migrations import migrate
from strangler.migration.kafka_records import OffsetRange
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.sample.synthetic import create_topics, day_events, publish_day, record_ranges
from strangler.spec import current_spec

from .migration_helpers import START_DAY, seeded_database

pytestmark = pytest.mark.integration

DAY = date.today() - timedelta(days=7)  # inside the daily partitions (last 60 days)
PARTITIONS = 3
TOPICS = current_spec().topics
"""The settings' spec's stream types and their topics."""


@dataclass
class Env:
    pg_url: str
    kafka: KafkaResource
    clickhouse: ClickHouseResource
    ddl: DdlOptions
    group: str
    unique: str

    def options(self, **kw: Any) -> SinkOptions:
        return SinkOptions(ddl=self.ddl, consumer_group=self.group, idle_timeout_s=20, **kw)

    def load(self, day: date = DAY, pg_url: str | None = None, **kw: Any) -> DayResult:
        return load_day(
            day,
            clickhouse=self.clickhouse.client,
            postgres_conninfo=pg_url or self.pg_url,
            consumer_factory=self.kafka.consumer,
            topic_prefix=self.kafka.topic_prefix,
            options=self.options(**kw),
        )

    def publish(
        self, day: date, n_documents: int, *, tag: str = "", seed: int = 7
    ) -> list[OffsetRange]:
        return publish_day(
            self.kafka,
            day_events(day, n_documents, seed=seed, tag=tag),
            day,
            transactional_id=f"test-{self.unique}-{tag}-{seed}",
            partitions=PARTITIONS,
        )

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.clickhouse.client() as c:
            return [tuple(r) for r in c.query(sql, parameters=params).result_rows]

    def fingerprint(self, day: date = DAY) -> tuple[int, int]:
        (row,) = self.query(
            f"SELECT count(), sum(cityHash64(event_id)) FROM {self.ddl.table('events')}"
            " WHERE partition_key = {d:String}",
            d=day.isoformat(),
        )
        return int(row[0]), int(row[1] or 0)


@pytest.fixture(scope="module")
def pg_url(postgres_url: str) -> str:
    migrate(postgres_url)
    return postgres_url


@pytest.fixture
def env(
    pg_url: str, kafka: KafkaResource, clickhouse: ClickHouseResource, unique: str
) -> Iterator[Env]:
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}.")
    create_topics(prefixed.admin(), [prefixed.topic(t) for t in TOPICS.values()], PARTITIONS)
    e = Env(
        pg_url,
        prefixed,
        clickhouse,
        DdlOptions(database=f"t_{unique}"),
        f"analytics-{unique}",
        unique,
    )
    yield e
    with clickhouse.client() as c:
        c.command(drop_database_sql(e.ddl))
    prefixed.admin().delete_topics([prefixed.topic(t) for t in TOPICS.values()])


def _unique_events(env: Env, ranges: list[OffsetRange], day: date = DAY) -> int:
    """Distinct event ids of the day in the ranges, counted by reading Kafka independently."""
    from strangler.migration.kafka_records import read_ranges

    consumer = env.kafka.consumer(f"count-{env.unique}")
    try:
        return len({r.event_id for b in read_ranges(consumer, ranges, day.isoformat()) for r in b})
    finally:
        consumer.close()


def test_day_loaded_twice_is_identical_and_tracked(env: Env) -> None:
    first = env.publish(DAY, 300)
    # The day published again (a relay re-run): its ranges now hold every event twice.
    again = env.publish(DAY, 300)
    ranges = [
        OffsetRange(a.topic, a.kafka_partition, a.start_offset, b.end_offset)
        for a, b in zip(first, again, strict=True)
    ]
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), ranges)
    expected = _unique_events(env, ranges)

    with dg.instance_for_test() as instance:
        res = dg.materialize(
            [clickhouse_analytics],
            partition_key=DAY.isoformat(),
            instance=instance,
            resources={
                "clickhouse": env.clickhouse,
                "kafka": env.kafka,
                "postgres": PostgresResource(url=env.pg_url),
            },
            run_config=dg.RunConfig(
                {
                    "clickhouse_analytics": {
                        "config": {"database": env.ddl.database, "consumer_group": env.group}
                    }
                }
            ),
        )
        assert res.success
        mats = {
            m.asset_key.to_user_string(): m.metadata
            for m in res.asset_materializations_for_node("clickhouse_analytics")
        }
    events_meta = mats["clickhouse/events"]
    assert events_meta["source"].value == "kafka"
    assert events_meta["rows"].value == expected
    assert events_meta["duplicates_dropped"].value == expected
    assert events_meta["compression_ratio"].value > 1
    assert events_meta["bytes_on_disk"].value > 0
    assert mats["clickhouse/document_processing"]["rows"].value == 300
    once = env.fingerprint()
    assert once[0] == expected

    second = env.load()
    assert second.source == "kafka"
    assert env.fingerprint() == once
    assert second.swap.rows["events"] == expected

    with psycopg.connect(env.pg_url) as conn:
        sync = conn.execute(
            "SELECT topic, kafka_partition, committed_offset, end_offset, lag FROM microservices.sync_status"
            " WHERE service = 'analytics-service' AND consumer_group = %s ORDER BY 1, 2",
            (env.group,),
        ).fetchall()
        health = conn.execute(
            "SELECT status, version, details->>'last_partition_key' FROM microservices.service_health"
            " WHERE service = 'analytics-service'"
        ).fetchone()
        log_lines = conn.execute(
            "SELECT count(*) FROM microservices.processing_log WHERE service = 'analytics-service'"
            " AND metrics->>'partition_key' = %s",
            (DAY.isoformat(),),
        ).fetchone()
    assert sorted((r.topic, r.kafka_partition, r.end_offset) for r in ranges) == [
        (t, p, c) for t, p, c, _e, _lag in sync
    ]
    assert all(lag == 0 for *_x, lag in sync)
    assert health is not None and health[0] == "healthy" and health[2] == DAY.isoformat()
    assert log_lines is not None and log_lines[0] >= 2
    # the group's committed offsets are the ends of the day's ranges
    consumer = env.kafka.consumer(env.group)
    try:
        committed = consumer.committed(
            [TopicPartition(r.topic, r.kafka_partition) for r in ranges], timeout=30
        )
    finally:
        consumer.close()
    assert sorted(tp.offset for tp in committed) == sorted(r.end_offset for r in ranges)


def test_mv_targets_equal_direct_group_by(env: Env) -> None:
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), env.publish(DAY, 400, seed=3))
    env.load()
    env.load()  # rebuilding must replace, not add
    ev = env.ddl.table("events")
    d = {"d": DAY.isoformat()}
    assert env.query(
        f"SELECT event_type, customer_id, sum(events) FROM {env.ddl.table('event_counts_daily')}"
        " WHERE partition_key = {d:String} GROUP BY 1, 2 ORDER BY 1, 2",
        **d,
    ) == env.query(
        "SELECT event_type, JSONExtractUInt(payload, 'customer_id'), count()"
        f" FROM {ev} WHERE partition_key = {{d:String}} GROUP BY 1, 2 ORDER BY 1, 2",
        **d,
    )
    merged = env.query(
        "SELECT service, sum(jobs), sum(failed), quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms)"
        f" FROM {env.ddl.table('processing_latency_daily')} WHERE partition_key = {{d:String}}"
        " GROUP BY 1 ORDER BY 1",
        **d,
    )
    direct = env.query(
        "SELECT JSONExtractString(payload, 'service') AS s, count(),"
        " countIf(event_type = 'ProcessingJobFailed'),"
        " quantilesTDigest(0.5, 0.9, 0.99)(JSONExtractUInt(payload, 'duration_ms'))"
        f" FROM {ev} WHERE partition_key = {{d:String}}"
        " AND event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')"
        " AND JSONType(payload, 'duration_ms') = 'Int64' GROUP BY 1 ORDER BY 1",
        **d,
    )
    assert merged and [m[:3] for m in merged] == [x[:3] for x in direct]
    for m, x in zip(merged, direct, strict=True):
        assert m[3] == pytest.approx(x[3], rel=1e-6)
    # document_processing: one row per job, outcome and duration from the finishing event
    assert env.query(
        "SELECT service, status, count(), sum(duration_ms)"
        f" FROM {env.ddl.table('document_processing')} WHERE partition_key = {{d:String}}"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        **d,
    ) == env.query(
        "SELECT JSONExtractString(payload, 'service'), JSONExtractString(payload, 'status'),"
        " count(), sum(JSONExtractUInt(payload, 'duration_ms'))"
        f" FROM {ev} WHERE partition_key = {{d:String}}"
        " AND event_type IN ('ProcessingJobCompleted', 'ProcessingJobFailed')"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        **d,
    )


def test_reader_during_swap_sees_old_or_new_day(env: Env) -> None:
    small = env.publish(DAY, 100, seed=1, tag="a")
    big = env.publish(DAY, 250, seed=2, tag="b")
    full = [
        OffsetRange(a.topic, a.kafka_partition, a.start_offset, b.end_offset)
        for a, b in zip(small, big, strict=True)
    ]
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), small)
        env.load()
        old = env.fingerprint()
        record_ranges(conn, DAY.isoformat(), full)
        env.load()
        new = env.fingerprint()
        assert old != new and old[0] > 0

        seen: list[tuple[tuple[int, int], int]] = []
        stop = threading.Event()

        def reader() -> None:
            agg = env.ddl.table("event_counts_daily")
            while not stop.is_set():
                with env.clickhouse.client() as c:
                    ((cnt, h),) = c.query(
                        f"SELECT count(), sum(cityHash64(event_id)) FROM {env.ddl.table('events')}"
                        " WHERE partition_key = {d:String}",
                        parameters={"d": DAY.isoformat()},
                    ).result_rows
                    ((agg_total,),) = c.query(
                        f"SELECT sum(events) FROM {agg} WHERE partition_key = {{d:String}}",
                        parameters={"d": DAY.isoformat()},
                    ).result_rows
                seen.append(((int(cnt), int(h or 0)), int(agg_total or 0)))
                time.sleep(0.02)  # let the writer take the engine lock between reads

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            # Swap back and forth until the reader has looked often enough (a fast load leaves it
            # few chances per swap), bounded so the test always ends.
            for swaps, ranges in enumerate(itertools.islice(itertools.cycle((small, full)), 40)):
                record_ranges(conn, DAY.isoformat(), ranges)
                env.load(insert_batch_rows=200)  # many staging inserts: many chances to peek
                if swaps >= 3 and len(seen) > 5:
                    break
        finally:
            stop.set()
            thread.join(timeout=60)
    states = {state for state, _agg in seen}
    assert len(seen) > 5
    assert states <= {old, new}, f"a reader saw a mixed day: {states - {old, new}}"
    assert all(agg in (old[0], new[0]) for _state, agg in seen)


def test_fallback_to_event_store(env: Env) -> None:
    day = START_DAY
    with seeded_database(env.pg_url, days=1, start_day=day) as url:
        PartitionMigration(url, day, options=RunOptions(topic_prefix=env.kafka.topic_prefix)).run()
        with psycopg.connect(url) as conn:
            (stored,) = conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM eventstore.outbox WHERE partition_day = %s", (day,)
            ).fetchone()
        assert stored > 0

        # 1. no ranges recorded for the day
        result = env.load(day, pg_url=url)
        assert result.source == "event_store"
        assert result.fallback_reason and "no offset ranges" in result.fallback_reason
        assert result.rows == stored
        fp = env.fingerprint(day)
        assert fp[0] == stored

        # 2. ranges recorded, but retention removed their start
        ranges = env.publish(day, 50)
        admin = env.kafka.admin()
        futures = admin.delete_records(
            [TopicPartition(r.topic, r.kafka_partition, r.start_offset + 1) for r in ranges]
        )
        for f in futures.values():
            f.result(timeout=30)
        with psycopg.connect(url, autocommit=True) as conn:
            record_ranges(conn, day.isoformat(), ranges)
        gone = env.load(day, pg_url=url)
        assert gone.source == "event_store"
        assert gone.fallback_reason and "retention" in gone.fallback_reason
        assert env.fingerprint(day) == fp
        assert gone.committed == []


def test_empty_day_drops_the_partition(env: Env) -> None:
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), env.publish(DAY, 20))
    env.load()
    assert env.fingerprint()[0] > 0
    other = date(1999, 1, 1)
    env.load(other)  # nothing anywhere for that day: an empty, successful swap
    assert env.fingerprint(other) == (0, 0)
    assert env.fingerprint()[0] > 0


def test_example_queries_run(env: Env) -> None:
    from strangler.analytics.queries import run_examples

    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), env.publish(DAY, 30))
    env.load()
    with env.clickhouse.client() as c:
        results = run_examples(c, env.ddl)
    assert len(results) == 3 and all(rows for rows in results.values())


_KILLED_LOADER = """
import sys
from strangler.analytics.ddl import DdlOptions
from strangler.analytics.sink import SinkOptions, load_partition
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource


dsn, bootstrap, prefix, key, pg_url, database, group = sys.argv[1:8]
kafka = KafkaResource(bootstrap_servers=bootstrap, topic_prefix=prefix)
load_partition(
    key,
    clickhouse=ClickHouseResource(dsn=dsn, lock_timeout_s=120).client,
    postgres_conninfo=pg_url,
    consumer_factory=kafka.consumer,
    topic_prefix=prefix,
    options=SinkOptions(
        ddl=DdlOptions(database=database), consumer_group=group,
        insert_batch_rows=100, read_batch=100,
    ),
    log=lambda message: print(message, flush=True),
)
"""


def test_kill_9_mid_load_leaves_the_day_untouched_and_a_rerun_completes(env: Env) -> None:
    import signal
    import subprocess
    import sys

    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), env.publish(DAY, 60, seed=5, tag="old"))
    env.load()
    old = env.fingerprint()
    bigger = env.publish(DAY, 400, seed=6, tag="new")
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), bigger)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_LOADER,
            env.clickhouse.dsn,
            env.kafka.bootstrap_servers,
            env.kafka.topic_prefix,
            DAY.isoformat(),
            env.pg_url,
            env.ddl.database,
            env.group,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    landed = 0
    for line in child.stdout:
        if "landed batch" in line:
            landed += 1
            if landed == 3:
                child.send_signal(signal.SIGKILL)
                break
    child.wait(timeout=60)
    assert landed == 3 and child.returncode == -signal.SIGKILL
    assert env.fingerprint() == old  # the live day never saw the half-landed records
    twins = env.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name LIKE '%\\\\_\\\\_%'",
        db=env.ddl.database,
    )
    assert twins[0][0] > 0  # the killed run's twins are still there...
    again = env.load()
    assert again.rows == _unique_events(env, bigger)
    assert env.fingerprint()[0] == again.rows
    assert env.query(  # ...and the next run of the day dropped them
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name LIKE '%\\\\_\\\\_%'",
        db=env.ddl.database,
    ) == [(0,)]


def test_a_database_of_the_pre_spec_layout_is_rebuilt(env: Env) -> None:
    from strangler.analytics.ddl import PRE_SPEC_LAYOUT, VERSIONS_TABLE, apply_schema

    with env.clickhouse.client() as c:
        c.command(f"CREATE DATABASE IF NOT EXISTS {env.ddl.db}")
        c.command(
            f"CREATE TABLE {env.ddl.table('events')} (partition_day Date, event_id UUID)"
            " ENGINE = MergeTree PARTITION BY partition_day ORDER BY event_id"
        )
        apply_schema_versions = env.ddl.table(VERSIONS_TABLE)
        c.command(
            f"CREATE TABLE {apply_schema_versions} (version UInt32, name String,"
            " checksum String, applied_at DateTime64(3, 'UTC'))"
            " ENGINE = ReplacingMergeTree ORDER BY version"
        )
        c.command(
            f"INSERT INTO {apply_schema_versions} VALUES (1, 'events', {{c:String}}, now64(3))",
            parameters={"c": PRE_SPEC_LAYOUT[1]},
        )
        assert "dropped the pre-spec layout" in apply_schema(c, env.ddl)
        assert apply_schema(c, env.ddl) == []
    with psycopg.connect(env.pg_url, autocommit=True) as conn:
        record_ranges(conn, DAY.isoformat(), env.publish(DAY, 20))
    assert env.load().rows == env.fingerprint()[0] > 0
