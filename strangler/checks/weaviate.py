"""Checks that read Weaviate: 4 ids match, 6 orphans + references resolve, 7 vectors, 9 freshness.

Generic over the spec's searchable aggregates (`strangler.search.schema.CollectionDecl`): an
object's row is its `source_id` property, a row's events are found by the aggregate's event
types, and its references by the foreign key properties every collection stores.
Responsibilities are split so one culprit fails one check: `matches_event_store` fails on
objects missing for D (and on stale objects of rows the store knows, deleted rows included);
`references_resolve` fails on objects whose row the event store does not know at all (orphans)
and on references whose target object is absent (unless failed_entities records why, or the
target row was deleted); `vectors_complete` on absent, short, non-finite or zero vectors. A
multi-tenant collection is read tenant by tenant (strangler.search.tenants), and a reference
counts as resolved only when its target is in the referrer's tenant.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import weaviate
from weaviate.classes.query import Filter

from strangler.checks.kafka import freshness_outcome
from strangler.checks.outcome import CheckOutcome
from strangler.search import tenants
from strangler.search.objects import key_text, object_uuid
from strangler.search.schema import (
    DAY,
    SOURCE_ID,
    CollectionDecl,
    CollectionNames,
    declare_from_store,
)
from strangler.search.tracking import MIGRATION as SEARCH_MIGRATION
from strangler.spec.models import EstateSpec

SYSTEM = "weaviate"
_PAGE = 1_000
_OFFSET_LIMIT = 9_000
"""Weaviate caps offset paging (QUERY_MAXIMUM_RESULTS, 10k): past it, walk the cursor."""
_ROW = "coalesce(metadata ->> 'source_id', aggregate_id)"
"""SQL of an event's source row (a folded row's stream id is its parent's)."""


@dataclass
class DayObject:
    uuid: uuid.UUID
    properties: dict[str, Any]
    vector: list[float] | None = None
    tenant: str | None = None


@dataclass
class WeaviateDay:
    """D's objects of one collection."""

    aggregate: str
    collection: str
    objects: dict[uuid.UUID, DayObject] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)
    """Tenants read (empty: a single-tenant collection)."""


def _vector(obj: Any) -> list[float] | None:
    v = obj.vector
    if isinstance(v, dict):
        v = v.get("default") or next(iter(v.values()), None)
    return list(v) if v is not None else None


def read_day_objects(
    client: weaviate.WeaviateClient,
    decl: CollectionDecl,
    partition_key: str,
    *,
    include_vector: bool = True,
) -> WeaviateDay:
    """Every object of D (in every tenant): filtered offset pages when D is small, else a
    cursor walk."""
    name = decl.name
    out = WeaviateDay(decl.aggregate, name)
    if not client.collections.exists(name):
        return out
    on_day = Filter.by_property(DAY).equal(partition_key)
    props = list(
        dict.fromkeys([DAY, SOURCE_ID, *(f for fs in decl.parent_fields.values() for f in fs)])
    )
    for tenant, collection in tenants.scopes(client, name):
        if tenant is not None:
            out.tenants.append(tenant)
        total = collection.aggregate.over_all(filters=on_day, total_count=True).total_count or 0
        if total == 0:
            continue
        objs: Iterator[Any]
        if total <= _OFFSET_LIMIT:
            objs = _pages(collection, on_day, props, include_vector, total)
        else:
            objs = (
                o
                for o in collection.iterator(include_vector=include_vector, return_properties=props)
                if o.properties.get(DAY) == partition_key
            )
        for o in objs:
            out.objects[o.uuid] = DayObject(
                o.uuid, dict(o.properties), _vector(o) if include_vector else None, tenant
            )
    return out


def _pages(
    collection: Any, on_day: Any, props: list[str], include_vector: bool, total: int
) -> Iterator[Any]:
    for offset in range(0, total + _PAGE, _PAGE):
        page = collection.query.fetch_objects(
            filters=on_day,
            limit=_PAGE,
            offset=offset,
            include_vector=include_vector,
            return_properties=props,
        )
        yield from page.objects
        if len(page.objects) < _PAGE:
            return


def _types(decl: CollectionDecl) -> list[str]:
    return sorted(decl.upsert_events | decl.delete_events)


def _expected(
    conn: psycopg.Connection[Any], decl: CollectionDecl, partition_key: str
) -> tuple[dict[uuid.UUID, str], int]:
    """uuid -> row id of D's objects: rows with events on D, not deleted, not parked as a
    Weaviate failure; and how many failures of D are parked."""
    rows = conn.execute(
        f"SELECT r FROM (SELECT {_ROW} AS r, bool_or(event_type = ANY(%s)) AS deleted"
        " FROM eventstore.events WHERE partition_key = %s AND aggregate_type = %s"
        " AND event_type = ANY(%s) GROUP BY 1) x WHERE NOT deleted"
        " AND NOT EXISTS (SELECT 1 FROM migration_state.failed_entities f"
        "   WHERE f.migration = %s AND f.source_table = %s AND f.source_key = x.r"
        "   AND f.resolved_at IS NULL)",
        (
            sorted(decl.delete_events),
            partition_key,
            decl.stream_type,
            _types(decl),
            SEARCH_MIGRATION,
            decl.name,
        ),
    ).fetchall()
    parked = conn.execute(
        "SELECT count(*) FROM migration_state.failed_entities WHERE migration = %s"
        " AND source_table = %s AND partition_key = %s AND resolved_at IS NULL",
        (SEARCH_MIGRATION, decl.name, partition_key),
    ).fetchone()
    return {object_uuid(decl.aggregate, r[0]): r[0] for r in rows}, int(parked[0]) if parked else 0


def _rows(
    conn: psycopg.Connection[Any], decl: CollectionDecl, ids: Sequence[str]
) -> dict[str, bool]:
    """Row id -> deleted, for the rows among `ids` the event store knows."""
    if not ids:
        return {}
    folded = decl.stream_type != decl.aggregate
    rows = conn.execute(
        f"SELECT {_ROW}, bool_or(event_type = ANY(%s)) FROM eventstore.events"
        f" WHERE aggregate_type = %s AND event_type = ANY(%s) AND {_ROW} = ANY(%s)"
        + ("" if folded else " AND aggregate_id = ANY(%s)")
        + " GROUP BY 1",
        (
            sorted(decl.delete_events),
            decl.stream_type,
            _types(decl),
            list(ids),
            *([] if folded else [list(ids)]),
        ),
    ).fetchall()
    return {str(r[0]): bool(r[1]) for r in rows}


def _parked(conn: psycopg.Connection[Any], decl: CollectionDecl, ids: Sequence[str]) -> set[str]:
    """Rows whose absence is already recorded: their row failed the event-store migration, or
    Weaviate rejected them (unresolved failed_entities)."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT source_key FROM migration_state.failed_entities WHERE resolved_at IS NULL"
        " AND source_key = ANY(%s) AND ((migration = %s AND source_table = %s)"
        " OR (migration = %s AND source_table = %s))",
        (list(ids), "event_store", decl.source_table, SEARCH_MIGRATION, decl.name),
    ).fetchall()
    return {r[0] for r in rows}


@dataclass
class WeaviateOutcomes:
    matches: CheckOutcome
    references: CheckOutcome
    vectors: CheckOutcome
    fresh: CheckOutcome

    def all(self) -> list[CheckOutcome]:
        return [self.matches, self.references, self.vectors, self.fresh]


def check_collection(
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    partition_key: str,
    decl: CollectionDecl,
    decls: Sequence[CollectionDecl],
    *,
    dimension: int | None = None,
    max_freshness_lag_s: float = 3_600.0,
    sample: int = 10,
) -> WeaviateOutcomes:
    """Checks 4, 6, 7 and 9 for one collection on D (`decls`: every collection of the spec,
    for the reference targets)."""
    started = time.monotonic()
    name = decl.name
    aggregate = decl.aggregate
    day = read_day_objects(client, decl, partition_key)
    expected, parked = _expected(conn, decl, partition_key)
    present = set(day.objects)
    missing = sorted(set(expected) - present, key=lambda u: expected[u])
    extra = present - set(expected)

    def row_id(u: uuid.UUID) -> str:
        return str(day.objects[u].properties.get(SOURCE_ID))

    extra_ids = {u: row_id(u) for u in extra}
    known = _rows(conn, decl, sorted(set(extra_ids.values())))
    stale = sorted((u for u, a in extra_ids.items() if a in known), key=str)
    orphans = sorted((u for u, a in extra_ids.items() if a not in known), key=str)
    where = f"{name} where {DAY} == '{partition_key}'" + (
        f" (in each of its {len(day.tenants)} tenants)" if day.tenants else ""
    )
    matches = CheckOutcome(
        name="weaviate.matches_event_store",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not missing and not stale,
        description=(
            f"Every {aggregate} row with events on D in the event store (not deleted, not parked"
            " in failed_entities) is an object of D, and D holds no stale object of a known row."
        ),
        target=name,
        left_label="event_store",
        right_label="weaviate",
        left_count=len(expected),
        right_count=len(present),
        offending=(
            [f"missing:{aggregate}:{expected[u]} ({u})" for u in missing[:sample]]
            + [
                f"stale:{aggregate}:{extra_ids[u]} ({u})"
                + (" deleted" if known[extra_ids[u]] else "")
                for u in stale[:sample]
            ]
        )[:sample],
        reproduce=(
            f"SELECT DISTINCT {_ROW} FROM eventstore.events WHERE partition_key ="
            f" '{partition_key}' AND aggregate_type = '{decl.stream_type}' AND event_type IN"
            f" ({', '.join(repr(t) for t in sorted(decl.upsert_events))}) -- minus rows with a"
            f" {sorted(decl.delete_events)} event; vs Weaviate: {where}"
        ),
        details={
            "missing": len(missing),
            "stale": len(stale),
            "orphans_see_references_check": len(orphans),
            "parked_failures": parked,
        },
    )
    dangling: list[str] = []
    explained = 0
    by_aggregate = {d.aggregate: d for d in decls}
    for ref in decl.references:
        target_decl = by_aggregate[ref.target]
        wanted: dict[tuple[str | None, uuid.UUID], tuple[str, list[uuid.UUID]]] = {}
        for u, o in day.objects.items():
            values = [o.properties.get(f) for f in ref.fields]
            if all(v is not None for v in values):
                target_id = key_text(values)
                key = (o.tenant, object_uuid(ref.target, target_id))
                wanted.setdefault(key, (target_id, []))[1].append(u)
        found = tenants.present(client, ref.target_collection, wanted)
        absent = {t: v for t, v in wanted.items() if t not in found}
        absent_ids = sorted({v[0] for v in absent.values()})
        explained_ids = _parked(conn, target_decl, absent_ids) | {
            r for r, deleted in _rows(conn, target_decl, absent_ids).items() if deleted
        }
        for (_tenant, target), (target_id, sources) in sorted(
            absent.items(), key=lambda kv: kv[1][0]
        ):
            if target_id in explained_ids:
                explained += len(sources)
                continue
            dangling += [
                f"dangling:{aggregate}:{row_id(s)} -> {ref.target}:{target_id} ({target})"
                for s in sources
            ]
    references = CheckOutcome(
        name="weaviate.references_resolve",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not orphans and not dangling,
        description=(
            f"Every {aggregate} object of D belongs to a row the event store knows, and each of"
            " its references points to an existing object (or to one whose absence"
            " failed_entities records, or whose row was deleted)."
        ),
        target=name,
        left_label="objects",
        right_label="orphans_or_dangling",
        left_count=len(present),
        right_count=len(orphans) + len(dangling),
        offending=([f"orphan:{aggregate}:{extra_ids[u]} ({u})" for u in orphans] + dangling)[
            :sample
        ],
        reproduce=(
            f"{where}: {SOURCE_ID} must exist as a row of eventstore.events"
            f" (aggregate_type '{decl.stream_type}')"
            + "".join(
                f"; {r.name} ({', '.join(r.fields)}) -> {r.target_collection} must exist"
                for r in decl.references
            )
        ),
        details={
            "orphans": len(orphans),
            "dangling_references": len(dangling),
            "dangling_to_parked_or_deleted_targets": explained,
        },
    )
    vectors = _vectors_outcome(day, partition_key, dimension, sample, row_id, where)
    newest_store: Any = None
    newest_here: Any = None
    present_ids = [expected[u] for u in present if u in expected]
    row = conn.execute(
        f"SELECT max(occurred_at) FILTER (WHERE {_ROW} = ANY(%s)),"
        f" max(occurred_at) FILTER (WHERE {_ROW} = ANY(%s))"
        " FROM eventstore.events WHERE partition_key = %s AND aggregate_type = %s"
        " AND event_type = ANY(%s)",
        (
            present_ids,
            list(expected.values()),
            partition_key,
            decl.stream_type,
            sorted(decl.upsert_events),
        ),
    ).fetchone()
    if row:
        newest_here, newest_store = row[0], row[1]
    conn.rollback()
    fresh = freshness_outcome(
        "weaviate.fresh",
        SYSTEM,
        partition_key,
        name,
        newest_store,
        newest_here,
        max_freshness_lag_s,
        f"max(occurred_at) of eventstore.events of the rows present in {where}",
    )
    for outcome in (matches, references, vectors, fresh):
        outcome.duration_s = time.monotonic() - started
    return WeaviateOutcomes(matches, references, vectors, fresh)


def _vectors_outcome(
    day: WeaviateDay,
    partition_key: str,
    dimension: int | None,
    sample: int,
    row_id: Any,
    where: str,
) -> CheckOutcome:
    """Check 7: each object of D has a vector of the model's dimension, finite and non-zero."""
    lengths = Counter(len(o.vector) for o in day.objects.values() if o.vector is not None)
    want = dimension or (lengths.most_common(1)[0][0] if lengths else 0)
    bad: list[str] = []
    for u, o in sorted(day.objects.items(), key=lambda kv: str(kv[0])):
        v = o.vector
        why = None
        if v is None:
            why = "no vector"
        elif len(v) != want:
            why = f"dimension {len(v)} (model {want})"
        elif not all(math.isfinite(x) for x in v):
            why = "non-finite component"
        elif not any(x != 0.0 for x in v):
            why = "zero vector"
        if why:
            bad.append(f"{day.aggregate}:{row_id(u)} ({u}): {why}")
    return CheckOutcome(
        name="weaviate.vectors_complete",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not bad,
        description="Every object of D has a finite, non-zero vector of the model's dimension.",
        target=day.collection,
        left_label="objects",
        right_label="bad_vectors",
        left_count=len(day.objects),
        right_count=len(bad),
        offending=bad[:sample],
        reproduce=f"{where}, include_vector=True: check length == {want}, finite, non-zero",
        details={"dimension": want, "lengths": {str(k): v for k, v in lengths.items()}},
    )


def check_weaviate_collection(
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    partition_key: str,
    aggregate: str,
    *,
    spec: EstateSpec | None = None,
    names: CollectionNames | None = None,
    dimension: int | None = None,
    max_freshness_lag_s: float = 3_600.0,
    sample: int = 10,
) -> WeaviateOutcomes:
    """Checks 4, 6, 7 and 9 of one searchable aggregate's collection on D (`spec`: the
    settings' spec unless given)."""
    if spec is None:
        from strangler.spec import current_spec

        spec = current_spec()
    decls = declare_from_store(conn, spec, names or CollectionNames())
    decl = next((d for d in decls if d.aggregate == aggregate), None)
    if decl is None:
        raise KeyError(f"{aggregate!r} has no search: declaration, so no collection")
    return check_collection(
        conn,
        client,
        partition_key,
        decl,
        decls,
        dimension=dimension,
        max_freshness_lag_s=max_freshness_lag_s,
        sample=sample,
    )


def check_weaviate_partition(
    spec: EstateSpec,
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    partition_key: str,
    *,
    names: CollectionNames | None = None,
    aggregates: Sequence[str] | None = None,
    dimension: int | None = None,
    max_freshness_lag_s: float = 3_600.0,
    sample: int = 10,
) -> list[CheckOutcome]:
    """Every Weaviate check of every searchable aggregate (or of `aggregates`) on D."""
    decls = declare_from_store(conn, spec, names or CollectionNames())
    out: list[CheckOutcome] = []
    for decl in decls:
        if aggregates is not None and decl.aggregate not in aggregates:
            continue
        out += check_collection(
            conn,
            client,
            partition_key,
            decl,
            decls,
            dimension=dimension,
            max_freshness_lag_s=max_freshness_lag_s,
            sample=sample,
        ).all()
    return out
