"""Undo a rollback from its snapshot: upstream first, only into days that are still empty."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from psycopg import sql
from weaviate.classes.data import DataObject

from strangler.analytics.swap import partition_id
from strangler.migration.outbox_relay import mark_published
from strangler.migration.relay_progress import split_progress_key
from strangler.rollback.execute import RollbackRefused, _ensure_idle
from strangler.rollback.services import ANALYTICS, RELAY, SEARCH
from strangler.rollback.snapshot import (
    PG_TABLES,
    SERVICE_TABLES,
    ch_snapshot_table,
    pg_snapshot_table,
    snapshot_dir,
)
from strangler.rollback.stores import clickhouse_tables_quiet, day_counts
from strangler.rollback.targets import Targets
from strangler.search.tenants import ensure_tenants, is_multi_tenant, scoped


@dataclass
class UndoResult:
    request_id: str
    days: list[str]
    services: tuple[str, ...]
    restored: dict[str, int] = field(default_factory=dict)


def resolve_request(conn: psycopg.Connection[Any], ref: str) -> str:
    """A request id from a request uuid or a rollback_reports report id."""
    if ref.isdigit():
        row = conn.execute(
            "SELECT request_id::text FROM migration_state.rollback_reports WHERE report_id = %s",
            (int(ref),),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT request_id::text FROM migration_state.rollback_requests WHERE request_id::text = %s",
            (ref,),
        ).fetchone()
    if row is None:
        raise LookupError(f"no rollback request or report {ref!r}")
    return str(row[0])


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _restore_postgres(
    conn: psycopg.Connection[Any], request_id: str, services: tuple[str, ...]
) -> dict[str, int]:
    out: dict[str, int] = {}
    order = ("events", "outbox", "checkpoints", "offset_ranges")
    wanted = {n for s, names in SERVICE_TABLES.items() if s in services for n in names}
    for name in order:
        if name not in wanted:
            continue
        schema, table, _ = PG_TABLES[name]
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in _columns(conn, schema, table))
        overriding = sql.SQL("OVERRIDING SYSTEM VALUE") if name == "events" else sql.SQL("")
        out[f"postgres.{name}"] = conn.execute(
            sql.SQL("INSERT INTO {}.{} ({}) {} SELECT {} FROM {}").format(
                sql.Identifier(schema),
                sql.Identifier(table),
                cols,
                overriding,
                cols,
                pg_snapshot_table(request_id, name),
            )
        ).rowcount
    return out


def _restore_progress(targets: Targets, request_id: str) -> int:
    path = snapshot_dir(targets, request_id) / "relay_progress.json"
    if not path.exists():
        return 0
    values: dict[str, Any] = json.loads(path.read_text())
    producer = targets.kafka.producer()
    for key, value in values.items():
        producer.produce(targets.progress_topic, key=key.encode(), value=json.dumps(value).encode())
    if producer.flush(60):
        raise RuntimeError("relay progress not restored: messages still pending")
    # The outbox's published watermarks follow the restored progress (the relay's own rule).
    with psycopg.connect(targets.postgres_conninfo) as conn:
        for key, value in values.items():
            topic, partition_key = split_progress_key(key)
            mark_published(conn, topic, {partition_key: int(value["last_position"])})
    return len(values)


def _restore_clickhouse(targets: Targets, request_id: str, days: list[str]) -> int:
    n = 0
    with targets.clickhouse() as client:
        for table in clickhouse_tables_quiet(targets, client):
            snap = targets.ddl.table(ch_snapshot_table(request_id, table))
            for day in days:
                pid = partition_id(day)
                rows = int(
                    client.query(
                        f"SELECT count() FROM {snap} WHERE _partition_id = {{p:String}}",
                        parameters={"p": pid},
                    ).result_rows[0][0]
                )
                if rows:
                    client.command(
                        f"ALTER TABLE {targets.ddl.table(table)} REPLACE PARTITION ID '{pid}' FROM {snap}"
                    )
                    n += rows
    return n


def _restore_weaviate(targets: Targets, request_id: str) -> int:
    folder = snapshot_dir(targets, request_id) / "weaviate"
    n = 0
    with targets.weaviate() as client:
        for type_ in targets.collections:  # reference targets first
            path = folder / f"{type_}.jsonl"
            if not path.exists():
                continue
            coll = client.collections.get(targets.names.of(type_))
            multi = is_multi_tenant(coll)
            batches: dict[str | None, list[DataObject[Any, Any]]] = {}
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    doc = json.loads(line)
                    tenant = doc.get("tenant") if multi else None
                    if multi and tenant is None:
                        raise RuntimeError(
                            f"restoring {path.name}: {coll.name} is multi-tenant now, but object"
                            f" {doc['uuid']} was snapshotted without a tenant"
                        )
                    batches.setdefault(tenant, []).append(
                        DataObject(
                            properties=doc["properties"],
                            uuid=doc["uuid"],
                            vector=doc["vector"],
                            references=doc["references"] or None,
                        )
                    )
            ensure_tenants(coll, [t for t in batches if t is not None])
            for tenant, batch in batches.items():
                handle = scoped(coll, tenant)
                for start in range(0, len(batch), 500):
                    outcome = handle.data.insert_many(batch[start : start + 500])
                    if outcome.errors:
                        first = next(iter(outcome.errors.values()))
                        raise RuntimeError(
                            f"restoring {path.name}: {len(outcome.errors)} errors, e.g. {first}"
                        )
                n += len(batch)
    return n


def _restore_offsets(targets: Targets, request_id: str) -> int:
    """Put consumer groups back where the rollback found them (from its saved report)."""
    path = snapshot_dir(targets, request_id) / "report.json"
    if not path.exists():
        return 0
    resets = json.loads(path.read_text()).get("offset_resets") or []
    by_group: dict[str, list[TopicPartition]] = {}
    for r in resets:
        by_group.setdefault(r["group"], []).append(
            TopicPartition(r["topic"], r["partition"], r["before"])
        )
    if not by_group:
        return 0
    _ensure_idle(targets, list(by_group))
    admin = targets.kafka.admin()
    for group, tps in by_group.items():
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[
            group
        ].result()
    return len(resets)


def undo(targets: Targets, ref: str) -> UndoResult:
    """Restore what rollback `ref` removed; refused while any of its days holds data again."""
    with psycopg.connect(targets.postgres_conninfo) as conn:
        request_id = resolve_request(conn, ref)
        row = conn.execute(
            "SELECT services FROM migration_state.rollback_requests WHERE request_id = %s",
            (request_id,),
        ).fetchone()
        days = [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT partition_key FROM migration_state.rollback_snapshots"
                " WHERE request_id = %s AND restored_at IS NULL ORDER BY 1",
                (request_id,),
            )
        ]
    if row is None or not days:
        raise RollbackRefused(f"rollback {request_id} has no snapshot left to restore")
    from strangler.rollback.services import resolve_services

    services = resolve_services(list(row[0]))
    result = UndoResult(request_id, days, services)
    for day in days:
        busy = {
            s: {k: n for k, n in stores.items() if n and k != "messages"}
            for s, stores in day_counts(targets, day, services).items()
        }
        busy = {s: v for s, v in busy.items() if v}
        if busy:
            raise RollbackRefused(
                f"day {day} holds data again ({busy}); roll it back before undoing {request_id}"
            )
    with psycopg.connect(targets.postgres_conninfo) as conn:
        result.restored.update(_restore_postgres(conn, request_id, services))
        conn.commit()
    if RELAY in services:
        result.restored["kafka.relay_progress"] = _restore_progress(targets, request_id)
    if ANALYTICS in services:
        result.restored["clickhouse"] = _restore_clickhouse(targets, request_id, days)
    if SEARCH in services:
        result.restored["weaviate"] = _restore_weaviate(targets, request_id)
    result.restored["consumer_offsets"] = _restore_offsets(targets, request_id)
    with psycopg.connect(targets.postgres_conninfo) as conn:
        conn.execute(
            "UPDATE migration_state.rollback_snapshots SET restored_at = now() WHERE request_id = %s",
            (request_id,),
        )
        conn.commit()
    return result
