"""A range of partitions relayed by RangeRelay (one producer per topic, one progress read, a
Postgres lock per partition): every partition's outbox rows land in Kafka exactly once for
read_committed readers, with its own offset ranges and result, after a partition relayed on
its own before, on a re-run, and after kill -9 in the middle (sample and shop)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from strangler.migration.kafka_records import load_offset_ranges, read_ranges
from strangler.migration.outbox_relay import DayRelay, RelayOptions
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.range_relay import RangeRelay
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.kafka import KafkaResource
from strangler.spec import EstateSpec, current_spec

from .migration_helpers import START_DAY, ensure_test_topics, seeded_database
from .shop_helpers import SHOP_DAYS, SHOP_NOW, shop_estate

DAYS = [(START_DAY + timedelta(days=i)).isoformat() for i in range(3)]


@pytest.fixture
def prefixed(kafka: KafkaResource, unique: str) -> KafkaResource:
    return KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"rr{unique}.")


@pytest.fixture
def days_in_store(postgres_url: str, prefixed: KafkaResource) -> Iterator[str]:
    with seeded_database(postgres_url, days=len(DAYS), scale=0.3) as url:
        for day in DAYS:
            PartitionMigration(
                url, day, options=RunOptions(topic_prefix=prefixed.topic_prefix)
            ).run()
        yield url


def _progress_topic(kafka: KafkaResource) -> str:
    return ensure_test_topics(kafka)


def _topics(kafka: KafkaResource, spec: EstateSpec) -> list[str]:
    return [kafka.topic(t) for t in sorted(set(spec.topics.values()))]


def _outbox_ids(url: str, key: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id FROM eventstore.outbox WHERE partition_key = %s", (key,)
        ).fetchall()
    return Counter(str(r[0]) for r in rows)


def _kafka_ids(url: str, kafka: KafkaResource, key: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        ranges = load_offset_ranges(conn, key)
    consumer = kafka.consumer(f"check-{uuid.uuid4().hex[:6]}")
    try:
        return Counter(
            str(r.event_id) for batch in read_ranges(consumer, ranges, key) for r in batch
        )
    finally:
        consumer.close()


def _assert_exactly_once(url: str, kafka: KafkaResource, keys: list[str]) -> None:
    for key in keys:
        expected = _outbox_ids(url, key)
        assert expected, key
        counts = _kafka_ids(url, kafka, key)
        assert counts == expected, key
        assert max(counts.values()) == 1, key


def _forget_bookkeeping(url: str, key: str) -> None:
    """What a run killed between its Kafka commit and its Postgres bookkeeping leaves: Kafka
    holds the partition's records and progress, Postgres neither watermark nor offset ranges."""
    with psycopg.connect(url) as conn:
        for table in ("outbox_published", "kafka_offset_ranges"):
            conn.execute(f"DELETE FROM migration_state.{table} WHERE partition_key = %s", (key,))


def _total(url: str, keys: list[str]) -> int:
    return sum(sum(_outbox_ids(url, k).values()) for k in keys)


def test_sample_range_relay_exactly_once_per_partition(
    days_in_store: str, prefixed: KafkaResource
) -> None:
    spec = current_spec()
    progress = _progress_topic(prefixed)
    topics = _topics(prefixed, spec)
    alone = DayRelay(days_in_store, prefixed, DAYS[1], topics, progress).run()
    assert sum(r.published for r in alone) == sum(_outbox_ids(days_in_store, DAYS[1]).values())
    # transactions of 150 records span partitions: their progress commits together
    results = RangeRelay(
        days_in_store, prefixed, DAYS, topics, progress, options=RelayOptions(transaction_size=150)
    ).run()
    assert set(results) == set(DAYS)
    for key in (DAYS[0], DAYS[2]):
        assert sum(r.published for r in results[key]) == sum(
            _outbox_ids(days_in_store, key).values()
        )
        assert all(r.offset_ranges() for r in results[key] if r.published)
    assert sum(r.published for r in results[DAYS[1]]) == 0
    _assert_exactly_once(days_in_store, prefixed, DAYS)
    again = RangeRelay(days_in_store, prefixed, DAYS, topics, progress).run()
    assert sum(r.published for rs in again.values() for r in rs) == 0
    _assert_exactly_once(days_in_store, prefixed, DAYS)
    _forget_bookkeeping(days_in_store, DAYS[0])
    RangeRelay(days_in_store, prefixed, DAYS, topics, progress).run()
    assert _published(days_in_store) == _total(days_in_store, DAYS)
    _assert_exactly_once(days_in_store, prefixed, DAYS)


KILLABLE = textwrap.dedent(
    """
    import sys
    from strangler.migration.outbox_relay import RelayOptions
    from strangler.migration.range_relay import RangeRelay
    from strangler.resources.kafka import KafkaResource
    url, bootstrap, prefix, progress, topics, keys = sys.argv[1:7]
    kafka = KafkaResource(bootstrap_servers=bootstrap, topic_prefix=prefix)
    RangeRelay(url, kafka, keys.split(","), topics.split(","), progress,
               options=RelayOptions(transaction_size=50, batch_size=50, workers=2)).run()
    """
)


def _processed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(processed_items), 0) FROM migration_state.migration_runs"
            " WHERE migration LIKE 'kafka:%' AND status = 'running'"
        ).fetchone()
    return int(row[0]) if row else 0


def _published(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM eventstore.outbox o JOIN migration_state.outbox_published p"
            " USING (topic, partition_key) WHERE o.position <= p.last_position"
        ).fetchone()
    return int(row[0]) if row else 0


def test_sample_range_relay_exactly_once_under_kill_9(
    days_in_store: str, prefixed: KafkaResource
) -> None:
    spec = current_spec()
    progress = _progress_topic(prefixed)
    topics = _topics(prefixed, spec)
    total = _total(days_in_store, DAYS)
    rng = random.Random(5)
    kills = 0
    for _ in range(2):
        target = _published(days_in_store) + rng.randint(100, 300)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLABLE,
                days_in_store,
                prefixed.bootstrap_servers,
                prefixed.topic_prefix,
                progress,
                ",".join(topics),
                ",".join(DAYS),
            ]
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _published(days_in_store) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait(60)
    assert kills >= 1
    assert _published(days_in_store) < total, "every row was sent before the last kill"
    # the same range again: its producers fence the dead run's, its progress is read back
    RangeRelay(days_in_store, prefixed, DAYS, topics, progress).run()
    assert _published(days_in_store) == total
    _assert_exactly_once(days_in_store, prefixed, DAYS)


def test_shop_range_relay_exactly_once(postgres_url: str, prefixed: KafkaResource) -> None:
    days = [d.isoformat() for d in SHOP_DAYS]
    with shop_estate(postgres_url) as shop:
        for day in days:
            PartitionMigration(
                shop.estate_url,
                day,
                spec=shop.spec,
                source_conninfo=shop.monolith_url,
                options=RunOptions(topic_prefix=prefixed.topic_prefix),
                now=SHOP_NOW,
            ).run()
        progress = progress_topic_spec(prefixed.topic_prefix, 1)
        topics = _topics(prefixed, shop.spec)
        domain = domain_topic_specs(
            prefixed.topic_prefix,
            partitions=3,
            replication_factor=1,
            min_insync_replicas=1,
            retention_days=30,
            compaction=False,
            message_max_bytes=1_000_000,
            names=shop.spec.topics.values(),
        )
        ensure_topics(prefixed.admin(), [*domain, progress])
        results = RangeRelay(
            shop.estate_url,
            prefixed,
            days,
            topics,
            progress.name,
            options=RelayOptions(transaction_size=7),
        ).run()
        held = [d for d in days if _outbox_ids(shop.estate_url, d)]
        assert held
        for day in held:
            assert sum(r.published for r in results[day]) == sum(
                _outbox_ids(shop.estate_url, day).values()
            )
        _assert_exactly_once(shop.estate_url, prefixed, held)
        again = RangeRelay(shop.estate_url, prefixed, days, topics, progress.name).run()
        assert sum(r.published for rs in again.values() for r in rs) == 0
        _assert_exactly_once(shop.estate_url, prefixed, held)
        _forget_bookkeeping(shop.estate_url, held[-1])
        RangeRelay(shop.estate_url, prefixed, days, topics, progress.name).run()
        assert _published(shop.estate_url) == _total(shop.estate_url, held)
        _assert_exactly_once(shop.estate_url, prefixed, held)
