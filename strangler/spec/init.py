"""A first spec drafted from a live database's catalog (`strangler spec init`).

Everything the catalog can tell is filled in (keys, parents from foreign keys, the time
column, updated_at, soft delete, unmappable columns excluded, natural keys from unique
indexes), each guess with a comment saying why, and what only a person can decide (named
events, folding a child into its parent's stream) is left as commented-out suggestions. The
draft loads and passes `check_spec` against the database it was drawn from. The YAML is
written as text, comments inline (PyYAML cannot emit comments; ruamel.yaml is not a
dependency); scalars go through `_scalar`, which quotes whatever YAML would read otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise

import yaml

from strangler.spec.catalog import Catalog, ForeignKey, Table

UPDATED_AT = ("updated_at", "modified_at", "changed_at", "last_modified", "last_modified_at")
SOFT_DELETE = ("deleted_at", "is_deleted")
_TIME_NAMES = (
    re.compile(r"^(created|creation)(_at|_on|_time|_ts)?$|^created"),
    re.compile(r"^inserted"),
    re.compile(r"^(signed_up|registered|joined)"),
    re.compile(r"^(placed|ordered|submitted|occurred|happened|recorded)"),
    re.compile(r"_at$"),
)
_NOT_BIRTH = re.compile(r"updated|modified|changed|deleted|archived|expire|last_|seen|login")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]*$")


def _scalar(value: str) -> str:
    """A YAML scalar that reads back as this very string (`on`, `null`, `1e3` get quotes)."""
    if _PLAIN.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def _flow(values: Sequence[str]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def singular(word: str) -> str:
    """`countries` -> `country`, `addresses` -> `address`, `jobs` -> `job` (English-ish)."""
    lower = word.lower()
    for plural, one in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch")):
        if lower.endswith(plural) and len(word) > len(plural) + 1:
            return word[: -len(plural)] + one
    for plural, one in (("shes", "sh"), ("uses", "us")):
        if lower.endswith(plural) and len(word) > len(plural) + 1:
            return word[: -len(plural)] + one
    if lower.endswith("s") and not lower.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def aggregate_name(table: str) -> str:
    """`order_lines` -> `OrderLine`: CamelCase of the table name, its last word singular."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", table) if p]
    if parts:
        parts[-1] = singular(parts[-1])
    name = "".join(p[:1].upper() + p[1:] for p in parts)
    if not name[:1].isalpha():
        name = "T" + name
    return name[:63]


def _topic(table: Table) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{table.schema}.{table.name}")


def _estate_name(database: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", database.lower()).strip("-")
    return (name if name[:1].isalpha() else f"db-{name}".rstrip("-"))[:63]


def _time_column(table: Table) -> str | None:
    """The NOT NULL timestamp a row is born with, by name: created, inserted, placed, *_at."""
    candidates = [
        c
        for c in table.columns.values()
        if c.not_null
        and c.type_name in ("timestamptz", "timestamp")
        and not _NOT_BIRTH.search(c.name)
    ]
    for pattern in _TIME_NAMES:
        found = [c for c in candidates if pattern.search(c.name)]
        if found:
            found.sort(key=lambda c: c.type_name != "timestamptz")
            return found[0].name
    return None


@dataclass
class _Draft:
    table: Table
    name: str
    key: tuple[str, ...]
    parents: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Foreign keys that did not become parents, and why."""
    partitioning: str = "{reference: true}"
    why: str = ""
    dated: bool = False
    day_parent: str | None = None


def _drafts(catalog: Catalog, schemas: Sequence[str]) -> tuple[list[_Draft], list[str]]:
    """The drafted tables, parents first, partitioned; and the skipped ones with why."""
    skipped: list[str] = []
    drafts: dict[tuple[str, str], _Draft] = {}
    names: set[str] = set()
    table_names: set[str] = set()
    for schema in schemas:
        for table in catalog.tables_in(schema):
            key = table.row_key()
            if key is None:
                skipped.append(
                    f"{table.qualified}: no primary key or unique index of NOT NULL columns"
                )
                continue
            if table.name in table_names:
                skipped.append(f"{table.qualified}: another schema has a table {table.name}")
                continue
            name = aggregate_name(table.name)
            if name in names:
                name = aggregate_name(f"{table.schema}_{table.name}")
            names.add(name)
            table_names.add(table.name)
            drafts[(table.schema, table.name)] = _Draft(table, name, key)
    order = _parents_first(drafts)
    for draft in order:
        _partition(draft, drafts)
    return order, skipped


def own_day_columns(catalog: Catalog, schemas: Sequence[str]) -> list[tuple[str, str, str]]:
    """(schema, table, time column) of each table the draft partitions by its own day: the
    columns whose oldest value is the spec's `first_partition` (see `catalog.oldest_day`)."""
    order, _ = _drafts(catalog, schemas)
    return [
        (d.table.schema, d.table.name, column)
        for d in order
        if (column := _time_column(d.table)) is not None
    ]


def draft_spec(
    catalog: Catalog,
    schemas: Sequence[str],
    schema_ref: str | None = None,
    first_partition: date | None = None,
) -> str:
    """The commented YAML draft of a spec for the tables of `schemas`, parents first.

    `schema_ref` is the path or URL of `strangler.schema.json` for the editor's first line;
    `first_partition` the oldest row's day (today's when None: the tables are empty).
    """
    order, skipped = _drafts(catalog, schemas)
    return _render(catalog, schemas, order, skipped, schema_ref, first_partition)


def _link(fk: ForeignKey, drafts: dict[tuple[str, str], _Draft]) -> tuple[str, ...] | str:
    """The child's columns in the order of the parent's key, or why the FK is no parent."""
    parent = drafts.get((fk.ref_schema, fk.ref_table))
    if parent is None:
        return f"{fk.ref_qualified} is not drafted"
    if set(fk.ref_columns) != set(parent.key):
        return f"it references {list(fk.ref_columns)}, not {parent.name}'s key {list(parent.key)}"
    by_ref = dict(zip(fk.ref_columns, fk.columns, strict=True))
    return tuple(by_ref[c] for c in parent.key)


def _parents_first(drafts: dict[tuple[str, str], _Draft]) -> list[_Draft]:
    """Drafts ordered so each parent precedes its children; a cycle loses one link (noted)."""
    for draft in drafts.values():
        for fk in draft.table.foreign_keys:
            link = _link(fk, drafts)
            parent = drafts.get((fk.ref_schema, fk.ref_table))
            if isinstance(link, str):
                draft.notes.append(f"foreign key {fk.name}: not a parent, {link}")
            elif parent is draft:
                draft.notes.append(f"foreign key {fk.name}: refers to its own table")
            elif parent is not None and parent.name not in [p for p, _ in draft.parents]:
                draft.parents.append((parent.name, link))
    by_name = {d.name: d for d in drafts.values()}
    rank = {d.name: i for i, d in enumerate(drafts.values())}
    while True:
        graph = TopologicalSorter({d.name: [p for p, _ in d.parents] for d in drafts.values()})
        try:
            graph.prepare()
        except CycleError as exc:
            _break_cycle(exc.args[1], by_name)
            continue
        order: list[_Draft] = []
        while graph.is_active():
            ready = sorted(graph.get_ready(), key=rank.__getitem__)
            order.extend(by_name[n] for n in ready)
            graph.done(*ready)
        return order


def _break_cycle(cycle: list[str], by_name: dict[str, _Draft]) -> None:
    """Drop one parent link of the cycle (the child keeps a note saying so)."""
    for a, b in pairwise(cycle):
        for child, parent in ((a, b), (b, a)):
            links = by_name[child].parents
            if any(p == parent for p, _ in links):
                by_name[child].parents = [x for x in links if x[0] != parent]
                by_name[child].notes.append(
                    f"{parent} is not a parent: the foreign keys form a cycle"
                    f" ({' -> '.join(cycle)})"
                )
                return
    raise AssertionError(f"no link to break in the cycle {cycle}")


def _partition(draft: _Draft, drafts: dict[tuple[str, str], _Draft]) -> None:
    by_name = {d.name: d for d in drafts.values()}
    column = _time_column(draft.table)
    if column is not None:
        kind = draft.table.columns[column].type_name
        draft.partitioning = f"{{time_column: {_scalar(column)}}}"
        draft.why = f"own day: {column} is a NOT NULL {kind}, set when the row is born"
        draft.dated = True
        return
    dated = [p for p, _ in draft.parents if by_name[p].dated]
    if dated:
        draft.partitioning = f"{{parent: {_scalar(dated[0])}}}"
        draft.day_parent = dated[0]
        draft.why = f"parent's day: no time column of its own; a foreign key to dated {dated[0]}"
        draft.dated = True
        return
    draft.why = "reference data: no time column and no foreign key to a dated table"


def _render(
    catalog: Catalog,
    schemas: Sequence[str],
    order: list[_Draft],
    skipped: list[str],
    schema_ref: str | None,
    first_partition: date | None,
) -> str:
    out: list[str] = []
    if schema_ref:
        out.append(f"# yaml-language-server: $schema={schema_ref}")
    out += [
        f"# Draft estate spec of database {catalog.database} (schemas: {', '.join(schemas)}),",
        "# written by `strangler spec init` from the catalog. Review every guess: names,",
        "# partitioning, parents and rules. NOT NULL columns need no `required:` rule (the",
        "# database enforces them); foreign keys became `parents` (the orphan rule).",
        "# Check it with `strangler spec check FILE --against URL`.",
    ]
    out += [f"# skipped {s}" for s in skipped]
    out += ["version: 1", "estate:", f"  name: {_scalar(_estate_name(catalog.database))}"]
    if any(d.dated for d in order):
        if first_partition is None:
            out.append("  # no rows yet: today; set it to the day the data starts")
        else:
            out.append("  # the oldest row's day; fixed, so the set of partitions never shifts")
        day = first_partition or datetime.now(UTC).date()
        out.append(f"  first_partition: {day.isoformat()}")
    out.append("")
    out.append("aggregates:")
    if not order:
        out.append("  []  # no table with a key in these schemas")
    for draft in order:
        out += _aggregate(draft)
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _aggregate(draft: _Draft) -> list[str]:
    table = draft.table
    columns = table.columns
    unmappable = [c for c in columns.values() if c.json_kind is None]
    updated = next((c for c in UPDATED_AT if c in columns and columns[c].is_time), None)
    deleted = next(
        (
            c
            for c in SOFT_DELETE
            if c in columns and (columns[c].is_time or columns[c].type_name == "bool")
        ),
        None,
    )
    out = [f"  - name: {_scalar(draft.name)}", "    source:"]
    out.append(f"      schema: {_scalar(table.schema)}")
    out.append(f"      table: {_scalar(table.name)}")
    out.append(f"      primary_key: {_flow(draft.key)}")
    if updated:
        out.append(f"      updated_at: {_scalar(updated)}")
    if deleted:
        out.append(f"      soft_delete: {_scalar(deleted)}")
    if unmappable:
        types = ", ".join(f"{c.name} {c.display_type}" for c in unmappable)
        out.append(
            f"      # no JSON mapping ({types}); or carry as text: columns: {{c: {{as: string}}}}"
        )
        out.append(f"      exclude: {_flow([c.name for c in unmappable])}")
    out.append(f"    # {draft.why}")
    out.append(f"    partitioning: {draft.partitioning}")
    out.append(f"    topic: {_scalar(_topic(table))}")
    if draft.parents:
        out.append("    parents:")
        out += [
            f"      - {{aggregate: {_scalar(p)}, columns: {_flow(c)}}}" for p, c in draft.parents
        ]
    out += [f"    # {note}" for note in draft.notes]
    if draft.day_parent:
        parent = _scalar(draft.day_parent)
        out.append(f"    # fold_into: {parent}  # its events in {parent}'s stream (drop `topic`)")
    out += _event_hint(draft)
    skip = set(draft.key) | {c.name for c in unmappable}
    text = [c.name for c in columns.values() if c.is_text and not c.not_null and c.name not in skip]
    if text:
        out.append("    columns:  # nullable text: a row with control characters fails")
        out += [f"      {_scalar(c)}: {{no_control_chars: true}}" for c in text]
    natural = [
        k.columns for k in table.unique_keys if not k.partial and set(k.columns) != set(draft.key)
    ]
    if natural:
        out.append("    unique:  # unique indexes besides the key: natural keys")
        out += [f"      - {_flow(k)}" for k in natural]
    return out


def _event_hint(draft: _Draft) -> list[str]:
    """A commented named event from the first enum column, if the row has a time to give it."""
    table = draft.table
    at = _time_column(table) or next((c for c in UPDATED_AT if c in table.columns), None)
    enum = next((c for c in table.columns.values() if c.is_enum and c.enum_labels), None)
    if enum is None or at is None:
        return []
    label = enum.enum_labels[-1]
    subject = "" if enum.name in ("status", "state") else aggregate_name(enum.name)
    event = draft.name + subject + aggregate_name(label)
    if not event.isalnum():
        return []
    when = json.dumps(f"{enum.name} = '{label}'")
    return [
        "    # events:  # generic import/change/delete by default; named events from predicates:",
        "    #   named:",
        f"    #     - {{type: {event}, when: {when}, at: {at}}}",
    ]
