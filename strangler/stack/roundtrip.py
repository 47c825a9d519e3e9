"""Round-trip one piece of real data through each of the five resources.

The main job uses it to prove the stack is wired end to end before it migrates anything.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic
from psycopg import sql

from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource


@dataclass(frozen=True)
class RoundTrip:
    resource: str
    detail: str
    seconds: float


def _timed(resource: str, fn: Callable[[], str]) -> RoundTrip:
    started = time.monotonic()
    detail = fn()
    return RoundTrip(resource, detail, time.monotonic() - started)


def postgres_roundtrip(pg: PostgresResource, suffix: str) -> str:
    table = sql.Identifier(f"roundtrip_{suffix}")
    with pg.connection() as conn:
        conn.execute(sql.SQL("CREATE TEMP TABLE {} (id int PRIMARY KEY, note text)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (1, "hello"))
        row = conn.execute(
            sql.SQL("SELECT note FROM {} WHERE id = %s").format(table), (1,)
        ).fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    if row is None or row[0] != "hello":
        raise RuntimeError(f"postgres round-trip returned {row!r}")
    return f"PostgreSQL {version[0] if version else '?'}: inserted and selected 1 row"


def kafka_roundtrip(kafka: KafkaResource, topic: str) -> str:
    admin = kafka.admin()
    futures = admin.create_topics([NewTopic(topic, 1, 1)])
    try:
        futures[topic].result(15)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    payload = uuid.uuid4().hex.encode()
    producer = kafka.producer()
    offsets: list[int] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            raise RuntimeError(f"delivery to {topic} failed: {err}")
        offsets.append(msg.offset())  # type: ignore[attr-defined]

    producer.produce(topic, payload, key=b"roundtrip", on_delivery=delivered)
    if producer.flush(15) != 0 or not offsets:
        raise RuntimeError(f"record to {topic} was not acknowledged within 15s")
    consumer = kafka.consumer(f"roundtrip-{topic}")
    try:
        consumer.assign([TopicPartition(topic, 0, offsets[0])])
        msg = consumer.poll(15)
    finally:
        consumer.close()
    if msg is None or msg.error() is not None or msg.value() != payload:
        raise RuntimeError(f"consumed {msg!r} from {topic}, expected the produced record")
    return f"topic {topic}: produced and consumed 1 record at offset {offsets[0]}"


def clickhouse_roundtrip(ch: ClickHouseResource, suffix: str) -> str:
    database = f"roundtrip_{suffix}"
    with ch.client() as client:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client.command(
            f"CREATE TABLE `{database}`.t (id UInt32, note String) ENGINE = MergeTree ORDER BY id"
        )
        client.insert(f"{database}.t", [[1, "a"], [2, "b"]], column_names=["id", "note"])
        rows = client.query(f"SELECT id, note FROM `{database}`.t ORDER BY id").result_rows
        client.command(f"DROP DATABASE `{database}`")
        version = client.command("SELECT version()")
    if [tuple(r) for r in rows] != [(1, "a"), (2, "b")]:
        raise RuntimeError(f"clickhouse round-trip returned {rows!r}")
    return f"ClickHouse {version} ({'embedded chdb' if ch.embedded else ch.dsn}): 2 rows in and out"


def weaviate_roundtrip(wv: WeaviateResource, embedder: EmbedderResource, collection: str) -> str:
    from weaviate.classes.config import Configure, DataType, Property

    texts = ["the invoice is overdue", "the patient was discharged"]
    vectors = embedder.encode(texts)
    with wv.client() as client:
        if client.collections.exists(collection):
            client.collections.delete(collection)
        col = client.collections.create(
            collection,
            properties=[Property(name="text", data_type=DataType.TEXT)],
            vector_config=Configure.Vectors.self_provided(),
        )
        try:
            for text, vector in zip(texts, vectors, strict=True):
                col.data.insert({"text": text}, vector=vector.tolist())
            query = embedder.encode(["payment for the invoice is late"])[0]
            hits = col.query.near_vector(query.tolist(), limit=1).objects
        finally:
            client.collections.delete(collection)
    if not hits or hits[0].properties.get("text") != texts[0]:
        raise RuntimeError(f"near-vector query returned {hits!r}")
    return f"collection {collection}: 2 vectors in, nearest to 'payment ... late' is {texts[0]!r}"


def embedder_roundtrip(embedder: EmbedderResource) -> str:
    vectors = embedder.encode(["hello world"])
    norm = float(np.linalg.norm(vectors[0]))
    return f"{vectors.shape[1]}-d vectors on {embedder.model().device}, norm {norm:.3f}"


def round_trip_all(
    pg: PostgresResource,
    kafka: KafkaResource,
    ch: ClickHouseResource,
    wv: WeaviateResource,
    embedder: EmbedderResource,
) -> list[RoundTrip]:
    suffix = uuid.uuid4().hex[:8]
    return [
        _timed("postgres", lambda: postgres_roundtrip(pg, suffix)),
        _timed(
            "kafka", lambda: kafka_roundtrip(kafka, kafka.topic(f"strangler.roundtrip.{suffix}"))
        ),
        _timed("clickhouse", lambda: clickhouse_roundtrip(ch, suffix)),
        _timed("embedder", lambda: embedder_roundtrip(embedder)),
        _timed("weaviate", lambda: weaviate_roundtrip(wv, embedder, f"Roundtrip_{suffix}")),
    ]
