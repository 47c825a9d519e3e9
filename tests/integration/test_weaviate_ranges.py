"""A range of partitions into Weaviate in ONE Dagster run (the collections' backfill policy),
on the shop and the sample: the same objects as partition-by-partition runs, each partition
materialized with its own metadata and its semantic check recorded under its own partition,
and a re-run of the range changes nothing."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from strangler.assets.weaviate_collections import (
    SEMANTIC_CHECK,
    build_weaviate_assets,
    cached_encoder,
    weaviate_key,
)
from strangler.migration.partition_run import PartitionMigration
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.schema import CollectionNames, drop
from strangler.search.sink import SinkOptions, run_day
from strangler.search.tenants import scopes
from strangler.spec import EstateSpec, current_spec

from .migration_helpers import START_DAY, seeded_database
from .test_weaviate_shop import DAYS, ShopSearch, shop_search  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def snapshot(
    weaviate: WeaviateResource, names: CollectionNames, spec: EstateSpec
) -> dict[str, dict[str, Any]]:
    """collection aggregate/uuid -> tenant, properties and vector of every object (without the
    run's load token, which names the run)."""
    out: dict[str, dict[str, Any]] = {}
    with weaviate.client() as client:
        for aggregate in spec.searchable:
            for tenant, handle in scopes(client, names.of(aggregate.name)):
                for o in handle.iterator(include_vector=True):
                    props = {k: v for k, v in o.properties.items() if k != "load_token"}
                    vector = np.round(np.asarray(o.vector["default"]), 5).tolist()
                    out[f"{aggregate.name}/{o.uuid}"] = {
                        "tenant": tenant,
                        "props": props,
                        "vector": vector,
                    }
    return out


def materialize_range(
    spec: EstateSpec,
    keys: list[str],
    names: CollectionNames,
    resources: dict[str, object],
    instance: dg.DagsterInstance,
) -> dg.ExecuteInProcessResult:
    assets, checks = build_weaviate_assets(spec)
    assert assets[0].backfill_policy is not None
    check_config = {"collection_prefix": names.prefix, "sample_size": 10, "k": 3}
    return dg.materialize(
        [*assets, *checks],
        instance=instance,
        resources=resources,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
        run_config={
            "ops": {
                "weaviate_collections": {
                    "config": {"collection_prefix": names.prefix, "max_failure_ratio": 0.5}
                },
                **{c.node_def.name: {"config": check_config} for c in checks},
            }
        },
        raise_on_error=False,
    )


def load_day_by_day(
    spec: EstateSpec,
    estate_url: str,
    kafka: KafkaResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
    names: CollectionNames,
    keys: list[str],
) -> dict[str, dict[str, int]]:
    """Each partition in its own run of the sink: partition -> aggregate -> objects."""
    out: dict[str, dict[str, int]] = {}
    options = SinkOptions(names=names, max_failure_ratio=0.5)
    for key in keys:
        with psycopg.connect(estate_url) as conn, weaviate.client() as client:
            result = run_day(
                conn=conn,
                client=client,
                encoder=cached_encoder(embedder, 32, True),
                kafka=kafka,
                spec=spec,
                day=key,
                run_id=f"day-{uuid.uuid4().hex[:8]}",
                options=options,
            )
        out[key] = {a: r.objects for a, r in result.per_type.items()}
    return out


def assert_range_equals_days(
    spec: EstateSpec,
    estate_url: str,
    kafka: KafkaResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
    keys: list[str],
    unique: str,
) -> None:
    """The range in one run and partition by partition give the same objects; each partition
    of the range has its own materialization (same object counts) and semantic-check result;
    the range again changes nothing."""
    ranged, daily = CollectionNames(f"R{unique}"), CollectionNames(f"D{unique}")
    resources = {
        "postgres": PostgresResource(url=estate_url),
        "kafka": kafka,
        "weaviate": weaviate,
        "embedder": embedder,
    }
    try:
        expected = load_day_by_day(spec, estate_url, kafka, weaviate, embedder, daily, keys)
        assert any(sum(counts.values()) for counts in expected.values()), expected
        with dg.instance_for_test() as instance:
            result = materialize_range(spec, keys, ranged, resources, instance)
            assert result.success
            for aggregate in spec.searchable:
                key = weaviate_key(aggregate.name)
                check = dg.AssetCheckKey(key, SEMANTIC_CHECK)
                history = instance.event_log_storage.get_asset_check_execution_history(
                    check, limit=50
                )
                for partition_key in keys:
                    (record,) = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition_key]),
                        limit=5,
                    ).records
                    assert record.run_id == result.run_id
                    meta = record.asset_materialization.metadata
                    objects = meta["objects"].value
                    assert objects == expected[partition_key][aggregate.name], partition_key
                    assert meta["failures"].value == 0
                    mine = [r for r in history if r.partition == partition_key]
                    assert len(mine) == 1, (partition_key, [r.partition for r in history])
                    assert mine[0].run_id == result.run_id
                    assert mine[0].status.value == "SUCCEEDED", partition_key
            first = snapshot(weaviate, ranged, spec)
            assert first == snapshot(weaviate, daily, spec)
            again = materialize_range(spec, keys, ranged, resources, instance)
            assert again.success
            assert snapshot(weaviate, ranged, spec) == first
    finally:
        with weaviate.client() as client:
            drop(client, ranged, spec)
            drop(client, daily, spec)


def test_shop_range_in_one_run(shop_search: ShopSearch, unique: str) -> None:  # noqa: F811
    s = shop_search
    for key in s.shop.keys:
        s.migrate(key)
    # A day before the shop's history (empty) and its three days.
    keys = [(date.fromisoformat(DAYS[0]) - timedelta(days=1)).isoformat(), *DAYS]
    assert_range_equals_days(
        s.shop.spec, s.shop.estate_url, s.kafka, s.weaviate, s.embedder, keys, unique
    )


def test_sample_range_in_one_run(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> None:
    """The sample's events read from the event store (no Kafka offsets recorded for them)."""
    spec = current_spec()
    keys = [(START_DAY + timedelta(days=d)).isoformat() for d in range(-1, 2)]
    with seeded_database(postgres_url, days=2, scale=0.05) as estate:
        for key in keys:
            PartitionMigration(estate, key, spec=spec).run()
        assert_range_equals_days(spec, estate, kafka, weaviate_resource, embedder, keys, unique)
