"""A monolith unlike the sample (the test shop), migrated by its spec into the event store and
Kafka: read-only source in another database, composite and uuid keys, a child dated by its
parent, reference data, rules, soft and hard deletes, change events, checks, kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from strangler.checks.event_store import check_monolith_accounted, check_store_versions
from strangler.checks.kafka import check_kafka_day
from strangler.migration.outbox_relay import DayRelay
from strangler.migration.partition_run import PartitionMigration, PartitionResult, RunOptions
from strangler.migration.topics import domain_topic_specs, ensure_topics, progress_topic_spec
from strangler.resources.kafka import KafkaResource
from strangler.spec import parse_spec
from strangler.spec.catalog import load_catalog, oldest_day, read_only
from strangler.spec.check import check_spec
from strangler.spec.init import draft_spec, own_day_columns

from .migration_helpers import store_fingerprint
from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate


def migrate(shop: ShopEstate, key: str, **options: Any) -> PartitionResult:
    return PartitionMigration(
        shop.estate_url,
        key,
        spec=shop.spec,
        source_conninfo=shop.monolith_url,
        options=RunOptions(**options),
        now=SHOP_NOW,
    ).run()


def migrate_all(shop: ShopEstate, **options: Any) -> list[PartitionResult]:
    return [migrate(shop, key, **options) for key in shop.keys]


def _events(shop: ShopEstate, where: str = "TRUE") -> list[tuple[Any, ...]]:
    with psycopg.connect(shop.estate_url) as conn:
        return conn.execute(
            "SELECT event_type, aggregate_type, aggregate_id, metadata ->> 'source_id', payload"
            f" FROM eventstore.events WHERE {where} ORDER BY position"  # noqa: S608
        ).fetchall()


@pytest.fixture
def shop(postgres_url: str) -> Iterator[ShopEstate]:
    with shop_estate(postgres_url) as estate:
        yield estate


def test_every_row_is_migrated_or_failed_with_its_rule_and_column(shop: ShopEstate) -> None:
    results = migrate_all(shop, batch_size=7)
    for result in results:
        assert result.source_rows > 0
        assert result.migrated + result.failed == result.source_rows
    with psycopg.connect(shop.estate_url) as conn:
        failed = conn.execute(
            "SELECT source_table, source_key, rule, reason FROM migration_state.failed_entities"
        ).fetchall()
        for key in shop.keys:
            with psycopg.connect(shop.monolith_url) as monolith:
                outcome = check_monolith_accounted(conn, key, spec=shop.spec, monolith=monolith)
            assert outcome.passed, outcome
            versions = check_store_versions(conn, key)
            assert versions.passed, versions
    found = {(t, k): (rule, reason) for t, k, rule, reason in failed}
    assert set(found) == set(shop.dirt.rows)
    for where, (rule, column) in shop.dirt.rows.items():
        assert found[where][0] == rule
        assert found[where][1].startswith(f"{rule} on {column}"), found[where]
    assert sum(r.failed for r in results) == len(shop.dirt.rows)
    types = Counter(e[0] for e in _events(shop))
    assert {"CountryImported", "AccountImported", "OrderImported", "OrderLineImported"} <= set(
        types
    )
    assert types["OrderShipped"] > 0 and types["OrderCancelled"] > 0
    assert types["AccountUpgradedToBusiness"] > 0
    assert types["AccountDeleted"] > 0, "accounts seeded with deleted_at set are deleted"
    lines = _events(shop, "event_type = 'OrderLineImported'")
    assert all(e[1] == "Order" and e[3].startswith(e[2] + "|") for e in lines)
    again = migrate_all(shop)
    assert sum(r.events_written for r in again) == 0


def test_the_source_role_can_only_read(shop: ShopEstate) -> None:
    with (
        psycopg.connect(shop.monolith_url) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("DELETE FROM shop.countries")


def test_deletes_and_changes_become_events_exactly_once(shop: ShopEstate) -> None:
    migrate_all(shop)
    day = SHOP_DAYS[1].isoformat()
    with psycopg.connect(shop.owner_url) as conn:
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
        account = conn.execute(
            "SELECT id FROM shop.accounts WHERE signed_up_at::date = %s AND deleted_at IS NULL"
            " AND email IS NOT NULL AND display_name NOT LIKE %s ORDER BY id LIMIT 2",
            (day, "%\x07%"),
        ).fetchall()
        conn.execute(
            "UPDATE shop.accounts SET deleted_at = %s, modified_at = %s WHERE id = %s",
            (SHOP_NOW, SHOP_NOW, account[0][0]),
        )
        conn.execute(
            "UPDATE shop.accounts SET display_name = 'Renamed', modified_at = %s WHERE id = %s",
            (SHOP_NOW, account[1][0]),
        )
        conn.commit()
    first = migrate(shop, day)
    assert first.deleted == 1 + order[2]
    second = migrate(shop, day)
    assert second.events_written == 0 and second.deleted == 0
    order_id = f"{order[0]}|{order[1]}"
    deleted = _events(shop, f"aggregate_id = '{order_id}' AND event_type LIKE '%%Deleted'")
    assert Counter(e[0] for e in deleted) == {"OrderDeleted": 1, "OrderLineDeleted": order[2]}
    soft = _events(shop, f"aggregate_id = '{account[0][0]}' AND event_type = 'AccountDeleted'")
    assert len(soft) == 1
    changed = _events(shop, f"aggregate_id = '{account[1][0]}' AND event_type = 'AccountChanged'")
    assert [e[4] for e in changed] == [
        {"display_name": "Renamed", "modified_at": SHOP_NOW.isoformat()}
    ]
    with psycopg.connect(shop.estate_url) as conn, psycopg.connect(shop.monolith_url) as monolith:
        assert check_monolith_accounted(conn, day, spec=shop.spec, monolith=monolith).passed


def test_the_shop_reaches_kafka_and_the_kafka_checks_pass(
    shop: ShopEstate, kafka: KafkaResource, unique: str
) -> None:
    prefixed = KafkaResource(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"s{unique}.")
    migrate_all(shop, topic_prefix=prefixed.topic_prefix)
    topics = shop.spec.topics
    specs = domain_topic_specs(
        prefixed.topic_prefix,
        partitions=3,
        replication_factor=1,
        min_insync_replicas=1,
        retention_days=1,
        compaction=False,
        message_max_bytes=1_000_000,
        names=topics.values(),
    )
    progress = progress_topic_spec(prefixed.topic_prefix, 1)
    ensure_topics(prefixed.admin(), [*specs, progress])
    try:
        for key in shop.keys:
            results = DayRelay(
                shop.estate_url,
                prefixed,
                key,
                [prefixed.topic(t) for t in topics.values()],
                progress.name,
            ).run()
            assert sum(r.published for r in results) > 0, key
            with psycopg.connect(shop.estate_url) as conn:
                outcomes = check_kafka_day(
                    conn,
                    prefixed.consumer,
                    key,
                    topic_prefix=prefixed.topic_prefix,
                    spec_topics=topics,
                    idle_timeout_s=10,
                )
            assert outcomes.matches.passed, outcomes.matches
            assert outcomes.ordered.passed, outcomes.ordered
    finally:
        prefixed.admin().delete_topics([s.name for s in [*specs, progress]])


_CHILD = textwrap.dedent(
    """
    import sys
    from strangler.migration.partition_run import PartitionMigration, RunOptions
    from strangler.spec import load_spec
    from tests.schemas.shop import SPEC
    from tests.integration.shop_helpers import SHOP_NOW
    PartitionMigration(sys.argv[1], sys.argv[3], spec=load_spec(SPEC), source_conninfo=sys.argv[2],
                       options=RunOptions(batch_size=3), now=SHOP_NOW).run()
    """
)


def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(postgres_url: str) -> None:
    with shop_estate(postgres_url) as reference, shop_estate(postgres_url) as victim:
        for key in reference.keys:
            migrate(reference, key, batch_size=3)
        day = SHOP_DAYS[0].isoformat()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, victim.estate_url, victim.monolith_url, day]
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            with psycopg.connect(victim.estate_url) as conn:
                row = conn.execute("SELECT count(*) FROM eventstore.events").fetchone()
            if row and row[0] > 20:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
        for key in victim.keys:
            final = migrate(victim, key, batch_size=3)
            assert final.migrated + final.failed == final.source_rows
        assert store_fingerprint(victim.estate_url) == store_fingerprint(reference.estate_url)


def test_a_drafted_spec_checks_and_migrates_the_shop(shop: ShopEstate) -> None:
    """`strangler spec init`'s draft, unedited, passes `spec check` and migrates every partition."""
    catalog = load_catalog(shop.monolith_url, ["shop"])
    with read_only(shop.monolith_url) as conn:
        first = oldest_day(conn, own_day_columns(catalog, ["shop"]))
    draft = parse_spec(draft_spec(catalog, ["shop"], first_partition=first), "draft.yaml")
    assert check_spec(draft, catalog) == []
    keys = ["reference", *(d.isoformat() for d in SHOP_DAYS)]
    for key in keys:
        result = PartitionMigration(
            shop.estate_url, key, spec=draft, source_conninfo=shop.monolith_url, now=SHOP_NOW
        ).run()
        assert result.source_rows > 0 and result.migrated + result.failed == result.source_rows
    with psycopg.connect(shop.estate_url) as conn, psycopg.connect(shop.monolith_url) as monolith:
        for key in keys:
            assert check_monolith_accounted(conn, key, spec=draft, monolith=monolith).passed


def test_a_checkpoint_of_the_hand_written_migration_restarts_the_partition(
    shop: ShopEstate,
) -> None:
    """An upgrade mid-run: the old checkpoint has no running counts, so the day is read from
    its start (idempotent) and the counts stay right."""
    day = SHOP_DAYS[0].isoformat()
    whole = migrate(shop, day)
    with psycopg.connect(shop.estate_url) as conn:
        conn.execute(
            "UPDATE migration_state.migration_checkpoints SET position = %s"
            " WHERE migration = 'event_store' AND partition_key = %s",
            (psycopg.types.json.Jsonb({"table": "orders", "last_id": 3, "status": "running"}), day),
        )
        conn.commit()
    again = migrate(shop, day)
    assert again.resumed_from is None
    assert (again.migrated, again.failed, again.events_written) == (whole.migrated, whole.failed, 0)
