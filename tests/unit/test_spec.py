"""The spec without any service: loading with line numbers, the JSON Schema, the type mapping,
value conversion, and the drafting/checking logic over a catalog built in memory."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from strangler.settings import SAMPLE_SPEC
from strangler.spec import SpecError, load_spec, parse_spec
from strangler.spec.catalog import Catalog, Column, ForeignKey, Table, UniqueKey
from strangler.spec.check import check_spec, check_structure
from strangler.spec.init import aggregate_name, draft_spec
from strangler.spec.json_schema import REGENERATE, SCHEMA_FILE, render_schema
from strangler.spec.load import parse_spec_lines
from strangler.spec.types import json_kind, to_json
from tests.schemas.shop import SPEC as SHOP_SPEC

MINIMAL = """\
version: 1
estate:
  name: tiny
  first_partition: 2026-01-01
aggregates:
  - name: Order
    source: {schema: shop, table: orders, primary_key: [id]}
    partitioning: {time_column: placed_at}
    topic: shop.orders
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_sample_and_the_shop_load() -> None:
    sample = load_spec(SAMPLE_SPEC)
    shop = load_spec(SHOP_SPEC)
    assert [a.name for a in sample.aggregates] == [
        "Customer",
        "Document",
        "OcrPage",
        "ProcessingJob",
    ]
    assert [a.name for a in shop.aggregates] == ["Country", "Account", "Order", "OrderLine"]
    assert shop.topic_of("OrderLine") == "shop.orders"
    assert check_structure(sample) == [] and check_structure(shop) == []


def test_an_unknown_key_is_rejected_with_its_line() -> None:
    text = MINIMAL.replace("    topic: shop.orders\n", "    topic: shop.orders\n    topik: x\n")
    assert _problems(text) == ["spec.yaml:10: aggregates[0].topik: Extra inputs are not permitted"]
    nested = MINIMAL.replace("primary_key: [id]}", "primary_key: [id], updatd_at: u}")
    assert _problems(nested) == [
        "spec.yaml:7: aggregates[0].source.updatd_at: Extra inputs are not permitted"
    ]


def test_bad_yaml_names_its_line() -> None:
    text = MINIMAL.replace("topic: shop.orders", "topic: [shop.orders")
    (problem,) = _problems(text)
    assert problem.startswith("spec.yaml:10: not valid YAML: expected ',' or ']'")
    assert "flow sequence on line 9" in problem
    (control,) = _problems(MINIMAL.replace("name: tiny", "name: ti\x07ny"))
    assert control.startswith("spec.yaml:3: not valid YAML: unacceptable character")


def test_a_table_declared_twice() -> None:
    twice = MINIMAL + MINIMAL.split("aggregates:\n")[1].replace("name: Order", "name: Purchase")
    (problem,) = _problems(twice)
    assert "table shop.orders is declared twice" in problem


def test_a_parent_declared_after_its_child() -> None:
    child = """\
  - name: OrderLine
    source: {schema: shop, table: order_lines, primary_key: [order_id, line_no]}
    partitioning: {parent: Order}
    topic: shop.order_lines
    parents:
      - {aggregate: Order, columns: [order_id]}
"""
    head, order = MINIMAL.split("aggregates:\n")
    (problem,) = _problems(f"{head}aggregates:\n{child}{order}")
    assert "OrderLine: parent 'Order' must be declared before it" in problem


def test_a_topic_is_required_unless_folded() -> None:
    (problem,) = _problems(MINIMAL.replace("    topic: shop.orders\n", ""))
    assert problem.startswith("spec.yaml:6: aggregates[0]: Value error, topic is required")


def test_folding_into_a_folded_aggregate_is_refused() -> None:
    """Its events would be stored under a stream type that has no topic of its own."""
    chain = """\
  - name: OrderLine
    source: {schema: shop, table: order_lines, primary_key: [order_id, line_no]}
    partitioning: {parent: Order}
    fold_into: Order
    parents:
      - {aggregate: Order, columns: [order_id]}
  - name: LineNote
    source: {schema: shop, table: line_notes, primary_key: [order_id, line_no, note_no]}
    partitioning: {parent: OrderLine}
    fold_into: OrderLine
    parents:
      - {aggregate: OrderLine, columns: [order_id, line_no]}
"""
    (problem,) = _problems(MINIMAL + chain)
    assert "LineNote folds into OrderLine, which is itself folded" in problem
    assert (
        parse_spec(MINIMAL + chain.split("  - name: LineNote")[0])
        .aggregate("OrderLine")
        .stream_type
        == "Order"
    )


def test_the_committed_json_schema_is_up_to_date_and_accepts_both_specs() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == render_schema(), f"strangler.schema.json is stale: run `{REGENERATE}`"
    validator = Draft202012Validator(json.loads(committed))
    for spec in (SAMPLE_SPEC, SHOP_SPEC):
        text = spec.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=")
        ref = text.splitlines()[0].split("$schema=")[1]
        assert (spec.parent / ref).resolve() == SCHEMA_FILE.resolve()
        as_editors_read_it = json.loads(json.dumps(yaml.safe_load(text), default=str))  # dates
        assert list(validator.iter_errors(as_editors_read_it)) == [], spec
    wrong = yaml.safe_load(MINIMAL.replace("topic:", "topik:"))
    assert [e.message for e in validator.iter_errors(wrong)] != []


@pytest.mark.parametrize(
    ("pg_type", "is_enum", "kind"),
    [
        ("int4", False, "integer"),
        ("int8", False, "integer"),
        ("numeric", False, "decimal"),
        ("_int4", False, "array"),
        ("timestamptz", False, "timestamp"),
        ("account_tier", True, "string"),
        ("jsonb", False, "json"),
        ("bpchar", False, "string"),
        ("tsvector", False, None),
        ("_tsvector", False, None),
        ("point", False, None),
    ],
)
def test_type_mapping(pg_type: str, is_enum: bool, kind: str | None) -> None:
    assert json_kind(pg_type, is_enum=is_enum) == kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("12.50"), "12.50"),
        (datetime(2026, 11, 20, 10, tzinfo=UTC), "2026-11-20T10:00:00+00:00"),
        (
            datetime(2026, 11, 20, 12, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-20T10:00:00+00:00",
        ),
        (datetime(2026, 11, 20, 10), "2026-11-20T10:00:00+00:00"),  # naive = UTC
        (date(2026, 11, 20), "2026-11-20"),
        (
            uuid.UUID("0b0e7a52-6f4e-4d2b-9a55-5f0c2f3d1e01"),
            "0b0e7a52-6f4e-4d2b-9a55-5f0c2f3d1e01",
        ),
        (b"\x00\xffhi", "AP9oaQ=="),
        (timedelta(days=1, hours=2), "P1DT2H"),
        (timedelta(minutes=3, seconds=4.5), "PT3M4.5S"),
        (timedelta(0), "PT0S"),
        (-timedelta(hours=1), "-PT1H"),
        ([1, Decimal("2.5"), None, [date(2026, 1, 2)]], [1, "2.5", None, ["2026-01-02"]]),
        (True, True),
    ],
)
def test_to_json(value: Any, expected: Any) -> None:
    assert to_json(value) == expected


def test_to_json_overrides() -> None:
    assert to_json(Decimal("1.25"), "number") == 1.25
    assert to_json('{"a": 1}', "json") == {"a": 1}
    assert to_json("'hello':1", "string") == "'hello':1"


@pytest.mark.parametrize(
    ("table", "name"),
    [
        ("order_lines", "OrderLine"),
        ("countries", "Country"),
        ("addresses", "Address"),
        ("ocr_pages", "OcrPage"),
        ("status", "Status"),
        ("boxes", "Box"),
        ("2fa_codes", "T2faCode"),
    ],
)
def test_aggregate_names(table: str, name: str) -> None:
    assert aggregate_name(table) == name


def _col(name: str, typname: str, *, not_null: bool = False, enum: bool = False) -> Column:
    return Column(name, typname, typname, not_null, is_enum=enum, enum_labels=("a", "b") * enum)


def _table(
    schema: str, name: str, *columns: Column, key: tuple[str, ...] = ("id",), **kw: Any
) -> Table:
    keys = (UniqueKey(f"{name}_pkey", key, True, False),) if key else ()
    return Table(
        schema,
        name,
        "table",
        {c.name: c for c in columns},
        keys + kw.get("unique", ()),
        kw.get("fks", ()),
    )


def _catalog(*tables: Table) -> Catalog:
    schemas = tuple(sorted({t.schema for t in tables}))
    return Catalog("legacy", schemas, {(t.schema, t.name): t for t in tables}, schemas)


def test_a_draft_from_awkward_names_loads_and_passes_its_own_checks() -> None:
    """YAML words (`on`, `yes`, `null`), a key cycle, a keyless table, an unmappable type."""
    idc = _col("id", "int8", not_null=True)
    catalog = _catalog(
        _table(
            "app", "yes", idc, _col("on", "text"), _col("created", "timestamptz", not_null=True)
        ),
        _table(
            "app",
            "a_items",
            idc,
            _col("b_id", "int8"),
            _col("null", "tsvector"),
            _col("kind", "kind", not_null=True, enum=True),
            _col("inserted_at", "timestamptz", not_null=True),
            fks=(ForeignKey("a_b", ("b_id",), "app", "b_items", ("id",)),),
        ),
        _table(
            "app",
            "b_items",
            idc,
            _col("a_id", "int8", not_null=True),
            _col("email", "varchar"),
            fks=(ForeignKey("b_a", ("a_id",), "app", "a_items", ("id",)),),
            unique=(UniqueKey("b_email", ("email",), False, False),),
        ),
        _table("app", "log", _col("at", "timestamptz", not_null=True), key=()),
    )
    text = draft_spec(catalog, ["app"], first_partition=date(2026, 1, 5))
    spec, lines = parse_spec_lines(text, "draft.yaml")
    assert check_spec(spec, catalog, path="draft.yaml", lines=lines) == [], text
    by_name = {a.name: a for a in spec.aggregates}
    assert set(by_name) == {"Yes", "AItem", "BItem"}
    assert by_name["Yes"].columns["on"].no_control_chars
    assert by_name["AItem"].source.exclude == ["null"]
    names = [a.name for a in spec.aggregates]
    assert names.index("AItem") < names.index("BItem")  # the cycle lost B -> A's link
    assert by_name["BItem"].partitioning.model_dump() == {"parent": "AItem"}
    assert by_name["BItem"].unique == [["email"]]
    assert spec.estate.first_partition == date(2026, 1, 5)
    assert "# skipped app.log: no primary key" in text
    assert "the foreign keys form a cycle" in text


def test_check_spec_names_each_problem_with_its_line_and_fix() -> None:
    catalog = _catalog(
        _table(
            "shop",
            "orders",
            _col("id", "int8", not_null=True),
            _col("placed_at", "timestamptz", not_null=True),
            _col("search", "tsvector"),
            _col("note", "text"),
        )
    )
    text = MINIMAL.replace("placed_at", "placd_at") + "    columns:\n      note: {min: 1}\n"
    spec, lines = parse_spec_lines(text, "s.yaml")
    problems = [str(p) for p in check_spec(spec, catalog, path="s.yaml", lines=lines)]
    assert problems == [
        "s.yaml:7: aggregates[0].source.table: column shop.orders.search has type tsvector,"
        " which events cannot carry; exclude it (source: {exclude: [search]}) or carry it as"
        " text (columns: {search: {as: string}})",
        "s.yaml:8: aggregates[0].partitioning.time_column: table shop.orders has no column"
        ' placd_at; did you mean "placed_at"?',
        "s.yaml:11: aggregates[0].columns.note: min/max need a number; note is text",
    ]


def test_a_parent_day_chain_must_end_at_an_own_day(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("{time_column: placed_at}", "{reference: true}")
        + """\
  - name: OrderLine
    source: {schema: shop, table: order_lines, primary_key: [order_id, line_no]}
    partitioning: {parent: Order}
    topic: shop.order_lines
    parents:
      - {aggregate: Order, columns: [order_id]}
"""
    )
    spec, lines = parse_spec_lines(text, "s.yaml")
    (problem,) = check_structure(spec, path="s.yaml", lines=lines)
    assert str(problem).startswith("s.yaml:12: aggregates[1].partitioning.parent: OrderLine takes")
    assert "Order is reference data without a day" in problem.message
