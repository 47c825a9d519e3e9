"""Schema drift without a database: what `compare` finds and what each finding tells to do."""

from __future__ import annotations

from strangler.migration.drift import SchemaDriftError, compare, spec_mentions
from strangler.spec import load_spec, parse_spec
from strangler.spec.models import Aggregate
from tests.schemas.shop import SPEC as SHOP_SPEC

ORDERS = {
    "account_id": "uuid",
    "order_no": "int4",
    "placed_at": "timestamptz",
    "status": "order_status",
    "total": "numeric",
    "currency": "bpchar",
    "shipped_at": "timestamptz",
    "tags": "_text",
}


def _orders(**source: object) -> Aggregate:
    aggregate = load_spec(SHOP_SPEC).aggregate("Order")
    if source:
        return aggregate.model_copy(update={"source": aggregate.source.model_copy(update=source)})
    return aggregate


def _with_fields(fields: str) -> Aggregate:
    text = f"""\
version: 1
estate: {{name: tiny, first_partition: 2026-01-01}}
aggregates:
  - name: Order
    source: {{schema: shop, table: orders, primary_key: [id], exclude: [secret]}}
    partitioning: {{time_column: placed_at}}
    topic: shop.orders
    events:
{fields}
"""
    return parse_spec(text).aggregate("Order")


def test_unchanged_columns_are_clean() -> None:
    drift = compare(_orders(), ORDERS, dict(ORDERS), enums={"order_status"})
    assert drift.clean and not drift.blocking
    assert (drift.added, drift.dropped, drift.retyped) == ([], [], [])
    assert drift.text() == ""


def test_an_added_column_warns_and_is_carried_by_generic_events() -> None:
    live = {**ORDERS, "coupon": "text"}
    drift = compare(_orders(), ORDERS, live)
    assert drift.added == ["coupon"] and not drift.blocking
    [finding] = drift.findings
    assert finding.kind == "added" and not finding.blocking
    assert finding.message.startswith("shop.orders.coupon: added (text)")
    assert "carried from now on by the generic import/change events" in finding.message


def test_an_added_column_with_explicit_import_fields_is_not_migrated() -> None:
    aggregate = _with_fields(
        "      import: {fields: {id: id, placed_at: placed_at}}\n      change: {enabled: false}"
    )
    recorded = {"id": "int4", "placed_at": "timestamptz"}
    drift = compare(aggregate, recorded, {**recorded, "coupon": "text"})
    assert "not migrated: add it to the event fields or to source.exclude" in drift.text()


def test_a_dropped_column_fails_and_names_source_exclude_and_the_spec_places() -> None:
    live = {c: t for c, t in ORDERS.items() if c != "total"}
    drift = compare(_orders(), ORDERS, live)
    assert drift.dropped == ["total"] and drift.blocking
    message = drift.text()
    assert message.startswith("shop.orders.total: dropped from the monolith (was numeric)")
    assert "add it to source.exclude (and drop it from fields/rules that name it)" in message
    assert "columns.total" in message
    assert "events.named[OrderCancelled].fields.total" in message


def test_a_dropped_column_the_spec_excludes_is_accepted() -> None:
    live = {c: t for c, t in ORDERS.items() if c != "currency"}
    assert compare(_orders(), ORDERS, live).blocking
    assert compare(_orders(exclude=["currency"]), ORDERS, live).clean


def test_a_retyped_column_fails_until_as_accepts_it() -> None:
    live = {**ORDERS, "total": "float8"}
    drift = compare(_orders(), ORDERS, live)
    assert drift.blocking and [(r.column, r.old, r.new) for r in drift.retyped] == [
        ("total", "numeric", "float8")
    ]
    assert drift.text() == (
        "shop.orders.total: retyped numeric -> float8; events carried it as decimal, the new"
        " type maps to number: set columns.total.as: number or exclude it (source.exclude)"
    )
    spec = load_spec(SHOP_SPEC)
    aggregate = spec.aggregate("Order")
    rules = aggregate.columns["total"].model_copy(update={"as_": "number"})
    accepted = aggregate.model_copy(update={"columns": {**aggregate.columns, "total": rules}})
    assert compare(accepted, ORDERS, live).clean


def test_a_retype_to_an_unmappable_type_says_so_and_an_enum_maps_to_string() -> None:
    to_tsvector = compare(_orders(), ORDERS, {**ORDERS, "currency": "tsvector"}).text()
    assert "maps to no JSON kind" in to_tsvector
    assert "set columns.currency.as: string or exclude it" in to_tsvector
    to_enum = compare(
        _orders(), ORDERS, {**ORDERS, "currency": "currency_code"}, enums={"currency_code"}
    )
    assert "the new type maps to string" in to_enum.text()


def test_excluded_columns_never_drift() -> None:
    aggregate = _with_fields("      named: []")
    recorded = {"id": "int4", "placed_at": "timestamptz", "secret": "text"}
    live = {"id": "int4", "placed_at": "timestamptz", "secret": "bytea"}
    assert compare(aggregate, recorded, live).clean
    assert compare(aggregate, recorded, {"id": "int4", "placed_at": "timestamptz"}).clean
    assert compare(aggregate, {"id": "int4", "placed_at": "timestamptz"}, live).clean


def test_findings_are_ordered_blocking_first_and_the_error_lists_every_blocking_one() -> None:
    live = {c: t for c, t in ORDERS.items() if c not in ("currency", "tags")}
    live |= {"total": "float8", "coupon": "text"}
    drift = compare(_orders(), ORDERS, live)
    assert [(f.kind, f.column) for f in drift.findings] == [
        ("dropped", "currency"),
        ("dropped", "tags"),
        ("retyped", "total"),
        ("added", "coupon"),
    ]
    error = SchemaDriftError([drift])
    assert isinstance(error, RuntimeError)
    text = str(error)
    assert "shop.orders.currency" in text and "shop.orders.tags" in text
    assert "shop.orders.total" in text and "coupon" not in text


def test_spec_mentions_lists_keys_rules_and_fields() -> None:
    orders = load_spec(SHOP_SPEC).aggregate("Order")
    assert spec_mentions(orders, "account_id") == [
        "source.primary_key",
        "parents[Account]",
        "events.named[OrderShipped].fields.account_id",
        "events.named[OrderCancelled].fields.account_id",
    ]
    assert spec_mentions(orders, "placed_at") == ["partitioning.time_column"]
    assert spec_mentions(orders, "currency") == []
