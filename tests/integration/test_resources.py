"""One round trip of real data per resource, against the running local stack."""

from __future__ import annotations

import numpy as np
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic
from psycopg import sql
from weaviate.classes.config import Configure, DataType, Property

from strangler.migration.topics import TopicSpec, delete_topics_matching, ensure_topics
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.clickhouse_session import drop_stray_databases
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource


def test_postgres_insert_select(postgres: PostgresResource, unique: str) -> None:
    schema = sql.Identifier(f"t_{unique}")
    with postgres.connection() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        try:
            conn.execute(
                sql.SQL("CREATE TABLE {}.items (id int PRIMARY KEY, name text)").format(schema)
            )
            conn.cursor().executemany(
                sql.SQL("INSERT INTO {}.items VALUES (%s, %s)").format(schema),
                [(1, "één"), (2, "two")],
            )
            rows = conn.execute(
                sql.SQL("SELECT id, name FROM {}.items ORDER BY id").format(schema)
            ).fetchall()
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
    assert rows == [(1, "één"), (2, "two")]


def test_kafka_produce_consume_fresh_topic(kafka: KafkaResource, unique: str) -> None:
    topic = f"test.resources.{unique}"
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(15)
    producer = kafka.producer()
    acked: list[tuple[int, int]] = []
    for i in range(10):
        producer.produce(
            topic,
            value=f"v{i}".encode(),
            key=f"k{i % 3}".encode(),
            on_delivery=lambda err, msg: (
                acked.append((msg.partition(), msg.offset())) if err is None else None
            ),
        )
    assert producer.flush(15) == 0
    assert len(acked) == 10
    consumer = kafka.consumer(f"test-{unique}")
    consumer.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    seen: list[bytes] = []
    try:
        for _ in range(50):
            msg = consumer.poll(1)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
            if len(seen) == 10:
                break
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(10))


def test_clickhouse_create_insert_select(clickhouse: ClickHouseResource, unique: str) -> None:
    db = f"test_{unique}"
    with clickhouse.client() as client:
        client.command(f"CREATE DATABASE `{db}`")
        try:
            client.command(
                f"CREATE TABLE `{db}`.events (id UInt64, kind LowCardinality(String), at DateTime64(3, 'UTC')) "
                "ENGINE = MergeTree ORDER BY (kind, id)"
            )
            client.insert(
                f"{db}.events",
                [[i, "a" if i % 2 else "b", 1_700_000_000 + i] for i in range(1000)],
                column_names=["id", "kind", "at"],
            )
            rows = client.query(
                f"SELECT kind, count() FROM `{db}`.events GROUP BY kind ORDER BY kind"
            ).result_rows
        finally:
            client.command(f"DROP DATABASE `{db}`")
    assert [tuple(r) for r in rows] == [("a", 500), ("b", 500)]


def test_stray_databases_dropped_by_name_only(clickhouse: ClickHouseResource, unique: str) -> None:
    stray, kept = f"stray_{unique}", f"kept_{unique}"
    with clickhouse.client() as client:
        for db in (stray, kept):
            client.command(f"CREATE DATABASE `{db}`")
            client.command(f"CREATE TABLE `{db}`.t (id UInt64) ENGINE = MergeTree ORDER BY id")
    try:
        dropped = drop_stray_databases(clickhouse.dsn, rf"^stray_{unique}$")
        with clickhouse.client() as client:
            names = {r[0] for r in client.query("SELECT name FROM system.databases").result_rows}
    finally:
        with clickhouse.client() as client:
            for db in (stray, kept):
                client.command(f"DROP DATABASE IF EXISTS `{db}`")
    assert dropped == [stray]
    assert stray not in names and kept in names


def test_stray_topics_are_deleted_and_others_kept(kafka: KafkaResource, unique: str) -> None:
    stray, kept = f"test.stray.{unique}", f"test.kept.{unique}"
    admin = kafka.admin()
    ensure_topics(admin, [TopicSpec(stray, 2, 1, {}), TopicSpec(kept, 1, 1, {})])
    try:
        deleted = delete_topics_matching(admin, rf"^test\.stray\.{unique}$")
        names = set(admin.list_topics(timeout=10).topics)
    finally:
        admin.delete_topics([kept])
    assert deleted == [stray]
    assert stray not in names and kept in names


def test_weaviate_insert_and_near_vector(weaviate_resource: WeaviateResource, unique: str) -> None:
    name = f"Test_{unique}"
    with weaviate_resource.client() as client:
        col = client.collections.create(
            name,
            properties=[Property(name="label", data_type=DataType.TEXT)],
            vector_config=Configure.Vectors.self_provided(),
        )
        try:
            col.data.insert({"label": "x-axis"}, vector=[1.0, 0.0, 0.0])
            col.data.insert({"label": "y-axis"}, vector=[0.0, 1.0, 0.0])
            hits = col.query.near_vector([0.9, 0.1, 0.0], limit=1).objects
            total = col.aggregate.over_all(total_count=True).total_count
        finally:
            client.collections.delete(name)
    assert total == 2
    assert hits[0].properties["label"] == "x-axis"


def test_embedder_semantics(embedder: EmbedderResource) -> None:
    vectors = embedder.encode(
        ["the invoice is overdue", "payment for the invoice is late", "the patient was discharged"]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    near = float(vectors[0] @ vectors[1])
    far = float(vectors[0] @ vectors[2])
    assert near > far
