"""Step 2: copy everything a rollback removes, so the rollback itself can be undone.

Postgres rows go to tables in schema `rollback_snapshots` (types kept exactly); ClickHouse
partitions are attached (hard-linked parts, no FREEZE) into `rb_<id>_<table>` twins; Weaviate
objects with vectors and references go to JSONL under the snapshot dir (with their tenant when
the collection is multi-tenant); relay progress values are kept as JSON beside them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from weaviate.classes.query import Filter, QueryReference

from strangler.analytics.swap import partition_id
from strangler.migration.relay_progress import progress_key, read_progress
from strangler.rollback.plan import Plan
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.stores import clickhouse_tables
from strangler.rollback.targets import Targets
from strangler.search.objects import key_text, object_uuid
from strangler.search.schema import DAY, ReferenceDecl, declare_from_store
from strangler.search.tenants import is_multi_tenant, scopes

SNAPSHOT_SCHEMA = "rollback_snapshots"
PG_TABLES: dict[str, tuple[str, str, str]] = {
    # snapshot name -> (schema, table, day column)
    "events": ("eventstore", "events", "partition_day"),
    "outbox": ("eventstore", "outbox", "partition_day"),
    "checkpoints": ("migration_state", "migration_checkpoints", "partition_key"),
    "offset_ranges": ("migration_state", "kafka_offset_ranges", "partition_key"),
}
SERVICE_TABLES: dict[str, tuple[str, ...]] = {
    EVENT_STORE: ("events", "outbox", "checkpoints"),
    RELAY: ("offset_ranges",),
}


def tag(request_id: uuid.UUID | str) -> str:
    return uuid.UUID(str(request_id)).hex


def pg_snapshot_table(request_id: uuid.UUID | str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(
        sql.Identifier(SNAPSHOT_SCHEMA), sql.Identifier(f"rb_{tag(request_id)}_{name}")
    )


def ch_snapshot_table(request_id: uuid.UUID | str, table: str) -> str:
    return f"rb_{tag(request_id)}_{table}"


def snapshot_dir(targets: Targets, request_id: uuid.UUID | str) -> Path:
    return targets.snapshot_dir / str(request_id)


@dataclass
class SnapshotResult:
    items: dict[str, dict[str, int]] = field(default_factory=dict)
    """store -> day -> items copied."""
    locations: dict[str, str] = field(default_factory=dict)

    def add(self, store: str, day: str, n: int, location: str) -> None:
        self.items.setdefault(store, {})[day] = self.items.get(store, {}).get(day, 0) + n
        self.locations[store] = location


def _record(conn: psycopg.Connection[Any], request_id: str, result: SnapshotResult) -> None:
    for store, per_day in result.items.items():
        for day, n in per_day.items():
            conn.execute(
                "INSERT INTO migration_state.rollback_snapshots"
                " (request_id, store, partition_key, location, items) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (request_id, store, partition_key) DO UPDATE"
                " SET location = EXCLUDED.location, items = EXCLUDED.items, created_at = now()",
                (request_id, store, day, result.locations[store], n),
            )


def _snapshot_postgres(
    conn: psycopg.Connection[Any], request_id: str, plan: Plan, result: SnapshotResult
) -> None:
    for service, names in SERVICE_TABLES.items():
        if service not in plan.scope.services:
            continue
        for name in names:
            schema, table, day_col = PG_TABLES[name]
            target = pg_snapshot_table(request_id, name)
            source = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(
                sql.SQL("CREATE TABLE {} AS SELECT * FROM {} WHERE {}::text = ANY(%s)").format(
                    target, source, sql.Identifier(day_col)
                ),
                (plan.days,),
            )
            counts = dict(
                conn.execute(
                    sql.SQL("SELECT {}::text, count(*) FROM {} GROUP BY 1").format(
                        sql.Identifier(day_col), target
                    )
                ).fetchall()
            )
            for day in plan.days:
                result.add(f"postgres.{name}", day, int(counts.get(day, 0)), target.as_string(conn))


def _snapshot_progress(
    targets: Targets, request_id: str, plan: Plan, result: SnapshotResult
) -> None:
    keys = {progress_key(t, d) for t in targets.topics for d in plan.days}
    found = read_progress(targets.kafka, targets.progress_topic, keys, timeout_s=60)
    folder = snapshot_dir(targets, request_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "relay_progress.json"
    path.write_text(json.dumps({k: json.loads(v.to_json()) for k, v in found.items()}, indent=1))
    for day in plan.days:
        n = sum(1 for k in found if k.endswith(f"|{day}"))
        result.add("kafka.relay_progress", day, n, str(path))


def _snapshot_clickhouse(
    targets: Targets, request_id: str, plan: Plan, result: SnapshotResult
) -> None:
    tables = clickhouse_tables(targets)
    with targets.clickhouse() as client:
        for table in tables:
            snap = targets.ddl.table(ch_snapshot_table(request_id, table))
            client.command(f"DROP TABLE IF EXISTS {snap} SYNC")
            client.command(f"CREATE TABLE {snap} AS {targets.ddl.table(table)}")
            for day in plan.days:
                pid = partition_id(day)
                # Hard-links the day's parts: instant, and exact (no merge, no MV firing).
                client.command(
                    f"ALTER TABLE {snap} ATTACH PARTITION ID '{pid}' FROM {targets.ddl.table(table)}"
                )
                n = client.query(
                    f"SELECT count() FROM {snap} WHERE _partition_id = {{p:String}}",
                    parameters={"p": pid},
                ).result_rows[0][0]
                result.add(f"clickhouse.{table}", day, int(n), snap)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot snapshot a {type(value).__name__}")


def _object_doc(obj: Any) -> dict[str, Any]:
    references = {
        prop: [str(o.uuid) for o in ref.objects] for prop, ref in (obj.references or {}).items()
    }
    vector = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
    return {
        "uuid": str(obj.uuid),
        "properties": obj.properties,
        "vector": vector,
        "references": references,
    }


_CHUNK = 1_000


def _filtered_references(coll: Any, ref: ReferenceDecl, docs: list[dict[str, Any]]) -> None:
    """Fill reference `ref` of `docs` by filtering on its expected target (from the object's
    own foreign key properties): a tenant query cannot resolve a reference into a
    single-tenant collection (weaviate/weaviate#7281), but it can filter on one."""
    by_target: dict[uuid.UUID, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        values = [doc["properties"].get(f) for f in ref.fields]
        if all(v is not None for v in values):
            target = object_uuid(ref.target, key_text(values))
            by_target.setdefault(target, {})[doc["uuid"]] = doc
    for target, group in by_target.items():
        hits = coll.query.fetch_objects(
            filters=Filter.by_id().contains_any(list(group))
            & Filter.by_ref(ref.name).by_id().equal(target),
            limit=len(group),
            return_properties=[],
        ).objects
        for hit in hits:
            group[str(hit.uuid)]["references"][ref.name] = [str(target)]


def _day_docs(
    client: Any, coll: Any, tenant: str | None, refs: dict[str, ReferenceDecl], days: set[str]
) -> Iterator[dict[str, Any]]:
    """The documents of the days' objects of one scope, references included.

    The whole scope is walked by uuid cursor and filtered here: filtered offset paging stops at
    QUERY_MAXIMUM_RESULTS, a cursor never does.
    """
    resolvable = [
        r
        for r, ref in refs.items()
        if tenant is None or is_multi_tenant(client.collections.get(ref.target_collection))
    ]
    by_filter = [refs[r] for r in refs if r not in resolvable]
    objects = coll.iterator(
        include_vector=True,
        return_references=[QueryReference(link_on=r) for r in resolvable] or None,
    )
    chunk: list[dict[str, Any]] = []
    for obj in objects:
        if obj.properties.get(DAY) not in days:
            continue
        doc = _object_doc(obj)
        if tenant is not None:
            doc["tenant"] = tenant
        chunk.append(doc)
        if len(chunk) >= _CHUNK:
            for ref in by_filter:
                _filtered_references(coll, ref, chunk)
            yield from chunk
            chunk = []
    for ref in by_filter:
        _filtered_references(coll, ref, chunk)
    yield from chunk


def _snapshot_weaviate(
    targets: Targets, request_id: str, plan: Plan, result: SnapshotResult
) -> None:
    folder = snapshot_dir(targets, request_id) / "weaviate"
    folder.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(targets.postgres_conninfo) as conn:
        decls = declare_from_store(conn, targets.spec, targets.names)
    refs = {d.name: {r.name: r for r in d.references} for d in decls}
    days = set(plan.days)
    with targets.weaviate() as client:
        for type_ in targets.collections:
            name = targets.names.of(type_)
            path = folder / f"{type_}.jsonl"
            counts = dict.fromkeys(plan.days, 0)
            with path.open("w", encoding="utf-8") as out:
                if client.collections.exists(name):
                    for tenant, coll in scopes(client, name):
                        for doc in _day_docs(client, coll, tenant, refs[name], days):
                            out.write(json.dumps(doc, default=_json_default) + "\n")
                            counts[str(doc["properties"][DAY])] += 1
            for day, n in counts.items():
                result.add(f"weaviate.{type_}", day, n, str(path))


def take_snapshot(targets: Targets, request_id: str, plan: Plan) -> SnapshotResult:
    """Snapshot every store the plan touches, and record where each copy lives."""
    result = SnapshotResult()
    services = plan.scope.services
    if plan.days:
        with psycopg.connect(targets.postgres_conninfo) as conn:
            _snapshot_postgres(conn, request_id, plan, result)
            conn.commit()
        if RELAY in services:
            _snapshot_progress(targets, request_id, plan, result)
        if ANALYTICS in services:
            _snapshot_clickhouse(targets, request_id, plan, result)
        if SEARCH in services:
            _snapshot_weaviate(targets, request_id, plan, result)
    with psycopg.connect(targets.postgres_conninfo) as conn:
        _record(conn, request_id, result)
        conn.commit()
    return result
