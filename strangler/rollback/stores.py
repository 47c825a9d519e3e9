"""Per-store counts and fingerprints of one day, shared by plan, validate and tests."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from weaviate.classes.query import Filter

from strangler.analytics.ddl import build_schema, quote_identifier
from strangler.analytics.swap import partition_id
from strangler.checks.kafka import check_group
from strangler.migration.kafka_records import load_offset_ranges, read_ranges
from strangler.rollback.services import ANALYTICS, EVENT_STORE, RELAY, SEARCH
from strangler.rollback.targets import Targets
from strangler.search.schema import DAY
from strangler.search.tenants import scopes


def clickhouse_tables(targets: Targets) -> list[str]:
    """Base tables and MV targets of the schema that exist in the target database."""
    with targets.clickhouse() as client:
        return clickhouse_tables_quiet(targets, client)


def event_store_counts(conn: psycopg.Connection[Any], day: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM eventstore.events WHERE partition_day = %s::date),"
        " (SELECT count(*) FROM eventstore.outbox WHERE partition_day = %s::date),"
        " (SELECT count(*) FROM migration_state.migration_checkpoints WHERE partition_key = %s)",
        (day, day, day),
    ).fetchone()
    assert row is not None
    return {"events": int(row[0]), "outbox": int(row[1]), "checkpoints": int(row[2])}


def relay_counts(conn: psycopg.Connection[Any], day: str, topics: list[str]) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*), coalesce(sum(end_offset - start_offset), 0)"
        " FROM migration_state.kafka_offset_ranges WHERE partition_key = %s AND topic = ANY(%s)",
        (day, topics),
    ).fetchone()
    assert row is not None
    return {"offset_ranges": int(row[0]), "messages": int(row[1])}


def clickhouse_counts(targets: Targets, day: str, tables: list[str]) -> dict[str, int]:

    pid = partition_id(day)
    out: dict[str, int] = {}
    with targets.clickhouse() as client:
        for table in tables:
            result = client.query(
                f"SELECT count() FROM {targets.ddl.table(table)} WHERE _partition_id = {{p:String}}",
                parameters={"p": pid},
            )
            out[table] = int(result.result_rows[0][0])
    return out


def weaviate_counts(targets: Targets, day: str) -> dict[str, int]:
    out: dict[str, int] = {}
    with targets.weaviate() as client:
        for type_ in targets.collections:
            name = targets.names.of(type_)
            if not client.collections.exists(name):
                out[name] = 0
                continue
            out[name] = sum(
                int(
                    handle.aggregate.over_all(
                        filters=Filter.by_property(DAY).equal(day), total_count=True
                    ).total_count
                    or 0
                )
                for _tenant, handle in scopes(client, name)
            )
    return out


def day_counts(targets: Targets, day: str, services: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Items of `day` per service and store object: what a rollback would remove."""
    out: dict[str, dict[str, int]] = {}
    with psycopg.connect(targets.postgres_conninfo) as conn:
        if EVENT_STORE in services:
            out[EVENT_STORE] = event_store_counts(conn, day)
        if RELAY in services:
            out[RELAY] = relay_counts(conn, day, targets.topics)
    if ANALYTICS in services:
        out[ANALYTICS] = clickhouse_counts(targets, day, clickhouse_tables(targets))
    if SEARCH in services:
        out[SEARCH] = weaviate_counts(targets, day)
    return out


def kafka_records(targets: Targets, day: str) -> list[tuple[str, str, str, int, str]]:
    """The day's records in its recorded offset ranges (read_committed), by identity: event id,
    topic, key, version, type (offsets differ from one publish to the next)."""
    with psycopg.connect(targets.postgres_conninfo) as conn:
        ranges = load_offset_ranges(conn, day, targets.topics)
    if not ranges:
        return []
    consumer = targets.kafka.consumer(check_group())
    try:
        return sorted(
            (str(r.event_id), r.topic, r.aggregate_id, r.aggregate_version, r.event_type)
            for batch in read_ranges(consumer, ranges, day, idle_timeout_s=10.0)
            for r in batch
        )
    finally:
        consumer.close()


def _digest(rows: list[Any]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def day_fingerprint(targets: Targets, day: str) -> dict[str, Any]:
    """Counts and content hashes of a day in every store (order-independent, run-independent)."""

    fp: dict[str, Any] = {}
    with psycopg.connect(targets.postgres_conninfo) as conn:
        events = conn.execute(
            "SELECT event_id::text, aggregate_type, aggregate_id, aggregate_version, event_type,"
            " payload::text FROM eventstore.events WHERE partition_day = %s::date ORDER BY 1",
            (day,),
        ).fetchall()
        outbox = conn.execute(
            # The outbox envelope carries per-write positions; its identity is what counts.
            "SELECT event_id::text, topic, message_key, partition_day FROM eventstore.outbox"
            " WHERE partition_day = %s::date ORDER BY 1",
            (day,),
        ).fetchall()
    fp["events"] = (len(events), _digest(events))
    fp["outbox"] = (len(outbox), _digest(outbox))
    records = kafka_records(targets, day)
    fp["kafka"] = (len(records), _digest(records))
    pid = partition_id(day)
    with targets.clickhouse() as client:
        for table in clickhouse_tables_quiet(targets, client):
            expr = _content_hash_expr(targets, client, table)
            rows = client.query(
                f"SELECT count(), sum({expr}) FROM {targets.ddl.table(table)}"
                " WHERE _partition_id = {p:String}",
                parameters={"p": pid},
            ).result_rows
            fp[f"clickhouse.{table}"] = (int(rows[0][0]), int(rows[0][1] or 0))
    with targets.weaviate() as client:
        for type_ in targets.collections:
            name = targets.names.of(type_)
            if not client.collections.exists(name):
                fp[f"weaviate.{type_}"] = (0, _digest([]))
                continue
            # A tenant is part of an object's identity: the same object in another tenant differs.
            objs = sorted(
                (
                    str(o.uuid) if tenant is None else f"{tenant}/{o.uuid}",
                    sorted((k, str(v)) for k, v in o.properties.items() if k != "load_token"),
                )
                for tenant, handle in scopes(client, name)
                for o in handle.iterator(return_properties=None)
                if o.properties.get(DAY) == day
            )
            fp[f"weaviate.{type_}"] = (len(objs), _digest(objs))
    return fp


def clickhouse_tables_quiet(targets: Targets, client: Any) -> list[str]:
    wanted = list(build_schema(targets.spec).swapped_tables)
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        parameters={"db": targets.ddl.database},
    ).result_rows
    present = {str(r[0]) for r in rows}
    return [t for t in wanted if t in present]


APPEND_POSITIONS = ("position", "_version")
"""Columns holding event-store positions (the events table's `position`, a current-state row's
`_version`): a re-materialized day is appended again, at new positions, with the same content."""


def _content_hash_expr(targets: Targets, client: Any, table: str) -> str:
    """cityHash64 over a row's content: Kafka positions (which differ per publish) and
    event-store positions (which differ per append) left out, aggregate states finalized
    (their bytes are not comparable)."""
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
        " ORDER BY position",
        parameters={"db": targets.ddl.database, "t": table},
    ).result_rows
    parts = []
    for name, type_ in rows:
        if str(name).startswith("kafka_") or str(name) in APPEND_POSITIONS:
            continue
        col = quote_identifier(str(name))
        parts.append(
            f"toString(finalizeAggregation({col}))"
            if str(type_).startswith("AggregateFunction")
            else col
        )
    return f"cityHash64({', '.join(parts)})"
