"""Ranges of partitions in one run, and estates partitioned by week or month.

A range run writes exactly what partition-by-partition runs write, skips what is complete
when run again, and converges after a kill -9 in the middle; a weekly shop migrates whole.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from strangler.checks.event_store import check_monolith_accounted
from strangler.migration.partition_run import PartitionMigration, RunOptions
from strangler.migration.ranges import migrate_range
from strangler.sensors.backfill import changed_partitions, migrated_versions, partition_versions
from strangler.settings import SAMPLE_SPEC
from strangler.spec import EstateSpec, load_spec
from tests.schemas.shop import SPEC

from .migration_helpers import START_DAY, seeded_database, store_fingerprint
from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate

RANGE = [(SHOP_DAYS[0] + timedelta(days=d)).isoformat() for d in range(-2, 4)]
"""Two empty days before the shop's three days and one after."""


def weekly_spec(tmp_path: Path, granularity: str = "weekly") -> EstateSpec:
    """The shop's spec with `estate.partitions` set, copied beside nothing else."""
    text = SPEC.read_text().replace(
        "  first_partition: 2026-05-01\n",
        f"  first_partition: 2026-05-01\n  partitions: {granularity}\n",
    )
    path = tmp_path / "strangler.yaml"
    path.write_text(text)
    return load_spec(path)


def events_by_partition(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT partition_key, count(*) FROM eventstore.events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {str(k): int(n) for k, n in rows}


@pytest.fixture
def shops(postgres_url: str) -> Iterator[tuple[ShopEstate, ShopEstate]]:
    with shop_estate(postgres_url) as ranged, shop_estate(postgres_url) as single:
        yield ranged, single


def test_a_range_run_equals_partition_by_partition_runs_and_skips_when_rerun(
    shops: tuple[ShopEstate, ShopEstate],
) -> None:
    ranged, single = shops
    for key in RANGE:
        PartitionMigration(
            single.estate_url,
            key,
            spec=single.spec,
            source_conninfo=single.monolith_url,
            now=SHOP_NOW,
        ).run()
    outcomes = migrate_range(
        ranged.estate_url,
        RANGE,
        spec=ranged.spec,
        source_conninfo=ranged.monolith_url,
        run_id="range-test",
        now=SHOP_NOW,
    )
    assert [o.partition_key for o in outcomes] == RANGE
    kinds = {o.partition_key: o.outcome for o in outcomes}
    assert [kinds[k] for k in RANGE] == [
        "empty",
        "empty",
        "migrated",
        "migrated",
        "migrated",
        "empty",
    ]
    for o in outcomes:
        assert o.result.migrated + o.result.failed == o.result.source_rows
    assert store_fingerprint(ranged.estate_url) == store_fingerprint(single.estate_url)
    assert events_by_partition(ranged.estate_url) == events_by_partition(single.estate_url)
    with psycopg.connect(ranged.estate_url) as conn:
        runs = conn.execute(
            "SELECT partition_key, run_id, status FROM migration_state.migration_runs"
        ).fetchall()
        checkpoints = conn.execute(
            "SELECT partition_key, position ->> 'status' FROM migration_state.migration_checkpoints"
            " ORDER BY 1"
        ).fetchall()
    # the three days ran as one batch; its run row gave way to a finished row per day
    assert sorted(runs) == [(k, f"range-test:{k}", "succeeded") for k in RANGE[2:5]]
    assert checkpoints == [(k, "completed") for k in RANGE]

    again = migrate_range(
        ranged.estate_url,
        RANGE,
        spec=ranged.spec,
        source_conninfo=ranged.monolith_url,
        run_id="range-again",
        now=SHOP_NOW,
    )
    assert {o.outcome for o in again} == {"unchanged"}  # empty days got completed checkpoints
    assert [o.result.source_rows for o in again] == [o.result.source_rows for o in outcomes]
    assert store_fingerprint(ranged.estate_url) == store_fingerprint(single.estate_url)

    with psycopg.connect(ranged.owner_url) as conn:  # a late edit: only its day runs again
        conn.execute(
            "UPDATE shop.accounts SET display_name = 'Edited', modified_at = %s"
            " WHERE id = (SELECT id FROM shop.accounts WHERE signed_up_at::date = %s LIMIT 1)",
            (SHOP_NOW, SHOP_DAYS[0]),
        )
    edited = migrate_range(
        ranged.estate_url,
        RANGE,
        spec=ranged.spec,
        source_conninfo=ranged.monolith_url,
        run_id="range-edit",
        now=SHOP_NOW,
    )
    assert [o.partition_key for o in edited if o.outcome == "migrated"] == [RANGE[2]]


_CHILD = textwrap.dedent(
    """
    import sys
    from strangler.migration.partition_run import RunOptions
    from strangler.migration.ranges import migrate_range
    from strangler.spec import load_spec
    from tests.schemas.shop import SPEC
    from tests.integration.shop_helpers import SHOP_NOW
    migrate_range(sys.argv[1], sys.argv[3].split(","), spec=load_spec(SPEC),
                  source_conninfo=sys.argv[2], run_id="killed", options=RunOptions(batch_size=2),
                  now=SHOP_NOW)
    """
)


def test_kill_9_mid_range_then_rerun_converges(shops: tuple[ShopEstate, ShopEstate]) -> None:
    victim, reference = shops
    migrate_range(
        reference.estate_url,
        RANGE,
        spec=reference.spec,
        source_conninfo=reference.monolith_url,
        run_id="whole",
        now=SHOP_NOW,
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, victim.estate_url, victim.monolith_url, ",".join(RANGE)]
    )
    deadline = time.monotonic() + 60
    second_day = RANGE[3]
    while time.monotonic() < deadline and child.poll() is None:
        with psycopg.connect(victim.estate_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM eventstore.events WHERE partition_key = %s", (second_day,)
            ).fetchone()
        if row and row[0] > 5:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the range finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    resumed = migrate_range(
        victim.estate_url,
        RANGE,
        spec=victim.spec,
        source_conninfo=victim.monolith_url,
        run_id="resumed",
        options=RunOptions(batch_size=2),
        now=SHOP_NOW,
    )
    kinds = {o.partition_key: o.outcome for o in resumed}
    assert [kinds[k] for k in RANGE[2:5]] == ["migrated"] * 3
    for outcome in resumed:
        result = outcome.result
        assert result.migrated + result.failed == result.source_rows
        if outcome.outcome == "migrated":  # the batch went on from its checkpoint
            assert result.resumed_from is not None
    assert store_fingerprint(victim.estate_url) == store_fingerprint(reference.estate_url)


def test_a_weekly_shop_migrates_in_one_partition_per_week(
    postgres_url: str, tmp_path: Path
) -> None:
    spec = weekly_spec(tmp_path)
    assert spec.estate.partitions == "weekly"
    week = SHOP_DAYS[0].isoformat()  # the shop's days start on a Monday
    assert date.fromisoformat(week).weekday() == 0
    with shop_estate(postgres_url) as shop, shop_estate(postgres_url) as daily:
        outcomes = migrate_range(
            shop.estate_url,
            ["2026-04-27", week],
            spec=spec,
            source_conninfo=shop.monolith_url,
            run_id="weekly",
            now=SHOP_NOW,
        )
        assert [(o.partition_key, o.outcome) for o in outcomes] == [
            ("2026-04-27", "empty"),
            (week, "migrated"),
        ]
        result = outcomes[1].result
        daily_rows = sum(
            PartitionMigration(
                daily.estate_url,
                key.isoformat(),
                spec=daily.spec,
                source_conninfo=daily.monolith_url,
                now=SHOP_NOW,
            )
            .run()
            .source_rows
            for key in SHOP_DAYS
        )
        assert result.source_rows == daily_rows > 0
        day_counts = events_by_partition(daily.estate_url)
        assert events_by_partition(shop.estate_url) == {week: sum(day_counts.values())}
        with psycopg.connect(shop.estate_url) as conn, psycopg.connect(shop.monolith_url) as mono:
            assert check_monolith_accounted(conn, week, spec=spec, monolith=mono).passed
            day = conn.execute("SELECT DISTINCT partition_day FROM eventstore.outbox").fetchall()
        assert day == [(SHOP_DAYS[0],)]
        # the late-data sensor's rule, per week: unchanged now, the week once a row is edited
        with psycopg.connect(shop.monolith_url) as mono, psycopg.connect(shop.estate_url) as conn:
            migrated = migrated_versions(conn)
            assert changed_partitions(partition_versions(mono, spec), migrated, {}) == []
        with psycopg.connect(shop.owner_url) as owner:
            owner.execute(
                "UPDATE shop.accounts SET display_name = 'Late', modified_at = %s"
                " WHERE id = (SELECT id FROM shop.accounts WHERE signed_up_at::date = %s LIMIT 1)",
                (SHOP_NOW, SHOP_DAYS[2]),
            )
        with psycopg.connect(shop.monolith_url) as mono:
            assert changed_partitions(partition_versions(mono, spec), migrated, {}) == [week]


def test_a_monthly_sample_migrates_in_one_partition_per_month(
    postgres_url: str, tmp_path: Path
) -> None:
    """The sample under `partitions: monthly`: its days land in their month's partition, the
    accounted check passes there, and the late-data rule sees the month."""
    sample = SAMPLE_SPEC.read_text()
    first = next(line for line in sample.splitlines() if "first_partition:" in line)
    path = tmp_path / "strangler.yaml"
    path.write_text(sample.replace(first, f"{first}\n  partitions: monthly"))
    spec = load_spec(path)
    month = START_DAY.replace(day=1).isoformat()
    with seeded_database(postgres_url, days=2, scale=0.05) as url:
        outcomes = migrate_range(url, [month], spec=spec, run_id="monthly")
        result = outcomes[0].result
        assert result.source_rows > 0 and result.migrated + result.failed == result.source_rows
        with psycopg.connect(url) as conn:
            assert check_monolith_accounted(conn, month, spec=spec, monolith=conn).passed
            keys = conn.execute("SELECT DISTINCT partition_key FROM eventstore.events").fetchall()
            assert keys == [(month,)]
            versions = partition_versions(conn, spec)
            assert changed_partitions(versions, migrated_versions(conn), {}) == []
            assert month in versions
