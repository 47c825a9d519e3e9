"""Checks that read Weaviate: 4 ids match, 6 orphans + references resolve, 7 vectors, 9 freshness.

Responsibilities are split so one culprit fails one check: `matches_event_store` fails on
objects missing for D (and on stale objects of aggregates the store knows); `references_resolve`
fails on objects whose aggregate the event store does not know at all (orphans) and on
references whose target object is absent; `vectors_complete` on absent, short, non-finite or
zero vectors. A multi-tenant collection is read tenant by tenant (strangler.search.tenants), and
a reference counts as resolved only when its target is in the referrer's tenant.
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
from strangler.search.objects import CREATION_EVENTS, object_uuid
from strangler.search.schema import DAY, TYPES, CollectionNames
from strangler.search.tracking import MIGRATION as SEARCH_MIGRATION

SYSTEM = "weaviate"
_PAGE = 1_000
_OFFSET_LIMIT = 9_000
"""Weaviate caps offset paging (QUERY_MAXIMUM_RESULTS, 10k): past it, walk the cursor."""
_ID_PROPERTY = {"Customer": "customer_id", "Document": "document_id", "OcrPage": "page_id"}
_REFERENCES = {
    "Document": ("customer", "Customer", "customer_id"),
    "OcrPage": ("document", "Document", "document_id"),
}


@dataclass
class DayObject:
    uuid: uuid.UUID
    properties: dict[str, Any]
    vector: list[float] | None = None
    tenant: str | None = None


@dataclass
class WeaviateDay:
    """D's objects of one collection."""

    aggregate_type: str
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
    names: CollectionNames,
    aggregate_type: str,
    partition_key: str,
    *,
    include_vector: bool = True,
) -> WeaviateDay:
    """Every object of D (in every tenant): filtered offset pages when D is small, else a
    cursor walk."""
    name = names.of(aggregate_type)
    out = WeaviateDay(aggregate_type, name)
    if not client.collections.exists(name):
        return out
    on_day = Filter.by_property(DAY).equal(partition_key)
    props = [DAY, _ID_PROPERTY[aggregate_type]]
    if aggregate_type in _REFERENCES:
        props.append(_REFERENCES[aggregate_type][2])
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


def _expected(
    conn: psycopg.Connection[Any], names: CollectionNames, aggregate_type: str, partition_key: str
) -> tuple[dict[uuid.UUID, str], int]:
    """uuid -> aggregate id of D's objects: created on D, not parked as a Weaviate failure."""
    rows = conn.execute(
        "SELECT DISTINCT e.aggregate_id FROM eventstore.events e"
        " WHERE e.partition_day = %s AND e.aggregate_type = %s AND e.event_type = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM migration_state.failed_entities f"
        "   WHERE f.migration = %s AND f.source_table = %s AND f.source_key = e.aggregate_id"
        "   AND f.resolved_at IS NULL)",
        (
            partition_key,
            aggregate_type,
            sorted(CREATION_EVENTS[aggregate_type]),
            SEARCH_MIGRATION,
            names.of(aggregate_type),
        ),
    ).fetchall()
    parked = conn.execute(
        "SELECT count(*) FROM migration_state.failed_entities WHERE migration = %s"
        " AND source_table = %s AND partition_key = %s AND resolved_at IS NULL",
        (SEARCH_MIGRATION, names.of(aggregate_type), partition_key),
    ).fetchone()
    return {object_uuid(aggregate_type, r[0]): r[0] for r in rows}, int(parked[0]) if parked else 0


def _known(conn: psycopg.Connection[Any], aggregate_type: str, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT aggregate_id FROM eventstore.events WHERE aggregate_type = %s"
        " AND aggregate_id = ANY(%s)",
        (aggregate_type, list(ids)),
    ).fetchall()
    return {r[0] for r in rows}


_SOURCE_TABLES = {"Customer": "customers", "Document": "documents", "OcrPage": "ocr_pages"}


def _parked(
    conn: psycopg.Connection[Any], names: CollectionNames, aggregate_type: str, ids: Sequence[str]
) -> set[str]:
    """Aggregates whose absence is already recorded: their row failed the event-store
    migration, or Weaviate rejected them (unresolved failed_entities)."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT source_key FROM migration_state.failed_entities WHERE resolved_at IS NULL"
        " AND source_key = ANY(%s) AND ((migration = %s AND source_table = %s)"
        " OR (migration = %s AND source_table = %s))",
        (
            list(ids),
            "event_store",
            _SOURCE_TABLES[aggregate_type],
            SEARCH_MIGRATION,
            names.of(aggregate_type),
        ),
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


def check_weaviate_collection(
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    partition_key: str,
    aggregate_type: str,
    *,
    names: CollectionNames | None = None,
    dimension: int | None = None,
    max_freshness_lag_s: float = 3_600.0,
    sample: int = 10,
) -> WeaviateOutcomes:
    """Checks 4, 6, 7 and 9 for one collection on D."""
    started = time.monotonic()
    names = names or CollectionNames()
    name = names.of(aggregate_type)
    day = read_day_objects(client, names, aggregate_type, partition_key)
    expected, parked = _expected(conn, names, aggregate_type, partition_key)
    present = set(day.objects)
    missing = sorted(set(expected) - present, key=lambda u: expected[u])
    extra = present - set(expected)
    id_prop = _ID_PROPERTY[aggregate_type]

    def aggregate_id(u: uuid.UUID) -> str:
        value = day.objects[u].properties.get(id_prop)
        return str(int(value)) if isinstance(value, int | float) else str(value)

    extra_ids = {u: aggregate_id(u) for u in extra}
    known = _known(conn, aggregate_type, sorted(set(extra_ids.values())))
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
            f"Every {aggregate_type} created on D in the event store (and not parked in "
            "failed_entities) is an object of D, and D holds no stale object of a known aggregate."
        ),
        target=name,
        left_label="event_store",
        right_label="weaviate",
        left_count=len(expected),
        right_count=len(present),
        offending=(
            [f"missing:{aggregate_type}:{expected[u]} ({u})" for u in missing[:sample]]
            + [f"stale:{aggregate_type}:{extra_ids[u]} ({u})" for u in stale[:sample]]
        )[:sample],
        reproduce=(
            "SELECT DISTINCT aggregate_id FROM eventstore.events WHERE partition_day ="
            f" '{partition_key}' AND aggregate_type = '{aggregate_type}' AND event_type IN"
            f" ({', '.join(repr(t) for t in sorted(CREATION_EVENTS[aggregate_type]))})"
            f"  -- vs Weaviate: {where}"
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
    if aggregate_type in _REFERENCES:
        _ref, target_type, prop = _REFERENCES[aggregate_type]
        wanted: dict[tuple[str | None, uuid.UUID], tuple[str, list[uuid.UUID]]] = {}
        for u, o in day.objects.items():
            value = o.properties.get(prop)
            if value is not None:
                target_id = str(int(value))
                key = (o.tenant, object_uuid(target_type, target_id))
                entry = wanted.setdefault(key, (target_id, []))
                entry[1].append(u)
        found = tenants.present(client, names.of(target_type), wanted)
        absent = {t: v for t, v in wanted.items() if t not in found}
        parked_targets = _parked(conn, names, target_type, [v[0] for v in absent.values()])
        for (_tenant, target), (target_id, sources) in sorted(
            absent.items(), key=lambda kv: kv[1][0]
        ):
            if target_id in parked_targets:
                explained += len(sources)
                continue
            dangling += [
                f"dangling:{aggregate_type}:{aggregate_id(s)} -> {target_type}:{target_id} ({target})"
                for s in sources
            ]
    references = CheckOutcome(
        name="weaviate.references_resolve",
        system=SYSTEM,
        partition_key=partition_key,
        passed=not orphans and not dangling,
        description=(
            f"Every {aggregate_type} object of D belongs to an aggregate the event store knows, "
            "and each of its references points to an existing object (or to one whose absence "
            "failed_entities already records)."
        ),
        target=name,
        left_label="objects",
        right_label="orphans_or_dangling",
        left_count=len(present),
        right_count=len(orphans) + len(dangling),
        offending=([f"orphan:{aggregate_type}:{extra_ids[u]} ({u})" for u in orphans] + dangling)[
            :sample
        ],
        reproduce=(
            f"{where}: {id_prop} must exist as aggregate_id in eventstore.events"
            f" (aggregate_type '{aggregate_type}')"
            + (
                f"; {_REFERENCES[aggregate_type][0]} -> {names.of(_REFERENCES[aggregate_type][1])}"
                " must exist"
                if aggregate_type in _REFERENCES
                else ""
            )
        ),
        details={
            "orphans": len(orphans),
            "dangling_references": len(dangling),
            "dangling_to_parked_targets": explained,
        },
    )
    vectors = _vectors_outcome(day, partition_key, dimension, sample, aggregate_id, where)
    newest_store: Any = None
    newest_here: Any = None
    present_ids = [expected[u] for u in present if u in expected]
    row = conn.execute(
        "SELECT max(occurred_at) FILTER (WHERE aggregate_id = ANY(%s)), max(occurred_at)"
        " FROM eventstore.events WHERE partition_day = %s AND aggregate_type = %s",
        (present_ids, partition_key, aggregate_type),
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
        f"max(occurred_at) of eventstore.events of the aggregates present in {where}",
    )
    for outcome in (matches, references, vectors, fresh):
        outcome.duration_s = time.monotonic() - started
    return WeaviateOutcomes(matches, references, vectors, fresh)


def _vectors_outcome(
    day: WeaviateDay,
    partition_key: str,
    dimension: int | None,
    sample: int,
    aggregate_id: Any,
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
            bad.append(f"{day.aggregate_type}:{aggregate_id(u)} ({u}): {why}")
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


def check_weaviate_day(
    conn: psycopg.Connection[Any],
    client: weaviate.WeaviateClient,
    partition_key: str,
    *,
    names: CollectionNames | None = None,
    types: Sequence[str] = TYPES,
    dimension: int | None = None,
    max_freshness_lag_s: float = 3_600.0,
    sample: int = 10,
) -> list[CheckOutcome]:
    out: list[CheckOutcome] = []
    for t in types:
        out += check_weaviate_collection(
            conn,
            client,
            partition_key,
            t,
            names=names,
            dimension=dimension,
            max_freshness_lag_s=max_freshness_lag_s,
            sample=sample,
        ).all()
    return out
