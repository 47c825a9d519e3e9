"""Multi-tenancy on the sample's spec (documents in the tenant their `customer_id` names, pages
in their document's) against real Weaviate, Kafka, Postgres and the model.

The first tests publish contract envelopes to Kafka and materialize the Dagster assets with
multi-tenancy on; the last one migrates a seeded monolith through the event store and Kafka and
runs the consistency checks and the semantic-search check on the tenants. The shop's tenant
chain (country -> account -> order -> order line) is in test_weaviate_shop.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from weaviate.classes.query import Filter, QueryReference

from strangler.assets.weaviate_collections import cached_encoder
from strangler.checks.weaviate import check_weaviate_partition
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import WeaviateResource
from strangler.rollback.execute import ExecuteResult, _delete_weaviate
from strangler.rollback.plan import Plan
from strangler.rollback.scope import Scope
from strangler.rollback.services import SEARCH
from strangler.rollback.snapshot import SnapshotResult, _snapshot_weaviate
from strangler.rollback.stores import weaviate_counts
from strangler.rollback.targets import Targets
from strangler.rollback.undo import _restore_weaviate
from strangler.search.objects import DayFold, object_uuid
from strangler.search.quality import QualityOptions, check_day
from strangler.search.schema import (
    CollectionNames,
    SchemaOptions,
    declare_from_store,
    drop,
    ensure_schema,
)
from strangler.search.sink import SinkOptions, TenantResolver, read_day, run_day
from strangler.search.tenants import is_multi_tenant, tenant_name
from strangler.search.tracking import MIGRATION

from .migration_helpers import ensure_test_topics, seeded_database
from .test_weaviate_sink import (
    DAY,
    SPEC,
    TOPICS,
    Day,
    _event,
    _meta,
    extracted,
    materialize_day,
    uploaded,
    weaviate_env,
)

pytestmark = pytest.mark.integration

CUSTOMERS = {7: ("Acme GmbH", "DE"), 8: ("Nordic Freight AS", "NO")}
DOCS: dict[int, tuple[int, str, str]] = {
    1: (7, "Invoice INV-2024-001 from Acme Supplies", "invoice"),
    2: (7, "Payment reminder: invoice INV-2024-002 overdue", "invoice"),
    3: (7, "Blood test report for patient Rosa Moreau", "medical_report"),
    4: (8, "Bill of lading BL-7781, vessel Nordic Star", "shipping_manifest"),
    5: (8, "Resume of Liam Becker, data engineer", "resume"),
    6: (8, "Northbank statement, account 4471", "bank_statement"),
}
PAGES: dict[int, tuple[int, str]] = {
    11: (1, "Invoice INV-2024-001. Amount due 1,240.00 EUR within 30 days. Bank transfer."),
    12: (2, "Second reminder: your invoice INV-2024-002 is overdue, please pay the balance now."),
    13: (3, "Blood pressure 128/82, cholesterol normal, the patient reports mild headaches."),
    14: (4, "Cargo: 40 containers of machine parts loaded at Rotterdam, port of discharge Oslo."),
    15: (5, "Experience: five years building data pipelines in Python and SQL at a bank."),
    16: (6, "Opening balance 3,200.00, card payment supermarket 54.20, closing balance 2,890.10."),
}
ORPHAN_PAGE = 98
"""A page of document 555, which neither the day nor the event store knows: no tenant."""


def day_events(
    docs: dict[int, tuple[int, str, str]], pages: dict[int, tuple[int, str]]
) -> list[dict[str, Any]]:
    at = datetime.fromisoformat(DAY).replace(hour=9, tzinfo=UTC)
    out = [
        _event(
            "Customer",
            cid,
            1,
            "CustomerRegistered",
            at,
            {"customer_id": cid, "name": name, "plan": "pro", "country": country},
        )
        for cid, (name, country) in CUSTOMERS.items()
    ]
    for doc_id, (cid, title, category) in docs.items():
        out.append(uploaded(doc_id, cid, title, category, at))
    for page_id, (doc_id, text) in {
        **pages,
        ORPHAN_PAGE: (555, "a page of an unknown document"),
    }.items():
        out.append(extracted(page_id, doc_id, text, at))
    return out


@pytest.fixture
def env(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> Iterator[tuple[Day, dict[str, Any], dict[str, Any], CollectionNames]]:
    with weaviate_env(
        postgres_url, kafka, weaviate_resource, embedder, unique, multi_tenancy=True
    ) as built:
        yield built


def _placement(wv: WeaviateResource, names: CollectionNames) -> dict[str, dict[str, Any]]:
    """uuid -> tenant, properties (no load token) and vector, over every tenant."""
    out: dict[str, dict[str, Any]] = {}
    with wv.client() as client:
        customers = client.collections.get(names.of("Customer"))
        assert not is_multi_tenant(customers)
        for o in customers.iterator(include_vector=True):
            out[str(o.uuid)] = _entry(None, o)
        for atype in ("Document", "OcrPage"):
            collection = client.collections.get(names.of(atype))
            assert is_multi_tenant(collection)
            for tenant in collection.tenants.get():
                for o in collection.with_tenant(tenant).iterator(include_vector=True):
                    out[str(o.uuid)] = _entry(tenant, o)
    return out


def _entry(tenant: str | None, o: Any) -> dict[str, Any]:
    props = {k: v for k, v in o.properties.items() if k != "load_token"}
    vector = np.round(np.asarray(o.vector["default"]), 5).tolist()
    return {"tenant": tenant, "props": props, "vector": vector}


def test_each_customer_is_a_tenant_reruns_converge_and_deletes_reach_the_tenant(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
) -> None:
    day, resources, run_config, names = env
    day.publish(day_events(DOCS, PAGES))

    first = materialize_day(resources, run_config)
    assert first.success
    assert _meta(first, "Document")["tenants"] == 2
    assert _meta(first, "OcrPage")["tenants"] == 2
    assert _meta(first, "Customer")["tenants"] == 0
    assert _meta(first, "OcrPage")["failures"] == 1
    checks = first.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks), [c.metadata for c in checks]

    placed = _placement(weaviate_resource, names)
    assert len(placed) == len(CUSTOMERS) + len(DOCS) + len(PAGES)
    for doc_id, (cid, _title, _category) in DOCS.items():
        assert placed[str(object_uuid("Document", doc_id))]["tenant"] == tenant_name(cid)
    for page_id, (doc_id, _text) in PAGES.items():
        assert placed[str(object_uuid("OcrPage", page_id))]["tenant"] == tenant_name(
            DOCS[doc_id][0]
        )
    assert str(object_uuid("OcrPage", ORPHAN_PAGE)) not in placed

    # The page without a resolvable customer is a recorded failure, not a silent drop.
    with psycopg.connect(day.postgres_url) as conn:
        row = conn.execute(
            "SELECT rule, reason, partition_key FROM migration_state.failed_entities"
            " WHERE migration = %s AND source_table = %s AND source_key = %s",
            (MIGRATION, names.of("OcrPage"), str(ORPHAN_PAGE)),
        ).fetchone()
    assert row is not None and row[0] == "tenant_unresolved" and row[2] == DAY
    assert "Document 555 is unknown" in row[1], row[1]

    # Re-running the unchanged day: the same objects in the same tenants, no model time.
    second = materialize_day(resources, run_config, with_checks=False)
    assert second.success
    assert _meta(second, "OcrPage")["encoded"] == 0
    assert _meta(second, "Document")["deleted_stale"] == 0
    assert _placement(weaviate_resource, names) == placed

    # The source drops document 6 and its page: both leave customer 8's tenant, nothing else moves.
    docs = {k: v for k, v in DOCS.items() if k != 6}
    pages = {k: v for k, v in PAGES.items() if k != 16}
    day.publish(day_events(docs, pages))
    third = materialize_day(resources, run_config, with_checks=False)
    assert third.success
    assert _meta(third, "Document")["deleted_stale"] == 1
    assert _meta(third, "OcrPage")["deleted_stale"] == 1
    after = _placement(weaviate_resource, names)
    gone = {str(object_uuid("Document", 6)), str(object_uuid("OcrPage", 16))}
    assert after == {k: v for k, v in placed.items() if k not in gone}
    with weaviate_resource.client() as client:
        tenant8 = client.collections.get(names.of("Document")).with_tenant(tenant_name(8))
        assert tenant8.query.fetch_object_by_id(object_uuid("Document", 6)) is None


def test_references_resolve_within_the_tenant(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
) -> None:
    day, resources, run_config, names = env
    day.publish(day_events(DOCS, PAGES))
    result = materialize_day(resources, run_config, with_checks=False)
    assert result.success
    assert _meta(result, "Document")["dangling_references"] == 0
    assert _meta(result, "OcrPage")["dangling_references"] == 0
    with weaviate_resource.client() as client:
        pages = client.collections.get(names.of("OcrPage")).with_tenant(tenant_name(8))
        page = pages.query.fetch_object_by_id(
            object_uuid("OcrPage", 14),
            return_references=QueryReference(link_on="document", return_properties=["title"]),
        )
        assert page is not None and page.references is not None
        (doc,) = page.references["document"].objects
        assert doc.uuid == object_uuid("Document", 4)
        # Document -> Customer points into the single-tenant collection; Weaviate 1.39 filters on
        # such a reference but cannot resolve it in a tenant query (weaviate/weaviate#7281).
        documents = client.collections.get(names.of("Document"))
        for cid in CUSTOMERS:
            linked = documents.with_tenant(tenant_name(cid)).query.fetch_objects(
                filters=Filter.by_ref("customer").by_id().equal(object_uuid("Customer", cid)),
                limit=100,
            )
            assert sorted(o.properties["document_id"] for o in linked.objects) == sorted(
                d for d, v in DOCS.items() if v[0] == cid
            )
        customer = client.collections.get(names.of("Customer")).query.fetch_object_by_id(
            object_uuid("Customer", 8)
        )
        assert customer is not None and customer.properties["name"] == "Nordic Freight AS"
        # Another customer's tenant does not see the page.
        other = client.collections.get(names.of("OcrPage")).with_tenant(tenant_name(7))
        assert other.query.fetch_object_by_id(object_uuid("OcrPage", 14)) is None
        # A single-tenant setting against the multi-tenant collections is drift, not a crash.
        with psycopg.connect(day.postgres_url) as conn:
            single = declare_from_store(conn, SPEC, names, multi_tenancy=False)
        report = ensure_schema(client, single, SchemaOptions(multi_tenancy=False))
        assert sorted(report.existing) == sorted(names.of(a) for a in TOPICS)
        assert [d for d in report.drift if "multi-tenancy" in d] == [
            f"{names.of(a)}: multi-tenancy on (declared off; STRANGLER_WEAVIATE_MULTI_TENANCY):"
            " objects keep going where the live collection puts them (one tenant per tenant key)"
            for a in ("Document", "OcrPage")
        ]


def test_rollback_snapshot_delete_and_undo_keep_tenants(
    env: tuple[Day, dict[str, Any], dict[str, Any], CollectionNames],
    weaviate_resource: WeaviateResource,
    clickhouse: ClickHouseResource,
    tmp_path: Path,
) -> None:
    day, resources, run_config, names = env
    day.publish(day_events(DOCS, PAGES))
    assert materialize_day(resources, run_config, with_checks=False).success
    before = _placement(weaviate_resource, names)
    targets = Targets(
        postgres_conninfo=day.postgres_url,
        kafka=day.kafka,
        clickhouse=clickhouse.client,
        weaviate=weaviate_resource.client,
        names=names,
        snapshot_dir=tmp_path,
    )
    plan = Plan(Scope((SEARCH,), from_day=DAY, to_day=DAY), days=[DAY])
    request_id = str(uuid.uuid4())
    expected = {
        names.of("Customer"): len(CUSTOMERS),
        names.of("Document"): len(DOCS),
        names.of("OcrPage"): len(PAGES),
    }
    assert weaviate_counts(targets, DAY) == expected

    snapshot = SnapshotResult()
    _snapshot_weaviate(targets, request_id, plan, snapshot)
    assert snapshot.items["weaviate.OcrPage"] == {DAY: len(PAGES)}
    removed = ExecuteResult()
    _delete_weaviate(targets, plan, removed)
    assert removed.removed[SEARCH]["weaviate.Document"] == {DAY: len(DOCS)}
    assert weaviate_counts(targets, DAY) == dict.fromkeys(expected, 0)

    assert _restore_weaviate(targets, request_id) == sum(expected.values())
    assert _placement(weaviate_resource, names) == before
    with weaviate_resource.client() as client:
        for cid in CUSTOMERS:
            linked = (
                client.collections.get(names.of("Document"))
                .with_tenant(tenant_name(cid))
                .query.fetch_objects(
                    filters=Filter.by_ref("customer").by_id().equal(object_uuid("Customer", cid)),
                    limit=100,
                )
            )
            assert len(linked.objects) == sum(1 for v in DOCS.values() if v[0] == cid)
        page = (
            client.collections.get(names.of("OcrPage"))
            .with_tenant(tenant_name(7))
            .query.fetch_object_by_id(
                object_uuid("OcrPage", 12), return_references=QueryReference(link_on="document")
            )
        )
        assert page is not None and page.references is not None
        assert page.references["document"].objects[0].uuid == object_uuid("Document", 2)


SEEDED_START = date.today() - timedelta(days=9)
SEEDED_DAYS = [SEEDED_START, SEEDED_START + timedelta(days=1)]


def test_seeded_days_in_tenants_pass_checks_also_after_a_hard_delete(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
) -> None:
    unique = uuid.uuid4().hex[:10]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}.")
    names = CollectionNames(f"T{unique}")
    options = SinkOptions(
        names=names,
        schema=SchemaOptions(multi_tenancy=True),
        consumer_group=f"search-{unique}",
        max_failure_ratio=0.1,
    )
    encoder = cached_encoder(embedder, 32, True)
    progress = ensure_test_topics(prefixed)
    topics = [prefixed.topic(t) for t in TOPICS.values()]
    try:
        with seeded_database(
            postgres_url, days=len(SEEDED_DAYS), scale=0.1, start_day=SEEDED_START
        ) as url:
            for d in SEEDED_DAYS:
                PartitionMigration(
                    url, d, options=RunOptions(topic_prefix=prefixed.topic_prefix)
                ).run()
                DayRelay(url, prefixed, d.isoformat(), topics, progress).run()
            with psycopg.connect(url) as conn, weaviate_resource.client() as client:
                for d in SEEDED_DAYS:
                    result = run_day(
                        conn=conn,
                        client=client,
                        encoder=encoder,
                        kafka=prefixed,
                        spec=SPEC,
                        day=d.isoformat(),
                        run_id=f"test-{unique}",
                        options=options,
                    )
                    assert result.source == "kafka"
                    assert result.per_type["Document"].tenants > 1
                    # Dirty rows fail upstream; a page of such a document has no customer.
                    unresolved = [f for f in result.failures if f.rule == "tenant_unresolved"]
                    documents = [str(f.payload["document_id"]) for f in unresolved]
                    uploaded = conn.execute(
                        "SELECT count(*) FROM eventstore.events WHERE aggregate_type = 'Document'"
                        " AND event_type = 'DocumentUploaded' AND aggregate_id = ANY(%s)",
                        (documents,),
                    ).fetchone()
                    conn.commit()
                    assert uploaded == (0,), documents
                    assert len(result.failures) < 0.1 * result.objects, result.failures[:5]
                # A page's tenant is its document's: from the event store when the document is
                # not of the day. Resolve the second day's pages' documents with an empty fold.
                decls = declare_from_store(conn, SPEC, names, multi_tenancy=True)
                second = SEEDED_DAYS[1].isoformat()
                with read_day(conn, None, second, decls, list(TOPICS.values())).fold as fold:
                    parents = {o.parents["Document"] for o in fold.stream("OcrPage") if o.parents}
                with DayFold("1999-01-01", decls) as empty:
                    resolved = TenantResolver(conn, empty).tenants("Document", parents)
                truth: dict[str, str] = dict(
                    conn.execute(
                        "SELECT id::text, customer_id::text FROM monolith.documents"
                        " WHERE id = ANY(%s)",
                        ([int(k) for k in resolved],),
                    ).fetchall()
                )
                conn.commit()
                found = {k: t for k, (t, _why) in resolved.items() if t is not None}
                assert found and found == {k: truth[k] for k in found}
                for d in SEEDED_DAYS:
                    outcomes = check_weaviate_partition(
                        SPEC,
                        conn,
                        client,
                        d.isoformat(),
                        names=names,
                        dimension=embedder.dimension,
                    )
                    bad = [o.summary() for o in outcomes if not o.passed]
                    assert bad == [], bad
                    matches = [o for o in outcomes if o.name == "weaviate.matches_event_store"]
                    assert all((o.right_count or 0) > 0 for o in matches)
                    for decl in decls:
                        quality = check_day(
                            client,
                            encoder,
                            decl,
                            d.isoformat(),
                            QualityOptions(sample_size=10, k=5),
                        )
                        assert quality.sampled > 0 and quality.passed, quality.metadata()
                # A document deleted in the monolith: the migration's delete event reaches
                # Kafka, the object leaves its tenant, its pages keep their tenant (resolved
                # from the deleted document's state) and every check still passes.
                day2 = SEEDED_DAYS[1].isoformat()
                gone = conn.execute(
                    "SELECT e.aggregate_id FROM eventstore.events e WHERE e.partition_day = %s"
                    " AND e.event_type = 'DocumentUploaded' AND EXISTS (SELECT 1"
                    "  FROM eventstore.events p WHERE p.aggregate_type = 'OcrPage'"
                    "  AND p.payload ->> 'document_id' = e.aggregate_id)"
                    " ORDER BY e.aggregate_id LIMIT 1",
                    (day2,),
                ).fetchone()
                assert gone is not None
                conn.execute("DELETE FROM monolith.documents WHERE id = %s", (int(gone[0]),))
                conn.commit()
                migrated = PartitionMigration(
                    url, SEEDED_DAYS[1], options=RunOptions(topic_prefix=prefixed.topic_prefix)
                ).run()
                assert migrated.deleted == 1
                DayRelay(url, prefixed, day2, topics, progress).run()
                after = run_day(
                    conn=conn,
                    client=client,
                    encoder=encoder,
                    kafka=prefixed,
                    spec=SPEC,
                    day=day2,
                    run_id=f"test-{unique}-delete",
                    options=options,
                )
                assert after.per_type["Document"].deleted == 1
                assert after.per_type["OcrPage"].deleted == 0
                document = client.collections.get(names.of("Document"))
                assert all(
                    document.with_tenant(t).query.fetch_object_by_id(
                        object_uuid("Document", gone[0])
                    )
                    is None
                    for t in document.tenants.get()
                )
                outcomes = check_weaviate_partition(
                    SPEC, conn, client, day2, names=names, dimension=embedder.dimension
                )
                assert [o.summary() for o in outcomes if not o.passed] == []
    finally:
        with weaviate_resource.client() as client:
            drop(client, names, SPEC)
        prefixed.admin().delete_topics([*topics, progress])
