"""The late-data sensor built from the shop's spec: a hard delete re-runs its day, an edit of
reference data (a table without any time column) re-runs the reference assets."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest

from strangler.assets.event_store import build_event_store_asset, build_reference_asset
from strangler.assets.kafka_topics import build_daily_topics, build_kafka_topics
from strangler.assets.monolith import build_monolith_sources
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.sensors.backfill import build_late_data_sensor

from .sensor_helpers import tick
from .shop_helpers import SHOP_DAYS, ShopEstate, shop_estate
from .test_spec_migration import migrate_all


@pytest.fixture
def shop(postgres_url: str) -> Iterator[ShopEstate]:
    with shop_estate(postgres_url) as estate:
        migrate_all(estate)
        yield estate


def test_deletes_and_reference_edits_are_late_data(shop: ShopEstate, kafka: KafkaResource) -> None:
    spec = shop.spec
    sensor = build_late_data_sensor(spec)
    reference = build_reference_asset(spec)
    reference_topics = build_kafka_topics(spec, reference=True)
    assert reference is not None and reference_topics is not None
    defs = dg.Definitions(
        assets=[
            *build_monolith_sources(spec),
            build_event_store_asset(spec),
            reference,
            build_daily_topics(spec),
            reference_topics,
        ],
        sensors=[sensor],
        resources={
            "postgres": PostgresResource(url=shop.estate_url),
            "monolith": PostgresResource(url=shop.monolith_url, read_only=True),
            "kafka": kafka,
        },
    )
    day = SHOP_DAYS[2].isoformat()
    with dg.instance_for_test() as instance:
        quiet = tick(sensor, defs, instance, None)
        assert quiet.run_requests == []
        with psycopg.connect(shop.owner_url) as conn:
            deleted = conn.execute(
                "DELETE FROM shop.orders WHERE (account_id, order_no) = (SELECT account_id, order_no"
                " FROM shop.orders WHERE placed_at::date = %s ORDER BY 1, 2 LIMIT 1)",
                (day,),
            ).rowcount
            conn.commit()
        assert deleted == 1
        after_delete = tick(sensor, defs, instance, quiet.cursor)
        assert len(after_delete.run_requests) == 1
        subset = after_delete.run_requests[0].asset_graph_subset
        assert subset is not None
        assert {
            p
            for k in subset.asset_keys
            for p in subset.get_partitions_subset(k).get_partition_keys()
        } == {day}
        with psycopg.connect(shop.owner_url) as conn:
            conn.execute("UPDATE shop.countries SET vat_rate = 9.00 WHERE code = 'NL'")
            conn.commit()
        after_edit = tick(sensor, defs, instance, after_delete.cursor)
        assert len(after_edit.run_requests) == 1
        request = after_edit.run_requests[0]
        assert request.run_key is not None and request.run_key.startswith("reference:")
        assert set(request.asset_selection or []) == {
            dg.AssetKey(["event_store", "reference"]),
            dg.AssetKey(["kafka", "shop.countries"]),
        }
        assert tick(sensor, defs, instance, after_edit.cursor).run_requests == []
