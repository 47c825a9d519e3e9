"""Reading one day's events straight from the event store (the fallback when Kafka lost them)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from strangler.migration.kafka_records import EventRecord

_QUERY = """
SELECT e.position, e.event_id, e.event_type, e.schema_version, e.aggregate_type, e.aggregate_id,
       e.aggregate_version, e.occurred_at, e.payload, e.metadata, o.topic, o.partition_day
FROM eventstore.outbox o
JOIN eventstore.events e USING (event_id)
WHERE o.partition_day = %s AND (%s::text[] IS NULL OR e.aggregate_type = ANY(%s::text[]))
ORDER BY e.position
"""


def read_day_from_store(
    conn: psycopg.Connection[Any],
    partition_key: str,
    aggregate_types: Sequence[str] | None = None,
    *,
    batch_size: int = 5_000,
) -> Iterator[list[EventRecord]]:
    """Batches of the day's events in global order, through a server-side cursor.

    Records carry kafka_partition = offset = -1: they did not come from Kafka.
    """
    types = list(aggregate_types) if aggregate_types else None
    with conn.cursor(name="strangler_day_events", row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(_QUERY, (partition_key, types, types))
        while rows := cur.fetchmany(batch_size):
            yield [
                EventRecord(
                    event_id=r["event_id"],
                    event_type=r["event_type"],
                    schema_version=int(r["schema_version"]),
                    aggregate_type=r["aggregate_type"],
                    aggregate_id=r["aggregate_id"],
                    aggregate_version=int(r["aggregate_version"]),
                    occurred_at=r["occurred_at"],
                    partition_day=r["partition_day"].isoformat(),
                    payload=r["payload"],
                    metadata=r["metadata"],
                    position=int(r["position"]),
                    topic=r["topic"],
                    kafka_partition=-1,
                    offset=-1,
                )
                for r in rows
            ]
