"""Schema drift: the monolith's columns now against the baseline the first migration recorded.

A strangler migration runs for months while the monolith keeps changing. A column added since
the baseline is only a warning (it is carried by the generic events, or not migrated yet); a
column dropped or retyped is an error, because the events would silently lose it or change
its shape. Each finding names the table, the column and the spec change that resolves it.

Plain psycopg (no Dagster). The live side reads `pg_catalog` only, with bound parameters, so
the monolith's read-only role suffices; the baseline is `migration_state.source_columns` in
the estate, append-only (a column is recorded once, its first type kept).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from strangler.spec.models import Aggregate, FieldSource, SqlField
from strangler.spec.types import json_kind

NO_BASELINE = "no baseline: the first migration records it"

# Mirrors `strangler.spec.catalog`: a domain's values arrive as its base type, so the base
# type's `typname` is what is recorded; an enum is recorded as its own type name. One table's
# columns only (the catalog reader reads whole schemas with keys, too much for every run).
_LIVE = """
SELECT a.attname::text, bt.typname::text, bt.typtype = 'e'
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class LiveColumns:
    """A table's columns as the monolith has them now."""

    types: dict[str, str]
    """Column -> `typname`, in the table's column order (empty: the table does not exist)."""
    enums: frozenset[str] = frozenset()
    """The type names among `types` that are enums (they map to JSON strings)."""


def read_live(conn: psycopg.Connection[Any], aggregate: Aggregate) -> LiveColumns:
    """The aggregate's source table's columns and which of their types are enums."""
    rows = conn.execute(_LIVE, (aggregate.source.db_schema, aggregate.source.table)).fetchall()
    return LiveColumns(
        {name: typname for name, typname, _ in rows},
        frozenset(typname for _, typname, is_enum in rows if is_enum),
    )


def baseline_table(aggregate: Aggregate) -> str:
    """The baseline's key of a source table: `schema.table`."""
    return aggregate.source.qualified


def recorded_columns(estate_conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    """The baseline of `table` (`schema.table`): column -> type when first seen; {}: none yet."""
    rows = estate_conn.execute(
        "SELECT column_name, pg_type FROM migration_state.source_columns"
        " WHERE source_table = %s ORDER BY first_seen_at, column_name",
        (table,),
    ).fetchall()
    return {name: pg_type for name, pg_type in rows}


def record_columns(
    estate_conn: psycopg.Connection[Any], table: str, columns: Mapping[str, str]
) -> int:
    """Add columns not yet in the baseline (a recorded column keeps its first type); how many."""
    if not columns:
        return 0
    cur = estate_conn.execute(
        "INSERT INTO migration_state.source_columns (source_table, column_name, pg_type)"
        " SELECT %s, c, t FROM unnest(%s::text[], %s::text[]) AS x(c, t)"
        " ON CONFLICT (source_table, column_name) DO NOTHING",
        (table, list(columns), list(columns.values())),
    )
    return cur.rowcount


@dataclass(frozen=True)
class Retype:
    column: str
    old: str
    new: str


@dataclass(frozen=True)
class Finding:
    kind: Literal["added", "dropped", "retyped"]
    column: str
    message: str

    @property
    def blocking(self) -> bool:
        """Dropped and retyped columns make events wrong; an added one does not."""
        return self.kind != "added"


@dataclass(frozen=True)
class Drift:
    """How one table's columns moved since the baseline, ignoring what the spec excludes."""

    table: str
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    retyped: list[Retype] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return bool(self.dropped or self.retyped)

    @property
    def clean(self) -> bool:
        return not self.findings

    def text(self) -> str:
        return "\n".join(f.message for f in self.findings)


class SchemaDriftError(RuntimeError):
    """Columns were dropped or retyped in the monolith since the baseline: nothing was written."""

    def __init__(self, drifts: Sequence[Drift]) -> None:
        self.drifts = list(drifts)
        findings = [f.message for d in self.drifts for f in d.findings if f.blocking]
        super().__init__(
            "schema drift: the monolith changed since the spec was checked, nothing was"
            " migrated:\n- " + "\n- ".join(findings)
        )


def _names(fields: dict[str, FieldSource] | None, column: str) -> list[str]:
    return [n for n, s in (fields or {}).items() if not isinstance(s, SqlField) and s == column]


def spec_mentions(aggregate: Aggregate, column: str) -> list[str]:
    """Where the spec names a column (the places to edit when it is dropped)."""
    out: list[str] = []
    src = aggregate.source
    if column in src.primary_key:
        out.append("source.primary_key")
    for key in ("updated_at", "soft_delete"):
        if getattr(src, key) == column:
            out.append(f"source.{key}")
    if getattr(aggregate.partitioning, "time_column", None) == column:
        out.append("partitioning.time_column")
    out += [f"parents[{p.aggregate}]" for p in aggregate.parents if column in p.columns]
    if column in aggregate.columns:
        out.append(f"columns.{column}")
    out += [f"unique{list(u)}" for u in aggregate.unique if column in u]
    events = aggregate.events
    for kind, generic in (
        ("import", events.import_),
        ("change", events.change),
        ("delete", events.delete),
    ):
        out += [f"events.{kind}.fields.{n}" for n in _names(generic.fields, column)]
    for named in events.named:
        out += [f"events.named[{named.type}].fields.{n}" for n in _names(named.fields, column)]
        if column in named.identity:
            out.append(f"events.named[{named.type}].identity")
    return out


def _generic_carriers(aggregate: Aggregate) -> list[str]:
    """The generic events whose payload is every carried column (no explicit `fields`)."""
    events = aggregate.events
    return [
        kind
        for kind, generic in (("import", events.import_), ("change", events.change))
        if generic.enabled and generic.fields is None
    ]


def _kind(pg_type: str, enums: Collection[str]) -> str | None:
    return json_kind(pg_type, is_enum=pg_type in enums)


def _added(table: str, aggregate: Aggregate, column: str, pg_type: str) -> Finding:
    carriers = _generic_carriers(aggregate)
    if carriers:
        what = (
            f"carried from now on by the generic {'/'.join(carriers)} events"
            " (rows migrated before do not have it)"
        )
    else:
        what = "not migrated: add it to the event fields or to source.exclude"
    return Finding("added", column, f"{table}.{column}: added ({pg_type}); {what}")


def _dropped(table: str, aggregate: Aggregate, column: str, pg_type: str) -> Finding:
    mentions = spec_mentions(aggregate, column)
    named = f"; the spec names it in {', '.join(mentions)}" if mentions else ""
    return Finding(
        "dropped",
        column,
        f"{table}.{column}: dropped from the monolith (was {pg_type}), events would lack it:"
        f" add it to source.exclude (and drop it from fields/rules that name it){named}",
    )


def _retyped(table: str, aggregate: Aggregate, retype: Retype, enums: Collection[str]) -> Finding:
    old_kind = _kind(retype.old, ())
    new_kind = _kind(retype.new, enums)
    was = f"events carried it as {old_kind}, " if old_kind else ""
    maps = f"{new_kind}" if new_kind else "no JSON kind (as: string casts it to text)"
    return Finding(
        "retyped",
        retype.column,
        f"{table}.{retype.column}: retyped {retype.old} -> {retype.new}; {was}the new type maps"
        f" to {maps}: set columns.{retype.column}.as: {new_kind or 'string'} or exclude it"
        " (source.exclude)",
    )


def compare(
    aggregate: Aggregate,
    recorded: Mapping[str, str],
    live: Mapping[str, str],
    *,
    enums: Collection[str] = (),
) -> Drift:
    """The drift of one table; excluded columns and retypes the spec overrides (`as:`) aside.

    `enums`: type names of `live` that are enums. An empty baseline means every live column
    is new; callers with no baseline record one instead of comparing.
    """
    table = baseline_table(aggregate)
    excluded = set(aggregate.source.exclude)
    added = [c for c in live if c not in recorded and c not in excluded]
    dropped = sorted(c for c in recorded if c not in live and c not in excluded)
    retyped = [
        Retype(c, recorded[c], live[c])
        for c in live
        if c in recorded
        and c not in excluded
        and recorded[c] != live[c]
        and not (c in aggregate.columns and aggregate.columns[c].as_ is not None)
    ]
    findings = [
        *(_dropped(table, aggregate, c, recorded[c]) for c in dropped),
        *(_retyped(table, aggregate, r, enums) for r in retyped),
        *(_added(table, aggregate, c, live[c]) for c in added),
    ]
    return Drift(table, added, dropped, retyped, findings)
