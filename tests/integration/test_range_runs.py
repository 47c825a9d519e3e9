"""A range of partitions in ONE Dagster run (the assets' backfill policy), on the shop and the
sample: the same events as partition-by-partition runs, one materialization per partition with
that partition's own metadata, and check evaluations recorded per partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from strangler.assets.event_store import build_event_store_asset
from strangler.assets.kafka_topics import build_daily_topics
from strangler.checks.consistency import build_consistency_checks
from strangler.checks.partition_live import LIVE_CHECK, ROLLBACK_ID, ROLLED_BACK
from strangler.launch import materialize_days, per_run
from strangler.migration.partition_run import PartitionMigration
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.settings import get_settings
from strangler.spec import EstateSpec, current_spec

from .migration_helpers import START_DAY, seeded_database, store_fingerprint
from .shop_helpers import SHOP_DAYS, ShopEstate, shop_estate
from .test_partition_ranges import weekly_spec


def range_tags(keys: list[str]) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def event_store_checks(spec: EstateSpec) -> list[dg.AssetChecksDefinition]:
    return [
        c for c in build_consistency_checks(spec) if c.node_def.name == "event_store_consistency"
    ]


def materialize_range(
    spec: EstateSpec, keys: list[str], resources: dict[str, object], instance: dg.DagsterInstance
) -> dg.ExecuteInJobResult:
    daily = build_event_store_asset(spec)
    topics = build_daily_topics(spec)
    assert daily.backfill_policy is not None and topics.backfill_policy is not None
    return dg.materialize(
        [daily, topics, *event_store_checks(spec)],
        instance=instance,
        resources=resources,
        tags=range_tags(keys),
        raise_on_error=False,
    )


def assert_recorded_per_partition(
    instance: dg.DagsterInstance, run_id: str, keys: list[str], rows: dict[str, int]
) -> None:
    events = dg.AssetKey(["event_store", "events"])
    for key in keys:
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=events, asset_partitions=[key]), limit=1
        ).records[0]
        assert record.run_id == run_id
        meta = record.asset_materialization.metadata
        assert meta["source_rows"].value == rows[key], key
        assert meta["outcome"].value == ("migrated" if rows[key] else "empty")
        assert meta["migrated"].value + meta["failed"].value == rows[key]
        check = dg.AssetCheckKey(events, "monolith_accounted")
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=50)
        mine = [r for r in history if r.run_id == run_id and r.partition == key]
        assert len(mine) == 1, (key, [(r.run_id, r.partition) for r in history])
        assert mine[0].status.value == "SUCCEEDED"


def stored(url: str, prefix: str) -> dict[str, object]:
    """The store's fingerprint, outbox topics without the test's Kafka prefix."""
    fingerprint = store_fingerprint(url)
    fingerprint["outbox"] = [
        (e, t.removeprefix(prefix), k, d) for e, t, k, d in fingerprint["outbox"]
    ]
    return fingerprint


def relayed(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.partition_key, count(*) FROM eventstore.outbox o"
            " JOIN migration_state.outbox_published p USING (topic, partition_key)"
            " WHERE o.position <= p.last_position GROUP BY 1"
        ).fetchall()
    return {str(k): int(n) for k, n in rows}


@pytest.fixture
def shops(postgres_url: str) -> Iterator[tuple[ShopEstate, ShopEstate]]:
    with shop_estate(postgres_url) as ranged, shop_estate(postgres_url) as single:
        yield ranged, single


def test_shop_range_in_one_run(
    shops: tuple[ShopEstate, ShopEstate], kafka: KafkaResource, unique: str
) -> None:
    ranged, single = shops
    keys = [(SHOP_DAYS[0] + timedelta(days=d)).isoformat() for d in range(-1, 4)]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"r{unique}.")
    resources = {
        "postgres": PostgresResource(url=ranged.estate_url),
        "monolith": PostgresResource(url=ranged.monolith_url, read_only=True),
        "kafka": prefixed,
    }
    rows = {
        key: PartitionMigration(
            single.estate_url, key, spec=single.spec, source_conninfo=single.monolith_url
        )
        .run()
        .source_rows
        for key in keys
    }
    try:
        with dg.instance_for_test() as instance:
            result = materialize_range(ranged.spec, keys, resources, instance)
            assert result.success
            assert_recorded_per_partition(instance, result.run_id, keys, rows)
            topic = dg.AssetKey(["kafka", "shop.orders"])
            for key in keys:
                meta = (
                    instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=topic, asset_partitions=[key]), limit=1
                    )
                    .records[0]
                    .asset_materialization.metadata
                )
                assert (meta["events_published"].value > 0) == (rows[key] > 0), key
        assert stored(ranged.estate_url, prefixed.topic_prefix) == stored(single.estate_url, "")
        with psycopg.connect(ranged.estate_url) as conn:
            unpublished = conn.execute(
                "SELECT count(*) FROM eventstore.outbox o WHERE o.partition_key <> 'reference'"
                " AND o.position > coalesce((SELECT p.last_position"
                " FROM migration_state.outbox_published p"
                " WHERE p.topic = o.topic AND p.partition_key = o.partition_key), 0)"
            ).fetchone()
        assert unpublished == (0,)
    finally:
        prefixed.admin().delete_topics(
            [prefixed.topic(t) for t in ("shop.accounts", "shop.orders")]
        )


def test_sample_range_in_one_run(postgres_url: str, kafka: KafkaResource, unique: str) -> None:
    spec = current_spec()
    keys = [(START_DAY + timedelta(days=d)).isoformat() for d in range(-1, 3)]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"s{unique}.")
    with (
        seeded_database(postgres_url, days=2, scale=0.1) as ranged,
        seeded_database(postgres_url, days=2, scale=0.1) as single,
    ):
        rows = {key: PartitionMigration(single, key, spec=spec).run().source_rows for key in keys}
        resources = {
            "postgres": PostgresResource(url=ranged),
            "monolith": PostgresResource(url=ranged, read_only=True),
            "kafka": prefixed,
        }
        try:
            with dg.instance_for_test() as instance:
                result = materialize_range(spec, keys, resources, instance)
                assert result.success
                assert_recorded_per_partition(instance, result.run_id, keys, rows)
                again = materialize_range(spec, keys, resources, instance)
                assert again.success
                record = instance.fetch_materializations(
                    dg.AssetRecordsFilter(
                        asset_key=dg.AssetKey(["event_store", "events"]), asset_partitions=[keys[1]]
                    ),
                    limit=1,
                ).records[0]
                assert record.asset_materialization.metadata["outcome"].value == "unchanged"
            assert stored(ranged, prefixed.topic_prefix) == stored(single, "")
            assert set(relayed(ranged)) == {k for k in keys if rows[k]}
        finally:
            prefixed.admin().delete_topics(
                [prefixed.topic(t) for t in sorted({spec.topic_of(a.name) for a in spec.daily})]
            )


def test_launch_splits_days_into_range_runs(
    postgres_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`strangler migrate --from --to`'s path: ranges of at most N partitions per run, every
    partition materialized once, with its own metadata."""
    monkeypatch.setenv("STRANGLER_MAX_PARTITIONS_PER_RUN", "3")
    get_settings.cache_clear()
    spec = current_spec()
    keys = [(START_DAY + timedelta(days=d)).isoformat() for d in range(-2, 2)]
    try:
        with seeded_database(postgres_url, days=2, scale=0.05) as url:
            settings = get_settings().model_copy(
                update={
                    "postgres_url": url,
                    "source_url": None,
                    "kafka_topic_prefix": f"l{unique}.",
                }
            )
            assets = [build_event_store_asset(spec)]
            assert per_run(assets) == 3
            events = dg.AssetKey(["event_store", "events"])
            with dg.instance_for_test() as instance:
                instance.report_runless_asset_event(  # as a rollback of keys[2] leaves it
                    dg.AssetObservation(
                        asset_key=events,
                        partition=keys[2],
                        metadata={ROLLED_BACK: True, ROLLBACK_ID: "r-test"},
                    )
                )
                runs = materialize_days(settings, assets, keys, instance)
                live = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(events, LIVE_CHECK), limit=20
                )  # one result per partition of the range; the rolled-back one is live again
                in_range = {r.partition: r.status.value for r in live if r.run_id == runs[0].run_id}
                assert in_range == dict.fromkeys(keys[:3], "SUCCEEDED")
                rolled_back = next(r for r in live if r.partition == keys[2])
                assert rolled_back.evaluation is not None
                assert "re-materialized" in (rolled_back.evaluation.description or "")
                assert [(r.partition_key, r.partitions, r.success) for r in runs] == [
                    (f"{keys[0]}..{keys[2]}", 3, True),
                    (keys[3], 1, True),
                ]
                assert set(runs[0].metadata) == {f"event_store/events {k}" for k in keys[:3]}
                figures = runs[0].metadata[f"event_store/events {keys[2]}"]
                assert figures["outcome"] == "migrated" and figures["source_rows"] > 0
                assert runs[0].metadata[f"event_store/events {keys[0]}"]["outcome"] == "empty"
                assert runs[1].metadata["event_store/events"]["source_rows"] > 0
    finally:
        get_settings.cache_clear()


def test_a_weekly_shop_passes_every_check(
    postgres_url: str, kafka: KafkaResource, unique: str, tmp_path: Path
) -> None:
    """A weekly estate through the Dagster assets: one week partition holds the shop's three
    days, and every event-store and Kafka check of the catalogue passes on it."""
    spec = weekly_spec(tmp_path)
    week = SHOP_DAYS[0].isoformat()
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"w{unique}.")
    checks = [
        c
        for c in build_consistency_checks(spec)
        if c.node_def.name in {"event_store_consistency", "kafka_consistency"}
    ]
    assert len(checks) == 2
    with shop_estate(postgres_url) as shop:
        resources = {
            "postgres": PostgresResource(url=shop.estate_url),
            "monolith": PostgresResource(url=shop.monolith_url, read_only=True),
            "kafka": prefixed,
        }
        try:
            with dg.instance_for_test() as instance:
                result = dg.materialize(
                    [build_event_store_asset(spec), build_daily_topics(spec), *checks],
                    partition_key=week,
                    instance=instance,
                    resources=resources,
                    raise_on_error=False,
                )
                assert result.success
                evaluations = result.get_asset_check_evaluations()
                assert len(evaluations) == sum(len(c.check_keys) for c in checks)  # all ran
                assert all(e.passed for e in evaluations), [
                    (e.check_name, e.description) for e in evaluations if not e.passed
                ]
                assert {e.partition for e in evaluations} == {week}
        finally:
            prefixed.admin().delete_topics(
                [prefixed.topic(t) for t in ("shop.accounts", "shop.orders")]
            )
