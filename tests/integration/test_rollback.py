"""Rollback against real Postgres, Kafka, ClickHouse and Weaviate.

Three days (D-1, D, D+1) are built once through every store under names of their own. Then:
a dry run changes nothing; rolling back D empties D everywhere and leaves its neighbours
alone; the groups are rewound (observed by a real consumer); undo restores D exactly; a second
rollback followed by re-materializing D gives back the same content; an active consumer group
makes the rollback refuse before changing anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from confluent_kafka import TopicPartition
from dagster._core.instance.ref import InstanceRef

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import SinkOptions as AnalyticsOptions
from strangler.analytics.sink import load_partition
from strangler.assets.event_store import event_store_events
from strangler.assets.weaviate_collections import cached_encoder
from strangler.checks.partition_live import partition_live, partition_liveness
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.rollback.check_evidence import PRESENCE_CHECKS, day_outcomes
from strangler.rollback.code_versions import days_written_after
from strangler.rollback.execute import RollbackRefused
from strangler.rollback.job import rollback_job
from strangler.rollback.partition_status import KIND_TAG, RETRACTION
from strangler.rollback.report import create_request
from strangler.rollback.run import run_rollback
from strangler.rollback.scope import scope_of
from strangler.rollback.services import ANALYTICS, SEARCH, SERVICES
from strangler.rollback.stores import day_fingerprint
from strangler.rollback.targets import Targets
from strangler.rollback.undo import undo
from strangler.search.schema import CollectionNames, drop
from strangler.search.sink import SinkOptions as SearchOptions
from strangler.search.sink import run_day
from strangler.spec import current_spec

from .migration_helpers import ensure_test_topics, seeded_database

pytestmark = pytest.mark.integration

TOPICS = current_spec().topics
"""The sample's streams and their topics (the settings' spec)."""

DAY = date.today() - timedelta(days=6)
KEY = DAY.isoformat()
BEFORE = (DAY - timedelta(days=1)).isoformat()
AFTER = (DAY + timedelta(days=1)).isoformat()
PARTITIONS = 3


@dataclass
class Built:
    targets: Targets
    embedder: EmbedderResource
    unique: str
    fingerprints: dict[str, dict[str, Any]]
    resources: dict[str, Any]
    last_request: str = ""

    @property
    def url(self) -> str:
        return self.targets.postgres_conninfo

    def fp(self, day: str) -> dict[str, Any]:
        return day_fingerprint(self.targets, day)

    def rollback(self, *, dry_run: bool = False, services: tuple[str, ...] = ("all",)) -> Any:
        scope = scope_of(list(services), from_day=KEY, to_day=KEY)
        with psycopg.connect(self.url) as conn:
            request_id = create_request(
                conn,
                scope,
                [KEY],
                reason="test",
                requested_by="pytest",
                dry_run=dry_run,
                status="running",
            )
            conn.commit()
        return run_rollback(self.targets, scope, request_id, dry_run=dry_run)

    def materialize(self, key: str) -> None:
        """Every stage of day `key`, through the plain functions the assets call."""
        t = self.targets
        PartitionMigration(
            t.postgres_conninfo,
            date.fromisoformat(key),
            options=RunOptions(topic_prefix=t.kafka.topic_prefix),
        ).run()
        DayRelay(t.postgres_conninfo, t.kafka, key, t.topics, t.progress_topic).run()
        load_partition(
            key,
            clickhouse=t.clickhouse,
            postgres_conninfo=t.postgres_conninfo,
            consumer_factory=t.kafka.consumer,
            topic_prefix=t.kafka.topic_prefix,
            spec=t.spec,
            options=AnalyticsOptions(
                ddl=t.ddl, consumer_group=t.consumer_groups[ANALYTICS], idle_timeout_s=20
            ),
        )
        with psycopg.connect(t.postgres_conninfo) as conn, t.weaviate() as client:
            run_day(
                conn=conn,
                client=client,
                encoder=cached_encoder(self.embedder, 32, True),
                kafka=t.kafka,
                spec=t.spec,
                day=key,
                run_id=f"test-{uuid.uuid4().hex[:8]}",
                options=SearchOptions(names=t.names, consumer_group=t.consumer_groups[SEARCH]),
            )


@pytest.fixture(scope="module")
def built(
    postgres_url: str,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Built]:
    unique = uuid.uuid4().hex[:10]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}.")
    ensure_test_topics(prefixed, PARTITIONS)
    names = CollectionNames(f"T{unique}")
    with seeded_database(postgres_url, days=3, scale=0.1, start_day=DAY - timedelta(days=1)) as url:
        # Other suites share the embedded ClickHouse: wait for our turn longer than usual.
        patient = ClickHouseResource(dsn=clickhouse.dsn, lock_timeout_s=1800)
        targets = Targets(
            postgres_conninfo=url,
            kafka=prefixed,
            clickhouse=patient.client,
            weaviate=weaviate_resource.client,
            ddl=DdlOptions(database=f"t_{unique}"),
            names=names,
            consumer_groups={ANALYTICS: f"analytics-{unique}", SEARCH: f"search-{unique}"},
            snapshot_dir=Path(tmp_path_factory.mktemp("rollbacks")),
        )
        resources = {
            "postgres": PostgresResource(url=url),
            "monolith": PostgresResource(url=url, read_only=True),
            "kafka": prefixed,
            "clickhouse": patient,
            "weaviate": weaviate_resource,
        }
        b = Built(targets, embedder, unique, {}, resources)
        for key in (BEFORE, KEY, AFTER):
            b.materialize(key)
        b.fingerprints = {k: b.fp(k) for k in (BEFORE, KEY, AFTER)}
        try:
            yield b
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(targets.ddl))
            with weaviate_resource.client() as client:
                drop(client, names, current_spec())
            prefixed.admin().delete_topics([prefixed.topic(t) for t in TOPICS.values()])


def _empty(fp: dict[str, Any]) -> bool:
    return all(v[0] == 0 for v in fp.values())


def test_built_days_are_not_empty(built: Built) -> None:
    for key in (BEFORE, KEY, AFTER):
        fp = built.fingerprints[key]
        assert all(v[0] > 0 for k, v in fp.items()), (key, fp)


def test_dry_run_changes_nothing(built: Built) -> None:
    report = built.rollback(dry_run=True)
    assert report.status == "succeeded"
    assert report.plan.counts[KEY]["event-store"]["events"] == built.fingerprints[KEY]["events"][0]
    assert report.executed is None
    for key in (BEFORE, KEY, AFTER):
        assert built.fp(key) == built.fingerprints[key]


def _group_offsets(built: Built, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    tps = [TopicPartition(t, p) for t in built.targets.topics for p in range(PARTITIONS)]
    admin = built.targets.kafka.admin()
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])
    return {(tp.topic, tp.partition): tp.offset for tp in res[group].result().topic_partitions}


def _first_offsets_seen(built: Built, group: str) -> dict[tuple[str, int], int]:
    """What a real consumer of `group` reads first after the reset, per partition."""
    consumer = built.targets.kafka.consumer(group)
    seen: dict[tuple[str, int], int] = {}
    try:
        consumer.subscribe(built.targets.topics)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                if seen and msg is None:
                    break
                continue
            seen.setdefault((str(msg.topic()), int(msg.partition() or 0)), int(msg.offset() or 0))
    finally:
        consumer.close()
    return seen


def test_rollback_empties_the_day_only(built: Built) -> None:
    with psycopg.connect(built.url) as conn:
        starts = {
            (t, p): s
            for t, p, s in conn.execute(
                "SELECT topic, kafka_partition, start_offset FROM migration_state.kafka_offset_ranges"
                " WHERE partition_key = %s",
                (KEY,),
            )
        }
    report = built.rollback()
    assert report.status == "succeeded", report.markdown()
    assert _empty(built.fp(KEY)), built.fp(KEY)
    validation = report.validation
    assert validation is not None
    assert validation.checks_still_finding == {}, validation.checks_still_finding
    assert validation.neighbour_check_regressions == {}
    assert set(report.plan.neighbour_checks) == {BEFORE, AFTER}
    assert any(
        "event_store.monolith_accounted" in line for line in validation.checks_report_missing[KEY]
    ), validation.checks_report_missing
    assert "Checks reporting" in report.markdown()
    assert built.fp(BEFORE) == built.fingerprints[BEFORE]
    assert built.fp(AFTER) == built.fingerprints[AFTER]
    with psycopg.connect(built.url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM migration_state.rollback_reports WHERE request_id = %s",
            (report.request_id,),
        ).fetchone()
        status = conn.execute(
            "SELECT status FROM migration_state.rollback_requests WHERE request_id = %s",
            (report.request_id,),
        ).fetchone()
    assert rows is not None and rows[0] > 0
    assert status == ("succeeded",)
    # The analytics group is back at D's first offsets, and a real consumer reads from there.
    group = built.targets.consumer_groups[ANALYTICS]
    offsets = _group_offsets(built, group)
    for tp, start in starts.items():
        assert offsets[tp] <= start or offsets[tp] == start, (tp, offsets[tp], start)
    assert {r.group for r in report.executed.resets} >= {group}
    search_group = built.targets.consumer_groups[SEARCH]
    seen = _first_offsets_seen(built, search_group)
    moved = {
        (r.topic, r.partition): r.after for r in report.executed.resets if r.group == search_group
    }
    assert moved, "the search group was not rewound"
    for tp, after in moved.items():
        assert seen.get(tp) == after, (tp, seen.get(tp), after)

    built.last_request = report.request_id


def test_checks_report_the_rolled_back_day_missing(built: Built) -> None:
    """The consistency checks agree: D is missing upstream, absent downstream; D-1 still passes."""
    assert built.last_request, "runs after test_rollback_empties_the_day_only"
    with psycopg.connect(built.url) as conn:
        (details,) = conn.execute(
            "SELECT count(*) FROM migration_state.rollback_reports WHERE request_id = %s"
            " AND status = 'succeeded'",
            (built.last_request,),
        ).fetchone() or (0,)
    assert details > 0
    outcomes = day_outcomes(built.targets, KEY, SERVICES)
    accounted = next(o for o in outcomes if o.name == "event_store.monolith_accounted")
    assert not accounted.passed, accounted.summary()
    assert accounted.left_count and (accounted.right_count or 0) < accounted.left_count
    presence = [o for o in outcomes if o.name in PRESENCE_CHECKS]
    assert {o.system for o in presence} == {"kafka", "clickhouse", "weaviate"}
    for o in presence:
        assert o.right_count == 0, o.summary()
    before = {o.name: o for o in day_outcomes(built.targets, BEFORE, SERVICES)}
    assert before["event_store.monolith_accounted"].passed
    assert all(before[name].passed for name in PRESENCE_CHECKS), [
        o.summary() for o in before.values() if not o.passed
    ]


def test_undo_restores_the_snapshot(built: Built) -> None:
    assert built.last_request, "runs after test_rollback_empties_the_day_only"
    restored = undo(built.targets, built.last_request)
    assert restored.days == [KEY]
    assert built.fp(KEY) == built.fingerprints[KEY]
    assert built.fp(BEFORE) == built.fingerprints[BEFORE]


def test_rollback_then_rematerialize_gives_the_same_day(built: Built) -> None:
    assert built.fp(KEY) == built.fingerprints[KEY]
    again = built.rollback()
    assert again.status == "succeeded", again.markdown()
    assert _empty(built.fp(KEY))
    built.materialize(KEY)
    assert built.fp(KEY) == built.fingerprints[KEY]
    assert built.fp(AFTER) == built.fingerprints[AFTER]


def test_active_group_refuses_before_any_change(built: Built) -> None:
    group = built.targets.consumer_groups[ANALYTICS]
    consumer = built.targets.kafka.consumer(group)
    try:
        consumer.subscribe(built.targets.topics)
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.5)
        assert consumer.assignment()
        with pytest.raises(RollbackRefused, match="active member"):
            built.rollback()
    finally:
        consumer.close()
    assert built.fp(KEY) == built.fingerprints[KEY]


def _strangler(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "strangler"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def test_cli_rolls_back_and_undoes_through_dagster(built: Built, tmp_path: Path) -> None:
    """`strangler rollback` end to end: a subprocess, settings from the environment, runs
    recorded in the Dagster instance the UI reads."""
    home = tmp_path / "dagster"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STRANGLER_POSTGRES_URL": built.url,
        "STRANGLER_KAFKA_TOPIC_PREFIX": built.targets.kafka.topic_prefix,
        "STRANGLER_CLICKHOUSE_DATABASE": built.targets.ddl.database,
        "STRANGLER_CLICKHOUSE_LOCK_TIMEOUT_S": "1800",
        "STRANGLER_WEAVIATE_COLLECTION_PREFIX": built.targets.names.prefix,
        "STRANGLER_ROLLBACK_SNAPSHOT_DIR": str(tmp_path / "snapshots"),
    }
    assert built.fp(KEY) == built.fingerprints[KEY]
    dry = _strangler(["rollback", "all", "-d", "--from", KEY, "--to", KEY], env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run" in dry.stdout and "Rollback plan" in dry.stdout
    assert built.fp(KEY) == built.fingerprints[KEY]

    real = _strangler(["rollback", "all", "--from", KEY, "--to", KEY, "--reason", "cli test"], env)
    assert real.returncode == 0, real.stdout + real.stderr
    found = re.search(r"request ([0-9a-f-]{36}), Dagster run ([0-9a-f-]{36})", real.stdout)
    assert found, real.stdout
    request_id, run_id = found.groups()
    assert "validate:" in real.stdout and "execute:" in real.stdout, "step durations missing"
    assert _empty(built.fp(KEY)), built.fp(KEY)
    assert built.fp(BEFORE) == built.fingerprints[BEFORE]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "rollback"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        live = partition_liveness(instance, dg.AssetKey(["event_store", "events"]), KEY)
        assert not live.passed and live.rollback_id == request_id

    undone = _strangler(["rollback", "undo", request_id], env)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert built.fp(KEY) == built.fingerprints[KEY]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert partition_liveness(instance, dg.AssetKey(["event_store", "events"]), KEY).passed
        runs = instance.get_runs()
        retractions = [r for r in runs if r.tags.get(KIND_TAG) == RETRACTION]
        assert {r.job_name for r in runs if r not in retractions} == {"rollback", "rollback_undo"}
        # the rolled-back day read Failed in the partitions view: one failed run planning it
        assert [(r.tags["dagster/partition"], r.status) for r in retractions] == [
            (KEY, dg.DagsterRunStatus.FAILURE)
        ]
    # An unknown service (`rollback redis`): test_cli_errors.py's unknown-service case.


def test_job_dry_run_then_rollback_records_the_partitions(built: Built) -> None:
    """The Dagster job runs the same steps; observations mark the rolled-back partitions."""
    overrides = {
        "clickhouse_database": built.targets.ddl.database,
        "collection_prefix": built.targets.names.prefix,
        "analytics_group": built.targets.consumer_groups[ANALYTICS],
        "search_group": built.targets.consumer_groups[SEARCH],
        "snapshot_dir": str(built.targets.snapshot_dir),
    }
    base = {"services": ["all"], "from_day": AFTER, "to_day": AFTER, **overrides}
    with dg.instance_for_test() as instance:
        dry = rollback_job.execute_in_process(
            run_config={"ops": {"rollback_plan": {"config": {**base, "dry_run": True}}}},
            resources=built.resources,
            instance=instance,
        )
        assert dry.success
        assert dry.output_for_node("rollback_report")["dry_run"] is True
        assert built.fp(AFTER) == built.fingerprints[AFTER]
        run = rollback_job.execute_in_process(
            run_config={"ops": {"rollback_plan": {"config": base}}},
            resources=built.resources,
            instance=instance,
        )
        assert run.success
        report = run.output_for_node("rollback_report")
        assert report["status"] == "succeeded"
        assert "# Rollback" in report["markdown"]
        assert _empty(built.fp(AFTER))
        assert built.fp(KEY) == built.fingerprints[KEY]
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["event_store", "events"]), asset_partitions=[AFTER]
            ),
            limit=5,
        ).records
        assert records, "no observation recorded for the rolled-back partition"
        meta = records[0].asset_observation.metadata  # type: ignore[union-attr]
        assert meta["rollback_id"].value == report["request_id"]
        assert meta["rolled_back"].value is True
        live_key = dg.AssetKey(["event_store", "events"])
        evaluations = [e for e in run.get_asset_check_evaluations() if e.asset_key == live_key]
        assert [(ev.check_name, ev.passed, ev.partition) for ev in evaluations] == [
            ("live", False, AFTER)
        ]
        assert not partition_liveness(instance, live_key, AFTER).passed
        assert partition_liveness(instance, live_key, KEY).passed

        # Re-materializing the partition through Dagster runs the live check, which now passes.
        again = dg.materialize(
            [event_store_events, partition_live],
            partition_key=AFTER,
            resources=built.resources,
            instance=instance,
            selection=[live_key],
        )
        assert again.success
        results = [e for e in again.get_asset_check_evaluations() if e.asset_key == live_key]
        assert [(r.check_name, r.passed) for r in results] == [("live", True)]
        assert partition_liveness(instance, live_key, AFTER).passed
        kafka_key = dg.AssetKey(["kafka", TOPICS["Document"]])
        assert not partition_liveness(instance, kafka_key, AFTER).passed

        # "Undo what versions newer than V wrote" reads the code version Dagster recorded.
        assert days_written_after(instance, [live_key], "0") == [AFTER]
        assert days_written_after(instance, [live_key], "1") == []
        by_version = rollback_job.execute_in_process(
            run_config={
                "ops": {
                    "rollback_plan": {
                        "config": {
                            **overrides,
                            "services": ["event-store"],
                            "code_version": "0",
                            "dry_run": True,
                        }
                    }
                }
            },
            resources=built.resources,
            instance=instance,
        )
        assert by_version.success
        assert by_version.output_for_node("rollback_report")["plan"]["days"] == [AFTER]
