"""`strangler spec check` on `search:` blocks: every field they name is one the aggregate's
events carry, `{parent: X}` is a searchable parent, each problem with its file, line and key."""

from __future__ import annotations

import pytest

from strangler.spec import SpecError
from strangler.spec.catalog import Catalog, Column, Table, UniqueKey
from strangler.spec.check import check_spec
from strangler.spec.load import parse_spec_lines


def _col(name: str, typname: str, *, not_null: bool = False) -> Column:
    return Column(name, typname, typname, not_null)


def _table(name: str, *columns: Column) -> Table:
    return Table(
        "shop",
        name,
        "table",
        {c.name: c for c in columns},
        (UniqueKey(f"{name}_pkey", ("id",), True, False),),
        (),
    )


CATALOG = Catalog(
    "legacy",
    ("shop",),
    {
        ("shop", "accounts"): _table(
            "accounts",
            _col("id", "int8", not_null=True),
            _col("region", "text"),
            _col("joined_at", "timestamptz", not_null=True),
        ),
        ("shop", "orders"): _table(
            "orders",
            _col("id", "int8", not_null=True),
            _col("account_id", "int8", not_null=True),
            _col("placed_at", "timestamptz", not_null=True),
            _col("status", "text"),
            _col("note", "text"),
            _col("secret", "text"),
        ),
    },
    ("shop",),
)

SPEC = """\
version: 1
estate:
  name: tiny
  first_partition: 2026-01-01
aggregates:
  - name: Account
    source: {schema: shop, table: accounts, primary_key: [id]}
    partitioning: {time_column: joined_at}
    topic: shop.accounts
  - name: Order
    source: {schema: shop, table: orders, primary_key: [id], exclude: [secret]}
    partitioning: {time_column: placed_at}
    topic: shop.orders
    parents:
      - {aggregate: Account, columns: [account_id]}
    search:
      text: "{note} ({status})"
      properties: [status, note]
      tenant: {parent: Account}
      queries:
        - text: cancelled order
          expect: {status: cancelled}
"""


def _check(text: str) -> list[str]:
    spec, lines = parse_spec_lines(text, "s.yaml")
    return [str(p) for p in check_spec(spec, CATALOG, path="s.yaml", lines=lines)]


def _searchable_account(text: str) -> str:
    return text.replace(
        "    topic: shop.accounts\n",
        "    topic: shop.accounts\n    search: {text: '{region}'}\n",
    )


def test_a_search_block_naming_carried_fields_passes() -> None:
    assert _check(_searchable_account(SPEC)) == []


def test_unknown_fields_are_named_with_line_key_and_a_suggestion() -> None:
    text = (
        _searchable_account(SPEC)
        .replace('"{note} ({status})"', '"{notes} ({secret})"')
        .replace("[status, note]", "[status, nte]")
        .replace("{status: cancelled}", "{state: cancelled}")
    )
    problems = _check(text)
    assert len(problems) == 4, problems
    assert problems[0].startswith(
        "s.yaml:18: aggregates[1].search.text: the text template's field 'notes' is not a field"
        ' of Order\'s events; did you mean "note"?'
    )
    # `secret` is a column, but excluded: the events do not carry it.
    assert problems[1].startswith(
        "s.yaml:18: aggregates[1].search.text: the text template's field 'secret' is not a field"
    )
    assert "(its fields: account_id, id, note, placed_at, status)" in problems[1]
    assert problems[2].startswith(
        "s.yaml:19: aggregates[1].search.properties[1]: property 'nte' is not a field of"
        ' Order\'s events; did you mean "note"?'
    )
    assert problems[3].startswith(
        "s.yaml:23: aggregates[1].search.queries[0].expect.state: expected field 'state' is"
        ' not a field of Order\'s events; did you mean "status"?'
    )


def test_a_tenant_parent_without_search_is_refused_when_the_spec_loads() -> None:
    """`{parent: X}` with X not searchable never reaches the catalog check: loading refuses it."""
    with pytest.raises(SpecError, match="'Account' has no search: declaration"):
        parse_spec_lines(SPEC, "s.yaml")


def test_a_tenant_field_must_be_carried() -> None:
    text = _searchable_account(SPEC).replace("{parent: Account}", "regoin")
    (problem,) = _check(text)
    assert problem.startswith(
        "s.yaml:20: aggregates[1].search.tenant: tenant field 'regoin' is not a field of"
        " Order's events"
    )


def test_an_expected_field_must_be_stored() -> None:
    text = _searchable_account(SPEC).replace(
        "{status: cancelled}", "{status: cancelled, placed_at: x}"
    )
    (problem,) = _check(text)
    assert problem == (
        "s.yaml:23: aggregates[1].search.queries[0].expect.placed_at: expected field"
        " 'placed_at' is not stored on the objects; add it to search.properties"
    )


def test_explicit_event_fields_are_what_search_can_name() -> None:
    """With `fields:` the payload carries those names, not the columns."""
    text = _searchable_account(SPEC).replace(
        "    parents:\n",
        "    events:\n      import: {fields: {state: status, note: note, account: account_id}}\n"
        "      change: {enabled: false}\n    parents:\n",
    )
    problems = _check(text)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "aggregates[1].search.text",
        "aggregates[1].search.properties[0]",
        "aggregates[1].search.queries[0].expect.status",
    ], problems
    fixed = text.replace("({status})", "({state})").replace("[status, note]", "[state, note]")
    assert _check(fixed.replace("{status: cancelled}", "{state: cancelled}")) == []
