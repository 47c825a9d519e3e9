"""Outbox -> Kafka: exactly once for read_committed readers, against the real broker."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from strangler.event_store.model import NewEvent
from strangler.event_store.store import EventStore
from strangler.migration.events import topic_for
from strangler.migration.kafka_records import (
    SOURCE,
    load_offset_ranges,
    read_ranges,
    watermarks,
)
from strangler.migration.outbox_relay import DayRelay, FatalRelayError, RelayOptions
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.ranges import relay_pending
from strangler.migration.topics import (
    ensure_topics,
    progress_topic_spec,
)
from strangler.resources.kafka import KafkaResource
from strangler.spec import current_spec
from strangler.stack.manager import Stack

from .migration_helpers import START_DAY, seeded_database, small_topic_specs

DAY = START_DAY.isoformat()


@pytest.fixture
def prefixed(kafka: KafkaResource, unique: str) -> KafkaResource:
    """Topics of their own for this test."""
    return KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}.")


@pytest.fixture
def day_in_store(postgres_url: str, prefixed: KafkaResource) -> Iterator[str]:
    with seeded_database(postgres_url, days=1, scale=0.5) as url:
        PartitionMigration(
            url, START_DAY, options=RunOptions(topic_prefix=prefixed.topic_prefix)
        ).run()
        yield url


def _relay(url: str, kafka: KafkaResource, **options: object) -> DayRelay:
    specs = small_topic_specs(kafka.topic_prefix)
    progress = progress_topic_spec(kafka.topic_prefix, 1)
    admin = kafka.admin()
    ensure_topics(admin, [*specs, progress])
    return DayRelay(
        url,
        kafka,
        DAY,
        [kafka.topic(t) for t in current_spec().topics.values()],
        progress.name,
        options=RelayOptions(**options),  # type: ignore[arg-type]
    )


def _outbox_ids(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id FROM eventstore.outbox WHERE partition_day = %s", (DAY,)
        ).fetchall()
    return Counter(str(r[0]) for r in rows)


def _kafka_ids(url: str, kafka: KafkaResource) -> Counter[str]:
    with psycopg.connect(url) as conn:
        ranges = load_offset_ranges(conn, DAY)
    consumer = kafka.consumer(f"check-{uuid.uuid4().hex[:6]}")
    try:
        return Counter(
            str(r.event_id) for batch in read_ranges(consumer, ranges, DAY) for r in batch
        )
    finally:
        consumer.close()


def test_publishes_each_event_once_with_key_and_headers(
    day_in_store: str, prefixed: KafkaResource
) -> None:
    results = _relay(day_in_store, prefixed, transaction_size=500).run()
    expected = _outbox_ids(day_in_store)
    assert sum(r.published for r in results) == sum(expected.values())
    assert _kafka_ids(day_in_store, prefixed) == expected
    again = _relay(day_in_store, prefixed).run()
    assert sum(r.published for r in again) == 0
    assert _kafka_ids(day_in_store, prefixed) == expected
    consumer = prefixed.consumer(f"peek-{uuid.uuid4().hex[:6]}")
    with psycopg.connect(day_in_store) as conn:
        ranges = [r for r in load_offset_ranges(conn, DAY) if r.topic.endswith("customers.events")]
    try:
        consumer.assign(
            [TopicPartition(ranges[0].topic, ranges[0].kafka_partition, ranges[0].start_offset)]
        )
        msg = None
        for _ in range(20):
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                break
    finally:
        consumer.close()
    assert msg is not None
    headers = dict(msg.headers() or [])
    assert set(headers) >= {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "partition_day",
        "source",
    }
    assert headers["partition_day"] == DAY.encode()
    assert msg.key() is not None and msg.key().decode().isdigit()


def test_dry_run_sends_nothing(day_in_store: str, prefixed: KafkaResource) -> None:
    results = _relay(day_in_store, prefixed, dry_run=True).run()
    assert sum(r.would_send for r in results) == sum(_outbox_ids(day_in_store).values())
    assert sum(r.published for r in results) == 0
    with psycopg.connect(day_in_store) as conn:
        assert load_offset_ranges(conn, DAY) == []
    consumer = prefixed.consumer("dry")
    try:
        for topic in current_spec().topics.values():
            for p in range(3):
                assert watermarks(consumer, prefixed.topic(topic), p) == (0, 0)
    finally:
        consumer.close()


def test_oversized_event_goes_to_failed_entities(
    day_in_store: str, prefixed: KafkaResource
) -> None:
    huge = NewEvent(
        event_id=uuid.uuid4(),
        aggregate_type="Document",
        aggregate_id="999999",
        aggregate_version=1,
        event_type="DocumentUploaded",
        payload={"document_id": 999999, "customer_id": 1, "title": "x" * 1_500_000},
        occurred_at=datetime(2026, 3, 2, 12, tzinfo=UTC),
        metadata={"partition_day": DAY},
    )
    with psycopg.connect(day_in_store) as conn:
        EventStore(conn, topic_for=topic_for(current_spec(), prefixed.topic_prefix)).append_batch(
            [huge]
        )
        conn.commit()
    results = _relay(day_in_store, prefixed).run()
    assert sum(r.failed for r in results) == 1
    published = _kafka_ids(day_in_store, prefixed)
    assert str(huge.event_id) not in published
    assert sum(published.values()) == sum(_outbox_ids(day_in_store).values()) - 1
    with psycopg.connect(day_in_store) as conn:
        row = conn.execute(
            "SELECT rule, reason FROM migration_state.failed_entities WHERE migration = 'kafka'"
        ).fetchone()
    assert row is not None and row[0] == "message_too_large" and "message.max.bytes" in row[1]


def test_config_drift_is_reported_not_changed(prefixed: KafkaResource) -> None:
    name = prefixed.topic("customers.events")
    admin = prefixed.admin()
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(15)
    specs = small_topic_specs(prefixed.topic_prefix)
    drift = ensure_topics(admin, specs)
    assert any("2 partitions, settings say 3" in d for d in drift)
    assert any("max.message.bytes" in d for d in drift)
    assert len(admin.list_topics(timeout=10).topics[name].partitions) == 2


KILLABLE = textwrap.dedent(
    """
    import sys
    from strangler.migration.outbox_relay import DayRelay, RelayOptions
    from strangler.migration.topics import PROGRESS_TOPIC
    from strangler.resources.kafka import KafkaResource
    from strangler.spec import current_spec
    url, bootstrap, prefix, day = sys.argv[1:5]
    kafka = KafkaResource(bootstrap_servers=bootstrap, topic_prefix=prefix)
    DayRelay(url, kafka, day, [kafka.topic(t) for t in current_spec().topics.values()], kafka.topic(PROGRESS_TOPIC),
             options=RelayOptions(transaction_size=100, batch_size=100, workers=2)).run()
    """
)


def _processed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(processed_items), 0) FROM migration_state.migration_runs WHERE migration LIKE 'kafka:%'"
            " AND status = 'running'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_exactly_once_under_kill_9(day_in_store: str, prefixed: KafkaResource) -> None:
    _relay(day_in_store, prefixed, dry_run=True)  # creates the topics
    rng = random.Random(17)
    kills = 0
    for _ in range(3):
        target = rng.randint(100, 900)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLABLE,
                day_in_store,
                prefixed.bootstrap_servers,
                prefixed.topic_prefix,
                DAY,
            ]
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _processed(day_in_store) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait(60)
    _relay(day_in_store, prefixed, transaction_size=100).run()
    assert kills >= 1
    counts = _kafka_ids(day_in_store, prefixed)
    assert counts == _outbox_ids(day_in_store)
    assert max(counts.values()) == 1


def test_broker_restart_mid_publish_converges(
    day_in_store: str, prefixed: KafkaResource, stack: Stack
) -> None:
    relay = _relay(day_in_store, prefixed, transaction_size=50, batch_size=50, workers=1)
    outcome: dict[str, object] = {}

    def publish() -> None:
        try:
            outcome["results"] = relay.run()
        except FatalRelayError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=publish)
    thread.start()
    deadline = time.monotonic() + 60
    while _processed(day_in_store) < 100 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    kafka_service = stack.service("kafka")
    kafka_service.stop()
    time.sleep(2)
    kafka_service.start()
    thread.join(300)
    assert not thread.is_alive()
    assert "results" in outcome or isinstance(outcome.get("error"), FatalRelayError)
    _relay(day_in_store, prefixed).run()
    counts = _kafka_ids(day_in_store, prefixed)
    assert counts == _outbox_ids(day_in_store)


def _raw_records(
    kafka: KafkaResource, topics: list[str]
) -> dict[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Every committed record of these topics: event_id header -> (key, value, headers)."""
    consumer = kafka.consumer(f"raw-{uuid.uuid4().hex[:6]}")
    found: dict[str, tuple[bytes, bytes, list[tuple[str, bytes]]]] = {}
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                low, high = watermarks(consumer, topic, p)
                if high > low:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        deadline = time.monotonic() + 60
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1_000, timeout=0.5):
                assert msg.error() is None, msg.error()
                headers = msg.headers() or []
                found[dict(headers)["event_id"].decode()] = (msg.key(), msg.value(), headers)
            for (t, p), high in list(ends.items()):
                if consumer.position([TopicPartition(t, p)])[0].offset >= high:
                    del ends[(t, p)]
        assert not ends, f"topics not read to their end: {ends}"
    finally:
        consumer.close()
    return found


def test_records_are_the_outbox_rows_byte_for_byte(
    day_in_store: str, prefixed: KafkaResource
) -> None:
    """Key, value and headers (in order) are exactly what the outbox holds: the value is the
    stored envelope with the partition day, as Postgres renders it; the headers the stored ones
    then partition_day and source."""
    relay = _relay(day_in_store, prefixed, transaction_size=700, batch_size=300)
    relay.run()
    with psycopg.connect(day_in_store) as conn:
        rows = conn.execute(
            "SELECT event_id::text, topic, message_key, headers::text,"
            " (payload || jsonb_build_object('partition_day', partition_key))::text, position"
            " FROM eventstore.outbox WHERE partition_key = %s",
            (DAY,),
        ).fetchall()
        marks = dict(
            conn.execute(
                "SELECT topic, last_position FROM migration_state.outbox_published"
                " WHERE partition_key = %s",
                (DAY,),
            ).fetchall()
        )
        assert relay_pending(conn, [DAY], relay.topics) == []
    records = _raw_records(prefixed, relay.topics)
    assert len(records) == len(rows) > 0
    for event_id, _topic, key, headers, value, _position in rows:
        got_key, got_value, got_headers = records[event_id]
        assert got_key == key.encode()
        assert got_value == value.encode()
        assert got_headers == [
            *((k, str(v).encode()) for k, v in json.loads(headers).items()),
            ("partition_day", DAY.encode()),
            ("source", SOURCE.encode()),
        ]
    assert marks == {
        topic: max(r[5] for r in rows if r[1] == topic) for topic in {r[1] for r in rows}
    }
    late = NewEvent(
        event_id=uuid.uuid4(),
        aggregate_type="Document",
        aggregate_id="999998",
        aggregate_version=1,
        event_type="DocumentUploaded",
        payload={"document_id": 999998, "customer_id": 1, "title": "late"},
        occurred_at=datetime(2026, 3, 2, 12, tzinfo=UTC),
        metadata={"partition_day": DAY},
    )
    with psycopg.connect(day_in_store) as conn:
        EventStore(conn, topic_for=topic_for(current_spec(), prefixed.topic_prefix)).append_batch(
            [late]
        )
        conn.commit()
        assert relay_pending(conn, [DAY], relay.topics) == [DAY]
        assert sum(r.published for r in _relay(day_in_store, prefixed).run()) == 1
        assert relay_pending(conn, [DAY], relay.topics) == []
