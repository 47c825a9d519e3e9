"""The Dagster layer built from a spec other than the sample's: the shop's monolith sources,
`event_store/events` and `event_store/reference`, and its daily and reference topics."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest
from dagster._core.definitions.observe import observe  # no public equivalent in 1.13

from strangler.assets.event_store import build_event_store_asset, build_reference_asset
from strangler.assets.kafka_topics import build_daily_topics, build_kafka_topics
from strangler.assets.monolith import build_monolith_sources
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource

from .shop_helpers import SHOP_DAYS, ShopEstate, shop_estate


@pytest.fixture
def shop(postgres_url: str) -> Iterator[ShopEstate]:
    with shop_estate(postgres_url, dirty=False) as estate:
        yield estate


def test_shop_assets_materialize_days_and_reference(
    shop: ShopEstate, kafka: KafkaResource, unique: str
) -> None:
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"a{unique}.")
    reference = build_reference_asset(shop.spec)
    reference_topics = build_kafka_topics(shop.spec, reference=True)
    assert reference is not None and reference_topics is not None
    assert reference.partitions_def is None and reference_topics.partitions_def is None
    daily = build_event_store_asset(shop.spec)
    daily_topics = build_daily_topics(shop.spec)
    assert {k.path[-1] for k in daily_topics.keys} == {"shop.accounts", "shop.orders"}
    assert {k.path[-1] for k in reference_topics.keys} == {"shop.countries"}
    resources = {
        "postgres": PostgresResource(url=shop.estate_url),
        "monolith": PostgresResource(url=shop.monolith_url, read_only=True),
        "kafka": prefixed,
    }
    sources = build_monolith_sources(shop.spec)
    try:
        with dg.instance_for_test() as instance:
            assert observe(sources, instance=instance, resources=resources).success
            countries = instance.fetch_observations(sources[0].key, limit=1).records
            assert countries and countries[0].partition_key is None
            whole = dg.materialize(
                [reference, reference_topics], instance=instance, resources=resources
            )
            assert whole.success
            meta = whole.asset_materializations_for_node(reference.op.name)[0].metadata
            assert meta["migrated"].value == meta["source_rows"].value == 3
            day = SHOP_DAYS[0].isoformat()
            result = dg.materialize(
                [daily, daily_topics], partition_key=day, instance=instance, resources=resources
            )
            assert result.success
            meta = result.asset_materializations_for_node(daily.op.name)[0].metadata
            assert meta["failed"].value == 0 and meta["migrated"].value == meta["source_rows"].value
            published = {
                m.asset_key.path[-1]: m.metadata["events_published"].value
                for m in result.asset_materializations_for_node(daily_topics.op.name)
            }
            assert published["shop.accounts"] > 0 and published["shop.orders"] > 0
        with psycopg.connect(shop.estate_url) as conn:
            ranges = conn.execute(
                "SELECT DISTINCT topic, partition_key FROM migration_state.kafka_offset_ranges"
            ).fetchall()
        assert {(t.removeprefix(prefixed.topic_prefix), k) for t, k in ranges} == {
            ("shop.countries", "reference"),
            ("shop.accounts", day),
            ("shop.orders", day),
        }
    finally:
        prefixed.admin().delete_topics(
            [prefixed.topic(t) for t in ("shop.countries", "shop.accounts", "shop.orders")]
        )
