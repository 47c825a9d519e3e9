"""The search sink on the sample's spec against real Weaviate, Kafka, Postgres and the model.

Each test publishes its own day of contract envelopes (transactional producer, unique topics)
and records the offset ranges as the relay would, then materializes the Weaviate assets built
from the sample spec (`build_weaviate_assets`). The shop's spec runs end to end in
test_weaviate_shop.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from strangler.assets.weaviate_collections import build_weaviate_assets, weaviate_key
from strangler.db.migrations import migrate
from strangler.migration.drift import baseline_table, read_live, record_columns
from strangler.migration.kafka_records import envelope, headers
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.objects import object_uuid
from strangler.search.schema import CollectionNames, drop
from strangler.search.tracking import MIGRATION
from strangler.spec import EstateSpec, current_spec

DAY = (date.today() - timedelta(days=3)).isoformat()
SPEC = current_spec()
weaviate_assets, weaviate_checks = build_weaviate_assets(SPEC)
TOPICS = {a.name: SPEC.topic_of(a.name) for a in SPEC.searchable}

DOCS: dict[int, tuple[str, str]] = {
    1: ("Invoice INV-2024-001 from Acme Supplies", "invoice"),
    2: ("Payment reminder: invoice INV-2024-002 overdue", "invoice"),
    3: ("Blood test report for patient Rosa Moreau", "medical_report"),
    4: ("Bill of lading BL-7781, vessel Nordic Star", "shipping_manifest"),
    5: ("Resume of Liam Becker, data engineer", "resume"),
    6: ("Northbank statement, account 4471", "bank_statement"),
}
PAGES: dict[int, tuple[int, str]] = {
    11: (1, "Invoice INV-2024-001. Amount due 1,240.00 EUR within 30 days. Bank transfer."),
    12: (2, "Second reminder: your invoice INV-2024-002 is overdue, please pay the balance now."),
    13: (3, "Blood pressure 128/82, cholesterol normal, the patient reports mild headaches."),
    14: (4, "Cargo: 40 containers of machine parts loaded at Rotterdam, port of discharge Oslo."),
    15: (5, "Experience: five years building data pipelines in Python and SQL at a bank."),
    16: (6, "Opening balance 3,200.00, card payment supermarket 54.20, closing balance 2,890.10."),
}


def uploaded(
    doc_id: int, customer_id: int, title: str, category: str, at: datetime
) -> dict[str, Any]:
    payload = {
        "document_id": doc_id,
        "customer_id": customer_id,
        "title": title,
        "category": category,
        "page_count": 1,
    }
    return _event("Document", doc_id, 1, "DocumentUploaded", at, payload)


def extracted(page_id: int, doc_id: int, text: str, at: datetime) -> dict[str, Any]:
    payload = {
        "page_id": page_id,
        "document_id": doc_id,
        "page_number": 1,
        "text": text,
        "confidence": 0.97,
    }
    return _event("OcrPage", page_id, 1, "OcrPageExtracted", at, payload)


@dataclass
class Day:
    """A test day: contract envelopes published to unique topics, ranges recorded."""

    kafka: KafkaResource
    postgres_url: str
    unique: str

    def events(
        self, docs: dict[int, tuple[str, str]], pages: dict[int, tuple[int, str]], bad_page: bool
    ) -> list[dict[str, Any]]:
        at = datetime.fromisoformat(DAY).replace(hour=9, tzinfo=UTC)
        out: list[dict[str, Any]] = [
            _event(
                "Customer",
                7,
                1,
                "CustomerRegistered",
                at,
                {"customer_id": 7, "name": "Acme GmbH", "plan": "pro", "country": "DE"},
            ),
        ]
        for doc_id, (title, category) in docs.items():
            out.append(uploaded(doc_id, 7, title, category, at))
            out.append(
                _event(
                    "Document",
                    doc_id,
                    2,
                    "DocumentStatusChanged",
                    at,
                    {"document_id": doc_id, "status": "processed"},
                )
            )
        for page_id, (doc_id, text) in pages.items():
            out.append(extracted(page_id, doc_id, text, at))
        if bad_page:
            out.append(
                _event(
                    "OcrPage",
                    99,
                    1,
                    "OcrPageExtracted",
                    at,
                    {
                        "page_id": 99,
                        "document_id": 1,
                        "page_number": "twelve",
                        "text": "a page whose number is not a number",
                        "confidence": 0.5,
                    },
                )
            )
        return out

    def publish(self, events: list[dict[str, Any]]) -> None:
        admin = self.kafka.admin()
        topics = {self.kafka.topic(t) for t in TOPICS.values()}
        existing = set(admin.list_topics(timeout=10).topics)
        new = [NewTopic(t, 1, 1) for t in topics - existing]
        if new:
            for future in admin.create_topics(new).values():
                future.result(15)
        producer = self.kafka.producer(**{"transactional.id": f"test-{self.unique}"})
        producer.init_transactions(30)
        consumer = self.kafka.consumer(f"probe-{self.unique}")
        before = {
            t: consumer.get_watermark_offsets(TopicPartition(t, 0), timeout=10)[1] for t in topics
        }
        producer.begin_transaction()
        for e in events:
            topic = self.kafka.topic(TOPICS[e["aggregate_type"]])
            producer.produce(
                topic,
                key=e["aggregate_id"].encode(),
                value=envelope(**e),
                headers=list[tuple[str, str | bytes | None]](
                    headers(e["event_id"], e["event_type"], 1, e["occurred_at"], DAY)
                ),
            )
        producer.commit_transaction(30)
        counts = {t: 0 for t in topics}
        for e in events:
            counts[self.kafka.topic(TOPICS[e["aggregate_type"]])] += 1
        # Commit markers land asynchronously: wait until the last stable offset passes them.
        after: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(after) < len(topics) and time.monotonic() < deadline:
            for t in topics:
                high = consumer.get_watermark_offsets(TopicPartition(t, 0), timeout=10)[1]
                if high >= before[t] + counts[t] + (1 if counts[t] else 0):
                    after[t] = high
            time.sleep(0.1)
        consumer.close()
        assert len(after) == len(topics), "transaction markers did not arrive"
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            for t in topics:
                conn.execute(
                    "INSERT INTO migration_state.kafka_offset_ranges"
                    " (topic, partition_key, kafka_partition, start_offset, end_offset, asset_key)"
                    " VALUES (%s, %s, 0, %s, %s, %s)"
                    " ON CONFLICT (topic, partition_key, kafka_partition) DO UPDATE SET"
                    " start_offset = EXCLUDED.start_offset, end_offset = EXCLUDED.end_offset",
                    (t, DAY, before[t], after[t], f"kafka/{t}"),
                )


def _event(
    atype: str, aid: int, version: int, etype: str, at: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{atype}/{aid}/{version}/{payload}"),
        "event_type": etype,
        "schema_version": 1,
        "aggregate_type": atype,
        "aggregate_id": str(aid),
        "aggregate_version": version,
        "occurred_at": at,
        "partition_day": DAY,
        "payload": payload,
        "metadata": {},
        "position": aid * 10 + version,
    }


@contextmanager
def weaviate_env(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
    **sink_config: Any,
) -> Iterator[tuple[Day, dict[str, Any], dict[str, Any], CollectionNames]]:
    """Collections and topics of their own, the resources and the run config of the assets."""
    migrate(postgres_url)
    record_baseline(postgres_url, SPEC)
    test_kafka = KafkaResource(
        bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}."
    )
    names = CollectionNames(f"T{unique}")
    resources = {
        "postgres": PostgresResource(url=postgres_url),
        "kafka": test_kafka,
        "weaviate": weaviate_resource,
        "embedder": embedder,
    }
    cfg = {"collection_prefix": names.prefix, "max_failure_ratio": 0.5, **sink_config}
    check_cfg = {"collection_prefix": names.prefix, "sample_size": 10, "k": 3}
    run_config = {
        "ops": {
            "weaviate_collections": {"config": cfg},
            **{c.node_def.name: {"config": check_cfg} for c in weaviate_checks},
        }
    }
    try:
        yield Day(test_kafka, postgres_url, unique), resources, run_config, names
    finally:
        with weaviate_resource.client() as client:
            drop(client, names, SPEC)
        test_kafka.admin().delete_topics([test_kafka.topic(t) for t in TOPICS.values()])


@pytest.fixture
def env(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> Iterator[tuple[Day, dict[str, Any], dict[str, Any], CollectionNames]]:
    with weaviate_env(postgres_url, kafka, weaviate_resource, embedder, unique) as built:
        yield built


def record_baseline(url: str, spec: EstateSpec) -> None:
    """The column types the first event-store migration would record (the sample's monolith
    schema lives in the estate's database); the collections are typed from them."""
    with psycopg.connect(url) as conn:
        for aggregate in spec.searchable:
            record_columns(conn, baseline_table(aggregate), read_live(conn, aggregate).types)
        conn.commit()


def materialize_day(
    resources: dict[str, Any], run_config: dict[str, Any], with_checks: bool = True
) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [*weaviate_assets, *(weaviate_checks if with_checks else [])],
            partition_key=DAY,
            instance=instance,
            resources=resources,
            run_config=run_config
            if with_checks
            else {"ops": {"weaviate_collections": run_config["ops"]["weaviate_collections"]}},
            raise_on_error=False,
        )


def _meta(result: dg.ExecuteInProcessResult, atype: str) -> dict[str, Any]:
    for m in result.asset_materializations_for_node("weaviate_collections"):
        if m.asset_key.path[-1] == atype:
            return {k: v.value for k, v in m.metadata.items()}
    raise AssertionError(f"no materialization of {atype}")


def _snapshot(wv: WeaviateResource, names: CollectionNames) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with wv.client() as client:
        for atype in ("Customer", "Document", "OcrPage"):
            for o in client.collections.get(names.of(atype)).iterator(include_vector=True):
                props = {k: v for k, v in o.properties.items() if k != "load_token"}
                vec = o.vector["default"]
                out[str(o.uuid)] = {"props": props, "vector": np.round(np.asarray(vec), 5).tolist()}
    return out


def test_rerun_converges_and_deletes_and_records_rejections(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
) -> None:
    day, resources, run_config, names = env
    day.publish(day.events(DOCS, PAGES, bad_page=True))

    first = materialize_day(resources, run_config)
    assert first.success
    meta = _meta(first, "OcrPage")
    assert meta["source"] == "kafka"
    assert meta["objects"] == len(PAGES) + 1
    assert meta["upserted"] == len(PAGES)
    assert meta["failures"] == 1
    assert meta["dimension"] == 384
    assert _meta(first, "Document")["references"] == len(DOCS)
    checks = first.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks), [c.metadata for c in checks]
    snap1 = _snapshot(weaviate_resource, names)
    assert len(snap1) == 1 + len(DOCS) + len(PAGES)

    # The rejected page is in failed_entities with Weaviate's own message.
    with psycopg.connect(day.postgres_url) as conn:
        row = conn.execute(
            "SELECT rule, reason, partition_key FROM migration_state.failed_entities"
            " WHERE migration = %s AND source_table = %s AND source_key = '99'",
            (MIGRATION, names.of("OcrPage")),
        ).fetchone()
        assert row is not None and row[0] == "weaviate_rejected" and row[2] == DAY
        assert "page_number" in row[1], row[1]
        processed = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')"
            " FROM microservices.service_processing WHERE service = 'search-service' AND event_id = ANY(%s)",
            ([e["event_id"] for e in day.events(DOCS, PAGES, bad_page=True)],),
        ).fetchone()
        assert processed == (1 + 2 * len(DOCS) + len(PAGES), 1)
        lag = conn.execute(
            "SELECT sum(lag) FROM microservices.sync_status WHERE topic LIKE %s",
            (f"t{day.unique}.%",),
        ).fetchone()
        assert lag is not None and lag[0] == 0

    # Re-running the unchanged day: same objects, same content, no model time.
    second = materialize_day(resources, run_config, with_checks=False)
    assert second.success
    assert _meta(second, "OcrPage")["encoded"] == 0
    assert _meta(second, "OcrPage")["deleted_stale"] == 0
    assert _snapshot(weaviate_resource, names) == snap1

    # The day's events no longer hold document 6 and its page, and document 5 gets a delete
    # event: all three disappear on the next run, and every check still passes (page 15's
    # reference to the deleted document is explained by its delete event).
    docs = {k: v for k, v in DOCS.items() if k != 6}
    pages = {k: v for k, v in PAGES.items() if k != 16}
    at = datetime.fromisoformat(DAY).replace(hour=10, tzinfo=UTC)
    deleted = _event("Document", 5, 3, "DocumentDeleted", at, {"document_id": 5})
    day.publish([*day.events(docs, pages, bad_page=False), deleted])
    third = materialize_day(resources, run_config)
    assert third.success
    assert _meta(third, "Document")["deleted_stale"] == 2
    assert _meta(third, "Document")["objects"] == len(docs) - 1
    assert _meta(third, "OcrPage")["deleted_stale"] == 1
    checks = third.get_asset_check_evaluations()
    assert all(c.passed for c in checks), [c.metadata for c in checks]
    snap3 = _snapshot(weaviate_resource, names)
    assert str(object_uuid("Document", 6)) not in snap3
    assert str(object_uuid("Document", 5)) not in snap3
    assert str(object_uuid("OcrPage", 16)) not in snap3
    assert len(snap3) == 1 + len(docs) - 1 + len(pages)
    with psycopg.connect(day.postgres_url) as conn:
        resolved = conn.execute(
            "SELECT resolved_at IS NOT NULL FROM migration_state.failed_entities"
            " WHERE migration = %s AND source_table = %s AND source_key = '99'",
            (MIGRATION, names.of("OcrPage")),
        ).fetchone()
    # Page 99 is gone from the source now: its failure stays open until it loads (it never will).
    assert resolved == (False,)


def test_references_resolve_both_ways(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
) -> None:
    from weaviate.classes.query import Filter, QueryReference

    day, resources, run_config, names = env
    day.publish(day.events(DOCS, PAGES, bad_page=False))
    assert materialize_day(resources, run_config, with_checks=False).success
    with weaviate_resource.client() as client:
        pages = client.collections.get(names.of("OcrPage"))
        page = pages.query.fetch_object_by_id(
            object_uuid("OcrPage", 12),
            return_references=QueryReference(
                link_on="document",
                return_properties=["title"],
                return_references=QueryReference(link_on="customer", return_properties=["name"]),
            ),
        )
        assert page is not None and page.references is not None
        doc = page.references["document"].objects[0]
        assert doc.uuid == object_uuid("Document", 2)
        assert doc.references["customer"].objects[0].properties["name"] == "Acme GmbH"
        # Reverse: a document's pages, a customer's documents.
        back = pages.query.fetch_objects(
            filters=Filter.by_ref("document").by_id().equal(object_uuid("Document", 2))
        ).objects
        assert [o.uuid for o in back] == [object_uuid("OcrPage", 12)]
        docs = (
            client.collections.get(names.of("Document"))
            .query.fetch_objects(
                filters=Filter.by_ref("customer").by_property("customer_id").equal(7), limit=100
            )
            .objects
        )
        assert len(docs) == len(DOCS)


def test_search_check_fails_on_scrambled_vectors(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
) -> None:
    day, resources, run_config, names = env
    day.publish(day.events(DOCS, PAGES, bad_page=False))
    clean = materialize_day(resources, run_config)
    assert all(c.passed for c in clean.get_asset_check_evaluations())
    rng = np.random.default_rng(0)
    with weaviate_resource.client() as client:
        for atype, ids in (("Document", DOCS), ("OcrPage", PAGES)):
            collection = client.collections.get(names.of(atype))
            for aid in ids:
                v = rng.normal(size=384)
                collection.data.update(
                    object_uuid(atype, aid), vector=(v / np.linalg.norm(v)).tolist()
                )
    with dg.instance_for_test() as instance:
        checked = dg.materialize(
            [*weaviate_assets, *weaviate_checks],
            selection=dg.AssetSelection.checks(*weaviate_checks),
            tags={"dagster/partition": DAY},
            instance=instance,
            resources=resources,
            run_config={
                "ops": {k: v for k, v in run_config["ops"].items() if k != "weaviate_collections"}
            },
            raise_on_error=False,
        )
    results = {e.asset_key: e for e in checked.get_asset_check_evaluations()}
    assert not results[weaviate_key("Document")].passed
    assert not results[weaviate_key("OcrPage")].passed
    assert results[weaviate_key("Customer")].passed
