"""sync_status reflects what a consumer group committed against the log end."""

from __future__ import annotations

import psycopg
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from strangler.db.migrations import migrate
from strangler.migration.consumer_lag import refresh_sync_status
from strangler.resources.kafka import KafkaResource


def test_lag_is_end_minus_committed(postgres_url: str, kafka: KafkaResource, unique: str) -> None:
    migrate(postgres_url)
    topic = f"test.lag.{unique}"
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
    producer = kafka.producer()
    for i in range(10):
        producer.produce(topic, b"x", partition=i % 2)
    assert producer.flush(15) == 0
    group = f"svc-{unique}"
    consumer = kafka.consumer(group)
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            lags = refresh_sync_status(conn, consumer, "analytics-service", group, [topic])
            rows = conn.execute(
                "SELECT kafka_partition, committed_offset, end_offset, lag FROM microservices.sync_status"
                " WHERE consumer_group = %s ORDER BY kafka_partition",
                (group,),
            ).fetchall()
    finally:
        consumer.close()
    assert {(x.kafka_partition, x.lag) for x in lags} == {(0, 2), (1, 5)}
    assert rows == [(0, 3, 5, 2), (1, 0, 5, 5)]
