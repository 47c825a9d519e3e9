"""The test shop (a monolith unlike the sample) through the check catalogue and the rollback.

Built once for the module, from the shop's spec alone: its own monolith database (read-only
role), an estate database, topics, ClickHouse database and collections of its own; reference
data and three days migrated, relayed and loaded into ClickHouse and Weaviate (real model).
Then every catalogue check of every partition passes, still after a hard and a soft delete,
and a rollback of one day followed by its re-materialization gives back the same counts and
content hashes in every store (event store, outbox, Kafka, ClickHouse, Weaviate).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import SinkOptions as AnalyticsOptions
from strangler.analytics.sink import load_partition
from strangler.assets.weaviate_collections import cached_encoder
from strangler.checks.catalogue import CheckTargets, declared_checks
from strangler.checks.outcome import CheckOutcome
from strangler.checks.runner import run_partition
from strangler.checks.systems import System
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.source import REFERENCE
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import WeaviateResource
from strangler.rollback.check_evidence import check_targets
from strangler.rollback.report import create_request
from strangler.rollback.run import run_rollback
from strangler.rollback.scope import scope_of
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.stores import day_fingerprint
from strangler.rollback.targets import Targets
from strangler.search.schema import CollectionNames, drop
from strangler.search.sink import SinkOptions as SearchOptions
from strangler.search.sink import run_day

from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate

pytestmark = pytest.mark.integration

SYSTEMS: list[System] = ["event-store", "kafka", "clickhouse", "weaviate"]
SERVICES = (EVENT_STORE, RELAY, ANALYTICS, SEARCH)
DELETED_ON = SHOP_DAYS[0].isoformat()
ROLLED_BACK = SHOP_DAYS[1].isoformat()


@dataclass
class ShopBuilt:
    shop: ShopEstate
    targets: Targets
    embedder: EmbedderResource

    @property
    def checks(self) -> CheckTargets:
        return check_targets(self.targets)

    def materialize(self, key: str) -> None:
        """Migrate and relay one partition, as the assets do."""
        t = self.targets
        PartitionMigration(
            self.shop.estate_url,
            key,
            spec=self.shop.spec,
            source_conninfo=self.shop.monolith_url,
            options=RunOptions(topic_prefix=t.kafka.topic_prefix),
            now=SHOP_NOW,
        ).run()
        DayRelay(self.shop.estate_url, t.kafka, key, t.topics, t.progress_topic).run()
        load_partition(
            key,
            clickhouse=t.clickhouse,
            postgres_conninfo=self.shop.estate_url,
            consumer_factory=t.kafka.consumer,
            topic_prefix=t.kafka.topic_prefix,
            spec=self.shop.spec,
            options=AnalyticsOptions(
                ddl=t.ddl, consumer_group=t.consumer_groups[ANALYTICS], idle_timeout_s=20
            ),
        )
        if key == REFERENCE and not any(a.is_reference for a in self.shop.spec.searchable):
            return  # no collection of reference data
        with psycopg.connect(self.shop.estate_url) as conn, t.weaviate() as client:
            run_day(
                conn=conn,
                client=client,
                encoder=cached_encoder(self.embedder, 32, True),
                kafka=t.kafka,
                spec=self.shop.spec,
                day=key,
                run_id=f"test-{uuid.uuid4().hex[:8]}",
                options=SearchOptions(names=t.names, consumer_group=t.consumer_groups[SEARCH]),
            )

    def run(self, key: str) -> list[CheckOutcome]:
        return run_partition(self.checks, key, SYSTEMS)

    def fp(self, key: str) -> dict[str, Any]:
        return day_fingerprint(self.targets, key)


@pytest.fixture(scope="module")
def built(
    postgres_url: str,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ShopBuilt]:
    unique = uuid.uuid4().hex[:10]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"s{unique}.")
    with shop_estate(postgres_url) as shop:
        specs = domain_topic_specs(
            prefixed.topic_prefix,
            partitions=3,
            replication_factor=1,
            min_insync_replicas=1,
            retention_days=1,
            compaction=False,
            message_max_bytes=1_000_000,
            names=shop.spec.topics.values(),
        )
        progress = progress_topic_spec(prefixed.topic_prefix, 1)
        ensure_topics(prefixed.admin(), [*specs, progress])
        targets = Targets(
            postgres_conninfo=shop.estate_url,
            kafka=prefixed,
            # Other suites share the embedded ClickHouse: wait for our turn longer than usual.
            clickhouse=ClickHouseResource(dsn=clickhouse.dsn, lock_timeout_s=1800).client,
            weaviate=weaviate_resource.client,
            ddl=DdlOptions(database=f"s_{unique}"),
            names=CollectionNames(f"S{unique}"),
            consumer_groups={ANALYTICS: f"analytics-{unique}", SEARCH: f"search-{unique}"},
            snapshot_dir=Path(tmp_path_factory.mktemp("shop-rollbacks")),
            spec=shop.spec,
            monolith_conninfo=shop.monolith_url,
        )
        b = ShopBuilt(shop, targets, embedder)
        try:
            for key in shop.keys:
                b.materialize(key)
            yield b
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(targets.ddl))
            with weaviate_resource.client() as client:
                drop(client, targets.names, shop.spec)
            prefixed.admin().delete_topics([s.name for s in [*specs, progress]])


def _failing(outcomes: list[CheckOutcome]) -> list[str]:
    return [o.summary() for o in outcomes if not o.passed]


def _reported(outcomes: list[CheckOutcome]) -> set[tuple[tuple[str, ...], str]]:
    return {(o.asset, o.name) for o in outcomes}


def test_every_check_of_every_shop_partition_passes(built: ShopBuilt) -> None:
    spec = built.shop.spec
    by_key = {key: built.run(key) for key in built.shop.keys}
    for key, outcomes in by_key.items():
        assert _failing(outcomes) == [], key
        declared = declared_checks(spec, SYSTEMS, reference=key == REFERENCE)
        assert _reported(outcomes) == {(d.asset, d.check.outcome_name) for d in declared}, key
    day = by_key[DELETED_ON]
    kafka_assets = {o.asset for o in day if o.system == "kafka"}
    assert kafka_assets == {("kafka", "shop.accounts"), ("kafka", "shop.orders")}
    collections = {o.asset for o in day if o.system == "weaviate"}
    assert collections == {("weaviate", a.name) for a in spec.searchable}
    matches = [o for o in day if o.name.endswith(".matches_event_store")]
    assert all(o.left_count and o.left_count == o.right_count for o in matches), [
        o.summary() for o in matches
    ]


def test_checks_pass_after_a_hard_and_a_soft_delete(built: ShopBuilt) -> None:
    shop = built.shop
    with psycopg.connect(shop.estate_url) as conn:
        migrated = {
            (t, a)
            for t, a in conn.execute(
                "SELECT DISTINCT aggregate_type, aggregate_id FROM eventstore.events"
                " WHERE partition_key = %s AND event_type IN ('AccountImported', 'OrderImported')",
                (DELETED_ON,),
            ).fetchall()
        }
    with psycopg.connect(shop.owner_url) as conn:
        orders = conn.execute(
            "SELECT o.account_id, o.order_no FROM shop.orders o"
            " JOIN shop.order_lines l USING (account_id, order_no)"
            " WHERE o.placed_at::date = %s AND o.shipped_at IS NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            (DELETED_ON,),
        ).fetchall()
        accounts = conn.execute(
            "SELECT id FROM shop.accounts WHERE signed_up_at::date = %s AND deleted_at IS NULL"
            " ORDER BY id",
            (DELETED_ON,),
        ).fetchall()
        order = next(o for o in orders if ("Order", f"{o[0]}|{o[1]}") in migrated)
        account = next(a for a in accounts if ("Account", str(a[0])) in migrated)
        conn.execute(
            "DELETE FROM shop.orders WHERE account_id = %s AND order_no = %s", (order[0], order[1])
        )
        conn.execute(
            "UPDATE shop.accounts SET deleted_at = %s, modified_at = %s WHERE id = %s",
            (SHOP_NOW, SHOP_NOW, account[0]),
        )
        conn.commit()
    built.materialize(DELETED_ON)
    order_id = f"{order[0]}|{order[1]}"
    with psycopg.connect(shop.estate_url) as conn:
        deletes = conn.execute(
            "SELECT DISTINCT event_type, partition_key FROM eventstore.events"
            " WHERE aggregate_id = ANY(%s) AND event_type LIKE '%%Deleted' ORDER BY 1",
            ([order_id, str(account[0])],),
        ).fetchall()
    assert {t for t, _key in deletes} == {"AccountDeleted", "OrderDeleted", "OrderLineDeleted"}
    touched = sorted({k for _t, k in deletes} - set(shop.keys))
    for key in touched:
        built.materialize(key)
    by_key = {key: built.run(key) for key in [*shop.keys, *touched]}
    for key, outcomes in by_key.items():
        assert _failing(outcomes) == [], key
    matches = [o for o in by_key[DELETED_ON] if o.name == "kafka.matches_event_store"]
    assert all(o.left_count == o.right_count for o in matches)


def test_rollback_of_one_day_then_rematerialize_gives_the_same_stores(built: ShopBuilt) -> None:
    keys = [d.isoformat() for d in SHOP_DAYS]
    before = {k: built.fp(k) for k in keys}
    held = {store for store, (n, _digest) in before[ROLLED_BACK].items() if n}
    searchable = {f"weaviate.{a.name}" for a in built.shop.spec.searchable}
    assert {"events", "outbox", "kafka", "clickhouse.events", *searchable} <= held, held
    scope = scope_of(list(SERVICES), from_day=ROLLED_BACK, to_day=ROLLED_BACK)
    with psycopg.connect(built.shop.estate_url) as conn:
        request_id = create_request(
            conn,
            scope,
            [ROLLED_BACK],
            reason="test",
            requested_by="pytest",
            dry_run=False,
            status="running",
        )
        conn.commit()
    report = run_rollback(built.targets, scope, request_id)
    assert report.status == "succeeded", report.markdown()
    emptied = built.fp(ROLLED_BACK)
    assert all(n == 0 for n, _digest in emptied.values()), emptied
    missing = built.run(ROLLED_BACK)
    accounted = next(o for o in missing if o.name == "event_store.monolith_accounted")
    assert not accounted.passed and accounted.left_count
    for key in keys:
        if key != ROLLED_BACK:
            assert built.fp(key) == before[key], key
    built.materialize(ROLLED_BACK)
    assert built.fp(ROLLED_BACK) == before[ROLLED_BACK]
    assert _failing(built.run(ROLLED_BACK)) == []
