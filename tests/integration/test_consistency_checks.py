"""Consistency checks against real Postgres, Kafka, ClickHouse and Weaviate.

One small day is built once for the module (monolith -> event store -> Kafka -> ClickHouse and
Weaviate, all under names of its own). Clean data passes every check; then each fault is
injected alone, exactly the matching check must fail and name the culprit, and the fault is
undone before the next test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import TopicPartition

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import SinkOptions as AnalyticsOptions
from strangler.analytics.sink import load_day
from strangler.assets.weaviate_collections import cached_encoder
from strangler.checks.catalogue import CheckTargets, declared_checks, store_checks
from strangler.checks.outcome import CheckOutcome
from strangler.checks.runner import run_partition
from strangler.migration.consumer_lag import refresh_sync_status
from strangler.migration.day_events import read_day_from_store
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import WeaviateResource
from strangler.sample.synthetic import Event, create_topics, publish_day, record_ranges
from strangler.search.objects import key_text, object_uuid
from strangler.search.schema import SOURCE_ID, CollectionNames, drop, reference_name
from strangler.search.sink import SinkOptions as SearchOptions
from strangler.search.sink import run_day
from strangler.settings import Settings
from strangler.spec import current_spec

from .migration_helpers import ensure_test_topics, seeded_database

pytestmark = pytest.mark.integration

TOPICS = current_spec().topics
"""The sample's streams and their topics (the settings' spec)."""

DAY = date.today() - timedelta(days=5)
KEY = DAY.isoformat()
PARTITIONS = 3


@dataclass
class BuiltDay:
    url: str
    kafka: KafkaResource
    clickhouse: ClickHouseResource
    weaviate: WeaviateResource
    ddl: DdlOptions
    names: CollectionNames
    unique: str
    targets: CheckTargets

    def run(self, **overrides: Any) -> list[CheckOutcome]:
        return run_partition(replace(self.targets, **overrides), KEY)

    def reload_clickhouse(self) -> None:
        load_clickhouse(self)

    def ch(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.clickhouse.client() as c:
            return [tuple(r) for r in c.query(sql, parameters=params).result_rows]

    def ch_command(self, sql: str, **params: Any) -> None:
        with self.clickhouse.client() as c:
            c.command(sql, parameters=params)


def relay_day(url: str, kafka: KafkaResource) -> None:
    progress = ensure_test_topics(kafka, PARTITIONS)
    DayRelay(url, kafka, KEY, [kafka.topic(t) for t in TOPICS.values()], progress).run()


def load_clickhouse(day: BuiltDay) -> None:
    load_day(
        DAY,
        clickhouse=day.clickhouse.client,
        postgres_conninfo=day.url,
        consumer_factory=day.kafka.consumer,
        topic_prefix=day.kafka.topic_prefix,
        options=AnalyticsOptions(
            ddl=day.ddl, consumer_group=f"analytics-{day.unique}", idle_timeout_s=20
        ),
    )


@pytest.fixture(scope="module")
def built(
    postgres_url: str,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
) -> Iterator[BuiltDay]:
    unique = uuid.uuid4().hex[:10]
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{unique}.")
    names = CollectionNames(f"T{unique}")
    with seeded_database(postgres_url, days=1, scale=0.1, start_day=DAY) as url:
        PartitionMigration(url, DAY, options=RunOptions(topic_prefix=prefixed.topic_prefix)).run()
        relay_day(url, prefixed)
        targets = CheckTargets(
            postgres_conninfo=url,
            consumer_factory=prefixed.consumer,
            topic_prefix=prefixed.topic_prefix,
            clickhouse=clickhouse.client,
            clickhouse_ddl=DdlOptions(database=f"t_{unique}"),
            weaviate=weaviate_resource.client,
            collection_names=names,
            dimension=lambda: embedder.dimension,
            thresholds=Settings(check_max_consumer_lag=5),
            kafka_idle_timeout_s=20,
        )
        day = BuiltDay(
            url,
            prefixed,
            clickhouse,
            weaviate_resource,
            targets.clickhouse_ddl,
            names,
            unique,
            targets,
        )
        load_clickhouse(day)
        with psycopg.connect(url) as conn, weaviate_resource.client() as client:
            run_day(
                conn=conn,
                client=client,
                encoder=cached_encoder(embedder, 32, True),
                kafka=prefixed,
                spec=current_spec(),
                day=KEY,
                run_id=f"test-{unique}",
                options=SearchOptions(names=names, consumer_group=f"search-{unique}"),
            )
        try:
            yield day
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(day.ddl))
            with weaviate_resource.client() as client:
                drop(client, names, current_spec())
            topics = [prefixed.topic(t) for t in TOPICS.values()]
            prefixed.admin().delete_topics(topics)


def vector_of(obj: Any) -> list[float]:
    """The object's (single, default) vector as floats."""
    return [float(x) for x in obj.vector["default"]]


def failing(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.key: o for o in outcomes if not o.passed}


def assert_clean(day: BuiltDay) -> list[CheckOutcome]:
    outcomes = day.run()
    assert failing(outcomes) == {}, [o.summary() for o in failing(outcomes).values()]
    return outcomes


def only_failure(outcomes: list[CheckOutcome]) -> CheckOutcome:
    bad = failing(outcomes)
    assert len(bad) == 1, [o.summary() for o in bad.values()]
    return next(iter(bad.values()))


def clickhouse_failure(outcomes: list[CheckOutcome]) -> CheckOutcome:
    """A row damaged in the events table: `matches_event_store` fails and names it; the derived
    tables, built from the undamaged events, then differ from their rebuild too (and only they)."""
    bad = failing(outcomes)
    assert {o.name for o in bad.values()} <= {
        "clickhouse.matches_event_store",
        "clickhouse.views_match_rebuild",
    }, [o.summary() for o in bad.values()]
    return next(o for o in bad.values() if o.name == "clickhouse.matches_event_store")


def some_event(day: BuiltDay, aggregate_type: str) -> tuple[str, str]:
    """An event of D that is not the day's newest (freshness stays unaffected)."""
    with psycopg.connect(day.url) as conn:
        row = conn.execute(
            "SELECT event_id::text, aggregate_id FROM eventstore.events WHERE partition_day = %s"
            " AND aggregate_type = %s ORDER BY occurred_at LIMIT 1 OFFSET 3",
            (KEY, aggregate_type),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_clean_day_passes_every_check(built: BuiltDay) -> None:
    outcomes = assert_clean(built)
    names = {o.name for o in outcomes}
    assert {
        "event_store.monolith_accounted",
        "event_store.versions_ordered",
        "event_store.failed_entities_bounded",
        "kafka.matches_event_store",
        "kafka.keys_ordered",
        "kafka.fresh",
        "kafka.consumer_lag",
        "clickhouse.matches_event_store",
        "clickhouse.known_aggregates",
        "clickhouse.fresh",
        "weaviate.matches_event_store",
        "weaviate.references_resolve",
        "weaviate.vectors_complete",
        "weaviate.fresh",
    } <= names
    declared = declared_checks(current_spec())
    assert {(o.asset, o.name) for o in outcomes} == {
        (d.asset, d.check.outcome_name) for d in declared
    }, "the runner reports exactly the catalogue's checks of the spec"
    by_name = {o.key: o for o in outcomes}
    ch = by_name[f"clickhouse.matches_event_store[{built.ddl.database}]"]
    assert ch.left_count == ch.right_count and ch.left_count and ch.left_count > 100


def test_row_deleted_from_clickhouse(built: BuiltDay) -> None:
    event_id, _ = some_event(built, "Document")
    table = built.ddl.table("events")
    built.ch_command(
        f"ALTER TABLE {table} DELETE WHERE event_id = {{e:UUID}} SETTINGS mutations_sync = 2",
        e=event_id,
    )
    try:
        bad = clickhouse_failure(built.run())
        assert f"missing:{event_id}" in bad.offending
    finally:
        built.reload_clickhouse()
    assert_clean(built)


def test_duplicate_row_in_clickhouse(built: BuiltDay) -> None:
    event_id, _ = some_event(built, "ProcessingJob")
    table = built.ddl.table("events")
    built.ch_command(
        f"INSERT INTO {table} SELECT * FROM {table} WHERE event_id = {{e:UUID}}", e=event_id
    )
    try:
        bad = clickhouse_failure(built.run())
        assert f"duplicated:{event_id}" in bad.offending
        assert bad.right_count == (bad.left_count or 0) + 1
    finally:
        built.reload_clickhouse()
    assert_clean(built)


def _page_ids(day: BuiltDay) -> list[str]:
    with psycopg.connect(day.url) as conn:
        rows = conn.execute(
            "SELECT aggregate_id FROM eventstore.events WHERE partition_day = %s"
            " AND event_type = 'OcrPageExtracted' ORDER BY occurred_at LIMIT 5",
            (KEY,),
        ).fetchall()
    return [r[0] for r in rows]


def test_weaviate_object_deleted(built: BuiltDay) -> None:
    page_id = _page_ids(built)[2]
    u = object_uuid("OcrPage", page_id)
    with built.weaviate.client() as client:
        pages = client.collections.get(built.names.of("OcrPage"))
        original = pages.query.fetch_object_by_id(u, include_vector=True)
        assert original is not None
        pages.data.delete_by_id(u)
        try:
            bad = only_failure(built.run())
            assert bad.name == "weaviate.matches_event_store"
            assert bad.target == built.names.of("OcrPage")
            assert any(f"missing:OcrPage:{page_id}" in c for c in bad.offending)
        finally:
            pages.data.insert(properties=original.properties, uuid=u, vector=vector_of(original))
            doc: Any = original.properties.get("document_id")
            if doc is not None:
                target = object_uuid("Document", key_text([doc]))
                pages.data.reference_add(u, reference_name("Document"), target)
    assert_clean(built)


def test_orphan_ocr_page_added(built: BuiltDay) -> None:
    model_page = object_uuid("OcrPage", _page_ids(built)[0])
    orphan = object_uuid("OcrPage", "99999999")
    with built.weaviate.client() as client:
        pages = client.collections.get(built.names.of("OcrPage"))
        model = pages.query.fetch_object_by_id(model_page, include_vector=True)
        assert model is not None
        props = {**model.properties, SOURCE_ID: "99999999"}
        pages.data.insert(properties=props, uuid=orphan, vector=vector_of(model))
        try:
            bad = only_failure(built.run())
            assert bad.name == "weaviate.references_resolve"
            assert bad.target == built.names.of("OcrPage")
            assert any("orphan:OcrPage:99999999" in c for c in bad.offending)
        finally:
            pages.data.delete_by_id(orphan)
    assert_clean(built)


def test_two_versions_swapped(built: BuiltDay) -> None:
    with psycopg.connect(built.url) as conn:
        row = conn.execute(
            "SELECT aggregate_type, aggregate_id FROM eventstore.events WHERE partition_day = %s"
            " GROUP BY 1, 2 HAVING count(*) >= 2 ORDER BY 1, 2 LIMIT 1",
            (KEY,),
        ).fetchone()
        assert row is not None
        atype, aid = row

        def swap() -> None:
            for old, new in ((1, 100_000), (2, 1), (100_000, 2)):
                conn.execute(
                    "UPDATE eventstore.events SET aggregate_version = %s WHERE aggregate_type = %s"
                    " AND aggregate_id = %s AND aggregate_version = %s",
                    (new, atype, aid, old),
                )
            conn.commit()

        swap()
        try:
            bad = only_failure(built.run())
            assert bad.name == "event_store.versions_ordered"
            assert any(c.startswith(f"{atype}:{aid} ") for c in bad.offending)
        finally:
            swap()
    assert_clean(built)


def test_kafka_record_missing(built: BuiltDay) -> None:
    """D published again (to topics of its own) with one event held back."""
    held_back, _ = some_event(built, "Customer")
    other = KafkaResource(
        bootstrap_servers=built.kafka.bootstrap_servers, topic_prefix=f"u{built.unique}."
    )
    topics = [other.topic(t) for t in TOPICS.values()]
    create_topics(other.admin(), topics, PARTITIONS)
    with psycopg.connect(built.url) as conn:
        events = [
            Event(
                r.event_id,
                r.event_type,
                r.aggregate_type,
                r.aggregate_id,
                r.aggregate_version,
                r.occurred_at,
                r.payload,
                r.position,
            )
            for batch in read_day_from_store(conn, KEY)
            for r in batch
            if str(r.event_id) != held_back
        ]
        conn.commit()
        ranges = publish_day(
            other, events, DAY, transactional_id=f"check-{built.unique}", partitions=PARTITIONS
        )
        record_ranges(conn, KEY, ranges)
        conn.commit()
        try:
            bad = only_failure(built.run(topic_prefix=other.topic_prefix))
            assert bad.name == "kafka.matches_event_store"
            assert bad.offending == [f"missing:{held_back}"]
            assert bad.right_count == (bad.left_count or 0) - 1
        finally:
            conn.execute(
                "DELETE FROM migration_state.kafka_offset_ranges WHERE topic = ANY(%s)", (topics,)
            )
            conn.commit()
            other.admin().delete_topics(topics)
    assert_clean(built)


def test_zeroed_vector(built: BuiltDay) -> None:
    with psycopg.connect(built.url) as conn:
        row = conn.execute(
            "SELECT aggregate_id FROM eventstore.events WHERE partition_day = %s"
            " AND event_type = 'DocumentUploaded' ORDER BY aggregate_id LIMIT 1",
            (KEY,),
        ).fetchone()
    assert row is not None
    u = object_uuid("Document", row[0])
    with built.weaviate.client() as client:
        docs = client.collections.get(built.names.of("Document"))
        original = docs.query.fetch_object_by_id(u, include_vector=True)
        assert original is not None
        vector = vector_of(original)
        docs.data.update(uuid=u, vector=[0.0] * len(vector))
        try:
            bad = only_failure(built.run())
            assert bad.name == "weaviate.vectors_complete"
            assert bad.target == built.names.of("Document")
            assert any(f"Document:{row[0]} " in c and "zero vector" in c for c in bad.offending)
        finally:
            docs.data.update(uuid=u, vector=vector)
    assert_clean(built)


def test_consumer_group_lagging(built: BuiltDay) -> None:
    topic = built.kafka.topic(TOPICS["Document"])
    group = f"lagging-{built.unique}"
    consumer = built.kafka.consumer(group)
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        with psycopg.connect(built.url, autocommit=True) as conn:
            lags = refresh_sync_status(conn, consumer, "lagging-service", group, [topic])
            assert max(x.lag for x in lags) > 5
            try:
                bad = only_failure(built.run())
                assert bad.name == "kafka.consumer_lag"
                assert any(group in c for c in bad.offending)
            finally:
                conn.execute(
                    "DELETE FROM microservices.sync_status WHERE consumer_group = %s", (group,)
                )
    finally:
        consumer.close()
    assert_clean(built)


def test_cli_reports_stores_and_exits_by_outcome(
    built: BuiltDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from strangler.checks import cli

    monkeypatch.setattr(cli, "default_targets", lambda: built.targets)
    runner = CliRunner()
    args = ["--system", "event-store", "--partition", KEY, "--format", "json"]
    ok = runner.invoke(cli.check_app, args)
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert {d["name"] for d in doc} == {
        "event_store.monolith_accounted",
        "event_store.versions_ordered",
        "event_store.failed_entities_bounded",
    }
    strict = replace(built.targets, thresholds=Settings(check_max_unresolved_failed=0))
    monkeypatch.setattr(cli, "default_targets", lambda: strict)
    bad = runner.invoke(cli.check_app, [*args[:4], "--format", "markdown"])
    assert bad.exit_code == 1 and "event_store.failed_entities_bounded |  | warning |" in bad.output
    with psycopg.connect(built.url) as conn:
        rows = conn.execute(
            "SELECT check_name, status, source FROM migration_state.consistency_reports"
            " WHERE partition_key = %s ORDER BY result_id",
            (KEY,),
        ).fetchall()
    assert ("event_store.failed_entities_bounded", "passed", "cli") in rows
    assert ("event_store.failed_entities_bounded", "warning", "cli") in rows
    assert runner.invoke(cli.check_app, ["--from", KEY, "--to", "2000-01-01"]).exit_code == 2


def test_partitioned_asset_checks_in_dagster(built: BuiltDay) -> None:
    """The Dagster checks record one result per partition, with actionable metadata."""
    import dagster as dg

    from strangler.assets.clickhouse_tables import clickhouse_analytics
    from strangler.assets.event_store import event_store_events
    from strangler.checks.consistency import consistency_checks

    by_name = {c.node_def.name: c for c in consistency_checks}
    event_store_consistency = by_name["event_store_consistency"]
    clickhouse_consistency = by_name["clickhouse_consistency"]
    from strangler.resources.postgres import PostgresResource

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [
                event_store_events,
                clickhouse_analytics,
                event_store_consistency,
                clickhouse_consistency,
            ],
            selection=dg.AssetSelection.checks(event_store_consistency, clickhouse_consistency),
            instance=instance,
            tags={"dagster/partition": KEY},
            resources={
                "postgres": PostgresResource(url=built.url),
                "monolith": PostgresResource(url=built.url, read_only=True),
                "clickhouse": built.clickhouse,
                "kafka": built.kafka,
            },
            run_config={
                "ops": {
                    "clickhouse_consistency": {
                        "config": {"clickhouse_database": built.ddl.database}
                    }
                }
            },
        )
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        declared = [*store_checks("event-store").checks, *store_checks("clickhouse").checks]
        assert len(evaluations) == len(declared) and all(e.passed for e in evaluations)
        matches = next(e for e in evaluations if e.check_name == "matches_event_store")
        assert matches.partition == KEY
        assert (
            matches.metadata["count_event_store"].value
            == matches.metadata["count_clickhouse"].value
        )
        assert "SELECT" in str(matches.metadata["reproduce"].value)
