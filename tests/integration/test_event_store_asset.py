"""The Dagster layer over the migration: observe the monolith, materialize a day."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
from dagster._core.definitions.observe import observe  # no public equivalent in 1.13

from strangler.assets.event_store import event_store_events
from strangler.assets.monolith import monolith_sources
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource

from .migration_helpers import seeded_database


def test_materialize_one_day_and_rerun(postgres_url: str, kafka: KafkaResource) -> None:
    start = date.today() - timedelta(days=5)
    day = (start + timedelta(days=1)).isoformat()
    with seeded_database(postgres_url, days=3, start_day=start) as url:
        resources = {
            "postgres": PostgresResource(url=url),
            "monolith": PostgresResource(url=url, read_only=True),
            "kafka": kafka,
        }
        with dg.instance_for_test() as instance:
            first = dg.materialize(
                [event_store_events], partition_key=day, instance=instance, resources=resources
            )
            assert first.success
            meta = first.asset_materializations_for_node(event_store_events.op.name)[0].metadata
            assert meta["migrated"].value + meta["failed"].value == meta["source_rows"].value
            assert meta["events_written"].value > 0
            again = dg.materialize(
                [event_store_events], partition_key=day, instance=instance, resources=resources
            )
            meta2 = again.asset_materializations_for_node(event_store_events.op.name)[0].metadata
            assert meta2["events_written"].value == 0
            assert meta2["migrated"].value == meta["migrated"].value

            dry = dg.materialize(
                [event_store_events],
                partition_key=(start + timedelta(days=2)).isoformat(),
                instance=instance,
                resources=resources,
                run_config=dg.RunConfig({"event_store__events": {"config": {"dry_run": True}}}),
            )
            meta3 = dry.asset_materializations_for_node(event_store_events.op.name)[0].metadata
            assert meta3["dry_run"].value is True and meta3["events_written"].value == 0


def test_observation_reports_each_day(postgres_url: str) -> None:
    start = date.today() - timedelta(days=4)
    with seeded_database(postgres_url, days=3, start_day=start) as url:
        customers = monolith_sources[0]
        with dg.instance_for_test() as instance:
            result = observe(
                [customers],
                instance=instance,
                resources={"monolith": PostgresResource(url=url, read_only=True)},
            )
            assert result.success
            records = instance.fetch_observations(customers.key, limit=10).records
            partitions = {r.partition_key for r in records}
        assert {(start + timedelta(days=i)).isoformat() for i in range(3)} <= partitions
