"""The shop (a monolith unlike the sample) into Weaviate from its spec, end to end: monolith ->
event store -> Kafka -> Weaviate with the real model. Three searchable aggregates: accounts
(tenant key `country_code`, uuid keys), orders (composite key, a reference to the account
through the foreign key, tenant of the account) and order lines (folded into the order's
stream, a composite foreign key, tenant of the order, so of the account: a two-level chain).
Every Weaviate check of every day passes, also after a hard and a soft delete, and a re-run
converges."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
from weaviate.classes.query import Filter

from strangler.assets.kafka_topics import kafka_topic_key
from strangler.assets.weaviate_collections import (
    build_weaviate_assets,
    cached_encoder,
    weaviate_key,
)
from strangler.checks.weaviate import check_weaviate_partition
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, PartitionResult, RunOptions
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.objects import key_text, object_uuid
from strangler.search.quality import QualityOptions, check_day
from strangler.search.schema import (
    SOURCE_ID,
    CollectionNames,
    SchemaOptions,
    declare_from_store,
    drop,
)
from strangler.search.sink import DayResult, SinkOptions, run_day
from strangler.search.tenants import is_multi_tenant, scopes
from strangler.search.tracking import MIGRATION
from strangler.spec import load_spec
from tests.schemas.shop import SPEC as SHOP_SPEC

from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate

DAYS = [d.isoformat() for d in SHOP_DAYS]


@dataclass
class ShopSearch:
    shop: ShopEstate
    kafka: KafkaResource
    progress_topic: str
    names: CollectionNames
    weaviate: WeaviateResource
    embedder: EmbedderResource
    multi_tenancy: bool = False

    def migrate(self, key: str) -> PartitionResult:
        """Monolith -> event store -> Kafka for one partition, as the assets do."""
        result = PartitionMigration(
            self.shop.estate_url,
            key,
            spec=self.shop.spec,
            source_conninfo=self.shop.monolith_url,
            options=RunOptions(topic_prefix=self.kafka.topic_prefix),
            now=SHOP_NOW,
        ).run()
        DayRelay(
            self.shop.estate_url,
            self.kafka,
            key,
            [self.kafka.topic(t) for t in self.shop.spec.topics.values()],
            self.progress_topic,
        ).run()
        return result

    def load(self, day: str) -> DayResult:
        options = SinkOptions(
            names=self.names,
            schema=SchemaOptions(multi_tenancy=self.multi_tenancy),
            max_failure_ratio=0.0,
        )
        with psycopg.connect(self.shop.estate_url) as conn, self.weaviate.client() as client:
            return run_day(
                conn=conn,
                client=client,
                encoder=cached_encoder(self.embedder, 32, True),
                kafka=self.kafka,
                spec=self.shop.spec,
                day=day,
                run_id=f"test-{uuid.uuid4().hex[:8]}",
                options=options,
            )

    def materialize(self, day: str) -> dg.ExecuteInProcessResult:
        """The Dagster assets and checks `build_weaviate_assets` makes of the shop's spec."""
        assets, checks = build_weaviate_assets(self.shop.spec)
        config = {"collection_prefix": self.names.prefix, "max_failure_ratio": 0.0}
        check_config = {"collection_prefix": self.names.prefix, "sample_size": 10, "k": 3}
        with dg.instance_for_test() as instance:
            return dg.materialize(
                [*assets, *checks],
                partition_key=day,
                instance=instance,
                resources={
                    "postgres": PostgresResource(url=self.shop.estate_url),
                    "kafka": self.kafka,
                    "weaviate": self.weaviate,
                    "embedder": self.embedder,
                },
                run_config={
                    "ops": {
                        "weaviate_collections": {"config": config},
                        **{c.node_def.name: {"config": check_config} for c in checks},
                    }
                },
            )

    def checks_pass(self, day: str, *, probes_judged: bool = True) -> None:
        """Every Weaviate check (ids, references, vectors, freshness) and the semantic check
        of every collection pass on the day (`probes_judged`: the day has objects the probes
        expect, so they are judged, not skipped)."""
        with psycopg.connect(self.shop.estate_url) as conn, self.weaviate.client() as client:
            outcomes = check_weaviate_partition(
                self.shop.spec,
                conn,
                client,
                day,
                names=self.names,
                dimension=self.embedder.dimension,
                max_freshness_lag_s=10 * 365 * 86_400,
            )
            assert len(outcomes) == 4 * len(self.shop.spec.searchable)
            assert all(o.passed for o in outcomes), [o.summary() for o in outcomes if not o.passed]
            encoder = cached_encoder(self.embedder, 32, True)
            for decl in declare_from_store(conn, self.shop.spec, self.names):
                quality = check_day(client, encoder, decl, day, QualityOptions(sample_size=10, k=3))
                assert quality.passed, quality.metadata()
                assert quality.sampled > 0
                assert len(quality.probes) == len(decl.queries)
                # Each day has cancelled orders: the probe is judged, not skipped.
                if probes_judged:
                    assert all(p.considered > 0 for p in quality.probes), quality.metadata()

    def objects(self, aggregate: str) -> dict[uuid.UUID, tuple[str | None, dict[str, Any]]]:
        """uuid -> (tenant, properties) of every object of the aggregate's collection."""
        out: dict[uuid.UUID, tuple[str | None, dict[str, Any]]] = {}
        with self.weaviate.client() as client:
            for tenant, handle in scopes(client, self.names.of(aggregate)):
                for o in handle.iterator(include_vector=True):
                    vector = np.round(np.asarray(o.vector["default"]), 5).tolist()
                    props = {k: v for k, v in o.properties.items() if k != "load_token"}
                    out[o.uuid] = (tenant, {**props, "vector": vector})
        return out


@pytest.fixture
def shop_search(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
    request: pytest.FixtureRequest,
) -> Iterator[ShopSearch]:
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"w{unique}.")
    with shop_estate(postgres_url, dirty=False) as shop:
        specs = domain_topic_specs(
            prefixed.topic_prefix,
            partitions=1,
            replication_factor=1,
            min_insync_replicas=1,
            retention_days=1,
            compaction=False,
            message_max_bytes=1_000_000,
            names=shop.spec.topics.values(),
        )
        progress = progress_topic_spec(prefixed.topic_prefix, 1)
        ensure_topics(prefixed.admin(), [*specs, progress])
        names = CollectionNames(f"S{unique}")
        try:
            yield ShopSearch(
                shop,
                prefixed,
                progress.name,
                names,
                weaviate_resource,
                embedder,
                multi_tenancy=getattr(request, "param", False),
            )
        finally:
            with weaviate_resource.client() as client:
                drop(client, names, shop.spec)
            prefixed.admin().delete_topics([s.name for s in [*specs, progress]])


def _row_counts(shop: ShopEstate, day: str) -> dict[str, int]:
    """The monolith's live rows of the day (soft-deleted accounts are no objects)."""
    with psycopg.connect(shop.owner_url) as conn:
        accounts, orders, lines = conn.execute(
            "SELECT (SELECT count(*) FROM shop.accounts WHERE signed_up_at::date = %s"
            "  AND deleted_at IS NULL),"
            " (SELECT count(*) FROM shop.orders WHERE placed_at::date = %s),"
            " (SELECT count(*) FROM shop.order_lines l JOIN shop.orders o"
            "  USING (account_id, order_no) WHERE o.placed_at::date = %s)",
            (day, day, day),
        ).fetchone() or (0, 0, 0)
    return {"Account": accounts, "Order": orders, "OrderLine": lines}


@pytest.mark.parametrize("shop_search", [False, True], ids=["single", "tenants"], indirect=True)
def test_every_shop_day_loads_checks_and_follows_deletes(shop_search: ShopSearch) -> None:
    s = shop_search
    for key in s.shop.keys:
        s.migrate(key)
    if not s.multi_tenancy:
        # The first day through Dagster: one materialization per collection, the semantic
        # checks (recall and the spec's probe) pass.
        materialized = s.materialize(DAYS[0])
        assert materialized.success
        meta = {
            m.asset_key.path[-1]: m.metadata
            for m in materialized.asset_materializations_for_node("weaviate_collections")
        }
        assert {a: m["objects"].value for a, m in meta.items()} == _row_counts(s.shop, DAYS[0])
        evaluations = materialized.get_asset_check_evaluations()
        assert len(evaluations) == 3 and all(e.passed for e in evaluations)
    for day in DAYS:
        result = s.load(day)
        assert result.failed == 0, [f.reason for f in result.failures]
        assert {a: r.objects for a, r in result.per_type.items()} == _row_counts(s.shop, day)
        assert result.source == "kafka"
        s.checks_pass(day)

    # References: every order points at its account's object, every line at its order's.
    orders = s.objects("Order")
    lines = s.objects("OrderLine")
    accounts = s.objects("Account")
    with s.weaviate.client() as client:
        for u, (tenant, props) in list(orders.items())[:5]:
            handle = client.collections.get(s.names.of("Order"))
            handle = handle.with_tenant(tenant) if tenant else handle
            linked = handle.query.fetch_objects(
                filters=Filter.by_id().equal(u)
                & Filter.by_ref("account")
                .by_id()
                .equal(object_uuid("Account", str(props["account_id"]))),
            ).objects
            assert len(linked) == 1
    for _u, (tenant, props) in lines.items():
        parent = object_uuid("Order", key_text([props["account_id"], props["order_no"]]))
        assert parent in orders or _soft_deleted_parent(s, props)
        if s.multi_tenancy and parent in orders:
            assert tenant == orders[parent][0]

    if s.multi_tenancy:
        # Tenant resolution: an account's tenant is its country, an order's its account's, a
        # line's its order's (two levels up).
        with s.weaviate.client() as client:
            assert all(
                is_multi_tenant(client.collections.get(s.names.of(a)))
                for a in ("Account", "Order", "OrderLine")
            )
        for tenant, props in accounts.values():
            assert tenant == props["country_code"]
        for tenant, props in orders.values():
            account = object_uuid("Account", str(props["account_id"]))
            if account in accounts:
                assert tenant == accounts[account][0]
        assert {t for t, _ in accounts.values()} <= {"NL", "DE", "FR"}

    # Re-running a day converges: the same objects, the same vectors, no model time.
    day = DAYS[1]
    before = {a: s.objects(a) for a in ("Account", "Order", "OrderLine")}
    again = s.load(day)
    assert all(r.encode.encoded == 0 and r.deleted == 0 for r in again.per_type.values())
    assert {a: s.objects(a) for a in before} == before

    # A hard delete (an order and, by cascade, its lines) and a soft delete (an account):
    # the objects go, everything else stays, and every check still passes.
    with psycopg.connect(s.shop.owner_url) as conn:
        order = conn.execute(
            "SELECT account_id, order_no FROM shop.orders WHERE placed_at::date = %s"
            " AND EXISTS (SELECT 1 FROM shop.order_lines l WHERE l.account_id = orders.account_id"
            "  AND l.order_no = orders.order_no) ORDER BY 1, 2 LIMIT 1",
            (day,),
        ).fetchone()
        soft = conn.execute(
            "SELECT id FROM shop.accounts WHERE signed_up_at::date = %s AND deleted_at IS NULL"
            " AND id <> %s ORDER BY id LIMIT 1",
            (day, order[0] if order else None),
        ).fetchone()
        assert order is not None and soft is not None
        line_count = conn.execute(
            "SELECT count(*) FROM shop.order_lines WHERE account_id = %s AND order_no = %s",
            order,
        ).fetchone()
        conn.execute("DELETE FROM shop.orders WHERE account_id = %s AND order_no = %s", order)
        conn.execute(
            "UPDATE shop.accounts SET deleted_at = %s, modified_at = %s WHERE id = %s",
            (SHOP_NOW, SHOP_NOW, soft[0]),
        )
        conn.commit()
    s.migrate(day)
    after = s.load(day)
    assert after.failed == 0
    assert after.per_type["Order"].deleted == 1
    assert after.per_type["OrderLine"].deleted == (line_count[0] if line_count else 0)
    assert after.per_type["Account"].deleted == 1
    order_uuid = object_uuid("Order", key_text(list(order)))
    assert order_uuid not in s.objects("Order")
    assert object_uuid("Account", str(soft[0])) not in s.objects("Account")
    remaining = s.objects("OrderLine")
    assert not any(
        (str(p["account_id"]), p["order_no"]) == (str(order[0]), order[1])
        for _t, p in remaining.values()
    )
    assert {a: r.objects for a, r in after.per_type.items()} == _row_counts(s.shop, day)
    s.checks_pass(day)
    with psycopg.connect(s.shop.estate_url) as conn:
        open_failures = conn.execute(
            "SELECT count(*) FROM migration_state.failed_entities WHERE migration = %s"
            " AND resolved_at IS NULL",
            (MIGRATION,),
        ).fetchone()
    assert open_failures == (0,)


def _soft_deleted_parent(s: ShopSearch, props: dict[str, Any]) -> bool:
    with psycopg.connect(s.shop.owner_url) as conn:
        row = conn.execute(
            "SELECT deleted_at IS NOT NULL FROM shop.accounts WHERE id = %s",
            (str(props["account_id"]),),
        ).fetchone()
    return bool(row and row[0])


def test_a_row_whose_tenant_cannot_be_resolved_is_a_recorded_failure(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> None:
    """The dirty shop: orders of accounts that failed the event store (bad email, control
    characters, ...) have no account object and no account state, so no tenant; with
    multi-tenancy on they are `tenant_unresolved` failures, never silently dropped, and the
    matches check accounts for them as parked."""
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"u{unique}.")
    names = CollectionNames(f"U{unique}")
    with shop_estate(postgres_url, dirty=True) as shop:
        s = ShopSearch(shop, prefixed, "", names, weaviate_resource, embedder, multi_tenancy=True)
        for key in shop.keys:
            PartitionMigration(
                shop.estate_url,
                key,
                spec=shop.spec,
                source_conninfo=shop.monolith_url,
                now=SHOP_NOW,
            ).run()
        day = DAYS[0]
        try:
            options = SinkOptions(
                names=names, schema=SchemaOptions(multi_tenancy=True), max_failure_ratio=1.0
            )
            with psycopg.connect(shop.estate_url) as conn, weaviate_resource.client() as client:
                result = run_day(
                    conn=conn,
                    client=client,
                    encoder=cached_encoder(embedder, 32, True),
                    kafka=None,
                    spec=shop.spec,
                    day=day,
                    run_id="tenants",
                    options=options,
                )
            assert result.source == "event_store"
            unresolved = [f for f in result.failures if f.rule == "tenant_unresolved"]
            assert unresolved, "the dirty shop has orders of failed accounts"
            assert {f.collection for f in unresolved} <= {names.of("Order"), names.of("OrderLine")}
            assert all("no tenant to put it in" in f.reason for f in unresolved)
            with psycopg.connect(shop.estate_url) as conn:
                parked = conn.execute(
                    "SELECT source_table, source_key FROM migration_state.failed_entities"
                    " WHERE migration = %s AND rule = 'tenant_unresolved' AND resolved_at IS NULL",
                    (MIGRATION,),
                ).fetchall()
            assert {(f.collection, f.source_key) for f in unresolved} == set(parked)
            objects = s.objects("Order")
            assert all(
                object_uuid("Order", k) not in objects for c, k in parked if c == names.of("Order")
            )
            assert all(str(p[SOURCE_ID]) for _t, p in objects.values())
            # The day's cancelled orders may all be among the unplaced: the probe may go unjudged.
            s.checks_pass(day, probes_judged=False)
        finally:
            with weaviate_resource.client() as client:
                drop(client, names, shop.spec)


def test_the_shop_gets_a_collection_asset_per_searchable_aggregate() -> None:
    spec = load_spec(SHOP_SPEC)
    assets, checks = build_weaviate_assets(spec)
    (multi,) = assets
    assert set(multi.keys) == {weaviate_key(a) for a in ("Account", "Order", "OrderLine")}
    deps = {k: set(v) for k, v in multi.asset_deps.items()}
    assert deps[weaviate_key("Account")] == {kafka_topic_key("shop.accounts")}
    assert deps[weaviate_key("Order")] == {kafka_topic_key("shop.orders"), weaviate_key("Account")}
    assert deps[weaviate_key("OrderLine")] == {
        kafka_topic_key("shop.orders"),
        weaviate_key("Order"),
    }
    assert {c.check_key.asset_key for c in checks} == set(multi.keys)
    plain = spec.model_copy(
        update={"aggregates": [a.model_copy(update={"search": None}) for a in spec.aggregates]}
    )
    assert build_weaviate_assets(plain) == ([], [])
