"""Validation rules from the spec, compiled into flags of the extraction query.

Postgres evaluates every rule (`IS NULL`, ranges, `pg_input_is_valid`, the control-character
regex, `EXISTS` for parents and earlier rows with the same natural key); Python only turns a
raised flag into a `Violation` naming the rule and the column. The rule names are stable: they
are what `failed_entities.rule` holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from strangler.migration.source import (
    Extraction,
    columns,
    field_expressions,
    ident,
    key_text,
    table_ref,
)
from strangler.spec.models import Aggregate, EstateSpec

CONTROL_CHARS_REGEX = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]|\\u0000"
"""POSIX regex (Postgres `~`, Python `re`): a C0 control other than tab, newline and CR, DEL,
or the literal escape `\\u0000` that legacy writers store for NUL (text cannot hold NUL)."""
CONTROL_CHARS = re.compile(CONTROL_CHARS_REGEX)

NULL_REQUIRED = "null_required"
OUT_OF_RANGE = "out_of_range"
MALFORMED_JSON = "malformed_json"
CONTROL_CHARS_RULE = "control_chars"
FUTURE_TIMESTAMP = "future_timestamp"
ORPHAN_FK = "orphan_fk"
DUPLICATE_NATURAL_KEY = "duplicate_natural_key"
UNMAPPABLE_VALUE = "unmappable_value"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} on {self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: its flag column is non-NULL and not false when the row breaks it."""

    flag: str
    rule: str
    column: str
    expression: sql.Composable
    params: tuple[Any, ...] = ()

    def message(self, row: Mapping[str, Any]) -> str:
        value = row.get(self.column)
        if self.rule == NULL_REQUIRED:
            return "required value is NULL"
        if self.rule == OUT_OF_RANGE:
            return f"{value} is outside the declared range"
        if self.rule == MALFORMED_JSON:
            return "not valid JSON"
        if self.rule == CONTROL_CHARS_RULE:
            match = CONTROL_CHARS.search(str(value))
            where = f" {match.group()!r} at offset {match.start()}" if match else ""
            return f"control character{where}"
        if self.rule == FUTURE_TIMESTAMP:
            shown = value.isoformat() if isinstance(value, datetime) else value
            return f"{shown} is in the future"
        if self.rule == ORPHAN_FK:
            key = "|".join(str(row.get(c)) for c in self.column.split(", "))
            return f"no parent row with key {key}"
        if self.rule == DUPLICATE_NATURAL_KEY:
            return f"same natural key as row {row.get(self.flag)}"
        return self.rule


def compile_rules(aggregate: Aggregate, now: datetime) -> list[Rule]:
    """Every rule the spec declares for the aggregate, in a stable order."""
    out: list[Rule] = []

    def add(rule: str, column: str, expression: sql.Composable, *params: Any) -> None:
        out.append(Rule(f"__rule_{len(out)}", rule, column, expression, params))

    for name, declared in aggregate.columns.items():
        c = ident("t", name)
        if declared.required:
            add(NULL_REQUIRED, name, sql.SQL("{} IS NULL").format(c))
        if declared.min is not None:
            add(OUT_OF_RANGE, name, sql.SQL("{} < %s").format(c), declared.min)
        if declared.max is not None:
            add(OUT_OF_RANGE, name, sql.SQL("{} > %s").format(c), declared.max)
        if declared.json_:
            add(MALFORMED_JSON, name, sql.SQL("NOT pg_input_is_valid({}::text, 'jsonb')").format(c))
        if declared.no_control_chars:
            add(CONTROL_CHARS_RULE, name, sql.SQL("{}::text ~ %s").format(c), CONTROL_CHARS_REGEX)
        if declared.not_future:
            add(FUTURE_TIMESTAMP, name, sql.SQL("{} > %s").format(c), now)
    return out


def compile_links(spec: EstateSpec, aggregate: Aggregate) -> list[Rule]:
    """Parent rows that must exist and natural keys that must be unique."""
    out: list[Rule] = []
    for link in aggregate.parents:
        if not link.enforce:
            continue
        parent = spec.aggregate(link.aggregate)
        fk = columns("t", link.columns)
        out.append(
            Rule(
                f"__link_{len(out)}",
                ORPHAN_FK,
                ", ".join(link.columns),
                sql.SQL(
                    "(ROW{fk} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {t} p WHERE {pk} = {fk}))"
                ).format(fk=fk, t=table_ref(parent), pk=columns("p", parent.source.primary_key)),
            )
        )
    pk = aggregate.source.primary_key
    for natural in aggregate.unique:
        out.append(
            Rule(
                f"__link_{len(out)}",
                DUPLICATE_NATURAL_KEY,
                natural[0] if len(natural) == 1 else f"({', '.join(natural)})",
                sql.SQL(
                    "(SELECT {okey} FROM {t} o WHERE {onat} = {tnat} AND {opk} < {tpk}"
                    " ORDER BY {order} LIMIT 1)"
                ).format(
                    okey=key_text("o", pk),
                    t=table_ref(aggregate),
                    onat=columns("o", natural),
                    tnat=columns("t", natural),
                    opk=columns("o", pk),
                    tpk=columns("t", pk),
                    order=sql.SQL(", ").join(ident("o", c) for c in pk),
                ),
            )
        )
    return out


def extraction(
    spec: EstateSpec, aggregate: Aggregate, now: datetime
) -> tuple[Extraction, list[Rule]]:
    """The computed columns of the aggregate's extraction query and the rules behind them."""
    rules = [*compile_rules(aggregate, now), *compile_links(spec, aggregate)]
    expressions: list[tuple[str, sql.Composable]] = [(r.flag, r.expression) for r in rules]
    params = [p for r in rules for p in r.params]
    expressions += field_expressions(aggregate)
    return Extraction(expressions, params), rules


def violations(rules: list[Rule], row: Mapping[str, Any]) -> list[Violation]:
    """Every rule the row breaks (empty = clean)."""
    found = []
    for rule in rules:
        flag = row.get(rule.flag)
        if flag is not None and flag is not False:
            found.append(Violation(rule.rule, rule.column, rule.message(row)))
    return found
