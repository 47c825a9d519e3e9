"""What a live monolith holds: tables, columns, keys and foreign keys of some schemas.

Read from `pg_catalog` only (plain psycopg, no Dagster), in one read-only transaction with
bound parameters: `pg_catalog` shows every table's structure to any role, whereas
`information_schema` hides what the role holds no privilege on, and nothing here writes (no
temporary tables), so the monolith's read-only role of `STRANGLER_SOURCE_URL` suffices.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from strangler.spec.models import JsonKind
from strangler.spec.types import json_kind

TIME_TYPES = ("timestamptz", "timestamp", "date")
"""Types a day can be taken from (`partitioning.time_column`, `updated_at`)."""

TEXT_TYPES = ("text", "varchar", "bpchar", "citext")

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

_TABLE_KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    """`pg_type.typname` of the values (a domain's base type): `int4`, `_text`, `account_tier`."""
    display_type: str
    """The declared type as Postgres prints it: `numeric(12,2)`, `shop.account_tier`, `text[]`."""
    not_null: bool
    is_enum: bool = False
    enum_labels: tuple[str, ...] = ()
    """The labels of the enum, or of the array's enum element."""
    element_type: str | None = None
    """For arrays: the element's `typname`."""

    @property
    def json_kind(self) -> JsonKind | None:
        """How the column's values travel in events, or None when no mapping exists.

        An array of an enum maps to nothing: psycopg reads it as the text `{a,b}`.
        """
        return json_kind(self.type_name, is_enum=self.is_enum)

    @property
    def is_time(self) -> bool:
        return self.type_name in TIME_TYPES

    @property
    def is_text(self) -> bool:
        return self.type_name in TEXT_TYPES


@dataclass(frozen=True)
class UniqueKey:
    name: str
    columns: tuple[str, ...]
    primary: bool
    partial: bool
    """A partial (`WHERE ...`) index makes rows unique only where its predicate holds."""


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]

    @property
    def ref_qualified(self) -> str:
        return f"{self.ref_schema}.{self.ref_table}"


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    kind: str
    columns: dict[str, Column]
    """In the table's column order."""
    unique_keys: tuple[UniqueKey, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def primary_key(self) -> tuple[str, ...] | None:
        return next((k.columns for k in self.unique_keys if k.primary), None)

    @property
    def time_columns(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.is_time]

    def key_named(self, columns: Iterable[str]) -> UniqueKey | None:
        """The primary key or whole-table unique index over exactly these columns (any order)."""
        wanted = set(columns)
        keys = [k for k in self.unique_keys if not k.partial and set(k.columns) == wanted]
        return min(keys, key=lambda k: not k.primary, default=None)

    def row_key(self) -> tuple[str, ...] | None:
        """Columns identifying a row: the primary key, else a unique index of NOT NULL columns."""
        if self.primary_key:
            return self.primary_key
        for key in self.unique_keys:
            if not key.partial and all(self.columns[c].not_null for c in key.columns):
                return key.columns
        return None


@dataclass(frozen=True)
class Catalog:
    database: str
    schemas: tuple[str, ...]
    """The schemas asked for that exist."""
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    all_schemas: tuple[str, ...] = ()
    """Every user schema of the database (for "did you mean" on a misspelt schema)."""

    def table(self, schema: str, name: str) -> Table | None:
        return self.tables.get((schema, name))

    def tables_in(self, schema: str) -> list[Table]:
        return [t for (s, _), t in sorted(self.tables.items()) if s == schema]


_TABLES = """
SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = ANY(%(kinds)s) AND NOT c.relispartition
ORDER BY n.nspname, c.relname
"""

# A domain's values arrive as its base type, so the base type is what maps to JSON.
_COLUMNS = """
SELECT a.attrelid::bigint, a.attname::text, bt.typname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       bt.typtype = 'e',
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = coalesce(et.oid, bt.oid) ORDER BY e.enumsortorder),
       et.typname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attrelid = ANY(%(oids)s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# Key columns only (not INCLUDE columns); expression indexes cannot name a column set.
_UNIQUE = """
SELECT i.indrelid::bigint, ic.relname::text, i.indisprimary, i.indpred IS NOT NULL,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%(oids)s::oid[]) AND i.indisunique AND i.indisvalid
  AND NOT 0 = ANY(i.indkey::int2[])
ORDER BY i.indrelid, NOT i.indisprimary, ic.relname
"""

_FOREIGN = """
SELECT c.conrelid::bigint, c.conname::text, rn.nspname::text, rc.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class rc ON rc.oid = c.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE c.contype = 'f' AND c.conrelid = ANY(%(oids)s::oid[])
ORDER BY c.conrelid, c.conname
"""


def user_schemas(conn: psycopg.Connection[Any]) -> list[str]:
    """Schemas holding at least one table or view, system schemas aside."""
    rows = conn.execute(
        "SELECT DISTINCT n.nspname::text FROM pg_catalog.pg_namespace n"
        " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid"
        " WHERE c.relkind = ANY(%s) AND NOT n.nspname = ANY(%s)"
        " AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'"
        " ORDER BY 1",
        (list(_TABLE_KINDS), list(SYSTEM_SCHEMAS)),
    ).fetchall()
    return [r[0] for r in rows]


def read_catalog(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> Catalog:
    """The tables of `schemas` with their columns and keys (schemas that do not exist: none)."""
    params: dict[str, Any] = {"schemas": list(schemas), "kinds": list(_TABLE_KINDS)}
    database_row = conn.execute("SELECT current_database()::text").fetchone()
    database = database_row[0] if database_row else ""
    existing = {
        r[0]
        for r in conn.execute(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY(%(schemas)s)",
            params,
        )
    }
    relations = conn.execute(_TABLES, params).fetchall()
    params["oids"] = [r[0] for r in relations]
    columns: dict[int, dict[str, Column]] = {oid: {} for oid, *_ in relations}
    for oid, name, typname, display, not_null, is_enum, labels, element in conn.execute(
        _COLUMNS, params
    ):
        columns[oid][name] = Column(
            name=name,
            type_name=typname,
            display_type=display,
            not_null=not_null,
            is_enum=is_enum,
            enum_labels=tuple(labels),
            element_type=element,
        )
    unique: dict[int, list[UniqueKey]] = {oid: [] for oid, *_ in relations}
    for oid, name, primary, partial, cols in conn.execute(_UNIQUE, params):
        unique[oid].append(UniqueKey(name, tuple(cols), primary, partial))
    foreign: dict[int, list[ForeignKey]] = {oid: [] for oid, *_ in relations}
    for oid, name, ref_schema, ref_table, cols, ref_cols in conn.execute(_FOREIGN, params):
        foreign[oid].append(ForeignKey(name, tuple(cols), ref_schema, ref_table, tuple(ref_cols)))
    tables = {
        (schema, name): Table(
            schema=schema,
            name=name,
            kind=_TABLE_KINDS[kind],
            columns=columns[oid],
            unique_keys=tuple(unique[oid]),
            foreign_keys=tuple(foreign[oid]),
        )
        for oid, schema, name, kind in relations
    }
    return Catalog(
        database, tuple(s for s in schemas if s in existing), tables, tuple(user_schemas(conn))
    )


@contextmanager
def read_only(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection in one read-only transaction, in UTC (days are UTC days)."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.read_only = True
        with conn.transaction():
            conn.execute("SET LOCAL TIME ZONE 'UTC'")
            yield conn


def load_catalog(url: str, schemas: Sequence[str] | None = None) -> Catalog:
    """Connect, read the catalog of `schemas` (default: every user schema), close."""
    with read_only(url) as conn:
        return read_catalog(conn, list(schemas) if schemas else user_schemas(conn))


def oldest_day(
    conn: psycopg.Connection[Any], columns: Sequence[tuple[str, str, str]]
) -> date | None:
    """The UTC day of the oldest value over (schema, table, time column)s; None: no rows.

    `min()` of an indexed column is an index probe; of an unindexed one, a scan (once, at
    `spec init`). Timestamps convert in the session's time zone: UTC in `read_only`.
    """
    if not columns:
        return None
    parts = [
        sql.SQL("SELECT min({})::date AS day FROM {}").format(
            sql.Identifier(column), sql.Identifier(schema, table)
        )
        for schema, table, column in columns
    ]
    query = sql.SQL("SELECT min(day) FROM ({}) days").format(sql.SQL(" UNION ALL ").join(parts))
    row = conn.execute(query).fetchone()
    return row[0] if row else None
