"""The sensors against a real Postgres and a test Dagster instance.

The late-data test also pins the private `RunRequest.for_asset_graph_subset` behaviour: one
request carrying an AssetGraphSubset (a backfill), no run key, exactly the changed days for
every daily asset. A Dagster upgrade that changes it fails here.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry

from strangler.assets.clickhouse_tables import clickhouse_assets
from strangler.assets.event_store import event_store_events
from strangler.assets.kafka_topics import kafka_topics
from strangler.assets.monolith import monolith_sources
from strangler.assets.weaviate_collections import weaviate_assets
from strangler.migration.partition_run import PartitionMigration
from strangler.resources.factory import build_resources
from strangler.resources.postgres import PostgresResource
from strangler.rollback.job import rollback_job
from strangler.sensors.backfill import build_failed_check_sensor, late_data_backfill_sensor
from strangler.sensors.rollback import rollback_requests_sensor
from strangler.settings import get_settings

from .migration_helpers import seeded_database
from .sensor_helpers import tick

pytestmark = pytest.mark.integration

START = date.today() - timedelta(days=10)
DAYS = [(START + timedelta(days=i)).isoformat() for i in range(3)]
ASSETS: list[Any] = [
    *monolith_sources,
    event_store_events,
    kafka_topics,
    *clickhouse_assets,
    *weaviate_assets,
]


@pytest.fixture(scope="module")
def url(postgres_url: str) -> Iterator[str]:
    with seeded_database(postgres_url, days=3, scale=0.05, dirty_rate=0.0, start_day=START) as u:
        for day in DAYS:
            PartitionMigration(u, day).run()
        yield u


def _defs(url: str, *sensors: dg.SensorDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        jobs=[rollback_job],
        sensors=list(sensors),
        resources={
            **build_resources(get_settings()),
            "postgres": PostgresResource(url=url),
            "monolith": PostgresResource(url=url, read_only=True),
        },
    )


def _touch(url: str, table: str, day: str) -> None:
    with psycopg.connect(url) as conn:
        n = conn.execute(
            f"UPDATE monolith.{table} SET updated_at = now() + interval '1 minute'"  # noqa: S608
            " WHERE id = (SELECT min(id) FROM monolith."
            + table
            + " WHERE (created_at AT TIME ZONE 'UTC')::date = %s)",
            (day,),
        ).rowcount
        conn.commit()
    assert n == 1


def test_late_data_sensor_requests_changed_days_once_as_one_backfill(url: str) -> None:
    defs = _defs(url, late_data_backfill_sensor)
    with dg.instance_for_test() as instance:
        first = tick(late_data_backfill_sensor, defs, instance, None)
        assert first.run_requests == []
        _touch(url, "documents", DAYS[0])
        _touch(url, "customers", DAYS[2])
        data = tick(late_data_backfill_sensor, defs, instance, first.cursor)
        assert len(data.run_requests) == 1
        request = data.run_requests[0]
        subset = request.asset_graph_subset
        assert subset is not None, "for_asset_graph_subset no longer yields a backfill request"
        assert request.requires_backfill_daemon()
        assert request.run_key is None
        graph = defs.resolve_asset_graph()
        daily = {k for k in graph.materializable_asset_keys if graph.get(k).is_partitioned}
        assert set(subset.asset_keys) == daily
        for key in daily:
            assert set(subset.get_partitions_subset(key).get_partition_keys()) == {DAYS[0], DAYS[2]}
        again = tick(late_data_backfill_sensor, defs, instance, data.cursor)
        assert again.run_requests == []
        _touch(url, "ocr_pages", DAYS[0])
        third = tick(late_data_backfill_sensor, defs, instance, again.cursor)
        assert len(third.run_requests) == 1
        sub = third.run_requests[0].asset_graph_subset
        assert sub is not None
        assert {
            p for k in sub.asset_keys for p in sub.get_partitions_subset(k).get_partition_keys()
        } == {DAYS[0]}
        _delete_one(url, "processing_jobs", DAYS[1])
        fourth = tick(late_data_backfill_sensor, defs, instance, third.cursor)
        assert len(fourth.run_requests) == 1, "a hard delete must be noticed too"
        sub = fourth.run_requests[0].asset_graph_subset
        assert sub is not None
        assert {
            p for k in sub.asset_keys for p in sub.get_partitions_subset(k).get_partition_keys()
        } == {DAYS[1]}


def _delete_one(url: str, table: str, day: str) -> None:
    with psycopg.connect(url) as conn:
        n = conn.execute(
            f"DELETE FROM monolith.{table} WHERE id = (SELECT max(id) FROM monolith.{table}"  # noqa: S608
            " WHERE (created_at AT TIME ZONE 'UTC')::date = %s)",
            (day,),
        ).rowcount
        conn.commit()
    assert n == 1


@contextmanager
def consolidated_instance() -> Iterator[dg.DagsterInstance]:
    """Storage-id cursors need a non-run-sharded event log, as deployed (dagster-postgres)."""
    with (
        tempfile.TemporaryDirectory() as base,
        dg.instance_for_test(
            overrides={
                "event_log_storage": {
                    "module": "dagster._core.storage.event_log",
                    "class": "ConsolidatedSqliteEventLogStorage",
                    "config": {"base_dir": base},
                }
            }
        ) as instance,
    ):
        yield instance


def _fail(instance: dg.DagsterInstance, day: str, passed: bool = False) -> None:
    """Store a blocking check evaluation of `day` as a run of its own would."""
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(["clickhouse", "events"]),
        check_name="matches_kafka",
        passed=passed,
        blocking=True,
        partition=day,
    )
    instance.store_event(
        EventLogEntry(
            error_info=None,
            level="INFO",
            user_message="",
            run_id=uuid.uuid4().hex,
            timestamp=time.time(),
            dagster_event=DagsterEvent(
                DagsterEventType.ASSET_CHECK_EVALUATION.value,
                job_name="__test__",
                event_specific_data=evaluation,
            ),
        )
    )


def test_failed_check_sensor_retries_n_times_then_files_a_request(url: str) -> None:
    sensor = build_failed_check_sensor(max_retries=2, name="failed_check_test")
    defs = _defs(url, sensor)
    day = DAYS[1]
    with consolidated_instance() as instance:
        cursor = None
        retries = []
        for _ in range(3):
            _fail(instance, day)
            data = tick(sensor, defs, instance, cursor)
            cursor = data.cursor
            retries.append(data.run_requests)
            quiet = tick(sensor, defs, instance, cursor)
            assert quiet.run_requests == [] and quiet.cursor in (None, cursor)
        assert [len(r) for r in retries] == [1, 1, 0]
        first = retries[0][0]
        assert first.partition_key == day
        keys = {k.to_user_string() for k in first.asset_selection or []}
        assert "clickhouse/events" in keys and "clickhouse/event_counts_daily" in keys
        assert "event_store/events" not in keys
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT partition_keys, status, requested_by FROM migration_state.rollback_requests"
                " WHERE requested_by LIKE 'sensor:%%' AND %s = ANY(partition_keys)",
                (day,),
            ).fetchall()
        assert len(rows) == 1 and rows[0][1] == "pending"
        _fail(instance, day)
        after = tick(sensor, defs, instance, cursor)
        assert after.run_requests == []
        assert json.loads(after.cursor or "{}")["filed"] == [day]


def test_failed_check_sensor_leaves_a_rolled_back_day_alone(url: str) -> None:
    """A day a rollback emptied on purpose fails its checks; that is not a reason to refill it."""
    sensor = build_failed_check_sensor(max_retries=2, name="failed_check_rolled_back")
    defs = _defs(url, sensor)
    day = DAYS[0]
    with consolidated_instance() as instance:
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(["clickhouse", "events"]),
                partition=day,
                metadata={"rolled_back": True, "rollback_id": "r-test"},
            )
        )
        _fail(instance, day)
        data = tick(sensor, defs, instance, None)
        assert data.run_requests == []
        assert json.loads(data.cursor or "{}")["tries"] == {}
        # Once re-materialized, the same failure is retried as usual.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["clickhouse", "events"]), partition=day)
        )
        _fail(instance, day)
        again = tick(sensor, defs, instance, data.cursor)
        assert len(again.run_requests) == 1 and again.run_requests[0].partition_key == day


def test_rollback_sensor_launches_each_request_once(url: str) -> None:
    defs = _defs(url, rollback_requests_sensor)
    with psycopg.connect(url) as conn:
        (rid,) = conn.execute(  # type: ignore[misc]
            "INSERT INTO migration_state.rollback_requests"
            " (asset_key, partition_keys, reason, requested_by, services, requested_at)"
            " VALUES ('*', %s, 'test', 'pytest', %s, %s) RETURNING request_id::text",
            ([DAYS[2], DAYS[1]], ["clickhouse", "weaviate"], datetime.now(UTC)),
        ).fetchone()
        conn.commit()
    with dg.instance_for_test() as instance:
        data = tick(rollback_requests_sensor, defs, instance, None)
        ours = [r for r in data.run_requests if r.run_key == f"rollback:{rid}"]
        assert len(ours) == 1
        config = ours[0].run_config["ops"]["rollback_plan"]["config"]
        assert config["from_day"] == DAYS[1] and config["to_day"] == DAYS[2]
        assert config["services"] == ["clickhouse", "weaviate"]
        assert config["request_id"] == rid
        again = tick(rollback_requests_sensor, defs, instance, data.cursor)
        assert all(r.run_key != f"rollback:{rid}" for r in again.run_requests)
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "SELECT status FROM migration_state.rollback_requests WHERE request_id = %s", (rid,)
        ).fetchone() == ("running",)
