"""The search-service's bookkeeping in Postgres: failures, per-event processing, health, lag."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from strangler.migration.consumer_lag import PartitionLag, record_lag

SERVICE = "search-service"
MIGRATION = "weaviate"


@dataclass(frozen=True)
class Failure:
    collection: str
    source_key: str
    rule: str
    reason: str
    payload: dict[str, Any]
    event_ids: tuple[uuid.UUID, ...] = ()


def record_failures(
    conn: psycopg.Connection[Any],
    partition_key: str,
    run_id: str,
    failures: Sequence[Failure],
    succeeded: dict[str, list[str]],
) -> None:
    """Upsert this run's failures; mark earlier failures of keys that loaded now as resolved."""
    if failures:
        conn.cursor().executemany(
            "INSERT INTO migration_state.failed_entities"
            " (migration, partition_key, source_table, source_key, rule, reason, payload, run_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (migration, source_table, source_key, rule) DO UPDATE SET"
            " reason = EXCLUDED.reason, payload = EXCLUDED.payload, run_id = EXCLUDED.run_id,"
            " partition_key = EXCLUDED.partition_key,"
            " occurrences = failed_entities.occurrences + 1, last_seen_at = now(), resolved_at = NULL",
            [
                (
                    MIGRATION,
                    partition_key,
                    f.collection,
                    f.source_key,
                    f.rule,
                    f.reason,
                    Jsonb(f.payload),
                    run_id,
                )
                for f in failures
            ],
        )
    for collection, keys in succeeded.items():
        if keys:
            conn.execute(
                "UPDATE migration_state.failed_entities SET resolved_at = now()"
                " WHERE migration = %s AND source_table = %s AND source_key = ANY(%s)"
                " AND resolved_at IS NULL",
                (MIGRATION, collection, keys),
            )


def record_processing(
    conn: psycopg.Connection[Any],
    outcomes: Sequence[tuple[uuid.UUID, str, float, str | None]],
    service: str = SERVICE,
) -> None:
    """Per event: (event id, status, duration ms, error); COPY into a temp table, then upsert."""
    if not outcomes:
        return
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _search_processing"
        " (event_id uuid, status text, duration_ms double precision, error text) ON COMMIT DELETE ROWS"
    )
    with conn.cursor().copy(
        "COPY _search_processing (event_id, status, duration_ms, error) FROM STDIN"
    ) as copy:
        for row in outcomes:
            copy.write_row(row)
    conn.execute(
        "INSERT INTO microservices.service_processing"
        " (service, event_id, status, duration_ms, error, finished_at)"
        " SELECT DISTINCT ON (event_id) %s, event_id, status, duration_ms, error, now()"
        " FROM _search_processing ORDER BY event_id"
        " ON CONFLICT (service, event_id) DO UPDATE SET status = EXCLUDED.status,"
        " attempts = service_processing.attempts + 1, duration_ms = EXCLUDED.duration_ms,"
        " error = EXCLUDED.error, started_at = now(), finished_at = now()",
        (service,),
    )


def log(
    conn: psycopg.Connection[Any],
    message: str,
    metrics: dict[str, Any],
    level: str = "info",
    service: str = SERVICE,
) -> None:
    conn.execute(
        "INSERT INTO microservices.processing_log (service, level, message, metrics)"
        " VALUES (%s, %s, %s, %s)",
        (service, level, message, Jsonb(metrics)),
    )


def heartbeat(
    conn: psycopg.Connection[Any],
    version: str,
    status: str,
    details: dict[str, Any],
    service: str = SERVICE,
) -> None:
    conn.execute(
        "INSERT INTO microservices.service_health (service, version, status, details, heartbeat_at)"
        " VALUES (%s, %s, %s, %s, now())"
        " ON CONFLICT (service) DO UPDATE SET version = EXCLUDED.version, status = EXCLUDED.status,"
        " details = EXCLUDED.details, heartbeat_at = now()",
        (service, version, status, Jsonb(details)),
    )


def record_sync(
    conn: psycopg.Connection[Any],
    consumer_group: str,
    positions: Sequence[tuple[str, int, int, int]],
    service: str = SERVICE,
) -> None:
    """(topic, partition, committed offset, end offset) per Kafka partition, for sync_status.lag."""
    record_lag(
        conn, [PartitionLag(service, consumer_group, t, p, c, e) for t, p, c, e in positions]
    )
