"""A spec against the monolith it describes: every name exists, keys are keys, types map.

Loading a spec (`load.py`) proves it is well formed; only the database can tell whether
`order_id` is a column, whether `[id]` identifies a row and whether a `tsvector` can be
carried, and only Postgres can compile the spec's SQL (`check_sql`). Each problem names the
spec's line and a fix, so `strangler spec check --against` fails before a migration run
would, on the first row, at 3 a.m.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from strangler.spec.catalog import TIME_TYPES, Catalog, Column, Table
from strangler.spec.load import Lines, SpecProblem, key_path, line_of
from strangler.spec.models import (
    Aggregate,
    EstateSpec,
    FieldSource,
    OwnDay,
    ParentDay,
    Reference,
    SqlField,
)

Loc = tuple[str | int, ...]
NUMERIC_KINDS = ("integer", "number", "decimal")


def did_you_mean(name: str, candidates: Collection[str]) -> str:
    """`; did you mean "email"?` for a misspelt name, else nothing."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


@dataclass
class _Report:
    path: str
    lines: Lines
    problems: list[SpecProblem] = field(default_factory=list)

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(
            SpecProblem(self.path, line_of(self.lines, loc), key_path(loc), message)
        )


def check_structure(
    spec: EstateSpec, *, path: str = "<spec>", lines: Lines | None = None
) -> list[SpecProblem]:
    """What needs no database: every parent-day chain ends at an aggregate with its own day."""
    report = _Report(path, lines or {})
    for index, aggregate in enumerate(spec.aggregates):
        _check_chain(spec, index, aggregate, report)
    return report.problems


def _check_chain(spec: EstateSpec, index: int, aggregate: Aggregate, report: _Report) -> None:
    if not isinstance(aggregate.partitioning, ParentDay):
        return
    chain = [aggregate]
    while isinstance(chain[-1].partitioning, ParentDay):
        chain.append(spec.aggregate(chain[-1].partitioning.parent))
    if isinstance(chain[-1].partitioning, Reference):
        names = " -> ".join(a.name for a in chain)
        report.add(
            ("aggregates", index, "partitioning", "parent"),
            f"{aggregate.name} takes its day from its parent ({names}), but {chain[-1].name} is"
            " reference data without a day; give the chain an aggregate with `time_column`,"
            " or make this one reference data too",
        )


def check_spec(
    spec: EstateSpec, catalog: Catalog, *, path: str = "<spec>", lines: Lines | None = None
) -> list[SpecProblem]:
    """Every problem of the spec against the database's catalog (empty: it fits)."""
    report = _Report(path, lines or {})
    report.problems.extend(check_structure(spec, path=path, lines=lines))
    for index, aggregate in enumerate(spec.aggregates):
        table = _table(catalog, index, aggregate, report)
        if table is not None:
            _AggregateCheck(spec, catalog, index, aggregate, table, report).run()
    return sorted(report.problems, key=lambda p: p.line or 0)


def _table(catalog: Catalog, index: int, aggregate: Aggregate, report: _Report) -> Table | None:
    source = aggregate.source
    table = catalog.table(source.db_schema, source.table)
    if table is not None:
        return table
    if source.db_schema not in catalog.schemas:
        report.add(
            ("aggregates", index, "source", "schema"),
            f"schema {source.db_schema} does not exist in database {catalog.database}"
            + did_you_mean(source.db_schema, catalog.all_schemas),
        )
        return None
    here = [t.name for t in catalog.tables_in(source.db_schema)]
    hint = did_you_mean(source.table, here)
    if not hint:
        elsewhere = [t.qualified for t in catalog.tables.values() if t.name == source.table]
        hint = f"; it exists as {', '.join(elsewhere)} (set `schema:`)" if elsewhere else ""
    report.add(
        ("aggregates", index, "source", "table"),
        f"table {source.qualified} does not exist in database {catalog.database}{hint}",
    )
    return None


@dataclass
class _AggregateCheck:
    spec: EstateSpec
    catalog: Catalog
    index: int
    aggregate: Aggregate
    table: Table
    report: _Report

    def loc(self, *parts: str | int) -> Loc:
        return ("aggregates", self.index, *parts)

    def column(self, name: str, loc: Loc) -> Column | None:
        """The column, or a problem naming the closest existing one."""
        found = self.table.columns.get(name)
        if found is None:
            self.report.add(
                loc,
                f"table {self.table.qualified} has no column {name}"
                + did_you_mean(name, self.table.columns),
            )
        return found

    def run(self) -> None:
        self.key()
        self.source_columns()
        self.partitioning()
        self.parents()
        self.rules()
        self.fields()
        self.types()
        self.search()

    def key(self) -> None:
        declared = self.aggregate.source.primary_key
        columns = [
            self.column(c, self.loc("source", "primary_key", i)) for i, c in enumerate(declared)
        ]
        if None in columns:
            return
        loc, table = self.loc("source", "primary_key"), self.table
        if not [k for k in table.unique_keys if not k.partial]:
            self.report.add(
                loc,
                f"table {table.qualified} has no primary key or unique index; declare"
                " primary_key: [...] of a unique column set (create a unique index on it"
                " in the monolith first)",
            )
            return
        key = table.key_named(declared)
        if key is None:
            keys = [list(k.columns) for k in table.unique_keys if not k.partial]
            self.report.add(
                loc,
                f"primary_key {declared} is neither the primary key nor a unique index of"
                f" {table.qualified}; its keys: {keys}",
            )
            return
        nullable = [c.name for c in columns if c is not None and not c.not_null]
        if nullable and not key.primary:
            self.report.add(
                loc,
                f"unique index {key.name} of {table.qualified} admits NULL in {nullable}, so it"
                " does not identify rows; make those columns NOT NULL or choose another key",
            )

    def source_columns(self) -> None:
        source = self.aggregate.source
        if source.updated_at is not None:
            column = self.column(source.updated_at, self.loc("source", "updated_at"))
            if column is not None and not column.is_time:
                self.report.add(
                    self.loc("source", "updated_at"),
                    f"updated_at column {source.updated_at} is {column.display_type}; it must be"
                    f" one of {', '.join(TIME_TYPES)}",
                )
        if source.soft_delete is not None:
            self.column(source.soft_delete, self.loc("source", "soft_delete"))
        for i, name in enumerate(source.exclude):
            self.column(name, self.loc("source", "exclude", i))

    def partitioning(self) -> None:
        part = self.aggregate.partitioning
        if not isinstance(part, OwnDay):
            return
        loc = self.loc("partitioning", "time_column")
        column = self.column(part.time_column, loc)
        if column is not None and not column.is_time:
            self.report.add(
                loc,
                f"time_column {part.time_column} is {column.display_type}; a day comes from"
                f" {', '.join(TIME_TYPES)}",
            )

    def parents(self) -> None:
        for i, link in enumerate(self.aggregate.parents):
            loc = self.loc("parents", i, "columns")
            parent = self.spec.aggregate(link.aggregate)
            key = parent.source.primary_key
            columns = [self.column(c, (*loc, j)) for j, c in enumerate(link.columns)]
            if len(link.columns) != len(key):
                self.report.add(
                    loc,
                    f"{len(link.columns)} column(s) {link.columns} for parent {parent.name},"
                    f" whose primary_key has {len(key)}: {key}",
                )
                continue
            parent_table = self.catalog.table(parent.source.db_schema, parent.source.table)
            if parent_table is None:
                continue
            for j, (mine, theirs) in enumerate(zip(columns, key, strict=True)):
                other = parent_table.columns.get(theirs)
                if mine is None or other is None or mine.json_kind == other.json_kind:
                    continue
                self.report.add(
                    (*loc, j),
                    f"{mine.name} is {mine.display_type} but {parent.name}'s key column"
                    f" {theirs} is {other.display_type}; list the columns in the order of"
                    f" {parent.name}'s primary_key {key}",
                )

    def rules(self) -> None:
        aggregate = self.aggregate
        for name, declared in aggregate.columns.items():
            loc = self.loc("columns", name)
            column = self.column(name, loc)
            if column is None:
                continue
            kind = declared.as_ or column.json_kind
            if (declared.min is not None or declared.max is not None) and (
                column.json_kind not in NUMERIC_KINDS
            ):
                self.report.add(loc, f"min/max need a number; {name} is {column.display_type}")
            if declared.not_future and not column.is_time:
                self.report.add(
                    loc, f"not_future needs a timestamp or date; {name} is {column.display_type}"
                )
            if declared.json_ and not (column.is_text or kind == "json"):
                self.report.add(
                    loc, f"json: true needs a text column; {name} is {column.display_type}"
                )
        for i, natural in enumerate(aggregate.unique):
            for j, name in enumerate(natural):
                self.column(name, self.loc("unique", i, j))
        for i, named in enumerate(aggregate.events.named):
            for j, name in enumerate(named.identity):
                self.column(name, self.loc("events", "named", i, "identity", j))

    def fields(self) -> None:
        events = self.aggregate.events
        sets: list[tuple[Loc, dict[str, FieldSource] | None]] = [
            (self.loc("events", "import", "fields"), events.import_.fields),
            (self.loc("events", "change", "fields"), events.change.fields),
            (self.loc("events", "delete", "fields"), events.delete.fields),
            *(
                (self.loc("events", "named", i, "fields"), n.fields)
                for i, n in enumerate(events.named)
            ),
        ]
        for loc, fields in sets:
            for name, source in (fields or {}).items():
                if isinstance(source, str):
                    self.column(source, (*loc, name))

    def types(self) -> None:
        """Every carried column maps to JSON, unless excluded or given `as:`."""
        aggregate = self.aggregate
        excluded = set(aggregate.source.exclude)
        for column in self.table.columns.values():
            declared = aggregate.columns.get(column.name)
            if column.name in excluded or column.json_kind or (declared and declared.as_):
                continue
            loc = self.loc("columns", column.name) if declared else self.loc("source", "table")
            self.report.add(
                loc,
                f"column {self.table.qualified}.{column.name} has type {column.display_type},"
                " which events cannot carry; exclude it (source: {exclude:"
                f" [{column.name}]}}) or carry it as text (columns: {{{column.name}:"
                " {as: string}})",
            )

    def carried_fields(self) -> set[str]:
        """The payload fields of the aggregate's import, change and named events (not the
        delete's): what a collection object can hold. A default payload carries every column
        of the table the spec does not exclude."""
        events = self.aggregate.events
        every = set(self.table.columns) - set(self.aggregate.source.exclude)
        out: set[str] = set()
        for fields in [
            *(e.fields for e in (events.import_, events.change) if e.enabled),
            *(n.fields for n in events.named),
        ]:
            out |= every if fields is None else set(fields)
        return out

    def search(self) -> None:
        """Every field `search:` names is one the aggregate's events carry (loading the spec
        already made sure a `{parent: X}` tenant is a searchable parent); search needs a
        partition, which reference data does not have."""
        search = self.aggregate.search
        if search is None:
            return
        if self.aggregate.is_reference:
            self.report.add(
                self.loc("search"),
                f"{self.aggregate.name} is reference data; search: needs aggregates partitioned"
                " by time (remove search: or give the aggregate a time_column)",
            )
        carried = self.carried_fields()

        def known(name: str, loc: Loc, what: str) -> None:
            if name not in carried:
                self.report.add(
                    loc,
                    f"{what} {name!r} is not a field of {self.aggregate.name}'s events"
                    + did_you_mean(name, carried)
                    + f" (its fields: {', '.join(sorted(carried))})",
                )

        for name in dict.fromkeys(search.text_fields):
            known(name, self.loc("search", "text"), "the text template's field")
        for i, name in enumerate(search.properties or []):
            known(name, self.loc("search", "properties", i), "property")
        if isinstance(search.tenant, str):
            known(search.tenant, self.loc("search", "tenant"), "tenant field")
        stored = self.stored_fields(carried)
        for i, query in enumerate(search.queries):
            for key in query.expect:
                loc = self.loc("search", "queries", i, "expect", key)
                if key not in carried:
                    known(key, loc, "expected field")
                elif stored is not None and key not in stored:
                    self.report.add(
                        loc,
                        f"expected field {key!r} is not stored on the objects; add it to"
                        " search.properties",
                    )

    def stored_fields(self, carried: set[str]) -> set[str] | None:
        """The fields a collection object stores when `search.properties` lists them (None:
        every carried field): those, the template's, the tenant and the parents' keys."""
        search = self.aggregate.search
        assert search is not None
        if search.properties is None:
            return None
        events = self.aggregate.events
        explicit = [
            *(e.fields for e in (events.import_, events.change) if e.enabled and e.fields),
            *(n.fields for n in events.named if n.fields),
        ]
        parent_fields: set[str] = set()
        for link in self.aggregate.parents:
            for column in link.columns:
                if column in carried:
                    parent_fields.add(column)
                parent_fields |= {
                    f for fields in explicit for f, s in fields.items() if s == column
                }
        tenant = [search.tenant] if isinstance(search.tenant, str) else []
        return {*search.properties, *search.text_fields, *tenant, *parent_fields}


_TIME_OIDS = {1184: "timestamptz", 1114: "timestamp", 1082: "date"}
_BOOL_OID = 16


def _expressions(aggregate: Aggregate) -> list[tuple[Loc, str, str]]:
    """(key path, SQL, what it must be) of every SQL expression the aggregate declares."""
    out: list[tuple[Loc, str, str]] = []
    events = aggregate.events
    generic = (("import", events.import_), ("change", events.change), ("delete", events.delete))
    for kind, event in generic:
        if event.at:
            out.append((("events", kind, "at"), event.at, "time"))
        for name, source in (event.fields or {}).items():
            if isinstance(source, SqlField):
                out.append((("events", kind, "fields", name, "sql"), source.sql, "any"))
    for i, named in enumerate(events.named):
        out.append((("events", "named", i, "when"), named.when, "boolean"))
        out.append((("events", "named", i, "at"), named.at, "time"))
        for name, source in (named.fields or {}).items():
            if isinstance(source, SqlField):
                out.append((("events", "named", i, "fields", name, "sql"), source.sql, "any"))
    return out


def check_sql(
    spec: EstateSpec,
    conn: psycopg.Connection[Any],
    *,
    path: str = "<spec>",
    lines: Lines | None = None,
) -> list[SpecProblem]:
    """Compile every SQL expression of the spec against its table (`LIMIT 0`: no row read).

    `when` must be boolean and `at` a timestamp or date. Each expression runs in its own
    savepoint, so one error does not hide the next; the connection may be read-only. Run it
    once the names check out (`check_spec` empty): an unknown table would fail every line.
    """
    report = _Report(path, lines or {})
    for index, aggregate in enumerate(spec.aggregates):
        table = sql.Identifier(aggregate.source.db_schema, aggregate.source.table)
        for loc, text, must_be in _expressions(aggregate):
            # No parameters are bound, so psycopg leaves a `%` in the user's SQL alone.
            query = sql.SQL("SELECT ({}) FROM {} t LIMIT 0").format(sql.SQL(text), table)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(query)
                    type_oid = cur.description[0].type_code if cur.description else 0
            except psycopg.Error as exc:
                reason = (exc.diag.message_primary or str(exc)).strip()
                hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
                report.add(("aggregates", index, *loc), f"SQL does not run: {reason}{hint}")
                continue
            if must_be == "boolean" and type_oid != _BOOL_OID:
                report.add(("aggregates", index, *loc), "`when` must be a boolean expression")
            if must_be == "time" and type_oid not in _TIME_OIDS:
                report.add(
                    ("aggregates", index, *loc),
                    "`at` must give a timestamptz, timestamp or date",
                )
    return report.problems
