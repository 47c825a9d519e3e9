"""Schema drift on a real monolith (the shop, read by a role that can only SELECT): the first
run records the column baseline; a column added since then warns and is carried, one dropped
or retyped fails the Dagster check and stops the run before it writes anything, until the
spec says what to do with it. And the sample's first run records a baseline with no drift."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from strangler.assets.monolith import build_monolith_sources
from strangler.checks.source_drift import CHECK_NAME, build_source_drift_checks
from strangler.migration.drift import NO_BASELINE, SchemaDriftError
from strangler.migration.partition_run import PartitionMigration, PartitionResult, RunOptions
from strangler.resources.postgres import PostgresResource
from strangler.settings import SAMPLE_SPEC
from strangler.spec import EstateSpec, load_spec, parse_spec
from tests.schemas.shop import SPEC as SHOP_SPEC

from .migration_helpers import START_DAY, seeded_database, store_fingerprint
from .shop_helpers import SHOP_DAYS, SHOP_NOW, ShopEstate, shop_estate

pytestmark = pytest.mark.integration

DAY0, DAY1 = (d.isoformat() for d in SHOP_DAYS[:2])
ORDERS_SOURCE = "source: {schema: shop, table: orders, primary_key: [account_id, order_no]}"
TOTAL_RULES = "      total: {required: true, min: 0}"


@pytest.fixture
def shop(postgres_url: str) -> Iterator[ShopEstate]:
    with shop_estate(postgres_url) as estate:
        yield estate


def _edited_spec(old: str, new: str) -> EstateSpec:
    text = SHOP_SPEC.read_text()
    assert text.count(old) == 1, old
    return parse_spec(text.replace(old, new))


def migrate(
    shop: ShopEstate, key: str, spec: EstateSpec | None = None, **options: Any
) -> tuple[PartitionResult, list[str]]:
    said: list[str] = []
    result = PartitionMigration(
        shop.estate_url,
        key,
        spec=spec or shop.spec,
        source_conninfo=shop.monolith_url,
        options=RunOptions(**options),
        report=said.append,
        now=SHOP_NOW,
    ).run()
    return result, [s for s in said if "schema drift" in s]


def run_checks(spec: EstateSpec, estate_url: str, monolith_url: str) -> dict[str, Any]:
    """Execute every `schema_unchanged` check of the spec in Dagster; table -> evaluation."""
    checks = build_source_drift_checks(spec)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*build_monolith_sources(spec), *checks],
            selection=dg.AssetSelection.checks(*checks),
            instance=instance,
            resources={
                "postgres": PostgresResource(url=estate_url),
                "monolith": PostgresResource(url=monolith_url, read_only=True),
            },
        )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {CHECK_NAME}
    return {e.asset_key.path[-1]: e for e in evaluations}


def _owner(shop: ShopEstate, statement: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(shop.owner_url) as conn:
        conn.execute(statement, params)
        conn.commit()


def _baseline(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (t, c, p)
            for t, c, p in conn.execute(
                "SELECT source_table, column_name, pg_type FROM migration_state.source_columns"
                " ORDER BY 1, 2"
            )
        ]


def _written(url: str) -> dict[str, Any]:
    """Everything a run writes, its bookkeeping included."""
    with psycopg.connect(url) as conn:
        bookkeeping = {
            table: conn.execute(f"SELECT count(*) FROM migration_state.{table}").fetchone()  # noqa: S608
            for table in ("migration_runs", "migration_checkpoints", "migration_metrics")
        }
    return {**store_fingerprint(url), **bookkeeping, "baseline": _baseline(url)}


def test_the_first_run_records_the_baseline(shop: ShopEstate) -> None:
    before = run_checks(shop.spec, shop.estate_url, shop.monolith_url)
    assert set(before) == {"countries", "accounts", "orders", "order_lines"}
    for evaluation in before.values():
        assert evaluation.passed
        assert evaluation.metadata["baseline"].value == NO_BASELINE

    _, drift_said = migrate(shop, DAY0)
    assert drift_said == []
    baseline = _baseline(shop.estate_url)
    assert {t for t, _, _ in baseline} == {"shop.accounts", "shop.orders", "shop.order_lines"}
    assert ("shop.orders", "total", "numeric") in baseline
    assert ("shop.accounts", "tier", "account_tier") in baseline
    assert ("shop.orders", "tags", "_text") in baseline

    after = run_checks(shop.spec, shop.estate_url, shop.monolith_url)
    assert all(e.passed for e in after.values())
    assert "baseline" not in after["orders"].metadata
    assert after["orders"].metadata["dropped"].value == 0
    assert after["countries"].metadata["baseline"].value == NO_BASELINE


def test_an_added_column_warns_and_the_next_run_carries_it(shop: ShopEstate) -> None:
    migrate(shop, DAY0)
    _owner(shop, "ALTER TABLE shop.accounts ADD COLUMN nickname text")

    check = run_checks(shop.spec, shop.estate_url, shop.monolith_url)["accounts"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["added"].value == 1 and check.metadata["dropped"].value == 0
    assert check.metadata["table"].value == "shop.accounts"
    findings = str(check.metadata["findings"].value)
    assert "shop.accounts.nickname: added (text)" in findings
    assert "carried from now on by the generic import/change events" in findings

    account = uuid.uuid4()
    at = datetime.combine(SHOP_DAYS[0], time(23), tzinfo=SHOP_NOW.tzinfo)
    _owner(
        shop,
        "INSERT INTO shop.accounts (id, email, display_name, country_code, signed_up_at,"
        " modified_at, nickname) VALUES (%s, 'nick@shop.test', 'Nick', 'NL', %s, %s, 'nicky')",
        (account, at, at + timedelta(minutes=1)),
    )
    result, drift_said = migrate(shop, DAY0)
    assert result.events_written >= 1
    assert len(drift_said) == 1 and "shop.accounts.nickname: added" in drift_said[0]
    with psycopg.connect(shop.estate_url) as conn:
        payload = conn.execute(
            "SELECT payload FROM eventstore.events"
            " WHERE aggregate_id = %s AND event_type = 'AccountImported'",
            (str(account),),
        ).fetchone()
    assert payload is not None and payload[0]["nickname"] == "nicky"
    assert ("shop.accounts", "nickname", "text") in _baseline(shop.estate_url)
    assert run_checks(shop.spec, shop.estate_url, shop.monolith_url)["accounts"].passed
    assert migrate(shop, DAY1)[1] == []


def test_a_dropped_column_fails_and_stops_the_run_until_excluded(shop: ShopEstate) -> None:
    migrate(shop, DAY0)
    _owner(shop, "ALTER TABLE shop.orders DROP COLUMN currency")

    check = run_checks(shop.spec, shop.estate_url, shop.monolith_url)["orders"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["dropped"].value == 1
    assert "shop.orders.currency: dropped" in str(check.metadata["findings"].value)
    assert "source.exclude" in str(check.description)

    before = _written(shop.estate_url)
    with pytest.raises(SchemaDriftError, match=r"orders\.currency") as refused:
        migrate(shop, DAY1)
    assert "source.exclude" in str(refused.value)
    assert _written(shop.estate_url) == before, "a refused run writes nothing"

    excluded = _edited_spec(ORDERS_SOURCE, ORDERS_SOURCE[:-1] + ", exclude: [currency]}")
    assert run_checks(excluded, shop.estate_url, shop.monolith_url)["orders"].passed
    result, drift_said = migrate(shop, DAY1, excluded)
    assert result.source_rows > 0 and result.migrated + result.failed == result.source_rows
    assert drift_said == []
    with psycopg.connect(shop.estate_url) as conn:
        payloads = conn.execute(
            "SELECT payload FROM eventstore.events"
            " WHERE event_type = 'OrderImported' AND partition_key = %s",
            (DAY1,),
        ).fetchall()
    assert payloads and all("currency" not in p[0] for p in payloads)


def test_a_retyped_column_fails_until_as_accepts_it(shop: ShopEstate) -> None:
    migrate(shop, DAY0)
    _owner(shop, "ALTER TABLE shop.orders ALTER COLUMN total TYPE float8")

    check = run_checks(shop.spec, shop.estate_url, shop.monolith_url)["orders"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["retyped"].value == 1
    assert "set columns.total.as: number or exclude it" in str(check.description)
    with pytest.raises(SchemaDriftError, match=r"orders\.total: retyped numeric -> float8"):
        migrate(shop, DAY1)

    accepted = _edited_spec(TOTAL_RULES, TOTAL_RULES[:-1] + ", as: number}")
    assert run_checks(accepted, shop.estate_url, shop.monolith_url)["orders"].passed
    result, drift_said = migrate(shop, DAY1, accepted)
    assert result.source_rows > 0 and drift_said == []
    assert ("shop.orders", "total", "numeric") in _baseline(shop.estate_url), "append-only"


def test_a_dry_run_records_nothing(shop: ShopEstate) -> None:
    migrate(shop, DAY0, dry_run=True)
    assert _baseline(shop.estate_url) == []


def test_the_sample_first_run_records_a_baseline_without_drift(postgres_url: str) -> None:
    spec = load_spec(SAMPLE_SPEC)
    with seeded_database(postgres_url, days=1, scale=0.1) as url:
        said: list[str] = []
        result = PartitionMigration(
            url, START_DAY, spec=spec, options=RunOptions(), report=said.append
        ).run()
        assert result.source_rows > 0
        assert not [s for s in said if "schema drift" in s]
        tables = {t for t, _, _ in _baseline(url)}
        assert tables == {a.source.qualified for a in spec.daily}
        checks = run_checks(spec, url, url)
        assert set(checks) == {a.source.table for a in spec.aggregates}
        for table, evaluation in checks.items():
            assert evaluation.passed, table
            assert evaluation.metadata["added"].value == 0
            assert evaluation.metadata["findings"].value == "none"
