"""ClickHouse from the estate spec, end to end on real Postgres, Kafka and embedded ClickHouse:
the sample and the shop migrated into the event store, relayed to Kafka, loaded per partition
(every day and `reference`); the generic events table, typed current-state tables, the user's
analytics folder, hard and soft deletes, re-runs and every ClickHouse check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
import pytest

from strangler.analytics.ddl import DdlOptions, drop_database_sql
from strangler.analytics.sink import DayResult, SinkOptions, load_partition
from strangler.analytics.state import state_table
from strangler.assets.clickhouse_tables import build_clickhouse_assets
from strangler.checks.clickhouse import check_clickhouse_partition
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.clickhouse import ClickHouseResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.spec import EstateSpec, current_spec

from .migration_helpers import START_DAY, seeded_database
from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate

pytestmark = pytest.mark.integration


@dataclass
class Estate:
    """One estate wired to its own topics and ClickHouse database."""

    spec: EstateSpec
    estate_url: str
    monolith_url: str
    kafka: KafkaResource
    clickhouse: ClickHouseResource
    ddl: DdlOptions
    progress: str
    group: str
    now: Any = None

    def migrate(self, key: str) -> None:
        PartitionMigration(
            self.estate_url,
            key,
            spec=self.spec,
            source_conninfo=self.monolith_url,
            options=RunOptions(topic_prefix=self.kafka.topic_prefix),
            now=self.now,
        ).run()
        DayRelay(
            self.estate_url,
            self.kafka,
            key,
            [self.kafka.topic(t) for t in self.spec.topics.values()],
            self.progress,
        ).run()

    def load(self, key: str, **options: Any) -> DayResult:
        return load_partition(
            key,
            clickhouse=self.clickhouse.client,
            postgres_conninfo=self.estate_url,
            consumer_factory=self.kafka.consumer,
            topic_prefix=self.kafka.topic_prefix,
            spec=self.spec,
            options=SinkOptions(
                ddl=self.ddl, consumer_group=self.group, idle_timeout_s=20, **options
            ),
        )

    def check(self, key: str) -> dict[str, Any]:
        with psycopg.connect(self.estate_url) as conn, self.clickhouse.client() as client:
            outcomes = check_clickhouse_partition(self.spec, conn, client, key, ddl=self.ddl)
        return {o.name: o for o in outcomes}

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.clickhouse.client() as c:
            return [tuple(r) for r in c.query(sql, parameters=params).result_rows]

    def fingerprint(self, key: str) -> dict[str, tuple[int, int]]:
        """Rows and a content hash of P in events and every current-state table."""
        out = {}
        for table in ["events", *(state_table(a) for a in self.spec.aggregates)]:
            columns = [
                r[0]
                for r in self.query(
                    "SELECT name FROM system.columns WHERE database = {db:String}"
                    " AND table = {t:String} AND name NOT LIKE 'kafka%%' ORDER BY position",
                    db=self.ddl.database,
                    t=table,
                )
            ]
            cols = ", ".join(f"`{c}`" for c in columns)
            ((n, h),) = self.query(
                f"SELECT count(), toString(sum(cityHash64({cols})))"
                f" FROM {self.ddl.table(table)} WHERE partition_key = {{k:String}}",
                k=key,
            )
            out[table] = (int(n), int(h or 0))
        return out


def _assert_checks_pass(estate: Estate, key: str) -> None:
    outcomes = estate.check(key)
    failed = {name: o.summary() for name, o in outcomes.items() if not o.passed}
    assert not failed, failed
    assert len(outcomes) == 5


@pytest.fixture
def topics(kafka: KafkaResource, unique: str) -> Iterator[tuple[KafkaResource, str]]:
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"c{unique}.")
    yield prefixed, progress_topic_spec(prefixed.topic_prefix, 1).name


def _ensure(prefixed: KafkaResource, spec: EstateSpec) -> list[str]:
    specs = domain_topic_specs(
        prefixed.topic_prefix,
        partitions=3,
        replication_factor=1,
        min_insync_replicas=1,
        retention_days=1,
        compaction=False,
        message_max_bytes=1_000_000,
        names=spec.topics.values(),
    )
    progress = progress_topic_spec(prefixed.topic_prefix, 1)
    ensure_topics(prefixed.admin(), [*specs, progress])
    return [s.name for s in [*specs, progress]]


@pytest.fixture
def shop(
    postgres_url: str,
    topics: tuple[KafkaResource, str],
    clickhouse: ClickHouseResource,
    unique: str,
) -> Iterator[tuple[Estate, ShopEstate]]:
    prefixed, progress = topics
    with shop_estate(postgres_url) as shop_db:
        names = _ensure(prefixed, shop_db.spec)
        estate = Estate(
            shop_db.spec,
            shop_db.estate_url,
            shop_db.monolith_url,
            prefixed,
            clickhouse,
            DdlOptions(database=f"shop_{unique}"),
            progress,
            f"analytics-{unique}",
            SHOP_NOW,
        )
        try:
            yield estate, shop_db
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(estate.ddl))
            prefixed.admin().delete_topics(names)


def test_shop_every_partition_loads_typed_and_checks_pass_through_deletes(
    shop: tuple[Estate, ShopEstate],
) -> None:
    estate, shop_db = shop
    for key in shop_db.keys:
        estate.migrate(key)
    days = [k for k in shop_db.keys if k != "reference"]
    results = {key: estate.load(key) for key in days}
    for key, result in results.items():
        assert result.source == "kafka", key
        assert result.rows > 0, key
        _assert_checks_pass(estate, key)
    # reference data through its own Dagster asset: the `reference` partition of every table
    daily, reference = build_clickhouse_assets(estate.spec)
    assert reference.key == dg.AssetKey(["clickhouse", "reference"])
    with dg.instance_for_test() as instance:
        run = dg.materialize(
            [reference],
            instance=instance,
            resources={
                "clickhouse": estate.clickhouse,
                "kafka": estate.kafka,
                "postgres": PostgresResource(url=estate.estate_url),
            },
            run_config=dg.RunConfig(
                {
                    "clickhouse__reference": {
                        "config": {"database": estate.ddl.database, "consumer_group": estate.group}
                    }
                }
            ),
        )
        assert run.success
        (mat,) = run.asset_materializations_for_node("clickhouse__reference")
    countries = mat.metadata["rows_per_table"].value["country_state"]  # type: ignore[index]
    assert countries > 0 and mat.metadata["source"].value == "kafka"
    _assert_checks_pass(estate, "reference")
    assert estate.query(
        f"SELECT count() FROM {estate.ddl.table('country_state')} FINAL"
        " WHERE partition_key = 'reference'"
    ) == [(countries,)]
    assert estate.query(
        f"SELECT count() FROM {estate.ddl.table('country_state')} WHERE partition_key != 'reference'"
    ) == [(0,)]

    # typed current state: Postgres types through the one mapping table
    types = dict(
        estate.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String}"
            " AND table = 'account_state'",
            db=estate.ddl.database,
        )
    )
    assert types["_version"] == "UInt64" and types["_is_deleted"] == "UInt8"
    assert types["signed_up_at"] == "Nullable(DateTime64(6, 'UTC'))"
    assert types["email"] == "Nullable(String)"
    assert types["preferences"] == "Nullable(String)"  # JSON kept as its text
    day = SHOP_DAYS[1].isoformat()
    with psycopg.connect(shop_db.owner_url) as conn:
        sample = conn.execute(
            "SELECT id::text, email, signed_up_at FROM shop.accounts"
            " WHERE signed_up_at::date = %s AND deleted_at IS NULL AND email IS NOT NULL"
            " AND display_name NOT LIKE %s ORDER BY id LIMIT 1",
            (day, "%\x07%"),
        ).fetchone()
    assert sample is not None
    ((email, signed_up),) = estate.query(
        f"SELECT email, signed_up_at FROM {estate.ddl.table('account_state')} FINAL"
        " WHERE _row_id = {r:String}",
        r=sample[0],
    )
    assert email == sample[1]
    assert signed_up.replace(tzinfo=None) == sample[2].replace(tzinfo=None).astimezone(
        None
    ).replace(tzinfo=None) or signed_up.timestamp() == pytest.approx(sample[2].timestamp())

    # a hard delete (an order and its lines) and a soft delete (an account)
    before = estate.fingerprint(day)
    with psycopg.connect(shop_db.owner_url) as conn:
        order = conn.execute(
            "SELECT o.account_id, o.order_no, count(l.*) FROM shop.orders o"
            " JOIN shop.order_lines l USING (account_id, order_no)"
            " WHERE o.placed_at::date = %s AND o.total >= 0 AND o.shipped_at IS NULL"
            " GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1",
            (day,),
        ).fetchone()
        assert order is not None
        conn.execute(
            "DELETE FROM shop.orders WHERE account_id = %s AND order_no = %s", (order[0], order[1])
        )
        conn.execute(
            "UPDATE shop.accounts SET deleted_at = %s, modified_at = %s WHERE id = %s",
            (SHOP_NOW, SHOP_NOW, sample[0]),
        )
        conn.commit()
    estate.migrate(day)
    estate.load(day)
    _assert_checks_pass(estate, day)
    order_id = f"{order[0]}|{order[1]}"
    state = estate.ddl.table
    assert estate.query(
        f"SELECT count() FROM {state('order_state')} FINAL WHERE _row_id = {{r:String}}", r=order_id
    ) == [(0,)]
    assert estate.query(
        f"SELECT count() FROM {state('order_line_state')} FINAL"
        " WHERE startsWith(_row_id, {r:String})",
        r=order_id + "|",
    ) == [(0,)]
    assert estate.query(
        f"SELECT count() FROM {state('account_state')} FINAL WHERE _row_id = {{r:String}}",
        r=sample[0],
    ) == [(0,)]
    # without FINAL the deletes stay as tombstones: one row per source row, latest version
    assert estate.query(
        f"SELECT _is_deleted, email FROM {state('account_state')} WHERE _row_id = {{r:String}}",
        r=sample[0],
    ) == [(1, sample[1])]
    assert estate.query(
        f"SELECT max(c) FROM (SELECT count() AS c FROM {state('order_line_state')}"
        " WHERE partition_key = {k:String} GROUP BY _row_id)",
        k=day,
    ) == [(1,)]
    after = estate.fingerprint(day)
    assert after["account_state"][0] == before["account_state"][0]  # tombstone, same rows
    assert after["events"][0] > before["events"][0]
    # a re-run converges: same rows, same content
    estate.load(day)
    assert estate.fingerprint(day) == after
    _assert_checks_pass(estate, day)


@pytest.fixture
def sample(
    postgres_url: str,
    topics: tuple[KafkaResource, str],
    clickhouse: ClickHouseResource,
    unique: str,
) -> Iterator[Estate]:
    prefixed, progress = topics
    spec = current_spec()
    with seeded_database(postgres_url, days=1, scale=0.15) as url:
        names = _ensure(prefixed, spec)
        estate = Estate(
            spec,
            url,
            url,
            prefixed,
            clickhouse,
            DdlOptions(database=f"sample_{unique}"),
            progress,
            f"analytics-{unique}",
        )
        try:
            yield estate
        finally:
            with clickhouse.client() as c:
                c.command(drop_database_sql(estate.ddl))
            prefixed.admin().delete_topics(names)


def test_sample_day_user_analytics_and_a_hard_delete(sample: Estate) -> None:
    key = START_DAY.isoformat()
    sample.migrate(key)
    first = sample.load(key, track_events=True)
    assert first.source == "kafka" and first.rows > 0
    with psycopg.connect(sample.estate_url) as conn:
        (outbox,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM eventstore.outbox WHERE partition_key = %s", (key,)
        ).fetchone()
        (tracked,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM microservices.service_processing sp"
            " JOIN eventstore.events e USING (event_id)"
            " WHERE sp.service = 'analytics-service' AND sp.status = 'succeeded'"
            " AND e.partition_key = %s",
            (key,),
        ).fetchone()
    assert first.rows == outbox == tracked
    # the user's analytics folder: tables, views and a derived table rebuilt in the same swap
    for table in ("event_counts_daily", "documents_status_daily", "document_processing"):
        assert first.swap.rows[table] > 0, table
    assert sample.query(
        f"SELECT sum(events) FROM {sample.ddl.table('event_counts_daily')}"
        " WHERE partition_key = {k:String}",
        k=key,
    ) == [(first.rows,)]
    _assert_checks_pass(sample, key)

    with psycopg.connect(sample.monolith_url) as conn:
        (page_id,) = conn.execute(  # type: ignore[misc]
            "SELECT id FROM monolith.ocr_pages WHERE created_at::date = %s ORDER BY id LIMIT 1",
            (key,),
        ).fetchone()
        conn.execute("DELETE FROM monolith.ocr_pages WHERE id = %s", (page_id,))
        conn.commit()
    live_before = sample.query(
        f"SELECT count() FROM {sample.ddl.table('ocr_page_state')} FINAL"
        " WHERE partition_key = {k:String}",
        k=key,
    )[0][0]
    sample.migrate(key)
    sample.load(key)
    assert sample.query(
        f"SELECT count() FROM {sample.ddl.table('ocr_page_state')} FINAL"
        " WHERE partition_key = {k:String}",
        k=key,
    ) == [(live_before - 1,)]
    assert sample.query(
        f"SELECT _is_deleted FROM {sample.ddl.table('ocr_page_state')}"
        " WHERE _row_id = {r:String}",
        r=str(page_id),
    ) == [(1,)]
    once = sample.fingerprint(key)
    sample.load(key)
    assert sample.fingerprint(key) == once
    _assert_checks_pass(sample, key)


def test_a_broken_view_target_and_a_lost_delete_fail_their_checks(sample: Estate) -> None:
    key = START_DAY.isoformat()
    sample.migrate(key)
    sample.load(key, track_events=False)
    _assert_checks_pass(sample, key)
    with sample.clickhouse.client() as c:
        c.command(
            f"INSERT INTO {sample.ddl.table('event_counts_daily')}"
            " VALUES ({k:String}, 'Invented', 0, 1)",
            parameters={"k": key},
        )
        c.command(
            f"ALTER TABLE {sample.ddl.table('customer_state')} DELETE WHERE _row_id IN"
            f" (SELECT _row_id FROM {sample.ddl.table('customer_state')}"
            " WHERE partition_key = {k:String} ORDER BY _row_id LIMIT 1)"
            " SETTINGS mutations_sync = 2",
            parameters={"k": key},
        )
    outcomes = sample.check(key)
    assert not outcomes["clickhouse.views_match_rebuild"].passed
    assert "event_counts_daily" in outcomes["clickhouse.views_match_rebuild"].offending[0]
    assert not outcomes["clickhouse.current_state"].passed
    assert "customer_state" in outcomes["clickhouse.current_state"].offending[0]
    assert outcomes["clickhouse.matches_event_store"].passed
    sample.load(key, track_events=False)  # the next swap repairs both
    _assert_checks_pass(sample, key)
