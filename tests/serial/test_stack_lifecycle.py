"""`stack up` is idempotent; `down` then `up` keeps every service's data."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic
from weaviate.classes.config import Configure, DataType, Property

from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import WeaviateResource
from strangler.settings import Settings
from strangler.stack.manager import Stack

pytestmark = pytest.mark.integration
"""`down` stops the services every other test uses: tests/serial/ is marked serial and runs
alone (tests/conftest.py, make test)."""


def _pids(stack: Stack) -> dict[str, int | None]:
    return {s.name: s.pid for s in stack.status()}


def test_second_up_is_a_noop(stack: Stack) -> None:
    before = _pids(stack)
    result = subprocess.run(
        [sys.executable, "-m", "strangler.cli", "stack", "up"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stack up in" in result.stdout
    assert _pids(stack) == before
    assert all(s.healthy for s in stack.status())


def test_down_then_up_keeps_data(
    stack: Stack,
    settings: Settings,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate_resource: WeaviateResource,
    unique: str,
) -> None:
    table, topic, db, collection = (
        f"keep_{unique}",
        f"test.keep.{unique}",
        f"keep_{unique}",
        f"Keep_{unique}",
    )
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (v text)')
        conn.execute(f'INSERT INTO "{table}" VALUES (%s)', ("kept",))
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    producer = kafka.producer()
    producer.produce(topic, b"kept")
    assert producer.flush(15) == 0
    with clickhouse.client() as c:
        c.command(f"CREATE DATABASE `{db}`")
        c.command(f"CREATE TABLE `{db}`.t (v String) ENGINE = MergeTree ORDER BY v")
        c.insert(f"{db}.t", [["kept"]], column_names=["v"])
    with weaviate_resource.client() as client:
        col = client.collections.create(
            collection,
            properties=[Property(name="v", data_type=DataType.TEXT)],
            vector_config=Configure.Vectors.self_provided(),
        )
        col.data.insert({"v": "kept"}, vector=[0.1, 0.2, 0.3])

    stack.down()
    assert all(s.pid is None for s in stack.status())
    stack.up()

    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        assert conn.execute(f'SELECT v FROM "{table}"').fetchall() == [("kept",)]
        conn.execute(f'DROP TABLE "{table}"')
    consumer = kafka.consumer(f"keep-{unique}")
    consumer.assign([TopicPartition(topic, 0, 0)])
    msg = None
    for _ in range(30):
        msg = consumer.poll(1)
        if msg is not None:
            break
    consumer.close()
    assert msg is not None and msg.value() == b"kept"
    with clickhouse.client() as c:
        assert c.query(f"SELECT v FROM `{db}`.t").result_rows == [("kept",)]
        c.command(f"DROP DATABASE `{db}`")
    with weaviate_resource.client() as client:
        col = client.collections.get(collection)
        objs = col.query.fetch_objects(limit=5, include_vector=True).objects
        client.collections.delete(collection)
    assert [o.properties["v"] for o in objs] == ["kept"]
