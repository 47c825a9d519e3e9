"""The collections are typed from the column types the first event-store migration records:
before it, the Weaviate asset refuses with one line saying what to run first, on the shop
(an estate database set up, nothing migrated) and the sample (not even set up)."""

from __future__ import annotations

import dagster as dg
import pytest

from strangler.assets.weaviate_collections import build_weaviate_assets
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.schema import CollectionNames
from strangler.spec import EstateSpec, current_spec

from .migration_helpers import START_DAY, seeded_database
from .shop_helpers import SHOP_DAYS, shop_estate

pytestmark = pytest.mark.integration


def refusal(
    spec: EstateSpec,
    estate_url: str,
    day: str,
    kafka: KafkaResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> str:
    """The failed step's description (asserting the run failed and nothing was created)."""
    assets, _checks = build_weaviate_assets(spec)
    names = CollectionNames(f"B{unique}")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            assets,
            partition_key=day,
            instance=instance,
            resources={
                "postgres": PostgresResource(url=estate_url),
                "kafka": kafka,
                "weaviate": weaviate,
                "embedder": embedder,
            },
            run_config={
                "ops": {"weaviate_collections": {"config": {"collection_prefix": names.prefix}}}
            },
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None, data.error
    with weaviate.client() as client:
        assert not any(client.collections.exists(names.of(a.name)) for a in spec.searchable)
    return str(data.user_failure_data.description)


def assert_one_line_naming_the_first_step(message: str, spec: EstateSpec) -> None:
    first = spec.searchable[0]
    assert message == (
        f"{first.name}: no column types of {first.source.qualified} are recorded yet (its"
        " collection is typed from them); migrate one partition to the event store first:"
        " `strangler migrate events --partition YYYY-MM-DD` (asset event_store/events)"
    )


def test_the_shop_before_its_first_event_store_migration(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> None:
    with shop_estate(postgres_url, dirty=False) as shop:
        message = refusal(
            shop.spec,
            shop.estate_url,
            SHOP_DAYS[0].isoformat(),
            kafka,
            weaviate_resource,
            embedder,
            unique,
        )
    assert_one_line_naming_the_first_step(message, shop.spec)


def test_the_sample_before_its_first_event_store_migration(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> None:
    spec = current_spec()
    with seeded_database(postgres_url, days=1, scale=0.05) as estate:
        message = refusal(
            spec, estate, START_DAY.isoformat(), kafka, weaviate_resource, embedder, unique
        )
    assert_one_line_naming_the_first_step(message, spec)
