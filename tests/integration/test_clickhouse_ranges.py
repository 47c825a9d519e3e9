"""A range of partitions loaded into ClickHouse in ONE Dagster run (the asset's backfill
policy), on the shop and the sample: every table holds the same rows as after
partition-by-partition loads, each partition gets its own metadata and its own check results,
a partition with nothing recorded is left alone, and the run repeated changes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import dagster as dg
import pytest

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.assets.clickhouse_tables import EVENTS_KEY, build_clickhouse_assets
from strangler.checks.consistency import build_consistency_checks
from strangler.resources.postgres import PostgresResource

from .migration_helpers import START_DAY
from .shop_helpers import SHOP_DAYS, ShopEstate
from .test_clickhouse_spec import Estate, _assert_checks_pass
from .test_clickhouse_spec import sample as sample  # noqa: F401  (fixture)
from .test_clickhouse_spec import shop as shop  # noqa: F401  (fixture)
from .test_clickhouse_spec import topics as topics  # noqa: F401  (fixture)
from .test_range_runs import range_tags

pytestmark = pytest.mark.integration


def _materialize_range(
    estate: Estate, keys: list[str], instance: dg.DagsterInstance
) -> dg.ExecuteInJobResult:
    daily = build_clickhouse_assets(estate.spec)[0]
    assert daily.backfill_policy is not None
    checks = [
        c
        for c in build_consistency_checks(estate.spec)
        if c.node_def.name == "clickhouse_consistency"
    ]
    assert checks
    return dg.materialize(
        [daily, *checks],
        instance=instance,
        resources={
            "clickhouse": estate.clickhouse,
            "kafka": estate.kafka,
            "postgres": PostgresResource(url=estate.estate_url),
        },
        run_config=dg.RunConfig(
            {
                "clickhouse_analytics": {
                    "config": {"database": estate.ddl.database, "consumer_group": estate.group}
                },
                "clickhouse_consistency": {"config": {"clickhouse_database": estate.ddl.database}},
            }
        ),
        tags=range_tags(keys),
        raise_on_error=False,
    )


def _assert_range_equals_single_loads(estate: Estate, keys: list[str]) -> None:
    """Load `keys` one by one into the estate's database and as one range run into a second
    database: every partition of every table holds the same rows, metadata and check results
    are recorded per partition, and the range run repeated changes nothing."""
    single = {key: estate.load(key) for key in keys}
    expected = {key: estate.fingerprint(key) for key in keys}
    ranged = replace(estate, ddl=DdlOptions(database=f"{estate.ddl.database}_range"))
    try:
        with dg.instance_for_test() as instance:
            run = _materialize_range(ranged, keys, instance)
            assert run.success
            assert {k: ranged.fingerprint(k) for k in keys} == expected
            for key in keys:
                record = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=EVENTS_KEY, asset_partitions=[key]), limit=1
                ).records[0]
                assert record.run_id == run.run_id
                meta = record.asset_materialization.metadata
                assert meta["rows"].value == single[key].rows, key
                empty = single[key].rows == 0
                assert meta["outcome"].value == ("nothing to load" if empty else "swapped"), key
                if not empty:
                    _assert_checks_pass(ranged, key)
                for check in ("matches_event_store", "current_state"):
                    history = instance.event_log_storage.get_asset_check_execution_history(
                        dg.AssetCheckKey(EVENTS_KEY, check), limit=50
                    )
                    mine = [r for r in history if r.run_id == run.run_id and r.partition == key]
                    assert [r.status.value for r in mine] == ["SUCCEEDED"], (key, check)
            again = _materialize_range(ranged, keys, instance)
            assert again.success
            assert {k: ranged.fingerprint(k) for k in keys} == expected
    finally:
        with estate.clickhouse.client() as c:
            c.command(drop_database_sql(ranged.ddl))


def test_shop_range_equals_partition_by_partition(shop: tuple[Estate, ShopEstate]) -> None:  # noqa: F811
    estate, shop_db = shop
    for key in shop_db.keys:
        estate.migrate(key)
    days = [k for k in shop_db.keys if k != "reference"]
    before = (SHOP_DAYS[0] - timedelta(days=1)).isoformat()  # nothing happened that day
    keys = sorted({before, *days})
    _assert_range_equals_single_loads(estate, keys)


def test_sample_range_equals_partition_by_partition(sample: Estate) -> None:  # noqa: F811
    key = START_DAY.isoformat()
    sample.migrate(key)
    keys = [(START_DAY + timedelta(days=d)).isoformat() for d in (-2, -1, 0, 1)]
    _assert_range_equals_single_loads(sample, keys)
