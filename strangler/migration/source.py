"""Reading the monolith by the spec: one aggregate's rows of one window, with rule flags.

Everything a row needs is computed by the monolith's own Postgres in one read-only query:
the rule flags (`rules.compile_rules`), the named events' predicates and times, and the
payload fields given as SQL. Identifiers come from the spec and are quoted; values (window
bounds, rule limits, `now`) are bound parameters; user SQL is the spec's, run as written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from strangler.spec.models import Aggregate, Estate, EstateSpec, OwnDay, ParentDay, SqlField
from strangler.spec.types import to_json

REFERENCE = "reference"
"""Partition key of reference data (aggregates without a time column), migrated as a whole."""

KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class Window:
    """The rows of one partition, [start, end) in UTC (a day, week or month), or every row
    (reference data)."""

    key: str
    start: datetime | None = None
    end: datetime | None = None
    keys: tuple[str, ...] = ()
    """Only the rows of these partitions (a range of partitions read at once); all when empty."""

    @classmethod
    def for_key(cls, key: str, estate: Estate | None = None) -> Window:
        """The window of partition `key` (its first day) under the estate's granularity
        (daily without an estate)."""
        if key == REFERENCE:
            return cls(key)
        first = date.fromisoformat(key)
        last = estate.partition_end(first) if estate else first + timedelta(days=1)
        return cls(key, _midnight(first), _midnight(last))

    @classmethod
    def spanning(cls, first: Window, last: Window, keys: Sequence[str] = ()) -> Window:
        """From the start of `first` to the end of `last`: a range of partitions, read at once
        (only the partitions `keys` of it, when given)."""
        return cls(f"{first.key}..{last.key}", first.start, last.end, tuple(keys))

    @property
    def is_reference(self) -> bool:
        return self.start is None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = _midnight(day)
    return start, start + timedelta(days=1)


def user_sql(text: str) -> sql.SQL:
    """The spec's SQL as written, with `%` kept literal (psycopg reads `%s` as a parameter)."""
    return sql.SQL("(" + text.replace("%", "%%") + ")")


def ident(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def table_ref(aggregate: Aggregate) -> sql.Identifier:
    return ident(aggregate.source.db_schema, aggregate.source.table)


def columns(alias: str, names: Sequence[str]) -> sql.Composed:
    return sql.SQL("({})").format(sql.SQL(", ").join(ident(alias, n) for n in names))


def key_of(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A key as text: the columns' JSON values, composite keys joined with `|`."""
    return KEY_SEPARATOR.join(str(to_json(row[c])) for c in columns)


def aggregate_id(aggregate: Aggregate, row: Mapping[str, Any]) -> str:
    """The id of a row (and of its stream, unless folded): its primary key as text."""
    return key_of(row, aggregate.source.primary_key)


def row_key(aggregate: Aggregate, row: Mapping[str, Any]) -> list[Any]:
    """The primary key as JSON values, as stored in checkpoints for keyset resumption."""
    return [to_json(row[c]) for c in aggregate.source.primary_key]


def key_text(alias: str, names: Sequence[str]) -> sql.Composed:
    """SQL of a key as text, matching `aggregate_id` for integer, text and uuid keys."""
    parts = [sql.SQL("{}::text").format(ident(alias, n)) for n in names]
    return sql.SQL("concat_ws({}, {})").format(
        sql.Literal(KEY_SEPARATOR), sql.SQL(", ").join(parts)
    )


class DayFilter:
    """SQL placing a row of `aggregate` (alias `alias`) in a day, following parent links."""

    def __init__(self, spec: EstateSpec) -> None:
        self.spec = spec

    def condition(self, aggregate: Aggregate, alias: str, depth: int = 0) -> sql.Composed:
        """`<row is in [%s, %s)>`: two parameters, start and end."""
        part = aggregate.partitioning
        if isinstance(part, OwnDay):
            column = ident(alias, part.time_column)
            return sql.SQL("({c} >= %s AND {c} < %s)").format(c=column)
        if isinstance(part, ParentDay):
            parent = self.spec.aggregate(part.parent)
            link = aggregate.parent(part.parent)
            p = f"p{depth}"
            return sql.SQL("EXISTS (SELECT 1 FROM {t} {p} WHERE {pk} = {fk} AND {inner})").format(
                t=table_ref(parent),
                p=ident(p),
                pk=columns(p, parent.source.primary_key),
                fk=columns(alias, link.columns),
                inner=self.condition(parent, p, depth + 1),
            )
        raise ValueError(f"{aggregate.name} is reference data: it has no day")

    def partition_of(self, aggregate: Aggregate, alias: str) -> sql.Composed:
        """SQL of the row's partition key as text: its day, or the first day of its week or
        month (`estate.partitions`)."""
        day = self.day_of(aggregate, alias)
        unit = {"weekly": "week", "monthly": "month"}.get(self.spec.estate.partitions)
        if unit is None:
            return sql.SQL("({})::text").format(day)
        return sql.SQL("(date_trunc({}, {})::date)::text").format(sql.Literal(unit), day)

    def day_of(self, aggregate: Aggregate, alias: str, depth: int = 0) -> sql.Composed:
        """SQL of the row's UTC day (the session runs in UTC)."""
        part = aggregate.partitioning
        if isinstance(part, OwnDay):
            return sql.SQL("({}::date)").format(ident(alias, part.time_column))
        if isinstance(part, ParentDay):
            parent = self.spec.aggregate(part.parent)
            link = aggregate.parent(part.parent)
            p = f"d{depth}"
            return sql.SQL("(SELECT {day} FROM {t} {p} WHERE {pk} = {fk})").format(
                day=self.day_of(parent, p, depth + 1),
                t=table_ref(parent),
                p=ident(p),
                pk=columns(p, parent.source.primary_key),
                fk=columns(alias, link.columns),
            )
        raise ValueError(f"{aggregate.name} is reference data: it has no day")


def window_where(
    spec: EstateSpec, aggregate: Aggregate, window: Window, alias: str = "t"
) -> tuple[sql.Composable, list[Any]]:
    if window.is_reference:
        if not aggregate.is_reference:
            raise ValueError(f"{aggregate.name} is partitioned by day, not reference data")
        return sql.SQL("TRUE"), []
    if aggregate.is_reference:
        raise ValueError(f"{aggregate.name} is reference data; read it with the reference window")
    day_filter = DayFilter(spec)
    condition = day_filter.condition(aggregate, alias)
    if not window.keys:
        return condition, [window.start, window.end]
    only = sql.SQL("({} AND {} = ANY(%s))").format(
        condition, day_filter.partition_of(aggregate, alias)
    )
    return only, [window.start, window.end, list(window.keys)]


@dataclass(frozen=True)
class Extraction:
    """The SELECT list beyond `t.*`: computed columns and the parameters they bind."""

    expressions: list[tuple[str, sql.Composable]]
    params: list[Any]


def field_expressions(aggregate: Aggregate) -> list[tuple[str, sql.Composable]]:
    """Named events' `when`/`at`, generic `at` and SQL fields, as `__`-prefixed columns."""
    out: list[tuple[str, sql.Composable]] = []
    events = aggregate.events
    for kind, generic in (
        ("import", events.import_),
        ("change", events.change),
        ("delete", events.delete),
    ):
        if generic.at:
            out.append((f"__at_{kind}", user_sql(generic.at)))
        for name, source in (generic.fields or {}).items():
            if isinstance(source, SqlField):
                out.append((f"__f_{kind}_{name}", user_sql(source.sql)))
    for index, named in enumerate(events.named):
        out.append((f"__when_{index}", sql.SQL("{} IS TRUE").format(user_sql(named.when))))
        out.append((f"__at_{index}", user_sql(named.at)))
        for name, source in (named.fields or {}).items():
            if isinstance(source, SqlField):
                out.append((f"__f_{index}_{name}", user_sql(source.sql)))
    return out


def select_rows(
    spec: EstateSpec,
    aggregate: Aggregate,
    window: Window,
    extraction: Extraction,
    *,
    after: Sequence[Any] | None,
) -> tuple[sql.Composed, list[Any]]:
    where, where_params = window_where(spec, aggregate, window)
    pk = aggregate.source.primary_key
    extra = [sql.SQL("{} AS {}").format(expr, ident(name)) for name, expr in extraction.expressions]
    after_sql: sql.Composable = sql.SQL("")
    after_params: list[Any] = []
    if after:
        after_sql = sql.SQL(" AND {} > ({})").format(
            columns("t", pk), sql.SQL(", ").join(sql.Placeholder() * len(pk))
        )
        after_params = list(after)
    query = sql.SQL(
        "SELECT t.*{extra} FROM {table} t WHERE {where}{after} ORDER BY {order}"
    ).format(
        extra=sql.SQL("").join(sql.SQL(", ") + e for e in extra),
        table=table_ref(aggregate),
        where=where,
        after=after_sql,
        order=sql.SQL(", ").join(ident("t", c) for c in pk),
    )
    return query, [*extraction.params, *where_params, *after_params]


def stream_rows(
    conn: psycopg.Connection[Any],
    spec: EstateSpec,
    aggregate: Aggregate,
    window: Window,
    extraction: Extraction,
    *,
    after: Sequence[Any] | None,
    batch_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Batches of the window's rows in key order, through a server-side cursor (flat memory).

    `conn` must be dedicated to reading: the cursor lives in its open transaction.
    """
    query, params = select_rows(spec, aggregate, window, extraction, after=after)
    with conn.cursor(name=f"strangler_{aggregate.source.table}", row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(query, params)
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                return
            yield rows


def key_types(conn: psycopg.Connection[Any], aggregate: Aggregate) -> list[str]:
    """The SQL types of the primary key columns, as the catalog spells them (for casts)."""
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attname = ANY(%s) AND NOT a.attisdropped",
        (aggregate.source.db_schema, aggregate.source.table, aggregate.source.primary_key),
    ).fetchall()
    found = dict(rows)
    return [found[c] for c in aggregate.source.primary_key]


def existing_keys(
    conn: psycopg.Connection[Any], aggregate: Aggregate, types: Sequence[str], ids: Sequence[str]
) -> set[str]:
    """Which of these aggregate ids still have a row in the monolith (hard-delete detection).

    Each id is split into its key columns and cast to their `types` (`key_types`), so the
    lookup is an index probe per id instead of a scan of the table per batch. An id that does
    not split into the key's arity (a text key holding `|`) counts as present: never deleted.
    """
    pk = aggregate.source.primary_key
    split = [i.split(KEY_SEPARATOR) for i in ids]
    usable = [parts for parts in split if len(parts) == len(pk)]
    if not usable:
        return set()
    names = [f"k{n}" for n in range(len(pk))]
    query = sql.SQL(
        "SELECT {ids} FROM unnest({arrays}) AS k({names})"
        " WHERE EXISTS (SELECT 1 FROM {t} t WHERE {match})"
    ).format(
        ids=sql.SQL("concat_ws({}, {})").format(
            sql.Literal(KEY_SEPARATOR), sql.SQL(", ").join(ident("k", n) for n in names)
        ),
        arrays=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in pk),
        names=sql.SQL(", ").join(ident(n) for n in names),
        t=table_ref(aggregate),
        match=sql.SQL(" AND ").join(
            sql.SQL("{} = {}::{}").format(ident("t", c), ident("k", n), sql.SQL(typ))
            for c, n, typ in zip(pk, names, types, strict=True)
        ),
    )
    columns_of = [[parts[n] for parts in usable] for n in range(len(pk))]
    present = {str(r[0]) for r in conn.execute(query, columns_of)}
    return present | {i for i, parts in zip(ids, split, strict=True) if len(parts) != len(pk)}


@dataclass(frozen=True)
class DayMark:
    """What a day of one table looks like now: a change to any row changes the mark."""

    rows: int
    watermark: datetime | None
    checksum: int

    def version(self) -> str:
        mark = self.watermark.isoformat() if self.watermark else "-"
        return f"rows={self.rows};max_updated_at={mark};checksum={self.checksum}"


def _mark_columns(aggregate: Aggregate) -> tuple[sql.Composable, sql.Composable]:
    """SQL of (watermark, checksum) per row: `max(updated_at)` shows edits where the table
    has it; otherwise a hash of the whole row does (the costlier way, so only then)."""
    if aggregate.source.updated_at:
        return ident("t", aggregate.source.updated_at), sql.SQL("0::bigint")
    return sql.SQL("NULL::timestamptz"), sql.SQL("hashtextextended(t::text, 0)")


def window_mark(
    conn: psycopg.Connection[Any], spec: EstateSpec, aggregate: Aggregate, window: Window
) -> DayMark:
    """The mark of one partition of one table, computed exactly as `day_marks` does."""
    where, params = window_where(spec, aggregate, window)
    updated, checksum = _mark_columns(aggregate)
    query = sql.SQL(
        "SELECT count(*), max({updated}), coalesce(sum({checksum}), 0) FROM {table} t WHERE {where}"
    ).format(updated=updated, checksum=checksum, table=table_ref(aggregate), where=where)
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return DayMark(int(row[0]), row[1], int(row[2]) % (2**63))


def partition_version(marks: dict[str, DayMark]) -> str:
    """One partition's version over all its tables (table -> mark; absent = empty)."""
    return " ".join(
        f"{table}:{mark.version()}" for table, mark in sorted(marks.items()) if mark.rows
    )


def day_marks(
    conn: psycopg.Connection[Any],
    spec: EstateSpec,
    aggregate: Aggregate,
    within: Window | None = None,
) -> dict[str, DayMark]:
    """Per partition key (day, week or month): row count and max(updated_at), or, for a
    table without `updated_at`, an order-insensitive row checksum. The count shows inserts
    and deletes; reference data has one key, `reference`. `within` limits it to the
    partitions of a range (one query for the whole range, however many partitions it holds).
    """
    day_filter = DayFilter(spec)
    day = (
        sql.Literal(REFERENCE)
        if aggregate.is_reference
        else day_filter.partition_of(aggregate, "t")
    )
    where: sql.Composable = sql.SQL("TRUE")
    params: list[Any] = []
    if within is not None and not aggregate.is_reference:
        where, params = window_where(spec, aggregate, within)
    updated, checksum = _mark_columns(aggregate)
    query = sql.SQL(
        "SELECT day, count(*), max(updated), coalesce(sum(checksum), 0) FROM"
        " (SELECT {day} AS day, {updated} AS updated, {checksum} AS checksum"
        "  FROM {table} t WHERE {where}) s WHERE day IS NOT NULL GROUP BY day ORDER BY day"
    ).format(day=day, updated=updated, checksum=checksum, table=table_ref(aggregate), where=where)
    return {
        str(r[0]): DayMark(int(r[1]), r[2], int(r[3]) % (2**63))
        for r in conn.execute(query, params)
    }
